//! Runtime configuration shared by every tool (recorder, label tools, trainer, evaluator, live
//! runner, simulator clients).
//!
//! # Layers
//!
//! A [`RuntimeConfig`] is merged from four layers, highest first:
//!
//! 1. **command line**: [`CliOverrides`], a `clap::Args` struct every binary flattens;
//! 2. **environment variables** (see [`ENV_VARS`]);
//! 3. **the config file** (`config/runtime.json` unless `--config` names another);
//! 4. **built-in defaults** ([`DEFAULT_RUNTIME_JSON`], the same content as the shipped
//!    `config/runtime.json`: real Kalshi production endpoints).
//!
//! The merge is one pure function, [`resolve`]; [`RuntimeConfig::from_cli`] and
//! [`RuntimeConfig::load`] wrap it with the file system and the process environment.
//!
//! # File format (`runtime/v1`)
//!
//! ```json
//! {
//!   "schema": "runtime/v1",
//!   "environment": "prod",
//!   "exchange": {
//!     "prod": {"rest_base": "https://external-api.kalshi.com/trade-api/v2",
//!              "ws_url": "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
//!              "rate_limit_tier": "basic"},
//!     "demo": {"rest_base": "https://external-api.demo.kalshi.co/trade-api/v2",
//!              "ws_url": "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
//!              "rate_limit_tier": "basic",
//!              "env_file": "secrets/demo.env", "pem_file": "secrets/kalshi_demo_secret.pem"}
//!   },
//!   "env_file": "secrets/.env",
//!   "pem_file": "secrets/kalshi_secret.pem",
//!   "series": "KXBTC15M",
//!   "data_dir": "pipeline_data/highres",
//!   "labels_path": "pipeline_data/labels.json",
//!   "unresolved_path": "pipeline_data/labels_unresolved.json",
//!   "strategy_path": "pipeline_data/strategy/strategy.json",
//!   "reports_dir": "pipeline_data/reports",
//!   "live_dir": "pipeline_data/live",
//!   "snapshot_ms": 100,
//!   "use_yes_price": true
//! }
//! ```
//!
//! Every field is optional; a missing one takes the built-in default. Unknown fields are errors.
//!
//! | field | meaning |
//! |---|---|
//! | `schema` | optional; when present it must be `"runtime/v1"` |
//! | `environment` | which entry of `exchange` to use |
//! | `exchange.<name>` | one exchange environment (names: `a-z`, `0-9`, `-`, `_`). A file's table **replaces** the built-in one (so `config/sim.json`, which has only `sim`, can never select the real exchange) |
//! | `exchange.<name>.rest_base` | REST base URL, `http`/`https`, including `/trade-api/v2` (required) |
//! | `exchange.<name>.ws_url` | WebSocket URL, `ws`/`wss`; derived from `rest_base` when absent (see below) |
//! | `exchange.<name>.rate_limit_tier` | the account's tier: `basic` (default), `advanced`, `premier`, `paragon`, `prime` |
//! | `exchange.<name>.env_file`, `.pem_file` | secrets for this environment; override the top-level ones (demo and prod keys are separate accounts) |
//! | `env_file` | the `.env` file with the API key id (read by `pipeline::secrets`, not here) |
//! | `pem_file` | the RSA private key (read by `pipeline::secrets`, not here) |
//! | `series` | series ticker to record/trade, upper case, no `-` |
//! | `data_dir` | snapshot files and the markets sidecar |
//! | `labels_path`, `unresolved_path` | labels/v1 file and the unresolved list |
//! | `strategy_path` | strategy/v1 file the trainer writes and the runner reads |
//! | `reports_dir` | evaluation reports and plots |
//! | `live_dir` | live/dry-run runner state: order journal, kill switch |
//! | `snapshot_ms` | snapshot grid in milliseconds, `1..=3600000` |
//! | `use_yes_price` | send `use_yes_price` on WS orderbook subscriptions (API.md §5.4) |
//!
//! # Environment variables
//!
//! | variable | overrides |
//! |---|---|
//! | `KALSHI_ENVIRONMENT` | `environment` |
//! | `KALSHI_REST_BASE` | the REST base URL of the selected environment |
//! | `KALSHI_WS_URL` | the WebSocket URL of the selected environment |
//! | `KALSHI_SERIES` | `series` |
//! | `KALSHI_DATA_DIR` | `data_dir` |
//!
//! An empty (or all-blank) variable counts as unset. Secrets are not read here: the `.env` and PEM
//! files named by `env_file`/`pem_file` are loaded by `pipeline::secrets`.
//!
//! # Command line
//!
//! `--config FILE` (default `config/runtime.json`), `--environment NAME`, `--base-url URL`,
//! `--ws-url URL`, `--series TICKER`. An explicitly given `--config` must exist; when the default
//! file is absent, the built-in defaults are used (and logged).
//!
//! # Choosing the endpoint
//!
//! The environment name, REST base and WebSocket URL are chosen as a unit, so a configuration never
//! mixes hosts by accident:
//! - the endpoint comes from the highest layer (command line, then environment variables) that
//!   mentions any of environment / REST base / WS URL; URL overrides in lower layers are ignored
//!   (with a warning), e.g. `--environment demo` beats an exported `KALSHI_REST_BASE`;
//! - within that layer, a REST base given without a WS URL derives the WS URL from it
//!   (`http`→`ws`, `https`→`wss`, `…/trade-api/v2` → `…/trade-api/ws/v2`); a layer that gives
//!   neither URL uses the selected `exchange` entry's URLs;
//! - the rate-limit tier and secrets paths always come from the selected entry (or the top level).
//!
//! # Paths
//!
//! Relative paths are resolved against the **current working directory** (not the config file's
//! folder), so tools run from the repository root find `pipeline_data/…` and `secrets/…` as the
//! shipped files name them. [`resolve`] keeps paths as written; [`RuntimeConfig::from_cli`] and
//! [`RuntimeConfig::load`] make them absolute with [`RuntimeConfig::with_base_dir`]. `~` is not
//! expanded (an error says so).
//!
//! # Errors
//!
//! Every problem is collected before failing, each with its JSON path and where the value came
//! from, into one [`ConfigError::Invalid`]:
//!
//! ```text
//! config/runtime.json: 2 problems:
//!   - exchnage: unknown field (did you mean "exchange"?)
//!   - snapshot_ms: expected a positive integer (1..=3600000), got "fast"
//! ```
//!
//! Malformed JSON (including a duplicated key) is a [`ConfigError::Syntax`] naming file, line and
//! column.

