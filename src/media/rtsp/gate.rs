//! Who may read what over RTSP: an `RTSPAuth` whose every check turns the request's
//! credentials into a principal (`auth::Auth::verify`) and asks `auth::Auth::authorize` for
//! the `view` of the camera in the URL. Credentials are Basic (a user's password, or a token
//! as the password), Digest, or `?token=` in the URL. A refusal is answered here, as
//! gst-rtsp-server expects of a check that fails: 401 with a Basic and a Digest challenge
//! (the client picks), 403 for a camera the principal may not see, 503 while logins from
//! that address are held back or the device is not set up.
//!
//! A `?token=` holds for the connection it came on: clients build their SETUP and PLAY URLs
//! from the server's `Content-Base`, which has no query, and a connection cannot change
//! hands. It is checked again on each request, so revoking it ends it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock};

use gst::glib;
use gst::glib::subclass::prelude::*;
use gst::glib::translate::ToGlibPtr;
use gst_rtsp_server::RTSPContext;
use gst_rtsp_server::gst_rtsp::rtsp_message::RTSPMessage;
use gst_rtsp_server::gst_rtsp::{self, RTSPAuthMethod, RTSPAuthParam, RTSPHeaderField, RTSPStatusCode, RTSPUrl};
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

use crate::auth::credentials::Credential;
use crate::auth::digest;
use crate::auth::{Action, Auth, Denied};

/// The checks gst-rtsp-server makes that are no question of who the client is.
const CONNECT: &str = "auth.check.connect";
/// A client asking to choose its own transport settings (a multicast destination): never.
const CLIENT_SETTINGS: &str = "auth.check.transport.client-settings";

/// What the gate needs from the rest of the daemon, and the URL tokens of open connections.
pub struct Gate {
    auth: Arc<Auth>,
    runtime: tokio::runtime::Handle,
    cameras: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// `?token=` by client connection (its object's address), until it closes.
    url_tokens: Mutex<HashMap<usize, String>>,
}

/// The answer to one request's credentials.
#[derive(Debug, PartialEq)]
enum Verdict {
    Allow,
    /// 401 with fresh challenges (`stale`: the Digest nonce only was too old).
    Challenge {
        stale: bool,
    },
    /// 403: known, and not allowed this camera.
    Forbidden,
    /// 503: the device is not set up, its accounts are unreadable, or this address failed
    /// too often.
    Unavailable,
}

impl Gate {
    /// `runtime`: the daemon's; checks run on the RTSP server's own thread and wait for
    /// Argon2 there, outside the runtime. `cameras`: whether a camera of that name exists
    /// (otherwise the server answers 404, after the client has shown who it is).
    pub fn new(auth: Arc<Auth>, runtime: tokio::runtime::Handle, cameras: Box<dyn Fn(&str) -> bool + Send + Sync>) -> Gate {
        Gate { auth, runtime, cameras, url_tokens: Mutex::new(HashMap::new()) }
    }

    /// Forgets a closed connection's URL token.
    pub fn forget(&self, client: usize) {
        self.url_tokens.lock().expect("url tokens lock never poisoned").remove(&client);
    }

