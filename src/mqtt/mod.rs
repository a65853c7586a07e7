//! MQTT: the device's state, health and events on a broker, Home Assistant discovery, and
//! commands from it, through rumqttc. The topics are in [`topics`].
//!
//! Two tasks. One polls the connection (rumqttc reconnects on the next poll; the wait between
//! tries backs off from 1 s to 30 s) and hands connects and incoming commands to the other.
//! That one publishes: on each connect, `online`, discovery and the whole state (a broker
//! that restarted without persistence has lost every retained message); then state changes
//! from the bus, health on its period, and JPEGs when asked. Every publish is `try_publish`
//! into a bounded queue: a dead broker costs dropped messages, never a wait in the daemon.
//!
//! Commands act as the principal "mqtt" (grants: control, snapshot) through the one
//! authorisation function and the one request path (`actions::request`), so they are
//! ordered with the page's, the API's and the button's. A device not set up yet refuses them.

pub mod topics;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, Packet, QoS, Transport};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Auth, Grant, Principal};
use crate::config::{Mqtt, mqtt::topic_safe};
use crate::events::{Bus, Event};
use crate::media::Media;
use crate::status::Board;
use topics::{Command, DiscoveredCamera, Topics};

/// Publishes waiting to be sent; beyond this they are dropped (and resent whole on reconnect).
const QUEUE: usize = 512;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);
/// Largest command accepted from the broker (commands are a word).
const MAX_INCOMING: usize = 4096;
/// Largest publish: a JPEG snapshot.
const MAX_OUTGOING: usize = 4 * 1024 * 1024;

/// Why MQTT cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("mqtt.url: {0}")]
    Url(String),
    #[error("mqtt.ca: cannot read {path}: {message}")]
    Ca { path: String, message: String },
}

/// What the publishing task needs.
struct Bridge {
    client: AsyncClient,
    topics: Topics,
    device_name: String,
    config: crate::config::Live,
    board: Board,
    media: Arc<Media>,
    auth: Arc<Auth>,
    bus: Bus,
}

/// What the connection task reports.
enum Incoming {
    Connected,
    Message { topic: String, payload: Vec<u8> },
}

/// The MQTT connection in force, restarted when the settings change it.
pub struct Service {
    current: std::sync::Mutex<(CancellationToken, TaskTracker)>,
    config: crate::config::Live,
    board: Board,
    media: Arc<Media>,
    auth: Arc<Auth>,
    bus: Bus,
    stop: CancellationToken,
}

impl Service {
    /// Connects as `[mqtt]` of `config` says (nothing without one); everything stops with `stop`.
    pub fn start(
        config: crate::config::Live,
        board: Board,
        media: Arc<Media>,
        auth: Arc<Auth>,
        bus: &Bus,
        stop: &CancellationToken,
    ) -> Result<Arc<Service>, MqttError> {
        let service = Service {
            current: std::sync::Mutex::new((CancellationToken::new(), TaskTracker::new())),
            config,
            board,
            media,
            auth,
            bus: bus.clone(),
            stop: stop.clone(),
        };
        let started = service.spawn()?;
        *service.current.lock().expect("mqtt lock never poisoned") = started;
        Ok(Arc::new(service))
    }

    fn spawn(&self) -> Result<(CancellationToken, TaskTracker), MqttError> {
        let (stop, tasks) = (self.stop.child_token(), TaskTracker::new());
        start(self.config.clone(), self.board.clone(), self.media.clone(), self.auth.clone(), &self.bus, &tasks, &stop)?;
        tasks.close();
        Ok((stop, tasks))
    }

    /// Says goodbye on the connection in force and connects as the config now says.
    pub async fn restart(&self) {
        let (stop, tasks) = self.current.lock().expect("mqtt lock never poisoned").clone();
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
        match self.spawn() {
            Ok(started) => *self.current.lock().expect("mqtt lock never poisoned") = started,
            Err(e) => tracing::error!("MQTT not restarted: {e}"),
        }
    }

    /// Waits for the connection's tasks after `stop`.
    pub async fn stopped(&self) {
        let tasks = self.current.lock().expect("mqtt lock never poisoned").1.clone();
        tasks.wait().await;
    }
}

