//! `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, as milliseconds to wait.
//! The dates are parsed by the `httpdate` crate (IMF-fixdate and the obsolete RFC 850 and
//! asctime forms recipients must accept).

use std::time::{Duration, UNIX_EPOCH};

/// Parses a `Retry-After` value (delta-seconds or HTTP-date) into milliseconds from `now_ms`.
/// A date in the past means "now" (0). Unparseable values give `None`.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of failing: the backoff caps them.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    // Fractional seconds are not in RFC 9110, but some proxies send them.
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() == 1
    {
        let secs: f64 = v.parse().ok()?;
        return Some((secs * 1000.0).ceil() as u64);
    }
    let at = parse_http_date(v)?;
    Some(at.saturating_sub(now_ms))
}

/// An HTTP-date as epoch milliseconds.
fn parse_http_date(s: &str) -> Option<u64> {
    // No clock is read: the date is UNIX_EPOCH plus what the text says (fine on wasm32).
    let at = httpdate::parse_http_date(s).ok()?;
    let since: Duration = at.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("0", NOW), Some(0));
        assert_eq!(parse_retry_after(" 120 ", NOW), Some(120_000));
        assert_eq!(parse_retry_after("1.5", NOW), Some(1500));
        assert_eq!(
            parse_retry_after("99999999999999999999999", NOW),
            Some(u64::MAX)
        );
        assert_eq!(parse_retry_after("", NOW), None);
        assert_eq!(parse_retry_after("-5", NOW), None);
        assert_eq!(parse_retry_after("soon", NOW), None);
        assert_eq!(parse_retry_after("1.2.3", NOW), None);
        // 2023-11-14T22:13:20Z is 1_700_000_000 s.
        let now = 1_700_000_000_000;
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(
            parse_retry_after("Tuesday, 14-Nov-23 22:14:20 GMT", now),
            Some(60_000)
        );
        assert_eq!(
            parse_retry_after("Tue Nov 14 22:13:21 2023", now),
            Some(1000)
        );
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000_000)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT"), None);
        assert_eq!(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 8:49:37 GMT"), None);
        assert_eq!(parse_http_date(""), None);
    }

    proptest! {
        #[test]
        fn imf_fixdate_round_trips(secs in 0u64..253_402_300_799) {
            let s = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            prop_assert_eq!(parse_http_date(&s), Some(secs * 1000), "{}", s);
            prop_assert_eq!(parse_retry_after(&s, secs * 1000), Some(0));
        }
    }
}
