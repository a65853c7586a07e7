//! Changing settings while the daemon runs: `GET`/`PATCH /api/config` and camera renames
//! come here. A change is checked exactly as `check-config` checks a file, saved to the data
//! partition (`storage::settings`, layered over the boot file as `config::layers` says), put
//! in force, and applied: only the cameras it touches restart; storage limits apply at once;
//! viewers that join from now on use new WebRTC settings; webhooks and MQTT reconnect with
//! their new settings; the status LED task takes its new LED (it follows `settings_changed`).
//! The network applies through the network service (Wi-Fi) and `lookout-network.service`
//! (host name, time servers, fixed addresses), and a change of it that cuts the device off is
//! undone unless confirmed; `[auth]` session lifetimes apply to sessions from then on, and
//! `[button]` takes its new pin and actions; `[http]` moves the web server to its new
//! listeners and certificate once the answer to the change is sent (`web::listening`).
//! `restart_required` stays for sections a future version may not apply live.
//!
//! Changes are applied one at a time, in the order they arrive.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::config::{Config, ConfigError, Live, layers};
use crate::events::{Bus, Event};
use crate::media::Media;
use crate::network::rollback::{Rollback, Ticket};
use crate::status::Board;

/// Sections applied while the daemon runs.
const LIVE_SECTIONS: [&str; 12] =
    ["camera", "storage", "webrtc", "rtsp", "onvif", "webhook", "mqtt", "led", "network", "button", "auth", "http"];

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
    /// A network change that must be confirmed (`POST /api/network/confirm`) from where the
    /// page reaches the device afterwards, or it is undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Confirm>,
}

/// The confirmation a network change waits for.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Confirm {
    pub ticket: u64,
    pub within_s: u64,
}

/// What a change is applied to.
pub struct Services {
    pub media: Arc<Media>,
    pub board: Board,
    pub webhooks: Arc<crate::webhook::Service>,
    pub mqtt: Arc<crate::mqtt::Service>,
    pub network: Arc<crate::network::Service>,
    pub auth: Arc<crate::auth::Auth>,
}

/// The settings service.
pub struct Settings {
    live: Live,
    /// The boot partition's settings, under which changes are layered.
    boot: toml::Table,
    services: Services,
    bus: Bus,
    one_at_a_time: tokio::sync::Mutex<()>,
    /// The `[network]` section as written before an unconfirmed change, and its deadline.
    rollback: std::sync::Mutex<Rollback<Option<toml::Value>>>,
}

impl Settings {
    /// `boot`: the boot file's settings (what `live` was built from before saved settings).
    pub fn new(live: Live, boot: toml::Table, services: Services, bus: Bus) -> Settings {
        // Taken once: the system part of the config is not a setting and is not rebuilt.
        let rollback = Rollback::with_window(live.get().network.system.confirm_within);
        Settings { live, boot, services, bus, one_at_a_time: tokio::sync::Mutex::new(()), rollback: std::sync::Mutex::new(rollback) }
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
        let mut changed = self.put_in_force(&old, raw, &[], origin).await?;
        // A network change can cut the device off (a wrong address, a network out of reach):
        // it waits for confirmation. Not on the setup hotspot, where there was no network to
        // lose and the hotspot itself comes back when a join fails.
        if changed.sections.iter().any(|s| s == "network") && self.services.network.captive_address().is_none() {
            let mut rollback = self.lock_rollback();
            let ticket = rollback.applied(std::time::Instant::now(), old.raw.get("network").cloned());
            changed.confirm = Some(Confirm { ticket: ticket.0, within_s: rollback.window().as_secs() });
        }
        Ok(changed)
    }

    /// The page reached the device after the network change `ticket`: it stays.
    pub fn confirm_network(&self, ticket: u64) -> bool {
        self.lock_rollback().confirm(Ticket(ticket))
    }

    /// The network change waiting for confirmation: its ticket and the seconds left.
    pub fn pending_network_change(&self) -> Option<Confirm> {
        let rollback = self.lock_rollback();
        let deadline = rollback.deadline()?;
        let ticket = rollback.ticket()?;
        Some(Confirm { ticket: ticket.0, within_s: deadline.saturating_duration_since(std::time::Instant::now()).as_secs() })
    }

    /// Undoes network changes nobody confirmed in time, until `stop`.
    pub async fn run_rollback(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            let Some(previous) = self.lock_rollback().tick(std::time::Instant::now()) else { continue };
            tracing::warn!("the network change was not confirmed within {} s: undoing it", self.lock_rollback().window().as_secs());
            let _turn = self.one_at_a_time.lock().await;
            let old = self.live.get();
            let mut raw = old.raw.clone();
            match previous {
                Some(network) => raw.insert("network".into(), network),
                None => raw.remove("network"),
            };
            if let Err(e) = self.put_in_force(&old, raw, &[], "rollback of an unconfirmed network change").await {
                tracing::error!("undoing the unconfirmed network change failed: {e}");
            }
        }
    }

    fn lock_rollback(&self) -> std::sync::MutexGuard<'_, Rollback<Option<toml::Value>>> {
        self.rollback.lock().unwrap_or_else(|e| e.into_inner())
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
        if changed.sections.iter().any(|s| s == "auth") {
            let lifetimes = crate::auth::Lifetimes { idle: new.auth.session_idle, absolute: new.auth.session_max };
            self.services.auth.reconfigure(lifetimes, new.auth.admin_password_hash.clone());
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
    // or its source or pushes as written (credentials, which the parsed view hides) differ.
    let camera_table = |config: &Config, name: &str| {
        let parsed = config.camera(name).map(|c| serde_json::to_value(c).unwrap_or_default());
        let table = config
            .raw
            .get("camera")
            .and_then(toml::Value::as_array)
            .and_then(|cams| cams.iter().find(|c| c.get("name").and_then(toml::Value::as_str) == Some(name)));
        // An empty push list written out (the settings page sends back what it was shown)
        // is no change from none.
        let written =
            ["source", "push"].map(|key| table.and_then(|c| c.get(key)).cloned().filter(|v| v.as_array().is_none_or(|a| !a.is_empty())));
        (parsed, written)
    };
    let names = |config: &Config| config.cameras.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let (before, after) = (names(old), names(new));
    let restarted = after.iter().filter(|n| before.contains(n) && camera_table(old, n) != camera_table(new, n)).cloned().collect();
    let added = after.iter().filter(|n| !before.contains(n)).cloned().collect();
    let removed = before.iter().filter(|n| !after.contains(n) || already_gone.contains(n)).cloned().collect();
    let restart_required = sections.iter().filter(|s| !LIVE_SECTIONS.contains(&s.as_str())).cloned().collect();
    Changed { sections, restarted, added, removed, restart_required, confirm: None }
}
