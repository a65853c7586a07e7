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

#[test]
fn a_stuck_consumer_drops_its_own_frames_and_stalls_nobody() {
    gst::init().unwrap();
    let camera = gst::parse::launch(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let appsink = camera.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
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
