//! Tests of the label tools' library over small fixtures written here, plus the real Kalshi
//! market objects in `shared/data` when that folder is present.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::sources::{read_archive, read_sidecar, scan_capture};
use super::*;
use crate::schema::{LabelSource, Outcome};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn capture_line(recv_ns: u64, frame: Value) -> String {
    format!("{}\n", json!({"recv_ns": recv_ns, "frame": frame}))
}

fn lifecycle(ticker: &str, event: &str, extra: Value) -> Value {
    let mut msg = json!({"market_ticker": ticker, "event_type": event});
    for (k, v) in extra.as_object().unwrap() {
        msg[k] = v.clone();
    }
    json!({"type": "market_lifecycle_v2", "sid": 5, "msg": msg})
}

fn book_delta(ticker: &str, seq: u64) -> Value {
    json!({"type": "orderbook_delta", "sid": 3, "seq": seq, "msg": {"market_ticker": ticker,
        "price_dollars": "0.4200", "delta_fp": "-20.00", "side": "yes", "ts_ms": 1778477400120u64}})
}

fn labels_of(f: &super::sources::FileFindings) -> BTreeMap<String, Outcome> {
    f.labels
        .iter()
        .map(|(t, l, _)| (t.to_string(), l.result))
        .collect()
}

fn reasons_of(f: &super::sources::FileFindings) -> BTreeMap<String, String> {
    f.unresolved
        .iter()
        .map(|(u, _)| (u.ticker.to_string(), u.reason.to_string()))
        .collect()
}

/// A capture with lifecycle frames among book frames: two members, the second cut short.
fn capture_fixture(dir: &Path, name: &str, truncate: bool) -> PathBuf {
    let mut first = String::new();
    first += &capture_line(
        1,
        lifecycle(
            "KX-A",
            "created",
            json!({"open_ts": 1778477400, "close_ts": 1778478300}),
        ),
    );
    first += &capture_line(2, book_delta("KX-A", 1));
    first += &capture_line(
        3,
        lifecycle(
            "KX-A",
            "determined",
            json!({"result": "yes", "determination_ts": 1778478301,
            "settlement_value": "1.0000"}),
        ),
    );
    first += &capture_line(
        4,
        lifecycle(
            "KX-B",
            "determined",
            json!({"result": "no", "settlement_value": "0.0000"}),
        ),
    );
    first += &capture_line(
        5,
        lifecycle(
            "KX-C",
            "determined",
            json!({"result": "scalar", "settlement_value": "0.4200"}),
        ),
    );
    first += "{\"recv_ns\":6,\"frame\":{\"type\":\"market_lifecycle_v2\",\"msg\":{oops}}\n";
    first += &capture_line(
        7,
        lifecycle(
            "KX-D",
            "determined",
            json!({"result": "yes", "settlement_value": "0.0000"}),
        ),
    );
    let mut second = String::new();
    second += &capture_line(8, book_delta("KX-A", 2));
    second += &capture_line(
        9,
        lifecycle(
            "KX-E",
            "determined",
            json!({"result": "no", "settlement_value": "0.0000"}),
        ),
    );
    let mut bytes = gz(&first);
    let member2 = gz(&second);
    if truncate {
        bytes.extend_from_slice(&member2[..member2.len() / 2]);
    } else {
        bytes.extend_from_slice(&member2);
    }
    write(dir, name, bytes)
}

#[test]
fn capture_determinations_with_truncated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let p = capture_fixture(dir.path(), "KX_20260511T050000Z.capture.jsonl.gz", true);
    let f = scan_capture(&p);
    assert!(!f.skipped);
    let labels = labels_of(&f);
    assert_eq!(labels.get("KX-A"), Some(&Outcome::Yes));
    assert_eq!(labels.get("KX-B"), Some(&Outcome::No));
    assert!(!labels.contains_key("KX-E"), "lost in the truncated member");
    // The close time announced by `created` reaches the label.
    let a = f
        .labels
        .iter()
        .find(|(t, _, _)| t.as_str() == "KX-A")
        .unwrap();
    assert_eq!(a.1.close_time, Some(t("2026-05-11T05:45:00Z")));
    assert_eq!(a.1.source, Some(LabelSource::Capture));
    assert_eq!(a.2, Some(3), "line of the determination");
    let reasons = reasons_of(&f);
    assert_eq!(reasons["KX-C"], "scalar");
    assert_eq!(reasons["KX-D"], "inconsistent");
    let msgs: Vec<String> = f.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(f.problems_total, 2, "{msgs:#?}");
    assert!(msgs[0].contains(":6: invalid JSON"), "{msgs:#?}");
    assert!(
        msgs[1].contains("truncated") && msgs[1].contains("kept lines up to"),
        "{msgs:#?}"
    );

    // The complete file also yields the second member's determination, and no problem but
    // the bad line.
    let p = capture_fixture(dir.path(), "whole.capture.jsonl.gz", false);
    let f = scan_capture(&p);
    assert_eq!(labels_of(&f).get("KX-E"), Some(&Outcome::No));
    assert_eq!(f.problems_total, 1);
}

#[test]
fn capture_plain_and_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let text = capture_line(
        1,
        lifecycle(
            "KX-A",
            "determined",
            json!({"result": "no", "settlement_value": "0.0000"}),
        ),
    );
    let p = write(dir.path(), "plain.capture.jsonl", &text);
    assert_eq!(labels_of(&scan_capture(&p)).get("KX-A"), Some(&Outcome::No));
    let f = scan_capture(&dir.path().join("missing.capture.jsonl.gz"));
    assert!(f.skipped && f.problems[0].message.contains("cannot open"));
}

