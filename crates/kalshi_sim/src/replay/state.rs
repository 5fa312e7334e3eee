//! The replay's exchange state: one book per market rebuilt from the recorded snapshots and
//! deltas, the markets' schedule and outcome, the replay clock, and what happened so far.
//! Applying a frame updates the state and yields the events the WebSocket connections serve.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pipeline::money::{Count, Money, Price};
use pipeline::{MarketTicker, SeriesTicker};

use super::capture::{Frame, FrameKind, TickerStats};
use crate::engine::{
    BookSide, Levels, LifecycleKind, MarketInfo, MarketResult, MarketStatus, PriceLevelStructure,
    TickerState,
};

/// One market's book: bids per side at leg prices (NO bids at NO-leg prices), sizes > 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Book {
    pub yes: BTreeMap<Price, Count>,
    pub no: BTreeMap<Price, Count>,
}

impl Book {
    pub(crate) fn from_levels(yes: &Levels, no: &Levels) -> Book {
        Book {
            yes: yes.iter().copied().collect(),
            no: no.iter().copied().collect(),
        }
    }

    /// `(yes bids, no bids)`, ascending by price.
    pub(crate) fn levels(&self) -> (Levels, Levels) {
        (
            self.yes.iter().map(|(p, c)| (*p, *c)).collect(),
            self.no.iter().map(|(p, c)| (*p, *c)).collect(),
        )
    }

    /// Adds `delta` at a level; a level reaching zero goes away. Returns the size it would
    /// have had when that is negative (the level is then removed too).
    fn apply(&mut self, side: BookSide, price: Price, delta: Count) -> Option<Count> {
        let book = match side {
            BookSide::Yes => &mut self.yes,
            BookSide::No => &mut self.no,
        };
        let new = book.get(&price).copied().unwrap_or(Count::ZERO) + delta;
        if new.is_zero() || new.is_negative() {
            book.remove(&price);
            return new.is_negative().then_some(new);
        }
        book.insert(price, new);
        None
    }
}

/// How long after close a result is determined, and then paid out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub determination_delay_ms: i64,
    pub settlement_timer_seconds: i64,
}

/// A market of the replay: its schedule (from the markets file, or from the capture when the
/// file has no entry), its recorded book and statistics.
#[derive(Clone, Debug)]
pub(crate) struct MarketState {
    pub ticker: String,
    pub event_ticker: String,
    pub series: String,
    pub market_id: String,
    pub title: String,
    pub listed_ms: i64,
    pub open_ms: i64,
    pub close_ms: i64,
    pub floor_strike_cents: Option<i64>,
    pub result: Option<MarketResult>,
    /// `None` until the capture's first snapshot of the market.
    pub book: Option<Book>,
    /// `(capture, sid)` whose snapshot the book comes from: deltas of other sids are not
    /// applied (a recorder subscribed twice would otherwise apply them twice).
    pub source: Option<(usize, u64)>,
    pub stats: TickerStats,
    /// The last recorded `ticker` msg (for `send_initial_snapshot`).
    pub last_ticker: Option<Box<str>>,
}

impl MarketState {
    pub(crate) fn determined_ms(&self, t: &Timing) -> Option<i64> {
        self.result
            .map(|_| self.close_ms + t.determination_delay_ms)
    }

    pub(crate) fn settled_ms(&self, t: &Timing) -> Option<i64> {
        self.determined_ms(t)
            .map(|d| d + t.settlement_timer_seconds * 1000)
    }

    pub(crate) fn status(&self, now: i64, t: &Timing) -> MarketStatus {
        if now < self.open_ms {
            MarketStatus::Initialized
        } else if now < self.close_ms {
            MarketStatus::Active
        } else if self.settled_ms(t).is_some_and(|s| now >= s) {
            MarketStatus::Finalized
        } else if self.determined_ms(t).is_some_and(|d| now >= d) {
            MarketStatus::Determined
        } else {
            MarketStatus::Closed
        }
    }

