//! Live view end to end: a real webrtcbin WHEP viewer against the running daemon.

mod common;

use std::time::Duration;

use common::whep::WhepViewer;
use common::{Daemon, config_with, test_camera};

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
    assert_eq!(viewer.delete().await, 200);
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["viewers"] == 0).await.expect("viewer count back to 0");
    daemon.stop().await;
}
