//! WS-Discovery (the 2005/04 draft ONVIF uses): answers Probes sent to 239.255.255.250:3702
//! for a NetworkVideoTransmitter (or for anything) with a ProbeMatch naming the device
//! service at the address the prober reaches this device by, says Hello when it starts and
//! Bye when it stops. Probes are at most [`MAX_PROBE`] bytes; the matching is
//! [`matches`], sans-IO.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio_util::sync::CancellationToken;

use super::soap::escape;

/// WS-Discovery's multicast group and port.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 3702;
/// Longest probe read; a SOAP probe is well under 2 KiB.
const MAX_PROBE: usize = 16 * 1024;
/// The types the device is.
const TYPES: &str = "dn:NetworkVideoTransmitter tds:Device";

/// What the answers say.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `urn:uuid:…`, the same across restarts.
    pub endpoint: String,
    pub scopes: Vec<String>,
    /// The web server's plain HTTP port: the device service's address is built on it.
    pub http_port: u16,
}

/// A probe that wants this device: its message id, to relate the answer to.
pub fn matches(probe: &str, scopes: &[String]) -> Option<String> {
    let doc = roxmltree::Document::parse(probe).ok()?;
    let local = |name: &'static str| move |n: &roxmltree::Node<'_, '_>| n.is_element() && n.tag_name().name() == name;
    let body = doc.descendants().find(local("Body"))?;
    let probe_node = body.children().find(local("Probe"))?;
    let message_id = doc.descendants().find(local("MessageID")).and_then(|n| n.text()).unwrap_or_default().trim().to_owned();
    // Types: every QName asked for must be one of ours (by local name: probers use any prefix).
    let wanted_types = probe_node.children().find(local("Types")).and_then(|n| n.text()).unwrap_or_default();
    let ours = ["NetworkVideoTransmitter", "Device"];
    let types_ok = wanted_types.split_whitespace().all(|t| ours.contains(&t.rsplit(':').next().unwrap_or(t)));
    // Scopes: each asked for must prefix one of ours, segment by segment (RFC 3986 matching).
    let wanted_scopes = probe_node.children().find(local("Scopes")).and_then(|n| n.text()).unwrap_or_default();
    let scopes_ok = wanted_scopes.split_whitespace().all(|w| {
        let w = w.trim_end_matches('/');
        scopes.iter().any(|s| s == w || s.starts_with(&format!("{w}/")))
    });
    (types_ok && scopes_ok).then_some(message_id)
}

fn envelope(action: &str, relates_to: Option<&str>, to: &str, body: &str) -> String {
    let relates = relates_to.map_or(String::new(), |r| format!("<a:RelatesTo>{}</a:RelatesTo>", escape(r)));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><s:Header><a:MessageID>urn:uuid:{}</a:MessageID>{relates}<a:To>{to}</a:To><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/{action}</a:Action></s:Header><s:Body>{body}</s:Body></s:Envelope>"#,
        uuid::Uuid::new_v4()
    )
}

