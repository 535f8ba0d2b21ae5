//! Media routes: recorded video as one MP4 over any range (byte ranges, `ETag`, `HEAD`),
//! evidential exports, snapshots and on-demand H.265 → H.264.
//!
//! Handlers only check input, call [`playback`](crate::playback), [`export`](crate::export)
//! and [`transcode`](crate::transcode), write audit entries and shape responses. Their
//! shared state (export jobs, audit de-duplication) travels as an [`Extension`] added to
//! each route here, so the web core needs no field for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{parse_time, span_ns};
use super::error::{ApiError, ApiJson, ApiQuery};
use super::revocation::while_valid;
use super::{Access, App, Caller, RouteSpec};
use crate::audit::{Action, Event};
use crate::clock::{rfc3339, NS_PER_SEC};
use crate::error::ErrorKind;
use crate::export;
use crate::export::jobs::{self, JobState, Jobs, Status};
use crate::playback::{self, Plan, Span};

/// Longest range one `video.mp4` may cover: a day is more than any player scrubs through,
/// and longer ranges are what exports are for.
pub const MAX_PLAYBACK_NS: i64 = 86_400 * NS_PER_SEC;
/// One audit entry per user, camera and range in this window: a browser fetches a video
/// in many range requests, and each seek is not a new viewing. Snapshots use it too:
/// one entry per user and camera for the latest picture (a page refreshing a still), and
/// one per user, camera and minute of footage for historical ones.
const AUDIT_WINDOW_NS: i64 = 10 * 60 * NS_PER_SEC;
/// Most gaps listed in the `X-Recording-Gaps` header (the count is always given).
const MAX_GAP_HEADER: usize = 50;

/// State shared by the media routes of one router.
#[derive(Default)]
pub struct MediaState {
    /// Export jobs (made on first use: the routes are built before the storage is known).
    jobs: OnceLock<Jobs>,
    /// (user, camera, etag) → when the last playback entry was written.
    audited: Mutex<HashMap<(String, String, String), i64>>,
    /// (camera, width) → the latest snapshot and the key frame it shows (file, moof).
    snapshots: Mutex<HashMap<(String, Option<u32>), CachedSnapshot>>,
    /// Snapshot audit entries written recently.
    snapshot_audited: crate::audit::Recent,
    /// `package.zip` streams running.
    package_streams: Arc<StreamSlots>,
}

/// Most `package.zip` streams at once on one server. Each holds a blocking thread and
/// reads the disk at its client's pace, so slow or stalled clients must not be able to
/// take every blocking thread (which audit, login and index work need) or the disk.
pub const PACKAGE_STREAMS: usize = 8;
/// Most `package.zip` streams at once for one user: enough for two machines.
pub const PACKAGE_STREAMS_PER_USER: usize = 2;

/// Counts running streams, in total and per user, against fixed caps.
pub struct StreamSlots {
    total: usize,
    per_user: usize,
    held: Mutex<HashMap<String, usize>>,
}

impl Default for StreamSlots {
    fn default() -> Self {
        StreamSlots::new(PACKAGE_STREAMS, PACKAGE_STREAMS_PER_USER)
    }
}

/// One running stream; its slot is given back when this is dropped (the body ended,
/// failed or the client left).
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    user: String,
}

impl StreamSlots {
    /// At most `total` streams, `per_user` of them for one user.
    pub fn new(total: usize, per_user: usize) -> Self {
        StreamSlots {
            total,
            per_user,
            held: Mutex::default(),
        }
    }

    /// A slot for `user`, or why not: 429 when the user has `per_user` running (theirs to
    /// finish), 503 when the server has `total` (everyone's); both with `Retry-After`.
    pub fn take(self: &Arc<Self>, user: &str) -> Result<StreamSlot, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "you already have {mine} package downloads running; \
                     wait for one to finish (at most {} at once)",
                    self.per_user
                ),
            )
            .retry_after(5));
        }
        if held.values().sum::<usize>() >= self.total {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "the server is sending {} packages already; retry shortly",
                    self.total
                ),
            )
            .retry_after(5));
        }
        *held.entry(user.to_owned()).or_default() += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.user);
            }
        }
    }
}

/// A cached latest snapshot: the file and `moof` of the key frame it shows, and the image.
type CachedSnapshot = (
    std::path::PathBuf,
    u64,
    crate::transcode::snapshot::Snapshot,
);

/// Width of a timeline thumbnail, pixels.
pub const THUMB_WIDTH: u32 = 160;

impl MediaState {
    fn jobs(&self, app: &App) -> &Jobs {
        self.jobs.get_or_init(|| {
            Jobs::new(
                app.store.dir(),
                app.signer.clone(),
                app.export_ledger.clone(),
            )
        })
    }
}

