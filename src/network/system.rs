//! What the daemon cannot do from its sandbox and a privileged start step does for it
//! (`lookout prepare-system`, run as root by `lookout-system.service` before the network and
//! Avahi start): the host name, `lookout-XXXX` from the MAC unless `[network] hostname` says
//! otherwise, and the time servers of `[network] ntp` for systemd-timesyncd.

use std::path::{Path, PathBuf};

use super::names;
use crate::config::Network;

/// What the step sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub hostname: String,
    /// systemd-timesyncd's drop-in: `None` removes ours (the system's servers then).
    pub timesyncd: Option<String>,
}

/// Where timesyncd reads the drop-in from (`/run`: the root file system is read-only).
pub const TIMESYNCD_DROP_IN: &str = "systemd/timesyncd.conf.d/lookout.conf";

/// The plan for `network` on a machine whose interfaces are under `sys`.
pub fn plan(network: &Network, sys: &Path) -> Plan {
    let hostname = network.hostname.clone().unwrap_or_else(|| match device_mac(sys) {
        Some(mac) => names::default_hostname(mac),
        None => "lookout".into(),
    });
    let timesyncd = (!network.ntp.is_empty())
        .then(|| format!("# Written by lookout prepare-system from [network] ntp.\n[Time]\nNTP={}\n", network.ntp.join(" ")));
    Plan { hostname, timesyncd }
}

/// The MAC the device is named after: its Wi-Fi's (the hotspot's name carries the same
/// digits), else its first wired interface's.
pub fn device_mac(sys: &Path) -> Option<[u8; 6]> {
    let Ok(entries) = std::fs::read_dir(sys.join("class/net")) else { return None };
    let mut physical: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("device").exists()).collect();
    physical.sort();
    let wireless = |p: &PathBuf| p.join("wireless").exists() || p.join("phy80211").exists();
    let mac = |p: &PathBuf| std::fs::read_to_string(p.join("address")).ok().and_then(|a| names::parse_mac(&a));
    physical.iter().filter(|p| wireless(p)).find_map(mac).or_else(|| physical.iter().find_map(mac))
}

/// Why the step failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("setting the host name to {name}: {source}")]
    Hostname { name: String, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Applies `plan`: the host name, and the timesyncd drop-in under `run` (restarting
/// timesyncd when it changed).
pub fn apply(plan: &Plan, run: &Path) -> Result<(), SystemError> {
    let name = plan.hostname.as_bytes();
    // SAFETY: the pointer and length describe `name`, which outlives the call.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(SystemError::Hostname { name: plan.hostname.clone(), source: std::io::Error::last_os_error() });
    }
    let path = run.join(TIMESYNCD_DROP_IN);
    let before = std::fs::read_to_string(&path).ok();
    if before == plan.timesyncd {
        return Ok(());
    }
    let write = |r: std::io::Result<()>| r.map_err(|source| SystemError::Write { path: path.clone(), source });
    match &plan.timesyncd {
        Some(text) => {
            write(std::fs::create_dir_all(path.parent().unwrap_or(run)))?;
            write(std::fs::write(&path, text))?;
        }
        None => write(std::fs::remove_file(&path))?,
    }
    // timesyncd reads its configuration at start; it may not run yet, which is fine.
    let _ = std::process::Command::new("systemctl").args(["--no-block", "try-restart", "systemd-timesyncd.service"]).status();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(sys: &Path, name: &str, mac: &str, wireless: bool) {
        let dir = sys.join("class/net").join(name);
        std::fs::create_dir_all(dir.join("device")).unwrap();
        if wireless {
            std::fs::create_dir_all(dir.join("wireless")).unwrap();
        }
        std::fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
    }

    #[test]
    fn the_name_comes_from_the_wifi_mac_else_the_wired_one_else_the_config() {
        let sys = tempfile::tempdir().unwrap();
        let network = Network::default();
        assert_eq!(plan(&network, sys.path()).hostname, "lookout", "no interface at all");
        interface(sys.path(), "eth0", "dc:a6:32:00:00:01", false);
        assert_eq!(plan(&network, sys.path()).hostname, "lookout-0001");
        interface(sys.path(), "wlan0", "dc:a6:32:00:ab:0c", true);
        assert_eq!(plan(&network, sys.path()).hostname, "lookout-ab0c", "the hotspot's digits");
        let named = Network { hostname: Some("porch".into()), ..Network::default() };
        assert_eq!(plan(&named, sys.path()).hostname, "porch");
    }

    #[test]
    fn time_servers_become_a_timesyncd_drop_in_and_none_leave_the_defaults() {
        let sys = tempfile::tempdir().unwrap();
        assert_eq!(plan(&Network::default(), sys.path()).timesyncd, None);
        let network = Network { ntp: vec!["192.168.1.1".into(), "pool.ntp.org".into()], ..Network::default() };
        let text = plan(&network, sys.path()).timesyncd.unwrap();
        assert!(text.contains("[Time]\nNTP=192.168.1.1 pool.ntp.org\n"), "{text}");
    }
}
