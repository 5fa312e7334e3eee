//! `snapshot/v1` records: one JSON object per line, either a book snapshot or a marker.
//!
//! On disk (DESIGN.md §3.1) prices are **cents** as JSON numbers (`42`, `98.2`), `null` where
//! a side of the book is empty; sizes and volume are contracts as JSON numbers (`10`, `12.5`);
//! ladders are `[[cents, size], …]`, best first. In memory everything is fixed-point
//! ([`Price`] micro-dollars, [`Count`] centi-contracts); the only float step is the JSON number
//! itself, through [`Price::to_cents_f64`]/[`Price::from_cents_f64`] and
//! [`Count::to_f64`]/[`Count::from_f64`], exact for values on the micro-dollar / centi-contract
//! grid. Whole cents and whole contracts are written as JSON integers.
//!
//! A line with an `event` field is a [`Marker`]; any other line is a [`SnapshotRecord`].
//! Unknown fields are skipped and reported by name ([`ParsedLine::unknown_fields`]).
//!
//! Invariants (checked by [`SnapshotRecord::validate`], on read and before every write):
//! - every price within 0..=100 cents and on the micro-dollar grid; sizes ≥ 0 on the
//!   centi-contract grid; `ts_ms` ≥ 0;
//! - `yes_ask = 100 − no_bid` and `no_ask = 100 − yes_bid`, present together or null together;
//! - `spread = yes_ask − yes_bid` and `yes_mid = (yes_bid + yes_ask) / 2` (either rounding of an
//!   odd micro-dollar sum is accepted), present exactly when both sides are; the book is not
//!   crossed (`yes_bid ≤ yes_ask`);
//! - a ladder is strictly descending in price with positive sizes, and its first level is the
//!   best bid (and its size, when the best size is recorded); an empty side has an empty ladder.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::MarketTicker;
use crate::money::{Count, Price, CENTIS_PER_CONTRACT, MICROS_PER_CENT};

/// One level of a depth ladder: price and resting size.
pub type Level = (Price, Count);

/// Why a record breaks a `snapshot/v1` invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// One field's value is out of range or off the fixed-point grid.
    #[error("field `{field}`: {msg}")]
    Field { field: &'static str, msg: String },
    /// Fields disagree with each other (e.g. `yes_ask ≠ 100 − no_bid`).
    #[error("inconsistent record: {0}")]
    Inconsistent(String),
}

fn field_err(field: &'static str, msg: impl Into<String>) -> RecordError {
    RecordError::Field {
        field,
        msg: msg.into(),
    }
}

/// A book snapshot of one market at one grid instant (`snapshot/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// UTC milliseconds, aligned to the snapshot grid.
    pub ts_ms: i64,
    pub market_ticker: MarketTicker,
    /// Best YES bid.
    pub yes_bid: Option<Price>,
    /// Best YES ask = 1 − best NO bid.
    pub yes_ask: Option<Price>,
    /// Best NO bid.
    pub no_bid: Option<Price>,
    /// Best NO ask = 1 − best YES bid.
    pub no_ask: Option<Price>,
    /// `(yes_bid + yes_ask) / 2`.
    pub yes_mid: Option<Price>,
    /// `yes_ask − yes_bid`.
    pub spread: Option<Price>,
    /// Size resting at the best YES bid.
    pub yes_bid_size: Option<Count>,
    /// Size available at the YES ask (= size resting at the best NO bid).
    pub yes_ask_size: Option<Count>,
    /// YES bids, best (highest) first, top N.
    pub yes_bids: Option<Vec<Level>>,
    /// NO bids, best (highest) first, top N.
    pub no_bids: Option<Vec<Level>>,
    pub last_price: Option<Price>,
    pub volume: Option<Count>,
    pub close_ts_ms: Option<i64>,
    /// The exchange sequence number the book was at.
    pub seq: Option<u64>,
}

/// The midpoint of a two-sided book in micro-dollars. An odd micro-dollar sum rounds half
/// **up** (towards the ask); prices on the cent or deci-cent grid never need rounding.
pub fn mid_price(bid: Price, ask: Price) -> Price {
    let m = (bid.micros() + ask.micros() + 1) / 2;
    Price::from_micros(m).expect("mid of two prices is a price")
}

