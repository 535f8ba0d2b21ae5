//! `cleannvr user add|list|remove|passwd|reset-totp` and `cleannvr audit verify`.
//! These open the database directly, so cleannvr must be stopped (sled
//! allows one process); while it runs, admins use the users API instead.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::audit::{Action, AuditLog, Event};
use crate::auth::session::{Lifetimes, Sessions};
use crate::auth::{Role, Users};
use crate::clock::{rfc3339, Clock, SystemClock};
use crate::config::Config;
use crate::store::Store;

/// `cleannvr user ...`.
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; the password is read from stdin.
    Add {
        /// Login name.
        name: String,
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// Comma-separated camera ids this user may see (default: all).
        #[arg(long, value_delimiter = ',')]
        cameras: Option<Vec<String>>,
    },
    /// List users.
    List,
    /// Remove a user and end their sessions.
    Remove {
        /// Login name.
        name: String,
    },
    /// Set a new password (read from stdin) and end the user's sessions.
    Passwd {
        /// Login name.
        name: String,
    },
    /// Remove a user's second factor (lost phone, no recovery codes left):
    /// they log in with the password alone and may set up a new one.
    ResetTotp {
        /// Login name.
        name: String,
    },
}

/// `cleannvr audit ...`.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Walk the hash chain and report the first broken entry.
    Verify,
}

fn open(config: &Path) -> anyhow::Result<(Config, Store)> {
    let cfg = Config::load(config)?;
    let store = Store::open(&cfg.storage.dir)
        .context("opening the database (stop cleannvr first: one process at a time)")?;
    Ok((cfg, store))
}

fn cli_event(action: Action, target: &str, detail: String) -> Event {
    Event {
        actor: "cli".into(),
        action,
        target: target.into(),
        client: "cli".into(),
        detail,
    }
}

/// Reads a password: from a terminal with echo off and a confirmation,
/// otherwise the first line of stdin (for scripts and Docker secrets).
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let first = prompt_hidden("password: ")?;
    let second = prompt_hidden("again: ")?;
    anyhow::ensure!(first == second, "passwords differ");
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    // SAFETY: termios calls on fd 0 with a zeroed, then filled, struct.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    let have_tty = unsafe { libc::tcgetattr(0, &mut old) } == 0;
    if have_tty {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    if have_tty {
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &old) };
    }
    eprintln!();
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Runs a `user` subcommand.
pub fn user_cmd(cmd: UserCmd, config: &Path) -> anyhow::Result<ExitCode> {
    let (cfg, store) = open(config)?;
    let users = Users::open(store.db())?;
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
    match cmd {
        UserCmd::Add {
            name,
            role,
            cameras,
        } => {
            let role = Role::parse(&role)
                .with_context(|| format!("role {role:?}: use admin, operator or viewer"))?;
            for c in cameras.iter().flatten() {
                anyhow::ensure!(
                    cfg.cameras.iter().any(|x| &x.id == c),
                    "camera {c:?} is not in {}",
                    config.display()
                );
            }
            let pw = read_password()?;
            let u = users.add(&name, role, cameras, &pw, clock.now_ns())?;
            audit.append(
                clock.now_ns(),
                cli_event(Action::UserAdd, &u.name, format!("role={}", role.as_str())),
            )?;
            println!("added {} ({})", u.name, role.as_str());
        }
        UserCmd::List => {
            for u in users.list()? {
                let cams = u
                    .cameras
                    .map(|c| c.join(","))
                    .unwrap_or_else(|| "all".into());
                println!(
                    "{}\t{}\tcameras={}\ttotp={}\tcreated={}",
                    u.name,
                    u.role.as_str(),
                    cams,
                    if u.totp.is_some() { "on" } else { "off" },
                    rfc3339(u.created_ns)
                );
            }
        }
        UserCmd::Remove { name } => {
            users.remove(&name)?;
            sessions.revoke_user(&name)?;
            audit.append(
                clock.now_ns(),
                cli_event(Action::UserRemove, &name, String::new()),
            )?;
            println!("removed {name}");
        }
        UserCmd::Passwd { name } => {
            anyhow::ensure!(users.get(&name)?.is_some(), "no such user {name}");
            let pw = read_password()?;
            users.set_password(&name, &pw)?;
            sessions.revoke_user(&name)?;
            audit.append(
                clock.now_ns(),
                cli_event(Action::UserUpdate, &name, "password=changed".into()),
            )?;
            println!("password changed for {name}; their sessions ended");
        }
        UserCmd::ResetTotp { name } => {
            let had = users.clear_totp(&name).map_err(|e| match e {
                crate::auth::UserError::NotFound => anyhow::anyhow!("no such user {name}"),
                e => anyhow::anyhow!("{e}"),
            })?;
            sessions.revoke_user(&name)?;
            audit.append(
                clock.now_ns(),
                cli_event(Action::TotpReset, &name, format!("was_enabled={had}")),
            )?;
            if had {
                println!(
                    "second factor removed for {name} and their sessions ended; they log in \
                     with the password alone"
                );
            } else {
                println!("{name} had no second factor; nothing changed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs an `audit` subcommand: exit status 0 when the chain is intact.
pub fn audit_cmd(cmd: AuditCmd, config: &Path) -> anyhow::Result<ExitCode> {
    let AuditCmd::Verify = cmd;
    let (_, store) = open(config)?;
    let log = AuditLog::open(store.db(), store.dir())?;
    let v = log.verify()?;
    let (key, from) = log.key();
    let ok = match &v.broken {
        None => {
            println!("audit chain intact: {} entries", v.verified);
            true
        }
        Some(b) => {
            println!("{b} ({} entries before it verified)", v.verified);
            false
        }
    };
    if from > 0 {
        println!(
            "entries 0 to {} were written before the audit key existed: checked by their \
             hash chain only, which someone able to rewrite the index could recompute",
            from - 1
        );
    }
    println!(
        "entries from {from} on carry an HMAC-SHA256 under {}: an edit needs that key",
        key.display()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
