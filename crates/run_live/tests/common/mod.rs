//! Test harness for `run_live`: an in-process simulator on 127.0.0.1:0 with short markets on
//! the real-time clock, a runtime config and strategy files pointing at it, the binary as a
//! child process, and the journal read back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use kalshi_sim::engine::{AccountKind, NoiseConfig};
use kalshi_sim::{ClockMode, KeySetup, RateLimitConfig, ScheduledFault, Sim, SimConfig};
use pipeline::money::{Count, Money, Price};
use pipeline::secrets::{ApiKeyId, PrivateKey};
use serde_json::{json, Value};

pub const SERIES: &str = "KXBTC15M";

/// A deterministic 2048-bit key (generated once per test process).
pub fn key() -> (ApiKeyId, PrivateKey) {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    let k = KEY.get_or_init(|| {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7100);
        PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rng, 2048).expect("key"))
    });
    (
        ApiKeyId::new("00000000-0000-4000-8000-000000000071"),
        k.clone(),
    )
}

/// Real-time clock, `market_ms` markets listed one window ahead, an active market maker and
/// noise trader, no rate limits unless a test sets them.
pub fn sim_config(seed: u64, market_ms: i64, faults: Vec<ScheduledFault>) -> SimConfig {
    let (key_id, key) = key();
    let mut c = SimConfig {
        clock: ClockMode::Realtime { speed: 1.0 },
        warmup_markets: 1,
        key: KeySetup::Private { key_id, key },
        rate_limit: RateLimitConfig::unlimited(),
        fault_seed: seed,
        fault_schedule: faults,
        tick_ms: 20,
        ..SimConfig::default()
    };
    c.engine.seed = seed;
    c.engine.market_duration_ms = market_ms;
    c.engine.listing_lead_ms = market_ms;
    c.engine.requote_interval_ms = 150;
    c.engine.determination_delay_ms = 300;
    c.engine.noise = NoiseConfig {
        takers_per_minute: 60.0,
        ..NoiseConfig::default()
    };
    c
}

pub struct Setup {
    pub sim: Sim,
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    pub live_dir: PathBuf,
}

