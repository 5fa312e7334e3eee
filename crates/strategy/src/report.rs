//! The evaluation report: from each fold's replay journals (fills, settlements, decisions),
//! per fold and overall: trades, P&L net of fees with a bootstrap interval resampled by
//! market, the model against the market mid, whether the model adds information beyond the
//! price, robustness under fees × 1.5 and one more step of latency, and a plain summary.
//!
//! Money is exact ([`Money`]) up to the statistics, which are floats in dollars.

use std::collections::{BTreeMap, BTreeSet};

use pipeline::money::{trading_fee, FeeMultiplier, Liquidity, Money, Price};
use pipeline::schema::Outcome;
use pipeline::MarketTicker;
use serde::Serialize;

use crate::metrics;
use crate::ols::{ols_clustered, Coef};
use crate::replay::ReplayResult;
use crate::runtime::SkipReason;
use crate::types::{Fill, Side};

/// The `schema` of the report JSON.
pub const REPORT_SCHEMA: &str = "strategy-report/v1";

/// One fold: its test replay, and (for the robustness row) the same replay with one more step
/// of latency.
#[derive(Debug, Clone)]
pub struct FoldInput {
    pub name: String,
    /// The fold's test markets overlap the model's training: every line says so.
    pub in_sample: bool,
    pub main: ReplayResult,
    pub extra_latency: Option<ReplayResult>,
    /// Plain sentences about how the fold was set up (e.g. the signals it chose on its
    /// validation markets), printed first in its summary.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportOptions {
    pub bootstrap_resamples: usize,
    pub seed: u64,
    pub calibration_bins: usize,
    /// Fee stress as a fraction (3, 2) = × 1.5.
    pub fee_stress: (i64, i64),
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            bootstrap_resamples: 2000,
            seed: 42,
            calibration_bins: 10,
            fee_stress: (3, 2),
        }
    }
}

/// A mean with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

/// One order that filled (possibly in several fills), and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    pub order_id: u64,
    pub market: MarketTicker,
    pub side: Side,
    pub decision_ts_ms: i64,
    pub entry_ts_ms: i64,
    /// The first (best) price paid.
    pub entry_price: Price,
    pub contracts: pipeline::money::Count,
    /// Price × count over the fills.
    pub cost: Money,
    pub fees: Money,
    pub seconds_to_close: Option<f64>,
    /// Settlement: None while the market has no label.
    pub settled_ts_ms: Option<i64>,
    pub payout: Option<Money>,
    pub net: Option<Money>,
}

/// P&L of one set of trades.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pnl {
    pub trades: u64,
    pub contracts: pipeline::money::Count,
    pub markets: u64,
    pub wins: u64,
    pub win_rate: Option<f64>,
    pub gross: Money,
    pub fees: Money,
    pub net: Money,
    /// Cost plus fees of the settled trades: the capital put at risk.
    pub capital: Money,
    pub roi: Option<f64>,
    pub max_drawdown: Money,
    /// Net P&L per market (dollars), bootstrap 95% interval resampling markets.
    pub per_market: Interval,
    /// Net P&L per trade (dollars): the per-market interval divided by the mean number of
    /// trades per market (markets resampled; the trade count per market held at its mean).
    pub per_trade: Interval,
    /// Trades in markets without a label: not in the P&L above.
    pub open_trades: u64,
    pub open_markets: u64,
    pub open_contracts: pipeline::money::Count,
    pub open_cost: Money,
}

/// A robustness row: the same evaluation under a stress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RobustRow {
    pub name: String,
    pub in_sample: bool,
    pub trades: u64,
    pub fees: Money,
    pub net: Money,
    pub per_market: Interval,
    pub per_trade: Interval,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub lo: f64,
    pub hi: f64,
    pub n: u64,
    pub mean_pred: f64,
    pub frac_pos: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub bins: Vec<CalibrationBin>,
    pub ece: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HorizonRow {
    pub from_s: f64,
    pub to_s: Option<f64>,
    pub n: usize,
    pub brier_model: f64,
    pub brier_mid: f64,
}

