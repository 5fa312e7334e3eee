//! Capture re-gridding speed (`download_highres --from-capture`), frames per second on one
//! core (the re-grid is single-threaded), beside what reading the same files alone costs.
//!
//!     cargo bench -p download_highres --bench regrid_rate
//!
//! Two inputs:
//! * **synthetic**: `REGRID_BENCH_MARKETS` markets (default 20) for `REGRID_BENCH_SECONDS`
//!   seconds (default 300) at Kalshi's real rate, ~88 order-book deltas per market-second
//!   (measured on the May 2026 KXBTC15M captures), plus one `ticker` per market-second;
//!   realistic fields (fixed-point strings, deci-cent prices), written once to a gzip capture
//!   (not timed);
//! * **real**: every capture in `../shared/data/kalshi_kxbtc15m_2026-05/captures` when that
//!   folder exists (skipped with a message otherwise).
//!
//! `REGRID_BENCH_ONLY=synthetic|real` runs one of them. For each: the best of
//! `REGRID_BENCH_RUNS` (default 3) runs of the full re-grid (read,
//! parse, book sync, grid, write gzip snapshot files at 100 ms, depth 10), and of a read-only
//! pass over the same files (gzip + line split, `CaptureReader`), both in frames/s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use market_data::book::NoPriceConvention;
use market_data::capture::{CaptureReader, CaptureWriter};
use market_data::recorder::{regrid, RegridConfig};
use rand::{Rng, SeedableRng};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A capture of `markets` markets over `seconds` at `rate` deltas per market-second.
fn synthetic(path: &Path, markets: usize, seconds: i64, rate: f64) -> u64 {
    const T0: i64 = 1_790_000_000_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut w = CaptureWriter::create(path, Duration::from_secs(3600)).unwrap();
    let tickers: Vec<String> = (0..markets)
        .map(|i| format!("KXBENCH-26DEC01-M{i:03}"))
        .collect();
    let mut frames = 0u64;
    let mut put = |w: &mut CaptureWriter<_>, ns: i64, f: String| {
        w.write_frame(ns, &f).unwrap();
        frames += 1;
    };
    let close_s = (T0 + seconds * 1000 + 60_000) / 1000;
    for (i, t) in tickers.iter().enumerate() {
        put(
            &mut w,
            (T0 - 1000) * 1_000_000 + i as i64,
            format!(
                r#"{{"type":"market_lifecycle_v2","sid":3,"msg":{{"market_ticker":"{t}","event_type":"created","open_ts":{},"close_ts":{close_s}}}}}"#,
                T0 / 1000 - 60
            ),
        );
    }
    put(
        &mut w,
        (T0 - 900) * 1_000_000,
        r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#.into(),
    );
    let mut seq = 0u64;
    // Books: 30 levels a side around 50¢ (YES bids 20..49¢, NO bids 20..49¢ in NO-leg prices).
    let mut books: Vec<(Vec<i64>, Vec<i64>)> = vec![(vec![0; 30], vec![0; 30]); markets];
    for (m, t) in tickers.iter().enumerate() {
        let lv = |sizes: &mut Vec<i64>, rng: &mut rand_chacha::ChaCha8Rng| -> String {
            let v: Vec<String> = (0..30)
                .map(|k| {
                    sizes[k] = rng.gen_range(100..500_000);
                    format!(
                        r#"["0.{:04}","{}.{:02}"]"#,
                        (20 + k) * 100,
                        sizes[k] / 100,
                        sizes[k] % 100
                    )
                })
                .collect();
            format!("[{}]", v.join(","))
        };
        let (y, n) = &mut books[m];
        let (ys, ns) = (lv(y, &mut rng), lv(n, &mut rng));
        seq += 1;
        put(
            &mut w,
            (T0 - 800) * 1_000_000 + m as i64,
            format!(
                r#"{{"type":"orderbook_snapshot","sid":1,"seq":{seq},"msg":{{"market_ticker":"{t}","market_id":"id-{m}","yes_dollars_fp":{ys},"no_dollars_fp":{ns}}}}}"#
            ),
        );
    }
    let total = (rate * markets as f64 * seconds as f64) as u64;
    let span_ns = seconds * 1_000_000_000;
    let mut next_ticker = vec![T0 * 1_000_000; markets];
    for k in 0..total {
        let ns = T0 * 1_000_000 + (k as i128 * span_ns as i128 / total as i128) as i64;
        let m = rng.gen_range(0..markets);
        let (t, (y, n)) = (&tickers[m], &mut books[m]);
        let no = rng.gen_bool(0.5);
        let side = if no { n } else { y };
        let lvl = rng.gen_range(0..30);
        let d = if side[lvl] > 100 && rng.gen_bool(0.5) {
            -rng.gen_range(1..side[lvl])
        } else {
            rng.gen_range(1..20_000)
        };
        side[lvl] += d;
        seq += 1;
        let sign = if d < 0 { "-" } else { "" };
        put(
            &mut w,
            ns,
            format!(
                r#"{{"type":"orderbook_delta","sid":1,"seq":{seq},"msg":{{"market_ticker":"{t}","market_id":"id-{m}","price_dollars":"0.{:04}","delta_fp":"{sign}{}.{:02}","side":"{}","ts":"2026-09-21T14:00:00Z"}}}}"#,
                (20 + lvl) * 100,
                d.abs() / 100,
                d.abs() % 100,
                if no { "no" } else { "yes" }
            ),
        );
        if ns >= next_ticker[m] {
            next_ticker[m] = ns + 1_000_000_000;
            put(
                &mut w,
                ns + 1,
                format!(
                    r#"{{"type":"ticker","sid":2,"msg":{{"market_ticker":"{t}","price_dollars":"0.4500","volume_fp":"{k}.00","ts":{}}}}}"#,
                    ns / 1_000_000_000
                ),
            );
        }
    }
    w.finish().unwrap();
    frames
}

