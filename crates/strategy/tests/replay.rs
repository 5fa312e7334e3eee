//! The replay execution model: when, at what price and for how much an order fills.

mod common;

use std::collections::BTreeMap;

use common::*;
use pipeline::money::{Count, Price};
use pipeline::schema::strategy::TimeInForce;
use pipeline::schema::Outcome;
use pipeline::snapshot::{Line, MarkerKind};
use pipeline::MarketTicker;
use strategy::replay::{replay, ReplayConfig, ReplayResult};
use strategy::runtime::Strategy;
use strategy::{Latency, Side};

const M: &str = "KXT-A";
const CLOSE: i64 = T0 + 900_000;

fn run<S: Strategy>(s: S, cfg: ReplayConfig, lines: Vec<Line>) -> ReplayResult {
    let labels: BTreeMap<MarketTicker, Outcome> = [(tk(M), Outcome::Yes)].into();
    replay(
        s,
        &loose_risk(),
        &execution(5),
        cfg,
        &labels,
        &BTreeMap::new(),
        lines,
    )
    .unwrap()
    .0
}

fn buy(ts: i64, side: Side, count: i64, limit_cents: i64) -> (String, i64, Side, Count, Price) {
    (M.to_string(), ts, side, n(count), c(limit_cents))
}

#[test]
fn executes_at_the_next_rows_ask_never_at_the_decision_rows() {
    // Decision at T (ask 44); the next row's ask is 46.
    let lines = vec![
        row(M, T0, 42, 10, 44, 10, CLOSE),
        row(M, T0 + 1000, 44, 10, 46, 10, CLOSE),
        row(M, T0 + 2000, 44, 10, 46, 10, CLOSE),
    ];
    // Limit 44 (the decision row's ask): the book moved away, nothing fills.
    let r = run(
        Scripted {
            buys: vec![buy(T0, Side::Yes, 5, 44)],
        },
        ReplayConfig::default(),
        lines.clone(),
    );
    assert!(r.journal.fills.is_empty(), "{:?}", r.journal.fills);
    assert_eq!(r.journal.cancels.len(), 1);
    // Limit 47: fills at the next row's displayed ask, 46 (not the limit, not the mid 45).
    let r = run(
        Scripted {
            buys: vec![buy(T0, Side::Yes, 5, 47)],
        },
        ReplayConfig::default(),
        lines,
    );
    let f = &r.journal.fills;
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].ts_ms, f[0].price, f[0].count),
        (T0 + 1000, c(46), n(5))
    );
    assert_eq!(f[0].decision_ts_ms, T0);
}

#[test]
fn no_side_buys_at_one_minus_the_yes_bid() {
    let lines = vec![
        row(M, T0, 42, 3, 44, 10, CLOSE),
        row(M, T0 + 1000, 42, 3, 44, 10, CLOSE),
    ];
    let r = run(
        Scripted {
            buys: vec![buy(T0, Side::No, 5, 60)],
        },
        ReplayConfig::default(),
        lines,
    );
    let f = &r.journal.fills;
    // NO ask = 100 − 42 = 58, size = the YES bid's 3; the rest is cancelled (IOC).
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].price, f[0].count, f[0].side), (c(58), n(3), Side::No));
    assert_eq!(r.journal.cancels.len(), 1);
}

#[test]
fn at_most_the_displayed_size_and_walks_the_ladder_up_to_the_limit() {
    // YES asks from the NO bids: 44 × 2, 45 × 3, 47 × 50.
    let book = |ts| ladder_row(M, ts, &[(42, 10)], &[(56, 2), (55, 3), (53, 50)], CLOSE);
    let lines = vec![book(T0), book(T0 + 1000)];
    let r = run(
        Scripted {
            buys: vec![buy(T0, Side::Yes, 20, 45)],
        },
        ReplayConfig::default(),
        lines,
    );
    let got: Vec<(Price, Count)> = r.journal.fills.iter().map(|f| (f.price, f.count)).collect();
    assert_eq!(got, vec![(c(44), n(2)), (c(45), n(3))]);
    assert_eq!(
        r.journal.cancels.len(),
        1,
        "the 15 beyond the limit are cancelled"
    );
}

