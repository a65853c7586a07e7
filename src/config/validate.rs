//! Checks a parsed config for what serde's types cannot express; each problem names its field.

use std::collections::HashSet;
use std::time::Duration;

use super::{Config, SourceSpec};

/// One thing wrong with the config, e.g. `camera[1].fps: must be between 1 and 120`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending key, as written in the file.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One problem per line, for `check-config` and error messages.
pub fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

struct Report(Vec<Problem>);

impl Report {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { field: field.into(), message: message.into() });
    }
    fn range(&mut self, field: String, value: u32, lo: u32, hi: u32, unit: &str) {
        if !(lo..=hi).contains(&value) {
            self.fail(field, format!("{value} is out of range: must be {lo}-{hi} {unit}"));
        }
    }
}

/// HTTPS needs its own port, and key files that are named.
fn check_tls(config: &Config, r: &mut Report) {
    let http = &config.http;
    match &http.tls {
        super::Tls::Off => return,
        super::Tls::SelfSigned => {}
        super::Tls::Files { cert, key } => {
            for (field, path) in [("http.tls.cert", cert), ("http.tls.key", key)] {
                if path.as_os_str().is_empty() {
                    r.fail(field, "must name a PEM file");
                }
            }
        }
    }
    if http.https_listen.port() != 0 && http.https_listen.port() == http.listen.port() {
        r.fail("http.https_listen", format!("port {} is also http.listen's: HTTPS needs a port of its own", http.listen.port()));
    }
}

/// RTSP needs a TCP port of its own.
fn check_rtsp(config: &Config, r: &mut Report) {
    let port = config.rtsp.listen.port();
    if !config.rtsp.enabled || port == 0 {
        return;
    }
    let https = (config.http.tls != super::Tls::Off).then_some(config.http.https_listen.port());
    if port == config.http.listen.port() || https == Some(port) {
        r.fail("rtsp.listen", format!("port {port} is also the web server's: RTSP needs a port of its own"));
    }
}

/// Runs every check and returns all problems found.
pub fn check(config: &Config) -> Vec<Problem> {
    let mut r = Report(Vec::new());
    if config.storage.path.as_os_str().is_empty() {
        r.fail("storage.path", "must not be empty");
    }
    if let crate::config::SpaceLimit::Percent(p) = config.storage.min_free
        && p > 90.0
    {
        r.fail("storage.min_free", "more than 90% free would leave no room to record");
    }
    if config.storage.snapshots_keep == 0 {
        r.fail("storage.snapshots_keep", "must be at least 1");
    }
    check_webrtc(config, &mut r);
    check_device(config, &mut r);
    check_tls(config, &mut r);
    check_rtsp(config, &mut r);
    for (field, message) in super::network::problems(&config.network) {
        r.fail(field, message);
    }
    for (field, message) in config.mqtt.iter().flat_map(super::mqtt::problems) {
        r.fail(field, message);
    }
    let camera_names: Vec<String> = config.cameras.iter().map(|c| c.name.clone()).collect();
    for (field, message) in super::webhook::problems(&config.webhooks, &camera_names) {
        r.fail(field, message);
    }
    if let Some(hash) = &config.auth.admin_password_hash
        && let Err(e) = crate::auth::password::check_hash(hash)
    {
        r.fail("auth.admin_password_hash", e);
    }
    if config.auth.session_idle.is_zero() || config.auth.session_idle > config.auth.session_max {
        r.fail("auth.session_idle", "must be more than zero and at most auth.session_max");
    }
    if config.cameras.is_empty() {
        r.fail("camera", "at least one [[camera]] is needed");
    }
    let mut names = HashSet::new();
    for (i, cam) in config.cameras.iter().enumerate() {
        let at = |key: &str| format!("camera[{i}].{key}");
        if !valid_name(&cam.name) {
            r.fail(at("name"), format!("`{}` must be 1-32 characters of a-z, 0-9 and -", cam.name));
        } else if !names.insert(cam.name.as_str()) {
            r.fail(at("name"), format!("`{}` is used by another camera", cam.name));
        }
        match &cam.source {
            SourceSpec::Unknown(s) => {
                r.fail(at("source"), format!("`{s}` is not auto, test, libcamera, /dev/videoN, rtsp://... or {{ pipeline = \"...\" }}"))
            }
            SourceSpec::Pipeline(p) if p.trim().is_empty() => r.fail(at("source.pipeline"), "must not be empty"),
            SourceSpec::Rtsp(url) => {
                if let Some(problem) = super::source::userinfo_problem(url) {
                    r.fail(
                        at("source"),
                        format!(
                            "`{}`: the user name or password holds {problem}; percent-encode it \
                             (`/` as %2F, `@` as %40, `?` as %3F, `#` as %23, `%` as %25, a space as %20)",
                            super::source::redact_userinfo(url)
                        ),
                    )
                }
            }
            _ => {}
        }
        // Bounds: the Pi encoder's limits (1920x1080, level 4.2) with headroom for USB cameras
        // that offer more and sources passed through untouched.
        r.range(at("width"), cam.width, 16, 4096, "pixels");
        r.range(at("height"), cam.height, 16, 4096, "pixels");
        if cam.width % 2 != 0 || cam.height % 2 != 0 {
            r.fail(at("width"), "width and height must be even for 4:2:0 video");
        }
        r.range(at("fps"), cam.fps, 1, 120, "frames per second");
        r.range(at("bitrate_kbps"), cam.bitrate_kbps, 100, 50_000, "kbit/s");
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&cam.keyframe_interval) {
            r.fail(at("keyframe_interval"), "must be between 100ms and 60s");
        }
        if cam.stall_timeout < Duration::from_secs(1) {
            r.fail(at("stall_timeout"), "must be at least 1s");
        }
        let rec = &cam.recording;
        if !(Duration::from_secs(2)..=Duration::from_secs(3600)).contains(&rec.segment) {
            r.fail(at("recording.segment"), "must be between 2s and 1h");
        }
        if rec.keep.is_some_and(|k| k < rec.segment) {
            r.fail(at("recording.keep"), "must be longer than recording.segment");
        }
        for (field, message) in super::push::problems(&cam.push) {
            r.fail(at(&field), message);
        }
    }
    r.0
}

