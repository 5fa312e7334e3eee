//! Parity on a real recorded session: `run_live` dry-run against `kalshi_sim replay` of a May
//! 2026 KXBTC15M capture (speed 1, started by the subscription, the grid on the exchange's
//! clock) decides as the replay does on the offline re-grid of the same capture, at the same
//! grid instants. Skips with a message when `../shared` is absent; `REQUIRE_SHARED_DATA=1`
//! makes that a failure.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::*;
use kalshi_sim::{spawn_replay, KeySetup, RateLimitConfig, ReplayConfig, Speed, StartMode};
use market_data::book::NoPriceConvention;
use market_data::recorder::{regrid, RegridConfig};
use pipeline::snapshot::Line;
use serde_json::json;

fn shared_data() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/kalshi_kxbtc15m_2026-05");
    if d.is_dir() {
        return Some(d);
    }
    assert!(
        std::env::var("REQUIRE_SHARED_DATA").as_deref() != Ok("1"),
        "REQUIRE_SHARED_DATA=1 but {} is absent",
        d.display()
    );
    None
}

/// A row without what only the live side can have (the replay's own sequence numbers, the
/// REST-seeded last price and volume): the book the strategy's features read.
fn book(l: &Line) -> Option<((String, i64), String)> {
    match l {
        Line::Snapshot(r) => {
            let mut r = r.clone();
            r.seq = None;
            r.last_price = None;
            r.volume = None;
            Some((
                (r.market_ticker.to_string(), r.ts_ms),
                Line::Snapshot(r).to_json(),
            ))
        }
        Line::Marker(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_on_a_replayed_real_session_decides_as_the_replay_of_its_regrid() {
    let Some(data) = shared_data() else {
        eprintln!("SKIP live_on_a_replayed_real_session_decides_as_the_replay_of_its_regrid: ../shared not found");
        return;
    };
    let mut captures: Vec<PathBuf> = std::fs::read_dir(data.join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".capture.jsonl.gz"))
        .collect();
    captures.sort();
    let capture = captures[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let (key_id, key) = key();
    let replay = spawn_replay(ReplayConfig {
        captures: vec![capture.clone()],
        markets_file: Some(data.join("markets.jsonl")),
        speed: Speed::Factor(1.0),
        start: StartMode::OnSubscribe,
        key: KeySetup::Private { key_id, key },
        key_dir: Some(dir.path().join("keys")),
        rate_limit: RateLimitConfig::unlimited(),
        ..ReplayConfig::default()
    })
    .await
    .expect("replay starts");
    let (env, pem) = replay.key_files().expect("key files");
    let live_dir = dir.path().join("live");
    let config = dir.path().join("runtime.json");
    let v = json!({
        "schema": "runtime/v1", "environment": "sim",
        "exchange": {"sim": {"rest_base": replay.rest_base()}},
        "env_file": env, "pem_file": pem, "series": SERIES, "live_dir": live_dir,
        "snapshot_ms": 100,
        // How these sessions were recorded: NO-leg prices.
        "use_yes_price": false
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let strategy = relaxed_untrained(&dir.path().join("model"));
    let s = strategy.display().to_string();
    let done = run_to_end(
        &config,
        &["--strategy", &s, "--clock", "exchange", "--duration", "30"],
    )
    .await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    replay.shutdown().await;
    let j = journal(&live_dir);
    // The replay refuses orders (`GET /exchange/status`: trading_active false): the runner
    // halts as for an exchange pause, and no order goes out after that.
    let halt = j
        .iter()
        .position(|v| v["type"] == "state" && v["why"] == "the exchange paused trading")
        .expect("halted on the exchange's trading status");
    assert!(
        j[halt..].iter().all(|v| v["type"] != "order"),
        "an order after the pause"
    );
    let live = journal_decisions(&j);
    assert!(live.len() >= 20, "only {} live decisions", live.len());
    let last = live.keys().map(|k| k.1).max().unwrap();

    // The same capture re-gridded offline (the book after every frame received ≤ T on the
    // recording's clock), replayed up to the live session's last decision.
    let out = dir.path().join("regrid");
    let mut rc = RegridConfig::new(vec![capture], out.clone());
    rc.markets = Some(data.join("markets.jsonl"));
    rc.depth = 10;
    rc.convention = NoPriceConvention::NoLeg;
    regrid(&rc).unwrap();
    // The live runner saw each market from its first row (the subscription took a moment):
    // the replay starts each market there too, so both models start from the same state.
    let live_lines = snapshot_lines(&live_dir.join("data"));
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    for l in &live_lines {
        let e = first
            .entry(l.market_ticker().to_string())
            .or_insert(i64::MAX);
        *e = (*e).min(l.ts_ms());
    }
    let lines: Vec<Line> = snapshot_lines(&out)
        .into_iter()
        .filter(|l| {
            l.ts_ms() <= last + 1_000
                && first
                    .get(l.market_ticker().as_str())
                    .is_some_and(|&f| l.ts_ms() >= f)
        })
        .collect();
    let regrid_books: BTreeMap<_, _> = lines.iter().filter_map(book).collect();
    let (replayed, _) = replay_decisions(&strategy, lines);

    // Where the live rows show another book than the re-grid at the same instant.
    let live_books: BTreeMap<_, _> = live_lines.iter().filter_map(book).collect();
    let differing: BTreeSet<&(String, i64)> = live_books
        .iter()
        .filter(|(k, b)| regrid_books.get(*k).is_some_and(|r| r != *b))
        .map(|(k, _)| k)
        .collect();
    let rows_both = live_books
        .keys()
        .filter(|k| regrid_books.contains_key(*k))
        .count();

    let (mut same, mut same_action, mut explained, mut unexplained) = (0, 0, 0, Vec::new());
    let mut max_dp: f64 = 0.0;
    for (k, (p, a)) in &live {
        let Some((q, b)) = replayed.get(k) else {
            unexplained.push(format!("{k:?}: no replay decision"));
            continue;
        };
        if a == b {
            same_action += 1;
        }
        max_dp = max_dp.max((p - q).abs());
        if (p - q).abs() < 1e-9 && a == b {
            same += 1;
        } else if differing.iter().any(|(m, t)| m == &k.0 && *t <= k.1) {
            // The model's state carries every earlier step: an earlier book that differed
            // (a frame received within one step of T) explains any later difference.
            explained += 1;
        } else {
            unexplained.push(format!("{k:?}: live p {p} {a:?}, replay p {q} {b:?}"));
        }
    }
    let n = live.len() as f64;
    eprintln!(
        "replay parity (real session): {} live decisions; equal {same} ({:.1}%), same action {same_action} ({:.1}%), \
         {explained} differ after a differing book, {} unexplained; rows at the same instant {rows_both}, \
         books differ at {} ({:.1}%); largest |P(YES) live − replay| {max_dp:.4}",
        live.len(),
        100.0 * same as f64 / n,
        100.0 * same_action as f64 / n,
        unexplained.len(),
        differing.len(),
        100.0 * differing.len() as f64 / rows_both.max(1) as f64
    );
    for u in unexplained.iter().take(5) {
        eprintln!("  unexplained: {u}");
    }
    assert!(
        unexplained.is_empty(),
        "{} unexplained differences",
        unexplained.len()
    );
    assert!(
        same_action as f64 >= 0.8 * n,
        "only {same_action} of {} decisions act the same",
        live.len()
    );
}
