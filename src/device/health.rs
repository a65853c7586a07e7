//! Health of the device: SoC temperature, the Pi firmware's under-voltage and throttling
//! flags, load, memory, uptime and the data partition, read from sysfs and procfs.
//!
//! [`read`] takes the roots of `/sys` and `/proc` so it runs on fixture trees captured from a
//! Pi 4; [`warnings`] is pure: readings in, the problems an owner must know about out.

use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::events::{Bus, Event};

use crate::storage::retention::Disk;

/// Where to read from; `/sys` and `/proc` on a device, fixture folders in tests.
#[derive(Debug, Clone)]
pub struct Roots {
    pub sys: PathBuf,
    pub proc: PathBuf,
    /// `/run`: systemd-timesyncd marks a synchronised clock there.
    pub run: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots { sys: PathBuf::from("/sys"), proc: PathBuf::from("/proc"), run: PathBuf::from("/run") }
    }
}

/// The Pi firmware's `get_throttled` bits.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Throttled {
    pub raw: u32,
    pub under_voltage: bool,
    pub frequency_capped: bool,
    pub throttled: bool,
    pub soft_temperature_limit: bool,
    pub under_voltage_occurred: bool,
    pub frequency_capped_occurred: bool,
    pub throttled_occurred: bool,
    pub soft_temperature_limit_occurred: bool,
}

impl Throttled {
    /// Decodes the firmware's bit field (bits 0-3 now, 16-19 since boot).
    pub fn from_bits(raw: u32) -> Throttled {
        let bit = |n: u32| raw & (1 << n) != 0;
        Throttled {
            raw,
            under_voltage: bit(0),
            frequency_capped: bit(1),
            throttled: bit(2),
            soft_temperature_limit: bit(3),
            under_voltage_occurred: bit(16),
            frequency_capped_occurred: bit(17),
            throttled_occurred: bit(18),
            soft_temperature_limit_occurred: bit(19),
        }
    }
}

/// One reading of everything.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// SoC temperature (the `cpu-thermal` zone, else the first zone).
    pub temperature_c: Option<f64>,
    /// `None` where the Pi firmware interface is absent (not a Pi).
    pub throttled: Option<Throttled>,
    pub load: [f64; 3],
    pub cpus: usize,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub uptime_s: f64,
    pub disk_total_bytes: u64,
    pub disk_free_bytes: u64,
    /// Wired and Wi-Fi links: up or not, addresses, Wi-Fi signal.
    pub network: Vec<crate::network::links::Link>,
    /// Whether the clock was ever set from a time server since boot. A Pi has no clock of its
    /// own: until then recordings are named by the time saved at the last shutdown.
    pub clock_synchronized: bool,
}

/// Reads every value it can; what is missing is left empty, never an error.
pub fn read(roots: &Roots, disk: Option<Disk>) -> Health {
    let meminfo = std::fs::read_to_string(roots.proc.join("meminfo")).unwrap_or_default();
    let mem = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let loadavg = std::fs::read_to_string(roots.proc.join("loadavg")).unwrap_or_default();
    let mut load = [0.0; 3];
    for (slot, v) in load.iter_mut().zip(loadavg.split_whitespace()) {
        *slot = v.parse().unwrap_or(0.0);
    }
    let uptime_s = first_number(&roots.proc.join("uptime")).unwrap_or(0.0);
    let cpus =
        std::fs::read_to_string(roots.sys.join("devices/system/cpu/online")).ok().and_then(|s| parse_cpu_list(s.trim())).unwrap_or(1);
    Health {
        temperature_c: temperature(&roots.sys),
        throttled: throttled(&roots.sys),
        load,
        cpus,
        memory_total_bytes: mem("MemTotal"),
        memory_available_bytes: mem("MemAvailable"),
        uptime_s,
        disk_total_bytes: disk.map_or(0, |d| d.total),
        disk_free_bytes: disk.map_or(0, |d| d.free),
        clock_synchronized: clock_synchronized(&roots.run),
        network: crate::network::links::read(&roots.sys, &roots.proc, crate::network::links::system_addresses(), |interface| {
            crate::network::wpa_ctrl::joined_ssid(Path::new(crate::network::wpa::CTRL_DIR), interface)
        }),
    }
}

/// systemd-timesyncd's mark of a first synchronisation, or else the kernel's own flag (set
/// by any NTP client that disciplines the clock).
fn clock_synchronized(run: &Path) -> bool {
    if run.join("systemd/timesync/synchronized").exists() {
        return true;
    }
    // SAFETY: a zeroed timex with no mode bits only reads the kernel's clock state.
    let state = unsafe {
        let mut timex: libc::timex = std::mem::zeroed();
        libc::adjtimex(&mut timex)
    };
    state >= 0 && state != libc::TIME_ERROR
}

