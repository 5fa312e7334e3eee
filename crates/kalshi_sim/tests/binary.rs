//! The `kalshi_sim` binary: help, exit codes, and a real `serve` run whose key files the
//! pipeline's own loaders accept.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pipeline::auth::Signer;
use pipeline::secrets::{ApiKeyId, EnvFile, PrivateKey};

const BIN: &str = env!("CARGO_BIN_EXE_kalshi_sim");

#[test]
fn help_lists_subcommands_and_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve"), "{text}");
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--addr",
        "--addr-file",
        "--series",
        "--market-seconds",
        "--seed",
        "--speed",
        "--key-dir",
        "--public-key",
        "--key-id",
        "--tier",
        "--fault",
        "--duration",
        "--planted-edge",
        "--bars",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let out = Command::new(BIN)
        .args(["serve", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--market-seconds",
            "0",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--market-seconds must be positive"), "{err}");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tier",
            "gold",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tier"));
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--fault",
            "10=explode",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A user's own .env is never overwritten.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "KALSHI_API_KEY_ID=real\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--duration",
            "1",
            "--key-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        "KALSHI_API_KEY_ID=real\n"
    );
}

#[tokio::test]
async fn serve_writes_address_and_credentials_then_exits_after_duration() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let keys = dir.path().join("secrets");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--market-seconds",
            "30",
            "--speed",
            "10",
            "--duration",
            "6",
            "--tier",
            "unlimited",
            "--seed",
            "7",
            "--fault",
            r#"3600={"kind":"http_status","status":503,"count":1}"#,
        ])
        .arg("--addr-file")
        .arg(&addr_file)
        .arg("--key-dir")
        .arg(&keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first stdout line announces the server (the address file is written before it).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        lines.map_while(Result::ok).collect::<Vec<_>>()
    });
    let line = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("starts")
        .unwrap();
    assert!(line.starts_with("kalshi_sim listening"), "{line}");
    let addr = std::fs::read_to_string(&addr_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(line.contains(&addr));
    let base = format!("http://{addr}/trade-api/v2");

    let http = reqwest::Client::new();
    let v: serde_json::Value = http
        .get(format!("{base}/markets?status=open"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["markets"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["markets"][0]["status"], "active");
    // Warm-up markets give settled history at once.
    let v: serde_json::Value = http
        .get(format!("{base}/markets?status=settled"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["markets"].as_array().unwrap().len() >= 3, "{v}");

    // The pipeline's loaders accept the written key files (mode 600 enforced).
    let env = EnvFile::load(&keys.join(".env")).unwrap();
    let id = ApiKeyId::new(env.get("KALSHI_API_KEY_ID").expect("key id in .env"));
    let key = PrivateKey::load(&keys.join("kalshi_sim_key.pem")).unwrap();
    let h = Signer::new(id, &key).headers("GET", "/trade-api/v2/portfolio/balance");
    let mut rb = http.get(format!("{base}/portfolio/balance"));
    for (k, v) in h.pairs() {
        rb = rb.header(k, v);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["balance_dollars"], "10000.0000");

    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "exits cleanly after --duration");
    let rest = reader.await.unwrap();
    assert!(
        rest.iter().any(|l| l.starts_with("credentials: env_file")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn serve_registers_an_existing_public_key() {
    use rand::SeedableRng;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let key = PrivateKey::from_rsa(rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap());
    let pub_pem = dir.path().join("pub.pem");
    std::fs::write(
        &pub_pem,
        key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--duration",
            "5",
            "--key-id",
            "my-key",
            "--public-key",
        ])
        .arg(&pub_pem)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
        lines.map_while(Result::ok).collect::<Vec<_>>()
    });
    let first = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("starts")
        .unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("REST base in the announcement")
        .to_string();
    let path = "/trade-api/v2/portfolio/balance";
    let http = reqwest::Client::new();
    for (signer, want) in [
        (Signer::new(ApiKeyId::new("my-key"), &key), 200),
        (Signer::new(ApiKeyId::new("other-key"), &key), 401),
    ] {
        let mut rb = http.get(format!("{base}/portfolio/balance"));
        for (k, v) in signer.headers("GET", path).pairs() {
            rb = rb.header(k, v);
        }
        assert_eq!(rb.send().await.unwrap().status(), want);
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let rest = reader.await.unwrap();
    assert!(
        rest.iter().all(|l| !l.starts_with("credentials")),
        "no key files with --public-key: {rest:?}"
    );
    assert!(
        !dir.path().join("pipeline_data").exists(),
        "nothing written with --public-key"
    );
}