#[test]
fn archive_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let m = |t: &str, status: &str, result: &str| json!({"ticker": t, "status": status, "result": result, "close_time": "2026-05-11T06:00:00Z"});
    let keyed = json!({"KX-1": m("KX-1", "finalized", "yes"), "KX-2": m("KX-2", "active", "")});
    let list = json!([m("KX-3", "determined", "no")]);
    let markets = json!({"markets": [m("KX-4", "finalized", "no")], "cursor": ""});
    let market = json!({"market": m("KX-5", "finalized", "scalar")});
    let events =
        json!({"events": [{"event_ticker": "E", "markets": [m("KX-6", "settled", "yes")]}]});
    let v1 = r#"{"schema":"labels/v1","labels":{"KX-7":{"result":"yes","source":"api"}}}"#;
    let bare = r#"{"KX-8": 0, "KX-9": "yes"}"#;
    let lines = format!(
        "{}\n{}\n{}",
        m("KX-10", "finalized", "yes"),
        json!({"markets": [m("KX-11", "finalized", "no")]}),
        capture_line(
            1,
            lifecycle("KX-12", "determined", json!({"result": "yes"}))
        )
    );
    /// (file name, bytes, labels wanted, unresolved reasons wanted)
    type Case<'a> = (
        &'a str,
        Vec<u8>,
        Vec<(&'a str, Outcome)>,
        Vec<(&'a str, &'a str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "keyed.raw.json",
            keyed.to_string().into(),
            vec![("KX-1", Outcome::Yes)],
            vec![("KX-2", "not_settled")],
        ),
        (
            "list.json",
            list.to_string().into(),
            vec![("KX-3", Outcome::No)],
            vec![],
        ),
        (
            "markets.json.gz",
            gz(&markets.to_string()),
            vec![("KX-4", Outcome::No)],
            vec![],
        ),
        (
            "market.json",
            market.to_string().into(),
            vec![],
            vec![("KX-5", "scalar")],
        ),
        (
            "events.json",
            events.to_string().into(),
            vec![("KX-6", Outcome::Yes)],
            vec![],
        ),
        ("v1.json", v1.into(), vec![("KX-7", Outcome::Yes)], vec![]),
        (
            "bare.json",
            bare.into(),
            vec![("KX-8", Outcome::No), ("KX-9", Outcome::Yes)],
            vec![],
        ),
        (
            "lines.jsonl",
            lines.into(),
            vec![
                ("KX-10", Outcome::Yes),
                ("KX-11", Outcome::No),
                ("KX-12", Outcome::Yes),
            ],
            vec![],
        ),
    ];
    for (name, bytes, want_labels, want_unresolved) in cases {
        let p = write(dir.path(), name, bytes);
        let f = read_archive(&p);
        assert_eq!(f.problems_total, 0, "{name}: {:?}", f.problems);
        let want: BTreeMap<String, Outcome> = want_labels
            .into_iter()
            .map(|(t, o)| (t.to_string(), o))
            .collect();
        assert_eq!(labels_of(&f), want, "{name}");
        let want: BTreeMap<String, String> = want_unresolved
            .into_iter()
            .map(|(t, r)| (t.to_string(), r.to_string()))
            .collect();
        assert_eq!(reasons_of(&f), want, "{name}");
    }
    // Sources: archive for market objects and bare labels; a v1 label keeps its own.
    let f = read_archive(&dir.path().join("v1.json"));
    assert_eq!(f.labels[0].1.source, Some(LabelSource::Api));
    let f = read_archive(&dir.path().join("bare.json"));
    assert!(f
        .labels
        .iter()
        .all(|(_, l, _)| l.source == Some(LabelSource::Archive)));
}

#[test]
fn archive_damage_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // Not JSON at all: the file is skipped, named.
    let p = write(dir.path(), "broken.json", "{\"KX-1\": {\"result\": \"yes\"");
    let f = read_archive(&p);
    assert!(f.skipped && f.labels.is_empty());
    let msg = f.problems[0].to_string();
    assert!(
        msg.starts_with(&p.display().to_string()) && msg.contains("invalid JSON"),
        "{msg}"
    );
    // Valid JSON of no known shape.
    let f = read_archive(&write(dir.path(), "num.json", "42"));
    assert!(f.skipped, "{:?}", f.problems);
    // A bare map with a bad value: skipped as a whole, the entry named.
    let f = read_archive(&write(
        dir.path(),
        "badbare.json",
        r#"{"KX-1":"yes","KX-2":0.5}"#,
    ));
    assert!(f.skipped && f.labels.is_empty());
    assert!(f.problems[0].message.contains("KX-2"), "{:?}", f.problems);
    // JSON lines: a bad line is reported with its number, the other lines kept.
    let text = format!(
        "{}\nnot json\n{}\n{}\n",
        json!({"ticker":"KX-1","status":"finalized","result":"yes"}),
        json!({"ticker":"KX-2","status":7}),
        json!({"ticker":"KX-3","status":"finalized","result":"no"}),
    );
    let f = read_archive(&write(dir.path(), "some.jsonl", text));
    assert!(!f.skipped);
    assert_eq!(labels_of(&f).len(), 2);
    let locs: Vec<(Option<u64>, bool)> = f
        .problems
        .iter()
        .map(|p| (p.line, p.message.contains("status")))
        .collect();
    assert_eq!(locs, vec![(Some(2), false), (Some(3), true)]);
    // An entry with a bad field in a document: that entry only.
    let doc = json!({"KX-1": {"status":"finalized","result":"yes"},
                     "KX-2": {"status":"finalized","result":"yes","settlement_value_dollars":"9"}});
    let f = read_archive(&write(dir.path(), "entry.json", doc.to_string()));
    assert_eq!(labels_of(&f).len(), 1);
    assert_eq!(f.problems[0].entry.as_deref(), Some("KX-2"));
    assert!(f.problems[0]
        .to_string()
        .contains("entry \"KX-2\": field `settlement_value_dollars`"));
    // A JSONL file with no usable line is skipped.
    let f = read_archive(&write(dir.path(), "junk.jsonl", "a\nb\n"));
    assert!(f.skipped);
}

