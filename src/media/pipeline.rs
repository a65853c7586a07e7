//! One camera's pipeline (source → encoder → appsink) and the supervisor that keeps it alive.
//!
//! The supervisor plans the source and encoder on a fresh [`Machine`] probe each attempt (a
//! camera plugged in later is found), starts the pipeline, and watches frames arriving rather
//! than trusting elements to report errors: no frame within `START_TIMEOUT`, or none for the
//! camera's `stall_timeout`, is a fault like a bus error or EOS. A fault tears the pipeline
//! down, reports the camera offline with the reason, waits per [`Backoff`] and starts again.
//! Consumers stay attached to the [`Fanout`] throughout and resume by themselves.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gst::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::config::Camera;
use crate::events::{Bus, Event};

use super::encoder::{self, Encoder, EncoderPlan};
use super::fanout::{Fanout, Taps};
use super::probe::Machine;
use super::source::{self, Output};
use super::{Heartbeat, MediaClock, StopOnDrop};
use crate::retry::{self, Backoff};

/// A source that has not produced a frame this long after starting is considered failed.
/// RTSP cameras need a TCP connect, DESCRIBE and a keyframe: 10 s covers slow ones.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often frames arriving is checked; bounds how late a stall is noticed.
const WATCH_TICK: Duration = Duration::from_millis(250);
/// How often measured fps and bitrate are published.
const STATS_EVERY: Duration = Duration::from_secs(2);

/// A built, not yet playing, camera pipeline.
struct Built {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    source: String,
    encoder: EncoderPlan,
}

fn build(cam: &Camera, machine: &Machine, clock: &MediaClock) -> Result<Built, String> {
    let plan = source::plan(cam, machine).map_err(|e| e.to_string())?;
    let source_bin = source_bin(&caps_at_end_as_filter(&plan.launch(cam.fps))).map_err(|e| format!("source {}: {e}", plan.describe()))?;
    source_bin.set_property("name", format!("source-{}", cam.name));
    let output = match plan.output() {
        Output::Unknown => probe_output(&source_bin)?,
        known => known,
    };
    let encoder = match output {
        Output::H264 => EncoderPlan { encoder: Encoder::Passthrough, reason: "source delivers H.264".into() },
        _ => encoder::choose(cam, machine).map_err(|e| e.to_string())?,
    };
    let (w, h) = plan.size().unwrap_or((cam.width, cam.height));
    let fps = cam.fps;
    let encode = encoder.encoder.launch(cam, w, h, fps);
    // The appsink's `sync` is turned off by the fan-out (`StreamProducer::with`), tested there.
    let tail = format!(
        "{encode}{sep}h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=fanout-{name} max-buffers=2",
        sep = if encode.is_empty() { "" } else { " ! " },
        name = cam.name,
    );
    let tail_bin = gst::parse::bin_from_description(&tail, true).map_err(|e| format!("encoder {}: {e}", encoder.encoder.name()))?;
    tail_bin.set_property("name", format!("encoder-{}", cam.name));
    let appsink = tail_bin
        .by_name(&format!("fanout-{}", cam.name))
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("internal: appsink missing from encoder bin")?;

    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", cam.name));
    pipeline.add_many([source_bin.upcast_ref::<gst::Element>(), tail_bin.upcast_ref()]).map_err(|e| e.to_string())?;
    source_bin.link(&tail_bin).map_err(|_| format!("{} cannot feed the {} encoder", plan.describe(), encoder.encoder.name()))?;
    clock.apply(&pipeline);
    Ok(Built { pipeline, appsink, source: plan.describe(), encoder })
}

/// The source fragment in a bin whose only output is a small queue: capture runs in its own
/// thread and never waits on the encoder, and pads that appear later (rtspsrc, decodebin)
/// still link, which ghosting every unlinked pad at parse time would prevent.
fn source_bin(fragment: &str) -> Result<gst::Bin, String> {
    let description = format!("{fragment} ! queue name=source-out max-size-buffers=4 max-size-bytes=0 max-size-time=0");
    let bin = gst::parse::bin_from_description(&description, false).map_err(|e| e.to_string())?;
    let out = bin.by_name("source-out").and_then(|q| q.static_pad("src")).ok_or("internal: source queue missing")?;
    let ghost = gst::GhostPad::builder_with_target(&out).map_err(|e| e.to_string())?.name("src").build();
    bin.add_pad(&ghost).map_err(|e| e.to_string())?;
    Ok(bin)
}

