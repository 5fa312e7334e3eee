//! Kalshi REST + WebSocket client for the edge pipeline: request signing (via
//! `pipeline::auth`), hand-written wire types, pagination, rate limiting, retries, order-book
//! sync with sequence checking, and raw capture files.
//!
//! Code map (the data's path):
//! * [`wire`] — serde structs mirroring Kalshi's JSON (API.md). Fixed-point fields first,
//!   legacy integers as fallbacks, unknown fields ignored. Kept apart from domain types.
//! * [`rest`] — [`rest::RestClient`]: signed requests, token-bucket pacing, read retries,
//!   cursor pagination with a loop guard, V2 orders, idempotent order creation.
//! * [`ws`] — the WebSocket session task: signed upgrade, commands matched by id, watchdog,
//!   reconnect state machine, resubscription, resync on gaps.
//! * [`book`] — [`book::OrderBook`]: one market's bids (YES and NO), exact sizes.
//! * [`sync`] — [`sync::BookSync`]: pure sequence tracking over order-book frames (live or
//!   replayed), emitting book events; [`sync::TickerCheck`] cross-checks `ticker` frames.
//! * [`capture`] — `{"recv_ns", "frame"}` gzip JSONL reader and writer.
//! * [`backoff`] — capped, jittered exponential backoff.
//! * [`labels`] — [`labels::RestOutcomeSource`]: settled-market outcomes for `sync_labels`
//!   (`/markets?tickers=`, then `/historical/markets`).
//! * [`recorder`] — the `download_highres` recorder: discovery, subscriptions, the snapshot
//!   grid with gap/resync markers, the writer thread, the output-folder lock.
//!
//! Invariants:
//! * No float on the price/size path: prices, sizes and money are `pipeline::money` integers
//!   parsed from Kalshi's decimal strings.
//! * NO-side book levels are stored in NO-leg prices; the `use_yes_price` conversion is applied
//!   exactly once, on the way in, according to the subscription's recorded convention.
//! * A book is only *valid* between a snapshot and the next gap condition (sequence jump,
//!   delta before snapshot, negative level, buffer overflow, unsubscribe, disconnect).
//! * An order create is never re-sent unless the order is provably absent, and always with
//!   the same `client_order_id`.
//! * Libraries log with `tracing` and never print.

pub mod backoff;
pub mod book;
pub mod capture;
pub mod labels;
pub mod recorder;
pub mod rest;
pub mod sync;
pub mod wire;
pub mod ws;

pub use book::{NoPriceConvention, OrderBook, TopOfBook};
pub use capture::{CaptureReader, CaptureRecord, CaptureWriter};
pub use labels::{OutcomeSourceError, RestOutcomeSource};
pub use rest::{CreateOutcome, RestClient, RestConfig, RestError};
pub use sync::{BookEvent, BookSync, InvalidReason, ResyncNeeded, SyncCounters, TickerCheck};
pub use ws::{SubscribeRequest, WsConfig, WsEvent, WsHandle};
