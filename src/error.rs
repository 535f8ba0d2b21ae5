//! The crate's one error type: every error has an [`ErrorKind`] saying what
//! the caller can do about it, a message the caller may read, and optionally
//! the cause (for the log only).
//!
//! A layer that knows what a failure means sets the kind where it happens
//! ("no such recording" is [`ErrorKind::NotFound`], a full volume is
//! [`ErrorKind::ResourceExhausted`]); a layer that does not know passes an
//! `anyhow::Error` on, and the kind is found when it reaches a caller
//! ([`Error::from`]): a kinded error anywhere in its chain wins, a full disk
//! is `ResourceExhausted`, anything else is [`ErrorKind::Internal`]. The web
//! layer maps kinds to HTTP statuses in one place (`web::error`).
//!
//! The message is said to the caller, so it names no file paths and no
//! credentials; an internal error's message is only logged, and the caller
//! sees a fixed sentence.

use std::fmt;

use serde_json::{Map, Value};

/// What kind of failure, as the caller must act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A parameter or body that will never be accepted as sent.
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
    /// codec parameters changing in a range, an export not finished).
    Conflict,
    /// The request body is larger than accepted.
    TooLarge,
    /// The request body is not in a format the server reads.
    UnsupportedMediaType,
    /// Too many of the caller's own at once (logins, downloads): retry later.
    RateLimited,
    /// Not enough storage for what was asked: a full volume, an export quota.
    ResourceExhausted,
    /// A camera asked on the caller's behalf failed or refused.
    Upstream,
    /// The server cannot serve this now (busy for everyone, not set up yet).
    Unavailable,
    /// A bug or a failure of the server's own storage; logged, not detailed.
    Internal,
}

impl ErrorKind {
    /// Every kind, for tests that must cover them all.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Unauthenticated,
        ErrorKind::TotpRequired,
        ErrorKind::TotpInvalid,
        ErrorKind::PermissionDenied,
        ErrorKind::TotpEnrolmentRequired,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::RateLimited,
        ErrorKind::ResourceExhausted,
        ErrorKind::Upstream,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
    ];
}

/// An error with a kind: see the module docs.
#[derive(Debug)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Said to the caller (never paths or credentials); for
    /// [`ErrorKind::Internal`], only logged.
    pub detail: String,
    /// Seconds until a retry may succeed (`Retry-After`), when known.
    pub retry_after: Option<u64>,
    /// Further facts the caller can act on (e.g. the parts a range splits
    /// into), added to the JSON answer beside `error` and `detail`.
    pub extra: Map<String, Value>,
    /// The cause, for the log only.
    source: Option<anyhow::Error>,
}

/// A result whose error is the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind`, telling the caller `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: detail.into(),
            retry_after: None,
            extra: Map::new(),
            source: None,
        }
    }
    /// The same error with its cause kept for the log (not shown to callers).
    pub fn caused_by(mut self, source: impl Into<anyhow::Error>) -> Self {
        self.source = Some(source.into());
        self
    }
    /// The same error, retry in `secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// The same error with the fact `key` for the caller.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }
    /// [`ErrorKind::InvalidArgument`].
    pub fn invalid_argument(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, detail)
    }
    /// [`ErrorKind::Unauthenticated`].
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, detail)
    }
    /// [`ErrorKind::PermissionDenied`].
    pub fn permission_denied(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, detail)
    }
    /// [`ErrorKind::NotFound`].
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }
    /// [`ErrorKind::Conflict`].
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, detail)
    }
    /// [`ErrorKind::ResourceExhausted`].
    pub fn resource_exhausted(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExhausted, detail)
    }
    /// [`ErrorKind::Upstream`].
    pub fn upstream(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, detail)
    }
    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, detail)
    }
    /// [`ErrorKind::Internal`]: `e` goes to the log only.
    pub fn internal(e: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, format!("{e:#}"))
    }
}

