//! Snapshot files to training tensors, the way `train_edge_rnn` builds them
//! (`pipeline::dataset::build`: rows streamed through the one causal feature state into
//! per-market step sequences, joined with labels), with wall time and peak memory:
//!
//!     target/release/kalshi_sim generate --out-dir /tmp/month --days 30     # ~26 M rows at 100 ms
//!     cargo run --release -p pipeline --example dataset_month -- '/tmp/month/*.snap_*ms.jsonl.gz' /tmp/month/labels.json
//!
//! Prints rows, markets, steps, the f32 tensor size, rows/s and the process's peak resident
//! memory (`VmHWM`): the goal is ≤ 2 GB for a month of one series at 100 ms, which holds only
//! if rows are streamed into features and never all held at once.

use std::time::Instant;

use pipeline::dataset::{self, BuildOptions};
use pipeline::features::N_FEATURES;
use pipeline::schema::labels::LabelsFile;
use pipeline::snapshot::resolve_glob;

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(glob), Some(labels)) = (args.next(), args.next()) else {
        return Err("usage: dataset_month SNAPSHOT_GLOB LABELS_JSON".into());
    };
    let files = resolve_glob(&glob)?;
    if files.is_empty() {
        return Err(format!("{glob}: no file").into());
    }
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let labels = LabelsFile::load(std::path::Path::new(&labels))?;
    let t = Instant::now();
    let ds = dataset::build(&files, &labels, &BuildOptions::default());
    let secs = t.elapsed().as_secs_f64();
    let steps: usize = ds.markets.iter().map(|m| m.steps()).sum();
    println!(
        "{} files ({:.0} MB gzip), {} rows -> {} markets, {} steps x {} features ({:.0} MB as f32) in {:.1} s = {:.0} rows/s (one thread); peak RSS {:.0} MB",
        files.len(),
        bytes as f64 / 1e6,
        ds.rows,
        ds.markets.len(),
        steps,
        N_FEATURES,
        (steps * N_FEATURES * 4) as f64 / 1e6,
        secs,
        ds.rows as f64 / secs,
        peak_rss_mb().unwrap_or(f64::NAN)
    );
    Ok(())
}
