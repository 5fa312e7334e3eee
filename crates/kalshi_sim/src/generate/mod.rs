//! `kalshi_sim generate`: days of history for a series, written straight into the canonical
//! files (DESIGN.md §6, `docs/FORMATS.md`) without a server or a network:
//!
//! - snapshots: `<out_dir>/<SERIES>_<stamp>.snap_<ms>ms.jsonl.gz` through
//!   [`SnapshotWriter`], one record per open market and grid tick built with
//!   [`SnapshotRecord::from_book`] from the engine's book (best levels, sizes, top `depth`
//!   ladder levels, last price, volume, close time), and a `closed` marker at each close;
//! - the markets sidecar `<out_dir>/<SERIES>_markets.jsonl`: one line per lifecycle change
//!   (`created`, `activated`, `metadata_updated` with the strike, `closed`, `determined` with
//!   the result and settlement value, `settled`), source `sim`;
//! - labels (`labels/v1`, source `sim`), made from the folded sidecar, so they agree with it.
//!
//! The engine ([`Engine`]) runs on a simulated clock, advanced tick by tick along the snapshot
//! grid; the hidden price path and fair value never reach the snapshot files (a model must
//! learn from the book alone). The market maker quotes around fair value, shrunk toward 50¢
//! by `planted_edge` ([`crate::engine::MakerConfig::planted_edge`]); [`EdgeStats`] scores the
//! hidden fair value and the recorded mid against the results, which shows the planted edge
//! (or its absence).
//!
//! Deterministic: the same config gives byte-identical files. Nothing depends on the wall
//! clock: gzip members are cut by size and by the hourly rotation, never by time, and the
//! labels' `generated_at` is the simulated time of the last settlement.

mod cli;
mod stats;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pipeline::money::{Count, Price};
use pipeline::schema::markets::append_markets;
use pipeline::schema::{
    fold_latest, markets_path, Decimal, Label, LabelSource, LabelsError, LabelsFile,
    LifecycleEvent, MarketRecord, MarketResult as SchemaResult, MarketStatus as SchemaStatus,
    MarketsError, RecordSource, StrikeType,
};
use pipeline::snapshot::{
    parse_file_name, Line, Marker, MarkerKind, RecordError, SnapshotRecord, SnapshotWriter,
    WriteError, WriteSummary, WriterOptions,
};
use pipeline::{MarketTicker, SeriesTicker};

use crate::engine::bars::{Bars, BarsBridge, BarsCsvError, Interpolation};
use crate::engine::naming::{rfc3339, utc};
use crate::engine::{
    Engine, EngineConfig, Event, LifecycleKind, MarketInfo, MarketResult, MarketStatus, PricePath,
    RandomWalk,
};

pub use cli::GenerateArgs;
pub use stats::{EdgeStats, HorizonScores, Scores, LOG_LOSS_EPS};
use stats::{MarketAcc, ScoreSums};

/// 2026-01-01T00:00:00Z, the default first open.
pub const DEFAULT_START_MS: i64 = 1_767_225_600_000;

const DAY_MS: f64 = 86_400_000.0;

/// Where the underlying's price comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PriceSource {
    /// A seeded geometric random walk ([`RandomWalk`]), stepped at the requote interval.
    RandomWalk {
        start_price: f64,
        /// Volatility of the log price per √second (BTC ≈ 9e-5).
        sigma_per_sqrt_s: f64,
    },
    /// Recorded OHLC bars ([`BarsBridge`]) shifted to the first open, looped when the span
    /// is longer than the file. `bridge`: a seeded Brownian bridge between the closes
    /// (sampled at the requote interval); otherwise straight lines in log price.
    Bars { csv: PathBuf, bridge: bool },
}

