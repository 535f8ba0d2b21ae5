//! Audit: an append-only, hash-chained log of who did what (logins, views,
//! exports, user and camera changes), kept in the index database.
//!
//! Each entry stores the SHA-256 of the previous entry and its own hash, so
//! editing or deleting any entry in the middle breaks the chain at that
//! entry, which `cleannvr audit verify` reports. Each entry also carries an
//! HMAC-SHA256 of its hash under the audit key ([`key`], a file outside the
//! index), so someone who can rewrite the index but not read the key cannot
//! edit an entry and re-hash the rest of the chain to match. The chain cannot
//! show that the newest entries were cut off by someone able to rewrite the
//! database; shipping entries off the box is the answer to that, not this module.
//!
//! This module never decides whether an action is allowed; it only records.

pub mod checkpoint;
pub mod key;

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash that the first entry points back to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. Serialized in snake_case; these strings are the stable
/// vocabulary of the audit API and its filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A successful login.
    Login,
    /// A failed login (unknown user or wrong password; the log does not say which).
    LoginFailed,
    /// A logout.
    Logout,
    /// A live view was opened.
    LiveView,
    /// Recorded video was played.
    Playback,
    /// An export was made.
    Export,
    /// A user was created.
    UserAdd,
    /// A user's role, cameras or password changed.
    UserUpdate,
    /// A user was removed.
    UserRemove,
    /// A camera's configuration changed.
    CameraChange,
    /// A still picture of a camera was fetched (latest or historical).
    Snapshot,
    /// A file of an export was downloaded.
    ExportDownload,
    /// Retention deleted footage of a camera (one entry per camera per pass).
    RetentionDelete,
    /// Retention deleted an export older than `export_retain_days`.
    ExportExpire,
    /// A user turned on a second factor (TOTP).
    TotpEnable,
    /// A user turned off their second factor.
    TotpDisable,
    /// An admin (or the CLI) removed a user's second factor.
    TotpReset,
    /// A login used one of the user's recovery codes (the detail says how many remain).
    RecoveryCodeUsed,
    /// A user replaced their recovery codes with new ones (the old ones stop working).
    RecoveryCodesRenewed,
    /// A first-run setup attempt was refused (wrong or expired code, or an
    /// admin already exists). The code itself is never recorded.
    SetupRefused,
    /// A legal hold was placed on footage (or an export).
    HoldCreate,
    /// An admin released a legal hold (the detail says why).
    HoldRelease,
    /// A PTZ move session, preset or home command.
    Ptz,
    /// `cleannvr backup` copied the index (password hashes, audit log) and keys to a file.
    Backup,
    /// An operator acknowledged an alarm.
    AlarmAck,
    /// An operator bookmarked a moment of a camera's footage.
    BookmarkAdd,
    /// A bookmark was deleted (by its author or an admin).
    BookmarkDelete,
}

impl Action {
    /// The stable name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::Logout => "logout",
            Action::LiveView => "live_view",
            Action::Playback => "playback",
            Action::Export => "export",
            Action::UserAdd => "user_add",
            Action::UserUpdate => "user_update",
            Action::UserRemove => "user_remove",
            Action::CameraChange => "camera_change",
            Action::Snapshot => "snapshot",
            Action::ExportDownload => "export_download",
            Action::RetentionDelete => "retention_delete",
            Action::ExportExpire => "export_expire",
            Action::TotpEnable => "totp_enable",
            Action::TotpDisable => "totp_disable",
            Action::TotpReset => "totp_reset",
            Action::RecoveryCodeUsed => "recovery_code_used",
            Action::RecoveryCodesRenewed => "recovery_codes_renewed",
            Action::SetupRefused => "setup_refused",
            Action::HoldCreate => "hold_create",
            Action::HoldRelease => "hold_release",
            Action::Ptz => "ptz",
            Action::Backup => "backup",
            Action::AlarmAck => "alarm_ack",
            Action::BookmarkAdd => "bookmark_add",
            Action::BookmarkDelete => "bookmark_delete",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Action> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// A new entry, before it is numbered and chained.
#[derive(Clone, Debug)]
pub struct Event {
    /// Who: a user name, `cli` for the command line, or the name tried at a failed login.
    pub actor: String,
    /// What.
    pub action: Action,
    /// On what: a camera id, a user name, or empty.
    pub target: String,
    /// From where: the client address, or `cli`.
    pub client: String,
    /// Free text with the particulars (time range, role...). Never credentials.
    pub detail: String,
    /// The actor's role when it happened (`admin`, `operator`, `viewer`), for a signed-in
    /// user; `None` for the command line, the system and failed logins. Kept because a
    /// role can change later, and a review asks what the person was allowed then.
    pub role: Option<String>,
}

/// The hashed part of an entry. Field order is the hash input's order, so
/// never reorder these fields: old entries would stop verifying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    seq: u64,
    time_ns: i64,
    actor: String,
    action: Action,
    target: String,
    client: String,
    detail: String,
    prev: String,
    /// Last and left out when absent, so entries written before roles were recorded
    /// hash as they always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

/// One stored entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// When, ns since the epoch.
    pub time_ns: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: Action,
    /// On what.
    pub target: String,
    /// From where.
    pub client: String,
    /// Particulars.
    pub detail: String,
    /// The actor's role then ([`Event::role`]); absent on entries written before roles
    /// were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Hash of the previous entry (hex), [`GENESIS`] for the first.
    pub prev: String,
    /// SHA-256 (hex) of this entry's other fields.
    pub hash: String,
    /// HMAC-SHA256 (hex) of `hash` under the audit key; absent on entries written before
    /// the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Entry {
    /// The SHA-256 (hex) of this entry's fields as they are now: what anyone can
    /// recompute, key or no key (the attacker in tamper tests does).
    pub fn compute_hash(&self) -> String {
        hash_body(&self.body())
    }

