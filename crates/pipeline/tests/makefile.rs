//! The Makefile a user of the original pipeline knows: `make help` lists every target with a
//! line, and the commands the original README shows expand (`make -n`, nothing run) to our
//! binaries with the user's arguments where they belong.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `make` in the repository, free of the flags of a `make test` that may be running us.
fn make() -> Command {
    let mut c = Command::new("make");
    c.current_dir(root());
    for v in [
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "MAKEOVERRIDES",
        "CONFIG",
        "CARGO",
    ] {
        c.env_remove(v);
    }
    c
}

/// `make -n ARGS` in the repository: the commands it would run.
fn dry(args: &[&str]) -> String {
    let o = make()
        .arg("-n")
        .arg("--no-print-directory")
        .args(args)
        .output()
        .expect("make runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "make -n {args:?}: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn make_help_lists_every_phony_target_with_a_line() {
    let o = make().args(["-s", "help"]).output().expect("make runs");
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let phony = makefile
        .lines()
        .find_map(|l| l.strip_prefix(".PHONY:"))
        .expect(".PHONY line");
    for t in phony.split_whitespace() {
        let line = help
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(t))
            .unwrap_or_else(|| panic!("make help does not list {t}:\n{help}"));
        assert!(
            line.split_whitespace().count() > 2,
            "{t} has no description: {line}"
        );
    }
}

#[test]
fn the_original_readme_commands_expand_to_our_binaries() {
    // make train CONFIG=… : training, then the post-train fixed evaluation.
    let t = dry(&["train", "CONFIG=config/sim.json"]);
    assert!(
        t.contains("train_edge_rnn --config \"config/sim.json\""),
        "{t}"
    );
    assert!(
        t.contains("evaluate_strategy --config \"config/sim.json\"")
            && t.contains("--mode fixed --test-frac 0.15"),
        "{t}"
    );
    // make train EVAL_AFTER_TRAIN=0 : no evaluation. (`make -n` prints the recipe's shell
    // `if`, so look at what the `if` tests.)
    let t = dry(&["train", "EVAL_AFTER_TRAIN=0"]);
    assert!(t.contains("if [ \"0\" != \"0\" ]"), "{t}");
    // make train POST_TRAIN_EVAL_ARGS="…" : those arguments for the evaluation.
    let t = dry(&[
        "train",
        "POST_TRAIN_EVAL_ARGS=--mode fixed --test-frac 0.2 --out pipeline_data/reports/post.json",
    ]);
    assert!(
        t.contains("--mode fixed --test-frac 0.2 --out pipeline_data/reports/post.json"),
        "{t}"
    );
    // make evaluate STRATEGY=… EVAL_ARGS="--mode walkforward …"
    let wf =
        "--mode walkforward --train-markets 200 --test-markets 50 --step-markets 50 --epochs 3";
    let t = dry(&[
        "evaluate",
        "STRATEGY=pipeline_data/gen/model/strategy.json",
        &format!("EVAL_ARGS={wf}"),
    ]);
    assert!(t.contains("-p evaluate_strategy --"), "{t}");
    assert!(
        t.contains("--strategy \"pipeline_data/gen/model/strategy.json\"") && t.contains(wf),
        "{t}"
    );
    // make sync-labels SYNC_ARGS="--output … --unresolved-out …" (the original's spelling).
    let t = dry(&[
        "sync-labels",
        "SYNC_ARGS=--output out/labels.json --unresolved-out out/unresolved.json",
    ]);
    assert!(
        t.contains("-p sync_labels --")
            && t.contains("--output out/labels.json --unresolved-out out/unresolved.json"),
        "{t}"
    );
    // make live-dry STRATEGY=… SERIES=… : run_live, never --live.
    let t = dry(&[
        "live-dry",
        "STRATEGY=pipeline_data/gen/model/strategy.json",
        "SERIES=KXBTC15M",
    ]);
    assert!(
        t.contains("-p run_live --")
            && t.contains("--strategy \"pipeline_data/gen/model/strategy.json\"")
            && t.contains("--series \"KXBTC15M\""),
        "{t}"
    );
    assert!(!t.contains("--live"), "{t}");
    // make labels, make download: our binaries on the configured config.
    assert!(dry(&["labels"]).contains("-p build_labels -- --config \"config/runtime.json\""));
    assert!(dry(&["download"]).contains("-p download_highres -- --config \"config/runtime.json\""));
}