/// Everything `generate` needs. [`GenerateConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Snapshots and the markets sidecar go here (created if missing).
    pub out_dir: PathBuf,
    pub series: SeriesTicker,
    /// Market title in the engine (not written: the sidecar has no title field).
    pub title: String,
    /// First market's open, Unix ms; rounded down to a whole market window.
    pub start_ms: i64,
    /// Span in days: `round(days × 24 h / market_ms)` markets, back to back.
    pub days: f64,
    /// Length of one market, ms (900 000 = KXBTC15M). A multiple of `snapshot_ms`.
    pub market_ms: i64,
    /// Snapshot grid, ms.
    pub snapshot_ms: u64,
    /// Seed of every random choice (price path, market maker sizes, noise trader).
    pub seed: u64,
    /// 0 = quotes centred on fair value; in (0, 1): quoted mid = 0.5 + (fair − 0.5)(1 − edge).
    pub planted_edge: f64,
    pub price: PriceSource,
    /// Ladder levels per side stored in each snapshot (0 = best levels only).
    pub depth: usize,
    /// Labels file; `None` = `<out_dir>/labels.json`.
    pub labels_path: Option<PathBuf>,
    /// How often the market maker requotes (and the noise trader may trade), ms.
    pub requote_ms: i64,
    /// Noise-trader taker orders per market per minute (0 = no trades).
    pub noise_per_minute: f64,
    /// gzip level of the snapshot files, 0..=9.
    pub compression_level: u32,
}

impl GenerateConfig {
    /// One day of KXBTC15M at 100 ms from [`DEFAULT_START_MS`], a random walk, no edge.
    pub fn new(out_dir: impl Into<PathBuf>) -> GenerateConfig {
        GenerateConfig {
            out_dir: out_dir.into(),
            series: SeriesTicker::new("KXBTC15M"),
            title: "BTC price up in next 15 mins?".into(),
            start_ms: DEFAULT_START_MS,
            days: 1.0,
            market_ms: 15 * 60_000,
            snapshot_ms: 100,
            seed: 1,
            planted_edge: 0.0,
            price: PriceSource::RandomWalk {
                start_price: 95_000.0,
                sigma_per_sqrt_s: 9e-5,
            },
            depth: 5,
            labels_path: None,
            requote_ms: 100,
            noise_per_minute: 2.0,
            compression_level: 3,
        }
    }

    /// The labels file this config writes.
    pub fn labels_file(&self) -> PathBuf {
        self.labels_path
            .clone()
            .unwrap_or_else(|| self.out_dir.join("labels.json"))
    }

    /// Every problem with the settings, at once.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.days.is_finite() && self.days > 0.0) {
            p.push(format!("days must be positive, got {}", self.days));
        }
        if self.market_ms <= 0 {
            p.push(format!(
                "market length must be positive, got {} ms",
                self.market_ms
            ));
        }
        if self.snapshot_ms == 0 {
            p.push("snapshot_ms must be positive".into());
        } else if self.market_ms > 0 && self.market_ms % self.snapshot_ms as i64 != 0 {
            p.push(format!(
                "the market length ({} ms) must be a multiple of snapshot_ms ({})",
                self.market_ms, self.snapshot_ms
            ));
        }
        if self.requote_ms <= 0 {
            p.push(format!(
                "requote_ms must be positive, got {}",
                self.requote_ms
            ));
        }
        if !(self.planted_edge.is_finite() && (0.0..1.0).contains(&self.planted_edge)) {
            p.push(format!(
                "planted_edge must be in [0, 1), got {}",
                self.planted_edge
            ));
        }
        if !(self.noise_per_minute.is_finite() && self.noise_per_minute >= 0.0) {
            p.push(format!(
                "noise_per_minute must be ≥ 0, got {}",
                self.noise_per_minute
            ));
        }
        if self.compression_level > 9 {
            p.push(format!(
                "compression_level must be 0..=9, got {}",
                self.compression_level
            ));
        }
        if self.start_ms < 0 {
            p.push(format!(
                "start must not be before 1970, got {} ms",
                self.start_ms
            ));
        }
        if let PriceSource::RandomWalk {
            start_price,
            sigma_per_sqrt_s,
        } = &self.price
        {
            if !(start_price.is_finite() && *start_price > 0.0) {
                p.push(format!("start price must be positive, got {start_price}"));
            }
            if !(sigma_per_sqrt_s.is_finite() && *sigma_per_sqrt_s > 0.0) {
                p.push(format!("sigma must be positive, got {sigma_per_sqrt_s}"));
            }
        }
        if p.is_empty() && self.market_count() < 1 {
            p.push(format!(
                "{} days hold no whole market of {} ms",
                self.days, self.market_ms
            ));
        }
        p
    }

    fn market_count(&self) -> i64 {
        (self.days * DAY_MS / self.market_ms as f64).round() as i64
    }
}

