//! Replay of capture files through an independent client (tokio-tungstenite + reqwest):
//! a self-made capture written here, and (when `shared/` is present) a real recording.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kalshi_sim::engine::Levels;
use kalshi_sim::{spawn_replay, KeySetup, RateLimitConfig, Replay, ReplayConfig, Speed, StartMode};
use pipeline::auth::Signer;
use pipeline::money::{Count, Price};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A book as `(side, leg price) → size`.
type Book = BTreeMap<(String, Price), Count>;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

// ----------------------------------------------------------------------------------------
// A minimal client
// ----------------------------------------------------------------------------------------

async fn connect(r: &Replay) -> Ws {
    let (id, k) = common::key(0);
    let signer = Signer::new(id, &k);
    let mut req = r.ws_url().into_client_request().expect("request");
    for (name, v) in signer.headers("GET", "/trade-api/ws/v2").pairs() {
        req.headers_mut().insert(name, v.parse().expect("header"));
    }
    tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connects")
        .0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// Next JSON message. Panics after 60 s: a hang guard, not a timing assertion.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("a message within 60 s")
            .expect("stream open")
            .expect("frame");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

async fn get(r: &Replay, path: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("{}{path}", r.rest_base()))
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn tickers(v: &Value) -> Vec<String> {
    let mut t: Vec<String> = v["markets"]
        .as_array()
        .expect("markets")
        .iter()
        .map(|m| m["ticker"].as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

fn level(l: &Value) -> (Price, Count) {
    (
        Price::parse_dollars(l[0].as_str().unwrap()).unwrap(),
        Count::parse(l[1].as_str().unwrap()).unwrap(),
    )
}

/// `yes_price`: the NO side is on the YES scale and is converted back to NO-leg prices.
fn snapshot_book(msg: &Value, yes_price: bool) -> Book {
    let mut b = Book::new();
    for side in ["yes", "no"] {
        for l in msg[format!("{side}_dollars_fp")]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (mut p, c) = level(l);
            if yes_price && side == "no" {
                p = p.complement();
            }
            b.insert((side.to_string(), p), c);
        }
    }
    b
}

fn apply_delta(book: &mut Book, msg: &Value, yes_price: bool) {
    let side = msg["side"].as_str().unwrap().to_string();
    let mut p = Price::parse_dollars(msg["price_dollars"].as_str().unwrap()).unwrap();
    if yes_price && side == "no" {
        p = p.complement();
    }
    let d = Count::parse(msg["delta_fp"].as_str().unwrap()).unwrap();
    let e = book.entry((side, p)).or_default();
    *e += d;
    assert!(!e.is_negative(), "a level went negative: {msg}");
    if e.is_zero() {
        book.retain(|_, c| !c.is_zero());
    }
}

fn as_book((yes, no): (Levels, Levels)) -> Book {
    let mut b = Book::new();
    for (p, c) in yes {
        b.insert(("yes".into(), p), c);
    }
    for (p, c) in no {
        b.insert(("no".into(), p), c);
    }
    b
}

/// What one connection saw on its order-book subscription.
#[derive(Default)]
struct Seen {
    books: BTreeMap<String, Book>,
    /// The book of a market just before a later snapshot replaced it (non-empty ones).
    replaced: Vec<(String, Book)>,
    deltas: BTreeMap<String, usize>,
    delta_msgs: Vec<Value>,
    snapshots: usize,
    tickers: Vec<Value>,
    lifecycle: Vec<Value>,
    last_seq: u64,
    /// Position (in messages) of each lifecycle event and of each market's last delta.
    order: Vec<(String, String)>,
}

impl Seen {
    fn take(&mut self, m: &Value, book_sid: u64, yes_price: bool) {
        match m["type"].as_str().unwrap() {
            kind @ ("orderbook_snapshot" | "orderbook_delta") => {
                assert_eq!(m["sid"].as_u64(), Some(book_sid), "{m}");
                let seq = m["seq"].as_u64().expect("sequenced");
                assert_eq!(seq, self.last_seq + 1, "contiguous seq: {m}");
                self.last_seq = seq;
                let t = m["msg"]["market_ticker"].as_str().unwrap().to_string();
                if kind == "orderbook_snapshot" {
                    let new = snapshot_book(&m["msg"], yes_price);
                    if let Some(old) = self.books.insert(t.clone(), new) {
                        if !old.is_empty() {
                            self.replaced.push((t.clone(), old));
                        }
                    }
                    self.snapshots += 1;
                } else {
                    let book = self.books.get_mut(&t).expect("a delta after its snapshot");
                    apply_delta(book, &m["msg"], yes_price);
                    *self.deltas.entry(t.clone()).or_default() += 1;
                    self.delta_msgs.push(m["msg"].clone());
                    self.order.push(("delta".into(), t));
                }
            }
            "ticker" => self.tickers.push(m["msg"].clone()),
            "market_lifecycle_v2" => {
                let ev = format!(
                    "{} {}",
                    m["msg"]["event_type"].as_str().unwrap(),
                    m["msg"]["market_ticker"].as_str().unwrap()
                );
                self.order.push(("life".into(), ev));
                self.lifecycle.push(m["msg"].clone());
            }
            other => panic!("unexpected {other}: {m}"),
        }
    }
}

/// Subscribes to the order books of `markets` (plus `ticker` and lifecycle when `all`) and
/// returns the order-book sid; reads through the subscription snapshots into `seen`.
async fn subscribe(
    ws: &mut Ws,
    markets: &[String],
    yes_price: bool,
    all: bool,
    seen: &mut Seen,
) -> u64 {
    send(ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": markets, "use_yes_price": yes_price}})).await;
    let sub = next(ws).await;
    assert_eq!(
        (sub["type"].as_str(), sub["id"].as_u64()),
        (Some("subscribed"), Some(1))
    );
    let sid = sub["msg"]["sid"].as_u64().unwrap();
    for _ in markets {
        let s = next(ws).await;
        assert_eq!(s["type"], "orderbook_snapshot", "{s}");
        seen.take(&s, sid, yes_price);
    }
    if all {
        send(ws, json!({"id": 2, "cmd": "subscribe", "params": {"channels": ["ticker", "market_lifecycle_v2"]}})).await;
        for _ in 0..2 {
            let s = next(ws).await;
            assert_eq!(
                (s["type"].as_str(), s["id"].as_u64()),
                (Some("subscribed"), Some(2))
            );
        }
    }
    sid
}

/// A connection read in the background (as a real client reads while the replay runs),
/// until the answer to command 99.
struct Reading {
    write: futures_util::stream::SplitSink<Ws, Message>,
    task: tokio::task::JoinHandle<Vec<Value>>,
}

fn read_in_background(ws: Ws) -> Reading {
    let (write, mut read) = ws.split();
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), read.next())
                .await
                .expect("a message within 60 s")
                .expect("stream open")
                .expect("frame");
            match m {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                    let done = v["id"] == 99;
                    out.push(v);
                    if done {
                        return out;
                    }
                }
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    });
    Reading { write, task }
}

