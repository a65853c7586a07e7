//! WHIP push to a server that is not ours: aiortc (in the tests' virtualenv) answers, decodes
//! what arrives and counts the frames per stream. Each kind of source: a camera Lookout
//! encodes (test pattern) and an IP camera passed through (RTSP in, WHIP out).

mod common;

use std::time::{Duration, Instant};

use lookout::config::{Camera, Push, SourceSpec};
use serde_json::Value;

use common::rtsp::{IpCamera, RtspServer};
use common::{Daemon, HANG, config_with, test_camera};

const TOKEN: &str = "whip-test-token";

/// The test's WHIP server: `tests/fixtures/whip/server.py`.
struct WhipServer {
    port: u16,
    child: tokio::process::Child,
}

impl WhipServer {
    async fn start(port: u16, token: &str) -> WhipServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/whip/server.py");
        let child = tokio::process::Command::new(common::venv_python())
            .arg(script)
            .args(["--port", &port.to_string(), "--token", token])
            .kill_on_drop(true)
            .spawn()
            .expect("python runs");
        let server = WhipServer { port, child };
        let deadline = Instant::now() + HANG;
        while server.try_stats().await.is_none() {
            assert!(Instant::now() < deadline, "the WHIP server did not answer within {HANG:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    fn url(&self, stream: &str) -> String {
        format!("http://127.0.0.1:{}/whip/{stream}", self.port)
    }

    async fn try_stats(&self) -> Option<Value> {
        reqwest::get(format!("http://127.0.0.1:{}/stats", self.port)).await.ok()?.json().await.ok()
    }

    async fn stats(&self) -> Value {
        self.try_stats().await.expect("the WHIP server answers")
    }

    /// Waits until `stream` has decoded `frames` more than `from`; the stats at that point.
    async fn wait_frames(&self, stream: &str, from: u64, frames: u64) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let stats = self.stats().await;
            if stats["streams"][stream]["frames"].as_u64().unwrap_or(0) >= from + frames {
                return stats;
            }
            assert!(Instant::now() < deadline, "{stream}: {frames} frames not decoded within {HANG:?}: {stats}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn pushing(mut camera: Camera, url: String, token: &str) -> Camera {
    camera.push = vec![Push { url, token: Some(token.into()) }];
    camera
}

/// The owner's view of one push (`/api/state` shows pushes to the owner only).
async fn push_state(owner: &reqwest::Client, daemon: &Daemon, camera: &str) -> Value {
    let state: Value = owner.get(daemon.anonymous_url("/api/state")).send().await.unwrap().json().await.unwrap();
    state["pushes"].as_array().and_then(|p| p.iter().find(|p| p["camera"] == camera).cloned()).unwrap_or(Value::Null)
}

async fn wait_push(owner: &reqwest::Client, daemon: &Daemon, camera: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + HANG;
    loop {
        let push = push_state(owner, daemon, camera).await;
        if pred(&push) {
            return push;
        }
        assert!(Instant::now() < deadline, "{camera}: push not as expected within {HANG:?}: {push}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_camera_is_pushed_decoded_by_the_server_resumed_after_it_restarts_and_deleted_at_shutdown() {
    let port = free_port();
    let server = WhipServer::start(port, TOKEN).await;
    let ip = RtspServer::start(&[IpCamera::baseline("/door")], None);
    let door = Camera { name: "door".into(), source: SourceSpec::Rtsp(ip.url("/door", None)), ..Camera::default() };
    let mut config = config_with(vec![pushing(test_camera("yard"), server.url("yard"), TOKEN), pushing(door, server.url("door"), TOKEN)]);
    // The server's going away is noticed by its silence (no RTCP) for this long.
    config.webrtc.session_timeout = Duration::from_secs(3);
    let daemon = Daemon::start(config).await;
    let owner = daemon.owner().await;

    for (camera, width) in [("yard", 640), ("door", 640)] {
        let stats = server.wait_frames(camera, 0, 30).await;
        assert_eq!(stats["streams"][camera]["width"], width, "{stats}");
        let push = wait_push(&owner, &daemon, camera, |p| p["state"] == "live" && p["bitrate_kbps"].as_f64() > Some(0.0)).await;
        assert_eq!(push["target"], server.url(camera), "{push}");
        // A push is not one of the camera's viewers.
        assert_eq!(daemon.camera_state(camera).await["viewers"], 0);
    }
    // The server's keyframe request (PLI) reaches the encoder through the keyframe limiter.
    let forwarded = daemon.keyframes_forced("yard").await;
    let deadline = Instant::now() + HANG;
    while daemon.keyframes_forced("yard").await <= forwarded {
        assert!(Instant::now() < deadline, "no PLI from the WHIP server was forwarded to the encoder");
        reqwest::Client::new().post(format!("http://127.0.0.1:{port}/pli")).send().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stats = server.stats().await;
    for offer in stats["offers"].as_array().unwrap() {
        let offer = offer.as_str().unwrap();
        assert!(offer.contains("profile-level-id=42e01f") && offer.contains("packetization-mode=1"), "{offer}");
        assert!(offer.contains("a=sendonly"), "{offer}");
    }
    assert!(stats["authorization"].as_array().unwrap().iter().all(|a| a == &format!("Bearer {TOKEN}")), "{stats}");
    let metrics = reqwest::get(daemon.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("lookout_push_live{camera=\"yard\",target=\""), "{metrics}");
    // A viewer's token does not show pushes (their targets describe the configuration).
    let state: Value = reqwest::get(daemon.url("/api/state")).await.unwrap().json().await.unwrap();
    assert!(state.get("pushes").is_none(), "{state}");

    // The server goes away: the push says so and keeps trying; when it is back, it resumes.
    server.kill().await;
    let lost = wait_push(&owner, &daemon, "yard", |p| p["state"] == "retrying").await;
    assert!(lost["error"].as_str().is_some_and(|e| !e.is_empty()), "{lost}");
    let server = WhipServer::start(port, TOKEN).await;
    for camera in ["yard", "door"] {
        server.wait_frames(camera, 0, 30).await;
        let push = wait_push(&owner, &daemon, camera, |p| p["state"] == "live").await;
        assert!(push["sessions"].as_u64() >= Some(2), "{push}");
    }

    // Shutdown ends each session at the server.
    daemon.stop().await;
    let stats = server.stats().await;
    assert!(stats["deletes"].as_u64() >= Some(2), "{stats}");
    assert_eq!(stats["sessions"], 0, "{stats}");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusal_is_reported_and_not_retried_in_a_tight_loop() {
    let server = WhipServer::start(free_port(), "the-right-token").await;
    let daemon = Daemon::start(config_with(vec![pushing(test_camera("yard"), server.url("yard"), "a-wrong-token")])).await;
    let owner = daemon.owner().await;
    let refused = wait_push(&owner, &daemon, "yard", |p| p["state"] == "refused").await;
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("401")), "{refused}");
    // The next try is a minute away: a few seconds later the server has still seen one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.stats().await["posts"], 1);
    assert_eq!(push_state(&owner, &daemon, "yard").await["state"], "refused");
    // The token never comes back out of the settings.
    let settings = owner.get(daemon.anonymous_url("/api/config")).send().await.unwrap().text().await.unwrap();
    assert!(settings.contains("/whip/yard") && !settings.contains("a-wrong-token"), "{settings}");
    daemon.stop().await;
    server.kill().await;
}
