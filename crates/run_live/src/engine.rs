//! The runner's synchronous core: grid lines and market records in, the strategy runtime
//! driven, everything journaled. No tokio, no network, no wall-clock reads: the wall time is
//! passed in with each input, so tests drive it directly.
//!
//! Per tick (one batch of the recorder's lines): the kill-switch file is checked, then each
//! line goes to the venue (which executes what is due against that row's book) and to
//! [`strategy::Runtime::on_line`] (features, model, signals, risk gate, orders). A line older
//! than `stale_ms` on the wall clock when it arrives blocks its market for that row; so does
//! an order whose outcome the live venue is still looking up.
//!
//! Trading states: **active**; **reducing** (shutting down: no new orders, outcomes still
//! resolved); **halted** (kill switch, daily loss for the rest of the UTC day, exchange
//! paused): no new orders. Fills, cancels and settlements are applied in every state.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use pipeline::money::{Count, Money};
use pipeline::schema::markets::{MarketRecord, MarketResult, MarketStatus};
use pipeline::schema::strategy::Risk;
use pipeline::schema::Outcome;
use pipeline::snapshot::Line;
use pipeline::MarketTicker;
use serde_json::json;
use strategy::runtime::{Journal, SkipReason};
use strategy::venue::{ManualClock, Venue};
use strategy::{Fill, ReplayVenue, Runtime, Strategy};

use crate::journal::{JournalError, SharedJournal};

const DAY_MS: i64 = 86_400_000;

/// A venue the engine can drive: it sees each line before the runtime does, learns results,
/// and may block markets.
pub trait ExecVenue: Venue {
    /// The exchange's book moved on (dry-run: execute what is due against this row).
    fn observe(&mut self, line: &Line);
    /// A market's result became known.
    fn resolve(&mut self, market: &MarketTicker, outcome: Outcome);
    /// Markets where no new order may go, and why (an order's outcome is unknown).
    fn blocked(&self) -> Vec<(MarketTicker, String)>;
    /// Orders sent whose outcome has not come back yet.
    fn in_flight(&self) -> usize {
        0
    }
}

/// Dry-run: the replay's execution model against the live rows; settlement at the market's
/// result once the exchange reports it.
impl ExecVenue for ReplayVenue {
    fn observe(&mut self, line: &Line) {
        ReplayVenue::observe(self, line)
    }
    fn resolve(&mut self, market: &MarketTicker, outcome: Outcome) {
        ReplayVenue::resolve(self, market, outcome)
    }
    fn blocked(&self) -> Vec<(MarketTicker, String)> {
        Vec::new()
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A line this much older than the wall clock when it arrives is a stale book.
    pub stale_ms: i64,
    /// Its existence halts trading (checked every tick).
    pub kill_file: PathBuf,
    /// The strategy's risk section (the daily loss limit halts for the day).
    pub risk: Risk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradingState {
    Active,
    Reducing,
    Halted,
}

impl TradingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::Reducing => "reducing",
            TradingState::Halted => "halted",
        }
    }
}

/// What the engine is told besides lines.
#[derive(Debug, Clone)]
pub enum Control {
    /// Halt (a signal): sticky for the session.
    Kill(String),
    /// The exchange's trading status.
    Exchange { trading_active: bool },
    /// Shutting down: no new orders.
    Reduce(String),
}

/// Running totals for the status line, the metrics and the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub rows: u64,
    pub markers: u64,
    pub orders: u64,
    pub fills: u64,
    pub contracts: Count,
    pub fees: Money,
    pub settlements: u64,
    pub skipped: BTreeMap<String, u64>,
    pub results: u64,
    /// Model steps (`rnn_edge_v1`), and those that wanted a trade.
    pub decisions: u64,
    pub decisions_to_trade: u64,
}

/// The P&L view of the portfolio, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pnl {
    /// Settled markets: payouts minus what their contracts cost, fees included.
    pub realised: Money,
    /// Open positions at their liquidation marks (best bids) minus their cost.
    pub open: Money,
    /// Cost of open positions plus the worst case of open orders.
    pub exposure: Money,
    pub open_markets: usize,
}

pub struct Engine<V: ExecVenue> {
    runtime: Runtime<Box<dyn Strategy>>,
    venue: V,
    journal: SharedJournal,
    cfg: EngineConfig,
    clock: ManualClock,
    kill: Option<String>,
    paused: Option<String>,
    reducing: Option<String>,
    loss_day: Option<i64>,
    state: TradingState,
    why: String,
    stats: Stats,
    last_decisions: VecDeque<String>,
    kill_seen: bool,
}

