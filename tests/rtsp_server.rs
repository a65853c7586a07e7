//! The RTSP server, read by clients that are not ours: ffmpeg over interleaved TCP (as Home
//! Assistant and most NVRs ask), GStreamer's rtspsrc over UDP, and hand-written requests for
//! what the server must refuse. Each kind of source: a camera Lookout encodes (test pattern)
//! and an IP camera passed through (RTSP in, RTSP out).

mod common;

use std::time::{Duration, Instant};

use gst::prelude::*;
use lookout::config::{Camera, SourceSpec};
use md5::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::media::probe_rtsp;
use common::rtsp::{IpCamera, RtspServer};
use common::{Daemon, Grant, HANG, OWNER_PASSWORD, config_with, issue_token, test_camera};

/// `url` with a user and password in it, as NVRs are configured.
fn with_login(url: &str, user: &str, password: &str) -> String {
    url.replacen("rtsp://", &format!("rtsp://{user}:{password}@"), 1)
}

/// Frames ffmpeg decodes from `url` over interleaved TCP in `seconds` of the stream, and
/// what it said.
async fn ffmpeg_frames(url: &str, seconds: u32) -> (u64, String) {
    let run = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-rtsp_transport", "tcp", "-i", url, "-t", &seconds.to_string(), "-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(HANG, run).await.expect("ffmpeg ends").expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let frames = log.rsplit("frame=").next().and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    (if log.contains("frame=") { frames } else { 0 }, log)
}

/// A GStreamer client over UDP that decodes what it gets and counts the frames.
struct UdpClient {
    pipeline: gst::Pipeline,
    frames: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The RTP SSRC of the video it received: one per payloader.
    ssrc: std::sync::Arc<std::sync::Mutex<Option<u32>>>,
    bus: gst::Bus,
}

impl UdpClient {
    fn start(url: &str, user: &str, password: &str) -> UdpClient {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(&format!(
            "rtspsrc name=src location={url} protocols=udp latency=0 ! rtph264depay name=depay ! h264parse ! avdec_h264 ! fakesink name=sink sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline.by_name("src").unwrap();
        src.set_property("user-id", user);
        src.set_property("user-pw", password);
        let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = frames.clone();
        pipeline.by_name("sink").unwrap().static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        let ssrc = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = ssrc.clone();
        pipeline.by_name("depay").unwrap().static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(map) = info.buffer().and_then(|b| b.map_readable().ok())
                && map.len() >= 12
            {
                *seen.lock().unwrap() = Some(u32::from_be_bytes([map[8], map[9], map[10], map[11]]));
            }
            gst::PadProbeReturn::Ok
        });
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        UdpClient { pipeline, frames, ssrc, bus }
    }

