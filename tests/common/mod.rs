//! Test helpers: run the daemon in-process on a free port, talk to it.

#![allow(dead_code)]

pub mod webdriver;
pub mod whep;

use std::time::{Duration, Instant};

use lookout::config::{Camera, Config, SourceSpec};
use tokio::sync::oneshot;

/// A daemon running inside the test process.
pub struct Daemon {
    pub base: String,
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

/// A config with the given cameras and data in a temporary folder.
pub fn config_with(cameras: Vec<Camera>) -> Config {
    Config { cameras, ..Config::default() }
}

impl Daemon {
    /// Starts the daemon on 127.0.0.1 with a fresh data folder.
    pub async fn start(config: Config) -> Daemon {
        let data = tempfile::tempdir().unwrap();
        Daemon::start_in(config, data).await
    }

    /// Starts the daemon with `storage.path` in `data` (kept until the daemon is dropped).
    pub async fn start_in(mut config: Config, data: tempfile::TempDir) -> Daemon {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "lookout=info".into()))
            .with_test_writer()
            .try_init();
        config.storage.path = data.path().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(lookout::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Daemon { base, data: data.path().to_owned(), stop: Some(stop), task: Some(task), data_dir: Some(data) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        reqwest::get(self.url(path)).await.unwrap().json().await.unwrap()
    }

    /// The `/api/state` entry of one camera.
    pub async fn camera_state(&self, camera: &str) -> serde_json::Value {
        let state = self.get_json("/api/state").await;
        state["cameras"].as_array().unwrap().iter().find(|c| c["name"] == camera).cloned().unwrap()
    }

    /// Polls `/api/state` until `pred` holds for the camera; returns the last state seen.
    pub async fn wait_state(&self, camera: &str, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> Result<serde_json::Value, serde_json::Value> {
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
