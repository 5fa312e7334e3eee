//! Snapshot IO end to end: writer → files → streaming reader / columnar loader, damaged files,
//! restarts and crashes. Every file is built in a temp dir; nothing touches the network.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use pipeline::snapshot::{
    load_columnar, parse_file_name, ColumnarOptions, Line, Marker, MarkerKind, ProblemKind,
    ReadOptions, ReadReport, SegmentCause, SnapshotReader, SnapshotRecord, SnapshotSet,
    SnapshotWriter, WriterOptions,
};
use pipeline::{Count, MarketTicker, Price, SeriesTicker};

/// 2026-05-11T14:00:00Z in ms.
const T14: i64 = 1_778_508_000_000;
const HOUR: i64 = 3_600_000;

fn price(cents: f64) -> Price {
    Price::from_cents_f64(cents).unwrap()
}

/// A deterministic, valid book line for market `ticker` at `ts`, varied by `i` (deci-cent
/// ticks, fractional sizes, ladders, one-sided books now and then).
fn book(ts: i64, ticker: &str, i: u64) -> Line {
    let yes = 30.0 + (i % 37) as f64 + if i % 5 == 0 { 0.1 } else { 0.0 };
    let spread = 1.0 + (i % 3) as f64;
    let no = 100.0 - yes - spread;
    let size = |k: u64| Count::from_centis(100 + ((i * 7919 + k * 104_729) % 100_000) as i64);
    let yes_levels: Vec<_> = (0..3).map(|k| (price(yes - k as f64), size(k))).collect();
    let no_levels: Vec<_> = (0..2)
        .map(|k| (price((no - k as f64 * 2.0).max(0.0)), size(k + 10)))
        .collect();
    let (y, n): (&[_], &[_]) = match i % 11 {
        3 => (&yes_levels, &[]),
        7 => (&[], &no_levels),
        _ => (&yes_levels, &no_levels),
    };
    let depth = if i % 2 == 0 { 3 } else { 0 };
    SnapshotRecord::from_ladders(ts, ticker.into(), y, n, depth)
        .unwrap()
        .with_last_price(Some(price(yes)))
        .with_volume(Some(Count::from_contracts(i as i64)))
        .with_close_ts_ms(Some(T14 + HOUR))
        .with_seq(Some(i))
        .into()
}

fn read_all(paths: &[PathBuf]) -> (Vec<Line>, ReadReport) {
    let mut rd = SnapshotReader::from_paths(paths.to_vec(), ReadOptions::default());
    let lines: Vec<Line> = rd.by_ref().collect();
    (lines, rd.into_report())
}

fn read_glob(dir: &Path) -> (Vec<Line>, ReadReport) {
    let pattern = format!("{}/*.snap_*ms.jsonl*", dir.display());
    let mut rd = SnapshotReader::from_glob(&pattern, ReadOptions::default()).unwrap();
    let lines: Vec<Line> = rd.by_ref().collect();
    (lines, rd.into_report())
}

fn gz_member(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A gzip member holding `data` in one *stored* deflate block: the compressed bytes are the
/// data itself, so a cut at a given byte leaves exactly a known prefix decodable.
fn stored_member(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut m = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    m.push(0x01); // BFINAL = 1, BTYPE = 00 (stored)
    m.extend_from_slice(&len.to_le_bytes());
    m.extend_from_slice(&(!len).to_le_bytes());
    m.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(data);
    m.extend_from_slice(&crc.sum().to_le_bytes());
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m
}

const STORED_HEADER: usize = 10 + 5;

fn jsonl(lines: &[Line]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        l.write_json(&mut out);
    }
    out
}

fn opts() -> WriterOptions {
    WriterOptions::default()
}

// -------------------------------------------------------------------------------------------

#[test]
fn round_trip_writer_to_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, opts()).unwrap();
    let t0 = Instant::now();
    let mut written = Vec::new();
    // 3 markets, 100 ms apart, across the 14:00 and 15:00 hours, with a marker pair.
    for k in 0..600u64 {
        let ts = T14 + HOUR - 30_000 + (k as i64) * 100;
        for (j, m) in ["KXT-A", "KXT-B", "KXT-C"].iter().enumerate() {
            let line = book(ts, m, k * 3 + j as u64);
            w.write(&line).unwrap();
            written.push(line);
        }
        if k == 100 {
            let g: Line = Marker::new(
                ts,
                "KXT-B".into(),
                MarkerKind::Gap,
                Some("seq 9 → 11".into()),
            )
            .into();
            let r: Line = Marker::new(ts + 50, "KXT-B".into(), MarkerKind::Resync, None).into();
            for l in [g, r] {
                w.write(&l).unwrap();
                written.push(l);
            }
        }
        // Wall clock runs at record speed in this test.
        w.maybe_flush(t0 + Duration::from_millis(k * 100)).unwrap();
    }
    let summary = w.close().unwrap();
    assert_eq!(summary.lines, written.len() as u64);
    assert_eq!(summary.markers, 2);
    assert_eq!(summary.snapshots, 1800);
    assert_eq!(summary.files.len(), 2);
    assert!(
        summary.members >= 30,
        "2 s flushes over 60 s: {}",
        summary.members
    );
    let on_disk: u64 = summary
        .files
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(summary.bytes, on_disk);

    let (lines, report) = read_glob(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(lines, written);
    let t = report.totals();
    assert_eq!((t.snapshots, t.markers, t.files), (1800, 2, 2));
    assert_eq!(t.members, summary.members);
    assert_eq!(t.bytes_decoded, summary.uncompressed_bytes);
    assert!(report.unknown_fields().is_empty());
}

