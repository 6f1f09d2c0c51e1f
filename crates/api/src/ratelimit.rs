//! A per-token rate limit: a token bucket per API token, in the memory of each API process (so N replicas allow
//! N times the rate). Over the limit: `429 RATE_LIMITED` with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

use crate::error::ApiError;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` requests a second on average, bursts of up to `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the token's bucket, or says how many seconds until one is available.
    pub fn take(&self, token: Uuid, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() > 100_000 {
            buckets.retain(|_, (level, at)| *level < self.burst || now.duration_since(*at).as_secs() < 60);
        }
        let (level, at) = buckets.entry(token).or_insert((self.burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *level) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

pub fn check(limiter: &RateLimiter, token: Uuid) -> Result<(), ApiError> {
    limiter.take(token, Instant::now()).map_err(ApiError::RateLimited)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_bucket_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take(a, t0).unwrap();
        }
        assert_eq!(limiter.take(a, t0), Err(1), "the fourth is refused with a retry hint");
        limiter.take(b, t0).expect("another token has its own bucket");
        limiter.take(a, t0 + Duration::from_millis(500)).expect("half a second refills one at 2/s");
        assert!(limiter.take(a, t0 + Duration::from_millis(500)).is_err());
    }
}
