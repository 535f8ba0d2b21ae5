//! Camera administration for admins: add, change, remove and test cameras.
//! Thin: the file edit, validation and the restart of that one camera are
//! `cameras::CameraAdmin`'s; here are the HTTP shapes and the audit entries.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiJson};
use super::{App, Caller};
use crate::audit::{Action, Event};
use crate::cameras::{edit, view, CameraAdmin, Change, EditError};

fn admin(app: &App) -> Result<&Arc<CameraAdmin>, ApiError> {
    app.camera_admin
        .get()
        .ok_or_else(|| ApiError::unavailable("camera changes need the running server"))
}

/// Makes a change through the admin, auditing each camera's part first.
async fn change(
    app: &Arc<App>,
    c: &Caller,
    f: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<Vec<Change>, ApiError> {
    admin(app)?
        .change(f, |changes| async move {
            for ch in changes {
                app.record(Event {
                    actor: c.user.name.clone(),
                    role: Some(c.user.role.as_str().into()),
                    action: Action::CameraChange,
                    target: ch.camera,
                    client: c.client.clone(),
                    detail: ch.detail,
                })
                .await?;
            }
            Ok::<(), ApiError>(())
        })
        .await
}

fn shown(app: &App, id: &str) -> Value {
    json!({ "camera": app.cameras.get(id).as_ref().map(view) })
}

/// `POST /api/cameras`: the `[[camera]]` fields → 201 with the camera (secrets hidden).
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    change(&app, &c, |text| edit::add(text, &body)).await?;
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
    Ok((StatusCode::CREATED, Json(shown(&app, id))).into_response())
}

/// `PUT /api/cameras/{id}`: the camera's fields, replacing the stored ones
/// (passwords left out are kept).
pub async fn update(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    change(&app, &c, |text| edit::update(text, &id, &body)).await?;
    Ok(Json(shown(&app, &id)))
}

