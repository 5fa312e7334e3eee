//! Tickers, ids and timestamps in Kalshi's formats.

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::America::New_York;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Event and market tickers of the window closing at `close_ms` (API.md §7): event
/// `SERIES-{YY}{MON}{DD}{HHMM}` in US Eastern local time of the close, market = event +
/// `-{MM}` (the close minute). Windows closing off the whole minute (test markets of a few
/// seconds) append the seconds to the event part (`…{HHMM}{SS}`) so every ticker is unique.
pub fn window_tickers(series: &str, close_ms: i64) -> (String, String) {
    let utc = utc(close_ms);
    let et = New_York.from_utc_datetime(&utc.naive_utc());
    let mut event = format!(
        "{series}-{:02}{}{:02}{:02}{:02}",
        et.year() % 100,
        MONTHS[et.month0() as usize],
        et.day(),
        et.hour(),
        et.minute()
    );
    if close_ms % 60_000 != 0 {
        event.push_str(&format!("{:02}", et.second()));
        let ms = close_ms.rem_euclid(1000);
        if ms != 0 {
            event.push_str(&format!("{ms:03}"));
        }
    }
    let market = format!("{event}-{:02}", et.minute());
    (event, market)
}

pub fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// RFC 3339 UTC with `Z`: whole seconds when the time has no milliseconds, else 3 decimals.
pub fn rfc3339(ms: i64) -> String {
    let fmt = if ms % 1000 == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    utc(ms).to_rfc3339_opts(fmt, true)
}

/// A UUID-shaped, deterministic id: `kind` separates id spaces (orders, trades, markets).
pub fn uuid_like(seed: u64, kind: u64, n: u64) -> String {
    let a = splitmix64(seed ^ kind.wrapping_mul(0xA24B_AED4_963E_E407) ^ n);
    let b = splitmix64(a ^ n.rotate_left(17));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn tickers_match_kalshi_examples() {
        // API.md §7 community captures.
        assert_eq!(
            window_tickers("KXBTC15M", ms("2026-09-07T23:00:00Z")),
            (
                "KXBTC15M-26SEP071900".to_string(),
                "KXBTC15M-26SEP071900-00".to_string()
            )
        );
        assert_eq!(
            window_tickers("KXBTC15M", ms("2026-09-07T23:15:00Z")).1,
            "KXBTC15M-26SEP071915-15"
        );
        // EST in winter: 02:00Z Feb 2 = 21:00 Feb 1.
        assert_eq!(
            window_tickers("KXBTC15M", ms("2026-02-02T02:00:00Z")).1,
            "KXBTC15M-26FEB012100-00"
        );
        assert_eq!(
            window_tickers("KXBTC15M", ms("2026-08-17T05:30:00Z")).1,
            "KXBTC15M-26AUG170130-30"
        );
        // Sub-minute windows stay unique.
        let (e, m) = window_tickers("KXTEST", ms("2026-09-07T23:15:05Z"));
        assert_eq!(e, "KXTEST-26SEP07191505");
        assert_eq!(m, "KXTEST-26SEP07191505-15");
        assert_ne!(
            window_tickers("KXTEST", ms("2026-09-07T23:15:05Z")).1,
            window_tickers("KXTEST", ms("2026-09-07T23:15:10Z")).1
        );
    }

    #[test]
    fn timestamps_and_ids() {
        assert_eq!(rfc3339(ms("2026-08-17T05:15:00Z")), "2026-08-17T05:15:00Z");
        assert_eq!(rfc3339(1_776_624_217_662), "2026-04-19T18:43:37.662Z");
        let a = uuid_like(1, 1, 5);
        assert_eq!(a.len(), 36);
        assert_eq!(a, uuid_like(1, 1, 5));
        assert_ne!(a, uuid_like(1, 1, 6));
        assert_ne!(a, uuid_like(1, 2, 5));
        assert_ne!(a, uuid_like(2, 1, 5));
    }
}
