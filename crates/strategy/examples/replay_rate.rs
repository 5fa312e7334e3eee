//! Rows per second through replay (features + model step + runtime + risk + execution), one
//! process, one thread, on generated KXBTC15M-like data streamed lazily (nothing held in
//! memory but the current row): `cargo run --release -p strategy --example replay_rate --
//! [days] [grid_ms]` (defaults: 1 day, 100 ms grid). The model is a deterministic function of
//! the mid (no libtorch), so this measures the runtime, not the network.
//!
//! Measured 2026-12-03 on the team's shared 2-core machine (load ≈ 4 from other builds),
//! `strategy` and `pipeline` at opt-level 3: 30 days at 100 ms (2,880 markets, 25.9 M lines,
//! 2.59 M model steps) in 56 s, 464 k lines/s, one thread.

use std::collections::BTreeMap;
use std::time::Instant;

use pipeline::features::{EdgeModel, FeatureConfig, Normalizer, FEATURE_NAMES};
use pipeline::money::{Count, FeeMultiplier, Money, Price};
use pipeline::schema::strategy::{
    Execution, FeatureSpec, Risk, SelfTradePrevention, Sides, Signals, TimeInForce,
};
use pipeline::schema::Outcome;
use pipeline::snapshot::{Line, Marker, MarkerKind, SnapshotRecord};
use pipeline::MarketTicker;
use strategy::replay::{replay, ReplayConfig};
use strategy::RnnEdge;

struct Shifted;
impl EdgeModel for Shifted {
    fn step(&mut self, _m: &MarketTicker, x: &[f32], _reset: bool) -> f64 {
        // A model that sometimes disagrees with the mid, so orders do happen.
        let mid = f64::from(x[0]);
        (mid + 0.06 * (f64::from(x[5]) * 40.0).tanh()).clamp(0.01, 0.99)
    }
    fn forget(&mut self, _m: &MarketTicker) {}
}

const T0: i64 = 1_778_457_600_000;
const MARKET_MS: i64 = 900_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let days: i64 = args.get(1).map_or(1, |s| s.parse().expect("days"));
    let grid: i64 = args.get(2).map_or(100, |s| s.parse().expect("grid_ms"));
    let markets = days * 96;
    let mut labels = BTreeMap::new();
    let name = |i: i64| MarketTicker::from(format!("KXBENCH-{i:05}"));
    for i in 0..markets {
        labels.insert(
            name(i),
            if i % 3 == 0 {
                Outcome::Yes
            } else {
                Outcome::No
            },
        );
    }
    // One market open at a time (as KXBTC15M), a random-walk mid, 2¢ spread.
    let lines = (0..markets).flat_map(move |i| {
        let open = T0 + i * MARKET_MS;
        let close = open + MARKET_MS;
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15 ^ i as u64;
        let mut mid: i64 = 50;
        (0..MARKET_MS / grid)
            .map(move |j| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (s >> 60) == 0 {
                    mid = (mid + if (s >> 59) & 1 == 0 { 1 } else { -1 }).clamp(5, 93);
                }
                let p = |c: i64| Price::from_cents(c).unwrap();
                Line::Snapshot(
                    SnapshotRecord::from_book(
                        open + j * grid,
                        name(i),
                        Some((p(mid), Count::from_contracts(50))),
                        Some((p(100 - mid - 2), Count::from_contracts(50))),
                    )
                    .unwrap()
                    .with_close_ts_ms(Some(close)),
                )
            })
            .chain(std::iter::once(Line::Marker(Marker::new(
                close,
                name(i),
                MarkerKind::Closed,
                None,
            ))))
    });
    let specs: Vec<FeatureSpec> = FEATURE_NAMES
        .iter()
        .map(|n| FeatureSpec {
            name: n.to_string(),
            mean: 0.0,
            std: 1.0,
        })
        .collect();
    let signals = Signals {
        min_edge: Money::from_cents(2),
        min_price: Price::from_cents(5).unwrap(),
        max_price: Price::from_cents(95).unwrap(),
        max_spread: Price::from_cents(3).unwrap(),
        min_seconds_to_close: 60,
        max_seconds_to_close: Some(840),
        sides: Sides::Both,
        min_ask_size: None,
    };
    let execution = Execution {
        limit_offset: Price::ZERO,
        time_in_force: TimeInForce::ImmediateOrCancel,
        contracts_per_order: Count::from_contracts(5),
        post_only: false,
        expiration_s: None,
        self_trade_prevention: SelfTradePrevention::TakerAtCross,
    };
    let risk = Risk {
        max_contracts_per_market: Count::from_contracts(20),
        max_open_markets: 2,
        max_orders_per_minute: 30,
        cooldown_s: 15,
        max_daily_loss: Money::from_cents(5_000),
        no_entry_last_s: 60,
        max_total_exposure: Some(Money::from_cents(10_000)),
    };
    let rnn = RnnEdge::new(
        FeatureConfig::default(),
        Normalizer::from_specs(&specs).unwrap(),
        Box::new(Shifted),
        signals,
        execution.clone(),
        FeeMultiplier::ONE,
    );
    let start = Instant::now();
    let (r, _) = replay(
        rnn,
        &risk,
        &execution,
        ReplayConfig::default(),
        &labels,
        &BTreeMap::new(),
        lines,
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} lines ({} days, {} markets, {grid} ms grid) in {secs:.2} s: {:.0} lines/s, 1 thread; \
         {} model steps, {} orders, {} fills",
        r.lines,
        days,
        markets,
        r.lines as f64 / secs,
        r.journal.decisions.len(),
        r.journal.orders.len(),
        r.journal.fills.len()
    );
}
