//! The markets sidecar: `<out_dir>/<SERIES>_markets.jsonl`, written beside the snapshots.
//!
//! One JSON object per line, one line per market and lifecycle change, append-only: a line
//! records what we learned about a market at `ts_ms` (our clock) and from where (`source`).
//! Fields that a line does not know are absent, never `null`-means-erase: [`fold_latest`]
//! combines the lines into each market's latest state. Readers skip unknown fields, and unknown
//! values of the open enums ([`MarketStatus`], [`MarketResult`], [`LifecycleEvent`],
//! [`StrikeType`], [`RecordSource`]) are kept verbatim, so an old reader survives a new writer.
//!
//! A reader accepts the file plain or gzip-compressed (one or many gzip members), detected by
//! content, and tolerates a partial last line (a writer killed mid-line).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{de_opt_nonempty, open_str_enum, read_text_maybe_gz};
use crate::ids::{MarketTicker, SeriesTicker};
use crate::money::{FixedError, Price};

/// The sidecar's path for a series: `<out_dir>/<SERIES>_markets.jsonl`.
pub fn markets_path(out_dir: &Path, series: &SeriesTicker) -> PathBuf {
    out_dir.join(format!("{}_markets.jsonl", series.as_str()))
}

open_str_enum! {
    /// A market's status as Kalshi reports it (API.md §4.1, §4.5).
    pub enum MarketStatus {
        Initialized => "initialized",
        Inactive => "inactive",
        Active => "active",
        Closed => "closed",
        Determined => "determined",
        Disputed => "disputed",
        Amended => "amended",
        Finalized => "finalized",
        /// Older API versions' name for a paid-out market.
        Settled => "settled",
    }
}

impl MarketStatus {
    /// Lifecycle phase: 0 listed, 1 trading (active or paused), 2 closed, 3 result known
    /// (determined, disputed, amended), 4 paid out. `None` for unknown statuses.
    pub fn phase(&self) -> Option<u8> {
        Some(match self {
            MarketStatus::Initialized => 0,
            MarketStatus::Active | MarketStatus::Inactive => 1,
            MarketStatus::Closed => 2,
            MarketStatus::Determined | MarketStatus::Disputed | MarketStatus::Amended => 3,
            MarketStatus::Finalized | MarketStatus::Settled => 4,
            MarketStatus::Other(_) => return None,
        })
    }
}

open_str_enum! {
    /// How a market resolved. Kalshi sends `yes|no|scalar|""`; `void` is for voided markets.
    /// An empty string on the wire means "not yet" and reads as `None`.
    pub enum MarketResult {
        Yes => "yes",
        No => "no",
        Scalar => "scalar",
        Void => "void",
    }
}

open_str_enum! {
    /// What caused a sidecar line: a `market_lifecycle_v2` event type (API.md §5.6), absent for
    /// a plain REST read.
    pub enum LifecycleEvent {
        Created => "created",
        Activated => "activated",
        Deactivated => "deactivated",
        CloseDateUpdated => "close_date_updated",
        Determined => "determined",
        Settled => "settled",
        MetadataUpdated => "metadata_updated",
        PriceLevelStructureUpdated => "price_level_structure_updated",
    }
}

open_str_enum! {
    /// Where a sidecar line's facts came from.
    pub enum RecordSource {
        /// A REST read (`GET /markets`, `GET /markets/{ticker}`, historical markets).
        Rest => "rest",
        /// A WebSocket `market_lifecycle_v2` message.
        Ws => "ws",
        /// The local simulator (`kalshi_sim generate`).
        Sim => "sim",
        /// Recovered from a raw capture file.
        Capture => "capture",
    }
}

open_str_enum! {
    /// Kalshi's `strike_type` (API.md §4.1).
    pub enum StrikeType {
        Greater => "greater",
        GreaterOrEqual => "greater_or_equal",
        Less => "less",
        LessOrEqual => "less_or_equal",
        Between => "between",
        Functional => "functional",
        Custom => "custom",
        Structured => "structured",
    }
}

/// An exact decimal number, `mantissa × 10^-scale`: strikes and other underlying values (USD
/// for BTC), which are not money we pay and are not bounded like a [`Price`].
///
/// On disk it is a JSON number, as Kalshi sends it (`63485.16`); a decimal string is accepted
/// too. At most 15 significant digits, so the JSON number text round-trips exactly through
/// `f64`. Normalised (no trailing fractional zeros), so equal values compare equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i64,
    scale: u32,
}

