//! Kalshi request signing (API.md §2): RSA-PSS over `timestamp_ms + METHOD + path`, SHA-256,
//! MGF1-SHA-256, salt length 32, standard base64.
//!
//! `path` is the URL path from the host root including `/trade-api/v2` (or `/trade-api/ws/v2`
//! for the WebSocket upgrade) and never the query string. The client signs with [`Signer`]; the
//! simulator checks with [`verify`]. Both are tested against OpenSSL, an independent
//! implementation.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rsa::pss::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::RsaPublicKey;
use sha2::Sha256;

use crate::secrets::{ApiKeyId, Credentials, PrivateKey};

pub const HEADER_KEY: &str = "KALSHI-ACCESS-KEY";
pub const HEADER_TIMESTAMP: &str = "KALSHI-ACCESS-TIMESTAMP";
pub const HEADER_SIGNATURE: &str = "KALSHI-ACCESS-SIGNATURE";
/// The path signed for every WebSocket (re)connect, whatever the host.
pub const WS_SIGN_PATH: &str = "/trade-api/ws/v2";
/// PSS salt length Kalshi requires: the SHA-256 digest length.
pub const SALT_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("signature is not valid base64")]
    BadBase64,
    #[error("signature does not verify for {method} {path} at {timestamp}")]
    BadSignature {
        timestamp: String,
        method: String,
        path: String,
    },
    #[error("timestamp {0:?} is not a number of milliseconds")]
    BadTimestamp(String),
}

/// The text that is signed: `timestamp + METHOD + path`, the query string removed.
pub fn signing_message(timestamp_ms: &str, method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    format!("{timestamp_ms}{}{path}", method.to_ascii_uppercase())
}

/// The three authentication headers of one request.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    pub key: String,
    pub timestamp: String,
    pub signature: String,
}

impl std::fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHeaders")
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl AuthHeaders {
    /// `(name, value)` pairs, ready for any HTTP client.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (HEADER_KEY, self.key.as_str()),
            (HEADER_TIMESTAMP, self.timestamp.as_str()),
            (HEADER_SIGNATURE, self.signature.as_str()),
        ]
    }
}

/// Signs requests with one API key.
#[derive(Clone, Debug)]
pub struct Signer {
    key_id: ApiKeyId,
    signing_key: SigningKey<Sha256>,
}

impl Signer {
    pub fn new(key_id: ApiKeyId, key: &PrivateKey) -> Signer {
        Signer {
            key_id,
            signing_key: SigningKey::<Sha256>::new_with_salt_len(key.rsa().clone(), SALT_LEN),
        }
    }

    pub fn from_credentials(c: &Credentials) -> Signer {
        Signer::new(c.key_id.clone(), &c.key)
    }

    pub fn key_id(&self) -> &ApiKeyId {
        &self.key_id
    }

    /// Base64 RSA-PSS signature of `timestamp + METHOD + path`.
    pub fn sign(&self, timestamp_ms: &str, method: &str, path: &str) -> String {
        let msg = signing_message(timestamp_ms, method, path);
        let sig = self
            .signing_key
            .sign_with_rng(&mut rand::thread_rng(), msg.as_bytes());
        B64.encode(sig.to_bytes())
    }

    /// Headers for a request at an explicit time (tests, replays).
    pub fn headers_at(&self, timestamp_ms: i64, method: &str, path: &str) -> AuthHeaders {
        let timestamp = timestamp_ms.to_string();
        let signature = self.sign(&timestamp, method, path);
        AuthHeaders {
            key: self.key_id.expose().to_string(),
            timestamp,
            signature,
        }
    }

    /// Fresh headers for a request now. Call once per request and per (re)connect: a
    /// timestamp is never reused.
    pub fn headers(&self, method: &str, path: &str) -> AuthHeaders {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.headers_at(now_ms, method, path)
    }
}

