//! Ending what a session started when the session ends: a live WebSocket
//! or a download outlives the request that authorized it, so both check
//! again while they run, and stop when the session was revoked or expired,
//! the user removed, or the user's role, cameras or password changed.
//!
//! Checking (two index reads) rather than subscribing to changes keeps every
//! way a session can end covered, the CLI and expiry included, with nothing
//! to forget to notify.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::{App, Caller};

/// How often a live WebSocket re-checks its session: a revoked one is
/// closed within this time (issue 10 asks for under a second).
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

impl Caller {
    /// Whether the session is still live and the user unchanged since this
    /// request was authorized. Does not refresh the session's idle timer:
    /// only requests the user makes do.
    pub fn still_valid(&self, app: &App) -> bool {
        let Ok(Some(s)) = app.sessions.peek(&self.token) else {
            return false;
        };
        matches!(app.users.get(&s.user), Ok(Some(u)) if u.same_access(&self.user))
    }
}

/// `body`, ended with an error (so the client sees a cut transfer, not a
/// short complete one) at the first chunk after the caller's session ends.
/// Checks at most every [`CHECK_EVERY`].
pub fn while_valid<S>(
    app: Arc<App>,
    caller: Caller,
    body: S,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let mut checked = Instant::now();
    let mut ended = false;
    body.map(move |chunk| {
        if ended {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "session ended",
            ));
        }
        if checked.elapsed() >= CHECK_EVERY {
            checked = Instant::now();
            if !caller.still_valid(&app) {
                ended = true;
                tracing::info!(user = %caller.user.name, "session ended; stopping its download");
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "session ended",
                ));
            }
        }
        chunk
    })
}
