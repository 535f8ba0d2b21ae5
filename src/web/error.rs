//! The one place where errors become HTTP statuses: every API error has a
//! [`Kind`], and [`Kind::status`] alone picks its status. Every API error is
//! JSON `{ "error": kind, "detail": text }`, including the ones axum's
//! extractors raise for bad JSON, bad query strings and oversized bodies.
//! Errors of the layers below (users, playback plans, transcode slots, PTZ,
//! camera changes) convert with `From`, so handlers use `?`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::auth::UserError;
use crate::playback::PlanError;

/// What kind of failure an API error is, as the client must act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A parameter or body the server will never accept as sent.
    InvalidArgument,
    /// No valid session, or a wrong login.
    Unauthenticated,
    /// The password was right; the second factor is needed too.
    TotpRequired,
    /// The second factor was wrong or already used.
    TotpInvalid,
    /// Logged in but not allowed.
    PermissionDenied,
    /// This account must set up a second factor before anything else.
    TotpEnrolmentRequired,
    /// No such thing (or not one the caller may know of).
    NotFound,
    /// Refused because of the current state (a name taken, the last admin,
    /// codec parameters changing in a range).
    Conflict,
    /// The request body is larger than accepted.
    PayloadTooLarge,
    /// The request body is not JSON.
    UnsupportedMediaType,
    /// Too many of the caller's own (logins, downloads): retry later.
    TooManyRequests,
    /// A bug or a failure of the server's own storage; logged, not detailed.
    Internal,
    /// A camera we asked on the caller's behalf failed or refused.
    BadGateway,
    /// The server cannot serve this now (busy for everyone, not set up yet).
    Unavailable,
    /// Not enough storage for what was asked (an export past its quota).
    InsufficientStorage,
}

impl Kind {
    /// The HTTP status of this kind: the only place statuses are chosen for errors.
    pub fn status(self) -> StatusCode {
        match self {
            Kind::InvalidArgument => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated | Kind::TotpRequired | Kind::TotpInvalid => {
                StatusCode::UNAUTHORIZED
            }
            Kind::PermissionDenied | Kind::TotpEnrolmentRequired => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::BadGateway => StatusCode::BAD_GATEWAY,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// The stable `error` string clients match on (API.md).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::InvalidArgument => "bad_request",
            Kind::Unauthenticated => "unauthorized",
            Kind::TotpRequired => "totp_required",
            Kind::TotpInvalid => "totp_invalid",
            Kind::PermissionDenied => "forbidden",
            Kind::TotpEnrolmentRequired => "totp_enrolment_required",
            Kind::NotFound => "not_found",
            Kind::Conflict => "conflict",
            Kind::PayloadTooLarge => "payload_too_large",
            Kind::UnsupportedMediaType => "unsupported_media_type",
            Kind::TooManyRequests => "too_many_requests",
            Kind::Internal => "internal",
            Kind::BadGateway => "bad_gateway",
            Kind::Unavailable => "unavailable",
            Kind::InsufficientStorage => "insufficient_storage",
        }
    }
}

