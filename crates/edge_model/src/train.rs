//! Training the edge network on [`pipeline::dataset`] sequences.
//!
//! Every segment of a market is one sequence; the loss is the binary cross-entropy of the
//! market's final result at **every** step (masked where a batch is padded). Long sequences are
//! trained by truncated back-propagation through time: chunks of `window` steps, the LSTM state
//! carried (detached) from one chunk to the next, exactly as live inference carries it, so the
//! network never sees a state it would not see live. AdamW, gradient-norm clipping, early
//! stopping on the validation loss (the best epoch's weights are kept). Seeded: the same data,
//! seed and thread count give the same weights.

use std::time::Instant;

use pipeline::dataset::MarketData;
use pipeline::features::{Normalizer, N_FEATURES};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tch::nn::{self, OptimizerConfig, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

use crate::{EdgeNet, EdgeNetConfig, ModelError};

/// Hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub seed: u64,
    pub hidden: usize,
    pub layers: usize,
    pub dropout: f64,
    /// Truncated-BPTT chunk length in steps.
    pub window: usize,
    /// Sequences per batch.
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Gradient-norm clip.
    pub clip: f64,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    pub device: Device,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            seed: 42,
            hidden: 32,
            layers: 1,
            dropout: 0.0,
            window: 300,
            batch: 32,
            lr: 3e-3,
            weight_decay: 1e-4,
            clip: 1.0,
            patience: 4,
            device: Device::Cpu,
        }
    }
}

/// One normalised sequence ready for tensors.
#[derive(Clone, Debug)]
pub struct SeqData {
    /// `len × N_FEATURES`, normalised, row-major.
    pub x: Vec<f32>,
    pub len: usize,
    pub y: f32,
    /// Index of the market in the slice it came from.
    pub market: usize,
}

/// Normalises every sequence of `markets` with `norm`.
pub fn sequences(markets: &[&MarketData], norm: &Normalizer) -> Vec<SeqData> {
    let mut out = Vec::new();
    for (mi, m) in markets.iter().enumerate() {
        for s in &m.sequences {
            let mut x = Vec::with_capacity(s.len() * N_FEATURES);
            for row in &s.x {
                x.extend_from_slice(&norm.apply(row));
            }
            out.push(SeqData {
                x,
                len: s.len(),
                y: m.outcome as f32,
                market: mi,
            });
        }
    }
    out
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub best: bool,
    pub seconds: f64,
    /// Optimizer steps so far.
    pub steps: u64,
}

/// Progress while training: batches done in the current epoch, then the epoch's report.
pub trait Progress {
    fn batch(&mut self, _epoch: usize, _done: usize, _total: usize, _loss: f64) {}
    fn epoch(&mut self, _report: &EpochReport) {}
}

impl Progress for () {}

/// A trained network and its history.
pub struct Trained {
    pub vs: VarStore,
    pub net: EdgeNet,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
    pub optimizer_steps: u64,
    pub train_seconds: f64,
}

/// Builds a network with `cfg`'s shape, its weights drawn from a ChaCha RNG seeded by
/// `cfg.seed` (PyTorch's bounds: ±1/√hidden for the LSTM, ±1/√fan_in for the head), not from
/// libtorch's process-global RNG, so folds trained on parallel threads stay reproducible.
pub fn new_net(cfg: &TrainConfig) -> Result<(VarStore, EdgeNet), ModelError> {
    tch::manual_seed(cfg.seed as i64);
    let vs = VarStore::new(cfg.device);
    let net = EdgeNet::new(
        &vs.root(),
        &EdgeNetConfig {
            n_features: N_FEATURES,
            hidden: cfg.hidden,
            layers: cfg.layers,
            dropout: cfg.dropout,
        },
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x005e_ed0f_1a7e);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    // The LSTM's bound and the head's (its fan-in is the hidden size) are the same.
    for (_, var) in vars {
        let bound = 1.0 / (cfg.hidden as f64).sqrt();
        let n = var.numel();
        let data: Vec<f32> = (0..n)
            .map(|_| rng.gen_range(-bound..bound) as f32)
            .collect();
        let values = Tensor::from_slice(&data)
            .view(var.size().as_slice())
            .to_device(cfg.device);
        tch::no_grad(|| {
            let mut v = var.shallow_clone();
            v.copy_(&values);
        });
    }
    Ok((vs, net))
}

struct Batch {
    x: Tensor,
    mask: Tensor,
    y: Tensor,
    len: usize,
}

fn make_batch(seqs: &[&SeqData], device: Device) -> Batch {
    let b = seqs.len();
    let len = seqs.iter().map(|s| s.len).max().unwrap_or(0);
    let mut x = vec![0f32; b * len * N_FEATURES];
    let mut mask = vec![0f32; b * len];
    let mut y = vec![0f32; b * len];
    for (i, s) in seqs.iter().enumerate() {
        let off = i * len * N_FEATURES;
        x[off..off + s.x.len()].copy_from_slice(&s.x);
        for t in 0..s.len {
            mask[i * len + t] = 1.0;
        }
        for t in 0..len {
            y[i * len + t] = s.y;
        }
    }
    let (bi, li) = (b as i64, len as i64);
    Batch {
        x: Tensor::from_slice(&x)
            .view([bi, li, N_FEATURES as i64])
            .to_device(device),
        mask: Tensor::from_slice(&mask).view([bi, li]).to_device(device),
        y: Tensor::from_slice(&y).view([bi, li]).to_device(device),
        len,
    }
}