    /// The market as the API shows it at `now`.
    pub(crate) fn info(&self, now: i64, t: &Timing) -> MarketInfo {
        let status = self.status(now, t);
        let known = |x: Option<i64>| x.filter(|x| now >= *x);
        let determined = known(self.determined_ms(t));
        let settled = known(self.settled_ms(t));
        let updated = [
            Some(self.listed_ms),
            Some(self.open_ms),
            Some(self.close_ms),
            determined,
            settled,
        ]
        .into_iter()
        .flatten()
        .filter(|x| *x <= now)
        .max()
        .unwrap_or(self.listed_ms);
        MarketInfo {
            ticker: MarketTicker::new(self.ticker.clone()),
            event_ticker: self.event_ticker.clone(),
            series: SeriesTicker::new(self.series.clone()),
            market_id: self.market_id.clone(),
            title: self.title.clone(),
            created_ms: self.listed_ms,
            open_ms: self.open_ms,
            close_ms: self.close_ms,
            scheduled_close_ms: self.close_ms,
            status,
            floor_strike_cents: self.floor_strike_cents,
            expiration_value_cents: None,
            result: determined.and(self.result),
            determined_ms: determined,
            settled_ms: settled,
            settlement_timer_seconds: t.settlement_timer_seconds,
            price_level_structure: PriceLevelStructure::TaperedDeciCent,
            updated_ms: updated,
        }
    }

    /// Top of book from the replayed book, activity from the last recorded `ticker` frame.
    pub(crate) fn ticker_state(&self, now: i64) -> TickerState {
        let (yes_bid, yes_ask) = match &self.book {
            Some(b) => (
                b.yes.iter().next_back().map(|(p, c)| (*p, *c)),
                b.no.iter().next_back().map(|(p, c)| (p.complement(), *c)),
            ),
            None => (None, None),
        };
        TickerState {
            ticker: MarketTicker::new(self.ticker.clone()),
            market_id: self.market_id.clone(),
            yes_bid,
            yes_ask,
            last_price: self.stats.last_price,
            last_trade_size: self.stats.last_trade_size.unwrap_or(Count::ZERO),
            volume: self.stats.volume.unwrap_or(Count::ZERO),
            open_interest: self.stats.open_interest.unwrap_or(Count::ZERO),
            dollar_volume: Money::from_cents(self.stats.dollar_volume.unwrap_or(0) * 100),
            ts_ms: self.stats.ts_ms.unwrap_or(now),
        }
    }
}

/// What a batch carries to the WebSocket connections.
#[derive(Debug)]
pub(crate) enum Event {
    /// A recorded snapshot: the market's book was replaced.
    Snapshot {
        ticker: String,
        market_id: String,
        yes: Levels,
        no: Levels,
    },
    /// A recorded delta (`raw` = the recorded msg; `price` at the NO-leg price for `no`).
    Delta {
        ticker: String,
        side: BookSide,
        price: Price,
        raw: Box<str>,
    },
    Ticker {
        ticker: String,
        raw: Box<str>,
    },
    Trade {
        ticker: String,
        raw: Box<str>,
    },
    Lifecycle {
        kind: LifecycleKind,
        market: Box<MarketInfo>,
        ts_ms: i64,
    },
}

/// Events applied together, numbered in order.
pub(crate) type Batch = crate::ws_common::Batch<Event>;

/// A frame to apply, with where it came from.
#[derive(Debug)]
pub(crate) struct Item {
    pub capture: usize,
    pub line: u64,
    pub frame: Frame,
}

/// A scheduled lifecycle event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LifeItem {
    pub t_ms: i64,
    pub order: u8,
    pub ticker: String,
    pub kind: LifecycleKind,
}

/// Counts of what was served and what was wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Capture frames applied and broadcast (snapshots + deltas + tickers + trades).
    pub frames_sent: u64,
    pub snapshots: u64,
    pub deltas: u64,
    pub tickers: u64,
    pub trades: u64,
    /// Frames not served: command responses, recorded lifecycle events, unknown types.
    pub ignored_frames: u64,
    /// The same, by frame `type`.
    pub ignored_types: BTreeMap<String, u64>,
    pub lifecycle_events: u64,
    /// Deltas not applied: before any snapshot of their market, or on a sid that is not
    /// the one the market's book came from.
    pub orphan_deltas: u64,
    /// Recorded `seq` that did not follow the previous one of its sid.
    pub capture_seq_gaps: u64,
    /// Deltas that took a level below zero (the level was removed).
    pub negative_levels: u64,
}

