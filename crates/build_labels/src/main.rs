//! `build_labels`: builds or updates the labels file (`labels/v1`) and the unresolved list from
//! local data, without the network. The work is `pipeline::labels::build`; this is the thin
//! command line around it.
//!
//! Exit codes: 0 the files were written (conflicts and skipped inputs are printed); 1 with
//! `--strict`, the files were written but inputs conflicted or something had to be skipped;
//! 2 error, nothing was written (bad configuration, an existing labels file that cannot be
//! read, an input that names no file, an output that cannot be written).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pipeline::config::{CliOverrides, RuntimeConfig};
use pipeline::labels::cli::{init_tracing, BarProgress, OutputArgs};
use pipeline::labels::{build_with_progress, BuildOptions, BuildOutcome};

/// Build or update the labels file (labels/v1) from local data: existing label files, the
/// downloader's markets sidecars and raw captures in data_dir, and archived exchange data.
///
/// Inputs are read in a fixed order (label files, sidecars, captures, archives; sorted by path
/// within each), so the same inputs give the same bytes. When two inputs disagree about a
/// market, the label read first is kept and the conflict printed. A damaged input file, line
/// or entry is reported by name and skipped.
///
/// Exit status: 0 written; 1 written, but --strict found conflicts or skipped inputs;
/// 2 error, nothing written.
#[derive(Debug, Parser)]
#[command(name = "build_labels", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: CliOverrides,
    #[command(flatten)]
    outputs: OutputArgs,
    /// Archived exchange data: Kalshi market objects (a map keyed by ticker, a list, a
    /// /markets or /events response, JSON lines), labels files, sidecars or captures. A file,
    /// a folder (its files) or a quoted glob. Repeatable.
    #[arg(long, value_name = "PATH_OR_GLOB")]
    archive: Vec<String>,
    /// Another labels file to merge in (labels/v1 or a bare {ticker: result} map), read after
    /// the configured labels file. Repeatable.
    #[arg(long = "labels-in", value_name = "FILE")]
    labels_in: Vec<PathBuf>,
    /// Do not scan data_dir for markets sidecars and captures.
    #[arg(long)]
    no_data_dir: bool,
    /// Exit 1 when inputs conflict or an input had to be skipped (the files are still
    /// written).
    #[arg(long)]
    strict: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tty = std::io::stderr().is_terminal();
    init_tracing(tty);
    match run(&cli, tty) {
        Ok(outcome) => {
            print!("{outcome}");
            if cli.strict && !outcome.is_clean() {
                eprintln!(
                    "build_labels: --strict: {} conflict(s), {} problem(s)",
                    outcome.conflicts.len(),
                    outcome.problems_total
                );
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("build_labels: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli, tty: bool) -> anyhow::Result<BuildOutcome> {
    let cfg = RuntimeConfig::from_cli(&cli.config).context("loading the configuration")?;
    tracing::info!("configuration: {cfg}");
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let mut opts = BuildOptions::from_config(&cfg, chrono::Utc::now());
    cli.outputs
        .apply(&cwd, &mut opts.output, &mut opts.unresolved_output);
    if cli.no_data_dir {
        opts.data_dir = None;
    }
    opts.labels_in = cli.labels_in.iter().map(|p| cwd.join(p)).collect();
    opts.archives = cli.archive.clone();
    let mut progress = BarProgress::new(tty);
    build_with_progress(opts, &mut progress).context("building labels")
}
