//! The push button: debounced; a short press and a long press (held 3-10 s, fired on
//! release) are each mapped in config to an [`Action`] published on the bus; held 10 s, it
//! asks for the owner-password reset (fired while held, and the LED then shows setup, so the
//! owner knows to let go). A long press fires on release so that a reset hold never reboots.
//!
//! [`Presses`] is sans-IO: raw level changes and the time in, presses out. [`run`] reads the
//! pin through `rppal` interrupts (on a Pi) and feeds it; [`supervise`] follows `[button]` in
//! the settings, taking a new pin or new actions while the daemon runs.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Button as ButtonConfig;
use crate::events::{Bus, Event};

/// A level must hold this long to count: contact bounce of tactile switches dies out within
/// ~5-10 ms; 30 ms leaves margin and is still far below what a person notices.
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// Held at least this long (and released before [`RESET_HOLD`]), a press is a long press.
pub const LONG_PRESS: Duration = Duration::from_secs(3);
/// Held this long, the press resets the owner's password (physical access is the proof).
pub const RESET_HOLD: Duration = Duration::from_secs(10);

/// A completed gesture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    Short,
    Long,
    /// Held [`RESET_HOLD`]: clear the owner password.
    Reset,
}

/// Debounces a button's level and classifies presses.
#[derive(Debug)]
pub struct Presses {
    raw: bool,
    raw_since: Instant,
    stable: bool,
    pressed_at: Option<Instant>,
    /// The reset fired during this press; its release fires nothing.
    reset_fired: bool,
}

impl Presses {
    /// A released button at `now`.
    pub fn new(now: Instant) -> Presses {
        Presses { raw: false, raw_since: now, stable: false, pressed_at: None, reset_fired: false }
    }

    /// The pin changed to `pressed` at `now`.
    pub fn edge(&mut self, now: Instant, pressed: bool) -> Vec<Press> {
        let out = self.poll(now);
        if pressed != self.raw {
            self.raw = pressed;
            self.raw_since = now;
        }
        out
    }

    /// Time passed; call at [`Presses::deadline`] at the latest.
    pub fn poll(&mut self, now: Instant) -> Vec<Press> {
        let mut out = Vec::new();
        if self.raw != self.stable && now.duration_since(self.raw_since) >= DEBOUNCE {
            self.stable = self.raw;
            if self.stable {
                self.pressed_at = Some(self.raw_since);
                self.reset_fired = false;
            } else if let Some(at) = self.pressed_at.take()
                && !self.reset_fired
            {
                out.push(if self.raw_since.duration_since(at) >= LONG_PRESS { Press::Long } else { Press::Short });
            }
        }
        if let Some(at) = self.pressed_at
            && !self.reset_fired
            && now.duration_since(at) >= RESET_HOLD
        {
            self.reset_fired = true;
            out.push(Press::Reset);
        }
        out
    }

    /// When [`Presses::poll`] next has something to decide.
    pub fn deadline(&self) -> Option<Instant> {
        if self.raw != self.stable {
            Some(self.raw_since + DEBOUNCE)
        } else {
            self.pressed_at.filter(|_| !self.reset_fired).map(|at| at + RESET_HOLD)
        }
    }
}

/// Why the button is not read.
#[derive(Debug, thiserror::Error)]
#[error("button on GPIO {pin}: {reason}")]
pub struct ButtonError {
    pin: u8,
    reason: String,
}

/// The button's pin, delivering raw levels (true = pressed) into a channel.
pub struct ButtonPin {
    _pin: Option<rppal::gpio::InputPin>,
    levels: tokio::sync::mpsc::UnboundedReceiver<bool>,
}

impl ButtonPin {
    /// A pin whose levels come from elsewhere (tests, or a backend other than rppal).
    pub fn from_levels(levels: tokio::sync::mpsc::UnboundedReceiver<bool>) -> ButtonPin {
        ButtonPin { _pin: None, levels }
    }

