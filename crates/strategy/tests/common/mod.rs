//! Shared test fixtures: rows, markers, generated markets, simple strategies and models, and
//! an independent risk checker wrapped around the replay venue.
#![allow(dead_code)]

use std::collections::BTreeMap;

use pipeline::money::{trading_fee, Count, FeeMultiplier, Liquidity, Money, Price};
use pipeline::schema::strategy::{
    Execution, FeatureSpec, Risk, SelfTradePrevention, Sides, Signals, TimeInForce,
};
use pipeline::schema::Outcome;
use pipeline::snapshot::{Line, Marker, MarkerKind, SnapshotRecord};
use pipeline::MarketTicker;
use strategy::features::{EdgeModel, FEATURE_NAMES};
use strategy::replay::{ReplayConfig, ReplayVenue};
use strategy::runtime::{Journal, MarketContext, Runtime, Strategy};
use strategy::venue::{ManualClock, Venue, VenueError, VenueEvent};
use strategy::{Intent, Order, Side};

/// 2026-05-11T00:00:00Z.
pub const T0: i64 = 1_778_457_600_000;

pub fn tk(s: &str) -> MarketTicker {
    MarketTicker::from(s)
}

pub fn c(cents: i64) -> Price {
    Price::from_cents(cents).unwrap()
}

pub fn n(contracts: i64) -> Count {
    Count::from_contracts(contracts)
}

/// A row with a YES bid `bid`¢ × `bid_size` and a YES ask `ask`¢ × `ask_size`.
pub fn row(m: &str, ts: i64, bid: i64, bid_size: i64, ask: i64, ask_size: i64, close: i64) -> Line {
    Line::Snapshot(
        SnapshotRecord::from_book(
            ts,
            tk(m),
            Some((c(bid), n(bid_size))),
            Some((c(100 - ask), n(ask_size))),
        )
        .unwrap()
        .with_close_ts_ms(Some(close)),
    )
}

/// A row with ladders: `yes_bids` and `no_bids` as (cents, contracts), best first.
pub fn ladder_row(m: &str, ts: i64, yes: &[(i64, i64)], no: &[(i64, i64)], close: i64) -> Line {
    let l = |v: &[(i64, i64)]| v.iter().map(|&(p, s)| (c(p), n(s))).collect::<Vec<_>>();
    Line::Snapshot(
        SnapshotRecord::from_ladders(ts, tk(m), &l(yes), &l(no), 10)
            .unwrap()
            .with_close_ts_ms(Some(close)),
    )
}

pub fn marker(m: &str, ts: i64, kind: MarkerKind) -> Line {
    Line::Marker(Marker::new(ts, tk(m), kind, None))
}

pub fn loose_risk() -> Risk {
    Risk {
        max_contracts_per_market: n(1_000_000),
        max_open_markets: 1_000,
        max_orders_per_minute: 1_000_000,
        cooldown_s: 0,
        max_daily_loss: Money::from_cents(100_000_000),
        no_entry_last_s: 0,
        max_total_exposure: None,
    }
}

pub fn execution(count: i64) -> Execution {
    Execution {
        limit_offset: Price::ZERO,
        time_in_force: TimeInForce::ImmediateOrCancel,
        contracts_per_order: n(count),
        post_only: false,
        expiration_s: None,
        self_trade_prevention: SelfTradePrevention::TakerAtCross,
    }
}

pub fn signals() -> Signals {
    Signals {
        min_edge: Money::from_cents(3),
        min_price: c(5),
        max_price: c(95),
        max_spread: c(5),
        min_seconds_to_close: 0,
        max_seconds_to_close: None,
        sides: Sides::Both,
        min_ask_size: None,
    }
}

/// Identity normalisation for the features (mean 0, std 1), so the model sees raw features.
pub fn identity_specs() -> Vec<FeatureSpec> {
    FEATURE_NAMES
        .iter()
        .map(|name| FeatureSpec {
            name: name.to_string(),
            mean: 0.0,
            std: 1.0,
        })
        .collect()
}

/// A deterministic model: P(YES) = the `yes_mid` feature + `shift`, clamped.
pub struct MidModel {
    pub shift: f64,
}

impl EdgeModel for MidModel {
    fn step(&mut self, _market: &MarketTicker, x: &[f32], _reset: bool) -> f64 {
        (f64::from(x[0]) + self.shift).clamp(0.01, 0.99)
    }
    fn forget(&mut self, _market: &MarketTicker) {}
}

/// Wants to buy `count` of `side` at the displayed ask (plus `offset` cents) on every row.
#[derive(Debug)]
pub struct AlwaysBuy {
    pub side: Side,
    pub count: Count,
    pub offset: i64,
}

