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
use common::{Daemon, HANG, config_with, test_camera};

fn fake_act_led(root: &Path) -> PathBuf {
    let dir = root.join("ACT");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trigger"), "none [mmc0] timer heartbeat").unwrap();
    std::fs::write(dir.join("brightness"), "0").unwrap();
    std::fs::write(dir.join("max_brightness"), "1").unwrap();
    dir
}

/// Samples the fake LED's brightness every few ms until `enough` holds for the levels seen
/// so far (in order, one entry per change) or `within` passes; returns the levels seen.
async fn watch_led(dir: &Path, within: Duration, enough: impl Fn(&[String]) -> bool) -> Vec<String> {
    let end = Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    while Instant::now() < end && !enough(&seen) {
        // Empty: read between the truncate and the write of a change.
        let level = std::fs::read_to_string(dir.join("brightness")).unwrap_or_default().trim().to_owned();
        if !level.is_empty() && seen.last() != Some(&level) {
            seen.push(level);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_led_follows_the_daemon_and_identify_and_gets_its_trigger_back() {
    let leds = tempfile::tempdir().unwrap();
    let act = fake_act_led(leds.path());
    let mut config = config_with(vec![test_camera("cam")]);
    config.cameras[0].recording.enabled = false;
    config.led = Led { backend: LedBackend::Sysfs, sysfs_root: leds.path().to_owned(), ..Led::default() };
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    assert_eq!(std::fs::read_to_string(act.join("trigger")).unwrap(), "none", "the daemon took the LED over");

    // Ready (or degraded, if this machine raises a health warning): the LED blinks, so it is
    // seen switched on and off again. The pattern's timing is unit-tested in src/device/led.rs.
    let blink = watch_led(&act, HANG, |l| l.windows(2).any(|w| w == ["1", "0"])).await;
    assert!(blink.windows(2).any(|w| w == ["1", "0"]), "the LED never blinked: {blink:?}");

    let status = reqwest::Client::new().post(daemon.url("/api/actions/identify")).send().await.unwrap().status();
    assert_eq!(status, 202);
    // Identify flickers at 10 Hz for IDENTIFY_FOR (10 s): 200 changes. Watched over that time
    // only (afterwards the slow patterns come back), 30 changes tell it from every other
    // pattern: ready makes at most 11 in 10 s, degraded 21. Sampling every few ms sees most
    // flickers; a sampler starved to a few reads a second would still see about half.
    let identify = watch_led(&act, lookout::device::led::IDENTIFY_FOR, |l| l.len() > 30).await;
    assert!(
        identify.len() > 30,
        "identify should flicker: {} changes seen in {:?}",
        identify.len() - 1,
        lookout::device::led::IDENTIFY_FOR
    );

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
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let status = reqwest::Client::new().post(daemon.url("/api/actions/snapshot")).send().await.unwrap().status();
    assert_eq!(status, 202);
    let dir = daemon.data.join("snapshots/cam");
    let deadline = Instant::now() + HANG;
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
async fn snapshots_saved_by_the_action_are_pruned_to_the_newest() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.cameras[0].recording.enabled = false;
    config.storage.snapshots_keep = 2;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let dir = daemon.data.join("snapshots/cam");
    let listed = || {
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        let status = reqwest::Client::new().post(daemon.url("/api/actions/snapshot")).send().await.unwrap().status();
        assert_eq!(status, 202);
        let deadline = Instant::now() + HANG;
        let newest = loop {
            if let Some(n) = listed().last().filter(|n| !seen.contains(*n)) {
                break n.clone();
            }
            assert!(Instant::now() < deadline, "no new snapshot in {}", dir.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        seen.push(newest);
    }
    // Pruning follows the write: give the last one a moment, then only the newest two remain.
    let deadline = Instant::now() + HANG;
    while listed().len() > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed(), seen[2..].to_vec());
    daemon.stop().await;
}

/// One scrape of `/metrics`, parsed.
struct Scrape {
    text: String,
    parsed: prometheus_parse::Scrape,
}

impl Scrape {
    async fn of(daemon: &Daemon) -> Scrape {
        let response = reqwest::get(daemon.url("/metrics")).await.unwrap();
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = response.text().await.unwrap();
        let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition text");
        Scrape { text, parsed }
    }

    /// The sample of `name` for camera `cam`.
    fn cam(&self, name: &str) -> f64 {
        let sample = self
            .parsed
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("camera") == Some("cam"))
            .unwrap_or_else(|| panic!("{name}{{camera=\"cam\"}} missing in:\n{}", self.text));
        match sample.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.parsed.samples.iter().any(|s| s.metric == name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_describe_the_cameras() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["recording"] == true && c["measured_fps"].as_f64() > Some(0.0)).await.expect("recording");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("viewer admitted");
    assert!(viewer.wait_frames(10, HANG).await, "viewer got {} frames", viewer.frames());
    let dropped_before = daemon.camera_state("cam").await["dropped_frames"].as_u64().expect("dropped_frames in /api/state");

    // The gauges describe a stream that is running: wait until a segment's first fragment is
    // on disk (fragments are 1 s) and the camera's measured rates are those it was set to.
    let deadline = Instant::now() + HANG;
    let scrape = loop {
        let scrape = Scrape::of(&daemon).await;
        if scrape.cam("lookout_recording_bytes") > 0.0
            && (20.0..=40.0).contains(&scrape.cam("lookout_camera_fps"))
            && scrape.cam("lookout_camera_bitrate_bits_per_second") > 100_000.0
        {
            break scrape;
        }
        assert!(Instant::now() < deadline, "no recording bytes, or not ~30 fps at ~1 Mbit/s:\n{}", scrape.text);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(scrape.cam("lookout_camera_online"), 1.0);
    assert_eq!(scrape.cam("lookout_camera_viewers"), 1.0);
    assert_eq!(scrape.cam("lookout_camera_restarts_total"), 0.0);
    assert_eq!(scrape.cam("lookout_camera_recording"), 1.0);
    assert_eq!(scrape.cam("lookout_camera_recording_switch"), 1.0);
    // Frames outputs dropped. Not necessarily 0 with nothing slow: a joining output (the
    // viewer, the recorder) skips frames until its first keyframe, and those count. So: a
    // count, and the same counter /api/state reports, which copies it every few seconds. It
    // only grows, so it is at least what the state said before, and the state catches up.
    let dropped = scrape.cam("lookout_camera_dropped_frames_total");
    assert!(dropped.is_finite() && dropped >= 0.0 && dropped.fract() == 0.0, "dropped frames {dropped}");
    assert!(dropped >= dropped_before as f64, "metric {dropped} behind /api/state's earlier {dropped_before}");
    daemon
        .wait_state("cam", HANG, |c| c["dropped_frames"].as_u64().is_some_and(|d| d as f64 >= dropped))
        .await
        .unwrap_or_else(|c| panic!("/api/state never reported the {dropped} dropped frames of /metrics: {c}"));
    assert!(scrape.parsed.docs.contains_key("lookout_camera_fps"), "HELP lines present");
    for gauge in [
        "lookout_load_average",
        "lookout_memory_total_bytes",
        "lookout_uptime_seconds",
        "lookout_data_total_bytes",
        "lookout_data_free_bytes",
    ] {
        assert!(scrape.has(gauge), "{gauge} missing");
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

/// `WatchdogSec` for the tests: 10 s, not the 2 s a tight test would pick. The daemon pings
/// at half of it and its liveness check may take up to that half; on a loaded machine a 1 s
/// timer or a self-probe over HTTP can slip by a second, which is no defect. At 10 s the
/// contract (a ping at least every `WatchdogSec`, or systemd kills the service) has room
/// for any hiccup short of a hang.
const WATCHDOG: Duration = Duration::from_secs(10);

#[test]
fn ready_is_sent_once_serving_and_watchdog_pings_come_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = UnderSystemd::start(
        dir,
        "[[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\n[camera.recording]\nenabled = false\n",
        WATCHDOG,
    );
    let (ready_at, first) = daemon.next(HANG).expect("a notify message");
    assert!(first.starts_with("READY=1"), "first message is READY, got {first:?}");
    assert!(first.contains("STATUS=1 of 1 camera(s) online"), "{first:?}");
    // Watched for four intervals: each ping must come within one of the one before (READY
    // starts the count), or systemd would kill the daemon.
    let mut pings = Vec::new();
    let mut last = ready_at;
    let mut other = Vec::new();
    while ready_at.elapsed() < WATCHDOG * 4 {
        let (at, msg) = daemon
            .next(WATCHDOG.saturating_sub(last.elapsed()))
            .unwrap_or_else(|| panic!("no ping for {WATCHDOG:?}: systemd would have killed the daemon; other messages: {other:?}"));
        if msg == "WATCHDOG=1" {
            pings.push(at);
            last = at;
        } else {
            other.push(msg);
        }
    }
    // And at about half the interval, as sd_watchdog_enabled(3) advises: some 8 pings in
    // four intervals. Pinging once per interval would make at most 5.
    assert!(
        pings.len() >= 6,
        "{} pings in {:?}, want about 8 (every half WatchdogSec); other messages: {other:?}",
        pings.len(),
        WATCHDOG * 4
    );
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
    let daemon = UnderSystemd::start(dir, &camera, WATCHDOG);
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
        std::thread::sleep(Duration::from_secs(300));
        drop(f);
    });

    let (_, ready) = daemon.next(HANG).expect("READY");
    assert!(ready.starts_with("READY=1"), "{ready:?}");
    let mut saw_ping = false;
    let mut not_alive = None;
    let mut last_ping = Instant::now();
    // The wedge shows after the stall (2 s) and WEDGED_AFTER (15 s) of a silent supervisor;
    // then no ping may come for a whole WatchdogSec, after which systemd restarts the daemon.
    let deadline = Instant::now() + Duration::from_secs(150);
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
        if not_alive.is_some() && last_ping.elapsed() > WATCHDOG {
            break;
        }
    }
    assert!(saw_ping, "pings while the camera was fine");
    let reason = not_alive.expect("the daemon noticed the wedge");
    assert!(reason.contains("camera cam") && reason.contains("wedged"), "{reason}");
    assert!(last_ping.elapsed() > WATCHDOG, "pings stopped for a whole WatchdogSec");
    drop(daemon);
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_led_from_the_settings_api_is_taken_and_the_old_one_given_back() {
    let leds = tempfile::tempdir().unwrap();
    let act = fake_act_led(leds.path());
    let pwr = leds.path().join("PWR");
    std::fs::create_dir_all(&pwr).unwrap();
    for (file, text) in [("trigger", "none [default-on] timer"), ("brightness", "1"), ("max_brightness", "1")] {
        std::fs::write(pwr.join(file), text).unwrap();
    }
    let text = format!(
        "[storage]\nmin_free = \"64MB\"\n[led]\nbackend = \"sysfs\"\nsysfs_root = \"{}\"\nnames = [\"ACT\"]\n\
         [[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\n[camera.recording]\nenabled = false\n",
        leds.path().display()
    );
    let daemon = Daemon::start(lookout::config::Config::from_toml(&text, Path::new("lookout.toml")).unwrap()).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    assert_eq!(std::fs::read_to_string(act.join("trigger")).unwrap(), "none", "ACT taken");

    let owner = daemon.owner().await;
    let changed =
        owner.patch(format!("{}/api/config", daemon.base)).json(&serde_json::json!({ "led": { "names": ["PWR"] } })).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    let changed: serde_json::Value = changed.json().await.unwrap();
    assert_eq!(changed["restart_required"], serde_json::json!([]), "{changed}");
    let deadline = Instant::now() + HANG;
    while std::fs::read_to_string(pwr.join("trigger")).unwrap() != "none" {
        assert!(Instant::now() < deadline, "PWR never taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(act.join("trigger")).unwrap(), "mmc0", "ACT given back to its trigger");
    daemon.stop().await;
    assert_eq!(std::fs::read_to_string(pwr.join("trigger")).unwrap(), "default-on", "PWR given back on shutdown");
}
