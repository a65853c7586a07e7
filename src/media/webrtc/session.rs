//! One WHEP viewer: its own pipeline (appsrc → rtph264pay → webrtcbin), negotiation, and the
//! task that watches it until it ends, for exactly one reason.
//!
//! glib callbacks only send [`Signal`]s into a channel; the session task owns all decisions.
//! The viewer is attached to the camera's fan-out only once its connection (ICE + DTLS) is up,
//! so what starts its picture (the camera's current GOP with fast start, or the keyframe
//! requested on attach) is the first thing it receives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gst::glib;
use gst::prelude::*;
use gst_webrtc::WebRTCPeerConnectionState as Pc;
use tokio::sync::{mpsc, oneshot};

use crate::media::fanout::{ConsumerId, Fanout};
use crate::media::{MediaClock, StopOnDrop};

use super::channel::{ChannelHandler, ChannelLink};
use super::sdp::{self, H264Choice};
use super::{IceSettings, ViewerError};

/// Waiting longer for ICE candidates gains nothing on a LAN; a STUN server that answers
/// at all answers within this, and an unreachable one must not delay the viewer.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// The negotiation step under way, so a timeout can say what it was waiting for.
#[derive(Debug, Default)]
pub(super) struct Step(std::sync::Mutex<&'static str>);

impl Step {
    fn enter(&self, step: &'static str) {
        *self.0.lock().expect("step lock never poisoned") = step;
    }

    /// The step a timed-out negotiation was stuck in.
    pub(super) fn describe(&self) -> String {
        let step = *self.0.lock().expect("step lock never poisoned");
        format!("webrtcbin was {}", if step.is_empty() { "building the viewer pipeline" } else { step })
    }
}

/// What glib callbacks report to the session task.
#[derive(Debug)]
pub(super) enum Signal {
    Connection(Pc),
    GatheringDone,
    /// RTCP arrived from the viewer: it is still there.
    Rtcp,
    /// The viewer sent RTCP BYE: it is leaving.
    Bye,
}

/// A negotiated viewer, not yet watched. Dropping it stops its pipeline, on whichever path
/// (shutdown mid-join, an early return) it is dropped.
pub(super) struct Viewer {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    pub(super) webrtc: gst::Element,
    pay: gst::Element,
    signals: mpsc::UnboundedReceiver<Signal>,
    _stop: StopOnDrop,
}

fn make(factory: &str, name: String) -> Result<gst::Element, ViewerError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| ViewerError::Internal(format!("GStreamer element {factory} is not installed")))
}

