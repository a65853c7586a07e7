//! The data partition's size and free space, and how small private files are written to it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::retention::Disk;

/// Total and available bytes of the filesystem holding `path` (available to this user, as
/// writes see it, not counting the root-reserved blocks).
pub fn usage(path: &Path) -> std::io::Result<Disk> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let unit = st.fragment_size() as u64;
    Ok(Disk { total: st.blocks() as u64 * unit, free: st.blocks_available() as u64 * unit })
}

/// Replaces `path` with `bytes`, readable by this user only: written beside it, synced, then
/// renamed, so a pulled plug leaves the old file or the new one, never half of one. For
/// secrets (accounts, private keys) on the data partition.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}