#[test]
fn sidecar_with_a_damaged_middle_line_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        r#"{"ts_ms":1,"ticker":"KX-1","source":"rest","status":"active"}"#,
        r#"{"ts_ms":2,"ticker":"KX-1","source":"ws","status":"determined","event":"determined","result":"yes","settlement_value":"1.0000"}"#,
        r#"{"ts_ms":3,"ticker":"KX-2","source":"ws","result":"no","settlement_value":"1.0000"}"#,
        r#"{"ts_ms":4,"ticker":"KX-3","source":"rest","status":"closed","close_time":"2026-05-11T06:00:00Z"}"#,
        r#"{"ts_ms":5,"ticker":"KX-4","source":"ws","status":"finalized","result":"no"}"#,
    ]
    .join("\n")
        + "\n";
    let p = write(dir.path(), "KX_markets.jsonl", &text);
    let f = read_sidecar(&p, LabelSource::Sidecar);
    assert!(!f.skipped);
    // Line 3 contradicts itself (no with $1): reported with its line, the rest read.
    assert_eq!(f.problems_total, 1);
    assert_eq!(f.problems[0].line, Some(3));
    assert_eq!(
        labels_of(&f),
        BTreeMap::from([("KX-1".into(), Outcome::Yes), ("KX-4".into(), Outcome::No)])
    );
    assert_eq!(reasons_of(&f)["KX-3"], "not_settled");
    // Clean and gzip: read through read_markets.
    let clean: String = text
        .lines()
        .filter(|l| !l.contains("KX-2"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = write(dir.path(), "KX_markets.jsonl.gz", gz(&clean));
    let f = read_sidecar(&p, LabelSource::Sidecar);
    assert_eq!(f.problems_total, 0);
    assert_eq!(labels_of(&f).len(), 2);
}

#[test]
fn duplicates_within_one_file_are_conflicts_naming_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n{}\n{}\n",
        json!({"ticker":"KX-1","status":"finalized","result":"yes"}),
        json!({"ticker":"KX-1","status":"finalized","result":"yes"}),
        json!({"ticker":"KX-1","status":"finalized","result":"no"}),
    );
    let p = write(dir.path(), "dups.jsonl", text);
    let mut c = Collector::default();
    c.add_findings(InputKind::Archive, &p, read_archive(&p));
    assert_eq!(c.labels.get("KX-1").unwrap().result, Outcome::Yes);
    assert_eq!(c.conflicts.len(), 1);
    let s = c.conflicts[0].to_string();
    assert!(
        s.contains("kept yes from archive") && s.contains("dups.jsonl:1"),
        "{s}"
    );
    assert!(
        s.contains("rejected no from archive") && s.contains("dups.jsonl:3"),
        "{s}"
    );
}

// ---------------------------------------------------------------------------------------------
// build

fn opts(dir: &Path) -> BuildOptions {
    BuildOptions {
        output: dir.join("out/labels.json"),
        unresolved_output: dir.join("out/unresolved.json"),
        labels_path: Some(dir.join("out/labels.json")),
        labels_in: Vec::new(),
        data_dir: Some(dir.join("data")),
        archives: Vec::new(),
        generated_at: t("2026-05-14T00:00:00Z"),
    }
}

fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipped: {} is absent (the shared real-data folder)",
            p.display()
        );
        None
    }
}

/// Every real market object gives the label or the reason its own fields imply, checked
/// against an independent reading of the same JSON.
#[test]
fn build_over_real_rest_market_objects() {
    let Some(shared) = shared_data() else { return };
    let rest = shared.join("kalshi_rest");
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.data_dir = None;
    o.archives = vec![format!("{}/*.raw.json", rest.display())];
    let out = build(o).unwrap();
    assert_eq!(out.problems_total, 0, "{out}");
    assert_eq!(out.inputs.len(), 4);
    let mut want_labels = BTreeMap::new();
    let mut want_unresolved = BTreeMap::new();
    for e in fs::read_dir(&rest).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with(".raw.json") {
            continue;
        }
        let doc: BTreeMap<String, Value> =
            serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        for (ticker, m) in doc {
            let status = m["status"].as_str().unwrap_or("");
            let result = m["result"].as_str().unwrap_or("");
            let settled = matches!(status, "determined" | "amended" | "finalized" | "settled");
            match result {
                "yes" | "no" if settled => {
                    want_labels.insert(ticker, result.to_string());
                }
                "scalar" => {
                    want_unresolved.insert(ticker, "scalar".to_string());
                }
                _ => {
                    want_unresolved.insert(ticker, "not_settled".to_string());
                }
            }
        }
    }
    assert!(want_labels.len() + want_unresolved.len() > 500);
    let got_labels: BTreeMap<String, String> = out
        .labels
        .labels
        .iter()
        .map(|(t, l)| (t.to_string(), l.result.to_string()))
        .collect();
    let got_unresolved: BTreeMap<String, String> = out
        .unresolved
        .unresolved
        .iter()
        .map(|u| (u.ticker.to_string(), u.reason.to_string()))
        .collect();
    assert_eq!(got_labels, want_labels);
    assert_eq!(got_unresolved, want_unresolved);
    // These captures were taken while the markets traded: the detail says so.
    let first = &out.unresolved.unresolved[0];
    assert!(
        first
            .detail
            .as_deref()
            .unwrap()
            .starts_with("status active; in capture-"),
        "{first:?}"
    );
}

