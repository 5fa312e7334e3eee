//! `kalshi_sim generate`: the files it writes read back cleanly through the pipeline's
//! readers, agree with each other, hide the price path, are byte-identical under a seed, and
//! carry a planted edge exactly when asked to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kalshi_sim::generate::{run, GenerateConfig, GenerateError, GenerateSummary, PriceSource};
use pipeline::schema::markets::read_markets;
use pipeline::schema::{
    fold_latest, read_text_maybe_gz, Decimal, LabelSource, LabelsFile, MarketResult, MarketStatus,
    Outcome,
};
use pipeline::snapshot::{
    load_columnar, ColumnarOptions, Line, MarkerKind, ReadOptions, SnapshotReader,
};
use pipeline::MarketTicker;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `hours` of `minutes`-long markets at 1 s snapshots.
fn small(out: &Path, hours: f64, minutes: i64, seed: u64, edge: f64) -> GenerateConfig {
    let mut c = GenerateConfig::new(out);
    c.days = hours / 24.0;
    c.market_ms = minutes * 60_000;
    c.snapshot_ms = 1000;
    c.requote_ms = 1000;
    c.seed = seed;
    c.planted_edge = edge;
    c
}

/// The snapshot/v1 fields (FORMATS.md §1.1): nothing else may reach the files.
const SNAPSHOT_FIELDS: &[&str] = &[
    "ts_ms",
    "market_ticker",
    "yes_bid",
    "yes_ask",
    "no_bid",
    "no_ask",
    "yes_mid",
    "spread",
    "yes_bid_size",
    "yes_ask_size",
    "yes_bids",
    "no_bids",
    "last_price",
    "volume",
    "close_ts_ms",
    "seq",
];
const MARKER_FIELDS: &[&str] = &["ts_ms", "market_ticker", "event", "reason"];

/// What the files say, after every cross-check between them passed.
struct Checked {
    /// Folded sidecar state per market.
    results: BTreeMap<MarketTicker, Outcome>,
    /// Brier score of the recorded mid against the labels, and the pairs it covers.
    brier_mid: f64,
    pairs: u64,
}

