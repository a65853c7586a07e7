//! Recording end to end: segments on disk checked with real demuxers and decoders (ffprobe,
//! ffmpeg), export, snapshots, retention and a full disk.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lookout::config::{Camera, Recording, SpaceLimit};
use serde_json::Value;

use common::whep::WhepViewer;
use common::{Daemon, config_with, test_camera};

fn recording_camera(segment_s: u64) -> Camera {
    Camera { recording: Recording { segment: Duration::from_secs(segment_s), ..Recording::default() }, ..test_camera("cam") }
}

/// Duration ffprobe reads from the container.
fn probe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe installed (scripts/setup --test)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no duration for {}: {out:?}", path.display()))
}

/// Decodes every frame with ffmpeg; returns (frames, last frame time in s). Panics on errors.
fn decode(path: &Path) -> (u64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-progress", "pipe:1", "-"])
        .output()
        .expect("ffmpeg installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} does not decode: {stderr}", path.display());
    let field = |name: &str| stdout.lines().filter_map(|l| l.strip_prefix(name)).next_back().unwrap_or("0").trim().to_owned();
    let frames = field("frame=").parse().unwrap_or(0);
    let time_us: f64 = field("out_time_us=").parse().unwrap_or(0.0);
    (frames, time_us / 1e6)
}

async fn segments(daemon: &Daemon) -> Vec<Value> {
    daemon.get_json("/api/cameras/cam/recordings").await["segments"].as_array().unwrap().clone()
}

fn segment_path(daemon: &Daemon, seg: &Value) -> PathBuf {
    let name = seg["name"].as_str().unwrap();
    daemon.data.join("recordings/cam").join(&name[..10]).join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_seconds_in_five_second_segments_decode_and_add_up() {
    let daemon = Daemon::start(config_with(vec![recording_camera(5)])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["recording"] == true).await.expect("recording");
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let listing: Value = daemon.get_json("/api/cameras/cam/recordings").await;
    let kept = daemon.stop().await;
    let data = kept.path();
    let wall = started.elapsed().as_secs_f64();

    let finished = listing["segments"].as_array().unwrap().iter().filter(|s| s["recording"] == false).count();
    assert!(finished >= 3, "{listing}");
    let mut files: Vec<PathBuf> = walk(&data.join("recordings/cam"));
    files.sort();
    let mut total = 0.0;
    for f in &files {
        let d = probe_duration(f);
        let (frames, last) = decode(f);
        assert!(frames as f64 >= d * 30.0 * 0.9, "{}: {frames} frames for {d} s", f.display());
        assert!((last - d).abs() < 0.2, "{}: decoded to {last} s of {d} s", f.display());
        total += d;
    }
    assert!((total - wall).abs() / wall < 0.05, "segments add up to {total:.2} s, wall time {wall:.2} s");
    // Segments after the first start on multiples of 5 s of wall-clock time.
    for f in &files[1..] {
        let name = f.file_name().unwrap().to_str().unwrap();
        let secs: u32 = name[17..19].parse().unwrap();
        let millis: u32 = name[20..23].parse().unwrap();
        assert!(secs.is_multiple_of(5) && millis < 200, "{name} is not aligned to the wall clock");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "mp4") {
            out.push(p);
        }
    }
    out
}

