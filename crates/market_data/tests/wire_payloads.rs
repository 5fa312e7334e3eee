//! Wire types against payloads: the crate's own hand-written fixtures (always) and the real
//! Kalshi REST payloads in shared/ (skipped with a message when absent). Every object parses,
//! and every field we emit again equals the original (decimal strings compared as exact
//! decimals, times as instants) — nothing we use is lost or altered.

mod common;

use std::collections::BTreeMap;

use market_data::book::OrderBook;
use market_data::wire::*;
use pipeline::money::{parse_decimal, Count, Money, Price};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(common::fixtures_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn same_scalar_text(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if let (Ok(x), Ok(y)) = (parse_decimal(a, 6), parse_decimal(b, 6)) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        return x == y;
    }
    false
}

/// Every value in `ours` equals the one at the same path in `orig`.
fn check_subset(orig: &Value, ours: &Value, path: &str) -> Result<(), String> {
    match (orig, ours) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let o = a
                    .get(k)
                    .ok_or_else(|| format!("{path}.{k}: emitted but not in the original"))?;
                check_subset(o, v, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Err(format!("{path}: length {} vs {}", a.len(), b.len()));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                check_subset(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::String(a), Value::String(b)) if same_scalar_text(a, b) => Ok(()),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        // A numeric string (a strike sent as text) is emitted as the same number.
        (Value::String(a), Value::Number(b)) if same_scalar_text(a, &b.to_string()) => Ok(()),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: original {a} but emitted {b}")),
    }
}

/// Fields the pipeline reads from a market: each present (non-null) in the original must be
/// emitted again.
const MARKET_FIELDS_USED: &[&str] = &[
    "ticker",
    "event_ticker",
    "status",
    "open_time",
    "close_time",
    "expected_expiration_time",
    "latest_expiration_time",
    "settlement_timer_seconds",
    "strike_type",
    "floor_strike",
    "cap_strike",
    "result",
    "expiration_value",
    "settlement_value_dollars",
    "yes_bid_dollars",
    "yes_ask_dollars",
    "no_bid_dollars",
    "no_ask_dollars",
    "yes_bid_size_fp",
    "yes_ask_size_fp",
    "last_price_dollars",
    "volume_fp",
    "volume_24h_fp",
    "open_interest_fp",
    "price_level_structure",
    "price_ranges",
    "title",
    "yes_sub_title",
    "rules_primary",
    // legacy
    "yes_bid",
    "yes_ask",
    "no_bid",
    "no_ask",
    "last_price",
    "volume",
    "settlement_value",
];

fn round_trip_market(orig: &Value) -> Market {
    let m: Market =
        serde_json::from_value(orig.clone()).unwrap_or_else(|e| panic!("{}: {e}", orig["ticker"]));
    let ours = serde_json::to_value(&m).unwrap();
    check_subset(orig, &ours, m.ticker.as_str()).unwrap();
    for f in MARKET_FIELDS_USED {
        if orig.get(*f).is_some_and(|v| !v.is_null()) {
            assert!(ours.get(*f).is_some(), "{}: field {f} lost", m.ticker);
        }
    }
    // Accessors agree with the fixed-point strings.
    let dollars = |k: &str| {
        orig.get(k)
            .and_then(Value::as_str)
            .map(|s| Price::parse_dollars(s).unwrap())
    };
    let fp = |k: &str| {
        orig.get(k)
            .and_then(Value::as_str)
            .map(|s| Count::parse(s).unwrap())
    };
    if orig.get("yes_bid_dollars").is_some() {
        assert_eq!(m.yes_bid(), dollars("yes_bid_dollars"));
        assert_eq!(m.yes_ask(), dollars("yes_ask_dollars"));
        assert_eq!(m.no_bid(), dollars("no_bid_dollars"));
        assert_eq!(m.last_price(), dollars("last_price_dollars"));
        assert_eq!(m.volume(), fp("volume_fp"));
        assert_eq!(m.open_interest(), fp("open_interest_fp"));
    }
    m
}