impl Strategy for AlwaysBuy {
    fn on_line(&mut self, line: &Line, ctx: &MarketContext<'_>, _now: i64) -> Vec<Intent> {
        let Line::Snapshot(r) = line else {
            return Vec::new();
        };
        let ask = match self.side {
            Side::Yes => r.yes_ask,
            Side::No => r.no_ask,
        };
        let Some(ask) = ask else { return Vec::new() };
        let limit = Price::from_micros((ask.micros() + self.offset * 10_000).min(990_000)).unwrap();
        vec![Intent {
            market: ctx.market.clone(),
            side: self.side,
            count: self.count,
            limit,
            model_p: None,
            mid: r.yes_mid.map(Price::to_prob),
            edge: None,
            reason: "always".into(),
        }]
    }
}

/// Buys exactly what it is told at given (market, ts).
#[derive(Debug)]
pub struct Scripted {
    pub buys: Vec<(String, i64, Side, Count, Price)>,
}

impl Strategy for Scripted {
    fn on_line(&mut self, line: &Line, ctx: &MarketContext<'_>, now: i64) -> Vec<Intent> {
        if !matches!(line, Line::Snapshot(_)) {
            return Vec::new();
        }
        self.buys
            .iter()
            .filter(|b| b.0 == ctx.market.as_str() && b.1 == now)
            .map(|b| Intent {
                market: ctx.market.clone(),
                side: b.2,
                count: b.3,
                limit: b.4,
                model_p: None,
                mid: None,
                edge: None,
                reason: "scripted".into(),
            })
            .collect()
    }
}

/// `k` markets of `rows` one-second rows each, opening every `stagger_s` seconds, prices
/// wandering deterministically (2¢ spread, 10 contracts a side), each ending with `closed` at
/// its close time. Returns the lines in time order and the labels (alternating yes/no).
pub fn generated(
    k: usize,
    rows: i64,
    stagger_s: i64,
    start: i64,
) -> (Vec<Line>, BTreeMap<MarketTicker, Outcome>) {
    let mut lines = Vec::new();
    let mut labels = BTreeMap::new();
    for i in 0..k {
        let name = format!("KXT-M{i:03}");
        let open = start + i as i64 * stagger_s * 1000;
        let close = open + rows * 1000;
        for j in 0..rows {
            let ts = open + j * 1000;
            let bid = 30 + ((j * 7 + i as i64 * 13) % 29);
            lines.push(row(&name, ts, bid, 10, bid + 2, 10, close));
        }
        lines.push(marker(&name, close, MarkerKind::Closed));
        labels.insert(
            tk(&name),
            if i % 2 == 0 {
                Outcome::Yes
            } else {
                Outcome::No
            },
        );
    }
    strategy::replay::sort_lines(&mut lines);
    (lines, labels)
}

#[derive(Default)]
struct CheckPos {
    filled: Count,
    open: BTreeMap<u64, (Count, Price)>,
    cost: Money,
    yes: Count,
    no: Count,
    mark_yes: Option<Price>,
    mark_no: Option<Price>,
    settled: bool,
}

/// The replay venue wrapped in an independent bookkeeper that checks every risk limit on
/// every order it receives (from its own view of fills, orders and settlements).
pub struct Checker {
    pub inner: ReplayVenue,
    risk: Risk,
    m: FeeMultiplier,
    pos: BTreeMap<MarketTicker, CheckPos>,
    sent: Vec<(i64, MarketTicker)>,
    cash: Money,
    close: BTreeMap<MarketTicker, i64>,
    day: Option<(i64, Money)>,
    pub violations: Vec<String>,
    pub orders: usize,
}

impl Checker {
    pub fn new(risk: Risk, labels: BTreeMap<MarketTicker, Outcome>) -> Checker {
        Checker {
            inner: ReplayVenue::new(ReplayConfig::default(), labels),
            risk,
            m: FeeMultiplier::ONE,
            pos: BTreeMap::new(),
            sent: Vec::new(),
            cash: Money::ZERO,
            close: BTreeMap::new(),
            day: None,
            violations: Vec::new(),
            orders: 0,
        }
    }

    pub fn observe(&mut self, line: &Line) {
        if let Line::Snapshot(r) = line {
            if let Some(cl) = r.close_ts_ms {
                self.close.insert(r.market_ticker.clone(), cl);
            }
            if let Some(p) = self.pos.get_mut(&r.market_ticker) {
                p.mark_yes = r.yes_bid;
                p.mark_no = r.no_bid;
            }
        }
        self.inner.observe(line);
    }

    fn equity(&self) -> Money {
        let mut e = self.cash;
        for p in self.pos.values().filter(|p| !p.settled) {
            if let Some(b) = p.mark_yes {
                e += Money::from_micros(b.micros() * p.yes.centis() / 100);
            }
            if let Some(b) = p.mark_no {
                e += Money::from_micros(b.micros() * p.no.centis() / 100);
            }
        }
        e
    }

    fn note_day(&mut self, now: i64) {
        let d = now.div_euclid(86_400_000);
        if self.day.is_none_or(|(x, _)| x != d) {
            self.day = Some((d, self.equity()));
        }
    }

