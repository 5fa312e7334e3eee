//! The WebSocket API through an independent client (tokio-tungstenite), on a manual clock.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use kalshi_sim::engine::MarketResult;
use kalshi_sim::{Fault, WsConfig};
use pipeline::money::{Count, Money, Price};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Book = BTreeMap<(String, Price), Count>;

fn apply_snapshot(book: &mut Book, msg: &Value) {
    book.clear();
    for side in ["yes", "no"] {
        if let Some(levels) = msg[format!("{side}_dollars_fp")].as_array() {
            for l in levels {
                let p = Price::parse_dollars(l[0].as_str().unwrap()).unwrap();
                let c = Count::parse(l[1].as_str().unwrap()).unwrap();
                book.insert((side.to_string(), p), c);
            }
        }
    }
}

fn apply_delta(book: &mut Book, msg: &Value) {
    let side = msg["side"].as_str().unwrap().to_string();
    let p = Price::parse_dollars(msg["price_dollars"].as_str().unwrap()).unwrap();
    let d = Count::parse(msg["delta_fp"].as_str().unwrap()).unwrap();
    let e = book.entry((side, p)).or_default();
    *e += d;
    assert!(!e.is_negative(), "a level went negative: {msg}");
    if e.is_zero() {
        book.retain(|_, c| !c.is_zero());
    }
}

fn rest_book(v: &Value) -> Book {
    let mut b = Book::new();
    for (side, key) in [("yes", "yes_dollars"), ("no", "no_dollars")] {
        for l in v["orderbook_fp"][key].as_array().unwrap() {
            b.insert(
                (
                    side.to_string(),
                    Price::parse_dollars(l[0].as_str().unwrap()).unwrap(),
                ),
                Count::parse(l[1].as_str().unwrap()).unwrap(),
            );
        }
    }
    b
}

/// Sends `get_snapshot` for `t` and reads up to its `ok`: every delta sent before the
/// snapshot arrives first (checked against the snapshot). Returns the deltas read.
async fn barrier(
    ws: &mut Ws,
    id: u64,
    sid: u64,
    t: &str,
    last: &mut u64,
    books: &mut BTreeMap<String, Book>,
    check: bool,
) -> usize {
    ws_send(ws, json!({"id": id, "cmd": "update_subscription", "params": {"sids": [sid], "market_tickers": [t], "action": "get_snapshot"}})).await;
    let mut deltas = 0;
    loop {
        let m = ws_next(ws).await;
        match m["type"].as_str().unwrap() {
            "ok" if m["id"] == id => {
                assert_eq!(m["seq"].as_u64(), Some(*last), "ok carries the current seq");
                return deltas;
            }
            "ok" | "subscribed" => continue,
            _ => {}
        }
        let seq = m["seq"].as_u64().expect("sequenced");
        assert_eq!(seq, *last + 1, "contiguous seq per sid across markets: {m}");
        *last = seq;
        assert_eq!(m["sid"].as_u64(), Some(sid));
        let market = m["msg"]["market_ticker"].as_str().unwrap().to_string();
        let book = books.entry(market.clone()).or_default();
        match m["type"].as_str().unwrap() {
            "orderbook_snapshot" => {
                let mut snap = Book::new();
                apply_snapshot(&mut snap, &m["msg"]);
                if market == t && check {
                    assert_eq!(
                        &snap, book,
                        "snapshot = book rebuilt from the deltas before it"
                    );
                }
                *book = snap;
            }
            "orderbook_delta" => {
                apply_delta(book, &m["msg"]);
                deltas += 1;
                assert!(m["msg"]["ts_ms"].as_i64().unwrap() > START);
                assert!(m["msg"].get("client_order_id").is_none(), "not our order");
            }
            other => panic!("unexpected {other}: {m}"),
        }
    }
}