impl Decimal {
    /// Largest mantissa magnitude + 1 (15 significant digits).
    const MANTISSA_LIMIT: i64 = 1_000_000_000_000_000;
    /// Most decimal places accepted.
    pub const MAX_SCALE: u32 = 15;

    /// Checked constructor: `mantissa × 10^-scale`.
    pub fn new(mantissa: i64, scale: u32) -> Result<Decimal, FixedError> {
        let (mut m, mut s) = (mantissa, scale);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        if s > Self::MAX_SCALE {
            return Err(FixedError::TooPrecise(
                format!("{mantissa}e-{scale}"),
                Self::MAX_SCALE,
            ));
        }
        if m.unsigned_abs() >= Self::MANTISSA_LIMIT as u64 {
            return Err(FixedError::OutOfRange(format!(
                "{mantissa}e-{scale} (more than 15 significant digits)"
            )));
        }
        Ok(Decimal {
            mantissa: m,
            scale: s,
        })
    }

    /// Parses `"63485.16"`, `"-2"`, `"0.5"`.
    pub fn parse(text: &str) -> Result<Decimal, FixedError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(FixedError::Empty);
        }
        let (neg, body) = match t.as_bytes()[0] {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(FixedError::Invalid(text.to_string()));
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 15 {
            return Err(FixedError::OutOfRange(format!(
                "{text} (more than 15 significant digits)"
            )));
        }
        let m: i64 = if digits.is_empty() {
            0
        } else {
            digits
                .parse()
                .map_err(|_| FixedError::Invalid(text.to_string()))?
        };
        Decimal::new(if neg { -m } else { m }, frac.len() as u32)
    }

    /// From a float, through its shortest round-trip decimal text (exact for any value that
    /// was written with at most 15 significant digits).
    pub fn from_f64(v: f64) -> Result<Decimal, FixedError> {
        if !v.is_finite() {
            return Err(FixedError::Invalid(v.to_string()));
        }
        Decimal::parse(&format!("{v}"))
    }

    pub fn mantissa(self) -> i64 {
        self.mantissa
    }

    pub fn scale(self) -> u32 {
        self.scale
    }

    /// The nearest float (for features and plots only).
    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // |mantissa| < 1e15 and scale ≤ 15: the products fit an i128 easily.
        let s = self.scale.max(other.scale);
        let a = i128::from(self.mantissa) * 10i128.pow(s - self.scale);
        let b = i128::from(other.mantissa) * 10i128.pow(s - other.scale);
        a.cmp(&b)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mantissa);
        }
        let a = self.mantissa.unsigned_abs();
        let p = 10u64.pow(self.scale);
        let sign = if self.mantissa < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:0w$}", a / p, a % p, w = self.scale as usize)
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

