//! Device and media service calls against one camera.
//!
//! Each call is a SOAP 1.2 POST carrying a WS-Security UsernameToken (when we
//! have credentials); a 401 with an HTTP digest challenge is retried once with
//! digest auth, and the challenge is kept for later calls. Replies are parsed
//! by the pure `parse_*` functions below, which the unit and fuzz tests drive
//! directly.

use std::sync::Mutex;

use rand::RngCore;
use serde::Serialize;

use super::auth::{created_timestamp, username_token, Credentials, DigestChallenge};
use super::http::{self, HttpError};
use super::soap::{self, Fault, ReplyError};
use super::xml::{escape, Element, XmlError};

/// Device management service namespace (also the SOAP action prefix).
pub const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
/// Media (profile S) service namespace.
pub const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
/// Media2 (profile T) service namespace.
pub const NS_MEDIA2: &str = "http://www.onvif.org/ver20/media/wsdl";
/// Events service namespace.
pub const NS_EVENTS: &str = "http://www.onvif.org/ver10/events/wsdl";
/// PTZ service namespace.
pub const NS_PTZ: &str = "http://www.onvif.org/ver20/ptz/wsdl";

/// An ONVIF call that failed, naming the camera and the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ONVIF camera {host}: {action}: {kind}")]
pub struct OnvifError {
    /// `host:port` as configured or discovered (never with credentials).
    pub host: String,
    /// Operation, e.g. `GetStreamUri`.
    pub action: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl OnvifError {
    /// Whether the camera refused our credentials (so retrying soon is pointless).
    pub fn is_not_authorized(&self) -> bool {
        self.kind == ErrorKind::NotAuthorized
    }
}

/// The ways a call fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// HTTP 401 or a `ter:NotAuthorized` fault.
    #[error("not authorized (check the ONVIF username and password)")]
    NotAuthorized,
    /// No reply (network, timeout, oversized).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// An HTTP error status without a SOAP body.
    #[error("HTTP status {0}")]
    Status(u16),
    /// Any other SOAP fault (e.g. the operation is not supported).
    #[error("SOAP fault {0}")]
    Fault(Fault),
    /// The reply was refused by the XML parser.
    #[error("unsafe or malformed XML: {0}")]
    Xml(XmlError),
    /// Well-formed, but not SOAP.
    #[error("{0}")]
    NotSoap(String),
    /// A SOAP reply without a field we need.
    #[error("reply lacks {0}")]
    Missing(String),
}

impl From<ReplyError> for ErrorKind {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Xml(x) => ErrorKind::Xml(x),
            ReplyError::NotSoap(m) => ErrorKind::NotSoap(format!("not a SOAP reply: {m}")),
            ReplyError::Fault(f) if f.is_not_authorized() => ErrorKind::NotAuthorized,
            ReplyError::Fault(f) => ErrorKind::Fault(f),
        }
    }
}

/// `GetDeviceInformation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware_version: String,
    /// Serial number.
    pub serial_number: String,
    /// Hardware id.
    pub hardware_id: String,
}

/// `GetSystemDateAndTime`, reduced to what we use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemDateTime {
    /// The camera's UTC clock, if it reported one.
    #[serde(skip)]
    pub utc: Option<time::OffsetDateTime>,
    /// `NTP` or `Manual`.
    pub date_time_type: Option<String>,
}

/// Where the camera's services live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAddrs {
    /// Media (ver10) service.
    pub media: Option<url::Url>,
    /// Media2 (ver20) service.
    pub media2: Option<url::Url>,
    /// Events service.
    pub events: Option<url::Url>,
    /// PTZ service, on cameras that can pan, tilt or zoom.
    pub ptz: Option<url::Url>,
}

/// One media profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Profile {
    /// Profile token, used in `GetStreamUri` and in config (`profile = "..."`).
    pub token: String,
    /// Human name.
    pub name: String,
    /// Video encoding (`H264`, `H265`, `JPEG`...), if configured.
    pub encoding: Option<String>,
    /// Encoded width.
    pub width: Option<u32>,
    /// Encoded height.
    pub height: Option<u32>,
    /// Frame rate limit.
    pub fps: Option<f32>,
}