/// Reads everything back with the pipeline's readers and checks the invariants of a
/// generated data set.
fn check_files(cfg: &GenerateConfig, s: &GenerateSummary) -> Checked {
    let files = &s.snapshots.files;
    assert!(!files.is_empty());

    // Streaming reader: zero problems, no unknown fields, counts as the writer reported.
    let mut rd = SnapshotReader::from_paths(files.clone(), ReadOptions::default());
    let (mut snaps, mut markers) = (0u64, 0u64);
    for line in &mut rd {
        match line {
            Line::Snapshot(_) => snaps += 1,
            Line::Marker(m) => {
                assert_eq!(m.event, MarkerKind::Closed, "{m:?}");
                markers += 1;
            }
        }
    }
    let report = rd.into_report();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.problems_total, 0);
    assert!(
        report.unknown_fields().is_empty(),
        "{:?}",
        report.unknown_fields()
    );
    assert_eq!(
        (snaps, markers),
        (s.snapshots.snapshots, s.snapshots.markers)
    );

    // Raw lines carry only snapshot/v1 fields: no fair value, no underlying.
    for f in files {
        let (text, truncated) = read_text_maybe_gz(f).unwrap();
        assert!(!truncated);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object().unwrap();
            let allowed = if obj.contains_key("event") {
                MARKER_FIELDS
            } else {
                SNAPSHOT_FIELDS
            };
            for k in obj.keys() {
                assert!(allowed.contains(&k.as_str()), "field {k:?} in {line}");
            }
        }
    }

    // Sidecar: every market of the span settled with a result.
    let read = read_markets(&s.markets_path).unwrap();
    assert_eq!(read.skipped_partial_line, None);
    assert_eq!(read.records.len(), s.markets_lines);
    let folded = fold_latest(read.records.clone());
    assert_eq!(folded.len(), s.markets);
    let mut results = BTreeMap::new();
    for (t, m) in &folded {
        assert_eq!(m.status, Some(MarketStatus::Finalized), "{t}");
        let outcome = match m.result {
            Some(MarketResult::Yes) => Outcome::Yes,
            Some(MarketResult::No) => Outcome::No,
            ref other => panic!("{t}: result {other:?}"),
        };
        assert_eq!(m.settlement_value, Some(outcome.settlement_price()), "{t}");
        assert!(
            m.floor_strike.is_some() && m.expiration_value.is_some(),
            "{t}"
        );
        let (open, close) = (m.open_time.unwrap(), m.close_time.unwrap());
        assert_eq!(
            (close - open).num_milliseconds(),
            cfg.market_ms,
            "{t}: window"
        );
        assert!(open.timestamp_millis() >= s.start_ms && close.timestamp_millis() <= s.end_ms);
        results.insert(t.clone(), outcome);
    }
    assert_eq!(
        results.values().filter(|o| **o == Outcome::Yes).count(),
        s.yes
    );
    // The lifecycle in order, per market.
    let mut events: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in &read.records {
        events
            .entry(r.ticker.as_str())
            .or_default()
            .push(r.event.as_ref().map_or_else(
                || format!("status:{}", r.status.as_ref().unwrap()),
                |e| e.to_string(),
            ));
    }
    for (t, ev) in &events {
        assert_eq!(
            ev,
            &[
                "created",
                "activated",
                "metadata_updated",
                "status:closed",
                "determined",
                "settled"
            ],
            "{t}"
        );
    }

    // Labels agree with the sidecar.
    let labels = LabelsFile::load(&s.labels_path).unwrap();
    assert_eq!(labels.len(), folded.len());
    for (t, l) in &labels.labels {
        assert_eq!(Some(&l.result), results.get(t), "{t}");
        assert_eq!(l.source, Some(LabelSource::Sim));
        assert_eq!(l.close_time, folded[t].close_time);
    }

    // Columnar: each market has a snapshot at every grid tick of open..close (exclusive),
    // then a `closed` marker at the close.
    let set = load_columnar(files, &ColumnarOptions::default());
    assert!(set.report.is_clean(), "{}", set.report);
    assert_eq!(set.markets.len(), folded.len());
    let step = cfg.snapshot_ms as i64;
    let mut sum = 0.0;
    let mut pairs = 0u64;
    for (t, series) in &set.markets {
        let m = &folded[t];
        let (open, close) = (
            m.open_time.unwrap().timestamp_millis(),
            m.close_time.unwrap().timestamp_millis(),
        );
        assert_eq!(series.len() as i64, (close - open) / step, "{t}");
        for (k, ts) in series.ts_ms.iter().enumerate() {
            assert_eq!(
                *ts,
                open + k as i64 * step,
                "{t}: off the grid or a tick missing"
            );
            assert!(*ts >= open && *ts < close, "{t}: {ts} outside open..close");
        }
        assert_eq!(series.close_ts_ms, Some(close));
        assert_eq!(series.markers.len(), 1, "{t}");
        assert_eq!(
            (series.markers[0].ts_ms, &series.markers[0].kind),
            (close, &MarkerKind::Closed)
        );
        if cfg.depth > 0 {
            assert!(series.ladders.is_some(), "{t}: ladders");
        }
        let y = results[t].value();
        for i in 0..series.len() {
            if let Some(mid) = series.yes_mid(i) {
                sum += (mid.to_prob() - y).powi(2);
                pairs += 1;
            }
        }
    }
    Checked {
        results,
        brier_mid: sum / pairs as f64,
        pairs,
    }
}

