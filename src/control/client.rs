//! The CLI's side: send the command to the running server through its control
//! socket, or, when no server answers there, run it on the index directly.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::admin::{self, Ctx, REPAIR_NEEDS_STOP};
use super::peer::Caller;
use super::{socket_path, Request, Response};
use crate::audit::AuditLog;
use crate::auth::session::{Lifetimes, Sessions};
use crate::auth::Users;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::Store;

/// Runs `req` for the configuration at `config_path`, prints its output and
/// returns its exit status.
pub fn run(config_path: &Path, req: Request) -> anyhow::Result<ExitCode> {
    let resp = request(config_path, &req)?;
    print!("{}", resp.output);
    Ok(status(&resp))
}

/// Runs `req` as [`run`] does but hands back its answer instead of printing it (a
/// command that writes its output to a file); errors are printed.
pub fn request(config_path: &Path, req: &Request) -> anyhow::Result<Response> {
    let cfg = Config::load(config_path)?;
    let path = socket_path(&cfg.storage.dir);
    let resp = match connect(&path)? {
        Some(stream) => {
            if let Request::Check { repair: true } = req {
                bail!("{REPAIR_NEEDS_STOP}");
            }
            exchange(stream, req)
                .with_context(|| format!("{} through {}", req.name(), path.display()))?
        }
        None => direct(&cfg, req)?,
    };
    if let Some(e) = &resp.error {
        eprintln!("error: {e}");
    }
    Ok(resp)
}

/// The exit status of an answer: 1 on an error, else the status the command chose.
pub fn status(resp: &Response) -> ExitCode {
    match resp.exit_code {
        _ if resp.error.is_some() => ExitCode::FAILURE,
        Some(code) => ExitCode::from(code),
        None if resp.ok => ExitCode::SUCCESS,
        None => ExitCode::FAILURE,
    }
}

/// Whether a server answers on the control socket of `cfg`'s storage directory.
pub fn server_running(cfg: &Config) -> anyhow::Result<bool> {
    Ok(connect(&socket_path(&cfg.storage.dir))?.is_some())
}

/// The running server's socket, or `None` when no server listens there.
fn connect(path: &Path) -> anyhow::Result<Option<UnixStream>> {
    match UnixStream::connect(path) {
        Ok(s) => Ok(Some(s)),
        // No socket, or one left by a server that has gone (killed): not running.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "connecting to cleannvr's control socket {} (run this as the user cleannvr \
                 runs as, or as root)",
                path.display()
            )
        }),
    }
}

fn exchange(mut stream: UnixStream, req: &Request) -> anyhow::Result<Response> {
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    // A refused caller is answered without the request being read: the answer
    // is still there to read when the write fails.
    let sent = stream.write_all(&line);
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("reading the answer")?;
    if answer.is_empty() {
        sent.context("sending the command")?;
        bail!("the server closed the connection without answering (see its log)");
    }
    serde_json::from_str(&answer).context("the server's answer is not a control response")
}

/// Runs `req` on the index itself: cleannvr is not running.
fn direct(cfg: &Config, req: &Request) -> anyhow::Result<Response> {
    let store = Store::open(&cfg.storage.dir).context(
        "opening the index (no cleannvr answered on its control socket; is another \
         process using this storage dir?)",
    )?;
    // Archived segments are read (check, export) through the archive tier.
    crate::archive::connect(&store, cfg)?;
    let users = Users::for_store(&store)?;
    let audit = AuditLog::open(store.db(), store.dir())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sessions = Sessions::open(
        store.db(),
        clock.clone(),
        Lifetimes {
            idle_ns: 1,
            absolute_ns: 1,
        },
    )?;
    let caller = Caller::current();
    let ctx = Ctx {
        config: cfg,
        cameras: &cfg.cameras,
        store: &store,
        users: &users,
        sessions: &sessions,
        audit: &audit,
        clock: &*clock,
        signer: None,
        export_ledger: None,
        running: None,
        caller: &caller,
    };
    Ok(admin::execute(&ctx, req))
}