/// The media routes, for the route table in `web::routes`.
pub(super) fn routes() -> Vec<(RouteSpec, MethodRouter<Arc<App>>)> {
    let state = Arc::new(MediaState::default());
    let r = |method: Method, path: &'static str, access: Access, h: MethodRouter<Arc<App>>| {
        (
            RouteSpec {
                method,
                path,
                access,
            },
            h.layer(Extension(state.clone())),
        )
    };
    vec![
        r(
            Method::GET,
            "/api/cameras/{id}/video.mp4",
            Access::Camera,
            get(video),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/snapshot.jpg",
            Access::Camera,
            get(snapshot),
        ),
        r(
            Method::GET,
            "/api/cameras/{id}/thumbnail",
            Access::Camera,
            get(thumbnail),
        ),
        r(
            Method::POST,
            "/api/exports",
            Access::User,
            post(create_export),
        ),
        r(
            Method::GET,
            "/api/exports/{id}",
            Access::User,
            get(export_status),
        ),
        r(
            Method::GET,
            "/api/exports/{id}/files/{name}",
            Access::User,
            get(export_file),
        ),
        r(
            Method::GET,
            "/api/exports/{id}/package.zip",
            Access::User,
            get(export_package),
        ),
    ]
}

/// Query of `video.mp4`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoQuery {
    start: String,
    end: String,
    /// `h264` asks for H.264 (transcoding H.265 on the fly); absent or `copy` serves the
    /// recorded codec.
    codec: Option<String>,
}

/// The answer to a `Range` header for a body of known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send everything (no `Range`, a unit we do not know, or a malformed one, which
    /// RFC 9110 says to ignore).
    Full,
    /// Send bytes `[start, end)` as 206.
    Partial(u64, u64),
    /// No requested range overlaps the body: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header. Several ranges are coalesced into one spanning range
/// (RFC 9110 allows it), so players that ask for two pieces at once still get one 206.
pub fn parse_range(h: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    let mut span: Option<(u64, u64)> = None;
    for part in spec.split(',') {
        let Some((a, b)) = part.trim().split_once('-') else {
            return RangeAnswer::Full;
        };
        let (a, b) = (a.trim(), b.trim());
        let num = |s: &str| s.parse::<u64>().ok();
        let r = match (a.is_empty(), b.is_empty()) {
            (true, true) => return RangeAnswer::Full,
            (true, false) => match num(b) {
                Some(0) => None,
                Some(n) => Some((len.saturating_sub(n), len)),
                None => return RangeAnswer::Full,
            },
            (false, _) => {
                let Some(first) = num(a) else {
                    return RangeAnswer::Full;
                };
                let last = if b.is_empty() { Some(u64::MAX) } else { num(b) };
                match last {
                    None => return RangeAnswer::Full,
                    Some(last) if last < first => return RangeAnswer::Full,
                    Some(_) if first >= len => None,
                    Some(last) => Some((first, last.min(len - 1) + 1)),
                }
            }
        };
        if let Some((s, e)) = r.filter(|(s, e)| s < e) {
            span = Some(span.map_or((s, e), |(a, b)| (a.min(s), b.max(e))));
        }
    }
    match span {
        Some((s, e)) => RangeAnswer::Partial(s, e),
        None => RangeAnswer::Unsatisfiable,
    }
}

/// Whether an `If-None-Match` header matches `etag`.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn range_list(spans: &[Span]) -> String {
    spans
        .iter()
        .take(MAX_GAP_HEADER)
        .map(|g| format!("{}/{}", rfc3339(g.start_ns), rfc3339(g.end_ns)))
        .collect::<Vec<_>>()
        .join(",")
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Headers describing what a plan covers, on every answer about it.
fn describe(h: &mut HeaderMap, plan: &Plan) {
    h.insert(header::ETAG, hv(&plan.etag));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("x-recording-start", hv(&rfc3339(plan.actual.start_ns)));
    h.insert("x-recording-end", hv(&rfc3339(plan.actual.end_ns)));
    h.insert("x-first-frame", hv(&rfc3339(plan.first_frame_ns)));
    h.insert(
        "x-lead-in-ms",
        HeaderValue::from(plan.lead_in_ns() / 1_000_000),
    );
    h.insert("x-recording-gap-count", HeaderValue::from(plan.gaps.len()));
    if !plan.gaps.is_empty() {
        h.insert("x-recording-gaps", hv(&range_list(&plan.gaps)));
    }
}

/// Parses and bounds a start/end pair.
fn range_of(start: &str, end: &str, max_ns: i64) -> Result<(i64, i64), ApiError> {
    let (s, e) = (parse_time("start", start)?, parse_time("end", end)?);
    let span = span_ns(s, e)?;
    if span < playback::MIN_RANGE_NS {
        return Err(ApiError::invalid_argument("end must be after start"));
    }
    if span > max_ns {
        return Err(ApiError::invalid_argument(format!(
            "range longer than {} hours",
            max_ns / 3600 / NS_PER_SEC
        )));
    }
    Ok((s, e))
}

