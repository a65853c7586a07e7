//! What Lookout needs from a viewer's SDP offer, and the edits it makes to its answer.
//! Pure functions over SDP text, so malformed offers are tested without a pipeline.

use std::net::IpAddr;

/// Why an offer cannot be answered; becomes a 400 with this text.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OfferError {
    #[error("the body is not a valid SDP offer")]
    Unparsable,
    #[error("the SDP offer has no video media section")]
    NoVideo,
    #[error("the SDP offer only sends video; a WHEP viewer must offer to receive it (recvonly or sendrecv)")]
    NotReceiving,
    #[error("the SDP offer has no H.264 codec with packetization-mode=1; Lookout streams H.264")]
    NoH264,
    #[error("the SDP offer has no ICE credentials (a=ice-ufrag / a=ice-pwd)")]
    NoIce,
    #[error("the SDP offer has no DTLS fingerprint (a=fingerprint); WebRTC requires DTLS-SRTP")]
    NoFingerprint,
}

/// Largest RTP payload type (the field is 7 bits, RFC 3550).
const MAX_PAYLOAD_TYPE: u32 = 127;

/// The H.264 format chosen from the viewer's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Choice {
    pub payload: u32,
    /// GStreamer's name for the offered profile (`constrained-baseline`, `baseline`, `main`...).
    pub profile: Option<String>,
    pub pli: bool,
    pub fir: bool,
}

impl H264Choice {
    /// What the device offers when it is the offerer (a WHIP push): payload 96, keyframes on
    /// PLI and FIR.
    pub fn for_offer() -> H264Choice {
        H264Choice { payload: 96, profile: Some("constrained-baseline".into()), pli: true, fir: true }
    }
}

/// The H.264 format line a WHIP offer carries: constrained baseline, packetization mode 1,
/// which SFUs that forward without transcoding accept and every browser decodes.
const WHIP_H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// webrtcbin's offer made ready to send: its H.264 `a=fmtp` lines (which name only the
/// packetization mode before any frame flowed) say constrained baseline, and an H.264
/// payload without one gets one. Other lines pass unchanged.
pub fn as_whip_offer(sdp: &str) -> String {
    let mut h264 = Vec::new();
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, codec)) = rest.split_once(' ')
            && codec.to_ascii_uppercase().starts_with("H264/")
        {
            h264.push(pt.to_owned());
        }
    }
    let mut out = String::with_capacity(sdp.len() + 128);
    let mut has_fmtp = std::collections::HashSet::new();
    let mut pending_rtpmap: Option<String> = None;
    let flush = |out: &mut String, pending: &mut Option<String>, has: &std::collections::HashSet<String>| {
        if let Some(pt) = pending.take()
            && !has.contains(&pt)
        {
            out.push_str(&format!("a=fmtp:{pt} {WHIP_H264_FMTP}\r\n"));
        }
    };
    for line in sdp.lines() {
        let fmtp_pt = line.strip_prefix("a=fmtp:").and_then(|r| r.split_once(' ')).map(|(pt, _)| pt.to_owned());
        if let Some(pt) = fmtp_pt.filter(|pt| h264.contains(pt)) {
            has_fmtp.insert(pt.clone());
            out.push_str(&format!("a=fmtp:{pt} {WHIP_H264_FMTP}\r\n"));
            continue;
        }
        // An rtpmap's fmtp, if any, follows it before the next rtpmap or media section.
        if line.starts_with("a=rtpmap:") || line.starts_with("m=") {
            flush(&mut out, &mut pending_rtpmap, &has_fmtp);
        }
        if let Some(pt) = line.strip_prefix("a=rtpmap:").and_then(|r| r.split_once(' ')).map(|(pt, _)| pt.to_owned())
            && h264.contains(&pt)
        {
            pending_rtpmap = Some(pt);
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    flush(&mut out, &mut pending_rtpmap, &has_fmtp);
    out
}

/// Parses and checks an offer; returns it parsed and the H.264 format to answer with.
pub fn inspect_offer(text: &str) -> Result<(gst_sdp::SDPMessage, H264Choice), OfferError> {
    if !text.trim_start().starts_with("v=0") {
        return Err(OfferError::Unparsable);
    }
    let msg = gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).map_err(|_| OfferError::Unparsable)?;
    let session_ice = msg.attribute_val("ice-ufrag").is_some();
    let session_fp = msg.attribute_val("fingerprint").is_some();
    let video = msg.medias().find(|m| m.media() == Some("video")).ok_or(OfferError::NoVideo)?;
    if video.attribute_val("sendonly").is_some() || video.attribute_val("inactive").is_some() {
        return Err(OfferError::NotReceiving);
    }
    if !session_ice && video.attribute_val("ice-ufrag").is_none() {
        return Err(OfferError::NoIce);
    }
    if !session_fp && video.attribute_val("fingerprint").is_none() {
        return Err(OfferError::NoFingerprint);
    }
    let mut best: Option<(u8, H264Choice)> = None;
    for fmt in video.formats() {
        // RTP payload types are 7 bits; anything larger is a broken offer, not a format.
        let Some(pt) = fmt.parse::<u32>().ok().filter(|pt| *pt <= MAX_PAYLOAD_TYPE) else { continue };
        let Some(caps) = video.caps_from_media(pt as i32) else { continue };
        let Some(s) = caps.structure(0) else { continue };
        let is_h264 = s.get::<&str>("encoding-name").is_ok_and(|n| n.eq_ignore_ascii_case("H264"));
        let mode_1 = s.get::<&str>("packetization-mode").is_ok_and(|m| m == "1");
        if !is_h264 || !mode_1 {
            continue;
        }
        // gst-sdp turns profile-level-id into a profile name. Lookout sends constrained
        // baseline: an exact match first, then baseline (a superset), then anything (every
        // Main/High decoder also decodes it).
        let profile = s.get::<&str>("profile").ok().map(str::to_owned);
        let rank = match profile.as_deref() {
            Some("constrained-baseline") => 0,
            Some("baseline") => 1,
            _ => 2,
        };
        let choice = H264Choice {
            payload: pt,
            profile,
            pli: s.get::<bool>("rtcp-fb-nack-pli").unwrap_or(false),
            fir: s.get::<bool>("rtcp-fb-ccm-fir").unwrap_or(false),
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, choice));
        }
    }
    let (_, choice) = best.ok_or(OfferError::NoH264)?;
    Ok((msg, choice))
}

