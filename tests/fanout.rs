//! The fan-out in isolation: a consumer whose output is stuck drops (and counts) its own
//! frames while another consumer of the same camera keeps receiving every frame.
//!
//! Nothing here measures speed: each test waits (with a deadline that only catches a hang)
//! for the condition it is about, then checks counts that do not depend on timing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use lookout::media::fanout::Fanout;
use lookout::media::keyframe::MIN_INTERVAL;

use common::HANG;

/// Polls `cond` every 20 ms until it holds; false if `HANG` passes first.
fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + HANG;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

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
    let taps = fanout.set_producer(&appsink, true);
    let (stuck_pipe, stuck_src, _) = consumer("stuck", true);
    let (good_pipe, good_src, good) = consumer("good", false);
    let stuck = fanout.attach(&stuck_src);
    let _good = fanout.attach(&good_src);
    // The healthy consumer gets a queue no scheduling hiccup of a loaded machine can fill, so
    // any frame it misses was taken from it, not late. The stuck one keeps the 500 ms default.
    good_src.set_max_time(gst::ClockTime::from_seconds(120));
    // Both are attached before the camera starts, so both start at its first frame (a
    // keyframe): the healthy one is owed every frame the camera produces.
    camera.set_state(gst::State::Playing).unwrap();

    let waited = wait_until(|| good.load(Ordering::SeqCst) >= 75 && fanout.dropped(stuck) >= 30);
    // Read the camera's count first: every frame counted in `produced` has by then either
    // reached the healthy consumer, waits in its queue, or is in one of the two streaming
    // threads between them (at most one frame each).
    let produced = taps.frames.load(Ordering::SeqCst);
    let queued = good_src.current_level_buffers();
    let received = good.load(Ordering::SeqCst);
    let dropped = fanout.dropped(stuck);
    assert!(waited, "within {HANG:?}: camera produced {produced}, healthy consumer got {received}, stuck one dropped {dropped}");
    assert!(received + queued + 2 >= produced, "healthy consumer lost frames: got {received}, {queued} queued, of {produced} produced");
    assert!(dropped >= 30, "stuck consumer's queue is bounded and counts drops: {dropped}");
    // Each frame lost once: the stuck one can have lost at most what was produced.
    assert!(fanout.dropped(stuck) <= taps.frames.load(Ordering::SeqCst), "drops counted twice: {dropped} of {produced}");

    for p in [&camera, &good_pipe] {
        p.set_state(gst::State::Null).unwrap();
    }
    // The stuck pipeline is left to its sleeping thread; the test process ends here.
    std::mem::forget(stuck_pipe);
}

#[test]
fn keyframe_requests_from_outputs_reach_the_encoder_rate_limited() {
    gst::init().unwrap();
    // A GOP of 5 minutes, longer than the test can take even on a loaded machine: every
    // keyframe after the first is one that was asked for.
    let (camera, appsink) = h264_camera(30 * 300);
    let keyframes = Arc::new(AtomicU64::new(0));
    let k = keyframes.clone();
    appsink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if info.buffer().is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT)) {
            k.fetch_add(1, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
    let fanout = Fanout::new("cam");
    fanout.set_producer(&appsink, true);
    camera.set_state(gst::State::Playing).unwrap();
    let (viewer_pipe, viewer_src, received) = consumer("viewer", false);
    let _viewer = fanout.attach(&viewer_src);
    // It starts at a keyframe: the camera's first, or (attached later) the one it asked for.
    assert!(wait_until(|| received.load(Ordering::SeqCst) > 10), "viewer never started: {} frames", received.load(Ordering::SeqCst));

    // A viewer on a lossy link: a storm of PLIs, as rtpsession turns them into upstream
    // force-key-unit events on the viewer's appsrc. Pushed back to back, so what the limiter
    // lets through depends only on how long the storm lasted, which is measured.
    let before = keyframes.load(Ordering::SeqCst);
    let pad = viewer_src.static_pad("src").unwrap().peer().unwrap();
    let storm = Instant::now();
    let (forwarded_0, dropped_0) = fanout.keyframe_requests();
    for _ in 0..60 {
        pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
    }
    let (forwarded_1, dropped_1) = fanout.keyframe_requests();
    let storm = storm.elapsed();
    let (forwarded, dropped) = (forwarded_1 - forwarded_0, dropped_1 - dropped_0);
    // The events travel synchronously up to the limiter: each of the 60 was decided.
    assert!(forwarded + dropped >= 60, "every request reached the limiter: forwarded {forwarded}, dropped {dropped}");
    // Its guarantee: forwarded requests are at least MIN_INTERVAL apart. (The first of the
    // storm may itself be merged into a keyframe still on its way, or deferred.)
    let allowed = 1 + (storm.as_millis() / MIN_INTERVAL.as_millis()) as u64;
    assert!(forwarded <= allowed, "{forwarded} forwarded in {storm:?}, at most {allowed} allowed");
    assert!(dropped >= 60 - allowed, "the rest were merged or deferred: forwarded {forwarded}, dropped {dropped}");

    // Merged or deferred, the storm is answered: a keyframe comes.
    assert!(wait_until(|| keyframes.load(Ordering::SeqCst) > before), "the PLIs never produced a keyframe");
    // And only requests make keyframes: apart from the camera's first, each one was asked for
    // by a forwarded request (counted in this order, every keyframe seen was caused by a
    // request already counted).
    let total_keyframes = keyframes.load(Ordering::SeqCst);
    let (forwarded_total, _) = fanout.keyframe_requests();
    assert!(total_keyframes <= 1 + forwarded_total, "{total_keyframes} keyframes for {forwarded_total} forwarded requests");
    for p in [&camera, &viewer_pipe] {
        p.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn a_healthy_output_joining_a_running_camera_drops_nothing() {
    gst::init().unwrap();
    // The output joins mid-GOP: the delta frames that pass before the keyframe it asked for
    // (usually the one already in the encoder) are skipped by design, not dropped.
    let (camera, appsink) = h264_camera(30 * 300);
    let fanout = Fanout::new("cam");
    let taps = fanout.set_producer(&appsink, true);
    camera.set_state(gst::State::Playing).unwrap();
    assert!(wait_until(|| taps.frames.load(Ordering::SeqCst) >= 10), "camera running");
    let (viewer_pipe, viewer_src, received) = consumer("viewer", false);
    viewer_src.set_max_time(gst::ClockTime::from_seconds(120));
    let viewer = fanout.attach(&viewer_src);
    assert!(wait_until(|| received.load(Ordering::SeqCst) >= 30), "the output got frames");
    assert_eq!(fanout.dropped(viewer), 0, "frames skipped while joining counted as dropped");
    assert_eq!(fanout.detach(viewer), 0);
    assert_eq!(fanout.dropped_total(), 0);
    for p in [&camera, &viewer_pipe] {
        p.set_state(gst::State::Null).unwrap();
    }
}
