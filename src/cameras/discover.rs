//! "Find cameras" on the Camera setup page: one WS-Discovery run, each
//! responder described as far as it allows without credentials, and marked
//! when a configured camera already uses it.
//!
//! Replies come from anything on the LAN, so a device is only asked for its
//! model at a device-service address on the host that answered the probe: a
//! reply cannot make the server call some other host.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::CameraConfig;
use crate::onvif::{self, OnvifClient, ProbeMatch, Target};

/// How long an unauthenticated `GetDeviceInformation` may take per device.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(4);

/// One device that answered, as the page lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Device {
    /// `urn:uuid:...`, stable per device.
    pub endpoint: String,
    /// The address the reply came from.
    pub from: String,
    /// Host and port of the device service to configure (`onvif = { host, port }`);
    /// `None` when no device-service address is on the host that answered.
    pub host: Option<String>,
    /// See `host`.
    pub port: Option<u16>,
    /// From the name scope, else the model.
    pub name: Option<String>,
    /// From `GetDeviceInformation` when the device answers it without credentials.
    pub manufacturer: Option<String>,
    /// `GetDeviceInformation`'s model, else the hardware scope.
    pub model: Option<String>,
    /// From the location scope.
    pub location: Option<String>,
    /// Ids of configured cameras at this device's address.
    pub added: Vec<String>,
    /// An unused camera id made from the name, for the add form.
    pub suggested_id: String,
}

/// Probes `target` for `wait` and describes each responder; `configured`
/// marks the devices already added.
pub async fn find(
    target: Target,
    wait: Duration,
    configured: &[CameraConfig],
) -> std::io::Result<Vec<Device>> {
    let matches = onvif::discover(target, wait).await?;
    let described = futures::future::join_all(matches.iter().map(describe)).await;
    let mut taken: Vec<String> = configured.iter().map(|c| c.id.clone()).collect();
    let mut out = Vec::new();
    for (m, (addr, info)) in matches.iter().zip(described) {
        let model = info
            .as_ref()
            .map(|i| i.model.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| m.hardware.clone());
        let name = m.name.clone().or_else(|| model.clone());
        let suggested_id = onvif::cli::unique_id(
            &onvif::cli::slug(name.as_deref().unwrap_or("camera")),
            &taken,
        );
        taken.push(suggested_id.clone());
        out.push(Device {
            endpoint: m.endpoint.clone(),
            from: m.from.clone(),
            added: addr
                .as_ref()
                .map(|(h, p)| already_added(h, *p, configured))
                .unwrap_or_default(),
            host: addr.as_ref().map(|a| a.0.clone()),
            port: addr.as_ref().map(|a| a.1),
            name,
            manufacturer: info
                .as_ref()
                .map(|i| i.manufacturer.clone())
                .filter(|s| !s.is_empty()),
            model,
            location: m.location.clone(),
            suggested_id,
        });
    }
    Ok(out)
}

/// The device service on the responder's own host, and what it says about
/// itself without credentials (many cameras answer; others refuse, which is fine).
async fn describe(m: &ProbeMatch) -> (Option<(String, u16)>, Option<onvif::DeviceInfo>) {
    let Some(url) = own_xaddr(m) else {
        return (None, None);
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let client = OnvifClient::with_device_url(url, None);
    let info = tokio::time::timeout(DESCRIBE_TIMEOUT, client.device_information())
        .await
        .ok()
        .and_then(Result::ok);
    (Some((host, port)), info)
}

/// The first `http://` XAddr whose host is the address the reply came from.
fn own_xaddr(m: &ProbeMatch) -> Option<url::Url> {
    let from: IpAddr = m.from.parse::<std::net::SocketAddr>().ok()?.ip();
    m.xaddrs.iter().find_map(|x| {
        let u = url::Url::parse(x).ok()?;
        let host: IpAddr = u.host_str()?.trim_matches(['[', ']']).parse().ok()?;
        (u.scheme() == "http" && host == from).then_some(u)
    })
}

/// Configured cameras at `host`: by their `onvif` host and port, or by the
/// host of their RTSP URL (a camera added by URL is the same device).
fn already_added(host: &str, port: u16, configured: &[CameraConfig]) -> Vec<String> {
    configured
        .iter()
        .filter(|c| {
            let by_onvif = c
                .onvif
                .as_ref()
                .is_some_and(|o| o.host.trim_matches(['[', ']']) == host && o.port == port);
            let by_url = c
                .url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .is_some_and(|u| u.host_str().map(|h| h.trim_matches(['[', ']'])) == Some(host));
            by_onvif || by_url
        })
        .map(|c| c.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(from: &str, xaddrs: &[&str]) -> ProbeMatch {
        ProbeMatch {
            from: from.into(),
            xaddrs: xaddrs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_responders_own_address_is_contacted() {
        let own = m(
            "10.0.0.5:3702",
            &[
                "http://192.0.2.1/onvif/device_service",
                "http://10.0.0.5:8080/onvif/device_service",
            ],
        );
        assert_eq!(
            own_xaddr(&own).unwrap().as_str(),
            "http://10.0.0.5:8080/onvif/device_service"
        );
        assert_eq!(
            own_xaddr(&m("10.0.0.5:3702", &["http://192.0.2.1/x"])),
            None
        );
        assert_eq!(
            own_xaddr(&m("10.0.0.5:3702", &["https://10.0.0.5/x"])),
            None
        );
    }

    #[test]
    fn added_by_onvif_address_or_rtsp_host() {
        let cams = crate::config::Config::from_toml(
            "[[camera]]\nid = \"a\"\nonvif = { host = \"10.0.0.5\", port = 8080 }\n\
             [[camera]]\nid = \"b\"\nurl = \"rtsp://u:p@10.0.0.6:554/s\"\n\
             [[camera]]\nid = \"c\"\nonvif = { host = \"10.0.0.5\" }\n",
            std::path::Path::new("t.toml"),
            |_| None,
        )
        .unwrap()
        .cameras;
        assert_eq!(already_added("10.0.0.5", 8080, &cams), vec!["a"]);
        assert_eq!(already_added("10.0.0.5", 80, &cams), vec!["c"]);
        assert_eq!(already_added("10.0.0.6", 80, &cams), vec!["b"]);
        assert!(already_added("10.0.0.7", 80, &cams).is_empty());
    }
}
