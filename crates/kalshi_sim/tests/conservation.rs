//! Acceptance: a generated day of markets with seeded random user orders of every kind; the
//! books balance to the micro-dollar.
//!
//! Identities checked (money is fixed-point, so every equality is exact):
//! 1. At every checkpoint, for the exchange as a whole:
//!    `Σ initial cash = Σ cash (users, maker, noise trader) + fees collected
//!    + Σ over markets of open interest × $1` (the collateral held for open pairs).
//! 2. Per market, Σ positions over all accounts = 0 (every contract has a counterparty), and
//!    open interest = Σ of the long (YES) positions.
//! 3. Users never hold negative cash nor reserve more than they have.
//! 4. At the end, for each user, recomputed from its fills and settlements alone:
//!    `initial cash = final cash + fees paid + cost of trades − netting returns
//!    − settlement payouts`,
//!    where cost of trades = Σ fill count × the price of the leg bought (YES price for a
//!    bid, 1 − YES price for an ask), netting returns = $1 per contract bought against an
//!    opposite holding (replayed from the fills), payouts = Σ settlement revenue.
//! 5. At the end: every market finalized with result = (close ≥ strike), no position left
//!    anywhere, no resting order on a non-active market, each order's fees = Σ its fills'
//!    fees, and fees collected = Σ fees paid by all accounts.

use std::collections::BTreeMap;

use kalshi_sim::engine::*;
use pipeline::money::{Count, FeeMultiplier, Money, Price};
use pipeline::ClientOrderId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const START: i64 = 1_790_000_100_000;
const MIN15: i64 = 15 * 60_000;

#[derive(Default, Debug)]
struct Tally {
    placed: BTreeMap<&'static str, u32>,
    rejected: BTreeMap<&'static str, u32>,
    cancels: u32,
    cancel_alls: u32,
}

fn random_request(
    rng: &mut ChaCha8Rng,
    e: &Engine,
    user: usize,
    coids: &mut Vec<String>,
    live_coids: &[String],
    now: i64,
) -> OrderRequest {
    // Mostly the active market; sometimes one that is not open (must be refused).
    let active: Vec<&MarketInfo> = e
        .markets()
        .filter(|m| m.status == MarketStatus::Active)
        .collect();
    let others: Vec<&MarketInfo> = e
        .markets()
        .filter(|m| m.status != MarketStatus::Active)
        .collect();
    let m = if !active.is_empty() && (others.is_empty() || rng.gen::<f64>() < 0.95) {
        active[rng.gen_range(0..active.len())]
    } else {
        others[rng.gen_range(0..others.len())]
    };
    let side = if rng.gen_bool(0.5) {
        Side::Bid
    } else {
        Side::Ask
    };
    let st = e.ticker_state(m.ticker.as_str()).unwrap();
    let anchor = match side {
        Side::Bid => st.yes_ask.map(|x| x.0),
        Side::Ask => st.yes_bid.map(|x| x.0),
    }
    .unwrap_or(Price::from_cents(50).unwrap());
    let price = match rng.gen_range(0..10) {
        // Anywhere on the cent grid.
        0 => Price::from_cents(rng.gen_range(1..100)).unwrap(),
        // A deci-cent price (valid only in the tapered ends).
        1 => Price::from_micros(rng.gen_range(1..1000) * 1000).unwrap(),
        // Near the touch, crossing or not.
        _ => {
            let off = rng.gen_range(-4i64..=4) * 10_000;
            Price::from_micros((anchor.micros() + off).clamp(10_000, 990_000)).unwrap()
        }
    };
    let count = if rng.gen_bool(0.3) {
        Count::from_centis(rng.gen_range(1..3000))
    } else {
        Count::from_contracts(rng.gen_range(1..40))
    };
    let mut req = OrderRequest::limit(&m.ticker, side, price, count);
    req.time_in_force = match rng.gen_range(0..4) {
        0 | 1 => TimeInForce::GoodTillCanceled,
        2 => TimeInForce::ImmediateOrCancel,
        _ => TimeInForce::FillOrKill,
    };
    if req.time_in_force == TimeInForce::GoodTillCanceled {
        req.post_only = rng.gen_bool(0.15);
        if rng.gen_bool(0.15) {
            req.expiration_ms = Some(now + rng.gen_range(1..400) * 1000);
        }
    }
    if req.time_in_force == TimeInForce::ImmediateOrCancel && rng.gen_bool(0.2) {
        req.reduce_only = true;
    }
    if rng.gen_bool(0.3) {
        req.self_trade_prevention = SelfTradePrevention::Maker;
    }
    if rng.gen_bool(0.8) {
        let c = if !live_coids.is_empty() && rng.gen_bool(0.1) {
            // Reuse the id of an order still resting: must be refused with 409.
            live_coids[rng.gen_range(0..live_coids.len())].clone()
        } else if !coids.is_empty() && rng.gen_bool(0.05) {
            // Reuse an old id: fine once that order is no longer live.
            coids[rng.gen_range(0..coids.len())].clone()
        } else {
            let c = format!("u{user}-{}", coids.len());
            coids.push(c.clone());
            c
        };
        req.client_order_id = Some(ClientOrderId::new(c));
    }
    req
}

