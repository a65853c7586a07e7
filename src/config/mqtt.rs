//! `[mqtt]`: the broker Home Assistant (or anything else) listens on.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where and how to publish; absent: no MQTT.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mqtt {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]` (TLS, checked against the system's
    /// roots or `ca`).
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Never serialized back out, never logged.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Topics start with this (default `lookout/<hostname>`, unique per device).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Home Assistant's discovery prefix; discovery messages go under it.
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
    /// Publish Home Assistant discovery messages.
    #[serde(default = "yes")]
    pub discovery: bool,
    /// A PEM file of the CA that signed the broker's certificate (a home broker's own CA).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How often temperature, throttling and disk are published.
    #[serde(default = "default_health_every", with = "humantime_serde")]
    pub health_every: Duration,
}

fn default_discovery_prefix() -> String {
    "homeassistant".into()
}

fn yes() -> bool {
    true
}

fn default_health_every() -> Duration {
    Duration::from_secs(30)
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("url", &super::redacted_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("prefix", &self.prefix)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("discovery", &self.discovery)
            .field("ca", &self.ca)
            .field("health_every", &self.health_every)
            .finish()
    }
}

/// The broker's address as the URL gives it: (TLS, host, port).
pub fn broker(url: &str) -> Result<(bool, String, u16), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{}` is not a URL: {e}", super::redacted_url(url)))?;
    let tls = match parsed.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => return Err(format!("scheme `{other}`: use mqtt:// or mqtts://")),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("put credentials in username and password, not in the URL".into());
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("the URL names no host")?;
    Ok((tls, host.trim_matches(['[', ']']).to_owned(), parsed.port().unwrap_or(if tls { 8883 } else { 1883 })))
}

/// A topic level made of what MQTT and Home Assistant allow everywhere: a-z, 0-9, `_`, `-`.
pub fn topic_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// Every problem of `[mqtt]`, as (field, message).
pub fn problems(m: &Mqtt) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Err(e) = broker(&m.url) {
        out.push(("mqtt.url".into(), e));
    }
    for (field, value) in [("mqtt.prefix", m.prefix.as_deref()), ("mqtt.discovery_prefix", Some(m.discovery_prefix.as_str()))] {
        if let Some(v) = value
            && (v.is_empty() || v.starts_with('/') || v.ends_with('/') || v.contains(['+', '#', '\0']))
        {
            out.push((field.into(), format!("`{v}` must be a topic without + or #, not starting or ending with /")));
        }
    }
    if m.password.is_some() && m.username.is_none() {
        out.push(("mqtt.username".into(), "a password needs a username".into()));
    }
    if m.health_every < Duration::from_secs(5) {
        out.push(("mqtt.health_every".into(), "must be at least 5 s".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqtt(text: &str) -> Mqtt {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn urls_give_the_broker_or_say_what_is_wrong() {
        assert_eq!(broker("mqtt://hass.local"), Ok((false, "hass.local".into(), 1883)));
        assert_eq!(broker("mqtts://broker.example.com"), Ok((true, "broker.example.com".into(), 8883)));
        assert_eq!(broker("mqtt://[::1]:1884"), Ok((false, "::1".into(), 1884)));
        assert!(broker("http://hass.local").unwrap_err().contains("mqtt://"));
        let e = broker("mqtt://user:SECRET@hass.local").unwrap_err();
        assert!(e.contains("username") && !e.contains("SECRET"), "{e}");
    }

    #[test]
    fn bad_settings_name_their_field_and_the_password_stays_hidden() {
        let m = mqtt("url = \"mqtt://h\"\npassword = \"pw-SECRET\"\nprefix = \"a/#\"\nhealth_every = \"1s\"");
        let fields: Vec<String> = problems(&m).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["mqtt.prefix", "mqtt.username", "mqtt.health_every"]);
        for text in [format!("{m:?}"), toml::to_string(&m).unwrap()] {
            assert!(!text.contains("pw-SECRET"), "{text}");
        }
        assert!(problems(&mqtt("url = \"mqtt://h\"")).is_empty());
    }

    #[test]
    fn topic_levels_are_made_safe() {
        assert_eq!(topic_safe("Lookout-3F2A"), "lookout-3f2a");
        assert_eq!(topic_safe("a/b+c#d e"), "a_b_c_d_e");
    }
}
