//! Labels: how each market settled (`labels/v1`), the markets that could not be labelled
//! (`labels-unresolved/v1`), and a deterministic [`merge`] that reports conflicts instead of
//! overwriting.
//!
//! ```json
//! {"schema": "labels/v1", "generated_at": "2026-05-14T00:00:00Z",
//!  "labels": {"KXBTC15M-26MAY110145-45": {"result": "no", "close_time": "2026-05-11T05:45:00Z",
//!                                         "settlement_value": 0.0, "source": "api"}}}
//! ```
//!
//! [`LabelsFile::load`] also accepts the legacy bare map
//! `{"<ticker>": "yes"|"no"|1|0|true|false|"1"|"0"}`. Errors name the file and the first
//! offending entry (in file order) with its ticker. Readers ignore unknown fields (a newer
//! writer may add some); the writer emits keys in sorted order, so output is deterministic.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::markets::{ident_problem, MarketRecord, MarketResult, MarketStatus};
use super::{de_opt_nonempty, open_str_enum, write_atomic};
use crate::ids::MarketTicker;
use crate::money::Price;

/// A binary market's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Yes,
    No,
}

impl Outcome {
    /// YES payout per contract: $1 or $0.
    pub fn settlement_price(self) -> Price {
        match self {
            Outcome::Yes => Price::ONE,
            Outcome::No => Price::ZERO,
        }
    }

    /// 1.0 for YES, 0.0 for NO: the training target.
    pub fn value(self) -> f64 {
        match self {
            Outcome::Yes => 1.0,
            Outcome::No => 0.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Yes => "yes",
            Outcome::No => "no",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

open_str_enum! {
    /// Where a label came from.
    pub enum LabelSource {
        /// Kalshi's REST API (`/markets`, `/historical/markets`).
        Api => "api",
        /// An archived copy of exchange metadata (e.g. a recorded `markets.jsonl`).
        Archive => "archive",
        /// A `market_lifecycle_v2` determination seen in a raw capture.
        Capture => "capture",
        /// The downloader's markets sidecar.
        Sidecar => "sidecar",
        /// The local simulator (`kalshi_sim generate`).
        Sim => "sim",
    }
}

/// How one market settled. Bare-map labels have no `close_time` and no `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "LabelOut", try_from = "LabelIn")]
pub struct Label {
    pub result: Outcome,
    pub close_time: Option<DateTime<Utc>>,
    pub source: Option<LabelSource>,
}

#[derive(Serialize)]
struct LabelOut {
    result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    close_time: Option<DateTime<Utc>>,
    settlement_value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<LabelSource>,
}

impl From<Label> for LabelOut {
    fn from(l: Label) -> LabelOut {
        LabelOut {
            result: l.result,
            close_time: l.close_time,
            settlement_value: l.result.value(),
            source: l.source,
        }
    }
}

#[derive(Deserialize)]
struct LabelIn {
    result: Outcome,
    #[serde(default)]
    close_time: Option<DateTime<Utc>>,
    #[serde(default)]
    settlement_value: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_nonempty")]
    source: Option<LabelSource>,
}

impl TryFrom<LabelIn> for Label {
    type Error = String;
    fn try_from(l: LabelIn) -> Result<Label, String> {
        if let Some(v) = l.settlement_value {
            if v != l.result.value() {
                return Err(format!(
                    "settlement_value {v} contradicts result {} (expected {:.1})",
                    l.result,
                    l.result.value()
                ));
            }
        }
        Ok(Label {
            result: l.result,
            close_time: l.close_time,
            source: l.source,
        })
    }
}

impl Label {
    pub fn new(result: Outcome, close_time: Option<DateTime<Utc>>, source: LabelSource) -> Label {
        Label {
            result,
            close_time,
            source: Some(source),
        }
    }

    /// Labels a market from its folded sidecar state (see
    /// [`fold_latest`](super::markets::fold_latest)), or says why it cannot be labelled.
    /// YES/NO results whose settlement value contradicts them, scalar and void results,
    /// disputed markets and markets without a result are unresolved.
    pub fn from_market(rec: &MarketRecord, source: LabelSource) -> Result<Label, Unresolved> {
        let unresolved = |reason, detail: Option<String>| Unresolved {
            ticker: rec.ticker.clone(),
            reason,
            detail,
        };
        if rec.status == Some(MarketStatus::Disputed) {
            return Err(unresolved(
                UnresolvedReason::Disputed,
                rec.result
                    .as_ref()
                    .map(|r| format!("result {r} is disputed")),
            ));
        }
        let outcome = match &rec.result {
            Some(MarketResult::Yes) => Outcome::Yes,
            Some(MarketResult::No) => Outcome::No,
            Some(MarketResult::Scalar) => {
                return Err(unresolved(
                    UnresolvedReason::Scalar,
                    rec.settlement_value
                        .map(|v| format!("settlement_value {v}")),
                ))
            }
            Some(MarketResult::Void) => return Err(unresolved(UnresolvedReason::Voided, None)),
            Some(MarketResult::Other(r)) => {
                return Err(unresolved(
                    UnresolvedReason::Other("unknown_result".into()),
                    Some(format!("result {r:?}")),
                ))
            }
            None => {
                return Err(unresolved(
                    UnresolvedReason::NotSettled,
                    rec.status.as_ref().map(|s| format!("status {s}")),
                ))
            }
        };
        if let Some(v) = rec.settlement_value {
            if v != outcome.settlement_price() {
                return Err(unresolved(
                    UnresolvedReason::Inconsistent,
                    Some(format!("result {outcome} with settlement_value {v}")),
                ));
            }
        }
        Ok(Label {
            result: outcome,
            close_time: rec.close_time,
            source: Some(source),
        })
    }
}

/// Errors reading or writing label files.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{origin}: invalid JSON: {message}")]
    Json { origin: String, message: String },
    #[error("{origin}: {message}")]
    Format { origin: String, message: String },
    #[error("{origin}: entry {ticker:?}: {message}")]
    Entry {
        origin: String,
        ticker: String,
        message: String,
    },
}

/// Which form a labels file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsForm {
    /// `{"schema": "labels/v1", …}`
    V1,
    /// The legacy `{"<ticker>": "yes"|"no"|1|0|true|false}`.
    BareMap,
}

/// A `labels/v1` file in memory. Keys are sorted, so saving is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelsFile {
    /// When the file was written; unknown for a bare map.
    pub generated_at: Option<DateTime<Utc>>,
    pub labels: BTreeMap<MarketTicker, Label>,
}