impl<V: ExecVenue> Engine<V> {
    pub fn new(
        runtime: Runtime<Box<dyn Strategy>>,
        venue: V,
        journal: SharedJournal,
        cfg: EngineConfig,
    ) -> Engine<V> {
        Engine {
            runtime,
            venue,
            journal,
            cfg,
            clock: ManualClock::default(),
            kill: None,
            paused: None,
            reducing: None,
            loss_day: None,
            state: TradingState::Active,
            why: String::new(),
            stats: Stats::default(),
            last_decisions: VecDeque::new(),
            kill_seen: false,
        }
    }

    pub fn runtime(&self) -> &Runtime<Box<dyn Strategy>> {
        &self.runtime
    }
    pub fn venue(&self) -> &V {
        &self.venue
    }
    pub fn venue_mut(&mut self) -> &mut V {
        &mut self.venue
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    pub fn state(&self) -> (TradingState, &str) {
        (self.state, &self.why)
    }
    pub fn last_decisions(&self) -> impl Iterator<Item = &String> {
        self.last_decisions.iter()
    }

    /// A fill from before this session (reconciliation with the exchange).
    pub fn apply_external_fill(&mut self, fill: &Fill) {
        self.runtime.apply_external_fill(fill);
    }

    pub fn pnl(&self) -> Pnl {
        let p = self.runtime.portfolio();
        let open_cost: Money = p.markets.values().map(|m| m.cost).sum();
        let marked: Money = p.markets.values().map(|m| m.marked_value()).sum();
        Pnl {
            realised: p.cash + open_cost,
            open: marked - open_cost,
            exposure: p.exposure(),
            open_markets: p.open_markets(),
        }
    }

    fn write(&self, kind: &str, v: serde_json::Value) -> Result<(), JournalError> {
        self.journal.lock().expect("journal lock").write(kind, v)
    }

    /// One tick's lines, at wall time `wall_ms`.
    pub fn on_lines(&mut self, lines: &[Line], wall_ms: i64) -> Result<(), JournalError> {
        if !self.kill_seen && self.cfg.kill_file.exists() {
            self.kill_seen = true;
            self.kill = Some(format!("kill switch file {}", self.cfg.kill_file.display()));
        }
        let blocked: BTreeMap<MarketTicker, String> = self.venue.blocked().into_iter().collect();
        for line in lines {
            let ts = line.ts_ms();
            self.clock.set(ts);
            self.update_state(ts)?;
            let market = line.market_ticker();
            let age = wall_ms - ts;
            let block = if age > self.cfg.stale_ms {
                Some(format!(
                    "stale book: the row is {age} ms old (limit {} ms)",
                    self.cfg.stale_ms
                ))
            } else {
                blocked.get(market).cloned()
            };
            self.runtime.set_blocked(market, block);
            self.venue.observe(line);
            self.runtime.on_line(line, &self.clock, &mut self.venue);
            match line {
                Line::Snapshot(r) => {
                    self.stats.rows += 1;
                    self.write(
                        "row",
                        json!({"market": r.market_ticker, "ts_ms": r.ts_ms, "seq": r.seq,
                               "yes_bid": r.yes_bid, "yes_ask": r.yes_ask}),
                    )?;
                }
                Line::Marker(m) => {
                    self.stats.markers += 1;
                    self.write(
                        "marker",
                        json!({"market": m.market_ticker, "ts_ms": m.ts_ms,
                               "event": m.event.to_string(), "reason": m.reason}),
                    )?;
                }
            }
            self.drain()?;
        }
        self.update_state(self.clock.0)?;
        self.journal.lock().expect("journal lock").flush()
    }

    /// Markets sidecar lines: results settle positions.
    pub fn on_markets(&mut self, recs: &[MarketRecord]) -> Result<(), JournalError> {
        for r in recs {
            let outcome = match (&r.result, &r.status) {
                (_, Some(MarketStatus::Disputed)) => None,
                (Some(MarketResult::Yes), _) => Some(Outcome::Yes),
                (Some(MarketResult::No), _) => Some(Outcome::No),
                _ => None,
            };
            if let Some(o) = outcome {
                self.stats.results += 1;
                self.write(
                    "result",
                    json!({"market": r.ticker, "outcome": o, "source": r.source}),
                )?;
                self.venue.resolve(&r.ticker, o);
            }
        }
        self.poll()
    }

    /// Applies what the venue reported since the last call (live: order outcomes).
    pub fn poll(&mut self) -> Result<(), JournalError> {
        self.runtime.poll_venue(&mut self.venue, self.clock.0);
        self.drain()?;
        self.journal.lock().expect("journal lock").flush()
    }

    pub fn on_control(&mut self, c: Control) -> Result<(), JournalError> {
        match c {
            Control::Kill(why) => {
                self.kill.get_or_insert(why);
            }
            Control::Exchange { trading_active } => {
                self.paused = (!trading_active).then(|| "the exchange paused trading".into());
            }
            Control::Reduce(why) => {
                self.reducing.get_or_insert(why);
            }
        }
        self.update_state(self.clock.0)
    }

    fn update_state(&mut self, ts: i64) -> Result<(), JournalError> {
        let day = ts.div_euclid(DAY_MS);
        if self.loss_day.is_some_and(|d| d != day) {
            self.loss_day = None;
        }
        let loss = self
            .runtime
            .gate()
            .day_loss_at(ts, self.runtime.portfolio().equity());
        if loss >= self.cfg.risk.max_daily_loss && self.loss_day.is_none() {
            self.loss_day = Some(day);
        }
        let loss_why = self.loss_day.map(|_| {
            format!(
                "risk.max_daily_loss: today's loss ${loss} reached ${} (halted until 00:00 UTC)",
                self.cfg.risk.max_daily_loss
            )
        });
        let plugin = self
            .runtime
            .strategy()
            .failure()
            .map(|f| format!("the strategy failed: {f}"));
        let (state, why) = if let Some(w) = self
            .kill
            .clone()
            .or(plugin)
            .or(self.paused.clone())
            .or(loss_why)
        {
            (TradingState::Halted, w)
        } else if let Some(w) = self.reducing.clone() {
            (TradingState::Reducing, w)
        } else {
            (TradingState::Active, String::new())
        };
        if state != self.state || why != self.why {
            match state {
                TradingState::Active => tracing::info!(state = state.as_str(), "trading resumes"),
                _ => tracing::warn!(state = state.as_str(), why = %why, "no new orders"),
            }
            self.write(
                "state",
                json!({"ts_ms": ts, "from": self.state.as_str(), "to": state.as_str(), "why": why}),
            )?;
            self.state = state;
            self.why = why;
        }
        self.runtime.set_halted(match self.state {
            TradingState::Active => None,
            _ => Some(self.why.clone()),
        });
        Ok(())
    }

    fn drain(&mut self) -> Result<(), JournalError> {
        let Journal {
            orders,
            fills,
            settlements,
            decisions,
            skipped,
            reduced,
            cancels,
        } = self.runtime.drain_journal();
        for d in decisions {
            self.stats.decisions += 1;
            if let Some(side) = d.action {
                self.stats.decisions_to_trade += 1;
                self.last_decisions.push_back(format!(
                    "{} {} p={:.3} mid={:.3}",
                    d.market,
                    side.as_str(),
                    d.model_p,
                    d.mid
                ));
                if self.last_decisions.len() > 3 {
                    self.last_decisions.pop_front();
                }
            }
            self.write("decision", serde_json::to_value(&d).expect("serialises"))?;
        }
        for s in skipped {
            let key = match &s.why {
                SkipReason::Risk(r) => r.limit.as_str().to_string(),
                SkipReason::Untrusted => "untrusted".into(),
                SkipReason::Venue(_) => "venue".into(),
                SkipReason::Halted(_) => "halted".into(),
                SkipReason::Blocked(_) => "blocked".into(),
            };
            *self.stats.skipped.entry(key.clone()).or_insert(0) += 1;
            self.write(
                "refused",
                json!({"ts_ms": s.ts_ms, "market": s.market, "by": key, "why": s.why.to_string()}),
            )?;
        }
        for (limit, n) in reduced {
            self.write("reduced", json!({"by": limit.as_str(), "orders": n}))?;
        }
        for o in orders {
            self.stats.orders += 1;
            let mut v = serde_json::to_value(&o).expect("serialises");
            v["order_id"] = json!(o.id);
            self.write("order", v)?;
        }
        for f in fills {
            self.stats.fills += 1;
            self.stats.contracts += f.count;
            self.stats.fees += f.fee;
            self.write("fill", serde_json::to_value(&f).expect("serialises"))?;
        }
        for (order_id, reason) in cancels {
            self.write("done", json!({"order_id": order_id, "reason": reason}))?;
        }
        for s in settlements {
            self.stats.settlements += 1;
            self.write("settlement", serde_json::to_value(&s).expect("serialises"))?;
        }
        Ok(())
    }

    /// The status line's fields, as one string.
    pub fn status_line(&self) -> String {
        let p = self.pnl();
        let last: Vec<&str> = self.last_decisions.iter().map(String::as_str).collect();
        format!(
            "state {} | open markets {} | exposure ${} | realised ${} | open ${} | rows {} | decisions {} ({} to trade) | orders {} fills {} ({} contracts, fees ${}) | settled {} | refused {} | last: {}{}",
            self.state.as_str(),
            p.open_markets,
            p.exposure,
            p.realised,
            p.open,
            self.stats.rows,
            self.stats.decisions,
            self.stats.decisions_to_trade,
            self.stats.orders,
            self.stats.fills,
            self.stats.contracts,
            self.stats.fees,
            self.stats.settlements,
            self.stats.skipped.values().sum::<u64>(),
            if last.is_empty() { "-".to_string() } else { last.join("; ") },
            if self.why.is_empty() { String::new() } else { format!(" | why: {}", self.why) },
        )
    }

    /// Prometheus text exposition of the same figures.
    pub fn metrics_text(&self) -> String {
        let p = self.pnl();
        let d = |m: Money| m.micros() as f64 / 1e6;
        let mut s = String::new();
        let mut g = |name: &str, help: &str, v: f64| {
            s.push_str(&format!("# HELP run_live_{name} {help}\n# TYPE run_live_{name} gauge\nrun_live_{name} {v}\n"));
        };
        g("rows_total", "grid rows seen", self.stats.rows as f64);
        g("orders_total", "orders sent", self.stats.orders as f64);
        g("fills_total", "fills", self.stats.fills as f64);
        g("fees_dollars", "fees paid", d(self.stats.fees));
        g(
            "settlements_total",
            "markets settled with a position",
            self.stats.settlements as f64,
        );
        g(
            "realised_pnl_dollars",
            "realised P&L, fees included",
            d(p.realised),
        );
        g(
            "open_pnl_dollars",
            "open positions at the best bids minus cost",
            d(p.open),
        );
        g(
            "exposure_dollars",
            "cost of positions plus worst case of open orders",
            d(p.exposure),
        );
        g(
            "open_markets",
            "markets with a position or open order",
            p.open_markets as f64,
        );
        g(
            "in_flight_orders",
            "orders whose outcome is not back yet",
            self.venue.in_flight() as f64,
        );
        for (st, v) in [
            (TradingState::Active, 0.0),
            (TradingState::Reducing, 1.0),
            (TradingState::Halted, 2.0),
        ] {
            if st == self.state {
                g("state", "0 active, 1 reducing, 2 halted", v);
            }
        }
        s.push_str("# HELP run_live_refused_total intents refused, by reason\n# TYPE run_live_refused_total counter\n");
        for (k, v) in &self.stats.skipped {
            s.push_str(&format!("run_live_refused_total{{by=\"{k}\"}} {v}\n"));
        }
        s
    }

    /// Ends the session: last venue events, a `stop` entry with the figures; hands back the
    /// venue.
    pub fn finish(mut self, why: &str) -> Result<(Summary, V), JournalError> {
        self.poll()?;
        let p = self.pnl();
        let positions: Vec<serde_json::Value> = self
            .runtime
            .portfolio()
            .markets
            .iter()
            .filter(|(_, m)| !(m.yes + m.no).is_zero())
            .map(|(t, m)| json!({"market": t, "yes": m.yes, "no": m.no, "cost": m.cost}))
            .collect();
        let summary = Summary {
            stats: self.stats.clone(),
            pnl: p,
            state: self.state,
            positions: positions.clone(),
        };
        self.write(
            "stop",
            json!({"why": why, "rows": self.stats.rows, "orders": self.stats.orders,
                   "fills": self.stats.fills, "fees": self.stats.fees,
                   "settlements": self.stats.settlements, "realised": p.realised,
                   "open": p.open, "exposure": p.exposure, "positions": positions,
                   "state": self.state.as_str()}),
        )?;
        self.journal.lock().expect("journal lock").sync()?;
        Ok((summary, self.venue))
    }
}

/// What a session did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub stats: Stats,
    pub pnl: Pnl,
    pub state: TradingState,
    pub positions: Vec<serde_json::Value>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "rows {}, orders {}, fills {} ({} contracts), fees ${}, markets settled {}",
            self.stats.rows,
            self.stats.orders,
            self.stats.fills,
            self.stats.contracts,
            self.stats.fees,
            self.stats.settlements
        )?;
        writeln!(
            f,
            "realised P&L ${} (fees included), open positions ${} at the best bids, {} open market(s), final state {}",
            self.pnl.realised,
            self.pnl.open,
            self.pnl.open_markets,
            self.state.as_str()
        )?;
        if !self.stats.skipped.is_empty() {
            let r: Vec<String> = self
                .stats
                .skipped
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(f, "intents refused: {}", r.join(", "))?;
        }
        Ok(())
    }
}