/// Acceptance criterion: a file with garbage lines and a truncated last member. The reader
/// keeps every good line and reports exactly what it skipped, with `file:line` and why.
#[test]
fn damaged_file_is_reported_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("KXT_20260511T140000Z.snap_100ms.jsonl.gz");

    let good = |ts: i64| book(T14 + ts, "KXT-A", ts as u64);
    // Member 1 (normally compressed): lines 1–9.
    let mut m1 = Vec::new();
    good(0).write_json(&mut m1); // 1 good
    m1.extend_from_slice(b"this is not json\n"); // 2 not JSON
    m1.extend_from_slice(
        // 3 price out of range
        br#"{"ts_ms":1778508000200,"market_ticker":"KXT-A","yes_bid":150,"yes_ask":60,"no_bid":40,"no_ask":null,"yes_mid":null,"spread":null}"#,
    );
    m1.push(b'\n');
    m1.extend_from_slice(
        // 4 wrong type
        br#"{"ts_ms":1778508000300,"market_ticker":"KXT-A","yes_bid":40,"yes_ask":"abc","no_bid":55,"no_ask":60,"yes_mid":null,"spread":null}"#,
    );
    m1.push(b'\n');
    Line::from(Marker::new(
        T14 + 400,
        "KXT-A".into(),
        MarkerKind::Gap,
        None,
    ))
    .write_json(&mut m1); // 5 marker
    m1.extend_from_slice(b"   \n"); // 6 blank
    let mut l7 = good(600).to_json();
    l7.insert_str(1, r#""recv_ns":123,"#); // 7 good, with an unknown field
    m1.extend_from_slice(l7.as_bytes());
    m1.push(b'\n');
    m1.extend_from_slice(b"\xff\xfe{\"ts_ms\":1}\n"); // 8 not UTF-8
    m1.extend_from_slice(
        // 9 ask/bid not complementary
        br#"{"ts_ms":1778508000900,"market_ticker":"KXT-A","yes_bid":30,"yes_ask":40,"no_bid":50,"no_ask":70,"yes_mid":35,"spread":10}"#,
    );
    m1.push(b'\n');
    let m1 = gz_member(&m1);

    // Member 2 (stored, so the cut point is exact): lines 10–14, cut inside line 13.
    let tail: Vec<Line> = (10..15).map(|k| good(k * 100)).collect();
    let text = jsonl(&tail);
    let line13_start = jsonl(&tail[..3]).len();
    let cut_in_line = 25;
    let m2 = stored_member(&text);
    {
        // The untruncated member is valid gzip.
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&m2[..])
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s.as_bytes(), &text[..]);
    }
    let m2_cut = &m2[..STORED_HEADER + line13_start + cut_in_line];
    let mut bytes = m1.clone();
    bytes.extend_from_slice(m2_cut);
    fs::write(&path, &bytes).unwrap();

    let (lines, report) = read_all(std::slice::from_ref(&path));

    // Kept: lines 1, 5 (marker), 7, 10, 11, 12.
    let mut want = vec![
        good(0),
        Line::from(Marker::new(
            T14 + 400,
            "KXT-A".into(),
            MarkerKind::Gap,
            None,
        )),
        good(600),
    ];
    want.extend_from_slice(&tail[..3]);
    assert_eq!(lines, want);

    let f = &report.files[0];
    let c = &f.counts;
    assert_eq!(c.lines, 13, "12 complete lines + the incomplete line 13");
    assert_eq!((c.snapshots, c.markers, c.blank), (5, 1, 1));
    assert_eq!(
        (
            c.not_json,
            c.invalid,
            c.bad_field,
            c.not_utf8,
            c.partial_lines,
            c.too_long
        ),
        (1, 2, 1, 1, 1, 0)
    );
    assert_eq!(c.skipped_lines(), 6);
    assert_eq!((c.members, c.corrupt_members, c.truncated_files), (1, 0, 1));
    assert_eq!(
        f.unknown_fields,
        BTreeMap::from([("recv_ns".to_string(), 1)])
    );
    let tr = f.truncation.as_ref().unwrap();
    assert_eq!(tr.last_complete_line, 12);
    assert_eq!(tr.partial_line_bytes, cut_in_line as u64);
    assert_eq!(tr.member_offset, m1.len() as u64);
    assert_eq!(tr.member_bytes_on_disk, m2_cut.len() as u64);

    let name = path.display().to_string();
    let got: Vec<(String, ProblemKind)> = report
        .problems
        .iter()
        .map(|p| (format!("{}:{}", p.file.display(), p.line.unwrap()), p.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (format!("{name}:2"), ProblemKind::NotJson),
            (format!("{name}:3"), ProblemKind::Invalid),
            (format!("{name}:4"), ProblemKind::BadField),
            (format!("{name}:8"), ProblemKind::NotUtf8),
            (format!("{name}:9"), ProblemKind::Invalid),
            (format!("{name}:13"), ProblemKind::Truncated),
        ]
    );
    assert_eq!(report.problems_total, 6);
    let detail = |i: usize| report.problems[i].detail.as_str();
    assert!(detail(0).starts_with("not JSON: expected"), "{}", detail(0));
    assert_eq!(
        detail(1),
        "invalid: field `yes_bid`: 150 cents is outside 0..=100"
    );
    assert!(
        detail(2)
            .starts_with(r#"bad field: field `yes_ask`: invalid type: string "abc", expected f64"#),
        "{}",
        detail(2)
    );
    assert_eq!(detail(3), "not UTF-8 (invalid byte at column 1)");
    assert_eq!(
        detail(4),
        "invalid: inconsistent record: yes_ask 40 ≠ 100 − no_bid 50"
    );
    assert_eq!(
        detail(5),
        format!(
            "file ends inside the gzip member at byte {} ({} bytes on disk): kept lines up to 12, \
             dropped {cut_in_line} bytes of incomplete line 13",
            m1.len(),
            m2_cut.len()
        )
    );
    // The human summary names the counts and every problem.
    let text = report.to_string();
    assert!(
        text.contains(
            "skipped 6 line(s): 1 not UTF-8; 1 not JSON; 1 bad field; 2 invalid; 1 incomplete;"
        ),
        "{text}"
    );
    assert!(text.contains("1 truncated file(s)"), "{text}");
    assert!(
        text.contains("unknown fields skipped: recv_ns ×1;"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}:13: file ends inside")),
        "{text}"
    );
}