fn check_webrtc(config: &Config, r: &mut Report) {
    let w = &config.webrtc;
    for (i, url) in w.stun.iter().enumerate() {
        if !url.starts_with("stun:") {
            r.fail(format!("webrtc.stun[{i}]"), format!("`{url}` must start with stun:"));
        }
    }
    for (i, t) in w.turn.iter().enumerate() {
        if !(t.url.starts_with("turn:") || t.url.starts_with("turns:")) {
            r.fail(format!("webrtc.turn[{i}].url"), format!("`{}` must start with turn: or turns:", t.url));
        }
    }
    if w.max_viewers == 0 {
        r.fail("webrtc.max_viewers", "must be at least 1");
    }
    if w.session_timeout < Duration::from_secs(2) || w.session_timeout > Duration::from_secs(30) {
        r.fail("webrtc.session_timeout", "must be between 2s and 30s");
    }
}

fn check_device(config: &Config, r: &mut Report) {
    // BCM GPIO 0-27 are on the 40-pin header.
    let led = &config.led;
    match (led.backend, led.pin) {
        (super::LedBackend::Gpio, None) => r.fail("led.pin", "required with backend = \"gpio\""),
        (_, Some(pin)) => r.range("led.pin".into(), pin.into(), 0, 27, "(BCM GPIO number)"),
        _ => {}
    }
    if led.backend == super::LedBackend::Sysfs && led.names.is_empty() {
        r.fail("led.names", "must name at least one LED");
    }
    if let Some(button) = &config.button {
        r.range("button.pin".into(), button.pin.into(), 0, 27, "(BCM GPIO number)");
        if led.backend == super::LedBackend::Gpio && led.pin == Some(button.pin) {
            r.fail("button.pin", format!("GPIO {} is already the LED's (led.pin)", button.pin));
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use crate::config::{Camera, Config};

    #[test]
    fn each_problem_names_its_field() {
        let mut c = Config::embedded_default();
        c.cameras.push(Camera { name: "Front Door".into(), fps: 0, ..Camera::default() });
        c.cameras.push(Camera { name: "cam".into(), ..Camera::default() });
        c.webrtc.max_viewers = 0;
        let fields: Vec<_> = c.validate().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["webrtc.max_viewers", "camera[1].name", "camera[1].fps", "camera[2].name"]);
    }
}
