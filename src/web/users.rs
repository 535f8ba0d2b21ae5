//! Users CRUD for admins. Every change is audited; removing a user or
//! changing a password ends that user's sessions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::api::UserView;
use super::error::{ApiError, ApiJson};
use super::{App, Caller};
use crate::audit::{Action, Event};
use crate::auth::{check_password, hash_password, valid_user_name, Role, User, UserError};

fn parse_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s)
        .ok_or_else(|| ApiError::invalid_argument("role must be admin, operator or viewer"))
}

/// Checks a camera list names configured cameras only.
fn check_cameras(app: &App, cams: &Option<Vec<String>>) -> Result<(), ApiError> {
    for c in cams.iter().flatten() {
        if !app.camera_exists(c) {
            return Err(ApiError::invalid_argument(format!("unknown camera {c:?}")));
        }
    }
    Ok(())
}

fn name_param(name: &str) -> Result<(), ApiError> {
    if valid_user_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_argument("invalid user name"))
    }
}

/// `GET /api/users`.
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let users: Vec<UserView> = app.users.list()?.iter().map(UserView::from).collect();
    Ok(Json(json!({ "users": users })))
}

/// `GET /api/users/{name}`.
pub async fn get_one(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    name_param(&name)?;
    let u = app
        .users
        .get(&name)?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    Ok(Json(UserView::from(&u)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    name: String,
    role: String,
    password: String,
    #[serde(default)]
    cameras: Option<Vec<String>>,
}

/// `POST /api/users`: `{name, role, password, cameras?}` → 201.
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    let role = parse_role(&b.role)?;
    check_cameras(&app, &b.cameras)?;
    let actor = c.user.name.clone();
    let actor_role = c.user.role.as_str();
    let client = c.client.clone();
    // Audited before the write: if the entry cannot be written, nobody is added.
    let user = app
        .blocking(move |app| {
            let now = app.clock.now_ns();
            app.users
                .add_audited(&b.name, role, b.cameras, &b.password, now, |u| {
                    app.record_blocking(Event {
                        actor,
                        role: Some(actor_role.into()),
                        action: Action::UserAdd,
                        target: u.name.clone(),
                        client,
                        detail: describe(role, &u.cameras),
                    })
                })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

fn describe(role: Role, cams: &Option<Vec<String>>) -> String {
    match cams {
        None => format!("role={} cameras=all", role.as_str()),
        Some(c) => format!("role={} cameras={}", role.as_str(), c.join(",")),
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    role: Option<String>,
    /// Absent: unchanged; `null`: all cameras; a list: only those.
    #[serde(default, deserialize_with = "double_option")]
    cameras: Option<Option<Vec<String>>>,
    #[serde(default)]
    password: Option<String>,
    /// Absent: unchanged; `null`: the role's default; a bool: granted or not.
    #[serde(default, deserialize_with = "double_option")]
    ptz: Option<Option<bool>>,
}

/// `PUT /api/users/{name}`: change role, cameras, PTZ right and/or password.
pub async fn update(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    name_param(&name)?;
    let role = b.role.as_deref().map(parse_role).transpose()?;
    if let Some(cams) = &b.cameras {
        check_cameras(&app, cams)?;
    }
    let password_changed = b.password.is_some();
    let ptz_changed = b.ptz.is_some();
    let actor = c.user.name.clone();
    let actor_role = c.user.role.as_str();
    let client = c.client.clone();
    let user = {
        let name = name.clone();
        app.blocking(move |app| -> Result<_, UserError> {
            // Hash first, then apply everything in one write, so a refused
            // change (demoting the last admin) changes nothing at all.
            let hash = match &b.password {
                Some(pw) => {
                    check_password(pw)?;
                    Some(hash_password(pw)?)
                }
                None => None,
            };
            // Audited before the write: if the entry cannot be written, the
            // user stays as it was.
            let audit = |u: &User| {
                let mut detail = describe(u.role, &u.cameras);
                if ptz_changed {
                    detail.push_str(if u.can_ptz() { " ptz=yes" } else { " ptz=no" });
                }
                if password_changed {
                    detail.push_str(" password=changed");
                }
                app.record_blocking(Event {
                    actor,
                    role: Some(actor_role.into()),
                    action: Action::UserUpdate,
                    target: u.name.clone(),
                    client,
                    detail,
                })
            };
            let user = app.users.update_audited(
                &name,
                |u| {
                    if let Some(r) = role {
                        u.role = r;
                    }
                    if let Some(cams) = b.cameras {
                        u.cameras = cams;
                    }
                    if let Some(p) = b.ptz {
                        u.ptz = p;
                    }
                    if let Some(h) = hash {
                        u.password_hash = h;
                    }
                    Ok(())
                },
                audit,
            )?;
            if password_changed {
                app.sessions.revoke_user(&name)?;
            }
            Ok(user)
        })
        .await?
    };
    Ok(Json(UserView::from(&user)))
}

/// `DELETE /api/users/{name}` → 204; the user's sessions end at once.
pub async fn remove(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    name_param(&name)?;
    let actor = c.user.name.clone();
    let actor_role = c.user.role.as_str();
    let client = c.client.clone();
    // Audited before the removal: if the entry cannot be written, the user stays.
    app.blocking(move |app| -> Result<_, UserError> {
        app.users.remove_audited(&name, |_| {
            app.record_blocking(Event {
                actor,
                role: Some(actor_role.into()),
                action: Action::UserRemove,
                target: name.clone(),
                client,
                detail: String::new(),
            })
        })?;
        Ok(app.sessions.revoke_user(&name)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/users/{name}/totp` → 204: removes the user's second factor
/// (a lost phone) and ends their sessions; they log in with the password
/// alone and may enrol again.
pub async fn reset_totp(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    name_param(&name)?;
    let had = {
        let name = name.clone();
        app.blocking(move |app| -> Result<_, ApiError> {
            let u = app.users.get(&name)?;
            Ok(u.ok_or(UserError::NotFound)?.totp.is_some())
        })
        .await?
    };
    // Audited before the change: if the entry cannot be written, nothing is reset.
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::TotpReset,
        target: name.clone(),
        client: c.client.clone(),
        detail: format!("was_enabled={had}"),
    })
    .await?;
    // A reset is for a lost (perhaps stolen) phone: whatever was logged in
    // as this user ends too.
    app.blocking(move |app| -> Result<_, ApiError> {
        app.users.clear_totp(&name)?;
        Ok(app.sessions.revoke_user(&name)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
