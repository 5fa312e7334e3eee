//! Kalshi's JSON shapes (API.md §4–5), current fixed-point era: prices and money as
//! `*_dollars` strings, counts as `*_fp` strings, V2 orders. Written from the protocol
//! document, independently of any client, so the two test each other.

use pipeline::money::{Count, Money, Price};
use pipeline::ClientOrderId;
use serde::{Deserialize, Serialize};

use crate::engine::naming::{rfc3339, uuid_like};
use crate::engine::{
    AccountId, BookDelta, EngineConfig, Fill, LifecycleKind, MarketInfo, MarketStatus, Order,
    OrderRequest, Position, PriceLevelStructure, SelfTradePrevention, Settlement, Side,
    TickerState, TimeInForce, Trade,
};

/// `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub details: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>, details: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                details: details.into(),
            },
        }
    }
}

/// The user id shown in orders and positions.
pub fn user_id(seed: u64, account: AccountId) -> String {
    uuid_like(seed, 9, u64::from(account.0))
}

fn opt_price(p: Option<Price>) -> Option<String> {
    p.map(|p| p.to_dollars())
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn strike_dollars(cents: i64) -> f64 {
    cents as f64 / 100.0
}

#[derive(Debug, Clone, Serialize)]
pub struct PriceRange {
    pub start: String,
    pub end: String,
    pub step: String,
}

pub fn price_ranges(s: PriceLevelStructure) -> Vec<PriceRange> {
    s.ranges()
        .into_iter()
        .map(|(a, b, c)| PriceRange {
            start: a.to_dollars(),
            end: b.to_dollars(),
            step: c.to_dollars(),
        })
        .collect()
}

pub fn rules_primary(m: &MarketInfo) -> String {
    format!(
        "If the simulated BTC index at {} is at least its value at {} (the target price), \
         then the market resolves to Yes.",
        rfc3339(m.close_ms),
        rfc3339(m.open_ms)
    )
}

pub const RULES_SECONDARY: &str =
    "Simulated market (kalshi_sim): the index is a seeded random walk or replayed bars, sampled at the exact open and close times and rounded to 2 decimals; ties resolve to Yes.";

/// Kalshi's Market object.
#[derive(Debug, Clone, Serialize)]
pub struct Market {
    pub ticker: String,
    pub event_ticker: String,
    pub market_type: &'static str,
    pub title: String,
    pub subtitle: String,
    pub yes_sub_title: String,
    pub no_sub_title: String,
    pub created_time: String,
    pub updated_time: String,
    pub open_time: String,
    pub close_time: String,
    pub expected_expiration_time: String,
    pub expiration_time: String,
    pub latest_expiration_time: String,
    pub settlement_timer_seconds: i64,
    pub status: &'static str,
    pub notional_value_dollars: String,
    pub yes_bid_dollars: String,
    pub yes_bid_size_fp: String,
    pub yes_ask_dollars: String,
    pub yes_ask_size_fp: String,
    pub no_bid_dollars: String,
    pub no_ask_dollars: String,
    pub last_price_dollars: String,
    pub previous_yes_bid_dollars: String,
    pub previous_yes_ask_dollars: String,
    pub previous_price_dollars: String,
    pub volume_fp: String,
    pub volume_24h_fp: String,
    pub open_interest_fp: String,
    pub result: &'static str,
    pub can_close_early: bool,
    pub expiration_value: String,
    pub settlement_value_dollars: Option<String>,
    pub settlement_ts: Option<String>,
    pub settlement_bounds_type: &'static str,
    pub strike_type: &'static str,
    pub floor_strike: Option<f64>,
    pub cap_strike: Option<f64>,
    pub rules_primary: String,
    pub rules_secondary: &'static str,
    pub occurrence_datetime: Option<String>,
    pub early_close_condition: Option<String>,
    pub price_level_structure: &'static str,
    pub price_ranges: Vec<PriceRange>,
    pub is_provisional: bool,
    pub exchange_index: i64,
    pub fee_waiver_expiration_time: Option<String>,
}

impl Market {
    pub fn new(m: &MarketInfo, st: &TickerState, determination_delay_ms: i64) -> Market {
        let yes_bid = st.yes_bid;
        let yes_ask = st.yes_ask;
        let expected = m.close_ms + determination_delay_ms;
        let latest = m.scheduled_close_ms.max(m.close_ms) + 7 * 24 * 3_600_000;
        let sub = m.yes_sub_title();
        Market {
            ticker: m.ticker.to_string(),
            event_ticker: m.event_ticker.clone(),
            market_type: "binary",
            title: m.title.clone(),
            subtitle: String::new(),
            yes_sub_title: sub.clone(),
            no_sub_title: sub,
            created_time: rfc3339(m.created_ms),
            updated_time: rfc3339(m.updated_ms),
            open_time: rfc3339(m.open_ms),
            close_time: rfc3339(m.close_ms),
            expected_expiration_time: rfc3339(expected),
            expiration_time: rfc3339(latest),
            latest_expiration_time: rfc3339(latest),
            settlement_timer_seconds: m.settlement_timer_seconds,
            status: m.status.as_str(),
            notional_value_dollars: Price::ONE.to_dollars(),
            yes_bid_dollars: yes_bid.map(|x| x.0).unwrap_or(Price::ZERO).to_dollars(),
            yes_bid_size_fp: yes_bid.map(|x| x.1).unwrap_or(Count::ZERO).to_fp_string(),
            yes_ask_dollars: yes_ask.map(|x| x.0).unwrap_or(Price::ONE).to_dollars(),
            yes_ask_size_fp: yes_ask.map(|x| x.1).unwrap_or(Count::ZERO).to_fp_string(),
            no_bid_dollars: yes_ask
                .map(|x| x.0.complement())
                .unwrap_or(Price::ZERO)
                .to_dollars(),
            no_ask_dollars: yes_bid
                .map(|x| x.0.complement())
                .unwrap_or(Price::ONE)
                .to_dollars(),
            last_price_dollars: st.last_price.unwrap_or(Price::ZERO).to_dollars(),
            previous_yes_bid_dollars: Price::ZERO.to_dollars(),
            previous_yes_ask_dollars: Price::ZERO.to_dollars(),
            previous_price_dollars: Price::ZERO.to_dollars(),
            volume_fp: st.volume.to_fp_string(),
            volume_24h_fp: st.volume.to_fp_string(),
            open_interest_fp: st.open_interest.to_fp_string(),
            result: m.result.map(|r| r.as_str()).unwrap_or(""),
            can_close_early: false,
            expiration_value: m
                .expiration_value_cents
                .map(|c| format!("{}.{:02}", c / 100, c.rem_euclid(100)))
                .unwrap_or_default(),
            settlement_value_dollars: m
                .settlement_value()
                .filter(|_| m.status >= MarketStatus::Determined)
                .map(|p| p.to_dollars()),
            settlement_ts: m.settled_ms.map(rfc3339),
            settlement_bounds_type: "default",
            strike_type: "greater_or_equal",
            floor_strike: m.floor_strike_cents.map(strike_dollars),
            cap_strike: None,
            rules_primary: rules_primary(m),
            rules_secondary: RULES_SECONDARY,
            occurrence_datetime: None,
            early_close_condition: None,
            price_level_structure: m.price_level_structure.as_str(),
            price_ranges: price_ranges(m.price_level_structure),
            is_provisional: false,
            exchange_index: 0,
            fee_waiver_expiration_time: None,
        }
    }
}

/// `orderbook_fp`: YES bids and NO bids (NO-leg prices), ascending, `[price, size]`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderbookFp {
    pub yes_dollars: Vec<[String; 2]>,
    pub no_dollars: Vec<[String; 2]>,
}

