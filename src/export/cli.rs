//! `cleannvr export --camera ID... --start T --end T --out DIR` and
//! `cleannvr export verify DIR`.
//!
//! Exporting opens the database directly, so cleannvr must be stopped (sled allows one
//! process); while it runs, use `POST /api/exports`. Verifying needs no configuration and
//! no database: it runs anywhere the export directory was copied to.

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
}

/// Subcommands of `cleannvr export`.
#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// Re-hash every file of an export and check it against the manifest.
    Verify {
        /// The export directory.
        dir: PathBuf,
    },
}

/// Runs `cleannvr export ...`.
pub fn export_cmd(args: ExportArgs, config: &Path) -> anyhow::Result<ExitCode> {
    if let Some(ExportCmd::Verify { dir }) = args.cmd {
        return verify_cmd(&dir);
    }
    let (Some(start), Some(end), Some(out)) = (&args.start, &args.end, &args.out) else {
        bail!("export needs --camera, --start, --end and --out (or: export verify DIR)");
    };
    if args.cameras.is_empty() {
        bail!("export needs at least one --camera");
    }
    let parse = |what: &str, s: &str| {
        parse_rfc3339(s).with_context(|| format!("--{what}: not an RFC 3339 time: {s}"))
    };
    let cfg = Config::load(config)?;
    let mut cameras = Vec::new();
    for id in &args.cameras {
        let cam = cfg
            .cameras
            .iter()
            .find(|c| &c.id == id)
            .with_context(|| format!("no camera {id} in {}", config.display()))?;
        let name = if cam.name.is_empty() {
            &cam.id
        } else {
            &cam.name
        };
        cameras.push((cam.id.clone(), name.clone()));
    }
    let req = Request {
        cameras,
        start_ns: parse("start", start)?,
        end_ns: parse("end", end)?,
        reason: args.reason.clone(),
        user: "cli".into(),
        time_zone: cfg.server.time_zone(),
    };
    super::validate(&req)?;
    let store = Store::open(&cfg.storage.dir)
        .context("opening the database (stop cleannvr first, or export with POST /api/exports)")?;
    let audit = AuditLog::open(store.db(), store.dir())?;
    let planned = super::plan(&store, &req)?;
    // The same evidence rule as the web: no audit entry, no export.
    let outcome = super::jobs::write_recorded(
        planned,
        &req,
        out,
        SystemClock.now_ns(),
        &Progress::default(),
        |outcome| {
            let location = out.display().to_string();
            let ev = super::jobs::audit_event(&req, outcome, &location, "cli");
            audit.append(SystemClock.now_ns(), ev).map(|_| ())
        },
    )?;
    for f in outcome.manifest.files() {
        println!(
            "{}  {} ({} bytes, {} frames)",
            f.sha256, f.file, f.bytes, f.frames
        );
    }
    for c in &outcome.manifest.cameras {
        if c.files.is_empty() {
            println!("{}: nothing recorded in the range", c.camera);
        }
        for g in &c.gaps {
            println!("{}: gap {} .. {}", c.camera, g.start, g.end);
        }
    }
    println!(
        "manifest.json sha256 {} (recorded in the audit log)",
        outcome.manifest_sha256
    );
    Ok(ExitCode::SUCCESS)
}

fn verify_cmd(dir: &Path) -> anyhow::Result<ExitCode> {
    let v = super::verify(dir)?;
    for f in &v.ok {
        println!("OK      {f}");
    }
    for p in &v.problems {
        println!("FAILED  {p}");
    }
    println!(
        "manifest.json sha256 {} (compare with the audit log)",
        v.manifest_sha256
    );
    if v.problems.is_empty() {
        println!("export intact: {} files verified", v.ok.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("export NOT intact: {} problems", v.problems.len());
        Ok(ExitCode::FAILURE)
    }
}
