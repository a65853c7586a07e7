//! The settings saved from the page, on the data partition (`<storage>/settings/lookout.toml`):
//! what differs from the boot partition's file (`config::layers`). Saved so that a power cut
//! at any moment leaves the old file or the new one, never a broken one.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the saved settings live.
pub fn path(root: &Path) -> PathBuf {
    root.join("settings").join("lookout.toml")
}

/// The saved settings; `None` when none were saved.
pub fn load(root: &Path) -> io::Result<Option<toml::Table>> {
    match std::fs::read_to_string(path(root)) {
        Ok(text) => text.parse().map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `settings` to a temporary file, syncs it, renames it over the old one and syncs
/// the folder: the rename is atomic, the syncs make it durable.
pub fn save(root: &Path, settings: &toml::Table) -> io::Result<()> {
    let target = path(root);
    let dir = target.parent().expect("the settings file is inside a folder");
    std::fs::create_dir_all(dir)?;
    let text = toml::to_string(settings).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let temporary = dir.join(format!(".lookout.toml.{}", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(b"# Settings changed from Lookout's page or API, over the boot partition's lookout.toml.\n")?;
    file.write_all(b"# Delete this file to go back to the boot partition's settings.\n")?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, &target)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_settings_load_back_and_nothing_saved_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let settings: toml::Table = "[http]\nlisten = \"0.0.0.0:80\"\n".parse().unwrap();
        save(dir.path(), &settings).unwrap();
        save(dir.path(), &settings).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(settings));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("settings")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }
}
