//! `evaluate_strategy` end to end on small generated histories: a planted edge shows up out of
//! sample in walk-forward and fixed mode, its absence does not; in-sample markets are refused
//! or flagged; folds never see their test markets; bad input exits 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{evaluate, ok, report};

use edge_model::train::TrainConfig;
use edge_model::trainer::{self, TrainOptions};
use evaluate_strategy::{fold_normalisation, walk_forward_folds};
use kalshi_sim::generate::{self, GenerateConfig};
use pipeline::dataset::{self, BuildOptions, SplitFractions};
use pipeline::features::Normalizer;
use pipeline::schema::labels::LabelsFile;
use pipeline::snapshot::resolve_glob;

/// Two-minute markets, 500 ms rows, a 3-level ladder: 360 markets in half a day.
fn history(dir: &Path, days: f64, edge: f64, seed: u64) -> PathBuf {
    let mut cfg = GenerateConfig::new(dir);
    cfg.days = days;
    cfg.market_ms = 120_000;
    cfg.snapshot_ms = 500;
    cfg.requote_ms = 500;
    cfg.depth = 3;
    cfg.planted_edge = edge;
    cfg.seed = seed;
    generate::run(cfg).expect("generate");
    dir.to_path_buf()
}

fn snaps(dir: &Path) -> String {
    dir.join("*.snap_*ms.jsonl.gz").display().to_string()
}

/// Trains a strategy on the first 70% + 15% of the markets (the library train_edge_rnn runs).
fn train(data: &Path, outdir: &Path) -> PathBuf {
    tch::set_num_threads(1);
    let out = trainer::run(
        &TrainOptions {
            snapshots: snaps(data),
            labels: data.join("labels.json"),
            outdir: outdir.to_path_buf(),
            device: pipeline::schema::strategy::Device::Cpu,
            force: false,
            step_ms: 1000,
            min_steps: 30,
            split: SplitFractions::default(),
            threads: 1,
            train: TrainConfig {
                epochs: 6,
                hidden: 16,
                window: 60,
                batch: 16,
                lr: 0.01,
                seed: 7,
                patience: 3,
                ..TrainConfig::default()
            },
            series: "KXBTC15M".into(),
        },
        &mut (),
    )
    .expect("train");
    out.strategy_path
}

fn fails(o: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in: {stderr}");
}

const WALK: &[&str] = &[
    "--mode",
    "walkforward",
    "--train-markets",
    "120",
    "--test-markets",
    "60",
    "--step-markets",
    "60",
    "--epochs",
    "4",
    "--jobs",
    "2",
];

#[test]
fn a_planted_edge_pays_out_of_sample_and_in_sample_markets_are_refused_or_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = history(&tmp.path().join("gen"), 0.5, 0.8, 3);
    let strategy = train(&data, &tmp.path().join("model"));

    // Walk-forward: four folds, each trained on earlier markets only.
    let wf = tmp.path().join("reports/wf.json");
    let stdout = ok(&evaluate(&data, &strategy, &wf, WALK));
    eprintln!("{stdout}");
    let r = report(&wf);
    assert_eq!(r["folds"].as_array().unwrap().len(), 4, "{stdout}");
    // Each fold chose its signals on its own validation markets (the last 18 of its 120
    // training markets), never on its test markets, and says which.
    for f in r["folds"].as_array().unwrap() {
        let first = f["summary"][0].as_str().unwrap();
        assert!(
            first.contains("signals chosen on its 18 validation markets"),
            "{first}"
        );
    }
    let overall = &r["overall"];
    // Net P&L per market positive with its interval above zero (the fee stress may still make
    // it fragile: that verdict is the report's to give).
    assert!(
        overall["pnl"]["per_market"]["lo"].as_f64().unwrap() > 0.0,
        "{stdout}"
    );
    assert!(
        overall["verdict"] == "edge" || overall["verdict"] == "fragile",
        "{stdout}"
    );
    assert!(wf.with_extension("html").exists());
    assert!(stdout.contains("verdict: "), "{stdout}");

    // Fixed on the training run's own test split (after its data_end): allowed.
    let fx = tmp.path().join("reports/fixed.json");
    let stdout = ok(&evaluate(
        &data,
        &strategy,
        &fx,
        &["--mode", "fixed", "--test-frac", "0.15"],
    ));
    assert_eq!(report(&fx)["in_sample"], false, "{stdout}");

    // Half the markets reach back into the training span: refused, or flagged when allowed.
    let half = tmp.path().join("reports/half.json");
    fails(
        &evaluate(
            &data,
            &strategy,
            &half,
            &["--mode", "fixed", "--test-frac", "0.5"],
        ),
        "inside the strategy's training span",
    );
    assert!(!half.exists());
    ok(&evaluate(
        &data,
        &strategy,
        &half,
        &["--mode", "fixed", "--test-frac", "0.5", "--allow-overlap"],
    ));
    let r = report(&half);
    assert_eq!(r["in_sample"], true);
    for line in r["overall"]["summary"].as_array().unwrap() {
        assert!(line.as_str().unwrap().starts_with("[in-sample]"), "{line}");
    }
}