pub async fn start(cfg: SimConfig) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let mut cfg = cfg;
    cfg.key_dir = Some(root.join("keys"));
    let market_ms = cfg.engine.market_duration_ms;
    let sim = kalshi_sim::spawn(cfg).await.expect("simulator starts");
    // Start just after a market opens, whatever the wall clock's phase.
    let phase = sim
        .handle()
        .with_engine(|e| e.now_ms())
        .rem_euclid(market_ms);
    if market_ms - phase < 1_000 {
        tokio::time::sleep(Duration::from_millis((market_ms - phase + 200) as u64)).await;
    }
    let (env, pem) = sim.key_files().expect("key files written");
    let live_dir = root.join("live");
    let config = root.join("runtime.json");
    let v = json!({
        "schema": "runtime/v1",
        "environment": "sim",
        "exchange": {"sim": {"rest_base": sim.rest_base()}},
        "env_file": env,
        "pem_file": pem,
        "series": SERIES,
        "data_dir": root.join("data"),
        "live_dir": live_dir,
        "strategy_path": root.join("strategy.json"),
        "snapshot_ms": 100,
        "use_yes_price": true
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    Setup {
        sim,
        _dir: dir,
        root,
        config,
        live_dir,
    }
}

/// Risk limits small enough that a buy-every-row strategy hits each within seconds.
pub fn tight_risk() -> Value {
    json!({
        "max_contracts_per_market": "3.00",
        "max_open_markets": 2,
        "max_orders_per_minute": 20,
        "cooldown_s": 0,
        "max_daily_loss": "1000.00",
        "no_entry_last_s": 1,
        "max_total_exposure": "4.00"
    })
}

/// A `strategy_type: plugin` file for `module`.`class` with `params`.
pub fn plugin_strategy(path: &Path, module: &str, class: &str, params: Value, risk: Value) {
    let v = json!({
        "schema": "strategy/v1",
        "name": format!("test-{class}"),
        "strategy_type": "plugin",
        "created_at": "2026-12-01T00:00:00Z",
        "markets": {"series_ticker": SERIES},
        "signals": {"min_edge": "0.0000", "min_price": "0.0100", "max_price": "0.9900",
                     "max_spread": "0.9900", "min_seconds_to_close": 0, "sides": "both"},
        "execution": {"limit_offset": "0.0000", "time_in_force": "immediate_or_cancel",
                       "contracts_per_order": "1.00", "post_only": false,
                       "self_trade_prevention": "taker_at_cross"},
        "risk": risk,
        "plugin": {"module": module, "class": class, "params": params}
    });
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

pub fn runner(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_run_live"));
    c.arg("--config")
        .arg(config)
        .args([
            "--discovery-seconds",
            "1",
            "--subscribe-lead-seconds",
            "2",
            "--status-seconds",
            "1",
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub async fn finish(child: tokio::process::Child) -> Finished {
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("run_live exits")
        .expect("wait");
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn run_to_end(config: &Path, args: &[&str]) -> Finished {
    finish(runner(config, args).spawn().expect("spawn run_live")).await
}

pub fn journal(live_dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(live_dir.join("journal.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}")))
        .collect()
}

pub fn of_type<'a>(j: &'a [Value], t: &str) -> Vec<&'a Value> {
    j.iter().filter(|v| v["type"] == t).collect()
}

pub fn money(v: &Value) -> Money {
    v.as_str()
        .unwrap_or_else(|| panic!("money {v}"))
        .parse()
        .unwrap()
}
pub fn count(v: &Value) -> Count {
    v.as_str()
        .unwrap_or_else(|| panic!("count {v}"))
        .parse()
        .unwrap()
}
pub fn price(v: &Value) -> Price {
    v.as_str()
        .unwrap_or_else(|| panic!("price {v}"))
        .parse()
        .unwrap()
}

/// The simulator's user account (the one our key trades as).
pub fn user(sim: &Sim) -> kalshi_sim::engine::AccountId {
    sim.handle().with_engine(|e| {
        e.accounts()
            .find(|(_, a)| a.kind == AccountKind::User)
            .map(|(id, _)| id)
            .expect("a user account")
    })
}

/// The exchange's orders of the user: client_order_id → (ticker, filled).
pub fn exchange_orders(sim: &Sim) -> BTreeMap<String, (String, Count)> {
    let u = user(sim);
    sim.handle().with_engine(|e| {
        e.orders_of(u)
            .map(|o| {
                (
                    o.client_order_id
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    (o.ticker.to_string(), o.filled),
                )
            })
            .collect()
    })
}

/// An untrained `rnn_edge_v1` strategy (seeded) in `dir`, with signals and risk opened up so
/// that it trades inside short markets: what parity tests compare, decision by decision.
pub fn relaxed_untrained(dir: &Path) -> PathBuf {
    use pipeline::schema::strategy::Strategy as StrategyFile;
    let series = pipeline::SeriesTicker::from(SERIES);
    let path = edge_model::trainer::untrained_strategy(dir, &series, 8, 3).unwrap();
    let mut file = StrategyFile::load(&path).unwrap();
    file.signals.min_seconds_to_close = 0;
    file.signals.min_edge = Money::ZERO;
    file.signals.max_spread = Price::parse_dollars("0.20").unwrap();
    file.risk.no_entry_last_s = 1;
    file.risk.cooldown_s = 0;
    file.execution.contracts_per_order = Count::from_contracts(1);
    file.save(&path).unwrap();
    path
}

/// Decisions by (market, ts_ms): (model P(YES), action).
pub type Decisions = BTreeMap<(String, i64), (f64, Option<String>)>;

pub fn journal_decisions(j: &[Value]) -> Decisions {
    of_type(j, "decision")
        .iter()
        .map(|d| {
            (
                (
                    d["market"].as_str().unwrap().to_string(),
                    d["ts_ms"].as_i64().unwrap(),
                ),
                (
                    d["model_p"].as_f64().unwrap(),
                    d["action"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

/// Replays `lines` (sorted here) through a fresh copy of the strategy at `path`: its decisions
/// and the replay's result.
pub fn replay_decisions(
    path: &Path,
    mut lines: Vec<pipeline::snapshot::Line>,
) -> (Decisions, strategy::ReplayResult) {
    use pipeline::schema::strategy::Strategy as StrategyFile;
    strategy::replay::sort_lines(&mut lines);
    let file = StrategyFile::load(path).unwrap();
    let (model, _) = edge_model::LstmEdgeModel::load(&file).unwrap();
    let rnn = strategy::RnnEdge::from_strategy(
        &file,
        Box::new(model),
        pipeline::money::FeeMultiplier::ONE,
    )
    .unwrap();
    let (result, _) = strategy::replay(
        rnn,
        &file.risk,
        &file.execution,
        strategy::ReplayConfig::default(),
        &Default::default(),
        &Default::default(),
        lines,
    )
    .unwrap();
    let d = result
        .journal
        .decisions
        .iter()
        .map(|d| {
            (
                (d.market.to_string(), d.ts_ms),
                (d.model_p, d.action.map(|a| a.as_str().to_string())),
            )
        })
        .collect();
    (d, result)
}

/// Every line of the snapshot files in `dir`.
pub fn snapshot_lines(dir: &Path) -> Vec<pipeline::snapshot::Line> {
    use pipeline::snapshot::{resolve_glob, ReadOptions, SnapshotReader};
    let files = resolve_glob(&format!("{}/*.snap_*ms.jsonl.gz", dir.display())).unwrap();
    SnapshotReader::from_paths(files, ReadOptions::default()).collect()
}
