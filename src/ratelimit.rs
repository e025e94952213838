//! Rate limiting of the token endpoint, per client address (DESIGN §3: 429
//! with `Retry-After`). A GCRA token bucket per address (governor), pruned
//! periodically so the table does not grow with every address ever seen.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

/// Per-address limiter for exchanges; `None` when turned off.
pub struct ExchangeLimiter {
    inner: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl ExchangeLimiter {
    /// `per_second` exchanges per second per address, bursts of twice that; 0 = off.
    pub fn new(per_second: u32) -> Self {
        let inner = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        ExchangeLimiter { inner }
    }

    /// `Ok` when `addr` may exchange now; otherwise how long to wait.
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        let Some(l) = &self.inner else { return Ok(()) };
        l.check_key(&addr).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Forgets addresses whose buckets are full again.
    pub fn prune(&self) {
        if let Some(l) = &self.inner {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address() {
        let l = ExchangeLimiter::new(1);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_err(), "burst of 2 spent");
        assert!(l.check(b).is_ok(), "another address has its own bucket");
        assert!(ExchangeLimiter::new(0).check(a).is_ok());
    }
}
