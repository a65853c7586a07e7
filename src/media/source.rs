//! Turns a camera's configured source into a concrete plan: which device, which pixel format,
//! which size and rate, and the GStreamer fragment that produces it.
//!
//! [`plan`] is pure (it reads a [`Machine`] snapshot), so the choice is tested on fixtures.
//! Preference for a V4L2 camera: H.264 passthrough (no encode at all), else raw, else MJPEG
//! decoded, among the modes that reach the requested size and rate; size comes first, then
//! rate, then format.

use std::path::{Path, PathBuf};

use crate::config::{Camera, SourceSpec, source_redacted};

use super::probe::{Machine, NodeSize, VideoNode};

/// What a source hands to the encoder stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Uncompressed frames: encode them.
    Raw,
    /// Already H.264: parse and pass through, no re-encode.
    H264,
    /// A user pipeline: ask its caps once built.
    Unknown,
}

/// The pixel format taken from a V4L2 camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    H264,
    /// Raw frames in this GStreamer format (`YUY2`, `NV12`...).
    Raw(&'static str),
    Mjpeg,
}

/// A concrete V4L2 mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub input: Input,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// A source ready to be built.
#[derive(Debug, Clone, PartialEq)]
pub enum SourcePlan {
    Test { width: u32, height: u32, fps: u32 },
    V4l2 { device: PathBuf, card: String, mode: Mode },
    Libcamera { width: u32, height: u32, fps: u32 },
    Rtsp { url: String, transport: crate::config::RtspTransport },
    Pipeline { fragment: String },
}

/// Why a source cannot be used right now; shown to the owner as the camera's last error.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SourceError {
    #[error("{0} does not exist (camera unplugged?)")]
    DeviceMissing(PathBuf),
    #[error("{path} is not a video capture device ({card})")]
    NotCapture { path: PathBuf, card: String },
    #[error("{path} offers no format Lookout can use (offers: {offered})")]
    NoUsableFormat { path: PathBuf, offered: String },
    #[error("source is libcamera but the libcamerasrc GStreamer element is not installed")]
    LibcameraMissing,
    #[error("source is a V4L2 device but the v4l2src GStreamer element is not installed (gstreamer1.0-plugins-good)")]
    V4l2srcMissing,
    #[error("{0}")]
    Invalid(String),
}

/// V4L2 raw fourccs and the GStreamer format names they map to.
const RAW_FORMATS: &[(&str, &str)] = &[
    ("YUYV", "YUY2"),
    ("UYVY", "UYVY"),
    ("NV12", "NV12"),
    ("YU12", "I420"),
    ("YV12", "YV12"),
    ("NV21", "NV21"),
    ("RGB3", "RGB"),
    ("BGR3", "BGR"),
];

/// Drivers of CSI receivers whose cameras need libcamera (Bayer sensors behind an ISP).
const CSI_DRIVERS: &[&str] = &["unicam", "rp1-cfe"];

/// Chooses how to open the camera's source on this machine.
pub fn plan(cam: &Camera, machine: &Machine) -> Result<SourcePlan, SourceError> {
    let (width, height, fps) = (cam.width, cam.height, cam.fps);
    match &cam.source {
        SourceSpec::Test => Ok(SourcePlan::Test { width, height, fps }),
        SourceSpec::Auto => Ok(auto(cam, machine)),
        SourceSpec::Device(path) => {
            if !machine.has("v4l2src") {
                return Err(SourceError::V4l2srcMissing);
            }
            let node = machine.video_nodes.iter().find(|n| n.path == *path).ok_or_else(|| SourceError::DeviceMissing(path.clone()))?;
            if !node.capture {
                return Err(SourceError::NotCapture { path: path.clone(), card: node.card.clone() });
            }
            v4l2_plan(node, cam).ok_or_else(|| SourceError::NoUsableFormat {
                path: path.clone(),
                offered: node.formats.iter().map(|f| f.fourcc.as_str()).collect::<Vec<_>>().join(", "),
            })
        }
        SourceSpec::Libcamera if machine.has("libcamerasrc") => Ok(SourcePlan::Libcamera { width, height, fps }),
        SourceSpec::Libcamera => Err(SourceError::LibcameraMissing),
        SourceSpec::Rtsp(url) => Ok(SourcePlan::Rtsp { url: url.clone(), transport: cam.rtsp_transport }),
        SourceSpec::Pipeline(fragment) => Ok(SourcePlan::Pipeline { fragment: fragment.clone() }),
        SourceSpec::Unknown(s) => Err(SourceError::Invalid(format!("unknown source `{s}`"))),
    }
}

