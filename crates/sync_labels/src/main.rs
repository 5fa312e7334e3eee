//! `sync_labels`: labels the markets present in the snapshot files, asking the exchange only
//! for the outcomes not known yet. The work is `pipeline::labels::sync`, the exchange is
//! `market_data::labels::RestOutcomeSource`; this is the thin command line around them.
//!
//! Exit codes (as `build_labels`): 0 the files were written and every market that needed
//! asking was asked; 1 the files were written but fetching stopped early (the markets not
//! asked are listed as `fetch_failed` and asked again next run), or, with `--strict`, inputs
//! conflicted or something had to be skipped; 2 error, nothing was written (bad
//! configuration, a key file that cannot be used, an existing labels file that cannot be
//! read, no snapshot file matching, an output that cannot be written).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use market_data::labels::{RestOutcomeSource, SourceStats, MAX_TICKERS_PER_REQUEST};
use pipeline::config::{CliOverrides, RuntimeConfig};
use pipeline::labels::cli::{init_tracing, BarProgress, OutputArgs};
use pipeline::labels::{sync_with_progress, SyncOptions, SyncOutcome};

/// Label the markets in the snapshot files: keep the labels already known, ask the exchange
/// (GET /markets?tickers=…, then /historical/markets for markets settled before the
/// historical cutoff) about the others, and write the labels plus the unresolved list.
///
/// Markets whose snapshots say they close later are not asked about (unresolved
/// not_settled), nor are markets an earlier run found scalar or voided (unless
/// --recheck-final). A re-run asks only about what is still missing. Requests are signed when
/// the configured key file exists (market data is public, so no key is fine; a key file that
/// cannot be used is an error).
///
/// Exit status: 0 written; 1 written, but fetching stopped early (the rest is listed as
/// fetch_failed; run again) or --strict found conflicts or skipped inputs; 2 error, nothing
/// written.
#[derive(Debug, Parser)]
#[command(name = "sync_labels", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: CliOverrides,
    #[command(flatten)]
    outputs: OutputArgs,
    /// Snapshot files whose markets are to be labelled (quote the glob)
    /// [default: <data_dir>/*.snap_*ms.jsonl*].
    #[arg(long, value_name = "GLOB")]
    snapshots: Option<String>,
    /// Markets per request to the exchange (1 to 100).
    #[arg(long = "batch-size", value_name = "N", default_value_t = SyncOptions::DEFAULT_BATCH,
          value_parser = parse_batch)]
    batch_size: usize,
    /// Another labels file with known labels (labels/v1 or a bare {ticker: result} map), read
    /// after the configured labels file. Repeatable.
    #[arg(long = "labels-in", value_name = "FILE")]
    labels_in: Vec<PathBuf>,
    /// Ask again about markets an earlier run found scalar or voided.
    #[arg(long)]
    recheck_final: bool,
    /// Exit 1 also when inputs conflict or an input had to be skipped (the files are still
    /// written).
    #[arg(long)]
    strict: bool,
}

fn parse_batch(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if (1..=MAX_TICKERS_PER_REQUEST).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be 1 to {MAX_TICKERS_PER_REQUEST}, got {n}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tty = std::io::stderr().is_terminal();
    init_tracing(tty);
    match run(&cli, tty) {
        Ok((outcome, stats)) => {
            print!("{outcome}");
            println!("{stats}");
            if let Some(e) = &outcome.fetch_error {
                eprintln!(
                    "sync_labels: fetching stopped early: {e}; the files were written and \
                     the markets not asked are listed as fetch_failed: run again"
                );
                ExitCode::from(1)
            } else if cli.strict && !outcome.is_clean() {
                eprintln!(
                    "sync_labels: --strict: {} conflict(s), {} problem(s), {} snapshot \
                     problem(s)",
                    outcome.conflicts.len(),
                    outcome.problems_total,
                    outcome.snapshot_report.problems_total
                );
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("sync_labels: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli, tty: bool) -> anyhow::Result<(SyncOutcome, SourceStats)> {
    let cfg = RuntimeConfig::from_cli(&cli.config).context("loading the configuration")?;
    tracing::info!("configuration: {cfg}");
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let mut opts = SyncOptions::from_config(&cfg, chrono::Utc::now());
    cli.outputs
        .apply(&cwd, &mut opts.output, &mut opts.unresolved_output);
    if let Some(g) = &cli.snapshots {
        opts.snapshots = g.clone();
    }
    opts.batch_size = cli.batch_size;
    opts.labels_in = cli.labels_in.iter().map(|p| cwd.join(p)).collect();
    opts.recheck_final = cli.recheck_final;
    let mut source = RestOutcomeSource::from_config(&cfg)
        .with_context(|| format!("connecting to the exchange at {}", cfg.rest_base))?;
    let mut progress = BarProgress::new(tty);
    let outcome = sync_with_progress(opts, &mut source, &mut progress).context("syncing labels")?;
    Ok((outcome, source.stats().clone()))
}
