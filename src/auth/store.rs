//! The accounts, issued tokens and signing secrets, in one JSON file on the data partition
//! (`<storage>/auth/state.json`, mode 0600). Every change is read-modify-write under an
//! exclusive `flock`, written to a temporary file, fsynced and renamed: a pulled plug leaves
//! the old file or the new one, and `lookout token` on the device can add a token while the
//! daemon runs.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{AuthError, Grant, Role};

/// A person who can log in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Cameras a viewer may see; `None` is all of them. Ignored for the admin.
    #[serde(default)]
    pub cameras: Option<Vec<String>>,
    pub password_hash: String,
    /// Raised on every password change; a login session of an older generation is over.
    #[serde(default)]
    pub generation: u64,
    /// `MD5(name:realm:password)` for RTSP Digest (`auth::digest`), set with the password, or
    /// at its first check for accounts made before Digest existed. Never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_ha1: Option<String>,
}

/// A token the owner issued: what it may do, and until when. The token itself is not kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    /// What the owner called it ("Home Assistant", "shared link for Anna").
    pub label: String,
    /// `None`: every camera.
    pub cameras: Option<Vec<String>>,
    pub grants: Vec<Grant>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    pub issued_by: String,
}

/// A logged-out session, refused until its cookie would have expired anyway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ended {
    pub session: String,
    pub until: i64,
}

/// Everything in the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub users: Vec<User>,
    /// Hex; signs login-session cookies.
    pub session_secret: String,
    /// Hex; signs scoped tokens. Replaced by "revoke all".
    pub token_secret: String,
    pub tokens: Vec<TokenRecord>,
    pub ended_sessions: Vec<Ended>,
    /// The reset file last acted on (its modification time and size), so a file the
    /// device cannot delete (a read-only boot partition) resets once, not at every boot.
    pub reset_marker: Option<String>,
}

impl State {
    /// The owner account, if set up.
    pub fn admin(&self) -> Option<&User> {
        self.users.iter().find(|u| u.role == Role::Admin)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// 32 random bytes as hex: a secret or an identifier nobody can guess.
pub fn random_hex() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Store(format!("no randomness: {e}")))?;
    Ok(super::hex(&bytes))
}

/// The file and a copy of what it holds.
pub struct Store {
    /// `None`: held in memory only (the data partition is unavailable).
    path: Option<PathBuf>,
    cached: Mutex<(State, Option<SystemTime>)>,
}

impl Store {
    /// Opens (creating, with fresh secrets) `<dir>/state.json`.
    pub fn open(dir: &Path) -> Result<Store, AuthError> {
        std::fs::create_dir_all(dir).map_err(|e| AuthError::Store(format!("cannot create {}: {e}", dir.display())))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let store = Store { path: Some(dir.join("state.json")), cached: Mutex::new((State::default(), None)) };
        store.fill_secrets()?;
        Ok(store)
    }

    /// A store in memory only, for a device whose data partition is missing: the owner's
    /// flashed hash still admits the owner, and nothing is kept across a restart.
    pub fn in_memory() -> Result<Store, AuthError> {
        let store = Store { path: None, cached: Mutex::new((State::default(), None)) };
        store.fill_secrets()?;
        Ok(store)
    }

    /// Whether changes are lost at a restart.
    pub fn is_in_memory(&self) -> bool {
        self.path.is_none()
    }

    fn fill_secrets(&self) -> Result<(), AuthError> {
        self.update(|s| {
            if s.session_secret.is_empty() {
                s.session_secret = random_hex()?;
            }
            if s.token_secret.is_empty() {
                s.token_secret = random_hex()?;
            }
            Ok(())
        })
    }

    /// Reads the state, first picking up a change another process made.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let mut cached = self.cached.lock().expect("auth store lock never poisoned");
        if let Some(path) = &self.path {
            let on_disk = modified(path);
            if on_disk != cached.1
                && let Ok(state) = load(path)
            {
                *cached = (state, on_disk);
            }
        }
        f(&cached.0)
    }

    /// Applies `f` to the newest state on disk and writes the result atomically; nothing is
    /// written if `f` fails.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> Result<R, AuthError>) -> Result<R, AuthError> {
        let mut cached = self.cached.lock().expect("auth store lock never poisoned");
        let Some(path) = &self.path else {
            let mut state = cached.0.clone();
            let out = f(&mut state)?;
            cached.0 = state;
            return Ok(out);
        };
        let _lock = lock(path)?;
        let mut state = if path.exists() { load(path)? } else { State::default() };
        let out = f(&mut state)?;
        let now = SystemTime::now();
        state.ended_sessions.retain(|e| e.until > unix(now));
        state.tokens.retain(|t| t.expires_at > unix(now));
        write_atomically(path, &state)?;
        *cached = (state, modified(path));
        Ok(out)
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(path: &Path) -> Result<State, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuthError::Store(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| AuthError::Store(format!("{} is damaged ({e}); restore it or delete it to set up again", path.display())))
}

/// An exclusive lock on `<file>.lock`, held until dropped.
fn lock(path: &Path) -> Result<nix::fcntl::Flock<File>, AuthError> {
    let lock_path = path.with_extension("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| AuthError::Store(format!("cannot open {}: {e}", lock_path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| AuthError::Store(format!("cannot lock {}: {e}", lock_path.display())))
}

fn write_atomically(path: &Path, state: &State) -> Result<(), AuthError> {
    let text = serde_json::to_vec_pretty(state).map_err(|e| AuthError::Store(e.to_string()))?;
    crate::storage::disk::write_private(path, &text).map_err(|e| AuthError::Store(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_made_once_and_changes_survive_a_reopen_and_reach_another_opener() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path()).unwrap();
        let secret = a.read(|s| s.session_secret.clone());
        assert_eq!(secret.len(), 64);
        let b = Store::open(dir.path()).unwrap();
        assert_eq!(b.read(|s| s.session_secret.clone()), secret, "not replaced by a second opener");
        let user =
            User { name: "admin".into(), role: Role::Admin, cameras: None, password_hash: "h".into(), generation: 0, digest_ha1: None };
        b.update(|s| {
            s.users.push(user.clone());
            Ok(())
        })
        .unwrap();
        // Another process's write is seen (mtime resolution aside, the cache is refreshed).
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(a.read(|s| s.admin().cloned()), Some(user));
        let mode = std::fs::metadata(dir.path().join("state.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_failed_change_writes_nothing_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("state.json")).unwrap();
        let r: Result<(), _> = store.update(|s| {
            s.users.clear();
            s.token_secret.clear();
            Err(AuthError::Store("no".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), before);
        std::fs::write(dir.path().join("state.json"), b"{ not json").unwrap();
        let e = Store::open(dir.path()).err().expect("damaged file refused");
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
