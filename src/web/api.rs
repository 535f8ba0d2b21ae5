//! JSON handlers: health, login/logout, the caller, cameras, recordings,
//! storage, audit and metrics. Access was already checked by the guard;
//! these check their inputs and shape the output.

use std::sync::Arc;

use axum::extract::{FromRequest, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{ApiError, ApiJson, ApiQuery};
use super::{client_of, App, Caller, SESSION_COOKIE};
use crate::audit::{Action, Event, Filter};
use crate::auth::login::{self, Attempt, Refused};
use crate::auth::totp::{Accepted, Factor};
use crate::auth::User;
use crate::clock::{rfc3339, NS_PER_SEC};
use crate::status::{recorder_words, why_not_recording, why_not_streaming, StreamState, Trouble};
use crate::store::SegmentRecord;

/// `GET /api/health`: liveness for probes and tests. No auth, no secrets.
pub async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
    }))
}

/// `GET /api/system` (admins): what an administrator needs to vouch for this server's
/// exports: version, host name, time zone, the export signing key's fingerprint (to give
/// to whoever checks a package) and the server clock's NTP state now.
pub async fn system(State(app): State<Arc<App>>) -> Json<Value> {
    let signing_key = match &app.signer {
        Ok(signer) => {
            let fp = signer.fingerprint();
            json!({
                "algorithm": "Ed25519",
                "fingerprint": fp,
                "fingerprint_grouped": crate::export::signing::grouped(&fp),
                "public_key": hex::encode(signer.public_key()),
                "path": signer.path.display().to_string(),
            })
        }
        Err(e) => json!({ "algorithm": "Ed25519", "error": e }),
    };
    let clock = crate::timesync::read_kernel(app.clock.now_ns());
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "server_name": crate::export::host_name(),
        "time_zone": crate::clock::zone_name(&app.config.server.time_zone()),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "signing_key": signing_key,
        "clock": clock.map(|s| json!({
            "ntp_synchronised": s.synced,
            "max_error_us": s.maxerror_us,
            "estimated_error_us": s.esterror_us,
        })),
    }))
}

/// User as the API shows it (never the password hash).
#[derive(Serialize)]
pub struct UserView {
    name: String,
    role: &'static str,
    /// `null` means all cameras.
    cameras: Option<Vec<String>>,
    created: String,
    /// Whether a second factor (TOTP) is enabled.
    totp: bool,
    /// Whether the user may steer PTZ cameras (after the role's default).
    ptz: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            name: u.name.clone(),
            role: u.role.as_str(),
            cameras: u.cameras.clone(),
            created: rfc3339(u.created_ns),
            totp: u.totp.is_some(),
            ptz: u.can_ptz(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
    /// The authenticator app's code, for users with a second factor.
    #[serde(default)]
    totp_code: Option<String>,
    /// A recovery code instead of `totp_code`.
    #[serde(default)]
    recovery_code: Option<String>,
}

pub(super) fn session_cookie(token: &str, max_age_s: i64) -> HeaderValue {
    // Secure even when serving plain HTTP: that mode is only for running
    // behind a TLS-terminating proxy, so the browser always sees HTTPS.
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age_s}"
    ))
    .expect("cookie is ASCII")
}

/// The second factor a request carries: at most one of the two fields.
pub fn factor_of(code: Option<String>, recovery: Option<String>) -> Result<Factor, ApiError> {
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    match (present(&code), present(&recovery)) {
        (true, true) => Err(ApiError::invalid_argument(
            "give totp_code or recovery_code, not both",
        )),
        (true, false) => Ok(Factor::Code(code.unwrap_or_default())),
        (false, true) => Ok(Factor::Recovery(recovery.unwrap_or_default())),
        (false, false) => Ok(Factor::None),
    }
}

