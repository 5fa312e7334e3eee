//! `run_live`: a strategy on a live series. The recorder (`market_data::recorder`, the same
//! book sync and grid as `download_highres`) hands each tick's lines to the synchronous
//! [`engine::Engine`], which drives the same `strategy::Runtime` `evaluate_strategy` replays.
//! Dry-run (the default) executes against the live rows with the replay's execution model
//! (`strategy::ReplayVenue`); `--live` sends V2 orders ([`live_venue::LiveVenue`]).
//!
//! Threads: the tokio runtime runs the recorder, the exchange-status poll, the metrics
//! endpoint and the order requests; the calling thread runs the engine (no tokio, no locks on
//! the hot path), reading the recorder's tap.
//!
//! Exit codes ([`LiveError::exit_code`]): 0 stopped cleanly; 2 bad input (strategy, model,
//! config, credentials, series), before connecting; 3 `live_dir` is in use by another runner;
//! 4 the exchange unreachable for too long; 5 the journal or a data file cannot be written;
//! 6 internal error; 7 `--live` reconciliation with the exchange failed (nothing traded).

pub mod builtin;
pub mod engine;
pub mod journal;
pub mod live_venue;
pub mod plugin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use market_data::recorder::{self, RecorderConfig, RecorderError, Tap};
use market_data::rest::{PortfolioQuery, RateLimits, RestClient, RestConfig, Tier};
use market_data::wire;
use pipeline::auth::Signer;
use pipeline::config::{RateLimitTier, RuntimeConfig};
use pipeline::money::{Count, FeeMultiplier};
use pipeline::schema::strategy::{Strategy as StrategyFile, StrategyType};
use pipeline::secrets::Credentials;
use pipeline::snapshot::Line;
use pipeline::{MarketTicker, SeriesTicker};
use serde_json::json;
use strategy::{Fill, ReplayConfig, ReplayVenue, RnnEdge, Runtime, Side, Strategy};
use tokio_util::sync::CancellationToken;

pub use engine::{Control, Engine, EngineConfig, Summary, TradingState};
use journal::{JournalWriter, SharedJournal};
use live_venue::{LiveVenue, CLIENT_ID_PREFIX};

/// Where the metrics endpoint's bound address is written (`--metrics-addr 127.0.0.1:0`).
pub const METRICS_ADDR_FILE: &str = "metrics_addr";

/// Everything a session needs; the binary maps its flags onto it.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub rt: RuntimeConfig,
    pub strategy_path: PathBuf,
    /// Real orders. Off: dry-run.
    pub live: bool,
    pub duration: Option<Duration>,
    pub status_every: Duration,
    pub metrics_addr: Option<SocketAddr>,
    /// A row older than this on arrival blocks its market (stale book).
    pub stale_ms: i64,
    /// `--live`: cancel this runner's resting orders on shutdown.
    pub cancel_on_shutdown: bool,
    /// Depth ladder levels the recorder keeps per side (the execution model walks them).
    pub depth: usize,
    pub discovery_every: Duration,
    pub subscribe_lead: Duration,
    /// Also keep a raw capture of every frame in `<live_dir>/data` (for parity checks).
    pub capture: bool,
    /// Whose clock the grid follows: local (always, against a real exchange) or the
    /// exchange's (a `kalshi_sim replay` of a recorded session at speed 1). On the exchange's
    /// clock a row's age is measured against the newest row's time advanced by the wall time
    /// since it arrived.
    pub clock: recorder::ClockSource,
}

