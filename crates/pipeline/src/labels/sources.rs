//! Readers for the label inputs: markets sidecars, raw captures and archived exchange data.
//! Each returns a [`FileFindings`]: the labels and unresolved markets found in one file, in file
//! order with their line where there is one, plus every problem met. None of them fails: a
//! file that cannot be used is reported as skipped, a bad line or entry is reported and the
//! rest of the file is kept.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::market::{short, unix_seconds, MarketOutcome};
use super::InputProblem;
use crate::ids::MarketTicker;
use crate::schema::markets::{fold_latest, read_markets, MarketRecord, MarketsError};
use crate::schema::{read_text_maybe_gz, Label, LabelSource, LabelsFile, MarketStatus, Unresolved};

/// Problems kept (with their location) per file; all are counted.
pub(crate) const MAX_PROBLEMS_PER_FILE: usize = 20;

/// What one input file contributed.
#[derive(Debug, Default)]
pub(crate) struct FileFindings {
    /// Labels in file order, with their 1-based line when the file is line-oriented.
    pub labels: Vec<(MarketTicker, Label, Option<u64>)>,
    pub unresolved: Vec<(Unresolved, Option<u64>)>,
    /// The first [`MAX_PROBLEMS_PER_FILE`] problems.
    pub problems: Vec<InputProblem>,
    pub problems_total: u64,
    /// The whole file was unusable and contributed nothing.
    pub skipped: bool,
}

impl FileFindings {
    fn problem(&mut self, path: &Path, line: Option<u64>, entry: Option<String>, message: String) {
        self.problems_total += 1;
        tracing::debug!(file = %path.display(), ?line, ?entry, %message, "label input problem");
        if self.problems.len() < MAX_PROBLEMS_PER_FILE {
            self.problems.push(InputProblem {
                path: path.to_path_buf(),
                line,
                entry,
                message,
            });
        }
    }

    /// Records that the file was skipped as a whole, dropping anything gathered from it.
    fn skip(&mut self, path: &Path, message: String) {
        self.labels.clear();
        self.unresolved.clear();
        self.skipped = true;
        self.problem(path, None, None, format!("{message}; file skipped"));
    }

