//! The one place where errors become HTTP statuses. Every failure is a
//! [`crate::error::Error`] with a kind; [`status`] alone picks the status of
//! each kind, and every API error is JSON `{ "error": code, "detail": text }`
//! (plus the error's facts, e.g. a range's parts), including the ones axum's
//! extractors raise for bad JSON, bad query strings and oversized bodies.
//! Handlers return [`ApiError`] and use `?` on the layers below, whose errors
//! convert with `From` where those layers know their kind.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// What handlers return: the crate's error, answered as JSON.
pub type ApiError = Error;

/// The HTTP status of each kind: the only place statuses are chosen for errors.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated | ErrorKind::TotpRequired | ErrorKind::TotpInvalid => {
            StatusCode::UNAUTHORIZED
        }
        ErrorKind::PermissionDenied | ErrorKind::TotpEnrolmentRequired => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
    }
}

/// The stable `error` string clients match on (API.md).
pub fn code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "bad_request",
        ErrorKind::Unauthenticated => "unauthorized",
        ErrorKind::TotpRequired => "totp_required",
        ErrorKind::TotpInvalid => "totp_invalid",
        ErrorKind::PermissionDenied => "forbidden",
        ErrorKind::TotpEnrolmentRequired => "totp_enrolment_required",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::TooLarge => "payload_too_large",
        ErrorKind::UnsupportedMediaType => "unsupported_media_type",
        ErrorKind::RateLimited => "too_many_requests",
        ErrorKind::Internal => "internal",
        ErrorKind::Upstream => "bad_gateway",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::ResourceExhausted => "insufficient_storage",
    }
}

/// What an internal error tells the client: nothing of its cause (paths,
/// addresses, index errors), which goes to the log.
pub const INTERNAL_DETAIL: &str = "internal error (see server log)";

/// The web's own refusals, with the words API.md documents.
impl Error {
    /// The HTTP status (from the kind, by [`status`]).
    pub fn status(&self) -> StatusCode {
        status(self.kind)
    }
    /// 401: the password was right; the user's second factor is needed too.
    pub fn totp_required() -> Self {
        Self::new(
            ErrorKind::TotpRequired,
            "enter the code from your authenticator app, or a recovery code",
        )
    }
    /// 401: the second factor was wrong or already used.
    pub fn totp_invalid() -> Self {
        Self::new(ErrorKind::TotpInvalid, "wrong or already used code")
    }
    /// 403: this account must set up a second factor before anything else.
    pub fn totp_enrolment_required() -> Self {
        Self::new(
            ErrorKind::TotpEnrolmentRequired,
            "administrators must set up a second factor first (POST /api/me/totp/enrol)",
        )
    }
    /// Too many failed logins: retry in `retry_after` s.
    pub fn too_many(retry_after: u64) -> Self {
        Self::new(
            ErrorKind::RateLimited,
            format!("too many failed logins; retry in {retry_after} s"),
        )
        .retry_after(retry_after)
    }
    /// Too many logins being checked at once: retry in `retry_after` s.
    pub fn busy(retry_after: u64) -> Self {
        Self::new(
            ErrorKind::RateLimited,
            "server busy checking other logins; retry shortly",
        )
        .retry_after(retry_after)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let detail = if self.kind == ErrorKind::Internal {
            tracing::error!(error = %format!("{self:#}"), "internal error serving a request");
            INTERNAL_DETAIL.to_owned()
        } else {
            if std::error::Error::source(&self).is_some() {
                tracing::debug!(error = %format!("{self:#}"), "refused a request");
            }
            self.detail
        };
        let mut body = self.extra;
        body.insert("error".into(), code(self.kind).into());
        body.insert("detail".into(), detail.into());
        let mut r = (status(self.kind), Json(Value::Object(body))).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(ErrorKind::TooLarge, "request body too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                ErrorKind::UnsupportedMediaType,
                "expected Content-Type: application/json",
            ),
            // Syntax errors and type mismatches alike are the client's fault.
            _ => Error::invalid_argument(r.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::invalid_argument(r.body_text())
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(ApiJson(Json::<T>::from_request(req, state).await?.0))
    }
}

/// `Query<T>` whose rejections are [`ApiError`]s.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(ApiQuery(
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await?
                .0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::{PlanError, Span};

