//! `RestOutcomeSource` (the exchange behind `sync_labels`) against the simulator and against
//! a scripted loopback server: live then historical tier, not found, batches of 100, 429
//! bursts absorbed, 401/403 at once, unreadable objects, signing only with credentials.
//!
//! The tests are plain `#[test]`s: the source blocks on its own runtime, so each server runs
//! on a separate multi-thread runtime owned by the test.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kalshi_sim::engine::{MarketInfo, MarketStatus as SimStatus, NoiseConfig};
use kalshi_sim::{ClockMode, Fault, KeySetup, RateLimitConfig, Sim, SimConfig};
use market_data::backoff::BackoffConfig;
use market_data::labels::{optional_credentials, OutcomeSourceError, RestOutcomeSource};
use market_data::rest::{RestClient, RestConfig, RestError};
use pipeline::auth::Signer;
use pipeline::ids::MarketTicker;
use pipeline::labels::{FetchedOutcome, MarketOutcome, OutcomeSource};
use pipeline::schema::markets::MarketStatus;
use pipeline::schema::{LabelSource, UnresolvedReason};
use pipeline::secrets::ApiKeyId;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// 2026-09-29T12:30:00Z, a multiple of the window length.
const START: i64 = 1_790_685_000_000;
const MARKET_MS: i64 = 10_000;

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A simulator 6 settled markets into its run (manual clock, 10-second markets); markets
/// settled more than 25 s ago are only in `/historical/markets`.
fn sim(rt: &tokio::runtime::Runtime) -> Sim {
    let (_, public) = common::test_signer();
    let mut c = SimConfig {
        clock: ClockMode::Manual,
        start_ms: Some(START + 5_000),
        warmup_markets: 6,
        key: KeySetup::Public {
            key_id: ApiKeyId::new("test-key"),
            public_key: public,
        },
        rate_limit: RateLimitConfig::unlimited(),
        historical_age_ms: 25_000,
        ..SimConfig::default()
    };
    c.engine.seed = 7;
    c.engine.market_duration_ms = MARKET_MS;
    c.engine.listing_lead_ms = MARKET_MS;
    c.engine.requote_interval_ms = 1_000;
    c.engine.noise = NoiseConfig {
        takers_per_minute: 0.0,
        ..NoiseConfig::default()
    };
    rt.block_on(kalshi_sim::spawn(c)).expect("simulator starts")
}

fn fast_config(base: String) -> RestConfig {
    let mut c = RestConfig::new(base);
    c.timeout = Duration::from_secs(10);
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(10),
        multiplier: 2,
    };
    c.rate_limits = None;
    c.seed = Some(5);
    c
}

fn source(base: String, signer: Option<Signer>) -> RestOutcomeSource {
    RestOutcomeSource::new(RestClient::new(fast_config(base), signer).unwrap()).unwrap()
}

fn by_ticker(answer: Vec<FetchedOutcome>) -> HashMap<String, FetchedOutcome> {
    answer
        .into_iter()
        .map(|a| {
            let t = match &a {
                FetchedOutcome::Market(m) => m.ticker.to_string(),
                FetchedOutcome::NotFound(t) => t.to_string(),
                FetchedOutcome::Unreadable { ticker, .. } => ticker.to_string(),
            };
            (t, a)
        })
        .collect()
}

fn market_of(a: &FetchedOutcome) -> &MarketOutcome {
    match a {
        FetchedOutcome::Market(m) => m,
        other => panic!("expected a market, got {other:?}"),
    }
}

