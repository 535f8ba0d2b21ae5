//! Alarms: conditions the NVR already detects (a camera offline, recording
//! stopped, a disk write failing, a disk under its floor or full of held
//! footage, retention failing, the audit chain broken, the clock unsynchronised) held as records with raise and clear
//! times in the index, acknowledged by operators, and sent by e-mail and
//! webhook to the LAN. `watch` decides what is wrong now, this module keeps
//! the records, `send` delivers. Alarms never change what is recorded.

pub mod config;
pub mod send;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;

/// What is wrong; the stable names are the API's `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A camera has not streamed for `offline_after_seconds`.
    CameraOffline,
    /// A camera streams but nothing is recorded (no key frame to start at).
    RecordingStopped,
    /// Writing or indexing a camera's footage failed (the recorder retries).
    DiskWriteError,
    /// The volume is under its floor and only held footage is left to delete.
    HeldFull,
    /// The last retention pass failed.
    RetentionError,
    /// The audit log's hash chain does not verify.
    AuditChainBroken,
    /// The storage volume stays under its free-space floor despite retention.
    DiskLow,
    /// The server clock is not synchronised by NTP, so recording times drift.
    ClockUnsynced,
    /// Another node's owner marker is under this node's archive prefix: nothing is
    /// archived (uploads wait, nothing there is deleted).
    ArchivePrefixTaken,
}

impl Kind {
    /// Every kind, for what must cover them all (the example alert rules).
    pub const ALL: [Kind; 9] = [
        Kind::CameraOffline,
        Kind::RecordingStopped,
        Kind::DiskWriteError,
        Kind::HeldFull,
        Kind::RetentionError,
        Kind::AuditChainBroken,
        Kind::DiskLow,
        Kind::ClockUnsynced,
        Kind::ArchivePrefixTaken,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CameraOffline => "camera_offline",
            Kind::RecordingStopped => "recording_stopped",
            Kind::DiskWriteError => "disk_write_error",
            Kind::HeldFull => "held_full",
            Kind::RetentionError => "retention_error",
            Kind::AuditChainBroken => "audit_chain_broken",
            Kind::DiskLow => "disk_low",
            Kind::ClockUnsynced => "clock_unsynced",
            Kind::ArchivePrefixTaken => "archive_prefix_taken",
        }
    }
}

/// What an alarm is about: its kind and camera (none for server-wide ones).
pub type Key = (Kind, Option<String>);

/// One alarm, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// Unique, increasing.
    pub id: u64,
    /// What is wrong.
    pub kind: Kind,
    /// The camera, for camera alarms.
    pub camera: Option<String>,
    /// What an operator reads (no credentials).
    pub message: String,
    /// When it was raised (wall ns).
    pub raised_ns: i64,
    /// When the condition ended; `None` while active.
    pub cleared_ns: Option<i64>,
    /// Who acknowledged it first (kept for mail, webhooks and older clients).
    pub acked_by: Option<String>,
    /// When.
    pub acked_ns: Option<i64>,
    /// Every operator's own acknowledgement, oldest first: one operator's
    /// acknowledgement does not take the alarm off the others' screens.
    #[serde(default)]
    pub acks: Vec<Ack>,
}

/// One operator's acknowledgement of an alarm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The user.
    pub user: String,
    /// When (wall ns).
    pub at_ns: i64,
    /// What they noted (may be empty).
    #[serde(default)]
    pub note: String,
}

/// Longest acknowledgement note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

impl Alarm {
    /// The acknowledgements, including one stored before they were kept per
    /// user (only `acked_by` then).
    pub fn all_acks(&self) -> Vec<Ack> {
        match (&self.acked_by, self.acks.is_empty()) {
            (Some(u), true) => vec![Ack {
                user: u.clone(),
                at_ns: self.acked_ns.unwrap_or(self.raised_ns),
                note: String::new(),
            }],
            _ => self.acks.clone(),
        }
    }

    /// Whether `user` has acknowledged it.
    pub fn acked_by_user(&self, user: &str) -> bool {
        self.all_acks().iter().any(|a| a.user == user)
    }

