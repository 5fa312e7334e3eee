//! REST endpoints under `/trade-api/v2` (API.md §4), with Kalshi's error envelope, auth on
//! `/portfolio/*`, token-bucket rate limits and injected HTTP faults. The request helpers
//! (errors, queries, pages, filters) are here; the gate and the market-data endpoints the
//! replay shares are in [`crate::http_common`], over the engine's markets (`LiveView`);
//! the historical tier, trades and the portfolio are the simulator's own.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pipeline::auth::HEADER_KEY;
use pipeline::money::{Count, Money, Price};
use rsa::RsaPublicKey;
use serde_json::{json, Value};

use super::ratelimit::Bucket;
use super::{Core, Shared};
use crate::engine::naming::rfc3339;
use crate::engine::{AccountId, Levels, MarketInfo, MarketStatus, OrderError, OrderStatus};
use crate::faults::{Faults, LoseMode};
use crate::http_common::{
    list_markets, one_market, rest_path, rest_router, Front, MarketView, Server,
};
use crate::wire::{self, BadRequest, ErrorBody};

/// An error answer: Kalshi's envelope, or the bare 429 body.
#[derive(Debug)]
pub(crate) enum ApiError {
    Status(StatusCode, ErrorBody),
    RateLimited,
}

impl ApiError {
    pub(crate) fn new(
        status: u16,
        code: &str,
        message: &str,
        details: impl Into<String>,
    ) -> ApiError {
        ApiError::Status(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ErrorBody::new(code, message, details),
        )
    }
    pub(crate) fn bad(details: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_parameters", "invalid parameters", details)
    }
    pub(crate) fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", "not found", what)
    }
    pub(crate) fn auth(details: &str) -> ApiError {
        ApiError::new(
            401,
            "authentication_error",
            "authentication_error",
            format!("rpc error: code = Unauthenticated desc = {details}"),
        )
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> ApiError {
        ApiError::new(e.http_status(), e.code(), &e.to_string(), e.details())
    }
}

impl From<BadRequest> for ApiError {
    fn from(e: BadRequest) -> ApiError {
        ApiError::new(
            400,
            "invalid_parameters",
            "invalid request body",
            e.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Status(s, body) => (s, Json(body)).into_response(),
            ApiError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": "too many requests"})),
            )
                .into_response(),
        }
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

/// The query string as pairs (repeated keys kept).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(kk, v)| kk == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `k`, repeated or comma-separated.
    pub(crate) fn list(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(kk, _)| kk == k)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
    pub(crate) fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad(format!("{k}: {v:?} is not an integer")))
            })
            .transpose()
    }
    pub(crate) fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(ApiError::bad(format!("{k}: {v:?} is not a boolean"))),
        }
    }
    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.int("limit")? {
            None => Ok(default),
            Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
            Some(n) => Err(ApiError::bad(format!(
                "limit: {n} must be between 1 and {max}"
            ))),
        }
    }
}

/// One page of `items` (sorted ascending by key) after the query's cursor. The cursor is the
/// last returned key, opaque (base64url); empty on the last page.
pub(crate) fn page<T>(
    items: Vec<(String, T)>,
    q: &Query,
    default: usize,
    max: usize,
) -> Result<(Vec<T>, String), ApiError> {
    let limit = q.limit(default, max)?;
    let after = match q.get("cursor") {
        None => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::bad(format!("cursor: {c:?} is not a cursor this server issued"))
                })?,
        ),
    };
    let mut rest = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < limit {
        match rest.next() {
            Some((k, v)) => {
                last = Some(k);
                out.push(v);
            }
            None => break,
        }
    }
    let cursor = match (rest.peek(), last) {
        (Some(_), Some(k)) => URL_SAFE_NO_PAD.encode(k.as_bytes()),
        _ => String::new(),
    };
    Ok((out, cursor))
}

/// Newest-first ordering key from a sequence number.
fn newest_first(seq: u64) -> String {
    format!("{:020}", u64::MAX - seq)
}