#[tokio::test]
async fn snapshot_then_contiguous_deltas_rebuild_the_rest_book() {
    let sim = start(|c| {
        c.engine.noise.takers_per_minute = 120.0;
        c.engine.market_duration_ms = 60_000;
        c.engine.listing_lead_ms = 60_000;
    })
    .await;
    let h = sim.handle();
    let t = active_ticker(&sim);
    let next = h.markets()[1].ticker.to_string();
    let mut ws = ws_connect(&sim, 0).await;
    ws_send(&mut ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [t]}})).await;
    let sub = ws_next(&mut ws).await;
    assert_eq!(sub["type"], "subscribed");
    assert_eq!(sub["id"], 1);
    assert_eq!(sub["msg"]["channel"], "orderbook_delta");
    let sid = sub["msg"]["sid"].as_u64().unwrap();
    let snap = ws_next(&mut ws).await;
    assert_eq!(snap["type"], "orderbook_snapshot");
    assert_eq!(
        (snap["sid"].as_u64(), snap["msg"]["market_ticker"].as_str()),
        (Some(sid), Some(t.as_str()))
    );
    let mut last = snap["seq"].as_u64().unwrap();
    assert_eq!(last, 1);
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    let mut book = Book::new();
    apply_snapshot(&mut book, &snap["msg"]);
    assert!(!book.is_empty());
    books.insert(t.clone(), book);

    // Add the next market to the same sid: its snapshot joins the same sequence.
    ws_send(&mut ws, json!({"id": 2, "cmd": "update_subscription", "params": {"sid": sid, "market_tickers": [next], "action": "add_markets"}})).await;
    let ok = ws_next_of(&mut ws, "ok").await;
    assert_eq!(ok["id"], 2);
    let add_snap_seq = ok["seq"].as_u64().unwrap();
    assert_eq!(
        add_snap_seq,
        last + 1,
        "the added market's snapshot took one seq"
    );
    last = add_snap_seq;

    let mut deltas = 0;
    let mut round = 10;
    while deltas < 40 {
        round += 1;
        assert!(round < 60, "too few deltas: {deltas}");
        for _ in 0..4 {
            h.advance_by(250).unwrap();
        }
        deltas += barrier(&mut ws, round, sid, &t, &mut last, &mut books, true).await;
    }
    let c = Client::new(&sim, 0);
    let (_, rest) = c.get(&format!("/markets/{t}/orderbook")).await;
    assert_eq!(books[&t], rest_book(&rest), "snapshot + deltas = REST book");
    sim.shutdown().await;
}

