//! The exchange as a deterministic, pure state machine.
//!
//! No IO, no tasks, no wall clock: time is injected with [`Engine::advance_to`], randomness
//! comes from a seeded ChaCha generator, and every map that is iterated is ordered. The same
//! config, price path and sequence of calls give the same events, byte for byte.
//!
//! What it simulates (API.md §9):
//! - a series of binary markets, one per window of `market_duration_ms`, listed
//!   `listing_lead_ms` before they open, with KXBTC15M-style tickers;
//! - `floor_strike` = the underlying at open; YES iff the underlying at close ≥ strike;
//! - lifecycle `initialized → active → closed → determined → finalized`, resting orders
//!   cancelled at close, $1 per winning contract paid at finalization;
//! - a market maker quoting a ladder around fair value (optionally shrunk toward 50¢ by
//!   `planted_edge`) and a noise trader that crosses the spread now and then;
//! - V2 orders matched with price-time priority at the resting order's price, Kalshi's fees
//!   with the per-order accumulator, netting of YES against NO, balance reservations.
//!
//! Mutating calls append [`Event`]s to an outbox; [`Engine::take_events`] drains it and
//! [`Engine::advance_to`] returns it.

pub mod bars;
pub mod book;
pub mod naming;
pub mod path;
pub mod types;
mod view;

use std::collections::{BTreeMap, BTreeSet};

use pipeline::money::{raw_fee_micros, trading_fee, Count, FeeMultiplier, Liquidity, Money, Price};
use pipeline::{ClientOrderId, MarketTicker, OrderId, SeriesTicker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use book::Levels;
use book::{published, Book};
pub use path::{fair_yes, BarsPath, PricePath, RandomWalk};
pub use types::*;
pub use view::BookView;

const ONE_DOLLAR: Price = Price::ONE;

/// Kalshi's `Series.fee_type` values the engine implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeType {
    /// Taker fee only.
    Quadratic,
    /// Taker fee plus the maker fee (rate 0.0175).
    QuadraticWithMakerFees,
}

impl FeeType {
    pub fn as_str(self) -> &'static str {
        match self {
            FeeType::Quadratic => "quadratic",
            FeeType::QuadraticWithMakerFees => "quadratic_with_maker_fees",
        }
    }
}

/// The tick grid of a market (`price_level_structure`, API.md §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceLevelStructure {
    /// $0.01 everywhere.
    LinearCent,
    /// $0.001 below $0.10 and above $0.90, $0.01 between.
    TaperedDeciCent,
    /// $0.001 everywhere.
    DeciCent,
}

const CENT: i64 = 10_000;
const DECI_CENT: i64 = 1_000;

impl PriceLevelStructure {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceLevelStructure::LinearCent => "linear_cent",
            PriceLevelStructure::TaperedDeciCent => "tapered_deci_cent",
            PriceLevelStructure::DeciCent => "deci_cent",
        }
    }

    /// `(start, end, step)` ranges as Kalshi lists them in `price_ranges`.
    pub fn ranges(self) -> Vec<(Price, Price, Price)> {
        let p = |m: i64| Price::from_micros(m).expect("grid constant");
        match self {
            PriceLevelStructure::LinearCent => vec![(p(0), p(1_000_000), p(CENT))],
            PriceLevelStructure::DeciCent => vec![(p(0), p(1_000_000), p(DECI_CENT))],
            PriceLevelStructure::TaperedDeciCent => vec![
                (p(0), p(100_000), p(DECI_CENT)),
                (p(100_000), p(900_000), p(CENT)),
                (p(900_000), p(1_000_000), p(DECI_CENT)),
            ],
        }
    }

    fn step_at(self, micros: i64) -> i64 {
        match self {
            PriceLevelStructure::LinearCent => CENT,
            PriceLevelStructure::DeciCent => DECI_CENT,
            PriceLevelStructure::TaperedDeciCent => {
                if (100_000..=900_000).contains(&micros) {
                    CENT
                } else {
                    DECI_CENT
                }
            }
        }
    }

    /// Strictly between $0 and $1 and on the grid.
    pub fn is_valid(self, p: Price) -> bool {
        let m = p.micros();
        m > 0 && m < 1_000_000 && m % self.step_at(m) == 0
    }

    /// The highest valid price ≤ `p` (None below the first tick).
    pub fn floor(self, p: Price) -> Option<Price> {
        let mut m = p.micros().min(999_999);
        m -= m % DECI_CENT;
        while m > 0 {
            if m % self.step_at(m) == 0 {
                return Price::from_micros(m).ok();
            }
            m -= DECI_CENT;
        }
        None
    }

    /// The lowest valid price ≥ `p` (None above the last tick).
    pub fn ceil(self, p: Price) -> Option<Price> {
        let mut m = p.micros().max(1);
        if m % DECI_CENT != 0 {
            m += DECI_CENT - m % DECI_CENT;
        }
        while m < 1_000_000 {
            if m % self.step_at(m) == 0 {
                return Price::from_micros(m).ok();
            }
            m += DECI_CENT;
        }
        None
    }
}

/// The market maker's behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct MakerConfig {
    pub enabled: bool,
    /// Ladder levels on each side.
    pub levels: usize,
    /// Distance from the quoted mid to the best bid and best ask before rounding to the grid.
    pub half_spread: Price,
    /// Distance between ladder levels.
    pub level_step: Price,
    /// Level sizes are drawn uniformly from this range.
    pub min_size: Count,
    pub max_size: Count,
    /// Chance per level and requote that its size is redrawn (makes the book breathe).
    pub refresh_probability: f64,
    /// 0 = quotes centred on fair value; > 0 = shrunk toward 50¢:
    /// `quoted_mid = 0.5 + (fair − 0.5) × (1 − planted_edge)`.
    pub planted_edge: f64,
    /// The second kind of planted edge: the maker prices from the underlying as it was this
    /// long ago (quotes under-react to fair-value moves). 0 = no lag.
    pub fair_lag_ms: i64,
}

impl Default for MakerConfig {
    fn default() -> MakerConfig {
        MakerConfig {
            enabled: true,
            levels: 5,
            half_spread: Price::from_micros(10_000).expect("const"),
            level_step: Price::from_micros(10_000).expect("const"),
            min_size: Count::from_contracts(5),
            max_size: Count::from_contracts(250),
            refresh_probability: 0.05,
            planted_edge: 0.0,
            fair_lag_ms: 0,
        }
    }
}

/// A noise trader that crosses the spread at random, so there are trades without users.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseConfig {
    /// Expected taker orders per market per minute (0 = off).
    pub takers_per_minute: f64,
    pub max_size: Count,
}

impl Default for NoiseConfig {
    fn default() -> NoiseConfig {
        NoiseConfig {
            takers_per_minute: 2.0,
            max_size: Count::from_contracts(25),
        }
    }
}

