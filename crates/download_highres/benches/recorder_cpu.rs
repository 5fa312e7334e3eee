//! CPU cost and bytes per snapshot of the recorder for many markets on one connection.
//!
//!     cargo bench -p download_highres --bench recorder_cpu
//!
//! `kalshi_sim` runs one market at a time (one window of one series), so this bench serves a
//! synthetic exchange of its own on loopback: `GET /markets` lists N open markets, and one
//! WebSocket streams their order books (snapshots, then random signed deltas that never cross
//! or go negative, at `RECORDER_BENCH_RATE` deltas/s per market, default 20; the real
//! KXBTC15M captures of May 2026 average ~79 deltas/s for one market) plus one `ticker` per
//! market per second. The recorder is the release `download_highres` binary in its own
//! process, so its CPU (user + sys, from `/proc/<pid>/stat`) is measured alone, over a steady
//! window after a warm-up. Bytes per snapshot are read back from the files it wrote.
//!
//! Environment: `RECORDER_BENCH_SECONDS` (measured window, default 20),
//! `RECORDER_BENCH_MARKETS` (default `50,200`), `RECORDER_BENCH_RATE`, `RECORDER_BENCH_DEPTH`
//! (default `0,5`), `RECORDER_BENCH_CAPTURE=1` (also `--capture`; prints capture bytes/frame).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const SERIES: &str = "KXBENCH";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Clone)]
struct Exchange {
    tickers: Arc<Vec<String>>,
    rate: f64,
    open_ms: i64,
    close_ms: i64,
    frames: Arc<AtomicU64>,
}

async fn markets(
    State(x): State<Exchange>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let list: Vec<Value> = if q.get("status").map(String::as_str) == Some("open") {
        x.tickers
            .iter()
            .map(|t| {
                json!({"ticker": t, "event_ticker": format!("{SERIES}-EV"), "status": "active",
                       "open_time": iso(x.open_ms), "close_time": iso(x.close_ms),
                       "last_price_dollars": "0.5000", "volume_fp": "0.00"})
            })
            .collect()
    } else {
        Vec::new()
    };
    Json(json!({"markets": list, "cursor": ""}))
}

async fn upgrade(State(x): State<Exchange>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(move |s| conn(x, s))
}

/// One market's synthetic book: YES bids 0.30–0.45, NO bids sent on the YES scale 0.55–0.70
/// (`use_yes_price`), sizes in centi-contracts.
struct Book {
    yes: BTreeMap<i64, i64>,
    no: BTreeMap<i64, i64>,
    volume: i64,
}

fn dollars(micros: i64) -> String {
    format!("{}.{:04}", micros / 1_000_000, micros % 1_000_000 / 100)
}
fn fp(centis: i64) -> String {
    let s = if centis < 0 { "-" } else { "" };
    format!("{s}{}.{:02}", centis.abs() / 100, centis.abs() % 100)
}

impl Book {
    fn new(rng: &mut impl Rng) -> Book {
        let mut b = Book {
            yes: BTreeMap::new(),
            no: BTreeMap::new(),
            volume: 0,
        };
        for k in 0..16 {
            b.yes
                .insert(300_000 + k * 10_000, rng.gen_range(100..25_000));
            b.no.insert(550_000 + k * 10_000, rng.gen_range(100..25_000));
        }
        b
    }
    fn snapshot(&self, t: &str) -> Value {
        let lv = |m: &BTreeMap<i64, i64>| -> Vec<Value> {
            m.iter()
                .map(|(p, s)| json!([dollars(*p), fp(*s)]))
                .collect()
        };
        json!({"market_ticker": t, "yes_dollars_fp": lv(&self.yes), "no_dollars_fp": lv(&self.no)})
    }
    /// A random signed change that keeps every level ≥ 0 and the book uncrossed.
    fn delta(&mut self, rng: &mut impl Rng) -> (&'static str, i64, i64) {
        let yes = rng.gen_bool(0.5);
        let k = rng.gen_range(0..16i64);
        let (side, map, price) = if yes {
            ("yes", &mut self.yes, 300_000 + k * 10_000)
        } else {
            ("no", &mut self.no, 550_000 + k * 10_000)
        };
        let cur = map.get(&price).copied().unwrap_or(0);
        let d = if cur > 0 && rng.gen_bool(0.5) {
            -rng.gen_range(1..=cur)
        } else {
            rng.gen_range(1..5_000)
        };
        let new = cur + d;
        if new == 0 {
            map.remove(&price);
        } else {
            map.insert(price, new);
        }
        if d < 0 {
            self.volume += -d;
        }
        (side, price, d)
    }
}

struct Sub {
    channel: String,
    markets: BTreeSet<String>,
    seq: u64,
}