/// The model against the market's own mid, on every model step of the labelled markets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVsMid {
    pub steps: usize,
    pub markets: usize,
    pub brier_model: f64,
    pub brier_mid: f64,
    pub log_loss_model: f64,
    pub log_loss_mid: f64,
    pub auc_model: Option<f64>,
    pub auc_mid: Option<f64>,
    pub calibration_model: Calibration,
    pub calibration_mid: Calibration,
    pub by_horizon: Vec<HorizonRow>,
    /// The same comparison on the steps where the strategy wanted to trade (the traded
    /// universe): steps, Brier of the model, Brier of the mid.
    pub traded_steps: usize,
    pub brier_model_traded: f64,
    pub brier_mid_traded: f64,
    /// OLS of the outcome on [1, mid, model − mid], standard errors clustered by market: the
    /// coefficient of `model − mid` with its 95% interval. None when the design is singular.
    pub beyond_price: Option<Coef>,
    pub adds_information: Option<bool>,
}

/// P&L bucketed by a trade attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub label: String,
    pub trades: u64,
    pub net: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EquityPoint {
    pub ts_ms: i64,
    pub equity: Money,
    pub drawdown: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub name: String,
    pub in_sample: bool,
    pub markets_seen: u64,
    pub markets_labelled: u64,
    pub lines: u64,
    pub orders: u64,
    /// The execution latency of the main replay (the robustness row adds one row).
    pub latency: Option<crate::replay::Latency>,
    /// Intents the risk gate refused, by limit.
    pub refused: BTreeMap<String, u64>,
    /// Intents not sent because the book was untrusted, and orders the venue rejected.
    pub skipped_untrusted: u64,
    pub venue_rejected: u64,
    /// Orders that ended with part or all of their count cancelled (IOC remainder, marker,
    /// silence, end of data).
    pub cancelled_orders: u64,
    pub pnl: Pnl,
    pub robustness: Vec<RobustRow>,
    pub model_vs_mid: Option<ModelVsMid>,
    pub by_entry_price: Vec<Bucket>,
    pub by_time_to_close: Vec<Bucket>,
    pub equity: Vec<EquityPoint>,
    pub verdict: Verdict,
    /// Plain sentences; each starts with `[in-sample]` when the section is.
    pub summary: Vec<String>,
    pub trades: Vec<Trade>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    NoTrades,
    NoEdgeShown,
    Loses,
    Fragile,
    Edge,
}

impl Verdict {
    /// The JSON name (`no_edge_shown`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NoTrades => "no_trades",
            Verdict::NoEdgeShown => "no_edge_shown",
            Verdict::Loses => "loses",
            Verdict::Fragile => "fragile",
            Verdict::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub strategy: String,
    pub in_sample: bool,
    pub folds: Vec<Section>,
    pub overall: Section,
    pub notes: Vec<String>,
}

impl Report {
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// Writes the JSON to `path` and the HTML page beside it (`path` with `.html`), each
    /// atomically; returns the page's path.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
        let html = path.with_extension("html");
        if html == path {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "--out {}: the report JSON cannot be the .html page",
                    path.display()
                ),
            ));
        }
        let mut json = self.to_json_pretty();
        json.push('\n');
        pipeline::schema::write_atomic(path, json.as_bytes())?;
        pipeline::schema::write_atomic(&html, crate::html::render(self).as_bytes())?;
        Ok(html)
    }
}

/// The fee of `fill` with the multiplier scaled by `num/den` (rounded up to Kalshi's 1e-4
/// multiplier grid), then Kalshi's exact rounding.
pub fn stressed_fee(fill: &Fill, m: FeeMultiplier, (num, den): (i64, i64)) -> Money {
    let scaled = (m.ten_thousandths() * num + den - 1) / den;
    let m = FeeMultiplier::from_ten_thousandths(scaled).expect("non-negative");
    trading_fee(Liquidity::Taker, m, fill.count, fill.price)
}

