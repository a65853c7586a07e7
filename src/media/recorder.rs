//! Continuous recording of one camera from its shared H.264 stream (never a second encode).
//!
//! The recorder is one more consumer of the camera's fan-out: appsrc → h264parse →
//! splitmuxsink (mp4mux writing ~1 s fragments, so a file cut off by a crash or power loss
//! plays up to its last complete fragment). Segments start on wall-clock multiples of the
//! configured length: at each boundary a keyframe is requested and splitmuxsink splits there.
//! Finished files are fsynced before `SegmentClosed` is published.
//!
//! It follows the camera's online/offline events: when frames stop, the current segment is
//! closed cleanly (the gap shows in the index) and a new one starts when the camera returns.
//! A full or missing disk pauses recording with the reason and it resumes by itself; nothing
//! here can disturb the live view, which is a separate consumer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use gst::prelude::*;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::config::Camera;
use crate::events::{Bus, Event};
use crate::storage::{self, layout};

use super::MediaClock;
use super::fanout::Fanout;

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

/// Everything a camera's recorder needs.
pub struct Recorder {
    pub camera: Camera,
    pub root: PathBuf,
    pub fanout: Arc<Fanout>,
    pub clock: MediaClock,
    pub bus: Bus,
}

enum Outcome {
    Shutdown,
    CameraOffline,
    Failed(String),
}

impl Recorder {
    /// Records whenever the camera is online, until `shutdown`. `events` must be subscribed
    /// before the camera's supervisor starts, so its first `CameraOnline` is not missed.
    pub async fn run(self, mut events: broadcast::Receiver<Event>, shutdown: CancellationToken) {
        let name = self.camera.name.clone();
        let mut online = false;
        let mut paused_for: Option<String> = None;
        loop {
            if !online {
                match self.wait_event(&mut events, &shutdown, None).await {
                    Some(Event::CameraOnline { .. }) => online = true,
                    Some(_) => {}
                    None => return,
                }
                continue;
            }
            if let Err(reason) = writable(&self.root, &name) {
                if paused_for.as_ref() != Some(&reason) {
                    tracing::warn!(camera = %name, "recording paused: {reason}");
                    self.bus.publish(Event::RecordingPaused { camera: name.clone(), reason: reason.clone() });
                    paused_for = Some(reason);
                }
                match self.wait_event(&mut events, &shutdown, Some(DISK_CHECK_EVERY)).await {
                    Some(Event::CameraWentOffline { .. }) => online = false,
                    Some(_) => {}
                    None => return,
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
                Outcome::Failed(reason) => {
                    tracing::warn!(camera = %name, "recording paused: {reason}");
                    self.bus.publish(Event::RecordingPaused { camera: name.clone(), reason: reason.clone() });
                    paused_for = Some(reason);
                    match self.wait_event(&mut events, &shutdown, Some(DISK_CHECK_EVERY)).await {
                        Some(Event::CameraWentOffline { .. }) => online = false,
                        Some(_) => {}
                        None => return,
                    }
                }
            }
        }
    }

    /// The next event about this camera, or a timeout (`Some` of an unrelated event), or
    /// `None` on shutdown.
    async fn wait_event(
        &self,
        events: &mut broadcast::Receiver<Event>,
        shutdown: &CancellationToken,
        timeout: Option<Duration>,
    ) -> Option<Event> {
        let sleep = tokio::time::sleep(timeout.unwrap_or(Duration::MAX / 4));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = &mut sleep => return Some(Event::RecordingStopped { camera: String::new() }),
                e = events.recv() => match e {
                    Ok(e) if e.camera() == self.camera.name => return Some(e),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    async fn record(&self, events: &mut broadcast::Receiver<Event>, shutdown: &CancellationToken) -> Outcome {
        let name = &self.camera.name;
        let built = match build(&self.camera, &self.root, &self.clock) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(e),
        };
        let guard = Teardown(built.pipeline.clone());
        if built.pipeline.set_state(gst::State::Playing).is_err() {
            return Outcome::Failed("recorder pipeline refused to start".into());
        }
        let consumer = self.fanout.attach(&built.appsrc);
        tracing::info!(camera = %name, "recording");
        self.bus.publish(Event::RecordingStarted { camera: name.clone() });

        let Some(gst_bus) = built.pipeline.bus() else { return Outcome::Failed("recorder has no bus".into()) };
        let mut messages = gst_bus.stream();
        let mut disk_tick = tokio::time::interval(DISK_CHECK_EVERY);
        let mut open: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut next_keyframe: Option<tokio::time::Instant> = None;
        let segment = self.camera.recording.segment;

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
                    Err(RecvError::Closed) => break Outcome::Shutdown,
                    _ => {}
                },
                _ = keyframe_due => {
                    next_keyframe = None;
                    request_keyframe(&built.appsrc);
                }
                _ = disk_tick.tick() => {
                    if let Ok(d) = storage::disk::usage(&self.root) && d.free < PAUSE_BELOW_FREE {
                        break Outcome::Failed(format!("disk full: {} KiB free on {}", d.free / 1024, self.root.display()));
                    }
                }
                msg = messages.next() => {
                    let Some(msg) = msg else { break Outcome::Failed("recorder bus closed".into()) };
                    match msg.view() {
                        gst::MessageView::Error(e) => {
                            let full = storage::disk::usage(&self.root).map(|d| d.free < PAUSE_BELOW_FREE).unwrap_or(false);
                            break Outcome::Failed(if full {
                                format!("disk full while writing to {}", self.root.display())
                            } else {
                                format!("cannot write recording: {}", e.error())
                            });
                        }
                        gst::MessageView::Element(el) => {
                            if let Some(at) = self.on_fragment_message(el.structure(), &built.splitmux, &mut open, segment).await {
                                next_keyframe = Some(at);
                            }
                        }
                        _ => {}
                    }
                }
            }
        };

