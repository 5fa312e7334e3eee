//! `strategy/v1`: one JSON file that says what to trade, with which model, when, how and within
//! which limits (DESIGN.md §3.3, `docs/FORMATS.md`).
//!
//! Strict on purpose: every struct denies unknown fields (a mistyped risk limit must never be
//! ignored), and [`Strategy::load`] reports an unknown or mistyped field with its full path and
//! the file name (`strategy.json: risk.max_contracts_per_markt: unknown field …`). Only
//! `plugin.params` and `training.metrics` are free-form. After parsing, [`Strategy::validate`]
//! checks every range and cross-field rule and reports all problems at once.
//!
//! Units: prices and money are dollar strings (`"0.0300"`, [`Price`]/[`Money`]), contract
//! counts are 2-dp strings (`"5.00"`, [`Count`]), durations are integer seconds (`*_s`) or
//! milliseconds (`*_ms`). `signals.min_edge` is dollars per contract, net of fees: a contract
//! pays $1, so $0.03 is also 3 percentage points of probability.
//!
//! Paths (`model.weights`) are relative to the strategy file's folder on disk; in memory, after
//! [`Strategy::load`], they are resolved, and [`Strategy::save`] writes them relative to the
//! folder of the file being written.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::markets::ident_problem;
use super::{is_sha256_hex, sha256_file, write_atomic};
use crate::ids::{MarketTicker, SeriesTicker};
use crate::money::{Count, Money, Price};

/// The `schema` tag; only `"strategy/v1"` parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StrategySchema {
    #[default]
    #[serde(rename = "strategy/v1")]
    V1,
}

/// Which runtime drives the strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyType {
    /// The built-in LSTM edge strategy: `model` required, `plugin` not allowed.
    RnnEdgeV1,
    /// A user plugin: `plugin` required, `model` optional.
    Plugin,
}

/// A strategy file in memory. See the module docs for units and path handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    pub schema: StrategySchema,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub strategy_type: StrategyType,
    pub created_at: DateTime<Utc>,
    pub markets: MarketsSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    pub signals: Signals,
    pub execution: Execution,
    pub risk: Risk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
}

/// What to trade: every market of a series, an explicit list, or both (the list then narrows
/// the series).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_ticker: Option<SeriesTicker>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tickers: Vec<MarketTicker>,
}

/// Enough to rebuild the exact network and its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Weights file (`.safetensors`); relative to the strategy file's folder on disk, resolved
    /// in memory after [`Strategy::load`].
    pub weights: PathBuf,
    /// Lower-case hex SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Input features in network order, with the training-set normalisation statistics:
    /// the network sees `(x − mean) / std`.
    pub features: Vec<FeatureSpec>,
    /// Input width; must equal `features.len()`.
    pub n_features: usize,
    /// Step cadence: snapshots are resampled to one step every `step_ms` milliseconds.
    pub step_ms: u64,
    /// Training window length in steps (live inference carries the LSTM state instead).
    pub seq_len: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Dropout between LSTM layers during training (`0 <= dropout < 1`).
    pub dropout: f64,
    /// Where to run inference.
    pub device: Device,
}

/// One model input and its normalisation statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub name: String,
    pub mean: f64,
    pub std: f64,
}

/// Inference device: `cpu`, `cuda`, `cuda:<n>`, `mps`, or `auto` (CUDA when available, else
/// CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(Option<usize>),
    Mps,
    Auto,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(None) => f.write_str("cuda"),
            Device::Cuda(Some(n)) => write!(f, "cuda:{n}"),
            Device::Mps => f.write_str("mps"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(None)),
            "mps" => Ok(Device::Mps),
            "auto" => Ok(Device::Auto),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| Device::Cuda(Some(n)))
                .ok_or_else(|| {
                    format!("unknown device {s:?} (expected cpu, cuda, cuda:<n>, mps or auto)")
                }),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which contract sides the strategy may buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sides {
    #[default]
    Both,
    Yes,
    No,
}

