//! Fixed-point money: prices, amounts and contract counts.
//!
//! Money never passes through `f64`. Kalshi sends prices and money as decimal dollar strings
//! (`"0.9820"`, up to 6 decimal places for portfolio money) and counts as 2-dp strings
//! (`"10.00"`). They are parsed straight into integers:
//!
//! | type    | unit                     | range                    |
//! |---------|--------------------------|--------------------------|
//! | [`Price`] | micro-dollars (1e-6 $) | 0 ..= 1_000_000 ($0–$1)  |
//! | [`Money`] | micro-dollars (1e-6 $) | any `i64`                |
//! | [`Count`] | centi-contracts (0.01) | any `i64` (signed: deltas, positions) |
//!
//! The only float conversions are [`Price::to_cents_f64`]/[`Price::from_cents_f64`] (the on-disk
//! snapshot format stores cents as JSON numbers, exact for up to 4 decimals of a cent) and
//! [`Price::to_prob`] (features and the model).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-dollars per dollar.
pub const MICROS_PER_DOLLAR: i64 = 1_000_000;
/// Micro-dollars per cent.
pub const MICROS_PER_CENT: i64 = 10_000;
/// Centi-contracts per contract.
pub const CENTIS_PER_CONTRACT: i64 = 100;

/// Why a fixed-point value could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixedError {
    #[error("empty number")]
    Empty,
    #[error("invalid number {0:?}")]
    Invalid(String),
    #[error("{0:?} has more than {1} decimal places")]
    TooPrecise(String, u32),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
    #[error("price {0} micro-dollars is outside $0..$1")]
    PriceOutOfRange(i64),
}

/// Parses a decimal string (`"-12.3400"`, `"5"`, `".5"`) into an integer scaled by `10^dp`.
/// More than `dp` decimal places is an error unless the extra digits are zeros.
pub fn parse_decimal(s: &str, dp: u32) -> Result<i64, FixedError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(FixedError::Empty);
    }
    let (neg, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(FixedError::Invalid(s.to_string()));
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(FixedError::Invalid(s.to_string()));
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > dp as usize {
        return Err(FixedError::TooPrecise(s.to_string(), dp));
    }
    let scale = 10i128.pow(dp);
    let mut v: i128 = 0;
    for b in int_part.bytes() {
        v = v * 10 + i128::from(b - b'0');
        if v > i128::from(i64::MAX) {
            return Err(FixedError::OutOfRange(s.to_string()));
        }
    }
    v *= scale;
    let mut frac: i128 = 0;
    for b in frac_trimmed.bytes() {
        frac = frac * 10 + i128::from(b - b'0');
    }
    frac *= 10i128.pow(dp - frac_trimmed.len() as u32);
    v += frac;
    if neg {
        v = -v;
    }
    i64::try_from(v).map_err(|_| FixedError::OutOfRange(s.to_string()))
}

/// Formats an integer scaled by `10^dp` with exactly `dp` decimals (`dp` = 0 gives no point).
pub fn format_decimal(v: i64, dp: u32) -> String {
    let neg = v < 0;
    let a = v.unsigned_abs();
    let scale = 10u64.pow(dp);
    let int = a / scale;
    let frac = a % scale;
    let sign = if neg { "-" } else { "" };
    if dp == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac:0width$}", width = dp as usize)
    }
}

/// A contract price in micro-dollars, `0 ..= 1_000_000` ($0.00 to $1.00), YES or NO leg.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(i64);

impl Price {
    pub const ZERO: Price = Price(0);
    pub const ONE: Price = Price(MICROS_PER_DOLLAR);

    /// Checked constructor from micro-dollars.
    pub fn from_micros(micros: i64) -> Result<Price, FixedError> {
        if (0..=MICROS_PER_DOLLAR).contains(&micros) {
            Ok(Price(micros))
        } else {
            Err(FixedError::PriceOutOfRange(micros))
        }
    }

    /// From legacy integer cents (`yes_bid: 42`).
    pub fn from_cents(cents: i64) -> Result<Price, FixedError> {
        Price::from_micros(cents.saturating_mul(MICROS_PER_CENT))
    }