/// What `generate` wrote and the statistics that show the planted edge.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    pub series: SeriesTicker,
    /// First open and last close, Unix ms.
    pub start_ms: i64,
    pub end_ms: i64,
    pub market_ms: i64,
    pub snapshot_ms: u64,
    pub seed: u64,
    pub planted_edge: f64,
    /// Markets written (all determined and settled).
    pub markets: usize,
    /// Of which resolved YES.
    pub yes: usize,
    /// Snapshot records and markers, files and bytes, as the writer reports them.
    pub snapshots: WriteSummary,
    pub markets_path: PathBuf,
    pub markets_lines: usize,
    pub labels_path: PathBuf,
    /// Noise-trader trades in the written markets.
    pub trades: usize,
    /// The price path's σ per √s (what fair value uses).
    pub sigma_per_sqrt_s: f64,
    /// Where the price came from, in words.
    pub price_source: String,
    /// Wall-clock seconds the run took.
    pub seconds: f64,
    pub stats: EdgeStats,
}

impl GenerateSummary {
    /// Fraction of markets that resolved YES.
    pub fn yes_share(&self) -> f64 {
        if self.markets == 0 {
            f64::NAN
        } else {
            self.yes as f64 / self.markets as f64
        }
    }

    /// A human-readable report (what the CLI prints).
    pub fn report(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let s = &self.snapshots;
        let _ = writeln!(
            o,
            "generated {} markets of {}: {} .. {} ({} per market, snapshots every {} ms), seed {}, planted edge {}",
            self.markets,
            self.series,
            rfc3339(self.start_ms),
            rfc3339(self.end_ms),
            minutes_seconds(self.market_ms),
            self.snapshot_ms,
            self.seed,
            self.planted_edge
        );
        let _ = writeln!(
            o,
            "  results: {} YES ({:.1} %), {} NO; {} trades",
            self.yes,
            100.0 * self.yes_share(),
            self.markets - self.yes,
            self.trades
        );
        let _ = writeln!(
            o,
            "  snapshots: {} records + {} markers in {} files, {:.1} MB on disk ({:.1} MB JSONL, {:.1} bytes/record)",
            s.snapshots,
            s.markers,
            s.files.len(),
            s.bytes as f64 / 1e6,
            s.uncompressed_bytes as f64 / 1e6,
            s.bytes as f64 / (s.lines.max(1)) as f64
        );
        let _ = writeln!(
            o,
            "  sidecar: {} ({} lines); labels: {} ({} markets)",
            self.markets_path.display(),
            self.markets_lines,
            self.labels_path.display(),
            self.markets
        );
        let _ = writeln!(
            o,
            "  price: {}, sigma {:.3e}/sqrt(s)",
            self.price_source, self.sigma_per_sqrt_s
        );
        let _ = writeln!(
            o,
            "  hidden fair value vs recorded mid, scored against the results (two-sided books only):"
        );
        let _ = writeln!(
            o,
            "    {:<14} {:>9} {:>7} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10}",
            "horizon",
            "pairs",
            "markets",
            "brier_fair",
            "brier_mid",
            "mid-fair",
            "ll_fair",
            "ll_mid",
            "|mid-fair|"
        );
        let mut row = |name: String, sc: &Scores| {
            let _ = writeln!(
                o,
                "    {:<14} {:>9} {:>7} {:>10.5} {:>10.5} {:>+10.5} {:>9.4} {:>9.4} {:>9.2}c",
                name,
                sc.n,
                sc.markets,
                sc.brier_fair,
                sc.brier_mid,
                sc.brier_gap(),
                sc.log_loss_fair,
                sc.log_loss_mid,
                100.0 * sc.mean_abs_gap
            );
        };
        row("all snapshots".into(), &self.stats.all);
        for h in &self.stats.horizons {
            row(format!("{} left", minutes_seconds(h.left_ms)), &h.scores);
        }
        let _ = writeln!(
            o,
            "  time: {:.2} s ({:.0} snapshots/s)",
            self.seconds,
            s.snapshots as f64 / self.seconds.max(1e-9)
        );
        o
    }
}

/// `m:ss`, or `m:ss.s` below a whole second.
fn minutes_seconds(ms: i64) -> String {
    let secs = ms / 1000;
    if ms % 1000 == 0 {
        format!("{}:{:02}", secs / 60, secs % 60)
    } else {
        format!("{}:{:02}.{}", secs / 60, secs % 60, (ms % 1000) / 100)
    }
}

