//! Client-side token buckets (API.md §6.1) so we pace ourselves instead of earning 429s.
//!
//! Since 2026-04-23 every request costs tokens (default 10; cancels 2; `GET` of one order 2;
//! batch create 10 per item; batch cancel 2 per item) from one of two buckets, read and write,
//! refilled continuously at the tier's per-second budget. A request *reserves* its tokens and
//! may drive the bucket into debt; the returned wait is how long until the debt is repaid, so
//! concurrent callers are served in order. Arithmetic is in integer milli-tokens.

use std::time::{Duration, Instant};

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Read,
    Write,
}

/// Kalshi usage tiers (verify yours with `GET /account/limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Basic,
    Advanced,
    Premier,
    Paragon,
    Prime,
}

/// Budgets in tokens per second and bucket capacities in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub read_per_sec: u64,
    pub read_capacity: u64,
    pub write_per_sec: u64,
    pub write_capacity: u64,
}

impl RateLimits {
    /// Per-tier budgets (API.md §6.1). Write capacity is 2 s of budget (Basic: 1 s); the read
    /// capacity is not documented and is taken as 1 s of budget.
    pub fn for_tier(t: Tier) -> RateLimits {
        let (r, w, wcap_secs) = match t {
            Tier::Basic => (200, 100, 1),
            Tier::Advanced => (300, 300, 2),
            Tier::Premier => (1_000, 1_000, 2),
            Tier::Paragon => (2_000, 2_000, 2),
            Tier::Prime => (4_000, 4_000, 2),
        };
        RateLimits {
            read_per_sec: r,
            read_capacity: r,
            write_per_sec: w,
            write_capacity: w * wcap_secs,
        }
    }

    /// The same limits scaled to `percent` of the budget (a safety margin; 90 is sensible).
    pub fn scaled(self, percent: u64) -> RateLimits {
        let s = |v: u64| (v * percent / 100).max(1);
        RateLimits {
            read_per_sec: s(self.read_per_sec),
            read_capacity: s(self.read_capacity),
            write_per_sec: s(self.write_per_sec),
            write_capacity: s(self.write_capacity),
        }
    }
}

/// Token cost and bucket of a request (`path` relative to `/trade-api/v2`, no query).
pub fn endpoint_cost(method: &str, path: &str, batch_items: usize) -> (Bucket, u64) {
    let items = batch_items.max(1) as u64;
    let orders_v2 = "/portfolio/events/orders";
    let m = method.to_ascii_uppercase();
    if path == format!("{orders_v2}/batched") {
        return match m.as_str() {
            "DELETE" => (Bucket::Write, 2 * items),
            _ => (Bucket::Write, 10 * items),
        };
    }
    if path == orders_v2 || path.starts_with(&format!("{orders_v2}/")) {
        return match m.as_str() {
            "DELETE" => (Bucket::Write, 2),
            "GET" => (Bucket::Read, 10),
            _ => (Bucket::Write, 10),
        };
    }
    if m == "GET" {
        let rest = path.strip_prefix("/portfolio/orders/");
        if rest.is_some_and(|r| !r.is_empty() && !r.contains('/') && r != "queue_positions") {
            return (Bucket::Read, 2);
        }
        return (Bucket::Read, 10);
    }
    // Any other mutation (legacy order endpoints, order groups, transfers).
    (Bucket::Write, 10)
}

const MILLI: u128 = 1_000;

/// One continuously refilled bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_sec: u64,
    capacity_milli: i128,
    /// Milli-tokens; negative = debt.
    level_milli: i128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_sec: u64, capacity: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            per_sec: per_sec.max(1),
            capacity_milli: capacity as i128 * MILLI as i128,
            level_milli: capacity as i128 * MILLI as i128,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        let add = (dt * self.per_sec as u128 * MILLI / 1_000_000_000) as i128;
        self.level_milli = (self.level_milli + add).min(self.capacity_milli);
    }

    /// Takes `cost` tokens and returns how long to wait before sending (zero if the bucket
    /// had them).
    pub fn reserve(&mut self, cost: u64, now: Instant) -> Duration {
        self.refill(now);
        self.level_milli -= cost as i128 * MILLI as i128;
        if self.level_milli >= 0 {
            Duration::ZERO
        } else {
            let debt = (-self.level_milli) as u128;
            // ns = debt_milli / (per_sec × 1000) × 1e9, rounded up.
            let ns = (debt * 1_000_000_000).div_ceil(self.per_sec as u128 * MILLI);
            Duration::from_nanos(ns as u64)
        }
    }

    /// Tokens available now (floor), negative in debt.
    pub fn available(&mut self, now: Instant) -> i64 {
        self.refill(now);
        (self.level_milli.div_euclid(MILLI as i128)) as i64
    }
}

