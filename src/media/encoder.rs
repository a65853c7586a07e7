//! Chooses the H.264 encoder for a camera and writes its GStreamer fragment.
//!
//! [`choose`] is pure over a [`Machine`] snapshot. Order for `auto`: the Pi's V4L2 M2M
//! encoder (element present *and* an encoder node present, and the size within its limits),
//! else x264 tuned for zero latency, else openh264. Every output is browser-decodable:
//! constrained-baseline, no B-frames, SPS/PPS repeated before each keyframe.

use crate::config::{Camera, EncoderChoice};

use super::probe::Machine;

/// The encoder a camera will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoder {
    /// Pi 4 `bcm2835-codec` through `v4l2h264enc`.
    V4l2 {
        device: String,
    },
    X264,
    OpenH264,
    /// The source already delivers H.264: nothing is encoded.
    Passthrough,
}

/// The choice and why, both reported by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderPlan {
    pub encoder: Encoder,
    pub reason: String,
}

/// No encoder can serve the camera; says what to install or change.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct EncoderError(String);

/// Largest frame the Pi 4 encoder accepts (its firmware's limit, 1920x1080 padded to 16).
const V4L2_MAX: (u32, u32) = (1920, 1088);

/// Picks the encoder for `cam` on `machine`.
pub fn choose(cam: &Camera, machine: &Machine) -> Result<EncoderPlan, EncoderError> {
    let hw = hardware_status(cam, machine);
    let plan = |encoder, reason: String| Ok(EncoderPlan { encoder, reason });
    match cam.encoder {
        EncoderChoice::Hardware => match hw {
            Ok(device) => plan(Encoder::V4l2 { device: device.clone() }, format!("configured; hardware encoder {device}")),
            Err(why) => Err(EncoderError(format!("encoder = \"hardware\" but {why}"))),
        },
        EncoderChoice::X264 if machine.has("x264enc") => plan(Encoder::X264, "configured".into()),
        EncoderChoice::X264 => Err(EncoderError("encoder = \"x264\" but x264enc is not installed (gstreamer1.0-plugins-ugly)".into())),
        EncoderChoice::Openh264 if machine.has("openh264enc") => plan(Encoder::OpenH264, "configured".into()),
        EncoderChoice::Openh264 => {
            Err(EncoderError("encoder = \"openh264\" but openh264enc is not installed (gstreamer1.0-plugins-bad)".into()))
        }
        EncoderChoice::Auto => match hw {
            Ok(device) => plan(Encoder::V4l2 { device: device.clone() }, format!("hardware encoder {device}")),
            Err(why) if machine.has("x264enc") => plan(Encoder::X264, format!("software x264 (zero latency): {why}")),
            Err(why) if machine.has("openh264enc") => plan(Encoder::OpenH264, format!("software openh264: {why}; x264enc not installed")),
            Err(why) => Err(EncoderError(format!(
                "no H.264 encoder: {why}, and neither x264enc (gstreamer1.0-plugins-ugly) nor openh264enc (gstreamer1.0-plugins-bad) is installed"
            ))),
        },
    }
}

/// The hardware encoder node, or why it cannot be used.
fn hardware_status(cam: &Camera, machine: &Machine) -> Result<String, String> {
    let node = machine.video_nodes.iter().find(|n| n.m2m && n.card.contains("encode"));
    match node {
        _ if !machine.has("v4l2h264enc") => Err("no v4l2h264enc element".into()),
        None => Err("no V4L2 M2M H.264 encoder device".into()),
        Some(_) if cam.width > V4L2_MAX.0 || cam.height > V4L2_MAX.1 => {
            Err(format!("{}x{} exceeds the hardware encoder's {}x{}", cam.width, cam.height, V4L2_MAX.0, V4L2_MAX.1))
        }
        Some(n) => Ok(n.path.display().to_string()),
    }
}

/// H.264 levels as (name, max macroblocks per second, max macroblocks per frame), from the
/// standard's Table A-1.
const LEVELS: &[(&str, u64, u64)] = &[
    ("3", 40_500, 1_620),
    ("3.1", 108_000, 3_600),
    ("3.2", 216_000, 5_120),
    ("4", 245_760, 8_192),
    ("4.2", 522_240, 8_704),
    ("5", 589_824, 22_080),
    ("5.1", 983_040, 36_864),
    ("5.2", 2_073_600, 36_864),
];

/// The lowest H.264 level that allows this size and rate. The Pi encoder refuses to start when
/// the level it is given is too low for the stream, so it must be stated explicitly.
pub fn h264_level(width: u32, height: u32, fps: u32) -> &'static str {
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let rate = mbs * u64::from(fps);
    LEVELS.iter().find(|(_, max_rate, max_frame)| rate <= *max_rate && mbs <= *max_frame).map_or("5.2", |(name, _, _)| name)
}

