//! The built-in strategy end to end, causality, and the report: fees and P&L reconcile to the
//! cent with an independent recomputation from the fill log; verdicts; in-sample flags; the
//! HTML page is self-contained.

mod common;

use std::collections::BTreeMap;

use common::*;
use pipeline::money::{FeeMultiplier, Money};
use pipeline::schema::Outcome;
use pipeline::snapshot::Line;
use pipeline::MarketTicker;
use strategy::features::{FeatureConfig, Normalizer};
use strategy::replay::{replay, ReplayConfig, ReplayResult};
use strategy::report::{build_report, FoldInput, ReportOptions, Verdict};
use strategy::{RnnEdge, Side};

fn rnn(shift: f64) -> RnnEdge {
    RnnEdge::new(
        FeatureConfig::default(),
        Normalizer::from_specs(&identity_specs()).unwrap(),
        Box::new(MidModel { shift }),
        signals(),
        execution(5),
        FeeMultiplier::ONE,
    )
}

fn run_rnn(
    shift: f64,
    lines: Vec<Line>,
    labels: &BTreeMap<MarketTicker, Outcome>,
    cfg: ReplayConfig,
) -> ReplayResult {
    let risk = pipeline::schema::strategy::Risk {
        cooldown_s: 20,
        ..loose_risk()
    };
    replay(
        rnn(shift),
        &risk,
        &execution(5),
        cfg,
        labels,
        &BTreeMap::new(),
        lines,
    )
    .unwrap()
    .0
}

fn all(labels: &BTreeMap<MarketTicker, Outcome>, o: Outcome) -> BTreeMap<MarketTicker, Outcome> {
    labels.keys().map(|k| (k.clone(), o)).collect()
}

#[test]
fn rnn_edge_buys_the_side_the_model_favours_and_records_every_step() {
    let (lines, labels) = generated(3, 120, 60, T0);
    let rows = lines
        .iter()
        .filter(|l| matches!(l, Line::Snapshot(_)))
        .count();
    let r = run_rnn(0.10, lines, &labels, ReplayConfig::default());
    let j = &r.journal;
    // One step per second per market; every step is recorded with model p and mid.
    assert_eq!(j.decisions.len(), rows);
    for d in &j.decisions {
        assert!((d.model_p - (d.mid + 0.10)).abs() < 1e-6, "{d:?}");
    }
    assert!(!j.orders.is_empty());
    for o in &j.orders {
        assert_eq!(o.side, Side::Yes);
        assert_eq!(o.count, n(5));
        assert!(o.limit <= signals().max_price);
        assert!(o.model_p.is_some() && o.mid.is_some());
    }
    // Shifted the other way, only NO is bought.
    let (lines, labels) = generated(3, 120, 60, T0);
    let r = run_rnn(-0.10, lines, &labels, ReplayConfig::default());
    assert!(!r.journal.orders.is_empty());
    assert!(r.journal.orders.iter().all(|o| o.side == Side::No));
    // A model that agrees with the mid has no edge after spread and fee.
    let (lines, labels) = generated(3, 120, 60, T0);
    let r = run_rnn(0.0, lines, &labels, ReplayConfig::default());
    assert!(r.journal.orders.is_empty());
}

