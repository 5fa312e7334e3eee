//! Sequence tracking over the order-book channel: [`BookSync`] turns parsed WebSocket frames
//! into books and book events. It does no IO, so the same code runs on a live socket and on a
//! capture file.
//!
//! Rules (API.md §5.5): `seq` is counted per subscription id across all its markets, and the
//! first frame on a sid sets the baseline. `seq == last + 1` is applied; `seq <= last` is a
//! duplicate and dropped; `seq > last + 1` is a gap: every book on that sid becomes invalid
//! and a [`ResyncNeeded`] is emitted. A delta before its market's snapshot, a level going
//! negative, and WS error 25 (buffer overflow) are also gaps. A fresh snapshot makes a book
//! valid again, whatever sid it arrives on (a re-subscription gets a new sid).

use std::collections::{BTreeSet, HashMap, VecDeque};

use pipeline::ids::MarketTicker;
use pipeline::money::Price;

use crate::book::{NoPriceConvention, OrderBook, TopOfBook};
use crate::wire::{
    OrderbookDelta, OrderbookSnapshot, Side, TickerMsg, WsErrorMsg, WsFrame, WsMessage,
};

/// Why a book stopped being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidReason {
    /// `seq` jumped on the book's subscription.
    SeqGap { expected: u64, got: u64 },
    /// A delta arrived for a market with no snapshot.
    DeltaBeforeSnapshot,
    /// A delta would have made a level negative.
    NegativeLevel { side: Side, price: Price },
    /// A snapshot or delta could not be applied (missing price, negative snapshot size).
    BadUpdate(String),
    /// Server error 25: the subscription's buffer overflowed and data was dropped.
    BufferOverflow,
    /// The subscription was cancelled.
    Unsubscribed,
    /// The connection dropped; sids are per connection.
    ConnectionLost,
}

impl InvalidReason {
    /// Short tag for marker records (`gap`, `negative_level`, …).
    pub fn tag(&self) -> &'static str {
        match self {
            InvalidReason::SeqGap { .. } => "gap",
            InvalidReason::DeltaBeforeSnapshot => "delta_before_snapshot",
            InvalidReason::NegativeLevel { .. } => "negative_level",
            InvalidReason::BadUpdate(_) => "bad_update",
            InvalidReason::BufferOverflow => "buffer_overflow",
            InvalidReason::Unsubscribed => "unsubscribed",
            InvalidReason::ConnectionLost => "connection_lost",
        }
    }
}

/// The books of `sid` listed in `tickers` need a fresh snapshot (unsubscribe + resubscribe, or
/// reconnect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncNeeded {
    pub sid: u64,
    pub tickers: Vec<MarketTicker>,
    pub reason: InvalidReason,
}

/// What a frame did to the books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookEvent {
    /// The book changed (snapshot or delta applied). `ts_ms` is the delta's exchange time.
    BookChanged {
        ticker: MarketTicker,
        sid: Option<u64>,
        seq: Option<u64>,
        ts_ms: Option<i64>,
    },
    /// The book became trustworthy (first snapshot, or a snapshot after invalidation).
    BookValid {
        ticker: MarketTicker,
        sid: Option<u64>,
    },
    /// The book stopped being trustworthy.
    BookInvalid {
        ticker: MarketTicker,
        reason: InvalidReason,
    },
    ResyncNeeded(ResyncNeeded),
}

/// Running totals, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Order-book frames seen (snapshots + deltas).
    pub book_frames: u64,
    pub snapshots: u64,
    /// Deltas applied to a valid book.
    pub applied: u64,
    /// Frames dropped because `seq <= last`.
    pub duplicates: u64,
    /// Sequence gaps (`seq > last + 1`).
    pub gaps: u64,
    /// Deltas refused because a level would go negative.
    pub negative_levels: u64,
    pub deltas_before_snapshot: u64,
    /// Deltas for a book that is invalid (waiting for a snapshot): not applied.
    pub ignored_invalid: u64,
    /// Deltas on an old sid for a market that has since been re-snapshotted on another sid.
    pub stale_sid: u64,
    pub buffer_overflows: u64,
    pub resyncs_requested: u64,
}

