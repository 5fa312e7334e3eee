//! `train_edge_rnn`'s work: snapshots + labels → dataset → purged time split → training →
//! metrics against the market's own mid → `model.safetensors`, `strategy.json`, `metrics.json`.
//!
//! Outputs are written into a temporary folder beside `--outdir` and moved into place only when
//! all three are complete, so a failed run leaves nothing half-written in `--outdir`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use pipeline::dataset::{self, BuildOptions, Dataset, MarketData, Split, SplitFractions};
use pipeline::features::{FeatureConfig, Normalizer, FEATURE_NAMES, N_FEATURES};
use pipeline::metrics::{self, MeanCi, ReliabilityBin};
use pipeline::schema::labels::LabelsFile;
use pipeline::schema::sha256_file;
use pipeline::schema::strategy::{
    Device as SpecDevice, Execution, MarketsSpec, ModelSpec, Risk, SelfTradePrevention, Sides,
    Signals, Strategy, StrategySchema, StrategyType, TimeInForce, Training,
};
use pipeline::snapshot::resolve_glob;
use pipeline::{Count, Money, Price, SeriesTicker};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::lstm_model::device;
use crate::train::{self, EpochReport, Progress, SeqData, TrainConfig, Trained};
use crate::{save_safetensors, ModelError};

/// Horizons (minutes before close) reported in `metrics.json`.
pub const HORIZONS_MIN: [u32; 4] = [10, 5, 2, 1];
/// Bootstrap resamples for the paired Brier interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Everything a training run needs.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub snapshots: String,
    pub labels: PathBuf,
    pub outdir: PathBuf,
    pub device: SpecDevice,
    pub force: bool,
    pub step_ms: i64,
    pub min_steps: usize,
    pub split: SplitFractions,
    pub threads: usize,
    pub train: TrainConfig,
    /// Series for `strategy.json` when the markets do not name one.
    pub series: SeriesTicker,
}

/// Why a run stopped before writing anything (the binary exits 2).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("--snapshots {pattern:?} matches no file")]
    NoFiles { pattern: String },
    #[error("--snapshots {pattern:?}: {message}")]
    BadGlob { pattern: String, message: String },
    #[error("{path}: {message}", path = path.display())]
    Labels { path: PathBuf, message: String },
    #[error("the labels file {path} covers none of the {markets} market(s) in the snapshot files", path = labels.display())]
    NoLabelledMarkets { labels: PathBuf, markets: usize },
    #[error("too few markets for the split: {0}")]
    Split(#[from] dataset::SplitError),
    #[error("--outdir {path} already holds a model ({what}); pass --force to replace it", path = path.display())]
    OutdirTaken { path: PathBuf, what: String },
    #[error("--device {0}: {1}")]
    Device(String, String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("writing {path}: {message}", path = path.display())]
    Write { path: PathBuf, message: String },
}

/// Scores of one predictor.
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    pub n: usize,
    pub log_loss: f64,
    pub brier: f64,
    pub auc: Option<f64>,
    pub ece: f64,
    pub reliability: Vec<ReliabilityBin>,
}

impl Scores {
    pub fn of(p: &[f64], y: &[f64]) -> Scores {
        let (reliability, ece) = metrics::reliability(p, y, 10);
        Scores {
            n: p.len(),
            log_loss: metrics::log_loss(p, y),
            brier: metrics::brier(p, y),
            auc: metrics::auc(p, y),
            ece,
            reliability,
        }
    }
}

/// The model and the mid, scored on the same steps.
#[derive(Clone, Debug, Serialize)]
pub struct Pair {
    pub model: Scores,
    pub mid: Scores,
}

/// Scores at one horizon: per market, the last step at least `minutes` before close (and at
/// most one minute earlier than that).
#[derive(Clone, Debug, Serialize)]
pub struct Horizon {
    pub minutes: u32,
    pub markets: usize,
    #[serde(flatten)]
    pub scores: Pair,
}

/// One split's metrics.
#[derive(Clone, Debug, Serialize)]
pub struct SplitMetrics {
    pub markets: usize,
    pub steps: usize,
    pub all_steps: Pair,
    pub horizons: Vec<Horizon>,
    /// Per market: mean over its steps of (model − mid) squared error; bootstrap over markets.
    pub paired_brier_diff: MeanCi,
}

