//! `[mqtt]` against a real Mosquitto broker (Debian's `mosquitto`) that the test starts with
//! a password file: Home Assistant discovery checked against the keys Home Assistant's MQTT
//! integration accepts, state, the recording switch and the buttons driven from the broker,
//! and the device's availability surviving a broker restart that loses every retained message.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, Packet, QoS};
use serde_json::Value;

use common::{Daemon, HANG};

const USER: &str = "lookout";
const PASSWORD: &str = "broker-pass-123";
const PREFIX: &str = "lookout/test";

/// A Mosquitto on a free port of 127.0.0.1, no anonymous clients, no persistence.
struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let passwords = dir.path().join("passwd");
        let made = Command::new("mosquitto_passwd").arg("-b").arg("-c").arg(&passwords).args([USER, PASSWORD]).status();
        assert!(made.is_ok_and(|s| s.success()), "mosquitto_passwd (Debian's mosquitto package) is needed");
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n", passwords.display()),
        )
        .unwrap();
        let mut broker = Broker { dir, port, child: None };
        broker.run();
        broker
    }

    fn run(&mut self) {
        let child = Command::new("mosquitto").arg("-c").arg(self.dir.path().join("mosquitto.conf")).spawn().expect("mosquitto runs");
        self.child = Some(child);
        let deadline = Instant::now() + HANG;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Per topic: the latest payload and how many came.
type Seen = Arc<Mutex<HashMap<String, (Vec<u8>, usize)>>>;

/// A client that follows every topic of the device and of discovery, keeping the latest
/// payload of each topic and how many came.
struct Watcher {
    client: AsyncClient,
    latest: Seen,
}

impl Watcher {
    fn connect(port: u16) -> Watcher {
        Watcher::connect_on(port, "test-watcher", &format!("{PREFIX}/#"))
    }

    fn connect_on(port: u16, id: &str, device_filter: &str) -> Watcher {
        let device_filter = device_filter.to_owned();
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_credentials(USER, PASSWORD);
        options.set_max_packet_size(8 * 1024 * 1024, 64 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let latest: Seen = Arc::default();
        let (seen, subscriber) = (latest.clone(), client.clone());
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                        // Subscriptions do not outlive a broker restart.
                        for filter in ["homeassistant/#", device_filter.as_str()] {
                            subscriber.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                        let mut seen = seen.lock().unwrap();
                        let entry = seen.entry(p.topic).or_insert((Vec::new(), 0));
                        *entry = (p.payload.to_vec(), entry.1 + 1);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Watcher { client, latest }
    }

    fn get(&self, topic: &str) -> Option<(Vec<u8>, usize)> {
        self.latest.lock().unwrap().get(topic).cloned()
    }

    /// Waits until `topic` carries `payload`.
    async fn wait_for(&self, topic: &str, payload: &str) {
        let deadline = Instant::now() + HANG;
        while self.get(topic).is_none_or(|(p, _)| p != payload.as_bytes()) {
            assert!(Instant::now() < deadline, "{topic} never said {payload}: {:?}", self.get(topic).map(|(p, _)| p));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every discovery message seen: (topic, config).
    fn discovery(&self) -> Vec<(String, Value)> {
        let latest = self.latest.lock().unwrap();
        let mut out: Vec<(String, Value)> = latest
            .iter()
            .filter(|(t, _)| t.starts_with("homeassistant/") && t.ends_with("/config"))
            .map(|(t, (p, _))| (t.clone(), serde_json::from_slice(p).expect("discovery payloads are JSON")))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    async fn wait_discovery(&self, suffix: &str) -> (String, Value) {
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(found) = self.discovery().into_iter().find(|(t, _)| t.ends_with(suffix)) {
                return found;
            }
            assert!(Instant::now() < deadline, "no discovery message ending {suffix}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The keys Home Assistant's MQTT integration accepts for the entities used here (from its
/// documentation), and those it requires: an unknown key makes it reject the whole entity.
fn check_home_assistant_schema(topic: &str, config: &Value) {
    let component = topic.split('/').nth(1).unwrap();
    let common = [
        "name",
        "unique_id",
        "availability_topic",
        "device",
        "origin",
        "icon",
        "device_class",
        "payload_available",
        "payload_not_available",
        "entity_category",
        "enabled_by_default",
    ];
    let (required, own): (&[&str], &[&str]) = match component {
        "camera" => (&["topic"], &["topic", "image_encoding"]),
        "binary_sensor" => (&["state_topic"], &["state_topic", "payload_on", "payload_off", "expire_after"]),
        "sensor" => (&["state_topic"], &["state_topic", "unit_of_measurement", "state_class", "expire_after"]),
        "switch" => (&["command_topic"], &["command_topic", "state_topic", "payload_on", "payload_off", "state_on", "state_off"]),
        "button" => (&["command_topic"], &["command_topic", "payload_press"]),
        other => panic!("{topic}: unexpected component {other}"),
    };
    let object = config.as_object().unwrap_or_else(|| panic!("{topic}: not an object"));
    for key in object.keys() {
        assert!(common.contains(&key.as_str()) || own.contains(&key.as_str()), "{topic}: Home Assistant rejects key `{key}`");
    }
    for key in required {
        assert!(object[*key].as_str().is_some_and(|t| !t.is_empty() && !t.contains(['+', '#'])), "{topic}: `{key}` missing");
    }
    let device_classes: &[&str] = match component {
        "binary_sensor" => &["connectivity", "running", "problem"],
        "sensor" => &["temperature"],
        "button" => &["identify", "restart", "update"],
        _ => &[],
    };
    if let Some(class) = object.get("device_class") {
        assert!(device_classes.contains(&class.as_str().unwrap()), "{topic}: device_class {class}");
    }
    if let Some(class) = object.get("state_class") {
        assert!(["measurement", "total", "total_increasing"].contains(&class.as_str().unwrap()), "{topic}: state_class {class}");
    }
    let device = &config["device"];
    assert!(device["identifiers"].as_array().is_some_and(|ids| !ids.is_empty()), "{topic}: device.identifiers");
    assert!(device["name"].is_string() && config["origin"]["name"].is_string(), "{topic}");
    assert!(config["unique_id"].as_str().is_some_and(|id| !id.is_empty()), "{topic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovers_the_device_drives_it_and_the_broker_may_restart() {
    let mut broker = Broker::start();
    let watcher = Watcher::connect(broker.port);
    // Read from text, as a device reads its boot file, so the settings API may change it.
    let text = format!(
        "[storage]\nmin_free = \"64MB\"\n[led]\nbackend = \"none\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nprefix = \"{PREFIX}\"\nhealth_every = \"5s\"\n\
         [[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 640\nheight = 360\n",
        broker.port
    );
    let config = lookout::config::Config::from_toml(&text, std::path::Path::new("lookout.toml")).unwrap();
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording");

    watcher.wait_for(&format!("{PREFIX}/availability"), "online").await;
    watcher.wait_for(&format!("{PREFIX}/cam/online"), "ON").await;
    watcher.wait_for(&format!("{PREFIX}/cam/recording"), "ON").await;
    watcher.wait_for(&format!("{PREFIX}/cam/recording_switch"), "ON").await;
    let (_, switch) = watcher.wait_discovery("/cam_recording_switch/config").await;
    watcher.wait_discovery("/throttled/config").await;
    let discovery = watcher.discovery();
    let components: std::collections::BTreeSet<&str> = discovery.iter().map(|(t, _)| t.split('/').nth(1).unwrap()).collect();
    assert_eq!(components.into_iter().collect::<Vec<_>>(), ["binary_sensor", "button", "camera", "sensor", "switch"]);
    for (topic, config) in &discovery {
        check_home_assistant_schema(topic, config);
    }

    // The switch Home Assistant shows really stops recording.
    let command = switch["command_topic"].as_str().unwrap().to_owned();
    watcher.client.publish(&command, QoS::AtLeastOnce, false, "OFF").await.unwrap();
    daemon.wait_state("cam", HANG, |c| c["recording_switch"] == false && c["recording"] == false).await.expect("switched off over MQTT");
    watcher.wait_for(&format!("{PREFIX}/cam/recording_switch"), "OFF").await;
    watcher.wait_for(&format!("{PREFIX}/cam/recording"), "OFF").await;

    // The snapshot button publishes a JPEG; identify goes through the one request path.
    let (_, snapshot_button) = watcher.wait_discovery("/cam_snapshot/config").await;
    let pictures_before = watcher.get(&format!("{PREFIX}/cam/snapshot")).map_or(0, |(_, n)| n);
    watcher.client.publish(snapshot_button["command_topic"].as_str().unwrap(), QoS::AtLeastOnce, false, "PRESS").await.unwrap();
    let deadline = Instant::now() + HANG;
    let jpeg = loop {
        if let Some((jpeg, n)) = watcher.get(&format!("{PREFIX}/cam/snapshot")).filter(|(_, n)| *n > pictures_before) {
            assert!(n > pictures_before);
            break jpeg;
        }
        assert!(Instant::now() < deadline, "no snapshot after the button");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "a JPEG");
    let (_, identify) = watcher.wait_discovery("/identify/config").await;
    watcher.client.publish(identify["command_topic"].as_str().unwrap(), QoS::AtLeastOnce, false, "PRESS").await.unwrap();
    let deadline = Instant::now() + HANG;
    loop {
        let event = watcher.get(&format!("{PREFIX}/events")).map(|(p, _)| serde_json::from_slice::<Value>(&p).unwrap());
        if event.as_ref().is_some_and(|e| e["type"] == "action_requested" && e["action"] == "identify" && e["origin"] == "mqtt") {
            break;
        }
        assert!(Instant::now() < deadline, "identify over MQTT not heard on the bus: {event:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + HANG;
    let free = loop {
        if let Some((p, _)) = watcher.get(&format!("{PREFIX}/health/disk_free")) {
            break String::from_utf8(p).unwrap();
        }
        assert!(Instant::now() < deadline, "no disk health published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(free.parse::<f64>().is_ok_and(|f| (0.0..=100.0).contains(&f)), "disk_free {free}");

    // The broker restarts and forgets every retained message: the device says it is online
    // again, with discovery and state.
    broker.kill();
    watcher.latest.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.run();
    watcher.wait_for(&format!("{PREFIX}/availability"), "online").await;
    watcher.wait_discovery("/cam_recording_switch/config").await;
    watcher.wait_for(&format!("{PREFIX}/cam/recording_switch"), "OFF").await;

    // A new prefix from the settings API applies at once: the old one says offline (the
    // password, never shown, is kept), the new one online.
    let owner = daemon.owner().await;
    let changed = owner
        .patch(format!("{}/api/config", daemon.base))
        .json(&serde_json::json!({ "mqtt": { "prefix": "lookout/renamed" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["restart_required"], serde_json::json!([]), "{changed}");
    watcher.wait_for(&format!("{PREFIX}/availability"), "offline").await;
    let renamed = Watcher::connect_on(broker.port, "test-watcher-2", "lookout/renamed/#");
    renamed.wait_for("lookout/renamed/availability", "online").await;
    renamed.wait_for("lookout/renamed/cam/online", "ON").await;

    // A clean stop says offline.
    daemon.stop().await;
    renamed.wait_for("lookout/renamed/availability", "offline").await;
}
