//! The feature state as training uses it: the dataset built from files equals the streaming
//! state fed line by line (bit for bit), and features are causal.

use std::path::{Path, PathBuf};

use pipeline::dataset::{self, BuildOptions};
use pipeline::features::{FeatureConfig, FeatureState, Step};
use pipeline::money::{Count, Price};
use pipeline::schema::labels::{Label, LabelSource, LabelsFile, Outcome};
use pipeline::snapshot::{Line, Marker, MarkerKind, SnapshotRecord};
use pipeline::MarketTicker;

/// Three markets, 200 ms rows, interleaved, a gap + resync in one: a random walk of the mid
/// from a 64-bit LCG.
fn lines(seed: u64) -> Vec<Line> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as i64
    };
    let mut mids = [50i64, 30, 70];
    let mut out = Vec::new();
    for i in 0..1500i64 {
        let ts = 1_700_000_000_000 + i * 200;
        for (m, mid) in mids.iter_mut().enumerate() {
            let t = MarketTicker::from(format!("KXT-M{m}").as_str());
            if m == 1 && i == 700 {
                out.push(Line::Marker(Marker::new(
                    ts,
                    t.clone(),
                    MarkerKind::Gap,
                    None,
                )));
            }
            if m == 1 && (700..760).contains(&i) {
                continue;
            }
            if m == 1 && i == 760 {
                out.push(Line::Marker(Marker::new(
                    ts,
                    t.clone(),
                    MarkerKind::Resync,
                    None,
                )));
            }
            *mid = (*mid + next() % 3 - 1).clamp(3, 97);
            let bid = (
                Price::from_cents(*mid - 1).unwrap(),
                Count::from_centis(100 + next() % 5000),
            );
            let no = (
                Price::from_cents(100 - *mid - 1).unwrap(),
                Count::from_centis(100 + next() % 5000),
            );
            let rec = SnapshotRecord::from_book(ts, t, Some(bid), Some(no))
                .unwrap()
                .with_close_ts_ms(Some(1_700_000_000_000 + 300_000 + m as i64));
            out.push(Line::Snapshot(rec));
        }
    }
    out
}

fn write(dir: &Path, name: &str, lines: &[Line]) -> PathBuf {
    let mut buf = Vec::new();
    for l in lines {
        l.write_json(&mut buf);
    }
    let p = dir.join(name);
    std::fs::write(&p, buf).unwrap();
    p
}

fn labels() -> LabelsFile {
    let mut l = LabelsFile::new(chrono::Utc::now());
    for m in 0..3 {
        l.insert(
            MarketTicker::from(format!("KXT-M{m}").as_str()),
            Label::new(
                if m == 1 { Outcome::No } else { Outcome::Yes },
                None,
                LabelSource::Archive,
            ),
        );
    }
    l
}

fn stream(lines: &[Line], ticker: &str) -> Vec<Step> {
    let mut st = FeatureState::new(FeatureConfig::default(), None);
    lines
        .iter()
        .filter(|l| l.market_ticker().as_str() == ticker)
        .filter_map(|l| st.push(l))
        .collect()
}

#[test]
fn training_sequences_equal_the_streaming_state_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let all = lines(1);
    // Split across two files at an arbitrary line: the dataset must not care.
    let a = write(
        tmp.path(),
        "KXT_20231114T220000Z.snap_200ms.jsonl",
        &all[..2000],
    );
    let b = write(
        tmp.path(),
        "KXT_20231114T230000Z.snap_200ms.jsonl",
        &all[2000..],
    );
    let ds = dataset::build(&[a, b], &labels(), &BuildOptions::default());
    assert_eq!(ds.markets.len(), 3);
    for m in &ds.markets {
        let steps = stream(&all, m.ticker.as_str());
        let flat: Vec<&Step> = steps.iter().collect();
        let mut k = 0;
        for (si, seq) in m.sequences.iter().enumerate() {
            for t in 0..seq.len() {
                let s = flat[k];
                assert_eq!(s.new_segment, t == 0, "{} seq {si} step {t}", m.ticker);
                assert_eq!(s.ts_ms, seq.ts_ms[t]);
                let a: Vec<u32> = s.x.iter().map(|v| v.to_bits()).collect();
                let b: Vec<u32> = seq.x[t].iter().map(|v| v.to_bits()).collect();
                assert_eq!(a, b, "{} at {}", m.ticker, s.ts_ms);
                k += 1;
            }
        }
        assert_eq!(k, flat.len());
        // The market with a gap has two sequences.
        let want = if m.ticker.as_str() == "KXT-M1" { 2 } else { 1 };
        assert_eq!(m.sequences.len(), want, "{}", m.ticker);
    }
}

#[test]
fn changing_rows_after_t_changes_no_feature_at_or_before_t() {
    let base = lines(2);
    let cut = 1_700_000_000_000 + 150_000;
    for seed in 3..6 {
        let other = lines(seed);
        // Same history up to `cut`, a different future after it.
        let mixed: Vec<Line> = base
            .iter()
            .filter(|l| l.ts_ms() <= cut)
            .chain(other.iter().filter(|l| l.ts_ms() > cut))
            .cloned()
            .collect();
        for m in ["KXT-M0", "KXT-M1", "KXT-M2"] {
            let a: Vec<Step> = stream(&base, m)
                .into_iter()
                .filter(|s| s.ts_ms <= cut)
                .collect();
            let b: Vec<Step> = stream(&mixed, m)
                .into_iter()
                .filter(|s| s.ts_ms <= cut)
                .collect();
            assert!(!a.is_empty());
            assert_eq!(a, b, "{m}: a feature at or before T saw the future");
            let after_a = stream(&base, m)
                .into_iter()
                .find(|s| s.ts_ms > cut + 60_000);
            let after_b = stream(&mixed, m)
                .into_iter()
                .find(|s| s.ts_ms > cut + 60_000);
            assert_ne!(after_a, after_b, "{m}: the test must change something");
        }
    }
}
