//! JPEG snapshots of a camera's current picture, made on demand from the shared stream.
//!
//! A snapshot is a short-lived consumer of the fan-out: appsrc → h264parse → decoder →
//! scale → JPEG encoder → appsink. It starts at a keyframe (requested on attach, through the
//! same limiter as viewers) and is detached after one picture, so it works with no viewer and
//! never touches the camera pipeline. Hardware decode/JPEG (the Pi's V4L2 M2M elements) are
//! used when GStreamer registered them, which it does only when the devices exist.

use std::time::Duration;

use gst::prelude::*;
use tokio::sync::oneshot;

use super::fanout::Fanout;
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
    let (decoder, encoder) = chain(|e| gst::ElementFactory::find(e).is_some());
    let scale = match width {
        Some(w) => format!("video/x-raw,width={w},pixel-aspect-ratio=1/1"),
        None => "video/x-raw,pixel-aspect-ratio=1/1".to_string(),
    };
    let quality = if encoder == "jpegenc" { format!(" quality={JPEG_QUALITY}") } else { String::new() };
    let description = format!(
        "appsrc name=src ! h264parse ! {decoder} ! videoconvert ! videoscale ! capsfilter caps=\"{scale}\" \
         ! videoconvert ! {encoder}{quality} ! appsink name=jpeg sync=false max-buffers=1 drop=true"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| SnapshotError::Pipeline(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| SnapshotError::Pipeline("not a pipeline".into()))?;
    let appsrc = pipeline.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
    let appsink = pipeline.by_name("jpeg").and_then(|e| e.downcast::<gst_app::AppSink>().ok());
    let (Some(appsrc), Some(appsink)) = (appsrc, appsink) else {
        return Err(SnapshotError::Pipeline("internal: snapshot elements missing".into()));
    };
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
