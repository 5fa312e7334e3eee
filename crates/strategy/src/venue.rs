//! The execution venue behind a trait: replay simulates it from recorded rows
//! ([`crate::replay::ReplayVenue`]); live trading will implement it over the exchange.

use pipeline::money::Count;
use pipeline::schema::Outcome;
use pipeline::MarketTicker;

use crate::types::{Fill, Order};

/// What a venue tells the runtime, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum VenueEvent {
    Fill(Fill),
    /// The order is finished: `filled` executed, the rest (`cancelled`) will never execute.
    Done {
        order_id: u64,
        market: MarketTicker,
        filled: Count,
        cancelled: Count,
        reason: String,
    },
    /// The market settled: positions in it pay out and stop counting as open.
    Settled {
        market: MarketTicker,
        outcome: Outcome,
        ts_ms: i64,
    },
}

/// Why a venue refused an order outright.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    #[error("order {id}: {msg}")]
    Rejected { id: u64, msg: String },
}

/// Where orders go. `submit` acknowledges (or rejects) an order; what happens to it later
/// arrives through `poll`.
pub trait Venue {
    fn submit(&mut self, order: Order, now_ms: i64) -> Result<(), VenueError>;
    /// Events since the last poll, oldest first.
    fn poll(&mut self, now_ms: i64) -> Vec<VenueEvent>;
}

/// The runtime's time source. Strategy code never reads the wall clock: replay sets the
/// clock to each row's `ts_ms`; live supplies the system clock.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// A clock that says what it was last set to (replay, tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManualClock(pub i64);

impl ManualClock {
    pub fn set(&mut self, ts_ms: i64) {
        self.0 = ts_ms;
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}
