//! `evaluate_strategy`'s work: replay a strategy out of sample through the same runtime live
//! trading uses (`strategy::Runtime`, the replay venue's execution model), and report.
//!
//! - **fixed**: the latest `--test-frac` of the labelled markets by close time, with the
//!   strategy's own model. A test market inside the model's training span (listed in its
//!   `training.metrics.train_markets`, or opening before `training.data_end`) is refused, or
//!   with `--allow-overlap` evaluated in a fold flagged in-sample on every line of the report.
//! - **walkforward**: markets in close-time order; each fold trains a fresh model on
//!   `--train-markets` (the last 15% of them for early stopping; normalisation from the fold's
//!   training part only) with the strategy's model settings, skips `--embargo-markets`, and
//!   tests on the next `--test-markets`; test markets that open before the fold's last training
//!   market closed are purged. Folds advance by `--step-markets` and run in parallel.
//!
//! Execution and risk come from the strategy file unchanged. `signals` too in fixed mode; in
//! walk-forward each fold chooses its own among the file's and tighter ones
//! ([`signal_candidates`]: a higher minimum price, no entry early in the market, a higher
//! minimum edge) by net P&L on its **validation** markets (the last 15% of its training
//! markets, which also stop its training early), then replays its test markets with that
//! choice, printed first in the fold's summary (`--fixed-signals` keeps the file's). Nothing is
//! tuned on test data.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use edge_model::train::{self as tr, TrainConfig};
use edge_model::{EdgeNetConfig, LstmEdgeModel};
use pipeline::dataset::{self, BuildOptions, Dataset, MarketData};
use pipeline::features::{EdgeModel, FeatureConfig, Normalizer, N_FEATURES};
use pipeline::money::{Money, Price};
use pipeline::schema::labels::{LabelsFile, Outcome};
use pipeline::schema::strategy::FeatureSpec;
use pipeline::schema::strategy::{Signals, Strategy as StrategyFile, StrategyType};
use pipeline::snapshot::{parse_file_name, resolve_glob, Line, ReadOptions, SnapshotReader};
use pipeline::{FeeMultiplier, MarketTicker};
use strategy::{
    build_report, replay_fold, FoldInput, Latency, ReplayConfig, Report, ReportOptions, RnnEdge,
};

/// Evaluation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Fixed,
    WalkForward,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub strategy: PathBuf,
    pub snapshots: String,
    pub labels: PathBuf,
    pub mode: Mode,
    pub test_frac: f64,
    pub train_markets: usize,
    pub test_markets: usize,
    pub step_markets: usize,
    pub embargo_markets: usize,
    /// Walk-forward training epochs.
    pub epochs: usize,
    pub allow_overlap: bool,
    pub latency: Latency,
    pub out: PathBuf,
    /// Folds trained and replayed at once (one torch thread each).
    pub jobs: usize,
    pub seed: u64,
    /// Fewer steps and a market is left out (as in training).
    pub min_steps: usize,
    /// Walk-forward: choose each fold's `signals` on its validation markets (see
    /// [`signal_candidates`]); false keeps the strategy file's.
    pub choose_signals: bool,
}

/// Why a run stopped (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Strategy(#[from] pipeline::schema::strategy::StrategyError),
    #[error("{0}")]
    Model(String),
    #[error("--snapshots {0:?} matches no file")]
    NoFiles(String),
    #[error("{path}: {message}", path = path.display())]
    Labels { path: PathBuf, message: String },
    #[error("no markets left: {0}")]
    NoMarkets(String),
    #[error("{n} of the {m} test markets are inside the strategy's training span ({why}), e.g. {examples}; evaluating them would be in-sample. Pass --allow-overlap to evaluate them anyway, flagged in-sample")]
    InSample {
        n: usize,
        m: usize,
        why: String,
        examples: String,
    },
    #[error("{0}")]
    Replay(String),
    #[error("writing {path}: {message}", path = path.display())]
    Write { path: PathBuf, message: String },
}

/// One fold's markets (indices into the dataset's close-ordered markets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldPlan {
    pub name: String,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
    pub purged: Vec<MarketTicker>,
}

