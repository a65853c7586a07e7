//! The event bus: the spine every module reports through.
//!
//! Producers: `media::pipeline` (camera online/offline, stats, encoder chosen),
//! `media::webrtc` (viewers joining and leaving), `media::recorder` (recording state,
//! segments opened and closed) and `storage` (segments deleted by retention). Consumers:
//! `status` (the snapshot behind `/api/state`), [`journal`] (numbered and kept for
//! `/api/events`), `storage` (the recordings index, retention),
//! `media::recorder` (follows camera online/offline) and the log. Device events: `lib`
//! (`DaemonReady`), `device::health` watcher (`HealthWarning*`), `device::button` and the
//! API (`ActionRequested`), the systemd watchdog (`FaultDetected`); consumed by
//! `device::led` (the status pattern), `actions` (what a button press or API call does)
//! and `status`. Metrics read the state folded by `status`.
//!
//! A consumer that falls behind gets `RecvError::Lagged`; it must treat that as "some events
//! were missed" and carry on, since every event that describes a state (`CameraOnline`,
//! `CameraStats`) is repeated or superseded soon after.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

pub mod journal;

/// Something that happened; past tense, self-contained, cheap to clone.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A camera pipeline reached PLAYING and produced its first frame.
    CameraOnline { camera: String, source: String, encoder: String, encoder_reason: String, width: u32, height: u32 },
    /// A camera stopped delivering or could not start; `reason` is for a person.
    CameraWentOffline { camera: String, reason: String, retry_in_ms: u64 },
    /// Measured every couple of seconds while a camera is online.
    CameraStats { camera: String, fps: f64, bitrate_kbps: f64, restarts: u64, dropped_frames: u64 },
    /// A live viewer began watching: `protocol` is `whep`, `mse` or `rtsp`; `viewers` counts
    /// every protocol's (they share the camera's limit).
    ViewerJoined { camera: String, session: String, protocol: String, viewers: usize },
    /// A viewer session ended, by DELETE, timeout, failure or the client closing.
    ViewerLeft { camera: String, session: String, protocol: String, reason: String, viewers: usize, dropped_frames: u64 },
    /// The recorder began writing a camera's stream to disk.
    RecordingStarted { camera: String },
    /// Recording stopped for a reason the owner should know (disk full, not writable...);
    /// it resumes by itself.
    RecordingPaused { camera: String, reason: String },
    /// The recorder stopped because the camera went offline or the daemon is stopping.
    RecordingStopped { camera: String },
    /// A segment file was created and is being written.
    SegmentOpened { camera: String, path: PathBuf, start: DateTime<Utc> },
    /// A segment file was finished and fsynced.
    SegmentClosed { camera: String, path: PathBuf, start: DateTime<Utc> },
    /// Retention deleted a segment.
    SegmentDeleted { camera: String, segment: String, reason: String },
    /// The HTTP server is listening and every camera is online or has had its chance to start.
    DaemonReady,
    /// The daemon was asked to stop (SIGTERM, a reboot); recordings are being finished.
    DaemonStopping,
    /// A health reading crossed its threshold (hot SoC, under-voltage, disk nearly full).
    HealthWarningRaised { kind: String, message: String },
    /// A health reading went back to normal.
    HealthWarningCleared { kind: String },
    /// Something is wrong that the daemon cannot heal by itself (a wedged pipeline, a dead
    /// web server); systemd will restart it.
    FaultDetected { reason: String },
    /// Someone asked for something, by the button, the page, the API or the events socket;
    /// `camera` narrows it to one camera (unset: every camera).
    ActionRequested {
        action: Action,
        #[serde(skip_serializing_if = "Option::is_none")]
        camera: Option<String>,
        origin: String,
    },
    /// A camera's recording switch was turned on or off (it stays so across restarts).
    RecordingSwitched { camera: String, on: bool, origin: String },
    /// Someone gave a wrong user name or password (the password is never carried).
    LoginFailed { user: String, address: String },
    /// The owner revoked a token; sessions it opened end.
    TokenRevoked { id: String },
    /// Physical access asked to clear the owner password (button held, reset file).
    OwnerResetRequested { origin: String },
    /// There is no owner password: the device answers only its setup page.
    SetupRequired,
    /// The owner password was set; the device is in service.
    SetupCompleted,
    /// A webhook's receiver stopped taking deliveries (its first failure after a success);
    /// retries go on. Never sent to webhooks themselves.
    WebhookFailing { hook: String, error: String },
    /// A failing webhook's receiver took a delivery again.
    WebhookRecovered { hook: String },
    /// Settings were changed and saved (`sections`: the top-level ones that changed).
    /// `restarted` cameras started over with their new settings, `added` and `removed` came
    /// and went; `restart_required` lists sections that take effect at the next start.
    SettingsChanged {
        sections: Vec<String>,
        restarted: Vec<String>,
        added: Vec<String>,
        removed: Vec<String>,
        restart_required: Vec<String>,
        origin: String,
    },
    /// The device's button was pressed (`short` or `long`), whatever it is set to do: a press
    /// also brings back a setup hotspot whose window ended.
    ButtonPressed { press: String },
    /// A camera's WHIP push changed state (`connecting`, `live`, `retrying`, `refused`);
    /// `error` says why it is not live. `target` is the URL without query or credentials.
    PushStateChanged { camera: String, target: String, state: String, error: Option<String> },
    /// Every 2 s while a push is live: what it sends and the round trip to the server.
    PushStats { camera: String, target: String, bitrate_kbps: f64, rtt_ms: Option<f64> },
    /// The setup hotspot opened: the device has no usable network and waits to be set up
    /// from a phone on `ssid`.
    HotspotOpened { ssid: String },
    /// The setup hotspot closed (a network came, the setup finished, or its window ended).
    HotspotClosed { reason: String },
    /// The Wi-Fi joined `ssid` and has an address.
    WifiJoined { ssid: String },
    /// The Wi-Fi lost `ssid`; the device keeps trying its known networks.
    WifiLost { ssid: String },
}

