//! Parity: what `run_live` decided live (dry-run, the built-in `rnn_edge_v1` with streaming
//! inference) against what the replay decides on the re-grid of the capture of the same
//! session, at the same grid instants.

mod common;

use common::*;
use market_data::book::NoPriceConvention;
use market_data::recorder::{regrid, RegridConfig};
use pipeline::schema::markets::markets_path;
use pipeline::snapshot::resolve_glob;
use pipeline::SeriesTicker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_decisions_equal_the_replay_of_the_regridded_capture() {
    let s = start(sim_config(51, 10_000, vec![])).await;
    let series = SeriesTicker::from(SERIES);
    let path = relaxed_untrained(&s.root.join("model"));
    let strategy = path.display().to_string();
    let done = run_to_end(
        &s.config,
        &["--strategy", &strategy, "--duration", "25", "--capture"],
    )
    .await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    let j = journal(&s.live_dir);
    let live = journal_decisions(&j);
    assert!(live.len() >= 15, "only {} live decisions", live.len());

    // The same session's capture, re-gridded offline, replayed through a fresh strategy.
    let data = s.live_dir.join("data");
    let captures = resolve_glob(&format!("{}/*.capture.jsonl.gz", data.display())).unwrap();
    assert!(!captures.is_empty());
    let out = s.root.join("regrid");
    let mut rc = RegridConfig::new(captures, out.clone());
    rc.markets = Some(markets_path(&data, &series));
    rc.depth = 10;
    rc.convention = NoPriceConvention::YesScale;
    regrid(&rc).unwrap();
    let (replayed, result) = replay_decisions(&path, snapshot_lines(&out));

    let mut same = 0;
    let mut differ = Vec::new();
    let mut missing = Vec::new();
    for (k, (p, a)) in &live {
        match replayed.get(k) {
            Some((q, b)) if (p - q).abs() < 1e-9 && a == b => same += 1,
            Some(other) => differ.push((k.clone(), (*p, a.clone()), other.clone())),
            None => missing.push(k.clone()),
        }
    }
    let share = same as f64 / live.len() as f64;
    eprintln!(
        "parity: {} live decisions, {same} equal in the replay ({:.1}%), {} differ, {} absent; \
         replay made {}; live actions {}",
        live.len(),
        share * 100.0,
        differ.len(),
        missing.len(),
        replayed.len(),
        live.values().filter(|v| v.1.is_some()).count()
    );
    for d in differ.iter().take(5) {
        eprintln!("  differs: {d:?}");
    }
    for m in missing.iter().take(5) {
        eprintln!("  absent from the replay: {m:?}");
    }
    assert!(
        share >= 0.95,
        "only {:.1}% of decisions agree",
        share * 100.0
    );

    // Orders and fills, from the same decisions and the same books: equal too (the re-grid
    // may run a little past the live session's last row).
    let last_live = live.keys().map(|k| k.1).max().unwrap();
    let key = |m: &str, t: i64, side: &str, c: &str, p: &str| format!("{m} {t} {side} {c} @{p}");
    let live_orders: Vec<String> = of_type(&j, "order")
        .iter()
        .map(|o| {
            key(
                o["market"].as_str().unwrap(),
                o["decision_ts_ms"].as_i64().unwrap(),
                o["side"].as_str().unwrap(),
                o["count"].as_str().unwrap(),
                o["limit"].as_str().unwrap(),
            )
        })
        .collect();
    let replay_orders: Vec<String> = result
        .journal
        .orders
        .iter()
        .filter(|o| o.decision_ts_ms <= last_live)
        .map(|o| {
            key(
                o.market.as_str(),
                o.decision_ts_ms,
                o.side.as_str(),
                &o.count.to_fp_string(),
                &o.limit.to_dollars(),
            )
        })
        .collect();
    let live_fills: Vec<String> = of_type(&j, "fill")
        .iter()
        .map(|f| {
            key(
                f["market"].as_str().unwrap(),
                f["ts_ms"].as_i64().unwrap(),
                f["side"].as_str().unwrap(),
                f["count"].as_str().unwrap(),
                f["price"].as_str().unwrap(),
            )
        })
        .collect();
    let replay_fills: Vec<String> = result
        .journal
        .fills
        .iter()
        .map(|f| {
            key(
                f.market.as_str(),
                f.ts_ms,
                f.side.as_str(),
                &f.count.to_fp_string(),
                &f.price.to_dollars(),
            )
        })
        .collect();
    eprintln!(
        "parity: orders live {} replay {}, fills live {} replay {}",
        live_orders.len(),
        replay_orders.len(),
        live_fills.len(),
        replay_fills.len()
    );
    assert!(!live_orders.is_empty());
    assert_eq!(live_orders, replay_orders);
    let n = live_fills.len();
    assert_eq!(live_fills[..], replay_fills[..n.min(replay_fills.len())]);
}