pub fn levels(v: &[(Price, Count)]) -> Vec<[String; 2]> {
    v.iter()
        .map(|(p, c)| [p.to_dollars(), c.to_fp_string()])
        .collect()
}

/// Keeps the best `depth` levels (the last ones, arrays being ascending); 0 = all.
pub fn top(v: Vec<(Price, Count)>, depth: usize) -> Vec<(Price, Count)> {
    if depth == 0 || v.len() <= depth {
        v
    } else {
        v[v.len() - depth..].to_vec()
    }
}

/// Kalshi's Series object.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub ticker: String,
    pub frequency: String,
    pub title: String,
    pub category: &'static str,
    pub categories: Vec<&'static str>,
    pub tags: Vec<&'static str>,
    pub settlement_sources: Vec<SettlementSource>,
    pub contract_url: &'static str,
    pub contract_terms_url: &'static str,
    pub product_metadata: Option<serde_json::Value>,
    pub fee_type: &'static str,
    pub fee_multiplier: f64,
    pub additional_prohibitions: Vec<String>,
    pub volume_fp: String,
    pub last_updated_ts: String,
    pub exchange_index: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettlementSource {
    pub name: &'static str,
    pub url: &'static str,
}

pub fn frequency(duration_ms: i64) -> String {
    match duration_ms {
        900_000 => "fifteen_min".into(),
        3_600_000 => "hourly".into(),
        86_400_000 => "daily".into(),
        ms if ms % 60_000 == 0 => format!("{}_min", ms / 60_000),
        ms => format!("{}_ms", ms),
    }
}

impl Series {
    pub fn new(cfg: &EngineConfig, volume: Count, now_ms: i64) -> Series {
        Series {
            ticker: cfg.series.to_string(),
            frequency: frequency(cfg.market_duration_ms),
            title: cfg.title.clone(),
            category: "Crypto",
            categories: vec!["Crypto"],
            tags: vec!["BTC"],
            settlement_sources: vec![SettlementSource {
                name: "kalshi_sim index",
                url: "http://127.0.0.1/",
            }],
            contract_url: "",
            contract_terms_url: "",
            product_metadata: None,
            fee_type: cfg.fee_type.as_str(),
            fee_multiplier: cfg.fee_multiplier.ten_thousandths() as f64 / 10_000.0,
            additional_prohibitions: Vec::new(),
            volume_fp: volume.to_fp_string(),
            last_updated_ts: rfc3339(now_ms),
            exchange_index: 0,
        }
    }
}

