//! JSON helpers for the config loader: strict parsing (duplicate keys are an error, with the
//! position), JSON paths for problem reports, short value descriptions and "did you mean"
//! suggestions for unknown fields.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `text` as JSON, rejecting an object with the same key twice (serde_json would silently
/// keep the last one, so a duplicated, edited limit would hide the first).
pub(crate) fn parse_strict(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<StrictValue>(text).map(|v| v.0)
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// `parent.key`, or `parent["odd key"]` when the key is not a plain identifier.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_owned())),
    }
}

/// A value as compact JSON, cut to a readable length, for "got …" in messages.
pub(crate) fn describe(v: &Value) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// The message for a field that is not in `known`: a suggestion when one is close, else the list.
pub(crate) fn unknown_field_message(key: &str, known: &[&str]) -> String {
    match suggest(key, known) {
        Some(s) => format!("unknown field (did you mean {s:?}?)"),
        None => format!("unknown field (known fields: {})", known.join(", ")),
    }
}

/// The closest of `known` to `key`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (osa_distance(&lower, k), *k))
        .filter(|(d, k)| *d <= 2 && *d * 3 <= k.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: edits, where swapping two adjacent characters counts one.
pub(crate) fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parse_accepts_ordinary_json() {
        let v = parse_strict(r#"{"a": [1, -2, 3.5, "x", null, true], "b": {"c": {}}}"#).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": [1, -2, 3.5, "x", null, true], "b": {"c": {}}})
        );
    }

    #[test]
    fn strict_parse_rejects_duplicate_keys_with_position() {
        let text = "{\n  \"a\": 1,\n  \"b\": {\"x\": 1, \"x\": 2}\n}";
        let e = parse_strict(text).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"x\""), "{e}");
        assert_eq!(e.line(), 3);
        assert!(e.column() > 0);
    }

    #[test]
    fn paths_join_plain_and_odd_keys() {
        assert_eq!(join("", "exchange"), "exchange");
        assert_eq!(join("exchange", "prod"), "exchange.prod");
        assert_eq!(join("exchange", "my env"), "exchange[\"my env\"]");
        assert_eq!(join("", ""), "[\"\"]");
    }

    #[test]
    fn describe_truncates_long_values() {
        assert_eq!(describe(&Value::String("fast".into())), "\"fast\"");
        let long = Value::String("x".repeat(200));
        let d = describe(&long);
        assert!(d.ends_with('…'));
        assert_eq!(d.chars().count(), 61);
    }

    #[test]
    fn suggestions_catch_typos_but_not_strangers() {
        let known = ["exchange", "series", "snapshot_ms", "rest_base", "ws_url"];
        assert_eq!(suggest("exchnage", &known), Some("exchange"));
        assert_eq!(suggest("rest_bse", &known), Some("rest_base"));
        assert_eq!(suggest("Series", &known), Some("series"));
        assert_eq!(suggest("snapshot", &known), None);
        assert_eq!(suggest("zzz", &known), None);
        assert_eq!(osa_distance("ab", "ba"), 1);
        assert_eq!(osa_distance("kitten", "sitting"), 3);
        assert_eq!(osa_distance("", "abc"), 3);
    }
}
