//! Reopening the index after sled stops accepting writes.
//!
//! sled 0.34 keeps the first I/O error of its log writer (ENOSPC on a full
//! volume) and refuses every later write until the database is opened again
//! (see the `store` docs). Users, sessions, audit, alarms, holds and the
//! segment index each hold trees of that one database, so reopening it inside
//! the running process would mean swapping every one of them under their
//! callers. The server instead re-executes itself in place: the same process
//! id, arguments and environment (`execve` of `/proc/self/exe`), much as
//! PostgreSQL's postmaster reinitialises after a failed WAL write. Start-up is
//! the crash-recovery path, which finishes unfinished segments and indexes
//! every segment file the index lacks (`store::check::recover_all`), so the
//! footage written while the index refused rows becomes findable again and
//! retention sees it. Recording pauses for the restart only: cameras reconnect
//! within seconds.
//!
//! Reopening needs a little space, so it is attempted only when the index
//! reserve (`store::reserve`) is there to be given back at the open, or the
//! volume has as much free. Otherwise the server keeps recording files, says
//! why, and reopens as soon as there is room.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::store::{reserve, retention, Store};

/// `nvr::run_with` stopped to reopen the index (the reason is sled's error).
#[derive(Debug)]
pub struct IndexBroken(pub String);

impl std::fmt::Display for IndexBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the index refuses writes until it is reopened: {}",
            self.0
        )
    }
}

impl std::error::Error for IndexBroken {}

/// Set in the environment of the re-executed server: why it was.
pub const REASON_ENV: &str = "CLEANNVR_INDEX_REOPENED";

/// How often the store's own writes are checked for the failure.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Every this many checks, a tiny write also catches failures met first by
/// writers outside the store (audit, alarms, sessions).
const PROBE_EVERY_CHECKS: u32 = 5;
/// How long the graceful stop (recorders finish their segments) may take before
/// the server re-executes anyway.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// `Retry-After` (s) of a write refused while the index waits to be reopened:
/// about a stop and a start-up. Longer when the volume has no room to reopen,
/// but the client cannot know that either, and asking again costs little.
pub const RETRY_AFTER_SECS: u64 = STOP_GRACE.as_secs();

/// Watches the index until `shutdown`. Once it refuses writes and can be
/// reopened, cancels `shutdown` and returns sled's error; with `reexec`, also
/// arms a timer that re-executes the server after [`STOP_GRACE`] should the
/// graceful stop hang.
pub async fn watch(store: Arc<Store>, shutdown: CancellationToken, reexec: bool) -> Option<String> {
    let mut checks = 0u32;
    let mut waiting = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = crate::clock::tick(CHECK_EVERY) => {}
        }
        checks = checks.wrapping_add(1);
        let failure = if checks.is_multiple_of(PROBE_EVERY_CHECKS) {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.probe())
                .await
                .ok()
                .flatten()
        } else {
            store.failure()
        };
        let Some(why) = failure else { continue };
        if !can_reopen(&store) {
            if !waiting {
                error!(
                    dir = %store.dir().display(),
                    error = %why,
                    "the index refuses writes and the volume has no room to reopen it (the \
                     index reserve is used up): segment files are still written; free space \
                     on the volume and the index reopens by itself"
                );
                waiting = true;
            }
            continue;
        }
        error!(
            error = %why,
            "reopening the index: cleannvr restarts itself in place (cameras reconnect; \
             segment files written meanwhile are indexed at start)"
        );
        if reexec {
            let why = why.clone();
            std::thread::spawn(move || {
                std::thread::sleep(STOP_GRACE);
                warn!("the stop took too long; re-executing now");
                let e = exec(&why);
                error!(error = %format!("{e:#}"), "cannot re-execute");
                std::process::exit(1);
            });
        }
        shutdown.cancel();
        return Some(why);
    }
}

/// Whether opening the index can find the space it needs: the reserve to give
/// back, or as much free.
fn can_reopen(store: &Store) -> bool {
    let dir = store.dir();
    if reserve::present(dir) {
        return true;
    }
    match (
        retention::volume_free_bytes(dir),
        retention::volume_total_bytes(dir),
    ) {
        (Ok(free), Ok(total)) => free >= reserve::size_for(total),
        // Not knowing, try: the open gives the reserve back if it fails.
        _ => true,
    }
}

/// Replaces this process with a fresh run of the same program, arguments and
/// environment, telling it `why` in [`REASON_ENV`]. Returns only on failure
/// (then the caller exits non-zero, and a service manager starts it again).
pub fn exec(why: &str) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "cleannvr".into());
    // `/proc/self/exe` still names this program if its file was replaced by an upgrade.
    let e = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env(REASON_ENV, why)
        .exec();
    anyhow::Error::from(e).context("re-executing cleannvr to reopen the index")
}
