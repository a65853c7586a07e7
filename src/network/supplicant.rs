//! wpa_supplicant, driven over its control socket: it joins the known networks and, in its
//! access-point mode, is the setup hotspot too. The daemon hands it every network at start
//! and after each change (nothing is written to its config file, which stays the image's
//! read-only one), so `lookout.toml` and the settings saved from the page are the one truth.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::wpa::{self, Seen, Status};
use crate::config::Wifi;

/// How long a scan is given before its results are read (a full 2.4 + 5 GHz scan takes
/// 2-4 s).
const SCAN_TIME: Duration = Duration::from_secs(4);

/// What went wrong talking to wpa_supplicant. Commands are named without their values, so a
/// passphrase never reaches a log.
#[derive(Debug, thiserror::Error)]
pub enum SupplicantError {
    #[error("wpa_supplicant's control socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error("wpa_supplicant refused `{command}`: {answer}")]
    Refused { command: String, answer: String },
}

/// The ids wpa_supplicant gave the networks handed to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks {
    /// The known networks, most preferred first.
    pub known: Vec<u32>,
    /// The hotspot's access-point network, kept disabled until it opens.
    pub hotspot: Option<u32>,
}

/// The hotspot as handed to wpa_supplicant.
pub struct HotspotNetwork<'a> {
    pub ssid: &'a str,
    pub passphrase: Option<&'a str>,
}

/// One interface's wpa_supplicant.
#[derive(Debug, Clone)]
pub struct Supplicant {
    ctrl_dir: PathBuf,
    interface: String,
}

impl Supplicant {
    pub fn new(ctrl_dir: PathBuf, interface: String) -> Supplicant {
        Supplicant { ctrl_dir, interface }
    }

    /// Whether wpa_supplicant runs for the interface and answers; why not, if not.
    pub async fn alive(&self) -> Result<(), SupplicantError> {
        let answer = self.ask("PING".into(), "PING").await?;
        if answer.trim() == "PONG" {
            Ok(())
        } else {
            Err(SupplicantError::Refused { command: "PING".into(), answer: answer.trim().to_owned() })
        }
    }

    /// Replaces every network wpa_supplicant knows with `wifi`'s and the hotspot's.
    pub async fn configure(&self, wifi: &Wifi, hotspot: Option<HotspotNetwork<'_>>) -> Result<Networks, SupplicantError> {
        self.ok("REMOVE_NETWORK all".into(), "REMOVE_NETWORK all").await?;
        if let Some(country) = &wifi.country {
            self.ok(format!("SET country {country}"), "SET country").await?;
        }
        let mut networks = Networks::default();
        let count = wifi.networks.len();
        for (i, net) in wifi.networks.iter().enumerate() {
            let id = self.add(&wpa::network_settings(net, count - i)).await?;
            self.ok(format!("ENABLE_NETWORK {id}"), "ENABLE_NETWORK").await?;
            networks.known.push(id);
        }
        if let Some(h) = hotspot {
            // Added networks start disabled: the hotspot waits for `open_hotspot`.
            networks.hotspot = Some(self.add(&wpa::hotspot_settings(h.ssid, h.passphrase)).await?);
        }
        Ok(networks)
    }

    async fn add(&self, settings: &[(&'static str, String)]) -> Result<u32, SupplicantError> {
        let answer = self.ask("ADD_NETWORK".into(), "ADD_NETWORK").await?;
        let id: u32 = answer
            .trim()
            .parse()
            .map_err(|_| SupplicantError::Refused { command: "ADD_NETWORK".into(), answer: answer.trim().to_owned() })?;
        for (variable, value) in settings {
            self.ok(format!("SET_NETWORK {id} {variable} {value}"), &format!("SET_NETWORK {id} {variable}")).await?;
        }
        Ok(id)
    }

    /// Turns the radio into the hotspot (leaving any network it had joined).
    pub async fn open_hotspot(&self, networks: &Networks) -> Result<(), SupplicantError> {
        match networks.hotspot {
            Some(id) => self.ok(format!("SELECT_NETWORK {id}"), "SELECT_NETWORK").await,
            None => Ok(()),
        }
    }

    /// Closes the hotspot and lets the radio look for the known networks again.
    pub async fn close_hotspot(&self, networks: &Networks) -> Result<(), SupplicantError> {
        if let Some(id) = networks.hotspot {
            self.ok(format!("DISABLE_NETWORK {id}"), "DISABLE_NETWORK").await?;
        }
        for id in &networks.known {
            self.ok(format!("ENABLE_NETWORK {id}"), "ENABLE_NETWORK").await?;
        }
        self.ok("REASSOCIATE".into(), "REASSOCIATE").await
    }

    pub async fn status(&self) -> Result<Status, SupplicantError> {
        Ok(Status::parse(&self.ask("STATUS".into(), "STATUS").await?))
    }

    /// How many phones are on the hotspot.
    pub async fn stations(&self) -> Result<usize, SupplicantError> {
        let mut count = 0;
        let mut answer = self.ask("STA-FIRST".into(), "STA-FIRST").await?;
        // Each answer starts with the station's MAC; FAIL or nothing ends the list. A
        // bound keeps a misbehaving peer from looping forever.
        while count < 256 {
            let Some(mac) = answer.lines().next().map(str::trim).filter(|l| l.len() == 17 && l.contains(':')) else { break };
            count += 1;
            answer = self.ask(format!("STA-NEXT {mac}"), "STA-NEXT").await?;
        }
        Ok(count)
    }

    /// Scans and returns what was found, strongest first. The radio cannot scan while it is
    /// the hotspot on most chips; the results then are those of the last scan.
    pub async fn scan(&self) -> Result<Vec<Seen>, SupplicantError> {
        // FAIL-BUSY: a scan is already running; its results come all the same.
        let started = self.ask("SCAN".into(), "SCAN").await?;
        if started.trim() == "OK" {
            tokio::time::sleep(SCAN_TIME).await;
        }
        Ok(wpa::scan_results(&self.ask("SCAN_RESULTS".into(), "SCAN_RESULTS").await?))
    }

    /// Sends `command`; `name` is how errors call it (no secret values).
    async fn ask(&self, command: String, name: &str) -> Result<String, SupplicantError> {
        let (dir, interface) = (self.ctrl_dir.clone(), self.interface.clone());
        let answer = tokio::task::spawn_blocking(move || super::wpa_ctrl::request(&dir, &interface, &command))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
        answer.map_err(|source| SupplicantError::Socket { path: self.ctrl_dir.join(&self.interface), source }).inspect_err(|e| {
            tracing::trace!("wpa_supplicant `{name}`: {e}");
        })
    }

    async fn ok(&self, command: String, name: &str) -> Result<(), SupplicantError> {
        let answer = self.ask(command, name).await?;
        if answer.trim() == "OK" {
            Ok(())
        } else {
            Err(SupplicantError::Refused { command: name.to_owned(), answer: answer.trim().to_owned() })
        }
    }
}
