//! A local Kalshi-compatible exchange for tests, the demo and paper trading (DESIGN.md §6).
//!
//! - [`engine`]: the exchange as a deterministic state machine (markets, market maker,
//!   matching, fees, positions, settlement), driven by an injected clock.
//! - [`wire`]: Kalshi's JSON shapes, written from the protocol document.
//! - [`server`]: REST + WebSocket on loopback ([`spawn`] → [`Sim`], [`SimHandle`]).
//! - [`faults`]: dropped connections, sequence gaps, 429/5xx bursts, delays, lost order
//!   responses, slow consumers: on command or on a schedule, counted.
//! - [`generate`]: days of history straight into the canonical snapshot, markets and labels
//!   files, with a tunable planted edge.
//! - [`keys`]: throwaway API keys written where the pipeline's config finds them.
//! - [`replay`]: recorded capture files served as the WebSocket stream, with REST market
//!   metadata ([`spawn_replay`] → [`Replay`]).

pub mod engine;
pub mod faults;
pub mod generate;
mod http_common;
pub mod keys;
pub mod replay;
pub mod server;
pub mod wire;
mod ws_common;

pub use faults::{Fault, FaultStats, LoseMode, ScheduledFault};
pub use replay::{
    spawn_replay, Replay, ReplayConfig, ReplayError, ReplayProgress, ReplayReport, Speed, StartMode,
};
pub use server::{
    spawn, ClockMode, KeySetup, PathSpec, RateLimitConfig, Sim, SimConfig, SimError, SimHandle,
    Tier, WsConfig, REST_PREFIX, WS_PATH,
};
