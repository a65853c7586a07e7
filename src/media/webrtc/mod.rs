//! WebRTC viewers of one camera: WHEP sessions, each a `webrtcbin` fed from the fan-out.
//!
//! [`ViewerSet`] is the actor-like owner of a camera's sessions: `web::whep` calls
//! [`ViewerSet::join`] and [`ViewerSet::leave`]; each session runs in its own task (see
//! `session::run`) and removes itself when it ends, publishing `ViewerLeft` with the reason.

pub mod channel;
pub mod linger;
pub mod probe;
pub mod push;
pub mod sdp;
mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use tokio::sync::oneshot;

use crate::config::{PortRange, TurnServer, WebRtc};
use crate::events::{Bus, Event};

use super::MediaClock;
use super::fanout::Fanout;

pub use sdp::{OfferError, announce_addresses, inspect_offer};
pub use session::SendStats;

/// ICE settings in the form webrtcbin takes them.
#[derive(Debug, Clone, Default)]
pub struct IceSettings {
    /// `stun://host:port`; webrtcbin takes one.
    pub stun: Option<String>,
    /// `turn://user:pass@host:port`.
    pub turn: Vec<String>,
    pub udp_ports: Option<PortRange>,
    pub announce: Vec<IpAddr>,
    pub tcp: bool,
}

impl IceSettings {
    /// Converts the config's URLs (`stun:host:port`) to webrtcbin's (`stun://host:port`).
    pub fn from_config(w: &WebRtc) -> IceSettings {
        let stun = w.stun.first().map(|u| format!("stun://{}", u.trim_start_matches("stun:")));
        let turn = w.turn.iter().map(turn_url).collect();
        IceSettings { stun, turn, udp_ports: w.udp_ports.clone(), announce: w.announce.clone(), tcp: w.ice_tcp }
    }
}

/// A TURN server as webrtcbin takes it: `turn://user:pass@host:port?transport=...`.
fn turn_url(t: &TurnServer) -> String {
    let (scheme, rest) = t.url.split_once(':').unwrap_or(("turn", &t.url));
    let (hostport, query) = rest.split_once('?').map_or((rest, None), |(h, q)| (h, Some(q)));
    let mut url = format!("{scheme}://{}:{}@{hostport}", urlencode(&t.username), urlencode(&t.credential));
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether the process's WebRTC warm-up has finished, for joins to wait on knowingly.
#[derive(Clone, Debug)]
pub struct WarmUp(tokio::sync::watch::Receiver<bool>);

/// Longest a viewer waits for the warm-up before being told to retry. The DTLS certificate
/// is an RSA-2048 key (GStreamer's choice, made once per process by the first `dtlsdec`):
/// 0.2-0.3 s on this PC, about a second on a Pi 4 (not measured here), 5 s measured under
/// emulation on a loaded first boot; prime search time is random, with a long tail.
const WARM_UP_WAIT: Duration = Duration::from_secs(30);

/// Loads the WebRTC plugins and makes the process's DTLS certificate ahead of the first
/// viewer, on a blocking thread. Failure is harmless: the first viewer then gets the real error.
pub fn warm_up() -> WarmUp {
    let (done, rx) = tokio::sync::watch::channel(false);
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        for factory in ["webrtcbin", "dtlsdec", "rtph264pay"] {
            if let Ok(e) = gst::ElementFactory::make(factory).build() {
                let _ = e.set_state(gst::State::Ready);
                let _ = e.set_state(gst::State::Null);
            }
        }
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "WebRTC ready (plugins loaded, DTLS certificate made)");
        let _ = done.send(true);
    });
    WarmUp(rx)
}

impl WarmUp {
    /// Waits until the warm-up is over (or gave up: a panic there is the first viewer's to
    /// meet); false if it is still running after `limit`.
    async fn wait(&self, limit: Duration) -> bool {
        let mut rx = self.0.clone();
        tokio::time::timeout(limit, rx.wait_for(|done| *done)).await.is_ok()
    }
}

/// Why a viewer could not join or leave; `web` maps each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error(transparent)]
    BadOffer(#[from] OfferError),
    #[error("camera {camera} already has {limit} viewers (webrtc.max_viewers)")]
    TooMany { camera: String, limit: usize },
    #[error("no such viewer session")]
    UnknownSession,
    #[error("WebRTC negotiation failed: {0}")]
    Negotiation(String),
    /// The device could not answer in time; not the offer's fault, worth retrying.
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    Internal(String),
}

/// Longest a viewer's POST may wait for its answer once the warm-up is over; normally ~25 ms,
/// up to 3 s of that for STUN/TURN gathering. A webrtcbin that never answers must not hang
/// the request; the error names the step it was waiting for.
const NEGOTIATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A session accepted by [`ViewerSet::join`].
#[derive(Debug)]
pub struct Joined {
    pub session: String,
    pub answer: String,
}

struct Slot {
    stop: Option<oneshot::Sender<String>>,
}

