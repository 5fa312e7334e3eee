//! The high-resolution recorder behind `download_highres`: discovers a series' markets,
//! follows their order books over one WebSocket connection and writes `snapshot/v1` files on a
//! wall-clock grid, with the markets sidecar and (optionally) a raw capture of every frame.
//!
//! # Tasks (STYLE.md, Async)
//!
//! ```text
//!  ws session (market_data::ws) ──WsEvent──► core ──WriterMsg──► writer thread ──► files
//!      │ owns the socket, applies            │ ticks on the grid, reads SharedBooks,
//!      │ frames to SharedBooks               │ registry of markets, markers, status
//!      ▲                                     │
//!  subscription manager ◄──wanted markets────┤
//!  discovery (REST poll) ──markets──────────►┘
//! ```
//!
//! * The **session** task owns the connection and maintains every book (`BookSync`) in
//!   [`SharedBooks`]; it resubscribes on sequence gaps and reconnects on its own.
//! * The **core** task reads the event stream (lifecycle messages, tickers, frames for the
//!   capture), keeps the registry of markets, and at every grid instant locks the books once
//!   and turns each active market's book into one line (see [`grid`]).
//! * A single **writer** thread owns every output file behind a bounded channel, so the
//!   network never waits on a disk write (the channel only fills if the disk cannot keep up
//!   for a long time; then the core waits and the session's own backpressure applies:
//!   nothing is dropped).
//! * The **subscription manager** turns the set of markets the core wants into
//!   `subscribe`/`add_markets`/`delete_markets` commands, so the core never waits for a reply.
//! * The **discovery** task polls `GET /markets?series_ticker=…&status=open|unopened`
//!   (and `GET /markets/{ticker}` for closed markets whose result is not known yet).
//!
//! # What a snapshot file says (the invariants the tests check)
//!
//! For every market that is active (`open_time ≤ T < close_time`, not paused) at a grid instant
//! `T` (a multiple of `snapshot_ms`, UTC), the files hold exactly one of:
//! * a snapshot row at `T`: the book as read under the books' lock at the tick, with `seq` =
//!   the exchange sequence number of the last frame applied to that book;
//! * nothing, because the market is inside an outage: a `gap` marker at the first tick of the
//!   outage, a `resync` marker at the first tick the book is trustworthy again, immediately
//!   followed by that tick's row.
//!
//! Per market, lines are in time order and no `ts_ms` repeats for rows. A book that was
//! rebuilt from a fresh snapshot between two ticks (a gap and its repair both fell between
//! ticks) gets a `gap` and a `resync` at the tick, so a reader never joins two different
//! delta streams. A market's first row is preceded by a `resync` (its first snapshot), a
//! market that closes gets a `closed` marker at its close time, and when the recorder stops,
//! each market still being recorded gets a `gap` ("recorder stopped"), so a later run appending
//! to the same file never looks continuous with this one.
//!
//! # Clock
//!
//! The grid, the market schedule (open/close) and the sidecar's `ts_ms` follow the local UTC
//! clock. [`ClockSource::Exchange`] runs them on the exchange's clock instead, for replays of
//! recorded sessions whose time is the recording's (at `--speed 1`): an offset to the local
//! clock read at start, then re-read every second (the largest of the last five reads, since a
//! read can only lag) and afresh whenever a subscription is confirmed, because a replay started
//! by the first subscription holds its clock until then. Capture files are named on the same
//! clock as the snapshot files.
//!
//! # Late ticks
//!
//! A tick that fires late by less than one grid step is written with the book as read (at most
//! one step after `T`). If the process was stalled for a whole step or more, the missed ticks
//! are **not** back-filled (their book state is unknown, and copying a later state backwards
//! would leak the future): every market being recorded gets a `gap` at the first missed tick
//! (reason `recorder late …`) and a `resync` + row at the current tick. The status line and the
//! summary count these (`late_ticks`).
//!
//! # Outcomes
//!
//! [`run`] returns a [`RecordSummary`] on a clean stop (shutdown token or `duration`), or a
//! [`RecorderError`] whose [`RecorderError::exit_code`] a binary passes on: 2 configuration or
//! credentials (also when the exchange rejects the key), 3 the output folder is locked by
//! another instance, 4 the connection stayed down longer than `max_reconnect`, 5 an output file
//! could not be written, 6 the WebSocket session stopped unexpectedly (an internal error). In
//! every case the files are flushed and closed first.

