//! Bad input gets a clear error, the right status, and disturbs nothing.

mod common;

use std::time::Duration;

use common::whep::WhepViewer;
use common::{Daemon, HANG, config_with, test_camera};

async fn post_offer(daemon: &Daemon, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().post(daemon.url(path)).header("content-type", content_type).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_offers_unknown_cameras_and_oversized_bodies_are_refused_clearly() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;

    let (status, body) = post_offer(&daemon, "/whep/cam", "application/sdp", "this is not sdp").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("not a valid SDP offer"), "{body}");

    let audio_only = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
    let (status, body) = post_offer(&daemon, "/whep/cam", "application/sdp", audio_only).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("no video"), "{body}");

    let (status, body) = post_offer(&daemon, "/whep/nope", "application/sdp", "v=0\r\n").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    let (status, body) = post_offer(&daemon, "/whep/cam", "application/json", "{}").await;
    assert_eq!(status, 415, "{body}");

    let huge = vec![b'a'; 200 * 1024];
    let (status, body) = post_offer(&daemon, "/whep/cam", "application/sdp", huge).await;
    assert_eq!(status, 413);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("too large")), "413 is JSON: {body}");

    let r = reqwest::Client::new().delete(daemon.url("/whep/cam/doesnotexist")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = reqwest::Client::new().patch(daemon.url("/whep/cam/doesnotexist")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = reqwest::get(daemon.url("/api/nothing")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().contains("error"));

    // After all that, a real viewer still gets video.
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("camera online");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("session created");
    assert!(viewer.wait_frames(10, Duration::from_secs(20)).await);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_beyond_the_limit_get_503() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.webrtc.max_viewers = 2;
    let daemon = Daemon::start(config).await;
    let endpoint = daemon.url("/whep/cam");
    let _a = WhepViewer::connect(&endpoint).await.expect("first");
    let _b = WhepViewer::connect(&endpoint).await.expect("second");
    let refused = WhepViewer::connect(&endpoint).await.err().expect("third refused");
    assert_eq!(refused.status, 503);
    assert!(refused.body.contains("max_viewers"), "{}", refused.body);
    daemon.stop().await;
}

/// A browser-shaped offer whose H.264 formats use payload types no RTP packet can carry.
const OFFER_WITH_WIDE_PAYLOAD_TYPES: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=fingerprint:sha-256 AA:BB\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 300 301\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=rtcp-mux\r\na=setup:actpass\r\n\
a=rtpmap:300 H264/90000\r\na=fmtp:300 packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:301 H264/90000\r\na=fmtp:301 packetization-mode=1;profile-level-id=42001f\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_payload_types_are_refused_and_hold_no_viewer_slot() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.webrtc.max_viewers = 2;
    let daemon = Daemon::start(config).await;
    for _ in 0..4 {
        let (status, body) = post_offer(&daemon, "/whep/cam", "application/sdp", OFFER_WITH_WIDE_PAYLOAD_TYPES).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains("H.264"), "{body}");
    }
    // Every slot is still free: both allowed viewers get in and see video.
    let endpoint = daemon.url("/whep/cam");
    let a = WhepViewer::connect(&endpoint).await.expect("first viewer");
    let b = WhepViewer::connect(&endpoint).await.expect("second viewer");
    assert!(a.wait_frames(10, Duration::from_secs(20)).await && b.wait_frames(10, Duration::from_secs(20)).await);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_options_advertises_ice_servers_and_cors() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.webrtc.stun = vec!["stun:stun.example.org:3478".into()];
    config.webrtc.turn = vec![lookout::config::TurnServer {
        url: "turn:turn.example.org:3478".into(),
        username: "viewer".into(),
        credential: "s3cret".into(),
    }];
    let daemon = Daemon::start(config).await;
    let r = reqwest::Client::new().request(reqwest::Method::OPTIONS, daemon.url("/whep/cam")).send().await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["accept-post"], "application/sdp");
    let links: Vec<&str> = r.headers().get_all("link").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(
        links,
        [
            "<stun:stun.example.org:3478>; rel=\"ice-server\"",
            "<turn:turn.example.org:3478>; rel=\"ice-server\"; username=\"viewer\"; credential=\"s3cret\"; credential-type=\"password\"",
        ]
    );
    // TURN credentials go only to a client that may watch.
    let r = reqwest::Client::new().request(reqwest::Method::OPTIONS, daemon.anonymous_url("/whep/cam")).send().await.unwrap();
    assert_eq!(r.headers().get_all("link").iter().count(), 0, "anonymous OPTIONS got ICE servers");
    // A player on another origin can read the session's Location and the ICE servers.
    let r = reqwest::Client::new()
        .post(daemon.url("/whep/cam"))
        .header("origin", "https://player.example")
        .header("content-type", "application/sdp")
        .body("not sdp")
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(exposed.contains("location") && exposed.contains("link"), "{exposed}");
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, daemon.url("/whep/cam"))
        .header("origin", "https://player.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    daemon.stop().await;
}

