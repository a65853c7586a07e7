//! What goes on which topic, Home Assistant's discovery messages, and what a command topic
//! asks for. Sans-IO: everything here is text in, text out.
//!
//! Under the prefix `P` (one per device):
//! - `P/availability`: `online` / `offline` (retained; `offline` is also the last will)
//! - `P/<camera>/online`, `…/recording`, `…/recording_switch`: `ON` / `OFF` (retained)
//! - `P/<camera>/fps`: frames per second (retained)
//! - `P/<camera>/snapshot`: a JPEG (retained), on connect and on each press of
//!   `P/<camera>/snapshot/set`
//! - `P/health/temperature` (°C), `P/health/throttled` (`ON`/`OFF`), `P/health/disk_free` (%)
//! - `P/events`: every event as the events socket sends it, but `camera_stats` and the
//!   owner-only ones (not retained)
//! - commands: `P/<camera>/recording_switch/set` (`ON`/`OFF`), `P/<camera>/snapshot/set`,
//!   `P/identify/set`, `P/reboot/set` (any payload; Home Assistant sends `PRESS`)

use serde_json::{Value, json};

use crate::events::Event;
use crate::status::CameraStatus;

/// One camera as discovery describes it.
pub struct DiscoveredCamera<'a> {
    pub name: &'a str,
    /// Its config records: it gets a recording switch.
    pub records: bool,
}

/// The device's topics.
#[derive(Debug, Clone)]
pub struct Topics {
    pub prefix: String,
    pub discovery_prefix: String,
    /// Names the device in discovery (`node_id`, unique ids): topic-safe.
    pub node: String,
}

/// What a command topic asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// An action by name for the one request path (`actions::request`).
    Action { name: &'static str, camera: Option<String> },
    /// Publish a JPEG of the camera now.
    Snapshot { camera: String },
}

const ON: &str = "ON";
const OFF: &str = "OFF";

fn on_off(b: bool) -> String {
    if b { ON } else { OFF }.to_owned()
}

impl Topics {
    pub fn availability(&self) -> String {
        format!("{}/availability", self.prefix)
    }

    fn camera(&self, camera: &str, what: &str) -> String {
        format!("{}/{camera}/{what}", self.prefix)
    }

    pub fn snapshot(&self, camera: &str) -> String {
        self.camera(camera, "snapshot")
    }

    pub fn health(&self, what: &str) -> String {
        format!("{}/health/{what}", self.prefix)
    }

