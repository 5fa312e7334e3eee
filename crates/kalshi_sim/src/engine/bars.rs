//! Recorded OHLC bars (e.g. BTC 1-minute bars, `shared/data/btc_spot/*.csv`) replayed as the
//! underlying's [`PricePath`], with a seeded Brownian bridge between the closes.
//!
//! [`Bars`] reads and checks a CSV with the header `open_time,open,high,low,close[,volume]`
//! (columns found by name, any order, extra columns ignored). `open_time` may be epoch
//! milliseconds, epoch seconds, RFC 3339 (`2023-03-01 00:00:00+00:00`) or a naive UTC time
//! (`2026-02-21 14:26:00`). Every malformed line is an error naming the file and line.
//!
//! [`BarsBridge`] turns the bars into a path:
//! - **time-shifted**: the first bar's open lands on the path's origin (the engine's start),
//!   every later bar keeps its offset from the first (gaps in the recording stay gaps);
//! - **knots**: the path passes exactly through the first open and through every bar's close,
//!   at the bar's end;
//! - **between knots**: linear in log price, plus (with [`Interpolation::BrownianBridge`]) a
//!   Brownian bridge in log price sampled every `step_ms` and linearly interpolated between
//!   samples. A bar's bridge uses that bar's own volatility, estimated from its high and low
//!   (Parkinson: σ²·T = ln(H/L)² / (4 ln 2)), so quiet minutes stay quiet; a segment that spans
//!   missing bars uses the file's volatility. The bridge of segment `g` is drawn from a
//!   generator seeded by `(seed, g)` alone, so a price never depends on which other times
//!   were asked for, or in which order;
//! - **looped**: past the last bar the recording repeats, each lap scaled to start where the
//!   previous one ended (fresh bridge noise every lap);
//! - **σ for fair value**: the close-to-close volatility of the file, Σ r² / Σ Δt over
//!   consecutive knots (log returns r, Δt in seconds). The bridge adds no variance at the
//!   knots, so this σ also describes the path at horizons of a bar or more.

use std::path::Path;

use chrono::{DateTime, NaiveDateTime};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::path::{standard_normal, PricePath};

/// One OHLC bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Start of the bar, Unix ms (UTC).
    pub open_time_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// `None` when the file has no `volume` column.
    pub volume: Option<f64>,
}

/// Why a bars file could not be used. Every variant names the file; line errors name the
/// 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum BarsCsvError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: {bars} bar(s); at least 2 are needed")]
    TooShort { path: String, bars: usize },
}

/// A checked series of bars, strictly increasing in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    name: String,
    bars: Vec<Bar>,
    bar_ms: i64,
}

const REQUIRED: [&str; 5] = ["open_time", "open", "high", "low", "close"];

