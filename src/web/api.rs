//! The JSON API: camera list and live state. Reads the status board, never the media layer.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;

use super::{AppState, routes};
use crate::auth::Principal;
use crate::status::CameraStatus;

/// `GET /api/state`.
#[derive(Serialize)]
pub struct StateResponse {
    pub version: &'static str,
    pub cameras: Vec<CameraStatus>,
    /// Webhook deliveries (the owner only: they describe the configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<crate::webhook::HookStatus>>,
    /// WHIP pushes (the owner only, like webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushes: Option<Vec<crate::push::PushStatus>>,
}

/// Live state of every camera the caller may see.
pub async fn state(State(app): State<AppState>, Extension(who): Extension<Principal>) -> Json<StateResponse> {
    Json(state_for(&app, &who))
}

/// The state `who` may see: also the first message of `/api/events`.
pub fn state_for(app: &AppState, who: &Principal) -> StateResponse {
    let cameras = app.board.cameras().into_iter().filter(|c| who.sees(&c.name)).collect();
    let owner = app.auth.authorize(who, crate::auth::Action::Admin, None).is_ok();
    let webhooks = owner.then(|| app.webhooks.status());
    let pushes = owner.then(|| app.pushes.status());
    StateResponse { version: env!("CARGO_PKG_VERSION"), cameras, webhooks, pushes }
}

/// One entry of `GET /api/cameras`.
#[derive(Serialize)]
pub struct CameraEntry {
    pub name: String,
    pub whep: String,
    /// Where NVRs and players read it (`rtsp://<the host this request named>:<port>/<name>`),
    /// while the RTSP server runs.
    pub rtsp: Option<String>,
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// The configured cameras the caller may see, and where to watch them.
pub async fn cameras(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: axum::http::HeaderMap,
) -> Json<Vec<CameraEntry>> {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).and_then(host_of).unwrap_or("lookout.local");
    let rtsp = app.rtsp.port();
    Json(
        app.config
            .get()
            .cameras
            .iter()
            .filter(|c| who.sees(&c.name))
            .map(|c| CameraEntry {
                name: c.name.clone(),
                whep: routes::whep(&c.name),
                rtsp: rtsp.map(|port| format!("rtsp://{host}:{port}/{}", c.name)),
                source: c.source.to_string(),
                width: c.width,
                height: c.height,
                fps: c.fps,
            })
            .collect(),
    )
}

/// `GET /api/health`: the device's readings and the warnings they raise.
#[derive(Serialize)]
pub struct HealthResponse {
    pub health: crate::device::health::Health,
    pub warnings: Vec<HealthWarning>,
}

/// One warning with advice for the owner.
#[derive(Serialize)]
pub struct HealthWarning {
    pub kind: crate::device::health::Warning,
    pub advice: &'static str,
}

/// Temperature, throttling, load, memory, uptime and the data partition.
pub async fn health(State(app): State<AppState>) -> Json<HealthResponse> {
    use crate::device::health;
    let data = app.config.get().storage.path.clone();
    let reading = tokio::task::spawn_blocking(move || health::read(&health::Roots::default(), crate::storage::disk::usage(&data).ok()))
        .await
        .unwrap_or_else(|_| health::read(&health::Roots::default(), None));
    let warnings = health::warnings(&reading, &health::Thresholds::default())
        .into_iter()
        .map(|kind| HealthWarning { kind, advice: kind.advice() })
        .collect();
    Json(HealthResponse { health: reading, warnings })
}

/// `POST /api/actions/{action}[?camera=NAME]`: the page's (and scripts') way to press the button.
pub async fn action(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(target): axum::extract::Query<ActionTarget>,
) -> Result<axum::http::StatusCode, super::error::ApiError> {
    request_action(&app, &who, &name, target.camera, "api")?;
    Ok(axum::http::StatusCode::ACCEPTED)
}

/// Which camera an action is for (none: every camera).
#[derive(serde::Deserialize)]
pub struct ActionTarget {
    pub camera: Option<String>,
}

/// Checks one request for an action (the API's and the events socket's) and queues it.
pub fn request_action(
    app: &AppState,
    who: &Principal,
    name: &str,
    camera: Option<String>,
    origin: &str,
) -> Result<crate::events::Action, super::error::ApiError> {
    use super::error::ApiError;
    use crate::actions::Refused;
    crate::actions::request(&app.config.get(), &app.auth, &app.bus, who, name, camera, origin).map_err(|e| match e {
        Refused::UnknownAction(_) => ApiError::NotFound(e.to_string()),
        Refused::UnknownCamera(name) => ApiError::UnknownCamera(name),
        Refused::Denied(_) => ApiError::Forbidden(e.to_string()),
        Refused::RecordingDisabled(_) => ApiError::Conflict(e.to_string()),
    })
}

/// `GET /livez`: answers while the HTTP server serves; the systemd watchdog asks it.
pub async fn livez() -> &'static str {
    "ok\n"
}

/// The host part of a `Host` header (`lookout.local:8080`, `[fe80::1]:80`, `10.0.0.2`), if it
/// is a plain name or address and can go into a URL as it is.
pub fn host_of(header: &str) -> Option<&str> {
    let host = match header.strip_prefix('[') {
        Some(rest) => &header[..rest.find(']')? + 2],
        None => header.rsplit_once(':').map_or(header, |(h, _)| h),
    };
    let plain = !host.is_empty() && host.len() <= 253 && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    plain.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_rtsp_urls_host_is_the_one_the_client_used() {
        assert_eq!(host_of("lookout.local:8080"), Some("lookout.local"));
        assert_eq!(host_of("10.0.0.2"), Some("10.0.0.2"));
        assert_eq!(host_of("[fe80::1]:80"), Some("[fe80::1]"));
        assert_eq!(host_of("[fe80::1]"), Some("[fe80::1]"));
        assert_eq!(host_of("evil/path:80"), None);
        assert_eq!(host_of("[oops"), None);
    }
}
