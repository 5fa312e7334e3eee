//! One market's order book, rebuilt from a snapshot plus signed deltas, with exact
//! fixed-point sizes.
//!
//! Kalshi books hold **bids only**: YES bids and NO bids (API.md §4.3, pitfall 4). The YES ask
//! is `1 − best NO bid` and the NO ask is `1 − best YES bid`. Internally NO bids are always kept
//! in **NO-leg prices**; a subscription made with `use_yes_price: true` reports NO-side levels
//! on the YES scale, which [`NoPriceConvention::YesScale`] converts on the way in, so the
//! complement is applied exactly once.

use std::collections::BTreeMap;

use pipeline::ids::MarketTicker;
use pipeline::money::{Count, Price};

use crate::wire::{Level, Side};

/// How NO-side prices arrive on a subscription (API.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NoPriceConvention {
    /// `use_yes_price: false` (today's default, and REST): a NO bid at $0.30 is sent as 0.30.
    #[default]
    NoLeg,
    /// `use_yes_price: true`: that same NO bid is sent as 0.70 (directly a YES ask).
    YesScale,
}

impl NoPriceConvention {
    pub fn from_use_yes_price(use_yes_price: bool) -> NoPriceConvention {
        if use_yes_price {
            NoPriceConvention::YesScale
        } else {
            NoPriceConvention::NoLeg
        }
    }
    pub fn use_yes_price(self) -> bool {
        self == NoPriceConvention::YesScale
    }
    /// The NO-leg price of a NO-side level sent at `wire` under this convention.
    pub fn no_leg(self, wire: Price) -> Price {
        match self {
            NoPriceConvention::NoLeg => wire,
            NoPriceConvention::YesScale => wire.complement(),
        }
    }
}

/// Why a book update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("{side:?} level {price} would go negative: {before} + {delta}")]
    NegativeLevel {
        side: Side,
        price: Price,
        before: Count,
        delta: Count,
    },
    #[error("{side:?} snapshot level {price} has negative size {size}")]
    NegativeSnapshotLevel {
        side: Side,
        price: Price,
        size: Count,
    },
    #[error("delta without a price")]
    MissingPrice,
    #[error("delta without a size change")]
    MissingDelta,
}

/// Best bid and best ask of the YES side (each with its size), the four quotes derivable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopOfBook {
    /// Best YES bid.
    pub yes_bid: Option<Level>,
    /// Best YES ask: price `1 − best NO bid`, size of that NO bid.
    pub yes_ask: Option<Level>,
}

impl TopOfBook {
    /// Best NO bid (NO-leg price) = complement of the YES ask.
    pub fn no_bid(&self) -> Option<Level> {
        self.yes_ask
            .map(|l| Level::new(l.price.complement(), l.size))
    }
    /// Best NO ask (NO-leg price) = complement of the YES bid.
    pub fn no_ask(&self) -> Option<Level> {
        self.yes_bid
            .map(|l| Level::new(l.price.complement(), l.size))
    }
    /// YES ask − YES bid in micro-dollars, when both sides exist.
    pub fn spread_micros(&self) -> Option<i64> {
        Some(self.yes_ask?.price.micros() - self.yes_bid?.price.micros())
    }
    /// `(yes_bid, yes_ask)` as the `ticker` channel quotes them: an empty bid side is `0`
    /// and an empty ask side is `1` (observed in the May 2026 captures).
    pub fn ticker_quotes(&self) -> (Price, Price) {
        (
            self.yes_bid.map_or(Price::ZERO, |l| l.price),
            self.yes_ask.map_or(Price::ONE, |l| l.price),
        )
    }
}

