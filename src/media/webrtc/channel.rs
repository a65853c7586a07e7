//! A WHEP viewer's data channel. The viewer opens it (its offer has an `m=application`
//! section); webrtcbin hands it over, and this side turns it into a queue of incoming text
//! and sends that refuse rather than pile up, for the protocol that runs over it
//! (`web::datachannel`). Nothing here knows what the messages mean.
//!
//! It also tells when the newest frame sent to this viewer was captured, by the device's
//! clock, with that frame's RTP timestamp: a player that knows which RTP timestamp it shows
//! can work out glass-to-glass latency.

use chrono::{DateTime, Utc};
use gst::glib;
use gst::prelude::*;
use tokio::sync::mpsc;

use crate::media::MediaClock;

/// Longest text message taken from a viewer; longer ones are dropped.
pub const MAX_INCOMING: usize = 1024;
/// Messages from a viewer waiting to be handled; more are dropped.
const INCOMING_QUEUE: usize = 16;
/// Bytes waiting in the channel beyond which sends are refused (a viewer that stopped
/// reading, or a link slower than what is sent).
const MAX_BUFFERED: u64 = 1024 * 1024;

/// The newest frame sent to a viewer: its RTP timestamp and when it was captured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTime {
    pub rtp_timestamp: u32,
    pub captured_at: DateTime<Utc>,
}

/// A viewer's open data channel.
pub struct ChannelLink {
    /// Text messages from the viewer, in order; ends when the channel closes.
    pub incoming: mpsc::Receiver<String>,
    channel: gst_webrtc::WebRTCDataChannel,
    pay: gst::Element,
    clock: MediaClock,
}

/// What a viewer's session does with a data channel it opens.
pub type ChannelHandler = Box<dyn FnOnce(ChannelLink) + Send>;

impl ChannelLink {
    /// Wraps a channel webrtcbin announced; `pay` is the viewer's payloader.
    pub(super) fn new(channel: gst_webrtc::WebRTCDataChannel, pay: gst::Element, clock: MediaClock) -> ChannelLink {
        let (tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let text = tx.clone();
        channel.connect_on_message_string(move |_, message| {
            if let Some(message) = message.filter(|m| m.len() <= MAX_INCOMING) {
                let _ = text.try_send(message.to_owned());
            }
        });
        // The queue ends (the protocol task stops) when the channel closes or fails; the
        // senders live in these handlers, which go with the channel.
        let closed = std::sync::Mutex::new(Some(tx));
        channel.connect_on_close(move |_| {
            closed.lock().expect("close lock never poisoned").take();
        });
        ChannelLink { incoming, channel, pay, clock }
    }

    /// Waits (a few seconds at most) until the channel is open; false if it never opens.
    pub async fn opened(&self) -> bool {
        for _ in 0..100 {
            match self.channel.ready_state() {
                gst_webrtc::WebRTCDataChannelState::Open => return true,
                gst_webrtc::WebRTCDataChannelState::Connecting => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                _ => return false,
            }
        }
        false
    }

    /// Whether the session is still there: the channel not closed and the viewer's pipeline
    /// not stopped (a session torn down does not always close its channel first).
    pub fn alive(&self) -> bool {
        let open =
            matches!(self.channel.ready_state(), gst_webrtc::WebRTCDataChannelState::Open | gst_webrtc::WebRTCDataChannelState::Connecting);
        open && self.pay.current_state() != gst::State::Null
    }

    /// Sends a text message; false when the channel is closed or backed up.
    pub fn send_text(&self, text: &str) -> bool {
        self.sendable() && self.channel.send_string_full(Some(text)).is_ok()
    }

    /// Sends a binary message; false when the channel is closed or backed up.
    pub fn send_bytes(&self, bytes: &[u8]) -> bool {
        self.sendable() && self.channel.send_data_full(Some(&glib::Bytes::from(bytes))).is_ok()
    }

    fn sendable(&self) -> bool {
        self.channel.ready_state() == gst_webrtc::WebRTCDataChannelState::Open && self.channel.buffered_amount() <= MAX_BUFFERED
    }

    /// The newest frame the viewer's payloader sent, once it sent one.
    pub fn newest_frame(&self) -> Option<FrameTime> {
        let stats = self.pay.property::<gst::Structure>("stats");
        let rtp_timestamp = stats.get::<u32>("timestamp").ok()?;
        // The payloader's running time of its newest buffer, in RTP clock units.
        let running = stats.get::<u64>("running-time").ok().filter(|t| *t != u64::MAX && *t > 0)?;
        let rate = u64::from(stats.get::<u32>("clock-rate").ok().filter(|r| *r > 0)?);
        let running = gst::ClockTime::from_nseconds((u128::from(running) * 1_000_000_000 / u128::from(rate)) as u64);
        Some(FrameTime { rtp_timestamp, captured_at: self.clock.wall_time(running) })
    }
}
