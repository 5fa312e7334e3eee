//! The `build_labels` binary as a user runs it: exit codes, printed summary, files written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_build_labels");

/// A working folder with `config/runtime.json` pointing at `data/` and `out/`.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("config")).unwrap();
    fs::create_dir_all(dir.path().join("data")).unwrap();
    fs::write(
        dir.path().join("config/runtime.json"),
        json!({"schema": "runtime/v1", "data_dir": "data",
               "labels_path": "out/labels.json", "unresolved_path": "out/unresolved.json"})
        .to_string(),
    )
    .unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args).env("RUST_LOG", "warn");
    for v in [
        "KALSHI_ENVIRONMENT",
        "KALSHI_REST_BASE",
        "KALSHI_WS_URL",
        "KALSHI_SERIES",
        "KALSHI_DATA_DIR",
    ] {
        cmd.env_remove(v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn labels(dir: &Path, rel: &str) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join(rel)).unwrap()).unwrap()
}

fn sidecar(dir: &Path) {
    write(
        &dir.join("data"),
        "KX_markets.jsonl",
        concat!(
            r#"{"ts_ms":1,"ticker":"KX-S1","source":"ws","status":"determined","result":"yes","close_time":"2026-05-11T06:00:00Z"}"#,
            "\n",
            r#"{"ts_ms":2,"ticker":"KX-S2","source":"rest","status":"active"}"#,
            "\n"
        ),
    );
}

#[test]
fn builds_from_the_config_and_prints_a_summary() {
    let dir = workspace();
    sidecar(dir.path());
    write(
        dir.path(),
        "arch.json",
        &json!({"KX-A1": {"status": "finalized", "result": "no"},
                "KX-A2": {"status": "finalized", "result": "scalar"}})
        .to_string(),
    );
    let o = run(dir.path(), &["--archive", "arch.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("labels: 2 total, 2 new"), "{out}");
    assert!(out.contains("by source: archive 1, sidecar 1"), "{out}");
    assert!(out.contains("inputs: sidecar 1, archive 1"), "{out}");
    assert!(out.contains("by reason: not_settled 1, scalar 1"), "{out}");
    assert!(
        out.contains("conflicts: 0") && out.contains("problems: 0"),
        "{out}"
    );
    let l = labels(dir.path(), "out/labels.json");
    assert_eq!(l["schema"], "labels/v1");
    assert_eq!(l["labels"]["KX-S1"]["result"], "yes");
    assert_eq!(l["labels"]["KX-S1"]["close_time"], "2026-05-11T06:00:00Z");
    assert_eq!(l["labels"]["KX-A1"]["source"], "archive");
    let u = labels(dir.path(), "out/unresolved.json");
    assert_eq!(u["schema"], "labels-unresolved/v1");
    assert_eq!(u["unresolved"].as_array().unwrap().len(), 2);

    // Run again: nothing new, same labels.
    let o = run(dir.path(), &["--archive", "arch.json"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("labels: 2 total, 0 new"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn conflicts_are_printed_and_fail_only_with_strict() {
    let dir = workspace();
    write(
        dir.path(),
        "a.json",
        &json!({"KX-1": {"status": "finalized", "result": "yes"}}).to_string(),
    );
    write(
        dir.path(),
        "b.json",
        &json!({"KX-1": {"status": "finalized", "result": "no"}}).to_string(),
    );
    let o = run(dir.path(), &["--archive", "*.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("conflicts: 1"), "{out}");
    assert!(
        out.contains(
            "KX-1: result conflict: kept yes from archive a.json; rejected no from archive b.json"
        ),
        "{out}"
    );
    assert_eq!(
        labels(dir.path(), "out/labels.json")["labels"]["KX-1"]["result"],
        "yes"
    );

    fs::remove_dir_all(dir.path().join("out")).unwrap();
    let o = run(dir.path(), &["--archive", "*.json", "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--strict: 1 conflict(s)"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("result conflict"));
    // Still written.
    assert_eq!(
        labels(dir.path(), "out/labels.json")["labels"]["KX-1"]["result"],
        "yes"
    );
}

#[test]
fn a_malformed_archive_is_named_and_skipped() {
    let dir = workspace();
    write(
        dir.path(),
        "good.json",
        &json!([{"ticker": "KX-1", "status": "finalized", "result": "yes"}]).to_string(),
    );
    write(dir.path(), "bad.json", "[{\"ticker\": \"KX-2\", \"status\"");
    let o = run(
        dir.path(),
        &["--archive", "good.json", "--archive", "bad.json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("archive 2 (1 skipped)"), "{out}");
    assert!(
        out.contains("bad.json: invalid JSON") && out.contains("file skipped"),
        "{out}"
    );
    assert_eq!(
        labels(dir.path(), "out/labels.json")["labels"]["KX-1"]["result"],
        "yes"
    );
    let o = run(
        dir.path(),
        &[
            "--archive",
            "good.json",
            "--archive",
            "bad.json",
            "--strict",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn explicit_paths_and_flags() {
    let dir = workspace();
    sidecar(dir.path());
    write(dir.path(), "old.json", r#"{"KX-OLD": 1}"#);
    let o = run(
        dir.path(),
        &[
            "--no-data-dir",
            "--labels-in",
            "old.json",
            "--output",
            "elsewhere/l.json",
            "--unresolved-out",
            "elsewhere/u.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = labels(dir.path(), "elsewhere/l.json");
    let keys: Vec<&String> = l["labels"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["KX-OLD"], "the sidecar was not read");
    assert!(dir.path().join("elsewhere/u.json").exists());
    assert!(!dir.path().join("out").exists());
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = workspace();
    fs::create_dir_all(dir.path().join("out")).unwrap();
    write(dir.path(), "out/labels.json", r#"{"KX-1": "perhaps"}"#);
    let o = run(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("labels.json") && err.contains("KX-1"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("out/labels.json")).unwrap(),
        r#"{"KX-1": "perhaps"}"#
    );
    assert!(!dir.path().join("out/unresolved.json").exists());

    let dir = workspace();
    let o = run(dir.path(), &["--archive", "missing.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--archive \"missing.json\": no such file"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out").exists());

    let o = run(dir.path(), &["--config", "nope.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.json"), "{}", stderr(&o));

    let o = run(dir.path(), &["--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
}