/// Problems met while replaying, as `file:line: message` (the first `MAX_ISSUES` kept).
#[derive(Clone, Debug, Default)]
pub(crate) struct Issues {
    pub list: Vec<String>,
    pub count: u64,
}

pub(crate) const MAX_ISSUES: usize = 200;

impl Issues {
    pub(crate) fn push(&mut self, message: String) {
        self.count += 1;
        if self.list.len() < MAX_ISSUES {
            tracing::warn!("{message}");
            self.list.push(message);
        } else if self.list.len() == MAX_ISSUES && self.count == MAX_ISSUES as u64 + 1 {
            tracing::warn!("more replay problems; only the first {MAX_ISSUES} are reported");
        }
    }
}

pub(crate) struct State {
    pub now_ms: i64,
    pub markets: BTreeMap<String, MarketState>,
    pub batch_no: u64,
    pub timing: Timing,
    pub paths: Vec<PathBuf>,
    seqs: BTreeMap<(usize, u64), u64>,
    pub tally: Tally,
    pub issues: Issues,
}

impl State {
    pub(crate) fn new(
        start_ms: i64,
        markets: BTreeMap<String, MarketState>,
        timing: Timing,
        paths: Vec<PathBuf>,
        issues: Issues,
    ) -> State {
        State {
            now_ms: start_ms,
            markets,
            batch_no: 0,
            timing,
            paths,
            seqs: BTreeMap::new(),
            tally: Tally::default(),
            issues,
        }
    }

    /// A market listed at the current replay time.
    pub(crate) fn listed(&self, ticker: &str) -> Option<&MarketState> {
        self.markets
            .get(ticker)
            .filter(|m| m.listed_ms <= self.now_ms)
    }

    fn at(&self, item: &Item) -> String {
        format!(
            "{}:{}",
            self.paths
                .get(item.capture)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            item.line
        )
    }

    fn check_seq(&mut self, item: &Item) {
        let (Some(sid), Some(seq)) = (item.frame.sid, item.frame.seq) else {
            return;
        };
        let prev = self.seqs.insert((item.capture, sid), seq);
        if let Some(prev) = prev {
            if seq != prev + 1 {
                self.tally.capture_seq_gaps += 1;
                let at = self.at(item);
                self.issues.push(format!(
                    "{at}: sid {sid} seq {seq} after {prev}: the capture has a gap or repeat"
                ));
            }
        }
    }

    /// Applies a recorded frame; pushes what the connections should see.
    pub(crate) fn apply_frame(&mut self, item: Item, out: &mut Vec<Event>) {
        self.now_ms = self.now_ms.max(item.frame.recv_ns.div_euclid(1_000_000));
        self.check_seq(&item);
        let source = (item.capture, item.frame.sid.unwrap_or(0));
        let at = self.at(&item);
        match item.frame.kind {
            FrameKind::Snapshot {
                ticker,
                market_id,
                yes,
                no,
            } => {
                let Some(m) = self.markets.get_mut(&ticker) else {
                    return self.issues.push(format!("{at}: unknown market {ticker}"));
                };
                m.book = Some(Book::from_levels(&yes, &no));
                m.source = Some(source);
                if let Some(id) = market_id {
                    m.market_id = id;
                }
                self.tally.snapshots += 1;
                self.tally.frames_sent += 1;
                out.push(Event::Snapshot {
                    market_id: m.market_id.clone(),
                    ticker,
                    yes,
                    no,
                });
            }
            FrameKind::Delta {
                ticker,
                side,
                price,
                delta,
                raw,
            } => {
                let Some(m) = self.markets.get_mut(&ticker) else {
                    return self.issues.push(format!("{at}: unknown market {ticker}"));
                };
                let why = match (&mut m.book, m.source) {
                    (Some(book), Some(src)) if src == source => {
                        if let Some(neg) = book.apply(side, price, delta) {
                            self.tally.negative_levels += 1;
                            self.issues.push(format!(
                                "{at}: {ticker} {} {} would go to {}; level removed",
                                side.as_str(),
                                price.to_dollars(),
                                neg.to_fp_string()
                            ));
                        }
                        None
                    }
                    (None, _) | (_, None) => Some("before any snapshot of the market".to_string()),
                    (_, Some(src)) => Some(format!(
                        "on sid {}, but the market's book comes from sid {}",
                        source.1, src.1
                    )),
                };
                if let Some(why) = why {
                    self.tally.orphan_deltas += 1;
                    return self
                        .issues
                        .push(format!("{at}: {ticker} delta {why}; not applied"));
                }
                self.tally.deltas += 1;
                self.tally.frames_sent += 1;
                out.push(Event::Delta {
                    ticker,
                    side,
                    price,
                    raw,
                });
            }
            FrameKind::Ticker {
                ticker,
                stats,
                raw,
                market_id,
            } => {
                let Some(m) = self.markets.get_mut(&ticker) else {
                    return self.issues.push(format!("{at}: unknown market {ticker}"));
                };
                m.stats.merge(&stats);
                m.last_ticker = Some(raw.clone());
                if let (Some(id), None) = (market_id, &m.source) {
                    m.market_id = id;
                }
                self.tally.tickers += 1;
                self.tally.frames_sent += 1;
                out.push(Event::Ticker { ticker, raw });
            }
            FrameKind::Trade { ticker, raw } => {
                self.tally.trades += 1;
                self.tally.frames_sent += 1;
                out.push(Event::Trade { ticker, raw });
            }
            FrameKind::Ignored(kind) => {
                self.tally.ignored_frames += 1;
                *self.tally.ignored_types.entry(kind).or_default() += 1;
            }
        }
    }

