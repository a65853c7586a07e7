use super::*;

const LIFETIMES: Lifetimes = Lifetimes { idle: Duration::from_secs(3600), absolute: Duration::from_secs(86_400) };

fn open(dir: &Path, seed: Option<String>) -> Auth {
    Auth::open(dir, seed, LIFETIMES, Bus::default())
}

fn addr() -> IpAddr {
    IpAddr::from([10, 0, 0, 7])
}

#[tokio::test]
async fn setup_once_then_login_and_every_action_is_the_owners() {
    let dir = tempfile::tempdir().unwrap();
    let auth = open(dir.path(), None);
    assert!(auth.needs_setup());
    assert_eq!(auth.authorize(&Principal::Anonymous, Action::View, Some("cam")), Err(Denied::SetupRequired));
    assert!(matches!(auth.setup("admin", "short").await, Err(AuthError::Invalid(_))));
    let first = auth.setup("admin", "a long password").await.unwrap();
    assert!(!auth.needs_setup());
    assert!(matches!(auth.setup("mallory", "another password").await, Err(AuthError::Conflict(_))), "setup happens once");
    let owner = auth.session(&first.cookie).unwrap();
    for action in [Action::View, Action::Playback, Action::Snapshot, Action::Control, Action::Metrics, Action::Status, Action::Admin] {
        assert_eq!(auth.authorize(&owner, action, Some("cam")), Ok(()));
        assert_eq!(auth.authorize(&Principal::Anonymous, action, Some("cam")), Err(Denied::Unauthenticated));
    }
    assert!(matches!(auth.login(addr(), "admin", "wrong password").await, Err(Denied::Forbidden(_))));
    assert!(matches!(auth.login(addr(), "nobody", "a long password").await, Err(Denied::Forbidden(_))));
    let again = auth.login(addr(), "admin", "a long password").await.unwrap();
    assert!(auth.session(&again.cookie).is_ok());
    // Survives a restart (a new Auth on the same data).
    let reopened = open(dir.path(), None);
    assert!(reopened.session(&again.cookie).is_ok());
}

#[tokio::test]
async fn a_viewer_sees_only_their_cameras_and_never_administers() {
    let dir = tempfile::tempdir().unwrap();
    let auth = open(dir.path(), None);
    auth.setup("owner", "a long password").await.unwrap();
    auth.add_viewer("anna", "annas password", Some(vec!["garden".into()])).await.unwrap();
    assert!(matches!(auth.add_viewer("anna", "annas password", None).await, Err(AuthError::Conflict(_))));
    let anna = auth.session(&auth.login(addr(), "anna", "annas password").await.unwrap().cookie).unwrap();
    assert_eq!(auth.authorize(&anna, Action::View, Some("garden")), Ok(()));
    assert_eq!(auth.authorize(&anna, Action::Playback, Some("garden")), Ok(()));
    assert!(matches!(auth.authorize(&anna, Action::View, Some("door")), Err(Denied::Forbidden(_))));
    for action in [Action::Control, Action::Metrics, Action::Admin] {
        assert!(matches!(auth.authorize(&anna, action, None), Err(Denied::Forbidden(_))), "{action:?}");
    }
    assert!(anna.sees("garden") && !anna.sees("door"));
    assert!(matches!(auth.remove_user("owner"), Err(AuthError::Invalid(_))), "the owner stays");
    let annas = auth.begin_session("anna").unwrap().cookie;
    auth.remove_user("anna").unwrap();
    assert!(auth.session(&annas).is_err(), "a removed user's sessions end");
    auth.add_viewer("anna", "another anna", None).await.unwrap();
    assert!(auth.session(&annas).is_err(), "and stay ended for a new user of the same name");
}

