//! The device itself: health readings (and, to come, the status LED, the button and the
//! systemd watchdog). No GStreamer and no HTTP here.

pub mod health;