    /// Parses a dollar string such as `"0.9820"` (up to 6 dp).
    pub fn parse_dollars(s: &str) -> Result<Price, FixedError> {
        Price::from_micros(parse_decimal(s, 6)?)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// The other leg: a YES price `p` is a NO price `1 − p`.
    pub fn complement(self) -> Price {
        Price(MICROS_PER_DOLLAR - self.0)
    }

    /// Dollars with `dp` decimals (Kalshi uses 4: `"0.5600"`); exact when `dp` ≥ the value's
    /// precision, otherwise an error rather than a silent rounding.
    pub fn to_dollars_string(self, dp: u32) -> String {
        debug_assert!(dp <= 6);
        let drop = 10i64.pow(6 - dp);
        if self.0 % drop == 0 {
            format_decimal(self.0 / drop, dp)
        } else {
            format_decimal(self.0, 6)
        }
    }

    /// Kalshi's request/response form: 4 dp, or more if the value needs it.
    pub fn to_dollars(self) -> String {
        self.to_dollars_string(4)
    }

    /// Cents as a float, for the on-disk snapshot format (`98.2`). Exact decimal text through
    /// serde_json's shortest round-trip float formatting.
    pub fn to_cents_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_CENT as f64
    }

    /// Inverse of [`Price::to_cents_f64`]: rounds to the nearest micro-dollar, which is exact for
    /// any cent value written with up to 4 decimals.
    pub fn from_cents_f64(cents: f64) -> Result<Price, FixedError> {
        if !cents.is_finite() {
            return Err(FixedError::Invalid(cents.to_string()));
        }
        let micros = (cents * MICROS_PER_CENT as f64).round();
        if !(0.0..=MICROS_PER_DOLLAR as f64).contains(&micros) {
            return Err(FixedError::PriceOutOfRange(micros as i64));
        }
        Price::from_micros(micros as i64)
    }

    /// The price as a probability in `[0, 1]`: the one float conversion for features.
    pub fn to_prob(self) -> f64 {
        self.0 as f64 / MICROS_PER_DOLLAR as f64
    }

    /// Whole cents, if the price is on the cent grid.
    pub fn whole_cents(self) -> Option<i64> {
        (self.0 % MICROS_PER_CENT == 0).then_some(self.0 / MICROS_PER_CENT)
    }

    pub fn as_money(self) -> Money {
        Money(self.0)
    }
}

impl fmt::Debug for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Price(${})", self.to_dollars())
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_dollars())
    }
}

impl FromStr for Price {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Price::parse_dollars(s)
    }
}

/// Serialises as Kalshi's dollar string (`"0.5600"`).
impl Serialize for Price {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_dollars())
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Price::parse_dollars(&s).map_err(serde::de::Error::custom)
    }
}

