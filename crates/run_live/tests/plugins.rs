//! Out-of-process plugins in dry-run: the example Python plugin trades; a plugin that crashes,
//! hangs or writes garbage is halted and reported while the runner goes on to a clean stop.
//! Skipped, with a message, when `python3` is missing.

mod common;

use common::*;
use serde_json::json;

fn have_python() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!("SKIP plugin tests: python3 is not installed");
    }
    ok
}

/// A plugin that answers like the example until its `n`-th line, then does `then` (Python).
fn faulty(s: &Setup, n: u32, then: &str) {
    let code = format!(
        "import os, sys, time\n\
         class Faulty:\n\
         \x20   def __init__(self):\n\
         \x20       self.n = 0\n\
         \x20   def on_line(self, line, ctx, now_ms):\n\
         \x20       self.n += 1\n\
         \x20       if self.n >= {n}:\n\
         \x20           {then}\n\
         \x20       return []\n"
    );
    std::fs::write(s.root.join("faulty_plugin.py"), code).unwrap();
    plugin_strategy(
        &s.root.join("strategy.json"),
        "faulty_plugin",
        "Faulty",
        json!({}),
        tight_risk(),
    );
}

async fn halted_with(seed: u64, then: &str, why: &str) {
    if !have_python() {
        return;
    }
    let s = start(sim_config(seed, 4_000, vec![])).await;
    faulty(&s, 20, then);
    let done = run_to_end(&s.config, &["--duration", "6"]).await;
    assert_eq!(done.code, Some(0), "the runner survives: {}", done.stderr);
    assert!(done.stderr.contains("plugin failed"), "{}", done.stderr);
    let j = journal(&s.live_dir);
    let st = of_type(&j, "state");
    let halt = st
        .iter()
        .find(|v| v["to"] == "halted")
        .unwrap_or_else(|| panic!("no halt: {st:?}"));
    let w = halt["why"].as_str().unwrap();
    assert!(w.contains("the strategy failed") && w.contains(why), "{w}");
    // Rows kept coming after the halt (the runner went on).
    let at = j.iter().position(|v| v == *halt).unwrap();
    assert!(j[at..].iter().filter(|v| v["type"] == "row").count() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_plugin_trades_in_dry_run() {
    if !have_python() {
        return;
    }
    let s = start(sim_config(41, 4_000, vec![])).await;
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/example_plugin.py"
    );
    std::fs::copy(example, s.root.join("example_plugin.py")).unwrap();
    plugin_strategy(
        &s.root.join("strategy.json"),
        "example_plugin",
        "Momentum",
        json!({"lookback": 3, "min_rise": 0.0, "max_price": 0.95, "count": 1}),
        tight_risk(),
    );
    let done = run_to_end(&s.config, &["--duration", "10"]).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let j = journal(&s.live_dir);
    assert!(
        !of_type(&j, "fill").is_empty(),
        "the example plugin never traded"
    );
    assert!(of_type(&j, "state")
        .iter()
        .all(|v| v["to"] != "halted" || v["why"] == "duration reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_plugin_is_halted() {
    halted_with(42, "os._exit(3)", "exited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_plugin_is_halted() {
    halted_with(43, "time.sleep(30)", "no answer within").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_writing_garbage_is_halted() {
    halted_with(
        44,
        "sys.__stdout__.write('hello there\\n'); sys.__stdout__.flush()",
        "not a run_live.plugin/v1 reply",
    )
    .await;
}
