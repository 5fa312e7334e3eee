//! Replay: the recorded rows as the exchange. [`ReplayVenue`] implements the execution model;
//! [`replay`] drives a [`Runtime`] over time-ordered lines with it and returns the journal.
//!
//! Execution model (DESIGN.md §4):
//! - an order decided on the row at `T` executes against the market's book at its first row
//!   that is at least [`Latency::rows`] rows later and has `ts_ms ≥ T +` [`Latency::ms`]
//!   and `ts_ms > T` (default: the next row);
//! - it buys at the displayed ask for at most the displayed size, walking the depth ladder
//!   (YES asks = 1 − NO bids, NO asks = 1 − YES bids) when the row records one, never above
//!   the limit; immediate-or-cancel remainders are cancelled, fill-or-kill fills all or none;
//! - size our earlier fills took at a level is not available again until a row shows that
//!   level with another size (or without it);
//! - no fill when a marker of the market comes between the decision and the execution row,
//!   when the rows are more than [`ReplayConfig::split_gap_ms`] apart, or the book is
//!   untrusted;
//! - each fill pays Kalshi's taker fee, `pipeline::money::trading_fee`, rounded up per fill;
//! - a market settles at its label when its `closed` marker arrives, or at the end of the
//!   replay; without a label it stays open and is reported so.

use std::collections::BTreeMap;

use pipeline::money::{trading_fee, Count, FeeMultiplier, Liquidity, Price};
use pipeline::schema::strategy::{Execution, Risk, TimeInForce};
use pipeline::schema::Outcome;
use pipeline::snapshot::{Line, MarkerKind, SnapshotRecord};
use pipeline::MarketTicker;
use serde::{Deserialize, Serialize};

use crate::runtime::{Journal, Runtime, Strategy};
use crate::types::{Fill, Order, Side};
use crate::venue::{ManualClock, Venue, VenueError, VenueEvent};

/// When a decision executes: at the first row of the market at least `rows` rows after the
/// decision row and at least `ms` after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub rows: u32,
    pub ms: i64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { rows: 1, ms: 0 }
    }
}

