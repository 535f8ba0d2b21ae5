//! Legal holds (evidence locks): time ranges of cameras, and exports, that
//! retention must keep whatever its limits say, with who asked, why and until when.
//!
//! Holds live in their own sled tree (`holds`), keyed by id, in the same database as
//! the segment index. This module only stores holds and answers "is this held?"; it
//! never decides who may hold what (the web checks roles and cameras) and never deletes
//! footage.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Random id (32 lowercase hex digits).
    pub id: String,
    /// Cameras whose footage in `[start_ns, end_ns)` is held.
    pub cameras: Vec<String>,
    /// Start of the held range, ns since the epoch.
    pub start_ns: i64,
    /// End of the held range, ns since the epoch.
    pub end_ns: i64,
    /// Why (a case or incident reference): required, shown in the list and the audit log.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// When, ns since the epoch.
    pub created_ns: i64,
    /// When it stops protecting (ns), if it expires at all.
    #[serde(default)]
    pub until_ns: Option<i64>,
    /// An export it also holds (kept past `export_retain_days`).
    #[serde(default)]
    pub export: Option<String>,
}

impl Hold {
    /// Whether the hold still protects at `now_ns` (it has no expiry, or it is not yet due).
    pub fn active(&self, now_ns: i64) -> bool {
        self.until_ns.is_none_or(|u| now_ns < u)
    }
}

/// The holds tree.
pub struct Holds {
    db: sled::Db,
    tree: sled::Tree,
    /// Taken by [`Holds::insert`] and [`Holds::remove`] around the write, and by
    /// retention around each delete ([`Holds::gate`]), so a delete decided on the holds
    /// read under it cannot overtake a hold being placed. Counts changes, so retention
    /// re-reads the holds only when one happened.
    changes: Mutex<u64>,
}

/// The holds as they are while it is held: no hold is placed or released meanwhile.
pub struct Gate<'a> {
    holds: &'a Holds,
    changes: MutexGuard<'a, u64>,
}

impl Gate<'_> {
    /// How many holds have been placed or released since the server started; a
    /// different number than before means [`Gate::active`] must be read again.
    pub fn changes(&self) -> u64 {
        *self.changes
    }

    /// What the holds in force at `now_ns` protect, read under the gate.
    pub fn active(&self, now_ns: i64) -> anyhow::Result<Held> {
        self.holds.active(now_ns)
    }
}

impl Holds {
    /// Opens (creating if needed) the `holds` tree of `db`.
    pub fn open(db: &sled::Db) -> anyhow::Result<Holds> {
        Ok(Holds {
            db: db.clone(),
            tree: db.open_tree("holds").context("opening the holds tree")?,
            changes: Mutex::new(0),
        })
    }

