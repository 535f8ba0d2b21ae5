//! Isolation audit: does a camera have a way to reach the internet?
//!
//! Councils buy a clean NVR so that cameras talk to nothing but the NVR. A
//! camera with a default gateway, DNS servers or an internet time server is
//! configured to reach beyond the LAN, whatever the firewall does today. We
//! read (never change) the camera's network settings and report each one; a
//! setting the camera will not disclose is reported as unknown, not as safe.

use std::net::IpAddr;

use serde::Serialize;

use super::client::{OnvifClient, OnvifError};
use super::xml::Element;

/// The result of one query: the value, or why the camera did not give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check<T> {
    /// The camera answered.
    Ok(T),
    /// The call failed (unsupported, refused, unreachable).
    Error(String),
}

impl<T> Check<T> {
    fn from_result(r: Result<T, OnvifError>) -> Self {
        match r {
            Ok(v) => Check::Ok(v),
            Err(e) => Check::Error(e.kind.to_string()),
        }
    }

    /// The value when the camera answered.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Check::Ok(v) => Some(v),
            Check::Error(_) => None,
        }
    }
}

/// DNS or NTP settings: whether they come from DHCP, and the servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerList {
    /// `FromDHCP`.
    pub from_dhcp: bool,
    /// Addresses or names, from DHCP and manual settings together (either may apply after a reboot).
    pub servers: Vec<String>,
}

/// One `NetworkProtocols` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Protocol {
    /// `HTTP`, `HTTPS` or `RTSP`.
    pub name: String,
    /// Whether it is switched on.
    pub enabled: bool,
    /// Ports it listens on.
    pub ports: Vec<u16>,
}

/// `GetHostname`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hostname {
    /// `FromDHCP`.
    pub from_dhcp: bool,
    /// The name, if set.
    pub name: Option<String>,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine for an isolated camera.
    Ok,
    /// Worth knowing.
    Info,
    /// A possible route out of the LAN.
    Warning,
    /// Could not be determined.
    Unknown,
}

/// One line of the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// What we found, in words an operator can act on.
    pub message: String,
}

/// Everything the audit learned about one camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsolationReport {
    /// Camera id from the config (or the address for ad-hoc audits).
    pub camera: String,
    /// `host:port` of the device service.
    pub host: String,
    /// Default gateways (`GetNetworkDefaultGateway`).
    pub gateways: Check<Vec<String>>,
    /// DNS servers (`GetDNS`).
    pub dns: Check<ServerList>,
    /// NTP servers (`GetNTP`).
    pub ntp: Check<ServerList>,
    /// `NTP` or `Manual` (`GetSystemDateAndTime`).
    pub time_source: Check<Option<String>>,
    /// Exposed protocols (`GetNetworkProtocols`).
    pub protocols: Check<Vec<Protocol>>,
    /// Hostname (`GetHostname`).
    pub hostname: Check<Hostname>,
    /// The verdict, line by line.
    pub findings: Vec<Finding>,
}

impl IsolationReport {
    /// Whether any finding is a possible route out of the LAN.
    pub fn has_route_out(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Warning)
    }
}

/// Reads the camera's network settings and judges them. Each query is
/// independent: one unsupported operation does not hide the others.
pub async fn audit(camera: &str, client: &OnvifClient) -> IsolationReport {
    let gateways = Check::from_result(
        client
            .device_call(
                "GetNetworkDefaultGateway",
                "<tds:GetNetworkDefaultGateway/>",
            )
            .await
            .map(|r| parse_gateways(&r)),
    );
    let dns = Check::from_result(
        client
            .device_call("GetDNS", "<tds:GetDNS/>")
            .await
            .map(|r| parse_dns(&r)),
    );
    let ntp = Check::from_result(
        client
            .device_call("GetNTP", "<tds:GetNTP/>")
            .await
            .map(|r| parse_ntp(&r)),
    );
    let time_source = Check::from_result(
        client
            .system_date_and_time(true)
            .await
            .map(|d| d.date_time_type),
    );
    let protocols = Check::from_result(
        client
            .device_call("GetNetworkProtocols", "<tds:GetNetworkProtocols/>")
            .await
            .map(|r| parse_protocols(&r)),
    );
    let hostname = Check::from_result(
        client
            .device_call("GetHostname", "<tds:GetHostname/>")
            .await
            .map(|r| parse_hostname(&r)),
    );
    let mut report = IsolationReport {
        camera: camera.to_owned(),
        host: client.host().to_owned(),
        gateways,
        dns,
        ntp,
        time_source,
        protocols,
        hostname,
        findings: Vec::new(),
    };
    report.findings = judge(&report);
    report
}

