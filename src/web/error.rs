//! The one place where errors become HTTP statuses: every API error is JSON
//! `{ "error": kind, "detail": text }`, including the ones axum's extractors
//! raise for bad JSON, bad query strings and oversized bodies.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::UserError;

/// An API error: a status, a stable machine-readable kind and a human detail.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable kind, e.g. `unauthorized`.
    pub error: &'static str,
    /// Human-readable detail; never credentials or internal paths.
    pub detail: String,
    /// For 429: seconds until a retry may succeed.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            detail: detail.into(),
            retry_after: None,
        }
    }
    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }
    /// 401: no valid session (or wrong login).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    /// 401: the password was right; the user's second factor is needed too.
    pub fn totp_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "enter the code from your authenticator app, or a recovery code",
        )
    }
    /// 401: the second factor was wrong or already used.
    pub fn totp_invalid() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "totp_invalid",
            "wrong or already used code",
        )
    }
    /// 403: this account must set up a second factor before anything else.
    pub fn totp_enrolment_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "totp_enrolment_required",
            "administrators must set up a second factor first (POST /api/me/totp/enrol)",
        )
    }
    /// 403: logged in but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    /// 507: not enough storage for what was asked (an export past its quota).
    pub fn insufficient_storage(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            detail,
        )
    }
    /// 429 with `Retry-After`.
    pub fn too_many(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("too many failed logins; retry in {retry_after} s"),
            )
        }
    }
    /// 429 with `Retry-After`: too many requests of this kind at once.
    pub fn busy(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "server busy checking other logins; retry shortly",
            )
        }
    }
    /// `status` (429 or 503) with `Retry-After`: too much of this at once, said how.
    pub fn busy_with(status: StatusCode, retry_after: u64, detail: impl Into<String>) -> Self {
        let error = if status == StatusCode::TOO_MANY_REQUESTS {
            "too_many_requests"
        } else {
            "unavailable"
        };
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(status, error, detail)
        }
    }
    /// 502: a camera we asked on the caller's behalf failed or refused.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "bad_gateway", detail)
    }
    /// 503: the server cannot serve this yet (e.g. no admin exists).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
    /// 500. The cause is logged here and not sent to the client.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error serving a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see server log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({ "error": self.error, "detail": self.detail })),
        )
            .into_response();
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
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body too large",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ),
            // Syntax errors and type mismatches alike are the client's fault.
            _ => ApiError::bad_request(r.body_text()),
        }
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
