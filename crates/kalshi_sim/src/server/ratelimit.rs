//! Token buckets per API key (API.md §6.1): a read and a write bucket, refilled continuously
//! at the tier's per-second budget; every request costs tokens (default 10).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Kalshi's usage tiers (token budgets per second since 2026-04-23).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Basic,
    Advanced,
    Premier,
    Paragon,
    Prime,
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Tier, String> {
        match s.to_ascii_lowercase().as_str() {
            "basic" => Ok(Tier::Basic),
            "advanced" => Ok(Tier::Advanced),
            "premier" => Ok(Tier::Premier),
            "paragon" => Ok(Tier::Paragon),
            "prime" => Ok(Tier::Prime),
            other => Err(format!(
                "unknown tier {other:?} (basic, advanced, premier, paragon, prime)"
            )),
        }
    }
}

/// Bucket sizes and refill rates in tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub read_per_s: f64,
    pub read_capacity: f64,
    pub write_per_s: f64,
    pub write_capacity: f64,
}

impl RateLimitConfig {
    /// A tier's budgets: read capacity = 1 s of budget, write = 2 s (Basic: 1 s).
    pub fn tier(t: Tier) -> RateLimitConfig {
        let (read, write) = match t {
            Tier::Basic => (200.0, 100.0),
            Tier::Advanced => (300.0, 300.0),
            Tier::Premier => (1000.0, 1000.0),
            Tier::Paragon => (2000.0, 2000.0),
            Tier::Prime => (4000.0, 4000.0),
        };
        let write_window = if t == Tier::Basic { 1.0 } else { 2.0 };
        RateLimitConfig {
            enabled: true,
            read_per_s: read,
            read_capacity: read,
            write_per_s: write,
            write_capacity: write * write_window,
        }
    }

    pub fn unlimited() -> RateLimitConfig {
        RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::tier(Tier::Prime)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Read,
    Write,
}

struct Buckets {
    read: f64,
    write: f64,
    at: Instant,
}

pub(crate) struct Limiter {
    cfg: RateLimitConfig,
    buckets: Mutex<HashMap<String, Buckets>>,
}

impl Limiter {
    pub(crate) fn new(cfg: RateLimitConfig) -> Limiter {
        Limiter {
            cfg,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn config(&self) -> &RateLimitConfig {
        &self.cfg
    }

    /// Takes `cost` tokens from `who`'s bucket if it has them.
    pub(crate) fn try_take(&self, who: &str, bucket: Bucket, cost: f64) -> bool {
        if !self.cfg.enabled {
            return true;
        }
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let b = map.entry(who.to_string()).or_insert(Buckets {
            read: self.cfg.read_capacity,
            write: self.cfg.write_capacity,
            at: now,
        });
        let dt = now.duration_since(b.at).as_secs_f64();
        b.at = now;
        b.read = (b.read + dt * self.cfg.read_per_s).min(self.cfg.read_capacity);
        b.write = (b.write + dt * self.cfg.write_per_s).min(self.cfg.write_capacity);
        let tokens = match bucket {
            Bucket::Read => &mut b.read,
            Bucket::Write => &mut b.write,
        };
        if *tokens >= cost {
            *tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// The bucket and cost of a request (API.md §6.1): cancels and single-order reads cost 2,
/// everything else 10; batches are charged per item by their handlers.
pub(crate) fn classify(method: &axum::http::Method, path: &str) -> (Bucket, f64) {
    use axum::http::Method;
    let p = path.strip_prefix(super::REST_PREFIX).unwrap_or(path);
    let write = *method != Method::GET && *method != Method::HEAD;
    let bucket = if write { Bucket::Write } else { Bucket::Read };
    let cancel = *method == Method::DELETE && p.starts_with("/portfolio/events/orders");
    let single_order = *method == Method::GET
        && p.starts_with("/portfolio/orders/")
        && p.len() > "/portfolio/orders/".len();
    let cost = if cancel || single_order { 2.0 } else { 10.0 };
    (bucket, cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn buckets_empty_and_costs() {
        let l = Limiter::new(RateLimitConfig {
            enabled: true,
            read_per_s: 0.0,
            read_capacity: 30.0,
            write_per_s: 0.0,
            write_capacity: 4.0,
        });
        assert!(l.try_take("k", Bucket::Read, 10.0));
        assert!(l.try_take("k", Bucket::Read, 10.0));
        assert!(l.try_take("k", Bucket::Read, 10.0));
        assert!(!l.try_take("k", Bucket::Read, 10.0));
        assert!(l.try_take("other", Bucket::Read, 10.0), "per key");
        assert!(l.try_take("k", Bucket::Write, 2.0));
        assert!(l.try_take("k", Bucket::Write, 2.0));
        assert!(!l.try_take("k", Bucket::Write, 2.0));
        assert_eq!(
            classify(&Method::DELETE, "/trade-api/v2/portfolio/events/orders/abc"),
            (Bucket::Write, 2.0)
        );
        assert_eq!(
            classify(&Method::GET, "/trade-api/v2/portfolio/orders/abc"),
            (Bucket::Read, 2.0)
        );
        assert_eq!(
            classify(&Method::GET, "/trade-api/v2/portfolio/orders"),
            (Bucket::Read, 10.0)
        );
        assert_eq!(
            classify(&Method::POST, "/trade-api/v2/portfolio/events/orders"),
            (Bucket::Write, 10.0)
        );
        let basic = RateLimitConfig::tier(Tier::Basic);
        assert_eq!((basic.read_capacity, basic.write_capacity), (200.0, 100.0));
        assert_eq!(RateLimitConfig::tier(Tier::Advanced).write_capacity, 600.0);
    }
}