/// All viewer sessions of one camera.
pub struct ViewerSet {
    camera: String,
    fanout: Arc<Fanout>,
    clock: MediaClock,
    /// Settings for sessions that join from now on (the settings API may change them).
    tuning: std::sync::RwLock<Tuning>,
    bus: Bus,
    warm: WarmUp,
    sessions: Mutex<HashMap<String, Slot>>,
    /// Push sessions (WHIP, see [`push`]) by id, with what stops each.
    pushes: Mutex<HashMap<String, oneshot::Sender<String>>>,
    tasks: tokio_util::task::TaskTracker,
}

/// What `[webrtc]` sets for new sessions.
#[derive(Debug, Clone)]
struct Tuning {
    ice: IceSettings,
    limit: usize,
    timeout: Duration,
    fast_start: bool,
}

impl Tuning {
    fn from_config(w: &WebRtc) -> Tuning {
        Tuning { ice: IceSettings::from_config(w), limit: w.max_viewers, timeout: w.session_timeout, fast_start: w.fast_start }
    }
}

/// A session slot held while its offer is negotiated; released on drop unless disarmed.
struct Reserved<'a> {
    set: &'a ViewerSet,
    id: String,
    armed: bool,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.set.sessions.lock().expect("sessions lock never poisoned").remove(&self.id);
        }
    }
}

