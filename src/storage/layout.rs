//! Where segments live and what they are called:
//! `<storage.path>/recordings/<camera>/YYYY-MM-DD/YYYY-MM-DDTHH-MM-SS.mmmZ.mp4`, all UTC.
//! Names sort in time order and carry the start time, so the index can be rebuilt from the
//! directory tree alone. No colons, so the files copy to any filesystem.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

const NAME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3fZ";
const EXTENSION: &str = ".mp4";

/// The folder holding every camera's recordings.
pub fn recordings_dir(root: &Path) -> PathBuf {
    root.join("recordings")
}

/// The folder of one camera.
pub fn camera_dir(root: &Path, camera: &str) -> PathBuf {
    recordings_dir(root).join(camera)
}

/// File name of a segment starting at `start`.
pub fn segment_name(start: DateTime<Utc>) -> String {
    format!("{}{EXTENSION}", start.format(NAME_FORMAT))
}

/// Full path of a segment of `camera` starting at `start`.
pub fn segment_path(root: &Path, camera: &str, start: DateTime<Utc>) -> PathBuf {
    camera_dir(root, camera).join(start.format("%Y-%m-%d").to_string()).join(segment_name(start))
}

/// Where a new segment starting at `start` goes, and the start its name records. If a file of
/// that name exists (a Pi with no clock battery and no network boots at the same time every
/// time, so names repeat), the name moves on by a millisecond until it is free: a recording
/// already on the card is never opened for writing again. Blocking (it looks at the disk).
pub fn new_segment_path(root: &Path, camera: &str, start: DateTime<Utc>) -> (PathBuf, DateTime<Utc>) {
    let mut at = start;
    for _ in 0..10_000 {
        let path = segment_path(root, camera, at);
        if !path.exists() {
            return (path, at);
        }
        at += chrono::Duration::milliseconds(1);
    }
    (segment_path(root, camera, at), at)
}

/// The start time a segment's file name encodes; `None` for anything that is not a segment.
pub fn parse_segment_name(name: &str) -> Option<DateTime<Utc>> {
    let stem = name.strip_suffix(EXTENSION)?;
    NaiveDateTime::parse_from_str(stem, NAME_FORMAT).ok().map(|t| t.and_utc())
}

/// The path of a segment named in a URL, only if the name is a well-formed segment name
/// (so `..`, slashes and other files can never be reached).
pub fn resolve(root: &Path, camera: &str, name: &str) -> Option<PathBuf> {
    let start = parse_segment_name(name)?;
    (segment_name(start) == name).then(|| segment_path(root, camera, start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip_and_sort_by_time() {
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 9, 5, 0).unwrap() + chrono::Duration::milliseconds(33);
        let name = segment_name(t);
        assert_eq!(name, "2026-11-21T09-05-00.033Z.mp4");
        assert_eq!(parse_segment_name(&name), Some(t));
        assert_eq!(segment_path(Path::new("/data"), "cam", t), Path::new("/data/recordings/cam/2026-11-21/2026-11-21T09-05-00.033Z.mp4"));
        assert!(segment_name(t) < segment_name(t + chrono::Duration::seconds(1)));
    }

    #[test]
    fn only_well_formed_names_resolve() {
        let root = Path::new("/data");
        assert!(resolve(root, "cam", "2026-11-21T09-05-00.033Z.mp4").is_some());
        for bad in ["../../etc/passwd", "2026-11-21T09-05-00Z.mp4", "x.mp4", "2026-11-21T09-05-00.033Z.mp4/..", ""] {
            assert!(resolve(root, "cam", bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_new_segment_never_takes_the_name_of_one_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let start = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&Utc);
        let (first, at) = new_segment_path(root.path(), "cam", start);
        assert_eq!((first.clone(), at), (segment_path(root.path(), "cam", start), start));
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::write(&first, b"yesterday's recording").unwrap();
        let (second, at) = new_segment_path(root.path(), "cam", start);
        assert_ne!(second, first);
        assert_eq!(at, start + chrono::Duration::milliseconds(1));
        assert_eq!(parse_segment_name(second.file_name().unwrap().to_str().unwrap()), Some(at));
    }
}
