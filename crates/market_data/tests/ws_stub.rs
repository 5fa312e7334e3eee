//! Transport-level behaviour of the WebSocket session against a scripted loopback server
//! (not a Kalshi simulator: just enough protocol to drive reconnects, watchdog, resync and
//! command replies). Every wait is on an event; the outer timeout only prevents a hang.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use market_data::book::NoPriceConvention;
use market_data::sync::{BookEvent, InvalidReason};
use market_data::ws::{self, SubscribeRequest, WsConfig, WsError, WsEvent};
use pipeline::money::Count;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

type Srv = WebSocketStream<TcpStream>;
const LIMIT: Duration = Duration::from_secs(20);

// The handshake callback's signature is tungstenite's.
#[allow(clippy::result_large_err)]
async fn accept(l: &TcpListener, public: &rsa::RsaPublicKey) -> Srv {
    let (tcp, _) = l.accept().await.unwrap();
    let public = public.clone();
    tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, resp: Response| {
        assert_eq!(req.uri().path(), "/trade-api/ws/v2");
        let h = req.headers();
        common::verify_headers(
            &public,
            |k| h.get(k).map(|v| v.to_str().unwrap().to_string()),
            "GET",
            "/trade-api/ws/v2",
        )
        .expect("upgrade is signed for /trade-api/ws/v2");
        Ok(resp)
    })
    .await
    .unwrap()
}

/// Next command from the client (control frames skipped).
async fn cmd(ws: &mut Srv) -> Value {
    loop {
        match ws.next().await.expect("client closed").unwrap() {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            m => panic!("unexpected {m:?}"),
        }
    }
}

