//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `/work/shared` (the read-only reference data) located as `<manifest>/../../../shared`, or
/// `None` (tests that need it print a SKIP line and pass).
pub fn shared_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    d.is_dir().then(|| d.canonicalize().unwrap_or(d))
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

use pipeline::auth::Signer;
use pipeline::secrets::{ApiKeyId, PrivateKey};
use rsa::RsaPrivateKey;

/// A deterministic 1024-bit test key (small: generation is slow) and a signer for it.
pub fn test_signer() -> (Signer, rsa::RsaPublicKey) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let key = RsaPrivateKey::new(&mut rng, 1024).expect("generate key");
    let public = key.to_public_key();
    (
        Signer::new(ApiKeyId::new("test-key"), &PrivateKey::from_rsa(key)),
        public,
    )
}

/// Checks the three Kalshi auth headers for `method path`.
pub fn verify_headers(
    public: &rsa::RsaPublicKey,
    get: impl Fn(&str) -> Option<String>,
    method: &str,
    path: &str,
) -> Result<(), String> {
    let key = get(pipeline::auth::HEADER_KEY).ok_or("no key header")?;
    if key != "test-key" {
        return Err(format!("wrong key id {key}"));
    }
    let ts = get(pipeline::auth::HEADER_TIMESTAMP).ok_or("no timestamp header")?;
    let sig = get(pipeline::auth::HEADER_SIGNATURE).ok_or("no signature header")?;
    pipeline::auth::verify(public, &ts, method, path, &sig).map_err(|e| e.to_string())
}
