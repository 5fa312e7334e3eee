//! `train_edge_rnn` end to end on small generated histories: a planted edge is found out of
//! sample and its absence is reported as such; runs are reproducible; the saved model reloads
//! and streams exactly what training scored; bad input fails with exit 2 and writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_model::trainer::{predictions, split_metrics};
use edge_model::LstmEdgeModel;
use kalshi_sim::generate::{self, GenerateConfig};
use pipeline::dataset::{self, BuildOptions, SplitFractions};
use pipeline::features::{EdgeModel, FeatureConfig, FeatureState};
use pipeline::schema::labels::LabelsFile;
use pipeline::schema::strategy::Strategy;
use pipeline::snapshot::{resolve_glob, Line, ReadOptions, SnapshotReader};
use serde_json::Value;

/// Two-minute markets, 500 ms rows, no ladder: 720 markets a day.
fn history(dir: &Path, days: f64, edge: f64, seed: u64) -> PathBuf {
    let mut cfg = GenerateConfig::new(dir);
    cfg.days = days;
    cfg.market_ms = 120_000;
    cfg.snapshot_ms = 500;
    cfg.requote_ms = 500;
    cfg.depth = 0;
    cfg.planted_edge = edge;
    cfg.seed = seed;
    generate::run(cfg).expect("generate");
    dir.to_path_buf()
}

fn snaps(dir: &Path) -> String {
    dir.join("*.snap_*ms.jsonl.gz").display().to_string()
}

const SMALL: &[&str] = &[
    "--hidden",
    "16",
    "--window",
    "60",
    "--batch",
    "16",
    "--lr",
    "0.01",
    "--threads",
    "1",
    "--seed",
    "7",
    "--patience",
    "3",
];

fn train(data: &Path, outdir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train_edge_rnn"))
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sim.json"))
        .arg("--snapshots")
        .arg(snaps(data))
        .arg("--labels")
        .arg(data.join("labels.json"))
        .arg("--outdir")
        .arg(outdir)
        .args(SMALL)
        .args(if extra.contains(&"--epochs") {
            &[][..]
        } else {
            &["--epochs", "6"][..]
        })
        .args(extra)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run train_edge_rnn")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn metrics(outdir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(outdir.join("metrics.json")).unwrap()).unwrap()
}

fn without_timings(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("timings");
    v
}

#[test]
fn a_planted_edge_is_found_out_of_sample_and_the_model_reloads_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = history(&tmp.path().join("gen"), 0.5, 0.7, 3);
    let out = tmp.path().join("model");
    let stdout = ok(&train(&data, &out, &[]));
    let m = metrics(&out);
    assert_eq!(
        m["verdict"]["beats_market"], true,
        "{stdout}\n{:#}",
        m["splits"]["test"]
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("verdict: the model beats the market mid"),
        "{stdout}"
    );
    let ci = &m["splits"]["test"]["paired_brier_diff"];
    assert!(ci["hi"].as_f64().unwrap() < 0.0, "{ci}");
    // The horizons exist for 2-minute markets (1 minute before close).
    let h1 = &m["splits"]["test"]["horizons"][3];
    assert_eq!(h1["minutes"], 1);
    assert!(h1["markets"].as_u64().unwrap() > 0, "{h1}");

    // strategy.json is complete and loadable, and its weights hash matches.
    let strategy = Strategy::load(&out.join("strategy.json")).unwrap();
    strategy.verify_weights().unwrap();
    let t = strategy.training.as_ref().unwrap();
    assert_eq!(t.seed, Some(7));
    assert!(t.data_start.is_some() && t.data_end.is_some());
    assert_eq!(
        strategy.markets.series_ticker.as_ref().unwrap().as_str(),
        "KXBTC15M"
    );

    // Reload the model and rebuild the test split from the files: its predictions reproduce the
    // test Brier in metrics.json exactly, and streaming the same markets row by row through
    // FeatureState + Normalizer + LstmEdgeModel::step gives the same probabilities.
    tch::set_num_threads(1);
    let (mut model, norm) = LstmEdgeModel::load(&strategy).unwrap();
    let files = resolve_glob(&snaps(&data)).unwrap();
    let labels = LabelsFile::load(&data.join("labels.json")).unwrap();
    let ds = dataset::build(&files, &labels, &BuildOptions::default());
    let split = dataset::split_by_time(&ds.markets, SplitFractions::default()).unwrap();
    let test: Vec<_> = split.test.iter().map(|&i| &ds.markets[i]).collect();
    let pred = predictions(model.net(), &test, &norm, 16, tch::Device::Cpu);
    let sm = split_metrics(&pred, 7);
    assert_eq!(
        sm.all_steps.model.brier,
        m["splits"]["test"]["all_steps"]["model"]["brier"]
            .as_f64()
            .unwrap()
    );

    let first = test[0];
    let mut state = FeatureState::new(FeatureConfig::default(), Some(first.close_ms));
    let mut streamed = Vec::new();
    for line in SnapshotReader::from_paths(files.iter().cloned(), ReadOptions::default()) {
        if line.market_ticker() != &first.ticker {
            continue;
        }
        if let Some(step) = state.push(&line) {
            let p = model.step(&first.ticker, &norm.apply(&step.x), step.new_segment);
            streamed.push(p);
        }
        if matches!(line, Line::Marker(_)) {
            continue;
        }
    }
    let batch: Vec<f64> = pred.markets[0].0.iter().map(|s| s.0).collect();
    assert_eq!(streamed.len(), batch.len());
    let worst = streamed
        .iter()
        .zip(&batch)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "streaming differs from batch by {worst}");
}

