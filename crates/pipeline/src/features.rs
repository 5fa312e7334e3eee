//! The model's inputs: one causal, streaming feature state per market, the only feature code in
//! the workspace. Training (`train_edge_rnn` builds its tensors by running this state over the
//! snapshot files), replay (`evaluate_strategy`) and live trading (`run_live`) all call
//! [`FeatureState::push`] with the same `snapshot/v1` lines, so there is nothing to drift.
//!
//! # Steps
//!
//! Rows arrive on the recorder's grid (e.g. every 100 ms); the model steps at a coarser cadence
//! `step_ms` (e.g. 1 s). A step is due at the first trusted row whose `ts_ms` reaches the next
//! multiple of `step_ms`; it is stamped with that row's `ts_ms` and uses only that row and rows
//! before it (**causal**: nothing after `ts_ms` can change it). The next step is then due at the
//! following multiple of `step_ms`. A row that comes late (the recorder lagged) simply produces
//! the step late; a missing step is never back-filled.
//!
//! # Segments (gaps)
//!
//! A **segment** is a run of rows that form one continuous book history. A new segment starts
//! at the market's first row, after any marker (`gap`, `resync`, `closed` or another kind), and
//! after a silence longer than `split_gap_ms` between two rows (a recorder that died without a
//! marker), the same rule `snapshot::columnar` uses. At a segment start the state **resets**:
//! the history behind the change features is dropped, and the step says `new_segment`, which
//! tells the model to start from its zero state (training sequences are segments, so the model
//! has seen such starts). After `gap` or `closed`, rows are ignored until a `resync` (the
//! recorder writes none there; a hand-made file might): [`FeatureState::trusted`] is false.
//!
//! # Features (in network order, [`FEATURE_NAMES`])
//!
//! Prices are probabilities (dollars per $1 contract). An empty side is read as the natural
//! bound: no YES bid = bid 0, no YES ask = ask 1.
//! - `yes_mid`: (bid + ask) / 2.
//! - `spread`: ask − bid.
//! - `log_yes_bid_size`, `log_yes_ask_size`: ln(1 + contracts) at the best bid / ask (0 when
//!   that side is empty or its size was not recorded).
//! - `book_imbalance`: (bid size − ask size) / (bid size + ask size), 0 when both are 0.
//! - `mid_change_10s`, `mid_change_60s`: `yes_mid` now minus `yes_mid` at the latest earlier
//!   step at least 10 s / 60 s before, within the segment (0 while the segment is younger).
//! - `log_seconds_to_close`: ln(1 + seconds until `close_ts_ms`, floored at 0); the row's own
//!   `close_ts_ms`, else the one given to [`FeatureState::new`]; 0 when neither is known
//!   ([`Step::seconds_to_close`] is then `None`, and the trainer refuses such a market).
//!
//! The network sees `(x − mean) / std` with the training split's statistics, stored in
//! `strategy.json` (`model.features`) and applied by [`Normalizer`].

use std::collections::VecDeque;

use crate::ids::MarketTicker;
use crate::schema::strategy::FeatureSpec;
use crate::snapshot::{Line, MarkerKind, SnapshotRecord};

/// Number of model inputs.
pub const N_FEATURES: usize = 8;

/// The inputs in network order; `strategy.json` must list exactly these.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "yes_mid",
    "spread",
    "log_yes_bid_size",
    "log_yes_ask_size",
    "book_imbalance",
    "mid_change_10s",
    "mid_change_60s",
    "log_seconds_to_close",
];

/// Step cadence and segment rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureConfig {
    /// One model step every this many milliseconds (aligned to multiples of it, UTC).
    pub step_ms: i64,
    /// A silence between two rows longer than this starts a new segment.
    pub split_gap_ms: i64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            step_ms: 1000,
            split_gap_ms: 60_000,
        }
    }
}

/// One model step: the raw (unnormalised) feature vector at `ts_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The `ts_ms` of the row that produced the step.
    pub ts_ms: i64,
    /// The first step of a segment: the model starts from its zero state.
    pub new_segment: bool,
    pub x: [f32; N_FEATURES],
    /// The market's own mid as a probability (the `yes_mid` feature, in f64).
    pub mid: f64,
    /// Seconds until the market's close, when known.
    pub seconds_to_close: Option<f64>,
}

