//! Who may do what: the owner account and its setup, users and roles, login sessions, scoped
//! tokens, and [`Auth::authorize`], the one function every route and protocol asks. No HTTP
//! here (`web::auth` carries credentials in and out) and no GStreamer.
//!
//! Trust model: nothing but `/livez` and the login and setup pages answers an anonymous
//! client. Until an owner password exists the device is in *setup*, and only the setup page
//! works. Passwords are Argon2id hashes; sessions and tokens are HS256 JWTs signed with
//! secrets that never leave `<storage>/auth/state.json`.

pub mod credentials;
pub mod digest;
pub mod jwt;
pub mod limiter;
pub mod password;
pub mod store;
pub mod token_text;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::events::{Bus, Event};
use store::{Ended, Store, TokenRecord, User};

/// The owner's user name unless setup chooses another.
pub const DEFAULT_ADMIN: &str = "admin";

/// Why an auth operation failed; the message is for a person.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("accounts file: {0}")]
    Store(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
}

/// What a person can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The owner: everything.
    Admin,
    /// Live view, recordings and snapshots of their cameras.
    Viewer,
}

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    /// Live video (WHEP, MSE, later RTSP) and the camera's state.
    View,
    /// Recordings: list, download, export.
    Playback,
    /// JPEG snapshots.
    Snapshot,
    /// Actions: identify, snapshot to disk, reboot.
    Control,
    /// `/metrics`.
    Metrics,
}

impl Grant {
    pub fn from_name(name: &str) -> Option<Grant> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }
}

/// What a request wants to do; routes map to one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Watch a camera live.
    View,
    /// Recordings of a camera.
    Playback,
    /// A snapshot of a camera.
    Snapshot,
    /// Press the device's buttons (identify, snapshot, reboot).
    Control,
    /// Read `/metrics`.
    Metrics,
    /// Read the device's state and camera list (what each one may see is filtered).
    Status,
    /// Manage users and tokens, and everything else only the owner does.
    Admin,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Anonymous,
    User { name: String, role: Role, cameras: Option<Vec<String>>, session: String },
    Token { id: String, cameras: Option<Vec<String>>, grants: Vec<Grant> },
}

impl Principal {
    /// For logs and events: the user's name or the token's id, never a secret.
    pub fn describe(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::User { name, .. } => format!("user {name}"),
            Principal::Token { id, .. } => format!("token {}", &id[..id.len().min(8)]),
        }
    }

    fn cameras(&self) -> Option<&[String]> {
        match self {
            Principal::User { role: Role::Admin, .. } | Principal::Anonymous => None,
            Principal::User { cameras, .. } | Principal::Token { cameras, .. } => cameras.as_deref(),
        }
    }

    /// Whether this principal may see `camera` at all (for filtering lists).
    pub fn sees(&self, camera: &str) -> bool {
        !matches!(self, Principal::Anonymous) && self.cameras().is_none_or(|c| c.iter().any(|n| n == camera))
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Denied {
    #[error("the device is not set up yet: set the owner's password at /setup")]
    SetupRequired,
    #[error("log in or send a token (Authorization: Bearer …)")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed logins; try again in {} s", .0.as_secs().max(1))]
    TooManyAttempts(Duration),
    #[error("the accounts file cannot be read ({0}); only the device's owner can repair it")]
    Broken(String),
    /// A Digest answer with the right password to a nonce too old: the client answers a new
    /// challenge without asking its user.
    #[error("the Digest nonce has expired; answer the new challenge")]
    StaleNonce,
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A session unused this long is over.
    pub idle: Duration,
    /// A session is over this long after login, used or not.
    pub absolute: Duration,
}

/// Accounts, credentials and the authorisation decision.
pub struct Auth {
    store: Result<Store, String>,
    /// The config's `admin_password_hash`, which seeds the owner account when there is none.
    seed_hash: Mutex<Option<String>>,
    lifetimes: Mutex<Lifetimes>,
    limiter: limiter::Limiter,
    /// When each session was last used (memory only: a restart starts idle clocks afresh).
    last_seen: Mutex<HashMap<String, Instant>>,
    /// One password check at a time: Argon2 is memory- and CPU-hungry by design.
    hashing: tokio::sync::Semaphore,
    /// Passwords that protocols repeating them on every request presented recently.
    remembered: credentials::Remembered,
    bus: Bus,
}

/// A login session just begun: the cookie's value and how long it lives.
pub struct NewSession {
    pub cookie: String,
    pub max_age: Duration,
}

/// A token just issued: the only time its text exists outside the client.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    pub token: String,
    #[serde(flatten)]
    pub record: TokenRecord,
}

