//! Training data: snapshot markets joined with their labels, as model steps.
//!
//! [`build`] streams the snapshot files (in path order, which is time order for the recorder's
//! names) through one [`FeatureState`] per market, the same code replay and live run, and keeps
//! only the steps (one per `step_ms`), never the 100 ms rows, so a month of one series fits in
//! a few hundred megabytes. A market without a label, or with fewer than `min_steps` steps, is
//! listed, not guessed.
//!
//! [`split_by_time`] then splits whole markets by close time into train / validation / test and
//! purges: a validation (test) market whose first step comes before the last close of the
//! training (training + validation) markets is dropped and listed, so no later split overlaps
//! an earlier one in time.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::features::{FeatureConfig, FeatureState, Step, N_FEATURES};
use crate::ids::MarketTicker;
use crate::schema::labels::LabelsFile;
use crate::snapshot::{Line, ReadOptions, ReadReport, SnapshotReader};

/// One contiguous run of steps of a market (a segment): one training sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    pub ts_ms: Vec<i64>,
    /// Raw (unnormalised) features.
    pub x: Vec<[f32; N_FEATURES]>,
    /// The market's mid as a probability at each step.
    pub mid: Vec<f64>,
    /// Seconds to close at each step.
    pub seconds_to_close: Vec<f64>,
}

impl Sequence {
    fn new() -> Sequence {
        Sequence {
            ts_ms: Vec::new(),
            x: Vec::new(),
            mid: Vec::new(),
            seconds_to_close: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.ts_ms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ts_ms.is_empty()
    }
}

/// A labelled market's steps.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketData {
    pub ticker: MarketTicker,
    /// 1.0 YES, 0.0 NO.
    pub outcome: f64,
    /// Close time (ms): the label's `close_time`, else the rows' `close_ts_ms`.
    pub close_ms: i64,
    pub sequences: Vec<Sequence>,
}

impl MarketData {
    pub fn steps(&self) -> usize {
        self.sequences.iter().map(Sequence::len).sum()
    }
    /// The first step's time.
    pub fn first_ms(&self) -> i64 {
        self.sequences
            .first()
            .and_then(|s| s.ts_ms.first().copied())
            .unwrap_or(self.close_ms)
    }
    /// The last step's time.
    pub fn last_ms(&self) -> i64 {
        self.sequences
            .last()
            .and_then(|s| s.ts_ms.last().copied())
            .unwrap_or(self.close_ms)
    }
}

/// Why a market with rows was left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Excluded {
    /// No label in the labels file.
    NoLabel,
    /// Fewer steps than `min_steps`.
    TooShort { steps: usize, needed: usize },
    /// Neither the rows nor the label give a close time.
    NoCloseTime,
    /// A row older than the market's previous row (files out of order or overlapping).
    OutOfOrder { rows: u64 },
}

impl fmt::Display for Excluded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Excluded::NoLabel => f.write_str("no label"),
            Excluded::TooShort { steps, needed } => {
                write!(f, "too short ({steps} steps, at least {needed} needed)")
            }
            Excluded::NoCloseTime => f.write_str("no close time"),
            Excluded::OutOfOrder { rows } => write!(f, "{rows} rows out of time order"),
        }
    }
}

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub features: FeatureConfig,
    /// Markets with fewer steps are excluded.
    pub min_steps: usize,
    pub read: ReadOptions,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            features: FeatureConfig::default(),
            min_steps: 30,
            read: ReadOptions::default(),
        }
    }
}

/// The labelled markets, sorted by close time (then ticker), and what was left out.
#[derive(Debug)]
pub struct Dataset {
    pub markets: Vec<MarketData>,
    pub excluded: BTreeMap<MarketTicker, Excluded>,
    /// Rows read (snapshots, not markers).
    pub rows: u64,
    pub files: Vec<PathBuf>,
    /// What the reader skipped (damaged lines, truncated members), with `file:line`.
    pub read_report: ReadReport,
}