    fn push(
        &mut self,
        verdict: Result<Label, Unresolved>,
        ticker: MarketTicker,
        line: Option<u64>,
    ) {
        match verdict {
            Ok(l) => self.labels.push((ticker, l, line)),
            Err(u) => self.unresolved.push((u, line)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sidecar

/// A markets sidecar: every line read (a bad line is reported and skipped, the others kept),
/// folded with [`fold_latest`], each market labelled with [`Label::from_market`].
pub(crate) fn read_sidecar(path: &Path, source: LabelSource) -> FileFindings {
    let mut f = FileFindings::default();
    let records = match read_markets(path) {
        Ok(read) => {
            if read.truncated_gzip {
                f.problem(
                    path,
                    None,
                    None,
                    "gzip stream truncated; read the complete lines before the cut".into(),
                );
            }
            if let Some(line) = read.skipped_partial_line {
                f.problem(
                    path,
                    Some(line as u64),
                    None,
                    "incomplete last line skipped".into(),
                );
            }
            read.records
        }
        Err(MarketsError::Io { source, .. }) => {
            f.skip(path, format!("cannot read: {source}"));
            return f;
        }
        // A damaged line in the middle: read line by line, keeping every good line.
        Err(_) => match read_text_maybe_gz(path) {
            Ok((text, truncated)) => tolerant_sidecar_lines(path, &text, truncated, &mut f),
            Err(e) => {
                f.skip(path, format!("cannot read: {e}"));
                return f;
            }
        },
    };
    for (ticker, rec) in fold_latest(records) {
        f.push(Label::from_market(&rec, source.clone()), ticker, None);
    }
    f
}

fn tolerant_sidecar_lines(
    path: &Path,
    text: &str,
    truncated: bool,
    f: &mut FileFindings,
) -> Vec<MarketRecord> {
    let ends_mid_line = truncated || !(text.is_empty() || text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<MarketRecord>(line) {
            Ok(r) => out.push(r),
            Err(e) if ends_mid_line && i + 1 == lines.len() && e.is_eof() => f.problem(
                path,
                Some(i as u64 + 1),
                None,
                "incomplete last line skipped".into(),
            ),
            Err(e) => f.problem(
                path,
                Some(i as u64 + 1),
                None,
                format!("bad sidecar line skipped: {e}"),
            ),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Captures

/// Lifecycle facts gathered from capture lines, classified at the end of the file (a close
/// time announced after the determination still applies).
#[derive(Default)]
struct CaptureState {
    determined: Vec<(u64, MarketOutcome)>,
    close: BTreeMap<MarketTicker, DateTime<Utc>>,
    frames: u64,
}

impl CaptureState {
    /// One capture line (`{"recv_ns", "frame"}`) or a bare frame. Only `market_lifecycle*`
    /// frames matter: `determined` carries the result, `created` and `close_date_updated` the
    /// close time.
    fn line(&mut self, v: &Value, line: u64) -> Result<(), String> {
        let frame = match v.get("frame") {
            Some(f) => f,
            None => v,
        };
        let Some(frame) = frame.as_object() else {
            return Err(format!(
                "field `frame`: expected an object, got {}",
                short(frame)
            ));
        };
        self.frames += 1;
        let is_lifecycle = frame
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("market_lifecycle"));
        if !is_lifecycle {
            return Ok(());
        }
        let Some(msg) = frame.get("msg").and_then(Value::as_object) else {
            return Err("lifecycle frame: missing object `msg`".into());
        };
        let event = msg.get("event_type").and_then(Value::as_str).unwrap_or("");
        match event {
            "determined" => {
                let mut m = MarketOutcome::from_json(msg, None)
                    .map_err(|e| format!("determined event: {e}"))?;
                m.status = Some(MarketStatus::Determined);
                self.determined.push((line, m));
            }
            "created" | "close_date_updated" => {
                if let Some(ts) = msg.get("close_ts").filter(|v| !v.is_null()) {
                    let t =
                        unix_seconds(ts, "close_ts").map_err(|e| format!("{event} event: {e}"))?;
                    let ticker = msg
                        .get("market_ticker")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("{event} event: missing `market_ticker`"))?;
                    self.close.insert(MarketTicker::new(ticker), t);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self, f: &mut FileFindings) {
        for (line, mut m) in self.determined {
            if m.close_time.is_none() {
                m.close_time = self.close.get(&m.ticker).copied();
            }
            let ticker = m.ticker.clone();
            f.push(m.classify(LabelSource::Capture), ticker, Some(line));
        }
    }
}

/// A raw capture (`*.capture.jsonl.gz`, plain or gzip, any number of members), streamed line
/// by line. A truncated last member or a corrupt gzip stream keeps every line decoded before
/// it and reports where it stopped; unparseable lines are reported and skipped. Lines that do
/// not mention `market_lifecycle` are not parsed at all (captures are mostly book deltas).
pub(crate) fn scan_capture(path: &Path) -> FileFindings {
    let mut f = FileFindings::default();
    let mut reader: Box<dyn BufRead> = match open_maybe_gz(path) {
        Ok(r) => r,
        Err(e) => {
            f.skip(path, format!("cannot open: {e}"));
            return f;
        }
    };
    let mut state = CaptureState::default();
    let mut buf = Vec::with_capacity(64 << 10);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                line_no += 1;
                let complete = buf.last() == Some(&b'\n');
                capture_line_bytes(path, &buf, line_no, complete, &mut state, &mut f);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let dropped = if buf.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", dropped {} bytes of incomplete line {}",
                        buf.len(),
                        line_no + 1
                    )
                };
                let what = if e.kind() == io::ErrorKind::UnexpectedEof {
                    "file ends inside a gzip member (truncated)".to_string()
                } else {
                    format!("gzip stream is corrupt ({e})")
                };
                f.problem(
                    path,
                    Some(line_no + 1),
                    None,
                    format!("{what}: kept lines up to {line_no}{dropped}; rest of file skipped"),
                );
                break;
            }
        }
    }
    tracing::debug!(file = %path.display(), lines = line_no, frames = state.frames,
        determined = state.determined.len(), "capture scanned");
    state.finish(&mut f);
    f
}

fn capture_line_bytes(
    path: &Path,
    bytes: &[u8],
    line_no: u64,
    complete: bool,
    state: &mut CaptureState,
    f: &mut FileFindings,
) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            f.problem(
                path,
                Some(line_no),
                None,
                "line is not UTF-8; skipped".into(),
            );
            return;
        }
    };
    if text.trim().is_empty() || !text.contains("market_lifecycle") {
        return;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            if let Err(e) = state.line(&v, line_no) {
                f.problem(path, Some(line_no), None, format!("{e}; line skipped"));
            }
        }
        Err(e) if !complete && e.is_eof() => f.problem(
            path,
            Some(line_no),
            None,
            "incomplete last line skipped".into(),
        ),
        Err(e) => f.problem(
            path,
            Some(line_no),
            None,
            format!("invalid JSON: {e}; line skipped"),
        ),
    }
}

fn open_maybe_gz(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let mut r = BufReader::with_capacity(64 << 10, File::open(path)?);
    let gzip = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            64 << 10,
            flate2::bufread::MultiGzDecoder::new(r),
        ))
    } else {
        Box::new(r)
    })
}

// ---------------------------------------------------------------------------------------------
// Archives

