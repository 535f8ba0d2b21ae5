//! Web: the HTTP API and UI. For now only the unauthenticated health check;
//! every other route will require a session.

use std::sync::Arc;
use std::time::Instant;

use axum::{routing::get, Json, Router};
use serde_json::json;

/// Router with `GET /api/health`.
pub fn router() -> Router {
    let started = Arc::new(Instant::now());
    Router::new().route(
        "/api/health",
        get(move || {
            let started = started.clone();
            async move {
                Json(json!({
                    "status": "ok",
                    "version": env!("CARGO_PKG_VERSION"),
                    "uptime_seconds": started.elapsed().as_secs(),
                }))
            }
        }),
    )
}
