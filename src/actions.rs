//! What the owner's requests do: a button press, `POST /api/actions/{action}` or the events
//! socket publishes `ActionRequested`; this module carries out the ones that need the
//! cameras or the system. (`identify` and the recording switch need nothing here: the LED
//! and each camera's recorder follow the bus themselves.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Principal};
use crate::config::Config;
use crate::events::{Action, Bus, Event};
use crate::media::{Media, snapshot};

/// Why a request for an action is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("no action `{name}`; actions: {known}", name = .0, known = Action::ALL.map(Action::name).join(", "))]
    UnknownAction(String),
    #[error("no camera named `{0}`")]
    UnknownCamera(String),
    #[error("{0}")]
    Denied(crate::auth::Denied),
    #[error("camera `{0}` has recording disabled in its config ([camera.recording] enabled = false)")]
    RecordingDisabled(String),
}

/// Checks a request for an action (from the API, the events socket or MQTT) with the one
/// authorisation function and queues it on the bus, which orders it with every other
/// request. `camera` narrows it to one camera; without one, a recording switch request
/// needs control of every camera.
pub fn request(
    config: &Config,
    auth: &Auth,
    bus: &Bus,
    who: &Principal,
    name: &str,
    camera: Option<String>,
    origin: &str,
) -> Result<Action, Refused> {
    let action = Action::from_name(name).ok_or_else(|| Refused::UnknownAction(name.to_owned()))?;
    let targets: Vec<&crate::config::Camera> = match &camera {
        Some(name) => vec![config.camera(name).ok_or_else(|| Refused::UnknownCamera(name.clone()))?],
        None if action.is_recording_switch() => config.cameras.iter().collect(),
        None => vec![],
    };
    auth.authorize(who, crate::auth::Action::Control, None).map_err(Refused::Denied)?;
    for cam in &targets {
        auth.authorize(who, crate::auth::Action::Control, Some(&cam.name)).map_err(Refused::Denied)?;
        if action.is_recording_switch() && !cam.recording.enabled {
            return Err(Refused::RecordingDisabled(cam.name.clone()));
        }
    }
    bus.publish(Event::ActionRequested { action, camera, origin: origin.into() });
    Ok(action)
}

/// Where a reboot request is written: systemd's `RuntimeDirectory` of the service, watched
/// by `lookout-reboot.path`, which reboots (the daemon itself has no right to).
pub fn reboot_request_file() -> Option<PathBuf> {
    std::env::var_os("RUNTIME_DIRECTORY").map(|dir| PathBuf::from(dir).join("reboot"))
}

/// Where a snapshot taken at `at` is saved.
pub fn snapshot_path(root: &Path, camera: &str, at: chrono::DateTime<chrono::Utc>) -> PathBuf {
    root.join("snapshots").join(camera).join(format!("{}.jpg", at.format("%Y-%m-%dT%H-%M-%S%.3fZ")))
}

/// Carries out requested actions until `shutdown`.
pub async fn run(media: Arc<Media>, storage: PathBuf, keep: usize, bus: Bus, shutdown: CancellationToken) {
    let mut events = bus.subscribe();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.recv() => e,
        };
        match event {
            Ok(Event::ActionRequested { action, camera, origin }) => {
                tracing::info!(?action, ?camera, %origin, "action requested");
                match action {
                    // The LED and the recorders follow the bus themselves.
                    Action::Identify | Action::RecordingStart | Action::RecordingStop | Action::RecordingToggle => {}
                    Action::Snapshot => save_snapshots(&media, camera.as_deref(), &storage, keep).await,
                    Action::Reboot => request_reboot(),
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                // The bus overflowed (a burst of events while this task was busy): an action
                // requested in that burst is gone; the requester saw 202 and may retry.
                tracing::warn!(missed, "actions fell behind the event bus; an action requested meanwhile may have been lost");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn save_snapshots(media: &Media, only: Option<&str>, storage: &Path, keep: usize) {
    for cam in media.cameras().into_iter().filter(|c| only.is_none_or(|name| c.config.name == name)) {
        let Ok(_permit) = cam.snapshots.acquire().await else { return };
        let name = &cam.config.name;
        match snapshot::capture(&cam.fanout, media.clock(), None).await {
            Ok(jpeg) => {
                let path = snapshot_path(storage, name, chrono::Utc::now());
                let written = match path.parent() {
                    Some(dir) => tokio::fs::create_dir_all(dir).await.and(tokio::fs::write(&path, &jpeg).await),
                    None => Ok(()),
                };
                match written {
                    Ok(()) => tracing::info!(camera = %name, path = %path.display(), "snapshot saved"),
                    Err(e) => tracing::warn!(camera = %name, "snapshot not saved to {}: {e}", path.display()),
                }
                if let Some(dir) = path.parent().map(Path::to_path_buf) {
                    let _ = tokio::task::spawn_blocking(move || prune_snapshots(&dir, keep)).await;
                }
            }
            Err(e) => tracing::warn!(camera = %name, "no snapshot: {e}"),
        }
    }
}

/// Deletes the oldest snapshots in `dir` beyond the newest `keep` (names sort by time).
pub fn prune_snapshots(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jpg")).collect();
    if names.len() <= keep {
        return;
    }
    names.sort();
    for old in &names[..names.len() - keep] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!("cannot delete old snapshot {}: {e}", old.display());
        }
    }
}

fn request_reboot() {
    match reboot_request_file() {
        Some(path) => match std::fs::write(&path, b"reboot\n") {
            Ok(()) => tracing::warn!("reboot requested ({})", path.display()),
            Err(e) => tracing::warn!("reboot request not written to {}: {e}", path.display()),
        },
        None => tracing::warn!("reboot needs the systemd service (RUNTIME_DIRECTORY is unset); ignored"),
    }
}
