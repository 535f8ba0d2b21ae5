//! The Code of Practice report (Surveillance Camera Code of Practice, principle 10:
//! regular review and published reports) for a period: the camera register, retention
//! configured against retention achieved, recording availability with its outages,
//! who accessed what (from the audit log), disclosures, holds, failed logins, each
//! camera's latest isolation audit, and whether the audit chain verifies.
//!
//! Owns collecting those figures from the index, the audit log and the configuration
//! into a [`Report`]; [`render`] turns one into HTML or CSV (JSON is its serde form).
//! Read-only: never writes the index, the audit log or a file. The web handler and the
//! CLI (control socket or the index directly) both call [`build`].

pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::audit::{Action, AuditLog};
use crate::auth::Users;
use crate::clock::{local_time, rfc3339, NS_PER_SEC};
use crate::config::{CameraConfig, Config};
use crate::export::disclosure::{Record as Disclosure, Register};
use crate::onvif::isolation_record::{Records as IsolationRecords, Verdict};
use crate::store::Store;

/// A gap between recorded segments shorter than this is not an outage: a segment
/// boundary, a frame interval or a quick reconnect. Longer ones are listed.
pub const OUTAGE_MIN_NS: i64 = 5 * NS_PER_SEC;
/// Outages listed per camera; the rest are counted and summed.
pub const MAX_OUTAGES: usize = 100;
/// Disclosures listed; a period with more says so.
pub const MAX_DISCLOSURES: usize = 10_000;
/// Rows of the failed-login tables (names tried, addresses).
pub const MAX_FAILED_ROWS: usize = 20;
/// The role shown for accesses whose audit entries carry none (written by an older
/// cleannvr).
pub const ROLE_UNKNOWN: &str = "unknown";

/// What a report is made from.
pub struct Sources<'a> {
    /// The configuration (storage, time zone).
    pub config: &'a Config,
    /// The cameras as configured now.
    pub cameras: &'a [CameraConfig],
    /// The index.
    pub store: &'a Store,
    /// The audit log, with the signing key attached so checkpoints are checked.
    pub audit: &'a AuditLog,
    /// Users, for each accessing user's role.
    pub users: &'a Users,
    /// When the report is made.
    pub now_ns: i64,
}

/// The whole report. Times are RFC 3339 UTC (`*_local`: the server's zone, for people).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Start of the period.
    pub from: String,
    /// End of the period (exclusive).
    pub to: String,
    /// The same, in the server's time zone.
    pub from_local: String,
    /// The same, in the server's time zone.
    pub to_local: String,
    /// When the report was made.
    pub generated_at: String,
    /// The same, in the server's time zone.
    pub generated_at_local: String,
    /// The server's IANA time zone.
    pub time_zone: String,
    /// The server's host name.
    pub server_name: String,
    /// cleannvr's version.
    pub version: String,
    /// Availability is measured up to here: the period's end, or now if that is earlier.
    pub measured_to: String,
    /// One per configured camera.
    pub cameras: Vec<CameraSection>,
    /// The storage volume.
    pub storage: Storage,
    /// Who viewed, played back and exported, per user.
    pub access: Vec<UserAccess>,
    /// Failed logins in the period.
    pub failed_logins: FailedLogins,
    /// Exports made in the period (the disclosure register).
    pub disclosures: Vec<Disclosure>,
    /// More than [`MAX_DISCLOSURES`] in the period: only the first are listed.
    pub disclosures_truncated: bool,
    /// Legal holds in force at some time in the period (holds released since are gone
    /// from the index; their release is in `holds_released`).
    pub holds: Vec<HoldRow>,
    /// Holds placed in the period (audit log).
    pub holds_placed: u64,
    /// Holds released in the period (audit log).
    pub holds_released: u64,
    /// Camera configuration changes in the period (audit log).
    pub camera_changes: u64,
    /// The latest isolation audit of each camera configured by ONVIF or ever audited,
    /// whenever it ran (not only in the period: the latest is what stands).
    pub isolation: Vec<IsolationRow>,
    /// The audit chain's verification, now.
    pub audit: AuditSection,
}

