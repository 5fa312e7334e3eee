//! A strategy that wants to buy on every row never exceeds any risk limit: one test per limit,
//! each checked by an independent bookkeeper on every order, and each showing the limit bound
//! (the gate refused or reduced orders because of it).

mod common;

use common::*;
use pipeline::money::Money;
use pipeline::schema::strategy::Risk;
use strategy::risk::RiskLimit;
use strategy::runtime::Journal;
use strategy::Side;

fn run(risk: Risk, side: Side, count: i64) -> (Journal, Checker) {
    let (lines, labels) = generated(6, 300, 40, T0);
    run_checked(
        AlwaysBuy {
            side,
            count: n(count),
            offset: 0,
        },
        risk,
        &lines,
        labels,
    )
}

fn assert_bound(j: &Journal, ch: &Checker, limit: RiskLimit) {
    assert!(
        ch.violations.is_empty(),
        "{:#?}",
        &ch.violations[..ch.violations.len().min(5)]
    );
    assert!(ch.orders > 0, "no orders at all");
    let refused = j.refusals().get(&limit).copied().unwrap_or(0);
    let reduced = j.reduced.get(&limit).copied().unwrap_or(0);
    assert!(
        refused + reduced > 0,
        "{limit} never bound: refusals {:?}, reduced {:?}",
        j.refusals(),
        j.reduced
    );
}

#[test]
fn max_contracts_per_market() {
    let risk = Risk {
        max_contracts_per_market: n(12),
        ..loose_risk()
    };
    let (j, ch) = run(risk, Side::Yes, 5);
    assert_bound(&j, &ch, RiskLimit::MaxContractsPerMarket);
    // 5 + 5 + a reduced 2: the reduction happened and no market holds more than 12.
    assert!(j.reduced.contains_key(&RiskLimit::MaxContractsPerMarket));
    let mut held = std::collections::BTreeMap::new();
    for f in &j.fills {
        *held
            .entry(f.market.clone())
            .or_insert(pipeline::money::Count::ZERO) += f.count;
    }
    assert!(held.values().all(|&h| h <= n(12)), "{held:?}");
}

#[test]
fn max_open_markets() {
    let risk = Risk {
        max_open_markets: 2,
        ..loose_risk()
    };
    let (j, ch) = run(risk, Side::Yes, 1);
    assert_bound(&j, &ch, RiskLimit::MaxOpenMarkets);
}

#[test]
fn max_orders_per_minute() {
    let risk = Risk {
        max_orders_per_minute: 7,
        ..loose_risk()
    };
    let (j, ch) = run(risk, Side::Yes, 1);
    assert_bound(&j, &ch, RiskLimit::MaxOrdersPerMinute);
}

#[test]
fn cooldown() {
    let risk = Risk {
        cooldown_s: 15,
        ..loose_risk()
    };
    let (j, ch) = run(risk, Side::No, 1);
    assert_bound(&j, &ch, RiskLimit::Cooldown);
}

#[test]
fn max_daily_loss() {
    // Buying at the ask and marking at the bid loses the spread and the fee at once; markets
    // that settle against us lose the rest.
    let risk = Risk {
        max_daily_loss: Money::from_cents(500),
        ..loose_risk()
    };
    let (lines, mut labels) = generated(6, 300, 40, T0);
    labels
        .values_mut()
        .for_each(|o| *o = pipeline::schema::Outcome::No);
    let buy = AlwaysBuy {
        side: Side::Yes,
        count: n(5),
        offset: 0,
    };
    let (j, ch) = run_checked(buy, risk.clone(), &lines, labels.clone());
    assert_bound(&j, &ch, RiskLimit::MaxDailyLoss);
    // The next UTC day starts afresh: the same markets a day later trade again.
    let day = 86_400_000;
    let mut two_days = lines.clone();
    let (later, _) = generated(6, 300, 40, T0 + day);
    two_days.extend(later.into_iter().map(|l| match l {
        pipeline::snapshot::Line::Snapshot(mut r) => {
            r.market_ticker = tk(&format!("{}-D2", r.market_ticker));
            pipeline::snapshot::Line::Snapshot(r)
        }
        pipeline::snapshot::Line::Marker(mut m) => {
            m.market_ticker = tk(&format!("{}-D2", m.market_ticker));
            pipeline::snapshot::Line::Marker(m)
        }
    }));
    let labels2 = labels
        .iter()
        .flat_map(|(k, v)| [(k.clone(), *v), (tk(&format!("{k}-D2")), *v)])
        .collect();
    let buy = AlwaysBuy {
        side: Side::Yes,
        count: n(5),
        offset: 0,
    };
    let (j2, ch2) = run_checked(buy, risk, &two_days, labels2);
    assert!(ch2.violations.is_empty(), "{:?}", ch2.violations);
    assert!(
        j2.orders.iter().any(|o| o.decision_ts_ms >= T0 + day),
        "day two never traded"
    );
}

#[test]
fn no_entry_last_seconds() {
    let risk = Risk {
        no_entry_last_s: 120,
        ..loose_risk()
    };
    let (j, ch) = run(risk, Side::Yes, 1);
    assert_bound(&j, &ch, RiskLimit::NoEntryLast);
    // Nothing was even decided into an order in the last 120 s of any market.
    for o in &j.orders {
        assert!(
            o.close_ts_ms.unwrap() - o.decision_ts_ms >= 120_000,
            "{o:?}"
        );
    }
}

#[test]
fn max_total_exposure() {
    let risk = Risk {
        max_total_exposure: Some(Money::from_cents(1_000)),
        ..loose_risk()
    };
    let (j, ch) = run(risk, Side::Yes, 5);
    assert_bound(&j, &ch, RiskLimit::MaxTotalExposure);
}

#[test]
fn all_limits_together() {
    let risk = Risk {
        max_contracts_per_market: n(20),
        max_open_markets: 2,
        max_orders_per_minute: 30,
        cooldown_s: 15,
        max_daily_loss: Money::from_cents(5_000),
        no_entry_last_s: 60,
        max_total_exposure: Some(Money::from_cents(10_000)),
    };
    let (_, ch) = run(risk, Side::Yes, 5);
    assert!(ch.violations.is_empty(), "{:?}", ch.violations);
    assert!(ch.orders > 0);
}
