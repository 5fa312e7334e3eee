//! Core of the Kalshi edge pipeline: fixed-point money, identifiers, the canonical file formats
//! (snapshot/v1, markets sidecar, labels/v1, strategy/v1), snapshot IO, configuration and
//! secrets. Everything here is free of libtorch; the model lives in `edge_model`.

pub mod auth;
pub mod config;
pub mod dataset;
pub mod features;
pub mod ids;
pub mod labels;
pub mod metrics;
pub mod money;
pub mod schema;
pub mod secrets;
pub mod snapshot;

pub use ids::{ClientOrderId, MarketTicker, OrderId, SeriesTicker};
pub use money::{trading_fee, Count, FeeMultiplier, FixedError, Liquidity, Money, Price};
