//! The `kalshi_sim generate` flags, parsed by clap in the binary and turned into a
//! [`GenerateConfig`] here (so the binary stays a thin wrapper).

use std::path::PathBuf;

use chrono::DateTime;
use pipeline::SeriesTicker;

use super::{GenerateConfig, GenerateError, PriceSource};

/// Write days of generated history (snapshots, markets sidecar, labels) straight to files.
#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Folder for the snapshot files and the markets sidecar (created if missing; must hold
    /// no data of this series yet).
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Series ticker.
    #[arg(long, default_value = "KXBTC15M")]
    pub series: String,
    /// Days of markets to write (fractions allowed: 0.25 = 6 hours).
    #[arg(long, default_value_t = 1.0)]
    pub days: f64,
    /// Snapshot grid, ms.
    #[arg(long, default_value_t = 100)]
    pub snapshot_ms: u64,
    /// Length of each market, minutes.
    #[arg(long, default_value_t = 15)]
    pub market_minutes: u32,
    /// First market's open (RFC 3339, UTC), rounded down to a market window.
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    pub start: String,
    /// Seed of every random choice; the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// 0 = quotes centred on fair value; in (0, 1) the quoted mid is shrunk toward 50¢:
    /// mid = 0.5 + (fair − 0.5)(1 − edge).
    #[arg(long, default_value_t = 0.0)]
    pub planted_edge: f64,
    /// Replay 1-minute bars (CSV `open_time,open,high,low,close[,volume]`) instead of a
    /// random walk.
    #[arg(long)]
    pub price_csv: Option<PathBuf>,
    /// With --price-csv: straight lines between the closes instead of a Brownian bridge.
    #[arg(long, requires = "price_csv")]
    pub linear: bool,
    /// Random-walk start price.
    #[arg(long, default_value_t = 95_000.0)]
    pub start_price: f64,
    /// Random-walk volatility of the log price per √second.
    #[arg(long, default_value_t = 9e-5)]
    pub sigma: f64,
    /// Ladder levels per side in each snapshot (0 = best levels only).
    #[arg(long, default_value_t = 5)]
    pub depth: usize,
    /// Labels file (default: <out-dir>/labels.json); never overwritten.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Market-maker requote interval, ms (default: the snapshot grid).
    #[arg(long)]
    pub requote_ms: Option<i64>,
    /// Noise-trader taker orders per market per minute.
    #[arg(long, default_value_t = 2.0)]
    pub noise_per_minute: f64,
    /// gzip level of the snapshot files (0..=9).
    #[arg(long, default_value_t = 3)]
    pub compression_level: u32,
}

impl GenerateArgs {
    /// The config these flags describe; every bad flag is reported at once.
    pub fn into_config(self) -> Result<GenerateConfig, GenerateError> {
        let mut problems = Vec::new();
        let start_ms = match DateTime::parse_from_rfc3339(&self.start) {
            Ok(t) => t.timestamp_millis(),
            Err(e) => {
                problems.push(format!("--start {:?}: {e} (want RFC 3339)", self.start));
                0
            }
        };
        if self.market_minutes == 0 {
            problems.push("--market-minutes must be positive".into());
        }
        if self.series.is_empty() {
            problems.push("--series must not be empty".into());
        }
        if !problems.is_empty() {
            return Err(GenerateError::Config(problems));
        }
        let mut c = GenerateConfig::new(self.out_dir);
        c.series = SeriesTicker::new(self.series);
        c.days = self.days;
        c.snapshot_ms = self.snapshot_ms;
        c.market_ms = i64::from(self.market_minutes) * 60_000;
        c.start_ms = start_ms;
        c.seed = self.seed;
        c.planted_edge = self.planted_edge;
        c.price = match self.price_csv {
            Some(csv) => PriceSource::Bars {
                csv,
                bridge: !self.linear,
            },
            None => PriceSource::RandomWalk {
                start_price: self.start_price,
                sigma_per_sqrt_s: self.sigma,
            },
        };
        c.depth = self.depth;
        c.labels_path = self.labels;
        c.requote_ms = self
            .requote_ms
            .unwrap_or_else(|| i64::try_from(self.snapshot_ms).unwrap_or(i64::MAX));
        c.noise_per_minute = self.noise_per_minute;
        c.compression_level = self.compression_level;
        Ok(c)
    }
}
