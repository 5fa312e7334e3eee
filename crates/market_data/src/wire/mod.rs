//! Wire types: hand-written serde structs mirroring Kalshi's JSON (API.md), kept apart from
//! domain types (STYLE.md). Current fixed-point fields (`*_dollars`, `*_fp`) are parsed first,
//! the legacy integer fields (cents, whole contracts) are kept as fallbacks, and accessor
//! methods return exact [`Price`]/[`Count`]/[`Money`] values. Unknown fields are ignored, and
//! string enums have an `Other(String)` catch-all, because Kalshi adds fields and values.

pub(crate) mod de;
pub mod market;
pub mod orders;
pub mod portfolio;
pub mod ws;

use std::fmt;

use pipeline::money::{Count, Price};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize, Serializer};

pub use de::{WireNumber, WireTime};

/// A legacy integer-cents price field, as a [`Price`] (out of range: absent).
fn cents(v: Option<i64>) -> Option<Price> {
    v.and_then(|c| Price::from_cents(c).ok())
}
pub use market::*;
pub use orders::*;
pub use portfolio::*;
pub use ws::*;

/// One book level `[price, size]`. Parses `["0.4200","13.00"]` (current), `["0.4200",13]`
/// (legacy `*_dollars`) and `[42,13]` (legacy cents); serialises as the current string pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Level {
    pub price: Price,
    pub size: Count,
}

impl Level {
    pub fn new(price: Price, size: Count) -> Level {
        Level { price, size }
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Level;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [price, size] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Level, A::Error> {
                let price: de::PriceFlex = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let size: de::CountFlex = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(1, &self))?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(3, &self));
                }
                Ok(Level {
                    price: price.0,
                    size: size.0,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.price)?;
        t.serialize_element(&self.size)?;
        t.end()
    }
}

/// A level list where an empty side may be `null` or absent.
pub(crate) fn levels_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Level>, D::Error> {
    Ok(Option::<Vec<Level>>::deserialize(d)?.unwrap_or_default())
}

/// A list that may be `null`.
pub(crate) fn vec_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// The inner error object `{code, message, details, service}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// `error` is an object normally, and a bare string on 429 (`{"error":"too many requests"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorField {
    Object(ErrorBody),
    Text(String),
}

/// Kalshi's error envelope `{"error": …}`. Also accepts a flat `{code, message, …}` body (the
/// OpenAPI `ErrorResponse` without the wrapper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEnvelope {
    pub error: ErrorField,
}

impl ErrorEnvelope {
    /// Parses an error body; `None` if it is not JSON of either form.
    pub fn parse(body: &str) -> Option<ErrorEnvelope> {
        #[derive(Deserialize)]
        struct Wrapped {
            error: ErrorField,
        }
        if let Ok(w) = serde_json::from_str::<Wrapped>(body) {
            return Some(ErrorEnvelope { error: w.error });
        }
        let flat: ErrorBody = serde_json::from_str(body).ok()?;
        (flat.code.is_some() || flat.message.is_some()).then_some(ErrorEnvelope {
            error: ErrorField::Object(flat),
        })
    }

    /// The error as an object (a text error becomes its `message`).
    pub fn body(&self) -> ErrorBody {
        match &self.error {
            ErrorField::Object(b) => b.clone(),
            ErrorField::Text(t) => ErrorBody {
                message: Some(t.clone()),
                ..ErrorBody::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_forms() {
        let l: Vec<Level> =
            serde_json::from_str(r#"[["0.4200","13.00"],["0.0100",200],[56,17]]"#).unwrap();
        assert_eq!(
            l[0],
            Level::new(Price::from_cents(42).unwrap(), Count::from_contracts(13))
        );
        assert_eq!(l[1].size, Count::from_contracts(200));
        assert_eq!(l[2].price, Price::from_cents(56).unwrap());
        assert_eq!(
            serde_json::to_string(&l[0]).unwrap(),
            r#"["0.4200","13.00"]"#
        );
        assert!(serde_json::from_str::<Level>(r#"["0.42"]"#).is_err());
        assert!(serde_json::from_str::<Level>(r#"["0.42","1","2"]"#).is_err());
        assert!(serde_json::from_str::<Level>(r#"[0.42, 1]"#).is_err());
    }

    #[test]
    fn error_envelopes() {
        let e = ErrorEnvelope::parse(
            r#"{"error":{"code":"authentication_error","message":"authentication_error","details":"rpc error: code = Unauthenticated desc = INCORRECT_API_KEY_SIGNATURE"}}"#,
        )
        .unwrap();
        let b = e.body();
        assert_eq!(b.code.as_deref(), Some("authentication_error"));
        assert!(b.details.unwrap().contains("INCORRECT_API_KEY_SIGNATURE"));
        let e = ErrorEnvelope::parse(r#"{"error":"too many requests"}"#).unwrap();
        assert_eq!(e.error, ErrorField::Text("too many requests".into()));
        assert_eq!(e.body().message.as_deref(), Some("too many requests"));
        let flat = ErrorEnvelope::parse(r#"{"code":"market_not_found","message":"nope"}"#).unwrap();
        assert_eq!(flat.body().code.as_deref(), Some("market_not_found"));
        assert!(ErrorEnvelope::parse("<html>bad gateway</html>").is_none());
        assert!(ErrorEnvelope::parse("{}").is_none());
    }
}