impl LiveOptions {
    pub fn new(rt: RuntimeConfig) -> LiveOptions {
        LiveOptions {
            strategy_path: rt.strategy_path.clone(),
            rt,
            live: false,
            duration: None,
            status_every: Duration::from_secs(5),
            metrics_addr: None,
            stale_ms: 2_000,
            cancel_on_shutdown: true,
            depth: 10,
            discovery_every: Duration::from_secs(30),
            subscribe_lead: Duration::from_secs(30),
            capture: false,
            clock: recorder::ClockSource::Local,
        }
    }
    pub fn live_dir(&self) -> &Path {
        &self.rt.live_dir
    }
    pub fn kill_file(&self) -> PathBuf {
        self.rt.live_dir.join("KILL")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Recorder(RecorderError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("reconciliation with the exchange failed, nothing traded: {0}")]
    Reconcile(String),
    #[error("the exchange: {0}")]
    Exchange(String),
}

impl LiveError {
    pub fn exit_code(&self) -> u8 {
        match self {
            LiveError::Input(_) => 2,
            LiveError::Recorder(e) => e.exit_code(),
            LiveError::Journal(_) => 5,
            LiveError::Reconcile(_) => 7,
            LiveError::Exchange(_) => 4,
        }
    }
}

/// A strategy file and the runtime strategy built from it.
pub struct Loaded {
    pub file: StrategyFile,
    pub strategy: Box<dyn Strategy>,
}

/// Loads and checks the strategy for `series`: a malformed file, a missing or hash-mismatched
/// model, an unknown plugin or a series the file does not cover is an [`LiveError::Input`]
/// naming the file.
pub fn load_strategy(
    path: &Path,
    series: &SeriesTicker,
    fee: FeeMultiplier,
) -> Result<Loaded, LiveError> {
    let bad = |m: String| LiveError::Input(format!("{}: {m}", path.display()));
    let file = StrategyFile::load(path).map_err(|e| LiveError::Input(e.to_string()))?;
    if let Some(s) = &file.markets.series_ticker {
        if s != series {
            return Err(bad(format!(
                "markets.series_ticker is {s}: the strategy does not cover series {series}"
            )));
        }
    } else if !file.markets.tickers.is_empty()
        && !file
            .markets
            .tickers
            .iter()
            .any(|t| t.as_str().starts_with(&format!("{series}-")))
    {
        return Err(bad(format!(
            "markets.tickers name no market of series {series}: the strategy does not cover it"
        )));
    }
    strategy::replay::check_execution(&file.execution).map_err(|e| bad(e.to_string()))?;
    let strategy: Box<dyn Strategy> = match file.strategy_type {
        StrategyType::RnnEdgeV1 => {
            tch::set_num_threads(1);
            let (model, _) =
                edge_model::LstmEdgeModel::load(&file).map_err(|e| bad(e.to_string()))?;
            Box::new(
                RnnEdge::from_strategy(&file, Box::new(model), fee)
                    .map_err(|e| bad(e.to_string()))?,
            )
        }
        StrategyType::Plugin => {
            let p = file
                .plugin
                .as_ref()
                .ok_or_else(|| bad("strategy_type plugin needs a plugin section".into()))?;
            if p.module == "builtin" {
                builtin::make(&file, &p.class).map_err(bad)?
            } else {
                let base = path.parent().unwrap_or(Path::new("."));
                Box::new(plugin::PluginStrategy::spawn(p, base).map_err(bad)?)
            }
        }
    };
    Ok(Loaded { file, strategy })
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn tier(t: RateLimitTier) -> Tier {
    match t {
        RateLimitTier::Basic => Tier::Basic,
        RateLimitTier::Advanced => Tier::Advanced,
        RateLimitTier::Premier => Tier::Premier,
        RateLimitTier::Paragon => Tier::Paragon,
        RateLimitTier::Prime => Tier::Prime,
    }
}

/// A fill from the exchange's list (reconciliation): the side it is long, its price on that
/// side, its fee. Sells are refused (this runner only buys; a position someone reduced by
/// hand cannot be rebuilt from buys).
fn external_fill(f: &wire::Fill, fee: FeeMultiplier) -> Result<Fill, String> {
    let market = f.market().cloned().ok_or("a fill without a ticker")?;
    if f.action.as_deref() == Some("sell") {
        return Err(format!(
            "{market}: a sell fill; flatten or close the position by hand first"
        ));
    }
    let side = match (f.outcome_side.as_ref(), f.side.as_deref()) {
        (Some(wire::OutcomeSide::Yes), _) | (None, Some("yes")) => Side::Yes,
        (Some(wire::OutcomeSide::No), _) | (None, Some("no")) => Side::No,
        _ => return Err(format!("{market}: a fill without its side")),
    };
    let order = strategy::Order {
        id: 0,
        market,
        side,
        count: Count::ZERO,
        limit: pipeline::money::Price::ONE,
        time_in_force: pipeline::schema::strategy::TimeInForce::ImmediateOrCancel,
        decision_ts_ms: 0,
        model_p: None,
        mid: None,
        close_ts_ms: None,
    };
    live_venue::fill_of(&order, f, 0, fee)
        .ok_or_else(|| format!("{}: a fill without count or price", order.market))
}

/// What reconciliation found.
#[derive(Debug, Default)]
struct Reconciled {
    fills: Vec<Fill>,
    positions: Vec<(MarketTicker, Count)>,
    cancelled: usize,
}

/// `--live` start: earlier sessions' unresolved orders looked up, this runner's resting orders
/// cancelled, positions in the series rebuilt from the exchange's fills and checked against
/// its positions.
async fn reconcile(
    rest: &RestClient,
    series: &SeriesTicker,
    prior: &journal::Prior,
    fee: FeeMultiplier,
    journal: &SharedJournal,
) -> Result<Reconciled, String> {
    let mut out = Reconciled::default();
    for (coid, market) in &prior.unresolved {
        let id = pipeline::ids::ClientOrderId::new(coid.clone());
        let m = MarketTicker::from(market.as_str());
        let found = rest
            .find_order_by_client_id(&m, &id, None)
            .await
            .map_err(|e| format!("looking up {coid}: {e}"))?;
        let status = found.as_ref().map_or("absent".to_string(), |o| {
            o.status.as_ref().map_or("listed".into(), |s| s.to_string())
        });
        tracing::info!(client_order_id = %coid, %market, %status, "an earlier session's order, looked up");
        journal
            .lock()
            .expect("journal lock")
            .write(
                "order_result",
                json!({"client_order_id": coid, "status": format!("reconciled: {status}")}),
            )
            .map_err(|e| e.to_string())?;
    }
    let prefix = format!("{series}-");
    let resting = rest
        .orders(&PortfolioQuery {
            status: Some("resting".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("listing resting orders: {e}"))?;
    for o in resting.iter().filter(|o| {
        o.ticker.as_str().starts_with(&prefix)
            && o.client_order_id
                .as_ref()
                .is_some_and(|c| c.as_str().starts_with(CLIENT_ID_PREFIX))
    }) {
        rest.cancel_order(&o.order_id, Some(&o.ticker))
            .await
            .map_err(|e| format!("cancelling resting order {}: {e}", o.order_id))?;
        out.cancelled += 1;
    }
    let (positions, _) = rest
        .positions(&PortfolioQuery {
            settlement_status: Some("unsettled".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("listing positions: {e}"))?;
    for p in positions
        .iter()
        .filter(|p| p.ticker.as_str().starts_with(&prefix))
    {
        let want = p.position();
        if want.is_zero() {
            continue;
        }
        let fills = rest
            .fills(&PortfolioQuery::ticker(p.ticker.clone()))
            .await
            .map_err(|e| format!("listing fills of {}: {e}", p.ticker))?;
        let mut net = Count::ZERO;
        for f in &fills {
            let ours = external_fill(f, fee)?;
            net += match ours.side {
                Side::Yes => ours.count,
                Side::No => Count::ZERO - ours.count,
            };
            out.fills.push(ours);
        }
        if net != want {
            return Err(format!(
                "{}: the exchange's fills add up to {net} contracts (YES positive), its position says {want}",
                p.ticker
            ));
        }
        out.positions.push((p.ticker.clone(), want));
    }
    Ok(out)
}

/// A session id for `client_order_id`s: the UTC start time and 4 random hex digits.
fn session_id() -> String {
    let r = uuid::Uuid::new_v4().simple().to_string();
    format!("{}{}", chrono::Utc::now().format("%Y%m%d%H%M%S"), &r[..4])
}

/// Runs a session until `shutdown`, `opts.duration`, or a fatal error. `controls` carries
/// kill requests (the binary's SIGUSR1) into the engine.
pub fn run(
    opts: &LiveOptions,
    shutdown: CancellationToken,
    controls: (mpsc::Sender<Control>, mpsc::Receiver<Control>),
) -> Result<Summary, LiveError> {
    let (ctl_tx, ctl_rx) = controls;
    let series = opts.rt.series.clone();
    if let Some(a) = opts.metrics_addr {
        if !a.ip().is_loopback() {
            return Err(LiveError::Input(format!(
                "--metrics-addr {a}: only a loopback address (127.0.0.1, ::1) is allowed"
            )));
        }
    }
    let creds = Credentials::load(&opts.rt.env_file, &opts.rt.pem_file).map_err(|e| {
        LiveError::Input(if opts.live {
            format!("--live needs the exchange credentials (env_file/pem_file): {e}")
        } else {
            format!("the market data connection needs the exchange credentials (env_file/pem_file): {e}")
        })
    })?;
    // Loaded before connecting so bad input fails fast; the fee multiplier is confirmed below.
    let mut loaded = load_strategy(&opts.strategy_path, &series, FeeMultiplier::ONE)?;
    let signer = Signer::from_credentials(&creds);
    let mut rest_cfg = RestConfig::new(opts.rt.rest_base.as_str().trim_end_matches('/'));
    rest_cfg.rate_limits = Some(RateLimits::for_tier(tier(opts.rt.rate_limit_tier)).scaled(50));
    let rest = RestClient::new(rest_cfg, Some(signer))
        .map_err(|e| LiveError::Input(format!("REST base {}: {e}", opts.rt.rest_base)))?;

    let live_dir = opts.live_dir().to_path_buf();
    std::fs::create_dir_all(&live_dir).map_err(|e| {
        LiveError::Journal(journal::JournalError {
            path: live_dir.clone(),
            msg: format!("cannot create the folder: {e}"),
        })
    })?;
    // One runner per live_dir: its journal and its client_order_ids are this runner's alone.
    let _lock = recorder::OutDirLock::acquire(&live_dir)
        .map_err(|e| LiveError::Recorder(RecorderError::Locked(e)))?;
    let prior = journal::read_prior(&live_dir)?;
    let journal: SharedJournal = Arc::new(Mutex::new(JournalWriter::open(&live_dir)?));
    let session = session_id();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LiveError::Exchange(format!("cannot start the async runtime: {e}")))?;
    let handle = tokio_rt.handle().clone();

    let fee = match handle.block_on(rest.series(&series)) {
        Ok(s) => match s.fee_multiplier() {
            Some(Ok(m)) => m,
            None => FeeMultiplier::ONE,
            Some(Err(e)) => {
                return Err(LiveError::Exchange(format!(
                    "series {series}: fee_multiplier: {e}"
                )))
            }
        },
        Err(e) => return Err(LiveError::Exchange(format!("GET /series/{series}: {e}"))),
    };
    if fee != FeeMultiplier::ONE {
        loaded = load_strategy(&opts.strategy_path, &series, fee)?;
    }
    let file = loaded.file;
    journal.lock().expect("journal lock").write(
        "start",
        json!({"session": session, "mode": if opts.live {"live"} else {"dry_run"},
               "strategy": file.name, "strategy_path": opts.strategy_path, "series": series,
               "fee_multiplier": format!("{fee:?}"), "first_order_id": prior.max_order_id + 1,
               "prior_entries": prior.entries, "prior_torn_lines": prior.torn_lines,
               "prior_unresolved": prior.unresolved.len()}),
    )?;
    journal.lock().expect("journal lock").sync()?;

    let mut runtime = Runtime::new(
        loaded.strategy,
        file.risk.clone(),
        file.execution.clone(),
        fee,
    )
    .with_first_order_id(prior.max_order_id + 1);
    let ecfg = EngineConfig {
        stale_ms: opts.stale_ms,
        kill_file: opts.kill_file(),
        risk: file.risk.clone(),
    };
    let mut reconciled = Reconciled::default();
    if opts.live {
        reconciled = handle
            .block_on(reconcile(&rest, &series, &prior, fee, &journal))
            .map_err(LiveError::Reconcile)?;
        for f in &reconciled.fills {
            runtime.apply_external_fill(f);
        }
        journal.lock().expect("journal lock").write(
            "reconciled",
            json!({"positions": reconciled.positions.iter().map(|(m, c)| json!({"market": m, "position": c})).collect::<Vec<_>>(),
                   "fills": reconciled.fills.len(), "resting_cancelled": reconciled.cancelled,
                   "prior_unresolved": prior.unresolved.len()}),
        )?;
        tracing::info!(
            positions = reconciled.positions.len(),
            fills = reconciled.fills.len(),
            resting_cancelled = reconciled.cancelled,
            "reconciled with the exchange"
        );
    }
    let _ = &reconciled;

    let (tap_tx, tap_rx) = mpsc::channel::<Tap>();
    let mut rcfg = RecorderConfig::from_runtime(&opts.rt);
    rcfg.out_dir = live_dir.join("data");
    rcfg.depth = opts.depth;
    rcfg.capture = opts.capture;
    rcfg.clock = opts.clock;
    rcfg.discovery_every = opts.discovery_every;
    rcfg.subscribe_lead = opts.subscribe_lead;
    rcfg.status_every = Duration::from_secs(60);
    rcfg.tap = Some(tap_tx);
    let rec_token = shutdown.child_token();
    let recorder = handle.spawn(recorder::run(rcfg, rec_token.clone()));
    if let Some(d) = opts.duration {
        let (t, c) = (shutdown.clone(), ctl_tx.clone());
        handle.spawn(async move {
            tokio::time::sleep(d).await;
            let _ = c.send(Control::Reduce("duration reached".into()));
            t.cancel();
        });
    }
    {
        let (t, c) = (shutdown.clone(), ctl_tx.clone());
        handle.spawn(async move {
            t.cancelled().await;
            let _ = c.send(Control::Reduce("shutting down".into()));
        });
    }
    {
        let (rest, c, t) = (rest.clone(), ctl_tx.clone(), shutdown.clone());
        handle.spawn(async move {
            let mut last = None;
            while !t.is_cancelled() {
                if let Ok(s) = rest.exchange_status().await {
                    let active = s.trading_active && s.exchange_active;
                    if last != Some(active) {
                        last = Some(active);
                        let _ = c.send(Control::Exchange {
                            trading_active: active,
                        });
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = t.cancelled() => {}
                }
            }
        });
    }
    let metrics = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = opts.metrics_addr {
        let listener = handle
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| LiveError::Input(format!("--metrics-addr {addr}: {e}")))?;
        let bound = listener.local_addr().map_or(addr, |a| a);
        tracing::info!(addr = %bound, "Prometheus metrics at http://{bound}/metrics");
        // Port 0 picks a free port: say which, for a supervisor (and the tests).
        std::fs::write(live_dir.join(METRICS_ADDR_FILE), bound.to_string()).map_err(|e| {
            LiveError::Journal(journal::JournalError {
                path: live_dir.join(METRICS_ADDR_FILE),
                msg: e.to_string(),
            })
        })?;
        handle.spawn(serve_metrics(listener, metrics.clone()));
    }

    let summary = if opts.live {
        let venue = LiveVenue::new(
            rest.clone(),
            handle.clone(),
            journal.clone(),
            session.clone(),
            fee,
        );
        let engine = Engine::new(runtime, venue, journal.clone(), ecfg);
        let (summary, _venue) = drive(engine, opts, &tap_rx, &ctl_rx, &metrics, true)?;
        if opts.cancel_on_shutdown {
            let n = handle.block_on(cancel_resting(&rest, &series));
            tracing::info!(cancelled = n, "resting orders of this runner cancelled");
        }
        summary
    } else {
        let cfg = ReplayConfig {
            fee_multiplier: fee,
            ..ReplayConfig::default()
        };
        let venue = ReplayVenue::new(cfg, Default::default());
        let engine = Engine::new(runtime, venue, journal.clone(), ecfg);
        drive(engine, opts, &tap_rx, &ctl_rx, &metrics, false)?.0
    };
    shutdown.cancel();
    let rec = handle.block_on(recorder);
    tokio_rt.shutdown_timeout(Duration::from_secs(2));
    match rec {
        Ok(Ok(_)) => Ok(summary),
        Ok(Err(e)) => Err(LiveError::Recorder(e)),
        Err(e) => Err(LiveError::Recorder(RecorderError::SessionStopped(
            e.to_string(),
        ))),
    }
}

/// The engine loop: the recorder's tap until it closes, controls between ticks, a status line
/// every `status_every`, metrics every second.
fn drive<V: engine::ExecVenue>(
    mut engine: Engine<V>,
    opts: &LiveOptions,
    tap: &mpsc::Receiver<Tap>,
    ctl: &mpsc::Receiver<Control>,
    metrics: &Arc<Mutex<String>>,
    live: bool,
) -> Result<(Summary, V), LiveError> {
    let mut last_status = Instant::now();
    let mut last_metrics = Instant::now() - Duration::from_secs(2);
    let mut why = "the recorder stopped".to_string();
    let exchange_clock = opts.clock == recorder::ClockSource::Exchange;
    // On the exchange's clock: the newest row's time and when it arrived.
    let mut newest: Option<(i64, Instant)> = None;
    loop {
        match tap.recv_timeout(Duration::from_millis(50)) {
            Ok(Tap::Lines(l)) => {
                let now = if exchange_clock {
                    let ts = l.iter().map(Line::ts_ms).max().unwrap_or(0);
                    if newest.is_none_or(|(t, _)| ts > t) {
                        newest = Some((ts, Instant::now()));
                    }
                    newest.map_or(ts, |(t, at)| t + at.elapsed().as_millis() as i64)
                } else {
                    wall_ms()
                };
                engine.on_lines(&l, now)?
            }
            Ok(Tap::Markets(m)) => engine.on_markets(&m)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(c) = ctl.try_recv() {
            if let Control::Reduce(w) = &c {
                why = w.clone();
            }
            engine.on_control(c)?;
        }
        if live {
            engine.poll()?;
        }
        if last_status.elapsed() >= opts.status_every {
            last_status = Instant::now();
            tracing::info!("{}", engine.status_line());
        }
        if last_metrics.elapsed() >= Duration::from_secs(1) {
            last_metrics = Instant::now();
            *metrics.lock().expect("metrics lock") = engine.metrics_text();
        }
    }
    // Outcomes of orders still in flight come back before the books close.
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.venue().in_flight() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        engine.poll()?;
    }
    if engine.venue().in_flight() > 0 {
        tracing::error!(
            orders = engine.venue().in_flight(),
            "orders with an unknown outcome at exit: the next start looks them up"
        );
    }
    tracing::info!("{}", engine.status_line());
    Ok(engine.finish(&why)?)
}

/// Cancels this runner's resting orders in the series; how many.
async fn cancel_resting(rest: &RestClient, series: &SeriesTicker) -> usize {
    let prefix = format!("{series}-");
    let Ok(orders) = rest
        .orders(&PortfolioQuery {
            status: Some("resting".into()),
            ..Default::default()
        })
        .await
    else {
        tracing::error!("cannot list resting orders to cancel them");
        return 0;
    };
    let mut n = 0;
    for o in orders.iter().filter(|o| {
        o.ticker.as_str().starts_with(&prefix)
            && o.client_order_id
                .as_ref()
                .is_some_and(|c| c.as_str().starts_with(CLIENT_ID_PREFIX))
    }) {
        match rest.cancel_order(&o.order_id, Some(&o.ticker)).await {
            Ok(_) => n += 1,
            Err(e) => tracing::error!(order = %o.order_id, error = %e, "cancel failed"),
        }
    }
    n
}

/// Prometheus text on every request (any path), loopback only.
async fn serve_metrics(listener: tokio::net::TcpListener, text: Arc<Mutex<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let body = text.lock().expect("metrics lock").clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}
