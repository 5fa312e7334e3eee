//! The replay's REST API under `/trade-api/v2`: exchange status, series, events, markets
//! and order books as the replay stands at its current time, with Kalshi's shapes (the
//! `serve` wire types, filters and pagination), the same request signing on `/portfolio/*`,
//! and the same rate limits. Nothing trades in a replay: the portfolio is empty and orders
//! are refused (`trading_active` is false).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use pipeline::auth::{verify, HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use pipeline::money::{Count, Money};
use serde_json::json;

use super::state::{MarketState, State as ReplayState};
use super::Shared;
use crate::engine::naming::rfc3339;
use crate::engine::{EngineConfig, MarketInfo};
use crate::server::ratelimit::classify;
use crate::server::rest::{
    depth, fallback, market_key, ok, page, status_filter, ApiError, ApiResult, MarketFilter, Query,
};
use crate::server::REST_PREFIX;
use crate::wire;

/// Checks Kalshi's three signing headers against the registered key.
pub(crate) fn authenticate(
    s: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let fail = |d: &str| {
        tracing::info!(method, path, reason = d, "authentication failed");
        ApiError::auth(d)
    };
    let (Some(key), Some(ts), Some(sig)) =
        (h(HEADER_KEY), h(HEADER_TIMESTAMP), h(HEADER_SIGNATURE))
    else {
        return Err(fail("MISSING_AUTHENTICATION_HEADERS"));
    };
    let Some(pk) = s.users.get(key) else {
        return Err(fail("API_KEY_NOT_FOUND"));
    };
    verify(pk, ts, method, path, sig).map_err(|_| fail("INCORRECT_API_KEY_SIGNATURE"))
}

/// Authentication on private paths, then rate limits.
async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let key = req
        .headers()
        .get(HEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_string();
    let private = ["/portfolio", "/account"]
        .iter()
        .any(|p| path.starts_with(&format!("{REST_PREFIX}{p}")));
    if private {
        if let Err(e) = authenticate(&s, method.as_str(), &path, req.headers()) {
            return e.into_response();
        }
    }
    let (bucket, cost) = classify(&method, &path);
    if !s.limiter.try_take(&key, bucket, cost) {
        return ApiError::RateLimited.into_response();
    }
    next.run(req).await
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let p = |s: &str| format!("{REST_PREFIX}{s}");
    Router::new()
        .route(&p("/exchange/status"), get(exchange_status))
        .route(
            &p("/exchange/user_data_timestamp"),
            get(user_data_timestamp),
        )
        .route(&p("/series"), get(series_list))
        .route(&p("/series/{series}"), get(series_one))
        .route(&p("/events"), get(events))
        .route(&p("/events/{event}"), get(event_one))
        .route(&p("/markets"), get(markets))
        .route(&p("/markets/orderbooks"), get(orderbooks))
        .route(&p("/markets/{ticker}"), get(market_one))
        .route(&p("/markets/{ticker}/orderbook"), get(orderbook))
        .route(&p("/account/limits"), get(account_limits))
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
        )
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .fallback(fallback)
        .with_state(shared)
}

async fn exchange_status() -> ApiResult {
    ok(json!({
        "exchange_active": true,
        "trading_active": false,
        "exchange_estimated_resume_time": null,
        "intra_exchange_transfers_active": false,
        "exchange_index_statuses": [{
            "exchange_index": 0, "description": "kalshi_sim replay",
            "exchange_active": true, "trading_active": false
        }]
    }))
}

async fn user_data_timestamp(State(s): State<Arc<Shared>>) -> ApiResult {
    let now = s.lock().now_ms;
    ok(json!({ "as_of_time": rfc3339(now) }))
}

fn market_wire(st: &ReplayState, m: &MarketState) -> wire::Market {
    let info = m.info(st.now_ms, &st.timing);
    wire::Market::new(
        &info,
        &m.ticker_state(st.now_ms),
        st.timing.determination_delay_ms,
    )
}