mod json;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;
use url::Url;

use crate::ids::SeriesTicker;

/// The config file read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/runtime.json";
/// The value of the optional `schema` field.
pub const SCHEMA: &str = "runtime/v1";

/// `KALSHI_ENVIRONMENT`: overrides `environment`.
pub const ENV_ENVIRONMENT: &str = "KALSHI_ENVIRONMENT";
/// `KALSHI_REST_BASE`: overrides the REST base URL.
pub const ENV_REST_BASE: &str = "KALSHI_REST_BASE";
/// `KALSHI_WS_URL`: overrides the WebSocket URL.
pub const ENV_WS_URL: &str = "KALSHI_WS_URL";
/// `KALSHI_SERIES`: overrides `series`.
pub const ENV_SERIES: &str = "KALSHI_SERIES";
/// `KALSHI_DATA_DIR`: overrides `data_dir`.
pub const ENV_DATA_DIR: &str = "KALSHI_DATA_DIR";
/// Every environment variable the config reads.
pub const ENV_VARS: [&str; 5] = [
    ENV_ENVIRONMENT,
    ENV_REST_BASE,
    ENV_WS_URL,
    ENV_SERIES,
    ENV_DATA_DIR,
];

/// Smallest and largest accepted `snapshot_ms`.
pub const SNAPSHOT_MS_RANGE: std::ops::RangeInclusive<u32> = 1..=3_600_000;

/// The built-in defaults, as a `runtime/v1` document (the lowest layer).
pub const DEFAULT_RUNTIME_JSON: &str = r#"{
  "schema": "runtime/v1",
  "environment": "prod",
  "exchange": {
    "prod": {
      "rest_base": "https://external-api.kalshi.com/trade-api/v2",
      "ws_url": "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
      "rate_limit_tier": "basic"
    },
    "demo": {
      "rest_base": "https://external-api.demo.kalshi.co/trade-api/v2",
      "ws_url": "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
      "rate_limit_tier": "basic",
      "env_file": "secrets/demo.env",
      "pem_file": "secrets/kalshi_demo_secret.pem"
    }
  },
  "env_file": "secrets/.env",
  "pem_file": "secrets/kalshi_secret.pem",
  "series": "KXBTC15M",
  "data_dir": "pipeline_data/highres",
  "labels_path": "pipeline_data/labels.json",
  "unresolved_path": "pipeline_data/labels_unresolved.json",
  "strategy_path": "pipeline_data/strategy/strategy.json",
  "reports_dir": "pipeline_data/reports",
  "live_dir": "pipeline_data/live",
  "snapshot_ms": 100,
  "use_yes_price": true
}"#;

const TOP_FIELDS: &[&str] = &[
    "schema",
    "environment",
    "exchange",
    "env_file",
    "pem_file",
    "series",
    "data_dir",
    "labels_path",
    "unresolved_path",
    "strategy_path",
    "reports_dir",
    "live_dir",
    "snapshot_ms",
    "use_yes_price",
];
const ENTRY_FIELDS: &[&str] = &[
    "rest_base",
    "ws_url",
    "rate_limit_tier",
    "env_file",
    "pem_file",
];

// ---------------------------------------------------------------------------------------------
// Public types

/// Kalshi API rate-limit tier of the account (API.md §6.1, token buckets since 2026-04-23; a
/// default request costs 10 tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateLimitTier {
    Basic,
    Advanced,
    Premier,
    Paragon,
    Prime,
}

impl RateLimitTier {
    /// Every tier, lowest first.
    pub const ALL: [RateLimitTier; 5] = [
        Self::Basic,
        Self::Advanced,
        Self::Premier,
        Self::Paragon,
        Self::Prime,
    ];

    /// The config spelling (`"basic"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Advanced => "advanced",
            Self::Premier => "premier",
            Self::Paragon => "paragon",
            Self::Prime => "prime",
        }
    }

    /// Read-bucket refill, tokens per second.
    pub fn read_tokens_per_sec(self) -> u32 {
        match self {
            Self::Basic => 200,
            Self::Advanced => 300,
            Self::Premier => 1_000,
            Self::Paragon => 2_000,
            Self::Prime => 4_000,
        }
    }

    /// Write-bucket refill, tokens per second.
    pub fn write_tokens_per_sec(self) -> u32 {
        match self {
            Self::Basic => 100,
            Self::Advanced => 300,
            Self::Premier => 1_000,
            Self::Paragon => 2_000,
            Self::Prime => 4_000,
        }
    }

    /// Write-bucket capacity in tokens: 2 s of budget (Basic: 1 s).
    pub fn write_capacity_tokens(self) -> u32 {
        match self {
            Self::Basic => self.write_tokens_per_sec(),
            _ => 2 * self.write_tokens_per_sec(),
        }
    }
}

