//! Replays capture files through `BookSync` and prints what happened:
//!
//!     cargo run -p market_data --example replay_capture -- FILE.capture.jsonl.gz [...]
//!
//! Exit code 0 when every book stayed consistent, 2 on an error or a gap/negative level.

use std::path::PathBuf;
use std::process::ExitCode;

use market_data::sync::{BookEvent, BookSync, TickerCheck, TickerVerdict};
use market_data::wire::WsMessage;
use market_data::CaptureReader;

fn main() -> ExitCode {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("usage: replay_capture FILE.capture.jsonl.gz [...]");
        return ExitCode::from(2);
    }
    let mut bad = false;
    for path in &files {
        let reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let mut sync = BookSync::new();
        let mut check = TickerCheck::new(10_000);
        let (mut frames, mut tickers, mut agree) = (0u64, 0u64, 0u64);
        let mut events = Vec::new();
        for rec in reader {
            let frame = match rec.map_err(|e| e.to_string()).and_then(|r| {
                r.parse()
                    .map_err(|e| format!("{}:{}: {e}", path.display(), r.line))
            }) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    bad = true;
                    continue;
                }
            };
            frames += 1;
            if let WsMessage::Ticker(t) = &frame.msg {
                tickers += 1;
                agree += u64::from(check.check(t) == TickerVerdict::Agree);
            }
            events.clear();
            sync.apply(&frame, &mut events);
            for e in &events {
                if let BookEvent::BookChanged { ticker, ts_ms, .. } = e {
                    if let Some(b) = sync.book(ticker.as_str()) {
                        check.record(ticker, *ts_ms, b.top());
                    }
                }
            }
        }
        let c = sync.counters();
        println!(
            "{}: {frames} frames, {} snapshots, {} deltas applied, {} gaps, {} duplicates, {} negative levels; tickers agreeing as of ts_ms: {agree}/{tickers}",
            path.display(),
            c.snapshots,
            c.applied,
            c.gaps,
            c.duplicates,
            c.negative_levels
        );
        bad |= c.gaps > 0 || c.negative_levels > 0 || c.deltas_before_snapshot > 0;
    }
    if bad {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
