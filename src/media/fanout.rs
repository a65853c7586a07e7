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
    /// Whether the current producer makes a keyframe when asked (it encodes) or passes a
    /// camera's own H.264 through, whose next keyframe may be seconds away.
    encodes: std::sync::atomic::AtomicBool,
}

/// Spacing of a fast start's cached frames: one tick of RTP's 90 kHz video clock (rounded up),
/// so each keeps a timestamp of its own while the whole GOP takes under a millisecond of
/// stream time and the player's clock is set by the newest of them.
const FAST_START_SPACING: gst::ClockTime = gst::ClockTime::from_useconds(12);

/// Most frames of an encoded camera's GOP that a viewer starts from (a quarter second at
/// 30 fps): so young a GOP began with the keyframe asked for when the viewer's offer arrived,
/// or by another viewer moments before. An older one is not worth its burst.
const YOUNG_GOP_FRAMES: usize = 8;

/// The current GOP as the camera pipeline's own buffers (references, not copies).
type FrameCache = GopCache<gst::Buffer, Format>;

/// What frames of a cached GOP need besides themselves: their caps (to decode) and their
/// segment (to place them in time, as the live frames are).
#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    pub caps: gst::Caps,
    pub segment: gst::Segment,
}

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
            encodes: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Wraps a camera pipeline's appsink: installs the frame taps and the keyframe limiter,
    /// and moves every consumer onto it. `encodes`: the pipeline makes a keyframe when asked
    /// (false for a camera's H.264 passed through). Returns the counters of the new pipeline.
    pub fn set_producer(&self, appsink: &gst_app::AppSink, encodes: bool) -> Arc<Taps> {
        let taps = Arc::new(Taps::default());
        self.encodes.store(encodes, Ordering::Relaxed);
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
        self.attach_inner(appsrc, true)
    }

    /// Attaches an output that starts from the camera's current GOP when there is a fresh
    /// one, instead of from the next keyframe: a camera passed through cannot be asked for a
    /// keyframe, and its GOP can last seconds, which a recorder starting after a (re)connect
    /// would otherwise lose. The GOP's frames are pushed first; those of them that were still
    /// on their way to the outputs when it attached arrive again and are dropped.
    pub fn attach_from_gop(&self, appsrc: &gst_app::AppSrc) -> ConsumerId {
        self.attach_with_gop(appsrc, false, usize::MAX)
    }

    /// A viewer's offer arrived: a camera Lookout encodes is asked for a keyframe now (through
    /// the limiter), while the viewer's connection is still being set up, so that by the time
    /// it connects the keyframe is already in the cached GOP for [`Fanout::attach_fast`] to
    /// start it from. Nothing for a camera passed through, which cannot be asked.
    pub fn expect_viewer(&self) {
        if !self.encodes.load(Ordering::Relaxed) {
            return;
        }
        let producer = self.producer.lock().expect("fanout lock never poisoned").clone();
        if let Some(pad) = producer.and_then(|p| p.appsink().static_pad("sink")) {
            // Through the pad, as a consumer's own request goes: the limiter's probe sees it.
            pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
        }
    }

    /// Attaches a live viewer so that it sees a picture at once: it starts from the camera's
    /// current GOP, with the cached frames' times squeezed to [`FAST_START_SPACING`] apart and
    /// ending at the newest one's. The player decodes them as one burst and shows the newest
    /// picture, and its clock, set by those times, is that of a viewer who joined on a
    /// keyframe, so no delay stays behind.
    ///
    /// A camera passed through cannot be asked for a keyframe and its GOP may last seconds, so
    /// its viewer takes the whole GOP. A camera Lookout encodes was asked for a keyframe when
    /// the offer arrived ([`Fanout::expect_viewer`]): its viewer starts from the GOP only while
    /// it is at most [`YOUNG_GOP_FRAMES`] long, and otherwise asks for a keyframe as
    /// [`Fanout::attach`] does. A whole GOP's burst overran the viewer's 500 ms queue on the
    /// emulated image (docs/PERFORMANCE.md).
    pub fn attach_fast(&self, appsrc: &gst_app::AppSrc) -> ConsumerId {
        let most = if self.encodes.load(Ordering::Relaxed) { YOUNG_GOP_FRAMES } else { usize::MAX };
        self.attach_with_gop(appsrc, true, most)
    }

    /// Starts `appsrc` from the cached GOP if there is a fresh one of at most `most` frames;
    /// otherwise from the next keyframe, asked for.
    fn attach_with_gop(&self, appsrc: &gst_app::AppSrc, squeeze: bool, most: usize) -> ConsumerId {
        // While the cache is locked no frame can enter it, and a frame reaches the outputs only
        // after it entered the cache: every frame is either in the snapshot or arrives live.
        let cache = self.gop.lock().expect("gop lock never poisoned");
        let producing = self.producer.lock().expect("fanout lock never poisoned").is_some();
        let Some(gop) = cache.current(Instant::now()).filter(|g| producing && g.frames.len() <= most) else {
            drop(cache);
            tracing::debug!(camera = %self.name, "output starts at the next keyframe");
            return self.attach(appsrc);
        };
        tracing::debug!(camera = %self.name, frames = gop.frames.len(), "output starts from the cached GOP");
        let newest = gop.frames.last().and_then(|f| f.pts());
        let count = gop.frames.len() as u64;
        for (i, frame) in gop.frames.iter().enumerate() {
            // Copies (sharing memory), so that the originals, if they arrive live, are told apart.
            let mut copy = frame.copy();
            if let (true, Some(newest)) = (squeeze, newest) {
                let at = newest.saturating_sub(FAST_START_SPACING * (count - 1 - i as u64));
                let b = copy.make_mut();
                b.set_pts(at);
                b.set_dts(gst::ClockTime::NONE);
            }
            let sample = gst::Sample::builder().buffer(&copy).caps(&gop.format.caps).segment(&gop.format.segment).build();
            if appsrc.push_sample(&sample).is_err() {
                break;
            }
        }
        drop_repeats(appsrc, gop.frames);
        let id = self.attach_inner(appsrc, false);
        drop(cache);
        id
    }

    fn attach_inner(&self, appsrc: &gst_app::AppSrc, wait_for_keyframe: bool) -> ConsumerId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // The queue limits the output chose (the recorder's are longer than a viewer's), which
        // a link made with default settings would replace.
        let settings = gst_utils::streamproducer::ConsumerSettings {
            max_buffer: appsrc.max_buffers(),
            max_bytes: gst::format::Bytes::from_u64(appsrc.max_bytes()),
            max_time: appsrc.max_time().unwrap_or(gst::ClockTime::ZERO),
        };
        let mut link = ConsumptionLink::disconnected_with(appsrc.clone(), settings);
        link.set_wait_for_keyframe(wait_for_keyframe);
        if let Some(producer) = self.producer.lock().expect("fanout lock never poisoned").clone()
            && let Err(e) = link.change_producer(&producer, true)
        {
            tracing::warn!(camera = %self.name, "attaching consumer: {e}");
        }
        // From here on a drop or a discontinuity waits for a keyframe again.
        link.set_wait_for_keyframe(true);
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
    pub fn current_gop(&self) -> Option<Gop<gst::Buffer, Format>> {
        self.gop.lock().expect("gop lock never poisoned").current(Instant::now())
    }

    /// Keyframe requests (forwarded, dropped) so far.
    pub fn keyframe_requests(&self) -> (u64, u64) {
        self.limiter.lock().expect("limiter lock never poisoned").counts()
    }
}

