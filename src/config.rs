//! Configuration: the TOML file an operator writes, validated before anything
//! starts. A bad config names the field and the line, and nothing runs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Web server settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where and how recordings are stored.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Cameras to record, in `[[camera]]` tables.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
    /// Login policy.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[alarms]`: thresholds, and e-mail and webhook delivery on the LAN.
    #[serde(default)]
    pub alarms: crate::alarms::config::AlarmsConfig,
    /// `[oidc]`: single sign-on with the council's identity provider (absent: off,
    /// and no connection to any provider is made).
    #[serde(default)]
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
    /// The archive tier (an S3 bucket, e.g. on a Garage cluster); unset: footage stays local.
    #[serde(default)]
    pub archive: Option<ArchiveConfig>,
}

/// `[archive]`: where finished segments move once older than `after`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// S3 endpoint, e.g. `http://10.0.0.5:3900` (path-style requests).
    pub url: String,
    /// Bucket.
    pub bucket: String,
    /// S3 region (Garage's `s3_region`).
    #[serde(default = "default_region")]
    pub region: String,
    /// Key prefix; unset means this node's host name, so nodes can share a bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Access key id.
    pub access_key_id: String,
    /// Secret key; `CLEANNVR_ARCHIVE_SECRET_ACCESS_KEY` overrides.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Segments whose end is older than this move: `"2d"`, `"12h"`, `"20s"`.
    #[serde(default = "default_after")]
    pub after: String,
    /// Archived footage older than this many days is deleted; 0 keeps it.
    #[serde(default)]
    pub retain_days: u32,
    /// Archived footage beyond this many bytes is deleted, oldest first; 0: no limit.
    #[serde(default)]
    pub retain_bytes: u64,
    /// Upload pacing; 0: as fast as the archive takes it.
    #[serde(default)]
    pub max_upload_bytes_per_second: u64,
    /// Only read this prefix (another node's footage): nothing is uploaded or deleted.
    #[serde(default)]
    pub read_only: bool,
}

impl std::fmt::Debug for ArchiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ArchiveConfig")
            .field("url", &self.url)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

fn default_region() -> String {
    "garage".into()
}
fn default_after() -> String {
    "2d".into()
}

/// `[auth]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Admins must use a second factor (TOTP): an admin without one can do
    /// nothing after logging in but set one up.
    #[serde(default)]
    pub require_totp_for_admins: bool,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the web server binds, e.g. `127.0.0.1:8443`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `[server.tls]`: certificate and key files; `tls = false` disables TLS.
    #[serde(default)]
    pub tls: TlsSetting,
    /// Bearer token that lets a Prometheus scraper read `/metrics` without a
    /// session (`CLEANNVR_METRICS_TOKEN` overrides). Unset: admins only.
    #[serde(default)]
    pub metrics_token: Option<String>,
    /// A session unused for this many minutes ends.
    #[serde(default = "default_session_idle_minutes")]
    pub session_idle_minutes: u32,
    /// A session ends this many hours after login, however busy.
    #[serde(default = "default_session_max_hours")]
    pub session_max_hours: u32,
    /// IANA time zone for times people read (export manifests), e.g. `Europe/London`;
    /// unset means the system's zone. The JSON API stays in UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A connection whose writes make no progress for this many seconds (a client
    /// that stopped reading) is closed, so it cannot hold a slot and a file forever.
    #[serde(default = "default_write_stall_seconds")]
    pub write_stall_seconds: u32,
    /// Cores the H.265 → H.264 converters (for browsers without H.265) may use; the pool
    /// admits as many conversions as fit, by the cost of one measured here. Unset: half
    /// the machine's cores.
    #[serde(default)]
    pub transcode_cpu_budget: Option<f64>,
    /// While an ingest thread's cameras are only recorded (over TCP, nobody
    /// watching any of them live), their sockets are read every this many
    /// milliseconds rather than as each packet arrives: one wake-up serves all
    /// of the thread's cameras, about a third less CPU for recording one camera.
    /// A thread with a camera connecting, watched live or streaming over UDP
    /// reads as packets arrive. `0`: always. At most 500.
    #[serde(default = "default_ingest_read_ms")]
    pub ingest_read_ms: u16,
}