impl fmt::Display for RateLimitTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RateLimitTier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!("expected one of {}, got {s:?}", names.join(", "))
            })
    }
}

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in defaults ([`DEFAULT_RUNTIME_JSON`]).
    Default,
    /// A config file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag (with its dashes, e.g. `--base-url`).
    Cli(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "${v}"),
            Origin::Cli(flag) => f.write_str(flag),
        }
    }
}

/// One bad field: its JSON path (`exchange.prod.rest_base`), what is wrong, and where the value
/// came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File(_) => write!(f, "{}: {}", self.path, self.message),
            other => write!(f, "{} (from {other}): {}", self.path, self.message),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid JSON (or repeats a key).
    #[error("{}: malformed JSON at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// One or more fields are invalid; all of them are listed.
    #[error("{}", render_problems(file.as_deref(), problems))]
    Invalid {
        file: Option<PathBuf>,
        problems: Vec<Problem>,
    },
    /// The working directory (for resolving relative paths) is unavailable.
    #[error("cannot determine the current directory: {0}")]
    CurrentDir(#[source] std::io::Error),
}

fn render_problems(file: Option<&Path>, problems: &[Problem]) -> String {
    let all_in_file = !problems.is_empty()
        && problems
            .iter()
            .all(|p| matches!(&p.origin, Origin::File(f) if Some(f.as_path()) == file));
    let head = match file {
        Some(p) if all_in_file => p.display().to_string(),
        Some(p) => format!("configuration (file {})", p.display()),
        None => "configuration".to_owned(),
    };
    let n = problems.len();
    let mut s = format!("{head}: {n} problem{}:", if n == 1 { "" } else { "s" });
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(&p.to_string());
    }
    s
}

/// Command-line overrides, for every binary to flatten into its own CLI:
///
/// ```
/// use clap::Parser;
/// use pipeline::config::{CliOverrides, RuntimeConfig};
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     config: CliOverrides,
///     /// Place real orders.
///     #[arg(long)]
///     live: bool,
/// }
///
/// let cli = Cli::parse_from(["run_live", "--config", "config/sim.json", "--series", "KXBTC15M"]);
/// assert_eq!(cli.config.config_path(), std::path::Path::new("config/sim.json"));
/// // In `main`: let cfg = RuntimeConfig::from_cli(&cli.config)?; tracing::info!("{cfg}");
/// # let _ = RuntimeConfig::from_cli;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Runtime configuration")]
pub struct CliOverrides {
    /// Runtime config file [default: config/runtime.json]. Relative paths inside it are
    /// resolved against the working directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Exchange environment: a key of the config's `exchange` table (prod, demo, sim, ...).
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// REST base URL, e.g. http://127.0.0.1:8970/trade-api/v2. Without --ws-url the WebSocket URL
    /// is derived from it (http->ws, https->wss, /trade-api/v2 -> /trade-api/ws/v2).
    #[arg(long = "base-url", value_name = "URL")]
    pub base_url: Option<String>,
    /// WebSocket URL, e.g. ws://127.0.0.1:8970/trade-api/ws/v2.
    #[arg(long = "ws-url", value_name = "URL")]
    pub ws_url: Option<String>,
    /// Series ticker, e.g. KXBTC15M.
    #[arg(long, value_name = "TICKER")]
    pub series: Option<String>,
}

impl CliOverrides {
    /// The config file to read: `--config`, else [`DEFAULT_CONFIG_PATH`].
    pub fn config_path(&self) -> &Path {
        self.config
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
    }
}

/// The resolved runtime configuration. Contains no secret material: only the paths of the
/// secrets files (and URLs with embedded credentials are rejected), so it may be logged whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The config file the values came from; `None` when only built-in defaults were used.
    pub source: Option<PathBuf>,
    /// Name of the selected `exchange` entry.
    pub environment: String,
    /// REST base URL without a trailing slash, e.g. `https://…/trade-api/v2`.
    pub rest_base: Url,
    /// WebSocket URL, e.g. `wss://…/trade-api/ws/v2`.
    pub ws_url: Url,
    /// Rate-limit tier of the selected environment's account.
    pub rate_limit_tier: RateLimitTier,
    pub env_file: PathBuf,
    pub pem_file: PathBuf,
    pub series: SeriesTicker,
    pub data_dir: PathBuf,
    pub labels_path: PathBuf,
    pub unresolved_path: PathBuf,
    pub strategy_path: PathBuf,
    pub reports_dir: PathBuf,
    pub live_dir: PathBuf,
    pub snapshot_ms: u32,
    pub use_yes_price: bool,
    origins: BTreeMap<&'static str, Origin>,
}

impl RuntimeConfig {
    /// What every binary calls: reads `--config` (or `config/runtime.json`; when that default
    /// file is absent, the built-in defaults), the process environment and the overrides, then
    /// makes paths absolute against the working directory.
    pub fn from_cli(cli: &CliOverrides) -> Result<Self, ConfigError> {
        let cwd = std::env::current_dir().map_err(ConfigError::CurrentDir)?;
        Self::from_cli_in(cli, &cwd, &process_env)
    }

