//! `[[webhook]]`: where events are POSTed, which ones, and the secret that signs them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One receiver of events over HTTP(S).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://`; a key in its query stays out of logs and answers.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// Names the hook in logs, metrics and the page (default `webhook-N`, N from 1 in file
    /// order).
    #[serde(default)]
    pub name: Option<String>,
    /// Event types to send (see the README's catalogue). Unset: every type but
    /// `camera_stats` and `push_stats`, which come every 2 s per camera.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Only events of these cameras (device events always go). Unset: every camera.
    #[serde(default)]
    pub cameras: Option<Vec<String>>,
    /// Signs each delivery (HMAC-SHA256); at least 16 characters. Never serialized back out,
    /// never logged.
    #[serde(skip_serializing)]
    pub secret: String,
    /// Events waiting for the receiver at most; when it is down longer, the oldest go first
    /// (counted as dropped).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Longest wait between retries of a failed delivery (they back off from 1 s).
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
}

fn default_queue() -> usize {
    256
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

impl Webhook {
    /// The name it goes by; `index` counts from 0 in file order.
    pub fn name_or_default(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("webhook-{}", index + 1))
    }

    /// Whether events of type `kind` (about `camera`, if any) go to this hook.
    pub fn wants(&self, kind: &str, camera: Option<&str>) -> bool {
        let kind_ok = match &self.events {
            Some(list) => list.iter().any(|k| k == kind),
            None => !crate::events::PERIODIC.contains(&kind),
        };
        kind_ok && camera.is_none_or(|c| self.cameras.as_ref().is_none_or(|list| list.iter().any(|n| n == c)))
    }
}

/// The URL without query, fragment or user info: what logs and answers may show.
pub fn redacted_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    super::source::redact_userinfo(&url[..cut])
}

pub(super) fn serialize_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redacted_url(url))
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &redacted_url(&self.url))
            .field("name", &self.name)
            .field("events", &self.events)
            .field("cameras", &self.cameras)
            .field("secret", &"<secret>")
            .field("queue", &self.queue)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// What is wrong with a URL the device sends requests to (webhooks, WHIP pushes), if anything.
pub(super) fn http_url_problem(url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => None,
        Ok(_) => Some("must be an http:// or https:// URL with a host".into()),
        Err(e) => Some(format!("`{}` is not a URL: {e}", redacted_url(url))),
    }
}

/// Every problem of the `[[webhook]]` entries, as (field, message).
pub fn problems(hooks: &[Webhook], cameras: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        let at = |field: &str| format!("webhook[{i}].{field}");
        if let Some(problem) = http_url_problem(&hook.url) {
            out.push((at("url"), problem));
        }
        if hook.secret.chars().count() < 16 {
            out.push((at("secret"), "must be at least 16 characters (receivers check signatures with it)".into()));
        }
        if !names.insert(hook.name_or_default(i)) {
            out.push((at("name"), format!("`{}` names two webhooks", hook.name_or_default(i))));
        }
        for kind in hook.events.iter().flatten() {
            if !crate::events::TYPES.contains(&kind.as_str()) {
                out.push((at("events"), format!("no event type `{kind}`; types: {}", crate::events::TYPES.join(", "))));
            }
        }
        for camera in hook.cameras.iter().flatten() {
            if !cameras.contains(camera) {
                out.push((at("cameras"), format!("no camera named `{camera}`")));
            }
        }
        if !(1..=10_000).contains(&hook.queue) {
            out.push((at("queue"), "must be 1 to 10000 events".into()));
        }
        if hook.max_backoff < Duration::from_secs(1) || hook.max_backoff > Duration::from_secs(3600) {
            out.push((at("max_backoff"), "must be between 1 s and 1 h".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, secret: &str) -> Webhook {
        toml::from_str(&format!("url = \"{url}\"\nsecret = \"{secret}\"")).unwrap()
    }

    #[test]
    fn a_good_hook_passes_and_each_fault_names_its_field() {
        let good = hook("https://example.com/hooks/lookout?key=abc", "0123456789abcdef");
        assert!(problems(std::slice::from_ref(&good), &[]).is_empty());
        let mut bad = hook("ftp://example.com/", "short");
        bad.events = Some(vec!["camera_online".into(), "camera_exploded".into()]);
        bad.cameras = Some(vec!["nope".into()]);
        let fields: Vec<String> = problems(&[bad], &["front".into()]).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["webhook[0].url", "webhook[0].secret", "webhook[0].events", "webhook[0].cameras"]);
        let twice = problems(&[good.clone(), good], &[]);
        assert!(twice.is_empty(), "default names differ: {twice:?}");
    }

    #[test]
    fn secrets_and_url_keys_stay_out_of_debug_and_serialization() {
        let h = hook("https://user:pw@example.com/hook?key=topsecret", "0123456789abcdefSECRET");
        for text in [format!("{h:?}"), toml::to_string(&h).unwrap()] {
            assert!(!text.contains("topsecret") && !text.contains("SECRET") && !text.contains("pw@"), "{text}");
        }
    }

    #[test]
    fn by_default_every_event_but_stats_goes_to_every_camera() {
        let mut h = hook("http://hass.local:8123/api/webhook/x", "0123456789abcdef");
        assert!(h.wants("camera_went_offline", Some("front")));
        assert!(h.wants("daemon_ready", None));
        assert!(!h.wants("camera_stats", Some("front")));
        h.cameras = Some(vec!["back".into()]);
        h.events = Some(vec!["camera_stats".into(), "daemon_ready".into()]);
        assert!(h.wants("camera_stats", Some("back")));
        assert!(!h.wants("camera_stats", Some("front")));
        assert!(h.wants("daemon_ready", None), "device events go whatever the cameras");
        assert!(!h.wants("camera_online", Some("back")));
    }
}