async fn send(ws: &mut Srv, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn next_event(rx: &mut mpsc::Receiver<WsEvent>, want: impl Fn(&WsEvent) -> bool) -> WsEvent {
    tokio::time::timeout(LIMIT, async {
        loop {
            let e = rx.recv().await.expect("session ended");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event did not come")
}

fn fast_cfg(url: String) -> WsConfig {
    let mut c = WsConfig::new(url);
    c.ping_interval = None;
    c.idle_timeout = Duration::from_secs(30);
    c.command_timeout = Duration::from_secs(10);
    c.reconnect.initial = Duration::from_millis(5);
    c.reconnect.max = Duration::from_millis(20);
    c.seed = Some(1);
    c
}

#[tokio::test]
async fn subscribe_reconnect_resubscribe_resync_and_pong() {
    let (signer, public) = common::test_signer();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/trade-api/ws/v2", l.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let (h, mut rx, task) = ws::spawn(fast_cfg(url), Some(signer), shutdown.clone());

    // Connection 1: subscribe, snapshot, delta; then the server drops the socket.
    let client = {
        let h = h.clone();
        tokio::spawn(async move {
            h.subscribe(SubscribeRequest::orderbook(vec!["A".into()], false))
                .await
        })
    };
    let mut s = accept(&l, &public).await;
    let c = cmd(&mut s).await;
    assert_eq!(c["cmd"], "subscribe");
    assert_eq!(
        c["params"],
        json!({"channels":["orderbook_delta"],"market_tickers":["A"],"use_yes_price":false})
    );
    send(
        &mut s,
        json!({"id": c["id"], "type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}),
    )
    .await;
    let sub = client.await.unwrap().unwrap();
    assert_eq!(sub.sid, 1);
    send(&mut s, json!({"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"A","yes_dollars_fp":[["0.40","10.00"]],"no_dollars_fp":[["0.55","5.00"]]}})).await;
    send(&mut s, json!({"type":"orderbook_delta","sid":1,"seq":2,"msg":{"market_ticker":"A","price_dollars":"0.41","delta_fp":"2.50","side":"yes","ts_ms":1}})).await;
    next_event(&mut rx, |e| {
        matches!(
            e,
            WsEvent::Book(BookEvent::BookChanged { seq: Some(2), .. })
        )
    })
    .await;
    let b = h.books().book("A").unwrap();
    assert!(b.is_valid());
    assert_eq!(
        b.best_yes_bid().unwrap().size,
        Count::parse("2.50").unwrap()
    );
    assert_eq!(b.convention(), NoPriceConvention::NoLeg);
    drop(s);
    next_event(&mut rx, |e| {
        matches!(
            e,
            WsEvent::Book(BookEvent::BookInvalid {
                reason: InvalidReason::ConnectionLost,
                ..
            })
        )
    })
    .await;
    next_event(&mut rx, |e| matches!(e, WsEvent::Disconnected { .. })).await;

    // Connection 2: fresh signed upgrade, the same subscription is made again.
    let mut s = accept(&l, &public).await;
    next_event(&mut rx, |e| matches!(e, WsEvent::Connected { attempt: 2 })).await;
    let c = cmd(&mut s).await;
    assert_eq!(c["cmd"], "subscribe");
    assert_eq!(c["id"], 1, "ids restart per connection");
    assert_eq!(c["params"]["market_tickers"], json!(["A"]));
    send(&mut s, json!({"id": c["id"], "type":"subscribed","sid":7})).await; // flat form
    match next_event(&mut rx, |e| matches!(e, WsEvent::Subscribed { .. })).await {
        WsEvent::Subscribed { sub: s2, sid, .. } => assert_eq!((s2, sid), (sub.sub, 7)),
        _ => unreachable!(),
    }
    assert!(
        !h.books().book("A").unwrap().is_valid(),
        "stale until a snapshot"
    );
    send(&mut s, json!({"type":"orderbook_snapshot","sid":7,"seq":1,"msg":{"market_ticker":"A","yes_dollars_fp":[["0.42","1.00"]]}})).await;
    next_event(&mut rx, |e| {
        matches!(e, WsEvent::Book(BookEvent::BookValid { sid: Some(7), .. }))
    })
    .await;

    // Commands answered by id.
    let adder = {
        let h = h.clone();
        let sub = sub.sub;
        tokio::spawn(async move { h.add_markets(sub, vec!["B".into()]).await })
    };
    let c = cmd(&mut s).await;
    assert_eq!(c["cmd"], "update_subscription");
    assert_eq!(
        c["params"],
        json!({"sids":[7],"market_tickers":["B"],"action":"add_markets"})
    );
    send(
        &mut s,
        json!({"id": c["id"], "sid":7, "seq":2, "type":"ok","msg":{"market_tickers":["A","B"]}}),
    )
    .await;
    assert_eq!(
        adder.await.unwrap().unwrap(),
        vec!["A".into(), "B".into()] as Vec<pipeline::MarketTicker>
    );
    let lister = {
        let h = h.clone();
        tokio::spawn(async move { h.list_subscriptions().await })
    };
    let c = cmd(&mut s).await;
    assert_eq!(c["cmd"], "list_subscriptions");
    send(
        &mut s,
        json!({"id": c["id"], "type":"ok","msg":[{"channel":"orderbook_delta","sid":7}]}),
    )
    .await;
    assert_eq!(lister.await.unwrap().unwrap()[0].sid, Some(7));

    // Server ping is answered with the same payload.
    s.send(Message::Ping(b"heartbeat".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(LIMIT, async {
        loop {
            if let Message::Pong(p) = s.next().await.unwrap().unwrap() {
                return p;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"heartbeat");

    // A sequence gap: books invalid, the session unsubscribes and resubscribes.
    send(&mut s, json!({"type":"orderbook_delta","sid":7,"seq":9,"msg":{"market_ticker":"A","price_dollars":"0.42","delta_fp":"1.00","side":"yes"}})).await;
    next_event(
        &mut rx,
        |e| matches!(e, WsEvent::Book(BookEvent::ResyncNeeded(r)) if r.sid == 7),
    )
    .await;
    let c = cmd(&mut s).await;
    assert_eq!(
        (c["cmd"].as_str(), &c["params"]),
        (Some("unsubscribe"), &json!({"sids":[7]}))
    );
    send(
        &mut s,
        json!({"id": c["id"], "sid":7, "seq":10, "type":"unsubscribed"}),
    )
    .await;
    let c = cmd(&mut s).await;
    assert_eq!(c["cmd"], "subscribe");
    assert_eq!(
        c["params"]["market_tickers"],
        json!(["A", "B"]),
        "resubscribes the current market list"
    );
    send(
        &mut s,
        json!({"id": c["id"], "type":"subscribed","msg":{"channel":"orderbook_delta","sid":9}}),
    )
    .await;
    send(&mut s, json!({"type":"orderbook_snapshot","sid":9,"seq":1,"msg":{"market_ticker":"A","yes_dollars_fp":[["0.43","1.00"]]}})).await;
    next_event(&mut rx, |e| {
        matches!(e, WsEvent::Book(BookEvent::BookValid { sid: Some(9), .. }))
    })
    .await;
    assert_eq!(
        h.books()
            .book("A")
            .unwrap()
            .best_yes_bid()
            .unwrap()
            .price
            .to_dollars(),
        "0.4300"
    );

    // Refused command: the error reply reaches the caller.
    let bad = {
        let h = h.clone();
        tokio::spawn(async move {
            h.subscribe(SubscribeRequest::new("no_such_channel", vec![]))
                .await
        })
    };
    let c = cmd(&mut s).await;
    send(
        &mut s,
        json!({"id": c["id"], "type":"error","msg":{"code":8,"msg":"Unknown channel name"}}),
    )
    .await;
    assert_eq!(
        bad.await.unwrap(),
        Err(WsError::Server {
            code: 8,
            msg: "Unknown channel name".into()
        })
    );

    shutdown.cancel();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(h.list_subscriptions().await, Err(WsError::Closed));
}

#[tokio::test]
async fn watchdog_closes_a_silent_socket_and_reconnects() {
    let (signer, public) = common::test_signer();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/trade-api/ws/v2", l.local_addr().unwrap());
    let mut cfg = fast_cfg(url);
    cfg.idle_timeout = Duration::from_millis(100);
    let shutdown = CancellationToken::new();
    let (_h, mut rx, task) = ws::spawn(cfg, Some(signer), shutdown.clone());
    let _silent = accept(&l, &public).await;
    match next_event(&mut rx, |e| matches!(e, WsEvent::Disconnected { .. })).await {
        WsEvent::Disconnected { reason } => assert!(reason.contains("watchdog"), "{reason}"),
        _ => unreachable!(),
    }
    let _again = accept(&l, &public).await;
    next_event(&mut rx, |e| matches!(e, WsEvent::Connected { attempt: 2 })).await;
    shutdown.cancel();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unanswered_ping_ends_a_half_open_connection_long_before_the_watchdog() {
    let (signer, public) = common::test_signer();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/trade-api/ws/v2", l.local_addr().unwrap());
    let mut cfg = fast_cfg(url);
    cfg.idle_timeout = Duration::from_secs(3600);
    cfg.ping_interval = Some(Duration::from_millis(50));
    cfg.pong_timeout = Some(Duration::from_secs(1));
    let shutdown = CancellationToken::new();
    let (_h, mut rx, task) = ws::spawn(cfg, Some(signer), shutdown.clone());
    // The peer never reads, so it never answers a ping: a half-open connection, as far as
    // the client can tell.
    let _half_open = accept(&l, &public).await;
    match next_event(&mut rx, |e| matches!(e, WsEvent::Disconnected { .. })).await {
        WsEvent::Disconnected { reason } => {
            assert!(reason.contains("no answer to a ping"), "{reason}")
        }
        _ => unreachable!(),
    }
    // A peer that reads (tungstenite answers pings as it reads) keeps the connection: no
    // disconnect while it answers 20 pings.
    let mut answering = accept(&l, &public).await;
    next_event(&mut rx, |e| matches!(e, WsEvent::Connected { attempt: 2 })).await;
    let mut pings = 0;
    while pings < 20 {
        match tokio::time::timeout(LIMIT, answering.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(_))) => {}
            other => panic!("the client went away: {other:?}"),
        }
    }
    answering.flush().await.unwrap();
    while let Ok(e) = rx.try_recv() {
        assert!(!matches!(e, WsEvent::Disconnected { .. }), "{e:?}");
    }
    shutdown.cancel();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn wss_connect_builds_a_tls_client_without_panicking() {
    // A plain TCP listener that closes: the TLS handshake fails cleanly (the rustls crypto
    // provider is available), and the session reports a disconnect and retries.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://{}/trade-api/ws/v2", l.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let (_h, mut rx, task) = ws::spawn(fast_cfg(url), None, shutdown.clone());
    let (tcp, _) = l.accept().await.unwrap();
    drop(tcp);
    match next_event(&mut rx, |e| matches!(e, WsEvent::Disconnected { .. })).await {
        WsEvent::Disconnected { reason } => assert!(reason.contains("connect failed"), "{reason}"),
        _ => unreachable!(),
    }
    shutdown.cancel();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn use_yes_price_subscription_is_converted_once() {
    let (signer, public) = common::test_signer();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/trade-api/ws/v2", l.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let (h, mut rx, task) = ws::spawn(fast_cfg(url), Some(signer), shutdown.clone());
    let client = {
        let h = h.clone();
        tokio::spawn(async move {
            h.subscribe(SubscribeRequest::orderbook(vec!["A".into()], true))
                .await
        })
    };
    let mut s = accept(&l, &public).await;
    let c = cmd(&mut s).await;
    assert_eq!(c["params"]["use_yes_price"], true);
    send(
        &mut s,
        json!({"id": c["id"], "type":"subscribed","msg":{"channel":"orderbook_delta","sid":3}}),
    )
    .await;
    // The NO bid at NO-leg 0.55 arrives on the YES scale as 0.45 (directly the YES ask).
    send(&mut s, json!({"type":"orderbook_snapshot","sid":3,"seq":1,"msg":{"market_ticker":"A","yes_dollars_fp":[["0.40","1.00"]],"no_dollars_fp":[["0.45","2.00"]]}})).await;
    client.await.unwrap().unwrap();
    next_event(&mut rx, |e| {
        matches!(e, WsEvent::Book(BookEvent::BookValid { .. }))
    })
    .await;
    let b = h.books().book("A").unwrap();
    assert_eq!(b.convention(), NoPriceConvention::YesScale);
    assert_eq!(b.best_yes_ask().unwrap().price.to_dollars(), "0.4500");
    assert_eq!(b.best_no_bid().unwrap().price.to_dollars(), "0.5500");
    shutdown.cancel();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}
