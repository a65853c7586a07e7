//! The device and media services of ONVIF Profile S, the part NVRs and Home Assistant use:
//! what each operation needs of the caller ([`need`]) and its answer ([`answer`]). One
//! profile per camera (H.264, its size and rate); the stream URI is the camera's RTSP URL,
//! the snapshot URI its `snapshot.jpg`. Anything else is `ter:ActionNotSupported`.

use super::soap::{Blame, Request, escape};

pub const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";

/// What the answers say about the device.
#[derive(Debug, Clone)]
pub struct Device {
    pub firmware: String,
    /// Stable per device (its host name carries the MAC's tail).
    pub serial: String,
    pub hardware: String,
    pub hostname: String,
    /// `http://host:port` as the client reached it.
    pub http_base: String,
    /// `rtsp://host:port` while the RTSP server runs.
    pub rtsp_base: Option<String>,
    pub cameras: Vec<Camera>,
}

/// One camera, one profile.
#[derive(Debug, Clone)]
pub struct Camera {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub keyframe_every: u32,
}

/// What an operation asks of the caller before it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing (ONVIF's PRE_AUTH class: the clock, the capabilities and services).
    Nothing,
    /// A principal that may read the device's state.
    Status,
    /// The `view` of a camera (`None`: of the cameras it lists).
    View(Option<String>),
    /// The `snapshot` of a camera.
    Snapshot(String),
}