/// Every event `type`, as serialized: the names `[[webhook]] events` may list.
pub const TYPES: &[&str] = &[
    "camera_online",
    "camera_went_offline",
    "camera_stats",
    "viewer_joined",
    "viewer_left",
    "recording_started",
    "recording_paused",
    "recording_stopped",
    "segment_opened",
    "segment_closed",
    "segment_deleted",
    "daemon_ready",
    "daemon_stopping",
    "health_warning_raised",
    "health_warning_cleared",
    "fault_detected",
    "action_requested",
    "recording_switched",
    "login_failed",
    "token_revoked",
    "owner_reset_requested",
    "setup_required",
    "setup_completed",
    "webhook_failing",
    "webhook_recovered",
    "settings_changed",
    "hotspot_opened",
    "hotspot_closed",
    "wifi_joined",
    "wifi_lost",
    "push_state_changed",
    "push_stats",
    "button_pressed",
];

/// Types that come every few seconds while something runs: webhooks leave them out unless
/// asked for by name.
pub const PERIODIC: &[&str] = &["camera_stats", "push_stats"];

/// What a button press or an API call can ask of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Blink the status LED fast for a while, to find this device among others.
    Identify,
    /// Save a JPEG of every camera to `<storage>/snapshots/<camera>/`.
    Snapshot,
    /// Restart the device (through systemd, see `lookout-reboot.path`).
    Reboot,
    /// Turn a camera's recording switch on.
    #[serde(rename = "recording.start")]
    RecordingStart,
    /// Turn a camera's recording switch off: no new segments until it is turned on again.
    #[serde(rename = "recording.stop")]
    RecordingStop,
    /// Flip a camera's recording switch (the button's way).
    #[serde(rename = "recording.toggle")]
    RecordingToggle,
}

impl Action {
    /// Every action, for messages that list them.
    pub const ALL: [Action; 6] =
        [Action::Identify, Action::Snapshot, Action::Reboot, Action::RecordingStart, Action::RecordingStop, Action::RecordingToggle];

    /// Parses the name used in config and URLs.
    pub fn from_name(name: &str) -> Option<Action> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }

    /// The name used in config, URLs and the events socket.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// Whether it works the recording switch (which needs recording enabled in the config).
    pub fn is_recording_switch(self) -> bool {
        matches!(self, Action::RecordingStart | Action::RecordingStop | Action::RecordingToggle)
    }
}

