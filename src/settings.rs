//! Changing settings while the daemon runs: `GET`/`PATCH /api/config` and camera renames
//! come here. A change is checked exactly as `check-config` checks a file, saved to the data
//! partition (`storage::settings`, layered over the boot file as `config::layers` says), put
//! in force, and applied: only the cameras it touches restart; storage limits apply at once;
//! viewers that join from now on use new WebRTC settings; webhooks and MQTT reconnect with
//! their new settings; the status LED task takes its new LED (it follows `settings_changed`).
//! Sections that cannot change under a running daemon (listeners, TLS, accounts, the
//! network, the button) are saved and reported as taking effect at the next start.
//!
//! Changes are applied one at a time, in the order they arrive.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::config::{Config, ConfigError, Live, layers};
use crate::events::{Bus, Event};
use crate::media::Media;
use crate::status::Board;

/// Sections applied while the daemon runs.
const LIVE_SECTIONS: [&str; 7] = ["camera", "storage", "webrtc", "webhook", "mqtt", "led", "network"];

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Patch(#[from] layers::PatchError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot save the settings to the data partition: {0}")]
    Save(std::io::Error),
    #[error("no camera named `{0}`")]
    UnknownCamera(String),
}

/// What a change did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Changed {
    pub sections: Vec<String>,
    pub restarted: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restart_required: Vec<String>,
}

/// What a change is applied to.
pub struct Services {
    pub media: Arc<Media>,
    pub board: Board,
    pub webhooks: Arc<crate::webhook::Service>,
    pub mqtt: Arc<crate::mqtt::Service>,
}

/// The settings service.
pub struct Settings {
    live: Live,
    /// The boot partition's settings, under which changes are layered.
    boot: toml::Table,
    services: Services,
    bus: Bus,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Settings {
    /// `boot`: the boot file's settings (what `live` was built from before saved settings).
    pub fn new(live: Live, boot: toml::Table, services: Services, bus: Bus) -> Settings {
        Settings { live, boot, services, bus, one_at_a_time: tokio::sync::Mutex::new(()) }
    }

    /// Every setting as a client may see it: secrets left out, credentials in URLs hidden.
    pub fn view(&self) -> Json {
        view(&self.live.get())
    }

    /// Applies a JSON merge patch against [`Settings::view`].
    pub async fn change(&self, patch: &Json, origin: &str) -> Result<Changed, SettingsError> {
        let _turn = self.one_at_a_time.lock().await;
        let old = self.live.get();
        written(&old)?;
        let mut raw = old.raw.clone();
        layers::apply_patch(&mut raw, &view(&old), patch)?;
        if raw.get("storage").and_then(|s| s.get("path")) != old.raw.get("storage").and_then(|s| s.get("path")) {
            return Err(SettingsError::Invalid(
                "storage.path: cannot change while running (it holds these settings); edit the boot partition's lookout.toml".into(),
            ));
        }
        self.put_in_force(&old, raw, &[], origin).await
    }

    /// Renames a camera and moves its recordings (and its recording switch) with it.
    pub async fn rename_camera(&self, from: &str, to: &str, origin: &str) -> Result<Changed, SettingsError> {
        let _turn = self.one_at_a_time.lock().await;
        let old = self.live.get();
        written(&old)?;
        let mut raw = old.raw.clone();
        let cameras = raw.get_mut("camera").and_then(toml::Value::as_array_mut);
        let entry = cameras.and_then(|cams| cams.iter_mut().find(|c| c.get("name").and_then(toml::Value::as_str) == Some(from)));
        let Some(toml::Value::Table(entry)) = entry else { return Err(SettingsError::UnknownCamera(from.to_owned())) };
        entry.insert("name".into(), to.into());
        checked(&raw, &old.storage.path)?;
        // Stop the camera (finishing its file) before its folders move; the new name starts
        // only once they have.
        let others: Vec<crate::config::Camera> = old.cameras.iter().filter(|c| c.name != from).cloned().collect();
        self.services.media.apply(&others, &[]).await;
        let root = old.storage.path.clone();
        let (from_owned, to_owned) = (from.to_owned(), to.to_owned());
        let moved = tokio::task::spawn_blocking(move || crate::storage::move_camera(&root, &from_owned, &to_owned))
            .await
            .map_err(std::io::Error::other)
            .and_then(|moved| moved);
        if let Err(e) = moved {
            // Nothing changed: the camera comes back under its old name.
            self.services.media.apply(&old.cameras, &[]).await;
            return Err(SettingsError::Save(e));
        }
        self.put_in_force(&old, raw, &[from.to_owned()], origin).await
    }

    /// Saves `raw`, makes it the config in force and applies it.
    async fn put_in_force(&self, old: &Config, raw: toml::Table, already_gone: &[String], origin: &str) -> Result<Changed, SettingsError> {
        let new = checked(&raw, &old.storage.path)?;
        let overrides = layers::difference(&self.boot, &raw);
        let root = old.storage.path.clone();
        tokio::task::spawn_blocking(move || crate::storage::settings::save(&root, &overrides))
            .await
            .map_err(|e| SettingsError::Save(std::io::Error::other(e)))?
            .map_err(SettingsError::Save)?;
        let changed = difference(old, &new, already_gone);
        self.live.set(new.clone());
        self.services.board.reconfigure(&new, &changed.restarted);
        self.services.media.apply(&new.cameras, &changed.restarted).await;
        if changed.sections.iter().any(|s| s == "webrtc") {
            self.services.media.reconfigure_webrtc(&new.webrtc);
        }
        if changed.sections.iter().any(|s| s == "webhook") {
            self.services.webhooks.replace(&new.webhooks).await;
        }
        if changed.sections.iter().any(|s| s == "mqtt") {
            self.services.mqtt.restart().await;
        }
        tracing::info!(%origin, ?changed, "settings changed");
        self.bus.publish(Event::SettingsChanged {
            sections: changed.sections.clone(),
            restarted: changed.restarted.clone(),
            added: changed.added.clone(),
            removed: changed.removed.clone(),
            restart_required: changed.restart_required.clone(),
            origin: origin.to_owned(),
        });
        Ok(changed)
    }
}

/// Settings change only for a daemon started from a config file (one built in code has no
/// settings as written to change and save).
fn written(config: &Config) -> Result<(), SettingsError> {
    if config.raw.is_empty() {
        return Err(SettingsError::Invalid("this daemon was started without a config file; its settings cannot change".into()));
    }
    Ok(())
}

/// The config of `raw`, checked; problems name their fields.
fn checked(raw: &toml::Table, storage: &Path) -> Result<Config, SettingsError> {
    Config::from_raw(raw, &crate::storage::settings::path(storage)).map_err(|e| match e {
        ConfigError::Invalid { problems, .. } => {
            SettingsError::Invalid(problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))
        }
        other => SettingsError::Invalid(other.to_string()),
    })
}

