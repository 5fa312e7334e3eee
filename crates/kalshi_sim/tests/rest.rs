//! REST shapes and behaviour, through an independent client (reqwest + the pipeline's
//! signer), against an in-process simulator on a manual clock.

mod common;

use std::collections::BTreeSet;

use common::*;
use kalshi_sim::engine::MarketResult;
use kalshi_sim::{Fault, LoseMode, RateLimitConfig};
use pipeline::money::Money;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Every `[price, size]` pair is a pair of fixed-point strings and prices ascend.
fn check_levels(levels: &Value) {
    let arr = levels.as_array().expect("levels array");
    let mut last = None;
    for l in arr {
        let p = pipeline::money::Price::parse_dollars(s(&l[0])).unwrap();
        pipeline::money::Count::parse(s(&l[1])).unwrap();
        if let Some(prev) = last {
            assert!(p > prev, "ascending: {levels}");
        }
        last = Some(p);
    }
}

#[tokio::test]
async fn public_market_data_has_kalshis_shapes() {
    let sim = start(|_| {}).await;
    let c = Client::new(&sim, 0);
    let t = active_ticker(&sim);

    let (st, v) = c.get("/exchange/status").await;
    assert_eq!(st, 200);
    assert_eq!(v["trading_active"], true);

    let (st, v) = c.get("/series/KXBTC15M").await;
    assert_eq!(st, 200);
    assert_eq!(v["series"]["ticker"], "KXBTC15M");
    assert_eq!(v["series"]["fee_type"], "quadratic");
    assert_eq!(c.get("/series/NOPE").await.0, 404);

    let (st, v) = c.get("/markets?series_ticker=KXBTC15M&status=open").await;
    assert_eq!(st, 200);
    let ms = v["markets"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    let m = &ms[0];
    assert_eq!(m["ticker"], t.as_str());
    assert_eq!(m["status"], "active");
    assert_eq!(v["cursor"], "");
    for k in [
        "yes_bid_dollars",
        "yes_ask_dollars",
        "no_bid_dollars",
        "no_ask_dollars",
        "last_price_dollars",
        "notional_value_dollars",
    ] {
        pipeline::money::Price::parse_dollars(s(&m[k])).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    for k in [
        "volume_fp",
        "open_interest_fp",
        "yes_bid_size_fp",
        "yes_ask_size_fp",
    ] {
        pipeline::money::Count::parse(s(&m[k])).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    assert_eq!(m["strike_type"], "greater_or_equal");
    assert!(m["floor_strike"].as_f64().unwrap() > 1000.0);
    assert_eq!(m["market_type"], "binary");
    assert_eq!(m["price_level_structure"], "linear_cent");
    assert_eq!(m["price_ranges"][0]["step"], "0.0100");
    assert!(t.starts_with("KXBTC15M-26SEP29"), "{t}");
    // The close time in the ticker is US Eastern: 12:30:10Z = 08:30:10 EDT.
    assert!(t.contains("083010"), "{t}");
    assert!(s(&m["close_time"]).ends_with('Z'));
    // The next window is listed ahead, unopened.
    let (_, v) = c.get("/markets?status=unopened").await;
    assert_eq!(v["markets"].as_array().unwrap().len(), 1);
    assert_eq!(v["markets"][0]["status"], "initialized");
    assert!(v["markets"][0]["floor_strike"].is_null());

    let (st, v) = c.get(&format!("/markets/{t}")).await;
    assert_eq!(st, 200);
    assert_eq!(v["market"]["ticker"], t.as_str());
    let (st, v) = c.get("/markets/NOPE-1").await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "market_not_found");
    assert!(v["error"]["message"].is_string() && v["error"]["details"].is_string());

    let (st, v) = c.get(&format!("/markets/{t}/orderbook")).await;
    assert_eq!(st, 200);
    let ob = &v["orderbook_fp"];
    check_levels(&ob["yes_dollars"]);
    check_levels(&ob["no_dollars"]);
    assert_eq!(
        ob["yes_dollars"].as_array().unwrap().len(),
        5,
        "five maker levels"
    );
    // Best YES bid < best YES ask = 1 − best NO bid.
    let best_yes = pipeline::money::Price::parse_dollars(s(ob["yes_dollars"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .get(0)
        .unwrap()))
    .unwrap();
    let best_no = pipeline::money::Price::parse_dollars(s(ob["no_dollars"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .get(0)
        .unwrap()))
    .unwrap();
    assert!(best_yes < best_no.complement());
    let (_, v) = c.get(&format!("/markets/{t}/orderbook?depth=2")).await;
    assert_eq!(
        v["orderbook_fp"]["yes_dollars"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        v["orderbook_fp"]["yes_dollars"].as_array().unwrap().last(),
        ob["yes_dollars"].as_array().unwrap().last(),
        "depth keeps the best levels"
    );
    assert_eq!(
        c.get(&format!("/markets/{t}/orderbook?depth=101")).await.0,
        400
    );

    let next = sim.handle().markets()[1].ticker.to_string();
    let (st, v) = c
        .get(&format!("/markets/orderbooks?tickers={t}&tickers={next}"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["orderbooks"][0]["ticker"], t.as_str());
    assert_eq!(v["orderbooks"][1]["ticker"], next.as_str());

    let (st, v) = c
        .get("/events?series_ticker=KXBTC15M&with_nested_markets=true&status=open")
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    assert_eq!(v["events"][0]["markets"][0]["ticker"], t.as_str());
    let ev = s(&v["events"][0]["event_ticker"]).to_string();
    assert_eq!(format!("{ev}-{}", &t[t.len() - 2..]), t);
    let (st, v) = c.get(&format!("/events/{ev}")).await;
    assert_eq!(st, 200);
    assert_eq!(v["markets"][0]["ticker"], t.as_str());

    // Errors and conventions.
    let (st, v) = c.get("/markets?status=active").await;
    assert_eq!(st, 400, "filter values differ from response statuses: {v}");
    assert_eq!(c.get("/markets?status=open&min_close_ts=1").await.0, 400);
    assert_eq!(c.get("/markets?limit=1001").await.0, 400);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/markets/", sim.rest_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/trade-api/v2/markets");
    let (st, v) = c.get("/no/such/thing").await;
    assert_eq!(
        (st, s(&v["error"]["code"])),
        (StatusCode::NOT_FOUND, "not_found")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn cursor_pagination_over_several_pages() {
    let sim = start(|c| c.engine.noise.takers_per_minute = 600.0).await;
    let c = Client::new(&sim, 0);
    let h = sim.handle();
    // 23 windows: 23 settled-or-open markets and many noise trades.
    for _ in 0..(23 * 10) {
        h.advance_by(1_000).unwrap();
    }
    let total = h.markets().len();
    assert!(total >= 24, "{total}");
    for limit in [1usize, 7, 10, 1000] {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let q = if cursor.is_empty() {
                format!("/markets?limit={limit}")
            } else {
                format!("/markets?limit={limit}&cursor={cursor}")
            };
            let (st, v) = c.get(&q).await;
            assert_eq!(st, 200, "{v}");
            let ms = v["markets"].as_array().unwrap();
            assert!(ms.len() <= limit);
            seen.extend(ms.iter().map(|m| s(&m["ticker"]).to_string()));
            pages += 1;
            cursor = s(&v["cursor"]).to_string();
            if cursor.is_empty() {
                break;
            }
            assert!(pages < 100, "pagination does not end");
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no market twice (limit {limit})");
        assert_eq!(seen.len(), total, "every market once (limit {limit})");
        assert_eq!(pages, total.div_ceil(limit).max(1), "limit {limit}");
    }
    // Status filter and pagination together.
    let (_, v) = c.get("/markets?status=settled&limit=5").await;
    assert_eq!(v["markets"].as_array().unwrap().len(), 5);
    assert!(v["markets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["status"] == "finalized" && m["result"] != ""));
    // Trades, newest first, across pages.
    let (_, first) = c.get("/markets/trades?limit=50").await;
    let trades = first["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 50);
    let mut all = trades.clone();
    let (_, second) = c
        .get(&format!(
            "/markets/trades?limit=50&cursor={}",
            s(&first["cursor"])
        ))
        .await;
    all.extend(second["trades"].as_array().unwrap().iter().cloned());
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = all
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(s(&t["created_time"])).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let ids: BTreeSet<&str> = all.iter().map(|t| s(&t["trade_id"])).collect();
    assert_eq!(ids.len(), all.len());
    for t in &all {
        let y = pipeline::money::Price::parse_dollars(s(&t["yes_price_dollars"])).unwrap();
        let n = pipeline::money::Price::parse_dollars(s(&t["no_price_dollars"])).unwrap();
        assert_eq!(y.complement(), n, "yes + no = 1");
    }
    // A cursor we did not issue.
    let (st, v) = c.get("/markets?cursor=%21%21").await;
    assert_eq!(st, 400, "{v}");
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_when_the_bucket_is_empty() {
    let sim = start(|c| {
        c.rate_limit = RateLimitConfig {
            enabled: true,
            read_per_s: 0.001,
            read_capacity: 30.0,
            write_per_s: 0.001,
            write_capacity: 12.0,
        }
    })
    .await;
    let c = Client::new(&sim, 0);
    for _ in 0..3 {
        assert_eq!(c.sget("/portfolio/balance").await.0, 200);
    }
    let r = c
        .http
        .get(format!("{}/exchange/status", sim.rest_base()))
        .header("KALSHI-ACCESS-KEY", "00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none(), "no Retry-After");
    assert!(r
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("x-ratelimit")));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"error": "too many requests"}));
    // The write bucket is separate: a cancel (2 tokens) still works, then it empties too.
    let t = active_ticker(&sim);
    let (st, v) = c
        .spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.0100", "1.00", "good_till_canceled"),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = s(&v["order_id"]).to_string();
    assert_eq!(
        c.sdelete(&format!("/portfolio/events/orders/{id}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        c.spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.0100", "1.00", "good_till_canceled")
        )
        .await
        .0,
        429
    );
    // Another key has its own buckets.
    let (id1, k1) = key(1);
    sim.handle()
        .add_user(&id1, k1.public_key(), Money::from_cents(10_000));
    assert_eq!(Client::new(&sim, 1).sget("/portfolio/balance").await.0, 200);
    assert!(sim.handle().fault_stats().rate_limited >= 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn authentication_is_kalshis() {
    let sim = start(|_| {}).await;
    let c = Client::new(&sim, 0);
    let (st, v) = c.sget("/portfolio/balance").await;
    assert_eq!(st, 200);
    assert_eq!(v["balance"], 1_000_000);
    assert_eq!(v["balance_dollars"], "10000.0000");
    // Signed with another key under our key id: 401 with Kalshi's body.
    let (id0, _) = key(0);
    let (_, other) = key(2);
    let bad = Client::for_key(&sim, id0, &other);
    let (st, v) = bad.sget("/portfolio/balance").await;
    assert_eq!(st, 401);
    assert_eq!(
        v,
        json!({"error": {"code": "authentication_error", "message": "authentication_error",
            "details": "rpc error: code = Unauthenticated desc = INCORRECT_API_KEY_SIGNATURE"}})
    );
    // No headers at all; an unknown key.
    assert_eq!(c.get("/portfolio/balance").await.0, 401);
    let (id2, k2) = key(2);
    assert_eq!(
        Client::for_key(&sim, id2, &k2)
            .sget("/portfolio/positions")
            .await
            .0,
        401
    );
    // Signing the path without the prefix (a classic mistake) fails.
    let h = c.signer.headers("GET", "/portfolio/balance");
    let mut rb = c.http.get(format!("{}/portfolio/balance", sim.rest_base()));
    for (k, v) in h.pairs() {
        rb = rb.header(k, v);
    }
    assert_eq!(rb.send().await.unwrap().status(), 401);
    // The query string is not signed.
    assert_eq!(c.sget("/portfolio/orders?limit=5").await.0, 200);
    // Public data needs no signature.
    assert_eq!(c.get("/markets").await.0, 200);
    assert!(sim.handle().fault_stats().auth_failures >= 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn orders_match_against_a_maker_with_kalshis_fees() {
    let sim = start(|c| c.engine.maker.enabled = false).await;
    let h = sim.handle();
    let (id1, k1) = key(1);
    h.add_user(&id1, k1.public_key(), Money::from_cents(100_000));
    let taker = Client::new(&sim, 0);
    let maker = Client::new(&sim, 1);
    let t = active_ticker(&sim);

    // The maker rests 10 NO at 0.50 (ask YES at 0.50).
    let mut body = order(&t, "ask", "0.5000", "10.00", "good_till_canceled");
    body["client_order_id"] = json!("mk-1");
    let (st, v) = maker.spost("/portfolio/events/orders", &body).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (s(&v["fill_count"]), s(&v["remaining_count"])),
        ("0.00", "10.00")
    );
    assert!(v.get("average_fill_price").is_none());
    let maker_order = s(&v["order_id"]).to_string();
    let (_, book) = taker.get(&format!("/markets/{t}/orderbook")).await;
    assert_eq!(
        book["orderbook_fp"]["no_dollars"],
        json!([["0.5000", "10.00"]])
    );

    // The taker buys 10 YES at 0.50: fee ceil(0.07 × 10 × 0.25) = $0.18.
    let mut body = order(&t, "bid", "0.5000", "10.00", "fill_or_kill");
    body["client_order_id"] = json!("tk-1");
    let (st, v) = taker.spost("/portfolio/events/orders", &body).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["client_order_id"], "tk-1");
    assert_eq!(
        (s(&v["fill_count"]), s(&v["remaining_count"])),
        ("10.00", "0.00")
    );
    assert_eq!(v["average_fill_price"], "0.5000");
    assert_eq!(v["average_fee_paid"], "0.0180");
    assert!(v["ts_ms"].as_i64().unwrap() > common::START);

    let (_, f) = taker.sget("/portfolio/fills").await;
    let fill = &f["fills"][0];
    assert_eq!(
        (
            s(&fill["fee_cost"]),
            s(&fill["count_fp"]),
            s(&fill["yes_price_dollars"])
        ),
        ("0.1800", "10.00", "0.5000")
    );
    assert_eq!(
        (
            fill["is_taker"].as_bool(),
            s(&fill["outcome_side"]),
            s(&fill["book_side"])
        ),
        (Some(true), "yes", "bid")
    );
    assert_eq!(fill["trade_id"], fill["fill_id"]);
    let (_, b) = taker.sget("/portfolio/balance").await;
    assert_eq!(b["balance_dollars"], "9994.8200");
    assert_eq!(b["balance"], 999_482);
    let (_, p) = taker.sget("/portfolio/positions").await;
    let mp = &p["market_positions"][0];
    assert_eq!(
        (
            s(&mp["position_fp"]),
            s(&mp["market_exposure_dollars"]),
            s(&mp["fees_paid_dollars"])
        ),
        ("10.00", "5.0000", "0.1800")
    );
    assert_eq!(p["event_positions"].as_array().unwrap().len(), 1);
    // Quadratic fee type: the maker pays none.
    let (_, o) = maker
        .sget(&format!("/portfolio/orders/{maker_order}"))
        .await;
    assert_eq!(
        (
            s(&o["order"]["status"]),
            s(&o["order"]["maker_fees_dollars"])
        ),
        ("executed", "0.0000")
    );
    assert_eq!(
        (s(&o["order"]["outcome_side"]), s(&o["order"]["book_side"])),
        ("no", "ask")
    );
    let (_, mp) = maker.sget("/portfolio/positions").await;
    assert_eq!(mp["market_positions"][0]["position_fp"], "-10.00");
    // Public trade.
    let (_, tr) = taker.get(&format!("/markets/trades?ticker={t}")).await;
    assert_eq!(tr["trades"][0]["taker_book_side"], "bid");
    assert_eq!(tr["trades"][0]["count_fp"], "10.00");

    // Validation, through the wire.
    let (st, v) = taker
        .spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.5050", "1.00", "good_till_canceled"),
        )
        .await;
    assert_eq!(
        (st.as_u16(), s(&v["error"]["code"])),
        (400, "invalid_order")
    );
    let (st, v) = taker
        .spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.50", "0.001", "good_till_canceled"),
        )
        .await;
    assert_eq!(st, 400);
    assert!(s(&v["error"]["details"]).starts_with("count"), "{v}");
    let mut no_stp = order(&t, "bid", "0.40", "1.00", "good_till_canceled");
    no_stp
        .as_object_mut()
        .unwrap()
        .remove("self_trade_prevention_type");
    let (st, v) = taker.spost("/portfolio/events/orders", &no_stp).await;
    assert_eq!(st, 400);
    assert!(
        s(&v["error"]["details"]).contains("self_trade_prevention_type"),
        "{v}"
    );
    let mut gtc = order(&t, "bid", "0.40", "1.00", "good_till_canceled");
    gtc["client_order_id"] = json!("dup");
    assert_eq!(taker.spost("/portfolio/events/orders", &gtc).await.0, 201);
    assert_eq!(taker.spost("/portfolio/events/orders", &gtc).await.0, 409);
    maker
        .spost(
            "/portfolio/events/orders",
            &order(&t, "ask", "0.45", "1.00", "good_till_canceled"),
        )
        .await;
    let mut po = order(&t, "bid", "0.45", "1.00", "good_till_canceled");
    po["post_only"] = json!(true);
    let (st, v) = taker.spost("/portfolio/events/orders", &po).await;
    assert_eq!(
        (st.as_u16(), s(&v["error"]["details"])),
        (400, "post only cross")
    );
    let (st, v) = taker
        .spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.50", "100000.00", "good_till_canceled"),
        )
        .await;
    assert_eq!(
        (st.as_u16(), s(&v["error"]["code"])),
        (400, "insufficient_balance")
    );
    let next = h.markets()[1].ticker.to_string();
    let (st, v) = taker
        .spost(
            "/portfolio/events/orders",
            &order(&next, "bid", "0.50", "1.00", "good_till_canceled"),
        )
        .await;
    assert_eq!(
        (st.as_u16(), s(&v["error"]["details"])),
        (400, "MARKET_INACTIVE")
    );
    assert_eq!(
        taker.spost("/portfolio/orders", &json!({})).await.0,
        410,
        "legacy create is gone"
    );

    // Cancel, batch, cancel all.
    let (_, list) = taker.sget("/portfolio/orders?status=resting").await;
    let resting = s(&list["orders"][0]["order_id"]).to_string();
    let (st, v) = taker
        .sdelete(&format!("/portfolio/events/orders/{resting}"), None)
        .await;
    assert_eq!(
        (st.as_u16(), s(&v["reduced_by"]), s(&v["client_order_id"])),
        (200, "1.00", "dup")
    );
    assert_eq!(
        taker
            .sdelete(&format!("/portfolio/events/orders/{resting}"), None)
            .await
            .0,
        404
    );
    let batch = json!({"orders": [
        order(&t, "bid", "0.10", "1.00", "good_till_canceled"),
        order(&t, "bid", "0.11", "2.00", "good_till_canceled"),
        order(&t, "bid", "1.10", "2.00", "good_till_canceled"),
    ]});
    let (st, v) = taker
        .spost("/portfolio/events/orders/batched", &batch)
        .await;
    assert_eq!(st, 201, "{v}");
    let items = v["orders"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items[0]["order_id"].is_string() && items[2]["error"]["code"].is_string());
    let ids: Vec<Value> = items[..2]
        .iter()
        .map(|i| json!({"order_id": i["order_id"]}))
        .collect();
    let (st, v) = taker
        .sdelete(
            "/portfolio/events/orders/batched",
            Some(&json!({"orders": ids})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["orders"][1]["reduced_by"], "2.00");
    taker
        .spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.12", "1.00", "good_till_canceled"),
        )
        .await;
    let (st, _) = taker.sdelete("/portfolio/events/orders", None).await;
    assert_eq!(st, 204);
    let (_, list) = taker.sget("/portfolio/orders?status=resting").await;
    assert!(list["orders"].as_array().unwrap().is_empty());
    let (_, b) = taker.sget("/portfolio/balance").await;
    assert_eq!(
        b["balance_dollars"], "9994.8200",
        "nothing reserved any more"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn settlement_and_the_historical_tier() {
    let sim = start(|c| {
        c.engine.maker.enabled = false;
        c.historical_age_ms = 30_000;
    })
    .await;
    let h = sim.handle();
    let (id1, k1) = key(1);
    h.add_user(&id1, k1.public_key(), Money::from_cents(100_000));
    let a = Client::new(&sim, 0);
    let b = Client::new(&sim, 1);
    let t = active_ticker(&sim);
    b.spost(
        "/portfolio/events/orders",
        &order(&t, "ask", "0.30", "5.00", "good_till_canceled"),
    )
    .await;
    let (st, _) = a
        .spost(
            "/portfolio/events/orders",
            &order(&t, "bid", "0.30", "5.00", "immediate_or_cancel"),
        )
        .await;
    assert_eq!(st, 201);
    h.force_close(&t, Some(MarketResult::Yes)).unwrap();
    let (_, v) = a.get(&format!("/markets/{t}")).await;
    assert_eq!(v["market"]["status"], "closed");
    h.advance_by(1_000).unwrap();
    let (_, v) = a.get(&format!("/markets/{t}")).await;
    assert_eq!(
        (s(&v["market"]["status"]), s(&v["market"]["result"])),
        ("determined", "yes")
    );
    assert_eq!(v["market"]["settlement_value_dollars"], "1.0000");
    h.advance_by(1_000).unwrap();
    let (_, v) = a.get(&format!("/markets/{t}")).await;
    assert_eq!(v["market"]["status"], "finalized");
    assert!(v["market"]["settlement_ts"].is_string());
    let (_, st) = a.sget("/portfolio/settlements").await;
    let x = &st["settlements"][0];
    assert_eq!(
        (
            s(&x["market_result"]),
            s(&x["yes_count_fp"]),
            x["revenue"].as_i64()
        ),
        ("yes", "5.00", Some(500))
    );
    assert_eq!(x["value"], 100);
    let (_, st) = b.sget("/portfolio/settlements").await;
    assert_eq!(
        (
            s(&st["settlements"][0]["no_count_fp"]),
            st["settlements"][0]["revenue"].as_i64()
        ),
        ("5.00", Some(0))
    );
    // Settled positions leave the default (unsettled) list.
    let (_, p) = a.sget("/portfolio/positions").await;
    assert!(p["market_positions"].as_array().unwrap().is_empty(), "{p}");
    let (_, p) = a
        .sget("/portfolio/positions?settlement_status=settled")
        .await;
    assert_eq!(p["market_positions"][0]["realized_pnl_dollars"], "3.5000");
    // $10,000 − 1.50 − fee 0.08 + 5.00 payout.
    let (_, bal) = a.sget("/portfolio/balance").await;
    assert_eq!(bal["balance_dollars"], "10003.4200");
    let (_, v) = a.get("/markets?status=settled").await;
    assert!(v["markets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["ticker"] == t.as_str()));
    // Past the cutoff the market is only historical.
    h.advance_by(31_000).unwrap();
    let (_, cut) = a.get("/historical/cutoff").await;
    assert!(cut["market_settled_ts"].is_string());
    assert_eq!(a.get(&format!("/markets/{t}")).await.0, 404);
    let (_, v) = a.get("/markets?status=settled").await;
    assert!(v["markets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["ticker"] != t.as_str()));
    let (st, v) = a.get(&format!("/historical/markets/{t}")).await;
    assert_eq!((st.as_u16(), s(&v["market"]["result"])), (200, "yes"));
    let (_, v) = a.get("/historical/markets?limit=1000").await;
    assert!(v["markets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["ticker"] == t.as_str()));
    sim.shutdown().await;
}

#[tokio::test]
async fn http_faults_are_injected_and_counted() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let c = Client::new(&sim, 0);
    let t = active_ticker(&sim);

    h.inject(Fault::HttpStatus {
        status: 503,
        count: 2,
    });
    for _ in 0..2 {
        let (st, v) = c.get("/exchange/status").await;
        assert_eq!(st, 503);
        assert_eq!(v["error"]["code"], "service_unavailable");
    }
    assert_eq!(c.get("/exchange/status").await.0, 200);
    h.inject(Fault::HttpStatus {
        status: 429,
        count: 1,
    });
    let (st, v) = c.get("/markets").await;
    assert_eq!(
        (st.as_u16(), v),
        (429, json!({"error": "too many requests"}))
    );
    h.inject(Fault::Delay { ms: 30, count: 1 });
    assert_eq!(c.get("/exchange/status").await.0, 200);

    // A lost response as a 500 without body: the order exists all the same.
    h.inject(Fault::LoseOrderResponse {
        count: 1,
        mode: LoseMode::ServerError,
    });
    let mut body = order(&t, "bid", "0.02", "1.00", "good_till_canceled");
    body["client_order_id"] = json!("lost-500");
    let r = c
        .spost_raw("/portfolio/events/orders", &body)
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.bytes().await.unwrap().is_empty());
    // A lost response as a closed connection.
    h.inject(Fault::LoseOrderResponse {
        count: 1,
        mode: LoseMode::CloseConnection,
    });
    body["client_order_id"] = json!("lost-conn");
    body["price"] = json!("0.03");
    let r = c.spost_raw("/portfolio/events/orders", &body).await;
    assert!(
        r.is_err(),
        "the connection is closed without a response: {r:?}"
    );
    let (_, list) = c.sget("/portfolio/orders?status=resting").await;
    let coids: BTreeSet<&str> = list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| s(&o["client_order_id"]))
        .collect();
    assert!(
        coids.contains("lost-500") && coids.contains("lost-conn"),
        "{coids:?}"
    );
    // Retrying with the same client_order_id is refused: the idempotency key works.
    assert_eq!(c.spost("/portfolio/events/orders", &body).await.0, 409);

    // Over the control endpoint.
    let r = c
        .http
        .post(format!("http://{}/_sim/faults", sim.addr()))
        .json(&json!({"kind": "http_status", "status": 500, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(c.get("/markets").await.0, 500);
    let stats: Value = c
        .http
        .get(format!("http://{}/_sim/faults", sim.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["http_status_injected"], 4);
    assert_eq!(stats["delayed"], 1);
    assert_eq!(stats["order_responses_lost"], 2);
    let book: Value = c
        .http
        .get(format!("http://{}/_sim/book/{t}", sim.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(book["fair_value"].as_f64().is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn rest_requests_are_counted_per_path() {
    let sim = start(|_| {}).await;
    let h = sim.handle();
    let c = Client::new(&sim, 0);
    let before = h.fault_stats();
    assert_eq!(before.rest_requests_total(), 0, "{before:?}");
    assert_eq!(c.get("/markets?limit=1").await.0, 200);
    assert_eq!(c.get("/markets").await.0, 200);
    assert_eq!(c.get("/historical/markets").await.0, 200);
    // Refused requests count too: an injected 429 and a failed signature.
    h.inject(Fault::HttpStatus {
        status: 429,
        count: 1,
    });
    assert_eq!(c.get("/markets").await.0, 429);
    assert_eq!(c.get("/portfolio/balance").await.0, 401);
    let s = h.fault_stats();
    assert_eq!(s.requests_to("/markets"), 3);
    assert_eq!(s.requests_to("/historical/markets"), 1);
    assert_eq!(s.requests_to("/portfolio/balance"), 1);
    assert_eq!(s.requests_to("/markets/trades"), 0);
    assert_eq!(s.rest_requests_total(), 5);
    // The control endpoints are not REST requests; /_sim/faults shows the map.
    let stats: Value = c
        .http
        .get(format!("http://{}/_sim/faults", sim.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["rest_requests"]["/markets"], 3);
    assert_eq!(h.fault_stats().rest_requests_total(), 5);
    sim.shutdown().await;
}
