//! When to retry a failed provider call: full-jitter exponential backoff that honours
//! `Retry-After`.
//!
//! Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads the retries of
//! many sessions hit by the same outage over the whole window instead of synchronising them.
//! The random number is passed in, so the schedule is reproducible in tests.

/// Backoff window of the first retry.
pub const BASE_MS: u64 = 1000;
/// Largest backoff window, however many attempts failed.
pub const CAP_MS: u64 = 30_000;
/// Attempts per stage, the first one included (protocol: "attempts per stage 4").
pub const MAX_ATTEMPTS: u32 = 4;
/// Longest `Retry-After` we honour; a provider asking for an hour gets ten minutes.
pub const MAX_RETRY_AFTER_MS: u64 = 10 * 60 * 1000;

/// Delay before retry number `attempt` (1 = the first retry).
///
/// Without `retry_after_ms`: `rand01 * min(cap_ms, base_ms * 2^(attempt-1))`.
/// With it: at least `min(retry_after_ms, MAX_RETRY_AFTER_MS)`.
/// `rand01` is clamped to `[0, 1]`; a NaN counts as 1 (the longest, safest wait).
pub fn retry_delay_ms(
    attempt: u32,
    base_ms: u64,
    cap_ms: u64,
    retry_after_ms: Option<u64>,
    rand01: f64,
) -> u64 {
    let window = backoff_window_ms(attempt, base_ms, cap_ms);
    let r = if rand01.is_nan() {
        1.0
    } else {
        rand01.clamp(0.0, 1.0)
    };
    // f64 has 53 bits of mantissa, plenty for millisecond windows; `min` guards rounding up.
    let jittered = ((window as f64) * r) as u64;
    let jittered = jittered.min(window);
    match retry_after_ms {
        Some(ra) => jittered.max(ra.min(MAX_RETRY_AFTER_MS)),
        None => jittered,
    }
}

/// `min(cap_ms, base_ms * 2^(attempt-1))` without overflow; attempt 0 is treated as 1.
pub fn backoff_window_ms(attempt: u32, base_ms: u64, cap_ms: u64) -> u64 {
    let shift = attempt.saturating_sub(1);
    let grown = if shift >= 64 {
        if base_ms == 0 {
            0
        } else {
            u64::MAX
        }
    } else {
        base_ms.saturating_mul(1u64 << shift)
    };
    grown.min(cap_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn windows_double_then_cap() {
        let w: Vec<u64> = (1..=7)
            .map(|a| backoff_window_ms(a, BASE_MS, CAP_MS))
            .collect();
        assert_eq!(w, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff_window_ms(0, BASE_MS, CAP_MS), 1000);
        assert_eq!(backoff_window_ms(u32::MAX, BASE_MS, CAP_MS), CAP_MS);
        assert_eq!(backoff_window_ms(65, 0, CAP_MS), 0);
        assert_eq!(backoff_window_ms(64, 3, u64::MAX), u64::MAX);
    }

    #[test]
    fn full_jitter_scales_window() {
        assert_eq!(retry_delay_ms(1, BASE_MS, CAP_MS, None, 0.0), 0);
        assert_eq!(retry_delay_ms(1, BASE_MS, CAP_MS, None, 0.5), 500);
        assert_eq!(retry_delay_ms(3, BASE_MS, CAP_MS, None, 0.25), 1000);
        assert_eq!(retry_delay_ms(3, BASE_MS, CAP_MS, None, 1.0), 4000);
        assert_eq!(retry_delay_ms(10, BASE_MS, CAP_MS, None, 0.5), 15_000);
    }

    #[test]
    fn odd_random_inputs_are_clamped() {
        assert_eq!(retry_delay_ms(2, BASE_MS, CAP_MS, None, -3.0), 0);
        assert_eq!(retry_delay_ms(2, BASE_MS, CAP_MS, None, 7.0), 2000);
        assert_eq!(retry_delay_ms(2, BASE_MS, CAP_MS, None, f64::NAN), 2000);
        assert_eq!(
            retry_delay_ms(2, BASE_MS, CAP_MS, None, f64::INFINITY),
            2000
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        assert_eq!(retry_delay_ms(1, BASE_MS, CAP_MS, Some(5000), 0.1), 5000);
        // The jittered window wins when it is longer.
        assert_eq!(retry_delay_ms(5, BASE_MS, CAP_MS, Some(100), 1.0), 16_000);
        assert_eq!(
            retry_delay_ms(1, BASE_MS, CAP_MS, Some(3_600_000), 0.0),
            MAX_RETRY_AFTER_MS
        );
        assert_eq!(retry_delay_ms(1, BASE_MS, CAP_MS, Some(0), 0.0), 0);
    }

    proptest! {
        #[test]
        fn delay_within_window(attempt in 0u32..200, base in 0u64..100_000, cap in 0u64..10_000_000, r in 0.0f64..=1.0) {
            let d = retry_delay_ms(attempt, base, cap, None, r);
            prop_assert!(d <= cap);
            prop_assert!(d <= backoff_window_ms(attempt, base, cap));
        }

        #[test]
        fn delay_monotone_in_random(attempt in 1u32..20, r1 in 0.0f64..=1.0, r2 in 0.0f64..=1.0) {
            let (lo, hi) = if r1 <= r2 { (r1, r2) } else { (r2, r1) };
            prop_assert!(retry_delay_ms(attempt, BASE_MS, CAP_MS, None, lo) <= retry_delay_ms(attempt, BASE_MS, CAP_MS, None, hi));
        }

        #[test]
        fn window_never_shrinks(attempt in 1u32..1000, base in 0u64..u64::MAX, cap in 0u64..u64::MAX) {
            prop_assert!(backoff_window_ms(attempt, base, cap) <= backoff_window_ms(attempt + 1, base, cap));
        }

        #[test]
        fn retry_after_honoured_and_bounded(attempt in 0u32..u32::MAX, ra in 0u64..u64::MAX, r in proptest::num::f64::ANY) {
            let d = retry_delay_ms(attempt, BASE_MS, CAP_MS, Some(ra), r);
            prop_assert!(d >= ra.min(MAX_RETRY_AFTER_MS));
            prop_assert!(d <= MAX_RETRY_AFTER_MS.max(CAP_MS));
        }
    }
}
