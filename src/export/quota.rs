//! Space for exports: the quota on `<storage>/.exports`, the reserve that retention keeps
//! free for it, and the expiry of old exports.
//!
//! The rule that keeps exports from ever costing footage: the whole export quota
//! (`[storage] export_max_bytes`) is reserved space. Retention keeps the volume's free
//! space at `min_free_bytes` *plus the unused part of the quota* ([`footage_floor`]), so
//! writing an export moves bytes from "free" to "used by exports" and changes nothing for
//! footage, and deleting one changes nothing either. An export is refused before it starts
//! when it would take the exports past the quota, or the volume under `min_free_bytes`
//! (possible only while retention has not yet caught up). Never deletes footage.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_json::Value;

use crate::clock::{parse_rfc3339, rfc3339, NS_PER_SEC};
use crate::config::StorageConfig;

/// Space allowed for exports, resolved from the configuration and the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes all exports may take together (0: exports are refused).
    pub max_bytes: u64,
    /// Days an export is kept (0: until deleted by hand).
    pub retain_days: u32,
    /// The volume floor that an export must not push the volume under.
    pub min_free_bytes: u64,
}

impl Limits {
    /// The configured limits; an unset `export_max_bytes` is a tenth of the volume holding
    /// `storage.dir` (0 if the volume cannot be measured, so exports are refused rather
    /// than unbounded).
    pub fn resolve(storage: &StorageConfig) -> Limits {
        let max_bytes = storage.export_max_bytes.unwrap_or_else(|| {
            crate::store::retention::volume_total_bytes(&storage.dir).unwrap_or(0) / 10
        });
        Limits {
            max_bytes,
            retain_days: storage.export_retain_days,
            min_free_bytes: storage.min_free_bytes,
        }
    }
}

/// The free space retention must keep for footage's sake: `min_free_bytes` plus the part
/// of the export quota not yet used. Exports written or deleted leave `free - floor`
/// unchanged, so they never make retention delete footage.
pub fn footage_floor(limits: &Limits, export_used: u64) -> u64 {
    limits
        .min_free_bytes
        .saturating_add(limits.max_bytes.saturating_sub(export_used))
}

/// Bytes taken by everything under the exports directory (0 if it does not exist yet).
pub fn used_bytes(root: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let meta = e.metadata()?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Why an export was refused for space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `export_max_bytes` is 0.
    #[error("exports are disabled on this server ([storage] export_max_bytes = 0)")]
    Disabled,
    /// The exports would exceed their quota.
    #[error(
        "export quota exceeded: this export needs {need} bytes, exports already use {used} \
         of {max} bytes ([storage] export_max_bytes); old exports are deleted after \
         export_retain_days, or an administrator can delete some"
    )]
    OverQuota {
        /// Bytes this export needs.
        need: u64,
        /// Bytes used (and reserved by running exports).
        used: u64,
        /// The quota.
        max: u64,
    },
    /// The volume would drop under `min_free_bytes`.
    #[error(
        "the storage volume is too full: this export needs {need} bytes but only {free} \
         bytes are free and {floor} must stay free ([storage] min_free_bytes); footage is \
         never deleted to make room for exports"
    )]
    VolumeFull {
        /// Bytes this export needs.
        need: u64,
        /// Free bytes on the volume.
        free: u64,
        /// `min_free_bytes`.
        floor: u64,
    },
}

/// Bytes promised to exports that are still being written, so two exports started at once
/// cannot both fit into the same space.
#[derive(Debug, Default)]
pub struct Ledger {
    pending: Mutex<u64>,
}

/// Space held for one running export; released on drop (its files then count on disk).
#[derive(Debug)]
pub struct Reservation {
    ledger: Arc<Ledger>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut p = self
            .ledger
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *p = p.saturating_sub(self.bytes);
    }
}

/// Room for a manifest, `SHA256SUMS` and job file beside the video files.
pub const OVERHEAD_BYTES: u64 = 1 << 20;

/// Room for each source segment and gap the manifest lists, beyond
/// [`OVERHEAD_BYTES`]: its line in `manifest.json` and again, base64, in
/// `player.html` (a 31-day export of 1-minute segments lists 44,640).
pub const BYTES_PER_MANIFEST_ENTRY: u64 = 1024;

