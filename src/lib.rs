//! Lookout: a camera appliance daemon. One H.264 encode per camera, shared by WebRTC (WHEP)
//! viewers, the MSE fallback, the recorder and snapshots.
//!
//! [`serve`] is the whole daemon behind a listener, so tests run it in-process on port 0.

pub mod actions;
pub mod auth;
pub mod config;
pub mod device;
pub mod events;
pub mod media;
pub mod mqtt;
pub mod network;
pub mod onvif;
pub mod push;
pub mod retry;
pub mod settings;
pub mod status;
pub mod storage;
pub mod tls;
pub mod web;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    #[error("cannot listen on {address} (http.https_listen): {source}")]
    HttpsListen { address: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Mqtt(#[from] mqtt::MqttError),
}

/// The sockets the daemon serves on, bound by the caller (`main` from the config, tests on
/// port 0). Without an `https` listener, one is bound at `http.https_listen` when TLS is on.
pub struct Listeners {
    pub http: tokio::net::TcpListener,
    pub https: Option<tokio::net::TcpListener>,
}

/// Runs the appliance until `shutdown` resolves, then stops every pipeline cleanly.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_on(config, Listeners { http: listener, https: None }, shutdown).await
}

/// An error and its causes, one after another ("error sending request: … connection
/// refused"), for logs and answers where the top-level message alone says too little.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// `config` with the settings saved from the page laid over it (`config::layers`); the
/// boot file's settings alone when the saved ones no longer make a valid config (say why).
pub fn with_saved_settings(config: Config) -> Config {
    if config.raw.is_empty() {
        return config;
    }
    let saved = match storage::settings::load(&config.storage.path) {
        Ok(Some(saved)) => saved,
        Ok(None) => return config,
        Err(e) => {
            tracing::error!("settings saved from the page are unreadable ({e}); using the boot partition's lookout.toml alone");
            return config;
        }
    };
    let path = storage::settings::path(&config.storage.path);
    match Config::from_raw(&config::layers::overlay(&config.raw, &saved), &path) {
        Ok(merged) => {
            tracing::info!("settings saved from the page ({}) are in force over lookout.toml", path.display());
            merged
        }
        Err(e) => {
            tracing::error!("settings saved from the page no longer fit lookout.toml; using lookout.toml alone: {e}");
            config
        }
    }
}

/// [`serve`] on the given listeners.
pub async fn serve_on(config: Config, listeners: Listeners, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let boot = config.raw.clone();
    let live = config::Live::new(with_saved_settings(config));
    let config = live.get();
    let https_listener = match (&config.http.tls, listeners.https) {
        (config::Tls::Off, _) => None,
        (_, Some(l)) => Some(l),
        (_, None) => Some(
            tokio::net::TcpListener::bind(config.http.https_listen)
                .await
                .map_err(|source| ServeError::HttpsListen { address: config.http.https_listen, source })?,
        ),
    };
    let listener = listeners.http;
    // A missing data partition must not take the live view down: the recorder reports it
    // (and resumes when the partition appears), so this is only a warning.
    if let Err(e) = std::fs::create_dir_all(&config.storage.path) {
        tracing::warn!("data folder {} unavailable: {e}; live view runs, recording waits for it", config.storage.path.display());
    }
    let bus = Bus::default();
    let journal = events::journal::Recorder::start(&bus);
    let board = Board::new(&config);
    let follower = board.follow(&bus);
    let device_stop = CancellationToken::new();
    let device_tasks = TaskTracker::new();
    let webhooks = webhook::Service::start(&config.webhooks, &journal, &bus, &device_stop);
    start_device(&live, &bus, &device_tasks, &device_stop);
    let storage_stop = CancellationToken::new();
    let index = storage::Storage::start(&live, &bus, storage_stop.clone()).await;
    let media = Arc::new(Media::start(&config, &bus)?);
    device_tasks.spawn(actions::run(
        media.clone(),
        config.storage.path.clone(),
        config.storage.snapshots_keep,
        bus.clone(),
        device_stop.clone(),
    ));
    let listening = web::listening::Listening::new(listener, https_listener, &config.http, &config.storage.path);
    let (listen, listening_at) = tokio::sync::watch::channel(listening.http_address().map_err(ServeError::Http)?);
    device_tasks.spawn(onvif::discovery::supervise(live.clone(), listening_at.clone(), bus.subscribe(), device_stop.clone()));
    device_tasks.spawn(announce_ready(board.clone(), media.clone(), listening_at, bus.clone(), device_stop.clone()));
    let lifetimes = auth::Lifetimes { idle: config.auth.session_idle, absolute: config.auth.session_max };
    let accounts = Arc::new(auth::Auth::open(&config.storage.path, config.auth.admin_password_hash.clone(), lifetimes, bus.clone()));
    accounts.reset_if_asked(&config.auth.reset_file);
    device_tasks.spawn(accounts.clone().run(device_stop.clone()));
    if accounts.needs_setup() {
        tracing::warn!("no owner password yet: open {}setup to set one; nothing else answers until then", listening.page());
    }
    let network = network::Service::start(live.clone(), &bus, &device_stop);
    let rtsp = media::rtsp::Service::start(live.clone(), media.clone(), accounts.clone(), &bus, &device_stop);
    let pushes = push::Service::start(live.clone(), media.clone(), &bus);
    let mqtt = mqtt::Service::start(live.clone(), board.clone(), media.clone(), accounts.clone(), &bus, &device_stop)?;
    let services = settings::Services {
        media: media.clone(),
        board: board.clone(),
        webhooks: webhooks.clone(),
        mqtt: mqtt.clone(),
        network: network.clone(),
        auth: accounts.clone(),
    };
    let settings = Arc::new(settings::Settings::new(live.clone(), boot, services, bus.clone()));
    device_tasks.spawn(settings.clone().run_rollback(device_stop.clone()));
    let state = web::AppState {
        config: live.clone(),
        settings,
        media: media.clone(),
        board,
        index,
        bus: bus.clone(),
        auth: accounts,
        exports: web::recordings::Exports::default(),
        journal,
        webhooks: webhooks.clone(),
        event_clients: Default::default(),
        network: network.clone(),
        rtsp: rtsp.clone(),
        pushes: pushes.clone(),
    };
    let (app, plain) = (web::router(state.clone()), web::plain_router(state));
    let stop_serving = CancellationToken::new();
    let stopper = stop_serving.clone();
    let stopping = bus.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Before the listeners close, so event clients, webhooks and MQTT may still hear it.
        stopping.publish(events::Event::DaemonStopping);
        stopper.cancel();
    });
    // Serve until shutdown; a change of `[http]` ends one round and the next one serves on
    // the new listeners.
    let mut listening = listening;
    let served = loop {
        let round = stop_serving.child_token();
        let watcher = tokio::spawn(end_round_on_http_change(bus.subscribe(), round.clone()));
        let served = web::listening::serve(&listening, app.clone(), plain.clone(), network.clone(), round).await;
        watcher.abort();
        if served.is_err() || stop_serving.is_cancelled() {
            break served;
        }
        let settings = live.get().http.clone();
        listening = match listening.rebind(&settings, &config.storage.path).await {
            Ok(new) => new,
            Err((old, why)) => {
                tracing::error!("the new [http] settings cannot be used ({why}); serving on the old ones until the next start");
                old
            }
        };
        if let Ok(address) = listening.http_address() {
            let _ = listen.send(address);
        }
    };
    tracing::info!("shutting down");
    // Pushes first: each ends its session at the server while the camera still runs.
    pushes.stop().await;
    media.stop().await;
    storage_stop.cancel();
    device_stop.cancel();
    device_tasks.close();
    // The LED task gives the LED back to its trigger on the way out: wait for it; MQTT says
    // goodbye.
    device_tasks.wait().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        webhooks.stopped().await;
        mqtt.stopped().await;
    })
    .await;
    follower.abort();
    served.map_err(ServeError::Http)
}