impl ServerConfig {
    /// The configured zone (checked at load), or the system's (UTC if it has none).
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        self.timezone
            .as_deref()
            .and_then(|n| jiff::tz::TimeZone::get(n).ok())
            .unwrap_or_else(jiff::tz::TimeZone::system)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls: TlsSetting::default(),
            metrics_token: None,
            session_idle_minutes: default_session_idle_minutes(),
            session_max_hours: default_session_max_hours(),
            timezone: None,
            write_stall_seconds: default_write_stall_seconds(),
            transcode_cpu_budget: None,
            ingest_read_ms: default_ingest_read_ms(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
// A control-room shift: long enough for a monitoring screen left open,
// short enough that a walked-away desk does not stay logged in for days.
fn default_session_idle_minutes() -> u32 {
    60
}
fn default_session_max_hours() -> u32 {
    12
}
// Long enough for a phone on a poor link to catch up, short enough that a hung
// client gives its connection slot back soon.
fn default_write_stall_seconds() -> u32 {
    30
}

fn default_ingest_read_ms() -> u16 {
    100
}

/// The longest `ingest_read_ms`: what a camera sends meanwhile waits in
/// the sockets' buffers (half a second of a 16 Mbit/s camera is 1 MB), and
/// a camera whose send buffer fills may drop frames or the session.
const MAX_INGEST_READ_MS: u16 = 500;

/// Either `tls = false` or a `[server.tls]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TlsSetting {
    /// `tls = true|false`.
    Enabled(bool),
    /// `[server.tls] cert = "...", key = "..."`.
    Files {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
    },
}

impl Default for TlsSetting {
    fn default() -> Self {
        TlsSetting::Enabled(true)
    }
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory holding segment files and the index.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Target segment length; segments always start on a key frame.
    #[serde(default = "default_segment_seconds")]
    pub segment_seconds: u32,
    /// Retention frees space until the volume has at least this much free.
    #[serde(default = "default_min_free")]
    pub min_free_bytes: u64,
    /// Most bytes all exports in `<dir>/.exports` may take together; unset means a tenth
    /// of the volume, `0` refuses every export. This space is reserved: retention keeps
    /// the unused part of it free as well as `min_free_bytes`, so exports never cost footage.
    #[serde(default)]
    pub export_max_bytes: Option<u64>,
    /// Exports older than this many days are deleted (and audited) by retention; `0`
    /// keeps them until someone deletes them.
    #[serde(default = "default_export_retain_days")]
    pub export_retain_days: u32,
    /// The Ed25519 key that signs exports; made on first start. Unset means
    /// `<dir>/keys/export-signing.key`; set it to keep the key on another volume.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
}

impl StorageConfig {
    /// Where the export signing key is (see [`StorageConfig::signing_key`]).
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| crate::export::signing::default_path(&self.dir))
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            dir: default_dir(),
            segment_seconds: default_segment_seconds(),
            min_free_bytes: default_min_free(),
            export_max_bytes: None,
            export_retain_days: default_export_retain_days(),
            signing_key: None,
        }
    }
}

fn default_dir() -> PathBuf {
    "./data".into()
}
fn default_segment_seconds() -> u32 {
    60
}
fn default_min_free() -> u64 {
    1 << 30
}
fn default_export_retain_days() -> u32 {
    31
}
fn default_true() -> bool {
    true
}

fn default_connect_timeout() -> u32 {
    10
}

/// RTP transport to ask the camera for.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP first, UDP when the camera refuses TCP or sends nothing over it
    /// (and the reverse); what worked is remembered while cleannvr runs.
    #[default]
    Auto,
    /// RTP interleaved in the RTSP TCP connection: works through NAT and loses nothing to UDP drops.
    Tcp,
    /// RTP over UDP.
    Udp,
}

/// One `[[camera]]`. `Debug` hides the password (configs end up in logs).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Stable identifier, used in paths and URLs: `[a-z0-9_-]`, 1..=64 chars.
    pub id: String,
    /// Human name shown in the UI.
    #[serde(default)]
    pub name: String,
    /// Main stream `rtsp://` URL (credentials may be embedded). Optional
    /// when `onvif` is given: the URL is then asked of the camera.
    #[serde(default)]
    pub url: Option<String>,
    /// `onvif = { host, port, username, password, profile }`: find the
    /// stream through ONVIF instead of a typed RTSP URL.
    #[serde(default)]
    pub onvif: Option<OnvifCameraConfig>,
    /// Optional low-resolution stream for grids.
    #[serde(default)]
    pub sub_url: Option<String>,
    /// RTSP username, if not in the URL.
    #[serde(default)]
    pub username: Option<String>,
    /// RTSP password, if not in the URL.
    #[serde(default)]
    pub password: Option<String>,
    /// `auto` (default), `tcp` or `udp`.
    #[serde(default)]
    pub transport: Transport,
    /// How long opening an RTSP session (connect, DESCRIBE, SETUP, PLAY) may
    /// take before the camera counts as not reachable and is retried. Without
    /// a bound, a camera whose network silently drops the connection attempt
    /// would hold the NVR for the operating system's connect timeout (about
    /// two minutes) before the status said so. 1..=120, default 10.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u32,
    /// Delete recordings older than this many days (0 = no age limit).
    #[serde(default)]
    pub retain_days: u32,
    /// Keep segments during which the camera reported an event this many
    /// days instead of `retain_days`: 0 (no difference) or more than
    /// `retain_days`, which must then be set ([`event_days_problem`]).
    /// Whole segments: one that overlaps an event is kept whole.
    /// `retain_bytes` and the volume floor still apply to them.
    #[serde(default)]
    pub retain_event_days: u32,
    /// Keep at most this many bytes of recordings (0 = no byte limit).
    #[serde(default)]
    pub retain_bytes: u64,
    /// Whether to connect at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Whether to record (false = live view only).
    #[serde(default = "default_true")]
    pub record: bool,
    /// Why the camera is there: the specified purpose the Surveillance Camera Code of
    /// Practice (principle 1) asks for. Admins see a camera without one flagged.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Where it is and what it looks at, for the public register (principle 3).
    #[serde(default)]
    pub location: Option<String>,
    /// The legal basis for the recording, e.g. "UK GDPR Art. 6(1)(e), public task".
    #[serde(default)]
    pub lawful_basis: Option<String>,
    /// When the camera's use is next to be reviewed (principle 2), a TOML date
    /// (`2027-03-31`) or the same as a string; past it the camera is flagged.
    #[serde(default, deserialize_with = "review_date")]
    pub review_date: Option<jiff::civil::Date>,
}

