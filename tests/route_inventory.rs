//! The access and CSRF walks (`tests/web_api.rs`) iterate `web::route_table()`.
//! They prove something only if that table is every route the server has. axum's
//! `Router` cannot list its routes (it has no public inventory), so this test
//! checks it from both sides:
//! - the source: the only router-building calls in `src/` are the loop in
//!   `web::router` that adds each table entry behind the guard, and the UI
//!   fallback; a route added straight onto a router (`.route`, `.nest`,
//!   `.merge`, another `Router::new()`) fails here;
//! - the running router: paths under `/api/` that are not in the table get a
//!   404 from the fallback, never an answer.
//!
//! Also here, because it is a property of every route: each API response
//! (refused or served) carries `Cache-Control: no-store` (a found timeline
//! thumbnail may be kept privately instead: `tests/thumbnails.rs`) and the
//! framing, sniffing and opener headers SECURITY.md lists.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

use cleannvr::clock::ManualClock;
use cleannvr::config::Config;
use cleannvr::web::{self, route_table, App};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_route_table_is_the_only_source_of_routes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let calls = [
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        ".merge(",
        ".fallback(",
        ".fallback_service(",
        "Router::new(",
        "Router::<",
    ];
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Only code that uses axum can add a route (a `merge` of legal holds cannot).
        if !text.contains("axum") {
            continue;
        }
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            if calls.iter().any(|c| code.contains(c)) {
                let rel = f.strip_prefix(&src).unwrap().display().to_string();
                found.push(format!("{rel}: {}", code.trim()));
            }
        }
    }
    assert_eq!(
        found,
        vec![
            "web/mod.rs: let mut r = Router::new();",
            "web/mod.rs: r = r.route(spec.path, guarded);",
            "web/mod.rs: r.fallback(ui::serve)",
        ],
        "routes must come from web::routes() (and so sit behind the guard and in the walks)"
    );
}

const T0: i64 = 1_800_000_000 * cleannvr::clock::NS_PER_SEC;

fn app(dir: &Path) -> Arc<App> {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\n\
         [[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\n",
        dir.display()
    );
    let cfg = Config::from_toml(&toml, Path::new("t.toml"), |_| None).unwrap();
    common::app(cfg, Arc::new(ManualClock::new(T0)), Default::default())
}

async fn send(router: &Router, mut req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let addr: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(web::ClientAddr(addr)));
    let resp = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (parts.status, parts.headers, body)
}

#[tokio::test]
async fn every_api_response_is_no_store_and_unframeable() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    app.users
        .add(
            "root",
            cleannvr::auth::Role::Admin,
            None,
            "root password 1",
            T0,
        )
        .unwrap();
    let router = web::router(app.clone());
    let login = Request::post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"username":"root","password":"root password 1"}"#,
        ))
        .unwrap();
    let (status, h, body) = send(&router, login).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = h[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let check = |what: &str, h: &HeaderMap| {
        for (name, value) in [
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            ("cross-origin-opener-policy", "same-origin"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{what}: {name}"
            );
        }
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{what}: {csp}"
        );
    };
    // Logout last: it ends the session the other requests use.
    let mut table = route_table();
    table.sort_by_key(|r| r.path == "/api/logout");
    for spec in table {
        let uri = spec.path.replace("{id}", "a").replace("{name}", "root");
        for with_session in [false, true] {
            let mut b = Request::builder().method(spec.method.clone()).uri(&uri);
            if with_session {
                b = b
                    .header(header::COOKIE, &cookie)
                    .header(web::CSRF_HEADER, &csrf);
            }
            let (status, h, _) = send(&router, b.body(Body::empty()).unwrap()).await;
            check(&format!("{} {uri} ({status})", spec.method), &h);
        }
    }
    // Unknown API paths and the UI get the framing headers too.
    let (_, h, _) = send(
        &router,
        Request::get("/api/nope").body(Body::empty()).unwrap(),
    )
    .await;
    check("GET /api/nope", &h);
    let (status, h, _) = send(&router, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
}

#[tokio::test]
async fn api_paths_outside_the_table_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let table = route_table();
    for path in [
        "/api",
        "/api/",
        "/api/debug",
        "/api/config",
        "/api/users/admin/password",
        "/api/cameras/a/config",
        "/api/sessions",
        "/api/audit/export",
    ] {
        assert!(table.iter().all(|r| r.path != path));
        for method in [Method::GET, Method::POST] {
            let resp = web::router(app.clone())
                .oneshot(
                    Request::builder()
                        .method(method.clone())
                        .uri(path)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
}