impl Bars {
    /// Reads and checks a bars CSV file.
    pub fn from_csv(path: &Path) -> Result<Bars, BarsCsvError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BarsCsvError::Read {
            path: name.clone(),
            source,
        })?;
        Bars::parse_csv(&text, &name)
    }

    /// Parses bars CSV text; `name` names the origin in errors.
    pub fn parse_csv(text: &str, name: &str) -> Result<Bars, BarsCsvError> {
        let err = |line: usize, reason: String| BarsCsvError::Line {
            path: name.to_string(),
            line,
            reason,
        };
        let mut lines = text.lines().enumerate();
        let header = loop {
            match lines.next() {
                Some((_, l)) if l.trim().is_empty() => continue,
                Some((i, l)) => break (i + 1, l),
                None => {
                    return Err(BarsCsvError::TooShort {
                        path: name.to_string(),
                        bars: 0,
                    })
                }
            }
        };
        let cols: Vec<String> = header
            .1
            .trim_start_matches('\u{feff}')
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        let find = |want: &str| cols.iter().position(|c| c == want);
        let mut idx = [0usize; 5];
        for (k, want) in REQUIRED.iter().enumerate() {
            idx[k] = find(want).ok_or_else(|| {
                err(
                    header.0,
                    format!(
                        "header has no `{want}` column (expected {}, got {:?})",
                        "open_time,open,high,low,close[,volume]", header.1
                    ),
                )
            })?;
        }
        let vol_col = find("volume");
        let mut bars: Vec<Bar> = Vec::new();
        let mut fields: Vec<&str> = Vec::with_capacity(cols.len());
        for (i, line) in lines {
            let ln = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            fields.clear();
            fields.extend(line.split(',').map(str::trim));
            if fields.len() != cols.len() {
                return Err(err(
                    ln,
                    format!("{} field(s), the header has {}", fields.len(), cols.len()),
                ));
            }
            let open_time_ms = parse_time(fields[idx[0]])
                .ok_or_else(|| err(ln, format!("open_time {:?} is not a time", fields[idx[0]])))?;
            let mut v = [0f64; 4];
            for (k, col) in ["open", "high", "low", "close"].iter().enumerate() {
                let s = fields[idx[k + 1]];
                let x: f64 = s
                    .parse()
                    .map_err(|_| err(ln, format!("{col} {s:?} is not a number")))?;
                if !(x.is_finite() && x > 0.0) {
                    return Err(err(ln, format!("{col} {s:?} is not a positive price")));
                }
                v[k] = x;
            }
            let [open, high, low, close] = v;
            if low > high || low > open.min(close) || high < open.max(close) {
                return Err(err(
                    ln,
                    format!(
                        "inconsistent bar: open {open} high {high} low {low} close {close} \
                         (need low ≤ open, close ≤ high)"
                    ),
                ));
            }
            let volume = match vol_col {
                Some(c) => {
                    let s = fields[c];
                    let x: f64 = s
                        .parse()
                        .map_err(|_| err(ln, format!("volume {s:?} is not a number")))?;
                    if !(x.is_finite() && x >= 0.0) {
                        return Err(err(ln, format!("volume {s:?} is negative or not finite")));
                    }
                    Some(x)
                }
                None => None,
            };
            if let Some(prev) = bars.last() {
                if open_time_ms <= prev.open_time_ms {
                    return Err(err(
                        ln,
                        format!(
                            "open_time {:?} is not after the previous bar's",
                            fields[idx[0]]
                        ),
                    ));
                }
            }
            bars.push(Bar {
                open_time_ms,
                open,
                high,
                low,
                close,
                volume,
            });
        }
        if bars.len() < 2 {
            return Err(BarsCsvError::TooShort {
                path: name.to_string(),
                bars: bars.len(),
            });
        }
        // The bar length is the shortest step between bars; longer steps are gaps.
        let bar_ms = bars
            .windows(2)
            .map(|w| w[1].open_time_ms - w[0].open_time_ms)
            .min()
            .expect("at least 2 bars");
        Ok(Bars {
            name: name.to_string(),
            bars,
            bar_ms,
        })
    }

    /// The file (or origin) the bars came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bars(&self) -> &[Bar] {
        &self.bars
    }

    pub fn len(&self) -> usize {
        self.bars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// Length of one bar (the shortest step between consecutive open times), ms.
    pub fn bar_ms(&self) -> i64 {
        self.bar_ms
    }

    /// From the first bar's open to the last bar's close, ms.
    pub fn span_ms(&self) -> i64 {
        self.bars[self.bars.len() - 1].open_time_ms + self.bar_ms - self.bars[0].open_time_ms
    }

    /// Bars missing between the first and the last (steps longer than one bar).
    pub fn missing_bars(&self) -> i64 {
        self.bars
            .windows(2)
            .map(|w| (w[1].open_time_ms - w[0].open_time_ms) / self.bar_ms - 1)
            .sum()
    }

    /// Knots `(ms after the first open, price)`: the first open, then every close at its
    /// bar's end.
    fn knots(&self) -> Vec<(i64, f64)> {
        let t0 = self.bars[0].open_time_ms;
        let mut k = Vec::with_capacity(self.bars.len() + 1);
        k.push((0, self.bars[0].open));
        for b in &self.bars {
            k.push((b.open_time_ms - t0 + self.bar_ms, b.close));
        }
        k
    }

    /// Close-to-close volatility of the log price per √second: Σ r² / Σ Δt over consecutive
    /// knots (first open, then each close).
    pub fn sigma_per_sqrt_s(&self) -> f64 {
        let k = self.knots();
        let (mut sum_r2, mut sum_dt) = (0.0, 0.0);
        for w in k.windows(2) {
            let r = (w[1].1 / w[0].1).ln();
            sum_r2 += r * r;
            sum_dt += (w[1].0 - w[0].0) as f64 / 1000.0;
        }
        (sum_r2 / sum_dt).sqrt()
    }
}

