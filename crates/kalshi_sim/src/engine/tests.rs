use super::*;

fn p(c: i64) -> Price {
    Price::from_cents(c).unwrap()
}
fn n(c: i64) -> Count {
    Count::from_contracts(c)
}
fn usd(d: i64) -> Money {
    Money::from_cents(d * 100)
}

const START: i64 = 1_790_000_100_000; // a multiple of 60 s

/// Markets of one minute, no maker, no noise: the tests place every order.
fn quiet(cfg_edit: impl FnOnce(&mut EngineConfig)) -> (Engine, MarketTicker) {
    let mut cfg = EngineConfig {
        seed: 3,
        start_ms: START,
        market_duration_ms: 60_000,
        listing_lead_ms: 60_000,
        maker: MakerConfig {
            enabled: false,
            ..MakerConfig::default()
        },
        noise: NoiseConfig {
            takers_per_minute: 0.0,
            ..NoiseConfig::default()
        },
        ..EngineConfig::default()
    };
    cfg_edit(&mut cfg);
    let path = RandomWalk::new(cfg.seed, START, 100_000.0, 9e-5, 1000);
    let mut e = Engine::new(cfg, Box::new(path));
    e.advance_to(START);
    let t = e
        .markets()
        .find(|m| m.status == MarketStatus::Active)
        .expect("an active market")
        .ticker
        .clone();
    (e, t)
}

#[test]
fn lists_opens_closes_determines_settles_in_order() {
    let (mut e, t) = quiet(|_| {});
    let m = e.market(t.as_str()).unwrap().clone();
    assert_eq!(m.open_ms, START);
    assert_eq!(m.close_ms, START + 60_000);
    assert!(m.floor_strike_cents.is_some());
    // The next window is listed ahead (lead = one window).
    assert_eq!(e.markets().count(), 2);
    assert_eq!(
        e.markets().nth(1).unwrap().status,
        MarketStatus::Initialized
    );
    let ev = e.advance_to(START + 60_000);
    assert_eq!(e.market(t.as_str()).unwrap().status, MarketStatus::Closed);
    let kinds: Vec<(String, LifecycleKind)> = ev
        .iter()
        .filter_map(|x| match x {
            Event::Lifecycle { kind, market, .. } => Some((market.ticker.to_string(), *kind)),
            _ => None,
        })
        .collect();
    assert!(kinds.contains(&(
        e.markets().nth(1).unwrap().ticker.to_string(),
        LifecycleKind::Activated
    )));
    let ev = e.advance_to(START + 61_000);
    let m2 = e.market(t.as_str()).unwrap();
    assert_eq!(m2.status, MarketStatus::Determined);
    let value = m2.expiration_value_cents.unwrap();
    let strike = m2.floor_strike_cents.unwrap();
    assert_eq!(
        m2.result.unwrap(),
        if value >= strike {
            MarketResult::Yes
        } else {
            MarketResult::No
        }
    );
    assert!(ev.iter().any(|x| matches!(
        x,
        Event::Lifecycle {
            kind: LifecycleKind::Determined,
            ..
        }
    )));
    e.advance_to(START + 62_000);
    assert_eq!(
        e.market(t.as_str()).unwrap().status,
        MarketStatus::Finalized
    );
    // Windows chain: the next market's strike is this one's expiration value.
    let next = e.markets().nth(1).unwrap();
    assert_eq!(next.floor_strike_cents, Some(value));
}