impl Profile {
    /// Whether `wanted` names this profile (token or name, case-insensitive).
    pub fn matches(&self, wanted: &str) -> bool {
        self.token.eq_ignore_ascii_case(wanted) || self.name.eq_ignore_ascii_case(wanted)
    }

    /// Pixels per frame, for choosing main (largest) and sub (smallest) streams.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width.unwrap_or(0)) * u64::from(self.height.unwrap_or(0))
    }
}

/// A connection to one camera's ONVIF services.
pub struct OnvifClient {
    host: String,
    device_url: url::Url,
    creds: Option<Credentials>,
    /// Camera clock minus ours; added to `Created` so tokens are fresh by the camera's clock.
    clock_offset: time::Duration,
    /// Last HTTP digest challenge and nonce count, once a camera has asked for digest.
    digest: Mutex<Option<(DigestChallenge, u32)>>,
    services: ServiceAddrs,
}

impl std::fmt::Debug for OnvifClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnvifClient")
            .field("host", &self.host)
            .field("device_url", &self.device_url.as_str())
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

/// The device service path every ONVIF device must serve.
pub const DEVICE_SERVICE_PATH: &str = "/onvif/device_service";

impl OnvifClient {
    /// A client for the device service at `http://host:port/onvif/device_service`.
    /// Makes no calls; see [`OnvifClient::connect`].
    pub fn new(host: &str, port: u16, creds: Option<Credentials>) -> Result<Self, OnvifError> {
        let label = host_label(host, port);
        let bracketed = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let url = url::Url::parse(&format!("http://{bracketed}:{port}{DEVICE_SERVICE_PATH}"))
            .map_err(|_| OnvifError {
                host: label.clone(),
                action: "connect".into(),
                kind: ErrorKind::Http(HttpError::BadUrl(label.clone())),
            })?;
        Ok(Self::with_device_url(url, creds))
    }

    /// A client for a device service URL (e.g. a discovered XAddr).
    pub fn with_device_url(device_url: url::Url, creds: Option<Credentials>) -> Self {
        let host = host_label(
            device_url.host_str().unwrap_or("?"),
            device_url.port_or_known_default().unwrap_or(80),
        );
        Self {
            host,
            device_url,
            creds,
            clock_offset: time::Duration::ZERO,
            digest: Mutex::new(None),
            services: ServiceAddrs::default(),
        }
    }

    /// Connects: measures the camera's clock offset, then finds its services.
    pub async fn connect(
        host: &str,
        port: u16,
        creds: Option<Credentials>,
    ) -> Result<Self, OnvifError> {
        let mut c = Self::new(host, port, creds)?;
        c.sync_clock().await;
        c.load_services().await?;
        Ok(c)
    }

    /// Like [`OnvifClient::connect`], for a device service URL (a discovered XAddr).
    pub async fn connect_url(
        device_url: url::Url,
        creds: Option<Credentials>,
    ) -> Result<Self, OnvifError> {
        let mut c = Self::with_device_url(device_url, creds);
        c.sync_clock().await;
        c.load_services().await?;
        Ok(c)
    }

    /// The device service's host (name or address, IPv6 bracketed).
    pub fn device_host(&self) -> &str {
        self.device_url.host_str().unwrap_or_default()
    }

    /// Camera clock minus ours, as measured by [`OnvifClient::sync_clock`]
    /// (zero when under a few seconds).
    pub fn clock_offset(&self) -> time::Duration {
        self.clock_offset
    }

    /// `host:port`, as used in error messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The service addresses found by [`OnvifClient::load_services`].
    pub fn services(&self) -> &ServiceAddrs {
        &self.services
    }