mod core;
pub mod grid;
pub mod lock;
pub mod registry;
pub mod regrid;
pub mod state;
mod subs;
pub mod summary;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pipeline::auth::Signer;
use pipeline::config::{RateLimitTier, RuntimeConfig};
use pipeline::ids::SeriesTicker;
use pipeline::secrets::{Credentials, SecretsError};
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffConfig;
use crate::rest::{RateLimits, RestClient, RestConfig, Tier};
use crate::ws::WsConfig;

pub use lock::{LockError, OutDirLock, LOCK_FILE_NAME};
pub use regrid::{regrid, resolve_captures, RegridConfig, RegridSummary};
pub use summary::{summarize, DirSummary, MarketLines};

/// Everything the recorder needs. Build it with [`RecorderConfig::from_runtime`] and adjust
/// the fields (the binary maps its flags onto them).
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub series: SeriesTicker,
    /// REST base, e.g. `https://external-api.kalshi.com/trade-api/v2`.
    pub rest_base: String,
    /// WebSocket URL, e.g. `wss://external-api-ws.kalshi.com/trade-api/ws/v2`.
    pub ws_url: String,
    pub rate_limit_tier: RateLimitTier,
    /// `.env` file with the API key id, and the PEM private key.
    pub env_file: PathBuf,
    pub pem_file: PathBuf,
    /// Snapshots, the markets sidecar, captures and the lock file go here.
    pub out_dir: PathBuf,
    /// Grid step in milliseconds (`1..=3_600_000`).
    pub snapshot_ms: u64,
    /// Order-book subscriptions ask for NO-side levels on the YES scale.
    pub use_yes_price: bool,
    /// Depth ladder levels per side in each row (0 = best levels only).
    pub depth: usize,
    /// Stop after this long (`None` = until the shutdown token).
    pub duration: Option<Duration>,
    /// Snapshot (and capture) file period; whole seconds.
    pub rotate: Duration,
    /// Buffered lines are written as a gzip member this often (what a `kill -9` can lose).
    pub flush_every: Duration,
    /// Also write every WebSocket frame to `<SERIES>_<stamp>.capture.jsonl.gz`.
    pub capture: bool,
    /// Give up (exit code 4) when the WebSocket has been down this long; `None` = never.
    pub max_reconnect: Option<Duration>,
    /// One `status` log line this often.
    pub status_every: Duration,
    /// REST discovery poll period.
    pub discovery_every: Duration,
    /// Subscribe to a market this long before it opens (its first snapshot is then in place
    /// at the open).
    pub subscribe_lead: Duration,
    /// Close a WebSocket on which nothing arrived for this long (our own pings every third of
    /// it keep a healthy connection talking).
    pub ws_idle_timeout: Duration,
    /// Whose clock the grid, the schedule and the sidecar times follow.
    pub clock: ClockSource,
    /// Jitter seed for reconnect backoff (tests); `None` = OS randomness.
    pub seed: Option<u64>,
    /// Also hand every grid line and markets-sidecar line, as written, to this channel
    /// (`run_live` feeds its strategy runtime from it). Unbounded: the recorder never waits on
    /// its reader.
    pub tap: Option<std::sync::mpsc::Sender<Tap>>,
}

/// What the recorder hands to its [`RecorderConfig::tap`]: exactly the lines it writes.
#[derive(Debug, Clone)]
pub enum Tap {
    /// The snapshot lines of one tick (rows and markers), in file order.
    Lines(Vec<pipeline::snapshot::Line>),
    /// Markets sidecar lines (listings, lifecycle events, results).
    Markets(Vec<pipeline::schema::markets::MarketRecord>),
}

/// Whose clock the recorder runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockSource {
    /// The local UTC clock (keep it NTP-synced). Always, for live recording.
    #[default]
    Local,
    /// The exchange's clock, from `GET /exchange/user_data_timestamp` as an offset to the local
    /// clock: read at start, then followed (see the module docs). For a replay of a recorded
    /// session (`kalshi_sim replay --speed 1`), whose time is the recording's; never for live
    /// Kalshi, whose `as_of_time` lags the real time.
    Exchange,
}

