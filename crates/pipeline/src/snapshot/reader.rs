//! Streaming `snapshot/v1` reader that never crashes on bad input and says what it skipped.
//!
//! Files (a glob such as `pipeline_data/highres/*.snap_*ms.jsonl.gz`, or explicit paths) are
//! read in path order, one line at a time with a bounded buffer. A file is gzip when it starts
//! with the gzip magic or its name ends in `.gz`; anything else is read as plain JSONL.
//!
//! gzip files are decoded member by member (each writer flush is one member):
//! - a **truncated last member** (a killed writer, a copy in progress): every complete line
//!   decoded before the cut is kept, the incomplete line is dropped, and the report names the
//!   file, the last complete line and the member's offset ([`Truncation`]);
//! - a **corrupt member** (bad deflate data, CRC mismatch, garbage between members): the
//!   reader resynchronises at the next gzip member header after the damaged member's start and
//!   carries on; the skipped compressed bytes are counted. Lines already decoded from a member
//!   whose CRC later fails were yielded (each line was still parsed and validated).
//!   Line numbers after a skipped region count the lines actually decoded.
//! - lines that are not UTF-8, not JSON, have a missing/duplicate/mistyped field, break a
//!   record invariant, or are longer than [`ReadOptions::max_line_bytes`] are skipped and
//!   counted by kind; unknown fields are skipped and counted per field name.
//!
//! Nothing here returns an error for bad data: it all lands in the [`ReadReport`], which
//! keeps the first [`ReadOptions::max_problems`] problems with `file:line` and the reason.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::mem;
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;

use super::record::{parse_line, Line, LineError};

/// Limits for a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// How many problems (with `file:line` and reason) a report keeps; all are counted.
    pub max_problems: usize,
    /// A line longer than this is skipped as [`ProblemKind::TooLong`] (bounds memory on a
    /// file without newlines).
    pub max_line_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_problems: 100,
            max_line_bytes: 16 << 20,
        }
    }
}

/// Only a bad glob pattern is an error; unreadable files are reported, not raised.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("bad glob pattern {pattern:?}: {msg}")]
    BadPattern { pattern: String, msg: String },
}

/// What kind of thing was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// The file could not be opened.
    OpenFailed,
    /// An I/O error while reading (not a decoding problem); the rest of the file is skipped.
    ReadFailed,
    NotUtf8,
    NotJson,
    /// A field missing, duplicated or of the wrong type.
    BadField,
    /// A record invariant is broken (price range, ask/bid complement, spread, mid, ladder).
    Invalid,
    TooLong,
    /// The file ends inside a gzip member.
    Truncated,
    /// A gzip member failed to decode; the reader resumed at the next member.
    CorruptMember,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::OpenFailed => "open failed",
            ProblemKind::ReadFailed => "read failed",
            ProblemKind::NotUtf8 => "not UTF-8",
            ProblemKind::NotJson => "not JSON",
            ProblemKind::BadField => "bad field",
            ProblemKind::Invalid => "invalid",
            ProblemKind::TooLong => "line too long",
            ProblemKind::Truncated => "truncated",
            ProblemKind::CorruptMember => "corrupt gzip member",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One skipped thing, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line number in the decoded text (for a file-level problem: the line where it
    /// happened, if any).
    pub line: Option<u64>,
    pub kind: ProblemKind,
    /// The reason, naming the field where there is one.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.detail),
            None => write!(f, "{}: {}", self.file.display(), self.detail),
        }
    }
}

/// Where a truncated file stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The last complete line kept (0 if none).
    pub last_complete_line: u64,
    /// Bytes of the incomplete line after it that were dropped.
    pub partial_line_bytes: u64,
    /// Byte offset of the incomplete member in the file.
    pub member_offset: u64,
    /// Compressed bytes of the incomplete member present on disk (its complete lines were
    /// kept; its missing tail is unknowable).
    pub member_bytes_on_disk: u64,
}