    /// Measures the camera's clock offset for UsernameTokens.
    ///
    /// Asked without credentials first, as ONVIF requires cameras to answer
    /// that; some (ipycam among them) insist on a token even here, so we then
    /// ask with one built from our own clock. If both fail we keep offset zero
    /// and let the real call report the problem.
    pub async fn sync_clock(&mut self) {
        let mut dt = self.system_date_and_time(false).await;
        if dt.is_err() && self.creds.is_some() {
            dt = self.system_date_and_time(true).await;
        }
        if let Ok(SystemDateTime { utc: Some(cam), .. }) = dt {
            let offset = cam - time::OffsetDateTime::now_utc();
            // Under a few seconds is network delay and rounding, not drift.
            self.clock_offset = if offset.abs() < time::Duration::seconds(5) {
                time::Duration::ZERO
            } else {
                tracing::info!(camera = %self.host, offset_s = offset.whole_seconds(), "camera clock differs from ours; adjusting WS-Security timestamps");
                offset
            };
        }
    }

    /// Finds the media and events services: `GetServices`, falling back to
    /// `GetCapabilities` for firmware older than ONVIF 2.0.
    pub async fn load_services(&mut self) -> Result<(), OnvifError> {
        let services = match self.device_call("GetServices", "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>").await {
            Ok(r) => parse_services(&r),
            Err(e) if e.is_not_authorized() => return Err(e),
            Err(_) => ServiceAddrs::default(),
        };
        let services = if services.media.is_some() || services.media2.is_some() {
            services
        } else {
            let r = self
                .device_call(
                    "GetCapabilities",
                    "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
                )
                .await?;
            parse_capabilities(&r)
        };
        if services.media.is_none() && services.media2.is_none() {
            return Err(self.err(
                "GetCapabilities",
                ErrorKind::Missing("a media service address".into()),
            ));
        }
        self.services = ServiceAddrs {
            media: services.media.map(|u| self.reachable(u)),
            media2: services.media2.map(|u| self.reachable(u)),
            events: services.events.map(|u| self.reachable(u)),
            ptz: services.ptz.map(|u| self.reachable(u)),
        };
        Ok(())
    }

    /// Cameras report service addresses with the IP they believe they have,
    /// which is wrong behind NAT or a second interface; we already reach the
    /// device service at our host, so use that host with the reported port and path.
    pub(super) fn reachable(&self, mut u: url::Url) -> url::Url {
        if let Some(h) = self.device_url.host_str() {
            let _ = u.set_host(Some(h));
        }
        u
    }

    /// `GetSystemDateAndTime`, with or without a token.
    pub async fn system_date_and_time(
        &self,
        authenticated: bool,
    ) -> Result<SystemDateTime, OnvifError> {
        let body = "<tds:GetSystemDateAndTime/>";
        let r = self
            .call_inner(
                &self.device_url,
                NS_DEVICE,
                "GetSystemDateAndTime",
                body,
                authenticated,
            )
            .await?;
        Ok(parse_system_date_and_time(&r))
    }

    /// `GetDeviceInformation`.
    pub async fn device_information(&self) -> Result<DeviceInfo, OnvifError> {
        let r = self
            .device_call("GetDeviceInformation", "<tds:GetDeviceInformation/>")
            .await?;
        Ok(parse_device_information(&r))
    }

    /// `GetProfiles` from Media1 when offered (widest support), else Media2.
    pub async fn profiles(&self) -> Result<Vec<Profile>, OnvifError> {
        let r = if let Some(u) = &self.services.media {
            self.call(u, NS_MEDIA, "GetProfiles", "<trt:GetProfiles/>")
                .await?
        } else if let Some(u) = &self.services.media2 {
            self.call(
                u,
                NS_MEDIA2,
                "GetProfiles",
                "<tr2:GetProfiles><tr2:Type>All</tr2:Type></tr2:GetProfiles>",
            )
            .await?
        } else {
            return Err(self.err(
                "GetProfiles",
                ErrorKind::Missing("a media service address".into()),
            ));
        };
        let profiles = parse_profiles(&r);
        if profiles.is_empty() {
            return Err(self.err(
                "GetProfiles",
                ErrorKind::Missing("any media profile".into()),
            ));
        }
        Ok(profiles)
    }

