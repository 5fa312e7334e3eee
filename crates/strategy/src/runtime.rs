//! The strategy runtime: snapshot lines in, orders out, time passed in. Replay drives it from
//! files ([`crate::replay`]); live trading will drive it from the recorder's grid with a real
//! venue and clock. Nothing here reads the wall clock or knows which venue it talks to.
//!
//! Per line, [`Runtime::on_line`]: applies the venue's events (fills, finished orders,
//! settlements) to the [`Portfolio`], updates the market's state (close time, trust, marks),
//! asks the [`Strategy`] for intents, passes each through the [`RiskGate`] and sends what it
//! approves to the [`Venue`].

use std::collections::BTreeMap;

use pipeline::money::FeeMultiplier;
use pipeline::schema::strategy::{Execution, Risk};
use pipeline::snapshot::{Line, MarkerKind};
use pipeline::MarketTicker;

use crate::portfolio::{Portfolio, Position};
use crate::risk::{Refusal, RiskGate, RiskLimit};
use crate::types::{Decision, Fill, Intent, Order, Settlement};
use crate::venue::{Clock, Venue, VenueEvent};

/// What a strategy may know about a market besides the line itself.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketContext<'a> {
    pub market: &'a MarketTicker,
    /// From the rows (`close_ts_ms`), or from the market's metadata when given.
    pub close_ts_ms: Option<i64>,
    /// False after a `gap`/`closed` marker until a `resync`.
    pub trusted: bool,
    /// Our holdings and open orders there (None: nothing yet).
    pub position: Option<&'a Position>,
}

/// A trading strategy: sees each line of each market, in time order, with the time; returns
/// what it wants to buy. It never reads the clock and never talks to a venue.
pub trait Strategy {
    fn on_line(&mut self, line: &Line, ctx: &MarketContext<'_>, now_ms: i64) -> Vec<Intent>;
    /// The market is finished (closed or settled): drop its state.
    fn on_market_done(&mut self, _market: &MarketTicker) {}
    /// Decision records since the last call (for the report); strategies without a model may
    /// keep none.
    fn drain_decisions(&mut self) -> Vec<Decision> {
        Vec::new()
    }
    /// Why this strategy can no longer be trusted to decide (an out-of-process plugin that
    /// crashed, hung or answered garbage); the runner halts its new orders. `None`: healthy.
    fn failure(&self) -> Option<String> {
        None
    }
}

/// A boxed strategy is a strategy (the runner picks the built-in or a plugin at run time).
impl<T: Strategy + ?Sized> Strategy for Box<T> {
    fn on_line(&mut self, line: &Line, ctx: &MarketContext<'_>, now_ms: i64) -> Vec<Intent> {
        (**self).on_line(line, ctx, now_ms)
    }
    fn on_market_done(&mut self, market: &MarketTicker) {
        (**self).on_market_done(market)
    }
    fn drain_decisions(&mut self) -> Vec<Decision> {
        (**self).drain_decisions()
    }
    fn failure(&self) -> Option<String> {
        (**self).failure()
    }
}

/// An intent the runtime did not send, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub ts_ms: i64,
    pub market: MarketTicker,
    pub why: SkipReason,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SkipReason {
    Risk(Refusal),
    /// The book is not trustworthy (after a gap) or the market is closed/settled.
    Untrusted,
    Venue(String),
    /// Trading is halted (kill switch, daily loss, exchange pause, a failed plugin): no new
    /// orders anywhere.
    Halted(String),
    /// This market is blocked (a stale book, an order whose outcome is being looked up).
    Blocked(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Risk(r) => write!(f, "{r}"),
            SkipReason::Untrusted => f.write_str("book untrusted or market closed"),
            SkipReason::Venue(m) => write!(f, "venue: {m}"),
            SkipReason::Halted(m) => write!(f, "halted: {m}"),
            SkipReason::Blocked(m) => write!(f, "market blocked: {m}"),
        }
    }
}

/// Everything that happened in a run, for the report and for tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Journal {
    pub orders: Vec<Order>,
    pub fills: Vec<Fill>,
    pub settlements: Vec<Settlement>,
    pub decisions: Vec<Decision>,
    pub skipped: Vec<Skipped>,
    /// Orders whose count the risk gate reduced, by limit.
    pub reduced: BTreeMap<RiskLimit, u64>,
    /// Orders finished without filling entirely: (order id, reason).
    pub cancels: Vec<(u64, String)>,
}

