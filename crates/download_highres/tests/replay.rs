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

/// The first real session replayed at speed 1 (`start`: at once or at the first
/// subscription) and recorded for 15 s on the exchange's clock with `--capture --depth 10`.
struct Recorded {
    data: PathBuf,
    capture: PathBuf,
    dir: tempfile::TempDir,
    out: PathBuf,
    replay: kalshi_sim::Replay,
    lines: Vec<Line>,
    st: GridStats,
}

async fn record_replay(shared: &std::path::Path, start: StartMode) -> Recorded {
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
        start,
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
    Recorded {
        data,
        capture,
        dir,
        out,
        replay,
        lines,
        st,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_replayed_real_session_on_the_exchange_clock() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP records_a_replayed_real_session_on_the_exchange_clock: shared/ not found");
        return;
    };
    // `_dir` keeps the temporary folder until the end of the test.
    let Recorded {
        capture,
        dir: _dir,
        out,
        replay,
        lines,
        st,
        ..
    } = record_replay(&shared, StartMode::Immediately).await;
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

/// `--clock exchange` against a replay that starts at the first subscription: the replay's
/// clock stands still until the recorder subscribes, so a clock read once at start would stamp
/// every row late by the time it took to subscribe. Rows must show the book the recorded
/// session had at their instant: the offline re-grid of the same capture (the book after every
/// frame received ≤ T on the recording's clock) is the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_clock_follows_a_replay_that_starts_at_the_subscription() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP the_exchange_clock_follows_a_replay_that_starts_at_the_subscription: shared/ not found");
        return;
    };
    let Recorded {
        data,
        capture,
        dir,
        out,
        replay,
        lines,
        st,
    } = record_replay(&shared, StartMode::OnSubscribe).await;
    assert!(st.rows >= 50, "{st:?}");
    let reference = regrid_files(
        std::slice::from_ref(&capture),
        &dir.path().join("regrid"),
        &[
            "--markets",
            data.join("markets.jsonl").to_str().unwrap(),
            "--use-yes-price",
            "false",
            "--depth",
            "10",
        ],
    );
    let frames = frame_times(std::slice::from_ref(&capture));
    // The replay numbers its own sequence: compare everything else.
    let no_seq = |ls: &[Line]| -> Vec<Line> {
        ls.iter()
            .cloned()
            .map(|l| match l {
                Line::Snapshot(mut r) => {
                    r.seq = None;
                    Line::Snapshot(r)
                }
                m => m,
            })
            .collect()
    };
    // The recording covers the first 15 s of the session: compare there.
    let reference: Vec<Line> = reference
        .into_iter()
        .filter(|l| l.ts_ms() <= st.last_tick)
        .collect();
    let ag = agreement(&no_seq(&lines), &no_seq(&reference), &frames, STEP);
    eprintln!(
        "exchange clock vs the recording's own clock: {} instants with a row in both, equal books {:.2}% ({} equal rows, {} REST-seeded), {} differ with a frame within one step after T, {} unexplained; {} reference rows before the recorder's first snapshot, {} other one-sided",
        ag.both,
        100.0 * ag.book_share(),
        ag.equal,
        ag.rest_seeded,
        ag.late,
        ag.unexplained.len(),
        ag.not_yet_subscribed,
        ag.one_sided.len()
    );
    assert!(ag.both + 20 >= st.rows, "{ag:?} vs {} rows", st.rows);
    assert!(
        ag.unexplained.is_empty() && ag.one_sided.is_empty(),
        "{ag:?}"
    );
    assert!(ag.book_share() >= 0.6, "{ag:?}");
    // The capture file is named on the same clock as the snapshot files (the recording's).
    let day = |p: &PathBuf| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        n.split('_').nth(1).unwrap()[..8].to_string()
    };
    let snaps = snapshot_files(&out);
    for c in capture_files(&out) {
        assert_eq!(
            day(&c),
            day(&snaps[0]),
            "{} vs {}",
            c.display(),
            snaps[0].display()
        );
    }

    replay.shutdown().await;
}