impl SnapshotRecord {
    /// Builds a record from the best bid of each side, deriving everything else:
    /// `yes_ask = 1 − best NO bid`, `no_ask = 1 − best YES bid`, `yes_mid` by [`mid_price`]
    /// (exact in micro-dollars; half up when the sum is odd), `spread = yes_ask − yes_bid`.
    /// `yes_bid_size` is the size at the best YES bid, `yes_ask_size` the size at the best NO
    /// bid. Errors on a crossed book or a negative size.
    pub fn from_book(
        ts_ms: i64,
        market_ticker: MarketTicker,
        best_yes_bid: Option<Level>,
        best_no_bid: Option<Level>,
    ) -> Result<SnapshotRecord, RecordError> {
        let yes_bid = best_yes_bid.map(|l| l.0);
        let no_bid = best_no_bid.map(|l| l.0);
        let yes_ask = no_bid.map(Price::complement);
        let no_ask = yes_bid.map(Price::complement);
        let (yes_mid, spread) = match (yes_bid, yes_ask) {
            (Some(b), Some(a)) => {
                if b > a {
                    return Err(RecordError::Inconsistent(format!(
                        "crossed book: YES bid {b} above YES ask {a} (NO bid {})",
                        a.complement()
                    )));
                }
                (
                    Some(mid_price(b, a)),
                    Some(Price::from_micros(a.micros() - b.micros()).expect("a ≥ b")),
                )
            }
            _ => (None, None),
        };
        let rec = SnapshotRecord {
            ts_ms,
            market_ticker,
            yes_bid,
            yes_ask,
            no_bid,
            no_ask,
            yes_mid,
            spread,
            yes_bid_size: best_yes_bid.map(|l| l.1),
            yes_ask_size: best_no_bid.map(|l| l.1),
            yes_bids: None,
            no_bids: None,
            last_price: None,
            volume: None,
            close_ts_ms: None,
            seq: None,
        };
        rec.validate()?;
        Ok(rec)
    }

    /// Builds a record from full bid ladders (best first, as an order book yields them):
    /// the best levels feed [`SnapshotRecord::from_book`] and the top `depth` levels of each
    /// side are stored as `yes_bids`/`no_bids` (`depth` 0 stores no ladders).
    pub fn from_ladders(
        ts_ms: i64,
        market_ticker: MarketTicker,
        yes_bids: &[Level],
        no_bids: &[Level],
        depth: usize,
    ) -> Result<SnapshotRecord, RecordError> {
        let mut rec = SnapshotRecord::from_book(
            ts_ms,
            market_ticker,
            yes_bids.first().copied(),
            no_bids.first().copied(),
        )?;
        if depth > 0 {
            rec.yes_bids = Some(yes_bids.iter().take(depth).copied().collect());
            rec.no_bids = Some(no_bids.iter().take(depth).copied().collect());
            rec.validate()?;
        }
        Ok(rec)
    }

    pub fn with_last_price(mut self, p: Option<Price>) -> Self {
        self.last_price = p;
        self
    }
    pub fn with_volume(mut self, v: Option<Count>) -> Self {
        self.volume = v;
        self
    }
    pub fn with_close_ts_ms(mut self, t: Option<i64>) -> Self {
        self.close_ts_ms = t;
        self
    }
    pub fn with_seq(mut self, s: Option<u64>) -> Self {
        self.seq = s;
        self
    }

    /// Checks every invariant listed in the module docs.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.ts_ms < 0 {
            return Err(field_err("ts_ms", format!("{} is negative", self.ts_ms)));
        }
        if self.market_ticker.as_str().is_empty() {
            return Err(field_err("market_ticker", "empty"));
        }
        // Prices are range-checked by construction (`Price`); the grid is micro-dollars.
        let pair =
            |a: Option<Price>, an: &str, b: Option<Price>, bn: &str| match (a, b) {
                (Some(x), Some(y)) if x != y.complement() => Err(RecordError::Inconsistent(
                    format!("{an} {} ≠ 100 − {bn} {}", cents_text(x), cents_text(y)),
                )),
                (Some(_), None) | (None, Some(_)) => Err(RecordError::Inconsistent(format!(
                    "{an} and {bn} must be both null or both set"
                ))),
                _ => Ok(()),
            };
        pair(self.yes_ask, "yes_ask", self.no_bid, "no_bid")?;
        pair(self.no_ask, "no_ask", self.yes_bid, "yes_bid")?;
        match (self.yes_bid, self.yes_ask) {
            (Some(b), Some(a)) => {
                if b > a {
                    return Err(RecordError::Inconsistent(format!(
                        "crossed book: yes_bid {} > yes_ask {}",
                        cents_text(b),
                        cents_text(a)
                    )));
                }
                let want_spread = a.micros() - b.micros();
                match self.spread {
                    Some(s) if s.micros() == want_spread => {}
                    other => {
                        return Err(RecordError::Inconsistent(format!(
                            "spread {} ≠ yes_ask − yes_bid = {}",
                            opt_cents_text(other),
                            cents_text(Price::from_micros(want_spread).expect("a ≥ b"))
                        )))
                    }
                }
                let sum = b.micros() + a.micros();
                match self.yes_mid {
                    Some(m) if m.micros() == sum / 2 || m.micros() == (sum + 1) / 2 => {}
                    other => {
                        return Err(RecordError::Inconsistent(format!(
                            "yes_mid {} ≠ (yes_bid + yes_ask) / 2 = {}",
                            opt_cents_text(other),
                            cents_text(mid_price(b, a))
                        )))
                    }
                }
            }
            _ => {
                if self.spread.is_some() || self.yes_mid.is_some() {
                    return Err(RecordError::Inconsistent(
                        "yes_mid and spread must be null when a side of the book is empty".into(),
                    ));
                }
            }
        }
        for (name, c) in [
            ("yes_bid_size", self.yes_bid_size),
            ("yes_ask_size", self.yes_ask_size),
            ("volume", self.volume),
        ] {
            if let Some(c) = c {
                if c.is_negative() {
                    return Err(field_err(name, format!("{} is negative", c.to_f64())));
                }
            }
        }
        check_ladder(
            "yes_bids",
            self.yes_bids.as_deref(),
            self.yes_bid,
            self.yes_bid_size,
        )?;
        check_ladder(
            "no_bids",
            self.no_bids.as_deref(),
            self.no_bid,
            self.yes_ask_size,
        )?;
        if let Some(t) = self.close_ts_ms {
            if t < 0 {
                return Err(field_err("close_ts_ms", format!("{t} is negative")));
            }
        }
        Ok(())
    }
}