/// Everything that shapes the simulated exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub seed: u64,
    pub series: SeriesTicker,
    /// Market title, e.g. "BTC price up in next 15 mins?".
    pub title: String,
    /// Engine clock start (Unix ms); the clock starts at the window containing it.
    pub start_ms: i64,
    pub market_duration_ms: i64,
    /// A market is listed (`initialized`) this long before it opens.
    pub listing_lead_ms: i64,
    /// From close to `determined`.
    pub determination_delay_ms: i64,
    /// From `determined` to payout and `finalized`.
    pub settlement_timer_seconds: i64,
    /// Market maker requote (and noise trader) cadence.
    pub requote_interval_ms: i64,
    pub price_level_structure: PriceLevelStructure,
    pub fee_type: FeeType,
    pub fee_multiplier: FeeMultiplier,
    pub maker: MakerConfig,
    pub noise: NoiseConfig,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            seed: 1,
            series: SeriesTicker::new("KXBTC15M"),
            title: "BTC price up in next 15 mins?".into(),
            start_ms: 1_790_000_100_000,
            market_duration_ms: 15 * 60_000,
            listing_lead_ms: 15 * 60_000,
            determination_delay_ms: 1_000,
            settlement_timer_seconds: 1,
            requote_interval_ms: 1_000,
            price_level_structure: PriceLevelStructure::TaperedDeciCent,
            fee_type: FeeType::Quadratic,
            fee_multiplier: FeeMultiplier::ONE,
            maker: MakerConfig::default(),
            noise: NoiseConfig::default(),
        }
    }
}

/// A market's identity, schedule, status and outcome (the book and activity are separate).
#[derive(Clone, Debug, PartialEq)]
pub struct MarketInfo {
    pub ticker: MarketTicker,
    pub event_ticker: String,
    pub series: SeriesTicker,
    pub market_id: String,
    pub title: String,
    pub created_ms: i64,
    pub open_ms: i64,
    pub close_ms: i64,
    /// Close time as first scheduled (differs after a forced early close).
    pub scheduled_close_ms: i64,
    pub status: MarketStatus,
    /// Underlying at open, in cents (e.g. 6348516 = $63,485.16); known from the open.
    pub floor_strike_cents: Option<i64>,
    /// Underlying at close, in cents; known from determination.
    pub expiration_value_cents: Option<i64>,
    pub result: Option<MarketResult>,
    pub determined_ms: Option<i64>,
    pub settled_ms: Option<i64>,
    pub settlement_timer_seconds: i64,
    pub price_level_structure: PriceLevelStructure,
    pub updated_ms: i64,
}

impl MarketInfo {
    pub fn yes_sub_title(&self) -> String {
        match self.floor_strike_cents {
            Some(c) => format!("Target Price: ${}", dollars_with_commas(c)),
            None => "Target Price: TBD".into(),
        }
    }
    pub fn settlement_value(&self) -> Option<Price> {
        self.result.map(|r| match r {
            MarketResult::Yes => Price::ONE,
            MarketResult::No => Price::ZERO,
        })
    }
}

/// `6348516` cents → `"63,485.16"`.
pub fn dollars_with_commas(cents: i64) -> String {
    let whole = (cents / 100).to_string();
    let mut out = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{out}.{:02}", cents.rem_euclid(100))
}

/// Why an order operation was refused. Each maps to Kalshi's HTTP status and error code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("market {0} not found")]
    MarketNotFound(String),
    #[error("market {ticker} is {status}, not open for trading")]
    MarketInactive { ticker: String, status: String },
    #[error("{0}")]
    InvalidPrice(String),
    #[error("{0}")]
    InvalidCount(String),
    #[error("post only cross")]
    PostOnlyCross,
    #[error("an open order with client_order_id {0} already exists")]
    DuplicateClientOrderId(String),
    #[error("insufficient balance: order needs ${needed}, available ${available}")]
    InsufficientBalance { needed: Money, available: Money },
    #[error("{0}")]
    InvalidOrder(String),
    #[error("order {0} not found")]
    OrderNotFound(String),
    #[error("unknown account")]
    UnknownAccount,
}

impl OrderError {
    pub fn http_status(&self) -> u16 {
        match self {
            OrderError::MarketNotFound(_) | OrderError::OrderNotFound(_) => 404,
            OrderError::DuplicateClientOrderId(_) => 409,
            OrderError::UnknownAccount => 401,
            _ => 400,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::MarketNotFound(_) => "market_not_found",
            OrderError::MarketInactive { .. } => "market_closed",
            OrderError::InvalidPrice(_)
            | OrderError::PostOnlyCross
            | OrderError::InvalidOrder(_) => "invalid_order",
            OrderError::InvalidCount(_) => "invalid_order_size",
            OrderError::DuplicateClientOrderId(_) => "order_already_exists",
            OrderError::InsufficientBalance { .. } => "insufficient_balance",
            OrderError::OrderNotFound(_) => "not_found",
            OrderError::UnknownAccount => "authentication_error",
        }
    }
    pub fn details(&self) -> String {
        match self {
            OrderError::MarketInactive { .. } => "MARKET_INACTIVE".into(),
            OrderError::PostOnlyCross => "post only cross".into(),
            other => other.to_string(),
        }
    }
}

/// One account's money as the engine keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub kind: AccountKind,
    pub initial: Money,
    pub cash: Money,
    /// Held for resting orders (users only).
    pub reserved: Money,
    /// Fees paid, all markets.
    pub fees_paid: Money,
    /// $1 per contract returned when YES and NO holdings net.
    pub netting_credits: Money,
    /// Settlement payouts received.
    pub payouts: Money,
    /// What was paid for contracts (each fill's leg price × count).
    pub trade_costs: Money,
}

struct Market {
    info: MarketInfo,
    book: Book,
    last_price: Option<Price>,
    last_trade_size: Count,
    volume: Count,
    open_interest: Count,
    dollar_volume: Money,
    holders: BTreeSet<AccountId>,
    /// The maker's one order per (side, price) and the size it wants there.
    mm_orders: BTreeMap<(Side, Price), u64>,
    mm_sizes: BTreeMap<(Side, Price), Count>,
    last_ticker_key: Option<TickerKey>,
    forced_result: Option<MarketResult>,
}

/// The simulated exchange.
pub struct Engine {
    cfg: EngineConfig,
    rng: ChaCha8Rng,
    path: Box<dyn PricePath>,
    now: i64,
    next_tick: i64,
    next_window_open: i64,
    markets: Vec<Market>,
    index: BTreeMap<MarketTicker, usize>,
    first_open_market: usize,
    accounts: Vec<Account>,
    maker: AccountId,
    noise: AccountId,
    orders: BTreeMap<u64, Order>,
    order_ids: BTreeMap<OrderId, u64>,
    account_orders: BTreeMap<AccountId, Vec<u64>>,
    live_coids: BTreeMap<(AccountId, ClientOrderId), u64>,
    expirations: BTreeSet<(i64, u64)>,
    positions: BTreeMap<(AccountId, usize), Position>,
    fills: Vec<Fill>,
    trades: Vec<Trade>,
    settlements: Vec<Settlement>,
    fees_collected: Money,
    order_seq: u64,
    fill_seq: u64,
    trade_seq: u64,
    settle_seq: u64,
    out: Vec<Event>,
    touched_orders: BTreeSet<u64>,
    touched_positions: BTreeSet<(AccountId, usize)>,
    touched_markets: BTreeSet<usize>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("now", &self.now)
            .field("markets", &self.markets.len())
            .field("orders", &self.orders.len())
            .finish_non_exhaustive()
    }
}

/// Ids: separate spaces for orders, trades and markets.
const ID_ORDER: u64 = 1;
const ID_TRADE: u64 = 2;
const ID_MARKET: u64 = 4;

