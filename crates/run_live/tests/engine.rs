//! The engine driven directly, on a virtual wall clock: stale rows block their market, the
//! daily loss limit halts until the next UTC day, the kill-switch file halts from the next
//! row, and every state change is journaled.

mod common;

use std::sync::{Arc, Mutex};

use pipeline::schema::strategy::Strategy as StrategyFile;
use pipeline::snapshot::Line;
use run_live::engine::{Engine, EngineConfig, TradingState};
use run_live::journal::JournalWriter;
use serde_json::json;
use strategy::{ReplayConfig, ReplayVenue, Runtime};

const DAY: i64 = 86_400_000;
const T0: i64 = 20_000 * DAY - 60_000; // one minute before a UTC midnight

fn row(ts: i64, market: &str, bid: i64, ask: i64) -> Line {
    Line::from_json(
        &json!({"ts_ms": ts, "market_ticker": market, "yes_bid": bid, "yes_ask": ask,
                "no_bid": 100 - ask, "no_ask": 100 - bid, "yes_mid": (bid + ask) as f64 / 2.0,
                "spread": ask - bid, "yes_bid_size": 100, "yes_ask_size": 100, "volume": 0,
                "close_ts_ms": T0 + DAY})
        .to_string(),
    )
    .unwrap()
}

struct Rig {
    _d: tempfile::TempDir,
    dir: std::path::PathBuf,
    engine: Engine<ReplayVenue>,
}

fn rig(risk: serde_json::Value) -> Rig {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let path = dir.join("strategy.json");
    common::plugin_strategy(&path, "builtin", "buy_every_row", json!({"count": 1}), risk);
    let file = StrategyFile::load(&path).unwrap();
    let strategy = run_live::builtin::make(&file, "buy_every_row").unwrap();
    let runtime = Runtime::new(
        strategy,
        file.risk.clone(),
        file.execution.clone(),
        pipeline::money::FeeMultiplier::ONE,
    );
    let journal = Arc::new(Mutex::new(JournalWriter::open(&dir).unwrap()));
    let venue = ReplayVenue::new(ReplayConfig::default(), Default::default());
    let cfg = EngineConfig {
        stale_ms: 2_000,
        kill_file: dir.join("KILL"),
        risk: file.risk,
    };
    Rig {
        _d: d,
        engine: Engine::new(runtime, venue, journal, cfg),
        dir,
    }
}

fn risk(daily_loss: &str) -> serde_json::Value {
    json!({"max_contracts_per_market": "100.00", "max_open_markets": 5,
           "max_orders_per_minute": 1000, "cooldown_s": 0, "max_daily_loss": daily_loss,
           "no_entry_last_s": 1})
}

#[test]
fn stale_rows_block_their_market_and_fresh_rows_trade() {
    let mut r = rig(risk("100.00"));
    for i in 0..5 {
        let ts = T0 + i * 100;
        r.engine
            .on_lines(&[row(ts, "KXBTC15M-A", 40, 42)], ts + 2_500)
            .unwrap();
    }
    assert_eq!(r.engine.stats().orders, 0);
    assert_eq!(r.engine.stats().skipped.get("blocked"), Some(&5));
    for i in 5..10 {
        let ts = T0 + i * 100;
        r.engine
            .on_lines(&[row(ts, "KXBTC15M-A", 40, 42)], ts + 50)
            .unwrap();
    }
    assert_eq!(r.engine.stats().orders, 5);
    assert_eq!(
        r.engine.stats().fills,
        4,
        "the last order waits for a later row"
    );
}

#[test]
fn the_daily_loss_limit_halts_until_the_next_utc_day() {
    let mut r = rig(risk("0.50"));
    // Buy at 42¢, then the bid collapses: marked equity falls by more than 50¢.
    let mut ts = T0;
    for (bid, ask) in [(40, 42), (40, 42), (5, 42), (5, 42), (5, 42)] {
        r.engine
            .on_lines(&[row(ts, "KXBTC15M-A", bid, ask)], ts)
            .unwrap();
        ts += 100;
    }
    assert_eq!(r.engine.state().0, TradingState::Halted);
    assert!(
        r.engine.state().1.contains("risk.max_daily_loss"),
        "{}",
        r.engine.state().1
    );
    let orders = r.engine.stats().orders;
    r.engine
        .on_lines(&[row(ts, "KXBTC15M-A", 5, 42)], ts)
        .unwrap();
    assert_eq!(r.engine.stats().orders, orders, "no order while halted");
    // After midnight UTC the day starts again from the current equity.
    let next = T0 + 60_000 + 100;
    r.engine
        .on_lines(&[row(next, "KXBTC15M-A", 5, 42)], next)
        .unwrap();
    assert_eq!(
        r.engine.state().0,
        TradingState::Active,
        "{}",
        r.engine.state().1
    );
    assert_eq!(r.engine.stats().orders, orders + 1);
    let j = common::journal(&r.dir);
    let states: Vec<&str> = common::of_type(&j, "state")
        .iter()
        .map(|v| v["to"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["halted", "active"]);
}

#[test]
fn the_kill_file_halts_from_the_next_row() {
    let mut r = rig(risk("100.00"));
    r.engine
        .on_lines(&[row(T0, "KXBTC15M-A", 40, 42)], T0)
        .unwrap();
    assert_eq!(r.engine.stats().orders, 1);
    std::fs::write(r.dir.join("KILL"), "").unwrap();
    r.engine
        .on_lines(&[row(T0 + 100, "KXBTC15M-A", 40, 42)], T0 + 100)
        .unwrap();
    assert_eq!(r.engine.stats().orders, 1);
    assert_eq!(r.engine.state().0, TradingState::Halted);
    // Sticky: removing the file does not resume a killed session.
    std::fs::remove_file(r.dir.join("KILL")).unwrap();
    r.engine
        .on_lines(&[row(T0 + 200, "KXBTC15M-A", 40, 42)], T0 + 200)
        .unwrap();
    assert_eq!(r.engine.stats().orders, 1);
    // The fill of the order sent before the kill still lands.
    assert_eq!(r.engine.stats().fills, 1);
}
