//! [`SnapshotWriter`]: rotated, crash-tolerant `snapshot/v1` files.
//!
//! File names are `<out_dir>/<SERIES>_<YYYYMMDDTHHMMSSZ>.snap_<ms>ms.jsonl.gz`, the stamp
//! being the UTC start of the rotation period that holds the line's `ts_ms` (periods are
//! aligned to the rotation grid counted from the Unix epoch, so hourly files start on the hour).
//! Rotation follows the records' `ts_ms`, not the wall clock, so replay or generation at
//! accelerated time rotates exactly like live recording; every line of a file lies in its
//! period.
//!
//! Lines are buffered and each flush writes the buffer as **one complete gzip member** with a
//! single `write_all` (then `flush`, and `sync_data` when [`WriterOptions::fsync`] is set). At
//! every flush point the file is therefore a valid multi-member gzip; a `kill -9` loses at most
//! the unflushed buffer (one flush interval, [`WriterOptions::flush_every`], driven by the
//! caller through [`SnapshotWriter::maybe_flush`], or [`WriterOptions::max_buffer_bytes`]).
//!
//! **Existing files are never overwritten.** If the target file exists (a restart within the
//! same period) the writer checks that it decodes cleanly to the end and then **appends** new
//! members to it (multi-member gzip keeps both runs readable by any gzip reader). If it does
//! not decode cleanly (a process died mid-write, or it is not gzip), the writer leaves it
//! untouched and writes to the next free part instead:
//! `<SERIES>_<stamp>_r01.snap_<ms>ms.jsonl.gz`, `_r02`, … (these sort after the base name and
//! still match `*.snap_*ms.jsonl.gz`). The same rule applies after a failed write in this
//! process, since the file may then end in a partial member.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::record::{Line, RecordError};
use crate::ids::{MarketTicker, SeriesTicker};

/// How a [`SnapshotWriter`] rotates, flushes and compresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Length of one file's period; a whole number of seconds (default 1 hour).
    pub rotate: Duration,
    /// [`SnapshotWriter::maybe_flush`] writes a member once this much time has passed since
    /// the last flush (default 2 s): the most a killed process can lose.
    pub flush_every: Duration,
    /// Flush as soon as the buffer holds this many uncompressed bytes (default 8 MiB), which
    /// bounds memory when lines are written faster than real time.
    pub max_buffer_bytes: usize,
    /// gzip level 0..=9 (default 6). Measured (benches/snapshot_io.rs, 5-level ladders):
    /// level 6 ≈ 96 bytes/record, level 3 ≈ 7 % larger and about twice as fast to write,
    /// level 1 ≈ 60 % larger. Live recording needs a few hundred records/s, far below any
    /// level's speed; a bulk generator may prefer 1–3.
    pub compression_level: u32,
    /// `sync_data` after every member (default off: survives a killed process, not a power
    /// cut).
    pub fsync: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            rotate: Duration::from_secs(3600),
            flush_every: Duration::from_secs(2),
            max_buffer_bytes: 8 << 20,
            compression_level: 6,
            fsync: false,
        }
    }
}

/// What a writer wrote, returned by [`SnapshotWriter::close`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Every file written to (created or appended), in first-use order.
    pub files: Vec<PathBuf>,
    /// Lines on disk (snapshots + markers).
    pub lines: u64,
    pub snapshots: u64,
    pub markers: u64,
    /// gzip members written.
    pub members: u64,
    /// Compressed bytes written.
    pub bytes: u64,
    /// Uncompressed JSONL bytes written.
    pub uncompressed_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing to write an invalid line for {ticker} at ts_ms {ts_ms}: {source}")]
    Invalid {
        ticker: MarketTicker,
        ts_ms: i64,
        #[source]
        source: RecordError,
    },
    #[error("snapshot for {ticker} at ts_ms {ts_ms} is not on the {snapshot_ms} ms grid")]
    Misaligned {
        ticker: MarketTicker,
        ts_ms: i64,
        snapshot_ms: u64,
    },
    #[error("bad snapshot writer options: {0}")]
    Options(String),
    #[error("no free file name for {}: parts up to _r{MAX_PART} exist and are damaged", base.display())]
    NoFreeName { base: PathBuf },
}

const MAX_PART: u32 = 99;

/// The parts of a snapshot file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFileName {
    pub series: SeriesTicker,
    /// UTC ms of the rotation period's start.
    pub period_start_ms: i64,
    /// 0 for the base name, n for `_r{n:02}`.
    pub part: u32,
    pub snapshot_ms: u64,
    /// `.jsonl.gz` (true) or `.jsonl` (false).
    pub gzip: bool,
}

