//! The recorder's state machine without IO and without a clock: the registry of markets, each
//! market's grid [`Track`], why books were invalidated, the connection state and the counters.
//! Time comes in as an argument (`now_ms`), books as a [`Books`] to read, lines go out as a
//! `Vec<Line>`. The live core ([`super::core`]) drives it on the wall (or exchange) clock with
//! the session's shared books; the offline re-grid ([`super::regrid`]) drives it on a virtual
//! clock (each frame's receive time) with a [`BookSync`] it feeds itself. Both therefore write
//! exactly the same lines for the same books at the same instants.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pipeline::ids::{MarketTicker, SeriesTicker};
use pipeline::schema::markets::MarketRecord;
use pipeline::snapshot::{Line, MarkerKind};

use super::grid::{ceil_to_grid, floor_to_grid, Extras, Track};
use super::registry::Registry;
use crate::sync::{BookEvent, BookSync, InvalidReason};
use crate::wire::{WsFrame, WsMessage};
use crate::ws::SharedBooks;

/// Books the state machine reads at a tick: the session's shared books (under their lock, once
/// per tick) or a [`BookSync`] owned by the caller.
pub trait Books {
    fn read<R>(&self, f: impl FnOnce(&BookSync) -> R) -> R;
}

impl Books for SharedBooks {
    fn read<R>(&self, f: impl FnOnce(&BookSync) -> R) -> R {
        self.with(f)
    }
}

impl Books for BookSync {
    fn read<R>(&self, f: impl FnOnce(&BookSync) -> R) -> R {
        f(self)
    }
}

/// The text of a `gap` reason for an invalidated book.
pub fn describe(r: &InvalidReason) -> String {
    match r {
        InvalidReason::SeqGap { expected, got } => {
            format!("sequence gap: seq {expected} expected, got {got}")
        }
        InvalidReason::DeltaBeforeSnapshot => "delta before the order-book snapshot".into(),
        InvalidReason::NegativeLevel { side, price } => {
            format!("{side:?} level {price} would go negative")
        }
        InvalidReason::BadUpdate(s) => format!("bad order-book update: {s}"),
        InvalidReason::BufferOverflow => {
            "exchange dropped data (subscription buffer overflow)".into()
        }
        InvalidReason::Unsubscribed => "resubscribing for a fresh snapshot".into(),
        InvalidReason::ConnectionLost => "websocket disconnected".into(),
    }
}

/// Running totals of what was written and seen.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connections: u64,
    pub frames: u64,
    pub late_ticks: u64,
    pub max_late_ms: u64,
    pub resyncs_requested: u64,
    pub rows: u64,
    pub gaps: u64,
    pub resyncs: u64,
    pub closed: u64,
    /// Markets with at least one line.
    pub seen: BTreeSet<MarketTicker>,
}

/// The recorder's state between ticks (see the module docs).
#[derive(Debug)]
pub struct RecorderState {
    pub registry: Registry,
    pub tracks: BTreeMap<MarketTicker, Track>,
    /// Why each book was last invalidated, consumed by the next tick that writes a gap for it.
    pub reasons: HashMap<MarketTicker, String>,
    /// Grid step, ms.
    pub step: i64,
    /// Ladder levels per side in rows.
    pub depth: usize,
    /// The next grid instant to write.
    pub next_tick: i64,
    pub last_tick: Option<i64>,
    pub connected: bool,
    pub last_error: String,
    pub stats: Stats,
}

/// Grid ticks `first..due` (`step` apart) were skipped: a market that became active in that
/// stretch with nothing written for it yet gets a `gap` at its first active instant, so its
/// record starts where the market did (its first row follows at `due`, after a `resync`).
pub(crate) fn mark_missed_starts(
    registry: &Registry,
    tracks: &mut BTreeMap<MarketTicker, Track>,
    (first, due, step): (i64, i64, i64),
    why: &str,
    lines: &mut Vec<Line>,
) {
    for m in registry.iter() {
        let Some(open) = m.open_ms else { continue };
        let at = first.max(ceil_to_grid(open, step));
        if at < due && m.active_at(at) {
            tracks
                .entry(m.ticker.clone())
                .or_default()
                .missed_start(at, &m.ticker, why, lines);
        }
    }
}

