//! The writer thread: the only code that touches the output files.
//!
//! It owns the [`SnapshotWriter`] (rotated multi-member gzip), the capture files (rotated on
//! the same period, by receive time) and the markets sidecar, behind a bounded channel. Every
//! `flush_every` it writes what is buffered as complete gzip members, so a killed process loses
//! at most that interval. When every sender is gone it flushes and closes everything.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use pipeline::ids::SeriesTicker;
use pipeline::schema::markets::{append_markets, markets_path, MarketRecord};
use pipeline::snapshot::{Line, SnapshotWriter, WriteSummary, WriterOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::RecorderError;
use crate::capture::CaptureWriter;
use crate::ws::InboundFrame;

/// What the writer is asked to do.
pub(crate) enum WriterMsg {
    /// Snapshot lines of one tick, in order.
    Lines(Vec<Line>),
    /// One WebSocket frame for the capture.
    Frame(Arc<InboundFrame>),
    /// Markets sidecar lines.
    Markets(Vec<MarketRecord>),
}

#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub out_dir: PathBuf,
    pub series: SeriesTicker,
    pub snapshot_ms: u64,
    pub rotate: Duration,
    pub flush_every: Duration,
    pub capture: bool,
    /// The recorder's clock: capture files are named (and rotated) on it, like the snapshot
    /// files.
    pub clock: super::core::RecorderClock,
}

/// Running totals the core reads for its status line.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub snapshot_bytes: AtomicU64,
    pub snapshot_files: AtomicU64,
    pub capture_frames: AtomicU64,
    pub sidecar_lines: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct WriterReport {
    pub snapshots: WriteSummary,
    pub capture_files: Vec<PathBuf>,
    pub capture_frames: u64,
    pub capture_bytes: u64,
    pub markets_file: Option<PathBuf>,
    pub sidecar_lines: u64,
}

struct Capture {
    clock: super::core::RecorderClock,
    out_dir: PathBuf,
    series: SeriesTicker,
    rotate_ms: i64,
    flush_every: Duration,
    current: Option<(i64, PathBuf, CaptureWriter<BufWriter<File>>)>,
    files: Vec<PathBuf>,
    frames: u64,
}