/// Walk-forward folds over `markets` (close-time order): train on `train_n`, skip `embargo`,
/// test the next `test_n`, advance by `step`. A test market that opens before the fold's last
/// training close is purged.
pub fn walk_forward_folds(
    markets: &[MarketData],
    train_n: usize,
    test_n: usize,
    step: usize,
    embargo: usize,
) -> Result<Vec<FoldPlan>, EvalError> {
    if train_n < 2 || test_n == 0 || step == 0 {
        return Err(EvalError::NoMarkets(format!(
            "--train-markets must be at least 2 and --test-markets, --step-markets at least 1 (got {train_n}, {test_n}, {step})"
        )));
    }
    let mut folds = Vec::new();
    let mut start = 0;
    while start + train_n + embargo + test_n <= markets.len() {
        let train: Vec<usize> = (start..start + train_n).collect();
        let end = train
            .iter()
            .map(|&i| markets[i].close_ms)
            .max()
            .unwrap_or(i64::MIN);
        let t0 = start + train_n + embargo;
        let mut plan = FoldPlan {
            name: format!("fold {}", folds.len() + 1),
            train,
            test: Vec::new(),
            purged: Vec::new(),
        };
        for (i, m) in markets.iter().enumerate().skip(t0).take(test_n) {
            if m.first_ms() < end {
                plan.purged.push(m.ticker.clone());
            } else {
                plan.test.push(i);
            }
        }
        if !plan.test.is_empty() {
            folds.push(plan);
        }
        start += step;
    }
    if folds.is_empty() {
        return Err(EvalError::NoMarkets(format!(
            "{} labelled usable markets, but one walk-forward fold needs {} (--train-markets {train_n} + --embargo-markets {embargo} + --test-markets {test_n}) with a test market opening after its training markets closed",
            markets.len(),
            train_n + embargo + test_n
        )));
    }
    Ok(folds)
}

/// Which test markets the strategy's model was trained on, with the reason.
pub fn in_sample(file: &StrategyFile, m: &MarketData) -> Option<String> {
    let t = file.training.as_ref()?;
    if let Some(list) = t.metrics.get("train_markets").and_then(|v| v.as_array()) {
        if list.iter().any(|v| v.as_str() == Some(m.ticker.as_str())) {
            return Some("listed in training.metrics.train_markets".into());
        }
    }
    if let Some(end) = t.data_end {
        if m.first_ms() <= end.timestamp_millis() {
            return Some(format!("opens before training.data_end {end}"));
        }
    }
    None
}

/// Files whose rotation period can hold rows of `[from_ms, to_ms]` (names that do not parse
/// are always read).
fn files_for(files: &[PathBuf], from_ms: i64, to_ms: i64) -> Vec<PathBuf> {
    let mut named: Vec<(i64, &PathBuf)> = Vec::new();
    let mut out = Vec::new();
    for f in files {
        match f
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name)
        {
            Some(n) => named.push((n.period_start_ms, f)),
            None => out.push(f.clone()),
        }
    }
    named.sort();
    for (i, (start, f)) in named.iter().enumerate() {
        let next = named
            .iter()
            .skip(i + 1)
            .map(|(s, _)| *s)
            .find(|s| s > start)
            .unwrap_or(i64::MAX);
        if *start <= to_ms && next > from_ms {
            out.push((*f).clone());
        }
    }
    out.sort();
    out
}

/// What a finished evaluation wrote.
pub struct EvalOutcome {
    pub report: Report,
    pub json: PathBuf,
    pub html: PathBuf,
    pub folds: Vec<FoldPlan>,
    pub dataset_summary: String,
}

struct Shared {
    file: StrategyFile,
    files: Vec<PathBuf>,
    labels: BTreeMap<MarketTicker, Outcome>,
    close: BTreeMap<MarketTicker, i64>,
    cfg: ReplayConfig,
}

/// The lines of `markets` only, from the files that can hold them (their time span).
fn market_lines(sh: &Shared, markets: &[&MarketData]) -> impl Fn() -> MarketLines {
    let tickers: HashSet<MarketTicker> = markets.iter().map(|m| m.ticker.clone()).collect();
    let from = markets.iter().map(|m| m.first_ms()).min().unwrap_or(0);
    let to = markets
        .iter()
        .map(|m| m.close_ms.max(m.last_ms()))
        .max()
        .unwrap_or(0);
    let files = files_for(&sh.files, from, to);
    move || {
        let tickers = tickers.clone();
        Box::new(
            SnapshotReader::from_paths(files.iter().cloned(), ReadOptions::default())
                .filter(move |l: &Line| tickers.contains(l.market_ticker())),
        )
    }
}

