//! The page in real browsers driven over WebDriver: headless Chromium (WebRTC/WHEP) and
//! Firefox ESR (no H.264 in its WebRTC here, so the page falls back to MSE); each `<video>`
//! must report decoded frames.

mod common;

const LIVE_FRAMES: &str = "return document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames";

use std::time::{Duration, Instant};

use serde_json::json;

use common::webdriver::Driver;
use common::{Daemon, HANG, OWNER_PASSWORD, config_with, free_udp_port, rtp_camera, rtp_sender, test_camera};
use gst::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_the_live_view_and_a_recording() {
    let mut camera = test_camera("cam");
    camera.recording.segment = Duration::from_secs(2);
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let driver = Driver::chromium().await;
    driver.login(&daemon.base, "admin", OWNER_PASSWORD).await;

    let frames = driver.wait_above(LIVE_FRAMES, 30, HANG).await;
    assert_eq!(driver.eval("return window.lookoutPlayers().cam").await, "whep");
    // The page times its join (what scripts/bench/first-frame reads): answer, then a frame.
    let timing = driver.eval("return window.lookoutTimings().cam").await;
    let (answer, first) = (timing["answerMs"].as_f64(), timing["firstFrameMs"].as_f64());
    assert!(answer.is_some_and(|a| a > 0.0) && first.is_some_and(|f| f >= answer.unwrap()), "join timing: {timing}");
    let health = driver.eval("return document.getElementById('device-health').textContent").await;
    assert!(health.as_str().is_some_and(|h| h.contains("load")), "health shown on the page: {health}");
    let overlay = driver.eval("return document.querySelector('.overlay').dataset.state").await;
    let size = driver.eval("const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight]").await;
    assert!(frames > 30, "Chromium decoded {frames} frames; overlay {overlay}");
    assert_eq!(overlay, "live");
    assert_eq!(size, json!([640, 360]));
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 1).await.expect("the page is one viewer");
    // The page follows the device over /api/events (no polling): it has heard events.
    let heard = driver.wait_above("return window.lookoutEventSeq", 0, HANG).await;
    assert!(heard > 0, "the page heard no event");
    // Live latency, from the session's data channel (the newest frame's capture time, the
    // device's clock aligned by ping/pong, and the RTP timestamp of the frame on screen).
    let latency = wait_string(&driver, "const t = document.querySelector('.latency').textContent; return t.endsWith(' ms') ? t : ''").await;
    let ms: u64 = latency.trim_end_matches(" ms").parse().unwrap_or_else(|_| panic!("latency shown as {latency}"));
    println!("the page shows a latency of {latency}");
    // That it is this stream's latency (same machine, same clock; ~40 ms here), not a speed
    // assertion: seconds would mean a frame mapped to the wrong capture time.
    assert!(ms < 3_000, "a latency of {latency} means the frame's capture time or the clocks are wrong");

    // The recordings panel draws what was recorded and plays it when clicked.
    let deadline = Instant::now() + HANG;
    loop {
        let listing = daemon.get_json("/api/cameras/cam/recordings").await;
        if listing["segments"].as_array().is_some_and(|s| s.iter().any(|s| s["recording"] == false)) {
            break;
        }
        assert!(Instant::now() < deadline, "no finished segment: {listing}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    driver.eval("const d = document.querySelector('.recordings'); d.open = true; d.dispatchEvent(new Event('toggle')); return true").await;
    let deadline = Instant::now() + HANG;
    let spans = loop {
        let n = driver.eval("return document.querySelectorAll('.timeline .span:not(.live)').length").await.as_u64().unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(spans > 0, "no recorded span drawn: {}", driver.eval("return document.querySelector('.rec-summary').textContent").await);
    driver
        .eval(
            "const s = document.querySelector('.timeline .span:not(.live)'); const r = s.getBoundingClientRect();              s.parentElement.dispatchEvent(new MouseEvent('click', {clientX: r.left + r.width / 2, clientY: r.top + 2, bubbles: true})); return true",
        )
        .await;
    let played = driver.wait_above("return document.querySelector('.playback').getVideoPlaybackQuality().totalVideoFrames", 10, HANG).await;
    assert!(played > 10, "recorded segment did not play in the page: {played} frames");

    // The download and export links the page offers fetch real MP4s.
    let links = driver.eval("return [document.querySelector('.download').href, document.querySelector('.export').href]").await;
    let owner = daemon.owner().await;
    for link in [&links[0], &links[1]] {
        let url = link.as_str().filter(|u| u.starts_with("http")).unwrap_or_else(|| panic!("no link: {links}"));
        assert_eq!(reqwest::get(url).await.unwrap().status().as_u16(), 401, "{url} needs a login");
        let r = owner.get(url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{url}");
        let body = r.bytes().await.unwrap();
        assert!(body.len() > 1000 && &body[4..8] == b"ftyp", "{url} is not an MP4 ({} bytes)", body.len());
    }

    // The page's recording switch: the owner sees it, it stops recording, and the page
    // says so from the events it hears.
    let button = "const b = document.querySelector('.rec-switch'); return b.offsetParent ? b.textContent : ''";
    assert_eq!(wait_string(&driver, button).await, "Stop recording");
    driver.eval("document.querySelector('.rec-switch').click(); return true").await;
    daemon.wait_state("cam", HANG, |c| c["recording_switch"] == false && c["recording"] == false).await.expect("switched off");
    let said = "const t = document.querySelector('.rec-state').textContent; return t.includes('switched off') ? t : ''";
    wait_string(&driver, said).await;
    assert_eq!(wait_string(&driver, button).await, "Start recording");
    driver.quit().await;
    daemon.stop().await;
}

/// Base64 of the SHA-256 of `cert`'s public key, as Chromium's SPKI list wants it.
fn spki_hash(cert: &std::path::Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = std::process::Command::new("sh").args(["-c", &script]).output().expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_over_https_logs_in_and_plays_the_live_view_and_plain_http_leads_there() {
    let daemon = Daemon::start_https(config_with(vec![test_camera("cam")]), tempfile::tempdir().unwrap()).await;
    let _ = daemon.pinned_client(); // waits for the certificate file
    let driver = Driver::chromium_trusting(&spki_hash(&daemon.data.join("tls/cert.pem"))).await;
    // The user types the plain address; the device sends the browser to HTTPS.
    let plain = daemon.plain.clone().unwrap();
    driver.open(&format!("{plain}/")).await;
    let deadline = Instant::now() + HANG;
    loop {
        let at = driver.eval("return location.href").await;
        if at.as_str().is_some_and(|u| u.starts_with(&format!("{}/login", daemon.base))) {
            break;
        }
        assert!(Instant::now() < deadline, "plain HTTP did not lead to the HTTPS login page: {at}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    driver.login(&daemon.base, "admin", OWNER_PASSWORD).await;
    let frames = driver.wait_above(LIVE_FRAMES, 30, HANG).await;
    assert!(frames > 30, "Chromium decoded {frames} frames over HTTPS");
    assert_eq!(driver.eval("return window.lookoutPlayers().cam").await, "whep");
    // The page times its join (what scripts/bench/first-frame reads): answer, then a frame.
    let timing = driver.eval("return window.lookoutTimings().cam").await;
    let (answer, first) = (timing["answerMs"].as_f64(), timing["firstFrameMs"].as_f64());
    assert!(answer.is_some_and(|a| a > 0.0) && first.is_some_and(|f| f >= answer.unwrap()), "join timing: {timing}");
    assert_eq!(driver.eval("return location.protocol").await, "https:");
    driver.quit().await;
    daemon.stop().await;
}

/// A daemon with one online test-pattern camera, and `browser` showing its page.
async fn page_with_a_test_camera(browser: impl std::future::Future<Output = Driver>) -> (Daemon, Driver) {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let driver = browser.await;
    driver.login(&daemon.base, "admin", OWNER_PASSWORD).await;
    (daemon, driver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_live_view_plays_and_fits_the_screen() {
    let (daemon, driver) = page_with_a_test_camera(Driver::chromium_phone()).await;
    let seen = driver.wait_above(LIVE_FRAMES, 30, HANG).await;
    assert!(seen > 30, "the page decoded only {seen} frames");
    let layout = driver
        .eval(
            "const v = document.querySelector('video').getBoundingClientRect(); \
             return [window.innerWidth, document.documentElement.scrollWidth, v.left, v.right, v.height]",
        )
        .await;
    let n = |i: usize| layout[i].as_f64().unwrap_or(f64::NAN);
    assert_eq!(n(0), 390.0, "phone viewport: {layout}");
    assert!(n(1) <= n(0), "the page scrolls sideways on a phone: {layout}");
    assert!(n(2) >= 0.0 && n(3) <= n(0) && n(4) > 150.0, "the video does not fit the screen: {layout}");
    driver.quit().await;
    daemon.stop().await;
}

const OVERLAY: &str = "const o = document.querySelector('.overlay'); return [o.dataset.state, o.textContent]";

/// Polls the overlay until it shows `state`; returns its text.
async fn wait_overlay(driver: &Driver, state: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = driver.eval(OVERLAY).await;
        if seen[0] == state {
            return seen[1].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "overlay never showed {state}: {seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_an_offline_camera_and_a_lost_device_and_recovers_from_both() {
    let port = free_udp_port();
    let sender = rtp_sender(port);
    sender.set_state(gst::State::Playing).unwrap();
    let config = config_with(vec![rtp_camera("ipcam", port)]);
    let daemon = Daemon::start(config.clone()).await;
    daemon.wait_state("ipcam", HANG, |c| c["online"] == true).await.expect("camera online");
    let driver = Driver::chromium().await;
    driver.login(&daemon.base, "admin", OWNER_PASSWORD).await;
    let seen = driver.wait_above(LIVE_FRAMES, 30, HANG).await;
    assert!(seen > 30, "the page decoded only {seen} frames");
    wait_overlay(&driver, "live", HANG).await;

    // The camera goes silent: the page says so, with the reason, then plays again by itself.
    sender.set_state(gst::State::Null).unwrap();
    let text = wait_overlay(&driver, "offline", HANG).await;
    assert!(text.contains("Camera offline") && text.contains("no frames"), "{text}");
    sender.set_state(gst::State::Playing).unwrap();
    wait_overlay(&driver, "live", HANG).await;
    let before = driver.eval(LIVE_FRAMES).await.as_u64().unwrap_or(0);
    let seen = driver.wait_above(LIVE_FRAMES, before + 30, HANG).await;
    assert!(seen > before + 30, "the page decoded only {} frames after recovering", seen.saturating_sub(before));
    // The silence is a gap in the recording, marked on the timeline.
    driver.eval("const d = document.querySelector('.recordings'); d.open = true; d.dispatchEvent(new Event('toggle')); return true").await;
    let seen = driver.wait_above("return document.querySelectorAll('.timeline .gap').length", 0, HANG).await;
    assert!(seen > 0, "no gap marked on the timeline after the camera was silent");

    // The device restarts: the player says it is reconnecting, and is live again afterwards.
    let addr = daemon.base.trim_start_matches("http://").to_owned();
    let data = daemon.stop().await;
    let text = wait_overlay(&driver, "reconnecting", HANG).await;
    assert!(text.contains("Reconnecting"), "{text}");
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("same address again");
    let daemon = Daemon::start_on(config, data, listener).await;
    wait_overlay(&driver, "live", HANG).await;
    let before = driver.eval(LIVE_FRAMES).await.as_u64().unwrap_or(0);
    let seen = driver.wait_above(LIVE_FRAMES, before + 30, HANG).await;
    assert!(seen > before + 30, "the page decoded only {} frames after recovering", seen.saturating_sub(before));
    driver.quit().await;
    sender.set_state(gst::State::Null).unwrap();
    daemon.stop().await;
}

const VIDEO: &str = "const v = document.querySelector('video')";
/// Seconds of buffered video ahead of the playback position.
const LAG: &str = "v.buffered.end(v.buffered.length - 1) - v.currentTime";

/// Waits until the live view plays less than `bound` seconds behind the newest video it has.
async fn wait_lag_below(driver: &Driver, bound: f64) {
    let deadline = Instant::now() + HANG;
    loop {
        let lag = driver.eval(&format!("{VIDEO}; return v.buffered.length ? {LAG} : null")).await;
        if lag.as_f64().is_some_and(|l| l < bound) {
            return;
        }
        assert!(Instant::now() < deadline, "playback stayed {lag} s behind live for {HANG:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_without_webrtc_h264_plays_the_live_view_over_mse() {
    let (daemon, driver) = page_with_a_test_camera(Driver::firefox()).await;
    let frames = driver.wait_above(LIVE_FRAMES, 30, HANG).await;
    let overlay = driver.eval("return document.querySelector('.overlay').dataset.state").await;
    assert!(frames > 30, "Firefox decoded {frames} frames; overlay {overlay}");
    assert_eq!(driver.eval("return window.lookoutPlayers().cam").await, "mse");
    assert_eq!(overlay, "live");
    let size = driver.eval("const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight]").await;
    assert_eq!(size, json!([640, 360]));
    // Playback keeps to the live edge: the player reaches it, and when it falls behind (a
    // tab in the background, a slow machine) it jumps forward again by itself instead of
    // staying late. Seen with generous deadlines: only a player that does not chase the
    // live edge fails.
    wait_lag_below(&driver, 1.0).await;
    let deadline = Instant::now() + HANG;
    let span = format!("{VIDEO}; return v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.buffered.start(0) : 0");
    while driver.eval(&span).await.as_f64() < Some(2.0) {
        assert!(Instant::now() < deadline, "never 2 s of video buffered to fall behind in");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let late = driver.eval(&format!("{VIDEO}; v.currentTime = v.buffered.start(0); return {LAG}")).await;
    let late = late.as_f64().unwrap_or_else(|| panic!("no lag: {late}"));
    assert!(late > 1.0, "could not put playback behind live: {late} s (buffered too little?)");
    wait_lag_below(&driver, 1.0).await;
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 1).await.expect("an MSE viewer counts");
    driver.quit().await;
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 0).await.expect("and leaves");
    daemon.stop().await;
}

/// Polls `script` until it returns a non-empty string; panics after [`HANG`].
async fn wait_string(driver: &Driver, script: &str) -> String {
    let deadline = Instant::now() + HANG;
    loop {
        if let Some(s) = driver.eval(script).await.as_str().filter(|s| !s.is_empty()) {
            return s.to_owned();
        }
        assert!(Instant::now() < deadline, "{script} stayed empty");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Serves one HTML page on another port: a "foreign site" the owner might have open.
async fn serve_foreign_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let response =
                format!("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}", html.len());
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sets_up_the_owner_plays_and_logs_out_and_a_foreign_page_cannot_reboot_or_read() {
    // The reboot action writes its request here (systemd's RuntimeDirectory on the device).
    let runtime = tempfile::tempdir().unwrap();
    // SAFETY: no other test of this binary reads or writes the environment.
    unsafe { std::env::set_var("RUNTIME_DIRECTORY", runtime.path()) };
    let reboot_request = runtime.path().join("reboot");
    let daemon = Daemon::start_in_setup(config_with(vec![test_camera("cam")])).await;
    let driver = Driver::chromium().await;

    // A new device: the page sends its first visitor to setup.
    driver.open(&daemon.anonymous_url("/")).await;
    assert_eq!(driver.wait_path("/setup", HANG).await, "/setup");
    driver.fill("[name=password]", "the owners password").await;
    driver.fill("[name=again]", "the owners password").await;
    driver.eval("document.querySelector('form').requestSubmit(); return true").await;
    assert_eq!(driver.wait_path("/", HANG).await, "/", "setup leads to the live page");
    let frames = driver.wait_above(LIVE_FRAMES, 30, HANG).await;
    assert!(frames > 30, "live video after setup: {frames} frames");

    // The owner's access panel: a token issued there works, and a viewer added there logs in.
    driver.eval("const d = document.getElementById('access'); d.open = true; d.dispatchEvent(new Event('toggle')); return true").await;
    driver.fill(".issue-token [name=label]", "from the page").await;
    driver.eval("document.querySelector('.issue-token [value=snapshot]').checked = true; document.querySelector('.issue-token').requestSubmit(); return true").await;
    let token = wait_string(&driver, "return document.querySelector('.issue-token .issued').value").await;
    let jpeg = reqwest::get(common::with_token(&daemon.anonymous_url("/api/cameras/cam/snapshot.jpg"), &token)).await.unwrap();
    assert_eq!(jpeg.status().as_u16(), 200, "the token issued on the page fetches a snapshot");
    driver.fill(".add-user [name=name]", "anna").await;
    driver.fill(".add-user [name=password]", "annas password").await;
    driver.eval("document.querySelector('.add-user').requestSubmit(); return true").await;
    let listed =
        wait_string(&driver, "return [...document.querySelectorAll('.users td')].map(t => t.textContent).includes('anna') ? 'yes' : ''")
            .await;
    assert_eq!(listed, "yes");
    assert!(common::login(&daemon.base, "anna", "annas password").await.is_ok(), "the viewer added on the page logs in");

    // A page on another port of the same host (same site: Chromium sends the SameSite=Strict
    // cookie along) tries to reboot the device and to read its API.
    let foreign = serve_foreign_page(format!(
        "<!doctype html><script>window.results = {{}};\
         fetch('{base}/api/actions/reboot', {{method: 'POST', mode: 'no-cors', credentials: 'include'}})\
           .then(() => results.reboot = 'sent', () => results.reboot = 'error');\
         fetch('{base}/api/state', {{credentials: 'include'}}).then(r => r.text())\
           .then(t => results.state = t, () => results.state = 'blocked');</script>",
        base = daemon.base
    ))
    .await;
    driver.open(&foreign).await;
    let deadline = Instant::now() + HANG;
    let results = loop {
        let r = driver.eval("return window.results").await;
        if (r["reboot"].is_string() && r["state"].is_string()) || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(results["state"], "blocked", "a foreign page read the API: {results}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!reboot_request.exists(), "a foreign page rebooted the device ({results})");

    // The owner's own page can (the same request, same origin), which shows the check above could fail.
    driver.open(&daemon.anonymous_url("/")).await;
    assert_eq!(driver.wait_path("/", HANG).await, "/");
    driver.eval("fetch('/api/actions/reboot', {method: 'POST'}); return true").await;
    let deadline = Instant::now() + HANG;
    while !reboot_request.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reboot_request.exists(), "the owner's own page could not ask for a reboot");

    // Logging out ends it: the API refuses, and the page sends the visitor to the login page.
    driver.eval("document.getElementById('logout').click(); return true").await;
    assert_eq!(driver.wait_path("/login", HANG).await, "/login");
    driver.eval("window.status401 = null; fetch('/api/state').then(r => window.status401 = r.status); return true").await;
    let status = driver.wait_above("return window.status401 || 0", 0, HANG).await;
    assert_eq!(status, 401, "the API after logout");
    driver.open(&daemon.anonymous_url("/")).await;
    assert_eq!(driver.wait_path("/login", HANG).await, "/login", "the live page after logout");
    driver.quit().await;
    daemon.stop().await;
}

/// A daemon whose settings the page may change (a config from text, one test camera `cam`
/// online), and Chromium logged in as the owner with the settings panel open.
async fn owner_in_the_settings_panel() -> (Daemon, Driver) {
    let text = "[storage]\nmin_free = \"64MB\"\n[led]\nbackend = \"none\"\n\
                [[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 15\n";
    let config = lookout::config::Config::from_toml(text, std::path::Path::new("lookout.toml")).unwrap();
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let driver = Driver::chromium().await;
    driver.login(&daemon.base, "admin", OWNER_PASSWORD).await;
    wait_string(&driver, "return document.getElementById('settings').hidden ? '' : 'shown'").await;
    driver.eval("const d = document.getElementById('settings'); d.open = true; d.dispatchEvent(new Event('toggle')); return true").await;
    (daemon, driver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_changes_a_cameras_rate_in_the_settings_panel_and_it_takes_effect() {
    let (daemon, driver) = owner_in_the_settings_panel().await;
    wait_string(&driver, "return document.querySelector('form.camera-setting[data-camera=cam]') ? 'form' : ''").await;
    driver
        .eval("const f = document.querySelector('form.camera-setting[data-camera=cam]'); f.elements.fps.value = '10'; f.requestSubmit(); return true")
        .await;
    let note =
        wait_string(&driver, "const n = document.querySelector('form.camera-setting .note'); return n && !n.hidden ? n.textContent : ''")
            .await;
    assert!(note.contains("cam restarted"), "{note}");
    daemon.wait_state("cam", HANG, |c| c["online"] == true && c["desired_fps"] == 10).await.expect("the new rate in force");
    driver.quit().await;
    daemon.stop().await;
}

/// Waits until the daemon's cameras are `names` (in any order) and each is online.
async fn wait_cameras_online(daemon: &Daemon, names: &[&str]) {
    let deadline = Instant::now() + HANG;
    loop {
        let state = daemon.get_json("/api/state").await;
        let cams = state["cameras"].as_array().cloned().unwrap_or_default();
        let mut online: Vec<&str> = cams.iter().filter(|c| c["online"] == true).filter_map(|c| c["name"].as_str()).collect();
        online.sort_unstable();
        let mut wanted = names.to_vec();
        wanted.sort_unstable();
        if online == wanted && cams.len() == names.len() {
            return;
        }
        assert!(Instant::now() < deadline, "cameras {names:?} not all online: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_adds_renames_and_removes_a_camera_in_the_settings_panel_and_the_live_view_follows() {
    let (daemon, driver) = owner_in_the_settings_panel().await;

    // Add: the form's camera starts, and the live view gets a card that plays it.
    wait_string(&driver, "return document.querySelector('form.add-camera') ? 'form' : ''").await;
    driver
        .eval(
            "const f = document.querySelector('form.add-camera'); f.elements.name.value = 'yard'; \
             f.elements.source.value = 'test'; f.elements.size.value = '320x240'; f.elements.fps.value = '10'; \
             f.requestSubmit(); return true",
        )
        .await;
    let note =
        wait_string(&driver, "const n = document.querySelector('form.add-camera .note'); return n && !n.hidden ? n.textContent : ''").await;
    assert!(note.contains("yard added"), "{note}");
    wait_cameras_online(&daemon, &["cam", "yard"]).await;
    let frames = driver.wait_above("return (window.lookoutFrames().yard || 0)", 10, HANG).await;
    assert!(frames > 10, "the added camera's card decoded {frames} frames");

    // Rename: the card follows the new name; the old card goes.
    wait_string(&driver, "return document.querySelector('form.camera-setting[data-camera=yard]') ? 'form' : ''").await;
    driver
        .eval(
            "const f = document.querySelector('form.camera-setting[data-camera=yard]'); f.elements.rename.value = 'porch'; \
             [...f.querySelectorAll('button')].find((b) => b.textContent === 'Rename').click(); return true",
        )
        .await;
    wait_cameras_online(&daemon, &["cam", "porch"]).await;
    let frames = driver.wait_above("return (window.lookoutFrames().porch || 0)", 10, HANG).await;
    assert!(frames > 10, "the renamed camera's card decoded {frames} frames");
    wait_string(&driver, "return document.querySelector('section.camera[data-camera=yard]') ? '' : 'gone'").await;

    // Remove (the page asks first): its card goes, the other camera plays on.
    wait_string(&driver, "return document.querySelector('form.camera-setting[data-camera=porch]') ? 'form' : ''").await;
    let before = driver.eval("return window.lookoutFrames().cam").await.as_u64().unwrap_or(0);
    driver
        .eval(
            "window.confirm = () => true; const f = document.querySelector('form.camera-setting[data-camera=porch]'); \
             f.querySelector('button.remove').click(); return true",
        )
        .await;
    wait_cameras_online(&daemon, &["cam"]).await;
    wait_string(&driver, "return document.querySelector('section.camera[data-camera=porch]') ? '' : 'gone'").await;
    let after = driver.wait_above("return window.lookoutFrames().cam", before + 10, HANG).await;
    assert!(after > before + 10, "the other camera's card stopped: {before} then {after} frames");
    driver.quit().await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_on_the_setup_hotspot_finds_the_wifi_panel_open_and_joins_a_network_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = common::wifi::fixture_system(dir.path());
    system.confirm_within = Duration::from_secs(60);
    let radio = common::wifi::FakeSupplicant::start(&system.ctrl_dir);
    radio.with(|r| r.access_point = Some(("Garden".into(), "correct horse".into())));
    let daemon = Daemon::start(common::wifi::config("[network.hotspot]\nafter = \"1s\"\n", system)).await;
    let owner = daemon.owner().await;
    let deadline = Instant::now() + HANG;
    while owner.get(format!("{}/api/network", daemon.base)).send().await.unwrap().json::<serde_json::Value>().await.unwrap()["wifi"]["hotspot"]
        ["open"]
        != true
    {
        assert!(Instant::now() < deadline, "the hotspot never opened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let driver = Driver::chromium().await;
    driver.login(&daemon.base, "admin", OWNER_PASSWORD).await;
    let state = wait_string(
        &driver,
        "const d = document.getElementById('wifi'); return !d.hidden && d.open ? d.querySelector('.wifi-state').textContent : ''",
    )
    .await;
    assert!(state.contains("Lookout-AB0C"), "the panel opens by itself on the hotspot: {state}");
    driver.eval("document.querySelector('#wifi .scan').click(); return true").await;
    let found =
        wait_string(&driver, "return [...document.querySelectorAll('#wifi .found button')].map((b) => b.textContent).join('|')").await;
    assert!(found.contains("Garden") && found.contains("Cafe"), "{found}");
    driver
        .eval(
            "[...document.querySelectorAll('#wifi .found button')].find((b) => b.textContent.includes('Garden')).click();\
             const f = document.querySelector('#wifi form.join'); f.elements.psk.value = 'correct horse'; f.elements.country.value = 'DE';\
             f.requestSubmit(); return true",
        )
        .await;
    let joined =
        wait_string(&driver, "const t = document.querySelector('#wifi .wifi-state').textContent; return t.startsWith('joined') ? t : ''")
            .await;
    assert_eq!(joined, "joined Garden");
    let note = wait_string(&driver, "const n = document.querySelector('#wifi .note'); return n && !n.hidden ? n.textContent : ''").await;
    assert!(!note.contains("correct horse"), "{note}");

    // A network change made while joined waits to be kept: the page offers it, and keeps it.
    let changed: serde_json::Value = owner
        .patch(format!("{}/api/config", daemon.base))
        .json(&json!({ "network": { "hostname": "porch" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(changed["confirm"]["ticket"].is_u64(), "{changed}");
    wait_string(&driver, "return document.querySelector('#wifi .unconfirmed').hidden ? '' : 'shown'").await;
    driver.eval("document.querySelector('#wifi .keep').click(); return true").await;
    wait_string(&driver, "return document.querySelector('#wifi .unconfirmed').hidden ? 'kept' : ''").await;
    let view: serde_json::Value = owner.get(format!("{}/api/network", daemon.base)).send().await.unwrap().json().await.unwrap();
    assert!(view["unconfirmed_change"].is_null(), "{view}");
    driver.quit().await;
    daemon.stop().await;
}