    /// [`RuntimeConfig::from_cli`] with the working directory and the environment given
    /// explicitly (tests, embedding): the config path and every relative path are resolved
    /// against `base_dir`; `env` stands for the process environment.
    pub fn from_cli_in(
        cli: &CliOverrides,
        base_dir: &Path,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let shown = cli.config_path();
        let cfg = match std::fs::read_to_string(base_dir.join(shown)) {
            Ok(text) => resolve(Some((shown, &text)), env, cli)?,
            Err(e) if cli.config.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(
                    path = %shown.display(),
                    "no config file; using built-in defaults"
                );
                resolve(None, env, cli)?
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: shown.to_owned(),
                    source,
                })
            }
        };
        Ok(cfg.with_base_dir(base_dir))
    }

    /// Reads the config file at `path` (which must exist; it replaces `cli.config`), the process
    /// environment and the overrides, then makes paths absolute against the working directory.
    pub fn load(path: &Path, cli: &CliOverrides) -> Result<Self, ConfigError> {
        let cli = CliOverrides {
            config: Some(path.to_owned()),
            ..cli.clone()
        };
        Self::from_cli(&cli)
    }

    /// Resolves every relative path against `base` (absolute paths are kept). Pure: no file
    /// system access.
    pub fn with_base_dir(mut self, base: &Path) -> Self {
        for p in [
            &mut self.env_file,
            &mut self.pem_file,
            &mut self.data_dir,
            &mut self.labels_path,
            &mut self.unresolved_path,
            &mut self.strategy_path,
            &mut self.reports_dir,
            &mut self.live_dir,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        self
    }

    /// The full URL of a REST path, e.g. `rest_url("/markets")` →
    /// `https://external-api.kalshi.com/trade-api/v2/markets`.
    pub fn rest_url(&self, path: &str) -> String {
        let base = self.rest_base.as_str().trim_end_matches('/');
        if path.starts_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/{path}")
        }
    }

    /// True when both endpoints are on a loopback host (the local simulator).
    pub fn is_loopback(&self) -> bool {
        is_loopback_url(&self.rest_base) && is_loopback_url(&self.ws_url)
    }

    /// Where a field's value came from (`"series"`, `"rest_base"`, `"ws_url"`, `"data_dir"`, …;
    /// `None` for an unknown name).
    pub fn origin(&self, field: &str) -> Option<&Origin> {
        self.origins.get(field)
    }

    /// One line for the start-up log: every resolved value, the config file, and which values
    /// were overridden by the environment or the command line. Never contains secrets.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "environment={} rest_base={} ws_url={} rate_limit_tier={} series={} snapshot_ms={} \
             use_yes_price={} data_dir={} labels_path={} unresolved_path={} strategy_path={} \
             reports_dir={} live_dir={} env_file={} pem_file={} config={}",
            self.environment,
            self.rest_base,
            self.ws_url,
            self.rate_limit_tier,
            self.series,
            self.snapshot_ms,
            self.use_yes_price,
            self.data_dir.display(),
            self.labels_path.display(),
            self.unresolved_path.display(),
            self.strategy_path.display(),
            self.reports_dir.display(),
            self.live_dir.display(),
            self.env_file.display(),
            self.pem_file.display(),
            match &self.source {
                Some(p) => p.display().to_string(),
                None => "(built-in defaults)".to_owned(),
            },
        );
        let overrides: Vec<String> = self
            .origins
            .iter()
            .filter(|(_, o)| matches!(o, Origin::Env(_) | Origin::Cli(_)))
            .map(|(k, o)| format!("{k} from {o}"))
            .collect();
        if !overrides.is_empty() {
            s.push_str(&format!(" overrides=[{}]", overrides.join(", ")));
        }
        s
    }
}

impl fmt::Display for RuntimeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