impl RecorderState {
    /// A state whose first grid instant is `first_tick` (a multiple of `step`).
    pub fn new(series: SeriesTicker, step: i64, depth: usize, first_tick: i64) -> RecorderState {
        RecorderState {
            registry: Registry::new(series),
            tracks: BTreeMap::new(),
            reasons: HashMap::new(),
            step,
            depth,
            next_tick: first_tick,
            last_tick: None,
            connected: false,
            last_error: String::new(),
            stats: Stats::default(),
        }
    }

    /// The timer fired at `now` (≥ `next_tick`): the lines of the due grid instant (the last one
    /// `≤ now`), after `gap`s for the instants skipped if the timer is a whole step or more late.
    /// Returns false (no lines) when `now` is before `next_tick` (a clock stepped back).
    pub fn on_timer(&mut self, now: i64, books: &impl Books, lines: &mut Vec<Line>) -> bool {
        if now < self.next_tick {
            return false;
        }
        let due = floor_to_grid(now, self.step);
        let first = self.next_tick;
        if due > first {
            let n = ((due - first) / self.step) as u64;
            self.stats.late_ticks += n;
            let why = format!(
                "recorder late by {} ms: {n} grid tick(s) skipped",
                now - first
            );
            tracing::warn!(
                late_ms = now - first,
                skipped = n,
                "recorder stalled; grid ticks skipped (gap markers written)"
            );
            for (t, tr) in self.tracks.iter_mut() {
                if !tr.closed {
                    tr.skipped(first, t, &why, lines);
                }
            }
            mark_missed_starts(
                &self.registry,
                &mut self.tracks,
                (first, due, self.step),
                &why,
                lines,
            );
        }
        self.stats.max_late_ms = self.stats.max_late_ms.max((now - due) as u64);
        self.tick(due, books, lines);
        self.last_tick = Some(due);
        self.next_tick = due + self.step;
        true
    }

    /// The lines of grid instant `ts`.
    pub fn tick(&mut self, ts: i64, books: &impl Books, lines: &mut Vec<Line>) {
        let RecorderState {
            registry,
            tracks,
            reasons,
            connected,
            last_error,
            depth,
            ..
        } = self;
        // Closed (by time or status) and paused markets first.
        for (t, tr) in tracks.iter_mut() {
            if tr.closed {
                continue;
            }
            match registry.get(t.as_str()) {
                Some(m) if m.closed_at(ts) => {
                    let at = m.close_ms.filter(|c| *c <= ts).unwrap_or(ts);
                    tr.close(at, t, lines);
                }
                Some(m) if !m.active_at(ts) => {
                    tr.pause(ts, t, "market paused (deactivated)", lines)
                }
                Some(_) => {}
                None => tr.close(ts, t, lines),
            }
        }
        let active: Vec<(MarketTicker, Extras)> = registry
            .iter()
            .filter(|m| m.active_at(ts))
            .map(|m| {
                (
                    m.ticker.clone(),
                    Extras {
                        depth: *depth,
                        last_price: m.last_price,
                        volume: m.volume,
                        close_ts_ms: m.close_ms,
                    },
                )
            })
            .collect();
        if active.is_empty() {
            return;
        }
        books.read(|sync| {
            for (t, ex) in active {
                let tr = tracks.entry(t.clone()).or_default();
                if tr.closed {
                    continue;
                }
                let pending = reasons.remove(&t);
                let reason = || match pending {
                    Some(r) => r,
                    None if !*connected => format!("websocket disconnected: {last_error}"),
                    None => "book invalid (waiting for a snapshot)".into(),
                };
                tr.tick(ts, &t, sync.book(t.as_str()), ex, reason, lines);
            }
        });
    }

    /// If the tick at `t` can write nothing and change nothing (no market active, none being
    /// recorded, none to close), the first grid instant after `t` at which the schedule alone
    /// can change that (a market opens, a track's market closes); `None` otherwise. Status
    /// changes come from frames and sidecar lines, which the caller bounds itself. An offline
    /// driver skips to it instead of ticking through hours between sessions.
    pub fn quiet_until(&self, t: i64) -> Option<i64> {
        if self.registry.iter().any(|m| m.active_at(t)) {
            return None;
        }
        let mut next = i64::MAX;
        for (tk, tr) in &self.tracks {
            if tr.closed {
                continue;
            }
            let m = self.registry.get(tk.as_str())?;
            if matches!(tr.state, super::grid::BookState::Valid { .. }) || m.closed_at(t) {
                return None;
            }
            if let Some(c) = m.close_ms.filter(|c| *c > t) {
                next = next.min(c);
            }
        }
        for m in self.registry.iter() {
            if let Some(o) = m.open_ms.filter(|o| *o > t) {
                next = next.min(o);
            }
        }
        Some(ceil_to_grid(next.min(i64::MAX - self.step), self.step).max(t + self.step))
    }