/// One market's book. Starts invalid; a snapshot makes it valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBook {
    ticker: MarketTicker,
    /// YES bids by YES price.
    yes: BTreeMap<Price, Count>,
    /// NO bids by NO-leg price.
    no: BTreeMap<Price, Count>,
    valid: bool,
    convention: NoPriceConvention,
    sid: Option<u64>,
    last_seq: Option<u64>,
    last_ts_ms: Option<i64>,
    /// Snapshots applied so far: changes exactly when the book is rebuilt from scratch.
    snapshots: u64,
}

impl OrderBook {
    /// An empty, invalid book (no snapshot yet).
    pub fn new(ticker: MarketTicker) -> OrderBook {
        OrderBook {
            ticker,
            yes: BTreeMap::new(),
            no: BTreeMap::new(),
            valid: false,
            convention: NoPriceConvention::NoLeg,
            sid: None,
            last_seq: None,
            last_ts_ms: None,
            snapshots: 0,
        }
    }

    /// A valid book from REST levels (REST NO prices are NO-leg).
    pub fn from_levels(
        ticker: MarketTicker,
        yes: &[Level],
        no: &[Level],
    ) -> Result<OrderBook, BookError> {
        let mut b = OrderBook::new(ticker);
        b.apply_snapshot(yes, no, NoPriceConvention::NoLeg)?;
        Ok(b)
    }

    pub fn ticker(&self) -> &MarketTicker {
        &self.ticker
    }

    /// Replaces the whole book. On error the book is left empty and invalid.
    pub fn apply_snapshot(
        &mut self,
        yes: &[Level],
        no: &[Level],
        convention: NoPriceConvention,
    ) -> Result<(), BookError> {
        self.yes.clear();
        self.no.clear();
        self.valid = false;
        self.convention = convention;
        self.snapshots += 1;
        for l in yes {
            if l.size.is_negative() {
                return Err(BookError::NegativeSnapshotLevel {
                    side: Side::Yes,
                    price: l.price,
                    size: l.size,
                });
            }
            if !l.size.is_zero() {
                *self.yes.entry(l.price).or_default() += l.size;
            }
        }
        for l in no {
            if l.size.is_negative() {
                self.yes.clear();
                self.no.clear();
                return Err(BookError::NegativeSnapshotLevel {
                    side: Side::No,
                    price: l.price,
                    size: l.size,
                });
            }
            if !l.size.is_zero() {
                *self.no.entry(convention.no_leg(l.price)).or_default() += l.size;
            }
        }
        self.valid = true;
        Ok(())
    }

    /// Adds a signed `delta` at (`side`, `wire_price`) (the price as sent, converted under the
    /// book's convention). A level reaching zero is removed; a level that would go negative is
    /// refused and the book is left unchanged (the caller invalidates it).
    pub fn apply_delta(
        &mut self,
        side: Side,
        wire_price: Price,
        delta: Count,
    ) -> Result<(), BookError> {
        let (map, price) = match side {
            Side::Yes => (&mut self.yes, wire_price),
            Side::No => (&mut self.no, self.convention.no_leg(wire_price)),
        };
        let before = map.get(&price).copied().unwrap_or(Count::ZERO);
        let after = before + delta;
        if after.is_negative() {
            return Err(BookError::NegativeLevel {
                side,
                price: wire_price,
                before,
                delta,
            });
        }
        if after.is_zero() {
            map.remove(&price);
        } else {
            map.insert(price, after);
        }
        Ok(())
    }

