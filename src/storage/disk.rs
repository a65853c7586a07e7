//! The data partition's size and free space.

use std::path::Path;

use super::retention::Disk;

/// Total and available bytes of the filesystem holding `path` (available to this user, as
/// writes see it, not counting the root-reserved blocks).
pub fn usage(path: &Path) -> std::io::Result<Disk> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let unit = st.fragment_size() as u64;
    Ok(Disk { total: st.blocks() as u64 * unit, free: st.blocks_available() as u64 * unit })
}
