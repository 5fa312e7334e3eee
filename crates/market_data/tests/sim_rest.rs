//! The REST client against the simulator: pagination over several pages, 429 and 5xx bursts
//! absorbed by backoff, signing with the simulator's generated credentials, typed 401s.

mod sim_common;

use std::collections::BTreeSet;

use kalshi_sim::{Fault, KeySetup, RateLimitConfig};
use market_data::rest::{MarketStatusFilter, MarketsQuery};
use market_data::wire::MarketStatus;
use market_data::{RestClient, RestError};
use pipeline::auth::Signer;
use pipeline::money::Money;
use pipeline::secrets::{ApiKeyId, PrivateKey};
use sim_common::*;

#[tokio::test]
async fn markets_pagination_returns_every_market_exactly_once() {
    // 9 settled warm-up markets + the active one + the next listed: 11 markets.
    let sim = start(|c| c.warmup_markets = 9).await;
    let h = sim.handle();
    let client = rest(&sim);
    let expected: Vec<String> = h.markets().iter().map(|m| m.ticker.to_string()).collect();
    assert!(expected.len() >= 11, "{expected:?}");

    // A small page forces several pages: the first one really has a next cursor.
    let q = MarketsQuery {
        limit: Some(4),
        ..Default::default()
    };
    let first = client.markets_page(&q, None).await.unwrap();
    assert_eq!(first.markets.len(), 4);
    assert!(first.cursor.as_deref().is_some_and(|c| !c.is_empty()));

    let got = client.markets(&q).await.unwrap();
    let tickers: Vec<String> = got.iter().map(|m| m.ticker.to_string()).collect();
    let unique: BTreeSet<&String> = tickers.iter().collect();
    assert_eq!(
        unique.len(),
        tickers.len(),
        "a market came twice: {tickers:?}"
    );
    let mut want = expected.clone();
    want.sort();
    let mut have = tickers.clone();
    have.sort();
    assert_eq!(have, want, "pages = the simulator's own market list");

    // A filtered listing pages too, and agrees with the simulator's statuses.
    let settled = client
        .markets(&MarketsQuery {
            limit: Some(2),
            ..MarketsQuery::default().with_status(MarketStatusFilter::Settled)
        })
        .await
        .unwrap();
    let sim_settled: BTreeSet<String> = h
        .markets()
        .iter()
        .filter(|m| m.status == kalshi_sim::engine::MarketStatus::Finalized)
        .map(|m| m.ticker.to_string())
        .collect();
    assert!(sim_settled.len() >= 8, "{sim_settled:?}");
    let got_settled: BTreeSet<String> = settled.iter().map(|m| m.ticker.to_string()).collect();
    assert_eq!(got_settled.len(), settled.len(), "no duplicates");
    assert_eq!(got_settled, sim_settled);
    assert!(settled
        .iter()
        .all(|m| m.status == Some(MarketStatus::Finalized)));
    sim.shutdown().await;
}

