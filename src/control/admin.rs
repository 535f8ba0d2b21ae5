//! The admin commands themselves, run on an open index: by the server for a
//! control-socket request, or by the CLI when no server runs. One implementation,
//! so both paths behave (and audit) alike.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context};

use super::peer::Caller;
use super::{Request, Response};
use crate::audit::{Action, AuditLog, Event};
use crate::auth::session::Sessions;
use crate::auth::{Role, UserError, Users};
use crate::clock::{rfc3339, Clock};
use crate::config::Config;
use crate::export::signing::Signer;
use crate::status::StatusBoard;
use crate::store::{check, retention, Store};

/// What a command runs against.
pub struct Ctx<'a> {
    /// The configuration (of the running server, or loaded by the CLI).
    pub config: &'a Config,
    /// The cameras as configured now (the server's live list while it runs).
    pub cameras: &'a [crate::config::CameraConfig],
    /// The open index.
    pub store: &'a Store,
    /// Users.
    pub users: &'a Users,
    /// Sessions (ended when a password changes or a user goes).
    pub sessions: &'a Sessions,
    /// The audit log: the server's own instance while it runs, so entries chain in order.
    pub audit: &'a AuditLog,
    /// Wall clock.
    pub clock: &'a dyn Clock,
    /// The export signing key, as the server loaded it; `None` to load it from the config.
    pub signer: Option<&'a Result<Signer, String>>,
    /// The running server's export ledger (shared with the web's exports); `None`
    /// when no server runs.
    pub export_ledger: Option<&'a std::sync::Arc<crate::export::quota::Ledger>>,
    /// Live camera states and uptime while the server runs; `None` when it is stopped.
    pub running: Option<(&'a StatusBoard, Duration)>,
    /// Who asked.
    pub caller: &'a Caller,
}

impl Ctx<'_> {
    fn event(&self, action: Action, target: &str, detail: String) -> Event {
        Event {
            actor: "cli".into(),
            role: None,
            action,
            target: target.into(),
            client: self.caller.audit_client(),
            detail,
        }
    }

    fn audit(&self, action: Action, target: &str, detail: String) -> anyhow::Result<()> {
        self.audit
            .append(self.clock.now_ns(), self.event(action, target, detail))?;
        Ok(())
    }
}

/// Runs `req`; a failure is reported in the response, not as an error.
pub fn execute(ctx: &Ctx, req: &Request) -> Response {
    let mut out = String::new();
    let code = match req {
        Request::AuditCameras { json } => audit_cameras(ctx, *json, &mut out),
        _ => run(ctx, req, &mut out).map(|ok| u8::from(!ok)),
    };
    match code {
        Ok(code) => Response {
            ok: code == 0,
            output: out,
            error: None,
            exit_code: (code > 1).then_some(code),
        },
        Err(e) => Response {
            ok: false,
            output: out,
            error: Some(format!("{e:#}")),
            exit_code: None,
        },
    }
}

/// `audit-cameras`: audits every ONVIF camera (the server's live list while it runs)
/// and keeps each result for the report, as run by `cli:<local user>`. Returns the exit
/// status (see [`crate::onvif::cli::audit_all`]).
fn audit_cameras(ctx: &Ctx, json: bool, out: &mut String) -> anyhow::Result<u8> {
    let records = crate::onvif::isolation_record::Records::open(ctx.store.db())?;
    let by = format!("cli:{}", ctx.caller.name);
    let audit = crate::onvif::cli::audit_all(ctx.cameras, &records, &by, ctx.clock, json, out);
    // The server runs commands on a blocking thread of its runtime; the CLI has none.
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt.block_on(audit),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(audit),
    }
}

fn user_error(name: &str, e: UserError) -> anyhow::Error {
    match e {
        UserError::NotFound => anyhow::anyhow!("no such user {name}"),
        UserError::Storage(e) => e,
        e => anyhow::anyhow!("{e}"),
    }
}

