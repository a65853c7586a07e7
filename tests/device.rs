//! The device side end to end: the status LED on a fake sysfs tree, actions, Prometheus
//! metrics, and the systemd notify protocol (READY, WATCHDOG pings that stop when a
//! pipeline is wedged) against a fake `$NOTIFY_SOCKET`.

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lookout::config::{Led, LedBackend};

use common::whep::WhepViewer;
use common::{Daemon, config_with, test_camera};

fn fake_act_led(root: &Path) -> PathBuf {
    let dir = root.join("ACT");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trigger"), "none [mmc0] timer heartbeat").unwrap();
    std::fs::write(dir.join("brightness"), "0").unwrap();
    std::fs::write(dir.join("max_brightness"), "1").unwrap();
    dir
}

/// Samples the fake LED's brightness every 5 ms for `span`; returns the level changes.
async fn count_changes(dir: &Path, span: Duration) -> usize {
    let end = Instant::now() + span;
    let mut last = None;
    let mut changes = 0;
    while Instant::now() < end {
        let level = std::fs::read_to_string(dir.join("brightness")).unwrap_or_default();
        if last.as_ref().is_some_and(|l| *l != level) {
            changes += 1;
        }
        last = Some(level);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_led_follows_the_daemon_and_identify_and_gets_its_trigger_back() {
    let leds = tempfile::tempdir().unwrap();
    let act = fake_act_led(leds.path());
    let mut config = config_with(vec![test_camera("cam")]);
    config.cameras[0].recording.enabled = false;
    config.led = Led { backend: LedBackend::Sysfs, sysfs_root: leds.path().to_owned(), ..Led::default() };
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("online");
    assert_eq!(std::fs::read_to_string(act.join("trigger")).unwrap(), "none", "the daemon took the LED over");

    // Ready: one 100 ms blink every 2 s → at most 2 changes in 1.5 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = count_changes(&act, Duration::from_millis(1500)).await;
    assert!(idle <= 2, "ready blinks slowly, saw {idle} changes in 1.5 s");

    let status = reqwest::Client::new().post(daemon.url("/api/actions/identify")).send().await.unwrap().status();
    assert_eq!(status, 202);
    // Identify: 50/50 ms → ~20 changes a second; sampling at 5 ms sees most of them.
    let identify = count_changes(&act, Duration::from_secs(1)).await;
    assert!(identify >= 10, "identify flickers fast, saw {identify} changes in 1 s");

    let unknown = reqwest::Client::new().post(daemon.url("/api/actions/dance")).send().await.unwrap().status();
    assert_eq!(unknown, 404);

    daemon.stop().await;
    assert_eq!(std::fs::read_to_string(act.join("trigger")).unwrap(), "mmc0", "trigger restored on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_action_saves_a_jpeg_of_every_camera() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.cameras[0].recording.enabled = false;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("online");
    let status = reqwest::Client::new().post(daemon.url("/api/actions/snapshot")).send().await.unwrap().status();
    assert_eq!(status, 202);
    let dir = daemon.data.join("snapshots/cam");
    let deadline = Instant::now() + Duration::from_secs(10);
    let jpeg = loop {
        let found =
            std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "jpg"));
        if let Some(p) = found {
            break std::fs::read(p).unwrap();
        }
        assert!(Instant::now() < deadline, "no snapshot saved in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_describe_the_cameras() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon
        .wait_state("cam", Duration::from_secs(15), |c| c["recording"] == true && c["measured_fps"].as_f64() > Some(0.0))
        .await
        .expect("recording");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("viewer admitted");
    assert!(viewer.wait_frames(10, Duration::from_secs(10)).await);
    // Let a segment's first fragment reach the disk (fragments are 1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let response = reqwest::get(daemon.url("/metrics")).await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition text");
    let value = |name: &str| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("camera") == Some("cam"))
            .unwrap_or_else(|| panic!("{name}{{camera=\"cam\"}} missing in:\n{text}"));
        match sample.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(value("lookout_camera_online"), 1.0);
    assert!((20.0..=40.0).contains(&value("lookout_camera_fps")), "fps {}", value("lookout_camera_fps"));
    assert!(value("lookout_camera_bitrate_bits_per_second") > 100_000.0);
    assert_eq!(value("lookout_camera_viewers"), 1.0);
    assert_eq!(value("lookout_camera_restarts_total"), 0.0);
    assert_eq!(value("lookout_camera_dropped_frames_total"), value("lookout_camera_dropped_frames_total").max(0.0));
    assert_eq!(value("lookout_camera_recording"), 1.0);
    assert!(value("lookout_recording_bytes") > 0.0);
    assert!(scrape.docs.contains_key("lookout_camera_fps"), "HELP lines present");
    let has = |name: &str| scrape.samples.iter().any(|s| s.metric == name);
    for gauge in [
        "lookout_load_average",
        "lookout_memory_total_bytes",
        "lookout_uptime_seconds",
        "lookout_data_total_bytes",
        "lookout_data_free_bytes",
    ] {
        assert!(has(gauge), "{gauge} missing");
    }
    viewer.delete().await;
    daemon.stop().await;
}

/// The daemon binary under a fake systemd: a notify socket, and the watchdog's variables.
struct UnderSystemd {
    child: std::process::Child,
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl UnderSystemd {
    fn start(dir: tempfile::TempDir, camera_toml: &str, watchdog: Duration) -> UnderSystemd {
        let notify = dir.path().join("notify");
        let socket = UnixDatagram::bind(&notify).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let config = dir.path().join("lookout.toml");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[led]\nbackend = \"none\"\n{camera_toml}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .spawn()
            .unwrap();
        UnderSystemd { child, socket, _dir: dir }
    }

    /// The next notify message within `timeout`, with when it arrived.
    fn next(&self, timeout: Duration) -> Option<(Instant, String)> {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 512];
        while Instant::now() < end {
            if let Ok(n) = self.socket.recv(&mut buf) {
                return Some((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        }
        None
    }
}

impl Drop for UnderSystemd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ready_is_sent_once_serving_and_watchdog_pings_come_at_half_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = UnderSystemd::start(
        dir,
        "[[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\n[camera.recording]\nenabled = false\n",
        Duration::from_secs(2),
    );
    let (_, first) = daemon.next(Duration::from_secs(30)).expect("a notify message");
    assert!(first.starts_with("READY=1"), "first message is READY, got {first:?}");
    assert!(first.contains("STATUS=1 of 1 camera(s) online"), "{first:?}");
    let mut pings = Vec::new();
    while pings.len() < 6 {
        let (at, msg) = daemon.next(Duration::from_secs(3)).expect("pings keep coming");
        if msg == "WATCHDOG=1" {
            pings.push(at);
        }
    }
    let mut gaps: Vec<f64> = pings.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    assert!((0.8..=1.2).contains(&median), "pings every {median:.2} s, want 1 s (half of WatchdogSec=2s): {gaps:?}");
}

#[test]
fn a_wedged_pipeline_stops_the_watchdog_pings() {
    // A camera fed from a FIFO: a few frames, then the writer stays open and silent. The
    // source's streaming thread blocks in read(), so after the stall the supervisor cannot
    // stop the pipeline: it is wedged, as a hung driver would leave it.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("camera.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let camera = format!(
        "[[camera]]\nname = \"cam\"\nwidth = 320\nheight = 240\nstall_timeout = \"2s\"\n\
         source = {{ pipeline = \"filesrc location={} ! rawvideoparse width=320 height=240 format=i420 framerate=30/1\" }}\n\
         [camera.recording]\nenabled = false\n",
        fifo.display()
    );
    let daemon = UnderSystemd::start(dir, &camera, Duration::from_secs(2));
    // Opening a FIFO for writing waits for the reader (the daemon's filesrc).
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let frame = vec![128u8; 320 * 240 * 3 / 2];
        for _ in 0..90 {
            if f.write_all(&frame).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(33));
        }
        // Keep the FIFO open, silent, until the test ends.
        std::thread::sleep(Duration::from_secs(90));
        drop(f);
    });

    let (_, ready) = daemon.next(Duration::from_secs(30)).expect("READY");
    assert!(ready.starts_with("READY=1"), "{ready:?}");
    let mut saw_ping = false;
    let mut not_alive = None;
    let mut last_ping = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match daemon.next(Duration::from_millis(500)) {
            Some((at, msg)) if msg == "WATCHDOG=1" => {
                assert!(not_alive.is_none(), "a ping after the daemon declared itself not alive");
                saw_ping = true;
                last_ping = at;
            }
            Some((_, msg)) if msg.starts_with("STATUS=not alive") => not_alive = Some(msg),
            _ => {}
        }
        if not_alive.is_some() && last_ping.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    assert!(saw_ping, "pings while the camera was fine");
    let reason = not_alive.expect("the daemon noticed the wedge");
    assert!(reason.contains("camera cam") && reason.contains("wedged"), "{reason}");
    assert!(last_ping.elapsed() > Duration::from_secs(5), "pings stopped");
    drop(daemon);
    drop(writer);
}
