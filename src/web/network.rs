//! `GET /api/network`, `POST /api/network/scan` and `POST /api/network/join`: the Wi-Fi and
//! the setup hotspot for the owner, and the setup page's "join this network" (which is a
//! settings change through `crate::settings`, so it is validated, saved and logged like any).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;

/// Largest join request accepted (an SSID is at most 32 bytes, a passphrase 63).
pub const MAX_BODY: usize = 4 * 1024;

/// The Wi-Fi as the network service sees it, with the known networks (never their
/// passphrases).
pub async fn view(State(app): State<AppState>) -> Json<Value> {
    let config = app.config.get();
    let known: Vec<Value> = config.network.wifi.networks.iter().map(|n| json!({ "ssid": n.ssid, "hidden": n.hidden })).collect();
    Json(json!({
        "wifi": app.network.view(),
        "known": known,
        "country": config.network.wifi.country,
        "hostname": crate::network::names::current_hostname(),
        "unconfirmed_change": app.settings.pending_network_change(),
    }))
}

/// `{"ticket": 3}`.
#[derive(Deserialize)]
pub struct ConfirmBody {
    ticket: u64,
}

/// The page reached the device after a network change: keep it.
pub async fn confirm(State(app): State<AppState>, Json(ConfirmBody { ticket }): Json<ConfirmBody>) -> Result<Json<Value>, ApiError> {
    if app.settings.confirm_network(ticket) {
        Ok(Json(json!({ "kept": true })))
    } else {
        Err(ApiError::Conflict("no network change waits for that confirmation (a later one does, or it was undone)".into()))
    }
}

/// Scans (a few seconds) and lists the networks in range, strongest first.
pub async fn scan(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let found = app.network.scan().await.map_err(ApiError::Unavailable)?;
    Ok(Json(json!({ "networks": found })))
}

/// `{"ssid": "…", "psk": "…", "hidden": false, "country": "DE"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    ssid: String,
    #[serde(default)]
    psk: Option<String>,
    #[serde(default)]
    hidden: bool,
    /// Needed when `[network.wifi] country` is not set yet.
    #[serde(default)]
    country: Option<String>,
}

/// Puts the network first among the known ones (replacing one of the same name), saves it,
/// and joins it: the hotspot closes, and the page learns how it went from `GET /api/network`
/// once the phone reaches the device again.
pub async fn join(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Json(join): Json<Join>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if join.ssid.is_empty() || join.ssid.len() > 32 {
        return Err(ApiError::BadRequest("ssid: a network name is 1-32 bytes".into()));
    }
    let config = app.config.get();
    let mut networks = vec![json!({ "ssid": join.ssid, "psk": join.psk, "hidden": join.hidden })];
    let shown = crate::settings::view(&config);
    if let Some(known) = shown["network"]["wifi"]["networks"].as_array() {
        networks.extend(known.iter().filter(|n| n["ssid"] != json!(join.ssid)).cloned());
    }
    let mut wifi = json!({ "networks": networks });
    if let Some(country) = &join.country {
        wifi["country"] = json!(country);
    }
    let patch = json!({ "network": { "wifi": wifi } });
    let changed = app.settings.change(&patch, &who.describe()).await.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    app.network.setup_done(join.ssid.clone()).await;
    Ok((StatusCode::ACCEPTED, Json(json!({ "joining": join.ssid, "confirm": changed.confirm }))))
}
