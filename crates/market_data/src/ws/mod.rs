//! WebSocket session (API.md §5): one task owns the connection; callers talk to it through a
//! bounded command channel (each command answered on a oneshot) and receive [`WsEvent`]s on a
//! bounded channel. Shutdown is a [`CancellationToken`].
//!
//! * Signed upgrade headers, fresh for every (re)connect (signed path `/trade-api/ws/v2`).
//! * Commands `subscribe`, `unsubscribe`, `update_subscription` (`add_markets`,
//!   `delete_markets`, `get_snapshot`) and `list_subscriptions`, with ids; replies are matched
//!   by id.
//! * Server pings are answered (tungstenite queues the pong; the session flushes it), and a
//!   watchdog closes a socket that has been silent for `idle_timeout`. Our own pings
//!   (`ping_interval`) must be answered within `pong_timeout` (by the pong or any other
//!   frame), which finds a half-open connection on a quiet subscription in seconds.
//! * Reconnection is a state machine (connecting → connected → backing off) with capped,
//!   jittered backoff; after a reconnect every subscription is made again (new sids, fresh
//!   snapshots). Subscriptions are identified by a stable [`SubId`] across reconnects.
//! * Order-book frames feed a [`BookSync`] shared with callers ([`SharedBooks`]); on
//!   `ResyncNeeded` the session unsubscribes the sid and subscribes again every subscription
//!   it served (re-subscribing a channel adds markets to the existing sid, so several of
//!   ours may share one).
//! * Every network await has a timeout.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, SinkExt, StreamExt};
use pipeline::auth::{Signer, WS_SIGN_PATH};
use pipeline::ids::MarketTicker;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, BackoffConfig};
use crate::book::{NoPriceConvention, OrderBook};
use crate::sync::{BookEvent, BookSync, ResyncNeeded};
use crate::wire::{
    command_text, SubscribeParams, SubscriptionInfo, UpdateAction, WsErrorMsg, WsFrame, WsMessage,
};

/// Channel names.
pub mod channel {
    pub const ORDERBOOK_DELTA: &str = "orderbook_delta";
    pub const TICKER: &str = "ticker";
    pub const TRADE: &str = "trade";
    pub const FILL: &str = "fill";
    pub const MARKET_POSITIONS: &str = "market_positions";
    pub const USER_ORDERS: &str = "user_orders";
    pub const MARKET_LIFECYCLE_V2: &str = "market_lifecycle_v2";
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Session settings; every timeout is configurable so tests run fast.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// `wss://external-api-ws.kalshi.com/trade-api/ws/v2` or `ws://127.0.0.1:PORT/trade-api/ws/v2`.
    pub url: String,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    /// Close the socket when no frame at all (data, ping, pong) arrived for this long.
    pub idle_timeout: Duration,
    /// Send our own pings this often (keeps the watchdog fed on quiet subscriptions).
    pub ping_interval: Option<Duration>,
    /// After one of our pings, the connection is dead if no frame at all (the pong or any
    /// other) arrives within this long. `None`: only `idle_timeout` applies.
    pub pong_timeout: Option<Duration>,
    /// How long a caller waits for a command's reply.
    pub command_timeout: Duration,
    pub reconnect: BackoffConfig,
    /// Jitter seed (reproducible tests); `None` = OS randomness.
    pub seed: Option<u64>,
    pub command_capacity: usize,
    /// Events are delivered with backpressure: when the channel is full the session waits
    /// (and stops reading the socket). A consumer that stalls for long lets Kalshi's
    /// per-subscription buffer overflow (error 25), which the session answers with a resync.
    pub event_capacity: usize,
    /// Too many resyncs on one connection: reconnect instead.
    pub max_resyncs_per_connection: u32,
}

