//! The HTTP side both servers share, the simulator (`serve`, [`crate::server`]) and the
//! replay ([`crate::replay`]): what a server is to its front ends ([`Server`], read through a
//! [`MarketView`]), request signing, the gate before every REST handler (injected faults,
//! authentication, rate limits), the market-data endpoints (exchange status, series,
//! events, markets, order books, account limits) and the setup of a listening server (API
//! key, listener, accessors). The request helpers (`ApiError`, `Query`, `page`, filters)
//! live in `server::rest`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pipeline::auth::{verify, HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use pipeline::secrets::{ApiKeyId, PrivateKey};
use rsa::RsaPublicKey;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::engine::naming::rfc3339;
use crate::engine::{Levels, MarketInfo};
use crate::faults::{Faults, HttpFault};
use crate::keys::{self, KeyError};
use crate::server::ratelimit::{classify, Limiter};
use crate::server::rest::{
    depth, fallback, market_key, ok, page, status_filter, ApiError, ApiResult, MarketFilter, Query,
};
use crate::server::{KeySetup, RateLimitConfig, WsConfig, REST_PREFIX};
use crate::wire;
use crate::ws_common::Batch;

/// The markets a server shows, read consistently (under its lock).
pub(crate) trait MarketView {
    /// The server's time now (Unix ms).
    fn now_ms(&self) -> i64;
    /// Every market REST shows, in the order `/markets` and `/events` list them.
    fn markets(&self) -> Vec<Cow<'_, MarketInfo>>;
    /// One market REST shows (also: the markets a WebSocket subscription may name).
    fn market(&self, ticker: &str) -> Option<Cow<'_, MarketInfo>>;
    /// Whether a market has moved to the historical tier (`/historical/markets`).
    fn is_historical(&self, _m: &MarketInfo) -> bool {
        false
    }
    /// The REST shape of one of [`MarketView::markets`].
    fn wire(&self, m: &MarketInfo) -> wire::Market;
    /// A market's book, `(yes bids, no bids)` ascending, NO bids at NO-leg prices.
    fn levels(&self, ticker: &str) -> Option<(Levels, Levels)>;
    /// `/series`.
    fn series_list(&self) -> Vec<wire::Series>;
    /// `/series/{series}`.
    fn series(&self, name: &str) -> Option<wire::Series>;
}

/// What every server holds for its front ends.
pub(crate) struct Front<E> {
    /// Event batches, to the WebSocket connections.
    pub tx: broadcast::Sender<Arc<Batch<E>>>,
    pub limiter: Limiter,
    pub ws: WsConfig,
    /// Turns `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl<E> Front<E> {
    /// `queue_capacity`: batches a connection may fall behind (at least 1).
    pub(crate) fn new(
        rate_limit: RateLimitConfig,
        ws: WsConfig,
        queue_capacity: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Front<E> {
        Front {
            tx: broadcast::channel(queue_capacity).0,
            limiter: Limiter::new(rate_limit),
            ws,
            shutdown,
        }
    }
}

/// What the REST and WebSocket front ends need of a server.
pub(crate) trait Server: Send + Sync + 'static {
    /// Who signed a request (a request extension on authenticated paths).
    type Caller: Clone + Send + Sync + 'static;
    /// What the server's event batches carry to the WebSocket connections.
    type Event: Send + Sync + 'static;
    /// `description` in `/exchange/status`.
    const DESCRIPTION: &'static str;
    /// Whether orders (and transfers) are accepted.
    const TRADING: bool;
    fn front(&self) -> &Front<Self::Event>;
    /// Injected faults and their counters (`None`: a server without faults).
    fn faults(&self) -> Option<&Faults>;
    /// The caller and public key of a registered API key id.
    fn user(&self, key_id: &str) -> Option<(Self::Caller, RsaPublicKey)>;
    /// Runs `f` on the markets now. Returns its result and the number of the last event
    /// batch sent (every later batch happened after what `f` saw).
    fn read<R>(&self, f: impl FnOnce(&dyn MarketView) -> R) -> (R, u64);
}

// -------------------------------------------------------------------------------------
// Signing, gate
// -------------------------------------------------------------------------------------

/// Checks Kalshi's three signing headers against the registered keys.
pub(crate) fn authenticate<S: Server>(
    s: &S,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<S::Caller, ApiError> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let fail = |d: &str| {
        if let Some(f) = s.faults() {
            f.count_auth_failure();
        }
        tracing::info!(method, path, reason = d, "authentication failed");
        ApiError::auth(d)
    };
    let (Some(key), Some(ts), Some(sig)) =
        (h(HEADER_KEY), h(HEADER_TIMESTAMP), h(HEADER_SIGNATURE))
    else {
        return Err(fail("MISSING_AUTHENTICATION_HEADERS"));
    };
    let Some((caller, pk)) = s.user(key) else {
        return Err(fail("API_KEY_NOT_FOUND"));
    };
    verify(&pk, ts, method, path, sig).map_err(|_| fail("INCORRECT_API_KEY_SIGNATURE"))?;
    Ok(caller)
}