/// Why `generate` stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid generate settings: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("{}: already exists; generate never overwrites data (use an empty output folder, or remove it)", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("price bars: {0}")]
    Bars(#[from] BarsCsvError),
    #[error("snapshots: {0}")]
    Snapshots(#[from] WriteError),
    #[error("snapshot of {ticker} at ts_ms {ts_ms}: {source}")]
    Record {
        ticker: MarketTicker,
        ts_ms: i64,
        #[source]
        source: RecordError,
    },
    #[error("markets sidecar: {0}")]
    Markets(#[from] MarketsError),
    #[error("labels: {0}")]
    Labels(#[from] LabelsError),
    #[error("market {ticker} was not labelled: {reason}")]
    Unlabelled {
        ticker: MarketTicker,
        reason: String,
    },
}

/// A market of the span, followed from listing to settlement.
struct Tracked {
    ticker: MarketTicker,
    /// A copy of `ticker` that each snapshot record borrows and returns.
    spare_ticker: MarketTicker,
    close_ms: i64,
    /// Activated and not yet closed: snapshots are taken.
    open: bool,
    acc: MarketAcc,
    at_horizon: Vec<MarketAcc>,
}

/// Everything one run accumulates.
struct Run {
    markets_path: PathBuf,
    pending: Vec<MarketRecord>,
    written: Vec<MarketRecord>,
    tracked: VecDeque<Tracked>,
    all: ScoreSums,
    horizons: Vec<ScoreSums>,
    markets: usize,
    yes: usize,
}

impl Run {
    fn push(&mut self, rec: MarketRecord) -> Result<(), GenerateError> {
        self.pending.push(rec);
        if self.pending.len() >= 512 {
            self.flush_sidecar()?;
        }
        Ok(())
    }

    fn flush_sidecar(&mut self) -> Result<(), GenerateError> {
        if !self.pending.is_empty() {
            append_markets(&self.markets_path, &self.pending)?;
            self.written.append(&mut self.pending);
        }
        Ok(())
    }
}

fn schema_status(s: MarketStatus) -> SchemaStatus {
    match s {
        MarketStatus::Initialized => SchemaStatus::Initialized,
        MarketStatus::Active => SchemaStatus::Active,
        MarketStatus::Closed => SchemaStatus::Closed,
        MarketStatus::Determined => SchemaStatus::Determined,
        MarketStatus::Finalized => SchemaStatus::Finalized,
    }
}

fn schema_result(r: MarketResult) -> SchemaResult {
    match r {
        MarketResult::Yes => SchemaResult::Yes,
        MarketResult::No => SchemaResult::No,
    }
}

/// Whole cents as a dollar amount with 2 decimals (`6348516` → `"63485.16"`).
fn cents_text(c: i64) -> String {
    format!(
        "{}{}.{:02}",
        if c < 0 { "-" } else { "" },
        c.abs() / 100,
        c.abs() % 100
    )
}

/// The sidecar line for an engine lifecycle event: what the event told us, nothing more.
fn lifecycle_record(
    kind: LifecycleKind,
    m: &MarketInfo,
    ts_ms: i64,
) -> Result<MarketRecord, GenerateError> {
    let mut r = MarketRecord::new(ts_ms, m.ticker.clone(), RecordSource::Sim)?;
    r.status = Some(schema_status(m.status));
    r.event = Some(match kind {
        LifecycleKind::Created => LifecycleEvent::Created,
        LifecycleKind::Activated => LifecycleEvent::Activated,
        LifecycleKind::MetadataUpdated => LifecycleEvent::MetadataUpdated,
        LifecycleKind::CloseDateUpdated => LifecycleEvent::CloseDateUpdated,
        LifecycleKind::Determined => LifecycleEvent::Determined,
        LifecycleKind::Settled => LifecycleEvent::Settled,
    });
    match kind {
        LifecycleKind::Created => {
            r.event_ticker = Some(m.event_ticker.clone());
            r.series_ticker = Some(m.series.clone());
            r.open_time = Some(utc(m.open_ms));
            r.close_time = Some(utc(m.close_ms));
            r.strike_type = Some(StrikeType::GreaterOrEqual);
        }
        LifecycleKind::Activated => {}
        LifecycleKind::MetadataUpdated => {
            r.floor_strike = m
                .floor_strike_cents
                .map(|c| Decimal::new(c, 2))
                .transpose()
                .map_err(|e| MarketsError::Invalid(format!("{}: floor_strike: {e}", m.ticker)))?;
        }
        LifecycleKind::CloseDateUpdated => {
            r.open_time = Some(utc(m.open_ms));
            r.close_time = Some(utc(m.close_ms));
        }
        LifecycleKind::Determined | LifecycleKind::Settled => {
            r.result = m.result.map(schema_result);
            r.settlement_value = m.settlement_value();
            if kind == LifecycleKind::Determined {
                r.expiration_value = m.expiration_value_cents.map(cents_text);
                r.determined_time = m.determined_ms.map(utc);
            } else {
                r.settled_time = m.settled_ms.map(utc);
            }
        }
    }
    r.validate()?;
    Ok(r)
}

/// Refuses to mix generated data into existing data of the same series.
fn check_outputs(cfg: &GenerateConfig, markets: &Path, labels: &Path) -> Result<(), GenerateError> {
    for p in [markets, labels] {
        if p.exists() {
            return Err(GenerateError::Exists(p.to_path_buf()));
        }
    }
    match std::fs::read_dir(&cfg.out_dir) {
        Ok(rd) => {
            let mut names: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(parse_file_name)
                        .is_some_and(|n| n.series == cfg.series)
                })
                .map(|e| e.path())
                .collect();
            names.sort();
            if let Some(first) = names.into_iter().next() {
                return Err(GenerateError::Exists(first));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GenerateError::Io {
            path: cfg.out_dir.clone(),
            source,
        }),
    }
}

/// Times before the close at which each market is scored once: 2/3, 1/3 and 1/15 of the
/// window (10:00, 5:00 and 1:00 for 15-minute markets), on the snapshot grid.
fn horizons(market_ms: i64, snapshot_ms: i64) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for (num, den) in [(2, 3), (1, 3), (1, 15)] {
        let h = ((market_ms * num / den + snapshot_ms / 2) / snapshot_ms) * snapshot_ms;
        if h > 0 && h < market_ms && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// Generates the files described in the module docs. See [`GenerateConfig`].
pub fn run(cfg: GenerateConfig) -> Result<GenerateSummary, GenerateError> {
    let wall = Instant::now();
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(GenerateError::Config(problems));
    }
    let snap = cfg.snapshot_ms as i64;
    let start = cfg.start_ms.div_euclid(cfg.market_ms) * cfg.market_ms;
    let n_markets = cfg.market_count();
    let end = start + n_markets * cfg.market_ms;
    let markets_file = markets_path(&cfg.out_dir, &cfg.series);
    let labels_file = cfg.labels_file();
    check_outputs(&cfg, &markets_file, &labels_file)?;
    std::fs::create_dir_all(&cfg.out_dir).map_err(|source| GenerateError::Io {
        path: cfg.out_dir.clone(),
        source,
    })?;

    let (path, price_source): (Box<dyn PricePath>, String) = match &cfg.price {
        PriceSource::RandomWalk {
            start_price,
            sigma_per_sqrt_s,
        } => (
            Box::new(RandomWalk::new(
                cfg.seed,
                start,
                *start_price,
                *sigma_per_sqrt_s,
                cfg.requote_ms,
            )),
            format!("random walk from {start_price}"),
        ),
        PriceSource::Bars { csv, bridge } => {
            let bars = Bars::from_csv(csv)?;
            let interp = if *bridge {
                Interpolation::BrownianBridge {
                    seed: cfg.seed,
                    step_ms: cfg.requote_ms,
                }
            } else {
                Interpolation::Linear
            };
            let how = if *bridge {
                "Brownian bridge between closes"
            } else {
                "linear between closes"
            };
            let text = format!(
                "{} bars of {} ({} s each, {} missing), {how}",
                bars.len(),
                bars.name(),
                bars.bar_ms() / 1000,
                bars.missing_bars()
            );
            (Box::new(BarsBridge::new(&bars, start, interp)), text)
        }
    };
    let sigma = path.sigma_per_sqrt_s();

    let mut ecfg = EngineConfig {
        seed: cfg.seed,
        series: cfg.series.clone(),
        title: cfg.title.clone(),
        start_ms: start,
        market_duration_ms: cfg.market_ms,
        listing_lead_ms: cfg.market_ms,
        requote_interval_ms: cfg.requote_ms,
        ..EngineConfig::default()
    };
    ecfg.maker.planted_edge = cfg.planted_edge;
    ecfg.noise.takers_per_minute = cfg.noise_per_minute;
    let finish = end + ecfg.determination_delay_ms + ecfg.settlement_timer_seconds * 1000;
    let last_tick = finish.div_euclid(snap) * snap + if finish % snap != 0 { snap } else { 0 };
    let mut engine = Engine::new(ecfg, path);

    let mut writer = SnapshotWriter::new(
        &cfg.out_dir,
        cfg.series.clone(),
        cfg.snapshot_ms,
        WriterOptions {
            compression_level: cfg.compression_level,
            max_buffer_bytes: 4 << 20,
            ..WriterOptions::default()
        },
    )?;
    let horizon_ms = horizons(cfg.market_ms, snap);
    let mut run = Run {
        markets_path: markets_file.clone(),
        pending: Vec::new(),
        written: Vec::new(),
        tracked: VecDeque::new(),
        all: ScoreSums::default(),
        horizons: vec![ScoreSums::default(); horizon_ms.len()],
        markets: 0,
        yes: 0,
    };
    let depth = cfg.depth;
    let mut yes_buf: Vec<(Price, Count)> = Vec::with_capacity(depth.max(1));
    let mut no_buf: Vec<(Price, Count)> = Vec::with_capacity(depth.max(1));
    let mut next_log = start + 3_600_000;

    let mut t = start;
    while t <= last_tick {
        for ev in engine.advance_to(t) {
            let Event::Lifecycle {
                kind,
                market,
                ts_ms,
            } = ev
            else {
                continue;
            };
            if market.open_ms >= end {
                continue; // listed ahead for a window past the span
            }
            run.push(lifecycle_record(kind, &market, ts_ms)?)?;
            match kind {
                LifecycleKind::Created => run.tracked.push_back(Tracked {
                    ticker: market.ticker.clone(),
                    spare_ticker: market.ticker.clone(),
                    close_ms: market.close_ms,
                    open: false,
                    acc: MarketAcc::default(),
                    at_horizon: vec![MarketAcc::default(); horizon_ms.len()],
                }),
                LifecycleKind::Activated => {
                    if let Some(tr) = run.tracked.iter_mut().find(|x| x.ticker == market.ticker) {
                        tr.open = true;
                    }
                }
                LifecycleKind::Determined => {
                    let yes = market.result == Some(MarketResult::Yes);
                    if let Some(tr) = run.tracked.iter().find(|x| x.ticker == market.ticker) {
                        run.all.absorb(&tr.acc, yes);
                        for (k, acc) in tr.at_horizon.iter().enumerate() {
                            run.horizons[k].absorb(acc, yes);
                        }
                    }
                    run.markets += 1;
                    run.yes += usize::from(yes);
                }
                LifecycleKind::Settled => {
                    run.tracked.retain(|x| x.ticker != market.ticker);
                }
                LifecycleKind::MetadataUpdated | LifecycleKind::CloseDateUpdated => {}
            }
        }
        for i in 0..run.tracked.len() {
            if !run.tracked[i].open {
                continue;
            }
            let close_ms = run.tracked[i].close_ms;
            if t >= close_ms {
                // The engine closed it at `close_ms` (on the grid): no more book.
                let ticker = run.tracked[i].ticker.clone();
                run.tracked[i].open = false;
                writer.write(&Line::Marker(Marker::new(
                    close_ms,
                    ticker.clone(),
                    MarkerKind::Closed,
                    None,
                )))?;
                let mut r = MarketRecord::new(close_ms, ticker, RecordSource::Sim)?;
                r.status = Some(SchemaStatus::Closed);
                run.push(r)?;
                continue;
            }
            let tr = &mut run.tracked[i];
            let Some(view) =
                engine.book_into(tr.ticker.as_str(), depth.max(1), &mut yes_buf, &mut no_buf)
            else {
                continue;
            };
            // The record borrows the market's spare ticker and the ladder buffers and hands
            // them back once written: a tick allocates nothing here.
            let spare = std::mem::replace(&mut tr.spare_ticker, MarketTicker::new(String::new()));
            let mut rec = SnapshotRecord::from_book(
                t,
                spare,
                yes_buf.first().copied(),
                no_buf.first().copied(),
            )
            .map_err(|source| GenerateError::Record {
                ticker: tr.ticker.clone(),
                ts_ms: t,
                source,
            })?;
            if depth > 0 {
                rec.yes_bids = Some(std::mem::take(&mut yes_buf));
                rec.no_bids = Some(std::mem::take(&mut no_buf));
            }
            rec.last_price = view.last_price;
            rec.volume = Some(view.volume);
            rec.close_ts_ms = Some(close_ms);
            if let Some(mid) = rec.yes_mid {
                if let Some(fair) = engine.fair_value(tr.ticker.as_str()) {
                    let m = mid.to_prob();
                    tr.acc.add(fair, m);
                    let left = close_ms - t;
                    if let Some(k) = horizon_ms.iter().position(|h| *h == left) {
                        tr.at_horizon[k].add(fair, m);
                    }
                }
            }
            let line = Line::Snapshot(rec);
            let written = writer.write(&line);
            if let Line::Snapshot(rec) = line {
                tr.spare_ticker = rec.market_ticker;
                if let Some(v) = rec.yes_bids {
                    yes_buf = v;
                }
                if let Some(v) = rec.no_bids {
                    no_buf = v;
                }
            }
            written?;
        }
        if t >= next_log {
            tracing::debug!(at = %rfc3339(t), markets = run.markets, "generating");
            next_log += 3_600_000;
        }
        t += snap;
    }
    run.flush_sidecar()?;
    let snapshots = writer.close()?;

    // Labels from the folded sidecar: they agree with it by construction.
    let mut labels = LabelsFile::new(utc(finish));
    for (ticker, rec) in fold_latest(run.written.iter().cloned()) {
        match Label::from_market(&rec, LabelSource::Sim) {
            Ok(l) => {
                labels.insert(ticker, l);
            }
            Err(u) => {
                return Err(GenerateError::Unlabelled {
                    ticker,
                    reason: format!(
                        "{}{}",
                        u.reason,
                        u.detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    ),
                })
            }
        }
    }
    labels.save(&labels_file)?;

    // Every market of the span closed by `end`; later markets trade only after it.
    let trades = engine.trades().iter().filter(|tr| tr.ts_ms < end).count();
    let stats = EdgeStats {
        all: run.all.scores(),
        horizons: horizon_ms
            .iter()
            .zip(&run.horizons)
            .map(|(h, s)| HorizonScores {
                left_ms: *h,
                scores: s.scores(),
            })
            .collect(),
    };
    let summary = GenerateSummary {
        series: cfg.series.clone(),
        start_ms: start,
        end_ms: end,
        market_ms: cfg.market_ms,
        snapshot_ms: cfg.snapshot_ms,
        seed: cfg.seed,
        planted_edge: cfg.planted_edge,
        markets: run.markets,
        yes: run.yes,
        snapshots,
        markets_path: markets_file,
        markets_lines: run.written.len(),
        labels_path: labels_file,
        trades,
        sigma_per_sqrt_s: sigma,
        price_source,
        seconds: wall.elapsed().as_secs_f64(),
        stats,
    };
    tracing::info!(
        markets = summary.markets,
        snapshots = summary.snapshots.snapshots,
        bytes = summary.snapshots.bytes,
        seconds = summary.seconds,
        "generated"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_on_the_grid() {
        assert_eq!(horizons(900_000, 100), vec![600_000, 300_000, 60_000]);
        assert_eq!(horizons(300_000, 1000), vec![200_000, 100_000, 20_000]);
        // Too coarse a grid for the shortest horizon: dropped, not duplicated.
        assert_eq!(horizons(3_000, 1000), vec![2_000, 1_000]);
    }

    #[test]
    fn config_problems_are_listed_together() {
        let mut c = GenerateConfig::new("/tmp/x");
        c.days = 0.0;
        c.snapshot_ms = 7;
        c.planted_edge = 1.0;
        c.compression_level = 12;
        let p = c.problems();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("days"));
        assert!(p[1].contains("multiple of snapshot_ms"));
        let mut c = GenerateConfig::new("/tmp/x");
        c.days = 0.001; // 86 s: no whole 15-minute market
        assert!(c.problems()[0].contains("no whole market"));
        assert!(GenerateConfig::new("/tmp/x").problems().is_empty());
    }

    #[test]
    fn text_helpers() {
        assert_eq!(cents_text(6_348_516), "63485.16");
        assert_eq!(cents_text(5), "0.05");
        assert_eq!(minutes_seconds(600_000), "10:00");
        assert_eq!(minutes_seconds(20_500), "0:20.5");
    }
}
