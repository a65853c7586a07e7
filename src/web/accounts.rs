//! The owner's management of users and tokens, and a user's own password change. The
//! authorisation (owner only, except `/api/me/password`) is `web::auth::guard`'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::auth::{AuthError, Grant, Principal};

fn error(e: AuthError) -> Response {
    let status = match e {
        AuthError::Invalid(_) => StatusCode::BAD_REQUEST,
        AuthError::Conflict(_) => StatusCode::CONFLICT,
        AuthError::NotFound(_) => StatusCode::NOT_FOUND,
        AuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(json!({ "error": e.to_string() }))).into_response()
}

fn unknown_cameras(app: &AppState, cameras: &Option<Vec<String>>) -> Option<Response> {
    let unknown: Vec<&String> = cameras.iter().flatten().filter(|c| app.config.get().camera(c).is_none()).collect();
    (!unknown.is_empty()).then(|| error(AuthError::Invalid(format!("no camera named {unknown:?}"))))
}

/// `GET /api/users`.
pub async fn list_users(State(app): State<AppState>) -> Response {
    Json(app.auth.users()).into_response()
}

/// `POST /api/users` body: a new viewer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    cameras: Option<Vec<String>>,
}

/// Adds a viewer.
pub async fn add_user(State(app): State<AppState>, Json(u): Json<NewUser>) -> Response {
    if let Some(bad) = unknown_cameras(&app, &u.cameras) {
        return bad;
    }
    match app.auth.add_viewer(&u.name, &u.password, u.cameras).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => error(e),
    }
}

/// `PATCH /api/users/{name}` body: a new password and/or cameras (`null`: all).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    password: Option<String>,
    #[serde(default, with = "serde_with_double_option")]
    cameras: Option<Option<Vec<String>>>,
}

/// `cameras` absent means "unchanged", `null` means "all cameras".
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
        Option::<Vec<String>>::deserialize(d).map(Some)
    }
}

fn renewed(session: Option<crate::auth::NewSession>, https: &super::auth::OverHttps) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(s) = session {
        response.headers_mut().insert(header::SET_COOKIE, super::auth::session_cookie(&s, https));
    }
    response
}

/// Changes a user; a new password ends that user's sessions (the caller's own gets a new cookie).
pub async fn change_user(
    State(app): State<AppState>,
    https: super::auth::OverHttps,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
    Json(c): Json<UserChange>,
) -> Response {
    if let Some(Some(bad)) = c.cameras.as_ref().map(|cams| unknown_cameras(&app, cams)) {
        return bad;
    }
    match app.auth.change_user(&name, c.password.as_deref(), c.cameras, &who).await {
        Ok(session) => renewed(session, &https),
        Err(e) => error(e),
    }
}

/// Removes a viewer.
pub async fn remove_user(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    match app.auth.remove_user(&name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

/// `POST /api/me/password` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// A logged-in user changes their own password, proving the current one.
pub async fn change_own_password(
    State(app): State<AppState>,
    https: super::auth::OverHttps,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    axum::Extension(who): axum::Extension<Principal>,
    Json(c): Json<PasswordChange>,
) -> Response {
    let Principal::User { name, .. } = &who else {
        return error(AuthError::Invalid("only a logged-in user has a password to change".into()));
    };
    if let Err(d) = app.auth.login(peer.ip(), name, &c.current).await {
        return (StatusCode::FORBIDDEN, Json(json!({ "error": format!("the current password is wrong ({d})") }))).into_response();
    }
    match app.auth.change_user(name, Some(&c.new), None, &who).await {
        Ok(session) => renewed(session, &https),
        Err(e) => error(e),
    }
}

/// `POST /api/tokens` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[serde(default)]
    label: String,
    #[serde(default)]
    cameras: Option<Vec<String>>,
    grants: Vec<String>,
    /// `30d`, `12h`...
    ttl: String,
}

/// Issues a token; its text is in this answer only.
pub async fn issue_token(
    State(app): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    Json(t): Json<NewToken>,
) -> Response {
    if let Some(bad) = unknown_cameras(&app, &t.cameras) {
        return bad;
    }
    let grants: Result<Vec<Grant>, String> = t
        .grants
        .iter()
        .map(|g| Grant::from_name(g).ok_or_else(|| format!("no grant `{g}`; grants: view, playback, snapshot, control, metrics")))
        .collect();
    let grants = match grants {
        Ok(g) => g,
        Err(e) => return error(AuthError::Invalid(e)),
    };
    let Ok(ttl) = humantime_serde::re::humantime::parse_duration(&t.ttl) else {
        return error(AuthError::Invalid(format!("`ttl` must be a duration such as 30d or 12h, not `{}`", t.ttl)));
    };
    let issuer = match &who {
        Principal::User { name, .. } => name.clone(),
        other => other.describe(),
    };
    match app.auth.issue_token(&issuer, &t.label, t.cameras, grants, ttl) {
        Ok(issued) => (StatusCode::CREATED, Json(issued)).into_response(),
        Err(e) => error(e),
    }
}

/// `GET /api/tokens`: what each token may do (never the token text).
pub async fn list_tokens(State(app): State<AppState>) -> Response {
    Json(app.auth.tokens()).into_response()
}

/// Revokes one token.
pub async fn revoke_token(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    match app.auth.revoke_token(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

/// Revokes every token.
pub async fn revoke_all_tokens(State(app): State<AppState>) -> Response {
    match app.auth.revoke_all_tokens() {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}