impl RecorderConfig {
    /// Defaults for everything the runtime config does not say: hourly files, 2 s flushes, no
    /// ladder, no capture, give up after 5 minutes without a connection.
    pub fn from_runtime(rt: &RuntimeConfig) -> RecorderConfig {
        RecorderConfig {
            series: rt.series.clone(),
            rest_base: rt.rest_base.as_str().trim_end_matches('/').to_string(),
            ws_url: rt.ws_url.as_str().to_string(),
            rate_limit_tier: rt.rate_limit_tier,
            env_file: rt.env_file.clone(),
            pem_file: rt.pem_file.clone(),
            out_dir: rt.data_dir.clone(),
            snapshot_ms: u64::from(rt.snapshot_ms),
            use_yes_price: rt.use_yes_price,
            depth: 0,
            duration: None,
            rotate: Duration::from_secs(3600),
            flush_every: Duration::from_secs(2),
            capture: false,
            max_reconnect: Some(Duration::from_secs(300)),
            status_every: Duration::from_secs(60),
            discovery_every: Duration::from_secs(60),
            subscribe_lead: Duration::from_secs(60),
            ws_idle_timeout: Duration::from_secs(15),
            clock: ClockSource::Local,
            seed: None,
            tap: None,
        }
    }

    /// Every problem at once, or `Ok`.
    pub fn validate(&self) -> Result<(), RecorderError> {
        let mut p = Vec::new();
        if !(1..=3_600_000).contains(&self.snapshot_ms) {
            p.push(format!(
                "snapshot_ms must be 1..=3600000, got {}",
                self.snapshot_ms
            ));
        }
        let rot = self.rotate.as_millis();
        if rot < 1000 || rot % 1000 != 0 {
            p.push(format!(
                "rotation period must be whole seconds ≥ 1 s, got {:?}",
                self.rotate
            ));
        }
        if self.flush_every.is_zero() {
            p.push("flush interval must be positive".into());
        }
        if self.depth > 1000 {
            p.push(format!("depth must be at most 1000, got {}", self.depth));
        }
        if self.status_every.is_zero() || self.discovery_every.is_zero() {
            p.push("status and discovery intervals must be positive".into());
        }
        if self.ws_idle_timeout < Duration::from_secs(1) {
            p.push("the WebSocket idle timeout must be at least 1 s".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            p.push("duration must be positive".into());
        }
        let s = self.series.as_str();
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        {
            p.push(format!(
                "series {s:?} must be letters, digits, '.' or '_' (no '-')"
            ));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(RecorderError::Config(p.join("; ")))
        }
    }

    fn rest_tier(&self) -> Tier {
        match self.rate_limit_tier {
            RateLimitTier::Basic => Tier::Basic,
            RateLimitTier::Advanced => Tier::Advanced,
            RateLimitTier::Premier => Tier::Premier,
            RateLimitTier::Paragon => Tier::Paragon,
            RateLimitTier::Prime => Tier::Prime,
        }
    }
}

/// Why a recording ended without a [`RecordSummary`].
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// Bad configuration (exit code 2).
    #[error("configuration: {0}")]
    Config(String),
    /// The key files could not be loaded (exit code 2).
    #[error("credentials: {0}")]
    Credentials(#[from] SecretsError),
    /// The exchange rejected the credentials (exit code 2).
    #[error("the exchange rejected the credentials ({0}); check env_file/pem_file and that the key belongs to this environment")]
    Auth(String),
    /// Another instance holds the output folder (exit code 3).
    #[error("{0}")]
    Locked(LockError),
    /// The WebSocket stayed down too long (exit code 4).
    #[error("connection lost for {seconds} s (more than --max-reconnect-seconds); last error: {last_error}")]
    ConnectionLost { seconds: u64, last_error: String },
    /// An output file could not be written or read back (exit code 5).
    #[error("output: {0}")]
    Output(String),
    /// The WebSocket session task ended on its own, which it never should (exit code 6): a bug
    /// or a panic in the session, not the disk and not the network staying down.
    #[error("internal: {0}")]
    SessionStopped(String),
}

impl RecorderError {
    /// The process exit code for this error (see the module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            RecorderError::Config(_) | RecorderError::Credentials(_) | RecorderError::Auth(_) => 2,
            RecorderError::Locked(LockError::Held { .. }) => 3,
            RecorderError::Locked(LockError::Io { .. }) => 5,
            RecorderError::ConnectionLost { .. } => 4,
            RecorderError::Output(_) => 5,
            RecorderError::SessionStopped(_) => 6,
        }
    }
}

impl From<LockError> for RecorderError {
    fn from(e: LockError) -> Self {
        RecorderError::Locked(e)
    }
}

/// Why a recording stopped cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The shutdown token was cancelled (SIGINT/SIGTERM in the binary).
    Shutdown,
    /// `duration` elapsed.
    Duration,
}

