//! Test helpers: run the daemon in-process on a free port, talk to it.

#![allow(dead_code)]

pub mod media;
pub mod rtsp;
pub mod webdriver;
pub mod whep;
pub mod wifi;

use std::time::{Duration, Instant};

use lookout::config::{Camera, Config, SourceSpec};
use tokio::sync::oneshot;

/// How long a test waits for a condition before calling it a hang. The normal case takes a
/// few seconds; a loaded 2-core machine may take several times that, and a test must fail
/// for a defect, never for being slow. (Speed is measured by `scripts/bench/*`.)
pub const HANG: Duration = Duration::from_secs(60);

/// A daemon running inside the test process.
pub struct Daemon {
    /// Where the page and API answer: `http://…`, or `https://…` with TLS on.
    pub base: String,
    /// With TLS on, the plain HTTP address (which only redirects).
    pub plain: Option<String>,
    /// A token with every grant (view, playback, snapshot, control, metrics); `url` carries it.
    pub token: Option<String>,
    /// The data folder (`storage.path`).
    pub data: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), lookout::ServeError>>>,
    data_dir: Option<tempfile::TempDir>,
}

/// A small test-pattern camera: 640x360@30, cheap enough for several viewers on 2 cores.
pub fn test_camera(name: &str) -> Camera {
    Camera { name: name.into(), source: SourceSpec::Test, width: 640, height: 360, fps: 30, bitrate_kbps: 1000, ..Camera::default() }
}

/// An "IP camera" pushing H.264 over RTP/UDP to `port` on loopback, that a test can switch
/// off (state Null: no EOS, no error, just no packets) and on again.
pub fn rtp_sender(port: u16) -> gst::Pipeline {
    use gst::prelude::*;
    gst::init().unwrap();
    let desc = format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay config-interval=-1 pt=96 \
         ! udpsink host=127.0.0.1 port={port}"
    );
    gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap()
}

/// A camera reading what [`rtp_sender`] sends to `port`, declared offline after 1 s of silence.
pub fn rtp_camera(name: &str, port: u16) -> Camera {
    Camera {
        source: SourceSpec::Pipeline(format!(
            "udpsrc port={port} caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96\" \
             ! rtph264depay ! h264parse"
        )),
        stall_timeout: Duration::from_secs(1),
        ..test_camera(name)
    }
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test owner's password.
pub const OWNER_PASSWORD: &str = "test owner password";

/// The Argon2id hash of [`OWNER_PASSWORD`], made once per test process.
pub fn owner_password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| lookout::auth::password::hash(OWNER_PASSWORD).unwrap()).clone()
}

pub use lookout::auth::Grant;

/// Issues a token on `config`'s data partition, as `lookout token` does on the device.
pub fn issue_token(config: &Config, grants: &[Grant], cameras: Option<Vec<String>>) -> String {
    let lifetimes = lookout::auth::Lifetimes { idle: config.auth.session_idle, absolute: config.auth.session_max };
    let auth = lookout::auth::Auth::open(
        &config.storage.path,
        config.auth.admin_password_hash.clone(),
        lifetimes,
        lookout::events::Bus::default(),
    );
    auth.issue_token("tests", "tests", cameras, grants.to_vec(), Duration::from_secs(86_400)).unwrap().token
}

/// `url` with `token` added to its query.
pub fn with_token(url: &str, token: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}token={token}")
}

/// Logs in at `base`; a client that sends the session cookie (and `Origin`, as the page does).
pub async fn login(base: &str, user: &str, password: &str) -> Result<reqwest::Client, u16> {
    login_via(reqwest::Client::builder, base, user, password).await
}

/// [`login`] with clients made by `builder` (e.g. [`pinned_builder`] over HTTPS).
pub async fn login_via(
    builder: impl Fn() -> reqwest::ClientBuilder,
    base: &str,
    user: &str,
    password: &str,
) -> Result<reqwest::Client, u16> {
    let r = builder()
        .build()
        .unwrap()
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "user": user, "password": password }))
        .send()
        .await
        .map_err(|_| 0u16)?;
    if !r.status().is_success() {
        return Err(r.status().as_u16());
    }
    let cookie = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).ok_or(0u16)?.to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", cookie.parse().unwrap());
    headers.insert("origin", base.parse().unwrap());
    Ok(builder().default_headers(headers).build().unwrap())
}

