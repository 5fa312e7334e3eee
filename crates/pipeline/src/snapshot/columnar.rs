//! Compact per-market columns for training and replay.
//!
//! [`load_columnar`] reads many snapshot files in parallel (one file per rayon task), then
//! merges them deterministically: files in path order, each market's rows sorted by `ts_ms`
//! (stable, so equal timestamps keep file order), exact-timestamp duplicates dropped keeping
//! the first (counted; a duplicate whose content differs is also counted as a conflict).
//! The result does not depend on thread scheduling.
//!
//! Columns hold fixed-point integers: prices in micro-dollars (`i32`, [`NO_PRICE`] where a
//! side is empty), sizes and volume in centi-contracts (`i64`, [`NO_COUNT`] when absent). The
//! NO side and the derived fields come from the identities `no_bid = 1 − yes_ask`,
//! `no_ask = 1 − yes_bid` (see the accessors).
//!
//! **Segments.** Markers split a market's rows into [`Segment`]s so consumers never bridge a
//! gap: a marker at `T` applies before the rows with `ts_ms ≥ T`. `gap` and `closed` make the
//! following rows untrusted until a `resync`; any marker (including unknown kinds) starts a new
//! segment. A silence longer than [`ColumnarOptions::split_gap_ms`] between two rows (a
//! recorder that died without writing a marker) also starts a new segment.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use rayon::prelude::*;

use super::reader::{resolve_glob, FileReader, FileReport, ReadError, ReadOptions, ReadReport};
use super::record::{mid_price, Line, MarkerKind, SnapshotRecord};
use crate::ids::MarketTicker;
use crate::money::{Count, Price};

/// Price column sentinel: the side of the book is empty / the field is null.
pub const NO_PRICE: i32 = i32::MIN;
/// Count column sentinel: not recorded.
pub const NO_COUNT: i64 = i64::MIN;

/// How to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnarOptions {
    pub read: ReadOptions,
    /// Keep the depth ladders (`yes_bids`/`no_bids`) when recorded (default true).
    pub ladders: bool,
    /// Start a new segment when two consecutive rows of a market are more than this far apart
    /// (default 60 s; `None` never splits on time).
    pub split_gap_ms: Option<i64>,
    /// Threads for reading files (default: rayon's global pool).
    pub threads: Option<usize>,
}

impl Default for ColumnarOptions {
    fn default() -> Self {
        ColumnarOptions {
            read: ReadOptions::default(),
            ladders: true,
            split_gap_ms: Some(60_000),
            threads: None,
        }
    }
}

/// Depth ladders in compressed-row form: the levels of row `i` are
/// `yes_price[yes_offsets[i]..yes_offsets[i + 1]]` (best first), likewise for NO. A row without
/// a recorded ladder has an empty range (use the best bid columns then).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ladders {
    pub yes_offsets: Vec<usize>,
    pub yes_price: Vec<i32>,
    pub yes_size: Vec<i64>,
    pub no_offsets: Vec<usize>,
    pub no_price: Vec<i32>,
    pub no_size: Vec<i64>,
}

impl Ladders {
    fn with_empty_rows(n: usize) -> Ladders {
        Ladders {
            yes_offsets: vec![0; n + 1],
            no_offsets: vec![0; n + 1],
            ..Default::default()
        }
    }

    fn push_row(&mut self, rec: &SnapshotRecord) {
        for (ladder, offsets, price, size) in [
            (
                &rec.yes_bids,
                &mut self.yes_offsets,
                &mut self.yes_price,
                &mut self.yes_size,
            ),
            (
                &rec.no_bids,
                &mut self.no_offsets,
                &mut self.no_price,
                &mut self.no_size,
            ),
        ] {
            for (p, c) in ladder.iter().flatten() {
                price.push(p.micros() as i32);
                size.push(c.centis());
            }
            offsets.push(price.len());
        }
    }

