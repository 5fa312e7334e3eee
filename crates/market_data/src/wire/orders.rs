//! V2 order requests and responses (`/portfolio/events/orders`, API.md §4.10) and a typed
//! builder that maps "buy YES / buy NO / sell …" onto the YES-scale `bid`/`ask` wire form.

use pipeline::ids::{ClientOrderId, MarketTicker, OrderId};
use pipeline::money::{Count, Money, Price};
use serde::{Deserialize, Serialize};

use super::de::{opt_count_flex, opt_price_flex, string_enum};
use super::market::Market;
use super::portfolio::{BookSide, OutcomeSide};
use super::ErrorField;

string_enum!(
    pub enum TimeInForce {
        FillOrKill = "fill_or_kill",
        GoodTillCanceled = "good_till_canceled",
        ImmediateOrCancel = "immediate_or_cancel",
    }
);

string_enum!(
    pub enum SelfTradePrevention {
        /// Cancel the incoming (taker) order at the cross.
        TakerAtCross = "taker_at_cross",
        /// Cancel the resting (maker) order and keep matching.
        Maker = "maker",
    }
);

/// `POST /portfolio/events/orders` body. Everything is on the YES scale: `side: bid` buys YES
/// at `price`; `side: ask` sells YES at `price`, which is buying NO at `1 − price`.
/// Build it with [`CreateOrderRequest::buy_yes`] and friends, which always set a
/// `client_order_id` (the idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrderRequest {
    pub ticker: MarketTicker,
    pub client_order_id: ClientOrderId,
    pub side: BookSide,
    pub count: Count,
    pub price: Price,
    pub time_in_force: TimeInForce,
    pub self_trade_prevention_type: SelfTradePrevention,
    /// Unix seconds (GTC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduce_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_order_on_pause: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i64>,
}

/// What the trader means by an order; [`OrderBuilder`] turns it into the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderIntent {
    /// Buy YES at a YES price `p`: `side: bid, price: p`.
    BuyYes,
    /// Sell YES at a YES price `p`: `side: ask, price: p`.
    SellYes,
    /// Buy NO at a NO price `q`: `side: ask, price: 1 − q`.
    BuyNo,
    /// Sell NO at a NO price `q`: `side: bid, price: 1 − q`.
    SellNo,
}