    fn decide(&self, client: usize, peer: IpAddr, credential: Option<Credential>, camera: Option<&str>) -> Verdict {
        let remembered = || self.url_tokens.lock().expect("url tokens lock never poisoned").get(&client).cloned().map(Credential::Token);
        let Some(credential) = credential.or_else(remembered) else {
            return if self.auth.needs_setup() { Verdict::Unavailable } else { Verdict::Challenge { stale: false } };
        };
        let principal = match self.runtime.block_on(self.auth.verify(peer, &credential)) {
            Ok(p) => p,
            Err(Denied::StaleNonce) => return Verdict::Challenge { stale: true },
            Err(Denied::Unauthenticated | Denied::Forbidden(_)) => return Verdict::Challenge { stale: false },
            Err(Denied::SetupRequired | Denied::TooManyAttempts(_) | Denied::Broken(_)) => return Verdict::Unavailable,
        };
        let camera = camera.filter(|c| (self.cameras)(c));
        match self.auth.authorize(&principal, Action::View, camera) {
            Ok(()) => {
                if let Credential::Token(token) = credential {
                    self.url_tokens.lock().expect("url tokens lock never poisoned").insert(client, token);
                }
                Verdict::Allow
            }
            Err(e) => {
                tracing::info!(who = %principal.describe(), camera = camera.unwrap_or("-"), %peer, "RTSP refused: {e}");
                Verdict::Forbidden
            }
        }
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct GateAuth {
        pub gate: OnceLock<Arc<Gate>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for GateAuth {
        const NAME: &'static str = "LookoutRtspGate";
        type Type = super::GateAuth;
        type ParentType = gst_rtsp_server::RTSPAuth;
    }

    impl ObjectImpl for GateAuth {}

    impl RTSPAuthImpl for GateAuth {
        fn check(&self, ctx: &RTSPContext, check: &glib::GString) -> bool {
            match check.as_str() {
                CONNECT => true,
                CLIENT_SETTINGS => false,
                // The URL of every request, and access to and construction of a camera's
                // stream: each asks the same question.
                _ => {
                    let Some(gate) = self.gate.get() else { return false };
                    let client = ctx.client().map_or(0, client_key);
                    let verdict = gate.decide(client, peer(ctx), credential(ctx), ctx.uri().and_then(camera_of).as_deref());
                    if verdict == Verdict::Allow {
                        return true;
                    }
                    refuse(ctx, &gate.auth, verdict);
                    false
                }
            }
        }
    }
}

glib::wrapper! {
    /// The RTSP server's `RTSPAuth`.
    pub struct GateAuth(ObjectSubclass<imp::GateAuth>) @extends gst_rtsp_server::RTSPAuth;
}

impl GateAuth {
    pub fn new(gate: Arc<Gate>) -> GateAuth {
        let auth: GateAuth = glib::Object::new();
        let _ = auth.imp().gate.set(gate);
        auth
    }
}

/// A client connection's key while it lives: its object's address.
pub fn client_key(client: &gst_rtsp_server::RTSPClient) -> usize {
    client.as_ptr() as usize
}

/// Sends the refusal, as a failed check must.
fn refuse(ctx: &RTSPContext, auth: &Auth, verdict: Verdict) {
    let (Some(response), Some(client)) = (ctx.response(), ctx.client()) else { return };
    let code = match verdict {
        Verdict::Allow => return,
        Verdict::Challenge { .. } => RTSPStatusCode::Unauthorized,
        Verdict::Forbidden => RTSPStatusCode::Forbidden,
        Verdict::Unavailable => RTSPStatusCode::ServiceUnavailable,
    };
    response.init_response(code, ctx.request());
    if let Verdict::Challenge { stale } = verdict {
        if let Some(digest) = auth.digest_challenge(stale) {
            response.add_header(RTSPHeaderField::WwwAuthenticate, &digest);
        }
        response.add_header(RTSPHeaderField::WwwAuthenticate, &format!("Basic realm=\"{}\"", digest::REALM));
    }
    let _ = client.send_message(response, ctx.session());
}

/// The client's address; unknown ones share one limiter entry.
fn peer(ctx: &RTSPContext) -> IpAddr {
    let ip = ctx.client().and_then(|client| {
        // SAFETY: the connection and its address string are owned by the client, which the
        // context holds for the whole request; the string is copied at once.
        unsafe {
            let client_ptr: *mut gst_rtsp_server::ffi::GstRTSPClient = client.to_glib_none().0;
            let conn = gst_rtsp_server::ffi::gst_rtsp_client_get_connection(client_ptr);
            if conn.is_null() {
                return None;
            }
            let ip = gst_rtsp::ffi::gst_rtsp_connection_get_ip(conn);
            if ip.is_null() {
                return None;
            }
            std::ffi::CStr::from_ptr(ip).to_str().ok().and_then(|s| s.parse().ok())
        }
    });
    ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// What the request carries: an `Authorization` header (Digest before Basic), else
/// `?token=` in its URL.
fn credential(ctx: &RTSPContext) -> Option<Credential> {
    let request = ctx.request()?;
    let mut basic = None;
    for c in request.parse_auth_credentials().iter() {
        match c.scheme() {
            RTSPAuthMethod::Digest => {
                let mut answer = digest::Answer { method: method(request)?, ..Default::default() };
                for p in c.params().iter() {
                    let (name, value) = param(p);
                    match name.as_str() {
                        "username" => answer.user = value,
                        "realm" => answer.realm = value,
                        "nonce" => answer.nonce = value,
                        "uri" => answer.uri = value,
                        "response" => answer.response = value,
                        "qop" => answer.qop = Some(value),
                        "nc" => answer.nc = Some(value),
                        "cnonce" => answer.cnonce = Some(value),
                        "algorithm" => answer.algorithm = Some(value),
                        _ => {}
                    }
                }
                return Some(Credential::Digest(answer));
            }
            RTSPAuthMethod::Basic => basic = c.authorization().and_then(basic_credential),
            _ => {}
        }
    }
    basic.or_else(|| ctx.uri().and_then(query_token).map(Credential::Token))
}

/// A parameter's name and value (the binding's accessors for them are not compiled in).
fn param(p: &RTSPAuthParam) -> (String, String) {
    // SAFETY: the parameter is borrowed from the parsed credentials, alive for this call;
    // both strings are copied at once.
    unsafe {
        let ptr: *const gst_rtsp::ffi::GstRTSPAuthParam = p.to_glib_none().0;
        let text =
            |s: *mut std::ffi::c_char| if s.is_null() { String::new() } else { std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned() };
        (text((*ptr).name), text((*ptr).value))
    }
}

/// `user:password` from Basic's base64.
fn basic_credential(encoded: &str) -> Option<Credential> {
    // A bound on what is decoded: names are short and tokens a few hundred bytes.
    if encoded.len() > 4096 {
        return None;
    }
    let decoded = glib::base64_decode(encoded);
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Credential::Password { user: user.to_owned(), password: password.to_owned() })
}

/// The request's method, as Digest covers it.
fn method(request: &RTSPMessage) -> Option<String> {
    // SAFETY: parse_request only reads the message and writes the three outputs; the
    // method's text is a static string.
    unsafe {
        let mut method = 0;
        let mut uri = std::ptr::null();
        let mut version = 0;
        let ok = gst_rtsp::ffi::gst_rtsp_message_parse_request(request.to_glib_none().0, &mut method, &mut uri, &mut version);
        if ok != gst_rtsp::ffi::GST_RTSP_OK {
            return None;
        }
        let text = gst_rtsp::ffi::gst_rtsp_method_as_text(method);
        (!text.is_null()).then(|| std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

/// The camera a URL names: its path's first part (`/front` and `/front/stream=0`).
pub fn camera_of(url: &RTSPUrl) -> Option<String> {
    url.decode_path_components().into_iter().map(|c| c.to_string()).find(|c| !c.is_empty())
}

/// `?token=` in the URL. A client builds its SETUP URLs from the DESCRIBE one, so the
/// query may come back with the stream's control path after it (`token=…/stream=0`); a token
/// is base64url and dots, so it ends at anything else.
fn query_token(url: &RTSPUrl) -> Option<String> {
    // SAFETY: the URL is borrowed from the context for the whole request; its query string
    // is copied at once.
    let query = unsafe {
        let ptr: *const gst_rtsp::ffi::GstRTSPUrl = url.to_glib_none().0;
        let query = (*ptr).query;
        if query.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(query).to_string_lossy().into_owned()
    };
    token_in_query(&query)
}

fn token_in_query(query: &str) -> Option<String> {
    let start = query.split('&').find_map(|pair| pair.strip_prefix("token="))?;
    let token: String = start.chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(4096).collect();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_in_the_query_ends_where_a_control_path_or_another_pair_begins() {
        assert_eq!(token_in_query("token=aa.bb-cc_dd").as_deref(), Some("aa.bb-cc_dd"));
        assert_eq!(token_in_query("token=aa.bb/stream=0").as_deref(), Some("aa.bb"));
        assert_eq!(token_in_query("x=1&token=aa.bb&y=2").as_deref(), Some("aa.bb"));
        assert_eq!(token_in_query("tokens=aa"), None);
        assert_eq!(token_in_query("token="), None);
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let encoded = glib::base64_encode(b"anna:pass:with:colons");
        match basic_credential(&encoded) {
            Some(Credential::Password { user, password }) => assert_eq!((user.as_str(), password.as_str()), ("anna", "pass:with:colons")),
            other => panic!("{other:?}"),
        }
        assert!(basic_credential(&glib::base64_encode(b"no colon")).is_none());
        assert!(basic_credential(&"A".repeat(5000)).is_none());
    }

    #[test]
    fn the_camera_is_the_first_part_of_the_path() {
        let (_, url) = RTSPUrl::parse("rtsp://10.0.0.2:8554/front/stream=0?token=x");
        assert_eq!(camera_of(&url.unwrap()).as_deref(), Some("front"));
        let (_, url) = RTSPUrl::parse("rtsp://10.0.0.2:8554/");
        assert_eq!(camera_of(&url.unwrap()), None);
    }
}
