//! wpa_supplicant's language, both ways: the network blocks of its configuration, made from
//! `[network.wifi]`, and what its control socket answers (`SCAN_RESULTS`, `SIGNAL_POLL`).
//! Pure text in and out; the socket itself lives in the shell.

use crate::config::{Wifi, WifiNetwork};

/// The whole `wpa_supplicant.conf` for `wifi`: networks in order of preference (the first
/// gets the highest priority). `ctrl_dir` is where the control socket goes.
pub fn config(wifi: &Wifi, ctrl_dir: &str) -> String {
    let mut out = format!("ctrl_interface=DIR={ctrl_dir}\nupdate_config=0\n");
    if let Some(country) = &wifi.country {
        out.push_str(&format!("country={country}\n"));
    }
    // Station mode with protected management frames where the network offers them (WPA3).
    out.push_str("pmf=1\nsae_pwe=2\n");
    let count = wifi.networks.len();
    for (i, net) in wifi.networks.iter().enumerate() {
        out.push_str(&network_block(net, count - i));
    }
    out
}

fn network_block(net: &WifiNetwork, priority: usize) -> String {
    let mut b = format!("\nnetwork={{\n\tssid={}\n\tpriority={priority}\n", quoted_or_hex(&net.ssid));
    if net.hidden {
        b.push_str("\tscan_ssid=1\n");
    }
    match &net.psk {
        // A pre-computed PSK goes in raw; SAE needs the passphrase, so it is WPA2 only.
        Some(psk) if psk.len() == 64 && psk.chars().all(|c| c.is_ascii_hexdigit()) => {
            b.push_str(&format!("\tkey_mgmt=WPA-PSK\n\tpsk={psk}\n"));
        }
        Some(passphrase) => {
            // Quoted as is: the config check allows only printable ASCII (as IEEE 802.11 does),
            // and wpa_supplicant reads a quoted value up to its last quote.
            b.push_str(&format!(
                "\tkey_mgmt=WPA-PSK WPA-PSK-SHA256 SAE\n\tieee80211w=1\n\tpsk=\"{passphrase}\"\n\tsae_password=\"{passphrase}\"\n"
            ));
        }
        None => b.push_str("\tkey_mgmt=NONE\n"),
    }
    b.push_str("}\n");
    b
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
#[derive(Debug, Clone, PartialEq)]
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
    /// `COMPLETED` once joined; `SCANNING`, `ASSOCIATING`, `DISCONNECTED`… before.
    pub state: String,
    /// The network joined, while joined.
    pub ssid: Option<String>,
}

impl Status {
    pub fn parse(text: &str) -> Status {
        let mut s = Status::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("wpa_state", v)) => s.state = v.trim().to_owned(),
                Some(("ssid", v)) => s.ssid = Some(v.to_owned()),
                _ => {}
            }
        }
        if s.state != "COMPLETED" {
            s.ssid = None;
        }
        s
    }
}

#[cfg(test)]
mod tests;
