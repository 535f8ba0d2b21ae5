//! Camera administration while the server runs: adding, changing and
//! removing cameras from the API, and picking up edits of the config file
//! (SIGHUP, or the file changing), each applied to that camera only.
//!
//! The TOML file stays the source of truth: a change from the API is an edit
//! of the file's text ([`edit`], keeping comments and layout), validated as a
//! whole config, written atomically (0600), and then applied from what was
//! written. Owns: the file's write order and the redacted views of cameras
//! (no password or URL credential ever leaves through them). Never runs
//! cameras itself (that is `supervisor`) and never speaks HTTP.

pub mod discover;
pub mod edit;
pub mod probe;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value as Json};

use crate::config::{redact_url, CameraConfig, Config, Transport};
use crate::supervisor::fleet::Fleet;
pub use edit::EditError;

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The edit itself was refused.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The edited file would not be a valid config (plain words, no secrets).
    #[error("{0}")]
    Invalid(String),
    /// The server runs without a config file (`cleannvr demo`).
    #[error("this server runs without a config file, so its cameras cannot be changed")]
    NoFile,
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(String),
}

/// One camera's change, for the audit log (`camera_change`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The camera.
    pub camera: String,
    /// JSON: `{"op": "add"|"update"|"remove", ...}` with the fields that
    /// changed, secrets reported only as `"changed"`.
    pub detail: String,
}

/// Makes camera changes: one at a time, file first, then the fleet.
pub struct CameraAdmin {
    fleet: Arc<Fleet>,
    /// The config file; `None` for a server started without one.
    path: Option<PathBuf>,
    /// Serialises changes and remembers the file's last seen modification.
    state: tokio::sync::Mutex<Seen>,
}

/// What the file looked like when last read or written, and what the last
/// poll saw of a change not yet applied.
#[derive(Default, Clone, PartialEq)]
struct Seen {
    modified: Option<SystemTime>,
    len: u64,
    /// A change seen by one poll; applied when the next poll sees the same
    /// size and time, so a file an editor is still writing is never read.
    pending: Option<(Option<SystemTime>, u64)>,
}

impl CameraAdmin {
    /// Changes go to `path` and then to `fleet`.
    pub fn new(fleet: Arc<Fleet>, path: Option<PathBuf>) -> Self {
        let seen = path.as_deref().map(stat).unwrap_or_default();
        CameraAdmin {
            fleet,
            path,
            state: tokio::sync::Mutex::new(seen),
        }
    }

    /// The fleet changes are applied to.
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Edits the file with `f` (text in, text out), validates the result as a
    /// whole config, hands the per-camera changes to `record` (the audit log:
    /// a change that cannot be recorded is not made), then writes the file and
    /// applies it. Returns the changes made.
    pub async fn change<E: From<ChangeError>, Fut: std::future::Future<Output = Result<(), E>>>(
        &self,
        f: impl FnOnce(&str) -> Result<String, EditError>,
        record: impl FnOnce(Vec<Change>) -> Fut,
    ) -> Result<Vec<Change>, E> {
        let path = self.path.clone().ok_or(ChangeError::NoFile)?;
        let mut seen = self.state.lock().await;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ChangeError::Io(format!("reading {}: {e}", path.display())))?;
        let new_text = f(&text).map_err(ChangeError::from)?;
        let config = Config::from_toml(&new_text, &path, |k| std::env::var(k).ok())
            .map_err(|e| ChangeError::Invalid(scrub_toml_error(&e.to_string())))?;
        let changes = diff(&self.fleet.list().all(), &config.cameras);
        record(changes.clone()).await?;
        let p = path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&p, new_text.as_bytes()))
            .await
            .map_err(|e| ChangeError::Io(e.to_string()))?
            .map_err(|e| ChangeError::Io(format!("writing {}: {e}", path.display())))?;
        *seen = stat(&path);
        self.fleet.apply(config.cameras).await;
        Ok(changes)
    }

    /// The camera `id` as the file says now (with its secrets, for a
    /// connection test of an edit), after `f` edits the file's text; nothing is written.
    pub fn preview(
        &self,
        f: impl FnOnce(&str) -> Result<String, EditError>,
        id: &str,
    ) -> Result<Option<CameraConfig>, ChangeError> {
        let text = match &self.path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| ChangeError::Io(format!("reading {}: {e}", p.display())))?,
            None => String::new(),
        };
        let path = self.path.clone().unwrap_or_else(|| "config".into());
        let config = Config::from_toml(&f(&text)?, &path, |k| std::env::var(k).ok())
            .map_err(|e| ChangeError::Invalid(scrub_toml_error(&e.to_string())))?;
        Ok(config.cameras.into_iter().find(|c| c.id == id))
    }

    /// Reads the file again and applies its cameras, if it changed since it
    /// was last read or written (`force`: SIGHUP, whether it changed or not).
    /// Settings outside `[[camera]]` need a restart; a bad file changes nothing.
    pub async fn reload(&self, force: bool) -> Result<Vec<Change>, ChangeError> {
        let path = self.path.clone().ok_or(ChangeError::NoFile)?;
        let mut seen = self.state.lock().await;
        let now = stat(&path);
        if !force {
            if now.modified == seen.modified && now.len == seen.len {
                return Ok(Vec::new());
            }
            let shape = Some((now.modified, now.len));
            if seen.pending != shape {
                // Changed since the last poll: wait until it stops changing.
                seen.pending = shape;
                return Ok(Vec::new());
            }
        }
        *seen = now;
        let config = Config::load(&path)
            .map_err(|e| ChangeError::Invalid(scrub_toml_error(&e.to_string())))?;
        if !force && config.cameras.is_empty() && !self.fleet.list().all().is_empty() {
            // More likely a file cut short than an operator removing every
            // camera at once; that takes a SIGHUP (or the API).
            return Err(ChangeError::Invalid(
                "the file now lists no cameras; send SIGHUP to apply that on purpose".into(),
            ));
        }
        let changes = diff(&self.fleet.list().all(), &config.cameras);
        self.fleet.apply(config.cameras).await;
        Ok(changes)
    }
}

