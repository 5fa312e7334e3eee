//! Kalshi REST + WebSocket client (see ARCHITECTURE.md).
pub mod book;
pub mod capture;
pub mod sync;
pub mod wire;
