//! Capture files (DESIGN.md §3.1) as the replay reads them: one JSON object per line,
//! `{"recv_ns": <int>, "frame": <Kalshi WS message>}`, gzip (one or many members) or plain,
//! detected by content.
//!
//! Reading never gives up on a file: a line that is not a capture record is reported with
//! `file:line` and skipped; a compressed stream that ends early or is corrupt ends the file
//! there, reported, keeping everything before it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use pipeline::money::{Count, Price};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::engine::{BookSide, Levels};

/// Reads the lines of one capture file.
pub(crate) struct LineReader {
    path: PathBuf,
    input: Box<dyn BufRead + Send>,
    line_no: u64,
    buf: Vec<u8>,
    /// Why reading stopped before the end of the file, if it did.
    pub(crate) stopped: Option<String>,
    /// The line just returned had no final newline (the last line of the file).
    pub(crate) unterminated: bool,
}

impl LineReader {
    /// Opens a capture, gzip or plain (sniffed from the first two bytes).
    pub(crate) fn open(path: &Path) -> io::Result<LineReader> {
        let mut f = File::open(path)?;
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut f, &mut magic)?;
        let f = File::open(path)?;
        let input: Box<dyn BufRead + Send> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f)),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, f))
        };
        Ok(LineReader {
            path: path.to_path_buf(),
            input,
            line_no: 0,
            buf: Vec::with_capacity(4096),
            stopped: None,
            unterminated: false,
        })
    }

    /// The next non-empty line: `(line number, text)`, or `(line number, Err(why))` for a
    /// line that is not UTF-8. `None` at the end, or when the stream broke (see `stopped`).
    pub(crate) fn next_line(&mut self) -> Option<(u64, Result<&str, String>)> {
        loop {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stopped = Some(format!(
                        "{}:{}: the compressed stream is truncated or corrupt ({e}); \
                         the rest of the file is skipped",
                        self.path.display(),
                        self.line_no + 1
                    ));
                    return None;
                }
            }
            self.line_no += 1;
            self.unterminated = !self.buf.ends_with(b"\n");
            let mut end = self.buf.len();
            while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if self.buf[..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some((
                self.line_no,
                std::str::from_utf8(&self.buf[..end]).map_err(|e| format!("not UTF-8 ({e})")),
            ));
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[derive(Deserialize)]
struct LineIn<'a> {
    recv_ns: i64,
    #[serde(borrow, default)]
    frame: Option<&'a RawValue>,
    #[serde(borrow, default)]
    invalid_frame: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FrameHead<'a> {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    sid: Option<u64>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(borrow, default)]
    msg: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MsgHead {
    #[serde(default)]
    market_ticker: Option<String>,
    #[serde(default)]
    market_id: Option<String>,
}

/// The frame types carrying market data the replay serves.
fn is_data(kind: &str) -> bool {
    matches!(
        kind,
        "orderbook_snapshot" | "orderbook_delta" | "ticker" | "trade"
    )
}

/// What the scan keeps of a line: when, what type, which market.
#[derive(Debug)]
pub(crate) struct Peek {
    pub recv_ns: i64,
    pub ticker: Option<String>,
    pub market_id: Option<String>,
}

/// A cheap look at a line (the scan before the replay).
pub(crate) fn peek(text: &str) -> Result<Peek, String> {
    let line: LineIn =
        serde_json::from_str(text).map_err(|e| format!("not a capture record: {e}"))?;
    let Some(frame) = line.frame else {
        if line.invalid_frame.is_some() {
            return Ok(Peek {
                recv_ns: line.recv_ns,
                ticker: None,
                market_id: None,
            });
        }
        return Err("the record has no `frame`".into());
    };
    let head: FrameHead = serde_json::from_str(frame.get()).map_err(|e| format!("frame: {e}"))?;
    let kind = head.kind.ok_or("frame: no `type`")?;
    let (mut ticker, mut market_id) = (None, None);
    if is_data(&kind) {
        let msg = head
            .msg
            .ok_or_else(|| format!("{kind} frame without `msg`"))?;
        let m: MsgHead = serde_json::from_str(msg.get()).map_err(|e| format!("{kind} msg: {e}"))?;
        ticker = Some(
            m.market_ticker
                .ok_or_else(|| format!("{kind} msg: no `market_ticker`"))?,
        );
        market_id = m.market_id;
    }
    Ok(Peek {
        recv_ns: line.recv_ns,
        ticker,
        market_id,
    })
}

/// Fields of a recorded `ticker` message the REST market object reuses (each optional).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TickerStats {
    pub last_price: Option<Price>,
    pub last_trade_size: Option<Count>,
    pub volume: Option<Count>,
    pub open_interest: Option<Count>,
    /// Whole dollars, as the `dollar_volume` field.
    pub dollar_volume: Option<i64>,
    pub ts_ms: Option<i64>,
}

