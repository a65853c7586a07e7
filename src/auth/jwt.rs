//! The two signed credentials, both HS256 JWTs: the page's login-session cookie (signed with
//! the session secret) and scoped tokens for players and scripts (signed with the token
//! secret, so "revoke all" can replace it without signing the owner out).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Grant;

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

/// A scoped token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenClaims {
    /// `"token"`.
    pub typ: String,
    pub jti: String,
    /// `None`: every camera.
    pub cameras: Option<Vec<String>>,
    pub grants: Vec<Grant>,
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

    fn token(exp: i64) -> TokenClaims {
        TokenClaims { typ: "token".into(), jti: "t1".into(), cameras: Some(vec!["cam".into()]), grants: vec![Grant::View], iat: now(), exp }
    }

    #[test]
    fn a_signed_token_round_trips_and_tampering_expiry_and_type_are_refused() {
        let secret = "ab".repeat(32);
        let claims = token(now() + 60);
        let text = sign(&claims, &secret).unwrap();
        assert_eq!(verify::<TokenClaims>(&text, &secret, "token"), Some(claims));
        assert!(verify::<TokenClaims>(&text, &"cd".repeat(32), "token").is_none(), "other secret");
        assert!(verify::<SessionClaims>(&text, &secret, "session").is_none(), "a token is not a session");
        let expired = sign(&token(now() - 1), &secret).unwrap();
        assert!(verify::<TokenClaims>(&expired, &secret, "token").is_none(), "expired");
        // Flip one character of the payload: the signature no longer matches.
        let mut parts: Vec<String> = text.split('.').map(String::from).collect();
        let mut payload: Vec<char> = parts[1].chars().collect();
        payload[5] = if payload[5] == 'A' { 'B' } else { 'A' };
        parts[1] = payload.into_iter().collect();
        assert!(verify::<TokenClaims>(&parts.join("."), &secret, "token").is_none(), "tampered");
        // `alg: none` and garbage never pass.
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", text.split('.').nth(1).unwrap());
        assert!(verify::<TokenClaims>(&none, &secret, "token").is_none());
        for garbage in ["", ".", "..", "a.b.c", &"x".repeat(MAX_LEN + 1)] {
            assert!(verify::<TokenClaims>(garbage, &secret, "token").is_none(), "{garbage}");
        }
    }
}