/// A real (compressed) member cut at many points: the lines kept are always a prefix, every
/// line of earlier members is kept, and a cut that only loses the trailer keeps everything.
#[test]
fn truncated_compressed_member_keeps_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<Line> = (0..50)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let second: Vec<Line> = (50..400)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let m1 = gz_member(&jsonl(&first));
    let m2 = gz_member(&jsonl(&second));
    let mut last_kept = 0;
    for frac in [1, 10, 25, 50, 75, 90, 99] {
        let cut = m2.len() * frac / 100;
        let path = dir.path().join(format!(
            "KXT_20260511T140000Z_r{frac:02}.snap_100ms.jsonl.gz"
        ));
        let mut bytes = m1.clone();
        bytes.extend_from_slice(&m2[..cut]);
        fs::write(&path, bytes).unwrap();
        let (lines, report) = read_all(std::slice::from_ref(&path));
        assert_eq!(&lines[..50], &first[..]);
        let kept = &lines[50..];
        assert_eq!(kept, &second[..kept.len()], "cut at {frac}%");
        assert!(
            kept.len() >= last_kept,
            "a later cut keeps at least as much"
        );
        last_kept = kept.len();
        let f = &report.files[0];
        assert_eq!(f.counts.truncated_files, 1);
        assert_eq!(
            f.truncation.as_ref().unwrap().last_complete_line,
            lines.len() as u64
        );
        assert_eq!(report.problems_total, 1, "{report}");
    }
    assert!(
        last_kept > 300,
        "most of a 99% member is decodable: {last_kept}"
    );
    // Only the 8-byte trailer missing: every line kept, still reported as truncated.
    let path = dir.path().join("KXT_20260511T150000Z.snap_100ms.jsonl.gz");
    let mut bytes = m1.clone();
    bytes.extend_from_slice(&m2[..m2.len() - 8]);
    fs::write(&path, bytes).unwrap();
    let (lines, report) = read_all(std::slice::from_ref(&path));
    assert_eq!(lines.len(), 400);
    assert_eq!(report.totals().truncated_files, 1);
    assert_eq!(
        report.files[0]
            .truncation
            .as_ref()
            .unwrap()
            .partial_line_bytes,
        0
    );
}

#[test]
fn corrupt_member_and_garbage_are_skipped_and_reading_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let a: Vec<Line> = (0..20)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let b: Vec<Line> = (20..40)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let c: Vec<Line> = (40..60)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let m1 = gz_member(&jsonl(&a));
    let mut m2 = gz_member(&jsonl(&b));
    m2[10] = 0x07; // first deflate block: BFINAL=1, BTYPE=11 (reserved) → corrupt at once
    let m3 = gz_member(&jsonl(&c));
    let garbage = b"\0\0\0 not gzip at all \0\0";
    let mut bytes = m1.clone();
    bytes.extend_from_slice(&m2);
    bytes.extend_from_slice(&m3);
    bytes.extend_from_slice(garbage);
    let path = dir.path().join("KXT_20260511T140000Z.snap_100ms.jsonl.gz");
    fs::write(&path, &bytes).unwrap();

    let (lines, report) = read_all(std::slice::from_ref(&path));
    let mut want = a.clone();
    want.extend_from_slice(&c);
    assert_eq!(lines, want);
    let f = &report.files[0];
    assert_eq!(f.counts.members, 2);
    assert_eq!(
        f.counts.corrupt_members, 2,
        "the bad member and the trailing garbage"
    );
    assert_eq!(f.counts.bytes_skipped, (m2.len() + garbage.len()) as u64);
    assert_eq!(f.counts.lines, 40);
    assert_eq!(f.counts.truncated_files, 0);
    let kinds: Vec<_> = report.problems.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (Some(21), ProblemKind::CorruptMember),
            (Some(41), ProblemKind::CorruptMember)
        ]
    );
    assert!(
        report.problems[0]
            .detail
            .contains(&format!("gzip member at byte {} is corrupt", m1.len()))
            && report.problems[0].detail.contains(&format!(
                "resumed at the next member, byte {}",
                m1.len() + m2.len()
            )),
        "{}",
        report.problems[0]
    );
}