#[test]
fn taker_fee_ten_at_fifty_cents_is_eighteen_cents() {
    let (mut e, t) = quiet(|_| {});
    let maker = e.add_user(usd(1000));
    let taker = e.add_user(usd(1000));
    e.place_order(maker, OrderRequest::limit(&t, Side::Ask, p(50), n(10)))
        .unwrap();
    let o = e
        .place_order(taker, OrderRequest::limit(&t, Side::Bid, p(50), n(10)))
        .unwrap();
    assert_eq!(o.status, OrderStatus::Executed);
    assert_eq!(o.taker_fees, Money::from_cents(18));
    assert_eq!(o.taker_fill_cost, usd(5));
    // Taker paid $5.00 + $0.18; maker (quadratic: no maker fee) paid $5.00 for NO.
    assert_eq!(
        e.account(taker).unwrap().cash,
        usd(1000) - usd(5) - Money::from_cents(18)
    );
    assert_eq!(e.account(maker).unwrap().cash, usd(995));
    let pos_t = e.positions_of(taker)[0].1.position;
    let pos_m = e.positions_of(maker)[0].1.position;
    assert_eq!((pos_t, pos_m), (n(10), -n(10)));
    assert_eq!(e.ticker_state(t.as_str()).unwrap().open_interest, n(10));
    assert_eq!(e.fees_collected(), Money::from_cents(18));
}

#[test]
fn maker_fees_and_fee_accumulator_converge() {
    let (mut e, t) = quiet(|c| c.fee_type = FeeType::QuadraticWithMakerFees);
    let maker = e.add_user(usd(1000));
    let taker = e.add_user(usd(1000));
    let rest = e
        .place_order(maker, OrderRequest::limit(&t, Side::Bid, p(50), n(10)))
        .unwrap();
    // Ten 1-lot takers: each alone would pay 2¢ (total 20¢), but the maker's order pays by
    // the accumulator: ceil(0.04375) = 5¢ in total.
    for _ in 0..10 {
        e.place_order(taker, OrderRequest::limit(&t, Side::Ask, p(50), n(1)))
            .unwrap();
    }
    let m = e.order(rest.id.as_str()).unwrap();
    assert_eq!(m.status, OrderStatus::Executed);
    assert_eq!(m.maker_fees, Money::from_cents(5));
    let taker_fees: Money = e.orders_of(taker).map(|o| o.taker_fees).sum();
    assert_eq!(taker_fees, Money::from_cents(20));
    let fill_fees: Money = e.fills_of(maker).map(|f| f.fee).sum();
    assert_eq!(fill_fees, Money::from_cents(5));
}

#[test]
fn price_time_priority_at_the_resting_price() {
    let (mut e, t) = quiet(|_| {});
    let a = e.add_user(usd(1000));
    let b = e.add_user(usd(1000));
    let c = e.add_user(usd(1000));
    let first = e
        .place_order(a, OrderRequest::limit(&t, Side::Ask, p(55), n(3)))
        .unwrap();
    let second = e
        .place_order(b, OrderRequest::limit(&t, Side::Ask, p(55), n(3)))
        .unwrap();
    let better = e
        .place_order(b, OrderRequest::limit(&t, Side::Ask, p(54), n(2)))
        .unwrap();
    e.take_events();
    let o = e
        .place_order(c, OrderRequest::limit(&t, Side::Bid, p(60), n(6)))
        .unwrap();
    assert_eq!(o.status, OrderStatus::Executed);
    // 2 at 0.54 (better price first), then 3 at 0.55 from the older order, then 1 from b.
    let fills: Vec<(Price, Count)> = e.fills_of(c).map(|f| (f.yes_price, f.count)).collect();
    assert_eq!(fills, vec![(p(54), n(2)), (p(55), n(3)), (p(55), n(1))]);
    assert_eq!(
        e.order(first.id.as_str()).unwrap().status,
        OrderStatus::Executed
    );
    assert_eq!(e.order(second.id.as_str()).unwrap().remaining, n(2));
    assert_eq!(
        e.order(better.id.as_str()).unwrap().status,
        OrderStatus::Executed
    );
    // Taker paid the makers' prices, not its limit.
    assert_eq!(o.taker_fill_cost, Money::from_cents(54 * 2 + 55 * 4));
    // The book shows b's 2 left at NO 0.45.
    let (yes, no) = e.book_levels(t.as_str()).unwrap();
    assert!(yes.is_empty());
    assert_eq!(no, vec![(p(45), n(2))]);
}

