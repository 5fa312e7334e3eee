//! Shared harness for the tests that run this crate's client against the in-process
//! simulator (`kalshi_sim`, the client's independent test partner) on 127.0.0.1:0.
//!
//! Nothing here sleeps to synchronise: waits are on the client's events, with an outer
//! timeout that only turns a hang into a failure (never a timing assertion).
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use kalshi_sim::engine::{MakerConfig, NoiseConfig, PriceLevelStructure};
use kalshi_sim::{ClockMode, KeySetup, RateLimitConfig, Sim, SimConfig, SimHandle};
use market_data::backoff::BackoffConfig;
use market_data::book::OrderBook;
use market_data::rest::ResolveConfig;
use market_data::wire::Level;
use market_data::ws::{SharedBooks, WsConfig, WsEvent};
use market_data::{RestClient, RestConfig};
use pipeline::auth::Signer;
use pipeline::money::{Count, Price};
use pipeline::secrets::{ApiKeyId, PrivateKey};
use tokio::sync::mpsc;

/// 2026-09-29T12:30:00Z: a multiple of every window length used with it.
pub const START: i64 = 1_790_685_000_000;
/// Test markets last ten seconds.
pub const MARKET_MS: i64 = 10_000;
/// Hang guard for one awaited event.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A deterministic 2048-bit key (generated once per test process) and its id.
pub fn key(n: usize) -> (ApiKeyId, PrivateKey) {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        use rand::SeedableRng;
        (0..2u64)
            .map(|i| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7000 + i);
                PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rng, 2048).expect("key"))
            })
            .collect()
    });
    (
        ApiKeyId::new(format!("5157e575-0000-4000-8000-00000000000{n}")),
        keys[n].clone(),
    )
}

/// Manual clock at [`START`], 10-second markets listed one window ahead, maker requoting
/// every 250 ms, no noise trader, cent grid, no rate limits, key 0 registered.
pub fn config() -> SimConfig {
    let (key_id, key) = key(0);
    let mut c = SimConfig {
        clock: ClockMode::Manual,
        start_ms: Some(START + 1_000),
        warmup_markets: 0,
        key: KeySetup::Private { key_id, key },
        rate_limit: RateLimitConfig::unlimited(),
        ..SimConfig::default()
    };
    c.engine.seed = 42;
    c.engine.market_duration_ms = MARKET_MS;
    c.engine.listing_lead_ms = MARKET_MS;
    c.engine.requote_interval_ms = 250;
    c.engine.price_level_structure = PriceLevelStructure::LinearCent;
    c.engine.maker = MakerConfig::default();
    c.engine.noise = NoiseConfig {
        takers_per_minute: 0.0,
        ..NoiseConfig::default()
    };
    c
}

pub async fn start(edit: impl FnOnce(&mut SimConfig)) -> Sim {
    let mut c = config();
    edit(&mut c);
    kalshi_sim::spawn(c).await.expect("simulator starts")
}

/// The signer for the simulator's registered key.
pub fn signer(sim: &Sim) -> Signer {
    let (id, k) = sim.credentials().expect("the simulator has a private key");
    Signer::new(id, &k)
}

/// Client settings for loopback tests: short timeouts and backoffs, no client-side pacing,
/// seeded jitter, fast create resolution.
pub fn rest_config(sim: &Sim) -> RestConfig {
    let mut c = RestConfig::new(sim.rest_base());
    c.timeout = Duration::from_secs(10);
    c.connect_timeout = Duration::from_secs(5);
    c.read_retries = 8;
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(100),
        multiplier: 2,
    };
    c.rate_limits = None;
    c.resolve = ResolveConfig {
        attempts: 3,
        delay: Duration::from_millis(20),
        grace: Duration::from_secs(1),
        max_resends: 1,
        max_rejected_retries: 5,
    };
    c.seed = Some(7);
    c
}

pub fn rest(sim: &Sim) -> RestClient {
    RestClient::new(rest_config(sim), Some(signer(sim))).expect("client")
}