impl Ledger {
    /// Reserves `need` bytes for a new export if the quota and the volume allow it.
    /// `used` is what exports take on disk now, `free` the volume's free bytes.
    pub fn reserve(
        self: &Arc<Self>,
        limits: &Limits,
        need: u64,
        used: u64,
        free: u64,
    ) -> Result<Reservation, Refusal> {
        if limits.max_bytes == 0 {
            return Err(Refusal::Disabled);
        }
        let need = need.saturating_add(OVERHEAD_BYTES);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let used = used.saturating_add(*pending);
        if used.saturating_add(need) > limits.max_bytes {
            return Err(Refusal::OverQuota {
                need,
                used,
                max: limits.max_bytes,
            });
        }
        // Space already promised to running exports is not free any more.
        let free = free.saturating_sub(*pending);
        if free.saturating_sub(need) < limits.min_free_bytes || free < need {
            return Err(Refusal::VolumeFull {
                need,
                free,
                floor: limits.min_free_bytes,
            });
        }
        *pending += need;
        Ok(Reservation {
            ledger: self.clone(),
            bytes: need,
        })
    }
}

/// Measures the exports and the volume and reserves `need` bytes for a new export under
/// the configured limits. Blocking (walks the exports directory).
pub fn admit(
    storage: &StorageConfig,
    ledger: &Arc<Ledger>,
    need: u64,
) -> anyhow::Result<Result<Reservation, Refusal>> {
    let limits = Limits::resolve(storage);
    let root = super::exports_dir(&storage.dir);
    let used = used_bytes(&root).with_context(|| format!("measuring {}", root.display()))?;
    let free = crate::store::retention::volume_free_bytes(&storage.dir)
        .with_context(|| format!("measuring free space of {}", storage.dir.display()))?;
    Ok(ledger.reserve(&limits, need, used, free))
}

/// An export deleted because it outlived `export_retain_days`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    /// Export id.
    pub id: String,
    /// Who made it (from its job file; empty if unknown).
    pub owner: String,
    /// Cameras it covered (from its job file).
    pub cameras: Vec<String>,
    /// When it was made, ns.
    pub created_ns: i64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Deletes every export in `root` made more than `retain_days` before `now_ns` (nothing
/// when `retain_days` is 0) and says which. An export's age comes from its job file
/// (`{id}.json`, `created`), or the directory's modification time if that is missing.
/// The job file goes last, so a crash half-way leaves an export that is found again.
/// Exports for which `held` says yes (a legal hold) are kept however old.
pub fn expire(
    root: &Path,
    retain_days: u32,
    now_ns: i64,
    held: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<Expired>> {
    let mut out = Vec::new();
    if retain_days == 0 {
        return Ok(out);
    }
    let cutoff = now_ns.saturating_sub(i64::from(retain_days).saturating_mul(86_400 * NS_PER_SEC));
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".json").unwrap_or(&name).to_owned();
            super::valid_id(&id).then_some(id)
        })
        .collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        if held(&id) {
            continue;
        }
        let dir = root.join(&id);
        let job = root.join(format!("{id}.json"));
        let meta: Value = std::fs::read(&job)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let created_ns = meta["created"]
            .as_str()
            .and_then(parse_rfc3339)
            .or_else(|| mtime_ns(&dir).or_else(|| mtime_ns(&job)));
        let Some(created_ns) = created_ns else {
            continue;
        };
        if created_ns > cutoff {
            continue;
        }
        let bytes =
            used_bytes(&dir).unwrap_or(0) + std::fs::metadata(&job).map(|m| m.len()).unwrap_or(0);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("deleting export {}", dir.display())),
        }
        match std::fs::remove_file(&job) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("deleting {}", job.display())),
        }
        crate::store::sync_dir(root).with_context(|| format!("syncing {}", root.display()))?;
        out.push(Expired {
            id,
            owner: meta["owner"].as_str().unwrap_or_default().to_owned(),
            cameras: meta["cameras"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            created_ns,
            bytes,
        });
    }
    Ok(out)
}