#[test]
fn plain_jsonl_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Line> = (0..5)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let plain = dir.path().join("KXT_20260511T140000Z.snap_100ms.jsonl");
    let mut text = jsonl(&lines);
    text.pop(); // last line without a newline
    fs::write(&plain, &text).unwrap();
    let missing = dir.path().join("KXT_20260511T150000Z.snap_100ms.jsonl.gz");
    let (got, report) = read_all(&[plain.clone(), missing.clone()]);
    assert_eq!(got, lines);
    assert!(!report.files[0].gzip);
    assert_eq!(report.files[0].problems_total, 0);
    assert_eq!(report.totals().unreadable_files, 1);
    assert_eq!(report.problems[0].kind, ProblemKind::OpenFailed);
    assert_eq!(report.problems[0].file, missing);

    // A line longer than the limit is skipped without holding it in memory.
    let long = dir.path().join("long.jsonl");
    let mut text = jsonl(&lines[..1]);
    text.extend(std::iter::repeat_n(b'x', 300_000));
    text.push(b'\n');
    text.extend(jsonl(&lines[1..2]));
    fs::write(&long, &text).unwrap();
    let mut rd = SnapshotReader::from_paths(
        [&long],
        ReadOptions {
            max_line_bytes: 100_000,
            ..Default::default()
        },
    );
    let got: Vec<Line> = rd.by_ref().collect();
    assert_eq!(got, lines[..2]);
    let report = rd.into_report();
    assert_eq!(report.totals().too_long, 1);
    assert_eq!(report.problems[0].line, Some(2));
    assert_eq!(report.totals().lines, 3);
}

// -------------------------------------------------------------------------------------------
// Writer: rotation, restarts, crashes

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn rotation_follows_record_time_on_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let mut w =
        SnapshotWriter::new(dir.path(), SeriesTicker::new("KXBTC15M"), 100, opts()).unwrap();
    let stamps = [
        T14 - 100,             // 13:59:59.900 → 13:00 file
        T14,                   // 14:00:00.000 → 14:00 file
        T14 + HOUR / 2,        // 14:30
        T14 - 200,             // back to 13:00 (late line): appended to the 13:00 file
        T14 + HOUR + HOUR / 2, // 15:30 → 15:00 file
        T14 + 2 * HOUR - 100,  // 15:59:59.900
    ];
    for (i, &ts) in stamps.iter().enumerate() {
        w.write(&book(ts, "KXBTC15M-26MAY111415-15", i as u64))
            .unwrap();
    }
    let s = w.close().unwrap();
    assert_eq!(
        names(dir.path()),
        vec![
            "KXBTC15M_20260511T130000Z.snap_100ms.jsonl.gz",
            "KXBTC15M_20260511T140000Z.snap_100ms.jsonl.gz",
            "KXBTC15M_20260511T150000Z.snap_100ms.jsonl.gz",
        ]
    );
    assert_eq!(s.files.len(), 3);
    // Every line sits in the file of its period.
    for name in names(dir.path()) {
        let start = parse_file_name(&name).unwrap().period_start_ms;
        let (lines, report) = read_all(&[dir.path().join(&name)]);
        assert!(report.is_clean());
        assert!(!lines.is_empty());
        for l in &lines {
            assert!(
                (start..start + HOUR).contains(&l.ts_ms()),
                "{name}: {}",
                l.ts_ms()
            );
        }
    }
    let (all, _) = read_glob(dir.path());
    assert_eq!(all.len(), stamps.len());

    // A 15-minute grid.
    let dir = tempfile::tempdir().unwrap();
    let o = WriterOptions {
        rotate: Duration::from_secs(900),
        ..opts()
    };
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 250, o).unwrap();
    for ts in [
        T14 - 250,
        T14 + 14 * 60_000 + 59_750,
        T14 + 15 * 60_000,
        T14 + 3_600_000,
    ] {
        w.write(&book(ts, "KXT-A", 1)).unwrap();
    }
    w.close().unwrap();
    assert_eq!(
        names(dir.path()),
        vec![
            "KXT_20260511T134500Z.snap_250ms.jsonl.gz",
            "KXT_20260511T140000Z.snap_250ms.jsonl.gz",
            "KXT_20260511T141500Z.snap_250ms.jsonl.gz",
            "KXT_20260511T150000Z.snap_250ms.jsonl.gz",
        ]
    );
}

#[test]
fn writer_refuses_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, opts()).unwrap();
    let e = w.write(&book(T14 + 50, "KXT-A", 1)).unwrap_err();
    assert!(e.to_string().contains("not on the 100 ms grid"), "{e}");
    let Line::Snapshot(mut r) = book(T14, "KXT-A", 1) else {
        unreachable!()
    };
    r.spread = Some(price(50.0));
    let e = w.write(&r.into()).unwrap_err();
    assert!(e.to_string().contains("spread"), "{e}");
    // Markers need not be on the grid.
    w.write(&Marker::new(T14 + 37, "KXT-A".into(), MarkerKind::Gap, None).into())
        .unwrap();
    let s = w.close().unwrap();
    assert_eq!((s.lines, s.markers), (1, 1));
}

