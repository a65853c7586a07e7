//! Continuous recording of one camera from its shared H.264 stream (never a second encode).
//!
//! The recorder is one more consumer of the camera's fan-out (appsrc → appsink tap). Its
//! frames go to one writer pipeline per segment: appsrc → h264parse → mp4mux writing ~1 s
//! fragments → filesink, so a file cut off by a crash or power loss plays up to its last
//! complete fragment. Segments start on wall-clock multiples of the configured length: at
//! each boundary a keyframe is requested, and the first keyframe at or after it starts the
//! next file. Finished files are fsynced before `SegmentClosed` is published.
//!
//! (splitmuxsink is not used: it holds a whole GOP in memory to place its splits, which a
//! power cut would lose on top of the fragment being written.)
//!
//! It follows the camera's online/offline events: when frames stop, the current segment is
//! closed cleanly (the gap shows in the index) and a new one starts when the camera returns.
//! A full or missing disk pauses recording with the reason and it resumes by itself; nothing
//! here can disturb the live view, which is a separate consumer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use gst::prelude::*;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::config::Camera;
use crate::events::{Action, Bus, Event};
use crate::storage::{self, layout};

use super::drift::Drift;
use super::fanout::Fanout;
use super::{MediaClock, StopOnDrop, timestamps};

/// mp4mux fragment length: what a crash can lose at most, and the index's granularity.
const FRAGMENT_MS: u32 = 1000;
/// Below this much free space a segment is closed cleanly rather than cut off by ENOSPC.
pub const PAUSE_BELOW_FREE: u64 = 1024 * 1024;
/// Recording resumes once this much is free again (several seconds at 4 Mbit/s).
pub const RESUME_AT_FREE: u64 = 4 * 1024 * 1024;
/// How often a paused recorder looks at the disk again, and a recording one checks free space.
const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for the muxer to finish the last file on stop.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(5);
/// The recorder's queue: a slow SD card may stall writes for seconds; frames beyond this are
/// dropped (counted) rather than holding up the camera.
const QUEUE_TIME: Duration = Duration::from_secs(4);
/// Most bytes waiting for a segment file's writer (about 16 s at 4 Mbit/s). A card that
/// stalls longer loses frames up to the next keyframe instead of growing memory without end.
const WRITER_QUEUE_BYTES: u64 = 8 * 1024 * 1024;

/// Everything a camera's recorder needs.
pub struct Recorder {
    pub camera: Camera,
    pub root: PathBuf,
    pub fanout: Arc<Fanout>,
    pub clock: MediaClock,
    pub bus: Bus,
}

/// Why [`Recorder::wait_event`] returned.
enum Wake {
    Event(Event),
    Timeout,
    Shutdown,
}

enum Outcome {
    Shutdown,
    CameraOffline,
    /// The recording switch was turned off (by whom).
    SwitchedOff(String),
    Failed(String),
}