/// Returns whether the command succeeded (its exit status).
fn run(ctx: &Ctx, req: &Request, out: &mut String) -> anyhow::Result<bool> {
    match req {
        Request::UserAdd {
            name,
            role,
            cameras,
            password,
        } => {
            let role = Role::parse(role)
                .with_context(|| format!("role {role:?}: use admin, operator or viewer"))?;
            for c in cameras.iter().flatten() {
                anyhow::ensure!(
                    ctx.cameras.iter().any(|x| &x.id == c),
                    "camera {c:?} is not configured"
                );
            }
            // Audited before the write: if the entry cannot be written, nobody is added.
            let u = ctx.users.add_audited(
                name,
                role,
                cameras.clone(),
                password,
                ctx.clock.now_ns(),
                |u| ctx.audit(Action::UserAdd, &u.name, format!("role={}", role.as_str())),
            )?;
            writeln!(out, "added {} ({})", u.name, role.as_str())?;
        }
        Request::UserList => {
            for u in ctx.users.list()? {
                let cams = u
                    .cameras
                    .map(|c| c.join(","))
                    .unwrap_or_else(|| "all".into());
                writeln!(
                    out,
                    "{}\t{}\tcameras={}\ttotp={}\tcreated={}",
                    u.name,
                    u.role.as_str(),
                    cams,
                    if u.totp.is_some() { "on" } else { "off" },
                    rfc3339(u.created_ns)
                )?;
            }
        }
        Request::UserRemove { name } => {
            // Audited before the removal: if the entry cannot be written, the user stays.
            ctx.users
                .remove_audited(name, |_| ctx.audit(Action::UserRemove, name, String::new()))
                .map_err(|e| user_error(name, e))?;
            ctx.sessions.revoke_user(name)?;
            writeln!(out, "removed {name}")?;
        }
        Request::UserPasswd { name, password } => {
            // Audited before the write: if the entry cannot be written, the old
            // password stays.
            ctx.users
                .set_password_audited(name, password, |_| {
                    ctx.audit(Action::UserUpdate, name, "password=changed".into())
                })
                .map_err(|e| user_error(name, e))?;
            ctx.sessions.revoke_user(name)?;
            writeln!(out, "password changed for {name}; their sessions ended")?;
        }
        Request::UserResetTotp { name } => {
            let had = ctx
                .users
                .get(name)?
                .ok_or_else(|| user_error(name, UserError::NotFound))?
                .totp
                .is_some();
            // Audited before the change: if the entry cannot be written, nothing is reset.
            ctx.audit(Action::TotpReset, name, format!("was_enabled={had}"))?;
            ctx.users
                .clear_totp(name)
                .map_err(|e| user_error(name, e))?;
            ctx.sessions.revoke_user(name)?;
            if had {
                writeln!(
                    out,
                    "second factor removed for {name} and their sessions ended; they log in \
                     with the password alone"
                )?;
            } else {
                writeln!(out, "{name} had no second factor; nothing changed")?;
            }
        }
        Request::Check { repair } => return check_cmd(ctx, *repair, out),
        Request::Export(x) => {
            let loaded;
            let signer = match ctx.signer {
                Some(Ok(s)) => s,
                Some(Err(e)) => bail!("the export signing key is unusable: {e}"),
                None => {
                    loaded = Signer::for_storage(&ctx.config.storage)?;
                    &loaded
                }
            };
            let client = ctx.caller.audit_client();
            let ledger = ctx.export_ledger.cloned().unwrap_or_default();
            *out += &crate::export::cli::write_export(
                ctx.config,
                ctx.cameras,
                ctx.store,
                ctx.audit,
                signer,
                &ledger,
                x,
                &client,
            )?;
        }
        Request::AuditVerify => return audit_verify(ctx, out),
        Request::Backup { out: file, config } => {
            // Audited first, so the backup holds its own entry (and a failed one is seen).
            ctx.audit(Action::Backup, "", file.display().to_string())?;
            let summary = crate::backup::write(ctx.store, config, file, ctx.clock.now_ns())?;
            writeln!(out, "{summary}")?;
        }
        Request::Report { from, to, format } => report(ctx, from, to, *format, out)?,
        Request::AuditCameras { json } => {
            return Ok(audit_cameras(ctx, *json, out)? == 0);
        }
        Request::Status { json } => {
            let v = status(ctx);
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                status_text(&v, out)?;
            }
            return Ok(ctx.running.is_some());
        }
    }
    Ok(true)
}