/// When to enter: all thresholds must pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signals {
    /// Minimum edge per contract, net of fees, in dollars: model probability of the side −
    /// price paid (the ask) − the taker fee per contract. `"0.0300"` = 3¢ = 3 points.
    pub min_edge: Money,
    /// Never pay less than this for a side (very cheap contracts are where models are worst
    /// calibrated).
    pub min_price: Price,
    /// Never pay more than this for a side.
    pub max_price: Price,
    /// Skip books whose YES spread (ask − bid) is wider than this.
    pub max_spread: Price,
    /// No entry when fewer seconds than this remain before `close_time`.
    pub min_seconds_to_close: u64,
    /// No entry when more seconds than this remain (too early in the market's life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds_to_close: Option<u64>,
    /// Which sides may be bought.
    #[serde(default)]
    pub sides: Sides,
    /// Skip when the displayed size at the ask is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ask_size: Option<Count>,
}

/// Kalshi's `time_in_force` (API.md §4.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    ImmediateOrCancel,
    FillOrKill,
    GoodTillCanceled,
}

/// Kalshi's `self_trade_prevention_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    #[default]
    TakerAtCross,
    Maker,
}

/// How orders are placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// Limit price = the ask being taken + this offset (dollars), never above
    /// `signals.max_price`. `"0.0000"` takes exactly the displayed ask.
    pub limit_offset: Price,
    pub time_in_force: TimeInForce,
    /// Contracts per order.
    pub contracts_per_order: Count,
    /// Rest only, never take (not with immediate_or_cancel / fill_or_kill).
    #[serde(default)]
    pub post_only: bool,
    /// Good-till-canceled orders expire after this many seconds (only with
    /// good_till_canceled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_s: Option<u64>,
    #[serde(default)]
    pub self_trade_prevention: SelfTradePrevention,
}

/// Throttles and safety limits, checked before every order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    /// Largest position (contracts, either side) held in one market, open orders included.
    pub max_contracts_per_market: Count,
    /// Most markets with a position or open order at once.
    pub max_open_markets: u32,
    /// Orders sent per rolling minute, across all markets.
    pub max_orders_per_minute: u32,
    /// Seconds after an order in a market before the next order in that market.
    pub cooldown_s: u64,
    /// Stop opening positions for the UTC day once realised + marked loss reaches this (a
    /// positive amount of dollars).
    pub max_daily_loss: Money,
    /// No new entries in the last N seconds before a market closes.
    pub no_entry_last_s: u64,
    /// Cap on the total cost of open positions and orders, across markets (dollars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_exposure: Option<Money>,
}

/// A user plugin: the runtime loads `module` and instantiates `class` with `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub module: String,
    pub class: String,
    /// Free-form parameters handed to the plugin.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
}

/// Provenance of the model: what it was trained on and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// First snapshot time used (train + validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_start: Option<DateTime<Utc>>,
    /// Last snapshot time used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_end: Option<DateTime<Utc>>,
    /// Markets used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_markets: Option<u64>,
    /// The labels file used, as given to the trainer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_file: Option<String>,
    /// SHA-256 of that labels file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_sha256: Option<String>,
    /// Random seed of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Free-form metrics summary (Brier, log loss, P&L, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metrics: Map<String, Value>,
}

/// One validation problem: the field's path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem [`Strategy::validate`] found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{n} problem{s}: {list}", n = problems.len(), s = if problems.len() == 1 { "" } else { "s" },
        list = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ValidationError {
    pub problems: Vec<Problem>,
}

/// Errors loading, validating or saving a strategy.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Not JSON at all.
    #[error("{file}: invalid JSON: {message}")]
    Json { file: String, message: String },
    /// An unknown, missing or mistyped field, with its path (`risk.cooldown_s`).
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: invalid strategy: {source}")]
    Invalid {
        file: String,
        source: ValidationError,
    },
    #[error("weights {path}: sha256 is {actual}, the strategy says {expected}", path = path.display())]
    WeightsMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("strategy has no model section")]
    NoModel,
}

