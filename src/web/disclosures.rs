//! `/api/disclosures`: the disclosure register (admins), as JSON or CSV. The
//! register itself lives in `export::disclosure`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::parse_time;
use super::error::{ApiError, ApiQuery};
use super::App;
use crate::export::disclosure::{self, Record, Register};

/// Most rows one answer carries (years of a busy control room's exports).
const LIMIT: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterQuery {
    /// RFC 3339; exports made at or after it (default: all).
    start: Option<String>,
    /// RFC 3339; exports made before it (default: now and later).
    end: Option<String>,
}

async fn rows(app: &Arc<App>, q: RegisterQuery) -> Result<Vec<Record>, ApiError> {
    let start = q
        .start
        .as_deref()
        .map(|s| parse_time("start", s))
        .transpose()?
        .unwrap_or(0);
    let end = q
        .end
        .as_deref()
        .map(|s| parse_time("end", s))
        .transpose()?
        .unwrap_or(i64::MAX);
    if end <= start {
        return Err(ApiError::invalid_argument("end must be after start"));
    }
    let app = app.clone();
    Ok(
        tokio::task::spawn_blocking(move || {
            Register::open(app.store.db())?.list(start, end, LIMIT)
        })
        .await??,
    )
}

/// `GET /api/disclosures?start=&end=`: `{disclosures: [...], truncated}`, oldest first.
pub async fn list(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<RegisterQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = rows(&app, q).await?;
    let truncated = rows.len() == LIMIT;
    Ok(Json(json!({ "disclosures": rows, "truncated": truncated })))
}

/// `GET /api/disclosures.csv?start=&end=`: the same rows for a spreadsheet.
pub async fn csv(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<RegisterQuery>,
) -> Result<Response, ApiError> {
    let rows = rows(&app, q).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"cleannvr-disclosures.csv\"",
            ),
        ],
        disclosure::csv(&rows),
    )
        .into_response())
}
