//! Edits the `[[camera]]` tables of the config file's text with `toml_edit`,
//! so comments, order and layout of everything else survive. Text in, text
//! out: the caller validates the result (`Config::from_toml`) before writing.
//!
//! Secrets stay where they are: an update that leaves out `password` (or
//! `onvif.password`) keeps the stored one, and a URL sent back exactly as the
//! API showed it (credentials hidden) keeps the stored URL with its credentials.
//! A stored password is only kept while every address it can be sent to
//! (scheme, host and port of `url`, `sub_url` and `onvif`) stays one the
//! camera already had: otherwise an admin's session (or a forged request
//! riding on it) could point the camera elsewhere and have the server hand
//! the password to any host. Then the password must be sent again.

use serde_json::{Map, Value as Json};
use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

/// Why an edit was refused; plain words for the API's `detail`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    /// The request makes no sense (400).
    #[error("{0}")]
    Invalid(String),
    /// A camera with that id exists already (409).
    #[error("{0}")]
    Conflict(String),
    /// No camera with that id (404).
    #[error("{0}")]
    NotFound(String),
}

/// Keys written first, in this order, so an added camera reads like the example config.
const KEY_ORDER: &[&str] = &[
    "id",
    "name",
    "url",
    "sub_url",
    "username",
    "password",
    "onvif",
    "transport",
    "connect_timeout_seconds",
    "enabled",
    "record",
    "purpose",
    "location",
    "lawful_basis",
    "review_date",
];

/// Appends a `[[camera]]` built from `body` (the `[[camera]]` fields as JSON).
pub fn add(text: &str, body: &Map<String, Json>) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let id = match body.get("id") {
        Some(Json::String(id)) => id.clone(),
        _ => return Err(EditError::Invalid("`id` (a string) is required".into())),
    };
    if id == "test" {
        // `/api/cameras/test` is the connection test; a camera called so could not be edited.
        return Err(EditError::Invalid(
            "\"test\" is reserved; choose another id".into(),
        ));
    }
    if find(&doc, &id).is_some() {
        return Err(EditError::Conflict(format!("camera {id} exists already")));
    }
    let mut table = Table::new();
    for (k, v) in ordered(body) {
        if !v.is_null() {
            table.insert(k, Item::Value(to_toml(k, v)?));
        }
    }
    if !doc.contains_key("camera") {
        // The file's first camera: appended as text, because toml_edit would put
        // a new table before a comment-only file's trailing comments.
        let mut one = DocumentMut::new();
        cameras_mut(&mut one)?.push(table);
        let sep = match text {
            "" => "",
            t if t.ends_with("\n\n") => "",
            t if t.ends_with('\n') => "\n",
            _ => "\n\n",
        };
        return Ok(format!("{text}{sep}{one}"));
    }
    cameras_mut(&mut doc)?.push(table);
    Ok(doc.to_string())
}

/// Replaces the fields of camera `id` with `body`: fields left out are removed
/// (back to their defaults), except the secrets, which are kept (an empty
/// `password` removes it). Values keep their place and comments.
pub fn update(text: &str, id: &str, body: &Map<String, Json>) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    if let Some(other) = body.get("id") {
        if other.as_str() != Some(id) {
            return Err(EditError::Invalid(
                "a camera's id cannot change (its recordings are filed under it)".into(),
            ));
        }
    }
    let i = find(&doc, id).ok_or_else(|| EditError::NotFound(format!("no camera {id}")))?;
    let table = cameras_mut(&mut doc)?.get_mut(i).expect("index from find");
    let mut body = body.clone();
    keep_secrets(table, &mut body)?;
    let stale: Vec<String> = table
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| k != "id" && !body.contains_key(k))
        .collect();
    for k in stale {
        table.remove(&k);
    }
    for (k, v) in ordered(&body) {
        if k == "id" {
            continue;
        }
        if v.is_null() || (k == "password" && v.as_str() == Some("")) {
            table.remove(k);
            continue;
        }
        let new = to_toml(k, v)?;
        match table.get_mut(k).and_then(Item::as_value_mut) {
            Some(old) => {
                // The comment after the value (and the spacing) stays.
                let decor = old.decor().clone();
                *old = new;
                *old.decor_mut() = decor;
            }
            None => {
                table.insert(k, Item::Value(new));
            }
        }
    }
    Ok(doc.to_string())
}

