//! `GET /api/events`: the event stream over a WebSocket, with a real WebSocket client
//! (tokio-tungstenite): the snapshot, live events, replay after a reconnect, a resync when the
//! events are gone, and what each kind of client may hear.

mod common;

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use common::{Daemon, HANG, config_with, test_camera};
use lookout::auth::Grant;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `ws://…/api/events` on `daemon`.
fn events_url(daemon: &Daemon) -> String {
    format!("{}/api/events", daemon.base.replacen("http://", "ws://", 1))
}

async fn connect(daemon: &Daemon, token: &str, since: Option<u64>) -> Socket {
    let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}{since}", events_url(daemon))).await.expect("WebSocket opens");
    socket
}

/// Connects as the owner's page does: the session cookie, and the page's own `Origin`.
async fn connect_as_owner(daemon: &Daemon) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let login = common::post_login(&daemon.base, "admin", common::OWNER_PASSWORD).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let mut request = events_url(daemon).into_client_request().unwrap();
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    request.headers_mut().insert("origin", daemon.base.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("WebSocket opens with the session cookie").0
}

/// The next JSON message, within a deadline that only catches a hang.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(HANG, socket.next()).await.expect("a message in time").expect("stream open").expect("no error");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// Messages until one satisfies `pred` (returned); every one seen is passed to `each`.
async fn until(socket: &mut Socket, pred: impl Fn(&Value) -> bool, mut each: impl FnMut(&Value)) -> Value {
    loop {
        let m = next(socket).await;
        each(&m);
        if pred(&m) {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_a_snapshot_then_live_events_and_after_a_reconnect_what_it_missed() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let token = daemon.token.clone().unwrap();
    let mut socket = connect(&daemon, &token, None).await;
    let first = next(&mut socket).await;
    assert_eq!((first["v"].as_u64(), first["type"].as_str()), (Some(1), Some("snapshot")), "{first}");
    assert_eq!(first["state"]["cameras"][0]["name"], "cam");
    assert!(first.get("resync").is_none());
    assert!(first["run"].as_str().is_some_and(|r| !r.is_empty()), "the snapshot names the daemon's run: {first}");
    let at = first["seq"].as_u64().expect("the snapshot's seq");

    // Live: the owner's action is heard, numbered after the snapshot.
    let owner = daemon.owner().await;
    assert_eq!(owner.post(format!("{}/api/actions/identify", daemon.base)).send().await.unwrap().status(), 202);
    let mut last_seq = at;
    let heard = until(
        &mut socket,
        |m| m["type"] == "action_requested",
        |m| {
            let seq = m["seq"].as_u64().expect("seq");
            assert!(seq > last_seq, "in order, none twice: {seq} after {last_seq}");
            last_seq = seq;
            assert!(m["at"].is_string() && m["v"] == 1, "{m}");
        },
    )
    .await;
    assert_eq!(heard["action"], "identify");
    drop(socket);

    // Gone for a while: camera stats keep coming; a reconnect with ?since= gets exactly those.
    let mut watcher = connect(&daemon, &token, None).await;
    let now = next(&mut watcher).await["seq"].as_u64().unwrap();
    until(&mut watcher, |m| m["seq"].as_u64().is_some_and(|s| s >= now + 2), |_| {}).await;
    // As the page does: with the run its snapshot named.
    let run = first["run"].as_str().unwrap();
    let (mut back, _) = tokio_tungstenite::connect_async(format!("{}?token={token}&since={last_seq}&run={run}", events_url(&daemon)))
        .await
        .expect("WebSocket opens");
    let replayed = next(&mut back).await;
    assert_eq!(replayed["seq"].as_u64(), Some(last_seq + 1), "the first event missed, not a snapshot: {replayed}");
    assert_ne!(replayed["type"], "snapshot");

    // A number it cannot replay (from before a restart): a snapshot that says so.
    let mut lost = connect(&daemon, &token, Some(u64::MAX / 2)).await;
    let resync = next(&mut lost).await;
    assert_eq!((resync["type"].as_str(), resync["resync"].as_bool()), (Some("snapshot"), Some(true)), "{resync}");
    assert_eq!(resync["run"], first["run"], "the same run of the daemon");
    // A number of another run of the daemon (it restarted since): resync too, even if small.
    let (mut other, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}&since=1&run=0000", events_url(&daemon))).await.expect("WebSocket opens");
    assert_eq!(next(&mut other).await["resync"], true);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hears_only_its_cameras_and_only_the_owner_hears_failed_logins() {
    let mut config = config_with(vec![test_camera("front"), test_camera("back")]);
    config.cameras[1].fps = 10;
    let daemon = Daemon::start(config.clone()).await;
    for cam in ["front", "back"] {
        daemon.wait_state(cam, HANG, |c| c["online"] == true).await.expect("online");
    }
    let front_only = common::issue_token(&config_with_storage(&config, &daemon), &[Grant::View], Some(vec!["front".into()]));
    let mut viewer = connect(&daemon, &front_only, None).await;
    let mut owner = connect_as_owner(&daemon).await;
    // A token with every grant is still not the owner: it hears no logins either.
    let mut all_grants = connect(&daemon, daemon.token.as_deref().unwrap(), None).await;
    next(&mut all_grants).await;
    let snapshot = next(&mut viewer).await;
    let names: Vec<&str> = snapshot["state"]["cameras"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["front"]);
    next(&mut owner).await;

    let refused = common::post_login(&daemon.base, "admin", "not the password").await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    // The owner hears the failed login, and every camera; the viewer its camera only.
    let (mut login, mut back) = (false, false);
    let deadline = std::time::Instant::now() + HANG;
    while !(login && back) {
        assert!(std::time::Instant::now() < deadline, "the owner heard the failed login ({login}) and camera back ({back})");
        let m = next(&mut owner).await;
        login |= m["type"] == "login_failed" && m["user"] == "admin";
        back |= m["camera"] == "back";
    }
    let mut seen = 0;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = next(&mut viewer).await;
            assert_ne!(m["type"], "login_failed", "a viewer token hears no logins: {m}");
            assert_ne!(m["camera"], "back", "a front-only token hears nothing of back: {m}");
            seen += 1;
        }
    })
    .await
    .ok();
    assert!(seen > 0, "the viewer heard its own camera's events");
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let m = next(&mut all_grants).await;
            assert_ne!(m["type"], "login_failed", "a token hears no logins: {m}");
        }
    })
    .await
    .ok();
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hear_every_event_in_the_same_order_while_another_reads_nothing() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let token = daemon.token.clone().unwrap();
    let mut a = connect(&daemon, &token, None).await;
    let mut b = connect(&daemon, &token, None).await;
    // A client that stops reading at once, with a small receive buffer so its connection fills.
    let stalled = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let address: std::net::SocketAddr = daemon.base.trim_start_matches("http://").parse().unwrap();
        let stream = socket.connect(address).await.unwrap();
        let request = format!("{}?token={token}", events_url(&daemon)).into_client_request().unwrap();
        tokio_tungstenite::client_async(request, stream).await.expect("WebSocket opens").0
    };
    let start_a = next(&mut a).await["seq"].as_u64().unwrap();
    let start_b = next(&mut b).await["seq"].as_u64().unwrap();

    // A flood of events: the owner's identify action, asked again and again.
    let actions = 3000;
    let client = reqwest::Client::new();
    let url = daemon.url("/api/actions/identify");
    let flood = tokio::spawn(async move {
        for _ in 0..actions {
            let _ = client.post(&url).send().await;
        }
    });
    // Both readers hear every event, numbered without a gap, in the same order.
    let (seqs_a, seqs_b) = tokio::join!(read_actions(&mut a, start_a, actions), read_actions(&mut b, start_b, actions));
    flood.await.unwrap();
    let common = seqs_b[0];
    assert_eq!(seqs_a.iter().filter(|s| **s >= common).take(100).collect::<Vec<_>>(), seqs_b.iter().take(100).collect::<Vec<_>>());

    // A client that reads nothing meanwhile holds up no one (the flood above reached the
    // others in full while it sat there).
    drop(stalled);
    reqwest::Client::new().post(daemon.url("/api/actions/identify")).send().await.unwrap();
    until(&mut a, |m| m["type"] == "action_requested", |_| {}).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_requests_from_two_clients_are_answered_in_one_order_and_need_the_control_grant() {
    let config = config_with(vec![test_camera("cam")]);
    let daemon = Daemon::start(config.clone()).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let mut a = connect(&daemon, daemon.token.as_deref().unwrap(), None).await;
    let mut b = connect_as_owner(&daemon).await;
    next(&mut a).await;
    next(&mut b).await;
    use futures::SinkExt;
    let send = |id: &str, kind: &str| Message::Text(format!(r#"{{"id":"{id}","type":"{kind}"}}"#).into());
    a.send(send("a1", "identify")).await.unwrap();
    b.send(send("b1", "snapshot")).await.unwrap();
    a.send(send("a2", "snapshot")).await.unwrap();
    // Each client gets its answers, in the order it asked, echoing the ids; both hear the
    // three requests as events, in one order.
    let (answers_a, order_a) = answers_and_actions(&mut a, 2).await;
    let (answers_b, order_b) = answers_and_actions(&mut b, 1).await;
    assert_eq!((answers_a, answers_b), (vec!["a1".to_owned(), "a2".into()], vec!["b1".to_owned()]));
    assert_eq!(order_a, order_b);
    let actions: Vec<&str> = order_a.iter().map(|(_, a)| a.as_str()).collect();
    // a1 before a2 (one client's order); b1 anywhere between or before.
    assert!(actions == ["identify", "snapshot", "snapshot"] || actions == ["snapshot", "identify", "snapshot"], "{actions:?}");

    // Nonsense gets a clear refusal and the socket stays open; a view-only token may not control.
    a.send(Message::Text("not json".into())).await.unwrap();
    let refusal = until(&mut a, |m| m["type"] == "result", |_| {}).await;
    assert_eq!((refusal["ok"].as_bool(), refusal["id"].is_null()), (Some(false), true), "{refusal}");
    a.send(send("a3", "self-destruct")).await.unwrap();
    let unknown = until(&mut a, |m| m["type"] == "result", |_| {}).await;
    assert!(unknown["error"].as_str().unwrap().contains("identify, snapshot, reboot"), "{unknown}");
    let viewer = common::issue_token(&config_with_storage(&config, &daemon), &[Grant::View], None);
    let mut v = connect(&daemon, &viewer, None).await;
    next(&mut v).await;
    v.send(send("v1", "reboot")).await.unwrap();
    let denied = until(&mut v, |m| m["type"] == "result", |_| {}).await;
    assert_eq!((denied["id"].as_str(), denied["ok"].as_bool()), (Some("v1"), Some(false)), "{denied}");
    daemon.stop().await;
}

/// The ids of the next `n` answers to control requests (each a success), and the three
/// actions requested over the events socket as heard, as (seq, action).
async fn answers_and_actions(socket: &mut Socket, n: usize) -> (Vec<String>, Vec<(u64, String)>) {
    let (mut got, mut heard) = (Vec::new(), Vec::new());
    while got.len() < n || heard.len() < 3 {
        let m = next(socket).await;
        if m["type"] == "result" {
            assert_eq!(m["ok"], true, "{m}");
            got.push(m["id"].as_str().unwrap().to_owned());
        }
        if m["type"] == "action_requested" && m["origin"] == "events socket" {
            heard.push((m["seq"].as_u64().unwrap(), m["action"].as_str().unwrap().to_owned()));
        }
    }
    (got, heard)
}

/// Reads until `actions` identify requests were heard; checks every event after `from` comes
/// once, in order. Returns their numbers.
async fn read_actions(socket: &mut Socket, from: u64, actions: usize) -> Vec<u64> {
    let (mut seqs, mut identified, mut expect) = (Vec::new(), 0, from + 1);
    while identified < actions {
        let m = next(socket).await;
        let seq = m["seq"].as_u64().unwrap();
        assert_eq!(seq, expect, "every event, in order, none twice");
        expect += 1;
        seqs.push(seq);
        identified += usize::from(m["type"] == "action_requested");
    }
    seqs
}

/// `config` with the daemon's data folder, so a token issued for it is valid there.
fn config_with_storage(config: &lookout::config::Config, daemon: &Daemon) -> lookout::config::Config {
    let mut c = config.clone();
    c.storage.path = daemon.data.clone();
    c
}

/// Every file under `dir` with its size.
fn files_and_sizes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_and_sizes(&path));
        } else {
            out.push((path.clone(), entry.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_switch_stops_a_cameras_recording_until_switched_on_also_across_a_restart() {
    let mut config = config_with(vec![test_camera("cam"), test_camera("other")]);
    config.cameras[1].fps = 10;
    let daemon = Daemon::start(config.clone()).await;
    for cam in ["cam", "other"] {
        daemon.wait_state(cam, HANG, |c| c["recording"] == true && c["recording_switch"] == true).await.expect("recording");
    }
    let mut socket = connect_as_owner(&daemon).await;
    next(&mut socket).await;
    use futures::SinkExt;
    socket.send(Message::Text(r#"{"id":7,"type":"recording.stop","camera":"cam"}"#.into())).await.unwrap();
    let answer = until(&mut socket, |m| m["type"] == "result", |_| {}).await;
    assert_eq!((answer["id"].as_u64(), answer["ok"].as_bool()), (Some(7), Some(true)), "{answer}");
    let switched = until(&mut socket, |m| m["type"] == "recording_switched", |_| {}).await;
    assert_eq!((switched["camera"].as_str(), switched["on"].as_bool()), (Some("cam"), Some(false)), "{switched}");
    assert_eq!(switched["origin"], "events socket");
    daemon.wait_state("cam", HANG, |c| c["recording"] == false && c["recording_switch"] == false).await.expect("switched off");

    // Nothing more is written for `cam` (its last file was finished), while `other` records on.
    let cam_dir = daemon.data.join("recordings/cam");
    let other_dir = daemon.data.join("recordings/other");
    let (cam_then, other_then) = (files_and_sizes(&cam_dir), files_and_sizes(&other_dir));
    assert!(!cam_then.is_empty(), "cam recorded before the switch");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(files_and_sizes(&cam_dir), cam_then, "cam's recordings changed while switched off");
    assert_ne!(files_and_sizes(&other_dir), other_then, "the other camera stopped recording too");
    assert_eq!(daemon.camera_state("other").await["recording"], true);

    // Off holds across a restart of the daemon.
    let data = daemon.stop().await;
    let daemon = Daemon::start_in(config.clone(), data).await;
    let state = daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online again");
    assert_eq!((state["recording_switch"].as_bool(), state["recording"].as_bool()), (Some(false), Some(false)), "{state}");
    daemon.wait_state("other", HANG, |c| c["recording"] == true).await.expect("other records after the restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(files_and_sizes(&cam_dir), cam_then, "cam recorded after the restart although switched off");

    // Switched on from the API (the page's way): recording resumes in a new file.
    let owner = daemon.owner().await;
    let on = owner.post(format!("{}/api/actions/recording.start?camera=cam", daemon.base)).send().await.unwrap();
    assert_eq!(on.status(), 202);
    daemon.wait_state("cam", HANG, |c| c["recording"] == true && c["recording_switch"] == true).await.expect("recording again");
    let deadline = std::time::Instant::now() + HANG;
    while files_and_sizes(&cam_dir).len() <= cam_then.len() {
        assert!(std::time::Instant::now() < deadline, "no new file after switching on");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_switch_needs_control_of_the_camera_and_recording_enabled_in_the_config() {
    let mut config = config_with(vec![test_camera("cam"), test_camera("other")]);
    config.cameras[0].recording.enabled = false;
    config.cameras[1].fps = 10;
    let daemon = Daemon::start(config.clone()).await;
    daemon.wait_state("other", HANG, |c| c["recording"] == true).await.expect("other records");
    let with_storage = config_with_storage(&config, &daemon);
    let post = |token: String, query: &'static str| {
        let url = format!("{}/api/actions/recording.stop{query}", daemon.base);
        async move { reqwest::Client::new().post(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    let viewer = common::issue_token(&with_storage, &[Grant::View], None);
    let other_only = common::issue_token(&with_storage, &[Grant::Control], Some(vec!["other".into()]));
    let owner_token = daemon.token.clone().unwrap();
    assert_eq!(post(viewer.clone(), "?camera=other").await, 403, "view grant");
    assert_eq!(post(other_only.clone(), "?camera=cam").await, 403, "a camera the token does not have");
    assert_eq!(post(other_only.clone(), "").await, 403, "every camera, with a token for one");
    assert_eq!(post(owner_token.clone(), "?camera=cam").await, 409, "recording disabled in the config");
    assert_eq!(post(owner_token.clone(), "?camera=nope").await, 404);
    assert_eq!(daemon.camera_state("other").await["recording_switch"], true, "nothing refused was applied");

    // Over the socket, the same refusal comes back as the answer.
    let mut socket = connect(&daemon, &viewer, None).await;
    next(&mut socket).await;
    use futures::SinkExt;
    socket.send(Message::Text(r#"{"id":"v","type":"recording.stop","camera":"other"}"#.into())).await.unwrap();
    let denied = until(&mut socket, |m| m["type"] == "result", |_| {}).await;
    assert_eq!((denied["id"].as_str(), denied["ok"].as_bool()), (Some("v"), Some(false)), "{denied}");

    // The token for `other` may switch `other`.
    assert_eq!(post(other_only, "?camera=other").await, 202);
    daemon.wait_state("other", HANG, |c| c["recording"] == false && c["recording_switch"] == false).await.expect("switched off");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_dropped_while_another_keeps_receiving_every_event() {
    let mut camera = test_camera("cam");
    camera.fps = 10;
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let token = daemon.token.clone().unwrap();

    // A client that never reads, with a tiny receive window so the daemon's side fills soon.
    let address: std::net::SocketAddr = daemon.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (mut stalled, _) =
        tokio_tungstenite::client_async(format!("{}?token={token}", events_url(&daemon)), stream).await.expect("WebSocket opens");

    // A client that reads everything, checking each event comes once and in order.
    let mut reader = connect(&daemon, &token, None).await;
    let from = next(&mut reader).await["seq"].as_u64().unwrap();
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<u64>();
    let reading = tokio::spawn(async move {
        let mut expect = from + 1;
        let mut until = None;
        loop {
            if let Ok(last) = done.try_recv() {
                until = Some(last);
            }
            if until.is_some_and(|last| expect > last) {
                return expect - 1;
            }
            let m = next(&mut reader).await;
            assert_eq!(m["seq"].as_u64(), Some(expect), "every event, once, in order: {m}");
            expect += 1;
        }
    });

    // Flood the bus with requests until the daemon drops the stalled client.
    let owner = daemon.owner().await;
    let deadline = std::time::Instant::now() + HANG * 3;
    let metric = |scrape: &str, name: &str| scrape.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(-1.0);
    loop {
        let batch = (0..4).map(|_| {
            let (owner, url) = (owner.clone(), format!("{}/api/actions/identify", daemon.base));
            tokio::spawn(async move {
                for _ in 0..100 {
                    assert_eq!(owner.post(&url).send().await.unwrap().status(), 202);
                }
            })
        });
        for task in batch.collect::<Vec<_>>() {
            task.await.unwrap();
        }
        let scrape = owner.get(format!("{}/metrics", daemon.base)).send().await.unwrap().text().await.unwrap();
        if metric(&scrape, "lookout_event_clients_dropped_total") >= 1.0 {
            assert_eq!(metric(&scrape, "lookout_event_clients"), 1.0, "the reader is still connected");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stalled client was never dropped");
    }

    // The reader got everything, up to the last request.
    let mut probe = connect(&daemon, &token, None).await;
    let newest = next(&mut probe).await["seq"].as_u64().unwrap();
    done_tx.send(newest).unwrap();
    let reached = tokio::time::timeout(HANG, reading).await.expect("the reader keeps up").unwrap();
    assert!(reached >= newest, "the reader reached {reached} of {newest}");

    // The stalled client, reading at last, finds its stream ended: a close (4000) or the end.
    let ended = tokio::time::timeout(HANG, async {
        let mut last_seq = 0;
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Text(t)) => last_seq = serde_json::from_str::<Value>(&t).unwrap()["seq"].as_u64().unwrap_or(0),
                Ok(Message::Close(frame)) => return (last_seq, frame.map(|f| u16::from(f.code))),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (last_seq, None)
    })
    .await
    .expect("the stalled client's stream ends");
    assert!(ended.0 < newest, "the stalled client was cut off before the end: {ended:?}");
    assert!(ended.1.is_none_or(|code| code == 4000), "closed as too slow: {ended:?}");
    daemon.stop().await;
}