#[test]
fn restart_in_the_same_hour_appends_to_a_clean_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |from: u64, to: u64| {
        let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, opts()).unwrap();
        let lines: Vec<Line> = (from..to)
            .map(|k| book(T14 + k as i64 * 100, "KXT-A", k))
            .collect();
        for l in &lines {
            w.write(l).unwrap();
        }
        (w.close().unwrap(), lines)
    };
    let (s1, mut want) = run(0, 50);
    let (s2, more) = run(50, 100);
    want.extend(more);
    assert_eq!(
        s1.files, s2.files,
        "the second run appended to the same file"
    );
    assert_eq!(
        names(dir.path()),
        vec!["KXT_20260511T140000Z.snap_100ms.jsonl.gz"]
    );
    let (lines, report) = read_glob(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(lines, want);
    assert_eq!(report.totals().members, 2);
    // Any gzip reader sees both runs.
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(&s1.files[0]).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s.lines().count(), 100);
}

#[test]
fn restart_after_a_crash_leaves_the_damaged_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mk = || SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, opts()).unwrap();
    let first: Vec<Line> = (0..50)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let mut w = mk();
    for l in &first {
        w.write(l).unwrap();
    }
    let base = w.close().unwrap().files[0].clone();
    // The process was killed while writing its next member.
    let lost: Vec<Line> = (50..60)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let m = gz_member(&jsonl(&lost));
    OpenOptions::new()
        .append(true)
        .open(&base)
        .unwrap()
        .write_all(&m[..m.len() / 2])
        .unwrap();
    let before = fs::read(&base).unwrap();

    let second: Vec<Line> = (60..90)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let mut w = mk();
    for l in &second {
        w.write(l).unwrap();
    }
    let s = w.close().unwrap();
    assert_eq!(
        s.files,
        vec![dir
            .path()
            .join("KXT_20260511T140000Z_r01.snap_100ms.jsonl.gz")]
    );
    assert_eq!(
        fs::read(&base).unwrap(),
        before,
        "the damaged file is untouched"
    );

    let (lines, report) = read_glob(dir.path());
    assert_eq!(&lines[..50], &first[..]);
    let recovered = lines.len() - 50 - second.len();
    assert_eq!(&lines[50..50 + recovered], &lost[..recovered]);
    assert_eq!(&lines[50 + recovered..], &second[..]);
    assert_eq!(report.totals().truncated_files, 1);
    assert_eq!(report.files[0].path, base);
    assert!(report.files[1].is_clean());
}

/// kill -9 between flushes, in the middle of writing a member: everything flushed survives,
/// the loss is at most one flush interval (plus the caller's `maybe_flush` granularity).
#[test]
fn simulated_kill_loses_at_most_the_unflushed_interval() {
    let dir = tempfile::tempdir().unwrap();
    let o = WriterOptions {
        flush_every: Duration::from_secs(2),
        ..opts()
    };
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, o).unwrap();
    let t0 = Instant::now();
    let lines: Vec<Line> = (0..317)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    for (k, l) in lines.iter().enumerate() {
        w.write(l).unwrap();
        if k % 10 == 9 {
            // The recorder's timer ticks every second of (simulated) wall clock.
            w.maybe_flush(t0 + Duration::from_millis(k as u64 * 100))
                .unwrap();
        }
    }
    let flushed = w.summary().lines as usize;
    let pending = w.pending_lines() as usize;
    assert_eq!(flushed + pending, lines.len());
    assert!(
        pending > 0 && pending <= 30,
        "2 s at 10 lines/s + one 1 s tick: {pending}"
    );
    let path = w.current_path().unwrap().to_path_buf();
    // Killed while writing the pending member: half of it reached the file, and no Drop runs.
    let m = gz_member(&jsonl(&lines[flushed..]));
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&m[..m.len() / 2])
        .unwrap();
    std::mem::forget(w);

    let (got, report) = read_glob(dir.path());
    assert!(got.len() >= flushed);
    assert_eq!(
        got,
        lines[..got.len()],
        "what is read is exactly a prefix of what was written"
    );
    assert!(lines.len() - got.len() <= pending);
    assert_eq!(report.totals().truncated_files, 1);
    assert_eq!(
        report.totals().skipped_lines(),
        1,
        "only the incomplete line: {report}"
    );
}

#[test]
fn dropping_a_writer_flushes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, opts()).unwrap();
        w.write(&book(T14, "KXT-A", 1)).unwrap();
        assert_eq!(w.pending_lines(), 1);
    }
    let (lines, report) = read_glob(dir.path());
    assert_eq!(lines, vec![book(T14, "KXT-A", 1)]);
    assert!(report.is_clean());
}

#[test]
fn a_full_buffer_flushes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let o = WriterOptions {
        max_buffer_bytes: 4096,
        ..opts()
    };
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, o).unwrap();
    for k in 0..200u64 {
        w.write(&book(T14 + k as i64 * 100, "KXT-A", k)).unwrap();
    }
    assert!(w.summary().members >= 10, "{:?}", w.summary());
    assert!(w.pending_lines() < 200);
    let s = w.close().unwrap();
    assert_eq!(s.lines, 200);
}

// -------------------------------------------------------------------------------------------
// Columnar

