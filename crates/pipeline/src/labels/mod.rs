//! The label tools' library: how each market settled, gathered from everything we have.
//!
//! - [`build`] (`build_labels`): builds or updates the labels file (`labels/v1`) offline from
//!   existing label files, the downloader's markets sidecars, raw captures
//!   (`market_lifecycle_v2` determinations) and archived exchange data (Kalshi market objects,
//!   REST responses, old label files).
//! - [`sync()`](sync::sync) (`sync_labels`): labels aligned to the tickers present in the
//!   snapshot files, asking an [`OutcomeSource`] (Kalshi's REST API in production) only for
//!   the outcomes not known yet.
//!
//! Both write the labels atomically plus the unresolved list (`labels-unresolved/v1`), which
//! names every market that could not be labelled and why. Inputs are read in a fixed order
//! (label files, then sidecars, then captures, then archives; files sorted by path within
//! each group), so the same inputs always give the same bytes. A ticker labelled differently
//! by two inputs keeps the label read first and the disagreement is reported with both values
//! and both origins ([`LabelConflict`]), never overwritten silently. A damaged input file is
//! reported by name (and line) and skipped; everything else is kept.
//!
//! Libraries never print: long phases report through [`Progress`], results come back as
//! values whose `Display` is the summary the binaries print. What the two binaries share on
//! the command line (output flags; with the `cli` feature, the progress bar and the log
//! subscriber) is in [`cli`].

mod build;
pub mod cli;
mod market;
mod sources;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use build::{build, build_with_progress, BuildOptions, BuildOutcome};
pub use market::MarketOutcome;
pub use sync::{sync, sync_with_progress, FetchedOutcome, OutcomeSource, SyncOptions, SyncOutcome};

use crate::ids::MarketTicker;
use crate::schema::{
    merge, ConflictKind, Label, LabelsError, LabelsFile, Unresolved, UnresolvedList,
    UnresolvedReason,
};

/// How many problems a run keeps with their location (all are counted).
pub const MAX_PROBLEMS: usize = 100;

/// What kind of input a label or problem came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InputKind {
    /// An existing labels file (`labels/v1` or a bare map).
    LabelsFile,
    /// A markets sidecar (`*_markets.jsonl[.gz]`).
    Sidecar,
    /// A raw capture (`*.capture.jsonl[.gz]`).
    Capture,
    /// Archived exchange data (`--archive`).
    Archive,
    /// The exchange, through an [`OutcomeSource`].
    Api,
    /// The unresolved list written by an earlier run (entries carried over).
    UnresolvedList,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::LabelsFile => "labels file",
            InputKind::Sidecar => "sidecar",
            InputKind::Capture => "capture",
            InputKind::Archive => "archive",
            InputKind::Api => "api",
            InputKind::UnresolvedList => "previous unresolved list",
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a label or an unresolved entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub kind: InputKind,
    /// The file; `None` for the exchange.
    pub path: Option<PathBuf>,
    /// 1-based line, for line-oriented files.
    pub line: Option<u64>,
}

impl Origin {
    pub fn file(kind: InputKind, path: &Path, line: Option<u64>) -> Origin {
        Origin {
            kind,
            path: Some(path.to_path_buf()),
            line,
        }
    }

