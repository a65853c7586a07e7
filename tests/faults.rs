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

/// How a FIFO camera's writer behaves before the daemon is told to stop.
#[derive(Clone, Copy)]
enum Writer {
    /// Writes this many frames, then closes: the pipeline ends, restarts, and blocks in
    /// filesrc's open() waiting for a writer that never comes (0: the first pipeline fails
    /// with "No valid frames found before end of stream" first).
    CloseAfter(usize),
    /// Writes a second of frames, then stays open and silent: filesrc blocks in read(), so the
    /// stalled pipeline cannot be stopped.
    HangAfterASecond,
}

/// The daemon binary with one camera reading raw frames from a FIFO, its log lines on a
/// channel; SIGTERM once the source is blocked; returns whether it exited and its log.
fn stop_with_a_blocked_fifo_source(writer: Writer, blocked_when: &str, needed: usize) -> (Option<std::process::ExitStatus>, Vec<String>) {
    use std::io::{BufRead, BufReader, Write};
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("camera.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[led]\nbackend = \"none\"\n\
             [[camera]]\nname = \"fifocam\"\nwidth = 320\nheight = 240\nstall_timeout = \"1s\"\n\
             source = {{ pipeline = \"filesrc location={} ! rawvideoparse width=320 height=240 format=i420 framerate=30/1\" }}\n\
             [camera.recording]\nenabled = false\n",
            dir.path().join("data").display(),
            fifo.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "lookout=info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let feeder = std::thread::spawn(move || {
        let frame = vec![128u8; 320 * 240 * 3 / 2];
        let frames = match writer {
            Writer::CloseAfter(n) => n,
            Writer::HangAfterASecond => 30,
        };
        let mut written = 0;
        // filesrc opens the FIFO once to answer a query and again to read it: a writer that
        // met the first open sees the pipe break, and opens it again for the second.
        let f = loop {
            // Opening a FIFO for writing waits for a reader (the daemon's filesrc).
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else { return };
            while written < frames && f.write_all(&frame).is_ok() {
                written += 1;
                std::thread::sleep(Duration::from_millis(33));
            }
            if written == frames {
                break f;
            }
        };
        if let Writer::HangAfterASecond = writer {
            std::thread::sleep(Duration::from_secs(120));
        }
        drop(f);
    });

    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = |log: &[String]| log.iter().filter(|l| l.contains(blocked_when)).count();
    while ready(&log) < needed {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => panic!("the source never got blocked (no {needed}× `{blocked_when}`): {log:#?}"),
        }
    }
    // The blocked call has begun (logged just before it); give it a moment to be inside it
    // (with no frames at all, also to fail and restart into the blocked open).
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    // Generous: this catches a daemon that never exits, it does not time the stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        log.push(line);
    }
    drop(feeder);
    (status, log)
}

#[test]
fn a_stop_finishes_while_a_restarted_camera_is_blocked_opening_its_fifo() {
    let (status, log) = stop_with_a_blocked_fifo_source(Writer::CloseAfter(60), "starting camera", 2);
    let status = status.unwrap_or_else(|| panic!("SIGTERM ignored: the daemon did not exit: {log:#?}"));
    assert!(status.success(), "{status}: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("fifocam") && l.contains("stuck starting its source")),
        "the stuck camera is named in the log: {log:#?}"
    );
}

#[test]
fn a_stop_finishes_when_the_first_pipeline_found_no_frames_and_the_restart_blocks() {
    let (status, log) = stop_with_a_blocked_fifo_source(Writer::CloseAfter(0), "starting camera", 1);
    let status = status.unwrap_or_else(|| panic!("SIGTERM ignored: the daemon did not exit: {log:#?}"));
    assert!(status.success(), "{status}: {log:#?}");
    assert!(log.iter().any(|l| l.contains("stuck starting its source")), "{log:#?}");
}

#[test]
fn a_stop_finishes_while_a_stalled_camera_is_blocked_reading_its_fifo() {
    let (status, log) = stop_with_a_blocked_fifo_source(Writer::HangAfterASecond, "camera offline", 1);
    let status = status.unwrap_or_else(|| panic!("SIGTERM ignored: the daemon did not exit: {log:#?}"));
    assert!(status.success(), "{status}: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("fifocam") && l.contains("did not stop within")),
        "the stuck camera is named in the log: {log:#?}"
    );
}
