//! The underlying's price path (a BTC-like index) and the fair value of a YES contract.
//!
//! The path is a float series: it is the *underlying*, not money. Money (quotes, balances,
//! fees) is derived from it once, by rounding a probability onto the market's tick grid.

use std::collections::VecDeque;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A source of underlying prices. The engine asks for prices at (mostly) increasing times; a
/// path may forget prices older than the earliest time it will be asked again
/// ([`PricePath::forget_before`]).
pub trait PricePath: Send {
    /// The underlying price at `t_ms` (Unix ms). Defined for every `t_ms` at or after the
    /// path's origin; earlier times return the origin price.
    fn price_at(&mut self, t_ms: i64) -> f64;
    /// Volatility of the log price per √second, used for the fair value of YES.
    fn sigma_per_sqrt_s(&self) -> f64;
    /// The engine will never ask for a time before `t_ms` again.
    fn forget_before(&mut self, _t_ms: i64) {}
}

/// A seeded geometric random walk sampled every `step_ms`, linearly interpolated in between.
#[derive(Debug)]
pub struct RandomWalk {
    rng: ChaCha8Rng,
    origin_ms: i64,
    step_ms: i64,
    sigma: f64,
    /// Points `(index, price)`, contiguous indices; index `i` is at `origin + i × step`.
    points: VecDeque<(i64, f64)>,
}

impl RandomWalk {
    /// `sigma_per_sqrt_s`: BTC's ~50 % annual volatility is about 9e-5.
    pub fn new(
        seed: u64,
        origin_ms: i64,
        start_price: f64,
        sigma_per_sqrt_s: f64,
        step_ms: i64,
    ) -> RandomWalk {
        assert!(step_ms > 0, "random walk step must be positive");
        assert!(
            start_price.is_finite() && start_price > 0.0,
            "start price must be positive"
        );
        let mut points = VecDeque::new();
        points.push_back((0, start_price));
        RandomWalk {
            // A stream of its own, so the path never depends on how many orders were placed.
            rng: ChaCha8Rng::seed_from_u64(seed ^ PATH_STREAM),
            origin_ms,
            step_ms,
            sigma: sigma_per_sqrt_s,
            points,
        }
    }

    fn extend_to(&mut self, index: i64) {
        let step_s = self.step_ms as f64 / 1000.0;
        let sd = self.sigma * step_s.sqrt();
        while self.points.back().map(|p| p.0).unwrap_or(0) < index {
            let &(i, p) = self.points.back().expect("path has a point");
            let z = standard_normal(&mut self.rng);
            // Martingale in price: drift −σ²/2 in log space.
            let next = p * (sd * z - 0.5 * sd * sd).exp();
            self.points.push_back((i + 1, next));
        }
    }

    fn point(&mut self, index: i64) -> f64 {
        self.extend_to(index);
        let first = self.points.front().expect("path has a point").0;
        let k = (index.max(first) - first) as usize;
        self.points[k].1
    }
}

/// Mixed into the seed so the path's random stream differs from the engine's.
const PATH_STREAM: u64 = 0x9E37_79B9_7F4A_7C15;

impl PricePath for RandomWalk {
    fn price_at(&mut self, t_ms: i64) -> f64 {
        if t_ms <= self.origin_ms {
            return self.point(0);
        }
        let rel = t_ms - self.origin_ms;
        let i = rel / self.step_ms;
        let frac = (rel % self.step_ms) as f64 / self.step_ms as f64;
        let a = self.point(i);
        if frac == 0.0 {
            return a;
        }
        let b = self.point(i + 1);
        a + (b - a) * frac
    }

    fn sigma_per_sqrt_s(&self) -> f64 {
        self.sigma
    }

    fn forget_before(&mut self, t_ms: i64) {
        let keep_from = ((t_ms - self.origin_ms) / self.step_ms).max(0);
        while self.points.len() > 1 && self.points.front().map(|p| p.0 < keep_from) == Some(true) {
            self.points.pop_front();
        }
    }
}

