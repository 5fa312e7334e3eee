//! Test harness: an in-process simulator on 127.0.0.1:0 with a manual clock, a signing
//! REST client (reqwest + the pipeline's signer) and a WebSocket client (tokio-tungstenite).
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kalshi_sim::engine::{MakerConfig, NoiseConfig, PriceLevelStructure};
use kalshi_sim::{ClockMode, KeySetup, RateLimitConfig, Sim, SimConfig};
use pipeline::auth::Signer;
use pipeline::secrets::{ApiKeyId, PrivateKey};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// 2026-09-29T12:30:00Z, a multiple of every window length used here.
pub const START: i64 = 1_790_685_000_000;
pub const MARKET_MS: i64 = 10_000;

/// Deterministic 2048-bit keys (generated once per test process).
pub fn key(n: u64) -> (ApiKeyId, PrivateKey) {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        use rand::SeedableRng;
        (0..3)
            .map(|i| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + i);
                PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rng, 2048).expect("key"))
            })
            .collect()
    });
    (
        ApiKeyId::new(format!("00000000-0000-4000-8000-00000000000{n}")),
        keys[n as usize].clone(),
    )
}

/// Manual clock, 10-second markets listed one window ahead, no rate limits, maker on,
/// noise trader off, cent grid.
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

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub signer: Signer,
}

impl Client {
    pub fn new(sim: &Sim, key_n: u64) -> Client {
        let (id, k) = key(key_n);
        Client {
            http: reqwest::Client::new(),
            base: sim.rest_base(),
            signer: Signer::new(id, &k),
        }
    }

    pub fn for_key(sim: &Sim, id: ApiKeyId, k: &PrivateKey) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: sim.rest_base(),
            signer: Signer::new(id, k),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn sign(
        &self,
        rb: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let full = format!("/trade-api/v2{}", path.split('?').next().unwrap_or(path));
        let h = self.signer.headers(method, &full);
        let mut rb = rb;
        for (k, v) in h.pairs() {
            rb = rb.header(k, v);
        }
        rb
    }

    async fn finish(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = rb.send().await.expect("request");
        let s = r.status();
        let text = r.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (s, v)
    }

    /// Unsigned GET.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::finish(self.http.get(self.url(path))).await
    }

    pub async fn sget(&self, path: &str) -> (StatusCode, Value) {
        Self::finish(self.sign(self.http.get(self.url(path)), "GET", path)).await
    }

    pub async fn spost(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        Self::finish(self.sign(self.http.post(self.url(path)).json(body), "POST", path)).await
    }

    pub async fn sdelete(&self, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut rb = self.http.delete(self.url(path));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        Self::finish(self.sign(rb, "DELETE", path)).await
    }

    /// The raw response of a signed POST (for lost-response faults).
    pub async fn spost_raw(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.sign(self.http.post(self.url(path)).json(body), "POST", path)
            .send()
            .await
    }
}

pub fn order(ticker: &str, side: &str, price: &str, count: &str, tif: &str) -> Value {
    serde_json::json!({
        "ticker": ticker, "side": side, "price": price, "count": count,
        "time_in_force": tif, "self_trade_prevention_type": "taker_at_cross",
    })
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(sim: &Sim, key_n: u64) -> Ws {
    let (id, k) = key(key_n);
    let signer = Signer::new(id, &k);
    let mut req = sim.ws_url().into_client_request().expect("request");
    for (name, v) in signer.headers("GET", "/trade-api/ws/v2").pairs() {
        req.headers_mut().insert(name, v.parse().expect("header"));
    }
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connects");
    ws
}

pub async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// Next JSON message (skips control frames). Panics after 20 s: a hang guard, not a timing
/// assertion.
pub async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s")
            .expect("stream open")
            .expect("frame");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// The next message of `type`, skipping others.
pub async fn ws_next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = ws_next(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

pub fn active_ticker(sim: &Sim) -> String {
    sim.handle()
        .active_market()
        .expect("an active market")
        .ticker
        .to_string()
}