/// Counters for one file, or summed over files ([`ReadReport::totals`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub files: u64,
    /// Lines seen, good or bad (an incomplete line at a truncation or corrupt member counts
    /// here and in `partial_lines`).
    pub lines: u64,
    pub snapshots: u64,
    pub markers: u64,
    /// Empty or whitespace-only lines (skipped, not a problem).
    pub blank: u64,
    pub not_utf8: u64,
    pub not_json: u64,
    pub bad_field: u64,
    pub invalid: u64,
    pub too_long: u64,
    /// Incomplete lines dropped at a truncation or a corrupt member.
    pub partial_lines: u64,
    /// Complete gzip members decoded.
    pub members: u64,
    pub corrupt_members: u64,
    /// Compressed bytes skipped while resynchronising after corrupt members.
    pub bytes_skipped: u64,
    pub truncated_files: u64,
    /// Files that could not be opened, or hit an I/O error.
    pub unreadable_files: u64,
    /// Bytes of the files on disk.
    pub bytes_on_disk: u64,
    /// Decoded (uncompressed) bytes.
    pub bytes_decoded: u64,
}

impl FileCounts {
    /// Lines that were skipped for a problem (not blank lines).
    pub fn skipped_lines(&self) -> u64 {
        self.not_utf8
            + self.not_json
            + self.bad_field
            + self.invalid
            + self.too_long
            + self.partial_lines
    }

    fn add(&mut self, o: &FileCounts) {
        self.files += o.files;
        self.lines += o.lines;
        self.snapshots += o.snapshots;
        self.markers += o.markers;
        self.blank += o.blank;
        self.not_utf8 += o.not_utf8;
        self.not_json += o.not_json;
        self.bad_field += o.bad_field;
        self.invalid += o.invalid;
        self.too_long += o.too_long;
        self.partial_lines += o.partial_lines;
        self.members += o.members;
        self.corrupt_members += o.corrupt_members;
        self.bytes_skipped += o.bytes_skipped;
        self.truncated_files += o.truncated_files;
        self.unreadable_files += o.unreadable_files;
        self.bytes_on_disk += o.bytes_on_disk;
        self.bytes_decoded += o.bytes_decoded;
    }
}

/// What happened reading one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    pub path: PathBuf,
    pub gzip: bool,
    pub counts: FileCounts,
    /// Unknown fields skipped, by name.
    pub unknown_fields: BTreeMap<String, u64>,
    pub truncation: Option<Truncation>,
    /// The first [`ReadOptions::max_problems`] problems in this file.
    pub problems: Vec<Problem>,
    /// All problems in this file.
    pub problems_total: u64,
}

impl FileReport {
    /// No line, member or file was skipped (unknown fields don't count).
    pub fn is_clean(&self) -> bool {
        self.problems_total == 0
    }
}

/// What happened reading a set of files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// One entry per file, in read order.
    pub files: Vec<FileReport>,
    /// The first `max_problems` problems over all files, in read order.
    pub problems: Vec<Problem>,
    pub problems_total: u64,
    pub max_problems: usize,
}

impl ReadReport {
    pub fn new(max_problems: usize) -> ReadReport {
        ReadReport {
            max_problems,
            ..Default::default()
        }
    }

    /// Appends a file's report (files must be pushed in read order).
    pub fn push_file(&mut self, f: FileReport) {
        for p in &f.problems {
            if self.problems.len() < self.max_problems {
                self.problems.push(p.clone());
            }
        }
        self.problems_total += f.problems_total;
        self.files.push(f);
    }

    pub fn totals(&self) -> FileCounts {
        let mut t = FileCounts::default();
        for f in &self.files {
            t.add(&f.counts);
        }
        t
    }

    /// Unknown fields skipped over all files, by name.
    pub fn unknown_fields(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for f in &self.files {
            for (k, v) in &f.unknown_fields {
                *m.entry(k.clone()).or_insert(0) += v;
            }
        }
        m
    }

    /// Nothing was skipped.
    pub fn is_clean(&self) -> bool {
        self.problems_total == 0
    }
}

