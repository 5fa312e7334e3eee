//! WebSocket envelopes, commands and messages (API.md §5).
//!
//! [`WsFrame::parse`] reads a server frame in one pass: a market-data `msg` (book, ticker,
//! trade) after its `type` is parsed in place; any other `msg` is kept raw until the `type` is
//! known, then parsed. A frame that fails is read again the slow way, so errors name the type. Responses are accepted in both the nested form
//! (`{"type":"subscribed","msg":{"channel":…,"sid":1}}`) and the flat one
//! (`{"type":"subscribed","sid":1}`). Unknown message types are kept as JSON, not errors.

use std::borrow::Cow;

use pipeline::ids::{ClientOrderId, MarketTicker, OrderId};
use pipeline::money::{Count, Money, Price};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::de::{opt_price_flex, string_enum};
use super::market::MarketResult;
use super::portfolio::{BookSide, OrderStatus, OutcomeSide};
use super::{levels_or_null, Level, WireNumber};

use super::cents;

/// A frame that is not valid JSON or whose `msg` does not fit its `type`.
#[derive(Debug, thiserror::Error)]
#[error("bad WebSocket frame (type {kind:?}): {error}")]
pub struct FrameError {
    pub kind: String,
    #[source]
    pub error: serde_json::Error,
}

/// The side of a book level: YES bids or NO bids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Yes,
    No,
}

/// A parsed server frame.
#[derive(Debug, Clone, PartialEq)]
pub struct WsFrame {
    /// The frame's `type` string as sent.
    pub kind: String,
    /// Echo of the command id (responses).
    pub id: Option<u64>,
    /// Subscription id (from the envelope, or from `msg.sid` in nested responses).
    pub sid: Option<u64>,
    /// Per-sid sequence number (order-book channels and some responses).
    pub seq: Option<u64>,
    /// When Kalshi queued the frame (newer servers).
    pub sending_ts_ms: Option<i64>,
    pub msg: WsMessage,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    Subscribed {
        channel: Option<String>,
    },
    Unsubscribed,
    Ok(WsOk),
    Error(WsErrorMsg),
    OrderbookSnapshot(OrderbookSnapshot),
    OrderbookDelta(OrderbookDelta),
    Ticker(TickerMsg),
    Trade(TradeMsg),
    Fill(FillMsg),
    UserOrder(UserOrderMsg),
    MarketPosition(MarketPositionMsg),
    MarketLifecycle(MarketLifecycleMsg),
    /// Any other type (`event_lifecycle`, `cfbenchmarks_value`, new channels): the raw `msg`.
    Other(Option<serde_json::Value>),
}

/// A frame's envelope as the derive reads it: `msg` raw. The slow path of [`WsFrame::parse`],
/// which names the `type` in the error when `msg` does not fit it.
#[derive(Deserialize)]
struct SlowEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    sid: Option<u64>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    sending_ts_ms: Option<i64>,
    #[serde(default, borrow)]
    msg: Option<&'a RawValue>,
}

/// A frame's envelope read in one pass: when `type` comes before `msg` (as Kalshi sends it)
/// and is a market-data type (book, ticker, trade), `msg` is parsed straight into its message
/// (`parsed`); otherwise it is kept raw (borrowed from the text) until the `type` is known.
/// Any error makes the caller take the slow path, so errors read as before.
pub(crate) struct RawEnvelope<'a> {
    kind: Cow<'a, str>,
    id: Option<u64>,
    sid: Option<u64>,
    seq: Option<u64>,
    sending_ts_ms: Option<i64>,
    msg: Option<&'a RawValue>,
    parsed: Option<WsMessage>,
}

impl<'a> From<SlowEnvelope<'a>> for RawEnvelope<'a> {
    fn from(e: SlowEnvelope<'a>) -> RawEnvelope<'a> {
        RawEnvelope {
            kind: e.kind,
            id: e.id,
            sid: e.sid,
            seq: e.seq,
            sending_ts_ms: e.sending_ts_ms,
            msg: e.msg,
            parsed: None,
        }
    }
}