fn first_number(path: &Path) -> Option<f64> {
    std::fs::read_to_string(path).ok()?.split_whitespace().next()?.parse().ok()
}

/// `0-3` → 4 CPUs; `0,2-3` → 3.
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse::<usize>().ok()?)? + 1,
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

fn temperature(sys: &Path) -> Option<f64> {
    let zones = sys.join("class/thermal");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&zones).ok()?.flatten().map(|e| e.path()).collect();
    entries.sort();
    let zone = entries
        .iter()
        .find(|z| std::fs::read_to_string(z.join("type")).is_ok_and(|t| t.trim() == "cpu-thermal"))
        .or_else(|| entries.iter().find(|z| z.join("temp").exists()))?;
    first_number(&zone.join("temp")).map(|milli| milli / 1000.0)
}

/// The firmware's flags as the Raspberry Pi kernel exposes them.
const THROTTLED_PATH: &str = "devices/platform/soc/soc:firmware/get_throttled";

fn throttled(sys: &Path) -> Option<Throttled> {
    let text = std::fs::read_to_string(sys.join(THROTTLED_PATH)).ok()?;
    let text = text.trim().trim_start_matches("0x");
    u32::from_str_radix(text, 16).ok().map(Throttled::from_bits)
}

/// Limits above which the owner is warned.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// The Pi 4 starts soft throttling at 80 °C; warn a little before it.
    pub hot_c: f64,
    /// Share of the data partition that must stay free.
    pub disk_free_min: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { hot_c: 75.0, disk_free_min: 0.05 }
    }
}

/// Something about the device an owner should act on.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Warning {
    HighTemperature,
    UnderVoltage,
    Throttled,
    DiskNearlyFull,
    WeakWifiSignal,
}

impl Warning {
    /// What to tell the owner.
    pub fn advice(&self) -> &'static str {
        match self {
            Warning::HighTemperature => "the SoC is hot: give the device air or a heatsink",
            Warning::UnderVoltage => "under-voltage: use the official 5.1 V / 3 A power supply",
            Warning::Throttled => "the CPU is being throttled (heat or power): video may stutter",
            Warning::DiskNearlyFull => "the data partition is nearly full",
            Warning::WeakWifiSignal => "the Wi-Fi signal is weak: video may stall; move the device or the access point closer",
        }
    }
}

/// The warnings a reading raises. Pure.
pub fn warnings(h: &Health, t: &Thresholds) -> Vec<Warning> {
    let mut w = Vec::new();
    if h.temperature_c.is_some_and(|c| c >= t.hot_c) {
        w.push(Warning::HighTemperature);
    }
    if let Some(th) = h.throttled {
        if th.under_voltage {
            w.push(Warning::UnderVoltage);
        }
        if th.throttled || th.frequency_capped {
            w.push(Warning::Throttled);
        }
    }
    if h.disk_total_bytes > 0 && (h.disk_free_bytes as f64) < h.disk_total_bytes as f64 * t.disk_free_min {
        w.push(Warning::DiskNearlyFull);
    }
    if h.network.iter().any(|l| l.weak()) {
        w.push(Warning::WeakWifiSignal);
    }
    w
}

