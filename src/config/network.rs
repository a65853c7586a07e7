//! `[network]`: the device's name, the Wi-Fi networks it joins, its setup hotspot and its
//! time servers. Read by `network` (which applies them) and checked by `validate`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the device reaches, and is reached on, the local network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// The device's host name; unset: `lookout-XXXX` from the last four hex digits of its MAC,
    /// unique per device (it also answers as `lookout.local` while no other device does).
    pub hostname: Option<String>,
    pub wired: Wired,
    pub wifi: Wifi,
    pub hotspot: Hotspot,
    /// NTP servers; empty: the system's defaults.
    pub ntp: Vec<String>,
    /// Where the system's network lives. Not a setting: the device's paths, or a test's
    /// fixtures.
    #[serde(skip)]
    pub system: System,
}

/// The system the network service drives.
#[derive(Debug, Clone)]
pub struct System {
    /// `/sys`: the interfaces, their MACs and carriers.
    pub sys: std::path::PathBuf,
    /// wpa_supplicant's control sockets.
    pub ctrl_dir: std::path::PathBuf,
    /// The device's address on its hotspot (systemd-networkd gives it to the interface in
    /// access-point mode: `overlays/rootfs/etc/systemd/network/10-hotspot.network`).
    pub hotspot_address: std::net::Ipv4Addr,
    /// Where the hotspot's captive DNS answers.
    pub hotspot_dns: std::net::SocketAddr,
    /// Written after `[network]` changed: `lookout-network.path` then applies what the daemon
    /// cannot (host name, time servers, fixed addresses) as root.
    pub apply_request: std::path::PathBuf,
    /// How long a network change from the page waits for confirmation before it is undone.
    pub confirm_within: std::time::Duration,
}

impl Default for System {
    fn default() -> Self {
        let hotspot_address = std::net::Ipv4Addr::new(192, 168, 4, 1);
        System {
            sys: "/sys".into(),
            ctrl_dir: crate::network::wpa::CTRL_DIR.into(),
            hotspot_address,
            hotspot_dns: (hotspot_address, 53).into(),
            apply_request: "/run/lookout/network-changed".into(),
            confirm_within: crate::network::rollback::CONFIRM_WITHIN,
        }
    }
}

/// The cable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Wired {
    pub ipv4: Ipv4,
}

/// How an interface gets its IPv4 address: DHCP unless an address is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ipv4 {
    /// `192.168.1.50/24`; unset: DHCP.
    pub address: Option<String>,
    /// The router, with a fixed address.
    pub gateway: Option<String>,
    /// Name servers, with a fixed address.
    pub dns: Vec<String>,
}

/// The Wi-Fi client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Wifi {
    /// ISO 3166 country code (`DE`): which channels and powers the radio may use. Required
    /// with any network, as the Raspberry Pi Imager asks for it.
    pub country: Option<String>,
    /// Networks to join, most preferred first.
    pub networks: Vec<WifiNetwork>,
    pub ipv4: Ipv4,
}

/// One Wi-Fi network the device may join.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiNetwork {
    pub ssid: String,
    /// The passphrase (8-63 characters) or the pre-computed PSK (64 hex digits); unset for an
    /// open network. Never serialized back out, never logged.
    #[serde(default, skip_serializing)]
    pub psk: Option<String>,
    /// The network does not broadcast its name: probe for it by name.
    #[serde(default)]
    pub hidden: bool,
}

impl std::fmt::Debug for WifiNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WifiNetwork")
            .field("ssid", &self.ssid)
            .field("psk", &self.psk.as_ref().map(|_| "<secret>"))
            .field("hidden", &self.hidden)
            .finish()
    }
}

/// The access point the device opens when it has no network, to be set up from a phone.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hotspot {
    /// Open it this long after start-up when no network is usable by then (a cable's DHCP
    /// and a Wi-Fi join both take a few seconds; 30 s leaves room for a slow router).
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// Open it again this long after a network that worked was lost (a router rebooting
    /// takes a minute or two; the device keeps trying its networks meanwhile).
    #[serde(with = "humantime_serde")]
    pub again_after: Duration,
    /// An open (passphrase-less) hotspot closes after this long without a client; a short
    /// press of the button or a restart opens it again.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// WPA2 passphrase (8-63 characters); unset: an open hotspot, limited by `open_for`.
    #[serde(skip_serializing)]
    pub passphrase: Option<String>,
    pub enabled: bool,
}

impl Default for Hotspot {
    fn default() -> Self {
        Hotspot {
            after: Duration::from_secs(30),
            again_after: Duration::from_secs(300),
            open_for: Duration::from_secs(600),
            passphrase: None,
            enabled: true,
        }
    }
}

