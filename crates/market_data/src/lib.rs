//! Kalshi REST + WebSocket client (see ARCHITECTURE.md).
pub mod backoff;
pub mod book;
pub mod capture;
pub mod rest;
pub mod sync;
pub mod wire;
pub mod ws;
