use super::*;

fn net(ssid: &str, psk: Option<&str>, hidden: bool) -> WifiNetwork {
    WifiNetwork { ssid: ssid.into(), psk: psk.map(String::from), hidden }
}

fn value<'a>(settings: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
    settings.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
}

#[test]
fn networks_are_set_with_their_priority_and_wpa3_where_a_passphrase_allows() {
    let home = network_settings(&net("Home", Some("pa\"ss wo\\rd"), false), 3);
    assert_eq!(value(&home, "ssid"), Some("\"Home\""));
    assert_eq!(value(&home, "priority"), Some("3"));
    assert!(value(&home, "key_mgmt").is_some_and(|k| k.contains("SAE")), "{home:?}");
    assert_eq!(value(&home, "psk"), Some("\"pa\"ss wo\\rd\""), "quoted as is, read up to the last quote");
    let hex = "0123456789abcdef".repeat(4);
    let shed = network_settings(&net("Shed", Some(&hex), true), 2);
    assert_eq!(
        (value(&shed, "scan_ssid"), value(&shed, "psk"), value(&shed, "key_mgmt")),
        (Some("1"), Some(hex.as_str()), Some("WPA-PSK"))
    );
    let cafe = network_settings(&net("Cafe", None, false), 1);
    assert_eq!(value(&cafe, "key_mgmt"), Some("NONE"));
    assert_eq!(value(&cafe, "psk"), None);
}

#[test]
fn an_ssid_that_could_break_out_of_its_line_is_set_in_hex() {
    let evil = network_settings(&net("evil\"\n}\nnetwork={", None, false), 1);
    assert_eq!(value(&evil, "ssid"), Some("6576696c220a7d0a6e6574776f726b3d7b"));
}

#[test]
fn the_hotspot_is_an_access_point_on_channel_6_open_or_wpa2() {
    let open = hotspot_settings("Lookout-AB0C", None);
    assert_eq!((value(&open, "mode"), value(&open, "frequency"), value(&open, "key_mgmt")), (Some("2"), Some("2437"), Some("NONE")));
    let locked = hotspot_settings("Lookout-AB0C", Some("let me in please"));
    assert_eq!((value(&locked, "key_mgmt"), value(&locked, "proto")), (Some("WPA-PSK"), Some("RSN")));
    assert_eq!(value(&locked, "psk"), Some("\"let me in please\""));
}

#[test]
fn scan_results_keep_each_network_once_at_its_strongest_and_skip_hidden_ones() {
    let text = "bssid / frequency / signal level / flags / ssid\n\
        02:00:00:00:01:00\t2412\t-70\t[WPA2-PSK-CCMP][ESS]\tHome\n\
        02:00:00:00:02:00\t5180\t-52\t[WPA2-PSK+SAE-CCMP][ESS]\tHome\n\
        02:00:00:00:03:00\t2437\t-40\t[ESS]\tCafe\n\
        02:00:00:00:04:00\t2462\t-30\t[WPA2-PSK-CCMP][ESS]\t\n\
        02:00:00:00:05:00\t2462\t-80\t[WPA2-PSK-CCMP][ESS]\tCaf\\xc3\\xa9 \\\"Zur Post\\\"\n\
        garbage line\n";
    let seen = scan_results(text);
    let names: Vec<&str> = seen.iter().map(|s| s.ssid.as_str()).collect();
    assert_eq!(names, ["Cafe", "Home", "Café \"Zur Post\""]);
    assert_eq!((seen[1].frequency_mhz, seen[1].signal_dbm, seen[1].secured, seen[1].sae), (5180, -52, true, true));
    assert!(!seen[0].secured);
}

#[test]
fn signal_poll_is_read_and_a_weak_link_is_flagged() {
    let s = Signal::parse("RSSI=-78\nLINKSPEED=24\nNOISE=9999\nFREQUENCY=2437\n");
    assert_eq!(s, Signal { rssi_dbm: Some(-78), link_mbps: Some(24), frequency_mhz: Some(2437) });
    assert!(s.weak());
    assert!(!Signal::parse("RSSI=-60\n").weak());
    assert!(!Signal::parse("FAIL\n").weak(), "no reading is no warning");
}

#[test]
fn status_names_the_network_only_once_joined() {
    let joined = Status::parse("bssid=02:00:00:00:01:00\nfreq=2412\nssid=Home Net=2\nid=0\nmode=station\nwpa_state=COMPLETED\n");
    assert_eq!(joined.ssid.as_deref(), Some("Home Net=2"));
    assert!(!joined.joined_with_address(), "no address yet");
    let with_address = Status::parse("ssid=Home\nmode=station\nwpa_state=COMPLETED\nip_address=192.168.1.50\n");
    assert!(with_address.joined_with_address());
    let hotspot = Status::parse("ssid=Lookout-AB0C\nmode=AP\nwpa_state=COMPLETED\nip_address=192.168.4.1\n");
    assert!(!hotspot.joined_with_address(), "the device's own hotspot is not a network");
    let scanning = Status::parse("ssid=Old\nwpa_state=SCANNING\n");
    assert_eq!(scanning.ssid, None);
    assert_eq!(Status::parse("FAIL\n"), Status::default());
}
