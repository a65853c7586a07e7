//! DNS-SD adverts that change while the daemon runs: one `_rtsp._tcp` per camera with its path
//! in TXT, so NVRs and players that browse the network list each camera by name. Avahi
//! publishes each (`avahi-publish -s`, one process per advert, gone with it); the page's fixed
//! `_http._tcp` advert is a service file in the image. Off the appliance, without Avahi, there
//! is nothing to publish to and nothing is retried until the adverts change.

use std::collections::BTreeMap;

/// One DNS-SD service instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Advert {
    /// The instance name people see ("Lookout yard on lookout-1a2b").
    pub name: String,
    /// `_rtsp._tcp`.
    pub kind: String,
    pub port: u16,
    /// `key=value` strings.
    pub txt: Vec<String>,
}

/// The adverts published now.
pub struct Adverts {
    program: String,
    running: BTreeMap<Advert, tokio::process::Child>,
    /// Adverts whose publisher could not start or ended (no Avahi): left until they change.
    failed: Vec<Advert>,
}

impl Default for Adverts {
    fn default() -> Self {
        Adverts::with_program("avahi-publish")
    }
}

impl Adverts {
    /// Adverts published by `program` (taking avahi-publish's arguments).
    pub fn with_program(program: &str) -> Adverts {
        Adverts { program: program.to_owned(), running: BTreeMap::new(), failed: Vec::new() }
    }

    /// Publishes exactly `wanted`: new ones start, gone ones end.
    pub fn follow(&mut self, wanted: &[Advert]) {
        let mut ended = Vec::new();
        self.running.retain(|advert, child| {
            let gone = !matches!(child.try_wait(), Ok(None));
            if gone {
                tracing::debug!(name = %advert.name, "DNS-SD advert ended (Avahi not running?)");
                ended.push(advert.clone());
            }
            !gone && wanted.contains(advert)
        });
        self.failed.extend(ended);
        self.failed.retain(|a| wanted.contains(a));
        for advert in wanted {
            if self.running.contains_key(advert) || self.failed.contains(advert) {
                continue;
            }
            let port = advert.port.to_string();
            let mut args = vec!["-s", advert.name.as_str(), advert.kind.as_str(), port.as_str()];
            args.extend(advert.txt.iter().map(String::as_str));
            let spawned = publisher(&self.program, &args);
            match spawned {
                Ok(child) => {
                    self.running.insert(advert.clone(), child);
                }
                Err(e) => {
                    tracing::debug!(name = %advert.name, "cannot advertise over DNS-SD (avahi-publish: {e})");
                    self.failed.push(advert.clone());
                }
            }
        }
    }

    /// How many publishers run (for tests and the log).
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

/// Starts an Avahi publisher (`avahi-publish` and its arguments): silent, and gone when its
/// handle is dropped, which withdraws what it published.
pub fn publisher(program: &str, args: &[&str]) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

/// The RTSP adverts of `cameras` on `port`, named after the device's host name.
pub fn rtsp(cameras: &[String], port: u16) -> Vec<Advert> {
    let host = super::names::current_hostname().unwrap_or_else(|| "lookout".into());
    cameras
        .iter()
        .map(|c| Advert { name: format!("Lookout {c} on {host}"), kind: "_rtsp._tcp".into(), port, txt: vec![format!("path=/{c}")] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(camera: &str) -> Advert {
        rtsp(&[camera.to_owned()], 8554).remove(0)
    }

    #[tokio::test]
    async fn adverts_follow_the_cameras_and_a_missing_avahi_is_not_retried() {
        let mut adverts = Adverts::with_program("sleep");
        let (yard, door) = (advert("yard"), advert("door"));
        assert_eq!(yard.txt, vec!["path=/yard".to_owned()]);
        assert!(yard.name.starts_with("Lookout yard on "));
        // `sleep -s NAME …` fails at once: the advert is noticed gone and not retried.
        adverts.follow(std::slice::from_ref(&yard));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while adverts.running() > 0 {
            assert!(std::time::Instant::now() < deadline, "an ended publisher was never noticed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            adverts.follow(std::slice::from_ref(&yard));
        }
        assert_eq!(adverts.failed, vec![yard.clone()]);
        adverts.follow(std::slice::from_ref(&yard));
        assert_eq!(adverts.running(), 0, "not retried while the adverts are the same");
        adverts.follow(&[]);
        assert!(adverts.failed.is_empty());

        let mut missing = Adverts::with_program("/nonexistent/avahi-publish");
        missing.follow(&[yard.clone(), door.clone()]);
        assert_eq!((missing.running(), missing.failed.len()), (0, 2));
    }

    #[tokio::test]
    async fn a_running_advert_ends_when_its_camera_goes() {
        // A publisher that keeps its advert up until it is killed.
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("avahi-publish");
        std::fs::write(&program, "#!/bin/sh\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut adverts = Adverts::with_program(program.to_str().unwrap());
        let (yard, door) = (advert("yard"), advert("door"));
        adverts.follow(&[yard.clone(), door.clone()]);
        assert_eq!(adverts.running(), 2);
        adverts.follow(std::slice::from_ref(&door));
        assert_eq!(adverts.running(), 1);
        assert!(adverts.running.contains_key(&door));
    }
}
