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
        matches!(&e, RestError::UnresolvedCreate { client_order_id, .. } if client_order_id.as_str() == "after-500"),
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