/// Cancels `round` when the settings change `[http]`.
async fn end_round_on_http_change(mut events: tokio::sync::broadcast::Receiver<events::Event>, round: CancellationToken) {
    loop {
        match events.recv().await {
            Ok(e) if e.changes("http") => {
                round.cancel();
                return;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            _ => {}
        }
    }
}

/// The status LED, the button and the health watcher; each one that cannot start says why
/// and the daemon runs on without it.
fn start_device(live: &config::Live, bus: &Bus, tasks: &TaskTracker, stop: &CancellationToken) {
    let config = live.get();
    tasks.spawn(device::led::run(live.clone(), bus.subscribe(), stop.clone()));
    tasks.spawn(device::button::supervise(live.clone(), bus.subscribe(), bus.clone(), device::button::ButtonPin::open, stop.clone()));
    tasks.spawn(device::health::watch(device::health::Roots::default(), config.storage.path.clone(), bus.clone(), stop.clone()));
}

/// How long READY waits for cameras to come online; a camera still starting after this is
/// reported by its own state, and systemd need not wait for it.
const READY_WAIT: Duration = Duration::from_secs(15);

/// Tells the bus and systemd that the daemon is up once every camera is online (or
/// [`READY_WAIT`] has passed), then feeds systemd's watchdog while the cameras' supervisors
/// and the web server are alive.
async fn announce_ready(
    board: Board,
    media: Arc<Media>,
    listen: tokio::sync::watch::Receiver<std::net::SocketAddr>,
    bus: Bus,
    stop: CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    while tokio::time::Instant::now() < deadline && !board.cameras().iter().all(|c| c.online) {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let cameras = board.cameras();
    let online = cameras.iter().filter(|c| c.online).count();
    tracing::info!("ready: {online} of {} camera(s) online", cameras.len());
    bus.publish(events::Event::DaemonReady);
    let Some(notifier) = device::systemd::Notifier::from_env() else { return };
    if let Err(e) = notifier.notify(&format!("READY=1\nSTATUS={online} of {} camera(s) online", cameras.len())) {
        tracing::warn!("could not tell systemd we are ready: {e}");
    }
    let Some(period) = device::systemd::watchdog_period() else { return };
    let check = move || {
        let media = media.clone();
        // Where plain HTTP listens now (`[http]` may have moved it).
        let listen = *listen.borrow();
        async move {
            if let Some(wedged) = media.wedged() {
                return Err(wedged);
            }
            web::probe_self(listen).await
        }
    };
    device::systemd::keep_alive(notifier, period, check, bus, stop).await;
}