impl Engine {
    /// A new engine whose clock starts at the beginning of the window containing
    /// `cfg.start_ms`; call [`Engine::advance_to`] to move it.
    pub fn new(cfg: EngineConfig, path: Box<dyn PricePath>) -> Engine {
        assert!(
            cfg.market_duration_ms > 0,
            "market duration must be positive"
        );
        assert!(
            cfg.requote_interval_ms > 0,
            "requote interval must be positive"
        );
        assert!(
            cfg.listing_lead_ms >= 0,
            "listing lead must not be negative"
        );
        let start = cfg.start_ms.div_euclid(cfg.market_duration_ms) * cfg.market_duration_ms;
        let next_tick = ceil_to(start, cfg.requote_interval_ms);
        let mut e = Engine {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            path,
            now: start,
            next_tick,
            next_window_open: start,
            markets: Vec::new(),
            index: BTreeMap::new(),
            first_open_market: 0,
            accounts: Vec::new(),
            maker: AccountId(0),
            noise: AccountId(1),
            orders: BTreeMap::new(),
            order_ids: BTreeMap::new(),
            account_orders: BTreeMap::new(),
            live_coids: BTreeMap::new(),
            expirations: BTreeSet::new(),
            positions: BTreeMap::new(),
            fills: Vec::new(),
            trades: Vec::new(),
            settlements: Vec::new(),
            fees_collected: Money::ZERO,
            order_seq: 0,
            fill_seq: 0,
            trade_seq: 0,
            settle_seq: 0,
            out: Vec::new(),
            touched_orders: BTreeSet::new(),
            touched_positions: BTreeSet::new(),
            touched_markets: BTreeSet::new(),
            cfg,
        };
        e.maker = e.new_account(AccountKind::MarketMaker, Money::ZERO);
        e.noise = e.new_account(AccountKind::NoiseTrader, Money::ZERO);
        e
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn now_ms(&self) -> i64 {
        self.now
    }

    fn new_account(&mut self, kind: AccountKind, balance: Money) -> AccountId {
        let id = AccountId(self.accounts.len() as u32);
        self.accounts.push(Account {
            kind,
            initial: balance,
            cash: balance,
            reserved: Money::ZERO,
            fees_paid: Money::ZERO,
            netting_credits: Money::ZERO,
            payouts: Money::ZERO,
            trade_costs: Money::ZERO,
        });
        id
    }

    /// Opens a user account with `balance` of cash.
    pub fn add_user(&mut self, balance: Money) -> AccountId {
        self.new_account(AccountKind::User, balance)
    }

    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(id.0 as usize)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (AccountId, &Account)> {
        self.accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (AccountId(i as u32), a))
    }

    pub fn maker_account(&self) -> AccountId {
        self.maker
    }

    pub fn noise_account(&self) -> AccountId {
        self.noise
    }

    /// Cash not held for resting orders.
    pub fn available(&self, id: AccountId) -> Money {
        self.account(id)
            .map(|a| a.cash - a.reserved)
            .unwrap_or(Money::ZERO)
    }

    /// Σ fees the exchange collected.
    pub fn fees_collected(&self) -> Money {
        self.fees_collected
    }

