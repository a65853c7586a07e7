//! `GET /api/config`, `PATCH /api/config` and `POST /api/config/cameras/{camera}/rename`: the
//! owner's settings, changed while the daemon runs (`crate::settings` does the work).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;
use crate::settings::{Changed, SettingsError};

/// Largest settings change accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Every setting, secrets left out.
pub async fn get(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(app.settings.view())
}

/// A JSON merge patch (RFC 7396) against what `GET` shows.
pub async fn patch(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Json<Changed>, ApiError> {
    let patch: serde_json::Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("not JSON: {e}")))?;
    app.settings.change(&patch, &who.describe()).await.map(Json).map_err(refusal)
}

/// `GET /api/devices`: capture devices with their formats, sizes and rates, and the encoders
/// found (what `lookout devices` prints), for the settings page to offer.
pub async fn devices() -> Result<Json<crate::media::probe::Machine>, ApiError> {
    tokio::task::spawn_blocking(crate::media::probe::Machine::probe)
        .await
        .map(Json)
        .map_err(|e| ApiError::Internal(format!("probing devices failed: {e}")))
}

/// `{"to": "new-name"}`.
#[derive(Deserialize)]
pub struct Rename {
    to: String,
}

/// Renames a camera, its recordings with it.
pub async fn rename(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(camera): Path<String>,
    Json(Rename { to }): Json<Rename>,
) -> Result<Json<Changed>, ApiError> {
    app.settings.rename_camera(&camera, &to, &who.describe()).await.map(Json).map_err(refusal)
}

fn refusal(e: SettingsError) -> ApiError {
    match e {
        SettingsError::UnknownCamera(name) => ApiError::UnknownCamera(name),
        SettingsError::Save(_) => ApiError::Unavailable(e.to_string()),
        SettingsError::Patch(_) | SettingsError::Invalid(_) => ApiError::BadRequest(e.to_string()),
    }
}
