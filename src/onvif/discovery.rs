//! WS-Discovery: send one Probe for `dn:NetworkVideoTransmitter` and collect
//! the ProbeMatch replies.
//!
//! By default the probe goes to the WS-Discovery multicast group (TTL 1: it
//! is a LAN protocol and must not be routed); `Target::Unicast` probes one
//! address, which is what the tests use. Replies come from anything on the
//! network, so they go through the same hostile-XML-safe parser as SOAP.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;

use super::xml::{self, Element, XmlError, MAX_DOCUMENT_BYTES};

/// The WS-Discovery multicast group and port.
pub const MULTICAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 3702);

/// Where to send the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The multicast group, out of the interface with this IPv4 address
    /// (`None`: the system's default multicast interface).
    Multicast(Option<Ipv4Addr>),
    /// One device.
    Unicast(SocketAddr),
}

/// One responder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeMatch {
    /// Where the reply came from.
    pub from: String,
    /// `EndpointReference/Address`, usually `urn:uuid:...`: stable per device.
    pub endpoint: String,
    /// `Types`, e.g. `dn:NetworkVideoTransmitter tds:Device`.
    pub types: Vec<String>,
    /// `Scopes` URIs.
    pub scopes: Vec<String>,
    /// Device service addresses.
    pub xaddrs: Vec<String>,
    /// From the `onvif://www.onvif.org/name/...` scope.
    pub name: Option<String>,
    /// From the `.../hardware/...` scope.
    pub hardware: Option<String>,
    /// From the `.../location/...` scope.
    pub location: Option<String>,
}

/// The Probe message with this `MessageID` (`urn:uuid:...`).
pub fn probe_message(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing""#,
            r#" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">"#,
            "<s:Header><a:Action s:mustUnderstand=\"1\">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>",
            "<a:MessageID>{}</a:MessageID>",
            "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>",
            "<a:To s:mustUnderstand=\"1\">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>",
            "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>"
        ),
        xml::escape(message_id)
    )
}

/// Why a datagram was not a usable reply to our probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryParseError {
    /// Refused by the XML parser.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Not a SOAP envelope with a body.
    #[error("not a WS-Discovery message")]
    NotSoap,
    /// `RelatesTo` names a different probe (someone else's, or a replay).
    #[error("reply to a different probe")]
    OtherProbe,
    /// No `ProbeMatch` in the body (e.g. a Hello, Bye or another Probe).
    #[error("no ProbeMatch")]
    NoMatch,
}

/// Parses one datagram. Accepts `ProbeMatches/ProbeMatch*` and a bare
/// `ProbeMatch` body (ipycam); matches without any XAddr are dropped, since
/// nothing can be done with them. `message_id`: our probe's id, checked
/// against `RelatesTo` when the reply carries one.
pub fn parse_probe_matches(
    datagram: &[u8],
    message_id: Option<&str>,
) -> Result<Vec<ProbeMatch>, DiscoveryParseError> {
    let root = xml::parse(datagram)?;
    if root.name != "Envelope" {
        return Err(DiscoveryParseError::NotSoap);
    }
    let body = root.child("Body").ok_or(DiscoveryParseError::NotSoap)?;
    if let (Some(want), Some(got)) = (message_id, root.text_at(&["Header", "RelatesTo"])) {
        if want != got {
            return Err(DiscoveryParseError::OtherProbe);
        }
    }
    let found = body.find_all("ProbeMatch");
    if found.is_empty() {
        return Err(DiscoveryParseError::NoMatch);
    }
    Ok(found.into_iter().filter_map(probe_match).collect())
}