fn stat(path: &Path) -> Seen {
    match std::fs::metadata(path) {
        Ok(m) => Seen {
            modified: m.modified().ok(),
            len: m.len(),
            pending: None,
        },
        Err(_) => Seen::default(),
    }
}

/// Writes `data` to `path` so that a crash leaves the old file or the new
/// one, never a torn one: a temporary file beside it (0600: it holds camera
/// passwords), fsync, rename over, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(&dir)?.sync_all()
}

/// A URL as the API shows it: no user or password, and query values that
/// look like passwords (`?password=`, `pwd=`) hidden.
pub fn view_url(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(&redact_url(raw)) else {
        return redact_url(raw);
    };
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let secret = ["pass", "pwd", "secret", "token"]
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s));
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

fn has_credentials(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
}

/// A camera's configuration as admins see it: every field but the secrets,
/// which show only whether they are set.
pub fn view(c: &CameraConfig) -> Json {
    let transport = match c.transport {
        Transport::Auto => "auto",
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    json!({
        "id": c.id,
        "name": c.name,
        "url": c.url.as_deref().map(view_url),
        "url_has_credentials": c.url.as_deref().is_some_and(has_credentials),
        "sub_url": c.sub_url.as_deref().map(view_url),
        "username": c.username,
        "password_set": c.password.is_some(),
        "onvif": c.onvif.as_ref().map(|o| json!({
            "host": o.host,
            "port": o.port,
            "username": o.username,
            "password_set": o.password.is_some(),
            "profile": o.profile,
        })),
        "transport": transport,
        "retain_days": c.retain_days,
        "retain_event_days": c.retain_event_days,
        "retain_bytes": c.retain_bytes,
        "enabled": c.enabled,
        "record": c.record,
        "purpose": c.purpose,
        "location": c.location,
        "lawful_basis": c.lawful_basis,
        "review_date": c.review_date.map(|d| d.to_string()),
    })
}

/// The audit entries for going from `before` to `after`: one per camera added,
/// changed or removed. Secrets appear only as `"changed"`.
pub fn diff(before: &[CameraConfig], after: &[CameraConfig]) -> Vec<Change> {
    let mut out = Vec::new();
    for old in before {
        match after.iter().find(|c| c.id == old.id) {
            None => out.push(Change {
                camera: old.id.clone(),
                detail: json!({"op": "remove", "recordings": "kept until retention deletes them"})
                    .to_string(),
            }),
            Some(new) if new != old => out.push(Change {
                camera: old.id.clone(),
                detail: json!({"op": "update", "changes": field_changes(old, new)}).to_string(),
            }),
            Some(_) => {}
        }
    }
    for new in after {
        if !before.iter().any(|c| c.id == new.id) {
            out.push(Change {
                camera: new.id.clone(),
                detail: json!({"op": "add", "camera": view(new)}).to_string(),
            });
        }
    }
    out
}

fn field_changes(old: &CameraConfig, new: &CameraConfig) -> Map<String, Json> {
    let (a, b) = (view(old), view(new));
    let mut out = Map::new();
    for (k, va) in a.as_object().into_iter().flatten() {
        let vb = &b[k];
        if va != vb {
            out.insert(k.clone(), json!({"from": va, "to": vb}));
        }
    }
    // Secrets that changed while the views stayed the same.
    let secret = |c: &CameraConfig| {
        (
            c.password.clone(),
            c.url.clone(),
            c.sub_url.clone(),
            c.onvif.as_ref().and_then(|o| o.password.clone()),
        )
    };
    let (sa, sb) = (secret(old), secret(new));
    for (name, changed) in [
        ("password", sa.0 != sb.0),
        ("url", sa.1 != sb.1),
        ("sub_url", sa.2 != sb.2),
        ("onvif.password", sa.3 != sb.3),
    ] {
        if changed && !out.contains_key(name) {
            out.insert(
                format!(
                    "{name}{}",
                    if name.ends_with("url") {
                        " credentials"
                    } else {
                        ""
                    }
                ),
                json!("changed"),
            );
        }
    }
    out
}

/// A TOML error message without the source lines that toml quotes (a line
/// may hold a password): the position and the reason stay.
pub fn scrub_toml_error(msg: &str) -> String {
    msg.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('|')
                || t.split_once('|')
                    .is_some_and(|(n, _)| n.trim().parse::<u64>().is_ok()))
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The kind of each refusal; the words are plain and secret-free already.
impl From<ChangeError> for crate::error::Error {
    fn from(e: ChangeError) -> Self {
        use crate::error::Error;
        match e {
            ChangeError::Edit(e) => e.into(),
            ChangeError::Invalid(m) => Error::invalid_argument(m),
            e @ ChangeError::NoFile => Error::conflict(e.to_string()),
            ChangeError::Io(m) => Error::internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cams(t: &str) -> Vec<CameraConfig> {
        Config::from_toml(t, Path::new("t"), |_| None)
            .unwrap()
            .cameras
    }

    #[test]
    fn view_hides_every_secret() {
        let c = &cams(
            "[[camera]]\nid = \"a\"\nurl = \"rtsp://u:p4ss@h/x?user=u&password=q9\"\npassword = \"f1eld\"\n\
             sub_url = \"rtsp://u:s7b@h/y\"\n[[camera]]\nid = \"b\"\nonvif = { host = \"h\", password = \"0nv\" }\n",
        );
        let text = format!("{} {}", view(&c[0]), view(&c[1]));
        for s in ["p4ss", "q9", "f1eld", "s7b", "0nv"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert!(
            text.contains("\"password_set\":true") && text.contains("user=u"),
            "{text}"
        );
    }

    #[test]
    fn diff_names_fields_and_only_says_secrets_changed() {
        let a = cams("[[camera]]\nid = \"a\"\nurl = \"rtsp://u:old@h/x\"\n[[camera]]\nid = \"b\"\nurl = \"rtsp://h/b\"\n");
        let b = cams("[[camera]]\nid = \"a\"\nname = \"A\"\nurl = \"rtsp://u:new@h/x\"\n[[camera]]\nid = \"c\"\nurl = \"rtsp://h/c\"\npassword = \"cpw\"\n");
        let d = diff(&a, &b);
        let text = format!("{d:?}");
        assert_eq!(d.len(), 3, "{text}");
        assert!(
            !text.contains("old") && !text.contains("new@") && !text.contains("cpw"),
            "{text}"
        );
        assert_eq!(d[0].camera, "a");
        assert!(
            d[0].detail.contains("\"url credentials\":\"changed\"")
                && d[0].detail.contains("\"name\""),
            "{text}"
        );
        assert!(d[1].camera == "b" && d[1].detail.contains("remove"));
        assert!(d[2].camera == "c" && d[2].detail.contains("\"op\":\"add\""));
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn toml_errors_lose_their_source_lines() {
        let e = Config::from_toml(
            "[[camera]]\nid = \"a\"\nurl = \"rtsp://u:pw@h/x\nx",
            Path::new("t"),
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("pw@"), "toml quotes the line: {e}");
        let s = scrub_toml_error(&e);
        assert!(!s.contains("pw@") && s.contains("line 3"), "{s}");
    }

    #[test]
    fn atomic_write_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