/// Kalshi's EventData.
#[derive(Debug, Clone, Serialize)]
pub struct EventData {
    pub event_ticker: String,
    pub series_ticker: String,
    pub title: String,
    pub sub_title: String,
    pub collateral_return_type: &'static str,
    pub mutually_exclusive: bool,
    pub strike_date: String,
    pub strike_period: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markets: Option<Vec<Market>>,
    pub settlement_sources: Vec<SettlementSource>,
    pub last_updated_ts: String,
    pub exchange_index: i64,
    pub category: &'static str,
}

impl EventData {
    pub fn new(first: &MarketInfo, markets: Option<Vec<Market>>, updated_ms: i64) -> EventData {
        EventData {
            event_ticker: first.event_ticker.clone(),
            series_ticker: first.series.to_string(),
            title: first.title.clone(),
            sub_title: format!("At {}", rfc3339(first.close_ms)),
            collateral_return_type: "",
            mutually_exclusive: false,
            strike_date: rfc3339(first.close_ms),
            strike_period: String::new(),
            markets,
            settlement_sources: vec![SettlementSource {
                name: "kalshi_sim index",
                url: "http://127.0.0.1/",
            }],
            last_updated_ts: rfc3339(updated_ms),
            exchange_index: 0,
            category: "Crypto",
        }
    }
}

/// Kalshi's Order object (current).
#[derive(Debug, Clone, Serialize)]
pub struct OrderWire {
    pub order_id: String,
    pub user_id: String,
    pub client_order_id: String,
    pub ticker: String,
    pub outcome_side: &'static str,
    pub book_side: &'static str,
    pub side: &'static str,
    pub action: &'static str,
    #[serde(rename = "type")]
    pub order_type: &'static str,
    pub status: &'static str,
    pub time_in_force: TimeInForce,
    pub yes_price_dollars: String,
    pub no_price_dollars: String,
    pub fill_count_fp: String,
    pub remaining_count_fp: String,
    pub initial_count_fp: String,
    pub taker_fill_cost_dollars: String,
    pub maker_fill_cost_dollars: String,
    pub taker_fees_dollars: String,
    pub maker_fees_dollars: String,
    pub expiration_time: Option<String>,
    pub created_time: String,
    pub last_update_time: String,
    pub self_trade_prevention_type: &'static str,
    pub post_only: bool,
    pub reduce_only: bool,
    pub order_group_id: Option<String>,
    pub cancel_order_on_pause: bool,
    pub subaccount_number: i64,
    pub exchange_index: i64,
}

impl OrderWire {
    pub fn new(o: &Order, seed: u64) -> OrderWire {
        OrderWire {
            order_id: o.id.to_string(),
            user_id: user_id(seed, o.account),
            client_order_id: o
                .client_order_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            ticker: o.ticker.to_string(),
            outcome_side: o.side.outcome(),
            book_side: o.side.as_str(),
            side: o.side.outcome(),
            action: "buy",
            order_type: "limit",
            status: o.status.as_str(),
            time_in_force: o.time_in_force,
            yes_price_dollars: o.price.to_dollars(),
            no_price_dollars: o.price.complement().to_dollars(),
            fill_count_fp: o.filled.to_fp_string(),
            remaining_count_fp: o.remaining.to_fp_string(),
            initial_count_fp: o.initial.to_fp_string(),
            taker_fill_cost_dollars: o.taker_fill_cost.to_dollars(),
            maker_fill_cost_dollars: o.maker_fill_cost.to_dollars(),
            taker_fees_dollars: o.taker_fees.to_dollars(),
            maker_fees_dollars: o.maker_fees.to_dollars(),
            expiration_time: o.expiration_ms.map(rfc3339),
            created_time: rfc3339(o.created_ms),
            last_update_time: rfc3339(o.updated_ms),
            self_trade_prevention_type: o.self_trade_prevention.as_str(),
            post_only: o.post_only,
            reduce_only: o.reduce_only,
            order_group_id: None,
            cancel_order_on_pause: false,
            subaccount_number: 0,
            exchange_index: 0,
        }
    }
}

/// V2 create-order response (and a batch item).
#[derive(Debug, Clone, Serialize)]
pub struct CreateOrderV2Response {
    pub order_id: String,
    pub client_order_id: String,
    pub fill_count: String,
    pub remaining_count: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_fill_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_fee_paid: Option<String>,
    pub ts_ms: i64,
}

impl CreateOrderV2Response {
    pub fn new(o: &Order, ts_ms: i64) -> CreateOrderV2Response {
        CreateOrderV2Response {
            order_id: o.id.to_string(),
            client_order_id: o
                .client_order_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            fill_count: o.filled.to_fp_string(),
            remaining_count: o.remaining.to_fp_string(),
            average_fill_price: opt_price(o.average_fill_price()),
            average_fee_paid: o.average_fee_paid().map(|m| m.to_dollars()),
            ts_ms,
        }
    }
}

/// V2 cancel response (and a batch item).
#[derive(Debug, Clone, Serialize)]
pub struct CancelOrderV2Response {
    pub order_id: String,
    pub client_order_id: String,
    pub reduced_by: String,
    pub ts_ms: i64,
}

