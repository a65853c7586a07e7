//! The hotspot's captive-portal DNS: every name a phone asks for while on the hotspot resolves
//! to the device, so the phone's connectivity check lands on the setup page and the phone
//! opens it by itself. Sans-IO ([`answer`]: one query in, one reply out); the shell binds UDP
//! port 53 on the hotspot's address only while the hotspot is open.

use std::net::Ipv4Addr;

/// Seconds a phone may cache the answer: short, so names resolve for real once the phone
/// leaves the hotspot.
const TTL: u32 = 10;
/// Largest query handled (a DNS query over UDP is at most 512 bytes without EDNS).
const MAX_QUERY: usize = 512;

/// The reply to one DNS query: an A record `device` for any name asked with type A (or ANY),
/// no records (but no error) for other types such as AAAA, so the phone falls back to IPv4;
/// `None` for what is not a standard query (dropped, as a resolver would).
pub fn answer(query: &[u8], device: Ipv4Addr) -> Option<Vec<u8>> {
    if query.len() < 12 || query.len() > MAX_QUERY {
        return None;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let questions = u16::from_be_bytes([query[4], query[5]]);
    if is_response || questions != 1 {
        return None;
    }
    // The question: labels up to a zero byte, then type and class.
    let mut at = 12;
    loop {
        let len = *query.get(at)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 != 0 || len > 63 {
            return None; // no compression in a question
        }
        at += 1 + len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(at + 2)?, *query.get(at + 3)?]);
    let question = &query[12..at + 4];

    let mut reply = Vec::with_capacity(question.len() + 32);
    reply.extend_from_slice(&query[0..2]); // id
    let recursion_desired = flags & 0x0100;
    let a_record = opcode == 0 && qclass == 1 && (qtype == 1 || qtype == 255);
    // QR, AA, RD as asked, RA; RCODE 4 (not implemented) for other opcodes.
    let rcode = if opcode == 0 { 0 } else { 4 };
    reply.extend_from_slice(&(0x8000 | 0x0400 | recursion_desired | 0x0080 | rcode).to_be_bytes());
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&u16::from(a_record).to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]); // no authority, no additional records
    reply.extend_from_slice(question);
    if a_record {
        reply.extend_from_slice(&[0xc0, 12]); // the name: a pointer to the question's
        reply.extend_from_slice(&1u16.to_be_bytes());
        reply.extend_from_slice(&1u16.to_be_bytes());
        reply.extend_from_slice(&TTL.to_be_bytes());
        reply.extend_from_slice(&4u16.to_be_bytes());
        reply.extend_from_slice(&device.octets());
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn any_name_resolves_to_the_device() {
        let q = query("connectivitycheck.gstatic.com", 1);
        let r = answer(&q, DEVICE).expect("a reply");
        assert_eq!(&r[0..2], &[0x12, 0x34], "the query's id");
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(r[3] & 0x0f, 0, "no error");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &DEVICE.octets());
        assert_eq!(&r[12..q.len()], &q[12..], "the question repeated");
    }

    #[test]
    fn aaaa_gets_no_records_and_no_error_so_the_phone_uses_ipv4() {
        let r = answer(&query("captive.apple.com", 28), DEVICE).expect("a reply");
        assert_eq!((r[3] & 0x0f, u16::from_be_bytes([r[6], r[7]])), (0, 0));
    }

    #[test]
    fn malformed_or_foreign_packets_are_dropped_never_panic() {
        assert_eq!(answer(&[], DEVICE), None);
        assert_eq!(answer(&[0; 11], DEVICE), None);
        let mut response = query("a.b", 1);
        response[2] |= 0x80;
        assert_eq!(answer(&response, DEVICE), None, "a response is not answered");
        let mut truncated = query("example.com", 1);
        truncated.truncate(truncated.len() - 3);
        assert_eq!(answer(&truncated, DEVICE), None);
        let mut label_overrun = query("example.com", 1);
        label_overrun[12] = 60;
        assert_eq!(answer(&label_overrun, DEVICE), None);
        assert_eq!(answer(&vec![0u8; 600], DEVICE), None);
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = answer(&junk, DEVICE);
        }
    }
}