#[test]
fn settled_markets_come_from_the_live_then_the_historical_tier() {
    let rt = server_runtime();
    let sim = sim(&rt);
    let h = sim.handle();
    let now = h.now_ms();
    let markets: Vec<MarketInfo> = h.markets();
    let settled: Vec<&MarketInfo> = markets
        .iter()
        .filter(|m| m.status == SimStatus::Finalized)
        .collect();
    let historical = |m: &MarketInfo| m.settled_ms.is_some_and(|t| t < now - 25_000);
    let n_hist = settled.iter().filter(|m| historical(m)).count();
    assert!(
        settled.len() >= 5 && n_hist >= 2 && n_hist < settled.len(),
        "the simulator must have settled markets in both tiers: {markets:#?}"
    );
    let open = h.active_market().expect("an active market");
    let unknown = "KXBTC15M-26SEP291230-99";

    let mut asked: Vec<MarketTicker> = settled.iter().map(|m| m.ticker.clone()).collect();
    asked.push(open.ticker.clone());
    asked.push(MarketTicker::new(unknown));
    let before = h.fault_stats();
    let mut src = source(sim.rest_base(), None);
    let answer = by_ticker(src.fetch(&asked).unwrap());
    assert_eq!(answer.len(), asked.len());

    for m in &settled {
        let got = market_of(&answer[m.ticker.as_str()]);
        assert_eq!(got.status, Some(MarketStatus::Finalized), "{}", m.ticker);
        assert_eq!(
            got.result.as_ref().map(|r| r.as_str().to_string()),
            m.result.map(|r| r.as_str().to_string()),
            "{}: the simulator's result",
            m.ticker
        );
        assert_eq!(got.settlement_value, m.settlement_value());
        assert_eq!(
            got.close_time.map(|t| t.timestamp_millis()),
            Some(m.close_ms)
        );
        let label = got.classify(LabelSource::Api).unwrap();
        assert_eq!(label.result.as_str(), m.result.unwrap().as_str());
    }
    let open_outcome = market_of(&answer[open.ticker.as_str()]);
    assert_eq!(open_outcome.status, Some(MarketStatus::Active));
    assert_eq!(
        open_outcome.classify(LabelSource::Api).unwrap_err().reason,
        UnresolvedReason::NotSettled
    );
    assert_eq!(
        answer[unknown],
        FetchedOutcome::NotFound(MarketTicker::new(unknown))
    );

    let st = src.stats().clone();
    assert_eq!((st.live_lookups, st.historical_lookups), (1, 1), "{st:?}");
    assert_eq!(st.found_live as usize, settled.len() - n_hist + 1);
    assert_eq!(st.found_historical as usize, n_hist);
    assert_eq!((st.not_found, st.unreadable), (1, 0));
    let after = h.fault_stats();
    let delta = |p: &str| after.requests_to(p) - before.requests_to(p);
    assert_eq!(delta("/markets"), 1, "one page of /markets");
    assert_eq!(
        delta("/historical/markets"),
        1,
        "one page of /historical/markets"
    );
    assert_eq!(
        after.rest_requests_total() - before.rest_requests_total(),
        2
    );

    // Markets all in the live tier: the historical tier is not asked.
    let live_only: Vec<MarketTicker> = settled
        .iter()
        .filter(|m| !historical(m))
        .map(|m| m.ticker.clone())
        .collect();
    let answer = src.fetch(&live_only).unwrap();
    assert!(answer
        .iter()
        .all(|a| matches!(a, FetchedOutcome::Market(_))));
    assert_eq!(
        h.fault_stats().requests_to("/historical/markets"),
        after.requests_to("/historical/markets")
    );
    drop(src);
    rt.block_on(sim.shutdown());
}

#[test]
fn batches_are_split_at_100_tickers_and_429_bursts_absorbed() {
    let rt = server_runtime();
    let sim = sim(&rt);
    let h = sim.handle();
    let real: Vec<MarketTicker> = h
        .markets()
        .iter()
        .filter(|m| m.status == SimStatus::Finalized)
        .map(|m| m.ticker.clone())
        .collect();
    let mut asked = real.clone();
    asked.extend((0..150).map(|i| MarketTicker::new(format!("KXBTC15M-NOPE-{i:03}"))));
    // Duplicates are asked once.
    asked.push(real[0].clone());
    h.inject(Fault::HttpStatus {
        status: 429,
        count: 3,
    });
    let before = h.fault_stats();
    let mut src = source(sim.rest_base(), None);
    let answer = src.fetch(&asked).unwrap();
    assert_eq!(answer.len(), real.len() + 150);
    let found = answer
        .iter()
        .filter(|a| matches!(a, FetchedOutcome::Market(_)))
        .count();
    assert_eq!(found, real.len());
    let after = h.fault_stats();
    assert_eq!(after.http_status_injected - before.http_status_injected, 3);
    // Two chunks (≤100 tickers each), each needing the historical tier, plus the three
    // refused attempts that were retried.
    let st = src.stats();
    assert_eq!((st.live_lookups, st.historical_lookups), (2, 2), "{st:?}");
    assert_eq!(st.not_found, 150);
    assert_eq!(
        after.requests_to("/markets") + after.requests_to("/historical/markets")
            - before.requests_to("/markets")
            - before.requests_to("/historical/markets"),
        4 + 3
    );
    drop(src);
    rt.block_on(sim.shutdown());
}

