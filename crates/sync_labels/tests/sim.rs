//! `sync_labels` as a user runs it, against the simulator: a recorded session (snapshot files
//! written with `SnapshotWriter` from the simulator's own books, tickers and close times)
//! spanning several settled markets and one still open, plus (added later) a ticker the
//! exchange never listed. The binary runs as a child process with `--base-url` at the
//! in-process simulator and `--config` at a temporary config; the simulator counts the REST
//! requests it receives.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use kalshi_sim::engine::{MarketInfo, MarketStatus, NoiseConfig};
use kalshi_sim::{ClockMode, Fault, PathSpec, RateLimitConfig, Sim, SimConfig, SimHandle};
use pipeline::ids::{MarketTicker, SeriesTicker};
use pipeline::snapshot::{Line, SnapshotRecord, SnapshotWriter, WriterOptions};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_sync_labels");
const SERIES: &str = "KXBTC15M";
const UNKNOWN: &str = "KXBTC15M-NEVERLISTED-00";
const STEP_MS: i64 = 60_000;

/// Markets `d` ms long whose windows are aligned so that the one open at wall-clock now
/// closes at least 20 minutes from now (the binary's "now" is the wall clock: a market whose
/// snapshots say it closes later is not asked about). Returns `(d, b)`, `b` the start of the
/// current window.
fn windows() -> (i64, i64) {
    let wall = chrono::Utc::now().timestamp_millis();
    (60..)
        .map(|minutes| {
            let d = minutes * 60_000;
            (d, wall.div_euclid(d) * d)
        })
        .find(|&(d, b)| b + d - wall >= 20 * 60_000 && wall - b >= 10_000)
        .expect("some window length fits")
}

struct Session {
    rt: tokio::runtime::Runtime,
    sim: Sim,
    dir: tempfile::TempDir,
    /// Settled (finalized) markets, all recorded.
    settled: Vec<MarketInfo>,
    /// Of those, the ones only in `/historical/markets`.
    historical: Vec<MarketTicker>,
    /// The market still open when the session ends.
    open: MarketInfo,
    /// Window length and the start of the current window (see [`windows`]).
    window_ms: i64,
    window_start_ms: i64,
}

impl Session {
    fn handle(&self) -> SimHandle {
        self.sim.handle()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path())
            .args(["--config", "config/runtime.json", "--base-url"])
            .arg(self.sim.rest_base())
            .args(args)
            .env("RUST_LOG", "warn");
        for v in [
            "KALSHI_ENVIRONMENT",
            "KALSHI_REST_BASE",
            "KALSHI_WS_URL",
            "KALSHI_SERIES",
            "KALSHI_DATA_DIR",
            "KALSHI_API_KEY_ID",
            "KALSHI_KEY_ID",
        ] {
            cmd.env_remove(v);
        }
        cmd.output().unwrap()
    }

    /// Records a snapshot of a ticker the exchange never listed, closed two windows ago.
    fn record_unknown(&self) {
        let mut w = SnapshotWriter::new(
            self.dir.path().join("data"),
            SeriesTicker::new(SERIES),
            1000,
            WriterOptions::default(),
        )
        .unwrap();
        let (d, b) = (self.window_ms, self.window_start_ms);
        let rec =
            SnapshotRecord::from_book(b - 3 * d + STEP_MS, MarketTicker::new(UNKNOWN), None, None)
                .unwrap()
                .with_close_ts_ms(Some(b - 2 * d));
        w.write(&Line::Snapshot(rec)).unwrap();
        w.close().unwrap();
    }

    fn json(&self, rel: &str) -> Value {
        let p = self.dir.path().join(rel);
        serde_json::from_str(&fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
            .unwrap()
    }
}

