//! A WHEP viewer of our own, for `lookout probe`: checks from some machine that live video
//! reaches it (ICE, DTLS, RTP), without a browser. It offers to receive H.264, applies the
//! answer, and counts the access units that arrive; nothing is decoded. The HTTP exchange is
//! the caller's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use super::ViewerError;
use super::session::{Local, Step, apply_answer, describe_locally, local_description};
use crate::media::StopOnDrop;

/// What the probe offers: H.264 constrained baseline, packetization mode 1, keyframes on PLI.
const OFFER_CAPS: &str = "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,\
packetization-mode=(string)1,profile-level-id=(string)42e01f,rtcp-fb-nack-pli=(boolean)true";

/// A receive-only session; stops when dropped.
pub struct Probe {
    webrtc: gst::Element,
    frames: Arc<AtomicU64>,
    _stop: StopOnDrop,
}

fn internal(e: impl std::fmt::Display) -> ViewerError {
    ViewerError::Internal(e.to_string())
}

impl Probe {
    /// Builds the receiver and its offer, with every candidate gathered.
    pub async fn offer() -> Result<(Probe, String), ViewerError> {
        let pipeline = gst::Pipeline::with_name("probe");
        let stop = StopOnDrop::new(&pipeline);
        let webrtc =
            gst::ElementFactory::make("webrtcbin").build().map_err(|_| internal("GStreamer element webrtcbin is not installed"))?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        pipeline.add(&webrtc).map_err(internal)?;
        let caps = gst::Caps::from_str(OFFER_CAPS).map_err(internal)?;
        webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
            "add-transceiver",
            &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
        );
        let frames = Arc::new(AtomicU64::new(0));
        let counter = frames.clone();
        let weak = pipeline.downgrade();
        webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak.upgrade() else { return };
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let tail = "queue ! rtph264depay ! h264parse ! video/x-h264,alignment=au ! fakesink name=units sync=false";
            let Ok(bin) = gst::parse::bin_from_description(tail, true) else { return };
            if let Some(sink) = bin.by_name("units").and_then(|s| s.static_pad("sink")) {
                let counter = counter.clone();
                sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
            }
            let linked = pipeline.add(&bin).is_ok()
                && bin.sync_state_with_parent().is_ok()
                && bin.static_pad("sink").is_some_and(|sink| pad.link(&sink).is_ok());
            if !linked {
                tracing::warn!("probe: cannot take the stream that arrived");
            }
        });
        pipeline.set_state(gst::State::Playing).map_err(|_| internal("the probe pipeline refused to start"))?;
        describe_locally(&webrtc, Local::Offer, &Step::default()).await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state") != gst_webrtc::WebRTCICEGatheringState::Complete
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let sdp = local_description(&webrtc)?;
        Ok((Probe { webrtc, frames, _stop: stop }, sdp))
    }

    /// Applies the server's answer; video flows once ICE and DTLS are up.
    pub async fn accept(&self, answer: &str) -> Result<(), ViewerError> {
        apply_answer(&self.webrtc, answer).await
    }

    /// H.264 access units (frames) received so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// The connection's state, as webrtcbin names it (`connected`, `failed`, …).
    pub fn connection(&self) -> String {
        let state = self.webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
        format!("{state:?}").to_lowercase()
    }
}

use std::str::FromStr;
