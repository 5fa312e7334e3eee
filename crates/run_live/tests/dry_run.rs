//! Dry-run against a live `kalshi_sim serve`: several market lifecycles, a strategy that wants
//! to buy on every row, and the journal's P&L recomputed independently from its fills and the
//! exchange's results, to the cent.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use pipeline::money::{trading_fee, Count, FeeMultiplier, Liquidity, Money, Price};

async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let _ = s
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_pnl_equals_an_independent_recomputation_over_several_lifecycles() {
    // 4-second markets: four or five open, trade, close and settle in 18 seconds.
    let s = start(sim_config(21, 4_000, vec![])).await;
    let strategy = s.root.join("strategy.json");
    plugin_strategy(
        &strategy,
        "builtin",
        "buy_every_row",
        serde_json::json!({"side": "yes", "count": 1}),
        tight_risk(),
    );
    let child = runner(
        &s.config,
        &["--duration", "18", "--metrics-addr", "127.0.0.1:0"],
    )
    .spawn()
    .unwrap();
    // A supervisor's view: Prometheus text on the loopback port the runner wrote down.
    let addr_file = s.live_dir.join(run_live::METRICS_ADDR_FILE);
    let mut metrics = String::new();
    for _ in 0..150 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            metrics = scrape(a.trim()).await;
            if metrics.contains("run_live_rows_total")
                && !metrics.contains("run_live_rows_total 0\n")
            {
                break;
            }
        }
    }
    assert!(
        metrics.contains("# TYPE run_live_realised_pnl_dollars gauge"),
        "{metrics}"
    );
    assert!(metrics.contains("run_live_state 0"), "{metrics}");
    let done = finish(child).await;
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    assert!(done.stdout.contains("realised P&L"), "{}", done.stdout);
    // The status line, every second here.
    assert!(
        done.stderr.matches("| open markets").count() >= 10,
        "{}",
        done.stderr
    );
    let j = journal(&s.live_dir);
    assert_eq!(of_type(&j, "start")[0]["mode"], "dry_run");

    // Fills: each at or under its order's limit, on a later row than its decision, with
    // Kalshi's taker fee rounded up to the cent.
    let orders: BTreeMap<u64, &serde_json::Value> = of_type(&j, "order")
        .into_iter()
        .map(|o| (o["order_id"].as_u64().unwrap(), o))
        .collect();
    let fills = of_type(&j, "fill");
    assert!(fills.len() >= 4, "only {} fills", fills.len());
    let mut cost: BTreeMap<String, Money> = BTreeMap::new();
    let mut held: BTreeMap<String, Count> = BTreeMap::new();
    for f in &fills {
        let o = orders[&f["order_id"].as_u64().unwrap()];
        let (p, c, fee) = (price(&f["price"]), count(&f["count"]), money(&f["fee"]));
        assert!(p <= price(&o["limit"]), "{f} above its limit {o}");
        assert!(f["ts_ms"].as_i64() > o["decision_ts_ms"].as_i64(), "{f}");
        assert_eq!(
            fee,
            trading_fee(Liquidity::Taker, FeeMultiplier::ONE, c, p),
            "{f}"
        );
        let m = f["market"].as_str().unwrap().to_string();
        *cost.entry(m.clone()).or_insert(Money::ZERO) += Money::notional(p, c) + fee;
        *held.entry(m).or_insert(Count::ZERO) += c;
    }
    // The risk limit per market held (3 contracts), whatever the strategy wanted.
    assert!(
        held.values().all(|&c| c <= Count::from_contracts(3)),
        "{held:?}"
    );
    let refused = of_type(&j, "refused");
    assert!(!refused.is_empty(), "buy-every-row was never refused");

    // Results as the exchange itself has them.
    let exchange: BTreeMap<String, Price> = s.sim.handle().with_engine(|e| {
        e.markets()
            .filter_map(|m| m.settlement_value().map(|v| (m.ticker.to_string(), v)))
            .collect()
    });
    let results: BTreeMap<String, String> = of_type(&j, "result")
        .into_iter()
        .map(|r| {
            (
                r["market"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (m, o) in &results {
        let want = if o == "yes" { Price::ONE } else { Price::ZERO };
        assert_eq!(exchange.get(m), Some(&want), "{m}: journal result {o}");
    }
    let closed: BTreeSet<String> = of_type(&j, "marker")
        .into_iter()
        .filter(|m| m["event"] == "closed")
        .map(|m| m["market"].as_str().unwrap().to_string())
        .collect();

    // Independent P&L: markets closed with a result pay $1 per YES contract on YES.
    let mut realised = Money::ZERO;
    let mut open_cost = Money::ZERO;
    let mut settled = 0;
    for (m, c) in &cost {
        match results.get(m) {
            Some(o) if closed.contains(m) => {
                let payout = if o == "yes" {
                    Money::notional(Price::ONE, held[m])
                } else {
                    Money::ZERO
                };
                realised += payout - *c;
                settled += 1;
            }
            _ => open_cost += *c,
        }
    }
    assert!(
        settled >= 2,
        "only {settled} traded market(s) settled: {results:?}"
    );
    let stop = of_type(&j, "stop")[0];
    assert_eq!(money(&stop["realised"]), realised, "stop entry {stop}");
    let journal_open_cost: Money = stop["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| money(&p["cost"]))
        .sum();
    assert_eq!(journal_open_cost, open_cost, "{stop}");
    assert_eq!(of_type(&j, "settlement").len(), settled);
    eprintln!(
        "dry-run: {} orders, {} fills, {} markets settled, realised {realised}, refused {}",
        orders.len(),
        fills.len(),
        settled,
        refused.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runner_on_the_same_live_dir_exits_3() {
    let s = start(sim_config(22, 4_000, vec![])).await;
    plugin_strategy(
        &s.root.join("strategy.json"),
        "builtin",
        "buy_every_row",
        serde_json::json!({}),
        tight_risk(),
    );
    let first = runner(&s.config, &["--duration", "6"]).spawn().unwrap();
    let journal_file = s.live_dir.join("journal.jsonl");
    for _ in 0..100 {
        if journal_file.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let second = run_to_end(&s.config, &["--duration", "2"]).await;
    assert_eq!(second.code, Some(3), "{}", second.stderr);
    assert!(
        second.stderr.contains("pid="),
        "names the holder: {}",
        second.stderr
    );
    let first = finish(first).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(
        of_type(&journal(&s.live_dir), "start").len(),
        1,
        "the second wrote nothing"
    );
}