#[test]
fn no_planted_edge_means_no_edge_shown_and_runs_are_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let data = history(&tmp.path().join("gen"), 0.5, 0.0, 4);
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let stdout = ok(&train(&data, &a, &[]));
    ok(&train(&data, &b, &[]));
    let ma = metrics(&a);
    assert_eq!(ma["verdict"]["beats_market"], false, "{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("verdict: no edge shown"),
        "{stdout}"
    );
    assert_eq!(without_timings(ma), without_timings(metrics(&b)));
    let sa = Strategy::load(&a.join("strategy.json")).unwrap();
    let sb = Strategy::load(&b.join("strategy.json")).unwrap();
    assert_eq!(
        sa.model.as_ref().unwrap().weights_sha256,
        sb.model.as_ref().unwrap().weights_sha256
    );
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
}

fn fails(out: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in: {stderr}");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gen");
    let mut cfg = GenerateConfig::new(&data);
    cfg.days = 0.01;
    cfg.market_ms = 60_000;
    cfg.snapshot_ms = 1000;
    cfg.requote_ms = 1000;
    cfg.depth = 0;
    generate::run(cfg).unwrap();
    let out = tmp.path().join("out");

    // A glob that matches nothing.
    let o = Command::new(env!("CARGO_BIN_EXE_train_edge_rnn"))
        .args(["--snapshots", "/nonexistent/*.jsonl.gz", "--labels"])
        .arg(data.join("labels.json"))
        .arg("--outdir")
        .arg(&out)
        .output()
        .unwrap();
    fails(&o, "matches no file");

    // Labels that cover no snapshot market.
    let other = tmp.path().join("other.json");
    std::fs::write(&other, r#"{"KXOTHER-1": "yes"}"#).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_train_edge_rnn"))
        .arg("--snapshots")
        .arg(snaps(&data))
        .arg("--labels")
        .arg(&other)
        .arg("--outdir")
        .arg(&out)
        .output()
        .unwrap();
    fails(&o, "covers none of the");

    // Too few markets for the split (14 one-minute markets; --min-steps keeps them all).
    fails(
        &train(&data, &out, &["--min-steps", "100000"]),
        "needs at least",
    );
    // Unknown and unavailable devices.
    fails(
        &train(&data, &out, &["--device", "gpu"]),
        "unknown device \"gpu\"",
    );
    if !tch::Cuda::is_available() {
        fails(&train(&data, &out, &["--device", "cuda"]), "no CUDA");
    }
    assert!(!out.exists(), "nothing may be written on error");

    // An outdir holding another model is refused without --force.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("strategy.json"), "{}").unwrap();
    fails(
        &train(&data, &out, &["--min-steps", "5"]),
        "already holds a model",
    );
    assert_eq!(std::fs::read(out.join("strategy.json")).unwrap(), b"{}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[test]
fn a_truncated_snapshot_file_is_reported_and_training_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = history(&tmp.path().join("gen"), 0.1, 0.5, 5);
    let files = resolve_glob(&snaps(&data)).unwrap();
    let victim = files.last().unwrap();
    let bytes = std::fs::read(victim).unwrap();
    std::fs::write(victim, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = tmp.path().join("model");
    let stdout = ok(&train(&data, &out, &["--epochs", "1"]));
    assert!(stdout.contains("truncated"), "{stdout}");
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let m = metrics(&out);
    let problems = m["counts"]["read_problems"].to_string();
    assert!(problems.contains(&name), "{problems}");

    // --check loads what was written; a tampered weights file is refused by its hash.
    let check = |p: &Path| {
        Command::new(env!("CARGO_BIN_EXE_train_edge_rnn"))
            .arg("--check")
            .arg(p)
            .output()
            .unwrap()
    };
    let o = check(&out.join("strategy.json"));
    assert!(ok(&o).contains(": ok: "));
    let mut w = std::fs::read(out.join("model.safetensors")).unwrap();
    let n = w.len();
    w[n - 1] ^= 1;
    std::fs::write(out.join("model.safetensors"), w).unwrap();
    fails(&check(&out.join("strategy.json")), "sha256 is");
}
