//! Web: the HTTP API, `/metrics` and the embedded UI, served over rustls.
//!
//! Every route is declared once in [`routes`] together with who may call it
//! ([`Access`]); the router is built only from that table and each entry is
//! wrapped in the [`guard`] that enforces its access, CSRF and path-parameter
//! checks. So a route cannot exist without a stated access level, and the
//! tests walk the same table. Never add a route with `Router::route`
//! anywhere else.
//!
//! Handlers are thin: they check input, call `store`, `auth` and `audit`,
//! and shape JSON. The web layer never writes segment files.

mod account;
mod alarms;
mod api;
mod bookmarks;
mod cameras;
mod disclosures;
mod events;
mod holds;
pub mod conn;
mod isolation;
mod live;
mod oidc;
mod prefs;
pub mod revocation;
pub mod error;
pub mod setup;
pub mod media;
pub mod metrics;
mod ptz;
mod report;
pub mod tls;
mod ui;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{RequestExt, Router};

use crate::audit::{AuditLog, Event};
use crate::auth::ratelimit::{self, LoginLimiter};
use crate::auth::session::{constant_time_eq, Lifetimes, Session, Sessions};
use crate::auth::{Role, User, Users};
use crate::clock::{Clock, NS_PER_SEC};
use crate::config::Config;
use crate::status::StatusBoard;
use crate::store::Store;