/// Groups fills into trades and settles them.
pub fn trades_of(result: &ReplayResult, fee: &dyn Fn(&Fill) -> Money) -> Vec<Trade> {
    let settled: BTreeMap<&MarketTicker, (Outcome, i64)> = result
        .journal
        .settlements
        .iter()
        .map(|s| (&s.market, (s.outcome, s.ts_ms)))
        .collect();
    let mut by_order: BTreeMap<u64, Trade> = BTreeMap::new();
    for f in &result.journal.fills {
        let t = by_order.entry(f.order_id).or_insert_with(|| Trade {
            order_id: f.order_id,
            market: f.market.clone(),
            side: f.side,
            decision_ts_ms: f.decision_ts_ms,
            entry_ts_ms: f.ts_ms,
            entry_price: f.price,
            contracts: pipeline::money::Count::ZERO,
            cost: Money::ZERO,
            fees: Money::ZERO,
            seconds_to_close: f
                .close_ts_ms
                .map(|c| (c - f.decision_ts_ms) as f64 / 1000.0),
            settled_ts_ms: None,
            payout: None,
            net: None,
        });
        t.contracts += f.count;
        t.cost += f.notional();
        t.fees += fee(f);
    }
    let mut trades: Vec<Trade> = by_order.into_values().collect();
    for t in &mut trades {
        if let Some(&(outcome, ts)) = settled.get(&t.market) {
            let wins = matches!(
                (outcome, t.side),
                (Outcome::Yes, Side::Yes) | (Outcome::No, Side::No)
            );
            let payout = if wins {
                Money::notional(Price::ONE, t.contracts)
            } else {
                Money::ZERO
            };
            t.settled_ts_ms = Some(ts);
            t.payout = Some(payout);
            t.net = Some(payout - t.cost - t.fees);
        }
    }
    trades
}

fn interval(values: &[f64], opts: &ReportOptions) -> Interval {
    if values.is_empty() {
        return Interval {
            mean: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
            n: 0,
        };
    }
    let ci = metrics::bootstrap_mean_ci(values, opts.bootstrap_resamples, opts.seed);
    Interval {
        mean: ci.mean,
        lo: ci.lo,
        hi: ci.hi,
        n: ci.n,
    }
}

/// Per-market and per-trade intervals of net P&L over settled trades.
fn intervals(trades: &[Trade], opts: &ReportOptions) -> (Interval, Interval) {
    let mut per_market: BTreeMap<&MarketTicker, (Money, u64)> = BTreeMap::new();
    for t in trades {
        if let Some(net) = t.net {
            let e = per_market.entry(&t.market).or_insert((Money::ZERO, 0));
            e.0 += net;
            e.1 += 1;
        }
    }
    let values: Vec<f64> = per_market.values().map(|(m, _)| m.to_f64()).collect();
    let pm = interval(&values, opts);
    let n_trades: u64 = per_market.values().map(|v| v.1).sum();
    let per = if values.is_empty() {
        1.0
    } else {
        n_trades as f64 / values.len() as f64
    };
    let pt = Interval {
        mean: pm.mean / per,
        lo: pm.lo / per,
        hi: pm.hi / per,
        n: n_trades as usize,
    };
    (pm, pt)
}

fn equity_curve(trades: &[Trade]) -> (Vec<EquityPoint>, Money) {
    let mut settled: Vec<&Trade> = trades.iter().filter(|t| t.net.is_some()).collect();
    settled.sort_by_key(|t| (t.settled_ts_ms, t.order_id));
    let mut eq = Money::ZERO;
    let mut peak = Money::ZERO;
    let mut max_dd = Money::ZERO;
    let mut pts = Vec::new();
    for t in settled {
        eq += t.net.expect("filtered");
        peak = peak.max(eq);
        let dd = peak - eq;
        max_dd = max_dd.max(dd);
        pts.push(EquityPoint {
            ts_ms: t.settled_ts_ms.expect("settled"),
            equity: eq,
            drawdown: dd,
        });
    }
    (pts, max_dd)
}

fn pnl_of(trades: &[Trade], opts: &ReportOptions) -> Pnl {
    let settled: Vec<&Trade> = trades.iter().filter(|t| t.net.is_some()).collect();
    let open: Vec<&Trade> = trades.iter().filter(|t| t.net.is_none()).collect();
    let gross: Money = settled
        .iter()
        .map(|t| t.payout.expect("settled") - t.cost)
        .sum();
    let fees: Money = settled.iter().map(|t| t.fees).sum();
    let capital: Money = settled.iter().map(|t| t.cost + t.fees).sum();
    let wins = settled.iter().filter(|t| t.net > Some(Money::ZERO)).count() as u64;
    let (per_market, per_trade) = intervals(trades, opts);
    let (_, max_drawdown) = equity_curve(trades);
    let markets: BTreeSet<&MarketTicker> = settled.iter().map(|t| &t.market).collect();
    let open_markets: BTreeSet<&MarketTicker> = open.iter().map(|t| &t.market).collect();
    let net = gross - fees;
    Pnl {
        trades: settled.len() as u64,
        contracts: settled.iter().map(|t| t.contracts).sum(),
        markets: markets.len() as u64,
        wins,
        win_rate: (!settled.is_empty()).then(|| wins as f64 / settled.len() as f64),
        gross,
        fees,
        net,
        capital,
        roi: (capital > Money::ZERO).then(|| net.to_f64() / capital.to_f64()),
        max_drawdown,
        per_market,
        per_trade,
        open_trades: open.len() as u64,
        open_markets: open_markets.len() as u64,
        open_contracts: open.iter().map(|t| t.contracts).sum(),
        open_cost: open.iter().map(|t| t.cost + t.fees).sum(),
    }
}