#[test]
fn fill_or_kill_fills_all_or_nothing() {
    let book = |ts| ladder_row(M, ts, &[(42, 10)], &[(56, 2), (55, 3)], CLOSE);
    let lines = vec![book(T0), book(T0 + 1000), book(T0 + 2000)];
    let mut exec = execution(5);
    exec.time_in_force = TimeInForce::FillOrKill;
    let labels: BTreeMap<MarketTicker, Outcome> = [(tk(M), Outcome::Yes)].into();
    let script = Scripted {
        buys: vec![buy(T0, Side::Yes, 6, 45), buy(T0 + 1000, Side::Yes, 5, 45)],
    };
    let (r, _) = replay(
        script,
        &loose_risk(),
        &exec,
        ReplayConfig::default(),
        &labels,
        &BTreeMap::new(),
        lines,
    )
    .unwrap();
    // 6 wanted, 5 available: killed; then 5 wanted, 5 available: filled.
    let total: Count = r.journal.fills.iter().map(|f| f.count).sum();
    assert_eq!(total, n(5));
    assert!(r.journal.fills.iter().all(|f| f.order_id == 2));
}

#[test]
fn liquidity_we_took_is_not_reused_until_the_book_refreshes() {
    let lines = vec![
        row(M, T0, 42, 10, 44, 4, CLOSE),
        row(M, T0 + 1000, 42, 10, 44, 4, CLOSE), // first order takes 3 of the 4
        row(M, T0 + 2000, 42, 10, 44, 4, CLOSE), // same 4 shown: only 1 left for us
        row(M, T0 + 3000, 42, 10, 44, 6, CLOSE), // size changed: refreshed, 6 available
    ];
    let r = run(
        Scripted {
            buys: vec![
                buy(T0, Side::Yes, 3, 44),
                buy(T0 + 1000, Side::Yes, 3, 44),
                buy(T0 + 2000, Side::Yes, 3, 44),
            ],
        },
        ReplayConfig::default(),
        lines,
    );
    let got: Vec<(i64, Count)> = r.journal.fills.iter().map(|f| (f.ts_ms, f.count)).collect();
    assert_eq!(
        got,
        vec![(T0 + 1000, n(3)), (T0 + 2000, n(1)), (T0 + 3000, n(3))]
    );
}

#[test]
fn no_fill_across_a_marker_or_on_an_untrusted_book() {
    let lines = vec![
        row(M, T0, 42, 10, 44, 10, CLOSE),
        marker(M, T0 + 500, MarkerKind::Gap),
        marker(M, T0 + 1000, MarkerKind::Resync),
        row(M, T0 + 1000, 42, 10, 44, 10, CLOSE),
        marker(M, T0 + 1500, MarkerKind::Gap),
        // A row inside the outage (not from the recorder): untrusted, never traded.
        row(M, T0 + 2000, 42, 10, 44, 10, CLOSE),
        row(M, T0 + 3000, 42, 10, 44, 10, CLOSE),
    ];
    let r = run(
        Scripted {
            buys: vec![
                buy(T0, Side::Yes, 5, 44),
                buy(T0 + 1000, Side::Yes, 5, 44),
                buy(T0 + 2000, Side::Yes, 5, 44),
            ],
        },
        ReplayConfig::default(),
        lines,
    );
    assert!(r.journal.fills.is_empty(), "{:?}", r.journal.fills);
    assert_eq!(
        r.journal.orders.len(),
        2,
        "the untrusted row's intent is never sent"
    );
    assert!(r
        .journal
        .cancels
        .iter()
        .all(|(_, why)| why.contains("marker")));
}