/// A stream of snapshot lines.
type MarketLines = Box<dyn Iterator<Item = Line>>;

fn replay_markets(
    sh: &Shared,
    name: &str,
    in_sample: bool,
    test: &[&MarketData],
    mut make_model: impl FnMut() -> Result<Box<dyn EdgeModel>, EvalError>,
) -> Result<FoldInput, EvalError> {
    let lines = market_lines(sh, test);
    // replay_fold runs twice (as configured, then one more step of latency): one fresh
    // strategy, and so one fresh model, per run, built before either starts.
    let mut strategies = Vec::with_capacity(2);
    for _ in 0..2 {
        let model = make_model()?;
        strategies.push(
            RnnEdge::from_strategy(&sh.file, model, FeeMultiplier::ONE)
                .map_err(|e| EvalError::Model(format!("{name}: {e}")))?,
        );
    }
    strategies.reverse();
    let make = || strategies.pop().expect("replay_fold makes two strategies");
    let fold = replay_fold(
        name,
        in_sample,
        make,
        &sh.file.risk,
        &sh.file.execution,
        sh.cfg,
        &sh.labels,
        &sh.close,
        lines,
    )
    .map_err(|e| EvalError::Replay(format!("{name}: {e}")))?;
    Ok(fold)
}

/// The `signals` a walk-forward fold may choose among: the strategy's own, and tighter ones
/// (a higher minimum price, no entry early in the market, a higher minimum edge). Never
/// looser than the strategy file: its thresholds are the most a user allows.
pub fn signal_candidates(base: &Signals) -> Vec<Signals> {
    let price = |d: &str| Price::parse_dollars(d).expect("const");
    let money = |d: &str| Money::parse_dollars(d).expect("const");
    let mut min_prices = vec![base.min_price];
    for p in ["0.30", "0.50", "0.60", "0.70"] {
        let p = price(p);
        if p > base.min_price && p < base.max_price {
            min_prices.push(p);
        }
    }
    let mut windows = vec![base.max_seconds_to_close];
    for w in [600u64, 300] {
        if base.max_seconds_to_close.is_none_or(|b| w < b) && w > base.min_seconds_to_close {
            windows.push(Some(w));
        }
    }
    let edges = [base.min_edge, base.min_edge + money("0.02")];
    let mut out = Vec::new();
    for &min_price in &min_prices {
        for &max_seconds_to_close in &windows {
            for &min_edge in &edges {
                out.push(Signals {
                    min_price,
                    max_seconds_to_close,
                    min_edge,
                    ..base.clone()
                });
            }
        }
    }
    out
}

/// `signals` in a few words, for the report.
pub fn describe_signals(s: &Signals) -> String {
    format!(
        "min_edge {}, min_price {}, max_seconds_to_close {}",
        s.min_edge,
        s.min_price,
        s.max_seconds_to_close
            .map_or("none".to_string(), |w| w.to_string())
    )
}

/// Net P&L of the settled trades of a replay, fees included.
fn net_of(result: &strategy::ReplayResult) -> Money {
    strategy::report::trades_of(result, &|f| f.fee)
        .iter()
        .filter_map(|t| t.net)
        .fold(Money::ZERO, |a, b| a + b)
}

/// Replays `markets` once with `signals` (the fold's model, its normalisation) and returns the
/// net P&L: how a fold scores a candidate on its validation markets.
fn score_signals(
    sh: &Shared,
    signals: &Signals,
    markets: &[&MarketData],
    model: Box<dyn EdgeModel>,
) -> Result<Money, EvalError> {
    let mut file = sh.file.clone();
    file.signals = signals.clone();
    let strategy = RnnEdge::from_strategy(&file, model, FeeMultiplier::ONE)
        .map_err(|e| EvalError::Model(e.to_string()))?;
    let lines = market_lines(sh, markets)();
    let (result, _) = strategy::replay(
        strategy,
        &file.risk,
        &file.execution,
        sh.cfg,
        &sh.labels,
        &sh.close,
        lines,
    )
    .map_err(|e| EvalError::Replay(e.to_string()))?;
    Ok(net_of(&result))
}