    /// Drains the outbox.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.out)
    }

    // ----------------------------------------------------------------------------------
    // Time
    // ----------------------------------------------------------------------------------

    /// Moves the clock to `now_ms`, running every listing, lifecycle transition, order
    /// expiry and requote due on the way, in time order. Time never goes backwards: an
    /// earlier `now_ms` only drains the outbox.
    pub fn advance_to(&mut self, now_ms: i64) -> Vec<Event> {
        self.run_due(now_ms);
        if now_ms > self.now {
            self.now = now_ms;
        }
        self.take_events()
    }

    fn run_due(&mut self, limit: i64) {
        loop {
            let next = self.next_action_time();
            if next > limit {
                break;
            }
            let t = next.max(self.now);
            self.now = t;
            self.run_actions_at(t);
        }
    }

    fn next_action_time(&self) -> i64 {
        let mut next = self.next_tick;
        next = next.min(self.next_window_open - self.cfg.listing_lead_ms);
        for m in &self.markets[self.first_open_market..] {
            if let Some(t) = self.next_transition(m) {
                next = next.min(t);
            }
        }
        if let Some((t, _)) = self.expirations.iter().next() {
            next = next.min(*t);
        }
        next
    }

    fn next_transition(&self, m: &Market) -> Option<i64> {
        match m.info.status {
            MarketStatus::Initialized => Some(m.info.open_ms),
            MarketStatus::Active => Some(m.info.close_ms),
            MarketStatus::Closed => Some(m.info.close_ms + self.cfg.determination_delay_ms),
            MarketStatus::Determined => Some(
                m.info.determined_ms.unwrap_or(m.info.close_ms)
                    + m.info.settlement_timer_seconds * 1000,
            ),
            MarketStatus::Finalized => None,
        }
    }

    fn run_actions_at(&mut self, t: i64) {
        while self.next_window_open - self.cfg.listing_lead_ms <= t {
            let open = self.next_window_open;
            self.list_market(open, t);
            self.next_window_open += self.cfg.market_duration_ms;
        }
        for i in self.first_open_market..self.markets.len() {
            while let Some(due) = self.next_transition(&self.markets[i]) {
                if due > t {
                    break;
                }
                self.transition(i, due.max(self.markets[i].info.updated_ms));
            }
        }
        while self.first_open_market < self.markets.len()
            && self.markets[self.first_open_market].info.status == MarketStatus::Finalized
        {
            self.first_open_market += 1;
        }
        while let Some(&(exp, seq)) = self.expirations.iter().next() {
            if exp > t {
                break;
            }
            self.expirations.remove(&(exp, seq));
            if self.orders.get(&seq).is_some_and(Order::is_live) {
                self.cancel_seq(seq, exp);
            }
        }
        if t >= self.next_tick {
            for i in self.first_open_market..self.markets.len() {
                if self.markets[i].info.status == MarketStatus::Active {
                    if self.cfg.maker.enabled {
                        self.requote(i, t);
                    }
                    self.noise_trade(i, t);
                }
            }
            self.next_tick = ceil_to(t + 1, self.cfg.requote_interval_ms);
            let keep = self
                .markets
                .get(self.first_open_market)
                .map(|m| m.info.open_ms)
                .unwrap_or(t);
            self.path
                .forget_before(keep.min(t - self.cfg.maker.fair_lag_ms.max(0)));
        }
        self.flush(t);
    }

    fn list_market(&mut self, open_ms: i64, t: i64) {
        let close_ms = open_ms + self.cfg.market_duration_ms;
        let (event_ticker, ticker) = naming::window_tickers(self.cfg.series.as_str(), close_ms);
        let idx = self.markets.len();
        let info = MarketInfo {
            ticker: MarketTicker::new(ticker.clone()),
            event_ticker,
            series: self.cfg.series.clone(),
            market_id: naming::uuid_like(self.cfg.seed, ID_MARKET, idx as u64),
            title: self.cfg.title.clone(),
            created_ms: t,
            open_ms,
            close_ms,
            scheduled_close_ms: close_ms,
            status: MarketStatus::Initialized,
            floor_strike_cents: None,
            expiration_value_cents: None,
            result: None,
            determined_ms: None,
            settled_ms: None,
            settlement_timer_seconds: self.cfg.settlement_timer_seconds,
            price_level_structure: self.cfg.price_level_structure,
            updated_ms: t,
        };
        self.index.insert(info.ticker.clone(), idx);
        self.markets.push(Market {
            info,
            book: Book::default(),
            last_price: None,
            last_trade_size: Count::ZERO,
            volume: Count::ZERO,
            open_interest: Count::ZERO,
            dollar_volume: Money::ZERO,
            holders: BTreeSet::new(),
            mm_orders: BTreeMap::new(),
            mm_sizes: BTreeMap::new(),
            last_ticker_key: None,
            forced_result: None,
        });
        self.lifecycle(idx, LifecycleKind::Created, t);
    }

    fn lifecycle(&mut self, idx: usize, kind: LifecycleKind, t: i64) {
        self.out.push(Event::Lifecycle {
            kind,
            market: Box::new(self.markets[idx].info.clone()),
            ts_ms: t,
        });
    }

    fn transition(&mut self, idx: usize, t: i64) {
        let status = self.markets[idx].info.status;
        match status {
            MarketStatus::Initialized => {
                let open = self.markets[idx].info.open_ms;
                let strike = to_cents(self.path.price_at(open));
                let info = &mut self.markets[idx].info;
                info.status = MarketStatus::Active;
                info.floor_strike_cents = Some(strike);
                info.updated_ms = t;
                self.lifecycle(idx, LifecycleKind::Activated, t);
                self.lifecycle(idx, LifecycleKind::MetadataUpdated, t);
            }
            MarketStatus::Active => {
                self.markets[idx].info.status = MarketStatus::Closed;
                self.markets[idx].info.updated_ms = t;
                let seqs: Vec<u64> = {
                    let b = &self.markets[idx].book;
                    b.bids
                        .values()
                        .chain(b.asks.values())
                        .flat_map(|l| l.queue.iter().copied())
                        .collect()
                };
                for seq in seqs {
                    self.cancel_seq(seq, t);
                }
                self.markets[idx].mm_orders.clear();
                self.markets[idx].mm_sizes.clear();
                self.touched_markets.insert(idx);
            }
            MarketStatus::Closed => {
                let close = self.markets[idx].info.close_ms;
                let value = to_cents(self.path.price_at(close));
                let m = &mut self.markets[idx];
                let strike = m.info.floor_strike_cents.unwrap_or(value);
                let result = m.forced_result.unwrap_or(if value >= strike {
                    MarketResult::Yes
                } else {
                    MarketResult::No
                });
                m.info.status = MarketStatus::Determined;
                m.info.expiration_value_cents = Some(value);
                m.info.result = Some(result);
                m.info.determined_ms = Some(t);
                m.info.updated_ms = t;
                self.lifecycle(idx, LifecycleKind::Determined, t);
            }
            MarketStatus::Determined => {
                self.settle(idx, t);
                let info = &mut self.markets[idx].info;
                info.status = MarketStatus::Finalized;
                info.settled_ms = Some(t);
                info.updated_ms = t;
                self.lifecycle(idx, LifecycleKind::Settled, t);
            }
            MarketStatus::Finalized => {}
        }
    }

    fn settle(&mut self, idx: usize, t: i64) {
        let result = self.markets[idx]
            .info
            .result
            .expect("determined market has a result");
        let holders: Vec<AccountId> = self.markets[idx].holders.iter().copied().collect();
        for acct in holders {
            let Some(pos) = self.positions.get_mut(&(acct, idx)) else {
                continue;
            };
            let n = pos.position;
            let wins = (n.centis() > 0 && result == MarketResult::Yes)
                || (n.centis() < 0 && result == MarketResult::No);
            let payout = if wins {
                Money::notional(ONE_DOLLAR, n.abs())
            } else {
                Money::ZERO
            };
            let basis = pos.basis;
            let fees = pos.fees_paid;
            pos.realized_pnl += payout - basis;
            pos.position = Count::ZERO;
            pos.basis = Money::ZERO;
            pos.settled = true;
            pos.updated_ms = t;
            let a = &mut self.accounts[acct.0 as usize];
            a.cash += payout;
            a.payouts += payout;
            if a.kind == AccountKind::User {
                if !n.is_zero() {
                    self.settle_seq += 1;
                    let (yes_count, yes_cost, no_count, no_cost) = if n.centis() > 0 {
                        (n, basis, Count::ZERO, Money::ZERO)
                    } else {
                        (Count::ZERO, Money::ZERO, n.abs(), basis)
                    };
                    self.settlements.push(Settlement {
                        seq: self.settle_seq,
                        account: acct,
                        ticker: self.markets[idx].info.ticker.clone(),
                        event_ticker: self.markets[idx].info.event_ticker.clone(),
                        result,
                        yes_count,
                        yes_total_cost: yes_cost,
                        no_count,
                        no_total_cost: no_cost,
                        revenue: payout,
                        fee_cost: fees,
                        settled_ms: t,
                    });
                }
                self.touched_positions.insert((acct, idx));
            }
        }
        self.markets[idx].open_interest = Count::ZERO;
    }

    // ----------------------------------------------------------------------------------
    // Market maker and noise trader
    // ----------------------------------------------------------------------------------

    /// Fair value of YES for a market at the current time (None unless active).
    pub fn fair_value(&mut self, ticker: &str) -> Option<f64> {
        let idx = *self.index.get(ticker)?;
        let t = self.now;
        self.fair_at(idx, t)
    }

    fn fair_at(&mut self, idx: usize, t: i64) -> Option<f64> {
        self.fair_with_spot_at(idx, t, t)
    }

    /// Fair value at `t` if the underlying were still what it was at `spot_t`.
    fn fair_with_spot_at(&mut self, idx: usize, t: i64, spot_t: i64) -> Option<f64> {
        let info = &self.markets[idx].info;
        if info.status != MarketStatus::Active {
            return None;
        }
        let strike = info.floor_strike_cents? as f64 / 100.0;
        let left = (info.close_ms - t) as f64 / 1000.0;
        let spot = self.path.price_at(spot_t.max(info.open_ms));
        Some(fair_yes(spot, strike, self.path.sigma_per_sqrt_s(), left))
    }

    /// The underlying at time `t_ms`.
    pub fn underlying_at(&mut self, t_ms: i64) -> f64 {
        self.path.price_at(t_ms)
    }

    fn target_ladder(&self, fair: f64) -> Vec<(Side, Price)> {
        let mk = &self.cfg.maker;
        let grid = self.cfg.price_level_structure;
        let mid = 0.5 + (fair - 0.5) * (1.0 - mk.planted_edge);
        let mid_micros = (mid * 1e6).round().clamp(0.0, 1e6) as i64;
        let hs = mk.half_spread.micros();
        let step = mk.level_step.micros().max(DECI_CENT);
        let mut out = Vec::new();
        let bid0 = Price::from_micros((mid_micros - hs).clamp(0, 1_000_000))
            .ok()
            .and_then(|p| grid.floor(p));
        let mut ask0 = Price::from_micros((mid_micros + hs).clamp(0, 1_000_000))
            .ok()
            .and_then(|p| grid.ceil(p));
        if let (Some(b), Some(a)) = (bid0, ask0) {
            if a <= b {
                ask0 = Price::from_micros(b.micros() + 1)
                    .ok()
                    .and_then(|p| grid.ceil(p));
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(b) = bid0 {
            for k in 0..mk.levels as i64 {
                let m = b.micros() - k * step;
                if m <= 0 {
                    break;
                }
                if let Some(p) = Price::from_micros(m).ok().and_then(|p| grid.floor(p)) {
                    if seen.insert((Side::Bid, p)) {
                        out.push((Side::Bid, p));
                    }
                }
            }
        }
        if let Some(a) = ask0 {
            for k in 0..mk.levels as i64 {
                let m = a.micros() + k * step;
                if m >= 1_000_000 {
                    break;
                }
                if let Some(p) = Price::from_micros(m).ok().and_then(|p| grid.ceil(p)) {
                    if seen.insert((Side::Ask, p)) {
                        out.push((Side::Ask, p));
                    }
                }
            }
        }
        out
    }

    fn draw_size(&mut self) -> Count {
        let lo = self.cfg.maker.min_size.centis().max(1);
        let hi = self.cfg.maker.max_size.centis().max(lo);
        let c = self.rng.gen_range(lo..=hi);
        // Half the levels in whole contracts, half fractional, as on Kalshi.
        if self.rng.gen_bool(0.5) {
            Count::from_centis((c / 100).max(1) * 100)
        } else {
            Count::from_centis(c)
        }
    }

    fn requote(&mut self, idx: usize, t: i64) {
        let lag = self.cfg.maker.fair_lag_ms.max(0);
        let Some(fair) = self.fair_with_spot_at(idx, t, t - lag) else {
            return;
        };
        let target = self.target_ladder(fair);
        let target_set: BTreeSet<(Side, Price)> = target.iter().copied().collect();
        // Sizes: keep, draw for new levels, redraw some.
        let refresh = self.cfg.maker.refresh_probability;
        for key in &target {
            let redraw = self.rng.gen::<f64>() < refresh;
            if redraw || !self.markets[idx].mm_sizes.contains_key(key) {
                let s = self.draw_size();
                self.markets[idx].mm_sizes.insert(*key, s);
            }
        }
        self.markets[idx]
            .mm_sizes
            .retain(|k, _| target_set.contains(k));
        // Cancel what is off the ladder, gone, or the wrong size.
        let current: Vec<((Side, Price), u64)> = self.markets[idx]
            .mm_orders
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        for (key, seq) in current {
            let want = self.markets[idx].mm_sizes.get(&key).copied();
            let live = self.orders.get(&seq).filter(|o| o.is_live());
            let keep = matches!((want, live), (Some(w), Some(o)) if o.remaining == w);
            if !keep {
                if live.is_some() {
                    self.cancel_seq(seq, t);
                }
                self.markets[idx].mm_orders.remove(&key);
            }
        }
        // Place what is missing.
        let ticker = self.markets[idx].info.ticker.clone();
        for key in target {
            if self.markets[idx].mm_orders.contains_key(&key) {
                continue;
            }
            let Some(size) = self.markets[idx].mm_sizes.get(&key).copied() else {
                continue;
            };
            let req = OrderRequest::limit(&ticker, key.0, key.1, size);
            if let Ok(seq) = self.place_seq(self.maker, req, t) {
                if self.orders.get(&seq).is_some_and(Order::is_live) {
                    self.markets[idx].mm_orders.insert(key, seq);
                }
            }
        }
    }

    fn noise_trade(&mut self, idx: usize, t: i64) {
        let rate = self.cfg.noise.takers_per_minute;
        if rate <= 0.0 {
            return;
        }
        let p = (rate * self.cfg.requote_interval_ms as f64 / 60_000.0).min(1.0);
        if self.rng.gen::<f64>() >= p {
            return;
        }
        let side = if self.rng.gen_bool(0.5) {
            Side::Bid
        } else {
            Side::Ask
        };
        let best = match side {
            Side::Bid => self.markets[idx].book.best_ask(),
            Side::Ask => self.markets[idx].book.best_bid(),
        };
        let Some((price, _)) = best else {
            return;
        };
        let max = self.cfg.noise.max_size.centis().max(100) / 100;
        let count = Count::from_contracts(self.rng.gen_range(1..=max));
        let mut req = OrderRequest::limit(&self.markets[idx].info.ticker, side, price, count);
        req.time_in_force = TimeInForce::ImmediateOrCancel;
        let _ = self.place_seq(self.noise, req, t);
    }

    // ----------------------------------------------------------------------------------
    // Orders
    // ----------------------------------------------------------------------------------

    /// Places an order for a user account at the current time. The returned order shows
    /// the state right after matching (filled, resting, or cancelled for IOC/FOK).
    pub fn place_order(
        &mut self,
        account: AccountId,
        req: OrderRequest,
    ) -> Result<Order, OrderError> {
        let t = self.now;
        let r = self.place_seq(account, req, t);
        self.flush(t);
        let seq = r?;
        Ok(self.orders[&seq].clone())
    }

    fn market_idx(&self, ticker: &str) -> Result<usize, OrderError> {
        self.index
            .get(ticker)
            .copied()
            .ok_or_else(|| OrderError::MarketNotFound(ticker.to_string()))
    }

    /// Upper bound of the fee an order can pay: the taker fee at the worst price it can
    /// execute at (nearest 50¢), plus a cent for per-fill rounding.
    fn fee_cap(&self, side: Side, price: Price, count: Count) -> Money {
        let half = Price::from_micros(500_000).expect("const");
        let worst = match side {
            Side::Bid => price.min(half),
            Side::Ask => price.max(half),
        };
        trading_fee(Liquidity::Taker, self.cfg.fee_multiplier, count, worst) + Money::from_cents(1)
    }

    fn reservation(&self, o: &Order) -> Money {
        let cap = self.fee_cap(o.side, o.price, o.initial);
        let fee_left = cap - o.fees();
        Money::notional(o.side.leg_price(o.price), o.remaining)
            + if fee_left > Money::ZERO {
                fee_left
            } else {
                Money::ZERO
            }
    }

    fn set_reservation(&mut self, seq: u64) {
        let Some(o) = self.orders.get(&seq) else {
            return;
        };
        let acct = o.account;
        if self.accounts[acct.0 as usize].kind != AccountKind::User {
            return;
        }
        let want = if o.is_live() {
            self.reservation(o)
        } else {
            Money::ZERO
        };
        let old = o.reserved;
        self.orders.get_mut(&seq).expect("order").reserved = want;
        self.accounts[acct.0 as usize].reserved += want - old;
    }

    fn validate(
        &self,
        account: AccountId,
        req: &OrderRequest,
        t: i64,
    ) -> Result<usize, OrderError> {
        let idx = self.market_idx(req.ticker.as_str())?;
        let m = &self.markets[idx];
        if m.info.status != MarketStatus::Active || t >= m.info.close_ms {
            return Err(OrderError::MarketInactive {
                ticker: req.ticker.to_string(),
                status: m.info.status.as_str().into(),
            });
        }
        if !m.info.price_level_structure.is_valid(req.price) {
            return Err(OrderError::InvalidPrice(format!(
                "price {} is not a valid price for this market: it must be strictly between 0 and 1 on the {} grid",
                req.price,
                m.info.price_level_structure.as_str()
            )));
        }
        if req.count.centis() < 1 {
            return Err(OrderError::InvalidCount(format!(
                "count {} must be at least 0.01",
                req.count
            )));
        }
        if req.count > Count::from_contracts(10_000_000) {
            return Err(OrderError::InvalidCount(format!(
                "count {} is too large",
                req.count
            )));
        }
        match req.time_in_force {
            TimeInForce::GoodTillCanceled => {}
            TimeInForce::ImmediateOrCancel | TimeInForce::FillOrKill => {
                if req.expiration_ms.is_some() {
                    return Err(OrderError::InvalidOrder(
                        "expiration_time is only allowed with good_till_canceled".into(),
                    ));
                }
                if req.post_only {
                    return Err(OrderError::InvalidOrder(
                        "post_only is only allowed with good_till_canceled".into(),
                    ));
                }
            }
        }
        if req.reduce_only && req.time_in_force != TimeInForce::ImmediateOrCancel {
            return Err(OrderError::InvalidOrder(
                "reduce_only is only allowed with immediate_or_cancel".into(),
            ));
        }
        if let Some(exp) = req.expiration_ms {
            if exp <= t {
                return Err(OrderError::InvalidOrder(
                    "expiration_time is in the past".into(),
                ));
            }
        }
        if let Some(c) = &req.client_order_id {
            if self.live_coids.contains_key(&(account, c.clone())) {
                return Err(OrderError::DuplicateClientOrderId(c.to_string()));
            }
        }
        if req.post_only && m.book.crosses(req.side, req.price) {
            return Err(OrderError::PostOnlyCross);
        }
        Ok(idx)
    }

    fn place_seq(
        &mut self,
        account: AccountId,
        mut req: OrderRequest,
        t: i64,
    ) -> Result<u64, OrderError> {
        let kind = self
            .accounts
            .get(account.0 as usize)
            .ok_or(OrderError::UnknownAccount)?
            .kind;
        let idx = self.validate(account, &req, t)?;
        if req.reduce_only {
            let pos = self
                .positions
                .get(&(account, idx))
                .map(|p| p.position)
                .unwrap_or(Count::ZERO);
            let reducible = match req.side {
                Side::Bid => (-pos).max(Count::ZERO),
                Side::Ask => pos.max(Count::ZERO),
            };
            req.count = req.count.min(reducible);
        }
        if kind == AccountKind::User {
            let needed = Money::notional(req.side.leg_price(req.price), req.count)
                + self.fee_cap(req.side, req.price, req.count);
            let available = self.available(account);
            if needed > available {
                return Err(OrderError::InsufficientBalance { needed, available });
            }
        }
        self.order_seq += 1;
        let seq = self.order_seq;
        let order = Order {
            seq,
            id: OrderId::new(naming::uuid_like(self.cfg.seed, ID_ORDER, seq)),
            account,
            client_order_id: req.client_order_id.clone(),
            ticker: req.ticker.clone(),
            side: req.side,
            price: req.price,
            time_in_force: req.time_in_force,
            self_trade_prevention: req.self_trade_prevention,
            post_only: req.post_only,
            reduce_only: req.reduce_only,
            expiration_ms: req.expiration_ms,
            status: OrderStatus::Resting,
            initial: req.count,
            filled: Count::ZERO,
            remaining: req.count,
            taker_fill_cost: Money::ZERO,
            maker_fill_cost: Money::ZERO,
            taker_fees: Money::ZERO,
            maker_fees: Money::ZERO,
            fee_raw_cum: Money::ZERO,
            yes_notional_filled: Money::ZERO,
            reserved: Money::ZERO,
            created_ms: t,
            updated_ms: t,
        };
        if kind == AccountKind::User {
            self.order_ids.insert(order.id.clone(), seq);
            self.account_orders.entry(account).or_default().push(seq);
        }
        self.orders.insert(seq, order);
        self.set_reservation(seq);
        if kind == AccountKind::User {
            self.touched_orders.insert(seq);
        }

        // Fill-or-kill: everything at once or nothing. One that would meet its own order
        // behaves like IOC (Kalshi since 2025-10-01).
        let mut kill = req.count.is_zero();
        if req.time_in_force == TimeInForce::FillOrKill && !kill {
            let mut available = Count::ZERO;
            let mut self_cross = false;
            for (_, mseq) in self.markets[idx].book.crossing(req.side, req.price) {
                let mo = &self.orders[&mseq];
                if mo.account == account {
                    if req.self_trade_prevention == SelfTradePrevention::TakerAtCross {
                        self_cross = true;
                        break;
                    }
                    continue;
                }
                available += mo.remaining;
            }
            if available < req.count && !self_cross {
                kill = true;
            }
        }

        let mut stopped = kill;
        if !kill {
            for (level, mseq) in self.markets[idx].book.crossing(req.side, req.price) {
                if self.orders[&seq].remaining.is_zero() {
                    break;
                }
                let Some((maker_account, maker_remaining)) =
                    self.orders.get(&mseq).map(|m| (m.account, m.remaining))
                else {
                    continue;
                };
                if maker_account == account {
                    match req.self_trade_prevention {
                        SelfTradePrevention::TakerAtCross => {
                            stopped = true;
                            break;
                        }
                        SelfTradePrevention::Maker => {
                            self.cancel_seq(mseq, t);
                            continue;
                        }
                    }
                }
                let qty = self.orders[&seq].remaining.min(maker_remaining);
                self.execute(idx, seq, mseq, qty, level, t);
            }
        }

        let o = self.orders.get_mut(&seq).expect("order");
        if o.remaining.is_zero() {
            o.status = if o.filled.is_zero() {
                OrderStatus::Canceled
            } else {
                OrderStatus::Executed
            };
        } else if stopped || req.time_in_force != TimeInForce::GoodTillCanceled {
            o.status = OrderStatus::Canceled;
            o.remaining = Count::ZERO;
        } else {
            // Rest the remainder.
            let rem = o.remaining;
            let coid = o.client_order_id.clone();
            self.markets[idx].book.add(req.side, req.price, seq, rem);
            let (bs, lp) = published(req.side, req.price);
            self.out.push(Event::BookDelta(BookDelta {
                ticker: req.ticker.clone(),
                side: bs,
                price: lp,
                delta: rem,
                owner: account,
                client_order_id: coid.clone(),
                ts_ms: t,
            }));
            if let Some(c) = coid {
                self.live_coids.insert((account, c), seq);
            }
            if let Some(exp) = req.expiration_ms {
                self.expirations.insert((exp, seq));
            }
        }
        self.set_reservation(seq);
        self.touched_markets.insert(idx);
        if kind != AccountKind::User && !self.orders[&seq].is_live() {
            self.orders.remove(&seq);
        }
        Ok(seq)
    }

    /// One execution between the incoming order `tseq` and the resting order `mseq`, at the
    /// resting order's YES price `price`.
    fn execute(&mut self, idx: usize, tseq: u64, mseq: u64, qty: Count, price: Price, t: i64) {
        self.trade_seq += 1;
        let trade_id = naming::uuid_like(self.cfg.seed, ID_TRADE, self.trade_seq);
        let taker_side = self.orders[&tseq].side;
        for (seq, liq) in [(tseq, Liquidity::Taker), (mseq, Liquidity::Maker)] {
            let (acct, side, coid, order_id) = {
                let o = &self.orders[&seq];
                (o.account, o.side, o.client_order_id.clone(), o.id.clone())
            };
            let leg = side.leg_price(price);
            let cost = Money::notional(leg, qty);
            let mult = match (liq, self.cfg.fee_type) {
                (Liquidity::Taker, _) | (Liquidity::Maker, FeeType::QuadraticWithMakerFees) => {
                    self.cfg.fee_multiplier
                }
                (Liquidity::Maker, FeeType::Quadratic) => FeeMultiplier::ZERO,
            };
            let raw = raw_fee_micros(liq, mult, qty, price);
            let charge = {
                let o = self.orders.get_mut(&seq).expect("order");
                o.fee_raw_cum += raw;
                let due = o.fee_raw_cum.ceil_to_cent() - o.fees();
                let charge = if due > Money::ZERO { due } else { Money::ZERO };
                match liq {
                    Liquidity::Taker => {
                        o.taker_fees += charge;
                        o.taker_fill_cost += cost;
                    }
                    Liquidity::Maker => {
                        o.maker_fees += charge;
                        o.maker_fill_cost += cost;
                    }
                }
                o.filled += qty;
                o.remaining -= qty;
                o.yes_notional_filled += Money::notional(price, qty);
                o.updated_ms = t;
                charge
            };
            let credit = self.apply_position(acct, idx, side, qty, leg, charge, t);
            let a = &mut self.accounts[acct.0 as usize];
            a.cash -= cost + charge;
            a.cash += credit;
            a.fees_paid += charge;
            a.netting_credits += credit;
            a.trade_costs += cost;
            let is_user = a.kind == AccountKind::User;
            self.fees_collected += charge;
            if is_user {
                self.fill_seq += 1;
                let post = self.positions[&(acct, idx)].position;
                self.fills.push(Fill {
                    seq: self.fill_seq,
                    // Kalshi: fill_id = trade_id (unique per account and trade).
                    fill_id: trade_id.clone(),
                    trade_id: trade_id.clone(),
                    order_id,
                    account: acct,
                    client_order_id: coid,
                    ticker: self.markets[idx].info.ticker.clone(),
                    side,
                    is_taker: liq == Liquidity::Taker,
                    count: qty,
                    yes_price: price,
                    fee: charge,
                    post_position: post,
                    ts_ms: t,
                });
                self.out
                    .push(Event::Fill(self.fills.last().expect("just pushed").clone()));
                self.touched_orders.insert(seq);
                self.touched_positions.insert((acct, idx));
            }
        }
        // The resting order's level shrinks.
        let (mside, mowner, mcoid, done) = {
            let m = self.orders.get_mut(&mseq).expect("maker order");
            let done = m.remaining.is_zero();
            if done {
                m.status = OrderStatus::Executed;
            }
            (m.side, m.account, m.client_order_id.clone(), done)
        };
        self.markets[idx].book.reduce(mside, price, mseq, qty, done);
        let (bs, lp) = published(mside, price);
        self.out.push(Event::BookDelta(BookDelta {
            ticker: self.markets[idx].info.ticker.clone(),
            side: bs,
            price: lp,
            delta: -qty,
            owner: mowner,
            client_order_id: mcoid.clone(),
            ts_ms: t,
        }));
        self.set_reservation(mseq);
        if done {
            if let Some(c) = mcoid {
                self.live_coids.remove(&(mowner, c));
            }
            if let Some(exp) = self.orders[&mseq].expiration_ms {
                self.expirations.remove(&(exp, mseq));
            }
            if self.accounts[mowner.0 as usize].kind != AccountKind::User {
                self.orders.remove(&mseq);
            }
        }
        let m = &mut self.markets[idx];
        m.last_price = Some(price);
        m.last_trade_size = qty;
        m.volume += qty;
        m.dollar_volume += Money::notional(price, qty);
        self.trades.push(Trade {
            seq: self.trade_seq,
            trade_id,
            ticker: m.info.ticker.clone(),
            count: qty,
            yes_price: price,
            taker_side,
            ts_ms: t,
        });
        self.out.push(Event::Trade(
            self.trades.last().expect("just pushed").clone(),
        ));
        self.touched_markets.insert(idx);
    }

    /// Applies a purchase of `qty` on `side` at leg price `leg` to a position, netting YES
    /// against NO. Returns the collateral released by netting ($1 per netted contract).
    #[allow(clippy::too_many_arguments)]
    fn apply_position(
        &mut self,
        acct: AccountId,
        idx: usize,
        side: Side,
        qty: Count,
        leg: Price,
        fee: Money,
        t: i64,
    ) -> Money {
        self.markets[idx].holders.insert(acct);
        let pos = self.positions.entry((acct, idx)).or_default();
        let old = pos.position;
        let delta = side.signed(qty);
        let netted = if old.centis().signum() * delta.centis().signum() < 0 {
            old.abs().min(qty)
        } else {
            Count::ZERO
        };
        let cost = Money::notional(leg, qty);
        let mut credit = Money::ZERO;
        let mut cost_left = cost;
        if !netted.is_zero() {
            let released = Money::from_micros(
                (i128::from(pos.basis.micros()) * i128::from(netted.centis())
                    / i128::from(old.abs().centis())) as i64,
            );
            let netting_cost = Money::notional(leg, netted);
            credit = Money::notional(ONE_DOLLAR, netted);
            pos.basis -= released;
            pos.realized_pnl += credit - released - netting_cost;
            cost_left = cost - netting_cost;
        }
        pos.basis += cost_left;
        pos.position = old + delta;
        pos.total_traded += cost;
        pos.fees_paid += fee;
        pos.volume += qty;
        pos.updated_ms = t;
        let new = pos.position;
        let m = &mut self.markets[idx];
        m.open_interest += new.max(Count::ZERO) - old.max(Count::ZERO);
        credit
    }

    fn cancel_seq(&mut self, seq: u64, t: i64) {
        let Some(o) = self.orders.get_mut(&seq) else {
            return;
        };
        if !o.is_live() {
            return;
        }
        let rem = o.remaining;
        o.status = OrderStatus::Canceled;
        o.remaining = Count::ZERO;
        o.updated_ms = t;
        let (side, price, acct, coid, ticker, exp) = (
            o.side,
            o.price,
            o.account,
            o.client_order_id.clone(),
            o.ticker.clone(),
            o.expiration_ms,
        );
        let idx = self.index[ticker.as_str()];
        self.markets[idx].book.reduce(side, price, seq, rem, true);
        let (bs, lp) = published(side, price);
        self.out.push(Event::BookDelta(BookDelta {
            ticker,
            side: bs,
            price: lp,
            delta: -rem,
            owner: acct,
            client_order_id: coid.clone(),
            ts_ms: t,
        }));
        self.set_reservation(seq);
        if let Some(c) = coid {
            self.live_coids.remove(&(acct, c));
        }
        if let Some(e) = exp {
            self.expirations.remove(&(e, seq));
        }
        self.touched_markets.insert(idx);
        if self.accounts[acct.0 as usize].kind == AccountKind::User {
            self.touched_orders.insert(seq);
        } else {
            self.orders.remove(&seq);
        }
    }

    /// Cancels a user's resting order. Returns the order after cancellation and the count
    /// it was reduced by.
    pub fn cancel_order(
        &mut self,
        account: AccountId,
        id: &str,
    ) -> Result<(Order, Count), OrderError> {
        let t = self.now;
        let seq = *self
            .order_ids
            .get(id)
            .ok_or_else(|| OrderError::OrderNotFound(id.to_string()))?;
        let o = &self.orders[&seq];
        if o.account != account {
            return Err(OrderError::OrderNotFound(id.to_string()));
        }
        let idx = self.index[o.ticker.as_str()];
        let status = self.markets[idx].info.status;
        if status != MarketStatus::Active {
            return Err(OrderError::MarketInactive {
                ticker: o.ticker.to_string(),
                status: status.as_str().into(),
            });
        }
        if !o.is_live() {
            return Err(OrderError::OrderNotFound(id.to_string()));
        }
        let rem = o.remaining;
        self.cancel_seq(seq, t);
        self.flush(t);
        Ok((self.orders[&seq].clone(), rem))
    }

    /// Cancels every resting order of a user (optionally in one market).
    pub fn cancel_all(&mut self, account: AccountId, ticker: Option<&str>) -> Vec<(Order, Count)> {
        let t = self.now;
        let seqs: Vec<u64> = self
            .account_orders
            .get(&account)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|s| {
                        let o = &self.orders[s];
                        o.is_live() && ticker.is_none_or(|tk| o.ticker.as_str() == tk)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for seq in seqs {
            let rem = self.orders[&seq].remaining;
            self.cancel_seq(seq, t);
            out.push((self.orders[&seq].clone(), rem));
        }
        self.flush(t);
        out
    }

    /// Closes an active market now (an early close), optionally forcing its result; the
    /// lifecycle then runs as usual: determined after the determination delay, settled
    /// after the settlement timer.
    pub fn force_close(
        &mut self,
        ticker: &str,
        result: Option<MarketResult>,
    ) -> Result<(), OrderError> {
        let idx = self.market_idx(ticker)?;
        let t = self.now;
        let m = &mut self.markets[idx];
        m.forced_result = result.or(m.forced_result);
        match m.info.status {
            MarketStatus::Active => {
                m.info.close_ms = t;
                m.info.updated_ms = t;
                self.lifecycle(idx, LifecycleKind::CloseDateUpdated, t);
            }
            MarketStatus::Initialized => {
                m.info.open_ms = t;
                m.info.close_ms = t;
                m.info.updated_ms = t;
                self.lifecycle(idx, LifecycleKind::CloseDateUpdated, t);
            }
            _ => {}
        }
        self.run_due(t);
        self.flush(t);
        Ok(())
    }

    /// Emits the per-operation events: user orders, positions, tickers.
    fn flush(&mut self, t: i64) {
        for seq in std::mem::take(&mut self.touched_orders) {
            if let Some(o) = self.orders.get(&seq) {
                self.out.push(Event::UserOrder(Box::new(o.clone())));
            }
        }
        for (acct, idx) in std::mem::take(&mut self.touched_positions) {
            if let Some(p) = self.positions.get(&(acct, idx)) {
                self.out.push(Event::Position {
                    account: acct,
                    ticker: self.markets[idx].info.ticker.clone(),
                    position: p.clone(),
                });
            }
        }
        for idx in std::mem::take(&mut self.touched_markets) {
            let st = self.ticker_state_idx(idx, t);
            let key = st.key();
            if self.markets[idx].last_ticker_key != Some(key) {
                self.markets[idx].last_ticker_key = Some(key);
                self.out.push(Event::Ticker(st));
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Reads
    // ----------------------------------------------------------------------------------

    pub fn market(&self, ticker: &str) -> Option<&MarketInfo> {
        self.index.get(ticker).map(|i| &self.markets[*i].info)
    }

    /// All markets ever listed, in listing order.
    pub fn markets(&self) -> impl Iterator<Item = &MarketInfo> {
        self.markets.iter().map(|m| &m.info)
    }

    fn ticker_state_idx(&self, idx: usize, t: i64) -> TickerState {
        let m = &self.markets[idx];
        TickerState {
            ticker: m.info.ticker.clone(),
            market_id: m.info.market_id.clone(),
            yes_bid: m.book.best_bid(),
            yes_ask: m.book.best_ask(),
            last_price: m.last_price,
            last_trade_size: m.last_trade_size,
            volume: m.volume,
            open_interest: m.open_interest,
            dollar_volume: m.dollar_volume,
            ts_ms: t,
        }
    }

    /// Top of book and activity of a market.
    pub fn ticker_state(&self, ticker: &str) -> Option<TickerState> {
        self.index
            .get(ticker)
            .map(|i| self.ticker_state_idx(*i, self.now))
    }

    /// `(yes bids, no bids)` ascending by leg price, NO bids at NO-leg prices.
    pub fn book_levels(&self, ticker: &str) -> Option<(Levels, Levels)> {
        self.index
            .get(ticker)
            .map(|i| self.markets[*i].book.levels())
    }

    /// Every resting order in a market, best level first, queue order within a level:
    /// `(side, price, order seq, account, remaining)`.
    pub fn resting_orders(&self, ticker: &str) -> Vec<(Side, Price, u64, AccountId, Count)> {
        let Some(i) = self.index.get(ticker) else {
            return Vec::new();
        };
        let b = &self.markets[*i].book;
        let mut out = Vec::new();
        for (p, l) in b.bids.iter().rev() {
            for s in &l.queue {
                let o = &self.orders[s];
                out.push((Side::Bid, *p, *s, o.account, o.remaining));
            }
        }
        for (p, l) in b.asks.iter() {
            for s in &l.queue {
                let o = &self.orders[s];
                out.push((Side::Ask, *p, *s, o.account, o.remaining));
            }
        }
        out
    }

    pub fn order(&self, id: &str) -> Option<&Order> {
        self.order_ids.get(id).and_then(|s| self.orders.get(s))
    }

    /// A user's orders, oldest first.
    pub fn orders_of(&self, account: AccountId) -> impl Iterator<Item = &Order> {
        self.account_orders
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|s| self.orders.get(s))
    }

    /// A user's fills, oldest first.
    pub fn fills_of(&self, account: AccountId) -> impl Iterator<Item = &Fill> {
        self.fills.iter().filter(move |f| f.account == account)
    }

    /// Every user fill, oldest first.
    pub fn fills(&self) -> &[Fill] {
        &self.fills
    }

    /// Every public trade, oldest first.
    pub fn trades(&self) -> &[Trade] {
        &self.trades
    }

    /// Every user settlement, oldest first.
    pub fn settlements(&self) -> &[Settlement] {
        &self.settlements
    }

    /// An account's positions, one per market it traded, in listing order.
    pub fn positions_of(&self, account: AccountId) -> Vec<(&MarketInfo, &Position)> {
        self.positions
            .range((account, 0)..=(account, usize::MAX))
            .map(|((_, i), p)| (&self.markets[*i].info, p))
            .collect()
    }

    /// Every account's position in one market.
    pub fn positions_in(&self, ticker: &str) -> Vec<(AccountId, Position)> {
        let Some(idx) = self.index.get(ticker) else {
            return Vec::new();
        };
        self.markets[*idx]
            .holders
            .iter()
            .filter_map(|a| self.positions.get(&(*a, *idx)).map(|p| (*a, p.clone())))
            .collect()
    }
}

fn ceil_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step + if t.rem_euclid(step) > 0 { step } else { 0 }
}

/// Underlying dollars → whole cents (the strike and expiration value have 2 decimals).
fn to_cents(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

#[cfg(test)]
mod tests;