    pub fn api() -> Origin {
        Origin {
            kind: InputKind::Api,
            path: None,
            line: None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(p) = &self.path {
            write!(f, " {}", p.display())?;
            if let Some(l) = self.line {
                write!(f, ":{l}")?;
            }
        }
        Ok(())
    }
}

/// Something in an input that could not be used: a skipped file, line or entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProblem {
    pub path: PathBuf,
    /// 1-based line, when the file is line-oriented.
    pub line: Option<u64>,
    /// The entry inside a JSON document (`markets[3]`, a ticker key), when there is one.
    pub entry: Option<String>,
    /// What was wrong and what was skipped.
    pub message: String,
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(e) = &self.entry {
            write!(f, ": entry {e:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Two inputs disagree about a market. The label read first was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelConflict {
    pub ticker: MarketTicker,
    /// A different result, or the same result with a different close time.
    pub kind: ConflictKind,
    pub kept: Label,
    pub kept_from: Origin,
    pub rejected: Label,
    pub rejected_from: Origin,
}

impl fmt::Display for LabelConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |l: &Label| match self.kind {
            ConflictKind::Result => l.result.to_string(),
            ConflictKind::CloseTime => l
                .close_time
                .map(|t| format!("close {}", t.to_rfc3339()))
                .unwrap_or_else(|| "no close time".into()),
        };
        let what = match self.kind {
            ConflictKind::Result => "result",
            ConflictKind::CloseTime => "close_time",
        };
        write!(
            f,
            "{}: {what} conflict: kept {} from {}; rejected {} from {}",
            self.ticker,
            value(&self.kept),
            self.kept_from,
            value(&self.rejected),
            self.rejected_from
        )
    }
}

/// What one input file contributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSummary {
    pub kind: InputKind,
    pub path: PathBuf,
    /// Labels found (before merging with the other inputs).
    pub labels: usize,
    /// Unresolved markets found.
    pub unresolved: usize,
    /// Problems (skipped lines, entries, or the whole file).
    pub problems: u64,
    /// The file was unusable as a whole.
    pub skipped: bool,
}

/// Errors that stop a run before anything is written: an existing labels file that cannot be
/// read (writing over it would lose labels), an explicit input that does not exist, a bad glob,
/// an output that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum LabelsRunError {
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error("--archive {spec:?}: {message}")]
    Archive { spec: String, message: String },
    #[error("snapshots {pattern:?}: {message}")]
    Snapshots { pattern: String, message: String },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// Progress of a long phase, for a progress bar or a log line. Libraries never print; the
/// binaries pass one in (`cli::BarProgress`, with the `cli` feature).
pub trait Progress {
    /// A phase starts with `total` units of work (`unit`: "files", "markets").
    fn start(&mut self, phase: &str, total: u64, unit: &str);
    /// `n` more units are done.
    fn advance(&mut self, n: u64);
    /// The phase is over.
    fn finish(&mut self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: &str, _: u64, _: &str) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// How final an unresolved reason is: when inputs disagree on why a market has no label, the
/// more final reason is kept (a scalar result beats "not settled yet" from an older file).
fn reason_rank(r: &UnresolvedReason) -> u8 {
    match r {
        UnresolvedReason::Disputed => 6,
        UnresolvedReason::Inconsistent => 5,
        UnresolvedReason::Scalar | UnresolvedReason::Voided => 4,
        UnresolvedReason::Other(_) => 3,
        UnresolvedReason::NotSettled => 2,
        UnresolvedReason::NotFound => 1,
    }
}

/// Reasons that cannot change: such markets are not asked about again.
pub fn is_final_reason(r: &UnresolvedReason) -> bool {
    matches!(r, UnresolvedReason::Scalar | UnresolvedReason::Voided)
}

/// Gathers labels and unresolved entries from the inputs in the order they are added.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub labels: LabelsFile,
    pub origins: BTreeMap<MarketTicker, Origin>,
    pub unresolved: BTreeMap<MarketTicker, (Unresolved, Origin)>,
    pub conflicts: Vec<LabelConflict>,
    pub problems: Vec<InputProblem>,
    pub problems_total: u64,
    pub inputs: Vec<InputSummary>,
}