#[test]
fn check_config_names_every_wrong_field_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    // `lookout check-config` on this text: whether it passed, and what it printed on stderr.
    let check = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout")).args(["check-config"]).arg(&file).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let fails_naming = |name: &str, text: &str, parts: &[&str]| {
        let (ok, err) = check(name, text);
        assert!(!ok, "{name} passed");
        for part in parts {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    };
    fails_naming(
        "bad.toml",
        "[[camera]]\nname = \"Front Door\"\nfps = 500\n[[camera]]\nname = \"yard\"\nsource = \"webcam\"\nbitrate_kbps = 5\n",
        &["camera[0].name", "camera[0].fps", "camera[1].source", "camera[1].bitrate_kbps"],
    );
    fails_naming(
        "storage.toml",
        "[storage]\nmin_free = \"95%\"\n[[camera]]\nname = \"cam\"\n[camera.recording]\nsegment = \"3h\"\nkeep = \"2h\"\n",
        &["storage.min_free", "camera[0].recording.segment", "camera[0].recording.keep"],
    );
    // Values of the wrong type in several places: each is listed, not only the first.
    fails_naming(
        "types.toml",
        "[storage]\nmax_size = \"lots\"\n[[camera]]\nname = \"cam\"\nfps = \"thirty\"\n",
        &["storage", "max_size", "camera[0]", "fps"],
    );
    fails_naming("typo.toml", "[http]\nlisten = \"0.0.0.0:80\"\nlisen = 1\n", &["lisen"]);
    // A wrong type in [auth] beside one in [http]: both named, [auth] not called unknown.
    fails_naming(
        "auth.toml",
        "[http]\nlisten = 80\n[auth]\nsession_idle = 7\n[[camera]]\nname = \"cam\"\n",
        &["http", "auth", "session_idle"],
    );
    let (_, err) = check("auth.toml", "[http]\nlisten = 80\n[auth]\nsession_idle = 7\n[[camera]]\nname = \"cam\"\n");
    assert!(!err.contains("unknown section"), "{err}");
    // HTTPS: a misspelt mode, and certificate files that are not there, named before a reboot.
    fails_naming("tls.toml", "[http]\ntls = \"selfsigned\"\n[[camera]]\nname = \"cam\"\n", &["tls", "self-signed"]);
    let missing = dir.path().join("no-cert.pem");
    fails_naming(
        "tls-files.toml",
        &format!("[http]\ntls = {{ cert = \"{0}\", key = \"{0}\" }}\n[[camera]]\nname = \"cam\"\n", missing.display()),
        &["http.tls", &missing.display().to_string()],
    );
    // A password with a `/` not percent-encoded: refused with what to do, and never printed.
    let (ok, err) = check("password.toml", "[[camera]]\nname = \"front\"\nsource = \"rtsp://user:pa/ss@10.0.0.9/front\"\n");
    assert!(!ok, "an RTSP URL whose password holds a `/` passed");
    assert!(err.contains("camera[0].source") && err.contains("%2F"), "{err}");
    assert!(!err.contains("pa/ss") && !err.contains("/ss@"), "the password reached the output: {err}");
    let (ok, err) = check("encoded.toml", "[[camera]]\nname = \"front\"\nsource = \"rtsp://user:pa%2Fss@10.0.0.9/front\"\n");
    assert!(ok, "{err}");
    let (ok, err) = check("good.toml", "[[camera]]\nname = \"cam\"\nsource = \"test\"\n");
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_this_machine() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    let h = daemon.get_json("/api/health").await;
    let health = &h["health"];
    assert!(health["memory_total_bytes"].as_u64().unwrap() > 0, "{h}");
    assert!(health["uptime_s"].as_f64().unwrap() > 0.0, "{h}");
    assert!(health["disk_total_bytes"].as_u64().unwrap() > 0, "{h}");
    assert!(health["cpus"].as_u64().unwrap() >= 1, "{h}");
    assert!(h["warnings"].is_array());
    assert!(health["clock_synchronized"].is_boolean(), "{h}");
    // This machine's own network links (physical ones: those with a device behind them).
    let physical: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("device").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let listed: Vec<&str> = health["network"].as_array().unwrap().iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(listed.len(), physical.len(), "{h}");
    assert!(physical.iter().all(|p| listed.contains(&p.as_str())), "{h}");
    daemon.stop().await;
}

