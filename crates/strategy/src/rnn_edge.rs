//! `rnn_edge_v1`, the built-in strategy: one model step per feature [`Step`] (the model's
//! state reset at each new segment), and on the row that produced the step, a buy of the side
//! whose edge net of the taker fee passes every `signals` threshold.

use std::collections::BTreeMap;

use pipeline::money::{trading_fee, Count, FeeMultiplier, Liquidity, Price, MICROS_PER_DOLLAR};
use pipeline::schema::strategy::{
    Execution, Sides, Signals, Strategy as StrategyFile, StrategyType,
};
use pipeline::snapshot::{Line, SnapshotRecord};
use pipeline::MarketTicker;

use crate::features::{EdgeModel, FeatureConfig, FeatureState, Normalizer, Step};
use crate::runtime::{MarketContext, Strategy};
use crate::types::{Decision, Intent, Side};

/// Why an `rnn_edge_v1` strategy could not be built from a strategy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RnnEdgeError {
    #[error("strategy_type: expected rnn_edge_v1")]
    NotRnnEdge,
    #[error("model: missing (rnn_edge_v1 needs a model section)")]
    NoModel,
    #[error("model.features: {0}")]
    Features(String),
    #[error("model.step_ms: {0} is too large")]
    StepMs(u64),
}

/// The taker fee per contract for an order of `count` at `price`, in micro-dollars, rounded
/// up (exact: the order's fee in whole cents divided by its contracts).
pub fn taker_fee_per_contract_micros(m: FeeMultiplier, count: Count, price: Price) -> i64 {
    let fee = trading_fee(Liquidity::Taker, m, count, price).micros() as i128;
    let c = count.centis() as i128;
    if c <= 0 {
        return 0;
    }
    // fee micros per (count/100 contracts) → micros per contract, ceil.
    ((fee * 100 + c - 1) / c) as i64
}

/// One side's check on one row.
#[derive(Debug, Clone, PartialEq)]
pub struct SideCheck {
    pub side: Side,
    pub ask: Price,
    /// Net edge per contract in dollars: P(side) − ask − fee per contract.
    pub edge: f64,
    /// None when every threshold passed, else the first that failed.
    pub failed: Option<&'static str>,
}

/// Every `signals` threshold for both sides of `row`, given the model's P(YES). Pure: the same
/// row, probability and time always give the same answer.
pub fn check_signals(
    row: &SnapshotRecord,
    p_yes: f64,
    close_ts_ms: Option<i64>,
    now_ms: i64,
    signals: &Signals,
    execution: &Execution,
    fee_multiplier: FeeMultiplier,
) -> Vec<SideCheck> {
    // Book-wide conditions first: they fail both sides alike.
    let book_fail: Option<&'static str> = match row.spread {
        None => Some("signals.max_spread: one-sided book"),
        Some(s) if s > signals.max_spread => Some("signals.max_spread"),
        _ => None,
    }
    .or(match close_ts_ms {
        None => Some("signals.min_seconds_to_close: close time unknown"),
        Some(c) => {
            let left = c - now_ms;
            if left < signals.min_seconds_to_close as i64 * 1000 {
                Some("signals.min_seconds_to_close")
            } else if signals
                .max_seconds_to_close
                .is_some_and(|m| left > m as i64 * 1000)
            {
                Some("signals.max_seconds_to_close")
            } else {
                None
            }
        }
    });
    let mut out = Vec::new();
    for side in [Side::Yes, Side::No] {
        let allowed = matches!(
            (signals.sides, side),
            (Sides::Both, _) | (Sides::Yes, Side::Yes) | (Sides::No, Side::No)
        );
        let (ask, size) = match side {
            Side::Yes => (row.yes_ask, row.yes_ask_size),
            // The NO ask is 1 − the best YES bid: its size is the YES bid's.
            Side::No => (row.no_ask, row.yes_bid_size),
        };
        let Some(ask) = ask else { continue };
        let fee = taker_fee_per_contract_micros(fee_multiplier, execution.contracts_per_order, ask);
        let cost = ask.micros() + fee;
        let edge = side.prob(p_yes) - cost as f64 / MICROS_PER_DOLLAR as f64;
        let failed = if !allowed {
            Some("signals.sides")
        } else if book_fail.is_some() {
            book_fail
        } else if ask < signals.min_price {
            Some("signals.min_price")
        } else if ask > signals.max_price {
            Some("signals.max_price")
        } else if signals
            .min_ask_size
            .is_some_and(|m| size.is_none_or(|s| s < m))
        {
            Some("signals.min_ask_size")
        } else if side.prob(p_yes) * (MICROS_PER_DOLLAR as f64)
            < (cost + signals.min_edge.micros()) as f64
        {
            Some("signals.min_edge")
        } else {
            None
        };
        out.push(SideCheck {
            side,
            ask,
            edge,
            failed,
        });
    }
    out
}