#[test]
fn planted_edge_shows_in_the_scores_and_files_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    // One day of 5-minute markets at 1 s snapshots, once without and once with an edge.
    let mut scores = Vec::new();
    for (edge, name) in [(0.0, "edge0"), (0.3, "edge3")] {
        let mut cfg = small(&dir.path().join(name), 24.0, 5, 11, edge);
        cfg.depth = 3;
        let s = run(cfg.clone()).unwrap();
        eprintln!("{}", s.report());
        assert_eq!(s.markets, 288);
        assert_eq!(s.snapshots.snapshots, 288 * 300);
        assert_eq!(s.snapshots.markers, 288);
        assert!(s.trades > 0);
        let c = check_files(&cfg, &s);
        assert_eq!(c.results.len(), 288);
        // The statistic is about the recorded data: recomputed from the files, the mid's
        // Brier score is the one reported.
        assert_eq!(c.pairs, s.stats.all.n);
        assert!(
            (c.brier_mid - s.stats.all.brier_mid).abs() < 1e-9,
            "files {} vs summary {}",
            c.brier_mid,
            s.stats.all.brier_mid
        );
        // Both halves of the YES/NO split occur.
        assert!(s.yes > 100 && s.yes < 188, "yes {}", s.yes);
        scores.push(s.stats);
    }
    let (e0, e3) = (&scores[0], &scores[1]);
    // Same seed, same price path: the fair value scores are those of the same markets.
    assert_eq!(e0.all.markets, e3.all.markets);
    // No edge: the mid tracks fair value to within the tick grid and scores the same.
    assert!(
        e0.all.mean_abs_gap < 0.01,
        "edge 0 |mid − fair| {}",
        e0.all.mean_abs_gap
    );
    assert!(
        e0.all.brier_gap().abs() < 0.001,
        "edge 0 gap {}",
        e0.all.brier_gap()
    );
    assert!(
        (e0.all.log_loss_mid - e0.all.log_loss_fair).abs() < 0.005,
        "edge 0 log loss {} vs {}",
        e0.all.log_loss_mid,
        e0.all.log_loss_fair
    );
    // Edge 0.3: the mid is measurably worse than fair value.
    assert!(
        e3.all.mean_abs_gap > 0.04,
        "edge 0.3 |mid − fair| {}",
        e3.all.mean_abs_gap
    );
    assert!(
        e3.all.brier_gap() > 0.003,
        "edge 0.3 gap {}",
        e3.all.brier_gap()
    );
    assert!(e3.all.brier_gap() > e0.all.brier_gap() + 0.003);
    assert!(e3.all.log_loss_mid > e3.all.log_loss_fair + 0.01);
    // And most of all near the close, where fair value is far from 50¢.
    let last = |e: &kalshi_sim::generate::EdgeStats| e.horizons.last().unwrap().scores;
    assert_eq!(last(e3).markets, 288);
    assert!(last(e3).brier_gap() > 0.005, "{:?}", last(e3));
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let go = |name: &str, seed: u64| {
        let cfg = small(&dir.path().join(name), 1.0, 5, seed, 0.2);
        let s = run(cfg.clone()).unwrap();
        check_files(&cfg, &s);
        s
    };
    let a = go("a", 7);
    let b = go("b", 7);
    let c = go("c", 8);
    let bytes = |s: &GenerateSummary| -> BTreeMap<String, Vec<u8>> {
        let mut all: Vec<PathBuf> = s.snapshots.files.clone();
        all.push(s.markets_path.clone());
        all.push(s.labels_path.clone());
        all.iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(p).unwrap(),
                )
            })
            .collect()
    };
    let (ba, bb, bc) = (bytes(&a), bytes(&b), bytes(&c));
    assert_eq!(ba.len(), 4, "{:?}", ba.keys()); // 2 hourly files, sidecar, labels
    assert!(ba == bb, "same seed, different bytes");
    assert_eq!(a.stats, b.stats);
    let names: BTreeSet<_> = ba.keys().collect();
    assert_eq!(names, bc.keys().collect());
    let snap = ba.keys().find(|k| k.contains(".snap_")).unwrap();
    assert_ne!(ba[snap], bc[snap], "another seed, another book");
}

#[test]
fn bars_fixture_drives_the_price() {
    let dir = tempfile::tempdir().unwrap();
    let mut outs = Vec::new();
    for (name, bridge) in [("bridge", true), ("linear", false)] {
        // 2 hours of 5-minute markets over 30 minutes of bars: the bars loop 4 times.
        let mut cfg = small(&dir.path().join(name), 2.0, 5, 3, 0.0);
        cfg.price = PriceSource::Bars {
            csv: fixture("btc_bars_small.csv"),
            bridge,
        };
        let s = run(cfg.clone()).unwrap();
        assert!(s.price_source.contains("30 bars"), "{}", s.price_source);
        assert!(s.sigma_per_sqrt_s > 1e-5 && s.sigma_per_sqrt_s < 1e-3);
        check_files(&cfg, &s);
        let folded = fold_latest(read_markets(&s.markets_path).unwrap().records);
        let strikes: Vec<Decimal> = folded.values().map(|m| m.floor_strike.unwrap()).collect();
        // The first market opens on the first bar's open; the strikes stay BTC-like.
        let first = folded.values().min_by_key(|m| m.open_time).unwrap();
        assert_eq!(first.floor_strike, Some(Decimal::parse("95000").unwrap()));
        for k in &strikes {
            assert!(k.to_f64() > 80_000.0 && k.to_f64() < 110_000.0, "{k}");
        }
        outs.push(std::fs::read(&s.snapshots.files[0]).unwrap());
    }
    assert_ne!(outs[0], outs[1], "the bridge moves the book between closes");
}