/// A connection from `from` (a loopback address other than the device's own 127.0.0.1).
async fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closed `stream` (within `within`).
async fn closed(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_are_cut_off_and_cannot_take_the_server_down() {
    use tokio::io::AsyncWriteExt;
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    let addr: std::net::SocketAddr = daemon.base.trim_start_matches("http://").parse().unwrap();
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    // Every connection the limit allows one address, each sending half a request and stalling.
    let mut held = Vec::new();
    for _ in 0..lookout::web::server::PER_ADDRESS {
        let mut s = connect_from(attacker, addr).await;
        s.write_all(b"GET /api/state HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        held.push(s);
    }
    let mut one_more = connect_from(attacker, addr).await;
    assert!(closed(&mut one_more, HANG).await, "a connection beyond the per-address limit is closed");
    // Others, and the device's own watchdog probe, are still served.
    let livez = reqwest::get(daemon.anonymous_url("/livez")).await.unwrap();
    assert_eq!(livez.status(), 200);
    let mut other = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 3), addr).await;
    other.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(closed(&mut other, HANG).await, "another address gets its answer (then the close it asked for)");
    // The stalled ones are cut off once their header time is up.
    for s in &mut held {
        assert!(closed(s, HANG).await, "a stalled request's connection is closed");
    }
    daemon.stop().await;
}

/// A well-formed offer from a client that will never answer ICE (its candidates lead nowhere).
const OFFER_THAT_NEVER_CONNECTS: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=rtcp-mux\r\na=setup:actpass\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_slot_that_never_connects_is_freed_within_seconds() {
    let mut config = config_with(vec![test_camera("cam")]);
    config.webrtc.max_viewers = 1;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let (status, body) = post_offer(&daemon, "/whep/cam", "application/sdp", OFFER_THAT_NEVER_CONNECTS).await;
    assert_eq!(status, 201, "{body}");
    let refused = WhepViewer::connect(&daemon.url("/whep/cam")).await.err().expect("the slot is taken");
    assert_eq!(refused.status, 503);
    // Freed by the connect deadline (seconds), not the 20 s RTCP liveness timeout.
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 0).await.expect("the silent slot is freed");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("the freed slot is usable");
    assert!(viewer.wait_frames(10, HANG).await);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mse_client_that_stops_reading_is_dropped_and_frees_its_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = config_with(vec![test_camera("cam")]);
    config.webrtc.max_viewers = 1;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let addr: std::net::SocketAddr = daemon.base.trim_start_matches("http://").parse().unwrap();
    // A WebSocket client with a tiny receive buffer that reads the handshake and then nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let path = daemon.url("/ws/mse/cam").trim_start_matches(&daemon.base).to_owned();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[9..12], b"101", "{}", String::from_utf8_lossy(&head));
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 1).await.expect("the MSE viewer counts");
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 0).await.expect("the stalled MSE viewer is dropped");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("its slot is free again");
    assert!(viewer.wait_frames(10, HANG).await);
    drop(stream);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = Daemon::start(config_with(vec![])).await;
    let address = daemon.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // A login takes a while (Argon2): the request's end arrives before the answer is ready.
    let body = r#"{"user":"admin","password":"not the password"}"#;
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: {address}\r\nOrigin: http://{address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // As netcat does when its input ends.
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(HANG, stream.read_to_string(&mut answer)).await.expect("an answer").unwrap();
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("wrong user name or password"), "{answer}");
    daemon.stop().await;
}
