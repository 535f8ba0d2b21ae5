//! The local control socket: admin commands (`user`, `check`, `export`, `audit verify`,
//! `report`, `status`, `audit-cameras`) reach a running server without stopping recording, a password or the web
//! port. sled admits one process per index, so while cleannvr runs the CLI cannot open
//! the index itself; it sends the command to the server instead, which runs it on its
//! own open index. When no server answers, the CLI opens the index directly.
//!
//! The socket is `<storage dir>/control.sock`, mode 0600 inside the 0700 storage
//! directory, and the server also checks each connection's peer credentials: only its
//! own user and root are served. One JSON request line, one JSON response line.

pub mod admin;
pub mod client;
pub mod peer;
pub mod server;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::export::cli::ExportRequest;

/// The socket's file name inside the storage directory.
pub const SOCKET_NAME: &str = "control.sock";

/// A request is a few hundred bytes; a password is at most 1 KiB.
pub const MAX_REQUEST: u64 = 64 * 1024;

/// Where the control socket of the storage directory `dir` lives.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

/// One admin command. No `Debug`: some carry a password.
#[derive(Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// `user add`.
    UserAdd {
        /// Login name.
        name: String,
        /// admin, operator or viewer.
        role: String,
        /// Camera scope (`None`: all).
        cameras: Option<Vec<String>>,
        /// The new password.
        password: String,
    },
    /// `user list`.
    UserList,
    /// `user remove`.
    UserRemove {
        /// Login name.
        name: String,
    },
    /// `user passwd`.
    UserPasswd {
        /// Login name.
        name: String,
        /// The new password.
        password: String,
    },
    /// `user reset-totp`.
    UserResetTotp {
        /// Login name.
        name: String,
    },
    /// `check` (`repair` only with the server stopped).
    Check {
        /// Rebuild the index from the files.
        repair: bool,
    },
    /// `export`.
    Export(ExportRequest),
    /// `audit verify`.
    AuditVerify,
    /// `backup`: written by whoever holds the index.
    Backup {
        /// Absolute path of the zip to create.
        out: PathBuf,
        /// The configuration file's text, as the CLI read it.
        config: String,
    },
    /// `report`: the Code of Practice report of a period.
    Report {
        /// A day (`YYYY-MM-DD`, the server's zone) or an RFC 3339 time.
        from: String,
        /// A day (to its end) or an RFC 3339 time (exclusive).
        to: String,
        /// The document to answer with.
        format: crate::report::render::Format,
    },
    /// `status`.
    Status {
        /// JSON instead of text.
        json: bool,
    },
    /// `audit-cameras`: the isolation audit of every ONVIF camera, each result kept
    /// for the report as the Isolation page's are.
    AuditCameras {
        /// JSON instead of text.
        json: bool,
    },
}

impl Request {
    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Request::UserAdd { .. } => "user add",
            Request::UserList => "user list",
            Request::UserRemove { .. } => "user remove",
            Request::UserPasswd { .. } => "user passwd",
            Request::UserResetTotp { .. } => "user reset-totp",
            Request::Check { .. } => "check",
            Request::Export(_) => "export",
            Request::AuditVerify => "audit verify",
            Request::Status { .. } => "status",
            Request::Report { .. } => "report",
            Request::Backup { .. } => "backup",
            Request::AuditCameras { .. } => "audit-cameras",
        }
    }
}

/// What a command printed and whether it succeeded.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Response {
    /// Exit status 0.
    pub ok: bool,
    /// Standard output.
    pub output: String,
    /// Why it failed, if it did (printed as `error: ...`).
    pub error: Option<String>,
    /// An exit status other than 0 and 1 that the command chose (`audit-cameras`: 2 when
    /// some camera is not shown isolated). Absent from older servers' answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
}
