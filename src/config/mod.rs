//! The daemon's typed configuration: TOML in, validated tree out.
//!
//! Every default is written once, in the `Default` impls below; unknown keys are rejected by
//! serde; [`Config::validate`] then checks what types cannot and names the field at fault.
//! Used by `main` (load, `check-config`) and handed to `lib::serve`.

mod diagnose;
pub mod layers;
pub mod mqtt;
mod network;
mod push;
mod source;
mod units;
mod validate;
mod webhook;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use mqtt::Mqtt;
pub use network::{Hotspot, Ipv4, Network, System as NetworkSystem, Wifi, WifiNetwork, Wired};
pub use push::Push;
pub use source::{SourceSpec, redact_secrets as source_redacted};
pub use units::{PortRange, Size, SpaceLimit};
pub use validate::Problem;
pub use webhook::{Webhook, redacted_url};

/// Why a config could not be used; `Invalid` lists every problem, not just the first.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n{}", problems.len(), validate::render(problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: Http,
    pub auth: AuthSettings,
    pub network: Network,
    pub storage: Storage,
    pub webrtc: WebRtc,
    pub rtsp: Rtsp,
    pub onvif: Onvif,
    pub led: Led,
    /// A push button on the GPIO header; none unless configured.
    pub button: Option<Button>,
    /// An MQTT broker to publish to (Home Assistant); none unless configured.
    pub mqtt: Option<Mqtt>,
    #[serde(rename = "camera")]
    pub cameras: Vec<Camera>,
    /// Receivers of events over HTTP (`webhook`).
    #[serde(rename = "webhook")]
    pub webhooks: Vec<Webhook>,
    /// The settings as written, secrets included: what the settings API changes and saves
    /// (see [`layers`]). Empty for a config built in code.
    #[serde(skip)]
    pub raw: toml::Table,
}

/// The config in force, which the settings API may replace while the daemon runs. Readers
/// take a snapshot ([`Live::get`]) and keep it for the work at hand.
#[derive(Debug, Clone)]
pub struct Live(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Config>>>);

impl Live {
    pub fn new(config: Config) -> Live {
        Live(std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(config))))
    }

    /// The config now.
    pub fn get(&self) -> std::sync::Arc<Config> {
        self.0.read().expect("config lock never poisoned").clone()
    }

    /// Puts a new config in force (the settings API, after validating it).
    pub fn set(&self, config: Config) {
        *self.0.write().expect("config lock never poisoned") = std::sync::Arc::new(config);
    }
}

/// Which status LED to drive, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedBackend {
    /// A Linux LED class device under `sysfs_root` (the Pi's green ACT LED).
    Sysfs,
    /// An external LED on a GPIO pin, through rppal.
    Gpio,
    None,
}

/// The status LED (patterns: `device::led`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Led {
    pub backend: LedBackend,
    /// LED class names tried in order: `ACT` on current Pi kernels, `led0` on older ones.
    pub names: Vec<String>,
    /// Where LED class devices live; tests point it at a fake tree.
    pub sysfs_root: PathBuf,
    /// BCM GPIO number, for `backend = "gpio"`.
    pub pin: Option<u8>,
    /// The LED lights when the pin is low (wired from 3.3 V to the pin).
    pub active_low: bool,
}

impl Default for Led {
    fn default() -> Self {
        // sysfs by default: on a Pi it finds ACT; elsewhere there is no such LED and the
        // daemon says so once and runs on.
        Led {
            backend: LedBackend::Sysfs,
            names: vec!["ACT".into(), "led0".into()],
            sysfs_root: PathBuf::from("/sys/class/leds"),
            pin: None,
            active_low: false,
        }
    }
}

/// A push button between a GPIO pin and ground (or 3.3 V with `active_low = false`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Button {
    /// BCM GPIO number.
    pub pin: u8,
    pub active_low: bool,
    pub actions: ButtonActions,
}