fn probe_match(m: &Element) -> Option<ProbeMatch> {
    let words = |n: &str| -> Vec<String> {
        m.text_at(&[n])
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let xaddrs = words("XAddrs");
    if xaddrs.is_empty() {
        return None;
    }
    let scopes = words("Scopes");
    let scope = |kind: &str| {
        let prefix = format!("onvif://www.onvif.org/{kind}/");
        scopes
            .iter()
            .find_map(|s| s.strip_prefix(&prefix))
            .map(percent_decode)
    };
    Some(ProbeMatch {
        from: String::new(),
        endpoint: m
            .text_at(&["EndpointReference", "Address"])
            .unwrap_or_default()
            .to_owned(),
        types: words("Types"),
        name: scope("name"),
        hardware: scope("hardware"),
        location: scope("location"),
        scopes,
        xaddrs,
    })
}

fn percent_decode(s: &str) -> String {
    // Scope values are URI segments; vendors percent-encode spaces in names.
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Sends one probe and collects replies for `wait`. A unicast probe returns
/// as soon as its target has answered. Duplicate replies (cameras often answer
/// two or three times) are merged by endpoint address.
pub async fn discover(target: Target, wait: Duration) -> std::io::Result<Vec<ProbeMatch>> {
    let (sock, dest) = match target {
        Target::Unicast(addr) => {
            let bind: SocketAddr = if addr.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            (UdpSocket::bind(bind).await?, addr)
        }
        Target::Multicast(iface) => {
            let sock = UdpSocket::bind((iface.unwrap_or(Ipv4Addr::UNSPECIFIED), 0)).await?;
            sock.set_multicast_ttl_v4(1)?;
            if let Some(ip) = iface {
                set_multicast_if(&sock, ip)?;
            }
            (sock, SocketAddr::V4(MULTICAST))
        }
    };
    let message_id = format!("urn:uuid:{}", uuid_v4());
    sock.send_to(probe_message(&message_id).as_bytes(), dest)
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut found: Vec<ProbeMatch> = Vec::new();
    // A datagram cannot exceed 64 KiB, well under the XML limit.
    let mut buf = vec![0u8; 65_536.min(MAX_DOCUMENT_BYTES)];
    loop {
        let recv = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
        let (n, from) = match recv {
            Err(_) => break,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                // ICMP port unreachable from a unicast target: nobody listens there.
                break;
            }
            Ok(r) => r?,
        };
        match parse_probe_matches(&buf[..n], Some(&message_id)) {
            Ok(matches) => {
                for mut m in matches {
                    m.from = from.to_string();
                    if !found
                        .iter()
                        .any(|f| !m.endpoint.is_empty() && f.endpoint == m.endpoint)
                    {
                        found.push(m);
                    }
                }
                if matches!(target, Target::Unicast(a) if a.ip() == from.ip()) {
                    break;
                }
            }
            Err(e) => tracing::debug!(%from, error = %e, "ignoring WS-Discovery datagram"),
        }
    }
    Ok(found)
}

fn set_multicast_if(sock: &UdpSocket, ip: Ipv4Addr) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let addr = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    // SAFETY: valid fd owned by `sock`, and a properly sized in_addr option value.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&addr as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A random (version 4) UUID, formatted; good enough for MessageIDs.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPYCAM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
 <soap:Header><wsa:RelatesTo>urn:uuid:1</wsa:RelatesTo></soap:Header>
 <soap:Body><d:ProbeMatch>
  <d:EndpointReference><wsa:Address>urn:uuid:dev</wsa:Address></d:EndpointReference>
  <d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
  <d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Rig%20Cam onvif://www.onvif.org/hardware/M1 onvif://www.onvif.org/location/gate</d:Scopes>
  <d:XAddrs>http://127.0.0.1:8080/onvif/device_service</d:XAddrs>
 </d:ProbeMatch></soap:Body></soap:Envelope>"#;

    #[test]
    fn bare_probe_match_and_scopes() {
        let m = parse_probe_matches(IPYCAM.as_bytes(), Some("urn:uuid:1")).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].endpoint, "urn:uuid:dev");
        assert_eq!(m[0].name.as_deref(), Some("Rig Cam"));
        assert_eq!(m[0].hardware.as_deref(), Some("M1"));
        assert_eq!(m[0].location.as_deref(), Some("gate"));
        assert_eq!(
            m[0].xaddrs,
            vec!["http://127.0.0.1:8080/onvif/device_service"]
        );
    }

    #[test]
    fn wrapped_probe_matches_and_relates_to() {
        let doc = r#"<e:Envelope xmlns:e="x"><e:Body><ProbeMatches>
            <ProbeMatch><XAddrs>http://a/onvif/device_service http://b/x</XAddrs></ProbeMatch>
            <ProbeMatch><XAddrs/></ProbeMatch>
            <ProbeMatch><XAddrs>http://c/</XAddrs></ProbeMatch></ProbeMatches></e:Body></e:Envelope>"#;
        let m = parse_probe_matches(doc.as_bytes(), Some("urn:uuid:1")).unwrap();
        assert_eq!(m.len(), 2, "a match without XAddrs is dropped");
        assert_eq!(m[0].xaddrs.len(), 2);
        assert_eq!(
            parse_probe_matches(IPYCAM.as_bytes(), Some("urn:uuid:other")),
            Err(DiscoveryParseError::OtherProbe)
        );
    }

    #[test]
    fn hostile_or_unrelated_datagrams() {
        let probe = probe_message("urn:uuid:1");
        assert_eq!(
            parse_probe_matches(probe.as_bytes(), None),
            Err(DiscoveryParseError::NoMatch)
        );
        assert_eq!(
            parse_probe_matches(b"<x/>", None),
            Err(DiscoveryParseError::NotSoap)
        );
        assert!(matches!(
            parse_probe_matches(b"<!DOCTYPE a [<!ENTITY b 'c'>]><Envelope/>", None),
            Err(DiscoveryParseError::Xml(XmlError::Doctype))
        ));
        assert!(parse_probe_matches(&[0xff; 100], None).is_err());
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
