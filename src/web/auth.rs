//! Credentials over HTTP: every request passes [`guard`], which finds the route's policy in
//! [`ROUTES`], reads the credential (a `Bearer` token, `?token=`, or the session cookie) and
//! asks `auth::Auth::authorize`. A route missing from the table is refused to everyone, so a
//! new route is closed until it is given a policy. Also the login, setup and logout routes.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::auth::{Action, Denied, NewSession, Principal};

/// The page's session cookie.
pub const COOKIE: &str = "lookout_session";

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Anyone: liveness, and the login and setup pages.
    Public,
    /// An asset: public if the login or setup page needs it, else like the page.
    Asset,
    /// What `Auth::authorize` must allow; the `{camera}` in the path is the camera.
    Needs(Action),
    /// SOAP (ONVIF): the credential is in the body (WS-Security), so the handler turns it
    /// into a principal and asks `Auth::authorize` for each operation (`web::onvif`).
    Soap,
}

/// Every route the router serves, with its policy. HEAD follows GET.
pub const ROUTES: &[(&str, &str, Policy)] = &[
    ("GET", "/livez", Policy::Public),
    ("GET", "/login", Policy::Public),
    ("GET", "/setup", Policy::Public),
    ("POST", "/api/login", Policy::Public),
    ("POST", "/api/setup", Policy::Public),
    ("GET", "/assets/{*path}", Policy::Asset),
    ("GET", "/", Policy::Needs(Action::Status)),
    ("POST", "/api/logout", Policy::Needs(Action::Status)),
    ("GET", "/api/me", Policy::Needs(Action::Status)),
    ("POST", "/api/me/password", Policy::Needs(Action::Status)),
    ("GET", "/api/state", Policy::Needs(Action::Status)),
    ("GET", "/api/cameras", Policy::Needs(Action::Status)),
    ("GET", "/api/health", Policy::Needs(Action::Status)),
    ("GET", "/api/events", Policy::Needs(Action::Status)),
    ("POST", "/api/actions/{action}", Policy::Needs(Action::Control)),
    ("GET", "/metrics", Policy::Needs(Action::Metrics)),
    ("GET", "/api/cameras/{camera}/recordings", Policy::Needs(Action::Playback)),
    ("GET", "/api/cameras/{camera}/recordings/{segment}", Policy::Needs(Action::Playback)),
    ("GET", "/api/cameras/{camera}/export", Policy::Needs(Action::Playback)),
    ("GET", "/api/cameras/{camera}/snapshot.jpg", Policy::Needs(Action::Snapshot)),
    ("GET", "/ws/mse/{camera}", Policy::Needs(Action::View)),
    ("POST", "/whep/{camera}", Policy::Needs(Action::View)),
    ("DELETE", "/whep/{camera}/{session}", Policy::Needs(Action::View)),
    ("PATCH", "/whep/{camera}/{session}", Policy::Needs(Action::View)),
    ("GET", "/api/users", Policy::Needs(Action::Admin)),
    ("POST", "/api/users", Policy::Needs(Action::Admin)),
    ("PATCH", "/api/users/{name}", Policy::Needs(Action::Admin)),
    ("DELETE", "/api/users/{name}", Policy::Needs(Action::Admin)),
    ("GET", "/api/tokens", Policy::Needs(Action::Admin)),
    ("POST", "/api/tokens", Policy::Needs(Action::Admin)),
    ("DELETE", "/api/tokens", Policy::Needs(Action::Admin)),
    ("DELETE", "/api/tokens/{id}", Policy::Needs(Action::Admin)),
    ("GET", "/api/config", Policy::Needs(Action::Admin)),
    ("GET", "/api/devices", Policy::Needs(Action::Admin)),
    ("PATCH", "/api/config", Policy::Needs(Action::Admin)),
    ("POST", "/api/config/cameras/{camera}/rename", Policy::Needs(Action::Admin)),
    ("GET", "/api/network", Policy::Needs(Action::Admin)),
    ("POST", "/api/network/scan", Policy::Needs(Action::Admin)),
    ("POST", "/api/network/confirm", Policy::Needs(Action::Admin)),
    ("POST", "/api/network/join", Policy::Needs(Action::Admin)),
    ("POST", "/onvif/device_service", Policy::Soap),
    ("POST", "/onvif/media_service", Policy::Soap),
];

