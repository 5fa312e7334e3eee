//! Writes a batch for the PyTorch parity check (`bench/python/torch_parity.py`): the input a
//! trained model sees and the probabilities this build computes for it.
//!
//!     cargo run --release -p edge_model --example export_batch -- STRATEGY_JSON OUT.safetensors [BATCH STEPS]
//!
//! The batch is `BATCH` sequences of `STEPS` steps (default 4 × 120) of normalised features
//! from a fixed generator, in the model's input layout `[batch, steps, n_features]`, stored as
//! `x` beside `p` (`[batch, steps]`, P(YES) from `EdgeNet::forward` on the whole sequences) and
//! `p_step` (the same from `EdgeNet::step`, one step at a time, as live trading runs it).

use std::error::Error;

use edge_model::LstmEdgeModel;
use pipeline::schema::strategy::Strategy;
use tch::{Kind, Tensor};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(strategy), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: export_batch STRATEGY_JSON OUT.safetensors [BATCH STEPS]".into());
    };
    let batch: i64 = args.next().map_or(Ok(4), |a| a.parse())?;
    let steps: i64 = args.next().map_or(Ok(120), |a| a.parse())?;
    let s = Strategy::load(std::path::Path::new(&strategy))?;
    let (model, _norm) = LstmEdgeModel::load(&s)?;
    let net = model.net();
    let f = net.config().n_features as i64;
    tch::manual_seed(11);
    let x = Tensor::randn([batch, steps, f], (Kind::Float, tch::Device::Cpu));
    let p = net.forward(&x).sigmoid();
    let mut state = None;
    let mut cols = Vec::new();
    for t in 0..steps {
        let (logit, st) = net.step(&x.select(1, t), state.as_ref());
        cols.push(logit.sigmoid());
        state = Some(st);
    }
    let p_step = Tensor::stack(&cols, 1);
    let diff = (&p - &p_step).abs().max().double_value(&[]);
    Tensor::write_safetensors(&[("x", &x), ("p", &p), ("p_step", &p_step)], &out)?;
    println!(
        "wrote {out}: x {:?}, p {:?}; forward vs step max |diff| {diff:.2e}",
        x.size(),
        p.size()
    );
    Ok(())
}
