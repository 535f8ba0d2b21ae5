//! `[alarms]`: when a condition becomes an alarm, and where alarms are sent.
//! Delivery goes only to the LAN: an SMTP relay and a webhook the operator
//! names, checked here (addresses written as IPs) and again when sending
//! (names resolved then), so a typo cannot send camera names off site.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[alarms]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsConfig {
    /// A camera that has not streamed for this long raises `camera_offline`.
    #[serde(default = "default_offline_after")]
    pub offline_after_seconds: u32,
    /// A camera that streams but records nothing (no key frame to start a
    /// segment at) for this long raises `recording_stopped`.
    #[serde(default = "default_recording_after")]
    pub recording_after_seconds: u32,
    /// The storage volume's free space under `[storage] min_free_bytes` for this
    /// long, through several retention passes, raises `disk_low`.
    #[serde(default = "default_disk_low_after")]
    pub disk_low_after_seconds: u32,
    /// The server clock not synchronised by NTP for this long raises
    /// `clock_unsynced`; the grace lets NTP settle after a boot.
    #[serde(default = "default_clock_unsynced_after")]
    pub clock_unsynced_after_seconds: u32,
    /// `[alarms.email]`: e-mail through an SMTP relay on the LAN.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// `[alarms.webhook]`: an HTTP POST of JSON to a receiver on the LAN.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        Self {
            offline_after_seconds: default_offline_after(),
            recording_after_seconds: default_recording_after(),
            disk_low_after_seconds: default_disk_low_after(),
            clock_unsynced_after_seconds: default_clock_unsynced_after(),
            email: None,
            webhook: None,
        }
    }
}

fn default_offline_after() -> u32 {
    60
}
fn default_recording_after() -> u32 {
    60
}
/// Four retention passes (every 30 s): a volume that stays under its floor that long
/// is not a moment between a segment written and retention catching up.
fn default_disk_low_after() -> u32 {
    120
}
/// Longer than chrony or systemd-timesyncd take to synchronise after a boot.
fn default_clock_unsynced_after() -> u32 {
    900
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// STARTTLS is required; the relay's certificate must verify.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465); the certificate must verify.
    Tls,
    /// Plain SMTP (a relay on the LAN that offers no TLS); never with credentials.
    None,
}

/// `[alarms.email]`. `Debug` hides the password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The relay's host name or address (on the LAN).
    pub relay: String,
    /// SMTP port; default 587 with STARTTLS, 25 without.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS, SMTPS) or `none`.
    #[serde(default)]
    pub security: Security,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP AUTH user, if the relay wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password (`CLEANNVR_ALARMS_SMTP_PASSWORD` overrides).
    #[serde(default)]
    pub password: Option<String>,
    /// A PEM CA certificate to trust for the relay (an internal CA), besides
    /// the system's; or the relay's own self-signed certificate, which pins it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Deadline for one delivery attempt.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Further attempts after a failed one (1 s, 2 s, 4 s... apart).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

impl EmailConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        })
    }
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("relay", &self.relay)
            .field("port", &self.port())
            .field("security", &self.security)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// `[alarms.webhook]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host[:port]/path` on the LAN.
    pub url: String,
    /// Deadline for one attempt (connect, send, read the status).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Further attempts after a failed one (1 s, 2 s, 4 s... apart).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout() -> u32 {
    10
}
fn default_retries() -> u32 {
    3
}