impl WsConfig {
    pub fn new(url: impl Into<String>) -> WsConfig {
        WsConfig {
            url: url.into(),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            ping_interval: Some(Duration::from_secs(10)),
            pong_timeout: Some(Duration::from_secs(5)),
            command_timeout: Duration::from_secs(10),
            reconnect: BackoffConfig {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
                multiplier: 2,
            },
            seed: None,
            command_capacity: 64,
            event_capacity: 4096,
            max_resyncs_per_connection: 20,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WsError {
    #[error("the session has stopped")]
    Closed,
    #[error("not connected")]
    NotConnected,
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("server error {code}: {msg}")]
    Server { code: i64, msg: String },
    #[error("unknown subscription {0:?}")]
    UnknownSubscription(SubId),
    #[error("connection lost before the reply")]
    Disconnected,
}

/// Our stable id for a subscription; the server's sid changes at every (re)subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubId(pub u64);

/// What to subscribe to (one channel per subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub channel: String,
    pub market_tickers: Vec<MarketTicker>,
    /// Order-book channel: NO-side levels on the YES scale. Always sent for the order-book
    /// channel (default false) so the convention in use is known.
    pub use_yes_price: Option<bool>,
    pub send_initial_snapshot: Option<bool>,
    pub skip_ticker_ack: Option<bool>,
    pub index_ids: Vec<String>,
}

impl SubscribeRequest {
    pub fn new(channel: &str, market_tickers: Vec<MarketTicker>) -> SubscribeRequest {
        SubscribeRequest {
            channel: channel.to_string(),
            market_tickers,
            use_yes_price: None,
            send_initial_snapshot: None,
            skip_ticker_ack: None,
            index_ids: vec![],
        }
    }
    /// The order-book channel with an explicit NO-price convention.
    pub fn orderbook(market_tickers: Vec<MarketTicker>, use_yes_price: bool) -> SubscribeRequest {
        SubscribeRequest {
            use_yes_price: Some(use_yes_price),
            ..SubscribeRequest::new(channel::ORDERBOOK_DELTA, market_tickers)
        }
    }
    pub fn ticker(market_tickers: Vec<MarketTicker>) -> SubscribeRequest {
        SubscribeRequest::new(channel::TICKER, market_tickers)
    }
    fn is_orderbook(&self) -> bool {
        self.channel == channel::ORDERBOOK_DELTA
    }
    fn convention(&self) -> NoPriceConvention {
        NoPriceConvention::from_use_yes_price(self.use_yes_price.unwrap_or(false))
    }
    fn params(&self) -> serde_json::Value {
        let p = SubscribeParams {
            channels: vec![self.channel.clone()],
            market_tickers: self.market_tickers.clone(),
            use_yes_price: if self.is_orderbook() {
                Some(self.use_yes_price.unwrap_or(false))
            } else {
                self.use_yes_price
            },
            send_initial_snapshot: self.send_initial_snapshot,
            skip_ticker_ack: self.skip_ticker_ack,
            index_ids: self.index_ids.clone(),
        };
        serde_json::to_value(p).expect("subscribe params serialise")
    }
}

/// A confirmed subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub sub: SubId,
    pub sid: u64,
    pub channel: String,
}

/// One text frame as received.
#[derive(Debug, Clone)]
pub struct InboundFrame {
    /// Local receive time, ns since the Unix epoch (the capture's `recv_ns`).
    pub recv_ns: i64,
    /// Exactly as received (for capture files).
    pub text: String,
    /// Parsed, or the parse error's text.
    pub parsed: Result<WsFrame, String>,
}

/// What the session reports.
#[derive(Debug, Clone)]
pub enum WsEvent {
    Connected {
        attempt: u32,
    },
    Disconnected {
        reason: String,
    },
    /// A subscription was (re)confirmed with a server sid.
    Subscribed {
        sub: SubId,
        sid: u64,
        channel: String,
        tickers: Vec<MarketTicker>,
    },
    Frame(Arc<InboundFrame>),
    Book(BookEvent),
    /// The session is resubscribing `sub` because its books need a snapshot.
    Resyncing {
        sub: SubId,
        old_sid: u64,
        reason: String,
    },
    /// An error frame that answered no command of ours.
    ServerError(WsErrorMsg),
}

/// The books maintained by a session, readable by callers at any time.
#[derive(Debug, Clone, Default)]
pub struct SharedBooks(Arc<Mutex<BookSync>>);

impl SharedBooks {
    pub fn new(sync: BookSync) -> SharedBooks {
        SharedBooks(Arc::new(Mutex::new(sync)))
    }
    /// A copy of one market's book.
    pub fn book(&self, ticker: &str) -> Option<OrderBook> {
        self.with(|s| s.book(ticker).cloned())
    }
    /// Runs `f` with the books locked (keep it short: the session waits meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&BookSync) -> R) -> R {
        f(&self.0.lock().expect("book lock poisoned"))
    }
    fn with_mut<R>(&self, f: impl FnOnce(&mut BookSync) -> R) -> R {
        f(&mut self.0.lock().expect("book lock poisoned"))
    }
}

