//! SOAP 1.2 envelopes out, and replies in: the body's payload or a fault.
//!
//! Pure functions over strings and bytes, so every hostile-input case is
//! tested without a network.

use super::xml::{self, Element, XmlError};

/// SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// A SOAP fault, reduced to what an operator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `Code/Value` (SOAP 1.2) or `faultcode` (1.1), prefix removed.
    pub code: String,
    /// `Subcode/Value` chain, prefixes removed (`ter:NotAuthorized` → `NotAuthorized`).
    pub subcodes: Vec<String>,
    /// Human text from `Reason/Text` or `faultstring`.
    pub reason: String,
}

impl Fault {
    /// Whether the camera is saying our credentials are wrong or missing.
    ///
    /// ONVIF specifies `ter:NotAuthorized`; firmware also answers
    /// `wsse:FailedAuthentication` or only says so in the reason text
    /// (ipycam: "Sender not authorized").
    pub fn is_not_authorized(&self) -> bool {
        let codes = self.subcodes.iter().chain(std::iter::once(&self.code));
        let by_code = codes.into_iter().any(|c| {
            matches!(
                c.as_str(),
                "NotAuthorized"
                    | "FailedAuthentication"
                    | "InvalidSecurity"
                    | "InvalidSecurityToken"
            )
        });
        let reason = self.reason.to_ascii_lowercase();
        by_code || reason.contains("not authorized") || reason.contains("unauthorized")
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        for s in &self.subcodes {
            write!(f, "/{s}")?;
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// What a reply turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Refused by the XML parser (hostile or broken).
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Well-formed XML but not a SOAP envelope with a body.
    #[error("not a SOAP envelope: {0}")]
    NotSoap(String),
    /// The camera answered with a fault.
    #[error("SOAP fault {0}")]
    Fault(Fault),
}

/// Builds a SOAP 1.2 envelope around `body`, with an optional pre-rendered
/// header block (the WS-Security token). Namespaces used by our requests are
/// declared once here.
pub fn envelope(header: Option<&str>, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 1024);
    s.push_str(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#,
        r#" xmlns:tds="http://www.onvif.org/ver10/device/wsdl""#,
        r#" xmlns:trt="http://www.onvif.org/ver10/media/wsdl""#,
        r#" xmlns:tr2="http://www.onvif.org/ver20/media/wsdl""#,
        r#" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl""#,
        r#" xmlns:tev="http://www.onvif.org/ver10/events/wsdl""#,
        r#" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2""#,
        r#" xmlns:wsa="http://www.w3.org/2005/08/addressing""#,
        r#" xmlns:tt="http://www.onvif.org/ver10/schema">"#
    ));
    if let Some(h) = header {
        s.push_str("<s:Header>");
        s.push_str(h);
        s.push_str("</s:Header>");
    }
    s.push_str("<s:Body>");
    s.push_str(body);
    s.push_str("</s:Body></s:Envelope>");
    s
}

/// Parses a reply and returns the first element inside `Body`, or the fault.
pub fn parse_reply(bytes: &[u8]) -> Result<Element, ReplyError> {
    let mut root = xml::parse(bytes)?;
    if root.name != "Envelope" {
        return Err(ReplyError::NotSoap(format!(
            "root element is <{}>",
            root.name
        )));
    }
    let body_i = root
        .children
        .iter()
        .position(|c| c.name == "Body")
        .ok_or_else(|| ReplyError::NotSoap("no Body".into()))?;
    let mut body = root.children.swap_remove(body_i);
    if body.children.is_empty() {
        return Err(ReplyError::NotSoap("empty Body".into()));
    }
    let payload = body.children.swap_remove(0);
    if payload.name == "Fault" {
        return Err(ReplyError::Fault(parse_fault(&payload)));
    }
    Ok(payload)
}

/// Reads a `Fault` element in either SOAP 1.2 or 1.1 shape.
pub fn parse_fault(f: &Element) -> Fault {
    let strip = |s: &str| s.rsplit(':').next().unwrap_or(s).trim().to_owned();
    if let Some(code) = f.child("Code") {
        let mut subcodes = Vec::new();
        let mut cur = code.child("Subcode");
        // Bounded by the parser's depth limit.
        while let Some(sc) = cur {
            if let Some(v) = sc.text_at(&["Value"]) {
                subcodes.push(strip(v));
            }
            cur = sc.child("Subcode");
        }
        Fault {
            code: code.text_at(&["Value"]).map(strip).unwrap_or_default(),
            subcodes,
            reason: f
                .path(&["Reason", "Text"])
                .map(|t| t.text.trim().to_owned())
                .unwrap_or_default(),
        }
    } else {
        Fault {
            code: f.text_at(&["faultcode"]).map(strip).unwrap_or_default(),
            subcodes: Vec::new(),
            reason: f.text_at(&["faultstring"]).unwrap_or_default().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_first_body_child() {
        let r = parse_reply(
            br#"<e:Envelope xmlns:e="urn:whatever"><e:Header/><e:Body><x:GetFooResponse xmlns:x="y"><x:A>1</x:A></x:GetFooResponse></e:Body></e:Envelope>"#,
        )
        .unwrap();
        assert_eq!(r.name, "GetFooResponse");
        assert_eq!(r.text_at(&["A"]), Some("1"));
    }

    #[test]
    fn onvif_not_authorized_fault() {
        let doc = br#"<?xml version="1.0"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error">
<env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code>
<env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
        let ReplyError::Fault(f) = parse_reply(doc).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.code, "Sender");
        assert_eq!(f.subcodes, vec!["NotAuthorized".to_string()]);
        assert!(f.is_not_authorized());
        assert_eq!(f.to_string(), "Sender/NotAuthorized: Sender not Authorized");
    }

    #[test]
    fn other_faults_are_not_auth_and_soap11_is_read() {
        let doc = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>Action not supported</faultstring></s:Fault></s:Body></s:Envelope>"#;
        let ReplyError::Fault(f) = parse_reply(doc).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.code, "Client");
        assert_eq!(f.reason, "Action not supported");
        assert!(!f.is_not_authorized());
        // A fault with nothing in it still parses into something printable.
        let ReplyError::Fault(f) =
            parse_reply(b"<Envelope><Body><Fault/></Body></Envelope>").unwrap_err()
        else {
            panic!()
        };
        assert_eq!(f.code, "");
    }

    #[test]
    fn non_soap_replies_are_clear_errors() {
        assert!(matches!(
            parse_reply(b"<html><body>login</body></html>"),
            Err(ReplyError::NotSoap(_))
        ));
        assert!(matches!(
            parse_reply(b"<Envelope/>"),
            Err(ReplyError::NotSoap(_))
        ));
        assert!(matches!(
            parse_reply(b"<Envelope><Body/></Envelope>"),
            Err(ReplyError::NotSoap(_))
        ));
        assert!(matches!(
            parse_reply(b"<!DOCTYPE x><Envelope/>"),
            Err(ReplyError::Xml(XmlError::Doctype))
        ));
    }

    #[test]
    fn envelope_carries_header_and_body() {
        let e = envelope(Some("<h/>"), "<tds:GetDeviceInformation/>");
        let root = xml::parse(e.as_bytes()).unwrap();
        assert!(root.path(&["Header", "h"]).is_some());
        assert!(root.path(&["Body", "GetDeviceInformation"]).is_some());
    }
}
