//! HTTP: the page, the JSON API and WHEP. Nothing outside this module speaks HTTP.

pub mod accounts;
pub mod api;
pub mod assets;
pub mod auth;
pub mod captive;
pub mod datachannel;
pub mod error;
pub mod events;
pub mod listening;
pub mod metrics;
pub mod mse;
pub mod network;
pub mod onvif;
pub mod recordings;
pub mod redirect;
pub mod server;
pub mod settings;
pub mod whep;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};

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
    pub const LIVEZ: &str = "/livez";
}

/// Asks our own HTTP server for [`routes::LIVEZ`] over loopback, as a client would: a wedged
/// server (every worker stuck) fails this. For the systemd watchdog.
pub async fn probe_self(listen: std::net::SocketAddr) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let mut stream = tokio::net::TcpStream::connect((ip, listen.port())).await.map_err(|e| format!("web server: {e}"))?;
    let request = format!("GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n", routes::LIVEZ);
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("web server: {e}"))?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.map_err(|e| format!("web server: {e}"))?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(format!("web server answered {}", String::from_utf8_lossy(&head)))
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The config in force (the settings API may replace it).
    pub config: crate::config::Live,
    pub settings: Arc<crate::settings::Settings>,
    pub media: Arc<Media>,
    pub board: Board,
    pub index: Arc<crate::storage::Index>,
    pub bus: crate::events::Bus,
    pub auth: Arc<crate::auth::Auth>,
    /// Export slots, shared by every request to this daemon.
    pub exports: recordings::Exports,
    /// The numbered events `/api/events` replays and streams.
    pub journal: crate::events::journal::Recorder,
    /// Webhook delivery counters, for `/metrics` and the owner's `/api/state`.
    pub webhooks: std::sync::Arc<crate::webhook::Service>,
    /// Clients of `/api/events`, for `/metrics`.
    pub event_clients: std::sync::Arc<events::Clients>,
    /// The Wi-Fi and the setup hotspot.
    pub network: Arc<crate::network::Service>,
    /// The RTSP server, for the URLs the camera list gives.
    pub rtsp: Arc<crate::media::rtsp::Service>,
    /// WHIP pushes' state, for `/api/state` and `/metrics`.
    pub pushes: Arc<crate::push::Service>,
}

/// ONVIF's services (`web::onvif`).
fn onvif_routes() -> Router<AppState> {
    Router::new()
        .route(crate::onvif::DEVICE_PATH, post(onvif::service))
        .route(crate::onvif::MEDIA_PATH, post(onvif::service))
        .layer(DefaultBodyLimit::max(onvif::MAX_BODY))
}

/// What plain HTTP serves besides the redirect when HTTPS is on: ONVIF, whose clients do not
/// follow redirects and do not trust a device's own certificate; its WS-Security digest
/// keeps a token's text off the wire, a PasswordText does not (as RTSP's Basic).
pub fn plain_router(state: AppState) -> Router {
    onvif_routes()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(axum::middleware::map_response(error::json_rejections))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// The whole HTTP surface. Every route passes `auth::guard` (its policy is in
/// `auth::ROUTES`); CORS is open only on WHEP, where a Bearer token is the credential.
pub fn router(state: AppState) -> Router {
    // WHEP players run on other origins (that is the point of a standard endpoint); they
    // authenticate with a Bearer token, never the page's cookie (SameSite=Strict).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::DELETE, Method::PATCH, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, HeaderName::from_static("if-match")])
        .expose_headers([header::LOCATION, header::LINK, header::ETAG]);
    let whep = Router::new()
        .route("/whep/{camera}", post(whep::create))
        .route("/whep/{camera}/{session}", axum::routing::delete(whep::delete).patch(whep::patch))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(state.clone(), whep::advertise_on_options));
    Router::new()
        .route("/", get(assets::index))
        .route("/login", get(auth::login_page))
        .route("/setup", get(auth::setup_page))
        .route("/api/login", post(auth::login))
        .route("/api/setup", post(auth::setup))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route("/api/me/password", post(accounts::change_own_password))
        .route("/api/users", get(accounts::list_users).post(accounts::add_user))
        .route("/api/users/{name}", axum::routing::patch(accounts::change_user).delete(accounts::remove_user))
        .route("/api/tokens", get(accounts::list_tokens).post(accounts::issue_token).delete(accounts::revoke_all_tokens))
        .route("/api/tokens/{id}", axum::routing::delete(accounts::revoke_token))
        .route("/assets/{*path}", get(assets::asset))
        .route(routes::STATE, get(api::state))
        .route(routes::CAMERAS, get(api::cameras))
        .route("/api/health", get(api::health))
        .route("/api/actions/{action}", post(api::action))
        .route("/metrics", get(metrics::metrics))
        .route(routes::LIVEZ, get(api::livez))
        .route("/api/cameras/{camera}/recordings", get(recordings::list))
        .route("/api/cameras/{camera}/recordings/{segment}", get(recordings::download))
        .route("/api/cameras/{camera}/export", get(recordings::export))
        .route("/api/cameras/{camera}/snapshot.jpg", get(recordings::snapshot))
        .route("/ws/mse/{camera}", get(mse::stream))
        .route("/api/events", get(events::stream))
        .route("/api/config", get(settings::get).patch(settings::patch).layer(axum::extract::DefaultBodyLimit::max(settings::MAX_BODY)))
        .route("/api/config/cameras/{camera}/rename", post(settings::rename))
        .route("/api/devices", get(settings::devices))
        .route("/api/network", get(network::view))
        .route("/api/network/scan", post(network::scan))
        .route("/api/network/confirm", post(network::confirm))
        .route("/api/network/join", post(network::join).layer(axum::extract::DefaultBodyLimit::max(network::MAX_BODY)))
        .merge(onvif_routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .merge(whep)
        .fallback(|| async { error::ApiError::NotFound("no such page or API endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), captive::redirect))
        .layer(DefaultBodyLimit::max(whep::MAX_OFFER_BYTES))
        .layer(axum::middleware::map_response(error::json_rejections))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}
