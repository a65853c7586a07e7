//! wpa_supplicant's language, both ways: the networks the daemon hands it over its control
//! socket, made from `[network.wifi]` and `[network.hotspot]`, and what the socket answers
//! (`STATUS`, `SCAN_RESULTS`, `SIGNAL_POLL`). Pure text in and out; the socket itself is
//! `wpa_ctrl`.

use crate::config::WifiNetwork;

/// One network as wpa_supplicant's `SET_NETWORK <id> <variable> <value>` takes it, in the
/// order to send; `priority` is higher for the more preferred.
pub fn network_settings(net: &WifiNetwork, priority: usize) -> Vec<(&'static str, String)> {
    let mut out = vec![("ssid", quoted_or_hex(&net.ssid)), ("priority", priority.to_string())];
    if net.hidden {
        out.push(("scan_ssid", "1".into()));
    }
    match &net.psk {
        // A pre-computed PSK goes in raw; SAE needs the passphrase, so it is WPA2 only.
        Some(psk) if psk.len() == 64 && psk.chars().all(|c| c.is_ascii_hexdigit()) => {
            out.push(("key_mgmt", "WPA-PSK".into()));
            out.push(("psk", psk.clone()));
        }
        Some(passphrase) => {
            // Quoted as is: the config check allows only printable ASCII (as IEEE 802.11 does),
            // and wpa_supplicant reads a quoted value up to its last quote. WPA3-SAE where the
            // access point offers it, with protected management frames then.
            out.push(("key_mgmt", "WPA-PSK WPA-PSK-SHA256 SAE".into()));
            out.push(("ieee80211w", "1".into()));
            out.push(("psk", format!("\"{passphrase}\"")));
            out.push(("sae_password", format!("\"{passphrase}\"")));
        }
        None => out.push(("key_mgmt", "NONE".into())),
    }
    out
}

/// The setup hotspot as a network of wpa_supplicant's own access point (`mode=2`): 2.4 GHz
/// channel 6, which every phone sees in every country; WPA2 with `passphrase`, else open.
pub fn hotspot_settings(ssid: &str, passphrase: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = vec![("ssid", quoted_or_hex(ssid)), ("mode", "2".into()), ("frequency", "2437".into())];
    match passphrase {
        Some(p) => {
            out.push(("key_mgmt", "WPA-PSK".into()));
            out.push(("proto", "RSN".into()));
            out.push(("pairwise", "CCMP".into()));
            out.push(("group", "CCMP".into()));
            out.push(("psk", format!("\"{p}\"")));
        }
        None => out.push(("key_mgmt", "NONE".into())),
    }
    out
}

/// A `"…"` string when it holds only printable ASCII without quotes, else hex: wpa_supplicant
/// takes both, and hex cannot break out of the block whatever the SSID holds.
fn quoted_or_hex(s: &str) -> String {
    if s.chars().all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\') {
        format!("\"{s}\"")
    } else {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

/// One network a scan found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Seen {
    pub ssid: String,
    pub bssid: String,
    pub frequency_mhz: u32,
    pub signal_dbm: i32,
    /// It asks for a passphrase (WPA, WPA2, WPA3 personal).
    pub secured: bool,
    /// It offers WPA3-SAE.
    pub sae: bool,
}

/// Parses `SCAN_RESULTS`: a header line, then `bssid\tfrequency\tsignal\tflags\tssid` per
/// access point. Networks with several access points appear once, at their strongest; hidden
/// ones (empty SSID) are left out; strongest first.
pub fn scan_results(text: &str) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    for line in text.lines().skip(1) {
        let mut f = line.splitn(5, '\t');
        let (Some(bssid), Some(freq), Some(signal), Some(flags), Some(ssid)) = (f.next(), f.next(), f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(frequency_mhz), Ok(signal_dbm)) = (freq.parse(), signal.parse()) else { continue };
        let ssid = unescape(ssid);
        if ssid.is_empty() {
            continue;
        }
        let secured = flags.contains("PSK") || flags.contains("SAE");
        let entry = Seen { ssid, bssid: bssid.to_owned(), frequency_mhz, signal_dbm, secured, sae: flags.contains("SAE") };
        match seen.iter_mut().find(|s| s.ssid == entry.ssid) {
            Some(s) if s.signal_dbm < entry.signal_dbm => *s = entry,
            Some(_) => {}
            None => seen.push(entry),
        }
    }
    seen.sort_by(|a, b| b.signal_dbm.cmp(&a.signal_dbm).then_with(|| a.ssid.cmp(&b.ssid)));
    seen
}

/// wpa_supplicant prints SSIDs with `\xNN` for bytes it will not show.
fn unescape(s: &str) -> String {
    let mut bytes = Vec::with_capacity(s.len());
    let raw = s.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\'
            && i + 3 < raw.len()
            && raw[i + 1] == b'x'
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&raw[i + 2..i + 4]).unwrap_or(""), 16)
        {
            bytes.push(b);
            i += 4;
            continue;
        }
        if raw[i] == b'\\' && i + 1 < raw.len() && matches!(raw[i + 1], b'\\' | b'"') {
            bytes.push(raw[i + 1]);
            i += 2;
            continue;
        }
        bytes.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The link's quality from `SIGNAL_POLL` (`RSSI=-61`, `LINKSPEED=72`, `FREQUENCY=2437`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signal {
    pub rssi_dbm: Option<i32>,
    pub link_mbps: Option<u32>,
    pub frequency_mhz: Option<u32>,
}

/// Below this the link is weak: video at a few Mbit/s stutters (the page warns).
pub const WEAK_DBM: i32 = -75;

impl Signal {
    pub fn parse(text: &str) -> Signal {
        let mut s = Signal::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("RSSI", v)) => s.rssi_dbm = v.trim().parse().ok(),
                Some(("LINKSPEED", v)) => s.link_mbps = v.trim().parse().ok(),
                Some(("FREQUENCY", v)) => s.frequency_mhz = v.trim().parse().ok(),
                _ => {}
            }
        }
        s
    }

    /// Whether the page should warn about the signal.
    pub fn weak(&self) -> bool {
        self.rssi_dbm.is_some_and(|r| r < WEAK_DBM)
    }
}

/// Where wpa_supplicant's control sockets are, one per interface.
pub const CTRL_DIR: &str = "/run/wpa_supplicant";

/// What `STATUS` says about the interface's association.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `COMPLETED` once joined (or once the hotspot is up); `SCANNING`, `ASSOCIATING`,
    /// `DISCONNECTED`… before.
    pub state: String,
    /// The network joined (or the hotspot's name), while joined.
    pub ssid: Option<String>,
    /// `station` or `AP` (the hotspot).
    pub mode: String,
    /// The interface's IPv4 address, once DHCP gave one.
    pub ip_address: Option<String>,
}

impl Status {
    pub fn parse(text: &str) -> Status {
        let mut s = Status::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("wpa_state", v)) => s.state = v.trim().to_owned(),
                Some(("ssid", v)) => s.ssid = Some(v.to_owned()),
                Some(("mode", v)) => s.mode = v.trim().to_owned(),
                Some(("ip_address", v)) => s.ip_address = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        if s.state != "COMPLETED" {
            s.ssid = None;
        }
        s
    }

    /// Joined a network as a client, with an address: the device is reachable over Wi-Fi.
    pub fn joined_with_address(&self) -> bool {
        self.state == "COMPLETED" && self.mode != "AP" && self.ip_address.is_some()
    }
}

#[cfg(test)]
mod tests;
