//! Signed REST client for the Kalshi Trade API v2 (API.md §2–§4, §6.1).
//!
//! * Every request is signed when a [`Signer`] is given: the signed path is the URL path
//!   including `/trade-api/v2`, without the query (a fresh timestamp per attempt).
//! * A client-side token bucket per tier paces requests (see [`rate`]).
//! * Reads are retried with capped, jittered exponential backoff on 429, 5xx, timeouts and
//!   transport errors. Writes are never retried blindly: [`RestClient::create_order_idempotent`]
//!   resolves an unknown outcome by looking the `client_order_id` up before re-sending.
//! * List endpoints follow the cursor to the end and fail on a repeated cursor or a repeated
//!   first item rather than loop.
//!
//! The base URL may be Kalshi's (`https://external-api.kalshi.com/trade-api/v2`) or a
//! simulator's (`http://127.0.0.1:PORT/trade-api/v2`); every timeout and backoff is
//! configurable so tests run fast.

pub mod query;
pub mod rate;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pipeline::auth::Signer;
use pipeline::ids::{ClientOrderId, MarketTicker, OrderId, SeriesTicker};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backoff::{Backoff, BackoffConfig};
use crate::wire::*;

pub use query::{EventsQuery, MarketStatusFilter, MarketsQuery, PortfolioQuery, TradesQuery};
pub use rate::{endpoint_cost, Bucket, RateLimiter, RateLimits, Tier, TokenBucket};

/// Whether a failed request may have reached the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// The connection was never made: the request certainly was not processed.
    NotSent,
    /// It may or may not have been processed.
    Unknown,
}

/// REST failures, mapped from HTTP status and Kalshi's error envelope.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("{method} {path}: rate limited (429)")]
    RateLimited { method: String, path: String },
    #[error("{method} {path}: unauthorized ({status}): {code:?} {details:?}")]
    Unauthorized {
        method: String,
        path: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        details: Option<String>,
    },
    #[error("{method} {path}: not found: {code:?} {message:?}")]
    NotFound {
        method: String,
        path: String,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("{method} {path}: conflict (409): {code:?} {message:?} {details:?}")]
    Conflict {
        method: String,
        path: String,
        code: Option<String>,
        message: Option<String>,
        details: Option<String>,
    },
    #[error("{method} {path}: rejected ({status}): {code:?} {message:?} {details:?}")]
    Api {
        method: String,
        path: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        details: Option<String>,
    },
    #[error("{method} {path}: server error {status}: {message:?}")]
    Server {
        method: String,
        path: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    #[error(
        "{method} {path}: cannot decode the {status} response: {error}; body starts {excerpt:?}"
    )]
    Decode {
        method: String,
        path: String,
        status: u16,
        error: String,
        excerpt: String,
    },
    #[error("{method} {path}: transport error ({sent:?}): {source}")]
    Transport {
        method: String,
        path: String,
        sent: SendState,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {path}: no response within {after:?}")]
    Timeout {
        method: String,
        path: String,
        after: Duration,
    },
    #[error("{path}: pagination loop ({reason}) at cursor {cursor:?}")]
    PaginationLoop {
        path: String,
        cursor: String,
        reason: String,
    },
    #[error("bad URL {0}")]
    InvalidUrl(String),
    #[error("cannot encode the request body: {0}")]
    Encode(String),
    #[error("order {client_order_id}: outcome unknown and not resolved: {reason}")]
    UnresolvedCreate {
        client_order_id: ClientOrderId,
        reason: String,
    },
    /// The exchange holds an order with this `client_order_id` whose terms differ from the
    /// request: the id was reused for another order. Nothing was placed; the caller's
    /// order is not that one.
    #[error("order {client_order_id}: client_order_id already used by order {order_id} with other terms ({differences})")]
    ClientOrderIdReused {
        client_order_id: ClientOrderId,
        order_id: OrderId,
        differences: String,
    },
}

impl RestError {
    /// Worth retrying for a read (the request is idempotent).
    pub fn is_retryable_read(&self) -> bool {
        matches!(
            self,
            RestError::RateLimited { .. }
                | RestError::Server { .. }
                | RestError::Transport { .. }
                | RestError::Timeout { .. }
        )
    }

    /// For a write: could the exchange have processed it?
    pub fn outcome_unknown(&self) -> bool {
        match self {
            RestError::Transport { sent, .. } => *sent == SendState::Unknown,
            RestError::Timeout { .. } | RestError::Server { .. } | RestError::Decode { .. } => true,
            _ => false,
        }
    }

    /// HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::RateLimited { .. } => Some(429),
            RestError::Unauthorized { status, .. }
            | RestError::Api { status, .. }
            | RestError::Server { status, .. }
            | RestError::Decode { status, .. } => Some(*status),
            RestError::NotFound { .. } => Some(404),
            RestError::Conflict { .. } => Some(409),
            _ => None,
        }
    }
}