impl OrderIntent {
    /// `(side, YES-scale price)` for a price quoted on this intent's own leg.
    pub fn to_wire(self, leg_price: Price) -> (BookSide, Price) {
        match self {
            OrderIntent::BuyYes => (BookSide::Bid, leg_price),
            OrderIntent::SellYes => (BookSide::Ask, leg_price),
            OrderIntent::BuyNo => (BookSide::Ask, leg_price.complement()),
            OrderIntent::SellNo => (BookSide::Bid, leg_price.complement()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderBuildError {
    #[error("price {0} must be strictly between $0 and $1")]
    PriceOutOfRange(Price),
    #[error("price {price} is not on {ticker}'s tick grid")]
    OffGrid { ticker: MarketTicker, price: Price },
    #[error("count {0} must be at least 0.01 contracts")]
    BadCount(Count),
    #[error("reduce_only requires immediate_or_cancel")]
    ReduceOnlyNeedsIoc,
    #[error("an expiration time is only valid with good_till_canceled")]
    ExpirationNeedsGtc,
    #[error("post_only cannot be combined with {0}")]
    PostOnlyNeedsGtc(TimeInForce),
    #[error("order is for {order} but the market given is {market}")]
    WrongMarket {
        order: MarketTicker,
        market: MarketTicker,
    },
}

/// Builder for [`CreateOrderRequest`]: defaults GTC, `taker_at_cross`, a fresh UUID v4
/// `client_order_id`.
#[derive(Debug, Clone)]
pub struct OrderBuilder {
    req: CreateOrderRequest,
    intent: OrderIntent,
    leg_price: Price,
}

impl CreateOrderRequest {
    pub fn buy_yes(
        ticker: impl Into<MarketTicker>,
        yes_price: Price,
        count: Count,
    ) -> OrderBuilder {
        OrderBuilder::new(ticker.into(), OrderIntent::BuyYes, yes_price, count)
    }
    pub fn sell_yes(
        ticker: impl Into<MarketTicker>,
        yes_price: Price,
        count: Count,
    ) -> OrderBuilder {
        OrderBuilder::new(ticker.into(), OrderIntent::SellYes, yes_price, count)
    }
    pub fn buy_no(ticker: impl Into<MarketTicker>, no_price: Price, count: Count) -> OrderBuilder {
        OrderBuilder::new(ticker.into(), OrderIntent::BuyNo, no_price, count)
    }
    pub fn sell_no(ticker: impl Into<MarketTicker>, no_price: Price, count: Count) -> OrderBuilder {
        OrderBuilder::new(ticker.into(), OrderIntent::SellNo, no_price, count)
    }

    /// The outcome this order is long and the price paid on that leg: a `bid` at p is long
    /// YES at p; an `ask` at p is long NO at 1 − p.
    pub fn outcome(&self) -> (OutcomeSide, Price) {
        match self.side {
            BookSide::Ask => (OutcomeSide::No, self.price.complement()),
            _ => (OutcomeSide::Yes, self.price),
        }
    }
}

impl OrderBuilder {
    pub fn new(
        ticker: MarketTicker,
        intent: OrderIntent,
        leg_price: Price,
        count: Count,
    ) -> OrderBuilder {
        let (side, price) = intent.to_wire(leg_price);
        OrderBuilder {
            req: CreateOrderRequest {
                ticker,
                client_order_id: ClientOrderId::new(uuid::Uuid::new_v4().to_string()),
                side,
                count,
                price,
                time_in_force: TimeInForce::GoodTillCanceled,
                self_trade_prevention_type: SelfTradePrevention::TakerAtCross,
                expiration_time: None,
                post_only: None,
                reduce_only: None,
                cancel_order_on_pause: None,
                order_group_id: None,
                subaccount: None,
                exchange_index: None,
            },
            intent,
            leg_price,
        }
    }
    /// Use our own idempotency key (recorded in the journal before sending).
    pub fn client_order_id(mut self, id: impl Into<ClientOrderId>) -> Self {
        self.req.client_order_id = id.into();
        self
    }
    pub fn time_in_force(mut self, tif: TimeInForce) -> Self {
        self.req.time_in_force = tif;
        self
    }
    /// Expire a GTC order at this Unix time (seconds).
    pub fn expiration_ts(mut self, unix_s: i64) -> Self {
        self.req.expiration_time = Some(unix_s);
        self
    }
    pub fn post_only(mut self, v: bool) -> Self {
        self.req.post_only = Some(v);
        self
    }
    pub fn reduce_only(mut self, v: bool) -> Self {
        self.req.reduce_only = Some(v);
        self
    }
    pub fn cancel_order_on_pause(mut self, v: bool) -> Self {
        self.req.cancel_order_on_pause = Some(v);
        self
    }
    pub fn self_trade_prevention(mut self, stp: SelfTradePrevention) -> Self {
        self.req.self_trade_prevention_type = stp;
        self
    }
    pub fn order_group_id(mut self, id: impl Into<String>) -> Self {
        self.req.order_group_id = Some(id.into());
        self
    }
    pub fn subaccount(mut self, n: i64) -> Self {
        self.req.subaccount = Some(n);
        self
    }
    pub fn intent(&self) -> OrderIntent {
        self.intent
    }
    pub fn leg_price(&self) -> Price {
        self.leg_price
    }

    /// Validates and returns the request.
    pub fn build(self) -> Result<CreateOrderRequest, OrderBuildError> {
        let r = &self.req;
        if r.price <= Price::ZERO || r.price >= Price::ONE {
            return Err(OrderBuildError::PriceOutOfRange(self.leg_price));
        }
        if r.count.centis() < 1 {
            return Err(OrderBuildError::BadCount(r.count));
        }
        if r.reduce_only == Some(true) && r.time_in_force != TimeInForce::ImmediateOrCancel {
            return Err(OrderBuildError::ReduceOnlyNeedsIoc);
        }
        if r.expiration_time.is_some() && r.time_in_force != TimeInForce::GoodTillCanceled {
            return Err(OrderBuildError::ExpirationNeedsGtc);
        }
        if r.post_only == Some(true) && r.time_in_force != TimeInForce::GoodTillCanceled {
            return Err(OrderBuildError::PostOnlyNeedsGtc(r.time_in_force.clone()));
        }
        Ok(self.req)
    }

    /// Like [`OrderBuilder::build`], also checking the price against the market's tick grid.
    pub fn build_for(self, market: &Market) -> Result<CreateOrderRequest, OrderBuildError> {
        if market.ticker != self.req.ticker {
            return Err(OrderBuildError::WrongMarket {
                order: self.req.ticker.clone(),
                market: market.ticker.clone(),
            });
        }
        let ticker = self.req.ticker.clone();
        let req = self.build()?;
        if !market.price_on_grid(req.price) {
            return Err(OrderBuildError::OffGrid {
                ticker,
                price: req.price,
            });
        }
        Ok(req)
    }
}

/// `POST /portfolio/events/orders` → 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrderResponse {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_count_flex"
    )]
    pub fill_count: Option<Count>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_count_flex"
    )]
    pub remaining_count: Option<Count>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_price_flex"
    )]
    pub average_fill_price: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_fee_paid: Option<Money>,
    /// Matching-engine time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
}