// ------------------------------------------------------------------ scripted server

#[derive(Debug, Clone)]
struct Req {
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
}

type Handler = Arc<dyn Fn(&Req) -> (u16, Value) + Send + Sync>;

/// Serves `handler` on 127.0.0.1:0 (HTTP/1.1, keep-alive); returns the base URL and the log.
fn serve(rt: &tokio::runtime::Runtime, handler: Handler) -> (String, Arc<Mutex<Vec<Req>>>) {
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}/trade-api/v2", l.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    rt.spawn(async move {
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
                    let target = line.split_whitespace().nth(1).unwrap().to_string();
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
                    let req = Req {
                        path: path.to_string(),
                        query: url::form_urlencoded::parse(q.as_bytes())
                            .into_owned()
                            .collect(),
                        headers,
                    };
                    log.lock().unwrap().push(req.clone());
                    let (status, v) = handler(&req);
                    let b = v.to_string();
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                        b.len()
                    );
                    if w.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, log)
}

fn settled(t: &str, result: &str) -> Value {
    let sv = if result == "yes" { "1.0000" } else { "0.0000" };
    json!({"ticker": t, "event_ticker": "E", "status": "finalized", "result": result,
           "settlement_value_dollars": sv, "close_time": "2026-09-29T12:30:00Z"})
}

#[test]
fn unreadable_objects_pages_and_the_queries_sent() {
    let rt = server_runtime();
    let (base, log) = serve(
        &rt,
        Arc::new(|r: &Req| match (r.path.as_str(), r.query.get("cursor")) {
            ("/trade-api/v2/markets", None) => (
                200,
                json!({"markets": [
                    // A bad field: unreadable, for its ticker.
                    {"ticker": "KX-A", "status": "finalized", "result": "yes",
                     "settlement_value_dollars": "2.5"},
                    // Not asked about: ignored.
                    settled("KX-OTHER", "yes"),
                    // Not an object: ignored.
                    17
                ], "cursor": "p2"}),
            ),
            ("/trade-api/v2/markets", Some(c)) if c == "p2" => (
                200,
                json!({"markets": [settled("KX-B", "no"),
                                   // Listed twice: the first is kept.
                                   settled("KX-B", "yes")], "cursor": ""}),
            ),
            ("/trade-api/v2/historical/markets", None) => (
                200,
                json!({"markets": [settled("KX-D", "yes")], "cursor": null}),
            ),
            _ => (
                404,
                json!({"error": {"code": "not_found", "message": "no"}}),
            ),
        }),
    );
    let mut src = source(base, None);
    let asked: Vec<MarketTicker> = ["KX-A", "KX-B", "KX-D", "KX-E"]
        .into_iter()
        .map(MarketTicker::new)
        .collect();
    let answer = src.fetch(&asked).unwrap();
    // In the order asked.
    assert!(
        matches!(&answer[0], FetchedOutcome::Unreadable { ticker, message }
        if ticker.as_str() == "KX-A" && message.contains("/markets")
            && message.contains("settlement_value_dollars"))
    );
    assert_eq!(
        market_of(&answer[1]).result.as_ref().map(|r| r.as_str()),
        Some("no")
    );
    assert_eq!(market_of(&answer[2]).ticker.as_str(), "KX-D");
    assert_eq!(
        answer[3],
        FetchedOutcome::NotFound(MarketTicker::new("KX-E"))
    );
    assert_eq!(answer.len(), 4);
    let st = src.stats();
    assert_eq!(
        (
            st.found_live,
            st.found_historical,
            st.not_found,
            st.unreadable
        ),
        (1, 1, 1, 1)
    );

    let log = log.lock().unwrap().clone();
    let paths: Vec<(&str, Option<&str>)> = log
        .iter()
        .map(|r| (r.path.as_str(), r.query.get("cursor").map(String::as_str)))
        .collect();
    assert_eq!(
        paths,
        [
            ("/trade-api/v2/markets", None),
            ("/trade-api/v2/markets", Some("p2")),
            ("/trade-api/v2/historical/markets", None)
        ]
    );
    assert_eq!(log[0].query["tickers"], "KX-A,KX-B,KX-D,KX-E");
    assert_eq!(log[0].query["limit"], "4");
    assert!(!log[0].query.contains_key("status"), "no status filter");
    assert_eq!(
        log[2].query["tickers"], "KX-D,KX-E",
        "only the missing ones"
    );
    assert!(
        !log[0].headers.contains_key(pipeline::auth::HEADER_KEY),
        "unsigned without credentials"
    );
}