    pub fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }

    /// The filters that carry commands.
    pub fn subscriptions(&self) -> Vec<String> {
        let p = &self.prefix;
        vec![format!("{p}/+/recording_switch/set"), format!("{p}/+/snapshot/set"), format!("{p}/identify/set"), format!("{p}/reboot/set")]
    }

    /// The command a message on `topic` carries, if it is one.
    pub fn command(&self, topic: &str, payload: &[u8]) -> Option<Command> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["identify", "set"] => Some(Command::Action { name: "identify", camera: None }),
            ["reboot", "set"] => Some(Command::Action { name: "reboot", camera: None }),
            [camera, "snapshot", "set"] => Some(Command::Snapshot { camera: (*camera).to_owned() }),
            [camera, "recording_switch", "set"] => {
                let name = match std::str::from_utf8(payload).ok()?.trim() {
                    p if p.eq_ignore_ascii_case(ON) => "recording.start",
                    p if p.eq_ignore_ascii_case(OFF) => "recording.stop",
                    _ => return None,
                };
                Some(Command::Action { name, camera: Some((*camera).to_owned()) })
            }
            _ => None,
        }
    }

    /// The retained state topics that `event` changes, with their new payloads.
    pub fn state_changes(&self, event: &Event) -> Vec<(String, String)> {
        match event {
            Event::CameraOnline { camera, .. } => vec![(self.camera(camera, "online"), on_off(true))],
            Event::CameraWentOffline { camera, .. } => {
                vec![(self.camera(camera, "online"), on_off(false)), (self.camera(camera, "fps"), "0".into())]
            }
            Event::CameraStats { camera, fps, .. } => vec![(self.camera(camera, "fps"), format!("{fps:.1}"))],
            Event::RecordingStarted { camera } => vec![(self.camera(camera, "recording"), on_off(true))],
            Event::RecordingPaused { camera, .. } | Event::RecordingStopped { camera } => {
                vec![(self.camera(camera, "recording"), on_off(false))]
            }
            Event::RecordingSwitched { camera, on, .. } => vec![(self.camera(camera, "recording_switch"), on_off(*on))],
            _ => vec![],
        }
    }

    /// Every retained state topic of a camera as the status board has it now.
    pub fn camera_state(&self, c: &CameraStatus) -> Vec<(String, String)> {
        vec![
            (self.camera(&c.name, "online"), on_off(c.online)),
            (self.camera(&c.name, "recording"), on_off(c.recording)),
            (self.camera(&c.name, "recording_switch"), on_off(c.recording_switch && c.recording_enabled)),
            (self.camera(&c.name, "fps"), format!("{:.1}", c.measured_fps)),
        ]
    }

    /// Home Assistant discovery: (config topic, retained payload) for a device with these
    /// cameras, called `device_name`, running Lookout `version`.
    pub fn discovery(&self, device_name: &str, version: &str, cameras: &[DiscoveredCamera]) -> Vec<(String, Value)> {
        let device = json!({
            "identifiers": [format!("lookout_{}", self.node)],
            "name": device_name,
            "manufacturer": "Lookout",
            "model": "Lookout camera appliance",
            "sw_version": version,
        });
        let entity = |component: &str, object: &str, name: &str, mut extra: Value| {
            let config = extra.as_object_mut().expect("entity settings are an object");
            config.insert("name".into(), json!(name));
            config.insert("unique_id".into(), json!(format!("lookout_{}_{object}", self.node)));
            config.insert("availability_topic".into(), json!(self.availability()));
            config.insert("device".into(), device.clone());
            config.insert("origin".into(), json!({ "name": "Lookout", "sw_version": version }));
            (format!("{}/{component}/{}/{object}/config", self.discovery_prefix, self.node), extra)
        };
        let mut out = Vec::new();
        for cam in cameras {
            let c = cam.name;
            let id = super::super::config::mqtt::topic_safe(c);
            out.push(entity("camera", &id, c, json!({ "topic": self.snapshot(c) })));
            let binary = |what: &str, class: &str| json!({ "state_topic": self.camera(c, what), "payload_on": ON, "payload_off": OFF, "device_class": class });
            out.push(entity("binary_sensor", &format!("{id}_online"), &format!("{c} online"), binary("online", "connectivity")));
            out.push(entity("binary_sensor", &format!("{id}_recording"), &format!("{c} recording"), binary("recording", "running")));
            out.push(entity(
                "sensor",
                &format!("{id}_fps"),
                &format!("{c} frame rate"),
                json!({ "state_topic": self.camera(c, "fps"), "unit_of_measurement": "fps", "state_class": "measurement", "icon": "mdi:filmstrip" }),
            ));
            out.push(entity(
                "button",
                &format!("{id}_snapshot"),
                &format!("{c} snapshot"),
                json!({ "command_topic": self.camera(c, "snapshot/set"), "payload_press": "PRESS", "icon": "mdi:camera" }),
            ));
            if cam.records {
                out.push(entity(
                    "switch",
                    &format!("{id}_recording_switch"),
                    &format!("{c} recording switch"),
                    json!({
                        "state_topic": self.camera(c, "recording_switch"),
                        "command_topic": self.camera(c, "recording_switch/set"),
                        "payload_on": ON, "payload_off": OFF, "icon": "mdi:record-rec",
                    }),
                ));
            }
        }
        let p = &self.prefix;
        out.push(entity(
            "button",
            "identify",
            "Identify",
            json!({ "command_topic": format!("{p}/identify/set"), "payload_press": "PRESS", "device_class": "identify" }),
        ));
        out.push(entity(
            "button",
            "reboot",
            "Reboot",
            json!({ "command_topic": format!("{p}/reboot/set"), "payload_press": "PRESS", "device_class": "restart" }),
        ));
        out.push(entity(
            "sensor",
            "temperature",
            "SoC temperature",
            json!({ "state_topic": self.health("temperature"), "unit_of_measurement": "°C", "device_class": "temperature", "state_class": "measurement" }),
        ));
        out.push(entity(
            "sensor",
            "disk_free",
            "Data partition free",
            json!({ "state_topic": self.health("disk_free"), "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:harddisk" }),
        ));
        out.push(entity(
            "binary_sensor",
            "throttled",
            "Power or heat throttling",
            json!({ "state_topic": self.health("throttled"), "payload_on": ON, "payload_off": OFF, "device_class": "problem" }),
        ));
        out
    }
}

