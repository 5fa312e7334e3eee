//! Public market data: markets, order books, series, events, trades, exchange status
//! (API.md §4.1–§4.8).

use pipeline::ids::{MarketTicker, SeriesTicker};
use pipeline::money::{Count, Money, Price};
use serde::{Deserialize, Serialize};

use super::de::{string_enum, WireNumber, WireTime};
use super::Level;

string_enum!(
    /// A market's status as returned in responses (not the `status` *filter*, see
    /// [`crate::rest::MarketStatusFilter`]).
    pub enum MarketStatus {
        Initialized = "initialized",
        Inactive = "inactive",
        Active = "active",
        Closed = "closed",
        Determined = "determined",
        Disputed = "disputed",
        Amended = "amended",
        Finalized = "finalized",
        /// Older SDKs' name for finalized.
        Settled = "settled",
    }
);

impl MarketStatus {
    /// True once the outcome is known (determined or later).
    pub fn is_determined(&self) -> bool {
        matches!(
            self,
            MarketStatus::Determined
                | MarketStatus::Disputed
                | MarketStatus::Amended
                | MarketStatus::Finalized
                | MarketStatus::Settled
        )
    }
}

string_enum!(
    /// `Market.result`: empty until determined.
    pub enum MarketResult {
        Yes = "yes",
        No = "no",
        Scalar = "scalar",
        Void = "void",
        Empty = "",
    }
);

string_enum!(
    pub enum StrikeType {
        Greater = "greater",
        GreaterOrEqual = "greater_or_equal",
        Less = "less",
        LessOrEqual = "less_or_equal",
        Between = "between",
        Functional = "functional",
        Custom = "custom",
        Structured = "structured",
    }
);

string_enum!(
    /// Tick-grid family (API.md §3.1); the exact grid is in `price_ranges`.
    pub enum PriceLevelStructure {
        LinearCent = "linear_cent",
        TaperedDeciCent = "tapered_deci_cent",
        DeciCent = "deci_cent",
    }
);

/// One range of the tick grid: prices from `start` to `end` in steps of `step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRange {
    pub start: Price,
    pub end: Price,
    pub step: Price,
}

impl PriceRange {
    /// True if `p` lies in this range on its grid.
    pub fn contains(&self, p: Price) -> bool {
        p >= self.start
            && p <= self.end
            && self.step.micros() > 0
            && (p.micros() - self.start.micros()) % self.step.micros() == 0
    }
}

/// True if `p` is strictly between 0 and 1 and on one of the grid's ranges.
pub fn price_on_grid(ranges: &[PriceRange], p: Price) -> bool {
    p > Price::ZERO && p < Price::ONE && ranges.iter().any(|r| r.contains(p))
}

/// A market object (`GET /markets`, `GET /markets/{ticker}`), current fixed-point fields plus
/// the legacy integer fields (removed 2026-03-12) as fallbacks. Use the accessor methods
/// (`yes_bid()`, `volume()`, …), which prefer the fixed-point field. Unknown fields are
/// ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Market {
    pub ticker: MarketTicker,
    #[serde(default)]
    pub event_ticker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_sub_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_sub_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MarketStatus>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_expiration_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_expiration_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence_datetime: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_timer_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_close_early: Option<bool>,

    // Strikes and outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strike_type: Option<StrikeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_strike: Option<WireNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_strike: Option<WireNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_strike: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<MarketResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_value_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_ts: Option<WireTime>,

    // Quotes (fixed-point).
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
    pub last_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_yes_bid_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_yes_ask_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_24h_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_interest_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notional_value_dollars: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidity_dollars: Option<Money>,

    // Tick grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_level_structure: Option<PriceLevelStructure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub price_ranges: Vec<PriceRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i64>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_secondary: Option<String>,

    // Legacy integer fields (cents / whole contracts), read only as fallbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_bid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_ask: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_bid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ask: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_24h: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_interest: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_size: Option<i64>,
}

use super::cents;