#[derive(Debug, Default, Clone)]
struct SidState {
    last_seq: Option<u64>,
    convention: NoPriceConvention,
    tickers: BTreeSet<MarketTicker>,
}

/// Order books for every market on the order-book channel, fed frame by frame.
#[derive(Debug, Default, Clone)]
pub struct BookSync {
    books: HashMap<MarketTicker, OrderBook>,
    sids: HashMap<u64, SidState>,
    counters: SyncCounters,
}

impl BookSync {
    pub fn new() -> BookSync {
        BookSync::default()
    }

    /// Records the NO-price convention a subscription was made with (default: NO-leg).
    /// Call when the `subscribed` reply gives the sid, before its snapshots arrive.
    pub fn set_convention(&mut self, sid: u64, convention: NoPriceConvention) {
        self.sids.entry(sid).or_default().convention = convention;
    }

    pub fn convention(&self, sid: u64) -> NoPriceConvention {
        self.sids
            .get(&sid)
            .map(|s| s.convention)
            .unwrap_or_default()
    }

    pub fn book(&self, ticker: &str) -> Option<&OrderBook> {
        self.books.get(ticker)
    }
    pub fn books(&self) -> impl Iterator<Item = &OrderBook> {
        self.books.values()
    }
    pub fn counters(&self) -> &SyncCounters {
        &self.counters
    }
    /// Markets currently attached to `sid`.
    pub fn tickers_of(&self, sid: u64) -> Vec<MarketTicker> {
        self.sids
            .get(&sid)
            .map(|s| s.tickers.iter().cloned().collect())
            .unwrap_or_default()
    }
    /// The last sequence number seen on `sid`.
    pub fn last_seq(&self, sid: u64) -> Option<u64> {
        self.sids.get(&sid).and_then(|s| s.last_seq)
    }

    /// Feeds one parsed frame; events are appended to `out`. Non-book frames are ignored
    /// except `error` 25 and `unsubscribed`.
    pub fn apply(&mut self, frame: &WsFrame, out: &mut Vec<BookEvent>) {
        match &frame.msg {
            WsMessage::OrderbookSnapshot(s) => {
                self.counters.book_frames += 1;
                if self.check_seq(frame.sid, frame.seq, out) {
                    self.on_snapshot(frame.sid, frame.seq, s, out);
                }
            }
            WsMessage::OrderbookDelta(d) => {
                self.counters.book_frames += 1;
                if self.check_seq(frame.sid, frame.seq, out) {
                    self.on_delta(frame.sid, frame.seq, d, out);
                }
            }
            WsMessage::Ok(_) => {
                // `ok` replies on a sid carry its current seq: a jump is still a gap.
                if let (Some(sid), Some(seq)) = (frame.sid, frame.seq) {
                    if self.sids.contains_key(&sid) {
                        self.check_reply_seq(sid, seq, out);
                    }
                }
            }
            WsMessage::Unsubscribed => {
                if let Some(sid) = frame.sid {
                    self.forget_sid(sid, out);
                }
            }
            WsMessage::Error(e) if e.code == WsErrorMsg::BUFFER_OVERFLOW => {
                self.counters.buffer_overflows += 1;
                let sids: Vec<u64> = match e.sid.or(frame.sid) {
                    Some(s) => vec![s],
                    None => self.sids.keys().copied().collect(),
                };
                for sid in sids {
                    self.invalidate_sid(sid, InvalidReason::BufferOverflow, out);
                }
            }
            _ => {}
        }
    }

    /// The connection dropped: every book is invalid and all sid state is forgotten (sids and
    /// sequence numbers are per connection). No resync is requested: reconnecting resubscribes.
    pub fn connection_lost(&mut self, out: &mut Vec<BookEvent>) {
        let mut tickers: Vec<_> = self.books.keys().cloned().collect();
        tickers.sort();
        for t in tickers {
            self.invalidate_book(&t, InvalidReason::ConnectionLost, out);
        }
        self.sids.clear();
    }

