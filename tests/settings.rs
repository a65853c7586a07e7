//! `GET`/`PATCH /api/config` and camera renames: a change applies while the daemon runs and
//! restarts only the camera it touches; it is saved to the data partition, survives a
//! restart, keeps secrets the client never saw; and a save killed at any moment leaves a
//! valid file.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::whep::WhepViewer;
use common::{Daemon, HANG};
use lookout::config::Config;

/// Two test cameras and an IP camera with credentials (unreachable), read from text as a
/// device reads its boot file.
fn config() -> Config {
    let text = "[storage]\nmin_free = \"64MB\"\n[led]\nbackend = \"none\"\n\
                [[camera]]\nname = \"a\"\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 15\n\
                [[camera]]\nname = \"b\"\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 10\n\
                [[camera]]\nname = \"ip\"\nsource = \"rtsp://viewer:pw-SECRET@127.0.0.1:9/x\"\n";
    Config::from_toml(text, Path::new("lookout.toml")).unwrap()
}

async fn patch(owner: &reqwest::Client, daemon: &Daemon, body: &Value) -> (u16, Value) {
    let r = owner.patch(format!("{}/api/config", daemon.base)).json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_changed_from_the_api_restarts_at_its_new_size_and_another_cameras_viewer_notices_nothing() {
    let daemon = Daemon::start(config()).await;
    for cam in ["a", "b"] {
        daemon.wait_state(cam, HANG, |c| c["online"] == true).await.expect("online");
    }
    let viewer = WhepViewer::connect(&daemon.url("/whep/b")).await.expect("viewer of b");
    assert!(viewer.wait_frames(10, HANG).await);
    let owner = daemon.owner().await;

    let shown: Value = owner.get(format!("{}/api/config", daemon.base)).send().await.unwrap().json().await.unwrap();
    assert!(!shown.to_string().contains("pw-SECRET"), "no secret in the settings shown: {shown}");
    assert_eq!(shown["camera"][0]["width"], 320);
    let denied = reqwest::Client::new().get(daemon.url("/api/config")).send().await.unwrap();
    assert_eq!(denied.status(), 403, "a token is not the owner");

    // A bad value is refused, naming the field; nothing changes.
    let mut cameras = shown["camera"].clone();
    cameras[0]["width"] = json!(3);
    let (status, refused) = patch(&owner, &daemon, &json!({ "camera": cameras })).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("width"), "{refused}");

    // The size of `a` changes: `a` restarts at it; `b` and its viewer go on untouched.
    let frames_before = viewer.frames();
    let mut cameras = shown["camera"].clone();
    cameras[0]["width"] = json!(640);
    cameras[0]["height"] = json!(360);
    let (status, changed) = patch(&owner, &daemon, &json!({ "camera": cameras })).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["restarted"], json!(["a"]), "{changed}");
    assert_eq!(changed["restart_required"], json!([]), "{changed}");
    daemon.wait_state("a", HANG, |c| c["online"] == true && c["width"] == 640 && c["height"] == 360).await.expect("a at 640x360");
    assert!(viewer.wait_frames(frames_before + 30, HANG).await, "b's viewer kept receiving");
    let b = daemon.camera_state("b").await;
    assert_eq!((b["viewers"].as_u64(), b["restarts"].as_u64()), (Some(1), Some(0)), "{b}");
    let snapshot = owner.get(format!("{}/api/cameras/a/snapshot.jpg", daemon.base)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&snapshot[..2], [0xFF, 0xD8]);

    // Saved on the data partition with the secret the client never saw; shown without it.
    let saved = std::fs::read_to_string(daemon.data.join("settings/lookout.toml")).unwrap();
    assert!(saved.contains("pw-SECRET") && saved.contains("640"), "{saved}");
    let shown: Value = owner.get(format!("{}/api/config", daemon.base)).send().await.unwrap().json().await.unwrap();
    assert!(!shown.to_string().contains("pw-SECRET"));
    assert_eq!(shown["camera"][0]["width"], 640);

    // WebRTC settings apply to the next viewer: b already has one, and one is now the limit.
    let (status, changed) = patch(&owner, &daemon, &json!({ "webrtc": { "max_viewers": 1 } })).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["restart_required"].clone(), changed["restarted"].clone()), (json!([]), json!([])), "{changed}");
    let refused = WhepViewer::connect(&daemon.url("/whep/b")).await.err().expect("a second viewer of b is refused");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(viewer.wait_frames(viewer.frames() + 10, HANG).await, "the viewer b had goes on");

    // After a restart the saved settings are in force.
    viewer.delete().await;
    let data = daemon.stop().await;
    let daemon = Daemon::start_in(config(), data).await;
    daemon.wait_state("a", HANG, |c| c["online"] == true && c["width"] == 640).await.expect("the saved size after a restart");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_camera_keeps_its_recordings() {
    let text = "[storage]\nmin_free = \"64MB\"\n[led]\nbackend = \"none\"\n\
                [[camera]]\nname = \"a\"\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 15\n[camera.recording]\nsegment = \"2s\"\n";
    let daemon = Daemon::start(Config::from_toml(text, Path::new("lookout.toml")).unwrap()).await;
    let owner = daemon.owner().await;
    let deadline = Instant::now() + HANG;
    let before = loop {
        let listing = daemon.get_json("/api/cameras/a/recordings").await;
        let finished: Vec<Value> = listing["segments"].as_array().unwrap().iter().filter(|s| s["recording"] == false).cloned().collect();
        if !finished.is_empty() {
            break finished;
        }
        assert!(Instant::now() < deadline, "nothing recorded: {listing}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let bad = owner.post(format!("{}/api/config/cameras/a/rename", daemon.base)).json(&json!({ "to": "Front Door" })).send().await.unwrap();
    assert_eq!(bad.status(), 400, "a name that is not [a-z0-9-] is refused");
    assert_eq!(daemon.camera_state("a").await["recording"], true, "and the camera goes on");
    let r = owner.post(format!("{}/api/config/cameras/a/rename", daemon.base)).json(&json!({ "to": "front" })).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    daemon.wait_state("front", HANG, |c| c["online"] == true && c["recording"] == true).await.expect("front records");
    assert_eq!(reqwest::get(daemon.url("/api/cameras/a/recordings")).await.unwrap().status(), 404);
    let deadline = Instant::now() + HANG;
    loop {
        let listing = daemon.get_json("/api/cameras/front/recordings").await;
        let names: Vec<&Value> = listing["segments"].as_array().unwrap().iter().map(|s| &s["name"]).collect();
        if before.iter().all(|s| names.contains(&&s["name"])) {
            break;
        }
        assert!(Instant::now() < deadline, "the recordings did not follow the rename: {listing}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let renamed = owner.post(format!("{}/api/config/cameras/nope/rename", daemon.base)).json(&json!({ "to": "x" })).send().await.unwrap();
    assert_eq!(renamed.status(), 404);
    daemon.stop().await;
}

/// Set in the child process of the test below: the folder to save settings into, forever.
const SAVER_DIR: &str = "LOOKOUT_TEST_SAVER_DIR";

/// Not a test on its own: the test below runs this test binary again with only this test
/// and [`SAVER_DIR`] set, and kills it while it saves.
#[test]
fn saver_child() {
    let Some(dir) = std::env::var_os(SAVER_DIR) else { return };
    let root = Path::new(&dir);
    for i in 0u64.. {
        let text = format!("[http]\nlisten = \"0.0.0.0:{}\"\n[[camera]]\nname = \"c{i}\"\nsource = \"test\"\n", 1000 + i % 50000);
        let settings: toml::Table = text.parse().unwrap();
        lookout::storage::settings::save(root, &settings).unwrap();
    }
}

#[test]
fn a_save_killed_at_any_moment_leaves_the_old_or_the_new_settings() {
    let dir = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    for round in 0..200u64 {
        let mut child = std::process::Command::new(&me)
            .args(["--exact", "saver_child", "--nocapture", "--test-threads=1"])
            .env(SAVER_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(2000 + (round * 7919) % 20000));
        child.kill().unwrap();
        child.wait().unwrap();
        match lookout::storage::settings::load(dir.path()) {
            Ok(Some(settings)) => {
                assert!(settings["camera"][0]["name"].as_str().is_some_and(|n| n.starts_with('c')), "round {round}: {settings}")
            }
            Ok(None) => {}
            Err(e) => panic!("round {round}: the saved settings are broken: {e}"),
        }
    }
    assert!(lookout::storage::settings::load(dir.path()).unwrap().is_some(), "some save finished in 200 rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_added_from_the_api_receives_events_at_once() {
    // A receiver that counts deliveries of action_requested.
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let counter = counter.clone();
            async move {
                if headers.get("lookout-event").is_some_and(|v| v == "action_requested") && headers.contains_key("lookout-signature") {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let daemon = Daemon::start(config()).await;
    let owner = daemon.owner().await;
    let hook = json!({ "url": url, "secret": "0123456789abcdef", "events": ["action_requested"] });
    let (status, changed) = patch(&owner, &daemon, &json!({ "webhook": [hook] })).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["restart_required"].clone(), changed["restarted"].clone()), (json!([]), json!([])), "{changed}");
    let shown: Value = owner.get(format!("{}/api/config", daemon.base)).send().await.unwrap().json().await.unwrap();
    assert!(!shown.to_string().contains("0123456789abcdef"), "the webhook's secret is not shown: {shown}");
    assert_eq!(owner.post(format!("{}/api/actions/identify", daemon.base)).send().await.unwrap().status(), 202);
    let deadline = Instant::now() + HANG;
    while got.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the new webhook got nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_settings_apply_to_sessions_at_once() {
    let daemon = Daemon::start(config()).await;
    let owner = daemon.owner().await;
    let idle = daemon.owner().await;
    let me = |client: reqwest::Client, url: String| async move { client.get(url).send().await.unwrap().status().as_u16() };
    let url = format!("{}/api/me", daemon.base);
    assert_eq!(me(idle.clone(), url.clone()).await, 200);
    let (status, changed) = patch(&owner, &daemon, &json!({ "auth": { "session_idle": "2s" } })).await;
    assert_eq!((status, changed["restart_required"].clone()), (200, json!([])), "{changed}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(me(idle, url.clone()).await, 401, "a session idle past the new limit is over without a restart");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_server_moves_to_a_new_port_from_the_settings_without_a_restart() {
    let daemon = Daemon::start(config()).await;
    let owner = daemon.owner().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (status, changed) = patch(&owner, &daemon, &json!({ "http": { "listen": format!("127.0.0.1:{port}") } })).await;
    assert_eq!((status, changed["restart_required"].clone()), (200, json!([])), "{changed}");
    let moved = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + HANG;
    loop {
        if reqwest::get(format!("{moved}/livez")).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing answers on the new port");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reqwest::get(format!("{}/livez", daemon.base)).await.is_err(), "the old port is closed");
    // The session goes on at the new address; a port that is taken is refused by the system,
    // and the server stays where it is.
    let me = owner.get(format!("{moved}/api/me")).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let owner = common::login(&moved, "admin", common::OWNER_PASSWORD).await.expect("the owner logs in at the new address");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let r = owner.patch(format!("{moved}/api/config")).json(&json!({ "http": { "listen": busy.to_string() } })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(reqwest::get(format!("{moved}/livez")).await.is_ok_and(|r| r.status() == 200), "still serving where it was");
    drop(taken);

    // HTTPS turned on from the page: the page moves there, plain HTTP redirects to it.
    let secure_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = owner
        .patch(format!("{moved}/api/config"))
        .json(&json!({ "http": { "listen": format!("127.0.0.1:{port}"), "tls": "self-signed", "https_listen": format!("127.0.0.1:{secure_port}") } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let any_certificate = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let deadline = Instant::now() + HANG;
    while !any_certificate.get(format!("https://127.0.0.1:{secure_port}/livez")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "HTTPS never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirected = plain.get(format!("{moved}/api/state")).send().await.unwrap();
    assert_eq!(redirected.status(), 307, "plain HTTP now sends the page to HTTPS");
    daemon.stop().await;
}
