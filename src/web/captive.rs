//! The captive portal: while the setup hotspot is open, a request for any other site (a
//! phone's connectivity check: `connectivitycheck.gstatic.com/generate_204`,
//! `captive.apple.com/hotspot-detect.html`) is sent to the device's page, so the phone opens
//! it by itself. Requests for the device (its address, a `.local` name) pass.

use std::net::Ipv4Addr;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Sends requests for other sites to the page while the hotspot is open.
pub async fn redirect(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match app.network.captive_address().and_then(|device| elsewhere(&request, device, "http")) {
        Some(response) => response,
        None => next.run(request).await,
    }
}

/// The redirect to the device's page over `scheme` when `request` is for another site.
pub fn elsewhere(request: &Request, device: Ipv4Addr, scheme: &str) -> Option<Response> {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    foreign(host).then(|| {
        // 302, as captive portals answer: a phone that expected 204 or "Success" sees it was
        // caught and opens its portal window on the location.
        (StatusCode::FOUND, [(header::LOCATION, format!("{scheme}://{device}/")), (header::CACHE_CONTROL, "no-store".into())])
            .into_response()
    })
}

/// A host that is not this device: a name with a dot that is neither an address nor `.local`.
fn foreign(host: &str) -> bool {
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else { return false };
    let name = authority.host().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    name.contains('.') && name.parse::<std::net::IpAddr>().is_err() && !name.to_ascii_lowercase().ends_with(".local")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectivity_checks_are_foreign_and_the_device_is_not() {
        for host in ["connectivitycheck.gstatic.com", "captive.apple.com", "www.msftconnecttest.com:80", "example.org."] {
            assert!(foreign(host), "{host}");
        }
        for host in ["192.168.4.1", "192.168.4.1:80", "lookout-ab0c.local", "Lookout.LOCAL:8080", "lookout", "[fe80::1]:80", "[::1]", ""] {
            assert!(!foreign(host), "{host}");
        }
    }
}