#[test]
fn decision_at_t_does_not_depend_on_rows_after_t() {
    let (lines, labels) = generated(3, 200, 50, T0);
    let cut = T0 + 120_000;
    let changed: Vec<Line> = lines
        .iter()
        .cloned()
        .map(|l| match l {
            Line::Snapshot(r) if r.ts_ms > cut => {
                let bid = 100 - r.yes_bid.unwrap().whole_cents().unwrap() - 5;
                row(
                    r.market_ticker.as_str(),
                    r.ts_ms,
                    bid,
                    3,
                    bid + 3,
                    1,
                    r.close_ts_ms.unwrap(),
                )
            }
            l => l,
        })
        .collect();
    let a = run_rnn(0.08, lines, &labels, ReplayConfig::default());
    let b = run_rnn(0.08, changed, &labels, ReplayConfig::default());
    let upto = |r: &ReplayResult| {
        (
            r.journal
                .decisions
                .iter()
                .filter(|d| d.ts_ms <= cut)
                .cloned()
                .collect::<Vec<_>>(),
            r.journal
                .orders
                .iter()
                .filter(|o| o.decision_ts_ms <= cut)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let (da, oa) = upto(&a);
    let (db, ob) = upto(&b);
    assert!(!da.is_empty() && !oa.is_empty());
    assert_eq!(da, db);
    assert_eq!(oa, ob);
    // The change after T did change what came after, so the test could have failed.
    assert_ne!(a.journal.decisions, b.journal.decisions);
}

/// Kalshi's taker fee from the formula, in exact integers by another route:
/// ceil(0.07 × C × P × (1 − P) × mult) cents with C in centi-contracts, P in micro-dollars.
fn independent_fee(centis: i64, p: i64, mult_num: u128, mult_den: u128) -> Money {
    let num = 7 * mult_num * centis as u128 * p as u128 * (1_000_000 - p) as u128;
    let den = 100_000_000_000_000u128 * mult_den;
    Money::from_cents(num.div_ceil(den) as i64)
}

#[test]
fn fees_and_pnl_reconcile_to_the_cent_with_the_fill_log() {
    let (lines, labels) = generated(8, 300, 45, T0);
    let lines_again = lines.clone();
    let main = run_rnn(0.09, lines.clone(), &labels, ReplayConfig::default());
    let late = run_rnn(
        0.09,
        lines,
        &labels,
        ReplayConfig {
            latency: strategy::Latency::default().one_more_step(),
            ..ReplayConfig::default()
        },
    );
    // replay_fold runs the same two replays.
    let risk = pipeline::schema::strategy::Risk {
        cooldown_s: 20,
        ..loose_risk()
    };
    let folded = strategy::replay_fold(
        "f1",
        false,
        || rnn(0.09),
        &risk,
        &execution(5),
        ReplayConfig::default(),
        &labels,
        &BTreeMap::new(),
        || lines_again.clone(),
    )
    .unwrap();
    assert_eq!(folded.main, main);
    assert_eq!(folded.extra_latency.as_ref(), Some(&late));
    let fills = main.journal.fills.clone();
    assert!(fills.len() > 20, "{} fills", fills.len());
    let report = build_report(
        "t",
        &[FoldInput {
            name: "f1".into(),
            in_sample: false,
            main,
            extra_latency: Some(late),
            notes: Vec::new(),
        }],
        &ReportOptions::default(),
    );

    // Independently, from the fill log and the labels only.
    let (mut gross, mut fees, mut fees15) = (Money::ZERO, Money::ZERO, Money::ZERO);
    let mut trades = std::collections::BTreeSet::new();
    for f in &fills {
        let (centis, p) = (f.count.centis(), f.price.micros());
        let fee = independent_fee(centis, p, 1, 1);
        assert_eq!(f.fee, fee, "{f:?}");
        fees += fee;
        fees15 += independent_fee(centis, p, 3, 2);
        let won = matches!(
            (labels[&f.market], f.side),
            (Outcome::Yes, Side::Yes) | (Outcome::No, Side::No)
        );
        let payout = if won { centis * 10_000 } else { 0 };
        gross += Money::from_micros(payout - p * centis / 100);
        trades.insert(f.order_id);
    }
    for s in [&report.folds[0], &report.overall] {
        let p = &s.pnl;
        assert_eq!(p.fees, fees);
        assert_eq!(p.gross, gross);
        assert_eq!(p.net, gross - fees);
        assert_eq!(p.trades, trades.len() as u64);
        assert_eq!(s.robustness[0].fees, fees15);
        assert_eq!(s.robustness[0].net, gross - fees15);
        assert_eq!(s.robustness[1].name, "latency + 1 step");
    }
    // The equity curve ends at the net P&L.
    assert_eq!(report.overall.equity.last().unwrap().equity, gross - fees);
}

fn fold(name: &str, in_sample: bool, main: ReplayResult, late: ReplayResult) -> FoldInput {
    FoldInput {
        name: name.into(),
        in_sample,
        main,
        extra_latency: Some(late),
        notes: Vec::new(),
    }
}

#[test]
fn verdicts_no_edge_edge_and_fragile() {
    let (lines, labels) = generated(8, 300, 45, T0);
    let cfg = ReplayConfig::default();
    let mixed = run_rnn(0.09, lines.clone(), &labels, cfg);
    let wins = run_rnn(0.09, lines.clone(), &all(&labels, Outcome::Yes), cfg);
    let losses = run_rnn(0.09, lines, &all(&labels, Outcome::No), cfg);
    let opts = ReportOptions::default();

    let r = build_report("t", &[fold("a", false, mixed.clone(), mixed)], &opts);
    assert_eq!(r.overall.verdict, Verdict::NoEdgeShown);
    assert!(
        r.overall
            .summary
            .iter()
            .any(|l| l.contains("No edge shown")),
        "{:?}",
        r.overall.summary
    );

    let r = build_report("t", &[fold("a", false, wins.clone(), wins.clone())], &opts);
    assert_eq!(r.overall.verdict, Verdict::Edge);

    let r = build_report("t", &[fold("a", false, wins, losses.clone())], &opts);
    assert_eq!(r.overall.verdict, Verdict::Fragile);
    assert!(r
        .overall
        .summary
        .iter()
        .any(|l| l.contains("Fragile") && l.contains("latency")));

    let r = build_report("t", &[fold("a", false, losses.clone(), losses)], &opts);
    assert_eq!(r.overall.verdict, Verdict::Loses);
}

#[test]
fn in_sample_folds_are_flagged_on_every_line_and_the_page_is_self_contained() {
    let (lines, labels) = generated(6, 300, 45, T0);
    let cfg = ReplayConfig::default();
    let a = run_rnn(0.09, lines.clone(), &labels, cfg);
    let b = run_rnn(0.09, lines, &labels, cfg);
    let r = build_report(
        "kxt",
        &[
            fold("fold 1", true, a.clone(), a),
            fold("fold 2", false, b.clone(), b),
        ],
        &ReportOptions::default(),
    );
    assert!(r.in_sample && r.overall.in_sample);
    for s in [&r.folds[0], &r.overall] {
        assert!(
            s.summary.iter().all(|l| l.starts_with("[in-sample]")),
            "{:?}",
            s.summary
        );
        assert!(s.robustness.iter().all(|x| x.in_sample));
    }
    assert!(r.folds[1].summary.iter().all(|l| !l.contains("in-sample")));
    let mvm = r.overall.model_vs_mid.as_ref().unwrap();
    assert!(mvm.steps > 0 && mvm.brier_model.is_finite() && mvm.brier_mid.is_finite());

    let json: serde_json::Value = serde_json::from_str(&r.to_json_pretty()).unwrap();
    assert_eq!(json["schema"], "strategy-report/v1");
    assert_eq!(json["folds"][0]["in_sample"], true);
    assert!(
        json["overall"]["pnl"]["net"].is_string(),
        "money is a dollar string"
    );

    let html = strategy::html::render(&r);
    for bad in ["<script", "src=", "href=", "url(", "@import"] {
        assert!(!html.contains(bad), "external resource or script: {bad}");
    }
    assert!(html.matches("<svg").count() >= 4);
    assert!(html.contains("IN-SAMPLE"));
}

#[test]
fn empty_report_says_no_trades() {
    let (lines, labels) = generated(2, 60, 30, T0);
    let a = run_rnn(0.0, lines, &labels, ReplayConfig::default());
    let r = build_report(
        "t",
        &[fold("a", false, a.clone(), a)],
        &ReportOptions::default(),
    );
    assert_eq!(r.overall.verdict, Verdict::NoTrades);
    assert!(r
        .overall
        .summary
        .iter()
        .any(|l| l.contains("no edge shown")));
    let _ = strategy::html::render(&r);
    let _ = r.to_json_pretty();
}

#[test]
fn report_writes_json_and_the_page_beside_it() {
    let (lines, labels) = generated(2, 120, 30, T0);
    let a = run_rnn(0.09, lines, &labels, ReplayConfig::default());
    let r = build_report(
        "t",
        &[fold("a", false, a.clone(), a)],
        &ReportOptions::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval.json");
    let page = r.write(&out).unwrap();
    assert_eq!(page, dir.path().join("eval.html"));
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(back["strategy"], "t");
    assert!(std::fs::read_to_string(&page)
        .unwrap()
        .starts_with("<!doctype html>"));
    assert!(r.write(&dir.path().join("x.html")).is_err());
}

#[test]
fn a_strategy_file_builds_rnn_edge_or_names_the_bad_field() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/strategy.example.json"
    );
    let mut file = pipeline::schema::Strategy::load(std::path::Path::new(path)).unwrap();
    // The example lists the feature set: it builds.
    assert!(
        RnnEdge::from_strategy(&file, Box::new(MidModel { shift: 0.0 }), FeeMultiplier::ONE)
            .is_ok()
    );
    // A feature the feature set does not have is named as such.
    file.model.as_mut().unwrap().features[1].name = "seconds_to_close_frac".into();
    let err = RnnEdge::from_strategy(&file, Box::new(MidModel { shift: 0.0 }), FeeMultiplier::ONE)
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("model.features"), "{err}");
    file.model = None;
    let err = RnnEdge::from_strategy(&file, Box::new(MidModel { shift: 0.0 }), FeeMultiplier::ONE)
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("model"), "{err}");
}

