//! The JSON API: camera list and live state. Reads the status board, never the media layer.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::{AppState, routes};
use crate::status::CameraStatus;

/// `GET /api/state`.
#[derive(Serialize)]
pub struct StateResponse {
    pub version: &'static str,
    pub cameras: Vec<CameraStatus>,
}

/// Live state of every camera.
pub async fn state(State(app): State<AppState>) -> Json<StateResponse> {
    Json(StateResponse { version: env!("CARGO_PKG_VERSION"), cameras: app.board.cameras() })
}

/// One entry of `GET /api/cameras`.
#[derive(Serialize)]
pub struct CameraEntry {
    pub name: String,
    pub whep: String,
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// The configured cameras and where to watch them.
pub async fn cameras(State(app): State<AppState>) -> Json<Vec<CameraEntry>> {
    Json(
        app.config
            .cameras
            .iter()
            .map(|c| CameraEntry {
                name: c.name.clone(),
                whep: routes::whep(&c.name),
                source: c.source.to_string(),
                width: c.width,
                height: c.height,
                fps: c.fps,
            })
            .collect(),
    )
}
