//! Digest access authentication (RFC 7616 with MD5, and RFC 2069's form without `qop`), the
//! scheme NVRs and RTSP libraries fall back to when a camera refuses Basic. Sans-IO: the
//! nonce is stateless (a time and its HMAC under the device's secret), so nothing is kept
//! per client and a restart invalidates nothing but nonces older than [`NONCE_LIFETIME`].
//!
//! Digest cannot be checked against an Argon2 hash: it needs `HA1 = MD5(user:realm:password)`,
//! which the accounts file keeps beside the hash (see `store::User::digest_ha1`). HA1 is as
//! good as the password for this realm and a fast hash of it, so it is written only to the
//! accounts file (mode 0600, beside the secrets that sign every session) and never shown.

use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};

use super::{constant_time_eq, hex};

/// The realm every challenge names; part of HA1, so changing it invalidates every stored HA1.
pub const REALM: &str = "Lookout";

/// How long a nonce is accepted. A client answers a challenge at once and then reuses the
/// nonce for each request of its session (RTSP keep-alives come every 30-60 s); after this
/// it gets a new challenge with `stale=true` and answers again without asking its user.
pub const NONCE_LIFETIME_S: i64 = 600;

/// A client's `Authorization: Digest …` answer, with the request it came with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub user: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub algorithm: Option<String>,
    /// The request's method (`DESCRIBE`, `SETUP`…): part of what the response covers.
    pub method: String,
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The nonce is ours but too old: challenge again with `stale=true`.
    Stale,
    /// Anything else: wrong password, foreign nonce, another realm or algorithm.
    Wrong,
}

/// `MD5(user:realm:password)` in hex: what the accounts file keeps for Digest.
pub fn ha1(user: &str, password: &str) -> String {
    hex(&Md5::digest(format!("{user}:{REALM}:{password}")))
}

/// A fresh nonce for a challenge at `now` (Unix seconds).
pub fn nonce(secret: &str, now: i64) -> String {
    format!("{now:x}{}", nonce_mac(secret, now))
}

/// The challenge header's value.
pub fn challenge(nonce: &str, stale: bool) -> String {
    let stale = if stale { ", stale=true" } else { "" };
    format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5{stale}")
}

/// Checks `answer` against the user's `ha1` at `now`.
pub fn verify(answer: &Answer, ha1: &str, secret: &str, now: i64) -> Result<(), Rejection> {
    if answer.realm != REALM || answer.algorithm.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
        return Err(Rejection::Wrong);
    }
    let issued = nonce_time(&answer.nonce, secret).ok_or(Rejection::Wrong)?;
    let expected = expected_response(answer, ha1).ok_or(Rejection::Wrong)?;
    if !constant_time_eq(expected.as_bytes(), answer.response.to_ascii_lowercase().as_bytes()) {
        return Err(Rejection::Wrong);
    }
    if now - issued > NONCE_LIFETIME_S || issued > now + 60 { Err(Rejection::Stale) } else { Ok(()) }
}

/// The response a client that knows the password computes; `None` for a `qop` we did not offer.
fn expected_response(a: &Answer, ha1: &str) -> Option<String> {
    let ha2 = hex(&Md5::digest(format!("{}:{}", a.method, a.uri)));
    let text = match a.qop.as_deref() {
        None => format!("{ha1}:{}:{ha2}", a.nonce),
        Some("auth") => format!("{ha1}:{}:{}:{}:auth:{ha2}", a.nonce, a.nc.as_deref()?, a.cnonce.as_deref()?),
        Some(_) => return None,
    };
    Some(hex(&Md5::digest(text)))
}

/// When a nonce of ours was issued; `None` for one we did not make.
fn nonce_time(nonce: &str, secret: &str) -> Option<i64> {
    // The MAC is 24 hex digits; the time before it is a few.
    let split = nonce.len().checked_sub(24)?;
    let (time, mac) = nonce.split_at(split);
    let time = i64::from_str_radix(time, 16).ok()?;
    constant_time_eq(nonce_mac(secret, time).as_bytes(), mac.as_bytes()).then_some(time)
}

fn nonce_mac(secret: &str, time: i64) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"digest-nonce:");
    mac.update(&time.to_be_bytes());
    hex(&mac.finalize().into_bytes()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "00112233445566778899aabbccddeeff";

    fn md5_hex(text: &str) -> String {
        hex(&Md5::digest(text))
    }

    /// What a client computes, written out from RFC 7616's formulas.
    fn client_answer(password: &str, nonce: &str, qop: Option<&str>) -> Answer {
        let (user, method, uri) = ("anna", "DESCRIBE", "rtsp://lookout.local:8554/front");
        let ha1 = md5_hex(&format!("{user}:{REALM}:{password}"));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let response = match qop {
            None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
            Some(q) => md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:{q}:{ha2}")),
        };
        Answer {
            user: user.into(),
            realm: REALM.into(),
            nonce: nonce.into(),
            uri: uri.into(),
            response,
            qop: qop.map(Into::into),
            nc: qop.map(|_| "00000001".into()),
            cnonce: qop.map(|_| "c0ffee".into()),
            algorithm: None,
            method: method.into(),
        }
    }

    #[test]
    fn a_client_that_knows_the_password_is_accepted_with_and_without_qop() {
        let ha1 = ha1("anna", "correct horse");
        let n = nonce(SECRET, 1_000_000);
        assert_eq!(verify(&client_answer("correct horse", &n, None), &ha1, SECRET, 1_000_010), Ok(()));
        assert_eq!(verify(&client_answer("correct horse", &n, Some("auth")), &ha1, SECRET, 1_000_010), Ok(()));
    }

    #[test]
    fn a_wrong_password_a_foreign_nonce_or_another_method_is_refused() {
        let ha1 = ha1("anna", "correct horse");
        let n = nonce(SECRET, 1_000_000);
        assert_eq!(verify(&client_answer("wrong", &n, None), &ha1, SECRET, 1_000_010), Err(Rejection::Wrong));
        let foreign = nonce("another device's secret", 1_000_000);
        assert_eq!(verify(&client_answer("correct horse", &foreign, None), &ha1, SECRET, 1_000_010), Err(Rejection::Wrong));
        let mut replayed = client_answer("correct horse", &n, None);
        replayed.method = "PLAY".into();
        assert_eq!(verify(&replayed, &ha1, SECRET, 1_000_010), Err(Rejection::Wrong));
        let mut other_qop = client_answer("correct horse", &n, Some("auth-int"));
        other_qop.qop = Some("auth-int".into());
        assert_eq!(verify(&other_qop, &ha1, SECRET, 1_000_010), Err(Rejection::Wrong));
        assert_eq!(verify(&client_answer("correct horse", "zz", None), &ha1, SECRET, 1_000_010), Err(Rejection::Wrong));
    }

    #[test]
    fn an_old_nonce_with_the_right_password_is_stale_not_wrong() {
        let ha1 = ha1("anna", "correct horse");
        let n = nonce(SECRET, 1_000_000);
        let later = 1_000_000 + NONCE_LIFETIME_S + 1;
        assert_eq!(verify(&client_answer("correct horse", &n, None), &ha1, SECRET, later), Err(Rejection::Stale));
        assert!(challenge(&n, true).ends_with("stale=true"));
    }

    #[test]
    fn ha1_is_rfc_2617s() {
        // RFC 2617 section 3.5's example, with its realm.
        assert_eq!(md5_hex("Mufasa:testrealm@host.com:Circle Of Life"), "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(ha1("Mufasa", "Circle Of Life").len(), 32);
    }
}
