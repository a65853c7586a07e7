//! Undoing a network change that cut the device off. Sans-IO.
//!
//! A change made from the page (Wi-Fi networks, a static address, the host name) is applied
//! at once, and the page must then confirm it from where it reaches the device afterwards
//! within [`CONFIRM_WITHIN`]. A change nobody confirms — the owner typed a wrong address and
//! lost the device — is undone by itself: [`Rollback::tick`] hands back the settings that
//! worked. Changes made while one waits for confirmation keep the last settings that worked,
//! not an intermediate one nobody confirmed either.

use std::time::{Duration, Instant};

/// How long a change waits for confirmation: long enough to rejoin a Wi-Fi, get a DHCP lease
/// and reload the page at the new address.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(120);

/// Names one applied change, for its confirmation (the number the page sends back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(pub u64);

/// The rollback timer of one device's network settings `S`.
#[derive(Debug)]
pub struct Rollback<S> {
    /// The settings that last worked, and when they come back unless confirmed.
    pending: Option<(S, Instant, Ticket)>,
    issued: u64,
    window: Duration,
}

impl<S> Default for Rollback<S> {
    fn default() -> Self {
        Rollback::with_window(CONFIRM_WITHIN)
    }
}

impl<S> Rollback<S> {
    /// A rollback that waits `window` for confirmation ([`CONFIRM_WITHIN`] on a device).
    pub fn with_window(window: Duration) -> Self {
        Rollback { pending: None, issued: 0, window }
    }

    /// How long a change waits for confirmation.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// A change was applied at `now`; `previous` are the settings before it.
    pub fn applied(&mut self, now: Instant, previous: S) -> Ticket {
        self.issued += 1;
        let ticket = Ticket(self.issued);
        let known_good = match self.pending.take() {
            Some((good, _, _)) => good,
            None => previous,
        };
        self.pending = Some((known_good, now + self.window, ticket));
        ticket
    }

    /// The page reached the device after the change `ticket`: it stays. A ticket of an earlier
    /// change is refused (the latest one must be confirmed).
    pub fn confirm(&mut self, ticket: Ticket) -> bool {
        match &self.pending {
            Some((_, _, t)) if *t == ticket => {
                self.pending = None;
                true
            }
            _ => false,
        }
    }

    /// The change waiting for confirmation.
    pub fn ticket(&self) -> Option<Ticket> {
        self.pending.as_ref().map(|(_, _, t)| *t)
    }

    /// When [`Rollback::tick`] is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, at, _)| *at)
    }

    /// The settings to restore, once the deadline has passed unconfirmed.
    pub fn tick(&mut self, now: Instant) -> Option<S> {
        match &self.pending {
            Some((_, at, _)) if now >= *at => self.pending.take().map(|(good, _, _)| good),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_change_is_undone_and_a_confirmed_one_stays() {
        let t0 = Instant::now();
        let mut r = Rollback::default();
        let ticket = r.applied(t0, "dhcp");
        assert_eq!(r.tick(t0 + CONFIRM_WITHIN - Duration::from_secs(1)), None);
        assert_eq!(r.tick(t0 + CONFIRM_WITHIN), Some("dhcp"), "back to what worked");
        assert!(!r.confirm(ticket), "too late");
        assert_eq!(r.deadline(), None);

        let ticket = r.applied(t0, "dhcp");
        assert!(r.confirm(ticket));
        assert_eq!(r.tick(t0 + CONFIRM_WITHIN * 2), None);
    }

    #[test]
    fn changes_in_a_row_fall_back_to_the_last_settings_that_worked() {
        let t0 = Instant::now();
        let mut r = Rollback::default();
        let first = r.applied(t0, "dhcp");
        let second = r.applied(t0 + Duration::from_secs(60), "static 10.0.0.9");
        assert!(!r.confirm(first), "only the latest change can be confirmed");
        assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(60) + CONFIRM_WITHIN), "the timer starts again");
        assert_eq!(r.tick(t0 + Duration::from_secs(60) + CONFIRM_WITHIN), Some("dhcp"));
        assert!(!r.confirm(second));
    }
}