impl Journal {
    /// Refusals counted by limit.
    pub fn refusals(&self) -> BTreeMap<RiskLimit, u64> {
        let mut m = BTreeMap::new();
        for s in &self.skipped {
            if let SkipReason::Risk(r) = &s.why {
                *m.entry(r.limit).or_insert(0) += 1;
            }
        }
        m
    }
}

#[derive(Debug, Clone, Default)]
struct MarketState {
    close_ts_ms: Option<i64>,
    trusted: bool,
    done: bool,
}

/// The runtime: one strategy, one risk gate, the portfolio, and per-market state.
pub struct Runtime<S: Strategy> {
    strategy: S,
    gate: RiskGate,
    execution: Execution,
    portfolio: Portfolio,
    markets: BTreeMap<MarketTicker, MarketState>,
    /// Close times from the markets' metadata, used until a row says otherwise.
    known_close: BTreeMap<MarketTicker, i64>,
    next_order_id: u64,
    journal: Journal,
    /// Why no new order may go out anywhere (None: trading).
    halted: Option<String>,
    /// Markets where no new order may go out, and why.
    blocked: BTreeMap<MarketTicker, String>,
}

impl<S: Strategy> Runtime<S> {
    pub fn new(
        strategy: S,
        risk: Risk,
        execution: Execution,
        fee_multiplier: FeeMultiplier,
    ) -> Runtime<S> {
        Runtime {
            strategy,
            gate: RiskGate::new(risk),
            execution,
            portfolio: Portfolio::new(fee_multiplier),
            markets: BTreeMap::new(),
            known_close: BTreeMap::new(),
            next_order_id: 1,
            journal: Journal::default(),
            halted: None,
            blocked: BTreeMap::new(),
        }
    }

    /// Orders get ids from `first` on (live: above every id a journal already used).
    pub fn with_first_order_id(mut self, first: u64) -> Self {
        self.next_order_id = first.max(1);
        self
    }

    /// Stops (`Some(why)`) or resumes (`None`) new orders everywhere. Events from the venue
    /// (fills, cancels, settlements) are applied either way.
    pub fn set_halted(&mut self, why: Option<String>) {
        self.halted = why;
    }

    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Blocks (`Some(why)`) or unblocks (`None`) new orders in one market.
    pub fn set_blocked(&mut self, market: &MarketTicker, why: Option<String>) {
        match why {
            Some(w) => {
                self.blocked.insert(market.clone(), w);
            }
            None => {
                self.blocked.remove(market);
            }
        }
    }

    /// The risk gate (its start-of-day equity gives today's loss).
    pub fn gate(&self) -> &RiskGate {
        &self.gate
    }

    /// Takes what was journaled since the last call (live writes it out as it goes, so memory
    /// does not grow with the session).
    pub fn drain_journal(&mut self) -> Journal {
        std::mem::take(&mut self.journal)
    }

    /// A fill that happened outside this run (an exchange's record at reconciliation):
    /// applied to the portfolio, not journaled as this run's.
    pub fn apply_external_fill(&mut self, fill: &Fill) {
        self.portfolio.apply_fill(fill);
    }

    /// Close times known from metadata (the markets sidecar), for rows that carry none.
    pub fn with_close_times(mut self, close: BTreeMap<MarketTicker, i64>) -> Self {
        self.known_close = close;
        self
    }

    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    /// Applies the venue's events: fills, finished orders, settlements.
    pub fn poll_venue(&mut self, venue: &mut dyn Venue, now_ms: i64) {
        for ev in venue.poll(now_ms) {
            match ev {
                VenueEvent::Fill(f) => {
                    self.portfolio.apply_fill(&f);
                    self.journal.fills.push(f);
                }
                VenueEvent::Done {
                    order_id,
                    market,
                    cancelled,
                    reason,
                    ..
                } => {
                    self.portfolio.order_done(&market, order_id);
                    if !cancelled.is_zero() {
                        self.journal.cancels.push((order_id, reason));
                    }
                }
                VenueEvent::Settled {
                    market,
                    outcome,
                    ts_ms,
                } => {
                    if let Some(s) = self.portfolio.settle(&market, outcome, ts_ms) {
                        self.journal.settlements.push(s);
                    }
                    self.market_done(&market);
                }
            }
        }
    }

