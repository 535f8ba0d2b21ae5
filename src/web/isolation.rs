//! `GET /api/cameras/{id}/isolation` (admin): the ONVIF isolation audit of one
//! camera (gateway, DNS, NTP, protocols), so IT staff can see from the UI
//! whether a camera has a possible route to the internet. Each audit's result is
//! kept as the camera's latest (`onvif::isolation_record`) for the report.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::{ApiError, App, Caller};
use crate::onvif::isolation_record::{Record, Records};

/// Asks the camera over ONVIF (report only; nothing is changed on the camera).
pub async fn report(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cam = app
        .cameras
        .get(&id)
        .ok_or_else(|| ApiError::not_found("no such camera"))?;
    let Some(result) = crate::onvif::audit::audit_camera(&cam).await else {
        return Err(ApiError::not_found(
            "this camera is not configured by ONVIF (add onvif = { host = ... } to audit it)",
        ));
    };
    let record = Record::of(
        &id,
        app.clock.now_ns(),
        &c.user.name,
        result.as_ref().map_err(|e| e.to_string()),
    );
    // The answer stands even if it cannot be kept; the report then shows an older one.
    if let Err(e) = app
        .blocking(move |app| Records::open(app.store.db())?.put(&record))
        .await
    {
        tracing::error!(camera = %id, error = %e.detail, "storing the isolation audit's result");
    }
    match result {
        Err(e) => Err(ApiError::upstream(e.to_string())),
        Ok(r) => Ok(Json(json!({
            "route_out": r.has_route_out(),
            "report": r,
        }))),
    }
}