fn read_only(files: &[PathBuf]) -> (u64, Duration) {
    let t = Instant::now();
    let mut n = 0u64;
    for f in files {
        for rec in CaptureReader::open(f).unwrap() {
            std::hint::black_box(rec.unwrap());
            n += 1;
        }
    }
    (n, t.elapsed())
}

fn bench(
    name: &str,
    files: Vec<PathBuf>,
    markets: Option<PathBuf>,
    convention: NoPriceConvention,
    runs: u64,
) {
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let mut best_read = Duration::MAX;
    let mut read_frames = 0;
    let mut best = Duration::MAX;
    let mut last = None;
    for i in 0..runs {
        let (n, d) = read_only(&files);
        read_frames = n;
        best_read = best_read.min(d);
        let dir = tempfile::tempdir().unwrap();
        let mut c = RegridConfig::new(files.clone(), dir.path().join(format!("out{i}")));
        c.depth = 10;
        c.convention = convention;
        c.markets = markets.clone();
        let t = Instant::now();
        let s = regrid(&c).expect("regrid");
        best = best.min(t.elapsed());
        last = Some(s);
    }
    let s = last.expect("at least one run");
    let fps = s.frames as f64 / best.as_secs_f64();
    let read_fps = read_frames as f64 / best_read.as_secs_f64();
    println!(
        "regrid {name}: {} files, {:.1} MB gzip, {} frames -> {} rows, {} markets; best of {runs}: {:.3} s = {:.0} frames/s ({:.1} MB/s of gzip), {:.0} rows/s; reading alone {:.0} frames/s (re-grid at {:.0}% of the read speed)",
        files.len(),
        bytes as f64 / 1e6,
        s.frames,
        s.rows,
        s.markets,
        best.as_secs_f64(),
        fps,
        bytes as f64 / 1e6 / best.as_secs_f64(),
        s.rows as f64 / best.as_secs_f64(),
        read_fps,
        100.0 * fps / read_fps
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let runs = env_or("REGRID_BENCH_RUNS", 3).max(1);
    let markets = env_or("REGRID_BENCH_MARKETS", 20) as usize;
    let seconds = env_or("REGRID_BENCH_SECONDS", 300) as i64;
    let only = std::env::var("REGRID_BENCH_ONLY").unwrap_or_default();
    if only != "real" {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("KXBENCH_synthetic.capture.jsonl.gz");
        let t = Instant::now();
        let frames = synthetic(&cap, markets, seconds, 88.0);
        eprintln!(
            "synthetic capture: {markets} markets x {seconds} s at 88 deltas/s: {frames} frames, written in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        bench(
            &format!("synthetic ({markets} markets x {seconds} s)"),
            vec![cap],
            None,
            NoPriceConvention::NoLeg,
            runs,
        );
    }
    if only == "synthetic" {
        return;
    }

    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/kalshi_kxbtc15m_2026-05");
    if !shared.is_dir() {
        println!("regrid real: SKIP ({} not found)", shared.display());
        return;
    }
    let files = pipeline::snapshot::resolve_glob(&format!(
        "{}/captures/*.capture.jsonl.gz",
        shared.display()
    ))
    .unwrap();
    bench(
        "real (May 2026 KXBTC15M sessions)",
        files,
        Some(shared.join("markets.jsonl")),
        NoPriceConvention::NoLeg,
        runs,
    );
}