impl fmt::Display for ReadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.totals();
        writeln!(
            f,
            "read {} file(s): {} snapshots, {} markers, {} lines, {} bytes decoded from {} on disk",
            t.files, t.snapshots, t.markers, t.lines, t.bytes_decoded, t.bytes_on_disk
        )?;
        let skipped = t.skipped_lines();
        if skipped > 0 {
            write!(f, "skipped {skipped} line(s):")?;
            for (n, what) in [
                (t.not_utf8, "not UTF-8"),
                (t.not_json, "not JSON"),
                (t.bad_field, "bad field"),
                (t.invalid, "invalid"),
                (t.too_long, "too long"),
                (t.partial_lines, "incomplete"),
            ] {
                if n > 0 {
                    write!(f, " {n} {what};")?;
                }
            }
            writeln!(f)?;
        }
        if t.truncated_files + t.corrupt_members + t.unreadable_files > 0 {
            writeln!(
                f,
                "{} truncated file(s), {} corrupt gzip member(s) ({} bytes skipped), {} unreadable file(s)",
                t.truncated_files, t.corrupt_members, t.bytes_skipped, t.unreadable_files
            )?;
        }
        let unknown = self.unknown_fields();
        if !unknown.is_empty() {
            write!(f, "unknown fields skipped:")?;
            for (k, v) in &unknown {
                write!(f, " {k} ×{v};")?;
            }
            writeln!(f)?;
        }
        if self.problems_total > 0 {
            writeln!(
                f,
                "problems (first {} of {}):",
                self.problems.len(),
                self.problems_total
            )?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
        }
        Ok(())
    }
}