/// Epoch ms (≥ 10¹¹), epoch seconds, RFC 3339, or a naive UTC `YYYY-MM-DD[ T]HH:MM:SS[.f]`.
fn parse_time(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return Some(if n >= 100_000_000_000 {
            n
        } else {
            n.checked_mul(1000)?
        });
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    None
}

/// How [`BarsBridge`] fills the time between knots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Interpolation {
    /// Straight lines in log price between knots.
    Linear,
    /// Straight lines plus a seeded Brownian bridge sampled every `step_ms`.
    BrownianBridge { seed: u64, step_ms: i64 },
}

/// Mixed into the seed so the bridge's random stream differs from the engine's and the walk's.
const BRIDGE_STREAM: u64 = 0xB5AD_4ECE_DA1C_E2A9;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Recorded bars as a [`PricePath`]: see the module docs.
#[derive(Debug, Clone)]
pub struct BarsBridge {
    origin_ms: i64,
    /// Knot times, ms after the origin: `t[0] = 0`, strictly increasing.
    t: Vec<i64>,
    /// Knot log prices.
    lp: Vec<f64>,
    /// Bridge volatility per √s of each segment (`t[k]..t[k+1]`).
    seg_sigma: Vec<f64>,
    /// `t[last]`: one lap.
    span_ms: i64,
    /// Log growth of one lap (last close / first open).
    lap_growth: f64,
    sigma: f64,
    interp: Interpolation,
    /// Two most recent segments' samples: `(global segment, log-price offsets from the
    /// straight line at each sample, sample count)`.
    cache: [(i64, Vec<f64>); 2],
    cache_next: usize,
}

impl BarsBridge {
    /// The path of `bars` with its first open at `origin_ms`.
    pub fn new(bars: &Bars, origin_ms: i64, interp: Interpolation) -> BarsBridge {
        if let Interpolation::BrownianBridge { step_ms, .. } = interp {
            assert!(step_ms > 0, "bridge step must be positive");
        }
        let knots = bars.knots();
        let sigma = bars.sigma_per_sqrt_s();
        let t: Vec<i64> = knots.iter().map(|k| k.0).collect();
        let lp: Vec<f64> = knots.iter().map(|k| k.1.ln()).collect();
        let mut seg_sigma = Vec::with_capacity(t.len() - 1);
        for k in 0..t.len() - 1 {
            // Segment k ends at the close of bar k.
            let b = &bars.bars[k];
            let dt_s = (t[k + 1] - t[k]) as f64 / 1000.0;
            let own = t[k + 1] - t[k] == bars.bar_ms;
            let s = if own {
                let r = (b.high / b.low).ln();
                (r * r / (4.0 * std::f64::consts::LN_2) / dt_s).sqrt()
            } else {
                sigma
            };
            seg_sigma.push(s);
        }
        let span_ms = *t.last().expect("knots");
        let lap_growth = lp[lp.len() - 1] - lp[0];
        BarsBridge {
            origin_ms,
            t,
            lp,
            seg_sigma,
            span_ms,
            lap_growth,
            sigma,
            interp,
            cache: [(i64::MIN, Vec::new()), (i64::MIN, Vec::new())],
            cache_next: 0,
        }
    }

    /// Reads `path` and builds the path (see [`Bars::from_csv`]).
    pub fn from_csv(
        path: &Path,
        origin_ms: i64,
        interp: Interpolation,
    ) -> Result<BarsBridge, BarsCsvError> {
        Ok(BarsBridge::new(&Bars::from_csv(path)?, origin_ms, interp))
    }

    /// Segments per lap.
    fn segments(&self) -> i64 {
        (self.t.len() - 1) as i64
    }