impl Encoder {
    /// Short name for the API and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Encoder::V4l2 { .. } => "v4l2h264enc",
            Encoder::X264 => "x264enc",
            Encoder::OpenH264 => "openh264enc",
            Encoder::Passthrough => "passthrough",
        }
    }

    /// The fragment from raw video to H.264 (empty for passthrough). `fps` is the rate the
    /// encoder will see, used for the keyframe period and the level.
    pub fn launch(&self, cam: &Camera, width: u32, height: u32, fps: u32) -> String {
        let gop = ((cam.keyframe_interval.as_secs_f64() * f64::from(fps)).round() as u32).max(1);
        let kbps = cam.bitrate_kbps;
        let baseline = "video/x-h264,profile=constrained-baseline";
        match self {
            // The element is bound to its M2M device when GStreamer registers it (`device` is
            // read-only): `v4l2h264enc` is the first H.264 encoder node, /dev/video11 on a Pi.
            Encoder::V4l2 { .. } => format!(
                "v4l2convert ! video/x-raw,format=I420 ! v4l2h264enc \
                 extra-controls=\"controls,video_bitrate={bps},h264_i_frame_period={gop},repeat_sequence_header=1\" \
                 ! {baseline},level=(string){level}",
                bps = u64::from(kbps) * 1000,
                level = h264_level(width, height, fps),
            ),
            Encoder::X264 => format!(
                "videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast \
                 bitrate={kbps} vbv-buf-capacity=1000 key-int-max={gop} bframes=0 b-adapt=false \
                 option-string=\"repeat-headers=1\" ! {baseline}"
            ),
            Encoder::OpenH264 => format!(
                "videoconvert ! video/x-raw,format=I420 ! openh264enc bitrate={bps} gop-size={gop} \
                 rate-control=bitrate complexity=low usage-type=camera ! {baseline}",
                bps = u64::from(kbps) * 1000,
            ),
            Encoder::Passthrough => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::probe::fixtures::machine;

    #[test]
    fn pi4_uses_the_hardware_encoder_with_a_sufficient_level() {
        let cam = Camera::default();
        let plan = choose(&cam, &machine("pi4")).unwrap();
        assert_eq!(plan.encoder, Encoder::V4l2 { device: "/dev/video11".into() });
        let launch = plan.encoder.launch(&cam, 1280, 720, 30);
        assert!(launch.contains("repeat_sequence_header=1"), "{launch}");
        assert!(launch.contains("h264_i_frame_period=60"), "{launch}");
        assert!(launch.contains("level=(string)3.1"), "{launch}");
    }

    #[test]
    fn pi4_falls_back_to_x264_above_1080p() {
        let cam = Camera { width: 2560, height: 1440, ..Camera::default() };
        let plan = choose(&cam, &machine("pi4")).unwrap();
        assert_eq!(plan.encoder, Encoder::X264);
        assert!(plan.reason.contains("exceeds"), "{}", plan.reason);
    }

    #[test]
    fn pc_uses_x264_and_says_why() {
        let plan = choose(&Camera::default(), &machine("pc-uvc")).unwrap();
        assert_eq!(plan.encoder, Encoder::X264);
        assert!(plan.reason.contains("no v4l2h264enc element"), "{}", plan.reason);
        assert_eq!(choose(&Camera::default(), &machine("pc-raw-only")).unwrap().encoder, Encoder::OpenH264);
    }

    #[test]
    fn bare_machine_and_impossible_choices_are_errors() {
        let err = choose(&Camera::default(), &machine("bare")).unwrap_err();
        assert!(err.to_string().contains("x264enc"), "{err}");
        let hw = Camera { encoder: EncoderChoice::Hardware, ..Camera::default() };
        assert!(choose(&hw, &machine("pc-uvc")).is_err());
    }

    #[test]
    fn levels_follow_the_standard() {
        assert_eq!(h264_level(640, 480, 30), "3");
        assert_eq!(h264_level(1280, 720, 30), "3.1");
        assert_eq!(h264_level(1280, 720, 60), "3.2");
        assert_eq!(h264_level(1920, 1080, 30), "4");
        assert_eq!(h264_level(1920, 1080, 60), "4.2");
    }

    #[test]
    fn x264_has_no_b_frames_and_repeats_headers() {
        let launch = Encoder::X264.launch(&Camera::default(), 1280, 720, 30);
        assert!(launch.contains("bframes=0") && launch.contains("tune=zerolatency"));
        assert!(launch.contains("key-int-max=60"));
    }
}