/// A name as the rate limiter and audit log keep it: cut (and control
/// characters masked) so a huge one cannot bloat memory or forge lines in
/// anything that prints the log.
pub fn masked_name(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Turns a refused check into the API's answer, auditing failures.
pub async fn refused(app: &Arc<App>, name: String, client: String, why: Refused) -> ApiError {
    let detail = match why {
        Refused::Limited(wait) => {
            tracing::warn!(client = %client, "login refused by rate limit");
            return ApiError::too_many(wait);
        }
        Refused::Busy => return ApiError::busy(1),
        Refused::FactorRequired => return ApiError::totp_required(),
        Refused::Invalid(e) => return e.into(),
        Refused::Storage(e) => return e.into(),
        Refused::WrongPassword => "",
        Refused::WrongFactor => "second factor",
    };
    if let Err(e) = app
        .record(Event {
            actor: name,
            role: None,
            action: Action::LoginFailed,
            target: String::new(),
            client,
            detail: detail.into(),
        })
        .await
    {
        return e;
    }
    if detail.is_empty() {
        // One message for unknown user and wrong password.
        ApiError::unauthenticated("wrong user name or password")
    } else {
        ApiError::totp_invalid()
    }
}

/// Audits a spent recovery code (the user should make new ones soon).
pub async fn record_factor(
    app: &Arc<App>,
    user: &str,
    client: &str,
    factor: Option<Accepted>,
) -> Result<(), ApiError> {
    if let Some(Accepted::Recovery { left }) = factor {
        app.record(Event {
            actor: user.to_owned(),
            // Before the session exists: the login entry that follows carries the role.
            role: None,
            action: Action::RecoveryCodeUsed,
            target: user.to_owned(),
            client: client.to_owned(),
            detail: format!("left={left}"),
        })
        .await?;
    }
    Ok(())
}

/// `POST /api/login`: `{username, password, totp_code?, recovery_code?}` →
/// session cookie and CSRF token. A user with a second factor who gives the
/// password alone gets 401 `totp_required` and sends both again.
pub async fn login(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let client = client_of(req.extensions());
    let ApiJson(body): ApiJson<LoginRequest> = ApiJson::from_request(req, &app).await?;
    let factor = factor_of(body.totp_code, body.recovery_code)?;
    let name = masked_name(&body.username);
    let attempt = Attempt {
        name: &body.username,
        limit_name: &name,
        client: &client,
        password: body.password,
        factor,
        factor_optional: true,
        now_ns: app.clock.now_ns(),
    };
    let passed = match login::check(&app.users, &app.limiter, &app.verify_slots, attempt).await {
        Ok(p) => p,
        Err(why) => return Err(refused(&app, name, client, why).await),
    };
    let user = passed.user;
    record_factor(&app, &user.name, &client, passed.factor).await?;
    let how = match passed.factor {
        None => "password",
        Some(Accepted::Code) => "password+totp",
        Some(Accepted::Recovery { .. }) => "password+recovery_code",
    };
    start_session(&app, &user, client, how).await
}

/// Opens a session for `user` (just authenticated; `how` goes into the
/// `login` audit entry), and answers with the session cookie, CSRF token and
/// expiry: the reply of both login and first-run setup.
pub(super) async fn start_session(
    app: &Arc<App>,
    user: &User,
    client: String,
    how: &str,
) -> Result<Response, ApiError> {
    let new = open_session(app, user, client, how).await?;
    let lt = app.sessions.lifetimes();
    let expires = new.session.created_ns + lt.absolute_ns;
    let mut resp = Json(json!({
        "user": UserView::from(user),
        "csrf_token": new.session.csrf,
        "expires_at": rfc3339(expires),
        "idle_timeout_seconds": lt.idle_ns / NS_PER_SEC,
        "totp_enrolment_required": app.must_enrol(user),
        "time_zone": server_zone(app),
    }))
    .into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&new.token, lt.absolute_ns / NS_PER_SEC),
    );
    Ok(resp)
}

/// Opens a session for `user` and writes the `login` audit entry (`how` in its
/// detail); a login that cannot be audited is undone.
pub(super) async fn open_session(
    app: &Arc<App>,
    user: &User,
    client: String,
    how: &str,
) -> Result<crate::auth::session::NewSession, ApiError> {
    let new = app.sessions.create(&user.name, &client)?;
    if let Err(e) = app
        .record(Event {
            actor: user.name.clone(),
            role: Some(user.role.as_str().into()),
            action: Action::Login,
            target: String::new(),
            client,
            detail: format!("role={} with={how}", user.role.as_str()),
        })
        .await
    {
        let _ = app.sessions.revoke(&new.token);
        return Err(e);
    }
    Ok(new)
}

