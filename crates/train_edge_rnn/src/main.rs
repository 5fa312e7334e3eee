//! `train_edge_rnn`: trains the LSTM edge model on snapshot files and labels. The work is
//! `edge_model::trainer::run`; this is the thin command line around it.
//!
//! Exit codes: 0 trained and written (whatever the verdict); 2 error, nothing written in
//! `--outdir` (no snapshot file matched, unreadable labels, labels covering no snapshot market,
//! too few markets for the split, an unknown or unavailable device, an `--outdir` that already
//! holds a model without `--force`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use edge_model::train::{EpochReport, Progress, TrainConfig};
use edge_model::trainer::{run, TrainOptions};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::config::{CliOverrides, RuntimeConfig};
use pipeline::dataset::SplitFractions;
use pipeline::labels::cli::init_tracing;
use pipeline::schema::strategy::Device;

/// Train the LSTM edge model: every snapshot market with a label becomes sequences of causal
/// features (one step per --step-ms), split by close time into train / validation / test
/// (purged so no split overlaps an earlier one), and the model is scored against the market's
/// own mid on each split. Writes model.safetensors, strategy.json and metrics.json into
/// --outdir and ends with a verdict: the model beats the market only when the test split's
/// paired Brier interval lies below zero.
#[derive(Debug, Parser)]
#[command(name = "train_edge_rnn", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: CliOverrides,
    /// Snapshot files (quoted glob) [default: <data_dir>/*.snap_*ms.jsonl.gz].
    #[arg(long, value_name = "GLOB")]
    snapshots: Option<String>,
    /// Labels file (labels/v1 or a bare map) [default: the config's labels_path].
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Output folder [default: the folder of the config's strategy_path].
    #[arg(long, value_name = "DIR")]
    outdir: Option<PathBuf>,
    /// Replace a model already in --outdir.
    #[arg(long)]
    force: bool,
    /// cpu, cuda, cuda:<n> or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Model step cadence, ms.
    #[arg(long = "step-ms", default_value_t = 1000)]
    step_ms: i64,
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    #[arg(long, default_value_t = 1)]
    layers: usize,
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Truncated back-propagation window, in steps (the LSTM state is carried across windows).
    #[arg(long, default_value_t = 300)]
    window: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    #[arg(long = "weight-decay", default_value_t = 1e-4)]
    weight_decay: f64,
    /// Gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Early stopping: epochs without a better validation loss.
    #[arg(long, default_value_t = 4)]
    patience: usize,
    /// Torch intra-op threads (results are reproducible for a given seed and thread count).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Share of markets (latest by close time) held out for testing.
    #[arg(long = "test-frac", default_value_t = 0.15)]
    test_frac: f64,
    /// Share of markets (before the test ones) for validation / early stopping.
    #[arg(long = "val-frac", default_value_t = 0.15)]
    val_frac: f64,
    /// Markets with fewer steps are left out (and listed).
    #[arg(long = "min-steps", default_value_t = 30)]
    min_steps: usize,
    /// Train nothing: load this strategy.json and its model (schema, weights hash, features,
    /// shapes) and say whether it can run.
    #[arg(long = "check", value_name = "STRATEGY")]
    check: Option<PathBuf>,
}

fn check(path: &std::path::Path) -> anyhow::Result<String> {
    let s = pipeline::schema::strategy::Strategy::load(path)?;
    let (model, _) = edge_model::LstmEdgeModel::load(&s)?;
    let cfg = model.net().config();
    Ok(format!(
        "{}: ok: {} ({:?}), LSTM {} features -> {} hidden x {} layer(s), weights {}\n",
        path.display(),
        s.name,
        s.strategy_type,
        cfg.n_features,
        cfg.hidden,
        cfg.layers,
        s.weights_path()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ))
}

struct Bar {
    tty: bool,
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64) {
        if !self.tty {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} batches, loss {msg} (ETA {eta})",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        bar.set_length(total as u64);
        bar.set_prefix(format!("epoch {epoch}"));
        bar.set_position(done as u64);
        bar.set_message(format!("{loss:.4}"));
    }

    fn epoch(&mut self, r: &EpochReport) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        tracing::info!(
            "epoch {}/{}: train loss {:.5}, validation loss {:.5}{} ({:.1} s)",
            r.epoch,
            r.epochs,
            r.train_loss,
            r.val_loss,
            if r.best { " (best)" } else { "" },
            r.seconds
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tty = std::io::stderr().is_terminal();
    init_tracing(tty);
    if let Some(path) = &cli.check {
        return match check(path) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("train_edge_rnn: error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match options(&cli) {
        Ok(opts) => match run(&opts, &mut Bar { tty, bar: None }) {
            Ok(outcome) => {
                print!("{outcome}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("train_edge_rnn: error: {e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("train_edge_rnn: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn options(cli: &Cli) -> anyhow::Result<TrainOptions> {
    let cfg = RuntimeConfig::from_cli(&cli.config)?;
    let device: Device = cli
        .device
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--device: {e}"))?;
    for (name, v) in [("--test-frac", cli.test_frac), ("--val-frac", cli.val_frac)] {
        anyhow::ensure!(
            v.is_finite() && v > 0.0 && v < 1.0,
            "{name} must be between 0 and 1, got {v}"
        );
    }
    anyhow::ensure!(
        cli.test_frac + cli.val_frac < 0.9,
        "--test-frac + --val-frac must leave at least 10% to train on"
    );
    anyhow::ensure!(cli.step_ms > 0, "--step-ms must be positive");
    let snapshots = cli.snapshots.clone().unwrap_or_else(|| {
        cfg.data_dir
            .join("*.snap_*ms.jsonl.gz")
            .display()
            .to_string()
    });
    let outdir = cli.outdir.clone().unwrap_or_else(|| {
        cfg.strategy_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    Ok(TrainOptions {
        snapshots,
        labels: cli
            .labels
            .clone()
            .unwrap_or_else(|| cfg.labels_path.clone()),
        outdir,
        device,
        force: cli.force,
        step_ms: cli.step_ms,
        min_steps: cli.min_steps,
        split: SplitFractions {
            val: cli.val_frac,
            test: cli.test_frac,
        },
        threads: cli.threads,
        series: cfg.series.clone(),
        train: TrainConfig {
            epochs: cli.epochs,
            seed: cli.seed,
            hidden: cli.hidden,
            layers: cli.layers,
            dropout: cli.dropout,
            window: cli.window,
            batch: cli.batch,
            lr: cli.lr,
            weight_decay: cli.weight_decay,
            clip: cli.clip,
            patience: cli.patience,
            // The trainer maps --device to libtorch itself (and rejects an unavailable one).
            ..TrainConfig::default()
        },
    })
}