fn calibration(p: &[f64], y: &[f64], bins: usize) -> Calibration {
    let (b, ece) = metrics::reliability(p, y, bins);
    Calibration {
        bins: b
            .into_iter()
            .map(|b| CalibrationBin {
                lo: b.lo,
                hi: b.hi,
                n: b.n,
                mean_pred: b.mean_pred,
                frac_pos: b.frac_pos,
            })
            .collect(),
        ece,
    }
}

const HORIZONS: [f64; 6] = [0.0, 60.0, 120.0, 300.0, 600.0, f64::INFINITY];

fn model_vs_mid(results: &[&ReplayResult], opts: &ReportOptions) -> Option<ModelVsMid> {
    let mut p = Vec::new();
    let mut mid = Vec::new();
    let mut y = Vec::new();
    let mut horizon = Vec::new();
    let mut cluster = Vec::new();
    let mut traded = Vec::new();
    let mut ids: BTreeMap<(usize, &MarketTicker), usize> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        for d in &r.journal.decisions {
            let Some(outcome) = r.markets.get(&d.market).and_then(|m| m.outcome) else {
                continue;
            };
            let next = ids.len();
            cluster.push(*ids.entry((i, &d.market)).or_insert(next));
            p.push(d.model_p);
            mid.push(d.mid);
            y.push(outcome.value());
            horizon.push(d.seconds_to_close);
            traded.push(d.action.is_some());
        }
    }
    if p.is_empty() {
        return None;
    }
    let by_horizon = HORIZONS
        .windows(2)
        .filter_map(|w| {
            let idx: Vec<usize> = (0..p.len())
                .filter(|&i| horizon[i].is_some_and(|h| h >= w[0] && h < w[1]))
                .collect();
            if idx.is_empty() {
                return None;
            }
            let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            let yy = pick(&y);
            Some(HorizonRow {
                from_s: w[0],
                to_s: w[1].is_finite().then_some(w[1]),
                n: idx.len(),
                brier_model: metrics::brier(&pick(&p), &yy),
                brier_mid: metrics::brier(&pick(&mid), &yy),
            })
        })
        .collect();
    let x: Vec<Vec<f64>> = p
        .iter()
        .zip(&mid)
        .map(|(p, m)| vec![1.0, *m, p - m])
        .collect();
    let beyond_price = ols_clustered(&x, &y, &cluster).map(|f| f.coefs[2]);
    let pick_traded = |v: &[f64]| {
        v.iter()
            .zip(&traded)
            .filter(|(_, t)| **t)
            .map(|(x, _)| *x)
            .collect::<Vec<f64>>()
    };
    let y_traded = pick_traded(&y);
    Some(ModelVsMid {
        steps: p.len(),
        markets: ids.len(),
        brier_model: metrics::brier(&p, &y),
        brier_mid: metrics::brier(&mid, &y),
        log_loss_model: metrics::log_loss(&p, &y),
        log_loss_mid: metrics::log_loss(&mid, &y),
        auc_model: metrics::auc(&p, &y),
        auc_mid: metrics::auc(&mid, &y),
        calibration_model: calibration(&p, &y, opts.calibration_bins),
        calibration_mid: calibration(&mid, &y, opts.calibration_bins),
        by_horizon,
        traded_steps: y_traded.len(),
        brier_model_traded: metrics::brier(&pick_traded(&p), &y_traded),
        brier_mid_traded: metrics::brier(&pick_traded(&mid), &y_traded),
        adds_information: beyond_price.map(|c| c.lo > 0.0),
        beyond_price,
    })
}

