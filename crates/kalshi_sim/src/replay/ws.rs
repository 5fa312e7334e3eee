//! The replay's WebSocket API at `/trade-api/ws/v2`: the same upgrade authentication,
//! commands, ids, error codes and heartbeat as `serve` (API.md §5), fed by recorded frames.
//!
//! - `orderbook_delta`: on subscribe, an `orderbook_snapshot` per market built from the
//!   replayed book at that moment, then the recorded deltas of those markets under this
//!   connection's sid with contiguous `seq`; a snapshot recorded later in the capture (the
//!   recorder resubscribed, a market's book cleared at close, the next capture file starts)
//!   is sent as a new `orderbook_snapshot`. Recorded delta msgs are passed through as recorded
//!   (with `use_yes_price`, a NO delta's `price_dollars` is shown on the YES scale).
//! - `ticker`, `trade`: the recorded msgs; `market_lifecycle_v2`: the replay's schedule.
//! - `fill`, `market_positions`, `user_orders`: accepted; nothing trades in a replay.
//!
//! Recorded `sid`s and `seq`s are never passed through.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use pipeline::money::Price;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::rest::authenticate;
use super::state::{Batch, Event};
use super::{Shared, StartMode};
use crate::engine::{BookSide, Levels};
use crate::server::rest::ApiError;
use crate::server::WS_PATH;
use crate::wire;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(WS_PATH, get(upgrade))
        .with_state(shared)
}

