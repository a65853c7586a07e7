//! Webhooks: every event a `[[webhook]]` wants is POSTed to it as the JSON the events socket
//! sends (plus `run`), signed ([`sign`]), in order, one delivery at a time per hook.
//!
//! One task takes numbered events from the journal and puts each into the queue of every
//! hook that wants it ([`queue`]: bounded, oldest dropped first), so a slow or dead receiver
//! never holds up the daemon or the other hooks. Each hook's task delivers its queue front to
//! back; a failure (no connection, a timeout, 5xx, 408, 429) is retried, the same event,
//! backing off from 1 s to the hook's `max_backoff` with jitter; any other 4xx means the
//! receiver refuses that event, which is counted and passed over. The first failure after a
//! success publishes `WebhookFailing`, the next success `WebhookRecovered` (never delivered to
//! webhooks, so a dead receiver cannot feed its own queue). Counters feed `/metrics` and the
//! page. Events still queued when the daemon stops are not delivered.

pub mod queue;
pub mod sign;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast::error::RecvError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Webhook, redacted_url};
use crate::events::journal::{self, Numbered};
use crate::events::{Bus, Event};

/// Longest a receiver may take to answer one delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's wait; it doubles up to the hook's `max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// One event ready to send.
struct Delivery {
    kind: &'static str,
    id: String,
    body: Arc<[u8]>,
}

/// One receiver: its settings, waiting events and counters.
struct Hook {
    name: String,
    config: Webhook,
    queue: Mutex<queue::Queue<Delivery>>,
    ready: Notify,
    delivered: AtomicU64,
    failures: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    /// The last error while the receiver is failing; `None` while it takes deliveries.
    failing: Mutex<Option<String>>,
}

/// What `/api/state` (to the owner) and `/metrics` say about a hook.
#[derive(Debug, Clone, Serialize)]
pub struct HookStatus {
    pub name: String,
    /// Without query, fragment or user info.
    pub url: String,
    pub delivered: u64,
    /// Attempts that failed and were retried.
    pub failures: u64,
    /// Events the receiver refused (a 4xx other than 408/429), passed over.
    pub refused: u64,
    /// Events dropped because the queue was full (or the journal outran this module).
    pub dropped: u64,
    pub queued: usize,
    /// Why deliveries fail, while they do.
    pub failing: Option<String>,
}

/// Every configured hook, delivering.
#[derive(Default)]
pub struct Hooks {
    hooks: Vec<Arc<Hook>>,
}

/// The hooks in force, replaced when the settings change: the old ones stop (their queued
/// events are dropped) and the new ones start with the events after the change.
pub struct Service {
    current: Mutex<(Arc<Hooks>, CancellationToken, TaskTracker)>,
    journal: journal::Recorder,
    bus: Bus,
    stop: CancellationToken,
}

impl Service {
    /// Starts `hooks`; everything stops with `stop`.
    pub fn start(hooks: &[Webhook], journal: &journal::Recorder, bus: &Bus, stop: &CancellationToken) -> Arc<Service> {
        let service = Service {
            current: Mutex::new((Arc::default(), CancellationToken::new(), TaskTracker::new())),
            journal: journal.clone(),
            bus: bus.clone(),
            stop: stop.clone(),
        };
        *service.current.lock().expect("webhooks lock never poisoned") = service.spawn(hooks);
        Arc::new(service)
    }

    fn spawn(&self, hooks: &[Webhook]) -> (Arc<Hooks>, CancellationToken, TaskTracker) {
        let (stop, tasks) = (self.stop.child_token(), TaskTracker::new());
        let started = Hooks::start(hooks, &self.journal, &self.bus, &tasks, &stop);
        tasks.close();
        (started, stop, tasks)
    }

    /// Stops the hooks in force and starts `hooks`.
    pub async fn replace(&self, hooks: &[Webhook]) {
        let (_, stop, tasks) = self.current.lock().expect("webhooks lock never poisoned").clone();
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
        *self.current.lock().expect("webhooks lock never poisoned") = self.spawn(hooks);
    }

    /// The state of every hook in force.
    pub fn status(&self) -> Vec<HookStatus> {
        self.current.lock().expect("webhooks lock never poisoned").0.status()
    }

    /// Waits for the hooks' tasks after `stop`.
    pub async fn stopped(&self) {
        let tasks = self.current.lock().expect("webhooks lock never poisoned").2.clone();
        tasks.wait().await;
    }
}

impl Hooks {
    /// Starts delivering the journal's events to every `[[webhook]]` on `tasks` until `stop`.
    /// Call before anything is published that a hook should get (`DaemonReady`).
    pub fn start(hooks: &[Webhook], journal: &journal::Recorder, bus: &Bus, tasks: &TaskTracker, stop: &CancellationToken) -> Arc<Hooks> {
        let hooks: Vec<Arc<Hook>> = hooks
            .iter()
            .enumerate()
            .map(|(i, config)| {
                Arc::new(Hook {
                    name: config.name_or_default(i),
                    config: config.clone(),
                    queue: Mutex::new(queue::Queue::new(config.queue)),
                    ready: Notify::new(),
                    delivered: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    refused: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    failing: Mutex::new(None),
                })
            })
            .collect();
        if hooks.is_empty() {
            return Arc::new(Hooks::default());
        }
        let client = reqwest::Client::builder()
            // A receiver answers where it is; following a redirect would resend a signed body
            // to a place the owner did not name.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(DELIVERY_TIMEOUT)
            .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
            .build();
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("webhooks disabled: no HTTP client: {e}");
                return Arc::new(Hooks::default());
            }
        };
        let (_, _, live) = journal.listen(None, None);
        tasks.spawn(feed(hooks.clone(), journal.run_id().to_owned(), live, stop.clone()));
        for hook in &hooks {
            tracing::info!(hook = %hook.name, url = %redacted_url(&hook.config.url), "webhook configured");
            tasks.spawn(deliver(hook.clone(), client.clone(), bus.clone(), stop.clone()));
        }
        Arc::new(Hooks { hooks })
    }

    /// The state of every hook, in config order.
    pub fn status(&self) -> Vec<HookStatus> {
        self.hooks
            .iter()
            .map(|h| HookStatus {
                name: h.name.clone(),
                url: redacted_url(&h.config.url),
                delivered: h.delivered.load(Ordering::Relaxed),
                failures: h.failures.load(Ordering::Relaxed),
                refused: h.refused.load(Ordering::Relaxed),
                dropped: h.dropped.load(Ordering::Relaxed),
                queued: h.queue.lock().expect("queue lock never poisoned").len(),
                failing: h.failing.lock().expect("failing lock never poisoned").clone(),
            })
            .collect()
    }
}