fn kind(req: &OrderRequest) -> &'static str {
    match req.time_in_force {
        TimeInForce::GoodTillCanceled if req.post_only => "gtc_post_only",
        TimeInForce::GoodTillCanceled if req.expiration_ms.is_some() => "gtc_expiring",
        TimeInForce::GoodTillCanceled => "gtc",
        TimeInForce::ImmediateOrCancel if req.reduce_only => "ioc_reduce_only",
        TimeInForce::ImmediateOrCancel => "ioc",
        TimeInForce::FillOrKill => "fok",
    }
}

fn error_kind(e: &OrderError) -> &'static str {
    match e {
        OrderError::MarketNotFound(_) => "market_not_found",
        OrderError::MarketInactive { .. } => "market_inactive",
        OrderError::InvalidPrice(_) => "invalid_price",
        OrderError::InvalidCount(_) => "invalid_count",
        OrderError::PostOnlyCross => "post_only_cross",
        OrderError::DuplicateClientOrderId(_) => "duplicate_client_order_id",
        OrderError::InsufficientBalance { .. } => "insufficient_balance",
        OrderError::InvalidOrder(_) => "invalid_order",
        OrderError::OrderNotFound(_) => "order_not_found",
        OrderError::UnknownAccount => "unknown_account",
    }
}

fn check_exchange_invariants(e: &Engine, users: &[AccountId], when: i64) {
    let initial: Money = e.accounts().map(|(_, a)| a.initial).sum();
    let cash: Money = e.accounts().map(|(_, a)| a.cash).sum();
    let mut collateral = Money::ZERO;
    for m in e.markets() {
        let positions = e.positions_in(m.ticker.as_str());
        let sum: Count = positions.iter().map(|(_, p)| p.position).sum();
        assert_eq!(
            sum,
            Count::ZERO,
            "{}: positions do not net to zero at {when}",
            m.ticker
        );
        let longs: Count = positions
            .iter()
            .map(|(_, p)| p.position.max(Count::ZERO))
            .sum();
        let oi = e.ticker_state(m.ticker.as_str()).unwrap().open_interest;
        assert_eq!(oi, longs, "{}: open interest at {when}", m.ticker);
        collateral += Money::notional(Price::ONE, oi);
    }
    assert_eq!(
        initial,
        cash + e.fees_collected() + collateral,
        "exchange-wide conservation at {when}"
    );
    for u in users {
        let a = e.account(*u).unwrap();
        assert!(
            a.cash >= Money::ZERO,
            "user {u:?} cash {} at {when}",
            a.cash
        );
        assert!(
            a.reserved >= Money::ZERO && a.cash >= a.reserved,
            "user {u:?} reserved {} of {} at {when}",
            a.reserved,
            a.cash
        );
    }
}