    /// `GetStreamUri` for RTP unicast over RTSP (interleaved or not is chosen at SETUP).
    pub async fn stream_uri(&self, profile_token: &str) -> Result<String, OnvifError> {
        let token = escape(profile_token);
        let r = if let Some(u) = &self.services.media {
            let body = format!("<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{token}</trt:ProfileToken></trt:GetStreamUri>");
            self.call(u, NS_MEDIA, "GetStreamUri", &body).await?
        } else if let Some(u) = &self.services.media2 {
            let body = format!("<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol><tr2:ProfileToken>{token}</tr2:ProfileToken></tr2:GetStreamUri>");
            self.call(u, NS_MEDIA2, "GetStreamUri", &body).await?
        } else {
            return Err(self.err(
                "GetStreamUri",
                ErrorKind::Missing("a media service address".into()),
            ));
        };
        parse_uri(&r).ok_or_else(|| self.err("GetStreamUri", ErrorKind::Missing("Uri".into())))
    }

    /// `GetSnapshotUri` (an HTTP JPEG URL).
    pub async fn snapshot_uri(&self, profile_token: &str) -> Result<String, OnvifError> {
        let token = escape(profile_token);
        let r = if let Some(u) = &self.services.media {
            let body = format!("<trt:GetSnapshotUri><trt:ProfileToken>{token}</trt:ProfileToken></trt:GetSnapshotUri>");
            self.call(u, NS_MEDIA, "GetSnapshotUri", &body).await?
        } else if let Some(u) = &self.services.media2 {
            let body = format!("<tr2:GetSnapshotUri><tr2:ProfileToken>{token}</tr2:ProfileToken></tr2:GetSnapshotUri>");
            self.call(u, NS_MEDIA2, "GetSnapshotUri", &body).await?
        } else {
            return Err(self.err(
                "GetSnapshotUri",
                ErrorKind::Missing("a media service address".into()),
            ));
        };
        parse_uri(&r).ok_or_else(|| self.err("GetSnapshotUri", ErrorKind::Missing("Uri".into())))
    }

    /// A device service call: `op` is the operation name, `body` the request element.
    pub async fn device_call(&self, op: &str, body: &str) -> Result<Element, OnvifError> {
        let url = self.device_url.clone();
        self.call(&url, NS_DEVICE, op, body).await
    }

    /// Any authenticated call.
    pub async fn call(
        &self,
        url: &url::Url,
        ns: &str,
        op: &str,
        body: &str,
    ) -> Result<Element, OnvifError> {
        self.call_inner(url, ns, op, body, true).await
    }

    /// A call whose SOAP action is not `{namespace}/{op}` (the events
    /// service's WS-Notification operations), with WS-Addressing `Action`
    /// and `To` headers, which subscription managers use to route the call.
    /// `to` is the address as the camera named it (`url` may have our host
    /// for the camera's); `reference_parameters` are header blocks the
    /// endpoint reference asked to be echoed (rendered XML).
    pub async fn call_addressed(
        &self,
        url: &url::Url,
        to: &str,
        reference_parameters: &[String],
        action: &str,
        op: &str,
        body: &str,
    ) -> Result<Element, OnvifError> {
        let mut wsa = format!(
            "<wsa:Action>{}</wsa:Action><wsa:To>{}</wsa:To>",
            escape(action),
            escape(to)
        );
        for p in reference_parameters {
            wsa.push_str(p);
        }
        self.call_full(url, action, op, Some(&wsa), body, true)
            .await
    }

    async fn call_inner(
        &self,
        url: &url::Url,
        ns: &str,
        op: &str,
        body: &str,
        authenticated: bool,
    ) -> Result<Element, OnvifError> {
        let action = format!("{ns}/{op}");
        self.call_full(url, &action, op, None, body, authenticated)
            .await
    }