/// Exports a span into `out` and returns the duration ffprobe reads.
async fn export_to(daemon: &Daemon, from: &str, to: &str, out: &Path) -> f64 {
    let r = reqwest::Client::new().get(daemon.url("/api/cameras/cam/export")).query(&[("from", from), ("to", to)]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    std::fs::write(out, r.bytes().await.unwrap()).unwrap();
    probe_duration(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_across_three_segments_is_one_file_of_the_right_length() {
    let daemon = Daemon::start(config_with(vec![recording_camera(3)])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["recording"] == true).await.expect("recording");
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = loop {
        let segs: Vec<Value> = segments(&daemon).await.into_iter().filter(|s| s["recording"] == false).collect();
        if segs.len() >= 4 {
            break segs;
        }
        assert!(Instant::now() < deadline, "not enough segments: {segs:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // A segment downloads whole, or in ranges as players seek.
    let name = finished[1]["name"].as_str().unwrap();
    let url = daemon.url(&format!("/api/cameras/cam/recordings/{name}"));
    let whole = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(whole.len() as u64, std::fs::metadata(segment_path(&daemon, &finished[1])).unwrap().len());
    let part = reqwest::Client::new().get(&url).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().await.unwrap(), whole.slice(100..200));
    let missing = reqwest::get(daemon.url("/api/cameras/cam/recordings/..%2F..%2Fetc%2Fpasswd")).await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    // Segments 1..=3 (the first may be short).
    let (from, to) = (finished[1]["start"].as_str().unwrap(), finished[3]["end"].as_str().unwrap());
    let expected: f64 = finished[1..=3].iter().map(|s| probe_duration(&segment_path(&daemon, s))).sum();
    let r = reqwest::Client::new().get(daemon.url("/api/cameras/cam/export")).query(&[("from", from), ("to", to)]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    let bytes = r.bytes().await.unwrap();
    let out = tempfile::NamedTempFile::with_suffix(".mp4").unwrap();
    std::fs::write(out.path(), &bytes).unwrap();
    let d = probe_duration(out.path());
    assert!((d - expected).abs() < 0.25, "export is {d} s, the three segments {expected} s");
    let (frames, _) = decode(out.path());
    assert!(frames as f64 >= expected * 30.0 * 0.95, "{frames} frames");

    // A span starting mid-segment begins at the keyframe at or before its start.
    let mid = chrono::DateTime::parse_from_rfc3339(from).unwrap() + chrono::Duration::milliseconds(1500);
    let trimmed = export_to(&daemon, &mid.to_rfc3339(), to, out.path()).await;
    // Keyframes: forced at each segment start, then every 2 s (the GOP). 1.5 s into the
    // first segment, the keyframe before is its start: nothing can be cut.
    assert!((trimmed - expected).abs() < 0.1, "export from 1.5 s in is {trimmed} s of {expected} s");
    let later = chrono::DateTime::parse_from_rfc3339(from).unwrap() + chrono::Duration::milliseconds(2500);
    let trimmed = export_to(&daemon, &later.to_rfc3339(), to, out.path()).await;
    assert!((trimmed - (expected - 2.0)).abs() < 0.1, "export from 2.5 s in starts at the 2 s keyframe: {trimmed} s of {expected} s");
    decode(out.path());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_a_long_gop_stream_are_fast_and_force_no_keyframe() {
    // A keyframe every 10 s, like many IP cameras: waiting for one would take seconds.
    let camera = Camera { keyframe_interval: Duration::from_secs(10), bitrate_kbps: 1000, ..test_camera("cam") };
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("online");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let forced = daemon.keyframes_forced("cam").await;
    for width in ["", "?width=320", ""] {
        let (took, jpeg) = snapshot(&daemon, width).await;
        assert!(jpeg_size(&jpeg).is_some());
        assert!(took < Duration::from_secs(1), "snapshot took {took:?}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert_eq!(daemon.keyframes_forced("cam").await, forced, "snapshots asked the encoder for keyframes");
    daemon.stop().await;
}

/// Width and height from a JPEG's start-of-frame marker.
fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    assert_eq!(&jpeg[..2], &[0xff, 0xd8], "not a JPEG");
    let mut i = 2;
    while i + 9 < jpeg.len() {
        if jpeg[i] != 0xff {
            return None;
        }
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if matches!(marker, 0xc0..=0xc2) {
            let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]);
            let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]);
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

async fn snapshot(daemon: &Daemon, query: &str) -> (Duration, Vec<u8>) {
    let asked = Instant::now();
    let r = reqwest::get(daemon.url(&format!("/api/cameras/cam/snapshot.jpg{query}"))).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap().to_vec();
    (asked.elapsed(), jpeg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_jpegs_of_the_configured_size_with_and_without_viewers() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["online"] == true).await.expect("online");
    let (took, jpeg) = snapshot(&daemon, "").await;
    assert_eq!(jpeg_size(&jpeg), Some((640, 360)));
    assert!(took < Duration::from_secs(1), "snapshot took {took:?}");
    let (_, small) = snapshot(&daemon, "?width=320").await;
    assert_eq!(jpeg_size(&small), Some((320, 180)));

    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("viewer");
    assert!(viewer.wait_frames(10, Duration::from_secs(10)).await);
    let before = viewer.frames();
    let (took, jpeg) = snapshot(&daemon, "").await;
    assert_eq!(jpeg_size(&jpeg), Some((640, 360)));
    assert!(took < Duration::from_secs(1), "snapshot took {took:?}");
    assert!(viewer.wait_frames(before + 30, Duration::from_secs(3)).await, "the viewer was disturbed");

    let r = reqwest::get(daemon.url("/api/cameras/cam/snapshot.jpg?width=5")).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_deletes_oldest_first_and_never_the_current_segment() {
    let mut config = config_with(vec![recording_camera(2)]);
    // ~250 kB per 2 s segment at 1 Mbit/s: room for about two.
    config.storage.max_size = Some(lookout::config::Size(600_000));
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["recording"] == true).await.expect("recording");
    let mut seen_first: Option<String> = None;
    // The segment being written is the newest. Retention may delete a segment only once a newer
    // one exists: the newest seen vanishing with nothing newer listed would be the current file
    // deleted (a finished one may go at its own close under load, so "seen finished" is no test).
    let mut newest: Option<String> = None;
    let mut seen_names = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(14);
    while Instant::now() < deadline {
        let segs = segments(&daemon).await;
        let names: Vec<String> = segs.iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
        for s in segs.iter().filter(|s| s["recording"] == true) {
            assert!(segment_path(&daemon, s).exists(), "current segment missing on disk: {s}");
        }
        if let Some(n) = &newest {
            assert!(names.iter().any(|m| m >= n), "{n}, the newest segment, vanished with nothing newer: {names:?}");
        }
        newest = names.iter().max().cloned().or(newest);
        seen_names.extend(names);
        if seen_first.is_none() {
            seen_first = segs.first().map(|s| s["name"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let files = walk(&daemon.data.join("recordings/cam"));
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(files.len() <= 4, "{files:?}");
    assert!(total <= 600_000 + 400_000, "{total} bytes kept");
    let first = seen_first.expect("a segment was listed");
    assert!(files.iter().all(|f| f.file_name().unwrap() != first.as_str()), "oldest segment {first} still there");
    let segs = segments(&daemon).await;
    assert!(segs.iter().any(|s| s["recording"] == true), "still recording: {segs:?}");
    assert!(seen_names.len() >= 5, "few segments seen: {seen_names:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_keeps_only_recent_segments() {
    let mut camera = recording_camera(2);
    camera.recording.keep = Some(Duration::from_secs(3));
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["recording"] == true).await.expect("recording");
    tokio::time::sleep(Duration::from_secs(13)).await;
    let now = chrono::Utc::now();
    let segs = segments(&daemon).await;
    assert!(segs.len() <= 5, "{segs:#?}");
    for s in segs.iter().filter(|s| s["recording"] == false) {
        let end = chrono::DateTime::parse_from_rfc3339(s["end"].as_str().unwrap()).unwrap();
        // keep (3 s) + one segment until the next retention pass + slack.
        assert!(now.signed_duration_since(end) < chrono::Duration::seconds(6), "{s} should be gone");
    }
    // Retention may delete between two reads: compare the index with a disk that held still.
    let dir = daemon.data.join("recordings/cam");
    let agreed = loop {
        let before = walk(&dir);
        let listed = segments(&daemon).await.len();
        if walk(&dir) == before {
            break (before.len(), listed);
        }
    };
    assert_eq!(agreed.0, agreed.1, "index and disk agree");
    daemon.stop().await;
}

#[test]
fn a_killed_daemon_leaves_a_playable_partial_segment_and_recording_continues() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[[camera]]\nname = \"cam\"\nsource = \"test\"\n\
             width = 640\nheight = 360\nbitrate_kbps = 1000\n[camera.recording]\nsegment = \"30s\"\n",
            data.display()
        ),
    )
    .unwrap();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        (child, lines)
    };
    let (mut child, mut lines) = start();
    loop {
        let line = lines.next().expect("daemon logging").unwrap();
        if line.contains("recording") && line.contains("camera=cam") {
            break;
        }
    }
    // Kill mid-segment: a few seconds into the segment being written (a segment younger than
    // one fragment holds nothing and is dropped at restart; a unit test covers that).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        assert!(Instant::now() < deadline, "no segment became 4 s old");
        let newest = walk(&data.join("recordings/cam")).into_iter().max();
        let start = newest.and_then(|p| lookout::storage::layout::parse_segment_name(p.file_name()?.to_str()?));
        if let Some(start) = start
            && (chrono::Utc::now() - start).num_milliseconds() >= 4000
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Command::new("kill").arg("-KILL").arg(child.id().to_string()).status().unwrap();
    let killed_at = chrono::Utc::now();
    child.wait().unwrap();

    let files = walk(&data.join("recordings/cam"));
    let partial = files.iter().max().expect("a segment was being written").clone();
    let name = partial.file_name().unwrap().to_str().unwrap().to_owned();
    let seg_start = lookout::storage::layout::parse_segment_name(&name).unwrap();
    let (_, decoded_to) = decode(&partial);
    let written = (killed_at - seg_start).num_milliseconds() as f64 / 1000.0;
    assert!(decoded_to >= written - 2.0, "partial segment decodes to {decoded_to:.2} s of {written:.2} s");

    let (mut child, _lines) = start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listing = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/api/cameras/cam/recordings")).await
                && let Ok(v) = r.json::<Value>().await
            {
                let segs = v["segments"].as_array().cloned().unwrap_or_default();
                if segs.iter().any(|s| s["name"] == name.as_str())
                    && segs.iter().any(|s| s["recording"] == true && s["name"] != name.as_str())
                {
                    break segs;
                }
            }
            assert!(Instant::now() < deadline, "partial segment not listed or recording did not resume");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let listed = listing.iter().find(|s| s["name"] == name.as_str()).unwrap();
    assert_eq!(listed["partial"], true, "{listed}");
    let end = chrono::DateTime::parse_from_rfc3339(listed["end"].as_str().unwrap()).unwrap();
    assert!((killed_at.signed_duration_since(end)).num_milliseconds() < 2500, "index says it ends at {end}, killed at {killed_at}");
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_recording_keeps_live_view_and_resumes_when_space_returns() {
    let data = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"]).arg(data.path()).status();
    assert!(mounted.is_ok_and(|s| s.success()), "this test mounts a 6 MB tmpfs as the data partition and needs root (CI runs as root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.path().to_owned());

    let mut camera = recording_camera(60);
    camera.bitrate_kbps = 4000;
    let mut config = config_with(vec![camera]);
    config.storage.min_free = SpaceLimit::Percent(0.0);
    let daemon = Daemon::start_in(config, data).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["recording"] == true).await.expect("recording");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("viewer");

    let paused = daemon
        .wait_state("cam", Duration::from_secs(40), |c| c["recording_error"].as_str().is_some_and(|e| e.contains("disk full")))
        .await
        .expect("recording pauses with the reason");
    assert_eq!(paused["recording"], false);
    let before = viewer.frames();
    assert!(viewer.wait_frames(before + 30, Duration::from_secs(5)).await, "live view stopped with the disk full");

    // What was written until the disk filled is finished and plays (a wall-clock boundary
    // may have split it in two).
    let files = walk(&daemon.data.join("recordings/cam"));
    assert!(!files.is_empty());
    let frames: u64 = files.iter().map(|f| decode(f).0).sum();
    assert!(frames > 60, "{frames} frames in {files:?}");

    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    daemon.wait_state("cam", Duration::from_secs(10), |c| c["recording"] == true).await.expect("recording resumes");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_source_closes_the_segment_and_the_gap_shows() {
    gst::init().unwrap();
    use gst::prelude::*;
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sender = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay config-interval=-1 pt=96 \
         ! udpsink host=127.0.0.1 port={port}"
    ))
    .unwrap();
    sender.set_state(gst::State::Playing).unwrap();
    let camera = Camera {
        source: lookout::config::SourceSpec::Pipeline(format!(
            "udpsrc port={port} caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96\" ! rtph264depay ! h264parse"
        )),
        stall_timeout: Duration::from_secs(1),
        ..recording_camera(60)
    };
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", Duration::from_secs(15), |c| c["recording"] == true).await.expect("recording");
    tokio::time::sleep(Duration::from_secs(3)).await;
    sender.set_state(gst::State::Null).unwrap();
    daemon.wait_state("cam", Duration::from_secs(5), |c| c["recording"] == false).await.expect("segment closed on stall");
    tokio::time::sleep(Duration::from_secs(3)).await;
    sender.set_state(gst::State::Playing).unwrap();
    daemon.wait_state("cam", Duration::from_secs(20), |c| c["recording"] == true).await.expect("recording resumes");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let listing = daemon.get_json("/api/cameras/cam/recordings").await;
    let segs = listing["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 2, "{listing}");
    assert_eq!(segs[0]["partial"], false, "closed cleanly: {listing}");
    let gaps = listing["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{listing}");
    let g0 = chrono::DateTime::parse_from_rfc3339(gaps[0]["start"].as_str().unwrap()).unwrap();
    let g1 = chrono::DateTime::parse_from_rfc3339(gaps[0]["end"].as_str().unwrap()).unwrap();
    assert!((g1 - g0).num_milliseconds() >= 2000, "gap of {:?}", g1 - g0);
    let (frames, _) = decode(&segment_path(&daemon, &segs[0]));
    assert!(frames >= 60, "{frames}");
    sender.set_state(gst::State::Null).unwrap();
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_data_partition_pauses_recording_but_not_the_live_view() {
    let dir = tempfile::tempdir().unwrap();
    // The data "partition" sits under a plain file: nothing can ever be created there.
    let blocker = dir.path().join("not-a-mount");
    std::fs::write(&blocker, b"").unwrap();
    let mut config = config_with(vec![recording_camera(60)]);
    config.storage.path = blocker.join("data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(lookout::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let cam = loop {
        let state: Value = client.get(format!("{base}/api/state")).send().await.unwrap().json().await.unwrap();
        let cam = state["cameras"][0].clone();
        if cam["online"] == true && cam["recording_error"].is_string() {
            break cam;
        }
        assert!(Instant::now() < deadline, "{cam}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(cam["recording_error"].as_str().unwrap().contains("not writable"), "{cam}");
    let viewer = WhepViewer::connect(&format!("{base}/whep/cam")).await.expect("viewer");
    assert!(viewer.wait_frames(30, Duration::from_secs(10)).await, "live view works without storage");

    // The partition turns up late, holding a recording made an hour ago: recording resumes
    // by itself, and the old recording is listed (and so also subject to retention).
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let name = lookout::storage::layout::segment_name(an_hour_ago);
    let day = blocker.join("data/recordings/cam").join(&name[..10]);
    let staged = dir.path().join("staged.mp4");
    let made = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=90", "!", "video/x-raw,width=320,height=180,framerate=30/1", "!"])
        .args(["x264enc", "key-int-max=30", "!", "h264parse", "!", "mp4mux", "fragment-duration=1000", "!", "filesink"])
        .arg(format!("location={}", staged.display()))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir_all(&day).unwrap();
    std::fs::rename(&staged, day.join(&name)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let state: Value = client.get(format!("{base}/api/state")).send().await.unwrap().json().await.unwrap();
        let from = (an_hour_ago - chrono::Duration::minutes(1)).timestamp().to_string();
        let list: Value = client.get(format!("{base}/api/cameras/cam/recordings?from={from}")).send().await.unwrap().json().await.unwrap();
        let names: Vec<&str> = list["segments"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
        if state["cameras"][0]["recording"] == true && names.contains(&name.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "not resumed or old recording not found: {} {names:?}", state["cameras"][0]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
