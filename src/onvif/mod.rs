//! ONVIF: find cameras (WS-Discovery), ask them for their stream URIs
//! (device and media services), and audit whether they can reach the internet.
//!
//! Owns: SOAP over HTTP with WS-Security UsernameToken (and HTTP digest when
//! firmware insists), the XML parsing of everything cameras send, and
//! turning `onvif = { ... }` camera config into RTSP URLs for `ingest`.
//!
//! Must never: expand XML entities or read a DTD (camera replies and
//! discovery datagrams are untrusted), log a password, or change a camera's
//! settings (the audit only reads). Tests never send multicast.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod discovery;
pub mod http;
pub mod resolve;
pub mod soap;
pub mod xml;

pub use auth::Credentials;
pub use client::{DeviceInfo, ErrorKind, OnvifClient, OnvifError, Profile};
pub use discovery::{discover, ProbeMatch, Target};
pub use resolve::{resolve, ResolvedStreams, StreamSource};

/// Parses a reply the way the client does, and runs every reply parser on
/// it. The entry point for the fuzz target: any input must give a value or
/// an error, never a panic, within bounded memory.
pub fn parse_any(data: &[u8]) {
    let _ = discovery::parse_probe_matches(data, Some("urn:uuid:x"));
    if let Ok(r) = soap::parse_reply(data) {
        let _ = client::parse_device_information(&r);
        let _ = client::parse_profiles(&r);
        let _ = client::parse_uri(&r);
        let _ = client::parse_services(&r);
        let _ = client::parse_capabilities(&r);
        let _ = client::parse_system_date_and_time(&r);
        let _ = audit::parse_gateways(&r);
        let _ = audit::parse_dns(&r);
        let _ = audit::parse_ntp(&r);
        let _ = audit::parse_protocols(&r);
        let _ = audit::parse_hostname(&r);
    }
}
