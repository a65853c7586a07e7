//! `GET /api/events` (WebSocket): the event bus for clients outside the daemon. Text messages,
//! each JSON with `v` (the format's version), `seq` and `type`:
//! - first a `snapshot` (`state` is what `GET /api/state` answers), whose `seq` is the last
//!   event it includes and `run` names this run of the daemon; with `?since=N&run=R` (the last
//!   `seq` a reconnecting client saw, in run `R`) the events it missed instead, or a snapshot
//!   with `"resync": true` if they are no longer kept or the daemon restarted;
//! - then every event as it happens (`events::Event`, with `at`), only of the cameras the
//!   client may see; logins, token revocations and resets only to the owner.
//!
//! Control over the same socket: the client sends `{"id": "…", "type": "identify" | "snapshot" |
//! "reboot" | "recording.start" | "recording.stop" | "recording.toggle", "camera": "…"}`
//! (`camera` optional); it needs the `control` grant for the camera (`actions::request`). Each is answered with
//! `{"type": "result", "id": …, "ok": true}` (or `false` with `error`) once it is on the bus,
//! whose single queue orders the requests of every client, the page's buttons and the
//! device's own button; `actions` carries them out in that order.
//!
//! A client that falls [`journal::BACKLOG`](crate::events::journal::BACKLOG) events behind, or
//! takes nothing for [`STALL_LIMIT`], is closed (code 4000) and may reconnect with `?since=`;
//! it never holds up the daemon or other clients. A revoked token ends its stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::auth::{Action, Principal};
use crate::events::Event;
use crate::events::journal::{Numbered, Replay, VERSION};

/// A client that has not taken a message for this long is dropped.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Largest message a client may send (control messages are small).
const MAX_CLIENT_MESSAGE: usize = 1024;
/// The close code for a client that fell behind.
const TOO_SLOW: u16 = 4000;

/// Event clients now and those dropped for being slow, for `/metrics`.
#[derive(Debug, Default)]
pub struct Clients {
    connected: AtomicU64,
    dropped: AtomicU64,
}

impl Clients {
    /// (connected now, dropped since start).
    pub fn counts(&self) -> (u64, u64) {
        (self.connected.load(Ordering::Relaxed), self.dropped.load(Ordering::Relaxed))
    }
}

/// Counts a client while it is connected.
struct Connected<'a>(&'a Clients);

impl<'a> Connected<'a> {
    fn new(clients: &'a Clients) -> Self {
        clients.connected.fetch_add(1, Ordering::Relaxed);
        Connected(clients)
    }

    fn dropped(&self) {
        self.0.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `?since=&run=`.
#[derive(Deserialize)]
pub struct Since {
    since: Option<u64>,
    run: Option<String>,
}

/// Upgrades to the event stream.
pub async fn stream(
    State(app): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    Query(Since { since, run }): Query<Since>,
    ws: WebSocketUpgrade,
) -> Response {
    let revoked = super::auth::revoked(&app, &who);
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| send(app, who, since, run, socket, revoked))
}

/// Whether `who` may hear `event`.
pub(super) fn audible(app: &AppState, who: &Principal, event: &Event) -> bool {
    match event.camera() {
        Some(camera) => who.sees(camera),
        None if event.owner_only() => app.auth.authorize(who, Action::Admin, None).is_ok(),
        None => true,
    }
}

fn snapshot(app: &AppState, who: &Principal, seq: u64, resync: bool) -> String {
    let state = super::api::state_for(app, who);
    let mut message = json!({ "v": VERSION, "seq": seq, "run": app.journal.run_id(), "type": "snapshot", "state": state });
    if resync {
        message["resync"] = json!(true);
    }
    message.to_string()
}

async fn send(
    app: AppState,
    who: Principal,
    since: Option<u64>,
    run: Option<String>,
    mut socket: WebSocket,
    revoked: impl std::future::Future<Output = ()>,
) {
    let mut revoked = std::pin::pin!(revoked);
    let clients = app.event_clients.clone();
    let client = Connected::new(&clients);
    let (replay, at, mut live) = app.journal.listen(since, run.as_deref());
    let first: Vec<String> = match replay {
        Replay::Missed(events) => events.iter().filter(|n| audible(&app, &who, &n.event)).map(numbered).collect(),
        Replay::Resync => vec![snapshot(&app, &who, at, since.is_some())],
    };
    let mut last = at;
    for text in first {
        if let Err(gone) = deliver(&mut socket, text).await {
            gone.count(&client);
            return;
        }
    }
    loop {
        tokio::select! {
            event = live.recv() => match event {
                Ok(n) if n.seq <= at => {}
                Ok(n) => {
                    last = n.seq;
                    if audible(&app, &who, &n.event) && let Err(gone) = deliver(&mut socket, numbered(&n)).await {
                        gone.count(&client);
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    client.dropped();
                    let reason = format!("too slow: reconnect with ?since={last}");
                    close(&mut socket, TOO_SLOW, reason).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Text(text))) => {
                    if let Err(gone) = deliver(&mut socket, control(&app, &who, &text).to_string()).await {
                        gone.count(&client);
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = &mut revoked => {
                close(&mut socket, 4001, "token revoked".into()).await;
                return;
            }
        }
    }
}

/// A control request from a client.
#[derive(Deserialize)]
struct Request {
    id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: String,
    /// The camera a `snapshot` or `recording.*` request is for (unset: every camera).
    camera: Option<String>,
}

/// Carries out one control message; the answer echoes its `id`.
fn control(app: &AppState, who: &Principal, text: &str) -> serde_json::Value {
    let request: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return json!({ "v": VERSION, "type": "result", "id": null, "ok": false, "error": format!("not a request: {e}") }),
    };
    let id = request.id.filter(|v| v.is_string() || v.is_number()).unwrap_or(serde_json::Value::Null);
    let answer = |outcome: Result<(), String>| match outcome {
        Ok(()) => json!({ "v": VERSION, "type": "result", "id": id, "ok": true }),
        Err(error) => json!({ "v": VERSION, "type": "result", "id": id, "ok": false, "error": error }),
    };
    answer(super::api::request_action(app, who, &request.kind, request.camera, "events socket").map(|_| ()).map_err(|e| e.to_string()))
}

fn numbered(n: &Numbered) -> String {
    serde_json::to_string(n).unwrap_or_default()
}

/// Says why the stream ends, if the client still takes it in time.
async fn close(socket: &mut WebSocket, code: u16, reason: String) {
    let _ = tokio::time::timeout(STALL_LIMIT, socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() })))).await;
}

/// Why a message could not be sent.
enum Gone {
    /// The client took nothing for [`STALL_LIMIT`].
    Stalled,
    Closed,
}

impl Gone {
    fn count(&self, client: &Connected) {
        if matches!(self, Gone::Stalled) {
            client.dropped();
        }
    }
}

/// Sends one message.
async fn deliver(socket: &mut WebSocket, text: String) -> Result<(), Gone> {
    match tokio::time::timeout(STALL_LIMIT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Gone::Closed),
        Err(_) => Err(Gone::Stalled),
    }
}
