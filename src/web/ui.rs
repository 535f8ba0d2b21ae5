//! The static UI from `web/`, embedded in the binary at build time so an
//! install is one file. Until an admin exists the UI itself shows the
//! first-run setup form (see `web::setup`).

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

use super::error::ApiError;

static UI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Fallback handler: static files, or a JSON 404 under `/api/`.
pub async fn serve(req: Request) -> Response {
    let path = req.uri().path();
    if path.starts_with("/api/") || path == "/api" {
        return ApiError::not_found("no such API route").into_response();
    }
    let rel = match path.trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    // include_dir looks paths up in a table, so `..` cannot escape it; the
    // check only keeps odd paths out of the lookup altogether.
    if rel
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    match UI.get_file(rel) {
        Some(f) => (
            [
                (header::CONTENT_TYPE, content_type(rel)),
                // Revalidate each load so a new binary's UI shows at once.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            f.contents(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
