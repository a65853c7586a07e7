//! The network service against a stand-in wpa_supplicant (its control socket protocol, with a
//! test access point "in range" and phones on the hotspot as the test says): with no network
//! the setup hotspot opens, its DNS and HTTP catch a phone's connectivity check, the setup
//! page's join saves the network and joins it; a configured network is joined and the hotspot
//! stays shut until the network is lost for the longer wait. The real radio path
//! (wpa_supplicant, `mac80211_hwsim`) is the image test's.

mod common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Daemon, HANG};
use lookout::config::{Config, NetworkSystem};

const MAC: &str = "dc:a6:32:01:ab:0c";
const HOTSPOT: &str = "Lookout-AB0C";

/// What the stand-in wpa_supplicant knows and what the test controls.
#[derive(Default)]
struct Radio {
    networks: BTreeMap<u32, (BTreeMap<String, String>, bool)>,
    next_id: u32,
    /// The test access point: its name and passphrase, while it is switched on.
    access_point: Option<(String, String)>,
    /// Phones on the hotspot.
    phones: usize,
    /// Every command received, as sent.
    commands: Vec<String>,
}

impl Radio {
    fn hotspot_up(&self) -> bool {
        self.networks.values().any(|(vars, enabled)| *enabled && vars.get("mode").map(String::as_str) == Some("2"))
    }

    fn joined(&self) -> Option<String> {
        let (ssid, psk) = self.access_point.as_ref()?;
        self.networks
            .values()
            .any(|(vars, enabled)| {
                *enabled
                    && vars.get("ssid") == Some(&format!("\"{ssid}\""))
                    && vars.get("psk") == Some(&format!("\"{psk}\""))
                    && vars.get("mode").is_none()
            })
            .then(|| ssid.clone())
    }

    fn answer(&mut self, command: &str) -> String {
        self.commands.push(command.to_owned());
        let words: Vec<&str> = command.splitn(4, ' ').collect();
        let id = || words.get(1).and_then(|w| w.parse::<u32>().ok());
        match words[0] {
            "PING" => "PONG\n".into(),
            "REMOVE_NETWORK" => {
                self.networks.clear();
                "OK\n".into()
            }
            "SET" | "REASSOCIATE" => "OK\n".into(),
            "ADD_NETWORK" => {
                let id = self.next_id;
                self.next_id += 1;
                self.networks.insert(id, (BTreeMap::new(), false));
                format!("{id}\n")
            }
            "SET_NETWORK" => match (id().and_then(|id| self.networks.get_mut(&id)), words.get(2), words.get(3)) {
                (Some((vars, _)), Some(key), Some(value)) => {
                    vars.insert((*key).to_owned(), (*value).to_owned());
                    "OK\n".into()
                }
                _ => "FAIL\n".into(),
            },
            "ENABLE_NETWORK" | "DISABLE_NETWORK" => match id().and_then(|id| self.networks.get_mut(&id)) {
                Some((_, enabled)) => {
                    *enabled = words[0] == "ENABLE_NETWORK";
                    "OK\n".into()
                }
                None => "FAIL\n".into(),
            },
            "SELECT_NETWORK" => {
                let chosen = id();
                for (id, (_, enabled)) in &mut self.networks {
                    *enabled = Some(*id) == chosen;
                }
                "OK\n".into()
            }
            "STATUS" if self.hotspot_up() => format!("wpa_state=COMPLETED\nmode=AP\nssid={HOTSPOT}\nip_address=192.168.4.1\n"),
            "STATUS" => match self.joined() {
                Some(ssid) => format!("bssid=02:00:00:00:01:00\nssid={ssid}\nmode=station\nwpa_state=COMPLETED\nip_address=10.9.8.7\n"),
                None => "wpa_state=SCANNING\n".into(),
            },
            "STA-FIRST" if self.hotspot_up() && self.phones > 0 => "02:00:00:00:00:07\nflags=[AUTH][ASSOC]\n".into(),
            "STA-FIRST" | "STA-NEXT" => "FAIL\n".into(),
            "SCAN" => "OK\n".into(),
            "SCAN_RESULTS" => "bssid / frequency / signal level / flags / ssid\n\
                               02:00:00:00:01:00\t2412\t-48\t[WPA2-PSK-CCMP][ESS]\tGarden\n\
                               02:00:00:00:02:00\t2437\t-80\t[ESS]\tCafe\n"
                .into(),
            _ => "UNKNOWN COMMAND\n".into(),
        }
    }
}

/// The stand-in, answering on `<dir>/wlan0` until dropped.
struct FakeSupplicant {
    radio: Arc<Mutex<Radio>>,
    stop: Arc<AtomicBool>,
}

impl FakeSupplicant {
    fn start(dir: &Path) -> FakeSupplicant {
        let socket = UnixDatagram::bind(dir.join("wlan0")).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let radio = Arc::new(Mutex::new(Radio::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (radio.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buffer) else { continue };
                let answer = r.lock().unwrap().answer(&String::from_utf8_lossy(&buffer[..n]));
                let _ = socket.send_to_addr(answer.as_bytes(), &from);
            }
        });
        FakeSupplicant { radio, stop }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Radio) -> T) -> T {
        f(&mut self.radio.lock().unwrap())
    }
}

impl Drop for FakeSupplicant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A device with one Wi-Fi interface and no cable: `/sys/class/net/wlan0` only.
fn fixture_system(dir: &Path) -> NetworkSystem {
    let wlan = dir.join("sys/class/net/wlan0");
    std::fs::create_dir_all(wlan.join("device")).unwrap();
    std::fs::create_dir_all(wlan.join("wireless")).unwrap();
    std::fs::write(wlan.join("address"), format!("{MAC}\n")).unwrap();
    std::fs::write(wlan.join("operstate"), "down\n").unwrap();
    let ctrl = dir.join("wpa");
    std::fs::create_dir_all(&ctrl).unwrap();
    let dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    NetworkSystem { sys: dir.join("sys"), ctrl_dir: ctrl, hotspot_address: std::net::Ipv4Addr::LOCALHOST, hotspot_dns: dns }
}

fn config(network: &str, system: NetworkSystem) -> Config {
    let text = format!(
        "[storage]\nmin_free = \"64MB\"\n[led]\nbackend = \"none\"\n{network}\n\
         [[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 10\n"
    );
    let mut config = Config::from_toml(&text, Path::new("lookout.toml")).unwrap();
    config.network.system = system;
    config
}

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
    assert_eq!(joining.status(), 202, "{:?}", joining.text().await);
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