/// What a client may see of `config`.
pub fn view(config: &Config) -> Json {
    serde_json::to_value(config).unwrap_or_default()
}

/// What changed from `old` to `new`, section by section and camera by camera.
fn difference(old: &Config, new: &Config, already_gone: &[String]) -> Changed {
    let mut sections: Vec<String> = old.raw.keys().chain(new.raw.keys()).filter(|k| old.raw.get(*k) != new.raw.get(*k)).cloned().collect();
    sections.sort();
    sections.dedup();
    // A camera changed when any setting of it differs as parsed (defaults written out or not)
    // or its source as written (credentials, which the parsed view hides) differs.
    let camera_table = |config: &Config, name: &str| {
        let parsed = config.camera(name).map(|c| serde_json::to_value(c).unwrap_or_default());
        let written = config.raw.get("camera").and_then(toml::Value::as_array).and_then(|cams| {
            cams.iter().find(|c| c.get("name").and_then(toml::Value::as_str) == Some(name)).and_then(|c| c.get("source")).cloned()
        });
        (parsed, written)
    };
    let names = |config: &Config| config.cameras.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let (before, after) = (names(old), names(new));
    let restarted = after.iter().filter(|n| before.contains(n) && camera_table(old, n) != camera_table(new, n)).cloned().collect();
    let added = after.iter().filter(|n| !before.contains(n)).cloned().collect();
    let removed = before.iter().filter(|n| !after.contains(n) || already_gone.contains(n)).cloned().collect();
    let mut restart_required: Vec<String> = sections.iter().filter(|s| !LIVE_SECTIONS.contains(&s.as_str())).cloned().collect();
    // The Wi-Fi and the hotspot apply live; the host name and time servers are set by the
    // daemon's privileged start step (`lookout prepare-system`).
    if old.network.hostname != new.network.hostname {
        restart_required.push("network.hostname".into());
    }
    if old.network.ntp != new.network.ntp {
        restart_required.push("network.ntp".into());
    }
    Changed { sections, restarted, added, removed, restart_required }
}
