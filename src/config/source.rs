//! How a camera's `source` key is written: a keyword, a device path, a URL, or a pipeline.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a camera's pictures come from, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// First usable V4L2 camera, else the test pattern.
    Auto,
    /// A moving test pattern, for trying Lookout without a camera.
    Test,
    /// A V4L2 capture device such as `/dev/video0`.
    Device(PathBuf),
    /// The first camera libcamera sees (Pi CSI cameras).
    Libcamera,
    /// An IP camera; H.264 is passed through without re-encoding.
    Rtsp(String),
    /// A gst-launch fragment that ends in raw or H.264 video.
    Pipeline(String),
    /// Anything else, kept so validation can name it instead of serde failing vaguely.
    Unknown(String),
}

impl SourceSpec {
    fn from_text(s: &str) -> SourceSpec {
        match s {
            "auto" => SourceSpec::Auto,
            "test" => SourceSpec::Test,
            "libcamera" => SourceSpec::Libcamera,
            _ if s.starts_with("/dev/") => SourceSpec::Device(PathBuf::from(s)),
            _ if s.starts_with("rtsp://") || s.starts_with("rtsps://") => SourceSpec::Rtsp(s.to_owned()),
            _ => SourceSpec::Unknown(s.to_owned()),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Auto => f.write_str("auto"),
            SourceSpec::Test => f.write_str("test"),
            SourceSpec::Libcamera => f.write_str("libcamera"),
            SourceSpec::Device(p) => write!(f, "{}", p.display()),
            SourceSpec::Rtsp(url) => f.write_str(&redact_userinfo(url)),
            SourceSpec::Pipeline(p) => write!(f, "pipeline: {p}"),
            SourceSpec::Unknown(s) => f.write_str(s),
        }
    }
}

/// Hides `user:password@` in a URL so credentials never reach logs or the API.
pub fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Text(String),
    Table(PipelineTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineTable {
    pipeline: String,
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Written::deserialize(d) {
            Ok(Written::Text(s)) => Ok(SourceSpec::from_text(&s)),
            Ok(Written::Table(t)) => Ok(SourceSpec::Pipeline(t.pipeline)),
            Err(_) => Err(serde::de::Error::custom(
                "source must be \"auto\", \"test\", \"libcamera\", \"/dev/videoN\", \
                 \"rtsp://...\" or { pipeline = \"...\" }",
            )),
        }
    }
}

impl Serialize for SourceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_paths_and_urls_are_recognised() {
        assert_eq!(SourceSpec::from_text("auto"), SourceSpec::Auto);
        assert_eq!(SourceSpec::from_text("/dev/video2"), SourceSpec::Device("/dev/video2".into()));
        assert!(matches!(SourceSpec::from_text("rtsp://x/y"), SourceSpec::Rtsp(_)));
        assert!(matches!(SourceSpec::from_text("webcam"), SourceSpec::Unknown(_)));
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact_userinfo("rtsp://admin:pw@10.0.0.5:554/s1"), "rtsp://***@10.0.0.5:554/s1");
        assert_eq!(redact_userinfo("rtsp://10.0.0.5/s@1"), "rtsp://10.0.0.5/s@1");
    }
}
