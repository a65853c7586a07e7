//! Recordings over HTTP: list spans with gaps, download a segment (with ranges), export a
//! span as one MP4, and JPEG snapshots of the live picture.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use super::AppState;
use super::error::ApiError;
use crate::media::{export, snapshot};
use crate::storage::{self, Gap, Segment};

/// `?from=&to=`: RFC 3339 times (`2026-11-21T12:00:00Z`) or Unix seconds.
#[derive(Deserialize)]
pub struct Span {
    from: Option<String>,
    to: Option<String>,
}

/// Latest time accepted: the end of year 9999 (Unix seconds); the earliest is 1970.
const LAST_SECOND: f64 = 253_402_300_799.0;

fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "`{name}` must be an RFC 3339 time (2026-11-21T12:00:00Z) or Unix seconds, between 1970 and 9999, not `{}`",
            value.chars().take(40).collect::<String>()
        ))
    };
    let t = match DateTime::parse_from_rfc3339(value) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            let s = value.parse::<f64>().ok().filter(|s| s.is_finite() && (0.0..=LAST_SECOND).contains(s)).ok_or_else(bad)?;
            DateTime::from_timestamp_millis((s * 1000.0) as i64).ok_or_else(bad)?
        }
    };
    if t.timestamp() < 0 || t.timestamp() as f64 > LAST_SECOND {
        return Err(bad());
    }
    Ok(t)
}

impl Span {
    /// The span asked for; by default the last 24 hours.
    fn resolve(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let to = match &self.to {
            Some(t) => parse_time("to", t)?,
            None => Utc::now(),
        };
        let from = match &self.from {
            Some(f) => parse_time("from", f)?,
            None => to - chrono::Duration::hours(24),
        };
        if from > to {
            return Err(ApiError::BadRequest("`from` is after `to`".into()));
        }
        Ok((from, to))
    }
}

fn camera_exists(app: &AppState, camera: &str) -> Result<(), ApiError> {
    app.config.get().camera(camera).map(|_| ()).ok_or_else(|| ApiError::UnknownCamera(camera.to_owned()))
}

/// `GET /api/cameras/{camera}/recordings`.
#[derive(Serialize)]
pub struct Listing {
    pub camera: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub segments: Vec<Segment>,
    pub gaps: Vec<Gap>,
}

/// What was recorded in a span, and the gaps in it.
pub async fn list(State(app): State<AppState>, Path(camera): Path<String>, Query(span): Query<Span>) -> Result<Json<Listing>, ApiError> {
    camera_exists(&app, &camera)?;
    let (from, to) = span.resolve()?;
    let segments = listed(&app, &camera, from, to).await?;
    let gaps = storage::index::gaps(&segments);
    Ok(Json(Listing { camera, from, to, segments, gaps }))
}

/// The index's listing, read off the async threads (it reads the current segment's size).
async fn listed(app: &AppState, camera: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Segment>, ApiError> {
    let (index, camera) = (app.index.clone(), camera.to_owned());
    tokio::task::spawn_blocking(move || index.list(&camera, from, to, Utc::now()))
        .await
        .map_err(|e| ApiError::Internal(format!("listing recordings failed: {e}")))
}

/// One segment file, with HTTP range support for players that seek.
pub async fn download(
    State(app): State<AppState>,
    Path((camera, name)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    camera_exists(&app, &camera)?;
    let path = storage::layout::resolve(&app.config.get().storage.path, &camera, &name)
        .filter(|p| p.is_file())
        .ok_or_else(|| ApiError::NotFound(format!("no recording `{name}` for camera {camera}")))?;
    let response = tower_http::services::ServeFile::new_with_mime(path, &"video/mp4".parse().expect("valid mime"))
        .oneshot(request)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(response.into_response())
}

/// Longest span one export may cover.
pub const MAX_EXPORT_SPAN: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Exports running at once: each is a thread reading the disk and remuxing.
pub const MAX_EXPORTS: usize = 2;

/// The device's export slots. A slot goes with the export's response body and comes back when
/// the download ends or the client goes away.
#[derive(Clone)]
pub struct Exports(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for Exports {
    fn default() -> Self {
        Exports(std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_EXPORTS)))
    }
}

impl Exports {
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Unavailable(format!("{MAX_EXPORTS} exports are already running; retry when one has finished")))
    }
}

/// `stream`, holding `slot` until the stream is dropped.
fn holding<S: futures::Stream>(slot: tokio::sync::OwnedSemaphorePermit, stream: S) -> impl futures::Stream<Item = S::Item> {
    futures::StreamExt::map(stream, move |item| {
        let _held = &slot;
        item
    })
}

