//! Process behaviour of the `download_highres` binary (spawned as a child, the simulator in
//! this process): kill -9, a second instance on the same folder, SIGTERM, rejected
//! credentials, a lost exchange, and `--summary`.

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use market_data::capture::CaptureReader;
use market_data::recorder::{OutDirLock, LOCK_FILE_NAME};
use pipeline::schema::markets::{markets_path, read_markets};
use pipeline::snapshot::{Line, MarkerKind};
use pipeline::SeriesTicker;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Waits until the snapshot file has been flushed `n` times (its size changed n times).
async fn wait_for_flushes(out: &Path, n: usize) {
    let mut sizes: Vec<u64> = Vec::new();
    wait_for("snapshot flushes", || {
        let total: u64 = snapshot_files(out).iter().map(|p| len(p)).sum();
        if total > 0 && sizes.last() != Some(&total) {
            sizes.push(total);
        }
        sizes.len() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leaves_readable_files_losing_at_most_one_flush_interval() {
    let s = start(sim_config(31, 3_000, vec![])).await;
    let child = recorder(
        &s.config,
        &["--capture", "--flush-seconds", "1", "--depth", "3"],
    )
    .spawn()
    .unwrap();
    wait_for_flushes(&s.out, 3).await;
    let (before, _) = read_lines(&s.out);
    assert!(!before.is_empty());
    let kill_ms = wall_ms();
    signal(&child, libc::SIGKILL);
    let done = finish(child).await;
    assert_eq!(done.code, None, "killed by a signal");

    // Every file reads; at most a truncated last member is skipped.
    let (after, report) = read_lines(&s.out);
    let t = report.totals();
    assert_eq!(
        (
            t.not_utf8,
            t.not_json,
            t.bad_field,
            t.invalid,
            t.too_long,
            t.corrupt_members
        ),
        (0, 0, 0, 0, 0, 0),
        "{report}"
    );
    assert!(t.truncated_files <= t.files, "{report}");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "what was on disk before the kill is intact"
    );
    // At most one flush interval (1 s) was lost, plus scheduling slack.
    let last = after.iter().map(Line::ts_ms).max().unwrap();
    let lost = kill_ms - last;
    eprintln!(
        "kill -9: {} lines before, {} after; newest line {lost} ms before the kill; {report}",
        before.len(),
        after.len()
    );
    assert!(lost <= 1_000 + 1_500, "lost {lost} ms of lines");
    check_grid(&after, &markets(&s.out), false);
    for f in capture_files(&s.out) {
        let mut r = CaptureReader::open(&f).unwrap();
        assert!(r.by_ref().all(|x| x.is_ok()), "{}", f.display());
        assert!(r.stats().records > 0);
    }
    read_markets(&markets_path(&s.out, &SeriesTicker::new(SERIES))).expect("sidecar reads");

    // The lock died with the process: a new run records into the same folder.
    let again = recorder(&s.config, &["--duration", "2"]).spawn().unwrap();
    let done = finish(again).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let (all, report) = read_lines(&s.out);
    assert_eq!(report.totals().corrupt_members, 0, "{report}");
    assert!(all.len() > after.len());
    assert!(
        all[after.len()..].iter().any(
            |l| matches!(l, Line::Marker(m) if m.reason.as_deref() == Some("recorder stopped"))
        ),
        "the second run stopped cleanly"
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_refuses_with_exit_3_naming_the_lock_holder() {
    let s = start(sim_config(37, 3_000, vec![])).await;
    let a = recorder(&s.config, &[]).spawn().unwrap();
    let pid = a.id().unwrap();
    let lock = s.out.join(LOCK_FILE_NAME);
    wait_for("the first instance's lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with(&format!("pid={pid} ")))
    })
    .await;
    let b = recorder(&s.config, &["--duration", "30"]).spawn().unwrap();
    let done_b = finish(b).await;
    assert_eq!(done_b.code, Some(3), "stderr:\n{}", done_b.stderr);
    assert!(
        done_b.stderr.contains(&lock.display().to_string()),
        "{}",
        done_b.stderr
    );
    assert!(
        done_b.stderr.contains(&format!("pid={pid} ")),
        "{}",
        done_b.stderr
    );
    assert!(done_b.stderr.contains("locked"), "{}", done_b.stderr);
    assert!(done_b.stdout.is_empty(), "{}", done_b.stdout);
    assert!(
        std::fs::read_to_string(&lock)
            .unwrap()
            .starts_with(&format!("pid={pid} ")),
        "the refused instance left the lock file alone"
    );
    signal(&a, libc::SIGTERM);
    let done_a = finish(a).await;
    assert_eq!(done_a.code, Some(0), "stderr:\n{}", done_a.stderr);
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_with_every_file_complete() {
    let s = start(sim_config(41, 3_000, vec![])).await;
    let child = recorder(&s.config, &["--capture", "--depth", "5"])
        .spawn()
        .unwrap();
    wait_for_flushes(&s.out, 2).await;
    signal(&child, libc::SIGTERM);
    let done = finish(child).await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    assert!(done.stdout.contains("stopped by signal"), "{}", done.stdout);
    assert!(
        done.stderr.contains("recording finished; files closed"),
        "{}",
        done.stderr
    );

    let (lines, report) = read_lines(&s.out);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.totals().truncated_files, 0);
    let st = check_grid(&lines, &markets(&s.out), true);
    assert!(st.rows > 0);
    let captures = capture_files(&s.out);
    assert!(!captures.is_empty());
    for f in &captures {
        let mut r = CaptureReader::open(f).unwrap();
        let recs: Vec<_> = r.by_ref().collect::<Result<_, _>>().unwrap();
        assert!(!recs.is_empty());
        assert!(!r.stats().truncated, "{} is complete", f.display());
        assert!(recs.iter().all(|x| x.parse().is_ok()));
    }
    let side = read_markets(&markets_path(&s.out, &SeriesTicker::new(SERIES))).unwrap();
    assert_eq!(
        (side.skipped_partial_line, side.truncated_gzip),
        (None, false)
    );
    assert!(!side.records.is_empty());
    // The lock is released.
    OutDirLock::acquire(&s.out).expect("lock free after exit");

    // --summary reads the folder back.
    let sum = finish(recorder(&s.config, &["--summary"]).spawn().unwrap()).await;
    assert_eq!(sum.code, Some(0), "{}", sum.stderr);
    assert!(
        sum.stdout.contains("every snapshot file reads cleanly"),
        "{}",
        sum.stdout
    );
    assert!(
        sum.stdout.contains(&format!("{} rows", st.rows)),
        "{}",
        sum.stdout
    );
    for t in by_market(&lines).keys() {
        assert!(sum.stdout.contains(t.as_str()), "{}", sum.stdout);
    }
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_or_missing_credentials_exit_2() {
    let s = start(sim_config(43, 3_000, vec![])).await;
    // A well-formed key the exchange does not know.
    let (id, key) = key(1);
    let other = s.root.join("other-keys");
    let (env, pem) = kalshi_sim::keys::write_credentials(&other, &id, &key).unwrap();
    let cfg = s.root.join("other.json");
    write_config(&cfg, &s.sim.rest_base(), &env, &pem, &s.out);
    let done = finish(recorder(&cfg, &["--duration", "30"]).spawn().unwrap()).await;
    assert_eq!(done.code, Some(2), "stderr:\n{}", done.stderr);
    assert!(
        done.stderr.contains("rejected the credentials"),
        "{}",
        done.stderr
    );

    // A key file that is not there: named in the error.
    let missing = s.root.join("nope.pem");
    write_config(&cfg, &s.sim.rest_base(), &env, &missing, &s.out);
    let done = finish(recorder(&cfg, &["--duration", "30"]).spawn().unwrap()).await;
    assert_eq!(done.code, Some(2), "stderr:\n{}", done.stderr);
    assert!(done.stderr.contains("nope.pem"), "{}", done.stderr);

    // Bad flags are configuration errors too.
    let done = finish(
        recorder(&s.config, &["--flush-seconds", "0"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(done.code, Some(2), "{}", done.stderr);
    assert!(done.stderr.contains("--flush-seconds"), "{}", done.stderr);
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_gone_longer_than_max_reconnect_exits_4_with_files_closed() {
    let s = start(sim_config(47, 3_000, vec![])).await;
    let child = recorder(
        &s.config,
        &["--max-reconnect-seconds", "2", "--flush-seconds", "1"],
    )
    .spawn()
    .unwrap();
    wait_for_flushes(&s.out, 2).await;
    let Setup { sim, out, .. } = s;
    sim.shutdown().await;
    let done = finish(child).await;
    assert_eq!(done.code, Some(4), "stderr:\n{}", done.stderr);
    assert!(done.stderr.contains("connection lost"), "{}", done.stderr);
    let (lines, report) = read_lines(&out);
    assert!(report.is_clean(), "{report}");
    let st = check_grid(&lines, &markets(&out), true);
    // The outage was marked: the market whose row was the last one written ends with a gap
    // (the exchange vanished under it), and nothing follows that gap.
    let last_row = lines
        .iter()
        .rposition(|l| matches!(l, Line::Snapshot(_)))
        .unwrap();
    let t = lines[last_row].market_ticker().clone();
    let after: Vec<&Line> = lines[last_row + 1..]
        .iter()
        .filter(|l| l.market_ticker() == &t)
        .collect();
    match after.as_slice() {
        [Line::Marker(m)] if m.event == MarkerKind::Gap => {
            eprintln!("outage marked: {m:?}");
        }
        [Line::Marker(m), Line::Marker(c)]
            if m.event == MarkerKind::Gap && c.event == MarkerKind::Closed => {}
        // The exchange vanished within the market's last grid step: it closed at the next
        // instant, so none of its instants went unrecorded, and the outage is marked on the
        // market that opened then.
        [Line::Marker(c)]
            if c.event == MarkerKind::Closed && c.ts_ms == lines[last_row].ts_ms() + STEP =>
        {
            assert!(
                lines.iter().any(|l| matches!(l, Line::Marker(g)
                    if g.event == MarkerKind::Gap && g.ts_ms >= c.ts_ms && g.market_ticker != t)),
                "{t} closed after its last row; no later gap marks the outage"
            );
        }
        other => panic!("{t}: after its last row: {other:?}"),
    }
    assert!(st.rows > 0);
}