/// `POST /api/logout`: revokes the session and clears the cookie.
pub async fn logout(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
) -> Result<Response, ApiError> {
    app.sessions.revoke(&c.token)?;
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::Logout,
        target: String::new(),
        client: c.client.clone(),
        detail: String::new(),
    })
    .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(resp)
}

/// `GET /api/me`: who is logged in, and the CSRF token for page script.
pub async fn me(State(app): State<Arc<App>>, Extension(c): Extension<Caller>) -> Json<Value> {
    Json(me_json(&app, &c))
}

/// `GET /api/session`: what `GET /api/me` says for a logged-in caller, else
/// `{"user": null}` with 200, so the UI's first look at a logged-out page is
/// not a failed request in the browser's console.
pub async fn session(State(app): State<Arc<App>>, mut req: axum::extract::Request) -> Json<Value> {
    match super::authorize(&app, super::Access::Account, &mut req).await {
        Ok(()) => match req.extensions().get::<Caller>() {
            Some(c) => Json(me_json(&app, c)),
            None => Json(json!({ "user": null })),
        },
        Err(_) => Json(json!({ "user": null })),
    }
}

fn me_json(app: &App, c: &Caller) -> Value {
    let lt = app.sessions.lifetimes();
    json!({
        "user": UserView::from(&c.user),
        "csrf_token": c.session.csrf,
        "expires_at": rfc3339(c.session.created_ns + lt.absolute_ns),
        "totp": {
            "enabled": c.user.totp.is_some(),
            "recovery_codes_left": c.user.totp.as_ref().map(|t| t.recovery.len()),
        },
        "totp_enrolment_required": app.must_enrol(&c.user),
        "time_zone": server_zone(app),
    })
}

/// The server's time zone (IANA name, else its offset), the zone the UI shows and reads
/// every time in, as exports and `/api/cameras/{id}/days` do.
fn server_zone(app: &App) -> String {
    crate::clock::zone_name(&app.config.server.time_zone())
}

fn opt_time(ns: Option<i64>) -> Option<String> {
    ns.map(rfc3339)
}

/// `GET /api/cameras`: the caller's cameras with live status and recorded
/// extent. Never URLs or credentials.
pub async fn cameras(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let status = app.status.snapshot();
    let usage = app.store.usage();
    // Error texts name addresses, ports and paths: admins only (API.md).
    let admin = c.user.role == crate::auth::Role::Admin;
    let today = crate::clock::local_day(app.clock.now_ns(), &app.config.server.time_zone());
    let mut out = Vec::new();
    for cam in app
        .cameras
        .all()
        .iter()
        .filter(|cam| c.user.may_see(&cam.id))
    {
        let s = status.get(&cam.id).cloned().unwrap_or_default();
        let u = usage.get(&cam.id).copied().unwrap_or_default();
        let oldest = app.store.oldest(&cam.id)?.map(|r| r.start_ns);
        let newest = app.store.newest(&cam.id)?.map(|r| r.end_ns);
        out.push(json!({
            "id": cam.id,
            "name": if cam.name.is_empty() { &cam.id } else { &cam.name },
            "enabled": cam.enabled,
            "record": cam.record,
            "has_sub_stream": cam.sub_url.is_some(),
            "onvif": cam.onvif.is_some(),
            "state": s.state,
            "transport": s.transport,
            "offline_since": opt_time(s.offline_since_ns),
            "online_since": opt_time(s.streaming_since_ns),
            "last_frame": opt_time(s.last_frame_ns),
            "next_attempt": opt_time(s.next_attempt_ns),
            "codec": s.codec,
            "audio": s.audio,
            "resolution": s.resolution.map(|(w, h)| json!({"width": w, "height": h})),
            "fps": s.fps,
            "bitrate_bps": s.bitrate_bps,
            "reconnects": s.reconnects,
            "frames": s.frames,
            "lost_packets": s.lost_packets,
            "damaged_frames": s.damaged_frames,
            "depacketize_errors": s.depacketize_errors,
            "dropped_frames": s.dropped_frames,
            // Why it is not streaming, in the words the tile and the alarms use.
            "trouble": s.trouble,
            "why": (s.state != StreamState::Streaming).then(|| why_not_streaming(&s)),
            // Why the last session that had delivered video ended (kept while streaming again).
            "last_interruption": s.last_interruption.map(|(at, t)| json!({
                "at": rfc3339(at),
                "trouble": t,
                "why": t.words(),
            })),
            "last_error": if admin { s.last_error.clone() } else { s.last_error.as_ref().map(|_| s.trouble.unwrap_or(Trouble::Other).words().to_owned()) },
            "no_key_frame_since": opt_time(s.no_key_frame_since_ns),
            "why_not_recording": why_not_recording(&s),
            "recorder_error": if admin { s.recorder_error.clone() } else { s.recorder_error.as_ref().map(|_| recorder_words(&s).to_owned()) },
            "recorder_trouble": s.recorder_trouble,
            "recorded_bytes": u.bytes,
            "segments": u.segments,
            "oldest": opt_time(oldest),
            "newest": opt_time(newest),
            // The camera register (Surveillance Camera Code of Practice, principles 1-3):
            // public by nature, so every user who may see the camera sees it.
            "purpose": cam.purpose,
            "location": cam.location,
            "lawful_basis": cam.lawful_basis,
            "review_date": cam.review_date.map(|d| d.to_string()),
            "review_overdue": cam.review_overdue(today),
            "purpose_missing": cam.purpose.is_none(),
        }));
        // Outside the literal above, which is at `json!`'s recursion limit.
        out.last_mut().expect("just pushed")["events"] = json!(s.events);
        if admin {
            // For the Cameras admin page; secrets show only as `*_set` flags.
            out.last_mut().expect("just pushed")["config"] = crate::cameras::view(cam);
        }
    }
    Ok(Json(json!({ "cameras": out })))
}