/// One camera's part.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CameraSection {
    /// Id.
    pub id: String,
    /// Name (the id when unnamed).
    pub name: String,
    /// Connected at all.
    pub enabled: bool,
    /// Recording (false: live view only).
    pub record: bool,
    /// Stated purpose.
    pub purpose: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Lawful basis.
    pub lawful_basis: Option<String>,
    /// Next review (YYYY-MM-DD).
    pub review_date: Option<String>,
    /// The review date has passed.
    pub review_overdue: bool,
    /// No purpose stated.
    pub purpose_missing: bool,
    /// Configured `retain_days` (0: no age limit).
    pub retain_days: u32,
    /// Configured `retain_bytes` (0: no size limit).
    pub retain_bytes: u64,
    /// Start of the oldest footage held now.
    pub oldest_footage: Option<String>,
    /// Its age now in days: the retention actually achieved.
    pub retention_achieved_days: Option<f64>,
    /// Bytes of footage held now.
    pub held_bytes: u64,
    /// Segments held now.
    pub held_segments: u64,
    /// Seconds of the measured period.
    pub period_seconds: f64,
    /// Seconds of it for which footage is held.
    pub recorded_seconds: f64,
    /// `recorded_seconds` as a percentage of `period_seconds` (none for an empty period).
    pub availability_percent: Option<f64>,
    /// Gaps of at least [`OUTAGE_MIN_NS`], oldest first, at most [`MAX_OUTAGES`].
    pub outages: Vec<Outage>,
    /// All gaps of at least [`OUTAGE_MIN_NS`].
    pub outage_count: u64,
    /// Their total length.
    pub outage_seconds: f64,
    /// Segments retention deleted in the period (audit log).
    pub deleted_segments: u64,
    /// Bytes retention deleted in the period.
    pub deleted_bytes: u64,
    /// Live views opened in the period.
    pub live_views: u64,
    /// Playbacks in the period.
    pub playbacks: u64,
    /// Exports including this camera in the period.
    pub exports: u64,
}

/// A time without footage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// Start (UTC).
    pub start: String,
    /// End (UTC).
    pub end: String,
    /// Start in the server's zone.
    pub start_local: String,
    /// End in the server's zone.
    pub end_local: String,
    /// Length.
    pub seconds: f64,
    /// Reaches the time the report was made: the camera may be recording a segment
    /// not yet indexed, or still be down.
    pub ongoing: bool,
}

/// The storage volume and the footage on it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Storage {
    /// Storage directory.
    pub dir: String,
    /// Volume size.
    pub total_bytes: Option<u64>,
    /// Free now.
    pub free_bytes: Option<u64>,
    /// Retention's floor of free space.
    pub min_free_bytes: u64,
    /// Footage of every camera (removed ones too).
    pub footage_bytes: u64,
    /// Segments of every camera.
    pub footage_segments: u64,
}

/// One user's access in the period with one role: a user whose role changed in the
/// period has a row per role they acted in.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UserAccess {
    /// User name (`cli` for the command line).
    pub user: String,
    /// The role the user had when these accesses happened, as the audit entries record
    /// it (`cli` for the command line; [`ROLE_UNKNOWN`] for entries written before
    /// cleannvr recorded roles).
    pub role: String,
    /// Role now (`removed` when the user no longer exists, `cli` for the command line).
    pub role_now: String,
    /// Logins.
    pub logins: u64,
    /// Live views opened.
    pub live_views: u64,
    /// Playbacks.
    pub playbacks: u64,
    /// Stills fetched.
    pub snapshots: u64,
    /// Exports made.
    pub exports: u64,
    /// Export files downloaded.
    pub export_downloads: u64,
    /// Cameras viewed, played back or exported.
    pub cameras: Vec<String>,
}

/// Failed logins in the period.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FailedLogins {
    /// How many.
    pub total: u64,
    /// Names tried, most first (at most [`MAX_FAILED_ROWS`]).
    pub by_name: Vec<(String, u64)>,
    /// Client addresses, most first (at most [`MAX_FAILED_ROWS`]).
    pub by_client: Vec<(String, u64)>,
    /// Refused first-run setup attempts.
    pub setup_refused: u64,
}

/// A legal hold.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldRow {
    /// Id.
    pub id: String,
    /// Cameras held.
    pub cameras: Vec<String>,
    /// Held footage from.
    pub start: String,
    /// Held footage to.
    pub end: String,
    /// Why.
    pub reason: String,
    /// Who placed it.
    pub created_by: String,
    /// When.
    pub created: String,
    /// When it stops protecting, if ever.
    pub until: Option<String>,
    /// An export it holds too.
    pub export: Option<String>,
}

/// A camera's latest isolation audit (does it have a route out of the LAN?).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IsolationRow {
    /// Camera id.
    pub camera: String,
    /// When the latest audit ran (none: never audited).
    pub audited: Option<String>,
    /// The same, in the server's time zone.
    pub audited_local: Option<String>,
    /// Who ran it.
    pub by: Option<String>,
    /// What it concluded (none: never audited).
    pub verdict: Option<Verdict>,
    /// The verdict in words, or "never audited".
    pub result: String,
    /// Its findings that are not fine, or why it failed.
    pub findings: Vec<String>,
}