#[derive(Serialize)]
struct LabelsOut<'a> {
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_at: Option<DateTime<Utc>>,
    labels: &'a BTreeMap<MarketTicker, Label>,
}

impl LabelsFile {
    pub const SCHEMA: &'static str = "labels/v1";

    pub fn new(generated_at: DateTime<Utc>) -> LabelsFile {
        LabelsFile {
            generated_at: Some(generated_at),
            labels: BTreeMap::new(),
        }
    }

    pub fn get(&self, ticker: &str) -> Option<&Label> {
        self.labels.get(ticker)
    }

    pub fn insert(&mut self, ticker: MarketTicker, label: Label) -> Option<Label> {
        self.labels.insert(ticker, label)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Loads either form.
    pub fn load(path: &Path) -> Result<LabelsFile, LabelsError> {
        Self::load_with_form(path).map(|(f, _)| f)
    }

    /// Loads either form and says which one it was.
    pub fn load_with_form(path: &Path) -> Result<(LabelsFile, LabelsForm), LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_str(&text, &path.display().to_string())
    }

    /// Parses either form; `origin` names the source in errors (usually the file name).
    pub fn parse_str(text: &str, origin: &str) -> Result<(LabelsFile, LabelsForm), LabelsError> {
        let top = parse_ordered(text, origin)?;
        let Node::Map(entries) = top else {
            return Err(LabelsError::Format {
                origin: origin.into(),
                message: "expected a JSON object (labels/v1 or a bare {ticker: result} map)".into(),
            });
        };
        if entries.iter().any(|(k, _)| k == "schema") {
            Self::from_v1(entries, origin).map(|f| (f, LabelsForm::V1))
        } else {
            Self::from_bare(entries, origin).map(|f| (f, LabelsForm::BareMap))
        }
    }

