//! Offline re-grid: recorded WebSocket captures become the files the live recorder writes
//! (`snapshot/v1` rows and markers, the markets sidecar), without network and without sleeping.
//!
//! The same code as live: frames go through [`BookSync`] (sequence checks, books), the
//! registry and the grid state machine ([`RecorderState`], [`super::grid`]) and the
//! [`SnapshotWriter`]. Only the clock differs: it is **virtual**, each frame's `recv_ns`.
//! Before a frame received at `r` is applied, every grid instant `T` with `T < r` is written,
//! so **the row at `T` is the book after every frame received at or before `T`, and none
//! after**. The virtual timer is never late, so no `recorder late` gaps.
//!
//! What is marked, as the live recorder would:
//! * a capture starting mid-stream: deltas before a market's snapshot are a gap
//!   (`delta before the order-book snapshot`), a market with no book yet gets
//!   `no order-book snapshot yet`;
//! * sequence gaps and re-subscriptions: [`BookSync`]'s rules, reasons as live;
//! * a new connection (the recorder reconnected): a `subscribed` reply on a sid number not
//!   above every sid of the book frames and `subscribed` replies since the books were last
//!   lost (sids are per connection and grow within one) invalidates every book of the old
//!   connection at that frame, reason
//!   `websocket disconnected (…)`, until each market's fresh snapshot. A capture does not
//!   record the moment the old socket died, so until the new connection's first frame the
//!   rows show the old connection's last book (the book after every frame received ≤ T);
//!   the live recorder, which saw the socket close, has a gap there;
//! * a silence on a connection longer than [`RegridConfig::silence`] (the recorder's
//!   WebSocket idle timeout): from `last frame + silence` on, the connection's books are
//!   invalid (a live recorder would have closed the socket) until fresh snapshots;
//! * a damaged capture (a line that is not a capture record, or a truncated/corrupt gzip
//!   stream): read up to the damage, which is reported with `file:line`; from there on the
//!   connection's books are invalid (`capture damaged at …`) until fresh snapshots;
//! * the end of the data: every market still being recorded gets a `gap` (`end of capture`)
//!   at the grid instant after the last tick, markets that closed get `closed`.
//!
//! Several files are merged in receive-time order. Files that follow each other in time (a
//! capture rotated hourly) are one connection (their sids continue); files that overlap in
//! time are separate connections (their sids are kept apart) and must not share a market:
//! two overlapping captures of the same market are an error naming both files, and nothing
//! is written.
//!
//! The same inputs give byte-identical outputs: nothing depends on the wall clock, member
//! boundaries of the gzip files follow the data (rotation period, buffer size), and the
//! sidecar lines' `ts_ms` are virtual times.

