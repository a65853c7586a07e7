use super::*;

fn wifi(networks: Vec<WifiNetwork>) -> Wifi {
    Wifi { country: Some("DE".into()), networks }
}

fn net(ssid: &str, psk: Option<&str>, hidden: bool) -> WifiNetwork {
    WifiNetwork { ssid: ssid.into(), psk: psk.map(String::from), hidden }
}

#[test]
fn networks_are_written_in_order_of_preference_with_wpa3_where_a_passphrase_allows() {
    let hex = "0123456789abcdef".repeat(4);
    let text = config(
        &wifi(vec![net("Home", Some("pa\"ss wo\\rd"), false), net("Shed", Some(&hex), true), net("Cafe", None, false)]),
        "/run/lookout/wpa",
    );
    assert!(text.starts_with("ctrl_interface=DIR=/run/lookout/wpa\n"), "{text}");
    assert!(text.contains("country=DE\n"));
    let blocks: Vec<&str> = text.split("network={").skip(1).collect();
    assert_eq!(blocks.len(), 3);
    assert!(blocks[0].contains("ssid=\"Home\"") && blocks[0].contains("priority=3") && blocks[0].contains("SAE"), "{}", blocks[0]);
    assert!(blocks[0].contains("psk=\"pa\"ss wo\\rd\""), "quoted as is, read up to the last quote: {}", blocks[0]);
    assert!(
        blocks[1].contains("scan_ssid=1") && blocks[1].contains(&format!("psk={hex}\n")) && !blocks[1].contains("SAE"),
        "{}",
        blocks[1]
    );
    assert!(blocks[2].contains("key_mgmt=NONE") && blocks[2].contains("priority=1"));
}

#[test]
fn an_ssid_that_could_break_out_of_its_block_is_written_in_hex() {
    let text = config(&wifi(vec![net("evil\"\n}\nnetwork={", None, false)]), "/run/w");
    assert_eq!(text.matches("network={").count(), 1, "{text}");
    assert!(text.contains("ssid=6576696c220a7d0a6e6574776f726b3d7b\n"), "{text}");
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
    assert_eq!(joined, Status { state: "COMPLETED".into(), ssid: Some("Home Net=2".into()) });
    let scanning = Status::parse("ssid=Old\nwpa_state=SCANNING\n");
    assert_eq!(scanning.ssid, None);
    assert_eq!(Status::parse("FAIL\n"), Status::default());
}