/// What a recording wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSummary {
    pub stop: Option<StopReason>,
    pub elapsed: Duration,
    /// Markets with at least one line.
    pub markets: usize,
    pub rows: u64,
    pub gaps: u64,
    pub resyncs: u64,
    pub closed: u64,
    /// Grid instants skipped because the process was stalled for a whole step or more.
    pub late_ticks: u64,
    /// The latest a tick fired after its grid instant, ms.
    pub max_late_ms: u64,
    /// WebSocket connections made (1 = never reconnected).
    pub connections: u64,
    /// Order-book resubscriptions after a gap.
    pub resyncs_requested: u64,
    pub frames: u64,
    pub snapshot_files: Vec<PathBuf>,
    /// Compressed bytes written to snapshot files.
    pub snapshot_bytes: u64,
    pub capture_files: Vec<PathBuf>,
    pub capture_frames: u64,
    pub capture_bytes: u64,
    pub markets_file: Option<PathBuf>,
    pub sidecar_lines: u64,
}

impl fmt::Display for RecordSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stop = match self.stop {
            Some(StopReason::Shutdown) => "stopped by signal",
            Some(StopReason::Duration) => "duration reached",
            None => "stopped on an error",
        };
        writeln!(
            f,
            "recorded {:.1} s ({stop}): {} market(s), {} snapshot rows, {} gap / {} resync / {} closed markers",
            self.elapsed.as_secs_f64(),
            self.markets,
            self.rows,
            self.gaps,
            self.resyncs,
            self.closed
        )?;
        writeln!(
            f,
            "  connections {}, resubscriptions {}, frames {}, late ticks {} (max lateness {} ms)",
            self.connections,
            self.resyncs_requested,
            self.frames,
            self.late_ticks,
            self.max_late_ms
        )?;
        let per = if self.rows + self.gaps + self.resyncs + self.closed > 0 {
            self.snapshot_bytes as f64 / (self.rows + self.gaps + self.resyncs + self.closed) as f64
        } else {
            0.0
        };
        writeln!(
            f,
            "  snapshot files {} ({} bytes, {per:.1} bytes/line):",
            self.snapshot_files.len(),
            self.snapshot_bytes
        )?;
        write_paths(f, &self.snapshot_files)?;
        if !self.capture_files.is_empty() {
            writeln!(
                f,
                "  capture files {} ({} frames, {} bytes):",
                self.capture_files.len(),
                self.capture_frames,
                self.capture_bytes
            )?;
            write_paths(f, &self.capture_files)?;
        }
        write_sidecar(f, self.markets_file.as_deref(), self.sidecar_lines)
    }
}

/// The file list of a summary, one indented path per line (the live and the re-grid summary).
pub(crate) fn write_paths(f: &mut fmt::Formatter<'_>, paths: &[PathBuf]) -> fmt::Result {
    for p in paths {
        writeln!(f, "    {}", p.display())?;
    }
    Ok(())
}

/// The summary's last line: the markets sidecar and how many lines this run appended.
pub(crate) fn write_sidecar(
    f: &mut fmt::Formatter<'_>,
    path: Option<&Path>,
    lines: u64,
) -> fmt::Result {
    match path {
        Some(m) => writeln!(f, "  markets sidecar {} (+{lines} lines)", m.display()),
        None => Ok(()),
    }
}

/// The lock file, the sidecar and the glob of snapshot files for a series in `out_dir`.
pub fn snapshot_glob(out_dir: &Path, series: &SeriesTicker) -> String {
    format!(
        "{}/{}_*.snap_*ms.jsonl.gz",
        glob_escape(&out_dir.display().to_string()),
        series
    )
}

