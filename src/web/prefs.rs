//! The caller's own UI preferences (`/api/me/prefs`): the live grid's layout,
//! camera groups and tour, stored per user by [`crate::auth::prefs`] so they
//! follow the user to any browser. Not audited: they change one person's
//! screen, not footage or access.
//!
//! `/api/live/groups`: the shared camera groups administrators define for
//! everyone. Each user gets them filtered to the cameras that user may see (a
//! group left empty is not listed). Not audited either: a group grants nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};

use super::error::{ApiError, ApiJson};
use super::{App, Caller};
use crate::auth::prefs::{validate_groups, Group, Prefs};

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

/// Body of `/api/live/groups`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedGroups {
    /// In the order the picker lists them.
    groups: Vec<Group>,
}

/// `GET /api/live/groups` → `{groups: [{name, cameras}]}`: the shared groups, each
/// with only the cameras the caller may see, in the group's order.
pub async fn shared(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
) -> Result<Json<SharedGroups>, ApiError> {
    let all = app.blocking(|a| a.users.prefs().shared_groups()).await?;
    let groups = all
        .into_iter()
        .filter_map(|mut g| {
            g.cameras
                .retain(|id| c.user.may_see(id) && app.cameras.get(id).is_some());
            (!g.cameras.is_empty()).then_some(g)
        })
        .collect();
    Ok(Json(SharedGroups { groups }))
}

/// `PUT /api/live/groups {groups}` (admins) → what was stored: replaces the shared groups.
pub async fn put_shared(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<SharedGroups>,
) -> Result<Json<SharedGroups>, ApiError> {
    validate_groups(&body.groups, "groups").map_err(ApiError::invalid_argument)?;
    let stored = body.groups.clone();
    app.blocking(move |a| a.users.prefs().set_shared_groups(&stored))
        .await?;
    Ok(Json(body))
}