enum Command {
    Subscribe(
        SubscribeRequest,
        oneshot::Sender<Result<Subscribed, WsError>>,
    ),
    Unsubscribe(SubId, oneshot::Sender<Result<(), WsError>>),
    Update(
        SubId,
        UpdateAction,
        Vec<MarketTicker>,
        oneshot::Sender<Result<Vec<MarketTicker>, WsError>>,
    ),
    List(oneshot::Sender<Result<Vec<SubscriptionInfo>, WsError>>),
    Reconnect(oneshot::Sender<Result<(), WsError>>),
}

/// Talks to the session task. Cheap to clone.
#[derive(Clone)]
pub struct WsHandle {
    tx: mpsc::Sender<Command>,
    books: SharedBooks,
    command_timeout: Duration,
}

impl WsHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, WsError>>) -> Command,
    ) -> Result<T, WsError> {
        let (tx, rx) = oneshot::channel();
        timeout(self.command_timeout, self.tx.send(make(tx)))
            .await
            .map_err(|_| WsError::Timeout(self.command_timeout))?
            .map_err(|_| WsError::Closed)?;
        timeout(self.command_timeout, rx)
            .await
            .map_err(|_| WsError::Timeout(self.command_timeout))?
            .map_err(|_| WsError::Closed)?
    }

    /// Subscribes; kept across reconnects until unsubscribed. Returns once the server
    /// confirms (possibly after a reconnect).
    pub async fn subscribe(&self, req: SubscribeRequest) -> Result<Subscribed, WsError> {
        self.call(|tx| Command::Subscribe(req, tx)).await
    }
    pub async fn unsubscribe(&self, sub: SubId) -> Result<(), WsError> {
        self.call(|tx| Command::Unsubscribe(sub, tx)).await
    }
    /// Adds markets to a subscription; returns the subscription's markets.
    pub async fn add_markets(
        &self,
        sub: SubId,
        tickers: Vec<MarketTicker>,
    ) -> Result<Vec<MarketTicker>, WsError> {
        self.call(|tx| Command::Update(sub, UpdateAction::AddMarkets, tickers, tx))
            .await
    }
    pub async fn delete_markets(
        &self,
        sub: SubId,
        tickers: Vec<MarketTicker>,
    ) -> Result<Vec<MarketTicker>, WsError> {
        self.call(|tx| Command::Update(sub, UpdateAction::DeleteMarkets, tickers, tx))
            .await
    }
    /// Asks for fresh `orderbook_snapshot`s without changing the delta stream. Answers when the
    /// server's `ok` arrives (if the server sends none, the call times out; the snapshots
    /// still arrive as frames).
    pub async fn get_snapshot(
        &self,
        sub: SubId,
        tickers: Vec<MarketTicker>,
    ) -> Result<Vec<MarketTicker>, WsError> {
        self.call(|tx| Command::Update(sub, UpdateAction::GetSnapshot, tickers, tx))
            .await
    }
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>, WsError> {
        self.call(Command::List).await
    }
    /// Drops the connection and reconnects (subscriptions are restored).
    pub async fn reconnect(&self) -> Result<(), WsError> {
        self.call(Command::Reconnect).await
    }
    pub fn books(&self) -> SharedBooks {
        self.books.clone()
    }
}

/// Starts a session. Returns the handle, the event receiver and the task (which ends after
/// `shutdown` is cancelled).
pub fn spawn(
    cfg: WsConfig,
    signer: Option<Signer>,
    shutdown: CancellationToken,
) -> (WsHandle, mpsc::Receiver<WsEvent>, JoinHandle<()>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(cfg.command_capacity.max(1));
    let (ev_tx, ev_rx) = mpsc::channel(cfg.event_capacity.max(1));
    let books = SharedBooks::default();
    let handle = WsHandle {
        tx: cmd_tx,
        books: books.clone(),
        command_timeout: cfg.command_timeout,
    };
    let backoff = Backoff::new(cfg.reconnect.clone(), cfg.seed);
    let session = Session {
        cfg,
        signer,
        shutdown,
        cmd_rx,
        cmd_open: true,
        ev_tx,
        books,
        subs: BTreeMap::new(),
        pending: HashMap::new(),
        next_cmd_id: 1,
        next_sub: 1,
        backoff,
        resyncs: 0,
        got_frame: false,
    };
    let task = tokio::spawn(session.run());
    (handle, ev_rx, task)
}

struct SubState {
    req: SubscribeRequest,
    sid: Option<u64>,
    waiters: Vec<oneshot::Sender<Result<Subscribed, WsError>>>,
}

