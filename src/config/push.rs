//! `[[camera.push]]`: WHIP servers (an SFU's ingest) a camera's stream is published to.

use serde::{Deserialize, Serialize};

use super::webhook::{http_url_problem, redacted_url, serialize_redacted_url};

/// Pushes one camera may have: each is one more WebRTC sender on the device.
pub const MAX_PUSHES: usize = 4;
/// Longest bearer token taken (LiveKit's stream keys and JWTs are far shorter).
const MAX_TOKEN: usize = 4096;

/// One WHIP endpoint to publish to.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    /// The WHIP endpoint (`https://sfu.example/whip/cam`); a key in its query stays out of
    /// logs and answers.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// Sent as `Authorization: Bearer`; never serialized back out, never logged.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
}

impl Push {
    /// The URL as logs, events and answers show it.
    pub fn target(&self) -> String {
        redacted_url(&self.url)
    }
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push").field("url", &self.target()).field("token", &self.token.as_ref().map(|_| "<secret>")).finish()
    }
}

/// Every problem of one camera's pushes, as (field under `camera[i].`, message).
pub fn problems(pushes: &[Push]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if pushes.len() > MAX_PUSHES {
        out.push(("push".into(), format!("at most {MAX_PUSHES} per camera (each is one more WebRTC sender)")));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, push) in pushes.iter().enumerate() {
        let at = |field: &str| format!("push[{i}].{field}");
        if let Some(problem) = http_url_problem(&push.url) {
            out.push((at("url"), problem));
        }
        if !seen.insert(push.url.as_str()) {
            out.push((at("url"), format!("`{}` is pushed to twice", push.target())));
        }
        if let Some(token) = &push.token
            && (token.is_empty() || token.len() > MAX_TOKEN || token.chars().any(|c| c.is_control() || c == ' '))
        {
            out.push((at("token"), format!("must be 1-{MAX_TOKEN} characters without spaces or control characters")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(url: &str, token: Option<&str>) -> Push {
        Push { url: url.into(), token: token.map(Into::into) }
    }

    #[test]
    fn a_push_shows_no_token_and_no_query() {
        let p = push("https://sfu.example/whip/cam?key=SECRET", Some("tok-SECRET"));
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("SECRET"), "{json}");
        assert!(!format!("{p:?}").contains("SECRET"));
        assert_eq!(p.target(), "https://sfu.example/whip/cam");
    }

    #[test]
    fn bad_pushes_are_named() {
        let many: Vec<Push> = (0..5).map(|i| push(&format!("https://h/whip/{i}"), None)).collect();
        assert_eq!(problems(&many).len(), 1);
        let bad = [push("ftp://h/x", None), push("https://h/x", Some("a b")), push("https://h/x", Some(""))];
        let fields: Vec<String> = problems(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["push[0].url", "push[1].token", "push[2].url", "push[2].token"]);
        assert!(problems(&[push("http://127.0.0.1:8080/whip/cam", Some("k"))]).is_empty());
    }
}
