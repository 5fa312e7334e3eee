//! Replay: serve recorded capture files (DESIGN.md §3.1) as Kalshi's WebSocket stream, at the
//! recorded speed, faster, or as fast as the clients read, with REST market metadata from a
//! markets file. A downloader or a live runner pointed at it meets real message content.
//!
//! ```text
//! captures ──scan──► markets, times ──► schedule (listing, open, determined, settled)
//!          ──reader thread──► frames ──driver (paced)──► State (books, clock) ──► batches
//!                                                                     │
//!                                   REST (state now) ◄────────────────┤
//!                                   WS connections (own sids/seqs) ◄──┘ broadcast
//! ```
//!
//! - **Clock.** Replay time is the capture's `recv_ns` (ms) of the last frame applied; it starts
//!   at the first frame. Recorded `ts`/`ts_ms` fields inside messages are passed through as
//!   recorded (no shift): the replay lives in the recording's time, and REST times
//!   (`open_time`, `close_time`, `updated_ts`, …) and lifecycle timestamps use the same clock.
//! - **Pacing.** Frame `t` goes out `(t − start − skipped gaps) / speed` after the start;
//!   gaps between frames longer than `max_gap` (e.g. between two capture files) are cut to
//!   `max_gap`. [`Speed::Max`] does not wait, but never lets the slowest connected client fall
//!   more than a few batches behind (it waits for it; a client that reads nothing for 10 s is
//!   no longer waited for until it catches up, and overflows with error 25 if it never does).
//! - **Markets.** Every market seen in the captures is a market of the replay: listed
//!   `listing_lead_ms` before its open (or at its first frame if earlier), `active` from
//!   `open_time` to `close_time`, then `closed`, `determined` `determination_delay_ms` later
//!   when the markets file has its result, `finalized` after the settlement timer. A market
//!   without an entry in the markets file is a warning: its open/close become its first/last
//!   recorded frame and it never determines.
//! - **Lifecycle.** `market_lifecycle_v2` events at their replay times within the recording:
//!   `created` (listing after the start), `activated` (open), `determined` (with the result),
//!   `settled`. Like Kalshi (API.md §5.6) and `serve`, the scheduled close itself has no event;
//!   the status in REST turns `closed` at `close_time`.
//! - **Books.** The replay keeps each market's book from the recorded snapshots and deltas; a
//!   client's `orderbook_snapshot` is built from it, then the recorded deltas follow under the
//!   client's own sid with contiguous `seq` (see `ws`). A new recorded snapshot of a market
//!   (market rotation, a re-subscription, the next capture file) replaces the book and is sent
//!   to subscribers as a new `orderbook_snapshot`.
//! - **Bad input.** A line that is not a capture record, a frame that does not parse, a
//!   truncated or corrupt gzip stream: reported as `file:line: …` (log + report) and skipped;
//!   the replay continues with what is readable. A malformed markets file is an error.

mod capture;
pub mod markets;
mod rest;
mod state;
mod ws;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pipeline::money::Money;
use pipeline::secrets::{ApiKeyId, PrivateKey};
use rsa::RsaPublicKey;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::naming::uuid_like;
use crate::engine::{Levels, LifecycleKind, MarketInfo};
use crate::http_common::{bind, serve, server_accessors, setup_keys, Front, Keys};
use crate::keys::KeyError;
use crate::server::{KeySetup, RateLimitConfig, Tier, WsConfig};
pub use markets::{read_markets_file, MarketMeta, MarketsFile, MarketsFileError};
pub use state::Tally;
use state::{Batch, Event, Issues, Item, LifeItem, MarketState, State, Timing};

/// How fast recorded time runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Recorded seconds per real second (1 = as recorded).
    Factor(f64),
    /// No waiting: as fast as the slowest connected client reads.
    Max,
}

impl FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "speed {s:?}: expected a positive number (1 = recorded speed) or `max`"
            )),
        }
    }
}

/// When the replay starts sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// As soon as it is listening.
    Immediately,
    /// At the first `subscribe` command of any WebSocket client.
    OnSubscribe,
    /// At [`Replay::start`] (tests: connect and subscribe first).
    Manual,
}