/// `GET|HEAD /api/cameras/{id}/video.mp4?start=&end=[&codec=h264]`.
async fn video(
    State(app): State<Arc<App>>,
    Extension(media): Extension<Arc<MediaState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<VideoQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (start, end) = range_of(&q.start, &q.end, MAX_PLAYBACK_NS)?;
    let want_h264 = match q.codec.as_deref() {
        None | Some("copy") => false,
        Some("h264") => true,
        Some(_) => return Err(ApiError::invalid_argument("codec must be h264 or copy")),
    };
    let plan = {
        let (app, id) = (app.clone(), id.clone());
        tokio::task::spawn_blocking(move || playback::plan(&app.store, &id, start, end)).await?
    };
    let plan = Arc::new(plan?);
    if want_h264 && &plan.video_fourcc != b"avc1" && &plan.video_fourcc != b"avc3" {
        return transcoded(app, media, c, id, plan, method).await;
    }

    let mut resp = if none_match(&headers, &plan.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // A Range with an If-Range naming another version gets the whole new version.
        let if_range_ok = headers
            .get(header::IF_RANGE)
            .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == plan.etag));
        let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let answer = if if_range_ok {
            parse_range(range, plan.len)
        } else {
            RangeAnswer::Full
        };
        let (status, a, b) = match answer {
            RangeAnswer::Full => (StatusCode::OK, 0, plan.len),
            RangeAnswer::Partial(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
            RangeAnswer::Unsatisfiable => {
                let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                r.headers_mut()
                    .insert(header::CONTENT_RANGE, hv(&format!("bytes */{}", plan.len)));
                describe(r.headers_mut(), &plan);
                return Ok(r);
            }
        };
        if method == Method::GET {
            audit_playback(&app, &media, &c, &id, &plan, "copy").await?;
        }
        let body = Body::from_stream(while_valid(
            app.clone(),
            c.clone(),
            playback::stream(plan.clone(), a, b),
        ));
        let mut r = (status, body).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(b - a));
        if status == StatusCode::PARTIAL_CONTENT {
            h.insert(
                header::CONTENT_RANGE,
                hv(&format!("bytes {a}-{}/{}", b - 1, plan.len)),
            );
        }
        r
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(
        header::CONTENT_DISPOSITION,
        hv(&format!(
            "inline; filename=\"{id}-{}.mp4\"",
            rfc3339(plan.actual.start_ns).replace(':', "")
        )),
    );
    describe(h, &plan);
    Ok(resp)
}

/// Writes a playback audit entry unless the same user watched the same range of the same
/// camera within [`AUDIT_WINDOW_NS`].
async fn audit_playback(
    app: &Arc<App>,
    media: &MediaState,
    c: &Caller,
    camera: &str,
    plan: &Plan,
    codec: &str,
) -> Result<(), ApiError> {
    let now = app.clock.now_ns();
    let key = (c.user.name.clone(), camera.to_owned(), plan.etag.clone());
    {
        let mut m = media.audited.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(&key).is_some_and(|t| now - t < AUDIT_WINDOW_NS) {
            return Ok(());
        }
        if m.len() > 10_000 {
            m.retain(|_, t| now - *t < AUDIT_WINDOW_NS);
        }
        m.insert(key, now);
    }
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::Playback,
        target: camera.to_owned(),
        client: c.client.clone(),
        detail: format!(
            "start={} end={} codec={codec}",
            rfc3339(plan.requested.start_ns),
            rfc3339(plan.requested.end_ns)
        ),
    })
    .await
}