/// A signed amount of money in micro-dollars (balances, costs, fees, P&L).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_micros(micros: i64) -> Money {
        Money(micros)
    }

    pub const fn from_cents(cents: i64) -> Money {
        Money(cents * MICROS_PER_CENT)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Parses a dollar string such as `"123.4500"` or `"-0.000123"` (up to 6 dp).
    pub fn parse_dollars(s: &str) -> Result<Money, FixedError> {
        Ok(Money(parse_decimal(s, 6)?))
    }

    /// Dollars with 4 decimals, or 6 when needed (exact).
    pub fn to_dollars(self) -> String {
        if self.0 % 100 == 0 {
            format_decimal(self.0 / 100, 4)
        } else {
            format_decimal(self.0, 6)
        }
    }

    /// Rounds up (towards +∞) to a whole cent.
    pub fn ceil_to_cent(self) -> Money {
        Money(
            self.0.div_euclid(MICROS_PER_CENT) * MICROS_PER_CENT
                + if self.0.rem_euclid(MICROS_PER_CENT) > 0 {
                    MICROS_PER_CENT
                } else {
                    0
                },
        )
    }

    /// Rounds down (towards −∞) to a whole cent.
    pub fn floor_to_cent(self) -> Money {
        Money(self.0.div_euclid(MICROS_PER_CENT) * MICROS_PER_CENT)
    }

    /// Whole cents, if on the cent grid.
    pub fn whole_cents(self) -> Option<i64> {
        (self.0 % MICROS_PER_CENT == 0).then_some(self.0 / MICROS_PER_CENT)
    }

    pub fn checked_add(self, o: Money) -> Option<Money> {
        self.0.checked_add(o.0).map(Money)
    }

    /// `price × count`, exact (micro-dollars × centi-contracts / 100). Rounds toward zero at
    /// the micro-dollar, which only matters for sub-micro products that Kalshi never produces.
    pub fn notional(price: Price, count: Count) -> Money {
        Money(((price.0 as i128 * count.0 as i128) / CENTIS_PER_CONTRACT as i128) as i64)
    }

    /// Dollars as a float: for reports and features only, never for bookkeeping.
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_DOLLAR as f64
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, o: Money) -> Money {
        Money(self.0 + o.0)
    }
}
impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, o: Money) -> Money {
        Money(self.0 - o.0)
    }
}
impl std::ops::Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}
impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, o: Money) {
        self.0 += o.0;
    }
}
impl std::ops::SubAssign for Money {
    fn sub_assign(&mut self, o: Money) {
        self.0 -= o.0;
    }
}
impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        Money(iter.map(|m| m.0).sum())
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money(${})", self.to_dollars())
    }
}
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_dollars())
    }
}
impl FromStr for Money {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse_dollars(s)
    }
}
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_dollars())
    }
}
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Money::parse_dollars(&s).map_err(serde::de::Error::custom)
    }
}

/// A number of contracts in centi-contracts (Kalshi's `*_fp` strings have 2 dp). Signed, so it
/// also carries order-book deltas and net positions (+YES / −NO).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Count(i64);

impl Count {
    pub const ZERO: Count = Count(0);

    pub const fn from_centis(centis: i64) -> Count {
        Count(centis)
    }

    /// From legacy whole contracts (`count: 10`).
    pub const fn from_contracts(n: i64) -> Count {
        Count(n * CENTIS_PER_CONTRACT)
    }

    pub fn centis(self) -> i64 {
        self.0
    }

    /// Parses `"10.00"`, `"-54.00"`, `"3"` (up to 2 dp).
    pub fn parse(s: &str) -> Result<Count, FixedError> {
        Ok(Count(parse_decimal(s, 2)?))
    }

    /// Kalshi's form, always 2 dp: `"10.00"`.
    pub fn to_fp_string(self) -> String {
        format_decimal(self.0, 2)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
    pub fn abs(self) -> Count {
        Count(self.0.abs())
    }
    pub fn min(self, o: Count) -> Count {
        Count(self.0.min(o.0))
    }

    /// Contracts as a float: for the on-disk snapshot sizes and features only.
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / CENTIS_PER_CONTRACT as f64
    }

    /// Inverse of [`Count::to_f64`], rounding to the nearest centi-contract (exact for 2-dp
    /// values).
    pub fn from_f64(v: f64) -> Result<Count, FixedError> {
        if !v.is_finite() || v.abs() > 1e15 {
            return Err(FixedError::Invalid(v.to_string()));
        }
        Ok(Count((v * CENTIS_PER_CONTRACT as f64).round() as i64))
    }
}

impl std::ops::Add for Count {
    type Output = Count;
    fn add(self, o: Count) -> Count {
        Count(self.0 + o.0)
    }
}
impl std::ops::Sub for Count {
    type Output = Count;
    fn sub(self, o: Count) -> Count {
        Count(self.0 - o.0)
    }
}
impl std::ops::Neg for Count {
    type Output = Count;
    fn neg(self) -> Count {
        Count(-self.0)
    }
}
impl std::ops::AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        self.0 += o.0;
    }
}
impl std::ops::SubAssign for Count {
    fn sub_assign(&mut self, o: Count) {
        self.0 -= o.0;
    }
}
impl std::iter::Sum for Count {
    fn sum<I: Iterator<Item = Count>>(iter: I) -> Count {
        Count(iter.map(|m| m.0).sum())
    }
}
impl fmt::Debug for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Count({})", self.to_fp_string())
    }
}
impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_fp_string())
    }
}
impl FromStr for Count {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Count::parse(s)
    }
}
impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_fp_string())
    }
}
impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Count::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Taker or maker side of a fill, for fees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    Taker,
    Maker,
}

