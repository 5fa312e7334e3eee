//! Raw capture files (DESIGN.md §3.1): every WebSocket frame as received, one JSON object per
//! line, `{"recv_ns": <local receive time, ns>, "frame": <the exchange's message>}`, gzip.
//!
//! The writer emits a sequence of gzip members, finishing one every `flush_every`, so a killed
//! recorder leaves a readable file that lost at most the last interval. The reader accepts a
//! truncated last member and reports what it skipped. This is the format of the real
//! recordings in `shared/data/kalshi_kxbtc15m_2026-05/captures/`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::{FrameError, WsFrame};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRecord {
    /// Local receive time, ns since the Unix epoch.
    pub recv_ns: i64,
    /// The frame's JSON text exactly as stored.
    pub frame: String,
    /// 1-based line number in the file.
    pub line: u64,
}

impl CaptureRecord {
    pub fn parse(&self) -> Result<WsFrame, FrameError> {
        WsFrame::parse(&self.frame)
    }
}

/// What a reader met besides good records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub records: u64,
    /// Lines that were not valid capture records (reported as errors by the iterator).
    pub bad_lines: u64,
    /// Lines holding a frame that was not JSON when received (`invalid_frame`).
    pub invalid_frames: u64,
    /// The file ended inside a gzip member (a killed writer) or the compressed stream is
    /// corrupt; the partial tail was skipped.
    pub truncated: bool,
    /// The 1-based line at which reading stopped because of that damage.
    pub truncated_at_line: Option<u64>,
}

/// Iterates over the records of one capture file.
pub struct CaptureReader {
    path: PathBuf,
    input: Box<dyn BufRead + Send>,
    line_no: u64,
    /// The current line's bytes (UTF-8 is checked by the JSON parser, string by string).
    buf: Vec<u8>,
    stats: ReadStats,
    done: bool,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    recv_ns: i64,
    #[serde(borrow, default)]
    frame: Option<&'a RawValue>,
    #[serde(default)]
    invalid_frame: Option<String>,
}

impl CaptureReader {
    /// Opens a capture, gzip (one or many members) or plain JSONL, detected from the content.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let io_err = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut f = File::open(path).map_err(io_err)?;
        let mut magic = [0u8; 2];
        let n = io::Read::read(&mut f, &mut magic).map_err(io_err)?;
        let f = File::open(path).map_err(io_err)?;
        let input: Box<dyn BufRead + Send> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(BufReader::new(f)),
            ))
        } else {
            Box::new(BufReader::new(f))
        };
        Ok(CaptureReader::from_reader(path, input))
    }

    /// Reads already-decompressed JSONL from any source; `path` is used in messages.
    pub fn from_reader(path: &Path, input: Box<dyn BufRead + Send>) -> CaptureReader {
        CaptureReader {
            path: path.to_path_buf(),
            input,
            line_no: 0,
            buf: Vec::new(),
            stats: ReadStats::default(),
            done: false,
        }
    }

    pub fn stats(&self) -> ReadStats {
        self.stats
    }
}