impl Default for Button {
    fn default() -> Self {
        // GPIO 3 (header pin 5) with ground next to it on pin 6: a button across pins 5-6
        // needs no other wiring, and GPIO 3 has a hardware pull-up.
        Button { pin: 3, active_low: true, actions: ButtonActions::default() }
    }
}

/// What each gesture does (`identify`, `snapshot`, `reboot`); unset does nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ButtonActions {
    pub short: Option<crate::events::Action>,
    pub long: Option<crate::events::Action>,
}

impl Default for ButtonActions {
    fn default() -> Self {
        ButtonActions { short: Some(crate::events::Action::Identify), long: Some(crate::events::Action::Reboot) }
    }
}

/// Accounts and sessions (`auth`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The owner's Argon2id hash (`lookout hash-password` makes one), written to the boot
    /// partition when the card is flashed: the owner account `admin` then exists from the first
    /// boot, with no setup step. Used only while there is no owner (first boot, after a reset).
    #[serde(skip_serializing)]
    pub admin_password_hash: Option<String>,
    /// A page session unused this long is over.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// A page session is over this long after login, however much it is used.
    #[serde(with = "humantime_serde")]
    pub session_max: Duration,
    /// A file whose presence at start-up clears the owner password (put it on the boot
    /// partition from any computer: physical access is the proof).
    pub reset_file: PathBuf,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            admin_password_hash: None,
            session_idle: Duration::from_secs(7 * 86_400),
            session_max: Duration::from_secs(30 * 86_400),
            reset_file: PathBuf::from("/boot/firmware/lookout-reset"),
        }
    }
}

/// Where the web page, API and WHEP endpoints listen.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Plain HTTP. With `tls` on, it answers `/livez` and redirects everything else to HTTPS.
    pub listen: SocketAddr,
    /// HTTPS: off, `"self-signed"` or `{ cert = "…", key = "…" }`.
    pub tls: Tls,
    /// Where HTTPS listens when `tls` is on.
    pub https_listen: SocketAddr,
}

impl Default for Http {
    fn default() -> Self {
        // Ports 8080 and 8443 so a developer can run it unprivileged; the image's config says
        // 80 and 443.
        Http { listen: SocketAddr::from(([0, 0, 0, 0], 8080)), tls: Tls::Off, https_listen: SocketAddr::from(([0, 0, 0, 0], 8443)) }
    }
}

/// Where the HTTPS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "TlsSetting", into = "TlsSetting")]
pub enum Tls {
    /// Plain HTTP only (a developer's machine, a device behind a TLS-terminating proxy).
    #[default]
    Off,
    /// A certificate the device makes for itself on first start and keeps on the data
    /// partition (`<storage>/tls/`), so clients can pin it.
    SelfSigned,
    /// PEM files: a certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// `tls` as written in TOML: a word or a table.
#[derive(Serialize, Deserialize)]
#[serde(untagged, expecting = "tls must be \"off\", \"self-signed\" or { cert = \"…\", key = \"…\" }")]
enum TlsSetting {
    Word(String),
    Files { cert: PathBuf, key: PathBuf },
}

impl TryFrom<TlsSetting> for Tls {
    type Error = String;
    fn try_from(setting: TlsSetting) -> Result<Self, String> {
        match setting {
            TlsSetting::Word(w) if w == "off" => Ok(Tls::Off),
            TlsSetting::Word(w) if w == "self-signed" => Ok(Tls::SelfSigned),
            TlsSetting::Word(w) => Err(format!("tls must be \"off\", \"self-signed\" or {{ cert = \"…\", key = \"…\" }}, not \"{w}\"")),
            TlsSetting::Files { cert, key } => Ok(Tls::Files { cert, key }),
        }
    }
}

impl From<Tls> for TlsSetting {
    fn from(tls: Tls) -> Self {
        match tls {
            Tls::Off => TlsSetting::Word("off".into()),
            Tls::SelfSigned => TlsSetting::Word("self-signed".into()),
            Tls::Files { cert, key } => TlsSetting::Files { cert, key },
        }
    }
}

/// Where recordings and snapshots live, and how much of the disk they may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    pub path: PathBuf,
    /// Total size recordings may take; oldest segments go first. Unset: no size limit.
    pub max_size: Option<Size>,
    /// Free space to keep on the partition; oldest segments are deleted to keep it.
    pub min_free: SpaceLimit,
    /// Snapshots the snapshot action keeps per camera; the oldest go first (bounds the disk
    /// they take, however often the action is asked for).
    pub snapshots_keep: usize,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: PathBuf::from("./data"),
            max_size: None,
            // 10% keeps an SD card out of the slow, wear-heavy nearly-full regime and leaves
            // room for logs and snapshots.
            min_free: SpaceLimit::Percent(10.0),
            snapshots_keep: 1000,
        }
    }
}

