//! What the `evaluate_strategy` tests share: the binary on a data folder, its output, its report.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// `evaluate_strategy` on `data`'s snapshot files and `labels.json`, with `args`.
pub fn evaluate(data: &Path, strategy: &Path, out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evaluate_strategy"))
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sim.json"))
        .arg("--strategy")
        .arg(strategy)
        .arg("--snapshots")
        .arg(data.join("*.snap_*ms.jsonl.gz"))
        .arg("--labels")
        .arg(data.join("labels.json"))
        .arg("--out")
        .arg(out)
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run evaluate_strategy")
}

/// The run succeeded; its stdout.
pub fn ok(o: &Output) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// A report (or any JSON file).
pub fn report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
