//! The WebSocket session and BookSync against the simulator on a manual clock: dropped
//! connections, sequence gaps, repeated sequence numbers and buffer overflows, each healed
//! until the client's books equal the simulator's own.

mod sim_common;

use std::collections::BTreeSet;

use kalshi_sim::engine::{AccountId, OrderRequest, Side};
use kalshi_sim::{Fault, Sim, SimHandle};
use market_data::sync::{BookEvent, InvalidReason, SyncCounters};
use market_data::ws::{self, SharedBooks, SubId, SubscribeRequest, WsEvent, WsHandle};
use pipeline::money::{Count, Money, Price};
use sim_common::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Session {
    ws: WsHandle,
    rx: mpsc::Receiver<WsEvent>,
    books: SharedBooks,
    sub: SubId,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Session {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("session task");
    }
    fn counters(&self) -> SyncCounters {
        self.books.with(|b| *b.counters())
    }
}

/// A session subscribed to the order books of `tickers`, with every book valid.
async fn subscribe(sim: &Sim, tickers: &[String], use_yes_price: bool) -> Session {
    let shutdown = CancellationToken::new();
    let (ws, mut rx, task) = ws::spawn(ws_config(sim), Some(signer(sim)), shutdown.clone());
    let req = SubscribeRequest::orderbook(
        tickers.iter().map(|t| t.as_str().into()).collect(),
        use_yes_price,
    );
    let sub = ws.subscribe(req).await.expect("subscribed").sub;
    let mut valid = BTreeSet::new();
    while valid.len() < tickers.len() {
        if let WsEvent::Book(BookEvent::BookValid { ticker, .. }) =
            next_event(&mut rx, |_| {}, |e| matches!(e, WsEvent::Book(BookEvent::BookValid { .. })))
                .await
        {
            valid.insert(ticker.to_string());
        }
    }
    let books = ws.books();
    Session {
        ws,
        rx,
        books,
        sub,
        shutdown,
        task,
    }
}

/// A second trader inside the engine whose orders make book changes on demand.
fn other_trader(h: &SimHandle) -> AccountId {
    h.with_engine(|e| e.add_user(Money::from_cents(1_000_000)))
}

fn rest_order(h: &SimHandle, who: AccountId, ticker: &str, side: Side, cents: i64, n: i64) {
    h.with_engine(|e| {
        e.place_order(
            who,
            OrderRequest::limit(
                &ticker.into(),
                side,
                Price::from_cents(cents).unwrap(),
                Count::from_contracts(n),
            ),
        )
    })
    .expect("order accepted");
}

