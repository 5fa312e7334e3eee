//! The replay's REST API under `/trade-api/v2`: exchange status, series, events, markets
//! and order books as the replay stands at its current time, with Kalshi's shapes (the
//! `serve` wire types, filters and pagination), the same request signing on `/portfolio/*`,
//! and the same rate limits (all in [`crate::http_common`], over the replay's `State`
//! as a `MarketView`). Nothing trades in a replay: the portfolio is empty and orders
//! are refused (`trading_active` is false).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::Router;
use pipeline::money::{Count, Money};
use rsa::RsaPublicKey;
use serde_json::json;

use super::state::{MarketState, State as ReplayState};
use super::Shared;
use crate::engine::{EngineConfig, Levels, MarketInfo};
use crate::faults::Faults;
use crate::http_common::{rest_path, rest_router, Front, MarketView, Server};
use crate::server::rest::{ok, ApiError, ApiResult};
use crate::wire;

impl Server for Shared {
    type Event = super::state::Event;
    type Caller = ();
    const DESCRIPTION: &'static str = "kalshi_sim replay";
    const TRADING: bool = false;

    fn front(&self) -> &Front<Self::Event> {
        &self.front
    }

    fn faults(&self) -> Option<&Faults> {
        None
    }

    fn user(&self, key_id: &str) -> Option<((), RsaPublicKey)> {
        self.users.get(key_id).map(|pk| ((), pk.clone()))
    }

    fn read<R>(&self, f: impl FnOnce(&dyn MarketView) -> R) -> (R, u64) {
        let st = self.lock();
        (f(&*st), st.batch_no)
    }
}

/// Markets listed now, with their state now.
impl MarketView for ReplayState {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn markets(&self) -> Vec<Cow<'_, MarketInfo>> {
        self.markets
            .values()
            .filter(|m| m.listed_ms <= self.now_ms)
            .map(|m| Cow::Owned(m.info(self.now_ms, &self.timing)))
            .collect()
    }
    fn market(&self, ticker: &str) -> Option<Cow<'_, MarketInfo>> {
        self.listed(ticker)
            .map(|m| Cow::Owned(m.info(self.now_ms, &self.timing)))
    }
    fn wire(&self, info: &MarketInfo) -> wire::Market {
        let m = &self.markets[info.ticker.as_str()];
        wire::Market::new(
            info,
            &m.ticker_state(self.now_ms),
            self.timing.determination_delay_ms,
        )
    }
    fn levels(&self, ticker: &str) -> Option<(Levels, Levels)> {
        self.listed(ticker)
            .map(|m| m.book.as_ref().map(|b| b.levels()).unwrap_or_default())
    }
    fn series_list(&self) -> Vec<wire::Series> {
        let names: BTreeSet<&str> = self.markets.values().map(|m| m.series.as_str()).collect();
        names
            .into_iter()
            .filter_map(|n| series_json(self, n))
            .collect()
    }
    fn series(&self, name: &str) -> Option<wire::Series> {
        series_json(self, name)
    }
}

fn series_json(st: &ReplayState, series: &str) -> Option<wire::Series> {
    let ms: Vec<&MarketState> = st
        .markets
        .values()
        .filter(|m| m.series == series && m.listed_ms <= st.now_ms)
        .collect();
    let first = ms.first()?;
    let volume: Count = ms
        .iter()
        .map(|m| m.stats.volume.unwrap_or(Count::ZERO))
        .sum();
    let cfg = EngineConfig {
        series: pipeline::SeriesTicker::new(series),
        title: first.title.clone(),
        market_duration_ms: (first.close_ms - first.open_ms).max(1),
        ..EngineConfig::default()
    };
    Some(wire::Series::new(&cfg, volume, st.now_ms))
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let p = rest_path;
    let own = Router::new()
        .route(&p("/portfolio/balance"), get(balance))
        .route(&p("/portfolio/positions"), get(positions))
        .route(&p("/portfolio/orders"), get(orders))
        .route(&p("/portfolio/fills"), get(fills))
        .route(&p("/portfolio/settlements"), get(settlements))
        .route(
            &p("/portfolio/events/orders"),
            post(refuse_orders).delete(refuse_orders),
        )
        .route(
            &p("/portfolio/events/orders/batched"),
            post(refuse_orders).delete(refuse_orders),
        )
        .route(&p("/portfolio/events/orders/{id}"), delete(refuse_orders))
        .route(
            &p("/portfolio/orders/{id}"),
            get(order_not_found).delete(refuse_orders),
        );
    rest_router(shared, own)
}

async fn balance(State(s): State<Arc<Shared>>) -> ApiResult {
    let now = s.lock().now_ms;
    let cash: Money = s.initial_balance;
    ok(json!({
        "balance": cash.floor_to_cent().micros() / 10_000,
        "balance_dollars": cash.to_dollars(),
        "portfolio_value": 0,
        "updated_ts": now.div_euclid(1000),
        "balance_breakdown": [{ "exchange_index": 0, "balance": cash.to_dollars() }],
    }))
}

async fn positions() -> ApiResult {
    ok(json!({ "market_positions": [], "event_positions": [], "cursor": "" }))
}

async fn orders() -> ApiResult {
    ok(json!({ "orders": [], "cursor": "" }))
}

async fn fills() -> ApiResult {
    ok(json!({ "fills": [], "cursor": "" }))
}

async fn settlements() -> ApiResult {
    ok(json!({ "settlements": [], "cursor": "" }))
}

async fn order_not_found(Path(id): Path<String>) -> ApiResult {
    Err(ApiError::not_found(format!("order {id} not found")))
}

async fn refuse_orders() -> ApiResult {
    Err(ApiError::new(
        400,
        "trading_unavailable",
        "trading is not available in a replay",
        "kalshi_sim replay serves recorded market data only; use `kalshi_sim serve` to trade",
    ))
}
