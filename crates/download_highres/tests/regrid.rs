//! `download_highres --from-capture`: the offline re-grid of recorded captures.
//!
//! Every row is checked against a deliberately simple reference rebuild of the books written
//! here (serde_json values, integer maps; none of the recorder's or the client's code): the row
//! at `T` must equal the reference book after every frame received at or before `T`, and the
//! reference book must be trustworthy then. On the project's own fixtures (frames written by
//! the test, seeded) and on every real session in `../shared/data` (skipped with a message
//! when absent; `REQUIRE_SHARED_DATA=1` makes its absence a failure).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use market_data::book::NoPriceConvention;
use market_data::capture::CaptureWriter;
use market_data::recorder::{regrid, RegridConfig};
use pipeline::snapshot::{resolve_glob, Line, MarkerKind, ReadOptions, SnapshotReader};
use rand::{Rng, SeedableRng};

const T0: i64 = 1_790_000_000_000; // on the 100 ms grid
const MS: i64 = 1_000_000;

// ---------------------------------------------------------------- the reference rebuild --

/// `"0.4200"` → 420000 (micro-dollars); `"-12.5"` → -1250 with `dp = 2` (centi-contracts).
fn fixed(s: &str, dp: usize) -> i64 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_string();
    assert!(
        frac.len() <= dp || frac[dp..].bytes().all(|b| b == b'0'),
        "{s}"
    );
    frac.truncate(dp);
    while frac.len() < dp {
        frac.push('0');
    }
    let v = int.parse::<i64>().unwrap() * 10i64.pow(dp as u32) + frac.parse::<i64>().unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

#[derive(Default, Clone)]
struct RefBook {
    valid: bool,
    sid: u64,
    /// price (micros, NO side in NO-leg prices) → size (centis)
    yes: BTreeMap<i64, i64>,
    no: BTreeMap<i64, i64>,
}

#[derive(Default)]
struct Reference {
    yes_scale: bool,
    last_seq: HashMap<u64, u64>,
    books: HashMap<String, RefBook>,
    /// Largest sid of a book frame or subscription since the last new connection.
    max_sid: Option<u64>,
}

impl Reference {
    fn levels(&self, v: &serde_json::Value, no_side: bool) -> BTreeMap<i64, i64> {
        let mut m = BTreeMap::new();
        for l in v.as_array().into_iter().flatten() {
            let mut p = fixed(l[0].as_str().unwrap(), 6);
            if no_side && self.yes_scale {
                p = 1_000_000 - p;
            }
            let c = fixed(l[1].as_str().unwrap(), 2);
            if c != 0 {
                m.insert(p, c);
            }
        }
        m
    }

    /// A new connection (each real session file is one): sequence state and books are gone.
    fn new_connection(&mut self) {
        self.last_seq.clear();
        self.max_sid = None;
        for b in self.books.values_mut() {
            b.valid = false;
        }
    }

