//! The page in real browsers driven over WebDriver: headless Chromium (WebRTC/WHEP) and
//! Firefox ESR (no H.264 in its WebRTC here, so the page falls back to MSE); each `<video>`
//! must report decoded frames.

mod common;

const LIVE_FRAMES: &str = "return document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames";

use std::time::{Duration, Instant};

use serde_json::json;

use common::webdriver::Driver;
use common::{Daemon, config_with, test_camera};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_the_live_view_and_a_recording() {
    let mut camera = test_camera("cam");
    camera.recording.segment = Duration::from_secs(2);
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    let driver = Driver::chromium().await;
    driver.open(&daemon.base).await;

    let frames = driver.wait_above(LIVE_FRAMES, 30, Duration::from_secs(30)).await;
    assert_eq!(driver.eval("return window.lookoutPlayers().cam").await, "whep");
    let health = driver.eval("return document.getElementById('device-health').textContent").await;
    assert!(health.as_str().is_some_and(|h| h.contains("load")), "health shown on the page: {health}");
    let overlay = driver.eval("return document.querySelector('.overlay').dataset.state").await;
    let size = driver.eval("const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight]").await;
    assert!(frames > 30, "Chromium decoded {frames} frames; overlay {overlay}");
    assert_eq!(overlay, "live");
    assert_eq!(size, json!([640, 360]));
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["viewers"] == 1).await.expect("the page is one viewer");

    // The recordings panel draws what was recorded and plays it when clicked.
    tokio::time::sleep(Duration::from_secs(3)).await;
    driver
        .eval("const d = document.querySelector('.recordings'); d.open = true; d.dispatchEvent(new Event('toggle')); return true")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
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
    let played = driver
        .wait_above("return document.querySelector('.playback').getVideoPlaybackQuality().totalVideoFrames", 10, Duration::from_secs(10))
        .await;
    assert!(played > 10, "recorded segment did not play in the page: {played} frames");
    driver.quit().await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_without_webrtc_h264_plays_the_live_view_over_mse() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    let driver = Driver::firefox().await;
    driver.open(&daemon.base).await;
    let frames = driver.wait_above(LIVE_FRAMES, 30, Duration::from_secs(30)).await;
    let overlay = driver.eval("return document.querySelector('.overlay').dataset.state").await;
    assert!(frames > 30, "Firefox decoded {frames} frames; overlay {overlay}");
    assert_eq!(driver.eval("return window.lookoutPlayers().cam").await, "mse");
    assert_eq!(overlay, "live");
    let size = driver.eval("const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight]").await;
    assert_eq!(size, json!([640, 360]));
    // Playback stays at the live edge: less than a second of buffered video ahead.
    let lag = driver.eval("const v = document.querySelector('video'); return v.buffered.end(v.buffered.length - 1) - v.currentTime").await;
    assert!(lag.as_f64().unwrap_or(9.0) < 1.0, "{lag} s behind live");
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["viewers"] == 1).await.expect("an MSE viewer counts");
    driver.quit().await;
    daemon.wait_state("cam", Duration::from_secs(10), |c| c["viewers"] == 0).await.expect("and leaves");
    daemon.stop().await;
}
