//! The grid: which line each market gets at each tick. Pure (no IO, no clock), so every rule
//! is unit-tested here and the core only feeds it books read under the books' lock.
//!
//! Per market, a [`Track`] remembers what the files last said about the book:
//! * `Never`: nothing yet;
//! * `Valid { epoch }`: rows are being written from the book rebuilt by snapshot number
//!   `epoch` ([`OrderBook::snapshot_count`]);
//! * `Outage`: a `gap` was written and no `resync` yet.
//!
//! At a tick `T` an active market's book is either trustworthy (valid, and its ladders make a
//! consistent record) or not, and the track moves:
//!
//! | before \ now | trustworthy, epoch e | not trustworthy |
//! |---|---|---|
//! | `Never` | `resync`, row | `gap` ("no order-book snapshot yet") |
//! | `Valid{e}` | row | `gap` (reason) |
//! | `Valid{e' ≠ e}` | `gap`, `resync`, row (rebuilt between ticks) | `gap` |
//! | `Outage` | `resync`, row | nothing |
//!
//! All markers of a tick carry `ts_ms = T`, so a file's lines are in time order per market and
//! a marker at `T` applies before the row at `T`, as readers expect.

use pipeline::ids::MarketTicker;
use pipeline::money::{Count, Price};
use pipeline::snapshot::{Line, Marker, MarkerKind, SnapshotRecord};

use crate::book::OrderBook;

/// What the files last said about a market's book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BookState {
    #[default]
    Never,
    Valid {
        epoch: u64,
    },
    Outage,
}

/// Per-market grid state and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Track {
    pub state: BookState,
    /// `ts_ms` of the last line written (markers included).
    pub last_ts: Option<i64>,
    /// A `closed` marker was written; nothing follows.
    pub closed: bool,
    pub rows: u64,
    pub gaps: u64,
    pub resyncs: u64,
}

/// What a row carries besides the best levels: ladder depth and market data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extras {
    /// Ladder levels per side (0 = no `yes_bids`/`no_bids`).
    pub depth: usize,
    pub last_price: Option<Price>,
    pub volume: Option<Count>,
    pub close_ts_ms: Option<i64>,
}

fn marker(ts: i64, t: &MarketTicker, kind: MarkerKind, reason: Option<String>) -> Line {
    Line::Marker(Marker::new(ts, t.clone(), kind, reason))
}

/// A snapshot record from a valid book, or why it cannot be one.
pub fn record_from_book(
    ts_ms: i64,
    book: &OrderBook,
    extras: Extras,
) -> Result<SnapshotRecord, String> {
    let depth = extras.depth;
    let n = depth.max(1);
    let yes: Vec<(Price, Count)> = book
        .yes_bids(n)
        .into_iter()
        .map(|l| (l.price, l.size))
        .collect();
    let no: Vec<(Price, Count)> = book
        .no_bids(n)
        .into_iter()
        .map(|l| (l.price, l.size))
        .collect();
    let rec = SnapshotRecord::from_ladders(ts_ms, book.ticker().clone(), &yes, &no, depth)
        .map_err(|e| e.to_string())?
        .with_last_price(extras.last_price)
        .with_volume(extras.volume.filter(|v| !v.is_negative()))
        .with_close_ts_ms(extras.close_ts_ms)
        .with_seq(book.last_seq());
    rec.validate().map_err(|e| e.to_string())?;
    Ok(rec)
}

impl Track {
    fn push(&mut self, out: &mut Vec<Line>, line: Line) {
        match &line {
            Line::Snapshot(_) => self.rows += 1,
            Line::Marker(m) => match m.event {
                MarkerKind::Gap => self.gaps += 1,
                MarkerKind::Resync => self.resyncs += 1,
                _ => {}
            },
        }
        self.last_ts = Some(line.ts_ms());
        out.push(line);
    }