/// After the replay finished: `get_snapshot` (id 99) makes the connection deliver everything
/// queued before it, then one snapshot per market of the current books, then `ok`. Takes
/// all of it into `seen`; returns the barrier's snapshots.
async fn drain(
    mut reading: Reading,
    sid: u64,
    markets: &[String],
    yes_price: bool,
    seen: &mut Seen,
) -> BTreeMap<String, Book> {
    let cmd = json!({"id": 99, "cmd": "update_subscription", "params": {"sid": sid, "market_tickers": markets, "action": "get_snapshot"}});
    reading
        .write
        .send(Message::Text(cmd.to_string().into()))
        .await
        .expect("send");
    let mut msgs = reading.task.await.expect("reader");
    let ok = msgs.pop().expect("the answer");
    assert_eq!(ok["type"], "ok", "{ok}");
    let tail = msgs.split_off(msgs.len() - markets.len());
    for m in &msgs {
        seen.take(m, sid, yes_price);
    }
    let mut barrier = BTreeMap::new();
    for (m, t) in tail.iter().zip(markets) {
        assert_eq!(m["type"], "orderbook_snapshot", "{m}");
        assert_eq!(m["msg"]["market_ticker"].as_str(), Some(t.as_str()));
        assert_eq!(m["seq"].as_u64(), Some(seen.last_seq + 1), "{m}");
        seen.last_seq += 1;
        barrier.insert(t.clone(), snapshot_book(&m["msg"], yes_price));
    }
    assert_eq!(ok["seq"].as_u64(), Some(seen.last_seq));
    barrier
}

// ----------------------------------------------------------------------------------------
// A self-made capture
// ----------------------------------------------------------------------------------------

/// 2026-09-21T14:00:00Z.
const T0: i64 = 1_790_000_000_000 - 1_790_000_000_000 % 900_000;
const SERIES: &str = "KXTEST";
const A: &str = "KXTEST-26SEP210815-15";
const B: &str = "KXTEST-26SEP210830-30";
const D: &str = "KXTEST-26SEP210900-00";

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The frames written, and what an independent reader must end up with.
#[derive(Default)]
struct Fixture {
    lines: Vec<String>,
    /// Final books.
    books: BTreeMap<String, Book>,
    deltas: BTreeMap<String, usize>,
    tickers: usize,
    /// The recorded delta msgs in order.
    delta_msgs: Vec<Value>,
}

fn line(t_ms: i64, frame: Value) -> String {
    json!({"recv_ns": t_ms * 1_000_000 + 417, "frame": frame}).to_string()
}

fn dollars(p: Price) -> String {
    p.to_dollars()
}

fn snapshot_frame(sid: u64, seq: u64, t: &str, book: &Book) -> Value {
    let side = |s: &str| -> Vec<Value> {
        book.iter()
            .filter(|((bs, _), _)| bs == s)
            .map(|((_, p), c)| json!([dollars(*p), c.to_fp_string()]))
            .collect()
    };
    let mut msg = json!({"market_id": format!("id-{t}"), "market_ticker": t});
    for s in ["yes", "no"] {
        let l = side(s);
        if !l.is_empty() {
            msg[format!("{s}_dollars_fp")] = Value::Array(l);
        }
    }
    json!({"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": msg})
}