/// The read and write buckets of one API key.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    read: TokenBucket,
    write: TokenBucket,
}

impl RateLimiter {
    pub fn new(l: RateLimits, now: Instant) -> RateLimiter {
        RateLimiter {
            read: TokenBucket::new(l.read_per_sec, l.read_capacity, now),
            write: TokenBucket::new(l.write_per_sec, l.write_capacity, now),
        }
    }
    pub fn reserve(&mut self, bucket: Bucket, cost: u64, now: Instant) -> Duration {
        match bucket {
            Bucket::Read => self.read.reserve(cost, now),
            Bucket::Write => self.write.reserve(cost, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_per_endpoint() {
        assert_eq!(endpoint_cost("GET", "/markets", 0), (Bucket::Read, 10));
        assert_eq!(
            endpoint_cost("GET", "/portfolio/orders/abc", 0),
            (Bucket::Read, 2)
        );
        assert_eq!(
            endpoint_cost("GET", "/portfolio/orders", 0),
            (Bucket::Read, 10)
        );
        assert_eq!(
            endpoint_cost("GET", "/portfolio/orders/abc/queue_position", 0),
            (Bucket::Read, 10)
        );
        assert_eq!(
            endpoint_cost("POST", "/portfolio/events/orders", 0),
            (Bucket::Write, 10)
        );
        assert_eq!(
            endpoint_cost("DELETE", "/portfolio/events/orders/abc", 0),
            (Bucket::Write, 2)
        );
        assert_eq!(
            endpoint_cost("POST", "/portfolio/events/orders/batched", 5),
            (Bucket::Write, 50)
        );
        assert_eq!(
            endpoint_cost("DELETE", "/portfolio/events/orders/batched", 5),
            (Bucket::Write, 10)
        );
        assert_eq!(
            endpoint_cost("POST", "/portfolio/events/orders/abc/amend", 0),
            (Bucket::Write, 10)
        );
    }

    #[test]
    fn bucket_math() {
        let t0 = Instant::now();
        // Basic write: 100 tokens/s, capacity 100 → ten creates at once, the 11th waits 100 ms.
        let mut b = TokenBucket::new(100, 100, t0);
        for _ in 0..10 {
            assert_eq!(b.reserve(10, t0), Duration::ZERO);
        }
        assert_eq!(b.reserve(10, t0), Duration::from_millis(100));
        assert_eq!(
            b.reserve(10, t0),
            Duration::from_millis(200),
            "queued behind the first"
        );
        // 300 ms later the debt (20 tokens) is repaid and 10 tokens are back.
        assert_eq!(b.available(t0 + Duration::from_millis(300)), 10);
        // Refill never exceeds the capacity.
        assert_eq!(b.available(t0 + Duration::from_secs(60)), 100);
        // Cancels are cheap: 50 of them fit in a full Basic write bucket.
        let mut b = TokenBucket::new(100, 100, t0);
        for _ in 0..50 {
            assert_eq!(b.reserve(2, t0), Duration::ZERO);
        }
        assert!(b.reserve(2, t0) > Duration::ZERO);
        // Sustained rate: N reads of 10 at 200/s need (N×10 − 200)/200 s.
        let mut r = TokenBucket::new(200, 200, t0);
        let mut last = Duration::ZERO;
        for _ in 0..100 {
            last = r.reserve(10, t0);
        }
        assert_eq!(last, Duration::from_secs(4));
    }

    #[test]
    fn tiers() {
        let b = RateLimits::for_tier(Tier::Basic);
        assert_eq!(
            (b.read_per_sec, b.write_per_sec, b.write_capacity),
            (200, 100, 100)
        );
        let p = RateLimits::for_tier(Tier::Premier);
        assert_eq!(
            (p.read_per_sec, p.write_per_sec, p.write_capacity),
            (1000, 1000, 2000)
        );
        assert_eq!(b.scaled(90).read_per_sec, 180);
    }
}
