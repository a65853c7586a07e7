//! What a WHEP viewer's data channel carries (when its offer opens one), for a player that
//! wants to show more than the picture without a second connection:
//!
//! - first `{"type": "state", "camera": {…}}`: the camera as `/api/state` shows it;
//! - then the camera's events, as `/api/events` sends them (`v`, `seq`, `at`, `type`, …);
//! - every second `{"type": "stats", …}`: fps, bitrate, viewers, recording, the device's clock
//!   (`now_ms`) and the newest frame sent to this viewer (`frame`: its RTP timestamp and its
//!   capture time by the device's clock), from which a player works out glass-to-glass latency;
//! - requests, each answered with `{"type": "result", "id": …, "ok": …}`: `ping` (answered with
//!   `pong` and the device's clock, to align the player's), `identify` (the `control` grant)
//!   and `snapshot` (the `snapshot` grant), whose JPEG comes back as a byte stream: a
//!   `stream_header` (`stream`, `id`, `mime_type`, `size`), binary chunks (a 4-byte big-endian
//!   stream number and a 4-byte index, then up to 16 KiB), and a `stream_trailer`.

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::auth::{Action, Principal};
use crate::events::journal::VERSION;
use crate::media::snapshot;
use crate::media::webrtc::channel::{ChannelHandler, ChannelLink};

/// Bytes of a snapshot per binary message: well under SCTP's usual 64 KiB message limit.
const CHUNK: usize = 16 * 1024;
/// How often stats are sent.
const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What a viewer of `camera` (authorised as `who`) gets on the data channel it opens.
pub fn handler(app: &AppState, who: &Principal, camera: &str) -> ChannelHandler {
    let runtime = tokio::runtime::Handle::current();
    let (app, who, camera) = (app.clone(), who.clone(), camera.to_owned());
    Box::new(move |link| {
        runtime.spawn(serve(app, who, camera, link));
    })
}

/// A request from the player.
#[derive(Deserialize)]
struct Request {
    id: Option<Value>,
    #[serde(rename = "type")]
    kind: String,
    /// `ping`: the player's clock, echoed back.
    t: Option<f64>,
}

async fn serve(app: AppState, who: Principal, camera: String, link: ChannelLink) {
    serve_open(&app, &who, &camera, link).await;
    tracing::debug!(camera = %camera, "a viewer's data channel ended");
}

async fn serve_open(app: &AppState, who: &Principal, camera: &str, mut link: ChannelLink) {
    if !link.opened().await {
        return;
    }
    let (_, at, mut live) = app.journal.listen(None, None);
    link.send_text(&state(app, camera).to_string());
    let mut tick = tokio::time::interval(STATS_EVERY);
    let mut streams = 0u32;
    loop {
        tokio::select! {
            event = live.recv() => match event {
                Ok(n) if n.seq > at && n.event.camera() == Some(camera) && super::events::audible(app, who, &n.event) => {
                    link.send_text(&serde_json::to_string(&n).unwrap_or_default());
                }
                Ok(_) => {}
                // Missed some: the state says where things are now.
                Err(RecvError::Lagged(_)) => {
                    link.send_text(&state(app, camera).to_string());
                }
                Err(RecvError::Closed) => return,
            },
            message = link.incoming.recv() => match message {
                Some(text) => {
                    let answer = answer(app, who, camera, &link, &text, &mut streams).await;
                    link.send_text(&answer.to_string());
                }
                None => return,
            },
            _ = tick.tick() => {
                // The session may end without closing its channel: the channel holds the
                // queue's senders, so only this look lets the task (and what it holds) go.
                if !link.alive() {
                    return;
                }
                link.send_text(&stats(app, camera, &link).to_string());
            }
        }
    }
}

fn state(app: &AppState, camera: &str) -> Value {
    json!({ "v": VERSION, "type": "state", "camera": app.board.camera(camera) })
}

fn stats(app: &AppState, camera: &str, link: &ChannelLink) -> Value {
    let status = app.board.camera(camera).unwrap_or_default();
    let frame =
        link.newest_frame().map(|f| json!({ "rtp_timestamp": f.rtp_timestamp, "captured_at_ms": f.captured_at.timestamp_millis() }));
    json!({
        "v": VERSION,
        "type": "stats",
        "camera": camera,
        "fps": status.measured_fps,
        "bitrate_kbps": status.measured_bitrate_kbps,
        "viewers": status.viewers,
        "recording": status.recording,
        "now_ms": chrono::Utc::now().timestamp_millis(),
        "frame": frame,
    })
}

/// Carries out one request; the answer echoes its `id`.
async fn answer(app: &AppState, who: &Principal, camera: &str, link: &ChannelLink, text: &str, streams: &mut u32) -> Value {
    let request: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return json!({ "v": VERSION, "type": "result", "id": null, "ok": false, "error": format!("not a request: {e}") }),
    };
    let id = request.id.filter(|v| v.is_string() || v.is_number()).unwrap_or(Value::Null);
    let outcome = match request.kind.as_str() {
        "ping" => {
            let now = chrono::Utc::now().timestamp_millis();
            return json!({ "v": VERSION, "type": "pong", "id": id, "t": request.t, "now_ms": now });
        }
        "identify" => super::api::request_action(app, who, "identify", None, "data channel").map(|_| ()).map_err(|e| e.to_string()),
        "snapshot" => {
            *streams += 1;
            send_snapshot(app, who, camera, link, &id, *streams).await
        }
        other => Err(format!("unknown request `{other}`: this channel takes ping, identify and snapshot")),
    };
    match outcome {
        Ok(()) => json!({ "v": VERSION, "type": "result", "id": id, "ok": true }),
        Err(error) => json!({ "v": VERSION, "type": "result", "id": id, "ok": false, "error": error }),
    }
}

/// Takes a JPEG of the camera and sends it as byte stream number `stream`.
async fn send_snapshot(app: &AppState, who: &Principal, camera: &str, link: &ChannelLink, id: &Value, stream: u32) -> Result<(), String> {
    app.auth.authorize(who, Action::Snapshot, Some(camera)).map_err(|e| e.to_string())?;
    let cam = app.media.camera(camera).ok_or_else(|| format!("camera {camera} is not running"))?;
    let jpeg = {
        let _permit = cam.snapshots.acquire().await.map_err(|_| "shutting down".to_owned())?;
        snapshot::capture(&cam.fanout, app.media.clock(), None).await.map_err(|e| e.to_string())?
    };
    let header =
        json!({ "v": VERSION, "type": "stream_header", "stream": stream, "id": id, "mime_type": "image/jpeg", "size": jpeg.len() });
    let mut sent = link.send_text(&header.to_string());
    for (index, chunk) in jpeg.chunks(CHUNK).enumerate() {
        let mut message = Vec::with_capacity(8 + chunk.len());
        message.extend_from_slice(&stream.to_be_bytes());
        message.extend_from_slice(&(index as u32).to_be_bytes());
        message.extend_from_slice(chunk);
        // A channel backed up this far belongs to a player that is not reading.
        sent = sent && link.send_bytes(&message);
    }
    let trailer = json!({ "v": VERSION, "type": "stream_trailer", "stream": stream, "id": id, "complete": sent });
    link.send_text(&trailer.to_string());
    if sent { Ok(()) } else { Err("the data channel is backed up; the snapshot was cut off".into()) }
}
