//! `sync_labels`: labels aligned to the markets present in the snapshot files, asking the
//! exchange only for the outcomes not known yet.
//!
//! The exchange is reached through [`OutcomeSource`], so the logic here is independent of the
//! HTTP client: production wires Kalshi's REST API behind it (`GET /markets?tickers=…`, then
//! `GET /historical/markets` for markets settled before the historical cutoff), tests a fake.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use super::market::MarketOutcome;
use super::{
    count_by_source, is_final_reason, join_counts, write_conflicts_and_problems, write_unresolved,
    Collector, InputKind, InputProblem, InputSummary, LabelConflict, LabelsRunError, NoProgress,
    Origin, Progress, Run,
};
use crate::config::RuntimeConfig;
use crate::ids::MarketTicker;
use crate::schema::{LabelSource, LabelsFile, Unresolved, UnresolvedList, UnresolvedReason};
use crate::snapshot::{Line, ReadOptions, ReadReport, SnapshotReader};

/// What the exchange says about one requested market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchedOutcome {
    /// The market object's settlement fields (see [`MarketOutcome::from_json`]).
    Market(MarketOutcome),
    /// The exchange does not know the ticker (neither live nor historical).
    NotFound(MarketTicker),
    /// The exchange answered about the ticker but the answer could not be read (a market
    /// object with a bad field): listed as unresolved `unreadable` with the message, and
    /// asked again next run.
    Unreadable {
        ticker: MarketTicker,
        message: String,
    },
}

/// Where [`sync`] gets the outcomes it is missing.
///
/// `fetch` is called with batches of at most [`SyncOptions::batch_size`] distinct tickers and
/// answers with what it learned about them, in any order. A requested ticker left out of the
/// answer counts as not found; an answer about a ticker that was not requested is ignored. An
/// error stops the fetching: what was learned before is kept and written, the tickers not
/// fetched are listed as unresolved (`fetch_failed`), and the next run asks for them again.
pub trait OutcomeSource {
    type Error: fmt::Display;

    fn fetch(&mut self, tickers: &[MarketTicker]) -> Result<Vec<FetchedOutcome>, Self::Error>;
}

/// What [`sync`] reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// Glob of the snapshot files whose markets are to be labelled.
    pub snapshots: String,
    /// The aligned labels file to write. If it exists its labels are kept, also those of
    /// markets not in the snapshots (so syncing into the main labels file never drops one).
    pub output: PathBuf,
    /// The unresolved list to write. If it exists, entries for markets not in the snapshots
    /// are carried over, and `scalar`/`voided` markets are not asked about again.
    pub unresolved_output: PathBuf,
    /// The configured labels file: known labels, read first when it exists.
    pub labels_path: Option<PathBuf>,
    /// More labels files with known labels (`--labels-in`); each must exist.
    pub labels_in: Vec<PathBuf>,
    /// Most tickers per [`OutcomeSource::fetch`] call (at least 1).
    pub batch_size: usize,
    /// The current time: markets whose snapshots say they close later are not asked about,
    /// and it is the `generated_at` of the files written.
    pub now: DateTime<Utc>,
    /// Ask again about markets an earlier run found `scalar` or `voided`.
    pub recheck_final: bool,
}

impl SyncOptions {
    /// Default batch: 100 tickers (one `GET /markets?tickers=` page).
    pub const DEFAULT_BATCH: usize = 100;

    /// The configured paths: every snapshot file in `data_dir`, labels in `labels_path`, the
    /// unresolved list in `unresolved_path`.
    pub fn from_config(cfg: &RuntimeConfig, now: DateTime<Utc>) -> SyncOptions {
        SyncOptions {
            snapshots: default_snapshot_glob(&cfg.data_dir),
            output: cfg.labels_path.clone(),
            unresolved_output: cfg.unresolved_path.clone(),
            labels_path: Some(cfg.labels_path.clone()),
            labels_in: Vec::new(),
            batch_size: Self::DEFAULT_BATCH,
            now,
            recheck_final: false,
        }
    }
}

/// `<data_dir>/*.snap_*ms.jsonl*`, with the folder's own glob characters escaped.
pub fn default_snapshot_glob(data_dir: &Path) -> String {
    let dir = glob::Pattern::escape(&data_dir.to_string_lossy());
    format!("{}/*.snap_*ms.jsonl*", dir.trim_end_matches('/'))
}

