//! The engine's domain types: orders, fills, trades, settlements, positions, markets, events.
//! Wire shapes live in `crate::wire`; these are what the engine keeps and emits.

use pipeline::money::{Count, Money, Price};
use pipeline::{ClientOrderId, MarketTicker, OrderId};
use serde::{Deserialize, Serialize};

/// An account on the simulated exchange: a user (has API keys) or an internal participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountKind {
    /// A client of the exchange: balance-checked, gets private events.
    User,
    /// The market maker quoting ladders around fair value (unlimited credit).
    MarketMaker,
    /// A noise trader that occasionally crosses the spread (unlimited credit).
    NoiseTrader,
}

/// V2 order side on the YES scale: `bid` buys YES at `price`; `ask` sells YES at `price`
/// (= buys NO at `1 − price`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Bid,
    Ask,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Bid => Side::Ask,
            Side::Ask => Side::Bid,
        }
    }
    /// `yes` for a bid, `no` for an ask (the outcome bought).
    pub fn outcome(self) -> &'static str {
        match self {
            Side::Bid => "yes",
            Side::Ask => "no",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Bid => "bid",
            Side::Ask => "ask",
        }
    }
    /// The price this side pays per contract for a YES-scale price.
    pub fn leg_price(self, yes_price: Price) -> Price {
        match self {
            Side::Bid => yes_price,
            Side::Ask => yes_price.complement(),
        }
    }
    /// Signed position change for `count` contracts (+YES / −NO).
    pub fn signed(self, count: Count) -> Count {
        match self {
            Side::Bid => count,
            Side::Ask => -count,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    FillOrKill,
    GoodTillCanceled,
    ImmediateOrCancel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    /// Cancel the incoming order at the first own resting order; earlier fills stand.
    #[default]
    TakerAtCross,
    /// Cancel the own resting order and keep matching.
    Maker,
}

impl SelfTradePrevention {
    pub fn as_str(self) -> &'static str {
        match self {
            SelfTradePrevention::TakerAtCross => "taker_at_cross",
            SelfTradePrevention::Maker => "maker",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Resting,
    Canceled,
    Executed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Resting => "resting",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Executed => "executed",
        }
    }
}

/// A validated order request (the engine's form of a V2 create-order body).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderRequest {
    pub ticker: MarketTicker,
    pub side: Side,
    /// YES-scale limit price.
    pub price: Price,
    pub count: Count,
    pub time_in_force: TimeInForce,
    pub post_only: bool,
    pub reduce_only: bool,
    pub self_trade_prevention: SelfTradePrevention,
    pub client_order_id: Option<ClientOrderId>,
    /// GTC orders only: cancelled at this time (Unix ms).
    pub expiration_ms: Option<i64>,
}

impl OrderRequest {
    /// A plain GTC limit order, the common case in tests.
    pub fn limit(ticker: &MarketTicker, side: Side, price: Price, count: Count) -> OrderRequest {
        OrderRequest {
            ticker: ticker.clone(),
            side,
            price,
            count,
            time_in_force: TimeInForce::GoodTillCanceled,
            post_only: false,
            reduce_only: false,
            self_trade_prevention: SelfTradePrevention::TakerAtCross,
            client_order_id: None,
            expiration_ms: None,
        }
    }
}

/// An order as the engine keeps it (every user order is kept for the portfolio endpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    /// Internal sequence number (creation order).
    pub seq: u64,
    pub id: OrderId,
    pub account: AccountId,
    pub client_order_id: Option<ClientOrderId>,
    pub ticker: MarketTicker,
    pub side: Side,
    pub price: Price,
    pub time_in_force: TimeInForce,
    pub self_trade_prevention: SelfTradePrevention,
    pub post_only: bool,
    pub reduce_only: bool,
    pub expiration_ms: Option<i64>,
    pub status: OrderStatus,
    pub initial: Count,
    pub filled: Count,
    pub remaining: Count,
    /// What the account paid for contracts filled as taker / maker (its own leg's price).
    pub taker_fill_cost: Money,
    pub maker_fill_cost: Money,
    pub taker_fees: Money,
    pub maker_fees: Money,
    /// Fee accumulator: cumulative raw fee of all fills, micro-dollars rounded up per fill.
    pub fee_raw_cum: Money,
    /// Σ yes_price × count over fills, for the average fill price.
    pub yes_notional_filled: Money,
    /// Balance held back while the order rests.
    pub reserved: Money,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Order {
    pub fn fees(&self) -> Money {
        self.taker_fees + self.maker_fees
    }
    pub fn is_live(&self) -> bool {
        self.status == OrderStatus::Resting
    }
    /// Average YES-scale fill price, when anything filled.
    pub fn average_fill_price(&self) -> Option<Price> {
        (self.filled.centis() > 0).then(|| {
            Price::from_micros(self.yes_notional_filled.micros() * 100 / self.filled.centis())
                .unwrap_or(Price::ZERO)
        })
    }
    /// Average fee per contract, when anything filled.
    pub fn average_fee_paid(&self) -> Option<Money> {
        (self.filled.centis() > 0)
            .then(|| Money::from_micros(self.fees().micros() * 100 / self.filled.centis()))
    }
}

/// One side of one execution, as the account sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    pub seq: u64,
    pub fill_id: String,
    pub trade_id: String,
    pub order_id: OrderId,
    pub account: AccountId,
    pub client_order_id: Option<ClientOrderId>,
    pub ticker: MarketTicker,
    pub side: Side,
    pub is_taker: bool,
    pub count: Count,
    pub yes_price: Price,
    pub fee: Money,
    pub post_position: Count,
    pub ts_ms: i64,
}

