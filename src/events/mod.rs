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
    /// A WHEP viewer session was created.
    ViewerJoined { camera: String, session: String, viewers: usize },
    /// A viewer session ended, by DELETE, timeout or failure.
    ViewerLeft { camera: String, session: String, reason: String, viewers: usize, dropped_frames: u64 },
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
}

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
            | Event::ActionRequested { camera: Some(camera), .. } => camera,
            Event::DaemonReady
            | Event::HealthWarningRaised { .. }
            | Event::HealthWarningCleared { .. }
            | Event::FaultDetected { .. }
            | Event::ActionRequested { .. }
            | Event::LoginFailed { .. }
            | Event::TokenRevoked { .. }
            | Event::OwnerResetRequested { .. }
            | Event::SetupRequired
            | Event::SetupCompleted => return None,
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