    /// A subscription ended: its books are invalid (until re-snapshotted elsewhere) and its
    /// sequence state is dropped.
    pub fn forget_sid(&mut self, sid: u64, out: &mut Vec<BookEvent>) {
        if let Some(st) = self.sids.remove(&sid) {
            for t in st.tickers {
                if self.books.get(&t).and_then(OrderBook::sid) == Some(sid) {
                    self.invalidate_book(&t, InvalidReason::Unsubscribed, out);
                }
            }
        }
    }

    /// Drops a market entirely (e.g. after `delete_markets` or once it has closed).
    pub fn remove_market(&mut self, ticker: &str) -> Option<OrderBook> {
        for st in self.sids.values_mut() {
            st.tickers.remove(ticker);
        }
        self.books.remove(ticker)
    }

    /// Sequence check for a book frame. Returns false if the frame must be dropped.
    fn check_seq(&mut self, sid: Option<u64>, seq: Option<u64>, out: &mut Vec<BookEvent>) -> bool {
        let (Some(sid), Some(seq)) = (sid, seq) else {
            return true; // unsequenced (legacy or replay without seq): apply as is
        };
        let st = self.sids.entry(sid).or_default();
        match st.last_seq {
            None => {
                st.last_seq = Some(seq);
                true
            }
            Some(last) if seq <= last => {
                self.counters.duplicates += 1;
                false
            }
            Some(last) if seq > last + 1 => {
                st.last_seq = Some(seq);
                self.counters.gaps += 1;
                self.invalidate_sid(
                    sid,
                    InvalidReason::SeqGap {
                        expected: last + 1,
                        got: seq,
                    },
                    out,
                );
                // The frame itself is still used: a snapshot is self-contained; a delta
                // meets an invalid book and is ignored.
                true
            }
            Some(_) => {
                st.last_seq = Some(seq);
                true
            }
        }
    }

    fn check_reply_seq(&mut self, sid: u64, seq: u64, out: &mut Vec<BookEvent>) {
        let st = self.sids.entry(sid).or_default();
        match st.last_seq {
            Some(last) if seq > last + 1 => {
                st.last_seq = Some(seq);
                self.counters.gaps += 1;
                self.invalidate_sid(
                    sid,
                    InvalidReason::SeqGap {
                        expected: last + 1,
                        got: seq,
                    },
                    out,
                );
            }
            Some(last) if seq == last + 1 => st.last_seq = Some(seq),
            None => st.last_seq = Some(seq),
            _ => {}
        }
    }

    fn on_snapshot(
        &mut self,
        sid: Option<u64>,
        seq: Option<u64>,
        s: &OrderbookSnapshot,
        out: &mut Vec<BookEvent>,
    ) {
        self.counters.snapshots += 1;
        let ticker = &s.market_ticker;
        let convention = sid.map(|s| self.convention(s)).unwrap_or_default();
        // Move the market to this sid.
        let book = self
            .books
            .entry(ticker.clone())
            .or_insert_with(|| OrderBook::new(ticker.clone()));
        let was_valid = book.is_valid();
        if let Some(old) = book.sid() {
            if Some(old) != sid {
                if let Some(st) = self.sids.get_mut(&old) {
                    st.tickers.remove(ticker);
                }
            }
        }
        if let Some(sid) = sid {
            self.sids
                .entry(sid)
                .or_default()
                .tickers
                .insert(ticker.clone());
        }
        let book = self.books.get_mut(ticker).expect("inserted above");
        let prev_ts = book.last_ts_ms();
        book.set_origin(sid, seq, prev_ts);
        match book.apply_snapshot(s.yes_levels(), s.no_levels(), convention) {
            Ok(()) => {
                if !was_valid {
                    out.push(BookEvent::BookValid {
                        ticker: ticker.clone(),
                        sid,
                    });
                }
                out.push(BookEvent::BookChanged {
                    ticker: ticker.clone(),
                    sid,
                    seq,
                    ts_ms: None,
                });
            }
            Err(e) => {
                let reason = InvalidReason::BadUpdate(e.to_string());
                if was_valid {
                    out.push(BookEvent::BookInvalid {
                        ticker: ticker.clone(),
                        reason: reason.clone(),
                    });
                }
                self.request_resync(sid, vec![ticker.clone()], reason, out);
            }
        }
    }