/// `<SERIES>_<YYYYMMDDTHHMMSSZ>[_rNN].snap_<ms>ms.jsonl.gz` for a period start (UTC ms).
pub fn snapshot_file_name(
    series: &SeriesTicker,
    period_start_ms: i64,
    snapshot_ms: u64,
    part: u32,
) -> String {
    let stamp = DateTime::from_timestamp_millis(period_start_ms)
        .expect("period start within chrono's range")
        .format("%Y%m%dT%H%M%SZ");
    let part = if part == 0 {
        String::new()
    } else {
        format!("_r{part:02}")
    };
    format!("{series}_{stamp}{part}.snap_{snapshot_ms}ms.jsonl.gz")
}

/// Parses a file name made by [`snapshot_file_name`] (or its plain `.jsonl` form); `None` for
/// anything else.
pub fn parse_file_name(name: &str) -> Option<SnapshotFileName> {
    let (rest, gzip) = match name.strip_suffix(".jsonl.gz") {
        Some(r) => (r, true),
        None => (name.strip_suffix(".jsonl")?, false),
    };
    let (stem, ms) = rest.rsplit_once(".snap_")?;
    let snapshot_ms: u64 = ms.strip_suffix("ms")?.parse().ok()?;
    let (stem, part) = match stem.rsplit_once("_r") {
        Some((s, p)) if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
            (s, p.parse().ok()?)
        }
        _ => (stem, 0),
    };
    let (series, stamp) = stem.rsplit_once('_')?;
    if series.is_empty() {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok()?;
    Some(SnapshotFileName {
        series: SeriesTicker::new(series),
        period_start_ms: t.and_utc().timestamp_millis(),
        part,
        snapshot_ms,
        gzip,
    })
}

struct OpenFile {
    path: PathBuf,
    file: File,
}

/// Writes `snapshot/v1` lines for one series into rotated multi-member gzip files.
///
/// Synchronous by design: an async recorder gives it to a single writer task/thread (so the
/// network never waits on disk) and calls [`SnapshotWriter::maybe_flush`] on a timer.
/// Dropping a writer flushes what is buffered (errors are logged); call
/// [`SnapshotWriter::close`] to see them.
pub struct SnapshotWriter {
    out_dir: PathBuf,
    series: SeriesTicker,
    snapshot_ms: u64,
    rotate_ms: i64,
    opts: WriterOptions,
    buf: Vec<u8>,
    buf_snapshots: u64,
    buf_markers: u64,
    period: Option<i64>,
    file: Option<OpenFile>,
    last_flush: Instant,
    summary: WriteSummary,
    /// Files this writer created or verified, and has written only whole members to.
    clean: HashSet<PathBuf>,
    closed: bool,
}

