//! Capped, jittered exponential backoff (shared by REST retries and WebSocket reconnects).
//!
//! Nominal delay for attempt `n` (0-based) is `min(max, initial × multiplier^n)`; the actual
//! delay is drawn uniformly from `[nominal/2, nominal]` ("equal jitter"), so many clients that
//! failed together do not retry together, yet no delay is shorter than half the schedule. A
//! seed makes the sequence reproducible in tests.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            multiplier: 2,
        }
    }
}

impl BackoffConfig {
    /// The un-jittered delay before retry number `attempt` (0-based).
    pub fn nominal(&self, attempt: u32) -> Duration {
        let mult = u64::from(self.multiplier.max(1));
        let mut d = self.initial;
        for _ in 0..attempt {
            d = d.saturating_mul(mult as u32);
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// A backoff schedule in progress.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    rng: StdRng,
}

impl Backoff {
    /// `seed: None` draws jitter from the OS.
    pub fn new(cfg: BackoffConfig, seed: Option<u64>) -> Backoff {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Backoff {
            cfg,
            attempt: 0,
            rng,
        }
    }

    /// The next delay; advances the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.cfg.nominal(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let n = nominal.as_nanos() as u64;
        if n < 2 {
            return nominal;
        }
        Duration::from_nanos(self.rng.gen_range(n / 2..=n))
    }

    /// Retries taken so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2,
        }
    }

    #[test]
    fn nominal_doubles_and_caps() {
        let c = cfg();
        let ms: Vec<u128> = (0..8).map(|a| c.nominal(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(c.nominal(10_000), Duration::from_secs(2), "no overflow");
    }

    #[test]
    fn jitter_within_half_to_full_and_deterministic() {
        let mut a = Backoff::new(cfg(), Some(7));
        let mut b = Backoff::new(cfg(), Some(7));
        let mut distinct = std::collections::BTreeSet::new();
        for i in 0..50 {
            let d = a.next_delay();
            assert_eq!(d, b.next_delay(), "same seed, same schedule");
            let nom = cfg().nominal(i);
            assert!(d >= nom / 2 && d <= nom, "{d:?} vs {nom:?}");
            distinct.insert(d);
        }
        assert!(distinct.len() > 10, "jitter actually varies");
        assert_eq!(a.attempt(), 50);
        a.reset();
        assert!(a.next_delay() <= Duration::from_millis(100));
    }
}
