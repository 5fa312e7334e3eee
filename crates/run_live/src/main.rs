//! `run_live`: runs a strategy on a live series, dry-run unless `--live`.
//! Thin: flags → `run_live::run` → exit code (see the crate docs and `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pipeline::config::{CliOverrides, RuntimeConfig};
use pipeline::labels::cli::init_tracing;
use run_live::{Control, LiveOptions};
use tokio_util::sync::CancellationToken;

/// Run a strategy on a live series: follows the series' markets over the WebSocket with the
/// recorder's book sync and grid, feeds each row to the same runtime evaluate_strategy replays,
/// and journals every row, decision, refusal, order, fill and settlement to
/// <live_dir>/journal.jsonl. Dry-run by default: fills are simulated against the live book with
/// the replay's execution model (next row, displayed ask and size, exact fees) and positions
/// settle at the markets' results. --live sends real V2 orders.
///
/// Kill switch: create <live_dir>/KILL, or send SIGUSR1: no new orders from the next row on.
/// SIGINT/SIGTERM stop cleanly.
///
/// Exit codes: 0 stopped cleanly; 2 bad input (strategy, model, config, credentials, series),
/// before connecting; 3 live_dir in use by another runner; 4 exchange unreachable too long;
/// 5 journal or data file not writable; 6 internal error; 7 --live reconciliation failed
/// (nothing traded).
#[derive(Debug, Parser)]
#[command(name = "run_live", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: CliOverrides,
    /// Strategy file [default: the config's strategy_path].
    #[arg(long, value_name = "FILE")]
    strategy: Option<PathBuf>,
    /// Send real orders (default: dry-run).
    #[arg(long)]
    live: bool,
    /// Journal and recorded data folder [default: the config's live_dir].
    #[arg(long, value_name = "DIR")]
    live_dir: Option<PathBuf>,
    /// Stop after this many seconds [default: until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// One status line this often.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    status_seconds: f64,
    /// Serve Prometheus metrics here (loopback only), e.g. 127.0.0.1:9184.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// A row older than this when it arrives blocks its market (stale book).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    stale_ms: i64,
    /// --live: leave this runner's resting orders at the exchange on shutdown.
    #[arg(long)]
    keep_resting: bool,
    /// Depth ladder levels per side kept in each row (the execution model walks them).
    #[arg(long, value_name = "N", default_value_t = 10)]
    depth: usize,
    /// Poll the REST market list this often.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    discovery_seconds: u64,
    /// Subscribe to a market this long before it opens.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    subscribe_lead_seconds: u64,
    /// Also keep every WebSocket frame in <live_dir>/data (a capture, for parity checks).
    #[arg(long)]
    capture: bool,
    /// Whose clock the grid follows: `local` (always, against Kalshi) or `exchange` (a
    /// `kalshi_sim replay` of a recorded session at --speed 1, whose time is the recording's).
    #[arg(long, value_enum, default_value_t = ClockArg::Local)]
    clock: ClockArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClockArg {
    Local,
    Exchange,
}

fn options(cli: &Cli) -> Result<LiveOptions, String> {
    let mut rt = RuntimeConfig::from_cli(&cli.config).map_err(|e| e.to_string())?;
    if let Some(d) = &cli.live_dir {
        rt.live_dir = d.clone();
    }
    let mut o = LiveOptions::new(rt);
    if let Some(s) = &cli.strategy {
        o.strategy_path = s.clone();
    }
    o.live = cli.live;
    o.duration = match cli.duration {
        Some(d) if d > 0.0 && d.is_finite() => Some(Duration::from_secs_f64(d)),
        Some(d) => {
            return Err(format!(
                "--duration {d}: must be a positive number of seconds"
            ))
        }
        None => None,
    };
    if !(cli.status_seconds > 0.0 && cli.status_seconds.is_finite()) {
        return Err(format!(
            "--status-seconds {}: must be positive",
            cli.status_seconds
        ));
    }
    o.status_every = Duration::from_secs_f64(cli.status_seconds);
    o.metrics_addr = cli.metrics_addr;
    if cli.stale_ms <= 0 {
        return Err(format!("--stale-ms {}: must be positive", cli.stale_ms));
    }
    o.stale_ms = cli.stale_ms;
    o.cancel_on_shutdown = !cli.keep_resting;
    o.depth = cli.depth;
    o.discovery_every = Duration::from_secs(cli.discovery_seconds.max(1));
    o.subscribe_lead = Duration::from_secs(cli.subscribe_lead_seconds);
    o.capture = cli.capture;
    o.clock = match cli.clock {
        ClockArg::Local => market_data::recorder::ClockSource::Local,
        ClockArg::Exchange => market_data::recorder::ClockSource::Exchange,
    };
    Ok(o)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let opts = match options(&cli) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::channel();
    if let Err(e) = signals(shutdown.clone(), tx.clone()) {
        eprintln!("error: cannot install signal handlers: {e}");
        return ExitCode::from(6);
    }
    tracing::info!(mode = if opts.live { "LIVE" } else { "dry-run" }, strategy = %opts.strategy_path.display(), series = %opts.rt.series, live_dir = %opts.live_dir().display(), "run_live starting");
    match run_live::run(&opts, shutdown, (tx, rx)) {
        Ok(summary) => {
            print!("{summary}");
            println!(
                "journal: {}",
                opts.live_dir()
                    .join(run_live::journal::JOURNAL_FILE)
                    .display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// SIGINT/SIGTERM stop; SIGUSR1 is the kill switch. On a thread of their own (the async
/// runtime belongs to the run).
fn signals(
    shutdown: CancellationToken,
    ctl: std::sync::mpsc::Sender<Control>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut usr1)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::user_defined1()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => shutdown.cancel(),
                    _ = term.recv() => shutdown.cancel(),
                    _ = usr1.recv() => {
                        let _ = ctl.send(Control::Kill("kill switch signal (SIGUSR1)".into()));
                    }
                }
            }
        })
    });
    Ok(())
}