use std::collections::{BTreeSet, BinaryHeap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipeline::ids::{MarketTicker, SeriesTicker};
use pipeline::schema::markets::{append_markets, markets_path, MarketRecord};
use pipeline::snapshot::{resolve_glob, Line, SnapshotWriter, WriterOptions};

use super::grid::ceil_to_grid;
use super::lock::OutDirLock;
use super::state::RecorderState;
use super::{snapshot_glob, RecorderError};
use super::{write_paths, write_sidecar};
use crate::book::NoPriceConvention;
use crate::capture::{CaptureError, CaptureReader, ParsedRecord};
use crate::sync::{BookEvent, BookSync};
use crate::wire::WsMessage;

const NS_PER_MS: i64 = 1_000_000;
/// Sids of the k-th overlapping connection are shifted by `k << SID_SHIFT`.
const SID_SHIFT: u32 = 40;
/// gzip level of the re-grid's snapshot files.
const REGRID_GZIP_LEVEL: u32 = 3;
/// The gap reason when a capture shows a new connection (see [`Run::frame`]).
const RECONNECTED: &str = "websocket disconnected (the capture continues on a new connection)";

/// What to re-grid and how.
#[derive(Debug, Clone)]
pub struct RegridConfig {
    /// Capture files (already resolved from globs), any order.
    pub captures: Vec<PathBuf>,
    /// A markets sidecar (`<SERIES>_markets.jsonl`) or a markets list (one JSON object per
    /// line with `ticker`, `open_time`, `close_time`, …, without `ts_ms`/`source`).
    pub markets: Option<PathBuf>,
    pub out_dir: PathBuf,
    /// The series to write; `None`: the only series the captures' tickers belong to.
    pub series: Option<SeriesTicker>,
    pub snapshot_ms: u64,
    pub depth: usize,
    /// Snapshot file period (whole seconds).
    pub rotate: Duration,
    /// How the captures' NO-side prices are scaled (the `use_yes_price` the recorder
    /// subscribed with; Kalshi's default and the May 2026 recordings: NO-leg).
    pub convention: NoPriceConvention,
    /// A connection silent this long is taken as lost (the live recorder's idle timeout).
    pub silence: Duration,
}

impl RegridConfig {
    /// Defaults: 100 ms grid, no ladder, hourly files, NO-leg prices, 15 s silence.
    pub fn new(captures: Vec<PathBuf>, out_dir: PathBuf) -> RegridConfig {
        RegridConfig {
            captures,
            markets: None,
            out_dir,
            series: None,
            snapshot_ms: 100,
            depth: 0,
            rotate: Duration::from_secs(3600),
            convention: NoPriceConvention::NoLeg,
            silence: Duration::from_secs(15),
        }
    }

    fn validate(&self) -> Result<(), RecorderError> {
        let mut p = Vec::new();
        if self.captures.is_empty() {
            p.push("no capture file given".to_string());
        }
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
        if self.depth > 1000 {
            p.push(format!("depth must be at most 1000, got {}", self.depth));
        }
        if self.silence < Duration::from_secs(1) {
            p.push("the silence window must be at least 1 s".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(RecorderError::Config(p.join("; ")))
        }
    }
}

/// Expands each argument as a glob (a plain path is its own match), sorted and deduplicated;
/// an argument that matches nothing is an error naming it.
pub fn resolve_captures(args: &[String]) -> Result<Vec<PathBuf>, RecorderError> {
    let mut out = BTreeSet::new();
    for a in args {
        let found = if Path::new(a).is_file() {
            vec![PathBuf::from(a)]
        } else {
            resolve_glob(a).map_err(|e| RecorderError::Config(e.to_string()))?
        };
        let found: Vec<PathBuf> = found.into_iter().filter(|p| p.is_file()).collect();
        if found.is_empty() {
            return Err(RecorderError::Config(format!(
                "--from-capture {a:?}: no capture file matched"
            )));
        }
        out.extend(found);
    }
    Ok(out.into_iter().collect())
}

/// What a re-grid read and wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegridSummary {
    pub files: Vec<PathBuf>,
    /// Capture records read (frames, whether they parsed or not).
    pub frames: u64,
    /// Frames that were not a WebSocket message the client understands (skipped, as live).
    pub unparsed_frames: u64,
    /// Damage met, each `file:line: what` (the lost span is marked as a gap).
    pub damage: Vec<String>,
    /// Receive-time span of the captures, UTC ms.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub series: Option<SeriesTicker>,
    /// Markets with at least one line.
    pub markets: usize,
    pub rows: u64,
    pub gaps: u64,
    pub resyncs: u64,
    pub closed: u64,
    /// Markets in the captures' frames with no schedule (neither `--markets` nor a lifecycle
    /// frame gave open and close times): not recorded.
    pub unscheduled: Vec<MarketTicker>,
    pub snapshot_files: Vec<PathBuf>,
    pub snapshot_bytes: u64,
    pub markets_file: Option<PathBuf>,
    pub sidecar_lines: u64,
    pub elapsed: Duration,
}

impl RegridSummary {
    pub fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for RegridSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "re-gridded {} capture file(s), {} frames in {:.2} s ({:.0} frames/s, {:.0} rows/s): {} market(s), {} snapshot rows, {} gap / {} resync / {} closed markers",
            self.files.len(),
            self.frames,
            self.elapsed.as_secs_f64(),
            self.frames_per_s(),
            self.rows_per_s(),
            self.markets,
            self.rows,
            self.gaps,
            self.resyncs,
            self.closed
        )?;
        if let (Some(a), Some(b)) = (self.first_ms, self.last_ms) {
            writeln!(
                f,
                "  capture span {a}..{b} ms ({:.1} s)",
                (b - a) as f64 / 1000.0
            )?;
        }
        if self.unparsed_frames > 0 {
            writeln!(
                f,
                "  {} frame(s) not understood (skipped)",
                self.unparsed_frames
            )?;
        }
        for d in &self.damage {
            writeln!(f, "  damaged: {d} (lost span marked as a gap)")?;
        }
        if !self.unscheduled.is_empty() {
            writeln!(
                f,
                "  {} market(s) without open/close times (pass --markets): not recorded:",
                self.unscheduled.len()
            )?;
            for t in &self.unscheduled {
                writeln!(f, "    {t}")?;
            }
        }
        writeln!(
            f,
            "  snapshot files {} ({} bytes):",
            self.snapshot_files.len(),
            self.snapshot_bytes
        )?;
        write_paths(f, &self.snapshot_files)?;
        write_sidecar(f, self.markets_file.as_deref(), self.sidecar_lines)
    }
}

