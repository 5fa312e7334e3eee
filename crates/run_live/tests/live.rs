//! `--live` against `kalshi_sim serve`: real V2 orders, checked against the exchange's own
//! orders and positions, under lost responses, 429 bursts, dropped connections, a `kill -9`
//! with restart, and the kill switch.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use kalshi_sim::{Fault, LoseMode, ScheduledFault};
use pipeline::money::Count;
use serde_json::Value;

fn buy_every_row(s: &Setup) {
    plugin_strategy(
        &s.root.join("strategy.json"),
        "builtin",
        "buy_every_row",
        serde_json::json!({"side": "yes", "count": 1}),
        tight_risk(),
    );
}

/// Every submit in the journal is exactly one order at the exchange, and the reverse.
fn one_exchange_order_per_submit(s: &Setup, j: &[Value]) -> usize {
    let submitted: Vec<String> = of_type(j, "submit")
        .iter()
        .map(|v| v["client_order_id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = submitted.iter().collect();
    assert_eq!(
        unique.len(),
        submitted.len(),
        "a client_order_id was reused"
    );
    let u = user(&s.sim);
    let at_exchange: Vec<String> = s.sim.handle().with_engine(|e| {
        e.orders_of(u)
            .map(|o| {
                o.client_order_id
                    .as_ref()
                    .expect("ours have ids")
                    .to_string()
            })
            .collect()
    });
    let ex: BTreeSet<&String> = at_exchange.iter().collect();
    assert_eq!(
        ex.len(),
        at_exchange.len(),
        "duplicate orders at the exchange: {at_exchange:?}"
    );
    assert!(
        ex.is_subset(&unique),
        "orders at the exchange the journal never submitted"
    );
    // A submit with no exchange order is one a kill -9 cut off before it left: the next
    // session's reconciliation looked it up and found it absent.
    let absent: BTreeSet<&str> = of_type(j, "order_result")
        .into_iter()
        .filter(|r| r["status"] == "reconciled: absent")
        .filter_map(|r| r["client_order_id"].as_str())
        .collect();
    for c in unique.difference(&ex) {
        assert!(
            absent.contains(c.as_str()),
            "{c} submitted, not at the exchange, not reconciled"
        );
    }
    submitted.len()
}

/// The runner's open positions (YES − NO per market) equal the exchange's unsettled ones, but
/// for markets whose result the runner already applied and the exchange has not paid yet.
fn positions_match(s: &Setup, stop: &Value, j: &[Value]) {
    let mut ours: BTreeMap<String, Count> = BTreeMap::new();
    for p in stop["positions"].as_array().unwrap() {
        ours.insert(
            p["market"].as_str().unwrap().into(),
            count(&p["yes"]) - count(&p["no"]),
        );
    }
    let u = user(&s.sim);
    let theirs: BTreeMap<String, Count> = s.sim.handle().with_engine(|e| {
        e.positions_of(u)
            .into_iter()
            .filter(|(_, p)| !p.settled && !p.position.is_zero())
            .map(|(m, p)| (m.ticker.to_string(), p.position))
            .collect()
    });
    let resolved: BTreeSet<String> = of_type(j, "result")
        .iter()
        .map(|r| r["market"].as_str().unwrap().to_string())
        .collect();
    let markets: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for m in markets {
        let (a, b) = (
            ours.get(m).copied().unwrap_or(Count::ZERO),
            theirs.get(m).copied().unwrap_or(Count::ZERO),
        );
        assert!(
            a == b || resolved.contains(m),
            "{m}: runner {a}, exchange {b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_orders_stay_inside_every_limit_and_a_lost_response_is_one_order() {
    let s = start(sim_config(31, 4_000, vec![])).await;
    buy_every_row(&s);
    // The first two creates lose their answer (one dropped connection, one empty 500): the
    // orders exist; the runner must find them, not send them again.
    s.sim.handle().inject(Fault::LoseOrderResponse {
        count: 1,
        mode: LoseMode::CloseConnection,
    });
    let done = run_to_end(&s.config, &["--live", "--duration", "14"]).await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    let j = journal(&s.live_dir);
    assert_eq!(of_type(&j, "start")[0]["mode"], "live");
    let n = one_exchange_order_per_submit(&s, &j);
    assert!(n >= 4, "only {n} orders");
    let found: Vec<&Value> = of_type(&j, "order_result")
        .into_iter()
        .filter(|r| r["status"] == "found by client_order_id")
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the lost response was resolved by lookup: {:?}",
        of_type(&j, "order_result")
    );
    // The limits, from the exchange's side: ≤ 3 contracts per market, ≤ 20 orders a minute
    // (the whole run is shorter than a minute), ≤ 2 markets open at once.
    let u = user(&s.sim);
    let (per_market, orders): (BTreeMap<String, Count>, usize) = s.sim.handle().with_engine(|e| {
        let mut m: BTreeMap<String, Count> = BTreeMap::new();
        let mut n = 0;
        for o in e.orders_of(u) {
            *m.entry(o.ticker.to_string()).or_insert(Count::ZERO) += o.filled;
            n += 1;
        }
        (m, n)
    });
    assert!(
        per_market.values().all(|&c| c <= Count::from_contracts(3)),
        "{per_market:?}"
    );
    assert!(orders <= 20, "{orders} orders in under a minute");
    let stop = of_type(&j, "stop")[0];
    positions_match(&s, stop, &j);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_resume_without_a_duplicate_and_with_the_exchanges_positions() {
    let s = start(sim_config(32, 6_000, vec![])).await;
    buy_every_row(&s);
    let child = runner(&s.config, &["--live"]).spawn().unwrap();
    let live = s.live_dir.clone();
    wait_for("three orders submitted", || {
        of_type(&journal(&live), "submit").len() >= 3
    })
    .await;
    signal(&child, libc::SIGKILL);
    let first = finish(child).await;
    assert_eq!(first.code, None, "killed by a signal");
    let before = journal(&s.live_dir);
    let max_first = of_type(&before, "submit")
        .iter()
        .map(|v| v["order_id"].as_u64().unwrap())
        .max()
        .unwrap();
    let done = run_to_end(&s.config, &["--live", "--duration", "8"]).await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    let j = journal(&s.live_dir);
    let starts = of_type(&j, "start");
    assert_eq!(starts.len(), 2);
    assert!(
        starts[1]["first_order_id"].as_u64().unwrap() > max_first,
        "{}",
        starts[1]
    );
    let rec = of_type(&j, "reconciled");
    assert_eq!(rec.len(), 2, "each session reconciles at start");
    assert!(
        !rec[1]["positions"].as_array().unwrap().is_empty(),
        "the restart found no position: {}",
        rec[1]
    );
    eprintln!("restart reconciled: {}", rec[1]);
    one_exchange_order_per_submit(&s, &j);
    positions_match(&s, of_type(&j, "stop")[0], &j);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_file_stops_orders_within_one_row() {
    let s = start(sim_config(33, 5_000, vec![])).await;
    buy_every_row(&s);
    let child = runner(&s.config, &["--live", "--duration", "12"])
        .spawn()
        .unwrap();
    let live = s.live_dir.clone();
    wait_for("an order", || !of_type(&journal(&live), "order").is_empty()).await;
    std::fs::write(s.live_dir.join("KILL"), "stop").unwrap();
    let done = finish(child).await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    let j = journal(&s.live_dir);
    let halt = j
        .iter()
        .position(|v| v["type"] == "state" && v["to"] == "halted")
        .expect("halted");
    assert!(
        j[halt]["why"].as_str().unwrap().contains("kill switch"),
        "{}",
        j[halt]
    );
    let after: Vec<&Value> = j[halt..]
        .iter()
        .filter(|v| v["type"] == "order" || v["type"] == "submit")
        .collect();
    assert!(after.is_empty(), "orders after the kill switch: {after:?}");
    // Rows went on being read (and refused) after the halt.
    assert!(j[halt..]
        .iter()
        .any(|v| v["type"] == "refused" && v["by"] == "halted"));
    one_exchange_order_per_submit(&s, &j);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_bursts_and_dropped_connections_cause_no_crash_and_no_order_on_a_stale_book() {
    let faults = vec![
        ScheduledFault {
            every_ms: 3_000,
            fault: Fault::HttpStatus {
                status: 429,
                count: 3,
            },
        },
        ScheduledFault {
            every_ms: 5_000,
            fault: Fault::DropWsConnections,
        },
        ScheduledFault {
            every_ms: 4_000,
            fault: Fault::SkipSeq { count: 1 },
        },
    ];
    let s = start(sim_config(34, 4_000, faults)).await;
    buy_every_row(&s);
    let done = run_to_end(&s.config, &["--live", "--duration", "15"]).await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    let j = journal(&s.live_dir);
    // Per market, rows between a gap and its resync are untrusted: no order decided there.
    let mut trusted: BTreeMap<String, bool> = BTreeMap::new();
    let mut gaps = 0;
    let mut rows_ok: BTreeSet<(String, i64)> = BTreeSet::new();
    for v in &j {
        let m = v["market"].as_str().unwrap_or("").to_string();
        match v["type"].as_str() {
            Some("marker") => {
                let ev = v["event"].as_str().unwrap();
                if ev == "gap" || ev == "closed" {
                    gaps += u64::from(ev == "gap");
                    trusted.insert(m, false);
                } else if ev == "resync" {
                    trusted.insert(m, true);
                }
            }
            Some("row") if *trusted.get(&m).unwrap_or(&true) => {
                rows_ok.insert((m, v["ts_ms"].as_i64().unwrap()));
            }
            _ => {}
        }
    }
    assert!(gaps >= 2, "the faults caused only {gaps} gap(s)");
    for o in of_type(&j, "order") {
        let key = (
            o["market"].as_str().unwrap().to_string(),
            o["decision_ts_ms"].as_i64().unwrap(),
        );
        assert!(
            rows_ok.contains(&key),
            "order decided off a trusted row: {o}"
        );
    }
    one_exchange_order_per_submit(&s, &j);
    eprintln!(
        "faults: {} gaps, {} orders",
        gaps,
        of_type(&j, "order").len()
    );
}

pub fn signal(child: &tokio::process::Child, sig: i32) {
    let pid = child.id().expect("running") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_cancels_this_runners_resting_orders_and_leaves_a_persons() {
    use kalshi_sim::engine::{MarketStatus, OrderRequest, OrderStatus, Side as BookSide};
    use pipeline::ids::ClientOrderId;
    use pipeline::money::Price;
    // 30-second markets: the one the orders rest in stays open through the run.
    let s = start(sim_config(35, 30_000, vec![])).await;
    buy_every_row(&s);
    let u = user(&s.sim);
    // Rest them in a market with at least 15 s left (it must not close during the run).
    loop {
        let left = s.sim.handle().with_engine(|e| {
            let now = e.now_ms();
            e.markets()
                .filter(|m| m.status == MarketStatus::Active)
                .map(|m| m.close_ms - now)
                .max()
                .unwrap_or(0)
        });
        if left >= 15_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis((left.max(0) + 300) as u64)).await;
    }
    // A resting bid an earlier session left (our prefix) and one placed by hand.
    let ids: Vec<String> = s.sim.handle().with_engine(|e| {
        let now = e.now_ms();
        let t = e
            .markets()
            .find(|m| m.status == MarketStatus::Active && m.close_ms - now >= 15_000)
            .map(|m| m.ticker.clone())
            .expect("an active market");
        ["rl-20260101000000abcd-7", "by-hand-1"]
            .iter()
            .map(|c| {
                let mut r = OrderRequest::limit(
                    &t,
                    BookSide::Bid,
                    Price::from_cents(1).unwrap(),
                    Count::from_contracts(1),
                );
                r.client_order_id = Some(ClientOrderId::new(c.to_string()));
                e.place_order(u, r).expect("placed").id.to_string()
            })
            .collect()
    });
    let done = run_to_end(&s.config, &["--live", "--duration", "4"]).await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    let status: Vec<OrderStatus> = s.sim.handle().with_engine(|e| {
        ids.iter()
            .map(|i| e.order(i).expect("order").status)
            .collect()
    });
    assert_eq!(status, [OrderStatus::Canceled, OrderStatus::Resting]);
    let j = journal(&s.live_dir);
    assert_eq!(of_type(&j, "reconciled")[0]["resting_cancelled"], 1);
}