/// H.265 asked for as H.264: transcoded on the fly and streamed as it is produced. Its
/// length is unknown up front, so it is sent whole (`Accept-Ranges: none`); to seek, a
/// player asks for a new `start`. Refused with 503 when the transcode limit is reached.
async fn transcoded(
    app: Arc<App>,
    media: Arc<MediaState>,
    c: Caller,
    id: String,
    plan: Arc<Plan>,
    method: Method,
) -> Result<Response, ApiError> {
    // The last moments of a camera whose live picture is being converted anyway: served
    // from that conversion's output, so no second converter is needed (or refused).
    let from = plan.requested.start_ns.max(plan.actual.start_ns);
    if let Some(clip) = app.live_transcoders.recent(&id, from, plan.actual.end_ns) {
        return shared_live(app, media, c, id, plan, method, clip).await;
    }
    let mut resp = if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        let Some(permit) = crate::transcode::limiter().try_acquire() else {
            // 503 with Retry-After (`From<Busy>`).
            return Err(crate::transcode::live::Busy.into());
        };
        audit_playback(&app, &media, &c, &id, &plan, "h264").await?;
        Body::from_stream(while_valid(
            app.clone(),
            c.clone(),
            crate::transcode::h264::stream(plan.clone(), permit),
        ))
        .into_response()
    };
    let h = resp.headers_mut();
    describe(h, &plan);
    // Not the remuxed file: no byte ranges, no entity tag, no lead-in.
    h.remove(header::ETAG);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    h.insert("x-lead-in-ms", HeaderValue::from(0));
    h.insert("x-transcoded", HeaderValue::from_static("h264"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    Ok(resp)
}

/// [`transcoded`] from a running live conversion's latest output ([`Clip`]): whole, with
/// its length, starting at the key frame at or before the requested start, which the
/// headers name as the recording's start (no lead-in, no edit list).
///
/// [`Clip`]: crate::transcode::live::Clip
async fn shared_live(
    app: Arc<App>,
    media: Arc<MediaState>,
    c: Caller,
    id: String,
    plan: Arc<Plan>,
    method: Method,
    clip: crate::transcode::live::Clip,
) -> Result<Response, ApiError> {
    let parts = clip.mp4();
    let len: usize = parts.iter().map(|b| b.len()).sum();
    let mut resp = if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        audit_playback(&app, &media, &c, &id, &plan, "h264").await?;
        crate::transcode::counters()
            .shared
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Body::from(parts.concat()).into_response()
    };
    let h = resp.headers_mut();
    describe(h, &plan);
    h.remove(header::ETAG);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert("x-recording-start", hv(&rfc3339(clip.start_ns())));
    h.insert("x-first-frame", hv(&rfc3339(clip.start_ns())));
    h.insert(
        "x-recording-end",
        hv(&rfc3339(clip.end_ns().min(plan.actual.end_ns))),
    );
    h.insert("x-lead-in-ms", HeaderValue::from(0));
    h.insert("x-transcoded", HeaderValue::from_static("h264"));
    // Which conversion served it, for tools and tests.
    h.insert("x-transcode-source", HeaderValue::from_static("live"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    Ok(resp)
}

/// Query of `snapshot.jpg`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// A recorded moment (RFC 3339); absent means the latest key frame.
    at: Option<String>,
    /// Scale to this width (height keeps the aspect ratio).
    width: Option<u32>,
    /// A user saving the picture (the live tile's snapshot button): always audited,
    /// and sent as a file to save.
    download: Option<bool>,
}

/// `GET /api/cameras/{id}/snapshot.jpg[?at=TIME][&width=N][&download=true]`: a key frame
/// as JPEG. The latest one is cached per camera and width until a newer key frame is
/// recorded. Audited as `snapshot`, de-duplicated (see [`AUDIT_WINDOW_NS`]) for stills a
/// page refreshes; every download is audited (a copy leaving the NVR).
async fn snapshot(
    State(app): State<Arc<App>>,
    Extension(media): Extension<Arc<MediaState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> Result<Response, ApiError> {
    use crate::transcode::snapshot as snap;
    if q.width.is_some_and(|w| !snap::WIDTHS.contains(&w)) {
        return Err(ApiError::invalid_argument("width must be 16..4096"));
    }
    let at = q.at.as_deref().map(|s| parse_time("at", s)).transpose()?;
    let kf = {
        let (app, id) = (app.clone(), id.clone());
        tokio::task::spawn_blocking(move || match at {
            Some(t) => snap::key_frame_at(&app.store, &id, t),
            None => snap::latest_key_frame(&app.store, &id),
        })
        .await??
    };
    let Some(kf) = kf else {
        return Err(ApiError::not_found("nothing recorded at that time"));
    };
    let key = (id.clone(), q.width);
    let cached = at.is_none().then(|| {
        let m = media.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&key)
            .filter(|(p, moof, _)| *p == kf.path && *moof == kf.moof)
            .map(|(_, _, s)| s.clone())
    });
    let shot = match cached.flatten() {
        Some(s) => s,
        None => {
            let kf2 = kf.clone();
            let width = q.width;
            let s = tokio::task::spawn_blocking(move || snap::decode(&kf2, width)).await??;
            if at.is_none() {
                media
                    .snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, (kf.path.clone(), kf.moof, s.clone()));
            }
            s
        }
    };
    let minute = at.map(|t| t.div_euclid(60 * NS_PER_SEC));
    let key = format!("{}\0{id}\0{minute:?}", c.user.name);
    let download = q.download == Some(true);
    if download
        || media
            .snapshot_audited
            .should_record(key, app.clock.now_ns(), AUDIT_WINDOW_NS)
    {
        let asked =
            q.at.as_deref()
                .map_or("latest".to_owned(), |_| rfc3339(at.unwrap_or_default()));
        let width = q.width.map_or("full".to_owned(), |w| w.to_string());
        app.record(Event {
            actor: c.user.name.clone(),
            role: Some(c.user.role.as_str().into()),
            action: Action::Snapshot,
            target: id.clone(),
            client: c.client.clone(),
            detail: format!(
                "at={asked} frame={} width={width}{}",
                rfc3339(shot.frame_ns),
                if download { " download" } else { "" }
            ),
        })
        .await?;
    }
    let mut r = jpeg_response(&shot);
    if download {
        // Camera ids are [a-z0-9_-] (`config::valid_id`); the time has no ':' for
        // file systems that refuse it.
        let name = format!("{id}-{}.jpg", rfc3339(shot.frame_ns).replace(':', ""));
        r.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            hv(&format!("attachment; filename=\"{name}\"")),
        );
    }
    Ok(r)
}

/// A still as a JPEG answer, with the wall time of the frame it shows.
fn jpeg_response(shot: &crate::transcode::snapshot::Snapshot) -> Response {
    let mut r = shot.jpeg.clone().into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(shot.jpeg.len()));
    h.insert("x-frame-time", hv(&rfc3339(shot.frame_ns)));
    r
}

