//! PTZ endpoints: thin wrappers over [`crate::ptz`]. The route guard has
//! already checked that the caller may see the camera; commands also need
//! the user's PTZ right, and saving a preset needs an admin.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiJson};
use super::{App, Caller};
use crate::auth::Role;
use crate::ptz::{Actor, Velocity};

fn actor(c: &Caller) -> Result<Actor, ApiError> {
    if !c.user.can_ptz() {
        return Err(ApiError::permission_denied(
            "you may not steer cameras (PTZ)",
        ));
    }
    Ok(Actor {
        user: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        client: c.client.clone(),
    })
}

/// `POST /api/cameras/{id}/ptz/move` `{pan, tilt, zoom}` (each -1..1): moves
/// until a stop, or until no move has come for [`crate::ptz::AUTO_STOP`].
pub async fn start_move(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(v): ApiJson<Velocity>,
) -> Result<StatusCode, ApiError> {
    if !v.is_valid() {
        return Err(ApiError::invalid_argument(
            "pan, tilt and zoom must be numbers from -1 to 1",
        ));
    }
    app.ptz.start_move(&id, v, actor(&c)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/cameras/{id}/ptz/stop`.
pub async fn stop(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.ptz.stop(&id, actor(&c)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/cameras/{id}/ptz/home`.
pub async fn home(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.ptz.home(&id, actor(&c)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/cameras/{id}/ptz/status`: position and whether it is moving.
pub async fn status(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(app.ptz.status(&id).await?)))
}

/// `GET /api/cameras/{id}/ptz/presets`.
pub async fn presets(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "presets": app.ptz.presets(&id).await? })))
}

/// `POST /api/cameras/{id}/ptz/presets/{token}/goto`.
pub async fn goto_preset(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path((id, token)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.ptz.goto_preset(&id, &token, actor(&c)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPreset {
    name: String,
}

/// `POST /api/cameras/{id}/ptz/presets` `{name}` (admins) → 201 `{token}`:
/// saves where the camera points now.
pub async fn save_preset(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<NewPreset>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if c.user.role != Role::Admin {
        return Err(ApiError::permission_denied("only admins may save presets"));
    }
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_argument(
            "a preset name is 1-64 characters without control characters",
        ));
    }
    let token = app.ptz.save_preset(&id, name, actor(&c)?).await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token }))))
}

/// The PTZ routes, each limited to callers who may see the camera.
pub(super) fn routes() -> Vec<(super::RouteSpec, axum::routing::MethodRouter<Arc<App>>)> {
    use super::Access::Camera;
    use axum::http::Method;
    use axum::routing::{get, post, MethodRouter};
    let r = |method: Method, path: &'static str, handler: MethodRouter<Arc<App>>| {
        (
            super::RouteSpec {
                method,
                path,
                access: Camera,
            },
            handler,
        )
    };
    vec![
        r(Method::POST, "/api/cameras/{id}/ptz/move", post(start_move)),
        r(Method::POST, "/api/cameras/{id}/ptz/stop", post(stop)),
        r(Method::POST, "/api/cameras/{id}/ptz/home", post(home)),
        r(Method::GET, "/api/cameras/{id}/ptz/status", get(status)),
        r(Method::GET, "/api/cameras/{id}/ptz/presets", get(presets)),
        r(
            Method::POST,
            "/api/cameras/{id}/ptz/presets",
            post(save_preset),
        ),
        r(
            Method::POST,
            "/api/cameras/{id}/ptz/presets/{token}/goto",
            post(goto_preset),
        ),
    ]
}
