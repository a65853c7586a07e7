//! WHIP push: each camera's shared stream published to the WHIP servers its `[[camera.push]]`
//! names (live777, LiveKit ingress, MediaMTX, a cloud ingest), so an SFU fans it out.
//!
//! Built on webrtcbin plus an HTTP client rather than gst-plugins-rs's `whipclientsink`: the
//! plugin's releases that build against Debian 12's GStreamer 1.22 POST the offer only after
//! ICE gathering, so the TURN servers of the answer's `Link` headers come too late for that
//! session; they do not reconnect by themselves, and report a 401 as an error string. Here the
//! session is `media::webrtc::push` (the camera's one encode, payloaded per session, keyframe
//! requests through the fan-out's limiter) and the exchange is [`whip`]; this module keeps one
//! task per target: connect, watch, DELETE the resource when the push ends, and try again
//! with backoff and jitter. A refusal (401, 403, 404) waits far longer than a failure.

pub mod link;
pub mod whip;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Live, Push, TurnServer};
use crate::events::{Bus, Event};
use crate::media::Media;
use crate::retry::{Backoff, jittered};

/// Longest wait between attempts after failures (unreachable server, lost session).
const MAX_RETRY: Duration = Duration::from_secs(30);
/// First and longest wait after a refusal: a wrong token or URL needs the owner, not haste.
const REFUSED_FIRST: Duration = Duration::from_secs(60);
const REFUSED_MAX: Duration = Duration::from_secs(600);
/// How often bitrate and round-trip time are read while live.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// Longest a WHIP request may take (connect, TLS, the server's own negotiation).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest shutdown waits for the pushes' DELETEs.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Where a push is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushState {
    /// Offering, or connected and waiting for the first packets to leave.
    Connecting,
    /// Sending.
    Live,
    /// Failed or lost; trying again after a wait (`error` says why).
    Retrying,
    /// The server refused the stream (wrong token or URL); trying again rarely.
    Refused,
}

impl PushState {
    fn name(self) -> &'static str {
        match self {
            PushState::Connecting => "connecting",
            PushState::Live => "live",
            PushState::Retrying => "retrying",
            PushState::Refused => "refused",
        }
    }
}

/// What `/api/state` and `/metrics` say about one push.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PushStatus {
    pub camera: String,
    /// The WHIP URL without query or credentials.
    pub target: String,
    pub state: PushState,
    /// The last failure or refusal, kept while retrying.
    pub error: Option<String>,
    /// When the state last changed.
    pub since: DateTime<Utc>,
    pub bitrate_kbps: f64,
    pub rtt_ms: Option<f64>,
    /// Sessions started (offers the server answered).
    pub sessions: u64,
}

/// The pushes of every camera, as the rest of the daemon sees them.
#[derive(Default)]
pub struct Service {
    status: Mutex<BTreeMap<(String, String), PushStatus>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// One push's identity: its camera and its settings as written (a change starts it over).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    camera: String,
    url: String,
    token: Option<String>,
}

impl Service {
    /// Pushes what the live config names until [`Service::stop`], following settings changes.
    pub fn start(live: Live, media: Arc<Media>, bus: &Bus) -> Arc<Service> {
        let service = Arc::new(Service::default());
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // WHIP allows redirects (load balancing); reqwest drops the token on a redirect
            // to another host.
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
            .build();
        match client {
            Ok(client) => {
                service.tasks.spawn(service.clone().run(live, media, client, bus.clone()));
            }
            Err(e) => tracing::error!("WHIP push disabled: no HTTP client: {e}"),
        }
        service
    }

    /// Every push, by camera and target.
    pub fn status(&self) -> Vec<PushStatus> {
        self.lock().values().cloned().collect()
    }