/// The recorded `markets.jsonl` (ticker, times, strike, result) labels its 33 settled markets
/// with the results it carries; the 3 without a result are unresolved.
#[test]
fn build_over_real_recorded_markets_jsonl() {
    let Some(shared) = shared_data() else { return };
    let p = shared.join("kalshi_kxbtc15m_2026-05/markets.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.archives = vec![p.display().to_string()];
    let out = build(o).unwrap();
    assert_eq!(out.problems_total, 0, "{out}");
    let text = fs::read_to_string(&p).unwrap();
    let mut n_results = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let ticker = v["ticker"].as_str().unwrap();
        match v["result"].as_str() {
            Some(r) => {
                n_results += 1;
                let l = out.labels.get(ticker).unwrap();
                assert_eq!(l.result.as_str(), r, "{ticker}");
                assert_eq!(
                    l.close_time.unwrap(),
                    t(v["close_time"].as_str().unwrap()),
                    "{ticker}"
                );
            }
            None => assert!(out
                .unresolved
                .unresolved
                .iter()
                .any(|u| u.ticker.as_str() == ticker && u.reason.as_str() == "not_settled")),
        }
    }
    assert_eq!(out.labels.len(), n_results);
    assert_eq!(out.new_labels, n_results);
}

/// A real capture holds book and ticker frames only: scanning it is clean and finds nothing.
#[test]
fn real_capture_has_no_lifecycle_frames() {
    let Some(shared) = shared_data() else { return };
    let dir = shared.join("kalshi_kxbtc15m_2026-05/captures");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let f = scan_capture(&files[0]);
    assert_eq!(f.problems_total, 0, "{:?}", f.problems);
    assert!(f.labels.is_empty() && f.unresolved.is_empty());
}

#[test]
fn conflicting_archives_are_reported_and_the_first_kept() {
    let dir = tempfile::tempdir().unwrap();
    let a = json!({"KX-1": {"status":"finalized","result":"yes"},
                   "KX-2": {"status":"finalized","result":"no"}});
    let b = json!({"KX-1": {"status":"finalized","result":"no"},
                   "KX-3": {"status":"finalized","result":"yes"}});
    let pa = write(dir.path(), "a.json", a.to_string());
    let pb = write(dir.path(), "b.json", b.to_string());
    let mut o = opts(dir.path());
    // Given in reverse order: files are read sorted, so a.json still comes first.
    o.archives = vec![pb.display().to_string(), pa.display().to_string()];
    let out = build(o.clone()).unwrap();
    assert_eq!(out.labels.get("KX-1").unwrap().result, Outcome::Yes);
    assert_eq!(out.labels.len(), 3);
    assert_eq!(out.conflicts.len(), 1);
    let c = &out.conflicts[0];
    assert_eq!(c.ticker.as_str(), "KX-1");
    assert_eq!(
        (c.kept.result, c.rejected.result),
        (Outcome::Yes, Outcome::No)
    );
    assert_eq!(c.kept_from.path.as_deref(), Some(pa.as_path()));
    assert_eq!(c.rejected_from.path.as_deref(), Some(pb.as_path()));
    let text = out.to_string();
    assert!(text.contains("conflicts: 1"), "{text}");
    assert!(
        text.contains("KX-1: result conflict: kept yes from archive")
            && text.contains("a.json; rejected no from archive")
            && text.contains("b.json"),
        "{text}"
    );
    assert!(!out.is_clean());

    // The existing labels file wins over every archive: flip KX-1 there, rebuild.
    let mut existing = LabelsFile::load(&o.output).unwrap();
    existing.labels.get_mut("KX-1").unwrap().result = Outcome::No;
    existing.save(&o.output).unwrap();
    let out = build(o).unwrap();
    assert_eq!(out.labels.get("KX-1").unwrap().result, Outcome::No);
    assert_eq!(out.new_labels, 0);
    let kinds: Vec<(InputKind, Outcome)> = out
        .conflicts
        .iter()
        .map(|c| (c.kept_from.kind, c.rejected.result))
        .collect();
    // a.json's yes now disagrees with the kept no; b.json agrees.
    assert_eq!(kinds, vec![(InputKind::LabelsFile, Outcome::Yes)]);
}

#[test]
fn malformed_archive_is_skipped_by_name_and_nothing_else_lost() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    fs::create_dir(&arch).unwrap();
    write(
        &arch,
        "good1.json",
        json!({"KX-1": {"status":"finalized","result":"yes"},
               "KX-2": {"status":"finalized","result":"no"}})
        .to_string(),
    );
    let bad = write(
        &arch,
        "bad.json",
        "{\"KX-9\": {\"status\": \"finalized\", \"res",
    );
    write(
        &arch,
        "good2.jsonl.gz",
        gz(&format!(
            "{}\n{}\n",
            json!({"ticker":"KX-3","status":"finalized","result":"yes"}),
            json!({"ticker":"KX-4","status":"determined","result":"no"})
        )),
    );
    let mut o = opts(dir.path());
    o.archives = vec![arch.display().to_string()];
    let out = build(o.clone()).unwrap();
    let got: Vec<&str> = out.labels.labels.keys().map(|t| t.as_str()).collect();
    assert_eq!(got, vec!["KX-1", "KX-2", "KX-3", "KX-4"]);
    assert_eq!(out.skipped_files(), vec![bad.as_path()]);
    assert_eq!(out.problems_total, 1);
    let text = out.to_string();
    assert!(
        text.contains(&format!("{}: invalid JSON", bad.display())) && text.contains("file skipped"),
        "{text}"
    );
    assert!(text.contains("archive 3 (1 skipped)"), "{text}");
    // Written to disk exactly as returned.
    let on_disk = LabelsFile::load(&o.output).unwrap();
    assert_eq!(on_disk, out.labels);
}