/// An API error: a kind, a human detail and what else the client needs.
#[derive(Debug)]
pub struct ApiError {
    /// What kind of failure; decides the status and the `error` string.
    pub kind: Kind,
    /// Human-readable detail; never credentials or internal paths.
    pub detail: String,
    /// For 429 and 503: seconds until a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
    /// Further fields of the JSON answer (e.g. the parts a range splits into).
    pub extra: serde_json::Map<String, Value>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        ApiError {
            kind,
            detail: detail.into(),
            retry_after: None,
            extra: Default::default(),
        }
    }
    /// The same error with `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// The same error with the field `key` added to its JSON answer.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
    /// The HTTP status (from the kind).
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, detail)
    }
    /// 401: no valid session (or wrong login).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(Kind::Unauthenticated, detail)
    }
    /// 401: the password was right; the user's second factor is needed too.
    pub fn totp_required() -> Self {
        Self::new(
            Kind::TotpRequired,
            "enter the code from your authenticator app, or a recovery code",
        )
    }
    /// 401: the second factor was wrong or already used.
    pub fn totp_invalid() -> Self {
        Self::new(Kind::TotpInvalid, "wrong or already used code")
    }
    /// 403: this account must set up a second factor before anything else.
    pub fn totp_enrolment_required() -> Self {
        Self::new(
            Kind::TotpEnrolmentRequired,
            "administrators must set up a second factor first (POST /api/me/totp/enrol)",
        )
    }
    /// 403: logged in but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Kind::PermissionDenied, detail)
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, detail)
    }
    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, detail)
    }
    /// 507: not enough storage for what was asked (an export past its quota).
    pub fn insufficient_storage(detail: impl Into<String>) -> Self {
        Self::new(Kind::InsufficientStorage, detail)
    }
    /// 429 with `Retry-After`.
    pub fn too_many(retry_after: u64) -> Self {
        Self::new(
            Kind::TooManyRequests,
            format!("too many failed logins; retry in {retry_after} s"),
        )
        .retry_after(retry_after)
    }
    /// 429 with `Retry-After`: too many requests of this kind at once.
    pub fn busy(retry_after: u64) -> Self {
        Self::new(
            Kind::TooManyRequests,
            "server busy checking other logins; retry shortly",
        )
        .retry_after(retry_after)
    }
    /// 502: a camera we asked on the caller's behalf failed or refused.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(Kind::BadGateway, detail)
    }
    /// 503: the server cannot serve this yet (e.g. no admin exists).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, detail)
    }
    /// 500. The cause is logged here and not sent to the client.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error serving a request");
        Self::new(Kind::Internal, "internal error (see server log)")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("error".into(), self.kind.as_str().into());
        body.insert("detail".into(), self.detail.into());
        let mut r = (self.kind.status(), Json(Value::Object(body))).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(format!("{e:#}"))
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid(d) => ApiError::bad_request(d),
            UserError::NotFound => ApiError::not_found("no such user"),
            UserError::Conflict(d) => ApiError::conflict(d),
            UserError::Storage(e) => e.into(),
        }
    }
}

impl From<crate::ptz::PtzError> for ApiError {
    fn from(e: crate::ptz::PtzError) -> Self {
        match e {
            crate::ptz::PtzError::NotPtz(_) => ApiError::not_found(e.to_string()),
            // The kind only: the camera's address stays out of replies.
            crate::ptz::PtzError::Camera { camera, error } => ApiError::bad_gateway(format!(
                "camera {camera} did not carry out {}: {}",
                error.action, error.kind
            )),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(Kind::PayloadTooLarge, "request body too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                Kind::UnsupportedMediaType,
                "expected Content-Type: application/json",
            ),
            // Syntax errors and type mismatches alike are the client's fault.
            _ => ApiError::bad_request(r.body_text()),
        }
    }
}

/// A range that cannot be played or exported as asked. A change of codec
/// parameters names the boundary and lists the parts that can be requested
/// separately.
impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::NothingRecorded => ApiError::not_found(e.to_string()),
            PlanError::Invalid(d) => ApiError::bad_request(d),
            PlanError::ParametersChanged { at_ns, ref parts } => {
                use crate::clock::rfc3339;
                let parts: Vec<Value> = parts
                    .iter()
                    .map(|p| json!({ "start": rfc3339(p.start_ns), "end": rfc3339(p.end_ns) }))
                    .collect();
                ApiError::conflict(e.to_string())
                    .with("boundary", rfc3339(at_ns).into())
                    .with("parts", parts.into())
            }
            PlanError::Other(e) => e.into(),
        }
    }
}

/// Every transcode slot is taken: 503, retry in 5 s.
impl From<crate::transcode::live::Busy> for ApiError {
    fn from(e: crate::transcode::live::Busy) -> Self {
        ApiError::unavailable(e.to_string()).retry_after(5)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
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
    use crate::playback::Span;

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

    /// Errors of the layers below keep their status, `error` string and
    /// fields through `?`: a range whose codec changes names its boundary and
    /// parts, a full transcoder says when to retry.
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
        assert_eq!(body["parts"][0]["start"], "2027-01-15T08:00:00.000Z", "{body}");
        assert!(body["detail"].as_str().unwrap().contains("parts"), "{body}");

        let (st, _, body) = answer(PlanError::NothingRecorded).await;
        assert_eq!((st, body["error"].as_str()), (404, Some("not_found")));

        let (st, retry, body) = answer(crate::transcode::live::Busy).await;
        assert_eq!((st, retry.as_deref()), (503, Some("5")));
        assert_eq!(body["error"], "unavailable");

        let (st, retry, _) = answer(ApiError::too_many(7)).await;
        assert_eq!((st, retry.as_deref()), (429, Some("7")));
    }
}
