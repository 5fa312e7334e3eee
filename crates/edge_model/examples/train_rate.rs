//! Training speed of the edge network, the way `train_edge_rnn` trains it (the same
//! `edge_model::train::fit`: batches of padded sequences, truncated BPTT with carried state,
//! AdamW, clipping), at 1 and 2 torch threads:
//!
//!     cargo run --release -p edge_model --example train_rate [-- SEQUENCES STEPS]
//!
//! Synthetic sequences (default 256 of 900 steps, 8 features, batch 32, window 300, hidden 32:
//! a 15-minute market at 1 s) from a fixed LCG; prints optimizer steps/s and step-samples/s.

use std::time::Instant;

use edge_model::train::{fit, SeqData, TrainConfig};
use pipeline::features::N_FEATURES;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let len: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(900);
    let mut s = 7u64;
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let seqs: Vec<SeqData> = (0..n)
        .map(|i| SeqData {
            x: (0..len * N_FEATURES).map(|_| rnd()).collect(),
            len,
            y: (i % 2) as f32,
            market: i,
        })
        .collect();
    let val = seqs[..8].to_vec();
    for threads in [1, 2] {
        tch::set_num_threads(threads);
        let cfg = TrainConfig {
            epochs: 2,
            patience: 10,
            ..TrainConfig::default()
        };
        let t = Instant::now();
        let trained = fit(&seqs, &val, &cfg, &mut ()).expect("train");
        let secs = t.elapsed().as_secs_f64();
        let samples = (n * len * cfg.epochs) as f64;
        println!(
            "threads {threads}: {} optimizer steps in {secs:.2} s = {:.1} steps/s, {:.0} step-samples/s (batch {}, window {}, hidden {}, {n} sequences x {len} steps, {} epochs)",
            trained.optimizer_steps,
            trained.optimizer_steps as f64 / secs,
            samples / secs,
            cfg.batch,
            cfg.window,
            cfg.hidden,
            cfg.epochs
        );
    }
}