/// Query of `thumbnail`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbQuery {
    /// The moment (RFC 3339).
    t: String,
}

/// `GET /api/cameras/{id}/thumbnail?t=TIME`: the key frame at or before `t`,
/// [`THUMB_WIDTH`] pixels wide, for the timeline's hover preview; 404 where
/// nothing is recorded. Decoded once per key frame and cached on disk beside its
/// segment, deleted with it (`transcode::snapshot::thumbnail`). Audited as
/// `snapshot` (detail `thumbnail`) once per user, camera and hour of footage
/// in [`AUDIT_WINDOW_NS`]: hovering sweeps many moments, each is not a new viewing.
async fn thumbnail(
    State(app): State<Arc<App>>,
    Extension(media): Extension<Arc<MediaState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ThumbQuery>,
) -> Result<Response, ApiError> {
    let at = parse_time("t", &q.t)?;
    let thumb = {
        let (app, id) = (app.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            crate::transcode::snapshot::thumbnail(&app.store, &id, at, THUMB_WIDTH)
        })
        .await??
    };
    let Some(thumb) = thumb else {
        return Err(ApiError::not_found("nothing recorded at that time"));
    };
    let hour = at.div_euclid(3600 * NS_PER_SEC);
    let audit_key = format!("{}\0{id}\0thumb{hour}", c.user.name);
    if media
        .snapshot_audited
        .should_record(audit_key, app.clock.now_ns(), AUDIT_WINDOW_NS)
    {
        app.record(Event {
            actor: c.user.name.clone(),
            role: Some(c.user.role.as_str().into()),
            action: Action::Snapshot,
            target: id.clone(),
            client: c.client.clone(),
            detail: format!(
                "thumbnail at={} frame={} width={THUMB_WIDTH}",
                rfc3339(at),
                rfc3339(thumb.frame_ns)
            ),
        })
        .await?;
    }
    let mut r = thumb.jpeg.clone().into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(thumb.jpeg.len()));
    h.insert("x-frame-time", hv(&rfc3339(thumb.frame_ns)));
    // Only finished segments are indexed, so the key frame at or before `t` in one never
    // changes. The browser may keep it for its user (private: it needs a login) as long
    // as a new look would not be audited anyway; after that it asks again, so deleted
    // footage or a withdrawn camera stops showing. (A 404 stays `no-store`.)
    h.insert(
        header::CACHE_CONTROL,
        hv(&format!(
            "private, max-age={}",
            AUDIT_WINDOW_NS / NS_PER_SEC
        )),
    );
    Ok(r)
}

/// Body of `POST /api/exports`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    cameras: Vec<String>,
    start: String,
    end: String,
    reason: String,
    /// Also an H.264 working copy of every master.
    #[serde(default)]
    working_copy: bool,
    /// Redacted copies instead of the masters.
    #[serde(default)]
    redact: Option<crate::transcode::redact::Redaction>,
    /// Who receives the footage (required).
    recipient: String,
    /// Case, crime or subject-access reference.
    #[serde(default)]
    reference: String,
    /// The legal basis for disclosing.
    #[serde(default)]
    legal_basis: String,
    /// For a subject-access request: the day it was received (YYYY-MM-DD).
    #[serde(default)]
    request_received: Option<String>,
}