    async fn call_full(
        &self,
        url: &url::Url,
        action: &str,
        op: &str,
        extra_header: Option<&str>,
        body: &str,
        authenticated: bool,
    ) -> Result<Element, OnvifError> {
        let creds = self.creds.as_ref().filter(|_| authenticated);
        let mut tried_digest = false;
        loop {
            let header = creds.map(|c| {
                let mut nonce = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut nonce);
                let created =
                    created_timestamp(time::OffsetDateTime::now_utc() + self.clock_offset);
                username_token(c, &nonce, &created)
            });
            let header = match (extra_header, header) {
                (Some(x), Some(h)) => Some(format!("{x}{h}")),
                (x, h) => h.or(x.map(str::to_owned)),
            };
            let envelope = soap::envelope(header.as_deref(), body);
            let authorization = creds.and_then(|c| self.digest_header(c, url));
            let used_digest = authorization.is_some();
            let reply = http::post(url, action, envelope, authorization.as_deref())
                .await
                .map_err(|e| self.err(op, e.into()))?;
            if reply.status == 401 {
                // Firmware that wants HTTP digest says so in WWW-Authenticate; retry once with it.
                let challenge = reply
                    .www_authenticate
                    .iter()
                    .find_map(|h| DigestChallenge::parse(h));
                if let (Some(_), Some(ch), false) = (creds, challenge, tried_digest) {
                    tried_digest = true;
                    *self.digest.lock().expect("digest lock") = Some((ch, 0));
                    continue;
                }
                if used_digest {
                    // Our cached nonce may have gone stale; forget it so the next call starts afresh.
                    *self.digest.lock().expect("digest lock") = None;
                }
                return Err(self.err(op, ErrorKind::NotAuthorized));
            }
            return match soap::parse_reply(&reply.body) {
                Ok(payload) if (200..300).contains(&reply.status) => Ok(payload),
                Ok(_) => Err(self.err(op, ErrorKind::Status(reply.status))),
                Err(ReplyError::Fault(f)) => Err(self.err(op, ReplyError::Fault(f).into())),
                Err(_) if !(200..300).contains(&reply.status) => {
                    Err(self.err(op, ErrorKind::Status(reply.status)))
                }
                Err(e) => Err(self.err(op, e.into())),
            };
        }
    }

    fn digest_header(&self, creds: &Credentials, url: &url::Url) -> Option<String> {
        let mut state = self.digest.lock().expect("digest lock");
        let (ch, nc) = state.as_mut()?;
        *nc += 1;
        let mut cnonce = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut cnonce);
        let cnonce: String = cnonce.iter().map(|b| format!("{b:02x}")).collect();
        Some(ch.authorization(creds, "POST", url.path(), *nc, &cnonce))
    }

    pub(super) fn err(&self, action: &str, kind: ErrorKind) -> OnvifError {
        OnvifError {
            host: self.host.clone(),
            action: action.to_owned(),
            kind,
        }
    }
}

