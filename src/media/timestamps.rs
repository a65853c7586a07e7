//! Presentation times for muxing what cameras send. IP cameras and parsers leave some frames
//! without a presentation time (PTS): an IDR split from its parameter sets, a camera that
//! stamps only decode times (DTS). mp4mux refuses such a frame and the whole segment with it,
//! so the recorder's writer fills the gap here. (Decode times for B-frames are rebuilt by
//! GStreamer's `h264timestamper` from the SPS's reordering depth.) Sans-IO.

/// A frame length to assume before any is known: 1 ms keeps times strictly increasing
/// without claiming a frame rate.
const FALLBACK_STEP_NS: u64 = 1_000_000;

/// Where a frame's presentation time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The camera's own.
    Kept,
    /// Its decode time (cameras that stamp only DTS; right for streams without B-frames).
    FromDts,
    /// The previous frame's time plus its duration.
    Guessed,
}

/// Fills in missing presentation times, frame by frame, for one segment.
#[derive(Debug, Default)]
pub struct Repair {
    /// The previous frame's PTS and duration.
    last: Option<(u64, Option<u64>)>,
    repaired: u64,
}

impl Repair {
    /// The PTS to write for a frame with these times (nanoseconds), and where it came from;
    /// `None` only for frames before the first one with any time (nothing to go by).
    pub fn pts(&mut self, pts: Option<u64>, dts: Option<u64>, duration: Option<u64>) -> Option<(u64, Source)> {
        let (fixed, source) = match (pts, dts, self.last) {
            (Some(p), _, _) => (p, Source::Kept),
            (None, Some(d), _) => (d, Source::FromDts),
            (None, None, Some((last, step))) => (last + step.filter(|s| *s > 0).unwrap_or(FALLBACK_STEP_NS), Source::Guessed),
            (None, None, None) => return None,
        };
        if source != Source::Kept {
            self.repaired += 1;
        }
        self.last = Some((fixed, duration));
        Some((fixed, source))
    }

    /// Frames whose PTS was filled in so far.
    pub fn repaired(&self) -> u64 {
        self.repaired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn stamped_frames_are_kept() {
        let mut r = Repair::default();
        assert_eq!(r.pts(Some(40 * MS), None, None), Some((40 * MS, Source::Kept)));
        assert_eq!(r.pts(Some(80 * MS), Some(70 * MS), None), Some((80 * MS, Source::Kept)));
        assert_eq!(r.repaired(), 0);
    }

    #[test]
    fn a_frame_with_only_a_decode_time_gets_it_as_presentation_time() {
        let mut r = Repair::default();
        assert_eq!(r.pts(None, Some(33 * MS), None), Some((33 * MS, Source::FromDts)));
        assert_eq!(r.repaired(), 1);
    }

    #[test]
    fn a_frame_with_no_time_follows_the_one_before_by_its_duration() {
        let mut r = Repair::default();
        assert_eq!(r.pts(None, None, Some(40 * MS)), None, "nothing to go by yet");
        r.pts(Some(1000 * MS), None, Some(40 * MS));
        assert_eq!(r.pts(None, None, Some(40 * MS)), Some((1040 * MS, Source::Guessed)));
        assert_eq!(r.pts(Some(1080 * MS), None, None), Some((1080 * MS, Source::Kept)));
        assert_eq!(r.repaired(), 1);
    }

    #[test]
    fn without_a_duration_a_millisecond_keeps_times_increasing() {
        let mut r = Repair::default();
        r.pts(Some(500 * MS), None, Some(0));
        assert_eq!(r.pts(None, None, None), Some((501 * MS, Source::Guessed)));
        assert_eq!(r.pts(None, None, None), Some((502 * MS, Source::Guessed)));
    }
}
