//! The simulator as a Kalshi-compatible server: REST under `/trade-api/v2`, WebSocket at
//! `/trade-api/ws/v2`, control endpoints under `/_sim`.
//!
//! One [`Engine`] behind a mutex; every request first advances it to the clock's now. Events
//! leave in numbered batches on a broadcast channel, sent while the engine is locked, so a
//! WebSocket connection that takes a book snapshot under the lock knows exactly which later
//! batches to apply. Each connection task owns its socket.

mod control;
pub(crate) mod ratelimit;
pub(crate) mod rest;
mod ws;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pipeline::money::Money;
use pipeline::secrets::{ApiKeyId, PrivateKey};
use rsa::RsaPublicKey;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{
    AccountId, BarsPath, Engine, EngineConfig, Event, MarketInfo, MarketResult, OrderError,
    PricePath, RandomWalk,
};
use crate::faults::{Fault, FaultStats, Faults, Schedule, ScheduledFault};
use crate::http_common::{bind, serve, server_accessors, setup_keys, Front, Keys};
use crate::keys::KeyError;
pub use ratelimit::{RateLimitConfig, Tier};

/// REST prefix.
pub const REST_PREFIX: &str = "/trade-api/v2";
/// WebSocket path (also the signed path of the upgrade).
pub const WS_PATH: &str = "/trade-api/ws/v2";

/// The underlying's price path.
#[derive(Clone, Debug, PartialEq)]
pub enum PathSpec {
    /// A seeded geometric random walk (seeded by the engine seed).
    RandomWalk {
        start_price: f64,
        sigma_per_sqrt_s: f64,
        step_ms: i64,
    },
    /// 1-minute bars from a CSV with a `close` column, replayed from the engine start.
    Bars { csv: PathBuf },
}

impl Default for PathSpec {
    fn default() -> PathSpec {
        PathSpec::RandomWalk {
            start_price: 100_000.0,
            sigma_per_sqrt_s: 9e-5,
            step_ms: 1000,
        }
    }
}

/// How simulated time moves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClockMode {
    /// Wall time × `speed` from the start (1 = real time).
    Realtime { speed: f64 },
    /// Moves only through [`SimHandle::advance_to`] / `POST /_sim/advance` (tests).
    Manual,
}

/// The API key the simulator accepts.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // built once per simulator
pub enum KeySetup {
    /// A throwaway key pair (see [`Sim::credentials`]; written to `key_dir` if set).
    Generate,
    /// A known private key (tests: avoids key generation); its public half is registered.
    Private { key_id: ApiKeyId, key: PrivateKey },
    /// Only a public key (the binary's `--public-key`); [`Sim::credentials`] is `None`.
    Public {
        key_id: ApiKeyId,
        public_key: RsaPublicKey,
    },
}

/// WebSocket settings.
#[derive(Clone, Debug, PartialEq)]
pub struct WsConfig {
    /// Server Ping frames (payload `heartbeat`) every this long.
    pub ping_interval: Duration,
    /// Event batches a connection may fall behind before it is a slow consumer (error 25).
    pub queue_capacity: usize,
}

impl Default for WsConfig {
    fn default() -> WsConfig {
        WsConfig {
            ping_interval: Duration::from_secs(10),
            queue_capacity: 4096,
        }
    }
}