impl Expired {
    /// The audit-log detail of the deletion.
    pub fn audit_detail(&self, retain_days: u32) -> String {
        format!(
            "export={} owner={} created={} bytes={} reason=older than export_retain_days={retain_days}",
            self.id,
            self.owner,
            rfc3339(self.created_ns),
            self.bytes
        )
    }
}

fn mtime_ns(p: &Path) -> Option<i64> {
    let t = std::fs::metadata(p).ok()?.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

/// Not enough room for the export: the kind a full volume has.
impl From<Refusal> for crate::error::Error {
    fn from(r: Refusal) -> Self {
        crate::error::Error::resource_exhausted(r.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn limits(max: u64, floor: u64) -> Limits {
        Limits {
            max_bytes: max,
            retain_days: 31,
            min_free_bytes: floor,
        }
    }

    #[test]
    fn exports_never_move_the_footage_floor() {
        let l = limits(100 * MB, 40 * MB);
        // With 500 MB free and no exports, footage may use down to 140 MB free.
        let free = 500 * MB;
        let before = free - footage_floor(&l, 0);
        // A 30 MB export: 30 MB less free, 30 MB more used; footage's headroom is the same.
        let after = (free - 30 * MB) - footage_floor(&l, 30 * MB);
        assert_eq!(before, after);
        // Past the quota (only possible by hand) the floor never drops under min_free.
        assert_eq!(footage_floor(&l, 500 * MB), 40 * MB);
    }

    #[test]
    fn reserve_refuses_past_quota_and_floor_and_counts_running_exports() {
        let ledger = Arc::new(Ledger::default());
        let l = limits(100 * MB, 40 * MB);
        let a = ledger.reserve(&l, 40 * MB, 0, 1000 * MB).unwrap();
        // A second 40 MB export fits only while the first is not counted twice...
        let b = ledger.reserve(&l, 40 * MB, 0, 1000 * MB).unwrap();
        // ...and a third does not: 2 x 41 MB pending + 41 > 100.
        let e = ledger.reserve(&l, 40 * MB, 0, 1000 * MB).unwrap_err();
        assert!(matches!(e, Refusal::OverQuota { .. }), "{e}");
        assert!(e.to_string().contains("export_max_bytes"), "{e}");
        drop((a, b));
        // Released: fits again, but not on a nearly full volume.
        let e = ledger.reserve(&l, 40 * MB, 0, 60 * MB).unwrap_err();
        assert!(matches!(e, Refusal::VolumeFull { .. }), "{e}");
        assert!(ledger.reserve(&l, 40 * MB, 0, 90 * MB).is_ok());
        assert_eq!(
            ledger.reserve(&limits(0, 0), 1, 0, u64::MAX).unwrap_err(),
            Refusal::Disabled
        );
    }

    #[test]
    fn expire_deletes_only_old_exports() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let day = 86_400 * NS_PER_SEC;
        let now = 100 * day;
        for (id, age_days) in [("a".repeat(32), 40), ("b".repeat(32), 5)] {
            std::fs::create_dir_all(root.join(&id)).unwrap();
            std::fs::write(root.join(&id).join("x.mp4"), vec![0u8; 1000]).unwrap();
            let meta = serde_json::json!({
                "id": id, "owner": "op", "cameras": ["cam"],
                "created": rfc3339(now - age_days * day),
            });
            std::fs::write(root.join(format!("{id}.json")), meta.to_string()).unwrap();
        }
        assert!(
            expire(root, 0, now, |_| false).unwrap().is_empty(),
            "0 keeps all"
        );
        let a = "a".repeat(32);
        assert!(
            expire(root, 31, now, |id| id == a).unwrap().is_empty(),
            "a held export is kept however old"
        );
        assert!(root.join(&a).join("x.mp4").exists());
        let gone = expire(root, 31, now, |_| false).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].id, "a".repeat(32));
        assert_eq!(gone[0].owner, "op");
        assert_eq!(gone[0].cameras, vec!["cam".to_string()]);
        assert!(gone[0].bytes >= 1000);
        assert!(!root.join("a".repeat(32)).exists());
        assert!(!root.join(format!("{}.json", "a".repeat(32))).exists());
        assert!(root.join("b".repeat(32)).join("x.mp4").exists());
        assert!(gone[0].audit_detail(31).contains("export_retain_days=31"));
    }
}
