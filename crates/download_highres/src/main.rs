//! `download_highres`: records a Kalshi series' order books at high resolution.
//!
//! Thin: parse flags, resolve the runtime config, call `market_data::recorder::run`, map the
//! result to an exit code. Exit codes (a scheduler can act on them):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | stopped cleanly (`--duration` reached, SIGINT or SIGTERM); every file flushed and closed |
//! | 2 | configuration, flags or credentials are wrong (also when the exchange rejects the key) |
//! | 3 | another instance is recording into the same `--out-dir` (its lock file names it) |
//! | 4 | the exchange was unreachable for longer than `--max-reconnect-seconds` |
//! | 5 | an output file could not be written |
//! | 6 | the WebSocket session stopped unexpectedly (an internal error; the files are flushed) |
//!
//! With `--from-capture` it records nothing live: it re-grids recorded captures offline
//! (`market_data::recorder::regrid`) into the same files; 0 done, 2 bad flags or input, 3 the
//! output folder is locked, 5 an output file could not be written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use market_data::book::NoPriceConvention;
use market_data::recorder::{self, ClockSource, RecorderConfig, RegridConfig};
use pipeline::config::{CliOverrides, RuntimeConfig};
use pipeline::ids::SeriesTicker;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "download_highres",
    version,
    about = "Record a Kalshi series' order books at high resolution into snapshot/v1 files",
    long_about = "Record a Kalshi series' order books at high resolution into snapshot/v1 files.\n\n\
        Discovers the series' open and upcoming markets, follows each order book over one WebSocket \
        connection and writes one row per active market every --snapshot-ms on a wall-clock grid, \
        with gap/resync markers whenever a book cannot be trusted, a markets sidecar and, with \
        --capture, every raw frame. Runs until --duration, SIGINT or SIGTERM.\n\n\
        Exit codes: 0 stopped cleanly; 2 configuration/credentials error; 3 the output folder is \
        locked by another instance; 4 connection lost for longer than --max-reconnect-seconds; \
        5 an output file could not be written; 6 the WebSocket session stopped unexpectedly \
        (internal error).\n\n\
        With --from-capture FILE_OR_GLOB... --out-dir DIR: no network; re-grid recorded capture \
        files into the same snapshot files, markers and markets sidecar, on a virtual clock (each \
        frame's receive time): the row at grid instant T is the book after every frame received \
        at or before T."
)]
struct Cli {
    #[command(flatten)]
    config: CliOverrides,
    /// Snapshot grid step in milliseconds [default: the config's snapshot_ms].
    #[arg(long, value_name = "MS")]
    snapshot_ms: Option<u32>,
    /// Output folder [default: the config's data_dir].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Depth ladder levels per side in each row (0 = best bid/ask and sizes only).
    #[arg(long, value_name = "N", default_value_t = 0)]
    depth: usize,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Start a new snapshot (and capture) file every this many minutes, aligned to the clock.
    #[arg(long, value_name = "MINUTES", default_value_t = 60)]
    rotate_minutes: u64,
    /// Write buffered lines to disk this often (the most a kill -9 can lose).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    flush_seconds: f64,
    /// Also keep every WebSocket frame in <out-dir>/<SERIES>_<stamp>.capture.jsonl.gz.
    #[arg(long)]
    capture: bool,
    /// Exit with code 4 when the WebSocket has been down this long (0 = never give up).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    max_reconnect_seconds: u64,
    /// Log one status line this often.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    status_seconds: u64,
    /// Poll the REST market list this often (lifecycle messages cover the time between).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    discovery_seconds: u64,
    /// Subscribe to a market this long before it opens.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    subscribe_lead_seconds: u64,
    /// Whose clock the grid follows: `local` (always, for live recording) or `exchange` (a
    /// replay of a recorded session, `kalshi_sim replay --speed 1`, whose time is the
    /// recording's; GET /exchange/user_data_timestamp read at start, every second and after
    /// each subscription, so a replay started by the subscription is followed).
    #[arg(long, value_enum, default_value_t = Clock::Local)]
    clock: Clock,
    /// Do not record: read the output folder back and print what is in it.
    #[arg(long)]
    summary: bool,
    /// Do not record live: re-grid these capture files (paths or quoted globs) offline into
    /// --out-dir (which must not hold this series' files yet).
    #[arg(
        long,
        value_name = "FILE_OR_GLOB",
        num_args = 1..,
        requires = "out_dir",
        conflicts_with_all = [
            "duration", "capture", "max_reconnect_seconds", "status_seconds",
            "discovery_seconds", "subscribe_lead_seconds", "clock", "summary", "flush_seconds"
        ]
    )]
    from_capture: Vec<String>,
    /// With --from-capture: market metadata, a markets sidecar (<SERIES>_markets.jsonl) or a
    /// markets list (JSON lines with ticker, open_time, close_time, …) [default: the captures'
    /// lifecycle frames].
    #[arg(long, value_name = "FILE", requires = "from_capture")]
    markets: Option<PathBuf>,
    /// With --from-capture: whether the captures' NO-side prices are on the YES scale (the
    /// use_yes_price the recorder subscribed with) [default: the config's use_yes_price; the
    /// May 2026 recordings in shared/data need false].
    #[arg(long, value_name = "BOOL", requires = "from_capture")]
    use_yes_price: Option<bool>,
    /// With --from-capture: a connection silent this long is taken as lost (its books get a
    /// gap until fresh snapshots), like the live recorder's WebSocket idle timeout.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 15,
        requires = "from_capture"
    )]
    silence_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Clock {
    Local,
    Exchange,
}