    fn apply(&mut self, frame: &serde_json::Value) {
        let kind = frame["type"].as_str().unwrap_or("");
        if kind == "subscribed" {
            // A sid number that already carried books: the capture goes on over a new
            // connection (sids restart per connection).
            let sid = frame["msg"]["sid"].as_u64().unwrap();
            if self.max_sid.is_some_and(|m| sid <= m) {
                self.new_connection();
            }
            self.max_sid = Some(self.max_sid.map_or(sid, |m| m.max(sid)));
            return;
        }
        if kind != "orderbook_snapshot" && kind != "orderbook_delta" {
            return;
        }
        let sid = frame["sid"].as_u64().unwrap();
        let seq = frame["seq"].as_u64().unwrap();
        self.max_sid = Some(self.max_sid.map_or(sid, |m| m.max(sid)));
        match self.last_seq.get(&sid).copied() {
            Some(last) if seq <= last => return, // duplicate
            Some(last) if seq > last + 1 => {
                for b in self.books.values_mut() {
                    if b.sid == sid {
                        b.valid = false;
                    }
                }
            }
            _ => {}
        }
        self.last_seq.insert(sid, seq);
        let msg = &frame["msg"];
        let t = msg["market_ticker"].as_str().unwrap().to_string();
        if kind == "orderbook_snapshot" {
            let b = RefBook {
                valid: true,
                sid,
                yes: self.levels(&msg["yes_dollars_fp"], false),
                no: self.levels(&msg["no_dollars_fp"], true),
            };
            self.books.insert(t, b);
            return;
        }
        let yes_scale = self.yes_scale;
        let Some(b) = self.books.get_mut(&t) else {
            return;
        };
        if !b.valid || b.sid != sid {
            return;
        }
        let mut p = fixed(msg["price_dollars"].as_str().unwrap(), 6);
        let no = msg["side"] == "no";
        if no && yes_scale {
            p = 1_000_000 - p;
        }
        let side = if no { &mut b.no } else { &mut b.yes };
        let now = side.get(&p).copied().unwrap_or(0) + fixed(msg["delta_fp"].as_str().unwrap(), 2);
        if now < 0 {
            b.valid = false;
        } else if now == 0 {
            side.remove(&p);
        } else {
            side.insert(p, now);
        }
    }

    /// Forget everything a lost connection knew (the check only needs books that a row may
    /// show to be right; a book the recorder distrusts for longer is no row at all).
    fn ladder(m: &BTreeMap<i64, i64>, depth: usize) -> Vec<(i64, i64)> {
        m.iter().rev().take(depth).map(|(p, c)| (*p, *c)).collect()
    }
}

/// Every capture line's `(recv_ns, frame)` up to any damage, files in the given order.
fn frames_of(path: &Path) -> Vec<(i64, serde_json::Value)> {
    let f = std::fs::File::open(path).unwrap();
    let mut magic = [0u8; 2];
    let gz = std::fs::File::open(path)
        .unwrap()
        .read_exact(&mut magic)
        .is_ok()
        && magic == [0x1f, 0x8b];
    let rd: Box<dyn BufRead> = if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    };
    let mut out = Vec::new();
    for line in rd.lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let (Some(ns), Some(fr)) = (v["recv_ns"].as_i64(), v.get("frame")) {
            out.push((ns, fr.clone()));
        }
    }
    out
}

fn read_out(out: &Path) -> Vec<Line> {
    let files = resolve_glob(&format!("{}/*.snap_*ms.jsonl.gz", out.display())).unwrap();
    let mut rd = SnapshotReader::from_paths(files, ReadOptions::default());
    let lines: Vec<Line> = rd.by_ref().collect();
    assert!(rd.into_report().is_clean());
    lines
}