    fn row_eq(&self, i: usize, o: &Ladders, j: usize) -> bool {
        let (a, b) = (
            self.yes_offsets[i]..self.yes_offsets[i + 1],
            o.yes_offsets[j]..o.yes_offsets[j + 1],
        );
        let (c, d) = (
            self.no_offsets[i]..self.no_offsets[i + 1],
            o.no_offsets[j]..o.no_offsets[j + 1],
        );
        self.yes_price[a.clone()] == o.yes_price[b.clone()]
            && self.yes_size[a] == o.yes_size[b]
            && self.no_price[c.clone()] == o.no_price[d.clone()]
            && self.no_size[c] == o.no_size[d]
    }

    fn append_row_from(&mut self, o: &Ladders, j: usize) {
        let r = o.yes_offsets[j]..o.yes_offsets[j + 1];
        self.yes_price.extend_from_slice(&o.yes_price[r.clone()]);
        self.yes_size.extend_from_slice(&o.yes_size[r]);
        self.yes_offsets.push(self.yes_price.len());
        let r = o.no_offsets[j]..o.no_offsets[j + 1];
        self.no_price.extend_from_slice(&o.no_price[r.clone()]);
        self.no_size.extend_from_slice(&o.no_size[r]);
        self.no_offsets.push(self.no_price.len());
    }
}

/// Why a segment starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentCause {
    /// The market's first row.
    Start,
    /// The last marker before the segment's first row.
    Marker(MarkerKind),
    /// No row for more than [`ColumnarOptions::split_gap_ms`].
    TimeGap { gap_ms: i64 },
}

/// A run of rows `start..end` that may be treated as one continuous book history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
    /// False after a `gap` or `closed` marker until a `resync`.
    pub trusted: bool,
    pub cause: SegmentCause,
}

impl Segment {
    pub fn rows(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// A marker as kept with its market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRow {
    pub ts_ms: i64,
    pub kind: MarkerKind,
    pub reason: Option<String>,
}

/// One market's snapshots as columns, sorted by `ts_ms`, no duplicate timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketSeries {
    pub ticker: MarketTicker,
    pub ts_ms: Vec<i64>,
    /// Micro-dollars or [`NO_PRICE`].
    pub yes_bid: Vec<i32>,
    /// Micro-dollars or [`NO_PRICE`] (= 1 − best NO bid).
    pub yes_ask: Vec<i32>,
    /// Centi-contracts or [`NO_COUNT`].
    pub yes_bid_size: Vec<i64>,
    /// Centi-contracts or [`NO_COUNT`].
    pub yes_ask_size: Vec<i64>,
    /// Micro-dollars or [`NO_PRICE`].
    pub last_price: Vec<i32>,
    /// Centi-contracts or [`NO_COUNT`].
    pub volume: Vec<i64>,
    /// From the latest row that recorded it.
    pub close_ts_ms: Option<i64>,
    /// Present when any row recorded a ladder and [`ColumnarOptions::ladders`] is set.
    pub ladders: Option<Ladders>,
    /// Row ranges covering every row, in order.
    pub segments: Vec<Segment>,
    /// This market's markers sorted by `ts_ms` (exact duplicates removed).
    pub markers: Vec<MarkerRow>,
    /// `ts_ms` of the row that set `close_ts_ms` (to merge files).
    close_from_ts: i64,
}

fn price_col(p: Option<Price>) -> i32 {
    p.map_or(NO_PRICE, |p| p.micros() as i32)
}
fn count_col(c: Option<Count>) -> i64 {
    c.map_or(NO_COUNT, Count::centis)
}
fn col_price(v: i32) -> Option<Price> {
    (v != NO_PRICE).then(|| Price::from_micros(i64::from(v)).expect("stored from a Price"))
}
fn col_count(v: i64) -> Option<Count> {
    (v != NO_COUNT).then(|| Count::from_centis(v))
}

impl MarketSeries {
    fn empty(ticker: MarketTicker) -> MarketSeries {
        MarketSeries {
            ticker,
            ts_ms: Vec::new(),
            yes_bid: Vec::new(),
            yes_ask: Vec::new(),
            yes_bid_size: Vec::new(),
            yes_ask_size: Vec::new(),
            last_price: Vec::new(),
            volume: Vec::new(),
            close_ts_ms: None,
            ladders: None,
            segments: Vec::new(),
            markers: Vec::new(),
            close_from_ts: i64::MIN,
        }
    }

    pub fn len(&self) -> usize {
        self.ts_ms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ts_ms.is_empty()
    }

