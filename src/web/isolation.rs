//! `GET /api/cameras/{id}/isolation` (admin): the ONVIF isolation audit of one
//! camera (gateway, DNS, NTP, protocols), so IT staff can see from the UI
//! whether a camera has a possible route to the internet.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, App};

/// Asks the camera over ONVIF (report only; nothing is changed on the camera).
pub async fn report(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cam = app
        .cameras
        .get(&id)
        .ok_or_else(|| ApiError::not_found("no such camera"))?;
    match crate::onvif::audit::audit_camera(&cam).await {
        None => Err(ApiError::not_found(
            "this camera is not configured by ONVIF (add onvif = { host = ... } to audit it)",
        )),
        Some(Err(e)) => Err(ApiError::bad_gateway(e.to_string())),
        Some(Ok(r)) => Ok(Json(json!({
            "route_out": r.has_route_out(),
            "report": r,
        }))),
    }
}