/// Audits one configured ONVIF camera; `None` for a camera without `onvif`.
pub async fn audit_camera(
    cam: &crate::config::CameraConfig,
) -> Option<Result<IsolationReport, OnvifError>> {
    let o = cam.onvif.as_ref()?;
    Some(
        match OnvifClient::connect(&o.host, o.port, super::resolve::credentials(o)).await {
            Ok(client) => Ok(audit(&cam.id, &client).await),
            Err(e) => Err(e),
        },
    )
}

/// Turns the raw settings into findings. Pure, so every branch is unit tested.
pub fn judge(r: &IsolationReport) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |level, message: String| out.push(Finding { level, message });
    match &r.gateways {
        Check::Ok(g) if g.is_empty() => push(Level::Ok, "no default gateway".into()),
        Check::Ok(g) => push(
            Level::Warning,
            format!(
                "default gateway {}: a route off the LAN may exist",
                g.join(", ")
            ),
        ),
        Check::Error(e) => push(Level::Unknown, format!("default gateway unknown ({e})")),
    }
    match &r.dns {
        Check::Ok(d) if d.servers.is_empty() && !d.from_dhcp => {
            push(Level::Ok, "no DNS servers".into())
        }
        Check::Ok(d) if d.servers.is_empty() => push(
            Level::Info,
            "DNS from DHCP, none assigned at the moment".into(),
        ),
        Check::Ok(d) => push(
            Level::Warning,
            format!(
                "DNS servers {}: the camera can resolve internet names",
                d.servers.join(", ")
            ),
        ),
        Check::Error(e) => push(Level::Unknown, format!("DNS settings unknown ({e})")),
    }
    match &r.ntp {
        Check::Ok(n) if n.servers.is_empty() => push(Level::Ok, "no NTP servers".into()),
        Check::Ok(n) => {
            let outside: Vec<&str> = n
                .servers
                .iter()
                .filter(|s| !is_local(s))
                .map(String::as_str)
                .collect();
            if outside.is_empty() {
                push(
                    Level::Info,
                    format!("syncs time from the LAN ({})", n.servers.join(", ")),
                );
            } else {
                push(
                    Level::Warning,
                    format!("syncs time from outside the LAN ({})", outside.join(", ")),
                );
            }
        }
        Check::Error(e) => push(Level::Unknown, format!("NTP settings unknown ({e})")),
    }
    match &r.protocols {
        Check::Ok(p) => {
            let on: Vec<String> = p
                .iter()
                .filter(|p| p.enabled)
                .map(|p| {
                    let ports: Vec<String> = p.ports.iter().map(u16::to_string).collect();
                    format!("{} ({})", p.name, ports.join(", "))
                })
                .collect();
            push(
                Level::Info,
                if on.is_empty() {
                    "no protocols reported enabled".into()
                } else {
                    format!("exposes {}", on.join(", "))
                },
            );
        }
        Check::Error(e) => push(Level::Unknown, format!("exposed protocols unknown ({e})")),
    }
    out
}