/// Checks every row against the reference; returns (rows checked, rows equal). `files`: the
/// frames of each connection (a file), in time order, the files not overlapping.
fn check_rows(
    lines: &[Line],
    files: &[Vec<(i64, serde_json::Value)>],
    depth: usize,
    yes_scale: bool,
) -> (usize, usize) {
    let mut files: Vec<&Vec<(i64, serde_json::Value)>> =
        files.iter().filter(|f| !f.is_empty()).collect();
    files.sort_by_key(|f| f[0].0);
    // (recv_ns, None = a new connection starts)
    let mut frames: Vec<(i64, Option<&serde_json::Value>)> = Vec::new();
    for f in files {
        frames.push((f[0].0, None));
        frames.extend(f.iter().map(|(ns, v)| (*ns, Some(v))));
    }
    let mut rows: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Snapshot(r) => Some(r),
            _ => None,
        })
        .collect();
    rows.sort_by_key(|r| r.ts_ms);
    let mut reference = Reference {
        yes_scale,
        ..Reference::default()
    };
    let mut next = 0;
    let (mut checked, mut equal) = (0, 0);
    for r in rows {
        while next < frames.len() && frames[next].0 <= r.ts_ms * MS {
            match frames[next].1 {
                Some(f) => reference.apply(f),
                None => reference.new_connection(),
            }
            next += 1;
        }
        checked += 1;
        let Some(b) = reference.books.get(r.market_ticker.as_str()) else {
            eprintln!("{} at {}: no reference book", r.market_ticker, r.ts_ms);
            continue;
        };
        let conv =
            |v: &Option<Vec<(pipeline::money::Price, pipeline::money::Count)>>| -> Vec<(i64, i64)> {
                v.iter()
                    .flatten()
                    .map(|(p, c)| (p.micros(), c.centis()))
                    .collect()
            };
        let yes = Reference::ladder(&b.yes, depth);
        let no = Reference::ladder(&b.no, depth);
        let best = |m: &BTreeMap<i64, i64>| m.iter().next_back().map(|(p, c)| (*p, *c));
        let ok = b.valid
            && conv(&r.yes_bids) == yes
            && conv(&r.no_bids) == no
            && r.yes_bid.map(|p| p.micros()) == best(&b.yes).map(|l| l.0)
            && r.yes_bid_size.map(|c| c.centis()) == best(&b.yes).map(|l| l.1)
            && r.yes_ask.map(|p| p.micros()) == best(&b.no).map(|l| 1_000_000 - l.0)
            && r.yes_ask_size.map(|c| c.centis()) == best(&b.no).map(|l| l.1);
        if ok {
            equal += 1;
        } else if checked - equal <= 3 {
            eprintln!(
                "{} at {}: row differs from the reference (valid {}):\n row yes {:?} no {:?}\n ref yes {yes:?} no {no:?}",
                r.market_ticker,
                r.ts_ms,
                b.valid,
                conv(&r.yes_bids),
                conv(&r.no_bids)
            );
        }
    }
    (checked, equal)
}

// --------------------------------------------------------------------------- fixtures --

/// One side of the generator's book: price (tenths of a cent) → size (centis).
type Side = BTreeMap<i64, i64>;

struct Gen {
    rng: rand_chacha::ChaCha8Rng,
    lines: Vec<(i64, String)>,
    /// The generator's own book per market, to keep deltas valid: (yes, no) cents → centis.
    books: HashMap<String, (Side, Side)>,
    seq: HashMap<u64, u64>,
}

fn dollars(cents_tenths: i64) -> String {
    // tenths of a cent → "0.4200"
    format!("0.{:04}", cents_tenths * 10)
}

