//! The status LED: what the device is doing, for an owner with no screen.
//!
//! [`StatusLed`] is sans-IO: bus events and the current time in, the LED level and the next
//! moment it changes out. [`run`] is the thin loop that drives a [`Backend`] (the Linux LED
//! class in sysfs, or a GPIO pin through `rppal`) from the bus.
//!
//! | Status | When | Pattern |
//! |---|---|---|
//! | identify | asked for (button, page, API), for 10 s | 10 Hz flicker (50 ms on, 50 ms off) |
//! | error | a fault the daemon cannot heal (systemd will restart it) | 4 Hz blink (125/125 ms) |
//! | degraded | a camera offline, recording paused, a health warning (heat, power, disk) | double blink every 2 s |
//! | live | someone is watching (at least one viewer) | on, with a 100 ms dip each second |
//! | recording | recording, nobody watching | steady on |
//! | ready | up and idle | 100 ms blink every 2 s |
//! | booting | until the daemon is ready | 1 Hz even blink |
//! | hotspot | the setup hotspot `Lookout-XXXX` is open (no network): join it from a phone | two long blinks every 2 s |
//! | setup | no owner password yet (first boot, after a reset): open the page to set one | triple blink every 2 s |
//!
//! When several hold, the first row wins: a request to identify beats everything, problems
//! beat normal operation, and being watched beats recording (the owner should be able to tell
//! when the camera is being looked at).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::config::{Led as LedConfig, LedBackend};
use crate::events::{Action, Event};

/// How long identify blinks; long enough to walk to the shelf and look.
pub const IDENTIFY_FOR: Duration = Duration::from_secs(10);

/// What the LED shows, highest priority first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Identify,
    Error,
    Degraded,
    Live,
    Recording,
    Ready,
    Booting,
    Hotspot,
    Setup,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Steps = &'static [(bool, Duration)];
const IDENTIFY: Steps = &[(true, ms(50)), (false, ms(50))];
const ERROR: Steps = &[(true, ms(125)), (false, ms(125))];
const DEGRADED: Steps = &[(true, ms(100)), (false, ms(150)), (true, ms(100)), (false, ms(1650))];
const LIVE: Steps = &[(true, ms(900)), (false, ms(100))];
const RECORDING: Steps = &[(true, ms(1000))];
const READY: Steps = &[(true, ms(100)), (false, ms(1900))];
const BOOTING: Steps = &[(true, ms(500)), (false, ms(500))];
const HOTSPOT: Steps = &[(true, ms(500)), (false, ms(250)), (true, ms(500)), (false, ms(750))];
const SETUP: Steps = &[(true, ms(100)), (false, ms(150)), (true, ms(100)), (false, ms(150)), (true, ms(100)), (false, ms(1400))];

impl Status {
    /// One cycle of the blink pattern: (lit, how long), repeated.
    pub fn pattern(self) -> &'static [(bool, Duration)] {
        match self {
            Status::Identify => IDENTIFY,
            Status::Error => ERROR,
            Status::Degraded => DEGRADED,
            Status::Live => LIVE,
            Status::Recording => RECORDING,
            Status::Ready => READY,
            Status::Booting => BOOTING,
            Status::Hotspot => HOTSPOT,
            Status::Setup => SETUP,
        }
    }
}

/// The LED's state machine. Knows nothing of time but what it is given.
#[derive(Debug)]
pub struct StatusLed {
    ready: bool,
    fault: Option<String>,
    identify_until: Option<Instant>,
    viewers: BTreeMap<String, usize>,
    recording: BTreeSet<String>,
    /// Cameras offline and recorders paused, by camera.
    camera_trouble: BTreeSet<String>,
    recording_paused: BTreeSet<String>,
    warnings: BTreeSet<String>,
    setup: bool,
    hotspot: bool,
    shown: Status,
    shown_since: Instant,
}

impl StatusLed {
    /// A LED showing `booting` from `now`.
    pub fn new(now: Instant) -> StatusLed {
        StatusLed {
            ready: false,
            fault: None,
            identify_until: None,
            viewers: BTreeMap::new(),
            recording: BTreeSet::new(),
            camera_trouble: BTreeSet::new(),
            recording_paused: BTreeSet::new(),
            warnings: BTreeSet::new(),
            setup: false,
            hotspot: false,
            shown: Status::Booting,
            shown_since: now,
        }
    }

