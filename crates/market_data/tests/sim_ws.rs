//! The WebSocket session and BookSync against the simulator on a manual clock: dropped
//! connections, sequence gaps, repeated sequence numbers and buffer overflows, each healed
//! until the client's books equal the simulator's own.

mod sim_common;

use std::collections::BTreeSet;

use kalshi_sim::engine::{AccountId, OrderRequest, Side};
use kalshi_sim::{Fault, Sim, SimHandle};
use market_data::sync::{
    BookEvent, BookSync, InvalidReason, SyncCounters, TickerCheck, TickerVerdict,
};
use market_data::wire::WsMessage;
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
    /// Every event consumed while setting up (in order).
    early: Vec<WsEvent>,
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
    session(sim, vec![], tickers, use_yes_price).await
}

/// A session that first makes the subscriptions in `first`, then subscribes to the order
/// books of `tickers` and waits until every one of them is valid.
async fn session(
    sim: &Sim,
    first: Vec<SubscribeRequest>,
    tickers: &[String],
    use_yes_price: bool,
) -> Session {
    let shutdown = CancellationToken::new();
    let (ws, mut rx, task) = ws::spawn(ws_config(sim), Some(signer(sim)), shutdown.clone());
    for r in first {
        ws.subscribe(r).await.expect("subscribed");
    }
    let req = SubscribeRequest::orderbook(
        tickers.iter().map(|t| t.as_str().into()).collect(),
        use_yes_price,
    );
    let sub = ws.subscribe(req).await.expect("subscribed").sub;
    let mut valid = BTreeSet::new();
    let mut early = Vec::new();
    while valid.len() < tickers.len() {
        let e = next_event(
            &mut rx,
            |e| early.push(e.clone()),
            |e| matches!(e, WsEvent::Book(BookEvent::BookValid { .. })),
        )
        .await;
        if let WsEvent::Book(BookEvent::BookValid { ticker, .. }) = &e {
            valid.insert(ticker.to_string());
        }
        early.push(e);
    }
    let books = ws.books();
    Session {
        ws,
        rx,
        books,
        sub,
        early,
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
    assert!(s
        .books
        .book(&tickers[0])
        .unwrap()
        .same_levels(&rest_book(&client, &tickers[0]).await));

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
    assert!(tickers.iter().all(|t| !s.books.book(t).unwrap().is_valid()));

    // The session reconnects and makes the same subscription again.
    let sub = s.sub;
    next_event(
        &mut s.rx,
        |_| {},
        |e| matches!(e, WsEvent::Connected { .. }),
    )
    .await;
    next_event(
        &mut s.rx,
        |_| {},
        |e| matches!(e, WsEvent::Subscribed { sub: x, .. } if *x == sub),
    )
    .await;
    // Fresh snapshots make the books valid and equal to the simulator's.
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    assert!(
        s.counters().snapshots >= snapshots0 + 2,
        "{:?}",
        s.counters()
    );

    // And the new stream keeps them equal.
    let applied1 = s.counters().applied;
    for _ in 0..8 {
        h.advance_by(250).unwrap();
    }
    rest_order(&h, other, &tickers[0], Side::Bid, 2, 5);
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    assert!(s.counters().applied > applied1, "{:?}", s.counters());
    for t in &tickers {
        assert!(s
            .books
            .book(t)
            .unwrap()
            .same_levels(&rest_book(&client, t).await));
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
        WsEvent::Resyncing {
            sub, old_sid: o, ..
        } => {
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
        s.books
            .book(&tickers[0])
            .unwrap()
            .yes_size_at(Price::from_cents(4).unwrap()),
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
    assert_eq!(
        h.fault_stats().ws_connections,
        1,
        "healed without reconnecting"
    );
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
        s.books
            .book(&tickers[0])
            .unwrap()
            .yes_size_at(Price::from_cents(5).unwrap()),
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
    assert_eq!(
        h.fault_stats().ws_connections,
        1,
        "healed without reconnecting"
    );
    s.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn update_subscription_add_delete_and_get_snapshot() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let (active, next) = (tickers[0].clone(), tickers[1].clone());
    let mut s = subscribe(&sim, std::slice::from_ref(&active), false).await;
    await_books_match(&h, &s.books, &mut s.rx, std::slice::from_ref(&active)).await;
    let other = other_trader(&h);

    // add_markets: the new market's snapshot joins the same sid.
    let now =
        s.ws.add_markets(s.sub, vec![next.as_str().into()])
            .await
            .unwrap();
    let now: BTreeSet<String> = now.iter().map(|t| t.to_string()).collect();
    assert_eq!(now, tickers.iter().cloned().collect());
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let sid = s.books.book(&active).unwrap().sid();
    assert_eq!(s.books.book(&next).unwrap().sid(), sid, "one sid for both");

    // get_snapshot: fresh snapshots in sequence, no gap, books still equal.
    rest_order(&h, other, &active, Side::Bid, 6, 1);
    let before = s.counters();
    s.ws.get_snapshot(s.sub, vec![active.as_str().into()])
        .await
        .unwrap();
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let c = s.counters();
    assert_eq!(c.snapshots, before.snapshots + 1, "{c:?}");
    assert_eq!(c.gaps, 0);
    assert_eq!(s.books.book(&active).unwrap().sid(), sid);

    // delete_markets: the book is dropped and its deltas stop.
    let left =
        s.ws.delete_markets(s.sub, vec![active.as_str().into()])
            .await
            .unwrap();
    assert_eq!(left, vec![next.as_str().into()]);
    assert!(s.books.book(&active).is_none());
    let applied = s.counters().applied;
    rest_order(&h, other, &active, Side::Bid, 7, 1);
    // Barrier: get_snapshot's answer follows every delta published before it.
    s.ws.get_snapshot(s.sub, vec![next.as_str().into()])
        .await
        .unwrap();
    assert_eq!(
        s.counters().applied,
        applied,
        "no delta for a deleted market"
    );
    assert!(s.books.book(&active).is_none());
    assert_eq!(s.counters().gaps, 0);
    s.stop().await;
    sim.shutdown().await;
}

/// Feeds one event into a replica of the session's books and a ticker cross-check.
fn replay(
    e: &WsEvent,
    local: &mut BookSync,
    check: &mut TickerCheck,
    verdicts: &mut Vec<TickerVerdict>,
) {
    let WsEvent::Frame(f) = e else { return };
    let Ok(frame) = &f.parsed else {
        panic!("unparseable frame from the simulator: {}", f.text)
    };
    if let WsMessage::Ticker(t) = &frame.msg {
        verdicts.push(check.check(t));
        return;
    }
    let mut evs = Vec::new();
    local.apply(frame, &mut evs);
    for ev in evs {
        match ev {
            BookEvent::BookChanged { ticker, ts_ms, .. } => {
                let top = local.book(ticker.as_str()).expect("changed book").top();
                check.record(&ticker, ts_ms, top);
            }
            BookEvent::BookInvalid { ticker, .. } => check.forget(ticker.as_str()),
            _ => {}
        }
    }
}

#[tokio::test]
async fn ticker_frames_agree_with_the_rebuilt_books() {
    // Noise takers trade, the maker requotes: the top of book and the ticker move.
    let sim = start(|c| c.engine.noise.takers_per_minute = 240.0).await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let mt: Vec<_> = tickers.iter().map(|t| t.as_str().into()).collect();
    let mut s = session(&sim, vec![SubscribeRequest::ticker(mt)], &tickers, false).await;
    let mut local = BookSync::new();
    let mut check = TickerCheck::new(10_000);
    let mut verdicts = Vec::new();
    for e in &s.early {
        replay(e, &mut local, &mut check, &mut verdicts);
    }
    let other = other_trader(&h);
    for i in 0..28 {
        h.advance_by(250).unwrap();
        if i % 7 == 0 {
            // Orders that move the top of book.
            let best = sim_book(&h, &tickers[0]).best_yes_bid().unwrap().price;
            let better = Price::from_micros(best.micros() + 10_000).unwrap();
            rest_order(
                &h,
                other,
                &tickers[0],
                Side::Bid,
                better.micros() / 10_000,
                2,
            );
        }
        while let Ok(e) = s.rx.try_recv() {
            replay(&e, &mut local, &mut check, &mut verdicts);
        }
    }
    // Barrier: once get_snapshot answers, every earlier frame's event is queued.
    let ws = s.ws.clone();
    let (sub, all) = (s.sub, tickers.iter().map(|t| t.as_str().into()).collect());
    let mut barrier = tokio::spawn(async move { ws.get_snapshot(sub, all).await });
    loop {
        tokio::select! {
            r = &mut barrier => { r.unwrap().unwrap(); break; }
            e = s.rx.recv() => replay(&e.expect("session"), &mut local, &mut check, &mut verdicts),
        }
    }
    while let Ok(e) = s.rx.try_recv() {
        replay(&e, &mut local, &mut check, &mut verdicts);
    }
    let agree = verdicts
        .iter()
        .filter(|v| **v == TickerVerdict::Agree)
        .count();
    let disagree: Vec<_> = verdicts
        .iter()
        .filter(|v| matches!(v, TickerVerdict::Disagree { .. }))
        .collect();
    assert!(agree >= 5, "{verdicts:?}");
    assert!(disagree.is_empty(), "{disagree:?}");
    assert!(h.with_engine(|e| !e.trades().is_empty()), "trades happened");
    // The replica built from the frames equals the session's books and the simulator's.
    for t in &tickers {
        let mine = local.book(t).unwrap();
        assert!(mine.is_valid());
        assert!(mine.same_levels(&s.books.book(t).unwrap()));
        assert!(mine.same_levels(&sim_book(&h, t)));
    }
    assert_eq!(local.counters().gaps, 0);
    s.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn books_follow_a_market_rotation() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let mut s = subscribe(&sim, &tickers, false).await;
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let closing = h.active_market().unwrap();
    // Through the close of the active market and the open of the next.
    h.advance_to(closing.close_ms + 2_500).unwrap();
    let now_active = h.active_market().unwrap().ticker.to_string();
    assert_eq!(now_active, tickers[1], "the next market opened");
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    assert!(
        s.books.book(&tickers[0]).unwrap().depth() == (0, 0),
        "the closed market's resting orders were cancelled: {:?}",
        s.books.book(&tickers[0])
    );
    assert!(
        s.books.book(&tickers[1]).unwrap().depth() != (0, 0),
        "the maker quotes the new market"
    );
    assert_eq!(s.counters().gaps, 0);
    s.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn two_orderbook_subscriptions_sharing_a_sid_both_heal_after_a_gap() {
    // API.md §5.2: subscribing to a channel again adds markets to the existing subscription,
    // so the exchange may answer the second subscribe with the first one's sid.
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let mut s = subscribe(&sim, std::slice::from_ref(&tickers[0]), false).await;
    let second =
        s.ws.subscribe(SubscribeRequest::orderbook(
            vec![tickers[1].as_str().into()],
            false,
        ))
        .await
        .unwrap();
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let other = other_trader(&h);

    h.inject(Fault::SkipSeq { count: 1 });
    rest_order(&h, other, &tickers[0], Side::Bid, 4, 9);
    next_event(
        &mut s.rx,
        |_| {},
        |e| matches!(e, WsEvent::Resyncing { .. }),
    )
    .await;
    rest_order(&h, other, &tickers[0], Side::Bid, 3, 1);
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let sids: BTreeSet<_> = tickers
        .iter()
        .map(|t| s.books.book(t).unwrap().sid())
        .collect();
    assert_eq!(sids.len(), 1, "still one shared sid: {sids:?}");
    assert_eq!(s.counters().gaps, 1);

    // Unsubscribing one of them must not silence the other.
    s.ws.unsubscribe(second.sub).await.unwrap();
    let first = std::slice::from_ref(&tickers[0]);
    rest_order(&h, other, &tickers[0], Side::Ask, 93, 2);
    await_books_match(&h, &s.books, &mut s.rx, first).await;
    assert!(
        s.books.book(&tickers[1]).is_none_or(|b| !b.is_valid()),
        "the unsubscribed market is no longer maintained"
    );
    let subs = s.ws.list_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    rest_order(&h, other, &tickers[0], Side::Bid, 2, 3);
    await_books_match(&h, &s.books, &mut s.rx, first).await;
    s.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn scheduled_gaps_repeats_and_drops_still_converge() {
    use kalshi_sim::ScheduledFault;
    // Faults fire as simulated time passes, interleaving with resyncs and reconnects.
    let sim = start(|c| {
        c.engine.noise.takers_per_minute = 120.0;
        c.fault_schedule = vec![
            ScheduledFault {
                every_ms: 900,
                fault: Fault::SkipSeq { count: 1 },
            },
            ScheduledFault {
                every_ms: 700,
                fault: Fault::RepeatSeq { count: 2 },
            },
            ScheduledFault {
                every_ms: 2_600,
                fault: Fault::DropWsConnections,
            },
        ];
    })
    .await;
    let h = sim.handle();
    let tickers = live_tickers(&h);
    let mut s = subscribe(&sim, &tickers, true).await;
    let other = other_trader(&h);
    for i in 0..30 {
        h.advance_by(250).unwrap();
        rest_order(&h, other, &tickers[0], Side::Bid, 1 + i % 9, 1);
        while s.rx.try_recv().is_ok() {}
    }
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    let st = h.fault_stats();
    assert!(
        st.seq_skipped >= 1 && st.seq_repeated >= 1 && st.ws_dropped >= 1,
        "{st:?}"
    );
    let c = s.counters();
    assert!(c.gaps >= 1 && c.duplicates >= 1, "{c:?}");
    // Still converged after more quiet updates.
    rest_order(&h, other, &tickers[0], Side::Ask, 99, 1);
    await_books_match(&h, &s.books, &mut s.rx, &tickers).await;
    s.stop().await;
    sim.shutdown().await;
}
