//! The network shell: finds the Wi-Fi interface, hands wpa_supplicant the known networks and
//! the hotspot, watches whether the device is reachable, and opens and closes the setup
//! hotspot as [`Policy`] decides, with the captive DNS beside it, and offers `lookout.local`
//! for the device's current address ([`Alias`]). It publishes what happened
//! on the bus (`hotspot_opened`, `wifi_joined`…) and keeps a [`View`] for the page.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::alias::{self, Alias};
use super::hotspot::{self, Input, Policy};
use super::supplicant::{HotspotNetwork, Networks, Supplicant};
use super::wpa::Seen;
use super::{captive, links, names};
use crate::config::{Live, NetworkSystem};
use crate::events::{Bus, Event};

/// How often the links and wpa_supplicant are looked at when nothing else wakes the shell.
const POLL: Duration = Duration::from_secs(2);

/// What the page shows of the Wi-Fi and the hotspot.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// The Wi-Fi interface driven; none on a device without a radio.
    pub interface: Option<String>,
    /// wpa_supplicant answers for it.
    pub supplicant: bool,
    /// The network joined, once it gave an address.
    pub joined: Option<String>,
    pub hotspot: HotspotView,
    /// The network last chosen on the setup page, and how joining it went.
    pub setup: Option<SetupView>,
    /// The last thing that went wrong driving the radio.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HotspotView {
    pub open: bool,
    /// `Lookout-XXXX`, once the radio is known.
    pub ssid: Option<String>,
    /// It asks for the passphrase of `[network.hotspot]`.
    pub protected: bool,
    pub clients: usize,
    /// The device's address on it, where the setup page is.
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetupView {
    pub ssid: String,
    /// `joining`, `joined` or `failed`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

enum Command {
    Scan(oneshot::Sender<Result<Vec<Seen>, String>>),
    SetupDone { ssid: String },
}

/// The handle the web server holds.
pub struct Service {
    view: Mutex<View>,
    commands: mpsc::Sender<Command>,
}

impl Service {
    /// Starts the shell; it stops with `stop`. The system paths are taken once, from `live`'s
    /// config at start.
    pub fn start(live: Live, bus: &Bus, stop: &CancellationToken) -> Arc<Service> {
        let (commands, receiver) = mpsc::channel(8);
        let system = live.get().network.system.clone();
        let view = View {
            interface: None,
            supplicant: false,
            joined: None,
            hotspot: HotspotView { open: false, ssid: None, protected: false, clients: 0, address: system.hotspot_address },
            setup: None,
            error: None,
        };
        let service = Arc::new(Service { view: Mutex::new(view), commands });
        let shell = Shell {
            service: service.clone(),
            live,
            bus: bus.clone(),
            system,
            radio: None,
            networks: None,
            handed: None,
            policy: None,
            usable: None,
            dns: None,
            setup: None,
            complained: false,
            wifi_address: None,
            alias: Alias::default(),
        };
        tokio::spawn(shell.run(receiver, bus.subscribe(), stop.clone()));
        service
    }

    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The device's address on its hotspot while the hotspot is open: where a phone's
    /// connectivity check is sent (the captive portal).
    pub fn captive_address(&self) -> Option<Ipv4Addr> {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        view.hotspot.open.then_some(view.hotspot.address)
    }

    /// The networks in range, strongest first (while the hotspot is open, those of the scan
    /// before it opened).
    pub async fn scan(&self) -> Result<Vec<Seen>, String> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Scan(tx)).await.map_err(|_| "the network service has stopped".to_owned())?;
        rx.await.map_err(|_| "the network service has stopped".to_owned())?
    }

    /// The setup page saved `ssid` (the settings already hold it): close the hotspot and join.
    pub async fn setup_done(&self, ssid: String) {
        let _ = self.commands.send(Command::SetupDone { ssid }).await;
    }

    fn update(&self, change: impl FnOnce(&mut View)) {
        change(&mut self.view.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The radio found, and wpa_supplicant for it.
#[derive(Clone)]
struct Radio {
    interface: String,
    ssid: String,
    supplicant: Supplicant,
}

struct Shell {
    service: Arc<Service>,
    live: Live,
    bus: Bus,
    system: NetworkSystem,
    radio: Option<Radio>,
    /// The ids of what wpa_supplicant was handed; `None`: hand it everything (again).
    networks: Option<Networks>,
    /// A digest of what was handed, so that a settings change that leaves the Wi-Fi as it was
    /// (or one already handed over by the setup page) does not drop the network joined.
    handed: Option<u64>,
    policy: Option<Policy>,
    usable: Option<bool>,
    dns: Option<CancellationToken>,
    /// The network chosen on the setup page and when.
    setup: Option<(String, Instant)>,
    /// wpa_supplicant's absence was logged.
    complained: bool,
    /// The Wi-Fi's address while joined.
    wifi_address: Option<Ipv4Addr>,
    alias: Alias,
}

impl Shell {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: tokio::sync::broadcast::Receiver<Event>,
        stop: CancellationToken,
    ) {
        loop {
            // The cable's addresses, read once a round: for the hotspot's decision and the alias.
            let wired = wired_addresses(&self.system.sys);
            self.step(!wired.is_empty()).await;
            let hotspot = self.policy.as_ref().is_some_and(Policy::is_open).then_some(self.system.hotspot_address);
            let wired_v4 = wired.iter().find_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            });
            self.alias.follow(alias::choose(wired_v4, self.wifi_address, hotspot));
            let now = Instant::now();
            let wake = self.policy.as_ref().and_then(Policy::deadline).map_or(POLL, |d| d.saturating_duration_since(now).min(POLL));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wake) => {}
                Some(command) = commands.recv() => self.command(command).await,
                event = events.recv() => match event {
                    Ok(e) if e.changes("network") => {
                        if self.handed != Some(wifi_digest(&self.live.get().network)) {
                            self.networks = None;
                        }
                        self.ask_for_system_apply();
                    }
                    Ok(e) => {
                        if let Some(input) = hotspot_input(&e) {
                            let action = self.policy.as_mut().and_then(|p| p.handle(Instant::now(), input));
                            self.act(action, "").await;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    _ => {}
                },
            }
        }
        if let Some(dns) = self.dns.take() {
            dns.cancel();
        }
    }

    /// Asks `lookout-network.service` (root) to apply what the daemon cannot: the host name,
    /// time servers and fixed addresses.
    fn ask_for_system_apply(&self) {
        let path = &self.system.apply_request;
        let stamp = format!("{}\n", chrono::Utc::now().to_rfc3339());
        if let Err(e) = std::fs::write(path, stamp) {
            // Off the appliance (a development machine) nobody listens there.
            tracing::debug!("cannot ask for the network settings to be applied ({}): {e}", path.display());
        }
    }

    /// One look at the system, and what follows from it; `wired`: a cable gives a network.
    async fn step(&mut self, wired: bool) {
        if self.radio.is_none() {
            self.radio = self.find_radio();
            let Some(radio) = &self.radio else { return };
            let config = self.live.get();
            self.policy = Some(Policy::new(config.network.hotspot.clone(), !config.network.wifi.networks.is_empty(), Instant::now()));
            self.service.update(|v| {
                v.interface = Some(radio.interface.clone());
                v.hotspot.ssid = Some(radio.ssid.clone());
            });
        }
        let Some(radio) = self.radio.clone() else { return };
        if let Err(e) = radio.supplicant.alive().await {
            if !self.complained {
                tracing::warn!(interface = %radio.interface, "Wi-Fi and the setup hotspot wait for wpa_supplicant: {e}");
                self.complained = true;
            }
            self.networks = None;
            self.service.update(|v| v.supplicant = false);
            return;
        }
        self.complained = false;
        if self.networks.is_none() && !self.configure().await {
            return;
        }
        let status = match radio.supplicant.status().await {
            Ok(s) => s,
            Err(e) => return self.failed(e.to_string()),
        };
        let joined = status.joined_with_address().then(|| status.ssid.clone().unwrap_or_default());
        self.wifi_address = status.ip_address.as_deref().and_then(|a| a.parse().ok()).filter(|_| joined.is_some());
        let was = self.service.view().joined;
        if joined != was {
            match (&joined, was) {
                (Some(ssid), _) => {
                    tracing::info!(interface = %radio.interface, ssid, "Wi-Fi joined");
                    self.bus.publish(Event::WifiJoined { ssid: ssid.clone() });
                }
                (None, Some(ssid)) => {
                    tracing::warn!(interface = %radio.interface, ssid, "Wi-Fi lost; trying the known networks");
                    self.bus.publish(Event::WifiLost { ssid });
                }
                (None, None) => {}
            }
        }
        self.follow_setup(joined.as_deref(), &status.state);
        self.service.update(|v| {
            v.supplicant = true;
            v.joined = joined.clone();
        });
        let usable = joined.is_some() || wired;
        let now = Instant::now();
        if self.usable != Some(usable) {
            self.usable = Some(usable);
            let action = self.policy.as_mut().and_then(|p| p.handle(now, Input::Network { usable }));
            self.act(action, "a network is usable").await;
        }
        if self.policy.as_ref().is_some_and(Policy::is_open) {
            let clients = radio.supplicant.stations().await.unwrap_or(0);
            self.service.update(|v| v.hotspot.clients = clients);
            let action = self.policy.as_mut().and_then(|p| p.handle(now, Input::Clients(clients)));
            self.act(action, "").await;
        }
        let action = self.policy.as_mut().and_then(|p| p.tick(now));
        self.act(action, "its window ended, or the radio looks for the known networks").await;
    }

    /// The first wireless interface, with the name its MAC gives the hotspot.
    fn find_radio(&self) -> Option<Radio> {
        let dir = links::first_wireless(&self.system.sys)?;
        let interface = dir.file_name()?.to_string_lossy().into_owned();
        let mac = names::interface_mac(&dir)?;
        tracing::info!(interface, "Wi-Fi radio found");
        let supplicant = Supplicant::new(self.system.ctrl_dir.clone(), interface.clone());
        Some(Radio { interface, ssid: names::ssid(mac), supplicant })
    }

    /// Hands wpa_supplicant the networks and the hotspot of the config in force.
    async fn configure(&mut self) -> bool {
        let Some(radio) = self.radio.clone() else { return false };
        let config = self.live.get();
        let hotspot = &config.network.hotspot;
        let handed = HotspotNetwork { ssid: &radio.ssid, passphrase: hotspot.passphrase.as_deref() };
        match radio.supplicant.configure(&config.network.wifi, hotspot.enabled.then_some(handed)).await {
            Ok(networks) => {
                self.handed = Some(wifi_digest(&config.network));
                tracing::info!(interface = %radio.interface, networks = networks.known.len(), "Wi-Fi networks handed to wpa_supplicant");
                let reopen = self.policy.as_ref().is_some_and(Policy::is_open);
                if let Some(policy) = &mut self.policy {
                    policy.set_known_networks(!networks.known.is_empty());
                }
                if reopen && let Err(e) = radio.supplicant.open_hotspot(&networks).await {
                    self.failed(e.to_string());
                }
                self.networks = Some(networks);
                self.service.update(|v| {
                    v.error = None;
                    v.hotspot.protected = hotspot.passphrase.is_some();
                });
                true
            }
            Err(e) => {
                self.failed(e.to_string());
                false
            }
        }
    }

    async fn act(&mut self, action: Option<hotspot::Action>, reason: &str) {
        let (Some(action), Some(radio), Some(networks)) = (action, self.radio.clone(), self.networks.clone()) else { return };
        match action {
            hotspot::Action::Open => {
                if let Err(e) = radio.supplicant.open_hotspot(&networks).await {
                    return self.failed(e.to_string());
                }
                tracing::warn!(interface = %radio.interface, ssid = %radio.ssid, "no usable network: setup hotspot open");
                let stop = CancellationToken::new();
                tokio::spawn(captive_dns(self.system.hotspot_dns, self.system.hotspot_address, stop.clone()));
                if let Some(old) = self.dns.replace(stop) {
                    old.cancel();
                }
                self.service.update(|v| v.hotspot.open = true);
                self.bus.publish(Event::HotspotOpened { ssid: radio.ssid.clone() });
            }
            hotspot::Action::Close => {
                if let Err(e) = radio.supplicant.close_hotspot(&networks).await {
                    self.failed(e.to_string());
                }
                self.hotspot_closed(reason);
            }
        }
    }

    fn hotspot_closed(&mut self, reason: &str) {
        if let Some(dns) = self.dns.take() {
            dns.cancel();
        }
        tracing::info!(reason, "setup hotspot closed");
        self.service.update(|v| {
            v.hotspot.open = false;
            v.hotspot.clients = 0;
        });
        self.bus.publish(Event::HotspotClosed { reason: reason.to_owned() });
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Scan(reply) => match &self.radio {
                Some(radio) => {
                    let supplicant = radio.supplicant.clone();
                    tokio::spawn(async move { reply.send(supplicant.scan().await.map_err(|e| e.to_string())) });
                }
                None => {
                    let _ = reply.send(Err("this device has no Wi-Fi radio".into()));
                }
            },
            Command::SetupDone { ssid } => {
                tracing::info!(ssid, "setup page chose a network; joining it");
                let was_open = self.policy.as_ref().is_some_and(Policy::is_open);
                let action = self.policy.as_mut().and_then(|p| p.handle(Instant::now(), Input::SetupDone));
                self.setup = Some((ssid.clone(), Instant::now()));
                self.service.update(|v| v.setup = Some(SetupView { ssid, state: "joining", error: None }));
                // Handing the networks over again takes the hotspot down and joins. Should that
                // fail, the next look hands them over again, and the policy, closed now, does
                // not reopen the hotspot: the page's view follows the policy either way.
                self.networks = None;
                self.configure().await;
                if was_open && action == Some(hotspot::Action::Close) {
                    self.hotspot_closed("the setup page chose a network");
                }
            }
        }
    }

    /// Whether the network chosen on the setup page was joined, or not in time.
    fn follow_setup(&mut self, joined: Option<&str>, state: &str) {
        let Some((ssid, since)) = &self.setup else { return };
        let outcome = if joined == Some(ssid.as_str()) {
            Some(SetupView { ssid: ssid.clone(), state: "joined", error: None })
        } else if since.elapsed() >= hotspot::SETUP_JOIN_WITHIN {
            let why = match state {
                "4WAY_HANDSHAKE" | "GROUP_HANDSHAKE" => "the passphrase was refused",
                "COMPLETED" => "no address from the network's DHCP server",
                _ => "the network was not found or did not answer",
            };
            Some(SetupView {
                ssid: ssid.clone(),
                state: "failed",
                error: Some(format!("could not join within {} s: {why}", hotspot::SETUP_JOIN_WITHIN.as_secs())),
            })
        } else {
            None
        };
        if let Some(outcome) = outcome {
            self.setup = None;
            self.service.update(|v| v.setup = Some(outcome));
        }
    }

    fn failed(&mut self, error: String) {
        tracing::warn!("Wi-Fi: {error}");
        self.networks = None;
        self.service.update(|v| v.error = Some(error));
    }
}