    /// Emits a scheduled lifecycle event.
    pub(crate) fn apply_lifecycle(&mut self, li: &LifeItem, out: &mut Vec<Event>) {
        self.now_ms = self.now_ms.max(li.t_ms);
        let Some(m) = self.markets.get(&li.ticker) else {
            return;
        };
        let market = Box::new(m.info(li.t_ms, &self.timing));
        self.tally.lifecycle_events += 1;
        out.push(Event::Lifecycle {
            kind: li.kind,
            market,
            ts_ms: li.t_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn market() -> MarketState {
        MarketState {
            ticker: "A".into(),
            event_ticker: "E".into(),
            series: "S".into(),
            market_id: "id".into(),
            title: "t".into(),
            listed_ms: 0,
            open_ms: 100,
            close_ms: 200,
            floor_strike_cents: None,
            result: Some(MarketResult::Yes),
            book: None,
            source: None,
            stats: TickerStats::default(),
            last_ticker: None,
        }
    }

    #[test]
    fn status_follows_the_schedule() {
        let t = Timing {
            determination_delay_ms: 10,
            settlement_timer_seconds: 1,
        };
        let m = market();
        let s = |now| m.status(now, &t);
        assert_eq!(s(99), MarketStatus::Initialized);
        assert_eq!(s(100), MarketStatus::Active);
        assert_eq!(s(200), MarketStatus::Closed);
        assert_eq!(s(210), MarketStatus::Determined);
        assert_eq!(s(1210), MarketStatus::Finalized);
        assert_eq!(
            m.info(209, &t).result,
            None,
            "result hidden until determined"
        );
        assert_eq!(m.info(210, &t).result, Some(MarketResult::Yes));
        let mut u = market();
        u.result = None;
        assert_eq!(u.status(10_000, &t), MarketStatus::Closed);
    }

    #[test]
    fn book_levels_go_away_at_zero_and_report_negatives() {
        let p = |c| Price::from_cents(c).unwrap();
        let n = Count::from_contracts;
        let mut b = Book::from_levels(&vec![(p(40), n(3))], &vec![(p(55), n(2))]);
        assert_eq!(b.apply(BookSide::Yes, p(40), n(-3)), None);
        assert!(b.yes.is_empty());
        assert_eq!(b.apply(BookSide::No, p(55), n(-5)), Some(n(-3)));
        assert!(b.no.is_empty());
        assert_eq!(b.apply(BookSide::No, p(56), n(1)), None);
        assert_eq!(b.levels().1, vec![(p(56), n(1))]);
    }
}