pub(crate) fn market_key(m: &MarketInfo) -> String {
    format!("{:020}|{}", m.open_ms.max(0), m.ticker)
}

/// The authenticated caller of a `/portfolio` request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub account: AccountId,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let p = rest_path;
    let own = Router::new()
        .route(&p("/markets/trades"), get(trades))
        .route(&p("/historical/cutoff"), get(historical_cutoff))
        .route(&p("/historical/markets"), get(historical_markets))
        .route(
            &p("/historical/markets/{ticker}"),
            get(historical_market_one),
        )
        .route(&p("/portfolio/balance"), get(balance))
        .route(&p("/portfolio/positions"), get(positions))
        .route(
            &p("/portfolio/orders"),
            get(orders).post(legacy).delete(legacy),
        )
        .route(&p("/portfolio/orders/batched"), post(legacy).delete(legacy))
        .route(&p("/portfolio/orders/{id}"), get(order_one).delete(legacy))
        .route(&p("/portfolio/fills"), get(fills))
        .route(&p("/portfolio/settlements"), get(settlements))
        .route(
            &p("/portfolio/events/orders"),
            post(create_order).delete(cancel_all),
        )
        .route(
            &p("/portfolio/events/orders/batched"),
            post(batch_create).delete(batch_cancel),
        )
        .route(&p("/portfolio/events/orders/{id}"), delete(cancel_order));
    rest_router(shared, own)
}

pub(crate) async fn fallback(method: Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        let mut to = path.trim_end_matches('/').to_string();
        if let Some(q) = uri.query() {
            to = format!("{to}?{q}");
        }
        return (
            StatusCode::MOVED_PERMANENTLY,
            [(axum::http::header::LOCATION, to)],
        )
            .into_response();
    }
    ApiError::not_found(format!("no route for {method} {path}")).into_response()
}

async fn legacy() -> ApiResult {
    Err(ApiError::new(
        410,
        "deprecated",
        "Please switch to the V2 endpoints",
        "use /portfolio/events/orders",
    ))
}

// -------------------------------------------------------------------------------------
// Exchange, series, events, markets (the endpoints in `http_common`), historical tier
// -------------------------------------------------------------------------------------

impl Server for Shared {
    type Event = crate::engine::Event;
    type Caller = Caller;
    const DESCRIPTION: &'static str = "kalshi_sim";
    const TRADING: bool = true;

    fn front(&self) -> &Front<Self::Event> {
        &self.front
    }

    fn faults(&self) -> Option<&Faults> {
        Some(&self.faults)
    }

    fn user(&self, key_id: &str) -> Option<(Caller, RsaPublicKey)> {
        self.with(|core| {
            core.users
                .get(key_id)
                .map(|u| (Caller { account: u.account }, u.public_key.clone()))
        })
        .0
    }

    fn read<R>(&self, f: impl FnOnce(&dyn MarketView) -> R) -> (R, u64) {
        self.with(|core| {
            let cutoff = cutoff_ms(self, core.engine.now_ms());
            f(&LiveView { core, cutoff })
        })
    }
}

/// The engine's markets; settled before `cutoff`: historical.
struct LiveView<'a> {
    core: &'a Core,
    cutoff: i64,
}

impl MarketView for LiveView<'_> {
    fn now_ms(&self) -> i64 {
        self.core.engine.now_ms()
    }
    fn markets(&self) -> Vec<Cow<'_, MarketInfo>> {
        self.core.engine.markets().map(Cow::Borrowed).collect()
    }
    fn market(&self, ticker: &str) -> Option<Cow<'_, MarketInfo>> {
        self.core.engine.market(ticker).map(Cow::Borrowed)
    }
    fn is_historical(&self, m: &MarketInfo) -> bool {
        is_historical(m, self.cutoff)
    }
    fn wire(&self, m: &MarketInfo) -> wire::Market {
        market_wire(self.core, m)
    }
    fn levels(&self, ticker: &str) -> Option<(Levels, Levels)> {
        self.core.engine.book_levels(ticker)
    }
    fn series_list(&self) -> Vec<wire::Series> {
        vec![series_json(self.core)]
    }
    fn series(&self, name: &str) -> Option<wire::Series> {
        (self.core.engine.config().series.as_str() == name).then(|| series_json(self.core))
    }
}

