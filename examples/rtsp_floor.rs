//! The floor for `scripts/bench/rtsp`: a bare gst-rtsp-server serving one live encode at
//! `rtsp://127.0.0.1:PORT/cam` through one shared payloader: what Lookout's RTSP server does,
//! without the fan-out, the other outputs, authentication or viewer accounting. Prints the
//! bound port once it listens, then serves until killed.
//!
//! `rtsp_floor "<gst-launch encode fragment ending in H.264>"`

use gst_rtsp_server::prelude::*;

fn main() {
    let encode = std::env::args().nth(1).expect("usage: rtsp_floor \"<encode fragment>\"");
    gst::init().expect("GStreamer");
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&format!("( {encode} ! rtph264pay name=pay0 pt=96 config-interval=-1 aggregate-mode=zero-latency )"));
    factory.set_shared(true);
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service("0");
    server.mount_points().expect("mount points").add_factory("/cam", factory);
    let main_loop = gst::glib::MainLoop::new(None, false);
    let _source = server.attach(None).expect("the floor listens");
    println!("{}", server.bound_port());
    main_loop.run();
}