/// `auto`: the first V4L2 camera with a usable format, else a CSI camera through libcamera,
/// else the test pattern so a fresh device always shows something.
fn auto(cam: &Camera, machine: &Machine) -> SourcePlan {
    if machine.has("v4l2src") {
        let usable = machine.video_nodes.iter().filter(|n| n.capture).find_map(|n| v4l2_plan(n, cam));
        if let Some(plan) = usable {
            return plan;
        }
    }
    let csi = machine.video_nodes.iter().any(|n| CSI_DRIVERS.contains(&n.driver.as_str()));
    if csi && machine.has("libcamerasrc") {
        return SourcePlan::Libcamera { width: cam.width, height: cam.height, fps: cam.fps };
    }
    SourcePlan::Test { width: cam.width, height: cam.height, fps: cam.fps }
}

fn v4l2_plan(node: &VideoNode, cam: &Camera) -> Option<SourcePlan> {
    best_mode(node, cam.width, cam.height, cam.fps).map(|mode| SourcePlan::V4l2 {
        device: node.path.clone(),
        card: node.card.clone(),
        mode,
    })
}

/// How a mode compares, lowest best: the fields `best_mode` ranks by, in order.
type ModeRank = (u8, u64, bool, u8, u32);

/// The best mode a node offers for the wanted size and rate, or `None` if it offers nothing
/// Lookout can use.
pub fn best_mode(node: &VideoNode, want_w: u32, want_h: u32, want_fps: u32) -> Option<Mode> {
    let want_area = u64::from(want_w) * u64::from(want_h);
    let mut best: Option<(ModeRank, Mode)> = None;
    for format in &node.formats {
        let (input, format_rank) = match format.fourcc.as_str() {
            "H264" => (Input::H264, 0),
            "MJPG" | "JPEG" => (Input::Mjpeg, 2),
            fourcc => match RAW_FORMATS.iter().find(|(f, _)| *f == fourcc) {
                Some((_, gst)) => (Input::Raw(gst), 1),
                None => continue,
            },
        };
        for size in &format.sizes {
            let (w, h) = fit_size(size, want_w, want_h);
            let area = u64::from(w) * u64::from(h);
            // Exact or larger sizes first (smallest excess), then smaller ones (largest first).
            let size_key = if w >= want_w && h >= want_h { (0, area - want_area) } else { (1, want_area.saturating_sub(area)) };
            let fps = pick_rate(&size.fps, want_fps);
            let slow = fps + 1 < want_fps;
            let fps_gap = fps.abs_diff(want_fps);
            let key = (size_key.0, size_key.1, slow, format_rank, fps_gap);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, Mode { input: input.clone(), width: w, height: h, fps }));
            }
        }
    }
    best.map(|(_, mode)| mode)
}

/// For a stepwise size, the wanted size clamped into the range; for a discrete one, itself.
fn fit_size(size: &NodeSize, want_w: u32, want_h: u32) -> (u32, u32) {
    if size.max_width > size.width {
        (want_w.clamp(size.width, size.max_width), want_h.clamp(size.height, size.max_height.max(size.height)))
    } else {
        (size.width, size.height)
    }
}

/// The offered rate closest to the wanted one, preferring rates at or above it (they are
/// dropped down to the wanted rate); an empty list means any rate.
fn pick_rate(offered: &[f64], want: u32) -> u32 {
    let rates: Vec<u32> = offered.iter().map(|r| r.round() as u32).filter(|r| *r > 0).collect();
    if rates.is_empty() {
        return want;
    }
    let at_least = rates.iter().copied().filter(|r| *r >= want).min();
    at_least.unwrap_or_else(|| rates.iter().copied().max().unwrap_or(want))
}

impl SourcePlan {
    /// What kind of stream the fragment ends in.
    pub fn output(&self) -> Output {
        match self {
            SourcePlan::V4l2 { mode: Mode { input: Input::H264, .. }, .. } | SourcePlan::Rtsp { .. } => Output::H264,
            SourcePlan::Pipeline { .. } => Output::Unknown,
            _ => Output::Raw,
        }
    }