    /// Ends every push (each DELETEs its session at the server), within a bound.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_WAIT, self.tasks.wait()).await.is_err() {
            tracing::warn!("WHIP pushes did not end within {}s; stopping without them", STOP_WAIT.as_secs());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), PushStatus>> {
        self.status.lock().expect("push status lock never poisoned")
    }

    async fn run(self: Arc<Self>, live: Live, media: Arc<Media>, client: reqwest::Client, bus: Bus) {
        let mut events = bus.subscribe();
        let mut running: HashMap<Key, CancellationToken> = HashMap::new();
        loop {
            let config = live.get();
            let wanted: Vec<(Key, Push)> = config
                .cameras
                .iter()
                .flat_map(|c| {
                    c.push.iter().map(|p| (Key { camera: c.name.clone(), url: p.url.clone(), token: p.token.clone() }, p.clone()))
                })
                .collect();
            running.retain(|key, stop| {
                let keep = wanted.iter().any(|(k, _)| k == key);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            self.lock().retain(|(camera, target), _| wanted.iter().any(|(k, p)| &k.camera == camera && &p.target() == target));
            for (key, push) in wanted {
                if running.contains_key(&key) {
                    continue;
                }
                let stop = self.stop.child_token();
                running.insert(key.clone(), stop.clone());
                tracing::info!(camera = %key.camera, target = %push.target(), "WHIP push configured");
                let target = Target { camera: key.camera, push, media: media.clone(), client: client.clone(), bus: bus.clone() };
                self.tasks.spawn(target.run(self.clone(), stop));
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                event = events.recv() => match event {
                    Ok(e) if e.changes("camera") => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    _ => {}
                },
            }
        }
    }

    /// Records a push's new state and says so on the bus.
    fn set_state(&self, bus: &Bus, camera: &str, target: &str, state: PushState, error: Option<String>) {
        let mut all = self.lock();
        let entry = all.entry((camera.to_owned(), target.to_owned())).or_insert_with(|| PushStatus {
            camera: camera.to_owned(),
            target: target.to_owned(),
            state,
            error: None,
            since: Utc::now(),
            bitrate_kbps: 0.0,
            rtt_ms: None,
            sessions: 0,
        });
        let changed = entry.state != state || entry.error != error;
        if entry.state != state {
            entry.since = Utc::now();
        }
        entry.state = state;
        if state != PushState::Live {
            entry.bitrate_kbps = 0.0;
            entry.rtt_ms = None;
        }
        if error.is_some() || state == PushState::Live {
            entry.error = error.clone();
        }
        drop(all);
        if changed {
            bus.publish(Event::PushStateChanged {
                camera: camera.to_owned(),
                target: target.to_owned(),
                state: state.name().to_owned(),
                error,
            });
        }
    }

    fn update(&self, camera: &str, target: &str, change: impl FnOnce(&mut PushStatus)) {
        if let Some(entry) = self.lock().get_mut(&(camera.to_owned(), target.to_owned())) {
            change(entry);
        }
    }
}

/// How one attempt ended.
enum Outcome {
    /// Shutdown or the push was removed.
    Stopped,
    /// Failed, or the session was lost.
    Failed(String),
    Refused(String),
}

/// One camera's push to one WHIP server.
struct Target {
    camera: String,
    push: Push,
    media: Arc<Media>,
    client: reqwest::Client,
    bus: Bus,
}

impl Target {
    async fn run(self, service: Arc<Service>, stop: CancellationToken) {
        let target = self.push.target();
        let mut backoff = Backoff::with_max(MAX_RETRY);
        let mut refused_wait = REFUSED_FIRST;
        // ICE servers the server named last time: its answer comes too late for the session
        // it answers, so they serve the next one.
        let mut servers: Vec<TurnServer> = Vec::new();
        loop {
            service.set_state(&self.bus, &self.camera, &target, PushState::Connecting, None);
            let (state, error, wait) = match self.attempt(&service, &mut servers, &mut backoff, &stop).await {
                Outcome::Stopped => return,
                Outcome::Failed(error) => (PushState::Retrying, error, jittered(backoff.on_failure(Instant::now()))),
                Outcome::Refused(error) => {
                    let wait = jittered(refused_wait);
                    refused_wait = (refused_wait * 2).min(REFUSED_MAX);
                    (PushState::Refused, error, wait)
                }
            };
            if state == PushState::Retrying {
                refused_wait = REFUSED_FIRST;
            }
            tracing::warn!(camera = %self.camera, %target, "WHIP push {}: {error}; trying again in {:.0?}", state.name(), wait);
            service.set_state(&self.bus, &self.camera, &target, state, Some(error));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Offers, publishes, and watches one session until it ends.
    async fn attempt(&self, service: &Service, servers: &mut Vec<TurnServer>, backoff: &mut Backoff, stop: &CancellationToken) -> Outcome {
        let target = self.push.target();
        let Some(camera) = self.media.camera(&self.camera) else { return Outcome::Failed("the camera is not running".into()) };
        let offering = match camera.viewers.offer_push(servers).await {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(format!("cannot make an offer: {e}")),
        };
        let token = self.push.token.as_deref();
        let published = tokio::select! {
            _ = stop.cancelled() => return Outcome::Stopped,
            p = whip::publish(&self.client, &self.push.url, token, offering.sdp()) => p,
        };
        let published = match published {
            Ok(p) => p,
            Err(whip::WhipError::Refused(e)) => return Outcome::Refused(e),
            Err(whip::WhipError::Failed(e)) => return Outcome::Failed(e),
        };
        if !published.servers.is_empty() {
            *servers = published.servers.clone();
        }
        service.update(&self.camera, &target, |s| s.sessions += 1);
        let resource = published.resource.clone();
        let mut publishing = match offering.start(&published.answer).await {
            Ok(p) => p,
            Err(e) => {
                self.unpublish(resource.as_ref()).await;
                return Outcome::Failed(format!("the server's answer cannot be used: {e}"));
            }
        };
        tracing::info!(camera = %self.camera, %target, "WHIP push answered; connecting");
        let mut tick = tokio::time::interval(STATS_EVERY);
        let (mut last_bytes, mut last_at, mut live) = (0u64, Instant::now(), false);
        let outcome = loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    publishing.stop("push stopped").await;
                    break Outcome::Stopped;
                }
                reason = publishing.ended() => break Outcome::Failed(format!("session ended: {reason}")),
                _ = tick.tick() => {
                    let Some(stats) = publishing.stats().await else { continue };
                    let now = Instant::now();
                    let kbps = (stats.bytes_sent.saturating_sub(last_bytes)) as f64 * 8.0 / 1000.0 / now.duration_since(last_at).as_secs_f64().max(0.001);
                    if !live && stats.bytes_sent > 0 {
                        live = true;
                        backoff.on_running(now);
                        tracing::info!(camera = %self.camera, %target, "WHIP push live");
                        service.set_state(&self.bus, &self.camera, &target, PushState::Live, None);
                    }
                    (last_bytes, last_at) = (stats.bytes_sent, now);
                    if live {
                        let rtt_ms = stats.rtt.map(|r| r.as_secs_f64() * 1000.0);
                        service.update(&self.camera, &target, |s| {
                            s.bitrate_kbps = kbps;
                            s.rtt_ms = rtt_ms;
                        });
                        self.bus.publish(Event::PushStats { camera: self.camera.clone(), target: target.clone(), bitrate_kbps: kbps, rtt_ms });
                    }
                }
            }
        };
        self.unpublish(resource.as_ref()).await;
        outcome
    }

    /// DELETEs the session's resource, if the server gave one; a failure is only logged.
    async fn unpublish(&self, resource: Option<&url::Url>) {
        let Some(resource) = resource else { return };
        if let Err(e) = whip::unpublish(&self.client, resource, self.push.token.as_deref()).await {
            tracing::debug!(camera = %self.camera, target = %self.push.target(), "WHIP session not deleted: {e}");
        }
    }
}