impl Market {
    pub fn series(&self) -> SeriesTicker {
        self.ticker.series()
    }
    pub fn yes_bid(&self) -> Option<Price> {
        self.yes_bid_dollars.or_else(|| cents(self.yes_bid))
    }
    pub fn yes_ask(&self) -> Option<Price> {
        self.yes_ask_dollars.or_else(|| cents(self.yes_ask))
    }
    pub fn no_bid(&self) -> Option<Price> {
        self.no_bid_dollars.or_else(|| cents(self.no_bid))
    }
    pub fn no_ask(&self) -> Option<Price> {
        self.no_ask_dollars.or_else(|| cents(self.no_ask))
    }
    pub fn last_price(&self) -> Option<Price> {
        self.last_price_dollars.or_else(|| cents(self.last_price))
    }
    pub fn volume(&self) -> Option<Count> {
        self.volume_fp
            .or_else(|| self.volume.map(Count::from_contracts))
    }
    pub fn volume_24h(&self) -> Option<Count> {
        self.volume_24h_fp
            .or_else(|| self.volume_24h.map(Count::from_contracts))
    }
    pub fn open_interest(&self) -> Option<Count> {
        self.open_interest_fp
            .or_else(|| self.open_interest.map(Count::from_contracts))
    }
    /// YES payout per contract once settled (`settlement_value_dollars`, legacy cents).
    pub fn settlement_value(&self) -> Option<Price> {
        self.settlement_value_dollars
            .or_else(|| cents(self.settlement_value))
    }
    /// The outcome, if determined: `Some(true)` for YES, `Some(false)` for NO.
    pub fn outcome(&self) -> Option<bool> {
        match self.result {
            Some(MarketResult::Yes) => Some(true),
            Some(MarketResult::No) => Some(false),
            _ => None,
        }
    }
    /// True if `p` is a valid order price for this market (strictly inside (0,1) and on the
    /// `price_ranges` grid; whole cents when no grid is given).
    pub fn price_on_grid(&self, p: Price) -> bool {
        if self.price_ranges.is_empty() {
            p > Price::ZERO && p < Price::ONE && p.whole_cents().is_some()
        } else {
            price_on_grid(&self.price_ranges, p)
        }
    }
}

/// `GET /markets` and `GET /historical/markets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketsPage {
    #[serde(default)]
    pub markets: Vec<Market>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /markets/{ticker}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketResponse {
    pub market: Market,
}

/// The current REST book: `orderbook_fp: {yes_dollars, no_dollars}` (bids only, ascending,
/// NO side in NO-leg prices).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderbookFp {
    #[serde(default, deserialize_with = "super::levels_or_null")]
    pub yes_dollars: Vec<Level>,
    #[serde(default, deserialize_with = "super::levels_or_null")]
    pub no_dollars: Vec<Level>,
}

/// The legacy REST book (≤ early 2026): integer-cent `yes`/`no` and `*_dollars` with
/// integer sizes. (Hand-written: the generated SDKs mangle the `yes`/`no` keys.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyOrderbook {
    #[serde(default, deserialize_with = "super::levels_or_null")]
    pub yes: Vec<Level>,
    #[serde(default, deserialize_with = "super::levels_or_null")]
    pub no: Vec<Level>,
    #[serde(default, deserialize_with = "super::levels_or_null")]
    pub yes_dollars: Vec<Level>,
    #[serde(default, deserialize_with = "super::levels_or_null")]
    pub no_dollars: Vec<Level>,
}

/// Both sides of a book as bids: `yes` = YES bids, `no` = NO bids in NO-leg prices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookLevels {
    pub yes: Vec<Level>,
    pub no: Vec<Level>,
}

/// `GET /markets/{ticker}/orderbook`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderbookResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orderbook_fp: Option<OrderbookFp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orderbook: Option<LegacyOrderbook>,
}