impl Recorder {
    /// Records whenever the camera is online, until `shutdown`. `events` must be subscribed
    /// before the camera's supervisor starts, so its first `CameraOnline` is not missed.
    pub async fn run(self, mut events: broadcast::Receiver<Event>, shutdown: CancellationToken) {
        let name = self.camera.name.clone();
        let mut online = false;
        let mut on = !storage::switch::is_off(&self.root, &name);
        if !on {
            tracing::info!(camera = %name, "recording is switched off (recording.start turns it on)");
        }
        let mut paused_for: Option<String> = None;
        loop {
            if !online || !on {
                match self.wait_event(&mut events, &shutdown, None).await {
                    Wake::Event(Event::CameraOnline { .. }) => online = true,
                    Wake::Event(Event::CameraWentOffline { .. }) => online = false,
                    Wake::Event(e) => self.follow_switch(&e, &mut on).await,
                    Wake::Shutdown => return,
                    Wake::Timeout => {}
                }
                continue;
            }
            let (root, camera) = (self.root.clone(), name.clone());
            let check = tokio::task::spawn_blocking(move || writable(&root, &camera)).await;
            if let Err(reason) = check.unwrap_or_else(|e| Err(format!("disk check failed: {e}"))) {
                if paused_for.as_ref() != Some(&reason) {
                    tracing::warn!(camera = %name, "recording paused: {reason}");
                    self.bus.publish(Event::RecordingPaused { camera: name.clone(), reason: reason.clone() });
                    paused_for = Some(reason);
                }
                if !self.wait_paused(&mut events, &shutdown, &mut online, &mut on).await {
                    return;
                }
                continue;
            }
            paused_for = None;
            match self.record(&mut events, &shutdown).await {
                Outcome::Shutdown => {
                    self.bus.publish(Event::RecordingStopped { camera: name });
                    return;
                }
                Outcome::CameraOffline => {
                    online = false;
                    self.bus.publish(Event::RecordingStopped { camera: name.clone() });
                }
                Outcome::SwitchedOff(origin) => {
                    self.bus.publish(Event::RecordingStopped { camera: name.clone() });
                    self.switch(false, origin, &mut on).await;
                }
                Outcome::Failed(reason) => {
                    tracing::warn!(camera = %name, "recording paused: {reason}");
                    self.bus.publish(Event::RecordingPaused { camera: name.clone(), reason: reason.clone() });
                    paused_for = Some(reason);
                    if !self.wait_paused(&mut events, &shutdown, &mut online, &mut on).await {
                        return;
                    }
                }
            }
        }
    }

    /// Acts on a recording-switch request in `event`, if it is one for this camera.
    async fn follow_switch(&self, event: &Event, on: &mut bool) {
        if let Some((wanted, origin)) = switch_request(event, &self.camera.name, *on) {
            self.switch(wanted, origin, on).await;
        }
    }

    /// Sets the switch, saves it when it changed, and says so on the bus (also when it did
    /// not change, so every request has its answer).
    async fn switch(&self, wanted: bool, origin: String, on: &mut bool) {
        let camera = self.camera.name.clone();
        if wanted != *on {
            let (root, name) = (self.root.clone(), camera.clone());
            let saved = tokio::task::spawn_blocking(move || storage::switch::save(&root, &name, wanted)).await;
            if let Ok(Err(e)) = saved {
                tracing::warn!(camera = %camera, "the recording switch is not saved (it holds until the daemon stops): {e}");
            }
            tracing::info!(camera = %camera, %origin, "recording switched {}", if wanted { "on" } else { "off" });
            *on = wanted;
        }
        self.bus.publish(Event::RecordingSwitched { camera, on: wanted, origin });
    }

    /// Waits one disk-check period while recording is paused, noting the camera going
    /// offline; false on shutdown.
    async fn wait_paused(
        &self,
        events: &mut broadcast::Receiver<Event>,
        shutdown: &CancellationToken,
        online: &mut bool,
        on: &mut bool,
    ) -> bool {
        match self.wait_event(events, shutdown, Some(DISK_CHECK_EVERY)).await {
            Wake::Event(Event::CameraWentOffline { .. }) => *online = false,
            Wake::Event(e) => self.follow_switch(&e, on).await,
            Wake::Shutdown => return false,
            Wake::Timeout => {}
        }
        true
    }