/// Continuous recording of one camera.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recording {
    pub enabled: bool,
    /// Length of each file; segments start on multiples of this in wall-clock time.
    #[serde(with = "humantime_serde")]
    pub segment: Duration,
    /// Delete segments older than this. Unset: keep until size or free-space limits bite.
    #[serde(with = "humantime_serde")]
    pub keep: Option<Duration>,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            enabled: true,
            // One-minute files: a lost or damaged file costs at most a minute, and a day is
            // 1440 files, which a directory and the index handle easily.
            segment: Duration::from_secs(60),
            keep: None,
        }
    }
}

/// WebRTC transport settings shared by every viewer session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtc {
    /// STUN servers, `stun:host:port`.
    pub stun: Vec<String>,
    /// TURN relays for viewers that cannot reach the device directly.
    pub turn: Vec<TurnServer>,
    /// Local UDP ports ICE may use; unset means any ephemeral port.
    pub udp_ports: Option<PortRange>,
    /// Extra addresses announced as host candidates (NAT 1:1: a public address that forwards
    /// the same ports to this device, or the host side of QEMU user networking).
    pub announce: Vec<IpAddr>,
    /// Offer ICE-TCP candidates too, for networks that block UDP.
    pub ice_tcp: bool,
    /// Viewer sessions allowed per camera; more get 503.
    pub max_viewers: usize,
    /// How long a viewer may go without sending RTCP (closed tab, lost network) before its
    /// session is ended.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// A viewer starts from the camera's current GOP, sent at once: a camera passed through
    /// (which cannot be asked for a keyframe) instead of waiting up to a GOP for the next one,
    /// a camera Lookout encodes from the keyframe asked for when the offer arrived.
    pub fast_start: bool,
}

impl Default for WebRtc {
    fn default() -> Self {
        WebRtc {
            stun: Vec::new(),
            turn: Vec::new(),
            udp_ports: None,
            announce: Vec::new(),
            ice_tcp: true,
            // A Pi 4 encodes once; each viewer costs a payloader and SRTP, so 16 is far
            // below what the CPU allows and still bounds a runaway client.
            max_viewers: 16,
            // Browsers send RTCP receiver reports about every second; 20 s leaves margin for
            // a congested Wi-Fi link and still ends a vanished viewer within 30 s.
            session_timeout: Duration::from_secs(20),
            fast_start: true,
        }
    }
}

/// The RTSP server that NVRs, VLC and Home Assistant read (`rtsp://host:8554/{camera}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rtsp {
    /// Off: no RTSP port at all.
    pub enabled: bool,
    /// Where it listens; port 0 picks a free one (tests).
    pub listen: SocketAddr,
}

impl Default for Rtsp {
    fn default() -> Self {
        // 8554, not 554: the daemon runs unprivileged, and 8554 is what MediaMTX, go2rtc and
        // Frigate use, so NVR presets already expect it.
        Rtsp { enabled: true, listen: SocketAddr::from(([0, 0, 0, 0], 8554)) }
    }
}

/// ONVIF (discovery on UDP 3702, the device and media services on the web server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Onvif {
    pub enabled: bool,
}

impl Default for Onvif {
    fn default() -> Self {
        Onvif { enabled: true }
    }
}

