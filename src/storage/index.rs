//! What has been recorded: every segment of every camera, rebuilt from the directory tree
//! at start (so it survives restarts and picks up segments cut off by a crash) and kept up
//! to date from `Segment*` events.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::layout;
use super::mp4scan;

/// One recorded file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Segment {
    /// File name, also its id in URLs.
    pub name: String,
    pub start: DateTime<Utc>,
    /// Start plus the media it holds; for the segment being written, now.
    pub end: DateTime<Utc>,
    pub size: u64,
    /// Being written right now.
    pub recording: bool,
    /// Cut off (power loss, kill, disk error): playable up to its last complete fragment.
    pub partial: bool,
    #[serde(skip)]
    pub path: PathBuf,
}

/// A stretch of time with nothing recorded between two segments.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gap {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Segments closer than this are continuous: the split itself takes a frame or two.
const GAP_TOLERANCE: chrono::Duration = chrono::Duration::milliseconds(1500);

/// Gaps between consecutive segments (sorted by start).
pub fn gaps(segments: &[Segment]) -> Vec<Gap> {
    segments.windows(2).filter(|w| w[1].start - w[0].end > GAP_TOLERANCE).map(|w| Gap { start: w[0].end, end: w[1].start }).collect()
}

/// Every camera's segments by start time.
#[derive(Default)]
pub struct Index {
    cameras: RwLock<BTreeMap<String, BTreeMap<DateTime<Utc>, Segment>>>,
}

/// Reads a segment file's size and media. A finished file with no complete fragment is
/// deleted when `remove_empty` (at start and on close, when nothing can still be writing it),
/// otherwise only left out.
fn describe(path: &Path, start: DateTime<Utc>, recording: bool, remove_empty: bool) -> Option<Segment> {
    let name = path.file_name()?.to_str()?.to_owned();
    let size = std::fs::metadata(path).ok()?.len();
    let (duration, partial) = if recording {
        (Duration::ZERO, false)
    } else {
        match mp4scan::scan_file(path) {
            Ok(scan) if scan.holds_nothing() => {
                if remove_empty {
                    // Cut off before its first fragment was complete (a crash within a second
                    // of the segment opening): there is no picture to keep, and players reject it.
                    tracing::warn!(segment = %path.display(), "removing a cut-off segment that holds no video");
                    if let Err(e) = std::fs::remove_file(path) {
                        tracing::warn!(segment = %path.display(), "could not remove it: {e}");
                    }
                }
                return None;
            }
            Ok(scan) => (scan.duration, scan.cut_off()),
            Err(e) => {
                // Listed (it may still hold something a player can use) but flagged, and said.
                tracing::warn!(segment = %path.display(), "cannot read this recording's media, listing it as partial: {e}");
                (Duration::ZERO, true)
            }
        }
    };
    let end = start + chrono::Duration::from_std(duration).unwrap_or_default();
    Some(Segment { name, start, end, size, recording, partial, path: path.to_owned() })
}

/// Every segment file of each camera under `root`, except `skip`. Blocking.
/// `remove_empty`: see [`describe`]; never while a recorder may be writing an unknown file.
fn scan(
    root: &Path,
    cameras: &[String],
    skip: &HashSet<PathBuf>,
    remove_empty: bool,
) -> BTreeMap<String, BTreeMap<DateTime<Utc>, Segment>> {
    let mut map = BTreeMap::new();
    for camera in cameras {
        let mut segments = BTreeMap::new();
        let dir = layout::camera_dir(root, camera);
        for day in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(day.path()).into_iter().flatten().flatten() {
                let path = file.path();
                if skip.contains(&path) {
                    continue;
                }
                let start = path.file_name().and_then(|n| n.to_str()).and_then(layout::parse_segment_name);
                if let Some(seg) = start.and_then(|s| describe(&path, s, false, remove_empty)) {
                    segments.insert(seg.start, seg);
                }
            }
        }
        map.insert(camera.clone(), segments);
    }
    map
}

impl Index {
    /// Scans `<root>/recordings/<camera>/*/*.mp4` for each camera. Blocking.
    pub fn load(root: &Path, cameras: &[String]) -> Index {
        let index = Index::default();
        *index.cameras.write().expect("index lock never poisoned") = scan(root, cameras, &HashSet::new(), true);
        index
    }

    /// Rebuilds the index from disk, keeping the segments being written as they are (their
    /// files are not touched). For when the disk may hold something other than what events
    /// said: the data partition was mounted or unmounted, or events were missed. Blocking;
    /// call it from the task that applies `opened`/`closed`, so none is lost meanwhile.
    pub fn reload(&self, root: &Path, cameras: &[String]) {
        let writing: Vec<(String, Segment)> = self.all().into_iter().filter(|(_, s)| s.recording).collect();
        let skip: HashSet<PathBuf> = writing.iter().map(|(_, s)| s.path.clone()).collect();
        let mut fresh = scan(root, cameras, &skip, false);
        for (camera, seg) in writing {
            fresh.entry(camera).or_default().insert(seg.start, seg);
        }
        *self.cameras.write().expect("index lock never poisoned") = fresh;
    }

    /// A segment started being written.
    pub fn opened(&self, camera: &str, path: &Path, start: DateTime<Utc>) {
        if let Some(seg) = describe(path, start, true, false) {
            self.put(camera, seg);
        }
    }

    /// A segment was finished (or cut off); reads its final size and duration. Blocking.
    pub fn closed(&self, camera: &str, path: &Path, start: DateTime<Utc>) {
        match describe(path, start, false, true) {
            Some(seg) => self.put(camera, seg),
            None => self.remove(camera, start),
        }
    }