    /// Fails on anything that is not a Raspberry Pi, naming why.
    pub fn open(pin: u8, active_low: bool) -> Result<ButtonPin, ButtonError> {
        let fail = |e: rppal::gpio::Error| ButtonError { pin, reason: e.to_string() };
        let gpio = rppal::gpio::Gpio::new().map_err(fail)?;
        // Active low buttons short the pin to ground: pull it up so released reads high.
        let raw = gpio.get(pin).map_err(fail)?;
        let mut input = if active_low { raw.into_input_pullup() } else { raw.into_input_pulldown() };
        let (tx, levels) = tokio::sync::mpsc::unbounded_channel();
        input
            .set_async_interrupt(rppal::gpio::Trigger::Both, None, move |event| {
                let high = event.trigger == rppal::gpio::Trigger::RisingEdge;
                let _ = tx.send(high != active_low);
            })
            .map_err(fail)?;
        Ok(ButtonPin { _pin: Some(input), levels })
    }
}

/// Runs the button of the config in force, and again with its new pin or actions after each
/// change of `[button]` from the settings, until `shutdown`. `open` takes the pin (rppal's
/// [`ButtonPin::open`] on a device).
pub async fn supervise(
    live: crate::config::Live,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    bus: Bus,
    open: impl Fn(u8, bool) -> Result<ButtonPin, ButtonError>,
    shutdown: CancellationToken,
) {
    loop {
        let this_run = shutdown.child_token();
        let running = live.get().button.clone().and_then(|button| match open(button.pin, button.active_low) {
            Ok(pin) => Some(tokio::spawn(run(pin, button, bus.clone(), this_run.clone()))),
            Err(e) => {
                tracing::warn!("{e}; the button is disabled");
                None
            }
        });
        // Until `[button]` changes.
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(e) if e.changes("button") => break,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
        this_run.cancel();
        if let Some(task) = running {
            // The old pin is released before the new one is taken (it may be the same pin).
            let _ = task.await;
        }
        tracing::info!("button settings changed: following them");
    }
}

/// Publishes the configured action for each press until `shutdown`.
pub async fn run(mut pin: ButtonPin, config: ButtonConfig, bus: Bus, shutdown: CancellationToken) {
    let mut presses = Presses::new(Instant::now());
    loop {
        let deadline = presses.deadline();
        let found = tokio::select! {
            _ = shutdown.cancelled() => return,
            level = pin.levels.recv() => match level {
                Some(pressed) => presses.edge(Instant::now(), pressed),
                None => return,
            },
            _ = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            } => presses.poll(Instant::now()),
        };
        for press in found {
            dispatch(press, &config, &bus);
        }
    }
}