impl Collector {
    /// Adds labels in order. A ticker met twice within `items` is merged like two inputs:
    /// the first is kept and a disagreement reported.
    pub fn add_labels(&mut self, items: Vec<(MarketTicker, Label, Origin)>) {
        // Split into rounds of unique tickers, so every round is one `merge`.
        let mut rounds: Vec<(LabelsFile, BTreeMap<MarketTicker, Origin>)> = Vec::new();
        for (ticker, label, origin) in items {
            let i = match rounds
                .iter()
                .position(|(f, _)| !f.labels.contains_key(&ticker))
            {
                Some(i) => i,
                None => {
                    rounds.push(Default::default());
                    rounds.len() - 1
                }
            };
            rounds[i].1.insert(ticker.clone(), origin);
            rounds[i].0.labels.insert(ticker, label);
        }
        for (incoming, mut origins) in rounds {
            let fresh: Vec<MarketTicker> = incoming
                .labels
                .keys()
                .filter(|t| !self.labels.labels.contains_key(*t))
                .cloned()
                .collect();
            let (merged, conflicts) = merge(std::mem::take(&mut self.labels), incoming);
            self.labels = merged;
            for c in conflicts {
                let unknown = || Origin {
                    kind: InputKind::LabelsFile,
                    path: None,
                    line: None,
                };
                self.conflicts.push(LabelConflict {
                    kept_from: self.origins.get(&c.ticker).cloned().unwrap_or_else(unknown),
                    rejected_from: origins.get(&c.ticker).cloned().unwrap_or_else(unknown),
                    ticker: c.ticker,
                    kind: c.kind,
                    kept: c.existing,
                    rejected: c.incoming,
                });
            }
            for t in fresh {
                if let Some(o) = origins.remove(&t) {
                    self.origins.insert(t, o);
                }
            }
        }
    }

    /// Records why a market has no label; the more final reason wins, the first on a tie.
    pub fn add_unresolved(&mut self, u: Unresolved, origin: Origin) {
        match self.unresolved.get(&u.ticker) {
            Some((cur, _)) if reason_rank(&cur.reason) >= reason_rank(&u.reason) => {}
            _ => {
                self.unresolved.insert(u.ticker.clone(), (u, origin));
            }
        }
    }

    /// Adds a labels file read whole (existing labels).
    pub fn add_labels_file(&mut self, kind: InputKind, path: &Path, file: LabelsFile) {
        let n = file.len();
        let items = file
            .labels
            .into_iter()
            .map(|(t, l)| (t, l, Origin::file(kind, path, None)))
            .collect();
        self.add_labels(items);
        self.inputs.push(InputSummary {
            kind,
            path: path.to_path_buf(),
            labels: n,
            unresolved: 0,
            problems: 0,
            skipped: false,
        });
    }

    /// Adds what a reader found in one file. Unresolved details name the file.
    pub(crate) fn add_findings(&mut self, kind: InputKind, path: &Path, f: sources::FileFindings) {
        self.inputs.push(InputSummary {
            kind,
            path: path.to_path_buf(),
            labels: f.labels.len(),
            unresolved: f.unresolved.len(),
            problems: f.problems_total,
            skipped: f.skipped,
        });
        self.add_labels(
            f.labels
                .into_iter()
                .map(|(t, l, line)| (t, l, Origin::file(kind, path, line)))
                .collect(),
        );
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        for (mut u, line) in f.unresolved {
            u.detail = Some(match u.detail.take() {
                Some(d) => format!("{d}; in {name}"),
                None => format!("in {name}"),
            });
            self.add_unresolved(u, Origin::file(kind, path, line));
        }
        self.add_problems(f.problems, f.problems_total);
    }

    pub fn add_problems(&mut self, problems: Vec<InputProblem>, total: u64) {
        self.problems_total += total;
        for p in problems {
            if self.problems.len() < MAX_PROBLEMS {
                self.problems.push(p);
            }
        }
    }

    pub fn add_problem(&mut self, p: InputProblem) {
        self.add_problems(vec![p], 1);
    }

    /// Carries over an earlier run's entries for markets nobody has said anything about now.
    pub fn carry_unresolved(&mut self, previous: &UnresolvedList, path: &Path) {
        for u in &previous.unresolved {
            if !self.labels.labels.contains_key(&u.ticker)
                && !self.unresolved.contains_key(&u.ticker)
            {
                self.unresolved.insert(
                    u.ticker.clone(),
                    (
                        u.clone(),
                        Origin::file(InputKind::UnresolvedList, path, None),
                    ),
                );
            }
        }
    }