    /// The API's JSON form (RFC 3339 UTC times; `id` as a string).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id.to_string(),
            "kind": self.kind.as_str(),
            "camera": self.camera,
            "message": self.message,
            "raised": rfc3339(self.raised_ns),
            "cleared": self.cleared_ns.map(rfc3339),
            "active": self.cleared_ns.is_none(),
            "acked_by": self.acked_by,
            "acked": self.acked_ns.map(rfc3339),
            "acks": self.all_acks().iter().map(|a| serde_json::json!({
                "user": a.user,
                "at": rfc3339(a.at_ns),
                "note": a.note,
            })).collect::<Vec<_>>(),
        })
    }
}

/// An alarm that is up now, as `/metrics` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    /// What is wrong.
    pub kind: Kind,
    /// The camera, for camera alarms.
    pub camera: Option<String>,
    /// When it was raised (wall ns).
    pub raised_ns: i64,
}

/// A change to deliver: an alarm raised or cleared.
#[derive(Clone, Debug)]
pub struct Notice {
    /// `raised` or `cleared`.
    pub event: &'static str,
    /// The alarm after the change.
    pub alarm: Alarm,
}

/// Most alarm records kept; beyond it the oldest cleared ones go.
const MAX_RECORDS: usize = 5_000;

/// The alarm records in the index (sled tree `alarms`, key = id big-endian).
pub struct Alarms {
    db: sled::Db,
    tree: sled::Tree,
    /// Active alarms by what they are about (one per key): id and raise time.
    active: Mutex<BTreeMap<Key, (u64, i64)>>,
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// No alarm has that id.
    #[error("no such alarm")]
    NotFound,
    /// The index failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl Alarms {
    /// Opens the tree; alarms active at the last stop stay active until
    /// `watch` sees their condition gone.
    pub fn open(db: &sled::Db) -> anyhow::Result<Alarms> {
        let tree = db.open_tree("alarms").context("opening the alarms tree")?;
        let mut active = BTreeMap::new();
        for item in tree.iter() {
            let (_, v) = item?;
            let a: Alarm = serde_json::from_slice(&v).context("reading an alarm record")?;
            if a.cleared_ns.is_none() {
                active.insert((a.kind, a.camera.clone()), (a.id, a.raised_ns));
            }
        }
        Ok(Alarms {
            db: db.clone(),
            tree,
            active: Mutex::new(active),
        })
    }

    /// Alarm `id`, if there is one. Blocking.
    pub fn get(&self, id: u64) -> anyhow::Result<Option<Alarm>> {
        self.tree
            .get(id.to_be_bytes())?
            .map(|v| serde_json::from_slice(&v).context("reading an alarm record"))
            .transpose()
    }

    fn put(&self, a: &Alarm) -> anyhow::Result<()> {
        self.tree
            .insert(a.id.to_be_bytes(), serde_json::to_vec(a)?)
            .with_context(|| format!("storing alarm {}", a.id))?;
        Ok(())
    }

    /// Makes the active set equal `now_wrong` (key → message): raises what
    /// is new, clears what is gone. Returns the changes to deliver. Blocking.
    pub fn sync(
        &self,
        now_ns: i64,
        now_wrong: &BTreeMap<Key, String>,
    ) -> anyhow::Result<Vec<Notice>> {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let gone: Vec<(Key, u64)> = active
            .iter()
            .filter(|(k, _)| !now_wrong.contains_key(*k))
            .map(|(k, (id, _))| (k.clone(), *id))
            .collect();
        for (key, id) in gone {
            if let Some(mut a) = self.get(id)? {
                a.cleared_ns = Some(now_ns);
                self.put(&a)?;
                out.push(Notice {
                    event: "cleared",
                    alarm: a,
                });
            }
            active.remove(&key);
        }
        for (key, message) in now_wrong {
            if active.contains_key(key) {
                continue;
            }
            let a = Alarm {
                id: self.db.generate_id()?,
                kind: key.0,
                camera: key.1.clone(),
                message: message.clone(),
                raised_ns: now_ns,
                cleared_ns: None,
                acked_by: None,
                acked_ns: None,
                acks: Vec::new(),
            };
            self.put(&a)?;
            active.insert(key.clone(), (a.id, a.raised_ns));
            out.push(Notice {
                event: "raised",
                alarm: a,
            });
        }
        if !out.is_empty() {
            self.prune()?;
            self.tree.flush()?;
        }
        Ok(out)
    }

