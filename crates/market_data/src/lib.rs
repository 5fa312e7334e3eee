//! Kalshi REST + WebSocket client (see ARCHITECTURE.md).
pub mod wire;