/// A session's pipeline, before negotiation: appsrc → rtph264pay → capsfilter → webrtcbin
/// with one send-only transceiver, playing and reporting [`Signal`]s.
fn build(id: &str, h264: &H264Choice, ice: &IceSettings, clock: &MediaClock, step: &Step) -> Result<Viewer, ViewerError> {
    let pipeline = gst::Pipeline::with_name(&format!("viewer-{id}"));
    let guard = StopOnDrop::new(&pipeline);
    let appsrc = gst_app::AppSrc::builder().name(format!("viewer-{id}-src")).build();
    // Live, time-format, leaky: must be set before the source starts, not when attached.
    gst_utils::StreamProducer::configure_consumer(&appsrc);
    let pay = make("rtph264pay", format!("viewer-{id}-pay"))?;
    pay.set_property("config-interval", -1i32);
    pay.set_property("pt", h264.payload);
    pay.set_property_from_str("aggregate-mode", "zero-latency");
    let filter = make("capsfilter", format!("viewer-{id}-caps"))?;
    filter.set_property("caps", rtp_caps(h264));
    let webrtc = make("webrtcbin", format!("viewer-{id}"))?;
    webrtc.set_property_from_str("bundle-policy", "max-bundle");
    configure_ice(&webrtc, ice);

    pipeline.add_many([appsrc.upcast_ref(), &pay, &filter, &webrtc]).map_err(|e| ViewerError::Internal(e.to_string()))?;
    gst::Element::link_many([appsrc.upcast_ref(), &pay, &filter, &webrtc])
        .map_err(|e| ViewerError::Internal(format!("linking viewer pipeline: {e}")))?;
    if let Some(pad) = webrtc.static_pad("sink_0") {
        let transceiver = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property("direction", gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
    }

    let (tx, signals) = mpsc::unbounded_channel();
    watch_signals(&webrtc, tx);
    clock.apply(&pipeline);
    step.enter("starting the viewer pipeline");
    pipeline.set_state(gst::State::Playing).map_err(|_| ViewerError::Internal("viewer pipeline refused to start".into()))?;
    Ok(Viewer { pipeline, appsrc, webrtc, pay, signals, _stop: guard })
}

/// Builds the viewer pipeline and answers `offer`. Returns the viewer and the SDP answer.
/// The first data channel the viewer opens goes to `on_channel`.
pub(super) async fn negotiate(
    id: &str,
    offer: gst_sdp::SDPMessage,
    h264: &H264Choice,
    ice: &IceSettings,
    clock: &MediaClock,
    step: &Step,
    on_channel: Option<ChannelHandler>,
) -> Result<(Viewer, String), ViewerError> {
    let mut viewer = build(id, h264, ice, clock, step)?;
    let webrtc = viewer.webrtc.clone();
    if let Some(handler) = on_channel {
        let handler = std::sync::Mutex::new(Some(handler));
        let (pay, clock) = (viewer.pay.clone(), clock.clone());
        webrtc.connect("on-data-channel", false, move |args| {
            let channel = args.get(1).and_then(|v| v.get::<gst_webrtc::WebRTCDataChannel>().ok());
            if let Some(channel) = channel
                && let Some(handler) = handler.lock().expect("handler lock never poisoned").take()
            {
                handler(ChannelLink::new(channel, pay.clone(), clock.clone()));
            }
            None
        });
    }
    let t0 = Instant::now();
    let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    step.enter("applying the offer (set-remote-description)");
    promise(&webrtc, "set-remote-description", &offer).await.map_err(ViewerError::Negotiation)?;
    describe_locally(&webrtc, Local::Answer, step).await?;
    let t1 = t0.elapsed();
    step.enter("gathering ICE candidates");
    wait_for_gathering(&webrtc, &mut viewer.signals, ice.stun.is_none() && ice.turn.is_empty()).await;
    let text = local_description(&webrtc)?;
    let candidates = text.matches("a=candidate:").count();
    tracing::debug!(negotiate = ?t1, gather = ?(t0.elapsed() - t1), candidates, "answer ready");
    Ok((viewer, sdp::announce_addresses(&text, &ice.announce)))
}

/// Builds a sender pipeline that offers (WHIP: the device is the offerer). Returns it and the
/// offer with its candidates, for [`accept`] to complete with the server's answer.
pub(super) async fn offer(id: &str, ice: &IceSettings, clock: &MediaClock, step: &Step) -> Result<(Viewer, String), ViewerError> {
    let mut viewer = build(id, &H264Choice::for_offer(), ice, clock, step)?;
    let webrtc = viewer.webrtc.clone();
    describe_locally(&webrtc, Local::Offer, step).await?;
    step.enter("gathering ICE candidates");
    wait_for_gathering(&webrtc, &mut viewer.signals, ice.stun.is_none() && ice.turn.is_empty()).await;
    let text = local_description(&webrtc)?;
    Ok((viewer, sdp::as_whip_offer(&sdp::announce_addresses(&text, &ice.announce))))
}

/// Which local description a session makes.
#[derive(Clone, Copy)]
pub(super) enum Local {
    Offer,
    Answer,
}

/// Makes the local description (`create-offer` or `create-answer`) and applies it.
pub(super) async fn describe_locally(webrtc: &gst::Element, kind: Local, step: &Step) -> Result<(), ViewerError> {
    let (action, field, creating, applying) = match kind {
        Local::Offer => ("create-offer", "offer", "creating the offer (create-offer)", "applying the offer (set-local-description)"),
        Local::Answer => ("create-answer", "answer", "creating the answer (create-answer)", "applying the answer (set-local-description)"),
    };
    step.enter(creating);
    let reply = promise_reply(webrtc, action).await.map_err(ViewerError::Negotiation)?;
    let description = reply
        .get::<gst_webrtc::WebRTCSessionDescription>(field)
        .map_err(|_| ViewerError::Negotiation(format!("webrtcbin produced no {field}")))?;
    step.enter(applying);
    promise(webrtc, "set-local-description", &description).await.map_err(ViewerError::Negotiation)
}

/// Completes an [`offer`] with the server's answer.
pub(super) async fn accept(viewer: &Viewer, answer: &str) -> Result<(), ViewerError> {
    apply_answer(&viewer.webrtc, answer).await
}

/// Applies the other side's SDP answer to an offerer.
pub(super) async fn apply_answer(webrtc: &gst::Element, answer: &str) -> Result<(), ViewerError> {
    let parsed = gst_sdp::SDPMessage::parse_buffer(answer.as_bytes())
        .map_err(|_| ViewerError::Negotiation("the server's answer is not SDP".into()))?;
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, parsed);
    promise(webrtc, "set-remote-description", &answer).await.map_err(ViewerError::Negotiation)
}