impl std::str::FromStr for Decimal {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse(s)
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.scale == 0 {
            s.serialize_i64(self.mantissa)
        } else {
            s.serialize_f64(self.to_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number or decimal string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
                Decimal::new(v, 0).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("number out of range"))?;
                Decimal::new(v, 0).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
                Decimal::from_f64(v).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                Decimal::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// One line of the markets sidecar. Build with [`MarketRecord::new`], set the fields you know,
/// and [`MarketRecord::validate`] (the writer and the reader both do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMarketRecord")]
pub struct MarketRecord {
    /// When we learned this (our UTC clock, ms since the Unix epoch).
    pub ts_ms: i64,
    pub ticker: MarketTicker,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_ticker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_ticker: Option<SeriesTicker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<MarketStatus>,
    /// The lifecycle event that caused this line; absent for a plain REST read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<LifecycleEvent>,
    pub source: RecordSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strike_type: Option<StrikeType>,
    /// Lowest underlying value that resolves YES (USD for BTC), when the market has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_strike: Option<Decimal>,
    /// Highest underlying value that resolves YES, when the market has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_strike: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<MarketResult>,
    /// YES payout per contract once determined (`"1.0000"` / `"0.0000"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settlement_value: Option<Price>,
    /// The observed underlying value used to settle (Kalshi's `expiration_value`, verbatim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_value: Option<String>,
    /// When the result was determined (Kalshi's `determination_ts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub determined_time: Option<DateTime<Utc>>,
    /// When the market was paid out (Kalshi's `settlement_ts` / `settled_ts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_time: Option<DateTime<Utc>>,
}

/// The on-disk shape, before validation. Unknown fields are ignored (append-only history).
#[derive(Deserialize)]
struct RawMarketRecord {
    ts_ms: i64,
    ticker: MarketTicker,
    #[serde(default, deserialize_with = "de_opt_string")]
    event_ticker: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    series_ticker: Option<String>,
    #[serde(default, deserialize_with = "de_opt_nonempty")]
    status: Option<MarketStatus>,
    #[serde(default, deserialize_with = "de_opt_nonempty")]
    event: Option<LifecycleEvent>,
    source: RecordSource,
    #[serde(default)]
    open_time: Option<DateTime<Utc>>,
    #[serde(default)]
    close_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_opt_nonempty")]
    strike_type: Option<StrikeType>,
    #[serde(default)]
    floor_strike: Option<Decimal>,
    #[serde(default)]
    cap_strike: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_nonempty")]
    result: Option<MarketResult>,
    #[serde(default)]
    settlement_value: Option<Price>,
    #[serde(default, deserialize_with = "de_opt_string")]
    expiration_value: Option<String>,
    #[serde(default)]
    determined_time: Option<DateTime<Utc>>,
    #[serde(default)]
    settled_time: Option<DateTime<Utc>>,
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.trim().is_empty()))
}

impl TryFrom<RawMarketRecord> for MarketRecord {
    type Error = MarketsError;
    fn try_from(r: RawMarketRecord) -> Result<Self, Self::Error> {
        let rec = MarketRecord {
            ts_ms: r.ts_ms,
            ticker: r.ticker,
            event_ticker: r.event_ticker,
            series_ticker: r.series_ticker.map(SeriesTicker::new),
            status: r.status,
            event: r.event,
            source: r.source,
            open_time: r.open_time,
            close_time: r.close_time,
            strike_type: r.strike_type,
            floor_strike: r.floor_strike,
            cap_strike: r.cap_strike,
            result: r.result,
            settlement_value: r.settlement_value,
            expiration_value: r.expiration_value,
            determined_time: r.determined_time,
            settled_time: r.settled_time,
        };
        rec.validate()?;
        Ok(rec)
    }
}

/// Errors reading, writing or validating the markets sidecar.
#[derive(Debug, thiserror::Error)]
pub enum MarketsError {
    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: {message}", path = path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("invalid market record: {0}")]
    Invalid(String),
}

/// Why a ticker-like string is unusable, if it is.
pub(crate) fn ident_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("is empty")
    } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else {
        None
    }
}

impl MarketRecord {
    /// Checked constructor: a line about `ticker` learned at `ts_ms` from `source`; every other
    /// field starts unknown.
    pub fn new(
        ts_ms: i64,
        ticker: MarketTicker,
        source: RecordSource,
    ) -> Result<MarketRecord, MarketsError> {
        let rec = MarketRecord {
            ts_ms,
            ticker,
            event_ticker: None,
            series_ticker: None,
            status: None,
            event: None,
            source,
            open_time: None,
            close_time: None,
            strike_type: None,
            floor_strike: None,
            cap_strike: None,
            result: None,
            settlement_value: None,
            expiration_value: None,
            determined_time: None,
            settled_time: None,
        };
        rec.validate()?;
        Ok(rec)
    }