    /// The lines for an active market at tick `ts`. `book` is the market's book as read now
    /// (`None`: not subscribed or no frame yet); `reason` explains an untrustworthy book.
    pub fn tick(
        &mut self,
        ts: i64,
        ticker: &MarketTicker,
        book: Option<&OrderBook>,
        extras: Extras,
        reason: impl FnOnce() -> String,
        out: &mut Vec<Line>,
    ) {
        debug_assert!(!self.closed, "tick after closed");
        // Err(Some(text)): untrustworthy for a known reason; Err(None): ask `reason`.
        let now = match book {
            Some(b) if b.is_valid() => match record_from_book(ts, b, extras) {
                Ok(rec) => Ok((b.snapshot_count(), rec)),
                Err(e) => Err(Some(format!("untrustworthy book: {e}"))),
            },
            None if self.state == BookState::Never => {
                Err(Some("no order-book snapshot yet".to_string()))
            }
            _ => Err(None),
        };
        match (self.state, now) {
            (BookState::Valid { epoch }, Ok((e, rec))) if epoch == e => {
                self.push(out, rec.into());
            }
            (BookState::Valid { .. }, Ok((e, rec))) => {
                let why = format!(
                    "book rebuilt from a new snapshot between ticks ({})",
                    reason()
                );
                self.push(out, marker(ts, ticker, MarkerKind::Gap, Some(why)));
                self.push(out, marker(ts, ticker, MarkerKind::Resync, None));
                self.push(out, rec.into());
                self.state = BookState::Valid { epoch: e };
            }
            (BookState::Never | BookState::Outage, Ok((e, rec))) => {
                self.push(out, marker(ts, ticker, MarkerKind::Resync, None));
                self.push(out, rec.into());
                self.state = BookState::Valid { epoch: e };
            }
            (BookState::Never | BookState::Valid { .. }, Err(why)) => {
                let why = why.unwrap_or_else(reason);
                self.push(out, marker(ts, ticker, MarkerKind::Gap, Some(why)));
                self.state = BookState::Outage;
            }
            (BookState::Outage, Err(_)) => {}
        }
    }

    /// The market is not tradable at `ts` (paused) although not closed: a market being
    /// recorded gets a `gap`.
    pub fn pause(&mut self, ts: i64, ticker: &MarketTicker, why: &str, out: &mut Vec<Line>) {
        if let BookState::Valid { .. } = self.state {
            self.push(
                out,
                marker(ts, ticker, MarkerKind::Gap, Some(why.to_string())),
            );
            self.state = BookState::Outage;
        }
    }

    /// Grid instants from `first_missed` up to the current tick were skipped: a market being
    /// recorded gets a `gap` at the first missed instant (the current tick then resyncs it).
    pub fn skipped(
        &mut self,
        first_missed: i64,
        ticker: &MarketTicker,
        why: &str,
        out: &mut Vec<Line>,
    ) {
        self.pause(first_missed, ticker, why, out);
    }

    /// The market's first active grid instant `ts` fell in a stretch of skipped ticks before
    /// anything was written for it: a `gap` there, so the files say that its first instants
    /// were missed rather than start at the next tick as if it had opened then (the current
    /// tick then resyncs it).
    pub fn missed_start(&mut self, ts: i64, ticker: &MarketTicker, why: &str, out: &mut Vec<Line>) {
        if self.state == BookState::Never && self.last_ts.is_none() && !self.closed {
            self.push(
                out,
                marker(ts, ticker, MarkerKind::Gap, Some(why.to_string())),
            );
            self.state = BookState::Outage;
        }
    }

    /// The recorder stops after tick `last_tick`: a market being recorded gets a `gap` at the
    /// next grid instant, so a later run is never read as a continuation.
    pub fn stop(&mut self, next_tick: i64, ticker: &MarketTicker, out: &mut Vec<Line>) {
        self.stop_because(next_tick, ticker, "recorder stopped", out);
    }

    /// [`Track::stop`] with another reason (the re-grid's `end of capture`).
    pub fn stop_because(
        &mut self,
        next_tick: i64,
        ticker: &MarketTicker,
        why: &str,
        out: &mut Vec<Line>,
    ) {
        if !self.closed {
            self.pause(next_tick, ticker, why, out);
        }
    }