    fn from_v1(entries: Vec<(String, Node)>, origin: &str) -> Result<LabelsFile, LabelsError> {
        let fmt_err = |message: String| LabelsError::Format {
            origin: origin.into(),
            message,
        };
        let mut schema = None;
        let mut generated_at = None;
        let mut labels = None;
        for (k, v) in entries {
            match k.as_str() {
                "schema" => schema = Some(v.into_value()),
                "generated_at" => generated_at = Some(v.into_value()),
                "labels" => labels = Some(v),
                _ => {} // forward compatible: ignore unknown top-level fields
            }
        }
        match schema {
            Some(Value::String(s)) if s == Self::SCHEMA => {}
            Some(Value::String(s)) if s == UnresolvedList::SCHEMA => {
                return Err(fmt_err(format!(
                    "this is an unresolved list ({s}), not a labels file"
                )))
            }
            other => {
                return Err(fmt_err(format!(
                    "schema: expected \"{}\", got {}",
                    Self::SCHEMA,
                    other.unwrap_or(Value::Null)
                )))
            }
        }
        let generated_at = match generated_at {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<DateTime<Utc>>(v)
                    .map_err(|e| fmt_err(format!("generated_at: {e}")))?,
            ),
        };
        let labels = match labels {
            Some(Node::Map(m)) => m,
            Some(_) => return Err(fmt_err("labels: expected an object".into())),
            None => return Err(fmt_err("missing field `labels`".into())),
        };
        let mut out = LabelsFile {
            generated_at,
            labels: BTreeMap::new(),
        };
        for (ticker, node) in labels {
            let entry_err = |message: String| LabelsError::Entry {
                origin: origin.into(),
                ticker: ticker.clone(),
                message,
            };
            if let Some(p) = ident_problem(&ticker) {
                return Err(entry_err(format!("ticker {p}")));
            }
            let value = node.into_value();
            let label: Label = serde_path_to_error::deserialize(&value).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                entry_err(if path == "." {
                    inner
                } else {
                    format!("{path}: {inner}")
                })
            })?;
            if out
                .labels
                .insert(MarketTicker::new(&ticker), label)
                .is_some()
            {
                return Err(entry_err("duplicate ticker".into()));
            }
        }
        Ok(out)
    }

    fn from_bare(entries: Vec<(String, Node)>, origin: &str) -> Result<LabelsFile, LabelsError> {
        let mut out = LabelsFile::default();
        for (ticker, node) in entries {
            let entry_err = |message: String| LabelsError::Entry {
                origin: origin.into(),
                ticker: ticker.clone(),
                message,
            };
            if let Some(p) = ident_problem(&ticker) {
                return Err(entry_err(format!("ticker {p}")));
            }
            let value = node.into_value();
            let label = match bare_outcome(&value) {
                Some(result) => Label {
                    result,
                    close_time: None,
                    source: None,
                },
                // A full entry without the v1 wrapper is accepted too.
                None if value.is_object() => {
                    serde_json::from_value::<Label>(value).map_err(|e| entry_err(e.to_string()))?
                }
                None => {
                    return Err(entry_err(format!(
                        "expected \"yes\"|\"no\"|1|0|true|false|\"1\"|\"0\", got {value}"
                    )))
                }
            };
            if out
                .labels
                .insert(MarketTicker::new(&ticker), label)
                .is_some()
            {
                return Err(entry_err("duplicate ticker".into()));
            }
        }
        Ok(out)
    }

    /// The canonical text: pretty JSON, sorted keys, trailing newline.
    pub fn to_json_pretty(&self) -> String {
        let out = LabelsOut {
            schema: Self::SCHEMA,
            generated_at: self.generated_at,
            labels: &self.labels,
        };
        let mut s = serde_json::to_string_pretty(&out).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes the `labels/v1` form atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), LabelsError> {
        write_atomic(path, self.to_json_pretty().as_bytes()).map_err(|source| LabelsError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A bare-map value as an outcome, if it is one of the accepted spellings.
fn bare_outcome(v: &Value) -> Option<Outcome> {
    match v {
        Value::Bool(true) => Some(Outcome::Yes),
        Value::Bool(false) => Some(Outcome::No),
        Value::Number(n) => {
            let x = n.as_f64()?;
            if x == 1.0 {
                Some(Outcome::Yes)
            } else if x == 0.0 {
                Some(Outcome::No)
            } else {
                None
            }
        }
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "1" | "true" => Some(Outcome::Yes),
            "no" | "0" | "false" => Some(Outcome::No),
            _ => None,
        },
        _ => None,
    }
}

/// Which kind of disagreement [`merge`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConflictKind {
    /// The two files disagree on the result.
    Result,
    /// Same result, different close times.
    CloseTime,
}

