use super::*;

const S: Duration = Duration::from_secs(1);

fn settings(passphrase: Option<&str>) -> Hotspot {
    Hotspot { passphrase: passphrase.map(String::from), ..Hotspot::default() }
}

/// Runs the policy's own deadlines up to `until`, collecting what it did and when.
fn run(p: &mut Policy, from: Instant, until: Instant) -> Vec<(Duration, Action)> {
    let mut done = Vec::new();
    while let Some(at) = p.deadline().filter(|at| *at <= until) {
        if let Some(a) = p.tick(at) {
            done.push((at - from, a));
        }
    }
    done
}

#[test]
fn no_network_after_start_up_opens_it_and_a_network_closes_it() {
    let t0 = Instant::now();
    let mut p = Policy::new(settings(Some("passphrase")), false, t0);
    assert_eq!(p.tick(t0 + 29 * S), None, "DHCP gets its 30 s");
    assert_eq!(run(&mut p, t0, t0 + 3600 * S), [(30 * S, Action::Open)], "a hotspot with a passphrase stays open");
    assert_eq!(p.handle(t0 + 3600 * S, Input::Network { usable: true }), Some(Action::Close));
    assert!(!p.is_open());
}

#[test]
fn a_network_in_time_keeps_it_closed_and_losing_it_later_opens_it_after_the_longer_wait() {
    let t0 = Instant::now();
    let mut p = Policy::new(settings(None), true, t0);
    assert_eq!(p.handle(t0 + 5 * S, Input::Network { usable: true }), None);
    assert_eq!(run(&mut p, t0, t0 + 3600 * S), [], "nothing to do while connected");
    assert_eq!(p.handle(t0 + 100 * S, Input::Network { usable: false }), None);
    // The router comes back within the wait: the hotspot never opened.
    assert_eq!(p.handle(t0 + 200 * S, Input::Network { usable: true }), None);
    assert_eq!(p.handle(t0 + 300 * S, Input::Network { usable: false }), None);
    assert_eq!(run(&mut p, t0, t0 + 600 * S), [(600 * S, Action::Open)], "5 min after the loss");
}

#[test]
fn an_unused_hotspot_steps_aside_for_the_known_networks_and_an_open_one_expires() {
    let t0 = Instant::now();
    let mut p = Policy::new(settings(None), true, t0);
    let done = run(&mut p, t0, t0 + 3600 * S);
    // Open at 30 s; every 120 s it closes for 20 s to try the known networks; the 10 min window
    // (counted from the first opening) closes it for good.
    assert_eq!(
        done,
        [
            (30 * S, Action::Open),
            (150 * S, Action::Close),
            (170 * S, Action::Open),
            (290 * S, Action::Close),
            (310 * S, Action::Open),
            (430 * S, Action::Close),
            (450 * S, Action::Open),
            (570 * S, Action::Close),
            (590 * S, Action::Open),
            (630 * S, Action::Close),
        ]
    );
    assert_eq!(p.deadline(), None, "expired: only the button opens it again");
    assert_eq!(p.handle(t0 + 4000 * S, Input::ButtonPressed), Some(Action::Open));
    assert!(p.is_open());
}

#[test]
fn a_phone_on_the_hotspot_holds_it_open_and_the_window_restarts_when_it_leaves() {
    let t0 = Instant::now();
    let mut p = Policy::new(settings(None), true, t0);
    run(&mut p, t0, t0 + 30 * S);
    assert!(p.is_open());
    p.handle(t0 + 100 * S, Input::Clients(1));
    assert_eq!(p.deadline(), None);
    assert_eq!(p.tick(t0 + 2000 * S), None, "no retry, no expiry under a phone");
    // Ethernet plugged in mid-setup: the phone keeps its hotspot.
    assert_eq!(p.handle(t0 + 2000 * S, Input::Network { usable: true }), None);
    assert!(p.is_open());
    p.handle(t0 + 2100 * S, Input::Clients(0));
    assert_eq!(p.deadline(), Some(t0 + 2100 * S + RETRY_EVERY));
    assert_eq!(p.handle(t0 + 2101 * S, Input::Network { usable: true }), Some(Action::Close));
}

#[test]
fn a_finished_setup_closes_it_and_rearms_the_wait() {
    let t0 = Instant::now();
    let mut p = Policy::new(settings(None), false, t0);
    run(&mut p, t0, t0 + 30 * S);
    p.handle(t0 + 40 * S, Input::Clients(1));
    assert_eq!(p.handle(t0 + 90 * S, Input::SetupDone), Some(Action::Close));
    // Joined: connected. Had the join failed, the hotspot would be back soon, to say so.
    assert_eq!(p.deadline(), Some(t0 + 90 * S + SETUP_JOIN_WITHIN));
    assert_eq!(p.handle(t0 + 95 * S, Input::Network { usable: true }), None);
    assert_eq!(p.deadline(), None);
}

#[test]
fn without_known_networks_nothing_is_retried_and_a_disabled_hotspot_never_opens() {
    let t0 = Instant::now();
    let mut p = Policy::new(settings(Some("passphrase")), false, t0);
    assert_eq!(run(&mut p, t0, t0 + 3600 * S), [(30 * S, Action::Open)]);
    let mut off = Policy::new(Hotspot { enabled: false, ..Hotspot::default() }, true, t0);
    assert_eq!(off.deadline(), None);
    assert_eq!(off.handle(t0, Input::ButtonPressed), None);
    assert_eq!(off.handle(t0, Input::Network { usable: false }), None);
}