/// Removes camera `id`'s table (its recordings are untouched).
pub fn remove(text: &str, id: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let i = find(&doc, id).ok_or_else(|| EditError::NotFound(format!("no camera {id}")))?;
    cameras_mut(&mut doc)?.remove(i);
    Ok(doc.to_string())
}

/// Carries the stored secrets into `body` where the caller could not have
/// sent them, but only to addresses the camera already had.
fn keep_secrets(table: &Table, body: &mut Map<String, Json>) -> Result<(), EditError> {
    let stored = |k: &str| table.get(k).and_then(Item::as_str).map(str::to_owned);
    for k in ["url", "sub_url"] {
        if let (Some(Json::String(sent)), Some(old)) = (body.get(k), stored(k)) {
            if *sent != old && *sent == super::view_url(&old) {
                body.insert(k.into(), Json::String(old));
            }
        }
    }
    let old_onvif = table.get("onvif").and_then(|o| {
        o.as_inline_table()
            .map(|t| t.get("password").cloned())
            .or_else(|| {
                o.as_table()
                    .map(|t| t.get("password").and_then(|p| p.as_value().cloned()))
            })
    });
    let old_onvif_pw = old_onvif
        .flatten()
        .and_then(|v| v.as_str().map(str::to_owned));
    let keep_pw = match stored("password") {
        Some(p) if !body.contains_key("password") => Some(p),
        _ => None,
    };
    let keep_onvif_pw = match (body.get("onvif"), old_onvif_pw) {
        (Some(Json::Object(o)), Some(pw)) if !o.contains_key("password") => Some(pw),
        _ => None,
    };
    if let Some(Json::Object(o)) = body.get_mut("onvif") {
        if o.get("password").and_then(Json::as_str) == Some("") {
            o.remove("password");
        }
    }
    if keep_pw.is_none() && keep_onvif_pw.is_none() {
        return Ok(());
    }
    let before = endpoints_of_table(table);
    let moved: Vec<String> = endpoints_of_body(body)
        .into_iter()
        .filter(|e| !before.contains(e))
        .map(|e| e.to_string())
        .collect();
    if !moved.is_empty() {
        return Err(EditError::Invalid(format!(
            "the camera's address changed (now {}): enter its password again, \
             the stored one is only used with the scheme, host and port it was saved for",
            moved.join(", ")
        )));
    }
    if let Some(p) = keep_pw {
        body.insert("password".into(), Json::String(p));
    }
    if let (Some(Json::Object(o)), Some(pw)) = (body.get_mut("onvif"), keep_onvif_pw) {
        o.insert("password".into(), Json::String(pw));
    }
    Ok(())
}

/// Where a camera's credentials may be sent: scheme, host and port.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}://{}:{p}", self.scheme, self.host),
            None => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

/// A stream URL's endpoint, with the scheme's usual port filled in; an
/// unparseable URL counts as an endpoint of its own (never equal to a stored one).
fn url_endpoint(raw: &str) -> Endpoint {
    match url::Url::parse(raw) {
        Ok(u) => Endpoint {
            scheme: u.scheme().to_ascii_lowercase(),
            host: u.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: u.port().or(match u.scheme() {
                "rtsp" => Some(554),
                "rtsps" => Some(322),
                s => url::Url::parse(&format!("{s}://h/"))
                    .ok()
                    .and_then(|d| d.port_or_known_default()),
            }),
        },
        Err(_) => Endpoint {
            scheme: "invalid".into(),
            host: "(an unparseable URL)".into(),
            port: None,
        },
    }
}

fn onvif_endpoint(host: &str, port: Option<i64>) -> Endpoint {
    Endpoint {
        scheme: "onvif".into(),
        host: host.to_ascii_lowercase(),
        port: Some(
            port.and_then(|p| u16::try_from(p).ok())
                .unwrap_or(crate::config::default_onvif_port()),
        ),
    }
}

