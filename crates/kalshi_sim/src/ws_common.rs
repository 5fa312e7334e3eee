//! The WebSocket API both servers speak at `/trade-api/ws/v2` (API.md §5): the signed
//! upgrade, commands with ids (`subscribe`, `unsubscribe`, `update_subscription`,
//! `list_subscriptions`), sid bookkeeping, error replies (§5.7), order-book snapshots placed
//! in the per-sid `seq` stream exactly where the book they show was, heartbeat pings,
//! injected faults (dropped connections, paused streams, `seq` gaps and repeats) and slow
//! consumers dropped with error 25. What a server sends for its own events is its [`Feed`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;

use crate::engine::{LifecycleKind, MarketInfo};
use crate::faults::{Faults, SeqFault};
use crate::http_common::{authenticate, Server};
use crate::server::rest::ApiError;
use crate::server::WS_PATH;
use crate::wire;

/// Events that happened together, numbered in the order they happened.
#[derive(Debug)]
pub(crate) struct Batch<E> {
    pub no: u64,
    pub events: Vec<E>,
}

/// The batches of a server's events.
pub(crate) type Batches<S> = Batch<<S as Server>::Event>;

/// What a server sends a WebSocket connection for its events: the connection's own state
/// and the messages of each channel.
pub(crate) trait Feed: Sized + Send + 'static {
    type Server: Server;
    /// Logged when a connection falls behind the queue.
    const SLOW_CONSUMER: &'static str;
    /// The feed of a new connection of `caller` (its upgrade is accepted).
    fn connect(server: &Self::Server, caller: <Self::Server as Server>::Caller) -> Self;
    /// Sends an `orderbook_snapshot` on `sid` (see [`Conn::sequenced_with`]).
    fn snapshot(c: &mut Conn<Self>, sid: u64, msg: &wire::WsSnapshot);
    /// `send_initial_snapshot` of the ticker channel: the current ticker of `tickers`.
    fn initial_tickers(c: &mut Conn<Self>, sid: u64, tickers: &[String]);
    /// Sends the events of a batch to the subscriptions they match.
    fn deliver(c: &mut Conn<Self>, batch: &Batches<Self::Server>);
    /// After every accepted `subscribe` command.
    fn subscribed(_server: &Self::Server) {}
    /// `n` messages are being handed to the socket.
    fn sent(_server: &Self::Server, _n: usize) {}
}

pub(crate) fn router<F: Feed>(server: Arc<F::Server>) -> Router {
    Router::new()
        .route(WS_PATH, get(upgrade::<F>))
        .with_state(server)
}