    /// The frame size this source produces, when known before it runs.
    pub fn size(&self) -> Option<(u32, u32)> {
        match self {
            SourcePlan::Test { width, height, .. } | SourcePlan::Libcamera { width, height, .. } => Some((*width, *height)),
            SourcePlan::V4l2 { mode, .. } => Some((mode.width, mode.height)),
            _ => None,
        }
    }

    /// A one-line description for the API and logs, credentials redacted.
    pub fn describe(&self) -> String {
        match self {
            SourcePlan::Test { .. } => "test pattern".into(),
            SourcePlan::V4l2 { device, card, mode } => {
                let format = match &mode.input {
                    Input::H264 => "H.264 passthrough".to_string(),
                    Input::Raw(f) => format!("raw {f}"),
                    Input::Mjpeg => "MJPEG".to_string(),
                };
                format!("{} ({card}), {format} {}x{}@{}", device.display(), mode.width, mode.height, mode.fps)
            }
            SourcePlan::Libcamera { .. } => "libcamera".into(),
            SourcePlan::Rtsp { url, .. } => format!("RTSP {}", source_redacted(url)),
            SourcePlan::Pipeline { .. } => "custom pipeline".into(),
        }
    }

    /// The gst-launch fragment producing this source's frames, ending in raw video (any
    /// format; the encoder stage converts) or parsed H.264.
    pub fn launch(&self, want_fps: u32) -> String {
        match self {
            SourcePlan::Test { width, height, fps } => format!(
                "videotestsrc is-live=true pattern=smpte horizontal-speed=4 \
                 ! video/x-raw,width={width},height={height},framerate={fps}/1"
            ),
            SourcePlan::V4l2 { device, mode, .. } => v4l2_launch(device, mode, want_fps),
            SourcePlan::Libcamera { width, height, fps } => {
                format!("libcamerasrc ! video/x-raw,width={width},height={height},framerate={fps}/1")
            }
            SourcePlan::Rtsp { url, transport } => {
                let protocols = match transport {
                    crate::config::RtspTransport::Tcp => "tcp",
                    crate::config::RtspTransport::Udp => "udp",
                    crate::config::RtspTransport::Auto => "udp+tcp",
                };
                // Length-prefixed from the depayloader: parsing its byte-stream output into
                // access units splits each IDR from its SPS/PPS and leaves the IDR without a
                // PTS (GStreamer 1.22), which mp4mux refuses. The encoder stage's h264parse
                // converts to byte-stream whole.
                format!(
                    "rtspsrc location=\"{}\" protocols={protocols} latency=200 ! rtph264depay ! video/x-h264,stream-format=avc,alignment=au",
                    url.replace('"', "%22")
                )
            }
            SourcePlan::Pipeline { fragment } => fragment.clone(),
        }
    }
}