fn series_json(core: &Core) -> wire::Series {
    let volume: Count = core
        .engine
        .markets()
        .filter_map(|m| core.engine.ticker_state(m.ticker.as_str()))
        .map(|t| t.volume)
        .sum();
    wire::Series::new(core.engine.config(), volume, core.engine.now_ms())
}

fn market_wire(core: &Core, m: &MarketInfo) -> wire::Market {
    let st = core
        .engine
        .ticker_state(m.ticker.as_str())
        .expect("listed market has a ticker state");
    wire::Market::new(m, &st, core.engine.config().determination_delay_ms)
}

fn cutoff_ms(shared: &Shared, now: i64) -> i64 {
    now - shared.historical_age_ms
}

fn is_historical(m: &MarketInfo, cutoff: i64) -> bool {
    m.settled_ms.is_some_and(|t| t < cutoff)
}

/// `status` filter value → does a market match.
pub(crate) type StatusPredicate = fn(MarketStatus) -> bool;

pub(crate) fn status_filter(q: &Query) -> Result<Option<StatusPredicate>, ApiError> {
    Ok(match q.get("status") {
        None => None,
        Some("unopened") => Some(|s| s == MarketStatus::Initialized),
        Some("open") => Some(|s| s == MarketStatus::Active),
        Some("paused") => Some(|_| false),
        Some("closed") => Some(|s| s == MarketStatus::Closed || s == MarketStatus::Determined),
        Some("settled") => Some(|s| s == MarketStatus::Finalized),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "status: {other:?} must be one of unopened, open, paused, closed, settled (one per request)"
            )))
        }
    })
}

pub(crate) struct MarketFilter {
    status: Option<StatusPredicate>,
    series: Option<String>,
    events: Vec<String>,
    tickers: Vec<String>,
    created: (Option<i64>, Option<i64>),
    close: (Option<i64>, Option<i64>),
    settled: (Option<i64>, Option<i64>),
    mve_only: bool,
}

fn in_range(t: Option<i64>, (lo, hi): (Option<i64>, Option<i64>)) -> bool {
    if lo.is_none() && hi.is_none() {
        return true;
    }
    let Some(t) = t else { return false };
    let s = t.div_euclid(1000);
    lo.is_none_or(|lo| s >= lo) && hi.is_none_or(|hi| s <= hi)
}

impl MarketFilter {
    pub(crate) fn parse(q: &Query) -> Result<MarketFilter, ApiError> {
        let status = status_filter(q)?;
        let st = q.get("status");
        let created = (q.int("min_created_ts")?, q.int("max_created_ts")?);
        let close = (q.int("min_close_ts")?, q.int("max_close_ts")?);
        let settled = (q.int("min_settled_ts")?, q.int("max_settled_ts")?);
        let has = |r: (Option<i64>, Option<i64>)| r.0.is_some() || r.1.is_some();
        // Filter compatibility (API.md §4.1).
        if has(created) && !matches!(st, None | Some("unopened") | Some("open")) {
            return Err(ApiError::bad(
                "created_ts filters only combine with status unopened or open",
            ));
        }
        if has(close) && !matches!(st, None | Some("closed")) {
            return Err(ApiError::bad(
                "close_ts filters only combine with status closed",
            ));
        }
        if has(settled) && !matches!(st, None | Some("settled")) {
            return Err(ApiError::bad(
                "settled_ts filters only combine with status settled",
            ));
        }
        if [has(created), has(close), has(settled)]
            .iter()
            .filter(|x| **x)
            .count()
            > 1
        {
            return Err(ApiError::bad(
                "only one family of timestamp filters per request",
            ));
        }
        let mve_only = match q.get("mve_filter") {
            None | Some("exclude") => false,
            Some("only") => true,
            Some(o) => {
                return Err(ApiError::bad(format!(
                    "mve_filter: {o:?} must be only or exclude"
                )))
            }
        };
        Ok(MarketFilter {
            status,
            series: q.get("series_ticker").map(str::to_string),
            events: q.list("event_ticker"),
            tickers: q.list("tickers"),
            created,
            close,
            settled,
            mve_only,
        })
    }

