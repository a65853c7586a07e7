//! ONVIF's device and media services over HTTP (`POST /onvif/device_service`,
//! `/onvif/media_service`). The route's policy is `Soap`: the credential travels in the body
//! (WS-Security), so this handler turns it into a principal (`auth::Auth::verify`) and asks
//! `auth::Auth::authorize` for what the operation needs (`onvif::services::need`) before
//! answering. Faults are SOAP faults: 400 for the sender's, 500 for the device's.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::{Action, Denied, Principal};
use crate::onvif::services::{self, Need};
use crate::onvif::soap::{self, Blame};

/// Largest request read: ONVIF requests are a few KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// `POST /onvif/device_service` and `POST /onvif/media_service`.
pub async fn service(State(app): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
    if !app.config.get().onvif.enabled {
        return (StatusCode::NOT_FOUND, "ONVIF is off ([onvif] enabled)\n").into_response();
    }
    let Ok(text) = std::str::from_utf8(&body) else { return fault(Blame::Sender, "ter:WellFormed", "the request is not UTF-8") };
    let request = match soap::parse(text) {
        Ok(r) => r,
        Err(e) => return fault(Blame::Sender, "ter:WellFormed", &e.to_string()),
    };
    let need = match services::need(&request) {
        Ok(n) => n,
        Err((blame, code, reason)) => return fault(blame, code, &reason),
    };
    let principal = match (&request.credential, &need) {
        (_, Need::Nothing) => Principal::Anonymous,
        (None, _) => return not_authorized("this operation needs a WS-Security UsernameToken"),
        (Some(credential), _) => match app.auth.verify(peer.ip(), credential).await {
            Ok(p) => p,
            Err(Denied::TooManyAttempts(_)) => {
                return fault(Blame::Receiver, "ter:NotAuthorized", "too many failed attempts; try again later");
            }
            Err(e) => return not_authorized(&e.to_string()),
        },
    };
    let allowed = match &need {
        Need::Nothing => Ok(()),
        Need::Status => app.auth.authorize(&principal, Action::Status, None),
        Need::View(camera) => app.auth.authorize(&principal, Action::View, camera.as_deref()),
        Need::Snapshot(camera) => app.auth.authorize(&principal, Action::Snapshot, Some(camera)),
    };
    if let Err(e) = allowed {
        return not_authorized(&e.to_string());
    }
    let device = describe(&app, &headers);
    let sees = |camera: &str| app.auth.authorize(&principal, Action::View, Some(camera)).is_ok();
    match services::answer(&request, &device, &sees, chrono::Utc::now()) {
        Ok(body) => soap_response(StatusCode::OK, soap::envelope(&body)),
        Err((blame, code, reason)) => fault(blame, code, &reason),
    }
}

/// The device as this request sees it: addresses with the host it named.
fn describe(app: &AppState, headers: &HeaderMap) -> services::Device {
    let config = app.config.get();
    let named =
        headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| super::api::host_of(h).is_some()).unwrap_or("lookout.local");
    let host = super::api::host_of(named).unwrap_or("lookout.local");
    let hostname = crate::onvif::hostname();
    // The size the camera delivers once online (an IP camera passed through sends its own),
    // else the configured one.
    let live = app.board.cameras();
    let size = |c: &crate::config::Camera| {
        live.iter().find(|s| s.name == c.name && s.width > 0 && s.height > 0).map_or((c.width, c.height), |s| (s.width, s.height))
    };
    services::Device {
        firmware: env!("CARGO_PKG_VERSION").into(),
        serial: hostname.clone(),
        hardware: crate::onvif::hardware(),
        hostname,
        http_base: format!("http://{named}"),
        rtsp_base: app.rtsp.port().map(|port| format!("rtsp://{host}:{port}")),
        cameras: config
            .cameras
            .iter()
            .map(|c| services::Camera {
                name: c.name.clone(),
                width: size(c).0,
                height: size(c).1,
                fps: c.fps,
                bitrate_kbps: c.bitrate_kbps,
                keyframe_every: (c.keyframe_interval.as_secs_f64() * f64::from(c.fps)).round() as u32,
            })
            .collect(),
    }
}

fn not_authorized(reason: &str) -> Response {
    fault(Blame::Sender, "ter:NotAuthorized", reason)
}

fn fault(blame: Blame, code: &str, reason: &str) -> Response {
    let status = match blame {
        Blame::Sender => StatusCode::BAD_REQUEST,
        Blame::Receiver => StatusCode::INTERNAL_SERVER_ERROR,
    };
    soap_response(status, soap::fault(blame, code, reason))
}

fn soap_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")], body).into_response()
}
