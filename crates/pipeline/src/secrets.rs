//! Secrets: the API key id (from a `.env` file or the environment) and the RSA private key
//! (a PEM file, PKCS#1 or PKCS#8).
//!
//! The types here never show secret material in `Debug` or `Display`, and a private key file
//! that group or others may read is refused, as `ssh` does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

/// Names under which the API key id is looked up, in order.
pub const API_KEY_ID_VARS: [&str; 2] = ["KALSHI_API_KEY_ID", "KALSHI_KEY_ID"];

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    EnvSyntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "no API key id: set KALSHI_API_KEY_ID in {} or in the environment",
        .env_file.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "the .env file".into())
    )]
    MissingKeyId { env_file: Option<PathBuf> },
    #[error(
        "{path}: private key is readable by group or others (mode {mode:03o}); \
         run `chmod 600 {path}` and try again"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("{path}: not a usable private key: {reason}")]
    KeyFormat { path: PathBuf, reason: String },
}

/// A Kalshi API key id (a UUID). Shown redacted to its first 4 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    pub fn new(s: impl Into<String>) -> ApiKeyId {
        ApiKeyId(s.into())
    }
    /// The full id, for the `KALSHI-ACCESS-KEY` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self)
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(4).collect();
        write!(f, "{prefix}…(redacted)")
    }
}

/// An RSA private key. `Debug`/`Display` show only its size.
#[derive(Clone)]
pub struct PrivateKey(RsaPrivateKey);

impl PrivateKey {
    pub fn from_rsa(key: RsaPrivateKey) -> PrivateKey {
        PrivateKey(key)
    }