    /// Folds in one event from the bus.
    pub fn handle(&mut self, now: Instant, event: &Event) {
        match event {
            Event::DaemonReady => self.ready = true,
            Event::SetupRequired => self.setup = true,
            Event::SetupCompleted => self.setup = false,
            Event::HotspotOpened { .. } => self.hotspot = true,
            Event::HotspotClosed { .. } => self.hotspot = false,
            Event::FaultDetected { reason } => self.fault = Some(reason.clone()),
            Event::ActionRequested { action: Action::Identify, .. } => self.identify_until = Some(now + IDENTIFY_FOR),
            Event::HealthWarningRaised { kind, .. } => {
                self.warnings.insert(kind.clone());
            }
            Event::HealthWarningCleared { kind } => {
                self.warnings.remove(kind);
            }
            Event::CameraOnline { camera, .. } => {
                self.camera_trouble.remove(camera);
            }
            Event::CameraWentOffline { camera, .. } => {
                self.camera_trouble.insert(camera.clone());
            }
            Event::ViewerJoined { camera, viewers, .. } | Event::ViewerLeft { camera, viewers, .. } => {
                self.viewers.insert(camera.clone(), *viewers);
            }
            Event::RecordingStarted { camera } => {
                self.recording.insert(camera.clone());
                self.recording_paused.remove(camera);
            }
            Event::RecordingPaused { camera, .. } => {
                self.recording.remove(camera);
                self.recording_paused.insert(camera.clone());
            }
            Event::RecordingStopped { camera } => {
                self.recording.remove(camera);
                self.recording_paused.remove(camera);
            }
            _ => {}
        }
    }

    /// The status that wins right now.
    pub fn status(&self, now: Instant) -> Status {
        if self.identify_until.is_some_and(|until| now < until) {
            Status::Identify
        } else if self.fault.is_some() {
            Status::Error
        } else if !self.ready {
            Status::Booting
        } else if self.hotspot {
            Status::Hotspot
        } else if self.setup {
            Status::Setup
        } else if !self.camera_trouble.is_empty() || !self.recording_paused.is_empty() || !self.warnings.is_empty() {
            Status::Degraded
        } else if self.viewers.values().any(|&v| v > 0) {
            Status::Live
        } else if !self.recording.is_empty() {
            Status::Recording
        } else {
            Status::Ready
        }
    }

    /// Whether the LED is lit at `now`, and when that may next change. A new status starts
    /// its pattern from the beginning, so a change is visible at once.
    pub fn level(&mut self, now: Instant) -> (bool, Instant) {
        let status = self.status(now);
        if status != self.shown {
            self.shown = status;
            self.shown_since = now;
        }
        let pattern = status.pattern();
        let cycle: Duration = pattern.iter().map(|(_, d)| *d).sum();
        let mut into = Duration::from_nanos((now.saturating_duration_since(self.shown_since).as_nanos() % cycle.as_nanos()) as u64);
        let mut next = now + cycle;
        let mut lit = pattern[0].0;
        for &(on, length) in pattern {
            if into < length {
                lit = on;
                next = now + (length - into);
                break;
            }
            into -= length;
        }
        if let Some(until) = self.identify_until.filter(|&u| u > now) {
            next = next.min(until);
        }
        (lit, next)
    }
}

/// Why a LED backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LedError {
    #[error("no LED named {names:?} under {}", root.display())]
    NotFound { root: PathBuf, names: Vec<String> },
    #[error("{}: {source}", path.display())]
    Sysfs { path: PathBuf, source: std::io::Error },
    #[error("led.pin is required with backend = \"gpio\"")]
    NoPin,
    #[error("GPIO {pin}: {reason}")]
    Gpio { pin: u8, reason: String },
}

/// Something that can light and darken one LED.
pub trait Backend: Send {
    fn set(&mut self, lit: bool) -> Result<(), LedError>;
    /// For the log: which LED this is.
    fn describe(&self) -> String;
}

/// A Linux LED class device. Takes the LED over by setting its trigger to `none`, and gives
/// it back (the trigger it had, e.g. `mmc0`) when dropped.
pub struct SysfsLed {
    dir: PathBuf,
    saved_trigger: Option<String>,
    on_value: String,
}

fn sysfs_write(path: &Path, value: &str) -> Result<(), LedError> {
    std::fs::write(path, value).map_err(|source| LedError::Sysfs { path: path.to_owned(), source })
}