#[test]
fn markers_round_trip_and_split_columnar_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXT"), 100, opts()).unwrap();
    let m = "KXT-A";
    let snap = |k: i64| book(T14 + k * 100, m, k as u64);
    let mark = |k: i64, kind: MarkerKind, why: Option<&str>| -> Line {
        Marker::new(T14 + k * 100, m.into(), kind, why.map(String::from)).into()
    };
    let mut written = Vec::new();
    let mut put = |l: Line| {
        w.write(&l).unwrap();
        written.push(l);
    };
    for k in 0..10 {
        put(snap(k));
    }
    put(mark(10, MarkerKind::Gap, Some("seq 41 → 43")));
    for k in 10..15 {
        put(snap(k)); // recorded while untrustworthy
    }
    put(mark(15, MarkerKind::Resync, None));
    for k in 15..20 {
        put(snap(k));
    }
    // A two-minute hole without a marker (a recorder that died), then more rows.
    for k in 1220..1225 {
        put(snap(k));
    }
    put(mark(1225, MarkerKind::Closed, None));
    put(snap(1225));
    put(mark(
        1226,
        MarkerKind::Other("halted".into()),
        Some("exchange pause"),
    ));
    w.close().unwrap();

    // Streaming: markers come back as markers, in place.
    let (lines, report) = read_glob(dir.path());
    assert!(report.is_clean());
    assert_eq!(lines, written);
    assert_eq!(report.totals().markers, 4);

    let set = load_columnar(
        &[dir.path().join("KXT_20260511T140000Z.snap_100ms.jsonl.gz")],
        &ColumnarOptions::default(),
    );
    let s = &set.markets[m];
    assert_eq!(s.len(), 26);
    let segs: Vec<_> = s
        .segments
        .iter()
        .map(|g| (g.start, g.end, g.trusted, g.cause.clone()))
        .collect();
    assert_eq!(
        segs,
        vec![
            (0, 10, true, SegmentCause::Start),
            (10, 15, false, SegmentCause::Marker(MarkerKind::Gap)),
            (15, 20, true, SegmentCause::Marker(MarkerKind::Resync)),
            (20, 25, true, SegmentCause::TimeGap { gap_ms: 120_100 }),
            (25, 26, false, SegmentCause::Marker(MarkerKind::Closed)),
        ]
    );
    assert_eq!(
        s.trusted_segments().collect::<Vec<_>>(),
        vec![0..10, 15..20, 20..25]
    );
    assert_eq!(s.segment_of(12), Some(1));
    assert_eq!(s.segment_of(25), Some(4));
    assert_eq!(s.markers.len(), 4);
    assert_eq!(s.markers[0].reason.as_deref(), Some("seq 41 → 43"));
    assert_eq!(s.markers[3].kind, MarkerKind::Other("halted".into()));

    // Without the time split the hole is bridged (by request only).
    let set = load_columnar(
        &[dir.path().join("KXT_20260511T140000Z.snap_100ms.jsonl.gz")],
        &ColumnarOptions {
            split_gap_ms: None,
            ..Default::default()
        },
    );
    assert_eq!(set.markets[m].segments.len(), 4);

    // The same lines held in memory give the same columns as the file.
    let from_files = load_columnar(
        &[dir.path().join("KXT_20260511T140000Z.snap_100ms.jsonl.gz")],
        &ColumnarOptions::default(),
    );
    let in_memory = SnapshotSet::from_lines(written, &ColumnarOptions::default());
    assert_eq!(in_memory.markets, from_files.markets);
    assert_eq!(in_memory.merge, from_files.merge);
}

/// Writes `markets` × `ticks` rows with 1 s rotation (many files), returns the paths.
fn many_files(dir: &Path, markets: usize, ticks: i64) -> Vec<PathBuf> {
    let o = WriterOptions {
        rotate: Duration::from_secs(1),
        ..opts()
    };
    let mut w = SnapshotWriter::new(dir, SeriesTicker::new("KXT"), 100, o).unwrap();
    for k in 0..ticks {
        for j in 0..markets {
            w.write(&book(
                T14 + k * 100,
                &format!("KXT-M{j:02}"),
                (k as u64) * 31 + j as u64,
            ))
            .unwrap();
        }
    }
    w.close().unwrap().files
}

