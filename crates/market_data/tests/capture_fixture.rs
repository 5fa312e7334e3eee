//! BookSync and TickerCheck on the crate's own small capture (runs without shared/): a market
//! rotation (empty final snapshot on sid 1, new sid 3 with its own snapshot) is not a gap,
//! and tickers that arrive after later-stamped deltas agree with the book as of their ts_ms
//! but not with the book at arrival.

mod common;

use market_data::capture::CaptureReader;
use market_data::sync::{BookEvent, BookSync, TickerCheck, TickerVerdict};
use market_data::wire::WsMessage;

#[test]
fn rotation_capture_replays_and_tickers_match_as_of_ts() {
    let path = common::fixtures_dir().join("capture_rotation.jsonl");
    let mut sync = BookSync::new();
    let mut check = TickerCheck::new(5_000);
    let (mut naive, mut asof, mut n) = (0, 0, 0);
    let mut events = Vec::new();
    for rec in CaptureReader::open(&path).unwrap() {
        let frame = rec.unwrap().parse().unwrap();
        if let WsMessage::Ticker(t) = &frame.msg {
            n += 1;
            let at_arrival = sync
                .book(t.market_ticker.as_str())
                .unwrap()
                .top()
                .ticker_quotes();
            naive += usize::from(Some(at_arrival) == t.yes_bid().zip(t.yes_ask()));
            asof += usize::from(check.check(t) == TickerVerdict::Agree);
        }
        events.clear();
        sync.apply(&frame, &mut events);
        for e in &events {
            assert!(
                !matches!(
                    e,
                    BookEvent::ResyncNeeded(_) | BookEvent::BookInvalid { .. }
                ),
                "{e:?}"
            );
            if let BookEvent::BookChanged { ticker, ts_ms, .. } = e {
                check.record(ticker, *ts_ms, sync.book(ticker.as_str()).unwrap().top());
            }
        }
    }
    assert_eq!(n, 5);
    assert_eq!(naive, 3, "two tickers arrive after the book moved on");
    assert_eq!(asof, 5);
    let c = sync.counters();
    assert_eq!(
        (c.gaps, c.negative_levels, c.snapshots, c.applied),
        (0, 0, 3, 7)
    );
    assert_eq!(sync.book("M-00").unwrap().depth(), (0, 0));
    let b = sync.book("M-15").unwrap();
    assert_eq!(b.best_yes_bid().unwrap().size.to_fp_string(), "4.00");
    assert_eq!(b.best_yes_ask().unwrap().price.to_dollars(), "0.5300");
}
