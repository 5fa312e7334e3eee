//! `build_labels`: the labels file from everything archived locally, no network.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::sources::{expand_input, files_with_suffix, read_archive, read_sidecar, scan_capture};
use super::{
    count_by_reason, count_by_source, join_counts, write_conflicts_and_problems, write_unresolved,
    InputKind, InputProblem, InputSummary, LabelConflict, LabelsRunError, NoProgress, Progress,
    Run,
};
use crate::config::RuntimeConfig;
use crate::schema::{LabelSource, LabelsFile, UnresolvedList};

/// What [`build`] reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// The labels file to write (`labels/v1`). If it exists, its labels are kept.
    pub output: PathBuf,
    /// The unresolved list to write. If it exists, entries for markets no input mentions are
    /// carried over.
    pub unresolved_output: PathBuf,
    /// The configured labels file, read first when it exists (usually the same as `output`).
    pub labels_path: Option<PathBuf>,
    /// More labels files to merge in (`--labels-in`); each must exist.
    pub labels_in: Vec<PathBuf>,
    /// Folder scanned for markets sidecars (`*_markets.jsonl[.gz]`) and captures
    /// (`*.capture.jsonl[.gz]`); `None` to read only the explicit inputs. An absent folder
    /// contributes nothing.
    pub data_dir: Option<PathBuf>,
    /// Archived exchange data (`--archive`): files, folders (their files) or glob patterns.
    /// Each must name at least one file.
    pub archives: Vec<String>,
    /// The `generated_at` of the files written.
    pub generated_at: DateTime<Utc>,
}

impl BuildOptions {
    /// The configured paths: update `labels_path` from `data_dir`, write the unresolved list
    /// to `unresolved_path`.
    pub fn from_config(cfg: &RuntimeConfig, generated_at: DateTime<Utc>) -> BuildOptions {
        BuildOptions {
            output: cfg.labels_path.clone(),
            unresolved_output: cfg.unresolved_path.clone(),
            labels_path: Some(cfg.labels_path.clone()),
            labels_in: Vec::new(),
            data_dir: Some(cfg.data_dir.clone()),
            archives: Vec::new(),
            generated_at,
        }
    }
}

/// What [`build`] did. `Display` is the summary `build_labels` prints.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The labels written to `output`.
    pub labels: LabelsFile,
    /// The unresolved list written to `unresolved_output`.
    pub unresolved: UnresolvedList,
    pub output: PathBuf,
    pub unresolved_output: PathBuf,
    /// Labels whose ticker the output file did not have before.
    pub new_labels: usize,
    /// Every input file in the order read.
    pub inputs: Vec<InputSummary>,
    /// Disagreements between inputs (the label read first was kept).
    pub conflicts: Vec<LabelConflict>,
    /// The first [`MAX_PROBLEMS`](super::MAX_PROBLEMS) problems.
    pub problems: Vec<InputProblem>,
    pub problems_total: u64,
}

impl BuildOutcome {
    /// No conflict and no problem (what `--strict` requires).
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty() && self.problems_total == 0
    }

    pub fn labels_by_source(&self) -> std::collections::BTreeMap<String, usize> {
        count_by_source(&self.labels)
    }

    pub fn unresolved_by_reason(&self) -> std::collections::BTreeMap<String, usize> {
        count_by_reason(&self.unresolved)
    }

    /// Input files that were skipped as a whole.
    pub fn skipped_files(&self) -> Vec<&Path> {
        self.inputs
            .iter()
            .filter(|i| i.skipped)
            .map(|i| i.path.as_path())
            .collect()
    }
}

impl fmt::Display for BuildOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "labels: {} total, {} new -> {}",
            self.labels.len(),
            self.new_labels,
            self.output.display()
        )?;
        writeln!(f, "  by source: {}", join_counts(&self.labels_by_source()))?;
        let mut kinds = std::collections::BTreeMap::new();
        for i in &self.inputs {
            let e = kinds.entry(i.kind).or_insert((0usize, 0usize));
            e.0 += 1;
            if i.skipped {
                e.1 += 1;
            }
        }
        let inputs: Vec<String> = kinds
            .iter()
            .map(|(k, (n, skipped))| {
                if *skipped > 0 {
                    format!("{k} {n} ({skipped} skipped)")
                } else {
                    format!("{k} {n}")
                }
            })
            .collect();
        writeln!(
            f,
            "inputs: {}",
            if inputs.is_empty() {
                "none".into()
            } else {
                inputs.join(", ")
            }
        )?;
        write_unresolved(f, &self.unresolved, &self.unresolved_output)?;
        write_conflicts_and_problems(f, &self.conflicts, &self.problems, self.problems_total)
    }
}

