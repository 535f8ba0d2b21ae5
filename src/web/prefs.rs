//! The caller's own UI preferences (`/api/me/prefs`): the live grid's layout,
//! camera groups and tour, stored per user by [`crate::auth::prefs`] so they
//! follow the user to any browser. Not audited: they change one person's
//! screen, not footage or access.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};

use super::error::{ApiError, ApiJson};
use super::{App, Caller};
use crate::auth::prefs::Prefs;

/// `GET /api/me/prefs` → the caller's preferences (defaults if never saved).
pub async fn get(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Prefs>, ApiError> {
    let name = c.user.name.clone();
    Ok(Json(
        app.blocking(move |a| a.users.prefs().get(&name)).await?,
    ))
}

/// `PUT /api/me/prefs {live: {layout, groups, group, tour}}` → what was stored.
/// The whole document is replaced; absent fields take their defaults.
pub async fn put(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(prefs): ApiJson<Prefs>,
) -> Result<Json<Prefs>, ApiError> {
    prefs.validate().map_err(ApiError::invalid_argument)?;
    let name = c.user.name.clone();
    let stored = prefs.clone();
    app.blocking(move |a| a.users.prefs().set(&name, &stored))
        .await?;
    Ok(Json(prefs))
}
