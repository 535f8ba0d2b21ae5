//! The server's side: listen on `<storage dir>/control.sock` and run each
//! request on the server's own open index, for local callers that are root or
//! the server's own user.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::admin::{self, Ctx};
use super::peer::{allowed, Caller};
use super::{socket_path, Request, Response, MAX_REQUEST};
use crate::web::App;

/// A client has this long to send its request line.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// Binds the socket and serves it until `shutdown`. A socket that cannot be bound
/// costs the admin commands (they then need the server stopped), not recording.
pub fn start(app: Arc<App>, shutdown: CancellationToken) {
    let path = socket_path(&app.config.storage.dir);
    match bind(&path) {
        Ok(listener) => {
            info!(socket = %path.display(), "control socket listening (cleannvr user, status, check, export)");
            tokio::spawn(serve(listener, path, app, shutdown));
        }
        Err(e) => warn!("no control socket, so admin commands need cleannvr stopped: {e:#}"),
    }
}

fn bind(path: &PathBuf) -> anyhow::Result<UnixListener> {
    // We hold the index, so no other server uses this directory: a socket here
    // was left by one that died. Anything that is not a socket is left alone.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            m.file_type().is_socket(),
            "{} exists and is not a socket",
            path.display()
        );
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    Ok(listener)
}

async fn serve(listener: UnixListener, path: PathBuf, app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(handle(stream, app.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "control socket accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn handle(stream: UnixStream, app: Arc<App>) {
    let uid = match stream.peer_cred() {
        Ok(c) => c.uid(),
        Err(e) => {
            warn!(error = %e, "control socket: cannot read the caller's credentials; refused");
            return;
        }
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let (read, mut write) = stream.into_split();
    let resp = if !allowed(uid, me) {
        warn!(
            uid,
            "control socket: refused a caller that is neither root nor cleannvr's user"
        );
        refusal(format!(
            "refused: uid {uid} is neither root nor the user cleannvr runs as (uid {me})"
        ))
    } else {
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(MAX_REQUEST));
        match tokio::time::timeout(READ_DEADLINE, reader.read_line(&mut line)).await {
            Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                Ok(req) => run(app, uid, req).await,
                Err(e) => refusal(format!("not a control request: {e}")),
            },
            Ok(Err(e)) => refusal(format!("reading the request: {e}")),
            Err(_) => refusal("no request within 30 s".into()),
        }
    };
    let mut bytes = serde_json::to_vec(&resp).unwrap_or_default();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
}

fn refusal(error: String) -> Response {
    Response {
        ok: false,
        output: String::new(),
        error: Some(error),
        exit_code: None,
    }
}

async fn run(app: Arc<App>, uid: u32, req: Request) -> Response {
    let caller = Caller::of(uid);
    info!(command = req.name(), user = %caller.name, uid, "control socket command");
    let r = tokio::task::spawn_blocking(move || {
        let cameras = app.cameras.all();
        let ctx = Ctx {
            config: &app.config,
            cameras: &cameras,
            store: &app.store,
            users: &app.users,
            sessions: &app.sessions,
            audit: &app.audit,
            clock: &*app.clock,
            signer: Some(&app.signer),
            export_ledger: Some(&app.export_ledger),
            running: Some((&app.status, app.started.elapsed())),
            caller: &caller,
        };
        admin::execute(&ctx, &req)
    })
    .await;
    r.unwrap_or_else(|e| refusal(format!("the command failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use std::sync::atomic::Ordering;

    /// `user add`, `user passwd` and `user remove` over the control socket are
    /// audited before the change: with the audit log failing each is refused,
    /// saying why, and the users are as they were (nobody added, the old
    /// password and its sessions kept, nobody removed); with the log working
    /// each goes through with one entry.
    #[tokio::test]
    async fn user_changes_wait_for_their_audit_entry() {
        let (_dir, app, _clock) = crate::web::test_app();
        for (name, role) in [("root", Role::Admin), ("op", Role::Operator)] {
            app.users.add(name, role, None, "a password 1", 0).unwrap();
        }
        let op_session = app.sessions.create("op", "test").unwrap().token;
        let fail = |on: bool| app.audit.fail_writes.store(on, Ordering::SeqCst);
        let uid = Caller::current().uid;
        let user = |name: &str| app.users.get(name).unwrap();
        let refused = |r: Response| {
            assert!(!r.ok, "{r:?}");
            let e = r.error.unwrap_or_default();
            assert!(e.contains("audit entry"), "{e}");
        };
        let entries = app.audit.len();

        let add = || Request::UserAdd {
            name: "eve".into(),
            role: "viewer".into(),
            cameras: None,
            password: "eve password 1".into(),
        };
        fail(true);
        refused(run(app.clone(), uid, add()).await);
        assert!(user("eve").is_none(), "added without an audit entry");
        fail(false);
        assert!(run(app.clone(), uid, add()).await.ok);
        assert!(user("eve").is_some());
        assert_eq!(app.audit.len(), entries + 1);

        let passwd = || Request::UserPasswd {
            name: "op".into(),
            password: "a new password 2".into(),
        };
        let before = user("op").unwrap().password_hash;
        fail(true);
        refused(run(app.clone(), uid, passwd()).await);
        assert_eq!(
            user("op").unwrap().password_hash,
            before,
            "password changed without an audit entry"
        );
        assert!(app.sessions.peek(&op_session).unwrap().is_some());
        fail(false);
        assert!(run(app.clone(), uid, passwd()).await.ok);
        assert_ne!(user("op").unwrap().password_hash, before);
        assert!(app.sessions.peek(&op_session).unwrap().is_none());
        assert_eq!(app.audit.len(), entries + 2);

        let remove = || Request::UserRemove { name: "eve".into() };
        fail(true);
        refused(run(app.clone(), uid, remove()).await);
        assert!(user("eve").is_some(), "removed without an audit entry");
        fail(false);
        assert!(run(app.clone(), uid, remove()).await.ok);
        assert!(user("eve").is_none());
        assert_eq!(app.audit.len(), entries + 3);
    }
}