fn is_loopback_url(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn process_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        // Kept (lossily) so that resolve reports it instead of silently ignoring it.
        Err(std::env::VarError::NotUnicode(os)) => Some(os.to_string_lossy().into_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// The merge

/// Merges the layers into a validated config: `cli` > `env` > `file` > built-in defaults.
///
/// `file` is the config file's path (for messages) and text; `env` looks up an environment
/// variable (only the names in [`ENV_VARS`] are asked for); `cli.config` is not used here. Paths
/// are kept as written (relative ones are relative to the working directory). Pure apart from a
/// `tracing` warning when a lower layer's URL override is ignored.
pub fn resolve(
    file: Option<(&Path, &str)>,
    env: &impl Fn(&str) -> Option<String>,
    cli: &CliOverrides,
) -> Result<RuntimeConfig, ConfigError> {
    let mut problems = Vec::new();

    let defaults = {
        let mut sink = Sink::new(Origin::Default, &mut problems);
        match json::parse_strict(DEFAULT_RUNTIME_JSON) {
            Ok(v) => file_layer(&v, &mut sink),
            Err(e) => {
                sink.push("", format!("built-in defaults are not valid JSON: {e}"));
                Layer::default()
            }
        }
    };
    let file_layer = match file {
        Some((path, text)) => {
            let value = json::parse_strict(text).map_err(|e| syntax_error(path, &e))?;
            let mut sink = Sink::new(Origin::File(path.to_owned()), &mut problems);
            file_layer(&value, &mut sink)
        }
        None => Layer::default(),
    };
    let env_layer = env_layer(env, &mut problems);
    let cli_layer = cli_layer(cli, &mut problems);

    let merged = merge(
        [&cli_layer, &env_layer, &file_layer, &defaults],
        &mut problems,
    );
    match merged {
        Some(mut cfg) if problems.is_empty() => {
            cfg.source = file.map(|(p, _)| p.to_owned());
            Ok(cfg)
        }
        _ => {
            problems.sort_by(|a, b| {
                (origin_rank(&a.origin), &a.path).cmp(&(origin_rank(&b.origin), &b.path))
            });
            Err(ConfigError::Invalid {
                file: file.map(|(p, _)| p.to_owned()),
                problems,
            })
        }
    }
}

fn origin_rank(o: &Origin) -> u8 {
    match o {
        Origin::Default => 0,
        Origin::File(_) => 1,
        Origin::Env(_) => 2,
        Origin::Cli(_) => 3,
    }
}

fn syntax_error(path: &Path, e: &serde_json::Error) -> ConfigError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the line and column are reported separately.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    ConfigError::Syntax {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// A value with the layer it came from.
#[derive(Debug, Clone)]
struct Sourced<T> {
    value: T,
    origin: Origin,
}

#[derive(Debug, Clone)]
struct ExchangeEntry {
    rest_base: Url,
    ws_url: Url,
    rate_limit_tier: RateLimitTier,
    env_file: Option<PathBuf>,
    pem_file: Option<PathBuf>,
}

/// An exchange table: every entry name seen, with `None` for entries that had problems (already
/// reported), so that selecting one does not also report "unknown environment".
type ExchangeTable = BTreeMap<String, Option<ExchangeEntry>>;

/// One layer's values; `None` = this layer does not set the field (or set it invalidly, which
/// is already a problem).
#[derive(Debug, Default)]
struct Layer {
    environment: Option<Sourced<String>>,
    exchange: Option<Sourced<ExchangeTable>>,
    rest_base: Option<Sourced<Url>>,
    ws_url: Option<Sourced<Url>>,
    env_file: Option<Sourced<PathBuf>>,
    pem_file: Option<Sourced<PathBuf>>,
    series: Option<Sourced<SeriesTicker>>,
    data_dir: Option<Sourced<PathBuf>>,
    labels_path: Option<Sourced<PathBuf>>,
    unresolved_path: Option<Sourced<PathBuf>>,
    strategy_path: Option<Sourced<PathBuf>>,
    reports_dir: Option<Sourced<PathBuf>>,
    live_dir: Option<Sourced<PathBuf>>,
    snapshot_ms: Option<Sourced<u32>>,
    use_yes_price: Option<Sourced<bool>>,
}

impl Layer {
    fn mentions_endpoint(&self) -> bool {
        self.environment.is_some() || self.rest_base.is_some() || self.ws_url.is_some()
    }
}

/// Collects problems for one origin.
struct Sink<'a> {
    origin: Origin,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Sink<'a> {
    fn new(origin: Origin, problems: &'a mut Vec<Problem>) -> Self {
        Self { origin, problems }
    }
    fn push(&mut self, path: &str, message: String) {
        self.problems.push(Problem {
            origin: self.origin.clone(),
            path: if path.is_empty() {
                "(top level)".to_owned()
            } else {
                path.to_owned()
            },
            message,
        });
    }
    fn sourced<T>(&self, value: T) -> Sourced<T> {
        Sourced {
            value,
            origin: self.origin.clone(),
        }
    }
    /// Runs a field parser; a failure becomes a problem at `path`.
    fn field<T>(&mut self, path: &str, r: Result<T, String>) -> Option<Sourced<T>> {
        match r {
            Ok(v) => Some(self.sourced(v)),
            Err(msg) => {
                self.push(path, msg);
                None
            }
        }
    }
}

fn merge(layers: [&Layer; 4], problems: &mut Vec<Problem>) -> Option<RuntimeConfig> {
    let mut origins: BTreeMap<&'static str, Origin> = BTreeMap::new();
    fn missing(name: &str, problems: &mut Vec<Problem>) {
        problems.push(Problem {
            origin: Origin::Default,
            path: name.to_owned(),
            message: "missing, and no default".to_owned(),
        })
    }

    macro_rules! pick {
        ($field:ident) => {{
            let found = layers.iter().find_map(|l| l.$field.clone());
            match found {
                Some(s) => {
                    origins.insert(stringify!($field), s.origin);
                    Some(s.value)
                }
                None => {
                    missing(stringify!($field), problems);
                    None
                }
            }
        }};
    }

    let environment = layers.iter().find_map(|l| l.environment.clone());
    let table = layers.iter().find_map(|l| l.exchange.clone());
    let series = pick!(series);
    let data_dir = pick!(data_dir);
    let labels_path = pick!(labels_path);
    let unresolved_path = pick!(unresolved_path);
    let strategy_path = pick!(strategy_path);
    let reports_dir = pick!(reports_dir);
    let live_dir = pick!(live_dir);
    let snapshot_ms = pick!(snapshot_ms);
    let use_yes_price = pick!(use_yes_price);
    let top_env_file = layers.iter().find_map(|l| l.env_file.clone());
    let top_pem_file = layers.iter().find_map(|l| l.pem_file.clone());

    // The selected exchange entry.
    let (environment, table) = match (environment, table) {
        (Some(e), Some(t)) => (e, t),
        (e, t) => {
            if e.is_none() {
                missing("environment", problems);
            }
            if t.is_none() {
                missing("exchange", problems);
            }
            return None;
        }
    };
    let entry = match table.value.get(&environment.value) {
        Some(Some(entry)) => entry.clone(),
        Some(None) => return None, // the entry's own problems are already reported
        None => {
            let names: Vec<&str> = table.value.keys().map(String::as_str).collect();
            let defined_in = match &table.origin {
                Origin::Default => "the built-in exchange table".to_owned(),
                other => format!("{other}"),
            };
            problems.push(Problem {
                origin: environment.origin.clone(),
                path: "environment".to_owned(),
                message: format!(
                    "unknown environment {:?} ({defined_in} defines: {})",
                    environment.value,
                    names.join(", ")
                ),
            });
            return None;
        }
    };
    origins.insert("environment", environment.origin.clone());
    origins.insert("rate_limit_tier", table.origin.clone());

    // The endpoint, chosen as a unit (see the module docs).
    let url_layer = layers[..2].iter().find(|l| l.mentions_endpoint());
    for lower in layers[..2]
        .iter()
        .skip_while(|l| !l.mentions_endpoint())
        .skip(1)
    {
        for url in [&lower.rest_base, &lower.ws_url].into_iter().flatten() {
            tracing::warn!(
                ignored = %url.origin,
                "URL override ignored: a higher-precedence layer chose the endpoint"
            );
        }
    }
    let table_src = || table.origin.clone();
    let (rest_base, ws_url) = match url_layer {
        Some(l) => {
            let rest = l.rest_base.clone().unwrap_or_else(|| Sourced {
                value: entry.rest_base.clone(),
                origin: table_src(),
            });
            let ws = match (&l.ws_url, &l.rest_base) {
                (Some(ws), _) => ws.clone(),
                (None, Some(rest)) => match derive_ws_url(&rest.value) {
                    Ok(u) => Sourced {
                        value: u,
                        origin: rest.origin.clone(),
                    },
                    Err(why) => {
                        let hint = match rest.origin {
                            Origin::Cli(_) => "pass --ws-url too",
                            _ => "set KALSHI_WS_URL too",
                        };
                        problems.push(Problem {
                            origin: rest.origin.clone(),
                            path: "ws_url".to_owned(),
                            message: format!(
                                "cannot derive the WebSocket URL from {}: {why}; {hint}",
                                rest.value
                            ),
                        });
                        return None;
                    }
                },
                (None, None) => Sourced {
                    value: entry.ws_url.clone(),
                    origin: table_src(),
                },
            };
            (rest, ws)
        }
        None => (
            Sourced {
                value: entry.rest_base.clone(),
                origin: table_src(),
            },
            Sourced {
                value: entry.ws_url.clone(),
                origin: table_src(),
            },
        ),
    };
    origins.insert("rest_base", rest_base.origin);
    origins.insert("ws_url", ws_url.origin);

    // Secrets paths: the entry's own, else the top level.
    let env_file = match (&entry.env_file, top_env_file) {
        (Some(p), _) => Some(Sourced {
            value: p.clone(),
            origin: table_src(),
        }),
        (None, top) => top,
    };
    let pem_file = match (&entry.pem_file, top_pem_file) {
        (Some(p), _) => Some(Sourced {
            value: p.clone(),
            origin: table_src(),
        }),
        (None, top) => top,
    };
    let (Some(env_file), Some(pem_file)) = (env_file, pem_file) else {
        missing("env_file/pem_file", problems);
        return None;
    };
    origins.insert("env_file", env_file.origin);
    origins.insert("pem_file", pem_file.origin);

    Some(RuntimeConfig {
        source: None,
        environment: environment.value,
        rest_base: rest_base.value,
        ws_url: ws_url.value,
        rate_limit_tier: entry.rate_limit_tier,
        env_file: env_file.value,
        pem_file: pem_file.value,
        series: series?,
        data_dir: data_dir?,
        labels_path: labels_path?,
        unresolved_path: unresolved_path?,
        strategy_path: strategy_path?,
        reports_dir: reports_dir?,
        live_dir: live_dir?,
        snapshot_ms: snapshot_ms?,
        use_yes_price: use_yes_price?,
        origins,
    })
}

// ---------------------------------------------------------------------------------------------
// Layers

fn file_layer(root: &Value, sink: &mut Sink) -> Layer {
    let mut layer = Layer::default();
    let Some(obj) = root.as_object() else {
        sink.push(
            "",
            format!("expected a JSON object, got {}", json::describe(root)),
        );
        return layer;
    };
    for (key, v) in obj {
        let path = json::join("", key);
        match key.as_str() {
            "schema" => match v.as_str() {
                Some(SCHEMA) => {}
                _ => sink.push(
                    &path,
                    format!("expected {SCHEMA:?}, got {}", json::describe(v)),
                ),
            },
            "environment" => {
                layer.environment = sink.field(&path, string(v).and_then(parse_environment_name))
            }
            "exchange" => layer.exchange = exchange_table(v, &path, sink).map(|t| sink.sourced(t)),
            "env_file" => layer.env_file = sink.field(&path, string(v).and_then(parse_path)),
            "pem_file" => layer.pem_file = sink.field(&path, string(v).and_then(parse_path)),
            "series" => layer.series = sink.field(&path, string(v).and_then(parse_series)),
            "data_dir" => layer.data_dir = sink.field(&path, string(v).and_then(parse_path)),
            "labels_path" => layer.labels_path = sink.field(&path, string(v).and_then(parse_path)),
            "unresolved_path" => {
                layer.unresolved_path = sink.field(&path, string(v).and_then(parse_path))
            }
            "strategy_path" => {
                layer.strategy_path = sink.field(&path, string(v).and_then(parse_path))
            }
            "reports_dir" => layer.reports_dir = sink.field(&path, string(v).and_then(parse_path)),
            "live_dir" => layer.live_dir = sink.field(&path, string(v).and_then(parse_path)),
            "snapshot_ms" => layer.snapshot_ms = sink.field(&path, snapshot_ms(v)),
            "use_yes_price" => layer.use_yes_price = sink.field(&path, boolean(v)),
            _ => sink.push(&path, json::unknown_field_message(key, TOP_FIELDS)),
        }
    }
    layer
}

fn exchange_table(v: &Value, path: &str, sink: &mut Sink) -> Option<ExchangeTable> {
    let Some(obj) = v.as_object() else {
        sink.push(
            path,
            format!(
                "expected an object of environments, got {}",
                json::describe(v)
            ),
        );
        return None;
    };
    if obj.is_empty() {
        sink.push(path, "expected at least one environment".to_owned());
        return None;
    }
    let mut table = ExchangeTable::new();
    for (name, entry) in obj {
        let entry_path = json::join(path, name);
        if let Err(msg) = parse_environment_name(name.clone()) {
            sink.push(&entry_path, format!("bad environment name: {msg}"));
            continue;
        }
        table.insert(name.clone(), exchange_entry(entry, &entry_path, sink));
    }
    Some(table)
}

fn exchange_entry(v: &Value, path: &str, sink: &mut Sink) -> Option<ExchangeEntry> {
    let Some(obj) = v.as_object() else {
        sink.push(
            path,
            format!("expected an object, got {}", json::describe(v)),
        );
        return None;
    };
    let before = sink.problems.len();
    let field = |k: &str| json::join(path, k);
    let get = |k: &str| obj.get(k);
    for key in obj.keys() {
        if !ENTRY_FIELDS.contains(&key.as_str()) {
            sink.push(&field(key), json::unknown_field_message(key, ENTRY_FIELDS));
        }
    }
    let rest_base = match get("rest_base") {
        Some(v) => sink
            .field(
                &field("rest_base"),
                string(v).and_then(|s| parse_url(&s, UrlKind::Rest)),
            )
            .map(|s| s.value),
        None => {
            sink.push(&field("rest_base"), "missing (required)".to_owned());
            None
        }
    };
    let ws_url = match get("ws_url") {
        Some(v) => sink
            .field(
                &field("ws_url"),
                string(v).and_then(|s| parse_url(&s, UrlKind::Ws)),
            )
            .map(|s| s.value),
        None => match &rest_base {
            Some(rest) => match derive_ws_url(rest) {
                Ok(u) => Some(u),
                Err(why) => {
                    sink.push(
                        &field("ws_url"),
                        format!("missing, and cannot be derived from rest_base: {why}"),
                    );
                    None
                }
            },
            None => None,
        },
    };
    let rate_limit_tier = match get("rate_limit_tier") {
        Some(v) => sink
            .field(
                &field("rate_limit_tier"),
                string(v).and_then(|s| s.parse::<RateLimitTier>()),
            )
            .map(|s| s.value),
        None => Some(RateLimitTier::Basic),
    };
    let mut opt_path = |k: &str| match get(k) {
        Some(v) => sink
            .field(&field(k), string(v).and_then(parse_path))
            .map(|s| Some(s.value)),
        None => Some(None),
    };
    let env_file = opt_path("env_file");
    let pem_file = opt_path("pem_file");
    if sink.problems.len() != before {
        return None;
    }
    Some(ExchangeEntry {
        rest_base: rest_base?,
        ws_url: ws_url?,
        rate_limit_tier: rate_limit_tier?,
        env_file: env_file?,
        pem_file: pem_file?,
    })
}

fn env_layer(env: &impl Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) -> Layer {
    let mut layer = Layer::default();
    let var = |name: &'static str, problems: &mut Vec<Problem>| -> Option<String> {
        let v = env(name).filter(|v| !v.trim().is_empty())?;
        if v.contains('\u{FFFD}') {
            Sink::new(Origin::Env(name), problems)
                .push(field_of_env(name), "is not valid UTF-8".to_owned());
            return None;
        }
        Some(v)
    };
    if let Some(v) = var(ENV_ENVIRONMENT, problems) {
        let mut s = Sink::new(Origin::Env(ENV_ENVIRONMENT), problems);
        layer.environment = s.field("environment", parse_environment_name(v));
    }
    if let Some(v) = var(ENV_REST_BASE, problems) {
        let mut s = Sink::new(Origin::Env(ENV_REST_BASE), problems);
        layer.rest_base = s.field("rest_base", parse_url(&v, UrlKind::Rest));
    }
    if let Some(v) = var(ENV_WS_URL, problems) {
        let mut s = Sink::new(Origin::Env(ENV_WS_URL), problems);
        layer.ws_url = s.field("ws_url", parse_url(&v, UrlKind::Ws));
    }
    if let Some(v) = var(ENV_SERIES, problems) {
        let mut s = Sink::new(Origin::Env(ENV_SERIES), problems);
        layer.series = s.field("series", parse_series(v));
    }
    if let Some(v) = var(ENV_DATA_DIR, problems) {
        let mut s = Sink::new(Origin::Env(ENV_DATA_DIR), problems);
        layer.data_dir = s.field("data_dir", parse_path(v));
    }
    layer
}

fn field_of_env(name: &str) -> &'static str {
    match name {
        ENV_ENVIRONMENT => "environment",
        ENV_REST_BASE => "rest_base",
        ENV_WS_URL => "ws_url",
        ENV_SERIES => "series",
        _ => "data_dir",
    }
}