pub use error::ApiError;
pub use metrics::Counters;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "cleannvr_session";
/// Header that state-changing requests must carry with the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest request body accepted: the API takes small JSON documents only.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Content-Security-Policy for every response: nothing from any other
/// origin, no inline script, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Everything the handlers share.
pub struct App {
    /// The configuration the server started with. Cameras change while it
    /// runs: read them from [`App::cameras`], never from `config.cameras`.
    pub config: Config,
    /// The cameras as configured now (the API and the config file change them).
    pub cameras: Arc<crate::supervisor::fleet::CameraList>,
    /// Adds, changes and removes cameras; set by `nvr` once the cameras run
    /// (absent in tests that build an `App` without cameras running).
    pub camera_admin: std::sync::OnceLock<Arc<crate::cameras::CameraAdmin>>,
    /// Segment index (and the database holding users, sessions and audit).
    pub store: Arc<Store>,
    /// Live camera status.
    pub status: Arc<StatusBoard>,
    /// Users.
    pub users: Users,
    /// Sessions.
    pub sessions: Sessions,
    /// Audit log.
    pub audit: Arc<AuditLog>,
    /// Login rate limiter (also counts first-run setup attempts).
    pub limiter: LoginLimiter,
    /// The first-run setup code, while no admin exists.
    pub setup: crate::auth::setup::SetupCode,
    /// Password verifications (argon2: 19 MiB and a core each) at once.
    pub verify_slots: Arc<tokio::sync::Semaphore>,
    /// Wall clock (a `ManualClock` in tests).
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics`.
    pub counters: Arc<Counters>,
    /// Live feeds, published by ingest, read by `/live` WebSockets.
    pub live: Arc<crate::live::LiveHub>,
    /// Shared H.265 → H.264 conversions of live feeds for `?codec=h264` viewers.
    pub live_transcoders: Arc<crate::transcode::live::LiveTranscoders>,
    /// When the server started, for uptime.
    pub started: Instant,
    /// The key that signs exports (made on first start).
    pub signer: Result<crate::export::signing::Signer, String>,
    /// Space promised to running exports, whichever way they were asked for (web or
    /// control socket), so they all share one quota.
    pub export_ledger: Arc<crate::export::quota::Ledger>,
    /// PTZ control of the cameras configured with `onvif = { ... }`.
    pub ptz: Arc<crate::ptz::Ptz>,
    /// Alarm records (raised by `alarms::watch`, acknowledged through the API).
    pub alarms: Arc<crate::alarms::Alarms>,
    /// Single sign-on with the identity provider, when `[oidc]` is configured.
    pub sso: Option<Arc<crate::auth::oidc::Sso>>,
}

impl App {
    /// Opens users, sessions and audit in `store`'s database. `live` is the hub that
    /// ingest publishes to (made by `nvr`, which wires ingest to it).
    pub fn new(
        config: Config,
        store: Arc<Store>,
        status: Arc<StatusBoard>,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
        live: Arc<crate::live::LiveHub>,
    ) -> anyhow::Result<App> {
        let db = store.db();
        let lifetimes = Lifetimes {
            idle_ns: i64::from(config.server.session_idle_minutes) * 60 * NS_PER_SEC,
            absolute_ns: i64::from(config.server.session_max_hours) * 3600 * NS_PER_SEC,
        };
        // Exports need the key; recording does not: a key that cannot be read or made
        // refuses exports (503, saying why) and leaves the cameras recording.
        let signer = crate::export::signing::Signer::for_storage(&config.storage)
            .map_err(|e| format!("{e:#}"));
        let audit = Arc::new(AuditLog::open(db, store.dir())?);
        // The audit chain's checkpoints are signed with the same key (one key, one
        // fingerprint for people to check); without it the chain keeps its HMAC only.
        if let Ok(s) = &signer {
            audit.sign_with(s.clone());
        }
        let cameras = Arc::new(crate::supervisor::fleet::CameraList::new(
            config.cameras.clone(),
        ));
        let ptz = Arc::new(crate::ptz::Ptz::new(
            cameras.clone(),
            audit.clone(),
            clock.clone(),
        ));
        let sso = match &config.oidc {
            Some(c) => Some(Arc::new(crate::auth::oidc::Sso::new(c.clone())?)),
            None => None,
        };
        Ok(App {
            sso,
            alarms: Arc::new(crate::alarms::Alarms::open(db)?),
            signer,
            export_ledger: Arc::default(),
            ptz,
            users: Users::for_store(&store)?,
            sessions: Sessions::open(db, clock.clone(), lifetimes)?,
            audit,
            limiter: LoginLimiter::new(ratelimit::Limits::default()),
            setup: Default::default(),
            verify_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
            )),
            cameras,
            camera_admin: Default::default(),
            config,
            store,
            status,
            clock,
            counters,
            live,
            live_transcoders: Default::default(),
            started: Instant::now(),
        })
    }

    /// Appends an audit entry off the async threads (it fsyncs). An action
    /// whose record cannot be written fails, rather than going unrecorded.
    pub async fn record(self: &Arc<Self>, ev: Event) -> Result<(), ApiError> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || app.audit.append(app.clock.now_ns(), ev)).await??;
        Ok(())
    }

    /// Appends an audit entry now, from a blocking context (inside
    /// [`App::blocking`], e.g. as the audit step of a user change).
    pub fn record_blocking(&self, ev: Event) -> anyhow::Result<()> {
        self.audit.append(self.clock.now_ns(), ev)?;
        Ok(())
    }

    /// Runs `f` on the blocking pool: user and session writes flush sled
    /// (an fsync), and a slow disk must not hold an async worker thread that
    /// live views and other requests share.
    pub async fn blocking<T, E>(
        self: &Arc<Self>,
        f: impl FnOnce(&App) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let app = self.clone();
        tokio::task::spawn_blocking(move || f(&app))
            .await?
            .map_err(Into::into)
    }

    /// Whether `user` must set up a second factor before doing anything
    /// else (`[auth] require_totp_for_admins`). Single-sign-on users are not
    /// asked: their second factor is the identity provider's to demand.
    pub fn must_enrol(&self, user: &User) -> bool {
        self.config.auth.require_totp_for_admins
            && user.role == Role::Admin
            && user.totp.is_none()
            && user.sso.is_none()
    }

    /// Whether `id` is a configured camera.
    pub fn camera_exists(&self, id: &str) -> bool {
        self.cameras.get(id).is_some()
    }

    /// Whether `id` is a camera removed from the config whose footage is still stored
    /// (retention deletes it by the limits the camera had, see
    /// [`crate::store::retention::with_removed`]).
    pub fn removed_with_footage(&self, id: &str) -> bool {
        !self.camera_exists(id) && self.store.usage().get(id).is_some_and(|u| u.segments > 0)
    }

    /// Whether `user` may reach camera `id` at all (scope is checked apart): a
    /// configured camera, or for an admin, a removed camera's stored footage, which stays
    /// listable, playable, holdable and exportable until retention deletes it.
    pub fn camera_reachable(&self, user: &User, id: &str) -> bool {
        self.camera_exists(id) || (user.role == Role::Admin && self.removed_with_footage(id))
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no session (health, login, first-run setup, the UI's static files).
    Public,
    /// Any logged-in user; results are filtered to the user's cameras.
    User,
    /// Any logged-in user, including one who must set up a second factor
    /// before anything else: their own account and logout.
    Account,
    /// A logged-in user allowed to see the camera named by the `{id}` path parameter.
    Camera,
    /// Operators and admins (not viewers).
    Operator,
    /// Admins only.
    Admin,
    /// Admins, or a scraper presenting `[server] metrics_token` as a bearer token.
    Metrics,
}

/// One entry of the route table.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// axum path pattern, e.g. `/api/cameras/{id}/recordings`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

fn routes() -> Vec<(RouteSpec, MethodRouter<Arc<App>>)> {
    fn r(
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<Arc<App>>,
    ) -> (RouteSpec, MethodRouter<Arc<App>>) {
        (
            RouteSpec {
                method,
                path,
                access,
            },
            handler,
        )
    }
    use Access::*;
    vec![
        r(Method::GET, "/api/health", Public, get(api::health)),
        r(Method::POST, "/api/login", Public, post(api::login)),
        r(Method::GET, "/api/setup", Public, get(setup::status)),
        r(Method::POST, "/api/setup", Public, post(setup::create)),
        r(Method::POST, "/api/logout", Account, post(api::logout)),
        r(Method::GET, "/api/me", Account, get(api::me)),
        r(Method::GET, "/api/session", Public, get(api::session)),
        r(Method::GET, "/api/oidc", Public, get(oidc::info)),
        r(Method::GET, "/api/oidc/login", Public, get(oidc::login)),
        r(
            Method::GET,
            "/api/oidc/callback",
            Public,
            get(oidc::callback),
        ),
        r(
            Method::POST,
            "/api/me/totp/enrol",
            Account,
            post(account::enrol),
        ),
        r(
            Method::POST,
            "/api/me/totp/confirm",
            Account,
            post(account::confirm),
        ),
        r(
            Method::POST,
            "/api/me/totp/disable",
            Account,
            post(account::disable),
        ),
        r(
            Method::POST,
            "/api/me/totp/recovery",
            Account,
            post(account::renew_recovery),
        ),
        r(Method::GET, "/api/me/prefs", User, get(prefs::get)),
        r(Method::PUT, "/api/me/prefs", User, put(prefs::put)),
        r(Method::GET, "/api/live/groups", User, get(prefs::shared)),
        r(
            Method::PUT,
            "/api/live/groups",
            Admin,
            put(prefs::put_shared),
        ),
        r(Method::GET, "/api/cameras", User, get(api::cameras)),
        r(Method::POST, "/api/cameras", Admin, post(cameras::create)),
        r(
            Method::POST,
            "/api/cameras/test",
            Admin,
            post(cameras::test),
        ),
        r(
            Method::POST,
            "/api/onvif/discover",
            Admin,
            post(cameras::discover),
        ),
        r(
            Method::POST,
            "/api/onvif/profiles",
            Admin,
            post(cameras::profiles),
        ),
        r(
            Method::PUT,
            "/api/cameras/{id}",
            Admin,
            put(cameras::update),
        ),
        r(
            Method::DELETE,
            "/api/cameras/{id}",
            Admin,
            delete(cameras::remove),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/recordings",
            Camera,
            get(api::recordings),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/days",
            Camera,
            get(api::days),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/live",
            Camera,
            get(live::websocket),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/events",
            Camera,
            get(events::for_camera),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/events/adjacent",
            Camera,
            get(events::adjacent),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/events/days",
            Camera,
            get(events::days),
        ),
        r(Method::GET, "/api/events", User, get(events::list)),
        r(
            Method::GET,
            "/api/cameras/{id}/isolation",
            Admin,
            get(isolation::report),
        ),
        r(Method::GET, "/api/storage", User, get(api::storage)),
        r(Method::GET, "/api/archive", Admin, get(api::archive)),
        r(Method::GET, "/api/system", Admin, get(api::system)),
        r(Method::GET, "/api/audit", Admin, get(api::audit)),
        r(
            Method::GET,
            "/api/audit/verify",
            Admin,
            get(api::audit_verify),
        ),
        r(Method::GET, "/api/alarms", Operator, get(alarms::list)),
        r(
            Method::POST,
            "/api/alarms/{id}/ack",
            Operator,
            post(alarms::ack),
        ),
        r(
            Method::GET,
            "/api/disclosures",
            Admin,
            get(disclosures::list),
        ),
        r(
            Method::GET,
            "/api/disclosures.csv",
            Admin,
            get(disclosures::csv),
        ),
        r(Method::GET, "/api/report", Admin, get(report::get)),
        r(Method::GET, "/api/bookmarks", User, get(bookmarks::list)),
        r(
            Method::POST,
            "/api/bookmarks",
            Operator,
            post(bookmarks::create),
        ),
        r(
            Method::DELETE,
            "/api/bookmarks/{id}",
            Operator,
            delete(bookmarks::remove),
        ),
        r(Method::GET, "/api/holds", User, get(holds::list)),
        r(Method::POST, "/api/holds", User, post(holds::create)),
        r(
            Method::DELETE,
            "/api/holds/{id}",
            Admin,
            delete(holds::release),
        ),
        r(Method::GET, "/api/users", Admin, get(users::list)),
        r(Method::POST, "/api/users", Admin, post(users::create)),
        r(Method::GET, "/api/users/{name}", Admin, get(users::get_one)),
        r(Method::PUT, "/api/users/{name}", Admin, put(users::update)),
        r(
            Method::DELETE,
            "/api/users/{name}",
            Admin,
            delete(users::remove),
        ),
        r(
            Method::DELETE,
            "/api/users/{name}/totp",
            Admin,
            delete(users::reset_totp),
        ),
        r(Method::GET, "/metrics", Metrics, get(api::metrics)),
    ]
    .into_iter()
    .chain(media::routes())
    .chain(ptz::routes())
    .collect()
}

/// The route table: every route the router serves, with its access level.
pub fn route_table() -> Vec<RouteSpec> {
    routes().into_iter().map(|(s, _)| s).collect()
}

/// The whole application router.
pub fn router(app: Arc<App>) -> Router {
    let mut r = Router::new();
    for (spec, handler) in routes() {
        let guarded = handler.route_layer(from_fn_with_state((app.clone(), spec.access), guard));
        r = r.route(spec.path, guarded);
    }
    r.fallback(ui::serve)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(conn::body_deadline))
        .layer(from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// The logged-in caller, put into request extensions by [`guard`].
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user, as stored now (role changes apply at once).
    pub user: User,
    /// The session.
    pub session: Session,
    /// The cookie's token, kept in memory only so logout can revoke it.
    pub token: String,
    /// The client address.
    pub client: String,
}

/// The client's address as the connection saw it.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// The client IP for rate limiting and the audit log; `unknown` when the
/// router runs without a connection (in-process tests).
pub fn client_of(req_ext: &axum::http::Extensions) -> String {
    req_ext
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0 .0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of cookie `name` in the request, if sent.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Path parameters are ids and names: anything outside this alphabet (a
/// `/` from `%2F`, NUL, `..`) is refused before a handler sees it.
fn sane_param(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// Enforces a route's [`Access`]: session, CSRF, role, camera, path parameters.
async fn guard(
    State((app, access)): State<(Arc<App>, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    match authorize(&app, access, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Whether a request's `Origin` (if any) is this server. Browsers send
/// `Origin` on every cross-origin state change and on every WebSocket
/// opening, so a page elsewhere cannot pass; a missing `Origin` is a
/// non-browser client, which still needs the session and CSRF token.
/// Only the authority is compared (host and port, not the scheme), so a
/// TLS-terminating proxy in front does not break it.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (authority, host) {
        (Some(a), Some(h)) => !a.is_empty() && a.eq_ignore_ascii_case(h.trim()),
        _ => false,
    }
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn authorize(app: &Arc<App>, access: Access, req: &mut Request) -> Result<(), ApiError> {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if (changes_state || is_websocket(req.headers())) && !same_origin(req.headers()) {
        return Err(ApiError::permission_denied("cross-origin request refused"));
    }
    if access == Access::Public {
        return Ok(());
    }
    if access == Access::Metrics {
        if let Some(expected) = &app.config.server.metrics_token {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if let Some(p) = presented {
                if constant_time_eq(p.as_bytes(), expected.as_bytes()) {
                    return Ok(());
                }
                return Err(ApiError::unauthenticated("wrong metrics token"));
            }
        }
    }
    let token =
        session_token(req.headers()).ok_or_else(|| ApiError::unauthenticated("log in first"))?;
    let session = app
        .sessions
        .get(&token)?
        .ok_or_else(|| ApiError::unauthenticated("session expired or logged out"))?;
    let user = app
        .users
        .get(&session.user)?
        .ok_or_else(|| ApiError::unauthenticated("user no longer exists"))?;
    // Cross-site pages can make the browser send our cookie (SameSite aside)
    // but cannot read the CSRF token, so every state change must echo it.
    if changes_state {
        let ok = req
            .headers()
            .get(CSRF_HEADER)
            .is_some_and(|v| constant_time_eq(v.as_bytes(), session.csrf.as_bytes()));
        if !ok {
            return Err(ApiError::permission_denied(
                "missing or wrong X-CSRF-Token header",
            ));
        }
    }
    if access != Access::Account && app.must_enrol(&user) {
        return Err(ApiError::totp_enrolment_required());
    }
    if matches!(access, Access::Admin | Access::Metrics) && user.role != Role::Admin {
        return Err(ApiError::permission_denied("admins only"));
    }
    if access == Access::Operator && !user.role.can_export() {
        return Err(ApiError::permission_denied("operators and admins only"));
    }
    let params = req
        .extract_parts::<RawPathParams>()
        .await
        .map_err(|_| ApiError::invalid_argument("path parameter is not valid UTF-8"))?;
    for (name, value) in params.iter() {
        if !sane_param(value) {
            return Err(ApiError::invalid_argument(format!(
                "invalid {name} in path"
            )));
        }
        if access == Access::Camera && name == "id" {
            // Refuse cameras outside the user's list before saying whether
            // they exist, so a restricted user cannot map the site.
            if !user.may_see(value) {
                return Err(ApiError::permission_denied(
                    "not allowed to see this camera",
                ));
            }
            if !crate::config::valid_id(value) {
                return Err(ApiError::invalid_argument("invalid camera id"));
            }
            if !app.camera_reachable(&user, value) {
                return Err(ApiError::not_found("no such camera"));
            }
        }
    }
    let client = client_of(req.extensions());
    req.extensions_mut().insert(Caller {
        user,
        session,
        token,
        client,
    });
    Ok(())
}

/// Outermost layer: security headers on every response and request counts
/// by route pattern.
async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let api = req.uri().path().starts_with("/api/") || req.uri().path() == "/metrics";
    let mut resp = next.run(req).await;
    app.counters.http(&route, &method, resp.status().as_u16());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if matches!(
        app.config.server.tls,
        crate::config::TlsSetting::Files { .. }
    ) {
        // Only with the operator's own certificate: browsers ignore HSTS
        // behind a certificate warning, and pinning `localhost` to HTTPS
        // would break other local services for a demo user.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if api {
        // Camera lists and audit trails must not linger in shared caches; a handler
        // that knows its answer may be kept (thumbnails) says so itself.
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    resp
}

pub use conn::{serve, Limits};

/// Unit tests only: the wall-clock second a [`test_app`]'s clock starts at.
#[cfg(test)]
pub(crate) const TEST_T0: i64 = 1_800_000_000;

/// Unit tests only: an App on a fresh temporary storage directory (plain HTTP,
/// no cameras, no users), its clock at [`TEST_T0`] and moved by the test.
#[cfg(test)]
pub(crate) fn test_app() -> (tempfile::TempDir, Arc<App>, Arc<crate::clock::ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\n",
        dir.path().display()
    );
    let cfg = Config::from_toml(&toml, std::path::Path::new("t.toml"), |_| None).unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let clock = Arc::new(crate::clock::ManualClock::new(TEST_T0 * NS_PER_SEC));
    let app = App::new(
        cfg,
        store,
        Default::default(),
        clock.clone(),
        Default::default(),
        Default::default(),
    )
    .unwrap();
    (dir, Arc::new(app), clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use std::sync::atomic::Ordering;
    use tower::ServiceExt;

    async fn post(
        router: &Router,
        uri: &str,
        body: serde_json::Value,
        cookie: &str,
        csrf: &str,
    ) -> (u16, serde_json::Value) {
        send(router, Method::POST, uri, body, cookie, csrf).await
    }

    async fn send(
        router: &Router,
        method: Method,
        uri: &str,
        body: serde_json::Value,
        cookie: &str,
        csrf: &str,
    ) -> (u16, serde_json::Value) {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, cookie)
            .header(CSRF_HEADER, csrf)
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// An action whose audit entry cannot be written does not report success: a login
    /// gets 500 and its session is revoked, a new user is answered with 500.
    #[tokio::test]
    async fn a_failed_audit_write_fails_the_action() {
        let (_dir, app, _clock) = test_app();
        app.users
            .add("root", Role::Admin, None, "root password 1", 0)
            .unwrap();
        let router = router(app.clone());
        let creds = serde_json::json!({ "username": "root", "password": "root password 1" });

        let (st, ok) = post(&router, "/api/login", creds.clone(), "", "").await;
        assert_eq!(st, 200, "{ok}");
        app.audit.fail_writes.store(true, Ordering::SeqCst);
        let (st, body) = post(&router, "/api/login", creds, "", "").await;
        assert_eq!(st, 500, "{body}");
        assert!(body.get("csrf_token").is_none(), "{body}");
        // Only the first login's session exists.
        assert_eq!(app.sessions.revoke_user("root").unwrap(), 1);

        app.audit.fail_writes.store(false, Ordering::SeqCst);
        let (st, ok) = post(
            &router,
            "/api/login",
            serde_json::json!({ "username": "root", "password": "root password 1" }),
            "",
            "",
        )
        .await;
        assert_eq!(st, 200, "{ok}");
        let token = app.sessions.create("root", "test").unwrap();
        let cookie = format!("{SESSION_COOKIE}={}", token.token);
        app.audit.fail_writes.store(true, Ordering::SeqCst);
        let (st, body) = post(
            &router,
            "/api/users",
            serde_json::json!({ "name": "eve", "role": "viewer", "password": "eve password 1" }),
            &cookie,
            &token.session.csrf,
        )
        .await;
        assert_eq!(st, 500, "{body}");
    }

    /// Renewing recovery codes is audited first: with the audit log failing, the answer
    /// is 500 and the old codes stay (nothing was changed that the log does not show).
    #[tokio::test]
    async fn recovery_codes_stay_when_their_renewal_cannot_be_audited() {
        let (_dir, app, clock) = test_app();
        let t0 = TEST_T0;
        app.users
            .add("root", Role::Admin, None, "root password 1", 0)
            .unwrap();
        let e = app.users.begin_totp("root", t0 * NS_PER_SEC).unwrap();
        let code = |t_s: i64| crate::auth::totp::code_at(&e.secret, t_s as u64);
        app.users
            .confirm_totp("root", &code(t0), t0 * NS_PER_SEC)
            .unwrap()
            .expect("the code matches");
        let stored = || {
            app.users
                .get("root")
                .unwrap()
                .unwrap()
                .totp
                .unwrap()
                .recovery
        };
        let before = stored();
        let router = router(app.clone());
        let token = app.sessions.create("root", "test").unwrap();
        let cookie = format!("{SESSION_COOKIE}={}", token.token);
        let renew =
            |t_s: i64| serde_json::json!({ "password": "root password 1", "totp_code": code(t_s) });

        clock.advance(60 * NS_PER_SEC);
        app.audit.fail_writes.store(true, Ordering::SeqCst);
        let (st, body) = post(
            &router,
            "/api/me/totp/recovery",
            renew(t0 + 60),
            &cookie,
            &token.session.csrf,
        )
        .await;
        assert_eq!(st, 500, "{body}");
        assert!(body.get("recovery_codes").is_none(), "{body}");
        assert_eq!(stored(), before, "the codes changed without an audit entry");

        // With the log working again, the renewal goes through.
        app.audit.fail_writes.store(false, Ordering::SeqCst);
        clock.advance(60 * NS_PER_SEC);
        let (st, body) = post(
            &router,
            "/api/me/totp/recovery",
            renew(t0 + 120),
            &cookie,
            &token.session.csrf,
        )
        .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);
        assert_ne!(stored(), before);
    }

    /// Turning a second factor on, off, or resetting another user's, is audited
    /// before the change: with the audit log failing each answers 500 and the
    /// stored second factor is as it was; with the log working, each goes through.
    #[tokio::test]
    async fn totp_changes_wait_for_their_audit_entry() {
        let (_dir, app, clock) = test_app();
        let t0 = TEST_T0;
        for (name, role) in [("root", Role::Admin), ("op", Role::Operator)] {
            app.users.add(name, role, None, "a password 1", 0).unwrap();
        }
        let router = router(app.clone());
        let token = app.sessions.create("root", "test").unwrap();
        let cookie = format!("{SESSION_COOKIE}={}", token.token);
        let csrf = token.session.csrf.clone();
        let user = |name: &str| app.users.get(name).unwrap().unwrap();
        let fail = |on: bool| app.audit.fail_writes.store(on, Ordering::SeqCst);

        // Enabling: the confirming code is right, but without an audit entry the
        // second factor stays off and the enrolment stays pending.
        let e = app.users.begin_totp("root", t0 * NS_PER_SEC).unwrap();
        let code = |t_s: i64| crate::auth::totp::code_at(&e.secret, t_s as u64);
        fail(true);
        let confirm = serde_json::json!({ "code": code(t0) });
        let (st, body) = post(
            &router,
            "/api/me/totp/confirm",
            confirm.clone(),
            &cookie,
            &csrf,
        )
        .await;
        assert_eq!(st, 500, "{body}");
        assert!(body.get("recovery_codes").is_none(), "{body}");
        let u = user("root");
        assert!(u.totp.is_none(), "enabled without an audit entry");
        assert!(u.totp_pending.is_some());
        fail(false);
        let (st, body) = post(&router, "/api/me/totp/confirm", confirm, &cookie, &csrf).await;
        assert_eq!(st, 200, "{body}");
        assert!(user("root").totp.is_some());

        // Disabling: password and a fresh code are right; no entry, no change.
        let disable =
            |t_s: i64| serde_json::json!({ "password": "a password 1", "totp_code": code(t_s) });
        clock.advance(60 * NS_PER_SEC);
        fail(true);
        let (st, body) = post(
            &router,
            "/api/me/totp/disable",
            disable(t0 + 60),
            &cookie,
            &csrf,
        )
        .await;
        assert_eq!(st, 500, "{body}");
        assert!(
            user("root").totp.is_some(),
            "disabled without an audit entry"
        );
        fail(false);
        clock.advance(60 * NS_PER_SEC);
        let (st, body) = post(
            &router,
            "/api/me/totp/disable",
            disable(t0 + 120),
            &cookie,
            &csrf,
        )
        .await;
        assert_eq!(st, 204, "{body}");
        assert!(user("root").totp.is_none());

        // An admin's reset of another user's second factor.
        let e = app.users.begin_totp("op", t0 * NS_PER_SEC).unwrap();
        app.users
            .confirm_totp(
                "op",
                &crate::auth::totp::code_at(&e.secret, t0 as u64),
                t0 * NS_PER_SEC,
            )
            .unwrap()
            .expect("the code matches");
        let reset = || {
            let req = axum::http::Request::delete("/api/users/op/totp")
                .header(header::COOKIE, &cookie)
                .header(CSRF_HEADER, &csrf)
                .body(Body::empty())
                .unwrap();
            router.clone().oneshot(req)
        };
        fail(true);
        assert_eq!(reset().await.unwrap().status(), 500);
        assert!(user("op").totp.is_some(), "reset without an audit entry");
        fail(false);
        assert_eq!(reset().await.unwrap().status(), 204);
        assert!(user("op").totp.is_none());
    }

    /// Adding, changing and removing a user are audited before the change: with
    /// the audit log failing each answers 500 and the users are as they were
    /// (nobody added, role and password kept, sessions alive, nobody removed);
    /// with the log working each goes through with one entry.
    #[tokio::test]
    async fn user_changes_wait_for_their_audit_entry() {
        let (_dir, app, _clock) = test_app();
        for (name, role) in [("root", Role::Admin), ("op", Role::Operator)] {
            app.users.add(name, role, None, "a password 1", 0).unwrap();
        }
        let router = router(app.clone());
        let token = app.sessions.create("root", "test").unwrap();
        let cookie = format!("{SESSION_COOKIE}={}", token.token);
        let csrf = token.session.csrf.clone();
        let op_session = app.sessions.create("op", "test").unwrap().token;
        let user = |name: &str| app.users.get(name).unwrap();
        let fail = |on: bool| app.audit.fail_writes.store(on, Ordering::SeqCst);
        let call = |method: Method, uri: &'static str, body: serde_json::Value| {
            send(&router, method, uri, body, &cookie, &csrf)
        };

        let add =
            serde_json::json!({ "name": "eve", "role": "viewer", "password": "eve password 1" });
        let entries = app.audit.len();
        fail(true);
        let (st, body) = call(Method::POST, "/api/users", add.clone()).await;
        assert_eq!(st, 500, "{body}");
        assert!(user("eve").is_none(), "added without an audit entry");
        fail(false);
        let (st, body) = call(Method::POST, "/api/users", add).await;
        assert_eq!(st, 201, "{body}");
        assert!(user("eve").is_some());
        assert_eq!(app.audit.len(), entries + 1);

        let change = serde_json::json!({ "role": "viewer", "password": "a new password 2" });
        let before = user("op").unwrap();
        fail(true);
        let (st, body) = call(Method::PUT, "/api/users/op", change.clone()).await;
        assert_eq!(st, 500, "{body}");
        let after = user("op").unwrap();
        assert_eq!(after.role, Role::Operator, "changed without an audit entry");
        assert_eq!(after.password_hash, before.password_hash);
        assert!(app.sessions.peek(&op_session).unwrap().is_some());
        fail(false);
        let (st, body) = call(Method::PUT, "/api/users/op", change).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(user("op").unwrap().role, Role::Viewer);
        assert!(app.sessions.peek(&op_session).unwrap().is_none());
        assert_eq!(app.audit.len(), entries + 2);

        let none = serde_json::Value::Null;
        fail(true);
        let (st, body) = call(Method::DELETE, "/api/users/eve", none.clone()).await;
        assert_eq!(st, 500, "{body}");
        assert!(user("eve").is_some(), "removed without an audit entry");
        fail(false);
        let (st, body) = call(Method::DELETE, "/api/users/eve", none).await;
        assert_eq!(st, 204, "{body}");
        assert!(user("eve").is_none());
        assert_eq!(app.audit.len(), entries + 3);
    }
}