impl Capture {
    fn open(&mut self, period: i64) -> Result<(), RecorderError> {
        let stamp = DateTime::from_timestamp_millis(period)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| period.to_string());
        for part in 0..100u32 {
            let suffix = if part == 0 {
                String::new()
            } else {
                format!("_r{part:02}")
            };
            let path = self
                .out_dir
                .join(format!("{}_{stamp}{suffix}.capture.jsonl.gz", self.series));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => {
                    tracing::info!(path = %path.display(), "capture file created");
                    let w = CaptureWriter::new(&path, BufWriter::new(f), self.flush_every);
                    self.files.push(path.clone());
                    self.current = Some((period, path, w));
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(RecorderError::Output(format!(
                        "creating {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        Err(RecorderError::Output(format!(
            "no free capture file name for {stamp} in {}",
            self.out_dir.display()
        )))
    }

    fn write(&mut self, f: &InboundFrame) -> Result<(), RecorderError> {
        // Named and rotated on the recorder's clock, like the snapshot files; never back to
        // an earlier period (the exchange clock's offset may step back by a little).
        let period = self.clock.at_local_ns(f.recv_ns).div_euclid(self.rotate_ms) * self.rotate_ms;
        if self.current.as_ref().is_none_or(|c| period > c.0) {
            self.finish()?;
            self.open(period)?;
        }
        let (_, _, w) = self.current.as_mut().expect("opened above");
        w.write_frame(f.recv_ns, &f.text)
            .map_err(|e| RecorderError::Output(e.to_string()))?;
        self.frames += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RecorderError> {
        if let Some((_, _, w)) = self.current.as_mut() {
            w.flush()
                .map_err(|e| RecorderError::Output(e.to_string()))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), RecorderError> {
        if let Some((_, path, w)) = self.current.take() {
            let inner = w
                .finish()
                .map_err(|e| RecorderError::Output(e.to_string()))?;
            inner
                .into_inner()
                .map_err(|e| {
                    RecorderError::Output(format!("closing {}: {}", path.display(), e.error()))
                })?
                .sync_all()
                .map_err(|e| RecorderError::Output(format!("closing {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The writer thread; it yields its report once every sender is dropped.
pub(crate) type WriterTask = JoinHandle<Result<WriterReport, RecorderError>>;

/// Starts the writer thread.
pub(crate) fn spawn(
    cfg: WriterConfig,
    capacity: usize,
    progress: Arc<Progress>,
) -> Result<(mpsc::Sender<WriterMsg>, WriterTask), RecorderError> {
    let snap = SnapshotWriter::new(
        &cfg.out_dir,
        cfg.series.clone(),
        cfg.snapshot_ms,
        WriterOptions {
            rotate: cfg.rotate,
            flush_every: cfg.flush_every,
            ..WriterOptions::default()
        },
    )
    .map_err(|e| RecorderError::Output(e.to_string()))?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let rt = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || writer_loop(cfg, snap, rx, rt, progress));
    Ok((tx, task))
}

fn writer_loop(
    cfg: WriterConfig,
    mut snap: SnapshotWriter,
    mut rx: mpsc::Receiver<WriterMsg>,
    rt: tokio::runtime::Handle,
    progress: Arc<Progress>,
) -> Result<WriterReport, RecorderError> {
    let markets_file = markets_path(&cfg.out_dir, &cfg.series);
    let mut capture = Capture {
        clock: cfg.clock.clone(),
        out_dir: cfg.out_dir.clone(),
        series: cfg.series.clone(),
        rotate_ms: cfg.rotate.as_millis() as i64,
        flush_every: cfg.flush_every,
        current: None,
        files: Vec::new(),
        frames: 0,
    };
    let mut sidecar_lines = 0u64;
    let mut next_flush = Instant::now() + cfg.flush_every;
    let out = |e: pipeline::snapshot::WriteError| RecorderError::Output(e.to_string());
    let result: Result<(), RecorderError> = (|| loop {
        let wait = next_flush.saturating_duration_since(Instant::now());
        let msg = rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
        match msg {
            Ok(Some(WriterMsg::Lines(lines))) => {
                for l in &lines {
                    snap.write(l).map_err(out)?;
                }
            }
            Ok(Some(WriterMsg::Frame(f))) => {
                if cfg.capture {
                    capture.write(&f)?;
                    progress
                        .capture_frames
                        .store(capture.frames, Ordering::Relaxed);
                }
            }
            Ok(Some(WriterMsg::Markets(recs))) => {
                if !recs.is_empty() {
                    append_markets(&markets_file, &recs)
                        .map_err(|e| RecorderError::Output(e.to_string()))?;
                    sidecar_lines += recs.len() as u64;
                    progress
                        .sidecar_lines
                        .store(sidecar_lines, Ordering::Relaxed);
                }
            }
            Ok(None) => return Ok(()),
            Err(_) => {}
        }
        if Instant::now() >= next_flush {
            snap.flush().map_err(out)?;
            capture.flush()?;
            let s = snap.summary();
            progress.snapshot_bytes.store(s.bytes, Ordering::Relaxed);
            progress
                .snapshot_files
                .store(s.files.len() as u64, Ordering::Relaxed);
            next_flush = Instant::now() + cfg.flush_every;
        }
    })();
    // Close everything whatever happened; the first error wins.
    let closed = snap.close().map_err(out);
    let cap = capture.finish();
    result?;
    let snapshots = closed?;
    cap?;
    let capture_bytes = capture.files.iter().map(|p| file_len(p)).sum();
    Ok(WriterReport {
        snapshots,
        capture_files: capture.files,
        capture_frames: capture.frames,
        capture_bytes,
        markets_file: (sidecar_lines > 0 || markets_file.exists()).then_some(markets_file),
        sidecar_lines,
    })
}