/// The limit price for taking `ask`: ask + offset, never above `max_price`.
pub fn limit_price(ask: Price, execution: &Execution, signals: &Signals) -> Price {
    let l = (ask.micros() + execution.limit_offset.micros()).min(signals.max_price.micros());
    Price::from_micros(l).expect("at most max_price, which is below $1")
}

/// The built-in LSTM edge strategy (the model behind [`EdgeModel`]).
pub struct RnnEdge {
    cfg: FeatureConfig,
    normalizer: Normalizer,
    model: Box<dyn EdgeModel>,
    signals: Signals,
    execution: Execution,
    fee_multiplier: FeeMultiplier,
    states: BTreeMap<MarketTicker, FeatureState>,
    decisions: Vec<Decision>,
}

impl RnnEdge {
    pub fn new(
        cfg: FeatureConfig,
        normalizer: Normalizer,
        model: Box<dyn EdgeModel>,
        signals: Signals,
        execution: Execution,
        fee_multiplier: FeeMultiplier,
    ) -> RnnEdge {
        RnnEdge {
            cfg,
            normalizer,
            model,
            signals,
            execution,
            fee_multiplier,
            states: BTreeMap::new(),
            decisions: Vec::new(),
        }
    }

    /// From a validated strategy file: its `model.features` (normalisation), `model.step_ms`,
    /// `signals` and `execution`; `split_gap_ms` as the feature default.
    pub fn from_strategy(
        file: &StrategyFile,
        model: Box<dyn EdgeModel>,
        fee_multiplier: FeeMultiplier,
    ) -> Result<RnnEdge, RnnEdgeError> {
        if file.strategy_type != StrategyType::RnnEdgeV1 {
            return Err(RnnEdgeError::NotRnnEdge);
        }
        let spec = file.model.as_ref().ok_or(RnnEdgeError::NoModel)?;
        let normalizer = Normalizer::from_specs(&spec.features).map_err(RnnEdgeError::Features)?;
        let step_ms =
            i64::try_from(spec.step_ms).map_err(|_| RnnEdgeError::StepMs(spec.step_ms))?;
        let cfg = FeatureConfig {
            step_ms,
            ..FeatureConfig::default()
        };
        Ok(RnnEdge::new(
            cfg,
            normalizer,
            model,
            file.signals.clone(),
            file.execution.clone(),
            fee_multiplier,
        ))
    }