impl Event {
    /// Its `type` as serialized (one of [`TYPES`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::CameraOnline { .. } => "camera_online",
            Event::CameraWentOffline { .. } => "camera_went_offline",
            Event::CameraStats { .. } => "camera_stats",
            Event::ViewerJoined { .. } => "viewer_joined",
            Event::ViewerLeft { .. } => "viewer_left",
            Event::RecordingStarted { .. } => "recording_started",
            Event::RecordingPaused { .. } => "recording_paused",
            Event::RecordingStopped { .. } => "recording_stopped",
            Event::SegmentOpened { .. } => "segment_opened",
            Event::SegmentClosed { .. } => "segment_closed",
            Event::SegmentDeleted { .. } => "segment_deleted",
            Event::DaemonReady => "daemon_ready",
            Event::DaemonStopping => "daemon_stopping",
            Event::HealthWarningRaised { .. } => "health_warning_raised",
            Event::HealthWarningCleared { .. } => "health_warning_cleared",
            Event::FaultDetected { .. } => "fault_detected",
            Event::ActionRequested { .. } => "action_requested",
            Event::RecordingSwitched { .. } => "recording_switched",
            Event::LoginFailed { .. } => "login_failed",
            Event::TokenRevoked { .. } => "token_revoked",
            Event::OwnerResetRequested { .. } => "owner_reset_requested",
            Event::SetupRequired => "setup_required",
            Event::SetupCompleted => "setup_completed",
            Event::WebhookFailing { .. } => "webhook_failing",
            Event::WebhookRecovered { .. } => "webhook_recovered",
            Event::SettingsChanged { .. } => "settings_changed",
            Event::HotspotOpened { .. } => "hotspot_opened",
            Event::HotspotClosed { .. } => "hotspot_closed",
            Event::WifiJoined { .. } => "wifi_joined",
            Event::WifiLost { .. } => "wifi_lost",
            Event::PushStateChanged { .. } => "push_state_changed",
            Event::PushStats { .. } => "push_stats",
            Event::ButtonPressed { .. } => "button_pressed",
        }
    }

    /// Only the owner hears it (over the events socket): it tells of accounts or of the
    /// device's configuration.
    pub fn owner_only(&self) -> bool {
        matches!(
            self,
            Event::LoginFailed { .. }
                | Event::PushStateChanged { .. }
                | Event::PushStats { .. }
                | Event::TokenRevoked { .. }
                | Event::OwnerResetRequested { .. }
                | Event::WebhookFailing { .. }
                | Event::WebhookRecovered { .. }
                | Event::SettingsChanged { .. }
                | Event::HotspotOpened { .. }
                | Event::HotspotClosed { .. }
                | Event::WifiJoined { .. }
                | Event::WifiLost { .. }
        )
    }

    /// Whether the event is a settings change that touched the top-level `section`: what the
    /// services that apply a section live wait for.
    pub fn changes(&self, section: &str) -> bool {
        matches!(self, Event::SettingsChanged { sections, .. } if sections.iter().any(|s| s == section))
    }

    /// The camera the event concerns, for camera events.
    pub fn camera(&self) -> Option<&str> {
        Some(match self {
            Event::CameraOnline { camera, .. }
            | Event::CameraWentOffline { camera, .. }
            | Event::CameraStats { camera, .. }
            | Event::ViewerJoined { camera, .. }
            | Event::ViewerLeft { camera, .. }
            | Event::RecordingStarted { camera }
            | Event::RecordingPaused { camera, .. }
            | Event::RecordingStopped { camera }
            | Event::SegmentOpened { camera, .. }
            | Event::SegmentClosed { camera, .. }
            | Event::SegmentDeleted { camera, .. }
            | Event::RecordingSwitched { camera, .. }
            | Event::PushStateChanged { camera, .. }
            | Event::PushStats { camera, .. }
            | Event::ActionRequested { camera: Some(camera), .. } => camera,
            Event::DaemonReady
            | Event::DaemonStopping
            | Event::HealthWarningRaised { .. }
            | Event::HealthWarningCleared { .. }
            | Event::FaultDetected { .. }
            | Event::ActionRequested { .. }
            | Event::LoginFailed { .. }
            | Event::TokenRevoked { .. }
            | Event::OwnerResetRequested { .. }
            | Event::SetupRequired
            | Event::SetupCompleted
            | Event::WebhookFailing { .. }
            | Event::WebhookRecovered { .. }
            | Event::SettingsChanged { .. }
            | Event::HotspotOpened { .. }
            | Event::HotspotClosed { .. }
            | Event::WifiJoined { .. }
            | Event::WifiLost { .. }
            | Event::ButtonPressed { .. } => return None,
        })
    }
}

