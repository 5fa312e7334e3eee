//! Test harness for the `download_highres` binary: an in-process simulator on 127.0.0.1:0 with
//! short markets and a real-time clock, a runtime config pointing at it, the binary as a child
//! process, and the checks every test shares:
//!
//! * [`check_grid`]: the snapshot files' per-market structure (every grid instant of every
//!   active market covered exactly once by a row or an outage, markers in order, nothing
//!   between a `gap` and its `resync`);
//! * [`Replay`]: the order books rebuilt from the raw capture (every frame the exchange sent),
//!   sid instance by sid instance, against which each row is compared exactly.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use kalshi_sim::engine::NoiseConfig;
use kalshi_sim::{ClockMode, KeySetup, RateLimitConfig, ScheduledFault, Sim, SimConfig};
use market_data::book::{NoPriceConvention, OrderBook};
use market_data::capture::CaptureReader;
use market_data::wire::{WsFrame, WsMessage};
use pipeline::ids::MarketTicker;
use pipeline::money::{Count, Price};
use pipeline::schema::markets::{fold_latest, markets_path, read_markets, MarketRecord};
use pipeline::secrets::{ApiKeyId, PrivateKey};
use pipeline::snapshot::{
    resolve_glob, Line, MarkerKind, ReadOptions, ReadReport, SnapshotReader, SnapshotRecord,
};
use pipeline::SeriesTicker;

pub const SERIES: &str = "KXBTC15M";
pub const STEP: i64 = 100;

/// Deterministic 2048-bit keys (generated once per test process).
pub fn key(n: usize) -> (ApiKeyId, PrivateKey) {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        use rand::SeedableRng;
        (0..2)
            .map(|i| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7000 + i);
                PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rng, 2048).expect("key"))
            })
            .collect()
    });
    (
        ApiKeyId::new(format!("00000000-0000-4000-8000-0000000000{n:02}")),
        keys[n].clone(),
    )
}

/// A running simulator plus a temp folder with its keys, a runtime config and an output dir.
pub struct Setup {
    pub sim: Sim,
    _dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub config: PathBuf,
    pub out: PathBuf,
}

/// Real-time clock (the recorder's grid is wall-clock), `market_ms` markets listed one window
/// ahead, a market maker requoting every 150 ms, a noise trader, no rate limits.
pub fn sim_config(seed: u64, market_ms: i64, faults: Vec<ScheduledFault>) -> SimConfig {
    let (key_id, key) = key(0);
    let mut c = SimConfig {
        clock: ClockMode::Realtime { speed: 1.0 },
        warmup_markets: 1,
        key: KeySetup::Private { key_id, key },
        rate_limit: RateLimitConfig::unlimited(),
        fault_seed: seed,
        fault_schedule: faults,
        tick_ms: 20,
        ..SimConfig::default()
    };
    c.engine.seed = seed;
    c.engine.market_duration_ms = market_ms;
    c.engine.listing_lead_ms = market_ms;
    c.engine.requote_interval_ms = 150;
    c.engine.noise = NoiseConfig {
        takers_per_minute: 90.0,
        ..NoiseConfig::default()
    };
    c
}

pub async fn start(cfg: SimConfig) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let keep = std::env::var_os("KEEP_TEST_DIRS").is_some();
    let (guard, root) = if keep {
        let p = dir.keep();
        eprintln!("test dir kept: {}", p.display());
        (None, p)
    } else {
        let p = dir.path().to_path_buf();
        (Some(dir), p)
    };
    let mut cfg = cfg;
    cfg.key_dir = Some(root.join("keys"));
    let market_ms = cfg.engine.market_duration_ms;
    let sim = kalshi_sim::spawn(cfg).await.expect("simulator starts");
    // The markets sit on the wall clock's grid. A recorder started in the last second of one
    // may register it and never get it subscribed before it closes (a `gap` and nothing
    // else, which the capture checks would call a phantom): start the tests after the next
    // market opens instead, whatever the wall clock's phase.
    let phase = sim
        .handle()
        .with_engine(|e| e.now_ms())
        .rem_euclid(market_ms);
    if market_ms - phase < 1_000 {
        tokio::time::sleep(Duration::from_millis((market_ms - phase + 200) as u64)).await;
    }
    let (env, pem) = sim.key_files().expect("key files written");
    let out = root.join("out");
    let config = root.join("runtime.json");
    write_config(&config, &sim.rest_base(), &env, &pem, &out);
    Setup {
        sim,
        _dir: guard,
        root,
        config,
        out,
    }
}

