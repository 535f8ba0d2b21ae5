//! `/api/alarms`: the alarms operators and admins see (active ones and the
//! newest cleared ones, limited to the cameras the caller may see) and each
//! operator's own acknowledgement, with an optional note, which is audited.
//! Records live in `alarms`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiQuery};
use super::{App, Caller};
use crate::alarms::{Alarm, MAX_NOTE_CHARS};
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

/// The body of an acknowledgement (all optional; an empty body is fine).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    #[serde(default)]
    note: String,
}

/// The note of an acknowledgement: trimmed, at most [`MAX_NOTE_CHARS`], no
/// control characters but line breaks and tabs.
fn note(body: &[u8]) -> Result<String, ApiError> {
    let b: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid_argument(format!("body: {e}")))?
    };
    let n = b.note.trim();
    if n.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::invalid_argument(format!(
            "note: at most {MAX_NOTE_CHARS} characters"
        )));
    }
    if n.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::invalid_argument("note: no control characters"));
    }
    Ok(n.to_owned())
}

/// An alarm for `c`: its JSON with `acked_by_me`.
fn for_caller(c: &Caller, a: &Alarm) -> Value {
    let mut v = a.json();
    v["acked_by_me"] = json!(a.acked_by_user(&c.user.name));
    v
}

/// `GET /api/alarms` → `{alarms: [...], unacknowledged}`, newest first;
/// `unacknowledged` counts the active alarms the caller has not acknowledged
/// (another operator's acknowledgement does not count for them).
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
        .filter(|a| a.cleared_ns.is_none() && !a.acked_by_user(&c.user.name))
        .count();
    Ok(Json(json!({
        "alarms": mine.iter().map(|a| for_caller(&c, a)).collect::<Vec<_>>(),
        "unacknowledged": unacknowledged,
    })))
}

/// `POST /api/alarms/{id}/ack {note?}` → the alarm: the caller's own
/// acknowledgement, once per user; each is audited as `alarm_ack`.
pub async fn ack(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("no such alarm");
    let id: u64 = id.parse().map_err(|_| not_found())?;
    let note = note(&body)?;
    let name = c.user.name.clone();
    let now = app.clock.now_ns();
    // Checked before acknowledging, so an alarm of a camera the caller may not see is
    // neither confirmed nor changed.
    let seen = c.clone();
    app.blocking(move |a| a.alarms.get(id))
        .await?
        .filter(|a| visible(&seen, a))
        .ok_or_else(not_found)?;
    let noted = note.clone();
    let (alarm, added) = app
        .blocking(move |a| a.alarms.ack(id, &name, &noted, now))
        .await?;
    if added {
        let mut detail = format!("alarm={} kind={}", alarm.id, alarm.kind.as_str());
        if !note.is_empty() {
            detail += &format!(" note={}", note.replace(['\n', '\t'], " "));
        }
        app.record(Event {
            actor: c.user.name.clone(),
            role: Some(c.user.role.as_str().into()),
            action: Action::AlarmAck,
            target: alarm.camera.clone().unwrap_or_default(),
            client: c.client.clone(),
            detail,
        })
        .await?;
    }
    Ok(Json(for_caller(&c, &alarm)))
}
