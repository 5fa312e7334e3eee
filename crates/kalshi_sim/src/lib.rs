//! A local Kalshi-compatible exchange simulator (see ARCHITECTURE.md).