#[test]
fn columnar_matches_the_stream_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = many_files(dir.path(), 5, 200);
    assert_eq!(files.len(), 20);
    // A later-sorting plain file with duplicates (identical and conflicting), a row older than
    // everything else (forces a re-sort) and a market of its own.
    let dup = dir.path().join("zz_extra.snap_100ms.jsonl");
    let mut extra = Vec::new();
    for k in [3i64, 77, 150] {
        let j = 1usize;
        extra.push(book(T14 + k * 100, "KXT-M01", (k as u64) * 31 + j as u64)); // identical
    }
    extra.push(book(T14 + 5 * 100, "KXT-M02", 999)); // conflicting: same ts, other book
    extra.push(book(T14 + 6 * 100, "KXT-M02", 998)); // conflicting
    extra.push(book(T14 - 100, "KXT-M03", 5)); // earlier than everything
    extra.push(book(T14, "KXT-ONLY", 1));
    fs::write(&dup, jsonl(&extra)).unwrap();
    files.push(dup);

    let one = load_columnar(
        &files,
        &ColumnarOptions {
            threads: Some(1),
            ..Default::default()
        },
    );
    let many = load_columnar(
        &files,
        &ColumnarOptions {
            threads: Some(3),
            ..Default::default()
        },
    );
    let mut reversed = files.clone();
    reversed.reverse();
    let again = load_columnar(&reversed, &ColumnarOptions::default());
    assert_eq!(one, many);
    assert_eq!(one, again);
    assert!(one.report.is_clean(), "{}", one.report);

    assert_eq!(one.markets.len(), 6);
    assert_eq!(one.merge.duplicate_rows, 5);
    assert_eq!(one.merge.duplicate_conflicts, 2);
    assert_eq!(
        one.merge.conflict_examples,
        vec![
            (MarketTicker::new("KXT-M02"), T14 + 500),
            (MarketTicker::new("KXT-M02"), T14 + 600)
        ]
    );
    // M01/M02 (the late duplicates) and M03 (the early row) arrive out of time order.
    assert_eq!(one.merge.reordered_markets, 3);
    assert_eq!(one.markets["KXT-M03"].len(), 201);
    assert_eq!(one.markets["KXT-M03"].ts_ms[0], T14 - 100);
    assert_eq!(one.rows(), 5 * 200 + 1 + 1);

    // Every row equals the first occurrence of its (market, ts) in the stream.
    let (lines, _) = read_all(&files);
    let mut first: BTreeMap<(MarketTicker, i64), SnapshotRecord> = BTreeMap::new();
    for l in lines {
        if let Line::Snapshot(r) = l {
            first.entry((r.market_ticker.clone(), r.ts_ms)).or_insert(r);
        }
    }
    assert_eq!(first.len(), one.rows());
    for ((t, ts), r) in &first {
        let s = &one.markets[t];
        let i = s.ts_ms.binary_search(ts).unwrap();
        assert_eq!(s.yes_bid(i), r.yes_bid);
        assert_eq!(s.yes_ask(i), r.yes_ask);
        assert_eq!(s.no_bid(i), r.no_bid);
        assert_eq!(s.no_ask(i), r.no_ask);
        assert_eq!(s.yes_mid(i), r.yes_mid);
        assert_eq!(s.spread(i), r.spread);
        assert_eq!(s.yes_bid_size(i), r.yes_bid_size);
        assert_eq!(s.yes_ask_size(i), r.yes_ask_size);
        assert_eq!(s.last_price(i), r.last_price);
        assert_eq!(s.volume(i), r.volume);
        assert_eq!(
            s.yes_ladder(i).collect::<Vec<_>>(),
            r.yes_bids.clone().unwrap_or_default()
        );
        assert_eq!(
            s.no_ladder(i).collect::<Vec<_>>(),
            r.no_bids.clone().unwrap_or_default()
        );
        assert_eq!(s.close_ts_ms, r.close_ts_ms);
    }
    for s in one.markets.values() {
        assert!(s.ts_ms.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.segments.first().map(|g| g.start), Some(0));
        assert_eq!(s.segments.last().map(|g| g.end), Some(s.len()));
    }
    let text = one.to_string();
    assert!(
        text.contains("dropped 5 duplicate row(s) (2 conflicting)"),
        "{text}"
    );
}

#[test]
fn columnar_reports_damage_like_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let files = many_files(dir.path(), 2, 30);
    // Truncate the last file mid-way and add a bad line file.
    let last = files.last().unwrap();
    let bytes = fs::read(last).unwrap();
    fs::write(last, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let bad = dir.path().join("KXT_20260511T140010Z.snap_100ms.jsonl");
    fs::write(&bad, b"{\"ts_ms\":1}\nnot json\n").unwrap();
    let mut all = files.clone();
    all.push(bad);
    let set = load_columnar(&all, &ColumnarOptions::default());
    let (_, stream_report) = read_all(&all);
    assert_eq!(set.report, stream_report);
    assert_eq!(set.report.totals().truncated_files, 1);
    assert_eq!(
        set.report.totals().bad_field + set.report.totals().not_json,
        2
    );
}

// -------------------------------------------------------------------------------------------
// Interoperability and real data

fn python3() -> Option<&'static str> {
    Command::new("python3")
        .arg("-c")
        .arg("import gzip")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "python3")
}

#[test]
fn python_multi_member_gzip_reads_and_python_reads_ours() {
    let Some(py) = python3() else {
        eprintln!("SKIP python_multi_member_gzip_reads_and_python_reads_ours: python3 not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Line> = (0..40)
        .map(|k| book(T14 + k * 100, "KXT-A", k as u64))
        .collect();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.txt");
    fs::write(&a, jsonl(&lines[..25])).unwrap();
    fs::write(&b, jsonl(&lines[25..])).unwrap();
    let out = dir.path().join("KXT_20260511T140000Z.snap_100ms.jsonl.gz");
    let script = "import gzip, sys\n\
                  for p in sys.argv[1:-1]:\n    \
                      with gzip.open(sys.argv[-1], 'ab') as g:\n        \
                          g.write(open(p, 'rb').read())\n";
    let st = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(&a)
        .arg(&b)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let (got, report) = read_all(std::slice::from_ref(&out));
    assert!(report.is_clean(), "{report}");
    assert_eq!(got, lines);
    assert_eq!(report.totals().members, 2);

    // And Python's gzip reads a file our writer made (many members, appended after a restart).
    let dir2 = tempfile::tempdir().unwrap();
    for half in [&lines[..20], &lines[20..]] {
        let mut w =
            SnapshotWriter::new(dir2.path(), SeriesTicker::new("KXT"), 100, opts()).unwrap();
        for l in half {
            w.write(l).unwrap();
            w.flush().unwrap();
        }
        w.close().unwrap();
    }
    let ours = dir2.path().join("KXT_20260511T140000Z.snap_100ms.jsonl.gz");
    let o = Command::new(py)
        .arg("-c")
        .arg("import gzip, json, sys\nprint(sum(1 for l in gzip.open(sys.argv[1]) if json.loads(l)['ts_ms']))")
        .arg(&ours)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "40");
}

fn shared_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    p.is_dir().then_some(p)
}