/// Replays recorded 1-minute bars (e.g. `shared/data/btc_spot/*.csv`), shifted in time so the
/// first bar's close lands on `origin_ms`, linearly interpolated between closes, and looped
/// (scaled to join continuously) when the engine runs past the end.
#[derive(Debug, Clone)]
pub struct BarsPath {
    origin_ms: i64,
    bar_ms: i64,
    closes: Vec<f64>,
    sigma: f64,
}

/// Why a bars file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BarsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: fewer than 2 bars")]
    TooShort { path: String },
}

impl BarsPath {
    /// Reads a CSV with a header naming a `close` column (`open_time,open,high,low,close,…`).
    pub fn from_csv(path: &Path, origin_ms: i64) -> Result<BarsPath, BarsError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BarsError::Read {
            path: name.clone(),
            source,
        })?;
        BarsPath::parse_csv(&text, &name, origin_ms)
    }

    pub fn parse_csv(text: &str, name: &str, origin_ms: i64) -> Result<BarsPath, BarsError> {
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().ok_or_else(|| BarsError::TooShort {
            path: name.to_string(),
        })?;
        let col = header
            .split(',')
            .position(|h| h.trim().eq_ignore_ascii_case("close"))
            .ok_or_else(|| BarsError::Parse {
                path: name.to_string(),
                line: 1,
                reason: "header has no `close` column".into(),
            })?;
        let mut closes = Vec::new();
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let field = line.split(',').nth(col).ok_or_else(|| BarsError::Parse {
                path: name.to_string(),
                line: i + 1,
                reason: format!("missing column {}", col + 1),
            })?;
            let v: f64 = field.trim().parse().map_err(|_| BarsError::Parse {
                path: name.to_string(),
                line: i + 1,
                reason: format!("close {field:?} is not a number"),
            })?;
            if !(v.is_finite() && v > 0.0) {
                return Err(BarsError::Parse {
                    path: name.to_string(),
                    line: i + 1,
                    reason: format!("close {v} is not a positive price"),
                });
            }
            closes.push(v);
        }
        BarsPath::from_closes(closes, 60_000, origin_ms).ok_or_else(|| BarsError::TooShort {
            path: name.to_string(),
        })
    }

    /// From closes spaced `bar_ms` apart; `None` with fewer than 2.
    pub fn from_closes(closes: Vec<f64>, bar_ms: i64, origin_ms: i64) -> Option<BarsPath> {
        if closes.len() < 2 || bar_ms <= 0 {
            return None;
        }
        let n = (closes.len() - 1) as f64;
        let mean_sq: f64 = closes
            .windows(2)
            .map(|w| (w[1] / w[0]).ln().powi(2))
            .sum::<f64>()
            / n;
        let sigma = (mean_sq / (bar_ms as f64 / 1000.0)).sqrt();
        Some(BarsPath {
            origin_ms,
            bar_ms,
            closes,
            sigma,
        })
    }

    fn close(&self, index: i64) -> f64 {
        let n = (self.closes.len() - 1) as i64; // bars per loop
        let lap = index.div_euclid(n);
        let k = index.rem_euclid(n) as usize;
        // Each lap is scaled so it starts where the previous one ended.
        let growth = self.closes[n as usize] / self.closes[0];
        self.closes[k] * growth.powi(lap as i32)
    }

    pub fn len(&self) -> usize {
        self.closes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.closes.is_empty()
    }
}

impl PricePath for BarsPath {
    fn price_at(&mut self, t_ms: i64) -> f64 {
        let rel = (t_ms - self.origin_ms).max(0);
        let i = rel / self.bar_ms;
        let frac = (rel % self.bar_ms) as f64 / self.bar_ms as f64;
        let a = self.close(i);
        let b = self.close(i + 1);
        a + (b - a) * frac
    }

    fn sigma_per_sqrt_s(&self) -> f64 {
        self.sigma
    }
}