#[test]
fn deltas_are_published_in_no_leg_convention_with_owner() {
    let (mut e, t) = quiet(|_| {});
    let a = e.add_user(usd(100));
    e.take_events();
    let mut req = OrderRequest::limit(&t, Side::Ask, p(70), n(4));
    req.client_order_id = Some(ClientOrderId::new("mine-1"));
    e.place_order(a, req).unwrap();
    let ev = e.take_events();
    let d = ev
        .iter()
        .find_map(|x| match x {
            Event::BookDelta(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(d.side, BookSide::No);
    assert_eq!(d.price, p(30));
    assert_eq!(d.delta, n(4));
    assert_eq!(d.owner, a);
    assert_eq!(d.client_order_id.as_ref().unwrap().as_str(), "mine-1");
    assert!(ev
        .iter()
        .any(|x| matches!(x, Event::UserOrder(o) if o.status == OrderStatus::Resting)));
    assert!(ev
        .iter()
        .any(|x| matches!(x, Event::Ticker(s) if s.yes_ask == Some((p(70), n(4))))));
}

#[test]
fn validation_rules() {
    let (mut e, t) = quiet(|c| c.price_level_structure = PriceLevelStructure::LinearCent);
    let a = e.add_user(usd(10));
    let b = e.add_user(usd(1000));
    let bad_tick = e.place_order(
        a,
        OrderRequest::limit(&t, Side::Bid, Price::parse_dollars("0.505").unwrap(), n(1)),
    );
    assert!(matches!(bad_tick, Err(OrderError::InvalidPrice(_))));
    assert!(matches!(
        e.place_order(a, OrderRequest::limit(&t, Side::Bid, Price::ZERO, n(1))),
        Err(OrderError::InvalidPrice(_))
    ));
    assert!(matches!(
        e.place_order(a, OrderRequest::limit(&t, Side::Bid, Price::ONE, n(1))),
        Err(OrderError::InvalidPrice(_))
    ));
    assert!(matches!(
        e.place_order(a, OrderRequest::limit(&t, Side::Bid, p(50), Count::ZERO)),
        Err(OrderError::InvalidCount(_))
    ));
    // 0.01 contracts is fine.
    e.place_order(
        a,
        OrderRequest::limit(&t, Side::Bid, p(50), Count::from_centis(1)),
    )
    .unwrap();
    // Balance: $10 buys at most 19 YES at 0.50 (+ fee cap).
    let err = e
        .place_order(a, OrderRequest::limit(&t, Side::Bid, p(50), n(20)))
        .unwrap_err();
    assert!(
        matches!(err, OrderError::InsufficientBalance { .. }),
        "{err}"
    );
    assert_eq!(err.code(), "insufficient_balance");
    // Unknown market, inactive market.
    assert_eq!(
        e.place_order(
            a,
            OrderRequest::limit(&MarketTicker::new("NOPE"), Side::Bid, p(50), n(1))
        )
        .unwrap_err()
        .http_status(),
        404
    );
    let next = e.markets().nth(1).unwrap().ticker.clone();
    let err = e
        .place_order(a, OrderRequest::limit(&next, Side::Bid, p(50), n(1)))
        .unwrap_err();
    assert_eq!(
        (err.code(), err.details().as_str()),
        ("market_closed", "MARKET_INACTIVE")
    );
    // Duplicate live client_order_id → 409; reusable once the first is gone.
    let mut r = OrderRequest::limit(&t, Side::Bid, p(40), n(1));
    r.client_order_id = Some(ClientOrderId::new("dup"));
    let first = e.place_order(b, r.clone()).unwrap();
    let err = e.place_order(b, r.clone()).unwrap_err();
    assert_eq!(err.http_status(), 409);
    e.cancel_order(b, first.id.as_str()).unwrap();
    e.place_order(b, r).unwrap();
    // Post-only that would cross is rejected.
    e.place_order(b, OrderRequest::limit(&t, Side::Ask, p(60), n(1)))
        .unwrap();
    let mut po = OrderRequest::limit(&t, Side::Bid, p(60), n(1));
    po.post_only = true;
    assert_eq!(
        e.place_order(b, po.clone()).unwrap_err(),
        OrderError::PostOnlyCross
    );
    po.price = p(59);
    assert_eq!(e.place_order(b, po).unwrap().status, OrderStatus::Resting);
    // IOC with expiration, reduce_only without IOC, past expiration.
    let mut r = OrderRequest::limit(&t, Side::Bid, p(10), n(1));
    r.time_in_force = TimeInForce::ImmediateOrCancel;
    r.expiration_ms = Some(START + 30_000);
    assert!(matches!(
        e.place_order(b, r),
        Err(OrderError::InvalidOrder(_))
    ));
    let mut r = OrderRequest::limit(&t, Side::Bid, p(10), n(1));
    r.reduce_only = true;
    assert!(matches!(
        e.place_order(b, r),
        Err(OrderError::InvalidOrder(_))
    ));
    let mut r = OrderRequest::limit(&t, Side::Bid, p(10), n(1));
    r.expiration_ms = Some(START - 1);
    assert!(matches!(
        e.place_order(b, r),
        Err(OrderError::InvalidOrder(_))
    ));
}

#[test]
fn ioc_fok_and_expiration() {
    let (mut e, t) = quiet(|_| {});
    let mk = e.add_user(usd(1000));
    let u = e.add_user(usd(1000));
    e.place_order(mk, OrderRequest::limit(&t, Side::Ask, p(50), n(5)))
        .unwrap();
    // FOK for 6 with only 5 available: killed, nothing filled, book untouched.
    let mut fok = OrderRequest::limit(&t, Side::Bid, p(50), n(6));
    fok.time_in_force = TimeInForce::FillOrKill;
    let o = e.place_order(u, fok.clone()).unwrap();
    assert_eq!(
        (o.status, o.filled, o.remaining),
        (OrderStatus::Canceled, Count::ZERO, Count::ZERO)
    );
    assert_eq!(e.book_levels(t.as_str()).unwrap().1, vec![(p(50), n(5))]);
    // IOC for 6: 5 filled, the rest cancelled (so the order ends `canceled`).
    let mut ioc = fok.clone();
    ioc.time_in_force = TimeInForce::ImmediateOrCancel;
    let o = e.place_order(u, ioc).unwrap();
    assert_eq!(
        (o.status, o.filled, o.remaining),
        (OrderStatus::Canceled, n(5), Count::ZERO)
    );
    // FOK for exactly what is there fills.
    e.place_order(mk, OrderRequest::limit(&t, Side::Ask, p(52), n(2)))
        .unwrap();
    fok.count = n(2);
    fok.price = p(52);
    assert_eq!(e.place_order(u, fok).unwrap().status, OrderStatus::Executed);
    // GTC with expiration is cancelled at that time.
    let mut g = OrderRequest::limit(&t, Side::Bid, p(20), n(1));
    g.expiration_ms = Some(START + 10_000);
    let o = e.place_order(u, g).unwrap();
    assert_eq!(o.status, OrderStatus::Resting);
    let reserved = e.account(u).unwrap().reserved;
    assert!(reserved > Money::ZERO);
    e.advance_to(START + 9_999);
    assert_eq!(e.order(o.id.as_str()).unwrap().status, OrderStatus::Resting);
    let ev = e.advance_to(START + 10_000);
    assert_eq!(
        e.order(o.id.as_str()).unwrap().status,
        OrderStatus::Canceled
    );
    assert!(ev
        .iter()
        .any(|x| matches!(x, Event::BookDelta(d) if d.delta == -n(1))));
    assert_eq!(e.account(u).unwrap().reserved, Money::ZERO);
}

#[test]
fn self_trade_prevention_modes() {
    let (mut e, t) = quiet(|_| {});
    let u = e.add_user(usd(1000));
    let other = e.add_user(usd(1000));
    e.place_order(other, OrderRequest::limit(&t, Side::Ask, p(50), n(1)))
        .unwrap();
    let own = e
        .place_order(u, OrderRequest::limit(&t, Side::Ask, p(51), n(1)))
        .unwrap();
    e.place_order(other, OrderRequest::limit(&t, Side::Ask, p(52), n(1)))
        .unwrap();
    // taker_at_cross: fills 1 at 0.50, stops at its own 0.51, rest cancelled.
    let o = e
        .place_order(u, OrderRequest::limit(&t, Side::Bid, p(52), n(3)))
        .unwrap();
    assert_eq!((o.filled, o.status), (n(1), OrderStatus::Canceled));
    assert_eq!(
        e.order(own.id.as_str()).unwrap().status,
        OrderStatus::Resting
    );
    // maker: cancels its own resting order and keeps going.
    let mut r = OrderRequest::limit(&t, Side::Bid, p(52), n(2));
    r.self_trade_prevention = SelfTradePrevention::Maker;
    let o = e.place_order(u, r).unwrap();
    assert_eq!(o.filled, n(1));
    assert_eq!(
        e.order(own.id.as_str()).unwrap().status,
        OrderStatus::Canceled
    );
}

#[test]
fn netting_returns_collateral_and_settlement_pays_winners() {
    let (mut e, t) = quiet(|c| c.fee_multiplier = FeeMultiplier::ZERO);
    let a = e.add_user(usd(100));
    let b = e.add_user(usd(100));
    // a buys 10 YES at 0.40 from b (b buys 10 NO at 0.60).
    e.place_order(b, OrderRequest::limit(&t, Side::Ask, p(40), n(10)))
        .unwrap();
    e.place_order(a, OrderRequest::limit(&t, Side::Bid, p(40), n(10)))
        .unwrap();
    assert_eq!(e.account(a).unwrap().cash, usd(96));
    // a sells 4 YES at 0.55 to b (a buys 4 NO at 0.45): nets 4 → $4 back.
    e.place_order(b, OrderRequest::limit(&t, Side::Bid, p(55), n(4)))
        .unwrap();
    e.place_order(a, OrderRequest::limit(&t, Side::Ask, p(55), n(4)))
        .unwrap();
    let acct = e.account(a).unwrap();
    assert_eq!(acct.cash, usd(96) - Money::from_cents(180) + usd(4));
    assert_eq!(acct.netting_credits, usd(4));
    let pos = e.positions_of(a)[0].1.clone();
    assert_eq!(pos.position, n(6));
    assert_eq!(pos.basis, Money::from_cents(240));
    // Realised: 4 × (1 − 0.45 − 0.40) = 0.60.
    assert_eq!(pos.realized_pnl, Money::from_cents(60));
    // Every contract has a counterparty.
    let sum: Count = e
        .positions_in(t.as_str())
        .iter()
        .map(|(_, p)| p.position)
        .sum();
    assert_eq!(sum, Count::ZERO);
    assert_eq!(e.ticker_state(t.as_str()).unwrap().open_interest, n(6));
    // Settle YES.
    e.force_close(t.as_str(), Some(MarketResult::Yes)).unwrap();
    e.advance_to(e.now_ms() + 5_000);
    assert_eq!(
        e.market(t.as_str()).unwrap().status,
        MarketStatus::Finalized
    );
    let acct = e.account(a).unwrap();
    assert_eq!(acct.payouts, usd(6));
    let s: Vec<&Settlement> = e.settlements().iter().filter(|s| s.account == a).collect();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].yes_count, s[0].revenue), (n(6), usd(6)));
    let sb: Vec<&Settlement> = e.settlements().iter().filter(|s| s.account == b).collect();
    assert_eq!((sb[0].no_count, sb[0].revenue), (n(6), Money::ZERO));
    // Total cash is conserved (no fees here).
    assert_eq!(
        e.account(a).unwrap().cash + e.account(b).unwrap().cash,
        usd(200)
    );
    assert!(e.positions_of(a)[0].1.settled);
}