/// Checks a request's signature against a registered public key (the simulator's side).
/// Only a PSS signature with a 32-byte salt verifies, as on Kalshi.
pub fn verify(
    public_key: &RsaPublicKey,
    timestamp_ms: &str,
    method: &str,
    path: &str,
    signature_b64: &str,
) -> Result<(), AuthError> {
    if timestamp_ms.is_empty() || !timestamp_ms.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::BadTimestamp(timestamp_ms.to_string()));
    }
    let bytes = B64
        .decode(signature_b64.trim())
        .map_err(|_| AuthError::BadBase64)?;
    let bad = || AuthError::BadSignature {
        timestamp: timestamp_ms.to_string(),
        method: method.to_string(),
        path: path.split('?').next().unwrap_or(path).to_string(),
    };
    let sig = Signature::try_from(bytes.as_slice()).map_err(|_| bad())?;
    let vk = VerifyingKey::<Sha256>::new_with_salt_len(public_key.clone(), SALT_LEN);
    let msg = signing_message(timestamp_ms, method, path);
    vk.verify(msg.as_bytes(), &sig).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::tests::test_key;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use std::process::Command;

    fn signer() -> Signer {
        Signer::new(
            ApiKeyId::new("test-key-id"),
            &PrivateKey::from_rsa(test_key().clone()),
        )
    }

    #[test]
    fn message_strips_query_and_uppercases_method() {
        assert_eq!(
            signing_message(
                "1703123456789",
                "get",
                "/trade-api/v2/portfolio/orders?limit=5"
            ),
            "1703123456789GET/trade-api/v2/portfolio/orders"
        );
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let s = signer();
        let pk = test_key().to_public_key();
        let h = s.headers_at(1_703_123_456_789, "GET", "/trade-api/v2/markets?limit=5");
        assert_eq!(h.key, "test-key-id");
        // The query is not signed: the same signature verifies without it.
        verify(
            &pk,
            &h.timestamp,
            "GET",
            "/trade-api/v2/markets",
            &h.signature,
        )
        .unwrap();
        // Any change to timestamp, method or path fails.
        assert!(verify(
            &pk,
            "1703123456790",
            "GET",
            "/trade-api/v2/markets",
            &h.signature
        )
        .is_err());
        assert!(verify(
            &pk,
            &h.timestamp,
            "POST",
            "/trade-api/v2/markets",
            &h.signature
        )
        .is_err());
        assert!(verify(&pk, &h.timestamp, "GET", "/markets", &h.signature).is_err());
        assert_eq!(
            verify(&pk, &h.timestamp, "GET", "/x", "!!!"),
            Err(AuthError::BadBase64)
        );
        assert!(matches!(
            verify(&pk, "12s", "GET", "/x", &h.signature),
            Err(AuthError::BadTimestamp(_))
        ));
        // Another key's signature fails.
        let other = {
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
            rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap()
        };
        assert!(verify(
            &other.to_public_key(),
            &h.timestamp,
            "GET",
            "/trade-api/v2/markets",
            &h.signature
        )
        .is_err());
    }

    #[test]
    fn headers_debug_hides_signature_and_key() {
        let h = signer().headers("GET", "/trade-api/ws/v2");
        let d = format!("{h:?}");
        assert!(
            !d.contains(&h.signature) && !d.contains("test-key-id"),
            "{d}"
        );
    }

    fn openssl_available() -> bool {
        Command::new("openssl").arg("version").output().is_ok()
    }

    /// OpenSSL, an independent implementation, verifies our signatures and produces ones we
    /// accept, with exactly Kalshi's parameters (PSS, SHA-256, MGF1-SHA-256, salt 32).
    #[test]
    fn interoperates_with_openssl() {
        if !openssl_available() {
            eprintln!("SKIP interoperates_with_openssl: openssl not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let key_pem = dir.path().join("key.pem");
        let pub_pem = dir.path().join("pub.pem");
        std::fs::write(&key_pem, test_key().to_pkcs1_pem(LineEnding::LF).unwrap()).unwrap();
        std::fs::write(
            &pub_pem,
            test_key()
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        )
        .unwrap();
        let msg_path = dir.path().join("msg.txt");
        let ts = "1703123456789";
        let path = "/trade-api/v2/portfolio/orders";
        std::fs::write(&msg_path, signing_message(ts, "GET", path)).unwrap();

        // Ours → OpenSSL verifies.
        let sig = B64.decode(signer().sign(ts, "GET", path)).unwrap();
        let sig_path = dir.path().join("ours.sig");
        std::fs::write(&sig_path, &sig).unwrap();
        let out = Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
                "-sigopt",
                "rsa_mgf1_md:sha256",
                "-verify",
            ])
            .arg(&pub_pem)
            .arg("-signature")
            .arg(&sig_path)
            .arg(&msg_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl rejected our signature: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        // OpenSSL signs → we verify.
        let theirs = dir.path().join("theirs.sig");
        let out = Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
                "-sigopt",
                "rsa_mgf1_md:sha256",
                "-sign",
            ])
            .arg(&key_pem)
            .arg("-out")
            .arg(&theirs)
            .arg(&msg_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl sign failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs_b64 = B64.encode(std::fs::read(&theirs).unwrap());
        verify(&test_key().to_public_key(), ts, "GET", path, &theirs_b64).unwrap();

        // A PKCS#1 v1.5 signature (a classic mistake) is rejected, as Kalshi does.
        let v15 = dir.path().join("v15.sig");
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key_pem)
            .arg("-out")
            .arg(&v15)
            .arg(&msg_path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let v15_b64 = B64.encode(std::fs::read(&v15).unwrap());
        assert!(verify(&test_key().to_public_key(), ts, "GET", path, &v15_b64).is_err());

        // A PSS signature with the wrong salt length is rejected too.
        let salt20 = dir.path().join("salt20.sig");
        let out = Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:20",
                "-sign",
            ])
            .arg(&key_pem)
            .arg("-out")
            .arg(&salt20)
            .arg(&msg_path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let s20 = B64.encode(std::fs::read(&salt20).unwrap());
        assert!(verify(&test_key().to_public_key(), ts, "GET", path, &s20).is_err());
    }
}