/// What wpa_supplicant is handed of `network`, as a digest (kept in memory only).
/// What an event tells the hotspot policy: a press of the device's button brings back a
/// hotspot whose window ended.
fn hotspot_input(event: &Event) -> Option<Input> {
    matches!(event, Event::ButtonPressed { .. }).then_some(Input::ButtonPressed)
}

fn wifi_digest(network: &crate::config::Network) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    network.wifi.country.hash(&mut h);
    for n in &network.wifi.networks {
        (&n.ssid, &n.psk, n.hidden).hash(&mut h);
    }
    (&network.hotspot.passphrase, network.hotspot.enabled).hash(&mut h);
    h.finish()
}

/// The addresses a cable gives the device: those of wired links that are up, other than
/// link-local ones.
fn wired_addresses(sys: &Path) -> Vec<IpAddr> {
    links::read(sys, Path::new("/nonexistent"), links::system_addresses(), |_| None)
        .into_iter()
        .filter(|l| l.kind == links::Kind::Wired && l.up)
        .flat_map(|l| l.addresses)
        .filter(|a| match a {
            IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_loopback(),
            IpAddr::V6(v6) => !v6.is_unicast_link_local() && !v6.is_loopback(),
        })
        .collect()
}

/// The hotspot's DNS: every name is the device, so phones find the setup page. It binds
/// once the hotspot's address is on the interface (networkd sets it a moment after the
/// access point starts).
async fn captive_dns(at: SocketAddr, device: Ipv4Addr, stop: CancellationToken) {
    let socket = loop {
        match tokio::net::UdpSocket::bind(at).await {
            Ok(socket) => break socket,
            Err(e) => {
                tracing::trace!("captive DNS cannot bind {at} yet: {e}");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    };
    tracing::info!("captive DNS answers on {}", socket.local_addr().unwrap_or(at));
    // One byte more than the largest query answered, so an oversized one is seen as such.
    let mut buffer = [0u8; 513];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            received = socket.recv_from(&mut buffer) => {
                let Ok((n, from)) = received else { continue };
                if let Some(reply) = captive::answer(&buffer[..n], device) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_button_press_is_what_brings_the_hotspot_back() {
        assert_eq!(hotspot_input(&Event::ButtonPressed { press: "short".into() }), Some(Input::ButtonPressed));
        assert_eq!(hotspot_input(&Event::ButtonPressed { press: "long".into() }), Some(Input::ButtonPressed));
        assert_eq!(hotspot_input(&Event::DaemonReady), None);
        assert_eq!(hotspot_input(&Event::WifiLost { ssid: "Home".into() }), None);
    }
}
