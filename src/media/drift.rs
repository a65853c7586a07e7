//! Keeps a recording on the wall clock when a camera's own clock runs fast or slow. A passed
//! through IP camera stamps frames by its clock; the RTP jitter buffer corrects most of a
//! skew but not all, and a camera 5 % fast would otherwise put a recording seconds ahead of
//! the wall clock within minutes. The cure: the smallest delay between a frame's time and
//! its arrival (the delay network jitter cannot shrink) stays where it was when recording
//! began; when it shrinks or grows, times are corrected by the difference, slewed slowly so
//! playback stays smooth. Sans-IO: times in nanoseconds of the media clock.

use std::collections::VecDeque;

const SECOND: u64 = 1_000_000_000;
/// How long the smallest delay is remembered: longer than network jitter spikes last. A
/// slow clock is followed this much late (100 ms behind for a clock 5 % slow), never early.
const WINDOW_NS: u64 = 2 * SECOND;
/// How long the reference delay is learnt after a start or a restart: a burst of cached
/// frames and the first live ones settle within it; a drift during it goes uncorrected
/// (50 ms for a clock 5 % off).
const LEARN_NS: u64 = SECOND;
/// A gap in arrivals this long is a stall or a reconnect: learn again.
const GAP_NS: u64 = SECOND;
/// A delay this far from the smallest one is a camera clock that jumped, not drift.
const JUMP_NS: i64 = SECOND as i64;
/// The correction moves by at most 1/SLEW_DIVISOR of the time that passed: it follows a
/// clock up to 10 % off while a frame's length changes by no more than that.
const SLEW_DIVISOR: u64 = 10;

/// Drift correction for one camera's frames, in arrival order.
#[derive(Debug, Default)]
pub struct Drift {
    /// (arrival, delay) with increasing delays: the front is the smallest in the window.
    window: VecDeque<(u64, i64)>,
    /// The delay kept constant, and the arrival time until which it is still being learnt.
    reference: Option<(i64, u64)>,
    correction: i64,
    last_arrival: Option<u64>,
}

impl Drift {
    /// The time to record for a frame stamped `pts` that arrived at `arrival`.
    pub fn correct(&mut self, pts: u64, arrival: u64) -> u64 {
        let delay = arrival as i64 - pts as i64;
        let elapsed = self.last_arrival.map_or(0, |last| arrival.saturating_sub(last));
        let departed = self.window.front().is_some_and(|&(_, floor)| (delay - floor).abs() > JUMP_NS);
        if elapsed > GAP_NS || (departed && !self.learning(arrival)) {
            self.window.clear();
            self.reference = None;
        }
        self.last_arrival = Some(arrival);
        while self.window.back().is_some_and(|&(_, d)| d >= delay) {
            self.window.pop_back();
        }
        self.window.push_back((arrival, delay));
        while self.window.front().is_some_and(|&(at, _)| at + WINDOW_NS < arrival) {
            self.window.pop_front();
        }
        let floor = self.window.front().map_or(delay, |&(_, d)| d);
        match self.reference {
            None => self.reference = Some((floor - self.correction, arrival + LEARN_NS)),
            Some((_, until)) if arrival < until => self.reference = Some((floor - self.correction, until)),
            Some((reference, _)) => {
                let target = floor - reference;
                let step = (elapsed / SLEW_DIVISOR) as i64;
                self.correction += (target - self.correction).clamp(-step, step);
            }
        }
        pts.saturating_add_signed(self.correction)
    }

    /// The correction applied now (positive: frames recorded later than stamped).
    pub fn correction_ns(&self) -> i64 {
        self.correction
    }

    fn learning(&self, arrival: u64) -> bool {
        self.reference.is_none_or(|(_, until)| arrival < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Feeds `seconds` of 15 fps frames from a camera whose clock runs `percent` fast,
    /// arriving `delay` plus a jitter of up to `jitter` later; returns (arrival, corrected).
    fn run(drift: &mut Drift, start: u64, seconds: u64, percent: i64, jitter: u64) -> Vec<(u64, u64)> {
        let frame = SECOND / 15;
        (0..seconds * 15)
            .map(|i| {
                let real = start + i * frame;
                let stamped = (real as i64 + (i * frame) as i64 * percent / 100) as u64;
                let noise = (i * 7919 % 13) * jitter / 12;
                let arrival = real + 80 * MS + noise;
                (arrival, drift.correct(stamped, arrival))
            })
            .collect()
    }

    #[test]
    fn a_steady_camera_is_left_alone() {
        let mut d = Drift::default();
        let out = run(&mut d, 10 * SECOND, 60, 0, 30 * MS);
        assert!(d.correction_ns().unsigned_abs() <= 30 * MS, "{}", d.correction_ns());
        assert!(out.windows(2).all(|w| w[1].1 > w[0].1), "times only increase");
    }

    #[test]
    fn a_fast_camera_clock_is_pulled_back_to_the_wall_clock() {
        let mut d = Drift::default();
        let out = run(&mut d, 10 * SECOND, 120, 5, 20 * MS);
        let (arrival, corrected) = *out.last().unwrap();
        let lag = arrival as i64 - corrected as i64;
        assert!((20 * MS as i64..=110 * MS as i64).contains(&lag), "stays ~80 ms behind arrival, is {} ms", lag / MS as i64);
        assert!(out.windows(2).all(|w| w[1].1 > w[0].1), "times only increase");
        let last_minute = &out[out.len() - 900..];
        let span = last_minute.last().unwrap().1 - last_minute[0].1;
        assert!(span.abs_diff(60 * SECOND - SECOND / 15) < 100 * MS, "a minute lasts a minute: {span}");
    }

    #[test]
    fn a_slow_camera_clock_is_pushed_forward() {
        let mut d = Drift::default();
        let out = run(&mut d, 0, 120, -5, 0);
        let (arrival, corrected) = *out.last().unwrap();
        let lag = arrival as i64 - corrected as i64;
        assert!((80 * MS as i64..=260 * MS as i64).contains(&lag), "stays a bounded time behind arrival, is {} ms", lag / MS as i64);
    }

    #[test]
    fn a_jump_of_the_camera_clock_is_not_slewed_towards() {
        let mut d = Drift::default();
        run(&mut d, 0, 10, 0, 0);
        let frame = SECOND / 15;
        let mut arrival = 10 * SECOND + 80 * MS;
        for i in 0..150 {
            arrival += frame;
            d.correct(3600 * SECOND + 10 * SECOND + i * frame, arrival);
        }
        assert!(d.correction_ns().unsigned_abs() < MS, "{}", d.correction_ns());
    }

    #[test]
    fn a_burst_of_cached_frames_at_the_start_sets_no_correction() {
        let mut d = Drift::default();
        let frame = SECOND / 15;
        let now = 100 * SECOND;
        for i in 0..60 {
            d.correct(now - 4 * SECOND + i * frame, now + i * MS);
        }
        let out = run(&mut d, now, 30, 0, 10 * MS);
        assert!(d.correction_ns().unsigned_abs() <= 10 * MS, "{}", d.correction_ns());
        assert!(out.windows(2).all(|w| w[1].1 > w[0].1));
    }

    #[test]
    fn after_a_stall_the_correction_so_far_is_kept() {
        let mut d = Drift::default();
        run(&mut d, 0, 60, 5, 0);
        let before = d.correction_ns();
        run(&mut d, 70 * SECOND, 1, 0, 0);
        assert_eq!(d.correction_ns(), before, "no jump at a reconnect");
    }
}