    pub(crate) fn matches(&self, m: &MarketInfo) -> bool {
        !self.mve_only
            && self.status.is_none_or(|f| f(m.status))
            && self.series.as_ref().is_none_or(|s| m.series.as_str() == s)
            && (self.events.is_empty() || self.events.contains(&m.event_ticker))
            && (self.tickers.is_empty() || self.tickers.iter().any(|t| t == m.ticker.as_str()))
            && in_range(Some(m.created_ms), self.created)
            && in_range(Some(m.close_ms), self.close)
            && in_range(m.settled_ms, self.settled)
    }
}

async fn historical_markets(State(s): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> ApiResult {
    list_markets(&*s, raw, true)
}

async fn historical_market_one(
    State(s): State<Arc<Shared>>,
    Path(ticker): Path<String>,
) -> ApiResult {
    one_market(&*s, &ticker, true)
}

async fn historical_cutoff(State(s): State<Arc<Shared>>) -> ApiResult {
    let (now, origin) = s
        .with(|c| {
            (
                c.engine.now_ms(),
                c.engine.markets().next().map(|m| m.created_ms).unwrap_or(0),
            )
        })
        .0;
    // Only markets move to the historical tier here; trades, orders and fills stay live.
    ok(json!({
        "market_settled_ts": rfc3339(cutoff_ms(&s, now)),
        "trades_created_ts": rfc3339(origin),
        "orders_updated_ts": rfc3339(origin),
        "market_positions_last_updated_ts": rfc3339(origin),
    }))
}

pub(crate) fn depth(q: &Query) -> Result<usize, ApiError> {
    match q.int("depth")? {
        None => Ok(0),
        Some(d) if (0..=100).contains(&d) => Ok(d as usize),
        Some(d) => Err(ApiError::bad(format!(
            "depth: {d} must be between 0 and 100"
        ))),
    }
}

async fn trades(State(s): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let ticker = q.get("ticker").map(str::to_string);
    let (lo, hi) = (q.int("min_ts")?, q.int("max_ts")?);
    let (trades, cursor) = s
        .with(|core| {
            let items: Vec<(String, wire::TradeWire)> = core
                .engine
                .trades()
                .iter()
                .rev()
                .filter(|t| ticker.as_ref().is_none_or(|x| t.ticker.as_str() == x))
                .filter(|t| in_range(Some(t.ts_ms), (lo, hi)))
                .map(|t| (newest_first(t.seq), wire::TradeWire::new(t)))
                .collect();
            page(items, &q, 100, 1000)
        })
        .0?;
    ok(json!({ "trades": trades, "cursor": cursor }))
}

// -------------------------------------------------------------------------------------
// Portfolio reads
// -------------------------------------------------------------------------------------

async fn balance(State(s): State<Arc<Shared>>, Extension(c): Extension<Caller>) -> ApiResult {
    let (avail, value, now) = s
        .with(|core| {
            let e = &core.engine;
            let avail = e.available(c.account);
            // Open positions marked at the bid of the side held.
            let mut value = Money::ZERO;
            for (m, p) in e.positions_of(c.account) {
                if p.position.is_zero() || p.settled {
                    continue;
                }
                let st = e.ticker_state(m.ticker.as_str()).expect("market");
                let bid = if p.position.centis() > 0 {
                    st.yes_bid.map(|x| x.0)
                } else {
                    st.yes_ask.map(|x| x.0.complement())
                };
                value += Money::notional(bid.unwrap_or(Price::ZERO), p.position.abs());
            }
            (avail, value, e.now_ms())
        })
        .0;
    ok(json!({
        "balance": avail.floor_to_cent().micros() / 10_000,
        "balance_dollars": avail.to_dollars(),
        "portfolio_value": value.floor_to_cent().micros() / 10_000,
        "updated_ts": now.div_euclid(1000),
        "balance_breakdown": [{ "exchange_index": 0, "balance": avail.to_dollars() }],
    }))
}

async fn positions(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let ticker = q.get("ticker").map(str::to_string);
    let event = q.get("event_ticker").map(str::to_string);
    let settled_filter = match q.get("settlement_status").unwrap_or("unsettled") {
        "all" => None,
        "unsettled" => Some(false),
        "settled" => Some(true),
        o => {
            return Err(ApiError::bad(format!(
                "settlement_status: {o:?} must be all, unsettled or settled"
            )))
        }
    };
    let count_filter = q.list("count_filter");
    for f in &count_filter {
        if f != "position" && f != "total_traded" {
            return Err(ApiError::bad(format!(
                "count_filter: {f:?} must be position or total_traded"
            )));
        }
    }
    let (mps, eps, cursor) = s
        .with(|core| {
            let items: Vec<(String, (String, String, crate::engine::Position))> = core
                .engine
                .positions_of(c.account)
                .into_iter()
                .filter(|(m, p)| {
                    ticker.as_ref().is_none_or(|t| m.ticker.as_str() == t)
                        && event.as_ref().is_none_or(|e| m.event_ticker == *e)
                        && settled_filter.is_none_or(|want| p.settled == want)
                        && (count_filter.is_empty()
                            || count_filter.iter().any(|f| match f.as_str() {
                                "position" => !p.position.is_zero(),
                                _ => p.total_traded != Money::ZERO,
                            }))
                })
                .map(|(m, p)| {
                    (
                        m.ticker.to_string(),
                        (m.ticker.to_string(), m.event_ticker.clone(), p.clone()),
                    )
                })
                .collect();
            let (pg, cursor) = page(items, &q, 100, 1000)?;
            let mps: Vec<wire::MarketPositionWire> = pg
                .iter()
                .map(|(t, _, p)| wire::MarketPositionWire::new(t, p))
                .collect();
            let mut by_event: std::collections::BTreeMap<&str, Vec<&crate::engine::Position>> =
                Default::default();
            for (_, e, p) in &pg {
                by_event.entry(e.as_str()).or_default().push(p);
            }
            let eps: Vec<wire::EventPositionWire> = by_event
                .iter()
                .map(|(e, ps)| wire::EventPositionWire::new(e, ps))
                .collect();
            Ok::<_, ApiError>((mps, eps, cursor))
        })
        .0?;
    ok(json!({ "market_positions": mps, "event_positions": eps, "cursor": cursor }))
}

async fn orders(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let ticker = q.get("ticker").map(str::to_string);
    let events = q.list("event_ticker");
    if events.len() > 10 {
        return Err(ApiError::bad("event_ticker: at most 10"));
    }
    let (lo, hi) = (q.int("min_ts")?, q.int("max_ts")?);
    let status = match q.get("status") {
        None => None,
        Some("resting") => Some(OrderStatus::Resting),
        Some("canceled") => Some(OrderStatus::Canceled),
        Some("executed") => Some(OrderStatus::Executed),
        Some(o) => {
            return Err(ApiError::bad(format!(
                "status: {o:?} must be resting, canceled or executed"
            )))
        }
    };
    let seed = s.seed;
    let (orders, cursor) = s
        .with(|core| {
            let e = &core.engine;
            let items: Vec<(String, wire::OrderWire)> = e
                .orders_of(c.account)
                .filter(|o| ticker.as_ref().is_none_or(|t| o.ticker.as_str() == t))
                .filter(|o| {
                    events.is_empty()
                        || e.market(o.ticker.as_str())
                            .is_some_and(|m| events.contains(&m.event_ticker))
                })
                .filter(|o| status.is_none_or(|st| o.status == st))
                .filter(|o| in_range(Some(o.created_ms), (lo, hi)))
                .map(|o| (newest_first(o.seq), wire::OrderWire::new(o, seed)))
                .collect();
            let mut items = items;
            items.sort_by(|a, b| a.0.cmp(&b.0));
            page(items, &q, 100, 1000)
        })
        .0?;
    ok(json!({ "orders": orders, "cursor": cursor }))
}

async fn order_one(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let seed = s.seed;
    let r = s
        .with(|core| {
            core.engine
                .order(&id)
                .filter(|o| o.account == c.account)
                .map(|o| wire::OrderWire::new(o, seed))
        })
        .0;
    match r {
        Some(o) => ok(json!({ "order": o })),
        None => Err(ApiError::not_found(format!("order {id} not found"))),
    }
}

async fn fills(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let ticker = q.get("ticker").map(str::to_string);
    let order_id = q.get("order_id").map(str::to_string);
    let (lo, hi) = (q.int("min_ts")?, q.int("max_ts")?);
    let (fills, cursor) = s
        .with(|core| {
            let items: Vec<(String, wire::FillWire)> = core
                .engine
                .fills_of(c.account)
                .filter(|f| ticker.as_ref().is_none_or(|t| f.ticker.as_str() == t))
                .filter(|f| order_id.as_ref().is_none_or(|o| f.order_id.as_str() == o))
                .filter(|f| in_range(Some(f.ts_ms), (lo, hi)))
                .map(|f| (newest_first(f.seq), wire::FillWire::new(f)))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            page(items, &q, 100, 1000)
        })
        .0?;
    ok(json!({ "fills": fills, "cursor": cursor }))
}

async fn settlements(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let ticker = q.get("ticker").map(str::to_string);
    let event = q.get("event_ticker").map(str::to_string);
    let (lo, hi) = (q.int("min_ts")?, q.int("max_ts")?);
    let (list, cursor) = s
        .with(|core| {
            let items: Vec<(String, wire::SettlementWire)> = core
                .engine
                .settlements()
                .iter()
                .rev()
                .filter(|x| x.account == c.account)
                .filter(|x| ticker.as_ref().is_none_or(|t| x.ticker.as_str() == t))
                .filter(|x| event.as_ref().is_none_or(|e| x.event_ticker == *e))
                .filter(|x| in_range(Some(x.settled_ms), (lo, hi)))
                .map(|x| (newest_first(x.seq), wire::SettlementWire::new(x)))
                .collect();
            page(items, &q, 100, 1000)
        })
        .0?;
    ok(json!({ "settlements": list, "cursor": cursor }))
}

// -------------------------------------------------------------------------------------
// Orders (V2)
// -------------------------------------------------------------------------------------

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("request body: {e}")))
}

