//! Lookout: a camera appliance daemon. One H.264 encode per camera, shared by WebRTC (WHEP)
//! viewers and, later, the recorder, RTSP server and snapshots.
//!
//! [`serve`] is the whole daemon behind a listener, so tests run it in-process on port 0.

pub mod config;
pub mod device;
pub mod events;
pub mod media;
pub mod status;
pub mod storage;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use config::Config;
use events::Bus;
use media::Media;
use status::Board;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Media(#[from] media::InitError),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Runs the appliance until `shutdown` resolves, then stops every pipeline cleanly.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // A missing data partition must not take the live view down: the recorder reports it
    // (and resumes when the partition appears), so this is only a warning.
    if let Err(e) = std::fs::create_dir_all(&config.storage.path) {
        tracing::warn!("data folder {} unavailable: {e}; live view runs, recording waits for it", config.storage.path.display());
    }
    let bus = Bus::default();
    let board = Board::new(&config);
    let follower = board.follow(&bus);
    let storage_stop = tokio_util::sync::CancellationToken::new();
    let index = storage::Storage::start(&config, &bus, storage_stop.clone()).await;
    let media = Arc::new(Media::start(&config, &bus)?);
    let app = web::router(web::AppState { config: Arc::new(config), media: media.clone(), board, index });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("listening on http://{addr}/");
    }
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    tracing::info!("shutting down");
    media.stop().await;
    storage_stop.cancel();
    follower.abort();
    served.map_err(ServeError::Http)
}
