//! The RTSP output: `rtsp://host:8554/{camera}` for NVRs (Frigate, Blue Iris, Synology),
//! VLC and Home Assistant, over UDP or interleaved TCP. [`Service`] keeps a [`server::Server`]
//! running as `[rtsp]` says, restarts it when those settings change, and mounts the cameras
//! as they come and go (and advertises each over DNS-SD); [`gate`] asks `auth` about every
//! request.

pub mod gate;
pub mod server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::Live;
use crate::events::Bus;
use crate::media::Media;
use server::Server;

/// How long a server that could not bind its port waits before trying again (another
/// program had it, or the address is not up yet).
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The RTSP server as the rest of the daemon sees it.
#[derive(Default)]
pub struct Service {
    port: Mutex<Option<u16>>,
}

impl Service {
    /// Serves RTSP until `stop`, as the live config says.
    pub fn start(live: Live, media: Arc<Media>, auth: Arc<Auth>, bus: &Bus, stop: &CancellationToken) -> Arc<Service> {
        let service = Arc::new(Service::default());
        tokio::spawn(service.clone().run(live, media, auth, bus.subscribe(), stop.clone()));
        service
    }

    /// The port RTSP clients connect to, while serving.
    pub fn port(&self) -> Option<u16> {
        *self.port.lock().expect("port lock never poisoned")
    }

    async fn run(
        self: Arc<Self>,
        live: Live,
        media: Arc<Media>,
        auth: Arc<Auth>,
        mut events: tokio::sync::broadcast::Receiver<crate::events::Event>,
        stop: CancellationToken,
    ) {
        let mut running: Option<Server> = None;
        let mut adverts = crate::network::adverts::Adverts::default();
        // When a server that could not start may be tried again (events wake the loop sooner).
        let mut retry_at = tokio::time::Instant::now();
        loop {
            let config = live.get();
            let names: Vec<String> = config.cameras.iter().map(|c| c.name.clone()).collect();
            if running.is_none() && config.rtsp.enabled && tokio::time::Instant::now() >= retry_at {
                let cameras = live.clone();
                let exists = Box::new(move |name: &str| cameras.get().cameras.iter().any(|c| c.name == name));
                let gate = gate::Gate::new(auth.clone(), tokio::runtime::Handle::current(), exists);
                match Server::start(config.rtsp.listen, gate, media.clone()) {
                    Ok(server) => {
                        tracing::info!(port = server.port(), "RTSP server listening");
                        running = Some(server);
                    }
                    Err(e) => {
                        tracing::error!("{e}; trying again in {} s", RETRY_AFTER.as_secs());
                        retry_at = tokio::time::Instant::now() + RETRY_AFTER;
                    }
                }
            }
            if let Some(server) = &running {
                server.mount(&names);
            }
            adverts.follow(&running.as_ref().map_or_else(Vec::new, |s| crate::network::adverts::rtsp(&names, s.port())));
            *self.port.lock().expect("port lock never poisoned") = running.as_ref().map(Server::port);
            let retry = running.is_none() && config.rtsp.enabled;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(retry_at), if retry => {}
                event = events.recv() => match event {
                    Ok(e) if e.changes("rtsp") => {
                        tracing::info!("RTSP settings changed: restarting the RTSP server");
                        shut(running.take()).await;
                        retry_at = tokio::time::Instant::now();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    _ => {}
                },
            }
        }
        *self.port.lock().expect("port lock never poisoned") = None;
        shut(running).await;
    }
}

/// Stops a server off the runtime's threads: its thread may be waiting on the runtime for a
/// password check.
async fn shut(server: Option<Server>) {
    if let Some(server) = server {
        let _ = tokio::task::spawn_blocking(move || drop(server)).await;
    }
}