fn place_one(
    s: &Shared,
    account: AccountId,
    item: &Value,
) -> Result<(crate::engine::Order, i64), ApiError> {
    let body: wire::CreateOrderV2Request = serde_json::from_value(item.clone())
        .map_err(|e| ApiError::bad(format!("request body: {e}")))?;
    let req = body.to_request()?;
    let r = s
        .with(|core| {
            let now = core.engine.now_ms();
            core.engine.place_order(account, req).map(|o| (o, now))
        })
        .0?;
    Ok(r)
}

/// Ends the connection without a response (the order was accepted): unwinds this
/// connection's task without running the panic hook, so hyper drops the socket.
fn lose_connection() -> ! {
    std::panic::resume_unwind(Box::new("kalshi_sim: order response lost on purpose"))
}

async fn create_order(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let v: Value = parse_body(&body)?;
    let (order, now) = place_one(&s, c.account, &v)?;
    tracing::debug!(order_id = %order.id, status = order.status.as_str(), "order placed");
    match s.faults.lose_order_response() {
        Some(LoseMode::ServerError) => {
            return Ok((StatusCode::INTERNAL_SERVER_ERROR, Body::empty()).into_response())
        }
        Some(LoseMode::CloseConnection) => lose_connection(),
        None => {}
    }
    Ok((
        StatusCode::CREATED,
        Json(wire::CreateOrderV2Response::new(&order, now)),
    )
        .into_response())
}

