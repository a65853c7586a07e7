//! Everything GStreamer: sources, encoders, the per-camera pipeline and fan-out, and the
//! outputs that consume it. Nothing outside this module touches GStreamer.
//!
//! [`Media::start`] spawns one supervisor per camera (`pipeline::supervise`); `web` reaches a
//! camera's outputs through [`Media::camera`].

pub mod devices;
pub mod drift;
pub mod encoder;
pub mod export;
pub mod fanout;
pub mod gop;
pub mod keyframe;
pub mod mse;
pub mod pipeline;
pub mod probe;
pub mod recorder;
pub mod rtsp;
pub mod snapshot;
pub mod source;
pub mod timestamps;
pub mod webrtc;

use std::collections::BTreeMap;
use std::sync::Arc;

use gst::prelude::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Camera, Config};
use crate::events::Bus;

use fanout::Fanout;
use webrtc::ViewerSet;

/// GStreamer could not be initialised (libraries missing or broken).
#[derive(Debug, thiserror::Error)]
#[error("GStreamer failed to initialise: {0}")]
pub struct InitError(String);

/// Initialises GStreamer once; safe to call repeatedly.
pub fn init() -> Result<(), InitError> {
    gst::init().map_err(|e| InitError(e.to_string()))
}

/// Sets a pipeline to NULL when dropped, so no exit path (error, early return, panic) leaves
/// a camera, viewer, recorder or snapshot pipeline running. Every pipeline owner holds one.
pub struct StopOnDrop(Option<gst::Pipeline>);

impl StopOnDrop {
    pub fn new(pipeline: &gst::Pipeline) -> StopOnDrop {
        StopOnDrop(Some(pipeline.clone()))
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            stop(&p);
        }
    }
}

/// Sets a pipeline to NULL, then every element inside it that is still running. An element
/// can outlive its pipeline's stop: webrtcbin's own thread adds RTX/FEC bins and raises them to
/// the parent's state while a viewer that hung up mid-negotiation is torn down; disposing such
/// a bin in PLAYING is a GStreamer CRITICAL (and leaks its threads and sockets). A webrtcbin
/// still gathering ICE candidates is kept alive until it is done (see `webrtc::linger`).
pub fn stop(pipeline: &gst::Pipeline) {
    let _ = pipeline.set_state(gst::State::Null);
    let mut stragglers = Vec::new();
    let mut gathering = Vec::new();
    let mut elements = pipeline.iterate_recurse();
    loop {
        match elements.next() {
            Ok(Some(e)) => {
                if webrtc::linger::gathering(&e) {
                    gathering.push(e.clone());
                }
                if e.current_state() != gst::State::Null {
                    stragglers.push(e);
                }
            }
            Ok(None) => break,
            Err(gst::IteratorError::Resync) => {
                stragglers.clear();
                gathering.clear();
                elements.resync();
            }
            Err(gst::IteratorError::Error) => break,
        }
    }
    for e in stragglers {
        tracing::debug!(pipeline = %pipeline.name(), element = %e.name(), "stopping an element left running");
        let _ = e.set_state(gst::State::Null);
    }
    gathering.into_iter().for_each(webrtc::linger::hold_until_gathered);
}

/// One clock and base time shared by every pipeline, so buffers handed from a camera
/// pipeline to a viewer pipeline keep meaningful timestamps, across camera restarts too.
#[derive(Clone, Debug)]
pub struct MediaClock {
    clock: gst::Clock,
    base: gst::ClockTime,
}

impl MediaClock {
    fn new() -> MediaClock {
        let clock = gst::SystemClock::obtain();
        let base = clock.time();
        MediaClock { clock, base }
    }

    /// Running time now.
    pub fn running_time(&self) -> gst::ClockTime {
        self.clock.time().saturating_sub(self.base)
    }

    /// The wall-clock time at which a running time was (or will be) reached.
    pub fn wall_time(&self, running: gst::ClockTime) -> chrono::DateTime<chrono::Utc> {
        let now = self.running_time();
        let delta = chrono::Duration::nanoseconds(now.nseconds() as i64 - running.nseconds() as i64);
        chrono::Utc::now() - delta
    }

    /// Makes a pipeline run on the shared clock and base time.
    pub fn apply(&self, pipeline: &gst::Pipeline) {
        pipeline.use_clock(Some(&self.clock));
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_base_time(self.base);
    }
}

