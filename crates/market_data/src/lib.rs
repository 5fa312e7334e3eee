//! Kalshi REST + WebSocket client (see ARCHITECTURE.md).