/// `POST /api/exports`: operators and admins; starts the export in the background and
/// answers 202 with its id and status link.
async fn create_export(
    State(app): State<Arc<App>>,
    Extension(media): Extension<Arc<MediaState>>,
    Extension(c): Extension<Caller>,
    ApiJson(body): ApiJson<ExportRequest>,
) -> Result<Response, ApiError> {
    if !c.user.role.can_export() {
        return Err(ApiError::permission_denied(
            "only operators and admins may export",
        ));
    }
    let (start_ns, end_ns) = range_of(&body.start, &body.end, export::MAX_RANGE_NS)?;
    let mut cameras = Vec::new();
    for id in &body.cameras {
        if !c.user.may_see(id) {
            return Err(ApiError::permission_denied(format!(
                "not allowed to see camera {id}"
            )));
        }
        if !app.camera_reachable(&c.user, id) {
            return Err(ApiError::not_found(format!("no camera {id}")));
        }
        // A removed camera (admins only) is named by its id: its name went with it.
        let name = app
            .cameras
            .get(id)
            .map(|cam| cam.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.clone());
        cameras.push((id.clone(), name));
    }
    let req = export::Request {
        cameras,
        start_ns,
        end_ns,
        reason: body.reason,
        user: c.user.name.clone(),
        time_zone: app.config.server.time_zone(),
        working_copy: body.working_copy,
        redact: body.redact,
        disclosure: Some(export::disclosure::Disclosure {
            recipient: body.recipient,
            reference: body.reference,
            legal_basis: body.legal_basis,
            request_received: body.request_received.filter(|d| !d.is_empty()),
        }),
    };
    export::validate(&req)?;
    if let Err(e) = &app.signer {
        // The reason names the key's file: admins see it, operators get plain words.
        let why = if c.user.role == crate::auth::Role::Admin {
            e.to_string()
        } else {
            "an administrator can see why on the System page".to_owned()
        };
        return Err(ApiError::unavailable(format!(
            "exports are unavailable: the export signing key cannot be used ({why})"
        )));
    }
    // Planned and measured against the export quota before anything is written: an
    // export that does not fit is refused here, never made room for with footage.
    let (job, planned, reservation) = {
        let (app, media, req) = (app.clone(), media.clone(), req.clone());
        tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
            let jobs = media.jobs(&app);
            let planned = export::plan(&app.store, &req)?;
            // The second `?`: a refusal for space (`From<Refusal>`).
            let reservation =
                export::quota::admit(&app.config.storage, &jobs.ledger, planned.need_bytes())??;
            let job = jobs.create(&req.user, &req, app.clock.now_ns())?;
            Ok((job, planned, reservation))
        })
        .await??
    };
    let id = job.id.clone();
    let client = c.client.clone();
    let role = c.user.role.as_str();
    tokio::task::spawn_blocking(move || {
        let now = app.clock.now_ns();
        media
            .jobs(&app)
            .run(&job, planned, &req, now, reservation, |outcome| {
                let now = app.clock.now_ns();
                jobs::register_and_audit(&app.store, &req, outcome, &job.id, now, || {
                    let ev = jobs::audit_event(&req, outcome, &job.id, &client, Some(role));
                    app.audit.append(now, ev).map(|_| ())
                })
            })
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": "running", "url": format!("/api/exports/{id}") })),
    )
        .into_response())
}

/// The export `id` if the caller may see it (its owner, or an admin); 404 otherwise, so
/// ids of other people's exports are not confirmed.
async fn find_job(
    app: &Arc<App>,
    media: &Arc<MediaState>,
    c: &Caller,
    id: &str,
) -> Result<(String, Status), ApiError> {
    let not_found = || ApiError::not_found("no such export");
    let found = {
        let (app, media, id) = (app.clone(), media.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || media.jobs(&app).find(&id)).await?
    };
    let (owner, status) = found.ok_or_else(not_found)?;
    if owner != c.user.name && c.user.role != crate::auth::Role::Admin {
        return Err(not_found());
    }
    Ok((owner, status))
}

/// `GET /api/exports/{id}`: status, progress, and when done the manifest and links.
async fn export_status(
    State(app): State<Arc<App>>,
    Extension(media): Extension<Arc<MediaState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (owner, status) = find_job(&app, &media, &c, &id).await?;
    let dir = media.jobs(&app).dir(&id);
    let mut out = json!({ "id": id, "owner": owner });
    // Only what the caller may download now: a user demoted or limited since the export
    // was made sees neither the other cameras' files nor the manifest describing them.
    let may = |m: &export::Manifest, name: &str| {
        export::download_scope(m, name, c.user.role.can_export(), |cam| c.user.may_see(cam)).is_ok()
    };
    let done = |out: &mut Value, manifest: &export::Manifest, sha: &str| {
        let mut files: Vec<Value> = manifest
            .files()
            .filter(|f| may(manifest, &f.file))
            .map(|f| {
                json!({ "file": f.file, "bytes": f.bytes, "sha256": f.sha256,
                        "url": format!("/api/exports/{id}/files/{}", f.file) })
            })
            .collect();
        let whole = may(manifest, export::MANIFEST);
        if whole {
            for name in export::PACKAGE_FILES {
                if dir.join(name).is_file() {
                    files.push(
                        json!({ "file": name, "url": format!("/api/exports/{id}/files/{name}") }),
                    );
                }
            }
            out["manifest"] = serde_json::to_value(manifest).unwrap_or_default();
            out["package_url"] = json!(format!("/api/exports/{id}/package.zip"));
        }
        out["status"] = json!("done");
        out["manifest_sha256"] = json!(sha);
        out["files"] = json!(files);
    };
    match status {
        Status::Job(j) => {
            let total = j.progress.total.load(std::sync::atomic::Ordering::Relaxed);
            let sent = j.progress.done.load(std::sync::atomic::Ordering::Relaxed);
            out["progress"] = json!({ "bytes_done": sent, "bytes_total": total });
            match j.state() {
                JobState::Running => out["status"] = json!("running"),
                JobState::Failed(e) => {
                    out["status"] = json!("failed");
                    out["error"] = json!(e);
                }
                JobState::Done(o) => done(&mut out, &o.manifest, &o.manifest_sha256),
            }
        }
        Status::Earlier(json) => {
            match json.and_then(|j| {
                let m: export::Manifest = serde_json::from_slice(&j).ok()?;
                Some((m, crate::export::sha256_hex(&j)))
            }) {
                Some((m, sha)) => done(&mut out, &m, &sha),
                None => {
                    out["status"] = json!("failed");
                    out["error"] = json!("interrupted by a restart");
                }
            }
        }
    }
    Ok(Json(out))
}