/// Streams `files` into per-market steps and joins them with `labels`.
pub fn build(files: &[PathBuf], labels: &LabelsFile, opts: &BuildOptions) -> Dataset {
    struct Acc {
        state: FeatureState,
        sequences: Vec<Sequence>,
        last_ts: i64,
        out_of_order: u64,
        close_ms: Option<i64>,
    }
    let mut reader = SnapshotReader::from_paths(files.iter().cloned(), opts.read.clone());
    let mut accs: HashMap<MarketTicker, Acc> = HashMap::new();
    let mut rows = 0u64;
    let push = |acc: &mut Acc, step: Step| {
        if step.new_segment || acc.sequences.is_empty() {
            acc.sequences.push(Sequence::new());
        }
        let s = acc.sequences.last_mut().expect("pushed above");
        s.ts_ms.push(step.ts_ms);
        s.x.push(step.x);
        s.mid.push(step.mid);
        s.seconds_to_close
            .push(step.seconds_to_close.unwrap_or(f64::NAN));
    };
    for line in &mut reader {
        let ticker = line.market_ticker();
        let acc = match accs.get_mut(ticker) {
            Some(a) => a,
            None => {
                let close = labels
                    .get(ticker.as_str())
                    .and_then(|l| l.close_time)
                    .map(|t| t.timestamp_millis());
                accs.entry(ticker.clone()).or_insert(Acc {
                    state: FeatureState::new(opts.features, close),
                    sequences: Vec::new(),
                    last_ts: i64::MIN,
                    out_of_order: 0,
                    close_ms: close,
                })
            }
        };
        if line.ts_ms() < acc.last_ts {
            acc.out_of_order += 1;
            continue;
        }
        acc.last_ts = line.ts_ms();
        if let Line::Snapshot(r) = &line {
            rows += 1;
            if acc.close_ms.is_none() {
                acc.close_ms = r.close_ts_ms;
            }
        }
        if let Some(step) = acc.state.push(&line) {
            push(acc, step);
        }
    }
    let read_report = reader.report().clone();
    let files = reader.files().to_vec();

    let mut markets = Vec::new();
    let mut excluded = BTreeMap::new();
    for (ticker, acc) in accs {
        let steps: usize = acc.sequences.iter().map(Sequence::len).sum();
        let label = labels.get(ticker.as_str());
        let reason = if label.is_none() {
            Some(Excluded::NoLabel)
        } else if acc.out_of_order > 0 {
            Some(Excluded::OutOfOrder {
                rows: acc.out_of_order,
            })
        } else if acc.close_ms.is_none() {
            Some(Excluded::NoCloseTime)
        } else if steps < opts.min_steps {
            Some(Excluded::TooShort {
                steps,
                needed: opts.min_steps,
            })
        } else {
            None
        };
        match (reason, label, acc.close_ms) {
            (None, Some(label), Some(close_ms)) => markets.push(MarketData {
                ticker,
                outcome: label.result.value(),
                close_ms,
                sequences: acc.sequences,
            }),
            (reason, _, _) => {
                excluded.insert(ticker, reason.unwrap_or(Excluded::NoLabel));
            }
        }
    }
    markets.sort_by(|a, b| a.close_ms.cmp(&b.close_ms).then(a.ticker.cmp(&b.ticker)));
    Dataset {
        markets,
        excluded,
        rows,
        files,
        read_report,
    }
}

/// Split fractions (the rest is training).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitFractions {
    pub val: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            val: 0.15,
            test: 0.15,
        }
    }
}

/// Indices into [`Dataset::markets`] (close-time order) per split.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    /// Dropped because they overlap an earlier split in time.
    pub purged: Vec<MarketTicker>,
}

/// Too few markets for the split.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{have} labelled markets usable, but a {val_pct}% validation / {test_pct}% test split needs at least {needed} (at least 2 to train on and 1 each to validate and test){purge}")]
pub struct SplitError {
    pub have: usize,
    pub needed: usize,
    pub val_pct: u32,
    pub test_pct: u32,
    pub purge: String,
}

fn sizes(n: usize, f: SplitFractions) -> (usize, usize, usize) {
    let test = (n as f64 * f.test).round() as usize;
    let val = (n as f64 * f.val).round() as usize;
    let train = n.saturating_sub(test + val);
    (train, val, test)
}

