//! Signatures on deliveries, so a receiver can tell them from forgeries and replays.
//!
//! Header `Lookout-Signature: t=<Unix seconds>,v1=<hex>`, where the hex is
//! HMAC-SHA256(secret, "<t>.<body>"). A receiver recomputes it over the raw body, compares in
//! constant time, and refuses a `t` further than [`REPLAY_WINDOW`] from its own clock. Each
//! attempt is signed afresh, so a delivery retried after an outage is not refused as stale.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "lookout-signature";
/// How far a signature's time may be from the receiver's clock.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Why a delivery's signature is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the signature header is not `t=<seconds>,v1=<hex>`")]
    Malformed,
    #[error("signed {0} s away from now: outside the replay window")]
    Stale(i64),
    #[error("the signature does not match the body")]
    Mismatch,
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `t` (Unix seconds).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let digest = mac(secret, t, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// What a receiver does: checks `header` against `body` at `now` (Unix seconds).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<(), Refused> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return Err(Refused::Malformed) };
    if v1.len() != 64 || !v1.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refused::Malformed);
    }
    let expected: Vec<u8> = (0..32).filter_map(|i| u8::from_str_radix(&v1[2 * i..2 * i + 2], 16).ok()).collect();
    if (now - t).unsigned_abs() > REPLAY_WINDOW.as_secs() {
        return Err(Refused::Stale(now - t));
    }
    mac(secret, t, body).verify_slice(&expected).map_err(|_| Refused::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef";

    #[test]
    fn a_signature_verifies_and_any_change_is_refused() {
        let body = br#"{"type":"daemon_ready"}"#;
        let header = sign(SECRET, 1_800_000_000, body);
        assert_eq!(verify(SECRET, &header, body, 1_800_000_010), Ok(()));
        assert_eq!(verify(SECRET, &header, br#"{"type":"daemon_readY"}"#, 1_800_000_010), Err(Refused::Mismatch));
        assert_eq!(verify(b"another secret!!", &header, body, 1_800_000_010), Err(Refused::Mismatch));
        let moved = header.replace("t=1800000000", "t=1800000001");
        assert_eq!(verify(SECRET, &moved, body, 1_800_000_010), Err(Refused::Mismatch), "the time is signed too");
        assert_eq!(verify(SECRET, &header, body, 1_800_000_301), Err(Refused::Stale(301)));
        assert_eq!(verify(SECRET, "v1=abc", body, 0), Err(Refused::Malformed));
    }

    #[test]
    fn the_documented_recipe_gives_the_same_digest() {
        // Python's hmac.new(b"key", b"1." + b"{}", hashlib.sha256).hexdigest(), the README's
        // recipe, run outside this code.
        assert_eq!(sign(b"key", 1, b"{}"), "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224");
    }
}