fn description(identity: &Identity, address: Option<IpAddr>) -> String {
    let xaddrs = address.map_or(String::new(), |a| {
        let host = match a {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        format!("<d:XAddrs>http://{host}:{}{}</d:XAddrs>", identity.http_port, super::DEVICE_PATH)
    });
    format!(
        "<a:EndpointReference><a:Address>{}</a:Address></a:EndpointReference><d:Types>{TYPES}</d:Types><d:Scopes>{}</d:Scopes>{xaddrs}<d:MetadataVersion>1</d:MetadataVersion>",
        escape(&identity.endpoint),
        escape(&identity.scopes.join(" "))
    )
}

/// The answer to a probe with `message_id`, naming the device service at `address`.
pub fn probe_match(identity: &Identity, message_id: &str, address: IpAddr) -> String {
    envelope(
        "ProbeMatches",
        Some(message_id),
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous",
        &format!("<d:ProbeMatches><d:ProbeMatch>{}</d:ProbeMatch></d:ProbeMatches>", description(identity, Some(address))),
    )
}

fn announcement(identity: &Identity, kind: &str) -> String {
    let body = if kind == "Hello" {
        description(identity, None)
    } else {
        format!("<a:EndpointReference><a:Address>{}</a:Address></a:EndpointReference>", escape(&identity.endpoint))
    };
    envelope(kind, None, "urn:schemas-xmlsoap-org:ws:2005:04:discovery", &format!("<d:{kind}>{body}</d:{kind}>"))
}

/// The local address a datagram to `peer` leaves from: where `peer` reaches this device.
fn local_address_towards(peer: SocketAddr) -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind(if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).ok()?;
    socket.connect(peer).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

fn bind() -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Several daemons (tests) and other ONVIF software may share the port: each gets every
    // multicast probe.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).into())?;
    socket.join_multicast_v4(&GROUP, &Ipv4Addr::UNSPECIFIED)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Runs discovery while `[onvif] enabled` says so, following the settings and the web
/// server's port, until `stop`.
pub async fn supervise(
    live: crate::config::Live,
    mut http: tokio::sync::watch::Receiver<SocketAddr>,
    mut events: tokio::sync::broadcast::Receiver<crate::events::Event>,
    stop: CancellationToken,
) {
    loop {
        let round = stop.child_token();
        let task = live.get().onvif.enabled.then(|| {
            let scopes = super::scopes(&super::hostname(), &super::hardware());
            let identity = Identity { endpoint: super::endpoint_uuid(), scopes, http_port: http.borrow().port() };
            tokio::spawn(run(identity, round.clone()))
        });
        let changed = loop {
            tokio::select! {
                _ = stop.cancelled() => break false,
                moved = http.changed() => break moved.is_ok(),
                event = events.recv() => match event {
                    Ok(e) if e.changes("onvif") => break true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break false,
                    _ => {}
                },
            }
        };
        round.cancel();
        if let Some(task) = task {
            let _ = task.await;
        }
        if !changed {
            return;
        }
    }
}

/// Answers probes until `stop`, with Hello first and Bye last. A port that cannot be bound
/// leaves discovery off (the log says why); the services still answer.
pub async fn run(identity: Identity, stop: CancellationToken) {
    let socket = match bind() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("ONVIF discovery is off: cannot listen on UDP {PORT}: {e}");
            return;
        }
    };
    let group = SocketAddr::V4(SocketAddrV4::new(GROUP, PORT));
    let _ = socket.send_to(announcement(&identity, "Hello").as_bytes(), group).await;
    tracing::info!("ONVIF discovery answers on UDP {PORT}");
    let mut buffer = vec![0u8; MAX_PROBE];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            received = socket.recv_from(&mut buffer) => {
                let Ok((n, from)) = received else { continue };
                let Ok(text) = std::str::from_utf8(&buffer[..n]) else { continue };
                let Some(message_id) = matches(text, &identity.scopes) else { continue };
                let Some(address) = local_address_towards(from) else { continue };
                let _ = socket.send_to(probe_match(&identity, &message_id, address).as_bytes(), from).await;
            }
        }
    }
    let _ = socket.send_to(announcement(&identity, "Bye").as_bytes(), group).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(types: &str, scopes: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><soap:Header><wsa:MessageID>uuid:probe-1</wsa:MessageID><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action></soap:Header><soap:Body><wsd:Probe><wsd:Types>{types}</wsd:Types><wsd:Scopes>{scopes}</wsd:Scopes></wsd:Probe></soap:Body></soap:Envelope>"#
        )
    }

    fn identity() -> Identity {
        Identity {
            endpoint: "urn:uuid:00000000-0000-0000-0000-000000000001".into(),
            scopes: vec!["onvif://www.onvif.org/type/video_encoder".into(), "onvif://www.onvif.org/name/Lookout_x".into()],
            http_port: 8080,
        }
    }

    #[test]
    fn probes_for_a_video_transmitter_or_anything_match_and_others_do_not() {
        let scopes = identity().scopes;
        assert_eq!(matches(&probe("dn:NetworkVideoTransmitter", ""), &scopes).as_deref(), Some("uuid:probe-1"));
        assert!(matches(&probe("", ""), &scopes).is_some(), "a probe for anything");
        assert!(matches(&probe("tds:Device", "onvif://www.onvif.org/type"), &scopes).is_some(), "a scope prefix");
        assert!(matches(&probe("x:Printer", ""), &scopes).is_none());
        assert!(matches(&probe("", "onvif://www.onvif.org/ty"), &scopes).is_none(), "prefixes match whole segments");
        assert!(matches("<not a probe/>", &scopes).is_none());
        assert!(matches("garbage", &scopes).is_none());
    }

    #[test]
    fn a_probe_match_names_the_device_service_at_the_address_the_prober_reaches() {
        let answer = probe_match(&identity(), "uuid:probe-1", IpAddr::from([192, 168, 1, 7]));
        let doc = roxmltree::Document::parse(&answer).unwrap();
        let text =
            |name: &str| doc.descendants().find(|n| n.tag_name().name() == name).and_then(|n| n.text()).unwrap_or_default().to_owned();
        assert_eq!(text("RelatesTo"), "uuid:probe-1");
        assert_eq!(text("XAddrs"), "http://192.168.1.7:8080/onvif/device_service");
        assert_eq!(text("Types"), TYPES);
        for kind in ["Hello", "Bye"] {
            assert!(roxmltree::Document::parse(&announcement(&identity(), kind)).is_ok());
        }
    }
}
