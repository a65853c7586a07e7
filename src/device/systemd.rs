//! systemd's notify protocol without libsystemd: datagrams of `KEY=value` lines to the
//! socket named by `$NOTIFY_SOCKET`. The daemon says `READY=1` once it serves, and
//! `WATCHDOG=1` every half `WatchdogSec` for as long as its liveness check passes; a wedged
//! pipeline or a dead web server stops the pings and systemd restarts the service.

use std::future::Future;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::{Bus, Event};

/// A connection to the service manager.
pub struct Notifier {
    socket: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
    path: String,
}

impl Notifier {
    /// The notifier systemd gave this process, if it runs as a `Type=notify` service.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var("NOTIFY_SOCKET").ok().filter(|p| !p.is_empty())?;
        match Notifier::connect(&path) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET={path} unusable: {e}");
                None
            }
        }
    }

    /// A notifier for a socket path (`@name` is an abstract socket, as systemd allows).
    pub fn connect(path: &str) -> std::io::Result<Notifier> {
        use std::os::linux::net::SocketAddrExt;
        let target = match path.strip_prefix('@') {
            Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?,
            None => std::os::unix::net::SocketAddr::from_pathname(PathBuf::from(path))?,
        };
        Ok(Notifier { socket: UnixDatagram::unbound()?, target, path: path.to_owned() })
    }

    /// Sends one state message, e.g. `READY=1\nSTATUS=...`.
    pub fn notify(&self, state: &str) -> std::io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.target).map(|_| ())
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier({})", self.path)
    }
}

/// The watchdog period systemd expects pings within (`$WATCHDOG_USEC`), when it is meant
/// for this process (`$WATCHDOG_PID`, when set, is ours).
pub fn watchdog_period() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings every `period / 2` while `check` passes; a failing check is logged and published
/// once (the LED shows an error), and no ping is sent until it passes again.
pub async fn keep_alive<C, F>(notifier: Notifier, period: Duration, mut check: C, bus: Bus, shutdown: CancellationToken)
where
    C: FnMut() -> F,
    F: Future<Output = Result<(), String>>,
{
    let every = period / 2;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A check that itself hangs is a failure too.
        let verdict = match tokio::time::timeout(every, check()).await {
            Ok(v) => v,
            Err(_) => Err(format!("liveness check took longer than {}s", every.as_secs())),
        };
        match verdict {
            Ok(()) => {
                if failing {
                    tracing::info!("liveness check passes again");
                    failing = false;
                }
                if let Err(e) = notifier.notify("WATCHDOG=1") {
                    tracing::warn!("watchdog ping failed: {e}");
                }
            }
            Err(reason) => {
                if !failing {
                    tracing::error!("not alive: {reason}; withholding watchdog pings so systemd restarts the daemon");
                    let _ = notifier.notify(&format!("STATUS=not alive: {reason}"));
                    bus.publish(Event::FaultDetected { reason });
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        n.notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("lookout-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::connect(&format!("@{name}")).unwrap().notify("WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