    fn on_delta(
        &mut self,
        sid: Option<u64>,
        seq: Option<u64>,
        d: &OrderbookDelta,
        out: &mut Vec<BookEvent>,
    ) {
        let ticker = &d.market_ticker;
        let Some(book) = self.books.get_mut(ticker) else {
            // Delta before any snapshot.
            self.counters.deltas_before_snapshot += 1;
            let mut b = OrderBook::new(ticker.clone());
            b.set_origin(sid, seq, d.ts_ms);
            self.books.insert(ticker.clone(), b);
            if let Some(sid) = sid {
                self.sids
                    .entry(sid)
                    .or_default()
                    .tickers
                    .insert(ticker.clone());
            }
            self.request_resync(
                sid,
                vec![ticker.clone()],
                InvalidReason::DeltaBeforeSnapshot,
                out,
            );
            return;
        };
        if sid.is_some() && book.sid().is_some() && book.sid() != sid {
            // The market was re-snapshotted on another subscription; this is the old stream.
            self.counters.stale_sid += 1;
            return;
        }
        if !book.is_valid() {
            self.counters.ignored_invalid += 1;
            return;
        }
        let (Some(price), Some(delta)) = (d.price(), d.delta()) else {
            book.set_valid(false);
            let reason = InvalidReason::BadUpdate("delta without price or size".into());
            out.push(BookEvent::BookInvalid {
                ticker: ticker.clone(),
                reason: reason.clone(),
            });
            self.request_resync(sid, vec![ticker.clone()], reason, out);
            return;
        };
        match book.apply_delta(d.side, price, delta) {
            Ok(()) => {
                book.set_origin(sid, seq, d.ts_ms);
                self.counters.applied += 1;
                out.push(BookEvent::BookChanged {
                    ticker: ticker.clone(),
                    sid,
                    seq,
                    ts_ms: d.ts_ms,
                });
            }
            Err(_) => {
                self.counters.negative_levels += 1;
                book.set_valid(false);
                let reason = InvalidReason::NegativeLevel {
                    side: d.side,
                    price,
                };
                out.push(BookEvent::BookInvalid {
                    ticker: ticker.clone(),
                    reason: reason.clone(),
                });
                self.request_resync(sid, vec![ticker.clone()], reason, out);
            }
        }
    }

    fn request_resync(
        &mut self,
        sid: Option<u64>,
        tickers: Vec<MarketTicker>,
        reason: InvalidReason,
        out: &mut Vec<BookEvent>,
    ) {
        if let Some(sid) = sid {
            self.counters.resyncs_requested += 1;
            out.push(BookEvent::ResyncNeeded(ResyncNeeded {
                sid,
                tickers,
                reason,
            }));
        }
    }

    fn invalidate_book(
        &mut self,
        ticker: &MarketTicker,
        reason: InvalidReason,
        out: &mut Vec<BookEvent>,
    ) {
        if let Some(b) = self.books.get_mut(ticker) {
            if b.is_valid() {
                b.set_valid(false);
                out.push(BookEvent::BookInvalid {
                    ticker: ticker.clone(),
                    reason,
                });
            }
        }
    }

    fn invalidate_sid(&mut self, sid: u64, reason: InvalidReason, out: &mut Vec<BookEvent>) {
        let tickers: Vec<MarketTicker> = self
            .sids
            .get(&sid)
            .map(|s| s.tickers.iter().cloned().collect())
            .unwrap_or_default();
        let mine: Vec<MarketTicker> = tickers
            .into_iter()
            .filter(|t| self.books.get(t).and_then(OrderBook::sid) == Some(sid))
            .collect();
        for t in &mine {
            self.invalidate_book(t, reason.clone(), out);
        }
        self.request_resync(Some(sid), mine, reason, out);
    }
}