impl Latency {
    /// One more row: the robustness run.
    pub fn one_more_step(self) -> Latency {
        Latency {
            rows: self.rows + 1,
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayConfig {
    pub latency: Latency,
    /// The series' fee multiplier (KXBTC15M: 1).
    #[serde(skip, default = "one")]
    pub fee_multiplier: FeeMultiplier,
    /// Rows of a market further apart than this (with no marker between) are not one book
    /// history: a pending order is cancelled across such a silence.
    pub split_gap_ms: i64,
    /// Lines may arrive up to this much out of time order (files of one run interleave markets
    /// tick by tick; a `closed` marker carries the close time, which can be a little before
    /// the tick that wrote it): they are put back in order. Later than that is an error.
    pub reorder_window_ms: i64,
}

fn one() -> FeeMultiplier {
    FeeMultiplier::ONE
}

impl ReplayConfig {
    /// Every setting in range, or the first that is not, by name.
    pub fn validate(&self) -> Result<(), ReplayError> {
        let bad = |field, msg: String| Err(ReplayError::Config { field, msg });
        if self.latency.rows < 1 {
            return bad(
                "latency.rows",
                "must be ≥ 1: an order never executes on the row it was decided on".into(),
            );
        }
        if self.latency.ms < 0 {
            return bad("latency_ms", format!("{} is negative", self.latency.ms));
        }
        if self.split_gap_ms <= 0 {
            return bad("split_gap_ms", format!("{} must be > 0", self.split_gap_ms));
        }
        if self.reorder_window_ms < 0 {
            return bad(
                "reorder_window_ms",
                format!("{} is negative", self.reorder_window_ms),
            );
        }
        Ok(())
    }
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            latency: Latency::default(),
            fee_multiplier: FeeMultiplier::ONE,
            split_gap_ms: 60_000,
            reorder_window_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("{field}: {msg}")]
    Unsupported { field: &'static str, msg: String },
    #[error("replay {field}: {msg}")]
    Config { field: &'static str, msg: String },
    #[error(
        "lines out of time order: {market} at ts_ms {ts_ms} after ts_ms {previous_ms} (more \
         than reorder_window_ms late)"
    )]
    TimeBackwards {
        market: MarketTicker,
        ts_ms: i64,
        previous_ms: i64,
    },
}

/// The ask side of `row` for buying `side`: levels best (cheapest) first, as (price, size).
pub fn ask_ladder(row: &SnapshotRecord, side: Side) -> Vec<(Price, Count)> {
    let (ladder, best, best_size) = match side {
        Side::Yes => (&row.no_bids, row.yes_ask, row.yes_ask_size),
        Side::No => (&row.yes_bids, row.no_ask, row.yes_bid_size),
    };
    match ladder {
        Some(l) if !l.is_empty() => l.iter().map(|&(p, c)| (p.complement(), c)).collect(),
        _ => match (best, best_size) {
            (Some(p), Some(c)) => vec![(p, c)],
            _ => Vec::new(),
        },
    }
}

#[derive(Debug)]
struct VenueMarket {
    rows: u64,
    trusted: bool,
    last_row_ts: Option<i64>,
    close_ts_ms: Option<i64>,
    /// (side, ask price) → (size shown when we took from it, size we took).
    consumed: BTreeMap<(Side, Price), (Count, Count)>,
    settled: bool,
    /// The `closed` marker's time, once seen (settlement waits for the result when no label
    /// was known then: live dry-run).
    closed_at: Option<i64>,
}

impl Default for VenueMarket {
    /// Trust starts true, as in `load_columnar`: only a `gap`/`closed` marker removes it.
    fn default() -> VenueMarket {
        VenueMarket {
            rows: 0,
            trusted: true,
            last_row_ts: None,
            close_ts_ms: None,
            consumed: BTreeMap::new(),
            settled: false,
            closed_at: None,
        }
    }
}

#[derive(Debug)]
struct Pending {
    order: Order,
    rows_at_submit: u64,
}

/// The replay execution venue.
#[derive(Debug)]
pub struct ReplayVenue {
    cfg: ReplayConfig,
    labels: BTreeMap<MarketTicker, Outcome>,
    markets: BTreeMap<MarketTicker, VenueMarket>,
    pending: Vec<Pending>,
    events: Vec<VenueEvent>,
}

impl ReplayVenue {
    pub fn new(cfg: ReplayConfig, labels: BTreeMap<MarketTicker, Outcome>) -> ReplayVenue {
        ReplayVenue {
            cfg,
            labels,
            markets: BTreeMap::new(),
            pending: Vec::new(),
            events: Vec::new(),
        }
    }

    fn cancel_pending(&mut self, market: &MarketTicker, reason: &str) {
        let (gone, keep): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| &p.order.market == market);
        self.pending = keep;
        for p in gone {
            self.done(&p.order, Count::ZERO, reason.to_string());
        }
    }

    fn done(&mut self, order: &Order, filled: Count, reason: String) {
        self.events.push(VenueEvent::Done {
            order_id: order.id,
            market: order.market.clone(),
            filled,
            cancelled: order.count - filled,
            reason,
        });
    }

    /// The exchange sees a line (before the runtime does): markers cancel what was pending,
    /// rows execute what is due.
    pub fn observe(&mut self, line: &Line) {
        let market = line.market_ticker().clone();
        match line {
            Line::Marker(m) => {
                self.cancel_pending(&market, &format!("{} marker before execution", m.event));
                let vm = self.markets.entry(market.clone()).or_default();
                vm.consumed.clear();
                match m.event {
                    MarkerKind::Gap => vm.trusted = false,
                    MarkerKind::Resync => vm.trusted = true,
                    MarkerKind::Closed => {
                        vm.trusted = false;
                        self.settle(&market, m.ts_ms);
                    }
                    MarkerKind::Other(_) => {}
                }
            }
            Line::Snapshot(r) => {
                let split = self.cfg.split_gap_ms;
                let vm = self.markets.entry(market.clone()).or_default();
                let silence = vm.last_row_ts.is_some_and(|t| r.ts_ms - t > split);
                vm.rows += 1;
                vm.last_row_ts = Some(r.ts_ms);
                if r.close_ts_ms.is_some() {
                    vm.close_ts_ms = r.close_ts_ms;
                }
                // Size we took is available again once the level shows another size.
                vm.consumed.retain(|&(side, price), (shown, _)| {
                    ask_ladder(r, side)
                        .iter()
                        .any(|&(p, c)| p == price && c == *shown)
                });
                if silence {
                    vm.consumed.clear();
                    self.cancel_pending(&market, "rows too far apart (no marker): not one book");
                    return;
                }
                self.execute_due(r);
            }
        }
    }

    /// The market's result became known (live dry-run: a lifecycle event or a REST read after
    /// the close). A market whose `closed` marker already passed settles now, at the close.
    pub fn resolve(&mut self, market: &MarketTicker, outcome: Outcome) {
        self.labels.insert(market.clone(), outcome);
        if let Some(ts) = self.markets.get(market).and_then(|vm| vm.closed_at) {
            self.settle(market, ts);
        }
    }

    /// Whether the market's `closed` marker passed without a result to settle at.
    pub fn awaiting_result(&self, market: &MarketTicker) -> bool {
        self.markets
            .get(market)
            .is_some_and(|vm| vm.closed_at.is_some() && !vm.settled)
    }

    fn settle(&mut self, market: &MarketTicker, ts_ms: i64) {
        let vm = self.markets.entry(market.clone()).or_default();
        if vm.settled {
            return;
        }
        vm.closed_at.get_or_insert(ts_ms);
        if let Some(&outcome) = self.labels.get(market) {
            vm.settled = true;
            self.events.push(VenueEvent::Settled {
                market: market.clone(),
                outcome,
                ts_ms,
            });
        }
    }

    fn execute_due(&mut self, row: &SnapshotRecord) {
        let lat = self.cfg.latency;
        let rows = self.markets[&row.market_ticker].rows;
        let (due, keep): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| {
                p.order.market == row.market_ticker
                    && rows >= p.rows_at_submit + u64::from(lat.rows)
                    && row.ts_ms >= p.order.decision_ts_ms + lat.ms
                    // A repeated row of the decision's instant is not a later book.
                    && row.ts_ms > p.order.decision_ts_ms
            });
        self.pending = keep;
        for p in due {
            self.execute(&p.order, row);
        }
    }