    /// Checks the record's invariants and reports every problem at once.
    pub fn validate(&self) -> Result<(), MarketsError> {
        let mut problems = Vec::new();
        if self.ts_ms < 0 {
            problems.push(format!("ts_ms {} is negative", self.ts_ms));
        }
        if let Some(p) = ident_problem(self.ticker.as_str()) {
            problems.push(format!("ticker {p}"));
        }
        if let Some(p) = self.event_ticker.as_deref().and_then(ident_problem) {
            problems.push(format!("event_ticker {p}"));
        }
        if let Some(p) = self
            .series_ticker
            .as_ref()
            .and_then(|s| ident_problem(s.as_str()))
        {
            problems.push(format!("series_ticker {p}"));
        }
        if let (Some(o), Some(c)) = (self.open_time, self.close_time) {
            if o > c {
                problems.push(format!("open_time {o} is after close_time {c}"));
            }
        }
        if let (Some(f), Some(c)) = (self.floor_strike, self.cap_strike) {
            if f > c {
                problems.push(format!("floor_strike {f} is above cap_strike {c}"));
            }
        }
        match (&self.result, self.settlement_value) {
            (Some(MarketResult::Yes), Some(v)) if v != Price::ONE => problems.push(format!(
                "result yes with settlement_value {v} (expected 1.0000)"
            )),
            (Some(MarketResult::No), Some(v)) if v != Price::ZERO => problems.push(format!(
                "result no with settlement_value {v} (expected 0.0000)"
            )),
            _ => {}
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(MarketsError::Invalid(format!(
                "{}: {}",
                self.ticker,
                problems.join("; ")
            )))
        }
    }

    /// The series: `series_ticker` when known, else the ticker's prefix.
    pub fn series(&self) -> SeriesTicker {
        self.series_ticker
            .clone()
            .unwrap_or_else(|| self.ticker.series())
    }

    /// The line as written to the sidecar (compact JSON, no newline).
    pub fn to_json_line(&self) -> String {
        // Serialising plain data into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Folds a later line about the same market into this state (see [`fold_latest`]).
    fn absorb(&mut self, new: MarketRecord) {
        self.ts_ms = self.ts_ms.max(new.ts_ms);
        self.source = new.source;
        if new.event.is_some() {
            self.event = new.event;
        }
        if let Some(s) = new.status {
            if status_may_replace(self.status.as_ref(), &s) {
                self.status = Some(s);
            }
        }
        macro_rules! take {
            ($($f:ident),*) => {$(
                if new.$f.is_some() {
                    self.$f = new.$f;
                }
            )*};
        }
        take!(
            event_ticker,
            series_ticker,
            open_time,
            close_time,
            strike_type,
            floor_strike,
            cap_strike,
            result,
            settlement_value,
            expiration_value,
            determined_time,
            settled_time
        );
    }
}

/// Whether a later line's status replaces the current one: a status never moves back from
/// "result known" (determined/disputed/amended) to before it, nor from paid out
/// (finalized/settled) to anything else, because a lagging REST cache must not undo a
/// lifecycle event. Before the result is known anything goes (a paused market resumes, a
/// closed one can reopen when its close date moves). Unknown statuses apply unless the market
/// is already paid out.
fn status_may_replace(cur: Option<&MarketStatus>, new: &MarketStatus) -> bool {
    let Some(cur) = cur else { return true };
    match (cur.phase(), new.phase()) {
        (Some(c), Some(n)) => c < 3 || n >= c,
        (Some(c), None) => c < 4,
        (None, _) => true,
    }
}

/// Folds sidecar lines into the latest state of each market, deterministically:
///
/// 1. lines are taken in `ts_ms` order; equal `ts_ms` keep their input order (pass the files
///    oldest first);
/// 2. a field a line carries replaces the earlier value; an absent field never erases one;
/// 3. `status` follows the rule of a lifecycle that does not go backwards once the result is
///    known (see the sidecar section of `docs/FORMATS.md`);
/// 4. the folded `ts_ms`, `source` and `event` are those of the last line (the last event that
///    carried one).
pub fn fold_latest<I>(records: I) -> BTreeMap<MarketTicker, MarketRecord>
where
    I: IntoIterator<Item = MarketRecord>,
{
    let mut lines: Vec<(usize, MarketRecord)> = records.into_iter().enumerate().collect();
    lines.sort_by_key(|(i, r)| (r.ts_ms, *i));
    let mut out: BTreeMap<MarketTicker, MarketRecord> = BTreeMap::new();
    for (_, rec) in lines {
        match out.get_mut(&rec.ticker) {
            Some(cur) => cur.absorb(rec),
            None => {
                out.insert(rec.ticker.clone(), rec);
            }
        }
    }
    out
}

/// What [`read_markets`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketsRead {
    pub records: Vec<MarketRecord>,
    /// The 1-based number of an unparseable last line that was skipped because the file ends
    /// mid-line (a writer killed while writing), if any.
    pub skipped_partial_line: Option<usize>,
    /// The gzip stream ended early (a truncated last member); `records` holds what was readable.
    pub truncated_gzip: bool,
}

