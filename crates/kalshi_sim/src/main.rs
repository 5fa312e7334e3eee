//! `kalshi_sim`: a local Kalshi-compatible exchange. Thin: parse flags, build a `SimConfig`,
//! call the library, map the result to an exit code (0 ok, 2 error).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use kalshi_sim::engine::{FeeType, PriceLevelStructure};
use kalshi_sim::{
    ClockMode, Fault, KeySetup, PathSpec, RateLimitConfig, ScheduledFault, SimConfig, Tier,
};
use pipeline::money::{FeeMultiplier, Money};
use pipeline::secrets::ApiKeyId;
use pipeline::SeriesTicker;

mod replay_cmd;

/// Where `serve` writes its throwaway credentials unless told otherwise (git-ignored).
const DEFAULT_KEY_DIR: &str = "pipeline_data/sim";

#[derive(Parser, Debug)]
#[command(
    name = "kalshi_sim",
    version,
    about = "A local Kalshi-compatible exchange: REST + WebSocket on loopback, generated markets, faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Serve generated markets over Kalshi's REST and WebSocket API.
    Serve(ServeArgs),
    /// Write days of generated history (snapshots, markets sidecar, labels) straight to files.
    Generate(kalshi_sim::generate::GenerateArgs),
    /// Serve recorded capture files as the WebSocket stream, with REST market metadata.
    Replay(replay_cmd::ReplayArgs),
}

/// The options `serve` and `replay` share: where to listen, the API key, rate limits,
/// heartbeat.
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8970")]
    addr: SocketAddr,
    /// Write the bound address (`127.0.0.1:PORT`) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Where the throwaway key goes: <DIR>/kalshi_sim_key.pem (mode 600) and <DIR>/.env
    /// (KALSHI_API_KEY_ID=…), for the pipeline's env_file/pem_file config
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
}

impl ServerArgs {
    /// `--key-dir`, else the default directory unless a public key is given.
    pub(crate) fn key_dir(&self) -> Option<PathBuf> {
        match (&self.key_dir, &self.public_key) {
            (Some(d), _) => Some(d.clone()),
            (None, None) => Some(PathBuf::from(DEFAULT_KEY_DIR)),
            (None, Some(_)) => None,
        }
    }

    /// `--public-key` with `--key-id`, if given.
    pub(crate) fn public_key(&self) -> anyhow::Result<Option<KeySetup>> {
        let (Some(pk), Some(id)) = (&self.public_key, &self.key_id) else {
            return Ok(None);
        };
        Ok(Some(KeySetup::Public {
            key_id: ApiKeyId::new(id.clone()),
            public_key: kalshi_sim::keys::load_public_key(pk)?,
        }))
    }

    pub(crate) fn rate_limit(&self) -> anyhow::Result<RateLimitConfig> {
        Ok(if self.tier == "unlimited" {
            RateLimitConfig::unlimited()
        } else {
            RateLimitConfig::tier(
                self.tier
                    .parse::<Tier>()
                    .map_err(|e| anyhow::anyhow!("--tier: {e}"))?,
            )
        })
    }

    pub(crate) fn ping_interval(&self) -> anyhow::Result<Duration> {
        if !self.ping_seconds.is_finite() || self.ping_seconds <= 0.0 {
            bail!("--ping-seconds must be positive");
        }
        Ok(Duration::from_secs_f64(self.ping_seconds))
    }

