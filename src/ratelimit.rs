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

/// At most `per_second` log lines a second for one kind of event: enough
/// for an operator to see it happen, too few for a flood to drown the log.
pub struct LogThrottle {
    per_second: u32,
    /// (current second, lines logged in it, events suppressed since the last line).
    state: std::sync::Mutex<(i64, u32, u64)>,
}

impl LogThrottle {
    /// A throttle of `per_second` lines a second.
    pub const fn new(per_second: u32) -> Self {
        LogThrottle {
            per_second,
            state: std::sync::Mutex::new((i64::MIN, 0, 0)),
        }
    }

    /// `Some(n)` when a line may be logged at `now_s` (n events were
    /// suppressed since the last line); `None` when this one is suppressed.
    pub fn allow(&self, now_s: i64) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 != now_s {
            st.0 = now_s;
            st.1 = 0;
        }
        if st.1 >= self.per_second {
            st.2 += 1;
            return None;
        }
        st.1 += 1;
        Some(std::mem::take(&mut st.2))
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

    #[test]
    fn log_throttle_counts_what_it_suppresses() {
        let t = LogThrottle::new(2);
        assert_eq!(t.allow(10), Some(0));
        assert_eq!(t.allow(10), Some(0));
        assert_eq!(t.allow(10), None);
        assert_eq!(t.allow(10), None);
        assert_eq!(t.allow(11), Some(2));
    }
}