/// Connects to the broker of `[mqtt]` and keeps publishing until `stop`; does nothing when
/// there is no `[mqtt]`.
fn start(
    config: crate::config::Live,
    board: Board,
    media: Arc<Media>,
    auth: Arc<Auth>,
    bus: &Bus,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Result<(), MqttError> {
    let Some(settings) = config.get().mqtt.clone() else { return Ok(()) };
    let host = crate::network::names::current_hostname().unwrap_or_else(|| "lookout".into());
    let node = topic_safe(&host);
    let topics = Topics {
        prefix: settings.prefix.clone().unwrap_or_else(|| format!("lookout/{node}")),
        discovery_prefix: settings.discovery_prefix.clone(),
        node: node.clone(),
    };
    let options = options(&settings, &node, &topics)?;
    let (client, eventloop) = AsyncClient::new(options, QUEUE);
    let (incoming_tx, incoming) = mpsc::channel(64);
    tracing::info!(broker = %crate::config::redacted_url(&settings.url), prefix = %topics.prefix, "MQTT configured");
    tasks.spawn(connection(eventloop, incoming_tx, stop.clone()));
    let bridge = Bridge { client, topics, device_name: format!("Lookout {host}"), config, board, media, auth, bus: bus.clone() };
    tasks.spawn(bridge.run(bus.subscribe(), incoming, settings.health_every, stop.clone()));
    Ok(())
}

fn options(settings: &Mqtt, node: &str, topics: &Topics) -> Result<MqttOptions, MqttError> {
    let (tls, host, port) = crate::config::mqtt::broker(&settings.url).map_err(MqttError::Url)?;
    let mut options = MqttOptions::new(format!("lookout-{node}"), host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_INCOMING, MAX_OUTGOING);
    options.set_last_will(LastWill::new(topics.availability(), "offline", QoS::AtLeastOnce, true));
    if let Some(user) = &settings.username {
        options.set_credentials(user, settings.password.clone().unwrap_or_default());
    }
    if tls {
        options.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls_config(settings)?))));
    }
    Ok(options)
}