fn fault_response(status: u16) -> Response {
    if status == 429 {
        return ApiError::RateLimited.into_response();
    }
    let code = match status {
        500 => "internal_server_error",
        502 => "bad_gateway",
        503 => "service_unavailable",
        504 => "gateway_timeout",
        _ => "injected_fault",
    };
    ApiError::new(status, code, "injected fault", "kalshi_sim fault injection").into_response()
}

/// Counting, faults, authentication (on `/portfolio` and `/account`, the caller becomes a
/// request extension), rate limits: in that order, before every REST handler.
async fn gate<S: Server>(State(s): State<Arc<S>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let fault = s.faults().and_then(|f| {
        f.count_rest_request(path.strip_prefix(REST_PREFIX).unwrap_or(&path));
        f.http()
    });
    match fault {
        Some(HttpFault::Status(st)) => return fault_response(st),
        Some(HttpFault::Delay(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
        None => {}
    }
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
        match authenticate(&*s, method.as_str(), &path, req.headers()) {
            Ok(c) => {
                req.extensions_mut().insert(c);
            }
            Err(e) => return e.into_response(),
        }
    }
    let (bucket, cost) = classify(&method, &path);
    if !s.front().limiter.try_take(&key, bucket, cost) {
        if let Some(f) = s.faults() {
            f.count_rate_limited();
        }
        return ApiError::RateLimited.into_response();
    }
    next.run(req).await
}

// -------------------------------------------------------------------------------------
// Market data
// -------------------------------------------------------------------------------------

/// `/trade-api/v2` + `path`.
pub(crate) fn rest_path(path: &str) -> String {
    format!("{REST_PREFIX}{path}")
}

/// A server's REST API: the market-data routes every server answers and its `own`, behind
/// the [`gate`], with the fallback for unknown paths.
pub(crate) fn rest_router<S: Server>(shared: Arc<S>, own: Router<Arc<S>>) -> Router {
    market_routes::<S>()
        .merge(own)
        .layer(middleware::from_fn_with_state(shared.clone(), gate::<S>))
        .fallback(fallback)
        .with_state(shared)
}

fn market_routes<S: Server>() -> Router<Arc<S>> {
    let p = rest_path;
    Router::new()
        .route(&p("/exchange/status"), get(exchange_status::<S>))
        .route(
            &p("/exchange/user_data_timestamp"),
            get(user_data_timestamp::<S>),
        )
        .route(&p("/series"), get(series_list::<S>))
        .route(&p("/series/{series}"), get(series_one::<S>))
        .route(&p("/events"), get(events::<S>))
        .route(&p("/events/{event}"), get(event_one::<S>))
        .route(&p("/markets"), get(markets::<S>))
        .route(&p("/markets/orderbooks"), get(orderbooks::<S>))
        .route(&p("/markets/{ticker}"), get(market_one::<S>))
        .route(&p("/markets/{ticker}/orderbook"), get(orderbook::<S>))
        .route(&p("/account/limits"), get(account_limits::<S>))
}

pub(crate) fn market_not_found(ticker: &str) -> ApiError {
    ApiError::new(
        404,
        "market_not_found",
        "market not found",
        ticker.to_string(),
    )
}

async fn exchange_status<S: Server>() -> ApiResult {
    ok(json!({
        "exchange_active": true,
        "trading_active": S::TRADING,
        "exchange_estimated_resume_time": null,
        "intra_exchange_transfers_active": S::TRADING,
        "exchange_index_statuses": [{
            "exchange_index": 0, "description": S::DESCRIPTION,
            "exchange_active": true, "trading_active": S::TRADING
        }]
    }))
}

async fn user_data_timestamp<S: Server>(State(s): State<Arc<S>>) -> ApiResult {
    let now = s.read(|v| v.now_ms()).0;
    ok(json!({ "as_of_time": rfc3339(now) }))
}

async fn series_list<S: Server>(State(s): State<Arc<S>>) -> ApiResult {
    let list = s.read(|v| v.series_list()).0;
    ok(json!({ "series": list }))
}

async fn series_one<S: Server>(State(s): State<Arc<S>>, Path(series): Path<String>) -> ApiResult {
    match s.read(|v| v.series(&series)).0 {
        Some(x) => ok(json!({ "series": x })),
        None => Err(ApiError::not_found(format!("series {series} not found"))),
    }
}

/// `/markets` (or `/historical/markets`): the markets of that tier the query selects.
pub(crate) fn list_markets<S: Server>(s: &S, raw: Option<String>, historical: bool) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let filter = MarketFilter::parse(&q)?;
    let (markets, cursor) = s
        .read(|v| {
            let all = v.markets();
            let items: Vec<(String, &MarketInfo)> = all
                .iter()
                .filter(|m| v.is_historical(m) == historical && filter.matches(m))
                .map(|m| (market_key(m), m.as_ref()))
                .collect();
            let (pg, cursor) = page(items, &q, 100, 1000)?;
            Ok::<_, ApiError>((
                pg.into_iter().map(|m| v.wire(m)).collect::<Vec<_>>(),
                cursor,
            ))
        })
        .0?;
    ok(json!({ "markets": markets, "cursor": cursor }))
}