fn buckets(trades: &[Trade], key: impl Fn(&Trade) -> Option<(usize, String)>) -> Vec<Bucket> {
    let mut m: BTreeMap<usize, Bucket> = BTreeMap::new();
    for t in trades {
        let (Some(net), Some((k, label))) = (t.net, key(t)) else {
            continue;
        };
        let b = m.entry(k).or_insert(Bucket {
            label,
            trades: 0,
            net: Money::ZERO,
        });
        b.trades += 1;
        b.net += net;
    }
    m.into_values().collect()
}

fn by_entry_price(trades: &[Trade]) -> Vec<Bucket> {
    buckets(trades, |t| {
        let c = (t.entry_price.micros() / 100_000).min(9) as usize;
        Some((c, format!("{}–{}¢", c * 10, c * 10 + 10)))
    })
}

fn by_time_to_close(trades: &[Trade]) -> Vec<Bucket> {
    buckets(trades, |t| {
        let s = t.seconds_to_close?;
        let i = HORIZONS.windows(2).position(|w| s >= w[0] && s < w[1])?;
        let (a, b) = (HORIZONS[i], HORIZONS[i + 1]);
        Some((
            i,
            if b.is_finite() {
                format!("{a:.0}–{b:.0} s")
            } else {
                format!("≥ {a:.0} s")
            },
        ))
    })
}

fn fmt_ci(i: &Interval) -> String {
    format!("${:.4} [${:.4}, ${:.4}]", i.mean, i.lo, i.hi)
}

fn verdict(base: &Pnl, stress: &[RobustRow]) -> Verdict {
    let i = &base.per_market;
    if base.trades == 0 || i.n == 0 {
        Verdict::NoTrades
    } else if i.lo > 0.0 {
        if stress.iter().all(|r| r.per_market.lo > 0.0) {
            Verdict::Edge
        } else {
            Verdict::Fragile
        }
    } else if i.hi < 0.0 {
        Verdict::Loses
    } else {
        Verdict::NoEdgeShown
    }
}

fn count_skips(results: &[&ReplayResult], f: impl Fn(&SkipReason) -> bool) -> u64 {
    results
        .iter()
        .flat_map(|r| &r.journal.skipped)
        .filter(|s| f(&s.why))
        .count() as u64
}

