//! Allocation-free reads of a market's book for bulk recorders (`kalshi_sim generate`).
//!
//! A child module of `engine`, so it reads the engine's private state directly and adds
//! nothing to the engine's own file.

use pipeline::money::{Count, Price};

use super::{Engine, MarketStatus};

/// A market's top of book and activity as [`Engine::book_into`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookView {
    pub status: MarketStatus,
    pub last_price: Option<Price>,
    /// Cumulative traded contracts.
    pub volume: Count,
}

impl Engine {
    /// Fills `yes` with the market's YES bids and `no` with its NO bids (at NO-leg prices),
    /// each best (highest) first, at most `depth` levels, reusing the buffers' memory.
    /// `None` (buffers cleared) for an unknown ticker.
    pub fn book_into(
        &self,
        ticker: &str,
        depth: usize,
        yes: &mut Vec<(Price, Count)>,
        no: &mut Vec<(Price, Count)>,
    ) -> Option<BookView> {
        yes.clear();
        no.clear();
        let m = &self.markets[*self.index.get(ticker)?];
        yes.extend(
            m.book
                .bids
                .iter()
                .rev()
                .take(depth)
                .map(|(p, l)| (*p, l.total)),
        );
        // An ask at YES price p is a NO bid at 1 − p: the lowest ask is the best NO bid.
        no.extend(
            m.book
                .asks
                .iter()
                .take(depth)
                .map(|(p, l)| (p.complement(), l.total)),
        );
        Some(BookView {
            status: m.info.status,
            last_price: m.last_price,
            volume: m.volume,
        })
    }
}