    pub fn yes_bid(&self, i: usize) -> Option<Price> {
        col_price(self.yes_bid[i])
    }
    pub fn yes_ask(&self, i: usize) -> Option<Price> {
        col_price(self.yes_ask[i])
    }
    /// Best NO bid = 1 − YES ask.
    pub fn no_bid(&self, i: usize) -> Option<Price> {
        self.yes_ask(i).map(Price::complement)
    }
    /// NO ask = 1 − best YES bid.
    pub fn no_ask(&self, i: usize) -> Option<Price> {
        self.yes_bid(i).map(Price::complement)
    }
    /// YES mid as [`mid_price`] computes it, when both sides are present.
    pub fn yes_mid(&self, i: usize) -> Option<Price> {
        Some(mid_price(self.yes_bid(i)?, self.yes_ask(i)?))
    }
    pub fn spread(&self, i: usize) -> Option<Price> {
        let (b, a) = (self.yes_bid(i)?, self.yes_ask(i)?);
        Price::from_micros(a.micros() - b.micros()).ok()
    }
    pub fn yes_bid_size(&self, i: usize) -> Option<Count> {
        col_count(self.yes_bid_size[i])
    }
    pub fn yes_ask_size(&self, i: usize) -> Option<Count> {
        col_count(self.yes_ask_size[i])
    }
    pub fn last_price(&self, i: usize) -> Option<Price> {
        col_price(self.last_price[i])
    }
    pub fn volume(&self, i: usize) -> Option<Count> {
        col_count(self.volume[i])
    }