    /// The next event about this camera, a timeout, or shutdown.
    async fn wait_event(&self, events: &mut broadcast::Receiver<Event>, shutdown: &CancellationToken, timeout: Option<Duration>) -> Wake {
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Wake::Shutdown,
                _ = &mut sleep => return Wake::Timeout,
                e = events.recv() => match e {
                    Ok(e) if e.camera() == Some(self.camera.name.as_str()) || for_every_camera(&e) => return Wake::Event(e),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Wake::Shutdown,
                },
            }
        }
    }

    /// Records until the camera goes offline, recording fails, or shutdown.
    async fn record(&self, events: &mut broadcast::Receiver<Event>, shutdown: &CancellationToken) -> Outcome {
        let name = &self.camera.name;
        let (reports_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
        let segmenter = Arc::new(std::sync::Mutex::new(Segmenter {
            root: self.root.clone(),
            camera: name.clone(),
            clock: self.clock.clone(),
            segment: self.camera.recording.segment,
            current: None,
            boundary: None,
            reports: reports_tx,
            failed: false,
            backlog: Backlog::default(),
            drift: Drift::default(),
        }));
        let tap = match build_tap(name, &self.clock, segmenter.clone()) {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e),
        };
        let guard = StopOnDrop::new(&tap.pipeline);
        if tap.pipeline.set_state(gst::State::Playing).is_err() {
            return Outcome::Failed("recorder pipeline refused to start".into());
        }
        // From the cached GOP: a camera passed through cannot be asked for a keyframe, and
        // waiting for its next one would lose up to a GOP at every (re)connect.
        let consumer = self.fanout.attach_from_gop(&tap.appsrc);
        tracing::info!(camera = %name, "recording");
        self.bus.publish(Event::RecordingStarted { camera: name.clone() });

        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut disk_checked = tokio::time::Instant::now();
        let mut next_keyframe: Option<tokio::time::Instant> = None;
        let mut current_bus: Option<gst::Bus> = None;
        let tap_bus = tap.pipeline.bus();
        let mut closing = tokio::task::JoinSet::new();

        let outcome = loop {
            let keyframe_due = async {
                match next_keyframe {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break Outcome::Shutdown,
                e = events.recv() => match e {
                    Ok(Event::CameraWentOffline { camera, .. }) if &camera == name => break Outcome::CameraOffline,
                    Ok(e) => match switch_request(&e, name, true) {
                        Some((false, origin)) => break Outcome::SwitchedOff(origin),
                        Some((true, origin)) => self.bus.publish(Event::RecordingSwitched { camera: name.clone(), on: true, origin }),
                        None => {}
                    },
                    Err(RecvError::Closed) => break Outcome::Shutdown,
                    _ => {}
                },
                _ = keyframe_due => {
                    next_keyframe = None;
                    request_keyframe(&tap.appsrc);
                }
                report = reports.recv() => match report {
                    Some(Report::Opened { path, start, boundary, bus }) => {
                        self.bus.publish(Event::SegmentOpened { camera: name.clone(), path, start });
                        current_bus = Some(bus);
                        next_keyframe = Some(tokio::time::Instant::now() + (boundary - Utc::now()).to_std().unwrap_or_default());
                    }
                    Some(report) => if let Some(ended) = self.on_report(report, &mut closing) {
                        break ended;
                    },
                    None => break Outcome::Failed("recorder stopped".into()),
                },
                _ = tick.tick() => {
                    if let Some(ended) = self.check_pipelines(tap_bus.as_ref(), current_bus.as_ref(), &mut disk_checked).await {
                        break ended;
                    }
                }
            }
        };

        // Stop feeding, then close the current file cleanly and wait for every file still
        // being finished, so each is fsynced and announced before recording is reported off.
        self.fanout.detach(consumer);
        let last = segmenter.lock().expect("segmenter lock never poisoned").stop();
        while let Ok(report) = reports.try_recv() {
            if let Report::Finished(writer) = report {
                closing.spawn(finish(writer, self.bus.clone(), name.clone()));
            }
        }
        if let Some(writer) = last {
            closing.spawn(finish(writer, self.bus.clone(), name.clone()));
        }
        while closing.join_next().await.is_some() {}
        let _ = tokio::task::spawn_blocking(move || drop(guard)).await;
        outcome
    }

    /// Acts on what the streaming thread reported (other than a new file); `Some` ends recording.
    fn on_report(&self, report: Report, closing: &mut tokio::task::JoinSet<()>) -> Option<Outcome> {
        let name = &self.camera.name;
        match report {
            Report::Opened { .. } => {}
            Report::Finished(writer) => {
                closing.spawn(finish(writer, self.bus.clone(), name.clone()));
            }
            Report::Failed(reason) => return Some(Outcome::Failed(reason)),
            Report::FellBehind { queued } => tracing::warn!(
                camera = %name,
                "storage too slow: {} KiB waiting to be written; dropping frames until it catches up",
                queued / 1024
            ),
            Report::CaughtUp { dropped } => tracing::info!(camera = %name, dropped, "storage caught up; recording every frame again"),
        }
        None
    }

    /// Errors on the tap or the file being written, and free space (once per
    /// [`DISK_CHECK_EVERY`]); `Some` ends recording with the reason.
    async fn check_pipelines(
        &self,
        tap_bus: Option<&gst::Bus>,
        current_bus: Option<&gst::Bus>,
        disk_checked: &mut tokio::time::Instant,
    ) -> Option<Outcome> {
        if let Some(msg) = tap_bus.and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            && let gst::MessageView::Error(e) = msg.view()
        {
            return Some(Outcome::Failed(format!("recorder stopped: {}", e.error())));
        }
        if let Some(msg) = current_bus.and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            && let gst::MessageView::Error(e) = msg.view()
        {
            let full = free_bytes(&self.root).await.is_some_and(|free| free < PAUSE_BELOW_FREE);
            return Some(Outcome::Failed(if full {
                format!("disk full while writing to {}", self.root.display())
            } else {
                format!("cannot write recording: {}", e.error())
            }));
        }
        if disk_checked.elapsed() >= DISK_CHECK_EVERY {
            *disk_checked = tokio::time::Instant::now();
            if let Some(free) = free_bytes(&self.root).await
                && free < PAUSE_BELOW_FREE
            {
                return Some(Outcome::Failed(format!("disk full: {} KiB free on {}", free / 1024, self.root.display())));
            }
        }
        None
    }
}