fn size(c: i64) -> String {
    format!(
        "{}{}.{:02}",
        if c < 0 { "-" } else { "" },
        c.abs() / 100,
        c.abs() % 100
    )
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            lines: Vec::new(),
            books: HashMap::new(),
            seq: HashMap::new(),
        }
    }
    fn push(&mut self, ns: i64, frame: serde_json::Value) {
        self.lines.push((ns, frame.to_string()));
    }
    fn next_seq(&mut self, sid: u64, skip: u64) -> u64 {
        let s = self.seq.entry(sid).or_insert(0);
        *s += 1 + skip;
        *s
    }
    fn created(&mut self, ns: i64, t: &str, open: i64, close: i64) {
        self.push(
            ns,
            serde_json::json!({"type":"market_lifecycle_v2","sid":3,"msg":{"market_ticker":t,"event_type":"created","open_ts":open/1000,"close_ts":close/1000}}),
        );
    }
    fn subscribed(&mut self, ns: i64, sid: u64) {
        self.push(
            ns,
            serde_json::json!({"id":sid,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":sid}}),
        );
    }
    fn snapshot(&mut self, ns: i64, sid: u64, t: &str) {
        let mut yes = BTreeMap::new();
        let mut no = BTreeMap::new();
        // prices in tenths of a cent; YES below 48¢, NO below 48¢ (never crossed)
        for _ in 0..8 {
            yes.insert(self.rng.gen_range(1..480), self.rng.gen_range(1..50_000));
            no.insert(self.rng.gen_range(1..480), self.rng.gen_range(1..50_000));
        }
        let lv = |m: &BTreeMap<i64, i64>| -> Vec<[String; 2]> {
            m.iter().map(|(p, c)| [dollars(*p), size(*c)]).collect()
        };
        let seq = self.next_seq(sid, 0);
        let f = serde_json::json!({"type":"orderbook_snapshot","sid":sid,"seq":seq,"msg":{"market_ticker":t,"yes_dollars_fp":lv(&yes),"no_dollars_fp":lv(&no)}});
        self.books.insert(t.to_string(), (yes, no));
        self.push(ns, f);
    }
    /// A valid delta for `t` (a level changes, appears or goes).
    fn delta(&mut self, ns: i64, sid: u64, t: &str, skip: u64) {
        let no_side = self.rng.gen_bool(0.5);
        let (p, d) = {
            let b = self.books.entry(t.to_string()).or_default();
            let side = if no_side { &mut b.1 } else { &mut b.0 };
            if !side.is_empty() && self.rng.gen_bool(0.6) {
                let i = self.rng.gen_range(0..side.len());
                let (&p, &c) = side.iter().nth(i).unwrap();
                let d = if self.rng.gen_bool(0.5) {
                    -self.rng.gen_range(1..=c)
                } else {
                    self.rng.gen_range(1..5_000)
                };
                (p, d)
            } else {
                (self.rng.gen_range(1..480), self.rng.gen_range(1..5_000))
            }
        };
        let b = self.books.get_mut(t).unwrap();
        let side = if no_side { &mut b.1 } else { &mut b.0 };
        let now = side.get(&p).copied().unwrap_or(0) + d;
        if now == 0 {
            side.remove(&p);
        } else {
            side.insert(p, now);
        }
        let seq = self.next_seq(sid, skip);
        let f = serde_json::json!({"type":"orderbook_delta","sid":sid,"seq":seq,"msg":{"market_ticker":t,"price_dollars":dollars(p),"delta_fp":size(d),"side":if no_side {"no"} else {"yes"},"ts_ms":ns / MS}});
        self.push(ns, f);
    }
    fn ticker(&mut self, ns: i64, t: &str) {
        let p = self.rng.gen_range(1..99);
        self.push(
            ns,
            serde_json::json!({"type":"ticker","sid":2,"msg":{"market_ticker":t,"price_dollars":dollars(p * 10),"volume_fp":"100.00"}}),
        );
    }
    /// Writes the lines (sorted by time) as a multi-member gzip capture.
    fn write(&mut self, path: &Path) {
        self.lines.sort_by_key(|l| l.0);
        let mut w = CaptureWriter::create(path, Duration::from_secs(3600)).unwrap();
        for (i, (ns, f)) in self.lines.iter().enumerate() {
            w.write_frame(*ns, f).unwrap();
            if i % 500 == 499 {
                w.flush().unwrap();
            }
        }
        w.finish().unwrap();
    }
}

const A: &str = "KXFIX-26DEC01-A";
const B: &str = "KXFIX-26DEC01-B";

/// Two markets over ~89 s: A open T0..T0+60 s, B T0+30 s..T0+90 s. A sequence gap at 20 s
/// (repaired by a snapshot at 21.05 s), B's stream starting mid-way (deltas before its
/// snapshot), a silence of 18 s at 40..58 s (then fresh snapshots on a new sid), a
/// reconnection at 70 s (a new connection reusing sid 1), deltas on grid instants exactly,
/// tickers.
fn fixture(seed: u64) -> Gen {
    let mut g = Gen::new(seed);
    let s = |ms: i64| (T0 + ms) * MS;
    g.created(s(-900), A, T0, T0 + 60_000);
    g.created(s(-900) + 1, B, T0 + 30_000, T0 + 90_000);
    g.subscribed(s(-800), 1);
    g.snapshot(s(-300), 1, A);
    let mut t = s(-290);
    let (mut gapped, mut resnapped) = (false, false);
    while t < s(40_000) {
        let on_grid = g.rng.gen_bool(0.05);
        let ns = if on_grid {
            (t / (100 * MS) + 1) * 100 * MS
        } else {
            t
        };
        let skip = u64::from(ns > s(20_000) && !gapped);
        gapped |= skip == 1;
        g.delta(ns, 1, A, skip);
        t = ns + g.rng.gen_range(1..15_000_000);
        if t > s(21_050) && !resnapped {
            resnapped = true;
            g.snapshot(s(21_050) + 777, 1, A);
        }
        if g.rng.gen_bool(0.01) {
            g.ticker(t + 1, A);
        }
    }
    // B: subscribed at 29 s, deltas before its snapshot (a mid-stream start), snapshot at 31 s.
    g.subscribed(s(29_000), 5);
    let mut t = s(29_100);
    let mut b_snapped = false;
    while t < s(40_000) {
        if t >= s(31_000) && !b_snapped {
            b_snapped = true;
            g.snapshot(s(31_000), 5, B);
        }
        g.delta(t, 5, B, 0);
        t += g.rng.gen_range(1..25_000_000);
    }
    // The silence 40..58 s; then a new subscription with fresh snapshots.
    g.subscribed(s(58_000), 7);
    g.snapshot(s(58_000) + 5, 7, A);
    g.snapshot(s(58_000) + 9, 7, B);
    let mut t = s(58_010);
    while t < s(70_000) {
        let m = if t < s(60_000) && g.rng.gen_bool(0.5) {
            A
        } else {
            B
        };
        g.delta(t, 7, m, 0);
        t += g.rng.gen_range(1..20_000_000);
    }
    // A reconnection at 70 s: the new connection's subscription reuses sid 1 (numbering and
    // sequences restart per connection); B's fresh snapshot comes 50 ms later.
    g.seq.clear();
    g.subscribed(s(70_003), 1);
    g.snapshot(s(70_053), 1, B);
    let mut t = s(70_060);
    while t < s(88_000) {
        g.delta(t, 1, B, 0);
        t += g.rng.gen_range(1..20_000_000);
    }
    g
}

fn cfg(captures: Vec<PathBuf>, out: &Path, depth: usize) -> RegridConfig {
    let mut c = RegridConfig::new(captures, out.to_path_buf());
    c.depth = depth;
    c
}

fn reasons(lines: &[Line], t: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Marker(m) if m.market_ticker.as_str() == t && m.event == MarkerKind::Gap => {
                Some(m.reason.clone().unwrap_or_default())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn every_row_of_a_fixture_equals_the_reference_book_at_its_instant() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("KXFIX_fixture.capture.jsonl.gz");
    fixture(1).write(&cap);
    let out = dir.path().join("out");
    let s = regrid(&cfg(vec![cap.clone()], &out, 5)).unwrap();
    let lines = read_out(&out);
    let (checked, equal) = check_rows(&lines, &[frames_of(&cap)], 5, false);
    eprintln!("fixture: {equal}/{checked} rows equal the reference; {s}");
    assert_eq!(checked as u64, s.rows);
    assert!(checked > 500, "{checked}");
    assert_eq!(equal, checked, "every row equals the reference");
    // The marks, as the live recorder writes them.
    let ra = reasons(&lines, A);
    assert!(ra.iter().any(|r| r.contains("sequence gap")), "{ra:?}");
    assert!(ra.iter().any(|r| r.contains("capture silent")), "{ra:?}");
    let rb = reasons(&lines, B);
    assert!(
        rb.iter()
            .any(|r| r.contains("before the order-book snapshot")
                || r.contains("no order-book snapshot")),
        "{rb:?}"
    );
    assert!(rb.iter().any(|r| r == "end of capture"), "{rb:?}");
    assert!(
        rb.iter().any(
            |r| r.contains("websocket disconnected (the capture continues on a new connection")
        ),
        "{rb:?}"
    );
    assert!(
        rb.iter()
            .any(|r| r.contains("delta before the order-book snapshot")),
        "{rb:?}"
    );
    let closed: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Marker(m) if m.event == MarkerKind::Closed => {
                Some((m.market_ticker.to_string(), m.ts_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![(A.to_string(), T0 + 60_000)]);
    // Rows only inside the markets' windows; B's last row is at the last instant ≤ its last frame.
    for l in &lines {
        if let Line::Snapshot(r) = l {
            let (o, c) = if r.market_ticker.as_str() == A {
                (T0, T0 + 60_000)
            } else {
                (T0 + 30_000, T0 + 90_000)
            };
            assert!(o <= r.ts_ms && r.ts_ms < c, "{r:?}");
        }
    }
    // The sidecar holds the lifecycle frames.
    let side = std::fs::read_to_string(out.join("KXFIX_markets.jsonl")).unwrap();
    assert_eq!(side.lines().count(), 2, "{side}");
}

#[test]
fn the_same_inputs_give_byte_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("KXFIX_fixture.capture.jsonl.gz");
    fixture(2).write(&cap);
    let files = |out: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    let mut outs = Vec::new();
    for run in 0..2 {
        let out = dir.path().join(format!("out{run}"));
        regrid(&cfg(vec![cap.clone()], &out, 3)).unwrap();
        outs.push(files(&out));
    }
    assert!(outs[0].len() >= 2, "{:?}", outs[0].keys());
    assert_eq!(outs[0], outs[1]);
    // A second run into the same folder would append: refused, nothing changed.
    let out = dir.path().join("out0");
    let e = regrid(&cfg(vec![cap.clone()], &out, 3)).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert_eq!(files(&out), outs[0]);
}

#[test]
fn a_truncated_or_corrupt_capture_is_read_up_to_the_damage_and_marked_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("KXFIX_fixture.capture.jsonl.gz");
    fixture(3).write(&cap);
    // Cut the file in its middle (inside a gzip member).
    let bytes = std::fs::read(&cap).unwrap();
    let cut = dir.path().join("KXFIX_cut.capture.jsonl.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("out");
    let s = regrid(&cfg(vec![cut.clone()], &out, 5)).unwrap();
    assert_eq!(s.damage.len(), 1, "{s}");
    assert!(
        s.damage[0].starts_with(&format!("{}:", cut.display())),
        "{:?}",
        s.damage
    );
    let lines = read_out(&out);
    let all: Vec<String> = reasons(&lines, A)
        .into_iter()
        .chain(reasons(&lines, B))
        .collect();
    assert!(
        all.iter().any(|r| r.contains("capture damaged at")),
        "{all:?}"
    );
    let (checked, equal) = check_rows(&lines, &[frames_of(&cut)], 5, false);
    assert!(checked > 100);
    assert_eq!(equal, checked);

    // A line in the middle that is not a capture record (plain JSONL this time).
    let plain = dir.path().join("KXFIX_bad.capture.jsonl");
    let mut text = String::new();
    let mut g = fixture(3);
    g.lines.sort_by_key(|l| l.0);
    let bad_at = g.lines.len() / 3;
    for (i, (ns, f)) in g.lines.iter().enumerate() {
        if i == bad_at {
            text.push_str("{\"recv_ns\": \"garbage\n");
        }
        text.push_str(&format!("{{\"recv_ns\":{ns},\"frame\":{f}}}\n"));
    }
    std::fs::write(&plain, text).unwrap();
    let out = dir.path().join("out2");
    let s = regrid(&cfg(vec![plain.clone()], &out, 5)).unwrap();
    assert_eq!(s.damage.len(), 1, "{s}");
    assert!(
        s.damage[0].starts_with(&format!("{}:{}:", plain.display(), bad_at + 1)),
        "{:?}",
        s.damage
    );
    let lines = read_out(&out);
    let ra = reasons(&lines, A);
    assert!(
        ra.iter().any(|r| r.starts_with("capture damaged at")),
        "{ra:?}"
    );
    let (checked, equal) = check_rows(&lines, &[frames_of(&plain)], 5, false);
    assert_eq!(equal, checked);
}

#[test]
fn overlapping_captures_of_one_market_are_an_error_naming_both_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("KXFIX_a.capture.jsonl.gz");
    let b = dir.path().join("KXFIX_b.capture.jsonl.gz");
    fixture(4).write(&a);
    fixture(5).write(&b);
    let out = dir.path().join("out");
    let e = regrid(&cfg(vec![a.clone(), b.clone()], &out, 0)).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.exit_code(), 2);
    assert!(
        msg.contains("KXFIX_a.capture") && msg.contains("KXFIX_b.capture"),
        "{msg}"
    );
    assert!(
        !out.exists()
            || resolve_glob(&format!("{}/*", out.display()))
                .unwrap()
                .is_empty()
    );

    // Consecutive files (a capture rotated in two) are one stream: same rows as the whole.
    let mut g = fixture(6);
    g.lines.sort_by_key(|l| l.0);
    let half = g.lines.len() / 2;
    let mut g2 = Gen::new(0);
    g2.lines = g.lines.split_off(half);
    let (p1, p2) = (
        dir.path().join("KXFIX_1.capture.jsonl.gz"),
        dir.path().join("KXFIX_2.capture.jsonl.gz"),
    );
    g.write(&p1);
    g2.write(&p2);
    let whole = dir.path().join("KXFIX_w.capture.jsonl.gz");
    let mut gw = fixture(6);
    gw.write(&whole);
    let (o1, o2) = (dir.path().join("o1"), dir.path().join("o2"));
    let s1 = regrid(&cfg(vec![p2, p1], &o1, 2)).unwrap();
    let s2 = regrid(&cfg(vec![whole], &o2, 2)).unwrap();
    assert_eq!(read_out(&o1), read_out(&o2));
    assert_eq!((s1.rows, s1.gaps), (s2.rows, s2.gaps));
}

// ------------------------------------------------------------------------- real data --

fn shared_data() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/kalshi_kxbtc15m_2026-05");
    if d.is_dir() {
        return Some(d);
    }
    assert!(
        std::env::var("REQUIRE_SHARED_DATA").as_deref() != Ok("1"),
        "REQUIRE_SHARED_DATA=1 but {} is absent",
        d.display()
    );
    None
}