/// One MP4 covering the span, remuxed from the finished segments and streamed.
pub async fn export(State(app): State<AppState>, Path(camera): Path<String>, Query(span): Query<Span>) -> Result<Response, ApiError> {
    camera_exists(&app, &camera)?;
    let (from, to) = span.resolve()?;
    if to - from > MAX_EXPORT_SPAN {
        return Err(ApiError::BadRequest(format!("an export covers at most {} hours; ask for several", MAX_EXPORT_SPAN.num_hours())));
    }
    let slot = app.exports.admit()?;
    // Segments that merely touch the span (the neighbour ending where it starts) add nothing.
    let touch = chrono::Duration::milliseconds(50);
    let segments: Vec<Segment> = listed(&app, &camera, from, to)
        .await?
        .into_iter()
        .filter(|s| !s.recording && s.end - from > touch && to - s.start > touch)
        .collect();
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err(ApiError::NotFound(format!("nothing recorded by {camera} between {from} and {to}")));
    };
    let offset = |t: DateTime<Utc>| (t - first.start).to_std().unwrap_or_default();
    let before_last: Duration = segments[..segments.len() - 1].iter().map(|s| (s.end - s.start).to_std().unwrap_or_default()).sum();
    let end = before_last + (to.min(last.end) - last.start).to_std().unwrap_or_default();
    let request = export::ExportRequest {
        files: segments.iter().map(|s| s.path.clone()).collect(),
        start: offset(from),
        end,
        stall_limit: export::STALL_LIMIT,
    };
    tracing::debug!(camera = %camera, ?request, "export");
    let rx = export::start(request).map_err(|e| ApiError::Internal(e.to_string()))?;
    let stream = holding(slot, tokio_stream::wrappers::ReceiverStream::new(rx));
    let filename =
        format!("{camera}_{}_{}.mp4", from.max(first.start).format("%Y-%m-%dT%H-%M-%SZ"), to.min(last.end).format("%Y-%m-%dT%H-%M-%SZ"));
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `?width=`.
#[derive(Deserialize)]
pub struct SnapshotQuery {
    width: Option<u32>,
}

/// A JPEG of the current picture.
pub async fn snapshot(
    State(app): State<AppState>,
    Path(camera): Path<String>,
    Query(q): Query<SnapshotQuery>,
) -> Result<Response, ApiError> {
    let cam = app.media.camera(&camera).ok_or_else(|| ApiError::UnknownCamera(camera.clone()))?;
    if let Some(w) = q.width
        && !(16..=4096).contains(&w)
    {
        return Err(ApiError::BadRequest(format!("`width` must be between 16 and 4096, not {w}")));
    }
    if app.board.camera(&camera).is_some_and(|c| !c.online) {
        let reason = app.board.camera(&camera).and_then(|c| c.last_error).unwrap_or_else(|| "starting".into());
        return Err(ApiError::Unavailable(format!("camera {camera} is offline: {reason}")));
    }
    let _permit = cam.snapshots.acquire().await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let jpeg = snapshot::capture(&cam.fanout, app.media.clock(), q.width).await.map_err(|e| match e {
        snapshot::SnapshotError::Timeout => ApiError::Unavailable(e.to_string()),
        snapshot::SnapshotError::Pipeline(_) => ApiError::Internal(e.to_string()),
    })?;
    let mut response = jpeg.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_third_export_is_refused_until_a_download_ends_or_its_client_goes() {
        let exports = Exports::default();
        let (tx, rx) = tokio::sync::mpsc::channel::<u8>(1);
        let mut running = Box::pin(holding(exports.admit().unwrap(), tokio_stream::wrappers::ReceiverStream::new(rx)));
        let abandoned = holding(exports.admit().unwrap(), futures::stream::pending::<u8>());
        match exports.admit() {
            Err(e @ ApiError::Unavailable(_)) => assert!(e.to_string().contains("2 exports"), "{e}"),
            Err(e) => panic!("refused with {e}"),
            Ok(_) => panic!("a third export at once was admitted"),
        }
        drop(abandoned); // the client went away: the body is dropped
        let third = exports.admit().expect("a dropped download frees its slot");
        assert!(exports.admit().is_err());
        tx.send(7).await.unwrap();
        drop(tx);
        assert_eq!(futures::StreamExt::next(&mut running).await, Some(7));
        assert_eq!(futures::StreamExt::next(&mut running).await, None);
        assert!(exports.admit().is_err(), "a slot is held until the body is dropped, not merely drained");
        drop(running);
        drop(third);
        let _a = exports.admit().expect("both slots free again");
        let _b = exports.admit().expect("both slots free again");
    }

    #[test]
    fn out_of_range_and_non_finite_times_are_refused_with_the_field_named() {
        for bad in ["-8334601228800", "NaN", "inf", "-1", "1e300", "0000-01-01T00:00:00Z", "garbage", ""] {
            let e = parse_time("to", bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.to_string().starts_with("`to`"), "{e}");
        }
        assert_eq!(parse_time("to", "1700000000").unwrap().timestamp(), 1_700_000_000);
        assert_eq!(parse_time("from", "2026-11-21T12:00:00Z").unwrap().timestamp(), 1_795_262_400);
        let span = Span { from: None, to: Some("0".into()) };
        assert!(span.resolve().is_ok(), "the default 24 h before 1970 does not underflow");
    }

    proptest::proptest! {
        #[test]
        fn any_query_times_resolve_or_are_refused_never_panic(from in proptest::option::of(".{0,40}"), to in proptest::option::of("-?[0-9.e]{0,24}|.{0,40}")) {
            let span = Span { from, to };
            if let Ok((from, to)) = span.resolve() {
                proptest::prop_assert!(from <= to);
            }
        }
    }
}
