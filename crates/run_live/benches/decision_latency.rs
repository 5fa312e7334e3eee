//! Live decision latency per grid row: what `run_live` does between a row arriving from the
//! recorder and its order (if any) being handed to the venue — the dry-run venue's execution
//! step, the feature update, the LSTM step (every `step_ms`, here 1 s = every 10th row of a
//! market), the signals and the risk gate — and the same plus the journal write (the whole
//! engine step). One thread, as live.
//!
//!     cargo bench -p run_live --bench decision_latency
//!
//! Input: `DECISION_BENCH_MARKETS` markets (default 4) open together for 15 minutes at 100 ms,
//! a seeded random walk of the mid with a 10-level ladder per side; the network is the
//! default training shape (hidden 32, one layer), seeded and untrained (its weights do not
//! change its cost). Prints p50/p99/max in µs and writes
//! `target/bench-results/decision_latency.json`. Goal: p99 ≤ 1 ms.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pipeline::money::FeeMultiplier;
use pipeline::schema::strategy::Strategy as StrategyFile;
use pipeline::snapshot::Line;
use pipeline::SeriesTicker;
use rand::{Rng, SeedableRng};
use run_live::engine::{Engine, EngineConfig};
use run_live::journal::JournalWriter;
use strategy::{ReplayConfig, ReplayVenue, RnnEdge, Runtime};

/// On the 15-minute grid.
const T0: i64 = 1_790_000_100_000;

fn rows(markets: usize) -> Vec<Line> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut mids: Vec<f64> = vec![50.0; markets];
    let mut out = Vec::new();
    for step in 0..9_000i64 {
        let ts = T0 + step * 100;
        for (m, mid) in mids.iter_mut().enumerate() {
            *mid = (*mid + rng.gen_range(-0.6..0.6)).clamp(13.0, 87.0);
            let bid = mid.floor() as i64;
            let ask = bid + rng.gen_range(1..4);
            let ys: Vec<i64> = (0..10).map(|_| rng.gen_range(10..400)).collect();
            let ns: Vec<i64> = (0..10).map(|_| rng.gen_range(10..400)).collect();
            let yes: Vec<String> = (0..10)
                .map(|i| format!("[{},{}]", bid - i as i64, ys[i]))
                .collect();
            let no: Vec<String> = (0..10)
                .map(|i| format!("[{},{}]", 100 - ask - i as i64, ns[i]))
                .collect();
            let text = format!(
                r#"{{"ts_ms":{ts},"market_ticker":"KXBTC15M-BENCH-{m}","yes_bid":{bid},"yes_ask":{ask},"no_bid":{},"no_ask":{},"yes_mid":{},"spread":{},"yes_bid_size":{},"yes_ask_size":{},"volume":0,"close_ts_ms":{},"yes_bids":[{}],"no_bids":[{}]}}"#,
                100 - ask,
                100 - bid,
                (bid + ask) as f64 / 2.0,
                ask - bid,
                ys[0],
                ns[0],
                T0 + 900_000,
                yes.join(","),
                no.join(",")
            );
            out.push(Line::from_json(&text).expect("bench row"));
        }
    }
    out
}

fn pct(v: &mut [u64], q: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let markets: usize = std::env::var("DECISION_BENCH_MARKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let path =
        edge_model::trainer::untrained_strategy(dir.path(), &SeriesTicker::from("KXBTC15M"), 32, 1)
            .unwrap();
    let file = StrategyFile::load(&path).unwrap();
    let lines = rows(markets);
    let make = || {
        let (model, _) = edge_model::LstmEdgeModel::load(&file).unwrap();
        let rnn = RnnEdge::from_strategy(&file, Box::new(model), FeeMultiplier::ONE).unwrap();
        Runtime::new(
            Box::new(rnn) as Box<dyn strategy::Strategy>,
            file.risk.clone(),
            file.execution.clone(),
            FeeMultiplier::ONE,
        )
    };

    // The runtime step alone.
    let mut rt = make();
    let mut venue = ReplayVenue::new(ReplayConfig::default(), Default::default());
    let mut clock = strategy::venue::ManualClock::default();
    let (mut all, mut with_model) = (Vec::with_capacity(lines.len()), Vec::new());
    let mut orders = 0;
    for l in &lines {
        clock.set(l.ts_ms());
        let t = Instant::now();
        venue.observe(l);
        rt.on_line(l, &clock, &mut venue);
        let ns = t.elapsed().as_nanos() as u64;
        let j = rt.drain_journal();
        orders += j.orders.len();
        all.push(ns);
        if !j.decisions.is_empty() {
            with_model.push(ns);
        }
    }
    // The whole engine step, journal included.
    let journal = Arc::new(Mutex::new(JournalWriter::open(dir.path()).unwrap()));
    let cfg = EngineConfig {
        stale_ms: i64::MAX / 4,
        kill_file: dir.path().join("KILL"),
        risk: file.risk.clone(),
    };
    let mut engine = Engine::new(
        make(),
        ReplayVenue::new(ReplayConfig::default(), Default::default()),
        journal,
        cfg,
    );
    let mut eng = Vec::with_capacity(lines.len());
    for l in &lines {
        let t = Instant::now();
        engine.on_lines(std::slice::from_ref(l), l.ts_ms()).unwrap();
        eng.push(t.elapsed().as_nanos() as u64);
    }
    let us = |n: u64| n as f64 / 1000.0;
    let summary = |name: &str, v: &mut Vec<u64>| {
        let (p50, p99, max) = (pct(v, 0.5), pct(v, 0.99), *v.iter().max().unwrap());
        println!(
            "{name:<44} n={:>6}  p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs",
            v.len(),
            us(p50),
            us(p99),
            us(max)
        );
        serde_json::json!({"rows": v.len(), "p50_us": us(p50), "p99_us": us(p99), "max_us": us(max)})
    };
    println!("decision latency, {markets} markets × 9000 rows at 100 ms, hidden 32, one thread ({orders} orders)");
    let a = summary("runtime step, every row", &mut all);
    let m = summary("runtime step, rows with an LSTM step", &mut with_model);
    let e = summary("engine step (runtime + journal), every row", &mut eng);
    let goal = a["p99_us"].as_f64().unwrap() <= 1000.0;
    println!("goal p99 ≤ 1 ms: {}", if goal { "met" } else { "NOT met" });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    let doc = serde_json::json!({"bench": "decision_latency", "markets": markets, "runtime_all_rows": a,
        "runtime_model_rows": m, "engine_all_rows": e, "orders": orders, "goal_p99_us": 1000});
    std::fs::write(
        out.join("decision_latency.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
}
