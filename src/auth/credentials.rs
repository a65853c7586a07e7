//! The credentials that protocols other than the page carry (RTSP's Basic and Digest, a token
//! as the password or in the URL, ONVIF's WS-UsernameToken) turned into a [`Principal`]. What
//! that principal may do is still [`Auth::authorize`]'s decision alone.
//!
//! RTSP clients repeat their credentials on every request (DESCRIBE, SETUP, PLAY, a
//! keep-alive each minute); an Argon2 check each time would cost a Pi 4 a core's tenth of a
//! second per request. A password that passed is remembered for [`REMEMBER_FOR`] as a salted
//! SHA-256 (in memory only) together with the account's generation, so a password change or
//! a removed account ends it at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::{Auth, Denied, Principal, digest, now_unix};
use crate::events::Event;

/// How long a checked password is taken without Argon2 again.
pub const REMEMBER_FOR: Duration = Duration::from_secs(300);
/// Bound on remembered passwords (each a few dozen bytes).
const REMEMBERED_MAX: usize = 1024;

/// What a client presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password in the clear (Basic, WS-UsernameToken's PasswordText). A
    /// token with the right grants may stand in as the password, with any user name.
    Password { user: String, password: String },
    /// A token on its own (`?token=` in an RTSP URL).
    Token(String),
    /// A Digest answer to a challenge of ours.
    Digest(digest::Answer),
    /// A WS-Security UsernameToken PasswordDigest (ONVIF): `Base64(SHA-1(nonce + created +
    /// password))`. Only a token can be its password: the device keeps no user's password.
    WsDigest { user: String, digest: String, nonce: String, created: String },
}

/// How far a WS-Security `Created` may be from the device's clock: the digest is replayable
/// within it. ONVIF clients read the device's clock first and correct for it.
pub const WS_CREATED_WITHIN_S: i64 = 300;

/// Passwords that passed recently, by salted hash.
pub(super) struct Remembered {
    salt: [u8; 16],
    entries: Mutex<HashMap<[u8; 32], (String, u64, Instant)>>,
}

impl Default for Remembered {
    fn default() -> Self {
        let mut salt = [0u8; 16];
        // Without randomness the salt is zero: the entries stay in memory either way.
        let _ = getrandom::fill(&mut salt);
        Remembered { salt, entries: Mutex::new(HashMap::new()) }
    }
}

impl Remembered {
    fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }
}

/// What a password check found, before the limiter and the event.
enum Checked {
    Passed(Principal),
    Failed(String),
}

impl Auth {
    /// The principal behind a credential from `address`. Failures count against the same
    /// per-address limit as the page's logins and are published as `login_failed`.
    pub async fn verify(&self, address: IpAddr, credential: &Credential) -> Result<Principal, Denied> {
        if self.needs_setup() {
            return Err(Denied::SetupRequired);
        }
        self.store()?;
        self.limiter.check(address, std::time::Instant::now()).map_err(Denied::TooManyAttempts)?;
        let checked = match credential {
            Credential::Token(token) => match self.token(token) {
                Ok(p) => Checked::Passed(p),
                Err(_) => Checked::Failed("(token)".into()),
            },
            Credential::Password { user, password } => self.check_password(user, password).await?,
            Credential::Digest(answer) => match self.check_digest(answer)? {
                Ok(p) => Checked::Passed(p),
                Err(digest::Rejection::Stale) => return Err(Denied::StaleNonce),
                Err(digest::Rejection::Wrong) => Checked::Failed(answer.user.clone()),
            },
            Credential::WsDigest { user, digest, nonce, created } => match self.check_ws_digest(digest, nonce, created) {
                Some(p) => Checked::Passed(p),
                None => Checked::Failed(user.clone()),
            },
        };
        match checked {
            Checked::Passed(principal) => {
                self.limiter.succeeded(address);
                Ok(principal)
            }
            Checked::Failed(user) => {
                self.limiter.failed(address, std::time::Instant::now());
                let shown: String = user.chars().take(32).filter(|c| !c.is_control()).collect();
                tracing::warn!(user = %shown, %address, "credentials refused");
                self.bus.publish(Event::LoginFailed { user: shown, address: address.to_string() });
                Err(Denied::Forbidden("wrong user name or password".into()))
            }
        }
    }

    /// A fresh Digest challenge (the `WWW-Authenticate` value); `stale` after an old nonce.
    /// None while an account has no Digest credential yet (an owner seeded from the boot
    /// partition's hash who has not logged in since): a client offered Digest would choose it
    /// and fail, so only Basic is offered until that account's password has been seen once.
    pub fn digest_challenge(&self, stale: bool) -> Option<String> {
        let (secret, ready) =
            self.store.as_ref().ok()?.read(|s| (s.session_secret.clone(), s.users.iter().all(|u| u.digest_ha1.is_some())));
        ready.then(|| digest::challenge(&digest::nonce(&secret, now_unix()), stale))
    }