    fn put(&self, camera: &str, seg: Segment) {
        let mut map = self.cameras.write().expect("index lock never poisoned");
        map.entry(camera.to_owned()).or_default().insert(seg.start, seg);
    }

    /// A segment was deleted.
    pub fn remove(&self, camera: &str, start: DateTime<Utc>) {
        if let Some(segments) = self.cameras.write().expect("index lock never poisoned").get_mut(camera) {
            segments.remove(&start);
        }
    }

    /// Segments of `camera` overlapping `[from, to]`, oldest first. Blocking: reads the size
    /// of the segment being written from disk (outside the index's lock).
    pub fn list(&self, camera: &str, from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Segment> {
        let mut segments: Vec<Segment> = {
            let map = self.cameras.read().expect("index lock never poisoned");
            let Some(segments) = map.get(camera) else { return Vec::new() };
            segments.values().cloned().collect()
        };
        for s in segments.iter_mut().filter(|s| s.recording) {
            s.end = now.max(s.start);
        }
        segments.retain(|s| s.end >= from && s.start <= to);
        with_current_sizes(&mut segments);
        segments
    }

    /// Every camera's segments, for retention and metrics. Sizes of segments being written
    /// are as of their opening; [`with_current_sizes`] reads them from disk.
    pub fn all(&self) -> Vec<(String, Segment)> {
        let map = self.cameras.read().expect("index lock never poisoned");
        map.iter().flat_map(|(c, segs)| segs.values().map(move |s| (c.clone(), s.clone()))).collect()
    }
}

/// Reads the current size of each segment still being written (the index learns a file's
/// size only when it closes). Blocking: call it off the async threads, never under a lock.
pub fn with_current_sizes<'a>(segments: impl IntoIterator<Item = &'a mut Segment>) {
    for s in segments.into_iter().filter(|s| s.recording) {
        s.size = std::fs::metadata(&s.path).map_or(s.size, |m| m.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn seg(start_s: i64, end_s: i64) -> Segment {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
        Segment {
            name: String::new(),
            start: t0 + chrono::Duration::seconds(start_s),
            end: t0 + chrono::Duration::seconds(end_s),
            size: 1,
            recording: false,
            partial: false,
            path: PathBuf::new(),
        }
    }

    #[test]
    fn a_cut_off_segment_without_a_fragment_is_removed_at_load() {
        let root = tempfile::tempdir().unwrap();
        let day = layout::camera_dir(root.path(), "cam").join("2026-11-21");
        std::fs::create_dir_all(&day).unwrap();
        // An ftyp box and the first bytes of a moov: what a kill leaves in the first second.
        let mut cut = vec![0, 0, 0, 16];
        cut.extend_from_slice(b"ftypiso6\0\0\0\0");
        cut.extend_from_slice(&[0, 0, 2, 0]);
        cut.extend_from_slice(b"moov");
        let empty = day.join("2026-11-21T10-00-00.000Z.mp4");
        std::fs::write(&empty, &cut).unwrap();
        let index = Index::load(root.path(), &["cam".to_owned()]);
        assert!(index.all().is_empty());
        assert!(!empty.exists(), "a segment with no video is not kept");
    }

    #[test]
    fn a_reload_finds_what_appeared_and_keeps_the_segment_being_written() {
        let root = tempfile::tempdir().unwrap();
        let day = layout::camera_dir(root.path(), "cam").join("2026-11-21");
        std::fs::create_dir_all(&day).unwrap();
        let cameras = ["cam".to_owned()];
        let index = Index::load(root.path(), &cameras);
        // Just opened: no fragment yet, which a scan would treat as a cut-off leftover.
        let writing = day.join("2026-11-21T10-01-00.000Z.mp4");
        std::fs::write(&writing, b"\0\0\0\x10ftypiso6\0\0\0\0").unwrap();
        let t = |m| layout::parse_segment_name(&format!("2026-11-21T10-0{m}-00.000Z.mp4")).unwrap();
        index.opened("cam", &writing, t(1));
        // Appears on disk without any event (a partition mounted late).
        std::fs::write(day.join("2026-11-21T10-00-00.000Z.mp4"), mp4scan::tests::fragmented(3)).unwrap();
        // Just opened by a recorder whose event the index missed: not listed, not touched.
        let unknown = day.join("2026-11-21T10-02-00.000Z.mp4");
        std::fs::write(&unknown, b"\0\0\0\x10ftypiso6\0\0\0\0").unwrap();
        index.reload(root.path(), &cameras);
        assert!(unknown.exists(), "a reload never deletes a file something may be writing");
        let all = index.all();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all.iter().any(|(_, s)| s.start == t(0) && s.end == t(0) + chrono::Duration::seconds(3) && !s.recording));
        assert!(all.iter().any(|(_, s)| s.start == t(1) && s.recording));
        assert!(writing.exists(), "the file being written is left alone");
        // Gone from disk (the partition unmounted): gone from the index.
        std::fs::remove_file(day.join("2026-11-21T10-00-00.000Z.mp4")).unwrap();
        index.reload(root.path(), &cameras);
        assert_eq!(index.all().len(), 1);
    }

    #[test]
    fn gaps_are_where_nothing_was_recorded() {
        let segs = [seg(0, 60), seg(60, 120), seg(130, 180), seg(181, 240)];
        let g = gaps(&segs);
        assert_eq!(g.len(), 1, "a 1 s split is continuous, a 10 s hole is a gap");
        assert_eq!(g[0].start, segs[1].end);
        assert_eq!(g[0].end, segs[2].start);
    }
}
