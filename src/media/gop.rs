//! The camera's current group of pictures: every frame since the last keyframe.
//!
//! Decoding it gives the current picture at once, without asking the encoder for a keyframe
//! (which costs every viewer a bitrate spike) or waiting for one from a camera that cannot be
//! asked (an RTSP or H.264 camera passed through, whose GOP may be seconds long). Snapshots
//! use it. Sans-IO and generic over the frame, so it is tested with plain numbers.

use std::time::{Duration, Instant};

/// Most bytes kept: about 8 s at 4 Mbit/s. A longer GOP is not cached (snapshots then wait
/// for a keyframe instead), so memory stays bounded whatever the camera sends.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// A cached GOP older than this is not the current picture: the camera has stalled.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// Frames since the last keyframe, with what they need to be decoded alone.
#[derive(Debug)]
pub struct GopCache<F, C> {
    frames: Vec<F>,
    /// The stream's format when the GOP's keyframe arrived.
    format: Option<C>,
    bytes: usize,
    limit: usize,
    last: Option<Instant>,
}

/// A copy of the cached GOP: decode `frames` in order with `format`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gop<F, C> {
    pub frames: Vec<F>,
    pub format: C,
}

impl<F: Clone, C: Clone> GopCache<F, C> {
    /// An empty cache holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        GopCache { frames: Vec::new(), format: None, bytes: 0, limit, last: None }
    }

    /// One frame from the camera. `format` is read only on keyframes.
    pub fn push(&mut self, now: Instant, keyframe: bool, size: usize, frame: F, format: impl FnOnce() -> Option<C>) {
        self.last = Some(now);
        if keyframe {
            self.frames.clear();
            self.bytes = 0;
            self.format = format();
            if self.format.is_none() {
                return;
            }
        } else if self.frames.is_empty() {
            // No keyframe to decode from (start, or a GOP that outgrew the limit).
            return;
        }
        self.bytes += size;
        if self.bytes > self.limit {
            self.clear();
            return;
        }
        self.frames.push(frame);
    }

    /// The GOP so far, if there is a recent one to decode.
    pub fn current(&self, now: Instant) -> Option<Gop<F, C>> {
        let fresh = self.last.is_some_and(|t| now.saturating_duration_since(t) <= FRESH_FOR);
        match (&self.format, fresh && !self.frames.is_empty()) {
            (Some(format), true) => Some(Gop { frames: self.frames.clone(), format: format.clone() }),
            _ => None,
        }
    }

    /// Forgets everything (the camera pipeline went down).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.format = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Option<&'static str> {
        Some("h264")
    }

    #[test]
    fn holds_the_frames_since_the_last_keyframe() {
        let t = Instant::now();
        let mut c = GopCache::new(1000);
        c.push(t, false, 10, 0, caps);
        assert_eq!(c.current(t), None, "nothing decodable before a keyframe");
        for i in 1..=5 {
            c.push(t, i == 1, 10, i, caps);
        }
        assert_eq!(c.current(t), Some(Gop { frames: vec![1, 2, 3, 4, 5], format: "h264" }));
        c.push(t, true, 10, 6, caps);
        c.push(t, false, 10, 7, caps);
        assert_eq!(c.current(t).unwrap().frames, vec![6, 7]);
    }

    #[test]
    fn a_gop_beyond_the_limit_is_dropped_until_the_next_keyframe() {
        let t = Instant::now();
        let mut c = GopCache::new(25);
        c.push(t, true, 10, 1, caps);
        c.push(t, false, 10, 2, caps);
        c.push(t, false, 10, 3, caps);
        assert_eq!(c.current(t), None);
        c.push(t, false, 1, 4, caps);
        assert_eq!(c.current(t), None, "a delta frame cannot restart it");
        c.push(t, true, 10, 5, caps);
        assert_eq!(c.current(t).unwrap().frames, vec![5]);
    }

    #[test]
    fn a_stalled_camera_has_no_current_picture() {
        let t = Instant::now();
        let mut c = GopCache::new(100);
        c.push(t, true, 10, 1, caps);
        assert!(c.current(t + FRESH_FOR).is_some());
        assert_eq!(c.current(t + FRESH_FOR + Duration::from_millis(1)), None);
        c.clear();
        assert_eq!(c.current(t), None);
    }

    #[test]
    fn a_keyframe_without_a_known_format_is_not_cached() {
        let t = Instant::now();
        let mut c: GopCache<u32, &str> = GopCache::new(100);
        c.push(t, true, 10, 1, || None);
        c.push(t, false, 10, 2, caps);
        assert_eq!(c.current(t), None);
    }
}