/// A disagreement between an existing and an incoming label; the existing one was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub ticker: MarketTicker,
    pub kind: ConflictKind,
    pub existing: Label,
    pub incoming: Label,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let src = |l: &Label| {
            l.source
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "unknown source".into())
        };
        match self.kind {
            ConflictKind::Result => write!(
                f,
                "{}: result conflict: existing {} ({}) vs incoming {} ({}); kept existing",
                self.ticker,
                self.existing.result,
                src(&self.existing),
                self.incoming.result,
                src(&self.incoming)
            ),
            ConflictKind::CloseTime => write!(
                f,
                "{}: close_time conflict: existing {} ({}) vs incoming {} ({}); kept existing",
                self.ticker,
                fmt_opt_time(self.existing.close_time),
                src(&self.existing),
                fmt_opt_time(self.incoming.close_time),
                src(&self.incoming)
            ),
        }
    }
}

fn fmt_opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "none".into())
}

/// Merges `incoming` into `existing`, deterministically and without losing anything:
///
/// - a ticker in only one file is taken as is;
/// - same result: the existing label is kept, its missing `close_time`/`source` filled in
///   from the incoming one; two different close times are a [`ConflictKind::CloseTime`];
/// - different results: the existing label is kept and a [`ConflictKind::Result`] reported;
/// - `generated_at` is the later of the two.
///
/// Conflicts come back in ticker order.
pub fn merge(existing: LabelsFile, incoming: LabelsFile) -> (LabelsFile, Vec<Conflict>) {
    let mut merged = existing;
    merged.generated_at = merged.generated_at.max(incoming.generated_at);
    let mut conflicts = Vec::new();
    for (ticker, new) in incoming.labels {
        let Some(cur) = merged.labels.get_mut(&ticker) else {
            merged.labels.insert(ticker, new);
            continue;
        };
        if cur.result != new.result {
            conflicts.push(Conflict {
                ticker,
                kind: ConflictKind::Result,
                existing: cur.clone(),
                incoming: new,
            });
            continue;
        }
        match (cur.close_time, new.close_time) {
            (Some(a), Some(b)) if a != b => {
                conflicts.push(Conflict {
                    ticker: ticker.clone(),
                    kind: ConflictKind::CloseTime,
                    existing: cur.clone(),
                    incoming: new.clone(),
                });
            }
            (None, Some(b)) => cur.close_time = Some(b),
            _ => {}
        }
        if cur.source.is_none() {
            cur.source = new.source;
        }
    }
    (merged, conflicts)
}

open_str_enum! {
    /// Why a market has no label.
    pub enum UnresolvedReason {
        /// No result yet (still open, closed or awaiting determination).
        NotSettled => "not_settled",
        /// The exchange does not know the ticker (or it was never listed).
        NotFound => "not_found",
        /// A scalar market: no yes/no result.
        Scalar => "scalar",
        /// The market was voided.
        Voided => "voided",
        /// The result is under dispute and may change.
        Disputed => "disputed",
        /// The sources contradict each other (e.g. result yes, settlement value 0).
        Inconsistent => "inconsistent",
    }
}

/// One market that could not be labelled.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unresolved {
    pub ticker: MarketTicker,
    pub reason: UnresolvedReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A `labels-unresolved/v1` file: which markets have no label, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnresolvedList {
    pub generated_at: Option<DateTime<Utc>>,
    pub unresolved: Vec<Unresolved>,
}

#[derive(Serialize, Deserialize)]
struct UnresolvedDoc {
    schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generated_at: Option<DateTime<Utc>>,
    unresolved: Vec<Unresolved>,
}

