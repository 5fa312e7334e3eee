//! `kalshi_sim replay`: flags → `ReplayConfig`, then `kalshi_sim::spawn_replay`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use kalshi_sim::{ReplayConfig, Speed, StartMode};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A capture file (`{"recv_ns":…,"frame":…}` per line, gzip or plain). Repeatable; the
    /// files are replayed one after the other in recorded order.
    #[arg(long = "capture", value_name = "FILE", required = true, num_args = 1..)]
    captures: Vec<PathBuf>,
    /// Market metadata: a markets list (ticker, open_time, close_time, floor_strike, result
    /// per line) or a `<SERIES>_markets.jsonl` sidecar.
    #[arg(long, value_name = "FILE")]
    markets: Option<PathBuf>,
    /// Recorded seconds per real second, or `max` (as fast as the clients read).
    #[arg(long, default_value = "1")]
    speed: String,
    #[command(flatten)]
    server: crate::ServerArgs,
    /// Start at the first WebSocket `subscribe` instead of at once.
    #[arg(long)]
    wait_for_subscriber: bool,
    /// Pauses between frames longer than this many recorded seconds are cut to it.
    #[arg(long, default_value_t = 60.0, conflicts_with = "keep_gaps")]
    max_gap_seconds: f64,
    /// Keep every pause between frames (e.g. hours between two capture files).
    #[arg(long)]
    keep_gaps: bool,
    /// A market is listed this many seconds before its open.
    #[arg(long, default_value_t = 900.0)]
    listing_lead_seconds: f64,
    /// Seconds from close to `determined` (for markets whose result is known).
    #[arg(long, default_value_t = 1.0)]
    determination_delay_seconds: f64,
    /// Title of markets the markets file gives none.
    #[arg(long)]
    title: Option<String>,
    /// After the last frame, keep serving this many seconds, then exit (default: until
    /// Ctrl-C).
    #[arg(long)]
    linger: Option<f64>,
}

fn seconds_ms(flag: &str, s: f64) -> anyhow::Result<i64> {
    if !s.is_finite() || s < 0.0 {
        bail!("--{flag} must be a non-negative number of seconds");
    }
    Ok((s * 1000.0).round() as i64)
}

fn config(a: &ReplayArgs) -> anyhow::Result<ReplayConfig> {
    let speed: Speed = a
        .speed
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--speed: {e}"))?;
    let mut cfg = ReplayConfig {
        captures: a.captures.clone(),
        markets_file: a.markets.clone(),
        speed,
        start: if a.wait_for_subscriber {
            StartMode::OnSubscribe
        } else {
            StartMode::Immediately
        },
        addr: a.server.addr,
        key_dir: a.server.key_dir(),
        max_gap: if a.keep_gaps {
            None
        } else {
            Some(Duration::from_millis(
                seconds_ms("max-gap-seconds", a.max_gap_seconds)? as u64,
            ))
        },
        listing_lead_ms: seconds_ms("listing-lead-seconds", a.listing_lead_seconds)?,
        determination_delay_ms: seconds_ms(
            "determination-delay-seconds",
            a.determination_delay_seconds,
        )?,
        title: a.title.clone(),
        ..ReplayConfig::default()
    };
    cfg.rate_limit = a.server.rate_limit()?;
    cfg.ws.ping_interval = a.server.ping_interval()?;
    if let Some(key) = a.server.public_key()? {
        cfg.key = key;
    }
    if let Some(l) = a.linger {
        seconds_ms("linger", l)?;
    }
    Ok(cfg)
}

pub async fn run(a: ReplayArgs) -> anyhow::Result<()> {
    let cfg = config(&a)?;
    let r = kalshi_sim::spawn_replay(cfg)
        .await
        .context("starting the replay")?;
    let p = r.progress();
    let headline = format!(
        "kalshi_sim replay listening: REST {} WebSocket {} ({} frames, {} .. {}{})",
        r.rest_base(),
        r.ws_url(),
        p.frames_total,
        kalshi_sim::engine::naming::rfc3339(p.start_ms),
        kalshi_sim::engine::naming::rfc3339(p.end_ms),
        if a.wait_for_subscriber {
            "; starts at the first subscription"
        } else {
            ""
        }
    );
    a.server.announce(r.addr(), &headline, r.key_files())?;
    let finished = async {
        let report = r.wait_finished().await;
        let t = &report.tally;
        let _ = writeln!(
            std::io::stdout(),
            "replay finished: {} frames ({} snapshots, {} deltas, {} tickers, {} trades, {} lifecycle events) \
             in {:.1} s ({:.0} frames/s); {} problems",
            t.frames_sent,
            t.snapshots,
            t.deltas,
            t.tickers,
            t.trades,
            t.lifecycle_events,
            report.wall.as_secs_f64(),
            report.frames_per_second(),
            report.problem_count
        );
        let _ = std::io::stdout().flush();
        match a.linger {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = finished => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    r.shutdown().await;
    Ok(())
}
