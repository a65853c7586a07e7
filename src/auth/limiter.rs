//! Failed logins, limited per client address and for the whole device. An address may fail
//! a few times freely, then waits twice as long after each further failure (at most a
//! minute); the device as a whole refuses logins for the rest of a minute in which too many
//! failed. Neither lasts long, so an attacker cannot lock the owner out for long, while a
//! guesser gets a few dozen tries an hour from one address instead of thousands a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may have before it has to wait.
pub const FREE_FAILURES: u32 = 5;
/// Longest wait imposed on one address.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Failures from all addresses in one minute after which logins pause until the minute ends.
pub const GLOBAL_PER_MINUTE: usize = 60;
/// An address not seen failing for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered; beyond it the stalest are forgotten (a bounded table).
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

/// The limiter's memory.
#[derive(Default)]
pub struct Limiter {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_address: HashMap<IpAddr, Record>,
    recent: std::collections::VecDeque<Instant>,
}

impl Limiter {
    /// `Err(wait)` if `address` may not try now.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut inner = self.inner.lock().expect("limiter lock never poisoned");
        while inner.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            inner.recent.pop_front();
        }
        if inner.recent.len() >= GLOBAL_PER_MINUTE
            && let Some(oldest) = inner.recent.front()
        {
            return Err(Duration::from_secs(60).saturating_sub(now.duration_since(*oldest)).max(Duration::from_secs(1)));
        }
        match inner.by_address.get(&address) {
            Some(r) if r.blocked_until > now => Err(r.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `address`.
    pub fn failed(&self, address: IpAddr, now: Instant) {
        let mut inner = self.inner.lock().expect("limiter lock never poisoned");
        inner.recent.push_back(now);
        inner.by_address.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        if inner.by_address.len() >= MAX_ADDRESSES
            && !inner.by_address.contains_key(&address)
            && let Some(stalest) = inner.by_address.iter().min_by_key(|(_, r)| r.last).map(|(a, _)| *a)
        {
            inner.by_address.remove(&stalest);
        }
        let r = inner.by_address.entry(address).or_insert(Record { failures: 0, last: now, blocked_until: now });
        r.failures += 1;
        r.last = now;
        if r.failures >= FREE_FAILURES {
            let doublings = (r.failures - FREE_FAILURES).min(6);
            r.blocked_until = now + Duration::from_secs(1 << doublings).min(MAX_WAIT);
        }
    }

    /// A successful login clears the address's record.
    pub fn succeeded(&self, address: IpAddr) {
        self.inner.lock().expect("limiter lock never poisoned").by_address.remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, n])
    }

    #[test]
    fn an_address_waits_longer_after_each_failure_up_to_a_minute_and_others_are_not_affected() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            assert!(l.check(ip(1), t0).is_ok());
            l.failed(ip(1), t0);
        }
        assert!(l.check(ip(1), t0).is_ok());
        l.failed(ip(1), t0);
        assert_eq!(l.check(ip(1), t0), Err(Duration::from_secs(1)));
        assert!(l.check(ip(2), t0).is_ok(), "another address is free");
        let mut t = t0;
        for expected in [2, 4, 8, 16, 32, 60, 60] {
            t += Duration::from_secs(61);
            l.failed(ip(1), t);
            assert_eq!(l.check(ip(1), t), Err(Duration::from_secs(expected)));
        }
        l.succeeded(ip(1));
        assert!(l.check(ip(1), t).is_ok(), "a success clears it");
    }

    #[test]
    fn a_flood_from_many_addresses_pauses_logins_for_at_most_a_minute() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for n in 0..GLOBAL_PER_MINUTE {
            l.failed(ip(n as u8), t0 + Duration::from_millis(n as u64));
        }
        let wait = l.check(ip(250), t0 + Duration::from_secs(1)).unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(58), "{wait:?}");
        assert!(l.check(ip(250), t0 + Duration::from_secs(61)).is_ok(), "over after the minute");
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for n in 0..(MAX_ADDRESSES as u32 + 100) {
            l.failed(IpAddr::from(n.to_be_bytes()), t0);
        }
        assert!(l.inner.lock().unwrap().by_address.len() <= MAX_ADDRESSES);
    }
}
