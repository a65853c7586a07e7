//! The WHIP exchange (RFC 9725) over HTTP: POST the offer and read the answer, the session's
//! resource URL and the server's ICE servers; DELETE the resource when the push ends.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LINK, LOCATION};

use crate::config::TurnServer;

/// Largest answer read: an SDP answer for one video track is ~1-3 KB.
const MAX_ANSWER: usize = 64 * 1024;

/// What a WHIP server answered to an offer.
#[derive(Debug)]
pub struct Published {
    /// The session's resource, for its DELETE (absent when the server gave none).
    pub resource: Option<url::Url>,
    pub answer: String,
    /// ICE servers from its `Link` headers.
    pub servers: Vec<TurnServer>,
}

/// Why an offer was not answered.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    /// A refusal retrying soon cannot change (401, 403, 404, any other 4xx).
    #[error("{0}")]
    Refused(String),
    /// Unreachable, timed out, 5xx, 408, 429, or an answer that is not SDP.
    #[error("{0}")]
    Failed(String),
}

/// Posts `offer` to the WHIP endpoint `url`, with `token` as a bearer token.
pub async fn publish(client: &reqwest::Client, url: &str, token: Option<&str>, offer: &str) -> Result<Published, WhipError> {
    let mut request = client.post(url).header(CONTENT_TYPE, "application/sdp").body(offer.to_owned());
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut response = request.send().await.map_err(|e| WhipError::Failed(describe(e)))?;
    let status = response.status();
    if !status.is_success() {
        let said = read_limited(&mut response, 512).await.map(|b| first_line(&b)).unwrap_or_default();
        let message = format!("the WHIP server answered {status}{}", if said.is_empty() { String::new() } else { format!(": {said}") });
        let retry = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        return Err(if retry { WhipError::Failed(message) } else { WhipError::Refused(message) });
    }
    let servers = super::link::ice_servers(response.headers().get_all(LINK).iter().filter_map(|v| v.to_str().ok()));
    // The resource is relative to the URL the answer came from (after any redirect).
    let resource = response.headers().get(LOCATION).and_then(|l| l.to_str().ok()).and_then(|l| response.url().join(l).ok());
    let body = read_limited(&mut response, MAX_ANSWER)
        .await
        .ok_or_else(|| WhipError::Failed(format!("the WHIP server's answer is not SDP of at most {} KiB", MAX_ANSWER / 1024)))?;
    let answer = String::from_utf8(body).ok().filter(|a| a.trim_start().starts_with("v=0"));
    let answer = answer.ok_or_else(|| WhipError::Failed(format!("the WHIP server answered {status} without an SDP answer")))?;
    Ok(Published { resource, answer, servers })
}

/// Ends the session at the server: DELETE of its resource.
pub async fn unpublish(client: &reqwest::Client, resource: &url::Url, token: Option<&str>) -> Result<(), String> {
    let mut request = client.delete(resource.clone());
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await.map_err(describe)?;
    match response.status() {
        s if s.is_success() || s.as_u16() == 404 => Ok(()),
        s => Err(format!("the WHIP server answered {s} to DELETE")),
    }
}

/// The body, or `None` past `limit` bytes or on a read error.
async fn read_limited(response: &mut reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > limit {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// A server's error text, made safe to show: its first line, printable, at most 200 chars.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines().next().unwrap_or("").chars().filter(|c| !c.is_control()).take(200).collect::<String>().trim().to_owned()
}

/// The error and its causes, without the URL: its query may carry a key.
fn describe(e: reqwest::Error) -> String {
    crate::error_chain(&e.without_url())
}