async fn upgrade(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = authenticate(&s, "GET", WS_PATH, &headers) {
        return e.into_response();
    }
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
    ws.on_upgrade(move |socket| Conn::new(s).run(socket))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
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

struct Sub {
    channel: Channel,
    /// `None` = every market.
    markets: Option<BTreeSet<String>>,
    use_yes_price: bool,
    /// Last `seq` sent (order-book channel).
    seq: u64,
    /// Per market: the batch its snapshot reflects; later batches are applied.
    baseline: BTreeMap<String, u64>,
}

impl Sub {
    fn has(&self, ticker: &str) -> bool {
        self.markets.as_ref().is_none_or(|m| m.contains(ticker))
    }
}

struct Conn {
    shared: Arc<Shared>,
    events: broadcast::Receiver<Arc<Batch>>,
    /// A batch read ahead while catching up to a snapshot, delivered next.
    held: Option<Arc<Batch>>,
    subs: BTreeMap<u64, Sub>,
    next_sid: u64,
    out: Vec<Message>,
}

/// A command's error (API.md §5.7).
struct WsError(u32, &'static str);

fn text(v: &impl Serialize) -> Message {
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

/// A recorded NO delta shown on the YES scale: `price_dollars` becomes `1 − p`.
fn yes_scale_delta(raw: &str, price: Price) -> String {
    match serde_json::from_str::<serde_json::Map<String, Value>>(raw) {
        Ok(mut m) => {
            m.insert(
                "price_dollars".into(),
                Value::String(price.complement().to_dollars()),
            );
            serde_json::to_string(&m).unwrap_or_else(|_| raw.to_string())
        }
        Err(_) => raw.to_string(),
    }
}

impl Conn {
    fn new(shared: Arc<Shared>) -> Conn {
        Conn {
            events: shared.tx.subscribe(),
            held: None,
            shared,
            subs: BTreeMap::new(),
            next_sid: 1,
            out: Vec::new(),
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut tx, mut rx) = socket.split();
        let mut shutdown = self.shared.shutdown.clone();
        let every = self.shared.ws.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            if let Some(b) = self.held.take() {
                self.deliver(&b);
            }
            tokio::select! {
                // Shutdown first, then commands, then the event stream.
                biased;
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                    let _ = tx.send(Message::Close(None)).await;
                    break;
                }
                m = rx.next() => match m {
                    Some(Ok(Message::Text(t))) => self.command(t.as_str()),
                    Some(Ok(Message::Binary(b))) => self.command(&String::from_utf8_lossy(&b)),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                b = self.events.recv(), if self.held.is_none() => match b {
                    Ok(batch) => self.deliver(&batch),
                    Err(RecvError::Lagged(n)) => self.overflow(n),
                    Err(RecvError::Closed) => break,
                },
                _ = ping.tick() => self.out.push(Message::Ping(axum::body::Bytes::from_static(b"heartbeat"))),
            }
            // Counted as they are handed to the socket (a client never saw more).
            self.shared
                .ws_messages
                .fetch_add(self.out.len() as u64, Ordering::Relaxed);
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

    /// Checks every ticker is listed now; reports the first that is not.
    fn check_markets(&mut self, id: u64, tickers: &[String]) -> bool {
        let missing = {
            let st = self.shared.lock();
            tickers.iter().find(|t| st.listed(t).is_none()).cloned()
        };
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
                Channel::Ticker if initial_ticker => self.initial_tickers(sid, &added),
                _ => {}
            }
        }
        if self.shared.start_mode == StartMode::OnSubscribe {
            self.shared.start();
        }
    }

    fn initial_tickers(&mut self, sid: u64, tickers: &[String]) {
        let raws: Vec<Box<str>> = {
            let st = self.shared.lock();
            tickers
                .iter()
                .filter_map(|t| st.listed(t).and_then(|m| m.last_ticker.clone()))
                .collect()
        };
        for raw in raws {
            self.raw_data(sid, "ticker", &raw);
        }
    }

    /// Sends an `orderbook_snapshot` per market from the replayed book, taken under the lock
    /// together with the number of the last batch it reflects.
    fn snapshots(&mut self, sid: u64, tickers: &[String]) {
        if tickers.is_empty() {
            return;
        }
        type Snap = (String, String, Levels, Levels);
        let (books, batch_no): (Vec<Snap>, u64) = {
            let st = self.shared.lock();
            let books = tickers
                .iter()
                .filter_map(|t| {
                    let m = st.listed(t)?;
                    let (yes, no) = m.book.as_ref().map(|b| b.levels()).unwrap_or_default();
                    Some((t.clone(), m.market_id.clone(), yes, no))
                })
                .collect();
            (books, st.batch_no)
        };
        // Everything sent up to the snapshot goes out first, so the snapshot sits in the
        // sequence exactly where the book it shows was.
        self.catch_up(batch_no);
        for (t, market_id, yes, no) in books {
            let Some(sub) = self.subs.get_mut(&sid) else {
                return;
            };
            sub.baseline.insert(t.clone(), batch_no);
            let msg = wire::WsSnapshot::new(&t, &market_id, &yes, &no, sub.use_yes_price);
            let msg = serde_json::to_string(&msg).unwrap_or_default();
            self.sequenced(sid, "orderbook_snapshot", &msg);
        }
    }

    /// Delivers every batch numbered up to `upto` that is already queued.
    fn catch_up(&mut self, upto: u64) {
        if let Some(b) = self.held.take() {
            if b.no > upto {
                self.held = Some(b);
                return;
            }
            self.deliver(&b);
        }
        loop {
            match self.events.try_recv() {
                Ok(b) if b.no <= upto => self.deliver(&b),
                Ok(b) => {
                    self.held = Some(b);
                    return;
                }
                Err(TryRecvError::Lagged(n)) => self.overflow(n),
                Err(_) => return,
            }
        }
    }

    /// A sequenced data message around an already serialised msg.
    fn sequenced(&mut self, sid: u64, kind: &str, msg: &str) {
        let Some(sub) = self.subs.get_mut(&sid) else {
            return;
        };
        sub.seq += 1;
        let mut s = String::with_capacity(msg.len() + 64);
        let _ = write!(
            s,
            r#"{{"type":"{kind}","sid":{sid},"seq":{},"msg":{msg}}}"#,
            sub.seq
        );
        self.out.push(Message::Text(s.into()));
    }

    fn raw_data(&mut self, sid: u64, kind: &str, msg: &str) {
        let mut s = String::with_capacity(msg.len() + 48);
        let _ = write!(s, r#"{{"type":"{kind}","sid":{sid},"msg":{msg}}}"#);
        self.out.push(Message::Text(s.into()));
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

    fn matching(&self, ch: Channel, ticker: &str) -> Vec<u64> {
        self.subs
            .iter()
            .filter(|(_, s)| s.channel == ch && s.has(ticker))
            .map(|(sid, _)| *sid)
            .collect()
    }

    /// Order-book subscriptions whose snapshot of `ticker` predates `batch`.
    fn book_subs(&self, ticker: &str, batch: u64) -> Vec<(u64, bool)> {
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

    fn deliver(&mut self, batch: &Batch) {
        if self.subs.is_empty() {
            return;
        }
        let det = self.shared.timing.determination_delay_ms;
        for ev in &batch.events {
            match ev {
                Event::Snapshot {
                    ticker,
                    market_id,
                    yes,
                    no,
                } => {
                    for (sid, yes_price) in self.book_subs(ticker, batch.no) {
                        let msg = wire::WsSnapshot::new(ticker, market_id, yes, no, yes_price);
                        let msg = serde_json::to_string(&msg).unwrap_or_default();
                        self.sequenced(sid, "orderbook_snapshot", &msg);
                    }
                }
                Event::Delta {
                    ticker,
                    side,
                    price,
                    raw,
                } => {
                    for (sid, yes_price) in self.book_subs(ticker, batch.no) {
                        if yes_price && *side == BookSide::No {
                            let msg = yes_scale_delta(raw, *price);
                            self.sequenced(sid, "orderbook_delta", &msg);
                        } else {
                            self.sequenced(sid, "orderbook_delta", raw);
                        }
                    }
                }
                Event::Ticker { ticker, raw } => {
                    for sid in self.matching(Channel::Ticker, ticker) {
                        self.raw_data(sid, "ticker", raw);
                    }
                }
                Event::Trade { ticker, raw } => {
                    for sid in self.matching(Channel::Trade, ticker) {
                        self.raw_data(sid, "trade", raw);
                    }
                }
                Event::Lifecycle {
                    kind,
                    market,
                    ts_ms,
                } => {
                    for sid in self.matching(Channel::MarketLifecycleV2, market.ticker.as_str()) {
                        let m = wire::ws_lifecycle(*kind, market, *ts_ms, det);
                        self.out.push(text(
                            &json!({ "type": "market_lifecycle_v2", "sid": sid, "msg": m }),
                        ));
                    }
                }
            }
        }
    }

    /// Fell more than the queue behind: every subscription is dropped with error 25.
    fn overflow(&mut self, missed: u64) {
        tracing::warn!(
            missed,
            subscriptions = self.subs.len(),
            "slow websocket consumer of the replay"
        );
        let sids: Vec<u64> = self.subs.keys().copied().collect();
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
