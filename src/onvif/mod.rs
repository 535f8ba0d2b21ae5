//! ONVIF: find cameras (WS-Discovery), ask them for their stream URIs
//! (device and media services), steer PTZ cameras, subscribe to their
//! events, and audit whether they
//! can reach the internet.
//!
//! Owns: SOAP over HTTP with WS-Security UsernameToken (and HTTP digest when
//! firmware insists), the XML parsing of everything cameras send, and
//! turning `onvif = { ... }` camera config into RTSP URLs for `ingest`.
//!
//! Must never: expand XML entities or read a DTD (camera replies and
//! discovery datagrams are untrusted), log a password, or change a camera's
//! settings (the audit only reads; PTZ moves and presets happen only on an
//! operator's command). Tests never send multicast.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod discovery;
pub mod event_poll;
pub mod events;
pub mod http;
pub mod isolation_record;
pub mod ptz;
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
        let _ = ptz::parse_status(&r);
        let _ = ptz::parse_presets(&r);
        let _ = events::parse_subscription(&r);
        let _ = events::parse_notifications(&r);
        if let Some(set) = r.child("TopicSet") {
            let _ = event_poll::property_topics(set);
        }
        let _ = event_poll::parse_current_message(&r, "tns1:x");
    }
    // An RTSP metadata track's document is bare XML, not SOAP.
    if let Ok(doc) = xml::parse(data) {
        let _ = events::parse_notifications(&doc);
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    /// A cheap stand-in for the fuzz target that runs in every `cargo test`:
    /// mutated real replies (bytes flipped, spliced, truncated, nested) must
    /// never panic. The real fuzzing lives in `fuzz/`.
    #[test]
    fn mutated_replies_never_panic() {
        let seeds: Vec<Vec<u8>> = vec![
            super::soap::envelope(
                None,
                r#"<trt:GetProfilesResponse><trt:Profiles token="a"><tt:Name>n</tt:Name><tt:VideoEncoderConfiguration><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>1</tt:Width><tt:Height>2</tt:Height></tt:Resolution><tt:RateControl FrameRateLimit="5"><tt:FrameRateLimit>NaN</tt:FrameRateLimit></tt:RateControl></tt:VideoEncoderConfiguration></trt:Profiles></trt:GetProfilesResponse>"#,
            )
            .into_bytes(),
            super::soap::envelope(None, "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value><s:Subcode><s:Value>x</s:Value></s:Subcode></s:Subcode></s:Code></s:Fault>").into_bytes(),
            super::discovery::probe_message("urn:uuid:x").replace("d:Probe>", "d:ProbeMatch>").replace("</d:Types>", "</d:Types><d:XAddrs>http://a/</d:XAddrs><d:Scopes>onvif://www.onvif.org/name/%ZZ</d:Scopes>").into_bytes(),
            super::soap::envelope(None, "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:UTCDateTime><tt:Time><tt:Hour>99</tt:Hour><tt:Minute>-1</tt:Minute><tt:Second>0</tt:Second></tt:Time><tt:Date><tt:Year>99999999999</tt:Year><tt:Month>0</tt:Month><tt:Day>0</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>").into_bytes(),
        ];
        let tokens: [&[u8]; 8] = [
            b"<",
            b">",
            b"&",
            b"&#x0;",
            b"<!DOCTYPE",
            b"<![CDATA[",
            b"</",
            b"\xff",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for i in 0..20_000 {
            let mut d = seeds[i % seeds.len()].clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..=d.len());
                match rng.gen_range(0..4) {
                    0 => d.truncate(at),
                    1 if at < d.len() => d[at] = rng.gen(),
                    2 => {
                        let t = tokens[rng.gen_range(0..tokens.len())];
                        d.splice(at..at, t.iter().copied());
                    }
                    _ => {
                        let other = &seeds[rng.gen_range(0..seeds.len())];
                        let from = rng.gen_range(0..other.len());
                        d.splice(at..at, other[from..].iter().copied());
                    }
                }
            }
            super::parse_any(&d);
        }
    }
}
