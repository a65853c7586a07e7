//! The text of a scoped token: `lk_`, its id (32 hex digits: 128 random bits), and the id's
//! HMAC-SHA256 under the token secret cut to 128 bits (32 hex digits). What a token may do
//! lives in its record (`store::TokenRecord`), which every use reads anyway to see whether it
//! was revoked, so the text carries nothing else. That keeps it at 67 characters: short
//! enough for an NVR's password field and for ffmpeg, which cuts the user and password of an
//! RTSP URL at 127 characters (a JWT with the grants inside is about 300). Signing the id
//! again gives the text back, which Digest and WS-UsernameToken digests need.

use hmac::{KeyInit, Mac};

/// What every token starts with, so a token is told apart from a password at a glance.
pub const PREFIX: &str = "lk_";
/// The id's length in hex digits.
const ID_LEN: usize = 32;
/// The whole text's length.
pub const LEN: usize = PREFIX.len() + 2 * ID_LEN;

/// The token's text for `id` under `secret`.
pub fn text(id: &str, secret: &str) -> String {
    format!("{PREFIX}{id}{}", mac(id, secret))
}

/// The id of a token `text` made under `secret`; `None` for anything else.
pub fn id_of<'a>(text: &'a str, secret: &str) -> Option<&'a str> {
    let body = text.strip_prefix(PREFIX).filter(|b| b.len() == 2 * ID_LEN && !secret.is_empty())?;
    let (id, given) = body.split_at(ID_LEN);
    let expected = mac(id, secret);
    super::constant_time_eq(given.as_bytes(), expected.as_bytes()).then_some(id)
}

fn mac(id: &str, secret: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"lookout-token:");
    mac.update(id.as_bytes());
    super::hex(&mac.finalize().into_bytes()[..ID_LEN / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_is_short_and_only_its_secret_makes_it() {
        let t = text(ID, "secret one");
        assert_eq!(t.len(), LEN);
        assert!(t.len() < 100, "fits ffmpeg's 127 characters with a user name");
        assert_eq!(id_of(&t, "secret one"), Some(ID));
        assert_eq!(id_of(&t, "secret two"), None, "revoke-all replaces the secret");
        let mut tampered = t.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(id_of(std::str::from_utf8(&tampered).unwrap(), "secret one"), None);
        let other = text("ffffffffffffffffffffffffffffffff", "secret one");
        let forged = format!("{PREFIX}{ID}{}", &other[PREFIX.len() + 32..]);
        assert_eq!(id_of(&forged, "secret one"), None, "another token's MAC is not this one's");
        for junk in ["", "lk_", "garbage", &t[..LEN - 1], &format!("{t}0")] {
            assert_eq!(id_of(junk, "secret one"), None, "{junk}");
        }
        assert_eq!(id_of(&t, ""), None);
    }
}