/// `DELETE /portfolio/events/orders/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrderResponse {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_count_flex"
    )]
    pub reduced_by: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCreateRequest {
    pub orders: Vec<CreateOrderRequest>,
}

/// One item of a batch create response: an ack or an `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCreateItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_count_flex"
    )]
    pub fill_count: Option<Count>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_count_flex"
    )]
    pub remaining_count: Option<Count>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_price_flex"
    )]
    pub average_fill_price: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_fee_paid: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCreateResponse {
    #[serde(default)]
    pub orders: Vec<BatchCreateItem>,
}

/// One order to cancel in a batch (`market_ticker` lets the exchange route it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelSpec {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_ticker: Option<MarketTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCancelRequest {
    pub orders: Vec<CancelSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCancelItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_count_flex"
    )]
    pub reduced_by: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCancelResponse {
    #[serde(default)]
    pub orders: Vec<BatchCancelItem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse_dollars(s).unwrap()
    }

    #[test]
    fn yes_scale_mapping_pitfall_16() {
        let c = Count::from_contracts(10);
        let b = CreateOrderRequest::buy_no("T", p("0.30"), c)
            .build()
            .unwrap();
        assert_eq!((b.side.clone(), b.price), (BookSide::Ask, p("0.70")));
        assert_eq!(b.outcome(), (OutcomeSide::No, p("0.30")));
        let b = CreateOrderRequest::buy_yes("T", p("0.56"), c)
            .build()
            .unwrap();
        assert_eq!((b.side.clone(), b.price), (BookSide::Bid, p("0.56")));
        assert_eq!(b.outcome(), (OutcomeSide::Yes, p("0.56")));
        let b = CreateOrderRequest::sell_yes("T", p("0.56"), c)
            .build()
            .unwrap();
        assert_eq!((b.side.clone(), b.price), (BookSide::Ask, p("0.56")));
        let b = CreateOrderRequest::sell_no("T", p("0.25"), c)
            .build()
            .unwrap();
        assert_eq!((b.side.clone(), b.price), (BookSide::Bid, p("0.75")));
    }

    #[test]
    fn wire_form_matches_api_md() {
        let r = CreateOrderRequest::buy_no(
            "KXBTC15M-26SEP281230-30",
            p("0.44"),
            Count::parse("10").unwrap(),
        )
        .client_order_id("8c35ecb3")
        .expiration_ts(1_790_000_000)
        .post_only(false)
        .build()
        .unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ticker":"KXBTC15M-26SEP281230-30","client_order_id":"8c35ecb3",
                "side":"ask","count":"10.00","price":"0.5600","time_in_force":"good_till_canceled",
                "self_trade_prevention_type":"taker_at_cross","expiration_time":1790000000,"post_only":false})
        );
        let back: CreateOrderRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn client_order_id_always_set_and_unique() {
        let a = CreateOrderRequest::buy_yes("T", p("0.5"), Count::from_contracts(1))
            .build()
            .unwrap();
        let b = CreateOrderRequest::buy_yes("T", p("0.5"), Count::from_contracts(1))
            .build()
            .unwrap();
        assert!(!a.client_order_id.as_str().is_empty());
        assert_ne!(a.client_order_id, b.client_order_id);
    }

    #[test]
    fn validation() {
        let c = Count::from_contracts(1);
        assert!(matches!(
            CreateOrderRequest::buy_yes("T", Price::ONE, c).build(),
            Err(OrderBuildError::PriceOutOfRange(_))
        ));
        assert!(matches!(
            CreateOrderRequest::buy_no("T", Price::ONE, c).build(),
            Err(OrderBuildError::PriceOutOfRange(_))
        ));
        assert!(matches!(
            CreateOrderRequest::buy_yes("T", p("0.5"), Count::ZERO).build(),
            Err(OrderBuildError::BadCount(_))
        ));
        assert_eq!(
            CreateOrderRequest::buy_yes("T", p("0.5"), c)
                .reduce_only(true)
                .build(),
            Err(OrderBuildError::ReduceOnlyNeedsIoc)
        );
        assert!(CreateOrderRequest::buy_yes("T", p("0.5"), c)
            .reduce_only(true)
            .time_in_force(TimeInForce::ImmediateOrCancel)
            .build()
            .is_ok());
        assert_eq!(
            CreateOrderRequest::buy_yes("T", p("0.5"), c)
                .time_in_force(TimeInForce::ImmediateOrCancel)
                .expiration_ts(5)
                .build(),
            Err(OrderBuildError::ExpirationNeedsGtc)
        );
    }

    #[test]
    fn grid_check() {
        let m: Market = serde_json::from_value(serde_json::json!({
            "ticker":"T","event_ticker":"E","price_level_structure":"tapered_deci_cent",
            "price_ranges":[{"start":"0.0000","end":"0.1000","step":"0.0010"},
                            {"start":"0.1000","end":"0.9000","step":"0.0100"},
                            {"start":"0.9000","end":"1.0000","step":"0.0010"}]}))
        .unwrap();
        let c = Count::from_contracts(1);
        assert!(CreateOrderRequest::buy_yes("T", p("0.055"), c)
            .build_for(&m)
            .is_ok());
        assert!(CreateOrderRequest::buy_yes("T", p("0.42"), c)
            .build_for(&m)
            .is_ok());
        assert!(matches!(
            CreateOrderRequest::buy_yes("T", p("0.425"), c).build_for(&m),
            Err(OrderBuildError::OffGrid { .. })
        ));
        // buy NO at 0.015 = ask at 0.985: on the upper deci-cent range.
        assert!(CreateOrderRequest::buy_no("T", p("0.015"), c)
            .build_for(&m)
            .is_ok());
        assert!(matches!(
            CreateOrderRequest::buy_yes("U", p("0.42"), c).build_for(&m),
            Err(OrderBuildError::WrongMarket { .. })
        ));
    }

    #[test]
    fn responses_parse() {
        let r: CreateOrderResponse = serde_json::from_str(
            r#"{"order_id":"3b23","client_order_id":"8c35","fill_count":"0.00","remaining_count":"10.00","average_fill_price":"0.5600","average_fee_paid":"0.0012","ts_ms":1715793600123,"new_field":1}"#,
        ).unwrap();
        assert_eq!(r.remaining_count, Some(Count::from_contracts(10)));
        assert_eq!(r.average_fee_paid, Some(Money::from_micros(1200)));
        let c: CancelOrderResponse = serde_json::from_str(
            r#"{"order_id":"3b23","client_order_id":"8c35","reduced_by":"10.00","ts_ms":1}"#,
        )
        .unwrap();
        assert_eq!(c.reduced_by, Some(Count::from_contracts(10)));
        let b: BatchCreateResponse = serde_json::from_str(
            r#"{"orders":[{"order_id":"a","client_order_id":"x","fill_count":"0.00","remaining_count":"1.00","ts_ms":1},
                          {"client_order_id":"y","error":{"code":"invalid_order","message":"m","details":"post only cross"}}]}"#,
        ).unwrap();
        assert!(b.orders[0].error.is_none());
        assert!(
            matches!(&b.orders[1].error, Some(ErrorField::Object(e)) if e.details.as_deref() == Some("post only cross"))
        );
    }
}
