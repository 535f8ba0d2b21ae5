//! `GET /api/report?from=&to=&format=` (admins): the Code of Practice report of a
//! period. Thin: the figures are `report::build`'s, the documents `report::render`'s.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ApiQuery};
use super::App;
use crate::report::{self, render::Format, Sources};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// A day (`YYYY-MM-DD`, the server's zone: from its first instant) or an RFC 3339 time.
    from: String,
    /// A day (up to the end of it) or an RFC 3339 time (exclusive).
    to: String,
    /// `json` (default), `csv` or `html` (both as downloads).
    #[serde(default)]
    format: Option<Format>,
}

/// The report as JSON, or as a CSV or HTML download.
pub async fn get(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let tz = app.config.server.time_zone();
    let bound = |name: &str, v: &str, end: bool| {
        report::parse_bound(v, end, &tz)
            .map_err(|e| ApiError::invalid_argument(format!("{name}: {e:#}")))
    };
    let (from, to) = (bound("from", &q.from, false)?, bound("to", &q.to, true)?);
    report::check_period(from, to)?;
    let format = q.format.unwrap_or(Format::Json);
    let r = app
        .blocking(move |app| {
            let cameras = app.cameras.all();
            report::build(
                &Sources {
                    config: &app.config,
                    cameras: &cameras,
                    store: &app.store,
                    audit: &app.audit,
                    users: &app.users,
                    now_ns: app.clock.now_ns(),
                },
                from,
                to,
            )
        })
        .await?;
    let body = format.render(&r);
    if format == Format::Json {
        return Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response());
    }
    let name = format!(
        "attachment; filename=\"cleannvr-report-{}-{}.{}\"",
        &r.from_local[..10],
        &r.to_local[..10],
        format.extension()
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}