    /// Log price at `rel` ms after the origin (≥ 0).
    fn log_price(&mut self, rel: i64) -> f64 {
        let lap = rel.div_euclid(self.span_ms);
        let r = rel.rem_euclid(self.span_ms);
        // The segment k with t[k] ≤ r < t[k+1].
        let k = match self.t.binary_search(&r) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let base = self.lap_growth * lap as f64;
        let (t0, t1) = (self.t[k], self.t[k + 1]);
        let (a, b) = (self.lp[k], self.lp[k + 1]);
        let frac = (r - t0) as f64 / (t1 - t0) as f64;
        let line = a + (b - a) * frac;
        let Interpolation::BrownianBridge { seed, step_ms } = self.interp else {
            return base + line;
        };
        if r == t0 {
            return base + line;
        }
        let g = lap * self.segments() + k as i64;
        let sigma = self.seg_sigma[k];
        let len = t1 - t0;
        let n = ((len + step_ms / 2) / step_ms).max(1);
        let slot = self.bridge(g, n, len, sigma, seed);
        let samples = &self.cache[slot].1;
        // Sample j sits at j·len/n; offsets are 0 at both ends.
        let x = (r - t0) as f64 * n as f64 / len as f64;
        let j = (x.floor() as usize).min(n as usize - 1);
        let w = x - j as f64;
        let off = samples[j] + (samples[j + 1] - samples[j]) * w;
        base + line + off
    }

    /// Ensures the bridge offsets of global segment `g` are cached; returns the cache slot.
    fn bridge(&mut self, g: i64, n: i64, len_ms: i64, sigma: f64, seed: u64) -> usize {
        if let Some(i) = self.cache.iter().position(|c| c.0 == g) {
            return i;
        }
        let slot = self.cache_next;
        self.cache_next = 1 - slot;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ BRIDGE_STREAM) ^ mix(g as u64));
        let (_, buf) = &mut self.cache[slot];
        buf.clear();
        let dt_s = len_ms as f64 / 1000.0 / n as f64;
        let sd = sigma * dt_s.sqrt();
        let mut w = 0.0;
        buf.push(0.0);
        for _ in 0..n {
            w += sd * standard_normal(&mut rng);
            buf.push(w);
        }
        // Pin the end: B(t) = W(t) − (t/T)·W(T).
        let end = w;
        for (j, v) in buf.iter_mut().enumerate() {
            *v -= end * j as f64 / n as f64;
        }
        self.cache[slot].0 = g;
        slot
    }
}

impl PricePath for BarsBridge {
    fn price_at(&mut self, t_ms: i64) -> f64 {
        let rel = (t_ms - self.origin_ms).max(0);
        self.log_price(rel).exp()
    }

    fn sigma_per_sqrt_s(&self) -> f64 {
        self.sigma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = include_str!("../../tests/fixtures/btc_bars_small.csv");

    fn bridge(seed: u64) -> Interpolation {
        Interpolation::BrownianBridge { seed, step_ms: 100 }
    }

    #[test]
    fn parses_the_fixture() {
        let b = Bars::parse_csv(CSV, "fixture.csv").unwrap();
        assert_eq!(b.len(), 30);
        assert_eq!(b.bar_ms(), 60_000);
        assert_eq!(b.span_ms(), 30 * 60_000);
        assert_eq!(b.missing_bars(), 0);
        let first = b.bars()[0];
        assert_eq!(first.open_time_ms, 1_767_225_600_000); // 2026-01-01T00:00:00Z
        assert_eq!(first.open, 95000.0);
        assert_eq!(first.volume, Some(16.11433));
        assert_eq!(b.bars()[29].close, 94369.27);
        let s = b.sigma_per_sqrt_s();
        assert!(s > 1e-5 && s < 1e-3, "sigma {s}");
    }

    #[test]
    fn time_formats() {
        assert_eq!(parse_time("1771684000000"), Some(1_771_684_000_000));
        assert_eq!(parse_time("1771684000"), Some(1_771_684_000_000));
        assert_eq!(
            parse_time("2026-02-21 14:26:00"),
            Some(parse_time("2026-02-21T14:26:00Z").unwrap())
        );
        assert_eq!(
            parse_time("2023-03-01 00:00:00+00:00"),
            parse_time("2023-03-01T00:00:00Z")
        );
        assert_eq!(
            parse_time("2023-03-01T01:00:00+01:00"),
            parse_time("2023-03-01T00:00:00Z")
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn malformed_csv_names_file_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "open_time,open,high,low\n0,1,1,1\n",
                "b.csv:1: header has no `close` column",
            ),
            (
                "open_time,open,high,low,close\n0,1,1,1,1\n60000,1,1,1\n",
                "b.csv:3: 4 field(s), the header has 5",
            ),
            (
                "open_time,open,high,low,close\n0,1,1,1,1\n\n60000,1,1,1,x\n",
                "b.csv:4: close \"x\" is not a number",
            ),
            (
                "open_time,open,high,low,close\n0,1,1,1,1\nsoon,1,1,1,1\n",
                "b.csv:3: open_time \"soon\" is not a time",
            ),
            (
                "open_time,open,high,low,close\n0,1,1,1,1\n60000,1,1,1,-2\n",
                "b.csv:3: close \"-2\" is not a positive price",
            ),
            (
                "open_time,open,high,low,close\n0,1,1,1,1\n60000,1,1.5,0.9,2\n",
                "b.csv:3: inconsistent bar",
            ),
            (
                "open_time,open,high,low,close\n60000,1,1,1,1\n60000,1,1,1,1\n",
                "b.csv:3: open_time \"60000\" is not after the previous bar's",
            ),
            (
                "open_time,open,high,low,close,volume\n0,1,1,1,1,5\n60000,1,1,1,1,-1\n",
                "b.csv:3: volume \"-1\" is negative or not finite",
            ),
            (
                "open_time,open,high,low,close\n0,1,1,1,1\n",
                "b.csv: 1 bar(s)",
            ),
            ("", "b.csv: 0 bar(s)"),
        ];
        for (text, want) in cases {
            let e = Bars::parse_csv(text, "b.csv").unwrap_err().to_string();
            assert!(e.starts_with(want), "got {e:?}, want {want:?}");
        }
        let e = Bars::from_csv(Path::new("/nonexistent/bars.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/bars.csv: cannot read"), "{e}");
    }