impl OrderbookResponse {
    /// The book, from `orderbook_fp` if present, else the legacy `*_dollars` lists, else the
    /// legacy integer-cent lists.
    pub fn levels(&self) -> BookLevels {
        if let Some(fp) = &self.orderbook_fp {
            return BookLevels {
                yes: fp.yes_dollars.clone(),
                no: fp.no_dollars.clone(),
            };
        }
        match &self.orderbook {
            Some(l) => {
                let pick = |a: &Vec<Level>, b: &Vec<Level>| {
                    if a.is_empty() {
                        b.clone()
                    } else {
                        a.clone()
                    }
                };
                BookLevels {
                    yes: pick(&l.yes_dollars, &l.yes),
                    no: pick(&l.no_dollars, &l.no),
                }
            }
            None => BookLevels::default(),
        }
    }
}

/// One entry of `GET /markets/orderbooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerOrderbook {
    pub ticker: MarketTicker,
    #[serde(flatten)]
    pub book: OrderbookResponse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderbooksResponse {
    #[serde(default)]
    pub orderbooks: Vec<TickerOrderbook>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementSource {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// A series (`GET /series/{ticker}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub ticker: SeriesTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settlement_sources: Vec<SettlementSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_url: Option<String>,
    /// `quadratic | quadratic_with_maker_fees | quadratic_with_combo_maker_fees | flat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_type: Option<String>,
    /// A plain JSON number (`1`, `0.5`); see [`Series::fee_multiplier`].
    #[serde(
        default,
        rename = "fee_multiplier",
        skip_serializing_if = "Option::is_none"
    )]
    pub fee_multiplier_raw: Option<WireNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i64>,
}

impl Series {
    /// The fee multiplier as exact fixed point (the JSON number's text, up to 4 dp).
    pub fn fee_multiplier(
        &self,
    ) -> Option<Result<pipeline::money::FeeMultiplier, pipeline::money::FixedError>> {
        self.fee_multiplier_raw
            .as_ref()
            .map(|n| pipeline::money::FeeMultiplier::parse(&n.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesResponse {
    pub series: Series,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesList {
    #[serde(default, deserialize_with = "super::vec_or_null")]
    pub series: Vec<Series>,
}

/// An event (`GET /events`, `GET /events/{ticker}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_ticker: String,
    #[serde(default)]
    pub series_ticker: Option<SeriesTicker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutually_exclusive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strike_date: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strike_period: Option<String>,
    /// Present with `with_nested_markets=true`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::vec_or_null"
    )]
    pub markets: Vec<Market>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventResponse {
    pub event: Event,
    /// Deprecated top-level copy of the markets.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::vec_or_null"
    )]
    pub markets: Vec<Market>,
}

impl EventResponse {
    /// The event's markets, nested or (deprecated) top-level.
    pub fn all_markets(&self) -> &[Market] {
        if self.event.markets.is_empty() {
            &self.markets
        } else {
            &self.event.markets
        }
    }
}

/// `GET /exchange/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeStatus {
    pub exchange_active: bool,
    pub trading_active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_estimated_resume_time: Option<WireTime>,
}

/// `GET /exchange/user_data_timestamp`: how fresh the portfolio REST data is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDataTimestamp {
    pub as_of_time: WireTime,
}

/// `GET /historical/cutoff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoricalCutoff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_settled_ts: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trades_created_ts: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders_updated_ts: Option<WireTime>,
}

/// A public trade (`GET /markets/trades`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub trade_id: String,
    pub ticker: MarketTicker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_fp: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_price_dollars: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_outcome_side: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_book_side: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_side: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<WireTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_block_trade: Option<bool>,
    // Legacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yes_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_price: Option<i64>,
}

impl Trade {
    pub fn count(&self) -> Option<Count> {
        self.count_fp
            .or_else(|| self.count.map(Count::from_contracts))
    }
    pub fn yes_price(&self) -> Option<Price> {
        self.yes_price_dollars.or_else(|| cents(self.yes_price))
    }
    pub fn no_price(&self) -> Option<Price> {
        self.no_price_dollars
            .or_else(|| cents(self.no_price))
            .or_else(|| self.yes_price().map(Price::complement))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradesPage {
    #[serde(default)]
    pub trades: Vec<Trade>,
    #[serde(default)]
    pub cursor: Option<String>,
}
