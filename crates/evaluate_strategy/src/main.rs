//! `evaluate_strategy`: honest out-of-sample replay of a strategy, fixed holdout or walk-forward.
//! The work is `evaluate_strategy::run`; this is the thin command line around it.
//!
//! Exit codes: 0 evaluated and written (whatever the verdict); 2 error, no report written (a
//! malformed strategy, a missing or hash-mismatched weights file, no snapshot file, unreadable
//! labels, no markets left after the split, test markets inside the training span without
//! --allow-overlap).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use evaluate_strategy::{default_out, run, EvalOptions, Mode};
use pipeline::config::{CliOverrides, RuntimeConfig};
use pipeline::labels::cli::init_tracing;
use strategy::Latency;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Fixed,
    Walkforward,
}

/// Evaluate a strategy out of sample: replay it through the same runtime live trading uses,
/// executing each decision against the book one row later at the displayed ask and size
/// (never at the mid), with Kalshi's exact taker fee, settled at the labels. `fixed` tests the
/// latest --test-frac of markets with the strategy's own model (refusing markets it was trained
/// on); `walkforward` retrains a model per fold on earlier markets only. Writes a JSON report
/// (--out) and a self-contained HTML page beside it.
#[derive(Debug, Parser)]
#[command(name = "evaluate_strategy", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: CliOverrides,
    /// Strategy file [default: the config's strategy_path].
    #[arg(long, value_name = "FILE")]
    strategy: Option<PathBuf>,
    /// Snapshot files (quoted glob) [default: <data_dir>/*.snap_*ms.jsonl.gz].
    #[arg(long, value_name = "GLOB")]
    snapshots: Option<String>,
    /// Labels file [default: the config's labels_path].
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "walkforward")]
    mode: ModeArg,
    /// walkforward: markets to train each fold on.
    #[arg(long = "train-markets", default_value_t = 200)]
    train_markets: usize,
    /// walkforward: markets each fold tests.
    #[arg(long = "test-markets", default_value_t = 50)]
    test_markets: usize,
    /// walkforward: markets the window advances per fold.
    #[arg(long = "step-markets", default_value_t = 50)]
    step_markets: usize,
    /// walkforward: markets skipped between a fold's training and test markets.
    #[arg(long = "embargo-markets", default_value_t = 0)]
    embargo_markets: usize,
    /// walkforward: training epochs per fold.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// fixed: share of markets (latest by close time) to test.
    #[arg(long = "test-frac", default_value_t = 0.2)]
    test_frac: f64,
    /// fixed: evaluate test markets inside the strategy's training span, flagged in-sample.
    #[arg(long = "allow-overlap")]
    allow_overlap: bool,
    /// Execution latency: a decision executes at the first row at least this long after it
    /// (and never before the next row).
    #[arg(long = "latency-ms", default_value_t = 0)]
    latency_ms: i64,
    /// Report JSON (the HTML page goes beside it) [default: eval_<mode>.json beside the
    /// strategy file].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Folds trained at once (one torch thread each).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Markets with fewer model steps are left out.
    #[arg(long = "min-steps", default_value_t = 30)]
    min_steps: usize,
    /// walkforward: use the strategy file's signals in every fold, instead of choosing each
    /// fold's among the file's and tighter ones (higher minimum price, no early entry, higher
    /// minimum edge) by net P&L on the fold's validation markets (the last 15% of its
    /// training markets; never its test markets).
    #[arg(long = "fixed-signals")]
    fixed_signals: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(std::io::stderr().is_terminal());
    let opts = match options(&cli) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("evaluate_strategy: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(out) => {
            print!("{}", out.dataset_summary);
            for f in &out.folds {
                println!(
                    "{}: train {} markets, test {}, purged {}",
                    f.name,
                    f.train.len(),
                    f.test.len(),
                    f.purged.len()
                );
            }
            for line in &out.report.overall.summary {
                println!("{line}");
            }
            println!(
                "report: {} (page: {})",
                out.json.display(),
                out.html.display()
            );
            println!("verdict: {}", out.report.overall.verdict.as_str());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("evaluate_strategy: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn options(cli: &Cli) -> anyhow::Result<EvalOptions> {
    let cfg = RuntimeConfig::from_cli(&cli.config)?;
    anyhow::ensure!(
        cli.test_frac > 0.0 && cli.test_frac <= 1.0,
        "--test-frac must be in (0, 1], got {}",
        cli.test_frac
    );
    anyhow::ensure!(cli.latency_ms >= 0, "--latency-ms must not be negative");
    let mode = match cli.mode {
        ModeArg::Fixed => Mode::Fixed,
        ModeArg::Walkforward => Mode::WalkForward,
    };
    let strategy = cli
        .strategy
        .clone()
        .unwrap_or_else(|| cfg.strategy_path.clone());
    let out = match &cli.out {
        Some(o) => o.clone(),
        None => default_out(&strategy, mode),
    };
    Ok(EvalOptions {
        strategy,
        snapshots: cli.snapshots.clone().unwrap_or_else(|| {
            cfg.data_dir
                .join("*.snap_*ms.jsonl.gz")
                .display()
                .to_string()
        }),
        labels: cli
            .labels
            .clone()
            .unwrap_or_else(|| cfg.labels_path.clone()),
        mode,
        test_frac: cli.test_frac,
        train_markets: cli.train_markets,
        test_markets: cli.test_markets,
        step_markets: cli.step_markets,
        embargo_markets: cli.embargo_markets,
        epochs: cli.epochs,
        allow_overlap: cli.allow_overlap,
        latency: Latency {
            rows: 1,
            ms: cli.latency_ms,
        },
        out,
        jobs: cli.jobs,
        seed: cli.seed,
        min_steps: cli.min_steps,
        choose_signals: !cli.fixed_signals,
    })
}