impl Fixture {
    fn ticker(&mut self, t_ms: i64, t: &str, book: &Book, volume: i64) {
        let best = |s: &str| {
            book.iter()
                .rfind(|((bs, _), _)| bs == s)
                .map(|((_, p), c)| (*p, *c))
        };
        let (yb, nb) = (best("yes"), best("no"));
        let msg = json!({
            "market_ticker": t, "market_id": format!("id-{t}"),
            "price_dollars": "0.4500", "volume_fp": format!("{volume}.00"),
            "open_interest_fp": "1234.50", "dollar_volume": volume / 2,
            "yes_bid_dollars": yb.map(|x| dollars(x.0)), "yes_ask_dollars": nb.map(|x| dollars(x.0.complement())),
            "ts": t_ms / 1000, "ts_ms": t_ms - 3, "time": "recorded",
        });
        self.lines
            .push(line(t_ms, json!({"type": "ticker", "sid": 2, "msg": msg})));
        self.tickers += 1;
    }

    /// `n` deltas on `t` (sid `sid`, from `seq`), one every 200 ms from `from_ms`.
    #[allow(clippy::too_many_arguments)]
    fn deltas(
        &mut self,
        rng: &mut Lcg,
        t: &str,
        sid: u64,
        seq: &mut u64,
        book: &mut Book,
        from_ms: i64,
        n: usize,
        ticker_every: usize,
    ) {
        for i in 0..n {
            let t_ms = from_ms + 200 * i as i64;
            let side = if rng.next(2) == 0 { "yes" } else { "no" };
            let cents = if side == "yes" { 30 } else { 35 } + rng.next(25) as i64;
            // Now and then a deci-cent level near the edge.
            let p = if rng.next(10) == 0 {
                Price::from_micros(1_000 * (1 + rng.next(9) as i64)).unwrap()
            } else {
                Price::from_cents(cents).unwrap()
            };
            let have = book
                .get(&(side.to_string(), p))
                .copied()
                .unwrap_or(Count::ZERO);
            let delta = if have.centis() > 0 && rng.next(2) == 0 {
                // Remove part or all of the level.
                let take = if rng.next(3) == 0 {
                    have.centis()
                } else {
                    1 + rng.next(have.centis() as u64) as i64
                };
                Count::from_centis(-take.min(have.centis()))
            } else {
                Count::from_centis(1 + rng.next(50_000) as i64)
            };
            let e = book.entry((side.to_string(), p)).or_default();
            *e += delta;
            if e.is_zero() {
                book.remove(&(side.to_string(), p));
            }
            *seq += 1;
            let ts_ms = t_ms - 2;
            let msg = json!({
                "delta_fp": delta.to_fp_string(), "market_id": format!("id-{t}"), "market_ticker": t,
                "price_dollars": dollars(p), "side": side,
                "ts": format!("2026-09-21T00:00:{:02}.{:06}Z", (ts_ms / 1000) % 60, (ts_ms % 1000) * 1000 + 123),
                "ts_ms": ts_ms,
            });
            self.delta_msgs.push(msg.clone());
            self.lines.push(line(
                t_ms,
                json!({"type": "orderbook_delta", "sid": sid, "seq": *seq, "msg": msg}),
            ));
            *self.deltas.entry(t.to_string()).or_default() += 1;
            if ticker_every > 0 && i % ticker_every == 0 {
                self.ticker(t_ms + 1, t, book, 1000 + i as i64);
            }
        }
    }