/// The audit log's state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuditSection {
    /// Entries written in the period.
    pub entries_in_period: u64,
    /// Entries in the whole log.
    pub entries_total: u64,
    /// The whole chain verifies.
    pub chain_intact: bool,
    /// Entries verified before the first break (all when intact).
    pub verified: u64,
    /// Where and why it breaks.
    pub broken: Option<String>,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// The newest signed checkpoint.
    pub last_checkpoint: Option<Checkpoint>,
}

/// A signed checkpoint of the audit chain, to compare with the copy in syslog.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Newest entry covered.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// When signed.
    pub time: String,
    /// Fingerprint of the signing key.
    pub key: String,
}

/// Parses a `from`/`to` bound: an RFC 3339 time, or a day `YYYY-MM-DD` in `tz`, which
/// means its first instant for `from` and the first instant of the next day for `to`
/// (so `--from 2026-11-01 --to 2026-11-30` is the whole of November).
pub fn parse_bound(s: &str, is_end: bool, tz: &jiff::tz::TimeZone) -> anyhow::Result<i64> {
    let s = s.trim();
    if let Some(ns) = crate::clock::parse_rfc3339(s) {
        return Ok(ns);
    }
    let day: jiff::civil::Date = s
        .parse()
        .with_context(|| format!("{s:?} is neither a day (YYYY-MM-DD) nor an RFC 3339 time"))?;
    let day = if is_end {
        day.tomorrow().context("the day after that")?
    } else {
        day
    };
    crate::clock::day_start_ns(day, tz).with_context(|| format!("{s:?} in {tz:?}"))
}

/// Checks a period: `from` before `to`, at most ten years (refusals are
/// [`InvalidArgument`](crate::error::ErrorKind::InvalidArgument)).
pub fn check_period(from_ns: i64, to_ns: i64) -> crate::error::Result<()> {
    use crate::error::Error;
    if from_ns >= to_ns {
        return Err(Error::invalid_argument(
            "the period is empty: `from` must be before `to`",
        ));
    }
    if (to_ns - from_ns) / NS_PER_SEC > 10 * 366 * 86_400 {
        return Err(Error::invalid_argument(
            "the period is longer than ten years",
        ));
    }
    Ok(())
}