#[test]
fn real_btc_bars_when_shared_data_present() {
    let csv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/btc_spot/binance_btcusdt_1m_2026-02-21_28.csv");
    if !csv.exists() {
        eprintln!(
            "SKIP real_btc_bars_when_shared_data_present: {} absent",
            csv.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small(dir.path(), 2.0, 15, 5, 0.0);
    cfg.price = PriceSource::Bars { csv, bridge: true };
    let s = run(cfg.clone()).unwrap();
    check_files(&cfg, &s);
    assert_eq!(s.markets, 8);
    let folded = fold_latest(read_markets(&s.markets_path).unwrap().records);
    let first = folded.values().min_by_key(|m| m.open_time).unwrap();
    // The file's first open (2026-02-21 14:26 UTC), moved to the start of the run.
    assert_eq!(first.floor_strike, Some(Decimal::parse("68522.3").unwrap()));
}

#[test]
fn refuses_to_overwrite_and_reports_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(&dir.path().join("out"), 0.25, 5, 1, 0.0);
    run(cfg.clone()).unwrap();
    match run(cfg.clone()) {
        Err(GenerateError::Exists(p)) => assert!(p.ends_with("KXBTC15M_markets.jsonl"), "{p:?}"),
        other => panic!("{other:?}"),
    }
    // Snapshot files of the series alone are enough to refuse.
    std::fs::remove_file(dir.path().join("out/KXBTC15M_markets.jsonl")).unwrap();
    std::fs::remove_file(dir.path().join("out/labels.json")).unwrap();
    let e = run(cfg.clone()).unwrap_err().to_string();
    assert!(e.contains(".snap_1000ms.jsonl.gz: already exists"), "{e}");
    // An existing labels file is never replaced.
    let mut other = small(&dir.path().join("fresh"), 0.25, 5, 1, 0.0);
    let labels = dir.path().join("labels.json");
    std::fs::write(&labels, "{}").unwrap();
    other.labels_path = Some(labels.clone());
    assert!(matches!(run(other), Err(GenerateError::Exists(p)) if p == labels));
    assert_eq!(std::fs::read_to_string(&labels).unwrap(), "{}");

    let mut bad = small(&dir.path().join("bad"), 1.0, 5, 1, 1.5);
    bad.snapshot_ms = 7_000;
    bad.requote_ms = 0;
    let e = run(bad).unwrap_err().to_string();
    for want in ["multiple of snapshot_ms", "requote_ms", "planted_edge"] {
        assert!(e.contains(want), "{e}");
    }
    assert!(
        !dir.path().join("bad").exists(),
        "nothing written for bad settings"
    );

    let mut missing = small(&dir.path().join("m"), 1.0, 5, 1, 0.0);
    missing.price = PriceSource::Bars {
        csv: dir.path().join("nope.csv"),
        bridge: true,
    };
    let e = run(missing).unwrap_err().to_string();
    assert!(e.contains("nope.csv: cannot read"), "{e}");
}

#[test]
fn cli_generate_prints_the_scores() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cli");
    let bin = env!("CARGO_BIN_EXE_kalshi_sim");
    let o = std::process::Command::new(bin)
        .args(["generate", "--out-dir"])
        .arg(&out)
        .args([
            "--series",
            "KXTEST",
            "--days",
            "0.0625",
            "--snapshot-ms",
            "1000",
            "--market-minutes",
            "5",
            "--seed",
            "4",
            "--planted-edge",
            "0.3",
            "--depth",
            "2",
            "--price-csv",
        ])
        .arg(fixture("btc_bars_small.csv"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("generated 18 markets of KXTEST"),
        "{stdout}"
    );
    assert!(
        stdout.contains("brier_fair") && stdout.contains("all snapshots"),
        "{stdout}"
    );
    assert!(out.join("KXTEST_markets.jsonl").exists());
    assert!(out.join("labels.json").exists());

    let o = std::process::Command::new(bin)
        .args(["generate", "--out-dir"])
        .arg(dir.path().join("bad"))
        .args(["--start", "yesterday", "--planted-edge", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--start \"yesterday\""), "{err}");
}
