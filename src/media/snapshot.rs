//! JPEG snapshots of a camera's current picture, made on demand from the shared stream.
//!
//! Normally the fan-out's cached GOP (every frame since the last keyframe) is decoded in a
//! pipeline of its own: appsrc → decoder → scale → JPEG encoder → appsink, where only the
//! newest decoded picture passes on to be scaled and encoded. Nothing is
//! asked of the camera, so polling snapshots costs viewers no keyframes, and a passed-through
//! camera with a long GOP answers as fast as an encoded one.
//!
//! Before the first keyframe (or with a GOP too big to cache) a snapshot is instead a
//! short-lived consumer of the fan-out that starts at a requested keyframe. Either way it
//! works with no viewer and never touches the camera pipeline. Hardware decode/JPEG (the
//! Pi's V4L2 M2M elements) are used when GStreamer registered them, which it does only when
//! the devices exist.

use std::time::Duration;

use gst::prelude::*;
use tokio::sync::oneshot;

use super::fanout::Fanout;
use super::gop::Gop;
use super::{MediaClock, StopOnDrop};

/// A keyframe arrives within 300 ms (the keyframe limiter's window) plus a frame; decoding
/// one picture takes milliseconds. Three seconds means the camera is not delivering.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(3);
/// JPEG quality: 85 is visually clean at a third of the size of 95.
const JPEG_QUALITY: i32 = 85;

/// Why no snapshot could be made.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no picture within {}s: the camera is not delivering frames", CAPTURE_TIMEOUT.as_secs())]
    Timeout,
    #[error("snapshot pipeline: {0}")]
    Pipeline(String),
}

/// The decoder and JPEG encoder to use, given which element factories exist.
pub fn chain(has: impl Fn(&str) -> bool) -> (&'static str, &'static str) {
    let decoder = ["v4l2h264dec", "avdec_h264", "openh264dec"].into_iter().find(|e| has(e)).unwrap_or("avdec_h264");
    let encoder = if has("v4l2jpegenc") { "v4l2jpegenc" } else { "jpegenc" };
    (decoder, encoder)
}

/// One JPEG of the camera's current picture, `width` pixels wide if given (height keeps the
/// aspect ratio).
pub async fn capture(fanout: &Fanout, clock: &MediaClock, width: Option<u32>) -> Result<Vec<u8>, SnapshotError> {
    if let Some(gop) = fanout.current_gop() {
        let decoded = tokio::task::spawn_blocking(move || from_gop(gop, width)).await;
        match decoded {
            Ok(Ok(jpeg)) => return Ok(jpeg),
            Ok(Err(e)) => tracing::warn!("snapshot from the cached GOP failed, waiting for a keyframe instead: {e}"),
            Err(e) => tracing::warn!("snapshot from the cached GOP failed, waiting for a keyframe instead: {e}"),
        }
    }
    from_next_keyframe(fanout, clock, width).await
}

/// The decode → scale → JPEG part of a snapshot pipeline, after `head`.
fn describe(head: &str, width: Option<u32>) -> String {
    let (decoder, encoder) = chain(|e| gst::ElementFactory::find(e).is_some());
    let scale = match width {
        Some(w) => format!("video/x-raw,width={w},pixel-aspect-ratio=1/1"),
        None => "video/x-raw,pixel-aspect-ratio=1/1".to_string(),
    };
    let quality = if encoder == "jpegenc" { format!(" quality={JPEG_QUALITY}") } else { String::new() };
    format!(
        "{head} ! {decoder} name=dec ! videoconvert ! videoscale ! capsfilter caps=\"{scale}\" \
         ! videoconvert ! {encoder}{quality} ! appsink name=jpeg sync=false max-buffers=1 drop=true wait-on-eos=false"
    )
}