/// How `create_order_idempotent` settles an unknown outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveConfig {
    /// Order-list lookups before giving up.
    pub attempts: u32,
    /// Wait before each lookup (lets an in-flight request land and REST catch up).
    pub delay: Duration,
    /// Portfolio data must be at least this much newer than the failure before "not listed"
    /// counts as proof of absence (`GET /exchange/user_data_timestamp`).
    pub grace: Duration,
    /// Re-sends (same `client_order_id`) after proven absence.
    pub max_resends: u32,
    /// Retries of a create refused before processing (429, connection refused).
    pub max_rejected_retries: u32,
}

impl Default for ResolveConfig {
    fn default() -> Self {
        ResolveConfig {
            attempts: 5,
            delay: Duration::from_secs(1),
            grace: Duration::from_secs(2),
            max_resends: 1,
            max_rejected_retries: 5,
        }
    }
}

/// Client settings. Every timeout and backoff is here so tests can shrink them.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// E.g. `https://external-api.kalshi.com/trade-api/v2` or `http://127.0.0.1:PORT/trade-api/v2`.
    pub base_url: String,
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of a failed read (429/5xx/timeout/transport).
    pub read_retries: u32,
    pub backoff: BackoffConfig,
    /// Client-side pacing; `None` disables it.
    pub rate_limits: Option<RateLimits>,
    pub resolve: ResolveConfig,
    /// Seed for backoff jitter (reproducible tests); `None` = OS randomness.
    pub seed: Option<u64>,
    /// Stop following cursors after this many pages (a last-resort guard).
    pub max_pages: usize,
    pub user_agent: String,
}

impl RestConfig {
    pub fn new(base_url: impl Into<String>) -> RestConfig {
        RestConfig {
            base_url: base_url.into(),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            read_retries: 5,
            backoff: BackoffConfig::default(),
            rate_limits: Some(RateLimits::for_tier(Tier::Basic).scaled(90)),
            resolve: ResolveConfig::default(),
            seed: None,
            max_pages: 100_000,
            user_agent: concat!("kalshi-edge-pipeline/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Result of [`RestClient::create_order_idempotent`].
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// The exchange acknowledged this request.
    Placed(CreateOrderResponse),
    /// The order already existed (an earlier attempt whose answer was lost, or a 409
    /// duplicate `client_order_id`): here it is, as listed by the exchange.
    FoundExisting(Box<Order>),
}

/// Detects cursor loops: a cursor seen before, or a page starting with an item seen before.
#[derive(Debug, Default)]
pub struct CursorGuard {
    cursors: HashSet<String>,
    first_items: HashSet<String>,
    pages: usize,
}

impl CursorGuard {
    pub fn new() -> CursorGuard {
        CursorGuard::default()
    }
    /// Records a page; `Ok(Some(cursor))` to fetch the next one, `Ok(None)` when done.
    pub fn next_page(
        &mut self,
        path: &str,
        cursor: Option<&str>,
        first_item: Option<String>,
        max_pages: usize,
    ) -> Result<Option<String>, RestError> {
        self.pages += 1;
        let loop_err = |cursor: &str, reason: &str| RestError::PaginationLoop {
            path: path.to_string(),
            cursor: cursor.to_string(),
            reason: reason.to_string(),
        };
        if let Some(first) = first_item {
            if !self.first_items.insert(first.clone()) {
                return Err(loop_err(
                    cursor.unwrap_or(""),
                    &format!("page starts again with {first}"),
                ));
            }
        }
        let Some(c) = cursor.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        if !self.cursors.insert(c.to_string()) {
            return Err(loop_err(c, "cursor repeated"));
        }
        if self.pages >= max_pages {
            return Err(loop_err(c, &format!("more than {max_pages} pages")));
        }
        Ok(Some(c.to_string()))
    }
}

struct Inner {
    http: reqwest::Client,
    base: url::Url,
    signer: Option<Signer>,
    cfg: RestConfig,
    limiter: Option<Mutex<RateLimiter>>,
    seed_counter: AtomicU64,
}

/// The REST client. Cheap to clone (shared connection pool and rate limiter).
#[derive(Clone)]
pub struct RestClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.inner.base.as_str())
            .field("signed", &self.inner.signer.is_some())
            .finish()
    }
}

type Query = Vec<(String, String)>;