        // Close the current file cleanly: stop feeding it, end the stream, let the muxer
        // finish, then fsync and announce what it closed.
        self.fanout.detach(consumer);
        let _ = built.appsrc.end_of_stream();
        let deadline = tokio::time::sleep(FINALIZE_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => {
                    tracing::warn!(camera = %name, "muxer did not finish within {FINALIZE_TIMEOUT:?}");
                    break;
                }
                msg = messages.next() => match msg.as_ref().map(|m| m.view()) {
                    Some(gst::MessageView::Eos(_)) | Some(gst::MessageView::Error(_)) | None => break,
                    Some(gst::MessageView::Element(el)) => {
                        self.on_fragment_message(el.structure(), &built.splitmux, &mut open, segment).await;
                    }
                    _ => {}
                },
            }
        }
        // Files the muxer never reported closed (error, timeout) are left as they are: the
        // index lists them as partial, playable up to their last fragment.
        for (location, start) in open.drain() {
            self.bus.publish(Event::SegmentClosed { camera: name.clone(), path: location.into(), start });
        }
        let _ = tokio::task::spawn_blocking(move || drop(guard)).await;
        outcome
    }

    /// Handles splitmuxsink's opened/closed messages; returns when to request the keyframe
    /// that starts the next segment.
    async fn on_fragment_message(
        &self,
        s: Option<&gst::StructureRef>,
        splitmux: &gst::Element,
        open: &mut HashMap<String, DateTime<Utc>>,
        segment: Duration,
    ) -> Option<tokio::time::Instant> {
        let s = s?;
        let location = s.get::<String>("location").ok()?;
        let name = &self.camera.name;
        match s.name().as_str() {
            "splitmuxsink-fragment-opened" => {
                let running = gst::ClockTime::from_nseconds(s.get::<u64>("running-time").ok()?);
                let start = self.clock.wall_time(running);
                open.insert(location.clone(), start);
                self.bus.publish(Event::SegmentOpened { camera: name.clone(), path: location.into(), start });
                let boundary = next_boundary(start, segment);
                let until = (boundary - start).to_std().unwrap_or_default();
                splitmux.emit_by_name::<()>("split-at-running-time", &[&(running + gst::ClockTime::from_nseconds(until.as_nanos() as u64))]);
                Some(tokio::time::Instant::now() + (boundary - Utc::now()).to_std().unwrap_or_default())
            }
            "splitmuxsink-fragment-closed" => {
                let start = open.remove(&location).or_else(|| {
                    Path::new(&location).file_name().and_then(|n| n.to_str()).and_then(layout::parse_segment_name)
                })?;
                let path = PathBuf::from(&location);
                let sync_path = path.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || storage::sync_file(&sync_path)).await {
                    tracing::warn!(camera = %name, "fsync of {location}: {e}");
                }
                self.bus.publish(Event::SegmentClosed { camera: name.clone(), path, start });
                None
            }
            _ => None,
        }
    }
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