pub(super) fn local_description(webrtc: &gst::Element) -> Result<String, ViewerError> {
    let local = webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or_else(|| ViewerError::Negotiation("no local description after negotiation".into()))?;
    local.sdp().as_text().map_err(|e| ViewerError::Internal(e.to_string()))
}

/// What a sender session has sent and how far its receiver is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SendStats {
    /// RTP payload bytes sent so far.
    pub bytes_sent: u64,
    /// Round-trip time from the receiver's reports, once it sent one.
    pub rtt: Option<Duration>,
}

/// Reads webrtcbin's statistics (`outbound-rtp` bytes, `remote-inbound-rtp` round trip).
pub(super) async fn send_stats(webrtc: &gst::Element) -> Option<SendStats> {
    let (tx, rx) = oneshot::channel();
    let p = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.ok().flatten().map(|s| s.to_owned()));
    });
    webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &p]);
    let all = tokio::time::timeout(Duration::from_secs(2), rx).await.ok()?.ok()??;
    let mut stats = SendStats::default();
    for (_, value) in all.iter() {
        let Ok(s) = value.get::<gst::Structure>() else { continue };
        let kind = s.get::<gst_webrtc::WebRTCStatsType>("type").ok();
        match kind {
            Some(gst_webrtc::WebRTCStatsType::OutboundRtp) => stats.bytes_sent += s.get::<u64>("bytes-sent").unwrap_or(0),
            Some(gst_webrtc::WebRTCStatsType::RemoteInboundRtp) => {
                if let Ok(rtt) = s.get::<f64>("round-trip-time")
                    && rtt.is_finite()
                    && rtt > 0.0
                {
                    stats.rtt = Some(Duration::from_secs_f64(rtt));
                }
            }
            _ => {}
        }
    }
    Some(stats)
}

fn rtp_caps(h264: &H264Choice) -> gst::Caps {
    let mut s = gst::Structure::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", "H264")
        .field("clock-rate", 90000i32)
        .field("payload", h264.payload as i32)
        .field("packetization-mode", "1");
    if h264.pli {
        s = s.field("rtcp-fb-nack-pli", true);
    }
    if h264.fir {
        s = s.field("rtcp-fb-ccm-fir", true);
    }
    gst::Caps::builder_full().structure(s.build()).build()
}

fn configure_ice(webrtc: &gst::Element, ice: &IceSettings) {
    if let Some(stun) = &ice.stun {
        webrtc.set_property("stun-server", stun);
    }
    for turn in &ice.turn {
        let _ = webrtc.emit_by_name::<bool>("add-turn-server", &[turn]);
    }
    let agent = webrtc.property::<glib::Object>("ice-agent");
    agent.set_property("ice-tcp", ice.tcp);
    if let Some(range) = &ice.udp_ports {
        agent.set_property("min-rtp-port", u32::from(range.min()));
        agent.set_property("max-rtp-port", u32::from(range.max()));
    }
}