    /// Parses PEM text: PKCS#1 (`BEGIN RSA PRIVATE KEY`, as Kalshi issues them) or PKCS#8
    /// (`BEGIN PRIVATE KEY`). The error never echoes the key.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, String> {
        let t = pem.trim_start();
        if t.contains("BEGIN RSA PRIVATE KEY") {
            RsaPrivateKey::from_pkcs1_pem(pem)
                .map(PrivateKey)
                .map_err(|e| format!("invalid PKCS#1 RSA key ({e})"))
        } else if t.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            Err(
                "encrypted PKCS#8 keys are not supported; export it without a passphrase \
                 (openssl pkcs8 -topk8 -nocrypt) and keep the file mode 600"
                    .into(),
            )
        } else if t.contains("BEGIN PRIVATE KEY") {
            RsaPrivateKey::from_pkcs8_pem(pem)
                .map(PrivateKey)
                .map_err(|e| {
                    format!(
                        "invalid PKCS#8 key or not an RSA key ({e}); only RSA keys are supported"
                    )
                })
        } else if t.contains("BEGIN PUBLIC KEY") || t.contains("BEGIN RSA PUBLIC KEY") {
            Err("this is a public key; the private key is needed to sign requests".into())
        } else {
            Err("no PEM private key block found (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)".into())
        }
    }

    /// Loads a PEM file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<PrivateKey, SecretsError> {
        check_private_permissions(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        PrivateKey::from_pem(&text).map_err(|reason| SecretsError::KeyFormat {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn rsa(&self) -> &RsaPrivateKey {
        &self.0
    }

    pub fn public_key(&self) -> RsaPublicKey {
        self.0.to_public_key()
    }

    pub fn bits(&self) -> usize {
        self.0.size() * 8
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(RSA {} bits, redacted)", self.bits())
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Refuses a secret file whose mode gives group or others any access.
#[cfg(unix)]
pub fn check_private_permissions(path: &Path) -> Result<(), SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| SecretsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private_permissions(_path: &Path) -> Result<(), SecretsError> {
    Ok(())
}

/// The variables of a `.env` file (`KEY=VALUE` lines; `#` comments, blank lines, an optional
/// `export ` prefix, single or double quotes around the value).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for EnvFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show the names only.
        f.debug_struct("EnvFile")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EnvFile {
    pub fn parse(text: &str, path: &Path) -> Result<EnvFile, SecretsError> {
        let mut vars = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            let err = |reason: &str| SecretsError::EnvSyntax {
                path: path.to_path_buf(),
                line: i + 1,
                reason: reason.to_string(),
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err("expected KEY=VALUE"))?;
            let key = key.trim();
            if key.is_empty()
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || key.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(err("invalid variable name"));
            }
            let value = value.trim();
            let value = if let Some(inner) = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            {
                inner.to_string()
            } else if value.starts_with('"') || value.starts_with('\'') {
                return Err(err("unterminated quote"));
            } else {
                // An unquoted value ends at an inline comment.
                match value.find(" #") {
                    Some(pos) => value[..pos].trim_end().to_string(),
                    None => value.to_string(),
                }
            };
            vars.insert(key.to_string(), value);
        }
        Ok(EnvFile { vars })
    }

    /// Reads a `.env` file; a missing file is an empty set (the environment may carry the
    /// values instead).
    pub fn load(path: &Path) -> Result<EnvFile, SecretsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => EnvFile::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EnvFile::default()),
            Err(source) => Err(SecretsError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// Finds the API key id: the process environment first, then the `.env` file.
pub fn api_key_id(
    env_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ApiKeyId, SecretsError> {
    for name in API_KEY_ID_VARS {
        if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
            return Ok(ApiKeyId(v.trim().to_string()));
        }
    }
    if let Some(path) = env_file {
        let file = EnvFile::load(path)?;
        for name in API_KEY_ID_VARS {
            if let Some(v) = file.get(name).filter(|v| !v.trim().is_empty()) {
                return Ok(ApiKeyId(v.trim().to_string()));
            }
        }
    }
    Err(SecretsError::MissingKeyId {
        env_file: env_file.map(Path::to_path_buf),
    })
}

/// Both halves of an API credential.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub key_id: ApiKeyId,
    pub key: PrivateKey,
}

impl Credentials {
    /// Loads the key id (environment, then `env_file`) and the PEM key.
    pub fn load(env_file: &Path, pem_file: &Path) -> Result<Credentials, SecretsError> {
        let key_id = api_key_id(Some(env_file), &|k| std::env::var(k).ok())?;
        let key = PrivateKey::load(pem_file)?;
        Ok(Credentials { key_id, key })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use std::sync::OnceLock;

    /// One 2048-bit test key per test process (generation is slow in debug builds).
    pub(crate) fn test_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| {
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            RsaPrivateKey::new(&mut rng, 2048).expect("generate key")
        })
    }

    fn write_mode(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn loads_pkcs1_and_pkcs8() {
        let dir = tempfile::tempdir().unwrap();
        let k = test_key();
        let p1 = write_mode(
            dir.path(),
            "k1.pem",
            &k.to_pkcs1_pem(LineEnding::LF).unwrap(),
            0o600,
        );
        let p8 = write_mode(
            dir.path(),
            "k8.pem",
            &k.to_pkcs8_pem(LineEnding::LF).unwrap(),
            0o400,
        );
        let a = PrivateKey::load(&p1).unwrap();
        let b = PrivateKey::load(&p8).unwrap();
        assert_eq!(a.rsa(), k);
        assert_eq!(b.rsa(), k);
        assert_eq!(a.bits(), 2048);
    }

    #[test]
    fn refuses_group_or_world_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let k = test_key();
        let p = write_mode(
            dir.path(),
            "k.pem",
            &k.to_pkcs1_pem(LineEnding::LF).unwrap(),
            0o644,
        );
        let err = PrivateKey::load(&p).unwrap_err().to_string();
        assert!(err.contains("readable by group or others"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("k.pem"), "{err}");
        let p = write_mode(
            dir.path(),
            "g.pem",
            &k.to_pkcs1_pem(LineEnding::LF).unwrap(),
            0o640,
        );
        assert!(PrivateKey::load(&p).is_err());
    }

    #[test]
    fn bad_key_files_name_the_file_and_never_echo_content() {
        let dir = tempfile::tempdir().unwrap();
        let garbage =
            "-----BEGIN RSA PRIVATE KEY-----\nSECRETSTUFFAAAA\n-----END RSA PRIVATE KEY-----\n";
        let p = write_mode(dir.path(), "bad.pem", garbage, 0o600);
        let err = PrivateKey::load(&p).unwrap_err().to_string();
        assert!(err.contains("bad.pem"), "{err}");
        assert!(!err.contains("SECRETSTUFF"), "{err}");
        let p = write_mode(dir.path(), "pub.pem", "-----BEGIN PUBLIC KEY-----\n", 0o600);
        assert!(PrivateKey::load(&p)
            .unwrap_err()
            .to_string()
            .contains("public key"));
        let missing = dir.path().join("missing.pem");
        assert!(PrivateKey::load(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.pem"));
    }

    #[test]
    fn debug_and_display_never_show_secrets() {
        let k = PrivateKey::from_rsa(test_key().clone());
        let d = format!("{k:?} {k}");
        assert!(d.contains("redacted") && !d.contains("BEGIN"), "{d}");
        let id = ApiKeyId::new("a952bcbe-ec3b-4b5b-b8f9-11dae589608c");
        let s = format!("{id:?} {id}");
        assert!(!s.contains("ec3b") && s.contains("a952"), "{s}");
        let creds = Credentials { key_id: id, key: k };
        let s = format!("{creds:?}");
        assert!(!s.contains("ec3b-4b5b") && !s.contains("BEGIN"), "{s}");
        let env = EnvFile::parse("KALSHI_API_KEY_ID=topsecret\n", Path::new(".env")).unwrap();
        assert!(!format!("{env:?}").contains("topsecret"));
    }

    #[test]
    fn env_file_syntax() {
        let text = "# comment\n\nexport KALSHI_API_KEY_ID=\"abc-123\"\nOTHER='x y'\nPLAIN=v # note\nEMPTY=\n";
        let env = EnvFile::parse(text, Path::new("secrets/.env")).unwrap();
        assert_eq!(env.get("KALSHI_API_KEY_ID"), Some("abc-123"));
        assert_eq!(env.get("OTHER"), Some("x y"));
        assert_eq!(env.get("PLAIN"), Some("v"));
        assert_eq!(env.get("EMPTY"), Some(""));
        let err = EnvFile::parse("A=1\nnot a line\n", Path::new("secrets/.env"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "secrets/.env:2: expected KEY=VALUE");
        let err = EnvFile::parse("A=\"open\n", Path::new("e"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("e:1: unterminated quote"), "{err}");
    }

    #[test]
    fn key_id_precedence_environment_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".env");
        std::fs::write(&f, "KALSHI_API_KEY_ID=from-file\n").unwrap();
        let none = |_: &str| None;
        assert_eq!(api_key_id(Some(&f), &none).unwrap().expose(), "from-file");
        let env = |k: &str| (k == "KALSHI_API_KEY_ID").then(|| "from-env".to_string());
        assert_eq!(api_key_id(Some(&f), &env).unwrap().expose(), "from-env");
        let missing = dir.path().join("nope.env");
        let err = api_key_id(Some(&missing), &none).unwrap_err().to_string();
        assert!(
            err.contains("KALSHI_API_KEY_ID") && err.contains("nope.env"),
            "{err}"
        );
    }
}