/// A string borrowed from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEnvelope<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, Visitor};
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawEnvelope<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a WebSocket frame object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut e = RawEnvelope {
                    kind: Cow::Borrowed(""),
                    id: None,
                    sid: None,
                    seq: None,
                    sending_ts_ms: None,
                    msg: None,
                    parsed: None,
                };
                let (mut kind, mut msg_seen) = (false, false);
                while let Some(CowStr(key)) = m.next_key::<CowStr<'a>>()? {
                    match key.as_ref() {
                        "type" if !kind => {
                            e.kind = m.next_value::<CowStr<'a>>()?.0;
                            kind = true;
                        }
                        "id" => e.id = m.next_value()?,
                        "sid" => e.sid = m.next_value()?,
                        "seq" => e.seq = m.next_value()?,
                        "sending_ts_ms" => e.sending_ts_ms = m.next_value()?,
                        "msg" if !msg_seen => {
                            msg_seen = true;
                            let k = if kind { e.kind.as_ref() } else { "" };
                            match k {
                                "orderbook_delta" => {
                                    e.parsed = Some(WsMessage::OrderbookDelta(m.next_value()?))
                                }
                                "orderbook_snapshot" => {
                                    e.parsed = Some(WsMessage::OrderbookSnapshot(m.next_value()?))
                                }
                                "ticker" => e.parsed = Some(WsMessage::Ticker(m.next_value()?)),
                                "trade" => e.parsed = Some(WsMessage::Trade(m.next_value()?)),
                                _ => e.msg = m.next_value()?,
                            }
                        }
                        "type" | "msg" => return Err(Error::custom("duplicate field")),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !kind {
                    return Err(Error::missing_field("type"));
                }
                Ok(e)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct NestedSubscribed {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    sid: Option<u64>,
}

impl WsFrame {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<WsFrame, FrameError> {
        if let Ok(env) = serde_json::from_str::<RawEnvelope>(text) {
            return WsFrame::from_envelope(env);
        }
        // The slow path: the same outcome, and an error that names the frame's type.
        let env: SlowEnvelope = serde_json::from_str(text).map_err(|error| FrameError {
            kind: String::new(),
            error,
        })?;
        WsFrame::from_envelope(env.into())
    }

    /// The frame of an envelope already read (see [`WsFrame::parse`]).
    pub(crate) fn from_envelope(env: RawEnvelope<'_>) -> Result<WsFrame, FrameError> {
        let kind = env.kind.into_owned();
        if let Some(msg) = env.parsed {
            return Ok(WsFrame {
                kind,
                id: env.id,
                sid: env.sid,
                seq: env.seq,
                sending_ts_ms: env.sending_ts_ms,
                msg,
            });
        }
        let raw = env.msg.map(RawValue::get);
        let err = |error| FrameError {
            kind: kind.clone(),
            error,
        };
        fn need<'a, T: Deserialize<'a>>(raw: Option<&'a str>) -> Result<T, serde_json::Error> {
            serde_json::from_str(raw.unwrap_or("null"))
        }
        let mut sid = env.sid;
        let msg = match kind.as_str() {
            "subscribed" => {
                let nested: Option<NestedSubscribed> = match raw {
                    Some(r) => serde_json::from_str(r).map_err(err)?,
                    None => None,
                };
                let channel = nested.as_ref().and_then(|n| n.channel.clone());
                if sid.is_none() {
                    sid = nested.and_then(|n| n.sid);
                }
                WsMessage::Subscribed { channel }
            }
            "unsubscribed" => {
                if sid.is_none() {
                    if let Some(r) = raw {
                        let n: Option<NestedSubscribed> = serde_json::from_str(r).map_err(err)?;
                        sid = n.and_then(|n| n.sid);
                    }
                }
                WsMessage::Unsubscribed
            }
            "ok" => WsMessage::Ok(WsOk::from_raw(raw).map_err(err)?),
            "error" => {
                let e: WsErrorMsg = need(raw).map_err(err)?;
                if sid.is_none() {
                    sid = e.sid;
                }
                WsMessage::Error(e)
            }
            "orderbook_snapshot" => WsMessage::OrderbookSnapshot(need(raw).map_err(err)?),
            "orderbook_delta" => WsMessage::OrderbookDelta(need(raw).map_err(err)?),
            "ticker" => WsMessage::Ticker(need(raw).map_err(err)?),
            "trade" => WsMessage::Trade(need(raw).map_err(err)?),
            "fill" => WsMessage::Fill(need(raw).map_err(err)?),
            "user_order" => WsMessage::UserOrder(need(raw).map_err(err)?),
            "market_position" => WsMessage::MarketPosition(need(raw).map_err(err)?),
            "market_lifecycle_v2" => WsMessage::MarketLifecycle(need(raw).map_err(err)?),
            _ => WsMessage::Other(match raw {
                Some(r) => Some(serde_json::from_str(r).map_err(err)?),
                None => None,
            }),
        };
        Ok(WsFrame {
            kind,
            id: env.id,
            sid,
            seq: env.seq,
            sending_ts_ms: env.sending_ts_ms,
            msg,
        })
    }

    /// The market a data message is about, if any.
    pub fn market_ticker(&self) -> Option<&MarketTicker> {
        match &self.msg {
            WsMessage::OrderbookSnapshot(m) => Some(&m.market_ticker),
            WsMessage::OrderbookDelta(m) => Some(&m.market_ticker),
            WsMessage::Ticker(m) => Some(&m.market_ticker),
            WsMessage::Trade(m) => Some(&m.market_ticker),
            WsMessage::Fill(m) => m.market_ticker.as_ref(),
            WsMessage::UserOrder(m) => m.ticker.as_ref(),
            WsMessage::MarketPosition(m) => Some(&m.market_ticker),
            WsMessage::MarketLifecycle(m) => Some(&m.market_ticker),
            _ => None,
        }
    }
}

/// One entry of a `list_subscriptions` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub sid: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub market_tickers: Vec<MarketTicker>,
}

