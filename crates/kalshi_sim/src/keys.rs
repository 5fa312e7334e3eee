//! API keys for the simulator: a throwaway key pair written where the pipeline's normal
//! config finds it (`<dir>/kalshi_sim_key.pem`, mode 600, and `<dir>/.env` with
//! `KALSHI_API_KEY_ID=`), or an existing public key registered by id.

use std::io::Write;
use std::path::{Path, PathBuf};

use pipeline::secrets::{ApiKeyId, PrivateKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePublicKey, LineEnding};
use rsa::RsaPublicKey;

pub const PEM_FILE: &str = "kalshi_sim_key.pem";
pub const ENV_FILE: &str = ".env";
/// First line of a `.env` the simulator wrote; one without it is never overwritten.
pub const ENV_MARKER: &str =
    "# written by kalshi_sim: throwaway credentials for the local simulator";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a PEM public key: {reason}")]
    PublicKey { path: PathBuf, reason: String },
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error(
        "{path} exists and was not written by kalshi_sim; refusing to overwrite it \
         (choose another --key-dir)"
    )]
    WouldOverwrite { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A new 2048-bit RSA key and a random UUID-shaped key id.
pub fn generate() -> Result<(ApiKeyId, PrivateKey), KeyError> {
    use rand::RngCore;
    let mut rng = rand::thread_rng();
    let key =
        rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| KeyError::Generate(e.to_string()))?;
    let id = crate::engine::naming::uuid_like(rng.next_u64(), 7, rng.next_u64());
    Ok((ApiKeyId::new(id), PrivateKey::from_rsa(key)))
}

/// Reads a public key PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
pub fn load_public_key(path: &Path) -> Result<RsaPublicKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    if text.contains("BEGIN RSA PUBLIC KEY") {
        use rsa::pkcs1::DecodeRsaPublicKey;
        RsaPublicKey::from_pkcs1_pem(&text).map_err(|e| KeyError::PublicKey {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    } else {
        RsaPublicKey::from_public_key_pem(&text).map_err(|e| KeyError::PublicKey {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Writes `<dir>/kalshi_sim_key.pem` (PKCS#1, mode 600) and `<dir>/.env`. Refuses to
/// replace a `.env` or PEM it did not write. Returns `(env_file, pem_file)`.
pub fn write_credentials(
    dir: &Path,
    id: &ApiKeyId,
    key: &PrivateKey,
) -> Result<(PathBuf, PathBuf), KeyError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let env = dir.join(ENV_FILE);
    let pem = dir.join(PEM_FILE);
    if let Ok(text) = std::fs::read_to_string(&env) {
        if !text.starts_with(ENV_MARKER) {
            return Err(KeyError::WouldOverwrite { path: env });
        }
    }
    if let Ok(text) = std::fs::read_to_string(&pem) {
        if !text.contains("BEGIN RSA PRIVATE KEY") {
            return Err(KeyError::WouldOverwrite { path: pem });
        }
    }
    let pem_text = key
        .rsa()
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    write_private(&pem, pem_text.as_bytes())?;
    let env_text = format!("{ENV_MARKER}\nKALSHI_API_KEY_ID={}\n", id.expose());
    write_private(&env, env_text.as_bytes())?;
    Ok((env, pem))
}

/// Writes a file readable by its owner only (created with mode 600, then re-chmodded in
/// case it existed with wider permissions).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::secrets::Credentials;

    #[test]
    fn written_credentials_load_with_the_pipeline_config() {
        let dir = tempfile::tempdir().unwrap();
        let (id, key) = generate().unwrap();
        let (env, pem) = write_credentials(dir.path(), &id, &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // The pipeline's own loader (refuses group-readable keys) accepts them. The key id
        // comes from the file unless the environment sets one.
        let creds = Credentials::load(&env, &pem).unwrap();
        assert_eq!(creds.key.public_key(), key.public_key());
        if std::env::var("KALSHI_API_KEY_ID").is_err() && std::env::var("KALSHI_KEY_ID").is_err() {
            assert_eq!(creds.key_id, id);
        }
        // Rewriting our own files is fine.
        write_credentials(dir.path(), &id, &key).unwrap();
        // A user's own .env is never overwritten.
        std::fs::write(dir.path().join(ENV_FILE), "KALSHI_API_KEY_ID=real\n").unwrap();
        let err = write_credentials(dir.path(), &id, &key).unwrap_err();
        assert!(matches!(err, KeyError::WouldOverwrite { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(ENV_FILE)).unwrap(),
            "KALSHI_API_KEY_ID=real\n"
        );
    }

    #[test]
    fn public_key_files() {
        use rsa::pkcs8::EncodePublicKey;
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = generate().unwrap();
        let p = dir.path().join("pub.pem");
        std::fs::write(
            &p,
            key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        )
        .unwrap();
        assert_eq!(load_public_key(&p).unwrap(), key.public_key());
        std::fs::write(&p, "junk").unwrap();
        let err = load_public_key(&p).unwrap_err().to_string();
        assert!(err.contains("pub.pem"), "{err}");
    }
}