#[test]
fn a_generated_day_balances_to_the_cent() {
    let markets = 96;
    let cfg = EngineConfig {
        seed: 2026,
        start_ms: START,
        market_duration_ms: MIN15,
        listing_lead_ms: MIN15,
        fee_type: FeeType::QuadraticWithMakerFees,
        fee_multiplier: FeeMultiplier::ONE,
        maker: MakerConfig {
            planted_edge: 0.1,
            ..MakerConfig::default()
        },
        ..EngineConfig::default()
    };
    let path = RandomWalk::new(cfg.seed, START, 95_000.0, 9e-5, 1000);
    let mut e = Engine::new(cfg, Box::new(path));
    // Cents: $5,000, $5,000, $2,000 and $50 (the last one runs out).
    let balances = [500_000i64, 500_000, 200_000, 5_000];
    let users: Vec<AccountId> = balances
        .iter()
        .map(|c| e.add_user(Money::from_cents(*c)))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let mut coids: Vec<Vec<String>> = vec![Vec::new(); users.len()];
    let mut tally = Tally::default();
    let end = START + markets * MIN15;
    let mut t = START;
    let mut events = 0usize;
    while t < end {
        t += 1000;
        events += e.advance_to(t).len();
        // About one user action every 4 seconds.
        if rng.gen::<f64>() < 0.25 {
            let ui = rng.gen_range(0..users.len());
            let u = users[ui];
            match rng.gen_range(0..10) {
                0 | 1 => {
                    let live: Vec<String> = e
                        .orders_of(u)
                        .filter(|o| o.is_live())
                        .map(|o| o.id.to_string())
                        .collect();
                    if !live.is_empty() {
                        let id = &live[rng.gen_range(0..live.len())];
                        e.cancel_order(u, id).unwrap();
                        tally.cancels += 1;
                    }
                }
                2 if rng.gen_bool(0.05) => {
                    e.cancel_all(u, None);
                    tally.cancel_alls += 1;
                }
                _ => {
                    let live: Vec<String> = e
                        .orders_of(u)
                        .filter(|o| o.is_live())
                        .filter_map(|o| o.client_order_id.as_ref().map(|c| c.to_string()))
                        .collect();
                    let req = random_request(&mut rng, &e, ui, &mut coids[ui], &live, t);
                    let k = kind(&req);
                    match e.place_order(u, req) {
                        Ok(_) => *tally.placed.entry(k).or_default() += 1,
                        Err(err) => *tally.rejected.entry(error_kind(&err)).or_default() += 1,
                    }
                }
            }
            events += e.take_events().len();
        }
        if t % 60_000 == 0 {
            check_exchange_invariants(&e, &users, t);
        }
    }
    // Let the last market settle.
    e.advance_to(end + 10_000);
    check_exchange_invariants(&e, &users, end + 10_000);
    eprintln!("{tally:?}; {events} events");

    // Every kind of order was placed and every refusal happened.
    for k in [
        "gtc",
        "gtc_post_only",
        "gtc_expiring",
        "ioc",
        "ioc_reduce_only",
        "fok",
    ] {
        assert!(
            tally.placed.get(k).copied().unwrap_or(0) > 0,
            "no {k} order placed: {tally:?}"
        );
    }
    for k in [
        "market_inactive",
        "invalid_price",
        "post_only_cross",
        "duplicate_client_order_id",
        "insufficient_balance",
    ] {
        assert!(
            tally.rejected.get(k).copied().unwrap_or(0) > 0,
            "no {k} refusal: {tally:?}"
        );
    }
    assert!(tally.cancels > 0 && tally.cancel_alls > 0);

    // 5. Markets all finalized with the right result; nothing left anywhere.
    let finalized: Vec<&MarketInfo> = e.markets().filter(|m| m.close_ms <= end).collect();
    assert_eq!(finalized.len(), markets as usize);
    let mut results = BTreeMap::new();
    for m in &finalized {
        assert_eq!(m.status, MarketStatus::Finalized, "{}", m.ticker);
        let want = if m.expiration_value_cents.unwrap() >= m.floor_strike_cents.unwrap() {
            MarketResult::Yes
        } else {
            MarketResult::No
        };
        assert_eq!(m.result, Some(want), "{}", m.ticker);
        *results.entry(want.as_str()).or_insert(0) += 1;
        assert!(
            e.resting_orders(m.ticker.as_str()).is_empty(),
            "{}",
            m.ticker
        );
        for (acct, p) in e.positions_in(m.ticker.as_str()) {
            assert!(
                p.position.is_zero() && p.basis == Money::ZERO,
                "{acct:?} {}",
                m.ticker
            );
        }
        assert_eq!(
            e.ticker_state(m.ticker.as_str()).unwrap().open_interest,
            Count::ZERO
        );
    }
    assert!(
        results.len() == 2,
        "both results occur over a day: {results:?}"
    );
    for m in e.markets() {
        if m.status != MarketStatus::Active {
            assert!(
                e.resting_orders(m.ticker.as_str()).is_empty(),
                "{}",
                m.ticker
            );
        }
    }

    // 4. Per-user identity, recomputed from fills and settlements only.
    let mut total_user_fees = Money::ZERO;
    let mut saw_netting = false;
    let mut saw_maker_fill = false;
    for u in &users {
        let a = e.account(*u).unwrap();
        let mut cost = Money::ZERO;
        let mut fees = Money::ZERO;
        let mut netting = Money::ZERO;
        let mut held: BTreeMap<String, Count> = BTreeMap::new();
        let mut fees_by_order: BTreeMap<String, Money> = BTreeMap::new();
        for f in e.fills_of(*u) {
            let leg = match f.side {
                Side::Bid => f.yes_price,
                Side::Ask => f.yes_price.complement(),
            };
            cost += Money::notional(leg, f.count);
            fees += f.fee;
            *fees_by_order.entry(f.order_id.to_string()).or_default() += f.fee;
            let pos = held.entry(f.ticker.to_string()).or_default();
            let delta = match f.side {
                Side::Bid => f.count,
                Side::Ask => -f.count,
            };
            if pos.centis().signum() * delta.centis().signum() < 0 {
                netting += Money::notional(Price::ONE, pos.abs().min(f.count));
            }
            *pos += delta;
            assert_eq!(*pos, f.post_position, "post_position of fill {}", f.fill_id);
            saw_maker_fill |= !f.is_taker;
        }
        saw_netting |= netting > Money::ZERO;
        let payouts: Money = e
            .settlements()
            .iter()
            .filter(|s| s.account == *u)
            .map(|s| s.revenue)
            .sum();
        assert_eq!(
            a.initial,
            a.cash + fees + cost - netting - payouts,
            "user {u:?}: initial = final + fees + cost of trades − netting − payouts"
        );
        // The engine's own ledger agrees with the recomputation.
        assert_eq!(
            (a.fees_paid, a.trade_costs, a.netting_credits, a.payouts),
            (fees, cost, netting, payouts)
        );
        assert_eq!(a.reserved, Money::ZERO, "nothing rests at the end");
        for o in e.orders_of(*u) {
            assert!(!o.is_live(), "order {} still resting", o.id);
            let f = fees_by_order
                .get(o.id.as_str())
                .copied()
                .unwrap_or(Money::ZERO);
            assert_eq!(o.fees(), f, "order {} fees", o.id);
            assert_eq!(
                o.fees(),
                o.fee_raw_cum.ceil_to_cent(),
                "accumulator of {}",
                o.id
            );
            assert!(
                o.remaining.is_zero() && o.filled <= o.initial,
                "order {} counts",
                o.id
            );
        }
        total_user_fees += fees;
    }
    assert!(saw_netting, "some user netted YES against NO");
    assert!(saw_maker_fill, "some user order was filled as maker");
    let all_fees: Money = e.accounts().map(|(_, a)| a.fees_paid).sum();
    assert_eq!(e.fees_collected(), all_fees);
    assert!(total_user_fees > Money::ZERO);
    // 1. at the end: no collateral left, so cash + fees = initial.
    let initial: Money = e.accounts().map(|(_, a)| a.initial).sum();
    let cash: Money = e.accounts().map(|(_, a)| a.cash).sum();
    assert_eq!(initial, cash + e.fees_collected());
}