/// An `ok` reply: to `update_subscription` (`msg.market_tickers`) or to
/// `list_subscriptions` (`msg` is an array).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsOk {
    pub market_tickers: Option<Vec<MarketTicker>>,
    pub subscriptions: Option<Vec<SubscriptionInfo>>,
}

impl WsOk {
    fn from_raw(raw: Option<&str>) -> Result<WsOk, serde_json::Error> {
        let Some(raw) = raw else {
            return Ok(WsOk::default());
        };
        if raw.trim_start().starts_with('[') {
            return Ok(WsOk {
                market_tickers: None,
                subscriptions: Some(serde_json::from_str(raw)?),
            });
        }
        #[derive(Deserialize)]
        struct Obj {
            #[serde(default)]
            market_tickers: Option<Vec<MarketTicker>>,
            #[serde(default)]
            subscriptions: Option<Vec<SubscriptionInfo>>,
        }
        let o: Option<Obj> = serde_json::from_str(raw)?;
        Ok(o.map(|o| WsOk {
            market_tickers: o.market_tickers,
            subscriptions: o.subscriptions,
        })
        .unwrap_or_default())
    }
}

/// `{"type":"error","msg":{"code":6,"msg":"Already subscribed"}}` (codes in API.md §5.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsErrorMsg {
    pub code: i64,
    #[serde(default)]
    pub msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_ticker: Option<MarketTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<u64>,
}

impl WsErrorMsg {
    /// Code 25: the server dropped data for a slow subscriber; every book must be resynced.
    pub const BUFFER_OVERFLOW: i64 = 25;
    /// Code 6: idempotent re-subscribe of something already subscribed.
    pub const ALREADY_SUBSCRIBED: i64 = 6;
}

/// `orderbook_snapshot` msg. Current keys `yes_dollars_fp`/`no_dollars_fp`; legacy `yes`/`no`
/// (cents, integer sizes) and `yes_dollars`/`no_dollars` (integer sizes) are fallbacks. A
/// missing key means an empty side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderbookSnapshot {
    pub market_ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_levels"
    )]
    pub yes_dollars_fp: Option<Vec<Level>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_levels"
    )]
    pub no_dollars_fp: Option<Vec<Level>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_levels"
    )]
    pub yes_dollars: Option<Vec<Level>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_levels"
    )]
    pub no_dollars: Option<Vec<Level>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_levels"
    )]
    pub yes: Option<Vec<Level>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_levels"
    )]
    pub no: Option<Vec<Level>>,
}

fn opt_levels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Level>>, D::Error> {
    levels_or_null(d).map(Some)
}