    fn body(&self) -> Body {
        Body {
            seq: self.seq,
            time_ns: self.time_ns,
            actor: self.actor.clone(),
            action: self.action,
            target: self.target.clone(),
            client: self.client.clone(),
            detail: self.detail.clone(),
            prev: self.prev.clone(),
            role: self.role.clone(),
        }
    }
}

fn hash_body(b: &Body) -> String {
    // serde_json writes struct fields in declaration order with no
    // whitespace, which makes it a stable canonical form for these fields.
    let bytes = serde_json::to_vec(b).expect("audit body serializes");
    hex::encode(Sha256::digest(bytes))
}

/// Where the chain breaks, as found by [`AuditLog::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The sequence number (key) of the first entry that does not verify.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit chain broken at entry {}: {}",
            self.seq, self.reason
        )
    }
}

/// Result of walking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries that verified before the first break (all of them when intact).
    pub verified: u64,
    /// The first broken link, if any.
    pub broken: Option<Broken>,
    /// The first entry the audit key covers: entries before it were written before the
    /// key existed and are checked by their hash chain only.
    pub keyed_from: u64,
    /// Signed checkpoints found and checked (0 when no signing key is attached).
    pub checkpoints: u64,
    /// The newest checkpoint, to compare with the copy in the log (syslog).
    pub last_checkpoint: Option<checkpoint::Checkpoint>,
}

/// Filters for [`AuditLog::query`]; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<Action>,
    /// Exact target.
    pub target: Option<String>,
    /// Entries at or after this time (ns).
    pub since_ns: Option<i64>,
    /// Entries before this time (ns).
    pub until_ns: Option<i64>,
    /// Only entries with `seq` below this (for paging backwards).
    pub before_seq: Option<u64>,
}

/// The audit log tree.
pub struct AuditLog {
    db: sled::Db,
    tree: sled::Tree,
    key: key::Key,
    /// Next sequence number and the hash it must point back to. Appends
    /// hold this lock so two requests can never chain to the same entry.
    head: Mutex<(u64, String)>,
    /// Unit tests only: makes every append fail, as a full or failing disk would (no
    /// peer can make sled's write fail on demand).
    #[cfg(test)]
    pub(crate) fail_writes: std::sync::atomic::AtomicBool,
    /// Signed checkpoints, keyed by the sequence number they cover.
    checkpoints: sled::Tree,
    /// The export signing key, once attached ([`AuditLog::sign_with`]).
    signer: std::sync::OnceLock<crate::export::signing::Signer>,
    /// The newest entry a checkpoint covers (none yet: `None`).
    last_signed: Mutex<Option<u64>>,
}

