//! One camera's encoded stream shared by every output, and the taps that watch it.
//!
//! The camera pipeline ends in an appsink wrapped by `gst_utils::StreamProducer`; each output
//! (WebRTC viewer, MSE viewer, recorder, snapshot) is an appsrc in its own pipeline,
//! attached here. A consumer waits for a keyframe and asks upstream for one; its appsrc is a
//! bounded, leaky queue (500 ms), so a slow output drops its own frames and never stalls the
//! camera or the others. When the camera pipeline is rebuilt, [`Fanout::set_producer`] moves
//! every consumer to the new producer, so outputs survive camera restarts untouched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use gst_utils::{ConsumptionLink, StreamProducer};

use super::gop::{self, Gop, GopCache};
use super::keyframe::{KeyframeLimiter, Verdict};

/// Identifies an attached consumer.
pub type ConsumerId = u64;

/// Counters updated from the streaming thread, read by the supervisor.
#[derive(Debug, Default)]
pub struct Taps {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Milliseconds since `epoch` when the last frame passed; 0 before the first.
    pub last_frame_ms: AtomicU64,
    pub epoch: Mutex<Option<Instant>>,
}

impl Taps {
    fn mark(&self, bytes: usize) {
        let epoch = *self.epoch.lock().expect("taps lock never poisoned").get_or_insert_with(Instant::now);
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let ms = epoch.elapsed().as_millis() as u64 + 1;
        self.last_frame_ms.store(ms, Ordering::Relaxed);
    }

    /// When the last frame passed, if any.
    pub fn last_frame(&self) -> Option<Instant> {
        let ms = self.last_frame_ms.load(Ordering::Relaxed);
        let epoch = (*self.epoch.lock().expect("taps lock never poisoned"))?;
        (ms > 0).then(|| epoch + std::time::Duration::from_millis(ms - 1))
    }
}

/// An attached output.
struct Consumer {
    link: Arc<Mutex<ConsumptionLink>>,
    /// The link's skipped frames when this output's first frame came out of its queue: the
    /// delta frames that passed between joining and the keyframe it asked for (typically one,
    /// the frame already in the encoder). Skipped by design, not lost; `u64::MAX` until then.
    skipped_at_start: Arc<AtomicU64>,
}

impl Consumer {
    /// Frames this output lost since it started: each time its full queue dropped one, and
    /// the delta frames skipped after that until the next keyframe (the link counts both).
    /// Never decreases.
    fn dropped(&self) -> u64 {
        let dropped = self.link.lock().expect("link lock never poisoned").dropped();
        // Nothing out yet: everything skipped so far is the wait for the first keyframe.
        dropped.saturating_sub(self.skipped_at_start.load(Ordering::Relaxed).min(dropped))
    }
}

/// The shared stream of one camera.
pub struct Fanout {
    name: String,
    producer: Mutex<Option<StreamProducer>>,
    consumers: Mutex<HashMap<ConsumerId, Consumer>>,
    next_id: AtomicU64,
    limiter: Arc<Mutex<KeyframeLimiter>>,
    /// Frames dropped by outputs already detached, for the lifetime total.
    retired_drops: AtomicU64,
    gop: Arc<Mutex<FrameCache>>,
}

/// The current GOP as the camera pipeline's own buffers (references, not copies).
type FrameCache = GopCache<gst::Buffer, gst::Caps>;

impl Fanout {
    /// An empty fan-out for the named camera; nothing flows until a producer is set.
    pub fn new(name: &str) -> Fanout {
        Fanout {
            name: name.to_owned(),
            producer: Mutex::new(None),
            consumers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            limiter: Arc::new(Mutex::new(KeyframeLimiter::default())),
            retired_drops: AtomicU64::new(0),
            gop: Arc::new(Mutex::new(GopCache::new(gop::MAX_BYTES))),
        }
    }

    /// Wraps a camera pipeline's appsink: installs the frame taps and the keyframe limiter,
    /// and moves every consumer onto it. Returns the counters of the new pipeline.
    pub fn set_producer(&self, appsink: &gst_app::AppSink) -> Arc<Taps> {
        let taps = Arc::new(Taps::default());
        self.gop.lock().expect("gop lock never poisoned").clear();
        install_probes(appsink, taps.clone(), self.limiter.clone(), self.gop.clone());
        let producer = StreamProducer::with(appsink, gst_utils::streamproducer::ProducerSettings { sync: false });
        producer.set_forward_preroll(false);
        *self.producer.lock().expect("fanout lock never poisoned") = Some(producer.clone());
        let mut consumers = self.consumers.lock().expect("fanout lock never poisoned");
        for consumer in consumers.values_mut() {
            if let Err(e) = consumer.link.lock().expect("link lock never poisoned").change_producer(&producer, false) {
                tracing::warn!(camera = %self.name, "re-attaching consumer: {e}");
            }
        }
        taps
    }