#[test]
fn no_fill_across_a_silence_without_marker() {
    let lines = vec![
        row(M, T0, 42, 10, 44, 10, CLOSE),
        row(M, T0 + 120_000, 42, 10, 44, 10, CLOSE),
    ];
    let r = run(
        Scripted {
            buys: vec![buy(T0, Side::Yes, 5, 44)],
        },
        ReplayConfig::default(),
        lines,
    );
    assert!(r.journal.fills.is_empty());
}

#[test]
fn latency_in_rows_and_milliseconds() {
    let lines: Vec<Line> = (0..6)
        .map(|i| row(M, T0 + i * 1000, 40 + i, 10, 42 + i, 10, CLOSE))
        .collect();
    let at = |cfg: ReplayConfig| {
        let r = run(
            Scripted {
                buys: vec![buy(T0, Side::Yes, 1, 60)],
            },
            cfg,
            lines.clone(),
        );
        (r.journal.fills[0].ts_ms, r.journal.fills[0].price)
    };
    assert_eq!(at(ReplayConfig::default()), (T0 + 1000, c(43)));
    let later = ReplayConfig {
        latency: Latency::default().one_more_step(),
        ..ReplayConfig::default()
    };
    assert_eq!(at(later), (T0 + 2000, c(44)));
    let ms = ReplayConfig {
        latency: Latency { rows: 1, ms: 2500 },
        ..ReplayConfig::default()
    };
    assert_eq!(at(ms), (T0 + 3000, c(45)));
}

#[test]
fn fills_never_at_mid_never_above_limit_never_beyond_displayed_size() {
    // Every row, buy YES with a limit 1¢ above the decision row's ask, on wandering books.
    let (lines, labels) = generated(4, 200, 30, T0);
    let by_ts: BTreeMap<(MarketTicker, i64), pipeline::snapshot::SnapshotRecord> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Snapshot(r) => Some(((r.market_ticker.clone(), r.ts_ms), r.clone())),
            _ => None,
        })
        .collect();
    let (r, _) = replay(
        AlwaysBuy {
            side: Side::Yes,
            count: n(7),
            offset: 1,
        },
        &loose_risk(),
        &execution(7),
        ReplayConfig::default(),
        &labels,
        &BTreeMap::new(),
        lines,
    )
    .unwrap();
    assert!(!r.journal.fills.is_empty());
    let orders: BTreeMap<u64, &strategy::Order> =
        r.journal.orders.iter().map(|o| (o.id, o)).collect();
    let mut per_row: BTreeMap<(MarketTicker, i64), Count> = BTreeMap::new();
    for f in &r.journal.fills {
        let row = &by_ts[&(f.market.clone(), f.ts_ms)];
        assert!(f.price <= orders[&f.order_id].limit, "{f:?}");
        assert_eq!(Some(f.price), row.yes_ask, "{f:?}");
        assert_ne!(Some(f.price), row.yes_mid, "{f:?}");
        assert!(f.ts_ms > f.decision_ts_ms);
        *per_row
            .entry((f.market.clone(), f.ts_ms))
            .or_insert(Count::ZERO) += f.count;
    }
    for (k, total) in per_row {
        assert!(total <= by_ts[&k].yes_ask_size.unwrap(), "{k:?}: {total:?}");
    }
}

