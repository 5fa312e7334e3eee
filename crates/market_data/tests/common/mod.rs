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