/// gst-launch syntax reads a caps string only between two elements; a fragment that ends in
/// one (`videotestsrc ! video/x-raw,width=640`) gets it turned into an explicit capsfilter.
fn caps_at_end_as_filter(fragment: &str) -> String {
    let (head, last) = fragment.rsplit_once('!').map_or(("", fragment), |(h, l)| (h, l));
    let last = last.trim();
    let media_type = last.split([',', ' ']).next().unwrap_or("");
    let is_caps = media_type
        .split_once('/')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && a.chars().all(|c| c.is_ascii_lowercase()) && !a.contains('='));
    if !is_caps || last.contains('"') {
        return fragment.to_owned();
    }
    let sep = if head.is_empty() { "" } else { "! " };
    format!("{head}{sep}capsfilter caps=\"{last}\"")
}

/// For a user pipeline: does it end in raw video or H.264?
fn probe_output(bin: &gst::Bin) -> Result<Output, String> {
    let pad = bin.static_pad("src").ok_or("custom pipeline has no unlinked video output")?;
    let caps = pad.query_caps(None);
    let names: Vec<&str> = caps.iter().map(|s| s.name().as_str()).collect();
    if !names.is_empty() && names.iter().all(|n| *n == "video/x-h264") {
        Ok(Output::H264)
    } else if names.contains(&"video/x-raw") {
        Ok(Output::Raw)
    } else {
        Err(format!("custom pipeline must end in raw or H.264 video, it ends in {caps}"))
    }
}

/// How a running pipeline ended.
enum Ended {
    Shutdown,
    Fault(String),
}

/// What one camera's supervisor needs.
pub struct Supervisor {
    pub cam: Camera,
    pub fanout: Arc<Fanout>,
    pub clock: MediaClock,
    pub bus: Bus,
    pub heartbeat: Heartbeat,
}