impl UnresolvedList {
    pub const SCHEMA: &'static str = "labels-unresolved/v1";

    pub fn new(generated_at: DateTime<Utc>) -> UnresolvedList {
        UnresolvedList {
            generated_at: Some(generated_at),
            unresolved: Vec::new(),
        }
    }

    pub fn push(&mut self, u: Unresolved) {
        self.unresolved.push(u);
    }

    /// Sorts by ticker (then reason, detail) and drops exact duplicates: the saved order.
    pub fn normalize(&mut self) {
        self.unresolved.sort();
        self.unresolved.dedup();
    }

    /// Drops every ticker that `labels` has a label for.
    pub fn remove_labelled(&mut self, labels: &LabelsFile) {
        self.unresolved
            .retain(|u| !labels.labels.contains_key(&u.ticker));
    }

    pub fn load(path: &Path) -> Result<UnresolvedList, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_str(&text, &path.display().to_string())
    }

    pub fn parse_str(text: &str, origin: &str) -> Result<UnresolvedList, LabelsError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let doc: UnresolvedDoc = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                LabelsError::Json {
                    origin: origin.into(),
                    message: inner.to_string(),
                }
            } else {
                LabelsError::Format {
                    origin: origin.into(),
                    message: format!("{path}: {inner}"),
                }
            }
        })?;
        de.end().map_err(|e| LabelsError::Json {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        if doc.schema != Self::SCHEMA {
            return Err(LabelsError::Format {
                origin: origin.into(),
                message: format!(
                    "schema: expected \"{}\", got {:?}",
                    Self::SCHEMA,
                    doc.schema
                ),
            });
        }
        for u in &doc.unresolved {
            if let Some(p) = ident_problem(u.ticker.as_str()) {
                return Err(LabelsError::Entry {
                    origin: origin.into(),
                    ticker: u.ticker.to_string(),
                    message: format!("ticker {p}"),
                });
            }
        }
        Ok(UnresolvedList {
            generated_at: doc.generated_at,
            unresolved: doc.unresolved,
        })
    }

    /// The canonical text (sorted, deduplicated, pretty, trailing newline).
    pub fn to_json_pretty(&self) -> String {
        let mut sorted = self.clone();
        sorted.normalize();
        let doc = UnresolvedDoc {
            schema: Self::SCHEMA.into(),
            generated_at: sorted.generated_at,
            unresolved: sorted.unresolved,
        };
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), LabelsError> {
        write_atomic(path, self.to_json_pretty().as_bytes()).map_err(|source| LabelsError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A JSON value whose objects keep their keys in file order (and keep duplicates), so errors
/// can name the first offending entry as the user sees it.
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Leaf(Value),
}

impl Node {
    fn into_value(self) -> Value {
        match self {
            Node::Leaf(v) => v,
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            // Later duplicates win here, as in serde_json; the labels maps check duplicates
            // before converting.
            Node::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Leaf(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Leaf(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Leaf(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Leaf(
                    serde_json::Number::from_f64(v)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                ))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Leaf(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Leaf(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Leaf(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Leaf(Value::Null))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(n) = a.next_element::<Node>()? {
                    items.push(n);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Node>()? {
                    entries.push((k, v));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_ordered(text: &str, origin: &str) -> Result<Node, LabelsError> {
    serde_json::from_str::<Node>(text).map_err(|e| LabelsError::Json {
        origin: origin.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::markets::{Decimal, RecordSource};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn sample() -> LabelsFile {
        let mut f = LabelsFile::new(t("2026-05-14T00:00:00Z"));
        f.insert(
            "KXBTC15M-26MAY110200-00".into(),
            Label::new(
                Outcome::Yes,
                Some(t("2026-05-11T06:00:00Z")),
                LabelSource::Api,
            ),
        );
        f.insert(
            "KXBTC15M-26MAY110145-45".into(),
            Label::new(
                Outcome::No,
                Some(t("2026-05-11T05:45:00Z")),
                LabelSource::Capture,
            ),
        );
        f
    }

    #[test]
    fn v1_round_trip_is_deterministic_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.json");
        let f = sample();
        f.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        // Sorted key order: the 0145 market comes before 0200 though inserted after.
        let a = text.find("KXBTC15M-26MAY110145-45").unwrap();
        let b = text.find("KXBTC15M-26MAY110200-00").unwrap();
        assert!(a < b);
        assert!(text.contains(r#""schema": "labels/v1""#), "{text}");
        assert!(text.contains(r#""settlement_value": 1.0"#), "{text}");
        assert!(text.contains(r#""settlement_value": 0.0"#), "{text}");
        let (back, form) = LabelsFile::load_with_form(&p).unwrap();
        assert_eq!(form, LabelsForm::V1);
        assert_eq!(back, f);
        // Saving the loaded file again gives the same bytes.
        let p2 = dir.path().join("again.json");
        back.save(&p2).unwrap();
        assert_eq!(std::fs::read(&p2).unwrap(), text.as_bytes());
    }

    #[test]
    fn v1_reader_checks_entries_and_schema() {
        let ok = r#"{"schema":"labels/v1","generated_at":"2026-05-14T00:00:00Z","future":1,
            "labels":{"A-1":{"result":"yes","settlement_value":1,"extra":"ignored"},
                      "A-2":{"result":"no"}}}"#;
        let (f, _) = LabelsFile::parse_str(ok, "x.json").unwrap();
        assert_eq!(f.get("A-1").unwrap().result, Outcome::Yes);
        assert_eq!(f.get("A-2").unwrap().source, None);

        let bad_value = r#"{"schema":"labels/v1","labels":{"A-1":{"result":"yes"},
            "A-2":{"result":"no","settlement_value":1.0},"A-0":{"result":"maybe"}}}"#;
        let e = LabelsFile::parse_str(bad_value, "x.json").unwrap_err();
        // The first offending entry in file order (A-2), not in sorted order (A-0).
        match &e {
            LabelsError::Entry { ticker, .. } => assert_eq!(ticker, "A-2"),
            other => panic!("{other}"),
        }
        assert!(e.to_string().starts_with("x.json: entry \"A-2\""), "{e}");

        let bad_result = r#"{"schema":"labels/v1","labels":{"A-0":{"result":"maybe"}}}"#;
        let e = LabelsFile::parse_str(bad_result, "x.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("A-0") && e.contains("result") && e.contains("maybe"),
            "{e}"
        );

        let dup =
            r#"{"schema":"labels/v1","labels":{"A-1":{"result":"yes"},"A-1":{"result":"no"}}}"#;
        let e = LabelsFile::parse_str(dup, "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate"), "{e}");

        let wrong = r#"{"schema":"labels/v2","labels":{}}"#;
        let e = LabelsFile::parse_str(wrong, "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels/v2"), "{e}");
        let unresolved = r#"{"schema":"labels-unresolved/v1","unresolved":[]}"#;
        let e = LabelsFile::parse_str(unresolved, "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unresolved list"), "{e}");
        let e = LabelsFile::parse_str(r#"{"schema":"labels/v1"}"#, "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels"), "{e}");
        let e = LabelsFile::parse_str("{\"schema\":", "x.json").unwrap_err();
        assert!(matches!(e, LabelsError::Json { .. }), "{e}");
        assert!(LabelsFile::parse_str("[1,2]", "x.json").is_err());
    }

    #[test]
    fn bare_map_accepts_every_spelling() {
        let text = r#"{"A-1":"yes","A-2":"no","A-3":1,"A-4":0,"A-5":true,"A-6":false,
                       "A-7":"1","A-8":"0","A-9":"YES","A-10":1.0,"A-11":{"result":"no"}}"#;
        let (f, form) = LabelsFile::parse_str(text, "bare.json").unwrap();
        assert_eq!(form, LabelsForm::BareMap);
        let got: Vec<(&str, Outcome)> = f
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.result))
            .collect();
        use Outcome::*;
        let mut want = vec![
            ("A-1", Yes),
            ("A-2", No),
            ("A-3", Yes),
            ("A-4", No),
            ("A-5", Yes),
            ("A-6", No),
            ("A-7", Yes),
            ("A-8", No),
            ("A-9", Yes),
            ("A-10", Yes),
            ("A-11", No),
        ];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(f.generated_at, None);
        // Saved, it becomes labels/v1.
        let (again, form) = LabelsFile::parse_str(&f.to_json_pretty(), "x").unwrap();
        assert_eq!(form, LabelsForm::V1);
        assert_eq!(again, f);
    }

    #[test]
    fn bare_map_reports_first_offender_with_ticker() {
        let text = r#"{"B-1":"yes","B-9":2,"B-0":"maybe"}"#;
        let e = LabelsFile::parse_str(text, "bare.json").unwrap_err();
        match &e {
            LabelsError::Entry {
                origin,
                ticker,
                message,
            } => {
                assert_eq!(origin, "bare.json");
                assert_eq!(ticker, "B-9");
                assert!(message.contains('2'), "{message}");
            }
            other => panic!("{other}"),
        }
        for bad in [
            r#"{"B-1":null}"#,
            r#"{"B-1":"y"}"#,
            r#"{"B-1":0.5}"#,
            r#"{"B-1":[1]}"#,
        ] {
            assert!(LabelsFile::parse_str(bad, "b").is_err(), "{bad}");
        }
        let e = LabelsFile::parse_str(r#"{"B-1":"yes","B-1":"no"}"#, "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate") && e.contains("B-1"), "{e}");
        let e = LabelsFile::parse_str(r#"{"":"yes"}"#, "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad_labels.json");
        std::fs::write(&p, r#"{"A":"perhaps"}"#).unwrap();
        let e = LabelsFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad_labels.json") && e.contains("\"A\""), "{e}");
        let e = LabelsFile::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }

    #[test]
    fn merge_keeps_existing_and_reports_conflicts() {
        let existing = sample();
        let mut incoming = LabelsFile::new(t("2026-05-15T00:00:00Z"));
        // Conflicting result: kept existing, reported.
        incoming.insert(
            "KXBTC15M-26MAY110200-00".into(),
            Label::new(
                Outcome::No,
                Some(t("2026-05-11T06:00:00Z")),
                LabelSource::Sidecar,
            ),
        );
        // Same result, different close time: kept existing, reported.
        incoming.insert(
            "KXBTC15M-26MAY110145-45".into(),
            Label::new(
                Outcome::No,
                Some(t("2026-05-11T05:46:00Z")),
                LabelSource::Api,
            ),
        );
        // New ticker: added.
        incoming.insert(
            "KXBTC15M-26MAY110215-15".into(),
            Label::new(Outcome::Yes, None, LabelSource::Archive),
        );
        let (merged, conflicts) = merge(existing.clone(), incoming.clone());
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.generated_at, incoming.generated_at);
        assert_eq!(
            merged.get("KXBTC15M-26MAY110200-00"),
            existing.get("KXBTC15M-26MAY110200-00")
        );
        assert_eq!(
            merged.get("KXBTC15M-26MAY110145-45"),
            existing.get("KXBTC15M-26MAY110145-45")
        );
        let kinds: Vec<(&str, ConflictKind)> = conflicts
            .iter()
            .map(|c| (c.ticker.as_str(), c.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("KXBTC15M-26MAY110145-45", ConflictKind::CloseTime),
                ("KXBTC15M-26MAY110200-00", ConflictKind::Result),
            ]
        );
        let msg = conflicts[1].to_string();
        assert!(
            msg.contains("existing yes (api)") && msg.contains("incoming no (sidecar)"),
            "{msg}"
        );

        // Merging a file with itself changes nothing and reports nothing.
        let (same, none) = merge(existing.clone(), existing.clone());
        assert_eq!(same, existing);
        assert!(none.is_empty());
    }

    #[test]
    fn merge_fills_missing_fields_from_incoming() {
        let mut bare = LabelsFile::default();
        bare.insert(
            "A-1".into(),
            Label {
                result: Outcome::Yes,
                close_time: None,
                source: None,
            },
        );
        let mut api = LabelsFile::new(t("2026-05-15T00:00:00Z"));
        api.insert(
            "A-1".into(),
            Label::new(
                Outcome::Yes,
                Some(t("2026-05-11T06:00:00Z")),
                LabelSource::Api,
            ),
        );
        let (m, c) = merge(bare, api.clone());
        assert!(c.is_empty());
        assert_eq!(m, api);
    }

    #[test]
    fn label_from_market_state() {
        let mk = |result: Option<MarketResult>, status: Option<MarketStatus>| {
            let mut r = MarketRecord::new(1, "KX-1".into(), RecordSource::Ws).unwrap();
            r.result = result;
            r.status = status;
            r.close_time = Some(t("2026-05-11T06:00:00Z"));
            r.floor_strike = Some(Decimal::parse("1").unwrap());
            r
        };
        let l = Label::from_market(
            &mk(Some(MarketResult::Yes), Some(MarketStatus::Finalized)),
            LabelSource::Sidecar,
        )
        .unwrap();
        assert_eq!(l.result, Outcome::Yes);
        assert_eq!(l.close_time, Some(t("2026-05-11T06:00:00Z")));
        let reason = |r, s| {
            Label::from_market(&mk(r, s), LabelSource::Sidecar)
                .unwrap_err()
                .reason
        };
        assert_eq!(
            reason(None, Some(MarketStatus::Closed)),
            UnresolvedReason::NotSettled
        );
        assert_eq!(
            reason(Some(MarketResult::Scalar), None),
            UnresolvedReason::Scalar
        );
        assert_eq!(
            reason(Some(MarketResult::Void), None),
            UnresolvedReason::Voided
        );
        assert_eq!(
            reason(Some(MarketResult::Yes), Some(MarketStatus::Disputed)),
            UnresolvedReason::Disputed
        );
        let mut inconsistent = mk(Some(MarketResult::No), None);
        inconsistent.settlement_value = Some(Price::ONE);
        assert_eq!(
            Label::from_market(&inconsistent, LabelSource::Api)
                .unwrap_err()
                .reason,
            UnresolvedReason::Inconsistent
        );
    }

    #[test]
    fn unresolved_round_trip_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("unresolved.json");
        let mut u = UnresolvedList::new(t("2026-05-14T00:00:00Z"));
        u.push(Unresolved {
            ticker: "B-2".into(),
            reason: UnresolvedReason::NotFound,
            detail: None,
        });
        u.push(Unresolved {
            ticker: "A-1".into(),
            reason: UnresolvedReason::NotSettled,
            detail: Some("status closed".into()),
        });
        u.push(Unresolved {
            ticker: "B-2".into(),
            reason: UnresolvedReason::NotFound,
            detail: None,
        });
        u.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(r#""schema": "labels-unresolved/v1""#));
        assert!(text.contains(r#""reason": "not_settled""#));
        let back = UnresolvedList::load(&p).unwrap();
        let tickers: Vec<&str> = back.unresolved.iter().map(|u| u.ticker.as_str()).collect();
        assert_eq!(tickers, vec!["A-1", "B-2"], "sorted and deduplicated");
        assert_eq!(back.generated_at, u.generated_at);

        let mut labels = LabelsFile::default();
        labels.insert(
            "A-1".into(),
            Label::new(Outcome::No, None, LabelSource::Api),
        );
        let mut pruned = back.clone();
        pruned.remove_labelled(&labels);
        assert_eq!(pruned.unresolved.len(), 1);

        let e = UnresolvedList::parse_str(
            r#"{"schema":"labels-unresolved/v1","unresolved":[{"ticker":"A"},{"reason":"x"}]}"#,
            "u.json",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("u.json") && e.contains("unresolved[0]"), "{e}");
        let e = UnresolvedList::parse_str(r#"{"schema":"labels/v1","unresolved":[]}"#, "u.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels-unresolved/v1"), "{e}");
        // Unknown reasons survive a round trip.
        let odd =
            r#"{"schema":"labels-unresolved/v1","unresolved":[{"ticker":"A","reason":"halted"}]}"#;
        let l = UnresolvedList::parse_str(odd, "u").unwrap();
        assert_eq!(
            l.unresolved[0].reason,
            UnresolvedReason::Other("halted".into())
        );
        assert!(l.to_json_pretty().contains("halted"));
    }
}