/// Forwards state changes and RTCP activity into the session's channel.
fn watch_signals(webrtc: &gst::Element, tx: mpsc::UnboundedSender<Signal>) {
    let t = tx.clone();
    webrtc.connect_notify(Some("connection-state"), move |w, _| {
        let _ = t.send(Signal::Connection(w.property::<Pc>("connection-state")));
    });
    let t = tx.clone();
    webrtc.connect_notify(Some("ice-gathering-state"), move |w, _| {
        if w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state") == gst_webrtc::WebRTCICEGatheringState::Complete {
            let _ = t.send(Signal::GatheringDone);
        }
    });
    let Some(rtpbin) = webrtc.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin")) else {
        tracing::warn!("webrtcbin has no rtpbin child; viewer liveness falls back to connection state");
        return;
    };
    let t = tx.clone();
    rtpbin.connect("on-ssrc-active", false, move |_| {
        let _ = t.send(Signal::Rtcp);
        None
    });
    rtpbin.connect("on-bye-ssrc", false, move |_| {
        let _ = tx.send(Signal::Bye);
        None
    });
}

/// Waits until the answer can list our candidates. With only host candidates possible (no
/// STUN or TURN configured) they are all known once set-local-description is done: webrtcbin
/// gathers them inside that operation, on its operations thread, and adds them to the local
/// description in one operation it queues there. Gathering is reported "complete" only ~200 ms
/// later, which would add that to every viewer's start (a quiet period of 20 ms after the
/// first candidate, used before, added 20 ms); instead an operation queued behind that one
/// marks the moment they are all in.
async fn wait_for_gathering(webrtc: &gst::Element, signals: &mut mpsc::UnboundedReceiver<Signal>, host_only: bool) {
    if webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state") == gst_webrtc::WebRTCICEGatheringState::Complete {
        return;
    }
    if host_only {
        if tokio::time::timeout(GATHER_TIMEOUT, queued_operations_done(webrtc)).await.is_err() {
            tracing::debug!("webrtcbin's operations still running after {GATHER_TIMEOUT:?}; answering with what we have");
        }
        return;
    }
    let deadline = tokio::time::sleep(GATHER_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                tracing::debug!("ICE gathering still running after {GATHER_TIMEOUT:?}; answering with what we have");
                return;
            }
            s = signals.recv() => match s {
                Some(Signal::GatheringDone) | None => return,
                // Other signals cannot matter before the answer is sent.
                Some(_) => {}
            },
        }
    }
}

/// Returns once every operation queued on webrtcbin's operations thread so far has run: a
/// create-answer queued behind them is refused by its own operation at once (no offer is
/// pending any more), which is all it is for. A get-stats did the same but named its
/// structures after the session's SSRCs, ports and transports, and GLib interns such names
/// for good: hundreds of bytes kept per join (heaptrack, `scripts/bench/churn`). With
/// GStreamer's own log at WARN, webrtcbin logs the refusal.
async fn queued_operations_done(webrtc: &gst::Element) {
    let (tx, rx) = oneshot::channel();
    let p = gst::Promise::with_change_func(move |_| {
        let _ = tx.send(());
    });
    webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &p]);
    let _ = rx.await;
}

/// Emits a webrtcbin action that takes (argument, promise) and waits for the promise.
async fn promise(webrtc: &gst::Element, action: &str, arg: &gst_webrtc::WebRTCSessionDescription) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    let p = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply_error(reply));
    });
    webrtc.emit_by_name::<()>(action, &[arg, &p]);
    match rx.await {
        Ok(None) => Ok(()),
        Ok(Some(err)) => Err(format!("{action}: {err}")),
        Err(_) => Err(format!("{action}: promise dropped")),
    }
}

/// Emits an action that takes (options, promise) and returns the reply structure.
async fn promise_reply(webrtc: &gst::Element, action: &str) -> Result<gst::Structure, String> {
    let (tx, rx) = oneshot::channel();
    let p = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(match reply {
            Ok(Some(s)) if !s.has_field("error") => Ok(s.to_owned()),
            other => Err(reply_error(other).unwrap_or_else(|| "no reply".into())),
        });
    });
    webrtc.emit_by_name::<()>(action, &[&None::<gst::Structure>, &p]);
    rx.await.map_err(|_| format!("{action}: promise dropped"))?.map_err(|e| format!("{action}: {e}"))
}

