//! SOAP 1.2 as ONVIF uses it: what a request asks (the Body's first element), the
//! WS-Security UsernameToken it carries, and the envelopes and faults of the answers. Requests
//! are parsed with roxmltree (no DTDs, no entities beyond XML's five); answers are written as
//! text with every value escaped.

use crate::auth::credentials::Credential;

/// Namespaces of the answers.
pub const NAMESPACES: &str = concat!(
    r#"xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
    r#"xmlns:tds="http://www.onvif.org/ver10/device/wsdl" "#,
    r#"xmlns:trt="http://www.onvif.org/ver10/media/wsdl" "#,
    r#"xmlns:tt="http://www.onvif.org/ver10/schema" "#,
    r#"xmlns:ter="http://www.onvif.org/ver10/error""#,
);

/// The password types of WS-Security's UsernameToken profile.
const PASSWORD_DIGEST: &str = "#PasswordDigest";

/// What a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The Body's first element's local name (`GetProfiles`).
    pub operation: String,
    /// Its namespace (`http://www.onvif.org/ver10/media/wsdl`).
    pub namespace: String,
    /// The `ProfileToken` parameter, where the operation has one.
    pub profile_token: Option<String>,
    /// The WS-Security credential, if any.
    pub credential: Option<Credential>,
}

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Reads a SOAP request.
pub fn parse(text: &str) -> Result<Request, Malformed> {
    let doc = roxmltree::Document::parse(text).map_err(|e| Malformed(format!("not XML: {e}")))?;
    let envelope = doc.root_element();
    if envelope.tag_name().name() != "Envelope" {
        return Err(Malformed("not a SOAP envelope".into()));
    }
    let body = child(envelope, "Body").ok_or_else(|| Malformed("no SOAP Body".into()))?;
    let call = body.children().find(|c| c.is_element()).ok_or_else(|| Malformed("an empty SOAP Body".into()))?;
    let profile_token = call
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "ProfileToken")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_owned());
    let credential = child(envelope, "Header")
        .and_then(|h| h.descendants().find(|n| n.is_element() && n.tag_name().name() == "UsernameToken"))
        .and_then(username_token);
    Ok(Request {
        operation: call.tag_name().name().to_owned(),
        namespace: call.tag_name().namespace().unwrap_or_default().to_owned(),
        profile_token,
        credential,
    })
}

/// The first child element of `node` named `name` (any namespace).
fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

/// A UsernameToken as a credential: a PasswordText is a password; a PasswordDigest is
/// `Base64(SHA-1(nonce + created + password))`.
fn username_token(token: roxmltree::Node<'_, '_>) -> Option<Credential> {
    let field = |name: &str| token.children().find(|c| c.is_element() && c.tag_name().name() == name);
    let text = |name: &str| field(name).and_then(|n| n.text()).map(|t| t.trim().to_owned());
    let user = text("Username")?;
    let password = field("Password")?;
    let value = password.text().unwrap_or_default().trim().to_owned();
    if password.attribute("Type").is_some_and(|t| t.ends_with(PASSWORD_DIGEST)) {
        Some(Credential::WsDigest { user, digest: value, nonce: text("Nonce")?, created: text("Created")? })
    } else {
        Some(Credential::Password { user, password: value })
    }
}

/// A whole answer around `body`.
pub fn envelope(body: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope {NAMESPACES}><s:Body>{body}</s:Body></s:Envelope>"#)
}

/// Who a fault blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request (HTTP 400).
    Sender,
    /// The device (HTTP 500).
    Receiver,
}

/// A SOAP fault with ONVIF's subcode (`ter:ActionNotSupported`, `ter:NotAuthorized`…).
pub fn fault(blame: Blame, subcode: &str, reason: &str) -> String {
    let code = match blame {
        Blame::Sender => "s:Sender",
        Blame::Receiver => "s:Receiver",
    };
    envelope(&format!(
        r#"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">{}</s:Text></s:Reason></s:Fault>"#,
        escape(subcode),
        escape(reason)
    ))
}

/// `text` safe inside an element or an attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap-env:Envelope xmlns:soap-env="http://www.w3.org/2003/05/soap-envelope">
  <soap-env:Header>
    <wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
      <wsse:UsernameToken>
        <wsse:Username>nvr</wsse:Username>
        <wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">dGVzdA==</wsse:Password>
        <wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">bm9uY2U=</wsse:Nonce>
        <wsu:Created xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">2026-12-02T10:00:00+00:00</wsu:Created>
      </wsse:UsernameToken>
    </wsse:Security>
  </soap-env:Header>
  <soap-env:Body>
    <ns0:GetStreamUri xmlns:ns0="http://www.onvif.org/ver10/media/wsdl">
      <ns0:StreamSetup><ns1:Stream xmlns:ns1="http://www.onvif.org/ver10/schema">RTP-Unicast</ns1:Stream></ns0:StreamSetup>
      <ns0:ProfileToken>profile_yard</ns0:ProfileToken>
    </ns0:GetStreamUri>
  </soap-env:Body>
</soap-env:Envelope>"#;

    #[test]
    fn a_request_names_its_operation_parameter_and_credential() {
        let r = parse(DIGEST_REQUEST).unwrap();
        assert_eq!((r.operation.as_str(), r.namespace.as_str()), ("GetStreamUri", "http://www.onvif.org/ver10/media/wsdl"));
        assert_eq!(r.profile_token.as_deref(), Some("profile_yard"));
        match r.credential {
            Some(Credential::WsDigest { user, digest, nonce, created }) => {
                assert_eq!((user.as_str(), digest.as_str(), nonce.as_str()), ("nvr", "dGVzdA==", "bm9uY2U="));
                assert_eq!(created, "2026-12-02T10:00:00+00:00");
            }
            other => panic!("{other:?}"),
        }
        let text = DIGEST_REQUEST.replace("#PasswordDigest", "#PasswordText");
        assert!(matches!(parse(&text).unwrap().credential, Some(Credential::Password { .. })));
    }

    #[test]
    fn anything_else_is_malformed_not_a_panic() {
        for bad in [
            "",
            "not xml",
            "<a/>",
            "<s:Envelope xmlns:s=\"x\"/>",
            "<Envelope><Body/></Envelope>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let anonymous = parse("<Envelope><Body><GetSystemDateAndTime/></Body></Envelope>").unwrap();
        assert_eq!(anonymous.credential, None);
    }

    #[test]
    fn values_are_escaped_in_answers_and_faults() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
        let f = fault(Blame::Sender, "ter:ActionNotSupported", "no <Such> operation");
        assert!(f.contains("<s:Value>s:Sender</s:Value>") && f.contains("no &lt;Such&gt; operation"));
        assert!(roxmltree::Document::parse(&f).is_ok());
    }
}
