//! Rate limits: a token bucket per WebSocket, and a table of buckets per client address for HTTP
//! mutations. Pure bookkeeping over `Instant`s; callers decide what a refusal means.

use std::{collections::HashMap, net::IpAddr, time::Instant};

use parking_lot::Mutex;

/// Allows `rate` events per second on average, `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate_per_s: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate_per_s),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub(crate) fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// Buckets per client address; off when `rate_per_s` is 0.
pub(crate) struct AddressLimiter {
    rate_per_s: u32,
    burst: u32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// Addresses tracked before idle (full) buckets are pruned.
const PRUNE_AT: usize = 10_000;

impl AddressLimiter {
    pub(crate) fn new(rate_per_s: u32, burst: u32) -> Self {
        Self {
            rate_per_s,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `addr`; false when it is over its rate.
    pub(crate) fn check(&self, addr: Option<IpAddr>) -> bool {
        let (Some(addr), true) = (addr, self.rate_per_s > 0) else {
            return true;
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| !b.is_full_at(now));
        }
        buckets
            .entry(addr)
            .or_insert_with(|| TokenBucket::new(self.rate_per_s, self.burst))
            .take_at(now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(10, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| bucket.take_at(t0)));
        assert!(!bucket.take_at(t0));
        assert!(bucket.take_at(t0 + Duration::from_millis(100)));
        assert!(!bucket.take_at(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn addresses_have_their_own_buckets_and_zero_turns_it_off() {
        let limiter = AddressLimiter::new(1, 1);
        let a = Some(IpAddr::from([127, 0, 0, 1]));
        let b = Some(IpAddr::from([127, 0, 0, 2]));
        assert!(limiter.check(a));
        assert!(!limiter.check(a));
        assert!(limiter.check(b));
        let off = AddressLimiter::new(0, 0);
        assert!((0..100).all(|_| off.check(a)));
    }
}