    /// Drops the oldest cleared records beyond [`MAX_RECORDS`].
    fn prune(&self) -> anyhow::Result<()> {
        let mut excess = self.tree.len().saturating_sub(MAX_RECORDS);
        for item in self.tree.iter() {
            if excess == 0 {
                break;
            }
            let (k, v) = item?;
            let a: Alarm = serde_json::from_slice(&v)?;
            if a.cleared_ns.is_some() {
                self.tree.remove(k)?;
                excess -= 1;
            }
        }
        Ok(())
    }

    /// The alarms up now, by kind then camera; from memory, never blocks on the index.
    pub fn active(&self) -> Vec<Active> {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active
            .iter()
            .map(|((kind, camera), (_, raised_ns))| Active {
                kind: *kind,
                camera: camera.clone(),
                raised_ns: *raised_ns,
            })
            .collect()
    }

    /// Every active alarm and the newest `limit` cleared ones, newest first. Blocking.
    pub fn list(&self, limit: usize) -> anyhow::Result<Vec<Alarm>> {
        let mut out = Vec::new();
        let mut cleared = 0;
        for item in self.tree.iter().rev() {
            let (_, v) = item?;
            let a: Alarm = serde_json::from_slice(&v)?;
            if a.cleared_ns.is_some() {
                if cleared >= limit {
                    continue;
                }
                cleared += 1;
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Records that `user` acknowledged alarm `id`, with `note`. Each user
    /// acknowledges once (a second time changes nothing); the first
    /// acknowledgement also stays in `acked_by`. Returns the alarm and whether
    /// this call added the user's acknowledgement. Blocking.
    pub fn ack(
        &self,
        id: u64,
        user: &str,
        note: &str,
        now_ns: i64,
    ) -> Result<(Alarm, bool), AckError> {
        // Under the lock so a clear and an ack never overwrite each other.
        let _active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let mut a = self.get(id)?.ok_or(AckError::NotFound)?;
        if a.acked_by_user(user) {
            return Ok((a, false));
        }
        a.acks = a.all_acks();
        a.acks.push(Ack {
            user: user.to_owned(),
            at_ns: now_ns,
            note: note.to_owned(),
        });
        if a.acked_by.is_none() {
            a.acked_by = Some(user.to_owned());
            a.acked_ns = Some(now_ns);
        }
        self.put(&a)?;
        self.tree.flush().map_err(anyhow::Error::from)?;
        Ok((a, true))
    }
}

impl From<AckError> for crate::error::Error {
    fn from(e: AckError) -> Self {
        match e {
            AckError::NotFound => crate::error::Error::not_found("no such alarm"),
            AckError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrong(keys: &[(Kind, Option<&str>)]) -> BTreeMap<Key, String> {
        keys.iter()
            .map(|(k, c)| ((*k, c.map(str::to_owned)), format!("{} {c:?}", k.as_str())))
            .collect()
    }

    #[test]
    fn raise_once_clear_when_gone_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let alarms = Alarms::open(&db).unwrap();
        let n = alarms
            .sync(
                1,
                &wrong(&[(Kind::CameraOffline, Some("gate")), (Kind::HeldFull, None)]),
            )
            .unwrap();
        assert_eq!(n.len(), 2);
        assert!(n.iter().all(|n| n.event == "raised"));
        // Still wrong: nothing new.
        let n = alarms
            .sync(
                2,
                &wrong(&[(Kind::CameraOffline, Some("gate")), (Kind::HeldFull, None)]),
            )
            .unwrap();
        assert!(n.is_empty());
        let gate = alarms
            .list(10)
            .unwrap()
            .into_iter()
            .find(|a| a.kind == Kind::CameraOffline)
            .unwrap();
        let (a, added) = alarms.ack(gate.id, "op", "seen", 3).unwrap();
        assert!(added);
        assert_eq!(a.acked_by.as_deref(), Some("op"));
        // Another operator's acknowledgement is their own; the first stays first.
        let (a, added) = alarms.ack(gate.id, "other", "", 4).unwrap();
        assert!(added);
        assert_eq!(a.acked_by.as_deref(), Some("op"));
        let who: Vec<_> = a
            .acks
            .iter()
            .map(|k| (k.user.as_str(), k.at_ns, k.note.as_str()))
            .collect();
        assert_eq!(who, [("op", 3, "seen"), ("other", 4, "")]);
        assert!(a.acked_by_user("other") && !a.acked_by_user("third"));
        // Once each: a second acknowledgement changes nothing.
        let (a, added) = alarms.ack(gate.id, "op", "again", 9).unwrap();
        assert!(!added);
        assert_eq!((a.acks.len(), a.acks[0].note.as_str()), (2, "seen"));
        assert!(matches!(
            alarms.ack(999_999, "op", "", 4),
            Err(AckError::NotFound)
        ));
        assert_eq!(
            alarms.active(),
            [
                Active {
                    kind: Kind::CameraOffline,
                    camera: Some("gate".into()),
                    raised_ns: 1
                },
                Active {
                    kind: Kind::HeldFull,
                    camera: None,
                    raised_ns: 1
                },
            ]
        );
        drop(alarms);
        // Reopened: the two are still active, so only the gone one clears.
        let alarms = Alarms::open(&db).unwrap();
        let n = alarms.sync(5, &wrong(&[(Kind::HeldFull, None)])).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].event, n[0].alarm.id, n[0].alarm.cleared_ns),
            ("cleared", gate.id, Some(5))
        );
        assert_eq!(
            n[0].alarm.acked_by.as_deref(),
            Some("op"),
            "the ack is kept"
        );
        // The camera goes offline again: a new alarm, not the old one reopened.
        let n = alarms
            .sync(
                6,
                &wrong(&[(Kind::CameraOffline, Some("gate")), (Kind::HeldFull, None)]),
            )
            .unwrap();
        assert_eq!(n.len(), 1);
        assert!(n[0].alarm.id > gate.id && n[0].alarm.acked_by.is_none());
        let listed = alarms.list(0).unwrap();
        assert_eq!(listed.len(), 2, "active only with limit 0: {listed:?}");
        let since: Vec<_> = alarms
            .active()
            .iter()
            .map(|a| (a.kind, a.raised_ns))
            .collect();
        assert_eq!(
            since,
            [(Kind::CameraOffline, 6), (Kind::HeldFull, 1)],
            "the restart kept the raise time; the new alarm has its own"
        );
    }

    #[test]
    fn an_acknowledgement_stored_before_per_user_ones_still_counts() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let alarms = Alarms::open(&db).unwrap();
        let old = Alarm {
            id: 7,
            kind: Kind::DiskLow,
            camera: None,
            message: "disk".into(),
            raised_ns: 1,
            cleared_ns: None,
            acked_by: Some("op".into()),
            acked_ns: Some(2),
            acks: Vec::new(),
        };
        // As an older version wrote it: no `acks` field at all.
        let mut v = serde_json::to_value(&old).unwrap();
        v.as_object_mut().unwrap().remove("acks");
        alarms
            .tree
            .insert(7u64.to_be_bytes(), serde_json::to_vec(&v).unwrap())
            .unwrap();
        let a = alarms.get(7).unwrap().unwrap();
        assert!(a.acked_by_user("op"));
        let (a, added) = alarms.ack(7, "op", "", 3).unwrap();
        assert!(!added);
        let (a2, added) = alarms.ack(7, "other", "later", 4).unwrap();
        assert!(added);
        assert_eq!(
            a.acks,
            Vec::<Ack>::new(),
            "untouched when nothing was added"
        );
        let who: Vec<_> = a2.acks.iter().map(|k| (k.user.as_str(), k.at_ns)).collect();
        assert_eq!(who, [("op", 2), ("other", 4)]);
    }
}