impl RestClient {
    pub fn new(cfg: RestConfig, signer: Option<Signer>) -> Result<RestClient, RestError> {
        let base = url::Url::parse(cfg.base_url.trim_end_matches('/'))
            .map_err(|e| RestError::InvalidUrl(format!("{}: {e}", cfg.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(RestError::InvalidUrl(format!(
                "{}: scheme must be http or https",
                cfg.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .user_agent(cfg.user_agent.clone())
            .build()
            .map_err(|e| RestError::InvalidUrl(format!("http client: {e}")))?;
        let limiter = cfg
            .rate_limits
            .map(|l| Mutex::new(RateLimiter::new(l, Instant::now())));
        Ok(RestClient {
            inner: Arc::new(Inner {
                http,
                base,
                signer,
                cfg,
                limiter,
                seed_counter: AtomicU64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &RestConfig {
        &self.inner.cfg
    }

    fn backoff(&self) -> Backoff {
        let n = self.inner.seed_counter.fetch_add(1, Ordering::Relaxed);
        Backoff::new(
            self.inner.cfg.backoff.clone(),
            self.inner
                .cfg
                .seed
                .map(|s| s.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
        )
    }

    fn url(&self, path: &str) -> Result<url::Url, RestError> {
        let s = format!("{}{}", self.inner.base.as_str().trim_end_matches('/'), path);
        url::Url::parse(&s).map_err(|e| RestError::InvalidUrl(format!("{s}: {e}")))
    }

    /// One attempt: pace, sign, send, map the status. Returns the body text of a 2xx.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        query: &Query,
        body: Option<&str>,
        batch_items: usize,
    ) -> Result<(u16, String), RestError> {
        let m = method.as_str().to_string();
        let url = self.url(path)?;
        if let Some(l) = &self.inner.limiter {
            let (bucket, cost) = endpoint_cost(method.as_str(), path, batch_items);
            let wait =
                l.lock()
                    .expect("rate limiter poisoned")
                    .reserve(bucket, cost, Instant::now());
            if !wait.is_zero() {
                tracing::debug!(path, ?wait, "pacing request for the token bucket");
                tokio::time::sleep(wait).await;
            }
        }
        let mut req = self.inner.http.request(method.clone(), url.clone());
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(s) = &self.inner.signer {
            for (k, v) in s.headers(method.as_str(), url.path()).pairs() {
                req = req.header(k, v);
            }
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let timeout = self.inner.cfg.timeout;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                RestError::Timeout {
                    method: m.clone(),
                    path: path.to_string(),
                    after: timeout,
                }
            } else {
                RestError::Transport {
                    method: m.clone(),
                    path: path.to_string(),
                    sent: if e.is_connect() {
                        SendState::NotSent
                    } else {
                        SendState::Unknown
                    },
                    source: e,
                }
            }
        };
        // reqwest enforces the timeout; the outer one guards against a stuck body read.
        let outer = timeout + Duration::from_millis(500);
        let resp = tokio::time::timeout(outer, req.send())
            .await
            .map_err(|_| RestError::Timeout {
                method: m.clone(),
                path: path.to_string(),
                after: timeout,
            })?
            .map_err(transport)?;
        let status = resp.status();
        let text = tokio::time::timeout(outer, resp.text())
            .await
            .map_err(|_| RestError::Timeout {
                method: m.clone(),
                path: path.to_string(),
                after: timeout,
            })?
            .map_err(transport)?;
        if status.is_success() {
            return Ok((status.as_u16(), text));
        }
        Err(map_status(&m, path, status, &text))
    }

    /// A read with retries.
    async fn get_text(&self, path: &str, query: &Query) -> Result<(u16, String), RestError> {
        let mut backoff = self.backoff();
        loop {
            match self.attempt(&Method::GET, path, query, None, 0).await {
                Ok(r) => return Ok(r),
                Err(e)
                    if e.is_retryable_read() && backoff.attempt() < self.inner.cfg.read_retries =>
                {
                    let d = backoff.next_delay();
                    tracing::warn!(path, error = %e, delay = ?d, "retrying read");
                    tokio::time::sleep(d).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<T, RestError> {
        let (status, text) = self.get_text(path, query).await?;
        decode("GET", path, status, &text)
    }

    /// A write: exactly one attempt.
    async fn write<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Option<&B>,
        batch_items: usize,
    ) -> Result<T, RestError> {
        let body = body
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| RestError::Encode(e.to_string()))?;
        let (status, text) = self
            .attempt(&method, path, query, body.as_deref(), batch_items)
            .await?;
        decode(method.as_str(), path, status, &text)
    }

    /// Follows the cursor to the last page.
    async fn paginate<P, T>(
        &self,
        path: &str,
        query: Query,
        split: impl Fn(P) -> (Vec<T>, Option<String>),
        key: impl Fn(&T) -> String,
    ) -> Result<Vec<T>, RestError>
    where
        P: DeserializeOwned,
    {
        let mut guard = CursorGuard::new();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.clone();
            if let Some(c) = &cursor {
                q.push(("cursor".into(), c.clone()));
            }
            let page: P = self.get(path, &q).await?;
            let (items, next) = split(page);
            let first = items.first().map(&key);
            out.extend(items);
            match guard.next_page(path, next.as_deref(), first, self.inner.cfg.max_pages)? {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    // ---------------------------------------------------------------- market data

    /// All markets matching `q` (every page).
    pub async fn markets(&self, q: &MarketsQuery) -> Result<Vec<Market>, RestError> {
        self.paginate(
            "/markets",
            q.pairs(),
            |p: MarketsPage| (p.markets, p.cursor),
            |m| m.ticker.to_string(),
        )
        .await
    }

    /// One page of markets (`cursor` from the previous page).
    pub async fn markets_page(
        &self,
        q: &MarketsQuery,
        cursor: Option<&str>,
    ) -> Result<MarketsPage, RestError> {
        let mut p = q.pairs();
        if let Some(c) = cursor {
            p.push(("cursor".into(), c.into()));
        }
        self.get("/markets", &p).await
    }

    pub async fn market(&self, ticker: &str) -> Result<Market, RestError> {
        let r: MarketResponse = self
            .get(&format!("/markets/{}", seg(ticker)), &vec![])
            .await?;
        Ok(r.market)
    }

    /// `depth`: `None` or 0 = all levels.
    pub async fn orderbook(
        &self,
        ticker: &str,
        depth: Option<u32>,
    ) -> Result<OrderbookResponse, RestError> {
        let q = depth
            .map(|d| vec![("depth".to_string(), d.to_string())])
            .unwrap_or_default();
        self.get(&format!("/markets/{}/orderbook", seg(ticker)), &q)
            .await
    }

    /// Books of many markets (`GET /markets/orderbooks`, ≤100 per request; chunked).
    pub async fn orderbooks(
        &self,
        tickers: &[MarketTicker],
    ) -> Result<Vec<TickerOrderbook>, RestError> {
        let mut out = Vec::new();
        for chunk in tickers.chunks(100) {
            let q: Query = chunk
                .iter()
                .map(|t| ("tickers".to_string(), t.to_string()))
                .collect();
            let r: OrderbooksResponse = self.get("/markets/orderbooks", &q).await?;
            out.extend(r.orderbooks);
        }
        Ok(out)
    }

    pub async fn series(&self, ticker: &SeriesTicker) -> Result<Series, RestError> {
        let r: SeriesResponse = self
            .get(&format!("/series/{}", seg(ticker.as_str())), &vec![])
            .await?;
        Ok(r.series)
    }

    pub async fn series_list(&self, category: Option<&str>) -> Result<Vec<Series>, RestError> {
        let q = category
            .map(|c| vec![("category".to_string(), c.to_string())])
            .unwrap_or_default();
        let r: SeriesList = self.get("/series", &q).await?;
        Ok(r.series)
    }

    /// All events matching `q` (every page).
    pub async fn events(&self, q: &EventsQuery) -> Result<Vec<Event>, RestError> {
        self.paginate(
            "/events",
            q.pairs(),
            |p: EventsPage| (p.events, p.cursor),
            |e| e.event_ticker.clone(),
        )
        .await
    }

    pub async fn event(
        &self,
        event_ticker: &str,
        with_nested_markets: bool,
    ) -> Result<EventResponse, RestError> {
        let q = if with_nested_markets {
            vec![("with_nested_markets".to_string(), "true".to_string())]
        } else {
            vec![]
        };
        self.get(&format!("/events/{}", seg(event_ticker)), &q)
            .await
    }

    pub async fn exchange_status(&self) -> Result<ExchangeStatus, RestError> {
        self.get("/exchange/status", &vec![]).await
    }

    /// How fresh portfolio REST data is.
    pub async fn user_data_timestamp(&self) -> Result<UserDataTimestamp, RestError> {
        self.get("/exchange/user_data_timestamp", &vec![]).await
    }

    /// All public trades matching `q`.
    pub async fn trades(&self, q: &TradesQuery) -> Result<Vec<Trade>, RestError> {
        self.paginate(
            "/markets/trades",
            q.pairs(),
            |p: TradesPage| (p.trades, p.cursor),
            |t| t.trade_id.clone(),
        )
        .await
    }

    /// Markets settled before the historical cutoff (`GET /historical/markets`).
    pub async fn historical_markets(&self, q: &MarketsQuery) -> Result<Vec<Market>, RestError> {
        self.paginate(
            "/historical/markets",
            q.pairs(),
            |p: MarketsPage| (p.markets, p.cursor),
            |m| m.ticker.to_string(),
        )
        .await
    }

    /// [`RestClient::markets`] with each market left as the JSON the exchange sent (every
    /// page), for a caller that reads each object on its own: one object with a bad field
    /// then costs that object, not the whole page.
    pub async fn markets_json(
        &self,
        q: &MarketsQuery,
    ) -> Result<Vec<serde_json::Value>, RestError> {
        self.paginate(
            "/markets",
            q.pairs(),
            |p: JsonMarketsPage| (p.markets, p.cursor),
            json_market_key,
        )
        .await
    }

    /// [`RestClient::historical_markets`] with each market left as JSON (see
    /// [`RestClient::markets_json`]).
    pub async fn historical_markets_json(
        &self,
        q: &MarketsQuery,
    ) -> Result<Vec<serde_json::Value>, RestError> {
        self.paginate(
            "/historical/markets",
            q.pairs(),
            |p: JsonMarketsPage| (p.markets, p.cursor),
            json_market_key,
        )
        .await
    }

    pub async fn historical_market(&self, ticker: &str) -> Result<Market, RestError> {
        let r: MarketResponse = self
            .get(&format!("/historical/markets/{}", seg(ticker)), &vec![])
            .await?;
        Ok(r.market)
    }

    pub async fn historical_cutoff(&self) -> Result<HistoricalCutoff, RestError> {
        self.get("/historical/cutoff", &vec![]).await
    }

    // ---------------------------------------------------------------- portfolio

    pub async fn balance(&self) -> Result<Balance, RestError> {
        self.get("/portfolio/balance", &vec![]).await
    }

    /// All positions (market and event) matching `q`.
    pub async fn positions(
        &self,
        q: &PortfolioQuery,
    ) -> Result<(Vec<MarketPosition>, Vec<EventPosition>), RestError> {
        let mut events = Vec::new();
        let mut guard = CursorGuard::new();
        let mut markets = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = q.pairs();
            if let Some(c) = &cursor {
                p.push(("cursor".into(), c.clone()));
            }
            let page: PositionsPage = self.get("/portfolio/positions", &p).await?;
            let first = page
                .market_positions
                .first()
                .map(|m| m.ticker.to_string())
                .or_else(|| page.event_positions.first().map(|e| e.event_ticker.clone()));
            markets.extend(page.market_positions);
            events.extend(page.event_positions);
            match guard.next_page(
                "/portfolio/positions",
                page.cursor.as_deref(),
                first,
                self.inner.cfg.max_pages,
            )? {
                Some(c) => cursor = Some(c),
                None => return Ok((markets, events)),
            }
        }
    }

    /// All orders matching `q` (any status unless `q.status` is set).
    pub async fn orders(&self, q: &PortfolioQuery) -> Result<Vec<Order>, RestError> {
        self.paginate(
            "/portfolio/orders",
            q.pairs(),
            |p: OrdersPage| (p.orders, p.cursor),
            |o| o.order_id.to_string(),
        )
        .await
    }

    pub async fn order(&self, order_id: &OrderId) -> Result<Order, RestError> {
        let r: OrderResponse = self
            .get(
                &format!("/portfolio/orders/{}", seg(order_id.as_str())),
                &vec![],
            )
            .await?;
        Ok(r.order)
    }

    pub async fn fills(&self, q: &PortfolioQuery) -> Result<Vec<Fill>, RestError> {
        self.paginate(
            "/portfolio/fills",
            q.pairs(),
            |p: FillsPage| (p.fills, p.cursor),
            |f| f.id().unwrap_or_default().to_string(),
        )
        .await
    }

    pub async fn settlements(&self, q: &PortfolioQuery) -> Result<Vec<Settlement>, RestError> {
        self.paginate(
            "/portfolio/settlements",
            q.pairs(),
            |p: SettlementsPage| (p.settlements, p.cursor),
            |s| format!("{}@{:?}", s.ticker, s.settled_time),
        )
        .await
    }

    // ---------------------------------------------------------------- orders (V2)

    /// `POST /portfolio/events/orders`, one attempt, no retry (see
    /// [`RestClient::create_order_idempotent`]).
    pub async fn create_order(
        &self,
        req: &CreateOrderRequest,
    ) -> Result<CreateOrderResponse, RestError> {
        tracing::info!(market = %req.ticker, client_order_id = %req.client_order_id, side = %req.side, price = %req.price, count = %req.count, "creating order");
        self.write(
            Method::POST,
            "/portfolio/events/orders",
            &vec![],
            Some(req),
            1,
        )
        .await
    }

    /// `DELETE /portfolio/events/orders/{id}` (give the ticker so the exchange can route it).
    pub async fn cancel_order(
        &self,
        order_id: &OrderId,
        market_ticker: Option<&MarketTicker>,
    ) -> Result<CancelOrderResponse, RestError> {
        let q = market_ticker
            .map(|t| vec![("market_ticker".to_string(), t.to_string())])
            .unwrap_or_default();
        self.write::<_, ()>(
            Method::DELETE,
            &format!("/portfolio/events/orders/{}", seg(order_id.as_str())),
            &q,
            None,
            1,
        )
        .await
    }

    pub async fn batch_create(
        &self,
        orders: Vec<CreateOrderRequest>,
    ) -> Result<BatchCreateResponse, RestError> {
        let n = orders.len();
        let body = BatchCreateRequest { orders };
        self.write(
            Method::POST,
            "/portfolio/events/orders/batched",
            &vec![],
            Some(&body),
            n,
        )
        .await
    }

    pub async fn batch_cancel(
        &self,
        orders: Vec<CancelSpec>,
    ) -> Result<BatchCancelResponse, RestError> {
        let n = orders.len();
        let body = BatchCancelRequest { orders };
        self.write(
            Method::DELETE,
            "/portfolio/events/orders/batched",
            &vec![],
            Some(&body),
            n,
        )
        .await
    }

    /// Finds our order by `client_order_id` among the market's orders created since `since`.
    pub async fn find_order_by_client_id(
        &self,
        ticker: &MarketTicker,
        client_order_id: &ClientOrderId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Order>, RestError> {
        let q = PortfolioQuery {
            ticker: Some(ticker.clone()),
            min_ts: since.map(|t| t.timestamp() - 60),
            ..Default::default()
        };
        Ok(self
            .orders(&q)
            .await?
            .into_iter()
            .find(|o| o.client_order_id.as_ref() == Some(client_order_id)))
    }

    /// Places an order at most once.
    ///
    /// * A refusal before processing (429, connection refused) is retried with backoff.
    /// * 409 (duplicate `client_order_id`) means it exists: it is looked up and returned.
    /// * An unknown outcome (timeout, dropped connection, 5xx, unreadable answer) is resolved
    ///   by listing the market's orders and finding the `client_order_id`. Only when it is
    ///   provably absent — not listed by portfolio data dated at least `resolve.grace` after
    ///   the failure (`GET /exchange/user_data_timestamp`), or, where that endpoint does not
    ///   exist, not listed after `resolve.attempts` lookups `resolve.delay` apart — is the same
    ///   request (same `client_order_id`) sent again, at most `resolve.max_resends` times.
    ///   Otherwise [`RestError::UnresolvedCreate`]: never a blind duplicate.
    pub async fn create_order_idempotent(
        &self,
        req: &CreateOrderRequest,
    ) -> Result<CreateOutcome, RestError> {
        let rc = self.inner.cfg.resolve.clone();
        let mut backoff = self.backoff();
        let mut resends = 0;
        loop {
            let sent_at = Utc::now();
            let err = match self.create_order(req).await {
                Ok(ack) => return Ok(CreateOutcome::Placed(ack)),
                Err(e) => e,
            };
            match &err {
                RestError::Conflict { .. } => {
                    tracing::info!(client_order_id = %req.client_order_id, "duplicate client_order_id: looking the order up");
                    return match self.locate(req, sent_at, &rc).await? {
                        Located::Found(o) => found_existing(req, o),
                        _ => Err(err),
                    };
                }
                RestError::RateLimited { .. }
                | RestError::Transport {
                    sent: SendState::NotSent,
                    ..
                } if backoff.attempt() < rc.max_rejected_retries => {
                    let d = backoff.next_delay();
                    tracing::warn!(client_order_id = %req.client_order_id, error = %err, delay = ?d, "create refused before processing; retrying");
                    tokio::time::sleep(d).await;
                }
                e if e.outcome_unknown() => {
                    tracing::warn!(client_order_id = %req.client_order_id, error = %e, "create outcome unknown; resolving by lookup");
                    match self.locate(req, Utc::now(), &rc).await? {
                        Located::Found(o) => return found_existing(req, o),
                        Located::Absent if resends < rc.max_resends => {
                            resends += 1;
                            tracing::warn!(client_order_id = %req.client_order_id, "order provably absent; re-sending with the same client_order_id");
                        }
                        Located::Absent => {
                            return Err(RestError::UnresolvedCreate {
                                client_order_id: req.client_order_id.clone(),
                                reason: format!(
                                    "absent after {resends} re-send(s); last error: {err}"
                                ),
                            })
                        }
                        Located::Unknown(why) => {
                            return Err(RestError::UnresolvedCreate {
                                client_order_id: req.client_order_id.clone(),
                                reason: format!("{why}; first error: {err}"),
                            })
                        }
                    }
                }
                _ => return Err(err),
            }
        }
    }

    async fn locate(
        &self,
        req: &CreateOrderRequest,
        failed_at: DateTime<Utc>,
        rc: &ResolveConfig,
    ) -> Result<Located, RestError> {
        let need_as_of = failed_at
            + chrono::Duration::from_std(rc.grace).unwrap_or_else(|_| chrono::Duration::zero());
        let mut last_why = String::from("no lookup made");
        for attempt in 0..rc.attempts.max(1) {
            tokio::time::sleep(rc.delay).await;
            if let Some(o) = self
                .find_order_by_client_id(
                    &req.ticker,
                    &req.client_order_id,
                    Some(failed_at - chrono::Duration::minutes(5)),
                )
                .await?
            {
                return Ok(Located::Found(Box::new(o)));
            }
            match self.user_data_timestamp().await {
                Ok(ts) if ts.as_of_time.0 >= need_as_of => return Ok(Located::Absent),
                Ok(ts) => {
                    last_why = format!(
                        "portfolio data as of {} is not yet past {need_as_of}",
                        ts.as_of_time.0
                    );
                }
                Err(RestError::NotFound { .. }) => {
                    last_why = "user_data_timestamp unavailable".into();
                    if attempt + 1 == rc.attempts.max(1) {
                        return Ok(Located::Absent);
                    }
                }
                Err(e) => last_why = format!("freshness check failed: {e}"),
            }
        }
        Ok(Located::Unknown(last_why))
    }
}

/// A `/markets` page whose market objects are kept as JSON.
#[derive(serde::Deserialize)]
struct JsonMarketsPage {
    #[serde(default)]
    markets: Vec<serde_json::Value>,
    #[serde(default)]
    cursor: Option<String>,
}

/// The pagination guard's key of a JSON market: its ticker, or the whole object.
fn json_market_key(v: &serde_json::Value) -> String {
    match v.get("ticker").and_then(serde_json::Value::as_str) {
        Some(t) => t.to_string(),
        None => v.to_string(),
    }
}

/// An order found under the request's `client_order_id` is the request's only if its terms
/// match; a reused id must not pass for a placed order.
fn found_existing(req: &CreateOrderRequest, o: Box<Order>) -> Result<CreateOutcome, RestError> {
    let differences = order_differences(req, &o);
    if differences.is_empty() {
        Ok(CreateOutcome::FoundExisting(o))
    } else {
        Err(RestError::ClientOrderIdReused {
            client_order_id: req.client_order_id.clone(),
            order_id: o.order_id.clone(),
            differences: differences.join(", "),
        })
    }
}

/// The terms in which a listed order differs from a create request: market, book side,
/// YES-scale price and initial count (current fields, else the legacy ones, through
/// [`Order`]'s accessors). A term the listing leaves out is not compared.
pub fn order_differences(req: &CreateOrderRequest, o: &Order) -> Vec<String> {
    let mut out = Vec::new();
    if o.ticker != req.ticker {
        out.push(format!("ticker {} ≠ {}", o.ticker, req.ticker));
    }
    if let Some(side) = o.book_side() {
        if side != req.side {
            out.push(format!("book_side {side:?} ≠ {:?}", req.side));
        }
    }
    if let Some(price) = o.yes_price() {
        if price != req.price {
            out.push(format!(
                "yes price {} ≠ {}",
                price.to_dollars(),
                req.price.to_dollars()
            ));
        }
    }
    if let Some(count) = o.initial_count() {
        if count != req.count {
            out.push(format!(
                "count {} ≠ {}",
                count.to_fp_string(),
                req.count.to_fp_string()
            ));
        }
    }
    out
}

enum Located {
    Found(Box<Order>),
    Absent,
    Unknown(String),
}

/// Percent-encodes one path segment (tickers are plain, but never trust input).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn excerpt(text: &str) -> String {
    text.chars().take(300).collect()
}

fn decode<T: DeserializeOwned>(
    method: &str,
    path: &str,
    status: u16,
    text: &str,
) -> Result<T, RestError> {
    serde_json::from_str(text).map_err(|e| RestError::Decode {
        method: method.to_string(),
        path: path.to_string(),
        status,
        error: e.to_string(),
        excerpt: excerpt(text),
    })
}

/// Maps a non-2xx response to a typed error.
pub fn map_status(method: &str, path: &str, status: StatusCode, body: &str) -> RestError {
    let b = ErrorEnvelope::parse(body)
        .map(|e| e.body())
        .unwrap_or_default();
    let (method, path) = (method.to_string(), path.to_string());
    let s = status.as_u16();
    match s {
        429 => RestError::RateLimited { method, path },
        401 | 403 => {
            tracing::warn!(%method, %path, status = s, code = ?b.code, details = ?b.details, "authentication failed");
            RestError::Unauthorized {
                method,
                path,
                status: s,
                code: b.code,
                message: b.message,
                details: b.details,
            }
        }
        404 => RestError::NotFound {
            method,
            path,
            code: b.code,
            message: b.message,
        },
        409 => RestError::Conflict {
            method,
            path,
            code: b.code,
            message: b.message,
            details: b.details,
        },
        500..=599 => RestError::Server {
            method,
            path,
            status: s,
            code: b.code,
            message: b
                .message
                .or_else(|| (!body.is_empty()).then(|| excerpt(body))),
        },
        _ => RestError::Api {
            method,
            path,
            status: s,
            code: b.code,
            message: b.message,
            details: b.details,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::money::{Count, Price};

    #[test]
    fn order_differences_compare_listed_terms_only() {
        let req = CreateOrderRequest::buy_no(
            "KXBTC15M-X",
            Price::parse_dollars("0.30").unwrap(),
            Count::from_contracts(5),
        )
        .client_order_id("c-1")
        .build()
        .unwrap();
        // Buy NO at 0.30 is an ask at YES 0.70.
        let listed: Order = serde_json::from_str(
            r#"{"order_id":"o-1","client_order_id":"c-1","ticker":"KXBTC15M-X","book_side":"ask",
                "yes_price_dollars":"0.7000","initial_count_fp":"5.00"}"#,
        )
        .unwrap();
        assert!(order_differences(&req, &listed).is_empty());
        // Legacy integer fields are compared too; absent terms are not.
        let legacy: Order = serde_json::from_str(
            r#"{"order_id":"o-1","client_order_id":"c-1","ticker":"KXBTC15M-X","yes_price":71,"initial_count":5}"#,
        )
        .unwrap();
        assert_eq!(
            order_differences(&req, &legacy),
            ["yes price 0.7100 ≠ 0.7000"]
        );
        let other: Order = serde_json::from_str(
            r#"{"order_id":"o-1","client_order_id":"c-1","ticker":"KXBTC15M-Y","book_side":"bid",
                "yes_price_dollars":"0.7000","initial_count_fp":"6.00"}"#,
        )
        .unwrap();
        let d = order_differences(&req, &other);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].starts_with("ticker KXBTC15M-Y"), "{d:?}");
        assert!(d[2].starts_with("count 6.00"), "{d:?}");
        assert!(matches!(
            found_existing(&req, Box::new(other)),
            Err(RestError::ClientOrderIdReused { .. })
        ));
    }

    #[test]
    fn status_mapping() {
        let e = map_status(
            "GET",
            "/x",
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"error":"too many requests"}"#,
        );
        assert!(
            matches!(e, RestError::RateLimited { .. })
                && e.is_retryable_read()
                && !e.outcome_unknown()
        );
        let e = map_status(
            "GET",
            "/portfolio/balance",
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"code":"authentication_error","message":"authentication_error","details":"INCORRECT_API_KEY_SIGNATURE"}}"#,
        );
        match &e {
            RestError::Unauthorized { details, .. } => {
                assert_eq!(details.as_deref(), Some("INCORRECT_API_KEY_SIGNATURE"))
            }
            _ => panic!("{e:?}"),
        }
        assert!(!e.is_retryable_read());
        assert!(matches!(
            map_status("GET", "/x", StatusCode::NOT_FOUND, ""),
            RestError::NotFound { .. }
        ));
        assert!(matches!(
            map_status("POST", "/x", StatusCode::CONFLICT, "{}"),
            RestError::Conflict { .. }
        ));
        let e = map_status(
            "GET",
            "/x",
            StatusCode::BAD_GATEWAY,
            "<html>bad gateway</html>",
        );
        assert!(
            matches!(&e, RestError::Server { status: 502, message: Some(m), .. } if m.contains("bad gateway"))
        );
        assert!(e.is_retryable_read() && e.outcome_unknown());
        let e = map_status(
            "POST",
            "/x",
            StatusCode::BAD_REQUEST,
            r#"{"error":{"code":"invalid_order","details":"post only cross"}}"#,
        );
        assert!(
            matches!(&e, RestError::Api { status: 400, code: Some(c), .. } if c == "invalid_order")
        );
        assert!(!e.outcome_unknown());
    }

    #[test]
    fn cursor_guard() {
        let mut g = CursorGuard::new();
        assert_eq!(
            g.next_page("/m", Some("c1"), Some("A".into()), 100)
                .unwrap(),
            Some("c1".into())
        );
        assert_eq!(
            g.next_page("/m", Some("c2"), Some("B".into()), 100)
                .unwrap(),
            Some("c2".into())
        );
        assert_eq!(
            g.next_page("/m", Some(""), Some("C".into()), 100).unwrap(),
            None,
            "empty cursor = last page"
        );
        let mut g = CursorGuard::new();
        g.next_page("/m", Some("c1"), Some("A".into()), 100)
            .unwrap();
        assert!(matches!(
            g.next_page("/m", Some("c1"), Some("B".into()), 100),
            Err(RestError::PaginationLoop { .. })
        ));
        let mut g = CursorGuard::new();
        g.next_page("/m", Some("c1"), Some("A".into()), 100)
            .unwrap();
        let e = g
            .next_page("/m", Some("c2"), Some("A".into()), 100)
            .unwrap_err();
        assert!(e.to_string().contains("starts again with A"), "{e}");
        let mut g = CursorGuard::new();
        assert_eq!(
            g.next_page("/m", None, None, 100).unwrap(),
            None,
            "missing cursor = last page"
        );
        let mut g = CursorGuard::new();
        g.next_page("/m", Some("a"), None, 2).unwrap();
        assert!(g.next_page("/m", Some("b"), None, 2).is_err(), "page cap");
    }

    #[test]
    fn urls_and_segments() {
        let c = RestClient::new(RestConfig::new("http://127.0.0.1:9/trade-api/v2/"), None).unwrap();
        assert_eq!(c.url("/markets").unwrap().path(), "/trade-api/v2/markets");
        assert_eq!(seg("KXBTC15M-26MAY110145-45"), "KXBTC15M-26MAY110145-45");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
        assert!(RestClient::new(RestConfig::new("ftp://x/trade-api/v2"), None).is_err());
        assert!(RestClient::new(RestConfig::new("not a url"), None).is_err());
    }
}