/// What [`sync`] did. `Display` is the summary `sync_labels` prints.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    /// The labels written to `output`.
    pub labels: LabelsFile,
    /// The unresolved list written to `unresolved_output`.
    pub unresolved: UnresolvedList,
    pub output: PathBuf,
    pub unresolved_output: PathBuf,
    /// What the snapshot reader read and skipped.
    pub snapshot_report: ReadReport,
    /// Distinct markets in the snapshots.
    pub snapshot_tickers: usize,
    /// Snapshot markets labelled before fetching.
    pub known: usize,
    /// Snapshot markets left unresolved without asking: an earlier run found them `scalar` or
    /// `voided`.
    pub skipped_final: usize,
    /// Snapshot markets not asked about because their snapshots say they close after `now`.
    pub not_closed: usize,
    /// Tickers sent to the source, and in how many calls.
    pub requested: usize,
    pub fetch_calls: usize,
    /// Labels learned from the source.
    pub fetched_labels: usize,
    /// Labels whose ticker the output file did not have before.
    pub new_labels: usize,
    /// Labels kept from the output file for markets not in the snapshots.
    pub kept_unaligned: usize,
    /// Known labels (from `labels_path`/`labels_in`) of markets not in the snapshots, not
    /// copied into the output (they stay in their files).
    pub left_out: usize,
    /// The source's error, if fetching stopped early.
    pub fetch_error: Option<String>,
    pub inputs: Vec<InputSummary>,
    pub conflicts: Vec<LabelConflict>,
    pub problems: Vec<InputProblem>,
    pub problems_total: u64,
}

impl SyncOutcome {
    /// Snapshot markets that have a label in the output.
    pub fn labelled_snapshot_markets(&self) -> usize {
        self.labels.len() - self.kept_unaligned
    }

    /// No fetch error, conflict or problem (snapshot damage included).
    pub fn is_clean(&self) -> bool {
        self.fetch_error.is_none()
            && self.conflicts.is_empty()
            && self.problems_total == 0
            && self.snapshot_report.is_clean()
    }
}

impl fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.snapshot_report.totals();
        writeln!(
            f,
            "snapshots: {} file(s), {} lines, {} markets{}",
            t.files,
            t.lines,
            self.snapshot_tickers,
            if self.snapshot_report.is_clean() {
                String::new()
            } else {
                format!(
                    "; {} problem(s) in the snapshot files (see the log)",
                    self.snapshot_report.problems_total
                )
            }
        )?;
        writeln!(
            f,
            "labels: {} of {} snapshot markets labelled, {} new -> {}",
            self.labelled_snapshot_markets(),
            self.snapshot_tickers,
            self.new_labels,
            self.output.display()
        )?;
        writeln!(
            f,
            "  already known {}; fetched {} label(s) for {} requested market(s) in {} call(s); \
             {} not closed yet; {} final unresolved not asked again",
            self.known,
            self.fetched_labels,
            self.requested,
            self.fetch_calls,
            self.not_closed,
            self.skipped_final
        )?;
        if self.kept_unaligned + self.left_out > 0 {
            writeln!(
                f,
                "  {} label(s) of markets not in the snapshots kept from the output file; {} \
                 known label(s) of such markets not copied",
                self.kept_unaligned, self.left_out
            )?;
        }
        writeln!(
            f,
            "  by source: {}",
            join_counts(&count_by_source(&self.labels))
        )?;
        write_unresolved(f, &self.unresolved, &self.unresolved_output)?;
        if let Some(e) = &self.fetch_error {
            writeln!(
                f,
                "fetch error: {e} (fetching stopped; the rest is listed as fetch_failed)"
            )?;
        }
        write_conflicts_and_problems(f, &self.conflicts, &self.problems, self.problems_total)
    }
}

/// [`sync_with_progress`] without progress reports.
pub fn sync(
    opts: SyncOptions,
    source: &mut impl OutcomeSource,
) -> Result<SyncOutcome, LabelsRunError> {
    sync_with_progress(opts, source, &mut NoProgress)
}