/// The causal feature state of one market. Feed it that market's lines in time order.
#[derive(Clone, Debug)]
pub struct FeatureState {
    cfg: FeatureConfig,
    close_ts_ms: Option<i64>,
    trusted: bool,
    /// The next step is due at the first row with `ts_ms >= next_step_ms`.
    next_step_ms: i64,
    last_row_ms: Option<i64>,
    /// The next step starts a segment.
    pending_reset: bool,
    /// `(ts_ms, mid)` of this segment's steps, oldest first, the last ~60 s (plus one older).
    history: VecDeque<(i64, f64)>,
}

const LONGEST_LOOKBACK_MS: i64 = 60_000;

impl FeatureState {
    /// A fresh state; `close_ts_ms` is the market's close time from its metadata, used when a
    /// row does not carry its own.
    pub fn new(cfg: FeatureConfig, close_ts_ms: Option<i64>) -> FeatureState {
        assert!(cfg.step_ms > 0, "step_ms must be positive");
        FeatureState {
            cfg,
            close_ts_ms,
            trusted: true,
            next_step_ms: i64::MIN,
            last_row_ms: None,
            pending_reset: true,
            history: VecDeque::new(),
        }
    }

    pub fn config(&self) -> FeatureConfig {
        self.cfg
    }

    /// False after a `gap` or `closed` marker until a `resync`.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// Feeds one line of this market; returns the step it makes due, if any.
    pub fn push(&mut self, line: &Line) -> Option<Step> {
        match line {
            Line::Marker(m) => {
                match m.event {
                    MarkerKind::Gap | MarkerKind::Closed => self.trusted = false,
                    MarkerKind::Resync => self.trusted = true,
                    MarkerKind::Other(_) => {}
                }
                self.start_segment();
                None
            }
            Line::Snapshot(r) => self.push_row(r),
        }
    }

    fn start_segment(&mut self) {
        self.pending_reset = true;
        self.history.clear();
        self.next_step_ms = i64::MIN;
    }

    fn push_row(&mut self, r: &SnapshotRecord) -> Option<Step> {
        if !self.trusted {
            return None;
        }
        if let Some(last) = self.last_row_ms {
            if r.ts_ms - last > self.cfg.split_gap_ms {
                self.start_segment();
            }
        }
        self.last_row_ms = Some(r.ts_ms);
        if let Some(c) = r.close_ts_ms {
            self.close_ts_ms = Some(c);
        }
        if r.ts_ms < self.next_step_ms {
            return None;
        }
        self.next_step_ms = (r.ts_ms.div_euclid(self.cfg.step_ms) + 1) * self.cfg.step_ms;

        let bid = r.yes_bid.map_or(0.0, |p| p.to_prob());
        let ask = r.yes_ask.map_or(1.0, |p| p.to_prob());
        let mid = (bid + ask) / 2.0;
        let bid_size = size_of(r.yes_bid.is_some(), r.yes_bid_size);
        let ask_size = size_of(r.yes_ask.is_some(), r.yes_ask_size);
        let imbalance = if bid_size + ask_size > 0.0 {
            (bid_size - ask_size) / (bid_size + ask_size)
        } else {
            0.0
        };
        let change = |lookback_ms: i64| -> f64 {
            let cutoff = r.ts_ms - lookback_ms;
            self.history
                .iter()
                .rev()
                .find(|(t, _)| *t <= cutoff)
                .map_or(0.0, |(_, m)| mid - m)
        };
        let (c10, c60) = (change(10_000), change(LONGEST_LOOKBACK_MS));
        let seconds_to_close = self
            .close_ts_ms
            .map(|c| ((c - r.ts_ms) as f64 / 1000.0).max(0.0));
        let x = [
            mid as f32,
            (ask - bid) as f32,
            bid_size.ln_1p() as f32,
            ask_size.ln_1p() as f32,
            imbalance as f32,
            c10 as f32,
            c60 as f32,
            seconds_to_close.map_or(0.0, f64::ln_1p) as f32,
        ];

        self.history.push_back((r.ts_ms, mid));
        // Keep one entry at or before the longest lookback.
        while self.history.len() >= 2 && self.history[1].0 <= r.ts_ms - LONGEST_LOOKBACK_MS {
            self.history.pop_front();
        }
        let new_segment = std::mem::take(&mut self.pending_reset);
        Some(Step {
            ts_ms: r.ts_ms,
            new_segment,
            x,
            mid,
            seconds_to_close,
        })
    }
}