/// One step's prediction: `(model p, mid, seconds to close)`.
pub type StepPrediction = (f64, f64, f64);

/// Predictions of one split, per market: its steps and its outcome `y`.
pub struct SplitPredictions {
    pub markets: Vec<(Vec<StepPrediction>, f64)>,
}

/// Scores predictions.
pub fn split_metrics(pred: &SplitPredictions, seed: u64) -> SplitMetrics {
    let (mut p, mut m, mut y) = (Vec::new(), Vec::new(), Vec::new());
    let mut diffs = Vec::new();
    for (steps, out) in &pred.markets {
        let mut d = 0.0;
        for &(pi, mi, _) in steps {
            p.push(pi);
            m.push(mi);
            y.push(*out);
            d += (pi - out).powi(2) - (mi - out).powi(2);
        }
        if !steps.is_empty() {
            diffs.push(d / steps.len() as f64);
        }
    }
    let horizons = HORIZONS_MIN
        .iter()
        .map(|&h| {
            let lo = f64::from(h) * 60.0;
            let (mut hp, mut hm, mut hy) = (Vec::new(), Vec::new(), Vec::new());
            for (steps, out) in &pred.markets {
                let pick = steps
                    .iter()
                    .filter(|s| s.2 >= lo && s.2 < lo + 60.0)
                    .min_by(|a, b| a.2.total_cmp(&b.2));
                if let Some(&(pi, mi, _)) = pick {
                    hp.push(pi);
                    hm.push(mi);
                    hy.push(*out);
                }
            }
            Horizon {
                minutes: h,
                markets: hp.len(),
                scores: Pair {
                    model: Scores::of(&hp, &hy),
                    mid: Scores::of(&hm, &hy),
                },
            }
        })
        .collect();
    SplitMetrics {
        markets: pred.markets.len(),
        steps: p.len(),
        all_steps: Pair {
            model: Scores::of(&p, &y),
            mid: Scores::of(&m, &y),
        },
        horizons,
        paired_brier_diff: metrics::bootstrap_mean_ci(&diffs, BOOTSTRAP_RESAMPLES, seed),
    }
}

/// Whether the model beats the market, in words, from the test split's paired interval.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub beats_market: bool,
    pub text: String,
}

pub fn verdict(test: &SplitMetrics) -> Verdict {
    let ci = test.paired_brier_diff;
    let beats = ci.below_zero();
    let text = if beats {
        format!(
            "the model beats the market mid on the test split: Brier {:.5} vs {:.5}, paired difference {:+.5} (95% CI {:+.5} .. {:+.5}, {} markets) lies below zero",
            test.all_steps.model.brier, test.all_steps.mid.brier, ci.mean, ci.lo, ci.hi, ci.n
        )
    } else {
        format!(
            "no edge shown: the model does not beat the market mid on the test split (Brier {:.5} vs {:.5}, paired difference {:+.5}, 95% CI {:+.5} .. {:+.5} over {} markets, not below zero)",
            test.all_steps.model.brier, test.all_steps.mid.brier, ci.mean, ci.lo, ci.hi, ci.n
        )
    };
    Verdict {
        beats_market: beats,
        text,
    }
}

/// What a finished run wrote and measured.
pub struct TrainOutcome {
    pub outdir: PathBuf,
    pub strategy_path: PathBuf,
    pub metrics: Value,
    pub verdict: Verdict,
    pub test: SplitMetrics,
    pub dataset_summary: String,
}

impl fmt::Display for TrainOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dataset_summary)?;
        let t = &self.test;
        writeln!(
            f,
            "test split: {} markets, {} steps; Brier model {:.5} mid {:.5}; log loss model {:.5} mid {:.5}",
            t.markets,
            t.steps,
            t.all_steps.model.brier,
            t.all_steps.mid.brier,
            t.all_steps.model.log_loss,
            t.all_steps.mid.log_loss
        )?;
        for h in &t.horizons {
            if h.markets > 0 {
                writeln!(
                    f,
                    "  {:>2} min before close ({} markets): Brier model {:.5} mid {:.5}",
                    h.minutes, h.markets, h.scores.model.brier, h.scores.mid.brier
                )?;
            }
        }
        writeln!(f, "wrote {}", self.outdir.display())?;
        writeln!(f, "verdict: {}", self.verdict.text)
    }
}