/// The smallest market count for which `f` leaves ≥ 2 training and ≥ 1 validation and test
/// markets.
pub fn min_markets(f: SplitFractions) -> usize {
    (1..100_000)
        .find(|&n| {
            let (a, b, c) = sizes(n, f);
            a >= 2 && b >= 1 && c >= 1
        })
        .unwrap_or(usize::MAX)
}

/// Splits `markets` (sorted by close time) into train / validation / test by close time, with
/// the purge described in the module docs.
pub fn split_by_time(markets: &[MarketData], f: SplitFractions) -> Result<Split, SplitError> {
    let n = markets.len();
    let err = |purge: String| SplitError {
        have: n,
        needed: min_markets(f),
        val_pct: (f.val * 100.0).round() as u32,
        test_pct: (f.test * 100.0).round() as u32,
        purge,
    };
    let (n_train, n_val, _) = sizes(n, f);
    if n < min_markets(f) {
        return Err(err(String::new()));
    }
    let mut split = Split {
        train: (0..n_train).collect(),
        ..Split::default()
    };
    let train_end = split
        .train
        .iter()
        .map(|&i| markets[i].close_ms)
        .max()
        .unwrap_or(i64::MIN);
    for (i, m) in markets
        .iter()
        .enumerate()
        .take(n_train + n_val)
        .skip(n_train)
    {
        if m.first_ms() < train_end {
            split.purged.push(m.ticker.clone());
        } else {
            split.val.push(i);
        }
    }
    let val_end = split
        .val
        .iter()
        .map(|&i| markets[i].close_ms)
        .max()
        .unwrap_or(i64::MIN)
        .max(train_end);
    for (i, m) in markets.iter().enumerate().skip(n_train + n_val) {
        if m.first_ms() < val_end {
            split.purged.push(m.ticker.clone());
        } else {
            split.test.push(i);
        }
    }
    if split.val.is_empty() || split.test.is_empty() {
        return Err(err(format!(
            "; {} market(s) were purged for overlapping an earlier split in time",
            split.purged.len()
        )));
    }
    Ok(split)
}

/// The time span of some markets' steps (UTC).
pub fn span(markets: &[&MarketData]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let a = markets.iter().map(|m| m.first_ms()).min()?;
    let b = markets.iter().map(|m| m.last_ms()).max()?;
    Some((
        DateTime::from_timestamp_millis(a)?,
        DateTime::from_timestamp_millis(b)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn market(i: i64, first: i64, close: i64) -> MarketData {
        MarketData {
            ticker: MarketTicker::from(format!("KXT-{i}").as_str()),
            outcome: 1.0,
            close_ms: close,
            sequences: vec![Sequence {
                ts_ms: vec![first, close - 1000],
                x: vec![[0.0; N_FEATURES]; 2],
                mid: vec![0.5; 2],
                seconds_to_close: vec![1.0; 2],
            }],
        }
    }

    #[test]
    fn split_is_by_close_time_and_purges_overlaps() {
        let ms: Vec<MarketData> = (0..20).map(|i| market(i, i * 900, (i + 1) * 900)).collect();
        let s = split_by_time(&ms, SplitFractions::default()).unwrap();
        assert_eq!(s.train, (0..14).collect::<Vec<_>>());
        assert_eq!(s.val, vec![14, 15, 16]);
        assert_eq!(s.test, vec![17, 18, 19]);
        assert!(s.purged.is_empty());
        // A validation market that opened before the last training close is purged.
        let mut ms = ms;
        ms[14].sequences[0].ts_ms[0] = 13 * 900 + 1;
        let s = split_by_time(&ms, SplitFractions::default()).unwrap();
        assert_eq!(s.val, vec![15, 16]);
        assert_eq!(s.purged, vec![ms[14].ticker.clone()]);
    }

    #[test]
    fn too_few_markets_say_how_many_are_needed() {
        let ms: Vec<MarketData> = (0..3).map(|i| market(i, i * 900, (i + 1) * 900)).collect();
        let e = split_by_time(&ms, SplitFractions::default()).unwrap_err();
        assert_eq!(e.have, 3);
        assert_eq!(e.needed, min_markets(SplitFractions::default()));
        assert!(e.to_string().contains("3 labelled markets usable"), "{e}");
        assert!(e.needed >= 4);
    }
}
