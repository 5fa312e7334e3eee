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
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::config::{CliOverrides, RuntimeConfig};
use pipeline::labels::{build_with_progress, BuildOptions, BuildOutcome, Progress};

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
    /// Labels file to write [default: labels_path from the config]. Labels already in it are
    /// kept.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Unresolved list to write [default: unresolved_path from the config].
    #[arg(long = "unresolved-out", value_name = "FILE")]
    unresolved_out: Option<PathBuf>,
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
    if let Some(p) = &cli.output {
        opts.output = cwd.join(p);
    }
    if let Some(p) = &cli.unresolved_out {
        opts.unresolved_output = cwd.join(p);
    }
    if cli.no_data_dir {
        opts.data_dir = None;
    }
    opts.labels_in = cli.labels_in.iter().map(|p| cwd.join(p)).collect();
    opts.archives = cli.archive.clone();
    let mut progress = BarProgress::new(tty);
    build_with_progress(opts, &mut progress).context("building labels")
}

fn init_tracing(ansi: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

/// A progress bar on a terminal; otherwise one log line per phase.
struct BarProgress {
    tty: bool,
    bar: Option<ProgressBar>,
    phase: String,
    done: u64,
}

impl BarProgress {
    fn new(tty: bool) -> BarProgress {
        BarProgress {
            tty,
            bar: None,
            phase: String::new(),
            done: 0,
        }
    }
}

impl Progress for BarProgress {
    fn start(&mut self, phase: &str, total: u64, unit: &str) {
        self.phase = phase.to_string();
        self.done = 0;
        if self.tty && total > 0 {
            let style = ProgressStyle::with_template(&format!(
                "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::new(total).with_style(style);
            bar.set_message(phase.to_string());
            self.bar = Some(bar);
        } else {
            tracing::info!(total, unit, "{phase}");
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn finish(&mut self) {
        match self.bar.take() {
            Some(b) => b.finish_and_clear(),
            None => tracing::info!(done = self.done, "{} done", self.phase),
        }
    }
}