#[test]
fn every_row_of_the_real_sessions_equals_the_reference_book_at_its_instant() {
    let Some(data) = shared_data() else {
        eprintln!("SKIP every_row_of_the_real_sessions_equals_the_reference_book_at_its_instant: ../shared/data not found");
        return;
    };
    let captures =
        resolve_glob(&format!("{}/captures/*.capture.jsonl.gz", data.display())).unwrap();
    assert_eq!(captures.len(), 25);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut c = cfg(captures.clone(), &out, 10);
    c.markets = Some(data.join("markets.jsonl"));
    c.convention = NoPriceConvention::NoLeg;
    let s = regrid(&c).unwrap();
    eprintln!("{s}");
    assert!(s.damage.is_empty() && s.unscheduled.is_empty(), "{s}");
    let lines = read_out(&out);
    let frames: Vec<_> = captures.iter().map(|p| frames_of(p)).collect();
    assert_eq!(frames.iter().map(Vec::len).sum::<usize>() as u64, s.frames);
    let (checked, equal) = check_rows(&lines, &frames, 10, false);
    eprintln!(
        "real sessions: {equal}/{checked} rows equal the reference ({:.3} %)",
        100.0 * equal as f64 / checked.max(1) as f64
    );
    assert!(checked > 100_000, "{checked}");
    assert_eq!(equal, checked);
    // The sidecar carries the results, so the label tools can label the sessions.
    let side = std::fs::read_to_string(out.join("KXBTC15M_markets.jsonl")).unwrap();
    assert_eq!(side.lines().count(), 36);
    assert_eq!(
        side.matches("\"result\":").count(),
        33,
        "36 markets, 3 without a recorded result"
    );
    assert!(
        !lines.iter().any(|l| matches!(l, Line::Marker(m)
            if m.reason.as_deref().is_some_and(|r| r.contains("new connection")))),
        "each real session file is one connection: no reconnection may be inferred"
    );

    // `build_labels` (its library, on the re-grid's folder as data_dir) labels them: every
    // market with a row is labelled with the markets file's result, or listed unresolved.
    let outcome = pipeline::labels::build(pipeline::labels::BuildOptions {
        output: dir.path().join("labels.json"),
        unresolved_output: dir.path().join("unresolved.json"),
        labels_path: None,
        labels_in: Vec::new(),
        data_dir: Some(out.clone()),
        archives: Vec::new(),
        generated_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
    })
    .unwrap();
    assert!(outcome.is_clean(), "{outcome}");
    let want: HashMap<String, String> = std::fs::read_to_string(data.join("markets.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| {
            let r = v["result"].as_str()?.to_string();
            (!r.is_empty()).then(|| (v["ticker"].as_str().unwrap().to_string(), r))
        })
        .collect();
    let unresolved: Vec<String> = outcome
        .unresolved
        .unresolved
        .iter()
        .map(|u| u.ticker.to_string())
        .collect();
    let with_rows: std::collections::BTreeSet<String> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Snapshot(r) => Some(r.market_ticker.to_string()),
            _ => None,
        })
        .collect();
    for t in &with_rows {
        match outcome
            .labels
            .labels
            .get(&pipeline::ids::MarketTicker::new(t.as_str()))
        {
            Some(l) => assert_eq!(
                serde_json::to_value(l.result).unwrap().as_str(),
                want.get(t).map(String::as_str),
                "{t}"
            ),
            None => assert!(
                unresolved.contains(t),
                "{t}: neither labelled nor unresolved"
            ),
        }
    }
    eprintln!(
        "build_labels on the re-grid: {} labels, {} unresolved; {} markets with rows",
        outcome.labels.labels.len(),
        unresolved.len(),
        with_rows.len()
    );
    assert_eq!(outcome.labels.labels.len(), 33);
}