/// Everything [`spawn_replay`] needs.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Capture files (`*.capture.jsonl.gz`), replayed one after the other in recorded order.
    pub captures: Vec<PathBuf>,
    /// Market metadata: a plain markets list or our markets sidecar (see [`markets`]).
    pub markets_file: Option<PathBuf>,
    pub speed: Speed,
    pub start: StartMode,
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    pub key: KeySetup,
    /// Write `kalshi_sim_key.pem` + `.env` here (needs a private key).
    pub key_dir: Option<PathBuf>,
    pub rate_limit: RateLimitConfig,
    pub ws: WsConfig,
    /// Pauses between frames longer than this (recorded time) are cut to it; `None` keeps
    /// them whole.
    pub max_gap: Option<Duration>,
    /// A market is listed this long before its open (or at its first frame if earlier).
    pub listing_lead_ms: i64,
    /// From close to `determined` (when the result is known).
    pub determination_delay_ms: i64,
    /// From `determined` to `finalized`.
    pub settlement_timer_seconds: i64,
    /// Title of markets the markets file gives none (default: "<SERIES> market (replay)").
    pub title: Option<String>,
    /// What `/portfolio/balance` reports (nothing trades in a replay).
    pub initial_balance: Money,
}

impl Default for ReplayConfig {
    fn default() -> ReplayConfig {
        ReplayConfig {
            captures: Vec::new(),
            markets_file: None,
            speed: Speed::Factor(1.0),
            start: StartMode::Immediately,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            key: KeySetup::Generate,
            key_dir: None,
            rate_limit: RateLimitConfig::tier(Tier::Basic),
            ws: WsConfig::default(),
            max_gap: Some(Duration::from_secs(60)),
            listing_lead_ms: 15 * 60_000,
            determination_delay_ms: 1_000,
            settlement_timer_seconds: 1,
            title: None,
            initial_balance: Money::from_cents(1_000_000),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no capture files given")]
    NoCaptures,
    #[error("{path}: {source}", path = path.display())]
    Capture {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no readable frames in the capture files ({0})")]
    NoFrames(String),
    #[error(transparent)]
    Markets(#[from] MarketsFileError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// One capture file as the replay read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureReport {
    pub path: PathBuf,
    /// Non-empty lines read.
    pub lines: u64,
    /// Lines that parsed (served or ignored frames).
    pub frames: u64,
    /// Lines skipped as unreadable (each reported with file:line).
    pub bad_lines: u64,
    /// Why reading stopped before the end of the file (truncated/corrupt gzip), if it did.
    pub stopped: Option<String>,
}

/// Where a replay is.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayProgress {
    pub started: bool,
    pub finished: bool,
    /// Replay time (Unix ms, the recording's clock).
    pub now_ms: i64,
    /// First and last frame of the recording (Unix ms).
    pub start_ms: i64,
    pub end_ms: i64,
    /// Lines in the capture files that hold a frame (from the scan before the start).
    pub frames_total: u64,
    pub tally: Tally,
    /// WebSocket messages written to all clients so far.
    pub ws_messages_sent: u64,
    pub problems: u64,
}

/// What a finished replay did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayReport {
    pub captures: Vec<CaptureReport>,
    pub tally: Tally,
    /// Markets of the replay (seen in the captures).
    pub markets: Vec<String>,
    /// Markets seen in the captures without an entry in the markets file.
    pub missing_metadata: Vec<String>,
    /// `file:line: message` for every problem (the first 200), and how many there were.
    pub problems: Vec<String>,
    pub problem_count: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Real time from the start to the last frame sent.
    pub wall: Duration,
    pub ws_messages_sent: u64,
}

impl ReplayReport {
    /// Capture frames sent per real second.
    pub fn frames_per_second(&self) -> f64 {
        self.tally.frames_sent as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub front: Front<Event>,
    pub users: BTreeMap<String, RsaPublicKey>,
    pub timing: Timing,
    pub start_mode: StartMode,
    start_tx: watch::Sender<bool>,
    pub ws_messages: AtomicU64,
    pub initial_balance: Money,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn start(&self) {
        self.start_tx
            .send_if_modified(|s| !std::mem::replace(s, true));
    }
}

/// A running replay.
pub struct Replay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    credentials: Option<(ApiKeyId, PrivateKey)>,
    key_files: Option<(PathBuf, PathBuf)>,
    shutdown_tx: watch::Sender<bool>,
    report_rx: watch::Receiver<Option<Arc<ReplayReport>>>,
    frames_total: u64,
    start_ms: i64,
    end_ms: i64,
    server: JoinHandle<()>,
    driver: JoinHandle<()>,
}

server_accessors!(Replay);

impl Replay {
    /// Starts sending (for [`StartMode::Manual`]; harmless otherwise).
    pub fn start(&self) {
        self.shared.start();
    }
    pub fn progress(&self) -> ReplayProgress {
        let finished = self.report_rx.borrow().is_some();
        let st = self.shared.lock();
        ReplayProgress {
            started: *self.shared.start_tx.borrow(),
            finished,
            now_ms: st.now_ms,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            frames_total: self.frames_total,
            tally: st.tally.clone(),
            ws_messages_sent: self.shared.ws_messages.load(Ordering::Relaxed),
            problems: st.issues.count,
        }
    }
    /// Waits until every frame has been sent (after [`Replay::start`] for a manual start);
    /// the server keeps serving afterwards.
    pub async fn wait_finished(&self) -> ReplayReport {
        let mut rx = self.report_rx.clone();
        let r = rx
            .wait_for(Option::is_some)
            .await
            .map(|r| r.as_ref().map(|r| (**r).clone()));
        match r {
            Ok(Some(r)) => r,
            // The driver is gone (only after shutdown): report what is known.
            _ => self.partial_report(),
        }
    }
    /// The report, once finished.
    pub fn report(&self) -> Option<ReplayReport> {
        self.report_rx.borrow().as_ref().map(|r| (**r).clone())
    }
    fn partial_report(&self) -> ReplayReport {
        let st = self.shared.lock();
        ReplayReport {
            captures: Vec::new(),
            tally: st.tally.clone(),
            markets: st.markets.keys().cloned().collect(),
            missing_metadata: Vec::new(),
            problems: st.issues.list.clone(),
            problem_count: st.issues.count,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            wall: Duration::ZERO,
            ws_messages_sent: self.shared.ws_messages.load(Ordering::Relaxed),
        }
    }
    /// Replay time (Unix ms).
    pub fn now_ms(&self) -> i64 {
        self.shared.lock().now_ms
    }
    /// A market's replayed book now: `(yes bids, no bids)` ascending, NO bids at NO-leg
    /// prices; empty sides before the market's first snapshot. `None` for an unknown market.
    pub fn book(&self, ticker: &str) -> Option<(Levels, Levels)> {
        self.shared
            .lock()
            .markets
            .get(ticker)
            .map(|m| m.book.as_ref().map(|b| b.levels()).unwrap_or_default())
    }
    /// Every market of the replay (listed or not yet), as it stands now.
    pub fn markets(&self) -> Vec<MarketInfo> {
        let st = self.shared.lock();
        st.markets
            .values()
            .map(|m| m.info(st.now_ms, &st.timing))
            .collect()
    }
    /// Stops accepting, closes WebSocket connections, stops the replay.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        self.driver.abort();
        let _ = self.driver.await;
        let _ = self.server.await;
    }
}

/// What the scan learns of a market.
#[derive(Debug)]
struct Seen {
    first_ms: i64,
    last_ms: i64,
    market_id: Option<String>,
}

#[derive(Debug)]
struct Scan {
    /// Per capture (input order): first and last recv_ns of its frames, frame lines.
    spans: Vec<Option<(i64, i64)>>,
    frames: u64,
    markets: BTreeMap<String, Seen>,
}

/// First pass: which markets, when. Unreadable lines are left for the replay to report.
fn scan(paths: &[PathBuf]) -> Result<Scan, ReplayError> {
    let mut out = Scan {
        spans: Vec::new(),
        frames: 0,
        markets: BTreeMap::new(),
    };
    for path in paths {
        let mut r = capture::LineReader::open(path).map_err(|source| ReplayError::Capture {
            path: path.clone(),
            source,
        })?;
        let mut span: Option<(i64, i64)> = None;
        while let Some((_, line)) = r.next_line() {
            let Ok(p) = line
                .map_err(|_| ())
                .and_then(|l| capture::peek(l).map_err(|_| ()))
            else {
                continue;
            };
            out.frames += 1;
            span = Some(match span {
                None => (p.recv_ns, p.recv_ns),
                Some((a, b)) => (a.min(p.recv_ns), b.max(p.recv_ns)),
            });
            if let Some(t) = p.ticker {
                let ms = p.recv_ns.div_euclid(1_000_000);
                let e = out.markets.entry(t).or_insert(Seen {
                    first_ms: ms,
                    last_ms: ms,
                    market_id: None,
                });
                e.first_ms = e.first_ms.min(ms);
                e.last_ms = e.last_ms.max(ms);
                if e.market_id.is_none() {
                    e.market_id = p.market_id;
                }
            }
        }
        out.spans.push(span);
    }
    Ok(out)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The replay's markets: schedule from the markets file, else from the capture.
fn build_markets(
    scan: &Scan,
    meta: &BTreeMap<String, MarketMeta>,
    cfg: &ReplayConfig,
    issues: &mut Issues,
) -> (BTreeMap<String, MarketState>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for (ticker, seen) in &scan.markets {
        let m = meta.get(ticker);
        if m.is_none() {
            missing.push(ticker.clone());
            issues.push(format!(
                "market {ticker}: no entry in the markets file; open/close taken from its \
                 first/last recorded frame, no result"
            ));
        }
        let open_ms = m.and_then(|m| m.open_ms).unwrap_or(seen.first_ms);
        let close_ms = m
            .and_then(|m| m.close_ms)
            .unwrap_or(seen.last_ms + 1)
            .max(open_ms + 1);
        let series = m
            .and_then(|m| m.series_ticker.clone())
            .unwrap_or_else(|| ticker.split('-').next().unwrap_or(ticker).to_string());
        let event_ticker = m.and_then(|m| m.event_ticker.clone()).unwrap_or_else(|| {
            ticker
                .rsplit_once('-')
                .map(|(e, _)| e.to_string())
                .unwrap_or_else(|| ticker.clone())
        });
        let title = m
            .and_then(|m| m.title.clone())
            .or_else(|| cfg.title.clone())
            .unwrap_or_else(|| format!("{series} market (replay)"));
        out.insert(
            ticker.clone(),
            MarketState {
                ticker: ticker.clone(),
                event_ticker,
                series,
                market_id: seen
                    .market_id
                    .clone()
                    .unwrap_or_else(|| uuid_like(0, 11, fnv1a(ticker))),
                title,
                listed_ms: (open_ms - cfg.listing_lead_ms).min(seen.first_ms),
                open_ms,
                close_ms,
                floor_strike_cents: m.and_then(|m| m.floor_strike_cents),
                result: m.and_then(|m| m.result),
                book: None,
                source: None,
                stats: Default::default(),
                last_ticker: None,
            },
        );
    }
    (out, missing)
}

/// Lifecycle events strictly after the start and up to the end of the recording.
fn schedule(
    markets: &BTreeMap<String, MarketState>,
    timing: &Timing,
    start: i64,
    end: i64,
) -> Vec<LifeItem> {
    let mut out = Vec::new();
    for m in markets.values() {
        let events = [
            (Some(m.listed_ms), 0, LifecycleKind::Created),
            (Some(m.open_ms), 1, LifecycleKind::Activated),
            (m.determined_ms(timing), 2, LifecycleKind::Determined),
            (m.settled_ms(timing), 3, LifecycleKind::Settled),
        ];
        for (t, order, kind) in events {
            if let Some(t) = t.filter(|t| *t > start && *t <= end) {
                out.push(LifeItem {
                    t_ms: t,
                    order,
                    ticker: m.ticker.clone(),
                    kind,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.t_ms, a.order, &a.ticker).cmp(&(b.t_ms, b.order, &b.ticker)));
    out
}

/// What the reader thread sends the driver.
enum Feed {
    Items(Vec<Item>),
    Issue(String),
    Done(CaptureReport),
}

const CHUNK: usize = 256;

/// Second pass, on its own thread: parse every line of every capture, in replay order.
fn read_captures(order: Vec<(usize, PathBuf)>, tx: mpsc::Sender<Feed>) {
    for (idx, path) in order {
        let mut rep = CaptureReport {
            path: path.clone(),
            ..CaptureReport::default()
        };
        let mut r = match capture::LineReader::open(&path) {
            Ok(r) => r,
            Err(e) => {
                rep.stopped = Some(format!("{}: {e}", path.display()));
                if tx
                    .blocking_send(Feed::Issue(format!("{}: {e}", path.display())))
                    .is_err()
                    || tx.blocking_send(Feed::Done(rep)).is_err()
                {
                    return;
                }
                continue;
            }
        };
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some((line, text)) = r.next_line() {
            rep.lines += 1;
            let parsed = text.and_then(capture::parse);
            match parsed {
                Ok(frame) => {
                    rep.frames += 1;
                    chunk.push(Item {
                        capture: idx,
                        line,
                        frame,
                    });
                    if chunk.len() >= CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        if tx.blocking_send(Feed::Items(full)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    rep.bad_lines += 1;
                    let what = if r.unterminated {
                        format!(
                            "{}:{line}: truncated last line skipped ({e})",
                            path.display()
                        )
                    } else {
                        format!("{}:{line}: {e}; line skipped", path.display())
                    };
                    if tx.blocking_send(Feed::Issue(what)).is_err() {
                        return;
                    }
                }
            }
        }
        if !chunk.is_empty() && tx.blocking_send(Feed::Items(chunk)).is_err() {
            return;
        }
        if let Some(why) = r.stopped.take() {
            rep.stopped = Some(why.clone());
            if tx.blocking_send(Feed::Issue(why)).is_err() {
                return;
            }
        }
        if tx.blocking_send(Feed::Done(rep)).is_err() {
            return;
        }
    }
}

enum Pending {
    Frame(Item),
    Life(LifeItem),
}

const MAX_BATCH: usize = 512;
/// At max speed, batches the slowest client may be behind before the replay waits for it.
const MAX_AHEAD: usize = 32;
/// Longest a max-speed replay waits for a slow client before letting it overflow.
const MAX_STALL: Duration = Duration::from_secs(10);

struct Driver {
    shared: Arc<Shared>,
    speed: Speed,
    max_gap_ms: Option<i64>,
    start_ms: i64,
    wall0: Instant,
    skipped_ms: i64,
    prev_ms: i64,
    pending: Vec<Pending>,
    queue_capacity: usize,
    /// Max speed gave up waiting for a client that stopped reading.
    stalled: bool,
}

impl Driver {
    /// Applies the pending items under the lock and broadcasts them as one batch.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.speed == Speed::Max {
            // Flow control: keep the slowest client within a few batches (bounded memory,
            // and the replay's pace is what clients actually receive).
            let ahead = (self.queue_capacity / 2).min(MAX_AHEAD);
            if self.shared.front.tx.len() <= ahead {
                self.stalled = false;
            }
            let t0 = Instant::now();
            while !self.stalled && self.shared.front.tx.len() > ahead {
                if t0.elapsed() >= MAX_STALL {
                    // A client stopped reading: stop waiting for it until it catches up (it
                    // overflows with error 25 if it never does).
                    tracing::warn!(
                        "a WebSocket client stopped reading; replaying without waiting for it"
                    );
                    self.stalled = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut st = self.shared.lock();
        let mut events = Vec::with_capacity(self.pending.len());
        for p in self.pending.drain(..) {
            match p {
                Pending::Frame(item) => st.apply_frame(item, &mut events),
                Pending::Life(l) => st.apply_lifecycle(&l, &mut events),
            }
        }
        if !events.is_empty() {
            st.batch_no += 1;
            let batch = Arc::new(Batch {
                no: st.batch_no,
                events,
            });
            // No receivers is fine.
            let _ = self.shared.front.tx.send(batch);
        }
    }

    /// Waits until recorded time `t` is due, then queues `p`.
    async fn push(&mut self, t: i64, p: Pending) {
        let gap = t - self.prev_ms;
        if let Some(mg) = self.max_gap_ms {
            if gap > mg {
                self.skipped_ms += gap - mg;
            }
        }
        self.prev_ms = self.prev_ms.max(t);
        if let Speed::Factor(f) = self.speed {
            let offset_ms = (t - self.start_ms - self.skipped_ms).max(0) as f64 / f;
            let due = self.wall0 + Duration::from_secs_f64(offset_ms / 1000.0);
            if due > Instant::now() + Duration::from_millis(1) {
                self.flush().await;
                tokio::time::sleep_until(due.into()).await;
            }
        }
        self.pending.push(p);
        if self.pending.len() >= MAX_BATCH {
            self.flush().await;
        }
    }
}

struct DriveArgs {
    shared: Arc<Shared>,
    feed: mpsc::Receiver<Feed>,
    life: Vec<LifeItem>,
    speed: Speed,
    max_gap_ms: Option<i64>,
    start_ms: i64,
    end_ms: i64,
    queue_capacity: usize,
    report: ReplayReport,
    report_tx: watch::Sender<Option<Arc<ReplayReport>>>,
}

async fn drive(a: DriveArgs) {
    let DriveArgs {
        shared,
        mut feed,
        life,
        speed,
        max_gap_ms,
        start_ms,
        end_ms,
        queue_capacity,
        mut report,
        report_tx,
    } = a;
    let mut started = shared.start_tx.subscribe();
    if started.wait_for(|s| *s).await.is_err() {
        return;
    }
    tracing::info!(?speed, "replay started");
    let mut d = Driver {
        shared: shared.clone(),
        speed,
        max_gap_ms,
        start_ms,
        wall0: Instant::now(),
        skipped_ms: 0,
        prev_ms: start_ms,
        pending: Vec::new(),
        queue_capacity,
        stalled: false,
    };
    let mut life = life.into_iter().peekable();
    while let Some(f) = feed.recv().await {
        match f {
            Feed::Items(items) => {
                for item in items {
                    let t = item.frame.recv_ns.div_euclid(1_000_000);
                    while let Some(l) = life.next_if(|l| l.t_ms <= t) {
                        d.push(l.t_ms, Pending::Life(l)).await;
                    }
                    d.push(t, Pending::Frame(item)).await;
                }
            }
            Feed::Issue(s) => shared.lock().issues.push(s),
            Feed::Done(rep) => report.captures.push(rep),
        }
    }
    for l in life.filter(|l| l.t_ms <= end_ms) {
        d.push(l.t_ms, Pending::Life(l)).await;
    }
    d.flush().await;
    report.wall = d.wall0.elapsed();
    {
        let st = shared.lock();
        report.tally = st.tally.clone();
        report.problems = st.issues.list.clone();
        report.problem_count = st.issues.count;
    }
    report.ws_messages_sent = shared.ws_messages.load(Ordering::Relaxed);
    tracing::info!(
        frames = report.tally.frames_sent,
        problems = report.problem_count,
        wall_s = report.wall.as_secs_f64(),
        "replay finished"
    );
    report_tx.send_replace(Some(Arc::new(report)));
}

/// Reads the captures and the markets file, starts the server and the replay.
pub async fn spawn_replay(cfg: ReplayConfig) -> Result<Replay, ReplayError> {
    if cfg.captures.is_empty() {
        return Err(ReplayError::NoCaptures);
    }
    if let Speed::Factor(f) = cfg.speed {
        if !(f.is_finite() && f > 0.0) {
            return Err(ReplayError::Config(format!("speed {f} must be positive")));
        }
    }
    if cfg.listing_lead_ms < 0 || cfg.determination_delay_ms < 0 || cfg.settlement_timer_seconds < 0
    {
        return Err(ReplayError::Config(
            "listing lead, determination delay and settlement timer must not be negative".into(),
        ));
    }
    let mut issues = Issues::default();
    let meta = match &cfg.markets_file {
        Some(p) => {
            let p = p.clone();
            let f = tokio::task::spawn_blocking(move || read_markets_file(&p))
                .await
                .map_err(|e| ReplayError::Config(e.to_string()))??;
            for w in f.warnings {
                issues.push(w);
            }
            f.markets
        }
        None => BTreeMap::new(),
    };
    let paths = cfg.captures.clone();
    let sc = tokio::task::spawn_blocking(move || scan(&paths))
        .await
        .map_err(|e| ReplayError::Config(e.to_string()))??;

    // Recorded order: by first frame; a file with no readable frame is still read (and its
    // problems reported) but schedules nothing.
    let mut order: Vec<(usize, PathBuf)> = cfg.captures.iter().cloned().enumerate().collect();
    order.sort_by_key(|(i, _)| (sc.spans[*i].map(|s| s.0).unwrap_or(i64::MAX), *i));
    let mut prev_end: Option<(i64, &Path)> = None;
    for (i, p) in &order {
        if let Some((a, b)) = sc.spans[*i] {
            if let Some((end, q)) = prev_end {
                if a < end {
                    issues.push(format!(
                        "{} starts before {} ends: replayed after it (recorded times overlap)",
                        p.display(),
                        q.display()
                    ));
                }
            }
            prev_end = Some((b, p.as_path()));
        }
    }
    let spans: Vec<(i64, i64)> = sc.spans.iter().flatten().copied().collect();
    let (Some(start_ns), Some(end_ns)) = (
        spans.iter().map(|s| s.0).min(),
        spans.iter().map(|s| s.1).max(),
    ) else {
        let names: Vec<String> = cfg
            .captures
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(ReplayError::NoFrames(names.join(", ")));
    };
    let (start_ms, end_ms) = (start_ns.div_euclid(1_000_000), end_ns.div_euclid(1_000_000));
    let (markets, missing) = build_markets(&sc, &meta, &cfg, &mut issues);
    let timing = Timing {
        determination_delay_ms: cfg.determination_delay_ms,
        settlement_timer_seconds: cfg.settlement_timer_seconds,
    };
    let life = schedule(&markets, &timing, start_ms, end_ms);
    let market_names: Vec<String> = markets.keys().cloned().collect();

    let Keys {
        key_id,
        public_key,
        credentials,
        key_files,
    } = setup_keys(cfg.key.clone(), cfg.key_dir.as_deref(), ReplayError::Config).await?;
    let mut users = BTreeMap::new();
    users.insert(key_id.expose().to_string(), public_key);

    let (listener, addr) = bind(cfg.addr).await.map_err(|source| ReplayError::Bind {
        addr: cfg.addr,
        source,
    })?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (start_tx, _) = watch::channel(cfg.start == StartMode::Immediately);
    let queue_capacity = cfg.ws.queue_capacity.max(2);
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(
            start_ms,
            markets,
            timing,
            cfg.captures.clone(),
            issues,
        )),
        front: Front::new(
            cfg.rate_limit.clone(),
            cfg.ws.clone(),
            queue_capacity,
            shutdown_rx.clone(),
        ),
        users,
        timing,
        start_mode: cfg.start,
        start_tx,
        ws_messages: AtomicU64::new(0),
        initial_balance: cfg.initial_balance,
    });

    let app = rest::router(shared.clone()).merge(ws::router(shared.clone()));
    let server = serve(listener, app, shutdown_rx.clone(), "replay server");

    let (feed_tx, feed_rx) = mpsc::channel(64);
    let reader_order = order.clone();
    std::thread::Builder::new()
        .name("kalshi_sim-replay-reader".into())
        .spawn(move || read_captures(reader_order, feed_tx))
        .map_err(|e| ReplayError::Config(format!("cannot start the capture reader: {e}")))?;
    let (report_tx, report_rx) = watch::channel(None);
    let report = ReplayReport {
        captures: Vec::new(),
        tally: Tally::default(),
        markets: market_names,
        missing_metadata: missing,
        problems: Vec::new(),
        problem_count: 0,
        start_ms,
        end_ms,
        wall: Duration::ZERO,
        ws_messages_sent: 0,
    };
    let driver = tokio::spawn(drive(DriveArgs {
        shared: shared.clone(),
        feed: feed_rx,
        life,
        speed: cfg.speed,
        max_gap_ms: cfg.max_gap.map(|d| d.as_millis() as i64),
        start_ms,
        end_ms,
        queue_capacity,
        report,
        report_tx,
    }));
    tracing::info!(
        %addr, captures = cfg.captures.len(), frames = sc.frames, markets = sc.markets.len(),
        "kalshi_sim replay listening"
    );
    Ok(Replay {
        addr,
        shared,
        credentials,
        key_files,
        shutdown_tx,
        report_rx,
        frames_total: sc.frames,
        start_ms,
        end_ms,
        server,
        driver,
    })
}
