//! `cleannvr user add|list|remove|passwd|reset-totp` and `cleannvr audit verify`.
//! While cleannvr runs they go through its control socket (see `control`); when
//! it is stopped they open the index directly.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::auth::Role;

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

/// Runs a `user` subcommand: through the running server's control socket, or on the
/// index directly when cleannvr is stopped. Passwords are read here, before either.
pub fn user_cmd(cmd: UserCmd, config: &Path) -> anyhow::Result<ExitCode> {
    use crate::control::Request;
    let req = match cmd {
        UserCmd::Add {
            name,
            role,
            cameras,
        } => {
            Role::parse(&role)
                .with_context(|| format!("role {role:?}: use admin, operator or viewer"))?;
            Request::UserAdd {
                name,
                role,
                cameras,
                password: read_password()?,
            }
        }
        UserCmd::List => Request::UserList,
        UserCmd::Remove { name } => Request::UserRemove { name },
        UserCmd::Passwd { name } => Request::UserPasswd {
            name,
            password: read_password()?,
        },
        UserCmd::ResetTotp { name } => Request::UserResetTotp { name },
    };
    crate::control::client::run(config, req)
}

/// Runs an `audit` subcommand: exit status 0 when the chain is intact.
pub fn audit_cmd(cmd: AuditCmd, config: &Path) -> anyhow::Result<ExitCode> {
    let AuditCmd::Verify = cmd;
    crate::control::client::run(config, crate::control::Request::AuditVerify)
}