// ------------------------------------------------------------------------------ flags --

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_download_highres"));
    c.env("RUST_LOG", "warn");
    c
}

#[test]
fn the_binary_regrids_and_bad_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("KXFIX_fixture.capture.jsonl.gz");
    fixture(7).write(&cap);
    let cfgf = dir.path().join("runtime.json");
    std::fs::write(&cfgf, r#"{"schema":"runtime/v1","use_yes_price":false}"#).unwrap();
    let out = dir.path().join("out");
    let o = bin()
        .args(["--config"])
        .arg(&cfgf)
        .arg("--from-capture")
        .arg(format!("{}/KXFIX_*.capture.jsonl.gz", dir.path().display()))
        .arg("--out-dir")
        .arg(&out)
        .args(["--snapshot-ms", "500", "--depth", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("frames/s") && stdout.contains("snap_500ms"),
        "{stdout}"
    );

    let missing = dir.path().join("nothing-*.capture.jsonl.gz");
    for (args, want) in [
        (
            vec![
                "--from-capture".into(),
                missing.display().to_string(),
                "--out-dir".into(),
                dir.path().join("o2").display().to_string(),
            ],
            "no capture file matched",
        ),
        (
            vec![
                "--from-capture".into(),
                cap.display().to_string(),
                "--out-dir".into(),
                "x".into(),
                "--duration".into(),
                "5".into(),
            ],
            "--duration",
        ),
        (
            vec![
                "--from-capture".into(),
                cap.display().to_string(),
                "--out-dir".into(),
                "x".into(),
                "--capture".into(),
            ],
            "--capture",
        ),
        (
            vec!["--from-capture".into(), cap.display().to_string()],
            "--out-dir",
        ),
        (vec!["--markets".into(), "m.jsonl".into()], "--from-capture"),
        (
            vec![
                "--from-capture".into(),
                cap.display().to_string(),
                "--out-dir".into(),
                dir.path().join("o3").display().to_string(),
                "--snapshot-ms".into(),
                "0".into(),
            ],
            "snapshot_ms",
        ),
    ] {
        let o = bin()
            .args(["--config"])
            .arg(&cfgf)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
