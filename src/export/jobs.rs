//! Export jobs: the one audited path by which footage becomes an export, for the web (in
//! the background, with a registry and `<exports>/{id}.json`) and the command line alike.
//!
//! The evidence rule lives here once ([`write_recorded`]): an export exists only if its
//! audit entry was written. If the entry cannot be written the export directory is
//! deleted, so no copy of footage leaves without a record. Never decides who may export
//! (callers check roles and cameras) and never touches recordings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_json::{json, Value};

use super::signing::Signer;
use super::{quota, Outcome, Planned, Progress, Request};
use crate::audit::{Action, Event};
use crate::clock::rfc3339;

/// Writes a planned export into `dir` (which must not exist yet), then calls `record`
/// with the outcome to write its audit entry. If writing or recording fails, the
/// directory (created here, so ours) is deleted and the error returned. Blocking.
pub fn write_recorded(
    planned: Planned,
    req: &Request,
    dir: &Path,
    now_ns: i64,
    progress: &Progress,
    signer: &Signer,
    record: impl FnOnce(&Outcome) -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir.parent().unwrap_or(Path::new(".")))?;
    // Created here, not in `write`, so a directory that already existed (someone else's
    // evidence) is refused and never deleted below.
    std::fs::create_dir(dir).with_context(|| {
        format!(
            "creating {} (an existing directory is never overwritten: it may hold evidence)",
            dir.display()
        )
    })?;
    let result = super::write(planned, req, dir, now_ns, progress, signer).and_then(|outcome| {
        record(&outcome).context("could not write the audit entry; the export was deleted")?;
        Ok(outcome)
    });
    if result.is_err() {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::error!(dir = %dir.display(), error = %e, "could not delete a failed export");
        }
    }
    result
}

/// The audit entry of a finished export (`location`: the job id or the output directory;
/// `role`: the web caller's role, `None` for the command line).
pub fn audit_event(
    req: &Request,
    outcome: &Outcome,
    location: &str,
    client: &str,
    role: Option<&str>,
) -> Event {
    Event {
        actor: req.user.clone(),
        role: role.map(str::to_owned),
        action: Action::Export,
        target: req
            .cameras
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
            .join(","),
        client: client.to_owned(),
        detail: super::audit_detail(req, outcome, location),
    }
}

/// Records a finished export: its row in the disclosure register, then its audit entry
/// (`append`). If the audit entry cannot be written the row is taken back, so the
/// register and the audit log list the same exports. For the `record` step of
/// [`write_recorded`]. Blocking.
pub fn register_and_audit(
    store: &crate::store::Store,
    req: &Request,
    outcome: &Outcome,
    location: &str,
    now_ns: i64,
    append: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let register = super::disclosure::Register::open(store.db())?;
    let key = register.add(
        now_ns,
        &super::disclosure::Record::of(req, outcome, location, now_ns),
    )?;
    if let Err(e) = append() {
        if let Err(r) = register.remove(&key) {
            tracing::error!(error = %format!("{r:#}"), export = location,
                "taking back the register row of an export that was not audited");
        }
        return Err(e);
    }
    Ok(())
}

/// A background export.
pub struct Job {
    /// Its id (see [`super::new_id`]).
    pub id: String,
    /// Who started it.
    pub owner: String,
    /// Bytes written so far.
    pub progress: Progress,
    state: Mutex<JobState>,
}

/// Where a job is.
#[derive(Clone, Debug)]
pub enum JobState {
    /// Still writing.
    Running,
    /// Written and recorded.
    Done(Box<Outcome>),
    /// Failed (and deleted), with the reason for its owner.
    Failed(String),
}

impl Job {
    /// Its state now.
    pub fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What is known about an export id.
pub enum Status {
    /// A job of this server run.
    Job(Arc<Job>),
    /// From before a restart: its manifest as found on disk (JSON bytes), or `None` if it
    /// never finished.
    Earlier(Option<Vec<u8>>),
}

/// The exports of one storage directory: jobs running or finished since start, plus those
/// on disk from earlier runs (`{id}.json` names the owner).
pub struct Jobs {
    root: PathBuf,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    /// Space promised to running exports.
    pub ledger: Arc<quota::Ledger>,
    /// Signs every package (or why the key is unavailable: exports then fail, plainly).
    signer: Result<Signer, String>,
}

impl Jobs {
    /// Jobs under `<storage>/.exports`, signed by `signer`, reserving space in `ledger`.
    pub fn new(storage: &Path, signer: Result<Signer, String>, ledger: Arc<quota::Ledger>) -> Jobs {
        Jobs {
            root: super::exports_dir(storage),
            jobs: Mutex::new(HashMap::new()),
            ledger,
            signer,
        }
    }