#[tokio::test]
async fn changing_a_password_ends_the_other_sessions_and_logout_ends_one() {
    let dir = tempfile::tempdir().unwrap();
    let auth = open(dir.path(), None);
    let laptop = auth.setup("admin", "a long password").await.unwrap();
    let phone = auth.login(addr(), "admin", "a long password").await.unwrap();
    let me = auth.session(&laptop.cookie).unwrap();
    let renewed = auth.change_user("admin", Some("a new long password"), None, &me).await.unwrap().expect("a fresh session for me");
    assert!(auth.session(&phone.cookie).is_err(), "other session ended");
    assert!(auth.session(&laptop.cookie).is_err(), "the old cookie too: it carries the old generation");
    let me = auth.session(&renewed.cookie).unwrap();
    auth.end_session(&me).unwrap();
    assert!(auth.session(&renewed.cookie).is_err(), "logged out");
    assert!(auth.login(addr(), "admin", "a long password").await.is_err());
    assert!(auth.login(addr(), "admin", "a new long password").await.is_ok());
}

#[tokio::test]
async fn an_idle_session_expires() {
    let dir = tempfile::tempdir().unwrap();
    let auth =
        Auth::open(dir.path(), None, Lifetimes { idle: Duration::from_millis(200), absolute: Duration::from_secs(60) }, Bus::default());
    let s = auth.setup("admin", "a long password").await.unwrap();
    assert!(auth.session(&s.cookie).is_ok());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(auth.session(&s.cookie), Err(Denied::Unauthenticated));
}

#[tokio::test]
async fn tokens_grant_exactly_what_they_name_until_revoked_or_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let auth = open(dir.path(), None);
    auth.setup("admin", "a long password").await.unwrap();
    let day = Duration::from_secs(86_400);
    let issued = auth.issue_token("admin", "ha", Some(vec!["cam".into()]), vec![Grant::View, Grant::Snapshot], day).unwrap();
    let t = auth.token(&issued.token).unwrap();
    assert_eq!(auth.authorize(&t, Action::View, Some("cam")), Ok(()));
    assert_eq!(auth.authorize(&t, Action::Snapshot, Some("cam")), Ok(()));
    assert_eq!(auth.authorize(&t, Action::Status, None), Ok(()));
    assert!(auth.authorize(&t, Action::View, Some("other")).is_err(), "wrong camera");
    assert!(auth.authorize(&t, Action::Playback, Some("cam")).is_err(), "wrong grant");
    assert!(auth.authorize(&t, Action::Admin, None).is_err(), "tokens never administer");
    assert!(auth.issue_token("admin", "none", None, vec![], day).is_err());
    assert_eq!(auth.tokens().len(), 1);
    // A token is no session, and a session no token.
    assert!(auth.session(&issued.token).is_err());
    // Revoked one by one.
    let other = auth.issue_token("admin", "prom", None, vec![Grant::Metrics], day).unwrap();
    auth.revoke_token(&issued.record.id).unwrap();
    assert_eq!(auth.token(&issued.token), Err(Denied::Unauthenticated));
    assert!(auth.token(&other.token).is_ok());
    assert!(matches!(auth.revoke_token("nope"), Err(AuthError::NotFound(_))));
    // All at once: a fresh secret, and tokens issued before it are refused even if re-listed.
    auth.revoke_all_tokens().unwrap();
    assert!(auth.token(&other.token).is_err());
    assert!(auth.tokens().is_empty());
    let fresh = auth.issue_token("admin", "new", None, vec![Grant::View], day).unwrap();
    assert!(auth.token(&fresh.token).is_ok());
}

#[tokio::test]
async fn a_token_issued_by_another_process_is_accepted_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = open(dir.path(), None);
    daemon.setup("admin", "a long password").await.unwrap();
    assert!(daemon.tokens().is_empty());
    let cli = open(dir.path(), None);
    std::thread::sleep(Duration::from_millis(20));
    let issued = cli.issue_token("cli", "script", None, vec![Grant::Snapshot], Duration::from_secs(60)).unwrap();
    assert!(daemon.token(&issued.token).is_ok());
}

