//! Keeps a stopped `webrtcbin` alive until its ICE candidate gathering has finished.
//!
//! GStreamer 1.22.0 (Debian 12's) has a crash in its libnice glue: when libnice reports that a
//! stream finished gathering, the handler walks the stream's ICE transports by weak reference
//! and dereferences NULL if the last one has already been freed (fixed upstream after 1.22.0,
//! "webrtc: Fix segfault traversing ice transports"). The transports die with their
//! webrtcbin, while the ICE agent can outlive it for a moment (an mDNS `.local` candidate
//! being resolved holds it), so a viewer torn down during the ~200 ms of gathering after its
//! answer could take the daemon down: seen with Chromium's offers in the browser tests. Once
//! gathering is over nothing walks that list again, so holding the element until then closes
//! the window on every GStreamer version.

use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_webrtc::WebRTCICEGatheringState as Gathering;

/// Gathering with an unreachable STUN or TURN server gives up well within this (libnice's
/// STUN retransmissions end after ~8 s); after it the element is let go regardless.
const LONGEST_HOLD: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

/// Whether `element` is a webrtcbin with an ICE transport still gathering candidates.
pub fn gathering(element: &gst::Element) -> bool {
    ice_transports(element).iter().any(|t| t.property::<Gathering>("gathering-state") == Gathering::Gathering)
}

/// Holds `webrtc` (already stopped) on a thread of its own until it has finished gathering,
/// or [`LONGEST_HOLD`] has passed; returns at once.
pub fn hold_until_gathered(webrtc: gst::Element) {
    let name = webrtc.name();
    let spawned = std::thread::Builder::new().name("webrtc-linger".into()).spawn(move || {
        let until = Instant::now() + LONGEST_HOLD;
        while gathering(&webrtc) && Instant::now() < until {
            std::thread::sleep(POLL);
        }
        drop(webrtc);
    });
    match spawned {
        Ok(_) => tracing::debug!(webrtcbin = %name, "stopped while gathering ICE candidates; held until gathering ends"),
        Err(e) => tracing::warn!(webrtcbin = %name, "cannot hold a webrtcbin until its ICE gathering ends: {e}"),
    }
}

/// The ICE transports of a webrtcbin's transceivers and of its SCTP (data channel)
/// transport: with BUNDLE usually one object, listed once per user. Empty for other
/// elements.
fn ice_transports(element: &gst::Element) -> Vec<glib::Object> {
    if element.factory().is_none_or(|f| f.name() != "webrtcbin") {
        return Vec::new();
    }
    let mut dtls = Vec::new();
    // By index until there is none (the one past the end logs a GStreamer ERROR line under
    // GST_DEBUG); `get-transceivers` answers a GArray, which the bindings cannot read.
    for index in 0..64u32 {
        let Some(transceiver) = element.emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&(index as i32)])
        else {
            break;
        };
        let sender = transceiver.property::<Option<gst_webrtc::WebRTCRTPSender>>("sender");
        dtls.extend(sender.and_then(|s| s.property::<Option<gst_webrtc::WebRTCDTLSTransport>>("transport")));
    }
    if let Some(sctp) = element.property::<Option<glib::Object>>("sctp-transport") {
        dtls.extend(sctp.property::<Option<gst_webrtc::WebRTCDTLSTransport>>("transport"));
    }
    dtls.iter().filter_map(|d| d.property::<Option<glib::Object>>("transport")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webrtcbin that has started gathering towards a STUN server that never answers.
    fn gathering_webrtcbin(stun: &std::net::UdpSocket) -> (gst::Pipeline, gst::Element) {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let webrtc = gst::ElementFactory::make("webrtcbin").build().unwrap();
        webrtc.set_property("stun-server", format!("stun://{}", stun.local_addr().unwrap()));
        pipeline.add(&webrtc).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("payload", 96i32)
            .field("clock-rate", 90000i32)
            .build();
        let direction = gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly;
        webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>("add-transceiver", &[&direction, &caps]);
        let offered = gst::Promise::new();
        webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &offered]);
        offered.wait();
        let offer = offered.get_reply().unwrap().value("offer").unwrap().get::<gst_webrtc::WebRTCSessionDescription>().unwrap();
        webrtc.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
        (pipeline, webrtc)
    }

    #[test]
    fn a_webrtcbin_stopped_while_gathering_lives_until_gathering_ends() {
        let stun = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (pipeline, webrtc) = gathering_webrtcbin(&stun);
        let until = Instant::now() + Duration::from_secs(10);
        while !gathering(&webrtc) {
            assert!(Instant::now() < until, "gathering never started ({} ICE transports)", ice_transports(&webrtc).len());
            std::thread::sleep(Duration::from_millis(10));
        }
        let weak = webrtc.downgrade();
        drop(webrtc);
        crate::media::stop(&pipeline);
        drop(pipeline);
        assert!(weak.upgrade().is_some(), "the webrtcbin was freed while its ICE agent was still gathering");
        let until = Instant::now() + LONGEST_HOLD + Duration::from_secs(5);
        while weak.upgrade().is_some() {
            assert!(Instant::now() < until, "the webrtcbin was never let go");
            std::thread::sleep(POLL);
        }
    }

    #[test]
    fn other_elements_are_never_gathering() {
        gst::init().unwrap();
        let queue = gst::ElementFactory::make("queue").build().unwrap();
        assert!(!gathering(&queue));
        let idle = gst::ElementFactory::make("webrtcbin").build().unwrap();
        assert!(!gathering(&idle), "a webrtcbin without a description gathers nothing");
    }
}