/// Latest time a request may name (2200-01-01T00:00:00Z), in ns.
pub const MAX_TIME_NS: i64 = 7_258_118_400 * NS_PER_SEC;

/// Parses an RFC 3339 time into ns. Only 1970..2200 is accepted: nothing
/// is recorded outside it, and within it the sum or difference of any two
/// times (and a time plus a day) fits in i64, so no later arithmetic wraps.
pub fn parse_time(field: &str, s: &str) -> Result<i64, ApiError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::invalid_argument(format!(
                "{field}: not an RFC 3339 time like 2025-01-31T12:00:00Z"
            ))
        })?;
    i64::try_from(t.unix_timestamp_nanos())
        .ok()
        .filter(|ns| (0..MAX_TIME_NS).contains(ns))
        .ok_or_else(|| ApiError::invalid_argument(format!("{field}: outside 1970..2200")))
}

/// `end - start` for times from a request: both are in range on their
/// own, but their difference can exceed i64 (1700 to 2260) and must be a
/// 400, not a wrapped number that passes a length check.
pub fn span_ns(start: i64, end: i64) -> Result<i64, ApiError> {
    end.checked_sub(start)
        .ok_or_else(|| ApiError::invalid_argument("start and end are too far apart"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    start: Option<String>,
    end: Option<String>,
}

/// Longest range one recordings query may span: a month of one-minute
/// segments is about 45,000 rows, the most one response should carry.
pub const MAX_RANGE_NS: i64 = 31 * 86_400 * NS_PER_SEC;
/// Segments closer than this count as continuous: a rotation leaves the
/// next segment starting at the next frame, a frame interval after the end.
pub const GAP_TOLERANCE_NS: i64 = NS_PER_SEC;

/// A covered or missing span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Start, ns.
    pub start_ns: i64,
    /// End, ns.
    pub end_ns: i64,
}

/// Merges segments (sorted by start) into covered spans clipped to
/// `[start, end)`, and the gaps between them within that window.
pub fn coverage(
    segs: &[SegmentRecord],
    start: i64,
    end: i64,
    tolerance: i64,
) -> (Vec<Span>, Vec<Span>) {
    let mut covered: Vec<Span> = Vec::new();
    for s in segs {
        let (a, b) = (s.start_ns.max(start), s.end_ns.min(end));
        if a >= b {
            continue;
        }
        match covered.last_mut() {
            Some(last) if a <= last.end_ns + tolerance => last.end_ns = last.end_ns.max(b),
            _ => covered.push(Span {
                start_ns: a,
                end_ns: b,
            }),
        }
    }
    let mut gaps = Vec::new();
    let mut cursor = start;
    for c in &covered {
        if c.start_ns > cursor {
            gaps.push(Span {
                start_ns: cursor,
                end_ns: c.start_ns,
            });
        }
        cursor = cursor.max(c.end_ns);
    }
    if cursor < end {
        gaps.push(Span {
            start_ns: cursor,
            end_ns: end,
        });
    }
    (covered, gaps)
}

fn span_json(s: &Span) -> Value {
    json!({ "start": rfc3339(s.start_ns), "end": rfc3339(s.end_ns) })
}

/// `GET /api/cameras/{id}/recordings?start=&end=`: covered ranges, gaps and
/// segments. Defaults to the last 24 hours.
pub async fn recordings(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = app.clock.now_ns();
    let end = q
        .end
        .as_deref()
        .map(|s| parse_time("end", s))
        .transpose()?
        .unwrap_or(now);
    let start = q
        .start
        .as_deref()
        .map(|s| parse_time("start", s))
        .transpose()?
        .unwrap_or(end.saturating_sub(86_400 * NS_PER_SEC));
    if start >= end {
        return Err(ApiError::invalid_argument("start must be before end"));
    }
    if span_ns(start, end)? > MAX_RANGE_NS {
        return Err(ApiError::invalid_argument("range longer than 31 days"));
    }
    let (segs, outages, archive_only) = {
        let app = app.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            let segs = app.store.segments(&id, start, end)?;
            let only: Vec<bool> = segs.iter().map(|s| app.store.archive_only(s)).collect();
            anyhow::Ok((segs, app.store.states().spans(&id, start, end)?, only))
        })
        .await??
    };
    let (covered, gaps) = coverage(&segs, start, end, GAP_TOLERANCE_NS);
    // When the camera was down or not recorded, and why: tells "the camera was
    // offline" apart from "nothing was recorded" (a gap with no outage).
    let offline: Vec<Value> = outages
        .iter()
        .map(|o| {
            json!({
                "start": rfc3339(o.start_ns),
                "end": rfc3339(o.end_ns.unwrap_or(end.min(now).max(o.start_ns))),
                "ongoing": o.end_ns.is_none(),
                "state": o.state.as_str(),
                "reason": o.reason,
            })
        })
        .collect();
    // The parts read from the archive tier (no local copy), for the timeline.
    let remote: Vec<SegmentRecord> = segs
        .iter()
        .zip(&archive_only)
        .filter(|(_, only)| **only)
        .map(|(s, _)| s.clone())
        .collect();
    let (archived, _) = coverage(&remote, start, end, GAP_TOLERANCE_NS);
    let segments: Vec<Value> = segs
        .iter()
        .zip(&archive_only)
        .map(|(s, only)| {
            json!({
                "archive_only": only,
                "start": rfc3339(s.start_ns),
                "end": rfc3339(s.end_ns),
                "bytes": s.bytes,
                "codec": s.codec,
                "width": s.width,
                "height": s.height,
                "frames": s.frames,
                "has_audio": s.has_audio,
            })
        })
        .collect();
    Ok(Json(json!({
        "camera": id,
        "start": rfc3339(start),
        "end": rfc3339(end),
        "ranges": covered.iter().map(span_json).collect::<Vec<_>>(),
        "gaps": gaps.iter().map(span_json).collect::<Vec<_>>(),
        "offline": offline,
        "archive_only_ranges": archived.iter().map(span_json).collect::<Vec<_>>(),
        "segments": segments,
    })))
}