async fn conn(x: Exchange, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut books: HashMap<String, Book> = HashMap::new();
    let mut subs: BTreeMap<u64, Sub> = BTreeMap::new();
    let mut next_sid = 1;
    let mut out: Vec<String> = Vec::new();
    let mut gen = tokio::time::interval(Duration::from_millis(10));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut carry = 0.0f64;
    loop {
        tokio::select! {
            m = rx.next() => {
                let Some(Ok(m)) = m else { return };
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                let id = v["id"].as_u64().unwrap_or(0);
                let p = &v["params"];
                let list = |p: &Value| -> Vec<String> {
                    p["market_tickers"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
                };
                match v["cmd"].as_str() {
                    Some("subscribe") => {
                        let channel = p["channels"][0].as_str().unwrap_or("").to_string();
                        let sid = next_sid;
                        next_sid += 1;
                        out.push(json!({"id": id, "type": "subscribed", "msg": {"channel": channel, "sid": sid}}).to_string());
                        let ms = list(p);
                        let mut sub = Sub { channel: channel.clone(), markets: ms.iter().cloned().collect(), seq: 0 };
                        if channel == "orderbook_delta" {
                            for t in &ms {
                                let b = books.entry(t.clone()).or_insert_with(|| Book::new(&mut rng));
                                sub.seq += 1;
                                out.push(json!({"type": "orderbook_snapshot", "sid": sid, "seq": sub.seq, "msg": b.snapshot(t)}).to_string());
                            }
                        }
                        subs.insert(sid, sub);
                    }
                    Some("update_subscription") => {
                        let sid = p["sids"][0].as_u64().or(p["sid"].as_u64()).unwrap_or(0);
                        let ms = list(p);
                        if let Some(sub) = subs.get_mut(&sid) {
                            match p["action"].as_str() {
                                Some("add_markets") => for t in ms {
                                    if sub.markets.insert(t.clone()) && sub.channel == "orderbook_delta" {
                                        let b = books.entry(t.clone()).or_insert_with(|| Book::new(&mut rng));
                                        sub.seq += 1;
                                        out.push(json!({"type": "orderbook_snapshot", "sid": sid, "seq": sub.seq, "msg": b.snapshot(&t)}).to_string());
                                    }
                                },
                                Some("delete_markets") => for t in ms { sub.markets.remove(&t); },
                                _ => {}
                            }
                            out.push(json!({"id": id, "type": "ok", "sid": sid, "seq": sub.seq, "msg": {"market_tickers": sub.markets}}).to_string());
                        }
                    }
                    Some("unsubscribe") => {
                        for sid in p["sids"].as_array().cloned().unwrap_or_default() {
                            let sid = sid.as_u64().unwrap_or(0);
                            if let Some(sub) = subs.remove(&sid) {
                                out.push(json!({"id": id, "type": "unsubscribed", "sid": sid, "seq": sub.seq}).to_string());
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ = gen.tick() => {
                let Some((&sid, sub)) = subs.iter_mut().find(|(_, s)| s.channel == "orderbook_delta") else { continue };
                let ms: Vec<&String> = sub.markets.iter().collect();
                if ms.is_empty() { continue; }
                carry += x.rate * ms.len() as f64 * 0.010;
                let ts = now_ms();
                while carry >= 1.0 {
                    carry -= 1.0;
                    let t = ms[rng.gen_range(0..ms.len())];
                    let b = books.get_mut(t.as_str()).expect("snapshotted");
                    let (side, price, d) = b.delta(&mut rng);
                    sub.seq += 1;
                    out.push(json!({"type": "orderbook_delta", "sid": sid, "seq": sub.seq, "msg": {
                        "market_ticker": t, "price_dollars": dollars(price), "delta_fp": fp(d), "side": side, "ts_ms": ts}}).to_string());
                }
            }
            _ = tick.tick() => {
                let ts = now_ms();
                for (&sid, sub) in subs.iter().filter(|(_, s)| s.channel == "ticker") {
                    for t in &sub.markets {
                        if let Some(b) = books.get(t) {
                            out.push(json!({"type": "ticker", "sid": sid, "msg": {"market_ticker": t,
                                "price_dollars": "0.5000", "volume_fp": fp(b.volume), "ts_ms": ts}}).to_string());
                        }
                    }
                }
            }
        }
        x.frames.fetch_add(out.len() as u64, Ordering::Relaxed);
        for m in out.drain(..) {
            if tx.feed(Message::Text(m.into())).await.is_err() {
                return;
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
}

/// (user + system CPU seconds, resident set bytes) of a process.
fn cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let num = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    ((num(11) + num(12)) as f64 / hz, num(21) * page)
}

struct Figures {
    markets: usize,
    depth: usize,
    cpu_per_wall: f64,
    frames_per_s: f64,
    rows_per_s: f64,
    bytes_per_row: f64,
    rss_mb: f64,
    capture_bytes_per_frame: Option<f64>,
}

async fn run_one(
    markets_n: usize,
    depth: usize,
    rate: f64,
    seconds: u64,
    capture: bool,
) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now_ms();
    let x = Exchange {
        tickers: Arc::new(
            (0..markets_n)
                .map(|i| format!("{SERIES}-M{i:04}"))
                .collect(),
        ),
        rate,
        open_ms: t0 - 60_000,
        close_ms: t0 + 3_600_000,
        frames: Arc::new(AtomicU64::new(0)),
    };
    let app = Router::new()
        .route("/trade-api/v2/markets", get(markets))
        .route("/trade-api/ws/v2", get(upgrade))
        .with_state(x.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (id, key) = kalshi_sim::keys::generate().unwrap();
    let (env, pem) =
        kalshi_sim::keys::write_credentials(&dir.path().join("keys"), &id, &key).unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("runtime.json");
    std::fs::write(
        &cfg,
        serde_json::to_vec(&json!({"environment": "bench",
            "exchange": {"bench": {"rest_base": format!("http://{addr}/trade-api/v2")}},
            "env_file": env, "pem_file": pem, "series": SERIES, "data_dir": out,
            "snapshot_ms": 100, "use_yes_price": true}))
        .unwrap(),
    )
    .unwrap();
    let warmup = 5u64;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_download_highres"))
        .arg("--config")
        .arg(&cfg)
        .args(["--depth", &depth.to_string(), "--status-seconds", "3600"])
        .args(["--duration", &(warmup + seconds + 2).to_string()])
        .args(if capture { &["--capture"][..] } else { &[][..] })
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let (c0, _) = cpu_and_rss(pid);
    let f0 = x.frames.load(Ordering::Relaxed);
    let w0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (c1, rss) = cpu_and_rss(pid);
    let f1 = x.frames.load(Ordering::Relaxed);
    let wall = w0.elapsed().as_secs_f64();
    let status = child.wait().await.unwrap();
    assert!(status.success(), "recorder failed: {status}");
    server.abort();
    let sum = market_data::recorder::summarize(&out, &pipeline::SeriesTicker::new(SERIES)).unwrap();
    assert!(sum.report.is_clean(), "{}", sum.report);
    let rows = sum.rows();
    let first = sum
        .markets
        .values()
        .filter_map(|m| m.first_ts)
        .min()
        .unwrap_or(0);
    let last = sum
        .markets
        .values()
        .filter_map(|m| m.last_ts)
        .max()
        .unwrap_or(0);
    Figures {
        markets: markets_n,
        depth,
        cpu_per_wall: (c1 - c0) / wall,
        frames_per_s: (f1 - f0) as f64 / wall,
        rows_per_s: rows as f64 / ((last - first).max(1) as f64 / 1000.0),
        bytes_per_row: sum.snapshot_bytes() as f64 / rows.max(1) as f64,
        rss_mb: rss as f64 / (1 << 20) as f64,
        capture_bytes_per_frame: capture.then(|| {
            sum.capture_files.iter().map(|c| c.1).sum::<u64>() as f64
                / sum.capture_frames.max(1) as f64
        }),
    }
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn main() {
    let seconds: u64 = std::env::var("RECORDER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let rate: f64 = std::env::var("RECORDER_BENCH_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let markets = env_list("RECORDER_BENCH_MARKETS", "50,200");
    let depths = env_list("RECORDER_BENCH_DEPTH", "0,5");
    let capture = std::env::var("RECORDER_BENCH_CAPTURE").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "recorder_cpu: 100 ms grid, one WebSocket, {rate} deltas/s per market + 1 ticker/s per market, {seconds} s measured after 5 s warm-up"
    );
    println!(
        "{:>8} {:>6} {:>14} {:>10} {:>10} {:>12} {:>8}",
        "markets", "depth", "cpu s/wall s", "frames/s", "rows/s", "bytes/row", "rss MB"
    );
    for &n in &markets {
        for &d in &depths {
            let f = rt.block_on(run_one(n, d, rate, seconds, capture));
            println!(
                "{:>8} {:>6} {:>14.3} {:>10.0} {:>10.0} {:>12.1} {:>8.1}{}",
                f.markets,
                f.depth,
                f.cpu_per_wall,
                f.frames_per_s,
                f.rows_per_s,
                f.bytes_per_row,
                f.rss_mb,
                f.capture_bytes_per_frame
                    .map(|b| format!("   capture {b:.1} bytes/frame"))
                    .unwrap_or_default()
            );
        }
    }
}