/// Everything [`spawn`] needs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    pub engine: EngineConfig,
    pub path: PathSpec,
    pub clock: ClockMode,
    /// Simulated "now" at start (Unix ms); `None` = the wall clock. `engine.start_ms` is
    /// derived from it and `warmup_markets`.
    pub start_ms: Option<i64>,
    /// Markets simulated before the start, so settled history exists at once.
    pub warmup_markets: u32,
    pub key: KeySetup,
    /// Write `kalshi_sim_key.pem` + `.env` here (needs a private key).
    pub key_dir: Option<PathBuf>,
    pub initial_balance: Money,
    pub rate_limit: RateLimitConfig,
    pub ws: WsConfig,
    /// Markets settled longer ago than this (simulated time) move to `/historical/markets`.
    pub historical_age_ms: i64,
    pub fault_seed: u64,
    pub fault_schedule: Vec<ScheduledFault>,
    /// Real-time clock driver period.
    pub tick_ms: u64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            engine: EngineConfig::default(),
            path: PathSpec::default(),
            clock: ClockMode::Realtime { speed: 1.0 },
            start_ms: None,
            warmup_markets: 4,
            key: KeySetup::Generate,
            key_dir: None,
            initial_balance: Money::from_cents(1_000_000),
            rate_limit: RateLimitConfig::tier(Tier::Basic),
            ws: WsConfig::default(),
            historical_age_ms: 6 * 3_600_000,
            fault_seed: 1,
            fault_schedule: Vec::new(),
            tick_ms: 50,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Bars(#[from] crate::engine::path::BarsError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the clock is not manual: simulated time follows the wall clock")]
    NotManual,
    #[error(transparent)]
    Order(#[from] OrderError),
}

pub(crate) enum Clock {
    Realtime {
        origin_sim: i64,
        origin: Instant,
        speed: f64,
    },
    Manual(AtomicI64),
}

impl Clock {
    pub(crate) fn now(&self) -> i64 {
        match self {
            Clock::Realtime {
                origin_sim,
                origin,
                speed,
            } => origin_sim + (origin.elapsed().as_secs_f64() * 1000.0 * speed) as i64,
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }
}

/// A batch of engine events, numbered in the order they happened.
pub(crate) type Batch = crate::ws_common::Batch<Event>;

pub(crate) struct User {
    pub account: AccountId,
    pub public_key: RsaPublicKey,
}

pub(crate) struct Core {
    pub engine: Engine,
    pub batch_no: u64,
    pub users: BTreeMap<String, User>,
    pub schedule: Schedule,
}

pub(crate) struct Shared {
    core: Mutex<Core>,
    pub front: Front<Event>,
    pub clock: Clock,
    pub faults: Faults,
    pub historical_age_ms: i64,
    pub seed: u64,
    pub determination_delay_ms: i64,
}

impl Shared {
    pub(crate) fn determination_delay_ms(&self) -> i64 {
        self.determination_delay_ms
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the engine advanced to now; broadcasts what happened. Returns `f`'s
    /// result and the number of the last batch sent (every later batch happened after `f`).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> (R, u64) {
        let mut core = self.lock();
        let now = self.clock.now();
        core.schedule.fire(now, &self.faults);
        let mut events = core.engine.advance_to(now);
        let r = f(&mut core);
        events.extend(core.engine.take_events());
        if !events.is_empty() {
            core.batch_no += 1;
            let batch = Arc::new(Batch {
                no: core.batch_no,
                events,
            });
            // No receivers is fine.
            let _ = self.front.tx.send(batch);
        }
        (r, core.batch_no)
    }
}

/// Talks to a running simulator from tests (cheap to clone).
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    account: Option<AccountId>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Injects a fault now.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.inject(fault);
    }

    pub fn fault_stats(&self) -> FaultStats {
        self.shared.faults.stats()
    }

    /// Simulated now (Unix ms).
    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Moves a manual clock to `t_ms` (never backwards) and runs everything due.
    pub fn advance_to(&self, t_ms: i64) -> Result<(), SimError> {
        match &self.shared.clock {
            Clock::Manual(t) => {
                t.fetch_max(t_ms, Ordering::SeqCst);
                self.shared.with(|_| ());
                Ok(())
            }
            Clock::Realtime { .. } => Err(SimError::NotManual),
        }
    }

    pub fn advance_by(&self, ms: i64) -> Result<(), SimError> {
        self.advance_to(self.now_ms() + ms)
    }

    /// Runs `f` on the engine (advanced to now); its events are broadcast.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        self.shared.with(|core| f(&mut core.engine)).0
    }

    /// Markets ever listed, in listing order.
    pub fn markets(&self) -> Vec<MarketInfo> {
        self.with_engine(|e| e.markets().cloned().collect())
    }

    /// The first active market, if any.
    pub fn active_market(&self) -> Option<MarketInfo> {
        self.with_engine(|e| {
            e.markets()
                .find(|m| m.status == crate::engine::MarketStatus::Active)
                .cloned()
        })
    }

    /// Closes a market now (optionally forcing the result); it settles as usual after.
    pub fn force_close(&self, ticker: &str, result: Option<MarketResult>) -> Result<(), SimError> {
        self.with_engine(|e| e.force_close(ticker, result))?;
        Ok(())
    }

    /// The account of the configured API key.
    pub fn default_account(&self) -> Option<AccountId> {
        self.account
    }

    /// Registers another API key with its own account.
    pub fn add_user(
        &self,
        key_id: &ApiKeyId,
        public_key: RsaPublicKey,
        balance: Money,
    ) -> AccountId {
        self.shared
            .with(|core| {
                let account = core.engine.add_user(balance);
                core.users.insert(
                    key_id.expose().to_string(),
                    User {
                        account,
                        public_key,
                    },
                );
                account
            })
            .0
    }

    /// Number of event batches broadcast so far.
    pub fn batches(&self) -> u64 {
        self.shared.with(|_| ()).1
    }
}