#[test]
fn lines_a_little_out_of_order_are_reordered_more_is_an_error_naming_the_market() {
    // A `closed` marker stamped with the close time, written after another market's row of
    // a later tick; and a resync with its row, which must stay in that order.
    let lines = vec![
        row(M, T0, 42, 10, 44, 10, CLOSE),
        row("KXT-B", T0 + 1000, 42, 10, 44, 10, CLOSE),
        marker(M, T0 + 500, MarkerKind::Gap),
        marker(M, T0 + 1000, MarkerKind::Resync),
        row(M, T0 + 1000, 42, 10, 44, 10, CLOSE),
        row(M, T0 + 2000, 42, 10, 44, 10, CLOSE),
    ];
    let r = run(
        Scripted {
            buys: vec![buy(T0, Side::Yes, 5, 44), buy(T0 + 1000, Side::Yes, 5, 44)],
        },
        ReplayConfig::default(),
        lines,
    );
    // The first order met the (re-ordered) gap and never filled; the second filled after the
    // resync, so the resync was applied before its row.
    assert_eq!(r.journal.orders.len(), 2);
    let f = &r.journal.fills;
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].order_id, f[0].ts_ms), (2, T0 + 2000));

    let late = vec![
        row(M, T0 + 60_000, 42, 10, 44, 10, CLOSE),
        row("KXT-B", T0, 42, 10, 44, 10, CLOSE),
    ];
    let err = replay(
        Scripted { buys: vec![] },
        &loose_risk(),
        &execution(5),
        ReplayConfig::default(),
        &BTreeMap::new(),
        &BTreeMap::new(),
        late.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("KXT-B"), "{err}");
    // With no window, even a little disorder is refused.
    let strict = ReplayConfig {
        reorder_window_ms: 0,
        ..ReplayConfig::default()
    };
    let mut small = late;
    small[0] = row(M, T0 + 1000, 42, 10, 44, 10, CLOSE);
    assert!(replay(
        Scripted { buys: vec![] },
        &loose_risk(),
        &execution(5),
        strict,
        &BTreeMap::new(),
        &BTreeMap::new(),
        small,
    )
    .is_err());
}

#[test]
fn resting_orders_are_refused_naming_the_field() {
    let mut exec = execution(5);
    exec.time_in_force = TimeInForce::GoodTillCanceled;
    let err = replay(
        Scripted { buys: vec![] },
        &loose_risk(),
        &exec,
        ReplayConfig::default(),
        &BTreeMap::new(),
        &BTreeMap::new(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("execution.time_in_force"), "{err}");
}

#[test]
fn unlabelled_markets_stay_open() {
    let lines = vec![
        row(M, T0, 42, 10, 44, 10, CLOSE),
        row(M, T0 + 1000, 42, 10, 44, 10, CLOSE),
        marker(M, CLOSE, MarkerKind::Closed),
    ];
    let (r, _) = replay(
        Scripted {
            buys: vec![buy(T0, Side::Yes, 5, 44)],
        },
        &loose_risk(),
        &execution(5),
        ReplayConfig::default(),
        &BTreeMap::new(),
        &BTreeMap::new(),
        lines,
    )
    .unwrap();
    assert_eq!(r.journal.fills.len(), 1);
    assert!(r.journal.settlements.is_empty());
    assert_eq!(r.open_markets(), vec![tk(M)]);
}

#[test]
fn bad_replay_settings_are_named() {
    for (cfg, field) in [
        (
            ReplayConfig {
                latency: Latency { rows: 0, ms: 0 },
                ..ReplayConfig::default()
            },
            "latency.rows",
        ),
        (
            ReplayConfig {
                latency: Latency { rows: 1, ms: -5 },
                ..ReplayConfig::default()
            },
            "latency_ms",
        ),
        (
            ReplayConfig {
                split_gap_ms: 0,
                ..ReplayConfig::default()
            },
            "split_gap_ms",
        ),
    ] {
        let err = replay(
            Scripted { buys: vec![] },
            &loose_risk(),
            &execution(5),
            cfg,
            &BTreeMap::new(),
            &BTreeMap::new(),
            Vec::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn a_repeated_row_of_the_decision_instant_is_not_the_next_book() {
    let lines = vec![
        row(M, T0, 42, 10, 44, 10, CLOSE),
        row(M, T0, 40, 10, 42, 10, CLOSE), // same instant again (not from the recorder)
        row(M, T0 + 1000, 42, 10, 44, 10, CLOSE),
    ];
    let r = run(
        Scripted {
            buys: vec![buy(T0, Side::Yes, 1, 44)],
        },
        ReplayConfig::default(),
        lines,
    );
    let f = &r.journal.fills;
    assert!(!f.is_empty());
    assert!(
        f.iter().all(|f| f.ts_ms == T0 + 1000 && f.price == c(44)),
        "{f:?}"
    );
}