/// Longest `purpose`, `location` or `lawful_basis`, in bytes.
pub const MAX_REGISTER_TEXT: usize = 1000;

/// A review date: a TOML local date, or a string in the same form (what the API writes
/// when it cannot; both read back the same).
fn review_date<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<jiff::civil::Date>, D::Error> {
    use serde::de::Error;
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s,
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
        other => {
            return Err(D::Error::custom(format!(
                "review_date must be a date like 2027-03-31, not {other}"
            )))
        }
    };
    text.trim()
        .parse::<jiff::civil::Date>()
        .map(Some)
        .map_err(|e| {
            D::Error::custom(format!(
                "review_date {text:?} is not a date like 2027-03-31: {e}"
            ))
        })
}

/// `onvif = { ... }` in a `[[camera]]`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OnvifCameraConfig {
    /// Camera address (IP or name, no scheme or port).
    pub host: String,
    /// ONVIF HTTP port.
    #[serde(default = "default_onvif_port")]
    pub port: u16,
    /// ONVIF username; also used for RTSP unless `username` is set.
    #[serde(default)]
    pub username: Option<String>,
    /// ONVIF password; also used for RTSP unless `password` is set.
    #[serde(default)]
    pub password: Option<String>,
    /// Media profile token or name for the main stream; default: the
    /// highest-resolution profile.
    #[serde(default)]
    pub profile: Option<String>,
    /// Seconds between polls of the camera's event states, used only when
    /// it refuses PullPoint subscriptions (1 to 3600; default 5).
    #[serde(default)]
    pub events_poll_seconds: Option<u64>,
}

impl std::fmt::Debug for CameraConfig {
    /// Hides the password and the credentials a URL may carry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("onvif", &self.onvif)
            .field("sub_url", &self.sub_url.as_deref().map(redact_url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .field("retain_days", &self.retain_days)
            .field("retain_event_days", &self.retain_event_days)
            .field("retain_bytes", &self.retain_bytes)
            .field("enabled", &self.enabled)
            .field("record", &self.record)
            .field("purpose", &self.purpose)
            .field("location", &self.location)
            .field("lawful_basis", &self.lawful_basis)
            .field("review_date", &self.review_date)
            .finish()
    }
}

impl std::fmt::Debug for OnvifCameraConfig {
    /// Hides the password: configs end up in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnvifCameraConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("profile", &self.profile)
            .finish()
    }
}

pub(crate) fn default_onvif_port() -> u16 {
    80
}

impl CameraConfig {
    /// Whether the camera's review date has passed on `today` (a review due today is
    /// not late yet). A camera without a review date is never overdue; the missing
    /// date is the register's own flag.
    pub fn review_overdue(&self, today: jiff::civil::Date) -> bool {
        self.review_date.is_some_and(|d| d < today)
    }

    /// The main stream URL with any embedded credentials removed, safe to log;
    /// for an ONVIF camera without a URL, where the URL will come from.
    pub fn redacted_url(&self) -> String {
        match (&self.url, &self.onvif) {
            (Some(u), _) => redact_url(u),
            (None, Some(o)) => format!("onvif://{}:{}", o.host, o.port),
            (None, None) => "<no url>".into(),
        }
    }

