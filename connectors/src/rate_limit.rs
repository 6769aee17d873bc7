//! A token bucket: at most `burst` operations at once and `per_second` on average. Pure: the
//! caller passes the current instant, so tests control time and nothing here sleeps.
//!
//! Used to keep a connector from flooding a departmental system (polls) and to keep one
//! sender from flooding the hub (webhook pushes, Open311 posts).

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limit: per_second must be a positive finite number, got {0}")]
    Rate(f64),
    #[error("rate limit: burst must be at least 1")]
    Burst,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `per_second`.
    pub fn new(per_second: f64, burst: u32) -> Result<Self, RateLimitError> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(RateLimitError::Rate(per_second));
        }
        if burst == 0 {
            return Err(RateLimitError::Burst);
        }
        Ok(TokenBucket {
            capacity: f64::from(burst),
            per_second,
            tokens: f64::from(burst),
            last: None,
        })
    }

    /// Take one token at `now`, or say how long until one is there (nothing is taken then).
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(missing / self.per_second))
        }
    }

    /// Tokens available at `now` (for metrics and tests).
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            // An instant earlier than the last one (callers racing) adds nothing.
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate_and_wait_hint() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3).unwrap();
        for _ in 0..3 {
            assert_eq!(bucket.try_acquire(t0), Ok(()));
        }
        let wait = bucket.try_acquire(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later exactly one token is back.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(bucket.try_acquire(t1), Ok(()));
        assert!(bucket.try_acquire(t1).is_err());
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(bucket.available(t2), 3.0);
    }

    #[test]
    fn time_going_backwards_grants_nothing_and_bad_settings_are_refused() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1.0, 1).unwrap();
        assert!(bucket.try_acquire(t0).is_ok());
        assert!(bucket.try_acquire(t0 - Duration::from_secs(5)).is_err());
        assert!(bucket.try_acquire(t0).is_err());
        assert_eq!(
            TokenBucket::new(0.0, 1).unwrap_err(),
            RateLimitError::Rate(0.0)
        );
        assert_eq!(TokenBucket::new(1.0, 0).unwrap_err(), RateLimitError::Burst);
    }
}
