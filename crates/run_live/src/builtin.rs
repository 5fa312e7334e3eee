//! Strategies compiled into the runner, chosen by `plugin.module = "builtin"` and
//! `plugin.class = NAME` in a `strategy_type: plugin` file, with `plugin.params`.
//!
//! | class | what it does | params |
//! |---|---|---|
//! | `buy_every_row` | buys `count` contracts of `side` at the displayed ask on every row of every trusted market (a risk-gate stress test: every limit is hit) | `side` (`"yes"`/`"no"`, default yes), `count` (contracts, default 1) |

use pipeline::money::Count;
use pipeline::schema::strategy::Strategy as StrategyFile;
use pipeline::snapshot::Line;
use serde_json::Value;
use strategy::{Intent, MarketContext, Side, Strategy};

/// The names [`make`] knows.
pub const CLASSES: &[&str] = &["buy_every_row"];

/// The built-in strategy `class` with the file's params, or why not.
pub fn make(file: &StrategyFile, class: &str) -> Result<Box<dyn Strategy>, String> {
    let params = file
        .plugin
        .as_ref()
        .map(|p| p.params.clone())
        .unwrap_or_default();
    match class {
        "buy_every_row" => {
            let side = match params.get("side").and_then(Value::as_str).unwrap_or("yes") {
                "yes" => Side::Yes,
                "no" => Side::No,
                s => {
                    return Err(format!(
                        "plugin.params.side: {s:?} is not \"yes\" or \"no\""
                    ))
                }
            };
            let count = match params.get("count") {
                None => 1,
                Some(v) => v
                    .as_i64()
                    .filter(|&c| c > 0)
                    .ok_or_else(|| format!("plugin.params.count: {v} is not a positive integer"))?,
            };
            Ok(Box::new(BuyEveryRow {
                side,
                count: Count::from_contracts(count),
            }))
        }
        other => Err(format!(
            "plugin.class: no built-in strategy {other:?} (built in: {})",
            CLASSES.join(", ")
        )),
    }
}

/// Buys on every row: the strategy that wants more than any limit allows.
#[derive(Debug)]
pub struct BuyEveryRow {
    side: Side,
    count: Count,
}

impl Strategy for BuyEveryRow {
    fn on_line(&mut self, line: &Line, ctx: &MarketContext<'_>, _now_ms: i64) -> Vec<Intent> {
        let Line::Snapshot(r) = line else {
            return Vec::new();
        };
        if !ctx.trusted {
            return Vec::new();
        }
        let ask = match self.side {
            Side::Yes => r.yes_ask,
            Side::No => r.no_ask,
        };
        let Some(limit) = ask else {
            return Vec::new();
        };
        vec![Intent {
            market: r.market_ticker.clone(),
            side: self.side,
            count: self.count,
            limit,
            model_p: None,
            mid: None,
            edge: None,
            reason: "buy_every_row".into(),
        }]
    }
}
