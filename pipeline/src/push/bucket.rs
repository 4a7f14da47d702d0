//! The per-channel token bucket: `rate_per_sec` tokens a second, at most `burst` saved up.
//!
//! Every HTTP request to a marketplace takes one token first. The bucket is pure (the caller
//! passes the clock in), so its behaviour is tested without sleeping.

use std::time::{Duration, Instant};

/// A token bucket: refills continuously at `rate` tokens per second up to `capacity`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket (`burst` requests may go out back to back at `now`).
    ///
    /// `rate_per_sec` below a millionth counts as a millionth and `burst` below 1 as 1, so the
    /// bucket always refills (the topology refuses such values anyway).
    pub fn new(rate_per_sec: f64, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            rate: if rate_per_sec.is_finite() {
                rate_per_sec.max(1e-6)
            } else {
                1e-6
            },
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.last = now;
        }
    }

    /// Takes one token at `now`, or says how long until one is there.
    ///
    /// # Errors
    /// The wait until a whole token is available (never zero).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            let wait = Duration::from_secs_f64(missing / self.rate);
            Err(wait.max(Duration::from_micros(100)))
        }
    }

    /// Gives back a token taken for a request that was not sent.
    pub fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }

    /// Tokens available at `now` (for tests and logs).
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 10, t0);
        for _ in 0..10 {
            assert!(bucket.try_take(t0).is_ok());
        }
        let wait = bucket.try_take(t0).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 0.2).abs() < 1e-6,
            "one token every 200 ms, got {wait:?}"
        );
        // 199 ms later: still not there; 200 ms later: exactly one.
        assert!(bucket.try_take(t0 + Duration::from_millis(199)).is_err());
        assert!(bucket.try_take(t0 + Duration::from_millis(200)).is_ok());
        assert!(bucket.try_take(t0 + Duration::from_millis(200)).is_err());
    }

    #[test]
    fn over_any_window_no_more_than_burst_plus_rate_times_window_go_out() {
        let t0 = Instant::now();
        let (rate, burst) = (3.5, 4u32);
        let mut bucket = TokenBucket::new(rate, burst, t0);
        let mut sent = Vec::new();
        // A greedy sender polling every millisecond for 10 s.
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            while bucket.try_take(now).is_ok() {
                sent.push(ms);
            }
        }
        for (i, &start) in sent.iter().enumerate() {
            for window_ms in [1u64, 250, 1000, 3000] {
                let n = sent[i..]
                    .iter()
                    .take_while(|&&t| t < start + window_ms)
                    .count();
                let allowed = f64::from(burst) + rate * window_ms as f64 / 1000.0;
                assert!(n as f64 <= allowed + 1e-9, "{n} sends in {window_ms} ms");
            }
        }
        // And it does use the rate: 4 + 3.5 * ~10 s.
        assert!((38..=39).contains(&sent.len()), "{}", sent.len());
    }

    #[test]
    fn never_saves_more_than_the_burst_and_refunds_are_capped() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 2, t0);
        assert_eq!(bucket.available(t0 + Duration::from_secs(60)), 2.0);
        bucket.refund();
        assert_eq!(bucket.available(t0 + Duration::from_secs(60)), 2.0);
        assert!(bucket.try_take(t0 + Duration::from_secs(60)).is_ok());
        bucket.refund();
        assert_eq!(bucket.available(t0 + Duration::from_secs(60)), 2.0);
    }

    #[test]
    fn fractional_rates_wait_seconds() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0.5, 1, t0);
        assert!(bucket.try_take(t0).is_ok());
        assert_eq!(bucket.try_take(t0), Err(Duration::from_secs(2)));
    }
}
