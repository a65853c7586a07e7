//! ONVIF, with clients that are not ours: WS-Discovery finds the device, onvif-zeep (which
//! reads the services through the ONVIF WSDLs) reads its profiles and URIs with a token's
//! PasswordDigest and with a user's PasswordText, and ffprobe plays the stream URI it was
//! given, for a camera Lookout encodes and an IP camera passed through. Hand-written SOAP
//! for what must be refused.

mod common;

use std::time::Duration;

use lookout::config::{Camera, SourceSpec};
use serde_json::Value;

use common::media::probe_rtsp;
use common::rtsp::{IpCamera, RtspServer};
use common::{Daemon, Grant, HANG, OWNER_PASSWORD, config_with, issue_token, test_camera};

/// The tests' virtualenv (scripts/setup makes it).
/// Runs the ONVIF client; its JSON, or its error.
async fn client(args: &[&str]) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onvif/client.py");
    let run = tokio::process::Command::new(common::venv_python()).arg(script).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(HANG, run).await.expect("the ONVIF client ends").expect("python runs");
    let json: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))?;
    if out.status.success() { Ok(json) } else { Err(json["error"].as_str().unwrap_or_default().to_owned()) }
}

fn port(daemon: &Daemon) -> String {
    daemon.base.rsplit(':').next().unwrap().to_owned()
}

fn issue(daemon: &Daemon, grants: &[Grant], cameras: Option<Vec<String>>) -> String {
    let mut config = lookout::config::Config::default();
    config.storage.path = daemon.data.clone();
    issue_token(&config, grants, cameras)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_onvif_client_finds_the_device_reads_its_profiles_and_plays_each_stream_uri() {
    let ip = RtspServer::start(&[IpCamera::baseline("/door")], None);
    let door = Camera { name: "door".into(), source: SourceSpec::Rtsp(ip.url("/door", None)), ..Camera::default() };
    let daemon = Daemon::start(config_with(vec![test_camera("yard"), door])).await;
    for camera in ["yard", "door"] {
        daemon.wait_state(camera, HANG, |s| s["online"] == true).await.expect("camera online");
    }
    daemon.rtsp_url("yard").await;

    // Discovery: a multicast Probe for a NetworkVideoTransmitter finds this daemon's device
    // service (other daemons of the test run may answer too).
    let found = client(&["discover"]).await.expect("discovery");
    let service = format!(":{}/onvif/device_service", port(&daemon));
    assert!(found["xaddrs"].as_array().unwrap().iter().any(|x| x.as_str().is_some_and(|x| x.ends_with(&service))), "{found}");

    // A token as a PasswordDigest's password (what Home Assistant's ONVIF setup sends).
    let token = issue(&daemon, &[Grant::View, Grant::Snapshot], None);
    let read = client(&["read", &port(&daemon), "nvr", &token, "digest"]).await.expect("read with a token's digest");
    assert_eq!(read["manufacturer"], "Lookout");
    let profiles = read["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2, "{read}");
    for p in profiles {
        let name = p["name"].as_str().unwrap();
        assert_eq!((p["encoding"].as_str(), p["width"].as_u64(), p["height"].as_u64()), (Some("H264"), Some(640), Some(360)), "{p}");
        let stream = p["stream"].as_str().unwrap();
        assert!(stream.starts_with("rtsp://127.0.0.1:") && stream.ends_with(&format!("/{name}")), "{p}");
        // The stream URI plays, with the token as the RTSP password.
        let played = probe_rtsp(&stream.replacen("rtsp://", &format!("rtsp://nvr:{token}@"), 1)).await;
        assert_eq!((played["codec_name"].as_str(), played["width"].as_u64()), (Some("h264"), Some(640)), "{name}: {played}");
        // The snapshot URI answers Basic with the same credentials.
        let snapshot = reqwest::Client::new().get(p["snapshot"].as_str().unwrap()).basic_auth("nvr", Some(&token)).send().await.unwrap();
        assert_eq!(snapshot.status(), 200, "{p}");
        assert_eq!(snapshot.headers()["content-type"], "image/jpeg");
    }

    // A user's password as PasswordText works; as a digest it cannot (the device keeps no
    // password to compute it from), nor does a wrong password.
    let read = client(&["read", &port(&daemon), "admin", OWNER_PASSWORD, "text"]).await.expect("read with a user's PasswordText");
    assert_eq!(read["profiles"].as_array().unwrap().len(), 2);
    let refused = client(&["read", &port(&daemon), "admin", OWNER_PASSWORD, "digest"]).await.expect_err("a user's digest");
    assert!(refused.contains("NotAuthorized") || refused.contains("not authorized") || refused.contains("wrong"), "{refused}");
    client(&["read", &port(&daemon), "admin", "not the password", "text"]).await.expect_err("a wrong password");
    daemon.stop().await;
}

/// One SOAP request to a service; status and body.
async fn soap(daemon: &Daemon, path: &str, header: &str, body: &str) -> (u16, String) {
    let envelope = format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    );
    let r = reqwest::Client::new()
        .post(daemon.anonymous_url(path))
        .header("content-type", "application/soap+xml")
        .body(envelope)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn text_token(user: &str, password: &str) -> String {
    format!(
        r#"<Security xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><UsernameToken><Username>{user}</Username><Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">{password}</Password></UsernameToken></Security>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onvif_answers_the_clock_to_anyone_and_nothing_else_without_the_right_credentials() {
    let daemon = Daemon::start(config_with(vec![test_camera("yard"), test_camera("shed")])).await;
    let (status, body) = soap(&daemon, "/onvif/device_service", "", "<tds:GetSystemDateAndTime/>").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("UTCDateTime"), "{body}");

    let (status, body) = soap(&daemon, "/onvif/media_service", "", "<trt:GetProfiles/>").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ter:NotAuthorized"), "{body}");
    let (status, body) = soap(&daemon, "/onvif/device_service", &text_token("admin", "wrong"), "<tds:GetDeviceInformation/>").await;
    assert!(status == 400 && body.contains("ter:NotAuthorized"), "{status} {body}");

    // A token for one camera sees that camera's profile only, and no other's stream URI.
    let yard_only = issue(&daemon, &[Grant::View], Some(vec!["yard".into()]));
    let (status, body) = soap(&daemon, "/onvif/media_service", &text_token("nvr", &yard_only), "<trt:GetProfiles/>").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"token="profile_yard""#) && !body.contains("profile_shed"), "{body}");
    let shed = "<trt:GetStreamUri><trt:ProfileToken>profile_shed</trt:ProfileToken></trt:GetStreamUri>";
    let (status, body) = soap(&daemon, "/onvif/media_service", &text_token("nvr", &yard_only), shed).await;
    assert!(status == 400 && body.contains("ter:NotAuthorized"), "{status} {body}");

    // What the device does not do is a proper fault; what is not SOAP too.
    let (status, body) = soap(&daemon, "/onvif/device_service", &text_token("admin", OWNER_PASSWORD), "<tds:SystemReboot/>").await;
    assert!(status == 400 && body.contains("ter:ActionNotSupported"), "{status} {body}");
    let r = reqwest::Client::new().post(daemon.anonymous_url("/onvif/device_service")).body("not xml").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let huge = "x".repeat(100 * 1024);
    let r = reqwest::Client::new().post(daemon.anonymous_url("/onvif/device_service")).body(huge).send().await.unwrap();
    assert_eq!(r.status(), 413);
    daemon.stop().await;
}
