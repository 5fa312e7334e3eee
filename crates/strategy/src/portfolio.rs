//! What we hold and what we have asked for, in exact money: positions, open orders, cash,
//! marks. Shared by the risk gate (limits) and the replay results (settlement).

use std::collections::BTreeMap;

use pipeline::money::{trading_fee, Count, FeeMultiplier, Liquidity, Money, Price};
use pipeline::schema::Outcome;
use pipeline::snapshot::SnapshotRecord;
use pipeline::MarketTicker;

use crate::types::{Fill, Order, Settlement, Side};

/// An order still able to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOrder {
    pub side: Side,
    pub limit: Price,
    pub remaining: Count,
}

/// One market's holdings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub yes: Count,
    pub no: Count,
    /// What the contracts cost, fees included.
    pub cost: Money,
    pub open_orders: BTreeMap<u64, OpenOrder>,
    /// Liquidation marks from the latest row: the best bid of each side.
    pub mark_yes: Option<Price>,
    pub mark_no: Option<Price>,
}

impl Position {
    /// Contracts held on either side plus those still on order: what
    /// `risk.max_contracts_per_market` caps.
    pub fn gross_with_orders(&self) -> Count {
        self.yes
            + self.no
            + self
                .open_orders
                .values()
                .map(|o| o.remaining)
                .sum::<Count>()
    }

    /// Holds contracts or has an open order (settled markets leave the portfolio).
    pub fn is_open(&self) -> bool {
        !(self.yes + self.no).is_zero() || !self.open_orders.is_empty()
    }

    /// Value if sold at the best bids now (zero where a side has no bid).
    pub fn marked_value(&self) -> Money {
        let v = |c: Count, p: Option<Price>| p.map_or(Money::ZERO, |p| Money::notional(p, c));
        v(self.yes, self.mark_yes) + v(self.no, self.mark_no)
    }
}

/// All markets' holdings plus cash (relative to the start of the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portfolio {
    pub cash: Money,
    pub markets: BTreeMap<MarketTicker, Position>,
    /// The series fee multiplier, for the worst-case cost of open orders.
    pub fee_multiplier: FeeMultiplier,
}

/// The most an order can cost: its count at its limit plus the taker fee there.
pub fn order_cost(limit: Price, count: Count, m: FeeMultiplier) -> Money {
    Money::notional(limit, count) + trading_fee(Liquidity::Taker, m, count, limit)
}

impl Portfolio {
    pub fn new(fee_multiplier: FeeMultiplier) -> Portfolio {
        Portfolio {
            cash: Money::ZERO,
            markets: BTreeMap::new(),
            fee_multiplier,
        }
    }

    pub fn position(&self, market: &MarketTicker) -> Option<&Position> {
        self.markets.get(market)
    }

    /// Updates the marks from a row of the market.
    pub fn mark(&mut self, row: &SnapshotRecord) {
        if let Some(p) = self.markets.get_mut(&row.market_ticker) {
            p.mark_yes = row.yes_bid;
            p.mark_no = row.no_bid;
        }
    }

    pub fn order_sent(&mut self, order: &Order) {
        self.markets
            .entry(order.market.clone())
            .or_default()
            .open_orders
            .insert(
                order.id,
                OpenOrder {
                    side: order.side,
                    limit: order.limit,
                    remaining: order.count,
                },
            );
    }

    pub fn apply_fill(&mut self, fill: &Fill) {
        let pos = self.markets.entry(fill.market.clone()).or_default();
        match fill.side {
            Side::Yes => pos.yes += fill.count,
            Side::No => pos.no += fill.count,
        }
        let paid = fill.notional() + fill.fee;
        pos.cost += paid;
        self.cash -= paid;
        if let Some(o) = pos.open_orders.get_mut(&fill.order_id) {
            o.remaining -= fill.count.min(o.remaining);
        }
    }

    pub fn order_done(&mut self, market: &MarketTicker, order_id: u64) {
        if let Some(p) = self.markets.get_mut(market) {
            p.open_orders.remove(&order_id);
            if p.open_orders.is_empty() && (p.yes + p.no).is_zero() {
                // Nothing held, nothing asked: keep the per-line sums over live markets only.
                self.markets.remove(market);
            }
        }
    }

    /// Pays out the market's contracts at `outcome`; `None` when we held nothing there.
    pub fn settle(
        &mut self,
        market: &MarketTicker,
        outcome: Outcome,
        ts_ms: i64,
    ) -> Option<Settlement> {
        // A settled market leaves the book: equity, exposure and open markets are sums over
        // live markets, computed on every line.
        let pos = self.markets.remove(market)?;
        let winners = match outcome {
            Outcome::Yes => pos.yes,
            Outcome::No => pos.no,
        };
        let payout = Money::notional(Price::ONE, winners);
        self.cash += payout;
        if (pos.yes + pos.no).is_zero() {
            return None;
        }
        Some(Settlement {
            market: market.clone(),
            outcome,
            ts_ms,
            yes: pos.yes,
            no: pos.no,
            payout,
        })
    }

    /// Cash plus the marked value of the positions.
    pub fn equity(&self) -> Money {
        self.cash
            + self
                .markets
                .values()
                .map(Position::marked_value)
                .sum::<Money>()
    }

    /// Markets with a position or an open order.
    pub fn open_markets(&self) -> usize {
        self.markets.values().filter(|p| p.is_open()).count()
    }

    /// Cost of the positions plus the worst-case cost of open orders.
    pub fn exposure(&self) -> Money {
        self.markets
            .values()
            .map(|p| {
                p.cost
                    + p.open_orders
                        .values()
                        .map(|o| order_cost(o.limit, o.remaining, self.fee_multiplier))
                        .sum::<Money>()
            })
            .sum()
    }
}