/// A line without its `\n` / `\r\n`.
fn line_text(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && matches!(buf[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &buf[..end]
}

/// One captured frame parsed while its line is read ([`CaptureReader::next_parsed`]).
#[derive(Debug)]
pub struct ParsedRecord {
    /// Local receive time, ns since the Unix epoch.
    pub recv_ns: i64,
    /// 1-based line number in the file.
    pub line: u64,
    /// The frame, or why it is not one we understand (the line itself is a good record).
    pub frame: Result<WsFrame, FrameError>,
}

/// A capture line with its frame's envelope read in the same pass.
#[derive(Deserialize)]
struct LineEnvelope<'a> {
    recv_ns: i64,
    #[serde(borrow, default)]
    frame: Option<crate::wire::ws::RawEnvelope<'a>>,
    #[serde(default)]
    invalid_frame: Option<serde::de::IgnoredAny>,
}

impl CaptureReader {
    /// Reads the next non-empty complete line into `self.buf`; `None` at the end (or at a
    /// truncated tail, noted in the stats).
    fn next_line(&mut self) -> Option<Result<(), CaptureError>> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::InvalidInput
                            | io::ErrorKind::InvalidData
                    ) =>
                {
                    // A truncated gzip member: whatever partial line we hold is incomplete.
                    tracing::warn!(path = %self.path.display(), line = self.line_no + 1, error = %e, "capture file is truncated; skipping the partial tail");
                    self.stats.truncated = true;
                    self.stats.truncated_at_line = Some(self.line_no + 1);
                    self.done = true;
                    return None;
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
            self.line_no += 1;
            let text = line_text(&self.buf);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !self.buf.ends_with(b"\n") {
                // The last line has no newline: complete only if it parses.
                if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err() {
                    self.stats.truncated = true;
                    self.stats.truncated_at_line = Some(self.line_no);
                    self.done = true;
                    return None;
                }
            }
            return Some(Ok(()));
        }
    }

    /// The record on the line in `self.buf`; `None` for an `invalid_frame` line (counted).
    fn record(&mut self) -> Option<Result<CaptureRecord, CaptureError>> {
        let text = line_text(&self.buf);
        Some(match serde_json::from_slice::<LineIn>(text) {
            Ok(LineIn {
                recv_ns,
                frame: Some(f),
                ..
            }) => {
                self.stats.records += 1;
                Ok(CaptureRecord {
                    recv_ns,
                    frame: f.get().to_string(),
                    line: self.line_no,
                })
            }
            Ok(LineIn {
                invalid_frame: Some(_),
                ..
            }) => {
                self.stats.invalid_frames += 1;
                return None;
            }
            Ok(_) => {
                self.stats.bad_lines += 1;
                Err(CaptureError::Line {
                    path: self.path.clone(),
                    line: self.line_no,
                    message: "record has neither `frame` nor `invalid_frame`".into(),
                })
            }
            Err(e) => {
                self.stats.bad_lines += 1;
                Err(CaptureError::Line {
                    path: self.path.clone(),
                    line: self.line_no,
                    message: e.to_string(),
                })
            }
        })
    }

    /// Like [`Iterator::next`], with the frame parsed in the same pass over the line (the
    /// record and the frame's envelope at once, instead of the record holding a copy of the
    /// frame's text to parse again): what the re-grid reads. Lines, damage, `invalid_frame`
    /// lines and stats are exactly as for `next`; a record whose frame we do not understand
    /// comes with the parse error.
    pub fn next_parsed(&mut self) -> Option<Result<ParsedRecord, CaptureError>> {
        loop {
            if let Err(e) = self.next_line()? {
                return Some(Err(e));
            }
            let text = line_text(&self.buf);
            match serde_json::from_slice::<LineEnvelope>(text) {
                Ok(LineEnvelope {
                    recv_ns,
                    frame: Some(env),
                    ..
                }) => {
                    self.stats.records += 1;
                    return Some(Ok(ParsedRecord {
                        recv_ns,
                        line: self.line_no,
                        frame: WsFrame::from_envelope(env),
                    }));
                }
                Ok(LineEnvelope {
                    invalid_frame: Some(_),
                    ..
                }) => {
                    self.stats.invalid_frames += 1;
                    continue;
                }
                // Not a record with a frame we can read in one pass: the slow path tells a
                // damaged line from a good record holding a frame we do not understand.
                _ => match self.record() {
                    None => continue,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(r)) => {
                        return Some(Ok(ParsedRecord {
                            recv_ns: r.recv_ns,
                            line: r.line,
                            frame: r.parse(),
                        }))
                    }
                },
            }
        }
    }
}

impl Iterator for CaptureReader {
    type Item = Result<CaptureRecord, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Err(e) = self.next_line()? {
                return Some(Err(e));
            }
            if let Some(r) = self.record() {
                return Some(r);
            }
        }
    }
}

/// Writes a capture file as a sequence of gzip members.
pub struct CaptureWriter<W: Write = BufWriter<File>> {
    path: PathBuf,
    enc: Option<GzEncoder<W>>,
    flush_every: Duration,
    member_started: Instant,
    member_lines: u64,
    lines: u64,
}