impl Warning {
    /// The name used in events and metrics (`high_temperature`, ...).
    pub fn name(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// The events that take the published warnings from `before` to `now`. Pure.
pub fn changes(before: &[Warning], now: &[Warning]) -> Vec<Event> {
    let raised =
        now.iter().filter(|w| !before.contains(w)).map(|w| Event::HealthWarningRaised { kind: w.name(), message: w.advice().into() });
    let cleared = before.iter().filter(|w| !now.contains(w)).map(|w| Event::HealthWarningCleared { kind: w.name() });
    raised.chain(cleared).collect()
}

/// How often the watcher reads: temperature and power change over seconds, not faster.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Reads the device every [`WATCH_EVERY`] and publishes warnings as they are raised and
/// cleared, until `shutdown`.
pub async fn watch(roots: Roots, data: PathBuf, bus: Bus, shutdown: CancellationToken) {
    let thresholds = Thresholds::default();
    let mut published: Vec<Warning> = Vec::new();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (roots, data) = (roots.clone(), data.clone());
        let Ok(reading) = tokio::task::spawn_blocking(move || read(&roots, crate::storage::disk::usage(&data).ok())).await else {
            continue;
        };
        let now = warnings(&reading, &thresholds);
        for event in changes(&published, &now) {
            if let Event::HealthWarningRaised { kind, message } = &event {
                tracing::warn!(warning = %kind, "{message}");
            }
            bus.publish(event);
        }
        published = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_published_when_raised_and_when_cleared_once_each() {
        let first = changes(&[], &[Warning::HighTemperature, Warning::UnderVoltage]);
        assert!(matches!(&first[..], [Event::HealthWarningRaised { kind: a, .. }, Event::HealthWarningRaised { kind: b, .. }]
            if a == "high_temperature" && b == "under_voltage"));
        assert!(changes(&[Warning::HighTemperature], &[Warning::HighTemperature]).is_empty(), "no repeats");
        let later = changes(&[Warning::HighTemperature, Warning::UnderVoltage], &[Warning::UnderVoltage, Warning::DiskNearlyFull]);
        assert!(matches!(&later[..], [Event::HealthWarningRaised { kind: a, .. }, Event::HealthWarningCleared { kind: b }]
            if a == "disk_nearly_full" && b == "high_temperature"));
    }

    fn fixture(name: &str) -> Roots {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pi4").join(name);
        Roots { sys: base.join("sys"), proc: base.join("proc"), run: base.join("run") }
    }

    const ROOMY: Disk = Disk { total: 28_000_000_000, free: 20_000_000_000 };

    #[test]
    fn a_healthy_pi4_reads_fully_and_warns_of_nothing() {
        let h = read(&fixture("normal"), Some(ROOMY));
        assert_eq!(h.temperature_c, Some(47.236));
        assert_eq!(h.throttled, Some(Throttled::from_bits(0)));
        assert_eq!(h.load, [0.52, 0.61, 0.58]);
        assert_eq!(h.cpus, 4);
        assert_eq!(h.memory_total_bytes, 3_885_892 * 1024);
        assert_eq!(h.memory_available_bytes, 3_312_460 * 1024);
        assert_eq!(h.uptime_s, 86_412.37);
        assert!(warnings(&h, &Thresholds::default()).is_empty());
    }

    #[test]
    fn hot_undervolted_throttled_and_full_are_each_reported() {
        let t = Thresholds::default();
        assert_eq!(warnings(&read(&fixture("hot"), Some(ROOMY)), &t), [Warning::HighTemperature]);
        let uv = read(&fixture("undervoltage"), Some(ROOMY));
        assert!(uv.throttled.unwrap().under_voltage_occurred);
        assert_eq!(warnings(&uv, &t), [Warning::UnderVoltage]);
        let th = read(&fixture("throttled"), Some(ROOMY));
        assert_eq!(warnings(&th, &t), [Warning::HighTemperature, Warning::Throttled]);
        let full = read(&fixture("normal"), Some(Disk { total: 28_000_000_000, free: 500_000_000 }));
        assert_eq!(warnings(&full, &t), [Warning::DiskNearlyFull]);
        let mut far = read(&fixture("normal"), Some(ROOMY));
        use crate::network::links::{Kind, Link};
        far.network = vec![Link {
            name: "wlan0".into(),
            kind: Kind::Wifi,
            up: true,
            addresses: vec![],
            signal_dbm: Some(-82),
            ssid: Some("Home".into()),
        }];
        assert_eq!(warnings(&far, &t), [Warning::WeakWifiSignal]);
        far.network[0].signal_dbm = Some(-60);
        assert!(warnings(&far, &t).is_empty());
    }

    #[test]
    fn timesyncd_marks_a_synchronised_clock() {
        let run = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(run.path().join("systemd/timesync")).unwrap();
        std::fs::write(run.path().join("systemd/timesync/synchronized"), "").unwrap();
        assert!(clock_synchronized(run.path()));
    }

    #[test]
    fn a_machine_that_is_not_a_pi_reads_what_it_has() {
        let h = read(&Roots { sys: "/nonexistent".into(), proc: "/nonexistent".into(), run: "/nonexistent".into() }, None);
        assert_eq!(h.throttled, None);
        assert_eq!(h.temperature_c, None);
        assert!(warnings(&h, &Thresholds::default()).is_empty());
    }

    #[test]
    fn firmware_bits_decode() {
        let t = Throttled::from_bits(0x50005);
        assert!(t.under_voltage && t.throttled && t.under_voltage_occurred && t.throttled_occurred);
        assert!(!t.frequency_capped && !t.soft_temperature_limit_occurred);
        assert_eq!(parse_cpu_list("0-3"), Some(4));
        assert_eq!(parse_cpu_list("0,2-3"), Some(3));
    }
}
