//! The data channel of a WHEP session, opened by a webrtcbin viewer: the camera's state and
//! events, stats with the capture time of the newest frame, and requests (ping, identify,
//! snapshot as a chunked byte stream) under the viewer's grants. Each kind of source: a
//! camera Lookout encodes (test pattern) and an IP camera passed through.

mod common;

use std::time::Duration;

use lookout::config::{Camera, SourceSpec};
use serde_json::Value;

use common::rtsp::{IpCamera, RtspServer};
use common::whep::WhepViewer;
use common::{Daemon, Grant, HANG, config_with, issue_token, test_camera, with_token};

fn kind(t: &'static str) -> impl Fn(&Value) -> bool {
    move |m| m["type"] == t
}

/// The JPEG a snapshot stream carried: its chunks (stream number, index, bytes) put in order.
fn reassemble(chunks: &[Vec<u8>], stream: u32) -> Vec<u8> {
    let mut mine: Vec<(u32, &[u8])> = chunks
        .iter()
        .filter(|c| c.len() >= 8 && u32::from_be_bytes([c[0], c[1], c[2], c[3]]) == stream)
        .map(|c| (u32::from_be_bytes([c[4], c[5], c[6], c[7]]), &c[8..]))
        .collect();
    mine.sort_by_key(|(index, _)| *index);
    mine.into_iter().flat_map(|(_, bytes)| bytes.to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_s_data_channel_carries_state_events_stats_and_snapshots() {
    let ip = RtspServer::start(&[IpCamera::baseline("/door")], None);
    let door = Camera { name: "door".into(), source: SourceSpec::Rtsp(ip.url("/door", None)), ..Camera::default() };
    let daemon = Daemon::start(config_with(vec![test_camera("yard"), door])).await;
    for camera in ["yard", "door"] {
        daemon.wait_state(camera, HANG, |c| c["online"] == true).await.expect("camera online");
        let viewer = WhepViewer::connect_with_channel(&daemon.url(&format!("/whep/{camera}"))).await.expect("viewer joins");
        assert!(viewer.answer.contains("m=application"), "the answer takes the data channel: {}", viewer.answer);
        assert!(viewer.wait_frames(30, HANG).await, "{camera}: video plays beside the data channel");

        let state = viewer.channel_message(HANG, kind("state")).await.expect("the camera's state comes first");
        assert_eq!(state["camera"]["name"], camera, "{state}");
        let stats = viewer
            .channel_message(HANG, |m| m["type"] == "stats" && m["frame"]["rtp_timestamp"].is_u64())
            .await
            .expect("stats with the newest frame's capture time");
        let captured = stats["frame"]["captured_at_ms"].as_i64().unwrap();
        let now = stats["now_ms"].as_i64().unwrap();
        println!("{camera}: newest frame captured {} ms before the stats", now - captured);
        // A correctness check of the clock, not a speed: the newest frame of a live stream is a
        // frame or two old; seconds off meant a unit mistake (the payloader counts its running
        // time in RTP clock units).
        assert!((0..1500).contains(&(now - captured)), "{camera}: a frame captured {} ms before it was reported: {stats}", now - captured);

        viewer.send_on_channel(r#"{"id": "p1", "type": "ping", "t": 1234.5}"#).await;
        let pong = viewer.channel_message(HANG, |m| m["type"] == "pong" && m["id"] == "p1").await.expect("pong");
        assert_eq!(pong["t"], 1234.5);
        assert!(pong["now_ms"].is_i64());

        // An event of this camera arrives over the channel (the recording switch).
        let switched =
            reqwest::Client::new().post(daemon.url(&format!("/api/actions/recording.stop?camera={camera}"))).send().await.unwrap();
        assert!(switched.status().is_success(), "{}", switched.text().await.unwrap());
        let event = viewer.channel_message(HANG, |m| m["type"] == "recording_switched" && m["camera"] == camera).await;
        let event = event.expect("the camera's event on the channel");
        assert!(event["seq"].is_u64() && event["at"].is_string() && event["v"] == 1, "as /api/events sends it: {event}");

        viewer.send_on_channel(r#"{"id": "s1", "type": "snapshot"}"#).await;
        let result = viewer.channel_message(HANG, |m| m["type"] == "result" && m["id"] == "s1").await.expect("snapshot result");
        assert_eq!(result["ok"], true, "{result}");
        let header = viewer.channel_message(HANG, |m| m["type"] == "stream_header" && m["id"] == "s1").await.unwrap();
        let trailer = viewer.channel_message(HANG, |m| m["type"] == "stream_trailer" && m["id"] == "s1").await.unwrap();
        assert_eq!((header["mime_type"].as_str(), trailer["complete"].as_bool()), (Some("image/jpeg"), Some(true)));
        let jpeg = reassemble(&viewer.channel_bytes(), header["stream"].as_u64().unwrap() as u32);
        assert_eq!(jpeg.len() as u64, header["size"].as_u64().unwrap());
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");

        viewer.send_on_channel(r#"{"id": 7, "type": "reboot"}"#).await;
        let refused = viewer.channel_message(HANG, |m| m["type"] == "result" && m["id"] == 7).await.unwrap();
        assert_eq!(refused["ok"], false, "reboot is not a data channel request: {refused}");
        viewer.delete().await;
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_on_the_channel_need_the_viewer_s_grants() {
    let config = config_with(vec![test_camera("yard")]);
    let daemon = Daemon::start(config).await;
    daemon.wait_state("yard", HANG, |c| c["online"] == true).await.expect("camera online");
    let mut issuer = lookout::config::Config::default();
    issuer.storage.path = daemon.data.clone();
    let view_only = issue_token(&issuer, &[Grant::View], None);
    let url = with_token(&daemon.anonymous_url("/whep/yard"), &view_only);
    let viewer = WhepViewer::connect_with_channel(&url).await.expect("viewer joins");
    viewer.send_on_channel(r#"{"id": "s", "type": "snapshot"}"#).await;
    viewer.send_on_channel(r#"{"id": "i", "type": "identify"}"#).await;
    for id in ["s", "i"] {
        let result = viewer.channel_message(HANG, |m| m["type"] == "result" && m["id"] == id).await.expect("answered");
        assert_eq!(result["ok"], false, "a view-only token cannot {id}: {result}");
    }
    assert!(viewer.channel_message(Duration::from_millis(500), kind("stream_header")).await.is_none(), "no snapshot was sent");
    // Not JSON, too long: answered or dropped, never the end of the channel.
    viewer.send_on_channel("not json").await;
    viewer.send_on_channel(&"x".repeat(5000)).await;
    viewer.send_on_channel(r#"{"id": "p", "type": "ping"}"#).await;
    viewer.channel_message(HANG, |m| m["type"] == "pong" && m["id"] == "p").await.expect("the channel still answers");
    viewer.delete().await;
    daemon.stop().await;
}
