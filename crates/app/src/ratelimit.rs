//! Rate limits: a token bucket per API token, and one per client address for requests without a valid token (so
//! a flood of bad tokens is refused before it reaches the database). Buckets live in each API process; across
//! replicas the limit holds because each replica enforces its share: the configured rate divided by the number of
//! API replicas (`POLARIS_API_REPLICAS`, which the Helm chart sets from `api.replicas`). Load balancing spreads a
//! client's requests over the replicas, so together they admit about the configured rate. Over the limit:
//! `429 RATE_LIMITED` with `Retry-After`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

use crate::error::AppError;

/// Who a bucket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateKey {
    Token(Uuid),
    /// A client without a valid token, by its address.
    Address(IpAddr),
}

pub struct RateLimiter<K = RateKey> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// `per_second` requests a second on average, bursts of up to `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// This replica's share of a limit of `per_second` (bursts of `burst`) shared by `replicas` replicas.
    pub fn share(per_second: u32, burst: u32, replicas: u32) -> Self {
        let replicas = replicas.max(1);
        Self::new(per_second.div_ceil(replicas), burst.div_ceil(replicas))
    }

    /// Takes one request from the key's bucket, or says how many seconds until one is available.
    pub fn take(&self, token: K, now: Instant) -> Result<(), u64> {
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

pub fn check(limiter: &RateLimiter, key: RateKey) -> Result<(), AppError> {
    limiter.take(key, Instant::now()).map_err(AppError::RateLimited)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_bucket_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3);
        let (a, b) = (RateKey::Token(Uuid::new_v4()), RateKey::Token(Uuid::new_v4()));
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take(a, t0).unwrap();
        }
        assert_eq!(limiter.take(a, t0), Err(1), "the fourth is refused with a retry hint");
        limiter.take(b, t0).expect("another token has its own bucket");
        limiter.take(a, t0 + Duration::from_millis(500)).expect("half a second refills one at 2/s");
        assert!(limiter.take(a, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn replicas_each_enforce_their_share_so_together_they_admit_the_limit() {
        let replicas: Vec<RateLimiter> = (0..4).map(|_| RateLimiter::share(100, 200, 4)).collect();
        let token = RateKey::Token(Uuid::new_v4());
        let t0 = Instant::now();
        // A client whose requests are spread over the four replicas gets the burst once, not four times.
        let admitted = (0..1000).filter(|i| replicas[i % 4].take(token, t0).is_ok()).count();
        assert_eq!(admitted, 200);
        let one = RateLimiter::<RateKey>::share(10, 20, 0);
        assert!((0..20).all(|_| one.take(token, t0).is_ok()), "0 replicas is read as 1");
    }
}
