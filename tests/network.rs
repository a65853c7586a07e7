//! The network service against a stand-in wpa_supplicant (`common::wifi`): with no network
//! the setup hotspot opens, its DNS and HTTP catch a phone's connectivity check, the setup
//! page's join saves the network and joins it; a configured network is joined and the hotspot
//! stays shut until the network is lost for the longer wait. The real radio path
//! (wpa_supplicant, `mac80211_hwsim`) is the image test's.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::wifi::{FakeSupplicant, HOTSPOT, config, fixture_system};
use common::{Daemon, HANG};

async fn network(owner: &reqwest::Client, daemon: &Daemon) -> Value {
    owner.get(format!("{}/api/network", daemon.base)).send().await.unwrap().json().await.unwrap()
}

/// Polls `/api/network` until `pred` holds; the last answer either way.
async fn wait_network(owner: &reqwest::Client, daemon: &Daemon, pred: impl Fn(&Value) -> bool) -> Result<Value, Value> {
    let deadline = Instant::now() + HANG;
    loop {
        let seen = network(owner, daemon).await;
        if pred(&seen) {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            return Err(seen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A DNS query for `name`, type A.
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A plain HTTP request with the given `Host`, as a phone's connectivity check sends it; the
/// status line and headers of the answer.
async fn raw_get(daemon: &Daemon, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = daemon.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_network_the_hotspot_opens_catches_the_phones_check_and_the_setup_page_joins_a_network() {
    let dir = tempfile::tempdir().unwrap();
    let system = fixture_system(dir.path());
    let dns = system.hotspot_dns;
    let radio = FakeSupplicant::start(&system.ctrl_dir);
    radio.with(|r| r.access_point = Some(("Garden".into(), "correct horse".into())));
    let daemon = Daemon::start(config("[network.hotspot]\nafter = \"1s\"\n", system)).await;
    let owner = daemon.owner().await;

    let open = wait_network(&owner, &daemon, |n| n["wifi"]["hotspot"]["open"] == true).await.expect("the hotspot opens");
    assert_eq!(open["wifi"]["hotspot"]["ssid"], HOTSPOT, "{open}");
    assert_eq!((open["wifi"]["interface"].as_str(), open["wifi"]["hotspot"]["protected"].as_bool()), (Some("wlan0"), Some(false)));
    radio.with(|r| {
        let (vars, enabled) = r.networks.values().find(|(v, _)| v.get("mode").map(String::as_str) == Some("2")).expect("a hotspot network");
        assert!(enabled, "selected");
        assert_eq!((vars["ssid"].as_str(), vars["key_mgmt"].as_str(), vars["frequency"].as_str()), ("\"Lookout-AB0C\"", "NONE", "2437"));
    });

    // The phone's resolver gets the device for any name, and its connectivity check a
    // redirect to the page; the device itself still answers.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let deadline = Instant::now() + HANG;
    let reply = loop {
        socket.send_to(&dns_query("connectivitycheck.gstatic.com"), dns).await.unwrap();
        let mut buffer = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buffer)).await {
            Ok(Ok(n)) => break buffer[..n].to_vec(),
            _ => assert!(Instant::now() < deadline, "the captive DNS never answered"),
        }
    };
    assert_eq!(&reply[..2], &[0xab, 0xcd]);
    assert_eq!(&reply[reply.len() - 4..], &[127, 0, 0, 1], "the device's hotspot address");
    let check = raw_get(&daemon, "connectivitycheck.gstatic.com", "/generate_204").await;
    assert!(check.starts_with("http/1.1 302") && check.contains("location: http://127.0.0.1/"), "{check}");
    let own = raw_get(&daemon, "127.0.0.1", "/livez").await;
    assert!(own.starts_with("http/1.1 200"), "{own}");

    // A phone joins: it shows; a scan lists the test access point.
    radio.with(|r| r.phones = 1);
    wait_network(&owner, &daemon, |n| n["wifi"]["hotspot"]["clients"] == 1).await.expect("the phone is counted");
    let scan: Value = owner.post(format!("{}/api/network/scan", daemon.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(scan["networks"][0]["ssid"], "Garden", "{scan}");
    assert_eq!(scan["networks"][0]["secured"], true);
    let anonymous =
        reqwest::Client::new().post(daemon.anonymous_url("/api/network/join")).json(&json!({"ssid": "x"})).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "only the owner sets the device's network");

    // A bad choice is refused with the reason, nothing saved.
    let refused =
        owner.post(format!("{}/api/network/join", daemon.base)).json(&json!({ "ssid": "Garden", "psk": "short" })).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let why = refused.text().await.unwrap();
    assert!(why.contains("country") || why.contains("psk"), "{why}");

    // The setup: the network is saved and joined, the hotspot closes.
    let joining = owner
        .post(format!("{}/api/network/join", daemon.base))
        .json(&json!({ "ssid": "Garden", "psk": "correct horse", "country": "DE" }))
        .send()
        .await
        .unwrap();
    assert_eq!(joining.status(), 202);
    let joining: Value = joining.json().await.unwrap();
    assert!(joining["confirm"].is_null(), "a join from the setup hotspot cuts nothing off: no rollback ({joining})");
    radio.with(|r| r.phones = 0);
    let joined = wait_network(&owner, &daemon, |n| n["wifi"]["joined"] == "Garden").await.expect("joins the chosen network");
    assert_eq!(joined["wifi"]["hotspot"]["open"], false, "{joined}");
    assert_eq!(joined["wifi"]["setup"]["state"], "joined", "{joined}");
    assert_eq!(joined["known"][0]["ssid"], "Garden");
    assert!(!joined.to_string().contains("correct horse"), "no passphrase in an answer: {joined}");
    let saved: Value = owner.get(format!("{}/api/config", daemon.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(saved["network"]["wifi"]["networks"][0]["ssid"], "Garden");
    assert_eq!(saved["network"]["wifi"]["country"], "DE");
    assert!(!saved.to_string().contains("correct horse"), "{saved}");
    radio.with(|r| {
        assert!(r.commands.iter().any(|c| c == "SET country DE"), "the country reaches the radio");
        assert!(!r.hotspot_up());
    });
    let check = raw_get(&daemon, "connectivitycheck.gstatic.com", "/generate_204").await;
    assert!(!check.contains("location: http://127.0.0.1/"), "no captive redirect once joined: {check}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_network_is_joined_and_only_its_loss_for_the_longer_wait_opens_the_hotspot() {
    let dir = tempfile::tempdir().unwrap();
    let system = fixture_system(dir.path());
    let radio = FakeSupplicant::start(&system.ctrl_dir);
    radio.with(|r| r.access_point = Some(("Garden".into(), "correct horse".into())));
    let daemon = Daemon::start(config(
        "[network.wifi]\ncountry = \"DE\"\nnetworks = [{ ssid = \"Shed\", psk = \"other pass\" }, { ssid = \"Garden\", psk = \"correct horse\" }]\n\
         [network.hotspot]\nafter = \"1s\"\nagain_after = \"5s\"\n",
        system,
    ))
    .await;
    let owner = daemon.owner().await;
    wait_network(&owner, &daemon, |n| n["wifi"]["joined"] == "Garden").await.expect("joins the configured network");
    radio.with(|r| {
        let priority =
            |ssid: &str| r.networks.values().find(|(v, _)| v["ssid"] == format!("\"{ssid}\"")).map(|(v, e)| (v["priority"].clone(), *e));
        assert_eq!(priority("Shed"), Some(("2".into(), true)), "the first network is preferred");
        assert_eq!(priority("Garden"), Some(("1".into(), true)));
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(network(&owner, &daemon).await["wifi"]["hotspot"]["open"], false, "joined: no hotspot after `after`");

    // The access point goes away: the hotspot waits `again_after`, not `after`.
    radio.with(|r| r.access_point = None);
    let lost = Instant::now();
    wait_network(&owner, &daemon, |n| n["wifi"]["joined"].is_null()).await.expect("the loss is seen");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(network(&owner, &daemon).await["wifi"]["hotspot"]["open"], false, "2 s after the loss, the hotspot still waits");
    wait_network(&owner, &daemon, |n| n["wifi"]["hotspot"]["open"] == true).await.expect("the hotspot opens after again_after");
    assert!(lost.elapsed() >= Duration::from_secs(5), "opened {:?} after the loss", lost.elapsed());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_from_the_page_is_undone_unless_confirmed_and_kept_once_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let system = fixture_system(dir.path());
    let asked = system.apply_request.clone();
    let radio = FakeSupplicant::start(&system.ctrl_dir);
    radio.with(|r| r.access_point = Some(("Garden".into(), "correct horse".into())));
    let daemon =
        Daemon::start(config("[network.wifi]\ncountry = \"DE\"\nnetworks = [{ ssid = \"Garden\", psk = \"correct horse\" }]\n", system))
            .await;
    let owner = daemon.owner().await;
    wait_network(&owner, &daemon, |n| n["wifi"]["joined"] == "Garden").await.expect("joined");
    let patch = |body: Value| {
        let owner = owner.clone();
        let url = format!("{}/api/config", daemon.base);
        async move {
            let r = owner.patch(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let shown = |owner: reqwest::Client, url: String| async move { owner.get(url).send().await.unwrap().json::<Value>().await.unwrap() };
    let config_url = format!("{}/api/config", daemon.base);

    // Unconfirmed: applied (the root step is asked), then undone by itself.
    let changed = patch(json!({ "network": { "hostname": "porch", "wired": { "ipv4": { "address": "192.168.1.50/24" } } } })).await;
    let ticket = changed["confirm"]["ticket"].as_u64().expect("a network change waits for confirmation");
    assert_eq!(changed["restart_required"], json!([]), "the network applies live: {changed}");
    // The network service asks when it hears the change on the bus, which may be after the answer.
    let asked_for = |unlike: Option<String>| {
        let asked = asked.clone();
        async move {
            let deadline = Instant::now() + HANG;
            loop {
                match std::fs::read_to_string(&asked) {
                    Ok(text) if unlike.as_ref() != Some(&text) => return text,
                    _ => assert!(Instant::now() < deadline, "lookout-network.service was not asked to apply the change"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let first_ask = asked_for(None).await;
    assert_eq!(network(&owner, &daemon).await["unconfirmed_change"]["ticket"], ticket);
    assert_eq!(shown(owner.clone(), config_url.clone()).await["network"]["hostname"], "porch");
    let deadline = Instant::now() + HANG;
    while !shown(owner.clone(), config_url.clone()).await["network"]["hostname"].is_null() {
        assert!(Instant::now() < deadline, "the unconfirmed change was never undone");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = shown(owner.clone(), config_url.clone()).await;
    assert!(after["network"]["wired"]["ipv4"]["address"].is_null(), "{after}");
    assert_eq!(after["network"]["wifi"]["networks"][0]["ssid"], "Garden", "what worked before stays");
    asked_for(Some(first_ask)).await; // the undo is applied too
    assert!(network(&owner, &daemon).await["unconfirmed_change"].is_null());
    let late = owner.post(format!("{}/api/network/confirm", daemon.base)).json(&json!({ "ticket": ticket })).send().await.unwrap();
    assert_eq!(late.status(), 409, "too late to keep it");

    // Confirmed from the page: it stays past the deadline.
    let changed = patch(json!({ "network": { "hostname": "porch" } })).await;
    let ticket = changed["confirm"]["ticket"].as_u64().unwrap();
    let kept = owner.post(format!("{}/api/network/confirm", daemon.base)).json(&json!({ "ticket": ticket })).send().await.unwrap();
    assert_eq!(kept.status(), 200);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(shown(owner.clone(), config_url.clone()).await["network"]["hostname"], "porch", "a confirmed change stays");
    daemon.stop().await;
}