/// Builds the report of `[from_ns, to_ns)`. Blocking: walks the index and audit log.
pub fn build(src: &Sources, from_ns: i64, to_ns: i64) -> anyhow::Result<Report> {
    check_period(from_ns, to_ns)?;
    let tz = src.config.server.time_zone();
    let now = src.now_ns;
    let measured_to = to_ns.min(now).max(from_ns);
    let today = crate::clock::local_day(now, &tz);
    let usage = src.store.usage();

    let log = scan_audit(src.audit, from_ns, to_ns)?;

    let mut cameras = Vec::new();
    for c in src.cameras {
        let u = usage.get(&c.id).copied().unwrap_or_default();
        let oldest = src.store.oldest(&c.id)?.map(|r| r.start_ns);
        let cov = coverage(src.store, &c.id, from_ns, measured_to, now, &tz)?;
        let per = log.cameras.get(&c.id).cloned().unwrap_or_default();
        cameras.push(CameraSection {
            id: c.id.clone(),
            name: if c.name.is_empty() {
                c.id.clone()
            } else {
                c.name.clone()
            },
            enabled: c.enabled,
            record: c.record,
            purpose: c.purpose.clone(),
            location: c.location.clone(),
            lawful_basis: c.lawful_basis.clone(),
            review_date: c.review_date.map(|d| d.to_string()),
            review_overdue: c.review_overdue(today),
            purpose_missing: c.purpose.is_none(),
            retain_days: c.retain_days,
            retain_bytes: c.retain_bytes,
            oldest_footage: oldest.map(rfc3339),
            retention_achieved_days: oldest.map(|o| round2((now - o) as f64 / 86_400e9)),
            held_bytes: u.bytes,
            held_segments: u.segments,
            period_seconds: secs(measured_to - from_ns),
            recorded_seconds: secs(cov.recorded_ns),
            availability_percent: (measured_to > from_ns)
                .then(|| round2(100.0 * cov.recorded_ns as f64 / (measured_to - from_ns) as f64)),
            outage_count: cov.count,
            outage_seconds: secs(cov.outage_ns),
            outages: cov.outages,
            deleted_segments: per.deleted_segments,
            deleted_bytes: per.deleted_bytes,
            live_views: per.live_views,
            playbacks: per.playbacks,
            exports: per.exports,
        });
    }

    let dir = &src.config.storage.dir;
    let storage = Storage {
        dir: dir.display().to_string(),
        total_bytes: crate::store::retention::volume_total_bytes(dir).ok(),
        free_bytes: crate::store::retention::volume_free_bytes(dir).ok(),
        min_free_bytes: src.config.storage.min_free_bytes,
        footage_bytes: usage.values().map(|u| u.bytes).sum(),
        footage_segments: usage.values().map(|u| u.segments).sum(),
    };

    let mut access = Vec::new();
    for ((user, role), a) in log.users {
        let role_now = if user == "cli" {
            "cli".to_owned()
        } else {
            match src.users.get(&user)? {
                Some(u) => u.role.as_str().to_owned(),
                None => "removed".to_owned(),
            }
        };
        access.push(UserAccess {
            user,
            role,
            role_now,
            cameras: a.cameras.into_iter().collect(),
            ..a.counts
        });
    }

    let register = Register::open(src.store.db())?;
    let mut disclosures = register.list(from_ns, to_ns, MAX_DISCLOSURES + 1)?;
    let disclosures_truncated = disclosures.len() > MAX_DISCLOSURES;
    disclosures.truncate(MAX_DISCLOSURES);

    let holds = src
        .store
        .holds()
        .list()?
        .into_iter()
        .filter(|h| h.created_ns < to_ns && h.until_ns.is_none_or(|u| u > from_ns))
        .map(|h| HoldRow {
            id: h.id,
            cameras: h.cameras,
            start: rfc3339(h.start_ns),
            end: rfc3339(h.end_ns),
            reason: h.reason,
            created_by: h.created_by,
            created: rfc3339(h.created_ns),
            until: h.until_ns.map(rfc3339),
            export: h.export,
        })
        .collect();

    let audits = IsolationRecords::open(src.store.db())?;
    let mut isolation = Vec::new();
    for c in src.cameras {
        let latest = audits.latest(&c.id)?;
        if latest.is_none() && c.onvif.is_none() {
            continue;
        }
        isolation.push(match latest {
            Some(r) => IsolationRow {
                camera: c.id.clone(),
                audited: Some(rfc3339(r.time_ns)),
                audited_local: Some(local_time(r.time_ns, &tz)),
                by: Some(r.by),
                verdict: Some(r.verdict),
                result: r.verdict.words().to_owned(),
                findings: r.findings,
            },
            None => IsolationRow {
                camera: c.id.clone(),
                audited: None,
                audited_local: None,
                by: None,
                verdict: None,
                result: "never audited".to_owned(),
                findings: Vec::new(),
            },
        });
    }

    let v = src.audit.verify()?;
    let audit = AuditSection {
        entries_in_period: log.entries,
        entries_total: src.audit.len() as u64,
        chain_intact: v.broken.is_none(),
        verified: v.verified,
        broken: v.broken.map(|b| b.to_string()),
        checkpoints: v.checkpoints,
        last_checkpoint: v.last_checkpoint.map(|c| Checkpoint {
            seq: c.seq,
            hash: c.hash,
            time: rfc3339(c.time_ns),
            key: c.key,
        }),
    };

    Ok(Report {
        from: rfc3339(from_ns),
        to: rfc3339(to_ns),
        from_local: local_time(from_ns, &tz),
        to_local: local_time(to_ns, &tz),
        generated_at: rfc3339(now),
        generated_at_local: local_time(now, &tz),
        time_zone: crate::clock::zone_name(&tz),
        server_name: crate::export::host_name(),
        version: env!("CARGO_PKG_VERSION").into(),
        measured_to: rfc3339(measured_to),
        cameras,
        storage,
        access,
        failed_logins: log.failed,
        disclosures,
        disclosures_truncated,
        holds,
        holds_placed: log.holds_placed,
        holds_released: log.holds_released,
        camera_changes: log.camera_changes,
        isolation,
        audit,
    })
}