/// Expands a glob into paths sorted by name. Paths the glob could not read are included (the
/// reader then reports them as unreadable).
pub fn resolve_glob(pattern: &str) -> Result<Vec<PathBuf>, ReadError> {
    let entries = glob::glob(pattern).map_err(|e| ReadError::BadPattern {
        pattern: pattern.to_string(),
        msg: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .map(|r| match r {
            Ok(p) => p,
            Err(e) => e.path().to_path_buf(),
        })
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

// ---------------------------------------------------------------------------------------------
// Decoded byte sources

enum Chunk {
    Data(usize),
    Eof,
    Break(Break),
}

enum Break {
    Truncated {
        member_offset: u64,
        member_bytes: u64,
    },
    Corrupt {
        member_offset: u64,
        resume_at: Option<u64>,
        skipped: u64,
        error: String,
    },
    Io(String),
}

enum GzState {
    Between(BufReader<File>),
    InMember {
        dec: Box<GzDecoder<BufReader<File>>>,
        start: u64,
    },
    Done,
}

struct GzSource {
    state: GzState,
    file_len: u64,
    members: u64,
}

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

impl GzSource {
    fn read_chunk(&mut self, out: &mut [u8]) -> Chunk {
        loop {
            match mem::replace(&mut self.state, GzState::Done) {
                GzState::Done => return Chunk::Eof,
                GzState::Between(mut r) => {
                    let start = match r.stream_position() {
                        Ok(p) => p,
                        Err(e) => return Chunk::Break(Break::Io(e.to_string())),
                    };
                    match r.fill_buf() {
                        Err(e) => return Chunk::Break(Break::Io(e.to_string())),
                        Ok([]) => return Chunk::Eof,
                        Ok(_) => {}
                    }
                    self.state = GzState::InMember {
                        dec: Box::new(GzDecoder::new(r)),
                        start,
                    };
                }
                GzState::InMember { mut dec, start } => match dec.read(out) {
                    Ok(0) => {
                        self.members += 1;
                        self.state = GzState::Between(dec.into_inner());
                    }
                    Ok(n) => {
                        self.state = GzState::InMember { dec, start };
                        return Chunk::Data(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Chunk::Break(Break::Truncated {
                            member_offset: start,
                            member_bytes: self.file_len.saturating_sub(start),
                        });
                    }
                    Err(e) => {
                        let mut r = dec.into_inner();
                        let error = e.to_string();
                        return match find_member_header(&mut r, start + 1) {
                            Ok(Some(pos)) => {
                                self.state = GzState::Between(r);
                                Chunk::Break(Break::Corrupt {
                                    member_offset: start,
                                    resume_at: Some(pos),
                                    skipped: pos - start,
                                    error,
                                })
                            }
                            Ok(None) => Chunk::Break(Break::Corrupt {
                                member_offset: start,
                                resume_at: None,
                                skipped: self.file_len.saturating_sub(start),
                                error,
                            }),
                            Err(e) => Chunk::Break(Break::Io(e.to_string())),
                        };
                    }
                },
            }
        }
    }
}

/// Finds the next plausible gzip member header (magic, deflate, no reserved flag bits) at or
/// after `from`, leaving `r` positioned there.
fn find_member_header(r: &mut BufReader<File>, from: u64) -> io::Result<Option<u64>> {
    r.seek(SeekFrom::Start(from))?;
    let mut pos = from;
    let mut window: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        window.extend_from_slice(&chunk[..n]);
        let mut i = 0;
        while i + 4 <= window.len() {
            if window[i..i + 3] == GZIP_MAGIC && window[i + 3] & 0xE0 == 0 {
                let at = pos + i as u64;
                r.seek(SeekFrom::Start(at))?;
                return Ok(Some(at));
            }
            i += 1;
        }
        // Keep the last 3 bytes: a header may straddle two reads.
        let keep = window.len().min(3);
        pos += (window.len() - keep) as u64;
        window.drain(..window.len() - keep);
    }
}

enum Source {
    Plain(BufReader<File>),
    Gzip(GzSource),
    Done,
}

impl Source {
    fn read_chunk(&mut self, out: &mut [u8]) -> Chunk {
        match self {
            Source::Plain(r) => loop {
                match r.read(out) {
                    Ok(0) => return Chunk::Eof,
                    Ok(n) => return Chunk::Data(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Chunk::Break(Break::Io(e.to_string())),
                }
            },
            Source::Gzip(g) => g.read_chunk(out),
            Source::Done => Chunk::Eof,
        }
    }

    fn members(&self) -> u64 {
        match self {
            Source::Gzip(g) => g.members,
            _ => 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One file

const CHUNK: usize = 64 << 10;

/// Reads one file line by line, recording every problem in its [`FileReport`]. Never fails:
/// a file that cannot be opened yields nothing and says so in the report.
pub struct FileReader {
    src: Source,
    opts: ReadOptions,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    skipping_long: bool,
    line_no: u64,
    report: FileReport,
}

impl FileReader {
    pub fn open(path: impl Into<PathBuf>, opts: &ReadOptions) -> FileReader {
        let path = path.into();
        let mut report = FileReport {
            path: path.clone(),
            ..Default::default()
        };
        report.counts.files = 1;
        let mut fr = FileReader {
            src: Source::Done,
            opts: opts.clone(),
            buf: Vec::new(),
            pos: 0,
            eof: false,
            skipping_long: false,
            line_no: 0,
            report,
        };
        match open_source(&path) {
            Ok((src, gzip, len)) => {
                fr.src = src;
                fr.report.gzip = gzip;
                fr.report.counts.bytes_on_disk = len;
            }
            Err(e) => {
                fr.eof = true;
                fr.report.counts.unreadable_files = 1;
                fr.problem(None, ProblemKind::OpenFailed, format!("cannot open: {e}"));
            }
        }
        fr
    }

    /// The next good line and its 1-based line number.
    pub fn next_line(&mut self) -> Option<(u64, Line)> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let start = self.pos;
                self.pos += i + 1;
                if self.skipping_long {
                    // The tail of a line already counted as too long.
                    self.skipping_long = false;
                    continue;
                }
                self.line_no += 1;
                self.report.counts.lines += 1;
                let line = mem::take(&mut self.buf);
                let item = self.handle_line(&line[start..start + i]);
                self.buf = line;
                if let Some(item) = item {
                    return Some(item);
                }
                continue;
            }
            if self.eof {
                // A final line without a newline at a clean end of file.
                if self.pos < self.buf.len() && !self.skipping_long {
                    let line = mem::take(&mut self.buf);
                    let rest = &line[self.pos..];
                    self.pos = 0;
                    self.line_no += 1;
                    self.report.counts.lines += 1;
                    let item = self.handle_line(rest);
                    if item.is_some() {
                        return item;
                    }
                }
                self.buf.clear();
                self.pos = 0;
                return None;
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            if self.buf.len() > self.opts.max_line_bytes {
                if !self.skipping_long {
                    self.line_no += 1;
                    self.report.counts.lines += 1;
                    self.report.counts.too_long += 1;
                    let msg = format!(
                        "line longer than {} bytes, skipped",
                        self.opts.max_line_bytes
                    );
                    self.problem(Some(self.line_no), ProblemKind::TooLong, msg);
                    self.skipping_long = true;
                }
                self.buf.clear();
            }
            let old = self.buf.len();
            self.buf.resize(old + CHUNK, 0);
            let chunk = self.src.read_chunk(&mut self.buf[old..]);
            match chunk {
                Chunk::Data(n) => {
                    self.buf.truncate(old + n);
                    self.report.counts.bytes_decoded += n as u64;
                }
                Chunk::Eof => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Chunk::Break(b) => {
                    self.buf.truncate(old);
                    self.on_break(b);
                }
            }
        }
    }

    /// Drops the pending incomplete line (if any) and records the break.
    fn on_break(&mut self, b: Break) {
        let last_complete = self.line_no;
        let partial = self.buf.len() as u64;
        if partial > 0 && !self.skipping_long {
            self.line_no += 1;
            self.report.counts.lines += 1;
            self.report.counts.partial_lines += 1;
        }
        self.buf.clear();
        self.pos = 0;
        self.skipping_long = false;
        match b {
            Break::Truncated {
                member_offset,
                member_bytes,
            } => {
                self.eof = true;
                self.report.counts.truncated_files = 1;
                let dropped = if partial > 0 {
                    format!(
                        ", dropped {partial} bytes of incomplete line {}",
                        last_complete + 1
                    )
                } else {
                    String::new()
                };
                let msg = format!(
                    "file ends inside the gzip member at byte {member_offset} ({member_bytes} bytes \
                     on disk): kept lines up to {last_complete}{dropped}"
                );
                self.problem(Some(last_complete + 1), ProblemKind::Truncated, msg);
                self.report.truncation = Some(Truncation {
                    last_complete_line: last_complete,
                    partial_line_bytes: partial,
                    member_offset,
                    member_bytes_on_disk: member_bytes,
                });
            }
            Break::Corrupt {
                member_offset,
                resume_at,
                skipped,
                error,
            } => {
                self.report.counts.corrupt_members += 1;
                self.report.counts.bytes_skipped += skipped;
                let next = match resume_at {
                    Some(p) => format!("resumed at the next member, byte {p}"),
                    None => {
                        self.eof = true;
                        "no further member".to_string()
                    }
                };
                let dropped = if partial > 0 {
                    format!(", dropped {partial} bytes of incomplete line")
                } else {
                    String::new()
                };
                let msg = format!(
                    "gzip member at byte {member_offset} is corrupt ({error}) after line \
                     {last_complete}{dropped}; skipped {skipped} bytes, {next}"
                );
                self.problem(Some(last_complete + 1), ProblemKind::CorruptMember, msg);
            }
            Break::Io(e) => {
                self.eof = true;
                self.report.counts.unreadable_files = 1;
                let msg = format!("read error after line {last_complete}: {e}");
                self.problem(Some(last_complete + 1), ProblemKind::ReadFailed, msg);
            }
        }
    }

    fn handle_line(&mut self, bytes: &[u8]) -> Option<(u64, Line)> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            self.report.counts.blank += 1;
            return None;
        }
        match parse_line(bytes) {
            Ok(p) => {
                for f in p.unknown_fields {
                    *self.report.unknown_fields.entry(f).or_insert(0) += 1;
                }
                match p.line {
                    Line::Snapshot(_) => self.report.counts.snapshots += 1,
                    Line::Marker(_) => self.report.counts.markers += 1,
                }
                Some((self.line_no, p.line))
            }
            Err(e) => {
                let c = &mut self.report.counts;
                let kind = match e {
                    LineError::NotUtf8 { .. } => {
                        c.not_utf8 += 1;
                        ProblemKind::NotUtf8
                    }
                    LineError::NotJson(_) => {
                        c.not_json += 1;
                        ProblemKind::NotJson
                    }
                    LineError::BadField(_) => {
                        c.bad_field += 1;
                        ProblemKind::BadField
                    }
                    LineError::Invalid(_) => {
                        c.invalid += 1;
                        ProblemKind::Invalid
                    }
                };
                self.problem(Some(self.line_no), kind, e.to_string());
                None
            }
        }
    }

    fn problem(&mut self, line: Option<u64>, kind: ProblemKind, detail: String) {
        let r = &mut self.report;
        r.problems_total += 1;
        if r.problems.len() < self.opts.max_problems {
            r.problems.push(Problem {
                file: r.path.clone(),
                line,
                kind,
                detail,
            });
        }
        tracing::debug!(file = %r.path.display(), ?line, %kind, "skipped");
    }

    /// The number of the last line read (good or bad).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    pub fn path(&self) -> &Path {
        &self.report.path
    }

    /// The report so far.
    pub fn report(&self) -> &FileReport {
        &self.report
    }

    pub fn into_report(mut self) -> FileReport {
        self.report.counts.members = self.src.members();
        if self.report.problems_total > 0 {
            tracing::warn!(
                file = %self.report.path.display(),
                problems = self.report.problems_total,
                "snapshot file had problems"
            );
        }
        self.report
    }
}

fn open_source(path: &Path) -> io::Result<(Source, bool, u64)> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut r = BufReader::with_capacity(CHUNK, f);
    let head = r.fill_buf()?;
    let gzip = head.starts_with(&GZIP_MAGIC[..2])
        || path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".gz"));
    let src = if gzip {
        Source::Gzip(GzSource {
            state: GzState::Between(r),
            file_len: len,
            members: 0,
        })
    } else {
        Source::Plain(r)
    };
    Ok((src, gzip, len))
}