/// A recording-switch request in `event` for `camera`, whose switch is `on` now: the state
/// asked for, and by whom.
fn switch_request(event: &Event, camera: &str, on: bool) -> Option<(bool, String)> {
    let Event::ActionRequested { action, camera: target, origin } = event else { return None };
    if target.as_deref().is_some_and(|t| t != camera) {
        return None;
    }
    let wanted = match action {
        Action::RecordingStart => true,
        Action::RecordingStop => false,
        Action::RecordingToggle => !on,
        _ => return None,
    };
    Some((wanted, origin.clone()))
}

/// Requests addressed to every camera (which `Event::camera` does not name).
fn for_every_camera(event: &Event) -> bool {
    matches!(event, Event::ActionRequested { camera: None, action, .. } if action.is_recording_switch())
}

/// What the streaming thread tells the recorder task.
enum Report {
    Opened {
        path: PathBuf,
        start: DateTime<Utc>,
        boundary: DateTime<Utc>,
        bus: gst::Bus,
    },
    Finished(Writer),
    Failed(String),
    /// The disk stopped keeping up: `queued` bytes wait and frames are being dropped.
    FellBehind {
        queued: u64,
    },
    /// Writing resumed at a keyframe after dropping this many frames.
    CaughtUp {
        dropped: u64,
    },
}

/// Keeps a segment writer's queue bounded when the disk stalls. Frames are dropped from when
/// the queue passes the limit until a keyframe finds it half drained, so the file holds a
/// clean jump rather than pictures decoded from missing references. Sans-IO.
#[derive(Debug, Default)]
struct Backlog {
    dropping: bool,
    dropped: u64,
}

/// What to do with one frame.
#[derive(Debug, PartialEq)]
enum Admission {
    Write,
    /// Write it, after dropping this many frames.
    Resume(u64),
    Drop,
    /// The first frame dropped in a stall.
    StartDropping,
}