/// `GET /api/cameras/{id}/days`: the days (`YYYY-MM-DD`, in the server's time zone,
/// which the answer names) on which the camera has footage, for the date picker.
pub async fn days(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tz = app.config.server.time_zone();
    let days = {
        let app = app.clone();
        let id = id.clone();
        let tz = tz.clone();
        tokio::task::spawn_blocking(move || app.store.days_with_footage(&id, &tz)).await??
    };
    Ok(Json(json!({
        "camera": id,
        "time_zone": crate::clock::zone_name(&tz),
        "days": days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    })))
}

/// `GET /api/storage`: recorded bytes per camera (the caller's cameras),
/// volume free space, the retention settings and what legal holds keep.
pub async fn storage(
    State(app): State<Arc<App>>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let usage = app.store.usage();
    let free = crate::store::retention::volume_free_bytes(app.store.dir()).ok();
    let held = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let held = app.store.holds().active(app.clock.now_ns())?;
            app.store.held_bytes(&held)
        })
        .await??
    };
    let held_full = app
        .counters
        .held_full
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut cams = Vec::new();
    for cam in app
        .cameras
        .all()
        .iter()
        .filter(|cam| c.user.may_see(&cam.id))
    {
        let u = usage.get(&cam.id).copied().unwrap_or_default();
        cams.push(json!({
            "id": cam.id,
            "bytes": u.bytes,
            "held_bytes": held.get(&cam.id).copied().unwrap_or(0),
            "segments": u.segments,
            "archived_bytes": u.archived_bytes,
            "thumbnail_bytes": app.store.thumbnail_bytes(&cam.id),
            "retain_days": cam.retain_days,
            "retain_bytes": cam.retain_bytes,
            "oldest": opt_time(app.store.oldest(&cam.id)?.map(|r| r.start_ns)),
            "newest": opt_time(app.store.newest(&cam.id)?.map(|r| r.end_ns)),
        }));
    }
    // Admins also see cameras removed from the config whose footage is still stored:
    // it is deleted by the limits the camera last had, and reachable until then.
    if c.user.role == crate::auth::Role::Admin {
        let mut removed: Vec<_> = usage
            .iter()
            .filter(|(id, u)| u.segments > 0 && !app.camera_exists(id))
            .collect();
        removed.sort_by(|a, b| a.0.cmp(b.0));
        for (id, u) in removed {
            let policy = crate::store::retention::remembered(&app.store, id)?;
            cams.push(json!({
                "id": id,
                "removed": true,
                "bytes": u.bytes,
                "held_bytes": held.get(id).copied().unwrap_or(0),
                "segments": u.segments,
                "retain_days": policy.map(|p| p.retain_days),
                "retain_bytes": policy.map(|p| p.retain_bytes),
                "oldest": opt_time(app.store.oldest(id)?.map(|r| r.start_ns)),
                "newest": opt_time(app.store.newest(id)?.map(|r| r.end_ns)),
            }));
        }
    }
    Ok(Json(json!({
        "volume_free_bytes": free,
        "min_free_bytes": app.config.storage.min_free_bytes,
        "segment_seconds": app.config.storage.segment_seconds,
        "held_bytes": cams.iter().filter_map(|c| c["held_bytes"].as_u64()).sum::<u64>(),
        // The volume is below its floor and only held footage is left: retention keeps
        // it and this says so until a pass finds room again.
        "held_full": held_full,
        "alarm": held_full.then_some(
            "The disk is full of footage under legal hold: retention keeps held footage. \
             Release holds that are no longer needed or add disk space."
        ),
        "cameras": cams,
        // The archive tier, when configured: uploads so far and whether the last pass
        // failed (then recording goes on and uploads retry).
        "archive": app.store.remote().map(|r| r.status_json()),
    })))
}

