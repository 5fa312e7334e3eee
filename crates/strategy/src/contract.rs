//! TEMPORARY stand-ins for `pipeline::features` and `pipeline::metrics`, written against the
//! lead's announced API so this crate builds before that commit lands. Delete this file at the
//! merge and point `crate::features`/`crate::metrics` (in `lib.rs`) at `pipeline`.
//!
//! The bodies are deliberately naive placeholders, not the real features or metrics: tests in
//! this crate assert nothing that depends on their exact numbers.

pub mod features {
    use pipeline::schema::strategy::FeatureSpec;
    use pipeline::snapshot::{Line, MarkerKind};
    use pipeline::MarketTicker;

    pub const N_FEATURES: usize = 8;
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

    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct FeatureConfig {
        pub step_ms: i64,
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

    #[derive(Clone, Debug, PartialEq)]
    pub struct Step {
        pub ts_ms: i64,
        pub new_segment: bool,
        pub x: [f32; N_FEATURES],
        pub mid: f64,
    }

    pub struct FeatureState {
        cfg: FeatureConfig,
        trusted: bool,
        reset: bool,
        next: i64,
        last: Option<i64>,
    }
    impl FeatureState {
        pub fn new(cfg: FeatureConfig, _close_ts_ms: Option<i64>) -> FeatureState {
            FeatureState {
                cfg,
                trusted: true,
                reset: true,
                next: i64::MIN,
                last: None,
            }
        }
        pub fn push(&mut self, line: &Line) -> Option<Step> {
            match line {
                Line::Marker(m) => {
                    match m.event {
                        MarkerKind::Gap | MarkerKind::Closed => self.trusted = false,
                        MarkerKind::Resync => self.trusted = true,
                        MarkerKind::Other(_) => {}
                    }
                    self.reset = true;
                    None
                }
                Line::Snapshot(r) => {
                    if self
                        .last
                        .is_some_and(|l| r.ts_ms - l > self.cfg.split_gap_ms)
                    {
                        self.reset = true;
                    }
                    self.last = Some(r.ts_ms);
                    let mid = r.yes_mid?.to_prob();
                    if !self.trusted || r.ts_ms < self.next {
                        return None;
                    }
                    self.next = (r.ts_ms.div_euclid(self.cfg.step_ms) + 1) * self.cfg.step_ms;
                    let new_segment = std::mem::take(&mut self.reset);
                    let mut x = [0f32; N_FEATURES];
                    x[0] = mid as f32;
                    Some(Step {
                        ts_ms: r.ts_ms,
                        new_segment,
                        x,
                        mid,
                    })
                }
            }
        }
        pub fn trusted(&self) -> bool {
            self.trusted
        }
    }

    pub struct Normalizer;
    impl Normalizer {
        pub fn from_specs(specs: &[FeatureSpec]) -> Result<Normalizer, String> {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            if names != FEATURE_NAMES {
                return Err(format!(
                    "model.features: names {names:?} != {FEATURE_NAMES:?}"
                ));
            }
            Ok(Normalizer)
        }
        pub fn apply(&self, x: &[f32; N_FEATURES]) -> [f32; N_FEATURES] {
            *x
        }
    }

    pub trait EdgeModel: Send {
        fn step(&mut self, market: &MarketTicker, x: &[f32], reset: bool) -> f64;
        fn forget(&mut self, market: &MarketTicker);
    }
}

pub mod metrics {
    fn mean(v: impl Iterator<Item = f64>) -> f64 {
        let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        s / n as f64
    }
    pub fn brier(p: &[f64], y: &[f64]) -> f64 {
        mean(p.iter().zip(y).map(|(p, y)| (p - y) * (p - y)))
    }
    pub fn log_loss(p: &[f64], y: &[f64]) -> f64 {
        mean(p.iter().zip(y).map(|(p, y)| {
            let p = p.clamp(1e-6, 1.0 - 1e-6);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        }))
    }
    pub fn auc(_p: &[f64], _y: &[f64]) -> Option<f64> {
        None
    }
    pub struct ReliabilityBin {
        pub lo: f64,
        pub hi: f64,
        pub n: u64,
        pub mean_pred: f64,
        pub frac_pos: f64,
    }
    pub fn reliability(p: &[f64], y: &[f64], bins: usize) -> (Vec<ReliabilityBin>, f64) {
        let mut out: Vec<ReliabilityBin> = (0..bins)
            .map(|i| ReliabilityBin {
                lo: i as f64 / bins as f64,
                hi: (i + 1) as f64 / bins as f64,
                n: 0,
                mean_pred: 0.0,
                frac_pos: 0.0,
            })
            .collect();
        for (p, y) in p.iter().zip(y) {
            let b = &mut out[((p * bins as f64) as usize).min(bins - 1)];
            b.n += 1;
            b.mean_pred += p;
            b.frac_pos += y;
        }
        for b in &mut out {
            if b.n > 0 {
                b.mean_pred /= b.n as f64;
                b.frac_pos /= b.n as f64;
            }
        }
        (out, 0.0)
    }
    pub struct MeanCi {
        pub mean: f64,
        pub lo: f64,
        pub hi: f64,
        pub n: usize,
    }
    pub fn bootstrap_mean_ci(values: &[f64], _resamples: usize, _seed: u64) -> MeanCi {
        let m = mean(values.iter().copied());
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        MeanCi {
            mean: m,
            lo,
            hi,
            n: values.len(),
        }
    }
}
