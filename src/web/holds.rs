//! `/api/holds`: legal holds (evidence locks). Operators and admins hold ranges of the
//! cameras they may see, or one of their exports; only admins release. Every change is
//! audited with who and why. Storage and the retention rule live in `store::holds`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{parse_time, span_ns};
use super::error::{ApiError, ApiJson};
use super::{App, Caller};
use crate::audit::{Action, Event};
use crate::auth::Role;
use crate::clock::rfc3339;
use crate::store::holds::Hold;

/// Longest reason kept (a case reference and a sentence, not a document).
const MAX_REASON: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHold {
    /// Cameras to hold; taken from the export when only `export` is given.
    #[serde(default)]
    cameras: Vec<String>,
    start: Option<String>,
    end: Option<String>,
    reason: String,
    /// RFC 3339; after it the hold stops protecting.
    until: Option<String>,
    /// An export to keep past `export_retain_days` (and, without `cameras`, its footage).
    export: Option<String>,
}

/// `POST /api/holds`: 201 `{id}`.
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiJson(body): ApiJson<CreateHold>,
) -> Result<Response, ApiError> {
    if !c.user.role.can_export() {
        return Err(ApiError::permission_denied(
            "only operators and admins may hold footage",
        ));
    }
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(ApiError::invalid_argument(format!(
            "a reason (1 to {MAX_REASON} characters) is required"
        )));
    }
    let now = app.clock.now_ns();
    let until_ns = body
        .until
        .as_deref()
        .map(|u| parse_time("until", u))
        .transpose()?;
    if until_ns.is_some_and(|u| u <= now) {
        return Err(ApiError::invalid_argument("until must be in the future"));
    }
    let mut cameras = body.cameras;
    let (mut start, mut end) = (body.start, body.end);
    if let Some(x) = &body.export {
        let meta = export_meta(&app, &c, x).await?;
        if cameras.is_empty() && start.is_none() && end.is_none() {
            cameras = str_list(&meta["cameras"]);
            start = meta["start"].as_str().map(str::to_owned);
            end = meta["end"].as_str().map(str::to_owned);
        }
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::invalid_argument("start and end are required"));
    };
    let (start_ns, end_ns) = (parse_time("start", &start)?, parse_time("end", &end)?);
    if span_ns(start_ns, end_ns)? <= 0 {
        return Err(ApiError::invalid_argument("end must be after start"));
    }
    // Only recorded footage can be evidence: an operator's hold ends now at the latest,
    // so no operator can switch retention off for footage not yet recorded (and fill
    // the disk with it). Admins may hold ahead, for an incident still going on.
    let end_ns = if c.user.role == Role::Admin {
        end_ns
    } else {
        end_ns.min(now)
    };
    if end_ns <= start_ns {
        return Err(ApiError::invalid_argument(
            "start is in the future: only footage already recorded can be held \
             (an admin may hold footage ahead)",
        ));
    }
    if cameras.is_empty() {
        return Err(ApiError::invalid_argument("name at least one camera"));
    }
    cameras.sort();
    cameras.dedup();
    for id in &cameras {
        if !c.user.may_see(id) {
            return Err(ApiError::permission_denied(format!(
                "not allowed to see camera {id}"
            )));
        }
        if !app.camera_reachable(&c.user, id) {
            return Err(ApiError::not_found(format!("no camera {id}")));
        }
    }
    let hold = Hold {
        id: crate::export::new_id(),
        cameras,
        start_ns,
        end_ns,
        reason,
        created_by: c.user.name.clone(),
        created_ns: now,
        until_ns,
        export: body.export,
    };
    let detail = format!(
        "hold={} from={} to={} until={} export={} reason={}",
        hold.id,
        rfc3339(hold.start_ns),
        rfc3339(hold.end_ns),
        hold.until_ns.map(rfc3339).unwrap_or_else(|| "none".into()),
        hold.export.as_deref().unwrap_or("none"),
        hold.reason
    );
    {
        let (app, hold) = (app.clone(), hold.clone());
        tokio::task::spawn_blocking(move || app.store.holds().insert(&hold)).await??;
    }
    // Stored first: a hold that protects without its audit entry is the safe failure.
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::HoldCreate,
        target: hold.cameras.join(","),
        client: c.client.clone(),
        detail,
    })
    .await?;
    // The range as stored: `end` may have been cut to now.
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": hold.id,
            "start": rfc3339(hold.start_ns),
            "end": rfc3339(hold.end_ns),
        })),
    )
        .into_response())
}

/// The job file of export `id` if the caller may hold it (its owner or an admin, with
/// rights to all its cameras now); 404 otherwise, so other people's ids are not confirmed.
async fn export_meta(app: &Arc<App>, c: &Caller, id: &str) -> Result<Value, ApiError> {
    let not_found = || ApiError::not_found("no such export");
    if !crate::export::valid_id(id) {
        return Err(not_found());
    }
    let path = crate::export::exports_dir(app.store.dir()).join(format!("{id}.json"));
    let meta: Value = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await?
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(not_found)?;
    if meta["owner"].as_str() != Some(&c.user.name) && c.user.role != Role::Admin {
        return Err(not_found());
    }
    if let Some(cam) = str_list(&meta["cameras"])
        .iter()
        .find(|cam| !c.user.may_see(cam))
    {
        return Err(ApiError::permission_denied(format!(
            "not allowed to see camera {cam}"
        )));
    }
    Ok(meta)
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn view(h: &Hold, now: i64) -> Value {
    json!({
        "id": h.id,
        "cameras": h.cameras,
        "start": rfc3339(h.start_ns),
        "end": rfc3339(h.end_ns),
        "reason": h.reason,
        "created_by": h.created_by,
        "created": rfc3339(h.created_ns),
        "until": h.until_ns.map(rfc3339),
        "export": h.export,
        "active": h.active(now),
    })
}

/// `GET /api/holds`: the holds on cameras the caller may see (all of a hold's cameras,
/// so a restricted user learns nothing of the others), expired ones marked inactive.
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let holds = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || app.store.holds().list()).await??
    };
    let now = app.clock.now_ns();
    let holds: Vec<Value> = holds
        .iter()
        .filter(|h| h.cameras.iter().all(|cam| c.user.may_see(cam)))
        .map(|h| view(h, now))
        .collect();
    Ok(Json(json!({ "holds": holds })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    reason: String,
}

/// `DELETE /api/holds/{id}` with `{reason}`: admins only; audited with who and why.
pub async fn release(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Release>,
) -> Result<Json<Value>, ApiError> {
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(ApiError::invalid_argument(format!(
            "a reason (1 to {MAX_REASON} characters) is required to release a hold"
        )));
    }
    let found = {
        let (app, id) = (app.clone(), id.clone());
        tokio::task::spawn_blocking(move || app.store.holds().get(&id)).await??
    };
    let hold = found.ok_or_else(|| ApiError::not_found("no such hold"))?;
    // Recorded first: a release that cannot be audited does not happen (the footage
    // stays protected), and a hold never disappears without a record.
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::HoldRelease,
        target: hold.cameras.join(","),
        client: c.client.clone(),
        detail: format!(
            "hold={} from={} to={} held_by={} held_for={} reason={reason}",
            hold.id,
            rfc3339(hold.start_ns),
            rfc3339(hold.end_ns),
            hold.created_by,
            hold.reason
        ),
    })
    .await?;
    {
        let app = app.clone();
        tokio::task::spawn_blocking(move || app.store.holds().remove(&id)).await??;
    }
    Ok(Json(json!({ "released": hold.id })))
}