/// `GET /api/exports/{id}/files/{name}`: one file of a finished export, if the caller's
/// current role and cameras allow it ([`export::download_scope`]). Audited.
async fn export_file(
    State(app): State<Arc<App>>,
    Extension(media): Extension<Arc<MediaState>>,
    Extension(c): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    method: Method,
) -> Result<Response, ApiError> {
    let (dir, _, m) = finished_manifest(&app, &media, &c, &id).await?;
    // Only names the finished manifest lists (or the manifest and sums themselves).
    let listed =
        export::PACKAGE_FILES.contains(&name.as_str()) || m.files().any(|f| f.file == name);
    if !listed {
        return Err(ApiError::not_found("no such file in this export"));
    }
    let cameras = export::download_scope(&m, &name, c.user.role.can_export(), |cam| {
        c.user.may_see(cam)
    })
    .map_err(ApiError::permission_denied)?;
    let file = tokio::fs::File::open(dir.join(&name))
        .await
        .map_err(|_| ApiError::not_found("file missing"))?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    if method == Method::GET {
        let sha = m
            .files()
            .find(|f| f.file == name)
            .map(|f| f.sha256.as_str());
        app.record(Event {
            actor: c.user.name.clone(),
            role: Some(c.user.role.as_str().into()),
            action: Action::ExportDownload,
            target: cameras.join(","),
            client: c.client.clone(),
            detail: format!(
                "export={id} file={name} bytes={len} sha256={}",
                sha.unwrap_or("-")
            ),
        })
        .await?;
    }
    let ctype = if name.ends_with(".mp4") {
        "video/mp4"
    } else if name.ends_with(".json") {
        "application/json"
    } else if name.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let chunks = futures::stream::try_unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0; 256 * 1024];
        let n = f.read(&mut buf).await?;
        buf.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (bytes::Bytes::from(buf), f)))
    });
    let body = Body::from_stream(while_valid(app.clone(), c.clone(), chunks));
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_DISPOSITION,
        hv(&format!("attachment; filename=\"{name}\"")),
    );
    Ok(r)
}

/// Whether an export may be downloaded: only once its job has finished (files written
/// and signed, audit entry recorded). While it runs, `manifest.json` may already be on
/// disk with the signature or the audit entry still to come (and a failed export is
/// deleted), so a download then would be a partial or unrecorded package: 409.
fn downloadable(status: &Status) -> Result<(), ApiError> {
    match status {
        Status::Job(j) => match j.state() {
            JobState::Done(_) => Ok(()),
            JobState::Running => Err(ApiError::conflict(
                "export not finished yet: wait until its status is done",
            )),
            JobState::Failed(e) => Err(ApiError::conflict(format!(
                "export failed, nothing to download: {e}"
            ))),
        },
        Status::Earlier(Some(_)) => Ok(()),
        Status::Earlier(None) => Err(ApiError::conflict(
            "export never finished (interrupted by a restart), nothing to download",
        )),
    }
}

/// The directory, manifest bytes and parsed manifest of export `id`, once the caller may
/// see the job and it has finished ([`downloadable`]).
async fn finished_manifest(
    app: &Arc<App>,
    media: &Arc<MediaState>,
    c: &Caller,
    id: &str,
) -> Result<(std::path::PathBuf, Vec<u8>, export::Manifest), ApiError> {
    let (_, status) = find_job(app, media, c, id).await?;
    downloadable(&status)?;
    let dir = media.jobs(app).dir(id);
    let manifest = tokio::fs::read(dir.join(export::MANIFEST))
        .await
        .map_err(|_| ApiError::not_found("export not finished"))?;
    let m = serde_json::from_slice(&manifest).map_err(ApiError::internal)?;
    Ok((dir, manifest, m))
}

