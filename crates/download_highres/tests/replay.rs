//! Recording a replayed real Kalshi session (`kalshi_sim replay` of a May 2026 KXBTC15M
//! capture from `shared/data`): real message content (deci-cent prices, fractional sizes, real
//! tickers) goes through the recorder, and every row equals the book rebuilt from the frames
//! it received. Skips with a message when `shared/` is absent (a user's clone has none).

mod common;

use std::path::PathBuf;

use common::*;
use kalshi_sim::{spawn_replay, KeySetup, RateLimitConfig, ReplayConfig, Speed, StartMode};
use pipeline::snapshot::Line;

fn shared_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    d.is_dir().then(|| d.canonicalize().unwrap_or(d))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_replayed_real_session_on_the_exchange_clock() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP records_a_replayed_real_session_on_the_exchange_clock: shared/ not found");
        return;
    };
    let data = shared.join("data/kalshi_kxbtc15m_2026-05");
    let mut captures: Vec<PathBuf> = std::fs::read_dir(data.join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".capture.jsonl.gz"))
        .collect();
    captures.sort();
    let capture = captures[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let (key_id, key) = key(0);
    let replay = spawn_replay(ReplayConfig {
        captures: vec![capture.clone()],
        markets_file: Some(data.join("markets.jsonl")),
        speed: Speed::Factor(1.0),
        start: StartMode::Immediately,
        key: KeySetup::Private { key_id, key },
        key_dir: Some(dir.path().join("keys")),
        rate_limit: RateLimitConfig::unlimited(),
        ..ReplayConfig::default()
    })
    .await
    .expect("replay starts");
    let (env, pem) = replay.key_files().expect("key files");
    let out = dir.path().join("out");
    let config = dir.path().join("runtime.json");
    write_config(&config, &replay.rest_base(), &env, &pem, &out);

    let done = finish(
        recorder(
            &config,
            &[
                "--clock",
                "exchange",
                "--duration",
                "15",
                "--capture",
                "--depth",
                "10",
            ],
        )
        .spawn()
        .unwrap(),
    )
    .await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);

    let (lines, report) = read_lines(&out);
    assert!(report.is_clean(), "{report}");
    let st = check_grid(&lines, &markets(&out), true);
    let replay_progress = replay.progress();
    // The grid ran on the recording's clock (May 2026), inside the recorded session.
    assert!(
        st.first_tick >= replay_progress.start_ms && st.last_tick <= replay_progress.end_ms,
        "grid {}..{} outside the recording {}..{}",
        st.first_tick,
        st.last_tick,
        replay_progress.start_ms,
        replay_progress.end_ms
    );
    let rebuilt = Replay::from_capture(&out);
    assert_eq!((rebuilt.gaps, rebuilt.duplicates), (0, 0));
    let checked = check_rows_against_capture(&lines, &rebuilt, 10);
    assert_eq!(checked, st.rows);
    assert!(st.rows >= 50, "{st:?}");
    // Real content: fractional sizes made it through exactly.
    let fractional = lines.iter().any(|l| match l {
        Line::Snapshot(r) => r
            .yes_bids
            .iter()
            .chain(r.no_bids.iter())
            .flatten()
            .any(|(_, c)| c.centis() % 100 != 0),
        _ => false,
    });
    assert!(fractional, "real books have fractional sizes");
    eprintln!(
        "replay of {}: {} markets, {} rows, {} gaps; grid {}..{}",
        capture.display(),
        st.markets,
        st.rows,
        st.gaps,
        st.first_tick,
        st.last_tick
    );
    replay.shutdown().await;
}
