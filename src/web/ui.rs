//! The static UI from `web/`, embedded in the binary at build time so an
//! install is one file. Until an admin exists (`cleannvr run` on a fresh
//! data directory) it serves a page that says how to create one instead.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use include_dir::{include_dir, Dir};

use super::error::ApiError;
use super::App;

static UI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

const SETUP_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>cleannvr: setup needed</title></head><body><h1>No admin user yet</h1>\
<p>Create one on the server, then reload this page:</p>\
<pre>cleannvr --config /etc/cleannvr/cleannvr.toml user add admin --role admin</pre>\
<p>The command reads the password from standard input. Stop cleannvr first: \
the database allows one process at a time.</p></body></html>";

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

/// Fallback handler: static files, a JSON 404 under `/api/`, or the setup page.
pub async fn serve(State(app): State<Arc<App>>, req: Request) -> Response {
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
    match app.users.any_admin() {
        Ok(true) => {}
        Ok(false) => return (StatusCode::SERVICE_UNAVAILABLE, Html(SETUP_PAGE)).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
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
