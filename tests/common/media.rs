//! Checks of media files with real demuxers and decoders (ffprobe, ffmpeg), and of JPEGs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Duration ffprobe reads from the container.
pub fn probe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe installed (scripts/setup --test)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no duration for {}: {out:?}", path.display()))
}

/// Decodes every frame with ffmpeg; returns (frames, last frame time in s). Panics on errors.
pub fn decode(path: &Path) -> (u64, f64) {
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

/// Every `.mp4` file under `dir`, at any depth.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// Width and height from a JPEG's start-of-frame marker.
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
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

/// What ffprobe says an RTSP stream's video is (`codec_name`, `width`, `height`), read over
/// interleaved TCP; `null` when it could not be read.
pub async fn probe_rtsp(url: &str) -> serde_json::Value {
    let run = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v", "-show_entries", "stream=codec_name,width,height"])
        .args(["-of", "json", url])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(super::HANG, run).await.expect("ffprobe ends").expect("ffprobe installed (scripts/setup --test)");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["streams"][0].clone()
}
