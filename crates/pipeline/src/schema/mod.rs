//! The canonical on-disk formats other than the snapshot records (see `docs/FORMATS.md`):
//!
//! - [`markets`]: the markets sidecar (`<SERIES>_markets.jsonl`), one line per market and
//!   lifecycle change, and [`markets::fold_latest`] to get each market's latest state;
//! - [`labels`]: `labels/v1` (plus the legacy bare map) and `labels-unresolved/v1`, with a
//!   deterministic [`labels::merge`];
//! - [`strategy`]: `strategy/v1`, strict (unknown fields are errors with their path) and
//!   validated as a whole.
//!
//! Shared helpers live here: atomic file writes, reading plain-or-gzip files, SHA-256 of a file,
//! and the "open" string enums that keep values a newer exchange or writer may add.

pub mod labels;
pub mod markets;
pub mod strategy;

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use labels::{
    merge, Conflict, ConflictKind, Label, LabelSource, LabelsError, LabelsFile, LabelsForm,
    Outcome, Unresolved, UnresolvedList, UnresolvedReason,
};
pub use markets::{
    fold_latest, markets_path, Decimal, LifecycleEvent, MarketRecord, MarketResult, MarketStatus,
    MarketsError, MarketsRead, RecordSource, StrikeType,
};
pub use strategy::{Strategy, StrategyError, StrategyType};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder is written, synced
/// and renamed over `path`, so a reader sees either the old file or the new one, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        nanos
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable where the platform allows syncing a directory.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file, transparently decompressing it when it starts with the gzip magic bytes
/// (any number of gzip members). Returns the text and whether the gzip stream ended early
/// (a truncated last member): the text then holds everything that could be decompressed.
pub fn read_text_maybe_gz(path: &Path) -> io::Result<(String, bool)> {
    let raw = fs::read(path)?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]);
        let mut truncated = false;
        let mut buf = [0u8; 64 * 1024];
        loop {
            match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    truncated = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        match String::from_utf8(out) {
            Ok(t) => Ok((t, truncated)),
            // A truncated member can cut a multi-byte character: keep the valid prefix.
            Err(e) if truncated => {
                let valid = e.utf8_error().valid_up_to();
                Ok((
                    String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned(),
                    true,
                ))
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file is not UTF-8",
            )),
        }
    } else {
        let text = String::from_utf8(raw)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file is not UTF-8"))?;
        Ok((text, false))
    }
}