impl Supervisor {
    /// Keeps the camera running until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = match self.cam.source {
            crate::config::SourceSpec::Rtsp(_) => Backoff::with_max(retry::NETWORK_MAX_DELAY),
            _ => Backoff::default(),
        };
        let mut restarts = 0u64;
        loop {
            self.heartbeat.beat();
            let probing = tokio::task::spawn_blocking(Machine::probe);
            let machine = tokio::select! {
                probed = probing => probed.unwrap_or_else(|e| {
                    tracing::error!(camera = %self.cam.name, "probing cameras and encoders failed, trying with none found: {e}");
                    Machine::default()
                }),
                // A probe stuck in a driver is left behind; the stop must not wait for it.
                _ = shutdown.cancelled() => return,
            };
            let Some(delay) = self.attempt(&machine, &mut backoff, &mut restarts, &shutdown).await else { return };
            let retry_at = tokio::time::Instant::now() + delay;
            let mut tick = tokio::time::interval(WATCH_TICK);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(retry_at) => break,
                    _ = tick.tick() => self.heartbeat.beat(),
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }

    /// Builds, starts and watches the camera's pipeline once. Returns how long to wait before
    /// the next attempt, or `None` at shutdown.
    async fn attempt(
        &self,
        machine: &Machine,
        backoff: &mut Backoff,
        restarts: &mut u64,
        shutdown: &CancellationToken,
    ) -> Option<Duration> {
        let Supervisor { cam, fanout, clock, .. } = self;
        let built = match build(cam, machine, clock) {
            Ok(built) => built,
            Err(reason) => return Some(self.went_offline(reason, backoff, restarts)),
        };
        tracing::info!(camera = %cam.name, source = %built.source, encoder = built.encoder.encoder.name(),
            reason = %built.encoder.reason, "starting camera");
        let taps = fanout.set_producer(&built.appsink, built.encoder.encoder != Encoder::Passthrough);
        let running = StopOnDrop::new(&built.pipeline);
        // Starting opens the source, which can block for good (a FIFO without a writer, a
        // hung driver): off the async threads, and given up on at stop.
        let starting = built.pipeline.clone();
        let mut start = tokio::task::spawn_blocking(move || starting.set_state(gst::State::Playing));
        let stuck = tokio::time::sleep(START_TIMEOUT);
        tokio::pin!(stuck);
        let mut said_stuck = false;
        let started = loop {
            tokio::select! {
                started = &mut start => break started,
                // Nothing can be retried while the state change holds the pipeline, and the
                // silent heartbeat lets the watchdog act; the owner at least sees why.
                _ = &mut stuck, if !said_stuck => {
                    said_stuck = true;
                    let reason = format!("stuck opening {} for over {}s", built.source, START_TIMEOUT.as_secs());
                    tracing::warn!(camera = %cam.name, "camera offline: {reason}");
                    self.bus.publish(Event::CameraWentOffline { camera: cam.name.clone(), reason, retry_in_ms: 0 });
                }
                _ = shutdown.cancelled() => {
                    fanout.clear_producer();
                    tracing::error!(camera = %cam.name, source = %built.source,
                        "camera is stuck starting its source (blocked opening it); stopping without it");
                    // Stopping would wait on the same blocked state change: not here.
                    tokio::task::spawn_blocking(move || drop(running));
                    return None;
                }
            }
        };
        let ended = match started {
            Ok(Ok(_)) => self.watch(&built, &taps, backoff, *restarts, shutdown).await,
            _ => Ended::Fault(first_error(&built.pipeline).unwrap_or_else(|| "pipeline refused to start".into())),
        };
        fanout.clear_producer();
        // Reported before stopping: a pipeline that will not stop (its source stuck in a read)
        // still shows offline, with the reason.
        let delay = match ended {
            Ended::Fault(reason) => Some(self.went_offline(reason, backoff, restarts)),
            Ended::Shutdown => None,
        };
        if !stop_pipeline(&cam.name, running, shutdown).await {
            return None;
        }
        delay
    }

    /// Logs and publishes a fault; returns the wait before the next attempt.
    fn went_offline(&self, reason: String, backoff: &mut Backoff, restarts: &mut u64) -> Duration {
        let delay = backoff.on_failure(Instant::now());
        *restarts += 1;
        tracing::warn!(camera = %self.cam.name, retry_in = ?delay, "camera offline: {reason}");
        self.bus.publish(Event::CameraWentOffline { camera: self.cam.name.clone(), reason, retry_in_ms: delay.as_millis() as u64 });
        delay
    }
}

/// Longest a camera's pipeline may take to stop once the daemon is stopping. One whose source
/// is blocked (a read or open that never returns) is left behind, named in the log, so a stop
/// (SIGTERM, reboot) finishes within a bound whatever the camera is doing.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Stops a camera pipeline off the async threads. Outside a shutdown it waits as long as it
/// takes: one stuck in a read that never returns wedges the supervisor here, and its silent
/// heartbeat stops the watchdog pings. False when the daemon is stopping (the caller returns).
async fn stop_pipeline(camera: &str, running: StopOnDrop, shutdown: &CancellationToken) -> bool {
    let mut stopping = tokio::task::spawn_blocking(move || drop(running));
    tokio::select! {
        _ = &mut stopping => !shutdown.is_cancelled(),
        _ = shutdown.cancelled() => {
            if tokio::time::timeout(STOP_TIMEOUT, stopping).await.is_err() {
                tracing::error!(camera = %camera, "camera pipeline did not stop within {}s (its source is blocked); stopping without it",
                    STOP_TIMEOUT.as_secs());
            }
            false
        }
    }
}

/// The first error message waiting on a pipeline's bus, for a refused state change.
fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(describe_error(&msg, e));
        }
    }
    None
}

fn describe_error(msg: &gst::Message, e: &gst::message::Error) -> String {
    let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
    // An element's message may quote its URL: credentials stay out of logs and the API.
    crate::config::source_redacted(&format!("{src}: {}", e.error()))
}