/// Kalshi's Fill (REST).
#[derive(Debug, Clone, Serialize)]
pub struct FillWire {
    pub fill_id: String,
    pub trade_id: String,
    pub order_id: String,
    pub ticker: String,
    pub market_ticker: String,
    pub outcome_side: &'static str,
    pub book_side: &'static str,
    pub side: &'static str,
    pub action: &'static str,
    pub count_fp: String,
    pub yes_price_dollars: String,
    pub no_price_dollars: String,
    pub is_taker: bool,
    pub fee_cost: String,
    pub created_time: String,
    pub ts: i64,
    pub subaccount_number: i64,
    pub exchange_index: i64,
}

impl FillWire {
    pub fn new(f: &Fill) -> FillWire {
        FillWire {
            fill_id: f.fill_id.clone(),
            trade_id: f.trade_id.clone(),
            order_id: f.order_id.to_string(),
            ticker: f.ticker.to_string(),
            market_ticker: f.ticker.to_string(),
            outcome_side: f.side.outcome(),
            book_side: f.side.as_str(),
            side: f.side.outcome(),
            action: "buy",
            count_fp: f.count.to_fp_string(),
            yes_price_dollars: f.yes_price.to_dollars(),
            no_price_dollars: f.yes_price.complement().to_dollars(),
            is_taker: f.is_taker,
            fee_cost: f.fee.to_dollars(),
            created_time: rfc3339(f.ts_ms),
            ts: secs(f.ts_ms),
            subaccount_number: 0,
            exchange_index: 0,
        }
    }
}

/// Kalshi's public Trade (REST).
#[derive(Debug, Clone, Serialize)]
pub struct TradeWire {
    pub trade_id: String,
    pub ticker: String,
    pub count_fp: String,
    pub yes_price_dollars: String,
    pub no_price_dollars: String,
    pub taker_outcome_side: &'static str,
    pub taker_book_side: &'static str,
    pub taker_side: &'static str,
    pub created_time: String,
    pub is_block_trade: bool,
}

impl TradeWire {
    pub fn new(t: &Trade) -> TradeWire {
        TradeWire {
            trade_id: t.trade_id.clone(),
            ticker: t.ticker.to_string(),
            count_fp: t.count.to_fp_string(),
            yes_price_dollars: t.yes_price.to_dollars(),
            no_price_dollars: t.yes_price.complement().to_dollars(),
            taker_outcome_side: t.taker_side.outcome(),
            taker_book_side: t.taker_side.as_str(),
            taker_side: t.taker_side.outcome(),
            created_time: rfc3339(t.ts_ms),
            is_block_trade: false,
        }
    }
}

/// Kalshi's Settlement (REST).
#[derive(Debug, Clone, Serialize)]
pub struct SettlementWire {
    pub ticker: String,
    pub event_ticker: String,
    pub exchange_index: i64,
    pub market_result: &'static str,
    pub yes_count_fp: String,
    pub yes_total_cost_dollars: String,
    pub no_count_fp: String,
    pub no_total_cost_dollars: String,
    /// Integer cents.
    pub revenue: i64,
    pub revenue_dollars: String,
    pub settled_time: String,
    pub fee_cost: String,
    /// Integer cents per YES contract.
    pub value: Option<i64>,
}

impl SettlementWire {
    pub fn new(s: &Settlement) -> SettlementWire {
        SettlementWire {
            ticker: s.ticker.to_string(),
            event_ticker: s.event_ticker.clone(),
            exchange_index: 0,
            market_result: s.result.as_str(),
            yes_count_fp: s.yes_count.to_fp_string(),
            yes_total_cost_dollars: s.yes_total_cost.to_dollars(),
            no_count_fp: s.no_count.to_fp_string(),
            no_total_cost_dollars: s.no_total_cost.to_dollars(),
            revenue: s.revenue.micros() / 10_000,
            revenue_dollars: s.revenue.to_dollars(),
            settled_time: rfc3339(s.settled_ms),
            fee_cost: s.fee_cost.to_dollars(),
            value: Some(match s.result {
                crate::engine::MarketResult::Yes => 100,
                crate::engine::MarketResult::No => 0,
            }),
        }
    }
}

/// Kalshi's MarketPosition (REST).
#[derive(Debug, Clone, Serialize)]
pub struct MarketPositionWire {
    pub ticker: String,
    pub exchange_index: i64,
    pub position_fp: String,
    pub market_exposure_dollars: String,
    pub total_traded_dollars: String,
    pub realized_pnl_dollars: String,
    pub fees_paid_dollars: String,
    pub last_updated_ts: String,
}

impl MarketPositionWire {
    pub fn new(ticker: &str, p: &Position) -> MarketPositionWire {
        MarketPositionWire {
            ticker: ticker.to_string(),
            exchange_index: 0,
            position_fp: p.position.to_fp_string(),
            market_exposure_dollars: p.basis.to_dollars(),
            total_traded_dollars: p.total_traded.to_dollars(),
            realized_pnl_dollars: p.realized_pnl.to_dollars(),
            fees_paid_dollars: p.fees_paid.to_dollars(),
            last_updated_ts: rfc3339(p.updated_ms),
        }
    }
}

/// Kalshi's EventPosition (REST).
#[derive(Debug, Clone, Serialize)]
pub struct EventPositionWire {
    pub event_ticker: String,
    pub total_cost_dollars: String,
    pub total_cost_shares_fp: String,
    pub event_exposure_dollars: String,
    pub realized_pnl_dollars: String,
    pub fees_paid_dollars: String,
}