fn endpoints_of_table(table: &Table) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = ["url", "sub_url"]
        .iter()
        .filter_map(|k| table.get(k).and_then(Item::as_str))
        .map(url_endpoint)
        .collect();
    let onvif = table.get("onvif");
    let field = |k: &str| -> Option<Value> {
        let o = onvif?;
        o.as_inline_table()
            .and_then(|t| t.get(k).cloned())
            .or_else(|| o.as_table().and_then(|t| t.get(k)?.as_value().cloned()))
    };
    if let Some(host) = field("host").and_then(|h| h.as_str().map(str::to_owned)) {
        out.push(onvif_endpoint(
            &host,
            field("port").and_then(|p| p.as_integer()),
        ));
    }
    out
}

fn endpoints_of_body(body: &Map<String, Json>) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = ["url", "sub_url"]
        .iter()
        .filter_map(|k| body.get(*k).and_then(Json::as_str))
        .map(url_endpoint)
        .collect();
    if let Some(Json::Object(o)) = body.get("onvif") {
        let host = o.get("host").and_then(Json::as_str).unwrap_or_default();
        out.push(onvif_endpoint(host, o.get("port").and_then(Json::as_i64)));
    }
    out
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>().map_err(|e| {
        EditError::Invalid(format!(
            "the config file does not parse, fix it by hand first: {}",
            crate::cameras::scrub_toml_error(&e.to_string())
        ))
    })
}

/// Index of camera `id` among the `[[camera]]` tables.
fn find(doc: &DocumentMut, id: &str) -> Option<usize> {
    doc.get("camera")?
        .as_array_of_tables()?
        .iter()
        .position(|t| t.get("id").and_then(Item::as_str) == Some(id))
}