    pub fn is_valid(&self) -> bool {
        self.valid
    }
    /// How many snapshots this book has been (re)built from. Two reads with the same count
    /// and a valid book in between see one continuous delta stream; a different count means
    /// the book was rebuilt (after a gap, a resubscription or a reconnect) in between.
    pub fn snapshot_count(&self) -> u64 {
        self.snapshots
    }
    pub fn set_valid(&mut self, valid: bool) {
        self.valid = valid;
    }
    /// The convention the last snapshot was taken under.
    pub fn convention(&self) -> NoPriceConvention {
        self.convention
    }
    /// Subscription id and last applied sequence number (live books).
    pub fn sid(&self) -> Option<u64> {
        self.sid
    }
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }
    /// Exchange time (`ts_ms`) of the last applied delta.
    pub fn last_ts_ms(&self) -> Option<i64> {
        self.last_ts_ms
    }
    pub(crate) fn set_origin(&mut self, sid: Option<u64>, seq: Option<u64>, ts_ms: Option<i64>) {
        self.sid = sid;
        if seq.is_some() {
            self.last_seq = seq;
        }
        if ts_ms.is_some() {
            self.last_ts_ms = ts_ms;
        }
    }

    pub fn best_yes_bid(&self) -> Option<Level> {
        self.yes.last_key_value().map(|(p, s)| Level::new(*p, *s))
    }
    /// Best NO bid, NO-leg price.
    pub fn best_no_bid(&self) -> Option<Level> {
        self.no.last_key_value().map(|(p, s)| Level::new(*p, *s))
    }
    /// Best YES ask = 1 − best NO bid.
    pub fn best_yes_ask(&self) -> Option<Level> {
        self.best_no_bid()
            .map(|l| Level::new(l.price.complement(), l.size))
    }
    /// Best NO ask (NO-leg) = 1 − best YES bid.
    pub fn best_no_ask(&self) -> Option<Level> {
        self.best_yes_bid()
            .map(|l| Level::new(l.price.complement(), l.size))
    }
    pub fn top(&self) -> TopOfBook {
        TopOfBook {
            yes_bid: self.best_yes_bid(),
            yes_ask: self.best_yes_ask(),
        }
    }

    /// Top `n` YES bids, best (highest) first.
    pub fn yes_bids(&self, n: usize) -> Vec<Level> {
        self.yes
            .iter()
            .rev()
            .take(n)
            .map(|(p, s)| Level::new(*p, *s))
            .collect()
    }
    /// Top `n` NO bids (NO-leg prices), best (highest) first.
    pub fn no_bids(&self, n: usize) -> Vec<Level> {
        self.no
            .iter()
            .rev()
            .take(n)
            .map(|(p, s)| Level::new(*p, *s))
            .collect()
    }
    /// Top `n` YES asks (YES prices), best (lowest) first.
    pub fn yes_asks(&self, n: usize) -> Vec<Level> {
        self.no_bids(n)
            .into_iter()
            .map(|l| Level::new(l.price.complement(), l.size))
            .collect()
    }
    /// Size resting at a YES bid price.
    pub fn yes_size_at(&self, price: Price) -> Count {
        self.yes.get(&price).copied().unwrap_or_default()
    }
    /// Size resting at a NO bid (NO-leg price).
    pub fn no_size_at(&self, price: Price) -> Count {
        self.no.get(&price).copied().unwrap_or_default()
    }
    /// Number of price levels `(yes, no)`.
    pub fn depth(&self) -> (usize, usize) {
        (self.yes.len(), self.no.len())
    }
    /// Same levels on both sides (ignores validity and sequence metadata).
    pub fn same_levels(&self, other: &OrderBook) -> bool {
        self.yes == other.yes && self.no == other.no
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse_dollars(s).unwrap()
    }
    fn c(s: &str) -> Count {
        Count::parse(s).unwrap()
    }
    fn l(pr: &str, sz: &str) -> Level {
        Level::new(p(pr), c(sz))
    }

    #[test]
    fn snapshot_tops_and_ladders() {
        let b = OrderBook::from_levels(
            "A".into(),
            &[l("0.08", "300"), l("0.22", "333")],
            &[l("0.54", "20"), l("0.56", "146")],
        )
        .unwrap();
        assert!(b.is_valid());
        assert_eq!(b.best_yes_bid(), Some(l("0.22", "333")));
        assert_eq!(b.best_no_bid(), Some(l("0.56", "146")));
        assert_eq!(b.best_yes_ask(), Some(l("0.44", "146")));
        assert_eq!(b.best_no_ask(), Some(l("0.78", "333")));
        assert_eq!(b.yes_bids(5), vec![l("0.22", "333"), l("0.08", "300")]);
        assert_eq!(b.yes_asks(1), vec![l("0.44", "146")]);
        assert_eq!(b.no_bids(1), vec![l("0.56", "146")]);
        assert_eq!(b.top().spread_micros(), Some(220_000));
        assert_eq!(b.top().ticker_quotes(), (p("0.22"), p("0.44")));
        assert_eq!(
            OrderBook::new("E".into()).top().ticker_quotes(),
            (Price::ZERO, Price::ONE)
        );
    }

    #[test]
    fn deltas_exact_and_refuse_negative() {
        let mut b = OrderBook::from_levels("A".into(), &[l("0.40", "10.50")], &[]).unwrap();
        b.apply_delta(Side::Yes, p("0.40"), c("-0.25")).unwrap();
        assert_eq!(b.yes_size_at(p("0.40")), c("10.25"));
        b.apply_delta(Side::Yes, p("0.40"), c("-10.25")).unwrap();
        assert_eq!(b.depth(), (0, 0), "zero removes the level");
        let err = b.apply_delta(Side::No, p("0.30"), c("-1")).unwrap_err();
        assert!(matches!(
            err,
            BookError::NegativeLevel { side: Side::No, .. }
        ));
        assert_eq!(b.depth(), (0, 0), "refused delta leaves the book unchanged");
        b.apply_delta(Side::No, p("0.30"), c("2")).unwrap();
        assert_eq!(b.best_yes_ask(), Some(l("0.70", "2")));
    }

    #[test]
    fn yes_scale_convention_converts_once() {
        // The same book, reported both ways.
        let mut a = OrderBook::new("A".into());
        a.apply_snapshot(
            &[l("0.40", "5")],
            &[l("0.55", "7")],
            NoPriceConvention::NoLeg,
        )
        .unwrap();
        let mut b = OrderBook::new("A".into());
        b.apply_snapshot(
            &[l("0.40", "5")],
            &[l("0.45", "7")],
            NoPriceConvention::YesScale,
        )
        .unwrap();
        assert!(a.same_levels(&b));
        assert_eq!(b.best_yes_ask(), Some(l("0.45", "7")));
        assert_eq!(b.best_no_bid(), Some(l("0.55", "7")));
        // A NO delta at YES-scale 0.44 is a NO bid at 0.56: improves the YES ask to 0.44.
        b.apply_delta(Side::No, p("0.44"), c("3")).unwrap();
        a.apply_delta(Side::No, p("0.56"), c("3")).unwrap();
        assert!(a.same_levels(&b));
        assert_eq!(b.best_yes_ask(), Some(l("0.44", "3")));
        assert_eq!(b.convention(), NoPriceConvention::YesScale);
    }

    #[test]
    fn snapshot_count_marks_rebuilds() {
        let mut b = OrderBook::new("A".into());
        assert_eq!(b.snapshot_count(), 0);
        b.apply_snapshot(&[l("0.40", "5")], &[], NoPriceConvention::NoLeg)
            .unwrap();
        b.apply_delta(Side::Yes, p("0.41"), c("1")).unwrap();
        assert_eq!(b.snapshot_count(), 1, "deltas do not rebuild the book");
        b.apply_snapshot(&[l("0.40", "5")], &[], NoPriceConvention::NoLeg)
            .unwrap();
        assert_eq!(b.snapshot_count(), 2);
    }

    #[test]
    fn negative_snapshot_rejected() {
        let mut b = OrderBook::new("A".into());
        assert!(b
            .apply_snapshot(
                &[l("0.4", "1")],
                &[Level::new(p("0.5"), c("-1"))],
                NoPriceConvention::NoLeg
            )
            .is_err());
        assert!(!b.is_valid());
        assert_eq!(b.depth(), (0, 0));
    }
}