/// A TURN relay with its long-term credentials.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnServer {
    /// `turn:host:port` (UDP) or `turn:host:port?transport=tcp`.
    pub url: String,
    pub username: String,
    /// Never serialized back out (the settings API keeps it when a change leaves it out),
    /// never logged.
    #[serde(skip_serializing)]
    pub credential: String,
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer").field("url", &self.url).field("username", &self.username).field("credential", &"<secret>").finish()
    }
}

/// Which H.264 encoder a camera uses; `auto` picks the best the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    #[default]
    Auto,
    /// The Pi's V4L2 memory-to-memory encoder (`v4l2h264enc`).
    Hardware,
    X264,
    Openh264,
}

/// How an RTSP camera is asked to send its RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved in the RTSP connection: passes NAT and firewalls, no loss on Wi-Fi.
    #[default]
    Tcp,
    /// RTP on UDP ports: for cameras that refuse TCP, or the least delay on a clean LAN.
    Udp,
    /// UDP, falling back to TCP when nothing arrives (rtspsrc's own order).
    Auto,
}

/// One camera and how to encode it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Camera {
    /// Used in URLs and file names: `[a-z0-9-]`.
    pub name: String,
    pub source: SourceSpec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    #[serde(with = "humantime_serde")]
    pub keyframe_interval: Duration,
    pub encoder: EncoderChoice,
    /// No frame for this long means the camera is gone and its pipeline is rebuilt.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// For `rtsp://` sources only.
    pub rtsp_transport: RtspTransport,
    pub recording: Recording,
    /// WHIP servers (SFUs, cloud ingests) this camera's stream is published to
    /// (`[[camera.push]]`); none by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<Push>,
}

impl Default for Camera {
    fn default() -> Self {
        Camera {
            name: "cam".into(),
            source: SourceSpec::Auto,
            width: 1280,
            height: 720,
            fps: 30,
            // 4 Mbit/s gives clean 720p30 from x264 ultrafast and the Pi encoder alike.
            bitrate_kbps: 4000,
            keyframe_interval: Duration::from_secs(2),
            encoder: EncoderChoice::Auto,
            // An RTSP camera over Wi-Fi can pause ~1 s; 4 s is "gone" without false alarms.
            stall_timeout: Duration::from_secs(4),
            rtsp_transport: RtspTransport::Tcp,
            recording: Recording::default(),
            push: Vec::new(),
        }
    }
}