impl TickerStats {
    /// Later fields replace earlier ones; absent fields keep them.
    pub(crate) fn merge(&mut self, newer: &TickerStats) {
        macro_rules! take {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f; } )* };
        }
        take!(
            last_price,
            last_trade_size,
            volume,
            open_interest,
            dollar_volume,
            ts_ms
        );
    }
}

#[derive(Deserialize)]
struct TickerIn<'a> {
    #[serde(borrow, default)]
    price_dollars: Option<&'a str>,
    #[serde(borrow, default)]
    last_trade_size_fp: Option<&'a str>,
    #[serde(borrow, default)]
    volume_fp: Option<&'a str>,
    #[serde(borrow, default)]
    open_interest_fp: Option<&'a str>,
    #[serde(default)]
    dollar_volume: Option<serde_json::Number>,
    #[serde(default)]
    ts_ms: Option<i64>,
}

#[derive(Deserialize)]
struct SnapshotIn {
    market_ticker: String,
    #[serde(default)]
    market_id: Option<String>,
    #[serde(default)]
    yes_dollars_fp: Option<Vec<(String, String)>>,
    #[serde(default)]
    no_dollars_fp: Option<Vec<(String, String)>>,
    #[serde(default)]
    yes: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    no: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct DeltaIn {
    market_ticker: String,
    price_dollars: String,
    delta_fp: String,
    side: String,
}

/// One recorded frame the replay serves.
#[derive(Debug)]
pub(crate) enum FrameKind {
    /// A full book; `no` in NO-leg prices. Ascending by price.
    Snapshot {
        ticker: String,
        market_id: Option<String>,
        yes: Levels,
        no: Levels,
    },
    /// A change of one level; `raw` is the recorded `msg`, passed through.
    Delta {
        ticker: String,
        side: BookSide,
        price: Price,
        delta: Count,
        raw: Box<str>,
    },
    Ticker {
        ticker: String,
        market_id: Option<String>,
        stats: TickerStats,
        raw: Box<str>,
    },
    Trade {
        ticker: String,
        raw: Box<str>,
    },
    /// Any other frame (command responses, recorded lifecycle events, unknown channels, a
    /// frame that was not JSON): counted, not served.
    Ignored(String),
}

/// A parsed capture line.
#[derive(Debug)]
pub(crate) struct Frame {
    pub recv_ns: i64,
    pub sid: Option<u64>,
    pub seq: Option<u64>,
    pub kind: FrameKind,
}

fn levels(v: Option<Vec<(String, String)>>, side: &str) -> Result<Levels, String> {
    let mut out: Levels = Vec::new();
    for (p, c) in v.unwrap_or_default() {
        let price =
            Price::parse_dollars(&p).map_err(|e| format!("{side} level price {p:?}: {e}"))?;
        let size = Count::parse(&c).map_err(|e| format!("{side} level size {c:?}: {e}"))?;
        if size.is_negative() {
            return Err(format!("{side} level {p}: negative size {c}"));
        }
        if !size.is_zero() {
            out.push((price, size));
        }
    }
    out.sort();
    for w in out.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(format!(
                "{side} level {} appears twice",
                w[0].0.to_dollars()
            ));
        }
    }
    Ok(out)
}

fn opt_count(s: Option<&str>) -> Option<Count> {
    s.and_then(|s| Count::parse(s).ok())
}

