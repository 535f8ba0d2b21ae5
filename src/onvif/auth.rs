//! Camera credentials on the wire: WS-Security UsernameToken with
//! PasswordDigest (what ONVIF specifies) and HTTP digest (what some firmware
//! demands instead). The password itself is never sent and never logged.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;

use super::xml::escape;

/// ONVIF username and password. `Debug` hides the password so a stray
/// `{:?}` in a log line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `PasswordDigest = Base64(SHA1(nonce + created + password))` (WS-Security
/// UsernameToken Profile 1.0 §3.1), with the raw (not base64) nonce bytes.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Renders the `wsse:Security` header block for one request. `created` is
/// the camera's idea of now (our clock plus the measured offset), because
/// cameras reject tokens more than a few minutes off their own clock.
pub fn username_token(creds: &Credentials, nonce: &[u8], created: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        concat!(
            r#"<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd""#,
            r#" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            "<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>",
            r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{digest}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{nonce}</wsse:Nonce>"#,
            "<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ),
        user = escape(&creds.username),
        digest = password_digest(nonce, created, &creds.password),
        nonce = b64.encode(nonce),
        created = created,
    )
}

/// Formats a UTC instant the way WS-Security wants it (`2024-05-01T12:00:00Z`).
pub fn created_timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A parsed `WWW-Authenticate: Digest ...` challenge (RFC 7616, MD5 only:
/// that is what camera firmware offers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back when present.
    pub opaque: Option<String>,
    /// Whether `qop=auth` was offered (otherwise the RFC 2069 form is used).
    pub qop_auth: bool,
    /// `algorithm`, if stated (we support `MD5` and absent).
    pub algorithm: Option<String>,
}

impl DigestChallenge {
    /// Parses one header value; `None` for Basic or anything unusable.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim();
        let (scheme, params) = rest.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = parse_auth_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let algorithm = get("algorithm");
        if let Some(a) = &algorithm {
            if !a.eq_ignore_ascii_case("md5") {
                return None;
            }
        }
        Some(Self {
            realm: get("realm")?,
            nonce: get("nonce")?,
            opaque: get("opaque"),
            qop_auth: get("qop")
                .is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth"))),
            algorithm,
        })
    }

    /// The `Authorization` header value for one request.
    pub fn authorization(
        &self,
        creds: &Credentials,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let md5 = |s: String| {
            let mut h = Md5::new();
            h.update(s.as_bytes());
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let ha1 = md5(format!(
            "{}:{}:{}",
            creds.username, self.realm, creds.password
        ));
        let ha2 = md5(format!("{method}:{uri}"));
        let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = format!(
            r#"Digest username="{}", realm="{}", nonce="{}", uri="{}""#,
            q(&creds.username),
            q(&self.realm),
            q(&self.nonce),
            q(uri)
        );
        if self.qop_auth {
            let nc = format!("{nc:08x}");
            let response = md5(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce));
            out.push_str(&format!(
                r#", qop=auth, nc={nc}, cnonce="{}", response="{response}""#,
                q(cnonce)
            ));
        } else {
            let response = md5(format!("{ha1}:{}:{ha2}", self.nonce));
            out.push_str(&format!(r#", response="{response}""#));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(r#", opaque="{}""#, q(o)));
        }
        if self.algorithm.is_some() {
            out.push_str(", algorithm=MD5");
        }
        out
    }
}

/// Splits `k=v, k="quoted, v"` pairs; tolerant of the spacing firmware uses.
fn parse_auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_digest_matches_reference() {
        // Reference computed with ipycam's compute_password_digest (Python hashlib):
        // base64(sha1(b64decode("LKqI6G/AikKCQrN0zqZFlg==") + "2010-09-16T07:50:45Z" + "userpassword"))
        let nonce = base64::engine::general_purpose::STANDARD
            .decode("LKqI6G/AikKCQrN0zqZFlg==")
            .unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn token_escapes_username_and_hides_password() {
        let c = Credentials {
            username: "a<b".into(),
            password: "hunter2".into(),
        };
        let t = username_token(&c, b"0123456789abcdef", "2024-01-01T00:00:00Z");
        assert!(t.contains("<wsse:Username>a&lt;b</wsse:Username>"));
        assert!(!t.contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        crate::onvif::xml::parse(t.as_bytes()).unwrap();
    }

    #[test]
    fn created_is_utc_seconds() {
        let t = time::macros::datetime!(2024-05-01 14:03:09.5 +02:00);
        assert_eq!(created_timestamp(t), "2024-05-01T12:03:09Z");
    }

    #[test]
    fn digest_rfc2617_example() {
        // RFC 2617 §3.5.
        let ch = DigestChallenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert!(ch.qop_auth);
        let c = Credentials {
            username: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let h = ch.authorization(&c, "GET", "/dir/index.html", 1, "0a4f113b");
        assert!(
            h.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{h}"
        );
        assert!(h.contains("nc=00000001"));
        assert!(h.contains(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#));
    }

    #[test]
    fn digest_parse_rejects_basic_and_unknown_algorithms() {
        assert!(DigestChallenge::parse(r#"Basic realm="x""#).is_none());
        assert!(
            DigestChallenge::parse(r#"Digest realm="x", nonce="n", algorithm=SHA-256"#).is_none()
        );
        assert!(DigestChallenge::parse(r#"Digest realm="x""#).is_none());
        let ch = DigestChallenge::parse(r#"Digest realm="x",nonce="n",algorithm=MD5"#).unwrap();
        assert!(!ch.qop_auth);
    }
}
