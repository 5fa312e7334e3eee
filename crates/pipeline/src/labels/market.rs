//! A market's settlement facts as Kalshi states them (API.md §4.1, §4.5, §5.6), and how they
//! become a label or an unresolved entry.
//!
//! [`MarketOutcome`] is the one shape every source is reduced to: an archived REST market
//! object, a `market_lifecycle_v2` determination in a capture, or a market fetched by
//! `sync_labels`. [`MarketOutcome::classify`] applies one rule set to all of them, the same
//! rules the sidecar path uses ([`Label::from_market`]), so a market labels the same way
//! whichever file it was found in.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::ids::MarketTicker;
use crate::money::Price;
use crate::schema::markets::{ident_problem, MarketRecord, MarketResult, MarketStatus};
use crate::schema::{Label, LabelSource, RecordSource, Unresolved, UnresolvedReason};

/// The settlement-relevant fields of one market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketOutcome {
    pub ticker: MarketTicker,
    /// Kalshi's `status` (`active`, `closed`, `determined`, `finalized`, …); `None` when the
    /// source did not record it (e.g. an archive that kept only results).
    pub status: Option<MarketStatus>,
    /// `yes`, `no`, `scalar`, `void`; `None` for Kalshi's `""` (not determined yet).
    pub result: Option<MarketResult>,
    /// YES payout per contract (`settlement_value_dollars`), once determined.
    pub settlement_value: Option<Price>,
    pub close_time: Option<DateTime<Utc>>,
}

impl MarketOutcome {
    /// A market with only its ticker known.
    pub fn new(ticker: MarketTicker) -> MarketOutcome {
        MarketOutcome {
            ticker,
            status: None,
            result: None,
            settlement_value: None,
            close_time: None,
        }
    }

    /// Reads a Kalshi market object (`GET /markets` item, `{"market": …}` inner object, an
    /// archived copy): `ticker` (or `market_ticker`), `status`, `result`,
    /// `settlement_value_dollars` (or a `settlement_value` dollar string, or legacy integer
    /// cents), `close_time`. Unknown fields are ignored. `fallback_ticker` is used when the
    /// object has no ticker field (archives keyed by ticker); when both are present they must
    /// agree. Errors name the field.
    pub fn from_json(
        obj: &Map<String, Value>,
        fallback_ticker: Option<&str>,
    ) -> Result<MarketOutcome, String> {
        let ticker = match (
            opt_str(obj, "ticker")?.or(opt_str(obj, "market_ticker")?),
            fallback_ticker,
        ) {
            (Some(t), Some(key)) if t != key => {
                return Err(format!(
                    "field `ticker` is {t:?} but the entry's key is {key:?}"
                ))
            }
            (Some(t), _) => t,
            (None, Some(key)) => key,
            (None, None) => return Err("missing field `ticker`".into()),
        };
        if let Some(p) = ident_problem(ticker) {
            return Err(format!("field `ticker` {p}"));
        }
        let status = opt_str(obj, "status")?.map(MarketStatus::parse);
        let result = opt_str(obj, "result")?.map(parse_result);
        let settlement_value = match obj.get("settlement_value_dollars") {
            Some(v) if !v.is_null() => Some(dollars_value(v, "settlement_value_dollars")?),
            _ => match obj.get("settlement_value") {
                Some(v) if !v.is_null() => Some(settlement_value(v)?),
                _ => None,
            },
        };
        let close_time = match opt_str(obj, "close_time")? {
            Some(s) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| format!("field `close_time`: {e}: {s:?}"))?
                    .with_timezone(&Utc),
            ),
            None => match obj.get("close_ts") {
                Some(v) if !v.is_null() => Some(unix_seconds(v, "close_ts")?),
                _ => None,
            },
        };
        Ok(MarketOutcome {
            ticker: MarketTicker::new(ticker),
            status,
            result,
            settlement_value,
            close_time,
        })
    }

    /// Labels the market, or says why it cannot be labelled:
    ///
    /// - `yes`/`no` with a status at or past determination (`determined`, `amended`,
    ///   `finalized`, `settled`), an unknown newer status, or no recorded status → a label,
    ///   unless `settlement_value` contradicts the result (`inconsistent`);
    /// - `disputed` → `disputed` (the result may still change);
    /// - `yes`/`no` while the status says the market is not determined yet (`active`,
    ///   `closed`, …) → `not_settled` (a result must not run ahead of the lifecycle);
    /// - `scalar` → `scalar`; `void` (or a `voided` status) → `voided`;
    /// - no result → `not_settled`, with the status as detail.
    pub fn classify(&self, source: LabelSource) -> Result<Label, Unresolved> {
        let unresolved = |reason, detail: String| Unresolved {
            ticker: self.ticker.clone(),
            reason,
            detail: Some(detail),
        };
        if let Some(MarketStatus::Other(s)) = &self.status {
            if matches!(s.to_ascii_lowercase().as_str(), "void" | "voided") {
                return Err(unresolved(UnresolvedReason::Voided, format!("status {s}")));
            }
        }
        if let (Some(MarketResult::Yes | MarketResult::No), Some(status)) =
            (&self.result, &self.status)
        {
            if status.phase().is_some_and(|p| p < 3) {
                let r = self.result.as_ref().map(|r| r.as_str()).unwrap_or("");
                return Err(unresolved(
                    UnresolvedReason::NotSettled,
                    format!("result {r} but status {status}"),
                ));
            }
        }
        let rec = self.to_record();
        Label::from_market(&rec, source)
    }

    /// The same facts as a (validation-free) sidecar record, for [`Label::from_market`].
    fn to_record(&self) -> MarketRecord {
        MarketRecord {
            ts_ms: 0,
            ticker: self.ticker.clone(),
            event_ticker: None,
            series_ticker: None,
            status: self.status.clone(),
            event: None,
            source: RecordSource::Rest,
            open_time: None,
            close_time: self.close_time,
            strike_type: None,
            floor_strike: None,
            cap_strike: None,
            result: self.result.clone(),
            settlement_value: self.settlement_value,
            expiration_value: None,
            determined_time: None,
            settled_time: None,
        }
    }
}