fn cli_layer(cli: &CliOverrides, problems: &mut Vec<Problem>) -> Layer {
    let mut layer = Layer::default();
    if let Some(v) = &cli.environment {
        let mut s = Sink::new(Origin::Cli("--environment"), problems);
        layer.environment = s.field("environment", parse_environment_name(v.clone()));
    }
    if let Some(v) = &cli.base_url {
        let mut s = Sink::new(Origin::Cli("--base-url"), problems);
        layer.rest_base = s.field("rest_base", parse_url(v, UrlKind::Rest));
    }
    if let Some(v) = &cli.ws_url {
        let mut s = Sink::new(Origin::Cli("--ws-url"), problems);
        layer.ws_url = s.field("ws_url", parse_url(v, UrlKind::Ws));
    }
    if let Some(v) = &cli.series {
        let mut s = Sink::new(Origin::Cli("--series"), problems);
        layer.series = s.field("series", parse_series(v.clone()));
    }
    layer
}

// ---------------------------------------------------------------------------------------------
// Field parsers: each returns the message for a problem.

fn string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("expected a string, got {}", json::describe(other))),
    }
}

fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(format!(
            "expected true or false, got {}",
            json::describe(other)
        )),
    }
}

fn snapshot_ms(v: &Value) -> Result<u32, String> {
    let (lo, hi) = (*SNAPSHOT_MS_RANGE.start(), *SNAPSHOT_MS_RANGE.end());
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| SNAPSHOT_MS_RANGE.contains(n))
        .ok_or_else(|| {
            format!(
                "expected a positive integer ({lo}..={hi}), got {}",
                json::describe(v)
            )
        })
}

