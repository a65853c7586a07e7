//! Password hashes: Argon2id in PHC form (`$argon2id$v=19$m=19456,t=2,p=1$...`), the
//! parameters OWASP recommends, about 50 ms on a PC and a few times that on a Pi 4. Callers
//! run these on a blocking thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};

/// Shortest password accepted when one is set; a camera's password guards live video.
pub const MIN_LEN: usize = 8;
/// Longest password accepted: bounds the hashing work an attacker can ask for.
pub const MAX_LEN: usize = 1024;

/// Why a password cannot be set; the message is for the person choosing it.
pub fn check_new(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(format!("the password must have at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("the password must have at most {MAX_LEN} bytes"));
    }
    Ok(())
}

/// A new Argon2id hash of `password` with a random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches `hash`; a malformed hash matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Checks that `hash` is an Argon2id PHC string this build can verify (for the config's
/// `admin_password_hash`, so a typo is found by `check-config`, not at the first login).
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("not a PHC hash string ({e}); make one with `lookout hash-password`"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!("the hash uses {}, not argon2id; make one with `lookout hash-password`", parsed.algorithm));
    }
    Ok(())
}

/// Spends about the time of a real verification, so a login for a user that does not exist
/// takes as long as one with a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not a password of anyone").unwrap_or_default());
    let _ = verify(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(check_hash(&h).is_ok());
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "garbage"));
        assert_ne!(h, hash("correct horse").unwrap(), "salted");
    }

    #[test]
    fn weak_and_huge_passwords_and_foreign_hashes_are_refused() {
        assert!(check_new("short").is_err());
        assert!(check_new(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(check_new("eight ch").is_ok());
        assert!(check_hash("$2b$12$abcdefghijklmnopqrstuu").is_err());
        assert!(check_hash("hunter2").is_err());
    }
}
