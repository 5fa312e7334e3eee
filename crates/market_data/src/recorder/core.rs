//! The core task: event stream in, grid lines out (see the module docs of `recorder`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pipeline::auth::Signer;
use pipeline::ids::{MarketTicker, SeriesTicker};
use pipeline::snapshot::Line;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::grid::floor_to_grid;
use super::state::RecorderState;
use super::subs::{Confirmed, Manager};
use super::writer::{self, Progress, WriterConfig, WriterMsg};
use super::{RecordSummary, RecorderConfig, RecorderError, StopReason};
use crate::rest::{MarketStatusFilter, MarketsQuery, RestClient, RestError};
use crate::wire::Market;
use crate::ws::{self, SharedBooks, WsConfig, WsEvent};

/// How long after its close a market's result is polled over REST before giving up.
const RESULT_POLL_MS: i64 = 3_600_000;
/// Markets channel capacity (lines and frames); large, so a slow disk is absorbed.
const WRITER_CAPACITY: usize = 65_536;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The `tokio` instant at which the wall clock reads `t_ms` (now if already past).
fn instant_at(t_ms: i64) -> tokio::time::Instant {
    let ahead = t_ms - wall_ms();
    tokio::time::Instant::now() + Duration::from_millis(ahead.max(0) as u64)
}

/// `exchange time − local time`, in ms, from a few reads of the exchange's clock
/// (`GET /exchange/user_data_timestamp`): the largest, because a read can only lag.
pub(crate) async fn exchange_offset_ms(rest: &RestClient) -> Result<i64, RecorderError> {
    let mut best: Option<i64> = None;
    let mut last_err = String::new();
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        match rest.user_data_timestamp().await {
            Ok(t) => {
                let off = t.as_of_time.0.timestamp_millis() - wall_ms();
                best = Some(best.map_or(off, |b| b.max(off)));
            }
            Err(RestError::Unauthorized { .. }) => {
                return Err(RecorderError::Auth(
                    "GET /exchange/user_data_timestamp answered 401".into(),
                ))
            }
            Err(e) => last_err = e.to_string(),
        }
    }
    let off = best.ok_or_else(|| {
        RecorderError::Config(format!("cannot read the exchange's clock: {last_err}"))
    })?;
    tracing::warn!(
        offset_ms = off,
        "running on the exchange's clock (replay mode), not the local clock"
    );
    Ok(off)
}

/// How often the exchange's clock is re-read when the recorder runs on it.
const EXCHANGE_CLOCK_EVERY: Duration = Duration::from_secs(1);
/// The offset is the largest of this many latest reads (a read can only lag, by its latency
/// and, on a replay, by the time since the last frame was sent).
const EXCHANGE_CLOCK_WINDOW: usize = 5;

/// The recorder's clock: the local wall clock plus an offset that is 0 on the local clock
/// and, on the exchange's, follows it (see [`follow_exchange_clock`]). Shared by the core
/// (grid, schedule, sidecar) and the writer (capture file names).
#[derive(Clone, Debug, Default)]
pub(crate) struct RecorderClock {
    offset_ms: Arc<AtomicI64>,
}

impl RecorderClock {
    pub(crate) fn new(offset_ms: i64) -> RecorderClock {
        RecorderClock {
            offset_ms: Arc::new(AtomicI64::new(offset_ms)),
        }
    }
    /// Recorder time minus local time, in ms.
    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
    /// Now, on the recorder's clock (UTC ms).
    pub(crate) fn now_ms(&self) -> i64 {
        wall_ms() + self.offset_ms()
    }
    /// The recorder-clock time of a local receive time (ns).
    pub(crate) fn at_local_ns(&self, local_ns: i64) -> i64 {
        local_ns.div_euclid(1_000_000) + self.offset_ms()
    }
}

