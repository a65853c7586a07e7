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
            SourceSpec::Rtsp(url) => f.write_str(&redact_secrets(url)),
            SourceSpec::Pipeline(p) => write!(f, "pipeline: {}", redact_secrets(p)),
            SourceSpec::Unknown(s) => f.write_str(&redact_secrets(s)),
        }
    }
}

/// Names of settings whose values are secrets, in a URL's query (`?token=`) or a pipeline's
/// element properties (`rtspsrc user-pw=`, `srtsrc passphrase=`).
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pw",
        "pwd",
        "pass",
        "passwd",
        "password",
        "passphrase",
        "token",
        "secret",
        "key",
        "apikey",
        "api_key",
        "auth",
        "sig",
        "signature",
        "credential",
    ]
    .contains(&n.as_str())
        || ["-pw", "_pw", "password", "passphrase", "token", "secret", "_key", "-key", "credential"].iter().any(|s| n.ends_with(s))
}

/// Hides every credential in `text`: the user info of URLs ([`redact_userinfo`]) and the
/// values of settings named like secrets (`user-pw=…`, `?token=…`, `&password=…`).
pub fn redact_secrets(text: &str) -> String {
    let text = redact_userinfo(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(eq) = rest.find('=') {
        let head = &rest[..eq];
        let name_start = head.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).map_or(0, |i| i + 1);
        out.push_str(head);
        out.push('=');
        rest = &rest[eq + 1..];
        if is_secret_name(&head[name_start..]) {
            // A quoted value runs to its closing quote, which is kept; a bare one to a separator.
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
            let (skip, end) = match quote {
                Some(q) => (1, rest[1..].find(q).map_or(rest.len(), |i| i + 1)),
                None => (0, rest.find(|c: char| c.is_whitespace() || "&;\"'".contains(c)).unwrap_or(rest.len())),
            };
            out.push_str(&rest[..skip]);
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Hides the `user:password@` of every URL in `text`, so credentials never reach a log, an
/// API answer or a metric: also when they hold characters that should have been
/// percent-encoded (`rtsp://user:pa/ss@host/…`), and in pipeline fragments.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        // A URL runs to white space or a quote (in a pipeline fragment).
        let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == '\'').unwrap_or(rest.len());
        let url = &rest[..end];
        match userinfo_end(url) {
            Some(at) => {
                out.push_str("***");
                out.push_str(&url[at..]);
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Where the `@` that ends a URL's user info is, in the URL after its `://`; also finds it
/// past a `/`, `?` or `#` in the password, which makes what precedes it look like a host
/// with a port that is not a number.
fn userinfo_end(after_scheme: &str) -> Option<usize> {
    let authority = &after_scheme[..after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len())];
    if let Some(at) = authority.rfind('@') {
        return Some(at);
    }
    let broken_port = authority.split_once(':').is_some_and(|(_, port)| port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()));
    if broken_port { after_scheme.rfind('@') } else { None }
}

/// Why a camera URL's user name or password cannot be read as written, if it cannot: it
/// holds characters a URL reserves (`/ ? # @` or spaces), which must be percent-encoded.
pub fn userinfo_problem(url: &str) -> Option<&'static str> {
    let after_scheme = url.split_once("://")?.1;
    let at = userinfo_end(after_scheme)?;
    let userinfo = &after_scheme[..at];
    let bytes = userinfo.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => i += 3,
            b'%' => return Some("a `%` that does not start a percent-encoded character"),
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b) => i += 1,
            b'@' => return Some("an `@`"),
            b'/' | b'?' | b'#' => return Some("a `/`, `?` or `#`"),
            _ => return Some("a space or a character a URL does not allow there"),
        }
    }
    None
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
    fn secrets_in_queries_and_pipeline_properties_are_redacted_and_the_rest_kept() {
        let cases = [
            ("rtsp://cam.local/live?token=q5ecret&channel=1", "rtsp://cam.local/live?token=***&channel=1"),
            ("rtsp://u:pa/ss@cam/x?password=abc", "rtsp://***@cam/x?password=***"),
            (
                "rtspsrc location=rtsp://cam/x user-id=admin user-pw=pipesecret ! rtph264depay",
                "rtspsrc location=rtsp://cam/x user-id=admin user-pw=*** ! rtph264depay",
            ),
            ("srtsrc uri=srt://h:9 passphrase=\"long one\"", "srtsrc uri=srt://h:9 passphrase=\"***\""),
            ("x264enc key-int-max=30 bitrate=500", "x264enc key-int-max=30 bitrate=500"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_secrets(input), expected, "{input}");
        }
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact_userinfo("rtsp://admin:pw@10.0.0.5:554/s1"), "rtsp://***@10.0.0.5:554/s1");
        assert_eq!(redact_userinfo("rtsp://10.0.0.5/s@1"), "rtsp://10.0.0.5/s@1");
        assert_eq!(redact_userinfo("rtsp://10.0.0.5:554/s@1"), "rtsp://10.0.0.5:554/s@1");
    }

    #[test]
    fn credentials_are_redacted_whatever_the_url_looks_like() {
        for (url, kept) in [
            ("rtsp://user:pa/ss@cam.local/front", "rtsp://***@cam.local/front"),
            ("rtsp://user:pa@ss@cam.local/front", "rtsp://***@cam.local/front"),
            ("rtsp://user:p?ss#w@10.0.0.5/x", "rtsp://***@10.0.0.5/x"),
            ("rtsp://user:@10.0.0.5/x", "rtsp://***@10.0.0.5/x"),
            ("rtspsrc location=\"rtsp://u:secret@h/s\" latency=0", "rtspsrc location=\"rtsp://***@h/s\" latency=0"),
            ("rstp://u:secret@h/s", "rstp://***@h/s"),
        ] {
            assert_eq!(redact_userinfo(url), kept, "{url}");
        }
        assert!(!SourceSpec::from_text("rtsp://user:pa/ss@h/front").to_string().contains("ss"));
        assert!(!SourceSpec::Pipeline("rtspsrc location=rtsp://u:secret@h/s".into()).to_string().contains("secret"));
    }

    #[test]
    fn user_info_needing_percent_encoding_is_named() {
        assert_eq!(userinfo_problem("rtsp://user:pa/ss@h/front"), Some("a `/`, `?` or `#`"));
        assert_eq!(userinfo_problem("rtsp://user:pa@ss@h/front"), Some("an `@`"));
        assert_eq!(userinfo_problem("rtsp://user:pa ss@h/front"), Some("a space or a character a URL does not allow there"));
        assert_eq!(userinfo_problem("rtsp://user:100%@h/front"), Some("a `%` that does not start a percent-encoded character"));
        assert_eq!(userinfo_problem("rtsp://user:pa%2Fss%40x@h/front"), None);
        assert_eq!(userinfo_problem("rtsp://admin:S3cr3t!$@10.0.0.5:554/s1"), None);
        assert_eq!(userinfo_problem("rtsp://10.0.0.5:554/s@1"), None);
    }
}