    /// YES bid ladder of row `i`, best first (empty when not recorded).
    pub fn yes_ladder(&self, i: usize) -> impl Iterator<Item = (Price, Count)> + '_ {
        self.ladder_side(i, true)
    }
    /// NO bid ladder of row `i`, best first (empty when not recorded).
    pub fn no_ladder(&self, i: usize) -> impl Iterator<Item = (Price, Count)> + '_ {
        self.ladder_side(i, false)
    }

    fn ladder_side(&self, i: usize, yes: bool) -> impl Iterator<Item = (Price, Count)> + '_ {
        let (prices, sizes): (&[i32], &[i64]) = match &self.ladders {
            Some(l) => {
                let (o, p, s) = if yes {
                    (&l.yes_offsets, &l.yes_price, &l.yes_size)
                } else {
                    (&l.no_offsets, &l.no_price, &l.no_size)
                };
                (&p[o[i]..o[i + 1]], &s[o[i]..o[i + 1]])
            }
            None => (&[], &[]),
        };
        prices.iter().zip(sizes).map(|(&p, &s)| {
            (
                Price::from_micros(i64::from(p)).expect("stored from a Price"),
                Count::from_centis(s),
            )
        })
    }

    /// Trusted segments only: the row ranges a model or a replay may use.
    pub fn trusted_segments(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.segments
            .iter()
            .filter(|s| s.trusted)
            .map(Segment::rows)
    }

    /// Index of the segment holding row `i`.
    pub fn segment_of(&self, i: usize) -> Option<usize> {
        let k = self.segments.partition_point(|s| s.end <= i);
        (k < self.segments.len() && self.segments[k].start <= i).then_some(k)
    }

    fn push_record(&mut self, rec: &SnapshotRecord, keep_ladders: bool) {
        if keep_ladders && (rec.yes_bids.is_some() || rec.no_bids.is_some()) {
            let n = self.len();
            self.ladders
                .get_or_insert_with(|| Ladders::with_empty_rows(n));
        }
        if let Some(l) = &mut self.ladders {
            l.push_row(rec);
        }
        self.ts_ms.push(rec.ts_ms);
        self.yes_bid.push(price_col(rec.yes_bid));
        self.yes_ask.push(price_col(rec.yes_ask));
        self.yes_bid_size.push(count_col(rec.yes_bid_size));
        self.yes_ask_size.push(count_col(rec.yes_ask_size));
        self.last_price.push(price_col(rec.last_price));
        self.volume.push(count_col(rec.volume));
        if let Some(c) = rec.close_ts_ms {
            if rec.ts_ms >= self.close_from_ts {
                self.close_ts_ms = Some(c);
                self.close_from_ts = rec.ts_ms;
            }
        }
    }

    fn row_eq(&self, i: usize, o: &MarketSeries, j: usize) -> bool {
        self.ts_ms[i] == o.ts_ms[j]
            && self.yes_bid[i] == o.yes_bid[j]
            && self.yes_ask[i] == o.yes_ask[j]
            && self.yes_bid_size[i] == o.yes_bid_size[j]
            && self.yes_ask_size[i] == o.yes_ask_size[j]
            && self.last_price[i] == o.last_price[j]
            && self.volume[i] == o.volume[j]
            && match (&self.ladders, &o.ladders) {
                (Some(a), Some(b)) => a.row_eq(i, b, j),
                (None, None) => true,
                (Some(a), None) => {
                    a.yes_offsets[i] == a.yes_offsets[i + 1]
                        && a.no_offsets[i] == a.no_offsets[i + 1]
                }
                (None, Some(b)) => {
                    b.yes_offsets[j] == b.yes_offsets[j + 1]
                        && b.no_offsets[j] == b.no_offsets[j + 1]
                }
            }
    }

    /// Appends all of `o`'s rows (ladders included; `self.ladders` must be set if `o` has any).
    fn extend_from(&mut self, o: &MarketSeries) {
        self.ts_ms.extend_from_slice(&o.ts_ms);
        self.yes_bid.extend_from_slice(&o.yes_bid);
        self.yes_ask.extend_from_slice(&o.yes_ask);
        self.yes_bid_size.extend_from_slice(&o.yes_bid_size);
        self.yes_ask_size.extend_from_slice(&o.yes_ask_size);
        self.last_price.extend_from_slice(&o.last_price);
        self.volume.extend_from_slice(&o.volume);
        if let Some(l) = &mut self.ladders {
            match &o.ladders {
                Some(ol) => {
                    let (yb, nb) = (l.yes_price.len(), l.no_price.len());
                    l.yes_offsets
                        .extend(ol.yes_offsets[1..].iter().map(|&x| x + yb));
                    l.no_offsets
                        .extend(ol.no_offsets[1..].iter().map(|&x| x + nb));
                    l.yes_price.extend_from_slice(&ol.yes_price);
                    l.yes_size.extend_from_slice(&ol.yes_size);
                    l.no_price.extend_from_slice(&ol.no_price);
                    l.no_size.extend_from_slice(&ol.no_size);
                }
                None => {
                    let (yb, nb) = (l.yes_price.len(), l.no_price.len());
                    l.yes_offsets.extend(std::iter::repeat_n(yb, o.len()));
                    l.no_offsets.extend(std::iter::repeat_n(nb, o.len()));
                }
            }
        }
    }

    fn append_row_from(&mut self, o: &MarketSeries, j: usize) {
        self.ts_ms.push(o.ts_ms[j]);
        self.yes_bid.push(o.yes_bid[j]);
        self.yes_ask.push(o.yes_ask[j]);
        self.yes_bid_size.push(o.yes_bid_size[j]);
        self.yes_ask_size.push(o.yes_ask_size[j]);
        self.last_price.push(o.last_price[j]);
        self.volume.push(o.volume[j]);
        if let Some(l) = &mut self.ladders {
            match &o.ladders {
                Some(ol) => l.append_row_from(ol, j),
                None => {
                    l.yes_offsets.push(l.yes_price.len());
                    l.no_offsets.push(l.no_price.len());
                }
            }
        }
    }
}

/// Counts from merging files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Rows dropped because an earlier row (in file order) had the same market and `ts_ms`.
    pub duplicate_rows: u64,
    /// Of those, rows whose content differed from the kept row.
    pub duplicate_conflicts: u64,
    /// The first few conflicts (market, `ts_ms`), for a look.
    pub conflict_examples: Vec<(MarketTicker, i64)>,
    /// Exact duplicate markers removed.
    pub duplicate_markers: u64,
    /// Markets whose rows were not already in time order across files (and were sorted).
    pub reordered_markets: u64,
}

const MAX_CONFLICT_EXAMPLES: usize = 10;

