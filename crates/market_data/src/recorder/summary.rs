//! Reads an output folder back and says what is in it (`download_highres --summary`): every
//! snapshot file through [`SnapshotReader`] (so a summary also proves the files are readable),
//! the markets sidecar, and the captures.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use pipeline::ids::{MarketTicker, SeriesTicker};
use pipeline::schema::markets::{fold_latest, markets_path, read_markets};
use pipeline::snapshot::{resolve_glob, Line, MarkerKind, ReadOptions, ReadReport, SnapshotReader};

use super::{capture_glob, snapshot_glob, RecorderError};
use crate::capture::CaptureReader;

/// One market's lines in the snapshot files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketLines {
    pub rows: u64,
    pub gaps: u64,
    pub resyncs: u64,
    pub closed: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

/// What the sidecar says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarSummary {
    pub path: PathBuf,
    pub lines: usize,
    pub markets: usize,
    /// Markets whose result (yes/no/…) is known.
    pub results: usize,
    /// A problem reading it, if any (a partial last line, or an error).
    pub problem: Option<String>,
}

/// An output folder's content for one series.
#[derive(Debug, Clone)]
pub struct DirSummary {
    pub out_dir: PathBuf,
    pub series: SeriesTicker,
    pub snapshot_files: Vec<(PathBuf, u64)>,
    pub report: ReadReport,
    pub markets: BTreeMap<MarketTicker, MarketLines>,
    pub sidecar: Option<SidecarSummary>,
    pub capture_files: Vec<(PathBuf, u64)>,
    pub capture_frames: u64,
    /// Capture files that end in a truncated gzip member.
    pub capture_truncated: usize,
}

impl DirSummary {
    pub fn rows(&self) -> u64 {
        self.markets.values().map(|m| m.rows).sum()
    }
    pub fn gaps(&self) -> u64 {
        self.markets.values().map(|m| m.gaps).sum()
    }
    pub fn resyncs(&self) -> u64 {
        self.markets.values().map(|m| m.resyncs).sum()
    }
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_files.iter().map(|f| f.1).sum()
    }
}

fn stamp(ms: Option<i64>) -> String {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "-".into())
}

impl fmt::Display for DirSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.rows();
        writeln!(
            f,
            "{} ({}): {} snapshot file(s), {} bytes; {} market(s): {} rows, {} gap, {} resync, {} closed markers{}",
            self.out_dir.display(),
            self.series,
            self.snapshot_files.len(),
            self.snapshot_bytes(),
            self.markets.len(),
            rows,
            self.gaps(),
            self.resyncs(),
            self.markets.values().map(|m| m.closed).sum::<u64>(),
            if rows > 0 {
                format!(
                    " ({:.1} bytes/row)",
                    self.snapshot_bytes() as f64 / rows as f64
                )
            } else {
                String::new()
            }
        )?;
        const SHOWN: usize = 30;
        for (t, m) in self.markets.iter().take(SHOWN) {
            writeln!(
                f,
                "  {t}: {} rows, {} gap, {} resync{}, {} .. {}",
                m.rows,
                m.gaps,
                m.resyncs,
                if m.closed > 0 { ", closed" } else { "" },
                stamp(m.first_ts),
                stamp(m.last_ts)
            )?;
        }
        if self.markets.len() > SHOWN {
            writeln!(f, "  … and {} more market(s)", self.markets.len() - SHOWN)?;
        }
        if self.report.is_clean() {
            writeln!(f, "  every snapshot file reads cleanly")?;
        } else {
            for l in self.report.to_string().lines() {
                writeln!(f, "  {l}")?;
            }
        }
        match &self.sidecar {
            Some(s) => writeln!(
                f,
                "  markets sidecar {}: {} lines, {} markets, {} with a result{}",
                s.path.display(),
                s.lines,
                s.markets,
                s.results,
                s.problem
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            )?,
            None => writeln!(f, "  no markets sidecar")?,
        }
        if !self.capture_files.is_empty() {
            writeln!(
                f,
                "  captures: {} file(s), {} frames, {} bytes{}",
                self.capture_files.len(),
                self.capture_frames,
                self.capture_files.iter().map(|c| c.1).sum::<u64>(),
                if self.capture_truncated > 0 {
                    format!(", {} truncated", self.capture_truncated)
                } else {
                    String::new()
                }
            )?;
        }
        Ok(())
    }
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Reads everything `download_highres` wrote for `series` in `out_dir`.
pub fn summarize(out_dir: &Path, series: &SeriesTicker) -> Result<DirSummary, RecorderError> {
    let bad = |e: pipeline::snapshot::ReadError| RecorderError::Output(e.to_string());
    let files = resolve_glob(&snapshot_glob(out_dir, series)).map_err(bad)?;
    let mut markets: BTreeMap<MarketTicker, MarketLines> = BTreeMap::new();
    let mut rd = SnapshotReader::from_paths(files.clone(), ReadOptions::default());
    for line in rd.by_ref() {
        let m = markets.entry(line.market_ticker().clone()).or_default();
        let ts = line.ts_ms();
        m.first_ts = Some(m.first_ts.map_or(ts, |f| f.min(ts)));
        m.last_ts = Some(m.last_ts.map_or(ts, |l| l.max(ts)));
        match &line {
            Line::Snapshot(_) => m.rows += 1,
            Line::Marker(k) => match k.event {
                MarkerKind::Gap => m.gaps += 1,
                MarkerKind::Resync => m.resyncs += 1,
                MarkerKind::Closed => m.closed += 1,
                MarkerKind::Other(_) => {}
            },
        }
    }
    let report = rd.into_report();
    let sidecar_path = markets_path(out_dir, series);
    let sidecar = sidecar_path
        .exists()
        .then(|| match read_markets(&sidecar_path) {
            Ok(r) => {
                let lines = r.records.len();
                let folded = fold_latest(r.records);
                SidecarSummary {
                    path: sidecar_path.clone(),
                    lines,
                    markets: folded.len(),
                    results: folded.values().filter(|m| m.result.is_some()).count(),
                    problem: r
                        .skipped_partial_line
                        .map(|l| format!("partial last line {l} skipped")),
                }
            }
            Err(e) => SidecarSummary {
                path: sidecar_path.clone(),
                lines: 0,
                markets: 0,
                results: 0,
                problem: Some(e.to_string()),
            },
        });
    let mut capture_files = Vec::new();
    let mut capture_frames = 0;
    let mut capture_truncated = 0;
    for p in resolve_glob(&capture_glob(out_dir, series)).map_err(bad)? {
        if let Ok(mut r) = CaptureReader::open(&p) {
            capture_frames += r.by_ref().filter(|x| x.is_ok()).count() as u64;
            if r.stats().truncated {
                capture_truncated += 1;
            }
        }
        capture_files.push((p.clone(), len(&p)));
    }
    Ok(DirSummary {
        out_dir: out_dir.to_path_buf(),
        series: series.clone(),
        snapshot_files: files.iter().map(|p| (p.clone(), len(p))).collect(),
        report,
        markets,
        sidecar,
        capture_files,
        capture_frames,
        capture_truncated,
    })
}