impl Config {
    /// The configuration used when no file is given: one `auto` camera, data in `./data`.
    pub fn embedded_default() -> Config {
        Config { cameras: vec![Camera::default()], ..Config::default() }
    }

    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let raw: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::Parse { path: origin.to_owned(), message: e.to_string() })?;
        let mut config: Config = match toml::from_str(text) {
            Ok(config) => config,
            Err(e) => {
                let problems = diagnose::type_problems(text);
                if problems.is_empty() {
                    return Err(ConfigError::Parse { path: origin.to_owned(), message: e.to_string() });
                }
                return Err(ConfigError::Invalid { path: origin.to_owned(), problems });
            }
        };
        config.raw = raw;
        let problems = config.validate();
        if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid { path: origin.to_owned(), problems }) }
    }

    /// The config of the settings `raw` (the boot file overlaid by saved settings), checked
    /// as `check-config` checks a file.
    pub fn from_raw(raw: &toml::Table, origin: &Path) -> Result<Config, ConfigError> {
        Config::from_toml(
            &toml::to_string(raw).map_err(|e| ConfigError::Parse { path: origin.to_owned(), message: e.to_string() })?,
            origin,
        )
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text, path)
    }

    /// Every problem serde could not catch, each naming its field.
    pub fn validate(&self) -> Vec<Problem> {
        validate::check(self)
    }

    /// Looks a camera up by its URL name.
    pub fn camera(&self, name: &str) -> Option<&Camera> {
        self.cameras.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.cameras[0].source, SourceSpec::Auto);
        assert_eq!(c.http.listen.port(), 8080);
    }

    #[test]
    fn readme_example_parses() {
        let text = r#"
            [http]
            listen = "0.0.0.0:8080"
            [storage]
            path = "/data"
            [[camera]]
            name = "cam"
            source = "auto"
            width = 1280
            height = 720
            fps = 30
            bitrate_kbps = 4000
            keyframe_interval = "2s"
            [[camera]]
            name = "door"
            source = { pipeline = "videotestsrc ! video/x-raw" }
        "#;
        let c = Config::from_toml(text, Path::new("t.toml")).unwrap();
        assert_eq!(c.cameras.len(), 2);
        assert_eq!(c.cameras[0].keyframe_interval, Duration::from_secs(2));
        assert!(matches!(c.cameras[1].source, SourceSpec::Pipeline(_)));
    }

    /// The README's TOML example that holds `marker` (indentation of a list item removed).
    fn readme_toml(marker: &str) -> String {
        let readme = include_str!("../../README.md");
        let block = readme.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap()).find(|b| b.contains(marker));
        block
            .unwrap_or_else(|| panic!("README has a TOML example with {marker}"))
            .lines()
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_readme_access_example_is_a_valid_config_and_its_hash_is_of_its_password() {
        let text = format!("{}\n[[camera]]\nname = \"cam\"\n", readme_toml("[auth]"));
        let c = Config::from_toml(&text, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
        let hash = c.auth.admin_password_hash.expect("a hash");
        assert!(crate::auth::password::verify("my password", &hash));
    }

    #[test]
    fn the_readme_example_is_a_valid_config() {
        let text = readme_toml("[[camera]]");
        let c = Config::from_toml(&text, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cameras.len(), 2);
        assert!(matches!(c.cameras[1].source, SourceSpec::Rtsp(_)));
    }

    #[test]
    fn the_readme_device_example_and_the_images_default_config_are_valid() {
        let text = format!("{}\n[[camera]]\nname = \"cam\"\n", readme_toml("[led]"));
        let c = Config::from_toml(&text, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.led.names, ["ACT", "led0"]);
        let button = c.button.expect("a button");
        assert_eq!((button.pin, button.actions.long), (3, Some(crate::events::Action::Reboot)));

        let image = include_str!("../../overlays/rootfs/etc/lookout/lookout.toml");
        let c = Config::from_toml(image, Path::new("lookout.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.http.listen.port(), 80);
        assert_eq!((&c.http.tls, c.http.https_listen.port()), (&Tls::SelfSigned, 443));
        assert_eq!(c.storage.path, Path::new("/data"));
    }

    #[test]
    fn tls_is_a_word_or_a_pair_of_files_and_anything_else_is_named() {
        let parse = |tls: &str| Config::from_toml(&format!("[http]\ntls = {tls}\n[[camera]]\nname = \"c\"\n"), Path::new("t"));
        assert_eq!(parse("\"self-signed\"").unwrap().http.tls, Tls::SelfSigned);
        assert_eq!(parse("\"off\"").unwrap().http.tls, Tls::Off);
        let files = parse("{ cert = \"/a.pem\", key = \"/b.pem\" }").unwrap().http.tls;
        assert_eq!(files, Tls::Files { cert: "/a.pem".into(), key: "/b.pem".into() });
        let err = parse("\"selfsigned\"").unwrap_err().to_string();
        assert!(err.contains("tls") && err.contains("self-signed") && err.contains("selfsigned"), "{err}");
        let err = parse("{ cert = \"/a.pem\" }").unwrap_err().to_string();
        assert!(err.contains("tls must be"), "{err}");
        let mut c = parse("\"self-signed\"").unwrap();
        c.http.https_listen = c.http.listen;
        assert_eq!(c.validate().into_iter().map(|p| p.field).collect::<Vec<_>>(), ["http.https_listen"]);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = Config::from_toml("[http]\nlisten = \"0.0.0.0:1\"\nport = 3\n", Path::new("t")).unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
    }
}