/// `DELETE /api/cameras/{id}`: stops and removes the camera; its recordings
/// stay until retention deletes them.
pub async fn remove(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    change(&app, &c, |text| edit::remove(text, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/cameras/test`: the `[[camera]]` fields of a camera to be added
/// or changed (an existing camera's stored password is used when left out).
/// 200 with `{ok: true, codec, width, height, audio, transport, snapshot}`
/// (a `data:` JPEG URL) or `{ok: false, reason}` in plain words.
pub async fn test(
    State(app): State<Arc<App>>,
    ApiJson(mut body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let admin = admin(&app)?.clone();
    let id = match body.get("id") {
        Some(Value::String(id)) if app.cameras.get(id).is_some() => id.clone(),
        _ => {
            body.insert("id".into(), Value::String("connection-test".into()));
            "connection-test".into()
        }
    };
    let existing = app.cameras.get(&id).is_some();
    let cam = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            admin.preview(
                |text| {
                    if existing {
                        edit::update(text, &id, &body)
                    } else {
                        // Tested alone, so a clash with another camera's id cannot fail it.
                        edit::add(&without_cameras(text), &body)
                    }
                },
                &id,
            )
        })
        .await??
    };
    let Some(cam) = cam else {
        return Err(ApiError::internal(
            "the tested camera vanished from the config",
        ));
    };
    let opener = admin_opener(&app)?;
    Ok(Json(
        match crate::cameras::probe::probe(&cam, opener.as_ref()).await {
            Ok(found) => {
                let mut v = serde_json::to_value(&found).map_err(ApiError::internal)?;
                v["ok"] = json!(true);
                v["snapshot"] = json!(found.jpeg.as_ref().map(|j| format!(
                    "data:image/jpeg;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(j)
                )));
                v
            }
            Err(reason) => json!({ "ok": false, "reason": reason }),
        },
    ))
}

fn admin_opener(app: &App) -> Result<Arc<dyn crate::ingest::open::Opener>, ApiError> {
    Ok(admin(app)?.fleet().opener())
}

/// The config text without its `[[camera]]` tables (parse errors are left to `add`).
fn without_cameras(text: &str) -> String {
    match text.parse::<toml_edit::DocumentMut>() {
        Ok(mut doc) => {
            doc.remove("camera");
            doc.to_string()
        }
        Err(_) => text.to_owned(),
    }
}

/// `POST /api/onvif/discover`: one WS-Discovery run (`{}`: multicast on the
/// LAN; `{"target": "HOST[:PORT]"}`: a unicast probe of one device, for a
/// camera on another subnet), listing each device and whether it is added.
pub async fn discover(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<DiscoverRequest>,
) -> Result<Json<Value>, ApiError> {
    let target = match body.target.as_deref().map(str::trim) {
        None | Some("") => crate::onvif::Target::Multicast(None),
        Some(t) => crate::onvif::Target::Unicast(probe_address(t).await?),
    };
    let wait = std::time::Duration::from_secs(body.wait.unwrap_or(3).clamp(1, 10));
    let devices = crate::cameras::discover::find(target, wait, &app.cameras.all())
        .await
        .map_err(|e| ApiError::internal(format!("sending the WS-Discovery probe: {e}")))?;
    Ok(Json(json!({ "devices": devices })))
}

/// `POST /api/onvif/profiles`: the media profiles of one ONVIF camera, read
/// with the credentials the admin typed, and the main and sub streams
/// cleannvr would pick, so the add and edit forms can offer the choice
/// (main: `onvif.profile`; sub: its stream URI as `sub_url`). With no
/// password and the `id` of a configured camera at that address, the stored
/// credentials are used (the edit form never holds them). A camera that
/// refuses or does not answer is `{"ok": false, "reason"}`, as for
/// `/api/cameras/test`.
pub async fn profiles(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<ProfilesRequest>,
) -> Result<Json<Value>, ApiError> {
    use crate::onvif::resolve::{choose_profiles, credentials, describe};
    let host = body.host.trim().to_owned();
    if host.is_empty() {
        return Err(ApiError::invalid_argument("host is empty"));
    }
    let mut o = crate::config::OnvifCameraConfig {
        host,
        port: body.port.unwrap_or(crate::config::default_onvif_port()),
        username: body.username.filter(|u| !u.is_empty()),
        password: body.password,
        profile: None,
        events_poll_seconds: None,
    };
    if o.password.is_none() {
        let stored = body.id.as_deref().and_then(|id| app.cameras.get(id));
        if let Some(s) = stored.and_then(|c| c.onvif) {
            if s.host == o.host && s.port == o.port {
                o.username = o.username.or(s.username);
                o.password = s.password;
            }
        }
    }
    let read = async {
        let client = crate::onvif::OnvifClient::connect(&o.host, o.port, credentials(&o)).await?;
        describe(&client).await
    };
    let summary = match tokio::time::timeout(std::time::Duration::from_secs(20), read).await {
        Err(_) => {
            let reason = format!("{}:{} did not answer within 20 s", o.host, o.port);
            return Ok(Json(json!({ "ok": false, "reason": reason })));
        }
        Ok(Err(e)) => return Ok(Json(json!({ "ok": false, "reason": e.to_string() }))),
        Ok(Ok(s)) => s,
    };
    let all: Vec<_> = summary.profiles.iter().map(|p| p.profile.clone()).collect();
    let (main, sub) = match choose_profiles(&all, None) {
        Ok((m, s)) => (Some(m.token.clone()), s.map(|s| s.token.clone())),
        Err(_) => (None, None),
    };
    Ok(Json(json!({
        "ok": true,
        "manufacturer": summary.device.manufacturer,
        "model": summary.device.model,
        "profiles": summary.profiles,
        "main": main,
        "sub": sub,
    })))
}

/// The body of `POST /api/onvif/profiles`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesRequest {
    /// The device service's host (as in `onvif.host`).
    host: String,
    /// Its port (default 80).
    port: Option<u16>,
    username: Option<String>,
    password: Option<String>,
    /// A configured camera whose stored credentials may be used.
    id: Option<String>,
}

/// The body of `POST /api/onvif/discover`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// One device to probe (`HOST` or `HOST:PORT`, port 3702 by default).
    target: Option<String>,
    /// Seconds to wait for replies (1 to 10, default 3).
    wait: Option<u64>,
}

/// `HOST[:PORT]` (IPv6 in brackets) as one socket address.
async fn probe_address(t: &str) -> Result<std::net::SocketAddr, ApiError> {
    let with_port = if t.parse::<std::net::IpAddr>().is_ok() && t.contains(':') {
        format!("[{t}]:3702")
    } else if t
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        t.to_owned()
    } else {
        format!("{t}:3702")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ApiError::invalid_argument(format!("cannot find the address {t:?}")))
}