fn parse_environment_name(s: String) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(s)
    } else {
        Err(format!(
            "expected an environment name (lower-case letters, digits, '-', '_'; at most 32), got {:?}",
            s
        ))
    }
}

fn parse_series(s: String) -> Result<SeriesTicker, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.trim() != s {
        return Err(format!("has leading or trailing spaces: {s:?}"));
    }
    if s.chars().count() > 64 {
        return Err(format!("is longer than 64 characters: {s:?}"));
    }
    let upper = s.to_ascii_uppercase();
    if let Some((head, _)) = s.split_once('-') {
        return Err(format!(
            "{s:?} looks like a market or event ticker; a series ticker has no '-' \
             (did you mean {:?}?)",
            head.to_ascii_uppercase()
        ));
    }
    let valid = |t: &str| {
        t.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '.')
    };
    if !valid(&s) {
        if valid(&upper) {
            return Err(format!(
                "series tickers are upper case (did you mean {upper:?}?)"
            ));
        }
        return Err(format!("may contain only A-Z, 0-9, '_' and '.', got {s:?}"));
    }
    Ok(SeriesTicker::new(s))
}

fn parse_path(s: String) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    if s == "~" || s.starts_with("~/") {
        return Err(format!(
            "'~' is not expanded: give an absolute path or one relative to the working \
             directory, got {s:?}"
        ));
    }
    Ok(PathBuf::from(s))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlKind {
    Rest,
    Ws,
}