    /// Counts lines about to be written.
    pub fn count(&mut self, lines: &[Line]) {
        for l in lines {
            if !self.stats.seen.contains(l.market_ticker()) {
                self.stats.seen.insert(l.market_ticker().clone());
            }
            match l {
                Line::Snapshot(_) => self.stats.rows += 1,
                Line::Marker(m) => match m.event {
                    MarkerKind::Gap => self.stats.gaps += 1,
                    MarkerKind::Resync => self.stats.resyncs += 1,
                    MarkerKind::Closed => self.stats.closed += 1,
                    MarkerKind::Other(_) => {}
                },
            }
        }
    }

    /// A parsed frame's market data (`now` is its receive time on the recorder's clock):
    /// lifecycle messages update the registry and give the sidecar line to write; `ticker`
    /// messages update last price and volume.
    pub fn on_frame(&mut self, frame: &WsFrame, now: i64) -> Option<MarketRecord> {
        self.stats.frames += 1;
        match &frame.msg {
            WsMessage::MarketLifecycle(l) => {
                let rec = self.registry.on_lifecycle(l, now)?;
                tracing::info!(market = %l.market_ticker, event = %l.event_type, "lifecycle");
                Some(rec)
            }
            WsMessage::Ticker(t) => {
                self.registry.on_ticker(t);
                None
            }
            _ => None,
        }
    }

    /// A book event from the sync: an invalidated book's reason is kept for its next `gap`.
    pub fn on_book_event(&mut self, ev: &BookEvent) {
        match ev {
            BookEvent::BookInvalid { ticker, reason } => {
                let why = describe(reason);
                tracing::info!(market = %ticker, reason = %why, "book invalid");
                self.reasons.insert(ticker.clone(), why);
            }
            // A book that never was valid (a delta before its snapshot) is invalidated without
            // a `BookInvalid`: its resync request says why.
            BookEvent::ResyncNeeded(r) => {
                for t in &r.tickers {
                    self.reasons
                        .entry(t.clone())
                        .or_insert_with(|| describe(&r.reason));
                }
            }
            _ => {}
        }
    }

    /// The lines of a stop after the last tick: every market being recorded gets a `gap` with
    /// reason `why` at the next grid instant.
    pub fn finish(&mut self, why: &str, lines: &mut Vec<Line>) {
        self.finish_with(|_, _| why.to_string(), lines);
    }