/// Whether an address or name stays on the LAN: private, loopback,
/// link-local, shared (CGNAT) and unique-local addresses. A DNS name
/// (`pool.ntp.org`) counts as outside: it is usually an internet server.
pub fn is_local(server: &str) -> bool {
    match server
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(a)) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64)
        }
        Ok(IpAddr::V6(a)) => {
            a.is_loopback()
                || (a.segments()[0] & 0xfe00) == 0xfc00
                || (a.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

fn addresses(e: &Element) -> Vec<String> {
    e.children
        .iter()
        .filter(|c| matches!(c.name.as_str(), "IPv4Address" | "IPv6Address" | "DNSname"))
        .map(|c| c.text.trim().to_owned())
        .filter(|t| !t.is_empty() && t != "0.0.0.0" && t != "::")
        .collect()
}

fn truthy(e: Option<&str>) -> bool {
    e.is_some_and(|t| t.eq_ignore_ascii_case("true") || t == "1")
}

/// Reads `GetNetworkDefaultGatewayResponse`; `0.0.0.0` means none.
pub fn parse_gateways(r: &Element) -> Vec<String> {
    r.find("NetworkGateway").map(addresses).unwrap_or_default()
}

fn server_list(info: Option<&Element>, lists: [&str; 2]) -> ServerList {
    let Some(info) = info else {
        return ServerList::default();
    };
    let mut servers = Vec::new();
    for l in lists {
        for e in info.children_named(l) {
            for a in addresses(e) {
                if !servers.contains(&a) {
                    servers.push(a);
                }
            }
        }
    }
    ServerList {
        from_dhcp: truthy(info.text_at(&["FromDHCP"])),
        servers,
    }
}

/// Reads `GetDNSResponse`.
pub fn parse_dns(r: &Element) -> ServerList {
    server_list(r.find("DNSInformation"), ["DNSFromDHCP", "DNSManual"])
}

/// Reads `GetNTPResponse`.
pub fn parse_ntp(r: &Element) -> ServerList {
    server_list(r.find("NTPInformation"), ["NTPFromDHCP", "NTPManual"])
}

/// Reads `GetNetworkProtocolsResponse`.
pub fn parse_protocols(r: &Element) -> Vec<Protocol> {
    r.children_named("NetworkProtocols")
        .map(|p| Protocol {
            name: p.text_at(&["Name"]).unwrap_or("?").to_owned(),
            enabled: truthy(p.text_at(&["Enabled"])),
            ports: p
                .children_named("Port")
                .filter_map(|x| x.text.trim().parse().ok())
                .collect(),
        })
        .collect()
}

/// Reads `GetHostnameResponse`.
pub fn parse_hostname(r: &Element) -> Hostname {
    let h = r.find("HostnameInformation");
    Hostname {
        from_dhcp: truthy(h.and_then(|h| h.text_at(&["FromDHCP"]))),
        name: h.and_then(|h| h.text_at(&["Name"])).map(str::to_owned),
    }
}

impl std::fmt::Display for IsolationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.has_route_out() {
            "POSSIBLE ROUTE OUT"
        } else if self.findings.iter().any(|f| f.level == Level::Unknown) {
            "incomplete (camera withheld some settings)"
        } else {
            "isolated"
        };
        writeln!(f, "camera {} ({}): {verdict}", self.camera, self.host)?;
        if let Check::Ok(h) = &self.hostname {
            if let Some(n) = &h.name {
                writeln!(
                    f,
                    "  hostname: {n}{}",
                    if h.from_dhcp { " (from DHCP)" } else { "" }
                )?;
            }
        }
        if let Check::Ok(Some(t)) = &self.time_source {
            writeln!(f, "  clock: {t}")?;
        }
        for finding in &self.findings {
            let tag = match finding.level {
                Level::Ok => "ok  ",
                Level::Info => "info",
                Level::Warning => "WARN",
                Level::Unknown => "??  ",
            };
            writeln!(f, "  [{tag}] {}", finding.message)?;
        }
        Ok(())
    }
}

