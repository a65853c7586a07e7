//! Rate limit for keyframe requests travelling upstream to a camera's encoder.
//!
//! Every viewer can ask for a keyframe (a new viewer joining, a PLI or FIR after packet
//! loss). One keyframe serves all of them, and a viewer on a lossy link must not turn the
//! stream into all-keyframes. Sans-IO: the pad probes in `fanout` feed it the time.
//!
//! Rules: while a requested keyframe is still on its way, further requests are dropped (it
//! will serve them too). Requests closer than [`MIN_INTERVAL`] to the last forwarded one are
//! deferred, and issued by [`KeyframeLimiter::on_frame`] once the interval has passed, so a
//! viewer that joins right after another still gets its keyframe promptly.

use std::time::{Duration, Instant};

/// At most ~3 forced keyframes per second: at 4 Mbit/s a 720p keyframe is ~60 kB, so a PLI
/// storm costs at most ~1.5 Mbit/s extra; a new viewer waits at most this long.
pub const MIN_INTERVAL: Duration = Duration::from_millis(300);

/// After this long without a keyframe, a request is considered lost and may be repeated.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(1);

/// What to do with a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// A keyframe is already coming, or one will be requested when the interval allows.
    Drop,
}

/// Per-camera limiter state.
#[derive(Debug, Default)]
pub struct KeyframeLimiter {
    last_forwarded: Option<Instant>,
    pending_since: Option<Instant>,
    deferred: bool,
    forwarded: u64,
    dropped: u64,
}

impl KeyframeLimiter {
    /// A request arrived from a viewer.
    pub fn on_request(&mut self, now: Instant) -> Verdict {
        if self.pending_since.is_some_and(|p| now.duration_since(p) < PENDING_TIMEOUT) {
            self.dropped += 1;
            return Verdict::Drop;
        }
        if self.last_forwarded.is_some_and(|l| now.duration_since(l) < MIN_INTERVAL) {
            self.deferred = true;
            self.dropped += 1;
            return Verdict::Drop;
        }
        self.last_forwarded = Some(now);
        self.pending_since = Some(now);
        self.deferred = false;
        self.forwarded += 1;
        Verdict::Forward
    }

    /// A frame left the encoder. Returns true when a deferred request should be sent now.
    pub fn on_frame(&mut self, now: Instant, keyframe: bool) -> bool {
        if keyframe {
            self.pending_since = None;
        }
        let interval_passed = self.last_forwarded.is_none_or(|l| now.duration_since(l) >= MIN_INTERVAL);
        self.deferred && interval_passed && self.pending_since.is_none()
    }

    /// Requests forwarded and dropped so far, for metrics.
    pub fn counts(&self) -> (u64, u64) {
        (self.forwarded, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_while_a_keyframe_is_pending_are_coalesced() {
        let t = Instant::now();
        let mut l = KeyframeLimiter::default();
        assert_eq!(l.on_request(t), Verdict::Forward);
        assert_eq!(l.on_request(t + ms(10)), Verdict::Drop);
        assert!(!l.on_frame(t + ms(33), true), "the keyframe served the coalesced request");
    }

    #[test]
    fn a_request_soon_after_a_keyframe_is_deferred_not_lost() {
        let t = Instant::now();
        let mut l = KeyframeLimiter::default();
        assert_eq!(l.on_request(t), Verdict::Forward);
        l.on_frame(t + ms(33), true);
        assert_eq!(l.on_request(t + ms(100)), Verdict::Drop);
        assert!(!l.on_frame(t + ms(133), false), "too soon");
        assert!(l.on_frame(t + ms(333), false), "interval passed: issue it now");
        assert_eq!(l.on_request(t + ms(333)), Verdict::Forward);
        assert!(!l.on_frame(t + ms(366), false));
    }

    #[test]
    fn a_pli_storm_yields_at_most_one_keyframe_per_interval() {
        let t = Instant::now();
        let mut l = KeyframeLimiter::default();
        let mut keyframes = 0;
        for frame in 0..90u64 {
            let now = t + ms(frame * 33);
            if l.on_request(now) == Verdict::Forward {
                keyframes += 1;
            }
            l.on_frame(now + ms(5), true);
        }
        // 3 seconds of requests on every frame.
        assert!(keyframes <= 10, "{keyframes}");
        assert!(keyframes >= 9, "{keyframes}");
    }

    #[test]
    fn a_lost_request_is_repeated_after_the_timeout() {
        let t = Instant::now();
        let mut l = KeyframeLimiter::default();
        assert_eq!(l.on_request(t), Verdict::Forward);
        assert_eq!(l.on_request(t + ms(900)), Verdict::Drop);
        assert_eq!(l.on_request(t + ms(1100)), Verdict::Forward);
    }
}