    /// [`RecorderState::finish`], the reason chosen per market from its pending invalidation
    /// reason (a book invalidated after the last tick), if any.
    pub fn finish_with(
        &mut self,
        mut why: impl FnMut(&MarketTicker, Option<String>) -> String,
        lines: &mut Vec<Line>,
    ) {
        let next = self.last_tick.map_or(self.next_tick, |t| t + self.step);
        for (t, tr) in self.tracks.iter_mut() {
            let w = why(t, self.reasons.remove(t));
            tr.stop_because(next, t, &w, lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{WsFrame, WsMessage};
    use pipeline::snapshot::Marker;

    const T0: i64 = 1_790_000_000_000;

    fn created(r: &mut Registry, ticker: &str, open_ms: i64, close_ms: i64) {
        let f = WsFrame::parse(&format!(
            r#"{{"type":"market_lifecycle_v2","sid":3,"msg":{{"market_ticker":"{ticker}","event_type":"created","open_ts":{},"close_ts":{}}}}}"#,
            open_ms / 1000,
            close_ms / 1000
        ))
        .unwrap();
        let WsMessage::MarketLifecycle(l) = f.msg else {
            panic!("not a lifecycle message")
        };
        r.on_lifecycle(&l, T0).unwrap();
    }

    fn markers(lines: &[Line]) -> Vec<(String, i64, MarkerKind)> {
        lines
            .iter()
            .map(|l| match l {
                Line::Marker(Marker {
                    market_ticker,
                    ts_ms,
                    event,
                    ..
                }) => (market_ticker.to_string(), *ts_ms, event.clone()),
                Line::Snapshot(_) => panic!("no rows expected"),
            })
            .collect()
    }

    #[test]
    fn a_market_opening_during_a_stall_gets_a_gap_at_its_opening() {
        let mut r = Registry::new("KXT".into());
        // Ticks T0+100 ..= T0+900 were skipped (the recorder woke at T0+1000).
        let (first, due, step) = (T0 + 100, T0 + 1_000, 100);
        created(&mut r, "KXT-OPENS-IN-STALL", T0, T0 + 60_000); // open_ts in seconds: T0
        created(&mut r, "KXT-LATER", T0 + 60_000, T0 + 120_000);
        created(&mut r, "KXT-RECORDED", T0 - 60_000, T0 + 60_000);
        let mut tracks = BTreeMap::new();
        // KXT-RECORDED has a row already: `Track::skipped` covers it, not this.
        let mut rec = Track {
            last_ts: Some(T0),
            state: super::super::grid::BookState::Valid { epoch: 1 },
            ..Track::default()
        };
        let mut lines = Vec::new();
        rec.skipped(first, &"KXT-RECORDED".into(), "late", &mut lines);
        tracks.insert(MarketTicker::from("KXT-RECORDED"), rec);
        mark_missed_starts(&r, &mut tracks, (first, due, step), "late", &mut lines);
        assert_eq!(
            markers(&lines),
            [
                ("KXT-RECORDED".to_string(), first, MarkerKind::Gap),
                ("KXT-OPENS-IN-STALL".to_string(), first, MarkerKind::Gap),
            ]
        );
        assert!(!tracks.contains_key("KXT-LATER"));
        // Once written, never again.
        let mut again = Vec::new();
        mark_missed_starts(&r, &mut tracks, (due, due + 500, step), "late", &mut again);
        assert!(again.is_empty(), "{again:?}");

        // An opening off the grid: the first grid instant after it (T0 ≡ 200 mod 300, so the
        // opening at T0 + 2000 is 100 ms past an instant and the next is at T0 + 2200).
        let mut r = Registry::new("KXT".into());
        created(&mut r, "KXT-B", T0 + 2_000, T0 + 60_000);
        let mut tracks = BTreeMap::new();
        let mut lines = Vec::new();
        mark_missed_starts(
            &r,
            &mut tracks,
            (T0 + 1_500, T0 + 3_000, 300),
            "late",
            &mut lines,
        );
        assert_eq!(
            markers(&lines),
            [("KXT-B".to_string(), T0 + 2_200, MarkerKind::Gap)]
        );
    }

    #[test]
    fn a_virtual_clock_drives_the_grid_and_a_late_timer_skips_ticks() {
        let mut st = RecorderState::new("KXT".into(), 100, 0, T0 + 100);
        created(&mut st.registry, "KXT-A", T0, T0 + 60_000);
        let books = BookSync::new();
        let mut lines = Vec::new();
        assert!(!st.on_timer(T0 + 50, &books, &mut lines), "early: nothing");
        assert!(st.on_timer(T0 + 100, &books, &mut lines));
        assert_eq!(
            markers(&lines),
            [("KXT-A".to_string(), T0 + 100, MarkerKind::Gap)]
        );
        assert_eq!((st.last_tick, st.next_tick), (Some(T0 + 100), T0 + 200));
        // 250 ms late: two instants skipped, counted.
        lines.clear();
        st.on_timer(T0 + 450, &books, &mut lines);
        assert_eq!(st.stats.late_ticks, 2);
        assert_eq!(st.next_tick, T0 + 500);
        lines.clear();
        st.finish("recorder stopped", &mut lines);
        assert!(lines.is_empty(), "already in an outage: {lines:?}");
    }

    /// The live recorder's event handling (what `core::Core` does with each WebSocket event and
    /// timer) driven on a virtual clock: frames, a dropped connection, a reconnection, a
    /// sequence gap, a late timer and the market's close, each at a chosen instant, with no
    /// network and no sleeping, so nothing depends on the wall clock's phase.
    struct Live {
        st: RecorderState,
        sync: BookSync,
        lines: Vec<Line>,
    }

    impl Live {
        /// The timer fires on time at every grid instant before `at`.
        fn until(&mut self, at: i64) {
            while self.st.next_tick < at {
                let t = self.st.next_tick;
                self.timer(t);
            }
        }
        fn timer(&mut self, now: i64) {
            let mut l = Vec::new();
            assert!(self.st.on_timer(now, &self.sync, &mut l));
            self.st.count(&l);
            self.lines.extend(l);
        }
        fn events(&mut self, evs: Vec<crate::sync::BookEvent>) {
            for ev in &evs {
                self.st.on_book_event(ev);
            }
        }
        fn frame(&mut self, at: i64, json: &str) {
            self.until(at);
            let f = WsFrame::parse(json).unwrap();
            let mut evs = Vec::new();
            self.sync.apply(&f, &mut evs);
            self.events(evs);
            self.st.on_frame(&f, at);
        }
        fn disconnect(&mut self, at: i64, reason: &str) {
            self.until(at);
            let mut evs = Vec::new();
            self.sync.connection_lost(&mut evs);
            self.events(evs);
            self.st.connected = false;
            self.st.last_error = reason.into();
        }
        fn connect(&mut self, at: i64) {
            self.until(at);
            self.st.connected = true;
        }
    }

    fn snap(sid: u64, seq: u64, yes_size: &str) -> String {
        format!(
            r#"{{"type":"orderbook_snapshot","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"KXT-A","yes_dollars_fp":[["0.4000","{yes_size}"]],"no_dollars_fp":[["0.5500","20.00"]]}}}}"#
        )
    }

    fn delta(sid: u64, seq: u64, d: &str) -> String {
        format!(
            r#"{{"type":"orderbook_delta","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"KXT-A","price_dollars":"0.4000","delta_fp":"{d}","side":"yes"}}}}"#
        )
    }

    #[test]
    fn the_live_event_sequence_on_a_virtual_clock_gives_the_documented_markers() {
        let mut live = Live {
            st: RecorderState::new("KXT".into(), 100, 1, T0 + 100),
            sync: BookSync::new(),
            lines: Vec::new(),
        };
        created(&mut live.st.registry, "KXT-A", T0, T0 + 3_000);
        live.connect(T0);
        live.frame(T0 + 10, &snap(1, 1, "10.00"));
        // A delta exactly on a grid instant is in that instant's row (received ≤ T).
        live.frame(T0 + 500, &delta(1, 2, "5.00"));
        live.disconnect(T0 + 1_050, "connection reset by peer");
        live.connect(T0 + 1_530);
        live.frame(T0 + 1_540, &snap(1, 1, "30.00")); // the new connection's first snapshot
        live.frame(T0 + 1_700, &delta(1, 2, "1.00"));
        live.frame(T0 + 2_050, &delta(1, 4, "1.00")); // seq 3 never came
        live.frame(T0 + 2_120, &snap(2, 1, "50.00")); // the resubscription's snapshot
        live.until(T0 + 2_400);
        live.timer(T0 + 2_650); // 250 ms late: instants 2400 and 2500 skipped
        live.until(T0 + 3_100);
        let mut end = Vec::new();
        live.st.finish("recorder stopped", &mut end);
        assert!(end.is_empty(), "a closed market gets no stop gap: {end:?}");

        let got: Vec<(i64, String)> = live
            .lines
            .iter()
            .map(|l| match l {
                Line::Marker(m) => (
                    m.ts_ms - T0,
                    format!("{:?} {}", m.event, m.reason.clone().unwrap_or_default()),
                ),
                Line::Snapshot(r) => (
                    r.ts_ms - T0,
                    format!("row {}", r.yes_bid_size.unwrap().centis() / 100),
                ),
            })
            .collect();
        let mut want: Vec<(i64, String)> = vec![(100, "Resync ".into())];
        let row = |t: i64, size: i64| (t, format!("row {size}"));
        want.extend((1..=4).map(|k| row(k * 100, 10)));
        want.extend((5..=10).map(|k| row(k * 100, 15)));
        want.push((1_100, "Gap websocket disconnected".into()));
        want.push((1_600, "Resync ".into()));
        want.push(row(1_600, 30));
        want.extend((17..=20).map(|k| row(k * 100, 31)));
        want.push((2_100, "Gap sequence gap: seq 3 expected, got 4".into()));
        want.push((2_200, "Resync ".into()));
        want.extend((22..=23).map(|k| row(k * 100, 50)));
        want.push((
            2_400,
            "Gap recorder late by 250 ms: 2 grid tick(s) skipped".into(),
        ));
        want.push((2_600, "Resync ".into()));
        want.extend((26..=29).map(|k| row(k * 100, 50)));
        want.push((3_000, "Closed ".into()));
        assert_eq!(got, want);
        assert_eq!(
            (
                live.st.stats.gaps,
                live.st.stats.resyncs,
                live.st.stats.closed
            ),
            (3, 4, 1)
        );
        assert_eq!(live.st.stats.late_ticks, 2);
    }
}