/// Parses a saved report body; used by the unit tests to drive the parsers
/// from SOAP text.
#[cfg(test)]
fn payload(xml: &str) -> Element {
    super::soap::parse_reply(super::soap::envelope(None, xml).as_bytes()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        gw: Check<Vec<String>>,
        dns: Check<ServerList>,
        ntp: Check<ServerList>,
    ) -> IsolationReport {
        let mut r = IsolationReport {
            camera: "c".into(),
            host: "h:80".into(),
            gateways: gw,
            dns,
            ntp,
            time_source: Check::Ok(Some("NTP".into())),
            protocols: Check::Ok(vec![]),
            hostname: Check::Error("x".into()),
            findings: vec![],
        };
        r.findings = judge(&r);
        r
    }

    #[test]
    fn parses_network_settings() {
        let g = parse_gateways(&payload("<tds:GetNetworkDefaultGatewayResponse><tds:NetworkGateway><tt:IPv4Address>192.168.1.1</tt:IPv4Address><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tds:NetworkGateway></tds:GetNetworkDefaultGatewayResponse>"));
        assert_eq!(g, vec!["192.168.1.1"]);
        let d = parse_dns(&payload("<tds:GetDNSResponse><tds:DNSInformation><tt:FromDHCP>false</tt:FromDHCP><tt:DNSManual><tt:Type>IPv4</tt:Type><tt:IPv4Address>8.8.8.8</tt:IPv4Address></tt:DNSManual><tt:DNSManual><tt:Type>IPv4</tt:Type><tt:IPv4Address>8.8.8.8</tt:IPv4Address></tt:DNSManual></tds:DNSInformation></tds:GetDNSResponse>"));
        assert_eq!(
            d,
            ServerList {
                from_dhcp: false,
                servers: vec!["8.8.8.8".into()]
            }
        );
        let n = parse_ntp(&payload("<tds:GetNTPResponse><tds:NTPInformation><tt:FromDHCP>true</tt:FromDHCP><tt:NTPFromDHCP><tt:Type>DNS</tt:Type><tt:DNSname>pool.ntp.org</tt:DNSname></tt:NTPFromDHCP></tds:NTPInformation></tds:GetNTPResponse>"));
        assert_eq!(
            n,
            ServerList {
                from_dhcp: true,
                servers: vec!["pool.ntp.org".into()]
            }
        );
        let p = parse_protocols(&payload("<tds:GetNetworkProtocolsResponse><tds:NetworkProtocols><tt:Name>HTTP</tt:Name><tt:Enabled>true</tt:Enabled><tt:Port>80</tt:Port><tt:Port>8080</tt:Port></tds:NetworkProtocols><tds:NetworkProtocols><tt:Name>HTTPS</tt:Name><tt:Enabled>false</tt:Enabled><tt:Port>443</tt:Port></tds:NetworkProtocols></tds:GetNetworkProtocolsResponse>"));
        assert_eq!(p[0].ports, vec![80, 8080]);
        assert!(!p[1].enabled);
        let h = parse_hostname(&payload("<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP><tt:Name>gate-cam</tt:Name></tds:HostnameInformation></tds:GetHostnameResponse>"));
        assert_eq!(h.name.as_deref(), Some("gate-cam"));
        // Empty replies are "nothing configured", not errors.
        assert!(parse_gateways(&payload("<tds:GetNetworkDefaultGatewayResponse/>")).is_empty());
    }

    #[test]
    fn verdicts() {
        let isolated = report(
            Check::Ok(vec![]),
            Check::Ok(ServerList::default()),
            Check::Ok(ServerList {
                from_dhcp: false,
                servers: vec!["10.0.0.2".into()],
            }),
        );
        assert!(!isolated.has_route_out(), "{isolated}");
        let leaky = report(
            Check::Ok(vec!["192.168.1.1".into()]),
            Check::Ok(ServerList {
                from_dhcp: false,
                servers: vec!["8.8.8.8".into()],
            }),
            Check::Ok(ServerList {
                from_dhcp: false,
                servers: vec!["pool.ntp.org".into(), "10.0.0.2".into()],
            }),
        );
        assert!(leaky.has_route_out());
        let text = leaky.to_string();
        assert!(
            text.contains("POSSIBLE ROUTE OUT")
                && text.contains("pool.ntp.org")
                && !text.contains("10.0.0.2)"),
            "{text}"
        );
        let unknown = report(
            Check::Error("not supported".into()),
            Check::Ok(ServerList::default()),
            Check::Ok(ServerList::default()),
        );
        assert!(!unknown.has_route_out());
        assert!(unknown.to_string().contains("incomplete"));
    }

    #[test]
    fn local_addresses() {
        for a in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "[::1]",
        ] {
            assert!(is_local(a), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "2001:4860::8888",
            "time.google.com",
            "100.128.0.1",
        ] {
            assert!(!is_local(a), "{a}");
        }
    }
}
