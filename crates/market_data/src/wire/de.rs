//! Tolerant field parsers shared by the wire structs.
//!
//! Kalshi moved from integer cents/counts to fixed-point strings in 2026 (API.md §0). These
//! helpers accept either form where a field has carried both, always producing exact
//! fixed-point values: a string is parsed as a decimal (`"0.5600"` dollars, `"10.00"`
//! contracts) and an integer is read as legacy cents or whole contracts. No float is accepted
//! for a price or a count.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use pipeline::money::{Count, Price};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A price given either as a dollar string (`"0.4200"`) or as legacy integer cents (`42`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PriceFlex(pub Price);

impl<'de> Deserialize<'de> for PriceFlex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PriceFlex;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a dollar string such as \"0.4200\" or integer cents")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PriceFlex, E> {
                Price::parse_dollars(s).map(PriceFlex).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PriceFlex, E> {
                let c = i64::try_from(v).map_err(E::custom)?;
                Price::from_cents(c).map(PriceFlex).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PriceFlex, E> {
                Price::from_cents(v).map(PriceFlex).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A contract count given either as a fixed-point string (`"10.00"`) or legacy whole
/// contracts (`10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CountFlex(pub Count);

impl<'de> Deserialize<'de> for CountFlex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CountFlex;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count string such as \"10.00\" or integer contracts")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CountFlex, E> {
                Count::parse(s).map(CountFlex).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CountFlex, E> {
                let c = i64::try_from(v).map_err(E::custom)?;
                Ok(CountFlex(Count::from_contracts(c)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CountFlex, E> {
                Ok(CountFlex(Count::from_contracts(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `Option<Count>` from either a fixed-point string or an integer (for fields such as the V2
/// order response's `fill_count`, documented as strings but integers in older shapes).
pub(crate) fn opt_count_flex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Count>, D::Error> {
    Ok(Option::<CountFlex>::deserialize(d)?.map(|c| c.0))
}

/// `Option<Price>` from either a dollar string or integer cents.
pub(crate) fn opt_price_flex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Price>, D::Error> {
    Ok(Option::<PriceFlex>::deserialize(d)?.map(|c| c.0))
}

/// A timestamp given as an RFC 3339 string or as Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireTime(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for WireTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 time or Unix seconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WireTime, E> {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| WireTime(t.with_timezone(&Utc)))
                    .map_err(|e| E::custom(format!("bad time {s:?}: {e}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireTime, E> {
                Utc.timestamp_opt(v, 0)
                    .single()
                    .map(WireTime)
                    .ok_or_else(|| E::custom(format!("bad unix time {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireTime, E> {
                self.visit_i64(i64::try_from(v).map_err(E::custom)?)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for WireTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A numeric value that is not money: a strike or an index level (`63485.16`). Kept as the
/// JSON number exactly as received (its text round-trips); a numeric string is accepted too.
#[derive(Clone, PartialEq, Eq)]
pub struct WireNumber(serde_json::Number);

impl WireNumber {
    pub fn as_number(&self) -> &serde_json::Number {
        &self.0
    }
    /// As a float, for display and features (strikes are index levels, not money).
    pub fn to_f64(&self) -> f64 {
        self.0.as_f64().unwrap_or(f64::NAN)
    }
}

impl fmt::Debug for WireNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for WireNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for WireNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => Ok(WireNumber(n)),
            serde_json::Value::String(s) => match serde_json::from_str::<serde_json::Value>(&s) {
                Ok(serde_json::Value::Number(n)) => Ok(WireNumber(n)),
                _ => Err(de::Error::custom(format!("not a number: {s:?}"))),
            },
            other => Err(de::Error::custom(format!("not a number: {other}"))),
        }
    }
}

impl Serialize for WireNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Declares a string enum with an `Other(String)` catch-all, so a value Kalshi adds later
/// parses instead of failing the whole payload.
macro_rules! string_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this client does not know (kept verbatim).
            Other(String),
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$var => $s,)*
                    Self::Other(s) => s.as_str(),
                }
            }
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $($s => Self::$var,)*
                    other => Self::Other(other.to_string()),
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok(Self::from_wire(&s))
            }
        }
    };
}
pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_forms() {
        let p: PriceFlex = serde_json::from_str("\"0.4200\"").unwrap();
        assert_eq!(p.0, Price::from_cents(42).unwrap());
        let p: PriceFlex = serde_json::from_str("42").unwrap();
        assert_eq!(p.0, Price::from_cents(42).unwrap());
        assert!(
            serde_json::from_str::<PriceFlex>("0.42").is_err(),
            "floats refused"
        );
        assert!(serde_json::from_str::<PriceFlex>("101").is_err());
        let c: CountFlex = serde_json::from_str("\"10.50\"").unwrap();
        assert_eq!(c.0, Count::from_centis(1050));
        let c: CountFlex = serde_json::from_str("-3").unwrap();
        assert_eq!(c.0, Count::from_contracts(-3));
        let t: WireTime = serde_json::from_str("\"2026-07-10T00:00:00.550463Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-07-10T00:00:00.550463Z\""
        );
        let t2: WireTime = serde_json::from_str("1778477474").unwrap();
        assert_eq!(t2.0.timestamp(), 1_778_477_474);
        let n: WireNumber = serde_json::from_str("63485.16").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "63485.16");
        let n: WireNumber = serde_json::from_str("\"52200\"").unwrap();
        assert_eq!(n.to_string(), "52200");
        assert!(serde_json::from_str::<WireNumber>("\"abc\"").is_err());
    }
}