/// A quick first pass over one file: its receive-time span and the markets it mentions.
#[derive(Debug)]
struct Scan {
    path: PathBuf,
    first_ns: i64,
    last_ns: i64,
    tickers: BTreeSet<String>,
}

/// Finds the first pass's keys in a line's bytes (built once: building a searcher per call
/// cost as much as the search).
struct Keys {
    ticker: memchr::memmem::Finder<'static>,
    recv_ns: memchr::memmem::Finder<'static>,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            ticker: memchr::memmem::Finder::new(b"\"market_ticker\""),
            recv_ns: memchr::memmem::Finder::new(b"\"recv_ns\""),
        }
    }
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// The tickers a frame's text mentions (`"market_ticker":"…"`), without parsing it.
fn scan_tickers(keys: &Keys, text: &[u8], out: &mut BTreeSet<String>) {
    let key_len = keys.ticker.needle().len();
    let mut rest = text;
    while let Some(i) = keys.ticker.find(rest) {
        rest = &rest[i + key_len..];
        let Some(v) = skip_ws(rest).strip_prefix(b":") else {
            continue;
        };
        let Some(v) = skip_ws(v).strip_prefix(b"\"") else {
            continue;
        };
        if let Some(end) = memchr::memchr(b'"', v) {
            if let Ok(t) = std::str::from_utf8(&v[..end]) {
                if !out.contains(t) {
                    out.insert(t.to_string());
                }
            }
            rest = &v[end..];
        }
    }
}

/// `recv_ns` of a capture line, read without parsing the frame (`None`: not a record).
fn line_recv_ns(keys: &Keys, line: &[u8]) -> Option<i64> {
    let i = keys.recv_ns.find(line)?;
    let v = skip_ws(skip_ws(&line[i + keys.recv_ns.needle().len()..]).strip_prefix(b":")?);
    let end = v
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))
        .unwrap_or(v.len());
    std::str::from_utf8(&v[..end]).ok()?.parse().ok()
}