// ---------------------------------------------------------------------------------------------
// Many files

/// Streams the lines of many files in path order; an `Iterator<Item = Line>`.
///
/// ```no_run
/// use pipeline::snapshot::{Line, ReadOptions, SnapshotReader};
/// let mut rd = SnapshotReader::from_glob(
///     "pipeline_data/highres/*.snap_*ms.jsonl.gz", ReadOptions::default()).unwrap();
/// for line in rd.by_ref() {
///     match line {
///         Line::Snapshot(r) => { /* … */ }
///         Line::Marker(m) => { /* the book is untrustworthy from m.ts_ms until a resync */ }
///     }
/// }
/// let report = rd.into_report();
/// eprintln!("{report}");
/// ```
pub struct SnapshotReader {
    files: Vec<PathBuf>,
    next: usize,
    current: Option<FileReader>,
    report: ReadReport,
    opts: ReadOptions,
    last: Option<(usize, u64)>,
}

impl SnapshotReader {
    /// Reads the given files (plain or gzip), sorted by path, duplicates removed.
    pub fn from_paths<I, P>(paths: I, opts: ReadOptions) -> SnapshotReader
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        let mut files: Vec<PathBuf> = paths.into_iter().map(Into::into).collect();
        files.sort();
        files.dedup();
        SnapshotReader {
            files,
            next: 0,
            current: None,
            report: ReadReport::new(opts.max_problems),
            opts,
            last: None,
        }
    }

    /// Reads the files matching a glob pattern, sorted by path.
    pub fn from_glob(pattern: &str, opts: ReadOptions) -> Result<SnapshotReader, ReadError> {
        Ok(SnapshotReader::from_paths(resolve_glob(pattern)?, opts))
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// File and line number of the line last returned by `next`.
    pub fn last_location(&self) -> Option<(&Path, u64)> {
        self.last.map(|(f, l)| (self.files[f].as_path(), l))
    }

    /// The report for the files finished so far.
    pub fn report(&self) -> &ReadReport {
        &self.report
    }

    /// The full report, including the file being read if iteration stopped early.
    pub fn into_report(mut self) -> ReadReport {
        if let Some(cur) = self.current.take() {
            self.report.push_file(cur.into_report());
        }
        self.report
    }
}

impl Iterator for SnapshotReader {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        loop {
            if let Some(cur) = &mut self.current {
                if let Some((ln, line)) = cur.next_line() {
                    self.last = Some((self.next - 1, ln));
                    return Some(line);
                }
                let done = self.current.take().expect("checked").into_report();
                self.report.push_file(done);
            }
            if self.next >= self.files.len() {
                return None;
            }
            self.current = Some(FileReader::open(&self.files[self.next], &self.opts));
            self.next += 1;
        }
    }
}
