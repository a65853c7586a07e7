//! Camera faults: a source that goes silent is detected from missing frames (not from element
//! errors), the pipeline is rebuilt when frames return, and viewers resume by themselves.

mod common;

use std::time::Duration;

use gst::prelude::*;
use lookout::config::{Camera, SourceSpec};

use common::whep::WhepViewer;
use common::{Daemon, config_with, free_udp_port, rtp_camera, rtp_sender, test_camera};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_source_is_rebuilt_and_viewers_resume() {
    let port = free_udp_port();
    let sender = rtp_sender(port);
    sender.set_state(gst::State::Playing).unwrap();
    let camera = rtp_camera("ipcam", port);
    let daemon = Daemon::start(config_with(vec![camera])).await;
    let online = daemon.wait_state("ipcam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    assert_eq!(online["encoder"], "passthrough", "H.264 from the source is not re-encoded");
    assert_eq!((online["width"].as_u64(), online["height"].as_u64()), (Some(320), Some(240)));
    let viewer = WhepViewer::connect(&daemon.url("/whep/ipcam")).await.expect("session created");
    assert!(viewer.wait_frames(20, Duration::from_secs(15)).await, "got {}", viewer.frames());

    // The camera goes silent: no EOS, no error, just no packets.
    sender.set_state(gst::State::Null).unwrap();
    let offline = daemon.wait_state("ipcam", Duration::from_secs(5), |c| c["online"] == false).await.expect("stall detected");
    assert!(offline["last_error"].as_str().unwrap().contains("no frames"), "{offline}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    sender.set_state(gst::State::Playing).unwrap();
    let back = daemon.wait_state("ipcam", Duration::from_secs(20), |c| c["online"] == true).await.expect("camera back online");
    let state = daemon.wait_state("ipcam", Duration::from_secs(5), |c| c["restarts"].as_u64() >= Some(1)).await.unwrap_or(back);
    assert!(state["restarts"].as_u64() >= Some(1), "{state}");

    let before = viewer.frames();
    assert!(viewer.wait_frames(before + 30, Duration::from_secs(15)).await, "viewer did not resume: {}", viewer.frames());
    assert_eq!(daemon.camera_state("ipcam").await["viewers"], 1, "the viewer session survived the camera restart");
    sender.set_state(gst::State::Null).unwrap();
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_camera_is_reported_offline_with_the_reason_and_others_run() {
    let missing = Camera { source: SourceSpec::Device("/dev/video99".into()), ..test_camera("door") };
    let daemon = Daemon::start(config_with(vec![missing, test_camera("yard")])).await;
    let door =
        daemon.wait_state("door", Duration::from_secs(10), |c| c["last_error"].is_string()).await.expect("door reports why it is offline");
    assert_eq!(door["online"], false);
    assert!(door["last_error"].as_str().unwrap().contains("/dev/video99"), "{door}");
    daemon.wait_state("yard", Duration::from_secs(15), |c| c["online"] == true).await.expect("other camera unaffected");
    daemon.stop().await;
}