impl EventPositionWire {
    pub fn new(event_ticker: &str, ps: &[&Position]) -> EventPositionWire {
        let sum = |f: &dyn Fn(&Position) -> Money| ps.iter().map(|p| f(p)).sum::<Money>();
        EventPositionWire {
            event_ticker: event_ticker.to_string(),
            total_cost_dollars: sum(&|p| p.total_traded).to_dollars(),
            total_cost_shares_fp: ps.iter().map(|p| p.volume).sum::<Count>().to_fp_string(),
            event_exposure_dollars: sum(&|p| p.basis).to_dollars(),
            realized_pnl_dollars: sum(&|p| p.realized_pnl).to_dollars(),
            fees_paid_dollars: sum(&|p| p.fees_paid).to_dollars(),
        }
    }
}

// ----------------------------------------------------------------------------------------
// Requests
// ----------------------------------------------------------------------------------------

/// `POST /portfolio/events/orders` body (V2). Every field optional here so that a missing
/// one is reported by name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateOrderV2Request {
    pub ticker: Option<String>,
    pub client_order_id: Option<String>,
    pub side: Option<String>,
    pub count: Option<serde_json::Value>,
    pub price: Option<serde_json::Value>,
    pub time_in_force: Option<String>,
    pub self_trade_prevention_type: Option<String>,
    pub expiration_time: Option<i64>,
    pub post_only: Option<bool>,
    pub reduce_only: Option<bool>,
    pub cancel_order_on_pause: Option<bool>,
    pub order_group_id: Option<String>,
    pub subaccount: Option<i64>,
    pub exchange_index: Option<i64>,
}

/// A request body Kalshi would refuse with 400, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BadRequest {
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> BadRequest {
    BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

fn fixed_string<'a>(field: &str, v: &'a Option<serde_json::Value>) -> Result<&'a str, BadRequest> {
    match v {
        None | Some(serde_json::Value::Null) => Err(bad(field, "is required")),
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Err(bad(
            field,
            format!("must be a fixed-point string such as \"10.00\", not {other}"),
        )),
    }
}

