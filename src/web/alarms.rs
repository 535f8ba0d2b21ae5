//! `/api/alarms`: the alarms operators and admins see (active ones and the
//! newest cleared ones, limited to the cameras the caller may see) and their
//! acknowledgement, which is audited. Records live in `alarms`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiQuery};
use super::{App, Caller};
use crate::alarms::{AckError, Alarm};
use crate::audit::{Action, Event};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Cleared alarms to include besides the active ones (default 50, at most 1000).
    limit: Option<usize>,
}

fn visible(c: &Caller, a: &Alarm) -> bool {
    a.camera.as_deref().is_none_or(|cam| c.user.may_see(cam))
}

/// `GET /api/alarms` → `{alarms: [...], unacknowledged}`, newest first.
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50).min(1000);
    let all = app.blocking(move |a| a.alarms.list(limit)).await?;
    let mine: Vec<&Alarm> = all.iter().filter(|a| visible(&c, a)).collect();
    let unacknowledged = mine
        .iter()
        .filter(|a| a.cleared_ns.is_none() && a.acked_by.is_none())
        .count();
    Ok(Json(json!({
        "alarms": mine.iter().map(|a| a.json()).collect::<Vec<_>>(),
        "unacknowledged": unacknowledged,
    })))
}

/// `POST /api/alarms/{id}/ack` → the alarm; audited as `alarm_ack`.
pub async fn ack(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("no such alarm");
    let id: u64 = id.parse().map_err(|_| not_found())?;
    let name = c.user.name.clone();
    let now = app.clock.now_ns();
    // Checked before acknowledging, so an alarm of a camera the caller may not see is
    // neither confirmed nor changed.
    let before = app
        .blocking(move |a| a.alarms.get(id))
        .await?
        .filter(|a| visible(&c, a))
        .ok_or_else(not_found)?;
    let first = before.acked_by.is_none();
    let alarm = app
        .blocking(move |a| {
            a.alarms.ack(id, &name, now).map_err(|e| match e {
                AckError::NotFound => not_found(),
                AckError::Store(e) => ApiError::from(e),
            })
        })
        .await?;
    if first {
        app.record(Event {
            actor: c.user.name.clone(),
            action: Action::AlarmAck,
            target: alarm.camera.clone().unwrap_or_default(),
            client: c.client.clone(),
            detail: format!("alarm={} kind={}", alarm.id, alarm.kind.as_str()),
        })
        .await?;
    }
    Ok(Json(alarm.json()))
}