/// A series fee multiplier (`Series.fee_multiplier`), fixed-point with 4 decimals (1.0 = 10_000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeeMultiplier(i64);

impl FeeMultiplier {
    pub const ONE: FeeMultiplier = FeeMultiplier(10_000);
    pub const ZERO: FeeMultiplier = FeeMultiplier(0);

    pub fn from_ten_thousandths(v: i64) -> Result<FeeMultiplier, FixedError> {
        if v < 0 {
            return Err(FixedError::OutOfRange(v.to_string()));
        }
        Ok(FeeMultiplier(v))
    }

    /// Parses `"1"`, `"0.5"`, `"0.035"` (up to 4 dp).
    pub fn parse(s: &str) -> Result<FeeMultiplier, FixedError> {
        FeeMultiplier::from_ten_thousandths(parse_decimal(s, 4)?)
    }

    pub fn ten_thousandths(self) -> i64 {
        self.0
    }
}

/// Kalshi's trading fee for one fill or order (API.md §6.2), rounded **up** to the cent:
///
/// `fee = ceil_to_cent(rate × multiplier × C × P × (1 − P))`, rate = 0.07 taker, 0.0175 maker.
///
/// Computed exactly in integers: no float touches it.
pub fn trading_fee(liq: Liquidity, multiplier: FeeMultiplier, count: Count, price: Price) -> Money {
    let raw = raw_fee_e22(liq, multiplier, count, price);
    // One cent is 1e20 units of 1e-22 dollars.
    Money::from_cents(ceil_div(raw, 100_000_000_000_000_000_000) as i64)
}

/// The raw (unrounded) fee rounded up to the micro-dollar. The simulator's per-order fee
/// accumulator charges `ceil_to_cent(cumulative raw) − already charged`, so many small fills
/// converge to the single-fill fee (API.md §6.2).
pub fn raw_fee_micros(
    liq: Liquidity,
    multiplier: FeeMultiplier,
    count: Count,
    price: Price,
) -> Money {
    let raw = raw_fee_e22(liq, multiplier, count, price);
    // One micro-dollar is 1e16 units of 1e-22 dollars.
    Money::from_micros(ceil_div(raw, 10_000_000_000_000_000) as i64)
}

/// `rate × M × |C| × P × (1−P)` in units of 1e-22 dollars, exact: rate and M in 1e-4, C in
/// 1e-2, P and 1−P in 1e-6.
fn raw_fee_e22(liq: Liquidity, multiplier: FeeMultiplier, count: Count, price: Price) -> i128 {
    let rate: i128 = match liq {
        Liquidity::Taker => 700,
        Liquidity::Maker => 175,
    };
    let c = i128::from(count.0.unsigned_abs().min(i64::MAX as u64) as i64);
    let p = i128::from(price.0);
    let q = i128::from(MICROS_PER_DOLLAR - price.0);
    rate * i128::from(multiplier.0) * c * p * q
}