/// Whether a file name says it is a markets sidecar (`*_markets.jsonl[.gz]`).
pub(crate) fn is_sidecar_name(path: &Path) -> bool {
    file_name(path)
        .is_some_and(|n| n.ends_with("_markets.jsonl") || n.ends_with("_markets.jsonl.gz"))
}

/// Whether a file name says it is a raw capture (`*.capture.jsonl[.gz]`).
pub(crate) fn is_capture_name(path: &Path) -> bool {
    file_name(path)
        .is_some_and(|n| n.ends_with(".capture.jsonl") || n.ends_with(".capture.jsonl.gz"))
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

/// How an archive's text is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One JSON document.
    Document,
    /// One JSON value per line.
    Lines,
    /// Unknown from the name: a document if the whole text parses, else lines.
    Sniff,
}

fn layout_from_name(path: &Path) -> Layout {
    let name = file_name(path).unwrap_or("").to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Layout::Lines
    } else if name.ends_with(".json") {
        Layout::Document
    } else {
        Layout::Sniff
    }
}

/// An archived file of exchange data. By name: a markets sidecar or a capture goes to its own
/// reader. Otherwise the content decides, plain or gzip:
///
/// - a JSON document: a map keyed by ticker of Kalshi market objects (the shape of
///   `shared/data/kalshi_rest/*.raw.json`), a list of market objects, a REST response
///   (`{"markets": [...]}`, `{"market": {...}}`, `{"events": [{"markets": [...]}]}`), or a
///   labels file (`labels/v1` or a bare `{ticker: result}` map);
/// - JSON lines (`.jsonl`): each line a market object, a REST response or a capture line.
///
/// A file that is not JSON or has none of these shapes is reported and skipped; a bad entry or
/// line is reported and the rest of the file kept.
pub(crate) fn read_archive(path: &Path) -> FileFindings {
    if is_sidecar_name(path) {
        return read_sidecar(path, LabelSource::Sidecar);
    }
    if is_capture_name(path) {
        return scan_capture(path);
    }
    let mut f = FileFindings::default();
    let (text, truncated) = match read_text_maybe_gz(path) {
        Ok(t) => t,
        Err(e) => {
            f.skip(path, format!("cannot read: {e}"));
            return f;
        }
    };
    let layout = layout_from_name(path);
    let whole = if layout == Layout::Lines {
        None
    } else {
        Some(serde_json::from_str::<Value>(&text))
    };
    match whole {
        Some(Ok(doc)) => archive_document(path, &text, &doc, &mut f),
        Some(Err(e)) if layout == Layout::Document || text.lines().nth(1).is_none() => {
            let cut = if truncated {
                " (the gzip stream is truncated)"
            } else {
                ""
            };
            f.skip(path, format!("invalid JSON{cut}: {e}"));
        }
        _ => archive_lines(path, &text, truncated, &mut f),
    }
    f
}

fn archive_document(path: &Path, text: &str, doc: &Value, f: &mut FileFindings) {
    if let Some(obj) = doc.as_object() {
        if obj.contains_key("schema") {
            return labels_document(path, text, f);
        }
    }
    match market_objects(doc) {
        Some(entries) => {
            for (ctx, obj, key) in entries {
                market_entry(path, None, &ctx, obj, key, f);
            }
        }
        None => {
            if doc.is_object() {
                // Values are not all market objects: a bare {ticker: result} labels map.
                labels_document(path, text, f)
            } else {
                f.skip(
                    path,
                    format!(
                        "not an archive of markets: expected an object or a list, got {}",
                        short(doc)
                    ),
                )
            }
        }
    }
}

/// A labels file read as an archive: its labels keep their source; those without one are
/// marked `archive`.
fn labels_document(path: &Path, text: &str, f: &mut FileFindings) {
    match LabelsFile::parse_str(text, &path.display().to_string()) {
        Ok((file, _)) => {
            for (ticker, mut label) in file.labels {
                if label.source.is_none() {
                    label.source = Some(LabelSource::Archive);
                }
                f.labels.push((ticker, label, None));
            }
        }
        Err(e) => f.skip(path, format!("not a usable archive ({e})")),
    }
}