    async fn check_password(&self, user: &str, password: &str) -> Result<Checked, Denied> {
        // A token as the password: what NVRs that only take a user and a password can carry.
        if password.starts_with(super::token_text::PREFIX)
            && let Ok(p) = self.token(password)
        {
            return Ok(Checked::Passed(p));
        }
        let key = self.remembered.key(user, password);
        let account = self.store()?.read(|s| s.user(user).map(|u| (u.generation, u.digest_ha1.is_some())));
        let now = Instant::now();
        let known = {
            let entries = self.remembered.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.get(&key).is_some_and(|(name, generation, at)| {
                name == user && account.is_some_and(|(g, _)| g == *generation) && now.duration_since(*at) < REMEMBER_FOR
            })
        };
        if !known {
            if !self.verify_password(user, password).await? {
                return Ok(Checked::Failed(user.to_owned()));
            }
            let Some((generation, has_ha1)) = account else { return Ok(Checked::Failed(user.to_owned())) };
            let mut entries = self.remembered.entries.lock().unwrap_or_else(|e| e.into_inner());
            if entries.len() >= REMEMBERED_MAX {
                entries.retain(|_, (_, _, at)| now.duration_since(*at) < REMEMBER_FOR);
                if entries.len() >= REMEMBERED_MAX {
                    entries.clear();
                }
            }
            entries.insert(key, (user.to_owned(), generation, now));
            drop(entries);
            if !has_ha1 {
                self.remember_ha1(user, password);
            }
        }
        Ok(self.principal_of(user).map_or_else(|| Checked::Failed(user.to_owned()), Checked::Passed))
    }

    /// `Ok(Err(_))`: the answer is not right; `Err(_)`: the accounts cannot be read. The
    /// user's own password first, then every valid token as the password (the server can
    /// sign a token's text again from its record, so it need not keep the text).
    fn check_digest(&self, answer: &digest::Answer) -> Result<Result<Principal, digest::Rejection>, Denied> {
        let (secret, ha1) = self.store()?.read(|s| (s.session_secret.clone(), s.user(&answer.user).and_then(|u| u.digest_ha1.clone())));
        let now = now_unix();
        let mut outcome = Err(digest::Rejection::Wrong);
        if let Some(ha1) = ha1 {
            outcome =
                digest::verify(answer, &ha1, &secret, now).and_then(|()| self.principal_of(&answer.user).ok_or(digest::Rejection::Wrong));
        }
        if outcome == Err(digest::Rejection::Wrong) {
            for (text, principal) in self.token_texts() {
                match digest::verify(answer, &digest::ha1(&answer.user, &text), &secret, now) {
                    Ok(()) => return Ok(Ok(principal)),
                    Err(digest::Rejection::Stale) => outcome = Err(digest::Rejection::Stale),
                    Err(digest::Rejection::Wrong) => {}
                }
            }
        }
        Ok(outcome)
    }

    /// The token whose text is the password of a WS-Security PasswordDigest.
    fn check_ws_digest(&self, digest: &str, nonce: &str, created: &str) -> Option<Principal> {
        use base64::Engine as _;
        let at = chrono::DateTime::parse_from_rfc3339(created).ok()?.timestamp();
        if (at - now_unix()).abs() > WS_CREATED_WITHIN_S || nonce.len() > 256 || digest.len() > 256 {
            return None;
        }
        let nonce = base64::engine::general_purpose::STANDARD.decode(nonce).ok()?;
        let given = base64::engine::general_purpose::STANDARD.decode(digest).ok()?;
        self.token_texts().into_iter().find_map(|(text, principal)| {
            let mut h = sha1::Sha1::new();
            h.update(&nonce);
            h.update(created.as_bytes());
            h.update(text.as_bytes());
            let expected = h.finalize();
            super::constant_time_eq(&expected, &given).then_some(principal)
        })
    }

    /// The text of every valid token, signed again from its record, with its principal.
    pub(super) fn token_texts(&self) -> Vec<(String, Principal)> {
        let Ok(store) = &self.store else { return Vec::new() };
        let now = now_unix();
        let (secret, records) = store.read(|s| (s.token_secret.clone(), s.tokens.clone()));
        records
            .into_iter()
            .filter(|t| t.expires_at > now)
            .map(|t| (super::token_text::text(&t.id, &secret), Principal::Token { id: t.id, cameras: t.cameras, grants: t.grants }))
            .collect()
    }

    /// Keeps the Digest HA1 of an account made before Digest existed, now that its password
    /// has been seen to be right.
    pub(super) fn remember_ha1(&self, user: &str, password: &str) {
        let Ok(store) = self.writable() else { return };
        let ha1 = digest::ha1(user, password);
        let stored = store.update(|s| {
            if let Some(u) = s.users.iter_mut().find(|u| u.name == user) {
                u.digest_ha1 = Some(ha1.clone());
            }
            Ok(())
        });
        if let Err(e) = stored {
            tracing::warn!(user, "cannot keep the Digest credential: {e}");
        }
    }

    fn principal_of(&self, user: &str) -> Option<Principal> {
        let u = self.store.as_ref().ok()?.read(|s| s.user(user).cloned())?;
        Some(Principal::User { name: u.name, role: u.role, cameras: u.cameras, session: String::new() })
    }
}

#[cfg(test)]
mod tests;