impl Supervisor {
    /// Watches a running camera pipeline until it faults or `shutdown`, publishing its state.
    async fn watch(&self, built: &Built, taps: &Taps, backoff: &mut Backoff, restarts: u64, shutdown: &CancellationToken) -> Ended {
        let Supervisor { cam, bus, heartbeat, fanout, .. } = self;
        let Some(gst_bus) = built.pipeline.bus() else { return Ended::Fault("pipeline has no bus".into()) };
        let mut messages = gst_bus.stream();
        let mut tick = tokio::time::interval(WATCH_TICK);
        let started = Instant::now();
        let mut online = false;
        let mut last_stats = (Instant::now(), 0u64, 0u64);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                msg = messages.next() => match msg.as_ref().map(|m| m.view()) {
                    Some(gst::MessageView::Error(e)) => return Ended::Fault(describe_error(msg.as_ref().expect("matched Some"), e)),
                    Some(gst::MessageView::Eos(_)) => return Ended::Fault("source ended the stream".into()),
                    None => return Ended::Fault("pipeline bus closed".into()),
                    _ => {}
                },
                _ = tick.tick() => {
                    heartbeat.beat();
                    let now = Instant::now();
                    match (online, taps.last_frame()) {
                        (false, Some(_)) => {
                            online = true;
                            backoff.on_running(now);
                            let (width, height) = frame_size(&built.appsink).unwrap_or((cam.width, cam.height));
                            tracing::info!(camera = %cam.name, width, height, "camera online");
                            bus.publish(Event::CameraOnline {
                                camera: cam.name.clone(),
                                source: built.source.clone(),
                                encoder: built.encoder.encoder.name().into(),
                                encoder_reason: built.encoder.reason.clone(),
                                width,
                                height,
                            });
                        }
                        (false, None) if now.duration_since(started) > START_TIMEOUT => {
                            return Ended::Fault(format!("no frames within {}s of starting {}", START_TIMEOUT.as_secs(), built.source));
                        }
                        (true, Some(last)) if now.duration_since(last) > cam.stall_timeout => {
                            return Ended::Fault(format!("no frames for {:.1}s: camera stalled or disconnected", now.duration_since(last).as_secs_f64()));
                        }
                        _ => {}
                    }
                    if online && now.duration_since(last_stats.0) >= STATS_EVERY {
                        let frames = taps.frames.load(Ordering::Relaxed);
                        let bytes = taps.bytes.load(Ordering::Relaxed);
                        let secs = now.duration_since(last_stats.0).as_secs_f64();
                        bus.publish(Event::CameraStats {
                            camera: cam.name.clone(),
                            fps: ((frames - last_stats.1) as f64 / secs * 10.0).round() / 10.0,
                            bitrate_kbps: ((bytes - last_stats.2) as f64 * 8.0 / 1000.0 / secs).round(),
                            restarts,
                            dropped_frames: fanout.dropped_total(),
                        });
                        last_stats = (now, frames, bytes);
                    }
                }
            }
        }
    }
}

fn frame_size(appsink: &gst_app::AppSink) -> Option<(u32, u32)> {
    let caps = appsink.static_pad("sink")?.current_caps()?;
    let s = caps.structure(0)?;
    Some((s.get::<i32>("width").ok()? as u32, s.get::<i32>("height").ok()? as u32))
}

#[cfg(test)]
mod tests {
    use super::caps_at_end_as_filter;

    #[test]
    fn trailing_caps_become_a_capsfilter() {
        assert_eq!(
            caps_at_end_as_filter("videotestsrc ! video/x-raw,width=640"),
            "videotestsrc ! capsfilter caps=\"video/x-raw,width=640\""
        );
        assert_eq!(caps_at_end_as_filter("v4l2src ! h264parse"), "v4l2src ! h264parse");
        assert_eq!(caps_at_end_as_filter("rtspsrc location=\"rtsp://a/b\""), "rtspsrc location=\"rtsp://a/b\"");
    }
}