pub fn write_config(path: &Path, rest_base: &str, env: &Path, pem: &Path, out: &Path) {
    let v = serde_json::json!({
        "schema": "runtime/v1",
        "environment": "sim",
        "exchange": {"sim": {"rest_base": rest_base}},
        "env_file": env,
        "pem_file": pem,
        "series": SERIES,
        "data_dir": out,
        "snapshot_ms": STEP,
        "use_yes_price": true
    });
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// The binary with `--config` and fast discovery/status; more flags from `args`.
pub fn recorder(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_download_highres"));
    c.arg("--config")
        .arg(config)
        .args([
            "--discovery-seconds",
            "2",
            "--status-seconds",
            "2",
            "--subscribe-lead-seconds",
            "2",
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub async fn finish(child: tokio::process::Child) -> Finished {
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the recorder exits")
        .expect("wait");
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn signal(child: &tokio::process::Child, sig: i32) {
    let pid = child.id().expect("running") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Waits (polling the file system) until `f` holds; panics after two minutes.
pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn snapshot_files(out: &Path) -> Vec<PathBuf> {
    resolve_glob(&format!("{}/{SERIES}_*.snap_*ms.jsonl.gz", out.display())).unwrap()
}

pub fn capture_files(out: &Path) -> Vec<PathBuf> {
    resolve_glob(&format!("{}/{SERIES}_*.capture.jsonl.gz", out.display())).unwrap()
}

/// Every line of every snapshot file, in file order, and the read report.
pub fn read_lines(out: &Path) -> (Vec<Line>, ReadReport) {
    let mut rd = SnapshotReader::from_paths(snapshot_files(out), ReadOptions::default());
    let lines: Vec<Line> = rd.by_ref().collect();
    (lines, rd.into_report())
}

/// The markets sidecar folded to each market's latest state.
pub fn markets(out: &Path) -> BTreeMap<MarketTicker, MarketRecord> {
    let r = read_markets(&markets_path(out, &SeriesTicker::new(SERIES))).expect("sidecar");
    fold_latest(r.records)
}

pub fn by_market(lines: &[Line]) -> BTreeMap<MarketTicker, Vec<Line>> {
    let mut m: BTreeMap<MarketTicker, Vec<Line>> = BTreeMap::new();
    for l in lines {
        m.entry(l.market_ticker().clone())
            .or_default()
            .push(l.clone());
    }
    m
}

fn reason(l: &Line) -> &str {
    match l {
        Line::Marker(m) => m.reason.as_deref().unwrap_or(""),
        _ => "",
    }
}

/// What [`check_grid`] counted.
#[derive(Debug, Default)]
pub struct GridStats {
    pub markets: usize,
    pub rows: usize,
    pub gaps: usize,
    pub resyncs: usize,
    pub closed: usize,
    pub first_tick: i64,
    pub last_tick: i64,
    /// Gap reasons, in order.
    pub gap_reasons: Vec<String>,
}

/// Checks the per-market structure of the snapshot files (see the module docs).
/// `clean_stop`: the run ended with SIGTERM/duration (every market still being recorded ends
/// with a "recorder stopped" gap); otherwise (kill -9) the tail may stop anywhere.
pub fn check_grid(
    lines: &[Line],
    meta: &BTreeMap<MarketTicker, MarketRecord>,
    clean_stop: bool,
) -> GridStats {
    let per = by_market(lines);
    assert!(!per.is_empty(), "nothing recorded");
    let mut st = GridStats {
        markets: per.len(),
        first_tick: i64::MAX,
        last_tick: i64::MIN,
        ..Default::default()
    };
    for ls in per.values() {
        for l in ls {
            if !matches!(l, Line::Marker(m) if m.event == MarkerKind::Closed || reason(l) == "recorder stopped")
            {
                st.first_tick = st.first_tick.min(l.ts_ms());
                st.last_tick = st.last_tick.max(l.ts_ms());
            }
        }
    }
    for (t, ls) in &per {
        let m = meta
            .get(t)
            .unwrap_or_else(|| panic!("{t} recorded but absent from the markets sidecar"));
        let open = m.open_time.expect("open_time").timestamp_millis();
        let close = m.close_time.expect("close_time").timestamp_millis();
        assert_eq!(open % STEP, 0, "{t}: test markets open on the grid");
        // The first line is at the first grid instant the market was active while recording.
        let first = ls[0].ts_ms();
        assert_eq!(
            first,
            open.max(st.first_tick),
            "{t}: first line at its open (or the first tick)"
        );
        let mut trusted = false; // rows allowed
        let mut started = false;
        let mut last_row: Option<i64> = None;
        let mut prev_ts = i64::MIN;
        let mut expect_row_at: Option<i64> = None;
        let mut closed = false;
        for (i, l) in ls.iter().enumerate() {
            let ts = l.ts_ms();
            assert!(!closed, "{t}: line after the closed marker: {l:?}");
            assert!(
                ts >= prev_ts,
                "{t}: line {i} goes back in time ({ts} < {prev_ts})"
            );
            prev_ts = ts;
            if let Some(e) = expect_row_at {
                assert!(
                    matches!(l, Line::Snapshot(r) if r.ts_ms == e),
                    "{t}: a resync at {e} must be followed by that tick's row, got {l:?}"
                );
                expect_row_at = None;
            }
            match l {
                Line::Snapshot(r) => {
                    st.rows += 1;
                    assert!(
                        trusted,
                        "{t}: row at {ts} inside an outage (after a gap, before its resync)"
                    );
                    assert_eq!(ts % STEP, 0, "{t}: row off the grid");
                    assert!(
                        open <= ts && ts < close,
                        "{t}: row at {ts} outside [{open}, {close})"
                    );
                    if let Some(prev) = last_row {
                        assert_eq!(ts - prev, STEP, "{t}: rows at {prev} and {ts} without a marker between: missed or repeated tick");
                    }
                    assert_eq!(r.close_ts_ms, Some(close), "{t}: close_ts_ms");
                    assert!(r.seq.is_some(), "{t}: rows carry the book's seq");
                    last_row = Some(ts);
                }
                Line::Marker(mk) => match mk.event {
                    MarkerKind::Gap => {
                        st.gaps += 1;
                        st.gap_reasons.push(reason(l).to_string());
                        assert!(
                            trusted || !started,
                            "{t}: second gap at {ts} without a resync"
                        );
                        trusted = false;
                        started = true;
                        last_row = None;
                    }
                    MarkerKind::Resync => {
                        st.resyncs += 1;
                        assert!(!trusted, "{t}: resync at {ts} while trusted");
                        assert!(
                            ts % STEP == 0 && ts >= open && ts < close,
                            "{t}: resync at {ts}"
                        );
                        if let Some(prev) = last_row {
                            panic!("{t}: resync at {ts} right after row {prev}");
                        }
                        trusted = true;
                        started = true;
                        expect_row_at = Some(ts);
                    }
                    MarkerKind::Closed => {
                        st.closed += 1;
                        assert_eq!(ts, close, "{t}: closed marker at the close");
                        if trusted {
                            assert_eq!(
                                last_row,
                                Some(close - STEP),
                                "{t}: recorded until the close"
                            );
                        }
                        closed = true;
                    }
                    MarkerKind::Other(ref o) => panic!("{t}: unexpected marker {o}"),
                },
            }
        }
        assert!(expect_row_at.is_none(), "{t}: file ends after a resync");
        if clean_stop && !closed {
            assert!(
                close > st.last_tick,
                "{t}: closed at {close} during the run but no closed marker"
            );
            // Still open at the stop: the file ends with a gap ("recorder stopped" at the next
            // tick, after that tick's row, or the gap of an outage that lasted to the end).
            let last = ls.last().unwrap();
            assert!(
                matches!(last, Line::Marker(m) if m.event == MarkerKind::Gap),
                "{t}: a market still open at the stop must end with a gap, got {last:?}"
            );
            if reason(last) == "recorder stopped" {
                assert_eq!(
                    last.ts_ms(),
                    st.last_tick + STEP,
                    "{t}: stop marker at the next tick"
                );
                assert!(
                    matches!(&ls[ls.len() - 2], Line::Snapshot(r) if r.ts_ms == st.last_tick),
                    "{t}: recorded until the last tick"
                );
            }
        }
    }
    st
}

/// One state of a rebuilt book: after the frame with `seq` in snapshot epoch `epoch`.
#[derive(Debug, Clone)]
pub struct BookState {
    pub epoch: u64,
    pub seq: u64,
    /// Largest exchange `ts_ms` of the deltas applied in this epoch so far.
    pub max_delta_ts: Option<i64>,
    pub yes: Vec<(Price, Count)>,
    pub no: Vec<(Price, Count)>,
}

#[derive(Debug)]
struct RBook {
    inst: u64,
    epoch: u64,
    valid: bool,
    book: OrderBook,
    max_delta_ts: Option<i64>,
}

/// The books rebuilt from capture files, keeping every state. Sid numbers are reused across
/// connections, so each `subscribed` reply for the order-book channel starts a new *instance*
/// of its sid; a market's *epoch* counts the snapshots it was rebuilt from.
#[derive(Debug, Default)]
pub struct Replay {
    inst_of_sid: HashMap<u64, u64>,
    next_inst: u64,
    last_seq: HashMap<u64, u64>,
    books: HashMap<MarketTicker, RBook>,
    pub history: HashMap<MarketTicker, Vec<BookState>>,
    pub frames: u64,
    pub gaps: u64,
    pub duplicates: u64,
}

fn ladder(b: &OrderBook, yes: bool) -> Vec<(Price, Count)> {
    let v = if yes {
        b.yes_bids(1000)
    } else {
        b.no_bids(1000)
    };
    v.into_iter().map(|l| (l.price, l.size)).collect()
}

impl Replay {
    pub fn from_capture(out: &Path) -> Replay {
        let files = capture_files(out);
        assert!(!files.is_empty(), "no capture file");
        let mut r = Replay::default();
        for f in files {
            let rd = CaptureReader::open(&f).unwrap();
            for rec in rd {
                let rec = rec.expect("capture line");
                let frame = WsFrame::parse(&rec.frame).expect("captured frame parses");
                r.apply(&frame);
            }
        }
        r
    }

    fn push(&mut self, t: &MarketTicker, seq: u64) {
        let b = &self.books[t];
        let s = BookState {
            epoch: b.epoch,
            seq,
            max_delta_ts: b.max_delta_ts,
            yes: ladder(&b.book, true),
            no: ladder(&b.book, false),
        };
        self.history.entry(t.clone()).or_default().push(s);
    }

    /// Sequence bookkeeping of one sequenced frame; false = duplicate, drop it.
    fn sequenced(&mut self, inst: u64, seq: u64) -> bool {
        match self.last_seq.get(&inst).copied() {
            Some(last) if seq <= last => {
                self.duplicates += 1;
                false
            }
            Some(last) if seq > last + 1 => {
                self.gaps += 1;
                for b in self.books.values_mut() {
                    if b.inst == inst {
                        b.valid = false;
                    }
                }
                self.last_seq.insert(inst, seq);
                true
            }
            _ => {
                self.last_seq.insert(inst, seq);
                true
            }
        }
    }

    pub fn apply(&mut self, f: &WsFrame) {
        self.frames += 1;
        match &f.msg {
            WsMessage::Subscribed { channel } if channel.as_deref() == Some("orderbook_delta") => {
                let sid = f.sid.expect("subscribed sid");
                self.next_inst += 1;
                self.inst_of_sid.insert(sid, self.next_inst);
            }
            WsMessage::Unsubscribed => {
                if let Some(inst) = f.sid.and_then(|s| self.inst_of_sid.remove(&s)) {
                    for b in self.books.values_mut() {
                        if b.inst == inst {
                            b.valid = false;
                        }
                    }
                }
            }
            WsMessage::OrderbookSnapshot(s) => {
                let inst = self.inst_of_sid[&f.sid.expect("sid")];
                if !self.sequenced(inst, f.seq.expect("seq")) {
                    return;
                }
                let t = s.market_ticker.clone();
                let epoch = self.books.get(&t).map_or(0, |b| b.epoch) + 1;
                let mut book = OrderBook::new(t.clone());
                book.apply_snapshot(s.yes_levels(), s.no_levels(), NoPriceConvention::YesScale)
                    .expect("snapshot applies");
                self.books.insert(
                    t.clone(),
                    RBook {
                        inst,
                        epoch,
                        valid: true,
                        book,
                        max_delta_ts: None,
                    },
                );
                self.push(&t, f.seq.unwrap());
            }
            WsMessage::OrderbookDelta(d) => {
                let Some(&inst) = f.sid.and_then(|s| self.inst_of_sid.get(&s)) else {
                    return; // a late delta of an unsubscribed sid
                };
                if !self.sequenced(inst, f.seq.expect("seq")) {
                    return;
                }
                let Some(b) = self.books.get_mut(&d.market_ticker) else {
                    return;
                };
                if b.inst != inst || !b.valid {
                    return;
                }
                if b.book
                    .apply_delta(d.side, d.price().unwrap(), d.delta().unwrap())
                    .is_err()
                {
                    b.valid = false;
                    return;
                }
                b.max_delta_ts = b.max_delta_ts.max(d.ts_ms);
                let t = d.market_ticker.clone();
                self.push(&t, f.seq.unwrap());
            }
            _ => {}
        }
    }

    pub fn epochs(&self, t: &MarketTicker) -> u64 {
        self.books.get(t).map_or(0, |b| b.epoch)
    }
}

fn top(v: &[(Price, Count)], n: usize) -> Vec<(Price, Count)> {
    v.iter().take(n).copied().collect()
}

fn row_matches(r: &SnapshotRecord, s: &BookState, depth: usize) -> bool {
    r.yes_bids.as_deref() == Some(&top(&s.yes, depth)[..])
        && r.no_bids.as_deref() == Some(&top(&s.no, depth)[..])
        && r.yes_bid_size == s.yes.first().map(|l| l.1)
        && r.yes_ask_size == s.no.first().map(|l| l.1)
}

/// Compares every row with the rebuilt book it claims to show: the state after the frame
/// with the row's `seq` in one snapshot epoch. Rows between two markers (a segment) must all
/// come from the same epoch, and epochs only move forward from segment to segment. A
/// segment's epoch is the first one (not before the previous segment's) in which every row of
/// the segment is found with identical content: several epochs can hold the same `seq` with
/// the same content (e.g. the empty book of a market not open yet, snapshotted again after a
/// resubscription). Returns the rows checked.
pub fn check_rows_against_capture(lines: &[Line], replay: &Replay, depth: usize) -> usize {
    let mut checked = 0;
    for (t, ls) in by_market(lines) {
        let hist = replay
            .history
            .get(&t)
            .unwrap_or_else(|| panic!("{t}: recorded but never in the capture"));
        let mut segments: Vec<Vec<&SnapshotRecord>> = vec![Vec::new()];
        for l in &ls {
            match l {
                Line::Marker(_) => segments.push(Vec::new()),
                Line::Snapshot(r) => segments.last_mut().unwrap().push(r),
            }
        }
        let mut epoch = 0;
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            let state = |e: u64, r: &SnapshotRecord| {
                hist.iter()
                    .find(|s| s.epoch == e && Some(s.seq) == r.seq && row_matches(r, s, depth))
            };
            let mut candidates: Vec<u64> = hist
                .iter()
                .filter(|s| s.epoch >= epoch && Some(s.seq) == seg[0].seq)
                .map(|s| s.epoch)
                .collect();
            candidates.dedup();
            let chosen = candidates
                .iter()
                .copied()
                .find(|&e| seg.iter().all(|r| state(e, r).is_some()));
            let Some(e) = chosen else {
                // Report the first row that no candidate epoch explains.
                let e = candidates.first().copied().unwrap_or(epoch);
                let bad = seg.iter().find(|r| state(e, r).is_none()).unwrap();
                let near = hist.iter().find(|s| s.epoch == e && Some(s.seq) == bad.seq);
                panic!(
                    "{t}: row at {} (seq {:?}) matches no rebuilt state (epochs tried {candidates:?}, from {epoch}):\n row {bad:?}\n book {near:?}",
                    bad.ts_ms, bad.seq
                );
            };
            epoch = e;
            checked += seg.len();
        }
    }
    checked
}

/// Runs `download_highres --from-capture FILES --out-dir OUT` (plus `args`) and returns every
/// line it wrote.
pub fn regrid_files(files: &[PathBuf], out: &Path, args: &[&str]) -> Vec<Line> {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_download_highres"))
        .arg("--from-capture")
        .args(files)
        .arg("--out-dir")
        .arg(out)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("download_highres --from-capture runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "--from-capture failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    read_lines(out).0
}

/// Receive times (ns) of every frame naming each market (`msg.market_ticker`), ascending.
pub fn frame_times(files: &[PathBuf]) -> HashMap<MarketTicker, Vec<i64>> {
    let mut m: HashMap<MarketTicker, Vec<i64>> = HashMap::new();
    for f in files {
        for rec in CaptureReader::open(f).unwrap() {
            let rec = rec.expect("capture line");
            let v: serde_json::Value = serde_json::from_str(&rec.frame).expect("frame is JSON");
            if let Some(t) = v["msg"]["market_ticker"].as_str() {
                m.entry(MarketTicker::new(t)).or_default().push(rec.recv_ns);
            }
        }
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

/// How a recording agrees with a reference grid of the same frames, instant by instant.
#[derive(Debug, Default)]
pub struct Agreement {
    /// Grid instants (market, T) where both wrote a row.
    pub both: usize,
    /// Of those, rows equal in every field.
    pub equal: usize,
    /// Rows whose book (every field but `last_price`/`volume`) is equal and whose
    /// `last_price`/`volume` the reference does not have yet: the live recorder seeds them from
    /// the REST market object before the market's first ticker message, and a capture holds
    /// WebSocket frames only.
    pub rest_seeded: usize,
    /// Other unequal rows with a frame of that market received in (T, T + lateness]: the
    /// live tick read the book after T, so it already showed that frame.
    pub late: usize,
    /// Unequal rows explained by neither (each one a bug), as `(market, T)`.
    pub unexplained: Vec<(MarketTicker, i64)>,
    /// Live rows at the instant the reference marks `end of capture`: the live recorder
    /// ticked once more after the last captured frame, before it stopped.
    pub capture_ended: usize,
    /// Re-grid rows where the live recording has a `websocket disconnected` gap: the live
    /// recorder saw the socket close, a capture only shows the next connection's first frame,
    /// so until then the re-grid shows the old connection's last book.
    pub disconnected: usize,
    /// Reference rows before the live recorder had the market's first snapshot (it had not
    /// subscribed yet; the reference has every frame of a capture recorded earlier).
    pub not_yet_subscribed: usize,
    /// Other instants where only one of the two wrote a row (each one a bug).
    pub one_sided: Vec<(MarketTicker, i64)>,
}

impl Agreement {
    /// Rows equal in every field.
    pub fn share(&self) -> f64 {
        self.equal as f64 / self.both.max(1) as f64
    }
    /// Rows with an equal book (the REST-seeded trade fields aside).
    pub fn book_share(&self) -> f64 {
        (self.equal + self.rest_seeded) as f64 / self.both.max(1) as f64
    }
}

/// Compares `live` rows with `reference` rows (the book after every frame received ≤ T) at
/// each grid instant. A difference is explained when the market had a frame received in
/// `(T, T + lateness_ms]` (the live tick read the book that much after T), or when only the
/// REST-seeded `last_price`/`volume` differ (see [`Agreement::rest_seeded`]).
pub fn agreement(
    live: &[Line],
    reference: &[Line],
    frames: &HashMap<MarketTicker, Vec<i64>>,
    lateness_ms: i64,
) -> Agreement {
    let rows = |ls: &[Line]| -> HashMap<(MarketTicker, i64), SnapshotRecord> {
        ls.iter()
            .filter_map(|l| match l {
                Line::Snapshot(r) => Some(((r.market_ticker.clone(), r.ts_ms), r.clone())),
                _ => None,
            })
            .collect()
    };
    let (a, b) = (rows(live), rows(reference));
    let ended: std::collections::HashSet<(MarketTicker, i64)> = reference
        .iter()
        .filter_map(|l| match l {
            Line::Marker(m) if m.reason.as_deref() == Some("end of capture") => {
                Some((m.market_ticker.clone(), m.ts_ms))
            }
            _ => None,
        })
        .collect();
    let mut out = Agreement::default();
    for k in a.keys().filter(|k| !b.contains_key(k)) {
        if ended.contains(k) {
            out.capture_ended += 1;
        } else {
            out.one_sided.push(k.clone());
        }
    }
    // The live recording's markers per market, to see what it said at an instant it has no
    // row for.
    let mut live_markers: HashMap<MarketTicker, Vec<(i64, String)>> = HashMap::new();
    for l in live {
        if let Line::Marker(m) = l {
            live_markers
                .entry(m.market_ticker.clone())
                .or_default()
                .push((
                    m.ts_ms,
                    match m.event {
                        MarkerKind::Gap => m.reason.clone().unwrap_or_default(),
                        _ => String::new(),
                    },
                ));
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(k)) {
        let said = live_markers
            .get(&k.0)
            .and_then(|ms| ms.iter().rev().find(|(ts, _)| *ts <= k.1));
        if said.is_some_and(|(_, why)| why.contains("disconnected")) {
            out.disconnected += 1;
        } else if said.is_none_or(|(_, why)| why.contains("no order-book snapshot yet")) {
            out.not_yet_subscribed += 1;
        } else {
            out.one_sided.push(k.clone());
        }
    }
    out.one_sided.sort();
    for (k, r) in &a {
        let Some(want) = b.get(k) else { continue };
        out.both += 1;
        if r == want {
            out.equal += 1;
            continue;
        }
        let seeded = SnapshotRecord {
            last_price: want.last_price.or(r.last_price),
            volume: want.volume.or(r.volume),
            ..want.clone()
        };
        if *r == seeded {
            out.rest_seeded += 1;
            continue;
        }
        let (t, ts) = (&k.0, k.1);
        let late = frames.get(t).is_some_and(|v| {
            let i = v.partition_point(|&x| x <= ts * 1_000_000);
            v.get(i)
                .is_some_and(|&x| x <= (ts + lateness_ms) * 1_000_000)
        });
        if late {
            out.late += 1;
        } else {
            out.unexplained.push(k.clone());
        }
    }
    out.unexplained.sort();
    out
}
