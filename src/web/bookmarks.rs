//! Bookmarks (`/api/bookmarks`): operators mark a moment of a camera with a
//! name and a note; everyone who may see the camera sees the mark. Adding and
//! deleting are audited; only the author (or an admin) deletes one. Records
//! live in [`crate::store::bookmarks`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{parse_time, span_ns, MAX_RANGE_NS};
use super::error::{ApiError, ApiJson, ApiQuery};
use super::{App, Caller};
use crate::audit::{Action, Event};
use crate::auth::Role;
use crate::clock::{rfc3339, NS_PER_SEC};
use crate::store::bookmarks::Bookmark;

/// Longest name, characters.
pub const MAX_NAME: usize = 120;
/// Longest note, characters.
pub const MAX_NOTE: usize = 2000;
/// Most bookmarks one answer carries; `truncated` says when there were more.
pub const MAX_LIST: usize = 5000;

fn view(b: &Bookmark) -> Value {
    json!({
        "id": b.id.to_string(),
        "camera": b.camera,
        "time": rfc3339(b.time_ns),
        "name": b.name,
        "note": b.note,
        "created_by": b.created_by,
        "created": rfc3339(b.created_ns),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBookmark {
    camera: String,
    time: String,
    name: String,
    #[serde(default)]
    note: String,
}

/// `POST /api/bookmarks {camera, time, name, note?}` → 201 with the bookmark.
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(body): ApiJson<NewBookmark>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_owned();
    let note = body.note.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::invalid_argument(format!(
            "name: 1 to {MAX_NAME} characters"
        )));
    }
    if note.chars().count() > MAX_NOTE {
        return Err(ApiError::invalid_argument(format!(
            "note: at most {MAX_NOTE} characters"
        )));
    }
    let time_ns = parse_time("time", &body.time)?;
    let now = app.clock.now_ns();
    // A mark is on footage: a moment still to come has none yet.
    if time_ns > now + 60 * NS_PER_SEC {
        return Err(ApiError::invalid_argument("time is in the future"));
    }
    if !c.user.may_see(&body.camera) {
        return Err(ApiError::permission_denied(format!(
            "not allowed to see camera {}",
            body.camera
        )));
    }
    if !app.camera_reachable(&c.user, &body.camera) {
        return Err(ApiError::not_found(format!("no camera {}", body.camera)));
    }
    let b = Bookmark {
        id: 0,
        camera: body.camera,
        time_ns,
        name,
        note,
        created_by: c.user.name.clone(),
        created_ns: now,
    };
    let b = app.blocking(move |a| a.store.bookmarks().insert(b)).await?;
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::BookmarkAdd,
        target: b.camera.clone(),
        client: c.client.clone(),
        detail: format!(
            "bookmark={} time={} name={}",
            b.id,
            rfc3339(b.time_ns),
            b.name
        ),
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&b))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    start: Option<String>,
    end: Option<String>,
    /// Comma-separated camera ids; all the caller may see when absent.
    cameras: Option<String>,
    /// Words that the name or the note must contain (any case).
    q: Option<String>,
}

/// `GET /api/bookmarks?start=&end=&cameras=&q=`: bookmarks of the caller's cameras in
/// the range (default: the last 7 days), oldest first.
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = app.clock.now_ns();
    let end = q
        .end
        .as_deref()
        .map(|s| parse_time("end", s))
        .transpose()?
        .unwrap_or(now + 60 * NS_PER_SEC);
    let start = q
        .start
        .as_deref()
        .map(|s| parse_time("start", s))
        .transpose()?
        .unwrap_or(end.saturating_sub(7 * 86_400 * NS_PER_SEC));
    if start >= end {
        return Err(ApiError::invalid_argument("start must be before end"));
    }
    if span_ns(start, end)? > MAX_RANGE_NS {
        return Err(ApiError::invalid_argument("range longer than 31 days"));
    }
    let named: Vec<String> = q
        .cameras
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let cameras: Vec<String> = if named.is_empty() {
        app.cameras
            .all()
            .iter()
            .map(|cam| cam.id.clone())
            .filter(|id| c.user.may_see(id))
            .collect()
    } else {
        for id in &named {
            if !c.user.may_see(id) {
                return Err(ApiError::permission_denied(format!(
                    "you may not see camera {id}"
                )));
            }
            if !app.camera_reachable(&c.user, id) {
                return Err(ApiError::not_found(format!("no camera {id}")));
            }
        }
        named
    };
    let words: Vec<String> =
        q.q.as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
    let (mut found, mut truncated) = app
        .blocking(move |a| {
            let mut all = Vec::new();
            let mut truncated = false;
            for cam in &cameras {
                let got = a.store.bookmarks().range(cam, start, end, usize::MAX)?;
                for b in got {
                    let text = format!("{}\n{}", b.name, b.note).to_lowercase();
                    if words.iter().all(|w| text.contains(w.as_str())) {
                        all.push(b);
                    }
                }
                truncated |= all.len() > MAX_LIST;
            }
            anyhow::Ok((all, truncated))
        })
        .await?;
    found.sort_by_key(|b| (b.time_ns, b.id));
    truncated |= found.len() > MAX_LIST;
    found.truncate(MAX_LIST);
    Ok(Json(json!({
        "start": rfc3339(start),
        "end": rfc3339(end),
        "truncated": truncated,
        "bookmarks": found.iter().map(view).collect::<Vec<_>>(),
    })))
}

/// `DELETE /api/bookmarks/{id}`: the author, or an admin; audited.
pub async fn remove(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("no such bookmark");
    let id: u64 = id.parse().map_err(|_| not_found())?;
    // Someone else's bookmark on a camera the caller cannot see is not confirmed.
    let b = app
        .blocking(move |a| a.store.bookmarks().get(id))
        .await?
        .filter(|b| c.user.may_see(&b.camera))
        .ok_or_else(not_found)?;
    if b.created_by != c.user.name && c.user.role != Role::Admin {
        return Err(ApiError::permission_denied(format!(
            "bookmark {} is {}'s: only they or an admin may delete it",
            b.id, b.created_by
        )));
    }
    app.blocking(move |a| a.store.bookmarks().remove(id))
        .await?;
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::BookmarkDelete,
        target: b.camera.clone(),
        client: c.client.clone(),
        detail: format!(
            "bookmark={} time={} name={} by={}",
            b.id,
            rfc3339(b.time_ns),
            b.name,
            b.created_by
        ),
    })
    .await?;
    Ok(Json(json!({ "deleted": b.id.to_string() })))
}
