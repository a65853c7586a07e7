//! A minimal WebDriver client (plain HTTP + JSON) for Debian's Chromium + chromedriver and
//! Firefox ESR + geckodriver, enough to open a page and run scripts in it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Driver {
    child: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Headless Chromium through chromedriver.
    pub async fn chromium() -> Driver {
        Driver::chromium_with(json!({}), &[]).await
    }

    /// Headless Chromium that trusts a server whose public key hashes to `spki` (base64 of
    /// SHA-256 over the SubjectPublicKeyInfo): a user who accepted the device's certificate.
    pub async fn chromium_trusting(spki: &str) -> Driver {
        Driver::chromium_with(json!({}), &[format!("--ignore-certificate-errors-spki-list={spki}")]).await
    }

    /// Headless Chromium emulating a phone: a 390x844 touch screen at 3x, a mobile user agent.
    pub async fn chromium_phone() -> Driver {
        Driver::chromium_with(json!({"mobileEmulation": {
            "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": true},
            "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
        }}), &[])
        .await
    }

    async fn chromium_with(extra: Value, extra_args: &[String]) -> Driver {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend_from_slice(extra_args);
        let mut options = json!({ "binary": "/usr/bin/chromium", "args": args });
        if let (Some(options), Some(extra)) = (options.as_object_mut(), extra.as_object()) {
            options.extend(extra.clone());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}});
        Driver::start("chromedriver", "chromedriver is installed (scripts/setup --test installs chromium-driver)", caps, profile).await
    }

    /// Headless Firefox ESR through geckodriver. Its WebRTC has no H.264 here (no OpenH264
    /// plugin offline), which is exactly the case the page's MSE player exists for.
    pub async fn firefox() -> Driver {
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "firefox", "moz:firefoxOptions": {
            "binary": "/usr/bin/firefox-esr",
            "args": ["-headless", "-profile", profile.path().display().to_string()],
            "prefs": {
                "media.autoplay.default": 0,
                "media.autoplay.blocking_policy": 0,
                "app.update.enabled": false,
                "network.captive-portal-service.enabled": false,
                "media.gmp-manager.url": "http://127.0.0.1:9/",
            }
        }}}});
        Driver::start("geckodriver", "geckodriver is installed (scripts/setup --test: cargo install geckodriver)", caps, profile).await
    }

    async fn start(program: &str, missing: &str, caps: Value, profile: tempfile::TempDir) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(program).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect(missing);
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "{program} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created: Value = client.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Driver { child, base, session, _profile: profile }
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let v: Value = reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.call("url", json!({ "url": url })).await;
    }

    /// Runs a script in the page and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.call("execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// Fills a form field of the current page.
    pub async fn fill(&self, selector: &str, value: &str) {
        let script = format!("document.querySelector({}).value = {}; return true", json!(selector), json!(value));
        self.eval(&script).await;
    }

    /// Waits until the page's path is `path`; returns the path last seen.
    pub async fn wait_path(&self, path: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.eval("return location.pathname").await.as_str().unwrap_or("").to_owned();
            if seen == path || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Logs in on the page at `base` the way a person does: the login form, then the live page.
    pub async fn login(&self, base: &str, user: &str, password: &str) {
        self.open(&format!("{base}/login")).await;
        assert_eq!(self.wait_path("/login", Duration::from_secs(60)).await, "/login");
        self.fill("[name=user]", user).await;
        self.fill("[name=password]", password).await;
        self.eval("document.querySelector('form').requestSubmit(); return true").await;
        let path = self.wait_path("/", Duration::from_secs(60)).await;
        assert_eq!(path, "/", "login did not lead to the live page");
    }

    /// Polls `script` until it returns a number above `min`; returns the last value.
    pub async fn wait_above(&self, script: &str, min: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.eval(script).await.as_u64().unwrap_or(0);
            if n > min || Instant::now() > deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Driver {
    /// Ends the browser session (closing the browser), then the driver.
    pub async fn quit(self) {
        let _ = reqwest::Client::new().delete(format!("{}/session/{}", self.base, self.session)).send().await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
