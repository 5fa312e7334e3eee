//! What the recorder knows about the series' markets: schedule, status, last trade, volume,
//! and what the markets sidecar already says about each. Fed by REST reads (discovery) and
//! WebSocket `market_lifecycle_v2` / `ticker` messages; pure apart from the values passed in.
//!
//! Each input returns the sidecar line to append, if it taught us something: a lifecycle
//! message always does (it is an event); a REST read only when a field differs from what the
//! sidecar already holds for the market (so a poll every minute does not repeat every market).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use pipeline::ids::{MarketTicker, SeriesTicker};
use pipeline::money::{Count, Price};
use pipeline::schema::markets::{
    fold_latest, Decimal, LifecycleEvent, MarketRecord, MarketResult, MarketStatus, RecordSource,
    StrikeType,
};

use crate::wire::{
    LifecycleEvent as WireEvent, Market, MarketLifecycleMsg, MarketResult as WireResult, TickerMsg,
    WireNumber,
};

/// One market as the recorder sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub ticker: MarketTicker,
    pub open_ms: Option<i64>,
    pub close_ms: Option<i64>,
    pub status: Option<MarketStatus>,
    /// Deactivated (trading paused) by a lifecycle message or an `inactive` status.
    pub paused: bool,
    pub result: Option<MarketResult>,
    pub last_price: Option<Price>,
    pub volume: Option<Count>,
    /// The sidecar's folded state for this market (what has been written).
    known: Option<MarketRecord>,
}

impl Tracked {
    fn new(ticker: MarketTicker) -> Tracked {
        Tracked {
            ticker,
            open_ms: None,
            close_ms: None,
            status: None,
            paused: false,
            result: None,
            last_price: None,
            volume: None,
            known: None,
        }
    }

    /// Lifecycle phase from the status: ≥ 2 means closed (or later).
    fn phase(&self) -> u8 {
        self.status
            .as_ref()
            .and_then(MarketStatus::phase)
            .unwrap_or(0)
    }

    /// Tradable at `t`: open, not yet closed, not paused.
    pub fn active_at(&self, t: i64) -> bool {
        match (self.open_ms, self.close_ms) {
            (Some(o), Some(c)) => o <= t && t < c && !self.paused && self.phase() < 2,
            _ => false,
        }
    }

    /// Closed at `t` (by the clock or by status).
    pub fn closed_at(&self, t: i64) -> bool {
        self.close_ms.is_some_and(|c| t >= c) || self.phase() >= 2
    }

    /// Paid out: nothing more will be learned.
    pub fn finalized(&self) -> bool {
        self.phase() >= 4
    }

    fn absorb(&mut self, rec: &MarketRecord) {
        if let Some(t) = rec.open_time {
            self.open_ms = Some(t.timestamp_millis());
        }
        if let Some(t) = rec.close_time {
            self.close_ms = Some(t.timestamp_millis());
        }
        if let Some(r) = &rec.result {
            self.result = Some(r.clone());
        }
        let folded = match self.known.take() {
            None => rec.clone(),
            Some(k) => fold_latest([k, rec.clone()])
                .into_values()
                .next()
                .expect("one market folded"),
        };
        self.status = folded.status.clone();
        self.known = Some(folded);
    }

    /// True if `rec` carries a field the sidecar does not already hold with that value.
    fn teaches(&self, rec: &MarketRecord) -> bool {
        let Some(k) = &self.known else { return true };
        macro_rules! new {
            ($($f:ident),*) => { false $(|| (rec.$f.is_some() && rec.$f != k.$f))* };
        }
        new!(
            event_ticker,
            series_ticker,
            status,
            open_time,
            close_time,
            strike_type,
            floor_strike,
            cap_strike,
            result,
            settlement_value,
            expiration_value,
            determined_time,
            settled_time
        )
    }
}

/// The markets of one series.
#[derive(Debug, Clone)]
pub struct Registry {
    series: SeriesTicker,
    markets: BTreeMap<MarketTicker, Tracked>,
}

fn ms_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn decimal(n: &WireNumber) -> Option<Decimal> {
    Decimal::parse(&n.to_string()).ok()
}

fn json_decimal(v: Option<&serde_json::Value>) -> Option<Decimal> {
    match v? {
        serde_json::Value::Number(n) => Decimal::parse(&n.to_string()).ok(),
        serde_json::Value::String(s) => Decimal::parse(s).ok(),
        _ => None,
    }
}