/// Health readings as (topic, payload); what the device cannot read is left out.
pub fn health_messages(topics: &Topics, health: &crate::device::health::Health) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(t) = health.temperature_c {
        out.push((topics.health("temperature"), format!("{t:.1}")));
    }
    if let Some(t) = &health.throttled {
        out.push((topics.health("throttled"), on_off(t.under_voltage || t.throttled || t.frequency_capped)));
    }
    if health.disk_total_bytes > 0 {
        out.push((topics.health("disk_free"), format!("{:.1}", health.disk_free_bytes as f64 * 100.0 / health.disk_total_bytes as f64)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics { prefix: "lookout/dev".into(), discovery_prefix: "homeassistant".into(), node: "lookout-3f2a".into() }
    }

    #[test]
    fn command_topics_become_requests_and_anything_else_is_ignored() {
        let t = topics();
        let cmd = |topic: &str, payload: &str| t.command(topic, payload.as_bytes());
        assert_eq!(
            cmd("lookout/dev/front/recording_switch/set", "OFF"),
            Some(Command::Action { name: "recording.stop", camera: Some("front".into()) })
        );
        assert_eq!(
            cmd("lookout/dev/front/recording_switch/set", " on\n"),
            Some(Command::Action { name: "recording.start", camera: Some("front".into()) })
        );
        assert_eq!(cmd("lookout/dev/front/recording_switch/set", "maybe"), None);
        assert_eq!(cmd("lookout/dev/front/snapshot/set", "PRESS"), Some(Command::Snapshot { camera: "front".into() }));
        assert_eq!(cmd("lookout/dev/identify/set", "PRESS"), Some(Command::Action { name: "identify", camera: None }));
        assert_eq!(cmd("lookout/dev/reboot/set", ""), Some(Command::Action { name: "reboot", camera: None }));
        assert_eq!(cmd("lookout/devx/reboot/set", ""), None, "another device's prefix");
        assert_eq!(cmd("lookout/dev/front/online", "ON"), None, "a state topic");
    }

    #[test]
    fn discovery_gives_every_entity_a_unique_id_the_device_and_availability() {
        let t = topics();
        let cams = [DiscoveredCamera { name: "front", records: true }, DiscoveredCamera { name: "yard", records: false }];
        let messages = t.discovery("Lookout lookout-3f2a", "0.1.0", &cams);
        let mut ids = std::collections::HashSet::new();
        for (topic, config) in &messages {
            assert!(topic.starts_with("homeassistant/") && topic.ends_with("/config") && topic.contains("/lookout-3f2a/"), "{topic}");
            assert!(ids.insert(config["unique_id"].as_str().unwrap().to_owned()), "{topic}: unique ids");
            assert_eq!(config["availability_topic"], "lookout/dev/availability");
            assert_eq!(config["device"]["identifiers"][0], "lookout_lookout-3f2a");
        }
        let switches: Vec<&str> = messages.iter().filter(|(t, _)| t.contains("/switch/")).map(|(t, _)| t.as_str()).collect();
        assert_eq!(switches, ["homeassistant/switch/lookout-3f2a/front_recording_switch/config"], "a switch only where recording is on");
        let camera = messages.iter().find(|(t, _)| t == "homeassistant/camera/lookout-3f2a/yard/config").unwrap();
        assert_eq!(camera.1["topic"], "lookout/dev/yard/snapshot");
    }

    #[test]
    fn events_change_the_retained_state() {
        let t = topics();
        let changes = t.state_changes(&Event::RecordingSwitched { camera: "front".into(), on: false, origin: "x".into() });
        assert_eq!(changes, [("lookout/dev/front/recording_switch".to_owned(), "OFF".to_owned())]);
        let offline = t.state_changes(&Event::CameraWentOffline { camera: "front".into(), reason: "x".into(), retry_in_ms: 1 });
        assert_eq!(offline.len(), 2);
        assert!(t.state_changes(&Event::DaemonReady).is_empty());
    }
}