/// The message for `check --repair` while the server runs.
pub const REPAIR_NEEDS_STOP: &str = "`check --repair` rebuilds the index, which needs cleannvr \
     stopped, and it is running: stop the service (e.g. `systemctl stop cleannvr`), run \
     `cleannvr check --repair`, then start it again. `cleannvr check` without --repair works \
     while it runs.";

fn check_cmd(ctx: &Ctx, repair: bool, out: &mut String) -> anyhow::Result<bool> {
    let report = if ctx.running.is_some() {
        if repair {
            bail!("{REPAIR_NEEDS_STOP}");
        }
        check::check_running(ctx.store)?
    } else {
        check::check(ctx.store, repair)?
    };
    for p in &report.problems {
        writeln!(out, "{p}")?;
    }
    let note = if repair {
        " (repaired)"
    } else if ctx.running.is_some() && report.recording > 0 {
        " (segments being recorded now are not counted as problems)"
    } else {
        ""
    };
    writeln!(
        out,
        "{} files, {} index rows, {} problems{note}",
        report.files,
        report.rows,
        report.problems.len(),
    )?;
    Ok(report.problems.is_empty() || repair)
}

/// Attaches the signing key to the audit log so its checkpoints are checked: the running
/// server's, or the one the config names when it is stopped. Returns the key or why not.
fn attach_signer(ctx: &Ctx) -> Result<Signer, String> {
    let signer = match ctx.signer {
        Some(Ok(s)) => Ok(s.clone()),
        Some(Err(e)) => Err(e.clone()),
        None => Signer::for_storage(&ctx.config.storage).map_err(|e| format!("{e:#}")),
    };
    if let Ok(s) = &signer {
        ctx.audit.sign_with(s.clone());
    }
    signer
}

/// `report`: the Code of Practice report of the period, rendered into `out`.
fn report(
    ctx: &Ctx,
    from: &str,
    to: &str,
    format: crate::report::render::Format,
    out: &mut String,
) -> anyhow::Result<()> {
    let tz = ctx.config.server.time_zone();
    let from_ns = crate::report::parse_bound(from, false, &tz).context("--from")?;
    let to_ns = crate::report::parse_bound(to, true, &tz).context("--to")?;
    let _ = attach_signer(ctx);
    let r = crate::report::build(
        &crate::report::Sources {
            config: ctx.config,
            cameras: ctx.cameras,
            store: ctx.store,
            audit: ctx.audit,
            users: ctx.users,
            now_ns: ctx.clock.now_ns(),
        },
        from_ns,
        to_ns,
    )?;
    *out += &format.render(&r);
    Ok(())
}

fn audit_verify(ctx: &Ctx, out: &mut String) -> anyhow::Result<bool> {
    let signer = attach_signer(ctx);
    let v = ctx.audit.verify()?;
    let (key, from) = ctx.audit.key();
    let ok = match &v.broken {
        None => {
            writeln!(out, "audit chain intact: {} entries", v.verified)?;
            true
        }
        Some(b) => {
            writeln!(out, "{b} ({} entries before it verified)", v.verified)?;
            false
        }
    };
    if from > 0 {
        writeln!(
            out,
            "entries 0 to {} were written before the audit key existed: checked by their \
             hash chain only, which someone able to rewrite the index could recompute",
            from - 1
        )?;
    }
    writeln!(
        out,
        "entries from {from} on carry an HMAC-SHA256 under {}: an edit needs that key",
        key.display()
    )?;
    match (signer, &v.last_checkpoint) {
        (Err(e), _) => writeln!(
            out,
            "signed checkpoints NOT checked: the signing key cannot be used ({e})"
        )?,
        (Ok(s), None) => writeln!(
            out,
            "no signed checkpoints yet (key {}): only the HMAC chain was checked",
            s.fingerprint()
        )?,
        (Ok(s), Some(cp)) => writeln!(
            out,
            "{} signed checkpoints checked under key {}; the newest covers entry {} (hash {}): \
             compare it with the newest \"audit checkpoint\" line in the log or syslog, which \
             a rewrite of this database cannot change",
            v.checkpoints,
            s.fingerprint(),
            cp.seq,
            cp.hash
        )?,
    }
    Ok(ok)
}