pub fn ws_config(sim: &Sim) -> WsConfig {
    let mut c = WsConfig::new(sim.ws_url());
    c.ping_interval = None;
    c.idle_timeout = Duration::from_secs(60);
    c.command_timeout = Duration::from_secs(20);
    c.reconnect = BackoffConfig {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        multiplier: 2,
    };
    c.seed = Some(3);
    c
}

/// The next event that `want` accepts (others are passed to `seen`).
pub async fn next_event(
    rx: &mut mpsc::Receiver<WsEvent>,
    mut seen: impl FnMut(&WsEvent),
    want: impl Fn(&WsEvent) -> bool,
) -> WsEvent {
    tokio::time::timeout(LIMIT, async {
        loop {
            let e = rx.recv().await.expect("the session ended");
            if want(&e) {
                return e;
            }
            seen(&e);
        }
    })
    .await
    .expect("the awaited event did not come (hang guard)")
}

fn levels(l: &[(Price, Count)]) -> Vec<Level> {
    l.iter().map(|(p, c)| Level::new(*p, *c)).collect()
}

/// The simulator's own book of `ticker` (YES bids, NO bids at NO-leg prices).
pub fn sim_book(h: &SimHandle, ticker: &str) -> OrderBook {
    let (yes, no) = h
        .with_engine(|e| e.book_levels(ticker))
        .expect("the simulator lists the market");
    OrderBook::from_levels(ticker.into(), &levels(&yes), &levels(&no)).expect("sim book is valid")
}

/// The book as `GET /markets/{ticker}/orderbook` reports it.
pub async fn rest_book(client: &RestClient, ticker: &str) -> OrderBook {
    let r = client.orderbook(ticker, None).await.expect("orderbook");
    let l = r.levels();
    OrderBook::from_levels(ticker.into(), &l.yes, &l.no).expect("REST book is valid")
}

/// Whether the client's book of every ticker is valid and level-for-level the simulator's.
pub fn books_match(h: &SimHandle, books: &SharedBooks, tickers: &[String]) -> bool {
    tickers.iter().all(|t| {
        books
            .book(t)
            .is_some_and(|b| b.is_valid() && b.same_levels(&sim_book(h, t)))
    })
}

/// With the simulator quiescent (manual clock not moving), consumes the client's events until
/// its books of `tickers` are valid and equal to the simulator's. A client that mis-applies
/// or drops an update never gets there and the hang guard fails the test.
pub async fn await_books_match(
    h: &SimHandle,
    books: &SharedBooks,
    rx: &mut mpsc::Receiver<WsEvent>,
    tickers: &[String],
) {
    tokio::time::timeout(LIMIT, async {
        while !books_match(h, books, tickers) {
            rx.recv().await.expect("the session ended");
        }
    })
    .await
    .unwrap_or_else(|_| {
        let detail: Vec<String> = tickers
            .iter()
            .map(|t| {
                format!(
                    "{t}: client {:?}\n  sim {:?}",
                    books.book(t),
                    sim_book(h, t)
                )
            })
            .collect();
        panic!(
            "books never matched the simulator's:\n{}",
            detail.join("\n")
        )
    });
}

/// The active market and the next listed one (the two a live session follows).
pub fn live_tickers(h: &SimHandle) -> Vec<String> {
    let active = h.active_market().expect("an active market");
    let ms = h.markets();
    let i = ms
        .iter()
        .position(|m| m.ticker == active.ticker)
        .expect("listed");
    let mut out = vec![active.ticker.to_string()];
    if let Some(next) = ms.get(i + 1) {
        out.push(next.ticker.to_string());
    }
    out
}

/// Wall-clock now, Unix ms.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A market length in whole minutes (≥ 20) whose window containing `now_ms` still has at
/// least `room_ms` to run, so order tests pinned to wall-clock time never meet a close.
pub fn window_with_room(now_ms: i64, room_ms: i64) -> i64 {
    let mut d = 20 * 60_000;
    while d - now_ms.rem_euclid(d) < room_ms {
        d += 60_000;
    }
    d
}