    /// The unresolved list: every entry whose market has no label.
    pub fn unresolved_list(&self) -> UnresolvedList {
        let mut list = UnresolvedList {
            generated_at: None,
            unresolved: self
                .unresolved
                .iter()
                .filter(|(t, _)| !self.labels.labels.contains_key(*t))
                .map(|(_, (u, _))| u.clone())
                .collect(),
        };
        list.normalize();
        list
    }
}

/// Loads the existing labels files in order. A file that exists but cannot be read or parsed
/// stops the run: writing over it would lose its labels. `optional` files may be absent.
fn load_labels_files(
    optional: &[&Path],
    required: &[PathBuf],
) -> Result<Vec<(PathBuf, LabelsFile)>, LabelsRunError> {
    let mut out: Vec<(PathBuf, LabelsFile)> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut load = |p: &Path, must: bool| -> Result<(), LabelsRunError> {
        if !must && !p.exists() {
            // Said once per path (the labels path and the output are often the same file).
            if !missing.iter().any(|m| m == p) {
                tracing::info!(file = %p.display(), "no existing labels file");
                missing.push(p.to_path_buf());
            }
            return Ok(());
        }
        let key = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        if seen.contains(&key) {
            return Ok(());
        }
        seen.push(key);
        let file = LabelsFile::load(p)?;
        tracing::info!(file = %p.display(), labels = file.len(), "read labels");
        out.push((p.to_path_buf(), file));
        Ok(())
    };
    for p in optional {
        load(p, false)?;
    }
    let mut required = required.to_vec();
    required.sort();
    for p in &required {
        load(p, true)?;
    }
    Ok(out)
}

/// The earlier run's unresolved list, if any. A damaged one is reported (it is derived data
/// and will be rewritten) rather than stopping the run.
fn load_previous_unresolved(path: &Path, c: &mut Collector) -> Option<UnresolvedList> {
    if !path.exists() {
        return None;
    }
    match UnresolvedList::load(path) {
        Ok(l) => Some(l),
        Err(e) => {
            c.add_problem(InputProblem {
                path: path.to_path_buf(),
                line: None,
                entry: None,
                message: format!("previous unresolved list unreadable ({e}); it is rewritten"),
            });
            None
        }
    }
}

/// The state both tools start from: the existing labels read into a fresh [`Collector`], the
/// earlier run's unresolved list, and what the output file held before this run.
pub(crate) struct Run {
    pub c: Collector,
    /// The earlier run's unresolved list (`None` when absent or unreadable; unreadable is a
    /// problem in `c`).
    pub previous_unresolved: Option<UnresolvedList>,
    /// Tickers the output file had before this run.
    pub before: BTreeSet<MarketTicker>,
}

/// What a run wrote and what its inputs held, for the tools' outcomes.
pub(crate) struct Written {
    pub labels: LabelsFile,
    pub unresolved: UnresolvedList,
    /// Labels whose ticker the output file did not have before.
    pub new_labels: usize,
    pub inputs: Vec<InputSummary>,
    pub conflicts: Vec<LabelConflict>,
    pub problems: Vec<InputProblem>,
    pub problems_total: u64,
}

impl Run {
    /// Reads the existing labels in order (`labels_path`, then `output` when another file,
    /// then `labels_in`; see [`load_labels_files`]) and the earlier unresolved list at
    /// `unresolved_output`.
    pub fn start(
        labels_path: Option<&Path>,
        output: &Path,
        labels_in: &[PathBuf],
        unresolved_output: &Path,
    ) -> Result<Run, LabelsRunError> {
        let mut optional: Vec<&Path> = Vec::new();
        if let Some(p) = labels_path {
            optional.push(p);
        }
        optional.push(output);
        let existing = load_labels_files(&optional, labels_in)?;
        let mut c = Collector::default();
        let previous_unresolved = load_previous_unresolved(unresolved_output, &mut c);
        let out_key = canonical(output);
        let before: BTreeSet<MarketTicker> = existing
            .iter()
            .filter(|(p, _)| canonical(p) == out_key)
            .flat_map(|(_, f)| f.labels.keys().cloned())
            .collect();
        for (path, file) in existing {
            c.add_labels_file(InputKind::LabelsFile, &path, file);
        }
        Ok(Run {
            c,
            previous_unresolved,
            before,
        })
    }

