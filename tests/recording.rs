//! Recording end to end: segments on disk checked with real demuxers and decoders (ffprobe,
//! ffmpeg), export, snapshots, retention and a full disk.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lookout::config::{Camera, Recording, SpaceLimit};
use serde_json::Value;

use common::media::{decode, jpeg_size, probe_duration, walk};
use common::whep::WhepViewer;
use common::{Daemon, HANG, config_with, test_camera};

/// An RFC 3339 time from the recordings API.
fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

fn recording_camera(segment_s: u64) -> Camera {
    Camera { recording: Recording { segment: Duration::from_secs(segment_s), ..Recording::default() }, ..test_camera("cam") }
}

async fn segments(daemon: &Daemon) -> Vec<Value> {
    daemon.get_json("/api/cameras/cam/recordings").await["segments"].as_array().unwrap().clone()
}

fn segment_path(daemon: &Daemon, seg: &Value) -> PathBuf {
    let name = seg["name"].as_str().unwrap();
    daemon.data.join("recordings/cam").join(&name[..10]).join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_second_segments_decode_follow_each_other_and_start_on_the_wall_clock_grid() {
    let daemon = Daemon::start(config_with(vec![recording_camera(5)])).await;
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording");
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let segs: Vec<Value> = segments(&daemon).await.into_iter().filter(|s| s["recording"] == false).collect();
        if segs.len() >= 3 {
            break segs;
        }
        assert!(Instant::now() < deadline, "fewer than 3 finished segments: {segs:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let kept = daemon.stop().await;
    let data = kept.path();

    // Each file is whole: it decodes, to the length its container states, with the frames
    // that length holds at the stream's 30 fps.
    let mut files: Vec<PathBuf> = walk(&data.join("recordings/cam"));
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let d = probe_duration(f);
        let (frames, last) = decode(f);
        assert!(frames as f64 >= d * 30.0 * 0.9 && frames as f64 <= d * 30.0 + 1.0, "{}: {frames} frames for {d} s", f.display());
        assert!((last - d).abs() < 0.2, "{}: decoded to {last} s of {d} s", f.display());
    }
    // They follow each other: each finished segment ends where the next one starts (the
    // split is at a keyframe, so nothing is lost or doubled between files).
    for w in finished.windows(2) {
        let between = (time(&w[1]["start"]) - time(&w[0]["end"])).num_milliseconds();
        assert!(between.abs() < 500, "{} ends {between} ms before the next starts: {finished:#?}", w[0]["name"]);
    }
    // Segments after the first start on the 5 s wall-clock grid: at the first keyframe at or
    // after a multiple of 5 s. That is the one requested there, or at the latest the
    // encoder's next scheduled one (every 2 s), so less than 2 s past the boundary.
    for f in &files[1..] {
        let name = f.file_name().unwrap().to_str().unwrap();
        let start = lookout::storage::layout::parse_segment_name(name).expect("a segment name");
        let past = start.timestamp_millis().rem_euclid(5000);
        assert!(past < 2000 + 40, "{name} starts {past} ms past the 5 s grid");
    }
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
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording");
    let deadline = Instant::now() + HANG;
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

    // A span beyond the export limit is refused, naming it.
    let r =
        reqwest::Client::new().get(daemon.url("/api/cameras/cam/export")).query(&[("from", "0"), ("to", "1000000")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("at most 24 hours"));

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
async fn snapshots_of_a_long_gop_stream_force_no_keyframe() {
    // A keyframe every 10 s, like many IP cameras: a snapshot must be made from the frames
    // already there, not by asking the camera for a keyframe. (How long one takes is
    // measured by scripts/bench/snapshot.) Recording is off: the recorder asks for a
    // keyframe at each segment boundary, which is not what is tested here.
    let mut camera = Camera { keyframe_interval: Duration::from_secs(10), bitrate_kbps: 1000, ..test_camera("cam") };
    camera.recording.enabled = false;
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let forced = daemon.keyframes_forced("cam").await;
    // Spread over the GOP: just after its keyframe, and further in.
    for (query, size) in [("", (640, 360)), ("?width=320", (320, 180)), ("", (640, 360))] {
        let jpeg = snapshot(&daemon, query).await;
        assert_eq!(jpeg_size(&jpeg), Some(size), "snapshot{query}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert_eq!(daemon.keyframes_forced("cam").await, forced, "snapshots asked the encoder for keyframes");
    daemon.stop().await;
}

async fn snapshot(daemon: &Daemon, query: &str) -> Vec<u8> {
    let r = reqwest::get(daemon.url(&format!("/api/cameras/cam/snapshot.jpg{query}"))).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_jpegs_of_the_configured_size_with_and_without_viewers() {
    let daemon = Daemon::start(config_with(vec![test_camera("cam")])).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let jpeg = snapshot(&daemon, "").await;
    assert_eq!(jpeg_size(&jpeg), Some((640, 360)));
    let small = snapshot(&daemon, "?width=320").await;
    assert_eq!(jpeg_size(&small), Some((320, 180)));

    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("viewer");
    assert!(viewer.wait_frames(10, HANG).await, "viewer got {} frames", viewer.frames());
    let before = viewer.frames();
    let jpeg = snapshot(&daemon, "").await;
    assert_eq!(jpeg_size(&jpeg), Some((640, 360)));
    assert!(viewer.wait_frames(before + 30, HANG).await, "the viewer was disturbed: stuck at {} frames", viewer.frames());
    assert_eq!(daemon.camera_state("cam").await["viewers"], 1, "the viewer is still there");

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
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording");
    let mut seen_first: Option<String> = None;
    // The segment being written is the newest. Retention may delete a segment only once a newer
    // one exists: the newest seen vanishing with nothing newer listed would be the current file
    // deleted (a finished one may go at its own close under load, so "seen finished" is no test).
    let mut newest: Option<String> = None;
    let mut seen_names = std::collections::BTreeSet::new();
    // Watched until retention has had something to do: five segments made and the oldest
    // one deleted.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let segs = segments(&daemon).await;
        let names: Vec<String> = segs.iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
        for s in segs.iter().filter(|s| s["recording"] == true) {
            assert!(segment_path(&daemon, s).exists(), "current segment missing on disk: {s}");
        }
        if let Some(n) = &newest {
            assert!(names.iter().any(|m| m >= n), "{n}, the newest segment, vanished with nothing newer: {names:?}");
        }
        newest = names.iter().max().cloned().or(newest);
        if seen_first.is_none() {
            seen_first = names.first().cloned();
        }
        seen_names.extend(names.iter().cloned());
        if seen_names.len() >= 5 && seen_first.as_ref().is_some_and(|f| !names.contains(f)) {
            break;
        }
        assert!(Instant::now() < deadline, "oldest segment {seen_first:?} never deleted, segments seen: {seen_names:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let first = seen_first.expect("a segment was listed");
    let files = walk(&daemon.data.join("recordings/cam"));
    assert!(files.iter().all(|f| f.file_name().unwrap() != first.as_str()), "oldest segment {first} unlisted but still on disk");
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    // The limit, plus the segment being written and one just closed whose pass is running.
    assert!(files.len() <= 4, "{files:?}");
    assert!(total <= 600_000 + 400_000, "{total} bytes kept");
    let segs = segments(&daemon).await;
    assert!(segs.iter().any(|s| s["recording"] == true), "still recording: {segs:?}");
    daemon.stop().await;
}

/// Waits until the recordings index lists exactly the segment files on disk, read while the
/// disk held still (retention may delete, and a new segment may open, between two reads).
async fn index_and_disk_agree(daemon: &Daemon) {
    let dir = daemon.data.join("recordings/cam");
    let deadline = Instant::now() + HANG;
    loop {
        let mut before = walk(&dir);
        before.sort();
        let listed: Vec<String> = segments(daemon).await.iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
        let mut after = walk(&dir);
        after.sort();
        let mut on_disk: Vec<String> = after.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_owned()).collect();
        on_disk.sort();
        if before == after && listed == on_disk {
            return;
        }
        assert!(Instant::now() < deadline, "index and disk disagree: listed {listed:?}, on disk {on_disk:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_deletes_segments_once_older_than_keep() {
    let keep = Duration::from_secs(3);
    let segment = Duration::from_secs(2);
    let mut camera = recording_camera(segment.as_secs());
    camera.recording.keep = Some(keep);
    let daemon = Daemon::start(config_with(vec![camera])).await;
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording");
    let keep = chrono::Duration::from_std(keep).unwrap();
    // Every segment listed at the last look, with its end as listed then (for the one being
    // written that is the time of the listing, before its real end).
    let mut listed: std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>> = Default::default();
    let mut deleted: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let segs = segments(&daemon).await;
        let now = chrono::Utc::now();
        let names: Vec<&str> = segs.iter().map(|s| s["name"].as_str().unwrap()).collect();
        // Gone since the last look: deleted, which retention may do only to a segment that
        // ended more than `keep` before (it was deleted before `now`).
        for (name, end) in listed.iter().filter(|(n, _)| !names.contains(&n.as_str())) {
            assert!(*end + keep < now, "{name} deleted at or before {now}, though it ended at {end}, less than {keep} before");
            deleted.push(name.clone());
        }
        listed = segs.iter().map(|s| (s["name"].as_str().unwrap().to_owned(), time(&s["end"]).to_utc())).collect();
        // And it keeps up: the oldest finished segment left ended at most `keep` ago at the
        // last pass, which runs each time a segment closes.
        let oldest = segs.iter().filter(|s| s["recording"] == false).map(|s| now - time(&s["end"]).to_utc()).max();
        let bound = keep + chrono::Duration::from_std(segment).unwrap() + chrono::Duration::seconds(1);
        if deleted.len() >= 3 && oldest.is_none_or(|age| age < bound) {
            break;
        }
        assert!(Instant::now() < deadline, "retention did not catch up: deleted {deleted:?}, oldest ended {oldest:?} ago: {segs:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    index_and_disk_agree(&daemon).await;
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
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[rtsp]\nenabled = false\n[onvif]\nenabled = false\n\
             [auth]\nadmin_password_hash = \"{}\"\n[storage]\nmin_free = \"64MB\"\npath = \"{}\"\n\
             [[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 640\nheight = 360\nbitrate_kbps = 1000\n\
             [camera.recording]\nsegment = \"30s\"\n",
            common::owner_password_hash(),
            data.display()
        ),
    )
    .unwrap();
    // The daemon's log lines, read on a thread of their own so that waiting for one can time
    // out instead of hanging on a daemon that went quiet.
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, lines)
    };
    let (mut child, lines) = start();
    let deadline = Instant::now() + HANG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("recording") && line.contains("camera=cam") => break,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("the daemon did not log that camera cam is recording within {HANG:?}");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the daemon exited (stderr closed) before logging that camera cam is recording: {:?}", child.wait());
            }
        }
    }
    // Kill mid-segment: a few seconds into the segment being written (a segment younger than
    // one fragment holds nothing and is dropped at restart; a unit test covers that).
    let deadline = Instant::now() + HANG;
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

    let (child, _lines) = start();
    // Killed however the test ends: a daemon left behind holds its ports for the next tests.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    // A token from `lookout token` on the device, as a script would get one.
    let issued = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["--config".as_ref(), config.as_os_str(), "token".as_ref(), "--grant".as_ref(), "playback".as_ref()])
        .output()
        .unwrap();
    assert!(issued.status.success(), "lookout token: {}", String::from_utf8_lossy(&issued.stderr));
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listing = rt.block_on(async {
        let deadline = Instant::now() + HANG;
        loop {
            if let Ok(r) =
                reqwest::Client::new().get(format!("http://127.0.0.1:{port}/api/cameras/cam/recordings")).bearer_auth(&token).send().await
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
    Command::new("kill").arg("-TERM").arg(child.0.id().to_string()).status().unwrap();
    child.0.wait().unwrap();
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
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording");
    let viewer = WhepViewer::connect(&daemon.url("/whep/cam")).await.expect("viewer");

    let paused = daemon
        .wait_state("cam", HANG, |c| c["recording_error"].as_str().is_some_and(|e| e.contains("disk full")))
        .await
        .expect("recording pauses with the reason");
    assert_eq!(paused["recording"], false);
    let before = viewer.frames();
    assert!(viewer.wait_frames(before + 30, HANG).await, "live view stopped with the disk full");

    // What was written until the disk filled is finished and plays (a wall-clock boundary
    // may have split it in two).
    let files = walk(&daemon.data.join("recordings/cam"));
    assert!(!files.is_empty());
    let frames: u64 = files.iter().map(|f| decode(f).0).sum();
    assert!(frames > 60, "{frames} frames in {files:?}");

    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    if let Err(state) = daemon.wait_state("cam", HANG, |c| c["recording"] == true).await {
        // What holds the space: files left on the partition, and deleted ones still open.
        let left = Command::new("sh")
            .arg("-c")
            .arg(format!("df -k {0}; ls -laR {0}; ls -l /proc/{1}/fd | grep deleted", daemon.data.display(), std::process::id()))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        panic!("recording did not resume: {state}\n{left:?}");
    }
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
        ..recording_camera(3600)
    };
    let daemon = Daemon::start(config_with(vec![camera])).await;
    let test_began = chrono::Utc::now();
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording");
    // Some video in the first segment: it has been open 2 s and its first fragment is on disk.
    let deadline = Instant::now() + HANG;
    loop {
        let segs = segments(&daemon).await;
        if let Some(s) = segs.iter().find(|s| s["recording"] == true)
            && (time(&s["end"]) - time(&s["start"])).num_milliseconds() >= 2000
            && s["size"].as_u64() > Some(0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "first segment never got going: {segs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The camera goes silent for a while: at least until the daemon notices, then 3 s more.
    sender.set_state(gst::State::Null).unwrap();
    let silent_from = chrono::Utc::now();
    daemon.wait_state("cam", HANG, |c| c["recording"] == false).await.expect("segment closed on stall");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let silent_until = chrono::Utc::now();
    sender.set_state(gst::State::Playing).unwrap();
    daemon.wait_state("cam", HANG, |c| c["recording"] == true).await.expect("recording resumes");
    let deadline = Instant::now() + HANG;
    let listing = loop {
        let listing = daemon.get_json("/api/cameras/cam/recordings").await;
        if listing["segments"].as_array().unwrap().iter().any(|s| s["recording"] == true) {
            break listing;
        }
        assert!(Instant::now() < deadline, "no second segment listed: {listing}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let listed_at = chrono::Utc::now();

    // Two segments, the first closed cleanly at the stall and the second being written, with
    // one gap between them covering the whole silence. (One-hour segments: only if the test
    // straddled a full hour is the first split in two there, with no gap between the halves.)
    let segs = listing["segments"].as_array().unwrap();
    let hour = |t: chrono::DateTime<chrono::Utc>| t.timestamp().div_euclid(3600);
    if hour(test_began) == hour(listed_at) {
        assert_eq!(segs.len(), 2, "{listing:#}");
    }
    let (before, after) = segs.split_at(segs.len() - 1);
    assert!(!before.is_empty() && before.len() <= 2, "{listing:#}");
    assert_eq!(after[0]["recording"], true, "{listing:#}");
    for s in before {
        assert_eq!(s["recording"], false, "{listing:#}");
        assert_eq!(s["partial"], false, "closed cleanly: {listing:#}");
    }
    let gaps = listing["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{listing:#}");
    let last_before = before.last().unwrap();
    assert_eq!(gaps[0]["start"], last_before["end"], "{listing:#}");
    assert_eq!(gaps[0]["end"], after[0]["start"], "{listing:#}");
    let (g0, g1) = (time(&gaps[0]["start"]), time(&gaps[0]["end"]));
    // The last frame before the silence arrived before it began (its length, one frame,
    // counts into the segment); the first after it, after it ended.
    assert!(g0 <= silent_from + chrono::Duration::milliseconds(100), "gap starts at {g0}, silence began {silent_from}");
    assert!(g1 >= silent_until, "gap ends at {g1}, silence ended {silent_until}");
    for s in before {
        let path = segment_path(&daemon, s);
        let d = probe_duration(&path);
        let (frames, last) = decode(&path);
        assert!(frames as f64 >= d * 30.0 * 0.9, "{}: {frames} frames for {d} s", path.display());
        assert!((last - d).abs() < 0.2, "{}: decoded to {last} s of {d} s", path.display());
    }
    let recorded: f64 = before.iter().map(|s| probe_duration(&segment_path(&daemon, s))).sum();
    assert!(recorded >= 1.0, "only {recorded} s recorded before the silence");
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
    config.auth.admin_password_hash = Some(common::owner_password_hash());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(lookout::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    // No data partition, so no accounts file: the flashed owner password still lets the owner in.
    let deadline = Instant::now() + HANG;
    let client = loop {
        match common::login(&base, "admin", common::OWNER_PASSWORD).await {
            Ok(c) => break c,
            Err(status) => assert!(Instant::now() < deadline, "owner cannot log in without a data partition: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = Instant::now() + HANG;
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
    let issued = common::issue_token_over_http(&client, &base, serde_json::json!({ "grants": ["view"], "ttl": "1h" })).await;
    let token = issued["token"].as_str().unwrap();
    let viewer = WhepViewer::connect(&common::with_token(&format!("{base}/whep/cam"), token)).await.expect("viewer");
    assert!(viewer.wait_frames(30, HANG).await, "live view works without storage");

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
    let deadline = Instant::now() + HANG;
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