#[test]
fn fixture_markets_current_and_legacy() {
    let cur = round_trip_market(&fixture("market_current.json")["market"]);
    assert_eq!(cur.status, Some(MarketStatus::Active));
    assert_eq!(cur.yes_ask_size_fp, Some(Count::parse("35.50").unwrap()));
    assert_eq!(cur.floor_strike.as_ref().unwrap().to_string(), "63485.16");
    assert!(cur.cap_strike.is_none());
    assert_eq!(cur.result, Some(MarketResult::Empty));
    assert_eq!(cur.outcome(), None);
    assert_eq!(
        cur.price_level_structure,
        Some(PriceLevelStructure::TaperedDeciCent)
    );
    assert!(cur.price_on_grid(Price::parse_dollars("0.955").unwrap()));
    assert!(!cur.price_on_grid(Price::parse_dollars("0.505").unwrap()));
    assert_eq!(
        cur.notional_value_dollars,
        Some(Money::parse_dollars("1").unwrap())
    );

    let leg = round_trip_market(&fixture("market_legacy.json")["market"]);
    assert_eq!(leg.yes_bid(), Some(Price::from_cents(43).unwrap()));
    assert_eq!(leg.no_ask(), Some(Price::from_cents(57).unwrap()));
    assert_eq!(leg.volume(), Some(Count::from_contracts(1520)));
    assert_eq!(leg.settlement_value(), Some(Price::ONE));
    assert_eq!(leg.outcome(), Some(true));
    assert_eq!(leg.status, Some(MarketStatus::Settled));
    assert!(leg.status.as_ref().unwrap().is_determined());
    assert_eq!(leg.floor_strike.as_ref().unwrap().to_f64(), 86912.5);

    let page: MarketsPage = serde_json::from_value(fixture("markets_page.json")).unwrap();
    assert_eq!(page.markets.len(), 2);
    assert_eq!(page.markets[0].yes_ask(), Some(Price::ONE));
    assert_eq!(page.markets[1].settlement_value(), Some(Price::ZERO));
    assert_eq!(page.markets[1].outcome(), Some(false));
    assert!(page.cursor.as_deref().is_some_and(|c| !c.is_empty()));
}

#[test]
fn fixture_orderbooks() {
    let fp: OrderbookResponse = serde_json::from_value(fixture("orderbook_fp.json")).unwrap();
    let leg: OrderbookResponse = serde_json::from_value(fixture("orderbook_legacy.json")).unwrap();
    let a = fp.levels();
    let b = leg.levels();
    assert_eq!(
        a.yes, b.yes,
        "current and legacy shapes give the same YES bids"
    );
    assert_eq!(a.no[1].size, Count::parse("17.50").unwrap());
    assert_eq!(b.no[1].size, Count::from_contracts(17));
    let book = OrderBook::from_levels("T".into(), &a.yes, &a.no).unwrap();
    assert_eq!(
        book.best_yes_bid().unwrap().price,
        Price::from_cents(42).unwrap()
    );
    assert_eq!(
        book.best_yes_ask().unwrap().price,
        Price::from_cents(44).unwrap()
    );
    check_subset(
        &fixture("orderbook_fp.json"),
        &serde_json::to_value(&fp).unwrap(),
        "ob",
    )
    .unwrap();
    let batch: OrderbooksResponse =
        serde_json::from_value(fixture("orderbooks_batch.json")).unwrap();
    assert_eq!(batch.orderbooks.len(), 2);
    assert!(
        batch.orderbooks[0].book.levels().no.is_empty(),
        "null side = empty"
    );
    assert_eq!(batch.orderbooks[1].book.levels().no.len(), 1);
}

#[test]
fn fixture_series_events_exchange_trades() {
    let s: SeriesResponse = serde_json::from_value(fixture("series.json")).unwrap();
    assert_eq!(s.series.fee_type.as_deref(), Some("quadratic"));
    assert_eq!(
        s.series.fee_multiplier().unwrap().unwrap(),
        pipeline::money::FeeMultiplier::ONE
    );
    let e: EventResponse = serde_json::from_value(fixture("event_nested.json")).unwrap();
    assert_eq!(e.all_markets().len(), 1);
    assert_eq!(e.event.series_ticker.as_ref().unwrap().as_str(), "KXBTC15M");
    let x: ExchangeStatus = serde_json::from_value(fixture("exchange_status.json")).unwrap();
    assert!(x.exchange_active && !x.trading_active);
    let t: TradesPage = serde_json::from_value(fixture("trades.json")).unwrap();
    assert_eq!(t.trades[0].count(), Some(Count::from_contracts(136)));
    assert_eq!(t.trades[1].count(), Some(Count::from_contracts(5)));
    assert_eq!(
        t.trades[1].yes_price(),
        Some(Price::from_cents(35).unwrap())
    );
    assert_eq!(t.trades[1].no_price(), Some(Price::from_cents(65).unwrap()));
    assert_eq!(t.cursor.as_deref(), Some(""));
}