impl AuditLog {
    /// Opens the `audit` tree of `db` with the audit key of `storage_dir`
    /// ([`key::path`]), creating the key on first use: it then covers every entry from
    /// the next one on (earlier entries stay checked by their hash chain only).
    pub fn open(db: &sled::Db, storage_dir: &Path) -> anyhow::Result<AuditLog> {
        let tree = db.open_tree("audit")?;
        let head = match tree.last()? {
            None => (0, GENESIS.to_owned()),
            Some((k, v)) => {
                let seq = key_seq(&k).context("corrupt audit key")?;
                // A damaged last entry still gets chained to (by the hash of
                // its raw bytes); `verify` will report the damage itself.
                let hash = serde_json::from_slice::<Entry>(&v)
                    .map(|e| e.hash)
                    .unwrap_or_else(|_| hex::encode(Sha256::digest(&v)));
                (seq + 1, hash)
            }
        };
        let path = key::path(storage_dir);
        let key = match key::Key::load(&path)? {
            Some(k) => k,
            None => {
                let keyed =
                    tree.iter().values().flatten().any(|v| {
                        serde_json::from_slice::<Entry>(&v).is_ok_and(|e| e.mac.is_some())
                    });
                if keyed {
                    tracing::error!(
                        key = %path.display(),
                        "the audit key file is missing but the audit log has keyed entries: \
                         a new key covers entries from {} on, and `audit verify` will report \
                         the earlier keyed entries as unverifiable; restore the key file from \
                         a backup instead if you have one",
                        head.0
                    );
                } else if head.0 > 0 {
                    tracing::info!(
                        key = %path.display(),
                        "audit log keyed from entry {} on; the {} earlier entries were \
                         written without a key and are checked by their hash chain only",
                        head.0,
                        head.0
                    );
                }
                key::Key::create(&path, head.0)?
            }
        };
        let checkpoints = db.open_tree("audit_checkpoints")?;
        let last_signed = checkpoints.last()?.and_then(|(k, _)| key_seq(&k));
        Ok(AuditLog {
            db: db.clone(),
            tree,
            key,
            head: Mutex::new(head),
            #[cfg(test)]
            fail_writes: Default::default(),
            checkpoints,
            signer: Default::default(),
            last_signed: Mutex::new(last_signed),
        })
    }

    /// Attaches the server's Ed25519 signing key: from now on the chain head is signed
    /// every [`checkpoint::EVERY`] entries and whenever [`AuditLog::checkpoint`] is
    /// called, and `verify` checks the stored checkpoints against it.
    pub fn sign_with(&self, signer: crate::export::signing::Signer) {
        let _ = self.signer.set(signer);
    }