fn size_of(side_present: bool, size: Option<crate::money::Count>) -> f64 {
    match (side_present, size) {
        (true, Some(c)) => c.to_f64().max(0.0),
        _ => 0.0,
    }
}

/// `(x − mean) / std` per feature, with the training split's statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalizer {
    mean: [f32; N_FEATURES],
    inv_std: [f32; N_FEATURES],
}

impl Normalizer {
    /// From `strategy.json`'s `model.features`: the names must be [`FEATURE_NAMES`] in order.
    pub fn from_specs(specs: &[FeatureSpec]) -> Result<Normalizer, String> {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        if names != FEATURE_NAMES {
            return Err(format!(
                "model.features lists {names:?}, but this build computes {FEATURE_NAMES:?} (a model trained on other features cannot be run)"
            ));
        }
        let mut n = Normalizer {
            mean: [0.0; N_FEATURES],
            inv_std: [1.0; N_FEATURES],
        };
        for (i, s) in specs.iter().enumerate() {
            if !(s.mean.is_finite() && s.std.is_finite() && s.std > 0.0) {
                return Err(format!(
                    "model.features[{i}] ({}): mean {} / std {} must be finite with std > 0",
                    s.name, s.mean, s.std
                ));
            }
            n.mean[i] = s.mean as f32;
            n.inv_std[i] = (1.0 / s.std) as f32;
        }
        Ok(n)
    }

    /// Statistics over training steps: per feature mean and population standard deviation
    /// (a constant feature gets std 1, so it normalises to 0).
    pub fn fit<'a>(steps: impl IntoIterator<Item = &'a [f32; N_FEATURES]>) -> Vec<FeatureSpec> {
        let mut n = 0u64;
        let mut sum = [0f64; N_FEATURES];
        let mut sq = [0f64; N_FEATURES];
        for x in steps {
            n += 1;
            for i in 0..N_FEATURES {
                let v = f64::from(x[i]);
                sum[i] += v;
                sq[i] += v * v;
            }
        }
        (0..N_FEATURES)
            .map(|i| {
                let (mean, std) = if n == 0 {
                    (0.0, 1.0)
                } else {
                    let mean = sum[i] / n as f64;
                    let var = (sq[i] / n as f64 - mean * mean).max(0.0);
                    let std = var.sqrt();
                    (mean, if std > 1e-9 { std } else { 1.0 })
                };
                FeatureSpec {
                    name: FEATURE_NAMES[i].to_string(),
                    mean,
                    std,
                }
            })
            .collect()
    }

    pub fn apply(&self, x: &[f32; N_FEATURES]) -> [f32; N_FEATURES] {
        let mut out = [0f32; N_FEATURES];
        for i in 0..N_FEATURES {
            out[i] = (x[i] - self.mean[i]) * self.inv_std[i];
        }
        out
    }
}

/// The edge model behind a trait, so the runtime needs no libtorch: `edge_model` implements it
/// with the LSTM; tests may use any deterministic function.
pub trait EdgeModel: Send {
    /// Advances `market`'s carried state by one step with the normalised input `x`; `reset`
    /// starts from the zero state (a new segment). Returns P(YES) in (0, 1).
    fn step(&mut self, market: &MarketTicker, x: &[f32], reset: bool) -> f64;
    /// The market is done: drop its state.
    fn forget(&mut self, market: &MarketTicker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Count, Price};
    use crate::snapshot::Marker;

    fn row(ts: i64, bid: i64, ask: i64) -> Line {
        let t = MarketTicker::from("KXT-1");
        let yes = (bid > 0).then(|| (Price::from_cents(bid).unwrap(), Count::from_contracts(10)));
        let no = (ask < 100).then(|| {
            (
                Price::from_cents(100 - ask).unwrap(),
                Count::from_contracts(30),
            )
        });
        Line::Snapshot(
            SnapshotRecord::from_book(ts, t, yes, no)
                .unwrap()
                .with_close_ts_ms(Some(900_000)),
        )
    }

    fn marker(ts: i64, kind: MarkerKind) -> Line {
        Line::Marker(Marker::new(ts, MarketTicker::from("KXT-1"), kind, None))
    }

    fn run(lines: &[Line]) -> Vec<Step> {
        let mut s = FeatureState::new(FeatureConfig::default(), None);
        lines.iter().filter_map(|l| s.push(l)).collect()
    }