fn check_ladder(
    name: &'static str,
    ladder: Option<&[Level]>,
    best: Option<Price>,
    best_size: Option<Count>,
) -> Result<(), RecordError> {
    let Some(ladder) = ladder else {
        return Ok(());
    };
    for (i, (p, c)) in ladder.iter().enumerate() {
        if c.centis() <= 0 {
            return Err(field_err(
                name,
                format!("level {i} has size {} (must be > 0)", c.to_f64()),
            ));
        }
        if i > 0 && *p >= ladder[i - 1].0 {
            return Err(field_err(
                name,
                format!(
                    "level {i} price {} is not below the level before",
                    cents_text(*p)
                ),
            ));
        }
    }
    match (ladder.first(), best) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(RecordError::Inconsistent(format!(
            "{name} has levels but the best bid is null"
        ))),
        (Some(&(p, c)), Some(b)) => {
            if p != b {
                return Err(RecordError::Inconsistent(format!(
                    "{name}[0] price {} ≠ best bid {}",
                    cents_text(p),
                    cents_text(b)
                )));
            }
            if let Some(s) = best_size {
                if s != c {
                    return Err(RecordError::Inconsistent(format!(
                        "{name}[0] size {} ≠ best size {}",
                        c.to_f64(),
                        s.to_f64()
                    )));
                }
            }
            Ok(())
        }
    }
}

fn cents_text(p: Price) -> String {
    match p.whole_cents() {
        Some(c) => c.to_string(),
        None => p.to_cents_f64().to_string(),
    }
}

fn opt_cents_text(p: Option<Price>) -> String {
    p.map_or_else(|| "null".to_string(), cents_text)
}

/// What a [`Marker`] says about a market's book.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MarkerKind {
    /// The book became untrustworthy (sequence gap, disconnect): data after it is not a
    /// continuation of data before it.
    Gap,
    /// The book is trustworthy again (fresh snapshot after a gap).
    Resync,
    /// The market closed; no further book updates.
    Closed,
    /// Any other event name, kept verbatim.
    Other(String),
}

impl MarkerKind {
    pub fn as_str(&self) -> &str {
        match self {
            MarkerKind::Gap => "gap",
            MarkerKind::Resync => "resync",
            MarkerKind::Closed => "closed",
            MarkerKind::Other(s) => s,
        }
    }

    /// `"gap"`, `"resync"`, `"closed"`; any other text is [`MarkerKind::Other`].
    pub fn parse(s: &str) -> MarkerKind {
        match s {
            "gap" => MarkerKind::Gap,
            "resync" => MarkerKind::Resync,
            "closed" => MarkerKind::Closed,
            other => MarkerKind::Other(other.to_string()),
        }
    }
}