    /// Signs, stores and logs a checkpoint of the chain head if it moved since the last
    /// one (and a key is attached); returns it.
    pub fn checkpoint(&self, now_ns: i64) -> anyhow::Result<Option<checkpoint::Checkpoint>> {
        let Some(signer) = self.signer.get() else {
            return Ok(None);
        };
        let (next, hash) = self.head.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(seq) = next.checked_sub(1) else {
            return Ok(None);
        };
        let mut last = self.last_signed.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|l| l >= seq) {
            return Ok(None);
        }
        let cp = checkpoint::Checkpoint::sign(signer, seq, &hash, now_ns);
        self.checkpoints
            .insert(seq_key(seq), serde_json::to_vec(&cp)?)
            .context("writing audit checkpoint")?;
        self.db.flush().context("flushing audit checkpoint")?;
        *last = Some(seq);
        tracing::info!(checkpoint = %cp.log_line(), "audit checkpoint");
        Ok(Some(cp))
    }

    /// The key's file and the first entry it covers.
    pub fn key(&self) -> (&Path, u64) {
        (&self.key.path, self.key.from_seq)
    }

    /// Appends an entry at `time_ns` and makes it durable before returning,
    /// so an action is never reported done without its record.
    pub fn append(&self, time_ns: i64, ev: Event) -> anyhow::Result<Entry> {
        #[cfg(test)]
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("writing audit entry: injected failure (test)");
        }
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        let body = Body {
            seq: head.0,
            time_ns,
            actor: ev.actor,
            action: ev.action,
            target: ev.target,
            client: ev.client,
            detail: ev.detail,
            prev: head.1.clone(),
            role: ev.role,
        };
        let hash = hash_body(&body);
        let entry = Entry {
            seq: body.seq,
            time_ns: body.time_ns,
            actor: body.actor,
            action: body.action,
            target: body.target,
            client: body.client,
            detail: body.detail,
            prev: body.prev,
            role: body.role,
            mac: Some(self.key.mac(&hash)),
            hash: hash.clone(),
        };
        self.tree
            .insert(seq_key(entry.seq), serde_json::to_vec(&entry)?)
            .context("writing audit entry")?;
        self.db.flush().context("flushing audit entry")?;
        *head = (entry.seq + 1, hash);
        drop(head);
        if (entry.seq + 1).is_multiple_of(checkpoint::EVERY) {
            // The entry is written; a checkpoint that fails is logged, not the action's failure.
            if let Err(e) = self.checkpoint(time_ns) {
                tracing::error!(error = %format!("{e:#}"), seq = entry.seq, "signing an audit checkpoint");
            }
        }
        Ok(entry)
    }

    /// Walks the whole chain from the first entry and reports the first
    /// entry that was edited, removed, reordered, is unreadable, or does not
    /// carry a valid MAC under the audit key.
    pub fn verify(&self) -> anyhow::Result<Verification> {
        let mut prev = GENESIS.to_owned();
        let mut expect = 0u64;
        let from = self.key.from_seq;
        // Signed checkpoints, checked against the server's key where one is attached.
        let public = self.signer.get().map(|s| s.public_key());
        let mut cps = std::collections::BTreeMap::new();
        if public.is_some() {
            for item in self.checkpoints.iter() {
                let (k, v) = item?;
                let seq = key_seq(&k).context("corrupt audit checkpoint key")?;
                cps.insert(
                    seq,
                    serde_json::from_slice::<checkpoint::Checkpoint>(&v).ok(),
                );
            }
        }
        let checkpoints = cps.len() as u64;
        let last_checkpoint = cps.values().next_back().cloned().flatten();
        for item in self.tree.iter() {
            let (k, v) = item?;
            let broken = |seq: u64, reason: String| {
                Ok(Verification {
                    verified: expect,
                    broken: Some(Broken { seq, reason }),
                    keyed_from: from,
                    checkpoints,
                    last_checkpoint: last_checkpoint.clone(),
                })
            };
            let Some(seq) = key_seq(&k) else {
                return broken(expect, "malformed key".into());
            };
            if seq != expect {
                return broken(expect, format!("entry missing (next entry is {seq})"));
            }
            let entry: Entry = match serde_json::from_slice(&v) {
                Ok(e) => e,
                Err(e) => return broken(seq, format!("unreadable: {e}")),
            };
            if entry.seq != seq {
                return broken(seq, format!("stored under {seq} but says {}", entry.seq));
            }
            if entry.prev != prev {
                return broken(seq, "does not point to the previous entry".into());
            }
            if hash_body(&entry.body()) != entry.hash {
                return broken(seq, "contents do not match its hash".into());
            }
            match (&entry.mac, seq >= from) {
                (Some(mac), true) if !self.key.check(&entry.hash, mac) => {
                    return broken(
                        seq,
                        "its MAC does not match: edited (and re-hashed) by someone without \
                         the audit key, or written with another key"
                            .into(),
                    )
                }
                (None, true) => {
                    return broken(
                        seq,
                        format!(
                            "has no MAC although the audit key covers entries from {from} \
                             on: edited by someone without the key"
                        ),
                    )
                }
                (Some(_), false) => {
                    return broken(
                        seq,
                        format!(
                            "has a MAC but the audit key ({}) covers only entries from {from} \
                             on: the key file was replaced, so this entry cannot be checked",
                            self.key.path.display()
                        ),
                    )
                }
                _ => {}
            }
            if let (Some(cp), Some(public)) = (cps.get(&seq), &public) {
                let Some(cp) = cp else {
                    return broken(seq, "its signed checkpoint is unreadable".into());
                };
                if let Err(why) = cp.check(public) {
                    return broken(
                        seq,
                        format!("the checkpoint signed for it is forged: {why}"),
                    );
                }
                if cp.hash != entry.hash || cp.seq != seq {
                    return broken(
                        seq,
                        format!(
                            "does not match the checkpoint signed at {}: the chain up to \
                             here was rewritten after it was signed",
                            crate::clock::rfc3339(cp.time_ns)
                        ),
                    );
                }
            }
            prev = entry.hash;
            expect += 1;
        }
        if let Some((&seq, _)) = cps.range(expect..).next() {
            return Ok(Verification {
                verified: expect,
                broken: Some(Broken {
                    seq: expect,
                    reason: format!(
                        "entries {expect} to {seq} are missing: a signed checkpoint covers \
                         entry {seq}, so the newest entries were cut off"
                    ),
                }),
                keyed_from: from,
                checkpoints,
                last_checkpoint,
            });
        }
        if expect < from {
            return Ok(Verification {
                verified: expect,
                broken: Some(Broken {
                    seq: expect,
                    reason: format!(
                        "entries {expect} to {} are missing: the chain had {from} entries \
                         when the audit key was made",
                        from - 1
                    ),
                }),
                keyed_from: from,
                checkpoints,
                last_checkpoint,
            });
        }
        Ok(Verification {
            verified: expect,
            broken: None,
            keyed_from: from,
            checkpoints,
            last_checkpoint,
        })
    }

    /// Newest-first entries matching `f`, at most `limit`.
    pub fn query(&self, f: &Filter, limit: usize) -> anyhow::Result<Vec<Entry>> {
        let end = f.before_seq.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for item in self.tree.range(..seq_key(end)).rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            let Ok(e) = serde_json::from_slice::<Entry>(&v) else {
                continue; // `verify` reports damage; a listing shows what it can
            };
            if f.until_ns.is_some_and(|t| e.time_ns >= t) {
                continue;
            }
            if f.since_ns.is_some_and(|t| e.time_ns < t) {
                // Entries are appended in time order (barring clock steps),
                // so nothing older can match either.
                break;
            }
            if f.actor.as_ref().is_some_and(|a| *a != e.actor)
                || f.action.is_some_and(|a| a != e.action)
                || f.target.as_ref().is_some_and(|t| *t != e.target)
            {
                continue;
            }
            out.push(e);
        }
        Ok(out)
    }

    /// Calls `f` with every readable entry written in `[since_ns, until_ns)`, newest
    /// first, without holding them all (a report over a year of entries).
    pub fn scan(
        &self,
        since_ns: i64,
        until_ns: i64,
        mut f: impl FnMut(&Entry),
    ) -> anyhow::Result<()> {
        for item in self.tree.iter().rev() {
            let (_, v) = item?;
            let Ok(e) = serde_json::from_slice::<Entry>(&v) else {
                continue; // `verify` reports damage
            };
            if e.time_ns >= until_ns {
                continue;
            }
            if e.time_ns < since_ns {
                // Appended in time order (barring clock steps), as in `query`.
                break;
            }
            f(&e);
        }
        Ok(())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the log has no entries.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Raw access for tamper tests and forensic tools: the stored bytes of entry `seq`.
    pub fn raw(&self, seq: u64) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.tree.get(seq_key(seq))?.map(|v| v.to_vec()))
    }

    /// Overwrites the stored bytes of entry `seq`. Exists only so tests can
    /// play the attacker; nothing in the product calls it.
    #[doc(hidden)]
    pub fn tamper(&self, seq: u64, bytes: &[u8]) -> anyhow::Result<()> {
        self.tree.insert(seq_key(seq), bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// Removes entry `seq` without re-chaining; for tamper tests only.
    #[doc(hidden)]
    pub fn tamper_remove(&self, seq: u64) -> anyhow::Result<()> {
        self.tree.remove(seq_key(seq))?;
        self.db.flush()?;
        Ok(())
    }
}

/// Remembers when an entry was last written per key, so a burst of the same viewing (a
/// player's range requests, a page fetching stills) makes one entry, not hundreds.
#[derive(Debug, Default)]
pub struct Recent {
    seen: Mutex<std::collections::HashMap<String, i64>>,
}

impl Recent {
    /// Whether to write an entry for `key` at `now_ns`: false if one was written within
    /// `window_ns`. Remembers `now_ns` when it says yes.
    pub fn should_record(&self, key: String, now_ns: i64, window_ns: i64) -> bool {
        let mut m = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(&key).is_some_and(|t| now_ns - t < window_ns) {
            return false;
        }
        if m.len() > 10_000 {
            m.retain(|_, t| now_ns - *t < window_ns);
        }
        m.insert(key, now_ns);
        true
    }
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn key_seq(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(actor: &str, action: Action) -> Event {
        Event {
            actor: actor.into(),
            action,
            target: String::new(),
            client: "127.0.0.1".into(),
            detail: String::new(),
            role: None,
        }
    }

    fn log() -> (tempfile::TempDir, sled::Db, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        let log = AuditLog::open(&db, dir.path()).unwrap();
        (dir, db, log)
    }

    /// The attacker who can write the index: edits entry `seq` with `edit` and re-hashes
    /// it and every later entry so the hash chain is consistent again (MACs untouched:
    /// without the key they cannot be recomputed).
    fn edit_and_rehash(log: &AuditLog, seq: u64, edit: impl FnOnce(&mut Entry)) {
        let mut e: Entry = serde_json::from_slice(&log.raw(seq).unwrap().unwrap()).unwrap();
        edit(&mut e);
        let mut s = seq;
        loop {
            e.hash = e.compute_hash();
            log.tamper(s, &serde_json::to_vec(&e).unwrap()).unwrap();
            s += 1;
            let Some(raw) = log.raw(s).unwrap() else {
                break;
            };
            let prev = e.hash;
            e = serde_json::from_slice(&raw).unwrap();
            e.prev = prev;
        }
    }

    #[test]
    fn chain_verifies_and_survives_reopen() {
        let (_d, db, log) = log();
        for i in 0..5 {
            log.append(i, ev("alice", Action::Login)).unwrap();
        }
        assert_eq!(
            log.verify().unwrap(),
            Verification {
                verified: 5,
                broken: None,
                keyed_from: 0,
                checkpoints: 0,
                last_checkpoint: None,
            }
        );
        drop(log);
        let log = AuditLog::open(&db, _d.path()).unwrap();
        let e = log.append(9, ev("bob", Action::Logout)).unwrap();
        assert_eq!(e.seq, 5);
        assert_eq!(log.verify().unwrap().verified, 6);
        let first = log.query(&Filter::default(), 1).unwrap();
        assert_eq!(first[0].seq, 5, "newest first");
    }

    #[test]
    fn the_role_then_is_hashed_and_entries_without_one_hash_as_before() {
        let (_d, _db, log) = log();
        let mut e = ev("olive", Action::Playback);
        e.role = Some("operator".into());
        log.append(1, e).unwrap();
        log.append(2, ev("cli", Action::Export)).unwrap();
        let stored: Entry = serde_json::from_slice(&log.raw(0).unwrap().unwrap()).unwrap();
        assert_eq!(stored.role.as_deref(), Some("operator"));
        // An entry without a role hashes exactly the fields an older cleannvr hashed, in
        // that order (written out here, not derived from `Body`).
        let old: Entry = serde_json::from_slice(&log.raw(1).unwrap().unwrap()).unwrap();
        let old_json = format!(
            "{{\"seq\":1,\"time_ns\":2,\"actor\":\"cli\",\"action\":\"export\",\"target\":\"\",\
             \"client\":\"127.0.0.1\",\"detail\":\"\",\"prev\":\"{}\"}}",
            stored.hash
        );
        assert_eq!(old.hash, hex::encode(Sha256::digest(old_json.as_bytes())));
        // Promoting the actor after the fact breaks the chain at that entry.
        let mut forged = stored.clone();
        forged.role = Some("admin".into());
        log.tamper(0, &serde_json::to_vec(&forged).unwrap())
            .unwrap();
        let v = log.verify().unwrap();
        assert_eq!((v.verified, v.broken.map(|b| b.seq)), (0, Some(0)));
    }

    #[test]
    fn edited_entry_breaks_chain_at_that_entry() {
        let (_d, _db, log) = log();
        for i in 0..4 {
            log.append(i, ev("alice", Action::Login)).unwrap();
        }
        let mut e: Entry = serde_json::from_slice(&log.raw(2).unwrap().unwrap()).unwrap();
        e.actor = "mallory".into();
        log.tamper(2, &serde_json::to_vec(&e).unwrap()).unwrap();
        let v = log.verify().unwrap();
        assert_eq!(v.verified, 2);
        assert_eq!(v.broken.unwrap().seq, 2);
    }

    #[test]
    fn rehashed_entry_breaks_the_next_link() {
        let (_d, _db, log) = log();
        for i in 0..4 {
            log.append(i, ev("alice", Action::Login)).unwrap();
        }
        // A careful attacker recomputes the edited entry's own hash; its MAC
        // no longer matches (and the next entry still points at the old hash).
        let mut e: Entry = serde_json::from_slice(&log.raw(1).unwrap().unwrap()).unwrap();
        e.action = Action::Logout;
        e.hash = hash_body(&e.body());
        log.tamper(1, &serde_json::to_vec(&e).unwrap()).unwrap();
        let b = log.verify().unwrap().broken.unwrap();
        assert_eq!(b.seq, 1);
        assert!(b.reason.contains("MAC"), "{}", b.reason);
    }

    #[test]
    fn edited_and_rehashed_chain_fails_on_the_mac() {
        let (_d, _db, log) = log();
        for i in 0..5 {
            log.append(i, ev("alice", Action::Export)).unwrap();
        }
        edit_and_rehash(&log, 2, |e| e.actor = "mallory".into());
        // The hash chain is consistent again...
        let e3: Entry = serde_json::from_slice(&log.raw(3).unwrap().unwrap()).unwrap();
        let e2: Entry = serde_json::from_slice(&log.raw(2).unwrap().unwrap()).unwrap();
        assert_eq!(e3.prev, e2.hash);
        assert_eq!(e2.compute_hash(), e2.hash);
        // ...but the MAC of the edited entry is not.
        let b = log.verify().unwrap().broken.unwrap();
        assert_eq!(b.seq, 2);
        assert!(b.reason.contains("MAC"), "{}", b.reason);
        // Stripping the MACs does not pass entries off as unkeyed ones.
        edit_and_rehash(&log, 0, |e| e.mac = None);
        let b = log.verify().unwrap().broken.unwrap();
        assert_eq!(b.seq, 0);
        assert!(b.reason.contains("no MAC"), "{}", b.reason);
    }

    #[test]
    fn unkeyed_chain_is_migrated_and_old_entries_stay_checked() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        // Three entries as an older cleannvr wrote them: chained, no MAC.
        let tree = db.open_tree("audit").unwrap();
        let mut prev = GENESIS.to_owned();
        for seq in 0..3u64 {
            let mut e = Entry {
                seq,
                time_ns: seq as i64,
                actor: "old".into(),
                action: Action::Login,
                target: String::new(),
                client: "cli".into(),
                detail: String::new(),
                prev: prev.clone(),
                hash: String::new(),
                mac: None,
                role: None,
            };
            e.hash = e.compute_hash();
            prev = e.hash.clone();
            tree.insert(seq_key(seq), serde_json::to_vec(&e).unwrap())
                .unwrap();
        }
        let log = AuditLog::open(&db, dir.path()).unwrap();
        assert_eq!(log.key().1, 3, "keyed from the first new entry");
        for i in 0..2 {
            log.append(10 + i, ev("new", Action::Login)).unwrap();
        }
        let v = log.verify().unwrap();
        assert_eq!((v.verified, v.keyed_from), (5, 3));
        assert!(v.broken.is_none(), "{:?}", v.broken);
        // Reopening keeps the key and where it starts.
        drop(log);
        let log = AuditLog::open(&db, dir.path()).unwrap();
        assert_eq!(log.key().1, 3);
        // An old entry edited and the chain re-hashed: caught at the first keyed entry.
        edit_and_rehash(&log, 1, |e| e.actor = "mallory".into());
        let b = log.verify().unwrap().broken.unwrap();
        assert_eq!(b.seq, 3, "{}", b.reason);
        // Cutting the chain back to before the key: caught too.
        for s in 1..5 {
            log.tamper_remove(s).unwrap();
        }
        let b = log.verify().unwrap().broken.unwrap();
        assert!(b.reason.contains("missing"), "{}", b.reason);
    }

    #[test]
    fn a_replaced_key_cannot_vouch_for_older_entries() {
        let (d, db, log) = log();
        log.append(0, ev("alice", Action::Login)).unwrap();
        drop(log);
        std::fs::remove_file(key::path(d.path())).unwrap();
        let log = AuditLog::open(&db, d.path()).unwrap();
        log.append(1, ev("alice", Action::Login)).unwrap();
        let b = log.verify().unwrap().broken.unwrap();
        assert_eq!(b.seq, 0);
        assert!(b.reason.contains("key file was replaced"), "{}", b.reason);
    }

    #[test]
    fn removed_or_garbled_entries_are_found() {
        let (_d, _db, log) = log();
        for i in 0..4 {
            log.append(i, ev("alice", Action::Login)).unwrap();
        }
        log.tamper(3, b"not json").unwrap();
        assert_eq!(log.verify().unwrap().broken.unwrap().seq, 3);
        log.tamper_remove(1).unwrap();
        let b = log.verify().unwrap().broken.unwrap();
        assert_eq!(b.seq, 1);
        assert!(b.reason.contains("missing"), "{}", b.reason);
    }

    #[test]
    fn recent_deduplicates_within_the_window() {
        let r = Recent::default();
        assert!(r.should_record("a".into(), 0, 10));
        assert!(!r.should_record("a".into(), 9, 10));
        assert!(r.should_record("b".into(), 9, 10));
        assert!(r.should_record("a".into(), 10, 10));
    }

    #[test]
    fn query_filters() {
        let (_d, _db, log) = log();
        log.append(10, ev("alice", Action::Login)).unwrap();
        log.append(20, ev("bob", Action::LoginFailed)).unwrap();
        log.append(30, ev("alice", Action::Logout)).unwrap();
        let f = Filter {
            actor: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(log.query(&f, 10).unwrap().len(), 2);
        let f = Filter {
            since_ns: Some(15),
            until_ns: Some(30),
            ..Default::default()
        };
        let got = log.query(&f, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action, Action::LoginFailed);
        assert_eq!(Action::parse("login_failed"), Some(Action::LoginFailed));
        assert_eq!(Action::parse("nope"), None);
    }

    #[test]
    fn signed_checkpoints_catch_a_chain_rewritten_with_the_audit_key() {
        let (d, _db, log) = log();
        let signer =
            crate::export::signing::Signer::load_or_create(&d.path().join("elsewhere/sign.key"))
                .unwrap();
        log.sign_with(signer.clone());
        for i in 0..250 {
            log.append(i, ev("alice", Action::Login)).unwrap();
        }
        // Every 100 entries, and on demand (the server's minute timer) when the head moved.
        assert_eq!(log.checkpoint(300).unwrap().unwrap().seq, 249);
        assert!(log.checkpoint(301).unwrap().is_none(), "head unchanged");
        let v = log.verify().unwrap();
        assert_eq!((v.broken, v.checkpoints), (None, 3));
        assert_eq!(v.last_checkpoint.unwrap().key, signer.fingerprint());

        // The attacker holds the index and the audit HMAC key (same volume) but not the
        // signing key: edits entry 50, re-hashes and re-MACs everything after it.
        let key = key::Key::load(&key::path(d.path())).unwrap().unwrap();
        let mut e: Entry = serde_json::from_slice(&log.raw(50).unwrap().unwrap()).unwrap();
        e.actor = "mallory".into();
        let mut s = 50;
        loop {
            e.hash = e.compute_hash();
            e.mac = Some(key.mac(&e.hash));
            log.tamper(s, &serde_json::to_vec(&e).unwrap()).unwrap();
            s += 1;
            let Some(raw) = log.raw(s).unwrap() else {
                break;
            };
            let prev = e.hash;
            e = serde_json::from_slice(&raw).unwrap();
            e.prev = prev;
        }
        // Without checkpoints the rewrite would pass: hashes and MACs are all consistent.
        let v = log.verify().unwrap();
        let b = v.broken.expect("a rewritten chain must fail");
        assert_eq!(b.seq, 99, "{b}");
        assert!(b.reason.contains("rewritten after it was signed"), "{b}");

        // Re-signing the checkpoints with another key (the attacker's) does not help.
        let forger =
            crate::export::signing::Signer::load_or_create(&d.path().join("forger.key")).unwrap();
        for seq in [99u64, 199, 249] {
            let e: Entry = serde_json::from_slice(&log.raw(seq).unwrap().unwrap()).unwrap();
            let cp = checkpoint::Checkpoint::sign(&forger, seq, &e.hash, 1);
            log.checkpoints
                .insert(seq_key(seq), serde_json::to_vec(&cp).unwrap())
                .unwrap();
        }
        let b = log.verify().unwrap().broken.unwrap();
        assert!(b.reason.contains("forged"), "{b}");

        // Cutting off the newest entries shows against a later checkpoint.
        let (_d2, _db2, log2) = self::log();
        log2.sign_with(signer);
        for i in 0..120 {
            log2.append(i, ev("alice", Action::Login)).unwrap();
        }
        for seq in 90..120 {
            log2.tamper_remove(seq).unwrap();
        }
        let b = log2.verify().unwrap().broken.unwrap();
        assert!(b.reason.contains("cut off"), "{b}");
    }
}