    fn decide(
        &mut self,
        row: &SnapshotRecord,
        step: &Step,
        p_yes: f64,
        ctx: &MarketContext<'_>,
        now_ms: i64,
        trusted: bool,
    ) -> Option<Intent> {
        let checks = check_signals(
            row,
            p_yes,
            ctx.close_ts_ms,
            now_ms,
            &self.signals,
            &self.execution,
            self.fee_multiplier,
        );
        let edge_of = |s: Side| checks.iter().find(|c| c.side == s).map(|c| c.edge);
        let best = checks
            .iter()
            .filter(|c| c.failed.is_none())
            .max_by(|a, b| a.edge.total_cmp(&b.edge))
            .filter(|_| trusted);
        self.decisions.push(Decision {
            market: row.market_ticker.clone(),
            ts_ms: step.ts_ms,
            model_p: p_yes,
            mid: step.mid,
            seconds_to_close: ctx.close_ts_ms.map(|c| (c - now_ms) as f64 / 1000.0),
            action: best.map(|c| c.side),
            edge_yes: edge_of(Side::Yes),
            edge_no: edge_of(Side::No),
        });
        let c = best?;
        Some(Intent {
            market: row.market_ticker.clone(),
            side: c.side,
            count: self.execution.contracts_per_order,
            limit: limit_price(c.ask, &self.execution, &self.signals),
            model_p: Some(p_yes),
            mid: Some(step.mid),
            edge: Some(c.edge),
            reason: format!(
                "edge {:.4} ≥ {} buying {} at {}",
                c.edge,
                self.signals.min_edge,
                c.side.as_str(),
                c.ask
            ),
        })
    }
}

impl Strategy for RnnEdge {
    fn on_line(&mut self, line: &Line, ctx: &MarketContext<'_>, now_ms: i64) -> Vec<Intent> {
        let cfg = self.cfg;
        let st = self
            .states
            .entry(ctx.market.clone())
            .or_insert_with(|| FeatureState::new(cfg, ctx.close_ts_ms));
        let Some(step) = st.push(line) else {
            return Vec::new();
        };
        let trusted = st.trusted() && ctx.trusted;
        let x = self.normalizer.apply(&step.x);
        let p_yes = self.model.step(ctx.market, &x, step.new_segment);
        let Line::Snapshot(row) = line else {
            return Vec::new();
        };
        self.decide(row, &step, p_yes, ctx, now_ms, trusted)
            .into_iter()
            .collect()
    }

    fn on_market_done(&mut self, market: &MarketTicker) {
        self.states.remove(market);
        self.model.forget(market);
    }

    fn drain_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::money::Money;
    use pipeline::schema::strategy::{SelfTradePrevention, TimeInForce};

    const NOW: i64 = 1_778_457_600_000;

    fn c(x: i64) -> Price {
        Price::from_cents(x).unwrap()
    }

    fn book(bid: i64, ask: i64, bid_size: i64, ask_size: i64) -> SnapshotRecord {
        SnapshotRecord::from_book(
            NOW,
            MarketTicker::from("KXT-1"),
            Some((c(bid), Count::from_contracts(bid_size))),
            Some((c(100 - ask), Count::from_contracts(ask_size))),
        )
        .unwrap()
    }

    fn signals() -> Signals {
        Signals {
            min_edge: Money::from_cents(3),
            min_price: c(5),
            max_price: c(95),
            max_spread: c(3),
            min_seconds_to_close: 60,
            max_seconds_to_close: Some(840),
            sides: Sides::Both,
            min_ask_size: Some(Count::from_contracts(2)),
        }
    }

    fn execution() -> Execution {
        Execution {
            limit_offset: c(1),
            time_in_force: TimeInForce::ImmediateOrCancel,
            contracts_per_order: Count::from_contracts(5),
            post_only: false,
            expiration_s: None,
            self_trade_prevention: SelfTradePrevention::TakerAtCross,
        }
    }

    fn check(row: &SnapshotRecord, p: f64, close_in_s: i64, s: &Signals) -> Vec<SideCheck> {
        check_signals(
            row,
            p,
            Some(NOW + close_in_s * 1000),
            NOW,
            s,
            &execution(),
            FeeMultiplier::ONE,
        )
    }

