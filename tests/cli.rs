//! The binary itself: SIGTERM shuts it down cleanly, `devices` lists what it finds, `probe`
//! watches a camera over WHEP.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = log.next().expect("daemon still logging").unwrap();
        if line.contains("camera online") {
            break;
        }
        assert!(Instant::now() < deadline, "camera never came online");
    }
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    let rest: Vec<String> = log.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}; log: {rest:?}");
    assert!(stopped.elapsed() < Duration::from_secs(10), "took {:?}", stopped.elapsed());
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    assert!(dir.path().join("data").is_dir(), "the data folder is created");
}

#[test]
fn devices_lists_capture_devices_and_encoders() {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout")).arg("devices").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GStreamer elements:") && text.contains("x264enc"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_watches_a_camera_over_whep_and_fails_when_nothing_arrives() {
    let daemon = common::Daemon::start(common::config_with(vec![common::test_camera("cam")])).await;
    daemon.wait_state("cam", common::HANG, |c| c["online"] == true).await.expect("camera online");
    let run = |url: String| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_lookout")).args(["probe", &url, "--seconds", "3"]).kill_on_drop(true).output()
    };
    let out = tokio::time::timeout(common::HANG, run(daemon.url("/whep/cam"))).await.expect("probe ends").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(said["frames"].as_u64() > Some(10), "{said}");
    assert_eq!(said["connection"], "connected", "{said}");
    // The session it opened is gone again.
    daemon.wait_state("cam", common::HANG, |c| c["viewers"] == 0).await.expect("the probe's session ended");

    let refused = tokio::time::timeout(common::HANG, run(daemon.anonymous_url("/whep/cam"))).await.expect("probe ends").unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
    daemon.stop().await;
}
