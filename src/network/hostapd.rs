//! The setup hotspot as hostapd sees it: its name from the device's MAC and the configuration
//! file the shell hands to hostapd. Pure text.

use crate::config::Hotspot;

/// `lookout-XXXX`: the default host name, unique per device (the MAC's last two bytes).
pub fn default_hostname(mac: [u8; 6]) -> String {
    format!("lookout-{:02x}{:02x}", mac[4], mac[5])
}

/// `Lookout-XXXX`: the hotspot's name, the same four digits as the host name, so the owner
/// can tell two new devices apart.
pub fn ssid(mac: [u8; 6]) -> String {
    format!("Lookout-{:02X}{:02X}", mac[4], mac[5])
}

/// hostapd's configuration for the hotspot on `interface`: 2.4 GHz channel 6 (every phone
/// sees it, in every country), WPA2 with the passphrase if one is set, else open.
pub fn config(interface: &str, mac: [u8; 6], country: Option<&str>, settings: &Hotspot) -> String {
    let mut out = format!(
        "interface={interface}\ndriver=nl80211\nssid={}\nhw_mode=g\nchannel=6\nieee80211n=1\nwmm_enabled=1\nauth_algs=1\nignore_broadcast_ssid=0\n",
        ssid(mac)
    );
    if let Some(country) = country {
        out.push_str(&format!("country_code={country}\nieee80211d=1\n"));
    }
    if let Some(passphrase) = &settings.passphrase {
        // One passphrase per line: the config check allows only printable ASCII, no newline.
        out.push_str(&format!("wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={passphrase}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xdc, 0xa6, 0x32, 0x01, 0xab, 0x0c];

    #[test]
    fn names_come_from_the_mac() {
        assert_eq!(default_hostname(MAC), "lookout-ab0c");
        assert_eq!(ssid(MAC), "Lookout-AB0C");
    }

    #[test]
    fn an_open_hotspot_has_no_wpa_lines_and_a_protected_one_has_wpa2() {
        let open = config("wlan0", MAC, Some("DE"), &Hotspot::default());
        assert!(open.contains("ssid=Lookout-AB0C\n") && open.contains("country_code=DE\n") && !open.contains("wpa"), "{open}");
        let locked = config("wlan0", MAC, None, &Hotspot { passphrase: Some("let me in please".into()), ..Hotspot::default() });
        assert!(
            locked.contains("wpa=2\n") && locked.contains("wpa_passphrase=let me in please\n") && !locked.contains("country"),
            "{locked}"
        );
    }
}