impl std::fmt::Debug for Hotspot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotspot")
            .field("after", &self.after)
            .field("again_after", &self.again_after)
            .field("open_for", &self.open_for)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<secret>"))
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Every problem of `[network]`, as (field, message).
pub fn problems(n: &Network) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut fail = |field: String, message: String| out.push((field, message));
    if let Some(host) = &n.hostname
        && !valid_hostname(host)
    {
        fail("network.hostname".into(), format!("`{host}` must be 1-63 characters of a-z, 0-9 and -, not starting or ending with -"));
    }
    let wifi = &n.wifi;
    match &wifi.country {
        Some(c) if !(c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase())) => {
            fail("network.wifi.country".into(), format!("`{c}` must be a two-letter country code in capitals, such as DE or US"))
        }
        None if !wifi.networks.is_empty() => {
            fail("network.wifi.country".into(), "is needed with any network: the radio may only use the channels of its country".into())
        }
        _ => {}
    }
    for (i, net) in wifi.networks.iter().enumerate() {
        if net.ssid.is_empty() || net.ssid.len() > 32 {
            fail(format!("network.wifi.networks[{i}].ssid"), "must be 1-32 bytes".into());
        }
        if let Some(psk) = &net.psk
            && !valid_psk(psk)
        {
            fail(
                format!("network.wifi.networks[{i}].psk"),
                "must be a passphrase of 8-63 printable ASCII characters or 64 hex digits".into(),
            );
        }
    }
    if let Some(p) = &n.hotspot.passphrase
        && !valid_passphrase(p)
    {
        fail("network.hotspot.passphrase".into(), "must be 8-63 printable ASCII characters".into());
    }
    if n.hotspot.open_for.is_zero() {
        fail("network.hotspot.open_for".into(), "must be more than zero".into());
    }
    ipv4_problems(&n.wired.ipv4, "network.wired.ipv4", &mut fail);
    ipv4_problems(&n.wifi.ipv4, "network.wifi.ipv4", &mut fail);
    for (i, server) in n.ntp.iter().enumerate() {
        if server.is_empty() || server.chars().any(|c| c.is_whitespace()) {
            fail(format!("network.ntp[{i}]"), format!("`{server}` must be a host name or an address"));
        }
    }
    out
}

fn ipv4_problems(ip: &Ipv4, at: &str, fail: &mut impl FnMut(String, String)) {
    if let Some(address) = &ip.address
        && parse_cidr(address).is_none()
    {
        fail(format!("{at}.address"), format!("`{address}` must be an IPv4 address with its prefix length, such as 192.168.1.50/24"));
    }
    if ip.address.is_none() && (ip.gateway.is_some() || !ip.dns.is_empty()) {
        fail(format!("{at}.address"), "is needed with a gateway or name servers (without it, DHCP gives both)".into());
    }
    if let Some(gateway) = &ip.gateway
        && gateway.parse::<std::net::Ipv4Addr>().is_err()
    {
        fail(format!("{at}.gateway"), format!("`{gateway}` must be an IPv4 address"));
    }
    for (i, server) in ip.dns.iter().enumerate() {
        if server.parse::<std::net::IpAddr>().is_err() {
            fail(format!("{at}.dns[{i}]"), format!("`{server}` must be an IP address"));
        }
    }
}

/// `a.b.c.d/len` with a prefix length of 1-32.
pub fn parse_cidr(text: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (address, length) = text.split_once('/')?;
    let length: u8 = length.parse().ok().filter(|l| (1..=32).contains(l))?;
    Some((address.parse().ok()?, length))
}

fn valid_hostname(h: &str) -> bool {
    (1..=63).contains(&h.len())
        && !h.starts_with('-')
        && !h.ends_with('-')
        && h.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A WPA passphrase: 8-63 printable ASCII characters (IEEE 802.11i).
fn valid_passphrase(p: &str) -> bool {
    (8..=63).contains(&p.len()) && p.chars().all(|c| (' '..='~').contains(&c))
}

/// A passphrase, or a pre-computed PSK of 64 hex digits.
fn valid_psk(p: &str) -> bool {
    valid_passphrase(p) || (p.len() == 64 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_address_needs_its_prefix_and_comes_before_a_gateway() {
        let good =
            parse("[wired.ipv4]\naddress = \"192.168.1.50/24\"\ngateway = \"192.168.1.1\"\ndns = [\"192.168.1.1\", \"2001:db8::1\"]\n");
        assert!(problems(&good).is_empty(), "{:?}", problems(&good));
        let bad = parse("[wired.ipv4]\naddress = \"192.168.1.50\"\n[wifi.ipv4]\ngateway = \"192.168.1.1\"\n");
        let fields: Vec<String> = problems(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["network.wired.ipv4.address", "network.wifi.ipv4.address"]);
        assert_eq!(parse_cidr("10.0.0.2/8"), Some(("10.0.0.2".parse().unwrap(), 8)));
        assert_eq!(parse_cidr("10.0.0.2/33"), None);
    }

    fn parse(text: &str) -> Network {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_network_written_as_the_imager_would_is_valid_and_its_secrets_stay_in() {
        let n = parse(
            "hostname = \"garden-cam\"\n[wifi]\ncountry = \"DE\"\nnetworks = [{ ssid = \"Home\", psk = \"correct horse\" }, { ssid = \"Shed\", hidden = true }]\n",
        );
        assert!(problems(&n).is_empty(), "{:?}", problems(&n));
        assert!(n.wired.ipv4.address.is_none(), "DHCP unless told");
        assert!(n.wifi.networks[1].hidden && n.wifi.networks[1].psk.is_none());
        let shown = format!("{n:?} {}", toml::to_string(&n).unwrap());
        assert!(!shown.contains("correct horse"), "{shown}");
    }

    #[test]
    fn each_wrong_value_is_named() {
        let n = parse(
            "hostname = \"Garden Cam\"\nntp = [\"\"]\n[wifi]\nnetworks = [{ ssid = \"\", psk = \"short\" }]\n[hotspot]\npassphrase = \"1234\"\nopen_for = \"0s\"\n",
        );
        let fields: Vec<String> = problems(&n).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "network.hostname",
                "network.wifi.country",
                "network.wifi.networks[0].ssid",
                "network.wifi.networks[0].psk",
                "network.hotspot.passphrase",
                "network.hotspot.open_for",
                "network.ntp[0]"
            ]
        );
        let n = parse("[wifi]\ncountry = \"de\"\n");
        assert_eq!(problems(&n)[0].0, "network.wifi.country");
        let hex = "a".repeat(64);
        let n = parse(&format!("[wifi]\ncountry = \"US\"\nnetworks = [{{ ssid = \"x\", psk = \"{hex}\" }}]\n"));
        assert!(problems(&n).is_empty(), "a pre-computed PSK");
    }
}
