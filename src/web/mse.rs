//! `GET /ws/mse/{camera}`: the live view as fragmented MP4 over a WebSocket, for browsers
//! whose WebRTC has no H.264 (see `media::mse`). Binary messages, in order: the init segment,
//! then a fragment per frame. The page's player uses it only when WHEP cannot work.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;

use std::time::Duration;

use super::AppState;
use super::error::ApiError;
use crate::media::mse;
use crate::media::webrtc::ViewerTicket;

/// Upgrades to a WebSocket carrying the camera's fMP4 stream.
pub async fn stream(
    State(app): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    Path(camera): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let cam = app.media.camera(&camera).ok_or_else(|| ApiError::UnknownCamera(camera.clone()))?;
    // Counted against webrtc.max_viewers like a WHEP session; refused before the upgrade.
    let ticket = cam.viewers.admit("mse")?;
    let revoked = super::auth::revoked(&app, &who);
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| send(app, camera, socket, ticket, revoked)))
}

/// A client that has not taken a chunk for this long (its connection's buffers are full: it
/// stopped reading) is dropped, freeing its viewer slot.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Largest message a client may send; the player sends nothing but closes and pings.
const MAX_CLIENT_MESSAGE: usize = 1024;

async fn send(
    app: AppState,
    camera: String,
    mut socket: WebSocket,
    mut ticket: ViewerTicket,
    revoked: impl std::future::Future<Output = ()>,
) {
    let mut revoked = std::pin::pin!(revoked);
    let Some(cam) = app.media.camera(&camera) else { return };
    let mut stream = match mse::open(&cam.fanout, app.media.clock(), &camera) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(camera = %camera, "MSE stream: {e}");
            return;
        }
    };
    tracing::info!(camera = %camera, "MSE viewer joined");
    loop {
        tokio::select! {
            chunk = stream.chunks.recv() => match chunk {
                Some(bytes) => match tokio::time::timeout(STALL_LIMIT, socket.send(Message::Binary(bytes.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::info!(camera = %camera, "MSE viewer dropped: it took nothing for {STALL_LIMIT:?}");
                        break;
                    }
                },
                None => break,
            },
            _ = &mut ticket.stop => break,
            _ = &mut revoked => {
                tracing::info!(camera = %camera, "MSE viewer ended: the token that opened it was revoked");
                break;
            }
            // The client closing (or any message from it) ends the stream.
            msg = socket.recv() => match msg {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => break,
            },
        }
    }
    tracing::info!(camera = %camera, "MSE viewer left");
}
