//! The risk gate: every `risk` limit of the strategy file, checked before every order.
//!
//! [`RiskGate::check`] approves an intent (possibly with a smaller count, naming the limit
//! that reduced it) or refuses it, naming the limit. [`RiskGate::order_sent`] records an order
//! that went out (orders per minute, cooldown); [`RiskGate::observe`] must see the equity at
//! least once per runtime step so the UTC day's starting equity is known.

use std::collections::{BTreeMap, VecDeque};

use pipeline::money::{Count, Money, CENTIS_PER_CONTRACT};
use pipeline::schema::strategy::Risk;
use pipeline::MarketTicker;
use serde::{Deserialize, Serialize};

use crate::portfolio::{order_cost, Portfolio};
use crate::types::Intent;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// The limits, named as in the strategy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RiskLimit {
    #[serde(rename = "risk.max_contracts_per_market")]
    MaxContractsPerMarket,
    #[serde(rename = "risk.max_open_markets")]
    MaxOpenMarkets,
    #[serde(rename = "risk.max_orders_per_minute")]
    MaxOrdersPerMinute,
    #[serde(rename = "risk.cooldown_s")]
    Cooldown,
    #[serde(rename = "risk.max_daily_loss")]
    MaxDailyLoss,
    #[serde(rename = "risk.no_entry_last_s")]
    NoEntryLast,
    #[serde(rename = "risk.max_total_exposure")]
    MaxTotalExposure,
}

impl RiskLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLimit::MaxContractsPerMarket => "risk.max_contracts_per_market",
            RiskLimit::MaxOpenMarkets => "risk.max_open_markets",
            RiskLimit::MaxOrdersPerMinute => "risk.max_orders_per_minute",
            RiskLimit::Cooldown => "risk.cooldown_s",
            RiskLimit::MaxDailyLoss => "risk.max_daily_loss",
            RiskLimit::NoEntryLast => "risk.no_entry_last_s",
            RiskLimit::MaxTotalExposure => "risk.max_total_exposure",
        }
    }
}

impl std::fmt::Display for RiskLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate said yes, for `count` contracts (`reduced_by` names the limit when smaller than
/// asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub count: Count,
    pub reduced_by: Option<RiskLimit>,
}

/// The gate said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{limit}: {detail}")]
pub struct Refusal {
    pub limit: RiskLimit,
    pub detail: String,
}

/// Stateful checker of the `risk` section.
#[derive(Debug, Clone)]
pub struct RiskGate {
    risk: Risk,
    sent: VecDeque<i64>,
    last_order: BTreeMap<MarketTicker, i64>,
    /// (UTC day number, equity at the first observation of that day).
    day: Option<(i64, Money)>,
}

fn refuse(limit: RiskLimit, detail: String) -> Refusal {
    Refusal { limit, detail }
}

/// `room` as an order size: whole contracts when the asked count was whole.
fn fit(asked: Count, room: Count) -> Count {
    if asked.centis() % CENTIS_PER_CONTRACT == 0 {
        Count::from_centis(room.centis() / CENTIS_PER_CONTRACT * CENTIS_PER_CONTRACT)
    } else {
        room
    }
}

impl RiskGate {
    pub fn new(risk: Risk) -> RiskGate {
        RiskGate {
            risk,
            sent: VecDeque::new(),
            last_order: BTreeMap::new(),
            day: None,
        }
    }

    pub fn risk(&self) -> &Risk {
        &self.risk
    }

    /// Keeps the start-of-day equity: the first equity seen in each UTC day.
    pub fn observe(&mut self, now_ms: i64, equity: Money) {
        let day = now_ms.div_euclid(DAY_MS);
        if self.day.is_none_or(|(d, _)| d != day) {
            self.day = Some((day, equity));
        }
    }

    /// The loss since the start of the UTC day (positive = lost), realised plus marked.
    pub fn day_loss(&self, equity: Money) -> Money {
        self.day.map_or(Money::ZERO, |(_, start)| start - equity)
    }

    /// The loss since the start of `now_ms`'s UTC day: zero when that day has not been observed
    /// yet (a new day starts from the equity it first sees).
    pub fn day_loss_at(&self, now_ms: i64, equity: Money) -> Money {
        match self.day {
            Some((d, start)) if d == now_ms.div_euclid(DAY_MS) => start - equity,
            _ => Money::ZERO,
        }
    }

