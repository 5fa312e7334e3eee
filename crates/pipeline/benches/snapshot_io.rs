//! Snapshot IO throughput: write ~1M records for 50 markets to a temp dir, then read them back
//! streaming and columnar. Plain `std::time`; prints records/s and bytes/record.
//!
//! `cargo bench -p pipeline --bench snapshot_io` (set `SNAPSHOT_BENCH_RECORDS` to scale).

use std::time::{Duration, Instant};

use pipeline::snapshot::{
    load_columnar, ColumnarOptions, Line, ReadOptions, SnapshotReader, SnapshotRecord,
    SnapshotWriter, WriterOptions,
};
use pipeline::{Count, Price, SeriesTicker};

const MARKETS: usize = 50;
const SNAPSHOT_MS: i64 = 100;
/// 2026-05-11T14:00:00Z
const T0: i64 = 1_778_508_000_000;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One market's book: a mid random walk in deci-cents, spread 1–3 ¢, `depth` levels a side.
fn record(rng: &mut Rng, ts: i64, ticker: &str, mid_dc: &mut i64, depth: usize) -> Line {
    *mid_dc = (*mid_dc + rng.below(5) as i64 - 2).clamp(60, 940);
    let half = 5 + 10 * rng.below(2) as i64; // 0.5 or 1.5 ¢
    let yes_bid = *mid_dc - half;
    let no_bid = 1000 - (*mid_dc + half);
    let level = |rng: &mut Rng, p_dc: i64| {
        (
            Price::from_micros(p_dc * 1000).unwrap(),
            Count::from_centis(100 + rng.below(500_000) as i64),
        )
    };
    let yes: Vec<_> = (0..depth.max(1) as i64)
        .map(|k| level(rng, yes_bid - 10 * k))
        .filter(|l| l.0.micros() > 0)
        .collect();
    let no: Vec<_> = (0..depth.max(1) as i64)
        .map(|k| level(rng, no_bid - 10 * k))
        .filter(|l| l.0.micros() > 0)
        .collect();
    SnapshotRecord::from_ladders(ts, ticker.into(), &yes, &no, depth)
        .unwrap()
        .with_last_price(Some(Price::from_micros(*mid_dc * 1000).unwrap()))
        .with_volume(Some(Count::from_contracts(ts / 1000 % 100_000)))
        .with_close_ts_ms(Some(T0 + 3_600_000))
        .with_seq(Some((ts - T0) as u64 / 100))
        .into()
}

fn per_sec(n: u64, d: Duration) -> String {
    format!("{:>10.0}/s", n as f64 / d.as_secs_f64())
}

fn run(label: &str, records: u64, depth: usize, level: u32) {
    let dir = tempfile::tempdir().unwrap();
    let tickers: Vec<String> = (0..MARKETS)
        .map(|j| format!("KXBENCH-26MAY11-M{j:02}"))
        .collect();
    let ticks = records / MARKETS as u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut mids = vec![500i64; MARKETS];

    // Generate first (not timed), so the write figure is serialise + compress + disk.
    let mut lines = Vec::with_capacity((ticks as usize) * MARKETS);
    for k in 0..ticks as i64 {
        for (j, t) in tickers.iter().enumerate() {
            lines.push(record(
                &mut rng,
                T0 + k * SNAPSHOT_MS,
                t,
                &mut mids[j],
                depth,
            ));
        }
    }
    let n = lines.len() as u64;

    let opts = WriterOptions {
        // Several files from ~33 minutes of data, as hourly files would be over days.
        rotate: Duration::from_secs(300),
        compression_level: level,
        ..WriterOptions::default()
    };
    let mut w = SnapshotWriter::new(dir.path(), SeriesTicker::new("KXBENCH"), 100, opts).unwrap();
    let wall0 = Instant::now();
    let t = Instant::now();
    for (i, l) in lines.iter().enumerate() {
        w.write(l).unwrap();
        if i % MARKETS == MARKETS - 1 {
            // Flush on record time, as live recording would: a member every 2 s of data.
            let rec_ms = (l.ts_ms() - T0) as u64;
            w.maybe_flush(wall0 + Duration::from_millis(rec_ms))
                .unwrap();
        }
    }
    let summary = w.close().unwrap();
    let write_t = t.elapsed();

    let t = Instant::now();
    let mut rd = SnapshotReader::from_glob(
        &format!("{}/*.snap_*ms.jsonl.gz", dir.path().display()),
        ReadOptions::default(),
    )
    .unwrap();
    let mut streamed = 0u64;
    let mut checksum = 0i64;
    for l in rd.by_ref() {
        streamed += 1;
        if let Line::Snapshot(r) = l {
            checksum = checksum.wrapping_add(r.yes_bid.map_or(0, |p| p.micros()));
        }
    }
    let stream_t = t.elapsed();
    let report = rd.into_report();
    assert!(report.is_clean(), "{report}");
    assert_eq!(streamed, n);

    let t = Instant::now();
    let set = load_columnar(&summary.files, &ColumnarOptions::default());
    let col_t = t.elapsed();
    assert_eq!(set.rows() as u64, n);
    assert!(set.report.is_clean());
    let col_check: i64 = set
        .markets
        .values()
        .flat_map(|m| m.yes_bid.iter())
        .filter(|&&v| v != pipeline::snapshot::NO_PRICE)
        .map(|&v| i64::from(v))
        .sum();
    assert_eq!(col_check, checksum);
    let col_bytes: usize = set
        .markets
        .values()
        .map(|m| {
            m.len() * (8 + 4 * 3 + 8 * 3)
                + m.ladders.as_ref().map_or(0, |l| {
                    (l.yes_offsets.len() + l.no_offsets.len()) * 8
                        + (l.yes_price.len() + l.no_price.len()) * 12
                })
        })
        .sum();

    println!(
        "== {label}: {n} records, {MARKETS} markets, {} files, {} gzip members, gzip level {level}",
        summary.files.len(),
        summary.members
    );
    println!(
        "   on disk {:.1} MB = {:.1} bytes/record (JSONL {:.1} bytes/record, gzip ratio {:.1}x)",
        summary.bytes as f64 / 1e6,
        summary.bytes as f64 / n as f64,
        summary.uncompressed_bytes as f64 / n as f64,
        summary.uncompressed_bytes as f64 / summary.bytes as f64
    );
    println!(
        "   write     {} records  ({:.2} s)",
        per_sec(n, write_t),
        write_t.as_secs_f64()
    );
    println!(
        "   stream    {} records  ({:.2} s)",
        per_sec(n, stream_t),
        stream_t.as_secs_f64()
    );
    println!(
        "   columnar  {} records  ({:.2} s, {} threads, ~{:.1} bytes/row in memory)",
        per_sec(n, col_t),
        col_t.as_secs_f64(),
        rayon::current_num_threads(),
        col_bytes as f64 / n as f64
    );
}

fn main() {
    let records: u64 = std::env::var("SNAPSHOT_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let level: u32 = std::env::var("SNAPSHOT_BENCH_LEVEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WriterOptions::default().compression_level);
    run("best bid/ask + 5-level ladders", records, 5, level);
    run("best bid/ask only", records, 0, level);
}
