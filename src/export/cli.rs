//! `cleannvr export --camera ID... --start T --end T --out DIR` and
//! `cleannvr export verify DIR`.
//!
//! While cleannvr runs, the export is written by the server through its control socket
//! (see `control`); when it is stopped, the CLI opens the index itself. Verifying needs no
//! configuration and no database: it runs anywhere the export directory was copied to.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{Progress, Request};
use crate::audit::AuditLog;
use crate::clock::{parse_rfc3339, Clock, SystemClock};
use crate::config::Config;
use crate::store::Store;

/// Arguments of `cleannvr export`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExportArgs {
    /// `verify DIR` instead of exporting.
    #[command(subcommand)]
    pub cmd: Option<ExportCmd>,
    /// Camera id; repeat for several cameras.
    #[arg(long = "camera")]
    pub cameras: Vec<String>,
    /// Start (RFC 3339, e.g. 2025-06-01T12:00:00Z).
    #[arg(long)]
    pub start: Option<String>,
    /// End (RFC 3339).
    #[arg(long)]
    pub end: Option<String>,
    /// Directory to create for the export (must not exist).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Why the footage is exported (recorded in the manifest and the audit log).
    #[arg(long, default_value = "exported from the command line")]
    pub reason: String,
    /// Also write an H.264 working copy of every file, with the local date and time burned
    /// in (the native files stay the masters).
    #[arg(long)]
    pub working_copy: bool,
    /// Export redacted copies instead of the native files: JSON as `redact` in
    /// `POST /api/exports`, e.g. '{"mode":"fill","boxes":[{"x":0.1,"y":0.1,"w":0.3,"h":0.3}]}'.
    #[arg(long)]
    pub redact: Option<String>,
    /// Who receives the footage, for the disclosure register (e.g. "PC 1234 Smith, Kent Police").
    #[arg(long)]
    pub recipient: Option<String>,
    /// Case, crime or subject-access reference (needs --recipient).
    #[arg(long)]
    pub reference: Option<String>,
    /// Legal basis for the disclosure (needs --recipient).
    #[arg(long)]
    pub legal_basis: Option<String>,
    /// For a subject-access request: the day it was received, YYYY-MM-DD (needs --recipient).
    #[arg(long)]
    pub request_received: Option<String>,
}

/// Subcommands of `cleannvr export`.
#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// Check an export: its signature, every file's SHA-256, and that nothing is missing
    /// or added.
    Verify {
        /// The export directory (unpacked from package.zip, or as written).
        dir: PathBuf,
        /// The fingerprint of the server's signing key, as its administrator sees it (64
        /// hex characters; spaces and colons are ignored). Without it, the signature is
        /// checked against the key inside the package only.
        #[arg(long)]
        key: Option<String>,
    },
}

/// What `cleannvr export` asks for, as sent over the control socket: validated where
/// the index is (in the running server, or in the CLI when it is stopped).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExportRequest {
    /// Camera ids.
    pub cameras: Vec<String>,
    /// RFC 3339 start.
    pub start: String,
    /// RFC 3339 end.
    pub end: String,
    /// Absolute directory to create.
    pub out: PathBuf,
    /// Why (manifest and audit log).
    pub reason: String,
    /// Also an H.264 working copy of every file.
    #[serde(default)]
    pub working_copy: bool,
    /// Redacted copies instead of the native files.
    #[serde(default)]
    pub redact: Option<crate::transcode::redact::Redaction>,
    /// Recipient and basis for the disclosure register.
    #[serde(default)]
    pub disclosure: Option<super::disclosure::Disclosure>,
}

/// Runs `cleannvr export ...`: `verify` here, an export through the control socket
/// or the index directly.
pub fn export_cmd(args: ExportArgs, config: &Path) -> anyhow::Result<ExitCode> {
    if let Some(ExportCmd::Verify { dir, key }) = args.cmd {
        return verify_cmd(&dir, key.as_deref());
    }
    let (Some(start), Some(end), Some(out)) = (args.start, args.end, args.out) else {
        bail!("export needs --camera, --start, --end and --out (or: export verify DIR)");
    };
    if args.cameras.is_empty() {
        bail!("export needs at least one --camera");
    }
    // The running server resolves paths from its own working directory.
    let out = std::path::absolute(&out).with_context(|| format!("--out {}", out.display()))?;
    let disclosure = match args.recipient {
        Some(recipient) => Some(super::disclosure::Disclosure {
            recipient,
            reference: args.reference.unwrap_or_default(),
            legal_basis: args.legal_basis.unwrap_or_default(),
            request_received: args.request_received,
        }),
        None if args.reference.is_some()
            || args.legal_basis.is_some()
            || args.request_received.is_some() =>
        {
            bail!("--reference, --legal-basis and --request-received need --recipient")
        }
        None => None,
    };
    let req = ExportRequest {
        cameras: args.cameras,
        start,
        end,
        out,
        reason: args.reason,
        working_copy: args.working_copy,
        redact: args
            .redact
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("--redact: not a redaction (see --help)")?,
        disclosure,
    };
    crate::control::client::run(config, crate::control::Request::Export(req))
}