impl MergeStats {
    fn add(&mut self, st: MergeStats) {
        self.duplicate_rows += st.duplicate_rows;
        self.duplicate_conflicts += st.duplicate_conflicts;
        self.duplicate_markers += st.duplicate_markers;
        self.reordered_markets += st.reordered_markets;
        for ex in st.conflict_examples {
            if self.conflict_examples.len() < MAX_CONFLICT_EXAMPLES {
                self.conflict_examples.push(ex);
            }
        }
    }
}

/// Everything loaded from a set of files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotSet {
    pub markets: BTreeMap<MarketTicker, MarketSeries>,
    pub report: ReadReport,
    pub merge: MergeStats,
}

impl SnapshotSet {
    /// Total rows over all markets.
    pub fn rows(&self) -> usize {
        self.markets.values().map(MarketSeries::len).sum()
    }

    /// Builds a set from lines already in memory (a generator's output, a test's fixture),
    /// with the same sorting, de-duplication and segmentation as [`load_columnar`]. The lines
    /// are taken in the given order (the first of two rows with the same timestamp is kept);
    /// the report is empty. Lines are not validated again.
    pub fn from_lines<I: IntoIterator<Item = Line>>(
        lines: I,
        opts: &ColumnarOptions,
    ) -> SnapshotSet {
        let mut parts: BTreeMap<MarketTicker, MarketSeries> = BTreeMap::new();
        for line in lines {
            let m = parts
                .entry(line.market_ticker().clone())
                .or_insert_with(|| MarketSeries::empty(line.market_ticker().clone()));
            match line {
                Line::Snapshot(rec) => m.push_record(&rec, opts.ladders),
                Line::Marker(mk) => m.markers.push(MarkerRow {
                    ts_ms: mk.ts_ms,
                    kind: mk.event,
                    reason: mk.reason,
                }),
            }
        }
        let mut set = SnapshotSet {
            report: ReadReport::new(opts.read.max_problems),
            ..Default::default()
        };
        for (t, part) in parts {
            let (series, st) = merge_market(t.clone(), vec![part], opts);
            set.merge.add(st);
            set.markets.insert(t, series);
        }
        set
    }
}

impl fmt::Display for SnapshotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.report)?;
        let segments: usize = self.markets.values().map(|m| m.segments.len()).sum();
        writeln!(
            f,
            "loaded {} market(s), {} rows, {} segment(s); dropped {} duplicate row(s) ({} conflicting), {} duplicate marker(s)",
            self.markets.len(),
            self.rows(),
            segments,
            self.merge.duplicate_rows,
            self.merge.duplicate_conflicts,
            self.merge.duplicate_markers
        )
    }
}

struct FileColumns {
    markets: Vec<MarketSeries>,
    report: FileReport,
}

fn load_file(path: &PathBuf, opts: &ColumnarOptions) -> FileColumns {
    let mut rd = FileReader::open(path, &opts.read);
    let mut index: HashMap<MarketTicker, usize> = HashMap::new();
    let mut markets: Vec<MarketSeries> = Vec::new();
    let mut slot = |t: &MarketTicker, markets: &mut Vec<MarketSeries>| -> usize {
        if let Some(&i) = index.get(t.as_str()) {
            return i;
        }
        markets.push(MarketSeries::empty(t.clone()));
        index.insert(t.clone(), markets.len() - 1);
        markets.len() - 1
    };
    while let Some((_, line)) = rd.next_line() {
        let i = slot(line.market_ticker(), &mut markets);
        match line {
            Line::Snapshot(rec) => markets[i].push_record(&rec, opts.ladders),
            Line::Marker(m) => markets[i].markers.push(MarkerRow {
                ts_ms: m.ts_ms,
                kind: m.event,
                reason: m.reason,
            }),
        }
    }
    FileColumns {
        markets,
        report: rd.into_report(),
    }
}