impl CaptureWriter<BufWriter<File>> {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path, flush_every: Duration) -> Result<Self, CaptureError> {
        let f = File::create(path).map_err(|source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(CaptureWriter::new(path, BufWriter::new(f), flush_every))
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Wraps any writer; `path` is used in messages.
    pub fn new(path: &Path, inner: W, flush_every: Duration) -> Self {
        CaptureWriter {
            path: path.to_path_buf(),
            enc: Some(GzEncoder::new(inner, Compression::default())),
            flush_every,
            member_started: Instant::now(),
            member_lines: 0,
            lines: 0,
        }
    }

    fn io(&self, source: io::Error) -> CaptureError {
        CaptureError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one frame exactly as received. A frame that is not JSON is kept as a string
    /// under `invalid_frame` (so nothing is lost and the file stays valid JSONL); a frame
    /// spanning several lines is re-serialised compactly.
    pub fn write_frame(&mut self, recv_ns: i64, frame_text: &str) -> Result<(), CaptureError> {
        let line = match serde_json::from_str::<&RawValue>(frame_text) {
            Ok(_) if !frame_text.contains(['\n', '\r']) => {
                format!(
                    "{{\"recv_ns\":{recv_ns},\"frame\":{}}}\n",
                    frame_text.trim()
                )
            }
            Ok(_) => {
                let v: serde_json::Value =
                    serde_json::from_str(frame_text).map_err(|e| self.io(io::Error::other(e)))?;
                format!("{{\"recv_ns\":{recv_ns},\"frame\":{v}}}\n")
            }
            Err(_) => {
                let s =
                    serde_json::to_string(frame_text).map_err(|e| self.io(io::Error::other(e)))?;
                format!("{{\"recv_ns\":{recv_ns},\"invalid_frame\":{s}}}\n")
            }
        };
        let enc = self.enc.as_mut().expect("writer used after finish");
        enc.write_all(line.as_bytes())
            .map_err(|e| CaptureError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        self.member_lines += 1;
        self.lines += 1;
        if self.member_started.elapsed() >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Finishes the current gzip member and flushes it to the file, so everything written so
    /// far survives a crash.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        if self.member_lines == 0 {
            return Ok(());
        }
        let enc = self.enc.take().expect("writer used after finish");
        let mut inner = enc.finish().map_err(|e| self.io(e))?;
        inner.flush().map_err(|e| self.io(e))?;
        self.enc = Some(GzEncoder::new(inner, Compression::default()));
        self.member_started = Instant::now();
        self.member_lines = 0;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CaptureError> {
        let enc = self.enc.take().expect("writer used after finish");
        let mut inner = enc.finish().map_err(|e| self.io(e))?;
        inner.flush().map_err(|e| self.io(e))?;
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_members_and_invalid_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.capture.jsonl.gz");
        let mut w = CaptureWriter::create(&path, Duration::from_secs(3600)).unwrap();
        w.write_frame(
            1,
            r#"{"type":"ticker","sid":2,"msg":{"market_ticker":"A"}}"#,
        )
        .unwrap();
        w.flush().unwrap();
        w.write_frame(2, "{\"type\":\"ok\",\n \"id\":1}").unwrap();
        w.write_frame(3, "not json").unwrap();
        w.finish().unwrap();
        let mut r = CaptureReader::open(&path).unwrap();
        let recs: Vec<_> = r.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].recv_ns, 1);
        assert_eq!(
            recs[0].frame,
            r#"{"type":"ticker","sid":2,"msg":{"market_ticker":"A"}}"#
        );
        assert_eq!(recs[1].frame, r#"{"id":1,"type":"ok"}"#);
        assert!(recs[0].parse().is_ok());
        let st = r.stats();
        assert_eq!((st.records, st.invalid_frames, st.truncated), (2, 1, false));
    }

    #[test]
    fn truncated_file_keeps_flushed_members() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl.gz");
        let mut w = CaptureWriter::create(&path, Duration::from_secs(3600)).unwrap();
        for i in 0..100 {
            w.write_frame(i, &format!(r#"{{"type":"x","n":{i}}}"#))
                .unwrap();
        }
        w.flush().unwrap();
        for i in 100..200 {
            w.write_frame(
                i,
                &format!(r#"{{"type":"x","n":{i},"pad":"{}"}}"#, "y".repeat(50)),
            )
            .unwrap();
        }
        w.finish().unwrap();
        // Cut the file in the middle of the second member (a killed writer).
        let bytes = std::fs::read(&path).unwrap();
        let first_member_len = {
            // Re-create the first member alone to learn its size.
            let mut w = CaptureWriter::new(Path::new("m"), Vec::new(), Duration::from_secs(3600));
            for i in 0..100 {
                w.write_frame(i, &format!(r#"{{"type":"x","n":{i}}}"#))
                    .unwrap();
            }
            w.finish().unwrap().len()
        };
        std::fs::write(
            &path,
            &bytes[..first_member_len + (bytes.len() - first_member_len) / 2],
        )
        .unwrap();
        let mut r = CaptureReader::open(&path).unwrap();
        let recs: Vec<_> = r.by_ref().filter_map(Result::ok).collect();
        assert!(recs.len() >= 100 && recs.len() < 200, "{}", recs.len());
        assert_eq!(recs[99].recv_ns, 99);
        assert!(r.stats().truncated);
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let text = "{\"recv_ns\":1,\"frame\":{}}\n{\"recv_ns\":\"x\"}\n";
        let mut r = CaptureReader::from_reader(
            Path::new("f.jsonl"),
            Box::new(io::Cursor::new(text.as_bytes().to_vec())),
        );
        assert!(r.next().unwrap().is_ok());
        let e = r.next().unwrap().unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:2:"), "{e}");
        assert!(r.next().is_none());
        assert_eq!(r.stats().bad_lines, 1);
    }
}