fn cameras_mut(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, EditError> {
    if !doc.contains_key("camera") {
        doc.insert("camera", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc["camera"].as_array_of_tables_mut().ok_or_else(|| {
        EditError::Invalid(
            "the config file lists cameras as `camera = [...]`, not `[[camera]]` tables; \
             edit it by hand"
                .into(),
        )
    })
}

/// `body`'s entries, [`KEY_ORDER`] first, then the rest by name.
fn ordered(body: &Map<String, Json>) -> Vec<(&str, &Json)> {
    let mut out: Vec<(&str, &Json)> = KEY_ORDER
        .iter()
        .filter_map(|k| body.get_key_value(*k).map(|(k, v)| (k.as_str(), v)))
        .collect();
    let mut rest: Vec<(&str, &Json)> = body
        .iter()
        .filter(|(k, _)| !KEY_ORDER.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    rest.sort_by_key(|(k, _)| *k);
    out.extend(rest);
    out
}

/// A JSON value as a TOML value; objects become inline tables (`onvif = { ... }`).
fn to_toml(key: &str, v: &Json) -> Result<Value, EditError> {
    Ok(match v {
        // A review date as TOML's own date type, as an operator would write it by hand
        // (anything else stays a string, for validation to refuse with its reason).
        Json::String(s) if key == "review_date" => match s.trim().parse::<toml_edit::Datetime>() {
            Ok(d) if d.date.is_some() && d.time.is_none() => Value::from(d),
            _ => Value::from(s.as_str()),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) if n.is_f64() => Value::from(f),
            _ => return Err(EditError::Invalid(format!("`{key}`: {n} is out of range"))),
        },
        Json::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for x in a {
                arr.push(to_toml(key, x)?);
            }
            Value::Array(arr)
        }
        Json::Object(o) => {
            let mut t = InlineTable::new();
            for (k, x) in o {
                if !x.is_null() {
                    t.insert(k, to_toml(&format!("{key}.{k}"), x)?);
                }
            }
            Value::InlineTable(t)
        }
        Json::Null => return Err(EditError::Invalid(format!("`{key}` is null"))),
    })
}

impl From<EditError> for crate::error::Error {
    fn from(e: EditError) -> Self {
        use crate::error::Error;
        match e {
            EditError::Invalid(m) => Error::invalid_argument(m),
            EditError::Conflict(m) => Error::conflict(m),
            EditError::NotFound(m) => Error::not_found(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"# Site config: keep this comment
[server]
listen = "127.0.0.1:8443" # the UI

# Front gate, installed 2024
[[camera]]
id = "gate"
name = "Gate" # shown in the UI
url = "rtsp://admin:s3cret@10.0.0.5/stream1"
retain_days = 30

[[camera]]
id = "yard"
url = "rtsp://10.0.0.6/s"
password = "yardpw"
"#;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn add_appends_a_table_and_keeps_comments() {
        let out = add(
            FILE,
            &obj(
                json!({"id": "door", "url": "rtsp://10.0.0.7/x", "retain_days": 7, "onvif": null}),
            ),
        )
        .unwrap();
        assert!(out.starts_with(FILE), "{out}");
        assert!(
            out.ends_with(
                "[[camera]]\nid = \"door\"\nurl = \"rtsp://10.0.0.7/x\"\nretain_days = 7\n"
            ),
            "{out}"
        );
        let err = add(FILE, &obj(json!({"id": "gate", "url": "rtsp://h/x"}))).unwrap_err();
        assert!(matches!(err, EditError::Conflict(_)));
        assert!(matches!(
            add(FILE, &obj(json!({"url": "rtsp://h/x"}))).unwrap_err(),
            EditError::Invalid(_)
        ));
        // The first camera of a file without any.
        let out = add("# empty\n", &obj(json!({"id": "a", "url": "rtsp://h/x"}))).unwrap();
        assert_eq!(
            out,
            "# empty\n\n[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\n"
        );
    }

    #[test]
    fn update_replaces_fields_in_place_and_keeps_secrets() {
        // The URL as the API shows it (credentials hidden): the stored one is kept.
        let out = update(
            FILE,
            "gate",
            &obj(json!({"name": "Main gate", "url": "rtsp://10.0.0.5/stream1", "enabled": false})),
        )
        .unwrap();
        assert!(out.contains("# Front gate, installed 2024\n[[camera]]\nid = \"gate\"\nname = \"Main gate\" # shown in the UI\nurl = \"rtsp://admin:s3cret@10.0.0.5/stream1\"\nenabled = false\n"), "{out}");
        assert!(!out.contains("retain_days = 30"), "{out}");
        assert!(out.contains("# Site config: keep this comment\n"));
        // A password left out is kept; an empty one removes it.
        let out = update(FILE, "yard", &obj(json!({"url": "rtsp://10.0.0.6/t"}))).unwrap();
        assert!(out.contains("password = \"yardpw\""), "{out}");
        assert!(out.contains("rtsp://10.0.0.6/t"), "{out}");
        let out = update(
            FILE,
            "yard",
            &obj(json!({"url": "rtsp://10.0.0.6/t", "password": ""})),
        )
        .unwrap();
        assert!(!out.contains("yardpw"), "{out}");
        // A new URL replaces the old one, credentials and all.
        let out = update(FILE, "gate", &obj(json!({"url": "rtsp://10.0.0.9/x"}))).unwrap();
        assert!(!out.contains("s3cret"), "{out}");
        assert!(matches!(
            update(FILE, "nope", &obj(json!({}))).unwrap_err(),
            EditError::NotFound(_)
        ));
        assert!(matches!(
            update(FILE, "gate", &obj(json!({"id": "other"}))).unwrap_err(),
            EditError::Invalid(_)
        ));
    }

    #[test]
    fn onvif_password_is_kept_unless_cleared() {
        let file = "[[camera]]\nid = \"c\"\nonvif = { host = \"10.0.0.5\", username = \"u\", password = \"pw\" }\n";
        let out = update(
            file,
            "c",
            &obj(json!({"onvif": {"host": "10.0.0.5", "port": 80, "username": "v"}})),
        )
        .unwrap();
        assert!(
            out.contains("username = \"v\"") && out.contains("password = \"pw\""),
            "{out}"
        );
        // Another host: the stored password is not carried there.
        let err = update(
            file,
            "c",
            &obj(json!({"onvif": {"host": "10.0.0.8", "username": "u"}})),
        )
        .unwrap_err();
        assert!(
            matches!(&err, EditError::Invalid(m) if m.contains("password")),
            "{err:?}"
        );
        let out = update(
            file,
            "c",
            &obj(json!({"onvif": {"host": "10.0.0.8", "password": "new"}})),
        )
        .unwrap();
        assert!(out.contains("password = \"new\""), "{out}");
        let out = update(
            file,
            "c",
            &obj(json!({"onvif": {"host": "10.0.0.8", "password": ""}})),
        )
        .unwrap();
        assert!(!out.contains("pw\""), "{out}");
    }

    #[test]
    fn a_stored_password_is_only_kept_for_the_same_scheme_host_and_port() {
        let yard = |url: &str| update(FILE, "yard", &obj(json!({ "url": url })));
        // Same endpoint (554 is RTSP's port, written or not): kept.
        for same in [
            "rtsp://10.0.0.6/other",
            "rtsp://10.0.0.6:554/s",
            "RTSP://10.0.0.6/s",
        ] {
            let out = yard(same).unwrap_or_else(|e| panic!("{same}: {e}"));
            assert!(out.contains("password = \"yardpw\""), "{same}: {out}");
        }
        for moved in [
            "rtsp://10.0.0.7/s",
            "rtsp://10.0.0.6:8554/s",
            "rtsps://10.0.0.6/s",
            "rtsp://evil.example/s",
            "not a url",
        ] {
            let err = yard(moved).unwrap_err();
            assert!(
                matches!(&err, EditError::Invalid(m) if m.contains("enter its password again")),
                "{moved}: {err:?}"
            );
        }
        // A new sub-stream elsewhere, or an ONVIF host added: also refused.
        let err = update(
            FILE,
            "yard",
            &obj(json!({"url": "rtsp://10.0.0.6/s", "sub_url": "rtsp://10.9.9.9/s"})),
        )
        .unwrap_err();
        assert!(matches!(err, EditError::Invalid(_)), "{err:?}");
        let err = update(
            FILE,
            "yard",
            &obj(json!({"url": "rtsp://10.0.0.6/s", "onvif": {"host": "10.9.9.9"}})),
        )
        .unwrap_err();
        assert!(matches!(err, EditError::Invalid(_)), "{err:?}");
        // Sent again (or cleared), any address is fine.
        let out = update(
            FILE,
            "yard",
            &obj(json!({"url": "rtsp://10.0.0.7/s", "password": "again"})),
        )
        .unwrap();
        assert!(out.contains("password = \"again\""), "{out}");
        let out = update(
            FILE,
            "yard",
            &obj(json!({"url": "rtsp://10.0.0.7/s", "password": ""})),
        )
        .unwrap();
        assert!(!out.contains("password"), "{out}");
        // No stored password: nothing to protect.
        assert!(update(FILE, "gate", &obj(json!({"url": "rtsp://10.0.0.9/x"}))).is_ok());
    }

    #[test]
    fn register_fields_are_written_with_a_native_review_date() {
        let body = obj(
            json!({"url": "rtsp://10.0.0.6/s", "purpose": "Crime prevention",
            "location": "Yard gate, facing north", "review_date": "2027-03-31"}),
        );
        let out = update(FILE, "yard", &body).unwrap();
        assert!(
            out.contains("purpose = \"Crime prevention\"\nlocation = \"Yard gate, facing north\"\nreview_date = 2027-03-31\n"),
            "{out}"
        );
        let cfg =
            crate::config::Config::from_toml(&out, std::path::Path::new("t"), |_| None).unwrap();
        assert_eq!(
            cfg.cameras[1].review_date,
            Some(jiff::civil::date(2027, 3, 31))
        );
        // Not a date: kept as text, which the config's validation then refuses.
        let out = update(
            FILE,
            "yard",
            &obj(json!({"url": "rtsp://10.0.0.6/s", "review_date": "soon"})),
        )
        .unwrap();
        assert!(out.contains("review_date = \"soon\""), "{out}");
        assert!(
            crate::config::Config::from_toml(&out, std::path::Path::new("t"), |_| None).is_err()
        );
    }

    #[test]
    fn remove_drops_only_that_table() {
        let out = remove(FILE, "gate").unwrap();
        assert!(
            !out.contains("gate") && out.contains("id = \"yard\""),
            "{out}"
        );
        assert!(out.contains("# Site config: keep this comment\n"));
        assert!(matches!(
            remove(FILE, "gate2").unwrap_err(),
            EditError::NotFound(_)
        ));
    }
}
