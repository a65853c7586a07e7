//! Settings changed from the page or the API, layered over the boot partition's file.
//!
//! The config a device runs is the image's defaults (the `Default` impls), overlaid by the
//! boot partition's `lookout.toml`, overlaid by the settings saved from the page (the
//! "overrides": only what differs from the boot file, so a later edit of the boot file still
//! counts for everything the page never changed). Tables merge key by key; a value (an
//! array such as `camera` included) replaces what is below it; `_removed` lists top-level
//! sections the page removed (`mqtt`, `button`).
//!
//! A change arrives as a JSON merge patch (RFC 7396) against what `GET /api/config` shows,
//! which hides secrets. Secrets the client could not see are kept: a value equal to what the
//! client was shown keeps the real one behind it, and a key the client was never shown stays.
//! Array items are matched by name (`name`, `ssid`, `url`), else by position. Sans-IO.

use serde_json::Value as Json;
use toml::{Table, Value as Toml};

/// Top-level sections the overrides may remove.
const REMOVABLE: [&str; 2] = ["mqtt", "button"];
/// Where the overrides list removed sections.
const REMOVED: &str = "_removed";

/// Why a patch cannot be applied.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PatchError {
    #[error("{0}: {1}")]
    Field(String, String),
}

/// `base` overlaid by `overrides`.
pub fn overlay(base: &Table, overrides: &Table) -> Table {
    let mut out = base.clone();
    for (key, value) in overrides {
        if key == REMOVED {
            continue;
        }
        match (out.get_mut(key), value) {
            (Some(Toml::Table(below)), Toml::Table(above)) => *below = overlay(below, above),
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(Toml::Array(removed)) = overrides.get(REMOVED) {
        for section in removed.iter().filter_map(Toml::as_str) {
            out.remove(section);
        }
    }
    out
}

/// What `effective` changes of `base`: the overrides to save.
pub fn difference(base: &Table, effective: &Table) -> Table {
    let mut out = Table::new();
    for (key, value) in effective {
        match (base.get(key), value) {
            (Some(b), v) if b == v => {}
            (Some(Toml::Table(b)), Toml::Table(v)) => {
                let inner = difference(b, v);
                if !inner.is_empty() {
                    out.insert(key.clone(), Toml::Table(inner));
                }
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    let removed: Vec<Toml> =
        REMOVABLE.iter().filter(|s| base.contains_key(**s) && !effective.contains_key(**s)).map(|s| Toml::from(*s)).collect();
    if !removed.is_empty() {
        out.insert(REMOVED.into(), Toml::Array(removed));
    }
    out
}

/// Applies `patch` (a merge patch against `shown`, what the client saw) to `raw`, the real
/// settings with their secrets.
pub fn apply_patch(raw: &mut Table, shown: &Json, patch: &Json) -> Result<(), PatchError> {
    let Json::Object(patch) = patch else { return Err(PatchError::Field("(body)".into(), "must be a JSON object".into())) };
    let shown = shown.as_object();
    for (key, change) in patch {
        let seen = shown.and_then(|s| s.get(key)).unwrap_or(&Json::Null);
        if change.is_null() {
            raw.remove(key);
            continue;
        }
        let merged = merge_value(raw.get(key), seen, change, key)?;
        raw.insert(key.clone(), merged);
    }
    Ok(())
}

fn merge_value(raw: Option<&Toml>, seen: &Json, change: &Json, path: &str) -> Result<Toml, PatchError> {
    match (raw, change) {
        (Some(Toml::Table(raw)), Json::Object(_)) => {
            let mut table = raw.clone();
            apply_patch(&mut table, seen, change).map_err(|PatchError::Field(f, m)| PatchError::Field(format!("{path}.{f}"), m))?;
            Ok(Toml::Table(table))
        }
        (Some(Toml::Array(raw)), Json::Array(items)) => {
            let seen_items = seen.as_array().cloned().unwrap_or_default();
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{path}[{i}]");
                let matched = match_item(raw, &seen_items, item, i);
                out.push(match (matched, item) {
                    (Some((Toml::Table(old), old_seen)), Json::Object(fields)) => Toml::Table(merge_item(old, old_seen, fields, &at)?),
                    _ => to_toml(item, &at)?,
                });
            }
            Ok(Toml::Array(out))
        }
        // A value the client saw and sent back unchanged keeps the real one (a redacted URL).
        (Some(raw), change) if change == seen => Ok(raw.clone()),
        _ => to_toml(change, path),
    }
}

/// The old item (raw, and as shown) that a new array item stands for.
fn match_item<'a>(raw: &'a [Toml], seen: &'a [Json], item: &Json, index: usize) -> Option<(&'a Toml, &'a Json)> {
    for key in ["name", "ssid", "url"] {
        if let Some(id) = item.get(key).filter(|v| !v.is_null()) {
            let found = seen.iter().position(|s| s.get(key) == Some(id))?;
            return Some((raw.get(found)?, &seen[found]));
        }
    }
    Some((raw.get(index)?, seen.get(index)?))
}

/// A new version of an array item: fields sent as shown keep their real values, fields never
/// shown (secrets) stay, fields shown but left out are removed.
fn merge_item(old: &Table, old_seen: &Json, fields: &serde_json::Map<String, Json>, at: &str) -> Result<Table, PatchError> {
    let mut out = Table::new();
    for (key, value) in old {
        let shown = old_seen.get(key).is_some();
        if !shown {
            out.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in fields {
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let seen = old_seen.get(key).unwrap_or(&Json::Null);
        out.insert(key.clone(), merge_value(old.get(key), seen, value, &format!("{at}.{key}"))?);
    }
    Ok(out)
}

fn to_toml(value: &Json, path: &str) -> Result<Toml, PatchError> {
    toml::Value::try_from(without_nulls(value)).map_err(|e| PatchError::Field(path.to_owned(), format!("not a setting value: {e}")))
}

/// JSON's `null` inside a value is TOML's absent key (an unset optional setting).
fn without_nulls(value: &Json) -> Json {
    match value {
        Json::Object(fields) => {
            Json::Object(fields.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn overrides_keep_only_what_differs_and_overlay_back_to_the_same() {
        let boot = table("[http]\nlisten = \"0.0.0.0:80\"\n[mqtt]\nurl = \"mqtt://h\"\n[[camera]]\nname = \"a\"\nwidth = 640\n");
        let effective = table("[http]\nlisten = \"0.0.0.0:80\"\n[storage]\nkeep = 3\n[[camera]]\nname = \"a\"\nwidth = 1280\n");
        let overrides = difference(&boot, &effective);
        assert!(!overrides.contains_key("http"), "unchanged sections are not saved: {overrides}");
        assert_eq!(overrides[REMOVED], Toml::Array(vec!["mqtt".into()]));
        assert_eq!(overlay(&boot, &overrides), effective);
        // A later edit of the boot file still counts where the page changed nothing.
        let mut edited = boot.clone();
        edited["http"].as_table_mut().unwrap().insert("listen".into(), "0.0.0.0:8080".into());
        assert_eq!(overlay(&edited, &overrides)["http"]["listen"].as_str(), Some("0.0.0.0:8080"));
    }

    #[test]
    fn a_patch_keeps_secrets_the_client_never_saw() {
        let mut raw = table(
            "[mqtt]\nurl = \"mqtt://h\"\npassword = \"pw\"\n\
             [[camera]]\nname = \"a\"\nsource = \"rtsp://u:secret@cam/x\"\nwidth = 640\n\
             [[camera]]\nname = \"b\"\nsource = \"test\"\n\
             [[webhook]]\nurl = \"https://h/x?key=k\"\nsecret = \"0123456789abcdef\"\n",
        );
        let shown = json!({
            "mqtt": { "url": "mqtt://h" },
            "camera": [{ "name": "a", "source": "rtsp://***@cam/x", "width": 640 }, { "name": "b", "source": "test" }],
            "webhook": [{ "url": "https://h/x" }],
        });
        let patch = json!({
            "mqtt": { "url": "mqtt://other" },
            "camera": [{ "name": "b", "source": "test" }, { "name": "a", "source": "rtsp://***@cam/x", "width": 1280 }],
            "webhook": [{ "url": "https://h/x", "events": ["daemon_ready"] }],
        });
        apply_patch(&mut raw, &shown, &patch).unwrap();
        assert_eq!(raw["mqtt"]["password"].as_str(), Some("pw"));
        assert_eq!(raw["mqtt"]["url"].as_str(), Some("mqtt://other"));
        let cams = raw["camera"].as_array().unwrap();
        assert_eq!(cams[1]["source"].as_str(), Some("rtsp://u:secret@cam/x"), "the redacted URL sent back keeps the real one");
        assert_eq!(cams[1]["width"].as_integer(), Some(1280));
        assert_eq!(raw["webhook"][0]["secret"].as_str(), Some("0123456789abcdef"));
        assert_eq!(raw["webhook"][0]["url"].as_str(), Some("https://h/x?key=k"));
    }

    #[test]
    fn a_new_value_replaces_and_null_removes() {
        let mut raw = table("[[camera]]\nname = \"a\"\nsource = \"rtsp://u:p@cam/x\"\nfps = 10\n[button]\npin = 3\n");
        let shown = json!({ "camera": [{ "name": "a", "source": "rtsp://***@cam/x", "fps": 10 }], "button": { "pin": 3 } });
        let patch = json!({ "camera": [{ "name": "a", "source": "rtsp://u:new@cam/y" }], "button": null });
        apply_patch(&mut raw, &shown, &patch).unwrap();
        assert_eq!(raw["camera"][0]["source"].as_str(), Some("rtsp://u:new@cam/y"));
        assert!(raw["camera"][0].get("fps").is_none(), "a field shown but left out goes");
        assert!(!raw.contains_key("button"));
        assert!(apply_patch(&mut raw, &shown, &json!([1])).is_err());
    }
}