fn snapshot_pipeline(description: &str) -> Result<(gst::Pipeline, gst_app::AppSrc, gst_app::AppSink), SnapshotError> {
    let pipeline = gst::parse::launch(description)
        .map_err(|e| SnapshotError::Pipeline(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| SnapshotError::Pipeline("not a pipeline".into()))?;
    let appsrc = pipeline.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
    let appsink = pipeline.by_name("jpeg").and_then(|e| e.downcast::<gst_app::AppSink>().ok());
    match (appsrc, appsink) {
        (Some(appsrc), Some(appsink)) => Ok((pipeline, appsrc, appsink)),
        _ => Err(SnapshotError::Pipeline("internal: snapshot elements missing".into())),
    }
}

/// Decodes a cached GOP and encodes its last picture. Blocking.
fn from_gop(gop: Gop<gst::Buffer, super::fanout::Format>, width: Option<u32>) -> Result<Vec<u8>, SnapshotError> {
    let (pipeline, appsrc, appsink) = snapshot_pipeline(&describe("appsrc name=src format=time", width))?;
    appsrc.set_caps(Some(&gop.format.caps));
    // Every frame is decoded (each depends on the one before), but only the newest picture
    // goes on to be scaled and encoded. (Decoders here ignore decode-only input flags.)
    let newest = gop.frames.last().and_then(|b| b.pts());
    let total = gop.frames.len() as u32;
    let decoded = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    if let Some(pad) = pipeline.by_name("dec").and_then(|d| d.static_pad("src")) {
        let decoded = decoded.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let n = decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let pts = info.buffer().and_then(|b| b.pts());
            let is_newest = match newest {
                Some(_) => pts == newest,
                None => n == total,
            };
            if is_newest { gst::PadProbeReturn::Ok } else { gst::PadProbeReturn::Drop }
        });
    }
    let _stop = StopOnDrop::new(&pipeline);
    pipeline.set_state(gst::State::Playing).map_err(|_| SnapshotError::Pipeline("refused to start".into()))?;
    let started = std::time::Instant::now();
    for frame in gop.frames {
        appsrc.push_buffer(frame).map_err(|e| SnapshotError::Pipeline(format!("decoder stopped: {e:?}")))?;
    }
    let _ = appsrc.end_of_stream();
    let bus = pipeline.bus().ok_or_else(|| SnapshotError::Pipeline("no bus".into()))?;
    let done = bus.timed_pop_filtered(
        gst::ClockTime::from_nseconds(CAPTURE_TIMEOUT.as_nanos() as u64),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    if let Some(msg) = &done
        && let gst::MessageView::Error(e) = msg.view()
    {
        return Err(SnapshotError::Pipeline(e.error().to_string()));
    }
    // The newest picture: the sink keeps only the last one.
    let sample = appsink.try_pull_sample(gst::ClockTime::ZERO).ok_or(SnapshotError::Timeout)?;
    tracing::debug!(frames = total, took_ms = started.elapsed().as_millis() as u64, "snapshot decoded from the cached GOP");
    sample.buffer().and_then(|b| b.map_readable().ok().map(|m| m.to_vec())).ok_or_else(|| SnapshotError::Pipeline("empty picture".into()))
}

/// Attaches to the live stream and encodes the first picture, from a requested keyframe.
async fn from_next_keyframe(fanout: &Fanout, clock: &MediaClock, width: Option<u32>) -> Result<Vec<u8>, SnapshotError> {
    let (pipeline, appsrc, appsink) = snapshot_pipeline(&describe("appsrc name=src ! h264parse", width))?;
    gst_utils::StreamProducer::configure_consumer(&appsrc);
    let (tx, rx) = oneshot::channel::<Vec<u8>>();
    let tx = std::sync::Mutex::new(Some(tx));
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let bytes = sample.buffer().and_then(|b| b.map_readable().ok().map(|m| m.to_vec()));
                if let (Some(bytes), Some(tx)) = (bytes, tx.lock().ok().and_then(|mut t| t.take())) {
                    let _ = tx.send(bytes);
                }
                Err(gst::FlowError::Eos)
            })
            .build(),
    );
    clock.apply(&pipeline);
    let stop = StopOnDrop::new(&pipeline);
    pipeline.set_state(gst::State::Playing).map_err(|_| SnapshotError::Pipeline("refused to start".into()))?;
    let consumer = fanout.attach(&appsrc);
    let result = tokio::time::timeout(CAPTURE_TIMEOUT, rx).await;
    fanout.detach(consumer);
    let _ = tokio::task::spawn_blocking(move || drop(stop)).await;
    match result {
        Ok(Ok(jpeg)) => Ok(jpeg),
        _ => Err(SnapshotError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[test]
    fn hardware_elements_are_preferred_when_registered() {
        let pi = ["v4l2h264dec", "v4l2jpegenc", "avdec_h264", "jpegenc"];
        assert_eq!(chain(|e| pi.contains(&e)), ("v4l2h264dec", "v4l2jpegenc"));
        let pc = ["avdec_h264", "openh264dec", "jpegenc"];
        assert_eq!(chain(|e| pc.contains(&e)), ("avdec_h264", "jpegenc"));
        let minimal = ["openh264dec", "jpegenc"];
        assert_eq!(chain(|e| minimal.contains(&e)), ("openh264dec", "jpegenc"));
    }
}
