//! One market's order book on the YES scale: bids (buy YES) and asks (sell YES = NO bids at
//! `1 − p`), each a price-ordered map of FIFO queues (price-time priority).

use std::collections::{BTreeMap, VecDeque};

use pipeline::money::{Count, Price};

use super::types::{BookSide, Side};

/// `[(price, size)]` of one side, ascending by price.
pub type Levels = Vec<(Price, Count)>;

#[derive(Clone, Debug, Default)]
pub struct Level {
    pub total: Count,
    /// Order sequence numbers, oldest first.
    pub queue: VecDeque<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Book {
    pub bids: BTreeMap<Price, Level>,
    pub asks: BTreeMap<Price, Level>,
}

impl Book {
    pub fn side(&self, side: Side) -> &BTreeMap<Price, Level> {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<Price, Level> {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    pub fn best_bid(&self) -> Option<(Price, Count)> {
        self.bids.iter().next_back().map(|(p, l)| (*p, l.total))
    }

    pub fn best_ask(&self) -> Option<(Price, Count)> {
        self.asks.iter().next().map(|(p, l)| (*p, l.total))
    }

    /// Appends an order at the back of its level's queue.
    pub fn add(&mut self, side: Side, price: Price, seq: u64, count: Count) {
        let level = self.side_mut(side).entry(price).or_default();
        level.total += count;
        level.queue.push_back(seq);
    }

    /// Removes `count` of order `seq`'s size from its level; drops the order from the queue
    /// when `remove` is set (fully filled or cancelled), and the level when it is empty.
    pub fn reduce(&mut self, side: Side, price: Price, seq: u64, count: Count, remove: bool) {
        let book = self.side_mut(side);
        let Some(level) = book.get_mut(&price) else {
            panic!("book invariant: no level at {price:?} for order {seq}");
        };
        level.total -= count;
        assert!(
            !level.total.is_negative(),
            "book invariant: level {price:?} went negative"
        );
        if remove {
            if let Some(pos) = level.queue.iter().position(|s| *s == seq) {
                level.queue.remove(pos);
            }
        }
        if level.queue.is_empty() {
            assert!(
                level.total.is_zero(),
                "book invariant: empty queue with size at {price:?}"
            );
            book.remove(&price);
        }
    }

    /// Resting orders that an incoming order on `side` at `limit` would meet, best first.
    pub fn crossing(&self, side: Side, limit: Price) -> Vec<(Price, u64)> {
        let mut out = Vec::new();
        match side {
            Side::Bid => {
                for (p, l) in self.asks.range(..=limit) {
                    out.extend(l.queue.iter().map(|s| (*p, *s)));
                }
            }
            Side::Ask => {
                for (p, l) in self.bids.range(limit..).rev() {
                    out.extend(l.queue.iter().map(|s| (*p, *s)));
                }
            }
        }
        out
    }

    /// Whether an order on `side` at `limit` would cross the opposite side.
    pub fn crosses(&self, side: Side, limit: Price) -> bool {
        match side {
            Side::Bid => self.best_ask().is_some_and(|(p, _)| p <= limit),
            Side::Ask => self.best_bid().is_some_and(|(p, _)| p >= limit),
        }
    }

    /// Levels as Kalshi shows them: `(yes bids, no bids)`, each ascending by its leg price;
    /// NO bids at NO-leg prices.
    pub fn levels(&self) -> (Levels, Levels) {
        let yes = self.bids.iter().map(|(p, l)| (*p, l.total)).collect();
        let mut no: Vec<(Price, Count)> = self
            .asks
            .iter()
            .map(|(p, l)| (p.complement(), l.total))
            .collect();
        no.reverse();
        (yes, no)
    }

    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }
}

/// The leg price under which a level of `side` at YES price `p` is published.
pub fn published(side: Side, p: Price) -> (BookSide, Price) {
    match side {
        Side::Bid => (BookSide::Yes, p),
        Side::Ask => (BookSide::No, p.complement()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: i64) -> Price {
        Price::from_cents(c).unwrap()
    }

    #[test]
    fn levels_fifo_and_views() {
        let mut b = Book::default();
        b.add(Side::Bid, p(40), 1, Count::from_contracts(5));
        b.add(Side::Bid, p(42), 2, Count::from_contracts(3));
        b.add(Side::Bid, p(42), 3, Count::from_contracts(4));
        b.add(Side::Ask, p(45), 4, Count::from_contracts(6));
        b.add(Side::Ask, p(47), 5, Count::from_contracts(1));
        assert_eq!(b.best_bid(), Some((p(42), Count::from_contracts(7))));
        assert_eq!(b.best_ask(), Some((p(45), Count::from_contracts(6))));
        let (yes, no) = b.levels();
        assert_eq!(
            yes,
            vec![
                (p(40), Count::from_contracts(5)),
                (p(42), Count::from_contracts(7))
            ]
        );
        // NO bids: 1 − 0.47 = 0.53, 1 − 0.45 = 0.55, ascending.
        assert_eq!(
            no,
            vec![
                (p(53), Count::from_contracts(1)),
                (p(55), Count::from_contracts(6))
            ]
        );
        assert_eq!(b.crossing(Side::Ask, p(41)), vec![(p(42), 2), (p(42), 3)]);
        assert_eq!(b.crossing(Side::Bid, p(47)), vec![(p(45), 4), (p(47), 5)]);
        assert!(b.crosses(Side::Bid, p(45)) && !b.crosses(Side::Bid, p(44)));
        b.reduce(Side::Bid, p(42), 2, Count::from_contracts(3), true);
        assert_eq!(b.crossing(Side::Ask, p(42)), vec![(p(42), 3)]);
        b.reduce(Side::Bid, p(42), 3, Count::from_contracts(1), false);
        assert_eq!(b.best_bid(), Some((p(42), Count::from_contracts(3))));
        b.reduce(Side::Bid, p(42), 3, Count::from_contracts(3), true);
        assert_eq!(b.best_bid(), Some((p(40), Count::from_contracts(5))));
    }
}