/// Checks `ticker` frames against the rebuilt books, as of the ticker's exchange time.
///
/// A `ticker` frame describes the top of book at its `ts_ms`, but it is published on a
/// separate, slower path: in the May 2026 captures it usually arrives *after* order-book deltas
/// with later `ts_ms` (the book has already moved on; comparing at arrival agrees only ~89% of
/// the time). This keeps, per market, a short history of the top of book after each applied
/// change keyed by the change's `ts_ms`, and compares a ticker with the last state whose
/// `ts_ms` is ≤ the ticker's. It is causal (uses only frames received before the ticker), so
/// it can run live as a book-integrity monitor.
#[derive(Debug, Clone)]
pub struct TickerCheck {
    horizon_ms: i64,
    history: HashMap<MarketTicker, VecDeque<(i64, TopOfBook)>>,
}

/// Outcome of one [`TickerCheck::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickerVerdict {
    Agree,
    Disagree {
        book: (Price, Price),
        ticker: (Price, Price),
    },
    /// No book state known at or before the ticker's time (or no book, or no quotes).
    Unknown,
}

impl TickerCheck {
    /// Keeps `horizon_ms` of history per market (a few seconds is plenty).
    pub fn new(horizon_ms: i64) -> TickerCheck {
        TickerCheck {
            horizon_ms,
            history: HashMap::new(),
        }
    }

    /// Records the book state after a [`BookEvent::BookChanged`]. A snapshot (no `ts_ms`) is
    /// stamped with the book's last known exchange time, or the start of time.
    pub fn record(&mut self, ticker: &MarketTicker, ts_ms: Option<i64>, top: TopOfBook) {
        let h = self.history.entry(ticker.clone()).or_default();
        let last_ts = h.back().map(|e| e.0);
        let ts = match (ts_ms, last_ts) {
            (Some(t), Some(l)) => t.max(l),
            (Some(t), None) => t,
            (None, Some(l)) => l,
            (None, None) => i64::MIN,
        };
        if ts_ms.is_none() {
            // A snapshot replaces the history: older states belong to another book epoch.
            h.clear();
        }
        h.push_back((ts, top));
        // Drop states superseded by a newer one that is itself older than the horizon, so
        // "as of" any time within the horizon still has an answer.
        while h.len() >= 2 && ts.saturating_sub(h[1].0) > self.horizon_ms {
            h.pop_front();
        }
    }

    /// Forgets a market (book invalid or removed).
    pub fn forget(&mut self, ticker: &str) {
        self.history.remove(ticker);
    }

    /// The top of book as of exchange time `ts_ms`.
    pub fn as_of(&self, ticker: &str, ts_ms: i64) -> Option<TopOfBook> {
        let h = self.history.get(ticker)?;
        h.iter().rev().find(|e| e.0 <= ts_ms).map(|e| e.1)
    }