/// A fold's training markets as (fit, validation): the last 15% (at least one) validate.
pub fn fold_parts(plan: &FoldPlan) -> (&[usize], &[usize]) {
    let n = plan.train.len();
    let n_val = ((n as f64 * 0.15).round() as usize).clamp(1, n.saturating_sub(1).max(1));
    plan.train.split_at(n - n_val)
}

/// The fold's normalisation statistics: from its fit markets only, never its test markets.
pub fn fold_normalisation(ds: &Dataset, plan: &FoldPlan) -> Vec<FeatureSpec> {
    let (fit_idx, _) = fold_parts(plan);
    Normalizer::fit(
        fit_idx
            .iter()
            .flat_map(|&i| ds.markets[i].sequences.iter().flat_map(|s| s.x.iter())),
    )
}

/// Trains one walk-forward fold's model on its training markets.
fn train_fold(
    file: &StrategyFile,
    ds: &Dataset,
    plan: &FoldPlan,
    epochs: usize,
    seed: u64,
) -> Result<(tch::nn::VarStore, EdgeNetConfig, Vec<FeatureSpec>), EvalError> {
    let spec = file
        .model
        .as_ref()
        .expect("checked: rnn_edge_v1 has a model");
    let (fit_idx, val_idx) = fold_parts(plan);
    let fit_m: Vec<&MarketData> = fit_idx.iter().map(|&i| &ds.markets[i]).collect();
    let val_m: Vec<&MarketData> = val_idx.iter().map(|&i| &ds.markets[i]).collect();
    let specs = fold_normalisation(ds, plan);
    let norm = Normalizer::from_specs(&specs).map_err(EvalError::Model)?;
    let cfg = TrainConfig {
        epochs,
        seed,
        hidden: spec.hidden,
        layers: spec.layers,
        dropout: spec.dropout,
        window: spec.seq_len,
        ..TrainConfig::default()
    };
    let trained = tr::fit(
        &tr::sequences(&fit_m, &norm),
        &tr::sequences(&val_m, &norm),
        &cfg,
        &mut (),
    )
    .map_err(|e| EvalError::Model(format!("{}: training: {e}", plan.name)))?;
    let net_cfg = EdgeNetConfig {
        n_features: N_FEATURES,
        hidden: spec.hidden,
        layers: spec.layers,
        dropout: spec.dropout,
    };
    Ok((trained.vs, net_cfg, specs))
}