impl OrderbookSnapshot {
    /// YES bids, from the first key present in order `yes_dollars_fp`, `yes_dollars`, `yes`.
    pub fn yes_levels(&self) -> &[Level] {
        self.yes_dollars_fp
            .as_deref()
            .or(self.yes_dollars.as_deref())
            .or(self.yes.as_deref())
            .unwrap_or(&[])
    }
    /// NO bids (NO-leg prices unless the subscription used `use_yes_price`).
    pub fn no_levels(&self) -> &[Level] {
        self.no_dollars_fp
            .as_deref()
            .or(self.no_dollars.as_deref())
            .or(self.no.as_deref())
            .unwrap_or(&[])
    }
}

/// `orderbook_delta` msg: a signed change to the resting size at (`side`, `price`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderbookDelta {
    pub market_ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_fp: Option<Count>,
    pub side: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<i64>,
    /// Exchange time of the change, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    // Legacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<i64>,
}

impl OrderbookDelta {
    pub fn price(&self) -> Option<Price> {
        self.price_dollars.or_else(|| cents(self.price))
    }
    pub fn delta(&self) -> Option<Count> {
        self.delta_fp
            .or_else(|| self.delta.map(Count::from_contracts))
    }
}

/// `ticker` msg: top of book and last trade. Empty sides appear as `yes_bid 0` /
/// `yes_ask 1` (observed in the May 2026 captures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerMsg {
    pub market_ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_bid_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_ask_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_bid_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ask_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_bid_size_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_ask_size_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_bid_size_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ask_size_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trade_size_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_interest_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dollar_volume: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dollar_open_interest: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    // Legacy integer cents / contracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_bid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_ask: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_bid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ask: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_interest: Option<i64>,
}

impl TickerMsg {
    pub fn yes_bid(&self) -> Option<Price> {
        self.yes_bid_dollars.or_else(|| cents(self.yes_bid))
    }
    pub fn yes_ask(&self) -> Option<Price> {
        self.yes_ask_dollars.or_else(|| cents(self.yes_ask))
    }
    pub fn no_bid(&self) -> Option<Price> {
        self.no_bid_dollars
            .or_else(|| cents(self.no_bid))
            .or_else(|| self.yes_ask().map(Price::complement))
    }
    pub fn no_ask(&self) -> Option<Price> {
        self.no_ask_dollars
            .or_else(|| cents(self.no_ask))
            .or_else(|| self.yes_bid().map(Price::complement))
    }
    pub fn last_price(&self) -> Option<Price> {
        self.price_dollars.or_else(|| cents(self.price))
    }
    pub fn volume(&self) -> Option<Count> {
        self.volume_fp
            .or_else(|| self.volume.map(Count::from_contracts))
    }
    pub fn open_interest(&self) -> Option<Count> {
        self.open_interest_fp
            .or_else(|| self.open_interest.map(Count::from_contracts))
    }
}

/// `trade` msg (public trades).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeMsg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
    pub market_ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_outcome_side: Option<OutcomeSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_book_side: Option<BookSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_side: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_block_trade: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

impl TradeMsg {
    pub fn yes_price(&self) -> Option<Price> {
        self.yes_price_dollars.or_else(|| cents(self.yes_price))
    }
    pub fn count(&self) -> Option<Count> {
        self.count_fp
            .or_else(|| self.count.map(Count::from_contracts))
    }
}

/// `fill` msg (private). No `seq`: a missing message is not "no fill" (reconcile via REST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillMsg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_ticker: Option<MarketTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_taker: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_side: Option<OutcomeSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book_side: Option<BookSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_cost: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_position_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

impl FillMsg {
    pub fn yes_price(&self) -> Option<Price> {
        self.yes_price_dollars.or_else(|| cents(self.yes_price))
    }
    pub fn count(&self) -> Option<Count> {
        self.count_fp
            .or_else(|| self.count.map(Count::from_contracts))
    }
}

/// `user_order` msg (private).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOrderMsg {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticker: Option<MarketTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OrderStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_side: Option<OutcomeSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book_side: Option<BookSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_fill_cost_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maker_fill_cost_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_ts_ms: Option<i64>,
}

/// `market_position` msg (private). Money was integer centi-cents until 2026-04-02.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketPositionMsg {
    pub market_ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_cost_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realized_pnl_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees_paid_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_cost: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realized_pnl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees_paid: Option<i64>,
}