/// Keeps `clock` on the exchange's clock: one read of `GET /exchange/user_data_timestamp`
/// every [`EXCHANGE_CLOCK_EVERY`], the offset the largest of the last
/// [`EXCHANGE_CLOCK_WINDOW`]; a `resync` notification (a subscription was confirmed) drops the
/// window and takes three fresh reads. A replay started by the first subscription
/// (`kalshi_sim replay --wait-for-subscriber`) holds its clock until then, so an offset read
/// only at start would stamp every row late by the time it took to subscribe.
async fn follow_exchange_clock(
    rest: RestClient,
    clock: RecorderClock,
    initial_ms: i64,
    resync: Arc<tokio::sync::Notify>,
) {
    let mut window = std::collections::VecDeque::from([initial_ms]);
    loop {
        let fresh = tokio::select! {
            _ = tokio::time::sleep(EXCHANGE_CLOCK_EVERY) => false,
            _ = resync.notified() => true,
        };
        if fresh {
            window.clear();
        }
        for i in 0..if fresh { 3 } else { 1 } {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match rest.user_data_timestamp().await {
                Ok(t) => window.push_back(t.as_of_time.0.timestamp_millis() - wall_ms()),
                Err(e) => tracing::debug!(error = %e, "exchange clock read failed (will retry)"),
            }
        }
        while window.len() > EXCHANGE_CLOCK_WINDOW {
            window.pop_front();
        }
        if let Some(&off) = window.iter().max() {
            let old = clock.offset_ms.swap(off, Ordering::Relaxed);
            if (old - off).abs() >= 50 {
                tracing::info!(
                    offset_ms = off,
                    moved_ms = off - old,
                    "the exchange's clock moved against the local clock; following it"
                );
            }
        }
    }
}

/// Whether a connection failure means the exchange refused our key.
fn is_auth_failure(reason: &str) -> bool {
    reason.contains("HTTP error: 401") || reason.contains("HTTP error: 403")
}

/// What one discovery round found.
#[derive(Debug, Default)]
struct Discovery {
    markets: Vec<Market>,
    errors: Vec<String>,
    unauthorized: Option<String>,
}