impl ViewerSet {
    /// An empty set for a camera.
    pub fn new(camera: &str, fanout: Arc<Fanout>, clock: MediaClock, w: &WebRtc, bus: Bus, warm: WarmUp) -> ViewerSet {
        ViewerSet {
            camera: camera.to_owned(),
            fanout,
            clock,
            tuning: std::sync::RwLock::new(Tuning::from_config(w)),
            bus,
            warm,
            sessions: Mutex::new(HashMap::new()),
            pushes: Mutex::new(HashMap::new()),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// New `[webrtc]` settings: sessions that join from now on use them; those running keep
    /// theirs.
    pub fn reconfigure(&self, w: &WebRtc) {
        *self.tuning.write().expect("tuning lock never poisoned") = Tuning::from_config(w);
    }

    fn tuning(&self) -> Tuning {
        self.tuning.read().expect("tuning lock never poisoned").clone()
    }

    /// Answers a viewer's offer and starts its session; a data channel the viewer opens goes
    /// to `on_channel`.
    pub async fn join(self: &Arc<Self>, offer: &str, on_channel: Option<channel::ChannelHandler>) -> Result<Joined, ViewerError> {
        let (parsed, h264) = inspect_offer(offer)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tuning = self.tuning();
        {
            let mut sessions = self.sessions.lock().expect("sessions lock never poisoned");
            if sessions.len() >= tuning.limit {
                return Err(ViewerError::TooMany { camera: self.camera.clone(), limit: tuning.limit });
            }
            sessions.insert(id.clone(), Slot { stop: None });
        }
        // Frees the slot if negotiation fails or the request is dropped mid-way (the client
        // hung up); disarmed once the session runs and owns its slot.
        let mut reserved = Reserved { set: self, id: id.clone(), armed: true };
        let short = &id[..8];
        if !self.warm.wait(WARM_UP_WAIT).await {
            let e = ViewerError::NotReady(format!(
                "WebRTC is still starting (making the DTLS certificate took over {}s); retry shortly",
                WARM_UP_WAIT.as_secs()
            ));
            tracing::warn!(camera = %self.camera, "{e}");
            return Err(e);
        }
        if tuning.fast_start {
            // The keyframe is made while the connection is set up, so it is waiting when
            // the viewer connects (an encoded camera; nothing for one passed through).
            self.fanout.expect_viewer();
        }
        let step = session::Step::default();
        let negotiated =
            tokio::time::timeout(NEGOTIATE_TIMEOUT, session::negotiate(short, parsed, &h264, &tuning.ice, &self.clock, &step, on_channel))
                .await
                .unwrap_or_else(|_| {
                    Err(ViewerError::NotReady(format!("no answer within {}s: {}", NEGOTIATE_TIMEOUT.as_secs(), step.describe())))
                });
        let (viewer, answer) = match negotiated {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(camera = %self.camera, "viewer negotiation failed: {e}");
                return Err(e);
            }
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let viewers = {
            let mut sessions = self.sessions.lock().expect("sessions lock never poisoned");
            match sessions.get_mut(&id) {
                Some(slot) => slot.stop = Some(stop_tx),
                // Shut down while negotiating.
                None => return Err(ViewerError::Internal("server is shutting down".into())),
            }
            sessions.len()
        };
        reserved.armed = false;
        tracing::info!(camera = %self.camera, session = short, viewers, "viewer joined");
        self.bus.publish(Event::ViewerJoined { camera: self.camera.clone(), session: id.clone(), protocol: "whep".into(), viewers });
        let set = self.clone();
        let session = id.clone();
        self.tasks.spawn(async move {
            let (reason, dropped) = session::run(viewer, set.fanout.clone(), tuning.timeout, tuning.fast_start, stop_rx).await;
            let viewers = {
                let mut sessions = set.sessions.lock().expect("sessions lock never poisoned");
                sessions.remove(&session);
                sessions.len()
            };
            tracing::info!(camera = %set.camera, session = &session[..8], viewers, dropped, "viewer left: {reason}");
            let protocol = "whep".into();
            set.bus.publish(Event::ViewerLeft { camera: set.camera.clone(), session, protocol, reason, viewers, dropped_frames: dropped });
        });
        Ok(Joined { session: id, answer })
    }

    /// Admits a viewer served outside WebRTC (`mse`, `rtsp`): counted and limited like a
    /// WHEP session, ended by shutdown or a camera restart through the ticket's `stop`, gone
    /// when it is dropped.
    pub fn admit(self: &Arc<Self>, kind: &'static str) -> Result<ViewerTicket, ViewerError> {
        let id = format!("{kind}-{}", uuid::Uuid::new_v4().simple());
        let (stop_tx, stop) = oneshot::channel();
        let viewers = {
            let limit = self.tuning().limit;
            let mut sessions = self.sessions.lock().expect("sessions lock never poisoned");
            if sessions.len() >= limit {
                return Err(ViewerError::TooMany { camera: self.camera.clone(), limit });
            }
            sessions.insert(id.clone(), Slot { stop: Some(stop_tx) });
            sessions.len()
        };
        self.bus.publish(Event::ViewerJoined { camera: self.camera.clone(), session: id.clone(), protocol: kind.into(), viewers });
        Ok(ViewerTicket { set: self.clone(), id, protocol: kind, stop })
    }

    /// Ends a session at the viewer's request (WHEP DELETE).
    pub fn leave(&self, session: &str) -> Result<(), ViewerError> {
        let mut sessions = self.sessions.lock().expect("sessions lock never poisoned");
        let slot = sessions.get_mut(session).ok_or(ViewerError::UnknownSession)?;
        match slot.stop.take() {
            Some(stop) => {
                let _ = stop.send("ended by the viewer (DELETE)".into());
                Ok(())
            }
            None => Err(ViewerError::UnknownSession),
        }
    }

    /// Ends every session and waits for their pipelines to stop.
    pub async fn close(&self) {
        let stops: Vec<_> = {
            let mut sessions = self.sessions.lock().expect("sessions lock never poisoned");
            let mut pushes = self.pushes.lock().expect("pushes lock never poisoned");
            // Closed under the pushes lock: a push that starts from now on is refused.
            self.tasks.close();
            let mut stops: Vec<_> = sessions.values_mut().filter_map(|s| s.stop.take()).collect();
            stops.extend(pushes.drain().map(|(_, stop)| stop));
            stops
        };
        for stop in stops {
            let _ = stop.send("server shutting down".into());
        }
        self.tasks.wait().await;
    }
}

/// A viewer admitted by [`ViewerSet::admit`].
pub struct ViewerTicket {
    set: Arc<ViewerSet>,
    id: String,
    protocol: &'static str,
    /// Resolves when the server wants this viewer gone (shutdown).
    pub stop: oneshot::Receiver<String>,
}

impl Drop for ViewerTicket {
    fn drop(&mut self) {
        let viewers = {
            let mut sessions = self.set.sessions.lock().expect("sessions lock never poisoned");
            sessions.remove(&self.id);
            sessions.len()
        };
        self.set.bus.publish(Event::ViewerLeft {
            camera: self.set.camera.clone(),
            session: self.id.clone(),
            protocol: self.protocol.into(),
            reason: "stream closed".into(),
            viewers,
            dropped_frames: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TurnServer;

    #[tokio::test]
    async fn a_join_waits_for_the_warm_up_and_gives_up_after_its_limit() {
        let (done, rx) = tokio::sync::watch::channel(false);
        let warm = WarmUp(rx);
        assert!(!warm.wait(Duration::from_millis(50)).await, "still warming up");
        let waiting = tokio::spawn({
            let warm = warm.clone();
            async move { warm.wait(Duration::from_secs(30)).await }
        });
        done.send(true).unwrap();
        assert!(waiting.await.unwrap(), "released when the warm-up ends");
        drop(done);
        assert!(warm.wait(Duration::from_millis(50)).await, "and stays released");
    }

    #[test]
    fn ice_urls_are_converted_for_webrtcbin() {
        let w = WebRtc {
            stun: vec!["stun:stun.example.org:3478".into()],
            turn: vec![TurnServer {
                url: "turn:turn.example.org:3478?transport=tcp".into(),
                username: "me".into(),
                credential: "p@ss word".into(),
            }],
            ..WebRtc::default()
        };
        let ice = IceSettings::from_config(&w);
        assert_eq!(ice.stun.as_deref(), Some("stun://stun.example.org:3478"));
        assert_eq!(ice.turn, ["turn://me:p%40ss%20word@turn.example.org:3478?transport=tcp"]);
    }
}
