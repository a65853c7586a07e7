//! HTTP errors as JSON a person can act on; each variant has its status written down here.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::media::webrtc::ViewerError;

/// An error response: `{"error": "<what went wrong and what to do>"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no camera named `{0}`; GET /api/cameras lists them")]
    UnknownCamera(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownCamera(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
        }
    }
}

impl From<ViewerError> for ApiError {
    fn from(e: ViewerError) -> Self {
        match e {
            ViewerError::BadOffer(_) => ApiError::BadRequest(e.to_string()),
            ViewerError::TooMany { .. } => ApiError::Unavailable(e.to_string()),
            ViewerError::UnknownSession => ApiError::NotFound(e.to_string()),
            // The offer parsed but webrtcbin could not answer it: still the offer's fault.
            ViewerError::Negotiation(_) => ApiError::BadRequest(e.to_string()),
            ViewerError::NotReady(_) => ApiError::Unavailable(e.to_string()),
            ViewerError::Internal(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("{self}");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if let ApiError::Unavailable(_) = self {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}

/// Axum's own rejections (a body over the limit, a malformed path or query) are plain text;
/// this gives them the same JSON shape as every other error, so clients parse one format.
pub async fn json_rejections(response: Response) -> Response {
    let plain = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"));
    if !response.status().is_client_error() || !plain {
        return response;
    }
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 16 * 1024).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE { format!("the request body is too large ({detail})") } else { detail };
    (status, Json(json!({ "error": message }))).into_response()
}

/// A handler that panicked: logged, and answered as JSON instead of a dropped connection.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what =
        panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("unknown panic");
    ApiError::Internal(format!("internal error while answering this request: {what}")).into_response()
}
