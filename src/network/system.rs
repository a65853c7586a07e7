//! What the daemon cannot do from its sandbox and a privileged step does for it (`lookout
//! prepare-system`, run as root by `lookout-system.service` before the network and Avahi
//! start, and again by `lookout-network.service` whenever the daemon asks after a change):
//! the host name, `lookout-XXXX` from the MAC unless `[network] hostname` says otherwise; the
//! time servers of `[network] ntp` for systemd-timesyncd; and fixed IPv4 addresses
//! (`[network.wired.ipv4]`, `[network.wifi.ipv4]`) as systemd-networkd files in `/run`,
//! which come before the image's DHCP ones.

use std::path::{Path, PathBuf};

use super::{links, names};
use crate::config::{Ipv4, Network};

/// What the step sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub hostname: String,
    /// systemd-timesyncd's drop-in: `None` removes ours (the system's servers then).
    pub timesyncd: Option<String>,
    /// systemd-networkd files (name, text) for fixed addresses; ours not listed are removed.
    pub networkd: Vec<(String, String)>,
}

/// Where networkd reads the step's files from, under `/run`.
pub const NETWORKD_DIR: &str = "systemd/network";
/// The step's networkd files start so (and sort before the image's `20-wired` and `30-wifi`).
const NETWORKD_PREFIX: &str = "10-lookout-";

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
    let mut networkd = Vec::new();
    if let Some(text) = fixed_address("Name=en* eth*", &network.wired.ipv4) {
        networkd.push((format!("{NETWORKD_PREFIX}wired.network"), text));
    }
    if let Some(text) = fixed_address("Name=wl*\nWLANInterfaceType=station", &network.wifi.ipv4) {
        networkd.push((format!("{NETWORKD_PREFIX}wifi.network"), text));
    }
    Plan { hostname, timesyncd, networkd }
}

/// A networkd file giving the interfaces `matching` the fixed address of `ip`; none for DHCP.
fn fixed_address(matching: &str, ip: &Ipv4) -> Option<String> {
    let address = ip.address.as_ref()?;
    let mut text = format!(
        "# Written by lookout prepare-system from lookout.toml and the settings page.\n[Match]\n{matching}\n\n[Network]\nAddress={address}\n"
    );
    if let Some(gateway) = &ip.gateway {
        text.push_str(&format!("Gateway={gateway}\n"));
    }
    for server in &ip.dns {
        text.push_str(&format!("DNS={server}\n"));
    }
    Some(text)
}

/// The MAC the device is named after: its Wi-Fi's (the hotspot's name carries the same
/// digits), else its first wired interface's.
pub fn device_mac(sys: &Path) -> Option<[u8; 6]> {
    links::first_wireless(sys)
        .and_then(|radio| names::interface_mac(&radio))
        .or_else(|| links::physical_interfaces(sys).iter().find_map(|dir| names::interface_mac(dir)))
}

/// Why the step failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("setting the host name to {name}: {source}")]
    Hostname { name: String, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Applies `plan`: the host name (Avahi restarted when it changed), the timesyncd drop-in
/// and the networkd files under `run` (timesyncd restarted and networkd reloaded when they
/// changed).
pub fn apply(plan: &Plan, run: &Path) -> Result<(), SystemError> {
    let renamed = names::current_hostname().as_deref() != Some(plan.hostname.as_str());
    let name = plan.hostname.as_bytes();
    // SAFETY: the pointer and length describe `name`, which outlives the call.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(SystemError::Hostname { name: plan.hostname.clone(), source: std::io::Error::last_os_error() });
    }
    if renamed {
        // Avahi publishes the name it found at its start; it may not run yet, which is fine.
        systemctl("try-restart", "avahi-daemon.service");
    }
    if put(&run.join(TIMESYNCD_DROP_IN), plan.timesyncd.as_deref())? {
        // timesyncd reads its configuration at start.
        systemctl("try-restart", "systemd-timesyncd.service");
    }
    let dir = run.join(NETWORKD_DIR);
    let mut changed = false;
    let stale: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with(NETWORKD_PREFIX) && !plan.networkd.iter().any(|(n, _)| *n == name)
        })
        .collect();
    for path in stale {
        changed |= put(&path, None)?;
    }
    for (name, text) in &plan.networkd {
        changed |= put(&dir.join(name), Some(text))?;
    }
    if changed {
        // networkd applies changed files to the links they match.
        let _ = std::process::Command::new("networkctl").arg("reload").status();
    }
    Ok(())
}

/// Writes `text` to `path`, or removes it for `None`; whether anything changed.
fn put(path: &Path, text: Option<&str>) -> Result<bool, SystemError> {
    if std::fs::read_to_string(path).ok().as_deref() == text {
        return Ok(false);
    }
    let write = |r: std::io::Result<()>| r.map_err(|source| SystemError::Write { path: path.to_owned(), source });
    match text {
        Some(text) => {
            write(std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/"))))?;
            write(std::fs::write(path, text))?;
        }
        None => write(std::fs::remove_file(path))?,
    }
    Ok(true)
}

fn systemctl(verb: &str, unit: &str) {
    let _ = std::process::Command::new("systemctl").args(["--no-block", verb, unit]).status();
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

    #[test]
    fn fixed_addresses_become_networkd_files_and_dhcp_none() {
        let sys = tempfile::tempdir().unwrap();
        assert!(plan(&Network::default(), sys.path()).networkd.is_empty(), "DHCP: the image's files");
        let mut network = Network::default();
        network.wired.ipv4 =
            Ipv4 { address: Some("192.168.1.50/24".into()), gateway: Some("192.168.1.1".into()), dns: vec!["1.1.1.1".into()] };
        network.wifi.ipv4.address = Some("10.0.0.9/8".into());
        let files = plan(&network, sys.path()).networkd;
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "10-lookout-wired.network");
        assert!(
            files[0].1.contains("Name=en* eth*\n") && files[0].1.contains("Address=192.168.1.50/24\nGateway=192.168.1.1\nDNS=1.1.1.1\n"),
            "{}",
            files[0].1
        );
        assert!(files[1].1.contains("WLANInterfaceType=station\n") && files[1].1.contains("Address=10.0.0.9/8\n"), "{}", files[1].1);
    }

    #[test]
    fn putting_files_says_what_changed_and_removes_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.conf");
        assert!(put(&path, Some("x")).unwrap());
        assert!(!put(&path, Some("x")).unwrap(), "the same text again changes nothing");
        assert!(put(&path, None).unwrap());
        assert!(!path.exists());
        assert!(!put(&path, None).unwrap());
    }
}