#[test]
fn fixture_portfolio() {
    let b: Balance = serde_json::from_value(fixture("balance.json")).unwrap();
    assert_eq!(
        b.available(),
        Some(Money::parse_dollars("123.4567").unwrap())
    );
    let p: PositionsPage = serde_json::from_value(fixture("positions.json")).unwrap();
    assert_eq!(
        p.market_positions[0].position(),
        Count::parse("-12.50").unwrap()
    );
    assert_eq!(
        p.market_positions[0].realized_pnl(),
        Some(Money::from_micros(-250_000))
    );
    assert_eq!(p.market_positions[1].position(), Count::from_contracts(3));
    assert_eq!(
        p.market_positions[1].exposure(),
        Some(Money::from_cents(150))
    );
    assert_eq!(p.cursor, None);
    let o: OrdersPage = serde_json::from_value(fixture("orders.json")).unwrap();
    assert_eq!(o.orders[0].status, Some(OrderStatus::Resting));
    assert_eq!(o.orders[0].book_side(), Some(BookSide::Bid));
    assert_eq!(
        o.orders[0].remaining_count(),
        Some(Count::from_contracts(10))
    );
    assert_eq!(
        o.orders[1].book_side(),
        Some(BookSide::Ask),
        "legacy buy NO = ask"
    );
    assert_eq!(
        o.orders[1].yes_price(),
        Some(Price::from_cents(70).unwrap())
    );
    assert_eq!(o.orders[1].fill_count(), Some(Count::from_contracts(4)));
    let f: FillsPage = serde_json::from_value(fixture("fills.json")).unwrap();
    assert_eq!(f.fills[0].id(), Some("f-1"));
    assert_eq!(f.fills[0].fee_cost, Some(Money::from_cents(2)));
    let s: SettlementsPage = serde_json::from_value(fixture("settlements.json")).unwrap();
    assert_eq!(s.settlements[0].market_result, Some(MarketResult::Yes));
    assert_eq!(s.settlements[0].revenue(), Some(Money::from_cents(250)));
    let c: CreateOrderResponse =
        serde_json::from_value(fixture("create_order_response.json")).unwrap();
    assert_eq!(c.fill_count, Some(Count::from_contracts(2)));
    check_subset(
        &fixture("create_order_response.json"),
        &serde_json::to_value(&c).unwrap(),
        "create",
    )
    .unwrap();
}

#[test]
fn fixture_errors() {
    let v = fixture("errors.json");
    let mut codes = BTreeMap::new();
    for item in v.as_array().unwrap() {
        let env = ErrorEnvelope::parse(&item["body"].to_string()).unwrap();
        codes.insert(item["status"].as_u64().unwrap(), env.body());
    }
    assert!(codes[&401]
        .details
        .as_deref()
        .unwrap()
        .contains("INCORRECT_API_KEY_SIGNATURE"));
    assert_eq!(codes[&429].message.as_deref(), Some("too many requests"));
    assert_eq!(codes[&409].service.as_deref(), Some("exchange"));
    assert_eq!(codes[&400].details.as_deref(), Some("post only cross"));
}