    /// Market A (open before the start, closes at T0+60 s, result yes) then B (opens at
    /// T0+60 s), as a recorder rotating its subscription records them; D's first ticker
    /// frames at the end (listed during the replay).
    fn build() -> Fixture {
        let mut f = Fixture::default();
        let mut rng = Lcg(7);
        f.lines.push(line(
            T0,
            json!({"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}}),
        ));
        let mut a = Book::new();
        for (s, c, n) in [("yes", 40, 10), ("yes", 41, 5), ("no", 55, 7)] {
            a.insert(
                (s.into(), Price::from_cents(c).unwrap()),
                Count::from_contracts(n),
            );
        }
        a.insert(
            ("no".into(), Price::parse_dollars("0.001").unwrap()),
            Count::parse("1602.50").unwrap(),
        );
        f.lines.push(line(T0 + 1, snapshot_frame(1, 1, A, &a)));
        let mut seq_a = 1;
        f.deltas(&mut rng, A, 1, &mut seq_a, &mut a, T0 + 100, 290, 25);
        // At close the exchange sends the market's empty book.
        seq_a += 1;
        f.lines
            .push(line(T0 + 61_000, snapshot_frame(1, seq_a, A, &Book::new())));
        f.books.insert(A.into(), Book::new());
        let mut b = Book::new();
        b.insert(
            ("yes".into(), Price::from_cents(50).unwrap()),
            Count::from_contracts(3),
        );
        f.lines.push(line(T0 + 62_000, snapshot_frame(3, 1, B, &b)));
        let mut seq_b = 1;
        f.deltas(&mut rng, B, 3, &mut seq_b, &mut b, T0 + 62_100, 280, 30);
        f.ticker(T0 + 118_000, D, &Book::new(), 0);
        f.ticker(T0 + 119_000, D, &Book::new(), 0);
        f.books.insert(B.into(), b);
        f
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn markets_file(dir: &Path, with_b: bool) -> PathBuf {
    let mut text = String::new();
    let mut rows = vec![
        json!({"ticker": A, "open_time": iso(T0 - 840_000), "close_time": iso(T0 + 60_000), "floor_strike": 80938.41, "result": "yes"}),
        json!({"ticker": D, "open_time": iso(T0 + 1_000_000), "close_time": iso(T0 + 1_900_000), "floor_strike": null, "result": null}),
        // Not in the capture: never listed.
        json!({"ticker": "KXTEST-26SEP201200-00", "open_time": iso(T0 - 90_000_000), "close_time": iso(T0 - 89_100_000), "floor_strike": 1.0, "result": "no"}),
    ];
    if with_b {
        rows.push(json!({"ticker": B, "open_time": iso(T0 + 60_000), "close_time": iso(T0 + 960_000), "floor_strike": 81000.5, "result": null}));
    }
    for r in rows {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    let p = dir.join("markets.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

/// Gzip, one member per `per_member` lines (as a recorder flushing now and then writes it).
fn write_gz(path: &Path, lines: &[String], per_member: usize) {
    let mut out = Vec::new();
    for chunk in lines.chunks(per_member.max(1)) {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for l in chunk {
            enc.write_all(l.as_bytes()).unwrap();
            enc.write_all(b"\n").unwrap();
        }
        out.extend(enc.finish().unwrap());
    }
    std::fs::write(path, out).unwrap();
}

fn config(captures: Vec<PathBuf>, markets: Option<PathBuf>) -> ReplayConfig {
    let (key_id, key) = common::key(0);
    ReplayConfig {
        captures,
        markets_file: markets,
        speed: Speed::Max,
        start: StartMode::Manual,
        key: KeySetup::Private { key_id, key },
        rate_limit: RateLimitConfig::unlimited(),
        ..ReplayConfig::default()
    }
}

#[tokio::test]
async fn replays_a_capture_as_snapshots_and_resequenced_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::build();
    let cap = dir.path().join("s.capture.jsonl.gz");
    write_gz(&cap, &fx.lines, 100);
    let markets = markets_file(dir.path(), true);
    let r = spawn_replay(config(vec![cap], Some(markets)))
        .await
        .expect("replay starts");
    assert_eq!(r.now_ms(), T0, "the clock starts at the first frame");

    // REST before the start: A is open, B listed ahead of its open, D not yet listed.
    let (s, v) = get(&r, &format!("/markets?series_ticker={SERIES}&status=open")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(tickers(&v), vec![A.to_string()]);
    let m = &v["markets"][0];
    assert_eq!(m["status"], "active");
    assert_eq!(m["close_time"], iso(T0 + 60_000));
    assert_eq!(m["floor_strike"], json!(80938.41));
    let (_, v) = get(&r, "/markets").await;
    assert_eq!(tickers(&v), vec![A.to_string(), B.to_string()]);
    let (s, _) = get(&r, &format!("/markets/{D}")).await;
    assert_eq!(s, 404, "D is listed 15 minutes before its open");

    // Two clients: one on the NO-leg convention with ticker and lifecycle, one on the YES
    // scale for A only.
    let both = vec![A.to_string(), B.to_string()];
    let mut ws = connect(&r).await;
    let mut seen = Seen::default();
    let sid = subscribe(&mut ws, &both, false, true, &mut seen).await;
    let mut ws_yes = connect(&r).await;
    let mut seen_yes = Seen::default();
    let only_a = vec![A.to_string()];
    let sid_yes = subscribe(&mut ws_yes, &only_a, true, false, &mut seen_yes).await;
    assert!(
        seen.books.values().all(Book::is_empty),
        "no book before the start"
    );
    assert!(!r.progress().started);
    let (reading, reading_yes) = (read_in_background(ws), read_in_background(ws_yes));

    r.start();
    let report = r.wait_finished().await;
    let barrier = drain(reading, sid, &both, false, &mut seen).await;
    let barrier_yes = drain(reading_yes, sid_yes, &only_a, true, &mut seen_yes).await;

    // Everything recorded arrived, re-sequenced under our sid, msgs as recorded.
    assert_eq!(report.problem_count, 0, "{:?}", report.problems);
    assert_eq!(seen.deltas, fx.deltas);
    assert_eq!(seen.delta_msgs, fx.delta_msgs, "delta msgs passed through");
    assert_eq!(seen.snapshots, 2 + 3, "2 on subscribe, A, A at close, B");
    assert_eq!(seen.tickers.len(), fx.tickers);
    assert_eq!(
        seen.tickers[0]["time"], "recorded",
        "ticker msgs passed through"
    );
    assert_eq!(report.tally.deltas as usize, fx.delta_msgs.len());
    assert_eq!(report.tally.tickers as usize, fx.tickers);
    assert_eq!(report.tally.snapshots, 3);
    assert_eq!(report.tally.ignored_frames, 1, "the recorded `subscribed`");
    assert_eq!(
        report.tally.frames_sent as usize,
        fx.lines.len() - 1,
        "every data frame"
    );
    // The books rebuilt by each client equal the replay's and the fixture's.
    for t in [A, B] {
        let replayed = as_book(r.book(t).expect("known market"));
        assert_eq!(seen.books[t], replayed, "{t}");
        assert_eq!(seen.books[t], fx.books[t], "{t}");
        assert_eq!(barrier[t], replayed, "{t}: snapshot at the end");
    }
    assert!(!fx.books[B].is_empty());
    assert_eq!(seen_yes.books[A], seen.books[A], "YES-scale client agrees");
    assert_eq!(barrier_yes[A], seen.books[A]);
    assert_eq!(seen_yes.deltas[A], fx.deltas[A]);
    // A's book before its close snapshot was the one the deltas built.
    assert_eq!(seen.replaced.len(), 1);
    assert_eq!(seen.replaced[0].0, A);
    assert!(!seen.replaced[0].1.is_empty());

    // Lifecycle: A determined (yes) and settled after its close, B activated at its open, D
    // listed 15 minutes before its open.
    let life: Vec<String> = seen
        .lifecycle
        .iter()
        .map(|m| {
            format!(
                "{} {} {}",
                m["event_type"].as_str().unwrap(),
                m["market_ticker"].as_str().unwrap(),
                m.get("result").and_then(Value::as_str).unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        life,
        vec![
            format!("activated {B} -"),
            format!("determined {A} yes"),
            format!("settled {A} -"),
            format!("created {D} -"),
        ]
    );
    assert_eq!(seen.lifecycle[1]["determination_ts"], (T0 + 61_000) / 1000);
    assert_eq!(seen.lifecycle[3]["open_ts"], (T0 + 1_000_000) / 1000);
    // B's activation comes after A's last delta and before B's first.
    let pos = |what: &str, t: &str| {
        seen.order
            .iter()
            .position(|(k, x)| k == what && x.contains(t))
            .unwrap()
    };
    let last_a = seen
        .order
        .iter()
        .rposition(|(k, x)| k == "delta" && x == A)
        .unwrap();
    assert!(last_a < pos("life", &format!("activated {B}")));
    assert!(pos("life", &format!("activated {B}")) < pos("delta", B));

    // REST at the end of the recording.
    assert_eq!(r.now_ms(), T0 + 119_000);
    let (_, v) = get(&r, &format!("/markets?series_ticker={SERIES}&status=open")).await;
    assert_eq!(tickers(&v), vec![B.to_string()]);
    let (_, v) = get(&r, &format!("/markets/{A}")).await;
    assert_eq!(v["market"]["status"], "finalized");
    assert_eq!(v["market"]["result"], "yes");
    let (_, v) = get(&r, "/markets?status=unopened").await;
    assert_eq!(tickers(&v), vec![D.to_string()]);
    let (s, v) = get(&r, &format!("/markets/{B}/orderbook")).await;
    assert_eq!(s, 200);
    let mut rest = Book::new();
    for (side, key) in [("yes", "yes_dollars"), ("no", "no_dollars")] {
        for l in v["orderbook_fp"][key].as_array().unwrap() {
            let (p, c) = level(l);
            rest.insert((side.into(), p), c);
        }
    }
    assert_eq!(rest, fx.books[B]);
    let (_, v) = get(&r, &format!("/markets/{B}")).await;
    let best_yes = fx.books[B].iter().rfind(|((s, _), _)| s == "yes").unwrap();
    assert_eq!(v["market"]["yes_bid_dollars"], best_yes.0 .1.to_dollars());
    assert_eq!(v["market"]["volume_fp"], format!("{}.00", 1000 + 270));
    let p = r.progress();
    assert!(p.finished && p.started);
    assert_eq!(p.tally, report.tally);
    let read = seen.delta_msgs.len() + seen.tickers.len() + seen_yes.delta_msgs.len();
    assert!(p.ws_messages_sent as usize > read);
    r.shutdown().await;
}

#[tokio::test]
async fn paced_replay_serves_the_same_stream() {
    // Recorded speed, with the 200 ms pauses of the fixture cut to 1 ms: the paced path
    // (sleeping between frames, batches by due time) must deliver exactly what max does.
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::build();
    let cap = dir.path().join("s.capture.jsonl.gz");
    write_gz(&cap, &fx.lines, 100);
    let mut cfg = config(vec![cap], Some(markets_file(dir.path(), true)));
    cfg.speed = Speed::Factor(1.0);
    cfg.max_gap = Some(Duration::from_millis(1));
    let r = spawn_replay(cfg).await.unwrap();
    let both = vec![A.to_string(), B.to_string()];
    let mut ws = connect(&r).await;
    let mut seen = Seen::default();
    let sid = subscribe(&mut ws, &both, false, true, &mut seen).await;
    let reading = read_in_background(ws);
    r.start();
    let report = r.wait_finished().await;
    drain(reading, sid, &both, false, &mut seen).await;
    assert_eq!(report.problem_count, 0, "{:?}", report.problems);
    assert_eq!(seen.delta_msgs, fx.delta_msgs);
    assert_eq!(seen.tickers.len(), fx.tickers);
    assert_eq!(seen.lifecycle.len(), 4);
    for t in [A, B] {
        assert_eq!(seen.books[t], fx.books[t], "{t}");
    }
    r.shutdown().await;
}

#[tokio::test]
async fn auth_and_protocol_errors_match_serve() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::build();
    let cap = dir.path().join("s.capture.jsonl");
    std::fs::write(&cap, fx.lines.join("\n") + "\n").unwrap();
    let mut cfg = config(vec![cap], Some(markets_file(dir.path(), true)));
    cfg.start = StartMode::OnSubscribe;
    let r = spawn_replay(cfg).await.unwrap();
    // An unsigned upgrade is refused with 401.
    let err = tokio_tungstenite::connect_async(r.ws_url())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // Private REST needs a signature; orders are refused.
    let (s, _) = get(&r, "/portfolio/balance").await;
    assert_eq!(s, 401);
    let (_, v) = get(&r, "/exchange/status").await;
    assert_eq!(v["trading_active"], false);

    let mut ws = connect(&r).await;
    send(
        &mut ws,
        json!({"id": 5, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["msg"]["code"].as_u64()),
        (Some("error"), Some(14))
    );
    send(&mut ws, json!({"id": 6, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [D]}})).await;
    let e = next(&mut ws).await;
    assert_eq!(e["msg"]["code"], 16, "D is not listed yet: {e}");
    send(
        &mut ws,
        json!({"id": 7, "cmd": "subscribe", "params": {"channels": ["nope"]}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["msg"]["code"], 8);
    assert!(!r.progress().started, "errors do not start the replay");
    send(&mut ws, json!({"id": 8, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": [A]}})).await;
    assert_eq!(next(&mut ws).await["type"], "subscribed");
    let report = r.wait_finished().await;
    assert!(r.progress().started, "the first subscription started it");
    assert_eq!(report.tally.deltas as usize, fx.delta_msgs.len());
    send(&mut ws, json!({"id": 9, "cmd": "list_subscriptions"})).await;
    let mut tickers_a = 0;
    loop {
        let m = next(&mut ws).await;
        if m["id"] == 9 {
            assert_eq!(m["msg"][0]["channel"], "ticker");
            break;
        }
        assert_eq!(m["type"], "ticker");
        assert_eq!(m["msg"]["market_ticker"], A, "only A was asked for");
        assert!(m.get("seq").is_none());
        tickers_a += 1;
    }
    // The command can be answered before the queued frames; read the rest via a snapshot
    // barrier on a fresh book subscription.
    send(&mut ws, json!({"id": 10, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [B]}})).await;
    loop {
        let m = next(&mut ws).await;
        if m["type"] == "orderbook_snapshot" {
            assert_eq!(snapshot_book(&m["msg"], false), fx.books[B]);
            break;
        }
        if m["type"] == "ticker" {
            tickers_a += 1;
        }
    }
    let want = fx
        .lines
        .iter()
        .filter(|l| l.contains(r#""type":"ticker""#) && l.contains(A))
        .count();
    assert_eq!(tickers_a, want);
    // Adding B to the ticker subscription with `send_initial_snapshot`: B's last recorded
    // ticker msg at once.
    send(&mut ws, json!({"id": 11, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": [B], "send_initial_snapshot": true}})).await;
    let sub = next(&mut ws).await;
    assert_eq!(
        (sub["type"].as_str(), sub["id"].as_u64()),
        (Some("subscribed"), Some(11))
    );
    let last_b: Value = fx
        .lines
        .iter()
        .rfind(|l| l.contains(r#""type":"ticker""#) && l.contains(B))
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["frame"]["msg"].clone())
        .unwrap();
    let m = next(&mut ws).await;
    assert_eq!((m["type"].as_str(), &m["msg"]), (Some("ticker"), &last_b));
    r.shutdown().await;
}

#[tokio::test]
async fn corrupt_and_truncated_captures_are_reported_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::build();
    // File 1: A's part with a garbage line and a delta whose price is off the scale.
    let split = fx
        .lines
        .iter()
        .position(|l| l.contains(B))
        .expect("B starts");
    let mut first: Vec<String> = fx.lines[..split].to_vec();
    first.insert(10, "this is not JSON".into());
    let bad_price = first[20].replace(r#""price_dollars":""#, r#""price_dollars":"7"#);
    assert_ne!(bad_price, first[20]);
    first.insert(21, bad_price);
    let cap1 = dir.path().join("one.capture.jsonl.gz");
    write_gz(&cap1, &first, 50);
    // File 2: B's part, gzip cut short (a recorder killed mid-write).
    let cap2 = dir.path().join("two.capture.jsonl.gz");
    write_gz(&cap2, &fx.lines[split..], 10_000);
    let bytes = std::fs::read(&cap2).unwrap();
    std::fs::write(&cap2, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // What a plain reader can get out of the cut file: whole lines before the break.
    let mut readable = Vec::new();
    let cut = std::fs::read(&cap2).unwrap();
    let mut dec = flate2::read::MultiGzDecoder::new(&cut[..]);
    let mut buf = [0u8; 4096];
    loop {
        match dec.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => readable.extend_from_slice(&buf[..n]),
        }
    }
    let complete: Vec<String> = readable
        .split(|b| *b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>();
    let complete = &complete[..complete.len() - 1]; // the part after the last newline
    assert!(complete.len() > 10 && complete.len() < fx.lines.len() - split);

    // B has no markets entry: a warning, not a failure. Files given out of order.
    let r = spawn_replay(config(
        vec![cap2.clone(), cap1.clone()],
        Some(markets_file(dir.path(), false)),
    ))
    .await
    .expect("replay starts despite bad input");
    let mut ws = connect(&r).await;
    let mut seen = Seen::default();
    let both = vec![A.to_string(), B.to_string()];
    let sid = subscribe(&mut ws, &both, false, false, &mut seen).await;
    let reading = read_in_background(ws);
    r.start();
    let report = r.wait_finished().await;
    drain(reading, sid, &both, false, &mut seen).await;

    assert_eq!(report.missing_metadata, vec![B.to_string()]);
    assert_eq!(report.captures.len(), 2);
    assert_eq!(report.captures[0].path, cap1, "replayed in recorded order");
    assert_eq!(report.captures[0].bad_lines, 2);
    assert!(report.captures[0].stopped.is_none());
    assert!(report.captures[1].stopped.is_some());
    let problems = report.problems.join("\n");
    for want in [
        format!("{}:11: not a capture record", cap1.display()),
        format!("{}:22: orderbook_delta price_dollars", cap1.display()),
        format!("{}:", cap2.display()),
        "truncated or corrupt".to_string(),
        format!("market {B}: no entry in the markets file"),
    ] {
        assert!(problems.contains(&want), "missing {want:?} in\n{problems}");
    }
    // What was readable was served: B's book is the one its readable lines build.
    let mut b = Book::new();
    let mut n = 0;
    for l in complete {
        let v: Value = serde_json::from_str(l).unwrap();
        let f = &v["frame"];
        if f["msg"]["market_ticker"] != B {
            continue;
        }
        match f["type"].as_str().unwrap() {
            "orderbook_snapshot" => b = snapshot_book(&f["msg"], false),
            "orderbook_delta" => {
                apply_delta(&mut b, &f["msg"], false);
                n += 1;
            }
            _ => {}
        }
    }
    assert_eq!(seen.books[B], b);
    assert_eq!(as_book(r.book(B).unwrap()), b);
    assert_eq!(seen.deltas[B], n);
    assert_eq!(
        seen.deltas[A], fx.deltas[A],
        "the bad copy is skipped, the rest served"
    );
    // B still has a schedule: from its first to its last recorded frame.
    let (_, v) = get(&r, &format!("/markets/{B}")).await;
    assert_eq!(v["market"]["open_time"], iso(T0 + 62_000));
    r.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = spawn_replay(config(vec![], None)).await.unwrap_err();
    assert!(e.to_string().contains("no capture files"), "{e}");
    let missing = dir.path().join("missing.capture.jsonl.gz");
    let e = spawn_replay(config(vec![missing.clone()], None))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("missing.capture.jsonl.gz"), "{e}");
    let empty = dir.path().join("empty.capture.jsonl");
    std::fs::write(&empty, "garbage\n").unwrap();
    let e = spawn_replay(config(vec![empty], None)).await.unwrap_err();
    assert!(e.to_string().contains("no readable frames"), "{e}");
    let cap = dir.path().join("c.jsonl");
    std::fs::write(&cap, Fixture::build().lines.join("\n")).unwrap();
    let bad = dir.path().join("m.jsonl");
    std::fs::write(&bad, "{\"ticker\": \"A\"}\n{\"open_time\": 3}\n").unwrap();
    let e = spawn_replay(config(vec![cap], Some(bad)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("m.jsonl:2:"), "{e}");
    assert!("max".parse::<Speed>().unwrap() == Speed::Max);
    assert_eq!("10".parse::<Speed>().unwrap(), Speed::Factor(10.0));
    assert!("0".parse::<Speed>().is_err() && "fast".parse::<Speed>().is_err());
}

// ----------------------------------------------------------------------------------------
// A real recording (needs shared/)
// ----------------------------------------------------------------------------------------

fn shared_data() -> Option<PathBuf> {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/kalshi_kxbtc15m_2026-05");
    p.is_dir().then_some(p)
}

/// Books rebuilt straight from a capture file: the state just before each later snapshot
/// of a market (non-empty ones), the final books, and the delta and ticker counts.
struct Rebuilt {
    replaced: Vec<(String, Book)>,
    books: BTreeMap<String, Book>,
    deltas: usize,
    tickers: usize,
}

fn rebuild_from_file(path: &Path) -> Rebuilt {
    let f = std::fs::File::open(path).unwrap();
    let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    let mut replaced = Vec::new();
    let (mut deltas, mut tickers) = (0, 0);
    for l in r.lines() {
        let v: Value = serde_json::from_str(&l.unwrap()).unwrap();
        let f = &v["frame"];
        let t = f["msg"]["market_ticker"].as_str().unwrap().to_string();
        match f["type"].as_str().unwrap() {
            "orderbook_snapshot" => {
                if let Some(old) = books.insert(t.clone(), snapshot_book(&f["msg"], false)) {
                    if !old.is_empty() {
                        replaced.push((t, old));
                    }
                }
            }
            "orderbook_delta" => {
                apply_delta(books.get_mut(&t).unwrap(), &f["msg"], false);
                deltas += 1;
            }
            "ticker" => tickers += 1,
            other => panic!("unexpected {other}"),
        }
    }
    Rebuilt {
        replaced,
        books,
        deltas,
        tickers,
    }
}

#[tokio::test]
async fn real_session_at_max_speed_rebuilds_the_recorded_books() {
    let Some(data) = shared_data() else {
        println!("skipped: shared/data/kalshi_kxbtc15m_2026-05 is not present");
        return;
    };
    let cap = data.join(
        "captures/2026-05-11_particle_shadow_forward_20260511T053741Z-long900.capture.jsonl.gz",
    );
    let r = spawn_replay(config(vec![cap.clone()], Some(data.join("markets.jsonl"))))
        .await
        .expect("replay starts");
    let (_, v) = get(&r, "/markets?series_ticker=KXBTC15M&status=open").await;
    assert_eq!(tickers(&v), vec!["KXBTC15M-26MAY110145-45".to_string()]);
    assert_eq!(v["markets"][0]["open_time"], "2026-05-11T05:30:00Z");
    let (_, v) = get(&r, "/markets?series_ticker=KXBTC15M").await;
    let listed = tickers(&v);
    assert_eq!(listed.len(), 2, "{listed:?}");

    let mut ws = connect(&r).await;
    let mut seen = Seen::default();
    let sid = subscribe(&mut ws, &listed, false, true, &mut seen).await;
    let reading = read_in_background(ws);
    let t0 = std::time::Instant::now();
    r.start();
    let report = r.wait_finished().await;
    let barrier = drain(reading, sid, &listed, false, &mut seen).await;
    let received = t0.elapsed();

    let Rebuilt {
        replaced,
        books,
        deltas,
        tickers: tickers_n,
    } = rebuild_from_file(&cap);
    assert_eq!(report.problem_count, 0, "{:?}", report.problems);
    assert_eq!(seen.replaced, replaced, "books at each recorded snapshot");
    for t in &listed {
        assert_eq!(seen.books[t], books[t], "{t}");
        assert_eq!(barrier[t], books[t], "{t}");
        assert_eq!(as_book(r.book(t).unwrap()), books[t], "{t}");
    }
    assert_eq!(seen.deltas.values().sum::<usize>(), deltas);
    assert_eq!(seen.tickers.len(), tickers_n);
    let life: Vec<String> = seen
        .lifecycle
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["event_type"].as_str().unwrap(),
                m["market_ticker"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        life,
        vec![
            "activated KXBTC15M-26MAY110200-00",
            "determined KXBTC15M-26MAY110145-45",
            "settled KXBTC15M-26MAY110145-45",
        ]
    );
    assert_eq!(seen.lifecycle[1]["result"], "no");
    let (_, v) = get(&r, "/markets?series_ticker=KXBTC15M&status=open").await;
    assert_eq!(tickers(&v), vec!["KXBTC15M-26MAY110200-00".to_string()]);
    // Figures, not assertions.
    println!(
        "real session: {} frames ({} deltas, {} tickers, {} snapshots) sent in {:.2} s = {:.0} frames/s; \
         all received by one client in {:.2} s = {:.0} frames/s",
        report.tally.frames_sent,
        report.tally.deltas,
        report.tally.tickers,
        report.tally.snapshots,
        report.wall.as_secs_f64(),
        report.frames_per_second(),
        received.as_secs_f64(),
        report.tally.frames_sent as f64 / received.as_secs_f64(),
    );
    r.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// The `replay` subcommand
// ----------------------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_kalshi_sim");

#[test]
fn cli_replays_a_capture_and_exits_after_linger() {
    let out = std::process::Command::new(BIN)
        .args(["replay", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--capture",
        "--markets",
        "--speed",
        "--addr",
        "--addr-file",
        "--key-dir",
        "--public-key",
        "--wait-for-subscriber",
        "--max-gap-seconds",
        "--linger",
    ] {
        assert!(help.contains(flag), "replay --help lacks {flag}");
    }

    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::build();
    let cap = dir.path().join("s.capture.jsonl.gz");
    write_gz(&cap, &fx.lines, 100);
    let markets = markets_file(dir.path(), true);
    let addr_file = dir.path().join("addr");
    let keys = dir.path().join("keys");
    let out = std::process::Command::new(BIN)
        .args(["replay", "--capture"])
        .arg(&cap)
        .arg("--markets")
        .arg(&markets)
        .args(["--speed", "max", "--addr", "127.0.0.1:0", "--linger", "0"])
        .arg("--addr-file")
        .arg(&addr_file)
        .arg("--key-dir")
        .arg(&keys)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("kalshi_sim replay listening: REST http://127.0.0.1:"),
        "{stdout}"
    );
    let want = format!(
        "replay finished: {} frames ({} snapshots, {} deltas, {} tickers, 0 trades, 4 lifecycle events)",
        fx.lines.len() - 1,
        3,
        fx.delta_msgs.len(),
        fx.tickers
    );
    assert!(stdout.contains(&want), "{stdout}");
    assert!(stdout.contains("0 problems"), "{stdout}");
    assert!(std::fs::read_to_string(&addr_file)
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(keys.join(".env").is_file() && keys.join("kalshi_sim_key.pem").is_file());

    for (args, want) in [
        (vec!["--speed", "fast"], "--speed"),
        (vec!["--max-gap-seconds=-1"], "--max-gap-seconds"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["replay", "--capture"])
            .arg(&cap)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = std::process::Command::new(BIN)
        .args(["replay", "--addr", "127.0.0.1:0", "--capture"])
        .arg(dir.path().join("nope.gz"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.gz"));
}
