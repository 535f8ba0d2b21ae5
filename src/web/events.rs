//! Camera events (`GET /api/events`, `GET /api/cameras/{id}/events`, the
//! previous and next event beside playback, counts per day for the date
//! picker): thin readers of [`crate::store::events`], filtered to the
//! caller's cameras.

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
/// overlapping the range (default: the last 24 hours), oldest first.
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
    let kinds = parse_kinds(q.kind.as_deref())?;
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

/// Comma-separated kinds (`motion,tamper`); empty (all) when absent.
fn parse_kinds(kind: Option<&str>) -> Result<Vec<Kind>, ApiError> {
    let mut kinds = Vec::new();
    for k in kind.iter().flat_map(|s| s.split(',')).map(str::trim) {
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
    Ok(kinds)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjacentQuery {
    /// Default: now.
    at: Option<String>,
    /// Comma-separated kinds; all when absent.
    kind: Option<String>,
}

/// `GET /api/cameras/{id}/events/adjacent?at=&kind=`: the camera's event
/// (of those kinds) starting last before `at` (default now) and first after it, however
/// far away: "previous" and "next event" beside playback.
pub async fn adjacent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AdjacentQuery>,
) -> Result<Json<Value>, ApiError> {
    let at = match &q.at {
        Some(s) => parse_time("at", s)?,
        None => app.clock.now_ns(),
    };
    let kinds = parse_kinds(q.kind.as_deref())?;
    let (previous, next) = app
        .blocking(move |app| app.store.events().adjacent(&id, at, &kinds))
        .await?;
    Ok(Json(json!({
        "at": rfc3339(at),
        "previous": previous.as_ref().map(event_json),
        "next": next.as_ref().map(event_json),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaysQuery {
    start: Option<String>,
    end: Option<String>,
    /// Comma-separated kinds; all when absent.
    kind: Option<String>,
}

/// `GET /api/cameras/{id}/events/days?start=&end=&kind=`: how many events
/// start on each day (`YYYY-MM-DD` in the server's time zone, as
/// `/api/cameras/{id}/days`) of the range (default: the last 31 days), for
/// the date picker. Days without events are left out.
pub async fn days(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DaysQuery>,
) -> Result<Json<Value>, ApiError> {
    let end = match &q.end {
        Some(s) => parse_time("end", s)?,
        None => app.clock.now_ns(),
    };
    let start = match &q.start {
        Some(s) => parse_time("start", s)?,
        None => end.saturating_sub(31 * 86_400 * NS_PER_SEC),
    };
    if start >= end {
        return Err(ApiError::invalid_argument("start must be before end"));
    }
    // A calendar month is 31 days and an hour where the clocks go back.
    if span_ns(start, end)? > MAX_RANGE_NS + 86_400 * NS_PER_SEC {
        return Err(ApiError::invalid_argument("range longer than 32 days"));
    }
    let kinds = parse_kinds(q.kind.as_deref())?;
    let tz = app.config.server.time_zone();
    let zone = crate::clock::zone_name(&tz);
    let counts = {
        let id = id.clone();
        app.blocking(move |app| {
            app.store
                .events()
                .count_by_day(&id, start, end, &kinds, &tz)
        })
        .await?
    };
    Ok(Json(json!({
        "camera": id,
        "time_zone": zone,
        "days": counts
            .iter()
            .map(|(d, n)| (d.to_string(), Value::from(*n)))
            .collect::<serde_json::Map<_, _>>(),
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
