//! When to try again after a failure: exponential backoff that resets after a healthy run
//! (cameras, WHIP pushes), and jitter so many devices that lost the same server do not retry
//! in step (webhooks, pushes). Sans-IO: callers ask, then sleep.

use std::time::{Duration, Instant};

/// First retry after a failure: fast, so an unplug-replug or an RTSP hiccup heals quickly.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest wait between retries: a camera plugged in later is picked up within this.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Longest wait for a network camera: one that comes back (a rebooted camera, a switch
/// that returns) is back within this, at the cost of one TCP connect per wait while it is
/// away. With 30 s, a 10 s outage took up to 5.6 s more to heal (retries at 1, 3, 7, 15 s).
pub const NETWORK_MAX_DELAY: Duration = Duration::from_secs(4);
/// Having run this long counts as healthy: the next failure starts again at `FIRST_DELAY`.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Exponential backoff that resets after a healthy run.
#[derive(Debug)]
pub struct Backoff {
    failures: u32,
    started: Option<Instant>,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::with_max(MAX_DELAY)
    }
}

impl Backoff {
    /// Backoff whose waits grow to at most `max`.
    pub fn with_max(max: Duration) -> Backoff {
        Backoff { failures: 0, started: None, max }
    }

    /// The pipeline started delivering frames at `now`.
    pub fn on_running(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// The pipeline failed at `now`; returns how long to wait before the next attempt.
    pub fn on_failure(&mut self, now: Instant) -> Duration {
        if self.started.take().is_some_and(|s| now.duration_since(s) >= HEALTHY_AFTER) {
            self.failures = 0;
        }
        let delay = FIRST_DELAY.saturating_mul(1 << self.failures.min(5)).min(self.max);
        self.failures += 1;
        delay
    }
}

/// `wait` ±20 %.
pub fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    wait.mul_f64(0.8 + 0.4 * f64::from(byte[0]) / 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_healthy_run() {
        let t = Instant::now();
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| b.on_failure(t).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        b.on_running(t);
        assert_eq!(b.on_failure(t + Duration::from_secs(5)).as_secs(), 30, "short run is not healthy");
        b.on_running(t);
        assert_eq!(b.on_failure(t + Duration::from_secs(31)).as_secs(), 1);
    }

    #[test]
    fn a_network_camera_is_retried_at_least_every_few_seconds() {
        let t = Instant::now();
        let mut b = Backoff::with_max(NETWORK_MAX_DELAY);
        let delays: Vec<u64> = (0..6).map(|_| b.on_failure(t).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 4, 4, 4]);
    }
}
