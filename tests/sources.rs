//! Sources and encoders beyond the test pattern: an RTSP IP camera passed through without
//! re-encoding, and the openh264 fallback encoder, each watched by a real WebRTC viewer.

mod common;

use std::time::Duration;

use gst::glib;
use gst_rtsp_server::prelude::*;
use lookout::config::{Camera, EncoderChoice, SourceSpec};

use common::whep::WhepViewer;
use common::{Daemon, config_with, test_camera};

/// An RTSP "IP camera" on a free port, served from its own glib main loop thread.
struct RtspCamera {
    url: String,
    main_loop: glib::MainLoop,
}

impl RtspCamera {
    /// A keyframe every second, one pipeline shared by every client.
    fn start() -> RtspCamera {
        RtspCamera::start_with("key-int-max=30", true)
    }

    /// `x264` takes extra x264enc properties; `shared`: one pipeline for every client (else
    /// each client's own, which starts with a keyframe).
    fn start_with(x264: &str, shared: bool) -> RtspCamera {
        gst::init().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
               ! x264enc tune=zerolatency speed-preset=ultrafast {x264} ! rtph264pay name=pay0 pt=96 )"
        ));
        factory.set_shared(shared);
        server.mount_points().unwrap().add_factory("/cam", factory);
        let l = main_loop.clone();
        std::thread::spawn(move || {
            let _id = server.attach(Some(&context)).expect("RTSP server attaches");
            l.run();
        });
        RtspCamera { url: format!("rtsp://user:secret@127.0.0.1:{port}/cam"), main_loop }
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        self.main_loop.quit();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_camera_is_passed_through_to_viewers() {
    let rtsp = RtspCamera::start();
    let camera = Camera { source: SourceSpec::Rtsp(rtsp.url.clone()), ..test_camera("ipcam") };
    let daemon = Daemon::start(config_with(vec![camera])).await;
    let state = daemon.wait_state("ipcam", Duration::from_secs(20), |c| c["online"] == true).await.expect("RTSP camera online");
    assert_eq!(state["encoder"], "passthrough");
    assert!(!state.to_string().contains("secret"), "credentials leaked into the API: {state}");
    let viewer = WhepViewer::connect(&daemon.url("/whep/ipcam")).await.expect("session created");
    assert!(viewer.wait_frames(30, Duration::from_secs(15)).await, "got {}", viewer.frames());
    assert_eq!(viewer.size(), Some((320, 240)));
    daemon.stop().await;
}

/// A camera whose next keyframe is a minute away (the first comes when the daemon connects).
fn camera_with_a_minute_long_gop() -> RtspCamera {
    RtspCamera::start_with("key-int-max=1800 bitrate=200", false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_of_a_camera_passed_through_starts_from_its_current_gop_not_its_next_keyframe() {
    // Without fast start a viewer who joins mid-GOP waits for the next keyframe: nothing yet.
    let rtsp = camera_with_a_minute_long_gop();
    let mut config = config_with(vec![Camera { source: SourceSpec::Rtsp(rtsp.url.clone()), ..test_camera("ipcam") }]);
    config.webrtc.fast_start = false;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("ipcam", Duration::from_secs(20), |c| c["online"] == true).await.expect("RTSP camera online");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let viewer = WhepViewer::connect(&daemon.url("/whep/ipcam")).await.expect("session created");
    assert!(!viewer.wait_frames(1, Duration::from_secs(6)).await, "a frame came without fast start: the test proves nothing");
    daemon.stop().await;

    // With it (the default) the same join starts from the cached GOP, and the frames decode.
    let rtsp = camera_with_a_minute_long_gop();
    let config = config_with(vec![Camera { source: SourceSpec::Rtsp(rtsp.url.clone()), ..test_camera("ipcam") }]);
    assert!(config.webrtc.fast_start, "on by default");
    let daemon = Daemon::start(config).await;
    daemon.wait_state("ipcam", Duration::from_secs(20), |c| c["online"] == true).await.expect("RTSP camera online");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let viewer = WhepViewer::connect(&daemon.url("/whep/ipcam")).await.expect("session created");
    assert!(viewer.wait_frames(30, Duration::from_secs(30)).await, "got {} frames", viewer.frames());
    assert_eq!(viewer.size(), Some((320, 240)));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openh264_fallback_serves_viewers() {
    let camera = Camera { encoder: EncoderChoice::Openh264, ..test_camera("cam") };
    let daemon = Daemon::start(config_with(vec![camera])).await;
    let state = daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("online");
    assert_eq!(state["encoder"], "openh264enc");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(viewer.wait_frames(30, Duration::from_secs(15)).await, "got {}", viewer.frames());
    assert_eq!(viewer.size(), Some((640, 360)));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_port_range_and_announced_addresses_appear_in_the_answer() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.webrtc.udp_ports = Some("47100-47110".parse().unwrap());
    config.webrtc.announce = vec!["192.0.2.10".parse().unwrap()];
    let daemon = Daemon::start(config).await;
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    let udp: Vec<&str> = viewer.answer.lines().filter(|l| l.starts_with("a=candidate:") && l.contains(" UDP ")).collect();
    assert!(!udp.is_empty(), "{}", viewer.answer);
    for line in &udp {
        let port: u16 = line.split(' ').nth(5).unwrap().parse().unwrap();
        assert!((47100..=47110).contains(&port), "{line}");
    }
    assert!(udp.iter().any(|l| l.contains(" 192.0.2.10 ")), "announced address missing: {}", viewer.answer);
    assert!(viewer.answer.contains(" TCP "), "ICE-TCP candidates offered by default: {}", viewer.answer);
    assert!(viewer.wait_frames(10, Duration::from_secs(15)).await, "still connects over loopback");
    daemon.stop().await;
}