    fn execute(&mut self, order: &Order, row: &SnapshotRecord) {
        let m = self.cfg.fee_multiplier;
        let vm = self
            .markets
            .get_mut(&order.market)
            .expect("a row of the market was observed");
        if !vm.trusted {
            self.done(order, Count::ZERO, "book untrusted".into());
            return;
        }
        // What each level can give us now, never above the limit: (price, shown, available).
        let levels: Vec<(Price, Count, Count)> = ask_ladder(row, order.side)
            .into_iter()
            .take_while(|&(p, _)| p <= order.limit)
            .map(|(p, shown)| {
                let taken = vm
                    .consumed
                    .get(&(order.side, p))
                    .filter(|(s, _)| *s == shown)
                    .map_or(Count::ZERO, |&(_, t)| t);
                (p, shown, (shown - taken).max(Count::ZERO))
            })
            .collect();
        let available: Count = levels.iter().map(|l| l.2).sum();
        if order.time_in_force == TimeInForce::FillOrKill && available < order.count {
            self.done(
                order,
                Count::ZERO,
                format!("fill-or-kill: {available} available within the limit"),
            );
            return;
        }
        let mut left = order.count;
        let mut fills = Vec::new();
        for (price, shown, avail) in levels {
            if left.is_zero() {
                break;
            }
            let take = left.min(avail);
            if take <= Count::ZERO {
                continue;
            }
            left -= take;
            let e = vm
                .consumed
                .entry((order.side, price))
                .or_insert((shown, Count::ZERO));
            e.1 += take;
            fills.push(Fill {
                order_id: order.id,
                market: order.market.clone(),
                ts_ms: row.ts_ms,
                side: order.side,
                price,
                count: take,
                fee: trading_fee(Liquidity::Taker, m, take, price),
                decision_ts_ms: order.decision_ts_ms,
                model_p: order.model_p,
                mid: order.mid,
                close_ts_ms: order.close_ts_ms,
            });
        }
        let filled = order.count - left;
        self.events.extend(fills.into_iter().map(VenueEvent::Fill));
        let reason = if left.is_zero() {
            "filled".to_string()
        } else {
            format!("immediate-or-cancel: {left} not available within the limit, cancelled")
        };
        self.done(order, filled, reason);
    }