    /// The market closed (at `close_ms`, or we learned so at `ts`): a `closed` marker, once,
    /// if anything was written for the market.
    pub fn close(&mut self, ts: i64, ticker: &MarketTicker, out: &mut Vec<Line>) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Some(last) = self.last_ts {
            let at = ts.max(last);
            self.last_ts = Some(at);
            out.push(marker(at, ticker, MarkerKind::Closed, None));
            self.state = BookState::Outage;
        }
    }
}

/// Grid arithmetic: the first grid instant `≥ t`.
pub fn ceil_to_grid(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step }
}

/// The last grid instant `≤ t`.
pub fn floor_to_grid(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::NoPriceConvention;
    use crate::wire::{Level, Side};

    fn p(s: &str) -> Price {
        Price::parse_dollars(s).unwrap()
    }
    fn c(s: &str) -> Count {
        Count::parse(s).unwrap()
    }
    fn book() -> OrderBook {
        let mut b = OrderBook::new("M".into());
        b.apply_snapshot(
            &[
                Level::new(p("0.40"), c("5")),
                Level::new(p("0.41"), c("2.5")),
            ],
            &[Level::new(p("0.55"), c("7"))],
            NoPriceConvention::NoLeg,
        )
        .unwrap();
        b
    }
    fn kinds(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| match l {
                Line::Snapshot(r) => format!("row@{}", r.ts_ms),
                Line::Marker(m) => format!("{}@{}", m.event, m.ts_ms),
            })
            .collect()
    }
    fn tick(tr: &mut Track, ts: i64, b: Option<&OrderBook>, out: &mut Vec<Line>) {
        tr.tick(
            ts,
            &"M".into(),
            b,
            Extras {
                depth: 3,
                close_ts_ms: Some(9_000),
                ..Default::default()
            },
            || "seq gap".into(),
            out,
        );
    }

    #[test]
    fn record_has_best_levels_ladders_seq_and_extras() {
        let b = book();
        let r = record_from_book(
            1000,
            &b,
            Extras {
                depth: 2,
                last_price: Some(p("0.42")),
                volume: Some(c("12")),
                close_ts_ms: Some(5000),
            },
        )
        .unwrap();
        assert_eq!(r.yes_bid, Some(p("0.41")));
        assert_eq!(r.yes_bid_size, Some(c("2.5")));
        assert_eq!(r.yes_ask, Some(p("0.45")));
        assert_eq!(r.no_bid, Some(p("0.55")));
        assert_eq!(r.yes_ask_size, Some(c("7")));
        assert_eq!(
            r.yes_bids,
            Some(vec![(p("0.41"), c("2.5")), (p("0.40"), c("5"))])
        );
        assert_eq!(r.no_bids, Some(vec![(p("0.55"), c("7"))]));
        assert_eq!(
            (r.last_price, r.volume, r.close_ts_ms),
            (Some(p("0.42")), Some(c("12")), Some(5000))
        );
        let r0 = record_from_book(1000, &b, Extras::default()).unwrap();
        assert_eq!((r0.yes_bids, r0.no_bids), (None, None));
        assert_eq!(r0.yes_bid, Some(p("0.41")));
    }

    #[test]
    fn transitions_follow_the_table() {
        let mut tr = Track::default();
        let mut out = Vec::new();
        // Subscribed late: nothing yet.
        tick(&mut tr, 100, None, &mut out);
        tick(&mut tr, 200, None, &mut out);
        let mut b = book();
        tick(&mut tr, 300, Some(&b), &mut out);
        tick(&mut tr, 400, Some(&b), &mut out);
        b.apply_delta(Side::Yes, p("0.42"), c("1")).unwrap();
        tick(&mut tr, 500, Some(&b), &mut out);
        // Invalidated, then rebuilt.
        b.set_valid(false);
        tick(&mut tr, 600, Some(&b), &mut out);
        tick(&mut tr, 700, Some(&b), &mut out);
        b.apply_snapshot(
            &[Level::new(p("0.30"), c("1"))],
            &[],
            NoPriceConvention::NoLeg,
        )
        .unwrap();
        tick(&mut tr, 800, Some(&b), &mut out);
        // Rebuilt between two ticks without a tick seeing it invalid.
        b.apply_snapshot(
            &[Level::new(p("0.31"), c("1"))],
            &[],
            NoPriceConvention::NoLeg,
        )
        .unwrap();
        tick(&mut tr, 900, Some(&b), &mut out);
        assert_eq!(
            kinds(&out),
            [
                "gap@100",
                "resync@300",
                "row@300",
                "row@400",
                "row@500",
                "gap@600",
                "resync@800",
                "row@800",
                "gap@900",
                "resync@900",
                "row@900"
            ]
        );
        match &out[0] {
            Line::Marker(m) => assert_eq!(m.reason.as_deref(), Some("no order-book snapshot yet")),
            _ => unreachable!(),
        }
        match &out[5] {
            Line::Marker(m) => assert_eq!(m.reason.as_deref(), Some("seq gap")),
            _ => unreachable!(),
        }
        match &out[8] {
            Line::Marker(m) => assert_eq!(
                m.reason.as_deref(),
                Some("book rebuilt from a new snapshot between ticks (seq gap)")
            ),
            _ => unreachable!(),
        }
        match &out[4] {
            Line::Snapshot(r) => assert_eq!(r.yes_bid, Some(p("0.42"))),
            _ => unreachable!(),
        }
        assert_eq!((tr.rows, tr.gaps, tr.resyncs), (5, 3, 3));
        assert_eq!(tr.last_ts, Some(900));
    }

    #[test]
    fn crossed_book_is_an_outage_not_a_row() {
        let mut b = OrderBook::new("M".into());
        b.apply_snapshot(
            &[Level::new(p("0.60"), c("1"))],
            &[Level::new(p("0.50"), c("1"))],
            NoPriceConvention::NoLeg,
        )
        .unwrap();
        let mut tr = Track::default();
        let mut out = Vec::new();
        tick(&mut tr, 100, Some(&b), &mut out);
        assert_eq!(kinds(&out), ["gap@100"]);
        match &out[0] {
            Line::Marker(m) => assert!(m.reason.as_deref().unwrap().contains("crossed")),
            _ => unreachable!(),
        }
    }

    #[test]
    fn pause_stop_close_and_skips() {
        let b = book();
        let t: MarketTicker = "M".into();
        let mut tr = Track::default();
        let mut out = Vec::new();
        tick(&mut tr, 100, Some(&b), &mut out);
        tr.skipped(200, &t, "recorder late", &mut out);
        tick(&mut tr, 500, Some(&b), &mut out);
        tr.pause(600, &t, "paused", &mut out);
        tr.pause(700, &t, "paused", &mut out);
        tick(&mut tr, 800, Some(&b), &mut out);
        tr.close(1000, &t, &mut out);
        tr.close(1100, &t, &mut out);
        tr.stop(1200, &t, &mut out);
        assert_eq!(
            kinds(&out),
            [
                "resync@100",
                "row@100",
                "gap@200",
                "resync@500",
                "row@500",
                "gap@600",
                "resync@800",
                "row@800",
                "closed@1000"
            ]
        );
        let mut other = Track::default();
        let mut o2 = Vec::new();
        other.close(1000, &t, &mut o2);
        assert!(o2.is_empty(), "nothing written, no closed marker");
        let mut rec = Track::default();
        let mut o3 = Vec::new();
        tick(&mut rec, 100, Some(&b), &mut o3);
        rec.stop(200, &t, &mut o3);
        assert_eq!(kinds(&o3), ["resync@100", "row@100", "gap@200"]);
    }

    #[test]
    fn grid_rounding() {
        assert_eq!(ceil_to_grid(1000, 100), 1000);
        assert_eq!(ceil_to_grid(1001, 100), 1100);
        assert_eq!(floor_to_grid(1099, 100), 1000);
        assert_eq!(ceil_to_grid(-5, 100), 0);
    }
}
