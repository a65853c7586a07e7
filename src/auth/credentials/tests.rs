use std::path::Path;

use md5::Digest as _;

use super::*;
use crate::auth::{Action, Grant, Lifetimes};
use crate::events::Bus;

const LIFETIMES: Lifetimes = Lifetimes { idle: Duration::from_secs(3600), absolute: Duration::from_secs(86_400) };

fn open(dir: &Path, seed: Option<String>, bus: Bus) -> Auth {
    Auth::open(dir, seed, LIFETIMES, bus)
}

fn addr() -> IpAddr {
    IpAddr::from([10, 0, 0, 9])
}

fn password(user: &str, password: &str) -> Credential {
    Credential::Password { user: user.into(), password: password.into() }
}

/// A client's Digest answer for `DESCRIBE uri`, computed from the formulas, not our code.
fn digest_answer(challenge: &str, user: &str, password: &str) -> Credential {
    let nonce = challenge.split("nonce=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let md5 = |t: String| md5::Md5::digest(t).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let uri = "rtsp://10.0.0.1:8554/front";
    let ha1 = md5(format!("{user}:{}:{password}", digest::REALM));
    let response = md5(format!("{ha1}:{nonce}:{}", md5(format!("DESCRIBE:{uri}"))));
    Credential::Digest(digest::Answer {
        user: user.into(),
        realm: digest::REALM.into(),
        nonce,
        uri: uri.into(),
        response,
        method: "DESCRIBE".into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_password_is_checked_remembered_and_forgotten_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::default();
    let mut events = bus.subscribe();
    let auth = open(dir.path(), None, bus);
    auth.setup("admin", "a long password").await.unwrap();
    auth.add_viewer("anna", "anna's password", Some(vec!["front".into()])).await.unwrap();
    let anna = auth.verify(addr(), &password("anna", "anna's password")).await.unwrap();
    assert_eq!(auth.authorize(&anna, Action::View, Some("front")), Ok(()));
    assert!(auth.authorize(&anna, Action::View, Some("back")).is_err());
    // Remembered: the second check is the same answer.
    assert_eq!(auth.verify(addr(), &password("anna", "anna's password")).await.unwrap(), anna);
    assert!(matches!(auth.verify(addr(), &password("anna", "wrong")).await, Err(Denied::Forbidden(_))));
    let failed = std::iter::from_fn(|| events.try_recv().ok()).find(|e| matches!(e, Event::LoginFailed { .. }));
    assert!(matches!(failed, Some(Event::LoginFailed { user, .. }) if user == "anna"));
    // A new password ends the remembered one at once.
    auth.change_user("anna", Some("anna's new password"), None, &Principal::Anonymous).await.unwrap();
    assert!(auth.verify(addr(), &password("anna", "anna's password")).await.is_err());
    assert!(auth.verify(addr(), &password("anna", "anna's new password")).await.is_ok());
    // So does removing the account.
    auth.remove_user("anna").unwrap();
    assert!(auth.verify(addr(), &password("anna", "anna's new password")).await.is_err());
}

#[tokio::test]
async fn a_token_works_as_the_password_or_alone_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let auth = open(dir.path(), None, Bus::default());
    auth.setup("admin", "a long password").await.unwrap();
    let day = Duration::from_secs(86_400);
    let issued = auth.issue_token("admin", "nvr", Some(vec!["front".into()]), vec![Grant::View], day).unwrap();
    for credential in [password("anything", &issued.token), Credential::Token(issued.token.clone())] {
        let p = auth.verify(addr(), &credential).await.unwrap();
        assert_eq!(auth.authorize(&p, Action::View, Some("front")), Ok(()));
        assert!(auth.authorize(&p, Action::Admin, None).is_err());
    }
    auth.revoke_token(&issued.record.id).unwrap();
    assert!(auth.verify(addr(), &Credential::Token(issued.token.clone())).await.is_err());
    assert!(auth.verify(addr(), &password("admin", &issued.token)).await.is_err());
}

#[tokio::test]
async fn digest_works_for_new_accounts_and_for_old_ones_once_their_password_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    // An owner seeded from the boot partition's hash: no Digest credential yet.
    let seed = crate::auth::password::hash("the owner's password").unwrap();
    let auth = open(dir.path(), Some(seed), Bus::default());
    // Not offered while it could not work: a client offered Digest would choose it and fail.
    assert_eq!(auth.digest_challenge(false), None);
    auth.login(addr(), "admin", "the owner's password").await.unwrap();
    let challenge = auth.digest_challenge(false).unwrap();
    assert!(challenge.starts_with("Digest realm=\"Lookout\", nonce=\""));
    let owner = auth.verify(addr(), &digest_answer(&challenge, "admin", "the owner's password")).await.unwrap();
    assert_eq!(auth.authorize(&owner, Action::Admin, None), Ok(()));
    // A viewer added now has it from the start; a wrong password is refused.
    auth.add_viewer("anna", "anna's password", None).await.unwrap();
    assert!(auth.verify(addr(), &digest_answer(&challenge, "anna", "anna's password")).await.is_ok());
    assert!(matches!(auth.verify(addr(), &digest_answer(&challenge, "anna", "guess")).await, Err(Denied::Forbidden(_))));
    // A token as the password works with Digest too, with any user name.
    let issued = auth.issue_token("admin", "nvr", None, vec![Grant::View], Duration::from_secs(3600)).unwrap();
    let p = auth.verify(addr(), &digest_answer(&challenge, "nvr", &issued.token)).await.unwrap();
    assert!(matches!(p, Principal::Token { .. }));
    // The credential is in the accounts file, never in the users' list.
    assert!(!serde_json::to_string(&auth.users()).unwrap().contains("ha1"));
}

#[tokio::test]
async fn repeated_failures_are_limited_like_logins() {
    let dir = tempfile::tempdir().unwrap();
    let auth = open(dir.path(), None, Bus::default());
    auth.setup("admin", "a long password").await.unwrap();
    let mut limited = false;
    for _ in 0..30 {
        if let Err(Denied::TooManyAttempts(_)) = auth.verify(addr(), &Credential::Token("not a token".into())).await {
            limited = true;
            break;
        }
    }
    assert!(limited, "failures from one address are limited");
}

#[tokio::test]
async fn nothing_is_admitted_before_setup() {
    let dir = tempfile::tempdir().unwrap();
    let auth = open(dir.path(), None, Bus::default());
    assert_eq!(auth.verify(addr(), &password("admin", "anything at all")).await, Err(Denied::SetupRequired));
}