/// Runs an evaluation and writes the report (JSON at `--out`, HTML beside it).
pub fn run(opts: &EvalOptions) -> Result<EvalOutcome, EvalError> {
    let file = StrategyFile::load(&opts.strategy)?;
    if file.strategy_type != StrategyType::RnnEdgeV1 {
        return Err(EvalError::Model(format!(
            "{}: strategy_type plugin cannot be replayed by evaluate_strategy yet (only rnn_edge_v1)",
            opts.strategy.display()
        )));
    }
    strategy::replay::check_execution(&file.execution)
        .map_err(|e| EvalError::Model(format!("{}: {e}", opts.strategy.display())))?;
    let spec = file
        .model
        .as_ref()
        .expect("validated: rnn_edge_v1 has a model");
    // The strategy's own model must load (hash, features, shapes) in both modes: a walk-forward
    // of a strategy that cannot run would evaluate something else.
    tch::set_num_threads(1);
    let fixed_model = LstmEdgeModel::load(&file)
        .map_err(|e| EvalError::Model(format!("{}: {e}", opts.strategy.display())))?;
    let files = resolve_glob(&opts.snapshots).map_err(|e| EvalError::Model(e.to_string()))?;
    if files.is_empty() {
        return Err(EvalError::NoFiles(opts.snapshots.clone()));
    }
    let labels_file = LabelsFile::load(&opts.labels).map_err(|e| EvalError::Labels {
        path: opts.labels.clone(),
        message: e.to_string(),
    })?;
    let ds = dataset::build(
        &files,
        &labels_file,
        &BuildOptions {
            features: FeatureConfig {
                step_ms: spec.step_ms as i64,
                ..FeatureConfig::default()
            },
            min_steps: opts.min_steps,
            ..BuildOptions::default()
        },
    );
    let dataset_summary = edge_model::trainer::describe(&ds, None);
    tracing::info!("{}", dataset_summary.trim_end());
    if ds.markets.is_empty() {
        return Err(EvalError::NoMarkets(format!(
            "no labelled market with at least {} steps in {} file(s) ({} market(s) left out: {})",
            opts.min_steps,
            ds.files.len(),
            ds.excluded.len(),
            ds.excluded
                .iter()
                .take(5)
                .map(|(t, e)| format!("{t}: {e}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let labels: BTreeMap<MarketTicker, Outcome> = ds
        .markets
        .iter()
        .filter_map(|m| {
            labels_file
                .get(m.ticker.as_str())
                .map(|l| (m.ticker.clone(), l.result))
        })
        .collect();
    let close: BTreeMap<MarketTicker, i64> = ds
        .markets
        .iter()
        .map(|m| (m.ticker.clone(), m.close_ms))
        .collect();
    let sh = Shared {
        file: file.clone(),
        files: files.clone(),
        labels,
        close,
        cfg: ReplayConfig {
            latency: opts.latency,
            ..ReplayConfig::default()
        },
    };
    sh.cfg
        .validate()
        .map_err(|e| EvalError::Replay(e.to_string()))?;

    let (plans, inputs) = match opts.mode {
        Mode::Fixed => {
            let n = ds.markets.len();
            let n_test = ((n as f64 * opts.test_frac).round() as usize).max(1).min(n);
            let test: Vec<usize> = (n - n_test..n).collect();
            let overlapping: Vec<(usize, String)> = test
                .iter()
                .filter_map(|&i| in_sample(&file, &ds.markets[i]).map(|w| (i, w)))
                .collect();
            if !overlapping.is_empty() && !opts.allow_overlap {
                return Err(EvalError::InSample {
                    n: overlapping.len(),
                    m: test.len(),
                    why: overlapping[0].1.clone(),
                    examples: overlapping
                        .iter()
                        .take(3)
                        .map(|(i, _)| ds.markets[*i].ticker.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let plan = FoldPlan {
                name: "fixed holdout".into(),
                train: Vec::new(),
                test,
                purged: Vec::new(),
            };
            let test_m: Vec<&MarketData> = plan.test.iter().map(|&i| &ds.markets[i]).collect();
            let make = || {
                fixed_model
                    .0
                    .copy()
                    .map(|m| Box::new(m) as Box<dyn EdgeModel>)
                    .map_err(|e| EvalError::Model(format!("copying the model: {e}")))
            };
            let fold = replay_markets(&sh, &plan.name, !overlapping.is_empty(), &test_m, make)?;
            (vec![plan], vec![fold])
        }
        Mode::WalkForward => {
            let plans = walk_forward_folds(
                &ds.markets,
                opts.train_markets,
                opts.test_markets,
                opts.step_markets,
                opts.embargo_markets,
            )?;
            let results: Vec<Mutex<Option<Result<FoldInput, EvalError>>>> =
                plans.iter().map(|_| Mutex::new(None)).collect();
            let next = Mutex::new(0usize);
            let jobs = opts.jobs.clamp(1, plans.len());
            std::thread::scope(|s| {
                for _ in 0..jobs {
                    s.spawn(|| loop {
                        let k = {
                            let mut n = next.lock().expect("not poisoned");
                            let k = *n;
                            *n += 1;
                            k
                        };
                        let Some(plan) = plans.get(k) else { break };
                        tracing::info!(
                            "{}: training on {} markets, testing {} ({} purged)",
                            plan.name,
                            plan.train.len(),
                            plan.test.len(),
                            plan.purged.len()
                        );
                        let r = train_fold(&file, &ds, plan, opts.epochs, opts.seed).and_then(
                            |(vs, net_cfg, specs)| {
                                let test_m: Vec<&MarketData> =
                                    plan.test.iter().map(|&i| &ds.markets[i]).collect();
                                let mut fold_file = sh.file.clone();
                                if let Some(m) = fold_file.model.as_mut() {
                                    m.features = specs;
                                }
                                let mut fold_sh = Shared {
                                    file: fold_file,
                                    files: sh.files.clone(),
                                    labels: sh.labels.clone(),
                                    close: sh.close.clone(),
                                    cfg: sh.cfg,
                                };
                                let model = || {
                                    LstmEdgeModel::copy_of(&vs, &net_cfg)
                                        .map(|m| Box::new(m) as Box<dyn EdgeModel>)
                                        .map_err(|e| EvalError::Model(e.to_string()))
                                };
                                let mut note = None;
                                if opts.choose_signals {
                                    // Thresholds from the fold's training part only: each
                                    // candidate replayed on its validation markets.
                                    let (_, val_idx) = fold_parts(plan);
                                    let val_m: Vec<&MarketData> =
                                        val_idx.iter().map(|&i| &ds.markets[i]).collect();
                                    let mut best: Option<(Money, Signals)> = None;
                                    for c in signal_candidates(&fold_sh.file.signals) {
                                        let net = score_signals(&fold_sh, &c, &val_m, model()?)?;
                                        if best.as_ref().is_none_or(|(b, _)| net > *b) {
                                            best = Some((net, c));
                                        }
                                    }
                                    let (net, chosen) = best.expect("at least the strategy's own");
                                    let n = format!(
                                        "{}: signals chosen on its {} validation markets (net {} there): {}",
                                        plan.name,
                                        val_m.len(),
                                        net,
                                        describe_signals(&chosen)
                                    );
                                    tracing::info!("{n}");
                                    note = Some(n);
                                    fold_sh.file.signals = chosen;
                                }
                                replay_markets(&fold_sh, &plan.name, false, &test_m, model)
                                    .map(|mut f| {
                                        f.notes.extend(note);
                                        f
                                    })
                            },
                        );
                        if let Ok(f) = &r {
                            tracing::info!(
                                "{}: done, {} fills",
                                plan.name,
                                f.main.journal.fills.len()
                            );
                        }
                        *results[k].lock().expect("not poisoned") = Some(r);
                    });
                }
            });
            let mut inputs = Vec::new();
            for r in results {
                inputs.push(
                    r.into_inner()
                        .expect("not poisoned")
                        .expect("every fold ran")?,
                );
            }
            (plans, inputs)
        }
    };
    let report = build_report(
        &file.name,
        &inputs,
        &ReportOptions {
            seed: opts.seed,
            ..ReportOptions::default()
        },
    );
    if let Some(dir) = opts.out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::Write {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        }
    }
    let html = report.write(&opts.out).map_err(|e| EvalError::Write {
        path: opts.out.clone(),
        message: e.to_string(),
    })?;
    Ok(EvalOutcome {
        report,
        json: opts.out.clone(),
        html,
        folds: plans,
        dataset_summary,
    })
}

/// Markets of the dataset by ticker (tests).
pub fn tickers(ds: &Dataset, idx: &[usize]) -> BTreeSet<MarketTicker> {
    idx.iter().map(|&i| ds.markets[i].ticker.clone()).collect()
}

/// The default report path: `eval_<mode>.json` beside the strategy file.
pub fn default_out(strategy: &Path, mode: Mode) -> PathBuf {
    let m = match mode {
        Mode::Fixed => "fixed",
        Mode::WalkForward => "walkforward",
    };
    strategy.with_file_name(format!("eval_{m}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_candidates_start_with_the_files_and_are_never_looser() {
        let (base, _, _) = edge_model::trainer::default_signals();
        let c = signal_candidates(&base);
        assert_eq!(c[0], base);
        assert_eq!(c.len(), 5 * 3 * 2);
        for s in &c {
            assert!(s.min_price >= base.min_price && s.min_price < base.max_price);
            assert!(s.min_edge >= base.min_edge);
            assert!(s.max_seconds_to_close.is_some() || base.max_seconds_to_close.is_none());
            assert_eq!(
                (
                    s.max_price,
                    s.max_spread,
                    s.min_seconds_to_close,
                    s.sides,
                    s.min_ask_size
                ),
                (
                    base.max_price,
                    base.max_spread,
                    base.min_seconds_to_close,
                    base.sides,
                    base.min_ask_size
                )
            );
        }
        // A file that is already tight offers only itself and tighter still.
        let tight = Signals {
            min_price: Price::parse_dollars("0.65").unwrap(),
            max_seconds_to_close: Some(400),
            ..base.clone()
        };
        for s in signal_candidates(&tight) {
            assert!(s.min_price >= tight.min_price);
            assert!(s.max_seconds_to_close.unwrap() <= 400);
        }
    }
}