/// TLS to the broker: the system's roots, or the CA file the owner named.
fn tls_config(settings: &Mqtt) -> Result<rustls::ClientConfig, MqttError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca {
        Some(path) => {
            let ca_error = |message: String| MqttError::Ca { path: path.display().to_string(), message };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))? {
                roots.add(cert.map_err(|e| ca_error(e.to_string()))?).map_err(|e| ca_error(e.to_string()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Polls the connection, reconnecting with backoff, until `stop`.
async fn connection(mut eventloop: rumqttc::EventLoop, incoming: mpsc::Sender<Incoming>, stop: CancellationToken) {
    let mut retry = FIRST_RETRY;
    let mut failing = false;
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => {
                // Lets the goodbye (`offline`, DISCONNECT) go out.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while !matches!(eventloop.poll().await, Err(_) | Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect))) {}
                }).await;
                return;
            }
            p = eventloop.poll() => p,
        };
        match polled {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                if failing {
                    tracing::info!("MQTT broker connected again");
                } else {
                    tracing::info!("MQTT broker connected");
                }
                failing = false;
                retry = FIRST_RETRY;
                let _ = incoming.try_send(Incoming::Connected);
            }
            Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                if incoming.try_send(Incoming::Message { topic: p.topic, payload: p.payload.to_vec() }).is_err() {
                    tracing::warn!("MQTT command dropped: commands come faster than they are handled");
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!("MQTT broker unreachable: {}; retrying with backoff", crate::error_chain(&e));
                    failing = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}

impl Bridge {
    async fn run(
        self,
        mut events: tokio::sync::broadcast::Receiver<Event>,
        mut incoming: mpsc::Receiver<Incoming>,
        health_every: Duration,
        stop: CancellationToken,
    ) {
        let mut health = tokio::time::interval(health_every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.publish(self.topics.availability(), "offline", true);
                    let _ = self.client.try_disconnect();
                    return;
                }
                message = incoming.recv() => match message {
                    Some(Incoming::Connected) => self.on_connect(),
                    Some(Incoming::Message { topic, payload }) => self.on_command(&topic, &payload),
                    None => return,
                },
                event = events.recv() => match event {
                    Ok(event) => self.on_event(&event),
                    // Missed state is superseded by the next stats or resent on reconnect.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = health.tick() => self.publish_health(),
            }
        }
    }

    fn publish(&self, topic: String, payload: impl Into<Vec<u8>>, retain: bool) {
        if self.client.try_publish(topic, QoS::AtLeastOnce, retain, payload).is_err() {
            tracing::debug!("MQTT publish dropped: the broker is not taking messages");
        }
    }

    /// Everything a broker that may have lost it all needs: availability, discovery, state,
    /// a picture of each camera; and the command subscriptions.
    fn on_connect(&self) {
        for filter in self.topics.subscriptions() {
            let _ = self.client.try_subscribe(filter, QoS::AtLeastOnce);
        }
        self.publish(self.topics.availability(), "online", true);
        let config = self.config.get();
        if config.mqtt.as_ref().is_some_and(|m| m.discovery) {
            let cameras: Vec<DiscoveredCamera> =
                config.cameras.iter().map(|c| DiscoveredCamera { name: &c.name, records: c.recording.enabled }).collect();
            for (topic, payload) in self.topics.discovery(&self.device_name, env!("CARGO_PKG_VERSION"), &cameras) {
                self.publish(topic, payload.to_string(), true);
            }
        }
        for camera in self.board.cameras() {
            for (topic, payload) in self.topics.camera_state(&camera) {
                self.publish(topic, payload, true);
            }
            if camera.online {
                self.send_snapshot(camera.name.clone());
            }
        }
        self.publish_health();
    }

    fn on_event(&self, event: &Event) {
        for (topic, payload) in self.topics.state_changes(event) {
            self.publish(topic, payload, true);
        }
        if !matches!(event, Event::CameraStats { .. }) && !event.owner_only() {
            let mut message = serde_json::to_value(event).unwrap_or_default();
            message["at"] = serde_json::json!(chrono::Utc::now());
            self.publish(self.topics.events(), message.to_string(), false);
        }
    }

    fn on_command(&self, topic: &str, payload: &[u8]) {
        let Some(command) = self.topics.command(topic, payload) else {
            tracing::debug!(topic, "MQTT message on a command topic that asks nothing");
            return;
        };
        let who = principal();
        match command {
            Command::Action { name, camera } => {
                if let Err(e) = crate::actions::request(&self.config.get(), &self.auth, &self.bus, &who, name, camera, "mqtt") {
                    tracing::warn!(topic, "MQTT command refused: {e}");
                }
            }
            Command::Snapshot { camera } => match self.auth.authorize(&who, crate::auth::Action::Snapshot, Some(&camera)) {
                Ok(()) if self.config.get().camera(&camera).is_some() => self.send_snapshot(camera),
                Ok(()) => tracing::warn!(topic, "MQTT snapshot of an unknown camera `{camera}`"),
                Err(e) => tracing::warn!(topic, "MQTT snapshot refused: {e}"),
            },
        }
    }

    /// Captures a JPEG of `camera` off this task and publishes it.
    fn send_snapshot(&self, camera: String) {
        let (media, client, topic) = (self.media.clone(), self.client.clone(), self.topics.snapshot(&camera));
        tokio::spawn(async move {
            let Some(cam) = media.camera(&camera) else { return };
            let Ok(_permit) = cam.snapshots.acquire().await else { return };
            match crate::media::snapshot::capture(&cam.fanout, media.clock(), None).await {
                Ok(jpeg) => {
                    let _ = client.try_publish(topic, QoS::AtLeastOnce, true, jpeg);
                }
                Err(e) => tracing::warn!(camera = %camera, "no snapshot for MQTT: {e}"),
            }
        });
    }

    fn publish_health(&self) {
        let data = self.config.get().storage.path.clone();
        let reading = crate::device::health::read(&crate::device::health::Roots::default(), crate::storage::disk::usage(&data).ok());
        for (topic, payload) in topics::health_messages(&self.topics, &reading) {
            self.publish(topic, payload, true);
        }
    }
}

/// Who MQTT commands act as: the broker's clients are the owner's home automation, allowed
/// to press buttons and take pictures, nothing more.
fn principal() -> Principal {
    Principal::Token { id: "mqtt-broker".into(), cameras: None, grants: vec![Grant::Control, Grant::Snapshot] }
}