impl Backlog {
    fn admit(&mut self, keyframe: bool, queued: u64, limit: u64) -> Admission {
        if self.dropping {
            if keyframe && queued <= limit / 2 {
                self.dropping = false;
                return Admission::Resume(std::mem::take(&mut self.dropped));
            }
            self.dropped += 1;
            return Admission::Drop;
        }
        if queued > limit {
            self.dropping = true;
            self.dropped = 1;
            return Admission::StartDropping;
        }
        Admission::Write
    }
}

/// One segment file being written: appsrc → h264parse → mp4mux → filesink.
struct Writer {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    path: PathBuf,
    start: DateTime<Utc>,
    /// Stops the pipeline wherever a writer is dropped (a report never read, shutdown).
    stop: StopOnDrop,
}

impl Writer {
    fn open(path: PathBuf, start: DateTime<Utc>, caps: Option<&gst::CapsRef>, camera: &str) -> Result<Writer, String> {
        if let Some(day) = path.parent() {
            std::fs::create_dir_all(day).map_err(|e| format!("cannot create {}: {e}", day.display()))?;
        }
        let pipeline = gst::Pipeline::with_name(&format!("segment-{camera}"));
        let appsrc = gst_app::AppSrc::builder().name(format!("segment-{camera}-src")).format(gst::Format::Time).build();
        if let Some(caps) = caps {
            appsrc.set_caps(Some(&caps.to_owned()));
        }
        let make =
            |factory: &str| gst::ElementFactory::make(factory).build().map_err(|_| format!("GStreamer element {factory} is not installed"));
        let parse = make("h264parse")?;
        // mp4mux takes length-prefixed H.264 and needs a decode time on every frame.
        let avc = make("capsfilter")?;
        avc.set_property("caps", gst::Caps::builder("video/x-h264").field("stream-format", "avc").field("alignment", "au").build());
        // Cameras passed through send only presentation times; with B-frames (Main/High)
        // those are not in decode order, and mp4mux without decode times loses frames.
        // h264timestamper derives decode times from the SPS's reordering depth.
        let timestamper = make("h264timestamper").map_err(|e| tracing::warn!(camera, "{e}: B-frame cameras record badly")).ok();
        let mux = make("mp4mux")?;
        mux.set_property("fragment-duration", FRAGMENT_MS);
        let sink = make("filesink")?;
        sink.set_property("location", path.to_string_lossy().as_ref());
        sink.set_property("sync", false);
        sink.set_property("async", false);
        let mut chain: Vec<&gst::Element> = vec![appsrc.upcast_ref(), &parse, &avc];
        chain.extend(timestamper.as_ref());
        pipeline.add_many(chain.iter().copied().chain([&mux, &sink])).map_err(|e| e.to_string())?;
        gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
        chain[chain.len() - 1].link_pads(None, &mux, Some("video_%u")).map_err(|e| e.to_string())?;
        mux.link(&sink).map_err(|e| e.to_string())?;
        repair_timestamps(&appsrc, camera);
        let stop = StopOnDrop::new(&pipeline);
        pipeline.set_state(gst::State::Playing).map_err(|_| format!("cannot start writing {}", path.display()))?;
        Ok(Writer { pipeline, appsrc, path, start, stop })
    }
}