fn regrid_config(cli: &Cli, rt: &RuntimeConfig) -> anyhow::Result<RegridConfig> {
    let captures = recorder::resolve_captures(&cli.from_capture)?;
    let out_dir = cli
        .out_dir
        .clone()
        .context("--from-capture needs --out-dir")?;
    let mut c = RegridConfig::new(captures, out_dir);
    c.markets = cli.markets.clone();
    c.series = cli.config.series.as_deref().map(SeriesTicker::new);
    c.snapshot_ms = cli.snapshot_ms.map_or(u64::from(rt.snapshot_ms), u64::from);
    c.depth = cli.depth;
    if cli.rotate_minutes == 0 {
        bail!("--rotate-minutes must be at least 1");
    }
    c.rotate = Duration::from_secs(cli.rotate_minutes.saturating_mul(60));
    c.convention =
        NoPriceConvention::from_use_yes_price(cli.use_yes_price.unwrap_or(rt.use_yes_price));
    c.silence = Duration::from_secs(cli.silence_seconds);
    Ok(c)
}

fn positive_secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 {
        bail!("{name} must be a positive number of seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

fn recorder_config(cli: &Cli, rt: &RuntimeConfig) -> anyhow::Result<RecorderConfig> {
    let mut c = RecorderConfig::from_runtime(rt);
    if let Some(ms) = cli.snapshot_ms {
        c.snapshot_ms = u64::from(ms);
    }
    if let Some(d) = &cli.out_dir {
        c.out_dir = if d.is_relative() {
            std::env::current_dir()
                .context("reading the current directory")?
                .join(d)
        } else {
            d.clone()
        };
    }
    c.depth = cli.depth;
    c.duration = cli
        .duration
        .map(|d| positive_secs("--duration", d))
        .transpose()?;
    if cli.rotate_minutes == 0 {
        bail!("--rotate-minutes must be at least 1");
    }
    c.rotate = Duration::from_secs(cli.rotate_minutes.saturating_mul(60));
    c.flush_every = positive_secs("--flush-seconds", cli.flush_seconds)?;
    c.capture = cli.capture;
    c.max_reconnect =
        (cli.max_reconnect_seconds > 0).then(|| Duration::from_secs(cli.max_reconnect_seconds));
    if cli.status_seconds == 0 || cli.discovery_seconds == 0 {
        bail!("--status-seconds and --discovery-seconds must be at least 1");
    }
    c.status_every = Duration::from_secs(cli.status_seconds);
    c.discovery_every = Duration::from_secs(cli.discovery_seconds);
    c.subscribe_lead = Duration::from_secs(cli.subscribe_lead_seconds);
    c.clock = match cli.clock {
        Clock::Local => ClockSource::Local,
        Clock::Exchange => ClockSource::Exchange,
    };
    c.validate()?;
    Ok(c)
}

/// `--from-capture`: the offline re-grid.
fn from_capture(cli: &Cli) -> ExitCode {
    let cfg = match RuntimeConfig::from_cli(&cli.config)
        .map_err(anyhow::Error::from)
        .and_then(|rt| regrid_config(cli, &rt))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    report(recorder::regrid(&cfg))
}

/// Cancels `token` on the first SIGINT/SIGTERM. A second SIGINT (Ctrl-C pressed again) exits
/// at once with 130; repeated SIGTERMs are ignored (`timeout` and process managers send the
/// signal to the process and to its group, and that must still close the files).
fn wire_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            loop {
                let interrupt = tokio::select! {
                    _ = term.recv() => false,
                    _ = int.recv() => true,
                };
                let name = if interrupt { "SIGINT" } else { "SIGTERM" };
                if !token.is_cancelled() {
                    tracing::info!(signal = name, "stopping: flushing and closing files");
                    token.cancel();
                } else if interrupt {
                    tracing::error!(
                        signal = name,
                        "second interrupt: exiting without closing files"
                    );
                    std::process::exit(130);
                }
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_ok() {
                token.cancel();
            }
        }
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if !cli.from_capture.is_empty() {
        return from_capture(&cli);
    }
    let (rt, cfg) = match RuntimeConfig::from_cli(&cli.config)
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let c = recorder_config(&cli, &rt)?;
            Ok((rt, c))
        }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if cli.summary {
        return match recorder::summarize(&cfg.out_dir, &cfg.series) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        };
    }
    tracing::info!(config = %rt.summary(), "configuration");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let token = CancellationToken::new();
    let result = runtime.block_on(async {
        wire_signals(token.clone());
        recorder::run(cfg, token).await
    });
    report(result)
}

/// Prints the summary (exit 0) or the error (its own exit code).
fn report(result: Result<impl std::fmt::Display, recorder::RecorderError>) -> ExitCode {
    match result {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
