//! The live picture of every camera, folded from events, read by `/api/state` and the page.
//!
//! Nothing writes here but [`Board::run`], which consumes the bus: modules never call each
//! other to report state.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::config::Config;
use crate::events::{Bus, Event};

/// What `/api/state` says about one camera.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct CameraStatus {
    pub name: String,
    pub online: bool,
    /// `starting` until the camera first delivers or fails, so a page can say "connecting"
    /// rather than "offline" in the first seconds.
    pub state: CameraState,
    /// The source as configured (`auto`, `/dev/video0`, ...), credentials redacted.
    pub configured_source: String,
    /// The source actually opened, once online.
    pub source: Option<String>,
    pub encoder: Option<String>,
    pub encoder_reason: Option<String>,
    pub width: u32,
    pub height: u32,
    pub desired_fps: u32,
    pub measured_fps: f64,
    pub desired_bitrate_kbps: u32,
    pub measured_bitrate_kbps: f64,
    pub viewers: usize,
    /// Of the viewers, those reading over RTSP (NVRs, VLC, Home Assistant).
    pub rtsp_clients: usize,
    /// Frames outputs dropped since start (slow viewers, a recorder behind): each on its own
    /// queue, never holding up the camera.
    pub dropped_frames: u64,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub recording_enabled: bool,
    /// The runtime recording switch (`recording.start` / `recording.stop`), kept across
    /// restarts; recording happens when it and `recording_enabled` are both on.
    pub recording_switch: bool,
    /// Writing to disk right now.
    pub recording: bool,
    /// Why recording is paused, when it is.
    pub recording_error: Option<String>,
}

/// Where a camera is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// Configured, not yet delivering, no fault seen.
    #[default]
    Starting,
    Online,
    /// Not delivering; `last_error` says why.
    Offline,
}

/// A configured camera before it reports anything.
fn initial(c: &crate::config::Camera, config: &Config) -> CameraStatus {
    CameraStatus {
        name: c.name.clone(),
        configured_source: c.source.to_string(),
        width: c.width,
        height: c.height,
        desired_fps: c.fps,
        desired_bitrate_kbps: c.bitrate_kbps,
        recording_enabled: c.recording.enabled,
        recording_switch: !crate::storage::switch::is_off(&config.storage.path, &c.name),
        ..CameraStatus::default()
    }
}

/// Shared, read-mostly status of all cameras.
#[derive(Clone, Default)]
pub struct Board {
    cameras: Arc<RwLock<BTreeMap<String, CameraStatus>>>,
}

impl Board {
    /// A board listing the configured cameras, all offline until they report.
    pub fn new(config: &Config) -> Board {
        let cameras = config.cameras.iter().map(|c| (c.name.clone(), initial(c, config))).collect();
        Board { cameras: Arc::new(RwLock::new(cameras)) }
    }

    /// Follows a settings change: removed cameras go, new and `restarted` ones start over
    /// as configured; the others keep what they reported.
    pub fn reconfigure(&self, config: &Config, restarted: &[String]) {
        let mut cameras = self.cameras.write().expect("status lock is never poisoned: no panics inside");
        cameras.retain(|name, _| config.camera(name).is_some());
        for c in &config.cameras {
            if restarted.contains(&c.name) || !cameras.contains_key(&c.name) {
                cameras.insert(c.name.clone(), initial(c, config));
            }
        }
    }

    /// All cameras in name order.
    pub fn cameras(&self) -> Vec<CameraStatus> {
        self.cameras.read().expect("status lock is never poisoned: no panics inside").values().cloned().collect()
    }

    /// One camera, if configured.
    pub fn camera(&self, name: &str) -> Option<CameraStatus> {
        self.cameras.read().expect("status lock is never poisoned: no panics inside").get(name).cloned()
    }

    /// Folds one event into the board.
    pub fn apply(&self, event: &Event) {
        let mut cameras = self.cameras.write().expect("status lock is never poisoned: no panics inside");
        let Some(cam) = event.camera().and_then(|c| cameras.get_mut(c)) else { return };
        match event {
            Event::CameraOnline { source, encoder, encoder_reason, width, height, .. } => {
                cam.online = true;
                cam.state = CameraState::Online;
                cam.source = Some(source.clone());
                cam.encoder = Some(encoder.clone());
                cam.encoder_reason = Some(encoder_reason.clone());
                cam.width = *width;
                cam.height = *height;
            }
            Event::CameraWentOffline { reason, .. } => {
                cam.online = false;
                cam.state = CameraState::Offline;
                cam.measured_fps = 0.0;
                cam.measured_bitrate_kbps = 0.0;
                cam.last_error = Some(reason.clone());
            }
            Event::CameraStats { fps, bitrate_kbps, restarts, dropped_frames, .. } => {
                cam.dropped_frames = *dropped_frames;
                cam.measured_fps = *fps;
                cam.measured_bitrate_kbps = *bitrate_kbps;
                cam.restarts = *restarts;
            }
            Event::ViewerJoined { viewers, protocol, .. } => {
                cam.viewers = *viewers;
                if protocol == "rtsp" {
                    cam.rtsp_clients += 1;
                }
            }
            Event::ViewerLeft { viewers, protocol, .. } => {
                cam.viewers = *viewers;
                if protocol == "rtsp" {
                    cam.rtsp_clients = cam.rtsp_clients.saturating_sub(1);
                }
            }
            Event::RecordingStarted { .. } => {
                cam.recording = true;
                cam.recording_error = None;
            }
            Event::RecordingPaused { reason, .. } => {
                cam.recording = false;
                cam.recording_error = Some(reason.clone());
            }
            Event::RecordingStopped { .. } => cam.recording = false,
            Event::RecordingSwitched { on, .. } => cam.recording_switch = *on,
            _ => {}
        }
    }

    /// Subscribes now (so nothing published after this call is missed) and folds events in
    /// a background task until the bus closes.
    pub fn follow(&self, bus: &Bus) -> tokio::task::JoinHandle<()> {
        let mut rx = bus.subscribe();
        let board = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(event) => board.apply(&event),
                    // Missed events are superseded by the next stats/online event; carry on.
                    Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "status board lagged"),
                    Err(RecvError::Closed) => return,
                }
            }
        })
    }
}
