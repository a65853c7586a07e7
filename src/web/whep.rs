//! WHEP (WebRTC-HTTP Egress Protocol): `POST /whep/{camera}` with an SDP offer creates a
//! viewer session, `DELETE` on its `Location` ends it. ICE servers are advertised in `Link`
//! headers; trickle ICE is not offered (answers carry every candidate), so `PATCH` is 405.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{AppState, routes};
use crate::config::WebRtc;

/// Largest SDP offer accepted; browsers send 3-10 kB, a generous margin above that.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Creates a viewer session from an SDP offer.
pub async fn create(
    State(app): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    Path(camera): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cam = app.media.camera(&camera).ok_or_else(|| ApiError::UnknownCamera(camera.clone()))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.trim().to_ascii_lowercase().starts_with("application/sdp") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "WHEP offers must be sent as Content-Type: application/sdp (got `{content_type}`)"
        )));
    }
    let offer = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the SDP offer is not UTF-8 text".into()))?;
    let joined = cam.viewers.join(offer, Some(super::datachannel::handler(&app, &who, &camera))).await?;
    end_on_revoke(&app, &who, &camera, &joined.session);
    let location = routes::whep_session(&camera, &joined.session);
    let mut response = (StatusCode::CREATED, joined.answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    h.insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|e| ApiError::Internal(e.to_string()))?);
    add_ice_links(h, &app.config.get().webrtc);
    Ok(response)
}

/// A session a token opened ends when the token is revoked.
fn end_on_revoke(app: &AppState, who: &crate::auth::Principal, camera: &str, session: &str) {
    if !matches!(who, crate::auth::Principal::Token { .. }) {
        return;
    }
    let revoked = super::auth::revoked(app, who);
    let mut events = app.bus.subscribe();
    let (media, camera, session) = (app.media.clone(), camera.to_owned(), session.to_owned());
    tokio::spawn(async move {
        let left = async {
            loop {
                match events.recv().await {
                    Ok(crate::events::Event::ViewerLeft { session: s, .. }) if s == session => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    _ => {}
                }
            }
        };
        tokio::select! {
            _ = revoked => {
                if let Some(cam) = media.camera(&camera) {
                    let _ = cam.viewers.leave(&session);
                    tracing::info!(camera = %camera, "viewer session ended: the token that opened it was revoked");
                }
            }
            _ = left => {}
        }
    });
}

/// Ends a viewer session.
pub async fn delete(State(app): State<AppState>, Path((camera, session)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let cam = app.media.camera(&camera).ok_or_else(|| ApiError::UnknownCamera(camera.clone()))?;
    cam.viewers.leave(&session)?;
    Ok(StatusCode::OK)
}

/// Trickle ICE and ICE restarts are not supported; the client keeps its first answer.
pub async fn patch() -> ApiError {
    ApiError::MethodNotAllowed("trickle ICE is not supported: the answer already lists every candidate".into())
}

/// Adds what a WHEP client learns from `OPTIONS` (accepted type, ICE servers) to the
/// response the CORS layer gives it, so browsers' preflights and plain OPTIONS both get them.
pub async fn advertise_on_options(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let camera = (request.method() == Method::OPTIONS)
        .then(|| request.uri().path().strip_prefix("/whep/").filter(|rest| !rest.is_empty() && !rest.contains('/')).map(str::to_owned))
        .flatten();
    // TURN credentials go only to a client that may watch (a browser's preflight carries no
    // credential; it gets them in the answer to its POST).
    let allowed = match camera {
        Some(c) => {
            let (credential, peer) = super::auth::presented(&request);
            let who = super::auth::resolve(&app, credential, peer).await;
            who.is_ok_and(|who| app.auth.authorize(&who, crate::auth::Action::View, Some(&c)).is_ok())
        }
        None => false,
    };
    let mut response = next.run(request).await;
    if allowed {
        let h = response.headers_mut();
        h.insert("accept-post", HeaderValue::from_static("application/sdp"));
        add_ice_links(h, &app.config.get().webrtc);
    }
    response
}

/// `Link: <stun:...>; rel="ice-server"` per configured server, as WHEP specifies.
fn add_ice_links(h: &mut HeaderMap, w: &WebRtc) {
    let stun = w.stun.iter().map(|u| format!("<{u}>; rel=\"ice-server\""));
    let turn = w.turn.iter().map(|t| {
        format!(
            "<{}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
            t.url,
            t.username.replace('"', ""),
            t.credential.replace('"', "")
        )
    });
    for link in stun.chain(turn) {
        if let Ok(v) = HeaderValue::from_str(&link) {
            h.append(header::LINK, v);
        }
    }
}
