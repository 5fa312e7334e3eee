//! The edge network end to end: it learns, streams exactly like it runs in batch, is causal, and
//! its weights survive a trip through a .safetensors file bit for bit.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use edge_model::{load_safetensors, save_safetensors, EdgeNet, EdgeNetConfig, ModelError};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Reduction, Tensor};

/// libtorch's RNG is process-global and tests run on parallel threads: hold this while seeding
/// and drawing, so each test sees the same random numbers whatever else runs.
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn seeded(seed: i64) -> MutexGuard<'static, ()> {
    let guard = TORCH_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    guard
}

fn cfg(n_features: usize, hidden: usize, layers: usize, dropout: f64) -> EdgeNetConfig {
    EdgeNetConfig {
        n_features,
        hidden,
        layers,
        dropout,
    }
}

fn build(seed: i64, cfg: &EdgeNetConfig) -> (nn::VarStore, EdgeNet) {
    let _rng = seeded(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EdgeNet::new(&vs.root(), cfg).expect("valid config");
    (vs, net)
}

/// Deterministic inputs in [-1, 1) from a 64-bit LCG (independent of libtorch's RNG).
fn lcg_tensor(seed: u64, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_slice(&data).reshape(shape)
}

fn bits(t: &Tensor) -> Vec<u32> {
    let flat: Vec<f32> = Vec::try_from(&t.flatten(0, -1)).unwrap();
    flat.iter().map(|v| v.to_bits()).collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn params(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn parameter_names_match_pytorch_lstm_and_linear() {
    let (vs, _net) = build(0, &cfg(5, 7, 2, 0.0));
    let shapes: Vec<(String, Vec<i64>)> = params(&vs)
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    let expect = [
        ("head.bias", vec![1]),
        ("head.weight", vec![1, 7]),
        ("lstm.bias_hh_l0", vec![28]),
        ("lstm.bias_hh_l1", vec![28]),
        ("lstm.bias_ih_l0", vec![28]),
        ("lstm.bias_ih_l1", vec![28]),
        ("lstm.weight_hh_l0", vec![28, 7]),
        ("lstm.weight_hh_l1", vec![28, 7]),
        ("lstm.weight_ih_l0", vec![28, 5]),
        ("lstm.weight_ih_l1", vec![28, 7]),
    ];
    let expect: Vec<(String, Vec<i64>)> = expect
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    assert_eq!(shapes, expect);
    // PyTorch's nn.LSTM init: every LSTM parameter uniform in ±1/sqrt(hidden).
    let bound = 1.0 / 7f64.sqrt();
    for (name, t) in params(&vs).iter().filter(|(n, _)| n.starts_with("lstm.")) {
        let m = t.abs().max().double_value(&[]);
        assert!(
            m <= bound && m > 0.0,
            "{name}: max |w| = {m}, bound {bound}"
        );
    }
}

#[test]
fn training_with_adamw_reduces_the_loss_on_a_toy_problem() {
    // Target at step t: is the running sum of feature 0 up to t positive? Needs memory (the
    // LSTM), is causal, and the second feature is noise.
    let (batch, seq) = (32i64, 20i64);
    let xs = lcg_tensor(7, &[batch, seq, 2]);
    let ys = xs
        .select(2, 0)
        .cumsum(1, Kind::Float)
        .gt(0.0)
        .to_kind(Kind::Float);

    let (vs, net) = build(42, &cfg(2, 12, 1, 0.0));
    let mut opt = nn::AdamW::default().build(&vs, 0.02).unwrap();
    let loss_of = |train: bool| {
        net.forward_t(&xs, train)
            .binary_cross_entropy_with_logits::<Tensor>(&ys, None, None, Reduction::Mean)
    };
    let initial = tch::no_grad(|| loss_of(false)).double_value(&[]);
    for _ in 0..150 {
        let loss = loss_of(true);
        opt.backward_step(&loss);
    }
    let last = tch::no_grad(|| loss_of(false)).double_value(&[]);
    assert!(initial.is_finite() && last.is_finite());
    assert!(
        last < 0.5 * initial,
        "loss went from {initial:.4} to {last:.4}, expected < half"
    );
    // The gradients reached every parameter.
    for (name, t) in params(&vs) {
        assert!(t.grad().defined(), "{name} got no gradient");
    }
}

#[test]
fn streaming_steps_equal_the_full_sequence_forward() {
    let (_vs, net) = build(3, &cfg(4, 6, 2, 0.3));
    let (batch, seq) = (3i64, 9i64);
    let xs = lcg_tensor(11, &[batch, seq, 4]);
    let full = tch::no_grad(|| net.forward(&xs));
    assert_eq!(full.size(), [batch, seq]);

    let mut state = None;
    let mut stepped = Vec::new();
    for t in 0..seq {
        let (logits, next) = net.step(&xs.select(1, t), state.as_ref());
        assert_eq!(logits.size(), [batch]);
        stepped.push(logits);
        state = Some(next);
    }
    let stepped = Tensor::stack(&stepped, 1);
    let diff = max_abs_diff(&full, &stepped);
    assert!(diff < 1e-5, "step and forward disagree by {diff}");

    // An explicit zero state is the same as None, and the state has [layers, batch, hidden].
    let (a, st) = net.step(&xs.select(1, 0), Some(&net.zero_state(batch)));
    let (b, _) = net.step(&xs.select(1, 0), None);
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(st.h().size(), [2, batch, 6]);
    assert_eq!(st.c().size(), [2, batch, 6]);
    // step() is inference-only: nothing in its outputs tracks gradients.
    assert!(!a.requires_grad() && !st.h().requires_grad());
}

#[test]
fn forward_is_causal_and_dropout_only_in_training() {
    let (_vs, net) = build(5, &cfg(3, 8, 2, 0.5));
    let xs = lcg_tensor(13, &[2, 12, 3]);
    let base = tch::no_grad(|| net.forward(&xs));
    // Changing step 6 leaves steps 0..6 untouched and changes step 6 itself.
    let perturbed = xs.copy();
    let _ = perturbed.narrow(1, 6, 1).fill_(5.0);
    let after = tch::no_grad(|| net.forward(&perturbed));
    assert_eq!(bits(&base.narrow(1, 0, 6)), bits(&after.narrow(1, 0, 6)));
    assert!(max_abs_diff(&base.narrow(1, 6, 1), &after.narrow(1, 6, 1)) > 1e-4);

    // Inference is deterministic; training mode drops units.
    assert_eq!(bits(&base), bits(&tch::no_grad(|| net.forward(&xs))));
    let _rng = seeded(1);
    let trained = tch::no_grad(|| net.forward_t(&xs, true));
    assert!(
        max_abs_diff(&base, &trained) > 1e-4,
        "dropout had no effect in training mode"
    );
}

#[test]
fn safetensors_round_trip_is_bitwise_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.safetensors");
    let c = cfg(4, 5, 2, 0.1);
    let (vs1, net1) = build(100, &c);
    save_safetensors(&vs1, &path).unwrap();

    let (mut vs2, net2) = build(200, &c);
    let before = params(&vs2);
    assert!(
        params(&vs1)
            .iter()
            .zip(&before)
            .any(|((_, a), (_, b))| bits(a) != bits(b)),
        "different seeds should give different weights"
    );
    load_safetensors(&mut vs2, &path).unwrap();
    let (p1, p2) = (params(&vs1), params(&vs2));
    assert_eq!(p1.len(), 10);
    for ((n1, t1), (n2, t2)) in p1.iter().zip(&p2) {
        assert_eq!(n1, n2);
        assert_eq!(t1.kind(), t2.kind(), "{n1}");
        assert_eq!(t1.size(), t2.size(), "{n1}");
        assert_eq!(bits(t1), bits(t2), "{n1} differs after reload");
    }
    // The network built on vs2 sees the loaded weights (shared tensors), and they stay trainable.
    let xs = lcg_tensor(17, &[2, 6, 4]);
    let (o1, o2) = tch::no_grad(|| (net1.forward(&xs), net2.forward(&xs)));
    assert_eq!(bits(&o1), bits(&o2));
    assert!(vs2.trainable_variables().iter().all(|t| t.requires_grad()));

    // Saving is deterministic and leaves no temporary file behind.
    let again = dir.path().join("again.safetensors");
    save_safetensors(&vs2, &again).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

fn assert_untouched(vs: &nn::VarStore, before: &[(String, Tensor)]) {
    for ((n, a), (_, b)) in params(vs).iter().zip(before) {
        assert_eq!(bits(a), bits(b), "{n} changed by a failed load");
    }
}

fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    params(vs).into_iter().map(|(n, t)| (n, t.copy())).collect()
}

#[test]
fn loading_a_file_with_wrong_shapes_fails_naming_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hidden8.safetensors");
    let (vs8, _) = build(1, &cfg(3, 8, 1, 0.0));
    save_safetensors(&vs8, &path).unwrap();

    let (mut vs4, _) = build(2, &cfg(3, 4, 1, 0.0));
    let before = snapshot(&vs4);
    let err = load_safetensors(&mut vs4, &path).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ModelError::Mismatch { ref problems, .. } if problems.len() == 5),
        "{msg}"
    );
    assert!(msg.contains("hidden8.safetensors"), "{msg}");
    assert!(
        msg.contains(
            "tensor `lstm.weight_hh_l0` has shape [32, 8] in the file but [16, 4] in the network"
        ),
        "{msg}"
    );
    assert_untouched(&vs4, &before);
}