/// Merges one market's parts (in file order) into sorted, de-duplicated columns.
fn merge_market(
    ticker: MarketTicker,
    parts: Vec<MarketSeries>,
    opts: &ColumnarOptions,
) -> (MarketSeries, MergeStats) {
    let mut stats = MergeStats::default();
    let any_ladders = parts.iter().any(|p| p.ladders.is_some());
    // (part, row) in file order, then stable-sorted by ts.
    let mut order: Vec<(u32, u32)> = parts
        .iter()
        .enumerate()
        .flat_map(|(k, p)| (0..p.len() as u32).map(move |j| (k as u32, j)))
        .collect();
    let ts = |&(k, j): &(u32, u32)| parts[k as usize].ts_ms[j as usize];
    if !order.windows(2).all(|w| ts(&w[0]) <= ts(&w[1])) {
        stats.reordered_markets = 1;
        order.sort_by_key(ts);
    }
    let mut out = MarketSeries::empty(ticker);
    if any_ladders {
        out.ladders = Some(Ladders::with_empty_rows(0));
    }
    if stats.reordered_markets == 0 && order.windows(2).all(|w| ts(&w[0]) < ts(&w[1])) {
        // The usual case: already in time order, no duplicates. Concatenate in bulk.
        for p in &parts {
            out.extend_from(p);
        }
    } else {
        dedup_into(&mut out, &parts, &order, &mut stats);
    }
    for p in &parts {
        if p.close_ts_ms.is_some() && p.close_from_ts > out.close_from_ts {
            out.close_ts_ms = p.close_ts_ms;
            out.close_from_ts = p.close_from_ts;
        }
    }
    let mut markers: Vec<MarkerRow> = parts.into_iter().flat_map(|p| p.markers).collect();
    markers.sort_by_key(|m| m.ts_ms);
    let before = markers.len();
    markers.dedup();
    stats.duplicate_markers = (before - markers.len()) as u64;
    out.markers = markers;
    out.segments = segments(&out.ts_ms, &out.markers, opts.split_gap_ms);
    (out, stats)
}

/// Appends rows in `order` (sorted by time), keeping the first of each timestamp.
fn dedup_into(
    out: &mut MarketSeries,
    parts: &[MarketSeries],
    order: &[(u32, u32)],
    stats: &mut MergeStats,
) {
    let mut last: Option<(u32, u32)> = None;
    for &(k, j) in order {
        let (kp, jp) = (k as usize, j as usize);
        if let Some((lk, lj)) = last {
            if parts[lk as usize].ts_ms[lj as usize] == parts[kp].ts_ms[jp] {
                stats.duplicate_rows += 1;
                if !parts[lk as usize].row_eq(lj as usize, &parts[kp], jp) {
                    stats.duplicate_conflicts += 1;
                    if stats.conflict_examples.len() < MAX_CONFLICT_EXAMPLES {
                        stats
                            .conflict_examples
                            .push((out.ticker.clone(), parts[kp].ts_ms[jp]));
                    }
                }
                continue;
            }
        }
        out.append_row_from(&parts[kp], jp);
        last = Some((k, j));
    }
}

/// Splits rows into segments at markers and long silences (see the module docs).
fn segments(ts: &[i64], markers: &[MarkerRow], split_gap_ms: Option<i64>) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    let mut trusted = true;
    let mut pending = Some(SegmentCause::Start);
    let mut mi = 0;
    for (i, &t) in ts.iter().enumerate() {
        while mi < markers.len() && markers[mi].ts_ms <= t {
            let kind = &markers[mi].kind;
            match kind {
                MarkerKind::Gap | MarkerKind::Closed => trusted = false,
                MarkerKind::Resync => trusted = true,
                MarkerKind::Other(_) => {}
            }
            pending = Some(SegmentCause::Marker(kind.clone()));
            mi += 1;
        }
        if pending.is_none() && i > 0 {
            if let Some(max_gap) = split_gap_ms {
                let gap_ms = t - ts[i - 1];
                if gap_ms > max_gap {
                    pending = Some(SegmentCause::TimeGap { gap_ms });
                }
            }
        }
        if let Some(cause) = pending.take() {
            if let Some(last) = segs.last_mut() {
                last.end = i;
            }
            segs.push(Segment {
                start: i,
                end: ts.len(),
                trusted,
                cause,
            });
        }
    }
    segs
}

