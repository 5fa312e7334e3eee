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
    let got = client.markets(&q).await.unwrap();
    assert_eq!(got.len(), h.markets().len());
    let first_429s = h.fault_stats().rate_limited;
    assert!(
        first_429s >= 1,
        "the paged read met the token bucket: {:?}",
        h.fault_stats()
    );
    // Several more reads, each of which succeeds despite the bucket.
    for t in h.markets().iter().take(3) {
        let m = client.market(t.ticker.as_str()).await.unwrap();
        assert_eq!(m.ticker, t.ticker);
    }
    let s = h.fault_stats();
    assert!(s.rate_limited > first_429s, "{s:?}");
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