fn section(name: &str, parts: &[&FoldInput], opts: &ReportOptions) -> Section {
    let in_sample = parts.iter().any(|f| f.in_sample);
    let mains: Vec<&ReplayResult> = parts.iter().map(|f| &f.main).collect();
    let base_fee = |f: &Fill| f.fee;
    let trades: Vec<Trade> = mains.iter().flat_map(|r| trades_of(r, &base_fee)).collect();
    let pnl = pnl_of(&trades, opts);
    let (equity, _) = equity_curve(&trades);

    let mut robustness = Vec::new();
    let stressed: Vec<Trade> = mains
        .iter()
        .flat_map(|r| {
            let m = r.config.fee_multiplier;
            trades_of(r, &move |f: &Fill| stressed_fee(f, m, opts.fee_stress))
        })
        .collect();
    let row = |name: String, t: &[Trade]| {
        let p = pnl_of(t, opts);
        RobustRow {
            name,
            in_sample,
            trades: p.trades,
            fees: p.fees,
            net: p.net,
            per_market: p.per_market,
            per_trade: p.per_trade,
        }
    };
    let (num, den) = opts.fee_stress;
    robustness.push(row(
        format!("fees x {}", num as f64 / den as f64),
        &stressed,
    ));
    if parts.iter().all(|f| f.extra_latency.is_some()) {
        let late: Vec<Trade> = parts
            .iter()
            .flat_map(|f| trades_of(f.extra_latency.as_ref().expect("checked"), &base_fee))
            .collect();
        robustness.push(row("latency + 1 step".into(), &late));
    }
    let verdict = verdict(&pnl, &robustness);

    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for r in &mains {
        for (l, n) in r.journal.refusals() {
            *refused.entry(l.as_str().to_string()).or_insert(0) += n;
        }
    }
    let markets_seen: u64 = mains.iter().map(|r| r.markets.len() as u64).sum();
    let markets_labelled: u64 = mains
        .iter()
        .map(|r| r.markets.values().filter(|m| m.outcome.is_some()).count() as u64)
        .sum();
    let mvm = model_vs_mid(&mains, opts);

    let tag = if in_sample { "[in-sample] " } else { "" };
    let mut summary: Vec<String> = parts
        .iter()
        .flat_map(|f| f.notes.iter().map(|n| format!("{tag}{n}")))
        .collect();
    summary.push(format!(
        "{tag}{}: {} trades in {} markets, net ${} after ${} fees (gross ${}); net per market {}.",
        name,
        pnl.trades,
        pnl.markets,
        pnl.net,
        pnl.fees,
        pnl.gross,
        fmt_ci(&pnl.per_market)
    ));
    summary.push(format!(
        "{tag}{}",
        match verdict {
            Verdict::NoTrades => "No trades: no edge shown.".to_string(),
            Verdict::NoEdgeShown =>
                "No edge shown: the 95% interval of net P&L per market includes zero; the \
                 strategy does not beat doing nothing."
                    .to_string(),
            Verdict::Loses =>
                "Loses money: the 95% interval of net P&L per market is below zero; doing \
                 nothing is better."
                    .to_string(),
            Verdict::Fragile => format!(
                "Fragile: positive without stress, but not under {}.",
                robustness
                    .iter()
                    .filter(|r| r.per_market.lo <= 0.0 || r.per_market.lo.is_nan())
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            Verdict::Edge =>
                "Edge shown: the 95% interval of net P&L per market is above zero, also under \
                 every stress row."
                    .to_string(),
        }
    ));
    if pnl.open_trades > 0 {
        summary.push(format!(
            "{tag}{} trades in {} markets without a label are open and not in the P&L (cost ${}).",
            pnl.open_trades, pnl.open_markets, pnl.open_cost
        ));
    }
    if let Some(m) = &mvm {
        summary.push(format!(
            "{tag}Model vs mid on {} steps of {} markets: Brier {:.4} vs {:.4}, log loss {:.4} vs {:.4}; on the {} steps it wanted to trade, Brier {:.4} vs {:.4}.",
            m.steps,
            m.markets,
            m.brier_model,
            m.brier_mid,
            m.log_loss_model,
            m.log_loss_mid,
            m.traded_steps,
            m.brier_model_traded,
            m.brier_mid_traded
        ));
        summary.push(format!(
            "{tag}{}",
            match m.beyond_price {
                None => "Whether the model adds information beyond the price: not estimable \
                         (singular design or one market)."
                    .to_string(),
                Some(c) if c.lo > 0.0 => format!(
                    "The model adds information beyond the price: coefficient of model − mid \
                     {:.3} [{:.3}, {:.3}].",
                    c.estimate, c.lo, c.hi
                ),
                Some(c) => format!(
                    "Not shown that the model adds information beyond the price: coefficient \
                     of model − mid {:.3} [{:.3}, {:.3}].",
                    c.estimate, c.lo, c.hi
                ),
            }
        ));
    }
    Section {
        name: name.to_string(),
        in_sample,
        markets_seen,
        markets_labelled,
        lines: mains.iter().map(|r| r.lines).sum(),
        orders: mains.iter().map(|r| r.journal.orders.len() as u64).sum(),
        latency: mains.first().map(|r| r.config.latency),
        refused,
        skipped_untrusted: count_skips(&mains, |w| matches!(w, SkipReason::Untrusted)),
        venue_rejected: count_skips(&mains, |w| matches!(w, SkipReason::Venue(_))),
        cancelled_orders: mains.iter().map(|r| r.journal.cancels.len() as u64).sum(),
        by_entry_price: by_entry_price(&trades),
        by_time_to_close: by_time_to_close(&trades),
        pnl,
        robustness,
        model_vs_mid: mvm,
        equity,
        verdict,
        summary,
        trades,
    }
}

/// The report over `folds` (each its own section) and all of them together (`overall`).
pub fn build_report(strategy: &str, folds: &[FoldInput], opts: &ReportOptions) -> Report {
    let all: Vec<&FoldInput> = folds.iter().collect();
    Report {
        schema: REPORT_SCHEMA,
        strategy: strategy.to_string(),
        in_sample: folds.iter().any(|f| f.in_sample),
        folds: folds.iter().map(|f| section(&f.name, &[f], opts)).collect(),
        overall: section("overall", &all, opts),
        notes: vec![
            "Fees: Kalshi's taker fee per fill, rounded up to the cent per fill (at least the \
             per-order accumulator's total)."
                .into(),
            "Intervals: bootstrap 95% over markets; per-trade figures divide the per-market \
             interval by the mean trades per market."
                .into(),
            "Model vs mid: every model step of the labelled markets; the regression's errors \
             are clustered by market."
                .into(),
        ],
    }
}