/// [`build_with_progress`] without progress reports.
pub fn build(opts: BuildOptions) -> Result<BuildOutcome, LabelsRunError> {
    build_with_progress(opts, &mut NoProgress)
}

/// Builds or updates the labels file from local data, in this order:
///
/// 1. existing labels: `labels_path`, then `output` (when another file), then `labels_in`;
/// 2. markets sidecars in `data_dir`, sorted (source `sidecar`);
/// 3. captures in `data_dir`, sorted (source `capture`);
/// 4. `archives`, all files sorted (source `archive`; a sidecar or capture named there is read
///    as such).
///
/// The first label read for a ticker is kept; a later disagreeing one is reported as a
/// [`LabelConflict`]. Markets without a label go to the unresolved list with the most final
/// reason any input gave. A damaged input file, line or entry is reported and skipped. An
/// existing labels file that cannot be read, an explicit input that names no file, or an
/// output that cannot be written stops the run with an error and nothing is written.
pub fn build_with_progress(
    opts: BuildOptions,
    progress: &mut dyn Progress,
) -> Result<BuildOutcome, LabelsRunError> {
    // Resolve every input before reading any, so a typo stops the run at once.
    let mut archives: Vec<PathBuf> = Vec::new();
    for spec in &opts.archives {
        let files = expand_input(spec).map_err(|message| LabelsRunError::Archive {
            spec: spec.clone(),
            message,
        })?;
        archives.extend(files);
    }
    let (sidecars, captures) = match &opts.data_dir {
        Some(dir) => {
            let io = |e: std::io::Error| LabelsRunError::Io {
                path: dir.clone(),
                message: format!("cannot list data folder: {e}"),
            };
            let s = files_with_suffix(dir, &["_markets.jsonl", "_markets.jsonl.gz"]).map_err(io)?;
            let c = files_with_suffix(dir, &[".capture.jsonl", ".capture.jsonl.gz"]).map_err(io)?;
            if !dir.exists() {
                tracing::info!(dir = %dir.display(), "data folder absent; no sidecars or captures");
            }
            (s, c)
        }
        None => (Vec::new(), Vec::new()),
    };
    let already: BTreeSet<PathBuf> = sidecars.iter().chain(&captures).cloned().collect();
    archives.sort();
    archives.dedup();
    archives.retain(|p| !already.contains(p));

    let mut run = Run::start(
        opts.labels_path.as_deref(),
        &opts.output,
        &opts.labels_in,
        &opts.unresolved_output,
    )?;
    let c = &mut run.c;

    let total = (sidecars.len() + captures.len() + archives.len()) as u64;
    progress.start("reading inputs", total, "files");
    for p in &sidecars {
        let f = read_sidecar(p, LabelSource::Sidecar);
        c.add_findings(InputKind::Sidecar, p, f);
        progress.advance(1);
    }
    for p in &captures {
        let f = scan_capture(p);
        c.add_findings(InputKind::Capture, p, f);
        progress.advance(1);
    }
    for p in &archives {
        let f = read_archive(p);
        c.add_findings(InputKind::Archive, p, f);
        progress.advance(1);
    }
    progress.finish();

    let w = run.finish(
        None,
        &opts.output,
        &opts.unresolved_output,
        opts.generated_at,
    )?;
    tracing::info!(
        labels = w.labels.len(),
        new = w.new_labels,
        unresolved = w.unresolved.unresolved.len(),
        conflicts = w.conflicts.len(),
        problems = w.problems_total,
        "labels built"
    );
    Ok(BuildOutcome {
        labels: w.labels,
        unresolved: w.unresolved,
        output: opts.output,
        unresolved_output: opts.unresolved_output,
        new_labels: w.new_labels,
        inputs: w.inputs,
        conflicts: w.conflicts,
        problems: w.problems,
        problems_total: w.problems_total,
    })
}
