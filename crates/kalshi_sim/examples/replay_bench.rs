//! Replay throughput: capture files at `--speed max` to N WebSocket clients that subscribe to
//! the order book and ticker channel of every market listed at the start, and count what they
//! receive (use one session, or sessions whose markets are all listed at the start).
//!
//!     cargo run --release -p kalshi_sim --example replay_bench -- [--clients N] \
//!         [--markets markets.jsonl] CAPTURE...
//!
//! Prints frames per second sent by the replay and received by the clients (all of them, up to
//! a `get_snapshot` barrier after the last frame).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kalshi_sim::{spawn_replay, RateLimitConfig, ReplayConfig, Speed, StartMode};
use pipeline::auth::Signer;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut clients = 1usize;
    let mut markets = None;
    let mut captures = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--clients" => clients = args.next().ok_or("--clients N")?.parse()?,
            "--markets" => markets = Some(PathBuf::from(args.next().ok_or("--markets FILE")?)),
            _ => captures.push(PathBuf::from(a)),
        }
    }
    if captures.is_empty() {
        return Err("usage: replay_bench [--clients N] [--markets FILE] CAPTURE...".into());
    }
    let r = spawn_replay(ReplayConfig {
        captures,
        markets_file: markets,
        speed: Speed::Max,
        start: StartMode::Manual,
        rate_limit: RateLimitConfig::unlimited(),
        ..ReplayConfig::default()
    })
    .await?;
    let (id, key) = r.credentials().ok_or("credentials")?;
    let listed: Value = reqwest::get(format!("{}/markets", r.rest_base()))
        .await?
        .json()
        .await?;
    let tickers: Vec<String> = listed["markets"]
        .as_array()
        .ok_or("markets")?
        .iter()
        .filter_map(|m| m["ticker"].as_str().map(str::to_string))
        .collect();
    let mut tasks = Vec::new();
    let mut triggers = Vec::new();
    for _ in 0..clients {
        let signer = Signer::new(id.clone(), &key);
        let mut req = r.ws_url().into_client_request()?;
        for (name, v) in signer.headers("GET", "/trade-api/ws/v2").pairs() {
            req.headers_mut().insert(name, v.parse()?);
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        let (mut write, mut read) = ws.split();
        let sub = json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta", "ticker"], "market_tickers": tickers}});
        write.send(Message::Text(sub.to_string().into())).await?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let t = tickers.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut sid = 0;
            let mut done = Some(done_rx);
            let mut asked = false;
            loop {
                tokio::select! {
                    m = read.next() => {
                        let Some(Ok(m)) = m else { break };
                        if let Message::Text(t) = m {
                            n += 1;
                            // Parse only what a client must look at.
                            if t.starts_with(r#"{"type":"subscribed""#) || t.contains(r#""id":"#) {
                                let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                                if v["id"] == 99 { break; }
                                if v["msg"]["channel"] == "orderbook_delta" {
                                    sid = v["msg"]["sid"].as_u64().unwrap_or(0);
                                }
                            }
                        }
                    }
                    _ = async { if let Some(d) = done.as_mut() { let _ = d.await; } else { std::future::pending::<()>().await } }, if !asked => {
                        asked = true;
                        done = None;
                        let cmd = json!({"id": 99, "cmd": "update_subscription", "params": {"sid": sid, "market_tickers": t, "action": "get_snapshot"}});
                        if write.send(Message::Text(cmd.to_string().into())).await.is_err() { break; }
                    }
                }
            }
            n
        }));
        triggers.push(done_tx);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    r.start();
    let report = r.wait_finished().await;
    for d in triggers {
        let _ = d.send(());
    }
    let mut messages = 0;
    for t in tasks {
        messages += t.await?;
    }
    let all = t0.elapsed();
    println!(
        "{} frames ({} markets) to {clients} client(s): replay sent {:.0} frames/s ({:.2} s); \
         clients received everything in {:.2} s = {:.0} frames/s, {messages} messages",
        report.tally.frames_sent,
        tickers.len(),
        report.frames_per_second(),
        report.wall.as_secs_f64(),
        all.as_secs_f64(),
        report.tally.frames_sent as f64 / all.as_secs_f64(),
    );
    r.shutdown().await;
    Ok(())
}