/// Box–Muller standard normal from a seeded generator.
pub fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Standard normal CDF Φ(x), via erfc (Numerical Recipes' Chebyshev fit, |rel err| < 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// P(YES) for "the underlying at close is at least `strike`": Φ(ln(S/K) / (σ√τ)), with τ the
/// seconds left. At or after the close it is 1 or 0.
pub fn fair_yes(spot: f64, strike: f64, sigma_per_sqrt_s: f64, seconds_left: f64) -> f64 {
    if seconds_left <= 0.0 || sigma_per_sqrt_s <= 0.0 {
        return if spot >= strike { 1.0 } else { 0.0 };
    }
    let sd = sigma_per_sqrt_s * seconds_left.sqrt();
    normal_cdf((spot / strike).ln() / sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-6);
        assert!((normal_cdf(-1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_cdf(3.0) - 0.998_650_102).abs() < 1e-6);
    }

    #[test]
    fn fair_value_monotone_and_limits() {
        let s = 9e-5;
        assert_eq!(fair_yes(101.0, 100.0, s, 0.0), 1.0);
        assert_eq!(fair_yes(100.0, 100.0, s, 0.0), 1.0, "ties go to YES");
        assert_eq!(fair_yes(99.0, 100.0, s, 0.0), 0.0);
        assert!((fair_yes(100.0, 100.0, s, 900.0) - 0.5).abs() < 1e-6);
        let a = fair_yes(100.1, 100.0, s, 900.0);
        let b = fair_yes(100.2, 100.0, s, 900.0);
        assert!(0.5 < a && a < b && b < 1.0);
    }

    #[test]
    fn random_walk_is_seeded_and_interpolates() {
        let mut a = RandomWalk::new(7, 1_000, 100_000.0, 9e-5, 1000);
        let mut b = RandomWalk::new(7, 1_000, 100_000.0, 9e-5, 1000);
        let xs: Vec<f64> = (0..50).map(|i| a.price_at(1_000 + i * 700)).collect();
        let ys: Vec<f64> = (0..50).map(|i| b.price_at(1_000 + i * 700)).collect();
        assert_eq!(xs, ys);
        assert_eq!(a.price_at(0), 100_000.0);
        let p1 = a.price_at(2_000);
        let p2 = a.price_at(3_000);
        let mid = a.price_at(2_500);
        assert!((mid - (p1 + p2) / 2.0).abs() < 1e-9);
        let mut c = RandomWalk::new(8, 1_000, 100_000.0, 9e-5, 1000);
        assert_ne!(c.price_at(30_000), a.price_at(30_000));
        // Forgetting keeps later points intact.
        let late = a.price_at(40_000);
        a.forget_before(35_000);
        assert_eq!(a.price_at(40_000), late);
    }

    #[test]
    fn bars_parse_interpolate_and_loop() {
        let csv = "open_time,open,high,low,close,volume\n0,1,1,1,100,5\n60000,1,1,1,110,5\n120000,1,1,1,121,5\n";
        let mut p = BarsPath::parse_csv(csv, "t.csv", 1_000_000).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.price_at(1_000_000), 100.0);
        assert!((p.price_at(1_030_000) - 105.0).abs() < 1e-9);
        assert_eq!(p.price_at(1_120_000), 121.0);
        // Next lap scaled by 1.21: continuous at the seam.
        assert!((p.price_at(1_180_000) - 133.1).abs() < 1e-9);
        assert!(p.sigma_per_sqrt_s() > 0.0);
        let err = BarsPath::parse_csv("a,b\n1,2\n", "x.csv", 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.csv:1") && err.contains("close"), "{err}");
        let err = BarsPath::parse_csv("close\n1\nabc\n", "y.csv", 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("y.csv:3"), "{err}");
    }

    #[test]
    fn real_btc_bars_when_shared_data_present() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/btc_spot/binance_btcusdt_1m_2026-02-21_28.csv");
        if !p.exists() {
            eprintln!("SKIP real_btc_bars: {} absent", p.display());
            return;
        }
        let mut bars = BarsPath::from_csv(&p, 0).unwrap();
        assert!(bars.len() > 7 * 1440 - 10);
        let s = bars.sigma_per_sqrt_s();
        assert!(s > 1e-5 && s < 1e-3, "sigma {s}");
        assert!(bars.price_at(3_600_000) > 1000.0);
    }
}