    /// The URL without credentials, and the credentials from fields or the URL.
    /// Errors for an ONVIF camera without a `url` (see [`Self::stream_url_and_credentials`]).
    pub fn url_and_credentials(&self) -> anyhow::Result<(url::Url, Option<(String, String)>)> {
        let raw = self
            .url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("camera {}: stream URL comes from ONVIF", self.id))?;
        self.stream_url_and_credentials(raw)
    }

    /// Splits `raw` (the configured URL or one the camera gave over ONVIF)
    /// into a URL without credentials and the credentials to use: the
    /// `username`/`password` fields win, then those in the URL, then the
    /// ONVIF ones (cameras share one account between ONVIF and RTSP).
    pub fn stream_url_and_credentials(
        &self,
        raw: &str,
    ) -> anyhow::Result<(url::Url, Option<(String, String)>)> {
        let mut u = url::Url::parse(raw)
            .map_err(|e| anyhow::anyhow!("camera {}: bad url: {e}", self.id))?;
        // Fields (possibly from the environment) win over what the URL carries.
        let url_user = percent_decode(u.username());
        let url_pass = u.password().map(percent_decode);
        let onvif = self.onvif.as_ref();
        let url_user = Some(url_user)
            .filter(|u| !u.is_empty())
            .or_else(|| onvif.and_then(|o| o.username.clone()))
            .unwrap_or_default();
        let url_pass = url_pass.or_else(|| onvif.and_then(|o| o.password.clone()));
        let user = self.username.clone().unwrap_or(url_user);
        let pass = self.password.clone().or(url_pass).unwrap_or_default();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        let creds = (!user.is_empty()).then_some((user, pass));
        Ok((u, creds))
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Removes `user:password@` from a URL for logs and the UI.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<unparseable url>".into(),
    }
}

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or type error (the message includes line and column).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the line and the field.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("config {path}{line}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `" line N"` when known.
        line: String,
        /// Dotted field name, e.g. `camera[2].id`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A `CLEANNVR_…_FILE` variable names a file that cannot be read.
    #[error("cannot read the file {file} named by {var}: {source}")]
    SecretFile {
        /// The variable, e.g. `CLEANNVR_CAMERA_GATE_PASSWORD_FILE`.
        var: String,
        /// The file it names.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Docker and compose secrets arrive as files (`/run/secrets/NAME`), not as
/// variables that `docker inspect` would show: every override variable
/// `CLEANNVR_X` may instead be given as `CLEANNVR_X_FILE`, naming a file whose
/// contents, less one trailing newline, are the value. Returns the values
/// read, keyed by `CLEANNVR_X`; an unreadable file is an error, never an
/// empty password.
pub fn secret_files(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut values = HashMap::new();
    for (var, file) in vars {
        let Some(name) = var
            .strip_suffix("_FILE")
            .filter(|n| n.starts_with("CLEANNVR_"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::SecretFile {
            var: var.clone(),
            file: file.clone().into(),
            source,
        })?;
        let value = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        values.insert(name.to_owned(), value.to_owned());
    }
    Ok(values)
}

impl Config {
    /// Reads, parses, applies environment overrides (and `_FILE` secrets,
    /// see [`secret_files`]) and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let files = secret_files(std::env::vars())?;
        Self::from_toml(&text, path, |k| {
            std::env::var(k).ok().or_else(|| files.get(k).cloned())
        })
    }

    /// Parses `text` (named `path` in errors); `env` looks up override variables.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.apply_env(env);
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    /// Credentials and URLs can come from the environment (Docker secrets):
    /// `CLEANNVR_CAMERA_<ID>_URL`, `_USERNAME`, `_PASSWORD`, with the id
    /// upper-cased and `-` turned into `_`.
    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        for cam in &mut self.cameras {
            let prefix = format!(
                "CLEANNVR_CAMERA_{}_",
                cam.id.to_ascii_uppercase().replace('-', "_")
            );
            if let Some(v) = env(&format!("{prefix}URL")) {
                cam.url = Some(v);
            }
            // For an ONVIF camera the variables set the ONVIF account, which
            // RTSP then shares (see `stream_url_and_credentials`).
            if let Some(v) = env(&format!("{prefix}USERNAME")) {
                match &mut cam.onvif {
                    Some(o) => o.username = Some(v),
                    None => cam.username = Some(v),
                }
            }
            if let Some(v) = env(&format!("{prefix}PASSWORD")) {
                match &mut cam.onvif {
                    Some(o) => o.password = Some(v),
                    None => cam.password = Some(v),
                }
            }
        }
        if let Some(v) = env("CLEANNVR_STORAGE_DIR") {
            self.storage.dir = v.into();
        }
        if let Some(v) = env("CLEANNVR_METRICS_TOKEN") {
            self.server.metrics_token = Some(v);
        }
        if let (Some(v), Some(e)) = (env("CLEANNVR_ALARMS_SMTP_PASSWORD"), &mut self.alarms.email) {
            e.password = Some(v);
        }
        if let (Some(v), Some(o)) = (env("CLEANNVR_OIDC_CLIENT_SECRET"), &mut self.oidc) {
            o.client_secret = Some(v);
        }
        if let (Some(a), Some(v)) = (&mut self.archive, env("CLEANNVR_ARCHIVE_SECRET_ACCESS_KEY")) {
            a.secret_access_key = Some(v);
        }
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, needle: Option<&str>, message: String| {
            let line = needle
                .and_then(|n| find_line(text, n))
                .map(|l| format!(" line {l}"))
                .unwrap_or_default();
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                field,
                message,
            }
        };
        if let Some(a) = &self.archive {
            if crate::archive::parse_after(&a.after).is_none() {
                return Err(invalid(
                    "archive.after".into(),
                    Some("after"),
                    format!(
                        "{:?} is not a duration like \"2d\", \"12h\" or \"20s\"",
                        a.after
                    ),
                ));
            }
            if a.secret_access_key.is_none() {
                return Err(invalid(
                    "archive.secret_access_key".into(),
                    Some("[archive]"),
                    "set it, or CLEANNVR_ARCHIVE_SECRET_ACCESS_KEY".into(),
                ));
            }
        }
        for cam in &self.cameras {
            let poll = cam.onvif.as_ref().and_then(|o| o.events_poll_seconds);
            if let Some(p) = poll.filter(|p| !(1..=3600).contains(p)) {
                return Err(invalid(
                    format!("camera {}: onvif.events_poll_seconds", cam.id),
                    Some("events_poll_seconds"),
                    format!("{p} is outside 1..=3600"),
                ));
            }
        }
        let s = &self.storage;
        if !(2..=3600).contains(&s.segment_seconds) {
            return Err(invalid(
                "storage.segment_seconds".into(),
                Some("segment_seconds"),
                format!("{} is outside 2..=3600", s.segment_seconds),
            ));
        }
        if let Some(tz) = &self.server.timezone {
            if let Err(e) = jiff::tz::TimeZone::get(tz) {
                return Err(invalid(
                    "server.timezone".into(),
                    Some("timezone"),
                    format!("{tz:?} is not an IANA time zone like Europe/London: {e}"),
                ));
            }
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.listen".into(),
                Some("listen"),
                format!(
                    "{:?} is not an address like 127.0.0.1:8443",
                    self.server.listen
                ),
            ));
        }
        if self.server.session_idle_minutes == 0 || self.server.session_max_hours == 0 {
            return Err(invalid(
                "server.session_idle_minutes".into(),
                Some("session_"),
                "session lifetimes must be at least 1".into(),
            ));
        }
        if let Some(b) = self
            .server
            .transcode_cpu_budget
            .filter(|b| !(b.is_finite() && (0.05..=4096.0).contains(b)))
        {
            return Err(invalid(
                "server.transcode_cpu_budget".into(),
                Some("transcode_cpu_budget"),
                format!("{b} is not a number of cores between 0.05 and 4096"),
            ));
        }
        if self.server.ingest_read_ms > MAX_INGEST_READ_MS {
            return Err(invalid(
                "server.ingest_read_ms".into(),
                Some("ingest_read_ms"),
                format!(
                    "{} is more than {MAX_INGEST_READ_MS}: frames would wait longer than a \
                     socket holds them",
                    self.server.ingest_read_ms
                ),
            ));
        }
        if self.server.write_stall_seconds == 0 {
            return Err(invalid(
                "server.write_stall_seconds".into(),
                Some("write_stall_seconds"),
                "must be at least 1".into(),
            ));
        }
        if self
            .server
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.len() < 16)
        {
            return Err(invalid(
                "server.metrics_token".into(),
                Some("metrics_token"),
                "must be at least 16 characters (it is a password)".into(),
            ));
        }
        if let Err((field, message)) = self.alarms.validate() {
            let needle = field.rsplit('.').next().map(str::to_owned);
            return Err(invalid(field, needle.as_deref(), message));
        }
        if let Some(o) = &self.oidc {
            let ids: Vec<&str> = self.cameras.iter().map(|c| c.id.as_str()).collect();
            if let Err((field, message)) = o.validate(&ids) {
                let needle = field
                    .rsplit('.')
                    .next()
                    .map(|f| f.split('[').next().unwrap_or(f).to_owned());
                return Err(invalid(field, needle.as_deref(), message));
            }
        }
        let mut seen = HashSet::new();
        for (i, cam) in self.cameras.iter().enumerate() {
            let id_needle = format!("\"{}\"", cam.id);
            let field = |f: &str| format!("camera[{i}].{f}");
            if RESERVED_IDS.contains(&cam.id.as_str()) {
                return Err(invalid(
                    field("id"),
                    Some(&id_needle),
                    format!(
                        "{:?} is reserved: the storage directory has a {0}/ of its own \
                         (reserved: {})",
                        cam.id,
                        RESERVED_IDS.join(", ")
                    ),
                ));
            }
            if !valid_id(&cam.id) {
                return Err(invalid(
                    field("id"),
                    Some(&id_needle),
                    format!("{:?} must be 1-64 of a-z 0-9 _ -", cam.id),
                ));
            }
            if !seen.insert(cam.id.clone()) {
                return Err(invalid(
                    field("id"),
                    Some(&id_needle),
                    format!("{:?} is used by two cameras", cam.id),
                ));
            }
            if !(1..=120).contains(&cam.connect_timeout_seconds) {
                return Err(invalid(
                    field("connect_timeout_seconds"),
                    Some("connect_timeout_seconds"),
                    format!("{} is outside 1..=120", cam.connect_timeout_seconds),
                ));
            }
            if let Some(why) = event_days_problem(cam.retain_days, cam.retain_event_days) {
                return Err(invalid(
                    field("retain_event_days"),
                    Some("retain_event_days"),
                    format!("camera {:?}: {why}", cam.id),
                ));
            }
            match (&cam.url, &cam.onvif) {
                (None, None) => {
                    return Err(invalid(
                        field("url"),
                        Some(&id_needle),
                        format!(
                            "camera {:?} needs `url` or `onvif = {{ host = ... }}`",
                            cam.id
                        ),
                    ))
                }
                (_, Some(o)) if !valid_onvif_host(&o.host) => {
                    return Err(invalid(
                        field("onvif.host"),
                        Some(&id_needle),
                        format!(
                            "{:?} must be an address or name, without scheme, port or path",
                            o.host
                        ),
                    ))
                }
                _ => {}
            }
            for (name, value) in [
                ("purpose", &cam.purpose),
                ("location", &cam.location),
                ("lawful_basis", &cam.lawful_basis),
            ] {
                let Some(v) = value else { continue };
                let why = if v.len() > MAX_REGISTER_TEXT {
                    format!("longer than {MAX_REGISTER_TEXT} bytes")
                } else if v.chars().any(|c| c.is_control() && c != '\n') {
                    "contains control characters".into()
                } else if v.trim().is_empty() {
                    "is empty: leave it out instead".into()
                } else {
                    continue;
                };
                return Err(invalid(
                    field(name),
                    Some(&id_needle),
                    format!("camera {:?}: {name} {why}", cam.id),
                ));
            }
            for (name, value) in [("url", cam.url.as_ref()), ("sub_url", cam.sub_url.as_ref())] {
                let Some(value) = value else { continue };
                match url::Url::parse(value) {
                    Ok(u) if matches!(u.scheme(), "rtsp" | "rtsps") && u.host().is_some() => {}
                    _ => {
                        return Err(invalid(
                            field(name),
                            Some(&id_needle),
                            format!(
                                "camera {:?}: {} is not an rtsp://host/... URL",
                                cam.id,
                                redact_url(value)
                            ),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Cameras that should be connected.
    pub fn enabled_cameras(&self) -> impl Iterator<Item = &CameraConfig> {
        self.cameras.iter().filter(|c| c.enabled)
    }
}

/// Why a camera's `retain_event_days` makes no sense beside its
/// `retain_days`, in words for the config error and the API (the camera
/// editor checks the same before sending). It only ever extends the age
/// limit, so a value that would not (not above `retain_days`, or with no
/// age limit at all) is refused rather than silently doing nothing.
pub fn event_days_problem(retain_days: u32, retain_event_days: u32) -> Option<String> {
    if retain_event_days == 0 {
        None
    } else if retain_days == 0 {
        Some(format!(
            "retain_event_days = {retain_event_days} has nothing to extend: retain_days is 0 \
             (no age limit, footage is kept until space runs out); set retain_days, \
             or retain_event_days to 0"
        ))
    } else if retain_event_days <= retain_days {
        Some(format!(
            "retain_event_days = {retain_event_days} must be more than retain_days \
             ({retain_days}): footage with events is kept longer than the rest, never \
             shorter; or 0 for no difference"
        ))
    } else {
        None
    }
}

/// An ONVIF host: a name or IP address; `port` is its own field, and a scheme
/// or path here would be silently wrong in the service URL.
fn valid_onvif_host(h: &str) -> bool {
    !h.is_empty()
        && (h.parse::<std::net::IpAddr>().is_ok()
            || h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'))
}

/// Names the server gives directories of its own in the storage root, beside the
/// camera directories (which are named by camera id): `index` (the database), `keys`
/// (audit and export signing keys) and `tls` (the self-signed certificate); exports live
/// in `.exports`, which no id can spell. A camera with one of these ids would mix its
/// footage with them. Add here any directory the server starts making in the root.
pub const RESERVED_IDS: &[&str] = &["index", "keys", "tls"];

/// Camera ids become directory names and URL segments, so keep them boring, and
/// never one of [`RESERVED_IDS`].
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && !RESERVED_IDS.contains(&id)
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::from_toml(t, Path::new("test.toml"), |_| None)
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../config/cleannvr.toml");
        let cfg = parse(text).expect("example config must be valid");
        assert!(!cfg.cameras.is_empty());
    }

    #[test]
    fn defaults_apply() {
        let cfg = parse("[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1/x\"\n").unwrap();
        assert_eq!(cfg.storage.segment_seconds, 60);
        assert_eq!(cfg.cameras[0].transport, Transport::Auto);
        assert!(cfg.cameras[0].enabled && cfg.cameras[0].record);
    }

    #[test]
    fn timezone_and_export_limits() {
        let cfg =
            parse("[server]\ntimezone = \"Europe/London\"\n[storage]\nexport_max_bytes = 5\n")
                .unwrap();
        assert_eq!(cfg.server.time_zone().iana_name(), Some("Europe/London"));
        assert_eq!(cfg.storage.export_max_bytes, Some(5));
        assert_eq!(cfg.storage.export_retain_days, 31);
        let err = parse("[server]\ntimezone = \"Europe/Londn\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.timezone") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn transcode_cpu_budget_is_a_positive_number_of_cores() {
        let cfg = parse(
            "[server]
transcode_cpu_budget = 1.5
",
        )
        .unwrap();
        assert_eq!(cfg.server.transcode_cpu_budget, Some(1.5));
        for bad in ["0", "-1", "nan"] {
            let err = parse(&format!("[server]\ntranscode_cpu_budget = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("server.transcode_cpu_budget") && err.contains("line 2"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn ingest_read_ms_is_at_most_half_a_second() {
        assert_eq!(parse("").unwrap().server.ingest_read_ms, 100);
        let cfg = parse("[server]\ningest_read_ms = 0\n").unwrap();
        assert_eq!(cfg.server.ingest_read_ms, 0);
        let err = parse("[server]\ningest_read_ms = 501\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.ingest_read_ms") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn events_poll_seconds_is_checked() {
        let cam = |poll: &str| {
            format!("[[camera]]\nid = \"a\"\nonvif = {{ host = \"10.0.0.9\", events_poll_seconds = {poll} }}\n")
        };
        let cfg = parse(&cam("2")).unwrap();
        assert_eq!(
            cfg.cameras[0].onvif.as_ref().unwrap().events_poll_seconds,
            Some(2)
        );
        let err = parse(&cam("0")).unwrap_err().to_string();
        assert!(
            err.contains("onvif.events_poll_seconds")
                && err.contains("line 3")
                && err.contains("outside 1..=3600"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let err = parse("[storage]\ndir = \"/x\"\nsegmnt_seconds = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("segmnt_seconds"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_transport_is_rejected() {
        let err = parse("[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\ntransport = \"sctp\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sctp") && err.contains("line 4"), "{err}");
    }

    #[test]
    fn connect_timeout_defaults_to_ten_seconds_and_is_bounded() {
        let cfg = parse("[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\n").unwrap();
        assert_eq!(cfg.cameras[0].connect_timeout_seconds, 10);
        let err =
            parse("[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\nconnect_timeout_seconds = 0\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("connect_timeout_seconds"), "{err}");
    }

    #[test]
    fn retain_event_days_must_extend_retain_days() {
        let cam = |d: u32, e: u32| {
            parse(&format!(
                "[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\nretain_days = {d}\nretain_event_days = {e}\n"
            ))
        };
        assert_eq!(cam(30, 90).unwrap().cameras[0].retain_event_days, 90);
        assert_eq!(cam(30, 0).unwrap().cameras[0].retain_event_days, 0);
        assert_eq!(cam(0, 0).unwrap().cameras[0].retain_event_days, 0);
        for (d, e, says) in [
            (30, 30, "must be more than retain_days (30)"),
            (30, 7, "must be more than retain_days (30)"),
            (0, 90, "retain_days is 0"),
        ] {
            let err = cam(d, e).unwrap_err().to_string();
            assert!(
                err.contains("camera[0].retain_event_days")
                    && err.contains(says)
                    && err.contains("line 5"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_id_and_duplicates_are_rejected() {
        let err = parse("[[camera]]\nid = \"../etc\"\nurl = \"rtsp://h/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("camera[0].id") && err.contains("line 2"),
            "{err}"
        );
        let dup = "[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\n[[camera]]\nid = \"a\"\nurl = \"rtsp://h/y\"\n";
        assert!(parse(dup).unwrap_err().to_string().contains("two cameras"));
    }

    #[test]
    fn ids_of_the_servers_own_directories_are_refused() {
        for (id, line) in [("keys", 2), ("tls", 2), ("index", 2)] {
            let err = parse(&format!(
                "[[camera]]\nid = \"{id}\"\nurl = \"rtsp://h/x\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("camera[0].id")
                    && err.contains("reserved")
                    && err.contains(&format!("line {line}")),
                "{id}: {err}"
            );
        }
        // Every directory a server makes in the storage root (index, audit key, TLS
        // certificate, signing key, exports) is a name no camera may have.
        let d = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(d.path()).unwrap();
        crate::audit::AuditLog::open(store.db(), d.path()).unwrap();
        crate::web::tls::load(&TlsSetting::Enabled(true), d.path()).unwrap();
        let storage = StorageConfig {
            dir: d.path().to_owned(),
            ..Default::default()
        };
        crate::export::signing::Signer::for_storage(&storage).unwrap();
        std::fs::create_dir_all(crate::export::exports_dir(d.path())).unwrap();
        let made: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(made.len() >= 4, "{made:?}");
        for name in made {
            assert!(
                !valid_id(&name),
                "camera id {name:?} would share the server's {name}/"
            );
        }
    }

    #[test]
    fn bad_url_error_hides_password() {
        let err = parse("[[camera]]\nid = \"a\"\nurl = \"http://u:secret@h/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("camera[0].url"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn secrets_come_from_files_named_by_file_variables() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("gate_password");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let file = secret.display().to_string();
        let files = secret_files([
            (
                "CLEANNVR_CAMERA_GATE_PASSWORD_FILE".to_string(),
                file.clone(),
            ),
            ("PATH".to_string(), "/usr/bin".to_string()),
            ("OTHER_FILE".to_string(), "/nonexistent".to_string()),
        ])
        .unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let cfg = Config::from_toml(
            "[[camera]]\nid = \"gate\"\nurl = \"rtsp://10.0.0.5/s\"\nusername = \"admin\"\n",
            Path::new("t"),
            |k| files.get(k).cloned(),
        )
        .unwrap();
        assert_eq!(cfg.cameras[0].password.as_deref(), Some("s3cret"));

        // An unreadable file is an error naming the variable and the file.
        let missing = dir.path().join("missing").display().to_string();
        let err = secret_files([("CLEANNVR_METRICS_TOKEN_FILE".to_string(), missing.clone())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CLEANNVR_METRICS_TOKEN_FILE") && err.contains(&missing),
            "{err}"
        );
    }

    #[test]
    fn onvif_camera_without_url() {
        let cfg = Config::from_toml(
            "[[camera]]\nid = \"gate\"\nonvif = { host = \"10.0.0.5\", username = \"admin\" }\n",
            Path::new("t"),
            |k| (k == "CLEANNVR_CAMERA_GATE_PASSWORD").then(|| "s3cret".to_string()),
        )
        .unwrap();
        let cam = &cfg.cameras[0];
        let o = cam.onvif.as_ref().unwrap();
        assert_eq!((o.port, o.password.as_deref()), (80, Some("s3cret")));
        assert!(!format!("{cam:?}").contains("s3cret"));
        assert_eq!(cam.redacted_url(), "onvif://10.0.0.5:80");
        assert!(cam.url_and_credentials().is_err());
        // The RTSP session borrows the ONVIF account unless the URL or fields say otherwise.
        let (u, creds) = cam
            .stream_url_and_credentials("rtsp://10.0.0.5/s0")
            .unwrap();
        assert_eq!(u.as_str(), "rtsp://10.0.0.5/s0");
        assert_eq!(creds, Some(("admin".into(), "s3cret".into())));
        let (_, creds) = cam
            .stream_url_and_credentials("rtsp://v:w@10.0.0.5/s0")
            .unwrap();
        assert_eq!(creds, Some(("v".into(), "w".into())));
    }

    #[test]
    fn camera_needs_url_or_valid_onvif_host() {
        let err = parse("[[camera]]\nid = \"a\"\n").unwrap_err().to_string();
        assert!(
            err.contains("camera[0].url") && err.contains("onvif"),
            "{err}"
        );
        let err = parse("[[camera]]\nid = \"a\"\nonvif = { host = \"http://h:80/x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("camera[0].onvif.host"), "{err}");
        let err = parse("[[camera]]\nid = \"a\"\nonvif = { host = \"h\", bogus = 1 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn register_fields_parse_as_dates_or_strings_and_are_checked() {
        let cam = |extra: &str| {
            parse(&format!(
                "[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\n{extra}"
            ))
        };
        let c = &cam(
            "purpose = \"Crime prevention\"\nlocation = \"Market St\"\nreview_date = 2027-03-31\n",
        )
        .unwrap()
        .cameras[0];
        assert_eq!(c.purpose.as_deref(), Some("Crime prevention"));
        assert_eq!(c.review_date, Some(jiff::civil::date(2027, 3, 31)));
        let c2 = &cam("review_date = \"2027-03-31\"\n").unwrap().cameras[0];
        assert_eq!(c2.review_date, c.review_date);
        assert!(c.review_overdue(jiff::civil::date(2027, 4, 1)));
        assert!(!c.review_overdue(jiff::civil::date(2027, 3, 31)));
        assert_eq!(c2.purpose, None);
        for (bad, want) in [
            ("review_date = \"31/03/2027\"\n", "line 4"),
            ("review_date = 2027-03-31T10:00:00Z\n", "line 4"),
            ("review_date = 5\n", "line 4"),
            ("purpose = \"\"\n", "camera[0].purpose"),
            ("location = \"a\\u0007b\"\n", "camera[0].location"),
        ] {
            let err = cam(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
        let long = format!("lawful_basis = \"{}\"\n", "x".repeat(MAX_REGISTER_TEXT + 1));
        assert!(cam(&long).unwrap_err().to_string().contains("longer than"));
    }

    #[test]
    fn env_overrides_credentials() {
        let cfg = Config::from_toml(
            "[[camera]]\nid = \"front-gate\"\nurl = \"rtsp://u:p@h/x\"\n",
            Path::new("t"),
            |k| (k == "CLEANNVR_CAMERA_FRONT_GATE_PASSWORD").then(|| "s3cret".to_string()),
        )
        .unwrap();
        let cam = &cfg.cameras[0];
        assert_eq!(cam.password.as_deref(), Some("s3cret"));
        let (u, creds) = cam.url_and_credentials().unwrap();
        assert_eq!(u.as_str(), "rtsp://h/x");
        assert_eq!(creds, Some(("u".into(), "s3cret".into())));
        assert_eq!(cam.redacted_url(), "rtsp://h/x");
    }
}