/// Checks `--device` against this libtorch.
pub fn check_device(d: SpecDevice) -> Result<tch::Device, TrainError> {
    device(d).map_err(|e| match e {
        crate::lstm_model::LoadError::Device(a, b) => TrainError::Device(a, b),
        other => TrainError::Device(d.to_string(), other.to_string()),
    })
}

fn check_outdir(outdir: &Path, force: bool) -> Result<(), TrainError> {
    if force {
        return Ok(());
    }
    for name in ["strategy.json", "model.safetensors", "metrics.json"] {
        if outdir.join(name).exists() {
            return Err(TrainError::OutdirTaken {
                path: outdir.to_path_buf(),
                what: name.to_string(),
            });
        }
    }
    Ok(())
}

/// Steps of the listed markets as (model p, mid, seconds to close) per step.
pub fn predictions(
    trained_net: &crate::EdgeNet,
    markets: &[&MarketData],
    norm: &Normalizer,
    batch: usize,
    device: tch::Device,
) -> SplitPredictions {
    let seqs = train::sequences(markets, norm);
    let preds = train::predict(trained_net, &seqs, batch, device);
    let mut out: Vec<(Vec<StepPrediction>, f64)> =
        markets.iter().map(|m| (Vec::new(), m.outcome)).collect();
    // `sequences` walks markets then their sequences in order.
    let mut k = 0;
    for (mi, m) in markets.iter().enumerate() {
        for s in &m.sequences {
            let p = &preds[k];
            k += 1;
            for ((&pt, &mid), &secs) in p.iter().zip(&s.mid).zip(&s.seconds_to_close) {
                out[mi].0.push((pt, mid, secs));
            }
        }
    }
    SplitPredictions { markets: out }
}

/// Default trading settings written into a new `strategy.json`.
pub fn default_signals() -> (Signals, Execution, Risk) {
    let d = |s: &str| Price::parse_dollars(s).expect("const");
    let m = |s: &str| Money::parse_dollars(s).expect("const");
    (
        Signals {
            min_edge: m("0.03"),
            min_price: d("0.05"),
            max_price: d("0.95"),
            max_spread: d("0.05"),
            min_seconds_to_close: 60,
            max_seconds_to_close: None,
            sides: Sides::Both,
            min_ask_size: Some(Count::from_contracts(1)),
        },
        Execution {
            limit_offset: Price::ZERO,
            time_in_force: TimeInForce::ImmediateOrCancel,
            contracts_per_order: Count::from_contracts(5),
            post_only: false,
            expiration_s: None,
            self_trade_prevention: SelfTradePrevention::TakerAtCross,
        },
        Risk {
            max_contracts_per_market: Count::from_contracts(20),
            max_open_markets: 4,
            max_orders_per_minute: 30,
            cooldown_s: 15,
            max_daily_loss: m("50"),
            no_entry_last_s: 60,
            max_total_exposure: Some(m("100")),
        },
    )
}

fn series_of(markets: &[MarketData], fallback: &SeriesTicker) -> SeriesTicker {
    let mut series = markets
        .iter()
        .filter_map(|m| m.ticker.as_str().split('-').next().map(str::to_string));
    match series.next() {
        Some(first) if series.all(|s| s == first) => SeriesTicker::from(first.as_str()),
        _ => fallback.clone(),
    }
}