/// Reads a markets sidecar (plain or gzip). A malformed line is an error naming the file and
/// line, except a partial last line, which is skipped and reported in the result.
pub fn read_markets(path: &Path) -> Result<MarketsRead, MarketsError> {
    let (text, truncated_gzip) = read_text_maybe_gz(path).map_err(|source| MarketsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut read = parse_markets_text(&text, path, truncated_gzip)?;
    read.truncated_gzip = truncated_gzip;
    if truncated_gzip {
        tracing::warn!(file = %path.display(), "markets sidecar: gzip stream truncated, read what was complete");
    }
    if let Some(line) = read.skipped_partial_line {
        tracing::warn!(file = %path.display(), line, "markets sidecar: skipped a partial last line");
    }
    Ok(read)
}

/// Parses sidecar text; `path` only names the origin in errors.
pub fn parse_markets_text(
    text: &str,
    path: &Path,
    truncated: bool,
) -> Result<MarketsRead, MarketsError> {
    let ends_mid_line = truncated || !(text.is_empty() || text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    let mut skipped_partial_line = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<MarketRecord>(line) {
            Ok(r) => records.push(r),
            Err(e) if ends_mid_line && i + 1 == lines.len() && e.is_eof() => {
                skipped_partial_line = Some(i + 1);
            }
            Err(e) => {
                return Err(MarketsError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(MarketsRead {
        records,
        skipped_partial_line,
        truncated_gzip: false,
    })
}

/// Appends lines to a sidecar, creating it if needed. Every record is validated first, so
/// nothing is written when one is bad. A path ending in `.gz` gets one new gzip member.
pub fn append_markets(path: &Path, records: &[MarketRecord]) -> Result<(), MarketsError> {
    for r in records {
        r.validate()?;
    }
    let mut text = String::new();
    for r in records {
        text.push_str(&r.to_json_line());
        text.push('\n');
    }
    let io_err = |source| MarketsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).map_err(io_err)?;
        let member = enc.finish().map_err(io_err)?;
        f.write_all(&member).map_err(io_err)?;
    } else {
        f.write_all(text.as_bytes()).map_err(io_err)?;
    }
    f.flush().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn rec(ts: i64, ticker: &str, source: RecordSource) -> MarketRecord {
        MarketRecord::new(ts, MarketTicker::from(ticker), source).unwrap()
    }

    #[test]
    fn decimal_parses_normalises_and_orders() {
        let d = Decimal::parse("63485.160").unwrap();
        assert_eq!((d.mantissa(), d.scale()), (6348516, 2));
        assert_eq!(d.to_string(), "63485.16");
        assert_eq!(Decimal::parse("52200").unwrap().to_string(), "52200");
        assert_eq!(Decimal::parse("-0.5").unwrap().to_string(), "-0.5");
        assert_eq!(
            Decimal::parse("0.000").unwrap(),
            Decimal::new(0, 0).unwrap()
        );
        assert_eq!(Decimal::parse(".5").unwrap(), Decimal::new(5, 1).unwrap());
        assert!(Decimal::parse("1e5").is_err());
        assert!(Decimal::parse("").is_err());
        assert!(Decimal::parse("1.2.3").is_err());
        assert!(Decimal::parse("1234567890123456").is_err(), "16 digits");
        assert!(Decimal::parse("123456789012345").is_ok(), "15 digits");
        assert!(Decimal::parse("52299.99").unwrap() > Decimal::parse("52200").unwrap());
        assert!(Decimal::parse("-1").unwrap() < Decimal::parse("0.001").unwrap());
        assert_eq!(
            Decimal::parse("1.10")
                .unwrap()
                .cmp(&Decimal::parse("1.1").unwrap()),
            std::cmp::Ordering::Equal
        );
    }

    #[test]
    fn decimal_json_number_round_trip_is_exact() {
        for text in [
            "63485.16",
            "52299.99",
            "80938.41",
            "52200",
            "0.1",
            "-7.25",
            "99999.999",
        ] {
            let d: Decimal = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&d).unwrap(), text);
            assert_eq!(d, Decimal::parse(text).unwrap());
            let s: Decimal = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(s, d);
        }
        assert!(serde_json::from_str::<Decimal>("true").is_err());
    }

    #[test]
    fn record_round_trips_and_skips_unknown_fields() {
        let mut r = rec(
            1_778_477_400_000,
            "KXBTC15M-26MAY110145-45",
            RecordSource::Rest,
        );
        r.event_ticker = Some("KXBTC15M-26MAY110145".into());
        r.series_ticker = Some("KXBTC15M".into());
        r.status = Some(MarketStatus::Active);
        r.open_time = Some(t("2026-05-11T05:30:00Z"));
        r.close_time = Some(t("2026-05-11T05:45:00Z"));
        r.strike_type = Some(StrikeType::GreaterOrEqual);
        r.floor_strike = Some(Decimal::parse("80938.41").unwrap());
        r.validate().unwrap();
        let line = r.to_json_line();
        assert!(line.contains(r#""floor_strike":80938.41"#), "{line}");
        assert!(
            line.contains(r#""close_time":"2026-05-11T05:45:00Z""#),
            "{line}"
        );
        assert!(!line.contains("null"), "absent fields are omitted: {line}");
        let back: MarketRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);

        // A newer writer's extra fields and values: skipped / kept verbatim.
        let newer = r#"{"ts_ms":5,"ticker":"A-1","source":"grpc","status":"paused_v3",
            "event":"fee_changed","result":"","strike_type":"","yes_sub_title":"x","new":{"a":1}}"#;
        let r2: MarketRecord = serde_json::from_str(newer).unwrap();
        assert_eq!(r2.source, RecordSource::Other("grpc".into()));
        assert_eq!(r2.status, Some(MarketStatus::Other("paused_v3".into())));
        assert_eq!(r2.event, Some(LifecycleEvent::Other("fee_changed".into())));
        assert_eq!(r2.result, None, "Kalshi's empty result means not yet");
        assert_eq!(r2.strike_type, None);
        assert_eq!(r2.series(), SeriesTicker::from("A"));
    }

    #[test]
    fn invalid_records_are_rejected_with_every_problem() {
        let mut r = rec(1, "KX-1", RecordSource::Ws);
        r.open_time = Some(t("2026-05-11T06:00:00Z"));
        r.close_time = Some(t("2026-05-11T05:45:00Z"));
        r.floor_strike = Some(Decimal::parse("10").unwrap());
        r.cap_strike = Some(Decimal::parse("9.99").unwrap());
        r.result = Some(MarketResult::Yes);
        r.settlement_value = Some(Price::ZERO);
        let msg = r.validate().unwrap_err().to_string();
        for want in ["open_time", "floor_strike", "settlement_value"] {
            assert!(msg.contains(want), "{want} missing from {msg}");
        }
        assert!(MarketRecord::new(-1, "X".into(), RecordSource::Rest).is_err());
        assert!(MarketRecord::new(1, "".into(), RecordSource::Rest).is_err());
        assert!(MarketRecord::new(1, "A B".into(), RecordSource::Rest).is_err());
        // Deserialisation goes through the same checks.
        let bad =
            r#"{"ts_ms":1,"ticker":"A","source":"ws","result":"no","settlement_value":"1.0000"}"#;
        let e = serde_json::from_str::<MarketRecord>(bad).unwrap_err();
        assert!(e.to_string().contains("settlement_value"), "{e}");
        // A required field missing.
        assert!(serde_json::from_str::<MarketRecord>(r#"{"ticker":"A","source":"ws"}"#).is_err());
    }

    #[test]
    fn fold_takes_latest_fields_and_never_erases() {
        let tk = "KXBTC15M-26MAY110200-00";
        let mut created = rec(100, tk, RecordSource::Ws);
        created.event = Some(LifecycleEvent::Created);
        created.status = Some(MarketStatus::Initialized);
        created.open_time = Some(t("2026-05-11T05:45:00Z"));
        created.close_time = Some(t("2026-05-11T06:00:00Z"));
        created.event_ticker = Some("KXBTC15M-26MAY110200".into());

        let mut strike = rec(200, tk, RecordSource::Ws);
        strike.event = Some(LifecycleEvent::MetadataUpdated);
        strike.floor_strike = Some(Decimal::parse("80791.61").unwrap());

        let mut determined = rec(900, tk, RecordSource::Ws);
        determined.event = Some(LifecycleEvent::Determined);
        determined.status = Some(MarketStatus::Determined);
        determined.result = Some(MarketResult::Yes);
        determined.settlement_value = Some(Price::ONE);

        // A lagging REST read after the determination: still "closed", no result.
        let mut stale = rec(950, tk, RecordSource::Rest);
        stale.status = Some(MarketStatus::Closed);
        stale.close_time = Some(t("2026-05-11T06:00:00Z"));

        let other = rec(150, "KXBTC15M-26MAY110215-15", RecordSource::Rest);

        // Input deliberately out of time order.
        let folded = fold_latest(vec![
            stale.clone(),
            determined.clone(),
            other.clone(),
            strike.clone(),
            created.clone(),
        ]);
        assert_eq!(folded.len(), 2);
        let m = &folded[&MarketTicker::from(tk)];
        assert_eq!(m.ts_ms, 950);
        assert_eq!(
            m.status,
            Some(MarketStatus::Determined),
            "no step backwards"
        );
        assert_eq!(m.result, Some(MarketResult::Yes), "absent never erases");
        assert_eq!(m.settlement_value, Some(Price::ONE));
        assert_eq!(m.floor_strike, Some(Decimal::parse("80791.61").unwrap()));
        assert_eq!(m.event_ticker.as_deref(), Some("KXBTC15M-26MAY110200"));
        assert_eq!(m.open_time, Some(t("2026-05-11T05:45:00Z")));
        assert_eq!(m.event, Some(LifecycleEvent::Determined));
        assert_eq!(m.source, RecordSource::Rest);

        // Deterministic: any input order gives the same answer.
        let again = fold_latest(vec![created, other, strike, stale, determined]);
        assert_eq!(again, folded);
    }

    #[test]
    fn fold_status_rules() {
        use MarketStatus::*;
        let cases = [
            (Active, Inactive, true),
            (Inactive, Active, true),
            (Closed, Active, true),
            (Closed, Determined, true),
            (Determined, Closed, false),
            (Determined, Disputed, true),
            (Disputed, Amended, true),
            (Amended, Finalized, true),
            (Finalized, Determined, false),
            (Finalized, Other("x".into()), false),
            (Active, Other("x".into()), true),
            (Other("x".into()), Initialized, true),
        ];
        for (cur, new, want) in cases {
            assert_eq!(status_may_replace(Some(&cur), &new), want, "{cur} -> {new}");
        }
        // Equal timestamps keep input order: the second line wins.
        let mut a = rec(5, "M", RecordSource::Rest);
        a.status = Some(Active);
        let mut b = rec(5, "M", RecordSource::Rest);
        b.status = Some(Inactive);
        let f = fold_latest(vec![a.clone(), b.clone()]);
        assert_eq!(f[&MarketTicker::from("M")].status, Some(Inactive));
        let f = fold_latest(vec![b, a]);
        assert_eq!(f[&MarketTicker::from("M")].status, Some(Active));
    }

    #[test]
    fn read_plain_gz_and_partial_tail() {
        let dir = tempfile::tempdir().unwrap();
        let series = SeriesTicker::from("KXBTC15M");
        let path = markets_path(dir.path(), &series);
        assert_eq!(path.file_name().unwrap(), "KXBTC15M_markets.jsonl");
        let a = rec(1, "KXBTC15M-A", RecordSource::Rest);
        let b = rec(2, "KXBTC15M-B", RecordSource::Ws);
        append_markets(&path, std::slice::from_ref(&a)).unwrap();
        append_markets(&path, std::slice::from_ref(&b)).unwrap();
        let read = read_markets(&path).unwrap();
        assert_eq!(read.records, vec![a.clone(), b.clone()]);
        assert_eq!(read.skipped_partial_line, None);

        // A writer killed mid-line: the partial tail is skipped and reported.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"ts_ms":3,"ticker":"KXBTC15M-C","sou"#);
        std::fs::write(&path, &text).unwrap();
        let read = read_markets(&path).unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.skipped_partial_line, Some(3));

        // The same garbage in the middle of the file is an error naming file and line.
        let mid = format!("{}\n{}\n", r#"{"ts_ms":3,"ticker":"#, a.to_json_line());
        std::fs::write(&path, mid).unwrap();
        let e = read_markets(&path).unwrap_err().to_string();
        assert!(e.contains("KXBTC15M_markets.jsonl:1:"), "{e}");

        // A complete but invalid last line is an error, not a skipped tail.
        let bad_last = format!(
            "{}\n{}",
            a.to_json_line(),
            r#"{"ts_ms":-4,"ticker":"X","source":"ws"}"#
        );
        std::fs::write(&path, bad_last).unwrap();
        let e = read_markets(&path).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("negative"), "{e}");

        // gzip, written as members by append.
        let gz = dir.path().join("KXBTC15M_markets.jsonl.gz");
        append_markets(&gz, std::slice::from_ref(&a)).unwrap();
        append_markets(&gz, std::slice::from_ref(&b)).unwrap();
        let read = read_markets(&gz).unwrap();
        assert_eq!(read.records, vec![a.clone(), b]);
        assert!(!read.truncated_gzip);

        // Nothing is written when one record is invalid.
        let mut bad = a.clone();
        bad.ts_ms = -1;
        let before = std::fs::read(&gz).unwrap();
        assert!(append_markets(&gz, &[a, bad]).is_err());
        assert_eq!(std::fs::read(&gz).unwrap(), before);
    }

    #[test]
    fn reads_kalshi_market_shape_fields() {
        // The sidecar carries Kalshi's field names for the market facts, so a REST market
        // object plus our three bookkeeping fields reads directly.
        let line = r#"{"ts_ms":1,"source":"rest","ticker":"KXBTC-26JUL0921-B52250",
            "event_ticker":"KXBTC-26JUL0921","status":"active","strike_type":"between",
            "floor_strike":52200,"cap_strike":52299.99,"result":"","expiration_value":"",
            "open_time":"2026-07-10T00:00:00Z","close_time":"2026-07-10T01:00:00Z",
            "yes_bid_dollars":"0.0000","price_ranges":[{"start":"0.0000"}]}"#;
        let r: MarketRecord = serde_json::from_str(line).unwrap();
        assert_eq!(r.strike_type, Some(StrikeType::Between));
        assert_eq!(r.cap_strike.unwrap().to_string(), "52299.99");
        assert_eq!(r.expiration_value, None);
        assert_eq!(r.series(), SeriesTicker::from("KXBTC"));
    }

    /// Real Kalshi REST market objects (shared/data/kalshi_rest, July 2026) read as sidecar
    /// lines once our bookkeeping fields are added, with strikes exact. Skips without shared/.
    #[test]
    fn real_rest_market_objects_read_as_sidecar_lines() {
        // shared/ sits beside the repository (../../../shared from this crate); a git worktree
        // one level deeper finds it one level further up.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let Some(dir) = ["../../../shared", "../../../../shared"]
            .iter()
            .map(|rel| manifest.join(rel).join("data/kalshi_rest"))
            .find(|d| d.is_dir())
        else {
            println!("skipping: shared/data/kalshi_rest not found beside the repository");
            return;
        };
        let entries = std::fs::read_dir(&dir).unwrap();
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".raw.json"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        let mut n = 0;
        for f in files {
            let all: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            for (ticker, market) in all {
                let mut obj = market.as_object().unwrap().clone();
                obj.insert("ts_ms".into(), 1.into());
                obj.insert("source".into(), "rest".into());
                let r: MarketRecord = serde_json::from_value(serde_json::Value::Object(obj))
                    .unwrap_or_else(|e| panic!("{ticker}: {e}"));
                assert_eq!(r.ticker.as_str(), ticker);
                assert!(r.status.as_ref().unwrap().is_known(), "{ticker}");
                assert!(r.open_time.unwrap() <= r.close_time.unwrap());
                for (field, got) in [
                    ("floor_strike", r.floor_strike),
                    ("cap_strike", r.cap_strike),
                ] {
                    match (&market[field], got) {
                        (serde_json::Value::Number(want), Some(d)) => {
                            assert_eq!(
                                serde_json::to_string(&d).unwrap(),
                                want.to_string(),
                                "{ticker} {field}"
                            )
                        }
                        (serde_json::Value::Null, None) => {}
                        (want, got) => panic!("{ticker} {field}: {want} vs {got:?}"),
                    }
                }
                n += 1;
            }
        }
        assert!(n > 100, "{n}");
    }
}