impl fmt::Display for Error {
    /// The detail; `{:#}` adds the cause's chain (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)?;
        match &self.source {
            Some(s) if f.alternate() => write!(f, ": {s:#}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| -> &(dyn std::error::Error + 'static) { e.as_ref() })
    }
}

/// Finds the kind of an error from a layer that passed it on as `anyhow`: a
/// kinded [`Error`] anywhere in the chain keeps its kind, detail and facts; a
/// full volume is [`ErrorKind::ResourceExhausted`]; the rest is internal.
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        // Exactly a kinded error, with no context above it: take it whole.
        if e.chain()
            .next()
            .is_some_and(|c| c.downcast_ref::<Error>().is_some())
        {
            if let Ok(k) = e.downcast::<Error>() {
                return k;
            }
            unreachable!("the outermost error is an Error");
        }
        // Wrapped in context (which may name paths): keep the kinded error's
        // words for the caller and the whole chain for the log.
        if let Some(k) = e.downcast_ref::<Error>() {
            return Error {
                kind: k.kind,
                detail: k.detail.clone(),
                retry_after: k.retry_after,
                extra: k.extra.clone(),
                source: None,
            }
            .caused_by(e);
        }
        // Before the full-disk test: sled's log writer meeting a full volume is
        // the index waiting to be reopened (`reopen`), which the server does by
        // itself, not storage the caller must free.
        if e.chain().any(breaks_index) {
            return Error::unavailable(
                "the index is being reopened after a storage error; retry shortly",
            )
            .retry_after(crate::reopen::RETRY_AFTER_SECS)
            .caused_by(e);
        }
        if e.chain().any(is_disk_full) {
            return Error::resource_exhausted("the storage volume is full").caused_by(e);
        }
        Error::internal(e)
    }
}

/// Whether `e` is a sled error after which the index refuses every write
/// until it is reopened ([`crate::store::breaks_index`]).
fn breaks_index(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<sled::Error>()
        .is_some_and(crate::store::breaks_index)
}

/// Whether `e` says the volume (or the user's disk quota) is full.
fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let io = e.downcast_ref::<std::io::Error>();
    io.is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    })
}

/// A panicked or cancelled blocking task.
impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::internal(e)
    }
}

/// Setting a kind on a result from a layer that does not know it.
pub trait ResultExt<T> {
    /// The error becomes `kind` telling the caller `detail`; the original is
    /// kept as its cause, for the log.
    fn err_kind(self, kind: ErrorKind, detail: impl Into<String>) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for std::result::Result<T, E> {
    fn err_kind(self, kind: ErrorKind, detail: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::new(kind, detail).caused_by(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    /// A kinded error keeps its kind and words through `anyhow` and context
    /// added on the way up; the context (with its path) stays in the log.
    #[test]
    fn kind_survives_anyhow_and_context() {
        let e: anyhow::Error = Error::not_found("no such recording").into();
        let e = Error::from(e);
        assert_eq!(
            (e.kind, e.detail.as_str()),
            (ErrorKind::NotFound, "no such recording")
        );

        let r: anyhow::Result<()> = Err(Error::conflict("export not finished")
            .with("id", "x")
            .into());
        let e = Error::from(r.context("reading /srv/nvr/exports/x").unwrap_err());
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(e.detail, "export not finished");
        assert_eq!(e.extra["id"], "x");
        assert!(format!("{e:#}").contains("/srv/nvr/exports/x"), "{e:#}");
    }

    #[test]
    fn a_full_disk_is_resource_exhausted_and_the_rest_internal() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let e = Error::from(anyhow::Error::from(full).context("writing /srv/nvr/a.mp4"));
        assert_eq!(e.kind, ErrorKind::ResourceExhausted);
        assert!(!e.detail.contains("/srv"), "{}", e.detail);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = Error::from(anyhow::Error::from(denied));
        assert_eq!(e.kind, ErrorKind::Internal);
    }

    /// sled refusing writes (its log writer met ENOSPC, and keeps that error
    /// until the index is reopened, which the server does by itself) is
    /// "unavailable, retry", not "insufficient storage" (issue 10).
    #[test]
    fn an_index_waiting_to_be_reopened_is_unavailable_with_a_retry() {
        let refused = sled::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let e = Error::from(anyhow::Error::from(refused).context("appending to the audit log"));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(e.retry_after, Some(crate::reopen::RETRY_AFTER_SECS));
        assert!(!e.detail.contains("audit"), "{}", e.detail);
        // What does not break the index keeps its kind.
        let e = Error::from(anyhow::Error::from(sled::Error::Unsupported("x".into())));
        assert_eq!(e.kind, ErrorKind::Internal);
    }

    #[test]
    fn err_kind_keeps_the_cause_for_the_log_only() {
        let r: std::result::Result<(), _> = Err(std::io::Error::other("open /srv/x: gone"));
        let e = r.err_kind(ErrorKind::NotFound, "file missing").unwrap_err();
        assert_eq!(
            (e.kind, e.to_string().as_str()),
            (ErrorKind::NotFound, "file missing")
        );
        assert!(format!("{e:#}").contains("/srv/x"));
    }
}