fn mixed_inputs(dir: &Path) -> BuildOptions {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    write(
        &data,
        "KX_markets.jsonl",
        [
            r#"{"ts_ms":1,"ticker":"KX-S1","source":"rest","status":"active","close_time":"2026-05-11T06:00:00Z"}"#,
            r#"{"ts_ms":2,"ticker":"KX-S1","source":"ws","status":"determined","event":"determined","result":"yes","settlement_value":"1.0000"}"#,
            r#"{"ts_ms":3,"ticker":"KX-S2","source":"rest","status":"closed"}"#,
            r#"{"ts_ms":4,"ticker":"KX-A","source":"ws","status":"determined","result":"yes"}"#,
        ]
        .join("\n")
            + "\n",
    );
    capture_fixture(&data, "KX_20260511T050000Z.capture.jsonl.gz", false);
    let bare = write(
        dir,
        "old_labels.json",
        r#"{"KX-B1": 1, "KX-B2": "no", "KX-S2": "yes"}"#,
    );
    let arch = write(
        dir,
        "arch.raw.json",
        json!({"KX-R1": {"status":"finalized","result":"no","close_time":"2026-05-11T07:00:00Z"},
               "KX-R2": {"status":"active","result":""},
               "KX-B": {"status":"finalized","result":"yes"}})
        .to_string(),
    );
    let mut o = opts(dir);
    o.labels_in = vec![bare];
    o.archives = vec![arch.display().to_string()];
    o
}

#[test]
fn sidecar_capture_bare_map_and_archive_merge_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let o = mixed_inputs(dir.path());
    let first = build(o.clone()).unwrap();
    let bytes = |p: &Path| fs::read(p).unwrap();
    let (l1, u1) = (bytes(&o.output), bytes(&o.unresolved_output));

    let got: BTreeMap<String, (Outcome, String)> = first
        .labels
        .labels
        .iter()
        .map(|(t, l)| {
            let src = l.source.as_ref().map(|s| s.to_string()).unwrap_or_default();
            (t.to_string(), (l.result, src))
        })
        .collect();
    use Outcome::*;
    let want: BTreeMap<String, (Outcome, String)> = [
        ("KX-A", Yes, "sidecar"), // also in the capture (yes): sidecar read first
        ("KX-B", No, "capture"),  // the archive says yes: conflict, capture read first
        ("KX-B1", Yes, ""),       // bare map: no source
        ("KX-B2", No, ""),
        ("KX-E", No, "capture"),
        ("KX-R1", No, "archive"),
        ("KX-S1", Yes, "sidecar"),
        ("KX-S2", Yes, ""), // bare label; the sidecar only says closed
    ]
    .into_iter()
    .map(|(t, o, s)| (t.to_string(), (o, s.to_string())))
    .collect();
    assert_eq!(got, want);
    let reasons: BTreeMap<String, String> = first
        .unresolved
        .unresolved
        .iter()
        .map(|u| (u.ticker.to_string(), u.reason.to_string()))
        .collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("KX-C".into(), "scalar".into()),
            ("KX-D".into(), "inconsistent".into()),
            ("KX-R2".into(), "not_settled".into()),
        ])
    );
    let conflicts: Vec<String> = first
        .conflicts
        .iter()
        .map(|c| c.ticker.to_string())
        .collect();
    assert_eq!(conflicts, vec!["KX-B"]);
    assert_eq!(first.conflicts[0].kept_from.kind, InputKind::Capture);
    assert_eq!(first.conflicts[0].rejected_from.kind, InputKind::Archive);
    assert_eq!(first.new_labels, 8);
    assert_eq!(first.problems_total, 1, "the bad capture line: {first}");

    // Again, from scratch elsewhere: the same bytes.
    let other = tempfile::tempdir().unwrap();
    let mut o2 = o.clone();
    o2.output = other.path().join("labels.json");
    o2.unresolved_output = other.path().join("unresolved.json");
    o2.labels_path = None;
    build(o2.clone()).unwrap();
    assert_eq!(bytes(&o2.output), l1);
    assert_eq!(bytes(&o2.unresolved_output), u1);

    // Again over its own output: nothing new, the same bytes.
    let second = build(o.clone()).unwrap();
    assert_eq!(second.new_labels, 0);
    assert_eq!(bytes(&o.output), l1);
    assert_eq!(bytes(&o.unresolved_output), u1);
    let summary = second.to_string();
    assert!(summary.contains("labels: 8 total, 0 new"), "{summary}");
    assert!(
        summary.contains("by reason: inconsistent 1, not_settled 1, scalar 1"),
        "{summary}"
    );
}