fn reply_error(reply: Result<Option<&gst::StructureRef>, gst::PromiseError>) -> Option<String> {
    match reply {
        Ok(Some(s)) => s.get::<glib::Error>("error").ok().map(|e| e.to_string()),
        Ok(None) => None,
        Err(e) => Some(format!("{e:?}")),
    }
}

/// Longest a negotiated viewer may take to connect (ICE and DTLS; under a second on a LAN,
/// a few through TURN) before its slot is freed: a client that posts offers and never
/// connects cannot hold the viewer limit for long.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// Why a session ended.
pub(super) type EndReason = String;

/// Watches a viewer until it ends; returns why and how many frames it dropped. With
/// `fast_start` a viewer of a camera passed through starts from its current GOP.
pub(super) async fn run(
    mut viewer: Viewer,
    fanout: Arc<Fanout>,
    timeout: Duration,
    fast_start: bool,
    mut stop: oneshot::Receiver<EndReason>,
) -> (EndReason, u64) {
    let started = Instant::now();
    let mut consumer: Option<ConsumerId> = None;
    let mut last_heard = Instant::now();
    let mut messages = match viewer.pipeline.bus() {
        Some(bus) => bus.stream(),
        None => return ("viewer pipeline has no bus".into(), 0),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let reason = loop {
        tokio::select! {
            r = &mut stop => break r.unwrap_or_else(|_| "server shutting down".into()),
            s = viewer.signals.recv() => match s {
                Some(Signal::Connection(Pc::Connected)) => {
                    if consumer.is_none() {
                        consumer = Some(if fast_start { fanout.attach_fast(&viewer.appsrc) } else { fanout.attach(&viewer.appsrc) });
                        last_heard = Instant::now();
                        tracing::debug!(pipeline = %viewer.pipeline.name(), after = ?started.elapsed(), "viewer connected");
                    }
                }
                Some(Signal::Connection(Pc::Failed)) => break "connection failed (ICE or DTLS)".into(),
                Some(Signal::Connection(Pc::Closed)) => break "connection closed".into(),
                Some(Signal::Rtcp) => last_heard = Instant::now(),
                Some(Signal::Bye) => break "viewer left (RTCP BYE)".into(),
                Some(_) => {}
                None => break "signal channel closed".into(),
            },
            m = messages.next() => {
                if let Some(gst::MessageView::Error(e)) = m.as_ref().map(|m| m.view()) {
                    break format!("viewer pipeline error: {}", e.error());
                }
            }
            _ = tick.tick() => {
                if consumer.is_none() && started.elapsed() > timeout.min(CONNECT_TIMEOUT) {
                    break format!("viewer did not connect within {}s", timeout.min(CONNECT_TIMEOUT).as_secs());
                }
                if consumer.is_some() && last_heard.elapsed() > timeout {
                    break format!("no RTCP from viewer for {}s (tab closed or network lost)", timeout.as_secs());
                }
            }
        }
    };
    let dropped = consumer.map_or(0, |id| fanout.detach(id));
    // Stopping joins webrtcbin's threads: not on the async runtime.
    let _ = tokio::task::spawn_blocking(move || drop(viewer)).await;
    (reason, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_webrtc::WebRTCICEGatheringState as Gathering;

    #[tokio::test]
    async fn a_description_made_without_stun_or_turn_lists_every_host_candidate_gathered() {
        gst::init().unwrap();
        let ice = IceSettings { tcp: true, ..IceSettings::default() };
        let (viewer, _) = offer("host-only", &ice, &crate::media::MediaClock::new(), &Step::default()).await.expect("an offer");
        let listed = local_description(&viewer.webrtc).unwrap().matches("a=candidate:").count();
        // webrtcbin says gathering is complete ~200 ms later; nothing may have come since.
        let deadline = Instant::now() + Duration::from_secs(10);
        while viewer.webrtc.property::<Gathering>("ice-gathering-state") != Gathering::Complete {
            assert!(Instant::now() < deadline, "gathering completes");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let gathered = local_description(&viewer.webrtc).unwrap().matches("a=candidate:").count();
        assert!(listed > 0 && listed == gathered, "{listed} of {gathered} candidates listed");
        tokio::task::spawn_blocking(move || drop(viewer)).await.unwrap();
    }
}