/// Parses a capture line into the frame to serve.
pub(crate) fn parse(text: &str) -> Result<Frame, String> {
    let line: LineIn =
        serde_json::from_str(text).map_err(|e| format!("not a capture record: {e}"))?;
    let Some(frame) = line.frame else {
        if line.invalid_frame.is_some() {
            return Ok(Frame {
                recv_ns: line.recv_ns,
                sid: None,
                seq: None,
                kind: FrameKind::Ignored("invalid_frame".into()),
            });
        }
        return Err("the record has no `frame`".into());
    };
    let head: FrameHead = serde_json::from_str(frame.get()).map_err(|e| format!("frame: {e}"))?;
    let kind = head.kind.ok_or("frame: no `type`")?;
    let msg = || {
        head.msg
            .map(RawValue::get)
            .ok_or_else(|| format!("{kind} frame without `msg`"))
    };
    let fk = match kind.as_str() {
        "orderbook_snapshot" => {
            let m: SnapshotIn =
                serde_json::from_str(msg()?).map_err(|e| format!("orderbook_snapshot msg: {e}"))?;
            if (m.yes.is_some() || m.no.is_some())
                && m.yes_dollars_fp.is_none()
                && m.no_dollars_fp.is_none()
            {
                return Err(
                    "orderbook_snapshot in the legacy integer-cent form (no yes_dollars_fp/no_dollars_fp)"
                        .into(),
                );
            }
            FrameKind::Snapshot {
                yes: levels(m.yes_dollars_fp, "yes")?,
                no: levels(m.no_dollars_fp, "no")?,
                ticker: m.market_ticker,
                market_id: m.market_id,
            }
        }
        "orderbook_delta" => {
            let raw = msg()?;
            let m: DeltaIn =
                serde_json::from_str(raw).map_err(|e| format!("orderbook_delta msg: {e}"))?;
            let side = match m.side.as_str() {
                "yes" => BookSide::Yes,
                "no" => BookSide::No,
                s => return Err(format!("orderbook_delta side {s:?} is not yes or no")),
            };
            FrameKind::Delta {
                side,
                price: Price::parse_dollars(&m.price_dollars).map_err(|e| {
                    format!("orderbook_delta price_dollars {:?}: {e}", m.price_dollars)
                })?,
                delta: Count::parse(&m.delta_fp)
                    .map_err(|e| format!("orderbook_delta delta_fp {:?}: {e}", m.delta_fp))?,
                ticker: m.market_ticker,
                raw: raw.into(),
            }
        }
        "ticker" => {
            let raw = msg()?;
            let h: MsgHead = serde_json::from_str(raw).map_err(|e| format!("ticker msg: {e}"))?;
            let ticker = h.market_ticker.ok_or("ticker msg: no `market_ticker`")?;
            // Statistics are best effort: a field in an unexpected form is left out.
            let stats = serde_json::from_str::<TickerIn>(raw)
                .map(|t| TickerStats {
                    last_price: t.price_dollars.and_then(|p| Price::parse_dollars(p).ok()),
                    last_trade_size: opt_count(t.last_trade_size_fp),
                    volume: opt_count(t.volume_fp),
                    open_interest: opt_count(t.open_interest_fp),
                    dollar_volume: t
                        .dollar_volume
                        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64))),
                    ts_ms: t.ts_ms,
                })
                .unwrap_or_default();
            FrameKind::Ticker {
                ticker,
                market_id: h.market_id,
                stats,
                raw: raw.into(),
            }
        }
        "trade" => {
            let raw = msg()?;
            let h: MsgHead = serde_json::from_str(raw).map_err(|e| format!("trade msg: {e}"))?;
            FrameKind::Trade {
                ticker: h.market_ticker.ok_or("trade msg: no `market_ticker`")?,
                raw: raw.into(),
            }
        }
        _ => FrameKind::Ignored(kind.clone()),
    };
    Ok(Frame {
        recv_ns: line.recv_ns,
        sid: head.sid,
        seq: head.seq,
        kind: fk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_recorded_frame_types() {
        let s = parse(r#"{"recv_ns":5000000,"frame":{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_id":"m","market_ticker":"A","no_dollars_fp":[["0.0020","3.00"],["0.0010","1602.50"]],"yes_dollars_fp":[["0.4000","10.00"]]}}}"#).unwrap();
        assert_eq!((s.recv_ns, s.sid, s.seq), (5_000_000, Some(1), Some(1)));
        let FrameKind::Snapshot {
            ticker,
            yes,
            no,
            market_id,
        } = s.kind
        else {
            panic!("snapshot")
        };
        assert_eq!((ticker.as_str(), market_id.as_deref()), ("A", Some("m")));
        assert_eq!(
            yes,
            vec![(Price::from_cents(40).unwrap(), Count::from_contracts(10))]
        );
        assert_eq!(
            no[0].0,
            Price::parse_dollars("0.001").unwrap(),
            "sorted ascending"
        );
        assert_eq!(no[0].1, Count::parse("1602.50").unwrap());

        let d = parse(r#"{"recv_ns":1,"frame":{"type":"orderbook_delta","sid":1,"seq":2,"msg":{"delta_fp":"-4.00","market_id":"m","market_ticker":"A","price_dollars":"0.1100","side":"no","ts":"2026-05-11T05:37:43.762565Z","ts_ms":1778477863762}}}"#).unwrap();
        let FrameKind::Delta {
            side,
            price,
            delta,
            raw,
            ..
        } = d.kind
        else {
            panic!("delta")
        };
        assert_eq!(side, BookSide::No);
        assert_eq!(price, Price::from_cents(11).unwrap());
        assert_eq!(delta, Count::from_contracts(-4));
        assert!(
            raw.contains(r#""ts":"2026-05-11T05:37:43.762565Z""#),
            "recorded msg kept: {raw}"
        );

        let t = parse(r#"{"recv_ns":1,"frame":{"type":"ticker","sid":2,"msg":{"market_ticker":"A","price_dollars":"0.2100","volume_fp":"372789.52","dollar_volume":186394,"ts_ms":7}}}"#).unwrap();
        let FrameKind::Ticker { stats, .. } = t.kind else {
            panic!("ticker")
        };
        assert_eq!(stats.last_price, Some(Price::from_cents(21).unwrap()));
        assert_eq!(stats.volume, Some(Count::parse("372789.52").unwrap()));
        assert_eq!(stats.dollar_volume, Some(186_394));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, want) in [
            (r#"{"frame":{}}"#, "recv_ns"),
            (r#"{"recv_ns":1}"#, "no `frame`"),
            (r#"{"recv_ns":1,"frame":{"sid":1}}"#, "no `type`"),
            (
                r#"{"recv_ns":1,"frame":{"type":"orderbook_delta","msg":{"market_ticker":"A","price_dollars":"1.5","delta_fp":"1.00","side":"yes"}}}"#,
                "price_dollars",
            ),
            (
                r#"{"recv_ns":1,"frame":{"type":"orderbook_delta","msg":{"market_ticker":"A","price_dollars":"0.5","delta_fp":"1.00","side":"up"}}}"#,
                "side",
            ),
            (
                r#"{"recv_ns":1,"frame":{"type":"orderbook_snapshot","msg":{"market_ticker":"A","yes":[[40,10]]}}}"#,
                "legacy",
            ),
            (
                r#"{"recv_ns":1,"frame":{"type":"ticker","msg":{}}}"#,
                "market_ticker",
            ),
            (r#"{"recv_ns":1,"frame""#, "not a capture record"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        // Responses and unknown frames are not errors.
        let f = parse(r#"{"recv_ns":1,"frame":{"id":1,"type":"subscribed","msg":{"channel":"ticker","sid":2}}}"#).unwrap();
        assert!(matches!(f.kind, FrameKind::Ignored(ref k) if k == "subscribed"));
        let f = parse(r#"{"recv_ns":1,"invalid_frame":"garbage"}"#).unwrap();
        assert!(matches!(f.kind, FrameKind::Ignored(_)));
        let p = peek(r#"{"recv_ns":9,"frame":{"type":"ok","msg":[{"channel":"ticker","sid":2}]}}"#)
            .unwrap();
        assert_eq!((p.recv_ns, p.ticker), (9, None));
    }
}