/// The selected trigger in a sysfs `trigger` file: `none [mmc0] timer` → `mmc0`.
pub fn selected_trigger(listing: &str) -> Option<&str> {
    listing.split_whitespace().find_map(|t| t.strip_prefix('[')?.strip_suffix(']'))
}

impl SysfsLed {
    /// Opens the first of `names` present under `root` (normally `/sys/class/leds`).
    pub fn open(root: &Path, names: &[String]) -> Result<SysfsLed, LedError> {
        let dir = names
            .iter()
            .map(|n| root.join(n))
            .find(|d| d.join("brightness").exists())
            .ok_or_else(|| LedError::NotFound { root: root.to_owned(), names: names.to_vec() })?;
        let trigger_path = dir.join("trigger");
        let listing = std::fs::read_to_string(&trigger_path).map_err(|source| LedError::Sysfs { path: trigger_path.clone(), source })?;
        let saved_trigger = selected_trigger(&listing).map(str::to_owned);
        sysfs_write(&trigger_path, "none")?;
        let on_value = std::fs::read_to_string(dir.join("max_brightness"))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s != "0")
            .unwrap_or_else(|| "1".into());
        Ok(SysfsLed { dir, saved_trigger, on_value })
    }
}

impl Backend for SysfsLed {
    fn set(&mut self, lit: bool) -> Result<(), LedError> {
        sysfs_write(&self.dir.join("brightness"), if lit { &self.on_value } else { "0" })
    }

    fn describe(&self) -> String {
        format!("sysfs LED {}", self.dir.display())
    }
}

impl Drop for SysfsLed {
    fn drop(&mut self) {
        if let Some(trigger) = &self.saved_trigger
            && let Err(e) = sysfs_write(&self.dir.join("trigger"), trigger)
        {
            tracing::warn!("could not give the LED back to its trigger {trigger}: {e}");
        }
    }
}

/// An external LED on a GPIO pin of the Pi's header.
pub struct GpioLed {
    pin: rppal::gpio::OutputPin,
    active_low: bool,
}

impl GpioLed {
    /// Fails on anything that is not a Raspberry Pi, naming why.
    pub fn open(pin: u8, active_low: bool) -> Result<GpioLed, LedError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| LedError::Gpio { pin, reason: e.to_string() })?;
        let pin_handle = gpio.get(pin).map_err(|e| LedError::Gpio { pin, reason: e.to_string() })?;
        Ok(GpioLed { pin: pin_handle.into_output(), active_low })
    }
}

