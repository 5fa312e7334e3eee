//! Market metadata for the replay's REST answers and lifecycle events, from either
//!
//! - a plain markets list, one JSON object per line: `ticker`, `open_time`, `close_time`,
//!   `floor_strike`, `result` (`yes`/`no`/`null`), optionally `event_ticker`,
//!   `series_ticker`, `title` (the shape of `shared/data/kalshi_kxbtc15m_2026-05/markets.jsonl`);
//!   a ticker on several lines takes the fields of each later line; or
//! - our own markets sidecar (`<SERIES>_markets.jsonl`, `pipeline::schema::markets`, lines
//!   with `ts_ms` and `source`), folded to each market's latest state.
//!
//! The first non-empty line decides which. Plain or gzip. A malformed line is an error naming
//! the file and line (a partial last line is skipped with a warning).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use pipeline::schema::markets::{
    fold_latest, parse_markets_text, Decimal, MarketResult as SidecarResult,
};
use pipeline::schema::read_text_maybe_gz;
use serde::Deserialize;

use crate::engine::MarketResult;

/// What the replay knows about a market besides its recorded frames.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MarketMeta {
    pub ticker: String,
    pub event_ticker: Option<String>,
    pub series_ticker: Option<String>,
    pub title: Option<String>,
    pub open_ms: Option<i64>,
    pub close_ms: Option<i64>,
    /// In cents of the underlying (8093841 = $80,938.41), as the engine keeps strikes.
    pub floor_strike_cents: Option<i64>,
    pub result: Option<MarketResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum MarketsFileError {
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}", path = path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Sidecar(#[from] pipeline::schema::MarketsError),
}

