//! A WHEP viewer built on webrtcbin: offers to receive H.264, decodes it and counts frames.
//! Used by the integration tests and by `examples/whep_viewer.rs` (the live benchmark).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// A connected (or connecting) viewer.
pub struct WhepViewer {
    pipeline: gst::Pipeline,
    frames: Arc<AtomicU64>,
    size: Arc<Mutex<Option<(i32, i32)>>>,
    first_frame: Arc<Mutex<Option<Instant>>>,
    /// Absolute URL of the session resource.
    pub location: String,
    /// When the offer was posted.
    pub started: Instant,
    /// The answer the server sent.
    pub answer: String,
    /// The Bearer token it used.
    token: Option<String>,
    /// The HTTP client it signals with (one that trusts the device's certificate, over HTTPS).
    client: reqwest::Client,
    /// The data channel it opened, if it asked for one.
    channel: Option<Channel>,
}

/// A viewer's data channel and what arrived on it.
struct Channel {
    channel: gst_webrtc::WebRTCDataChannel,
    texts: Arc<Mutex<Vec<String>>>,
    bytes: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// A POST that did not produce a session.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

const OFFER_CAPS: &str = "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,\
packetization-mode=(string)1,profile-level-id=(string)42e01f,rtcp-fb-nack-pli=(boolean)true";

impl WhepViewer {
    /// Negotiates with `endpoint` (e.g. `http://127.0.0.1:8080/whep/cam`).
    pub async fn connect(endpoint: &str) -> Result<WhepViewer, Refused> {
        WhepViewer::connect_over(endpoint, true, reqwest::Client::new(), false).await
    }

    /// Like [`WhepViewer::connect`], with a data channel in the offer, as a player that wants
    /// the device's events and stats opens one.
    pub async fn connect_with_channel(endpoint: &str) -> Result<WhepViewer, Refused> {
        WhepViewer::connect_over(endpoint, true, reqwest::Client::new(), true).await
    }

    /// Like [`WhepViewer::connect`], signalling with `client` (e.g. one pinning the device's
    /// HTTPS certificate).
    pub async fn connect_with(endpoint: &str, client: reqwest::Client) -> Result<WhepViewer, Refused> {
        WhepViewer::connect_over(endpoint, true, client, false).await
    }

    /// Like [`WhepViewer::connect`] from a network that blocks UDP: only ICE-TCP candidates.
    pub async fn connect_tcp_only(endpoint: &str) -> Result<WhepViewer, Refused> {
        WhepViewer::connect_over(endpoint, false, reqwest::Client::new(), false).await
    }

    async fn connect_over(endpoint: &str, udp: bool, client: reqwest::Client, with_channel: bool) -> Result<WhepViewer, Refused> {
        gst::init().expect("GStreamer initialises");
        let pipeline = gst::Pipeline::new();
        let webrtc = gst::ElementFactory::make("webrtcbin").build().expect("webrtcbin installed");
        if !udp {
            let agent = webrtc.property::<gst::glib::Object>("ice-agent");
            agent.set_property("ice-udp", false);
            agent.set_property("ice-tcp", true);
        }
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        // No jitter-buffer delay: frames are decoded the moment they are complete, so
        // time-to-first-frame measures the server and the network, not a playout policy.
        webrtc.set_property("latency", 0u32);
        pipeline.add(&webrtc).unwrap();
        let caps = gst::Caps::from_str(OFFER_CAPS).unwrap();
        webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
            "add-transceiver",
            &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
        );