impl CreateOrderV2Request {
    /// Validates the body's form (the engine then checks it against the market).
    pub fn to_request(&self) -> Result<OrderRequest, BadRequest> {
        let ticker = self
            .ticker
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("ticker", "is required"))?;
        let side = match self.side.as_deref() {
            Some("bid") => Side::Bid,
            Some("ask") => Side::Ask,
            Some(other) => {
                return Err(bad(
                    "side",
                    format!("must be \"bid\" or \"ask\" (YES scale), not {other:?}"),
                ))
            }
            None => return Err(bad("side", "is required")),
        };
        let count_s = fixed_string("count", &self.count)?;
        let count = Count::parse(count_s)
            .map_err(|e| bad("count", format!("{count_s:?}: {e} (at most 2 decimals)")))?;
        let price_s = fixed_string("price", &self.price)?;
        let price =
            Price::parse_dollars(price_s).map_err(|e| bad("price", format!("{price_s:?}: {e}")))?;
        let time_in_force = match self.time_in_force.as_deref() {
            Some("fill_or_kill") => TimeInForce::FillOrKill,
            Some("good_till_canceled") => TimeInForce::GoodTillCanceled,
            Some("immediate_or_cancel") => TimeInForce::ImmediateOrCancel,
            Some(other) => {
                return Err(bad(
                    "time_in_force",
                    format!(
                        "must be fill_or_kill, good_till_canceled or immediate_or_cancel, not {other:?}"
                    ),
                ))
            }
            None => return Err(bad("time_in_force", "is required")),
        };
        let self_trade_prevention = match self.self_trade_prevention_type.as_deref() {
            Some("taker_at_cross") => SelfTradePrevention::TakerAtCross,
            Some("maker") => SelfTradePrevention::Maker,
            Some(other) => {
                return Err(bad(
                    "self_trade_prevention_type",
                    format!("must be taker_at_cross or maker, not {other:?}"),
                ))
            }
            None => return Err(bad("self_trade_prevention_type", "is required")),
        };
        if let Some(i) = self.exchange_index {
            if i != 0 && i != -1 {
                return Err(bad(
                    "exchange_index",
                    format!("{i} is not a shard of this exchange"),
                ));
            }
        }
        if let Some(s) = self.subaccount {
            if s != 0 {
                return Err(bad("subaccount", format!("subaccount {s} does not exist")));
            }
        }
        if self.order_group_id.is_some() {
            return Err(bad("order_group_id", "order groups are not simulated"));
        }
        Ok(OrderRequest {
            ticker: ticker.into(),
            side,
            price,
            count,
            time_in_force,
            post_only: self.post_only.unwrap_or(false),
            reduce_only: self.reduce_only.unwrap_or(false),
            self_trade_prevention,
            client_order_id: self
                .client_order_id
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(ClientOrderId::new),
            expiration_ms: self.expiration_time.map(|s| s * 1000),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchCreateRequest {
    pub orders: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchCancelItem {
    pub order_id: String,
    #[serde(default)]
    pub market_ticker: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchCancelRequest {
    #[serde(default)]
    pub orders: Option<Vec<BatchCancelItem>>,
    #[serde(default)]
    pub ids: Option<Vec<String>>,
}

// ----------------------------------------------------------------------------------------
// WebSocket payloads (msg bodies; the envelope is added by the connection)
// ----------------------------------------------------------------------------------------

/// `orderbook_snapshot` msg. Keys are absent when a side is empty.
#[derive(Debug, Clone, Serialize)]
pub struct WsSnapshot {
    pub market_ticker: String,
    pub market_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yes_dollars_fp: Option<Vec<[String; 2]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_dollars_fp: Option<Vec<[String; 2]>>,
}

impl WsSnapshot {
    /// `no` is in NO-leg prices; with `use_yes_price` it is shown on the YES scale.
    pub fn new(
        ticker: &str,
        market_id: &str,
        yes: &[(Price, Count)],
        no: &[(Price, Count)],
        use_yes_price: bool,
    ) -> WsSnapshot {
        let no: Vec<(Price, Count)> = if use_yes_price {
            let mut v: Vec<(Price, Count)> = no.iter().map(|(p, c)| (p.complement(), *c)).collect();
            v.sort();
            v
        } else {
            no.to_vec()
        };
        WsSnapshot {
            market_ticker: ticker.to_string(),
            market_id: market_id.to_string(),
            yes_dollars_fp: (!yes.is_empty()).then(|| levels(yes)),
            no_dollars_fp: (!no.is_empty()).then(|| levels(&no)),
        }
    }
}

/// `orderbook_delta` msg.
#[derive(Debug, Clone, Serialize)]
pub struct WsDelta {
    pub market_ticker: String,
    pub market_id: String,
    pub price_dollars: String,
    pub delta_fp: String,
    pub side: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<i64>,
    pub ts: String,
    pub ts_ms: i64,
}

impl WsDelta {
    pub fn new(d: &BookDelta, market_id: &str, use_yes_price: bool, own: bool) -> WsDelta {
        let price = match (d.side, use_yes_price) {
            (crate::engine::BookSide::No, true) => d.price.complement(),
            _ => d.price,
        };
        let coid = if own {
            d.client_order_id.as_ref().map(|c| c.to_string())
        } else {
            None
        };
        WsDelta {
            market_ticker: d.ticker.to_string(),
            market_id: market_id.to_string(),
            price_dollars: price.to_dollars(),
            delta_fp: d.delta.to_fp_string(),
            side: d.side.as_str(),
            subaccount: coid.as_ref().map(|_| 0),
            client_order_id: coid,
            ts: rfc3339(d.ts_ms),
            ts_ms: d.ts_ms,
        }
    }
}

/// `ticker` msg.
#[derive(Debug, Clone, Serialize)]
pub struct WsTicker {
    pub market_ticker: String,
    pub market_id: String,
    pub price_dollars: String,
    pub yes_bid_dollars: String,
    pub yes_ask_dollars: String,
    pub yes_bid_size_fp: String,
    pub yes_ask_size_fp: String,
    pub last_trade_size_fp: String,
    pub volume_fp: String,
    pub open_interest_fp: String,
    pub dollar_volume: i64,
    pub dollar_open_interest: i64,
    pub ts: i64,
    pub ts_ms: i64,
    pub time: String,
}

impl WsTicker {
    pub fn new(s: &TickerState) -> WsTicker {
        WsTicker {
            market_ticker: s.ticker.to_string(),
            market_id: s.market_id.clone(),
            price_dollars: s.last_price.unwrap_or(Price::ZERO).to_dollars(),
            yes_bid_dollars: s.yes_bid.map(|x| x.0).unwrap_or(Price::ZERO).to_dollars(),
            yes_ask_dollars: s.yes_ask.map(|x| x.0).unwrap_or(Price::ONE).to_dollars(),
            yes_bid_size_fp: s.yes_bid.map(|x| x.1).unwrap_or(Count::ZERO).to_fp_string(),
            yes_ask_size_fp: s.yes_ask.map(|x| x.1).unwrap_or(Count::ZERO).to_fp_string(),
            last_trade_size_fp: s.last_trade_size.to_fp_string(),
            volume_fp: s.volume.to_fp_string(),
            open_interest_fp: s.open_interest.to_fp_string(),
            dollar_volume: s.dollar_volume.micros() / 1_000_000,
            dollar_open_interest: s.open_interest.centis() / 200,
            ts: secs(s.ts_ms),
            ts_ms: s.ts_ms,
            time: rfc3339(s.ts_ms),
        }
    }
}

/// `trade` msg.
#[derive(Debug, Clone, Serialize)]
pub struct WsTrade {
    pub trade_id: String,
    pub market_ticker: String,
    pub yes_price_dollars: String,
    pub no_price_dollars: String,
    pub count_fp: String,
    pub taker_outcome_side: &'static str,
    pub taker_book_side: &'static str,
    pub taker_side: &'static str,
    pub is_block_trade: bool,
    pub ts: i64,
    pub ts_ms: i64,
}

impl WsTrade {
    pub fn new(t: &Trade) -> WsTrade {
        WsTrade {
            trade_id: t.trade_id.clone(),
            market_ticker: t.ticker.to_string(),
            yes_price_dollars: t.yes_price.to_dollars(),
            no_price_dollars: t.yes_price.complement().to_dollars(),
            count_fp: t.count.to_fp_string(),
            taker_outcome_side: t.taker_side.outcome(),
            taker_book_side: t.taker_side.as_str(),
            taker_side: t.taker_side.outcome(),
            is_block_trade: false,
            ts: secs(t.ts_ms),
            ts_ms: t.ts_ms,
        }
    }
}

/// `fill` msg.
#[derive(Debug, Clone, Serialize)]
pub struct WsFill {
    pub trade_id: String,
    pub order_id: String,
    pub market_ticker: String,
    pub is_taker: bool,
    pub outcome_side: &'static str,
    pub book_side: &'static str,
    pub side: &'static str,
    pub action: &'static str,
    pub purchased_side: &'static str,
    pub yes_price_dollars: String,
    pub count_fp: String,
    pub fee_cost: String,
    pub post_position_fp: String,
    pub client_order_id: String,
    pub subaccount: i64,
    pub exchange_index: i64,
    pub ts: i64,
    pub ts_ms: i64,
}

impl WsFill {
    pub fn new(f: &Fill) -> WsFill {
        WsFill {
            trade_id: f.trade_id.clone(),
            order_id: f.order_id.to_string(),
            market_ticker: f.ticker.to_string(),
            is_taker: f.is_taker,
            outcome_side: f.side.outcome(),
            book_side: f.side.as_str(),
            side: f.side.outcome(),
            action: "buy",
            purchased_side: f.side.outcome(),
            yes_price_dollars: f.yes_price.to_dollars(),
            count_fp: f.count.to_fp_string(),
            fee_cost: f.fee.to_dollars(),
            post_position_fp: f.post_position.to_fp_string(),
            client_order_id: f
                .client_order_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            subaccount: 0,
            exchange_index: 0,
            ts: secs(f.ts_ms),
            ts_ms: f.ts_ms,
        }
    }
}

/// `user_order` msg.
#[derive(Debug, Clone, Serialize)]
pub struct WsUserOrder {
    pub order_id: String,
    pub user_id: String,
    pub ticker: String,
    pub status: &'static str,
    pub outcome_side: &'static str,
    pub book_side: &'static str,
    pub side: &'static str,
    pub is_yes: bool,
    pub yes_price_dollars: String,
    pub fill_count_fp: String,
    pub remaining_count_fp: String,
    pub initial_count_fp: String,
    pub taker_fill_cost_dollars: String,
    pub maker_fill_cost_dollars: String,
    pub taker_fees_dollars: String,
    pub maker_fees_dollars: String,
    pub client_order_id: String,
    pub order_group_id: Option<String>,
    pub self_trade_prevention_type: &'static str,
    pub created_time: String,
    pub created_ts_ms: i64,
    pub last_updated_ts_ms: i64,
    pub expiration_ts_ms: Option<i64>,
    pub subaccount_number: i64,
}

impl WsUserOrder {
    pub fn new(o: &Order, seed: u64) -> WsUserOrder {
        WsUserOrder {
            order_id: o.id.to_string(),
            user_id: user_id(seed, o.account),
            ticker: o.ticker.to_string(),
            status: o.status.as_str(),
            outcome_side: o.side.outcome(),
            book_side: o.side.as_str(),
            side: o.side.outcome(),
            is_yes: o.side == Side::Bid,
            yes_price_dollars: o.price.to_dollars(),
            fill_count_fp: o.filled.to_fp_string(),
            remaining_count_fp: o.remaining.to_fp_string(),
            initial_count_fp: o.initial.to_fp_string(),
            taker_fill_cost_dollars: o.taker_fill_cost.to_dollars(),
            maker_fill_cost_dollars: o.maker_fill_cost.to_dollars(),
            taker_fees_dollars: o.taker_fees.to_dollars(),
            maker_fees_dollars: o.maker_fees.to_dollars(),
            client_order_id: o
                .client_order_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            order_group_id: None,
            self_trade_prevention_type: o.self_trade_prevention.as_str(),
            created_time: rfc3339(o.created_ms),
            created_ts_ms: o.created_ms,
            last_updated_ts_ms: o.updated_ms,
            expiration_ts_ms: o.expiration_ms,
            subaccount_number: 0,
        }
    }
}

/// `market_position` msg.
#[derive(Debug, Clone, Serialize)]
pub struct WsMarketPosition {
    pub user_id: String,
    pub market_ticker: String,
    pub position_fp: String,
    pub position_cost_dollars: String,
    pub realized_pnl_dollars: String,
    pub fees_paid_dollars: String,
    pub position_fee_cost_dollars: String,
    pub volume_fp: String,
    pub subaccount: i64,
}

impl WsMarketPosition {
    pub fn new(user: &str, ticker: &str, p: &Position) -> WsMarketPosition {
        WsMarketPosition {
            user_id: user.to_string(),
            market_ticker: ticker.to_string(),
            position_fp: p.position.to_fp_string(),
            position_cost_dollars: p.basis.to_dollars(),
            realized_pnl_dollars: p.realized_pnl.to_dollars(),
            fees_paid_dollars: p.fees_paid.to_dollars(),
            position_fee_cost_dollars: p.fees_paid.to_dollars(),
            volume_fp: p.volume.to_fp_string(),
            subaccount: 0,
        }
    }
}

/// `market_lifecycle_v2` msg.
pub fn ws_lifecycle(
    kind: LifecycleKind,
    m: &MarketInfo,
    ts_ms: i64,
    determination_delay_ms: i64,
) -> serde_json::Value {
    use serde_json::json;
    let mut v = json!({
        "market_ticker": m.ticker.as_str(),
        "event_type": kind.as_str(),
    });
    let o = v.as_object_mut().expect("object");
    match kind {
        LifecycleKind::Created => {
            o.insert("open_ts".into(), json!(secs(m.open_ms)));
            o.insert("close_ts".into(), json!(secs(m.close_ms)));
            o.insert(
                "additional_metadata".into(),
                json!({
                    "title": m.title,
                    "yes_sub_title": m.yes_sub_title(),
                    "no_sub_title": m.yes_sub_title(),
                    "rules_primary": rules_primary(m),
                    "rules_secondary": RULES_SECONDARY,
                    "event_ticker": m.event_ticker,
                    "expected_expiration_ts": secs(m.close_ms + determination_delay_ms),
                    "strike_type": "greater_or_equal",
                    "floor_strike": m.floor_strike_cents.map(strike_dollars),
                    "cap_strike": null,
                    "custom_strike": null,
                    "can_close_early": false,
                    "price_level_structure": m.price_level_structure.as_str(),
                    "price_ranges": price_ranges(m.price_level_structure),
                }),
            );
        }
        LifecycleKind::Activated => {
            o.insert("is_deactivated".into(), json!(false));
        }
        LifecycleKind::MetadataUpdated => {
            o.insert("strike_type".into(), json!("greater_or_equal"));
            o.insert(
                "floor_strike".into(),
                json!(m.floor_strike_cents.map(strike_dollars)),
            );
            o.insert("cap_strike".into(), serde_json::Value::Null);
            o.insert("yes_sub_title".into(), json!(m.yes_sub_title()));
        }
        LifecycleKind::CloseDateUpdated => {
            o.insert("close_ts".into(), json!(secs(m.close_ms)));
        }
        LifecycleKind::Determined => {
            o.insert(
                "result".into(),
                json!(m.result.map(|r| r.as_str()).unwrap_or("")),
            );
            o.insert("determination_ts".into(), json!(secs(ts_ms)));
            o.insert(
                "settlement_value".into(),
                json!(m.settlement_value().map(|p| p.to_dollars())),
            );
        }
        LifecycleKind::Settled => {
            o.insert("settled_ts".into(), json!(secs(ts_ms)));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> CreateOrderV2Request {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_order_body_is_validated_field_by_field() {
        let ok = body(serde_json::json!({
            "ticker": "KXBTC15M-26SEP281230-30", "client_order_id": "c1", "side": "ask",
            "count": "10.00", "price": "0.7000", "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "taker_at_cross", "expiration_time": 1790000000,
            "post_only": true
        }))
        .to_request()
        .unwrap();
        assert_eq!(ok.side, Side::Ask);
        assert_eq!(ok.price, Price::parse_dollars("0.70").unwrap());
        assert_eq!(ok.count, Count::from_contracts(10));
        assert_eq!(ok.expiration_ms, Some(1_790_000_000_000));
        assert!(ok.post_only);
        let base = serde_json::json!({
            "ticker": "T", "side": "bid", "count": "1.00", "price": "0.50",
            "time_in_force": "immediate_or_cancel", "self_trade_prevention_type": "maker"
        });
        assert!(body(base.clone()).to_request().is_ok());
        for (field, value, want) in [
            ("side", serde_json::json!("yes"), "side"),
            ("count", serde_json::json!(10), "count"),
            ("count", serde_json::json!("1.001"), "count"),
            ("price", serde_json::json!("1.5"), "price"),
            ("time_in_force", serde_json::json!("gtt"), "time_in_force"),
            (
                "self_trade_prevention_type",
                serde_json::Value::Null,
                "self_trade_prevention_type",
            ),
        ] {
            let mut b = base.clone();
            b[field] = value;
            let err = body(b).to_request().unwrap_err();
            assert_eq!(err.field, want, "{err}");
        }
        let mut b = base;
        b.as_object_mut().unwrap().remove("ticker");
        assert_eq!(body(b).to_request().unwrap_err().field, "ticker");
    }

    #[test]
    fn snapshot_keys_and_yes_price_convention() {
        let p = |c| Price::from_cents(c).unwrap();
        let n = Count::from_contracts;
        let s = WsSnapshot::new(
            "A",
            "id",
            &[(p(40), n(3))],
            &[(p(55), n(2)), (p(58), n(1))],
            false,
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["yes_dollars_fp"], serde_json::json!([["0.4000", "3.00"]]));
        assert_eq!(
            v["no_dollars_fp"],
            serde_json::json!([["0.5500", "2.00"], ["0.5800", "1.00"]])
        );
        let s = WsSnapshot::new("A", "id", &[], &[(p(55), n(2)), (p(58), n(1))], true);
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("yes_dollars_fp").is_none(), "empty side absent");
        assert_eq!(
            v["no_dollars_fp"],
            serde_json::json!([["0.4200", "1.00"], ["0.4500", "2.00"]])
        );
    }
}