/// Adds, for each host candidate in `sdp`, a copy at each announced address (same port and
/// transport): a NAT 1:1 mapping or port forward that sends those ports to this device.
pub fn announce_addresses(sdp: &str, addresses: &[IpAddr]) -> String {
    if addresses.is_empty() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len() * 2);
    let mut extra = 0u32;
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        let Some(candidate) = line.trim_end().strip_prefix("a=candidate:") else { continue };
        let fields: Vec<&str> = candidate.split(' ').collect();
        // foundation component transport priority address port "typ" type ...
        if fields.len() < 8 || fields[6] != "typ" || fields[7] != "host" {
            continue;
        }
        let Ok(own) = fields[4].parse::<IpAddr>() else { continue };
        for addr in addresses.iter().filter(|a| a.is_ipv4() == own.is_ipv4() && **a != own) {
            extra += 1;
            let priority = fields[3].parse::<u64>().unwrap_or(1).saturating_sub(u64::from(extra)).max(1);
            let mut copy = fields.clone();
            let foundation = format!("{}{}", fields[0], 90 + extra);
            let (priority, addr) = (priority.to_string(), addr.to_string());
            copy[0] = &foundation;
            copy[3] = &priority;
            copy[4] = &addr;
            out.push_str(&format!("a=candidate:{}\r\n", copy.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whip_offer_says_constrained_baseline_for_every_h264_payload() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack pli\r\n\
a=fmtp:96 packetization-mode=1\r\na=rtpmap:97 H264/90000\r\na=rtpmap:98 VP8/90000\r\na=fmtp:98 x=1\r\n";
        let out = as_whip_offer(offer);
        assert!(out.contains("a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"), "{out}");
        assert!(out.contains("a=rtpmap:97 H264/90000\r\na=fmtp:97 level-asymmetry"), "{out}");
        assert!(out.contains("a=fmtp:98 x=1\r\n"), "{out}");
        assert_eq!(out.matches("a=fmtp:96").count(), 1);
        assert!(out.contains("a=rtcp-fb:96 nack pli\r\n"));
    }

    fn inspect_offer(text: &str) -> Result<(gst_sdp::SDPMessage, H264Choice), OfferError> {
        crate::media::init().expect("GStreamer initialises");
        super::inspect_offer(text)
    }

    pub const CHROME_LIKE_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=fingerprint:sha-256 AA:BB\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=rtcp-mux\r\na=setup:actpass\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 H264/90000\r\na=rtcp-fb:103 ccm fir\r\n\
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn constrained_baseline_is_preferred() {
        let (_, choice) = inspect_offer(CHROME_LIKE_OFFER).unwrap();
        assert_eq!(choice.payload, 103);
        assert_eq!(choice.profile.as_deref(), Some("constrained-baseline"));
        assert!(choice.fir && !choice.pli);
    }

    #[test]
    fn bad_offers_say_what_is_wrong() {
        assert_eq!(inspect_offer("hello").unwrap_err(), OfferError::Unparsable);
        assert_eq!(inspect_offer("").unwrap_err(), OfferError::Unparsable);
        let audio_only = CHROME_LIKE_OFFER.replace("m=video", "m=audio");
        assert_eq!(inspect_offer(&audio_only).unwrap_err(), OfferError::NoVideo);
        let vp8_only = CHROME_LIKE_OFFER.replace("H264", "VP9");
        assert_eq!(inspect_offer(&vp8_only).unwrap_err(), OfferError::NoH264);
        let sending = CHROME_LIKE_OFFER.replace("a=recvonly", "a=sendonly");
        assert_eq!(inspect_offer(&sending).unwrap_err(), OfferError::NotReceiving);
        let no_ice = CHROME_LIKE_OFFER.replace("a=ice-ufrag:abcd\r\n", "");
        assert_eq!(inspect_offer(&no_ice).unwrap_err(), OfferError::NoIce);
        let no_fp = CHROME_LIKE_OFFER.replace("a=fingerprint:sha-256 AA:BB\r\n", "");
        assert_eq!(inspect_offer(&no_fp).unwrap_err(), OfferError::NoFingerprint);
    }

    #[test]
    fn payload_types_beyond_seven_bits_are_not_formats() {
        // rtph264pay's `pt` is 0-127: an offer reaching it with 300 would abort the request.
        let wide = CHROME_LIKE_OFFER.replace("102", "300").replace("103", "301");
        assert_eq!(inspect_offer(&wide).unwrap_err(), OfferError::NoH264);
        let one_wide = CHROME_LIKE_OFFER.replace("103", "301");
        assert_eq!(inspect_offer(&one_wide).unwrap().1.payload, 102);
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["v=0\r\nm=video\r\n", "v=0\r\nm=video 9 X 1 2 3\r\na=rtpmap:1\r\n", "v=0\n\n\n", "v=0\r\nm=\r\n"] {
            let _ = inspect_offer(text);
        }
    }

    #[test]
    fn thousands_of_mangled_offers_never_panic() {
        // Deterministic xorshift so a failure reproduces.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = CHROME_LIKE_OFFER.as_bytes();
        for _ in 0..3000 {
            let mut bytes = base[..(next() as usize % base.len()) + 1].to_vec();
            for _ in 0..(next() % 8) {
                let i = next() as usize % bytes.len();
                bytes[i] = b" :=\r\n0a/;"[next() as usize % 9];
            }
            let _ = inspect_offer(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn announced_addresses_copy_host_candidates() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
a=candidate:1 1 UDP 2015363327 10.0.2.15 40000 typ host\r\n\
a=candidate:2 1 TCP 1015021823 10.0.2.15 9 typ host tcptype active\r\n\
a=candidate:3 1 UDP 1677722111 203.0.113.1 40000 typ srflx raddr 10.0.2.15 rport 40000\r\n";
        let out = announce_addresses(sdp, &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]);
        assert!(out.contains("a=candidate:191 1 UDP 2015363326 127.0.0.1 40000 typ host\r\n"), "{out}");
        assert!(out.contains("127.0.0.1 9 typ host tcptype active"), "{out}");
        assert_eq!(out.matches("127.0.0.1").count(), 2, "srflx is not copied; IPv6 not mixed in");
        assert_eq!(announce_addresses(sdp, &[]), sdp);
    }
}
