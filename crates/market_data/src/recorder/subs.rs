//! The subscription manager: turns "these markets should be subscribed" into WebSocket
//! commands, in its own task so the core never waits for a reply.
//!
//! Three subscriptions: `market_lifecycle_v2` (all markets; the core keeps its series),
//! `orderbook_delta` (with the configured `use_yes_price`) and `ticker` (last trade price and
//! volume, with an initial snapshot), the last two over the wanted markets. Markets are added
//! with `add_markets` (the exchange answers with their snapshots) and removed with
//! `delete_markets`; a subscription whose list would become empty is unsubscribed instead.
//!
//! The session keeps subscriptions across reconnects. A `subscribe` whose reply times out
//! (the connection was down) still exists in the session, so it is never sent twice: the
//! manager waits for the session's `Subscribed` event for that channel and adopts it.

use std::collections::BTreeSet;
use std::time::Duration;

use pipeline::ids::MarketTicker;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::ws::{channel, SubId, SubscribeRequest, WsError, WsHandle};

/// A subscription confirmed by the session (forwarded by the core from `WsEvent::Subscribed`).
#[derive(Debug, Clone)]
pub(crate) struct Confirmed {
    pub sub: SubId,
    pub channel: String,
    pub tickers: Vec<MarketTicker>,
}

struct Slot {
    channel: &'static str,
    sub: Option<SubId>,
    markets: BTreeSet<MarketTicker>,
    /// A subscribe timed out: waiting to adopt the session's confirmation.
    awaiting: bool,
}

impl Slot {
    fn new(channel: &'static str) -> Slot {
        Slot {
            channel,
            sub: None,
            markets: BTreeSet::new(),
            awaiting: false,
        }
    }
}

pub(crate) struct Manager {
    pub ws: WsHandle,
    pub use_yes_price: bool,
    pub wanted: watch::Receiver<BTreeSet<MarketTicker>>,
    pub confirmed: mpsc::UnboundedReceiver<Confirmed>,
    pub shutdown: CancellationToken,
}

enum Step {
    Done,
    Retry,
    Stop,
}

impl Manager {
    pub(crate) async fn run(mut self) {
        let mut lifecycle = Slot::new(channel::MARKET_LIFECYCLE_V2);
        let mut book = Slot::new(channel::ORDERBOOK_DELTA);
        let mut ticker = Slot::new(channel::TICKER);
        loop {
            let wanted = self.wanted.borrow_and_update().clone();
            let mut retry = false;
            for slot in [&mut lifecycle, &mut book, &mut ticker] {
                let want = if slot.channel == channel::MARKET_LIFECYCLE_V2 {
                    None
                } else {
                    Some(&wanted)
                };
                match self.reconcile(slot, want).await {
                    Step::Done => {}
                    Step::Retry => retry = true,
                    Step::Stop => return,
                }
            }
            let pause = if retry {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = self.wanted.changed() => if r.is_err() { return },
                c = self.confirmed.recv() => match c {
                    None => return,
                    Some(c) => {
                        for slot in [&mut lifecycle, &mut book, &mut ticker] {
                            adopt(slot, &c);
                        }
                    }
                },
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn request(&self, ch: &str, markets: Vec<MarketTicker>) -> SubscribeRequest {
        if ch == channel::ORDERBOOK_DELTA {
            SubscribeRequest::orderbook(markets, self.use_yes_price)
        } else if ch == channel::TICKER {
            SubscribeRequest {
                send_initial_snapshot: Some(true),
                ..SubscribeRequest::ticker(markets)
            }
        } else {
            SubscribeRequest::new(ch, markets)
        }
    }

    /// Brings one subscription in line with `want` (`None` = a channel without a market list).
    async fn reconcile(&self, slot: &mut Slot, want: Option<&BTreeSet<MarketTicker>>) -> Step {
        if slot.awaiting {
            return Step::Done;
        }
        let Some(sub) = slot.sub else {
            let markets: Vec<MarketTicker> = match want {
                Some(w) if w.is_empty() => return Step::Done,
                Some(w) => w.iter().cloned().collect(),
                None => Vec::new(),
            };
            return match self
                .ws
                .subscribe(self.request(slot.channel, markets.clone()))
                .await
            {
                Ok(s) => {
                    slot.sub = Some(s.sub);
                    slot.markets = markets.into_iter().collect();
                    tracing::debug!(
                        channel = slot.channel,
                        sub = s.sub.0,
                        sid = s.sid,
                        "subscribed"
                    );
                    Step::Done
                }
                Err(WsError::Timeout(_)) => {
                    tracing::info!(
                        channel = slot.channel,
                        "subscribe reply pending (not connected); will adopt it"
                    );
                    slot.awaiting = true;
                    Step::Done
                }
                Err(WsError::Closed) => Step::Stop,
                Err(e) => {
                    tracing::warn!(channel = slot.channel, error = %e, "subscribe failed; retrying");
                    Step::Retry
                }
            };
        };
        let Some(want) = want else {
            return Step::Done;
        };
        if want.is_empty() {
            return match self.ws.unsubscribe(sub).await {
                Ok(()) | Err(WsError::UnknownSubscription(_)) | Err(WsError::Disconnected) => {
                    slot.sub = None;
                    slot.markets.clear();
                    Step::Done
                }
                Err(WsError::Closed) => Step::Stop,
                Err(e) => {
                    tracing::warn!(channel = slot.channel, error = %e, "unsubscribe failed; retrying");
                    Step::Retry
                }
            };
        }
        let add: Vec<MarketTicker> = want.difference(&slot.markets).cloned().collect();
        if !add.is_empty() {
            match self.ws.add_markets(sub, add.clone()).await {
                Ok(list) => {
                    // The session's list (the exchange's answer) is authoritative.
                    slot.markets = list.into_iter().collect();
                    tracing::info!(channel = slot.channel, added = ?add, "markets added");
                }
                Err(e) => return self.failed(slot, "add_markets", e),
            }
        }
        let del: Vec<MarketTicker> = slot.markets.difference(want).cloned().collect();
        if !del.is_empty() {
            match self.ws.delete_markets(sub, del.clone()).await {
                Ok(_) => {
                    for t in &del {
                        slot.markets.remove(t);
                    }
                    tracing::info!(channel = slot.channel, removed = ?del, "markets removed");
                }
                Err(e) => return self.failed(slot, "delete_markets", e),
            }
        }
        Step::Done
    }

    fn failed(&self, slot: &mut Slot, what: &str, e: WsError) -> Step {
        match e {
            WsError::Closed => Step::Stop,
            WsError::UnknownSubscription(_) => {
                // The session dropped it (the exchange refused a resubscription): start again.
                tracing::warn!(
                    channel = slot.channel,
                    "subscription gone; subscribing again"
                );
                slot.sub = None;
                slot.markets.clear();
                Step::Retry
            }
            other => {
                tracing::warn!(channel = slot.channel, error = %other, "{what} failed; retrying");
                Step::Retry
            }
        }
    }
}

fn adopt(slot: &mut Slot, c: &Confirmed) {
    if c.channel != slot.channel {
        return;
    }
    if slot.sub == Some(c.sub) {
        // A (re)confirmation: the session's list is authoritative.
        slot.markets = c.tickers.iter().cloned().collect();
    } else if slot.awaiting {
        tracing::info!(
            channel = slot.channel,
            sub = c.sub.0,
            "adopted a subscription confirmed after reconnecting"
        );
        slot.sub = Some(c.sub);
        slot.markets = c.tickers.iter().cloned().collect();
        slot.awaiting = false;
    }
}
