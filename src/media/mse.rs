//! Live view as fragmented MP4 for Media Source Extensions players: browsers whose WebRTC
//! stack has no H.264 (Firefox without Cisco's OpenH264 plugin, offline or on a fresh
//! profile) still decode H.264 in MSE. The same shared stream, no second encode: one more
//! fan-out consumer remuxing into one-frame fragments (appsrc → h264parse → mp4mux → appsink).

use tokio::sync::mpsc;

use gst::prelude::*;

use super::fanout::{ConsumerId, Fanout};
use super::{MediaClock, StopOnDrop};

/// Chunks in flight to a slow client before its stream stalls (then its own fan-out queue,
/// not the camera, drops frames).
const CHANNEL_CHUNKS: usize = 64;

/// A running MSE stream: an init segment followed by one fragment per frame.
pub struct MseStream<'a> {
    fanout: &'a Fanout,
    consumer: ConsumerId,
    _stop: StopOnDrop,
    /// Chunks of fMP4, in order; the first ones hold `ftyp` and `moov`.
    pub chunks: mpsc::Receiver<Vec<u8>>,
}

impl Drop for MseStream<'_> {
    fn drop(&mut self) {
        self.fanout.detach(self.consumer);
        // The muxer's thread may be blocked handing over a chunk to a full channel: closing it
        // first wakes that thread, so stopping the pipeline (`_stop`, dropped next) cannot hang.
        self.chunks.close();
    }
}

/// Starts an MSE stream of a camera, beginning at a keyframe.
pub fn open<'a>(fanout: &'a Fanout, clock: &MediaClock, name: &str) -> Result<MseStream<'a>, String> {
    let pipeline = gst::Pipeline::with_name(&format!("mse-{name}"));
    let appsrc = gst_app::AppSrc::builder().name(format!("mse-{name}-src")).build();
    gst_utils::StreamProducer::configure_consumer(&appsrc);
    let make = |f: &str| gst::ElementFactory::make(f).build().map_err(|_| format!("GStreamer element {f} is not installed"));
    let parse = make("h264parse")?;
    let mux = make("mp4mux")?;
    // A fragment per frame: the player gets each frame as soon as the next one starts it.
    mux.set_property("fragment-duration", 1u32);
    mux.set_property("streamable", true);
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([appsrc.upcast_ref(), &parse, &mux, sink.upcast_ref()]).map_err(|e| e.to_string())?;
    appsrc.link(&parse).map_err(|e| e.to_string())?;
    parse.link_pads(None, &mux, Some("video_%u")).map_err(|e| e.to_string())?;
    mux.link(&sink).map_err(|e| e.to_string())?;
    let (tx, chunks) = mpsc::channel(CHANNEL_CHUNKS);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                // An unreadable chunk would corrupt the player's stream: end it, with the reason.
                let Some(bytes) = sample.buffer().and_then(|b| b.map_readable().ok().map(|m| m.to_vec())) else {
                    tracing::warn!("MSE stream ended: a muxed chunk could not be read");
                    return Err(gst::FlowError::Error);
                };
                tx.blocking_send(bytes).map_err(|_| gst::FlowError::Flushing)?;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    clock.apply(&pipeline);
    let stop = StopOnDrop::new(&pipeline);
    pipeline.set_state(gst::State::Playing).map_err(|_| "MSE pipeline refused to start".to_string())?;
    let consumer = fanout.attach(&appsrc);
    Ok(MseStream { fanout, consumer, _stop: stop, chunks })
}