enum Pending {
    Subscribe(SubId),
    Unsubscribe {
        reply: Option<oneshot::Sender<Result<(), WsError>>>,
        /// Subscriptions to make again once the sid is gone (a resync, or others that
        /// shared the sid).
        resubscribe: Vec<SubId>,
    },
    Update {
        sub: SubId,
        action: UpdateAction,
        tickers: Vec<MarketTicker>,
        reply: oneshot::Sender<Result<Vec<MarketTicker>, WsError>>,
    },
    List(oneshot::Sender<Result<Vec<SubscriptionInfo>, WsError>>),
}

/// Why a connection ended.
enum End {
    Shutdown,
    Lost(String),
}

struct Session {
    cfg: WsConfig,
    signer: Option<Signer>,
    shutdown: CancellationToken,
    cmd_rx: mpsc::Receiver<Command>,
    cmd_open: bool,
    ev_tx: mpsc::Sender<WsEvent>,
    books: SharedBooks,
    subs: BTreeMap<SubId, SubState>,
    pending: HashMap<u64, Pending>,
    next_cmd_id: u64,
    next_sub: u64,
    backoff: Backoff,
    resyncs: u32,
    got_frame: bool,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Session {
    async fn emit(&self, ev: WsEvent) {
        // A dropped receiver is not an error: the books are still maintained.
        let _ = self.ev_tx.send(ev).await;
    }

    async fn run(mut self) {
        let mut attempt: u32 = 0;
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            attempt += 1;
            let connected = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = self.connect() => r,
            };
            let end = match connected {
                Ok(ws) => {
                    tracing::info!(url = %self.cfg.url, attempt, "websocket connected");
                    self.emit(WsEvent::Connected { attempt }).await;
                    self.got_frame = false;
                    self.connection(ws).await
                }
                Err(reason) => End::Lost(reason),
            };
            self.after_disconnect().await;
            match end {
                End::Shutdown => break,
                End::Lost(reason) => {
                    tracing::warn!(url = %self.cfg.url, %reason, "websocket disconnected");
                    self.emit(WsEvent::Disconnected { reason }).await;
                }
            }
            if self.got_frame {
                self.backoff.reset();
            }
            let delay = self.backoff.next_delay();
            tracing::info!(?delay, "reconnecting after backoff");
            let until = Instant::now() + delay;
            // Keep serving commands while waiting.
            loop {
                tokio::select! {
                    _ = self.shutdown.cancelled() => break,
                    _ = sleep_until(until) => break,
                    c = self.cmd_rx.recv(), if self.cmd_open => match c {
                        Some(c) => self.command_offline(c),
                        None => self.cmd_open = false,
                    },
                }
            }
        }
        for (_, s) in std::mem::take(&mut self.subs) {
            for w in s.waiters {
                let _ = w.send(Err(WsError::Closed));
            }
        }
        tracing::info!("websocket session stopped");
    }

    async fn connect(&self) -> Result<Ws, String> {
        let mut req = self
            .cfg
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad websocket url {}: {e}", self.cfg.url))?;
        if let Some(s) = &self.signer {
            for (k, v) in s.headers("GET", WS_SIGN_PATH).pairs() {
                req.headers_mut()
                    .insert(k, HeaderValue::from_str(v).map_err(|e| e.to_string())?);
            }
        }
        match timeout(
            self.cfg.connect_timeout,
            tokio_tungstenite::connect_async_tls_with_config(req, None, true, None),
        )
        .await
        {
            Err(_) => Err(format!(
                "connect timed out after {:?}",
                self.cfg.connect_timeout
            )),
            Ok(Err(e)) => Err(format!("connect failed: {e}")),
            Ok(Ok((ws, _resp))) => Ok(ws),
        }
    }

    async fn send(&mut self, ws: &mut Ws, text: String) -> Result<(), String> {
        match timeout(self.cfg.write_timeout, ws.send(Message::Text(text.into()))).await {
            Err(_) => Err(format!(
                "write timed out after {:?}",
                self.cfg.write_timeout
            )),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Ok(Ok(())) => Ok(()),
        }
    }

    fn cmd_id(&mut self) -> u64 {
        let id = self.next_cmd_id;
        self.next_cmd_id += 1;
        id
    }

    async fn send_subscribe(&mut self, ws: &mut Ws, sub: SubId) -> Result<(), String> {
        let Some(params) = self.subs.get(&sub).map(|s| s.req.params()) else {
            return Ok(());
        };
        let id = self.cmd_id();
        let text = command_text(id, "subscribe", Some(params));
        self.pending.insert(id, Pending::Subscribe(sub));
        self.send(ws, text).await
    }

    async fn send_unsubscribe(
        &mut self,
        ws: &mut Ws,
        sid: u64,
        pending: Pending,
    ) -> Result<(), String> {
        let id = self.cmd_id();
        self.pending.insert(id, pending);
        self.send(
            ws,
            command_text(id, "unsubscribe", Some(serde_json::json!({"sids": [sid]}))),
        )
        .await
    }

    /// One connection's life.
    async fn connection(&mut self, mut ws: Ws) -> End {
        self.next_cmd_id = 1;
        self.pending.clear();
        self.resyncs = 0;
        let subs: Vec<SubId> = self.subs.keys().copied().collect();
        for sub in subs {
            if let Err(e) = self.send_subscribe(&mut ws, sub).await {
                return End::Lost(e);
            }
        }
        let mut last_rx = Instant::now();
        let ping_every = self.cfg.ping_interval.unwrap_or(Duration::from_secs(3600));
        let mut next_ping = Instant::now() + ping_every;
        // When our oldest ping not yet followed by any frame was sent.
        let mut unanswered_since: Option<Instant> = None;
        loop {
            let watchdog = last_rx + self.cfg.idle_timeout;
            // The nearer of the two liveness deadlines: silence, or an unanswered ping
            // (`Some(pong_timeout)`). Formatted only when it fires: this loop runs per frame.
            let (deadline, unanswered) = match (unanswered_since, self.cfg.pong_timeout) {
                (Some(at), Some(t)) if at + t < watchdog => (at + t, Some(t)),
                _ => (watchdog, None),
            };
            let step = tokio::select! {
                _ = self.shutdown.cancelled() => {
                    let _ = timeout(self.cfg.write_timeout, ws.close(None)).await;
                    return End::Shutdown;
                }
                _ = sleep_until(deadline) => match ws.next().now_or_never() {
                    // A frame was waiting (this task was busy, e.g. delivering events): the
                    // connection is alive.
                    Some(m) => self.on_read(&mut ws, m, &mut last_rx, &mut unanswered_since).await,
                    None => Err(match unanswered {
                        Some(t) => format!("no answer to a ping within {t:?}: connection presumed dead"),
                        None => format!("watchdog: no frame for {:?}", self.cfg.idle_timeout),
                    }),
                },
                _ = sleep_until(next_ping), if self.cfg.ping_interval.is_some() => {
                    next_ping = Instant::now() + ping_every;
                    match timeout(self.cfg.write_timeout, ws.send(Message::Ping(Vec::new().into()))).await {
                        Ok(Ok(())) => {
                            unanswered_since.get_or_insert_with(Instant::now);
                            Ok(())
                        }
                        Ok(Err(e)) => Err(format!("ping failed: {e}")),
                        Err(_) => Err("ping write timed out".to_string()),
                    }
                }
                c = self.cmd_rx.recv(), if self.cmd_open => match c {
                    Some(c) => self.command_online(&mut ws, c).await,
                    None => { self.cmd_open = false; Ok(()) }
                },
                m = ws.next() => self.on_read(&mut ws, m, &mut last_rx, &mut unanswered_since).await,
            };
            match step {
                Ok(()) => {}
                Err(reason) if reason == RECONNECT => {
                    let _ = timeout(self.cfg.write_timeout, ws.close(None)).await;
                    return End::Lost("reconnect requested".into());
                }
                Err(reason) => return End::Lost(reason),
            }
        }
    }

    /// Cleans up after a connection ends: books invalid, sids forgotten, pending replies
    /// failed (subscription waiters stay until the subscription is made again).
    async fn after_disconnect(&mut self) {
        let mut evs = Vec::new();
        self.books.with_mut(|s| s.connection_lost(&mut evs));
        for e in evs {
            self.emit(WsEvent::Book(e)).await;
        }
        for s in self.subs.values_mut() {
            s.sid = None;
        }
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Unsubscribe { reply: Some(r), .. } => {
                    let _ = r.send(Err(WsError::Disconnected));
                }
                Pending::Update { reply, .. } => {
                    let _ = reply.send(Err(WsError::Disconnected));
                }
                Pending::List(r) => {
                    let _ = r.send(Err(WsError::Disconnected));
                }
                _ => {}
            }
        }
    }

    fn command_offline(&mut self, c: Command) {
        match c {
            Command::Subscribe(req, reply) => {
                let sub = SubId(self.next_sub);
                self.next_sub += 1;
                self.subs.insert(
                    sub,
                    SubState {
                        req,
                        sid: None,
                        waiters: vec![reply],
                    },
                );
            }
            Command::Unsubscribe(sub, reply) => {
                let r = match self.subs.remove(&sub) {
                    Some(s) => {
                        for w in s.waiters {
                            let _ = w.send(Err(WsError::Closed));
                        }
                        Ok(())
                    }
                    None => Err(WsError::UnknownSubscription(sub)),
                };
                let _ = reply.send(r);
            }
            Command::Update(sub, action, tickers, reply) => {
                // Market lists can change offline; they apply at the next subscription.
                let r = match self.subs.get_mut(&sub) {
                    None => Err(WsError::UnknownSubscription(sub)),
                    Some(s) => match action {
                        UpdateAction::AddMarkets => {
                            add_unique(&mut s.req.market_tickers, &tickers);
                            Ok(s.req.market_tickers.clone())
                        }
                        UpdateAction::DeleteMarkets => {
                            s.req.market_tickers.retain(|t| !tickers.contains(t));
                            Ok(s.req.market_tickers.clone())
                        }
                        UpdateAction::GetSnapshot => Err(WsError::NotConnected),
                    },
                };
                let _ = reply.send(r);
            }
            Command::List(reply) => {
                let _ = reply.send(Err(WsError::NotConnected));
            }
            Command::Reconnect(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    async fn command_online(&mut self, ws: &mut Ws, c: Command) -> Result<(), String> {
        match c {
            Command::Subscribe(req, reply) => {
                let sub = SubId(self.next_sub);
                self.next_sub += 1;
                self.subs.insert(
                    sub,
                    SubState {
                        req,
                        sid: None,
                        waiters: vec![reply],
                    },
                );
                self.send_subscribe(ws, sub).await
            }
            Command::Unsubscribe(sub, reply) => match self.subs.remove(&sub) {
                None => {
                    let _ = reply.send(Err(WsError::UnknownSubscription(sub)));
                    Ok(())
                }
                Some(s) => {
                    for w in s.waiters {
                        let _ = w.send(Err(WsError::Closed));
                    }
                    match s.sid {
                        Some(sid) => {
                            // Other subscriptions served by the same sid lose it too: they
                            // are made again (fresh snapshots) once it is gone.
                            let others = self.detach_sid(sid);
                            self.send_unsubscribe(
                                ws,
                                sid,
                                Pending::Unsubscribe {
                                    reply: Some(reply),
                                    resubscribe: others,
                                },
                            )
                            .await
                        }
                        None => {
                            // Not confirmed yet: a late `subscribed` is unsubscribed on arrival.
                            let _ = reply.send(Ok(()));
                            Ok(())
                        }
                    }
                }
            },
            Command::Update(sub, action, tickers, reply) => {
                let Some(s) = self.subs.get(&sub) else {
                    let _ = reply.send(Err(WsError::UnknownSubscription(sub)));
                    return Ok(());
                };
                let Some(sid) = s.sid else {
                    let _ = reply.send(Err(WsError::NotConnected));
                    return Ok(());
                };
                let id = self.cmd_id();
                let text = command_text(
                    id,
                    "update_subscription",
                    Some(
                        serde_json::json!({"sids": [sid], "market_tickers": tickers, "action": action}),
                    ),
                );
                self.pending.insert(
                    id,
                    Pending::Update {
                        sub,
                        action,
                        tickers,
                        reply,
                    },
                );
                self.send(ws, text).await
            }
            Command::List(reply) => {
                let id = self.cmd_id();
                self.pending.insert(id, Pending::List(reply));
                self.send(ws, command_text(id, "list_subscriptions", None))
                    .await
            }
            Command::Reconnect(reply) => {
                let _ = reply.send(Ok(()));
                Err(RECONNECT.to_string())
            }
        }
    }

    /// One read from the socket: any frame proves the connection alive.
    async fn on_read(
        &mut self,
        ws: &mut Ws,
        m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        last_rx: &mut Instant,
        unanswered_since: &mut Option<Instant>,
    ) -> Result<(), String> {
        let msg = match m {
            None => return Err("connection closed".to_string()),
            Some(Err(e)) => return Err(format!("read failed: {e}")),
            Some(Ok(msg)) => msg,
        };
        *last_rx = Instant::now();
        *unanswered_since = None;
        match msg {
            Message::Text(t) => self.on_text(ws, t.as_str().to_string()).await,
            Message::Ping(_) => {
                // tungstenite queued the pong; push it out now.
                match timeout(self.cfg.write_timeout, ws.flush()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("pong failed: {e}")),
                    Err(_) => Err("pong write timed out".to_string()),
                }
            }
            Message::Close(f) => Err(format!("closed by server: {f:?}")),
            _ => Ok(()),
        }
    }

    async fn on_text(&mut self, ws: &mut Ws, text: String) -> Result<(), String> {
        self.got_frame = true;
        let recv_ns = now_ns();
        let parsed = WsFrame::parse(&text).map_err(|e| e.to_string());
        if let Err(e) = &parsed {
            tracing::warn!(error = %e, "unparseable websocket frame");
        }
        // Conventions must be known before the subscription's snapshots are applied.
        if let Ok(f) = &parsed {
            if let (WsMessage::Subscribed { .. }, Some(id), Some(sid)) = (&f.msg, f.id, f.sid) {
                if let Some(Pending::Subscribe(sub)) = self.pending.get(&id) {
                    if let Some(s) = self.subs.get(sub) {
                        if s.req.is_orderbook() {
                            let conv = s.req.convention();
                            self.books.with_mut(|b| b.set_convention(sid, conv));
                        }
                    }
                }
            }
        }
        let mut evs = Vec::new();
        if let Ok(f) = &parsed {
            self.books.with_mut(|b| b.apply(f, &mut evs));
        }
        let frame = Arc::new(InboundFrame {
            recv_ns,
            text,
            parsed,
        });
        self.emit(WsEvent::Frame(frame.clone())).await;
        if let Ok(f) = &frame.parsed {
            self.on_reply(ws, f).await?;
        }
        for e in evs {
            let resync = match &e {
                BookEvent::ResyncNeeded(r) => Some(r.clone()),
                _ => None,
            };
            self.emit(WsEvent::Book(e)).await;
            if let Some(r) = resync {
                self.resync(ws, r).await?;
            }
        }
        Ok(())
    }

    async fn on_reply(&mut self, ws: &mut Ws, f: &WsFrame) -> Result<(), String> {
        let pending = f.id.filter(|id| *id > 0).and_then(|id| match &f.msg {
            WsMessage::Subscribed { .. }
            | WsMessage::Unsubscribed
            | WsMessage::Ok(_)
            | WsMessage::Error(_) => self.pending.remove(&id),
            _ => None,
        });
        match (&f.msg, pending) {
            (WsMessage::Subscribed { channel }, Some(Pending::Subscribe(sub))) => {
                let Some(sid) = f.sid else {
                    return Err("subscribed reply without a sid".into());
                };
                match self.subs.get_mut(&sub) {
                    Some(s) => {
                        s.sid = Some(sid);
                        let ch = channel.clone().unwrap_or_else(|| s.req.channel.clone());
                        for w in s.waiters.drain(..) {
                            let _ = w.send(Ok(Subscribed {
                                sub,
                                sid,
                                channel: ch.clone(),
                            }));
                        }
                        let tickers = s.req.market_tickers.clone();
                        tracing::info!(sub = sub.0, sid, channel = %ch, markets = tickers.len(), "subscribed");
                        self.emit(WsEvent::Subscribed {
                            sub,
                            sid,
                            channel: ch,
                            tickers,
                        })
                        .await;
                    }
                    None => {
                        // Unsubscribed while the subscribe was in flight.
                        let others = self.detach_sid(sid);
                        self.send_unsubscribe(
                            ws,
                            sid,
                            Pending::Unsubscribe {
                                reply: None,
                                resubscribe: others,
                            },
                        )
                        .await?;
                    }
                }
            }
            (WsMessage::Unsubscribed, Some(Pending::Unsubscribe { reply, resubscribe })) => {
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
                for sub in resubscribe {
                    self.send_subscribe(ws, sub).await?;
                }
            }
            (
                WsMessage::Ok(ok),
                Some(Pending::Update {
                    sub,
                    action,
                    tickers,
                    reply,
                }),
            ) => {
                let mut now = Vec::new();
                if let Some(s) = self.subs.get_mut(&sub) {
                    match action {
                        UpdateAction::AddMarkets => add_unique(&mut s.req.market_tickers, &tickers),
                        UpdateAction::DeleteMarkets => {
                            s.req.market_tickers.retain(|t| !tickers.contains(t))
                        }
                        UpdateAction::GetSnapshot => {}
                    }
                    if let Some(m) = &ok.market_tickers {
                        if action != UpdateAction::GetSnapshot {
                            s.req.market_tickers = m.clone();
                        }
                    }
                    now = s.req.market_tickers.clone();
                }
                if action == UpdateAction::DeleteMarkets {
                    self.books.with_mut(|b| {
                        for t in &tickers {
                            b.remove_market(t.as_str());
                        }
                    });
                }
                let _ = reply.send(Ok(now));
            }
            (WsMessage::Ok(ok), Some(Pending::List(reply))) => {
                let _ = reply.send(Ok(ok.subscriptions.clone().unwrap_or_default()));
            }
            (WsMessage::Error(e), Some(p)) => {
                let err = WsError::Server {
                    code: e.code,
                    msg: e.msg.clone(),
                };
                tracing::warn!(code = e.code, msg = %e.msg, "command refused");
                match p {
                    Pending::Subscribe(sub) => {
                        if let Some(s) = self.subs.remove(&sub) {
                            for w in s.waiters {
                                let _ = w.send(Err(err.clone()));
                            }
                        }
                    }
                    Pending::Unsubscribe { reply, resubscribe } => {
                        if let Some(r) = reply {
                            let _ = r.send(Err(err));
                        }
                        // The old sid is gone either way: subscribe again if resyncing.
                        for sub in resubscribe {
                            self.send_subscribe(ws, sub).await?;
                        }
                    }
                    Pending::Update { reply, .. } => {
                        let _ = reply.send(Err(err));
                    }
                    Pending::List(reply) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            (WsMessage::Error(e), None) => {
                tracing::warn!(code = e.code, msg = %e.msg, "server error");
                self.emit(WsEvent::ServerError(e.clone())).await;
            }
            (_, Some(p)) => {
                // A reply of an unexpected type: keep waiting for the right one.
                if let Some(id) = f.id {
                    self.pending.insert(id, p);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Detaches every subscription served by `sid` (forgets the sid) and returns them.
    /// Several of ours can share one sid: subscribing again to a channel adds markets to the
    /// existing subscription (API.md §5.2).
    fn detach_sid(&mut self, sid: u64) -> Vec<SubId> {
        let mut out = Vec::new();
        for (sub, s) in self.subs.iter_mut() {
            if s.sid == Some(sid) {
                s.sid = None;
                out.push(*sub);
            }
        }
        out
    }

    /// Unsubscribe `r.sid`, then subscribe again every subscription it served.
    async fn resync(&mut self, ws: &mut Ws, r: ResyncNeeded) -> Result<(), String> {
        // A sid already detached (resync in flight) has no owner any more.
        let owners = self.detach_sid(r.sid);
        if owners.is_empty() {
            tracing::debug!(sid = r.sid, reason = ?r.reason, "resync needed on a sid no subscription holds (already resyncing)");
            return Ok(());
        }
        self.resyncs += 1;
        if self.resyncs > self.cfg.max_resyncs_per_connection {
            return Err(format!("{} resyncs on one connection", self.resyncs));
        }
        for &sub in &owners {
            tracing::warn!(sub = sub.0, sid = r.sid, reason = ?r.reason, markets = r.tickers.len(), "resubscribing for fresh snapshots");
            self.emit(WsEvent::Resyncing {
                sub,
                old_sid: r.sid,
                reason: r.reason.tag().to_string(),
            })
            .await;
        }
        self.send_unsubscribe(
            ws,
            r.sid,
            Pending::Unsubscribe {
                reply: None,
                resubscribe: owners,
            },
        )
        .await
    }
}

const RECONNECT: &str = "\u{0}reconnect";

fn add_unique(v: &mut Vec<MarketTicker>, add: &[MarketTicker]) {
    for t in add {
        if !v.contains(t) {
            v.push(t.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderbook_subscribe_always_states_the_convention() {
        let r = SubscribeRequest::new(channel::ORDERBOOK_DELTA, vec!["A".into()]);
        assert_eq!(r.params()["use_yes_price"], serde_json::json!(false));
        let r = SubscribeRequest::orderbook(vec!["A".into()], true);
        assert_eq!(r.params()["use_yes_price"], serde_json::json!(true));
        assert_eq!(r.convention(), NoPriceConvention::YesScale);
        let t = SubscribeRequest::ticker(vec![]);
        assert!(t.params().get("use_yes_price").is_none());
        assert!(
            t.params().get("market_tickers").is_none(),
            "no selector = all markets"
        );
    }
}