    /// Once listening: writes the address file, then `headline` and the credential files
    /// on stdout (informational: a closed stdout must not stop the server).
    pub(crate) fn announce(
        &self,
        addr: SocketAddr,
        headline: &str,
        key_files: Option<(PathBuf, PathBuf)>,
    ) -> anyhow::Result<()> {
        if let Some(f) = &self.addr_file {
            std::fs::write(f, format!("{addr}\n"))
                .with_context(|| format!("writing the address to {}", f.display()))?;
        }
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{headline}");
        if let Some((env, pem)) = key_files {
            let _ = writeln!(
                out,
                "credentials: env_file {} pem_file {}",
                env.display(),
                pem.display()
            );
        }
        let _ = out.flush();
        Ok(())
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Series ticker of the generated markets.
    #[arg(long, default_value = "KXBTC15M")]
    series: String,
    /// Market title.
    #[arg(long, default_value = "BTC price up in next 15 mins?")]
    title: String,
    /// Length of each market window, seconds (900 = KXBTC15M).
    #[arg(long, default_value_t = 900.0)]
    market_seconds: f64,
    /// How long before its open a market is listed, seconds (default: one window).
    #[arg(long)]
    lead_seconds: Option<f64>,
    /// Markets simulated before the start, so settled history exists at once.
    #[arg(long, default_value_t = 4)]
    warmup_markets: u32,
    /// Seed of every random choice (price path, market maker, noise trader, faults).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Starting balance of the user, dollars.
    #[arg(long, default_value = "10000.00")]
    balance: String,
    /// Market maker: 0 = quotes centred on fair value; >0 shrinks them toward 50¢.
    #[arg(long, default_value_t = 0.0)]
    planted_edge: f64,
    /// Market maker prices from the underlying this many seconds old (quotes under-react).
    #[arg(long, default_value_t = 0.0)]
    fair_lag_seconds: f64,
    /// Noise-trader taker orders per market per minute.
    #[arg(long, default_value_t = 2.0)]
    noise_per_minute: f64,
    /// Price grid: linear_cent, tapered_deci_cent or deci_cent.
    #[arg(long, default_value = "tapered_deci_cent")]
    price_levels: String,
    /// Fee type: quadratic (taker only) or quadratic_with_maker_fees.
    #[arg(long, default_value = "quadratic")]
    fee_type: String,
    /// Series fee multiplier.
    #[arg(long, default_value = "1")]
    fee_multiplier: String,
    /// Replay 1-minute bars (CSV with a `close` column) instead of a random walk.
    #[arg(long)]
    bars: Option<PathBuf>,
    /// Random-walk start price.
    #[arg(long, default_value_t = 100_000.0)]
    start_price: f64,
    /// Random-walk volatility of the log price per √second.
    #[arg(long, default_value_t = 9e-5)]
    sigma: f64,
    /// Settled markets move to /historical/markets after this many simulated seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    historical_age_seconds: i64,
    /// A scheduled fault, `EVERY_SECONDS=FAULT` (simulated time); FAULT is JSON such as
    /// '{"kind":"http_status","status":503,"count":3}' or a name: drop_ws_connections,
    /// skip_seq, repeat_seq. Repeatable.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Seed of fractional faults.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
    /// Exit after this many real seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
}

fn parse_fault(s: &str) -> anyhow::Result<ScheduledFault> {
    let (every, fault) = s
        .split_once('=')
        .with_context(|| format!("--fault {s:?}: expected EVERY_SECONDS=FAULT"))?;
    let secs: f64 = every
        .trim()
        .parse()
        .with_context(|| format!("--fault {s:?}: {every:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        bail!("--fault {s:?}: the period must be positive");
    }
    let fault = fault.trim();
    let fault: Fault = if fault.starts_with('{') {
        serde_json::from_str(fault).with_context(|| format!("--fault {s:?}: invalid fault JSON"))?
    } else {
        match fault {
            "drop_ws_connections" => Fault::DropWsConnections,
            "skip_seq" => Fault::SkipSeq { count: 1 },
            "repeat_seq" => Fault::RepeatSeq { count: 1 },
            other => bail!(
                "--fault {s:?}: unknown fault {other:?} (use JSON, or drop_ws_connections, skip_seq, repeat_seq)"
            ),
        }
    };
    Ok(ScheduledFault {
        every_ms: (secs * 1000.0) as i64,
        fault,
    })
}

fn config(a: &ServeArgs) -> anyhow::Result<SimConfig> {
    if !a.market_seconds.is_finite() || a.market_seconds <= 0.0 {
        bail!("--market-seconds must be positive");
    }
    if !a.speed.is_finite() || a.speed <= 0.0 {
        bail!("--speed must be positive");
    }
    let duration_ms = (a.market_seconds * 1000.0).round() as i64;
    let lead_ms = a
        .lead_seconds
        .map(|s| (s * 1000.0).round() as i64)
        .unwrap_or(duration_ms);
    let mut cfg = SimConfig {
        addr: a.server.addr,
        clock: ClockMode::Realtime { speed: a.speed },
        warmup_markets: a.warmup_markets,
        key_dir: a.server.key_dir(),
        historical_age_ms: a.historical_age_seconds * 1000,
        fault_seed: a.fault_seed,
        ..SimConfig::default()
    };
    cfg.engine.seed = a.seed;
    cfg.engine.series = SeriesTicker::new(a.series.clone());
    cfg.engine.title = a.title.clone();
    cfg.engine.market_duration_ms = duration_ms;
    cfg.engine.listing_lead_ms = lead_ms;
    // Requote at least 30 times per window, at most once a second.
    cfg.engine.requote_interval_ms = (duration_ms / 30).clamp(50, 1000);
    if !(0.0..1.0).contains(&a.planted_edge) {
        bail!("--planted-edge must be in [0, 1)");
    }
    cfg.engine.maker.planted_edge = a.planted_edge;
    if !a.fair_lag_seconds.is_finite() || a.fair_lag_seconds < 0.0 {
        bail!("--fair-lag-seconds must not be negative");
    }
    cfg.engine.maker.fair_lag_ms = (a.fair_lag_seconds * 1000.0) as i64;
    cfg.engine.noise.takers_per_minute = a.noise_per_minute;
    cfg.engine.price_level_structure = match a.price_levels.as_str() {
        "linear_cent" => PriceLevelStructure::LinearCent,
        "tapered_deci_cent" => PriceLevelStructure::TaperedDeciCent,
        "deci_cent" => PriceLevelStructure::DeciCent,
        o => bail!("--price-levels {o:?}: use linear_cent, tapered_deci_cent or deci_cent"),
    };
    cfg.engine.fee_type = match a.fee_type.as_str() {
        "quadratic" => FeeType::Quadratic,
        "quadratic_with_maker_fees" => FeeType::QuadraticWithMakerFees,
        o => bail!("--fee-type {o:?}: use quadratic or quadratic_with_maker_fees"),
    };
    cfg.engine.fee_multiplier = FeeMultiplier::parse(&a.fee_multiplier)
        .map_err(|e| anyhow::anyhow!("--fee-multiplier {:?}: {e}", a.fee_multiplier))?;
    cfg.initial_balance = Money::parse_dollars(&a.balance)
        .map_err(|e| anyhow::anyhow!("--balance {:?}: {e}", a.balance))?;
    cfg.rate_limit = a.server.rate_limit()?;
    cfg.path = match &a.bars {
        Some(csv) => PathSpec::Bars { csv: csv.clone() },
        None => PathSpec::RandomWalk {
            start_price: a.start_price,
            sigma_per_sqrt_s: a.sigma,
            step_ms: 1000.min(duration_ms.max(1)),
        },
    };
    cfg.ws.ping_interval = a.server.ping_interval()?;
    if let Some(key) = a.server.public_key()? {
        cfg.key = key;
    }
    cfg.fault_schedule = a
        .faults
        .iter()
        .map(|f| parse_fault(f))
        .collect::<anyhow::Result<_>>()?;
    Ok(cfg)
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let cfg = config(&a)?;
    tracing::info!(
        addr = %cfg.addr, series = %cfg.engine.series, market_ms = cfg.engine.market_duration_ms,
        speed = a.speed, seed = cfg.engine.seed, "starting"
    );
    let sim = kalshi_sim::spawn(cfg)
        .await
        .context("starting the simulator")?;
    a.server.announce(
        sim.addr(),
        &format!(
            "kalshi_sim listening: REST {} WebSocket {}",
            sim.rest_base(),
            sim.ws_url()
        ),
        sim.key_files(),
    )?;
    let stop = async {
        match a.duration {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

fn generate(a: kalshi_sim::generate::GenerateArgs) -> anyhow::Result<()> {
    let cfg = a.into_config().context("generate")?;
    let summary = kalshi_sim::generate::run(cfg).context("generate")?;
    print!("{}", summary.report());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match cli.command {
        Command::Serve(a) => rt.block_on(serve(a)),
        Command::Generate(a) => generate(a),
        Command::Replay(a) => rt.block_on(replay_cmd::run(a)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
