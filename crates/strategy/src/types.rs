//! The values that flow between the strategy, the risk gate, the venue and the report.

use pipeline::money::{Count, Money, Price};
use pipeline::MarketTicker;
use serde::{Deserialize, Serialize};

/// Which contract is bought. Both are bought at their own ask: the YES ask is `1 − best NO
/// bid`, the NO ask `1 − best YES bid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Yes,
    No,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Yes => "yes",
            Side::No => "no",
        }
    }

    /// P(this side pays $1), given P(YES).
    pub fn prob(self, p_yes: f64) -> f64 {
        match self {
            Side::Yes => p_yes,
            Side::No => 1.0 - p_yes,
        }
    }
}

/// What a strategy wants: buy `count` contracts of `side` in `market`, paying at most `limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub market: MarketTicker,
    pub side: Side,
    pub count: Count,
    pub limit: Price,
    /// The model's P(YES) behind the intent, when a model made it.
    pub model_p: Option<f64>,
    /// The market's YES mid (as a probability) on the decision row.
    pub mid: Option<f64>,
    /// Edge per contract net of the taker fee, in dollars (a float: a statistic, not money).
    pub edge: Option<f64>,
    /// Free text for people: why.
    pub reason: String,
}

/// An order as the runtime sends it to a venue, after the risk gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The runtime's id, unique within a run (becomes the client_order_id live).
    pub id: u64,
    pub market: MarketTicker,
    pub side: Side,
    pub count: Count,
    pub limit: Price,
    pub time_in_force: pipeline::schema::strategy::TimeInForce,
    /// `ts_ms` of the row the decision was made on.
    pub decision_ts_ms: i64,
    pub model_p: Option<f64>,
    pub mid: Option<f64>,
    /// The market's close time as known at the decision, for the report's time-to-close view.
    pub close_ts_ms: Option<i64>,
}

/// One execution: part (or all) of an order at one price level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub order_id: u64,
    pub market: MarketTicker,
    /// `ts_ms` of the row whose book the order executed against.
    pub ts_ms: i64,
    pub side: Side,
    /// The price paid per contract (the displayed ask of the level taken).
    pub price: Price,
    pub count: Count,
    /// Kalshi's taker fee for this fill, rounded up to the cent.
    pub fee: Money,
    pub decision_ts_ms: i64,
    pub model_p: Option<f64>,
    pub mid: Option<f64>,
    pub close_ts_ms: Option<i64>,
}

impl Fill {
    /// What the contracts cost, fees excluded: `price × count`, exact.
    pub fn notional(&self) -> Money {
        Money::notional(self.price, self.count)
    }
}

/// How a market settled for us.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    pub market: MarketTicker,
    pub outcome: pipeline::schema::Outcome,
    pub ts_ms: i64,
    pub yes: Count,
    pub no: Count,
    /// $1 per winning contract.
    pub payout: Money,
}

/// One model step of the built-in strategy, traded or not: what the report compares with the
/// market mid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub market: MarketTicker,
    pub ts_ms: i64,
    /// The model's P(YES).
    pub model_p: f64,
    /// The market's YES mid as a probability.
    pub mid: f64,
    pub seconds_to_close: Option<f64>,
    /// The side an intent was emitted for, if any.
    pub action: Option<Side>,
    /// Net edge per contract of each side (dollars), when its ask existed.
    pub edge_yes: Option<f64>,
    pub edge_no: Option<f64>,
}