/// Fills in presentation times a camera left out (see [`timestamps`]) as frames enter a
/// segment's writer; frames before the first with any time are dropped.
fn repair_timestamps(appsrc: &gst_app::AppSrc, camera: &str) {
    let Some(pad) = appsrc.static_pad("src") else { return };
    let camera = camera.to_owned();
    let repair = std::sync::Mutex::new(timestamps::Repair::default());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer_mut() else { return gst::PadProbeReturn::Ok };
        let ns = |t: Option<gst::ClockTime>| t.map(gst::ClockTime::nseconds);
        let mut repair = repair.lock().expect("repair lock never poisoned");
        match repair.pts(ns(buffer.pts()), ns(buffer.dts()), ns(buffer.duration())) {
            None => return gst::PadProbeReturn::Drop,
            Some((_, timestamps::Source::Kept)) => {}
            Some((pts, how)) => {
                if repair.repaired() == 1 {
                    tracing::info!(camera = %camera, ?how, "the camera sent a frame without a presentation time; filling them in");
                }
                buffer.make_mut().set_pts(gst::ClockTime::from_nseconds(pts));
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Waits for a writer to finish its file, then fsyncs it and announces it.
async fn finish(writer: Writer, bus: Bus, camera: String) {
    let Writer { pipeline, appsrc, path, start, stop } = writer;
    let _ = appsrc.end_of_stream();
    if let Some(gst_bus) = pipeline.bus() {
        let mut messages = gst_bus.stream();
        let wait = async {
            while let Some(msg) = messages.next().await {
                match msg.view() {
                    gst::MessageView::Eos(_) => return,
                    gst::MessageView::Error(e) => {
                        tracing::warn!(camera = %camera, "finishing {}: {}", path.display(), e.error());
                        return;
                    }
                    _ => {}
                }
            }
        };
        if tokio::time::timeout(FINALIZE_TIMEOUT, wait).await.is_err() {
            tracing::warn!(camera = %camera, "{} not finished within {FINALIZE_TIMEOUT:?}; left as partial", path.display());
        }
    }
    let sync_path = path.clone();
    drop(pipeline);
    let synced = tokio::task::spawn_blocking(move || {
        drop(stop);
        storage::sync_file(&sync_path)
    })
    .await;
    if let Ok(Err(e)) = synced {
        tracing::warn!(camera = %camera, "fsync of {}: {e}", path.display());
    }
    bus.publish(Event::SegmentClosed { camera, path, start });
}

/// Decides, frame by frame on the streaming thread, which file each frame goes to.
struct Segmenter {
    root: PathBuf,
    camera: String,
    clock: MediaClock,
    segment: Duration,
    current: Option<Writer>,
    /// Wall-clock time after which the next keyframe starts a new file.
    boundary: Option<DateTime<Utc>>,
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
    failed: bool,
    backlog: Backlog,
    /// Keeps a camera whose clock runs fast or slow on the wall clock, across segments.
    drift: Drift,
}

impl Segmenter {
    fn on_sample(&mut self, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else { return };
        if self.failed {
            return;
        }
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let arrival = self.clock.running_time();
        let (running, sample) = match first_running_time(sample) {
            Some(stamped) => {
                let corrected = gst::ClockTime::from_nseconds(self.drift.correct(stamped.nseconds(), arrival.nseconds()));
                (corrected, shifted(sample, corrected.nseconds() as i64 - stamped.nseconds() as i64))
            }
            None => (arrival, sample.clone()),
        };
        let sample = &sample;
        let wall = self.clock.wall_time(running);
        let due = self.boundary.is_none_or(|b| wall >= b);
        if keyframe && (self.current.is_none() || due) {
            if let Some(old) = self.current.take() {
                let _ = self.reports.send(Report::Finished(old));
            }
            let (path, wall) = layout::new_segment_path(&self.root, &self.camera, wall);
            match Writer::open(path.clone(), wall, sample.caps(), &self.camera) {
                Ok(writer) => {
                    let boundary = next_boundary(wall, self.segment);
                    self.boundary = Some(boundary);
                    if let Some(bus) = writer.pipeline.bus() {
                        let _ = self.reports.send(Report::Opened { path, start: wall, boundary, bus });
                    }
                    self.current = Some(writer);
                }
                Err(e) => {
                    self.failed = true;
                    let _ = self.reports.send(Report::Failed(e));
                    return;
                }
            }
        }
        let Some(writer) = &self.current else { return };
        let queued = writer.appsrc.current_level_bytes();
        match self.backlog.admit(keyframe, queued, WRITER_QUEUE_BYTES) {
            Admission::Write => {}
            Admission::Resume(dropped) => {
                let _ = self.reports.send(Report::CaughtUp { dropped });
            }
            Admission::Drop => return,
            Admission::StartDropping => {
                let _ = self.reports.send(Report::FellBehind { queued });
                return;
            }
        }
        if writer.appsrc.push_sample(sample).is_err() {
            self.failed = true;
            let _ = self.reports.send(Report::Failed(format!("writer for {} stopped", writer.path.display())));
        }
    }

    /// Stops accepting frames and hands over the file being written.
    fn stop(&mut self) -> Option<Writer> {
        self.failed = true;
        self.current.take()
    }
}

/// The recorder's tap on the fan-out: appsrc → appsink, frames handed to the segmenter.
struct Tap {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
}

fn build_tap(camera: &str, clock: &MediaClock, segmenter: Arc<std::sync::Mutex<Segmenter>>) -> Result<Tap, String> {
    let pipeline = gst::Pipeline::with_name(&format!("recorder-{camera}"));
    let appsrc = gst_app::AppSrc::builder().name(format!("recorder-{camera}-src")).build();
    gst_utils::StreamProducer::configure_consumer_with(
        &appsrc,
        gst_utils::streamproducer::ConsumerSettings {
            max_time: gst::ClockTime::from_nseconds(QUEUE_TIME.as_nanos() as u64),
            ..Default::default()
        },
    );
    let sink = gst_app::AppSink::builder().name(format!("recorder-{camera}-frames")).sync(false).build();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                segmenter.lock().expect("segmenter lock never poisoned").on_sample(&sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.add_many([appsrc.upcast_ref(), sink.upcast_ref::<gst::Element>()]).map_err(|e| e.to_string())?;
    appsrc.link(&sink).map_err(|e| e.to_string())?;
    clock.apply(&pipeline);
    Ok(Tap { pipeline, appsrc })
}

/// The wall-clock boundary that ends a segment starting at `start`: the next multiple of
/// `segment` since midnight UTC, skipping one that would make the segment shorter than
/// half its length (or 2 s), so a recording started just before a boundary is not a sliver.
pub fn next_boundary(start: DateTime<Utc>, segment: Duration) -> DateTime<Utc> {
    let seg_ms = segment.as_millis().max(1) as i64;
    let ms = start.timestamp_millis();
    let mut boundary = (ms.div_euclid(seg_ms) + 1) * seg_ms;
    let min_len = (seg_ms / 2).min(2000);
    if boundary - ms < min_len {
        boundary += seg_ms;
    }
    DateTime::from_timestamp_millis(boundary).unwrap_or(start)
}

fn request_keyframe(appsrc: &gst_app::AppSrc) {
    // Pushed from the parser's sink pad, it travels to the appsrc and on to the camera.
    if let Some(pad) = appsrc.static_pad("src").and_then(|p| p.peer()) {
        pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
    }
}

/// Free bytes on the data partition. Read on a blocking thread: statvfs on a card that has
/// stopped answering blocks, and must not take an async worker (HTTP, viewers) with it.
async fn free_bytes(root: &Path) -> Option<u64> {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || storage::disk::usage(&root).ok().map(|d| d.free)).await.ok().flatten()
}

/// Can a segment be written now? `Err` says why not, for the owner. Blocking.
fn writable(root: &Path, camera: &str) -> Result<(), String> {
    let dir = layout::camera_dir(root, camera);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("data folder {} is not writable (data partition not mounted?): {e}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| format!("data folder {} is not writable (data partition not mounted?): {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let disk = storage::disk::usage(root).map_err(|e| format!("cannot read free space of {}: {e}", root.display()))?;
    if disk.free < RESUME_AT_FREE {
        return Err(format!("disk full: {} KiB free on {}", disk.free / 1024, root.display()));
    }
    Ok(())
}

/// The sample with its frame's times moved by `delta_ns` (a drift correction); unchanged
/// when nothing moves or a time would fall before zero.
fn shifted(sample: &gst::Sample, delta_ns: i64) -> gst::Sample {
    let Some(buffer) = sample.buffer().filter(|_| delta_ns != 0) else { return sample.clone() };
    let shift = |t: Option<gst::ClockTime>| t.map(|t| t.nseconds().checked_add_signed(delta_ns).map(gst::ClockTime::from_nseconds));
    let (pts, dts) = (shift(buffer.pts()), shift(buffer.dts()));
    if pts.is_some_and(|t| t.is_none()) || dts.is_some_and(|t| t.is_none()) {
        return sample.clone();
    }
    let mut moved = buffer.copy();
    {
        let moved = moved.make_mut();
        moved.set_pts(pts.flatten());
        moved.set_dts(dts.flatten());
    }
    let caps = sample.caps_owned();
    let mut builder = gst::Sample::builder().buffer(&moved);
    if let Some(caps) = &caps {
        builder = builder.caps(caps);
    }
    if let Some(segment) = sample.segment() {
        builder = builder.segment(segment);
    }
    builder.build()
}

fn first_running_time(sample: &gst::Sample) -> Option<gst::ClockTime> {
    let buffer = sample.buffer()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(buffer.pts().or(buffer.dts())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn switch_requests_name_this_camera_or_every_camera() {
        let ask =
            |action, camera: Option<&str>| Event::ActionRequested { action, camera: camera.map(str::to_owned), origin: "test".into() };
        assert_eq!(switch_request(&ask(Action::RecordingStop, Some("a")), "a", true), Some((false, "test".into())));
        assert_eq!(switch_request(&ask(Action::RecordingStop, Some("b")), "a", true), None, "another camera's");
        assert_eq!(switch_request(&ask(Action::RecordingStart, None), "a", false), Some((true, "test".into())));
        assert_eq!(switch_request(&ask(Action::RecordingToggle, None), "a", true), Some((false, "test".into())));
        assert_eq!(switch_request(&ask(Action::RecordingToggle, None), "a", false), Some((true, "test".into())));
        assert_eq!(switch_request(&ask(Action::Snapshot, Some("a")), "a", true), None, "not a switch");
        assert!(for_every_camera(&ask(Action::RecordingStop, None)));
        assert!(!for_every_camera(&ask(Action::Reboot, None)));
    }

    fn at(h: u32, m: u32, s: u32, ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, h, m, s).unwrap() + chrono::Duration::milliseconds(ms)
    }

    #[test]
    fn a_stalled_disk_drops_frames_from_the_limit_to_a_keyframe_with_room() {
        let mut b = Backlog::default();
        assert_eq!(b.admit(true, 0, 100), Admission::Write);
        assert_eq!(b.admit(false, 100, 100), Admission::Write);
        assert_eq!(b.admit(false, 101, 100), Admission::StartDropping);
        assert_eq!(b.admit(false, 90, 100), Admission::Drop);
        // A keyframe while the queue is still more than half full does not resume.
        assert_eq!(b.admit(true, 60, 100), Admission::Drop);
        // Not on a delta frame either: it would decode from missing pictures.
        assert_eq!(b.admit(false, 0, 100), Admission::Drop);
        assert_eq!(b.admit(true, 50, 100), Admission::Resume(4));
        assert_eq!(b.admit(false, 50, 100), Admission::Write);
    }

    #[test]
    fn segments_end_on_wall_clock_multiples() {
        let minute = Duration::from_secs(60);
        assert_eq!(next_boundary(at(12, 0, 0, 33), minute), at(12, 1, 0, 0));
        assert_eq!(next_boundary(at(12, 0, 17, 0), minute), at(12, 1, 0, 0));
        // Started 1 s before a boundary: run on to the following one.
        assert_eq!(next_boundary(at(12, 0, 59, 0), minute), at(12, 2, 0, 0));
        assert_eq!(next_boundary(at(12, 0, 3, 100), Duration::from_secs(5)), at(12, 0, 10, 0));
        assert_eq!(next_boundary(at(12, 0, 1, 0), Duration::from_secs(5)), at(12, 0, 5, 0));
    }
}