#[test]
fn earlier_unresolved_entries_are_carried_and_resolved_ones_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    fs::create_dir_all(o.unresolved_output.parent().unwrap()).unwrap();
    let mut prev = UnresolvedList::new(t("2026-05-13T00:00:00Z"));
    for (tk, r) in [
        ("KX-OLD", UnresolvedReason::NotFound),
        ("KX-1", UnresolvedReason::NotSettled),
    ] {
        prev.push(Unresolved {
            ticker: tk.into(),
            reason: r,
            detail: None,
        });
    }
    prev.save(&o.unresolved_output).unwrap();
    let arch = write(
        dir.path(),
        "a.json",
        json!({"KX-1": {"status":"finalized","result":"yes"}}).to_string(),
    );
    let mut o2 = o.clone();
    o2.archives = vec![arch.display().to_string()];
    let out = build(o2).unwrap();
    let left: Vec<(&str, &str)> = out
        .unresolved
        .unresolved
        .iter()
        .map(|u| (u.ticker.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(left, vec![("KX-OLD", "not_found")]);
}

#[test]
fn bad_existing_labels_or_missing_inputs_stop_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    fs::create_dir_all(o.output.parent().unwrap()).unwrap();
    fs::write(&o.output, r#"{"KX-1": "maybe"}"#).unwrap();
    let e = build(o.clone()).unwrap_err().to_string();
    assert!(e.contains("labels.json") && e.contains("KX-1"), "{e}");
    assert_eq!(
        fs::read_to_string(&o.output).unwrap(),
        r#"{"KX-1": "maybe"}"#
    );
    assert!(!o.unresolved_output.exists());

    fs::remove_file(&o.output).unwrap();
    let mut o2 = o.clone();
    o2.archives = vec![dir.path().join("nope-*.json").display().to_string()];
    let e = build(o2).unwrap_err().to_string();
    assert!(
        e.contains("nope-*.json") && e.contains("matches no file"),
        "{e}"
    );
    let mut o3 = o.clone();
    o3.labels_in = vec![dir.path().join("missing.json")];
    let e = build(o3).unwrap_err().to_string();
    assert!(e.contains("missing.json"), "{e}");
    assert!(!o.output.exists());
}

// ---------------------------------------------------------------------------------------------
// sync

/// A fake exchange: answers from a table and counts what it was asked.
#[derive(Default)]
struct FakeSource {
    markets: BTreeMap<String, Value>,
    calls: usize,
    asked: Vec<String>,
    fail_on_call: Option<usize>,
    largest_batch: usize,
    unreadable: Vec<String>,
}

impl FakeSource {
    fn set(&mut self, ticker: &str, status: &str, result: &str) {
        self.markets.insert(
            ticker.into(),
            json!({"ticker": ticker, "status": status, "result": result,
                   "close_time": "2026-05-11T06:00:00Z"}),
        );
    }
}

impl OutcomeSource for FakeSource {
    type Error = String;
    fn fetch(&mut self, tickers: &[MarketTicker]) -> Result<Vec<FetchedOutcome>, String> {
        self.calls += 1;
        self.largest_batch = self.largest_batch.max(tickers.len());
        if self.fail_on_call == Some(self.calls) {
            return Err("HTTP 503 from /markets".into());
        }
        let mut out = Vec::new();
        for t in tickers {
            self.asked.push(t.to_string());
            if self.unreadable.contains(&t.to_string()) {
                out.push(FetchedOutcome::Unreadable {
                    ticker: t.clone(),
                    message: "field `status`: expected a string, got 5".into(),
                });
            } else if let Some(m) = self.markets.get(t.as_str()) {
                out.push(FetchedOutcome::Market(
                    MarketOutcome::from_json(m.as_object().unwrap(), None).unwrap(),
                ));
            } else if t.as_str().ends_with("GONE") {
                out.push(FetchedOutcome::NotFound(t.clone()));
            }
        }
        // Something not asked about is ignored.
        out.push(FetchedOutcome::NotFound("KX-UNASKED".into()));
        Ok(out)
    }
}

fn snap(ts: i64, ticker: &str, close_ts_ms: Option<i64>) -> String {
    let mut v = json!({"ts_ms": ts, "market_ticker": ticker, "yes_bid": 42, "yes_ask": 44,
        "no_bid": 56, "no_ask": 58, "yes_mid": 43, "spread": 2});
    if let Some(c) = close_ts_ms {
        v["close_ts_ms"] = json!(c);
    }
    format!("{v}\n")
}

const NOW: &str = "2026-05-11T06:30:00Z";

/// Snapshot files holding markets KX-1..KX-5 (closed before NOW), KX-LATE (closes after),
/// KX-GONE, plus a marker-only market.
fn snapshots(dir: &Path) -> String {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let closed = Some(1778479200000); // 2026-05-11T06:00:00Z
    let late = Some(1778482800000); // 2026-05-11T07:00:00Z
    let mut a = String::new();
    for tk in ["KX-1", "KX-2", "KX-3"] {
        a += &snap(1778478000000, tk, closed);
    }
    a += &snap(1778478000100, "KX-LATE", None);
    a += &snap(1778478000200, "KX-LATE", late);
    write(&data, "KX_20260511T050000Z.snap_100ms.jsonl.gz", gz(&a));
    let mut b = String::new();
    b += &snap(1778481600000, "KX-1", closed);
    b += &snap(1778481600000, "KX-4", closed);
    b += &snap(1778481600000, "KX-5", None);
    b += &snap(1778481600000, "KX-GONE", None);
    b += "{\"ts_ms\":1778481600100,\"market_ticker\":\"KX-M\",\"event\":\"gap\"}\n";
    write(&data, "KX_20260511T060000Z.snap_100ms.jsonl", b);
    super::sync::default_snapshot_glob(&data)
}

fn sync_opts(dir: &Path) -> SyncOptions {
    SyncOptions {
        snapshots: snapshots(dir),
        output: dir.join("out/aligned.json"),
        unresolved_output: dir.join("out/unresolved.json"),
        labels_path: Some(dir.join("labels.json")),
        labels_in: Vec::new(),
        batch_size: 100,
        now: t(NOW),
        recheck_final: false,
    }
}

fn known_labels(dir: &Path) {
    let mut f = LabelsFile::new(t("2026-05-12T00:00:00Z"));
    f.insert(
        "KX-1".into(),
        crate::schema::Label::new(Outcome::Yes, None, LabelSource::Sidecar),
    );
    f.insert(
        "KX-ELSEWHERE".into(),
        crate::schema::Label::new(Outcome::No, None, LabelSource::Archive),
    );
    f.save(&dir.join("labels.json")).unwrap();
}

fn reasons(list: &UnresolvedList) -> BTreeMap<String, String> {
    list.unresolved
        .iter()
        .map(|u| (u.ticker.to_string(), u.reason.to_string()))
        .collect()
}

#[test]
fn sync_fetches_only_missing_and_classifies() {
    let dir = tempfile::tempdir().unwrap();
    known_labels(dir.path());
    let o = sync_opts(dir.path());
    let mut src = FakeSource::default();
    src.set("KX-2", "finalized", "yes");
    src.set("KX-3", "finalized", "scalar");
    src.set("KX-4", "closed", "");
    src.set("KX-M", "determined", "no");
    // KX-5: not answered at all. KX-GONE: answered "not found".
    let out = sync(o.clone(), &mut src).unwrap();
    assert_eq!(out.snapshot_tickers, 8);
    assert_eq!(out.known, 1);
    assert_eq!(out.not_closed, 1, "KX-LATE closes after now");
    let mut asked = src.asked.clone();
    asked.sort();
    assert_eq!(asked, ["KX-2", "KX-3", "KX-4", "KX-5", "KX-GONE", "KX-M"]);
    assert_eq!(out.requested, 6);
    assert_eq!(out.fetched_labels, 2);
    let labels: BTreeMap<String, (Outcome, String)> = out
        .labels
        .labels
        .iter()
        .map(|(t, l)| {
            (
                t.to_string(),
                (l.result, l.source.as_ref().unwrap().to_string()),
            )
        })
        .collect();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("KX-1".into(), (Outcome::Yes, "sidecar".into())),
            ("KX-2".into(), (Outcome::Yes, "api".into())),
            ("KX-M".into(), (Outcome::No, "api".into())),
        ])
    );
    assert_eq!(out.left_out, 1, "KX-ELSEWHERE is not in the snapshots");
    assert_eq!(out.new_labels, 3);
    assert_eq!(
        reasons(&out.unresolved),
        BTreeMap::from([
            ("KX-3".into(), "scalar".into()),
            ("KX-4".into(), "not_settled".into()),
            ("KX-5".into(), "not_found".into()),
            ("KX-GONE".into(), "not_found".into()),
            ("KX-LATE".into(), "not_settled".into()),
        ])
    );
    let late = out
        .unresolved
        .unresolved
        .iter()
        .find(|u| u.ticker.as_str() == "KX-LATE")
        .unwrap();
    assert_eq!(
        late.detail.as_deref(),
        Some("closes at 2026-05-11T07:00:00Z")
    );
    // Written as returned.
    assert_eq!(LabelsFile::load(&o.output).unwrap(), out.labels);
    assert_eq!(
        UnresolvedList::load(&o.unresolved_output).unwrap(),
        out.unresolved
    );
    let s = out.to_string();
    assert!(
        s.contains("labels: 3 of 8 snapshot markets labelled, 3 new"),
        "{s}"
    );

    // Second run: only what is still missing and may change (KX-4, KX-5, KX-GONE), not the
    // scalar KX-3 nor the not-yet-closed KX-LATE. KX-4 has settled since.
    src.asked.clear();
    src.set("KX-4", "finalized", "no");
    let out2 = sync(o.clone(), &mut src).unwrap();
    let mut asked = src.asked.clone();
    asked.sort();
    assert_eq!(asked, ["KX-4", "KX-5", "KX-GONE"]);
    assert_eq!(out2.skipped_final, 1);
    assert_eq!(out2.known, 3);
    assert_eq!(out2.new_labels, 1);
    assert_eq!(out2.labels.get("KX-4").unwrap().result, Outcome::No);
    assert!(!reasons(&out2.unresolved).contains_key("KX-4"));
    // With recheck_final the scalar market is asked again.
    src.asked.clear();
    let mut o3 = o.clone();
    o3.recheck_final = true;
    sync(o3, &mut src).unwrap();
    assert!(src.asked.contains(&"KX-3".to_string()));
}