fn error_item(e: ApiError) -> Value {
    match e {
        ApiError::Status(_, b) => serde_json::to_value(b.error).unwrap_or(Value::Null),
        ApiError::RateLimited => {
            json!({"code": "too_many_requests", "message": "too many requests", "details": ""})
        }
    }
}

fn charge_extra(s: &Shared, key: &HeaderMap, items: usize, per_item: f64) -> Result<(), ApiError> {
    let extra = per_item * items.saturating_sub(1) as f64;
    if extra <= 0.0 {
        return Ok(());
    }
    let who = key
        .get(HEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous");
    if s.front.limiter.try_take(who, Bucket::Write, extra) {
        Ok(())
    } else {
        s.faults.count_rate_limited();
        Err(ApiError::RateLimited)
    }
}

fn max_batch(s: &Shared, per_item: f64) -> usize {
    let c = s.front.limiter.config();
    if c.enabled {
        ((c.write_capacity / per_item) as usize).max(1)
    } else {
        1000
    }
}

async fn batch_create(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let b: wire::BatchCreateRequest = parse_body(&body)?;
    let max = max_batch(&s, 10.0);
    if b.orders.is_empty() || b.orders.len() > max {
        return Err(ApiError::bad(format!("orders: give 1 to {max} orders")));
    }
    charge_extra(&s, &headers, b.orders.len(), 10.0)?;
    let mut out = Vec::new();
    for item in &b.orders {
        match place_one(&s, c.account, item) {
            Ok((o, now)) => out.push(
                serde_json::to_value(wire::CreateOrderV2Response::new(&o, now))
                    .unwrap_or(Value::Null),
            ),
            Err(e) => out.push(json!({
                "order_id": null,
                "client_order_id": item.get("client_order_id").cloned().unwrap_or(Value::Null),
                "error": error_item(e),
            })),
        }
    }
    Ok((StatusCode::CREATED, Json(json!({ "orders": out }))).into_response())
}

fn cancel_one(s: &Shared, account: AccountId, id: &str) -> Result<Value, ApiError> {
    let (order, reduced, now) = s
        .with(|core| {
            let now = core.engine.now_ms();
            core.engine
                .cancel_order(account, id)
                .map(|(o, r)| (o, r, now))
        })
        .0?;
    Ok(serde_json::to_value(wire::CancelOrderV2Response {
        order_id: order.id.to_string(),
        client_order_id: order
            .client_order_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
        reduced_by: reduced.to_fp_string(),
        ts_ms: now,
    })
    .unwrap_or(Value::Null))
}

async fn cancel_order(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(cancel_one(&s, c.account, &id)?)
}

async fn batch_cancel(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let b: wire::BatchCancelRequest = parse_body(&body)?;
    let ids: Vec<String> = match (b.orders, b.ids) {
        (Some(o), _) => o.into_iter().map(|x| x.order_id).collect(),
        (None, Some(ids)) => ids,
        (None, None) => return Err(ApiError::bad("orders: required")),
    };
    let max = max_batch(&s, 2.0);
    if ids.is_empty() || ids.len() > max {
        return Err(ApiError::bad(format!("orders: give 1 to {max} orders")));
    }
    charge_extra(&s, &headers, ids.len(), 2.0)?;
    let out: Vec<Value> = ids
        .iter()
        .map(|id| {
            cancel_one(&s, c.account, id).unwrap_or_else(|e| {
                json!({ "order_id": id, "client_order_id": null, "reduced_by": "0.00", "error": error_item(e) })
            })
        })
        .collect();
    ok(json!({ "orders": out }))
}

async fn cancel_all(State(s): State<Arc<Shared>>, Extension(c): Extension<Caller>) -> ApiResult {
    s.with(|core| core.engine.cancel_all(c.account, None));
    Ok(StatusCode::NO_CONTENT.into_response())
}