#[test]
fn close_cancels_resting_orders_and_rejects_cancels_after() {
    let (mut e, t) = quiet(|_| {});
    let u = e.add_user(usd(100));
    let o = e
        .place_order(u, OrderRequest::limit(&t, Side::Bid, p(30), n(2)))
        .unwrap();
    e.advance_to(START + 60_000);
    assert_eq!(
        e.order(o.id.as_str()).unwrap().status,
        OrderStatus::Canceled
    );
    assert!(e.book_levels(t.as_str()).unwrap().0.is_empty());
    assert_eq!(e.account(u).unwrap().reserved, Money::ZERO);
    let err = e.cancel_order(u, o.id.as_str()).unwrap_err();
    assert_eq!(err.details(), "MARKET_INACTIVE");
}

fn busy(seed: u64, edge: f64) -> Engine {
    let cfg = EngineConfig {
        seed,
        start_ms: START,
        market_duration_ms: 60_000,
        listing_lead_ms: 60_000,
        maker: MakerConfig {
            planted_edge: edge,
            ..MakerConfig::default()
        },
        noise: NoiseConfig {
            takers_per_minute: 20.0,
            ..NoiseConfig::default()
        },
        ..EngineConfig::default()
    };
    let path = RandomWalk::new(seed, START, 100_000.0, 3e-4, 1000);
    Engine::new(cfg, Box::new(path))
}

