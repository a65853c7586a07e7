//! HTTP: the page, the JSON API and WHEP. Nothing outside this module speaks HTTP.

pub mod api;
pub mod assets;
pub mod error;
pub mod mse;
pub mod recordings;
pub mod whep;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};

use crate::config::Config;
use crate::media::Media;
use crate::status::Board;

/// Route paths, written once and used by the server, the page's API answers and the tests.
pub mod routes {
    /// WHEP endpoint of a camera.
    pub fn whep(camera: &str) -> String {
        format!("/whep/{camera}")
    }
    /// A WHEP session resource (the `Location` of a created session).
    pub fn whep_session(camera: &str, session: &str) -> String {
        format!("/whep/{camera}/{session}")
    }
    pub const STATE: &str = "/api/state";
    pub const CAMERAS: &str = "/api/cameras";
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub media: Arc<Media>,
    pub board: Board,
    pub index: Arc<crate::storage::Index>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    // WHEP players run on other origins (that is the point of a standard endpoint).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::PATCH, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, HeaderName::from_static("if-match")])
        .expose_headers([header::LOCATION, header::LINK, header::ETAG]);
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*path}", get(assets::asset))
        .route(routes::STATE, get(api::state))
        .route(routes::CAMERAS, get(api::cameras))
        .route("/api/health", get(api::health))
        .route("/api/cameras/{camera}/recordings", get(recordings::list))
        .route("/api/cameras/{camera}/recordings/{segment}", get(recordings::download))
        .route("/api/cameras/{camera}/export", get(recordings::export))
        .route("/api/cameras/{camera}/snapshot.jpg", get(recordings::snapshot))
        .route("/ws/mse/{camera}", get(mse::stream))
        .route("/whep/{camera}", post(whep::create))
        .route("/whep/{camera}/{session}", axum::routing::delete(whep::delete).patch(whep::patch))
        .fallback(|| async { error::ApiError::NotFound("no such page or API endpoint".into()) })
        .layer(DefaultBodyLimit::max(whep::MAX_OFFER_BYTES))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(state.clone(), whep::advertise_on_options))
        .with_state(state)
}
