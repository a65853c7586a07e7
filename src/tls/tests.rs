use super::*;

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_self_signed_certificate_is_made_once_kept_private_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let first = SelfSigned::open(dir.path().join("tls"), &names(&["lookout.local", "127.0.0.1"])).unwrap();
    let pem = first.current.read().unwrap().pem.clone();
    let again = SelfSigned::open(dir.path().join("tls"), &names(&["127.0.0.1"])).unwrap();
    assert_eq!(again.current.read().unwrap().pem, pem, "a restart keeps the certificate clients pinned");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("tls/key.pem")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is the daemon's alone");
}

#[test]
fn a_new_name_or_a_near_end_brings_a_new_certificate_naming_the_old_names_too() {
    let dir = tempfile::tempdir().unwrap();
    let s = SelfSigned::open(dir.path().join("tls"), &names(&["lookout.local", "127.0.0.1"])).unwrap();
    let before = s.current.read().unwrap().pem.clone();
    s.renew_if_needed(&names(&["127.0.0.1"])).unwrap();
    assert_eq!(s.current.read().unwrap().pem, before, "nothing missing, nothing renewed");

    s.renew_if_needed(&names(&["192.168.1.20"])).unwrap();
    let after = s.current.read().unwrap();
    assert_ne!(after.pem, before, "a DHCP address that came later is named");
    assert_eq!(after.about.names, names(&["lookout.local", "127.0.0.1", "192.168.1.20"]));
    drop(after);
    let kept = SelfSigned::read(&dir.path().join("tls")).expect("the renewed one is kept");
    assert_eq!(kept.about.names.len(), 3);

    // Near its end (as a device whose clock jumped ahead would see it), it is made anew.
    let about = About { not_after: now() + 86_400, ..kept.about };
    std::fs::write(dir.path().join("tls/about.json"), serde_json::to_vec(&about).unwrap()).unwrap();
    let reopened = SelfSigned::open(dir.path().join("tls"), &names(&["127.0.0.1"])).unwrap();
    let fresh = reopened.current.read().unwrap();
    assert_ne!(fresh.pem, kept.pem);
    assert!(fresh.about.not_after > now() + 800 * 86_400);
}

#[test]
fn a_damaged_or_mismatched_kept_certificate_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let first = SelfSigned::open(tls.clone(), &names(&["127.0.0.1"])).unwrap().current.into_inner().unwrap();
    let other = tempfile::tempdir().unwrap();
    SelfSigned::open(other.path().to_owned(), &names(&["127.0.0.1"])).unwrap();
    std::fs::copy(other.path().join("key.pem"), tls.join("key.pem")).unwrap();
    let replaced = SelfSigned::open(tls.clone(), &names(&["127.0.0.1"])).unwrap().current.into_inner().unwrap();
    assert_ne!(replaced.pem, first.pem, "a key that is not the certificate's is not served");
    std::fs::write(tls.join("cert.pem"), "not a certificate").unwrap();
    let again = SelfSigned::open(tls, &names(&["127.0.0.1"])).unwrap().current.into_inner().unwrap();
    assert_ne!(again.pem, replaced.pem);
}

#[test]
fn without_a_writable_data_partition_https_still_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "").unwrap();
    let identity = Identity::load(&Tls::SelfSigned, &file).unwrap().expect("TLS on");
    assert!(identity.certificate_pem().unwrap().contains("BEGIN CERTIFICATE"));
}

#[test]
fn certificate_files_that_are_missing_empty_or_mismatched_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let err = Identity::load(&Tls::Files { cert: cert.clone(), key: key.clone() }, dir.path()).err().unwrap();
    assert!(matches!(&err, TlsError::Cert { path, .. } if *path == cert), "{err}");
    std::fs::write(&cert, "nothing").unwrap();
    let err = Identity::load(&Tls::Files { cert: cert.clone(), key: key.clone() }, dir.path()).err().unwrap();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");

    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    SelfSigned::open(a.path().to_owned(), &names(&["127.0.0.1"])).unwrap();
    SelfSigned::open(b.path().to_owned(), &names(&["127.0.0.1"])).unwrap();
    let err = Identity::load(&Tls::Files { cert: a.path().join("cert.pem"), key: dir.path().join("none.pem") }, dir.path()).err().unwrap();
    assert!(matches!(&err, TlsError::Key { .. }), "{err}");
    let err = Identity::load(&Tls::Files { cert: a.path().join("cert.pem"), key: b.path().join("key.pem") }, dir.path()).err().unwrap();
    assert!(matches!(&err, TlsError::Mismatch(_)), "{err}");
    let ok = Identity::load(&Tls::Files { cert: a.path().join("cert.pem"), key: a.path().join("key.pem") }, dir.path()).unwrap();
    assert!(ok.expect("TLS on").certificate_pem().is_none(), "the owner's certificate is theirs to hand out");
    assert!(Identity::load(&Tls::Off, dir.path()).unwrap().is_none());
}

#[test]
fn the_device_is_named_by_loopback_and_lookout_local_at_least() {
    let n = device_names();
    for name in ["lookout.local", "localhost", "127.0.0.1", "::1"] {
        assert!(n.contains(name), "{name} in {n:?}");
    }
    assert!(!n.iter().any(|n| n.starts_with("fe80")), "link-local addresses cannot be named: {n:?}");
}

#[test]
fn a_client_that_pinned_the_first_certificate_accepts_its_renewals() {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    let dir = tempfile::tempdir().unwrap();
    let s = SelfSigned::open(dir.path().join("tls"), &names(&["127.0.0.1"])).unwrap();
    let first = s.current.read().unwrap().pem.clone();
    s.renew_if_needed(&names(&["192.168.1.20"])).unwrap();
    let renewed = s.current.read().unwrap().key.cert[0].clone();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(first.as_bytes()).unwrap()).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build().unwrap();
    let verify =
        |name: &str| verifier.verify_server_cert(&renewed, &[], &ServerName::try_from(name.to_owned()).unwrap(), &[], UnixTime::now());
    verify("192.168.1.20").expect("the new address, vouched for by the pinned first certificate");
    verify("127.0.0.1").expect("the old names too");
    assert!(verify("10.9.9.9").is_err(), "a name it does not hold is refused");

    // Another device's certificate is not accepted by that pin.
    let other = tempfile::tempdir().unwrap();
    let stranger = SelfSigned::open(other.path().to_owned(), &names(&["127.0.0.1"])).unwrap();
    let stranger = stranger.current.read().unwrap().key.cert[0].clone();
    let name = ServerName::try_from("127.0.0.1".to_owned()).unwrap();
    assert!(verifier.verify_server_cert(&stranger, &[], &name, &[], UnixTime::now()).is_err());
}
