//! When to try again: exponential backoff with jitter, and the marketplace's `Retry-After`.

use std::time::{Duration, SystemTime};

/// First retry delay after a server error, timeout or connection failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest delay between two tries of the same update.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured; a longer one (or a date far ahead) is cut to this, so that a
/// bogus header cannot stall a channel for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The delay before try number `attempt + 1` (`attempt` ≥ 1 failures so far): `base · 2^(attempt-1)`
/// capped at `cap`, then "equal jitter": half of it fixed, the other half scaled by `jitter`
/// (a number in `[0, 1)`, e.g. from a seeded generator). Spreading retries this way keeps many
/// updates that failed together from hitting the marketplace together again.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Parses a `Retry-After` header value: delay-seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2026 07:28:00 GMT"`), relative to `now`. A date in the past means "now"
/// (zero). The result is capped at [`MAX_RETRY_AFTER`]. `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let delay = if value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else if let Ok(seconds) = value.parse::<f64>() {
        // Not RFC 9110, but some APIs send fractions ("0.5"); negative or NaN means no advice.
        if !(seconds.is_finite() && seconds >= 0.0) {
            return None;
        }
        Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64()))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// A small, fast, seedable generator for jitter (xorshift64*); not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and `salt` (e.g. the channel index), so processes differ.
    pub(crate) fn from_clock(salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self((nanos ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    /// The next number in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_within_half() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        assert_eq!(backoff(1, base, cap, 0.0), Duration::from_millis(50));
        let almost = backoff(1, base, cap, 0.999_999);
        assert!(
            almost > Duration::from_micros(99_990) && almost < base,
            "{almost:?}"
        );
        assert_eq!(backoff(2, base, cap, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(3, base, cap, 0.5), Duration::from_millis(300));
        assert_eq!(backoff(7, base, cap, 0.0), Duration::from_millis(2500));
        // Capped: 100 ms · 2^9 = 51.2 s > 5 s.
        assert_eq!(backoff(10, base, cap, 1.0), cap);
        assert_eq!(backoff(u32::MAX, base, cap, 0.0), cap / 2);
        // Attempt 0 behaves like the first retry.
        assert_eq!(backoff(0, base, cap, 0.0), Duration::from_millis(50));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.25", now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // In the past: go now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        // Absurd values are capped.
        assert_eq!(
            parse_retry_after("99999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        for bad in ["", "soon", "-1", "NaN", "1e400x"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut j = Jitter::from_clock(7);
        for _ in 0..10_000 {
            let x = j.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
