//! The WebSocket API at `/trade-api/ws/v2` (API.md §5): authenticated upgrade, commands with
//! ids, per-sid sequence numbers on the order-book channel, snapshots consistent with the
//! delta stream, heartbeat pings, slow consumers dropped with error 25 (all in
//! [`crate::ws_common`]); here, the engine's events as messages of each channel.

use std::sync::Arc;

use axum::Router;
use serde::Serialize;
use serde_json::json;

use super::rest::Caller;
use super::{Batch, Shared};
use crate::engine::{AccountId, Event};
use crate::wire;
use crate::ws_common::{self, text, Channel, Conn, Feed};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    ws_common::router::<Live>(shared)
}

/// A connection's caller: its own fills, orders and positions are sent.
pub(crate) struct Live {
    account: AccountId,
    user_id: String,
}

/// A sequenced data message: `seq` + 1 (or a fault's gap or repeat).
fn sequenced(c: &mut Conn<Live>, sid: u64, kind: &str, msg: &impl Serialize) {
    c.sequenced_with(sid, |seq| {
        text(&json!({ "type": kind, "sid": sid, "seq": seq, "msg": msg }))
    });
}

impl Feed for Live {
    type Server = Shared;
    const SLOW_CONSUMER: &'static str = "slow websocket consumer";

    fn connect(shared: &Shared, caller: Caller) -> Live {
        Live {
            account: caller.account,
            user_id: wire::user_id(shared.seed, caller.account),
        }
    }

    fn snapshot(c: &mut Conn<Live>, sid: u64, msg: &wire::WsSnapshot) {
        sequenced(c, sid, "orderbook_snapshot", msg);
    }

    fn initial_tickers(c: &mut Conn<Live>, sid: u64, tickers: &[String]) {
        let states = c
            .server
            .with(|core| {
                tickers
                    .iter()
                    .filter_map(|t| core.engine.ticker_state(t))
                    .collect::<Vec<_>>()
            })
            .0;
        for st in states {
            c.data(sid, "ticker", &wire::WsTicker::new(&st));
        }
    }

    fn deliver(c: &mut Conn<Live>, batch: &Batch) {
        let det = c.server.determination_delay_ms();
        let account = c.feed.account;
        for ev in &batch.events {
            match ev {
                Event::BookDelta(d) => {
                    for (sid, yes_price) in c.book_subs(d.ticker.as_str(), batch.no) {
                        let id = c.subs[&sid]
                            .market_ids
                            .get(d.ticker.as_str())
                            .cloned()
                            .unwrap_or_default();
                        let msg = wire::WsDelta::new(d, &id, yes_price, d.owner == account);
                        sequenced(c, sid, "orderbook_delta", &msg);
                    }
                }
                Event::Ticker(t) => {
                    for sid in c.matching(Channel::Ticker, t.ticker.as_str()) {
                        c.data(sid, "ticker", &wire::WsTicker::new(t));
                    }
                }
                Event::Trade(t) => {
                    for sid in c.matching(Channel::Trade, t.ticker.as_str()) {
                        c.data(sid, "trade", &wire::WsTrade::new(t));
                    }
                }
                Event::Fill(f) if f.account == account => {
                    for sid in c.matching(Channel::Fill, f.ticker.as_str()) {
                        c.data(sid, "fill", &wire::WsFill::new(f));
                    }
                }
                Event::UserOrder(o) if o.account == account => {
                    let seed = c.server.seed;
                    for sid in c.matching(Channel::UserOrders, o.ticker.as_str()) {
                        c.data(sid, "user_order", &wire::WsUserOrder::new(o, seed));
                    }
                }
                Event::Position {
                    account: a,
                    ticker,
                    position,
                } if *a == account => {
                    for sid in c.matching(Channel::MarketPositions, ticker.as_str()) {
                        let m =
                            wire::WsMarketPosition::new(&c.feed.user_id, ticker.as_str(), position);
                        c.data(sid, "market_position", &m);
                    }
                }
                Event::Lifecycle {
                    kind,
                    market,
                    ts_ms,
                } => c.lifecycle(*kind, market, *ts_ms, det),
                _ => {}
            }
        }
    }
}
