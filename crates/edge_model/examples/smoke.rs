//! Smoke check that libtorch loads and the edge network runs end to end, with no environment
//! variables (the rpath comes from build/torch_rpath.rs):
//!
//!     cargo run -p edge_model --example smoke
//!
//! Builds a small network, runs a batch forward, streams the same sequences step by step,
//! saves and reloads the weights, and exits non-zero if any of it disagrees.

use std::error::Error;
use std::time::Instant;

use edge_model::{load_safetensors, save_safetensors, EdgeNet, EdgeNetConfig};
use tch::{nn, Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    tch::manual_seed(0);
    let cfg = EdgeNetConfig {
        n_features: 16,
        hidden: 32,
        layers: 2,
        dropout: 0.1,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EdgeNet::new(&vs.root(), &cfg)?;
    let n_params: i64 = vs
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum();

    let (batch, seq) = (4, 30);
    let xs = Tensor::randn([batch, seq, 16], (Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| net.forward(&xs));
    let mut state = None;
    let mut stepped = Vec::new();
    for t in 0..seq {
        let (l, s) = net.step(&xs.select(1, t), state.as_ref());
        stepped.push(l);
        state = Some(s);
    }
    let diff = (&logits - Tensor::stack(&stepped, 1))
        .abs()
        .max()
        .double_value(&[]);

    let dir = std::env::temp_dir().join(format!("edge_model_smoke_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("edge.safetensors");
    save_safetensors(&vs, &path)?;
    let mut vs2 = nn::VarStore::new(Device::Cpu);
    let net2 = EdgeNet::new(&vs2.root(), &cfg)?;
    load_safetensors(&mut vs2, &path)?;
    let reload_diff = tch::no_grad(|| (&logits - net2.forward(&xs)).abs().max().double_value(&[]));
    std::fs::remove_dir_all(&dir)?;

    let p = logits.sigmoid();
    println!(
        "libtorch ok ({} intra-op threads): EdgeNet {cfg:?}, {n_params} parameters",
        tch::get_num_threads()
    );
    println!(
        "forward {:?} -> P(yes) in [{:.3}, {:.3}]; step-vs-forward max |diff| {diff:.2e}; \
         reload max |diff| {reload_diff:.2e}; {:.0} ms",
        logits.size(),
        p.min().double_value(&[]),
        p.max().double_value(&[]),
        start.elapsed().as_secs_f64() * 1e3
    );
    if diff > 1e-5 || reload_diff != 0.0 {
        return Err(format!("mismatch: step {diff:e}, reload {reload_diff:e}").into());
    }
    Ok(())
}