    fn frames(&self) -> u64 {
        self.frames.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until `n` frames decoded; the client's error if it failed first.
    async fn wait_frames(&mut self, n: u64) -> Result<(), String> {
        let deadline = Instant::now() + HANG;
        while self.frames() < n {
            if Instant::now() > deadline {
                return Err(format!("{} of {n} frames within {HANG:?}", self.frames()));
            }
            if let Some(msg) = self.bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = msg.view()
            {
                return Err(format!("{} ({:?})", e.error(), e.debug()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

impl Drop for UdpClient {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One request on a new connection; the answer's status line and headers. A 503 is asked
/// again: gst-rtsp-server answers it to a DESCRIBE that arrives while the camera's shared
/// stream is being taken down after the previous connection's DESCRIBE (a real client
/// would retry too).
async fn request(url: &str, method: &str, headers: &[String]) -> String {
    for _ in 0..5 {
        let answer = request_once(url, method, headers).await;
        if status(&answer) != 503 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    request_once(url, method, headers).await
}

async fn request_once(url: &str, method: &str, headers: &[String]) -> String {
    let address = url.trim_start_matches("rtsp://").split('/').next().unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: 1\r\n");
    for h in headers {
        text.push_str(&format!("{h}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(HANG, read).await.expect("an answer");
    String::from_utf8_lossy(&answer).into_owned()
}

fn status(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn basic(user: &str, password: &str) -> String {
    format!("Authorization: Basic {}", gst::glib::base64_encode(format!("{user}:{password}").as_bytes()))
}

/// A Digest answer to the challenge in `answer`, from RFC 7616's formulas.
fn digest(answer: &str, method: &str, url: &str, user: &str, password: &str) -> String {
    let line = answer.lines().find(|l| l.starts_with("WWW-Authenticate: Digest")).expect("a Digest challenge");
    let field = |name: &str| line.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let (realm, nonce) = (field("realm"), field("nonce"));
    let md5 = |t: String| md5::Md5::digest(t).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let response = md5(format!("{}:{nonce}:{}", md5(format!("{user}:{realm}:{password}")), md5(format!("{method}:{url}"))));
    format!("Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{url}\", response=\"{response}\"")
}

/// A token issued on the daemon's data, as `lookout token` does on the device.
fn issue(daemon: &Daemon, grants: &[Grant], cameras: Option<Vec<String>>) -> String {
    let mut config = lookout::config::Config::default();
    config.storage.path = daemon.data.clone();
    issue_token(&config, grants, cameras)
}

fn ip_camera(name: &str, server: &RtspServer, path: &str) -> Camera {
    Camera { name: name.into(), source: SourceSpec::Rtsp(server.url(path, None)), ..Camera::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_camera_is_read_over_tcp_by_ffmpeg_and_over_udp_by_rtspsrc() {
    let ip = RtspServer::start(&[IpCamera::baseline("/door")], None);
    let daemon = Daemon::start(config_with(vec![test_camera("yard"), ip_camera("door", &ip, "/door")])).await;
    for (camera, width) in [("yard", 640), ("door", 640)] {
        daemon.wait_state(camera, HANG, |s| s["online"] == true).await.expect("camera online");
        let url = with_login(&daemon.rtsp_url(camera).await, "admin", OWNER_PASSWORD);
        let stream = probe_rtsp(&url).await;
        assert_eq!((stream["codec_name"].as_str(), stream["width"].as_u64()), (Some("h264"), Some(width)), "{camera}: {stream}");
        let (frames, log) = ffmpeg_frames(&url, 5).await;
        // 5 s at 30 (yard) or 15 (door) fps; a loaded machine may lose the first GOP.
        assert!(frames >= 30, "{camera}: {frames} frames decoded over TCP\n{log}");
        assert!(!log.contains("error while decoding"), "{camera}: decoding errors\n{log}");
        let mut udp = UdpClient::start(&daemon.rtsp_url(camera).await, "admin", OWNER_PASSWORD);
        udp.wait_frames(30).await.unwrap_or_else(|e| panic!("{camera} over UDP: {e}"));
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rtsp_asks_for_credentials_refuses_wrong_ones_and_takes_digest_basic_and_tokens() {
    let daemon = Daemon::start(config_with(vec![test_camera("yard"), test_camera("shed")])).await;
    daemon.wait_state("yard", HANG, |s| s["online"] == true).await.expect("camera online");
    let url = daemon.rtsp_url("yard").await;

    // The owner was seeded from a hash (as the image's boot partition does): Digest needs
    // the password seen once, so only Basic is offered until then.
    let anonymous = request(&url, "DESCRIBE", &[]).await;
    assert_eq!(status(&anonymous), 401, "{anonymous}");
    assert!(anonymous.contains("WWW-Authenticate: Basic realm=\"Lookout\""), "{anonymous}");
    assert!(!anonymous.contains("Digest"), "{anonymous}");
    let wrong = request(&url, "DESCRIBE", &[basic("admin", "not the password")]).await;
    assert_eq!(status(&wrong), 401, "{wrong}");
    let right = request(&url, "DESCRIBE", &[basic("admin", OWNER_PASSWORD)]).await;
    assert_eq!(status(&right), 200, "{right}");
    assert!(right.contains("application/sdp"), "{right}");
    let anonymous = request(&url, "DESCRIBE", &[]).await;
    assert!(anonymous.contains("WWW-Authenticate: Digest realm=\"Lookout\""), "{anonymous}");

    // Digest, answered from the challenge; a wrong password the same way is refused.
    let answer = digest(&anonymous, "DESCRIBE", &url, "admin", OWNER_PASSWORD);
    let by_digest = request(&url, "DESCRIBE", &[answer]).await;
    assert_eq!(status(&by_digest), 200, "{by_digest}");
    let wrong = digest(&anonymous, "DESCRIBE", &url, "admin", "guess");
    assert_eq!(status(&request(&url, "DESCRIBE", &[wrong]).await), 401);

    // A token with the view grant of this camera: as the password, or in the URL; ffmpeg
    // plays with either. A token for another camera, or without `view`, is refused.
    let token = issue(&daemon, &[Grant::View], Some(vec!["yard".into()]));
    let (frames, log) = ffmpeg_frames(&with_login(&url, "nvr", &token), 2).await;
    assert!(frames > 0, "token as password\n{log}");
    let (frames, log) = ffmpeg_frames(&format!("{url}?token={token}"), 2).await;
    assert!(frames > 0, "token in the URL\n{log}");
    let shed = daemon.rtsp_url("shed").await;
    assert_eq!(status(&request(&shed, "DESCRIBE", &[basic("nvr", &token)]).await), 403);
    let snapshots_only = issue(&daemon, &[Grant::Snapshot], None);
    assert_eq!(status(&request(&url, "DESCRIBE", &[basic("nvr", &snapshots_only)]).await), 403);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rtsp_clients_are_counted_and_share_the_cameras_viewer_limit() {
    let mut config = config_with(vec![test_camera("yard")]);
    config.webrtc.max_viewers = 2;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("yard", HANG, |s| s["online"] == true).await.expect("camera online");
    let url = daemon.rtsp_url("yard").await;
    let mut first = UdpClient::start(&url, "admin", OWNER_PASSWORD);
    let mut second = UdpClient::start(&url, "admin", OWNER_PASSWORD);
    first.wait_frames(10).await.unwrap();
    second.wait_frames(10).await.unwrap();
    let state = daemon.wait_state("yard", HANG, |s| s["rtsp_clients"] == 2).await.expect("two RTSP clients counted");
    assert_eq!(state["viewers"], 2);
    let metrics = reqwest::get(daemon.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("lookout_camera_rtsp_clients{camera=\"yard\"} 2"), "{metrics}");

    // A third is one too many: refused at PLAY, the two others play on.
    let (frames, log) = ffmpeg_frames(&with_login(&url, "admin", OWNER_PASSWORD), 2).await;
    assert_eq!(frames, 0, "a third viewer was let in\n{log}");
    assert!(log.contains("453") || log.contains("Not Enough Bandwidth"), "{log}");
    let before = second.frames();
    second.wait_frames(before + 10).await.unwrap();

    drop(first);
    drop(second);
    daemon.wait_state("yard", HANG, |s| s["rtsp_clients"] == 0 && s["viewers"] == 0).await.expect("clients gone");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_rtsp_clients_and_a_whep_viewer_share_one_encode() {
    let mut config = config_with(vec![test_camera("yard")]);
    config.webrtc.max_viewers = 16;
    let daemon = Daemon::start(config).await;
    daemon.wait_state("yard", HANG, |s| s["online"] == true).await.expect("camera online");
    let url = daemon.rtsp_url("yard").await;
    let viewer = common::whep::WhepViewer::connect(&daemon.url("/whep/yard")).await.expect("a WHEP viewer");
    let mut clients: Vec<UdpClient> = (0..8).map(|_| UdpClient::start(&url, "admin", OWNER_PASSWORD)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.wait_frames(30).await.unwrap_or_else(|e| panic!("client {i}: {e}"));
    }
    assert!(viewer.wait_frames(30, HANG).await, "the WHEP viewer gets video beside them");
    let state = daemon.wait_state("yard", HANG, |s| s["rtsp_clients"] == 8).await.expect("eight RTSP clients");
    assert_eq!(state["viewers"], 9);
    // One payloader for all of them (one SSRC), after the camera's one encoder: a client of
    // its own would have a payloader, and an SSRC, of its own.
    let ssrcs: std::collections::HashSet<u32> = clients.iter().map(|c| c.ssrc.lock().unwrap().expect("an SSRC")).collect();
    assert_eq!(ssrcs.len(), 1, "{ssrcs:?}");
    for (i, client) in clients.iter_mut().enumerate() {
        let before = client.frames();
        client.wait_frames(before + 30).await.unwrap_or_else(|e| panic!("client {i} kept up: {e}"));
    }
    daemon.stop().await;
}