/// A running simulator.
pub struct Sim {
    addr: SocketAddr,
    handle: SimHandle,
    credentials: Option<(ApiKeyId, PrivateKey)>,
    key_files: Option<(PathBuf, PathBuf)>,
    shutdown_tx: watch::Sender<bool>,
    server: JoinHandle<()>,
    driver: Option<JoinHandle<()>>,
}

server_accessors!(Sim);

impl Sim {
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }
    /// Stops accepting, closes WebSocket connections, waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(d) = self.driver {
            d.abort();
            let _ = d.await;
        }
        let _ = self.server.await;
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts a simulator: binds, builds the engine, serves in the background.
pub async fn spawn(cfg: SimConfig) -> Result<Sim, SimError> {
    if cfg.engine.market_duration_ms <= 0 || cfg.engine.requote_interval_ms <= 0 {
        return Err(SimError::Config(
            "market duration and requote interval must be positive".into(),
        ));
    }
    if let ClockMode::Realtime { speed } = cfg.clock {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(SimError::Config(format!("speed {speed} must be positive")));
        }
    }
    let Keys {
        key_id,
        public_key,
        credentials,
        key_files,
    } = setup_keys(cfg.key.clone(), cfg.key_dir.as_deref(), SimError::Config).await?;

    let start = cfg.start_ms.unwrap_or_else(wall_ms);
    let mut ecfg = cfg.engine.clone();
    ecfg.start_ms = start - i64::from(cfg.warmup_markets) * ecfg.market_duration_ms;
    let origin = ecfg.start_ms.div_euclid(ecfg.market_duration_ms) * ecfg.market_duration_ms;
    let path: Box<dyn PricePath> = match &cfg.path {
        PathSpec::RandomWalk {
            start_price,
            sigma_per_sqrt_s,
            step_ms,
        } => {
            if !(*start_price > 0.0 && *sigma_per_sqrt_s >= 0.0 && *step_ms > 0) {
                return Err(SimError::Config(
                    "random walk parameters must be positive".into(),
                ));
            }
            Box::new(RandomWalk::new(
                ecfg.seed,
                origin,
                *start_price,
                *sigma_per_sqrt_s,
                *step_ms,
            ))
        }
        PathSpec::Bars { csv } => Box::new(BarsPath::from_csv(csv, origin)?),
    };
    let mut engine = Engine::new(ecfg, path);
    let account = engine.add_user(cfg.initial_balance);
    engine.advance_to(start);
    let mut users = BTreeMap::new();
    users.insert(
        key_id.expose().to_string(),
        User {
            account,
            public_key,
        },
    );

    let (listener, addr) = bind(cfg.addr).await.map_err(|source| SimError::Bind {
        addr: cfg.addr,
        source,
    })?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let clock = match cfg.clock {
        ClockMode::Realtime { speed } => Clock::Realtime {
            origin_sim: start,
            origin: Instant::now(),
            speed,
        },
        ClockMode::Manual => Clock::Manual(AtomicI64::new(start)),
    };
    let shared = Arc::new(Shared {
        core: Mutex::new(Core {
            engine,
            batch_no: 0,
            users,
            schedule: Schedule::new(cfg.fault_schedule.clone(), start),
        }),
        front: Front::new(
            cfg.rate_limit.clone(),
            cfg.ws.clone(),
            cfg.ws.queue_capacity.max(1),
            shutdown_rx.clone(),
        ),
        clock,
        faults: Faults::new(cfg.fault_seed),
        historical_age_ms: cfg.historical_age_ms,
        seed: cfg.engine.seed,
        determination_delay_ms: cfg.engine.determination_delay_ms,
    });

    let app = rest::router(shared.clone())
        .merge(ws::router(shared.clone()))
        .merge(control::router(shared.clone()));
    let server = serve(listener, app, shutdown_rx.clone(), "server");
    let driver = match cfg.clock {
        ClockMode::Realtime { .. } => {
            let shared = shared.clone();
            let tick = Duration::from_millis(cfg.tick_ms.max(1));
            Some(tokio::spawn(async move {
                let mut iv = tokio::time::interval(tick);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    iv.tick().await;
                    shared.with(|_| ());
                }
            }))
        }
        ClockMode::Manual => None,
    };
    tracing::info!(%addr, series = %cfg.engine.series, "kalshi_sim listening");
    Ok(Sim {
        addr,
        handle: SimHandle {
            shared,
            account: Some(account),
        },
        credentials,
        key_files,
        shutdown_tx,
        server,
        driver,
    })
}
