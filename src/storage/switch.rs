//! Each camera's recording switch, kept on the data partition: an owner who turned recording
//! off (for privacy, say) must not find it back on after a restart or a power cut. "Off" is
//! a marker file `<storage>/state/recording-off/<camera>`; its absence is "on", so a new
//! device, a new camera or a wiped folder records.

use std::io;
use std::path::{Path, PathBuf};

fn marker(root: &Path, camera: &str) -> PathBuf {
    root.join("state").join("recording-off").join(camera)
}

/// Whether the camera's recording was switched off and not on again.
pub fn is_off(root: &Path, camera: &str) -> bool {
    marker(root, camera).exists()
}

/// Saves the switch durably (the marker and its folder's entry are synced).
pub fn save(root: &Path, camera: &str, on: bool) -> io::Result<()> {
    let path = marker(root, camera);
    let dir = path.parent().expect("the marker is inside a folder");
    if on {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else {
        std::fs::create_dir_all(dir)?;
        std::fs::File::create(&path)?.sync_all()?;
    }
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_is_kept_until_switched_on_and_on_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_off(dir.path(), "front"));
        save(dir.path(), "front", false).unwrap();
        save(dir.path(), "front", false).unwrap();
        assert!(is_off(dir.path(), "front"));
        assert!(!is_off(dir.path(), "back"), "one camera's switch is its own");
        save(dir.path(), "front", true).unwrap();
        save(dir.path(), "front", true).unwrap();
        assert!(!is_off(dir.path(), "front"));
    }
}