#[test]
fn deterministic_under_a_seed_whatever_the_step() {
    let mut a = busy(11, 0.0);
    let mut b = busy(11, 0.0);
    let mut ea = Vec::new();
    let mut eb = Vec::new();
    // One in 1 s steps, one in irregular jumps: same events.
    for i in 1..=150 {
        ea.extend(a.advance_to(START + i * 1000));
    }
    for t in [
        START + 333,
        START + 20_000,
        START + 20_001,
        START + 97_500,
        START + 150_000,
    ] {
        eb.extend(b.advance_to(t));
    }
    assert!(ea.len() > 100, "only {} events", ea.len());
    assert_eq!(ea, eb);
    let mut c = busy(12, 0.0);
    let ec = c.advance_to(START + 150_000);
    assert_ne!(ea, ec);
}

#[test]
fn maker_quotes_a_ladder_around_fair_value_and_edge_shrinks_it() {
    let mut e = busy(5, 0.0);
    e.advance_to(START + 30_000);
    let t = e
        .markets()
        .find(|m| m.status == MarketStatus::Active)
        .unwrap()
        .ticker
        .clone();
    let fair = e.fair_value(t.as_str()).unwrap();
    let (yes, no) = e.book_levels(t.as_str()).unwrap();
    assert!(yes.len() >= 3 && no.len() >= 3, "{yes:?} {no:?}");
    let bid = yes.last().unwrap().0.to_prob();
    let ask = 1.0 - no.last().unwrap().0.to_prob();
    assert!(bid < ask);
    assert!(
        bid <= fair + 0.02 && ask >= fair - 0.02,
        "bid {bid} ask {ask} fair {fair}"
    );
    // Planted edge: the quoted mid is pulled toward 0.5 by (1 − edge).
    for fair in [0.1, 0.3, 0.8, 0.95] {
        let ladder_fair = e.target_ladder(fair);
        let mut shrunk = busy(5, 0.5);
        let ladder_edge = shrunk.target_ladder(fair);
        let mid = |l: &Vec<(Side, Price)>| {
            let b = l
                .iter()
                .filter(|x| x.0 == Side::Bid)
                .map(|x| x.1)
                .max()
                .unwrap();
            let a = l
                .iter()
                .filter(|x| x.0 == Side::Ask)
                .map(|x| x.1)
                .min()
                .unwrap();
            (b.to_prob() + a.to_prob()) / 2.0
        };
        let want = 0.5 + (fair - 0.5) * 0.5;
        assert!(
            (mid(&ladder_edge) - want).abs() <= 0.011,
            "fair {fair}: {}",
            mid(&ladder_edge)
        );
        assert!(
            (mid(&ladder_fair) - fair).abs() <= 0.011,
            "fair {fair}: {}",
            mid(&ladder_fair)
        );
        shrunk.take_events();
    }
}

