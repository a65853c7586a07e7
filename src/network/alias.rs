//! `lookout.local` beside the device's own `lookout-XXXX.local`, while no other device claims
//! it: the short name a newcomer types. Avahi publishes it (`avahi-publish -a`, which probes
//! for the name first and gives up when another device answers to it); the network service
//! keeps one publisher running for the device's current address.

use std::net::Ipv4Addr;

/// The name every Lookout device offers while it is the only one.
pub const NAME: &str = "lookout.local";

/// What the alias is doing.
#[derive(Debug)]
pub struct Alias {
    /// `avahi-publish` (from avahi-utils).
    program: &'static str,
    publisher: Option<tokio::process::Child>,
    /// The address published, or last tried.
    address: Option<Ipv4Addr>,
    /// The publisher exited: another device has the name (or Avahi is missing); not tried
    /// again until the address changes.
    gave_up: bool,
}

impl Default for Alias {
    fn default() -> Self {
        Alias::with_program("avahi-publish")
    }
}

impl Alias {
    /// An alias published by `program` (taking avahi-publish's arguments).
    pub fn with_program(program: &'static str) -> Alias {
        Alias { program, publisher: None, address: None, gave_up: false }
    }

    /// Publishes `address` (the device's address people reach it at now; none: unpublish).
    pub fn follow(&mut self, address: Option<Ipv4Addr>) {
        if address != self.address {
            self.publisher = None; // kill_on_drop ends the old one
            self.address = address;
            self.gave_up = false;
        }
        if let Some(child) = &mut self.publisher
            && let Ok(Some(status)) = child.try_wait()
        {
            tracing::info!(
                "{NAME} is not this device's (another device answers to it, or Avahi is not running: {status}); it stays reachable by its own name"
            );
            self.publisher = None;
            self.gave_up = true;
        }
        let Some(address) = self.address else { return };
        if self.publisher.is_some() || self.gave_up {
            return;
        }
        let spawned = super::adverts::publisher(self.program, &["-a", "-R", NAME, &address.to_string()]);
        match spawned {
            Ok(child) => {
                tracing::info!(%address, "offering {NAME} as well");
                self.publisher = Some(child);
            }
            Err(e) => {
                tracing::debug!("cannot offer {NAME} (avahi-publish: {e})");
                self.gave_up = true;
            }
        }
    }
}

/// The address to publish: a cable's first, else the Wi-Fi's, else the hotspot's.
pub fn choose(wired: Option<Ipv4Addr>, wifi: Option<Ipv4Addr>, hotspot: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    wired.or(wifi).or(hotspot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cable_wins_then_the_wifi_then_the_hotspot() {
        let (a, b, c) = (Ipv4Addr::new(192, 168, 1, 5), Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(192, 168, 4, 1));
        assert_eq!(choose(Some(a), Some(b), Some(c)), Some(a));
        assert_eq!(choose(None, Some(b), Some(c)), Some(b));
        assert_eq!(choose(None, None, Some(c)), Some(c));
        assert_eq!(choose(None, None, None), None);
    }

    #[tokio::test]
    async fn a_publisher_that_cannot_start_or_ends_is_not_retried_until_the_address_changes() {
        let here = Ipv4Addr::new(10, 0, 0, 5);
        let mut missing = Alias::with_program("/nonexistent/avahi-publish");
        missing.follow(Some(here));
        assert!(missing.gave_up && missing.publisher.is_none());
        missing.follow(Some(Ipv4Addr::new(10, 0, 0, 6)));
        assert!(missing.gave_up, "tried again for a new address (and failed again)");
        missing.follow(None);
        assert!(!missing.gave_up && missing.address.is_none(), "nothing to publish");

        // A publisher that ends at once stands for one that lost the name to another device.
        let mut taken = Alias::with_program("false");
        taken.follow(Some(here));
        assert!(taken.publisher.is_some());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !taken.gave_up {
            assert!(std::time::Instant::now() < deadline, "the ended publisher was never noticed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            taken.follow(Some(here));
        }
        assert!(taken.publisher.is_none());
    }
}
