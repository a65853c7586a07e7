//! Live view end to end: a real webrtcbin WHEP viewer against the running daemon.

mod common;

use std::time::Duration;

use common::whep::WhepViewer;
use common::{Daemon, config_with, test_camera};
use lookout::config::Camera;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_receives_and_decodes_sixty_frames_at_the_configured_size() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(viewer.wait_frames(60, Duration::from_secs(20)).await, "only {} frames", viewer.frames());
    assert_eq!(viewer.size(), Some((640, 360)));
    let state = daemon.camera_state("cam").await;
    assert_eq!(state["viewers"], 1);
    assert_eq!(state["encoder"], "x264enc");
    assert_eq!(state["state"], "online");
    assert!(state["dropped_frames"].is_u64(), "{state}");
    let cameras = daemon.get_json("/api/cameras").await;
    assert_eq!(cameras[0]["name"], "cam");
    assert_eq!(cameras[0]["whep"], "/whep/cam");
    assert_eq!((cameras[0]["width"].as_u64(), cameras[0]["height"].as_u64()), (Some(640), Some(360)));
    assert_eq!(viewer.delete().await, 200);
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["viewers"] == 0).await.expect("viewer count back to 0");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_keep_receiving_when_a_fourth_leaves() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    let endpoint = daemon.url("/whep/cam");
    let mut viewers = Vec::new();
    for _ in 0..4 {
        viewers.push(WhepViewer::connect(&endpoint).await.expect("session created"));
    }
    for v in &viewers {
        assert!(v.wait_frames(30, Duration::from_secs(20)).await, "a viewer got only {} frames", v.frames());
    }
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["viewers"] == 4).await.expect("4 viewers counted");

    let leaving = viewers.remove(1);
    assert_eq!(leaving.delete().await, 200);
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["viewers"] == 3).await.expect("3 viewers counted");
    let before: Vec<u64> = viewers.iter().map(|v| v.frames()).collect();
    for (v, b) in viewers.iter().zip(&before) {
        assert!(v.wait_frames(b + 45, Duration::from_secs(10)).await, "a remaining viewer stalled at {}", v.frames());
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_vanishes_is_cleaned_up_after_the_session_timeout() {
    let mut config = config_with(vec![test_camera("cam")]);
    // GStreamer peers send RTCP every 2.5-7.5 s (RFC 3550's 5 s minimum, randomised), so
    // 10 s is the shortest timeout that cannot remove a live GStreamer viewer by mistake.
    config.webrtc.session_timeout = Duration::from_secs(10);
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    let staying = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    let vanishing = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(vanishing.wait_frames(10, Duration::from_secs(20)).await);
    assert!(staying.wait_frames(10, Duration::from_secs(20)).await);
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["viewers"] == 2).await.expect("2 viewers");
    let vanished_at = std::time::Instant::now();
    vanishing.vanish();
    daemon.wait_state("cam", Duration::from_secs(13), |c| c["viewers"] == 1).await.expect("vanished viewer removed");
    let took = vanished_at.elapsed();
    assert!(took <= Duration::from_secs(12), "removed after {took:?}");
    // The live viewer outlasts a whole timeout more and keeps receiving.
    let before = staying.frames();
    assert!(staying.wait_frames(before + 300, Duration::from_secs(12)).await, "the other viewer stalled");
    assert_eq!(daemon.camera_state("cam").await["viewers"], 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_pli_reaches_the_encoder() {
    // Keyframes 10 s apart, so one within the test can only be a requested one.
    let camera = Camera { keyframe_interval: Duration::from_secs(10), ..test_camera("cam") };
    let daemon = Daemon::start(config_with(vec![camera])).await;
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(viewer.wait_frames(20, Duration::from_secs(15)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = daemon.keyframes_forced("cam").await;
    viewer.request_keyframe();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while daemon.keyframes_forced("cam").await <= before {
        assert!(std::time::Instant::now() < deadline, "the viewer's PLI never reached the encoder");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_whose_network_blocks_udp_watches_over_ice_tcp() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.webrtc.ice_tcp = true;
    let daemon = Daemon::start(config).await;
    let viewer = WhepViewer::connect_tcp_only(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(viewer.wait_frames(30, Duration::from_secs(20)).await, "over ICE-TCP: {} frames", viewer.frames());
    daemon.stop().await;
}
