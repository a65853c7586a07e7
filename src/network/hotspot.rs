//! When the setup hotspot opens and closes. Sans-IO: the shell feeds what it sees ([`Input`])
//! and the time, and does what [`Policy`] answers ([`Action`]); [`Policy::deadline`] says
//! when to call [`Policy::tick`] next.
//!
//! The rules, in the order a device meets them:
//! - After start-up the device waits `after` for a network (a cable's carrier and address, or
//!   a joined Wi-Fi); with none by then the hotspot opens.
//! - A network that worked and is lost opens the hotspot after the longer `again_after`
//!   (a router rebooting), while the device keeps trying its known networks.
//! - A Pi has one radio: while the hotspot is open and nobody is on it, it closes every
//!   [`RETRY_EVERY`] for [`RETRY_FOR`] so the radio can look for the known networks, then opens
//!   again if none was joined.
//! - A usable network closes the hotspot, unless a phone is on it (mid-setup); then it
//!   closes when the phone leaves or the setup is done.
//! - An open hotspot (no passphrase) closes for good after `open_for` without a client; a
//!   press of the device's button ([`Input::ButtonPressed`]) or a restart opens it again. A
//!   hotspot with a passphrase stays as long as it is needed.

use std::time::{Duration, Instant};

use crate::config::Hotspot;

/// How often an open but unused hotspot steps aside so the radio can try the known networks.
pub const RETRY_EVERY: Duration = Duration::from_secs(120);
/// How long the radio gets to find and join a known network then (a WPA2 join and DHCP take
/// a few seconds on a Pi 4).
pub const RETRY_FOR: Duration = Duration::from_secs(20);

/// How long the radio gets to join the network chosen on the setup page before the hotspot
/// comes back (with the failure on the page): a WPA2 join and DHCP take a few seconds, a
/// router's slow DHCP up to half a minute, and a busy device more (the image test's emulated
/// one took over 45 s with a second one beside it). Coming back too early takes the radio
/// from a join about to succeed.
pub const SETUP_JOIN_WITHIN: Duration = Duration::from_secs(90);

/// What the shell saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Whether the device has a usable network now (checked on every change of link state).
    Network { usable: bool },
    /// How many clients are associated with the hotspot now.
    Clients(usize),
    /// The owner finished the setup page (a network was joined, or the setup was cancelled).
    SetupDone,
    /// A short press of the button (not wired to the button yet).
    ButtonPressed,
}

/// What the shell must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Open,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a network until the deadline, then opening.
    Waiting { until: Instant },
    /// A network is usable; the hotspot is closed.
    Connected,
    /// The hotspot is open since `since`; stepping aside to retry at `retry_at`.
    Open { since: Instant, retry_at: Instant },
    /// Closed for `RETRY_FOR` so the radio can try the known networks.
    Retrying { until: Instant, since: Instant },
    /// An open hotspot that outlived its window; only the button (or a restart) opens it.
    Expired,
    /// Turned off in the config.
    Disabled,
}

/// The hotspot's decisions for one device.
#[derive(Debug)]
pub struct Policy {
    settings: Hotspot,
    state: State,
    clients: usize,
    /// Whether any known network is configured (retrying needs something to try).
    known_networks: bool,
}

impl Policy {
    /// The policy at start-up (`now`).
    pub fn new(settings: Hotspot, known_networks: bool, now: Instant) -> Policy {
        let state = if settings.enabled { State::Waiting { until: now + settings.after } } else { State::Disabled };
        Policy { settings, state, clients: 0, known_networks }
    }

    /// The known networks changed (the setup page or the settings added or removed some).
    pub fn set_known_networks(&mut self, known: bool) {
        self.known_networks = known;
    }

    /// Whether the hotspot is open now.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// When [`Policy::tick`] has something to do, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } | State::Retrying { until, .. } => Some(until),
            // A phone on the hotspot holds it open: nothing is due until it leaves.
            State::Open { .. } if self.clients > 0 => None,
            State::Open { since, retry_at } => {
                let retry = self.known_networks.then_some(retry_at);
                match (self.window_end(since), retry) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Connected | State::Expired | State::Disabled => None,
        }
    }

    /// Handles what the shell saw at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) -> Option<Action> {
        match input {
            Input::Clients(n) => {
                let left = self.clients > 0 && n == 0;
                self.clients = n;
                if let State::Open { since, .. } = self.state {
                    // The open window counts from when the last client left.
                    if n > 0 || left {
                        self.state = State::Open { since: if left { now } else { since }, retry_at: now + RETRY_EVERY };
                    }
                }
                None
            }
            Input::Network { usable: true } => match self.state {
                State::Open { .. } if self.clients > 0 => None,
                State::Open { .. } => {
                    self.state = State::Connected;
                    Some(Action::Close)
                }
                State::Disabled => None,
                _ => {
                    self.state = State::Connected;
                    None
                }
            },
            Input::Network { usable: false } => match self.state {
                State::Connected => {
                    self.state = State::Waiting { until: now + self.settings.again_after };
                    None
                }
                _ => None,
            },
            Input::SetupDone => match self.state {
                State::Open { .. } => {
                    self.state = State::Waiting { until: now + SETUP_JOIN_WITHIN };
                    Some(Action::Close)
                }
                _ => None,
            },
            Input::ButtonPressed => match self.state {
                State::Expired | State::Waiting { .. } | State::Retrying { .. } => Some(self.open(now)),
                _ => None,
            },
        }
    }

    /// Acts on the deadlines that have passed by `now`.
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        match self.state {
            State::Waiting { until } | State::Retrying { until, .. } if now >= until => Some(self.open(now)),
            State::Open { since, retry_at } => {
                if self.clients == 0 && self.window_end(since).is_some_and(|end| now >= end) {
                    self.state = State::Expired;
                    return Some(Action::Close);
                }
                if self.clients == 0 && self.known_networks && now >= retry_at {
                    self.state = State::Retrying { until: now + RETRY_FOR, since };
                    return Some(Action::Close);
                }
                None
            }
            _ => None,
        }
    }

    fn open(&mut self, now: Instant) -> Action {
        // Opening again after a retry keeps the open window where it was.
        let since = match self.state {
            State::Retrying { since, .. } => since,
            _ => now,
        };
        self.state = State::Open { since, retry_at: now + RETRY_EVERY };
        Action::Open
    }

    /// When an open hotspot's window ends; none with a passphrase.
    fn window_end(&self, since: Instant) -> Option<Instant> {
        self.settings.passphrase.is_none().then(|| since + self.settings.open_for)
    }
}

#[cfg(test)]
mod tests;