/// A working folder with `config/runtime.json` (data in `data/`, outputs in `out/`, keys in
/// `secrets/`, which holds none unless a test writes one).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("config")).unwrap();
    fs::write(
        dir.path().join("config/runtime.json"),
        json!({
            "schema": "runtime/v1",
            "environment": "sim",
            "exchange": {"sim": {
                "rest_base": "http://127.0.0.1:9/trade-api/v2",
                "ws_url": "ws://127.0.0.1:9/trade-api/ws/v2",
                "rate_limit_tier": "basic"
            }},
            "env_file": "secrets/.env",
            "pem_file": "secrets/key.pem",
            "series": SERIES,
            "data_dir": "data",
            "labels_path": "out/labels.json",
            "unresolved_path": "out/unresolved.json",
            "snapshot_ms": 1000
        })
        .to_string(),
    )
    .unwrap();
    dir
}

/// Starts the simulator four windows before the current one (manual clock, seeded) and steps
/// it to just after the current window opened, recording a snapshot of every active market
/// each minute.
fn recorded_session() -> Session {
    let (d, b) = windows();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut c = SimConfig {
        clock: ClockMode::Manual,
        start_ms: Some(b - 4 * d + 5_000),
        warmup_markets: 0,
        rate_limit: RateLimitConfig::unlimited(),
        // Markets settled more than 1.5 windows ago are only historical.
        historical_age_ms: d + d / 2,
        path: PathSpec::RandomWalk {
            start_price: 100_000.0,
            sigma_per_sqrt_s: 9e-5,
            step_ms: 10_000,
        },
        ..SimConfig::default()
    };
    c.engine.seed = 11;
    c.engine.market_duration_ms = d;
    c.engine.listing_lead_ms = d;
    c.engine.requote_interval_ms = STEP_MS;
    c.engine.noise = NoiseConfig {
        takers_per_minute: 0.0,
        ..NoiseConfig::default()
    };
    let sim = rt.block_on(kalshi_sim::spawn(c)).expect("simulator starts");
    let h = sim.handle();
    let dir = workspace();

    let mut w = SnapshotWriter::new(
        dir.path().join("data"),
        SeriesTicker::new(SERIES),
        1000,
        WriterOptions::default(),
    )
    .unwrap();
    let mut recorded = std::collections::BTreeSet::new();
    let end = b + 5_000;
    let mut t = h.now_ms();
    while t <= end {
        h.advance_to(t).unwrap();
        let books = h.with_engine(|e| {
            e.markets()
                .filter(|m| m.status == MarketStatus::Active)
                .map(|m| {
                    let (yes, no) = e.book_levels(m.ticker.as_str()).expect("a book");
                    (m.ticker.clone(), m.close_ms, yes, no)
                })
                .collect::<Vec<_>>()
        });
        for (ticker, close_ms, yes, no) in books {
            // Levels ascend by price: the best bid is the last.
            let rec = SnapshotRecord::from_book(
                t,
                ticker.clone(),
                yes.last().copied(),
                no.last().copied(),
            )
            .unwrap()
            .with_close_ts_ms(Some(close_ms));
            w.write(&Line::Snapshot(rec)).unwrap();
            recorded.insert(ticker);
        }
        t += STEP_MS;
    }
    let summary = w.close().unwrap();
    assert!(summary.files.len() >= 4, "{summary:?}");

    let now = h.now_ms();
    let markets = h.markets();
    let settled: Vec<MarketInfo> = markets
        .iter()
        .filter(|m| m.status == MarketStatus::Finalized)
        .cloned()
        .collect();
    let open = h.active_market().expect("a market still open");
    assert!(open.close_ms > chrono::Utc::now().timestamp_millis() + 10 * 60_000);
    let historical: Vec<MarketTicker> = settled
        .iter()
        .filter(|m| m.settled_ms.is_some_and(|s| s < now - (d + d / 2)))
        .map(|m| m.ticker.clone())
        .collect();
    assert_eq!(settled.len(), 4, "{markets:#?}");
    assert_eq!(historical.len(), 2, "{markets:#?}");
    let mut expect_recorded: std::collections::BTreeSet<MarketTicker> =
        settled.iter().map(|m| m.ticker.clone()).collect();
    expect_recorded.insert(open.ticker.clone());
    assert_eq!(
        recorded, expect_recorded,
        "every settled market and the open one"
    );
    Session {
        rt,
        sim,
        dir,
        settled,
        historical,
        open,
        window_ms: d,
        window_start_ms: b,
    }
}