impl Strategy {
    pub const SCHEMA: &'static str = "strategy/v1";

    /// Reads, parses (strictly), validates and resolves `model.weights` against the file's
    /// folder.
    pub fn load(path: &Path) -> Result<Strategy, StrategyError> {
        let text = std::fs::read_to_string(path).map_err(|source| StrategyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let mut s = Self::parse_str(&text, &file)?;
        s.validate().map_err(|source| StrategyError::Invalid {
            file: file.clone(),
            source,
        })?;
        if let Some(m) = s.model.as_mut() {
            m.weights = base_dir(path).join(&m.weights);
        }
        Ok(s)
    }

    /// Parses without validating or resolving paths; `file` names the origin in errors.
    pub fn parse_str(text: &str, file: &str) -> Result<Strategy, StrategyError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed: Result<Strategy, _> = serde_path_to_error::deserialize(&mut de);
        let s = parsed.map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return StrategyError::Json {
                    file: file.to_string(),
                    message: inner.to_string(),
                };
            }
            let message = inner.to_string();
            StrategyError::Field {
                file: file.to_string(),
                field: field_path(&path, &message),
                message,
            }
        })?;
        // Trailing garbage after the object is a syntax error too.
        de.end().map_err(|e| StrategyError::Json {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        Ok(s)
    }

    /// Checks every range and cross-field rule; reports all problems at once.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut c = Checks::default();
        self.check(&mut c);
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { problems: c.0 })
        }
    }

    /// Writes the strategy to `path` atomically (validated first), with `model.weights`
    /// relative to `path`'s folder when it can be.
    pub fn save(&self, path: &Path) -> Result<(), StrategyError> {
        let file = path.display().to_string();
        self.validate().map_err(|source| StrategyError::Invalid {
            file: file.clone(),
            source,
        })?;
        let text = self.to_json_for(&base_dir(path));
        write_atomic(path, text.as_bytes()).map_err(|source| StrategyError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The file text as it would be written into `dir`: pretty JSON, fields in declaration
    /// order, trailing newline.
    pub fn to_json_for(&self, dir: &Path) -> String {
        let mut out = self.clone();
        if let Some(m) = out.model.as_mut() {
            if m.weights.is_absolute() {
                m.weights = relative_to(&m.weights, dir);
            }
        }
        let mut s = serde_json::to_string_pretty(&out).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The resolved weights path, if the strategy has a model.
    pub fn weights_path(&self) -> Option<&Path> {
        self.model.as_ref().map(|m| m.weights.as_path())
    }

    /// Hashes the weights file and compares it with `model.weights_sha256`.
    pub fn verify_weights(&self) -> Result<(), StrategyError> {
        let m = self.model.as_ref().ok_or(StrategyError::NoModel)?;
        let actual = sha256_file(&m.weights).map_err(|source| StrategyError::Io {
            path: m.weights.clone(),
            source,
        })?;
        if actual.eq_ignore_ascii_case(&m.weights_sha256) {
            Ok(())
        } else {
            Err(StrategyError::WeightsMismatch {
                path: m.weights.clone(),
                expected: m.weights_sha256.clone(),
                actual,
            })
        }
    }

    fn check(&self, c: &mut Checks) {
        if self.name.trim().is_empty() {
            c.fail("name", "must not be empty");
        } else if self.name.chars().any(char::is_control) {
            c.fail("name", "contains control characters");
        }
        self.check_markets(c);
        match self.strategy_type {
            StrategyType::RnnEdgeV1 => {
                if self.model.is_none() {
                    c.fail("model", "required when strategy_type is rnn_edge_v1");
                }
                if self.plugin.is_some() {
                    c.fail("plugin", "only allowed when strategy_type is plugin");
                }
            }
            StrategyType::Plugin => {
                if self.plugin.is_none() {
                    c.fail("plugin", "required when strategy_type is plugin");
                }
            }
        }
        if let Some(m) = &self.model {
            m.check(c);
        }
        self.signals.check(c);
        self.execution.check(c, &self.risk);
        self.risk.check(c);
        if let Some(p) = &self.plugin {
            for (field, v) in [("plugin.module", &p.module), ("plugin.class", &p.class)] {
                if let Some(problem) = ident_problem(v) {
                    c.fail(field, problem);
                }
            }
        }
        if let Some(t) = &self.training {
            if let (Some(a), Some(b)) = (t.data_start, t.data_end) {
                if a > b {
                    c.fail(
                        "training.data_start",
                        format!("{a} is after training.data_end {b}"),
                    );
                }
            }
            if let Some(h) = &t.labels_sha256 {
                if !is_sha256_hex(h) {
                    c.fail("training.labels_sha256", "must be 64 hex digits");
                }
            }
        }
    }

    fn check_markets(&self, c: &mut Checks) {
        let m = &self.markets;
        if m.series_ticker.is_none() && m.tickers.is_empty() {
            c.fail("markets", "give series_ticker and/or tickers");
        }
        if let Some(s) = &m.series_ticker {
            if let Some(p) = ident_problem(s.as_str()) {
                c.fail("markets.series_ticker", p);
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in m.tickers.iter().enumerate() {
            let path = format!("markets.tickers[{i}]");
            if let Some(p) = ident_problem(t.as_str()) {
                c.fail(&path, p);
                continue;
            }
            if !seen.insert(t.as_str()) {
                c.fail(&path, format!("{t} is listed twice"));
            }
            if let Some(s) = &m.series_ticker {
                if !t.as_str().starts_with(&format!("{s}-")) {
                    c.fail(&path, format!("{t} is not a market of series {s}"));
                }
            }
        }
    }
}

impl ModelSpec {
    fn check(&self, c: &mut Checks) {
        if self.weights.as_os_str().is_empty() {
            c.fail("model.weights", "must name the weights file");
        }
        if !is_sha256_hex(&self.weights_sha256) {
            c.fail(
                "model.weights_sha256",
                format!(
                    "must be 64 hex digits, got {} characters",
                    self.weights_sha256.len()
                ),
            );
        }
        if self.features.is_empty() {
            c.fail("model.features", "must list at least one feature");
        }
        let mut seen = BTreeSet::new();
        for (i, f) in self.features.iter().enumerate() {
            if f.name.trim().is_empty() {
                c.fail(format!("model.features[{i}].name"), "must not be empty");
            } else if !seen.insert(f.name.as_str()) {
                c.fail(
                    format!("model.features[{i}].name"),
                    format!("{:?} is listed twice", f.name),
                );
            }
            if !f.mean.is_finite() {
                c.fail(format!("model.features[{i}].mean"), "must be finite");
            }
            if !(f.std.is_finite() && f.std > 0.0) {
                c.fail(
                    format!("model.features[{i}].std"),
                    format!("must be finite and > 0, got {}", f.std),
                );
            }
        }
        if self.n_features != self.features.len() {
            c.fail(
                "model.n_features",
                format!(
                    "{} does not match the {} features listed",
                    self.n_features,
                    self.features.len()
                ),
            );
        }
        for (field, v) in [
            ("model.step_ms", self.step_ms as usize),
            ("model.seq_len", self.seq_len),
            ("model.hidden", self.hidden),
            ("model.layers", self.layers),
        ] {
            if v == 0 {
                c.fail(field, "must be > 0");
            }
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            c.fail(
                "model.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            );
        }
    }
}

impl Signals {
    fn check(&self, c: &mut Checks) {
        if self.min_edge < Money::ZERO || self.min_edge >= Money::from_cents(100) {
            c.fail(
                "signals.min_edge",
                format!(
                    "must be in [0, 1) dollars per contract, got {}",
                    self.min_edge
                ),
            );
        }
        if self.min_price >= self.max_price {
            c.fail(
                "signals.min_price",
                format!(
                    "{} must be below signals.max_price {}",
                    self.min_price, self.max_price
                ),
            );
        }
        if self.max_price >= Price::ONE {
            c.fail(
                "signals.max_price",
                "must be below 1.0000 (a $1 contract cannot gain)",
            );
        }
        if self.max_spread == Price::ZERO {
            c.fail("signals.max_spread", "must be > 0");
        }
        if let Some(max) = self.max_seconds_to_close {
            if max <= self.min_seconds_to_close {
                c.fail(
                    "signals.max_seconds_to_close",
                    format!(
                        "{max} must be above signals.min_seconds_to_close {}",
                        self.min_seconds_to_close
                    ),
                );
            }
        }
        if let Some(s) = self.min_ask_size {
            if s <= Count::ZERO {
                c.fail("signals.min_ask_size", "must be > 0 when given");
            }
        }
    }
}

impl Execution {
    fn check(&self, c: &mut Checks, risk: &Risk) {
        if self.limit_offset >= Price::from_cents(50).unwrap_or(Price::ONE) {
            c.fail(
                "execution.limit_offset",
                format!(
                    "{} is implausibly large (prices are dollars: 1 cent is \"0.0100\")",
                    self.limit_offset
                ),
            );
        }
        if self.contracts_per_order <= Count::ZERO {
            c.fail("execution.contracts_per_order", "must be > 0");
        } else if self.contracts_per_order > risk.max_contracts_per_market {
            c.fail(
                "execution.contracts_per_order",
                format!(
                    "{} exceeds risk.max_contracts_per_market {}",
                    self.contracts_per_order, risk.max_contracts_per_market
                ),
            );
        }
        if self.post_only && self.time_in_force != TimeInForce::GoodTillCanceled {
            c.fail(
                "execution.post_only",
                "needs time_in_force good_till_canceled (a post-only IOC/FOK never fills)",
            );
        }
        match self.expiration_s {
            Some(_) if self.time_in_force != TimeInForce::GoodTillCanceled => c.fail(
                "execution.expiration_s",
                "only allowed with time_in_force good_till_canceled",
            ),
            Some(0) => c.fail("execution.expiration_s", "must be > 0"),
            _ => {}
        }
    }
}

impl Risk {
    fn check(&self, c: &mut Checks) {
        if self.max_contracts_per_market <= Count::ZERO {
            c.fail("risk.max_contracts_per_market", "must be > 0");
        }
        if self.max_open_markets == 0 {
            c.fail("risk.max_open_markets", "must be > 0");
        }
        if self.max_orders_per_minute == 0 {
            c.fail("risk.max_orders_per_minute", "must be > 0");
        }
        if self.max_daily_loss <= Money::ZERO {
            c.fail(
                "risk.max_daily_loss",
                "must be a positive amount of dollars",
            );
        }
        if let Some(x) = self.max_total_exposure {
            if x <= Money::ZERO {
                c.fail("risk.max_total_exposure", "must be > 0 when given");
            }
        }
    }
}

#[derive(Default)]
struct Checks(Vec<Problem>);

impl Checks {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// The field path for an error: serde_path_to_error stops at the struct for an unknown field,
/// so the unknown name is appended (`risk` + `max_contracts_per_markt`).
fn field_path(path: &str, message: &str) -> String {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next());
    match unknown {
        Some(name) if path == "." => name.to_string(),
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ if path.is_empty() => ".".to_string(),
        _ => path.to_string(),
    }
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Lexically normalised absolute path (`.` dropped, `..` applied), without touching the disk.
fn normalize(p: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(p).ok()?;
    let mut out = PathBuf::new();
    for comp in abs.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// `target` relative to `dir` (`../a/model.safetensors`), or `target` unchanged when they
/// share nothing below the root.
fn relative_to(target: &Path, dir: &Path) -> PathBuf {
    let (Some(t), Some(d)) = (normalize(target), normalize(dir)) else {
        return target.to_path_buf();
    };
    let tc: Vec<_> = t.components().collect();
    let dc: Vec<_> = d.components().collect();
    let common = tc.iter().zip(&dc).take_while(|(a, b)| a == b).count();
    let shares_below_root = tc[..common]
        .iter()
        .any(|c| matches!(c, Component::Normal(_)));
    if !shares_below_root {
        return target.to_path_buf();
    }
    let mut rel = PathBuf::new();
    for _ in common..dc.len() {
        rel.push("..");
    }
    for c in &tc[common..] {
        rel.push(c.as_os_str());
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../../config/strategy.example.json");

    fn example() -> Strategy {
        Strategy::parse_str(EXAMPLE, "strategy.example.json").unwrap()
    }

    fn field_err(text: &str) -> (String, String) {
        match Strategy::parse_str(text, "s.json") {
            Err(StrategyError::Field { field, message, .. }) => (field, message),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    /// The example with one JSON edit applied at a path.
    fn edited(f: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        f(&mut v);
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn example_file_loads_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/strategy.example.json");
        let s = Strategy::load(&path).unwrap();
        assert_eq!(s.strategy_type, StrategyType::RnnEdgeV1);
        assert_eq!(
            s.markets.series_ticker,
            Some(SeriesTicker::from("KXBTC15M"))
        );
        let m = s.model.as_ref().unwrap();
        assert_eq!(m.n_features, m.features.len());
        // Weights resolved against the file's folder.
        assert_eq!(m.weights, path.parent().unwrap().join("model.safetensors"));
        assert_eq!(s.signals.min_edge, Money::parse_dollars("0.03").unwrap());
        s.validate().unwrap();
    }

    #[test]
    fn save_load_round_trip_keeps_weights_relative() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let pa = a.join("strategy.json");
        std::fs::write(&pa, EXAMPLE).unwrap();
        let loaded = Strategy::load(&pa).unwrap();
        assert_eq!(loaded.weights_path().unwrap(), a.join("model.safetensors"));

        // Saved beside the original: identical on disk, weights still "model.safetensors".
        let pa2 = a.join("copy.json");
        loaded.save(&pa2).unwrap();
        let text = std::fs::read_to_string(&pa2).unwrap();
        assert!(text.contains(r#""weights": "model.safetensors""#), "{text}");
        assert_eq!(Strategy::load(&pa2).unwrap(), loaded);
        let v1: Value = serde_json::from_str(EXAMPLE).unwrap();
        let v2: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v1, v2, "round trip keeps every field");

        // Saved elsewhere: the path now climbs back to the same file.
        let pb = b.join("strategy.json");
        loaded.save(&pb).unwrap();
        let text = std::fs::read_to_string(&pb).unwrap();
        assert!(
            text.contains(r#""weights": "../a/model.safetensors""#),
            "{text}"
        );
        let from_b = Strategy::load(&pb).unwrap();
        assert_eq!(
            normalize(from_b.weights_path().unwrap()),
            normalize(&a.join("model.safetensors"))
        );

        // An invalid strategy is not written.
        let mut bad = loaded.clone();
        bad.risk.max_open_markets = 0;
        let pc = b.join("bad.json");
        assert!(matches!(bad.save(&pc), Err(StrategyError::Invalid { .. })));
        assert!(!pc.exists());
    }

    #[test]
    fn verify_weights_checks_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("strategy.json");
        std::fs::write(dir.path().join("model.safetensors"), b"weights").unwrap();
        let good = super::super::sha256_file(&dir.path().join("model.safetensors")).unwrap();
        let text = edited(|v| v["model"]["weights_sha256"] = Value::String(good.clone()));
        std::fs::write(&p, text).unwrap();
        Strategy::load(&p).unwrap().verify_weights().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"tampered").unwrap();
        let e = Strategy::load(&p).unwrap().verify_weights().unwrap_err();
        assert!(matches!(e, StrategyError::WeightsMismatch { .. }), "{e}");
    }

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let text = edited(|v| {
            let r = v["risk"].as_object_mut().unwrap();
            let x = r.remove("max_contracts_per_market").unwrap();
            r.insert("max_contracts_per_markt".into(), x);
        });
        let (field, message) = field_err(&text);
        assert_eq!(field, "risk.max_contracts_per_markt");
        assert!(message.contains("unknown field"), "{message}");

        // Nested deeper: inside an array element.
        let text = edited(|v| v["model"]["features"][1]["stdev"] = Value::from(1.0));
        let (field, _) = field_err(&text);
        assert_eq!(field, "model.features[1].stdev");

        // Top level.
        let text = edited(|v| v["riskk"] = Value::Object(Map::new()));
        assert_eq!(field_err(&text).0, "riskk");

        // Free-form maps accept anything.
        let text = edited(|v| {
            v["training"]["metrics"]["anything"] = serde_json::json!({"nested": [1, 2]})
        });
        Strategy::parse_str(&text, "s.json").unwrap();

        // The file name is in the message.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.json");
        let text = edited(|v| v["execution"]["time_in_forse"] = Value::from("x"));
        std::fs::write(&p, text).unwrap();
        let e = Strategy::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("mine.json: execution.time_in_forse: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn mistyped_and_missing_fields_are_reported_with_their_path() {
        let text = edited(|v| v["risk"]["cooldown_s"] = Value::from("ten"));
        assert_eq!(field_err(&text).0, "risk.cooldown_s");
        // A price that is not a dollar string in range.
        let text = edited(|v| v["signals"]["max_price"] = Value::from("1.5"));
        let (field, message) = field_err(&text);
        assert_eq!(field, "signals.max_price");
        assert!(message.contains("outside"), "{message}");
        // Counts are strings, not numbers.
        let text = edited(|v| v["execution"]["contracts_per_order"] = Value::from(5));
        assert_eq!(field_err(&text).0, "execution.contracts_per_order");
        let text = edited(|v| v["model"]["device"] = Value::from("gpu"));
        let (field, message) = field_err(&text);
        assert_eq!(field, "model.device");
        assert!(message.contains("cuda:<n>"), "{message}");
        let text = edited(|v| v["strategy_type"] = Value::from("lstm"));
        assert_eq!(field_err(&text).0, "strategy_type");
        let text = edited(|v| v["schema"] = Value::from("strategy/v2"));
        assert_eq!(field_err(&text).0, "schema");
        let text = edited(|v| {
            v["signals"].as_object_mut().unwrap().remove("min_edge");
        });
        let (field, message) = field_err(&text);
        assert_eq!(field, "signals");
        assert!(message.contains("min_edge"), "{message}");
        // Not JSON.
        assert!(matches!(
            Strategy::parse_str("{\"schema\": ", "s.json"),
            Err(StrategyError::Json { .. })
        ));
    }

    #[test]
    fn validation_reports_every_problem_at_once() {
        let mut s = example();
        s.signals.min_price = Price::parse_dollars("0.80").unwrap();
        s.signals.max_price = Price::parse_dollars("0.20").unwrap();
        s.signals.min_edge = Money::parse_dollars("-0.01").unwrap();
        s.risk.max_open_markets = 0;
        s.risk.max_daily_loss = Money::ZERO;
        s.execution.contracts_per_order = Count::parse("500").unwrap();
        let m = s.model.as_mut().unwrap();
        m.weights_sha256 = "abc".into();
        m.features[0].std = 0.0;
        m.n_features = 99;
        m.dropout = 1.0;
        s.plugin = Some(PluginSpec {
            module: "x".into(),
            class: "Y".into(),
            params: Map::new(),
        });
        let e = s.validate().unwrap_err();
        let paths: Vec<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "signals.min_price",
            "signals.min_edge",
            "risk.max_open_markets",
            "risk.max_daily_loss",
            "execution.contracts_per_order",
            "model.weights_sha256",
            "model.features[0].std",
            "model.n_features",
            "model.dropout",
            "plugin",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        assert_eq!(e.problems.len(), 10, "{e}");
        assert!(e.to_string().starts_with("10 problems: "), "{e}");
    }

    #[test]
    fn cross_field_rules() {
        let problems = |s: &Strategy| -> Vec<String> {
            s.validate()
                .err()
                .map(|e| e.problems.iter().map(|p| p.path.clone()).collect())
                .unwrap_or_default()
        };
        // rnn_edge_v1 needs a model.
        let mut s = example();
        s.model = None;
        assert_eq!(problems(&s), vec!["model"]);
        // plugin needs a plugin section, and then a model is optional.
        let mut s = example();
        s.strategy_type = StrategyType::Plugin;
        assert_eq!(problems(&s), vec!["plugin"]);
        s.plugin = Some(PluginSpec {
            module: "my_strats.momentum".into(),
            class: "Momentum".into(),
            params: serde_json::from_str(r#"{"lookback_s": 30}"#).unwrap(),
        });
        s.model = None;
        assert!(problems(&s).is_empty());
        s.plugin.as_mut().unwrap().class = " ".into();
        assert_eq!(problems(&s), vec!["plugin.class"]);
        // markets: nothing, duplicates, foreign tickers.
        let mut s = example();
        s.markets.series_ticker = None;
        assert_eq!(problems(&s), vec!["markets"]);
        s.markets.series_ticker = Some("KXBTC15M".into());
        s.markets.tickers = vec![
            "KXBTC15M-26MAY110145-45".into(),
            "KXBTC15M-26MAY110145-45".into(),
            "KXETH15M-26MAY110145-45".into(),
        ];
        assert_eq!(
            problems(&s),
            vec!["markets.tickers[1]", "markets.tickers[2]"]
        );
        // Execution rules.
        let mut s = example();
        s.execution.post_only = true;
        s.execution.expiration_s = Some(30);
        s.execution.time_in_force = TimeInForce::ImmediateOrCancel;
        assert_eq!(
            problems(&s),
            vec!["execution.post_only", "execution.expiration_s"]
        );
        s.execution.time_in_force = TimeInForce::GoodTillCanceled;
        assert!(problems(&s).is_empty());
        s.execution.limit_offset = Price::parse_dollars("0.5").unwrap();
        assert_eq!(problems(&s), vec!["execution.limit_offset"]);
        // Signals windows.
        let mut s = example();
        s.signals.max_seconds_to_close = Some(s.signals.min_seconds_to_close);
        s.signals.max_price = Price::ONE;
        assert_eq!(
            problems(&s),
            vec!["signals.max_price", "signals.max_seconds_to_close"]
        );
        // Training provenance.
        let mut s = example();
        let t = s.training.as_mut().unwrap();
        t.labels_sha256 = Some("zz".into());
        std::mem::swap(&mut t.data_start, &mut t.data_end);
        assert_eq!(
            problems(&s),
            vec!["training.data_start", "training.labels_sha256"]
        );
    }

    #[test]
    fn device_text_forms() {
        for s in ["cpu", "cuda", "cuda:1", "mps", "auto"] {
            let d: Device = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("CPU".parse::<Device>().is_err());
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_to(Path::new("/data/run/model.st"), Path::new("/data/run")),
            PathBuf::from("model.st")
        );
        assert_eq!(
            relative_to(Path::new("/data/run/model.st"), Path::new("/data/other/x")),
            PathBuf::from("../../run/model.st")
        );
        assert_eq!(
            relative_to(Path::new("/data/./run/../run/m"), Path::new("/data/run/")),
            PathBuf::from("m")
        );
        // Nothing in common below the root: stays absolute.
        assert_eq!(
            relative_to(Path::new("/opt/m"), Path::new("/home/u")),
            PathBuf::from("/opt/m")
        );
    }
}
