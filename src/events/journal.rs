//! The bus as outside clients hear it: every event numbered, timed and versioned, the latest
//! [`KEEP`] kept so a client that reconnects gets what it missed (or is told to start over).
//!
//! [`Journal`] is the sans-IO ring; [`Recorder`] feeds it from the bus and passes each numbered
//! event on to live listeners. A listener [`Recorder::listen`]s under the journal's lock, so no
//! event falls between what it replays and what it hears live.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use super::{Bus, Event};

/// The wire format's version, in every message.
pub const VERSION: u32 = 1;
/// Events kept for replay: at the stats rate of 8 cameras, about 4 minutes.
pub const KEEP: usize = 1024;
/// Events a live listener may fall behind by before it is dropped.
pub const BACKLOG: usize = 256;

/// An event as clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct Numbered {
    pub v: u32,
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

/// What a client that last saw `seq` should get.
#[derive(Debug, PartialEq)]
pub enum Replay<T> {
    /// The events after it, in order (perhaps none).
    Missed(Vec<T>),
    /// They are no longer kept (or `seq` is from before a restart): start from a snapshot.
    Resync,
}

/// The latest events, numbered from 1.
#[derive(Debug)]
pub struct Journal {
    kept: VecDeque<Numbered>,
    next: u64,
    keep: usize,
}

impl Journal {
    pub fn new(keep: usize) -> Journal {
        Journal { kept: VecDeque::with_capacity(keep), next: 1, keep }
    }

    /// Numbers and keeps `event`.
    pub fn record(&mut self, at: DateTime<Utc>, event: Event) -> Numbered {
        let numbered = Numbered { v: VERSION, seq: self.next, at, event };
        self.next += 1;
        if self.kept.len() == self.keep {
            self.kept.pop_front();
        }
        self.kept.push_back(numbered.clone());
        numbered
    }

    /// The number of the latest event (0 before any).
    pub fn last(&self) -> u64 {
        self.next - 1
    }

    /// What a client that last saw `seq` missed.
    pub fn since(&self, seq: u64) -> Replay<Numbered> {
        if seq > self.last() {
            // From another run of the daemon (numbers start again at 1 each start).
            return Replay::Resync;
        }
        let oldest = self.kept.front().map_or(self.next, |n| n.seq);
        if seq + 1 < oldest {
            return Replay::Resync;
        }
        Replay::Missed(self.kept.iter().filter(|n| n.seq > seq).cloned().collect())
    }
}

/// The journal shared by the daemon: fed from the bus, listened to by clients.
#[derive(Clone)]
pub struct Recorder {
    journal: Arc<Mutex<Journal>>,
    live: broadcast::Sender<Numbered>,
    run: Arc<str>,
}

impl Default for Recorder {
    fn default() -> Self {
        let mut id = [0u8; 4];
        let _ = getrandom::fill(&mut id);
        let run: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Recorder { journal: Arc::new(Mutex::new(Journal::new(KEEP))), live: broadcast::channel(BACKLOG).0, run: run.into() }
    }
}

impl Recorder {
    /// Records every event of `bus` until the bus closes. Subscribe before anything publishes.
    pub async fn run(self, mut events: broadcast::Receiver<Event>) {
        loop {
            match events.recv().await {
                Ok(event) => {
                    let mut journal = self.journal.lock().expect("journal lock never poisoned");
                    let numbered = journal.record(Utc::now(), event);
                    let _ = self.live.send(numbered);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!("event journal missed {n} events"),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Starts recording `bus` on a task of its own.
    pub fn start(bus: &Bus) -> Recorder {
        let recorder = Recorder::default();
        tokio::spawn(recorder.clone().run(bus.subscribe()));
        recorder
    }

    /// Names this run of the daemon: numbers start again at 1 in each, so a client's `since`
    /// means something only with the run it came from.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// For a client that last saw `since` in run `run` (none: a new client): what to replay,
    /// the number it is at, and the live events after that.
    pub fn listen(&self, since: Option<u64>, run: Option<&str>) -> (Replay<Numbered>, u64, broadcast::Receiver<Numbered>) {
        let journal = self.journal.lock().expect("journal lock never poisoned");
        let replay = match since {
            Some(_) if run.is_some_and(|r| r != &*self.run) => Replay::Resync,
            Some(seq) => journal.since(seq),
            None => Replay::Resync,
        };
        (replay, journal.last(), self.live.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(r: Replay<Numbered>) -> Option<Vec<u64>> {
        match r {
            Replay::Missed(v) => Some(v.into_iter().map(|n| n.seq).collect()),
            Replay::Resync => None,
        }
    }

    #[test]
    fn a_client_gets_what_it_missed_while_it_is_kept_and_is_told_to_resync_after() {
        let mut j = Journal::new(3);
        assert_eq!(j.last(), 0);
        assert_eq!(numbers(j.since(0)), Some(vec![]));
        for _ in 0..5 {
            j.record(Utc::now(), Event::DaemonReady);
        }
        assert_eq!(j.last(), 5);
        assert_eq!(numbers(j.since(5)), Some(vec![]), "up to date");
        assert_eq!(numbers(j.since(3)), Some(vec![4, 5]));
        assert_eq!(numbers(j.since(2)), Some(vec![3, 4, 5]), "the oldest kept is 3");
        assert_eq!(numbers(j.since(1)), None, "2 is gone");
        assert_eq!(numbers(j.since(99)), None, "a number from before a restart");
    }

    #[test]
    fn numbered_events_carry_version_sequence_time_and_the_event() {
        let mut j = Journal::new(3);
        let n = j.record(Utc::now(), Event::RecordingStarted { camera: "cam".into() });
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!((json["v"].as_u64(), json["seq"].as_u64()), (Some(1), Some(1)));
        assert_eq!((json["type"].as_str(), json["camera"].as_str()), (Some("recording_started"), Some("cam")));
        assert!(json["at"].is_string());
    }

    #[tokio::test]
    async fn a_listener_hears_every_event_after_its_replay_exactly_once() {
        let bus = Bus::default();
        let recorder = Recorder::start(&bus);
        tokio::task::yield_now().await;
        bus.publish(Event::DaemonReady);
        bus.publish(Event::SetupCompleted);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while recorder.journal.lock().unwrap().last() < 2 {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (replay, at, mut live) = recorder.listen(Some(1), Some(recorder.run_id()));
        assert_eq!((numbers(replay), at), (Some(vec![2]), 2));
        let (replay, _, _) = recorder.listen(Some(1), Some("another run"));
        assert_eq!(numbers(replay), None, "numbers of another run mean nothing here");
        bus.publish(Event::SetupRequired);
        let next = live.recv().await.unwrap();
        assert_eq!(next.seq, 3);
    }
}