#[test]
fn no_planted_edge_shows_no_edge_in_walk_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let data = history(&tmp.path().join("gen"), 0.5, 0.0, 4);
    let strategy = train(&data, &tmp.path().join("model"));
    let wf = tmp.path().join("wf.json");
    let stdout = ok(&evaluate(&data, &strategy, &wf, WALK));
    let v = report(&wf)["overall"]["verdict"].clone();
    assert_ne!(v, "edge", "{stdout}");
    assert_ne!(v, "fragile", "{stdout}");
}

#[test]
fn folds_test_only_later_markets_and_normalise_on_their_training_part() {
    let tmp = tempfile::tempdir().unwrap();
    let data = history(&tmp.path().join("gen"), 0.1, 0.3, 5);
    let files = resolve_glob(&snaps(&data)).unwrap();
    let labels = LabelsFile::load(&data.join("labels.json")).unwrap();
    let ds = dataset::build(&files, &labels, &BuildOptions::default());
    let n = ds.markets.len();
    let folds = walk_forward_folds(&ds.markets, 20, 10, 10, 2).unwrap();
    assert_eq!(folds.len(), (n - 32) / 10 + 1);
    for f in &folds {
        let train_end = f
            .train
            .iter()
            .map(|&i| ds.markets[i].close_ms)
            .max()
            .unwrap();
        assert!(f
            .test
            .iter()
            .all(|&i| ds.markets[i].first_ms() >= train_end));
        // The embargo: two markets between the last training and the first test market.
        assert_eq!(f.test[0], f.train.last().unwrap() + 3);
        let specs = fold_normalisation(&ds, f);
        let (fit, _) = evaluate_strategy::fold_parts(f);
        let want = Normalizer::fit(
            fit.iter()
                .flat_map(|&i| ds.markets[i].sequences.iter().flat_map(|s| s.x.iter())),
        );
        assert_eq!(specs, want);
        let with_test = Normalizer::fit(
            fit.iter()
                .chain(&f.test)
                .flat_map(|&i| ds.markets[i].sequences.iter().flat_map(|s| s.x.iter())),
        );
        assert_ne!(
            specs, with_test,
            "the test markets must not move the statistics"
        );
    }
    // Too few markets: the counts are named.
    let e = walk_forward_folds(&ds.markets, n, 10, 10, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{n} labelled usable markets")), "{e}");
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let data = history(&tmp.path().join("gen"), 0.1, 0.3, 6);
    let strategy = train(&data, &tmp.path().join("model"));
    let out = tmp.path().join("r.json");

    // A mistyped risk limit: the field path is named.
    let text = std::fs::read_to_string(&strategy).unwrap();
    let bad = tmp.path().join("model/bad.json");
    std::fs::write(&bad, text.replace("\"cooldown_s\"", "\"cooldown_secs\"")).unwrap();
    fails(
        &evaluate(&data, &bad, &out, &["--mode", "fixed"]),
        "risk.cooldown_secs",
    );

    // A weights file that does not match its hash.
    let weights = tmp.path().join("model/model.safetensors");
    let mut w = std::fs::read(&weights).unwrap();
    let good = w.clone();
    let k = w.len() - 1;
    w[k] ^= 1;
    std::fs::write(&weights, &w).unwrap();
    fails(
        &evaluate(&data, &strategy, &out, &["--mode", "fixed"]),
        "sha256 is",
    );
    std::fs::remove_file(&weights).unwrap();
    fails(
        &evaluate(&data, &strategy, &out, &["--mode", "fixed"]),
        "model.safetensors",
    );
    std::fs::write(&weights, good).unwrap();

    // No markets left after the split, with the counts.
    fails(
        &evaluate(
            &data,
            &strategy,
            &out,
            &["--train-markets", "1000", "--test-markets", "50"],
        ),
        "labelled usable markets, but one walk-forward fold needs 1050",
    );
    // A glob with no files.
    let o = Command::new(env!("CARGO_BIN_EXE_evaluate_strategy"))
        .arg("--strategy")
        .arg(&strategy)
        .args(["--snapshots", "/nonexistent/*.gz", "--labels"])
        .arg(data.join("labels.json"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    fails(&o, "matches no file");
    assert!(!out.exists());
}
