//! Transport-level behaviour of the REST client against a scripted loopback HTTP server (raw
//! TCP, HTTP/1.1, just enough to answer, fail or drop): signing, pagination and its loop
//! guard, 429 bursts absorbed by backoff, error mapping, and order creation whose answer is
//! lost being resolved by lookup instead of blindly re-sent.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use market_data::backoff::BackoffConfig;
use market_data::rest::{
    CreateOutcome, MarketsQuery, ResolveConfig, RestClient, RestConfig, RestError,
};
use market_data::wire::{CreateOrderRequest, OrderStatus};
use pipeline::money::{Count, Price};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: String,
}

enum Reply {
    Json(u16, Value),
    /// Read the request, then close without answering.
    Drop,
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// Serves `handler` on 127.0.0.1:0; returns the base URL and the log of requests.
async fn serve(handler: Handler) -> (String, Arc<Mutex<Vec<Req>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/trade-api/v2", l.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            let handler = handler.clone();
            let log = log2.clone();
            tokio::spawn(async move {
                let (r, mut w) = tcp.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap().to_string();
                    let target = parts.next().unwrap().to_string();
                    let mut headers = HashMap::new();
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).await.unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                    let len: usize = headers
                        .get("content-length")
                        .map(|v| v.parse().unwrap())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.unwrap();
                    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
                    let query = url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect();
                    let req = Req {
                        method,
                        path: path.to_string(),
                        query,
                        headers,
                        body: String::from_utf8(body).unwrap(),
                    };
                    log.lock().unwrap().push(req.clone());
                    match handler(&req) {
                        Reply::Drop => return,
                        Reply::Json(status, v) => {
                            let b = v.to_string();
                            let resp = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                                b.len()
                            );
                            if w.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (base, log)
}

fn cfg(base: String) -> RestConfig {
    let mut c = RestConfig::new(base);
    c.timeout = Duration::from_secs(5);
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        multiplier: 2,
    };
    c.rate_limits = None;
    c.seed = Some(3);
    c.resolve = ResolveConfig {
        attempts: 3,
        delay: Duration::from_millis(1),
        grace: Duration::ZERO,
        max_resends: 1,
        max_rejected_retries: 3,
    };
    c
}

fn market(t: &str) -> Value {
    json!({"ticker": t, "event_ticker": "E", "status": "active", "yes_bid_dollars": "0.4200"})
}

#[tokio::test]
async fn pagination_follows_cursor_and_every_request_is_signed() {
    let (signer, public) = common::test_signer();
    let (base, log) = serve(Arc::new(|r: &Req| {
        let page = match r.query.get("cursor").map(String::as_str) {
            None => json!({"markets":[market("A"), market("B")], "cursor":"c/1+="}),
            Some("c/1+=") => json!({"markets":[market("C")], "cursor":"c2"}),
            Some("c2") => json!({"markets":[market("D"), market("E")], "cursor":""}),
            Some(c) => panic!("unexpected cursor {c}"),
        };
        Reply::Json(200, page)
    }))
    .await;
    let c = RestClient::new(cfg(base), Some(signer)).unwrap();
    let mut q = MarketsQuery::series("KXBTC15M");
    q.limit = Some(2);
    let ms = c.markets(&q).await.unwrap();
    let tickers: Vec<&str> = ms.iter().map(|m| m.ticker.as_str()).collect();
    assert_eq!(tickers, ["A", "B", "C", "D", "E"]);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3);
    for r in log.iter() {
        assert_eq!(r.path, "/trade-api/v2/markets");
        assert_eq!(
            r.query.get("series_ticker").map(String::as_str),
            Some("KXBTC15M")
        );
        // Signed path includes /trade-api/v2 and excludes the query.
        common::verify_headers(
            &public,
            |k| r.headers.get(&k.to_ascii_lowercase()).cloned(),
            "GET",
            "/trade-api/v2/markets",
        )
        .unwrap();
    }
    assert_eq!(
        log[1].query.get("cursor").map(String::as_str),
        Some("c/1+="),
        "cursor passed back verbatim"
    );
}

#[tokio::test]
async fn repeated_cursor_is_an_error_not_a_loop() {
    let n = Arc::new(Mutex::new(0));
    let n2 = n.clone();
    let (base, _log) = serve(Arc::new(move |_r: &Req| {
        let mut n = n2.lock().unwrap();
        *n += 1;
        Reply::Json(
            200,
            json!({"markets":[market(&format!("M{n}"))], "cursor":"stuck"}),
        )
    }))
    .await;
    let c = RestClient::new(cfg(base), None).unwrap();
    let e = c.markets(&MarketsQuery::default()).await.unwrap_err();
    assert!(matches!(e, RestError::PaginationLoop { .. }), "{e}");
    assert_eq!(*n.lock().unwrap(), 2);
}

#[tokio::test]
async fn burst_of_429_and_5xx_is_absorbed_by_backoff() {
    let n = Arc::new(Mutex::new(0));
    let n2 = n.clone();
    let (base, _log) = serve(Arc::new(move |_r: &Req| {
        let mut n = n2.lock().unwrap();
        *n += 1;
        match *n {
            1 | 2 => Reply::Json(429, json!({"error":"too many requests"})),
            3 => Reply::Json(
                503,
                json!({"error":{"code":"unavailable","message":"try later"}}),
            ),
            _ => Reply::Json(200, json!({"exchange_active":true,"trading_active":true})),
        }
    }))
    .await;
    let c = RestClient::new(cfg(base), None).unwrap();
    let s = c.exchange_status().await.unwrap();
    assert!(s.trading_active);
    assert_eq!(*n.lock().unwrap(), 4);
    // With fewer retries than failures the last error surfaces, typed.
    *n.lock().unwrap() = 0;
    let mut few = cfg(c.config().base_url.clone());
    few.read_retries = 1;
    let c = RestClient::new(few, None).unwrap();
    assert!(matches!(
        c.exchange_status().await,
        Err(RestError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn auth_and_decode_errors_are_typed() {
    let (base, _log) = serve(Arc::new(|r: &Req| match r.path.as_str() {
        "/trade-api/v2/portfolio/balance" => Reply::Json(
            401,
            json!({"error":{"code":"authentication_error","message":"authentication_error","details":"INCORRECT_API_KEY_SIGNATURE"}}),
        ),
        _ => Reply::Json(200, json!({"market": {"no_ticker": true}})),
    }))
    .await;
    let c = RestClient::new(cfg(base), None).unwrap();
    match c.balance().await.unwrap_err() {
        RestError::Unauthorized {
            status: 401,
            details,
            ..
        } => assert_eq!(details.as_deref(), Some("INCORRECT_API_KEY_SIGNATURE")),
        e => panic!("{e}"),
    }
    match c.market("X").await.unwrap_err() {
        RestError::Decode { path, excerpt, .. } => {
            assert_eq!(path, "/markets/X");
            assert!(excerpt.contains("no_ticker"));
        }
        e => panic!("{e}"),
    }
}

/// A tiny order store behind the stub: what the exchange "knows".
#[derive(Default)]
struct Exchange {
    orders: Vec<Value>,
    posts: Vec<Value>,
}

fn order_json(req: &Value, id: &str) -> Value {
    json!({"order_id": id, "client_order_id": req["client_order_id"], "ticker": req["ticker"], "status": "resting",
           "book_side": req["side"], "yes_price_dollars": req["price"], "remaining_count_fp": req["count"], "fill_count_fp": "0.00"})
}

/// `create`: what to do with the n-th POST (1-based).
fn exchange_stub(
    ex: Arc<Mutex<Exchange>>,
    create: fn(usize) -> &'static str,
    as_of_offset_s: i64,
) -> Handler {
    Arc::new(move |r: &Req| {
        let mut ex = ex.lock().unwrap();
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/trade-api/v2/portfolio/events/orders") => {
                let body: Value = serde_json::from_str(&r.body).unwrap();
                ex.posts.push(body.clone());
                let n = ex.posts.len();
                let exists = ex
                    .orders
                    .iter()
                    .any(|o| o["client_order_id"] == body["client_order_id"]);
                match create(n) {
                    "drop_after_placing" => {
                        ex.orders.push(order_json(&body, &format!("o-{n}")));
                        Reply::Drop
                    }
                    "drop_before_placing" => Reply::Drop,
                    "500" => {
                        Reply::Json(500, json!({"error":{"code":"internal","message":"boom"}}))
                    }
                    _ if exists => Reply::Json(
                        409,
                        json!({"error":{"code":"order_already_exists","message":"duplicate client_order_id"}}),
                    ),
                    _ => {
                        ex.orders.push(order_json(&body, &format!("o-{n}")));
                        Reply::Json(
                            201,
                            json!({"order_id": format!("o-{n}"), "client_order_id": body["client_order_id"], "fill_count":"0.00", "remaining_count": body["count"], "ts_ms": 1}),
                        )
                    }
                }
            }
            ("GET", "/trade-api/v2/portfolio/orders") => {
                let t = r.query.get("ticker").cloned().unwrap_or_default();
                let list: Vec<Value> = ex
                    .orders
                    .iter()
                    .filter(|o| o["ticker"] == t.as_str())
                    .cloned()
                    .collect();
                Reply::Json(200, json!({"orders": list, "cursor": ""}))
            }
            ("GET", "/trade-api/v2/exchange/user_data_timestamp") => {
                let t = chrono::Utc::now() + chrono::Duration::seconds(as_of_offset_s);
                Reply::Json(200, json!({"as_of_time": t.to_rfc3339()}))
            }
            _ => Reply::Json(
                404,
                json!({"error":{"code":"not_found","message":"no route"}}),
            ),
        }
    })
}

fn order() -> CreateOrderRequest {
    CreateOrderRequest::buy_no(
        "KXBTC15M-26AUG170130-30",
        Price::parse_dollars("0.30").unwrap(),
        Count::from_contracts(10),
    )
    .client_order_id("my-order-1")
    .build()
    .unwrap()
}

#[tokio::test]
async fn lost_create_response_is_found_by_lookup_not_resent() {
    let ex = Arc::new(Mutex::new(Exchange::default()));
    let (base, _log) = serve(exchange_stub(ex.clone(), |_| "drop_after_placing", 10)).await;
    let c = RestClient::new(cfg(base), None).unwrap();
    match c.create_order_idempotent(&order()).await.unwrap() {
        CreateOutcome::FoundExisting(o) => {
            assert_eq!(o.client_order_id.as_ref().unwrap().as_str(), "my-order-1");
            assert_eq!(o.status, Some(OrderStatus::Resting));
            assert_eq!(o.yes_price(), Some(Price::parse_dollars("0.70").unwrap()));
        }
        o => panic!("{o:?}"),
    }
    let ex = ex.lock().unwrap();
    assert_eq!(ex.posts.len(), 1, "never sent twice");
    assert_eq!(ex.posts[0]["side"], "ask");
    assert_eq!(ex.posts[0]["price"], "0.7000");
}

#[tokio::test]
async fn provably_absent_create_is_resent_with_the_same_client_order_id() {
    let ex = Arc::new(Mutex::new(Exchange::default()));
    let (base, _log) = serve(exchange_stub(
        ex.clone(),
        |n| if n == 1 { "drop_before_placing" } else { "ok" },
        10,
    ))
    .await;
    let c = RestClient::new(cfg(base), None).unwrap();
    assert!(
        matches!(c.create_order_idempotent(&order()).await.unwrap(), CreateOutcome::Placed(a) if a.order_id.as_str() == "o-2")
    );
    let ex = ex.lock().unwrap();
    assert_eq!(ex.posts.len(), 2);
    assert_eq!(
        ex.posts[0]["client_order_id"],
        ex.posts[1]["client_order_id"]
    );
    assert_eq!(ex.orders.len(), 1);
}

#[tokio::test]
async fn duplicate_client_order_id_returns_the_existing_order() {
    let ex = Arc::new(Mutex::new(Exchange::default()));
    ex.lock().unwrap().orders.push(order_json(
        &serde_json::to_value(order()).unwrap(),
        "o-earlier",
    ));
    let (base, _log) = serve(exchange_stub(ex.clone(), |_| "ok", 10)).await;
    let c = RestClient::new(cfg(base), None).unwrap();
    match c.create_order_idempotent(&order()).await.unwrap() {
        CreateOutcome::FoundExisting(o) => assert_eq!(o.order_id.as_str(), "o-earlier"),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn unknown_outcome_with_stale_portfolio_data_is_not_resent() {
    let ex = Arc::new(Mutex::new(Exchange::default()));
    // 500 after sending, and the portfolio data never catches up: we cannot prove absence.
    let (base, _log) = serve(exchange_stub(ex.clone(), |_| "500", -3600)).await;
    let c = RestClient::new(cfg(base), None).unwrap();
    let e = c.create_order_idempotent(&order()).await.unwrap_err();
    assert!(
        matches!(&e, RestError::UnresolvedCreate { client_order_id, .. } if client_order_id.as_str() == "my-order-1"),
        "{e}"
    );
    assert_eq!(ex.lock().unwrap().posts.len(), 1, "no blind retry");
}