/// Can a segment be written now? `Err` says why not, for the owner.
fn writable(root: &Path, camera: &str) -> Result<(), String> {
    let dir = layout::camera_dir(root, camera);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("data folder {} is not writable (data partition not mounted?): {e}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")
        .map_err(|e| format!("data folder {} is not writable (data partition not mounted?): {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let disk = storage::disk::usage(root).map_err(|e| format!("cannot read free space of {}: {e}", root.display()))?;
    if disk.free < RESUME_AT_FREE {
        return Err(format!("disk full: {} KiB free on {}", disk.free / 1024, root.display()));
    }
    Ok(())
}

struct Built {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    splitmux: gst::Element,
}

/// Sets the recorder pipeline to NULL when dropped.
struct Teardown(gst::Pipeline);

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn build(cam: &Camera, root: &Path, clock: &MediaClock) -> Result<Built, String> {
    let name = &cam.name;
    let pipeline = gst::Pipeline::with_name(&format!("recorder-{name}"));
    let appsrc = gst_app::AppSrc::builder().name(format!("recorder-{name}-src")).build();
    gst_utils::StreamProducer::configure_consumer_with(
        &appsrc,
        gst_utils::streamproducer::ConsumerSettings { max_time: QUEUE_TIME.try_into().unwrap_or(gst::ClockTime::from_seconds(4)), ..Default::default() },
    );
    let make = |factory: &str, element_name: String| {
        gst::ElementFactory::make(factory).name(element_name).build().map_err(|_| format!("GStreamer element {factory} is not installed"))
    };
    let parse = make("h264parse", format!("recorder-{name}-parse"))?;
    let mux = make("mp4mux", format!("recorder-{name}-mux"))?;
    mux.set_property("fragment-duration", FRAGMENT_MS);
    let splitmux = make("splitmuxsink", format!("recorder-{name}"))?;
    splitmux.set_property("muxer", &mux);
    splitmux.set_property("send-keyframe-requests", false);
    let (root, camera, names_clock) = (root.to_owned(), name.clone(), clock.clone());
    splitmux.connect("format-location-full", false, move |args| {
        let sample = args.get(2).and_then(|v| v.get::<gst::Sample>().ok());
        let running = sample.as_ref().and_then(first_running_time).unwrap_or_else(|| names_clock.running_time());
        let path = layout::segment_path(&root, &camera, names_clock.wall_time(running));
        if let Some(day) = path.parent() {
            let _ = std::fs::create_dir_all(day);
        }
        Some(path.to_string_lossy().to_string().to_value())
    });
    pipeline.add_many([appsrc.upcast_ref(), &parse, &splitmux]).map_err(|e| e.to_string())?;
    appsrc.link(&parse).map_err(|e| e.to_string())?;
    parse
        .link_pads(Some("src"), &splitmux, Some("video"))
        .map_err(|e| format!("linking recorder: {e}"))?;
    clock.apply(&pipeline);
    Ok(Built { pipeline, appsrc, splitmux })
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

    fn at(h: u32, m: u32, s: u32, ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, h, m, s).unwrap() + chrono::Duration::milliseconds(ms)
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
