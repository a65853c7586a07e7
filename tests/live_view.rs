//! Live view end to end: a real webrtcbin WHEP viewer against the running daemon.

mod common;

use std::time::{Duration, Instant};

use common::whep::WhepViewer;
use common::{Daemon, HANG, config_with, test_camera};
use lookout::config::Camera;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_receives_and_decodes_sixty_frames_at_the_configured_size() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(viewer.wait_frames(60, HANG).await, "only {} frames", viewer.frames());
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
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 0).await.expect("viewer count back to 0");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_keep_receiving_when_a_fourth_leaves() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let endpoint = daemon.url("/whep/cam");
    let mut viewers = Vec::new();
    for _ in 0..4 {
        viewers.push(WhepViewer::connect(&endpoint).await.expect("session created"));
    }
    for v in &viewers {
        assert!(v.wait_frames(30, HANG).await, "a viewer got only {} frames", v.frames());
    }
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 4).await.expect("4 viewers counted");

    let leaving = viewers.remove(1);
    assert_eq!(leaving.delete().await, 200);
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 3).await.expect("3 viewers counted");
    let before: Vec<u64> = viewers.iter().map(|v| v.frames()).collect();
    for (v, b) in viewers.iter().zip(&before) {
        assert!(v.wait_frames(b + 45, HANG).await, "a remaining viewer stalled at {}", v.frames());
    }
    daemon.stop().await;
}

/// The longest gap between two RTCP reports of a GStreamer peer: RFC 3550's 5 s minimum
/// interval, randomised to 0.5-1.5 times that.
const MAX_RTCP_GAP: Duration = Duration::from_millis(7500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_vanishes_is_cleaned_up_after_the_session_timeout() {
    let timeout = Duration::from_secs(10);
    let mut config = config_with(vec![test_camera("cam")]);
    // 10 s is the shortest timeout that cannot remove a live GStreamer viewer by mistake
    // (reports up to MAX_RTCP_GAP apart).
    config.webrtc.session_timeout = timeout;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let staying = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    let vanishing = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(vanishing.wait_frames(10, HANG).await, "vanishing viewer got {} frames", vanishing.frames());
    assert!(staying.wait_frames(10, HANG).await, "staying viewer got {} frames", staying.frames());
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 2).await.expect("2 viewers");
    let vanished_at = Instant::now();
    vanishing.vanish();
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 1).await.expect("vanished viewer removed");
    // Not before its time: its last report came at most MAX_RTCP_GAP before it vanished, and
    // a whole timeout must pass after that.
    let took = vanished_at.elapsed();
    assert!(took >= timeout - MAX_RTCP_GAP, "removed after {took:?}, before the {timeout:?} session timeout could have passed");
    // The live viewer is not dropped: it stays, counted and receiving, for a whole timeout
    // plus the longest gap between its reports after the other one vanished.
    let must_outlast = timeout + MAX_RTCP_GAP + Duration::from_secs(1);
    while vanished_at.elapsed() < must_outlast {
        assert_eq!(daemon.camera_state("cam").await["viewers"], 1, "the live viewer was removed {:?} in", vanished_at.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = staying.frames();
    assert!(staying.wait_frames(before + 30, HANG).await, "the other viewer stalled at {} frames", staying.frames());
    assert_eq!(daemon.camera_state("cam").await["viewers"], 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_pli_reaches_the_encoder() {
    // Keyframes 10 s apart, so one within the test can only be a requested one.
    let camera = Camera { keyframe_interval: Duration::from_secs(10), ..test_camera("cam") };
    let daemon = Daemon::start(config_with(vec![camera])).await;
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(viewer.wait_frames(20, HANG).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = daemon.keyframes_forced("cam").await;
    viewer.request_keyframe();
    let deadline = Instant::now() + HANG;
    while daemon.keyframes_forced("cam").await <= before {
        assert!(Instant::now() < deadline, "the viewer's PLI never reached the encoder");
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
    assert!(viewer.wait_frames(30, HANG).await, "over ICE-TCP: {} frames", viewer.frames());
    daemon.stop().await;
}