    /// The end of the data: nothing pending can execute; labelled markets settle.
    pub fn finish(&mut self, end_ts_ms: i64) {
        for p in std::mem::take(&mut self.pending) {
            self.done(
                &p.order,
                Count::ZERO,
                "replay ended before execution".into(),
            );
        }
        let markets: Vec<(MarketTicker, i64)> = self
            .markets
            .iter()
            .filter(|(_, vm)| !vm.settled)
            .map(|(t, vm)| {
                (
                    t.clone(),
                    vm.close_ts_ms.unwrap_or(end_ts_ms).min(end_ts_ms),
                )
            })
            .collect();
        for (t, ts) in markets {
            self.settle(&t, ts.max(self.markets[&t].last_row_ts.unwrap_or(ts)));
        }
    }
}

impl Venue for ReplayVenue {
    fn submit(&mut self, order: Order, _now_ms: i64) -> Result<(), VenueError> {
        let reject = |msg: &str| {
            Err(VenueError::Rejected {
                id: order.id,
                msg: msg.to_string(),
            })
        };
        if order.time_in_force == TimeInForce::GoodTillCanceled {
            return reject("good_till_canceled is not simulated by the replay venue");
        }
        if order.count <= Count::ZERO {
            return reject("count must be positive");
        }
        let Some(vm) = self.markets.get(&order.market) else {
            return reject("no row of this market yet");
        };
        if !vm.trusted || vm.settled {
            return reject("book untrusted or market settled");
        }
        self.pending.push(Pending {
            rows_at_submit: vm.rows,
            order,
        });
        Ok(())
    }

    fn poll(&mut self, _now_ms: i64) -> Vec<VenueEvent> {
        std::mem::take(&mut self.events)
    }
}

/// What one market looked like in a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketSeen {
    pub close_ts_ms: Option<i64>,
    pub outcome: Option<Outcome>,
    pub lines: u64,
}

/// A replay's output: the journal plus what was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayResult {
    pub journal: Journal,
    pub markets: BTreeMap<MarketTicker, MarketSeen>,
    pub lines: u64,
    pub config: ReplayConfig,
}

impl ReplayResult {
    /// Markets we hold contracts in that have no label: open, out of the P&L.
    pub fn open_markets(&self) -> Vec<MarketTicker> {
        let settled: std::collections::BTreeSet<&MarketTicker> =
            self.journal.settlements.iter().map(|s| &s.market).collect();
        let mut held: Vec<MarketTicker> = self
            .journal
            .fills
            .iter()
            .map(|f| &f.market)
            .filter(|m| !settled.contains(m))
            .cloned()
            .collect();
        held.sort();
        held.dedup();
        held
    }
}

/// Checks that the execution settings can be simulated.
pub fn check_execution(execution: &Execution) -> Result<(), ReplayError> {
    if execution.time_in_force == TimeInForce::GoodTillCanceled {
        return Err(ReplayError::Unsupported {
            field: "execution.time_in_force",
            msg: "good_till_canceled (resting orders) is not simulated by replay; use \
                  immediate_or_cancel or fill_or_kill"
                .into(),
        });
    }
    if execution.post_only {
        return Err(ReplayError::Unsupported {
            field: "execution.post_only",
            msg: "resting maker orders are not simulated by replay".into(),
        });
    }
    Ok(())
}