fn archive_lines(path: &Path, text: &str, truncated: bool, f: &mut FileFindings) {
    let ends_mid_line = truncated || !(text.is_empty() || text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    let mut good = 0u64;
    let mut capture = CaptureState::default();
    for (i, line) in lines.iter().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v = match serde_json::from_str::<Value>(line) {
            Ok(v) => v,
            Err(e) if ends_mid_line && i + 1 == lines.len() && e.is_eof() => {
                f.problem(
                    path,
                    Some(line_no),
                    None,
                    "incomplete last line skipped".into(),
                );
                continue;
            }
            Err(e) => {
                f.problem(
                    path,
                    Some(line_no),
                    None,
                    format!("invalid JSON: {e}; line skipped"),
                );
                continue;
            }
        };
        if v.get("recv_ns").is_some() && v.get("frame").is_some() {
            good += 1;
            if let Err(e) = capture.line(&v, line_no) {
                f.problem(path, Some(line_no), None, format!("{e}; line skipped"));
            }
            continue;
        }
        match market_objects(&v) {
            Some(entries) => {
                good += 1;
                for (ctx, obj, key) in entries {
                    market_entry(path, Some(line_no), &ctx, obj, key, f);
                }
            }
            None => f.problem(
                path,
                Some(line_no),
                None,
                format!(
                    "not a market object, REST response or capture line: {}; line skipped",
                    short(&v)
                ),
            ),
        }
    }
    capture.finish(f);
    if truncated {
        f.problem(
            path,
            None,
            None,
            "gzip stream truncated; read the complete lines before the cut".into(),
        );
    }
    if good == 0 && f.problems_total > 0 {
        f.skip(path, "no usable line".into());
    }
}

/// An entry of an archive: `(context for messages, the object or why it is not one, the key
/// when the archive is keyed by ticker)`.
type Entry<'a> = (
    String,
    Result<&'a Map<String, Value>, String>,
    Option<&'a str>,
);

/// The market objects in a JSON value, or `None` when it has no recognised shape.
fn market_objects(v: &Value) -> Option<Vec<Entry<'_>>> {
    fn list<'a>(out: &mut Vec<Entry<'a>>, ctx: &str, v: &'a Value) {
        match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    out.push((format!("{ctx}[{i}]"), as_obj(item), None));
                }
            }
            None if v.is_null() => {}
            None => out.push((
                ctx.to_string(),
                Err(format!("expected a list, got {}", short(v))),
                None,
            )),
        }
    }
    fn as_obj(v: &Value) -> Result<&Map<String, Value>, String> {
        v.as_object()
            .ok_or_else(|| format!("expected a market object, got {}", short(v)))
    }
    let mut out = Vec::new();
    match v {
        Value::Array(_) => list(&mut out, "", v),
        Value::Object(obj) => {
            let response = ["markets", "market", "events", "event"]
                .iter()
                .any(|k| obj.contains_key(*k));
            if response {
                if let Some(m) = obj.get("markets") {
                    list(&mut out, "markets", m);
                }
                if let Some(m) = obj.get("market") {
                    out.push(("market".into(), as_obj(m), None));
                }
                if let Some(events) = obj.get("events").and_then(Value::as_array) {
                    for (i, e) in events.iter().enumerate() {
                        if let Some(m) = e.get("markets") {
                            list(&mut out, &format!("events[{i}].markets"), m);
                        }
                    }
                }
                if let Some(m) = obj.get("event").and_then(|e| e.get("markets")) {
                    list(&mut out, "event.markets", m);
                }
            } else if obj.contains_key("ticker") || obj.contains_key("market_ticker") {
                out.push((String::new(), Ok(obj), None));
            } else if obj.values().all(Value::is_object) {
                for (k, item) in obj {
                    out.push((k.clone(), as_obj(item), Some(k.as_str())));
                }
            } else {
                return None;
            }
        }
        _ => return None,
    }
    Some(out)
}

fn market_entry(
    path: &Path,
    line: Option<u64>,
    ctx: &str,
    obj: Result<&Map<String, Value>, String>,
    key: Option<&str>,
    f: &mut FileFindings,
) {
    let entry = (!ctx.is_empty()).then(|| ctx.to_string());
    let parsed = obj.and_then(|o| MarketOutcome::from_json(o, key));
    match parsed {
        Ok(m) => {
            let ticker = m.ticker.clone();
            f.push(m.classify(LabelSource::Archive), ticker, line);
        }
        Err(e) => f.problem(path, line, entry, format!("{e}; entry skipped")),
    }
}

/// Every regular file named by a path, a directory (its files, not recursive) or a glob,
/// sorted. A path that names nothing is an error, so a typo cannot silently drop an input.
pub(crate) fn expand_input(spec: &str) -> Result<Vec<PathBuf>, String> {
    let p = Path::new(spec);
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    if p.is_dir() {
        let mut out: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| format!("cannot list directory: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        return Ok(out);
    }
    let paths = crate::snapshot::resolve_glob(spec).map_err(|e| e.to_string())?;
    let files: Vec<PathBuf> = paths.into_iter().filter(|p| !p.is_dir()).collect();
    if files.is_empty() {
        return Err(if spec.contains(['*', '?', '[']) {
            "the pattern matches no file".into()
        } else {
            "no such file".into()
        });
    }
    Ok(files)
}

/// Files in `dir` whose names end with one of `suffixes`, sorted; none when `dir` is absent.
pub(crate) fn files_with_suffix(dir: &Path, suffixes: &[&str]) -> io::Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let p = e?.path();
        let ok = file_name(&p).is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s)));
        if ok && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
