//! Camera events (`GET /api/events`, `GET /api/cameras/{id}/events`): thin
//! readers of [`crate::store::events`], filtered to the caller's cameras.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{parse_time, span_ns, MAX_RANGE_NS};
use super::error::{ApiError, ApiQuery};
use super::{App, Caller};
use crate::clock::{rfc3339, NS_PER_SEC};
use crate::store::events::{CameraEvent, Kind};

/// Most events one answer carries; `truncated` says when there were more.
pub const MAX_EVENTS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    start: Option<String>,
    end: Option<String>,
    /// Comma-separated kinds (`motion,tamper`); all when absent.
    kind: Option<String>,
    /// Comma-separated camera ids; all the caller may see when absent.
    cameras: Option<String>,
    /// One camera (same as `cameras` with one id).
    camera: Option<String>,
    /// Alias of `start`.
    from: Option<String>,
    /// Alias of `end`.
    to: Option<String>,
}

/// `GET /api/events?start=&end=&kind=&cameras=`: events of the caller's
/// cameras (or of those named, which the caller must be allowed to see)
/// starting in the range (default: the last 24 hours), oldest first.
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    let named: Vec<String> = q
        .cameras
        .iter()
        .chain(q.camera.iter())
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let cameras = if named.is_empty() {
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
            if !app.camera_exists(id) {
                return Err(ApiError::not_found(format!("no camera {id}")));
            }
        }
        named
    };
    answer(&app, cameras, q).await
}

/// `GET /api/cameras/{id}/events?start=&end=&kind=` (the guard checked the camera).
pub async fn for_camera(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.cameras.is_some() || q.camera.is_some() {
        return Err(ApiError::invalid_argument(
            "the camera is in the path; use /api/events for several",
        ));
    }
    answer(&app, vec![id], q).await
}

async fn answer(
    app: &Arc<App>,
    cameras: Vec<String>,
    q: EventQuery,
) -> Result<Json<Value>, ApiError> {
    let now = app.clock.now_ns();
    let time = |field: &str, v: Option<&String>| v.map(|s| parse_time(field, s)).transpose();
    let end = time("end", q.end.as_ref().or(q.to.as_ref()))?.unwrap_or(now);
    let start = time("start", q.start.as_ref().or(q.from.as_ref()))?
        .unwrap_or(end.saturating_sub(86_400 * NS_PER_SEC));
    if start >= end {
        return Err(ApiError::invalid_argument("start must be before end"));
    }
    if span_ns(start, end)? > MAX_RANGE_NS {
        return Err(ApiError::invalid_argument("range longer than 31 days"));
    }
    let mut kinds = Vec::new();
    for k in q.kind.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if k.is_empty() {
            continue;
        }
        kinds.push(Kind::parse(k).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "kind: one of {}",
                Kind::ALL.map(Kind::as_str).join(", ")
            ))
        })?);
    }
    let (mut events, truncated) = app
        .blocking(move |app| {
            let mut all: Vec<CameraEvent> = Vec::new();
            let mut truncated = false;
            for cam in &cameras {
                let mut evs = app
                    .store
                    .events()
                    .range(cam, start, end, &kinds, MAX_EVENTS + 1)?;
                truncated |= evs.len() > MAX_EVENTS;
                all.append(&mut evs);
            }
            Ok::<_, anyhow::Error>((all, truncated))
        })
        .await?;
    events.sort_by(|a, b| (a.start_ns, &a.camera).cmp(&(b.start_ns, &b.camera)));
    let truncated = truncated || events.len() > MAX_EVENTS;
    events.truncate(MAX_EVENTS);
    Ok(Json(json!({
        "start": rfc3339(start),
        "end": rfc3339(end),
        "truncated": truncated,
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    })))
}

fn event_json(e: &CameraEvent) -> Value {
    let items = |v: &[(String, String)]| {
        v.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect::<serde_json::Map<_, _>>()
    };
    json!({
        "camera": e.camera,
        "kind": e.kind,
        "start": rfc3339(e.start_ns),
        "end": e.end_ns.map(rfc3339),
        "active": e.stateful && e.end_ns.is_none(),
        "end_reason": e.end_reason.map(|r| r.as_str()),
        "topic": e.topic,
        "source": items(&e.source),
        "data": items(&e.data),
    })
}