fn v4l2_launch(device: &Path, mode: &Mode, want_fps: u32) -> String {
    let Mode { width, height, fps, .. } = mode;
    let src = format!("v4l2src device=\"{}\" do-timestamp=true", device.display());
    // Modes are listed with whole rates, but drivers offer fractions (12.5, 29.97): accept
    // anything within half a frame per second of the mode's rate so the driver can fixate.
    let size = format!("width={width},height={height},framerate=(fraction)[{}/2,{}/2]", 2 * fps - 1, 2 * fps + 1);
    // Faster than asked: drop frames rather than encode more than the owner wanted.
    let rate = if *fps > want_fps { format!(" ! videorate drop-only=true ! video/x-raw,framerate={want_fps}/1") } else { String::new() };
    match mode.input {
        Input::H264 => format!("{src} ! capsfilter caps=\"video/x-h264,{size}\" ! h264parse"),
        Input::Raw(format) => format!("{src} ! capsfilter caps=\"video/x-raw,format={format},{size}\"{rate}"),
        Input::Mjpeg => format!("{src} ! capsfilter caps=\"image/jpeg,{size}\" ! jpegdec{rate}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::probe::fixtures::machine;

    fn cam(source: SourceSpec) -> Camera {
        Camera { source, ..Camera::default() }
    }

    #[test]
    fn v4l2_caps_accept_the_fractional_rate_a_driver_lists_as_a_whole_one() {
        // vivid offers 1280x720 at 12.5 fps; the mode says 13 (rounded). Caps pinned to 13/1
        // failed to negotiate ("Internal data stream error") on the image's boot test.
        gst::init().unwrap();
        let mode = Mode { input: Input::Raw("YUY2"), width: 1280, height: 720, fps: 13 };
        let launch = v4l2_launch(Path::new("/dev/video0"), &mode, 30);
        let caps_str = launch.split("caps=\"").nth(1).and_then(|r| r.split('"').next()).expect("a capsfilter");
        let ours: gst::Caps = caps_str.parse().expect("valid caps");
        let driver: gst::Caps = "video/x-raw,format=YUY2,width=1280,height=720,framerate=25/2".parse().unwrap();
        assert!(ours.can_intersect(&driver), "{caps_str}");
        let too_fast: gst::Caps = "video/x-raw,format=YUY2,width=1280,height=720,framerate=15/1".parse().unwrap();
        assert!(!ours.can_intersect(&too_fast));
        gst::parse::launch(&launch).expect("the fragment parses");
    }

    #[test]
    fn pc_camera_with_h264_is_passed_through() {
        let plan = plan(&cam(SourceSpec::Auto), &machine("pc-uvc")).unwrap();
        let SourcePlan::V4l2 { device, mode, .. } = &plan else { panic!("{plan:?}") };
        assert_eq!(device, Path::new("/dev/video0"));
        assert_eq!(*mode, Mode { input: Input::H264, width: 1280, height: 720, fps: 30 });
        assert_eq!(plan.output(), Output::H264);
    }

    #[test]
    fn raw_is_preferred_over_mjpeg_only_when_it_reaches_the_rate() {
        let mut machine = machine("pc-uvc");
        machine.video_nodes[0].formats.retain(|f| f.fourcc != "H264");
        let plan = plan(&cam(SourceSpec::Device("/dev/video0".into())), &machine).unwrap();
        // YUYV 720p runs at 10 fps only, so MJPEG 720p30 wins.
        let SourcePlan::V4l2 { mode, .. } = plan else { panic!() };
        assert_eq!(mode.input, Input::Mjpeg);

        let raw = plan_for("pc-raw-only", 1280, 720);
        assert_eq!(raw.input, Input::Raw("YUY2"));
    }

    fn plan_for(fixture: &str, width: u32, height: u32) -> Mode {
        let c = Camera { width, height, ..cam(SourceSpec::Auto) };
        match plan(&c, &machine(fixture)).unwrap() {
            SourcePlan::V4l2 { mode, .. } => mode,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nearest_larger_size_is_taken_when_exact_is_missing() {
        let mode = plan_for("pc-raw-only", 960, 540);
        assert_eq!((mode.width, mode.height), (1280, 720));
        let mode = plan_for("pc-raw-only", 2560, 1440);
        assert_eq!((mode.width, mode.height), (1280, 720));
    }

    #[test]
    fn pi_csi_camera_goes_through_libcamera() {
        let plan = plan(&cam(SourceSpec::Auto), &machine("pi4")).unwrap();
        assert!(matches!(plan, SourcePlan::Libcamera { .. }), "{plan:?}");
    }

    #[test]
    fn nothing_usable_means_test_pattern() {
        let plan = plan(&cam(SourceSpec::Auto), &machine("bare")).unwrap();
        assert!(matches!(plan, SourcePlan::Test { .. }));
    }

    #[test]
    fn missing_device_and_metadata_node_are_clear_errors() {
        let m = machine("pc-uvc");
        let err = plan(&cam(SourceSpec::Device("/dev/video7".into())), &m).unwrap_err();
        assert_eq!(err, SourceError::DeviceMissing("/dev/video7".into()));
        let err = plan(&cam(SourceSpec::Device("/dev/video1".into())), &m).unwrap_err();
        assert!(matches!(err, SourceError::NoUsableFormat { .. }), "{err}");
        let err = plan(&cam(SourceSpec::Libcamera), &m).unwrap_err();
        assert_eq!(err, SourceError::LibcameraMissing);
    }

    #[test]
    fn rtsp_credentials_stay_out_of_descriptions() {
        let p = SourcePlan::Rtsp { url: "rtsp://admin:secret@10.0.0.9/h264".into(), transport: Default::default() };
        assert!(!p.describe().contains("secret"));
        assert!(p.launch(30).contains("secret"), "the pipeline itself needs them");
    }
}
