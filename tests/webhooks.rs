//! `[[webhook]]`: deliveries to a real HTTP receiver started by the test, which checks every
//! signature as the README tells receivers to, answers 500 when told, and goes away and
//! comes back on the same port.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use common::{Daemon, HANG, config_with, test_camera};
use lookout::webhook::sign;

const SECRET: &str = "test-secret-0123456789";

/// One delivery as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    body: Value,
    /// What the receiver answered.
    status: u16,
}

/// A webhook receiver on a fixed port. Every connection is closed after its answer, so
/// stopping the receiver really cuts the device off.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many more requests.
    fail_next: Arc<Mutex<u32>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut r = Receiver { port, got: Arc::default(), fail_next: Arc::default(), task: None };
        r.listen().await;
        r
    }

    async fn listen(&mut self) {
        let (got, fail_next) = (self.got.clone(), self.fail_next.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (got, fail_next) = (got.clone(), fail_next.clone());
                async move {
                    let signature = headers.get(sign::HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let now = chrono::Utc::now().timestamp();
                    sign::verify(SECRET.as_bytes(), signature, &body, now).expect("every delivery is signed with the secret");
                    let status = {
                        let mut fail = fail_next.lock().unwrap();
                        if *fail > 0 {
                            *fail -= 1;
                            500
                        } else {
                            200
                        }
                    };
                    let id = headers["lookout-delivery"].to_str().unwrap().to_owned();
                    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
                    got.lock().unwrap().push(Received { id, body: serde_json::from_slice(&body).unwrap(), status });
                    ([(header::CONNECTION, "close")], StatusCode::from_u16(status).unwrap())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("the receiver's port is free again");
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The `action_requested` events taken (answered 200), as sequence numbers.
    fn actions_taken(&self) -> Vec<u64> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.status == 200 && r.body["type"] == "action_requested").map(|r| r.body["seq"].as_u64().unwrap()).collect()
    }

    async fn wait_actions(&self, n: usize) -> Vec<u64> {
        let deadline = Instant::now() + HANG;
        loop {
            let taken = self.actions_taken();
            if taken.len() >= n {
                return taken;
            }
            assert!(Instant::now() < deadline, "only {taken:?} delivered, waiting for {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn hook(url: String, queue: usize) -> lookout::config::Webhook {
    toml::from_str(&format!(
        "url = \"{url}\"\nname = \"test\"\nsecret = \"{SECRET}\"\nevents = [\"action_requested\", \"daemon_ready\"]\nqueue = {queue}\nmax_backoff = \"2s\""
    ))
    .unwrap()
}

async fn identify(daemon: &Daemon, owner: &reqwest::Client, times: usize) {
    for _ in 0..times {
        let r = owner.post(format!("{}/api/actions/identify", daemon.base)).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
}

/// The owner's view of the one webhook.
async fn hook_state(daemon: &Daemon, owner: &reqwest::Client) -> Value {
    let state: Value = owner.get(format!("{}/api/state", daemon.base)).send().await.unwrap().json().await.unwrap();
    state["webhooks"][0].clone()
}

async fn wait_hook(daemon: &Daemon, owner: &reqwest::Client, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + HANG;
    loop {
        let h = hook_state(daemon, owner).await;
        if pred(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "webhook never {what}: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_arrive_in_order_after_a_500_and_after_the_receiver_was_down() {
    let mut receiver = Receiver::start().await;
    *receiver.fail_next.lock().unwrap() = 1;
    let mut config = config_with(vec![test_camera("cam")]);
    config.webhooks = vec![hook(receiver.url(), 256)];
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let owner = daemon.owner().await;

    // The first delivery (daemon_ready, or an action) is answered 500 and comes again.
    identify(&daemon, &owner, 3).await;
    let first = receiver.wait_actions(3).await;
    {
        let got = receiver.got.lock().unwrap();
        assert_eq!(got[0].status, 500);
        assert_eq!(got[1].id, got[0].id, "the failed delivery is retried before anything after it");
        assert_eq!(got[1].status, 200);
        assert!(got.iter().all(|r| r.body["run"].as_str().is_some_and(|run| r.id == format!("{run}.{}", r.body["seq"]))));
    }
    assert!(first.windows(2).all(|w| w[0] < w[1]), "in order: {first:?}");

    // The receiver goes away: deliveries fail, the owner sees it, events wait in order.
    receiver.stop();
    identify(&daemon, &owner, 5).await;
    let failing = wait_hook(&daemon, &owner, "reported failing", |h| h["failing"].is_string()).await;
    assert!(!failing["url"].as_str().unwrap().contains('?'), "{failing}");
    let scrape = owner.get(format!("{}/metrics", daemon.base)).send().await.unwrap().text().await.unwrap();
    assert!(scrape.contains("lookout_webhook_failing{hook=\"test\"} 1"), "{scrape}");
    receiver.listen().await;
    let all = receiver.wait_actions(8).await;
    assert!(all.windows(2).all(|w| w[0] < w[1]), "order kept across the outage: {all:?}");
    assert_eq!(all.len(), 8, "each event once: {all:?}");
    let recovered = wait_hook(&daemon, &owner, "recovered", |h| h["failing"].is_null()).await;
    assert_eq!((recovered["dropped"].as_u64(), recovered["refused"].as_u64()), (Some(0), Some(0)), "{recovered}");
    assert!(recovered["failures"].as_u64().unwrap() >= 2, "{recovered}");
    daemon.stop().await;
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_costs_a_bounded_queue_and_gets_the_latest_events() {
    let mut receiver = Receiver::start().await;
    receiver.stop();
    let mut config = config_with(vec![test_camera("cam")]);
    config.webhooks = vec![hook(receiver.url(), 4)];
    let daemon = Daemon::start(config).await;
    daemon.wait_state("cam", HANG, |c| c["online"] == true).await.expect("online");
    let owner = daemon.owner().await;
    wait_hook(&daemon, &owner, "reported failing", |h| h["failing"].is_string()).await;

    // Twelve requests are accepted at once: the daemon never waits for the receiver.
    identify(&daemon, &owner, 12).await;
    let held = wait_hook(&daemon, &owner, "full", |h| h["dropped"].as_u64() >= Some(8)).await;
    assert!(held["queued"].as_u64() <= Some(4), "the queue bound holds: {held}");
    let viewers = daemon.camera_state("cam").await;
    assert_eq!(viewers["online"], true, "the camera is unaffected");

    receiver.listen().await;
    let deadline = Instant::now() + HANG;
    while hook_state(&daemon, &owner).await["queued"] != 0 {
        assert!(Instant::now() < deadline, "the queue never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let taken = receiver.actions_taken();
    assert!(taken.windows(2).all(|w| w[0] < w[1]), "in order: {taken:?}");
    // daemon_ready was being retried when the requests came; of the twelve, the queue kept
    // the newest four.
    assert_eq!(taken.len(), 4, "what the queue held: {taken:?}");
    let state = hook_state(&daemon, &owner).await;
    assert_eq!(state["dropped"], 8, "{state}");
    daemon.stop().await;
    receiver.stop();
}