    /// Compares a ticker's YES bid/ask with the book as of the ticker's `ts_ms`.
    pub fn check(&self, t: &TickerMsg) -> TickerVerdict {
        let (Some(ts), Some(bid), Some(ask)) = (t.ts_ms, t.yes_bid(), t.yes_ask()) else {
            return TickerVerdict::Unknown;
        };
        match self.as_of(t.market_ticker.as_str(), ts) {
            None => TickerVerdict::Unknown,
            Some(top) => {
                let book = top.ticker_quotes();
                if book == (bid, ask) {
                    TickerVerdict::Agree
                } else {
                    TickerVerdict::Disagree {
                        book,
                        ticker: (bid, ask),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::money::Count;

    fn frame(text: &str) -> WsFrame {
        WsFrame::parse(text).unwrap()
    }
    fn snap(sid: u64, seq: u64, t: &str, yes: &str, no: &str) -> WsFrame {
        frame(&format!(
            r#"{{"type":"orderbook_snapshot","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"{t}","yes_dollars_fp":{yes},"no_dollars_fp":{no}}}}}"#
        ))
    }
    fn delta(sid: u64, seq: u64, t: &str, side: &str, price: &str, d: &str, ts: i64) -> WsFrame {
        frame(&format!(
            r#"{{"type":"orderbook_delta","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"{t}","price_dollars":"{price}","delta_fp":"{d}","side":"{side}","ts_ms":{ts}}}}}"#
        ))
    }
    fn feed(s: &mut BookSync, f: &WsFrame) -> Vec<BookEvent> {
        let mut out = Vec::new();
        s.apply(f, &mut out);
        out
    }
    fn p(x: &str) -> Price {
        Price::parse_dollars(x).unwrap()
    }
    fn resyncs(ev: &[BookEvent]) -> Vec<&ResyncNeeded> {
        ev.iter()
            .filter_map(|e| match e {
                BookEvent::ResyncNeeded(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn snapshot_then_deltas_and_duplicates() {
        let mut s = BookSync::new();
        let ev = feed(
            &mut s,
            &snap(1, 5, "A", r#"[["0.40","10.00"]]"#, r#"[["0.55","3.00"]]"#),
        );
        assert!(matches!(&ev[0], BookEvent::BookValid { ticker, .. } if ticker.as_str() == "A"));
        assert!(matches!(&ev[1], BookEvent::BookChanged { .. }));
        let ev = feed(&mut s, &delta(1, 6, "A", "yes", "0.41", "2.50", 100));
        assert_eq!(
            ev,
            vec![BookEvent::BookChanged {
                ticker: "A".into(),
                sid: Some(1),
                seq: Some(6),
                ts_ms: Some(100)
            }]
        );
        assert_eq!(
            s.book("A").unwrap().best_yes_bid().unwrap().size,
            Count::parse("2.5").unwrap()
        );
        // Duplicate (replayed seq 6) and older are dropped without changing the book.
        assert!(feed(&mut s, &delta(1, 6, "A", "yes", "0.41", "2.50", 100)).is_empty());
        assert!(feed(&mut s, &delta(1, 3, "A", "yes", "0.41", "2.50", 100)).is_empty());
        assert_eq!(s.counters().duplicates, 2);
        assert_eq!(
            s.book("A").unwrap().yes_size_at(p("0.41")),
            Count::parse("2.5").unwrap()
        );
        assert_eq!(s.counters().applied, 1);
        assert_eq!(s.last_seq(1), Some(6));
    }

    #[test]
    fn gap_invalidates_every_book_on_the_sid_and_snapshot_heals() {
        let mut s = BookSync::new();
        feed(&mut s, &snap(1, 1, "A", r#"[["0.40","10.00"]]"#, "[]"));
        feed(&mut s, &snap(1, 2, "B", r#"[["0.20","1.00"]]"#, "[]"));
        feed(&mut s, &snap(3, 1, "C", r#"[["0.30","1.00"]]"#, "[]"));
        let ev = feed(&mut s, &delta(1, 5, "A", "yes", "0.40", "1.00", 1));
        let inval: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, BookEvent::BookInvalid { .. }))
            .collect();
        assert_eq!(inval.len(), 2, "{ev:?}");
        let r = resyncs(&ev);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].sid, 1);
        assert_eq!(
            r[0].tickers,
            vec![MarketTicker::from("A"), MarketTicker::from("B")]
        );
        assert_eq!(
            r[0].reason,
            InvalidReason::SeqGap {
                expected: 3,
                got: 5
            }
        );
        assert_eq!(s.counters().gaps, 1);
        assert!(!s.book("A").unwrap().is_valid() && !s.book("B").unwrap().is_valid());
        assert!(s.book("C").unwrap().is_valid(), "other sids untouched");
        // The gapped delta was not applied; later deltas are ignored until a snapshot.
        assert_eq!(
            s.book("A").unwrap().yes_size_at(p("0.40")),
            Count::from_contracts(10)
        );
        assert!(feed(&mut s, &delta(1, 6, "A", "yes", "0.40", "1.00", 2)).is_empty());
        assert_eq!(s.counters().ignored_invalid, 2);
        // Resubscription: new sid, fresh snapshot → valid again; old-sid stragglers ignored.
        let ev = feed(&mut s, &snap(5, 1, "A", r#"[["0.45","7.00"]]"#, "[]"));
        assert!(matches!(&ev[0], BookEvent::BookValid { sid: Some(5), .. }));
        assert!(s.book("A").unwrap().is_valid());
        assert!(feed(&mut s, &delta(1, 7, "A", "yes", "0.45", "1.00", 3)).is_empty());
        assert_eq!(s.counters().stale_sid, 1);
        assert_eq!(s.tickers_of(1), vec![MarketTicker::from("B")]);
        assert_eq!(s.tickers_of(5), vec![MarketTicker::from("A")]);
        // Unsubscribing sid 1 marks nothing new invalid (B already is) and forgets it.
        let ev = feed(
            &mut s,
            &frame(r#"{"id":9,"sid":1,"seq":8,"type":"unsubscribed"}"#),
        );
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(s.last_seq(1), None);
    }

    #[test]
    fn first_frame_sets_baseline() {
        let mut s = BookSync::new();
        // The spec example starts a sid at seq 2.
        let ev = feed(&mut s, &snap(2, 2, "A", "[]", "[]"));
        assert!(resyncs(&ev).is_empty());
        assert!(feed(&mut s, &delta(2, 3, "A", "no", "0.5", "1", 1)).len() == 1);
        assert_eq!(s.counters().gaps, 0);
    }

    #[test]
    fn delta_before_snapshot_is_a_gap_condition() {
        let mut s = BookSync::new();
        let ev = feed(&mut s, &delta(1, 1, "A", "yes", "0.40", "1.00", 1));
        let r = resyncs(&ev);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].reason, InvalidReason::DeltaBeforeSnapshot);
        assert!(!s.book("A").unwrap().is_valid());
        assert_eq!(s.counters().deltas_before_snapshot, 1);
        // More deltas: ignored, no repeated resync.
        assert!(feed(&mut s, &delta(1, 2, "A", "yes", "0.40", "1.00", 2)).is_empty());
        let ev = feed(&mut s, &snap(1, 3, "A", r#"[["0.40","2.00"]]"#, "[]"));
        assert!(matches!(&ev[0], BookEvent::BookValid { .. }));
    }

    #[test]
    fn negative_level_is_a_gap_condition() {
        let mut s = BookSync::new();
        feed(&mut s, &snap(1, 1, "A", r#"[["0.40","1.00"]]"#, "[]"));
        let ev = feed(&mut s, &delta(1, 2, "A", "yes", "0.40", "-1.01", 1));
        assert!(matches!(
            &ev[0],
            BookEvent::BookInvalid {
                reason: InvalidReason::NegativeLevel {
                    side: Side::Yes,
                    ..
                },
                ..
            }
        ));
        assert_eq!(resyncs(&ev)[0].tickers, vec![MarketTicker::from("A")]);
        assert_eq!(s.counters().negative_levels, 1);
        assert_eq!(
            s.book("A").unwrap().yes_size_at(p("0.40")),
            Count::from_contracts(1)
        );
    }

    #[test]
    fn buffer_overflow_error_resyncs_all() {
        let mut s = BookSync::new();
        feed(&mut s, &snap(1, 1, "A", "[]", "[]"));
        feed(&mut s, &snap(3, 1, "B", "[]", "[]"));
        let ev = feed(
            &mut s,
            &frame(r#"{"id":0,"type":"error","msg":{"code":25,"msg":"buffer overflow"}}"#),
        );
        let mut r: Vec<u64> = resyncs(&ev).iter().map(|r| r.sid).collect();
        r.sort();
        assert_eq!(r, vec![1, 3]);
        assert_eq!(s.counters().buffer_overflows, 1);
        assert!(s.books().all(|b| !b.is_valid()));
        // Other errors do nothing.
        assert!(feed(
            &mut s,
            &frame(r#"{"id":2,"type":"error","msg":{"code":6,"msg":"Already subscribed"}}"#)
        )
        .is_empty());
    }

    #[test]
    fn use_yes_price_subscription_converts_no_side() {
        let mut s = BookSync::new();
        s.set_convention(7, NoPriceConvention::YesScale);
        // NO bid at NO-leg 0.55 reported on the YES scale as 0.45.
        feed(
            &mut s,
            &snap(7, 1, "A", r#"[["0.40","1.00"]]"#, r#"[["0.45","2.00"]]"#),
        );
        feed(&mut s, &delta(7, 2, "A", "no", "0.44", "3.00", 1));
        let b = s.book("A").unwrap();
        assert_eq!(b.best_yes_ask().unwrap().price, p("0.44"));
        assert_eq!(b.best_no_bid().unwrap().price, p("0.56"));
        assert_eq!(b.no_size_at(p("0.55")), Count::from_contracts(2));
        assert_eq!(b.convention(), NoPriceConvention::YesScale);
        // The default convention on another sid is NO-leg.
        feed(&mut s, &snap(9, 1, "B", "[]", r#"[["0.45","2.00"]]"#));
        assert_eq!(
            s.book("B").unwrap().best_yes_ask().unwrap().price,
            p("0.55")
        );
    }

    #[test]
    fn ok_reply_seq_jump_is_a_gap_but_echo_is_not() {
        let mut s = BookSync::new();
        feed(&mut s, &snap(1, 1, "A", "[]", "[]"));
        assert!(feed(
            &mut s,
            &frame(r#"{"id":5,"sid":1,"seq":1,"type":"ok","msg":{"market_tickers":["A"]}}"#)
        )
        .is_empty());
        assert!(feed(
            &mut s,
            &frame(r#"{"id":6,"sid":1,"seq":2,"type":"ok","msg":{"market_tickers":["A"]}}"#)
        )
        .is_empty());
        let ev = feed(
            &mut s,
            &frame(r#"{"id":7,"sid":1,"seq":9,"type":"ok","msg":{"market_tickers":["A"]}}"#),
        );
        assert_eq!(resyncs(&ev).len(), 1);
    }

    #[test]
    fn connection_lost_invalidates_and_resets_sids() {
        let mut s = BookSync::new();
        feed(&mut s, &snap(1, 10, "A", "[]", "[]"));
        let mut out = Vec::new();
        s.connection_lost(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(s.last_seq(1), None);
        // After reconnect sid 1 may be reused from seq 1: not a duplicate.
        let ev = feed(&mut s, &snap(1, 1, "A", "[]", "[]"));
        assert!(matches!(&ev[0], BookEvent::BookValid { .. }));
        assert_eq!(s.counters().duplicates, 0);
    }

    #[test]
    fn ticker_check_as_of_exchange_time() {
        let mut s = BookSync::new();
        let mut tc = TickerCheck::new(5_000);
        let run = |s: &mut BookSync, tc: &mut TickerCheck, f: WsFrame| {
            for e in feed(s, &f) {
                if let BookEvent::BookChanged { ticker, ts_ms, .. } = e {
                    tc.record(&ticker, ts_ms, s.book(ticker.as_str()).unwrap().top());
                }
            }
        };
        run(
            &mut s,
            &mut tc,
            snap(1, 1, "A", r#"[["0.40","1.00"]]"#, r#"[["0.55","1.00"]]"#),
        );
        run(
            &mut s,
            &mut tc,
            delta(1, 2, "A", "yes", "0.41", "1.00", 1_000),
        );
        run(
            &mut s,
            &mut tc,
            delta(1, 3, "A", "yes", "0.42", "1.00", 2_000),
        );
        let ticker = |ts: i64, bid: &str| {
            let f = frame(&format!(
                r#"{{"type":"ticker","sid":2,"msg":{{"market_ticker":"A","yes_bid_dollars":"{bid}","yes_ask_dollars":"0.4500","ts_ms":{ts}}}}}"#
            ));
            match f.msg {
                WsMessage::Ticker(t) => t,
                _ => unreachable!(),
            }
        };
        // A ticker stamped 1500 arriving now describes the book after the 1000 delta.
        assert_eq!(tc.check(&ticker(1_500, "0.4100")), TickerVerdict::Agree);
        assert_eq!(tc.check(&ticker(999, "0.4000")), TickerVerdict::Agree);
        assert_eq!(tc.check(&ticker(2_000, "0.4200")), TickerVerdict::Agree);
        assert!(matches!(
            tc.check(&ticker(2_000, "0.4100")),
            TickerVerdict::Disagree { .. }
        ));
        // History is pruned beyond the horizon but keeps the state in force at its start.
        run(
            &mut s,
            &mut tc,
            delta(1, 4, "A", "yes", "0.43", "1.00", 9_000),
        );
        assert_eq!(tc.check(&ticker(4_500, "0.4200")), TickerVerdict::Agree);
        assert_eq!(tc.check(&ticker(500, "0.4000")), TickerVerdict::Unknown);
    }
}
