//! The journal: one JSON object per line in `<live_dir>/journal.jsonl`, appended, never
//! rewritten. Every entry has `type` and `wall_ms` (the local clock when it was written).
//!
//! Flushed to the OS after every tick's batch, so a crash of the process loses nothing the
//! runner already acted on; a `submit` entry (an order about to go to the exchange, with its
//! `client_order_id`) is also `fsync`ed before the request leaves, so a crash of the machine
//! cannot lose it either. See `docs/FORMATS.md` (journal) for every entry type.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

pub const JOURNAL_FILE: &str = "journal.jsonl";

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {msg}")]
pub struct JournalError {
    pub path: PathBuf,
    pub msg: String,
}

/// Appends entries to the journal file.
#[derive(Debug)]
pub struct JournalWriter {
    path: PathBuf,
    out: BufWriter<File>,
    lines: u64,
}

/// The journal as the engine and the live venue share it (same thread in practice).
pub type SharedJournal = Arc<Mutex<JournalWriter>>;

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl JournalWriter {
    pub fn open(live_dir: &Path) -> Result<JournalWriter, JournalError> {
        let path = live_dir.join(JOURNAL_FILE);
        let err = |msg: String| JournalError {
            path: path.clone(),
            msg,
        };
        std::fs::create_dir_all(live_dir).map_err(|e| err(format!("cannot create folder: {e}")))?;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| err(format!("cannot open for appending: {e}")))?;
        Ok(JournalWriter {
            path: path.clone(),
            out: BufWriter::new(f),
            lines: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    fn err(&self, e: std::io::Error) -> JournalError {
        JournalError {
            path: self.path.clone(),
            msg: e.to_string(),
        }
    }

    /// Appends `{"type": kind, "wall_ms": …, …fields}` (buffered).
    pub fn write(&mut self, kind: &str, fields: Value) -> Result<(), JournalError> {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), json!(kind));
        obj.insert("wall_ms".into(), json!(wall_ms()));
        if let Value::Object(m) = fields {
            obj.extend(m);
        }
        let mut line = serde_json::to_vec(&Value::Object(obj)).expect("JSON values serialise");
        line.push(b'\n');
        self.out.write_all(&line).map_err(|e| self.err(e))?;
        self.lines += 1;
        Ok(())
    }

    /// Hands what is buffered to the OS (survives a crash of the process).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.out.flush().map_err(|e| self.err(e))
    }

    /// Flushes and `fsync`s (survives a crash of the machine): before an order leaves.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.flush()?;
        self.out.get_ref().sync_data().map_err(|e| self.err(e))
    }
}

/// What an earlier session's journal says the next one must know.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prior {
    /// Entries read (a torn last line, from a crash mid-write, is counted and skipped).
    pub entries: u64,
    pub torn_lines: u64,
    /// The largest runtime order id used: the next session starts above it, so no
    /// `client_order_id` is ever reused.
    pub max_order_id: u64,
    /// Submitted orders (`client_order_id` → market) with no `order_result` entry: their
    /// outcome must be looked up at the exchange before trading.
    pub unresolved: BTreeMap<String, String>,
}

/// Reads an existing journal (absent: nothing prior). Lines that do not parse are counted, not
/// fatal: only a torn last line is expected, and the exchange is the truth for what happened.
pub fn read_prior(live_dir: &Path) -> Result<Prior, JournalError> {
    let path = live_dir.join(JOURNAL_FILE);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Prior::default()),
        Err(e) => {
            return Err(JournalError {
                path,
                msg: e.to_string(),
            })
        }
    };
    let mut p = Prior::default();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| JournalError {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            p.torn_lines += 1;
            continue;
        };
        p.entries += 1;
        let id = v.get("order_id").and_then(Value::as_u64).unwrap_or(0);
        p.max_order_id = p.max_order_id.max(id);
        let coid = v.get("client_order_id").and_then(Value::as_str);
        match (v.get("type").and_then(Value::as_str), coid) {
            (Some("submit"), Some(c)) => {
                let market = v.get("market").and_then(Value::as_str).unwrap_or("");
                p.unresolved.insert(c.to_string(), market.to_string());
            }
            (Some("order_result"), Some(c)) => {
                p.unresolved.remove(c);
            }
            _ => {}
        }
    }
    Ok(p)
}