/// `status` as JSON: the server, each configured camera's state, and the disk.
fn status(ctx: &Ctx) -> serde_json::Value {
    use serde_json::json;
    let live = ctx.running.map(|(board, _)| board.snapshot());
    let usage = ctx.store.usage();
    let cameras: Vec<_> = ctx
        .cameras
        .iter()
        .map(|c| {
            let u = usage.get(&c.id).copied().unwrap_or_default();
            let mut v = json!({
                "id": c.id,
                "name": if c.name.is_empty() { &c.id } else { &c.name },
                "enabled": c.enabled,
                "record": c.record,
                "recorded_bytes": u.bytes,
                "segments": u.segments,
            });
            if let Some(s) = live.as_ref().and_then(|l| l.get(&c.id)) {
                v["state"] = json!(s.state);
                v["fps"] = json!((s.fps * 10.0).round() / 10.0);
                v["bitrate_bps"] = json!(s.bitrate_bps.round());
                v["reconnects"] = json!(s.reconnects);
                v["offline_since"] = json!(s.offline_since_ns.map(rfc3339));
                v["last_error"] = json!(s.last_error);
                v["recorder_error"] = json!(s.recorder_error);
            } else if live.is_none() {
                v["state"] = json!("not_running");
            }
            v
        })
        .collect();
    let dir = &ctx.config.storage.dir;
    json!({
        "running": ctx.running.is_some(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": ctx.running.map(|(_, up)| up.as_secs()),
        "cameras": cameras,
        "disk": {
            "dir": dir.display().to_string(),
            "free_bytes": retention::volume_free_bytes(dir).ok(),
            "total_bytes": retention::volume_total_bytes(dir).ok(),
            "min_free_bytes": ctx.config.storage.min_free_bytes,
            "recorded_bytes": usage.values().map(|u| u.bytes).sum::<u64>(),
            "segments": usage.values().map(|u| u.segments).sum::<u64>(),
        },
    })
}

fn gib(v: &serde_json::Value) -> String {
    match v.as_u64() {
        Some(b) => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        None => "?".into(),
    }
}

fn status_text(v: &serde_json::Value, out: &mut String) -> anyhow::Result<()> {
    if v["running"] == true {
        writeln!(
            out,
            "cleannvr {} running, up {} s",
            v["version"].as_str().unwrap_or("?"),
            v["uptime_seconds"]
        )?;
    } else {
        writeln!(
            out,
            "cleannvr is not running (no server answered on its control socket)"
        )?;
    }
    for c in v["cameras"].as_array().into_iter().flatten() {
        let mut line = format!(
            "camera {} ({}): {}",
            c["id"].as_str().unwrap_or("?"),
            c["name"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("unknown")
        );
        if c["state"] == "streaming" {
            write!(
                line,
                ", {} fps, {:.0} kbit/s",
                c["fps"],
                c["bitrate_bps"].as_f64().unwrap_or(0.0) / 1000.0
            )?;
        }
        if let Some(t) = c["offline_since"].as_str() {
            write!(line, ", offline since {t}")?;
        }
        if let Some(e) = c["last_error"].as_str() {
            write!(line, ", last error: {e}")?;
        }
        if let Some(e) = c["recorder_error"].as_str() {
            write!(line, ", recorder error: {e}")?;
        }
        write!(
            line,
            "; {} segments, {} recorded",
            c["segments"],
            gib(&c["recorded_bytes"])
        )?;
        writeln!(out, "{line}")?;
    }
    let d = &v["disk"];
    writeln!(
        out,
        "disk {}: {} free of {} (floor {}); footage {} in {} segments",
        d["dir"].as_str().unwrap_or("?"),
        gib(&d["free_bytes"]),
        gib(&d["total_bytes"]),
        gib(&d["min_free_bytes"]),
        gib(&d["recorded_bytes"]),
        d["segments"]
    )?;
    Ok(())
}
