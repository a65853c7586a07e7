//! The device's HTTPS identity: a certificate from PEM files the owner provides, or one the
//! device makes for itself and keeps on the data partition so that clients can pin it.
//!
//! A self-signed certificate names everything a client may type to reach the device: its
//! hostname, `<hostname>.local`, `lookout.local`, `localhost` and its addresses. A Pi often
//! gets its address from DHCP after the daemon has started, and the address can change later,
//! so [`Identity::keep_fresh`] looks again every few minutes: when a name is missing, or the
//! certificate nears its end, a new one (naming the old names too) replaces it for new
//! connections. A new certificate keeps the key and the subject of the first, so a client that
//! pinned the first one (as a trust anchor: a subject and a key) accepts its successors.
//! Nothing here knows HTTP; `web::server` terminates TLS with it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::Tls;

/// How long a self-signed certificate is valid: Apple's clients refuse server certificates
/// valid for more than 825 days, even ones the user trusts.
const VALIDITY: Duration = Duration::from_secs(825 * 86_400);
/// A self-signed certificate this close to its end is replaced.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// How often [`Identity::keep_fresh`] compares the device's names with the certificate's.
const CHECK_EVERY: Duration = Duration::from_secs(300);

/// Why HTTPS cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the private key does not belong to the certificate: {0}")]
    Mismatch(String),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
}

/// The certificate HTTPS presents, ready for a TLS acceptor.
pub struct Identity {
    config: Arc<rustls::ServerConfig>,
    self_signed: Option<Arc<SelfSigned>>,
}

impl Identity {
    /// The identity `setting` asks for; `None` when TLS is off. A self-signed certificate is
    /// read from `<storage>/tls/`, or made (and written there when the partition is writable).
    pub fn load(setting: &Tls, storage: &Path) -> Result<Option<Identity>, TlsError> {
        let (resolver, self_signed): (Arc<dyn ResolvesServerCert>, _) = match setting {
            Tls::Off => return Ok(None),
            Tls::Files { cert, key } => (Arc::new(Fixed(Arc::new(read_pair(cert, key)?))), None),
            Tls::SelfSigned => {
                let s = Arc::new(SelfSigned::open(storage.join("tls"), &device_names())?);
                (s.clone(), Some(s))
            }
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        // HTTP/1.1 only: the server's header timeout and WebSocket upgrades are HTTP/1.1's.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Identity { config: Arc::new(config), self_signed }))
    }

    /// The rustls configuration to accept connections with.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// The certificate presented now, PEM (for a client to pin).
    pub fn certificate_pem(&self) -> Option<String> {
        self.self_signed.as_ref().map(|s| s.current.read().expect("certificate lock never poisoned").pem.clone())
    }

    /// Replaces a self-signed certificate that misses one of the device's names or nears its
    /// end, until `stop`. Does nothing for a certificate from files.
    pub async fn keep_fresh(&self, stop: CancellationToken) {
        let Some(s) = self.self_signed.clone() else { return };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            // Interfaces, key generation and fsyncs: off the async threads.
            let s = s.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.renew_if_needed(&device_names())).await {
                tracing::warn!("{e}");
            }
        }
    }
}

/// The ring provider (the crate is built without aws-lc), for server and tests alike.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a client may call the device by, now.
pub fn device_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["lookout.local", "localhost", "127.0.0.1", "::1"].into_iter().map(String::from).collect();
    if let Ok(host) = nix::unistd::gethostname()
        && let Some(host) = host.to_str().filter(|h| !h.is_empty() && *h != "localhost")
    {
        names.insert(host.to_owned());
        if !host.contains('.') {
            names.insert(format!("{host}.local"));
        }
    }
    for (_, ip) in crate::network::links::interface_addresses() {
        // A link-local IPv6 address needs a zone, which no URL in a certificate can hold.
        if !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
            names.insert(ip.to_string());
        }
    }
    names
}

/// A certificate and key from the owner's PEM files.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert { path: cert.to_owned(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Cert { path: cert.to_owned(), reason: "no CERTIFICATE block in it".into() });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key { path: key.to_owned(), reason: e.to_string() })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Mismatch(e.to_string()))
}

/// A self-signed certificate kept in a folder of the data partition.
#[derive(Debug)]
struct SelfSigned {
    dir: PathBuf,
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    pem: String,
    about: About,
}

/// What the device knows of its certificate without parsing it: `about.json` beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct About {
    names: BTreeSet<String>,
    /// Seconds since the Unix epoch.
    not_after: i64,
    /// The subject's common name, chosen once per device and kept by every renewal.
    subject: String,
}

impl About {
    fn covers(&self, names: &BTreeSet<String>, now: i64) -> bool {
        names.is_subset(&self.names) && now + RENEW_BEFORE.as_secs() as i64 <= self.not_after
    }
}