        let frames = Arc::new(AtomicU64::new(0));
        let size = Arc::new(Mutex::new(None));
        let first_frame = Arc::new(Mutex::new(None));
        let (f, s, ff) = (frames.clone(), size.clone(), first_frame.clone());
        let weak = pipeline.downgrade();
        webrtc.connect_pad_added(move |_w, pad| {
            let Some(pipeline) = weak.upgrade() else { return };
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let bin = gst::parse::bin_from_description(
                "queue ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! appsink name=frames sync=false",
                true,
            )
            .unwrap();
            let sink = bin.by_name("frames").unwrap().downcast::<gst_app::AppSink>().unwrap();
            let (f, s, ff) = (f.clone(), s.clone(), ff.clone());
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if f.fetch_add(1, Ordering::SeqCst) == 0 {
                            *ff.lock().unwrap() = Some(Instant::now());
                        }
                        if let Some(st) = sample.caps().and_then(|c| c.structure(0).map(|s| s.to_owned()))
                            && let (Ok(w), Ok(h)) = (st.get::<i32>("width"), st.get::<i32>("height"))
                        {
                            *s.lock().unwrap() = Some((w, h));
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            pipeline.add(&bin).unwrap();
            bin.sync_state_with_parent().unwrap();
            pad.link(&bin.static_pad("sink").unwrap()).unwrap();
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        let channel = with_channel.then(|| {
            let channel = webrtc
                .emit_by_name::<Option<gst_webrtc::WebRTCDataChannel>>("create-data-channel", &[&"lookout", &None::<gst::Structure>])
                .expect("webrtcbin makes a data channel");
            let (texts, bytes) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
            let t = texts.clone();
            channel.connect_on_message_string(move |_, m| t.lock().unwrap().extend(m.map(str::to_owned)));
            let b = bytes.clone();
            channel.connect_on_message_data(move |_, m| b.lock().unwrap().extend(m.map(|m| m.to_vec())));
            Channel { channel, texts, bytes }
        });

        let offer = promise(&webrtc, "create-offer", None).await;
        let offer = offer.get::<gst_webrtc::WebRTCSessionDescription>("offer").unwrap();
        promise(&webrtc, "set-local-description", Some(&offer)).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state") != gst_webrtc::WebRTCICEGatheringState::Complete
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let local = webrtc.property::<gst_webrtc::WebRTCSessionDescription>("local-description");
        let sdp = local.sdp().as_text().unwrap();

        // A token in the endpoint's query goes in `Authorization`, as WHEP players send it.
        let (endpoint, token) = match endpoint.split_once("?token=") {
            Some((e, t)) => (e, Some(t.to_owned())),
            None => (endpoint, None),
        };
        let started = Instant::now();
        let mut request = client.post(endpoint);
        if let Some(t) = &token {
            request = request.bearer_auth(t);
        }
        let response = request.header("content-type", "application/sdp").body(sdp).send().await.expect("server reachable");
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap_or_default();
        if status != 201 {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(Refused { status, body });
        }
        let location = location.expect("201 carries a Location");
        let base = endpoint.split("/whep/").next().unwrap();
        let location = if location.starts_with('/') { format!("{base}{location}") } else { location };
        let answer = gst_sdp::SDPMessage::parse_buffer(body.as_bytes()).expect("answer is SDP");
        let answer_desc = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, answer);
        promise(&webrtc, "set-remote-description", Some(&answer_desc)).await;
        Ok(WhepViewer { pipeline, frames, size, first_frame, location, started, answer: body, token, client, channel })
    }

    /// Asks the sender for a keyframe the way a decoder that lost a picture does: an upstream
    /// force-key-unit event, which webrtcbin's RTP session turns into an RTCP PLI.
    pub fn request_keyframe(&self) {
        let sink = self.pipeline.by_name("frames").expect("decoding branch linked");
        let pad = sink.static_pad("sink").expect("appsink has a sink pad");
        pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
    }

    /// Sends a text message on the data channel (once it is open).
    pub async fn send_on_channel(&self, text: &str) {
        let channel = &self.channel.as_ref().expect("connected with a data channel").channel;
        let deadline = Instant::now() + Duration::from_secs(30);
        while channel.ready_state() != gst_webrtc::WebRTCDataChannelState::Open {
            assert!(Instant::now() < deadline, "the data channel did not open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        channel.send_string_full(Some(text)).expect("the data channel takes the message");
    }

    /// Waits for a JSON text message on the data channel that `pred` accepts.
    pub async fn channel_message(&self, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
        let texts = &self.channel.as_ref().expect("connected with a data channel").texts;
        let deadline = Instant::now() + timeout;
        loop {
            let found = texts.lock().unwrap().iter().filter_map(|t| serde_json::from_str(t).ok()).find(|v| pred(v));
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Binary messages received on the data channel so far.
    pub fn channel_bytes(&self) -> Vec<Vec<u8>> {
        self.channel.as_ref().expect("connected with a data channel").bytes.lock().unwrap().clone()
    }

    /// Decoded frames so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::SeqCst)
    }

    /// Decoded picture size, once a frame arrived.
    pub fn size(&self) -> Option<(i32, i32)> {
        *self.size.lock().unwrap()
    }

    /// Time from POST to the first decoded frame.
    pub fn time_to_first_frame(&self) -> Option<Duration> {
        self.first_frame.lock().unwrap().map(|t| t.duration_since(self.started))
    }

    /// Waits until at least `n` frames were decoded; false on timeout.
    pub async fn wait_frames(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.frames() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Ends the session with WHEP DELETE and stops the pipeline; returns the HTTP status.
    pub async fn delete(self) -> u16 {
        let mut request = self.client.delete(&self.location);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let status = request.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        let _ = self.pipeline.set_state(gst::State::Null);
        status
    }

    /// Vanishes without DELETE, like a closed tab: stops sending anything at all.
    pub fn vanish(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for WhepViewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

use std::str::FromStr;

async fn promise(webrtc: &gst::Element, action: &str, arg: Option<&gst_webrtc::WebRTCSessionDescription>) -> gst::Structure {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let p = gst::Promise::with_change_func(move |reply| {
        let s = reply.ok().flatten().map(|s| s.to_owned()).unwrap_or_else(|| gst::Structure::new_empty("empty"));
        let _ = tx.send(s);
    });
    match arg {
        Some(desc) => webrtc.emit_by_name::<()>(action, &[desc, &p]),
        None => webrtc.emit_by_name::<()>(action, &[&None::<gst::Structure>, &p]),
    }
    rx.await.expect("promise answered")
}