/// Replays `lines` (all markets, in time order) through `strategy` with the replay venue.
/// `labels` settle the markets; `close_times` (from the markets sidecar) fill in rows that
/// carry no close time.
pub fn replay<S: Strategy>(
    strategy: S,
    risk: &Risk,
    execution: &Execution,
    cfg: ReplayConfig,
    labels: &BTreeMap<MarketTicker, Outcome>,
    close_times: &BTreeMap<MarketTicker, i64>,
    lines: impl IntoIterator<Item = Line>,
) -> Result<(ReplayResult, S), ReplayError> {
    check_execution(execution)?;
    cfg.validate()?;
    let mut runtime = Runtime::new(
        strategy,
        risk.clone(),
        execution.clone(),
        cfg.fee_multiplier,
    )
    .with_close_times(close_times.clone());
    let mut venue = ReplayVenue::new(cfg, labels.clone());
    let mut clock = ManualClock::default();
    let mut markets: BTreeMap<MarketTicker, MarketSeen> = BTreeMap::new();
    let mut order = Reorder::new(cfg.reorder_window_ms);
    let mut last: Option<i64> = None;
    let mut n = 0u64;
    let mut step = |line: Line| {
        let ts = line.ts_ms();
        last = Some(ts);
        n += 1;
        let seen = markets
            .entry(line.market_ticker().clone())
            .or_insert_with(|| MarketSeen {
                close_ts_ms: close_times.get(line.market_ticker()).copied(),
                outcome: labels.get(line.market_ticker()).copied(),
                lines: 0,
            });
        seen.lines += 1;
        if let Line::Snapshot(r) = &line {
            if r.close_ts_ms.is_some() {
                seen.close_ts_ms = r.close_ts_ms;
            }
        }
        clock.set(ts);
        venue.observe(&line);
        runtime.on_line(&line, &clock, &mut venue);
    };
    for line in lines {
        order.push(line)?;
        while let Some(l) = order.pop_ready() {
            step(l);
        }
    }
    while let Some(l) = order.pop_any() {
        step(l);
    }
    let end = last.unwrap_or(0);
    venue.finish(end);
    let (journal, _portfolio, strategy) = runtime.finish(&mut venue, end);
    Ok((
        ReplayResult {
            journal,
            markets,
            lines: n,
            config: cfg,
        },
        strategy,
    ))
}

/// Sorts lines by `ts_ms`, stably (a market's `resync` stays before its row of the same
/// instant), for inputs gathered from several files.
pub fn sort_lines(lines: &mut [Line]) {
    lines.sort_by_key(Line::ts_ms);
}

/// One fold for the report: replays `lines()` twice through a fresh strategy from `make`, once
/// with `cfg` and once with one more step of latency (the robustness row). `lines` is called
/// once per run, so it can re-read the files instead of holding them.
#[allow(clippy::too_many_arguments)]
pub fn replay_fold<S: Strategy, I: IntoIterator<Item = Line>>(
    name: &str,
    in_sample: bool,
    mut make: impl FnMut() -> S,
    risk: &Risk,
    execution: &Execution,
    cfg: ReplayConfig,
    labels: &BTreeMap<MarketTicker, Outcome>,
    close_times: &BTreeMap<MarketTicker, i64>,
    mut lines: impl FnMut() -> I,
) -> Result<crate::report::FoldInput, ReplayError> {
    let (main, _) = replay(make(), risk, execution, cfg, labels, close_times, lines())?;
    let later = ReplayConfig {
        latency: cfg.latency.one_more_step(),
        ..cfg
    };
    let (late, _) = replay(make(), risk, execution, later, labels, close_times, lines())?;
    Ok(crate::report::FoldInput {
        name: name.to_string(),
        in_sample,
        main,
        extra_latency: Some(late),
        notes: Vec::new(),
    })
}

#[derive(Debug)]
struct Queued {
    ts: i64,
    seq: u64,
    line: Line,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

/// Puts lines at most `window_ms` late back in time order, stably (lines with the same
/// `ts_ms` keep their input order, so a `resync` stays before its row).
#[derive(Debug)]
struct Reorder {
    window_ms: i64,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Queued>>,
    seq: u64,
    newest: Option<i64>,
}

impl Reorder {
    fn new(window_ms: i64) -> Reorder {
        Reorder {
            window_ms: window_ms.max(0),
            heap: std::collections::BinaryHeap::new(),
            seq: 0,
            newest: None,
        }
    }

    fn push(&mut self, line: Line) -> Result<(), ReplayError> {
        let ts = line.ts_ms();
        // More than the window behind the newest line: too late to put back in order (and
        // never before a line already released, which is at most the newest − the window).
        if let Some(prev) = self.newest.filter(|&n| ts < n - self.window_ms) {
            return Err(ReplayError::TimeBackwards {
                market: line.market_ticker().clone(),
                ts_ms: ts,
                previous_ms: prev,
            });
        }
        self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
        self.seq += 1;
        self.heap.push(std::cmp::Reverse(Queued {
            ts,
            seq: self.seq,
            line,
        }));
        Ok(())
    }

    /// The oldest line, once nothing older can still arrive within the window.
    fn pop_ready(&mut self) -> Option<Line> {
        let newest = self.newest?;
        if self.heap.peek()?.0.ts + self.window_ms > newest {
            return None;
        }
        self.pop_any()
    }

    fn pop_any(&mut self) -> Option<Line> {
        Some(self.heap.pop()?.0.line)
    }
}
