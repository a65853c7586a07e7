//! Plain HTTP once HTTPS is on. `/livez` still answers (the watchdog asks it, and it tells
//! nothing); every other request is sent to the same host over HTTPS, so neither a password
//! nor a session cookie nor a frame of video crosses the network in clear. The redirect is 307,
//! not 301/308: browsers keep a permanent redirect for ever, and an owner who turns TLS off
//! again must not find the device unreachable from every browser that visited it.
//! If the certificate cannot be loaded, HTTP says why instead (recording goes on regardless).

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

use super::routes;

/// Redirects to HTTPS on `https_port`, answering `/livez` and the routes of `plain` (ONVIF)
/// itself. While the setup hotspot is open, a phone's connectivity check is sent to the
/// device's page (the captive portal).
pub fn router(https_port: u16, network: std::sync::Arc<crate::network::Service>, plain: Router) -> Router {
    plain.route(routes::LIVEZ, get(super::api::livez)).fallback(move |request: axum::extract::Request| async move {
        if let Some(caught) = network.captive_address().and_then(|device| super::captive::elsewhere(&request, device, "https")) {
            return caught;
        }
        match https_location(request.headers(), request.uri(), https_port) {
            Some(location) => Redirect::temporary(&location).into_response(),
            None => (StatusCode::BAD_REQUEST, "HTTPS only: this request names no host to send you to\n").into_response(),
        }
    })
}

/// Answers 503 with `reason` to everything but `/livez`: HTTPS was asked for and cannot run,
/// and serving the page in clear instead would expose what TLS was meant to protect.
pub fn unavailable(reason: String) -> Router {
    let body = format!("HTTPS is configured but cannot start: {reason}\nFix http.tls in lookout.toml; recording goes on meanwhile.\n");
    Router::new().route(routes::LIVEZ, get(super::api::livez)).fallback(move || async move {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        response
    })
}

/// `https://host[:port]/path?query` for a request that came to `Host: host[:any]`. The host
/// must look like a name or an address: anything else (a `/`, an `@`) would make the redirect
/// point elsewhere.
fn https_location(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    let name = authority.host();
    let plain = name.trim_start_matches('[').trim_end_matches(']');
    if authority.as_str().contains('@') || !plain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')) {
        return None;
    }
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Some(format!("https://{name}{port}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: &str, uri: &str, port: u16) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        https_location(&h, &uri.parse().unwrap(), port)
    }

    #[test]
    fn the_redirect_keeps_host_path_and_query_and_swaps_the_port() {
        assert_eq!(location("lookout.local", "/api/state?token=x", 443).as_deref(), Some("https://lookout.local/api/state?token=x"));
        assert_eq!(location("192.168.1.5:8080", "/", 8443).as_deref(), Some("https://192.168.1.5:8443/"));
        assert_eq!(location("[fd00::5]:80", "/whep/cam", 443).as_deref(), Some("https://[fd00::5]/whep/cam"));
    }

    #[test]
    fn a_host_that_would_point_elsewhere_gets_no_redirect() {
        assert_eq!(location("evil.example@lookout.local", "/", 443), None);
        assert_eq!(location("a/b", "/", 443), None);
        assert_eq!(HeaderMap::new().get(header::HOST), None);
        assert_eq!(https_location(&HeaderMap::new(), &"/".parse().unwrap(), 443), None);
    }
}
