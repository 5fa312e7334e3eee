//! The command-line side both label tools (`build_labels`, `sync_labels`) share: the output
//! flags, and (with the `cli` feature, which only binaries enable) the progress bar and the
//! log subscriber. The library itself never prints; these are for `main`.

use std::path::{Path, PathBuf};

/// `--output` and `--unresolved-out`, for both label tools to flatten into their CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct OutputArgs {
    /// Labels file to write [default: labels_path from the config]. Labels already in it are
    /// kept.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Unresolved list to write [default: unresolved_path from the config].
    #[arg(long = "unresolved-out", value_name = "FILE")]
    pub unresolved_out: Option<PathBuf>,
}

impl OutputArgs {
    /// Replaces the configured paths by the ones given on the command line, relative to `cwd`.
    pub fn apply(&self, cwd: &Path, output: &mut PathBuf, unresolved_output: &mut PathBuf) {
        if let Some(p) = &self.output {
            *output = cwd.join(p);
        }
        if let Some(p) = &self.unresolved_out {
            *unresolved_output = cwd.join(p);
        }
    }
}

#[cfg(feature = "cli")]
pub use terminal::{init_tracing, BarProgress};

#[cfg(feature = "cli")]
mod terminal {
    use indicatif::{ProgressBar, ProgressStyle};

    use crate::labels::Progress;

    /// Logs to stderr, filtered by `RUST_LOG` (default `info`), with colours when `ansi`.
    pub fn init_tracing(ansi: bool) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(ansi)
            .init();
    }

    /// A [`Progress`] shown as a progress bar on a terminal; otherwise one log line per phase.
    #[derive(Debug)]
    pub struct BarProgress {
        tty: bool,
        bar: Option<ProgressBar>,
        phase: String,
        done: u64,
    }

    impl BarProgress {
        /// `tty`: stderr is a terminal (draw bars); otherwise log the phases.
        pub fn new(tty: bool) -> BarProgress {
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

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_terminal_gets_a_bar_per_phase_with_work_and_logs_otherwise() {
            let mut p = BarProgress::new(true);
            p.start("reading inputs", 3, "files");
            p.advance(2);
            let bar = p.bar.clone().expect("a bar on a terminal");
            assert_eq!((bar.position(), bar.length()), (2, Some(3)));
            assert_eq!(bar.message(), "reading inputs");
            p.finish();
            assert!(p.bar.is_none() && bar.is_finished());
            // A phase without work draws no bar; a new phase starts counting again.
            p.start("fetching outcomes", 0, "markets");
            assert!(p.bar.is_none());
            assert_eq!((p.phase.as_str(), p.done), ("fetching outcomes", 0));

            let mut log = BarProgress::new(false);
            log.start("reading snapshots", 5, "files");
            log.advance(1);
            log.advance(4);
            assert!(log.bar.is_none());
            assert_eq!(log.done, 5);
            log.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        out: OutputArgs,
    }

    #[test]
    fn given_paths_replace_the_configured_ones_relative_to_the_working_directory() {
        let cwd = Path::new("/work");
        let (mut labels, mut unresolved) = (PathBuf::from("cfg/l.json"), PathBuf::from("u.json"));
        let cli = Cli::parse_from(["t", "--output", "x/labels.json"]);
        cli.out.apply(cwd, &mut labels, &mut unresolved);
        assert_eq!(labels, Path::new("/work/x/labels.json"));
        assert_eq!(unresolved, Path::new("u.json"), "not given: kept");
        let cli = Cli::parse_from(["t", "--unresolved-out", "/abs/u.json"]);
        cli.out.apply(cwd, &mut labels, &mut unresolved);
        assert_eq!(unresolved, Path::new("/abs/u.json"));
        assert_eq!(labels, Path::new("/work/x/labels.json"));
    }
}
