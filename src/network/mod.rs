//! The device on the local network: the Wi-Fi it joins, the setup hotspot it opens when it
//! has no network, and the rollback of network changes that cut it off.
//!
//! The decisions are sans-IO and tested with fake time: [`hotspot::Policy`] says when the
//! hotspot opens and closes, [`rollback::Rollback`] when an unconfirmed change is undone. The
//! shell that applies them to the system (the radio, DHCP, mDNS) is not built yet; see
//! `docs/NETWORK.md` for the plan.

pub mod captive;
pub mod hostapd;
pub mod hotspot;
pub mod links;
pub mod rollback;
pub mod wpa;
pub mod wpa_ctrl;