/// Cloneable handle to the broadcast channel.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Event>,
}

/// Capacity chosen so a consumer can stall ~10 s at the stats rate of 8 cameras before lagging.
const BUS_CAPACITY: usize = 1024;

impl Default for Bus {
    fn default() -> Self {
        Bus { tx: broadcast::channel(BUS_CAPACITY).0 }
    }
}

impl Bus {
    /// Publishes an event; having no subscriber is fine.
    pub fn publish(&self, event: Event) {
        tracing::debug!(?event, "event");
        let _ = self.tx.send(event);
    }

    /// A new receiver that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_listed_once_and_is_what_serializes() {
        let s = || String::from("x");
        let t = Utc::now();
        let examples = [
            Event::CameraOnline { camera: s(), source: s(), encoder: s(), encoder_reason: s(), width: 1, height: 1 },
            Event::CameraWentOffline { camera: s(), reason: s(), retry_in_ms: 1 },
            Event::CameraStats { camera: s(), fps: 1.0, bitrate_kbps: 1.0, restarts: 0, dropped_frames: 0 },
            Event::ViewerJoined { camera: s(), session: s(), protocol: s(), viewers: 1 },
            Event::ViewerLeft { camera: s(), session: s(), protocol: s(), reason: s(), viewers: 0, dropped_frames: 0 },
            Event::RecordingStarted { camera: s() },
            Event::RecordingPaused { camera: s(), reason: s() },
            Event::RecordingStopped { camera: s() },
            Event::SegmentOpened { camera: s(), path: PathBuf::new(), start: t },
            Event::SegmentClosed { camera: s(), path: PathBuf::new(), start: t },
            Event::SegmentDeleted { camera: s(), segment: s(), reason: s() },
            Event::DaemonReady,
            Event::DaemonStopping,
            Event::HealthWarningRaised { kind: s(), message: s() },
            Event::HealthWarningCleared { kind: s() },
            Event::FaultDetected { reason: s() },
            Event::ActionRequested { action: Action::Identify, camera: None, origin: s() },
            Event::RecordingSwitched { camera: s(), on: true, origin: s() },
            Event::LoginFailed { user: s(), address: s() },
            Event::TokenRevoked { id: s() },
            Event::OwnerResetRequested { origin: s() },
            Event::SetupRequired,
            Event::SetupCompleted,
            Event::WebhookFailing { hook: s(), error: s() },
            Event::WebhookRecovered { hook: s() },
            Event::SettingsChanged {
                sections: vec![],
                restarted: vec![],
                added: vec![],
                removed: vec![],
                restart_required: vec![],
                origin: s(),
            },
            Event::HotspotOpened { ssid: s() },
            Event::HotspotClosed { reason: s() },
            Event::WifiJoined { ssid: s() },
            Event::WifiLost { ssid: s() },
            Event::PushStateChanged { camera: s(), target: s(), state: s(), error: None },
            Event::PushStats { camera: s(), target: s(), bitrate_kbps: 1.0, rtt_ms: None },
            Event::ButtonPressed { press: s() },
        ];
        assert_eq!(examples.len(), TYPES.len());
        let mut seen = std::collections::HashSet::new();
        for e in &examples {
            let json = serde_json::to_value(e).unwrap();
            assert_eq!(json["type"], e.kind());
            assert!(TYPES.contains(&e.kind()) && seen.insert(e.kind()), "{}", e.kind());
        }
    }
}