/// Proof of life from a camera's supervisor, for the systemd watchdog: it beats on every
/// check of the running pipeline and while waiting to retry, and goes silent only when the
/// supervisor is stuck (a pipeline that will not stop, a state change that never returns).
#[derive(Clone)]
pub struct Heartbeat {
    base: std::time::Instant,
    last_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat { base: std::time::Instant::now(), last_ms: Arc::default() }
    }
}

impl Heartbeat {
    /// Records that the supervisor is making progress.
    pub fn beat(&self) {
        self.last_ms.store(self.base.elapsed().as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn silent_for(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

/// A supervisor silent this long is wedged. Above the longest blocking step it takes on
/// purpose (a state change of an RTSP source: a few seconds), far below systemd's patience.
pub const WEDGED_AFTER: std::time::Duration = std::time::Duration::from_secs(15);

/// Longest each step of [`Media::stop`] waits.
const STOP_TIMEOUT: std::time::Duration = pipeline::STOP_TIMEOUT;

/// One camera's shared stream and its outputs.
pub struct CameraMedia {
    pub config: Camera,
    pub heartbeat: Heartbeat,
    pub fanout: Arc<Fanout>,
    pub viewers: Arc<ViewerSet>,
    /// Snapshots decode a frame each; two at a time bounds the CPU a client can demand.
    pub snapshots: tokio::sync::Semaphore,
    /// Stops this camera's supervisor and recorder (a child of the daemon's shutdown).
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What starting a camera needs besides its own config.
struct Shared {
    storage: std::path::PathBuf,
    webrtc: std::sync::RwLock<crate::config::WebRtc>,
    bus: Bus,
    warm: webrtc::WarmUp,
}

/// All cameras, running.
pub struct Media {
    cameras: std::sync::RwLock<BTreeMap<String, Arc<CameraMedia>>>,
    clock: MediaClock,
    shared: Shared,
    shutdown: CancellationToken,
}

impl Media {
    /// Starts every camera's supervisor. Cameras that cannot start are reported offline and
    /// retried; only a broken GStreamer installation is an error here.
    pub fn start(config: &Config, bus: &Bus) -> Result<Media, InitError> {
        init()?;
        // The first webrtcbin of a process loads plugins and makes its DTLS certificate
        // (~230 ms measured here, far longer on a first boot under emulation); do it now
        // rather than in the first viewer's join, which waits for it knowingly.
        let warm = webrtc::warm_up();
        let shared =
            Shared { storage: config.storage.path.clone(), webrtc: std::sync::RwLock::new(config.webrtc.clone()), bus: bus.clone(), warm };
        let media = Media { cameras: Default::default(), clock: MediaClock::new(), shared, shutdown: CancellationToken::new() };
        for cam in &config.cameras {
            media.start_camera(cam);
        }
        Ok(media)
    }

    /// Starts one camera: its supervisor, its recorder (when it records) and its viewer set.
    fn start_camera(&self, cam: &Camera) {
        let Shared { storage, webrtc: webrtc_config, bus, warm } = &self.shared;
        let (clock, stop, tasks) = (self.clock.clone(), self.shutdown.child_token(), TaskTracker::new());
        let fanout = Arc::new(Fanout::new(&cam.name));
        let webrtc_config = webrtc_config.read().expect("webrtc lock never poisoned").clone();
        let viewers = Arc::new(ViewerSet::new(&cam.name, fanout.clone(), clock.clone(), &webrtc_config, bus.clone(), warm.clone()));
        if cam.recording.enabled {
            let recorder = recorder::Recorder {
                camera: cam.clone(),
                root: storage.clone(),
                fanout: fanout.clone(),
                clock: clock.clone(),
                bus: bus.clone(),
            };
            // Subscribed before the supervisor exists, so the first CameraOnline is seen.
            tasks.spawn(recorder.run(bus.subscribe(), stop.clone()));
        }
        let heartbeat = Heartbeat::default();
        let supervisor =
            pipeline::Supervisor { cam: cam.clone(), fanout: fanout.clone(), clock, bus: bus.clone(), heartbeat: heartbeat.clone() };
        tasks.spawn(supervisor.run(stop.clone()));
        let camera =
            CameraMedia { config: cam.clone(), heartbeat, fanout, viewers, snapshots: tokio::sync::Semaphore::new(2), stop, tasks };
        self.cameras.write().expect("cameras lock never poisoned").insert(cam.name.clone(), Arc::new(camera));
    }

    /// Brings the running cameras in line with `cameras`: those named in `restart` and those
    /// no longer configured stop (viewers ended, recordings finished), new and restarted
    /// ones start. Every other camera, and its viewers, is left alone.
    pub async fn apply(&self, cameras: &[Camera], restart: &[String]) {
        let running: Vec<Arc<CameraMedia>> = self.cameras();
        for cam in running {
            let name = &cam.config.name;
            if restart.contains(name) || !cameras.iter().any(|c| &c.name == name) {
                self.cameras.write().expect("cameras lock never poisoned").remove(name);
                stop_camera(&cam).await;
            }
        }
        for cam in cameras {
            if self.camera(&cam.name).is_none() {
                self.start_camera(cam);
            }
        }
    }

    /// New `[webrtc]` settings for viewers that join from now on, on every camera.
    pub fn reconfigure_webrtc(&self, w: &crate::config::WebRtc) {
        *self.shared.webrtc.write().expect("webrtc lock never poisoned") = w.clone();
        for cam in self.cameras() {
            cam.viewers.reconfigure(w);
        }
    }

    /// A camera by URL name.
    pub fn camera(&self, name: &str) -> Option<Arc<CameraMedia>> {
        self.cameras.read().expect("cameras lock never poisoned").get(name).cloned()
    }

    /// Every camera, in name order.
    pub fn cameras(&self) -> Vec<Arc<CameraMedia>> {
        self.cameras.read().expect("cameras lock never poisoned").values().cloned().collect()
    }

    /// Why the media side is stuck, if it is: a camera supervisor silent for [`WEDGED_AFTER`].
    pub fn wedged(&self) -> Option<String> {
        self.cameras().iter().find_map(|cam| {
            let silent = cam.heartbeat.silent_for();
            (silent > WEDGED_AFTER)
                .then(|| format!("camera {}: pipeline wedged (supervisor silent for {}s)", cam.config.name, silent.as_secs()))
        })
    }

    /// The clock every pipeline runs on, for outputs built on demand (snapshots).
    pub fn clock(&self) -> &MediaClock {
        &self.clock
    }

    /// Ends every viewer, finishes recordings, stops every camera pipeline, and waits, within
    /// a bound: whatever a source or a disk is blocked in, the daemon still stops.
    pub async fn stop(&self) {
        let cameras = self.cameras();
        let viewers = futures::future::join_all(cameras.iter().map(|cam| cam.viewers.close()));
        if tokio::time::timeout(STOP_TIMEOUT, viewers).await.is_err() {
            tracing::error!("viewer pipelines did not stop within {}s; stopping without them", STOP_TIMEOUT.as_secs());
        }
        self.shutdown.cancel();
        // Each camera bounds its own stop (pipeline::STOP_TIMEOUT) and a segment's finish is
        // bounded too; this catches anything else, such as an fsync on a card that hangs.
        let all = futures::future::join_all(cameras.iter().map(|cam| {
            cam.tasks.close();
            cam.tasks.wait()
        }));
        if tokio::time::timeout(STOP_TIMEOUT * 3, all).await.is_err() {
            tracing::error!("cameras or recorders did not stop within {}s; stopping without them", (STOP_TIMEOUT * 3).as_secs());
        }
    }
}

/// Stops one camera: its viewers, its recorder (finishing the file) and its pipeline.
async fn stop_camera(cam: &CameraMedia) {
    let name = &cam.config.name;
    if tokio::time::timeout(STOP_TIMEOUT, cam.viewers.close()).await.is_err() {
        tracing::error!(camera = %name, "viewer pipelines did not stop within {}s", STOP_TIMEOUT.as_secs());
    }
    cam.stop.cancel();
    cam.tasks.close();
    if tokio::time::timeout(STOP_TIMEOUT * 3, cam.tasks.wait()).await.is_err() {
        tracing::error!(camera = %name, "camera or recorder did not stop within {}s", (STOP_TIMEOUT * 3).as_secs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_element_left_running_after_its_pipeline_stopped_is_stopped_too() {
        init().unwrap();
        let pipeline = gst::Pipeline::new();
        let inner = gst::Bin::new();
        let src = gst::ElementFactory::make("fakesrc").build().unwrap();
        let sink = gst::ElementFactory::make("fakesink").build().unwrap();
        inner.add_many([&src, &sink]).unwrap();
        src.link(&sink).unwrap();
        pipeline.add(&inner).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        // What a raise by another thread during the stop leaves behind: a child the pipeline's
        // own state change skips.
        inner.set_locked_state(true);
        drop(StopOnDrop::new(&pipeline));
        assert_eq!(inner.current_state(), gst::State::Null);
        assert_eq!(src.current_state(), gst::State::Null);
    }
}