/// A user as the owner sees it in the list (no hash).
#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    pub cameras: Option<Vec<String>>,
}

/// A new account's password generation: random, so a session of an account removed earlier
/// never matches a new account that reuses its name.
fn first_generation() -> Result<u64, AuthError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Store(format!("no randomness: {e}")))?;
    // Leaves room to count password changes up from it.
    Ok(u64::from_le_bytes(bytes) >> 1)
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Lower-case hex of `bytes`: how secrets, ids, MACs and digests are written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets (MACs, digests) are equal, taking the same time wherever they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// User names: what RTSP and ONVIF clients can carry in a URL without escaping.
pub fn check_user_name(name: &str) -> Result<(), AuthError> {
    let ok = (1..=32).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok { Ok(()) } else { Err(AuthError::Invalid("a user name is 1-32 letters, digits, `.`, `_` or `-`".into())) }
}

impl Auth {
    /// Opens the accounts under `<data>/auth`. A damaged accounts file does not stop the
    /// daemon (recording goes on); every request that needs a login is refused with the reason.
    pub fn open(data: &Path, seed_hash: Option<String>, lifetimes: Lifetimes, bus: Bus) -> Auth {
        let dir = data.join("auth");
        let store = match Store::open(&dir) {
            Ok(store) => Ok(store),
            // No data partition (missing, read-only): the flashed owner hash still lets the
            // owner in, so the live view stays reachable; nothing is kept across a restart.
            Err(e) if !dir.join("state.json").exists() && seed_hash.is_some() => {
                tracing::error!("{e}; accounts are kept in memory until the data partition is back and the daemon restarts");
                Store::in_memory().map_err(|e| e.to_string())
            }
            Err(e) => {
                tracing::error!("{e}; every login is refused until it is repaired");
                Err(e.to_string())
            }
        };
        let auth = Auth {
            store,
            seed_hash: Mutex::new(seed_hash),
            lifetimes: Mutex::new(lifetimes),
            limiter: limiter::Limiter::default(),
            last_seen: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(1),
            remembered: credentials::Remembered::default(),
            bus,
        };
        auth.seed_owner();
        auth
    }

    /// Acts on a reset file (`lookout-reset` on the boot partition) once: clears the owner
    /// password and deletes the file (or, if it cannot, remembers having acted on it).
    pub fn reset_if_asked(&self, file: &Path) {
        let Ok(meta) = std::fs::metadata(file) else { return };
        let marker = format!("{:?}/{}", meta.modified().ok(), meta.len());
        let Ok(store) = &self.store else { return };
        if store.read(|s| s.reset_marker.as_deref() == Some(marker.as_str())) {
            return;
        }
        tracing::warn!("{} found: resetting the owner password", file.display());
        if let Err(e) = self.reset_owner() {
            tracing::error!("reset asked by {} failed: {e}", file.display());
            return;
        }
        let _ = store.update(|s| {
            s.reset_marker = Some(marker.clone());
            Ok(())
        });
        if let Err(e) = std::fs::remove_file(file) {
            tracing::info!("{} stays ({e}); it will not reset again unless it changes", file.display());
        }
    }