/// Lower-case hex SHA-256 of a file's bytes (weights files, label files).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(to_hex(&h.finalize()))
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// True for exactly 64 hexadecimal digits (either case): the text form of a SHA-256.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Defines a string enum that keeps unknown values verbatim in `Other(String)`, so a reader
/// built today does not fail on a status or event name the exchange adds tomorrow.
/// `parse` is the only way in from text: known names always map to their variant.
macro_rules! open_str_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident {
            $( $(#[$vm:meta])* $var:ident => $s:literal ),+ $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vm])* $var, )+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every known variant, in declaration order.
            pub const KNOWN: &'static [$name] = &[$($name::$var),+];

            /// The on-disk text.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$var => $s, )+
                    $name::Other(s) => s.as_str(),
                }
            }

            /// Maps text to its variant; unknown text becomes `Other`.
            pub fn parse(s: &str) -> $name {
                match s {
                    $( $s => $name::$var, )+
                    other => $name::Other(other.to_string()),
                }
            }

            /// False for `Other`.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($name::parse(s))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}
pub(crate) use open_str_enum;

/// Deserializes an optional open enum where Kalshi's empty string also means "none"
/// (`"result": ""` before a market is determined).
pub(crate) fn de_opt_nonempty<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use serde::Deserialize;
    let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => s.parse::<T>().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("a.json");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }

    #[test]
    fn reads_plain_gzip_multi_member_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("p.jsonl");
        fs::write(&plain, "a\nb\n").unwrap();
        assert_eq!(
            read_text_maybe_gz(&plain).unwrap(),
            ("a\nb\n".to_string(), false)
        );

        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let mut two = gz("line1\n");
        two.extend(gz("line2\n"));
        let p = dir.path().join("two.gz");
        fs::write(&p, &two).unwrap();
        assert_eq!(
            read_text_maybe_gz(&p).unwrap(),
            ("line1\nline2\n".to_string(), false)
        );

        // Cut the second member short: the first member's text survives, flagged truncated.
        let first_len = gz("line1\n").len();
        let cut = &two[..first_len + 12];
        let p2 = dir.path().join("cut.gz");
        fs::write(&p2, cut).unwrap();
        let (text, truncated) = read_text_maybe_gz(&p2).unwrap();
        assert!(truncated);
        assert!(text.starts_with("line1\n"), "{text:?}");
    }

    #[test]
    fn sha256_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&sha256_file(&p).unwrap()));
        assert!(!is_sha256_hex("abc"));
        assert!(!is_sha256_hex(&"g".repeat(64)));
    }

    /// The examples in docs/FORMATS.md parse with the types here (and the strategy example is
    /// byte-for-byte the same JSON as config/strategy.example.json), so the reference cannot
    /// drift from the code.
    mod formats_doc {
        use super::super::*;
        use crate::ids::MarketTicker;
        use serde_json::Value;

        const DOC: &str = include_str!("../../../../docs/FORMATS.md");

        /// The fenced block after `<!-- example: NAME -->`.
        fn example(name: &str) -> &'static str {
            let marker = format!("<!-- example: {name} -->");
            let at = DOC
                .find(&marker)
                .unwrap_or_else(|| panic!("no {marker} in FORMATS.md"));
            let rest = &DOC[at + marker.len()..];
            let start = rest.find("```json\n").expect("json block") + "```json\n".len();
            let end = rest[start..].find("```").expect("block end");
            &rest[start..start + end]
        }

        #[test]
        fn every_example_is_json() {
            for name in ["snapshot", "marker", "capture"] {
                for line in example(name).lines() {
                    let v: Value = serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
                    assert!(v.is_object(), "{name}: {line}");
                }
            }
            for line in example("capture").lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert!(v["recv_ns"].is_u64() && v["frame"].is_object(), "{line}");
            }
            for line in example("marker").lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert!(v["event"].is_string(), "{line}");
            }
        }

        #[test]
        fn markets_example_parses_and_folds_as_documented() {
            let read = markets::parse_markets_text(
                example("markets"),
                std::path::Path::new("FORMATS.md"),
                false,
            )
            .unwrap();
            assert_eq!(read.records.len(), 5);
            let folded = fold_latest(read.records);
            let m = &folded[&MarketTicker::from("KXBTC15M-26MAY110145-45")];
            assert_eq!(m.status, Some(MarketStatus::Determined));
            assert_eq!(m.result, Some(MarketResult::No));
            assert_eq!(m.floor_strike, Some(Decimal::parse("80938.41").unwrap()));
            assert_eq!(m.event, Some(LifecycleEvent::Determined));
            let label = Label::from_market(m, LabelSource::Sidecar).unwrap();
            assert_eq!(label.result, Outcome::No);
        }

        #[test]
        fn labels_examples_parse() {
            let (f, form) = LabelsFile::parse_str(example("labels"), "FORMATS.md").unwrap();
            assert_eq!((form, f.len()), (LabelsForm::V1, 2));
            // The documented text is exactly what the writer produces.
            assert_eq!(f.to_json_pretty(), example("labels"));
            let (b, form) = LabelsFile::parse_str(example("labels-bare"), "FORMATS.md").unwrap();
            assert_eq!((form, b.len()), (LabelsForm::BareMap, 3));
            let u = UnresolvedList::parse_str(example("unresolved"), "FORMATS.md").unwrap();
            assert_eq!(u.unresolved.len(), 2);
        }

        #[test]
        fn strategy_example_matches_config_file() {
            let config = include_str!("../../../../config/strategy.example.json");
            assert_eq!(example("strategy"), config);
            let s = Strategy::parse_str(example("strategy"), "FORMATS.md").unwrap();
            s.validate().unwrap();
        }
    }
}
