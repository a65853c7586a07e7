//! The page in a real browser: headless Chromium (Debian's package) driven over WebDriver
//! opens the device page, and its `<video>` must report decoded frames.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Daemon, config_with, test_camera};

struct Driver {
    child: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (scripts/setup installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }}}});
        let created: Value = client.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Driver { child, base, session, _profile: profile }
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let v: Value = reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call("url", json!({ "url": url })).await;
    }

    async fn eval(&self, script: &str) -> Value {
        self.call("execute/sync", json!({ "script": script, "args": [] })).await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_the_live_view_and_a_recording() {
    let mut camera = test_camera("cam");
    camera.recording.segment = Duration::from_secs(2);
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    let driver = Driver::start().await;
    driver.open(&daemon.base).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let frames = loop {
        let v = driver
            .eval("return document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames")
            .await;
        let frames = v.as_u64().unwrap_or(0);
        if frames > 30 || Instant::now() > deadline {
            break frames;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
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
    let deadline = Instant::now() + Duration::from_secs(10);
    let played = loop {
        let n = driver
            .eval("const v = document.querySelector('.playback'); return v.getVideoPlaybackQuality().totalVideoFrames")
            .await
            .as_u64()
            .unwrap_or(0);
        if n > 10 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(played > 10, "recorded segment did not play in the page: {played} frames");
    drop(driver);
    daemon.stop().await;
}