/// Puts each numbered event into the queue of every hook that wants it.
async fn feed(hooks: Vec<Arc<Hook>>, run: String, mut live: tokio::sync::broadcast::Receiver<Numbered>, stop: CancellationToken) {
    loop {
        let numbered = tokio::select! {
            _ = stop.cancelled() => return,
            n = live.recv() => n,
        };
        let numbered = match numbered {
            Ok(n) => n,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "webhooks fell behind the event journal; those events are not delivered");
                for hook in &hooks {
                    hook.dropped.fetch_add(missed, Ordering::Relaxed);
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let kind = numbered.event.kind();
        if matches!(numbered.event, Event::WebhookFailing { .. } | Event::WebhookRecovered { .. }) {
            continue;
        }
        let wanting: Vec<&Arc<Hook>> = hooks.iter().filter(|h| h.config.wants(kind, numbered.event.camera())).collect();
        if wanting.is_empty() {
            continue;
        }
        let mut body = serde_json::to_value(&numbered).unwrap_or_default();
        body["run"] = serde_json::Value::String(run.clone());
        let body: Arc<[u8]> = serde_json::to_vec(&body).unwrap_or_default().into();
        let id = format!("{run}.{}", numbered.seq);
        for hook in wanting {
            let full = hook.queue.lock().expect("queue lock never poisoned").push(Delivery { kind, id: id.clone(), body: body.clone() });
            if full {
                hook.dropped.fetch_add(1, Ordering::Relaxed);
            }
            hook.ready.notify_one();
        }
    }
}

/// How one attempt went.
enum Attempt {
    Delivered,
    /// Worth trying again (the receiver is down, slow or overloaded).
    Retry(String),
    /// The receiver refused this event; trying again would not help.
    Refused(String),
}

/// Delivers one hook's queue, front to back, until `stop`.
async fn deliver(hook: Arc<Hook>, client: reqwest::Client, bus: Bus, stop: CancellationToken) {
    loop {
        let next = hook.queue.lock().expect("queue lock never poisoned").pop();
        let Some(delivery) = next else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = hook.ready.notified() => continue,
            }
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            let error = match attempt(&client, &hook, &delivery).await {
                Attempt::Delivered => {
                    hook.delivered.fetch_add(1, Ordering::Relaxed);
                    if hook.failing.lock().expect("failing lock never poisoned").take().is_some() {
                        tracing::info!(hook = %hook.name, "webhook receiver takes deliveries again");
                        bus.publish(Event::WebhookRecovered { hook: hook.name.clone() });
                    }
                    break;
                }
                Attempt::Refused(error) => {
                    hook.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(hook = %hook.name, event = delivery.kind, "webhook receiver refused the event: {error}");
                    note_failing(&hook, &bus, error);
                    break;
                }
                Attempt::Retry(error) => error,
            };
            hook.failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(hook = %hook.name, "webhook delivery failed, retrying in {backoff:?}: {error}");
            note_failing(&hook, &bus, error);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(crate::retry::jittered(backoff)) => {}
            }
            backoff = (backoff * 2).min(hook.config.max_backoff);
        }
    }
}

/// Keeps the latest error; the first of a streak is logged and published.
fn note_failing(hook: &Hook, bus: &Bus, error: String) {
    let mut failing = hook.failing.lock().expect("failing lock never poisoned");
    if failing.is_none() {
        tracing::warn!(hook = %hook.name, "webhook deliveries fail: {error}; retrying with backoff");
        bus.publish(Event::WebhookFailing { hook: hook.name.clone(), error: error.clone() });
    }
    *failing = Some(error);
}

/// One POST of `delivery`, signed now.
async fn attempt(client: &reqwest::Client, hook: &Hook, delivery: &Delivery) -> Attempt {
    let now = chrono::Utc::now().timestamp();
    let signature = sign::sign(hook.config.secret.as_bytes(), now, &delivery.body);
    let sent = client
        .post(&hook.config.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(sign::HEADER, signature)
        .header("lookout-event", delivery.kind)
        .header("lookout-delivery", &delivery.id)
        .body(delivery.body.to_vec())
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let status = answer.status();
            if status.is_success() {
                Attempt::Delivered
            } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Attempt::Retry(format!("the receiver answered {status}"))
            } else {
                Attempt::Refused(format!("the receiver answered {status}"))
            }
        }
        Err(e) => Attempt::Retry(describe(e)),
    }
}

/// The error and its causes, without the URL: its query may carry a key.
fn describe(e: reqwest::Error) -> String {
    crate::error_chain(&e.without_url())
}
