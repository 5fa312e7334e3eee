//! A local Kalshi-compatible exchange for tests, the demo and paper trading.
//!
//! - [`engine`]: the exchange as a deterministic state machine (markets, matching, fees,
//!   positions, settlement), driven by an injected clock.

pub mod engine;