fn result(r: &Option<WireResult>) -> Option<MarketResult> {
    match r.as_ref()? {
        WireResult::Empty => None,
        other => Some(MarketResult::parse(other.as_str())),
    }
}

/// The sidecar line for a REST market object.
pub fn record_from_market(m: &Market, now_ms: i64) -> MarketRecord {
    let mut r = MarketRecord::new(now_ms.max(0), m.ticker.clone(), RecordSource::Rest)
        .expect("a ticker from the exchange is non-empty");
    r.event_ticker = Some(m.event_ticker.clone()).filter(|s| !s.trim().is_empty());
    r.series_ticker = Some(m.ticker.series());
    r.status = m.status.as_ref().map(|s| MarketStatus::parse(s.as_str()));
    r.open_time = m.open_time.map(|t| t.0);
    r.close_time = m.close_time.map(|t| t.0);
    r.strike_type = m
        .strike_type
        .as_ref()
        .map(|s| StrikeType::parse(s.as_str()));
    r.floor_strike = m.floor_strike.as_ref().and_then(decimal);
    r.cap_strike = m.cap_strike.as_ref().and_then(decimal);
    r.result = result(&m.result);
    r.settlement_value = m.settlement_value().filter(|_| r.result.is_some());
    r.expiration_value = m.expiration_value.clone().filter(|s| !s.trim().is_empty());
    r.settled_time = m.settlement_ts.map(|t| t.0);
    r
}

/// The sidecar line for a `market_lifecycle_v2` message.
pub fn record_from_lifecycle(l: &MarketLifecycleMsg, now_ms: i64) -> MarketRecord {
    let mut r = MarketRecord::new(now_ms.max(0), l.market_ticker.clone(), RecordSource::Ws)
        .expect("a ticker from the exchange is non-empty");
    r.event = Some(LifecycleEvent::parse(l.event_type.as_str()));
    r.series_ticker = Some(l.market_ticker.series());
    let secs = |s: Option<i64>| s.and_then(|s| s.checked_mul(1000)).and_then(ms_to_time);
    match &l.event_type {
        WireEvent::Created => {
            r.status = Some(MarketStatus::Initialized);
            r.open_time = secs(l.open_ts);
            r.close_time = secs(l.close_ts);
            if let Some(md) = l.additional_metadata.as_ref() {
                r.event_ticker = md
                    .get("event_ticker")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_string);
                r.strike_type = md
                    .get("strike_type")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .map(StrikeType::parse);
                r.floor_strike = json_decimal(md.get("floor_strike"));
                r.cap_strike = json_decimal(md.get("cap_strike"));
            }
        }
        WireEvent::Activated => r.status = Some(MarketStatus::Active),
        WireEvent::Deactivated => {
            r.status = Some(if l.is_deactivated == Some(false) {
                MarketStatus::Active
            } else {
                MarketStatus::Inactive
            })
        }
        WireEvent::CloseDateUpdated => r.close_time = secs(l.close_ts),
        WireEvent::Determined => {
            r.status = Some(MarketStatus::Determined);
            r.result = result(&l.result);
            r.settlement_value = l.settlement_value.filter(|_| r.result.is_some());
            r.determined_time = secs(l.determination_ts);
        }
        WireEvent::Settled => {
            r.status = Some(MarketStatus::Finalized);
            r.settled_time = secs(l.settled_ts);
        }
        WireEvent::MetadataUpdated => {
            r.strike_type = l
                .strike_type
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(StrikeType::parse);
            r.floor_strike = l.floor_strike.as_ref().and_then(decimal);
            r.cap_strike = l.cap_strike.as_ref().and_then(decimal);
        }
        WireEvent::PriceLevelStructureUpdated | WireEvent::Other(_) => {}
    }
    r
}

/// A record that fails validation (e.g. a settlement value contradicting the result) loses the
/// contradicting fields rather than being dropped; what was removed is logged.
fn sanitize(mut r: MarketRecord) -> MarketRecord {
    if let Err(e) = r.validate() {
        tracing::warn!(market = %r.ticker, error = %e, "inconsistent market data; keeping the consistent fields");
        r.settlement_value = None;
        if r.validate().is_err() {
            r.cap_strike = None;
            r.open_time = None;
        }
    }
    r
}

impl Registry {
    pub fn new(series: SeriesTicker) -> Registry {
        Registry {
            series,
            markets: BTreeMap::new(),
        }
    }

    pub fn series(&self) -> &SeriesTicker {
        &self.series
    }

