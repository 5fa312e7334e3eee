//! V2 orders through the REST client against the simulator: create/cancel, a marketable order
//! with its fill, fee, position and balance, 409 on a duplicate `client_order_id`, and lost or
//! refused creates resolved without ever leaving two orders with one `client_order_id`.
//!
//! The client resolves an unknown create outcome by listing orders created "recently" by its
//! own clock and by comparing `GET /exchange/user_data_timestamp` with it, so these tests pin
//! the simulator's manual clock to wall-clock time at start (with a market long enough that
//! it stays open), and move it explicitly where a test needs fresher portfolio data.

mod sim_common;

use kalshi_sim::engine::{AccountId, OrderRequest, Side};
use kalshi_sim::{Fault, LoseMode, Sim, SimHandle};
use market_data::rest::{CreateOutcome, PortfolioQuery};
use market_data::wire::{BookSide, CreateOrderRequest, OrderStatus, OutcomeSide};
use market_data::RestError;
use pipeline::ids::ClientOrderId;
use pipeline::money::{trading_fee, Count, FeeMultiplier, Liquidity, Money, Price};
use sim_common::*;

const INITIAL: Money = Money::from_cents(1_000_000);

/// A simulator whose clock reads wall-clock time at start and then stands still; its active
/// market has at least 15 minutes of simulated time left; no market maker (the tests own
/// the book).
async fn order_sim() -> (Sim, String) {
    let now = wall_ms();
    let d = window_with_room(now, 15 * 60_000);
    let sim = start(|c| {
        c.start_ms = Some(now);
        c.engine.market_duration_ms = d;
        c.engine.listing_lead_ms = d;
        c.engine.maker.enabled = false;
        c.initial_balance = INITIAL;
    })
    .await;
    let t = sim
        .handle()
        .active_market()
        .expect("active")
        .ticker
        .to_string();
    (sim, t)
}

fn p(s: &str) -> Price {
    Price::parse_dollars(s).unwrap()
}

/// Orders the simulator holds for our account with this `client_order_id`.
fn sim_orders_with(h: &SimHandle, cid: &str) -> usize {
    let me = h.default_account().expect("account");
    h.with_engine(|e| {
        e.orders_of(me)
            .filter(|o| o.client_order_id.as_ref().map(|c| c.as_str()) == Some(cid))
            .count()
    })
}

fn counterparty(h: &SimHandle) -> AccountId {
    h.with_engine(|e| e.add_user(INITIAL))
}

fn buy_yes(t: &str, price: &str, n: i64, cid: &str) -> CreateOrderRequest {
    CreateOrderRequest::buy_yes(t, p(price), Count::from_contracts(n))
        .client_order_id(cid)
        .build()
        .unwrap()
}