/// Markets listed now, with their state now.
fn listed(st: &ReplayState) -> Vec<(MarketInfo, &MarketState)> {
    st.markets
        .values()
        .filter(|m| m.listed_ms <= st.now_ms)
        .map(|m| (m.info(st.now_ms, &st.timing), m))
        .collect()
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

async fn series_list(State(s): State<Arc<Shared>>) -> ApiResult {
    let st = s.lock();
    let names: std::collections::BTreeSet<&str> =
        st.markets.values().map(|m| m.series.as_str()).collect();
    let list: Vec<wire::Series> = names
        .into_iter()
        .filter_map(|n| series_json(&st, n))
        .collect();
    ok(json!({ "series": list }))
}

async fn series_one(State(s): State<Arc<Shared>>, Path(series): Path<String>) -> ApiResult {
    let r = series_json(&s.lock(), &series);
    match r {
        Some(x) => ok(json!({ "series": x })),
        None => Err(ApiError::not_found(format!("series {series} not found"))),
    }
}

async fn markets(State(s): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let filter = MarketFilter::parse(&q)?;
    let st = s.lock();
    let items: Vec<(String, wire::Market)> = listed(&st)
        .into_iter()
        .filter(|(info, _)| filter.matches(info))
        .map(|(info, m)| (market_key(&info), market_wire(&st, m)))
        .collect();
    let (markets, cursor) = page(items, &q, 100, 1000)?;
    ok(json!({ "markets": markets, "cursor": cursor }))
}

fn not_found(ticker: &str) -> ApiError {
    ApiError::new(
        404,
        "market_not_found",
        "market not found",
        ticker.to_string(),
    )
}

async fn market_one(State(s): State<Arc<Shared>>, Path(ticker): Path<String>) -> ApiResult {
    let st = s.lock();
    match st.listed(&ticker) {
        Some(m) => ok(json!({ "market": market_wire(&st, m) })),
        None => Err(not_found(&ticker)),
    }
}

fn book_json(m: &MarketState, depth: usize) -> wire::OrderbookFp {
    let (yes, no) = m.book.as_ref().map(|b| b.levels()).unwrap_or_default();
    wire::OrderbookFp {
        yes_dollars: wire::levels(&wire::top(yes, depth)),
        no_dollars: wire::levels(&wire::top(no, depth)),
    }
}

async fn orderbook(
    State(s): State<Arc<Shared>>,
    Path(ticker): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let d = depth(&q)?;
    let st = s.lock();
    match st.listed(&ticker) {
        Some(m) => ok(json!({ "orderbook_fp": book_json(m, d) })),
        None => Err(not_found(&ticker)),
    }
}

async fn orderbooks(State(s): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let tickers = q.list("tickers");
    if tickers.is_empty() || tickers.len() > 100 {
        return Err(ApiError::bad("tickers: give 1 to 100 market tickers"));
    }
    let d = depth(&q)?;
    let st = s.lock();
    let books = tickers
        .iter()
        .map(|t| {
            st.listed(t)
                .map(|m| json!({ "ticker": t, "orderbook_fp": book_json(m, d) }))
                .ok_or_else(|| not_found(t))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ok(json!({ "orderbooks": books }))
}

async fn events(State(s): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let status = status_filter(&q)?;
    let nested = q.flag("with_nested_markets")?;
    let series = q.get("series_ticker").map(str::to_string);
    let wanted = q.list("event_ticker");
    let min_close = q.int("min_close_ts")?;
    let st = s.lock();
    let mut by_event: BTreeMap<String, Vec<(MarketInfo, &MarketState)>> = BTreeMap::new();
    for (info, m) in listed(&st) {
        by_event
            .entry(info.event_ticker.clone())
            .or_default()
            .push((info, m));
    }
    let items: Vec<(String, wire::EventData)> = by_event
        .into_values()
        .filter(|ms| status.is_none_or(|f| ms.iter().any(|(i, _)| f(i.status))))
        .filter(|ms| series.as_ref().is_none_or(|x| ms[0].0.series.as_str() == x))
        .filter(|ms| wanted.is_empty() || wanted.contains(&ms[0].0.event_ticker))
        .filter(|ms| {
            min_close.is_none_or(|t| ms.iter().any(|(i, _)| i.close_ms.div_euclid(1000) >= t))
        })
        .map(|ms| {
            let markets = nested.then(|| ms.iter().map(|(_, m)| market_wire(&st, m)).collect());
            let updated = ms
                .iter()
                .map(|(i, _)| i.updated_ms)
                .max()
                .unwrap_or(st.now_ms);
            (
                market_key(&ms[0].0),
                wire::EventData::new(&ms[0].0, markets, updated),
            )
        })
        .collect();
    let (events, cursor) = page(items, &q, 200, 200)?;
    ok(json!({ "events": events, "cursor": cursor }))
}

async fn event_one(
    State(s): State<Arc<Shared>>,
    Path(event): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let nested = q.flag("with_nested_markets")?;
    let st = s.lock();
    let ms: Vec<(MarketInfo, &MarketState)> = listed(&st)
        .into_iter()
        .filter(|(i, _)| i.event_ticker == event)
        .collect();
    if ms.is_empty() {
        return Err(ApiError::not_found(format!("event {event} not found")));
    }
    let markets: Vec<wire::Market> = ms.iter().map(|(_, m)| market_wire(&st, m)).collect();
    let updated = ms.iter().map(|(i, _)| i.updated_ms).max().unwrap_or(0);
    let ev = wire::EventData::new(&ms[0].0, nested.then(|| markets.clone()), updated);
    ok(json!({ "event": ev, "markets": markets }))
}

async fn account_limits(State(s): State<Arc<Shared>>) -> ApiResult {
    let c = s.limiter.config();
    ok(json!({
        "usage_tier": if c.enabled { "simulated" } else { "unlimited" },
        "read": { "refill_rate": c.read_per_s, "bucket_capacity": c.read_capacity },
        "write": { "refill_rate": c.write_per_s, "bucket_capacity": c.write_capacity },
        "grants": [],
    }))
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