fn ts(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// A one-paragraph description of the dataset and the split.
pub fn describe(ds: &Dataset, split: Option<&Split>) -> String {
    let mut s = String::new();
    let rep = ds.read_report.totals();
    s.push_str(&format!(
        "read {} file(s), {} rows: {} labelled usable markets, {} left out\n",
        ds.files.len(),
        ds.rows,
        ds.markets.len(),
        ds.excluded.len()
    ));
    if rep.skipped_lines() > 0 || rep.truncated_files + rep.corrupt_members > 0 {
        s.push_str(&format!("{}", ds.read_report));
    }
    let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (t, why) in &ds.excluded {
        let key = match why {
            dataset::Excluded::TooShort { .. } => "too short".to_string(),
            other => other.to_string(),
        };
        by_reason.entry(key).or_default().push(t.as_str());
    }
    for (why, ts) in by_reason {
        let shown: Vec<&str> = ts.iter().take(5).copied().collect();
        s.push_str(&format!(
            "  left out, {why}: {} ({}{})\n",
            ts.len(),
            shown.join(", "),
            if ts.len() > 5 { ", …" } else { "" }
        ));
    }
    if let Some(sp) = split {
        s.push_str(&format!(
            "split by close time: train {}, validation {}, test {}, purged {}\n",
            sp.train.len(),
            sp.val.len(),
            sp.test.len(),
            sp.purged.len()
        ));
    }
    s
}

/// Runs a whole training.
pub fn run(opts: &TrainOptions, progress: &mut dyn Progress) -> Result<TrainOutcome, TrainError> {
    let t_start = Instant::now();
    let dev = check_device(opts.device)?;
    check_outdir(&opts.outdir, opts.force)?;
    tch::set_num_threads(opts.threads.max(1) as i32);
    let files = resolve_glob(&opts.snapshots).map_err(|e| TrainError::BadGlob {
        pattern: opts.snapshots.clone(),
        message: e.to_string(),
    })?;
    if files.is_empty() {
        return Err(TrainError::NoFiles {
            pattern: opts.snapshots.clone(),
        });
    }
    let labels = LabelsFile::load(&opts.labels).map_err(|e| TrainError::Labels {
        path: opts.labels.clone(),
        message: e.to_string(),
    })?;
    let labels_sha = sha256_file(&opts.labels).map_err(|e| TrainError::Labels {
        path: opts.labels.clone(),
        message: e.to_string(),
    })?;
    let fcfg = FeatureConfig {
        step_ms: opts.step_ms,
        ..FeatureConfig::default()
    };
    let ds = dataset::build(
        &files,
        &labels,
        &BuildOptions {
            features: fcfg,
            min_steps: opts.min_steps,
            ..BuildOptions::default()
        },
    );
    let load_s = t_start.elapsed().as_secs_f64();
    if ds.markets.is_empty() {
        let labelled = ds
            .excluded
            .values()
            .any(|e| *e != dataset::Excluded::NoLabel);
        if !labelled {
            return Err(TrainError::NoLabelledMarkets {
                labels: opts.labels.clone(),
                markets: ds.excluded.len(),
            });
        }
    }
    let split = dataset::split_by_time(&ds.markets, opts.split)?;
    let summary = describe(&ds, Some(&split));
    tracing::info!("{}", summary.trim_end());

    let pick =
        |idx: &[usize]| -> Vec<&MarketData> { idx.iter().map(|&i| &ds.markets[i]).collect() };
    let (train_m, val_m, test_m) = (pick(&split.train), pick(&split.val), pick(&split.test));
    let specs = Normalizer::fit(
        train_m
            .iter()
            .flat_map(|m| m.sequences.iter().flat_map(|s| s.x.iter())),
    );
    let norm = Normalizer::from_specs(&specs).expect("fit gives the feature names");
    let train_seqs: Vec<SeqData> = train::sequences(&train_m, &norm);
    let val_seqs: Vec<SeqData> = train::sequences(&val_m, &norm);
    let mut tcfg = opts.train.clone();
    tcfg.device = dev;
    let trained: Trained = train::fit(&train_seqs, &val_seqs, &tcfg, progress)?;

    let t_eval = Instant::now();
    let seed = opts.train.seed;
    let mut split_json = Map::new();
    let mut test_metrics = None;
    for (name, ms) in [("train", &train_m), ("val", &val_m), ("test", &test_m)] {
        let pred = predictions(&trained.net, ms, &norm, tcfg.batch, dev);
        let m = split_metrics(&pred, seed);
        split_json.insert(name.into(), serde_json::to_value(&m).unwrap_or(Value::Null));
        if name == "test" {
            test_metrics = Some(m);
        }
    }
    let test = test_metrics.expect("test split scored");
    let verdict = verdict(&test);
    let eval_s = t_eval.elapsed().as_secs_f64();

    // Outputs, assembled in a temporary folder beside --outdir.
    let tmp = tmp_dir(&opts.outdir);
    let write_err = |path: &Path, e: &dyn fmt::Display| TrainError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&tmp).map_err(|e| write_err(&tmp, &e))?;
    let result = (|| {
        let weights = tmp.join("model.safetensors");
        save_safetensors(&trained.vs, &weights)?;
        let weights_sha = sha256_file(&weights).map_err(|e| write_err(&weights, &e))?;
        let used: Vec<&MarketData> = train_m.iter().chain(&val_m).copied().collect();
        let span = dataset::span(&used);
        let history: Vec<Value> = trained.history.iter().map(epoch_json).collect();
        let counts = json!({
            "files": ds.files.len(),
            "rows": ds.rows,
            "markets_usable": ds.markets.len(),
            "excluded": ds.excluded.iter().map(|(t, e)| (t.to_string(), e.to_string())).collect::<BTreeMap<_, _>>(),
            "train": split.train.len(),
            "val": split.val.len(),
            "test": split.test.len(),
            "purged": split.purged,
            "read_problems": ds.read_report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        });
        let metrics_doc = json!({
            "schema": "train_metrics/v1",
            "verdict": verdict,
            "counts": counts,
            "splits": split_json,
            "training": {
                "epochs_run": trained.history.len(),
                "best_epoch": trained.best_epoch,
                "optimizer_steps": trained.optimizer_steps,
                "threads": opts.threads,
                "seed": seed,
                "device": opts.device.to_string(),
                "config": train_config_json(&tcfg, opts),
                "history": history,
            },
            "timings": {
                "load_seconds": load_s,
                "train_seconds": trained.train_seconds,
                "eval_seconds": eval_s,
                "total_seconds": t_start.elapsed().as_secs_f64(),
                "epoch_seconds": trained.history.iter().map(|h| h.seconds).collect::<Vec<_>>(),
            },
        });
        let (signals, execution, risk) = default_signals();
        let series = series_of(&ds.markets, &opts.series);
        let mut summary = Map::new();
        summary.insert("test_markets".into(), json!(test.markets));
        summary.insert("test_brier_model".into(), json!(test.all_steps.model.brier));
        summary.insert("test_brier_mid".into(), json!(test.all_steps.mid.brier));
        summary.insert(
            "test_paired_brier_diff".into(),
            json!(test.paired_brier_diff),
        );
        summary.insert("beats_market".into(), json!(verdict.beats_market));
        summary.insert(
            "train_markets".into(),
            json!(used
                .iter()
                .map(|m| m.ticker.to_string())
                .collect::<Vec<_>>()),
        );
        summary.insert(
            "training_close_end".into(),
            json!(ts(used.iter().map(|m| m.close_ms).max().unwrap_or(0))),
        );
        let strategy = Strategy {
            schema: StrategySchema::V1,
            name: format!("{series}-rnn-edge"),
            description: Some(format!(
                "LSTM edge model trained by train_edge_rnn on {} markets ({} train, {} validation)",
                used.len(),
                train_m.len(),
                val_m.len()
            )),
            strategy_type: StrategyType::RnnEdgeV1,
            created_at: Utc::now(),
            markets: MarketsSpec {
                series_ticker: Some(series),
                tickers: Vec::new(),
            },
            model: Some(ModelSpec {
                weights: weights.clone(),
                weights_sha256: weights_sha,
                features: specs.clone(),
                n_features: N_FEATURES,
                step_ms: opts.step_ms as u64,
                seq_len: tcfg.window,
                hidden: tcfg.hidden,
                layers: tcfg.layers,
                dropout: tcfg.dropout,
                device: opts.device,
            }),
            signals,
            execution,
            risk,
            plugin: None,
            training: Some(Training {
                data_start: span.map(|s| s.0),
                data_end: span.map(|s| s.1),
                n_markets: Some(used.len() as u64),
                labels_file: Some(opts.labels.display().to_string()),
                labels_sha256: Some(labels_sha.clone()),
                seed: Some(seed),
                metrics: summary,
            }),
        };
        let spath = tmp.join("strategy.json");
        strategy.save(&spath).map_err(|e| write_err(&spath, &e))?;
        let mpath = tmp.join("metrics.json");
        let mut text = serde_json::to_string_pretty(&metrics_doc).unwrap_or_default();
        text.push('\n');
        pipeline::schema::write_atomic(&mpath, text.as_bytes())
            .map_err(|e| write_err(&mpath, &e))?;
        Ok::<Value, TrainError>(metrics_doc)
    })();
    let metrics_doc = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    std::fs::create_dir_all(&opts.outdir).map_err(|e| write_err(&opts.outdir, &e))?;
    // Weights first, the strategy that names them last.
    for name in ["model.safetensors", "metrics.json", "strategy.json"] {
        let to = opts.outdir.join(name);
        std::fs::rename(tmp.join(name), &to).map_err(|e| write_err(&to, &e))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(TrainOutcome {
        strategy_path: opts.outdir.join("strategy.json"),
        outdir: opts.outdir.clone(),
        metrics: metrics_doc,
        verdict,
        test,
        dataset_summary: summary,
    })
}

fn epoch_json(h: &EpochReport) -> Value {
    json!({"epoch": h.epoch, "train_loss": h.train_loss, "val_loss": h.val_loss, "best": h.best})
}

fn train_config_json(c: &TrainConfig, o: &TrainOptions) -> Value {
    json!({
        "epochs": c.epochs, "hidden": c.hidden, "layers": c.layers, "dropout": c.dropout,
        "window": c.window, "batch": c.batch, "lr": c.lr, "weight_decay": c.weight_decay,
        "clip": c.clip, "patience": c.patience, "step_ms": o.step_ms, "min_steps": o.min_steps,
        "val_frac": o.split.val, "test_frac": o.split.test, "features": FEATURE_NAMES,
    })
}

fn tmp_dir(outdir: &Path) -> PathBuf {
    let name = outdir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "train".into());
    outdir.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// A `strategy/v1` file in `dir` with a seeded, untrained network (`hidden` units, one layer,
/// features left unnormalised: mean 0, std 1) and [`default_signals`]: for tests and
/// benchmarks of the runtime, where what matters is that the model runs exactly as a trained
/// one would, not what it predicts. Returns the strategy file's path.
pub fn untrained_strategy(
    dir: &std::path::Path,
    series: &SeriesTicker,
    hidden: usize,
    seed: i64,
) -> Result<std::path::PathBuf, TrainError> {
    let err = |message: String| TrainError::Write {
        path: dir.to_path_buf(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    tch::manual_seed(seed);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let cfg = crate::EdgeNetConfig {
        n_features: N_FEATURES,
        hidden,
        layers: 1,
        dropout: 0.0,
    };
    crate::EdgeNet::new(&vs.root(), &cfg).map_err(|e| err(e.to_string()))?;
    let weights = dir.join("model.safetensors");
    save_safetensors(&vs, &weights).map_err(|e| err(e.to_string()))?;
    let sha = sha256_file(&weights).map_err(|e| err(e.to_string()))?;
    let (signals, execution, risk) = default_signals();
    let strategy = Strategy {
        schema: StrategySchema::V1,
        name: format!("{series}-untrained"),
        description: Some(format!(
            "untrained network, seed {seed} (tests and benchmarks)"
        )),
        strategy_type: StrategyType::RnnEdgeV1,
        created_at: Utc::now(),
        markets: MarketsSpec {
            series_ticker: Some(series.clone()),
            tickers: Vec::new(),
        },
        model: Some(ModelSpec {
            weights,
            weights_sha256: sha,
            features: FEATURE_NAMES
                .iter()
                .map(|n| pipeline::schema::strategy::FeatureSpec {
                    name: n.to_string(),
                    mean: 0.0,
                    std: 1.0,
                })
                .collect(),
            n_features: N_FEATURES,
            step_ms: 1000,
            seq_len: 60,
            hidden,
            layers: 1,
            dropout: 0.0,
            device: SpecDevice::Cpu,
        }),
        signals,
        execution,
        risk,
        plugin: None,
        training: None,
    };
    let path = dir.join("strategy.json");
    strategy.save(&path).map_err(|e| err(e.to_string()))?;
    Ok(path)
}
