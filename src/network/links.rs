//! The device's network links as an owner needs to see them: each wired and Wi-Fi interface,
//! whether it has a link, its addresses, and a Wi-Fi radio's signal. Read from `/sys/class/net`
//! and `/proc/net/wireless` (roots given, so tests run on fixture trees) and the addresses the
//! caller passes (`getifaddrs` on the device).

use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

/// What kind of link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Wired,
    Wifi,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub name: String,
    pub kind: Kind,
    /// A cable in and a partner at the other end, or an access point joined.
    pub up: bool,
    pub addresses: Vec<IpAddr>,
    /// The radio's signal level, for Wi-Fi with a link.
    pub signal_dbm: Option<i32>,
    /// The network a Wi-Fi link joined (from wpa_supplicant).
    pub ssid: Option<String>,
}

impl Link {
    /// A Wi-Fi link too weak for steady video.
    pub fn weak(&self) -> bool {
        self.signal_dbm.is_some_and(|s| s < super::wpa::WEAK_DBM)
    }
}

/// The folders of every physical interface under `sys` (`/sys/class/net/<name>`; virtual
/// ones such as `lo`, bridges and containers' veths have no `device` and are left out), in
/// name order.
pub fn physical_interfaces(sys: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(sys.join("class/net")) else { return Vec::new() };
    let mut found: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.join("device").exists()).collect();
    found.sort();
    found
}

/// Whether the interface at `dir` (from [`physical_interfaces`]) is a Wi-Fi radio.
pub fn is_wireless(dir: &Path) -> bool {
    dir.join("wireless").exists() || dir.join("phy80211").exists()
}

/// The Wi-Fi radio the device uses (the first): its folder. The hotspot's name and the
/// default host name both come from its MAC.
pub fn first_wireless(sys: &Path) -> Option<std::path::PathBuf> {
    physical_interfaces(sys).into_iter().find(|d| is_wireless(d))
}

/// Every physical interface under `sys`, in name order.
pub fn read(sys: &Path, proc: &Path, addresses: impl Fn(&str) -> Vec<IpAddr>, ssid: impl Fn(&str) -> Option<String>) -> Vec<Link> {
    let signals = std::fs::read_to_string(proc.join("net/wireless")).unwrap_or_default();
    physical_interfaces(sys)
        .into_iter()
        .filter_map(|dir| {
            let name = dir.file_name()?.to_string_lossy().into_owned();
            let wifi = is_wireless(&dir);
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).map(|s| s.trim().to_owned()).unwrap_or_default();
            // `carrier` cannot be read while the interface is down.
            let up = read("carrier") == "1" && read("operstate") != "down";
            let signal_dbm = if wifi && up { signal(&signals, &name) } else { None };
            let ssid = if wifi && up { ssid(&name) } else { None };
            Some(Link { addresses: addresses(&name), name, kind: if wifi { Kind::Wifi } else { Kind::Wired }, up, signal_dbm, ssid })
        })
        .collect()
}

/// The signal level of `interface` in `/proc/net/wireless` (`wlan0: 0000   54.  -56.  -256 …`).
fn signal(table: &str, interface: &str) -> Option<i32> {
    let line = table.lines().find_map(|l| l.trim_start().strip_prefix(interface)?.strip_prefix(':'))?;
    let level = line.split_whitespace().nth(2)?.trim_end_matches('.');
    let dbm: f64 = level.parse().ok()?;
    // Drivers that report no level write 0 or a positive "quality" instead of dBm.
    (dbm < 0.0).then_some(dbm.round() as i32)
}

/// Every address of every interface on this machine, with its interface's name.
pub fn interface_addresses() -> Vec<(String, IpAddr)> {
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    addresses
        .filter_map(|a| {
            let ip = a.address.as_ref().and_then(|s| {
                s.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())).or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })?;
            Some((a.interface_name, ip))
        })
        .collect()
}

/// The addresses of every interface on this machine, by interface name (link-local ones left
/// out: nobody can reach the device by them from a browser).
pub fn system_addresses() -> impl Fn(&str) -> Vec<IpAddr> {
    let all: Vec<(String, IpAddr)> = interface_addresses().into_iter().filter(|(_, ip)| !link_local(ip)).collect();
    move |name| all.iter().filter(|(n, _)| n == name).map(|(_, ip)| *ip).collect()
}

fn link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Pi 4 with a cable in and Wi-Fi joined, plus `lo` and a docker bridge.
    fn fixture(wlan_level: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join("sys/class/net");
        for (name, physical, wifi, carrier, state) in [
            ("eth0", true, false, "1", "up"),
            ("wlan0", true, true, "1", "up"),
            ("lo", false, false, "1", "unknown"),
            ("docker0", false, false, "0", "down"),
        ] {
            let dir = net.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if physical {
                std::fs::create_dir_all(dir.join("device")).unwrap();
            }
            if wifi {
                std::fs::create_dir_all(dir.join("wireless")).unwrap();
            }
            std::fs::write(dir.join("carrier"), carrier).unwrap();
            std::fs::write(dir.join("operstate"), state).unwrap();
        }
        std::fs::create_dir_all(root.path().join("proc/net")).unwrap();
        std::fs::write(
            root.path().join("proc/net/wireless"),
            format!(
                "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n \
                 face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n \
                 wlan0: 0000   54.  {wlan_level}  -256        0      0      0      0     13        0\n"
            ),
        )
        .unwrap();
        root
    }

    fn addresses(name: &str) -> Vec<IpAddr> {
        match name {
            "eth0" => vec!["192.168.1.20".parse().unwrap()],
            "wlan0" => vec!["192.168.1.21".parse().unwrap(), "fd00::21".parse().unwrap()],
            _ => vec![],
        }
    }

    #[test]
    fn a_pi_with_cable_and_wifi_shows_both_links_and_the_signal() {
        let root = fixture("-56.");
        let links = read(&root.path().join("sys"), &root.path().join("proc"), addresses, |name| (name == "wlan0").then(|| "Home".into()));
        assert_eq!(links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["eth0", "wlan0"], "virtual links are left out");
        assert_eq!((links[0].ssid.as_deref(), links[1].ssid.as_deref()), (None, Some("Home")));
        assert_eq!((links[0].kind, links[0].up, links[0].signal_dbm), (Kind::Wired, true, None));
        assert_eq!((links[1].kind, links[1].up, links[1].signal_dbm), (Kind::Wifi, true, Some(-56)));
        assert_eq!(links[1].addresses.len(), 2);
        assert!(!links[1].weak());
    }

    #[test]
    fn a_weak_signal_is_flagged_and_an_unplugged_cable_is_down() {
        let root = fixture("-81.");
        std::fs::write(root.path().join("sys/class/net/eth0/carrier"), "0").unwrap();
        let links = read(&root.path().join("sys"), &root.path().join("proc"), addresses, |_| None);
        assert!(!links[0].up);
        assert!(links[1].weak(), "{:?}", links[1]);
    }

    #[test]
    fn missing_trees_and_odd_levels_give_nothing_rather_than_an_error() {
        assert!(read(Path::new("/nonexistent"), Path::new("/nonexistent"), addresses, |_| None).is_empty());
        assert_eq!(signal("wlan0: 0000   54.  0.  -256 0", "wlan0"), None);
        assert_eq!(signal("garbage", "wlan0"), None);
    }
}