impl fmt::Display for MarkerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line with an `event` field: the writer's statement about a market's book at `ts_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub ts_ms: i64,
    pub market_ticker: MarketTicker,
    pub event: MarkerKind,
    pub reason: Option<String>,
}

impl Marker {
    pub fn new(
        ts_ms: i64,
        market_ticker: MarketTicker,
        event: MarkerKind,
        reason: Option<String>,
    ) -> Marker {
        Marker {
            ts_ms,
            market_ticker,
            event,
            reason,
        }
    }

    pub fn validate(&self) -> Result<(), RecordError> {
        if self.ts_ms < 0 {
            return Err(field_err("ts_ms", format!("{} is negative", self.ts_ms)));
        }
        if self.market_ticker.as_str().is_empty() {
            return Err(field_err("market_ticker", "empty"));
        }
        if self.event.as_str().is_empty() {
            return Err(field_err("event", "empty"));
        }
        Ok(())
    }
}

/// One line of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Snapshot(SnapshotRecord),
    Marker(Marker),
}

impl Line {
    pub fn ts_ms(&self) -> i64 {
        match self {
            Line::Snapshot(r) => r.ts_ms,
            Line::Marker(m) => m.ts_ms,
        }
    }

    pub fn market_ticker(&self) -> &MarketTicker {
        match self {
            Line::Snapshot(r) => &r.market_ticker,
            Line::Marker(m) => &m.market_ticker,
        }
    }

    pub fn validate(&self) -> Result<(), RecordError> {
        match self {
            Line::Snapshot(r) => r.validate(),
            Line::Marker(m) => m.validate(),
        }
    }

    /// Appends the line's JSON and a `\n` to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, self).expect("serialising to a Vec cannot fail");
        out.push(b'\n');
    }

    /// The line's JSON, without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialising to a String cannot fail")
    }

    /// Parses one line (see [`parse_line`]), dropping the unknown-field names.
    pub fn from_json(text: &str) -> Result<Line, LineError> {
        parse_line(text.as_bytes()).map(|p| p.line)
    }
}

impl From<SnapshotRecord> for Line {
    fn from(r: SnapshotRecord) -> Line {
        Line::Snapshot(r)
    }
}
impl From<Marker> for Line {
    fn from(m: Marker) -> Line {
        Line::Marker(m)
    }
}

// ---------------------------------------------------------------------------------------------
// Serialisation

struct Cents(Price);
impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.whole_cents() {
            Some(c) => s.serialize_i64(c),
            None => s.serialize_f64(self.0.to_cents_f64()),
        }
    }
}

struct OptCents(Option<Price>);
impl Serialize for OptCents {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(p) => Cents(p).serialize(s),
            None => s.serialize_none(),
        }
    }
}

struct Contracts(Count);
impl Serialize for Contracts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0.centis();
        if c % CENTIS_PER_CONTRACT == 0 {
            s.serialize_i64(c / CENTIS_PER_CONTRACT)
        } else {
            s.serialize_f64(self.0.to_f64())
        }
    }
}

struct LadderOut<'a>(&'a [Level]);
impl Serialize for LadderOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|&(p, c)| (Cents(p), Contracts(c))))
    }
}

impl Serialize for SnapshotRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SnapshotRecord", 16)?;
        st.serialize_field("ts_ms", &self.ts_ms)?;
        st.serialize_field("market_ticker", &self.market_ticker)?;
        st.serialize_field("yes_bid", &OptCents(self.yes_bid))?;
        st.serialize_field("yes_ask", &OptCents(self.yes_ask))?;
        st.serialize_field("no_bid", &OptCents(self.no_bid))?;
        st.serialize_field("no_ask", &OptCents(self.no_ask))?;
        st.serialize_field("yes_mid", &OptCents(self.yes_mid))?;
        st.serialize_field("spread", &OptCents(self.spread))?;
        if let Some(c) = self.yes_bid_size {
            st.serialize_field("yes_bid_size", &Contracts(c))?;
        }
        if let Some(c) = self.yes_ask_size {
            st.serialize_field("yes_ask_size", &Contracts(c))?;
        }
        if let Some(p) = self.last_price {
            st.serialize_field("last_price", &Cents(p))?;
        }
        if let Some(v) = self.volume {
            st.serialize_field("volume", &Contracts(v))?;
        }
        if let Some(t) = self.close_ts_ms {
            st.serialize_field("close_ts_ms", &t)?;
        }
        if let Some(q) = self.seq {
            st.serialize_field("seq", &q)?;
        }
        if let Some(l) = &self.yes_bids {
            st.serialize_field("yes_bids", &LadderOut(l))?;
        }
        if let Some(l) = &self.no_bids {
            st.serialize_field("no_bids", &LadderOut(l))?;
        }
        st.end()
    }
}

impl Serialize for Marker {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Marker", 4)?;
        st.serialize_field("ts_ms", &self.ts_ms)?;
        st.serialize_field("market_ticker", &self.market_ticker)?;
        st.serialize_field("event", self.event.as_str())?;
        if let Some(r) = &self.reason {
            st.serialize_field("reason", r)?;
        }
        st.end()
    }
}

impl Serialize for Line {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Line::Snapshot(r) => r.serialize(s),
            Line::Marker(m) => m.serialize(s),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Why a line was rejected. The reader counts each kind separately.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not UTF-8 (invalid byte at column {})", .valid_up_to + 1)]
    NotUtf8 { valid_up_to: usize },
    #[error("not JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but a field is missing, duplicated or of the wrong type.
    #[error("bad field: {0}")]
    BadField(String),
    /// Well-formed, but breaks a `snapshot/v1` invariant.
    #[error("invalid: {0}")]
    Invalid(#[from] RecordError),
}

/// A parsed line plus the names of the unknown fields it carried (skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub line: Line,
    pub unknown_fields: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    TsMs,
    MarketTicker,
    YesBid,
    YesAsk,
    NoBid,
    NoAsk,
    YesMid,
    Spread,
    YesBidSize,
    YesAskSize,
    YesBids,
    NoBids,
    LastPrice,
    Volume,
    CloseTsMs,
    Seq,
    Event,
    Reason,
}

const FIELD_NAMES: [&str; 18] = [
    "ts_ms",
    "market_ticker",
    "yes_bid",
    "yes_ask",
    "no_bid",
    "no_ask",
    "yes_mid",
    "spread",
    "yes_bid_size",
    "yes_ask_size",
    "yes_bids",
    "no_bids",
    "last_price",
    "volume",
    "close_ts_ms",
    "seq",
    "event",
    "reason",
];

impl Field {
    fn from_name(s: &str) -> Option<Field> {
        use Field::*;
        Some(match s {
            "ts_ms" => TsMs,
            "market_ticker" => MarketTicker,
            "yes_bid" => YesBid,
            "yes_ask" => YesAsk,
            "no_bid" => NoBid,
            "no_ask" => NoAsk,
            "yes_mid" => YesMid,
            "spread" => Spread,
            "yes_bid_size" => YesBidSize,
            "yes_ask_size" => YesAskSize,
            "yes_bids" => YesBids,
            "no_bids" => NoBids,
            "last_price" => LastPrice,
            "volume" => Volume,
            "close_ts_ms" => CloseTsMs,
            "seq" => Seq,
            "event" => Event,
            "reason" => Reason,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        FIELD_NAMES[self as usize]
    }
    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

enum Key {
    Known(Field),
    Unknown(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match Field::from_name(v) {
                    Some(f) => Key::Known(f),
                    None => Key::Unknown(v.to_string()),
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// The line's fields as found, before conversion to fixed point and validation.
#[derive(Default)]
struct RawLine {
    seen: u32,
    ts_ms: i64,
    market_ticker: String,
    /// yes_bid, yes_ask, no_bid, no_ask, yes_mid, spread, last_price
    prices: [Option<f64>; 7],
    /// yes_bid_size, yes_ask_size, volume
    counts: [Option<f64>; 3],
    yes_bids: Option<Vec<(f64, f64)>>,
    no_bids: Option<Vec<(f64, f64)>>,
    close_ts_ms: Option<i64>,
    seq: Option<u64>,
    event: Option<String>,
    reason: Option<String>,
    unknown: Vec<String>,
}

/// Deserialises a [`RawLine`], remembering which field it was in when an error occurred so
/// the message can name it.
struct RawSeed<'a> {
    current: &'a Cell<Option<&'static str>>,
}

impl<'de> DeserializeSeed<'de> for RawSeed<'_> {
    type Value = RawLine;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawLine, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RawSeed<'_> {
    type Value = RawLine;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a snapshot/v1 JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawLine, A::Error> {
        let mut raw = RawLine::default();
        while let Some(key) = map.next_key::<Key>()? {
            let f = match key {
                Key::Unknown(name) => {
                    map.next_value::<IgnoredAny>()?;
                    raw.unknown.push(name);
                    continue;
                }
                Key::Known(f) => f,
            };
            if raw.seen & f.bit() != 0 {
                return Err(de::Error::custom(format_args!(
                    "duplicate field `{}`",
                    f.name()
                )));
            }
            raw.seen |= f.bit();
            self.current.set(Some(f.name()));
            use Field::*;
            match f {
                TsMs => raw.ts_ms = map.next_value()?,
                MarketTicker => raw.market_ticker = map.next_value()?,
                YesBid => raw.prices[0] = map.next_value()?,
                YesAsk => raw.prices[1] = map.next_value()?,
                NoBid => raw.prices[2] = map.next_value()?,
                NoAsk => raw.prices[3] = map.next_value()?,
                YesMid => raw.prices[4] = map.next_value()?,
                Spread => raw.prices[5] = map.next_value()?,
                LastPrice => raw.prices[6] = map.next_value()?,
                YesBidSize => raw.counts[0] = map.next_value()?,
                YesAskSize => raw.counts[1] = map.next_value()?,
                Volume => raw.counts[2] = map.next_value()?,
                YesBids => raw.yes_bids = map.next_value()?,
                NoBids => raw.no_bids = map.next_value()?,
                CloseTsMs => raw.close_ts_ms = map.next_value()?,
                Seq => raw.seq = map.next_value()?,
                Event => raw.event = map.next_value()?,
                Reason => raw.reason = map.next_value()?,
            }
            self.current.set(None);
        }
        Ok(raw)
    }
}

const SNAPSHOT_REQUIRED: [Field; 8] = [
    Field::TsMs,
    Field::MarketTicker,
    Field::YesBid,
    Field::YesAsk,
    Field::NoBid,
    Field::NoAsk,
    Field::YesMid,
    Field::Spread,
];

const SNAPSHOT_ONLY: [Field; 14] = [
    Field::YesBid,
    Field::YesAsk,
    Field::NoBid,
    Field::NoAsk,
    Field::YesMid,
    Field::Spread,
    Field::YesBidSize,
    Field::YesAskSize,
    Field::YesBids,
    Field::NoBids,
    Field::LastPrice,
    Field::Volume,
    Field::CloseTsMs,
    Field::Seq,
];

/// Cents (JSON number) → [`Price`]: within 0..=100 and on the micro-dollar grid.
fn price_from_cents(field: &'static str, cents: f64) -> Result<Price, RecordError> {
    if !(0.0..=100.0).contains(&cents) {
        return Err(field_err(
            field,
            format!("{cents} cents is outside 0..=100"),
        ));
    }
    let micros = cents * MICROS_PER_CENT as f64;
    if (micros - micros.round()).abs() > 1e-6 {
        return Err(field_err(
            field,
            format!("{cents} cents is finer than the micro-dollar grid"),
        ));
    }
    Price::from_cents_f64(cents).map_err(|e| field_err(field, e.to_string()))
}

/// Contracts (JSON number) → [`Count`], on the centi-contract grid.
fn count_from_contracts(field: &'static str, v: f64) -> Result<Count, RecordError> {
    let centis = v * CENTIS_PER_CONTRACT as f64;
    let r = centis.round();
    if (centis - r).abs() > 1e-6_f64.max(r.abs() * 1e-12) {
        return Err(field_err(
            field,
            format!("{v} contracts is finer than 0.01"),
        ));
    }
    Count::from_f64(v).map_err(|e| field_err(field, e.to_string()))
}

fn ladder_from_raw(
    field: &'static str,
    raw: Option<Vec<(f64, f64)>>,
) -> Result<Option<Vec<Level>>, RecordError> {
    raw.map(|v| {
        v.into_iter()
            .map(|(p, c)| Ok((price_from_cents(field, p)?, count_from_contracts(field, c)?)))
            .collect()
    })
    .transpose()
}

impl RawLine {
    fn into_parsed(self) -> Result<ParsedLine, LineError> {
        let mut unknown = self.unknown;
        if let Some(event) = self.event {
            for f in [Field::TsMs, Field::MarketTicker] {
                if self.seen & f.bit() == 0 {
                    return Err(LineError::BadField(format!("missing field `{}`", f.name())));
                }
            }
            // Snapshot fields on a marker line are not part of a marker: skipped as unknown.
            for f in SNAPSHOT_ONLY {
                if self.seen & f.bit() != 0 {
                    unknown.push(f.name().to_string());
                }
            }
            let m = Marker {
                ts_ms: self.ts_ms,
                market_ticker: MarketTicker::new(self.market_ticker),
                event: MarkerKind::parse(&event),
                reason: self.reason,
            };
            m.validate()?;
            return Ok(ParsedLine {
                line: Line::Marker(m),
                unknown_fields: unknown,
            });
        }
        for f in SNAPSHOT_REQUIRED {
            if self.seen & f.bit() == 0 {
                return Err(LineError::BadField(format!("missing field `{}`", f.name())));
            }
        }
        if self.seen & Field::Reason.bit() != 0 {
            unknown.push("reason".to_string());
        }
        const PRICE_FIELDS: [&str; 7] = [
            "yes_bid",
            "yes_ask",
            "no_bid",
            "no_ask",
            "yes_mid",
            "spread",
            "last_price",
        ];
        let mut prices = [None; 7];
        for (i, p) in self.prices.iter().enumerate() {
            prices[i] = p
                .map(|c| price_from_cents(PRICE_FIELDS[i], c))
                .transpose()?;
        }
        const COUNT_FIELDS: [&str; 3] = ["yes_bid_size", "yes_ask_size", "volume"];
        let mut counts = [None; 3];
        for (i, c) in self.counts.iter().enumerate() {
            counts[i] = c
                .map(|v| count_from_contracts(COUNT_FIELDS[i], v))
                .transpose()?;
        }
        let rec = SnapshotRecord {
            ts_ms: self.ts_ms,
            market_ticker: MarketTicker::new(self.market_ticker),
            yes_bid: prices[0],
            yes_ask: prices[1],
            no_bid: prices[2],
            no_ask: prices[3],
            yes_mid: prices[4],
            spread: prices[5],
            yes_bid_size: counts[0],
            yes_ask_size: counts[1],
            yes_bids: ladder_from_raw("yes_bids", self.yes_bids)?,
            no_bids: ladder_from_raw("no_bids", self.no_bids)?,
            last_price: prices[6],
            volume: counts[2],
            close_ts_ms: self.close_ts_ms,
            seq: self.seq,
        };
        rec.validate()?;
        Ok(ParsedLine {
            line: Line::Snapshot(rec),
            unknown_fields: unknown,
        })
    }
}

/// Parses one line of a snapshot file (without or with its trailing newline / `\r`).
///
/// A line with a non-null `event` field is a marker; otherwise a snapshot. Unknown fields are
/// skipped and named in the result. Errors say which field and why.
pub fn parse_line(bytes: &[u8]) -> Result<ParsedLine, LineError> {
    let text = std::str::from_utf8(bytes).map_err(|e| LineError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let current = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = RawSeed { current: &current }
        .deserialize(&mut de)
        .and_then(|raw| de.end().map(|()| raw))
        .map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => match current.get() {
                    Some(field) => LineError::BadField(format!("field `{field}`: {e}")),
                    None => LineError::BadField(e.to_string()),
                },
                _ => LineError::NotJson(e.to_string()),
            }
        })?;
    raw.into_parsed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(c: f64) -> Price {
        Price::from_cents_f64(c).unwrap()
    }
    fn n(v: f64) -> Count {
        Count::from_f64(v).unwrap()
    }
    fn t() -> MarketTicker {
        MarketTicker::new("KXBTC15M-26MAY111415-15")
    }

    #[test]
    fn from_book_derives_every_field() {
        let r = SnapshotRecord::from_book(
            1_000,
            t(),
            Some((p(42.0), n(10.0))),
            Some((p(55.0), n(3.5))),
        )
        .unwrap();
        assert_eq!(r.yes_bid, Some(p(42.0)));
        assert_eq!(r.no_bid, Some(p(55.0)));
        assert_eq!(r.yes_ask, Some(p(45.0)));
        assert_eq!(r.no_ask, Some(p(58.0)));
        assert_eq!(r.spread, Some(p(3.0)));
        assert_eq!(r.yes_mid, Some(p(43.5)));
        assert_eq!(r.yes_bid_size, Some(n(10.0)));
        assert_eq!(r.yes_ask_size, Some(n(3.5)));

        // Deci-cent ticks near the edge.
        let r = SnapshotRecord::from_book(0, t(), Some((p(98.2), n(1.0))), Some((p(1.7), n(2.0))))
            .unwrap();
        assert_eq!(r.yes_ask, Some(p(98.3)));
        assert_eq!(r.spread.unwrap().micros(), 1_000);
        assert_eq!(r.yes_mid.unwrap().micros(), 982_500);

        // One side empty: the other side's derived fields and no mid/spread.
        let r = SnapshotRecord::from_book(0, t(), Some((p(42.0), n(1.0))), None).unwrap();
        assert_eq!(r.yes_ask, None);
        assert_eq!(r.no_bid, None);
        assert_eq!(r.no_ask, Some(p(58.0)));
        assert_eq!((r.yes_mid, r.spread), (None, None));
    }

    #[test]
    fn mid_rounds_half_up_on_odd_micro_sums() {
        let b = Price::from_micros(100).unwrap();
        let a = Price::from_micros(201).unwrap();
        assert_eq!(mid_price(b, a).micros(), 151);
        // A record written with the floor is accepted too.
        let mut r =
            SnapshotRecord::from_book(0, t(), Some((b, n(1.0))), Some((a.complement(), n(1.0))))
                .unwrap();
        assert_eq!(r.yes_mid.unwrap().micros(), 151);
        r.yes_mid = Some(Price::from_micros(150).unwrap());
        r.validate().unwrap();
        r.yes_mid = Some(Price::from_micros(149).unwrap());
        assert!(r.validate().is_err());
    }

    #[test]
    fn crossed_book_is_refused() {
        let e = SnapshotRecord::from_book(0, t(), Some((p(60.0), n(1.0))), Some((p(50.0), n(1.0))))
            .unwrap_err();
        assert!(e.to_string().contains("crossed"), "{e}");
    }

    #[test]
    fn exact_on_disk_text() {
        let r = SnapshotRecord::from_ladders(
            1_715_436_000_100,
            t(),
            &[(p(98.2), n(12.5)), (p(98.0), n(100.0))],
            &[(p(1.7), n(3.0))],
            5,
        )
        .unwrap()
        .with_last_price(Some(p(98.0)))
        .with_volume(Some(n(1234.0)))
        .with_close_ts_ms(Some(1_715_436_900_000))
        .with_seq(Some(77));
        let text = Line::Snapshot(r.clone()).to_json();
        assert_eq!(
            text,
            r#"{"ts_ms":1715436000100,"market_ticker":"KXBTC15M-26MAY111415-15","yes_bid":98.2,"yes_ask":98.3,"no_bid":1.7,"no_ask":1.8,"yes_mid":98.25,"spread":0.1,"yes_bid_size":12.5,"yes_ask_size":3,"last_price":98,"volume":1234,"close_ts_ms":1715436900000,"seq":77,"yes_bids":[[98.2,12.5],[98,100]],"no_bids":[[1.7,3]]}"#
        );
        assert_eq!(Line::from_json(&text).unwrap(), Line::Snapshot(r));

        let empty = SnapshotRecord::from_book(5, t(), None, None).unwrap();
        assert_eq!(
            Line::Snapshot(empty).to_json(),
            r#"{"ts_ms":5,"market_ticker":"KXBTC15M-26MAY111415-15","yes_bid":null,"yes_ask":null,"no_bid":null,"no_ask":null,"yes_mid":null,"spread":null}"#
        );

        let m = Marker::new(9, t(), MarkerKind::Gap, Some("seq 5 → 7".into()));
        let text = Line::Marker(m.clone()).to_json();
        assert_eq!(
            text,
            r#"{"ts_ms":9,"market_ticker":"KXBTC15M-26MAY111415-15","event":"gap","reason":"seq 5 → 7"}"#
        );
        assert_eq!(Line::from_json(&text).unwrap(), Line::Marker(m));
    }

    #[test]
    fn unknown_fields_are_skipped_and_named() {
        let parsed = parse_line(
            br#"{"ts_ms":1,"market_ticker":"M","yes_bid":null,"yes_ask":null,"no_bid":null,"no_ask":null,"yes_mid":null,"spread":null,"recv_ns":123,"extra":{"a":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(parsed.unknown_fields, vec!["recv_ns", "extra"]);
        let parsed = parse_line(
            br#"{"ts_ms":1,"market_ticker":"M","event":"resync","yes_bid":4,"why":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            parsed.line,
            Line::Marker(Marker::new(1, "M".into(), MarkerKind::Resync, None))
        );
        assert_eq!(parsed.unknown_fields, vec!["why", "yes_bid"]);
        let other = Line::from_json(r#"{"ts_ms":1,"market_ticker":"M","event":"halted"}"#).unwrap();
        assert_eq!(
            other,
            Line::Marker(Marker::new(
                1,
                "M".into(),
                MarkerKind::Other("halted".into()),
                None
            ))
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let base = r#""ts_ms":1,"market_ticker":"M","yes_mid":null,"spread":null,"no_ask":null,"yes_bid":null"#;
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe{}", "not UTF-8"),
            (b"{\"ts_ms\":1,", "not JSON"),
            (b"hello", "not JSON"),
            (b"{} trailing", "not JSON"),
            (b"[1,2]", "bad field"),
            (br#"{"ts_ms":"1","market_ticker":"M"}"#, "field `ts_ms`"),
            (br#"{"ts_ms":1.5,"market_ticker":"M"}"#, "field `ts_ms`"),
            (
                br#"{"ts_ms":1,"market_ticker":"M"}"#,
                "missing field `yes_bid`",
            ),
            (br#"{"ts_ms":1,"ts_ms":2}"#, "duplicate field `ts_ms`"),
        ];
        for (line, want) in cases {
            let e = parse_line(line).unwrap_err().to_string();
            assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(line));
        }
        let with = |rest: &str| format!("{{{base},{rest}}}");
        let e = parse_line(with(r#""yes_ask":"abc","no_bid":1"#).as_bytes()).unwrap_err();
        assert!(
            matches!(e, LineError::BadField(ref m) if m.contains("field `yes_ask`")),
            "{e}"
        );
        let e = parse_line(with(r#""yes_ask":101,"no_bid":-1"#).as_bytes()).unwrap_err();
        assert!(matches!(e, LineError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("yes_ask"), "{e}");
        let e = parse_line(with(r#""yes_ask":40,"no_bid":50"#).as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("yes_ask 40 ≠ 100 − no_bid 50"),
            "{e}"
        );
        let e =
            parse_line(with(r#""yes_ask":40.000001,"no_bid":59.999999"#).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("micro-dollar grid"), "{e}");
        // Consistent one-sided book parses.
        parse_line(with(r#""yes_ask":40,"no_bid":60"#).as_bytes()).unwrap();
        // Wrong spread / mid.
        let two = r#"{"ts_ms":1,"market_ticker":"M","yes_bid":40,"yes_ask":45,"no_bid":55,"no_ask":60,"yes_mid":42.5,"spread":5}"#;
        parse_line(two.as_bytes()).unwrap();
        for (from, to, want) in [
            ("\"spread\":5", "\"spread\":4", "spread"),
            ("\"yes_mid\":42.5", "\"yes_mid\":42", "yes_mid"),
            ("\"spread\":5", "\"spread\":null", "spread"),
            ("\"no_ask\":60", "\"no_ask\":61", "no_ask"),
        ] {
            let e = parse_line(two.replace(from, to).as_bytes()).unwrap_err();
            assert!(
                matches!(e, LineError::Invalid(_)) && e.to_string().contains(want),
                "{e}"
            );
        }
        // Ladders must agree with the best bid and descend.
        let lad = two.replace('}', r#","yes_bids":[[40,1],[41,2]]}"#);
        assert!(parse_line(lad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("not below"));
        let lad = two.replace('}', r#","yes_bids":[[39,1]]}"#);
        assert!(parse_line(lad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("best bid"));
        let lad = two.replace('}', r#","no_bids":[[55,0]]}"#);
        assert!(parse_line(lad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("size 0"));
        let lad = two.replace('}', r#","no_bids":[[55,1.005]]}"#);
        assert!(parse_line(lad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("finer than 0.01"));
    }

    fn arb_levels() -> impl Strategy<Value = Vec<Level>> {
        // Strictly descending distinct prices in micro-dollars, positive centi sizes.
        proptest::collection::btree_set(0i64..=1_000_000, 0..6).prop_flat_map(|set| {
            let prices: Vec<i64> = set.into_iter().rev().collect();
            let n = prices.len();
            proptest::collection::vec(1i64..100_000_000, n).prop_map(move |sizes| {
                prices
                    .iter()
                    .zip(sizes)
                    .map(|(&p, s)| (Price::from_micros(p).unwrap(), Count::from_centis(s)))
                    .collect()
            })
        })
    }

    proptest! {
        #[test]
        fn record_line_record_is_identity(
            ts in 0i64..4_000_000_000_000,
            yes in arb_levels(),
            no in arb_levels(),
            depth in 0usize..4,
            last in proptest::option::of(0i64..=1_000_000),
            vol in proptest::option::of(0i64..1_000_000_000_000),
            close in proptest::option::of(0i64..4_000_000_000_000),
            seq in proptest::option::of(any::<u64>()),
        ) {
            let rec = match SnapshotRecord::from_ladders(ts, "KX-1".into(), &yes, &no, depth) {
                Ok(r) => r,
                Err(RecordError::Inconsistent(m)) if m.contains("crossed") => return Ok(()),
                Err(e) => panic!("{e}"),
            };
            let rec = rec
                .with_last_price(last.map(|m| Price::from_micros(m).unwrap()))
                .with_volume(vol.map(Count::from_centis))
                .with_close_ts_ms(close)
                .with_seq(seq);
            let line = Line::Snapshot(rec);
            let mut buf = Vec::new();
            line.write_json(&mut buf);
            prop_assert_eq!(buf.last(), Some(&b'\n'));
            let back = parse_line(&buf).unwrap();
            prop_assert!(back.unknown_fields.is_empty());
            prop_assert_eq!(back.line, line);
        }
    }
}