/// Assets the login and setup pages load.
pub const PUBLIC_ASSETS: &[&str] = &["style.css", "login.js"];

/// The policy of `method` on the route pattern `path`; `None` for a route not in the table.
pub fn policy(method: &Method, path: &str) -> Option<Policy> {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTES.iter().find(|(m, p, _)| *m == method && *p == path).map(|(_, _, policy)| *policy)
}

/// The credential a request carries, in order of precedence: `Authorization: Bearer` (or
/// `Basic`, as ONVIF clients fetch a snapshot URI), `?token=`, the session cookie. `None`
/// when it carries none.
pub enum Credential {
    Token(String),
    Session(String),
    Basic { user: String, password: String },
}

fn credential(request: &Request) -> Option<Credential> {
    if let Some((scheme, rest)) = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.split_once(' '))
    {
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(Credential::Token(rest.trim().to_owned()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine as _;
            let decoded = (rest.len() <= 4096).then(|| base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()).flatten();
            let text = decoded.and_then(|d| String::from_utf8(d).ok());
            if let Some((user, password)) = text.as_deref().and_then(|t| t.split_once(':')) {
                return Some(Credential::Basic { user: user.to_owned(), password: password.to_owned() });
            }
        }
    }
    if let Some(query) = request.uri().query()
        && let Some(token) = url_query_value(query, "token")
    {
        return Some(Credential::Token(token));
    }
    axum_extra::extract::CookieJar::from_headers(request.headers()).get(COOKIE).map(|c| Credential::Session(c.value().to_owned()))
}

/// A query parameter's value (tokens are URL-safe base64 and dots: no decoding needed).
fn url_query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| pair.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')).map(str::to_owned))
}

/// Whether a browser sent this request from our own page (or typed it in). Requests from
/// other tools carry neither header and are not browsers' cross-site requests.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST).and_then(|v| v.to_str().ok())) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, h)| h == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The path segment where `pattern` has `name`. Not percent-decoded: camera names need no
/// escaping, and an escaped one matches no camera a restricted principal may see.
fn path_parameter(pattern: &str, path: &str, name: &str) -> Option<String> {
    pattern.split('/').zip(path.split('/')).find(|(p, _)| *p == name).map(|(_, v)| v.to_owned())
}

/// What [`resolve`] needs of a request, taken out of it (a request cannot be held across an
/// await in a handler's future).
pub fn presented(request: &Request) -> (Option<Credential>, Option<SocketAddr>) {
    (credential(request), request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
}

/// Resolves who is asking; a credential that does not check out is an error, not anonymity.
pub async fn resolve(app: &AppState, credential: Option<Credential>, peer: Option<SocketAddr>) -> Result<Principal, Denied> {
    match credential {
        None => Ok(Principal::Anonymous),
        Some(Credential::Token(t)) => app.auth.token(&t),
        Some(Credential::Session(s)) => app.auth.session(&s),
        Some(Credential::Basic { user, password }) => {
            let address = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.ip());
            // A wrong password over HTTP is a 401, as a missing one is.
            let checked = app.auth.verify(address, &crate::auth::credentials::Credential::Password { user, password }).await;
            checked.map_err(|e| if matches!(e, Denied::Forbidden(_)) { Denied::Unauthenticated } else { e })
        }
    }
}

