//! Fault injection: what a reliability test needs the exchange to do wrong, on command or on
//! a schedule, deterministically under a seed, with counters a test can assert on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How a lost order-create response is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoseMode {
    /// The connection is closed without a complete response.
    CloseConnection,
    /// A 500 with an empty body.
    ServerError,
}

/// One fault. JSON form (for `POST /_sim/faults`): `{"kind": "skip_seq", "count": 1}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Close every WebSocket connection now, without a close frame.
    DropWsConnections,
    /// The next `count` sequenced WS messages jump one `seq` number (a gap).
    SkipSeq {
        count: u32,
    },
    /// The next `count` sequenced WS messages are sent twice (same `seq`).
    RepeatSeq {
        count: u32,
    },
    /// The next `count` REST requests answer `status` (429 with Kalshi's rate-limit body,
    /// anything else with the error envelope).
    HttpStatus {
        status: u16,
        count: u32,
    },
    /// Each of the next `count` REST requests answers `status` with probability `fraction`
    /// (drawn from the fault seed).
    HttpStatusFraction {
        status: u16,
        fraction: f64,
        count: u32,
    },
    /// The next `count` REST responses are delayed by `ms`.
    Delay {
        ms: u64,
        count: u32,
    },
    /// The next `count` accepted order creations lose their response (the order exists).
    LoseOrderResponse {
        count: u32,
        mode: LoseMode,
    },
    /// WS connections stop reading the event stream until [`Fault::ResumeWs`]: their queue
    /// overflows and they get error 25 (a slow consumer).
    PauseWs,
    ResumeWs,
    /// Cancels every pending fault.
    Clear,
}

/// A fault injected every `every_ms` of simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    pub every_ms: i64,
    pub fault: Fault,
}

/// What the faults did so far (and two ordinary events tests assert on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    pub injected: u64,
    pub ws_dropped: u64,
    pub seq_skipped: u64,
    pub seq_repeated: u64,
    pub http_status_injected: u64,
    pub delayed: u64,
    pub order_responses_lost: u64,
    /// Subscriptions dropped with error 25.
    pub slow_consumer_drops: u64,
    /// Genuine 429s from the token buckets.
    pub rate_limited: u64,
    /// 401s.
    pub auth_failures: u64,
    pub ws_connections: u64,
    /// REST requests received, by path below `/trade-api/v2` (`/markets`,
    /// `/historical/markets`, `/markets/KX-1/orderbook`, ...), counted on arrival: before
    /// faults, authentication and rate limits, so refused requests count too.
    #[serde(default)]
    pub rest_requests: BTreeMap<String, u64>,
}

impl FaultStats {
    /// REST requests received for `path` (below `/trade-api/v2`, e.g. `/markets`).
    pub fn requests_to(&self, path: &str) -> u64 {
        self.rest_requests.get(path).copied().unwrap_or(0)
    }

    /// REST requests received in all.
    pub fn rest_requests_total(&self) -> u64 {
        self.rest_requests.values().sum()
    }
}

#[derive(Default)]
struct Counters {
    injected: AtomicU64,
    ws_dropped: AtomicU64,
    seq_skipped: AtomicU64,
    seq_repeated: AtomicU64,
    http_status_injected: AtomicU64,
    delayed: AtomicU64,
    order_responses_lost: AtomicU64,
    slow_consumer_drops: AtomicU64,
    rate_limited: AtomicU64,
    auth_failures: AtomicU64,
    ws_connections: AtomicU64,
}

struct Pending {
    skip_seq: u32,
    repeat_seq: u32,
    http_status: Option<(u16, u32)>,
    http_fraction: Option<(u16, f64, u32)>,
    delay: Option<(u64, u32)>,
    lose: Option<(LoseMode, u32)>,
    rng: ChaCha8Rng,
}

/// What happens to one REST request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFault {
    Status(u16),
    Delay(u64),
}

/// What happens to one sequenced WS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqFault {
    None,
    Skip,
    Repeat,
}

/// The shared fault state of one simulator.
pub struct Faults {
    pending: Mutex<Pending>,
    counters: Counters,
    rest_requests: Mutex<BTreeMap<String, u64>>,
    drop_tx: watch::Sender<u64>,
    pause_tx: watch::Sender<bool>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("stats", &self.stats())
            .finish()
    }
}

fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            pending: Mutex::new(Pending {
                skip_seq: 0,
                repeat_seq: 0,
                http_status: None,
                http_fraction: None,
                delay: None,
                lose: None,
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA17),
            }),
            counters: Counters::default(),
            rest_requests: Mutex::new(BTreeMap::new()),
            drop_tx: watch::channel(0).0,
            pause_tx: watch::channel(false).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn inject(&self, fault: Fault) {
        tracing::info!(?fault, "fault injected");
        self.counters.injected.fetch_add(1, Ordering::Relaxed);
        let mut p = self.lock();
        match fault {
            Fault::DropWsConnections => {
                self.drop_tx.send_modify(|g| *g += 1);
            }
            Fault::SkipSeq { count } => p.skip_seq += count,
            Fault::RepeatSeq { count } => p.repeat_seq += count,
            Fault::HttpStatus { status, count } => p.http_status = Some((status, count)),
            Fault::HttpStatusFraction {
                status,
                fraction,
                count,
            } => p.http_fraction = Some((status, fraction.clamp(0.0, 1.0), count)),
            Fault::Delay { ms, count } => p.delay = Some((ms, count)),
            Fault::LoseOrderResponse { count, mode } => p.lose = Some((mode, count)),
            Fault::PauseWs => {
                self.pause_tx.send_replace(true);
            }
            Fault::ResumeWs => {
                self.pause_tx.send_replace(false);
            }
            Fault::Clear => {
                p.skip_seq = 0;
                p.repeat_seq = 0;
                p.http_status = None;
                p.http_fraction = None;
                p.delay = None;
                p.lose = None;
                self.pause_tx.send_replace(false);
            }
        }
    }

    pub fn stats(&self) -> FaultStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            injected: g(&c.injected),
            ws_dropped: g(&c.ws_dropped),
            seq_skipped: g(&c.seq_skipped),
            seq_repeated: g(&c.seq_repeated),
            http_status_injected: g(&c.http_status_injected),
            delayed: g(&c.delayed),
            order_responses_lost: g(&c.order_responses_lost),
            slow_consumer_drops: g(&c.slow_consumer_drops),
            rate_limited: g(&c.rate_limited),
            auth_failures: g(&c.auth_failures),
            ws_connections: g(&c.ws_connections),
            rest_requests: self
                .rest_requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Counts one REST request for `path` (below the REST prefix).
    pub(crate) fn count_rest_request(&self, path: &str) {
        *self
            .rest_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path.to_string())
            .or_insert(0) += 1;
    }

    /// Consulted once per REST request.
    pub(crate) fn http(&self) -> Option<HttpFault> {
        let mut p = self.lock();
        if let Some((status, n)) = p.http_status.as_mut() {
            let status = *status;
            if take(n) {
                self.counters
                    .http_status_injected
                    .fetch_add(1, Ordering::Relaxed);
                return Some(HttpFault::Status(status));
            }
            p.http_status = None;
        }
        if let Some((status, fraction, n)) = p.http_fraction {
            if n == 0 {
                p.http_fraction = None;
            } else {
                p.http_fraction = Some((status, fraction, n - 1));
                if p.rng.gen::<f64>() < fraction {
                    self.counters
                        .http_status_injected
                        .fetch_add(1, Ordering::Relaxed);
                    return Some(HttpFault::Status(status));
                }
            }
        }
        if let Some((ms, n)) = p.delay.as_mut() {
            let ms = *ms;
            if take(n) {
                self.counters.delayed.fetch_add(1, Ordering::Relaxed);
                return Some(HttpFault::Delay(ms));
            }
            p.delay = None;
        }
        None
    }

    /// Consulted once per accepted order creation.
    pub(crate) fn lose_order_response(&self) -> Option<LoseMode> {
        let mut p = self.lock();
        if let Some((mode, n)) = p.lose.as_mut() {
            let mode = *mode;
            if take(n) {
                self.counters
                    .order_responses_lost
                    .fetch_add(1, Ordering::Relaxed);
                return Some(mode);
            }
            p.lose = None;
        }
        None
    }

    /// Consulted once per sequenced WS message.
    pub(crate) fn seq(&self) -> SeqFault {
        let mut p = self.lock();
        if take(&mut p.skip_seq) {
            self.counters.seq_skipped.fetch_add(1, Ordering::Relaxed);
            return SeqFault::Skip;
        }
        if take(&mut p.repeat_seq) {
            self.counters.seq_repeated.fetch_add(1, Ordering::Relaxed);
            return SeqFault::Repeat;
        }
        SeqFault::None
    }

    pub(crate) fn drop_rx(&self) -> watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }

    pub(crate) fn pause_rx(&self) -> watch::Receiver<bool> {
        self.pause_tx.subscribe()
    }

    pub(crate) fn count_ws_dropped(&self) {
        self.counters.ws_dropped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_slow_consumer(&self, n: u64) {
        self.counters
            .slow_consumer_drops
            .fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_rate_limited(&self) {
        self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_auth_failure(&self) {
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_ws_connection(&self) {
        self.counters.ws_connections.fetch_add(1, Ordering::Relaxed);
    }
}

/// Fires [`ScheduledFault`]s as simulated time passes.
#[derive(Debug, Clone)]
pub struct Schedule {
    entries: Vec<(ScheduledFault, i64)>,
}

impl Schedule {
    /// Each entry first fires `every_ms` after `start_ms`.
    pub fn new(entries: Vec<ScheduledFault>, start_ms: i64) -> Schedule {
        Schedule {
            entries: entries
                .into_iter()
                .filter(|e| e.every_ms > 0)
                .map(|e| {
                    let next = start_ms + e.every_ms;
                    (e, next)
                })
                .collect(),
        }
    }

    /// Injects every fault due at or before `now_ms` (once per period passed).
    pub fn fire(&mut self, now_ms: i64, faults: &Faults) {
        for (e, next) in &mut self.entries {
            while *next <= now_ms {
                faults.inject(e.fault.clone());
                *next += e.every_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_counted_and_consumed() {
        let f = Faults::new(1);
        f.inject(Fault::HttpStatus {
            status: 503,
            count: 2,
        });
        assert_eq!(f.http(), Some(HttpFault::Status(503)));
        assert_eq!(f.http(), Some(HttpFault::Status(503)));
        assert_eq!(f.http(), None);
        f.inject(Fault::SkipSeq { count: 1 });
        f.inject(Fault::RepeatSeq { count: 1 });
        assert_eq!(f.seq(), SeqFault::Skip);
        assert_eq!(f.seq(), SeqFault::Repeat);
        assert_eq!(f.seq(), SeqFault::None);
        let s = f.stats();
        assert_eq!(
            (
                s.http_status_injected,
                s.seq_skipped,
                s.seq_repeated,
                s.injected
            ),
            (2, 1, 1, 3)
        );
        f.inject(Fault::LoseOrderResponse {
            count: 1,
            mode: LoseMode::ServerError,
        });
        assert_eq!(f.lose_order_response(), Some(LoseMode::ServerError));
        assert_eq!(f.lose_order_response(), None);
    }

    #[test]
    fn fractions_are_deterministic_under_the_seed() {
        let run = |seed| {
            let f = Faults::new(seed);
            f.inject(Fault::HttpStatusFraction {
                status: 500,
                fraction: 0.3,
                count: 200,
            });
            (0..250).map(|_| f.http().is_some()).collect::<Vec<_>>()
        };
        let a = run(5);
        assert_eq!(a, run(5));
        assert_ne!(a, run(6));
        let hits = a.iter().filter(|x| **x).count();
        assert!((30..90).contains(&hits), "{hits}");
        assert!(a[200..].iter().all(|x| !x), "only the next 200 requests");
    }

    #[test]
    fn schedule_fires_once_per_period() {
        let f = Faults::new(1);
        let mut s = Schedule::new(
            vec![ScheduledFault {
                every_ms: 1000,
                fault: Fault::SkipSeq { count: 1 },
            }],
            0,
        );
        s.fire(999, &f);
        assert_eq!(f.stats().injected, 0);
        s.fire(3500, &f);
        assert_eq!(f.stats().injected, 3);
        let json = serde_json::to_string(&Fault::LoseOrderResponse {
            count: 1,
            mode: LoseMode::CloseConnection,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"kind":"lose_order_response","count":1,"mode":"close_connection"}"#
        );
    }
}