/// A public trade.
#[derive(Clone, Debug, PartialEq)]
pub struct Trade {
    pub seq: u64,
    pub trade_id: String,
    pub ticker: MarketTicker,
    pub count: Count,
    pub yes_price: Price,
    pub taker_side: Side,
    pub ts_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketResult {
    Yes,
    No,
}

impl MarketResult {
    pub fn as_str(self) -> &'static str {
        match self {
            MarketResult::Yes => "yes",
            MarketResult::No => "no",
        }
    }
}

/// A settlement of one account's position in one market, at finalization.
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement {
    pub seq: u64,
    pub account: AccountId,
    pub ticker: MarketTicker,
    pub event_ticker: String,
    pub result: MarketResult,
    pub yes_count: Count,
    pub yes_total_cost: Money,
    pub no_count: Count,
    pub no_total_cost: Money,
    /// Paid out: $1 per winning contract.
    pub revenue: Money,
    /// Fees paid in this market.
    pub fee_cost: Money,
    pub settled_ms: i64,
}

/// An account's position in one market.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Position {
    /// +YES / −NO.
    pub position: Count,
    /// Cost basis of the contracts held.
    pub basis: Money,
    pub realized_pnl: Money,
    /// Σ of what was paid for contracts bought in this market.
    pub total_traded: Money,
    pub fees_paid: Money,
    pub volume: Count,
    pub updated_ms: i64,
    /// True once the market settled this position (it then leaves the unsettled list).
    pub settled: bool,
}

/// A market's lifecycle status as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketStatus {
    Initialized,
    Active,
    Closed,
    Determined,
    Finalized,
}

impl MarketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MarketStatus::Initialized => "initialized",
            MarketStatus::Active => "active",
            MarketStatus::Closed => "closed",
            MarketStatus::Determined => "determined",
            MarketStatus::Finalized => "finalized",
        }
    }
}

/// Which bids a book level belongs to: `Yes` bids, or `No` bids (asks on the YES scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookSide {
    Yes,
    No,
}

impl BookSide {
    pub fn of(side: Side) -> BookSide {
        match side {
            Side::Bid => BookSide::Yes,
            Side::Ask => BookSide::No,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BookSide::Yes => "yes",
            BookSide::No => "no",
        }
    }
}

/// A change of resting size at one level. `price` is the leg price: YES bids at the YES
/// price, NO bids at the NO price (Kalshi's default `use_yes_price: false` convention).
#[derive(Clone, Debug, PartialEq)]
pub struct BookDelta {
    pub ticker: MarketTicker,
    pub side: BookSide,
    pub price: Price,
    pub delta: Count,
    /// The account whose order changed the level (only it may see `client_order_id`).
    pub owner: AccountId,
    pub client_order_id: Option<ClientOrderId>,
    pub ts_ms: i64,
}

/// The fields of a [`TickerState`] whose change triggers a `ticker` message.
pub type TickerKey = (
    Option<(Price, Count)>,
    Option<(Price, Count)>,
    Option<Price>,
    Count,
);

/// Top of book and activity of one market (the `ticker` channel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickerState {
    pub ticker: MarketTicker,
    pub market_id: String,
    pub yes_bid: Option<(Price, Count)>,
    /// Best YES ask = 1 − best NO bid, with the NO bid's size.
    pub yes_ask: Option<(Price, Count)>,
    pub last_price: Option<Price>,
    pub last_trade_size: Count,
    pub volume: Count,
    pub open_interest: Count,
    /// Σ yes_price × count of all trades.
    pub dollar_volume: Money,
    pub ts_ms: i64,
}

impl TickerState {
    /// The fields whose change triggers a `ticker` message.
    pub fn key(&self) -> TickerKey {
        (self.yes_bid, self.yes_ask, self.last_price, self.volume)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleKind {
    Created,
    Activated,
    MetadataUpdated,
    CloseDateUpdated,
    Determined,
    Settled,
}

impl LifecycleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleKind::Created => "created",
            LifecycleKind::Activated => "activated",
            LifecycleKind::MetadataUpdated => "metadata_updated",
            LifecycleKind::CloseDateUpdated => "close_date_updated",
            LifecycleKind::Determined => "determined",
            LifecycleKind::Settled => "settled",
        }
    }
}

/// Everything the engine reports, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    BookDelta(BookDelta),
    Trade(Trade),
    Ticker(TickerState),
    /// A user's fill (internal accounts get none).
    Fill(Fill),
    /// A user's order changed (created, filled, cancelled, expired).
    UserOrder(Box<Order>),
    /// A user's position in a market changed.
    Position {
        account: AccountId,
        ticker: MarketTicker,
        position: Position,
    },
    /// A market lifecycle event, with the market as it was right after it.
    Lifecycle {
        kind: LifecycleKind,
        market: Box<super::MarketInfo>,
        ts_ms: i64,
    },
}

impl Event {
    pub fn ticker(&self) -> &MarketTicker {
        match self {
            Event::BookDelta(d) => &d.ticker,
            Event::Trade(t) => &t.ticker,
            Event::Ticker(t) => &t.ticker,
            Event::Fill(f) => &f.ticker,
            Event::UserOrder(o) => &o.ticker,
            Event::Position { ticker, .. } => ticker,
            Event::Lifecycle { market, .. } => &market.ticker,
        }
    }
}