async fn upgrade<F: Feed>(
    State(s): State<Arc<F::Server>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Authentication first: a bad signature is a 401 whatever else is wrong.
    let caller = match authenticate(&*s, "GET", WS_PATH, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => {
            return ApiError::new(
                400,
                "bad_request",
                "expected a WebSocket upgrade",
                r.body_text(),
            )
            .into_response()
        }
    };
    if let Some(f) = s.faults() {
        f.count_ws_connection();
    }
    let feed = F::connect(&s, caller);
    ws.on_upgrade(move |socket| Conn::new(s, feed).run(socket))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Channel {
    OrderbookDelta,
    Ticker,
    Trade,
    Fill,
    MarketPositions,
    UserOrders,
    MarketLifecycleV2,
}

impl Channel {
    fn parse(s: &str) -> Option<Channel> {
        Some(match s {
            "orderbook_delta" => Channel::OrderbookDelta,
            "ticker" => Channel::Ticker,
            "trade" => Channel::Trade,
            "fill" => Channel::Fill,
            "market_positions" => Channel::MarketPositions,
            "user_orders" => Channel::UserOrders,
            "market_lifecycle_v2" => Channel::MarketLifecycleV2,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Channel::OrderbookDelta => "orderbook_delta",
            Channel::Ticker => "ticker",
            Channel::Trade => "trade",
            Channel::Fill => "fill",
            Channel::MarketPositions => "market_positions",
            Channel::UserOrders => "user_orders",
            Channel::MarketLifecycleV2 => "market_lifecycle_v2",
        }
    }
}

pub(crate) struct Sub {
    channel: Channel,
    /// `None` = every market.
    markets: Option<BTreeSet<String>>,
    use_yes_price: bool,
    /// Last `seq` sent (order-book channel).
    seq: u64,
    /// Per market: the batch its snapshot reflects; later batches are applied.
    baseline: BTreeMap<String, u64>,
    /// Per market: the market id its snapshot showed.
    pub market_ids: BTreeMap<String, String>,
}

impl Sub {
    fn has(&self, ticker: &str) -> bool {
        self.markets.as_ref().is_none_or(|m| m.contains(ticker))
    }
}

/// One WebSocket connection: its subscriptions and the messages going out next.
pub(crate) struct Conn<F: Feed> {
    pub server: Arc<F::Server>,
    pub feed: F,
    events: broadcast::Receiver<Arc<Batches<F::Server>>>,
    /// A batch read ahead while catching up to a snapshot, delivered next.
    held: Option<Arc<Batches<F::Server>>>,
    pub subs: BTreeMap<u64, Sub>,
    next_sid: u64,
    pub out: Vec<Message>,
}

/// A command's error (API.md §5.7).
struct WsError(u32, &'static str);

/// A JSON text message.
pub(crate) fn text(v: &impl Serialize) -> Message {
    Message::Text(serde_json::to_string(v).unwrap_or_default().into())
}

fn selector(params: &Value) -> Option<Vec<String>> {
    if let Some(arr) = params.get("market_tickers").and_then(Value::as_array) {
        return Some(
            arr.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        );
    }
    params
        .get("market_ticker")
        .and_then(Value::as_str)
        .map(|t| vec![t.to_string()])
}

/// The next change of an optional watch; never, without one.
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

impl<F: Feed> Conn<F> {
    fn new(server: Arc<F::Server>, feed: F) -> Conn<F> {
        Conn {
            events: server.front().tx.subscribe(),
            held: None,
            server,
            feed,
            subs: BTreeMap::new(),
            next_sid: 1,
            out: Vec::new(),
        }
    }

    fn faults(&self) -> Option<&Faults> {
        self.server.faults()
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut tx, mut rx) = socket.split();
        let mut drop_rx = self.faults().map(Faults::drop_rx);
        if let Some(r) = drop_rx.as_mut() {
            r.borrow_and_update();
        }
        let mut pause_rx = self.faults().map(Faults::pause_rx);
        let mut paused = pause_rx.as_mut().is_some_and(|r| *r.borrow_and_update());
        let mut shutdown = self.server.front().shutdown.clone();
        let every = self.server.front().ws.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            if let Some(b) = self.held.take() {
                if !paused {
                    F::deliver(&mut self, &b);
                } else {
                    self.held = Some(b);
                }
            }
            tokio::select! {
                // Control first, then commands, then the event stream.
                biased;
                r = changed(&mut drop_rx) => {
                    if r.is_ok() {
                        // Abrupt: no close frame, the TCP connection just goes away.
                        if let Some(f) = self.faults() {
                            f.count_ws_dropped();
                        }
                        tracing::info!("websocket dropped by fault");
                        return;
                    }
                }
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                    let _ = tx.send(Message::Close(None)).await;
                    break;
                }
                r = changed(&mut pause_rx) => {
                    if r.is_ok() {
                        paused = pause_rx.as_mut().is_some_and(|r| *r.borrow_and_update());
                    }
                }
                m = rx.next() => match m {
                    Some(Ok(Message::Text(t))) => self.command(t.as_str()),
                    Some(Ok(Message::Binary(b))) => self.command(&String::from_utf8_lossy(&b)),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                b = self.events.recv(), if !paused && self.held.is_none() => match b {
                    Ok(batch) => F::deliver(&mut self, &batch),
                    Err(RecvError::Lagged(n)) => self.overflow(n),
                    Err(RecvError::Closed) => break,
                },
                _ = ping.tick() => self.out.push(Message::Ping(axum::body::Bytes::from_static(b"heartbeat"))),
            }
            F::sent(&self.server, self.out.len());
            for m in self.out.drain(..) {
                if tx.feed(m).await.is_err() {
                    return;
                }
            }
            if tx.flush().await.is_err() {
                return;
            }
        }
    }

    fn error(&mut self, id: u64, e: WsError, extra: Option<(&str, Value)>) {
        let mut msg = json!({ "code": e.0, "msg": e.1 });
        if let Some((k, v)) = extra {
            msg[k] = v;
        }
        let mut env = json!({ "type": "error", "msg": msg });
        if id > 0 {
            env["id"] = json!(id);
        }
        self.out.push(text(&env));
    }

    fn respond(&mut self, id: u64, mut v: Value) {
        if id > 0 {
            v["id"] = json!(id);
        }
        self.out.push(text(&v));
    }

    fn command(&mut self, raw: &str) {
        let v: Value = match serde_json::from_str(raw) {
            Ok(v @ Value::Object(_)) => v,
            _ => return self.error(0, WsError(1, "Unable to process message"), None),
        };
        let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
        let params = v.get("params").cloned();
        match v.get("cmd").and_then(Value::as_str) {
            Some("subscribe") => self.subscribe(id, params),
            Some("unsubscribe") => self.unsubscribe(id, params),
            Some("update_subscription") => self.update(id, params),
            Some("list_subscriptions") => {
                let list: Vec<Value> = self
                    .subs
                    .iter()
                    .map(|(sid, s)| json!({ "channel": s.channel.name(), "sid": sid }))
                    .collect();
                self.respond(id, json!({ "type": "ok", "msg": list }));
            }
            Some(_) => self.error(id, WsError(5, "Unknown command"), None),
            None => self.error(id, WsError(1, "Unable to process message"), None),
        }
    }

    /// Checks every ticker is a market now; reports the first that is not.
    fn check_markets(&mut self, id: u64, tickers: &[String]) -> bool {
        let missing = self
            .server
            .read(|v| tickers.iter().find(|t| v.market(t).is_none()).cloned())
            .0;
        match missing {
            Some(t) => {
                self.error(
                    id,
                    WsError(16, "Market not found"),
                    Some(("market_ticker", json!(t))),
                );
                false
            }
            None => true,
        }
    }

    fn subscribe(&mut self, id: u64, params: Option<Value>) {
        let Some(params) = params.filter(Value::is_object) else {
            return self.error(id, WsError(2, "Params required"), None);
        };
        let names: Vec<String> = params
            .get("channels")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            return self.error(id, WsError(3, "Channels required"), None);
        }
        let mut channels = Vec::new();
        for n in &names {
            match Channel::parse(n) {
                Some(c) => channels.push(c),
                None => {
                    return self.error(
                        id,
                        WsError(8, "Unknown channel name"),
                        Some(("channel", json!(n))),
                    )
                }
            }
        }
        let markets = selector(&params);
        if channels.contains(&Channel::OrderbookDelta)
            && markets.as_ref().is_none_or(|m| m.is_empty())
        {
            return self.error(id, WsError(14, "Market Ticker required"), None);
        }
        if let Some(m) = &markets {
            if !self.check_markets(id, m) {
                return;
            }
        }
        let use_yes_price = params
            .get("use_yes_price")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let initial_ticker = params
            .get("send_initial_snapshot")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        for ch in channels {
            // Idempotent: an existing subscription to the channel gains the new markets.
            let existing = self
                .subs
                .iter()
                .find(|(_, s)| s.channel == ch)
                .map(|(sid, _)| *sid);
            let (sid, added): (u64, Vec<String>) = match existing {
                Some(sid) => {
                    let sub = self.subs.get_mut(&sid).expect("sub");
                    let mut added = Vec::new();
                    if let (Some(have), Some(want)) = (sub.markets.as_mut(), markets.as_ref()) {
                        for t in want {
                            if have.insert(t.clone()) {
                                added.push(t.clone());
                            }
                        }
                    } else if markets.is_none() {
                        sub.markets = None;
                    }
                    (sid, added)
                }
                None => {
                    let sid = self.next_sid;
                    self.next_sid += 1;
                    self.subs.insert(
                        sid,
                        Sub {
                            channel: ch,
                            markets: markets.clone().map(|m| m.into_iter().collect()),
                            use_yes_price,
                            seq: 0,
                            baseline: BTreeMap::new(),
                            market_ids: BTreeMap::new(),
                        },
                    );
                    (sid, markets.clone().unwrap_or_default())
                }
            };
            self.respond(
                id,
                json!({ "type": "subscribed", "msg": { "channel": ch.name(), "sid": sid } }),
            );
            match ch {
                Channel::OrderbookDelta => self.snapshots(sid, &added),
                Channel::Ticker if initial_ticker => F::initial_tickers(self, sid, &added),
                _ => {}
            }
        }
        F::subscribed(&self.server);
    }

    /// Sends an `orderbook_snapshot` per market, taken under the server's lock together
    /// with the number of the last batch it reflects.
    fn snapshots(&mut self, sid: u64, tickers: &[String]) {
        if tickers.is_empty() {
            return;
        }
        let (books, batch_no) = self.server.read(|v| {
            tickers
                .iter()
                .filter_map(|t| {
                    let (yes, no) = v.levels(t)?;
                    let id = v.market(t)?.market_id.clone();
                    Some((t.clone(), id, yes, no))
                })
                .collect::<Vec<_>>()
        });
        // Everything sent up to the snapshot goes out first, so the snapshot sits in the
        // sequence exactly where the book it shows was.
        self.catch_up(batch_no);
        for (t, market_id, yes, no) in books {
            let Some(sub) = self.subs.get_mut(&sid) else {
                return;
            };
            sub.baseline.insert(t.clone(), batch_no);
            sub.market_ids.insert(t.clone(), market_id.clone());
            let msg = wire::WsSnapshot::new(&t, &market_id, &yes, &no, sub.use_yes_price);
            F::snapshot(self, sid, &msg);
        }
    }

    /// Delivers every batch numbered up to `upto` that is already queued.
    fn catch_up(&mut self, upto: u64) {
        if let Some(b) = self.held.take() {
            if b.no > upto {
                self.held = Some(b);
                return;
            }
            F::deliver(self, &b);
        }
        loop {
            match self.events.try_recv() {
                Ok(b) if b.no <= upto => F::deliver(self, &b),
                Ok(b) => {
                    self.held = Some(b);
                    return;
                }
                Err(TryRecvError::Lagged(n)) => self.overflow(n),
                Err(_) => return,
            }
        }
    }

    /// A sequenced message on `sid`: the next `seq` (a gap on a skip fault), given to
    /// `encode`, sent twice on a repeat fault. Nothing for an unknown sid.
    pub(crate) fn sequenced_with(&mut self, sid: u64, encode: impl FnOnce(u64) -> Message) {
        let fault = self.faults().map_or(SeqFault::None, Faults::seq);
        let Some(sub) = self.subs.get_mut(&sid) else {
            return;
        };
        sub.seq += if fault == SeqFault::Skip { 2 } else { 1 };
        let m = encode(sub.seq);
        if fault == SeqFault::Repeat {
            self.out.push(m.clone());
        }
        self.out.push(m);
    }

    /// An unsequenced data message.
    pub(crate) fn data(&mut self, sid: u64, kind: &str, msg: &impl Serialize) {
        self.out
            .push(text(&json!({ "type": kind, "sid": sid, "msg": msg })));
    }

    fn unsubscribe(&mut self, id: u64, params: Option<Value>) {
        let sids: Vec<u64> = params
            .as_ref()
            .and_then(|p| p.get("sids"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if sids.is_empty() {
            return self.error(id, WsError(4, "Sids required"), None);
        }
        for sid in sids {
            match self.subs.remove(&sid) {
                Some(sub) => {
                    let mut v = json!({ "type": "unsubscribed", "sid": sid });
                    if sub.channel == Channel::OrderbookDelta {
                        v["seq"] = json!(sub.seq);
                    }
                    self.respond(id, v);
                }
                None => self.error(
                    id,
                    WsError(7, "Unknown subscription ID"),
                    Some(("sid", json!(sid))),
                ),
            }
        }
    }

    fn update(&mut self, id: u64, params: Option<Value>) {
        let Some(params) = params.filter(Value::is_object) else {
            return self.error(id, WsError(2, "Params required"), None);
        };
        let sid = match (
            params.get("sid").and_then(Value::as_u64),
            params.get("sids"),
        ) {
            (Some(s), None) => s,
            (None, Some(Value::Array(a))) if a.len() == 1 && a[0].is_u64() => {
                a[0].as_u64().unwrap_or(0)
            }
            _ => {
                return self.error(
                    id,
                    WsError(12, "Exactly one subscription ID is required"),
                    None,
                )
            }
        };
        let Some(action) = params
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return self.error(id, WsError(15, "Action required"), None);
        };
        let Some(channel) = self.subs.get(&sid).map(|s| s.channel) else {
            return self.error(
                id,
                WsError(7, "Unknown subscription ID"),
                Some(("sid", json!(sid))),
            );
        };
        let tickers = if action == "get_snapshot" {
            params
                .get("market_tickers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
        } else {
            selector(&params)
        };
        let Some(tickers) = tickers.filter(|t| !t.is_empty()) else {
            return self.error(id, WsError(14, "Market Ticker required"), None);
        };
        match action.as_str() {
            "add_markets" => {
                if !self.check_markets(id, &tickers) {
                    return;
                }
                let sub = self.subs.get_mut(&sid).expect("sub");
                let mut added = Vec::new();
                if let Some(have) = sub.markets.as_mut() {
                    for t in &tickers {
                        if have.insert(t.clone()) {
                            added.push(t.clone());
                        }
                    }
                }
                if channel == Channel::OrderbookDelta {
                    self.snapshots(sid, &added);
                }
            }
            "delete_markets" => {
                let sub = self.subs.get_mut(&sid).expect("sub");
                if let Some(have) = sub.markets.as_mut() {
                    for t in &tickers {
                        have.remove(t);
                        sub.baseline.remove(t);
                    }
                }
            }
            "get_snapshot" => {
                if channel != Channel::OrderbookDelta {
                    return self.error(
                        id,
                        WsError(13, "Unsupported action for this channel"),
                        None,
                    );
                }
                let sub = self.subs.get(&sid).expect("sub");
                if let Some(t) = tickers.iter().find(|t| !sub.has(t)) {
                    let t = t.clone();
                    return self.error(
                        id,
                        WsError(11, "Market is not in this subscription"),
                        Some(("market_ticker", json!(t))),
                    );
                }
                self.snapshots(sid, &tickers);
            }
            _ => return self.error(id, WsError(13, "Unsupported action"), None),
        }
        let sub = self.subs.get(&sid).expect("sub");
        let list: Vec<&String> = sub.markets.iter().flatten().collect();
        let mut v = json!({ "type": "ok", "sid": sid, "msg": { "market_tickers": list } });
        if channel == Channel::OrderbookDelta {
            v["seq"] = json!(sub.seq);
        }
        self.respond(id, v);
    }

    /// A `market_lifecycle_v2` event to the subscriptions of its market (`det`: the
    /// determination delay, ms).
    pub(crate) fn lifecycle(
        &mut self,
        kind: LifecycleKind,
        market: &MarketInfo,
        ts_ms: i64,
        det: i64,
    ) {
        for sid in self.matching(Channel::MarketLifecycleV2, market.ticker.as_str()) {
            let m = wire::ws_lifecycle(kind, market, ts_ms, det);
            self.data(sid, "market_lifecycle_v2", &m);
        }
    }

    /// Subscriptions to `ch` that include `ticker`.
    pub(crate) fn matching(&self, ch: Channel, ticker: &str) -> Vec<u64> {
        self.subs
            .iter()
            .filter(|(_, s)| s.channel == ch && s.has(ticker))
            .map(|(sid, _)| *sid)
            .collect()
    }

    /// Order-book subscriptions whose snapshot of `ticker` predates `batch`, with their
    /// `use_yes_price`.
    pub(crate) fn book_subs(&self, ticker: &str, batch: u64) -> Vec<(u64, bool)> {
        self.subs
            .iter()
            .filter(|(_, s)| {
                s.channel == Channel::OrderbookDelta
                    && s.has(ticker)
                    && s.baseline.get(ticker).is_some_and(|b| batch > *b)
            })
            .map(|(sid, s)| (*sid, s.use_yes_price))
            .collect()
    }

    /// Fell more than the queue behind: every subscription is dropped with error 25.
    fn overflow(&mut self, missed: u64) {
        tracing::warn!(
            missed,
            subscriptions = self.subs.len(),
            "{}",
            F::SLOW_CONSUMER
        );
        let sids: Vec<u64> = self.subs.keys().copied().collect();
        if let Some(f) = self.faults() {
            f.count_slow_consumer(sids.len() as u64);
        }
        for sid in sids {
            self.error(
                0,
                WsError(25, "Subscription buffer overflow"),
                Some(("sid", json!(sid))),
            );
        }
        self.subs.clear();
    }
}