    fn market_done(&mut self, market: &MarketTicker) {
        let st = self.markets.entry(market.clone()).or_default();
        if !st.done {
            st.done = true;
            self.strategy.on_market_done(market);
        }
    }

    /// One line of one market, at `clock`'s time.
    pub fn on_line(&mut self, line: &Line, clock: &dyn Clock, venue: &mut dyn Venue) {
        let now = clock.now_ms();
        self.poll_venue(venue, now);
        let market = line.market_ticker().clone();
        let known = self.known_close.get(&market).copied();
        let st = self.markets.entry(market.clone()).or_insert(MarketState {
            close_ts_ms: known,
            trusted: true,
            done: false,
        });
        let mut closed = false;
        match line {
            Line::Snapshot(r) => {
                if r.close_ts_ms.is_some() {
                    st.close_ts_ms = r.close_ts_ms;
                }
                self.portfolio.mark(r);
            }
            Line::Marker(m) => match m.event {
                MarkerKind::Gap => st.trusted = false,
                MarkerKind::Closed => {
                    st.trusted = false;
                    closed = true;
                }
                MarkerKind::Resync => st.trusted = true,
                MarkerKind::Other(_) => {}
            },
        }
        let (close_ts_ms, trusted, done) = (st.close_ts_ms, st.trusted, st.done);
        self.gate.observe(now, self.portfolio.equity());
        if done {
            return;
        }
        let ctx = MarketContext {
            market: &market,
            close_ts_ms,
            trusted,
            position: self.portfolio.position(&market),
        };
        let intents = self.strategy.on_line(line, &ctx, now);
        self.journal
            .decisions
            .extend(self.strategy.drain_decisions());
        for intent in intents {
            // An intent may name another market than the line's: judge it by that market.
            let (close, ok) = self
                .markets
                .get(&intent.market)
                .map_or((None, false), |m| (m.close_ts_ms, m.trusted && !m.done));
            self.send(intent, close, ok, now, venue);
        }
        if closed {
            self.market_done(&market);
        }
    }

    fn send(
        &mut self,
        intent: Intent,
        close_ts_ms: Option<i64>,
        trusted: bool,
        now: i64,
        venue: &mut dyn Venue,
    ) {
        let skip = |why| Skipped {
            ts_ms: now,
            market: intent.market.clone(),
            why,
        };
        if let Some(h) = &self.halted {
            self.journal
                .skipped
                .push(skip(SkipReason::Halted(h.clone())));
            return;
        }
        if let Some(b) = self.blocked.get(&intent.market) {
            self.journal
                .skipped
                .push(skip(SkipReason::Blocked(b.clone())));
            return;
        }
        if !trusted {
            self.journal.skipped.push(skip(SkipReason::Untrusted));
            return;
        }
        let approval = match self.gate.check(&intent, &self.portfolio, close_ts_ms, now) {
            Ok(a) => a,
            Err(r) => {
                self.journal.skipped.push(skip(SkipReason::Risk(r)));
                return;
            }
        };
        if let Some(l) = approval.reduced_by {
            *self.journal.reduced.entry(l).or_insert(0) += 1;
        }
        let order = Order {
            id: self.next_order_id,
            market: intent.market.clone(),
            side: intent.side,
            count: approval.count,
            limit: intent.limit,
            time_in_force: self.execution.time_in_force,
            decision_ts_ms: now,
            model_p: intent.model_p,
            mid: intent.mid,
            close_ts_ms,
        };
        self.next_order_id += 1;
        match venue.submit(order.clone(), now) {
            Ok(()) => {
                self.gate.order_sent(&order.market, now);
                self.portfolio.order_sent(&order);
                self.journal.orders.push(order);
            }
            Err(e) => self
                .journal
                .skipped
                .push(skip(SkipReason::Venue(e.to_string()))),
        }
    }

    /// Ends the run: applies the venue's last events and hands back the journal.
    pub fn finish(mut self, venue: &mut dyn Venue, now_ms: i64) -> (Journal, Portfolio, S) {
        self.poll_venue(venue, now_ms);
        (self.journal, self.portfolio, self.strategy)
    }
}
