//! Secrets never leak: a full run of the daemon binary, with every kind of secret set
//! (the owner's password, a wrong guess, tokens, the session cookie, the signing secrets, TURN
//! credentials, an RTSP password and query token, a pipeline's `user-pw`), then its whole log
//! and every API answer are searched for each of them.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_an_api_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[auth]\nadmin_password_hash = \"{hash}\"\n\
             [storage]\npath = \"{data}\"\nmin_free = \"64MB\"\n[led]\nbackend = \"none\"\n\
             [webrtc]\nturn = [{{ url = \"turn:turn.example.org:3478\", username = \"turnuser\", credential = \"turn-SECRET-5\" }}]\n\
             [[camera]]\nname = \"cam\"\nsource = \"test\"\nwidth = 320\nheight = 240\n\
             [[camera.push]]\nurl = \"http://pushuser:push-SECRET-10@127.0.0.1:9/whip/cam?key=pushkey-SECRET-11\"\ntoken = \"pushtoken-SECRET-12\"\n\
             [[camera]]\nname = \"ipcam\"\nsource = \"rtsp://viewer:pa%2Fss-SECRET-1@127.0.0.1:9/live?token=query-SECRET-2\"\n\
             [[camera]]\nname = \"pipecam\"\n\
             source = {{ pipeline = \"rtspsrc location=rtsp://127.0.0.1:9/x user-id=u user-pw=pipe-SECRET-3 ! rtph264depay ! h264parse\" }}\n\
             [[webhook]]\nurl = \"http://hookuser:hook-SECRET-7@127.0.0.1:9/hook?key=hookkey-SECRET-8\"\nsecret = \"webhook-SECRET-9-long-enough\"\n",
            hash = common::owner_password_hash(),
            data = data.display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "lookout=debug,info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log_reader = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + common::HANG;
    while reqwest::get(format!("{base}/livez")).await.is_err() {
        assert!(Instant::now() < deadline, "daemon never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let wrong = "wrong-guess-SECRET-4";
    assert!(common::login(&base, "admin", wrong).await.is_err());
    let owner = common::login(&base, "admin", common::OWNER_PASSWORD).await.expect("owner logs in");
    let login = common::post_login(&base, "admin", common::OWNER_PASSWORD).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    let issued = common::issue_token_over_http(&owner, &base, json!({"grants": ["view", "metrics", "snapshot"], "ttl": "1h"})).await;
    let token = issued["token"].as_str().unwrap().to_owned();
    assert!(
        owner
            .post(format!("{base}/api/users"))
            .json(&json!({"name": "anna", "password": "annas-SECRET-6"}))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    // Let the RTSP cameras fail (and log why) a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut answers = String::new();
    for path in ["/api/state", "/api/cameras", "/api/health", "/api/users", "/api/tokens", "/api/me", "/api/config"] {
        answers += &owner.get(format!("{base}{path}")).send().await.unwrap().text().await.unwrap();
    }
    let by_token = reqwest::Client::new();
    for path in ["/metrics", "/api/state", "/api/cameras"] {
        answers += &by_token.get(format!("{base}{path}")).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    }
    let options = reqwest::Client::new().request(reqwest::Method::OPTIONS, format!("{base}/whep/cam")).send().await.unwrap();
    answers += &format!("{:?}", options.headers());

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    let log = log_reader.join().unwrap();
    assert!(log.contains("login failed"), "the log is the daemon's: {log}");
    assert!(log.contains("webhook deliveries fail"), "the webhook's failure (to the URL with secrets) was logged: {log}");
    assert!(answers.contains("\"webhooks\""), "the owner's state lists the webhook");
    assert!(log.contains("WHIP push retrying"), "the push's failure (to the URL with secrets) was logged: {log}");
    assert!(answers.contains("\"pushes\""), "the owner's state lists the push");

    let state: Value = serde_json::from_str(&std::fs::read_to_string(data.join("auth/state.json")).unwrap()).unwrap();
    let secrets = [
        common::OWNER_PASSWORD.to_owned(),
        wrong.to_owned(),
        "annas-SECRET-6".to_owned(),
        "SECRET-1".to_owned(),
        "pa%2Fss".to_owned(),
        "query-SECRET-2".to_owned(),
        "pipe-SECRET-3".to_owned(),
        "turn-SECRET-5".to_owned(),
        "hook-SECRET-7".to_owned(),
        "hookkey-SECRET-8".to_owned(),
        "webhook-SECRET-9".to_owned(),
        "push-SECRET-10".to_owned(),
        "pushkey-SECRET-11".to_owned(),
        "pushtoken-SECRET-12".to_owned(),
        token,
        cookie,
        state["session_secret"].as_str().unwrap().to_owned(),
        state["token_secret"].as_str().unwrap().to_owned(),
        state["users"][0]["password_hash"].as_str().unwrap().to_owned(),
    ];
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log holds a secret ({}…)", &secret[..6.min(secret.len())]);
        assert!(!answers.contains(secret.as_str()), "an API answer holds a secret ({}…)", &secret[..6.min(secret.len())]);
    }
    // The redacted forms are there, so the check above looked at the right text.
    assert!(answers.contains("ipcam") && answers.contains("***"), "{answers}");
}
