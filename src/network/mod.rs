//! The device on the local network: the Wi-Fi it joins, the setup hotspot it opens when it
//! has no network, and the rollback of network changes that cut it off.
//!
//! The decisions are sans-IO and tested with fake time: [`hotspot::Policy`] says when the
//! hotspot opens and closes, [`rollback::Rollback`] when an unconfirmed change is undone.
//! [`service::Service`] is the shell that applies them through wpa_supplicant (client and
//! hotspot alike); systemd-networkd gives the addresses. `docs/NETWORK.md` has the why.

pub mod adverts;
pub mod alias;
pub mod captive;
pub mod hotspot;
pub mod links;
pub mod names;
pub mod rollback;
pub mod service;
pub mod supplicant;
pub mod system;
pub mod wpa;
pub mod wpa_ctrl;

pub use service::Service;