fn shutdown(s: Session) {
    let Session { rt, sim, .. } = s;
    rt.block_on(sim.shutdown());
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `{ticker: reason}` of an unresolved list.
fn reasons(u: &Value) -> std::collections::BTreeMap<String, String> {
    u["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["ticker"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn labels_exactly_the_settled_markets_and_a_rerun_asks_nothing() {
    let s = recorded_session();
    let h = s.handle();
    // A 429 burst on the first requests: absorbed by the client's backoff.
    h.inject(Fault::HttpStatus {
        status: 429,
        count: 2,
    });
    let before = h.fault_stats();
    let o = s.run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = h.fault_stats();
    let out = stdout(&o);

    // Exactly the settled markets, with the simulator's results.
    let l = s.json("out/labels.json");
    assert_eq!(l["schema"], "labels/v1");
    let labels = l["labels"].as_object().unwrap();
    let got: Vec<&String> = labels.keys().collect();
    let mut want: Vec<String> = s.settled.iter().map(|m| m.ticker.to_string()).collect();
    want.sort();
    assert_eq!(got, want.iter().collect::<Vec<_>>());
    for m in &s.settled {
        let e = &labels[m.ticker.as_str()];
        assert_eq!(
            e["result"],
            m.result.expect("settled").as_str(),
            "{}",
            m.ticker
        );
        assert_eq!(e["source"], "api");
    }
    // The open market is not settled (and was not asked about: it closes later).
    let u = s.json("out/unresolved.json");
    let r = reasons(&u);
    assert_eq!(r.len(), 1, "{u}");
    assert_eq!(r[s.open.ticker.as_str()], "not_settled");

    // Summary: labelled, newly fetched, unresolved by reason, the two tiers.
    assert!(
        out.contains("labels: 4 of 5 snapshot markets labelled, 4 new"),
        "{out}"
    );
    assert!(
        out.contains("fetched 4 label(s) for 4 requested market(s) in 1 call(s); 1 not closed yet"),
        "{out}"
    );
    assert!(out.contains("by reason: not_settled 1"), "{out}");
    assert!(
        out.contains("2 live, 2 historical, 0 not found, 0 unreadable"),
        "{out}"
    );
    // The historical markets came through /historical/markets; the 429s were retried.
    for t in &s.historical {
        assert!(labels.contains_key(t.as_str()), "{t}");
    }
    let delta = |p: &str| after.requests_to(p) - before.requests_to(p);
    assert_eq!(after.http_status_injected - before.http_status_injected, 2);
    assert_eq!(delta("/markets"), 1 + 2, "one lookup, two refused attempts");
    assert_eq!(delta("/historical/markets"), 1);
    assert_eq!(
        after.rest_requests_total() - before.rest_requests_total(),
        4,
        "{:?}",
        after.rest_requests
    );

    // Second run: everything labelled or not due; not one request.
    let o = s.run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let again = h.fault_stats();
    assert_eq!(
        again.rest_requests, after.rest_requests,
        "the second run asked the exchange"
    );
    let out = stdout(&o);
    assert!(
        out.contains("labels: 4 of 5 snapshot markets labelled, 0 new"),
        "{out}"
    );
    assert!(
        out.contains("already known 4; fetched 0 label(s) for 0 requested market(s) in 0 call(s)"),
        "{out}"
    );
    let l2 = s.json("out/labels.json");
    assert_eq!(l2["labels"], l["labels"]);

    // A snapshot of a ticker the exchange never listed: only it is asked about, in both
    // tiers, and it ends up not_found.
    s.record_unknown();
    let o = s.run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let third = h.fault_stats();
    assert_eq!(
        third.requests_to("/markets") - again.requests_to("/markets"),
        1
    );
    assert_eq!(
        third.requests_to("/historical/markets") - again.requests_to("/historical/markets"),
        1
    );
    let out = stdout(&o);
    assert!(
        out.contains(
            "asked about 1 market(s) in 1 /markets and 1 /historical/markets lookup(s): \
             0 live, 0 historical, 1 not found"
        ),
        "{out}"
    );
    assert!(
        out.contains("by reason: not_found 1, not_settled 1"),
        "{out}"
    );
    let r = reasons(&s.json("out/unresolved.json"));
    assert_eq!(r[UNKNOWN], "not_found");
    assert_eq!(r[s.open.ticker.as_str()], "not_settled");
    assert_eq!(s.json("out/labels.json")["labels"], l["labels"]);
    shutdown(s);
}

#[test]
fn a_refused_fetch_exits_1_writes_fetch_failed_and_the_next_run_recovers() {
    let s = recorded_session();
    s.record_unknown();
    let h = s.handle();
    // 403: not retried.
    h.inject(Fault::HttpStatus {
        status: 403,
        count: 1,
    });
    let o = s.run(&["--output", "alt/l.json", "--unresolved-out", "alt/u.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fetching stopped early") && stderr(&o).contains("403"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("fetch error:"), "{}", stdout(&o));
    assert_eq!(h.fault_stats().requests_to("/markets"), 1, "not retried");
    let r = reasons(&s.json("alt/u.json"));
    assert_eq!(r.len(), 6);
    assert_eq!(r[s.open.ticker.as_str()], "not_settled");
    assert_eq!(r.values().filter(|v| *v == "fetch_failed").count(), 5);
    assert!(s.json("alt/l.json")["labels"]
        .as_object()
        .unwrap()
        .is_empty());
    assert!(!s.dir.path().join("out").exists(), "--output elsewhere");

    let o = s.run(&["--output", "alt/l.json", "--unresolved-out", "alt/u.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s.json("alt/l.json")["labels"].as_object().unwrap().len(), 4);
    let r = reasons(&s.json("alt/u.json"));
    assert_eq!(r.len(), 2, "{r:?}");
    shutdown(s);
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the binary without a simulator (`args` as given; `config/runtime.json` is also the
/// default config path).
fn run_plain(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("KALSHI_API_KEY_ID")
        .env_remove("KALSHI_KEY_ID")
        .env_remove("KALSHI_REST_BASE")
        .env_remove("KALSHI_DATA_DIR")
        .output()
        .unwrap()
}

#[test]
fn a_key_file_that_cannot_be_used_exits_2_and_writes_nothing() {
    let dir = workspace();
    let pem = dir.path().join("secrets/key.pem");
    write_mode(&pem, "-----BEGIN RSA PRIVATE KEY-----\n", 0o644);
    let o = run_plain(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("key.pem") && err.contains("chmod 600"),
        "{err}"
    );

    write_mode(&pem, "not a key\n", 0o600);
    let o = run_plain(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("key.pem") && err.contains("not a usable private key"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn bad_invocations_exit_2() {
    let dir = workspace();
    // No snapshot file: nothing is written (an empty labels file would be wrong).
    let o = run_plain(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no snapshot file matches"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out").exists());
    for bad in ["0", "101", "many"] {
        let o = run_plain(dir.path(), &["--batch-size", bad]);
        assert_eq!(o.status.code(), Some(2), "--batch-size {bad}");
        assert!(stderr(&o).contains("--batch-size"), "{}", stderr(&o));
    }
    let o = run_plain(dir.path(), &["--config", "nope.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.json"), "{}", stderr(&o));
    let o = run_plain(dir.path(), &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for flag in [
        "--output",
        "--unresolved-out",
        "--snapshots",
        "--batch-size",
        "--base-url",
        "Exit status",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}