    /// Blocks placing and releasing holds until the returned gate is dropped: retention
    /// decides and deletes each segment under it.
    pub fn gate(&self) -> Gate<'_> {
        Gate {
            holds: self,
            changes: self.changes.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Stores a new hold durably (flushed before returning: a hold that is acknowledged
    /// must survive a crash, or retention could delete what someone was told is safe).
    pub fn insert(&self, hold: &Hold) -> anyhow::Result<()> {
        let mut changes = self.gate().changes;
        *changes += 1;
        self.tree
            .insert(hold.id.as_bytes(), serde_json::to_vec(hold)?)
            .with_context(|| format!("storing hold {}", hold.id))?;
        self.db.flush().context("flushing holds")?;
        Ok(())
    }

    /// One hold.
    pub fn get(&self, id: &str) -> anyhow::Result<Option<Hold>> {
        self.tree
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Removes a hold; returns it if it existed.
    pub fn remove(&self, id: &str) -> anyhow::Result<Option<Hold>> {
        let mut changes = self.gate().changes;
        *changes += 1;
        let Some(v) = self
            .tree
            .remove(id.as_bytes())
            .with_context(|| format!("removing hold {id}"))?
        else {
            return Ok(None);
        };
        self.db.flush().context("flushing holds")?;
        Ok(Some(decode(&v)?))
    }

    /// Every hold, expired or not, oldest first.
    pub fn list(&self) -> anyhow::Result<Vec<Hold>> {
        let mut out = self
            .tree
            .iter()
            .map(|item| decode(&item?.1))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
        Ok(out)
    }

    /// What the holds in force at `now_ns` protect.
    pub fn active(&self, now_ns: i64) -> anyhow::Result<Held> {
        let mut held = Held::default();
        for h in self.list()? {
            if !h.active(now_ns) {
                continue;
            }
            for cam in &h.cameras {
                held.ranges
                    .entry(cam.clone())
                    .or_default()
                    .push((h.start_ns, h.end_ns));
            }
            if let Some(x) = &h.export {
                held.exports.push(x.clone());
            }
        }
        Ok(held)
    }
}

fn decode(v: &[u8]) -> anyhow::Result<Hold> {
    serde_json::from_slice(v).context("corrupt hold row")
}

/// A snapshot of what is held, as retention consults it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Per camera, held `[start, end)` ranges in ns.
    pub ranges: HashMap<String, Vec<(i64, i64)>>,
    /// Held export ids.
    pub exports: Vec<String>,
}

impl Held {
    /// Whether any of `camera`'s footage in `[start_ns, end_ns)` is held: a segment that
    /// overlaps a held range at all is kept whole.
    pub fn covers(&self, camera: &str, start_ns: i64, end_ns: i64) -> bool {
        self.ranges
            .get(camera)
            .is_some_and(|r| r.iter().any(|&(s, e)| s < end_ns && start_ns < e))
    }

    /// Whether export `id` is held.
    pub fn export(&self, id: &str) -> bool {
        self.exports.iter().any(|x| x == id)
    }

    /// Adds what `other` holds.
    pub fn merge(&mut self, other: &Held) {
        for (cam, r) in &other.ranges {
            self.ranges
                .entry(cam.clone())
                .or_default()
                .extend_from_slice(r);
        }
        self.exports.extend(other.exports.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(id: &str, cams: &[&str], s: i64, e: i64, until: Option<i64>) -> Hold {
        Hold {
            id: id.into(),
            cameras: cams.iter().map(|c| c.to_string()).collect(),
            start_ns: s,
            end_ns: e,
            reason: "case 1".into(),
            created_by: "op".into(),
            created_ns: 0,
            until_ns: until,
            export: Some(format!("x{id}")),
        }
    }

    #[test]
    fn store_list_expire_and_cover() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let holds = Holds::open(&db).unwrap();
        holds.insert(&hold("a", &["gate"], 100, 200, None)).unwrap();
        holds
            .insert(&hold("b", &["yard", "gate"], 500, 600, Some(1000)))
            .unwrap();
        assert_eq!(holds.list().unwrap().len(), 2);
        let held = holds.active(999).unwrap();
        assert!(held.covers("gate", 150, 160));
        assert!(held.covers("gate", 50, 101), "overlap at the start");
        assert!(held.covers("gate", 199, 300), "overlap at the end");
        assert!(!held.covers("gate", 200, 300), "end is exclusive");
        assert!(
            !held.covers("gate", 0, 100),
            "start is inclusive, range end exclusive"
        );
        assert!(held.covers("yard", 550, 551));
        assert!(!held.covers("other", 0, i64::MAX));
        assert!(held.export("xb"));
        // An expired hold stops protecting.
        let held = holds.active(1000).unwrap();
        assert!(!held.covers("yard", 550, 551));
        assert!(!held.export("xb"));
        assert!(held.covers("gate", 150, 160));
        assert_eq!(holds.remove("a").unwrap().unwrap().id, "a");
        assert!(holds.remove("a").unwrap().is_none());
        drop(holds);
        let holds = Holds::open(&db).unwrap();
        assert_eq!(holds.get("b").unwrap().unwrap().until_ns, Some(1000));
        assert!(holds.get("a").unwrap().is_none());
    }
}