/// `GET /api/archive` (admins): the archive tier's backlog, last upload and last error
/// (credentials removed), overall and per camera, and whether the bucket answers now.
/// 404 without `[archive]`.
pub async fn archive(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let Some(remote) = app.store.remote().cloned() else {
        return Err(ApiError::not_found("no archive tier is configured"));
    };
    let mut v = tokio::task::spawn_blocking(move || remote.report()).await?;
    // Configured cameras with nothing to move yet are listed too, with a zero backlog.
    if let Some(list) = v["cameras"].as_array_mut() {
        for cam in app.cameras.all().iter() {
            if !list.iter().any(|c| c["id"] == cam.id.as_str()) {
                list.push(
                    json!({ "id": cam.id, "backlog_segments": 0, "backlog_bytes": 0,
                    "last_upload": null, "last_error": null }),
                );
            }
        }
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/audit`: newest-first entries with filters; page backwards
/// with `before=<seq>` from the previous page's `next_before`.
pub async fn audit(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let action = match q.action.as_deref() {
        None => None,
        Some(a) => {
            Some(Action::parse(a).ok_or_else(|| ApiError::invalid_argument("unknown action"))?)
        }
    };
    let f = Filter {
        actor: q.actor,
        action,
        target: q.target,
        since_ns: q
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until_ns: q
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
        before_seq: q.before,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || app.audit.query(&f, limit)).await??
    };
    let next_before = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "time": rfc3339(e.time_ns),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "client": e.client,
                "detail": e.detail,
                "prev": e.prev,
                "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(
        json!({ "entries": entries, "next_before": next_before }),
    ))
}

/// `GET /api/audit/verify`: walks the chain, like `cleannvr audit verify`.
pub async fn audit_verify(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let v = tokio::task::spawn_blocking(move || app.audit.verify()).await??;
    Ok(Json(json!({
        "ok": v.broken.is_none(),
        "verified": v.verified,
        "broken": v.broken,
        "keyed_from": v.keyed_from,
        "checkpoints": v.checkpoints,
        "last_checkpoint": v.last_checkpoint.map(|c| json!({
            "seq": c.seq,
            "hash": c.hash,
            "time": rfc3339(c.time_ns),
            "key": c.key,
            "sig": c.sig,
        })),
    })))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut recorded: Vec<(String, u64, u64)> = app
        .store
        .usage()
        .into_iter()
        .map(|(k, u)| (k, u.bytes, u.segments))
        .collect();
    recorded.sort();
    let free = crate::store::retention::volume_free_bytes(app.store.dir()).ok();
    let body = super::metrics::render(&app, &recorded, free);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_s: i64, end_s: i64) -> SegmentRecord {
        SegmentRecord {
            camera: "a".into(),
            start_ns: start_s * NS_PER_SEC,
            end_ns: end_s * NS_PER_SEC,
            path: String::new(),
            bytes: 1,
            codec: String::new(),
            width: 0,
            height: 0,
            frames: 0,
            has_audio: false,
            keyframes: vec![],
            drift_ms: 0,
            archived: None,
        }
    }

    fn spans(v: &[Span]) -> Vec<(i64, i64)> {
        v.iter()
            .map(|s| (s.start_ns / NS_PER_SEC, s.end_ns / NS_PER_SEC))
            .collect()
    }

    #[test]
    fn coverage_merges_clips_and_finds_gaps() {
        let tol = NS_PER_SEC / 2;
        type Spans = &'static [(i64, i64)];
        // (segments, query window, covered, gaps), all in seconds.
        let cases: &[(Spans, (i64, i64), Spans, Spans)] = &[
            (&[], (0, 100), &[], &[(0, 100)]),
            (
                &[(10, 70), (70, 130)],
                (0, 200),
                &[(10, 130)],
                &[(0, 10), (130, 200)],
            ),
            (
                &[(0, 60), (90, 150)],
                (30, 120),
                &[(30, 60), (90, 120)],
                &[(60, 90)],
            ),
            (&[(0, 60), (50, 80)], (0, 80), &[(0, 80)], &[]),
            (&[(0, 500)], (100, 200), &[(100, 200)], &[]),
        ];
        for (segs, (a, b), want_cov, want_gaps) in cases {
            let segs: Vec<_> = segs.iter().map(|&(s, e)| seg(s, e)).collect();
            let (cov, gaps) = coverage(&segs, a * NS_PER_SEC, b * NS_PER_SEC, tol);
            assert_eq!(spans(&cov), *want_cov, "{segs:?}");
            assert_eq!(spans(&gaps), *want_gaps, "{segs:?}");
        }
    }

    #[test]
    fn times_parse_or_fail_cleanly() {
        assert_eq!(parse_time("t", "1970-01-01T00:00:01Z").unwrap(), NS_PER_SEC);
        assert_eq!(
            parse_time("t", "2199-12-31T23:59:59Z").unwrap(),
            MAX_TIME_NS - NS_PER_SEC
        );
        assert!(span_ns(i64::MIN, i64::MAX).is_err());
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "9999-01-01T00:00:00Z",
            "1000-01-01T00:00:00Z",
            "1700-01-01T00:00:00Z",
            "2260-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2200-01-01T00:00:00Z",
        ] {
            let e = parse_time("t", bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
