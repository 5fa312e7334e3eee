//! Acceptance: independent Python clients (`requests` + `cryptography`, `websockets`, all
//! installed from PyPI into a venv under the target dir, cached between runs) authenticate
//! the way Kalshi's starter code does and read the order-book stream.
//!
//! Skipped, with a message, only when `python3` itself is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use kalshi_sim::ClockMode;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::LineEnding;
use serde_json::Value;

/// The WebSocket test's markets last 5 minutes and start on START's grid.
const WS_MARKET_MS: i64 = 300_000;
const _: () = assert!(START % WS_MARKET_MS == 0);

const PACKAGES: [&str; 3] = ["requests", "cryptography", "websockets"];

/// The venv's python, creating the venv and installing the packages on first use.
fn python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        if Command::new("python3").arg("--version").output().is_err() {
            eprintln!("SKIP python acceptance tests: python3 is not installed");
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kalshi_sim_pyenv");
        let py = dir.join("bin").join("python");
        let marker = dir.join(format!("installed-{}", PACKAGES.join("-")));
        if !marker.exists() {
            let out = Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&dir)
                .output()
                .expect("run python3 -m venv");
            assert!(
                out.status.success(),
                "python3 -m venv failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = Command::new(&py)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PACKAGES)
                .output()
                .expect("run pip");
            assert!(
                out.status.success(),
                "pip install {} failed: {}",
                PACKAGES.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&marker, "ok\n").expect("write marker");
        }
        Some(py)
    })
    .clone()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

fn write_pem(dir: &Path, name: &str, n: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        key(n)
            .1
            .rsa()
            .to_pkcs1_pem(LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    p
}

async fn run(py: &Path, args: Vec<String>) -> Value {
    let mut cmd = tokio::process::Command::new(py);
    cmd.args(&args).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the python client finishes within 120 s (hang guard)")
        .expect("run python");
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_client_authenticates_like_kalshis_starter_code() {
    let Some(py) = tokio::task::spawn_blocking(python).await.unwrap() else {
        return;
    };
    let sim = start(|_| {}).await;
    let t = active_ticker(&sim);
    let dir = tempfile::tempdir().unwrap();
    let pem = write_pem(dir.path(), "key.pem", 0);
    let wrong = write_pem(dir.path(), "wrong.pem", 2);
    let v = run(
        &py,
        vec![
            script("auth_check.py").display().to_string(),
            sim.rest_base(),
            key(0).0.expose().to_string(),
            pem.display().to_string(),
            wrong.display().to_string(),
            t.clone(),
        ],
    )
    .await;
    assert_eq!(v["ok_status"], 200, "{v}");
    assert_eq!(v["ok_body"]["balance"], 1_000_000);
    assert_eq!(v["query_status"], 200, "the query string is not signed");
    assert_eq!(v["wrong_status"], 401);
    assert_eq!(v["wrong_body"]["error"]["code"], "authentication_error");
    assert!(v["wrong_body"]["error"]["details"]
        .as_str()
        .unwrap()
        .ends_with("INCORRECT_API_KEY_SIGNATURE"));
    assert_eq!(v["unsigned_status"], 401);
    assert_eq!(v["order_status"], 201, "{v}");
    assert_eq!(v["order_body"]["client_order_id"], "py-1");
    assert_eq!(v["order_body"]["remaining_count"], "2.00");
    let o = sim.handle().with_engine(|e| {
        e.orders_of(sim.handle().default_account().unwrap())
            .map(|o| o.client_order_id.as_ref().map(|c| c.to_string()))
            .collect::<Vec<_>>()
    });
    assert_eq!(o, vec![Some("py-1".to_string())]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_sees_snapshot_and_contiguous_seq() {
    let Some(py) = tokio::task::spawn_blocking(python).await.unwrap() else {
        return;
    };
    // Real time ×5 so the book moves by itself while the client reads. The clock starts 1 s
    // into a 5-minute market (START is on that grid), so the market the client reads has a
    // minute of wall time left whatever the wall clock says: started at the wall clock, it
    // could close a moment after the subscription and the client would wait for deltas that
    // never come.
    let sim = start(|c| {
        c.clock = ClockMode::Realtime { speed: 5.0 };
        c.start_ms = Some(START + 1_000);
        c.engine.market_duration_ms = WS_MARKET_MS;
        c.engine.listing_lead_ms = WS_MARKET_MS;
        c.engine.noise.takers_per_minute = 60.0;
    })
    .await;
    let t = active_ticker(&sim);
    let dir = tempfile::tempdir().unwrap();
    let pem = write_pem(dir.path(), "key.pem", 0);
    let v = run(
        &py,
        vec![
            script("ws_check.py").display().to_string(),
            sim.ws_url(),
            key(0).0.expose().to_string(),
            pem.display().to_string(),
            t.clone(),
            "30".into(),
        ],
    )
    .await;
    assert_eq!(v["deltas"], 30, "{v}");
    assert_eq!(v["snapshot"]["type"], "orderbook_snapshot");
    assert_eq!(v["snapshot"]["msg"]["market_ticker"], t.as_str());
    assert_eq!(v["snapshot"]["seq"], 1);
    assert_eq!(v["contiguous"], true, "{}", v["seqs"]);
    assert_eq!(v["sids"], serde_json::json!([v["subscribed_sid"]]));
    let d = &v["first_delta"];
    assert!(d["price_dollars"].is_string() && d["delta_fp"].is_string());
    assert!(d["side"] == "yes" || d["side"] == "no");
    sim.shutdown().await;
}