#[tokio::test]
async fn dropped_connection_reconnects_resubscribes_and_books_match_the_sim() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let client = rest(&sim);
    let tickers = live_tickers(&h);
    assert_eq!(tickers.len(), 2, "{tickers:?}");
    // NO levels arrive on the YES scale: the conversion must happen exactly once.
    let mut s = subscribe(&sim, &tickers, true).await;
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;

    // The maker requotes and another trader rests orders: deltas flow.
    let other = other_trader(&h);
    let applied0 = s.counters().applied;
    for _ in 0..8 {
        h.advance_by(250).unwrap();
    }
    rest_order(&h, other, &tickers[0], Side::Bid, 3, 7);
    rest_order(&h, other, &tickers[0], Side::Ask, 97, 4);
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    assert!(s.counters().applied >= applied0 + 2, "{:?}", s.counters());
    assert!(s.books.book(&tickers[0]).unwrap().same_levels(&rest_book(&client, &tickers[0]).await));

    // The exchange drops the connection.
    let snapshots0 = s.counters().snapshots;
    h.inject(Fault::DropWsConnections);
    let mut invalid = BTreeSet::new();
    next_event(
        &mut s.rx,
        |e| {
            if let WsEvent::Book(BookEvent::BookInvalid { ticker, reason }) = e {
                assert_eq!(reason, &InvalidReason::ConnectionLost);
                invalid.insert(ticker.to_string());
            }
        },
        |e| matches!(e, WsEvent::Disconnected { .. }),
    )
    .await;
    assert_eq!(
        invalid,
        tickers.iter().cloned().collect(),
        "every book is marked invalid"
    );
    assert!(tickers
        .iter()
        .all(|t| !s.books.book(t).unwrap().is_valid()));

    // The session reconnects and makes the same subscription again.
    let sub = s.sub;
    next_event(&mut s.rx, |_| {}, |e| matches!(e, WsEvent::Connected { .. })).await;
    next_event(
        &mut s.rx,
        |_| {},
        |e| matches!(e, WsEvent::Subscribed { sub: x, .. } if *x == sub),
    )
    .await;
    // Fresh snapshots make the books valid and equal to the simulator's.
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    assert!(s.counters().snapshots >= snapshots0 + 2, "{:?}", s.counters());

    // And the new stream keeps them equal.
    let applied1 = s.counters().applied;
    for _ in 0..8 {
        h.advance_by(250).unwrap();
    }
    rest_order(&h, other, &tickers[0], Side::Bid, 2, 5);
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    assert!(s.counters().applied > applied1, "{:?}", s.counters());
    for t in &tickers {
        assert!(s.books.book(t).unwrap().same_levels(&rest_book(&client, t).await));
    }
    assert_eq!(s.counters().gaps, 0);
    let st = h.fault_stats();
    assert_eq!((st.ws_dropped, st.ws_connections), (1, 2), "{st:?}");
    s.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn sequence_gap_is_detected_resynced_and_books_match_the_sim() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let mut s = subscribe(&sim, &tickers, false).await;
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let other = other_trader(&h);
    let old_sid = s.books.book(&tickers[0]).unwrap().sid().unwrap();
    let before = s.counters();

    // The next sequenced message skips a number.
    h.inject(Fault::SkipSeq { count: 1 });
    rest_order(&h, other, &tickers[0], Side::Bid, 4, 9);
    let mut invalid = BTreeSet::new();
    let ev = next_event(
        &mut s.rx,
        |e| {
            if let WsEvent::Book(BookEvent::BookInvalid { ticker, reason }) = e {
                assert!(matches!(reason, InvalidReason::SeqGap { .. }), "{reason:?}");
                invalid.insert(ticker.to_string());
            }
        },
        |e| matches!(e, WsEvent::Resyncing { .. }),
    )
    .await;
    match ev {
        WsEvent::Resyncing { sub, old_sid: o, .. } => {
            assert_eq!((sub, o), (s.sub, old_sid));
        }
        _ => unreachable!(),
    }
    assert_eq!(
        invalid,
        tickers.iter().cloned().collect(),
        "every book on the sid is invalid"
    );
    let c = s.counters();
    assert_eq!(c.gaps, before.gaps + 1, "{c:?}");
    assert!(c.resyncs_requested > before.resyncs_requested);
    assert_eq!(h.fault_stats().seq_skipped, 1);

    // Unsubscribe + subscribe: a new sid with fresh snapshots, books equal the simulator's
    // (including the order whose delta was lost in the gap).
    let sub = s.sub;
    next_event(
        &mut s.rx,
        |_| {},
        |e| matches!(e, WsEvent::Subscribed { sub: x, .. } if *x == sub),
    )
    .await;
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let new_sid = s.books.book(&tickers[0]).unwrap().sid().unwrap();
    assert_ne!(new_sid, old_sid, "the resubscription has a new sid");
    let subs = s.ws.list_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1, "the old sid was unsubscribed: {subs:?}");
    assert_eq!(subs[0].sid, Some(new_sid));
    assert!(s.counters().snapshots >= before.snapshots + 2);
    assert_eq!(
        s.books.book(&tickers[0]).unwrap().yes_size_at(Price::from_cents(4).unwrap()),
        Count::from_contracts(9)
    );

    // Deltas on the new sid keep the books equal; no further gap, no reconnect.
    let applied = s.counters().applied;
    rest_order(&h, other, &tickers[0], Side::Ask, 96, 2);
    for _ in 0..4 {
        h.advance_by(250).unwrap();
    }
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    assert!(s.counters().applied > applied);
    assert_eq!(s.counters().gaps, before.gaps + 1);
    assert_eq!(h.fault_stats().ws_connections, 1, "healed without reconnecting");
    s.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn repeated_sequence_numbers_are_dropped_and_books_unaffected() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let mut s = subscribe(&sim, &tickers, false).await;
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let other = other_trader(&h);
    let before = s.counters();

    // The next three sequenced messages are each sent twice.
    h.inject(Fault::RepeatSeq { count: 3 });
    rest_order(&h, other, &tickers[0], Side::Bid, 5, 3);
    rest_order(&h, other, &tickers[0], Side::Bid, 5, 2);
    rest_order(&h, other, &tickers[0], Side::Ask, 95, 6);
    let mut bad = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while s.counters().duplicates < before.duplicates + 3 {
            match s.rx.recv().await.expect("session") {
                WsEvent::Book(e @ BookEvent::BookInvalid { .. })
                | WsEvent::Book(e @ BookEvent::ResyncNeeded(_)) => bad.push(e),
                WsEvent::Resyncing { .. } | WsEvent::Disconnected { .. } => {
                    panic!("a duplicate must not cause a resync or reconnect")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("three duplicates seen (hang guard)");
    assert!(bad.is_empty(), "{bad:?}");
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let c = s.counters();
    assert_eq!(c.duplicates, before.duplicates + 3, "{c:?}");
    assert_eq!(c.applied, before.applied + 3, "each delta applied once");
    assert_eq!(c.gaps, before.gaps);
    assert_eq!(h.fault_stats().seq_repeated, 3);
    // Applied once, not twice: 3 + 2 at 5¢.
    assert_eq!(
        s.books.book(&tickers[0]).unwrap().yes_size_at(Price::from_cents(5).unwrap()),
        Count::from_contracts(5)
    );
    s.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn buffer_overflow_error_25_is_resynced() {
    let sim = start(|c| c.ws.queue_capacity = 4).await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let mut s = subscribe(&sim, &tickers, false).await;
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let other = other_trader(&h);
    let before = s.counters();

    // The connection stops reading the event stream while more batches than its queue
    // holds are published; on resuming it has lagged and drops the subscription (error 25).
    h.inject(Fault::PauseWs);
    for i in 0..12 {
        rest_order(&h, other, &tickers[0], Side::Bid, 1 + (i % 5), 1);
    }
    h.inject(Fault::ResumeWs);
    let mut overflow = false;
    let sub = s.sub;
    next_event(
        &mut s.rx,
        |e| {
            if let WsEvent::Book(BookEvent::BookInvalid { reason, .. }) = e {
                overflow |= *reason == InvalidReason::BufferOverflow;
            }
        },
        |e| matches!(e, WsEvent::Subscribed { sub: x, .. } if *x == sub),
    )
    .await;
    assert!(overflow, "the books were invalidated by error 25");
    assert!(h.fault_stats().slow_consumer_drops >= 1);
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let c = s.counters();
    assert_eq!(c.buffer_overflows, before.buffer_overflows + 1, "{c:?}");
    let subs = s.ws.list_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(h.fault_stats().ws_connections, 1, "healed without reconnecting");
    s.stop().await;
    sim.shutdown().await;
}