/// `GET /api/exports/{id}/package.zip`: the whole exhibit package as one zip, streamed
/// as it is read from disk (never built in memory). Needs the rights of the manifest
/// (every camera of the export), checked afresh; audited as `export_download`.
async fn export_package(
    State(app): State<Arc<App>>,
    Extension(media): Extension<Arc<MediaState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    method: Method,
) -> Result<Response, ApiError> {
    let (dir, manifest, m) = finished_manifest(&app, &media, &c, &id).await?;
    let cameras = export::download_scope(&m, export::MANIFEST, c.user.role.can_export(), |cam| {
        c.user.may_see(cam)
    })
    .map_err(ApiError::permission_denied)?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        ),
        (
            header::CONTENT_DISPOSITION,
            hv(&format!("attachment; filename=\"export-{id}.zip\"")),
        ),
    ];
    // A HEAD (axum answers it with this handler) downloads nothing: no zip, no audit.
    if method == Method::HEAD {
        return Ok((headers, Body::empty()).into_response());
    }
    // Taken before the audit entry: a refused download was not a download.
    let slot = media.package_streams.take(&c.user.name)?;
    let names = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || export::zip::package_files(&m, &dir)).await?
    };
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::ExportDownload,
        target: cameras.join(","),
        client: c.client.clone(),
        detail: format!(
            "export={id} file=package.zip files={} manifest_sha256={}",
            names.len(),
            export::sha256_hex(&manifest)
        ),
    })
    .await?;
    // The zip is written on a blocking thread into a small channel: the client's pace
    // sets the disk reads, and a client that leaves ends the thread at its next chunk.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let folder = format!("export-{id}");
    tokio::task::spawn_blocking(move || {
        let mut w = export::zip::ChannelWriter::new(tx);
        if let Err(e) = export::zip::write(&dir, &folder, &names, &mut w) {
            tracing::warn!(export = %folder, error = %format!("{e:#}"), "package.zip not completed");
            w.fail(&e);
        }
    });
    // The slot lives as long as the body: it is freed when the last chunk is sent or
    // the client goes away.
    let chunks = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv().await.map(|item| (item, (rx, slot)))
    });
    let body = Body::from_stream(while_valid(app.clone(), c.clone(), chunks));
    Ok((headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_streams_are_capped_per_user_and_per_server() {
        let slots = Arc::new(StreamSlots::new(3, 2));
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        let e = slots.take("a").err().unwrap();
        assert_eq!((e.status().as_u16(), e.retry_after), (429, Some(5)));
        let _b1 = slots.take("b").unwrap();
        let e = slots.take("c").err().unwrap();
        assert_eq!((e.status().as_u16(), e.retry_after), (503, Some(5)));
        assert!(e.detail.contains("packages"), "{}", e.detail);
        // A finished (or abandoned) stream frees its slot for anyone.
        drop(a1);
        let _c1 = slots.take("c").unwrap();
        assert_eq!(slots.take("b").err().unwrap().status().as_u16(), 503);
    }

    #[test]
    fn only_finished_exports_are_downloadable() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(tmp.path()).unwrap();
        let jobs = Jobs::new(
            tmp.path(),
            Err("no key in this test".into()),
            Arc::default(),
        );
        let req = export::Request {
            cameras: vec![("cam".into(), "Gate".into())],
            start_ns: 0,
            end_ns: 10 * NS_PER_SEC,
            reason: "test".into(),
            user: "op".into(),
            time_zone: jiff::tz::TimeZone::UTC,
            working_copy: false,
            redact: None,
            disclosure: None,
        };
        let job = jobs.create("op", &req, 0).unwrap();
        // Running, with a manifest already on disk (as while it is signed and recorded).
        std::fs::create_dir_all(jobs.dir(&job.id)).unwrap();
        std::fs::write(jobs.dir(&job.id).join(export::MANIFEST), b"{}").unwrap();
        let (_, status) = jobs.find(&job.id).unwrap();
        let e = downloadable(&status).unwrap_err();
        assert_eq!(e.status().as_u16(), 409, "{}", e.detail);
        assert!(e.detail.contains("not finished"), "{}", e.detail);
        // Failed (here: no signing key).
        let ledger = Arc::new(export::quota::Ledger::default());
        let limits = export::quota::Limits {
            max_bytes: u64::MAX,
            retain_days: 0,
            min_free_bytes: 0,
        };
        let reservation = ledger.reserve(&limits, 0, 0, u64::MAX).unwrap();
        let planned = export::plan(&store, &req).unwrap();
        jobs.run(&job, planned, &req, 0, reservation, |_| Ok(()));
        let e = downloadable(&jobs.find(&job.id).unwrap().1).unwrap_err();
        assert_eq!(e.status().as_u16(), 409, "{}", e.detail);
        assert!(e.detail.contains("failed"), "{}", e.detail);
        // From before a restart: finished only if its manifest is there.
        assert_eq!(
            downloadable(&Status::Earlier(None))
                .unwrap_err()
                .status()
                .as_u16(),
            409
        );
        assert!(downloadable(&Status::Earlier(Some(b"{}".to_vec()))).is_ok());
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        let cases: &[(Option<&str>, RangeAnswer)] = &[
            (None, Full),
            (Some("bytes=0-99"), Partial(0, 100)),
            (Some("bytes=0-"), Partial(0, 1000)),
            (Some("bytes=500-599"), Partial(500, 600)),
            (Some("bytes=900-5000"), Partial(900, 1000)),
            (Some("bytes=-100"), Partial(900, 1000)),
            (Some("bytes=-5000"), Partial(0, 1000)),
            (Some("bytes=0-0"), Partial(0, 1)),
            (Some("bytes=999-"), Partial(999, 1000)),
            (Some("bytes=1000-"), Unsatisfiable),
            (Some("bytes=2000-3000"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=0-9, 100-199"), Partial(0, 200)),
            (Some("bytes=5000-6000, 10-19"), Partial(10, 20)),
            (Some("bytes=9-5"), Full),
            (Some("bytes=abc"), Full),
            (Some("bytes=-"), Full),
            (Some("items=0-5"), Full),
        ];
        for (h, want) in cases {
            assert_eq!(parse_range(*h, 1000), *want, "{h:?}");
        }
    }
}