/// `host:port`, with IPv6 addresses bracketed.
pub fn host_label(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Reads `GetSystemDateAndTimeResponse`. Missing or nonsensical fields give `utc: None`.
pub fn parse_system_date_and_time(r: &Element) -> SystemDateTime {
    let sdt = r.find("SystemDateAndTime");
    let num = |e: &Element, p: &[&str]| e.text_at(p).and_then(|t| t.parse::<i64>().ok());
    let utc = sdt.and_then(|s| s.child("UTCDateTime")).and_then(|u| {
        let date = time::Date::from_calendar_date(
            i32::try_from(num(u, &["Date", "Year"])?).ok()?,
            time::Month::try_from(u8::try_from(num(u, &["Date", "Month"])?).ok()?).ok()?,
            u8::try_from(num(u, &["Date", "Day"])?).ok()?,
        )
        .ok()?;
        let t = time::Time::from_hms(
            u8::try_from(num(u, &["Time", "Hour"])?).ok()?,
            u8::try_from(num(u, &["Time", "Minute"])?).ok()?,
            u8::try_from(num(u, &["Time", "Second"])?).ok()?,
        )
        .ok()?;
        Some(time::PrimitiveDateTime::new(date, t).assume_utc())
    });
    SystemDateTime {
        utc,
        date_time_type: sdt
            .and_then(|s| s.text_at(&["DateTimeType"]))
            .map(str::to_owned),
    }
}

/// Reads `GetDeviceInformationResponse`; absent fields are empty strings.
pub fn parse_device_information(r: &Element) -> DeviceInfo {
    let t = |n: &str| r.text_at(&[n]).unwrap_or_default().to_owned();
    DeviceInfo {
        manufacturer: t("Manufacturer"),
        model: t("Model"),
        firmware_version: t("FirmwareVersion"),
        serial_number: t("SerialNumber"),
        hardware_id: t("HardwareId"),
    }
}

fn parse_url(s: Option<&str>) -> Option<url::Url> {
    // XAddrs may list several addresses separated by spaces; take the first http one.
    s?.split_whitespace()
        .filter_map(|a| url::Url::parse(a).ok())
        .find(|u| matches!(u.scheme(), "http" | "https"))
}

/// Reads `GetServicesResponse`.
pub fn parse_services(r: &Element) -> ServiceAddrs {
    let mut out = ServiceAddrs::default();
    for s in r.children_named("Service") {
        let addr = parse_url(s.text_at(&["XAddr"]));
        match s.text_at(&["Namespace"]) {
            Some(NS_MEDIA) => out.media = out.media.take().or(addr),
            Some(NS_MEDIA2) => out.media2 = out.media2.take().or(addr),
            Some(NS_EVENTS) => out.events = out.events.take().or(addr),
            Some(NS_PTZ) => out.ptz = out.ptz.take().or(addr),
            _ => {}
        }
    }
    out
}

/// Reads `GetCapabilitiesResponse` (Media2 is not listed there).
pub fn parse_capabilities(r: &Element) -> ServiceAddrs {
    let caps = r.child("Capabilities");
    let xaddr = |n: &str| parse_url(caps.and_then(|c| c.text_at(&[n, "XAddr"])));
    ServiceAddrs {
        media: xaddr("Media"),
        media2: None,
        events: xaddr("Events"),
        ptz: xaddr("PTZ"),
    }
}

/// Reads Media1 or Media2 `GetProfilesResponse`. Profiles without a token are skipped.
pub fn parse_profiles(r: &Element) -> Vec<Profile> {
    r.children_named("Profiles")
        .filter_map(|p| {
            let token = p.attr("token")?.trim();
            if token.is_empty() {
                return None;
            }
            // Media1: VideoEncoderConfiguration; Media2: Configurations/VideoEncoder.
            let enc = p
                .child("VideoEncoderConfiguration")
                .or_else(|| p.path(&["Configurations", "VideoEncoder"]));
            let num = |path: &[&str]| {
                enc.and_then(|e| e.text_at(path))
                    .and_then(|t| t.parse::<u32>().ok())
            };
            let fps = enc.and_then(|e| {
                let rc = e.child("RateControl")?;
                rc.text_at(&["FrameRateLimit"])
                    .or_else(|| rc.attr("FrameRateLimit"))
                    .and_then(|t| t.trim().parse::<f32>().ok())
                    .filter(|f| f.is_finite())
            });
            Some(Profile {
                token: token.to_owned(),
                name: p.text_at(&["Name"]).unwrap_or(token).to_owned(),
                encoding: enc
                    .and_then(|e| e.text_at(&["Encoding"]))
                    .map(str::to_owned),
                width: num(&["Resolution", "Width"]),
                height: num(&["Resolution", "Height"]),
                fps,
            })
        })
        .collect()
}

/// Reads the URI from `GetStreamUriResponse`/`GetSnapshotUriResponse`
/// (Media1 `MediaUri/Uri`, Media2 `Uri`).
pub fn parse_uri(r: &Element) -> Option<String> {
    r.text_at(&["MediaUri", "Uri"])
        .or_else(|| r.text_at(&["Uri"]))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onvif::soap::parse_reply;

    fn body(inner: &str) -> Element {
        parse_reply(soap::envelope(None, inner).as_bytes()).unwrap()
    }

    #[test]
    fn device_information_with_missing_fields() {
        let d = parse_device_information(&body(
            "<tds:GetDeviceInformationResponse><tds:Manufacturer> Acme </tds:Manufacturer></tds:GetDeviceInformationResponse>",
        ));
        assert_eq!(d.manufacturer, "Acme");
        assert_eq!(d.model, "");
    }

    #[test]
    fn media1_and_media2_profiles() {
        let m1 = body(
            r#"<trt:GetProfilesResponse>
            <trt:Profiles token="main"><tt:Name>Main</tt:Name><tt:VideoEncoderConfiguration><tt:Encoding>H264</tt:Encoding>
              <tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution>
              <tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit></tt:RateControl></tt:VideoEncoderConfiguration></trt:Profiles>
            <trt:Profiles><tt:Name>no token</tt:Name></trt:Profiles>
            <trt:Profiles token="bare"/>
            </trt:GetProfilesResponse>"#,
        );
        let p = parse_profiles(&m1);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].token, "main");
        assert_eq!(
            (p[0].width, p[0].height, p[0].fps),
            (Some(1920), Some(1080), Some(25.0))
        );
        assert_eq!(p[1].name, "bare");
        assert_eq!(p[1].encoding, None);
        let m2 = body(
            r#"<tr2:GetProfilesResponse><tr2:Profiles token="p0" fixed="true"><tr2:Name>mainStream</tr2:Name>
            <tr2:Configurations><tr2:VideoEncoder token="v"><tt:Encoding>H265</tt:Encoding>
            <tt:Resolution><tt:Width>2560</tt:Width><tt:Height>1440</tt:Height></tt:Resolution>
            <tt:RateControl FrameRateLimit="20" BitrateLimit="4096"/></tr2:VideoEncoder></tr2:Configurations></tr2:Profiles></tr2:GetProfilesResponse>"#,
        );
        let p = parse_profiles(&m2);
        assert_eq!(p[0].encoding.as_deref(), Some("H265"));
        assert_eq!((p[0].width, p[0].fps), (Some(2560), Some(20.0)));
        assert!(p[0].matches("MAINSTREAM"));
    }

    #[test]
    fn uris_and_services() {
        assert_eq!(
            parse_uri(&body("<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>rtsp://h/1</tt:Uri></trt:MediaUri></trt:GetStreamUriResponse>")),
            Some("rtsp://h/1".into())
        );
        assert_eq!(parse_uri(&body("<tr2:GetStreamUriResponse><tr2:Uri>rtsp://h/2</tr2:Uri></tr2:GetStreamUriResponse>")), Some("rtsp://h/2".into()));
        assert_eq!(parse_uri(&body("<tr2:GetStreamUriResponse/>")), None);
        let s = parse_services(&body(&format!(
            "<tds:GetServicesResponse><tds:Service><tds:Namespace>{NS_MEDIA2}</tds:Namespace><tds:XAddr>http://10.0.0.5/onvif/media2 http://[fe80::1]/x</tds:XAddr></tds:Service>\
             <tds:Service><tds:Namespace>{NS_MEDIA}</tds:Namespace><tds:XAddr>not a url</tds:XAddr></tds:Service></tds:GetServicesResponse>"
        )));
        assert_eq!(s.media2.unwrap().as_str(), "http://10.0.0.5/onvif/media2");
        assert_eq!(s.media, None);
    }

    #[test]
    fn system_date_and_time() {
        let r = body("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:UTCDateTime>\
            <tt:Time><tt:Hour>7</tt:Hour><tt:Minute>5</tt:Minute><tt:Second>9</tt:Second></tt:Time>\
            <tt:Date><tt:Year>2024</tt:Year><tt:Month>2</tt:Month><tt:Day>29</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>");
        let d = parse_system_date_and_time(&r);
        assert_eq!(
            d.utc.unwrap(),
            time::macros::datetime!(2024-02-29 07:05:09 UTC)
        );
        assert_eq!(d.date_time_type.as_deref(), Some("NTP"));
        // Month 13 and friends are ignored rather than trusted.
        let bad = body("<x><SystemDateAndTime><UTCDateTime><Time><Hour>7</Hour><Minute>5</Minute><Second>9</Second></Time><Date><Year>2024</Year><Month>13</Month><Day>1</Day></Date></UTCDateTime></SystemDateAndTime></x>");
        assert_eq!(parse_system_date_and_time(&bad).utc, None);
    }
}