/// Loads files into per-market columns (see the module docs). Never fails on bad data: what
/// was skipped is in [`SnapshotSet::report`].
pub fn load_columnar(paths: &[PathBuf], opts: &ColumnarOptions) -> SnapshotSet {
    let mut files: Vec<PathBuf> = paths.to_vec();
    files.sort();
    files.dedup();
    let run = || -> (Vec<(MarketSeries, MergeStats)>, ReadReport) {
        let loaded: Vec<FileColumns> = files.par_iter().map(|p| load_file(p, opts)).collect();
        let mut report = ReadReport::new(opts.read.max_problems);
        let mut by_market: BTreeMap<MarketTicker, Vec<MarketSeries>> = BTreeMap::new();
        for fc in loaded {
            report.push_file(fc.report);
            for m in fc.markets {
                by_market.entry(m.ticker.clone()).or_default().push(m);
            }
        }
        let merged: Vec<(MarketSeries, MergeStats)> = by_market
            .into_iter()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(t, parts)| merge_market(t, parts, opts))
            .collect();
        (merged, report)
    };
    let (merged, report) = match opts.threads {
        Some(n) => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
            Ok(pool) => pool.install(run),
            Err(e) => {
                tracing::warn!(error = %e, "could not build a thread pool; using the global one");
                run()
            }
        },
        None => run(),
    };
    let mut set = SnapshotSet {
        markets: BTreeMap::new(),
        report,
        merge: MergeStats::default(),
    };
    for (series, st) in merged {
        set.merge.add(st);
        set.markets.insert(series.ticker.clone(), series);
    }
    if set.merge.duplicate_conflicts > 0 {
        tracing::warn!(
            conflicts = set.merge.duplicate_conflicts,
            "duplicate snapshot rows with different content; kept the first in file order"
        );
    }
    set
}

/// [`load_columnar`] over the files matching a glob pattern.
pub fn load_columnar_glob(pattern: &str, opts: &ColumnarOptions) -> Result<SnapshotSet, ReadError> {
    Ok(load_columnar(&resolve_glob(pattern)?, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: i64, ladder: bool) -> SnapshotRecord {
        let p = |c: i64| Price::from_cents(c).unwrap();
        let yes = [
            (p(40 + k % 5), Count::from_contracts(k + 1)),
            (p(30), Count::from_contracts(2)),
        ];
        let no = [(p(50 - k % 3), Count::from_contracts(7))];
        SnapshotRecord::from_ladders(k * 100, "M".into(), &yes, &no, if ladder { 2 } else { 0 })
            .unwrap()
            .with_volume(Some(Count::from_contracts(k)))
    }

    fn cols(m: &MarketSeries) -> impl PartialEq + std::fmt::Debug + '_ {
        (
            (&m.ts_ms, &m.yes_bid, &m.yes_ask),
            (&m.yes_bid_size, &m.yes_ask_size, &m.last_price, &m.volume),
            &m.ladders,
        )
    }

    #[test]
    fn bulk_and_row_by_row_merges_agree() {
        let recs: Vec<SnapshotRecord> = (0..30).map(|k| rec(k, (10..20).contains(&k))).collect();
        let mk = |r: &[SnapshotRecord]| {
            let mut m = MarketSeries::empty("M".into());
            for x in r {
                m.push_record(x, true);
            }
            m
        };
        let whole = mk(&recs);
        assert!(whole.ladders.is_some());
        let parts = vec![mk(&recs[..10]), mk(&recs[10..20]), mk(&recs[20..])];
        assert!(parts[0].ladders.is_none() && parts[1].ladders.is_some());
        let o = ColumnarOptions::default();
        let (fast, st) = merge_market("M".into(), parts.clone(), &o);
        assert_eq!(st.reordered_markets, 0);
        assert_eq!(cols(&fast), cols(&whole));
        // Out of order across parts: the row-by-row path, same result.
        let shuffled = vec![parts[2].clone(), parts[0].clone(), parts[1].clone()];
        let (slow, st) = merge_market("M".into(), shuffled, &o);
        assert_eq!(st.reordered_markets, 1);
        assert_eq!(cols(&slow), cols(&whole));
        assert_eq!(whole.len(), recs.len());
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                fast.yes_ladder(i).collect::<Vec<_>>(),
                r.yes_bids.clone().unwrap_or_default()
            );
            assert_eq!(
                fast.no_ladder(i).collect::<Vec<_>>(),
                r.no_bids.clone().unwrap_or_default()
            );
        }
    }
}
