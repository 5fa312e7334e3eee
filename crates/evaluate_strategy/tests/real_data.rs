//! The real May 2026 KXBTC15M sessions in `../shared/data`, end to end the way a user would
//! take them: re-gridded from their captures (`download_highres --from-capture`'s library),
//! labelled from the markets file (`build_labels`' library), trained on (`train_edge_rnn`'s),
//! and evaluated by the `evaluate_strategy` binary, fixed and walk-forward. There are few
//! markets (36, 33 with a result), so the expected answer is "no edge shown"; what is checked
//! is that every stage runs to the end and that each verdict follows its own interval, never
//! claiming more. Skips with a message when `../shared` is absent; `REQUIRE_SHARED_DATA=1`
//! makes that a failure.

mod common;

use std::path::PathBuf;

use common::{evaluate, ok, report as json};

use edge_model::train::TrainConfig;
use edge_model::trainer::{self, TrainOptions};
use market_data::book::NoPriceConvention;
use market_data::recorder::{regrid, RegridConfig};
use pipeline::dataset::SplitFractions;
use pipeline::snapshot::resolve_glob;
use serde_json::Value;

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

/// The report's overall verdict claims an edge only when its interval lies above zero.
fn honest(report: &Value, what: &str) -> String {
    let o = &report["overall"];
    let verdict = o["verdict"].as_str().unwrap().to_string();
    let lo = o["pnl"]["per_market"]["lo"].as_f64();
    eprintln!(
        "real data, {what}: verdict {verdict}; net P&L {} over {} trades, per market {:?} .. {:?}",
        o["pnl"]["net"],
        o["pnl"]["trades"],
        lo,
        o["pnl"]["per_market"]["hi"].as_f64()
    );
    if verdict == "edge" || verdict == "fragile" {
        assert!(lo.is_some_and(|l| l > 0.0), "{what}: {o}");
    }
    verdict
}

#[test]
fn the_real_sessions_regrid_label_train_and_evaluate_honestly() {
    let Some(shared) = shared_data() else {
        eprintln!("SKIP the_real_sessions_regrid_label_train_and_evaluate_honestly: ../shared/data not found");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("regrid");

    // Re-grid every session at 1 s (the model's step) with a 5-level ladder.
    let captures =
        resolve_glob(&format!("{}/captures/*.capture.jsonl.gz", shared.display())).unwrap();
    let mut c = RegridConfig::new(captures, data.clone());
    c.markets = Some(shared.join("markets.jsonl"));
    c.convention = NoPriceConvention::NoLeg;
    c.snapshot_ms = 1000;
    c.depth = 5;
    let s = regrid(&c).expect("regrid");
    assert!(s.damage.is_empty() && s.unscheduled.is_empty(), "{s}");

    // Labels from the re-grid's markets sidecar (the markets file's results).
    let labels = pipeline::labels::build(pipeline::labels::BuildOptions {
        output: data.join("labels.json"),
        unresolved_output: data.join("unresolved.json"),
        labels_path: None,
        labels_in: Vec::new(),
        data_dir: Some(data.clone()),
        archives: Vec::new(),
        generated_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
    })
    .expect("labels");
    assert_eq!(labels.labels.labels.len(), 33);

    // Train a small model; the verdict follows the paired interval.
    tch::set_num_threads(1);
    let out = trainer::run(
        &TrainOptions {
            snapshots: data.join("*.snap_*ms.jsonl.gz").display().to_string(),
            labels: data.join("labels.json"),
            outdir: tmp.path().join("model"),
            device: pipeline::schema::strategy::Device::Cpu,
            force: false,
            step_ms: 1000,
            min_steps: 30,
            split: SplitFractions::default(),
            threads: 1,
            train: TrainConfig {
                epochs: 4,
                hidden: 16,
                window: 60,
                batch: 8,
                lr: 0.01,
                seed: 7,
                patience: 2,
                ..TrainConfig::default()
            },
            series: "KXBTC15M".into(),
        },
        &mut (),
    )
    .expect("train on the real sessions");
    let ci = out.test.paired_brier_diff;
    eprintln!(
        "real data, training: {}\n{}",
        out.dataset_summary, out.verdict.text
    );
    assert_eq!(
        out.verdict.beats_market,
        ci.hi < 0.0,
        "{}",
        out.verdict.text
    );
    let m = json(&out.outdir.join("metrics.json"));
    assert_eq!(m["verdict"]["beats_market"], ci.hi < 0.0);

    // Fixed: the training run's own test split. Walk-forward: three folds of 15 / 6 markets.
    let fixed = tmp.path().join("reports/fixed.json");
    ok(&evaluate(
        &data,
        &out.strategy_path,
        &fixed,
        &["--mode", "fixed", "--test-frac", "0.15"],
    ));
    let r = json(&fixed);
    assert_eq!(r["in_sample"], false);
    honest(&r, "fixed");
    let wf = tmp.path().join("reports/wf.json");
    ok(&evaluate(
        &data,
        &out.strategy_path,
        &wf,
        &[
            "--mode",
            "walkforward",
            "--train-markets",
            "15",
            "--test-markets",
            "6",
            "--step-markets",
            "6",
            "--epochs",
            "2",
            "--jobs",
            "2",
        ],
    ));
    let r = json(&wf);
    assert_eq!(r["folds"].as_array().unwrap().len(), 3);
    honest(&r, "walk-forward");
    assert!(wf.with_extension("html").exists());
}