/// A fault: who is to blame, ONVIF's subcode, and a reason for a person.
pub type Fault = (Blame, &'static str, String);

fn unsupported(r: &Request) -> Fault {
    (Blame::Sender, "ter:ActionNotSupported", format!("{} is not supported by this device", r.operation))
}

/// The camera a profile token names.
fn camera_of(token: Option<&str>) -> Option<&str> {
    token.and_then(|t| t.strip_prefix("profile_"))
}

/// What `r` needs of its caller; a fault for an operation this device does not have.
pub fn need(r: &Request) -> Result<Need, Fault> {
    let op = r.operation.as_str();
    match r.namespace.as_str() {
        DEVICE_NS => match op {
            "GetSystemDateAndTime" | "GetCapabilities" | "GetServices" | "GetServiceCapabilities" => Ok(Need::Nothing),
            "GetDeviceInformation" | "GetScopes" | "GetHostname" => Ok(Need::Status),
            _ => Err(unsupported(r)),
        },
        MEDIA_NS => match op {
            "GetServiceCapabilities" => Ok(Need::Nothing),
            "GetProfiles" | "GetVideoSources" => Ok(Need::View(None)),
            "GetProfile" | "GetStreamUri" => Ok(Need::View(Some(profile_camera(r)?))),
            "GetSnapshotUri" => Ok(Need::Snapshot(profile_camera(r)?)),
            _ => Err(unsupported(r)),
        },
        _ => Err(unsupported(r)),
    }
}

fn profile_camera(r: &Request) -> Result<String, Fault> {
    camera_of(r.profile_token.as_deref())
        .map(str::to_owned)
        .ok_or_else(|| (Blame::Sender, "ter:InvalidArgVal", "no such profile (ProfileToken)".into()))
}

/// The answer's body for `r`; `sees`: whether the caller may see a camera (profiles of other
/// cameras are left out), `now`: the device's clock.
pub fn answer(r: &Request, device: &Device, sees: &dyn Fn(&str) -> bool, now: chrono::DateTime<chrono::Utc>) -> Result<String, Fault> {
    let visible = || device.cameras.iter().filter(|c| sees(&c.name));
    let camera = || {
        let name = camera_of(r.profile_token.as_deref());
        device.cameras.iter().find(|c| Some(c.name.as_str()) == name).ok_or((Blame::Sender, "ter:InvalidArgVal", "no such profile".into()))
    };
    let body = match (r.namespace.as_str(), r.operation.as_str()) {
        (DEVICE_NS, "GetSystemDateAndTime") => date_and_time(now),
        (DEVICE_NS, "GetCapabilities") => capabilities(device),
        (DEVICE_NS, "GetServices") => services(device),
        (DEVICE_NS, "GetServiceCapabilities") => {
            r#"<tds:GetServiceCapabilitiesResponse><tds:Capabilities><tds:Network/><tds:Security UsernameToken="true"/><tds:System DiscoveryResolve="true" DiscoveryBye="true"/></tds:Capabilities></tds:GetServiceCapabilitiesResponse>"#.into()
        }
        (DEVICE_NS, "GetDeviceInformation") => format!(
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>Lookout</tds:Manufacturer><tds:Model>Lookout camera</tds:Model>\
             <tds:FirmwareVersion>{}</tds:FirmwareVersion><tds:SerialNumber>{}</tds:SerialNumber><tds:HardwareId>{}</tds:HardwareId></tds:GetDeviceInformationResponse>",
            escape(&device.firmware),
            escape(&device.serial),
            escape(&device.hardware)
        ),
        (DEVICE_NS, "GetScopes") => {
            let items: String = super::scopes(&device.hostname, &device.hardware)
                .iter()
                .map(|s| format!("<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{}</tt:ScopeItem></tds:Scopes>", escape(s)))
                .collect();
            format!("<tds:GetScopesResponse>{items}</tds:GetScopesResponse>")
        }
        (DEVICE_NS, "GetHostname") => format!(
            "<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP><tt:Name>{}</tt:Name></tds:HostnameInformation></tds:GetHostnameResponse>",
            escape(&device.hostname)
        ),
        (MEDIA_NS, "GetServiceCapabilities") => r#"<trt:GetServiceCapabilitiesResponse><trt:Capabilities SnapshotUri="true" Rotation="false" VideoSourceMode="false" OSD="false"><trt:ProfileCapabilities MaximumNumberOfProfiles="1"/><trt:StreamingCapabilities RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true"/></trt:Capabilities></trt:GetServiceCapabilitiesResponse>"#.into(),
        (MEDIA_NS, "GetProfiles") => {
            format!("<trt:GetProfilesResponse>{}</trt:GetProfilesResponse>", visible().map(|c| profile("trt:Profiles", c)).collect::<String>())
        }
        (MEDIA_NS, "GetProfile") => format!("<trt:GetProfileResponse>{}</trt:GetProfileResponse>", profile("trt:Profile", camera()?)),
        (MEDIA_NS, "GetVideoSources") => {
            let sources: String = visible()
                .map(|c| {
                    format!(
                        r#"<trt:VideoSources token="source_{}"><tt:Framerate>{}</tt:Framerate><tt:Resolution><tt:Width>{}</tt:Width><tt:Height>{}</tt:Height></tt:Resolution></trt:VideoSources>"#,
                        escape(&c.name),
                        c.fps,
                        c.width,
                        c.height
                    )
                })
                .collect();
            format!("<trt:GetVideoSourcesResponse>{sources}</trt:GetVideoSourcesResponse>")
        }
        (MEDIA_NS, "GetStreamUri") => {
            let c = camera()?;
            let base = device.rtsp_base.as_deref().ok_or((Blame::Receiver, "ter:ActionNotSupported", "RTSP is off ([rtsp] enabled)".into()))?;
            format!("<trt:GetStreamUriResponse>{}</trt:GetStreamUriResponse>", media_uri(&format!("{base}/{}", c.name)))
        }
        (MEDIA_NS, "GetSnapshotUri") => {
            let c = camera()?;
            let uri = format!("{}/api/cameras/{}/snapshot.jpg", device.http_base, c.name);
            format!("<trt:GetSnapshotUriResponse>{}</trt:GetSnapshotUriResponse>", media_uri(&uri))
        }
        _ => return Err(unsupported(r)),
    };
    Ok(body)
}

fn date_and_time(now: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let stamp = |tag: &str| {
        format!(
            "<tt:{tag}><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time>\
             <tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:{tag}>",
            now.hour(),
            now.minute(),
            now.second(),
            now.year(),
            now.month(),
            now.day()
        )
    };
    // The device keeps UTC (recordings are named in it); local time is UTC too.
    format!(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>\
         <tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>{}{}</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
        stamp("UTCDateTime"),
        stamp("LocalDateTime")
    )
}

fn capabilities(d: &Device) -> String {
    let base = escape(&d.http_base);
    format!(
        "<tds:GetCapabilitiesResponse><tds:Capabilities>\
         <tt:Device><tt:XAddr>{base}{}</tt:XAddr><tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2>\
         <tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration><tt:AccessPolicyConfig>false</tt:AccessPolicyConfig>\
         <tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken><tt:KerberosToken>false</tt:KerberosToken>\
         <tt:RELToken>false</tt:RELToken></tt:Security></tt:Device>\
         <tt:Media><tt:XAddr>{base}{}</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>\
         <tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>\
         </tds:Capabilities></tds:GetCapabilitiesResponse>",
        super::DEVICE_PATH,
        super::MEDIA_PATH
    )
}

fn services(d: &Device) -> String {
    let service = |ns: &str, path: &str| {
        format!(
            "<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{}{path}</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>",
            escape(&d.http_base)
        )
    };
    format!(
        "<tds:GetServicesResponse>{}{}</tds:GetServicesResponse>",
        service(DEVICE_NS, super::DEVICE_PATH),
        service(MEDIA_NS, super::MEDIA_PATH)
    )
}

fn profile(tag: &str, c: &Camera) -> String {
    let n = escape(&c.name);
    format!(
        r#"<{tag} token="profile_{n}" fixed="true"><tt:Name>{n}</tt:Name>
<tt:VideoSourceConfiguration token="source_config_{n}"><tt:Name>{n}</tt:Name><tt:UseCount>1</tt:UseCount><tt:SourceToken>source_{n}</tt:SourceToken><tt:Bounds x="0" y="0" width="{w}" height="{h}"/></tt:VideoSourceConfiguration>
<tt:VideoEncoderConfiguration token="encoder_{n}"><tt:Name>{n}</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{kbps}</tt:BitrateLimit></tt:RateControl><tt:H264><tt:GovLength>{gov}</tt:GovLength><tt:H264Profile>Baseline</tt:H264Profile></tt:H264><tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>
</{tag}>"#,
        w = c.width,
        h = c.height,
        fps = c.fps,
        kbps = c.bitrate_kbps,
        gov = c.keyframe_every,
    )
}

fn media_uri(uri: &str) -> String {
    format!(
        "<trt:MediaUri><tt:Uri>{}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>",
        escape(uri)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        let cam = |name: &str| Camera { name: name.into(), width: 1280, height: 720, fps: 30, bitrate_kbps: 4000, keyframe_every: 60 };
        Device {
            firmware: "0.1.0".into(),
            serial: "lookout-1a2b".into(),
            hardware: "Raspberry Pi 4".into(),
            hostname: "lookout-1a2b".into(),
            http_base: "http://10.0.0.2:80".into(),
            rtsp_base: Some("rtsp://10.0.0.2:8554".into()),
            cameras: vec![cam("yard"), cam("door")],
        }
    }

    fn request(ns: &str, op: &str, profile: Option<&str>) -> Request {
        Request { operation: op.into(), namespace: ns.into(), profile_token: profile.map(Into::into), credential: None }
    }

    fn well_formed(body: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    #[test]
    fn each_operation_needs_what_onvif_says() {
        assert_eq!(need(&request(DEVICE_NS, "GetSystemDateAndTime", None)), Ok(Need::Nothing));
        assert_eq!(need(&request(DEVICE_NS, "GetDeviceInformation", None)), Ok(Need::Status));
        assert_eq!(need(&request(MEDIA_NS, "GetStreamUri", Some("profile_yard"))), Ok(Need::View(Some("yard".into()))));
        assert_eq!(need(&request(MEDIA_NS, "GetSnapshotUri", Some("profile_yard"))), Ok(Need::Snapshot("yard".into())));
        assert!(matches!(need(&request(MEDIA_NS, "GetStreamUri", Some("nonsense"))), Err((Blame::Sender, "ter:InvalidArgVal", _))));
        assert!(matches!(need(&request(DEVICE_NS, "SystemReboot", None)), Err((Blame::Sender, "ter:ActionNotSupported", _))));
        assert!(matches!(need(&request("urn:other", "GetProfiles", None)), Err((_, "ter:ActionNotSupported", _))));
    }

    #[test]
    fn profiles_list_the_cameras_the_caller_sees_and_uris_point_at_rtsp_and_the_snapshot() {
        let d = device();
        let only_yard = |c: &str| c == "yard";
        let now = chrono::Utc::now();
        let profiles = super::super::soap::envelope(&answer(&request(MEDIA_NS, "GetProfiles", None), &d, &only_yard, now).unwrap());
        let doc = well_formed(&profiles);
        let tokens: Vec<&str> =
            doc.descendants().filter(|n| n.tag_name().name() == "Profiles").filter_map(|n| n.attribute("token")).collect();
        assert_eq!(tokens, vec!["profile_yard"]);
        let stream = answer(&request(MEDIA_NS, "GetStreamUri", Some("profile_door")), &d, &only_yard, now).unwrap();
        assert!(stream.contains("<tt:Uri>rtsp://10.0.0.2:8554/door</tt:Uri>"), "{stream}");
        let snapshot = answer(&request(MEDIA_NS, "GetSnapshotUri", Some("profile_yard")), &d, &only_yard, now).unwrap();
        assert!(snapshot.contains("<tt:Uri>http://10.0.0.2:80/api/cameras/yard/snapshot.jpg</tt:Uri>"), "{snapshot}");
        let off = Device { rtsp_base: None, ..d.clone() };
        assert!(answer(&request(MEDIA_NS, "GetStreamUri", Some("profile_yard")), &off, &only_yard, now).is_err());
        for op in [
            "GetSystemDateAndTime",
            "GetCapabilities",
            "GetServices",
            "GetServiceCapabilities",
            "GetDeviceInformation",
            "GetScopes",
            "GetHostname",
        ] {
            well_formed(&super::super::soap::envelope(&answer(&request(DEVICE_NS, op, None), &d, &only_yard, now).unwrap()));
        }
        for op in ["GetVideoSources", "GetServiceCapabilities"] {
            well_formed(&super::super::soap::envelope(&answer(&request(MEDIA_NS, op, None), &d, &only_yard, now).unwrap()));
        }
    }
}