    #[test]
    fn linear_passes_through_knots_shifted_to_origin() {
        let bars = Bars::parse_csv(CSV, "f").unwrap();
        let origin = 1_790_000_000_000;
        let mut p = BarsBridge::new(&bars, origin, Interpolation::Linear);
        let close = |i: usize| bars.bars()[i].close;
        assert!((p.price_at(origin) - bars.bars()[0].open).abs() < 1e-6);
        assert!((p.price_at(origin - 5_000) - bars.bars()[0].open).abs() < 1e-6);
        for i in [0usize, 7, 29] {
            let at = origin + (i as i64 + 1) * 60_000;
            assert!((p.price_at(at) - close(i)).abs() < 1e-6, "bar {i}");
        }
        // Halfway between two closes: geometric mean (linear in log price).
        let mid = p.price_at(origin + 60_000 + 30_000);
        assert!((mid - (close(0) * close(1)).sqrt()).abs() < 1e-6);
        // Second lap: scaled by last close / first open, continuous at the seam.
        let growth = close(29) / bars.bars()[0].open;
        let lap = 30 * 60_000;
        assert!((p.price_at(origin + lap) - close(29)).abs() < 1e-6);
        assert!((p.price_at(origin + lap + 60_000) - close(0) * growth).abs() < 1e-6);
        assert_eq!(p.sigma_per_sqrt_s(), bars.sigma_per_sqrt_s());
    }