/// Labels every market found in the snapshot files:
///
/// 1. known labels: `labels_path`, then `output` (when another file), then `labels_in`;
/// 2. the snapshot files are streamed once for their distinct `market_ticker`s (and each
///    market's latest `close_ts_ms`);
/// 3. markets without a label are fetched from `source` in batches, except those closing
///    after `now` (unresolved `not_settled`) and those an earlier run found `scalar`/`voided`
///    (carried over, unless `recheck_final`);
/// 4. the output holds the labels of the snapshot markets plus whatever the output file held
///    before; the unresolved list names every snapshot market without a label, plus earlier
///    entries for other markets.
///
/// A re-run asks the source only about markets still without a label. Known labels that
/// disagree are reported as conflicts (the first read is kept).
pub fn sync_with_progress(
    opts: SyncOptions,
    source: &mut impl OutcomeSource,
    progress: &mut dyn Progress,
) -> Result<SyncOutcome, LabelsRunError> {
    let batch_size = opts.batch_size.max(1);
    let mut run = Run::start(
        opts.labels_path.as_deref(),
        &opts.output,
        &opts.labels_in,
        &opts.unresolved_output,
    )?;
    let (c, previous_unresolved, before) = (&mut run.c, &run.previous_unresolved, &run.before);

    let (markets, snapshot_report) = scan_snapshot_tickers(&opts.snapshots, progress)?;

    let now_ms = opts.now.timestamp_millis();
    let previous_final: BTreeMap<&MarketTicker, &Unresolved> = previous_unresolved
        .iter()
        .flat_map(|l| l.unresolved.iter())
        .filter(|u| is_final_reason(&u.reason))
        .map(|u| (&u.ticker, u))
        .collect();
    let mut known = 0;
    let mut skipped_final = 0;
    let mut not_closed = 0;
    let mut missing: Vec<MarketTicker> = Vec::new();
    for (ticker, close_ts_ms) in &markets {
        if c.labels.labels.contains_key(ticker) {
            known += 1;
        } else if let (false, Some(u)) = (opts.recheck_final, previous_final.get(ticker)) {
            skipped_final += 1;
            c.add_unresolved(
                (*u).clone(),
                Origin::file(InputKind::UnresolvedList, &opts.unresolved_output, None),
            );
        } else if let Some(close) = close_ts_ms.filter(|&t| t > now_ms) {
            not_closed += 1;
            c.add_unresolved(
                Unresolved {
                    ticker: ticker.clone(),
                    reason: UnresolvedReason::NotSettled,
                    detail: Some(format!("closes at {}", fmt_ms(close))),
                },
                Origin::api(),
            );
        } else {
            missing.push(ticker.clone());
        }
    }

    let mut fetch_calls = 0;
    let mut fetched_labels = 0;
    let mut fetch_error = None;
    progress.start("fetching outcomes", missing.len() as u64, "markets");
    let mut batches = missing.chunks(batch_size);
    for batch in batches.by_ref() {
        fetch_calls += 1;
        let answer = match source.fetch(batch) {
            Ok(a) => a,
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(error = %msg, "fetching outcomes failed; stopping");
                fail_batch(c, batch, &msg);
                fetch_error = Some(msg);
                break;
            }
        };
        fetched_labels += absorb_answer(c, batch, answer);
        progress.advance(batch.len() as u64);
    }
    if let Some(msg) = &fetch_error {
        for batch in batches {
            fail_batch(c, batch, msg);
        }
    }
    progress.finish();

    // Aligned output: the snapshot markets, plus whatever the output file already held.
    let mut out = LabelsFile::new(opts.now);
    let mut kept_unaligned = 0;
    let mut left_out = 0;
    for (t, l) in &c.labels.labels {
        if markets.contains_key(t) {
            out.labels.insert(t.clone(), l.clone());
        } else if before.contains(t) {
            kept_unaligned += 1;
            out.labels.insert(t.clone(), l.clone());
        } else {
            left_out += 1;
        }
    }
    let w = run.finish(Some(out), &opts.output, &opts.unresolved_output, opts.now)?;
    tracing::info!(
        snapshot_markets = markets.len(),
        known,
        requested = missing.len(),
        fetched_labels,
        unresolved = w.unresolved.unresolved.len(),
        "labels synced"
    );
    Ok(SyncOutcome {
        labels: w.labels,
        unresolved: w.unresolved,
        output: opts.output,
        unresolved_output: opts.unresolved_output,
        snapshot_report,
        snapshot_tickers: markets.len(),
        known,
        skipped_final,
        not_closed,
        requested: missing.len(),
        fetch_calls,
        fetched_labels,
        new_labels: w.new_labels,
        kept_unaligned,
        left_out,
        fetch_error,
        inputs: w.inputs,
        conflicts: w.conflicts,
        problems: w.problems,
        problems_total: w.problems_total,
    })
}