#[test]
fn replay_from_snapshot_files_equals_replay_from_memory() {
    use pipeline::snapshot::{ReadOptions, SnapshotReader, SnapshotWriter, WriterOptions};
    // 15-minute markets back to back over 90 minutes: two hourly files, and the `closed`
    // marker at the top of the hour lands in the next file.
    let (lines, labels) = generated(6, 900, 900, T0);
    let dir = tempfile::tempdir().unwrap();
    let mut w = SnapshotWriter::new(
        dir.path(),
        pipeline::SeriesTicker::from("KXT"),
        1000,
        WriterOptions::default(),
    )
    .unwrap();
    for l in &lines {
        w.write(l).unwrap();
    }
    w.close().unwrap();
    let pattern = format!("{}/*.snap_1000ms.jsonl.gz", dir.path().display());
    let mut reader = SnapshotReader::from_glob(&pattern, ReadOptions::default()).unwrap();
    assert!(reader.files().len() >= 2, "{:?}", reader.files());
    let from_files = run_rnn(
        0.09,
        (&mut reader).collect(),
        &labels,
        ReplayConfig::default(),
    );
    assert!(reader.report().is_clean());
    let from_memory = run_rnn(0.09, lines.clone(), &labels, ReplayConfig::default());
    // A boxed strategy behaves the same.
    let boxed: Box<dyn strategy::Strategy> = Box::new(rnn(0.09));
    let risk = pipeline::schema::strategy::Risk {
        cooldown_s: 20,
        ..loose_risk()
    };
    let (from_box, _) = replay(
        boxed,
        &risk,
        &execution(5),
        ReplayConfig::default(),
        &labels,
        &BTreeMap::new(),
        lines,
    )
    .unwrap();
    assert_eq!(from_box, from_memory);
    assert!(!from_memory.journal.fills.is_empty());
    assert_eq!(from_files, from_memory);
}