/// A client builder whose only trusted certificate is `pem`: it pins it.
pub fn pinned_builder(pem: &[u8]) -> reqwest::ClientBuilder {
    let cert = reqwest::Certificate::from_pem(pem).expect("a PEM certificate");
    reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(cert)
}

/// A client whose only trusted certificate is the PEM file `cert` (waits for the file: the
/// daemon writes it as it starts).
pub fn pinned_client(cert: &std::path::Path) -> reqwest::Client {
    let deadline = Instant::now() + HANG;
    let pem = loop {
        match std::fs::read(cert) {
            Ok(pem) if !pem.is_empty() => break pem,
            _ if Instant::now() > deadline => panic!("no certificate at {}", cert.display()),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    pinned_builder(&pem).build().unwrap()
}

/// Asks the device at `base` for a token (`POST /api/tokens` with `body`) as `owner`; returns
/// the whole answer (`token`, `id`, `label`, ...).
pub async fn issue_token_over_http(owner: &reqwest::Client, base: &str, body: serde_json::Value) -> serde_json::Value {
    let issued: serde_json::Value = owner.post(format!("{base}/api/tokens")).json(&body).send().await.unwrap().json().await.unwrap();
    assert!(issued["token"].is_string(), "no token issued: {issued}");
    issued
}

/// The raw answer to `POST /api/login` at `base`.
pub async fn post_login(base: &str, user: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "user": user, "password": password }))
        .send()
        .await
        .unwrap()
}

/// A config with the given cameras and data in a temporary folder. The free-space floor is
/// 64 MB, not the product's 10 %: a test must not depend on how full the machine's disk is
/// (retention tests set their own).
/// The Python of the tests' virtualenv (`scripts/setup --test` makes it), for peers that are
/// not ours: an ONVIF client, a WHIP server.
pub fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var_os("LOOKOUT_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lookout-venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup --test", python.display());
    python
}

pub fn config_with(cameras: Vec<Camera>) -> Config {
    let mut config = Config { cameras, ..Config::default() };
    config.storage.min_free = lookout::config::SpaceLimit::Bytes(64 * 1024 * 1024);
    config
}

impl Daemon {
    /// Starts the daemon on 127.0.0.1 with a fresh data folder.
    pub async fn start(config: Config) -> Daemon {
        let data = tempfile::tempdir().unwrap();
        Daemon::start_in(config, data).await
    }