    /// Writes the labels and the unresolved list, both stamped `generated_at`. `labels` is the
    /// file to write, `None` for everything collected. The unresolved list names every
    /// collected market without a label, plus the earlier entries for markets nobody
    /// mentioned now.
    pub fn finish(
        mut self,
        labels: Option<LabelsFile>,
        output: &Path,
        unresolved_output: &Path,
        generated_at: DateTime<Utc>,
    ) -> Result<Written, LabelsRunError> {
        let c = &mut self.c;
        if let Some(prev) = &self.previous_unresolved {
            c.carry_unresolved(prev, unresolved_output);
        }
        let mut unresolved = c.unresolved_list();
        unresolved.generated_at = Some(generated_at);
        let mut labels = labels.unwrap_or_else(|| std::mem::take(&mut c.labels));
        labels.generated_at = Some(generated_at);
        save_outputs(&labels, output, &unresolved, unresolved_output)?;
        let new_labels = labels
            .labels
            .keys()
            .filter(|t| !self.before.contains(*t))
            .count();
        Ok(Written {
            labels,
            unresolved,
            new_labels,
            inputs: std::mem::take(&mut c.inputs),
            conflicts: std::mem::take(&mut c.conflicts),
            problems: std::mem::take(&mut c.problems),
            problems_total: c.problems_total,
        })
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Saves the labels and the unresolved list atomically, creating missing parent folders.
fn save_outputs(
    labels: &LabelsFile,
    labels_path: &Path,
    unresolved: &UnresolvedList,
    unresolved_path: &Path,
) -> Result<(), LabelsRunError> {
    for p in [labels_path, unresolved_path] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LabelsRunError::Io {
                path: dir.to_path_buf(),
                message: format!("cannot create folder: {e}"),
            })?;
        }
    }
    labels.save(labels_path)?;
    unresolved.save(unresolved_path)?;
    Ok(())
}

/// Labels per source (`api`, `sidecar`, …; `unknown` for bare-map labels).
pub fn count_by_source(labels: &LabelsFile) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in labels.labels.values() {
        let k = l
            .source
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into());
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Unresolved markets per reason.
pub fn count_by_reason(list: &UnresolvedList) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for u in &list.unresolved {
        *m.entry(u.reason.as_str().to_string()).or_insert(0) += 1;
    }
    m
}

fn join_counts(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unresolved lines of both summaries: how many were written where, and why.
fn write_unresolved(
    f: &mut fmt::Formatter<'_>,
    unresolved: &UnresolvedList,
    path: &Path,
) -> fmt::Result {
    writeln!(
        f,
        "unresolved: {} -> {}",
        unresolved.unresolved.len(),
        path.display()
    )?;
    writeln!(
        f,
        "  by reason: {}",
        join_counts(&count_by_reason(unresolved))
    )
}

/// The shared tail of both summaries: conflicts and problems, each listed.
fn write_conflicts_and_problems(
    f: &mut fmt::Formatter<'_>,
    conflicts: &[LabelConflict],
    problems: &[InputProblem],
    problems_total: u64,
) -> fmt::Result {
    writeln!(
        f,
        "conflicts: {}{}",
        conflicts.len(),
        if conflicts.is_empty() {
            ""
        } else {
            " (the label read first was kept)"
        }
    )?;
    for c in conflicts {
        writeln!(f, "  {c}")?;
    }
    if problems_total > 0 {
        writeln!(
            f,
            "problems: {problems_total} (skipped files, lines or entries){}",
            if (problems.len() as u64) < problems_total {
                format!("; first {} listed", problems.len())
            } else {
                String::new()
            }
        )?;
        for p in problems {
            writeln!(f, "  {p}")?;
        }
    } else {
        writeln!(f, "problems: 0")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