/// Kalshi's `result`, with `voided` read as `void` (any case).
pub(crate) fn parse_result(s: &str) -> MarketResult {
    let lower = s.trim().to_ascii_lowercase();
    match lower.as_str() {
        "voided" => MarketResult::Void,
        _ => MarketResult::parse(&lower),
    }
}

/// An optional string field: absent, `null` and `""` are `None`; another type is an error.
fn opt_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!(
            "field `{field}`: expected a string, got {}",
            short(other)
        )),
    }
}

fn dollars_value(v: &Value, field: &str) -> Result<Price, String> {
    match v {
        Value::String(s) => {
            Price::parse_dollars(s).map_err(|e| format!("field `{field}`: {e}: {s:?}"))
        }
        other => Err(format!(
            "field `{field}`: expected a dollar string such as \"1.0000\", got {}",
            short(other)
        )),
    }
}

/// `settlement_value`: a dollar string (current lifecycle messages), or legacy integer cents.
fn settlement_value(v: &Value) -> Result<Price, String> {
    match v {
        Value::String(_) => dollars_value(v, "settlement_value"),
        Value::Number(n) => match n.as_i64() {
            Some(c) => Price::from_cents(c)
                .map_err(|e| format!("field `settlement_value` (legacy cents): {e}")),
            None => Err(format!(
                "field `settlement_value`: expected a dollar string or integer cents, got {n}"
            )),
        },
        other => Err(format!(
            "field `settlement_value`: expected a dollar string or integer cents, got {}",
            short(other)
        )),
    }
}

/// Unix seconds (an integer) as a UTC instant.
pub(crate) fn unix_seconds(v: &Value, field: &str) -> Result<DateTime<Utc>, String> {
    v.as_i64()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .ok_or_else(|| {
            format!(
                "field `{field}`: expected Unix seconds (an integer), got {}",
                short(v)
            )
        })
}