#[test]
fn sync_second_run_makes_no_fetch_and_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    known_labels(dir.path());
    let mut o = sync_opts(dir.path());
    o.now = t("2026-05-12T00:00:00Z"); // everything has closed
    let mut src = FakeSource::default();
    for tk in ["KX-2", "KX-3", "KX-4", "KX-5", "KX-LATE", "KX-GONE", "KX-M"] {
        src.set(tk, "finalized", if tk < "KX-4" { "yes" } else { "no" });
    }
    let first = sync(o.clone(), &mut src).unwrap();
    assert_eq!(first.labels.len(), 8);
    assert!(first.unresolved.unresolved.is_empty());
    let calls = src.calls;
    let l1 = fs::read(&o.output).unwrap();
    let u1 = fs::read(&o.unresolved_output).unwrap();

    let second = sync(o.clone(), &mut src).unwrap();
    assert_eq!(src.calls, calls, "no fetch on the second run");
    assert_eq!(second.requested, 0);
    assert_eq!(second.known, 8);
    assert_eq!(second.new_labels, 0);
    assert_eq!(fs::read(&o.output).unwrap(), l1);
    assert_eq!(fs::read(&o.unresolved_output).unwrap(), u1);
}

#[test]
fn sync_batches_and_survives_a_fetch_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = sync_opts(dir.path());
    o.labels_path = None;
    o.now = t("2026-05-12T00:00:00Z");
    o.batch_size = 3;
    let mut src = FakeSource {
        fail_on_call: Some(2),
        ..Default::default()
    };
    for tk in [
        "KX-1", "KX-2", "KX-3", "KX-4", "KX-5", "KX-GONE", "KX-LATE", "KX-M",
    ] {
        src.set(tk, "finalized", "yes");
    }
    let out = sync(o.clone(), &mut src).unwrap();
    assert_eq!(src.largest_batch, 3);
    assert_eq!(src.calls, 2, "fetching stops at the error");
    assert_eq!(out.fetch_error.as_deref(), Some("HTTP 503 from /markets"));
    assert!(!out.is_clean());
    // The first batch (sorted: KX-1, KX-2, KX-3) was labelled; the other five are listed.
    let got: Vec<&str> = out.labels.labels.keys().map(|t| t.as_str()).collect();
    assert_eq!(got, ["KX-1", "KX-2", "KX-3"]);
    let r = reasons(&out.unresolved);
    assert_eq!(r.len(), 5);
    assert!(r.values().all(|v| v == "fetch_failed"), "{r:?}");
    assert!(out.to_string().contains("fetch error: HTTP 503"));

    // The next run asks only for those five, in two batches.
    src.fail_on_call = None;
    src.asked.clear();
    let out = sync(o, &mut src).unwrap();
    assert_eq!(src.asked.len(), 5);
    assert_eq!(src.calls, 4);
    assert_eq!(out.labels.len(), 8);
    assert!(out.unresolved.unresolved.is_empty());
}

