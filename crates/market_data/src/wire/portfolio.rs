//! Portfolio reads (API.md §4.9): balance, positions, orders, fills, settlements.

use pipeline::ids::{ClientOrderId, MarketTicker, OrderId};
use pipeline::money::{Count, Money, Price};
use serde::{Deserialize, Serialize};

use super::de::{string_enum, WireTime};

use super::cents;

/// `GET /portfolio/balance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_dollars: Option<Money>,
    /// Legacy integer cents (truncates sub-cent balances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ts: Option<i64>,
}

impl Balance {
    /// Available balance, preferring the exact `balance_dollars`.
    pub fn available(&self) -> Option<Money> {
        self.balance_dollars
            .or_else(|| self.balance.map(Money::from_cents))
    }
}

/// A market position (`position_fp` signed: + YES, − NO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketPosition {
    pub ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_exposure_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_traded_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realized_pnl_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees_paid_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_ts: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i64>,
    // Legacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_exposure: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realized_pnl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees_paid: Option<i64>,
}

impl MarketPosition {
    pub fn position(&self) -> Count {
        self.position_fp
            .or_else(|| self.position.map(Count::from_contracts))
            .unwrap_or(Count::ZERO)
    }
    pub fn exposure(&self) -> Option<Money> {
        self.market_exposure_dollars
            .or_else(|| self.market_exposure.map(Money::from_cents))
    }
    pub fn realized_pnl(&self) -> Option<Money> {
        self.realized_pnl_dollars
            .or_else(|| self.realized_pnl.map(Money::from_cents))
    }
    pub fn fees_paid(&self) -> Option<Money> {
        self.fees_paid_dollars
            .or_else(|| self.fees_paid.map(Money::from_cents))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPosition {
    pub event_ticker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_shares_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_exposure_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realized_pnl_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees_paid_dollars: Option<Money>,
}

/// `GET /portfolio/positions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionsPage {
    #[serde(default, deserialize_with = "super::vec_or_null")]
    pub market_positions: Vec<MarketPosition>,
    #[serde(default, deserialize_with = "super::vec_or_null")]
    pub event_positions: Vec<EventPosition>,
    #[serde(default)]
    pub cursor: Option<String>,
}

string_enum!(
    pub enum OrderStatus {
        Resting = "resting",
        Canceled = "canceled",
        Executed = "executed",
        /// Removed 2025-11-27; kept for old payloads.
        Pending = "pending",
    }
);

string_enum!(
    /// Which outcome an order or fill is long: buy-YES/sell-NO ⇒ `yes`, buy-NO/sell-YES ⇒ `no`.
    pub enum OutcomeSide {
        Yes = "yes",
        No = "no",
    }
);

string_enum!(
    /// V2 book side on the YES scale: `bid` = buy YES, `ask` = sell YES (= buy NO at 1 − p).
    pub enum BookSide {
        Bid = "bid",
        Ask = "ask",
    }
);

/// An order (`GET /portfolio/orders`, WS `user_order` is similar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    pub ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OrderStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_side: Option<OutcomeSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book_side: Option<BookSide>,
    /// Deprecated `yes|no`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    /// Deprecated `buy|sell`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_price_dollars: Option<Price>,
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
    pub taker_fees_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maker_fees_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_trade_prevention_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i64>,
    // Legacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_count: Option<i64>,
}

impl Order {
    pub fn yes_price(&self) -> Option<Price> {
        self.yes_price_dollars
            .or_else(|| cents(self.yes_price))
            .or_else(|| self.no_price_dollars.map(Price::complement))
    }
    pub fn fill_count(&self) -> Option<Count> {
        self.fill_count_fp
            .or_else(|| self.fill_count.map(Count::from_contracts))
    }
    pub fn remaining_count(&self) -> Option<Count> {
        self.remaining_count_fp
            .or_else(|| self.remaining_count.map(Count::from_contracts))
    }
    pub fn initial_count(&self) -> Option<Count> {
        self.initial_count_fp
            .or_else(|| self.initial_count.map(Count::from_contracts))
    }
    /// The V2 book side, from `book_side` or derived from the deprecated `side`/`action`.
    pub fn book_side(&self) -> Option<BookSide> {
        if let Some(b) = &self.book_side {
            return Some(b.clone());
        }
        match (self.side.as_deref(), self.action.as_deref()) {
            (Some("yes"), Some("buy")) | (Some("no"), Some("sell")) => Some(BookSide::Bid),
            (Some("no"), Some("buy")) | (Some("yes"), Some("sell")) => Some(BookSide::Ask),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrdersPage {
    #[serde(default, deserialize_with = "super::vec_or_null")]
    pub orders: Vec<Order>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderResponse {
    pub order: Order,
}

/// A fill (`GET /portfolio/fills`). `client_order_id` was removed from fills 2026-03-30.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticker: Option<MarketTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_ticker: Option<MarketTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_side: Option<OutcomeSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book_side: Option<BookSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_taker: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_cost: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    // Legacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price: Option<i64>,
}

impl Fill {
    /// `fill_id`, else `trade_id` (dedupe key).
    pub fn id(&self) -> Option<&str> {
        self.fill_id.as_deref().or(self.trade_id.as_deref())
    }
    pub fn market(&self) -> Option<&MarketTicker> {
        self.ticker.as_ref().or(self.market_ticker.as_ref())
    }
    pub fn count(&self) -> Option<Count> {
        self.count_fp
            .or_else(|| self.count.map(Count::from_contracts))
    }
    pub fn yes_price(&self) -> Option<Price> {
        self.yes_price_dollars.or_else(|| cents(self.yes_price))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillsPage {
    #[serde(default, deserialize_with = "super::vec_or_null")]
    pub fills: Vec<Fill>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A settlement (`GET /portfolio/settlements`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    pub ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ticker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_result: Option<super::MarketResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_total_cost_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_total_cost_dollars: Option<Money>,
    /// Integer cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_cost: Option<Money>,
    /// YES payout per contract, integer cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
}

impl Settlement {
    pub fn revenue(&self) -> Option<Money> {
        self.revenue.map(Money::from_cents)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettlementsPage {
    #[serde(default, deserialize_with = "super::vec_or_null")]
    pub settlements: Vec<Settlement>,
    #[serde(default)]
    pub cursor: Option<String>,
}
