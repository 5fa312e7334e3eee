//! Bad input is a clear message and exit 2 before anything connects: the runtime config
//! points at a port nothing listens on, so a runner that got as far as the network would say
//! something else.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

struct Dir {
    _d: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

fn setup(with_credentials: bool) -> Dir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let keys = root.join("keys");
    let (env, pem) = if with_credentials {
        let (id, key) = common::key();
        kalshi_sim::keys::write_credentials(&keys, &id, &key).unwrap()
    } else {
        (keys.join(".env"), keys.join("missing.pem"))
    };
    let config = root.join("runtime.json");
    let v = json!({
        "schema": "runtime/v1",
        "environment": "sim",
        "exchange": {"sim": {"rest_base": "http://127.0.0.1:1/trade-api/v2"}},
        "env_file": env, "pem_file": pem,
        "series": common::SERIES,
        "live_dir": root.join("live"),
        "strategy_path": root.join("strategy.json"),
        "snapshot_ms": 100
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    Dir {
        _d: d,
        root,
        config,
    }
}

fn rnn_strategy(path: &Path, weights: &str, sha: &str, series: &str) {
    let features: Vec<Value> = pipeline::features::FEATURE_NAMES
        .iter()
        .map(|n| json!({"name": n, "mean": 0.0, "std": 1.0}))
        .collect();
    let v = json!({
        "schema": "strategy/v1", "name": "t", "strategy_type": "rnn_edge_v1",
        "created_at": "2026-12-01T00:00:00Z",
        "markets": {"series_ticker": series},
        "model": {"weights": weights, "weights_sha256": sha, "features": features,
                  "n_features": features.len(), "step_ms": 1000, "seq_len": 60, "hidden": 4,
                  "layers": 1, "dropout": 0.0, "device": "cpu"},
        "signals": {"min_edge": "0.0300", "min_price": "0.0500", "max_price": "0.9500",
                    "max_spread": "0.0500", "min_seconds_to_close": 60, "sides": "both"},
        "execution": {"limit_offset": "0.0000", "time_in_force": "immediate_or_cancel",
                      "contracts_per_order": "1.00", "post_only": false,
                      "self_trade_prevention": "taker_at_cross"},
        "risk": common::tight_risk()
    });
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn run(d: &Dir, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_run_live"))
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_2(d: &Dir, args: &[&str], wants: &[&str]) {
    let (code, err) = run(d, args);
    assert_eq!(code, Some(2), "{args:?}: {err}");
    for w in wants {
        assert!(err.contains(w), "{args:?}: {w:?} not in:\n{err}");
    }
    assert!(!err.contains("127.0.0.1:1"), "it tried the network: {err}");
}

#[test]
fn live_without_credentials() {
    let d = setup(false);
    common::plugin_strategy(
        &d.root.join("strategy.json"),
        "builtin",
        "buy_every_row",
        json!({}),
        common::tight_risk(),
    );
    expect_2(&d, &["--live"], &["--live needs the exchange credentials"]);
    // Dry-run needs them too (the market data socket is signed), and says so.
    expect_2(
        &d,
        &[],
        &["market data connection needs the exchange credentials"],
    );
}

#[test]
fn missing_or_mismatched_model_file() {
    let d = setup(true);
    let s = d.root.join("strategy.json");
    rnn_strategy(&s, "model.safetensors", &"0".repeat(64), common::SERIES);
    expect_2(&d, &[], &["strategy.json", "model.safetensors"]);
    std::fs::write(d.root.join("model.safetensors"), b"not the trained weights").unwrap();
    expect_2(&d, &[], &["strategy.json", "sha256"]);
}

#[test]
fn malformed_strategy_unknown_plugin_and_uncovered_series() {
    let d = setup(true);
    let s = d.root.join("strategy.json");
    std::fs::write(&s, b"{\"schema\": \"strategy/v1\", \"name\": ").unwrap();
    expect_2(&d, &[], &["strategy.json"]);
    common::plugin_strategy(
        &s,
        "builtin",
        "no_such_strategy",
        json!({}),
        common::tight_risk(),
    );
    expect_2(
        &d,
        &[],
        &["plugin.class", "no_such_strategy", "buy_every_row"],
    );
    common::plugin_strategy(
        &s,
        "builtin",
        "buy_every_row",
        json!({"side": "maybe"}),
        common::tight_risk(),
    );
    expect_2(&d, &[], &["plugin.params.side"]);
    rnn_strategy(&s, "model.safetensors", &"0".repeat(64), "KXETH15M");
    expect_2(&d, &[], &["KXETH15M", "does not cover series KXBTC15M"]);
    expect_2(&d, &["--metrics-addr", "0.0.0.0:9184"], &["loopback"]);
}
