//! Property tests of the parsers that take input from strangers: SDP offers, credentials
//! (tokens and session cookies), config files, recordings queries, DNS queries to the
//! hotspot and what wpa_supplicant reports of nearby networks. Each never panics, and
//! random input never passes as valid. The number of cases is proptest's default (256) unless
//! `PROPTEST_CASES` says otherwise; `scripts/test` keeps it bounded.

use std::path::Path;
use std::time::Duration;

use lookout::auth::{Auth, Lifetimes};
use lookout::events::Bus;
use proptest::prelude::*;

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";

fn auth() -> (tempfile::TempDir, Auth) {
    let dir = tempfile::tempdir().unwrap();
    let auth = Auth::open(dir.path(), None, Lifetimes { idle: Duration::from_secs(60), absolute: Duration::from_secs(60) }, Bus::default());
    (dir, auth)
}

proptest! {
    #[test]
    fn offers_with_any_line_replaced_never_panic(line in 0usize..12, junk in ".{0,200}") {
        lookout::media::init().unwrap();
        let mut lines: Vec<&str> = OFFER.split("\r\n").collect();
        let at = line % lines.len();
        lines[at] = &junk;
        let _ = lookout::media::webrtc::sdp::inspect_offer(&lines.join("\r\n"));
    }

    #[test]
    fn arbitrary_bytes_as_an_offer_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        lookout::media::init().unwrap();
        let _ = lookout::media::webrtc::sdp::inspect_offer(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_credentials_are_never_accepted(text in "[A-Za-z0-9_.=-]{0,600}", dots in "[A-Za-z0-9_-]{1,80}\\.[A-Za-z0-9_-]{1,200}\\.[A-Za-z0-9_-]{0,80}") {
        let (_dir, auth) = auth();
        for t in [&text, &dots] {
            prop_assert!(auth.token(t).is_err());
            prop_assert!(auth.session(t).is_err());
        }
    }

    #[test]
    fn any_config_text_is_a_config_or_a_clear_error(text in "(\\[[a-z.]{1,12}\\]\n|[a-z_]{1,12} = (\"[^\"\n]{0,20}\"|[0-9]{1,6}|true|\\[\\])\n){0,12}") {
        match lookout::config::Config::from_toml(&text, Path::new("fuzz.toml")) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn any_packet_to_the_hotspot_dns_is_answered_or_dropped_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Some(reply) = lookout::network::captive::answer(&bytes, std::net::Ipv4Addr::new(192, 168, 4, 1)) {
            prop_assert!(reply.len() >= 12 && reply[0..2] == bytes[0..2]);
        }
    }

    #[test]
    fn any_scan_report_parses_to_named_networks(text in r"([0-9a-f:]{0,17}\t[0-9-]{0,5}\t[0-9-]{0,4}\t[\[\]A-Z0-9+-]{0,30}\t.{0,40}\n){0,20}") {
        for seen in lookout::network::wpa::scan_results(&format!("header\n{text}")) {
            prop_assert!(!seen.ssid.is_empty());
        }
    }
}