#[test]
fn fixture_ws_frames() {
    let text = std::fs::read_to_string(common::fixtures_dir().join("ws_frames.jsonl")).unwrap();
    let frames: Vec<WsFrame> = text
        .lines()
        .map(|l| WsFrame::parse(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = frames.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds.len(), 17);
    assert_eq!(frames[1].sid, Some(2), "flat subscribed");
    assert_eq!(frames[0].sid, Some(1), "nested subscribed");
    let WsMessage::Ticker(t) = &frames[4].msg else {
        panic!()
    };
    assert_eq!(t.yes_bid(), Some(Price::from_cents(43).unwrap()));
    assert_eq!(t.no_bid(), Some(Price::from_cents(56).unwrap()));
    assert_eq!(t.volume(), Some(Count::from_contracts(33896)));
    let WsMessage::OrderbookDelta(d) = &frames[5].msg else {
        panic!()
    };
    assert_eq!(d.delta(), Some(Count::from_contracts(-46)));
    let WsMessage::Fill(f) = &frames[7].msg else {
        panic!()
    };
    assert_eq!(f.fee_cost, Some(Money::from_cents(2)));
    let WsMessage::UserOrder(u) = &frames[8].msg else {
        panic!()
    };
    assert_eq!(u.status, Some(OrderStatus::Executed));
    let WsMessage::MarketLifecycle(l) = &frames[10].msg else {
        panic!()
    };
    assert_eq!(l.event_type, LifecycleEvent::Created);
    assert!(matches!(&frames[16].msg, WsMessage::Other(Some(_))));
    // The book frames replay cleanly: snapshot, yes +12.50 at 0.43, legacy no −46 at 0.56.
    let mut sync = market_data::sync::BookSync::new();
    let mut ev = Vec::new();
    for f in &frames {
        sync.apply(f, &mut ev);
    }
    let b = sync.book("A").unwrap();
    assert!(b.is_valid());
    assert_eq!(
        b.best_yes_bid().unwrap(),
        Level::new(
            Price::from_cents(43).unwrap(),
            Count::parse("12.50").unwrap()
        )
    );
    assert_eq!(
        b.best_no_bid().unwrap(),
        Level::new(Price::from_cents(56).unwrap(), Count::from_contracts(100))
    );
    assert_eq!(sync.counters().gaps, 0);
}

/// Real REST `/markets` objects (July 2026, KXBTC/KXETH hourly markets).
#[test]
fn real_rest_markets_round_trip() {
    let Some(shared) = common::shared_dir() else {
        eprintln!("SKIP real_rest_markets_round_trip: shared/ not found");
        return;
    };
    let dir = shared.join("data/kalshi_rest");
    let mut n = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".raw.json") {
            continue;
        }
        files += 1;
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (ticker, obj) in v.as_object().unwrap() {
            let m = round_trip_market(obj);
            assert_eq!(m.ticker.as_str(), ticker);
            assert!(m.status.is_some() && m.close_time.is_some() && !m.price_ranges.is_empty());
            assert!(
                !matches!(m.status, Some(MarketStatus::Other(_))),
                "{ticker}: unknown status"
            );
            // A real market's quotes are on its own grid (or the empty-side 0/1).
            for p in [m.yes_bid(), m.yes_ask()].into_iter().flatten() {
                assert!(
                    p == Price::ZERO || p == Price::ONE || m.price_on_grid(p),
                    "{ticker}: {p}"
                );
            }
            n += 1;
        }
    }
    println!("{n} real market objects from {files} files parsed and round-tripped");
    assert_eq!(files, 4);
    assert!(n > 500);
}

/// Real REST order books (as a recorder stored them, floats best-first): the book's derived
/// YES ask = 1 − best NO bid matches the recorder's own `best_yes_ask` on every row.
#[test]
fn real_rest_orderbooks_complement_rule() {
    let Some(shared) = common::shared_dir() else {
        eprintln!("SKIP real_rest_orderbooks_complement_rule: shared/ not found");
        return;
    };
    use std::io::BufRead;
    let f = std::fs::File::open(
        shared.join("data/kalshi_rest/orderbook_depth_full_2026-07-23_24.jsonl.gz"),
    )
    .unwrap();
    let r = std::io::BufReader::new(flate2::read::GzDecoder::new(f));
    let lv = |v: &Value| -> Vec<Level> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                Level::new(
                    Price::from_cents_f64(l[0].as_f64().unwrap() * 100.0).unwrap(),
                    Count::from_f64(l[1].as_f64().unwrap()).unwrap(),
                )
            })
            .collect()
    };
    let (mut rows, mut asks, mut bids) = (0, 0, 0);
    for line in r.lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let book = OrderBook::from_levels(
            v["ticker"].as_str().unwrap().into(),
            &lv(&v["yes_bids"]),
            &lv(&v["no_bids"]),
        )
        .unwrap();
        rows += 1;
        if let Some(a) = v["best_yes_ask"].as_f64() {
            assert_eq!(
                book.best_yes_ask().unwrap().price,
                Price::from_cents_f64(a * 100.0).unwrap(),
                "{v}"
            );
            asks += 1;
        }
        if let Some(b) = v["best_yes_bid"].as_f64() {
            assert_eq!(
                book.best_yes_bid().unwrap().price,
                Price::from_cents_f64(b * 100.0).unwrap()
            );
            assert_eq!(
                book.yes_bids(1)[0].price,
                book.best_yes_bid().unwrap().price
            );
            bids += 1;
        }
        if let Some(a) = v["best_no_ask"].as_f64() {
            assert_eq!(
                book.best_no_ask().unwrap().price,
                Price::from_cents_f64(a * 100.0).unwrap()
            );
        }
    }
    println!("{rows} real REST books: {asks} YES asks and {bids} YES bids match");
    assert!(rows > 6000 && asks > 4000 && bids > 4000);
}