/// Drops, on `appsrc`'s output, the `originals` (the cached frames themselves, not the copies
/// pushed in their place) that still arrive live after a GOP start. Holding them keeps their
/// addresses from being reused meanwhile; the probe goes once every copy and a live frame
/// have passed, or every original was seen.
fn drop_repeats(appsrc: &gst_app::AppSrc, originals: Vec<gst::Buffer>) {
    let Some(pad) = appsrc.static_pad("src") else { return };
    let passes = originals.len() + 1;
    let state = Mutex::new((originals, passes));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
        let mut state = state.lock().expect("repeat filter lock never poisoned");
        let (pending, passes_left) = &mut *state;
        if pending.is_empty() {
            return gst::PadProbeReturn::Remove;
        }
        if let Some(i) = pending.iter().position(|o| o.as_ptr() == buffer.as_ptr()) {
            pending.swap_remove(i);
            return gst::PadProbeReturn::Drop;
        }
        *passes_left -= 1;
        if *passes_left == 0 { gst::PadProbeReturn::Remove } else { gst::PadProbeReturn::Ok }
    });
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
            let format = || {
                let segment = pad.sticky_event::<gst::event::Segment>(0)?.segment().clone();
                Some(Format { caps: pad.current_caps()?, segment })
            };
            gop.lock().expect("gop lock never poisoned").push(Instant::now(), keyframe, buffer.size(), buffer.to_owned(), format);
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
        Fanout::new("cam").set_producer(&appsink, true);
        assert!(!appsink.property::<bool>("sync"));
    }

    /// A pipeline appsrc → appsink; the appsink's frames (PTS in ms) are collected.
    fn chain(name: &str) -> (gst::Pipeline, gst_app::AppSrc, Arc<Mutex<Vec<u64>>>, gst_app::AppSink) {
        let pipeline = gst::Pipeline::with_name(name);
        let src = gst_app::AppSrc::builder().caps(&gst::Caps::builder("video/x-h264").build()).format(gst::Format::Time).build();
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline.add_many([src.upcast_ref::<gst::Element>(), sink.upcast_ref()]).unwrap();
        src.link(&sink).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let got = seen.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let pts = sample.buffer().and_then(|b| b.pts()).map_or(u64::MAX, |t| t.mseconds());
                    got.lock().unwrap().push(pts);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        (pipeline, src, seen, sink)
    }

    /// A playing output pipeline whose appsrc is configured as outputs configure theirs.
    fn playing_output(name: &str) -> (gst::Pipeline, gst_app::AppSrc, Arc<Mutex<Vec<u64>>>) {
        let (pipeline, src, seen, _) = chain(name);
        StreamProducer::configure_consumer(&src);
        pipeline.set_state(gst::State::Playing).unwrap();
        (pipeline, src, seen)
    }

    fn frame(ms: u64, keyframe: bool) -> gst::Buffer {
        let mut b = gst::Buffer::from_slice(vec![0u8; 100]);
        let m = b.get_mut().unwrap();
        m.set_pts(gst::ClockTime::from_mseconds(ms));
        if !keyframe {
            m.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        b
    }

    fn wait_for(seen: &Arc<Mutex<Vec<u64>>>, n: usize) -> Vec<u64> {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while seen.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen.lock().unwrap().clone()
    }

    /// A fan-out over a playing camera that was fed `frames` (PTS in ms, keyframe), once it
    /// has cached the GOP they end with; returns it, the camera pipeline and its feed.
    fn camera_with_gop(name: &str, encodes: bool, frames: &[(u64, bool)]) -> (Fanout, gst::Pipeline, gst_app::AppSrc) {
        let fanout = Fanout::new(name);
        let (camera, feed, _, appsink) = chain(name);
        fanout.set_producer(&appsink, encodes);
        camera.set_state(gst::State::Playing).unwrap();
        for &(ms, key) in frames {
            feed.push_buffer(frame(ms, key)).unwrap();
        }
        let gop = frames.len() - frames.iter().rposition(|&(_, key)| key).expect("a keyframe among the frames");
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while fanout.current_gop().is_none_or(|g| g.frames.len() < gop) {
            assert!(Instant::now() < deadline, "the GOP was cached");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        (fanout, camera, feed)
    }

    #[test]
    fn an_output_attached_from_the_gop_gets_the_frames_since_the_keyframe_then_live_ones() {
        gst::init().unwrap();
        let (fanout, camera, feed) = camera_with_gop("camera", true, &[(0, true), (40, false), (80, true), (120, false), (160, false)]);

        let (output, src, seen) = playing_output("output");
        let id = fanout.attach_from_gop(&src);
        feed.push_buffer(frame(200, false)).unwrap();
        assert_eq!(wait_for(&seen, 4), [80, 120, 160, 200], "from the current keyframe on, at once, and no frame twice");
        fanout.detach(id);

        // A plain attach waits for the next keyframe instead.
        let (plain, src, seen) = playing_output("plain");
        let _id = fanout.attach(&src);
        feed.push_buffer(frame(240, false)).unwrap();
        feed.push_buffer(frame(280, true)).unwrap();
        assert_eq!(wait_for(&seen, 1), [280]);
        for p in [&camera, &output, &plain] {
            p.set_state(gst::State::Null).unwrap();
        }
    }

    #[test]
    fn a_viewer_starts_from_the_whole_gop_of_a_camera_passed_through_and_from_an_encoded_cameras_only_while_young() {
        gst::init().unwrap();
        let (fanout, camera, feed) = camera_with_gop("camera-fast", false, &[(0, true), (40, false), (80, false), (120, false)]);
        let (output, src, _, sink) = chain("viewer-fast");
        let times = Arc::new(Mutex::new(Vec::new()));
        let got = times.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    got.lock().unwrap().push(sample.buffer().and_then(|b| b.pts()).map_or(u64::MAX, |t| t.useconds()));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        StreamProducer::configure_consumer(&src);
        output.set_state(gst::State::Playing).unwrap();
        let id = fanout.attach_fast(&src);
        feed.push_buffer(frame(160, false)).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while times.lock().unwrap().len() < 5 {
            assert!(Instant::now() < deadline, "frames arrived: {:?}", times.lock().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let spacing = FAST_START_SPACING.useconds();
        assert_eq!(
            *times.lock().unwrap(),
            [120_000 - 3 * spacing, 120_000 - 2 * spacing, 120_000 - spacing, 120_000, 160_000],
            "the whole GOP at once, ending at the newest frame's time, then live frames as they were"
        );
        fanout.detach(id);

        // An encoded camera's young GOP (the keyframe asked for when the offer came) is a start
        // too; an older one is not, and that viewer waits for the keyframe it asks for.
        let (encoded, camera2, feed) = camera_with_gop("camera-encoded", true, &[(0, true), (40, false)]);
        let (young, src, seen) = playing_output("viewer-young");
        let _id = encoded.attach_fast(&src);
        feed.push_buffer(frame(80, false)).unwrap();
        assert_eq!(wait_for(&seen, 3), [39, 40, 80], "the young GOP squeezed (ms), then live");
        for ms in (120..=120 + 40 * YOUNG_GOP_FRAMES as u64).step_by(40) {
            feed.push_buffer(frame(ms, false)).unwrap();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while encoded.current_gop().is_none_or(|g| g.frames.len() <= YOUNG_GOP_FRAMES) {
            assert!(Instant::now() < deadline, "the GOP grew old");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (old, src, seen) = playing_output("viewer-old");
        let _id = encoded.attach_fast(&src);
        feed.push_buffer(frame(1000, false)).unwrap();
        feed.push_buffer(frame(1040, true)).unwrap();
        assert_eq!(wait_for(&seen, 1), [1040]);
        for p in [&camera, &output, &camera2, &young, &old] {
            p.set_state(gst::State::Null).unwrap();
        }
    }

    #[test]
    fn an_expected_viewer_asks_an_encoded_camera_for_a_keyframe_and_a_camera_passed_through_for_nothing() {
        gst::init().unwrap();
        for (name, encodes, asked) in [("expect-encoded", true, 1), ("expect-passed", false, 0)] {
            let (fanout, camera, _feed) = camera_with_gop(name, encodes, &[(0, true)]);
            fanout.expect_viewer();
            assert_eq!(fanout.keyframe_requests(), (asked, 0), "{name}");
            camera.set_state(gst::State::Null).unwrap();
        }
    }

    #[test]
    fn cached_frames_that_also_arrive_live_are_passed_over_once() {
        gst::init().unwrap();
        let (output, src, seen) = playing_output("repeats");
        let originals = vec![frame(0, true), frame(40, false)];
        for o in &originals {
            src.push_buffer(o.copy()).unwrap();
        }
        drop_repeats(&src, originals.clone());
        // The second original was still on its way when the output attached.
        src.push_buffer(originals[1].clone()).unwrap();
        src.push_buffer(frame(80, false)).unwrap();
        assert_eq!(wait_for(&seen, 3), [0, 40, 80]);
        output.set_state(gst::State::Null).unwrap();
    }

    #[test]
    fn an_outputs_own_queue_limits_survive_attaching() {
        gst::init().unwrap();
        let fanout = Fanout::new("cam");
        let (_camera, _feed, _, appsink) = chain("camera-limits");
        fanout.set_producer(&appsink, true);
        let (_output, src, _, _) = chain("recorder-like");
        let four_s = gst::ClockTime::from_seconds(4);
        StreamProducer::configure_consumer_with(
            &src,
            gst_utils::streamproducer::ConsumerSettings { max_time: four_s, ..Default::default() },
        );
        fanout.attach(&src);
        assert_eq!(src.max_time(), Some(four_s), "not reset to the 500 ms default");
    }
}