#[tokio::test]
async fn the_configured_hash_seeds_the_owner_and_a_reset_returns_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let hash = password::hash("flashed password").unwrap();
    let auth = open(dir.path(), Some(hash.clone()));
    assert!(!auth.needs_setup(), "no setup step with a flashed hash");
    assert!(auth.login(addr(), DEFAULT_ADMIN, "flashed password").await.is_ok());
    let s = auth.login(addr(), DEFAULT_ADMIN, "flashed password").await.unwrap();
    let me = auth.session(&s.cookie).unwrap();
    auth.change_user(DEFAULT_ADMIN, Some("changed on the page"), None, &me).await.unwrap();
    // A restart with the same boot config keeps the changed password.
    let restarted = open(dir.path(), Some(hash.clone()));
    assert!(restarted.login(addr(), DEFAULT_ADMIN, "changed on the page").await.is_ok());
    // A reset clears it; the flashed hash applies again. Without one: setup.
    restarted.reset_owner().unwrap();
    assert!(restarted.login(addr(), DEFAULT_ADMIN, "flashed password").await.is_ok());
    let bare = tempfile::tempdir().unwrap();
    let plain = open(bare.path(), None);
    plain.setup("admin", "a long password").await.unwrap();
    plain.add_viewer("v", "viewers password", None).await.unwrap();
    plain.reset_owner().unwrap();
    assert!(plain.needs_setup());
    assert_eq!(plain.users().len(), 1, "the viewer stays");
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::default();
    let mut events = bus.subscribe();
    let auth = Auth::open(dir.path(), None, LIFETIMES, bus);
    auth.setup("admin", "a long password").await.unwrap();
    for _ in 0..limiter::FREE_FAILURES {
        assert!(matches!(auth.login(addr(), "admin", "guess").await, Err(Denied::Forbidden(_))));
    }
    assert!(matches!(auth.login(addr(), "admin", "a long password").await, Err(Denied::TooManyAttempts(_))), "even the right one waits");
    assert!(auth.login(IpAddr::from([10, 0, 0, 8]), "admin", "a long password").await.is_ok(), "others are not locked out");
    let mut failures = 0;
    while let Ok(e) = events.try_recv() {
        if let Event::LoginFailed { user, address } = e {
            assert_eq!((user.as_str(), address.as_str()), ("admin", "10.0.0.7"));
            failures += 1;
        }
    }
    assert_eq!(failures, limiter::FREE_FAILURES);
}

#[tokio::test]
async fn a_damaged_accounts_file_refuses_everyone_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("auth")).unwrap();
    std::fs::write(dir.path().join("auth/state.json"), b"\0\0garbage").unwrap();
    let auth = open(dir.path(), None);
    assert!(!auth.needs_setup(), "not open to a first visitor");
    assert!(matches!(auth.authorize(&Principal::Anonymous, Action::View, None), Err(Denied::Broken(_))));
    assert!(auth.setup("admin", "a long password").await.is_err());
}

#[tokio::test]
async fn a_reset_file_clears_the_owner_once_even_if_it_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let boot = tempfile::tempdir().unwrap();
    let file = boot.path().join("lookout-reset");
    let auth = open(dir.path(), None);
    auth.setup("admin", "a long password").await.unwrap();
    auth.reset_if_asked(&file);
    assert!(!auth.needs_setup(), "no file, no reset");
    std::fs::write(&file, b"").unwrap();
    auth.reset_if_asked(&file);
    assert!(auth.needs_setup(), "the file resets the owner");
    assert!(!file.exists(), "and is deleted");
    // A file the device cannot delete (a read-only boot partition; here a directory, since
    // tests run as root): it resets once, and the next boot must not reset again.
    auth.setup("admin", "a second password").await.unwrap();
    std::fs::create_dir(&file).unwrap();
    auth.reset_if_asked(&file);
    assert!(auth.needs_setup());
    assert!(file.exists());
    auth.setup("admin", "a third password").await.unwrap();
    let rebooted = open(dir.path(), None);
    rebooted.reset_if_asked(&file);
    assert!(!rebooted.needs_setup(), "the same file does not reset at every boot");
}