fn secs(ns: i64) -> f64 {
    round2(ns as f64 / NS_PER_SEC as f64)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Footage held for one camera in a period.
#[derive(Debug, Default, PartialEq)]
struct Coverage {
    recorded_ns: i64,
    outages: Vec<Outage>,
    count: u64,
    outage_ns: i64,
}

/// Which part of `[from_ns, to_ns)` camera `id` has footage for: the union of its
/// segments, with gaps shorter than [`OUTAGE_MIN_NS`] counted as recorded.
fn coverage(
    store: &Store,
    id: &str,
    from_ns: i64,
    to_ns: i64,
    now_ns: i64,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<Coverage> {
    let mut cov = Coverage::default();
    if to_ns <= from_ns {
        return Ok(cov);
    }
    let gap = |cov: &mut Coverage, start: i64, end: i64| {
        if end - start < OUTAGE_MIN_NS {
            cov.recorded_ns += end - start;
            return;
        }
        cov.count += 1;
        cov.outage_ns += end - start;
        if cov.outages.len() < MAX_OUTAGES {
            cov.outages.push(Outage {
                start: rfc3339(start),
                end: rfc3339(end),
                start_local: local_time(start, tz),
                end_local: local_time(end, tz),
                seconds: secs(end - start),
                ongoing: end >= now_ns,
            });
        }
    };
    let mut cursor = from_ns;
    for rec in store.segments_iter(id, from_ns, to_ns) {
        let rec = rec.with_context(|| format!("camera {id}: reading its segments"))?;
        let (s, e) = (rec.start_ns.max(from_ns), rec.end_ns.min(to_ns));
        if e <= cursor {
            continue;
        }
        if s > cursor {
            gap(&mut cov, cursor, s);
            cursor = s;
        }
        cov.recorded_ns += e - cursor;
        cursor = e;
    }
    if cursor < to_ns {
        gap(&mut cov, cursor, to_ns);
    }
    Ok(cov)
}

/// What the audit log says about the period.
#[derive(Default)]
struct AuditFigures {
    entries: u64,
    /// By user and the role they acted in.
    users: BTreeMap<(String, String), UserFigures>,
    cameras: BTreeMap<String, CameraFigures>,
    failed: FailedLogins,
    holds_placed: u64,
    holds_released: u64,
    camera_changes: u64,
}

#[derive(Default)]
struct UserFigures {
    counts: UserAccess,
    cameras: BTreeSet<String>,
}

#[derive(Clone, Default)]
struct CameraFigures {
    live_views: u64,
    playbacks: u64,
    exports: u64,
    deleted_segments: u64,
    deleted_bytes: u64,
}

fn scan_audit(audit: &AuditLog, from_ns: i64, to_ns: i64) -> anyhow::Result<AuditFigures> {
    let mut f = AuditFigures::default();
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    let mut clients: BTreeMap<String, u64> = BTreeMap::new();
    audit.scan(from_ns, to_ns, |e| {
        f.entries += 1;
        let targets = || e.target.split(',').filter(|t| !t.is_empty());
        match e.action {
            Action::LoginFailed => {
                f.failed.total += 1;
                *names.entry(e.actor.clone()).or_default() += 1;
                *clients.entry(e.client.clone()).or_default() += 1;
            }
            Action::SetupRefused => f.failed.setup_refused += 1,
            Action::HoldCreate => f.holds_placed += 1,
            Action::HoldRelease => f.holds_released += 1,
            Action::CameraChange => f.camera_changes += 1,
            Action::RetentionDelete => {
                let c = f.cameras.entry(e.target.clone()).or_default();
                c.deleted_segments += detail_number(&e.detail, "segments");
                c.deleted_bytes += detail_number(&e.detail, "bytes");
            }
            Action::Login
            | Action::LiveView
            | Action::Playback
            | Action::Snapshot
            | Action::Export
            | Action::ExportDownload => {
                let role = match (&e.role, e.actor.as_str()) {
                    (Some(r), _) => r.clone(),
                    (None, "cli") => "cli".to_owned(),
                    (None, _) => ROLE_UNKNOWN.to_owned(),
                };
                let u = f.users.entry((e.actor.clone(), role)).or_default();
                let viewed = !matches!(e.action, Action::Login | Action::ExportDownload);
                if viewed {
                    u.cameras.extend(targets().map(str::to_owned));
                }
                match e.action {
                    Action::Login => u.counts.logins += 1,
                    Action::LiveView => u.counts.live_views += 1,
                    Action::Playback => u.counts.playbacks += 1,
                    Action::Snapshot => u.counts.snapshots += 1,
                    Action::Export => u.counts.exports += 1,
                    _ => u.counts.export_downloads += 1,
                }
                for t in targets() {
                    let c = f.cameras.entry(t.to_owned()).or_default();
                    match e.action {
                        Action::LiveView => c.live_views += 1,
                        Action::Playback => c.playbacks += 1,
                        Action::Export => c.exports += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    })?;
    let top = |m: BTreeMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(MAX_FAILED_ROWS);
        v
    };
    f.failed.by_name = top(names);
    f.failed.by_client = top(clients);
    Ok(f)
}

/// `key=N` from an audit detail such as retention's `segments=3 bytes=1024 ...`.
fn detail_number(detail: &str, key: &str) -> u64 {
    detail
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