async fn markets<S: Server>(State(s): State<Arc<S>>, RawQuery(raw): RawQuery) -> ApiResult {
    list_markets(&*s, raw, false)
}

/// `/markets/{ticker}` (or `/historical/markets/{ticker}`).
pub(crate) fn one_market<S: Server>(s: &S, ticker: &str, historical: bool) -> ApiResult {
    let r = s
        .read(|v| {
            v.market(ticker)
                .filter(|m| v.is_historical(m) == historical)
                .map(|m| v.wire(&m))
        })
        .0;
    match r {
        Some(m) => ok(json!({ "market": m })),
        None => Err(market_not_found(ticker)),
    }
}

async fn market_one<S: Server>(State(s): State<Arc<S>>, Path(ticker): Path<String>) -> ApiResult {
    one_market(&*s, &ticker, false)
}

fn book_json((yes, no): (Levels, Levels), depth: usize) -> wire::OrderbookFp {
    wire::OrderbookFp {
        yes_dollars: wire::levels(&wire::top(yes, depth)),
        no_dollars: wire::levels(&wire::top(no, depth)),
    }
}

async fn orderbook<S: Server>(
    State(s): State<Arc<S>>,
    Path(ticker): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let d = depth(&q)?;
    let r = s
        .read(|v| {
            v.market(&ticker)
                .filter(|m| !v.is_historical(m))
                .and_then(|_| v.levels(&ticker))
        })
        .0;
    match r {
        Some(b) => ok(json!({ "orderbook_fp": book_json(b, d) })),
        None => Err(market_not_found(&ticker)),
    }
}