impl ResolvesServerCert for SelfSigned {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock never poisoned").key.clone())
    }
}

impl SelfSigned {
    fn open(dir: PathBuf, names: &BTreeSet<String>) -> Result<SelfSigned, TlsError> {
        let current = match Self::read(&dir) {
            Some(kept) if kept.about.covers(names, now()) => kept,
            Some(kept) => Self::make(&dir, &kept.about.names.union(names).cloned().collect(), Self::kept_key(&dir), &kept.about.subject)?,
            None => Self::make(&dir, names, None, &format!("Lookout {}", hex_id()))?,
        };
        Ok(SelfSigned { dir, current: RwLock::new(current) })
    }

    fn renew_if_needed(&self, names: &BTreeSet<String>) -> Result<(), TlsError> {
        let old = self.current.read().expect("certificate lock never poisoned").about.clone();
        if old.covers(names, now()) {
            return Ok(());
        }
        let fresh = Self::make(&self.dir, &old.names.union(names).cloned().collect(), Self::kept_key(&self.dir), &old.subject)?;
        *self.current.write().expect("certificate lock never poisoned") = fresh;
        Ok(())
    }

    /// The kept certificate, if all three files are there and belong together.
    fn read(dir: &Path) -> Option<Current> {
        let about: About = serde_json::from_slice(&std::fs::read(dir.join("about.json")).ok()?).ok()?;
        let pem = std::fs::read_to_string(dir.join("cert.pem")).ok()?;
        match read_pair(&dir.join("cert.pem"), &dir.join("key.pem")) {
            Ok(key) => Some(Current { key: Arc::new(key), pem, about }),
            Err(e) => {
                tracing::warn!("the kept HTTPS certificate cannot be used ({e}); making a new one");
                None
            }
        }
    }

    fn kept_key(dir: &Path) -> Option<rcgen::KeyPair> {
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("key.pem")).ok()?).ok()
    }

    /// A certificate for `names` signed by `key` (a new key without one), written to `dir` when
    /// it can be (a device without its data partition serves one that lasts until restart).
    fn make(dir: &Path, names: &BTreeSet<String>, key: Option<rcgen::KeyPair>, subject: &str) -> Result<Current, TlsError> {
        let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let mut params = rcgen::CertificateParams::new(names.iter().cloned().collect::<Vec<_>>()).map_err(generate)?;
        let start = time::OffsetDateTime::now_utc();
        // A day's slack: a client whose clock is a little behind the device's still accepts it.
        params.not_before = start - time::Duration::days(1);
        params.not_after = start + VALIDITY;
        params.distinguished_name.push(rcgen::DnType::CommonName, subject);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Lookout camera (self-signed)");
        // Random, not rcgen's hash of the key: a renewal keeps the key, and Firefox refuses two
        // certificates with one issuer and serial.
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(|e| TlsError::Generate(e.to_string()))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(serial.to_vec().into());
        let key_pair = match key {
            Some(k) => k,
            None => rcgen::KeyPair::generate().map_err(generate)?,
        };
        let cert = params.self_signed(&key_pair).map_err(generate)?;
        let about = About { names: names.clone(), not_after: params.not_after.unix_timestamp(), subject: subject.to_owned() };
        let (pem, key_pem) = (cert.pem(), key_pair.serialize_pem());
        let private = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = CertifiedKey::from_der(vec![cert.der().clone()], private, &provider()).map_err(|e| TlsError::Generate(e.to_string()))?;
        match Self::write(dir, &pem, &key_pem, &about) {
            Ok(()) => tracing::info!("made a self-signed HTTPS certificate for {}", Vec::from_iter(names.iter().cloned()).join(", ")),
            Err(e) => tracing::warn!("made a self-signed HTTPS certificate but cannot keep it in {}: {e}", dir.display()),
        }
        Ok(Current { key: Arc::new(key), pem, about })
    }

    fn write(dir: &Path, pem: &str, key_pem: &str, about: &About) -> std::io::Result<()> {
        use crate::storage::disk::write_private;
        std::fs::create_dir_all(dir)?;
        // about.json last: it is what a reader checks first, so a half-written set is redone.
        let _ = std::fs::remove_file(dir.join("about.json"));
        write_private(&dir.join("key.pem"), key_pem.as_bytes())?;
        write_private(&dir.join("cert.pem"), pem.as_bytes())?;
        write_private(&dir.join("about.json"), &serde_json::to_vec_pretty(about).map_err(std::io::Error::other)?)
    }
}

/// Four random hex digits: two devices' certificates never share a subject.
fn hex_id() -> String {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    format!("{:02x}{:02x}", b[0], b[1])
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests;