impl Backend for GpioLed {
    fn set(&mut self, lit: bool) -> Result<(), LedError> {
        if lit != self.active_low {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("GPIO {} LED{}", self.pin.pin(), if self.active_low { " (active low)" } else { "" })
    }
}

/// The backend the config asks for; `Ok(None)` for `backend = "none"`.
pub fn open(config: &LedConfig) -> Result<Option<Box<dyn Backend>>, LedError> {
    Ok(match config.backend {
        LedBackend::None => None,
        LedBackend::Sysfs => Some(Box::new(SysfsLed::open(&config.sysfs_root, &config.names)?)),
        LedBackend::Gpio => Some(Box::new(GpioLed::open(config.pin.ok_or(LedError::NoPin)?, config.active_low)?)),
    })
}

/// Drives `backend` from the bus until `shutdown`; dropping the backend on the way out gives
/// the LED back.
pub async fn run(live: crate::config::Live, mut events: broadcast::Receiver<Event>, shutdown: CancellationToken) {
    let mut backend = open_logged(&live.get().led);
    let mut led = StatusLed::new(Instant::now());
    let mut shown: Option<bool> = None;
    let mut logged_status = None;
    loop {
        let now = Instant::now();
        let (lit, next) = led.level(now);
        let status = led.status(now);
        if logged_status != Some(status) {
            tracing::debug!(?status, "status LED");
            logged_status = Some(status);
        }
        if shown != Some(lit)
            && let Some(b) = backend.as_mut()
        {
            if let Err(e) = b.set(lit) {
                tracing::warn!("status LED off until its settings change: {e}");
                backend = None;
            }
            shown = Some(lit);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            e = events.recv() => match e {
                Ok(e) if e.changes("led") => {
                    // The old LED gets its trigger back before the new one is taken.
                    if let Some(mut old) = backend.take() {
                        let _ = old.set(false);
                    }
                    backend = open_logged(&live.get().led);
                    shown = None;
                }
                Ok(event) => led.handle(Instant::now(), &event),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
        }
    }
    if let Some(mut b) = backend {
        let _ = b.set(false);
    }
}

/// The LED `config` names, or none (saying why when it cannot be opened).
fn open_logged(config: &LedConfig) -> Option<Box<dyn Backend>> {
    match open(config) {
        Ok(Some(backend)) => {
            tracing::info!("status LED: {}", backend.describe());
            Some(backend)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("status LED disabled: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev_ready() -> Event {
        Event::DaemonReady
    }

    /// The lit/dark transitions over `span`, as (ms since t0, lit).
    fn trace(led: &mut StatusLed, t0: Instant, span: Duration) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        let mut now = t0;
        while now < t0 + span {
            let (lit, next) = led.level(now);
            if out.last().map(|&(_, l)| l) != Some(lit) {
                out.push(((now - t0).as_millis() as u64, lit));
            }
            assert!(next > now, "time moves on");
            now = next;
        }
        out
    }

    #[test]
    fn boots_then_blinks_ready_with_the_documented_timing() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        assert_eq!(led.status(t0), Status::Booting);
        assert_eq!(trace(&mut led, t0, ms(2000)), vec![(0, true), (500, false), (1000, true), (1500, false)]);
        let t1 = t0 + ms(2000);
        led.handle(t1, &ev_ready());
        assert_eq!(led.status(t1), Status::Ready);
        assert_eq!(trace(&mut led, t1, ms(4000)), vec![(0, true), (100, false), (2000, true), (2100, false)]);
    }

    #[test]
    fn each_status_has_its_own_pattern() {
        let all = [
            Status::Identify,
            Status::Error,
            Status::Degraded,
            Status::Live,
            Status::Recording,
            Status::Ready,
            Status::Booting,
            Status::Hotspot,
            Status::Setup,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.pattern(), b.pattern(), "{a:?} and {b:?} look the same");
            }
        }
        let steady: Vec<_> = all.iter().filter(|s| s.pattern().iter().all(|(on, _)| *on)).collect();
        assert_eq!(steady, [&Status::Recording], "recording is the only steady light");
    }

