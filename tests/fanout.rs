//! The fan-out in isolation: a consumer whose output is stuck drops (and counts) its own
//! frames while another consumer of the same camera keeps receiving every frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gst::prelude::*;
use lookout::media::fanout::Fanout;

fn consumer(name: &str, block: bool) -> (gst::Pipeline, gst_app::AppSrc, Arc<AtomicU64>) {
    let pipeline = gst::Pipeline::with_name(name);
    let appsrc = gst_app::AppSrc::builder().name(format!("{name}-src")).build();
    gst_utils::StreamProducer::configure_consumer(&appsrc);
    let sink = gst_app::AppSink::builder().sync(false).build();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let _ = s.pull_sample();
                c.fetch_add(1, Ordering::SeqCst);
                if block {
                    // A viewer whose network is gone: each frame takes ten seconds to send.
                    std::thread::sleep(Duration::from_secs(10));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.add_many([appsrc.upcast_ref(), sink.upcast_ref::<gst::Element>()]).unwrap();
    appsrc.link(&sink).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, appsrc, count)
}

/// A small live H.264 "camera" ending in the appsink a fan-out wraps; a keyframe every
/// `gop` frames unless one is requested.
fn h264_camera(gop: u32) -> (gst::Pipeline, gst_app::AppSink) {
    let camera = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let appsink = camera.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    (camera, appsink)
}

#[test]
fn a_stuck_consumer_drops_its_own_frames_and_stalls_nobody() {
    gst::init().unwrap();
    let (camera, appsink) = h264_camera(30);
    let fanout = Fanout::new("cam");
    let taps = fanout.set_producer(&appsink);
    camera.set_state(gst::State::Playing).unwrap();

    let (stuck_pipe, stuck_src, _) = consumer("stuck", true);
    let (good_pipe, good_src, good) = consumer("good", false);
    let stuck = fanout.attach(&stuck_src);
    let _good = fanout.attach(&good_src);
    std::thread::sleep(Duration::from_secs(3));

    let produced = taps.frames.load(Ordering::SeqCst);
    let received = good.load(Ordering::SeqCst);
    assert!(produced >= 75, "camera kept producing: {produced}");
    assert!(received + 35 >= produced, "healthy consumer got {received} of {produced}");
    let dropped = fanout.dropped(stuck);
    assert!(dropped >= 30, "stuck consumer's queue is bounded and counts drops: {dropped}");

    for p in [&camera, &good_pipe] {
        p.set_state(gst::State::Null).unwrap();
    }
    // The stuck pipeline is left to its sleeping thread; the test process ends here.
    std::mem::forget(stuck_pipe);
}

#[test]
fn keyframe_requests_from_outputs_reach_the_encoder_rate_limited() {
    gst::init().unwrap();
    // A 10 s GOP: any keyframe after the first is one that was asked for.
    let (camera, appsink) = h264_camera(300);
    let keyframes = Arc::new(AtomicU64::new(0));
    let k = keyframes.clone();
    appsink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if info.buffer().is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT)) {
            k.fetch_add(1, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
    let fanout = Fanout::new("cam");
    fanout.set_producer(&appsink);
    camera.set_state(gst::State::Playing).unwrap();
    let (viewer_pipe, viewer_src, received) = consumer("viewer", false);
    let _viewer = fanout.attach(&viewer_src);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(received.load(Ordering::SeqCst) > 10, "viewer started at a requested keyframe");
    let before = keyframes.load(Ordering::SeqCst);

    // A viewer on a lossy link: a PLI on every frame for 2 s, as rtpsession turns them into
    // upstream force-key-unit events on the viewer's appsrc.
    let pad = viewer_src.static_pad("src").unwrap().peer().unwrap();
    for _ in 0..60 {
        pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
        std::thread::sleep(Duration::from_millis(33));
    }
    std::thread::sleep(Duration::from_millis(200));
    let forced = keyframes.load(Ordering::SeqCst) - before;
    let (forwarded, dropped) = fanout.keyframe_requests();
    assert!(forced >= 2, "requests reached the encoder: {forced} keyframes");
    assert!(forced <= 10, "at most about one per 300 ms over ~2 s: {forced} keyframes");
    assert!(dropped >= 40, "the rest were merged or deferred: forwarded {forwarded}, dropped {dropped}");
    for p in [&camera, &viewer_pipe] {
        p.set_state(gst::State::Null).unwrap();
    }
}