/// The markets read, plus warnings (skipped partial line, results the replay cannot use).
#[derive(Debug, Default)]
pub struct MarketsFile {
    pub markets: BTreeMap<String, MarketMeta>,
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct PlainLine {
    ticker: String,
    #[serde(default)]
    event_ticker: Option<String>,
    #[serde(default)]
    series_ticker: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    open_time: Option<DateTime<Utc>>,
    #[serde(default)]
    close_time: Option<DateTime<Utc>>,
    #[serde(default)]
    floor_strike: Option<Decimal>,
    #[serde(default)]
    result: Option<String>,
}

/// Underlying value → whole cents, rounded half away from zero.
pub(crate) fn strike_cents(d: Decimal) -> i64 {
    let (m, s) = (i128::from(d.mantissa()), d.scale());
    let cents = if s <= 2 {
        m * 10i128.pow(2 - s)
    } else {
        let div = 10i128.pow(s - 2);
        let q = m / div;
        let r = (m % div).abs();
        if r * 2 >= div {
            q + m.signum()
        } else {
            q
        }
    };
    cents.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// Reads a markets file (plain list or sidecar, plain or gzip).
pub fn read_markets_file(path: &Path) -> Result<MarketsFile, MarketsFileError> {
    let (text, truncated) = read_text_maybe_gz(path).map_err(|source| MarketsFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = MarketsFile::default();
    if truncated {
        out.warnings.push(format!(
            "{}: the gzip stream is truncated; read what was complete",
            path.display()
        ));
    }
    let first = text.lines().find(|l| !l.trim().is_empty());
    let is_sidecar = first
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .is_some_and(|v| v.get("source").is_some() && v.get("ts_ms").is_some());
    if is_sidecar {
        let read = parse_markets_text(&text, path, truncated)?;
        if let Some(line) = read.skipped_partial_line {
            out.warnings.push(format!(
                "{}:{line}: skipped a partial last line",
                path.display()
            ));
        }
        for (ticker, r) in fold_latest(read.records) {
            let result = match &r.result {
                None => None,
                Some(SidecarResult::Yes) => Some(MarketResult::Yes),
                Some(SidecarResult::No) => Some(MarketResult::No),
                Some(other) => {
                    out.warnings.push(format!(
                        "{}: market {ticker}: result {other:?} is not yes/no; served as undetermined",
                        path.display()
                    ));
                    None
                }
            };
            let ticker = ticker.to_string();
            out.markets.insert(
                ticker.clone(),
                MarketMeta {
                    ticker,
                    event_ticker: r.event_ticker.clone(),
                    series_ticker: r.series_ticker.as_ref().map(|s| s.to_string()),
                    title: None,
                    open_ms: r.open_time.map(|t| t.timestamp_millis()),
                    close_ms: r.close_time.map(|t| t.timestamp_millis()),
                    floor_strike_cents: r.floor_strike.map(strike_cents),
                    result,
                },
            );
        }
        return Ok(out);
    }
    let ends_mid_line = truncated || !(text.is_empty() || text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: PlainLine = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) if ends_mid_line && i + 1 == lines.len() && e.is_eof() => {
                out.warnings.push(format!(
                    "{}:{}: skipped a partial last line",
                    path.display(),
                    i + 1
                ));
                continue;
            }
            Err(e) => {
                return Err(MarketsFileError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        };
        let bad = |message: String| MarketsFileError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        if rec.ticker.trim().is_empty() || rec.ticker.chars().any(char::is_whitespace) {
            return Err(bad(format!(
                "ticker {:?} is not a market ticker",
                rec.ticker
            )));
        }
        let result = match rec.result.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("yes") => Some(MarketResult::Yes),
            Some("no") => Some(MarketResult::No),
            Some(other) => {
                out.warnings.push(format!(
                    "{}:{}: market {}: result {other:?} is not yes/no; served as undetermined",
                    path.display(),
                    i + 1,
                    rec.ticker
                ));
                None
            }
        };
        if let (Some(o), Some(c)) = (rec.open_time, rec.close_time) {
            if c <= o {
                return Err(bad(format!("close_time {c} is not after open_time {o}")));
            }
        }
        let m = out
            .markets
            .entry(rec.ticker.clone())
            .or_insert_with(|| MarketMeta {
                ticker: rec.ticker.clone(),
                ..MarketMeta::default()
            });
        macro_rules! later {
            ($field:ident, $value:expr) => {
                if let Some(v) = $value {
                    m.$field = Some(v);
                }
            };
        }
        later!(event_ticker, nonempty(rec.event_ticker));
        later!(series_ticker, nonempty(rec.series_ticker));
        later!(title, nonempty(rec.title));
        later!(open_ms, rec.open_time.map(|t| t.timestamp_millis()));
        later!(close_ms, rec.close_time.map(|t| t.timestamp_millis()));
        later!(floor_strike_cents, rec.floor_strike.map(strike_cents));
        later!(result, result);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    #[test]
    fn plain_list_in_the_recorded_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "markets.jsonl",
            concat!(
                r#"{"ticker": "KXBTC15M-26MAY110145-45", "close_time": "2026-05-11T05:45:00Z", "open_time": "2026-05-11T05:30:00Z", "floor_strike": 80938.41, "result": "no"}"#,
                "\n\n",
                r#"{"ticker": "KXBTC15M-26MAY130900-00", "close_time": "2026-05-13T13:00:00Z", "open_time": "2026-05-13T12:45:00Z", "floor_strike": 80077.295, "result": null}"#,
                "\n",
            ),
        );
        let f = read_markets_file(&p).unwrap();
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        let m = &f.markets["KXBTC15M-26MAY110145-45"];
        assert_eq!(m.open_ms, Some(1_778_477_400_000));
        assert_eq!(m.close_ms, Some(1_778_478_300_000));
        assert_eq!(m.floor_strike_cents, Some(8_093_841));
        assert_eq!(m.result, Some(MarketResult::No));
        let m = &f.markets["KXBTC15M-26MAY130900-00"];
        assert_eq!(m.result, None);
        assert_eq!(
            m.floor_strike_cents,
            Some(8_007_730),
            "half rounds away from zero"
        );
    }

    #[test]
    fn sidecar_lines_are_folded() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "KXBTC15M_markets.jsonl",
            concat!(
                r#"{"ts_ms":1,"ticker":"A-1","source":"rest","status":"active","open_time":"2026-05-11T05:30:00Z","close_time":"2026-05-11T05:45:00Z","floor_strike":100.5,"event_ticker":"A"}"#,
                "\n",
                r#"{"ts_ms":2,"ticker":"A-1","source":"ws","event":"determined","status":"determined","result":"yes"}"#,
                "\n",
            ),
        );
        let f = read_markets_file(&p).unwrap();
        let m = &f.markets["A-1"];
        assert_eq!(m.result, Some(MarketResult::Yes));
        assert_eq!(m.floor_strike_cents, Some(10_050));
        assert_eq!(m.event_ticker.as_deref(), Some("A"));
        assert_eq!(m.close_ms, Some(1_778_478_300_000));
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "m.jsonl",
            "{\"ticker\":\"A\"}\n{\"ticker\":\"B\",\"open_time\":\"yesterday\"}\n",
        );
        let e = read_markets_file(&p).unwrap_err().to_string();
        assert!(e.contains("m.jsonl:2:"), "{e}");
        let p = write(
            dir.path(),
            "n.jsonl",
            "{\"ticker\":\"A\",\"result\":\"void\"}\n{\"ticker\":\"B\"",
        );
        let f = read_markets_file(&p).unwrap();
        assert_eq!(f.markets.len(), 1);
        assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
    }
}
