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

#[cfg(test)]
mod tests {
    use super::super::{EngineConfig, RandomWalk};
    use super::*;

    #[test]
    fn book_into_matches_book_levels_best_first() {
        let start = 1_790_000_100_000;
        let cfg = EngineConfig {
            seed: 5,
            start_ms: start,
            market_duration_ms: 60_000,
            listing_lead_ms: 60_000,
            ..EngineConfig::default()
        };
        let path = RandomWalk::new(5, start, 100_000.0, 9e-5, 1000);
        let mut e = Engine::new(cfg, Box::new(path));
        let (mut yes, mut no) = (Vec::new(), Vec::new());
        let mut checked = 0;
        for k in 0..120 {
            e.advance_to(start + k * 500);
            let Some(t) = e
                .markets()
                .find(|m| m.status == MarketStatus::Active)
                .map(|m| m.ticker.clone())
            else {
                continue;
            };
            let view = e.book_into(t.as_str(), 3, &mut yes, &mut no).unwrap();
            let (mut all_yes, mut all_no) = e.book_levels(t.as_str()).unwrap();
            all_yes.reverse();
            all_no.reverse();
            all_yes.truncate(3);
            all_no.truncate(3);
            assert_eq!((&yes, &no), (&all_yes, &all_no), "at {k}");
            let st = e.ticker_state(t.as_str()).unwrap();
            assert_eq!(yes.first().copied(), st.yes_bid);
            assert_eq!(
                no.first().map(|l| l.0.complement()),
                st.yes_ask.map(|a| a.0)
            );
            assert_eq!(
                (view.status, view.last_price, view.volume),
                (MarketStatus::Active, st.last_price, st.volume)
            );
            checked += 1;
        }
        assert!(checked > 100);
        assert!(e.book_into("NOPE", 3, &mut yes, &mut no).is_none());
        assert!(yes.is_empty() && no.is_empty());
    }
}