    async fn answer(e: impl Into<ApiError>) -> (u16, Option<String>, Value) {
        let r = e.into().into_response();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    /// Each kind's status and `error` string, as API.md lists them. Written
    /// out rather than derived, so a changed mapping fails here.
    #[tokio::test]
    async fn every_kind_answers_its_status() {
        use ErrorKind as K;
        let want = |k| match k {
            K::InvalidArgument => (400, "bad_request"),
            K::Unauthenticated => (401, "unauthorized"),
            K::TotpRequired => (401, "totp_required"),
            K::TotpInvalid => (401, "totp_invalid"),
            K::PermissionDenied => (403, "forbidden"),
            K::TotpEnrolmentRequired => (403, "totp_enrolment_required"),
            K::NotFound => (404, "not_found"),
            K::Conflict => (409, "conflict"),
            K::TooLarge => (413, "payload_too_large"),
            K::UnsupportedMediaType => (415, "unsupported_media_type"),
            K::RateLimited => (429, "too_many_requests"),
            K::Internal => (500, "internal"),
            K::Upstream => (502, "bad_gateway"),
            K::Unavailable => (503, "unavailable"),
            K::ResourceExhausted => (507, "insufficient_storage"),
        };
        for k in ErrorKind::ALL {
            let (st, _, body) = answer(Error::new(k, "x")).await;
            assert_eq!((st, body["error"].as_str().unwrap()), want(k), "{k:?}");
        }
    }

    /// An internal error's answer says nothing of its cause: not the path of
    /// the file, not the context above it, not a URL with a password in it.
    /// The same holds for a kinded error's cause.
    #[tokio::test]
    async fn an_internal_answer_carries_no_path() {
        let path = "/srv/cleannvr/index/db";
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = anyhow::Error::from(io)
            .context(format!("opening {path}"))
            .context("rtsp://admin:hunter2@10.0.0.5/stream");
        let (st, _, body) = answer(e).await;
        assert_eq!(st, 500);
        let text = body.to_string();
        for secret in ["/srv", "index/db", "hunter2", "10.0.0.5"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(body["detail"], INTERNAL_DETAIL);

        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = Error::not_found("file missing").caused_by(
            anyhow::Error::from(missing).context(format!("opening {path}/exports/a.mp4")),
        );
        let (st, _, body) = answer(e).await;
        assert_eq!((st, body["detail"].as_str()), (404, Some("file missing")));
        assert!(!body.to_string().contains("/srv"), "{body}");
    }

    /// Errors of the layers below keep their status, `error` string and
    /// fields through `?`: a range whose codec changes names its boundary and
    /// parts, a full transcoder and an index waiting to be reopened say when to retry,
    /// a full volume is 507.
    #[tokio::test]
    async fn lower_errors_answer_by_their_kind() {
        let s = 1_800_000_000 * crate::clock::NS_PER_SEC;
        let changed = PlanError::ParametersChanged {
            at_ns: s + 10 * crate::clock::NS_PER_SEC,
            parts: vec![Span {
                start_ns: s,
                end_ns: s + 10 * crate::clock::NS_PER_SEC,
            }],
        };
        let (st, retry, body) = answer(changed).await;
        assert_eq!((st, retry), (409, None));
        assert_eq!(body["error"], "conflict");
        assert_eq!(body["boundary"], "2027-01-15T08:00:10.000Z", "{body}");
        assert_eq!(
            body["parts"][0]["start"], "2027-01-15T08:00:00.000Z",
            "{body}"
        );
        assert!(body["detail"].as_str().unwrap().contains("parts"), "{body}");

        let (st, _, body) = answer(PlanError::NothingRecorded).await;
        assert_eq!((st, body["error"].as_str()), (404, Some("not_found")));

        let (st, retry, body) = answer(crate::transcode::live::Busy).await;
        assert_eq!((st, retry.as_deref()), (503, Some("5")));
        assert_eq!(body["error"], "unavailable");

        let (st, retry, _) = answer(ApiError::too_many(7)).await;
        assert_eq!((st, retry.as_deref()), (429, Some("7")));

        let full = crate::export::quota::Refusal::Disabled;
        let (st, _, body) = answer(full).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (507, Some("insufficient_storage"))
        );

        // The index refusing writes until it is reopened: retry, not "full".
        let refused = sled::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let e = anyhow::Error::from(refused).context("adding a legal hold");
        let (st, retry, body) = answer(e).await;
        let secs = crate::reopen::RETRY_AFTER_SECS.to_string();
        assert_eq!((st, retry.as_deref()), (503, Some(secs.as_str())), "{body}");
        assert_eq!(body["error"], "unavailable");

        let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = anyhow::Error::from(enospc).context("writing /srv/cleannvr/index/db");
        let (st, _, body) = answer(e).await;
        assert_eq!(st, 507, "{body}");
        assert!(!body.to_string().contains("/srv"), "{body}");

        let e = crate::auth::UserError::Conflict("name taken".into());
        let (st, _, body) = answer(e).await;
        assert_eq!((st, body["detail"].as_str()), (409, Some("name taken")));
    }
}