fn ceil_div(v: i128, d: i128) -> i128 {
    if v <= 0 {
        0
    } else {
        (v + d - 1) / d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kalshi_strings() {
        assert_eq!(Price::parse_dollars("0.9820").unwrap().micros(), 982_000);
        assert_eq!(Price::parse_dollars("0.960").unwrap().micros(), 960_000);
        assert_eq!(Price::parse_dollars("0.96").unwrap().micros(), 960_000);
        assert_eq!(Price::parse_dollars("1.0000").unwrap(), Price::ONE);
        assert_eq!(Price::parse_dollars("0.000123").unwrap().micros(), 123);
        assert!(Price::parse_dollars("1.0001").is_err());
        assert!(Price::parse_dollars("-0.01").is_err());
        assert!(Price::parse_dollars("0.0000001").is_err());
        assert!(Price::parse_dollars("0.5.1").is_err());
        assert!(Price::parse_dollars("abc").is_err());
        assert!(Price::parse_dollars("").is_err());
        assert!(Price::parse_dollars(".").is_err());
        assert_eq!(Count::parse("10.00").unwrap().centis(), 1000);
        assert_eq!(Count::parse("-54.00").unwrap().centis(), -5400);
        assert_eq!(Count::parse("0.01").unwrap().centis(), 1);
        assert_eq!(Count::parse("3").unwrap().centis(), 300);
        assert!(Count::parse("0.001").is_err());
        assert_eq!(
            Count::parse("1.500").unwrap().centis(),
            150,
            "trailing zeros are fine"
        );
        assert_eq!(
            Money::parse_dollars("123.4500").unwrap().micros(),
            123_450_000
        );
        assert_eq!(Money::parse_dollars("-0.000001").unwrap().micros(), -1);
    }

    #[test]
    fn legacy_cents() {
        assert_eq!(
            Price::from_cents(42).unwrap(),
            Price::parse_dollars("0.42").unwrap()
        );
        assert!(Price::from_cents(101).is_err());
        assert_eq!(Count::from_contracts(10), Count::parse("10.00").unwrap());
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(Price::parse_dollars("0.56").unwrap().to_dollars(), "0.5600");
        assert_eq!(
            Price::parse_dollars("0.982").unwrap().to_dollars(),
            "0.9820"
        );
        assert_eq!(
            Price::parse_dollars("0.000123").unwrap().to_dollars(),
            "0.000123"
        );
        assert_eq!(Count::parse("-54").unwrap().to_fp_string(), "-54.00");
        assert_eq!(
            Money::parse_dollars("-1.5").unwrap().to_dollars(),
            "-1.5000"
        );
        assert_eq!(Money::from_micros(-5).to_dollars(), "-0.000005");
        assert_eq!(Price::parse_dollars("0.982").unwrap().to_cents_f64(), 98.2);
    }

    #[test]
    fn fee_examples_from_api_md() {
        let p50 = Price::parse_dollars("0.50").unwrap();
        let fee = |l, c: i64, p| trading_fee(l, FeeMultiplier::ONE, Count::from_contracts(c), p);
        // 10 contracts at $0.50 taker → 0.175 → $0.18
        assert_eq!(fee(Liquidity::Taker, 10, p50), Money::from_cents(18));
        // maker → 0.04375 → $0.05
        assert_eq!(fee(Liquidity::Maker, 10, p50), Money::from_cents(5));
        // 100 maker at 0.50 → 0.4375 → $0.44
        assert_eq!(fee(Liquidity::Maker, 100, p50), Money::from_cents(44));
        // a 1-lot at 0.50 pays 2¢; a 1-lot at 5¢ still pays 1¢
        assert_eq!(fee(Liquidity::Taker, 1, p50), Money::from_cents(2));
        assert_eq!(
            fee(Liquidity::Taker, 1, Price::from_cents(5).unwrap()),
            Money::from_cents(1)
        );
        // exactly on a cent boundary does not round up: 100 taker at 0.50 = 1.75 → $1.75
        assert_eq!(fee(Liquidity::Taker, 100, p50), Money::from_cents(175));
        // zero multiplier or zero price → no fee
        assert_eq!(
            trading_fee(
                Liquidity::Taker,
                FeeMultiplier::ZERO,
                Count::from_contracts(10),
                p50
            ),
            Money::ZERO
        );
        assert_eq!(fee(Liquidity::Taker, 10, Price::ZERO), Money::ZERO);
        // half multiplier (index series): 0.035 × 10 × 0.25 = 0.0875 → $0.09
        assert_eq!(
            trading_fee(
                Liquidity::Taker,
                FeeMultiplier::parse("0.5").unwrap(),
                Count::from_contracts(10),
                p50
            ),
            Money::from_cents(9)
        );
    }

    #[test]
    fn money_rounding() {
        assert_eq!(Money::from_micros(1).ceil_to_cent(), Money::from_cents(1));
        assert_eq!(
            Money::from_micros(10_000).ceil_to_cent(),
            Money::from_cents(1)
        );
        assert_eq!(Money::from_micros(-1).ceil_to_cent(), Money::ZERO);
        assert_eq!(
            Money::from_micros(-1).floor_to_cent(),
            Money::from_cents(-1)
        );
        assert_eq!(
            Money::notional(
                Price::parse_dollars("0.56").unwrap(),
                Count::parse("10.00").unwrap()
            ),
            Money::parse_dollars("5.60").unwrap()
        );
    }

    /// Reference fee in exact rational arithmetic through a different route: everything in
    /// 1e-22 dollars as u128, then ceil-divide by a cent.
    fn reference_fee_cents(taker: bool, m: i64, c: i64, p: i64) -> i64 {
        let rate: u128 = if taker { 7 * 100 } else { 175 };
        let num = rate * m as u128 * c as u128 * p as u128 * (1_000_000 - p) as u128;
        let cent: u128 = 10u128.pow(20);
        num.div_ceil(cent) as i64
    }

    proptest! {
        #[test]
        fn price_string_round_trip(micros in 0i64..=1_000_000) {
            let p = Price::from_micros(micros).unwrap();
            prop_assert_eq!(Price::parse_dollars(&p.to_dollars()).unwrap(), p);
            prop_assert_eq!(p.complement().complement(), p);
        }

        #[test]
        fn price_cents_float_round_trip(micros in 0i64..=1_000_000) {
            // The snapshot files store cents as JSON numbers: check the text round trip.
            let p = Price::from_micros(micros).unwrap();
            let text = serde_json::to_string(&p.to_cents_f64()).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(Price::from_cents_f64(back).unwrap(), p);
        }

        #[test]
        fn count_round_trip(centis in -1_000_000_000i64..1_000_000_000) {
            let c = Count::from_centis(centis);
            prop_assert_eq!(Count::parse(&c.to_fp_string()).unwrap(), c);
            prop_assert_eq!(Count::from_f64(c.to_f64()).unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            prop_assert_eq!(serde_json::from_str::<Count>(&json).unwrap(), c);
        }

        #[test]
        fn money_round_trip(micros in -1_000_000_000_000i64..1_000_000_000_000) {
            let m = Money::from_micros(micros);
            prop_assert_eq!(Money::parse_dollars(&m.to_dollars()).unwrap(), m);
        }

        #[test]
        fn decimal_parse_matches_integer_text(int in 0u32..1000, frac in 0u32..10_000, pad in 0usize..3) {
            let s = format!("{int}.{frac:04}{}", "0".repeat(pad));
            let v = parse_decimal(&s, 6).unwrap();
            prop_assert_eq!(v, i64::from(int) * 1_000_000 + i64::from(frac) * 100);
        }

        #[test]
        fn fee_matches_reference_and_bounds(
            taker in any::<bool>(), m in 0i64..=20_000, c in 0i64..=10_000_000, p in 0i64..=1_000_000
        ) {
            let liq = if taker { Liquidity::Taker } else { Liquidity::Maker };
            let fee = trading_fee(liq, FeeMultiplier::from_ten_thousandths(m).unwrap(),
                Count::from_centis(c), Price::from_micros(p).unwrap());
            let want = reference_fee_cents(taker, m, c, p);
            prop_assert_eq!(fee, Money::from_cents(want));
            // never below the raw fee, and less than one cent above it
            let raw = raw_fee_micros(liq, FeeMultiplier::from_ten_thousandths(m).unwrap(),
                Count::from_centis(c), Price::from_micros(p).unwrap());
            prop_assert!(fee >= raw);
            prop_assert!(fee.micros() - raw.micros() < MICROS_PER_CENT);
            // whole cents always
            prop_assert!(fee.whole_cents().is_some());
        }

        #[test]
        fn fee_symmetric_in_side(c in 0i64..=1_000_000, p in 0i64..=1_000_000) {
            let price = Price::from_micros(p).unwrap();
            let count = Count::from_centis(c);
            prop_assert_eq!(
                trading_fee(Liquidity::Taker, FeeMultiplier::ONE, count, price),
                trading_fee(Liquidity::Taker, FeeMultiplier::ONE, count, price.complement())
            );
        }
    }
}