#[test]
fn unauthorized_and_forbidden_fail_at_once() {
    for status in [401u16, 403] {
        let rt = server_runtime();
        let (base, log) = serve(
            &rt,
            Arc::new(move |_: &Req| {
                (
                    status,
                    json!({"error": {"code": "authentication_error", "message": "no",
                                     "details": "INCORRECT_API_KEY_SIGNATURE"}}),
                )
            }),
        );
        let mut src = source(base, None);
        let err = src.fetch(&[MarketTicker::new("KX-A")]).unwrap_err();
        assert!(
            matches!(err.rest(), Some(RestError::Unauthorized { status: s, .. }) if *s == status),
            "{err:?}"
        );
        assert!(err.to_string().contains("/markets"), "{err}");
        assert_eq!(log.lock().unwrap().len(), 1, "{status}: not retried");
    }
}

#[test]
fn a_429_storm_longer_than_the_retries_is_an_error() {
    let rt = server_runtime();
    let (base, log) = serve(
        &rt,
        Arc::new(|_: &Req| (429, json!({"error": "too many requests"}))),
    );
    let mut src = source(base, None);
    let err = src.fetch(&[MarketTicker::new("KX-A")]).unwrap_err();
    assert!(
        matches!(err.rest(), Some(RestError::RateLimited { .. })),
        "{err:?}"
    );
    // The first attempt and the configured retries.
    assert_eq!(log.lock().unwrap().len(), 1 + 5);
}

fn write_mode(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn test_pem() -> String {
    use rand::SeedableRng;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let key = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

#[test]
fn requests_are_signed_only_when_credentials_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let no_env = |_: &str| None;
    // No key file: unsigned, whatever the .env says.
    std::fs::write(&env, "KALSHI_API_KEY_ID=test-key\n").unwrap();
    assert!(
        optional_credentials(&env, &dir.path().join("missing.pem"), &no_env)
            .unwrap()
            .is_none()
    );
    // A key others may read: refused, naming the file and the fix.
    let pem = write_mode(dir.path(), "open.pem", &test_pem(), 0o644);
    let err = optional_credentials(&env, &pem, &no_env).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("open.pem") && msg.contains("chmod 600"),
        "{msg}"
    );
    // Not a key.
    let pem = write_mode(dir.path(), "garbage.pem", "hello\n", 0o600);
    let msg = optional_credentials(&env, &pem, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("garbage.pem") && msg.contains("not a usable private key"),
        "{msg}"
    );
    // A key without a key id.
    let pem = write_mode(dir.path(), "k.pem", &test_pem(), 0o600);
    let err = optional_credentials(&dir.path().join("none.env"), &pem, &no_env).unwrap_err();
    assert!(
        matches!(err, OutcomeSourceError::MissingKeyId { .. })
            && err.to_string().contains("KALSHI_API_KEY_ID"),
        "{err}"
    );
    // Both: signed, and the signature verifies.
    let creds = optional_credentials(&env, &pem, &no_env).unwrap().unwrap();
    assert_eq!(creds.key_id.expose(), "test-key");
    let rt = server_runtime();
    let (base, log) = serve(
        &rt,
        Arc::new(|_: &Req| {
            (
                200,
                json!({"markets": [settled("KX-A", "yes")], "cursor": ""}),
            )
        }),
    );
    let mut src = source(base, Some(Signer::from_credentials(&creds)));
    src.fetch(&[MarketTicker::new("KX-A")]).unwrap();
    let (_, public) = common::test_signer();
    let req = log.lock().unwrap()[0].clone();
    common::verify_headers(
        &public,
        |h| req.headers.get(&h.to_ascii_lowercase()).cloned(),
        "GET",
        "/trade-api/v2/markets",
    )
    .unwrap();
}

#[tokio::test]
async fn fetch_inside_a_runtime_is_refused_not_a_panic() {
    let mut src = source("http://127.0.0.1:9/trade-api/v2".into(), None);
    let err = src.fetch(&[MarketTicker::new("KX-A")]).unwrap_err();
    assert!(matches!(err, OutcomeSourceError::InsideRuntime), "{err:?}");
    // A runtime may not be dropped inside another one's async context.
    tokio::task::spawn_blocking(move || drop(src))
        .await
        .unwrap();
}