    fn failed(v: &[SideCheck], side: Side) -> Option<&'static str> {
        v.iter().find(|c| c.side == side).unwrap().failed
    }

    #[test]
    fn fee_per_contract_is_the_orders_cent_fee_divided_exactly() {
        // 5 at $0.50: 0.07 × 5 × 0.25 = 0.0875 → $0.09 → 1.8¢ a contract.
        let five = Count::from_contracts(5);
        assert_eq!(
            taker_fee_per_contract_micros(FeeMultiplier::ONE, five, c(50)),
            18_000
        );
        // 3 at $0.50: 0.0525 → $0.06 → 2¢; 7 at $0.44: 0.120736 → $0.13 → 1.857142…¢, up.
        let three = Count::from_contracts(3);
        assert_eq!(
            taker_fee_per_contract_micros(FeeMultiplier::ONE, three, c(50)),
            20_000
        );
        let seven = Count::from_contracts(7);
        assert_eq!(
            taker_fee_per_contract_micros(FeeMultiplier::ONE, seven, c(44)),
            18_572
        );
    }

    #[test]
    fn edge_is_probability_minus_ask_minus_fee_against_min_edge() {
        let row = book(48, 50, 10, 10);
        // YES at 50 + 1.8¢ fee: p = 0.548 is exactly 3¢ of edge; just below fails.
        let v = check(&row, 0.548, 300, &signals());
        assert_eq!(failed(&v, Side::Yes), None);
        let e = v.iter().find(|c| c.side == Side::Yes).unwrap().edge;
        assert!((e - 0.03).abs() < 1e-12, "{e}");
        let v = check(&row, 0.5479, 300, &signals());
        assert_eq!(failed(&v, Side::Yes), Some("signals.min_edge"));
        // NO costs 52 + fee: P(NO) = 0.45 is far from enough.
        assert_eq!(failed(&v, Side::No), Some("signals.min_edge"));
        let v = check(&row, 0.40, 300, &signals());
        assert_eq!(failed(&v, Side::No), None, "P(NO) 0.60 ≥ 0.52 + fee + 0.03");
    }

    #[test]
    fn every_threshold_names_itself() {
        let s = signals();
        let p = 0.9;
        assert_eq!(
            failed(&check(&book(40, 50, 10, 10), p, 300, &s), Side::Yes),
            Some("signals.max_spread")
        );
        assert_eq!(
            failed(&check(&book(48, 50, 10, 10), p, 30, &s), Side::Yes),
            Some("signals.min_seconds_to_close")
        );
        assert_eq!(
            failed(&check(&book(48, 50, 10, 10), p, 900, &s), Side::Yes),
            Some("signals.max_seconds_to_close")
        );
        assert_eq!(
            failed(&check(&book(48, 50, 10, 1), p, 300, &s), Side::Yes),
            Some("signals.min_ask_size")
        );
        assert_eq!(
            failed(&check(&book(95, 97, 10, 10), 0.999, 300, &s), Side::Yes),
            Some("signals.max_price")
        );
        assert_eq!(
            failed(&check(&book(1, 3, 10, 10), 0.5, 300, &s), Side::Yes),
            Some("signals.min_price")
        );
        let only_no = Signals {
            sides: Sides::No,
            ..s.clone()
        };
        assert_eq!(
            failed(&check(&book(48, 50, 10, 10), p, 300, &only_no), Side::Yes),
            Some("signals.sides")
        );
        // The NO ask's size is the YES bid's.
        assert_eq!(
            failed(&check(&book(48, 50, 1, 10), 0.1, 300, &s), Side::No),
            Some("signals.min_ask_size")
        );
        // Unknown close time: no entry.
        let v = check_signals(
            &book(48, 50, 10, 10),
            p,
            None,
            NOW,
            &s,
            &execution(),
            FeeMultiplier::ONE,
        );
        assert!(failed(&v, Side::Yes)
            .unwrap()
            .contains("close time unknown"));
    }

    #[test]
    fn limit_is_ask_plus_offset_capped_at_max_price() {
        let s = signals();
        assert_eq!(limit_price(c(50), &execution(), &s), c(51));
        assert_eq!(limit_price(c(95), &execution(), &s), c(95));
    }
}
