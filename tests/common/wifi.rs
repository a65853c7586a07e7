//! A stand-in wpa_supplicant for the network tests: its control-socket protocol, with a test
//! access point "in range" and phones on the hotspot as the test says; and a `/sys` with one
//! Wi-Fi interface and no cable.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout::config::{Config, NetworkSystem};

pub const MAC: &str = "dc:a6:32:01:ab:0c";
pub const HOTSPOT: &str = "Lookout-AB0C";

/// What the stand-in wpa_supplicant knows and what the test controls.
#[derive(Default)]
pub struct Radio {
    pub networks: BTreeMap<u32, (BTreeMap<String, String>, bool)>,
    pub next_id: u32,
    /// The test access point: its name and passphrase, while it is switched on.
    pub access_point: Option<(String, String)>,
    /// Phones on the hotspot.
    pub phones: usize,
    /// Every command received, as sent.
    pub commands: Vec<String>,
}

impl Radio {
    pub fn hotspot_up(&self) -> bool {
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
pub struct FakeSupplicant {
    radio: Arc<Mutex<Radio>>,
    stop: Arc<AtomicBool>,
}

impl FakeSupplicant {
    pub fn start(dir: &Path) -> FakeSupplicant {
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

    pub fn with<T>(&self, f: impl FnOnce(&mut Radio) -> T) -> T {
        f(&mut self.radio.lock().unwrap())
    }
}

impl Drop for FakeSupplicant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A device with one Wi-Fi interface and no cable: `/sys/class/net/wlan0` only.
pub fn fixture_system(dir: &Path) -> NetworkSystem {
    let wlan = dir.join("sys/class/net/wlan0");
    std::fs::create_dir_all(wlan.join("device")).unwrap();
    std::fs::create_dir_all(wlan.join("wireless")).unwrap();
    std::fs::write(wlan.join("address"), format!("{MAC}\n")).unwrap();
    std::fs::write(wlan.join("operstate"), "down\n").unwrap();
    let ctrl = dir.join("wpa");
    std::fs::create_dir_all(&ctrl).unwrap();
    let dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    NetworkSystem {
        sys: dir.join("sys"),
        ctrl_dir: ctrl,
        hotspot_address: std::net::Ipv4Addr::LOCALHOST,
        hotspot_dns: dns,
        apply_request: dir.join("network-changed"),
        // Long enough that the checks made right after a change are never too late on a busy
        // machine, short enough that the undo test does not wait long.
        confirm_within: Duration::from_secs(10),
    }
}

pub fn config(network: &str, system: NetworkSystem) -> Config {
    let text = format!(
        "[storage]\nmin_free = \"64MB\"\n[led]\nbackend = \"none\"\n{network}\n\
         [[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 10\n"
    );
    let mut config = Config::from_toml(&text, Path::new("lookout.toml")).unwrap();
    config.network.system = system;
    config
}