    /// Detaches every consumer from the current producer (camera pipeline going down); they
    /// stay registered and resume when the next producer is set.
    pub fn clear_producer(&self) {
        self.producer.lock().expect("fanout lock never poisoned").take();
        self.gop.lock().expect("gop lock never poisoned").clear();
        for consumer in self.consumers.lock().expect("fanout lock never poisoned").values_mut() {
            consumer.link.lock().expect("link lock never poisoned").disconnect();
        }
    }

    /// Attaches an output's appsrc. It starts at the next keyframe (requested at once).
    pub fn attach(&self, appsrc: &gst_app::AppSrc) -> ConsumerId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut link = ConsumptionLink::disconnected(appsrc.clone());
        if let Some(producer) = self.producer.lock().expect("fanout lock never poisoned").clone()
            && let Err(e) = link.change_producer(&producer, true)
        {
            tracing::warn!(camera = %self.name, "attaching consumer: {e}");
        }
        let link = Arc::new(Mutex::new(link));
        let skipped_at_start = Arc::new(AtomicU64::new(u64::MAX));
        let (skipped, weak_link) = (skipped_at_start.clone(), Arc::downgrade(&link));
        if let Some(pad) = appsrc.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                if skipped.load(Ordering::Relaxed) == u64::MAX
                    && let Some(link) = weak_link.upgrade()
                {
                    skipped.store(link.lock().expect("link lock never poisoned").dropped(), Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        }
        self.consumers.lock().expect("fanout lock never poisoned").insert(id, Consumer { link, skipped_at_start });
        id
    }

    /// Detaches an output; returns how many frames it dropped (waiting for a keyframe or
    /// because its queue was full).
    pub fn detach(&self, id: ConsumerId) -> u64 {
        let consumer = self.consumers.lock().expect("fanout lock never poisoned").remove(&id);
        let dropped = consumer.map_or(0, |c| c.dropped());
        self.retired_drops.fetch_add(dropped, Ordering::Relaxed);
        dropped
    }

    /// Frames dropped by every output since the camera started (a counter for metrics).
    pub fn dropped_total(&self) -> u64 {
        let live: u64 = self.consumers.lock().expect("fanout lock never poisoned").values().map(Consumer::dropped).sum();
        self.retired_drops.load(Ordering::Relaxed) + live
    }

    /// Frames dropped so far by one output.
    pub fn dropped(&self, id: ConsumerId) -> u64 {
        self.consumers.lock().expect("fanout lock never poisoned").get(&id).map_or(0, Consumer::dropped)
    }

    /// Every frame since the last keyframe, if the camera delivered one recently: decoded,
    /// the current picture, without asking the camera for anything.
    pub fn current_gop(&self) -> Option<Gop<gst::Buffer, gst::Caps>> {
        self.gop.lock().expect("gop lock never poisoned").current(Instant::now())
    }

    /// Keyframe requests (forwarded, dropped) so far.
    pub fn keyframe_requests(&self) -> (u64, u64) {
        self.limiter.lock().expect("limiter lock never poisoned").counts()
    }
}

/// Counts frames, remembers when the last one passed, keeps the current GOP, and rate-limits
/// keyframe requests.
fn install_probes(appsink: &gst_app::AppSink, taps: Arc<Taps>, limiter: Arc<Mutex<KeyframeLimiter>>, gop: Arc<Mutex<FrameCache>>) {
    let pad = appsink.static_pad("sink").expect("appsink always has a sink pad");
    let frame_limiter = limiter.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(buffer) = info.buffer() {
            taps.mark(buffer.size());
            let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            gop.lock()
                .expect("gop lock never poisoned")
                .push(Instant::now(), keyframe, buffer.size(), buffer.to_owned(), || pad.current_caps());
            let issue = frame_limiter.lock().expect("limiter lock never poisoned").on_frame(Instant::now(), keyframe);
            if issue {
                // Pushed on the pad, not sent to the element: that would take the state lock.
                pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
            }
        }
        gst::PadProbeReturn::Ok
    });
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_pad, info| {
        let is_fku = info.event().is_some_and(|e| gst_video::UpstreamForceKeyUnitEvent::parse(e).is_ok());
        if !is_fku {
            return gst::PadProbeReturn::Ok;
        }
        match limiter.lock().expect("limiter lock never poisoned").on_request(Instant::now()) {
            Verdict::Forward => gst::PadProbeReturn::Ok,
            // Handled, not Drop: GStreamer 1.22 unrefs a NULL event when a probe drops an
            // upstream event that another probe pushed (a CRITICAL on every viewer join).
            Verdict::Drop => gst::PadProbeReturn::Handled,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_camera_appsink_hands_frames_over_without_waiting_for_the_clock() {
        // Outputs run their own pipelines on the shared clock; the camera's appsink must not
        // also sync, or every frame would wait there for its running time (or be late).
        gst::init().unwrap();
        let appsink = gst_app::AppSink::builder().build();
        assert!(appsink.property::<bool>("sync"), "appsink syncs by default");
        Fanout::new("cam").set_producer(&appsink);
        assert!(!appsink.property::<bool>("sync"));
    }
}