    #[test]
    fn priority_follows_the_table() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        led.handle(t0, &ev_ready());
        led.handle(t0, &Event::RecordingStarted { camera: "cam".into() });
        assert_eq!(led.status(t0), Status::Recording);
        led.handle(t0, &Event::ViewerJoined { camera: "cam".into(), session: "s".into(), protocol: "whep".into(), viewers: 1 });
        assert_eq!(led.status(t0), Status::Live, "being watched beats recording");
        led.handle(t0, &Event::HealthWarningRaised { kind: "temperature".into(), message: "hot".into() });
        assert_eq!(led.status(t0), Status::Degraded, "a problem beats being watched");
        led.handle(t0, &Event::ActionRequested { action: Action::Identify, camera: None, origin: "test".into() });
        assert_eq!(led.status(t0), Status::Identify, "identify beats everything");
        led.handle(t0, &Event::FaultDetected { reason: "wedged".into() });
        assert_eq!(led.status(t0 + ms(100)), Status::Identify);
        assert_eq!(led.status(t0 + IDENTIFY_FOR), Status::Error, "identify ends by itself; the fault stays");
    }

    #[test]
    fn setup_shows_until_the_owner_password_is_set_and_beats_normal_operation() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        led.handle(t0, &Event::SetupRequired);
        assert_eq!(led.status(t0), Status::Booting, "booting first");
        led.handle(t0, &ev_ready());
        led.handle(t0, &Event::RecordingStarted { camera: "cam".into() });
        led.handle(t0, &Event::CameraWentOffline { camera: "b".into(), reason: "unplugged".into(), retry_in_ms: 1000 });
        assert_eq!(led.status(t0), Status::Setup);
        led.handle(t0, &Event::SetupCompleted);
        assert_eq!(led.status(t0), Status::Degraded);
    }

    #[test]
    fn an_open_hotspot_shows_until_it_closes_and_beats_the_password_setup() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        led.handle(t0, &ev_ready());
        led.handle(t0, &Event::SetupRequired);
        led.handle(t0, &Event::HotspotOpened { ssid: "Lookout-AB0C".into() });
        assert_eq!(led.status(t0), Status::Hotspot, "the phone must join the hotspot before it can set a password");
        led.handle(t0, &Event::HotspotClosed { reason: "joined".into() });
        assert_eq!(led.status(t0), Status::Setup);
    }

    #[test]
    fn degraded_holds_until_every_cause_is_gone() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        led.handle(t0, &ev_ready());
        led.handle(t0, &Event::CameraWentOffline { camera: "a".into(), reason: "unplugged".into(), retry_in_ms: 1000 });
        led.handle(t0, &Event::RecordingPaused { camera: "b".into(), reason: "disk full".into() });
        assert_eq!(led.status(t0), Status::Degraded);
        led.handle(
            t0,
            &Event::CameraOnline {
                camera: "a".into(),
                source: "test".into(),
                encoder: "x264".into(),
                encoder_reason: String::new(),
                width: 1,
                height: 1,
            },
        );
        assert_eq!(led.status(t0), Status::Degraded, "recording on b is still paused");
        led.handle(t0, &Event::RecordingStarted { camera: "b".into() });
        assert_eq!(led.status(t0), Status::Recording);
        led.handle(t0, &Event::ViewerJoined { camera: "a".into(), session: "s".into(), protocol: "whep".into(), viewers: 1 });
        let left = Event::ViewerLeft {
            camera: "a".into(),
            session: "s".into(),
            protocol: "whep".into(),
            reason: "bye".into(),
            viewers: 0,
            dropped_frames: 0,
        };
        led.handle(t0, &left);
        assert_eq!(led.status(t0), Status::Recording, "the last viewer left");
    }

    #[test]
    fn a_new_status_starts_its_pattern_at_once_and_identify_wakes_the_loop_when_it_ends() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        led.handle(t0, &ev_ready());
        assert!(led.level(t0).0, "ready starts with its blink");
        let (lit, _) = led.level(t0 + ms(500));
        assert!(!lit, "ready is dark between blinks");
        led.handle(t0 + ms(500), &Event::ActionRequested { action: Action::Identify, camera: None, origin: "test".into() });
        let flicker = trace(&mut led, t0 + ms(500), ms(200));
        assert_eq!(flicker, vec![(0, true), (50, false), (100, true), (150, false)]);
        // The loop sleeps until the next change; near the end of identify that is the end.
        let end = t0 + ms(500) + IDENTIFY_FOR;
        let (_, next) = led.level(end - ms(10));
        assert!(next <= end);
        assert_eq!(led.status(end), Status::Ready);
    }

    #[test]
    fn triggers_are_read_from_the_bracketed_entry() {
        assert_eq!(selected_trigger("none [mmc0] timer heartbeat"), Some("mmc0"));
        assert_eq!(selected_trigger("[none] mmc0"), Some("none"));
        assert_eq!(selected_trigger("none mmc0"), None);
    }

    fn fake_led(root: &Path, name: &str, trigger: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trigger"), trigger).unwrap();
        std::fs::write(dir.join("brightness"), "0").unwrap();
        std::fs::write(dir.join("max_brightness"), "255\n").unwrap();
        dir
    }

    #[test]
    fn sysfs_led_takes_the_act_led_or_led0_and_gives_its_trigger_back() {
        let root = tempfile::tempdir().unwrap();
        let names = vec!["ACT".to_owned(), "led0".to_owned()];
        assert!(matches!(SysfsLed::open(root.path(), &names), Err(LedError::NotFound { .. })));
        let dir = fake_led(root.path(), "led0", "none [mmc0] timer");
        let mut led = SysfsLed::open(root.path(), &names).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("trigger")).unwrap(), "none");
        led.set(true).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("brightness")).unwrap(), "255");
        led.set(false).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("brightness")).unwrap(), "0");
        drop(led);
        assert_eq!(std::fs::read_to_string(dir.join("trigger")).unwrap(), "mmc0");
    }

    #[test]
    fn gpio_off_a_pi_fails_with_the_reason() {
        // This machine is not a Raspberry Pi (CI and developer PCs).
        let err = GpioLed::open(17, false).err().expect("no GPIO here");
        let text = err.to_string();
        assert!(text.starts_with("GPIO 17: "), "{text}");
        assert!(text.len() > "GPIO 17: ".len());
    }
}
