//! Access control end to end: every route the router serves refuses an anonymous client
//! (except the public few), viewers and tokens get exactly what they were given, setup
//! happens once, cross-site requests are refused, and revoked tokens end live sessions.

mod common;

use std::time::Duration;

use lookout::auth::Action;
use lookout::web::auth::{Policy, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::whep::WhepViewer;
use common::{Daemon, Grant, HANG, OWNER_PASSWORD, config_with, issue_token, login, test_camera, with_token};

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{camera}", "cam")
        .replace("{segment}", "2026-01-01T00-00-00.000Z.mp4")
        .replace("{session}", "0123456789abcdef")
        .replace("{action}", "identify")
        .replace("{name}", "someone")
        .replace("{id}", "0123")
        .replace("{*path}", "app.js")
}

async fn send(client: &reqwest::Client, method: &str, url: &str) -> reqwest::Response {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    client.request(method, url).header("content-type", "application/json").body("{}").send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_anonymous_clients_viewers_admin_routes_and_tokens_what_they_were_not_granted() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    let anonymous = reqwest::Client::new();
    let mut checked = 0;
    for (method, pattern, policy) in ROUTES {
        let url = daemon.anonymous_url(&concrete(pattern));
        let r = send(&anonymous, method, &url).await;
        match policy {
            Policy::Public => assert_ne!(r.status(), StatusCode::UNAUTHORIZED, "{method} {pattern} is public"),
            // The credential is in the SOAP body (tests/onvif.rs checks each operation): what
            // is no SOAP request at all is refused before anything is answered.
            Policy::Soap => assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{method} {pattern} answered a non-SOAP request"),
            _ => {
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {pattern} answered an anonymous client");
                assert!(r.headers().contains_key("www-authenticate"), "{method} {pattern}");
                checked += 1;
            }
        }
        // A page asked for by a browser is sent to the login page instead.
        if *method == "GET" && *pattern == "/" {
            let page = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
            let r = page.get(&url).header("accept", "text/html").send().await.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            assert_eq!(r.headers()["location"], "/login");
        }
    }
    assert!(checked >= 20, "only {checked} protected routes");
    // Public assets are only what the login page needs.
    assert_eq!(anonymous.get(daemon.anonymous_url("/assets/login.js")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(anonymous.get(daemon.anonymous_url("/assets/app.js")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // A garbage or forged credential is no better than none.
    for bad in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJ0eXAiOiJ0b2tlbiJ9."] {
        let r = anonymous.get(daemon.anonymous_url("/api/state")).bearer_auth(bad).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
        let r = anonymous.get(daemon.anonymous_url("/api/state")).header("cookie", format!("lookout_session={bad}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }

    // A viewer: the owner adds one, limited to `cam`.
    let owner = daemon.owner().await;
    let r = owner
        .post(daemon.anonymous_url("/api/users"))
        .json(&json!({"name": "anna", "password": "annas password", "cameras": ["cam"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let anna = login(&daemon.base, "anna", "annas password").await.expect("viewer logs in");
    for (method, pattern, policy) in ROUTES {
        if *policy == Policy::Needs(Action::Admin) || *policy == Policy::Needs(Action::Control) || *policy == Policy::Needs(Action::Metrics)
        {
            let r = send(&anna, method, &daemon.anonymous_url(&concrete(pattern))).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "viewer got {method} {pattern}");
        }
    }
    assert_eq!(anna.get(daemon.anonymous_url("/api/cameras/cam/recordings")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(anna.get(daemon.anonymous_url("/api/state")).send().await.unwrap().status(), StatusCode::OK);

    // Tokens: exactly their grants and cameras.
    let config = {
        let mut c = config_with(vec![test_camera("cam")]);
        c.storage.path = daemon.data.clone();
        c
    };
    let snapshot_only = issue_token(&config, &[Grant::Snapshot], Some(vec!["cam".into()]));
    let other_camera = issue_token(&config, &[Grant::View, Grant::Snapshot, Grant::Playback], Some(vec!["door".into()]));
    let ok = |path: &str, token: &str| with_token(&daemon.anonymous_url(path), token);
    assert_eq!(anonymous.get(ok("/api/cameras/cam/recordings", &snapshot_only)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(anonymous.get(ok("/metrics", &snapshot_only)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(anonymous.get(ok("/api/users", &snapshot_only)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(anonymous.get(ok("/api/cameras/cam/recordings", &other_camera)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let state: Value = anonymous.get(ok("/api/state", &other_camera)).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["cameras"], json!([]), "a token sees only its cameras in the state");
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let jpeg = anonymous.get(ok("/api/cameras/cam/snapshot.jpg", &snapshot_only)).send().await.unwrap();
    assert_eq!(jpeg.status(), StatusCode::OK, "a snapshot token fetches snapshots (an <img src> with ?token=)");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_answers_nothing_but_setup_and_setup_happens_once() {
    let daemon = Daemon::start_in_setup(config_with(vec![test_camera("cam")])).await;
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = anonymous.get(daemon.anonymous_url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!((r.status(), r.headers()["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, "/setup"));
    let r = anonymous.get(daemon.anonymous_url("/login")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/setup", "no login before setup");
    let r = anonymous.get(daemon.anonymous_url("/api/state")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["setup"], "/setup");
    let page = anonymous.get(daemon.anonymous_url("/setup")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("owner's password"));

    let weak = anonymous.post(daemon.anonymous_url("/api/setup")).json(&json!({"password": "short"})).send().await.unwrap();
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    let r = anonymous
        .post(daemon.anonymous_url("/api/setup"))
        .json(&json!({"user": "owner", "password": "the owners password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "session cookie lacks {attribute}: {cookie}");
    }
    let again =
        anonymous.post(daemon.anonymous_url("/api/setup")).json(&json!({"password": "an attackers password"})).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT, "setup happens once");
    assert!(login(&daemon.base, "owner", "an attackers password").await.is_err());
    let owner = login(&daemon.base, "owner", "the owners password").await.expect("the owner logs in");
    assert_eq!(owner.get(daemon.anonymous_url("/api/state")).send().await.unwrap().status(), StatusCode::OK);
    let me: Value = owner.get(daemon.anonymous_url("/api/me")).send().await.unwrap().json().await.unwrap();
    assert_eq!((me["user"].as_str(), me["role"].as_str()), (Some("owner"), Some("admin")));
    // Logout ends the session.
    assert_eq!(owner.post(daemon.anonymous_url("/api/logout")).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(owner.get(daemon.anonymous_url("/api/state")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_from_another_site_are_refused_and_cors_is_open_only_on_whep() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    let r = common::post_login(&daemon.base, "admin", OWNER_PASSWORD).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let post = |origin: Option<&'static str>, site: Option<&'static str>| {
        let mut r = client.post(daemon.anonymous_url("/api/actions/identify")).header("cookie", &cookie);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        r.send()
    };
    assert_eq!(post(Some("http://evil.example"), None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(post(None, Some("cross-site")).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(post(None, Some("same-origin")).await.unwrap().status(), StatusCode::ACCEPTED);
    // No CORS grant on the cookie API, whatever the origin.
    let r = client
        .get(daemon.anonymous_url("/api/state"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"), "the API must not be readable cross-origin");
    // WHEP keeps its CORS for third-party players (who send a Bearer token).
    let r = client
        .request(Method::OPTIONS, daemon.anonymous_url("/whep/cam"))
        .header("origin", "https://player.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_needs_a_token_and_a_revoked_one_ends_its_session() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("camera online");
    let refused = WhepViewer::connect(&daemon.anonymous_url("/whep/cam")).await.err().expect("anonymous viewer refused");
    assert_eq!(refused.status, 401);
    let owner = daemon.owner().await;
    let body = json!({"label": "player", "cameras": ["cam"], "grants": ["view"], "ttl": "1h"});
    let issued = common::issue_token_over_http(&owner, &daemon.base, body).await;
    let token = issued["token"].as_str().unwrap();
    let listed: Value = owner.get(daemon.anonymous_url("/api/tokens")).send().await.unwrap().json().await.unwrap();
    assert!(listed.as_array().unwrap().iter().any(|t| t["id"] == issued["id"] && t["label"] == "player"));
    assert!(!listed.to_string().contains(token), "the list never shows a token's text");

    let viewer = WhepViewer::connect(&with_token(&daemon.anonymous_url("/whep/cam"), token)).await.expect("token viewer admitted");
    assert!(viewer.wait_frames(30, HANG).await, "token viewer plays");
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 1).await.expect("one viewer");
    let id = issued["id"].as_str().unwrap();
    assert_eq!(owner.delete(daemon.anonymous_url(&format!("/api/tokens/{id}"))).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    daemon.wait_state("cam", HANG, |c| c["viewers"] == 0).await.expect("the revoked token's session ended");
    let again = WhepViewer::connect(&with_token(&daemon.anonymous_url("/whep/cam"), token)).await.err().expect("revoked token refused");
    assert_eq!(again.status, 401);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_password_logs_out_the_users_other_sessions() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    let laptop = daemon.owner().await;
    let phone = daemon.owner().await;
    let r = laptop
        .post(daemon.anonymous_url("/api/me/password"))
        .json(&json!({"current": OWNER_PASSWORD, "new": "a brand new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers().contains_key("set-cookie"), "the changer gets a fresh session");
    assert_eq!(phone.get(daemon.anonymous_url("/api/state")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(login(&daemon.base, "admin", "a brand new password").await.is_ok());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_passwords_is_slowed_per_address() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    let mut statuses = Vec::new();
    for _ in 0..lookout::auth::limiter::FREE_FAILURES + 1 {
        statuses.push(login(&daemon.base, "admin", "wrong guess").await.err().unwrap());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let r = common::post_login(&daemon.base, "admin", OWNER_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the right password also waits its turn");
    assert!(r.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(login(&daemon.base, "admin", OWNER_PASSWORD).await.is_ok(), "after the short wait the owner gets in");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_route_does_not_serve_reaches_no_handler() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    let client = reqwest::Client::new();
    for (method, path) in [("PUT", "/api/state"), ("DELETE", "/api/cameras/cam/snapshot.jpg"), ("POST", "/metrics")] {
        let r = send(&client, method, &daemon.anonymous_url(path)).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let r = send(&client, method, &daemon.url(path)).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path} with a token");
    }
    daemon.stop().await;
}