    /// Checks every limit for `intent` at `now_ms`; `close_ts_ms` is the market's close time.
    pub fn check(
        &mut self,
        intent: &Intent,
        portfolio: &Portfolio,
        close_ts_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Approval, Refusal> {
        let equity = portfolio.equity();
        self.observe(now_ms, equity);
        let loss = self.day_loss(equity);
        let r = &self.risk;
        if loss >= r.max_daily_loss {
            return Err(refuse(
                RiskLimit::MaxDailyLoss,
                format!("today's loss ${loss} reached ${}", r.max_daily_loss),
            ));
        }
        match close_ts_ms {
            None => {
                return Err(refuse(
                    RiskLimit::NoEntryLast,
                    "the market's close time is unknown".into(),
                ))
            }
            Some(close) if close - now_ms < r.no_entry_last_s as i64 * 1000 => {
                return Err(refuse(
                    RiskLimit::NoEntryLast,
                    format!(
                        "{} ms before close, inside the last {} s",
                        close - now_ms,
                        r.no_entry_last_s
                    ),
                ))
            }
            Some(_) => {}
        }
        if let Some(&last) = self.last_order.get(&intent.market) {
            if now_ms - last < r.cooldown_s as i64 * 1000 {
                return Err(refuse(
                    RiskLimit::Cooldown,
                    format!(
                        "last order in {} {} ms ago (cooldown {} s)",
                        intent.market,
                        now_ms - last,
                        r.cooldown_s
                    ),
                ));
            }
        }
        let sent = &mut self.sent;
        while sent.front().is_some_and(|&t| t <= now_ms - MINUTE_MS) {
            sent.pop_front();
        }
        if self.sent.len() >= r.max_orders_per_minute as usize {
            return Err(refuse(
                RiskLimit::MaxOrdersPerMinute,
                format!("{} orders in the last minute", self.sent.len()),
            ));
        }
        let pos = portfolio.position(&intent.market);
        if !pos.is_some_and(|p| p.is_open())
            && portfolio.open_markets() >= r.max_open_markets as usize
        {
            return Err(refuse(
                RiskLimit::MaxOpenMarkets,
                format!("{} markets already open", portfolio.open_markets()),
            ));
        }

        let mut count = intent.count;
        let mut reduced_by = None;
        let held = pos.map_or(Count::ZERO, |p| p.gross_with_orders());
        let room = r.max_contracts_per_market - held;
        if count > room {
            count = fit(intent.count, room.max(Count::ZERO));
            reduced_by = Some(RiskLimit::MaxContractsPerMarket);
            if count <= Count::ZERO {
                return Err(refuse(
                    RiskLimit::MaxContractsPerMarket,
                    format!(
                        "{held} contracts held or on order in {}, limit {}",
                        intent.market, r.max_contracts_per_market
                    ),
                ));
            }
        }
        if let Some(max) = r.max_total_exposure {
            let room = max - portfolio.exposure();
            let m = portfolio.fee_multiplier;
            if order_cost(intent.limit, count, m) > room {
                // The largest count that fits: start from the notional bound, step down.
                let by_notional = if intent.limit.micros() == 0 {
                    count.centis()
                } else {
                    (room.micros().max(0) as i128 * CENTIS_PER_CONTRACT as i128
                        / intent.limit.micros() as i128)
                        .min(count.centis() as i128) as i64
                };
                let step = if intent.count.centis() % CENTIS_PER_CONTRACT == 0 {
                    CENTIS_PER_CONTRACT
                } else {
                    1
                };
                let mut c = fit(intent.count, Count::from_centis(by_notional));
                while c > Count::ZERO && order_cost(intent.limit, c, m) > room {
                    c -= Count::from_centis(step);
                }
                if c <= Count::ZERO {
                    return Err(refuse(
                        RiskLimit::MaxTotalExposure,
                        format!(
                            "exposure ${} of ${max}, no room for one more contract at ${}",
                            portfolio.exposure(),
                            intent.limit
                        ),
                    ));
                }
                count = c;
                reduced_by = Some(RiskLimit::MaxTotalExposure);
            }
        }
        Ok(Approval { count, reduced_by })
    }

    /// Records an order that was sent.
    pub fn order_sent(&mut self, market: &MarketTicker, now_ms: i64) {
        self.sent.push_back(now_ms);
        self.last_order.insert(market.clone(), now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::money::{FeeMultiplier, Price};

    use crate::types::{Fill, Order, Side};

    const NOW: i64 = 1_778_457_600_000;

    fn risk() -> Risk {
        Risk {
            max_contracts_per_market: Count::from_contracts(20),
            max_open_markets: 5,
            max_orders_per_minute: 100,
            cooldown_s: 0,
            max_daily_loss: Money::from_cents(100_000),
            no_entry_last_s: 60,
            max_total_exposure: None,
        }
    }

    fn intent(market: &str, count: i64, limit_cents: i64) -> Intent {
        Intent {
            market: MarketTicker::from(market),
            side: Side::Yes,
            count: Count::from_contracts(count),
            limit: Price::from_cents(limit_cents).unwrap(),
            model_p: None,
            mid: None,
            edge: None,
            reason: String::new(),
        }
    }

    fn fill(p: &mut Portfolio, market: &str, count: i64, cents: i64) {
        let order = Order {
            id: 1,
            market: MarketTicker::from(market),
            side: Side::Yes,
            count: Count::from_contracts(count),
            limit: Price::from_cents(cents).unwrap(),
            time_in_force: pipeline::schema::strategy::TimeInForce::ImmediateOrCancel,
            decision_ts_ms: NOW,
            model_p: None,
            mid: None,
            close_ts_ms: None,
        };
        p.order_sent(&order);
        let price = Price::from_cents(cents).unwrap();
        let count = Count::from_contracts(count);
        p.apply_fill(&Fill {
            order_id: 1,
            market: order.market.clone(),
            ts_ms: NOW,
            side: Side::Yes,
            price,
            count,
            fee: pipeline::money::trading_fee(
                pipeline::money::Liquidity::Taker,
                FeeMultiplier::ONE,
                count,
                price,
            ),
            decision_ts_ms: NOW,
            model_p: None,
            mid: None,
            close_ts_ms: None,
        });
        p.order_done(&order.market, 1);
    }

    #[test]
    fn reduces_to_the_room_left_in_the_market() {
        let mut p = Portfolio::new(FeeMultiplier::ONE);
        fill(&mut p, "A", 12, 50);
        let mut g = RiskGate::new(risk());
        let a = g
            .check(&intent("A", 10, 50), &p, Some(NOW + 600_000), NOW)
            .unwrap();
        assert_eq!(a.count, Count::from_contracts(8));
        assert_eq!(a.reduced_by, Some(RiskLimit::MaxContractsPerMarket));
        fill(&mut p, "A", 8, 50);
        let e = g
            .check(&intent("A", 1, 50), &p, Some(NOW + 600_000), NOW)
            .unwrap_err();
        assert_eq!(e.limit, RiskLimit::MaxContractsPerMarket);
    }

    #[test]
    fn exposure_reduction_is_the_largest_count_that_fits_with_its_fee() {
        // $10 cap, 50¢: 19 contracts cost $9.50 + $0.34 fee; 20 would cost $10.35.
        let r = Risk {
            max_total_exposure: Some(Money::from_cents(1_000)),
            max_contracts_per_market: Count::from_contracts(100),
            ..risk()
        };
        let p = Portfolio::new(FeeMultiplier::ONE);
        let mut g = RiskGate::new(r);
        let a = g
            .check(&intent("A", 50, 50), &p, Some(NOW + 600_000), NOW)
            .unwrap();
        assert_eq!(a.count, Count::from_contracts(19));
        assert_eq!(a.reduced_by, Some(RiskLimit::MaxTotalExposure));
    }

    #[test]
    fn unknown_close_time_and_the_last_seconds_refuse_entries() {
        let p = Portfolio::new(FeeMultiplier::ONE);
        let mut g = RiskGate::new(risk());
        for close in [None, Some(NOW + 59_999)] {
            let e = g.check(&intent("A", 1, 50), &p, close, NOW).unwrap_err();
            assert_eq!(e.limit, RiskLimit::NoEntryLast, "{close:?}");
        }
        assert!(g
            .check(&intent("A", 1, 50), &p, Some(NOW + 60_000), NOW)
            .is_ok());
    }

    #[test]
    fn orders_per_minute_is_a_rolling_window() {
        let r = Risk {
            max_orders_per_minute: 2,
            ..risk()
        };
        let p = Portfolio::new(FeeMultiplier::ONE);
        let mut g = RiskGate::new(r);
        let close = Some(NOW + 3_600_000);
        g.order_sent(&MarketTicker::from("A"), NOW);
        g.order_sent(&MarketTicker::from("B"), NOW + 30_000);
        let e = g
            .check(&intent("C", 1, 50), &p, close, NOW + 59_999)
            .unwrap_err();
        assert_eq!(e.limit, RiskLimit::MaxOrdersPerMinute);
        // The first order is a minute old: room again.
        assert!(g
            .check(&intent("C", 1, 50), &p, close, NOW + 60_000)
            .is_ok());
    }
}
