//! What this machine offers for video: GStreamer elements and V4L2 nodes.
//!
//! [`Machine`] is a plain snapshot so the choices built on it (`source::plan`,
//! `encoder::choose`) are pure and tested on fixtures of a Pi 4, a PC and a bare machine.
//! [`Machine::probe`] is the only part that touches the system; `lookout devices` prints it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Elements whose presence changes what Lookout chooses.
pub const INTERESTING_ELEMENTS: &[&str] =
    &["v4l2h264enc", "x264enc", "openh264enc", "libcamerasrc", "v4l2src", "jpegdec", "v4l2jpegenc", "jpegenc"];

/// A snapshot of the machine's video capabilities.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Names of the interesting GStreamer element factories that exist.
    pub elements: BTreeSet<String>,
    pub video_nodes: Vec<VideoNode>,
}

/// One `/dev/videoN` node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VideoNode {
    pub path: PathBuf,
    pub driver: String,
    pub card: String,
    /// Delivers frames from a sensor or capture card.
    pub capture: bool,
    /// Memory-to-memory device: a codec or scaler, not a camera.
    pub m2m: bool,
    pub formats: Vec<NodeFormat>,
}

/// One pixel format a capture node offers, with its sizes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeFormat {
    /// V4L2 fourcc such as `YUYV`, `MJPG`, `H264`.
    pub fourcc: String,
    pub sizes: Vec<NodeSize>,
}

/// A frame size and the rates offered at it. A stepwise range sets `max_*` above the minimum.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSize {
    pub width: u32,
    pub height: u32,
    /// For stepwise sizes: the largest size; 0 for a discrete size.
    pub max_width: u32,
    pub max_height: u32,
    /// Frame rates offered; empty means any rate.
    pub fps: Vec<f64>,
}

impl Machine {
    /// Whether an element factory exists.
    pub fn has(&self, element: &str) -> bool {
        self.elements.contains(element)
    }

    /// Probes GStreamer's registry and every `/dev/video*` node. Never fails: what cannot be
    /// read is left out, so the choice falls back to what is known to work.
    pub fn probe() -> Machine {
        let elements =
            INTERESTING_ELEMENTS.iter().filter(|name| gst::ElementFactory::find(name).is_some()).map(|s| s.to_string()).collect();
        Machine { elements, video_nodes: probe_video_nodes(Path::new("/dev")) }
    }
}

fn probe_video_nodes(dev: &Path) -> Vec<VideoNode> {
    let Ok(entries) = std::fs::read_dir(dev) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.strip_prefix("video").is_some_and(|d| d.parse::<u32>().is_ok()))
        })
        .collect();
    paths.sort_by_key(|p| p.to_string_lossy().trim_start_matches("/dev/video").parse::<u32>().unwrap_or(u32::MAX));
    // The v4l crate unwraps driver strings; a broken driver must not take the daemon down.
    paths.into_iter().filter_map(|p| std::panic::catch_unwind(|| probe_node(&p)).ok().flatten()).collect()
}

fn probe_node(path: &Path) -> Option<VideoNode> {
    use v4l::capability::Flags;
    use v4l::video::Capture;

    let dev = v4l::Device::with_path(path).ok()?;
    let caps = dev.query_caps().ok()?;
    let flags = caps.capabilities;
    let m2m = flags.intersects(Flags::VIDEO_M2M | Flags::VIDEO_M2M_MPLANE);
    let capture = !m2m && flags.contains(Flags::VIDEO_CAPTURE);
    let formats = if capture {
        dev.enum_formats()
            .unwrap_or_default()
            .into_iter()
            .map(|f| NodeFormat { fourcc: f.fourcc.str().unwrap_or("????").to_string(), sizes: probe_sizes(&dev, f.fourcc) })
            .collect()
    } else {
        Vec::new()
    };
    Some(VideoNode { path: path.to_owned(), driver: caps.driver, card: caps.card, capture, m2m, formats })
}

fn probe_sizes(dev: &v4l::Device, fourcc: v4l::FourCC) -> Vec<NodeSize> {
    use v4l::framesize::FrameSizeEnum;
    use v4l::video::Capture;

    let rates = |w: u32, h: u32| -> Vec<f64> {
        dev.enum_frameintervals(fourcc, w, h)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| match i.interval {
                v4l::frameinterval::FrameIntervalEnum::Discrete(f) if f.numerator > 0 => {
                    Some(f64::from(f.denominator) / f64::from(f.numerator))
                }
                _ => None,
            })
            .collect()
    };
    dev.enum_framesizes(fourcc)
        .unwrap_or_default()
        .into_iter()
        .map(|s| match s.size {
            FrameSizeEnum::Discrete(d) => {
                NodeSize { width: d.width, height: d.height, fps: rates(d.width, d.height), ..NodeSize::default() }
            }
            FrameSizeEnum::Stepwise(s) => {
                NodeSize { width: s.min_width, height: s.min_height, max_width: s.max_width, max_height: s.max_height, fps: Vec::new() }
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::Machine;

    /// Loads `tests/fixtures/machines/<name>.toml`.
    pub fn machine(name: &str) -> Machine {
        let path = format!("{}/tests/fixtures/machines/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}