/// A test-only model that knows each market's outcome: it certainly adds information beyond
/// the price.
struct Oracle(BTreeMap<MarketTicker, Outcome>);

impl strategy::features::EdgeModel for Oracle {
    fn step(&mut self, market: &MarketTicker, x: &[f32], _reset: bool) -> f64 {
        let tilt = if self.0[market] == Outcome::Yes {
            0.1
        } else {
            -0.1
        };
        (f64::from(x[0]) + tilt).clamp(0.01, 0.99)
    }
    fn forget(&mut self, _market: &MarketTicker) {}
}

#[test]
fn the_regression_sees_information_beyond_the_price_only_when_there_is_some() {
    let (lines, labels) = generated(8, 300, 45, T0);
    let oracle = RnnEdge::new(
        FeatureConfig::default(),
        Normalizer::from_specs(&identity_specs()).unwrap(),
        Box::new(Oracle(labels.clone())),
        signals(),
        execution(5),
        FeeMultiplier::ONE,
    );
    let (a, _) = replay(
        oracle,
        &loose_risk(),
        &execution(5),
        ReplayConfig::default(),
        &labels,
        &BTreeMap::new(),
        lines.clone(),
    )
    .unwrap();
    let r = build_report(
        "t",
        &[fold("a", false, a.clone(), a)],
        &ReportOptions::default(),
    );
    let m = r.overall.model_vs_mid.as_ref().unwrap();
    assert_eq!(m.adds_information, Some(true), "{:?}", m.beyond_price);
    assert!(m.brier_model < m.brier_mid);
    assert!(r
        .overall
        .summary
        .iter()
        .any(|l| l.contains("adds information")));
    // A constant shift of the mid carries no information: not estimable apart from the
    // intercept, and never claimed.
    let b = run_rnn(0.09, lines, &labels, ReplayConfig::default());
    let r = build_report(
        "t",
        &[fold("b", false, b.clone(), b)],
        &ReportOptions::default(),
    );
    let m = r.overall.model_vs_mid.as_ref().unwrap();
    assert_ne!(m.adds_information, Some(true), "{:?}", m.beyond_price);
}
