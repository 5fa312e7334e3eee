//! The replay's WebSocket API at `/trade-api/ws/v2`: the same upgrade authentication,
//! commands, ids, error codes and heartbeat as `serve` (API.md §5, all in
//! [`crate::ws_common`]), fed by recorded frames.
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

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::Message;
use axum::Router;
use pipeline::money::Price;
use serde_json::Value;

use super::state::{Batch, Event};
use super::{Shared, StartMode};
use crate::engine::BookSide;
use crate::wire;
use crate::ws_common::{self, Channel, Conn, Feed};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    ws_common::router::<Replayed>(shared)
}

/// A replay connection: recorded msgs passed through, nothing of its own.
pub(crate) struct Replayed;

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

/// A sequenced data message around an already serialised msg.
fn sequenced(c: &mut Conn<Replayed>, sid: u64, kind: &str, msg: &str) {
    c.sequenced_with(sid, |seq| {
        let mut s = String::with_capacity(msg.len() + 64);
        let _ = write!(
            s,
            r#"{{"type":"{kind}","sid":{sid},"seq":{seq},"msg":{msg}}}"#
        );
        Message::Text(s.into())
    });
}

/// An unsequenced data message around an already serialised msg.
fn raw_data(c: &mut Conn<Replayed>, sid: u64, kind: &str, msg: &str) {
    let mut s = String::with_capacity(msg.len() + 48);
    let _ = write!(s, r#"{{"type":"{kind}","sid":{sid},"msg":{msg}}}"#);
    c.out.push(Message::Text(s.into()));
}

impl Feed for Replayed {
    type Server = Shared;
    const SLOW_CONSUMER: &'static str = "slow websocket consumer of the replay";

    fn connect(_shared: &Shared, _caller: ()) -> Replayed {
        Replayed
    }

    fn snapshot(c: &mut Conn<Replayed>, sid: u64, msg: &wire::WsSnapshot) {
        let msg = serde_json::to_string(msg).unwrap_or_default();
        sequenced(c, sid, "orderbook_snapshot", &msg);
    }

    fn initial_tickers(c: &mut Conn<Replayed>, sid: u64, tickers: &[String]) {
        let raws: Vec<Box<str>> = {
            let st = c.server.lock();
            tickers
                .iter()
                .filter_map(|t| st.listed(t).and_then(|m| m.last_ticker.clone()))
                .collect()
        };
        for raw in raws {
            raw_data(c, sid, "ticker", &raw);
        }
    }

    fn subscribed(shared: &Shared) {
        if shared.start_mode == StartMode::OnSubscribe {
            shared.start();
        }
    }

    fn sent(shared: &Shared, n: usize) {
        // Counted as they are handed to the socket (a client never saw more).
        shared.ws_messages.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn deliver(c: &mut Conn<Replayed>, batch: &Batch) {
        if c.subs.is_empty() {
            return;
        }
        let det = c.server.timing.determination_delay_ms;
        for ev in &batch.events {
            match ev {
                Event::Snapshot {
                    ticker,
                    market_id,
                    yes,
                    no,
                } => {
                    for (sid, yes_price) in c.book_subs(ticker, batch.no) {
                        let msg = wire::WsSnapshot::new(ticker, market_id, yes, no, yes_price);
                        Self::snapshot(c, sid, &msg);
                    }
                }
                Event::Delta {
                    ticker,
                    side,
                    price,
                    raw,
                } => {
                    for (sid, yes_price) in c.book_subs(ticker, batch.no) {
                        if yes_price && *side == BookSide::No {
                            let msg = yes_scale_delta(raw, *price);
                            sequenced(c, sid, "orderbook_delta", &msg);
                        } else {
                            sequenced(c, sid, "orderbook_delta", raw);
                        }
                    }
                }
                Event::Ticker { ticker, raw } => {
                    for sid in c.matching(Channel::Ticker, ticker) {
                        raw_data(c, sid, "ticker", raw);
                    }
                }
                Event::Trade { ticker, raw } => {
                    for sid in c.matching(Channel::Trade, ticker) {
                        raw_data(c, sid, "trade", raw);
                    }
                }
                Event::Lifecycle {
                    kind,
                    market,
                    ts_ms,
                } => c.lifecycle(*kind, market, *ts_ms, det),
            }
        }
    }
}
