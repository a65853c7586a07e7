//! The device's names, unique per device and the same on every boot: made from its MAC.

/// `lookout-XXXX`: the default host name, unique per device (the MAC's last two bytes).
pub fn default_hostname(mac: [u8; 6]) -> String {
    format!("lookout-{:02x}{:02x}", mac[4], mac[5])
}

/// `Lookout-XXXX`: the hotspot's name, the same four digits as the host name, so the owner
/// can tell two new devices apart.
pub fn ssid(mac: [u8; 6]) -> String {
    format!("Lookout-{:02X}{:02X}", mac[4], mac[5])
}

/// The host name the system runs under now (set at boot by `lookout prepare-system`).
pub fn current_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty())
}

/// The MAC of the interface whose sysfs folder is `dir`.
pub fn interface_mac(dir: &std::path::Path) -> Option<[u8; 6]> {
    parse_mac(&std::fs::read_to_string(dir.join("address")).ok()?)
}

/// A MAC as sysfs writes it (`dc:a6:32:01:ab:0c`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xdc, 0xa6, 0x32, 0x01, 0xab, 0x0c];

    #[test]
    fn names_come_from_the_mac() {
        assert_eq!(default_hostname(MAC), "lookout-ab0c");
        assert_eq!(ssid(MAC), "Lookout-AB0C");
        assert_eq!(parse_mac("dc:a6:32:01:ab:0c\n"), Some(MAC));
        assert_eq!(parse_mac("dc:a6:32:01:ab"), None);
        assert_eq!(parse_mac("dc:a6:32:01:ab:0c:00"), None);
        assert_eq!(parse_mac("zz:a6:32:01:ab:0c"), None);
    }
}