    #[test]
    fn steps_once_per_step_ms_on_the_first_row_reaching_it() {
        let lines: Vec<Line> = (0..35).map(|i| row(i * 100, 40, 44)).collect();
        let steps = run(&lines);
        let ts: Vec<i64> = steps.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, vec![0, 1000, 2000, 3000]);
        assert!(steps[0].new_segment && !steps[1].new_segment);
        let x = &steps[0].x;
        assert!((x[0] - 0.42).abs() < 1e-6 && (x[1] - 0.04).abs() < 1e-6);
        assert!((x[2] - 11f32.ln()).abs() < 1e-6 && (x[3] - 31f32.ln()).abs() < 1e-6);
        assert!((x[4] - (-20.0 / 40.0)).abs() < 1e-6);
        assert!((x[7] - 901f32.ln()).abs() < 1e-5);
        // A late row (the recorder lagged) makes the step late, not twice.
        let steps = run(&[
            row(0, 40, 44),
            row(1700, 40, 44),
            row(1800, 40, 44),
            row(2000, 40, 44),
        ]);
        let ts: Vec<i64> = steps.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, vec![0, 1700, 2000]);
    }

    #[test]
    fn mid_changes_look_back_within_the_segment() {
        let mut lines = Vec::new();
        for i in 0..=70 {
            lines.push(row(i * 1000, 30 + (i % 50), 34 + (i % 50)));
        }
        let steps = run(&lines);
        // At 9 s nothing is 10 s old yet.
        assert_eq!(steps[9].x[5], 0.0);
        let at = |i: usize| steps[i].mid;
        assert!((f64::from(steps[25].x[5]) - (at(25) - at(15))).abs() < 1e-6);
        assert!((f64::from(steps[65].x[6]) - (at(65) - at(5))).abs() < 1e-6);
    }

    #[test]
    fn markers_and_silences_reset_and_untrusted_rows_are_ignored() {
        let lines = vec![
            row(0, 40, 44),
            row(20_000, 50, 54),
            marker(21_000, MarkerKind::Gap),
            row(22_000, 60, 64), // after a gap without resync: ignored
            marker(30_000, MarkerKind::Resync),
            row(30_000, 60, 64),
            row(45_000, 61, 65),
            row(200_000, 70, 74), // silence > 60 s
        ];
        let steps = run(&lines);
        let ts: Vec<(i64, bool)> = steps.iter().map(|s| (s.ts_ms, s.new_segment)).collect();
        assert_eq!(
            ts,
            vec![
                (0, true),
                (20_000, false),
                (30_000, true),
                (45_000, false),
                (200_000, true)
            ]
        );
        // The 10 s change after the resync looks only inside the new segment.
        assert!((steps[3].x[5] - 0.01).abs() < 1e-6);
        assert_eq!(steps[4].x[5], 0.0);
    }

    #[test]
    fn an_empty_side_reads_as_the_bound() {
        let steps = run(&[row(0, 0, 3)]);
        assert!((steps[0].mid - 0.015).abs() < 1e-9);
        assert_eq!(steps[0].x[2], 0.0);
        assert_eq!(steps[0].x[4], -1.0);
    }

    #[test]
    fn the_example_strategy_lists_exactly_these_features() {
        let text = include_str!("../../../config/strategy.example.json");
        let s = crate::schema::strategy::Strategy::parse_str(text, "example").unwrap();
        Normalizer::from_specs(&s.model.unwrap().features).unwrap();
    }

    #[test]
    fn normalizer_checks_names_and_round_trips_fit() {
        let xs = [[1f32; N_FEATURES], [3f32; N_FEATURES]];
        let specs = Normalizer::fit(xs.iter());
        assert_eq!(specs[0].mean, 2.0);
        assert_eq!(specs[0].std, 1.0);
        let n = Normalizer::from_specs(&specs).unwrap();
        assert_eq!(n.apply(&xs[1]), [1f32; N_FEATURES]);
        let mut bad = specs.clone();
        bad.swap(0, 1);
        assert!(Normalizer::from_specs(&bad)
            .unwrap_err()
            .contains("cannot be run"));
        bad = specs;
        bad[3].std = 0.0;
        assert!(Normalizer::from_specs(&bad)
            .unwrap_err()
            .contains("features[3]"));
    }
}