#[test]
fn grid_rounding() {
    let g = PriceLevelStructure::TaperedDeciCent;
    let d = |s: &str| Price::parse_dollars(s).unwrap();
    assert!(g.is_valid(d("0.055")) && g.is_valid(d("0.50")) && g.is_valid(d("0.953")));
    assert!(!g.is_valid(d("0.505")) && !g.is_valid(d("0")) && !g.is_valid(d("1")));
    assert_eq!(g.floor(d("0.5057")), Some(d("0.50")));
    assert_eq!(g.ceil(d("0.5057")), Some(d("0.51")));
    assert_eq!(g.floor(d("0.0557")), Some(d("0.055")));
    assert_eq!(g.ceil(d("0.9991")), None);
    assert_eq!(g.floor(d("0.0004")), None);
    assert_eq!(
        PriceLevelStructure::LinearCent.ceil(d("0.0004")),
        Some(d("0.01"))
    );
    assert_eq!(dollars_with_commas(6_348_516), "63,485.16");
    assert_eq!(dollars_with_commas(5), "0.05");
}

#[test]
fn lagged_maker_prices_from_the_stale_underlying() {
    let lagged = |lag: i64| {
        let cfg = EngineConfig {
            seed: 9,
            start_ms: START,
            market_duration_ms: 60_000,
            listing_lead_ms: 60_000,
            maker: MakerConfig {
                fair_lag_ms: lag,
                refresh_probability: 0.0,
                ..MakerConfig::default()
            },
            noise: NoiseConfig {
                takers_per_minute: 0.0,
                ..NoiseConfig::default()
            },
            ..EngineConfig::default()
        };
        let path = RandomWalk::new(9, START, 100_000.0, 3e-4, 1000);
        Engine::new(cfg, Box::new(path))
    };
    let mut fresh = lagged(0);
    let mut stale = lagged(5_000);
    fresh.advance_to(START + 30_000);
    stale.advance_to(START + 30_000);
    let t = fresh.markets().next().unwrap().ticker.clone();
    // The lagged maker's best quotes are where a fresh maker would put them for the spot
    // of 5 s earlier (same strike, same time left).
    let idx = 0;
    let want = stale
        .fair_with_spot_at(idx, START + 30_000, START + 25_000)
        .unwrap();
    let now = fresh.fair_at(idx, START + 30_000).unwrap();
    assert_ne!(want, now, "the path moved in 5 s");
    let best = |e: &Engine| {
        let (yes, no) = e.book_levels(t.as_str()).unwrap();
        (yes.last().unwrap().0, no.last().unwrap().0.complement())
    };
    let ladder = stale.target_ladder(want);
    let bid = ladder
        .iter()
        .filter(|x| x.0 == Side::Bid)
        .map(|x| x.1)
        .max()
        .unwrap();
    let ask = ladder
        .iter()
        .filter(|x| x.0 == Side::Ask)
        .map(|x| x.1)
        .min()
        .unwrap();
    assert_eq!(best(&stale), (bid, ask));
    let fresh_ladder = fresh.target_ladder(now);
    let fbid = fresh_ladder
        .iter()
        .filter(|x| x.0 == Side::Bid)
        .map(|x| x.1)
        .max()
        .unwrap();
    assert_eq!(best(&fresh).0, fbid);
}
