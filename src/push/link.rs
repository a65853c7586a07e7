//! ICE servers a WHIP server names in its `Link` headers (RFC 9725 §4.6): `<stun:host>;
//! rel="ice-server"`, and for TURN `username="…"; credential="…"`. Sans-IO.

use crate::config::TurnServer;

/// Most servers taken from one answer: a server cannot make every session try dozens.
const MAX_SERVERS: usize = 8;

/// The ICE servers in `values` (each a `Link` header's value, possibly listing several links
/// separated by commas). Links of other relations and malformed ones are skipped.
pub fn ice_servers<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<TurnServer> {
    let mut out = Vec::new();
    for value in values {
        for link in split_links(value) {
            if let Some(server) = parse_link(link) {
                out.push(server);
            }
        }
    }
    out.truncate(MAX_SERVERS);
    out
}

/// Splits a header value at the commas between links (not those inside `<…>` or quotes).
fn split_links(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut in_uri, mut in_quote) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !in_quote => in_uri = true,
            '>' if !in_quote => in_uri = false,
            '"' if !in_uri => in_quote = !in_quote,
            ',' if !in_uri && !in_quote => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn parse_link(link: &str) -> Option<TurnServer> {
    let link = link.trim();
    let rest = link.strip_prefix('<')?;
    let (uri, params) = rest.split_once('>')?;
    let mut rel = None;
    let (mut username, mut credential) = (String::new(), String::new());
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "rel" => rel = Some(value.to_ascii_lowercase()),
            "username" => username = value.to_owned(),
            "credential" => credential = value.to_owned(),
            _ => {}
        }
    }
    if rel.as_deref() != Some("ice-server") {
        return None;
    }
    let uri = uri.trim();
    let stun = uri.starts_with("stun:");
    let turn = uri.starts_with("turn:") || uri.starts_with("turns:");
    let sane = uri.len() <= 512 && !uri.contains(char::is_whitespace) && username.len() <= 512 && credential.len() <= 512;
    ((stun || turn) && sane).then(|| TurnServer { url: uri.to_owned(), username, credential })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_turn_links_become_ice_servers() {
        let servers = ice_servers([
            r#"<stun:stun.example.net>; rel="ice-server""#,
            r#"<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pass, with comma"; credential-type="password", </whip/x>; rel="next""#,
        ]);
        assert_eq!(servers.len(), 2, "{servers:?}");
        assert_eq!(servers[0].url, "stun:stun.example.net");
        assert_eq!(servers[1].url, "turn:turn.example.net?transport=udp");
        assert_eq!((servers[1].username.as_str(), servers[1].credential.as_str()), ("user", "pass, with comma"));
    }

    #[test]
    fn other_and_broken_links_are_skipped() {
        let servers = ice_servers(["</x>; rel=\"next\"", "stun:no-brackets; rel=ice-server", "<http://x>; rel=ice-server", "<", ""]);
        assert!(servers.is_empty(), "{servers:?}");
        let many = vec![r#"<stun:s>; rel="ice-server""#; 20];
        assert_eq!(ice_servers(many).len(), MAX_SERVERS);
    }
}