/// The distinct markets of the snapshot files, each with the `close_ts_ms` of its latest
/// snapshot that has one. No file matching is an error (a wrong glob must not write an empty
/// labels file); damaged files are read up to the damage and reported.
fn scan_snapshot_tickers(
    pattern: &str,
    progress: &mut dyn Progress,
) -> Result<(BTreeMap<MarketTicker, Option<i64>>, ReadReport), LabelsRunError> {
    let err = |message: String| LabelsRunError::Snapshots {
        pattern: pattern.to_string(),
        message,
    };
    let mut reader = SnapshotReader::from_glob(pattern, ReadOptions::default())
        .map_err(|e| err(e.to_string()))?;
    if reader.files().is_empty() {
        return Err(err("no snapshot file matches".into()));
    }
    progress.start("reading snapshots", reader.files().len() as u64, "files");
    let mut markets: BTreeMap<MarketTicker, (i64, Option<i64>)> = BTreeMap::new();
    let mut files_done = 0;
    while let Some(line) = reader.next() {
        // Only a snapshot carries close_ts_ms; a marker still names a market.
        let (ts, close) = match &line {
            Line::Snapshot(r) => (r.ts_ms, r.close_ts_ms),
            Line::Marker(m) => (m.ts_ms, None),
        };
        let ticker = line.market_ticker();
        match markets.get_mut(ticker) {
            Some(e) => {
                if close.is_some() && ts >= e.0 {
                    *e = (ts, close);
                }
            }
            None => {
                markets.insert(
                    ticker.clone(),
                    (if close.is_some() { ts } else { i64::MIN }, close),
                );
            }
        }
        let done = reader.report().files.len();
        if done > files_done {
            progress.advance((done - files_done) as u64);
            files_done = done;
        }
    }
    let report = reader.into_report();
    progress.advance((report.files.len() - files_done) as u64);
    progress.finish();
    if !report.is_clean() {
        tracing::warn!(
            problems = report.problems_total,
            "snapshot files had problems:\n{report}"
        );
    }
    Ok((
        markets.into_iter().map(|(t, (_, c))| (t, c)).collect(),
        report,
    ))
}

/// Takes one batch's answer into the collector; returns the labels learned.
fn absorb_answer(c: &mut Collector, batch: &[MarketTicker], answer: Vec<FetchedOutcome>) -> usize {
    let asked: BTreeSet<&MarketTicker> = batch.iter().collect();
    let mut answered: BTreeSet<MarketTicker> = BTreeSet::new();
    let mut labels = Vec::new();
    for a in answer {
        let (ticker, verdict) = match a {
            FetchedOutcome::Market(m) => (m.ticker.clone(), m.classify(LabelSource::Api)),
            FetchedOutcome::NotFound(t) => (
                t.clone(),
                Err(Unresolved {
                    ticker: t,
                    reason: UnresolvedReason::NotFound,
                    detail: None,
                }),
            ),
            FetchedOutcome::Unreadable { ticker, message } => (
                ticker.clone(),
                Err(Unresolved {
                    ticker,
                    reason: UnresolvedReason::Other("unreadable".into()),
                    detail: Some(message),
                }),
            ),
        };
        if !asked.contains(&ticker) {
            tracing::debug!(ticker = %ticker, "outcome for a ticker not asked about; ignored");
            continue;
        }
        answered.insert(ticker.clone());
        match verdict {
            Ok(l) => labels.push((ticker, l, Origin::api())),
            Err(u) => c.add_unresolved(u, Origin::api()),
        }
    }
    for t in batch {
        if !answered.contains(t) {
            c.add_unresolved(
                Unresolved {
                    ticker: t.clone(),
                    reason: UnresolvedReason::NotFound,
                    detail: Some("not returned by the exchange".into()),
                },
                Origin::api(),
            );
        }
    }
    let before = c.labels.len();
    c.add_labels(labels);
    c.labels.len() - before
}

fn fail_batch(c: &mut Collector, batch: &[MarketTicker], msg: &str) {
    for t in batch {
        c.add_unresolved(
            Unresolved {
                ticker: t.clone(),
                reason: UnresolvedReason::Other("fetch_failed".into()),
                detail: Some(msg.to_string()),
            },
            Origin::api(),
        );
    }
}

fn fmt_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}