/// Publishes what `press` is mapped to, if anything.
pub fn dispatch(press: Press, config: &ButtonConfig, bus: &Bus) {
    let action = match press {
        Press::Short => config.actions.short,
        Press::Long => config.actions.long,
        Press::Reset => {
            tracing::warn!("button held {} s: resetting the owner password", RESET_HOLD.as_secs());
            bus.publish(Event::OwnerResetRequested { origin: "button (held 10 s)".into() });
            return;
        }
    };
    tracing::info!(?press, ?action, "button pressed");
    bus.publish(Event::ButtonPressed { press: format!("{press:?}").to_lowercase() });
    if let Some(action) = action {
        bus.publish(Event::ActionRequested { action, camera: None, origin: format!("button ({press:?} press)").to_lowercase() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ButtonActions;
    use crate::events::Action;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds (ms, level) edges, polling at every deadline in between, until `end_ms`.
    fn run_edges(edges: &[(u64, bool)], end_ms: u64) -> Vec<(u64, Press)> {
        let t0 = Instant::now();
        let mut p = Presses::new(t0);
        let mut out = Vec::new();
        let mut i = 0;
        let mut now = t0;
        while now <= t0 + ms(end_ms) {
            let next_edge = edges.get(i).map(|&(t, _)| t0 + ms(t));
            let next = match (next_edge, p.deadline()) {
                (Some(e), Some(d)) => e.min(d),
                (Some(e), None) => e,
                (None, Some(d)) => d,
                (None, None) => break,
            };
            if next > t0 + ms(end_ms) {
                break;
            }
            now = next;
            let found = if Some(now) == next_edge {
                i += 1;
                p.edge(now, edges[i - 1].1)
            } else {
                p.poll(now)
            };
            out.extend(found.into_iter().map(|f| ((now - t0).as_millis() as u64, f)));
        }
        out
    }

    #[test]
    fn a_clean_short_press_fires_on_release() {
        assert_eq!(run_edges(&[(100, true), (400, false)], 5000), vec![(430, Press::Short)]);
    }

    #[test]
    fn bounce_on_press_and_release_is_one_press() {
        let bouncy = [(100, true), (102, false), (104, true), (107, false), (108, true), (400, false), (403, true), (405, false)];
        assert_eq!(run_edges(&bouncy, 5000), vec![(435, Press::Short)]);
    }

    #[test]
    fn glitches_shorter_than_the_debounce_are_ignored() {
        assert_eq!(run_edges(&[(100, true), (110, false), (500, true), (520, false)], 5000), vec![]);
    }

    #[test]
    fn held_three_to_ten_seconds_is_a_long_press_fired_on_release() {
        let found = run_edges(&[(100, true), (5000, false)], 8000);
        assert_eq!(found, vec![(5030, Press::Long)]);
    }

    #[test]
    fn held_ten_seconds_is_a_reset_fired_while_held_and_release_adds_nothing() {
        let found = run_edges(&[(100, true), (14_000, false)], 20_000);
        assert_eq!(found, vec![(10_100, Press::Reset)], "never a long press (a reboot) on the way");
    }

    #[test]
    fn just_under_three_seconds_is_still_short() {
        assert_eq!(run_edges(&[(0, true), (2900, false)], 8000), vec![(2930, Press::Short)]);
    }

    #[tokio::test]
    async fn new_button_settings_take_a_new_pin_and_new_actions_while_running() {
        use crate::config::{Button, Config, Live};
        let button = |pin: u8, short| Button { pin, active_low: true, actions: ButtonActions { short: Some(short), long: None } };
        let mut config = Config { button: Some(button(3, Action::Identify)), ..Config::default() };
        let live = Live::new(config.clone());
        let bus = Bus::default();
        let mut heard = bus.subscribe();
        type Pins = std::sync::Arc<std::sync::Mutex<Vec<(u8, tokio::sync::mpsc::UnboundedSender<bool>)>>>;
        let pins: Pins = Default::default();
        let opened = pins.clone();
        let open = move |pin: u8, _active_low: bool| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            opened.lock().unwrap().push((pin, tx));
            Ok(ButtonPin::from_levels(rx))
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(live.clone(), bus.subscribe(), bus.clone(), open, stop.clone()));
        let press = |pins: &Pins| {
            let tx = pins.lock().unwrap().last().unwrap().1.clone();
            async move {
                tx.send(true).unwrap();
                tokio::time::sleep(ms(100)).await;
                tx.send(false).unwrap();
            }
        };
        let action = |heard: &mut tokio::sync::broadcast::Receiver<Event>| {
            let mut heard = heard.resubscribe();
            async move {
                loop {
                    if let Event::ActionRequested { action, .. } = heard.recv().await.unwrap() {
                        return action;
                    }
                }
            }
        };
        while pins.lock().unwrap().is_empty() {
            tokio::time::sleep(ms(10)).await;
        }
        let next = action(&mut heard);
        press(&pins).await;
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), next).await.unwrap(), Action::Identify);

        config.button = Some(button(17, Action::Snapshot));
        live.set(config);
        bus.publish(Event::SettingsChanged {
            sections: vec!["button".into()],
            restarted: vec![],
            added: vec![],
            removed: vec![],
            restart_required: vec![],
            origin: "test".into(),
        });
        while pins.lock().unwrap().len() < 2 {
            tokio::time::sleep(ms(10)).await;
        }
        assert_eq!(pins.lock().unwrap()[1].0, 17, "the new pin is taken");
        let next = action(&mut heard);
        press(&pins).await;
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), next).await.unwrap(), Action::Snapshot, "the new action");
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn presses_dispatch_their_configured_actions() {
        let bus = Bus::default();
        let mut rx = bus.subscribe();
        let config = ButtonConfig {
            actions: ButtonActions { short: Some(Action::Identify), long: Some(Action::Reboot) },
            ..ButtonConfig::default()
        };
        dispatch(Press::Short, &config, &bus);
        dispatch(Press::Long, &config, &bus);
        dispatch(Press::Reset, &config, &bus);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| match e {
                Event::ButtonPressed { press } => press,
                Event::ActionRequested { action, .. } => action.name(),
                Event::OwnerResetRequested { .. } => "owner reset".into(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // The press itself first (the hotspot follows it), then what it is set to do.
        assert_eq!(got, ["short", "identify", "long", "reboot", "owner reset"]);
    }
}