#[tokio::test]
async fn token_bucket_429s_are_absorbed_by_backoff() {
    // One read's worth of tokens, refilled at two reads a second: back-to-back reads are
    // refused with 429 until the client's backoff lets the bucket refill.
    let sim = start(|c| {
        c.warmup_markets = 5;
        c.rate_limit = RateLimitConfig {
            enabled: true,
            read_per_s: 20.0,
            read_capacity: 10.0,
            write_per_s: 20.0,
            write_capacity: 10.0,
        };
    })
    .await;
    let h = sim.handle();
    let mut cfg = rest_config(&sim);
    cfg.read_retries = 30;
    cfg.backoff.initial = std::time::Duration::from_millis(50);
    cfg.backoff.max = std::time::Duration::from_millis(400);
    let client = RestClient::new(cfg, Some(signer(&sim))).unwrap();
    let q = MarketsQuery {
        limit: Some(3),
        ..Default::default()
    };
    // A paged listing and three single-market reads at once: far more than one read's
    // worth of tokens arrives together, so the bucket must refuse some; every call still
    // returns its data.
    let markets = h.markets();
    let singles = markets.iter().take(3).map(|m| {
        let c = client.clone();
        let t = m.ticker.clone();
        async move {
            let got = c.market(t.as_str()).await.unwrap();
            assert_eq!(got.ticker, t);
        }
    });
    let (got, _) = tokio::join!(client.markets(&q), futures_util::future::join_all(singles));
    let got = got.unwrap();
    assert_eq!(got.len(), markets.len(), "every page arrived");
    let s = h.fault_stats();
    assert!(s.rate_limited >= 1, "the token bucket refused reads: {s:?}");
    assert_eq!(s.http_status_injected, 0, "these were genuine 429s");
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_429_and_5xx_bursts_are_retried_then_surface_typed() {
    let sim = start(|c| c.warmup_markets = 2).await;
    let h = sim.handle();
    let client = rest(&sim); // read_retries = 8
    let t = h.active_market().unwrap().ticker.to_string();

    // A burst shorter than the retry budget: the read succeeds; exactly 3 refusals happened.
    h.inject(Fault::HttpStatus {
        status: 429,
        count: 3,
    });
    let m = client.market(&t).await.unwrap();
    assert_eq!(m.ticker.as_str(), t);
    assert_eq!(h.fault_stats().http_status_injected, 3);

    // 503s are retried the same way.
    h.inject(Fault::HttpStatus {
        status: 503,
        count: 2,
    });
    let b = client.balance().await.unwrap();
    assert_eq!(b.balance_dollars, Some(Money::from_cents(1_000_000)));
    assert_eq!(h.fault_stats().http_status_injected, 5);

    // A burst longer than the budget: 1 attempt + 8 retries, then the typed error.
    h.inject(Fault::HttpStatus {
        status: 429,
        count: 100,
    });
    let e = client.market(&t).await.unwrap_err();
    assert!(matches!(e, RestError::RateLimited { .. }), "{e:?}");
    assert_eq!(
        h.fault_stats().http_status_injected,
        5 + 9,
        "one attempt and exactly read_retries retries"
    );
    h.inject(Fault::Clear);

    // A write is never retried blindly: one 503 on a cancel is returned as is.
    h.inject(Fault::HttpStatus {
        status: 503,
        count: 1,
    });
    let e = client
        .cancel_order(&"no-such-order".into(), Some(&t.as_str().into()))
        .await
        .unwrap_err();
    assert!(matches!(e, RestError::Server { status: 503, .. }), "{e:?}");
    assert_eq!(h.fault_stats().http_status_injected, 15);

    // A response slower than the client's timeout: the read times out once, then succeeds.
    let mut cfg = rest_config(&sim);
    cfg.timeout = std::time::Duration::from_millis(300);
    let impatient = RestClient::new(cfg, Some(signer(&sim))).unwrap();
    h.inject(Fault::Delay {
        ms: 1_500,
        count: 1,
    });
    let m = impatient.market(&t).await.unwrap();
    assert_eq!(m.ticker.as_str(), t);
    assert_eq!(h.fault_stats().delayed, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn signed_requests_with_generated_credentials_and_typed_401s() {
    // The simulator generates a throwaway key pair; the client signs with it.
    let sim = start(|c| c.key = KeySetup::Generate).await;
    let h = sim.handle();
    let (id, good) = sim.credentials().expect("generated credentials");
    let client = RestClient::new(rest_config(&sim), Some(Signer::new(id.clone(), &good))).unwrap();
    let b = client.balance().await.unwrap();
    assert_eq!(b.balance_dollars, Some(Money::from_cents(1_000_000)));
    let (positions, _) = client.positions(&Default::default()).await.unwrap();
    assert!(positions.is_empty());
    assert_eq!(h.fault_stats().auth_failures, 0);

    // The right key id signed with another key: INCORRECT_API_KEY_SIGNATURE.
    let (_, other): (ApiKeyId, PrivateKey) = key(1);
    let wrong = RestClient::new(rest_config(&sim), Some(Signer::new(id, &other))).unwrap();
    match wrong.balance().await.unwrap_err() {
        RestError::Unauthorized {
            status: 401,
            code,
            details,
            ..
        } => {
            assert_eq!(code.as_deref(), Some("authentication_error"));
            assert!(
                details
                    .as_deref()
                    .is_some_and(|d| d.contains("INCORRECT_API_KEY_SIGNATURE")),
                "{details:?}"
            );
        }
        e => panic!("expected Unauthorized, got {e:?}"),
    }
    // An unknown key id.
    let (unknown_id, k1) = key(1);
    let stranger = RestClient::new(rest_config(&sim), Some(Signer::new(unknown_id, &k1))).unwrap();
    let e = stranger.balance().await.unwrap_err();
    assert!(
        matches!(&e, RestError::Unauthorized { status: 401, details: Some(d), .. } if d.contains("API_KEY_NOT_FOUND")),
        "{e:?}"
    );
    // No signature at all, on a private endpoint.
    let anon = RestClient::new(rest_config(&sim), None).unwrap();
    let e = anon.balance().await.unwrap_err();
    assert!(
        matches!(e, RestError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    // Public market data needs no signature.
    assert!(!anon
        .markets(&MarketsQuery::default())
        .await
        .unwrap()
        .is_empty());
    // 401 is not retried: exactly one refusal per call.
    assert_eq!(h.fault_stats().auth_failures, 3);

    // The WebSocket upgrade with the wrong key is refused the same way.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (id, _) = sim.credentials().unwrap();
    let (_ws, mut rx, task) = market_data::ws::spawn(
        ws_config(&sim),
        Some(Signer::new(id, &other)),
        shutdown.clone(),
    );
    let ev = next_event(
        &mut rx,
        |_| {},
        |e| matches!(e, market_data::WsEvent::Disconnected { .. }),
    )
    .await;
    match ev {
        market_data::WsEvent::Disconnected { reason } => {
            assert!(reason.contains("401"), "{reason}")
        }
        _ => unreachable!(),
    }
    shutdown.cancel();
    task.await.unwrap();
    assert!(h.fault_stats().auth_failures >= 4);
    assert_eq!(h.fault_stats().ws_connections, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn read_endpoints_parse_and_agree_with_the_simulator() {
    use market_data::rest::{EventsQuery, TradesQuery};
    // Settled history with trades; markets settled more than 25 s (simulated) ago are
    // "historical" and only listed under /historical/markets.
    let sim = start(|c| {
        c.warmup_markets = 6;
        c.engine.noise.takers_per_minute = 240.0;
        c.historical_age_ms = 25_000;
    })
    .await;
    let h = sim.handle();
    let client = rest(&sim);
    let all: Vec<kalshi_sim::engine::MarketInfo> = h.markets();
    let now = h.now_ms();

    // Live + historical = every market, disjoint, split at the cutoff.
    let cutoff = client.historical_cutoff().await.unwrap();
    let cut_ms = cutoff.market_settled_ts.unwrap().0.timestamp_millis();
    assert_eq!(cut_ms, now - 25_000);
    let q = MarketsQuery {
        limit: Some(2),
        ..Default::default()
    };
    let live: BTreeSet<String> = client
        .markets(&q)
        .await
        .unwrap()
        .iter()
        .map(|m| m.ticker.to_string())
        .collect();
    let hist = client.historical_markets(&q).await.unwrap();
    let hist_set: BTreeSet<String> = hist.iter().map(|m| m.ticker.to_string()).collect();
    assert!(!hist_set.is_empty() && !live.is_empty());
    assert!(live.is_disjoint(&hist_set));
    let every: BTreeSet<String> = all.iter().map(|m| m.ticker.to_string()).collect();
    assert_eq!(&live | &hist_set, every);
    for m in &all {
        let is_hist = m.settled_ms.is_some_and(|s| s < cut_ms);
        assert_eq!(
            hist_set.contains(m.ticker.as_str()),
            is_hist,
            "{}",
            m.ticker
        );
    }
    let old = &hist[0];
    assert_eq!(old.status, Some(MarketStatus::Finalized));
    assert!(old.result.is_some());
    assert_eq!(
        client
            .historical_market(old.ticker.as_str())
            .await
            .unwrap()
            .ticker,
        old.ticker
    );
    assert!(matches!(
        client.market(old.ticker.as_str()).await.unwrap_err(),
        RestError::NotFound { .. }
    ));

    // Single market, agreeing with the engine's schedule.
    let active = h.active_market().unwrap();
    let m = client.market(active.ticker.as_str()).await.unwrap();
    assert_eq!(m.status, Some(MarketStatus::Active));
    assert_eq!(m.close_time.unwrap().0.timestamp_millis(), active.close_ms);
    assert_eq!(m.open_time.unwrap().0.timestamp_millis(), active.open_ms);
    assert!(m.price_on_grid(pipeline::money::Price::from_cents(42).unwrap()));

    // Public trades over several pages: every engine trade exactly once.
    let trades = client
        .trades(&TradesQuery {
            limit: Some(25),
            ..Default::default()
        })
        .await
        .unwrap();
    let engine_trades = h.with_engine(|e| e.trades().to_vec());
    assert!(engine_trades.len() > 50, "{}", engine_trades.len());
    let ids: BTreeSet<&str> = trades.iter().map(|t| t.trade_id.as_str()).collect();
    assert_eq!(ids.len(), trades.len(), "no duplicates");
    let want: BTreeSet<&str> = engine_trades.iter().map(|t| t.trade_id.as_str()).collect();
    assert_eq!(ids, want);
    for t in &trades {
        let e = engine_trades
            .iter()
            .find(|e| e.trade_id == t.trade_id)
            .unwrap();
        assert_eq!(t.yes_price_dollars, Some(e.yes_price));
        assert_eq!(t.count_fp, Some(e.count));
        assert_eq!(
            t.yes_price_dollars.unwrap().complement(),
            t.no_price_dollars.unwrap()
        );
    }

    // Events (one market each), paged, with nested markets.
    let events = client
        .events(&EventsQuery {
            limit: Some(3),
            with_nested_markets: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let ev: BTreeSet<&str> = events.iter().map(|e| e.event_ticker.as_str()).collect();
    assert_eq!(ev.len(), events.len());
    let want: BTreeSet<&str> = all.iter().map(|m| m.event_ticker.as_str()).collect();
    assert_eq!(ev, want);
    for e in &events {
        assert_eq!(e.markets.len(), 1, "{}", e.event_ticker);
        assert_eq!(e.markets[0].event_ticker, e.event_ticker);
    }

    // Series and its fee parameters.
    let series = client.series(&"KXBTC15M".into()).await.unwrap();
    assert_eq!(series.fee_type.as_deref(), Some("quadratic"));
    assert_eq!(
        series.fee_multiplier().unwrap().unwrap(),
        pipeline::money::FeeMultiplier::ONE
    );

    // Batch order books = the single ones = the engine's.
    let live_tickers: Vec<_> = live.iter().map(|t| t.as_str().into()).collect();
    let books = client.orderbooks(&live_tickers).await.unwrap();
    assert_eq!(books.len(), live_tickers.len());
    for b in &books {
        let l = b.book.levels();
        let batch = market_data::OrderBook::from_levels(b.ticker.clone(), &l.yes, &l.no).unwrap();
        assert!(batch.same_levels(&sim_book(&h, b.ticker.as_str())));
        assert!(batch.same_levels(&rest_book(&client, b.ticker.as_str()).await));
    }

    let st = client.exchange_status().await.unwrap();
    assert!(st.exchange_active && st.trading_active);
    let ts = client.user_data_timestamp().await.unwrap();
    assert_eq!(
        ts.as_of_time.0.timestamp_millis(),
        now,
        "the simulator's clock"
    );
    sim.shutdown().await;
}
