//! Every type error in a config file, not only the first. serde stops at the first value it
//! cannot read; when that happens each section, and each camera, is read again on its own so
//! `check-config` can list all of them with where they are.

use serde::de::DeserializeOwned;

use super::validate::Problem;
use super::{AuthSettings, Button, Camera, Http, Led, Mqtt, Network, Storage, WebRtc, Webhook};

/// What serde rejects, section by section. Empty when the text is not even TOML (then the
/// parser's own message, with its line, is the whole story) or when no section fails alone.
pub fn type_problems(text: &str) -> Vec<Problem> {
    let Ok(table) = text.parse::<toml::Table>() else { return Vec::new() };
    let mut problems = Vec::new();
    for (key, value) in table {
        let outcome = match key.as_str() {
            "http" => read::<Http>(value),
            "auth" => read::<AuthSettings>(value),
            "network" => read::<Network>(value),
            "storage" => read::<Storage>(value),
            "webrtc" => read::<WebRtc>(value),
            "led" => read::<Led>(value),
            "button" => read::<Button>(value),
            "mqtt" => read::<Mqtt>(value),
            "camera" => {
                problems.extend(each::<Camera>(&key, value, "must be [[camera]] tables, one per camera"));
                continue;
            }
            "webhook" => {
                problems.extend(each::<Webhook>(&key, value, "must be [[webhook]] tables, one per receiver"));
                continue;
            }
            _ => {
                Err("unknown section; the sections are http, auth, network, storage, webrtc, led, button, mqtt, camera and webhook".into())
            }
        };
        if let Err(message) = outcome {
            problems.push(Problem { field: key, message });
        }
    }
    problems
}

/// Reads each table of an array section (`[[camera]]`, `[[webhook]]`) alone.
fn each<T: DeserializeOwned>(key: &str, value: toml::Value, not_tables: &str) -> Vec<Problem> {
    let toml::Value::Array(items) = value else {
        return vec![Problem { field: key.to_owned(), message: not_tables.into() }];
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| read::<T>(item).err().map(|message| Problem { field: format!("{key}[{i}]"), message }))
        .collect()
}

/// Reads one section alone. Through text, so the message quotes the offending line.
fn read<T: DeserializeOwned>(value: toml::Value) -> Result<(), String> {
    let toml::Value::Table(table) = value else { return Err("must be a table".into()) };
    let text = toml::to_string(&table).map_err(|e| e.to_string())?;
    toml::from_str::<T>(&text).map(|_| ()).map_err(|e| {
        let line = e.span().and_then(|span| {
            let before = text.get(..span.start)?;
            let from = before.rfind('\n').map_or(0, |i| i + 1);
            let to = text[span.start..].find('\n').map_or(text.len(), |i| span.start + i);
            Some(text[from..to].trim().to_owned())
        });
        match line {
            Some(line) if !line.is_empty() => format!("{} (at `{line}`)", e.message().trim()),
            _ => e.message().trim().to_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrongly_typed_value_is_named() {
        let text = "[http]\nlisten = 8080\n[[camera]]\nname = \"a\"\n[[camera]]\nname = \"b\"\nfps = \"thirty\"\n[storage]\nmax_size = \"lots\"\n[extra]\n";
        let problems = type_problems(text);
        let seen: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{seen:#?}");
        assert!(seen.iter().any(|p| p.starts_with("http:") && p.contains("listen")), "{seen:#?}");
        assert!(seen.iter().any(|p| p.starts_with("camera[1]:") && p.contains("fps")), "{seen:#?}");
        assert!(seen.iter().any(|p| p.starts_with("storage:") && p.contains("max_size")), "{seen:#?}");
        assert!(seen.iter().any(|p| p.starts_with("extra:")), "{seen:#?}");
    }

    #[test]
    fn text_that_is_not_toml_is_left_to_the_parser() {
        assert!(type_problems("[http\nlisten = ").is_empty());
    }
}