impl SnapshotWriter {
    /// A writer for `series` at `snapshot_ms` resolution into `out_dir` (created if missing).
    /// No file is created until the first flush.
    pub fn new(
        out_dir: impl Into<PathBuf>,
        series: SeriesTicker,
        snapshot_ms: u64,
        opts: WriterOptions,
    ) -> Result<SnapshotWriter, WriteError> {
        let out_dir = out_dir.into();
        if series.as_str().is_empty()
            || !series
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(WriteError::Options(format!(
                "series {series:?} must be non-empty ASCII letters, digits, '-' or '.'"
            )));
        }
        if snapshot_ms == 0 {
            return Err(WriteError::Options("snapshot_ms must be > 0".into()));
        }
        let rotate_ms = opts.rotate.as_millis();
        if rotate_ms < 1000 || rotate_ms % 1000 != 0 || rotate_ms > i64::MAX as u128 {
            return Err(WriteError::Options(format!(
                "rotate must be a whole number of seconds ≥ 1 s, got {:?}",
                opts.rotate
            )));
        }
        if opts.max_buffer_bytes == 0 {
            return Err(WriteError::Options("max_buffer_bytes must be > 0".into()));
        }
        if opts.compression_level > 9 {
            return Err(WriteError::Options(format!(
                "compression_level must be 0..=9, got {}",
                opts.compression_level
            )));
        }
        std::fs::create_dir_all(&out_dir).map_err(|source| WriteError::Io {
            path: out_dir.clone(),
            source,
        })?;
        Ok(SnapshotWriter {
            out_dir,
            series,
            snapshot_ms,
            rotate_ms: rotate_ms as i64,
            buf: Vec::with_capacity(opts.max_buffer_bytes.min(1 << 20)),
            opts,
            buf_snapshots: 0,
            buf_markers: 0,
            period: None,
            file: None,
            last_flush: Instant::now(),
            summary: WriteSummary::default(),
            clean: HashSet::new(),
            closed: false,
        })
    }

    /// Buffers one line. The line is validated first (an invalid record or a snapshot off the
    /// `snapshot_ms` grid is refused, so nothing unreadable reaches disk). A line in a
    /// different rotation period than the previous one flushes the buffer to the previous
    /// period's file first.
    pub fn write(&mut self, line: &Line) -> Result<(), WriteError> {
        line.validate().map_err(|source| WriteError::Invalid {
            ticker: line.market_ticker().clone(),
            ts_ms: line.ts_ms(),
            source,
        })?;
        let ts = line.ts_ms();
        if let Line::Snapshot(r) = line {
            if ts % self.snapshot_ms as i64 != 0 {
                return Err(WriteError::Misaligned {
                    ticker: r.market_ticker.clone(),
                    ts_ms: ts,
                    snapshot_ms: self.snapshot_ms,
                });
            }
        }
        let period = ts.div_euclid(self.rotate_ms) * self.rotate_ms;
        if self.period != Some(period) {
            self.flush()?;
            self.file = None;
            self.period = Some(period);
        }
        line.write_json(&mut self.buf);
        match line {
            Line::Snapshot(_) => self.buf_snapshots += 1,
            Line::Marker(_) => self.buf_markers += 1,
        }
        if self.buf.len() >= self.opts.max_buffer_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Flushes if at least [`WriterOptions::flush_every`] has passed since the last time this
    /// returned or decided to flush. Returns whether a member was written.
    pub fn maybe_flush(&mut self, now: Instant) -> Result<bool, WriteError> {
        if now.saturating_duration_since(self.last_flush) < self.opts.flush_every {
            return Ok(false);
        }
        self.last_flush = now;
        if self.buf.is_empty() {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// Writes the buffered lines as one gzip member to the current period's file. On error
    /// the lines stay buffered and the file is not appended to again.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let period = self.period.expect("a buffered line set the period");
        if self.file.is_none() {
            self.file = Some(self.open_target(period)?);
        }
        let mut enc = GzEncoder::new(
            Vec::with_capacity(self.buf.len() / 4 + 64),
            Compression::new(self.opts.compression_level),
        );
        enc.write_all(&self.buf)
            .expect("writing to a Vec cannot fail");
        let member = enc.finish().expect("writing to a Vec cannot fail");
        let of = self.file.as_mut().expect("opened above");
        let res = of
            .file
            .write_all(&member)
            .and_then(|()| of.file.flush())
            .and_then(|()| {
                if self.opts.fsync {
                    of.file.sync_data()
                } else {
                    Ok(())
                }
            });
        if let Err(source) = res {
            let path = of.path.clone();
            // The file may now end in a partial member: never append to it again.
            self.clean.remove(&path);
            self.file = None;
            return Err(WriteError::Io { path, source });
        }
        let s = &mut self.summary;
        s.members += 1;
        s.bytes += member.len() as u64;
        s.uncompressed_bytes += self.buf.len() as u64;
        s.snapshots += self.buf_snapshots;
        s.markers += self.buf_markers;
        s.lines += self.buf_snapshots + self.buf_markers;
        tracing::trace!(
            path = %of.path.display(),
            lines = self.buf_snapshots + self.buf_markers,
            bytes = member.len(),
            "snapshot member written"
        );
        self.buf.clear();
        self.buf_snapshots = 0;
        self.buf_markers = 0;
        Ok(())
    }

    /// Flushes and closes; returns what was written.
    pub fn close(mut self) -> Result<WriteSummary, WriteError> {
        self.flush()?;
        if let Some(of) = &self.file {
            if self.opts.fsync {
                of.file.sync_all().map_err(|source| WriteError::Io {
                    path: of.path.clone(),
                    source,
                })?;
            }
        }
        self.closed = true;
        self.file = None;
        Ok(std::mem::take(&mut self.summary))
    }

    /// What has been written so far (flushed lines only).
    pub fn summary(&self) -> &WriteSummary {
        &self.summary
    }

    /// Lines buffered and not yet on disk.
    pub fn pending_lines(&self) -> u64 {
        self.buf_snapshots + self.buf_markers
    }

    /// The file the current period writes to, once a flush has opened it.
    pub fn current_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    fn open_target(&mut self, period: i64) -> Result<OpenFile, WriteError> {
        let base = self.out_dir.join(snapshot_file_name(
            &self.series,
            period,
            self.snapshot_ms,
            0,
        ));
        for part in 0..=MAX_PART {
            let path = self.out_dir.join(snapshot_file_name(
                &self.series,
                period,
                self.snapshot_ms,
                part,
            ));
            let io_err = |source| WriteError::Io {
                path: path.clone(),
                source,
            };
            if self.clean.contains(&path) {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io_err)?;
                return Ok(self.opened(path, file));
            }
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    tracing::info!(path = %path.display(), "snapshot file created");
                    return Ok(self.opened(path, file));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match check_clean(&path) {
                    Ok(()) => {
                        let file = OpenOptions::new()
                            .append(true)
                            .open(&path)
                            .map_err(io_err)?;
                        tracing::info!(
                            path = %path.display(),
                            "appending to an existing snapshot file (restart within its period)"
                        );
                        return Ok(self.opened(path, file));
                    }
                    Err(reason) => {
                        tracing::warn!(
                            path = %path.display(),
                            %reason,
                            "existing snapshot file does not end cleanly; leaving it untouched"
                        );
                    }
                },
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(WriteError::NoFreeName { base })
    }

    fn opened(&mut self, path: PathBuf, file: File) -> OpenFile {
        self.clean.insert(path.clone());
        if !self.summary.files.contains(&path) {
            self.summary.files.push(path.clone());
        }
        OpenFile { path, file }
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.closed && !self.buf.is_empty() {
            if let Err(e) = self.flush() {
                tracing::error!(error = %e, "snapshot writer dropped with unflushed lines");
            }
        }
    }
}

/// Whether an existing file decodes as complete gzip members to its end (an empty file is
/// clean). Reads the whole file: this only runs when a period's file already exists.
fn check_clean(path: &Path) -> Result<(), String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    if f.metadata().map_err(|e| e.to_string())?.len() == 0 {
        return Ok(());
    }
    let mut dec = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f));
    io::copy(&mut dec, &mut io::sink())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let s = SeriesTicker::new("KXBTC15M");
        // 2026-05-11T14:00:00Z
        let t = 1_778_508_000_000;
        let name = snapshot_file_name(&s, t, 100, 0);
        assert_eq!(name, "KXBTC15M_20260511T140000Z.snap_100ms.jsonl.gz");
        let p = parse_file_name(&name).unwrap();
        assert_eq!(
            p,
            SnapshotFileName {
                series: s.clone(),
                period_start_ms: t,
                part: 0,
                snapshot_ms: 100,
                gzip: true
            }
        );
        let name = snapshot_file_name(&s, t, 1000, 3);
        assert_eq!(name, "KXBTC15M_20260511T140000Z_r03.snap_1000ms.jsonl.gz");
        assert_eq!(parse_file_name(&name).unwrap().part, 3);
        assert!(name.as_str() > "KXBTC15M_20260511T140000Z.snap_1000ms.jsonl.gz");
        assert!(
            !parse_file_name("KX-A_20260511T140000Z.snap_250ms.jsonl")
                .unwrap()
                .gzip
        );
        assert_eq!(parse_file_name("x.snap_100ms.jsonl.gz"), None);
        assert_eq!(parse_file_name("KX_2026.snap_100ms.jsonl.gz"), None);
        assert_eq!(
            parse_file_name("KX_20260511T140000Z.snap_ms.jsonl.gz"),
            None
        );
    }

    #[test]
    fn options_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let s = SeriesTicker::new("KX");
        let bad = |o: WriterOptions| SnapshotWriter::new(d.path(), s.clone(), 100, o).is_err();
        assert!(bad(WriterOptions {
            rotate: Duration::from_millis(1500),
            ..Default::default()
        }));
        assert!(bad(WriterOptions {
            rotate: Duration::ZERO,
            ..Default::default()
        }));
        assert!(bad(WriterOptions {
            compression_level: 10,
            ..Default::default()
        }));
        assert!(
            SnapshotWriter::new(d.path(), SeriesTicker::new("A_B"), 100, Default::default())
                .is_err()
        );
        assert!(SnapshotWriter::new(d.path(), s.clone(), 0, Default::default()).is_err());
        assert!(SnapshotWriter::new(d.path(), s, 100, Default::default()).is_ok());
    }
}
