//! The device itself: the status LED, the button, health readings and the systemd
//! watchdog. No GStreamer and no HTTP here; state comes from and goes to the event bus.

pub mod button;
pub mod health;
pub mod led;
pub mod systemd;