/// The first pass: time span and markets, read fast (lines, no JSON parsing). What it cannot
/// read is left to the second pass, which reports it.
fn scan(path: &Path) -> Result<Option<Scan>, RecorderError> {
    use std::io::{BufRead, BufReader, Read};
    let io = |e: std::io::Error| RecorderError::Config(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io)?;
    let f = std::fs::File::open(path).map_err(io)?;
    let mut input: Box<dyn BufRead> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(BufReader::new(f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    let mut s = Scan {
        path: path.to_path_buf(),
        first_ns: i64::MAX,
        last_ns: i64::MIN,
        tickers: BTreeSet::new(),
    };
    let mut any = false;
    let mut buf = Vec::with_capacity(4096);
    let keys = Keys::new();
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(ns) = line_recv_ns(&keys, &buf) {
            any = true;
            s.first_ns = s.first_ns.min(ns);
            s.last_ns = s.last_ns.max(ns);
            scan_tickers(&keys, &buf, &mut s.tickers);
        }
    }
    Ok(any.then_some(s))
}

/// Two files overlapping in time that share a market: the error, naming both.
fn check_overlaps(scans: &[Scan]) -> Result<(), RecorderError> {
    for (i, a) in scans.iter().enumerate() {
        for b in &scans[i + 1..] {
            if a.first_ns <= b.last_ns && b.first_ns <= a.last_ns {
                if let Some(t) = a.tickers.intersection(&b.tickers).next() {
                    return Err(RecorderError::Config(format!(
                        "captures {} and {} overlap in time ({}..{} and {}..{} ns) and both hold {t}: \
                         re-grid them separately (nothing was written)",
                        a.path.display(),
                        b.path.display(),
                        a.first_ns,
                        a.last_ns,
                        b.first_ns,
                        b.last_ns
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Assigns each file (sorted by start) to a connection: the first one whose last file ended
/// before it starts, else a new one.
fn chains(scans: &[Scan]) -> Vec<usize> {
    let mut ends: Vec<i64> = Vec::new();
    scans
        .iter()
        .map(|s| match ends.iter().position(|&e| e <= s.first_ns) {
            Some(c) => {
                ends[c] = s.last_ns;
                c
            }
            None => {
                ends.push(s.last_ns);
                ends.len() - 1
            }
        })
        .collect()
}

/// Reads `--markets`: sidecar lines as they are; markets-list lines (no `ts_ms`/`source`)
/// get `ts_ms = at_ms` and `source = capture`. Errors name the file and line.
pub fn read_market_lines(path: &Path, at_ms: i64) -> Result<Vec<MarketRecord>, RecorderError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| RecorderError::Config(format!("{}:{}: {m}", path.display(), i + 1));
        let mut v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        obj.entry("ts_ms")
            .or_insert(serde_json::json!(at_ms.max(0)));
        obj.entry("source").or_insert(serde_json::json!("capture"));
        out.push(serde_json::from_value::<MarketRecord>(v).map_err(|e| bad(e.to_string()))?);
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, RecorderError> {
    use std::io::Read;
    let bytes = std::fs::read(path)
        .map_err(|e| RecorderError::Config(format!("{}: {e}", path.display())))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .map_err(|e| RecorderError::Config(format!("{}: {e}", path.display())))?;
        Ok(s)
    } else {
        String::from_utf8(bytes)
            .map_err(|e| RecorderError::Config(format!("{}: not UTF-8 ({e})", path.display())))
    }
}

/// The next item of one file in the merge.
enum Next {
    /// Boxed: a parsed frame is large and waits in the merge.
    Record(Box<ParsedRecord>),
    Damage(String),
    End,
}

struct Source {
    path: PathBuf,
    chain: usize,
    reader: Option<CaptureReader>,
    last_ns: i64,
    ended: bool,
}

impl Source {
    /// The next item and its merge key (a damage or the end sorts at the last good frame).
    fn next(&mut self) -> Result<(i64, Next), RecorderError> {
        if self.reader.is_none() && !self.ended {
            self.reader = Some(
                CaptureReader::open(&self.path)
                    .map_err(|e| RecorderError::Config(e.to_string()))?,
            );
        }
        let Some(rd) = self.reader.as_mut() else {
            return Ok((self.last_ns, Next::End));
        };
        match rd.next_parsed() {
            Some(Ok(r)) => {
                self.last_ns = r.recv_ns;
                Ok((r.recv_ns, Next::Record(Box::new(r))))
            }
            Some(Err(CaptureError::Line {
                path,
                line,
                message,
            })) => Ok((
                self.last_ns,
                Next::Damage(format!("{}:{line}: {message}", path.display())),
            )),
            Some(Err(e)) => Err(RecorderError::Config(e.to_string())),
            None => {
                let st = rd.stats();
                self.reader = None;
                self.ended = true;
                if st.truncated {
                    let line = st.truncated_at_line.unwrap_or(st.records + 1);
                    return Ok((
                        self.last_ns,
                        Next::Damage(format!(
                            "{}:{line}: truncated or corrupt compressed stream; the rest of the file is skipped",
                            self.path.display()
                        )),
                    ));
                }
                Ok((self.last_ns, Next::End))
            }
        }
    }
}

/// The re-grid run: the state machine, the books, the writer and the virtual clock.
struct Run {
    st: RecorderState,
    sync: BookSync,
    writer: SnapshotWriter,
    convention: NoPriceConvention,
    silence_ns: i64,
    /// Sids seen per connection (namespaced), and each connection's last receive time.
    chain_sids: Vec<BTreeSet<u64>>,
    /// The largest sid of a book frame or `subscribed` reply on each connection since its
    /// books were last lost.
    chain_max_sid: Vec<Option<u64>>,
    chain_last_ns: Vec<Option<i64>>,
    /// `--markets` lines not applied yet, by `ts_ms` (applied before the tick at that time).
    pending_markets: Vec<MarketRecord>,
    sidecar: Vec<MarketRecord>,
    lines: Vec<Line>,
    events: Vec<BookEvent>,
    unparsed: u64,
}

fn out_err(e: impl fmt::Display) -> RecorderError {
    RecorderError::Output(e.to_string())
}

impl Run {
    /// Writes every grid instant `T` with `T·10⁶ < until_ns` (or `≤` when `inclusive`).
    fn advance(&mut self, until_ns: i64, inclusive: bool) -> Result<(), RecorderError> {
        loop {
            let t = self.st.next_tick;
            let t_ns = t.saturating_mul(NS_PER_MS);
            if t_ns > until_ns || (t_ns == until_ns && !inclusive) {
                return Ok(());
            }
            while self.pending_markets.last().is_some_and(|r| r.ts_ms <= t) {
                let rec = self.pending_markets.pop().expect("checked");
                if let Some(line) = self.st.registry.on_record(&rec) {
                    self.sidecar.push(line);
                }
            }
            if let Some(q) = self.st.quiet_until(t) {
                // Nothing to write before `q` unless a frame or a sidecar line comes first.
                let mut to = q;
                if let Some(r) = self.pending_markets.last() {
                    to = to.min(ceil_to_grid(r.ts_ms, self.st.step));
                }
                let limit = until_ns.div_euclid(NS_PER_MS);
                to = to.min(ceil_to_grid(limit, self.st.step));
                if to > t {
                    self.st.next_tick = to;
                    self.st.last_tick = Some(to - self.st.step);
                    continue;
                }
            }
            self.lines.clear();
            self.st.on_timer(t, &self.sync, &mut self.lines);
            self.st.count(&self.lines);
            for l in &self.lines {
                self.writer.write(l).map_err(out_err)?;
            }
        }
    }

    /// Connection `chain` is lost (silence or damage): its books are invalid, and the next
    /// `gap` says `why`.
    fn lose(&mut self, chain: usize, why: &str) {
        self.events.clear();
        self.chain_max_sid[chain] = None;
        for sid in std::mem::take(&mut self.chain_sids[chain]) {
            self.sync.forget_sid(sid, &mut self.events);
        }
        for ev in &self.events {
            if let BookEvent::BookInvalid { ticker, .. } = ev {
                self.st.reasons.insert(ticker.clone(), why.to_string());
            }
        }
    }

    fn frame(&mut self, chain: usize, rec: ParsedRecord) -> Result<(), RecorderError> {
        if let Some(last) = self.chain_last_ns[chain] {
            if rec.recv_ns - last > self.silence_ns {
                let lost_at = last + self.silence_ns;
                self.advance(lost_at, false)?;
                let why = format!(
                    "capture silent for {:.1} s (more than the {} s liveness window)",
                    (rec.recv_ns - last) as f64 / 1e9,
                    self.silence_ns / 1_000_000_000
                );
                self.lose(chain, &why);
            }
        }
        self.chain_last_ns[chain] = Some(rec.recv_ns);
        self.advance(rec.recv_ns, false)?;
        let mut frame = match rec.frame {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(line = rec.line, error = %e, "unparseable frame");
                self.unparsed += 1;
                self.st.stats.frames += 1;
                return Ok(());
            }
        };
        if chain > 0 {
            let shift = (chain as u64) << SID_SHIFT;
            frame.sid = frame.sid.map(|s| s | shift);
            if let WsMessage::Error(e) = &mut frame.msg {
                e.sid = e.sid.map(|s| s | shift);
            }
        }
        if let (WsMessage::Subscribed { .. }, Some(sid)) = (&frame.msg, frame.sid) {
            if self.chain_max_sid[chain].is_some_and(|m| sid <= m) {
                // Sid numbers are per connection and only grow within one: a subscription on
                // a number already used since the books were last (re)built is a new
                // connection (the recorder reconnected). Every book of the old one is invalid
                // until its fresh snapshot, exactly as live after a disconnect.
                self.lose(chain, RECONNECTED);
            }
        }
        if let (
            WsMessage::Subscribed { .. }
            | WsMessage::OrderbookSnapshot(_)
            | WsMessage::OrderbookDelta(_),
            Some(sid),
        ) = (&frame.msg, frame.sid)
        {
            let m = &mut self.chain_max_sid[chain];
            *m = Some(m.map_or(sid, |m| m.max(sid)));
        }
        if let (WsMessage::OrderbookSnapshot(_) | WsMessage::OrderbookDelta(_), Some(sid)) =
            (&frame.msg, frame.sid)
        {
            if self.chain_sids[chain].insert(sid) {
                self.sync.set_convention(sid, self.convention);
            }
        }
        self.events.clear();
        self.sync.apply(&frame, &mut self.events);
        for ev in &self.events {
            if matches!(ev, BookEvent::ResyncNeeded(_)) {
                self.st.stats.resyncs_requested += 1;
            }
            self.st.on_book_event(ev);
        }
        let now_ms = rec.recv_ns.div_euclid(NS_PER_MS);
        if let Some(line) = self.st.on_frame(&frame, now_ms) {
            self.sidecar.push(line);
        }
        Ok(())
    }
}

/// Re-grids the captures of `cfg` into `cfg.out_dir`. Errors: [`RecorderError::Config`] for
/// bad input (no capture, overlapping captures of one market, a bad markets file, an output
/// folder that already holds this series' files; nothing is written), `Locked`, `Output`.
pub fn regrid(cfg: &RegridConfig) -> Result<RegridSummary, RecorderError> {
    cfg.validate()?;
    let started = Instant::now();
    let mut scans = Vec::new();
    let mut empty = Vec::new();
    for p in &cfg.captures {
        match scan(p)? {
            Some(s) => scans.push(s),
            None => empty.push(p.clone()),
        }
    }
    for p in &empty {
        tracing::warn!(file = %p.display(), "capture holds no frame");
    }
    tracing::info!(
        files = scans.len(),
        elapsed_s = started.elapsed().as_secs_f64(),
        "captures scanned (time spans, markets)"
    );
    scans.sort_by(|a, b| (a.first_ns, &a.path).cmp(&(b.first_ns, &b.path)));
    check_overlaps(&scans)?;
    let tickers: BTreeSet<&str> = scans
        .iter()
        .flat_map(|s| s.tickers.iter().map(String::as_str))
        .collect();
    let series = match &cfg.series {
        Some(s) => s.clone(),
        None => {
            let all: BTreeSet<SeriesTicker> = tickers
                .iter()
                .map(|t| MarketTicker::new(*t).series())
                .collect();
            match all.len() {
                1 => all.into_iter().next().expect("one"),
                0 => {
                    return Err(RecorderError::Config(
                        "the captures name no market; nothing to re-grid".into(),
                    ))
                }
                _ => {
                    return Err(RecorderError::Config(format!(
                        "the captures hold several series ({}): choose one with --series",
                        all.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
    };
    let first_ns = scans.first().map(|s| s.first_ns);
    let last_ns = scans.iter().map(|s| s.last_ns).max();
    let first_ms = first_ns.map(|n| n.div_euclid(NS_PER_MS));
    let mut markets = match &cfg.markets {
        Some(p) => read_market_lines(p, first_ms.unwrap_or(0))?,
        None => Vec::new(),
    };
    // Only the markets the captures hold: the files say nothing about the others.
    markets.retain(|r| tickers.contains(r.ticker.as_str()));
    // Applied in time order (stable): pop from the end.
    markets.sort_by_key(|r| r.ts_ms);
    markets.reverse();

    // Output: never append to an earlier run's files.
    let existing = resolve_glob(&snapshot_glob(&cfg.out_dir, &series)).unwrap_or_default();
    let sidecar_path = markets_path(&cfg.out_dir, &series);
    if !existing.is_empty() || sidecar_path.exists() {
        return Err(RecorderError::Config(format!(
            "{} already holds {series} files ({}): re-grid into an empty folder",
            cfg.out_dir.display(),
            existing
                .first()
                .unwrap_or(&sidecar_path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )));
    }
    let lock = OutDirLock::acquire(&cfg.out_dir)?;
    let writer = SnapshotWriter::new(
        &cfg.out_dir,
        series.clone(),
        cfg.snapshot_ms,
        WriterOptions {
            rotate: cfg.rotate,
            // A bulk writer: level 3 writes about twice as fast as the live recorder's 6 for
            // files about 7 % larger (pipeline::snapshot::WriterOptions).
            compression_level: REGRID_GZIP_LEVEL,
            ..WriterOptions::default()
        },
    )
    .map_err(out_err)?;
    let step = cfg.snapshot_ms as i64;
    // The first instant T with T·10⁶ ≥ the first receive time.
    let first_tick = first_ns.map_or(0, |n| {
        ceil_to_grid(
            n.div_euclid(NS_PER_MS) + i64::from(n.rem_euclid(NS_PER_MS) != 0),
            step,
        )
    });
    let chain_of = chains(&scans);
    let n_chains = chain_of.iter().copied().max().map_or(0, |m| m + 1);
    let mut run = Run {
        st: RecorderState::new(series.clone(), step, cfg.depth, first_tick),
        sync: BookSync::new(),
        writer,
        convention: cfg.convention,
        silence_ns: cfg.silence.as_nanos().min(i64::MAX as u128) as i64,
        chain_sids: vec![BTreeSet::new(); n_chains],
        chain_max_sid: vec![None; n_chains],
        chain_last_ns: vec![None; n_chains],
        pending_markets: markets,
        sidecar: Vec::new(),
        lines: Vec::new(),
        events: Vec::new(),
        unparsed: 0,
    };
    run.st.connected = true;
    run.st.stats.connections = n_chains as u64;

    // The k-way merge by receive time (ties: file order).
    let mut sources: Vec<Source> = scans
        .iter()
        .zip(&chain_of)
        .map(|(s, &c)| Source {
            path: s.path.clone(),
            chain: c,
            reader: None,
            last_ns: s.first_ns,
            ended: false,
        })
        .collect();
    let mut heap: BinaryHeap<std::cmp::Reverse<(i64, usize)>> = scans
        .iter()
        .enumerate()
        .map(|(i, s)| std::cmp::Reverse((s.first_ns, i)))
        .collect();
    let mut ahead: Vec<Option<Next>> = (0..sources.len()).map(|_| None).collect();
    let mut damage = Vec::new();
    let mut frames = 0u64;
    while let Some(std::cmp::Reverse((_, i))) = heap.pop() {
        let item = match ahead[i].take() {
            Some(n) => n,
            None => sources[i].next()?.1,
        };
        let chain = sources[i].chain;
        match item {
            Next::Record(r) => {
                frames += 1;
                run.frame(chain, *r)?;
            }
            Next::Damage(d) => {
                tracing::warn!(damage = %d, "damaged capture: the lost span is marked as a gap");
                let last = sources[i].last_ns;
                run.advance(last, true)?;
                run.lose(chain, &format!("capture damaged at {d}"));
                damage.push(d);
            }
            Next::End => continue,
        }
        let (key, next) = sources[i].next()?;
        if !matches!(next, Next::End) {
            ahead[i] = Some(next);
            heap.push(std::cmp::Reverse((key, i)));
        }
    }
    if let Some(last) = last_ns {
        run.advance(last, true)?;
    }
    run.lines.clear();
    run.st.finish_with(
        |_, pending| match pending {
            Some(r) if r.starts_with("capture damaged") => format!("end of capture ({r})"),
            _ => "end of capture".to_string(),
        },
        &mut run.lines,
    );
    run.st.count(&run.lines);
    for l in &run.lines {
        run.writer.write(l).map_err(out_err)?;
    }
    let written = run.writer.close().map_err(out_err)?;
    if !run.sidecar.is_empty() {
        append_markets(&sidecar_path, &run.sidecar).map_err(out_err)?;
    }
    drop(lock);

    let mut books: BTreeSet<MarketTicker> = BTreeSet::new();
    for b in run.sync.books() {
        books.insert(b.ticker().clone());
    }
    let unscheduled = books
        .into_iter()
        .filter(|t| {
            run.st.registry.is_ours(t)
                && run
                    .st
                    .registry
                    .get(t.as_str())
                    .is_none_or(|m| m.open_ms.is_none() || m.close_ms.is_none())
        })
        .collect();
    let stats = &run.st.stats;
    let mut files: Vec<PathBuf> = scans.iter().map(|s| s.path.clone()).collect();
    files.extend(empty);
    let summary = RegridSummary {
        files,
        frames,
        unparsed_frames: run.unparsed,
        damage,
        first_ms,
        last_ms: last_ns.map(|n| n.div_euclid(NS_PER_MS)),
        series: Some(series),
        markets: stats.seen.len(),
        rows: stats.rows,
        gaps: stats.gaps,
        resyncs: stats.resyncs,
        closed: stats.closed,
        unscheduled,
        snapshot_files: written.files,
        snapshot_bytes: written.bytes,
        markets_file: (!run.sidecar.is_empty()).then_some(sidecar_path),
        sidecar_lines: run.sidecar.len() as u64,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        frames = summary.frames,
        rows = summary.rows,
        gaps = summary.gaps,
        elapsed_s = summary.elapsed.as_secs_f64(),
        "re-grid finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_ns_is_read_without_parsing() {
        let k = Keys::new();
        assert_eq!(
            line_recv_ns(&k, br#"{"recv_ns": 17, "frame":{}}"#),
            Some(17)
        );
        assert_eq!(line_recv_ns(&k, br#"{"frame":{},"recv_ns":-3}"#), Some(-3));
        assert_eq!(line_recv_ns(&k, br#"{"recv_ns":"x"}"#), None);
    }

    #[test]
    fn tickers_are_found_without_parsing() {
        let mut s = BTreeSet::new();
        scan_tickers(
            &Keys::new(),
            br#"{"type":"ticker","msg":{"market_ticker": "KXA-1","x":{"market_ticker":"KXA-2"}}}"#,
            &mut s,
        );
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec!["KXA-1".to_string(), "KXA-2".to_string()]
        );
    }

    fn sc(first: i64, last: i64) -> Scan {
        Scan {
            path: PathBuf::from(format!("f{first}")),
            first_ns: first,
            last_ns: last,
            tickers: BTreeSet::new(),
        }
    }

    #[test]
    fn consecutive_files_are_one_connection_overlapping_ones_are_not() {
        let scans = [sc(0, 10), sc(10, 20), sc(15, 30), sc(21, 40), sc(31, 50)];
        assert_eq!(chains(&scans), vec![0, 0, 1, 0, 1]);
    }

    #[test]
    fn markets_list_lines_get_a_time_and_a_source() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(
            &p,
            "{\"ticker\": \"KXA-1\", \"open_time\": \"2026-05-11T05:30:00Z\", \"close_time\": \"2026-05-11T05:45:00Z\", \"result\": null}\n\
             {\"ts_ms\":5,\"ticker\":\"KXA-2\",\"source\":\"ws\",\"status\":\"active\"}\n",
        )
        .unwrap();
        let r = read_market_lines(&p, 1000).unwrap();
        assert_eq!((r[0].ts_ms, r[1].ts_ms), (1000, 5));
        assert_eq!(r[0].source.as_str(), "capture");
        std::fs::write(&p, "{\"ticker\": 5}\n").unwrap();
        let e = read_market_lines(&p, 0).unwrap_err().to_string();
        assert!(e.contains("m.jsonl:1:"), "{e}");
    }
}