async fn orderbooks<S: Server>(State(s): State<Arc<S>>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let tickers = q.list("tickers");
    if tickers.is_empty() || tickers.len() > 100 {
        return Err(ApiError::bad("tickers: give 1 to 100 market tickers"));
    }
    let d = depth(&q)?;
    let books = s
        .read(|v| {
            tickers
                .iter()
                .map(|t| {
                    v.levels(t)
                        .map(|b| json!({ "ticker": t, "orderbook_fp": book_json(b, d) }))
                        .ok_or_else(|| market_not_found(t))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .0?;
    ok(json!({ "orderbooks": books }))
}

async fn events<S: Server>(State(s): State<Arc<S>>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let status = status_filter(&q)?;
    let nested = q.flag("with_nested_markets")?;
    let series = q.get("series_ticker").map(str::to_string);
    let wanted = q.list("event_ticker");
    let min_close = q.int("min_close_ts")?;
    let (events, cursor) = s
        .read(|v| {
            let all = v.markets();
            let mut by_event: BTreeMap<&str, Vec<&MarketInfo>> = BTreeMap::new();
            for m in &all {
                by_event.entry(m.event_ticker.as_str()).or_default().push(m);
            }
            let items: Vec<(String, wire::EventData)> = by_event
                .into_values()
                .filter(|ms| status.is_none_or(|f| ms.iter().any(|m| f(m.status))))
                .filter(|ms| series.as_ref().is_none_or(|x| ms[0].series.as_str() == x))
                .filter(|ms| wanted.is_empty() || wanted.contains(&ms[0].event_ticker))
                .filter(|ms| {
                    min_close.is_none_or(|t| ms.iter().any(|m| m.close_ms.div_euclid(1000) >= t))
                })
                .map(|ms| {
                    let markets = nested.then(|| ms.iter().map(|m| v.wire(m)).collect());
                    let updated = ms.iter().map(|m| m.updated_ms).max().unwrap_or(v.now_ms());
                    (
                        market_key(ms[0]),
                        wire::EventData::new(ms[0], markets, updated),
                    )
                })
                .collect();
            page(items, &q, 200, 200)
        })
        .0?;
    ok(json!({ "events": events, "cursor": cursor }))
}

async fn event_one<S: Server>(
    State(s): State<Arc<S>>,
    Path(event): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref());
    let nested = q.flag("with_nested_markets")?;
    let r = s
        .read(|v| {
            let all = v.markets();
            let ms: Vec<&MarketInfo> = all
                .iter()
                .filter(|m| m.event_ticker == event)
                .map(|m| m.as_ref())
                .collect();
            if ms.is_empty() {
                return None;
            }
            let markets: Vec<wire::Market> = ms.iter().map(|m| v.wire(m)).collect();
            let updated = ms.iter().map(|m| m.updated_ms).max().unwrap_or(0);
            let ev = wire::EventData::new(ms[0], nested.then(|| markets.clone()), updated);
            Some(json!({ "event": ev, "markets": markets }))
        })
        .0;
    match r {
        Some(v) => ok(v),
        None => Err(ApiError::not_found(format!("event {event} not found"))),
    }
}

async fn account_limits<S: Server>(State(s): State<Arc<S>>) -> ApiResult {
    let c = s.front().limiter.config();
    ok(json!({
        "usage_tier": if c.enabled { "simulated" } else { "unlimited" },
        "read": { "refill_rate": c.read_per_s, "bucket_capacity": c.read_capacity },
        "write": { "refill_rate": c.write_per_s, "bucket_capacity": c.write_capacity },
        "grants": [],
    }))
}

// -------------------------------------------------------------------------------------
// Setup
// -------------------------------------------------------------------------------------

/// The API key a server accepts.
pub(crate) struct Keys {
    pub key_id: ApiKeyId,
    pub public_key: RsaPublicKey,
    /// What a client signs with (`None` when only a public key was given).
    pub credentials: Option<(ApiKeyId, PrivateKey)>,
    /// `(env_file, pem_file)` written to the key directory.
    pub key_files: Option<(PathBuf, PathBuf)>,
}

/// Generates or takes the key of `setup`; writes the credentials to `key_dir` if given
/// (which needs a private key). `config` builds the server's configuration error.
pub(crate) async fn setup_keys<E: From<KeyError>>(
    setup: KeySetup,
    key_dir: Option<&FsPath>,
    config: impl Fn(String) -> E,
) -> Result<Keys, E> {
    let (key_id, public_key, credentials) = match setup {
        KeySetup::Generate => {
            let (id, key) = tokio::task::spawn_blocking(keys::generate)
                .await
                .map_err(|e| config(e.to_string()))??;
            (id.clone(), key.public_key(), Some((id, key)))
        }
        KeySetup::Private { key_id, key } => {
            (key_id.clone(), key.public_key(), Some((key_id, key)))
        }
        KeySetup::Public { key_id, public_key } => (key_id, public_key, None),
    };
    let key_files = match (key_dir, &credentials) {
        (Some(dir), Some((id, key))) => Some(keys::write_credentials(dir, id, key)?),
        (Some(_), None) => {
            return Err(config(
                "--key-dir needs a private key; it cannot be used with --public-key".into(),
            ))
        }
        _ => None,
    };
    Ok(Keys {
        key_id,
        public_key,
        credentials,
        key_files,
    })
}

/// Binds `addr`; returns the listener and the address it got.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `app` in the background until `stop` turns `true`; `what` names the server in
/// the log if it fails.
pub(crate) fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let serve =
            axum::serve(listener, app.into_make_service()).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "{what} stopped");
        }
    })
}

/// `Debug` and the address, URL and credential accessors of a running server type with
/// `addr`, `credentials` and `key_files` fields (`Sim`, `Replay`).
macro_rules! server_accessors {
    ($t:ident) => {
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("addr", &self.addr)
                    .finish_non_exhaustive()
            }
        }

        impl $t {
            pub fn addr(&self) -> ::std::net::SocketAddr {
                self.addr
            }
            /// `http://127.0.0.1:PORT/trade-api/v2`
            pub fn rest_base(&self) -> String {
                format!("http://{}{}", self.addr, $crate::server::REST_PREFIX)
            }
            /// `ws://127.0.0.1:PORT/trade-api/ws/v2`
            pub fn ws_url(&self) -> String {
                format!("ws://{}{}", self.addr, $crate::server::WS_PATH)
            }
            /// The API key id and private key to sign with (None when only a public key was
            /// given).
            pub fn credentials(
                &self,
            ) -> Option<(
                ::pipeline::secrets::ApiKeyId,
                ::pipeline::secrets::PrivateKey,
            )> {
                self.credentials.clone()
            }
            /// `(env_file, pem_file)` written to `key_dir`.
            pub fn key_files(&self) -> Option<(::std::path::PathBuf, ::std::path::PathBuf)> {
                self.key_files.clone()
            }
        }
    };
}
pub(crate) use server_accessors;