/// Parses and checks an endpoint URL; strips a trailing `/` from the path (Kalshi redirects
/// collection paths with a trailing slash).
fn parse_url(s: &str, kind: UrlKind) -> Result<Url, String> {
    let (schemes, want) = match kind {
        UrlKind::Rest => (["http", "https"], "an http:// or https:// URL"),
        UrlKind::Ws => (["ws", "wss"], "a ws:// or wss:// URL"),
    };
    let mut url = Url::parse(s.trim()).map_err(|e| format!("expected {want}, got {s:?} ({e})"))?;
    // Checked before anything that echoes the URL: credentials must never reach a message.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not embed credentials (user:password@); keys belong in env_file/pem_file"
                .to_owned(),
        );
    }
    if !schemes.contains(&url.scheme()) {
        return Err(format!("expected {want}, got {s:?}"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("has no host: {s:?}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("must not have a query or fragment: {s:?}"));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// The WebSocket URL that goes with a REST base: `http`→`ws`, `https`→`wss`,
/// `…/trade-api/v2` → `…/trade-api/ws/v2`.
pub fn derive_ws_url(rest_base: &Url) -> Result<Url, String> {
    let scheme = match rest_base.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => return Err(format!("scheme {other:?} is not http or https")),
    };
    let full = rest_base.as_str().trim_end_matches('/');
    let after_scheme = &full[rest_base.scheme().len()..]; // "://host:port/path"
    let Some(prefix) = after_scheme.strip_suffix("/trade-api/v2") else {
        return Err(format!(
            "its path {:?} does not end in /trade-api/v2",
            rest_base.path()
        ));
    };
    parse_url(&format!("{scheme}{prefix}/trade-api/ws/v2"), UrlKind::Ws)
}