    /// Carries out resets asked for on the bus (the button held 10 s) until `shutdown`, and
    /// says on the bus whether the device is in setup.
    pub async fn run(self: std::sync::Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut events = self.bus.subscribe();
        if self.needs_setup() {
            self.bus.publish(Event::SetupRequired);
        }
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            match event {
                Ok(Event::OwnerResetRequested { origin }) => {
                    tracing::warn!(%origin, "owner password reset requested");
                    if let Err(e) = self.reset_owner() {
                        tracing::error!("owner password reset failed: {e}");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    }

    /// The store for a change, or why there is none.
    fn writable(&self) -> Result<&Store, AuthError> {
        self.store.as_ref().map_err(|e| AuthError::Store(e.clone()))
    }

    fn lifetimes(&self) -> Lifetimes {
        *self.lifetimes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New `[auth]` settings while running: session lifetimes apply to sessions from now on
    /// (and to idle checks at once); a new `admin_password_hash` becomes the owner if there
    /// is none yet. (`reset_file` is looked at on each start.)
    pub fn reconfigure(&self, lifetimes: Lifetimes, seed_hash: Option<String>) {
        *self.lifetimes.lock().unwrap_or_else(|e| e.into_inner()) = lifetimes;
        *self.seed_hash.lock().unwrap_or_else(|e| e.into_inner()) = seed_hash;
        self.seed_owner();
    }

    fn store(&self) -> Result<&Store, Denied> {
        self.store.as_ref().map_err(|e| Denied::Broken(e.clone()))
    }

    /// The boot partition's hash becomes the owner account when there is none (first boot,
    /// or after a reset).
    fn seed_owner(&self) {
        let seed = self.seed_hash.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (Ok(store), Some(hash)) = (&self.store, &seed) else { return };
        let seeded = store.update(|s| {
            if s.admin().is_some() {
                return Ok(false);
            }
            s.users.retain(|u| u.name != DEFAULT_ADMIN);
            let generation = first_generation()?;
            s.users.push(User {
                name: DEFAULT_ADMIN.into(),
                role: Role::Admin,
                cameras: None,
                password_hash: hash.clone(),
                generation,
                digest_ha1: None,
            });
            Ok(true)
        });
        match seeded {
            Ok(true) => tracing::info!("owner account `{DEFAULT_ADMIN}` set from the config's admin_password_hash"),
            Ok(false) => {}
            Err(e) => tracing::error!("cannot set the owner account from the config: {e}"),
        }
    }

    /// True until an owner password exists.
    pub fn needs_setup(&self) -> bool {
        self.store.as_ref().is_ok_and(|s| s.read(|s| s.admin().is_none()))
    }

    /// Clears the owner's password (physical reset): the device returns to setup. Other
    /// users, tokens and recordings stay.
    pub fn reset_owner(&self) -> Result<(), AuthError> {
        let store = self.writable()?;
        store.update(|s| {
            s.users.retain(|u| u.role != Role::Admin);
            Ok(())
        })?;
        tracing::warn!("owner password cleared by a physical reset: the device is in setup until a new one is set");
        self.seed_owner();
        if self.needs_setup() {
            self.bus.publish(Event::SetupRequired);
        }
        Ok(())
    }

    /// Sets the owner's name and password while in setup; refused once set up.
    pub async fn setup(&self, name: &str, password: &str) -> Result<NewSession, AuthError> {
        check_user_name(name)?;
        password::check_new(password).map_err(AuthError::Invalid)?;
        let hash = self.hash(password).await?;
        let store = self.writable()?;
        store.update(|s| {
            if s.admin().is_some() {
                return Err(AuthError::Conflict("the device is already set up; log in instead".into()));
            }
            s.users.retain(|u| u.name != name);
            let generation = first_generation()?;
            let digest_ha1 = Some(digest::ha1(name, password));
            s.users.push(User { name: name.into(), role: Role::Admin, cameras: None, password_hash: hash, generation, digest_ha1 });
            Ok(())
        })?;
        tracing::info!(user = name, "owner account set up");
        self.bus.publish(Event::SetupCompleted);
        self.begin_session(name)
    }

    async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let _turn = self.hashing.acquire().await.map_err(|_| AuthError::Store("shutting down".into()))?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
            .map_err(AuthError::Store)
    }

    /// Checks a name and password from `address`; limited per address and globally, and each
    /// failure is an event (without the password).
    pub async fn login(&self, address: IpAddr, name: &str, password: &str) -> Result<NewSession, Denied> {
        if self.needs_setup() {
            return Err(Denied::SetupRequired);
        }
        self.limiter.check(address, Instant::now()).map_err(Denied::TooManyAttempts)?;
        if self.verify_password(name, password).await? {
            self.limiter.succeeded(address);
            tracing::info!(user = name, %address, "logged in");
            if self.store()?.read(|s| s.user(name).is_some_and(|u| u.digest_ha1.is_none())) {
                self.remember_ha1(name, password);
            }
            return self.begin_session(name).map_err(|e| Denied::Broken(e.to_string()));
        }
        self.limiter.failed(address, Instant::now());
        let shown: String = name.chars().take(32).filter(|c| !c.is_control()).collect();
        tracing::warn!(user = %shown, %address, "login failed");
        self.bus.publish(Event::LoginFailed { user: shown, address: address.to_string() });
        Err(Denied::Forbidden("wrong user name or password".into()))
    }

    /// Whether `name`'s password is `password` (constant work whether or not the user exists).
    async fn verify_password(&self, name: &str, password: &str) -> Result<bool, Denied> {
        let hash = self.store()?.read(|s| s.user(name).map(|u| u.password_hash.clone()));
        let _turn = self.hashing.acquire().await.map_err(|_| Denied::Broken("shutting down".into()))?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || match hash {
            Some(h) => password::verify(&password, &h),
            None => {
                password::verify_nothing(&password);
                false
            }
        })
        .await
        .map_err(|e| Denied::Broken(e.to_string()))
    }

    fn begin_session(&self, name: &str) -> Result<NewSession, AuthError> {
        let store = self.writable()?;
        let (secret, generation) = store.read(|s| (s.session_secret.clone(), s.user(name).map_or(0, |u| u.generation)));
        let sid = store::random_hex()?;
        let iat = now_unix();
        let claims = jwt::SessionClaims {
            typ: "session".into(),
            sub: name.into(),
            sid: sid.clone(),
            generation,
            iat,
            exp: iat + self.lifetimes().absolute.as_secs() as i64,
        };
        let cookie = jwt::sign(&claims, &secret).map_err(AuthError::Store)?;
        self.last_seen.lock().expect("last_seen lock never poisoned").insert(sid, Instant::now());
        Ok(NewSession { cookie, max_age: self.lifetimes().absolute })
    }

    /// The user a session cookie belongs to, if it is still good: signed by us, not expired,
    /// not logged out, not idle too long, and not from before a password change.
    pub fn session(&self, cookie: &str) -> Result<Principal, Denied> {
        let store = self.store()?;
        let secret = store.read(|s| s.session_secret.clone());
        let claims: jwt::SessionClaims = jwt::verify(cookie, &secret, "session").ok_or(Denied::Unauthenticated)?;
        let user = store
            .read(|s| {
                let ended = s.ended_sessions.iter().any(|e| e.session == claims.sid);
                s.user(&claims.sub).filter(|u| !ended && u.generation == claims.generation).cloned()
            })
            .ok_or(Denied::Unauthenticated)?;
        let mut seen = self.last_seen.lock().expect("last_seen lock never poisoned");
        let now = Instant::now();
        if let Some(last) = seen.get(&claims.sid)
            && now.duration_since(*last) > self.lifetimes().idle
        {
            return Err(Denied::Unauthenticated);
        }
        seen.insert(claims.sid.clone(), now);
        if seen.len() > 10_000 {
            let idle = self.lifetimes().idle;
            seen.retain(|_, t| now.duration_since(*t) <= idle);
        }
        Ok(Principal::User { name: user.name, role: user.role, cameras: user.cameras, session: claims.sid })
    }

    /// Ends a login session (logout); its cookie is refused from now on.
    pub fn end_session(&self, principal: &Principal) -> Result<(), AuthError> {
        let Principal::User { session, .. } = principal else { return Ok(()) };
        let until = now_unix() + self.lifetimes().absolute.as_secs() as i64;
        let store = self.writable()?;
        store.update(|s| {
            s.ended_sessions.push(Ended { session: session.clone(), until });
            Ok(())
        })?;
        self.last_seen.lock().expect("last_seen lock never poisoned").remove(session);
        Ok(())
    }

    /// The token's principal, if the token is ours, unexpired and not revoked.
    pub fn token(&self, text: &str) -> Result<Principal, Denied> {
        let store = self.store()?;
        let secret = store.read(|s| s.token_secret.clone());
        let id = token_text::id_of(text, &secret).ok_or(Denied::Unauthenticated)?;
        let record = store.read(|s| s.tokens.iter().find(|t| t.id == id && t.expires_at > now_unix()).cloned());
        let record = record.ok_or(Denied::Unauthenticated)?;
        Ok(Principal::Token { id: record.id, cameras: record.cameras, grants: record.grants })
    }

    /// Whether a token id is still valid (for sessions it opened).
    pub fn token_is_valid(&self, id: &str) -> bool {
        self.store.as_ref().is_ok_and(|s| s.read(|s| s.tokens.iter().any(|t| t.id == id && t.expires_at > now_unix())))
    }

    /// THE authorisation decision: may `principal` do `action` (on `camera`, when the
    /// action concerns one)? Every route and protocol asks this and nothing else.
    pub fn authorize(&self, principal: &Principal, action: Action, camera: Option<&str>) -> Result<(), Denied> {
        if let Err(e) = &self.store {
            return Err(Denied::Broken(e.clone()));
        }
        if self.needs_setup() {
            return Err(Denied::SetupRequired);
        }
        let camera_ok = |p: &Principal| camera.is_none_or(|c| p.sees(c));
        let allowed = match principal {
            Principal::Anonymous => return Err(Denied::Unauthenticated),
            Principal::User { role: Role::Admin, .. } => true,
            Principal::User { role: Role::Viewer, .. } => {
                matches!(action, Action::View | Action::Playback | Action::Snapshot | Action::Status) && camera_ok(principal)
            }
            Principal::Token { grants, .. } => {
                let needed = match action {
                    Action::View => Some(Grant::View),
                    Action::Playback => Some(Grant::Playback),
                    Action::Snapshot => Some(Grant::Snapshot),
                    Action::Control => Some(Grant::Control),
                    Action::Metrics => Some(Grant::Metrics),
                    // A token that may watch may read the state of what it watches.
                    Action::Status => {
                        return if grants.is_empty() { Err(Denied::Forbidden("this token grants nothing".into())) } else { Ok(()) };
                    }
                    Action::Admin => None,
                };
                needed.is_some_and(|g| grants.contains(&g)) && camera_ok(principal)
            }
        };
        if allowed {
            Ok(())
        } else {
            let what = camera.map_or(String::new(), |c| format!(" on camera `{c}`"));
            Err(Denied::Forbidden(format!("{} may not do {action:?}{what}", principal.describe())))
        }
    }

    /// Issues a token; `ttl` is capped at ten years.
    pub fn issue_token(
        &self,
        issuer: &str,
        label: &str,
        cameras: Option<Vec<String>>,
        grants: Vec<Grant>,
        ttl: Duration,
    ) -> Result<IssuedToken, AuthError> {
        if grants.is_empty() {
            return Err(AuthError::Invalid("a token needs at least one grant (view, playback, snapshot, control, metrics)".into()));
        }
        if label.chars().count() > 100 {
            return Err(AuthError::Invalid("a token's label is at most 100 characters".into()));
        }
        let ttl = ttl.min(Duration::from_secs(10 * 366 * 86_400));
        if ttl.is_zero() {
            return Err(AuthError::Invalid("a token's lifetime must be more than zero".into()));
        }
        let store = self.writable()?;
        let id = store::random_hex()?[..32].to_owned();
        let iat = now_unix();
        let record = TokenRecord {
            id: id.clone(),
            label: label.into(),
            cameras: cameras.clone(),
            grants: grants.clone(),
            issued_at: iat,
            expires_at: iat + ttl.as_secs() as i64,
            issued_by: issuer.into(),
        };
        let token = store.update(|s| {
            let token = token_text::text(&record.id, &s.token_secret);
            s.tokens.push(record.clone());
            Ok(token)
        })?;
        tracing::info!(token = &id[..8], by = issuer, "token issued");
        Ok(IssuedToken { token, record })
    }

    /// The tokens issued and still valid.
    pub fn tokens(&self) -> Vec<TokenRecord> {
        let now = now_unix();
        self.store.as_ref().map(|s| s.read(|s| s.tokens.iter().filter(|t| t.expires_at > now).cloned().collect())).unwrap_or_default()
    }

    /// Revokes one token.
    pub fn revoke_token(&self, id: &str) -> Result<(), AuthError> {
        let store = self.writable()?;
        store.update(|s| {
            let before = s.tokens.len();
            s.tokens.retain(|t| t.id != id);
            if s.tokens.len() == before { Err(AuthError::NotFound(format!("no token `{id}`"))) } else { Ok(()) }
        })?;
        self.bus.publish(Event::TokenRevoked { id: id.into() });
        Ok(())
    }

    /// Revokes every token by replacing the secret that signs them.
    pub fn revoke_all_tokens(&self) -> Result<(), AuthError> {
        let store = self.writable()?;
        let ids = store.update(|s| {
            s.token_secret = store::random_hex()?;
            Ok(std::mem::take(&mut s.tokens).into_iter().map(|t| t.id).collect::<Vec<_>>())
        })?;
        for id in ids {
            self.bus.publish(Event::TokenRevoked { id });
        }
        Ok(())
    }

    /// Every user, for the owner.
    pub fn users(&self) -> Vec<UserInfo> {
        self.store
            .as_ref()
            .map(|s| {
                s.read(|s| s.users.iter().map(|u| UserInfo { name: u.name.clone(), role: u.role, cameras: u.cameras.clone() }).collect())
            })
            .unwrap_or_default()
    }

    /// Adds a viewer.
    pub async fn add_viewer(&self, name: &str, password: &str, cameras: Option<Vec<String>>) -> Result<(), AuthError> {
        check_user_name(name)?;
        password::check_new(password).map_err(AuthError::Invalid)?;
        let hash = self.hash(password).await?;
        let store = self.writable()?;
        store.update(|s| {
            if s.user(name).is_some() {
                return Err(AuthError::Conflict(format!("there is already a user `{name}`")));
            }
            let generation = first_generation()?;
            let digest_ha1 = Some(digest::ha1(name, password));
            s.users.push(User { name: name.into(), role: Role::Viewer, cameras, password_hash: hash, generation, digest_ha1 });
            Ok(())
        })
    }

    /// Changes a user's password (and, for a viewer, the cameras): every session of that
    /// user but `keep` ends. Returns a fresh session for `keep`'s holder when it was theirs.
    pub async fn change_user(
        &self,
        name: &str,
        new_password: Option<&str>,
        cameras: Option<Option<Vec<String>>>,
        keep: &Principal,
    ) -> Result<Option<NewSession>, AuthError> {
        let hash = match new_password {
            Some(p) => {
                password::check_new(p).map_err(AuthError::Invalid)?;
                Some(self.hash(p).await?)
            }
            None => None,
        };
        let store = self.writable()?;
        store.update(|s| {
            let user = s.users.iter_mut().find(|u| u.name == name).ok_or_else(|| AuthError::NotFound(format!("no user `{name}`")))?;
            if let (Some(h), Some(p)) = (hash.clone(), new_password) {
                user.password_hash = h;
                user.digest_ha1 = Some(digest::ha1(name, p));
                user.generation += 1;
            }
            if let Some(c) = cameras {
                if user.role == Role::Admin {
                    return Err(AuthError::Invalid("the owner sees every camera".into()));
                }
                user.cameras = c;
            }
            Ok(())
        })?;
        let own = matches!(keep, Principal::User { name: n, .. } if n == name);
        if hash.is_some() && own { Ok(Some(self.begin_session(name)?)) } else { Ok(None) }
    }

    /// Removes a viewer; the owner cannot be removed (only reset).
    pub fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        let store = self.writable()?;
        store.update(|s| match s.user(name) {
            None => Err(AuthError::NotFound(format!("no user `{name}`"))),
            Some(u) if u.role == Role::Admin => Err(AuthError::Invalid("the owner cannot be removed; reset the password instead".into())),
            Some(_) => {
                s.users.retain(|u| u.name != name);
                Ok(())
            }
        })
    }
}

#[cfg(test)]
mod tests;