    fn is_open(p: &CheckPos) -> bool {
        !p.settled && (!p.filled.is_zero() || !p.open.is_empty())
    }
}

impl Venue for Checker {
    fn submit(&mut self, o: Order, now: i64) -> Result<(), VenueError> {
        self.note_day(now);
        let r = self.risk.clone();
        let mut found: Vec<String> = Vec::new();
        let mut bad = |s: String| found.push(format!("order {} at {now}: {s}", o.id));
        let equity = self.equity();
        let p = self.pos.get(&o.market);
        let held = p.map_or(Count::ZERO, |p| {
            p.filled + p.open.values().map(|v| v.0).sum::<Count>()
        });
        if held + o.count > r.max_contracts_per_market {
            bad(format!("contracts {} + {} > max", held, o.count));
        }
        let open = self.pos.values().filter(|p| Self::is_open(p)).count()
            + usize::from(!p.is_some_and(Self::is_open));
        if open > r.max_open_markets as usize {
            bad(format!("{open} open markets"));
        }
        let recent = self.sent.iter().filter(|(t, _)| *t > now - 60_000).count() + 1;
        if recent > r.max_orders_per_minute as usize {
            bad(format!("{recent} orders in a minute"));
        }
        if let Some((t, _)) = self.sent.iter().rev().find(|(_, m)| *m == o.market) {
            if now - t < r.cooldown_s as i64 * 1000 {
                bad(format!("cooldown: {} ms", now - t));
            }
        }
        let close = self.close[&o.market];
        if close - now < r.no_entry_last_s as i64 * 1000 {
            bad(format!("{} ms before close", close - now));
        }
        let (_, start) = self.day.unwrap();
        let loss = start - equity;
        if loss >= r.max_daily_loss {
            bad(format!("day loss {loss}"));
        }
        if let Some(max) = r.max_total_exposure {
            let worst = |l: Price, k: Count| {
                Money::from_micros(l.micros() * k.centis() / 100)
                    + trading_fee(Liquidity::Taker, self.m, k, l)
            };
            let exp: Money = self
                .pos
                .values()
                .filter(|p| !p.settled)
                .map(|p| p.cost + p.open.values().map(|&(k, l)| worst(l, k)).sum::<Money>())
                .sum();
            if exp + worst(o.limit, o.count) > max {
                bad(format!("exposure {exp} + order > {max}"));
            }
        }
        self.violations.extend(found);
        self.orders += 1;
        self.sent.push((now, o.market.clone()));
        self.pos
            .entry(o.market.clone())
            .or_default()
            .open
            .insert(o.id, (o.count, o.limit));
        self.inner.submit(o, now)
    }

    fn poll(&mut self, now: i64) -> Vec<VenueEvent> {
        let evs = self.inner.poll(now);
        for e in &evs {
            match e {
                VenueEvent::Fill(f) => {
                    let p = self.pos.entry(f.market.clone()).or_default();
                    p.filled += f.count;
                    match f.side {
                        Side::Yes => p.yes += f.count,
                        Side::No => p.no += f.count,
                    }
                    let paid =
                        Money::from_micros(f.price.micros() * f.count.centis() / 100) + f.fee;
                    p.cost += paid;
                    self.cash -= paid;
                    if let Some(o) = p.open.get_mut(&f.order_id) {
                        o.0 -= f.count;
                    }
                }
                VenueEvent::Done {
                    order_id, market, ..
                } => {
                    if let Some(p) = self.pos.get_mut(market) {
                        p.open.remove(order_id);
                    }
                }
                VenueEvent::Settled {
                    market, outcome, ..
                } => {
                    if let Some(p) = self.pos.get_mut(market) {
                        if !p.settled {
                            p.settled = true;
                            p.open.clear();
                            let won = match outcome {
                                Outcome::Yes => p.yes,
                                Outcome::No => p.no,
                            };
                            self.cash += Money::from_micros(won.centis() * 10_000);
                        }
                    }
                }
            }
        }
        self.note_day(now);
        evs
    }
}

/// Runs `strategy` over `lines` with the checker as the venue; returns the journal and the
/// checker.
pub fn run_checked<S: Strategy>(
    strategy: S,
    risk: Risk,
    lines: &[Line],
    labels: BTreeMap<MarketTicker, Outcome>,
) -> (Journal, Checker) {
    let mut rt = Runtime::new(strategy, risk.clone(), execution(5), FeeMultiplier::ONE);
    let mut venue = Checker::new(risk, labels);
    let mut clock = ManualClock::default();
    for l in lines {
        clock.set(l.ts_ms());
        venue.observe(l);
        rt.on_line(l, &clock, &mut venue);
    }
    let end = lines.last().map_or(0, Line::ts_ms);
    venue.inner.finish(end);
    let (journal, _, _) = rt.finish(&mut venue, end);
    (journal, venue)
}
