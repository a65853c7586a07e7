//! ONVIF Profile S, the part NVRs (Blue Iris, Synology, Frigate's and Scrypted's ONVIF
//! probes) and Home Assistant use to find a camera and its stream: WS-Discovery on UDP 3702
//! ([`discovery`]), and the device and media services over the web server's HTTP
//! (`/onvif/device_service`, `/onvif/media_service`: `web::onvif`), answered by [`services`]
//! from [`soap`] requests. Kept small and to the spec; nothing here moves the camera or
//! changes a setting, and no HTTP or GStreamer is touched here.
//!
//! Credentials are WS-Security UsernameTokens: a PasswordText is checked like any password
//! (a user's, or a token as the password); a PasswordDigest (`SHA-1(nonce + created +
//! password)`) needs the password itself, which the device does not keep, so only a token
//! (whose text the device can make again) works as a digest's password. What a caller may
//! then see is `auth::Auth::authorize`'s decision.

pub mod discovery;
pub mod services;
pub mod soap;

/// Where the device service answers.
pub const DEVICE_PATH: &str = "/onvif/device_service";
/// Where the media service answers.
pub const MEDIA_PATH: &str = "/onvif/media_service";

/// The device's host name.
pub fn hostname() -> String {
    crate::network::names::current_hostname().unwrap_or_else(|| "lookout".into())
}

/// The scopes the device announces and answers `GetScopes` with.
pub fn scopes(hostname: &str, hardware: &str) -> Vec<String> {
    vec![
        "onvif://www.onvif.org/type/video_encoder".into(),
        "onvif://www.onvif.org/Profile/Streaming".into(),
        "onvif://www.onvif.org/Profile/S".into(),
        format!("onvif://www.onvif.org/name/Lookout_{}", url_safe(hostname)),
        format!("onvif://www.onvif.org/hardware/{}", url_safe(hardware)),
    ]
}

fn url_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// The device's endpoint address: a UUID that stays across restarts (from `/etc/machine-id`,
/// else from the host name).
pub fn endpoint_uuid() -> String {
    let seed = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| {
            use sha2::Digest as _;
            sha2::Sha256::digest(hostname().as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
        });
    format!("urn:uuid:{}-{}-{}-{}-{}", &seed[..8], &seed[8..12], &seed[12..16], &seed[16..20], &seed[20..32])
}

/// What the hardware is, for `GetDeviceInformation` and the scopes.
pub fn hardware() -> String {
    std::fs::read_to_string("/proc/device-tree/model")
        .ok()
        .map(|m| m.trim_end_matches('\0').trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
