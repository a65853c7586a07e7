//! HTTPS: the device's own certificate, pinned by real TLS clients (reqwest over rustls, and a
//! webrtcbin WHEP viewer signalling over it); plain HTTP then only redirects; the owner's
//! certificate files; and what happens when they are wrong.

mod common;

use std::time::Duration;

use common::whep::WhepViewer;
use common::{Daemon, HANG, OWNER_PASSWORD, config_with, test_camera};
use lookout::config::Tls;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_api_login_and_live_video_to_a_client_pinning_the_devices_own_certificate() {
    let daemon = Daemon::start_https(config_with(vec![test_camera("cam")]), tempfile::tempdir().unwrap()).await;
    let pinned = daemon.pinned_client();
    let token = daemon.token.clone().unwrap();

    let state = pinned.get(daemon.url("/api/state")).send().await.expect("the pinned certificate verifies");
    assert_eq!(state.status(), 200);
    let err = reqwest::Client::new().get(daemon.url("/api/state")).send().await.expect_err("no public CA vouches for it");
    assert!(format!("{err:?}").contains("certificate") || format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // The login cookie is Secure: a browser never sends it over plain HTTP.
    let login = pinned
        .post(format!("{}/api/login", daemon.base))
        .json(&serde_json::json!({ "user": "admin", "password": OWNER_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");

    // Live video: WHEP signalled over HTTPS, media over DTLS-SRTP as ever.
    let viewer = WhepViewer::connect_with(&daemon.url("/whep/cam"), pinned.clone()).await.expect("WHEP over HTTPS");
    assert!(viewer.location.starts_with("https://"), "{}", viewer.location);
    assert!(viewer.wait_frames(10, HANG).await, "frames decoded from a viewer signalled over HTTPS");
    assert_eq!(viewer.delete().await, 200);

    // Plain HTTP answers the watchdog's /livez and sends everything else to HTTPS, with the
    // path and query kept; nothing else is served in clear.
    let plain = daemon.plain.clone().unwrap();
    let http = no_redirects();
    assert_eq!(http.get(format!("{plain}/livez")).send().await.unwrap().status(), 200);
    let https_port = daemon.base.rsplit(':').next().unwrap();
    let redirected = http.get(format!("{plain}/api/state?token={token}")).send().await.unwrap();
    assert_eq!(redirected.status(), 307);
    assert_eq!(redirected.headers()["location"], format!("https://127.0.0.1:{https_port}/api/state?token={token}").as_str());
    let login = http.post(format!("{plain}/api/login")).json(&serde_json::json!({ "password": OWNER_PASSWORD })).send().await.unwrap();
    assert_eq!(login.status(), 307, "no password is checked, and no cookie set, over plain HTTP");
    assert!(login.headers().get("set-cookie").is_none());
    let snapshot = http.get(format!("{plain}/api/cameras/cam/snapshot.jpg?token={token}")).send().await.unwrap();
    assert_eq!(snapshot.status(), 307, "no video in clear");

    // A restart keeps the certificate: what a client pinned stays valid.
    let pem = std::fs::read_to_string(daemon.data.join("tls/cert.pem")).unwrap();
    let data = daemon.stop().await;
    let daemon = Daemon::start_https(config_with(vec![test_camera("cam")]), data).await;
    assert_eq!(pinned.get(daemon.url("/api/state")).send().await.expect("same certificate after a restart").status(), 200);
    assert_eq!(std::fs::read_to_string(daemon.data.join("tls/cert.pem")).unwrap(), pem);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_certificate_files_are_served_and_broken_ones_say_why_without_serving_in_clear() {
    // Any certificate and key will do as "the owner's": take one a first daemon made.
    let first = Daemon::start_https(config_with(vec![test_camera("cam")]), tempfile::tempdir().unwrap()).await;
    let owners = tempfile::tempdir().unwrap();
    let _ = first.pinned_client();
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(first.data.join("tls").join(f), owners.path().join(f)).unwrap();
    }
    first.stop().await;

    let mut config = config_with(vec![test_camera("cam")]);
    config.http.tls = Tls::Files { cert: owners.path().join("cert.pem"), key: owners.path().join("key.pem") };
    let daemon = Daemon::start_https(config, tempfile::tempdir().unwrap()).await;
    let pinned = common::pinned_client(&owners.path().join("cert.pem"));
    let state = pinned.get(daemon.url("/api/state")).send().await.expect("the owner's certificate is served");
    assert_eq!(state.status(), 200);
    assert!(!daemon.data.join("tls").exists(), "no self-signed certificate is made when the owner gives one");
    daemon.stop().await;

    // A key that is not there: HTTPS cannot start. Plain HTTP says why and serves nothing
    // else (the page in clear is what TLS was asked to prevent); /livez keeps the watchdog calm.
    let mut config = config_with(vec![test_camera("cam")]);
    let missing = owners.path().join("missing-key.pem");
    config.http.tls = Tls::Files { cert: owners.path().join("cert.pem"), key: missing.clone() };
    let daemon = Daemon::start_https(config, tempfile::tempdir().unwrap()).await;
    let plain = daemon.plain.clone().unwrap();
    let http = no_redirects();
    let answer = http.get(format!("{plain}/api/state?token={}", daemon.token.clone().unwrap())).send().await.unwrap();
    assert_eq!(answer.status(), 503);
    let body = answer.text().await.unwrap();
    assert!(body.contains("HTTPS") && body.contains(&missing.display().to_string()), "{body}");
    assert_eq!(http.get(format!("{plain}/livez")).send().await.unwrap().status(), 200);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_tls_handshake_is_let_go() {
    use tokio::io::AsyncReadExt;
    let daemon = Daemon::start_https(config_with(vec![test_camera("cam")]), tempfile::tempdir().unwrap()).await;
    let address = daemon.base.trim_start_matches("https://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(&address).await.unwrap();
    // A ClientHello's first bytes, then nothing.
    tokio::io::AsyncWriteExt::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
    let mut buf = [0u8; 64];
    for stream in [&mut silent, &mut half] {
        let closed = tokio::time::timeout(HANG, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server closes a connection whose handshake stalls");
    }
    // Meanwhile, and after, others are served.
    let pinned = daemon.pinned_client();
    assert_eq!(pinned.get(daemon.url("/api/state")).timeout(Duration::from_secs(30)).send().await.unwrap().status(), 200);
    daemon.stop().await;
}