impl MarketPositionMsg {
    fn centi_cents(v: Option<i64>) -> Option<Money> {
        v.map(|c| Money::from_micros(c * 100))
    }
    pub fn position(&self) -> Option<Count> {
        self.position_fp
            .or_else(|| self.position.map(Count::from_contracts))
    }
    pub fn position_cost(&self) -> Option<Money> {
        self.position_cost_dollars
            .or_else(|| Self::centi_cents(self.position_cost))
    }
    pub fn realized_pnl(&self) -> Option<Money> {
        self.realized_pnl_dollars
            .or_else(|| Self::centi_cents(self.realized_pnl))
    }
    pub fn fees_paid(&self) -> Option<Money> {
        self.fees_paid_dollars
            .or_else(|| Self::centi_cents(self.fees_paid))
    }
}

string_enum!(
    pub enum LifecycleEvent {
        Created = "created",
        Activated = "activated",
        Deactivated = "deactivated",
        CloseDateUpdated = "close_date_updated",
        Determined = "determined",
        Settled = "settled",
        MetadataUpdated = "metadata_updated",
        PriceLevelStructureUpdated = "price_level_structure_updated",
    }
);

/// `market_lifecycle_v2` msg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketLifecycleMsg {
    pub market_ticker: MarketTicker,
    pub event_type: LifecycleEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<MarketResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub determination_ts: Option<i64>,
    /// Fixed-point dollars since 2026-02-26 (integer cents before).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_price_flex"
    )]
    pub settlement_value: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_deactivated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_strike: Option<WireNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_strike: Option<WireNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strike_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_sub_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_metadata: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------
// Commands (client → server)

/// `subscribe` params. `use_yes_price` is always sent for order-book channels so the session
/// records which NO-price convention it used (API.md §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeParams {
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub market_tickers: Vec<MarketTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_yes_price: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_initial_snapshot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_ticker_ack: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_ids: Vec<String>,
}

/// `update_subscription` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateAction {
    AddMarkets,
    DeleteMarkets,
    GetSnapshot,
}