#[test]
fn loading_a_file_with_missing_unexpected_or_retyped_tensors_fails() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(3, 4, 1, 0.0);
    let (mut vs, _) = build(9, &c);
    let before = snapshot(&vs);
    let mut named = params(&vs);

    // Missing head.bias (name-sorted first), plus an extra tensor.
    let path = dir.path().join("partial.safetensors");
    let head_bias = named.remove(0);
    assert_eq!(head_bias.0, "head.bias");
    named.push((
        "lstm.weight_ih_l9".to_string(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&named, &path).unwrap();
    let msg = load_safetensors(&mut vs, &path).unwrap_err().to_string();
    assert!(msg.contains("partial.safetensors"), "{msg}");
    assert!(msg.contains("missing tensor `head.bias`"), "{msg}");
    assert!(
        msg.contains("unexpected tensor `lstm.weight_ih_l9`"),
        "{msg}"
    );
    assert_untouched(&vs, &before);

    // Right names and shapes, wrong dtype.
    let path = dir.path().join("f64.safetensors");
    let doubles: Vec<(String, Tensor)> = params(&vs)
        .into_iter()
        .map(|(n, t)| (n, t.to_kind(Kind::Double)))
        .collect();
    Tensor::write_safetensors(&doubles, &path).unwrap();
    let msg = load_safetensors(&mut vs, &path).unwrap_err().to_string();
    assert!(
        msg.contains("f64.safetensors") && msg.contains("dtype Double in the file but Float"),
        "{msg}"
    );
    assert_untouched(&vs, &before);
}

#[test]
fn unreadable_weights_files_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut vs, _) = build(4, &cfg(2, 3, 1, 0.0));

    let missing = dir.path().join("nope.safetensors");
    let err = load_safetensors(&mut vs, &missing).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope.safetensors"), "{err}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file").unwrap();
    let err = load_safetensors(&mut vs, &garbage).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
    assert!(err.to_string().contains("garbage.safetensors"), "{err}");

    let into_missing_dir = dir.path().join("no_such_dir").join("w.safetensors");
    let err = save_safetensors(&vs, &into_missing_dir).unwrap_err();
    assert!(matches!(err, ModelError::Write { .. }), "{err}");
    assert!(err.to_string().contains("w.safetensors"), "{err}");
    assert!(!Path::new(&into_missing_dir).exists());
}