/// Whether `ip` is on the LAN: loopback, RFC 1918, link-local, IPv6 unique-local.
pub fn is_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_lan(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// `host` as an IP address, if it is written as one (brackets allowed).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

impl AlarmsConfig {
    /// Checks the section; `Err((field, message))` names what to fix.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((format!("alarms.{f}"), m));
        for (f, v) in [
            ("offline_after_seconds", self.offline_after_seconds),
            ("recording_after_seconds", self.recording_after_seconds),
            ("disk_low_after_seconds", self.disk_low_after_seconds),
            (
                "clock_unsynced_after_seconds",
                self.clock_unsynced_after_seconds,
            ),
        ] {
            if !(1..=86_400).contains(&v) {
                return bad(f, format!("{v} is outside 1..=86400"));
            }
        }
        if let Some(e) = &self.email {
            if e.relay.trim().is_empty() {
                return bad("email.relay", "name the SMTP relay on the LAN".into());
            }
            if literal_ip(&e.relay).is_some_and(|ip| !is_lan(ip)) {
                return bad(
                    "email.relay",
                    format!(
                        "{} is not a LAN address: alarms go only to a relay on the local network",
                        e.relay
                    ),
                );
            }
            if e.from.parse::<lettre::message::Mailbox>().is_err() {
                return bad(
                    "email.from",
                    format!("{:?} is not an e-mail address", e.from),
                );
            }
            if e.to.is_empty() {
                return bad("email.to", "name at least one recipient".into());
            }
            for t in &e.to {
                if t.parse::<lettre::message::Mailbox>().is_err() {
                    return bad("email.to", format!("{t:?} is not an e-mail address"));
                }
            }
            if e.username.is_some() != e.password.is_some() {
                return bad(
                    "email.username",
                    "give both username and password, or neither".into(),
                );
            }
            if e.security == Security::None && e.username.is_some() {
                return bad(
                    "email.security",
                    "`none` would send the relay's password in clear text: use `starttls` or `tls`"
                        .into(),
                );
            }
            if e.security == Security::None && e.ca_file.is_some() {
                return bad(
                    "email.ca_file",
                    "only used with `security = \"starttls\"` or `\"tls\"`".into(),
                );
            }
            check_attempts("email", e.timeout_seconds, e.retries)?;
        }
        if let Some(w) = &self.webhook {
            let u = match url::Url::parse(&w.url) {
                Ok(u) => u,
                Err(e) => return bad("webhook.url", format!("not a URL: {e}")),
            };
            if u.scheme() != "http" || u.host_str().is_none() {
                return bad(
                    "webhook.url",
                    "must be http://host[:port]/path (a receiver on the LAN)".into(),
                );
            }
            if !u.username().is_empty() || u.password().is_some() {
                return bad(
                    "webhook.url",
                    "credentials in the URL would be sent in clear text".into(),
                );
            }
            if literal_ip(u.host_str().unwrap_or("")).is_some_and(|ip| !is_lan(ip)) {
                return bad(
                    "webhook.url",
                    "not a LAN address: alarms go only to a receiver on the local network".into(),
                );
            }
            check_attempts("webhook", w.timeout_seconds, w.retries)?;
        }
        Ok(())
    }
}

fn check_attempts(section: &str, timeout: u32, retries: u32) -> Result<(), (String, String)> {
    if !(1..=120).contains(&timeout) {
        return Err((
            format!("alarms.{section}.timeout_seconds"),
            format!("{timeout} is outside 1..=120"),
        ));
    }
    if retries > 10 {
        return Err((
            format!("alarms.{section}.retries"),
            format!("{retries} is more than 10"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<(), (String, String)> {
        let c: AlarmsConfig = toml::from_str(t).unwrap();
        c.validate()
    }

    #[test]
    fn lan_addresses() {
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_lan(ok.parse().unwrap()), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!is_lan(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn a_good_section_passes() {
        parse(
            "offline_after_seconds = 30\n[email]\nrelay = \"mail.council.lan\"\nfrom = \"nvr@council.lan\"\nto = [\"cctv@council.lan\"]\nusername = \"nvr\"\npassword = \"pw\"\n[webhook]\nurl = \"http://10.0.0.5:8080/hook\"\n",
        )
        .unwrap();
    }

    #[test]
    fn bad_sections_name_the_field() {
        let cases = [
            ("offline_after_seconds = 0", "alarms.offline_after_seconds"),
            ("disk_low_after_seconds = 0", "alarms.disk_low_after_seconds"),
            ("clock_unsynced_after_seconds = 86401", "alarms.clock_unsynced_after_seconds"),
            ("[email]\nrelay = \"8.8.8.8\"\nfrom = \"a@b.lan\"\nto = [\"c@d.lan\"]", "alarms.email.relay"),
            ("[email]\nrelay = \"r\"\nfrom = \"nope\"\nto = [\"c@d.lan\"]", "alarms.email.from"),
            ("[email]\nrelay = \"r\"\nfrom = \"a@b.lan\"\nto = []", "alarms.email.to"),
            ("[email]\nrelay = \"r\"\nfrom = \"a@b.lan\"\nto = [\"c@d.lan\"]\nsecurity = \"none\"\nusername = \"u\"\npassword = \"p\"", "alarms.email.security"),
            ("[email]\nrelay = \"r\"\nfrom = \"a@b.lan\"\nto = [\"c@d.lan\"]\nusername = \"u\"", "alarms.email.username"),
            ("[webhook]\nurl = \"https://10.0.0.1/x\"", "alarms.webhook.url"),
            ("[webhook]\nurl = \"http://1.1.1.1/x\"", "alarms.webhook.url"),
            ("[webhook]\nurl = \"http://u:p@10.0.0.1/x\"", "alarms.webhook.url"),
            ("[webhook]\nurl = \"http://10.0.0.1/x\"\nretries = 99", "alarms.webhook.retries"),
        ];
        for (t, field) in cases {
            let (f, m) = parse(t).expect_err(t);
            assert_eq!(f, field, "{t}: {m}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c: AlarmsConfig = toml::from_str(
            "[email]\nrelay = \"r\"\nfrom = \"a@b.lan\"\nto = [\"c@d.lan\"]\nusername = \"u\"\npassword = \"hunter2-secret\"",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