/// Real Kalshi REST order books (deci-cents absent, fractional sizes, deep ladders) turned into
/// snapshot records, written, and read back exactly; the derived YES ask matches the
/// recorder's own `best_yes_ask`.
#[test]
fn real_rest_orderbooks_round_trip() {
    let Some(data) = shared_dir() else {
        eprintln!("SKIP real_rest_orderbooks_round_trip: ../shared/data not present");
        return;
    };
    let path = data.join("kalshi_rest/orderbook_depth_full_2026-07-23_24.jsonl.gz");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let dollars =
        |v: &serde_json::Value| Price::parse_dollars(&v.as_f64().unwrap().to_string()).unwrap();
    let levels = |v: &serde_json::Value| -> Vec<(Price, Count)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        (
                            dollars(&l[0]),
                            Count::parse(&l[1].as_f64().unwrap().to_string()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXREST"), 100, opts()).unwrap();
    let mut written = Vec::new();
    for row in text.lines() {
        let v: serde_json::Value = serde_json::from_str(row).unwrap();
        let ts = chrono::DateTime::parse_from_rfc3339(v["captured_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let ts = ts - ts % 100;
        let rec = SnapshotRecord::from_ladders(
            ts,
            v["ticker"].as_str().unwrap().into(),
            &levels(&v["yes_bids"]),
            &levels(&v["no_bids"]),
            usize::MAX,
        )
        .unwrap();
        if let (Some(a), Some(_)) = (v["best_yes_ask"].as_f64(), rec.yes_ask) {
            assert_eq!(rec.yes_ask, Some(dollars(&serde_json::json!(a))), "{row}");
        }
        let l = Line::from(rec);
        w.write(&l).unwrap();
        written.push(l);
    }
    w.close().unwrap();
    let (lines, report) = read_glob(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(lines.len(), 6534);
    // The writer rotates by record time; compare as multisets ordered by (time, ticker).
    let key = |l: &Line| (l.ts_ms(), l.market_ticker().clone(), l.to_json());
    let mut a: Vec<_> = lines.iter().map(key).collect();
    let mut b: Vec<_> = written.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// The shipped golden file shows the exact on-disk form (deci-cents, nulls, ladders, markers);
/// the writer's serialisation must reproduce it byte for byte. `UPDATE_GOLDEN=1` rewrites it.
#[test]
fn golden_fixture_matches_the_serialiser() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/snapshot_v1/KXBTC15M_20260511T140000Z.snap_100ms.jsonl");
    let t = "KXBTC15M-26MAY111415-15";
    let lines: Vec<Line> = vec![
        SnapshotRecord::from_ladders(
            T14,
            t.into(),
            &[
                (price(98.2), Count::parse("12.50").unwrap()),
                (price(98.0), Count::from_contracts(300)),
            ],
            &[
                (price(1.7), Count::parse("3.00").unwrap()),
                (price(1.5), Count::parse("0.41").unwrap()),
            ],
            5,
        )
        .unwrap()
        .with_last_price(Some(price(98.1)))
        .with_volume(Some(Count::parse("1520.75").unwrap()))
        .with_close_ts_ms(Some(T14 + 15 * 60_000))
        .with_seq(Some(1041))
        .into(),
        SnapshotRecord::from_book(
            T14 + 100,
            t.into(),
            Some((price(42.0), Count::from_contracts(10))),
            None,
        )
        .unwrap()
        .into(),
        SnapshotRecord::from_book(T14 + 200, t.into(), None, None)
            .unwrap()
            .into(),
        Marker::new(
            T14 + 250,
            t.into(),
            MarkerKind::Gap,
            Some("seq 1042 missing".into()),
        )
        .into(),
        Marker::new(T14 + 900, t.into(), MarkerKind::Resync, None).into(),
        SnapshotRecord::from_book(
            T14 + 900,
            t.into(),
            Some((price(49.0), Count::from_contracts(25))),
            Some((price(50.0), Count::from_contracts(40))),
        )
        .unwrap()
        .into(),
        Marker::new(T14 + 15 * 60_000, t.into(), MarkerKind::Closed, None).into(),
    ];
    let text = jsonl(&lines);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &text).unwrap();
    }
    let on_disk = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        String::from_utf8_lossy(&on_disk),
        String::from_utf8_lossy(&text),
        "serialiser and golden file differ"
    );
    let (read, report) = read_all(&[path]);
    assert!(report.is_clean(), "{report}");
    assert_eq!(read, lines);
}
