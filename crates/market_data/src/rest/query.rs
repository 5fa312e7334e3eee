//! Query builders for the list endpoints. Timestamps are Unix seconds (API.md §3.1).

use pipeline::ids::{MarketTicker, SeriesTicker};

/// The `status` *filter* of `GET /markets` / `GET /events` (responses use other names, see
/// [`crate::wire::MarketStatus`]). Only one per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarketStatusFilter {
    Unopened,
    Open,
    Paused,
    Closed,
    Settled,
}

impl MarketStatusFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            MarketStatusFilter::Unopened => "unopened",
            MarketStatusFilter::Open => "open",
            MarketStatusFilter::Paused => "paused",
            MarketStatusFilter::Closed => "closed",
            MarketStatusFilter::Settled => "settled",
        }
    }
}

pub(crate) type Pairs = Vec<(String, String)>;

fn push<T: ToString>(q: &mut Pairs, k: &str, v: &Option<T>) {
    if let Some(v) = v {
        q.push((k.to_string(), v.to_string()));
    }
}

/// `GET /markets` (and `/historical/markets`) filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketsQuery {
    pub series_ticker: Option<SeriesTicker>,
    /// A single event (the current spec takes one; use `tickers` for lists).
    pub event_ticker: Option<String>,
    pub tickers: Vec<MarketTicker>,
    pub status: Option<MarketStatusFilter>,
    pub min_created_ts: Option<i64>,
    pub max_created_ts: Option<i64>,
    pub min_close_ts: Option<i64>,
    pub max_close_ts: Option<i64>,
    pub min_settled_ts: Option<i64>,
    pub max_settled_ts: Option<i64>,
    pub min_updated_ts: Option<i64>,
    /// `only` or `exclude` (combo markets).
    pub mve_filter: Option<String>,
    /// Page size (max 1000).
    pub limit: Option<u32>,
}

impl MarketsQuery {
    pub fn series(s: impl Into<SeriesTicker>) -> MarketsQuery {
        MarketsQuery {
            series_ticker: Some(s.into()),
            ..Default::default()
        }
    }
    pub fn with_status(mut self, s: MarketStatusFilter) -> Self {
        self.status = Some(s);
        self
    }
    pub(crate) fn pairs(&self) -> Pairs {
        let mut q = Pairs::new();
        push(&mut q, "series_ticker", &self.series_ticker);
        push(&mut q, "event_ticker", &self.event_ticker);
        if !self.tickers.is_empty() {
            let t: Vec<&str> = self.tickers.iter().map(MarketTicker::as_str).collect();
            q.push(("tickers".into(), t.join(",")));
        }
        push(
            &mut q,
            "status",
            &self.status.map(MarketStatusFilter::as_str),
        );
        push(&mut q, "min_created_ts", &self.min_created_ts);
        push(&mut q, "max_created_ts", &self.max_created_ts);
        push(&mut q, "min_close_ts", &self.min_close_ts);
        push(&mut q, "max_close_ts", &self.max_close_ts);
        push(&mut q, "min_settled_ts", &self.min_settled_ts);
        push(&mut q, "max_settled_ts", &self.max_settled_ts);
        push(&mut q, "min_updated_ts", &self.min_updated_ts);
        push(&mut q, "mve_filter", &self.mve_filter);
        push(&mut q, "limit", &self.limit);
        q
    }
}

/// `GET /events` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsQuery {
    pub series_ticker: Option<SeriesTicker>,
    pub status: Option<MarketStatusFilter>,
    pub with_nested_markets: bool,
    pub min_close_ts: Option<i64>,
    /// Page size (max 200).
    pub limit: Option<u32>,
}

impl EventsQuery {
    pub(crate) fn pairs(&self) -> Pairs {
        let mut q = Pairs::new();
        push(&mut q, "series_ticker", &self.series_ticker);
        push(
            &mut q,
            "status",
            &self.status.map(MarketStatusFilter::as_str),
        );
        if self.with_nested_markets {
            q.push(("with_nested_markets".into(), "true".into()));
        }
        push(&mut q, "min_close_ts", &self.min_close_ts);
        push(&mut q, "limit", &self.limit);
        q
    }
}

/// `GET /markets/trades` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TradesQuery {
    pub ticker: Option<MarketTicker>,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    pub limit: Option<u32>,
}

impl TradesQuery {
    pub(crate) fn pairs(&self) -> Pairs {
        let mut q = Pairs::new();
        push(&mut q, "ticker", &self.ticker);
        push(&mut q, "min_ts", &self.min_ts);
        push(&mut q, "max_ts", &self.max_ts);
        push(&mut q, "limit", &self.limit);
        q
    }
}

/// Filters shared by the portfolio lists (`orders`, `fills`, `settlements`, `positions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortfolioQuery {
    pub ticker: Option<MarketTicker>,
    pub event_ticker: Option<String>,
    pub order_id: Option<String>,
    /// Orders only: `resting | canceled | executed`.
    pub status: Option<String>,
    /// Positions only: `all | unsettled | settled`.
    pub settlement_status: Option<String>,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    pub subaccount: Option<i64>,
    pub limit: Option<u32>,
}

impl PortfolioQuery {
    pub fn ticker(t: impl Into<MarketTicker>) -> PortfolioQuery {
        PortfolioQuery {
            ticker: Some(t.into()),
            ..Default::default()
        }
    }
    pub(crate) fn pairs(&self) -> Pairs {
        let mut q = Pairs::new();
        push(&mut q, "ticker", &self.ticker);
        push(&mut q, "event_ticker", &self.event_ticker);
        push(&mut q, "order_id", &self.order_id);
        push(&mut q, "status", &self.status);
        push(&mut q, "settlement_status", &self.settlement_status);
        push(&mut q, "min_ts", &self.min_ts);
        push(&mut q, "max_ts", &self.max_ts);
        push(&mut q, "subaccount", &self.subaccount);
        push(&mut q, "limit", &self.limit);
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_query_pairs() {
        let mut q = MarketsQuery::series("KXBTC15M").with_status(MarketStatusFilter::Open);
        q.tickers = vec!["A".into(), "B".into()];
        q.min_close_ts = Some(1_700_000_000);
        q.limit = Some(1000);
        let p = q.pairs();
        let s: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            s,
            vec![
                "series_ticker=KXBTC15M",
                "tickers=A,B",
                "status=open",
                "min_close_ts=1700000000",
                "limit=1000"
            ]
        );
        assert!(MarketsQuery::default().pairs().is_empty());
        let e = EventsQuery {
            with_nested_markets: true,
            status: Some(MarketStatusFilter::Settled),
            ..Default::default()
        };
        assert_eq!(
            e.pairs(),
            vec![
                ("status".into(), "settled".into()),
                ("with_nested_markets".into(), "true".into())
            ]
        );
    }
}