    /// Whether a ticker belongs to the series being recorded.
    pub fn is_ours(&self, ticker: &MarketTicker) -> bool {
        ticker.series() == self.series
    }

    pub fn get(&self, ticker: &str) -> Option<&Tracked> {
        self.markets.get(ticker)
    }

    pub fn len(&self) -> usize {
        self.markets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.markets.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tracked> {
        self.markets.values()
    }

    /// A REST market object; returns the sidecar line if it is news.
    pub fn on_rest_market(&mut self, m: &Market, now_ms: i64) -> Option<MarketRecord> {
        if !self.is_ours(&m.ticker) {
            return None;
        }
        let rec = sanitize(record_from_market(m, now_ms));
        let t = self
            .markets
            .entry(m.ticker.clone())
            .or_insert_with(|| Tracked::new(m.ticker.clone()));
        if t.last_price.is_none() && m.volume().is_some_and(|v| v > Count::ZERO) {
            t.last_price = m.last_price();
        }
        if t.volume.is_none() {
            t.volume = m.volume();
        }
        if rec.status.as_ref() == Some(&MarketStatus::Inactive) {
            t.paused = true;
        } else if rec.status.as_ref() == Some(&MarketStatus::Active) {
            t.paused = false;
        }
        let news = t.teaches(&rec);
        t.absorb(&rec);
        news.then_some(rec)
    }

    /// A lifecycle message; returns its sidecar line (always, for our series).
    pub fn on_lifecycle(&mut self, l: &MarketLifecycleMsg, now_ms: i64) -> Option<MarketRecord> {
        if !self.is_ours(&l.market_ticker) {
            return None;
        }
        let rec = sanitize(record_from_lifecycle(l, now_ms));
        let t = self
            .markets
            .entry(l.market_ticker.clone())
            .or_insert_with(|| Tracked::new(l.market_ticker.clone()));
        match &l.event_type {
            WireEvent::Deactivated => t.paused = l.is_deactivated != Some(false),
            WireEvent::Activated => t.paused = false,
            _ => {}
        }
        t.absorb(&rec);
        Some(rec)
    }

    /// A markets-sidecar line (or a markets-list entry) read from a file: what the re-grid
    /// learns from `--markets`. Returns the line if it is news, like a REST read.
    pub fn on_record(&mut self, rec: &MarketRecord) -> Option<MarketRecord> {
        if !self.is_ours(&rec.ticker) {
            return None;
        }
        let rec = sanitize(rec.clone());
        let t = self
            .markets
            .entry(rec.ticker.clone())
            .or_insert_with(|| Tracked::new(rec.ticker.clone()));
        if rec.status.as_ref() == Some(&MarketStatus::Inactive) {
            t.paused = true;
        } else if rec.status.as_ref() == Some(&MarketStatus::Active) {
            t.paused = false;
        }
        match rec.event {
            Some(LifecycleEvent::Deactivated) if rec.status.is_none() => t.paused = true,
            Some(LifecycleEvent::Activated) => t.paused = false,
            _ => {}
        }
        let news = t.teaches(&rec);
        t.absorb(&rec);
        news.then_some(rec)
    }

    /// A `ticker` message: last trade price and volume.
    pub fn on_ticker(&mut self, m: &TickerMsg) {
        if let Some(t) = self.markets.get_mut(m.market_ticker.as_str()) {
            if let Some(v) = m.volume() {
                t.volume = Some(v);
                // The exchange quotes 0 as the "last price" of a market that never traded.
                if v > Count::ZERO {
                    if let Some(p) = m.last_price() {
                        t.last_price = Some(p);
                    }
                }
            } else if let Some(p) = m.last_price().filter(|p| *p > Price::ZERO) {
                t.last_price = Some(p);
            }
        }
    }

    /// Markets to be subscribed at `now`: from `lead_ms` before their open until their close.
    pub fn wanted(&self, now_ms: i64, lead_ms: i64) -> BTreeSet<MarketTicker> {
        self.markets
            .values()
            .filter(|t| match (t.open_ms, t.close_ms) {
                (Some(o), Some(c)) => o - lead_ms <= now_ms && now_ms < c && t.phase() < 2,
                _ => false,
            })
            .map(|t| t.ticker.clone())
            .collect()
    }

    /// Closed markets not paid out yet (polled over REST until they are, for at most
    /// `give_up_ms` after their close), so a result missed during a disconnect still reaches
    /// the sidecar.
    pub fn awaiting_result(&self, now_ms: i64, give_up_ms: i64) -> Vec<MarketTicker> {
        self.markets
            .values()
            .filter(|t| {
                !t.finalized()
                    && t.close_ms
                        .is_some_and(|c| now_ms >= c && now_ms - c < give_up_ms)
            })
            .map(|t| t.ticker.clone())
            .collect()
    }

    /// Forgets markets that are paid out, or closed more than `keep_ms` ago, and that `keep`
    /// says are done with. Returns the forgotten tickers.
    pub fn forget(
        &mut self,
        now_ms: i64,
        keep_ms: i64,
        keep: impl Fn(&MarketTicker) -> bool,
    ) -> Vec<MarketTicker> {
        let gone: Vec<MarketTicker> = self
            .markets
            .values()
            .filter(|t| {
                let old = t.close_ms.is_some_and(|c| now_ms - c > keep_ms);
                (t.finalized() || old) && !keep(&t.ticker)
            })
            .map(|t| t.ticker.clone())
            .collect();
        for t in &gone {
            self.markets.remove(t);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WsFrame;

    fn lifecycle(json: &str) -> MarketLifecycleMsg {
        let f = WsFrame::parse(&format!(
            r#"{{"type":"market_lifecycle_v2","sid":3,"msg":{json}}}"#
        ))
        .unwrap();
        match f.msg {
            crate::wire::WsMessage::MarketLifecycle(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn market(json: &str) -> Market {
        serde_json::from_str(json).unwrap()
    }

    const T0: i64 = 1_790_000_000_000;

    #[test]
    fn lifecycle_drives_schedule_status_and_sidecar_lines() {
        let mut r = Registry::new("KXT".into());
        let created = lifecycle(&format!(
            r#"{{"market_ticker":"KXT-A","event_type":"created","open_ts":{},"close_ts":{},
                "additional_metadata":{{"event_ticker":"KXT-E","strike_type":"greater_or_equal","floor_strike":null}}}}"#,
            T0 / 1000,
            T0 / 1000 + 60
        ));
        let line = r.on_lifecycle(&created, T0 - 5000).unwrap();
        assert_eq!(line.event, Some(LifecycleEvent::Created));
        assert_eq!(line.event_ticker.as_deref(), Some("KXT-E"));
        assert_eq!(line.strike_type, Some(StrikeType::GreaterOrEqual));
        assert_eq!(line.source, RecordSource::Ws);
        let t = r.get("KXT-A").unwrap();
        assert_eq!((t.open_ms, t.close_ms), (Some(T0), Some(T0 + 60_000)));
        assert!(!t.active_at(T0 - 1) && t.active_at(T0) && !t.active_at(T0 + 60_000));
        assert!(r.wanted(T0 - 10_000, 5_000).is_empty());
        assert_eq!(r.wanted(T0 - 5_000, 5_000).len(), 1);
        // Other series are ignored.
        let other = lifecycle(r#"{"market_ticker":"KXOTHER-B","event_type":"activated"}"#);
        assert!(r.on_lifecycle(&other, T0).is_none());
        assert!(r.get("KXOTHER-B").is_none());

        let meta = lifecycle(
            r#"{"market_ticker":"KXT-A","event_type":"metadata_updated","strike_type":"greater_or_equal","floor_strike":63485.16}"#,
        );
        let line = r.on_lifecycle(&meta, T0).unwrap();
        assert_eq!(line.floor_strike, Some(Decimal::parse("63485.16").unwrap()));
        let pause = lifecycle(
            r#"{"market_ticker":"KXT-A","event_type":"deactivated","is_deactivated":true}"#,
        );
        r.on_lifecycle(&pause, T0 + 1000);
        assert!(!r.get("KXT-A").unwrap().active_at(T0 + 2000));
        let resume = lifecycle(r#"{"market_ticker":"KXT-A","event_type":"activated"}"#);
        r.on_lifecycle(&resume, T0 + 3000);
        assert!(r.get("KXT-A").unwrap().active_at(T0 + 4000));
        let early = lifecycle(&format!(
            r#"{{"market_ticker":"KXT-A","event_type":"close_date_updated","close_ts":{}}}"#,
            T0 / 1000 + 30
        ));
        r.on_lifecycle(&early, T0 + 5000);
        assert!(r.get("KXT-A").unwrap().closed_at(T0 + 30_000));
        assert_eq!(
            r.awaiting_result(T0 + 31_000, 3_600_000),
            vec![MarketTicker::new("KXT-A")]
        );
        let det = lifecycle(&format!(
            r#"{{"market_ticker":"KXT-A","event_type":"determined","result":"yes","settlement_value":"1.0000","determination_ts":{}}}"#,
            T0 / 1000 + 31
        ));
        let line = r.on_lifecycle(&det, T0 + 31_500).unwrap();
        assert_eq!(line.result, Some(MarketResult::Yes));
        assert_eq!(line.settlement_value, Some(Price::ONE));
        assert_eq!(line.status, Some(MarketStatus::Determined));
        let settled = lifecycle(&format!(
            r#"{{"market_ticker":"KXT-A","event_type":"settled","settled_ts":{}}}"#,
            T0 / 1000 + 32
        ));
        r.on_lifecycle(&settled, T0 + 32_000);
        assert!(r.get("KXT-A").unwrap().finalized());
        assert!(r.awaiting_result(T0 + 33_000, 3_600_000).is_empty());
        assert_eq!(
            r.forget(T0 + 33_000, 3_600_000, |_| true),
            Vec::<MarketTicker>::new()
        );
        assert_eq!(
            r.forget(T0 + 33_000, 3_600_000, |_| false),
            vec![MarketTicker::new("KXT-A")]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn rest_reads_write_only_news_and_bad_settlement_is_dropped() {
        let mut r = Registry::new("KXT".into());
        let m = market(
            r#"{"ticker":"KXT-A","event_ticker":"KXT-E","status":"active","open_time":"2026-09-21T13:20:00Z",
                "close_time":"2026-09-21T13:21:00Z","floor_strike":100.5,"result":"","last_price_dollars":"0.4200",
                "volume_fp":"12.00"}"#,
        );
        let first = r.on_rest_market(&m, T0).unwrap();
        assert_eq!(first.status, Some(MarketStatus::Active));
        assert_eq!(first.result, None);
        assert_eq!(first.floor_strike, Some(Decimal::parse("100.5").unwrap()));
        assert!(r.on_rest_market(&m, T0 + 60_000).is_none(), "no news");
        let t = r.get("KXT-A").unwrap();
        assert_eq!(t.last_price, Some(Price::parse_dollars("0.42").unwrap()));
        assert_eq!(t.volume, Some(Count::parse("12").unwrap()));
        // Determined, with a settlement value that contradicts the result: kept without it.
        let d = market(
            r#"{"ticker":"KXT-A","event_ticker":"KXT-E","status":"determined","result":"no",
                "settlement_value_dollars":"1.0000"}"#,
        );
        let line = r.on_rest_market(&d, T0 + 120_000).unwrap();
        assert_eq!(line.result, Some(MarketResult::No));
        assert_eq!(line.settlement_value, None);
        line.validate().unwrap();
        // A lagging REST cache does not move the status back.
        let stale = market(r#"{"ticker":"KXT-A","event_ticker":"KXT-E","status":"active"}"#);
        r.on_rest_market(&stale, T0 + 130_000);
        assert_eq!(
            r.get("KXT-A").unwrap().status,
            Some(MarketStatus::Determined)
        );
    }

    #[test]
    fn ticker_messages_update_price_and_volume() {
        let mut r = Registry::new("KXT".into());
        let m = market(r#"{"ticker":"KXT-A","event_ticker":"KXT-E","status":"active"}"#);
        r.on_rest_market(&m, T0);
        let tick = |json: &str| -> TickerMsg {
            match WsFrame::parse(&format!(r#"{{"type":"ticker","sid":2,"msg":{json}}}"#))
                .unwrap()
                .msg
            {
                crate::wire::WsMessage::Ticker(t) => t,
                other => panic!("{other:?}"),
            }
        };
        r.on_ticker(&tick(
            r#"{"market_ticker":"KXT-A","price_dollars":"0.0000","volume_fp":"0.00"}"#,
        ));
        let t = r.get("KXT-A").unwrap();
        assert_eq!((t.last_price, t.volume), (None, Some(Count::ZERO)));
        r.on_ticker(&tick(
            r#"{"market_ticker":"KXT-A","price_dollars":"0.5500","volume_fp":"3.00"}"#,
        ));
        let t = r.get("KXT-A").unwrap();
        assert_eq!(t.last_price, Some(Price::parse_dollars("0.55").unwrap()));
        assert_eq!(t.volume, Some(Count::parse("3").unwrap()));
    }
}