#[tokio::test]
async fn use_yes_price_shows_no_bids_as_yes_asks() {
    let sim = start(|_| {}).await;
    let t = active_ticker(&sim);
    let mut ws = ws_connect(&sim, 0).await;
    ws_send(&mut ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": t, "use_yes_price": true}})).await;
    ws_next_of(&mut ws, "subscribed").await;
    let snap = ws_next_of(&mut ws, "orderbook_snapshot").await;
    let (_, rest) = Client::new(&sim, 0)
        .get(&format!("/markets/{t}/orderbook"))
        .await;
    let mut want: Vec<(Price, Count)> = rest["orderbook_fp"]["no_dollars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                Price::parse_dollars(l[0].as_str().unwrap())
                    .unwrap()
                    .complement(),
                Count::parse(l[1].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    want.sort();
    let got: Vec<(Price, Count)> = snap["msg"]["no_dollars_fp"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                Price::parse_dollars(l[0].as_str().unwrap()).unwrap(),
                Count::parse(l[1].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    // YES-scale NO levels sit above the YES bids.
    let best_yes_bid = Price::parse_dollars(
        snap["msg"]["yes_dollars_fp"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()[0]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(got[0].0 > best_yes_bid);
    sim.shutdown().await;
}

#[tokio::test]
async fn commands_answer_with_kalshis_error_codes() {
    let sim = start(|_| {}).await;
    let t = active_ticker(&sim);
    let mut ws = ws_connect(&sim, 0).await;
    let cases = [
        (json!({"id": 1, "cmd": "frobnicate"}), 5),
        (json!({"id": 2, "cmd": "subscribe"}), 2),
        (
            json!({"id": 3, "cmd": "subscribe", "params": {"channels": []}}),
            3,
        ),
        (
            json!({"id": 4, "cmd": "subscribe", "params": {"channels": ["nope"]}}),
            8,
        ),
        (
            json!({"id": 5, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}),
            14,
        ),
        (
            json!({"id": 6, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": ["NOPE-1"]}}),
            16,
        ),
        (json!({"id": 7, "cmd": "unsubscribe", "params": {}}), 4),
        (
            json!({"id": 8, "cmd": "unsubscribe", "params": {"sids": [99]}}),
            7,
        ),
        (
            json!({"id": 9, "cmd": "update_subscription", "params": {"sids": [1, 2], "action": "add_markets"}}),
            12,
        ),
        (
            json!({"id": 10, "cmd": "update_subscription", "params": {"sid": 99, "action": "add_markets", "market_tickers": [t]}}),
            7,
        ),
        (
            json!({"id": 11, "cmd": "update_subscription", "params": {"sid": 99}}),
            15,
        ),
    ];
    for (cmd, code) in cases {
        ws_send(&mut ws, cmd.clone()).await;
        let m = ws_next(&mut ws).await;
        assert_eq!(m["type"], "error", "{cmd} → {m}");
        assert_eq!(m["id"], cmd["id"]);
        assert_eq!(m["msg"]["code"], code, "{cmd} → {m}");
        assert!(m["msg"]["msg"].is_string());
    }
    ws.send_text("not json").await;
    assert_eq!(ws_next(&mut ws).await["msg"]["code"], 1);

    // Idempotent subscribe: same sid; list; unsubscribe.
    ws_send(
        &mut ws,
        json!({"id": 20, "cmd": "subscribe", "params": {"channels": ["ticker", "trade"]}}),
    )
    .await;
    let a = ws_next_of(&mut ws, "subscribed").await;
    let b = ws_next_of(&mut ws, "subscribed").await;
    assert_eq!(
        (a["msg"]["channel"].as_str(), b["msg"]["channel"].as_str()),
        (Some("ticker"), Some("trade"))
    );
    ws_send(
        &mut ws,
        json!({"id": 21, "cmd": "subscribe", "params": {"channels": ["ticker"]}}),
    )
    .await;
    let again = ws_next_of(&mut ws, "subscribed").await;
    assert_eq!(again["msg"]["sid"], a["msg"]["sid"]);
    ws_send(&mut ws, json!({"id": 22, "cmd": "list_subscriptions"})).await;
    let l = ws_next_of(&mut ws, "ok").await;
    assert_eq!(l["id"], 22);
    assert_eq!(l["msg"].as_array().unwrap().len(), 2);
    ws_send(
        &mut ws,
        json!({"id": 23, "cmd": "unsubscribe", "params": {"sids": [a["msg"]["sid"]]}}),
    )
    .await;
    let u = ws_next_of(&mut ws, "unsubscribed").await;
    assert_eq!(
        (u["id"].as_u64(), u["sid"].clone()),
        (Some(23), a["msg"]["sid"].clone())
    );
    sim.shutdown().await;
}

trait SendText {
    async fn send_text(&mut self, t: &str);
}
impl SendText for Ws {
    async fn send_text(&mut self, t: &str) {
        use futures_util::SinkExt;
        self.send(Message::Text(t.to_string().into()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn private_channels_see_only_their_own_activity() {
    let sim = start(|c| c.engine.maker.enabled = false).await;
    let h = sim.handle();
    let (id1, k1) = key(1);
    h.add_user(&id1, k1.public_key(), Money::from_cents(100_000));
    let t = active_ticker(&sim);
    let mut ws = ws_connect(&sim, 0).await;
    ws_send(&mut ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [t]}})).await;
    ws_next_of(&mut ws, "orderbook_snapshot").await;
    ws_send(&mut ws, json!({"id": 2, "cmd": "subscribe", "params": {"channels": ["fill", "user_orders", "market_positions", "ticker", "trade"]}})).await;
    for _ in 0..5 {
        ws_next_of(&mut ws, "subscribed").await;
    }
    let me = Client::new(&sim, 0);
    let other = Client::new(&sim, 1);
    // The other user's resting order: a delta without client_order_id.
    let mut o = order(&t, "ask", "0.60", "3.00", "good_till_canceled");
    o["client_order_id"] = json!("theirs");
    other.spost("/portfolio/events/orders", &o).await;
    let d = ws_next_of(&mut ws, "orderbook_delta").await;
    assert_eq!(
        (
            d["msg"]["side"].as_str(),
            d["msg"]["price_dollars"].as_str(),
            d["msg"]["delta_fp"].as_str()
        ),
        (Some("no"), Some("0.4000"), Some("3.00"))
    );
    assert!(d["msg"].get("client_order_id").is_none());
    ws_next_of(&mut ws, "ticker").await;
    // Mine: the delta names my client_order_id, and I get fill, user_order, market_position.
    let mut mine = order(&t, "bid", "0.60", "2.00", "good_till_canceled");
    mine["client_order_id"] = json!("mine-1");
    let (st, _) = me.spost("/portfolio/events/orders", &mine).await;
    assert_eq!(st, 201);
    let mut kinds = BTreeMap::new();
    while kinds.len() < 6 {
        let m = ws_next(&mut ws).await;
        kinds.insert(m["type"].as_str().unwrap().to_string(), m);
    }
    let fill = &kinds["fill"]["msg"];
    assert_eq!(
        (
            fill["count_fp"].as_str(),
            fill["yes_price_dollars"].as_str(),
            fill["fee_cost"].as_str()
        ),
        (Some("2.00"), Some("0.6000"), Some("0.0400"))
    );
    assert_eq!(
        (
            fill["is_taker"].as_bool(),
            fill["post_position_fp"].as_str(),
            fill["client_order_id"].as_str()
        ),
        (Some(true), Some("2.00"), Some("mine-1"))
    );
    assert_eq!(kinds["user_order"]["msg"]["status"], "executed");
    assert_eq!(kinds["market_position"]["msg"]["position_fp"], "2.00");
    assert_eq!(kinds["trade"]["msg"]["taker_book_side"], "bid");
    assert_eq!(kinds["ticker"]["msg"]["price_dollars"], "0.6000");
    // The fill consumed the other user's resting order: that delta is theirs, no coid.
    let d = &kinds["orderbook_delta"]["msg"];
    assert_eq!(d["delta_fp"], "-2.00");
    assert!(d.get("client_order_id").is_none());
    // My own resting order: delta with my client_order_id.
    let mut rest = order(&t, "bid", "0.20", "1.00", "good_till_canceled");
    rest["client_order_id"] = json!("mine-2");
    me.spost("/portfolio/events/orders", &rest).await;
    let d = ws_next_of(&mut ws, "orderbook_delta").await;
    assert_eq!(d["msg"]["client_order_id"], "mine-2");
    ws_next_of(&mut ws, "ticker").await;
    // A trade between two other users never reaches my private channels.
    let (id2, k2) = key(2);
    h.add_user(&id2, k2.public_key(), Money::from_cents(100_000));
    let third = Client::new(&sim, 2);
    third
        .spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.60", "1.00", "immediate_or_cancel"),
        )
        .await;
    let mut seen = Vec::new();
    loop {
        let m = ws_next(&mut ws).await;
        if m["type"] == "ticker" {
            assert_eq!(m["msg"]["volume_fp"], "3.00");
            break;
        }
        seen.push(m["type"].as_str().unwrap().to_string());
    }
    assert!(
        !seen
            .iter()
            .any(|k| k == "fill" || k == "user_order" || k == "market_position"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|k| k == "trade") && seen.iter().any(|k| k == "orderbook_delta"),
        "{seen:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn lifecycle_events_follow_the_market() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let t = active_ticker(&sim);
    let mut ws = ws_connect(&sim, 0).await;
    ws_send(
        &mut ws,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["market_lifecycle_v2"]}}),
    )
    .await;
    ws_next_of(&mut ws, "subscribed").await;
    h.force_close(&t, Some(MarketResult::No)).unwrap();
    h.advance_by(3_000).unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        let m = ws_next_of(&mut ws, "market_lifecycle_v2").await;
        if m["msg"]["market_ticker"] == t.as_str() {
            events.push(m["msg"].clone());
        }
    }
    assert_eq!(events[0]["event_type"], "close_date_updated");
    assert_eq!(events[1]["event_type"], "determined");
    assert_eq!(
        (
            events[1]["result"].as_str(),
            events[1]["settlement_value"].as_str()
        ),
        (Some("no"), Some("0.0000"))
    );
    assert_eq!(events[2]["event_type"], "settled");
    // Windows go on: the next market activates and a new one is created.
    h.advance_by(common::MARKET_MS).unwrap();
    let mut kinds = Vec::new();
    while !(kinds.contains(&"created".to_string()) && kinds.contains(&"activated".to_string())) {
        let m = ws_next_of(&mut ws, "market_lifecycle_v2").await;
        let k = m["msg"]["event_type"].as_str().unwrap().to_string();
        if k == "created" {
            assert!(m["msg"]["additional_metadata"]["event_ticker"].is_string());
            assert!(m["msg"]["close_ts"].as_i64().unwrap() > m["msg"]["open_ts"].as_i64().unwrap());
        }
        kinds.push(k);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn ws_faults_gaps_repeats_drops_and_slow_consumers() {
    let sim = start(|c| {
        c.ws = WsConfig {
            ping_interval: Duration::from_secs(3600),
            queue_capacity: 8,
        }
    })
    .await;
    let h = sim.handle();
    let t = active_ticker(&sim);
    let c = Client::new(&sim, 0);
    let mut ws = ws_connect(&sim, 0).await;
    ws_send(&mut ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [t]}})).await;
    let sub = ws_next_of(&mut ws, "subscribed").await;
    let sid = sub["msg"]["sid"].as_u64().unwrap();
    let snap = ws_next_of(&mut ws, "orderbook_snapshot").await;
    let mut last = snap["seq"].as_u64().unwrap();
    let mut books = BTreeMap::new();
    // Each resting order is exactly one delta (the clock does not move here).
    let mut price = 1;
    let mut rest_one = || {
        price += 1;
        order(
            &t,
            "bid",
            &format!("0.{price:02}"),
            "1.00",
            "good_till_canceled",
        )
    };

    // A skipped sequence number: the client sees a gap of exactly one.
    h.inject(Fault::SkipSeq { count: 1 });
    c.spost("/portfolio/events/orders", &rest_one()).await;
    let m = ws_next_of(&mut ws, "orderbook_delta").await;
    assert_eq!(m["seq"].as_u64().unwrap(), last + 2, "gap: {m}");
    last = m["seq"].as_u64().unwrap();
    assert_eq!(m["msg"]["delta_fp"], "1.00");
    // A repeated one: the same message twice, then contiguous again.
    h.inject(Fault::RepeatSeq { count: 1 });
    c.spost("/portfolio/events/orders", &rest_one()).await;
    let a = ws_next_of(&mut ws, "orderbook_delta").await;
    let b = ws_next_of(&mut ws, "orderbook_delta").await;
    assert_eq!(a["seq"].as_u64(), Some(last + 1));
    assert_eq!(b, a, "the repeat is identical");
    last += 1;
    c.spost("/portfolio/events/orders", &rest_one()).await;
    let n = ws_next_of(&mut ws, "orderbook_delta").await;
    assert_eq!(n["seq"].as_u64(), Some(last + 1));
    last += 1;
    barrier(&mut ws, 2, sid, &t, &mut last, &mut books, false).await;
    let stats = h.fault_stats();
    assert_eq!((stats.seq_skipped, stats.seq_repeated), (1, 1));

    // A slow consumer: the connection stops reading while 20 batches go by (queue 8).
    h.inject(Fault::PauseWs);
    // Control is handled before commands: once this is answered, the pause is in force.
    ws_send(&mut ws, json!({"id": 5, "cmd": "list_subscriptions"})).await;
    let l = ws_next_of(&mut ws, "ok").await;
    assert_eq!(l["id"], 5);
    for _ in 0..20 {
        c.spost("/portfolio/events/orders", &rest_one()).await;
    }
    h.inject(Fault::ResumeWs);
    let e = ws_next_of(&mut ws, "error").await;
    assert_eq!(
        (e["msg"]["code"].as_u64(), e["msg"]["sid"].as_u64()),
        (Some(25), Some(sid)),
        "{e}"
    );
    assert_eq!(h.fault_stats().slow_consumer_drops, 1);
    ws_send(&mut ws, json!({"id": 6, "cmd": "list_subscriptions"})).await;
    let l = ws_next_of(&mut ws, "ok").await;
    assert_eq!(l["msg"], json!([]), "the subscription was dropped");

    // Dropped connections: the stream ends without a close frame.
    let mut ws2 = ws_connect(&sim, 0).await;
    h.inject(Fault::DropWsConnections);
    for w in [&mut ws, &mut ws2] {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), w.next())
                .await
                .expect("ends")
            {
                None | Some(Err(_)) => break,
                Some(Ok(Message::Close(_))) => panic!("a dropped connection sends no close frame"),
                Some(Ok(_)) => continue,
            }
        }
    }
    assert_eq!(h.fault_stats().ws_dropped, 2);
    // Reconnecting works.
    let mut ws3 = ws_connect(&sim, 0).await;
    ws_send(&mut ws3, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [t]}})).await;
    assert_eq!(ws_next_of(&mut ws3, "orderbook_snapshot").await["seq"], 1);
    assert_eq!(h.fault_stats().ws_connections, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn upgrade_needs_auth_and_server_pings_heartbeat() {
    let sim = start(|c| {
        c.ws = WsConfig {
            ping_interval: Duration::from_millis(100),
            queue_capacity: 64,
        }
    })
    .await;
    // No headers: refused before the upgrade.
    let err = tokio_tungstenite::connect_async(sim.ws_url())
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    let mut ws = ws_connect(&sim, 0).await;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Ping(p) = m {
            assert_eq!(&p[..], b"heartbeat");
            break;
        }
    }
    sim.shutdown().await;
}