fn masked_loss(logits: &Tensor, y: &Tensor, mask: &Tensor) -> (Tensor, f64) {
    let per = logits.binary_cross_entropy_with_logits::<Tensor>(y, None, None, Reduction::None);
    let n = mask.sum(Kind::Float);
    let n_val = n.double_value(&[]);
    ((per * mask).sum(Kind::Float) / n.clamp_min(1.0), n_val)
}

/// Mean per-step loss over `seqs` in inference mode (whole sequences from the zero state).
pub fn eval_loss(net: &EdgeNet, seqs: &[SeqData], batch: usize, device: Device) -> f64 {
    let mut total = 0.0;
    let mut n = 0.0;
    tch::no_grad(|| {
        for chunk in seqs.chunks(batch.max(1)) {
            let refs: Vec<&SeqData> = chunk.iter().collect();
            let b = make_batch(&refs, device);
            let logits = net.forward(&b.x);
            let (loss, k) = masked_loss(&logits, &b.y, &b.mask);
            total += loss.double_value(&[]) * k;
            n += k;
        }
    });
    if n > 0.0 {
        total / n
    } else {
        f64::NAN
    }
}

/// P(YES) at every step of every sequence (inference, whole sequences from the zero state).
pub fn predict(net: &EdgeNet, seqs: &[SeqData], batch: usize, device: Device) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(seqs.len());
    tch::no_grad(|| {
        for chunk in seqs.chunks(batch.max(1)) {
            let refs: Vec<&SeqData> = chunk.iter().collect();
            let b = make_batch(&refs, device);
            let p = net
                .forward(&b.x)
                .sigmoid()
                .to_kind(Kind::Double)
                .to_device(Device::Cpu);
            let flat: Vec<f64> = Vec::<f64>::try_from(p.view([-1])).unwrap_or_default();
            for (i, s) in chunk.iter().enumerate() {
                out.push(flat[i * b.len..i * b.len + s.len].to_vec());
            }
        }
    });
    out
}

/// Trains on `train`, early-stopping on `val`.
pub fn fit(
    train: &[SeqData],
    val: &[SeqData],
    cfg: &TrainConfig,
    progress: &mut dyn Progress,
) -> Result<Trained, ModelError> {
    if cfg.window == 0 || cfg.batch == 0 || cfg.epochs == 0 {
        return Err(ModelError::InvalidConfig(
            "epochs, window and batch must be at least 1".into(),
        ));
    }
    let started = Instant::now();
    let (vs, net) = new_net(cfg)?;
    let (best_vs, _) = new_net(cfg)?;
    let mut best_vs = best_vs;
    let mut opt = nn::AdamW {
        wd: cfg.weight_decay,
        ..Default::default()
    }
    .build(&vs, cfg.lr)
    .map_err(|e| ModelError::InvalidConfig(format!("optimizer: {e}")))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    // Longest first within the seeded shuffle's batches keeps padding low.
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut history = Vec::new();
    let mut best = f64::INFINITY;
    let mut best_epoch = 0;
    let mut since_best = 0;
    let mut steps = 0u64;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        order.shuffle(&mut rng);
        let batches: Vec<&[usize]> = order.chunks(cfg.batch).collect();
        let mut loss_sum = 0.0;
        let mut loss_n = 0.0;
        for (bi, idx) in batches.iter().enumerate() {
            let refs: Vec<&SeqData> = idx.iter().map(|&i| &train[i]).collect();
            let b = make_batch(&refs, cfg.device);
            let mut state = None;
            let mut t = 0;
            while t < b.len {
                let w = cfg.window.min(b.len - t);
                let xs = b.x.narrow(1, t as i64, w as i64);
                let ys = b.y.narrow(1, t as i64, w as i64);
                let ms = b.mask.narrow(1, t as i64, w as i64);
                let (logits, next) = net.forward_from(&xs, state.as_ref(), true);
                let (loss, k) = masked_loss(&logits, &ys, &ms);
                if k > 0.0 {
                    opt.backward_step_clip_norm(&loss, cfg.clip);
                    steps += 1;
                    loss_sum += loss.double_value(&[]) * k;
                    loss_n += k;
                }
                let tch::nn::LSTMState((h, c)) = next;
                state = Some(tch::nn::LSTMState((h.detach(), c.detach())));
                t += w;
            }
            progress.batch(
                epoch,
                bi + 1,
                batches.len(),
                if loss_n > 0.0 {
                    loss_sum / loss_n
                } else {
                    f64::NAN
                },
            );
        }
        let val_loss = eval_loss(&net, val, cfg.batch, cfg.device);
        let improved = val_loss < best;
        if improved {
            best = val_loss;
            best_epoch = epoch;
            since_best = 0;
            best_vs
                .copy(&vs)
                .map_err(|e| ModelError::InvalidConfig(format!("copying weights: {e}")))?;
        } else {
            since_best += 1;
        }
        let report = EpochReport {
            epoch,
            epochs: cfg.epochs,
            train_loss: if loss_n > 0.0 {
                loss_sum / loss_n
            } else {
                f64::NAN
            },
            val_loss,
            best: improved,
            seconds: t0.elapsed().as_secs_f64(),
            steps,
        };
        progress.epoch(&report);
        history.push(report);
        if since_best >= cfg.patience {
            break;
        }
    }
    // Keep the best epoch's weights (a NaN validation loss never improves: keep the last).
    let mut vs = vs;
    if best_epoch > 0 {
        vs.copy(&best_vs)
            .map_err(|e| ModelError::InvalidConfig(format!("copying weights: {e}")))?;
    }
    Ok(Trained {
        vs,
        net,
        history,
        best_epoch,
        optimizer_steps: steps,
        train_seconds: started.elapsed().as_secs_f64(),
    })
}
