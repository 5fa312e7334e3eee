//! `kalshi_sim replay`: flags → `ReplayConfig`, then `kalshi_sim::spawn_replay`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use kalshi_sim::{KeySetup, RateLimitConfig, ReplayConfig, Speed, StartMode, Tier};
use pipeline::secrets::ApiKeyId;

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
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8970")]
    addr: SocketAddr,
    /// Write the bound address (`127.0.0.1:PORT`) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
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
    /// Where the throwaway key goes: <DIR>/kalshi_sim_key.pem and <DIR>/.env
    /// [default: pipeline_data/sim]. Not used with --public-key.
    #[arg(long, conflicts_with = "public_key")]
    key_dir: Option<PathBuf>,
    /// Register this existing public key (PEM) instead of generating one.
    #[arg(long, requires = "key_id")]
    public_key: Option<PathBuf>,
    /// API key id of --public-key.
    #[arg(long, requires = "public_key")]
    key_id: Option<String>,
    /// Rate-limit tier: basic, advanced, premier, paragon, prime, or unlimited.
    #[arg(long, default_value = "basic")]
    tier: String,
    /// WebSocket heartbeat ping interval, seconds.
    #[arg(long, default_value_t = 10.0)]
    ping_seconds: f64,
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
        addr: a.addr,
        key_dir: match (&a.key_dir, &a.public_key) {
            (Some(d), _) => Some(d.clone()),
            (None, None) => Some(PathBuf::from(crate::DEFAULT_KEY_DIR)),
            (None, Some(_)) => None,
        },
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
    cfg.rate_limit = if a.tier == "unlimited" {
        RateLimitConfig::unlimited()
    } else {
        RateLimitConfig::tier(
            a.tier
                .parse::<Tier>()
                .map_err(|e| anyhow::anyhow!("--tier: {e}"))?,
        )
    };
    if !a.ping_seconds.is_finite() || a.ping_seconds <= 0.0 {
        bail!("--ping-seconds must be positive");
    }
    cfg.ws.ping_interval = Duration::from_secs_f64(a.ping_seconds);
    if let (Some(pk), Some(id)) = (&a.public_key, &a.key_id) {
        cfg.key = KeySetup::Public {
            key_id: ApiKeyId::new(id.clone()),
            public_key: kalshi_sim::keys::load_public_key(pk)?,
        };
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
    if let Some(f) = &a.addr_file {
        std::fs::write(f, format!("{}\n", r.addr()))
            .with_context(|| format!("writing the address to {}", f.display()))?;
    }
    // Informational: a closed stdout must not stop the server.
    let mut out = std::io::stdout();
    let p = r.progress();
    let _ = writeln!(
        out,
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
    if let Some((env, pem)) = r.key_files() {
        let _ = writeln!(
            out,
            "credentials: env_file {} pem_file {}",
            env.display(),
            pem.display()
        );
    }
    let _ = out.flush();
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