#[tokio::test]
async fn create_cancel_round_trip_and_duplicate_client_order_id() {
    let (sim, t) = order_sim().await;
    let h = sim.handle();
    let client = rest(&sim);
    let req = buy_yes(&t, "0.10", 10, "round-trip-1");

    let ack = client.create_order(&req).await.unwrap();
    assert_eq!(ack.client_order_id.as_ref(), Some(&req.client_order_id));
    assert_eq!(ack.fill_count, Some(Count::ZERO));
    assert_eq!(ack.remaining_count, Some(Count::from_contracts(10)));
    let o = client.order(&ack.order_id).await.unwrap();
    assert_eq!(o.status, Some(OrderStatus::Resting));
    assert_eq!(o.ticker.as_str(), t);
    assert_eq!(o.yes_price_dollars, Some(p("0.10")));
    assert_eq!(o.outcome_side, Some(OutcomeSide::Yes));
    assert_eq!(o.book_side, Some(BookSide::Bid));
    assert_eq!(o.remaining_count_fp, Some(Count::from_contracts(10)));
    // It rests in the public book.
    let book = rest_book(&client, &t).await;
    assert_eq!(book.yes_size_at(p("0.10")), Count::from_contracts(10));

    // The same client_order_id again: 409, typed.
    let e = client.create_order(&req).await.unwrap_err();
    assert!(matches!(e, RestError::Conflict { .. }), "{e:?}");
    // The idempotent create treats the 409 as "it exists" and returns it.
    match client.create_order_idempotent(&req).await.unwrap() {
        CreateOutcome::FoundExisting(found) => assert_eq!(found.order_id, ack.order_id),
        other => panic!("expected FoundExisting, got {other:?}"),
    }
    assert_eq!(sim_orders_with(&h, "round-trip-1"), 1);
    // The same id with other terms is not "the order already placed": a typed error naming
    // what differs, and still only the one order on the exchange.
    let reused = buy_yes(&t, "0.12", 7, "round-trip-1");
    match client.create_order_idempotent(&reused).await {
        Err(RestError::ClientOrderIdReused {
            order_id,
            differences,
            ..
        }) => {
            assert_eq!(order_id, ack.order_id);
            assert!(differences.contains("yes price 0.1000"), "{differences}");
            assert!(differences.contains("count 10.00"), "{differences}");
            assert!(!differences.contains("book_side"), "{differences}");
        }
        other => panic!("expected ClientOrderIdReused, got {other:?}"),
    }
    assert_eq!(sim_orders_with(&h, "round-trip-1"), 1);

    // Cancel: the whole remainder, and the order is listed as canceled.
    let c = client
        .cancel_order(&ack.order_id, Some(&req.ticker))
        .await
        .unwrap();
    assert_eq!(c.order_id, ack.order_id);
    assert_eq!(c.reduced_by, Some(Count::from_contracts(10)));
    let o = client.order(&ack.order_id).await.unwrap();
    assert_eq!(o.status, Some(OrderStatus::Canceled));
    assert_eq!(o.remaining_count_fp, Some(Count::ZERO));
    assert!(rest_book(&client, &t)
        .await
        .yes_size_at(p("0.10"))
        .is_zero());
    let listed = client
        .orders(&PortfolioQuery {
            status: Some("canceled".into()),
            ..PortfolioQuery::ticker(t.as_str())
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].order_id, ack.order_id);
    // Cancelling again is refused (nothing left to cancel).
    assert!(client
        .cancel_order(&ack.order_id, Some(&req.ticker))
        .await
        .is_err());
    let b = client.balance().await.unwrap();
    assert_eq!(
        b.balance_dollars,
        Some(INITIAL),
        "nothing held back any more"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn marketable_order_fill_fee_position_and_balance() {
    let (sim, t) = order_sim().await;
    let h = sim.handle();
    let client = rest(&sim);
    // Someone rests 10 YES for sale at $0.50.
    let maker = counterparty(&h);
    h.with_engine(|e| {
        e.place_order(
            maker,
            OrderRequest::limit(
                &t.as_str().into(),
                Side::Ask,
                p("0.50"),
                Count::from_contracts(10),
            ),
        )
    })
    .unwrap();

    // We buy them as taker.
    let req = buy_yes(&t, "0.50", 10, "taker-1");
    let ack = match client.create_order_idempotent(&req).await.unwrap() {
        CreateOutcome::Placed(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(ack.fill_count, Some(Count::from_contracts(10)));
    assert_eq!(ack.remaining_count, Some(Count::ZERO));
    assert_eq!(ack.average_fill_price, Some(p("0.50")));

    // Fee: ceil_to_cent(0.07 × 10 × 0.5 × 0.5) = ceil(0.175) = $0.18 (API.md §6.2).
    let fee = Money::parse_dollars("0.18").unwrap();
    assert_eq!(
        trading_fee(
            Liquidity::Taker,
            FeeMultiplier::ONE,
            Count::from_contracts(10),
            p("0.50")
        ),
        fee
    );
    let fills = client
        .fills(&PortfolioQuery::ticker(t.as_str()))
        .await
        .unwrap();
    assert_eq!(fills.len(), 1, "{fills:?}");
    let f = &fills[0];
    assert_eq!(f.order_id, ack.order_id);
    assert_eq!(f.count_fp, Some(Count::from_contracts(10)));
    assert_eq!(f.yes_price_dollars, Some(p("0.50")));
    assert_eq!(f.no_price_dollars, Some(p("0.50")));
    assert_eq!(f.is_taker, Some(true));
    assert_eq!(f.outcome_side, Some(OutcomeSide::Yes));
    assert_eq!(f.fee_cost, Some(fee));

    let o = client.order(&ack.order_id).await.unwrap();
    assert_eq!(o.status, Some(OrderStatus::Executed));
    assert_eq!(o.fill_count_fp, Some(Count::from_contracts(10)));
    assert_eq!(o.taker_fees_dollars, Some(fee));
    assert_eq!(o.taker_fill_cost_dollars, Some(Money::from_cents(500)));

    let (positions, _) = client
        .positions(&PortfolioQuery::ticker(t.as_str()))
        .await
        .unwrap();
    assert_eq!(positions.len(), 1, "{positions:?}");
    let pos = &positions[0];
    assert_eq!(pos.ticker.as_str(), t);
    assert_eq!(pos.position_fp, Some(Count::from_contracts(10)));
    assert_eq!(pos.market_exposure_dollars, Some(Money::from_cents(500)));
    assert_eq!(pos.fees_paid_dollars, Some(fee));

    let b = client.balance().await.unwrap();
    assert_eq!(
        b.balance_dollars,
        Some(INITIAL - Money::from_cents(500) - fee),
        "$10,000 − $5.00 − $0.18"
    );
    // The book is empty again on the ask side.
    assert!(rest_book(&client, &t).await.best_yes_ask().is_none());

    // The market closes YES and settles: $1 per contract, a settlement record, and the
    // position leaves the (unsettled-only) positions list.
    h.force_close(&t, Some(kalshi_sim::engine::MarketResult::Yes))
        .unwrap();
    h.advance_by(5_000).unwrap();
    let m = client.market(&t).await.unwrap();
    assert_eq!(m.status, Some(market_data::wire::MarketStatus::Finalized));
    assert_eq!(m.result, Some(market_data::wire::MarketResult::Yes));
    assert_eq!(m.settlement_value_dollars, Some(Price::ONE));
    let settlements = client
        .settlements(&PortfolioQuery::ticker(t.as_str()))
        .await
        .unwrap();
    assert_eq!(settlements.len(), 1, "{settlements:?}");
    let st = &settlements[0];
    assert_eq!(st.market_result, Some(market_data::wire::MarketResult::Yes));
    assert_eq!(st.yes_count_fp, Some(Count::from_contracts(10)));
    assert_eq!(st.yes_total_cost_dollars, Some(Money::from_cents(500)));
    assert_eq!(st.revenue, Some(1_000), "cents");
    let (open, _) = client
        .positions(&PortfolioQuery::ticker(t.as_str()))
        .await
        .unwrap();
    assert!(open.is_empty(), "{open:?}");
    let b = client.balance().await.unwrap();
    assert_eq!(
        b.balance_dollars,
        Some(INITIAL - Money::from_cents(500) - fee + Money::from_cents(1_000))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn batch_create_and_cancel() {
    let (sim, t) = order_sim().await;
    let h = sim.handle();
    let client = rest(&sim);
    let good = buy_yes(&t, "0.20", 4, "batch-a");
    let also = CreateOrderRequest::buy_no(t.as_str(), p("0.70"), Count::from_contracts(3))
        .client_order_id("batch-b")
        .build()
        .unwrap();
    // Off the cent grid: refused item by item, the others stand.
    let mut bad = buy_yes(&t, "0.20", 1, "batch-c");
    bad.price = p("0.205");
    let r = client
        .batch_create(vec![good.clone(), also.clone(), bad])
        .await
        .unwrap();
    assert_eq!(r.orders.len(), 3, "{r:?}");
    assert!(
        r.orders[0].error.is_none() && r.orders[1].error.is_none(),
        "{r:?}"
    );
    assert!(
        r.orders[2].error.is_some() && r.orders[2].order_id.is_none(),
        "{r:?}"
    );
    assert_eq!(sim_orders_with(&h, "batch-a"), 1);
    assert_eq!(sim_orders_with(&h, "batch-b"), 1);
    assert_eq!(sim_orders_with(&h, "batch-c"), 0);
    // Buying NO at 0.70 is a NO bid at 0.70 (NO-leg price in the REST book).
    let book = rest_book(&client, &t).await;
    assert_eq!(book.yes_size_at(p("0.20")), Count::from_contracts(4));
    assert_eq!(book.no_size_at(p("0.70")), Count::from_contracts(3));

    let ids: Vec<_> = r.orders[..2]
        .iter()
        .map(|o| market_data::wire::CancelSpec {
            order_id: o.order_id.clone().unwrap(),
            market_ticker: Some(t.as_str().into()),
            subaccount: None,
            exchange_index: None,
        })
        .collect();
    let c = client.batch_cancel(ids).await.unwrap();
    assert_eq!(c.orders.len(), 2);
    assert!(c.orders.iter().all(|o| o.error.is_none()), "{c:?}");
    assert_eq!(c.orders[0].reduced_by, Some(Count::from_contracts(4)));
    assert_eq!(c.orders[1].reduced_by, Some(Count::from_contracts(3)));
    let book = rest_book(&client, &t).await;
    assert_eq!(book.depth(), (0, 0));
    sim.shutdown().await;
}

#[tokio::test]
async fn lost_create_responses_resolve_to_the_one_existing_order() {
    let (sim, t) = order_sim().await;
    let h = sim.handle();
    let client = rest(&sim);

    // The raw create: a closed connection is an unknown outcome, not a refusal.
    h.inject(Fault::LoseOrderResponse {
        count: 1,
        mode: LoseMode::CloseConnection,
    });
    let e = client
        .create_order(&buy_yes(&t, "0.05", 1, "raw-lost"))
        .await
        .unwrap_err();
    assert!(e.outcome_unknown(), "{e:?}");
    assert_eq!(sim_orders_with(&h, "raw-lost"), 1, "yet the order exists");

    for (i, mode) in [LoseMode::CloseConnection, LoseMode::ServerError]
        .into_iter()
        .enumerate()
    {
        let cid = format!("lost-{i}");
        let req = buy_yes(&t, "0.11", 3, &cid);
        h.inject(Fault::LoseOrderResponse { count: 1, mode });
        match client.create_order_idempotent(&req).await.unwrap() {
            CreateOutcome::FoundExisting(o) => {
                assert_eq!(o.client_order_id, Some(ClientOrderId::new(cid.clone())));
                assert_eq!(o.status, Some(OrderStatus::Resting));
                assert_eq!(o.initial_count_fp, Some(Count::from_contracts(3)));
            }
            other => panic!("{mode:?}: expected FoundExisting, got {other:?}"),
        }
        assert_eq!(sim_orders_with(&h, &cid), 1, "{mode:?}: exactly one order");
    }
    assert_eq!(h.fault_stats().order_responses_lost, 3);
    // Three resting orders at 0.05 / 0.11: 1 + 3 + 3.
    let book = rest_book(&client, &t).await;
    assert_eq!(book.yes_size_at(p("0.11")), Count::from_contracts(6));
    assert_eq!(book.yes_size_at(p("0.05")), Count::from_contracts(1));
    sim.shutdown().await;
}

#[tokio::test]
async fn creates_are_resent_only_when_provably_absent() {
    let (sim, t) = order_sim().await;
    let h = sim.handle();
    let client = rest(&sim);

    // Refused before processing (429): retried, placed once.
    h.inject(Fault::HttpStatus {
        status: 429,
        count: 2,
    });
    let r = client
        .create_order_idempotent(&buy_yes(&t, "0.07", 2, "after-429"))
        .await
        .unwrap();
    assert!(matches!(r, CreateOutcome::Placed(_)), "{r:?}");
    assert_eq!(h.fault_stats().http_status_injected, 2);
    assert_eq!(sim_orders_with(&h, "after-429"), 1);

    // A 500 before the order reached the engine: the outcome is unknown to the client and
    // the order is absent. The simulator's clock stands at the test's start, so its
    // portfolio data is not provably newer than the failure: the client must not re-send.
    let req = buy_yes(&t, "0.08", 2, "after-500");
    h.inject(Fault::HttpStatus {
        status: 500,
        count: 1,
    });
    let e = client.create_order_idempotent(&req).await.unwrap_err();
    assert!(
        matches!(&e, RestError::UnresolvedCreate { client_order_id, reason }
            if client_order_id.as_str() == "after-500" && reason.contains("not yet past")),
        "{e:?}"
    );
    assert_eq!(sim_orders_with(&h, "after-500"), 0, "no blind re-send");

    // With portfolio data dated well after the failure, absence is proven: one re-send,
    // same client_order_id, placed once.
    h.advance_to(wall_ms() + 60_000).unwrap();
    h.inject(Fault::HttpStatus {
        status: 500,
        count: 1,
    });
    let r = client.create_order_idempotent(&req).await.unwrap();
    match r {
        CreateOutcome::Placed(a) => {
            assert_eq!(a.client_order_id, Some(req.client_order_id.clone()))
        }
        other => panic!("expected Placed after proven absence, got {other:?}"),
    }
    assert_eq!(sim_orders_with(&h, "after-500"), 1);
    assert_eq!(h.fault_stats().http_status_injected, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn private_and_public_channels_report_the_trade() {
    use market_data::wire::{LifecycleEvent, MarketResult, WsMessage};
    use market_data::ws::{self, channel, SubscribeRequest, WsEvent};

    let (sim, t) = order_sim().await;
    let h = sim.handle();
    let client = rest(&sim);
    let maker = counterparty(&h);
    h.with_engine(|e| {
        e.place_order(
            maker,
            OrderRequest::limit(
                &t.as_str().into(),
                Side::Ask,
                p("0.50"),
                Count::from_contracts(10),
            ),
        )
    })
    .unwrap();

    let shutdown = tokio_util::sync::CancellationToken::new();
    let (session, mut rx, task) = ws::spawn(ws_config(&sim), Some(signer(&sim)), shutdown.clone());
    let mt = vec![t.as_str().into()];
    for ch in [
        channel::FILL,
        channel::USER_ORDERS,
        channel::MARKET_POSITIONS,
        channel::TRADE,
    ] {
        session
            .subscribe(SubscribeRequest::new(ch, mt.clone()))
            .await
            .unwrap();
    }
    session
        .subscribe(SubscribeRequest::new(channel::MARKET_LIFECYCLE_V2, vec![]))
        .await
        .unwrap();

    let ack = match client
        .create_order_idempotent(&buy_yes(&t, "0.50", 10, "ws-taker"))
        .await
        .unwrap()
    {
        CreateOutcome::Placed(a) => a,
        other => panic!("{other:?}"),
    };
    h.force_close(&t, Some(kalshi_sim::engine::MarketResult::Yes))
        .unwrap();
    h.advance_by(5_000).unwrap();

    let fee = Money::parse_dollars("0.18").unwrap();
    let (mut fill, mut order, mut position, mut trade) = (None, None, None, None);
    let (mut determined, mut settled) = (None, None);
    tokio::time::timeout(LIMIT, async {
        while fill.is_none()
            || order.is_none()
            || position.is_none()
            || trade.is_none()
            || determined.is_none()
            || settled.is_none()
        {
            let WsEvent::Frame(f) = rx.recv().await.expect("session") else {
                continue;
            };
            let frame = f
                .parsed
                .as_ref()
                .unwrap_or_else(|e| panic!("the client cannot parse {}: {e}", f.text));
            match &frame.msg {
                WsMessage::Fill(m) => fill = Some(m.clone()),
                WsMessage::UserOrder(m) if m.status == Some(OrderStatus::Executed) => {
                    order = Some(m.clone())
                }
                WsMessage::MarketPosition(m) if position.is_none() => position = Some(m.clone()),
                WsMessage::Trade(m) => trade = Some(m.clone()),
                WsMessage::MarketLifecycle(m) if m.market_ticker.as_str() == t => {
                    match m.event_type {
                        LifecycleEvent::Determined => determined = Some(m.clone()),
                        LifecycleEvent::Settled => settled = Some(m.clone()),
                        _ => {}
                    }
                }
                WsMessage::Error(e) => panic!("server error {e:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("every channel reported (hang guard)");

    let fill = fill.unwrap();
    assert_eq!(fill.order_id, ack.order_id);
    assert_eq!(
        fill.market_ticker.as_ref().map(|m| m.as_str()),
        Some(t.as_str())
    );
    assert_eq!(fill.is_taker, Some(true));
    assert_eq!(fill.outcome_side, Some(OutcomeSide::Yes));
    assert_eq!(fill.book_side, Some(BookSide::Bid));
    assert_eq!(fill.yes_price(), Some(p("0.50")));
    assert_eq!(fill.count(), Some(Count::from_contracts(10)));
    assert_eq!(fill.fee_cost, Some(fee));
    assert_eq!(fill.post_position_fp, Some(Count::from_contracts(10)));
    assert_eq!(fill.client_order_id, Some(ClientOrderId::new("ws-taker")));

    let order = order.unwrap();
    assert_eq!(order.order_id, ack.order_id);
    assert_eq!(order.client_order_id, Some(ClientOrderId::new("ws-taker")));
    assert_eq!(order.fill_count_fp, Some(Count::from_contracts(10)));
    assert_eq!(order.remaining_count_fp, Some(Count::ZERO));
    assert_eq!(order.yes_price_dollars, Some(p("0.50")));

    let position = position.unwrap();
    assert_eq!(position.market_ticker.as_str(), t);
    assert_eq!(position.position(), Some(Count::from_contracts(10)));
    assert_eq!(position.fees_paid(), Some(fee));

    let trade = trade.unwrap();
    assert_eq!(trade.count(), Some(Count::from_contracts(10)));
    assert_eq!(trade.yes_price(), Some(p("0.50")));
    assert_eq!(trade.no_price_dollars, Some(p("0.50")));
    assert_eq!(trade.taker_outcome_side, Some(OutcomeSide::Yes));
    assert_eq!(trade.taker_book_side, Some(BookSide::Bid));

    let determined = determined.unwrap();
    assert_eq!(determined.result, Some(MarketResult::Yes));
    assert_eq!(determined.settlement_value, Some(Price::ONE));
    assert!(settled.unwrap().settled_ts.is_some());

    shutdown.cancel();
    task.await.unwrap();
    sim.shutdown().await;
}
