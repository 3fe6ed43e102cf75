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

/// Buckets per client (an IPv4 address, or an IPv6 /64: one host's share of a network, which
/// hands it the whole block); off when `rate_per_s` is 0.
pub(crate) struct AddressLimiter {
    rate_per_s: u32,
    burst: u32,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_client: HashMap<IpAddr, TokenBucket>,
    /// Clients tracked before idle (full) buckets are pruned next: twice as many as the last
    /// prune kept, so that clients which stay busy do not make every request scan them all.
    prune_at: usize,
}

/// Clients tracked before idle (full) buckets are first pruned.
const PRUNE_AT: usize = 10_000;

/// The client `addr` belongs to: the address, or the /64 of an IPv6 one.
pub(crate) fn client_of(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

impl AddressLimiter {
    pub(crate) fn new(rate_per_s: u32, burst: u32) -> Self {
        Self {
            rate_per_s,
            burst,
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    /// Takes one token for `addr`; false when it is over its rate.
    pub(crate) fn check(&self, addr: Option<IpAddr>) -> bool {
        let (Some(addr), true) = (addr, self.rate_per_s > 0) else {
            return true;
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.by_client.len() >= buckets.prune_at {
            buckets.by_client.retain(|_, b| !b.is_full_at(now));
            buckets.prune_at = (buckets.by_client.len() * 2).max(PRUNE_AT);
        }
        buckets
            .by_client
            .entry(client_of(addr))
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

    #[test]
    fn an_ipv6_client_is_its_64_block() {
        let limiter = AddressLimiter::new(1, 1);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(limiter.check(ip("2001:db8:1:2::1")));
        // Another address of the same /64: the same client, out of tokens.
        assert!(!limiter.check(ip("2001:db8:1:2:ffff:0:0:7")));
        // Another /64: another client.
        assert!(limiter.check(ip("2001:db8:1:3::1")));
        // An IPv4-mapped address is its IPv4 client.
        assert!(limiter.check(ip("10.0.0.1")));
        assert!(!limiter.check(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn busy_clients_are_pruned_now_and_then_not_on_every_request() {
        let limiter = AddressLimiter::new(1, 10);
        let client = |i: u32| Some(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
        // More busy clients than the first threshold: none of their buckets is full.
        for i in 0..(PRUNE_AT as u32 + 10) {
            assert!(limiter.check(client(i)));
        }
        let buckets = limiter.buckets.lock();
        assert_eq!(buckets.by_client.len(), PRUNE_AT + 10, "busy ones are kept");
        assert_eq!(
            buckets.prune_at,
            2 * PRUNE_AT,
            "the next prune waits for twice the clients it kept"
        );
    }
}