/// A JSON value for an error message, cut to a readable length.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Outcome;
    use serde_json::json;

    fn outcome(v: Value) -> MarketOutcome {
        MarketOutcome::from_json(v.as_object().unwrap(), None).unwrap()
    }

    fn reason(v: Value) -> UnresolvedReason {
        outcome(v)
            .classify(LabelSource::Archive)
            .unwrap_err()
            .reason
    }

    #[test]
    fn current_market_objects_classify() {
        let m = outcome(json!({"ticker":"KX-1","status":"finalized","result":"yes",
            "settlement_value_dollars":"1.0000","close_time":"2026-05-11T06:00:00Z"}));
        let l = m.classify(LabelSource::Api).unwrap();
        assert_eq!(l.result, Outcome::Yes);
        assert_eq!(l.source, Some(LabelSource::Api));
        assert_eq!(l.close_time, Some("2026-05-11T06:00:00Z".parse().unwrap()));

        for status in ["determined", "amended", "settled", "finalized"] {
            let l = outcome(json!({"ticker":"KX-1","status":status,"result":"no"}))
                .classify(LabelSource::Archive)
                .unwrap();
            assert_eq!(l.result, Outcome::No, "{status}");
        }
        // No status recorded (an archive of results only): the result stands.
        assert!(outcome(json!({"ticker":"KX-1","result":"yes"}))
            .classify(LabelSource::Archive)
            .is_ok());
    }

    #[test]
    fn unresolved_reasons() {
        use UnresolvedReason::*;
        assert_eq!(
            reason(json!({"ticker":"A","status":"active","result":""})),
            NotSettled
        );
        assert_eq!(reason(json!({"ticker":"A","status":"closed"})), NotSettled);
        assert_eq!(
            reason(json!({"ticker":"A","status":"closed","result":"yes"})),
            NotSettled
        );
        assert_eq!(
            reason(json!({"ticker":"A","status":"finalized","result":"scalar",
                          "settlement_value_dollars":"0.4200"})),
            Scalar
        );
        assert_eq!(
            reason(json!({"ticker":"A","status":"finalized","result":"void"})),
            Voided
        );
        assert_eq!(
            reason(json!({"ticker":"A","status":"finalized","result":"Voided"})),
            Voided
        );
        assert_eq!(reason(json!({"ticker":"A","status":"voided"})), Voided);
        assert_eq!(
            reason(json!({"ticker":"A","status":"disputed","result":"yes"})),
            Disputed
        );
        assert_eq!(
            reason(json!({"ticker":"A","status":"finalized","result":"yes",
                          "settlement_value_dollars":"0.0000"})),
            Inconsistent
        );
        let u = outcome(json!({"ticker":"A","status":"active","result":""}))
            .classify(LabelSource::Archive)
            .unwrap_err();
        assert_eq!(u.detail.as_deref(), Some("status active"));
    }

    #[test]
    fn settlement_value_spellings() {
        let sv = |v: Value| {
            outcome(json!({"ticker":"A","settlement_value":v}))
                .settlement_value
                .unwrap()
        };
        assert_eq!(sv(json!("1.0000")), Price::ONE);
        assert_eq!(sv(json!(100)), Price::ONE, "legacy integer cents");
        assert_eq!(sv(json!(0)), Price::ZERO);
        // settlement_value_dollars wins over the legacy field.
        let m = outcome(json!({"ticker":"A","settlement_value_dollars":"0.0000",
                               "settlement_value":100}));
        assert_eq!(m.settlement_value, Some(Price::ZERO));
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |v: Value, key: Option<&str>| {
            MarketOutcome::from_json(v.as_object().unwrap(), key).unwrap_err()
        };
        assert!(err(json!({"status":"active"}), None).contains("ticker"));
        assert!(err(json!({"ticker":"A","status":5}), None).contains("`status`"));
        assert!(
            err(json!({"ticker":"A","settlement_value_dollars":"2.5"}), None)
                .contains("settlement_value_dollars")
        );
        assert!(
            err(json!({"ticker":"A","settlement_value":0.5}), None).contains("settlement_value")
        );
        assert!(err(json!({"ticker":"A","close_time":"yesterday"}), None).contains("close_time"));
        assert!(err(json!({"ticker":"A"}), Some("B")).contains("key"));
        assert!(err(json!({"ticker":"A B"}), None).contains("whitespace"));
        // The key stands in for a missing ticker field.
        let m = MarketOutcome::from_json(json!({"result":"no"}).as_object().unwrap(), Some("K-1"))
            .unwrap();
        assert_eq!(m.ticker.as_str(), "K-1");
        // Lifecycle close_ts (Unix seconds).
        let m = outcome(json!({"market_ticker":"A","close_ts":1778478300}));
        assert_eq!(m.close_time, Some("2026-05-11T05:45:00Z".parse().unwrap()));
    }
}
