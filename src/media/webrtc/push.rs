//! The device as a WHIP publisher: a send-only session where the device makes the offer and
//! an SFU answers. The HTTP exchange is the `push` module's; this side builds the session
//! from the camera's shared stream (no second encode), applies the answer, and reports
//! statistics. A keyframe request from the SFU (PLI/FIR) reaches the encoder the way a WHEP
//! viewer's does: rtph264pay turns it into an upstream force-key-unit event that the
//! fan-out's limiter passes on.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::TurnServer;

use super::session::{self, SendStats};
use super::{IceSettings, NEGOTIATE_TIMEOUT, ViewerError, ViewerSet};

/// A push session whose offer waits for the server's answer. Dropping it stops its pipeline.
pub struct Offering {
    set: Arc<ViewerSet>,
    id: String,
    viewer: session::Viewer,
    sdp: String,
}

/// A push session running: sending once connected, until it ends or is stopped.
pub struct Publishing {
    set: Arc<ViewerSet>,
    id: String,
    webrtc: gst::Element,
    ended: oneshot::Receiver<String>,
}

impl ViewerSet {
    /// Builds a send-only session and its offer, with `servers` (from the WHIP server's
    /// `Link` headers) besides the configured STUN and TURN servers. Not counted among the
    /// viewers: a push is the owner's choice, and an SFU's viewers are not the device's.
    pub async fn offer_push(self: &Arc<Self>, servers: &[TurnServer]) -> Result<Offering, ViewerError> {
        let mut ice = self.tuning().ice;
        ice.add_servers(servers);
        let id = format!("push-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let step = session::Step::default();
        let made = tokio::time::timeout(NEGOTIATE_TIMEOUT, session::offer(&id, &ice, &self.clock, &step)).await;
        let (viewer, sdp) = made.unwrap_or_else(|_| {
            Err(ViewerError::NotReady(format!("no offer within {}s: {}", NEGOTIATE_TIMEOUT.as_secs(), step.describe())))
        })?;
        Ok(Offering { set: self.clone(), id, viewer, sdp })
    }
}

impl Offering {
    /// The offer to POST, with the device's candidates.
    pub fn sdp(&self) -> &str {
        &self.sdp
    }

    /// Applies the server's answer and starts the session: it attaches to the camera once
    /// ICE and DTLS are up, and ends on failure, on silence from the server for the
    /// `[webrtc] session_timeout`, or when stopped (the camera restarted, shutdown).
    pub async fn start(self, answer: &str) -> Result<Publishing, ViewerError> {
        let Offering { set, id, viewer, .. } = self;
        session::accept(&viewer, answer).await?;
        let webrtc = viewer.webrtc.clone();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ended_tx, ended) = oneshot::channel();
        {
            let mut pushes = set.pushes.lock().expect("pushes lock never poisoned");
            if set.tasks.is_closed() {
                return Err(ViewerError::NotReady(format!("camera {} is stopping", set.camera)));
            }
            pushes.insert(id.clone(), stop_tx);
        }
        let tuning = set.tuning();
        let (task_set, task_id) = (set.clone(), id.clone());
        set.tasks.spawn(async move {
            let (reason, _) = session::run(viewer, task_set.fanout.clone(), tuning.timeout, tuning.fast_start, stop_rx).await;
            task_set.pushes.lock().expect("pushes lock never poisoned").remove(&task_id);
            let _ = ended_tx.send(reason);
        });
        Ok(Publishing { set, id, webrtc, ended })
    }
}

impl Publishing {
    /// Bytes sent and round-trip time so far.
    pub async fn stats(&self) -> Option<SendStats> {
        session::send_stats(&self.webrtc).await
    }

    /// Waits until the session ends; returns why.
    pub async fn ended(&mut self) -> String {
        (&mut self.ended).await.unwrap_or_else(|_| "push session task ended".into())
    }

    /// Ends the session and waits until its pipeline stopped.
    pub async fn stop(self, reason: &str) {
        if let Some(stop) = self.set.pushes.lock().expect("pushes lock never poisoned").remove(&self.id) {
            let _ = stop.send(reason.to_owned());
        }
        let _ = self.ended.await;
    }
}

impl IceSettings {
    /// Adds STUN and TURN servers a WHIP server named: the first STUN server is used when
    /// none is configured; every TURN server is added.
    pub fn add_servers(&mut self, servers: &[TurnServer]) {
        for server in servers {
            if server.url.starts_with("stun:") {
                if self.stun.is_none() {
                    self.stun = Some(format!("stun://{}", server.url.trim_start_matches("stun:")));
                }
            } else if server.url.starts_with("turn:") || server.url.starts_with("turns:") {
                self.turn.push(super::turn_url(server));
            }
        }
    }
}