/// The glob of capture files for a series in `out_dir`.
pub fn capture_glob(out_dir: &Path, series: &SeriesTicker) -> String {
    format!(
        "{}/{}_*.capture.jsonl.gz",
        glob_escape(&out_dir.display().to_string()),
        series
    )
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' | '?' | '[' | ']' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Records until `shutdown` is cancelled or `cfg.duration` elapses. See the module docs for
/// what is written and what each error means; files are flushed and closed in every case.
pub async fn run(
    cfg: RecorderConfig,
    shutdown: CancellationToken,
) -> Result<RecordSummary, RecorderError> {
    cfg.validate()?;
    let lock = OutDirLock::acquire(&cfg.out_dir)?;
    tracing::info!(lock = %lock.path().display(), "output folder locked");
    let creds = Credentials::load(&cfg.env_file, &cfg.pem_file)?;
    let signer = Signer::from_credentials(&creds);
    let mut rest_cfg = RestConfig::new(cfg.rest_base.clone());
    rest_cfg.rate_limits = Some(RateLimits::for_tier(cfg.rest_tier()).scaled(90));
    rest_cfg.seed = cfg.seed;
    rest_cfg.read_retries = 3;
    rest_cfg.backoff = BackoffConfig {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(5),
        multiplier: 2,
    };
    let rest = RestClient::new(rest_cfg, Some(signer.clone()))
        .map_err(|e| RecorderError::Config(format!("REST base {}: {e}", cfg.rest_base)))?;
    url::Url::parse(&cfg.ws_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "ws" | "wss"))
        .ok_or_else(|| {
            RecorderError::Config(format!(
                "WebSocket URL {:?} is not ws:// or wss://",
                cfg.ws_url
            ))
        })?;

    let wcfg = ws_config(&cfg);
    let offset_ms = match cfg.clock {
        ClockSource::Local => 0,
        ClockSource::Exchange => core::exchange_offset_ms(&rest).await?,
    };
    let cfg = Arc::new(cfg);
    let res = core::record(cfg, rest, wcfg, signer, offset_ms, shutdown).await;
    drop(lock);
    res
}

/// The recorder's WebSocket session settings.
fn ws_config(cfg: &RecorderConfig) -> WsConfig {
    let mut wcfg = WsConfig::new(cfg.ws_url.clone());
    wcfg.idle_timeout = cfg.ws_idle_timeout;
    // Frequent pings with a short answer deadline: a half-open connection on a quiet market
    // is found in a few seconds (≤ ping interval + pong timeout), not after the whole
    // `ws_idle_timeout`, so few rows of a stale book can be written before the outage's gap.
    wcfg.ping_interval = Some(
        (cfg.ws_idle_timeout / 3)
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(300)),
    );
    wcfg.pong_timeout = Some((cfg.ws_idle_timeout / 5).max(Duration::from_millis(500)));
    wcfg.command_timeout = Duration::from_secs(30);
    wcfg.reconnect = BackoffConfig {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(10),
        multiplier: 2,
    };
    wcfg.seed = cfg.seed;
    wcfg.event_capacity = 16_384;
    wcfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RecorderConfig {
        let rt = pipeline::config::resolve(None, &|_| None, &Default::default()).unwrap();
        RecorderConfig::from_runtime(&rt)
    }

    #[test]
    fn a_half_open_connection_is_found_within_five_seconds_by_default() {
        let w = ws_config(&cfg());
        let (ping, pong) = (w.ping_interval.unwrap(), w.pong_timeout.unwrap());
        assert_eq!(
            (ping, pong),
            (Duration::from_secs(2), Duration::from_secs(3))
        );
        assert!(ping + pong < w.idle_timeout);
    }

    #[test]
    fn defaults_validate_and_bad_values_are_all_reported() {
        let c = cfg();
        c.validate().unwrap();
        assert_eq!(c.series.as_str(), "KXBTC15M");
        assert_eq!(c.snapshot_ms, 100);
        let mut b = c.clone();
        b.snapshot_ms = 0;
        b.rotate = Duration::from_millis(1500);
        b.series = SeriesTicker::new("KX-1");
        let e = b.validate().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("snapshot_ms"), "{msg}");
        assert!(msg.contains("rotation"), "{msg}");
        assert!(msg.contains("series"), "{msg}");
    }

    #[test]
    fn exit_codes_are_distinct_per_cause() {
        let held = RecorderError::Locked(LockError::Held {
            path: "x".into(),
            holder: "pid=1".into(),
        });
        let lost = RecorderError::ConnectionLost {
            seconds: 9,
            last_error: "refused".into(),
        };
        let codes = [
            RecorderError::Config("x".into()).exit_code(),
            RecorderError::Auth("401".into()).exit_code(),
            held.exit_code(),
            lost.exit_code(),
            RecorderError::Output("disk full".into()).exit_code(),
            RecorderError::SessionStopped("gone".into()).exit_code(),
        ];
        assert_eq!(codes, [2, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn globs_escape_the_folder() {
        let g = snapshot_glob(Path::new("/d/a[1]"), &SeriesTicker::new("KX"));
        assert_eq!(g, "/d/a[[]1[]]/KX_*.snap_*ms.jsonl.gz");
        let g = capture_glob(Path::new("/d"), &SeriesTicker::new("KX"));
        assert_eq!(g, "/d/KX_*.capture.jsonl.gz");
    }
}