#[test]
fn sync_into_the_main_labels_file_keeps_every_label() {
    let dir = tempfile::tempdir().unwrap();
    known_labels(dir.path());
    let mut o = sync_opts(dir.path());
    o.output = dir.path().join("labels.json");
    o.now = t("2026-05-12T00:00:00Z");
    let mut src = FakeSource::default();
    src.set("KX-2", "finalized", "no");
    src.unreadable.push("KX-3".into());
    let out = sync(o.clone(), &mut src).unwrap();
    let u = out
        .unresolved
        .unresolved
        .iter()
        .find(|u| u.ticker.as_str() == "KX-3")
        .unwrap();
    assert_eq!(u.reason.as_str(), "unreadable");
    assert_eq!(
        u.detail.as_deref(),
        Some("field `status`: expected a string, got 5")
    );
    assert_eq!(out.kept_unaligned, 1);
    assert_eq!(out.left_out, 0);
    assert!(out.labels.get("KX-ELSEWHERE").is_some());
    assert_eq!(out.labelled_snapshot_markets(), 2);
}

#[test]
fn sync_without_snapshots_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = sync_opts(dir.path());
    o.snapshots = format!("{}/none/*.snap_*ms.jsonl*", dir.path().display());
    let e = sync(o.clone(), &mut FakeSource::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no snapshot file matches"), "{e}");
    assert!(!o.output.exists());
}

#[test]
fn progress_reports_every_phase() {
    #[derive(Default)]
    struct Rec(Vec<(String, u64)>, u64);
    impl Progress for Rec {
        fn start(&mut self, phase: &str, total: u64, _: &str) {
            self.0.push((phase.into(), total));
        }
        fn advance(&mut self, n: u64) {
            self.1 += n;
        }
        fn finish(&mut self) {}
    }
    let dir = tempfile::tempdir().unwrap();
    let o = sync_opts(dir.path());
    let mut src = FakeSource::default();
    let mut rec = Rec::default();
    let out = sync_with_progress(o, &mut src, &mut rec).unwrap();
    assert_eq!(
        rec.0,
        vec![
            ("reading snapshots".to_string(), 2),
            ("fetching outcomes".to_string(), out.requested as u64)
        ]
    );
    assert_eq!(rec.1, 2 + out.requested as u64);

    let dir = tempfile::tempdir().unwrap();
    let o = mixed_inputs(dir.path());
    let mut rec = Rec::default();
    build_with_progress(o, &mut rec).unwrap();
    assert_eq!(rec.0, vec![("reading inputs".to_string(), 3)]);
    assert_eq!(rec.1, 3);
}

#[test]
fn the_more_final_unresolved_reason_wins() {
    let dir = tempfile::tempdir().unwrap();
    // Sorted order: a (not settled), b (scalar), c (not settled again): scalar stays.
    for (name, status, result) in [
        ("a.json", "closed", ""),
        ("b.json", "finalized", "scalar"),
        ("c.json", "active", ""),
    ] {
        write(
            dir.path(),
            name,
            json!({"KX-1": {"status": status, "result": result}}).to_string(),
        );
    }
    let mut o = opts(dir.path());
    o.archives = vec![format!("{}/*.json", dir.path().display())];
    let out = build(o).unwrap();
    let u = &out.unresolved.unresolved;
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].reason, UnresolvedReason::Scalar);
    assert_eq!(u[0].detail.as_deref(), Some("in b.json"));
}
