//! A client of wpa_supplicant's control socket: one request, one answer, over a Unix
//! datagram socket at `<ctrl_dir>/<interface>`. The answer comes back to a socket of the
//! client's own with an abstract name: the daemon's `/tmp` is private (systemd's
//! `PrivateTmp`), so wpa_supplicant could not reach a socket file there, and an abstract
//! socket leaves nothing to clean up.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest wait for an answer. wpa_supplicant answers within milliseconds, but a command
/// that stops the access point (`REMOVE_NETWORK all`) waits on the driver, which on a busy
/// device took over half a second; a lost answer there left the page showing the hotspot open.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Largest answer read (`SCAN_RESULTS` of a crowded place is a few KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// Sends `command` to the control socket of `interface` under `ctrl_dir` and returns the answer.
pub fn request(ctrl_dir: &Path, interface: &str, command: &str) -> io::Result<String> {
    use std::os::linux::net::SocketAddrExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("lookout-wpa-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let socket = UnixDatagram::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?)?;
    socket.set_read_timeout(Some(ANSWER_WITHIN))?;
    socket.connect(ctrl_dir.join(interface))?;
    socket.send(command.as_bytes())?;
    let mut buffer = vec![0u8; MAX_ANSWER];
    let n = socket.recv(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

/// The network `interface` has joined, if wpa_supplicant runs for it and says so.
pub fn joined_ssid(ctrl_dir: &Path, interface: &str) -> Option<String> {
    request(ctrl_dir, interface, "STATUS").ok().and_then(|answer| super::wpa::Status::parse(&answer).ssid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for wpa_supplicant: answers `STATUS` on `<dir>/wlan0` once.
    fn fake_supplicant(dir: &Path, answer: &'static str) -> std::thread::JoinHandle<String> {
        let server = UnixDatagram::bind(dir.join("wlan0")).unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 256];
            let (n, from) = server.recv_from(&mut buffer).unwrap();
            server.send_to_addr(answer.as_bytes(), &from).unwrap();
            String::from_utf8_lossy(&buffer[..n]).into_owned()
        })
    }

    #[test]
    fn the_joined_network_is_read_from_the_control_socket() {
        let dir = tempfile::tempdir().unwrap();
        let asked = fake_supplicant(dir.path(), "bssid=02:00:00:00:01:00\nssid=Garden AP\nwpa_state=COMPLETED\n");
        assert_eq!(joined_ssid(dir.path(), "wlan0").as_deref(), Some("Garden AP"));
        assert_eq!(asked.join().unwrap(), "STATUS");
    }

    #[test]
    fn no_supplicant_is_no_network_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(joined_ssid(dir.path(), "wlan0"), None);
        assert!(request(dir.path(), "wlan0", "PING").is_err());
    }
}