async fn discover(
    rest: RestClient,
    series: SeriesTicker,
    every: Duration,
    poll: watch::Receiver<Vec<MarketTicker>>,
    tx: mpsc::Sender<Discovery>,
) {
    loop {
        let mut d = Discovery::default();
        let note = |d: &mut Discovery, e: RestError| {
            if matches!(e, RestError::Unauthorized { .. }) {
                d.unauthorized = Some(e.to_string());
            }
            d.errors.push(e.to_string());
        };
        for status in [MarketStatusFilter::Open, MarketStatusFilter::Unopened] {
            let q = MarketsQuery {
                limit: Some(1000),
                ..MarketsQuery::series(series.clone()).with_status(status)
            };
            match rest.markets(&q).await {
                Ok(v) => d.markets.extend(v),
                Err(e) => note(&mut d, e),
            }
        }
        let pending = poll.borrow().clone();
        for t in pending {
            match rest.market(t.as_str()).await {
                Ok(m) => d.markets.push(m),
                Err(RestError::NotFound { .. }) => match rest.historical_market(t.as_str()).await {
                    Ok(m) => d.markets.push(m),
                    Err(e) => note(&mut d, e),
                },
                Err(e) => note(&mut d, e),
            }
        }
        if tx.send(d).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

struct Core {
    cfg: Arc<RecorderConfig>,
    books: SharedBooks,
    /// Registry, grid tracks, gap reasons, connection state, counters: driven here on the
    /// wall (or exchange) clock.
    st: RecorderState,
    wtx: mpsc::Sender<WriterMsg>,
    wanted_tx: watch::Sender<BTreeSet<MarketTicker>>,
    poll_tx: watch::Sender<Vec<MarketTicker>>,
    conf_tx: mpsc::UnboundedSender<Confirmed>,
    progress: Arc<Progress>,
    /// Recorder time = local wall clock + its offset (0 unless running on the exchange's
    /// clock).
    clock: RecorderClock,
    /// Told when a subscription is confirmed (the exchange clock re-reads itself then).
    clock_resync: Option<Arc<tokio::sync::Notify>>,
    down_since: Option<Instant>,
}

impl Core {
    /// Now, on the recorder's clock (UTC ms).
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    async fn send(&self, msg: WriterMsg) -> Result<(), RecorderError> {
        if let Some(tap) = &self.cfg.tap {
            // A reader that went away does not stop the recording.
            let _ = match &msg {
                WriterMsg::Lines(l) => tap.send(super::Tap::Lines(l.clone())),
                WriterMsg::Markets(m) => tap.send(super::Tap::Markets(m.clone())),
                WriterMsg::Frame(_) => Ok(()),
            };
        }
        self.wtx
            .send(msg)
            .await
            .map_err(|_| RecorderError::Output("the writer stopped".into()))
    }

    async fn send_lines(&mut self, lines: Vec<Line>) -> Result<(), RecorderError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.st.count(&lines);
        self.send(WriterMsg::Lines(lines)).await
    }

    async fn run(
        &mut self,
        events: &mut mpsc::Receiver<WsEvent>,
        disc: &mut mpsc::Receiver<Discovery>,
        shutdown: &CancellationToken,
    ) -> Result<StopReason, RecorderError> {
        let deadline = self.cfg.duration.map(|d| tokio::time::Instant::now() + d);
        let every = self.cfg.status_every;
        let mut status = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let tick_at = instant_at(self.st.next_tick - self.clock.offset_ms());
            tokio::select! {
                // Ticks before everything else but stopping, so they are on time under load.
                biased;
                _ = shutdown.cancelled() => return Ok(StopReason::Shutdown),
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    return Ok(StopReason::Duration)
                }
                _ = tokio::time::sleep_until(tick_at) => {
                    // Catch up with what the session already reported, so the tick's reasons
                    // and connection state are as fresh as the books it reads.
                    for _ in 0..4096 {
                        match events.try_recv() {
                            Ok(ev) => self.on_event(ev).await?,
                            Err(_) => break,
                        }
                    }
                    self.on_timer().await?
                }
                d = disc.recv() => if let Some(d) = d { self.on_discovery(d).await? },
                _ = status.tick() => self.status(),
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev).await?,
                    None => return Err(RecorderError::SessionStopped("the WebSocket session stopped unexpectedly".into())),
                },
            }
        }
    }

    async fn on_timer(&mut self) -> Result<(), RecorderError> {
        let now = self.now_ms();
        let mut lines = Vec::new();
        if !self.st.on_timer(now, &self.books, &mut lines) {
            return Ok(()); // woke early (wall clock stepped): sleep again
        }
        self.send_lines(lines).await?;
        self.update_wanted(now);
        self.check_connection()
    }

    fn update_wanted(&mut self, now: i64) {
        let lead = self.cfg.subscribe_lead.as_millis() as i64;
        let wanted = self.st.registry.wanted(now, lead);
        self.wanted_tx.send_if_modified(|w| {
            if *w != wanted {
                *w = wanted;
                true
            } else {
                false
            }
        });
        let poll = self.st.registry.awaiting_result(now, RESULT_POLL_MS);
        self.poll_tx.send_if_modified(|p| {
            if *p != poll {
                *p = poll;
                true
            } else {
                false
            }
        });
    }

    fn check_connection(&self) -> Result<(), RecorderError> {
        if let (Some(since), Some(max)) = (self.down_since, self.cfg.max_reconnect) {
            if !self.st.connected && since.elapsed() > max {
                return Err(RecorderError::ConnectionLost {
                    seconds: since.elapsed().as_secs(),
                    last_error: if self.st.last_error.is_empty() {
                        "no connection yet".into()
                    } else {
                        self.st.last_error.clone()
                    },
                });
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, ev: WsEvent) -> Result<(), RecorderError> {
        match ev {
            WsEvent::Connected { attempt } => {
                self.st.connected = true;
                self.down_since = None;
                self.st.stats.connections += 1;
                tracing::info!(attempt, "connected");
            }
            WsEvent::Disconnected { reason } => {
                if is_auth_failure(&reason) {
                    return Err(RecorderError::Auth(reason));
                }
                if self.st.connected {
                    tracing::warn!(%reason, "disconnected; books are invalid until fresh snapshots");
                }
                self.st.connected = false;
                self.down_since.get_or_insert_with(Instant::now);
                self.st.last_error = reason;
            }
            WsEvent::Subscribed {
                sub,
                channel,
                tickers,
                ..
            } => {
                if let Some(n) = &self.clock_resync {
                    n.notify_one();
                }
                let _ = self.conf_tx.send(Confirmed {
                    sub,
                    channel,
                    tickers,
                });
            }
            WsEvent::Frame(f) => {
                match &f.parsed {
                    Ok(fr) => {
                        let now = self.now_ms();
                        if let Some(rec) = self.st.on_frame(fr, now) {
                            self.send(WriterMsg::Markets(vec![rec])).await?;
                            self.update_wanted(now);
                        }
                    }
                    Err(_) => self.st.stats.frames += 1,
                }
                if self.cfg.capture {
                    self.send(WriterMsg::Frame(f)).await?;
                }
            }
            WsEvent::Book(ev) => self.st.on_book_event(&ev),
            WsEvent::Resyncing { sub, reason, .. } => {
                self.st.stats.resyncs_requested += 1;
                tracing::info!(sub = sub.0, %reason, "resubscribing for fresh snapshots");
            }
            WsEvent::ServerError(e) => {
                tracing::warn!(code = e.code, msg = %e.msg, "exchange error message");
            }
        }
        Ok(())
    }

    async fn on_discovery(&mut self, d: Discovery) -> Result<(), RecorderError> {
        if let Some(u) = d.unauthorized {
            return Err(RecorderError::Auth(u));
        }
        for e in &d.errors {
            tracing::warn!(error = %e, "market discovery failed (will retry)");
        }
        let now = self.now_ms();
        let mut recs = Vec::new();
        for m in &d.markets {
            if let Some(r) = self.st.registry.on_rest_market(m, now) {
                recs.push(r);
            }
        }
        if !recs.is_empty() {
            tracing::info!(
                markets = d.markets.len(),
                new_lines = recs.len(),
                "markets discovered"
            );
            self.send(WriterMsg::Markets(recs)).await?;
        }
        let tracks = &self.st.tracks;
        let gone = self.st.registry.forget(now, RESULT_POLL_MS, |t| {
            tracks.get(t).is_some_and(|tr| !tr.closed)
        });
        for t in gone {
            self.st.tracks.remove(&t);
            self.st.reasons.remove(&t);
        }
        self.update_wanted(now);
        Ok(())
    }

    fn status(&self) {
        let now = self.now_ms();
        let active = self.st.registry.iter().filter(|m| m.active_at(now)).count();
        let recording = self
            .st
            .tracks
            .values()
            .filter(|t| matches!(t.state, super::grid::BookState::Valid { .. }))
            .count();
        tracing::info!(
            markets_known = self.st.registry.len(),
            active,
            recording,
            subscribed = self.wanted_tx.borrow().len(),
            rows = self.st.stats.rows,
            gaps = self.st.stats.gaps,
            resyncs = self.st.stats.resyncs,
            closed = self.st.stats.closed,
            frames = self.st.stats.frames,
            connected = self.st.connected,
            connections = self.st.stats.connections,
            late_ticks = self.st.stats.late_ticks,
            max_late_ms = self.st.stats.max_late_ms,
            snapshot_bytes = self.progress.snapshot_bytes.load(Ordering::Relaxed),
            files = self.progress.snapshot_files.load(Ordering::Relaxed),
            capture_frames = self.progress.capture_frames.load(Ordering::Relaxed),
            sidecar_lines = self.progress.sidecar_lines.load(Ordering::Relaxed),
            "status"
        );
    }

    /// Markers for a clean stop: every market being recorded gets a `gap` at the next tick.
    async fn finish(&mut self) {
        let mut lines = Vec::new();
        self.st.finish("recorder stopped", &mut lines);
        let _ = self.send_lines(lines).await;
    }
}

pub(crate) async fn record(
    cfg: Arc<RecorderConfig>,
    rest: RestClient,
    wcfg: WsConfig,
    signer: Signer,
    offset_ms: i64,
    shutdown: CancellationToken,
) -> Result<RecordSummary, RecorderError> {
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let clock = RecorderClock::new(offset_ms);
    let (wtx, writer) = writer::spawn(
        WriterConfig {
            out_dir: cfg.out_dir.clone(),
            series: cfg.series.clone(),
            snapshot_ms: cfg.snapshot_ms,
            rotate: cfg.rotate,
            flush_every: cfg.flush_every,
            capture: cfg.capture,
            clock: clock.clone(),
        },
        WRITER_CAPACITY,
        progress.clone(),
    )?;
    let inner = CancellationToken::new();
    let (ws, mut events, ws_task) = ws::spawn(wcfg, Some(signer), inner.clone());
    let (wanted_tx, wanted_rx) = watch::channel(BTreeSet::new());
    let (conf_tx, conf_rx) = mpsc::unbounded_channel();
    let manager = tokio::spawn(
        Manager {
            ws: ws.clone(),
            use_yes_price: cfg.use_yes_price,
            wanted: wanted_rx,
            confirmed: conf_rx,
            shutdown: inner.clone(),
        }
        .run(),
    );
    let (poll_tx, poll_rx) = watch::channel(Vec::new());
    let (disc_tx, mut disc_rx) = mpsc::channel(4);
    let clock_resync = (cfg.clock == super::ClockSource::Exchange).then(|| {
        let n = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(follow_exchange_clock(
            rest.clone(),
            clock.clone(),
            offset_ms,
            n.clone(),
        ));
        n
    });
    let discovery = tokio::spawn(discover(
        rest,
        cfg.series.clone(),
        cfg.discovery_every,
        poll_rx,
        disc_tx,
    ));
    let step = cfg.snapshot_ms as i64;
    tracing::info!(
        series = %cfg.series, out_dir = %cfg.out_dir.display(), snapshot_ms = cfg.snapshot_ms,
        depth = cfg.depth, capture = cfg.capture, use_yes_price = cfg.use_yes_price,
        "recording"
    );
    let mut core = Core {
        books: ws.books(),
        st: RecorderState::new(
            cfg.series.clone(),
            step,
            cfg.depth,
            floor_to_grid(clock.now_ms(), step) + step,
        ),
        wtx,
        wanted_tx,
        poll_tx,
        conf_tx,
        progress,
        clock,
        clock_resync,
        down_since: Some(Instant::now()),
        cfg: cfg.clone(),
    };
    let outcome = core.run(&mut events, &mut disc_rx, &shutdown).await;
    match &outcome {
        Ok(stop) => tracing::info!(?stop, "stopping: flushing and closing files"),
        Err(e) => tracing::error!(error = %e, "stopping on an error: flushing and closing files"),
    }
    core.finish().await;
    // Stop the network side; keep what already arrived for the capture.
    inner.cancel();
    discovery.abort();
    while let Some(ev) = events.recv().await {
        if let (true, WsEvent::Frame(f)) = (cfg.capture, ev) {
            core.st.stats.frames += 1;
            if core.send(WriterMsg::Frame(f)).await.is_err() {
                break;
            }
        }
    }
    let _ = ws_task.await;
    let _ = manager.await;
    let _ = discovery.await;
    let stats = std::mem::take(&mut core.st.stats);
    drop(core); // drops the writer's sender: the writer flushes, closes and reports
    let report = match writer.await {
        Ok(r) => r,
        Err(e) => Err(RecorderError::Output(format!("writer thread failed: {e}"))),
    };
    let report = match (outcome, report) {
        (Err(RecorderError::Output(_)), Err(w)) => return Err(w),
        (Err(e), _) => return Err(e),
        (Ok(_), Err(w)) => return Err(w),
        (Ok(stop), Ok(r)) => (stop, r),
    };
    let (stop, r) = report;
    let summary = RecordSummary {
        stop: Some(stop),
        elapsed: started.elapsed(),
        markets: stats.seen.len(),
        rows: stats.rows,
        gaps: stats.gaps,
        resyncs: stats.resyncs,
        closed: stats.closed,
        late_ticks: stats.late_ticks,
        max_late_ms: stats.max_late_ms,
        connections: stats.connections,
        resyncs_requested: stats.resyncs_requested,
        frames: stats.frames,
        snapshot_files: r.snapshots.files.clone(),
        snapshot_bytes: r.snapshots.bytes,
        capture_files: r.capture_files,
        capture_frames: r.capture_frames,
        capture_bytes: r.capture_bytes,
        markets_file: r.markets_file,
        sidecar_lines: r.sidecar_lines,
    };
    tracing::info!(
        markets = summary.markets,
        rows = summary.rows,
        gaps = summary.gaps,
        resyncs = summary.resyncs,
        closed = summary.closed,
        late_ticks = summary.late_ticks,
        connections = summary.connections,
        snapshot_files = summary.snapshot_files.len(),
        snapshot_bytes = summary.snapshot_bytes,
        capture_frames = summary.capture_frames,
        sidecar_lines = summary.sidecar_lines,
        elapsed_s = summary.elapsed.as_secs_f64(),
        "recording finished; files closed"
    );
    Ok(summary)
}