/// Writes the export `x` from `store`, audited as `client`; returns its description.
/// Admitted under the export quota exactly as the web's exports are (reserving in
/// `ledger`, the running server's), so the command line cannot fill the volume either.
#[allow(clippy::too_many_arguments)]
pub fn write_export(
    cfg: &Config,
    configured: &[crate::config::CameraConfig],
    store: &Store,
    audit: &AuditLog,
    signer: &super::signing::Signer,
    ledger: &std::sync::Arc<super::quota::Ledger>,
    x: &ExportRequest,
    client: &str,
) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let parse = |what: &str, s: &str| {
        parse_rfc3339(s).with_context(|| format!("--{what}: not an RFC 3339 time: {s}"))
    };
    let mut cameras = Vec::new();
    for id in &x.cameras {
        let cam = configured
            .iter()
            .find(|c| &c.id == id)
            .with_context(|| format!("no camera {id} in the configuration"))?;
        let name = if cam.name.is_empty() {
            &cam.id
        } else {
            &cam.name
        };
        cameras.push((cam.id.clone(), name.clone()));
    }
    let req = Request {
        cameras,
        start_ns: parse("start", &x.start)?,
        end_ns: parse("end", &x.end)?,
        reason: x.reason.clone(),
        user: "cli".into(),
        time_zone: cfg.server.time_zone(),
        working_copy: x.working_copy,
        redact: x.redact.clone(),
        disclosure: x.disclosure.clone(),
    };
    super::validate(&req)?;
    let planned = super::plan(store, &req)?;
    let _reservation = super::quota::admit(&cfg.storage, ledger, planned.need_bytes())?
        .map_err(|refusal| anyhow::anyhow!("export refused: {refusal}"))?;
    // The same evidence rule as the web: no audit entry, no export.
    let outcome = super::jobs::write_recorded(
        planned,
        &req,
        &x.out,
        SystemClock.now_ns(),
        &Progress::default(),
        signer,
        |outcome| {
            let location = x.out.display().to_string();
            let now = SystemClock.now_ns();
            super::jobs::register_and_audit(store, &req, outcome, &location, now, || {
                let ev = super::jobs::audit_event(&req, outcome, &location, client, None);
                audit.append(now, ev).map(|_| ())
            })
        },
    )?;
    for f in outcome.manifest.files() {
        writeln!(
            &mut out,
            "{}  {} ({} bytes, {} frames)",
            f.sha256, f.file, f.bytes, f.frames
        )?;
    }
    for c in &outcome.manifest.cameras {
        if c.files.is_empty() {
            writeln!(&mut out, "{}: nothing recorded in the range", c.camera)?;
        }
        for g in &c.gaps {
            writeln!(&mut out, "{}: gap {} .. {}", c.camera, g.start, g.end)?;
        }
    }
    writeln!(
        &mut out,
        "manifest.json sha256 {} (recorded in the audit log)",
        outcome.manifest_sha256
    )?;
    Ok(out)
}

fn verify_cmd(dir: &Path, key: Option<&str>) -> anyhow::Result<ExitCode> {
    if let Some(k) = key {
        let k = super::signing::normalise_fingerprint(k);
        if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--key: a fingerprint is 64 hexadecimal characters (the SHA-256 of the key)");
        }
    }
    println!("Checking the export in {}", dir.display());
    let v = super::verify(dir, key)?;
    for p in &v.passed {
        println!("OK      {p}");
    }
    for f in &v.ok {
        println!("OK      {f}");
    }
    for p in &v.problems {
        println!("FAILED  {p}");
    }
    for n in &v.notes {
        println!("NOTE    {n}");
    }
    println!(
        "manifest.json sha256 {} (compare with the audit log)",
        v.manifest_sha256
    );
    if v.problems.is_empty() {
        let signed = match &v.signed_by {
            Some(_) if key.is_some() => ", signed by the key you named",
            Some(_) => ", signature valid",
            None => ", not signed",
        };
        println!("export intact: {} files verified{signed}", v.ok.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "export NOT intact: {} problem(s) found; do not rely on this copy",
            v.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