    /// The directory of export `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Registers a new job for `owner` and writes its `{id}.json` (owner, creation time and
    /// what was asked: read after a restart and by expiry). Blocking.
    pub fn create(&self, owner: &str, req: &Request, now_ns: i64) -> anyhow::Result<Arc<Job>> {
        let id = super::new_id();
        let meta = json!({
            "id": id, "owner": owner, "created": rfc3339(now_ns),
            "cameras": req.cameras.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            "start": rfc3339(req.start_ns), "end": rfc3339(req.end_ns),
        });
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let path = self.root.join(format!("{id}.json"));
        std::fs::write(&path, meta.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
        let job = Arc::new(Job {
            id: id.clone(),
            owner: owner.to_owned(),
            progress: Progress::default(),
            state: Mutex::new(JobState::Running),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, job.clone());
        Ok(job)
    }

    /// Writes `job`'s export and records it with `record` ([`write_recorded`]); the job's
    /// state says how it ended. `reservation` (the quota promise) is released once the
    /// files are on disk and so counted there. Blocking.
    pub fn run(
        &self,
        job: &Job,
        planned: Planned,
        req: &Request,
        now_ns: i64,
        reservation: quota::Reservation,
        record: impl FnOnce(&Outcome) -> anyhow::Result<()>,
    ) {
        let dir = self.dir(&job.id);
        let written = match &self.signer {
            Ok(signer) => write_recorded(planned, req, &dir, now_ns, &job.progress, signer, record),
            Err(e) => Err(anyhow::anyhow!("export signing key unavailable: {e}")),
        };
        let state = match written {
            Ok(outcome) => JobState::Done(Box::new(outcome)),
            Err(e) => {
                tracing::warn!(id = %job.id, error = %format!("{e:#}"), "export failed");
                JobState::Failed(format!("{e:#}"))
            }
        };
        *job.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        drop(reservation);
    }

    /// The owner of export `id` and what is known of it; `None` for ids that are not ours
    /// or unknown. Blocking (reads `{id}.json` for earlier exports).
    pub fn find(&self, id: &str) -> Option<(String, Status)> {
        if !super::valid_id(id) {
            return None;
        }
        let job = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        if let Some(j) = job {
            return Some((j.owner.clone(), Status::Job(j)));
        }
        let meta = std::fs::read(self.root.join(format!("{id}.json"))).ok()?;
        let v: Value = serde_json::from_slice(&meta).ok()?;
        let owner = v["owner"].as_str()?.to_owned();
        let manifest = std::fs::read(self.dir(id).join(super::MANIFEST)).ok();
        Some((owner, Status::Earlier(manifest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            cameras: vec![("cam".into(), "Gate".into())],
            start_ns: 0,
            end_ns: 10_000_000_000,
            reason: "incident".into(),
            user: "cli".into(),
            time_zone: jiff::tz::TimeZone::UTC,
            working_copy: false,
            redact: None,
            disclosure: None,
        }
    }

    #[test]
    fn an_export_whose_record_fails_is_deleted_and_existing_dirs_are_never_touched() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&tmp.path().join("data")).unwrap();
        let req = request();
        let out = tmp.path().join("out");
        let plan = || super::super::plan(&store, &req).unwrap();
        let p = Progress::default();
        let signer = &Signer::load_or_create(&tmp.path().join("sign.key")).unwrap();

        let e = write_recorded(plan(), &req, &out, 0, &p, signer, |_| {
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("audit entry"), "{e:#}");
        assert!(!out.exists(), "an unrecorded export must not remain");

        let mut recorded = None;
        let o = write_recorded(plan(), &req, &out, 0, &p, signer, |o| {
            recorded = Some(o.manifest_sha256.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(recorded.as_ref(), Some(&o.manifest_sha256));
        assert!(out.join(super::super::MANIFEST).exists());

        // Registered with the audit entry, or not at all.
        let register = super::super::disclosure::Register::open(store.db()).unwrap();
        let e = register_and_audit(&store, &req, &o, "x1", 5, || anyhow::bail!("audit down"));
        assert!(format!("{e:?}").contains("audit down"));
        assert!(register.list(0, i64::MAX, 10).unwrap().is_empty());
        register_and_audit(&store, &req, &o, "x2", 6, || Ok(())).unwrap();
        let rows = register.list(0, i64::MAX, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].export, "x2");
        assert_eq!(rows[0].manifest_sha256, o.manifest_sha256);

        // A second export into the same directory is refused and deletes nothing.
        let e = write_recorded(plan(), &req, &out, 0, &p, signer, |_| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("never overwritten"), "{e:#}");
        assert!(out.join(super::super::MANIFEST).exists());
    }
}