/// The one gate: every route, before its handler.
pub async fn guard(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else { return next.run(request).await };
    let route = route.as_str();
    let Some(policy) = policy(request.method(), route) else {
        // A method the route does not serve reaches no handler: the router answers 405.
        if ROUTES.iter().any(|(_, p, _)| *p == route) {
            return next.run(request).await;
        }
        tracing::error!(route, method = %request.method(), "route has no access policy: refused");
        return refuse(&request, Denied::Forbidden("this route has no access policy".into()));
    };
    let action = match policy {
        Policy::Public | Policy::Soap => return next.run(request).await,
        Policy::Asset => {
            let asset = request.uri().path().trim_start_matches("/assets/");
            if PUBLIC_ASSETS.contains(&asset) {
                return next.run(request).await;
            }
            Action::Status
        }
        Policy::Needs(action) => action,
    };
    let camera = path_parameter(route, request.uri().path(), "{camera}");
    let credential = credential(&request);
    // A cookie rides along on any request the browser makes, also one a foreign page makes
    // it send: changes and WebSockets by cookie must come from our own page.
    let by_cookie = matches!(credential, Some(Credential::Session(_)));
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let principal = match resolve(&app, credential, peer).await {
        Ok(p) => p,
        Err(denied) => return refuse(&request, denied),
    };
    let upgrade = request.headers().contains_key(header::UPGRADE);
    if by_cookie && (request.method() != Method::GET && request.method() != Method::HEAD || upgrade) && !same_origin(request.headers()) {
        tracing::warn!(route, "cross-site request with the session cookie refused");
        return refuse(&request, Denied::Forbidden("cross-site request refused".into()));
    }
    if let Err(denied) = app.auth.authorize(&principal, action, camera.as_deref()) {
        return refuse(&request, denied);
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// A refusal: pages are sent to the login (or setup) page, everything else gets JSON.
fn refuse(request: &Request, denied: Denied) -> Response {
    let wants_page = request.method() == Method::GET
        && request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_page && matches!(denied, Denied::SetupRequired | Denied::Unauthenticated) {
        let to = if denied == Denied::SetupRequired { "/setup" } else { "/login" };
        return Redirect::to(to).into_response();
    }
    denied_response(denied)
}

/// A refusal as JSON, with its status, `WWW-Authenticate` on 401 and `Retry-After` on 429.
fn denied_response(denied: Denied) -> Response {
    let status = match &denied {
        Denied::SetupRequired | Denied::Unauthenticated | Denied::StaleNonce => StatusCode::UNAUTHORIZED,
        Denied::Forbidden(_) => StatusCode::FORBIDDEN,
        Denied::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
        Denied::Broken(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut body = json!({ "error": denied.to_string() });
    if denied == Denied::SetupRequired {
        body["setup"] = json!("/setup");
    }
    let mut response = (status, Json(body)).into_response();
    let h = response.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"lookout\""));
    }
    if let Denied::TooManyAttempts(wait) = denied
        && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
    {
        h.insert(header::RETRY_AFTER, v);
    }
    response
}

/// Whether the request came over HTTPS: its cookies are then `Secure`, so a browser never
/// sends them over plain HTTP (where the device only redirects).
pub type OverHttps = Option<axum::Extension<super::server::Https>>;

/// The page's session cookie; `Secure` when set over HTTPS.
pub fn session_cookie(session: &NewSession, https: &OverHttps) -> HeaderValue {
    cookie_header(session.cookie.clone(), time::Duration::seconds(session.max_age.as_secs() as i64), https)
}

fn cleared_cookie(https: &OverHttps) -> HeaderValue {
    cookie_header(String::new(), time::Duration::ZERO, https)
}

fn cookie_header(value: String, max_age: time::Duration, https: &OverHttps) -> HeaderValue {
    let cookie = Cookie::build((COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(https.is_some())
        .path("/")
        .max_age(max_age)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /api/login` and `/api/setup` bodies.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: Option<String>,
    password: String,
}

/// Resolves when the token `who` used is revoked (never for other principals): live sessions
/// a token opened end with it. An expired token does not end them; expiry is checked when a
/// session opens.
pub fn revoked(app: &AppState, who: &Principal) -> impl std::future::Future<Output = ()> + Send + 'static {
    let id = match who {
        Principal::Token { id, .. } => Some(id.clone()),
        _ => None,
    };
    let mut events = app.bus.subscribe();
    let auth = app.auth.clone();
    async move {
        let Some(id) = id else { return std::future::pending().await };
        loop {
            match events.recv().await {
                Ok(crate::events::Event::TokenRevoked { id: gone }) if gone == id => return,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if !auth.token_is_valid(&id) {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

fn logged_in(session: &NewSession, user: &str, https: &OverHttps) -> Response {
    let mut response = Json(json!({ "user": user })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(session, https));
    response
}

/// Checks a name and password; on success the session cookie.
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    https: OverHttps,
    Json(form): Json<LoginForm>,
) -> Response {
    let user = form.user.unwrap_or_else(|| crate::auth::DEFAULT_ADMIN.into());
    match app.auth.login(peer.ip(), &user, &form.password).await {
        Ok(session) => logged_in(&session, &user, &https),
        Err(d) => denied_response(d),
    }
}

/// Sets the owner's password while the device is in setup.
pub async fn setup(State(app): State<AppState>, https: OverHttps, Json(form): Json<LoginForm>) -> Response {
    let user = form.user.filter(|u| !u.is_empty()).unwrap_or_else(|| crate::auth::DEFAULT_ADMIN.into());
    match app.auth.setup(&user, &form.password).await {
        Ok(session) => logged_in(&session, &user, &https),
        Err(e @ crate::auth::AuthError::Conflict(_)) => (StatusCode::CONFLICT, Json(json!({ "error": e.to_string() }))).into_response(),
        Err(e @ crate::auth::AuthError::Invalid(_)) => (StatusCode::BAD_REQUEST, Json(json!({ "error": e.to_string() }))).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": e.to_string() }))).into_response(),
    }
}

/// Ends the caller's session and clears its cookie.
pub async fn logout(State(app): State<AppState>, https: OverHttps, axum::Extension(who): axum::Extension<Principal>) -> Response {
    if let Err(e) = app.auth.end_session(&who) {
        tracing::warn!("logout: {e}");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cleared_cookie(&https));
    response
}

/// Who the caller is and what it may do, for the page.
pub async fn me(axum::Extension(who): axum::Extension<Principal>) -> Response {
    match who {
        Principal::User { name, role, cameras, .. } => Json(json!({ "user": name, "role": role, "cameras": cameras })).into_response(),
        Principal::Token { id, cameras, grants } => {
            Json(json!({ "token": &id[..8.min(id.len())], "cameras": cameras, "grants": grants })).into_response()
        }
        Principal::Anonymous => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// The login page, or the setup page while there is no owner.
pub async fn login_page(State(app): State<AppState>) -> Response {
    if app.auth.needs_setup() {
        return Redirect::to("/setup").into_response();
    }
    super::assets::serve("login.html")
}

/// The setup page while there is no owner; afterwards, the login page.
pub async fn setup_page(State(app): State<AppState>) -> Response {
    if !app.auth.needs_setup() {
        return Redirect::to("/login").into_response();
    }
    super::assets::serve("setup.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_listed_once_and_only_liveness_login_and_setup_are_public() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, policy) in ROUTES {
            assert!(seen.insert((m, p)), "{m} {p} listed twice");
            if *policy == Policy::Public {
                assert!(["/livez", "/login", "/setup", "/api/login", "/api/setup"].contains(p), "{m} {p} must not be public");
            }
        }
        assert_eq!(policy(&Method::HEAD, "/metrics"), Some(Policy::Needs(Action::Metrics)));
        assert_eq!(policy(&Method::PUT, "/metrics"), None);
    }

    #[test]
    fn cross_site_is_told_apart_from_same_site_and_from_tools() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&h(&[("origin", "http://lookout.local"), ("host", "lookout.local")])));
        assert!(!same_origin(&h(&[("origin", "http://evil.example"), ("host", "lookout.local")])));
        assert!(same_origin(&h(&[("host", "lookout.local")])), "curl sends no Origin");
    }

    #[test]
    fn a_token_in_the_query_is_found_among_other_parameters() {
        assert_eq!(url_query_value("width=320&token=abc.def", "token").as_deref(), Some("abc.def"));
        assert_eq!(url_query_value("tokens=1", "token"), None);
    }
}