    #[test]
    fn bridge_is_seeded_pinned_and_order_independent() {
        let bars = Bars::parse_csv(CSV, "f").unwrap();
        let origin = 1_000_000;
        let mut a = BarsBridge::new(&bars, origin, bridge(7));
        let mut b = BarsBridge::new(&bars, origin, bridge(7));
        let times: Vec<i64> = (0..4000).map(|i| origin + i * 700).collect();
        let xs: Vec<f64> = times.iter().map(|t| a.price_at(*t)).collect();
        // Asked backwards: the same prices.
        let mut ys: Vec<f64> = times.iter().rev().map(|t| b.price_at(*t)).collect();
        ys.reverse();
        assert_eq!(xs, ys);
        // Knots are exact.
        for i in 0..30usize {
            let at = origin + (i as i64 + 1) * 60_000;
            assert!((a.price_at(at) - bars.bars()[i].close).abs() < 1e-6);
        }
        // It actually moves between knots, and stays near the bar's range.
        let mut lin = BarsBridge::new(&bars, origin, Interpolation::Linear);
        let mut max_dev: f64 = 0.0;
        for i in 0..30i64 {
            let bar = bars.bars()[i as usize];
            for s in 1..60 {
                let t = origin + i * 60_000 + s * 1000;
                let p = a.price_at(t);
                max_dev = max_dev.max((p - lin.price_at(t)).abs());
                let pad = 3.0 * (bar.high - bar.low) + 1.0;
                assert!(
                    p > bar.low - pad && p < bar.high + pad,
                    "bar {i} s {s}: {p}"
                );
            }
        }
        assert!(
            max_dev > 1.0,
            "bridge should wiggle, max deviation {max_dev}"
        );
        // Another seed, other wiggles.
        let mut c = BarsBridge::new(&bars, origin, bridge(8));
        assert_ne!(c.price_at(origin + 90_500), a.price_at(origin + 90_500));
        // A flat bar (high = low) is a straight line.
        // Epoch seconds.
        let flat = "open_time,open,high,low,close\n0,100,100,100,100\n60,100,101,99,101\n";
        let fb = Bars::parse_csv(flat, "flat").unwrap();
        let mut f = BarsBridge::new(&fb, 0, bridge(1));
        assert!((f.price_at(30_000) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn bridge_increments_match_bar_volatility() {
        // Many identical bars: the realised variance of 1 s increments inside the bars
        // should be about the Parkinson variance of the bar.
        let mut text = String::from("open_time,open,high,low,close\n");
        for i in 0..400 {
            text.push_str(&format!(
                "{},100,100.2,99.8,100\n",
                1_767_225_600_000i64 + i * 60_000
            ));
        }
        let bars = Bars::parse_csv(&text, "synthetic").unwrap();
        assert_eq!(bars.bar_ms(), 60_000);
        let mut p = BarsBridge::new(&bars, 0, bridge(3));
        let mut sum = 0.0;
        let mut n = 0;
        for i in 0..400i64 {
            for s in 0..60 {
                let a = p.price_at(i * 60_000 + s * 1000).ln();
                let b = p.price_at(i * 60_000 + (s + 1) * 1000).ln();
                sum += (b - a).powi(2);
                n += 1;
            }
        }
        let r = (100.2f64 / 99.8).ln();
        let want = r * r / (4.0 * std::f64::consts::LN_2) / 60.0;
        // A bridge's increments have variance σ²·dt·(1 − dt/T) on average.
        let got = sum / n as f64 / (1.0 - 1.0 / 60.0);
        assert!((got / want - 1.0).abs() < 0.05, "got {got}, want {want}");
    }

    #[test]
    fn gaps_keep_their_time_and_use_file_sigma() {
        // Epoch seconds; bars 2, 3 and 4 are missing.
        let text = "open_time,open,high,low,close\n0,100,100,100,100\n60,100,100,100,100\n300,100,102.5,99,102\n";
        let bars = Bars::parse_csv(text, "gap").unwrap();
        assert_eq!(bars.missing_bars(), 3);
        assert_eq!(bars.span_ms(), 360_000);
        let mut p = BarsBridge::new(&bars, 10_000, Interpolation::Linear);
        // Knots: 0 → 100, 60 s → 100, 120 s → 100, 360 s → 102.
        assert!((p.price_at(10_000 + 120_000) - 100.0).abs() < 1e-9);
        assert!((p.price_at(10_000 + 360_000) - 102.0).abs() < 1e-9);
        let q = BarsBridge::new(&bars, 10_000, bridge(1));
        assert_eq!(q.seg_sigma[2], q.sigma);
        assert_eq!(q.seg_sigma[1], 0.0);
    }

    #[test]
    fn real_btc_bars_when_shared_data_present() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/btc_spot/binance_btcusdt_1m_2026-02-21_28.csv");
        if !p.exists() {
            eprintln!(
                "SKIP real_btc_bars_when_shared_data_present: {} absent",
                p.display()
            );
            return;
        }
        let bars = Bars::from_csv(&p).unwrap();
        assert_eq!(bars.len(), 7 * 1440);
        assert_eq!(bars.bar_ms(), 60_000);
        assert_eq!(bars.missing_bars(), 0);
        let s = bars.sigma_per_sqrt_s();
        assert!(s > 5e-5 && s < 2e-4, "sigma {s}");
        let mut path = BarsBridge::new(&bars, 0, bridge(1));
        // A day in, the price is still BTC-like and the knots hold.
        let i = 1440usize;
        let at = (i as i64 + 1) * 60_000;
        assert!((path.price_at(at) - bars.bars()[i].close).abs() < 1e-6);
        assert!(path.price_at(at + 30_000) > 10_000.0);
    }
}
