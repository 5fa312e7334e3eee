//! Scoring probabilities against outcomes, shared by training (`metrics.json`) and evaluation
//! (the report): Brier score, log loss, AUC, reliability bins with the expected calibration
//! error, and a seeded bootstrap interval of a mean over groups (markets).
//!
//! Inputs are probabilities `p` in [0, 1] and outcomes `y` in {0, 1}, as equal-length slices.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Probabilities are clipped to `[EPS, 1 − EPS]` in the log loss.
pub const EPS: f64 = 1e-6;

fn check(p: &[f64], y: &[f64]) {
    assert_eq!(
        p.len(),
        y.len(),
        "metrics: {} predictions for {} outcomes",
        p.len(),
        y.len()
    );
}

/// Mean squared error of the probabilities (NaN when empty).
pub fn brier(p: &[f64], y: &[f64]) -> f64 {
    check(p, y);
    mean(p.iter().zip(y).map(|(p, y)| (p - y) * (p - y)), p.len())
}

/// Mean negative log likelihood, probabilities clipped to `[EPS, 1 − EPS]` (NaN when empty).
pub fn log_loss(p: &[f64], y: &[f64]) -> f64 {
    check(p, y);
    mean(
        p.iter().zip(y).map(|(p, y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        }),
        p.len(),
    )
}

fn mean(it: impl Iterator<Item = f64>, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    it.sum::<f64>() / n as f64
}

/// Area under the ROC curve (ties count half); `None` when only one class is present.
pub fn auc(p: &[f64], y: &[f64]) -> Option<f64> {
    check(p, y);
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let n_pos = y.iter().filter(|&&v| v > 0.5).count();
    let n_neg = y.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Mann–Whitney U with average ranks for ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if y[k] > 0.5 {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// One bin of a reliability diagram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    pub n: u64,
    /// Mean predicted probability in the bin (NaN when empty).
    pub mean_pred: f64,
    /// Share of positive outcomes in the bin (NaN when empty).
    pub frac_pos: f64,
}

/// `bins` equal-width bins over [0, 1] and the expected calibration error
/// (Σ n_b / n × |mean_pred_b − frac_pos_b|; NaN when empty).
pub fn reliability(p: &[f64], y: &[f64], bins: usize) -> (Vec<ReliabilityBin>, f64) {
    check(p, y);
    let bins = bins.max(1);
    let mut n = vec![0u64; bins];
    let mut sp = vec![0f64; bins];
    let mut sy = vec![0f64; bins];
    for (&pi, &yi) in p.iter().zip(y) {
        let b = ((pi.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        n[b] += 1;
        sp[b] += pi;
        sy[b] += yi;
    }
    let total = p.len() as f64;
    let mut ece = 0.0;
    let out = (0..bins)
        .map(|b| {
            let (mean_pred, frac_pos) = if n[b] == 0 {
                (f64::NAN, f64::NAN)
            } else {
                (sp[b] / n[b] as f64, sy[b] / n[b] as f64)
            };
            if n[b] > 0 {
                ece += n[b] as f64 / total * (mean_pred - frac_pos).abs();
            }
            ReliabilityBin {
                lo: b as f64 / bins as f64,
                hi: (b + 1) as f64 / bins as f64,
                n: n[b],
                mean_pred,
                frac_pos,
            }
        })
        .collect();
    (out, if p.is_empty() { f64::NAN } else { ece })
}

/// A mean with its bootstrap 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    /// Number of groups.
    pub n: usize,
}

impl MeanCi {
    /// The interval lies strictly below zero.
    pub fn below_zero(&self) -> bool {
        self.hi < 0.0
    }
    /// The interval lies strictly above zero.
    pub fn above_zero(&self) -> bool {
        self.lo > 0.0
    }
}

/// Bootstrap (percentile, 2.5% and 97.5%) interval of the mean of per-group values: the groups
/// (e.g. one value per market) are resampled with replacement `resamples` times with a
/// ChaCha RNG seeded by `seed`. Empty input gives NaNs; one group gives a zero-width interval.
pub fn bootstrap_mean_ci(values: &[f64], resamples: usize, seed: u64) -> MeanCi {
    let n = values.len();
    if n == 0 {
        return MeanCi {
            mean: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
            n,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| values[rng.gen_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let q = |f: f64| means[((f * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    MeanCi {
        mean,
        lo: q(0.025),
        hi: q(0.975),
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computed_values() {
        let p = [0.9, 0.2, 0.6, 0.4];
        let y = [1.0, 0.0, 0.0, 1.0];
        assert!((brier(&p, &y) - (0.01 + 0.04 + 0.36 + 0.36) / 4.0).abs() < 1e-12);
        let ll = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.4f64.ln()) / 4.0;
        assert!((log_loss(&p, &y) - ll).abs() < 1e-12);
        // Pairs (pos, neg): (0.9,0.2) (0.9,0.6) (0.4,0.2) win, (0.4,0.6) loses: 3/4.
        assert_eq!(auc(&p, &y), Some(0.75));
        assert_eq!(auc(&[0.5, 0.5], &[1.0, 0.0]), Some(0.5));
        assert_eq!(auc(&[0.1, 0.2], &[1.0, 1.0]), None);
        assert!(brier(&[], &[]).is_nan());
    }

    #[test]
    fn reliability_bins_and_ece() {
        let p = [0.05, 0.15, 0.95, 0.95];
        let y = [0.0, 1.0, 1.0, 1.0];
        let (bins, ece) = reliability(&p, &y, 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[0].n, 1);
        assert_eq!(bins[9].n, 2);
        assert!(bins[5].mean_pred.is_nan());
        let want = 0.25 * 0.05 + 0.25 * 0.85 + 0.5 * 0.05;
        assert!((ece - want).abs() < 1e-12, "{ece}");
    }

    #[test]
    fn bootstrap_is_seeded_and_covers_the_mean() {
        let v: Vec<f64> = (0..200).map(|i| (i % 7) as f64 - 3.0).collect();
        let a = bootstrap_mean_ci(&v, 2000, 1);
        assert_eq!(a, bootstrap_mean_ci(&v, 2000, 1));
        assert!(a.lo < a.mean && a.mean < a.hi);
        assert!(!a.above_zero() && !a.below_zero());
        let shifted: Vec<f64> = v.iter().map(|x| x + 1.0).collect();
        assert!(bootstrap_mean_ci(&shifted, 2000, 1).above_zero());
        let one = bootstrap_mean_ci(&[2.5], 100, 0);
        assert_eq!((one.lo, one.hi), (2.5, 2.5));
    }
}
