//! The page's login-session cookie: an HS256 JWT signed with the session secret. (Scoped
//! tokens are shorter: see `token_text`.)

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// A login session of the page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionClaims {
    /// `"session"`: a token cannot pass for a session, even were the secrets equal.
    pub typ: String,
    pub sub: String,
    /// The session's id: what logout ends and idle expiry tracks.
    pub sid: String,
    /// The user's password generation when the session began.
    pub generation: u64,
    pub iat: i64,
    pub exp: i64,
}

/// Longest credential accepted, before any parsing: bounds the work a stranger can cause.
pub const MAX_LEN: usize = 4096;

fn key(secret_hex: &str) -> Vec<u8> {
    secret_hex.as_bytes().to_vec()
}

/// Signs `claims`.
pub fn sign<T: Serialize>(claims: &T, secret_hex: &str) -> Result<String, String> {
    let key = EncodingKey::from_secret(&key(secret_hex)).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).map_err(|e| e.to_string())
}

/// Checks the signature, the algorithm, the expiry and the type; `None` for anything else.
pub fn verify<T: for<'de> Deserialize<'de>>(text: &str, secret_hex: &str, typ: &str) -> Option<T> {
    if text.len() > MAX_LEN || secret_hex.is_empty() {
        return None;
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp"]);
    let key = DecodingKey::from_secret(&key(secret_hex)).ok()?;
    let data = jsonwebtoken::decode::<serde_json::Value>(text, &key, &validation).ok()?;
    if data.claims.get("typ").and_then(|t| t.as_str()) != Some(typ) {
        return None;
    }
    serde_json::from_value(data.claims).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn session(exp: i64) -> SessionClaims {
        SessionClaims { typ: "session".into(), sub: "admin".into(), sid: "s1".into(), generation: 1, iat: now(), exp }
    }

    #[test]
    fn a_signed_session_round_trips_and_tampering_expiry_and_type_are_refused() {
        let secret = "ab".repeat(32);
        let claims = session(now() + 60);
        let text = sign(&claims, &secret).unwrap();
        assert_eq!(verify::<SessionClaims>(&text, &secret, "session"), Some(claims));
        assert!(verify::<SessionClaims>(&text, &"cd".repeat(32), "session").is_none(), "other secret");
        assert!(verify::<SessionClaims>(&text, &secret, "other").is_none(), "another type");
        let expired = sign(&session(now() - 1), &secret).unwrap();
        assert!(verify::<SessionClaims>(&expired, &secret, "session").is_none(), "expired");
        // Flip one character of the payload: the signature no longer matches.
        let mut parts: Vec<String> = text.split('.').map(String::from).collect();
        let mut payload: Vec<char> = parts[1].chars().collect();
        payload[5] = if payload[5] == 'A' { 'B' } else { 'A' };
        parts[1] = payload.into_iter().collect();
        assert!(verify::<SessionClaims>(&parts.join("."), &secret, "session").is_none(), "tampered");
        // `alg: none` and garbage never pass.
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", text.split('.').nth(1).unwrap());
        assert!(verify::<SessionClaims>(&none, &secret, "session").is_none());
        for garbage in ["", ".", "..", "a.b.c", &"x".repeat(MAX_LEN + 1)] {
            assert!(verify::<SessionClaims>(garbage, &secret, "session").is_none(), "{garbage}");
        }
    }
}