/// Serialises a command `{"id":…,"cmd":…,"params":…}`.
pub fn command_text(id: u64, cmd: &str, params: Option<serde_json::Value>) -> String {
    let mut v = serde_json::json!({"id": id, "cmd": cmd});
    if let Some(p) = params {
        v["params"] = p;
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_nested_and_flat() {
        let f = WsFrame::parse(
            r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#,
        )
        .unwrap();
        assert_eq!((f.id, f.sid), (Some(1), Some(1)));
        assert_eq!(
            f.msg,
            WsMessage::Subscribed {
                channel: Some("orderbook_delta".into())
            }
        );
        let f = WsFrame::parse(r#"{"id":1,"type":"subscribed","sid":7}"#).unwrap();
        assert_eq!((f.id, f.sid), (Some(1), Some(7)));
        let f = WsFrame::parse(r#"{"id":4,"sid":2,"seq":7,"type":"unsubscribed"}"#).unwrap();
        assert_eq!(
            (f.id, f.sid, f.seq, &f.msg),
            (Some(4), Some(2), Some(7), &WsMessage::Unsubscribed)
        );
        let f = WsFrame::parse(
            r#"{"id":5,"sid":1,"seq":222,"type":"ok","msg":{"market_tickers":["A","B","C"]}}"#,
        )
        .unwrap();
        match &f.msg {
            WsMessage::Ok(ok) => assert_eq!(ok.market_tickers.as_ref().unwrap().len(), 3),
            m => panic!("{m:?}"),
        }
        let f =
            WsFrame::parse(r#"{"id":8,"type":"ok","msg":[{"channel":"orderbook_delta","sid":1}]}"#)
                .unwrap();
        match &f.msg {
            WsMessage::Ok(ok) => assert_eq!(ok.subscriptions.as_ref().unwrap()[0].sid, Some(1)),
            m => panic!("{m:?}"),
        }
        let f = WsFrame::parse(r#"{"id":9,"type":"error","msg":{"code":6,"msg":"Already subscribed","market_ticker":"X"}}"#).unwrap();
        match &f.msg {
            WsMessage::Error(e) => assert_eq!((e.code, e.msg.as_str()), (6, "Already subscribed")),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn book_messages_current_and_legacy() {
        let f = WsFrame::parse(r#"{"type":"orderbook_snapshot","sid":2,"seq":2,"msg":{"market_ticker":"A","market_id":"9b0f",
            "yes_dollars_fp":[["0.0800","300.00"],["0.2200","333.00"]],"no_dollars_fp":[["0.5400","20.00"],["0.5600","146.00"]]}}"#).unwrap();
        let WsMessage::OrderbookSnapshot(s) = &f.msg else {
            panic!()
        };
        assert_eq!(s.yes_levels().len(), 2);
        assert_eq!(s.no_levels()[1].size, Count::from_contracts(146));
        let f = WsFrame::parse(
            r#"{"type":"orderbook_snapshot","sid":2,"seq":2,"msg":{"market_ticker":"A",
            "yes":[[8,300],[22,333]],"yes_dollars":[["0.080",300],["0.220",333]]}}"#,
        )
        .unwrap();
        let WsMessage::OrderbookSnapshot(s) = &f.msg else {
            panic!()
        };
        assert_eq!(s.yes_levels()[0].price, Price::from_cents(8).unwrap());
        assert!(s.no_levels().is_empty());
        let f = WsFrame::parse(r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"A","price_dollars":"0.9600",
            "delta_fp":"-54.00","side":"yes","client_order_id":"mine-1","subaccount":0,"ts":"2026-04-19T18:43:37.662364Z","ts_ms":1776624217662}}"#).unwrap();
        let WsMessage::OrderbookDelta(d) = &f.msg else {
            panic!()
        };
        assert_eq!(
            (d.price(), d.delta(), d.side),
            (
                Some(Price::from_cents(96).unwrap()),
                Some(Count::from_contracts(-54)),
                Side::Yes
            )
        );
        let f = WsFrame::parse(r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"A","price":96,"delta":-54,"side":"no"}}"#).unwrap();
        let WsMessage::OrderbookDelta(d) = &f.msg else {
            panic!()
        };
        assert_eq!(
            (d.price(), d.delta(), d.side),
            (
                Some(Price::from_cents(96).unwrap()),
                Some(Count::from_contracts(-54)),
                Side::No
            )
        );
        assert!(WsFrame::parse(r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"A","side":"maybe"}}"#).is_err());
    }

    #[test]
    fn other_channels() {
        let f = WsFrame::parse(r#"{"type":"market_lifecycle_v2","sid":5,"msg":{"market_ticker":"A","event_type":"determined","result":"yes","determination_ts":1694721660,"settlement_value":"1.0000"}}"#).unwrap();
        let WsMessage::MarketLifecycle(m) = &f.msg else {
            panic!()
        };
        assert_eq!(
            (m.event_type.clone(), m.settlement_value),
            (LifecycleEvent::Determined, Some(Price::ONE))
        );
        let f = WsFrame::parse(r#"{"type":"market_position","sid":14,"msg":{"market_ticker":"A","position":100,"position_cost":500000}}"#).unwrap();
        let WsMessage::MarketPosition(m) = &f.msg else {
            panic!()
        };
        assert_eq!(m.position_cost(), Some(Money::parse_dollars("50").unwrap()));
        let f = WsFrame::parse(
            r#"{"type":"cfbenchmarks_value","sid":1,"seq":42,"msg":{"index_id":"BRTI"}}"#,
        )
        .unwrap();
        assert!(matches!(f.msg, WsMessage::Other(Some(_))));
        assert!(WsFrame::parse("not json").is_err());
    }

    #[test]
    fn commands() {
        let p = SubscribeParams {
            channels: vec!["orderbook_delta".into()],
            market_tickers: vec!["A".into()],
            use_yes_price: Some(false),
            send_initial_snapshot: None,
            skip_ticker_ack: None,
            index_ids: vec![],
        };
        assert_eq!(
            command_text(1, "subscribe", Some(serde_json::to_value(&p).unwrap())),
            r#"{"cmd":"subscribe","id":1,"params":{"channels":["orderbook_delta"],"market_tickers":["A"],"use_yes_price":false}}"#
        );
        assert_eq!(
            command_text(8, "list_subscriptions", None),
            r#"{"cmd":"list_subscriptions","id":8}"#
        );
    }
}