    /// Starts the daemon with `storage.path` in `data` (kept until the daemon is dropped).
    pub async fn start_in(config: Config, data: tempfile::TempDir) -> Daemon {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "lookout=info".into()))
            .with_test_writer()
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Daemon::start_on(config, data, listener).await
    }

    /// Starts a daemon with no owner yet (no `admin_password_hash`): in setup.
    pub async fn start_in_setup(config: Config) -> Daemon {
        let data = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Daemon::launch(config, data, listener, false).await
    }

    /// Starts the daemon on `listener` (e.g. the address of one stopped before, as a device
    /// that restarts), with `storage.path` in `data`. The owner `admin` has [`OWNER_PASSWORD`].
    pub async fn start_on(config: Config, data: tempfile::TempDir, listener: tokio::net::TcpListener) -> Daemon {
        Daemon::launch(config, data, listener, true).await
    }

    /// Starts the daemon with HTTPS (`http.tls`, self-signed unless the config names files)
    /// on a second free port, with `storage.path` in `data`. `base` is the HTTPS address.
    pub async fn start_https(mut config: Config, data: tempfile::TempDir) -> Daemon {
        if config.http.tls == lookout::config::Tls::Off {
            config.http.tls = lookout::config::Tls::SelfSigned;
        }
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", https.local_addr().unwrap());
        let plain = format!("http://{}", http.local_addr().unwrap());
        let mut daemon = Daemon::launch_on(config, data, lookout::Listeners { http, https: Some(https) }, true).await;
        daemon.base = base;
        daemon.plain = Some(plain);
        daemon
    }

    /// A client that trusts only the certificate the daemon made for itself (in
    /// `<data>/tls/cert.pem`): it pins it, as a script or NVR would.
    pub fn pinned_client(&self) -> reqwest::Client {
        pinned_client(&self.data.join("tls/cert.pem"))
    }

    async fn launch(config: Config, data: tempfile::TempDir, listener: tokio::net::TcpListener, owner: bool) -> Daemon {
        Daemon::launch_on(config, data, lookout::Listeners { http: listener, https: None }, owner).await
    }

    async fn launch_on(mut config: Config, data: tempfile::TempDir, listeners: lookout::Listeners, owner: bool) -> Daemon {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "lookout=info".into()))
            .with_test_writer()
            .try_init();
        config.storage.path = data.path().to_owned();
        // A config read from text keeps it as written: what the harness sets goes there too.
        let written = |config: &mut Config, section: &str, key: &str, value: String| {
            if !config.raw.is_empty() {
                let table = config.raw.entry(section).or_insert_with(|| toml::Value::Table(Default::default()));
                if let Some(t) = table.as_table_mut() {
                    t.insert(key.into(), value.into());
                }
            }
        };
        written(&mut config, "storage", "path", data.path().display().to_string());
        // Tests run many daemons at once: each RTSP server takes a free port on loopback
        // (`/api/cameras` says which) unless the test chose one.
        if config.rtsp.listen == lookout::config::Rtsp::default().listen {
            config.rtsp.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let listen = config.rtsp.listen.to_string();
            written(&mut config, "rtsp", "listen", listen);
        }
        let mut token = None;
        if owner {
            let hash = owner_password_hash();
            let hash = config.auth.admin_password_hash.get_or_insert(hash).clone();
            written(&mut config, "auth", "admin_password_hash", hash);
            token = Some(issue_token(&config, &[Grant::View, Grant::Playback, Grant::Snapshot, Grant::Control, Grant::Metrics], None));
        }
        let base = format!("http://{}", listeners.http.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(lookout::serve_on(config, listeners, async move {
            let _ = stopped.await;
        }));
        Daemon { base, plain: None, token, data: data.path().to_owned(), stop: Some(stop), task: Some(task), data_dir: Some(data) }
    }

    /// An address on the daemon carrying the test token (`?token=`), as a shared link does.
    pub fn url(&self, path: &str) -> String {
        match &self.token {
            Some(t) => with_token(&format!("{}{path}", self.base), t),
            None => self.anonymous_url(path),
        }
    }

    /// An address on the daemon without any credential.
    pub fn anonymous_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client logged in as the owner (the page's session cookie).
    pub async fn owner(&self) -> reqwest::Client {
        login(&self.base, "admin", OWNER_PASSWORD).await.expect("owner logs in")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        reqwest::get(self.url(path)).await.unwrap().json().await.unwrap()
    }

    /// The `/api/state` entry of one camera.
    pub async fn camera_state(&self, camera: &str) -> serde_json::Value {
        let state = self.get_json("/api/state").await;
        state["cameras"].as_array().unwrap().iter().find(|c| c["name"] == camera).cloned().unwrap()
    }

    /// Where the camera is read over RTSP (`/api/cameras`), without credentials; waits for
    /// the RTSP server to listen.
    pub async fn rtsp_url(&self, camera: &str) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            let cameras = self.get_json("/api/cameras").await;
            let url = cameras.as_array().unwrap().iter().find(|c| c["name"] == camera).and_then(|c| c["rtsp"].as_str().map(str::to_owned));
            if let Some(url) = url {
                return url;
            }
            assert!(Instant::now() < deadline, "no RTSP URL for {camera}: {cameras}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Keyframes the camera's encoder has been asked for so far (`/metrics`, forwarded).
    pub async fn keyframes_forced(&self, camera: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        let prefix = format!("lookout_keyframe_requests_total{{camera=\"{camera}\",outcome=\"forwarded\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).expect("keyframe request counter")
    }

    /// Polls `/api/state` until `pred` holds for the camera; returns the last state seen.
    pub async fn wait_state(
        &self,
        camera: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.camera_state(camera).await;
            if pred(&state) {
                return Ok(state);
            }
            if Instant::now() > deadline {
                return Err(state);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the daemon the way SIGTERM does and waits for a clean exit. Returns the data
    /// folder, which lives on while the caller keeps it.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("daemon stops within 15 s")
                .expect("daemon task did not panic")
                .expect("daemon exits cleanly");
        }
        self.data_dir.take().expect("data folder kept until stop")
    }
}
