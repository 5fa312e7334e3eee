//! Scores of the hidden fair value and of the recorded quoted mid against the realised
//! results: what makes a planted edge visible (or its absence).
//!
//! A market's outcome is known only at determination, so each market keeps running sums of
//! its snapshots' probabilities from which the Brier score and log loss follow for either
//! outcome; they are added to the totals once the market is determined.

/// Probabilities are clipped to `[EPS, 1 − EPS]` for the log loss (not for the Brier score).
pub const LOG_LOSS_EPS: f64 = 1e-4;

/// Running sums of one probability forecast over a market's snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Moments {
    sum: f64,
    sum_sq: f64,
    sum_ln_p: f64,
    sum_ln_q: f64,
}

impl Moments {
    fn add(&mut self, p: f64) {
        let c = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
        self.sum += p;
        self.sum_sq += p * p;
        self.sum_ln_p += c.ln();
        self.sum_ln_q += (1.0 - c).ln();
    }

    /// Σ (p − y)² over `n` forecasts.
    fn brier_sum(&self, n: f64, yes: bool) -> f64 {
        if yes {
            // Σ (1 − p)² = n − 2 Σ p + Σ p²; never negative but for rounding.
            (n - 2.0 * self.sum + self.sum_sq).max(0.0)
        } else {
            self.sum_sq
        }
    }

    /// Σ −ln P(outcome).
    fn log_loss_sum(&self, yes: bool) -> f64 {
        if yes {
            -self.sum_ln_p
        } else {
            -self.sum_ln_q
        }
    }
}

/// One market's snapshots (or one horizon's single snapshot) before its result is known.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct MarketAcc {
    n: u64,
    fair: Moments,
    mid: Moments,
    abs_gap: f64,
}

impl MarketAcc {
    /// A scored snapshot: hidden fair value and quoted mid, both as P(YES).
    pub(crate) fn add(&mut self, fair: f64, mid: f64) {
        self.n += 1;
        self.fair.add(fair);
        self.mid.add(mid);
        self.abs_gap += (mid - fair).abs();
    }
}

/// Totals over determined markets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ScoreSums {
    n: u64,
    markets: u64,
    brier_fair: f64,
    brier_mid: f64,
    log_loss_fair: f64,
    log_loss_mid: f64,
    abs_gap: f64,
}

impl ScoreSums {
    /// Adds a determined market's snapshots.
    pub(crate) fn absorb(&mut self, acc: &MarketAcc, yes: bool) {
        if acc.n == 0 {
            return;
        }
        let n = acc.n as f64;
        self.n += acc.n;
        self.markets += 1;
        self.brier_fair += acc.fair.brier_sum(n, yes);
        self.brier_mid += acc.mid.brier_sum(n, yes);
        self.log_loss_fair += acc.fair.log_loss_sum(yes);
        self.log_loss_mid += acc.mid.log_loss_sum(yes);
        self.abs_gap += acc.abs_gap;
    }

    pub(crate) fn scores(&self) -> Scores {
        let d = (self.n as f64).max(1.0);
        let avg = |s: f64| if self.n == 0 { f64::NAN } else { s / d };
        Scores {
            n: self.n,
            markets: self.markets,
            brier_fair: avg(self.brier_fair),
            brier_mid: avg(self.brier_mid),
            log_loss_fair: avg(self.log_loss_fair),
            log_loss_mid: avg(self.log_loss_mid),
            mean_abs_gap: avg(self.abs_gap),
        }
    }
}

/// Forecast scores over a set of (market, snapshot) pairs whose book had both sides.
/// NaN when `n` is 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Scored (market, snapshot) pairs.
    pub n: u64,
    /// Markets contributing at least one pair.
    pub markets: u64,
    /// Mean (fair − y)², fair = the simulator's hidden P(YES).
    pub brier_fair: f64,
    /// Mean (mid − y)², mid = the recorded `yes_mid` as a probability.
    pub brier_mid: f64,
    /// Mean −ln P(outcome) of the fair value (clipped to [1e-4, 1 − 1e-4]).
    pub log_loss_fair: f64,
    /// Mean −ln P(outcome) of the mid (clipped likewise).
    pub log_loss_mid: f64,
    /// Mean |mid − fair| (probability units).
    pub mean_abs_gap: f64,
}

impl Scores {
    /// Brier(mid) − Brier(fair): how much worse the quoted mid forecasts than fair value.
    pub fn brier_gap(&self) -> f64 {
        self.brier_mid - self.brier_fair
    }
}

/// Scores at one time-to-close: each market's snapshot exactly `left_ms` before its close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HorizonScores {
    pub left_ms: i64,
    pub scores: Scores,
}

/// What shows the planted edge (or its absence) in a generated data set.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeStats {
    /// Every (market, snapshot) pair with a two-sided book.
    pub all: Scores,
    /// One snapshot per market at fixed times before the close.
    pub horizons: Vec<HorizonScores>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_direct_scores() {
        let pairs = [(0.9, 0.8), (0.7, 0.6), (0.2, 0.35), (0.99999, 0.999)];
        for yes in [true, false] {
            let y = if yes { 1.0 } else { 0.0 };
            let mut acc = MarketAcc::default();
            for (f, m) in pairs {
                acc.add(f, m);
            }
            let mut s = ScoreSums::default();
            s.absorb(&acc, yes);
            s.absorb(&MarketAcc::default(), yes);
            let sc = s.scores();
            assert_eq!((sc.n, sc.markets), (4, 1));
            let n = pairs.len() as f64;
            let bf: f64 = pairs.iter().map(|(f, _)| (f - y) * (f - y)).sum::<f64>() / n;
            let bm: f64 = pairs.iter().map(|(_, m)| (m - y) * (m - y)).sum::<f64>() / n;
            assert!((sc.brier_fair - bf).abs() < 1e-12, "{yes}");
            assert!((sc.brier_mid - bm).abs() < 1e-12, "{yes}");
            let ll = |p: f64| {
                let c = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
                -(if yes { c } else { 1.0 - c }).ln()
            };
            let lf: f64 = pairs.iter().map(|(f, _)| ll(*f)).sum::<f64>() / n;
            assert!((sc.log_loss_fair - lf).abs() < 1e-12);
            let gap: f64 = pairs.iter().map(|(f, m)| (m - f).abs()).sum::<f64>() / n;
            assert!((sc.mean_abs_gap - gap).abs() < 1e-12);
            assert!((sc.brier_gap() - (bm - bf)).abs() < 1e-12);
        }
        assert!(ScoreSums::default().scores().brier_fair.is_nan());
    }
}
