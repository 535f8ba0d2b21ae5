//! Store: the `sled` index of segment files, retention and consistency checks.
//!
//! The index is a cache of the files: every row can be rebuilt from the
//! segment files alone (`cleannvr check --repair`). Files are always made
//! durable before their row is committed, and deleted before their row is
//! removed, so a crash leaves at worst a file without a row (found by
//! `check`), never a row promising footage that is not there for long.
//!
//! # When the index stops accepting writes
//!
//! sled 0.34 keeps the first I/O error its log writer meets (ENOSPC on a full
//! volume, EIO) as a global error, and from then on refuses every write, with
//! that same error, until the database is reopened (`set_global_error` in
//! `pagecache/iobuf.rs`; only `PageCache::start` resets it). Space coming back
//! does not help. The store notes such an error ([`Store::failure`]); the
//! recorders keep writing segment files, which describe themselves, and the
//! server reopens the index by re-executing itself (`nvr`), after which
//! [`check::recover_all`] indexes every segment file the index lacks.

pub mod check;
pub mod days;
pub mod bookmarks;
pub mod events;
pub mod holds;
pub mod keyfile;
pub mod media;
pub mod reserve;
pub mod retention;
pub mod states;
pub mod thumbs;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One finished segment file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// Camera id.
    pub camera: String,
    /// Wall time of the first frame, ns since the epoch (millisecond precision, as in the file name).
    pub start_ns: i64,
    /// Wall time just after the last frame, ns since the epoch.
    pub end_ns: i64,
    /// Path relative to the storage directory, `/`-separated.
    pub path: String,
    /// File size in bytes.
    pub bytes: u64,
    /// RFC 6381 codec string, e.g. `avc1.4D401E` (derivable from the file's sample entry).
    pub codec: String,
    /// Video width.
    pub width: u16,
    /// Video height.
    pub height: u16,
    /// Video frames in the file.
    pub frames: u64,
    /// Whether the file has an audio track.
    pub has_audio: bool,
    /// Seek points: (90 kHz time from segment start, byte offset of the `moof`) for each fragment starting with a key frame.
    pub keyframes: Vec<(u64, u64)>,
    /// Camera clock minus wall clock at the end of the segment, ms.
    pub drift_ms: i64,
    /// Set once the segment is uploaded to the archive tier and verified there; the
    /// local copy may then be gone (see [`media`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<Archived>,
}

/// Where an archived segment is and what its bytes hash to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    /// Object key in the archive bucket.
    pub key: String,
    /// SHA-256 (hex) of the object, checked against the local file after upload.
    pub sha256: String,
}

/// The index's layout version. Raise it with a migration step in [`schema`] whenever
/// a tree's layout changes; an older index is migrated forward on open, a newer one
/// refused (an older build could misread it).
pub const SCHEMA_VERSION: u64 = 2;
/// The tree holding the schema version.
pub const META_TREE: &str = "meta";
/// The key of the schema version (a big-endian u64) in [`META_TREE`].
pub const SCHEMA_KEY: &str = "schema_version";
/// The key of the index's random id ([`Store::instance_id`]) in [`META_TREE`].
const INSTANCE_KEY: &str = "instance_id";

/// Reads the index's schema version, migrates it forward to [`SCHEMA_VERSION`],
/// or refuses an index from a newer cleannvr. `dir` is the storage directory (keys).
fn schema(db: &sled::Db, dir: &Path) -> anyhow::Result<()> {
    let meta = db.open_tree(META_TREE)?;
    // Indexes from before the version was recorded are version 0.
    let found = match meta.get(SCHEMA_KEY)? {
        None => 0,
        Some(v) => u64::from_be_bytes(
            v.as_ref()
                .try_into()
                .context("the schema version is not 8 bytes")?,
        ),
    };
    anyhow::ensure!(
        found <= SCHEMA_VERSION,
        "it was written by a newer cleannvr (index schema version {found}; this is cleannvr {} \
         with schema version {SCHEMA_VERSION}): run that newer version, or restore a backup \
         made by this one; nothing was changed",
        env!("CARGO_PKG_VERSION")
    );
    if found < SCHEMA_VERSION {
        // 0 -> 1: only the version itself is new; no tree changed.
        // 1 -> 2: TOTP secrets in the users tree are sealed under `keys/totp.key`
        // (an older cleannvr would take a sealed secret for base32 and refuse every code).
        if found < 2 {
            let n = crate::auth::seal_stored_secrets(db, dir)?;
            if n > 0 {
                tracing::info!(users = n, "TOTP secrets in the index sealed");
            }
        }
        meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
        db.flush()?;
        if found > 0 {
            tracing::info!(from = found, to = SCHEMA_VERSION, "index migrated");
        }
    }
    Ok(())
}

/// Recorded bytes and segment count of one camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Sum of segment sizes.
    pub bytes: u64,
    /// Number of segments.
    pub segments: u64,
    /// Of those bytes, the ones held by the archive tier rather than the local disk.
    pub archived_bytes: u64,
}

impl Usage {
    fn add(&mut self, rec: &SegmentRecord) {
        self.bytes += rec.bytes;
        self.segments += 1;
        if rec.archived.is_some() {
            self.archived_bytes += rec.bytes;
        }
    }

    fn sub(&mut self, rec: &SegmentRecord) {
        self.bytes -= rec.bytes.min(self.bytes);
        self.segments = self.segments.saturating_sub(1);
        if rec.archived.is_some() {
            self.archived_bytes -= rec.bytes.min(self.archived_bytes);
        }
    }

    /// Bytes on the local disk.
    pub fn local_bytes(&self) -> u64 {
        self.bytes - self.archived_bytes.min(self.bytes)
    }
}

/// The segment index.
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    segments: sled::Tree,
    holds: holds::Holds,
    events: events::Events,
    bookmarks: bookmarks::Bookmarks,
    states: states::States,
    /// Delete intents: rows whose bytes are being deleted (see [`media`]).
    garbage: sled::Tree,
    /// The archive tier, once configured (see [`media::Remote`]).
    remote: std::sync::OnceLock<std::sync::Arc<dyn media::Remote>>,
    usage: Mutex<HashMap<String, Usage>>,
    /// Cached thumbnail bytes per segment ([`thumbs`]).
    thumbs: sled::Tree,
    /// Their sum per camera.
    thumb_usage: Mutex<HashMap<String, u64>>,
    /// Orders caching a thumbnail against deleting its segment's thumbnails ([`thumbs`]).
    thumb_lock: Mutex<()>,
    /// The error after which sled refuses writes, once one was seen (module docs).
    failure: Mutex<Option<String>>,
}

/// Whether sled stops accepting writes after `e` until the database is reopened:
/// every I/O error of its log writer does, and so do corruption and its own bugs.
pub fn breaks_index(e: &sled::Error) -> bool {
    matches!(
        e,
        sled::Error::Io(_) | sled::Error::Corruption { .. } | sled::Error::ReportableBug(_)
    )
}

/// sled's error for an index whose lock another open database holds (sled
/// wraps the flock error in its own message).
fn lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
}

/// Whether [`Store::open`] failed because the index is locked.
pub fn is_locked(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<sled::Error>().is_some_and(lock_busy))
}

impl Store {
    /// Opens (creating if needed) the index under `<dir>/index`.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating storage dir {}", dir.display()))?;
        // Recordings and the index (password hashes) are for this user
        // only. New files follow from the umask `cli::main` sets; this also
        // closes a directory an older version (or an operator) left open.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making storage dir {} private", dir.display()))?;
        }
        let config = sled::Config::new()
            .path(dir.join("index"))
            .mode(sled::Mode::LowSpace)
            // Every writer (index, auth, audit) flushes what must be durable
            // itself; sled's own 500 ms flusher only added an fsync and two
            // thread wake-ups per second to an idle server.
            .flush_every_ms(None);
        // A server stopped on a full volume must start again: give back the
        // reserve first if space is short, and once more if the open still
        // finds the volume full.
        reserve::release_if_short(dir)?;
        let db = match config.open() {
            Err(e) if reserve::is_full(&e) && reserve::release(dir)? => config.open(),
            r => r,
        }
        .map_err(|e| {
            let locked = lock_busy(&e);
            let e = anyhow::Error::from(e);
            if locked {
                e.context("another cleannvr is using this storage dir")
            } else {
                e
            }
        })
        .with_context(|| format!("opening index in {}", dir.display()))?;
        schema(&db, dir).with_context(|| format!("index in {}", dir.display()))?;
        let segments = db.open_tree("segments")?;
        let garbage = db.open_tree("garbage")?;
        let thumbs = db.open_tree(thumbs::TREE)?;
        let store = Store {
            dir: dir.to_owned(),
            holds: holds::Holds::open(&db)?,
            events: events::Events::open(&db)?,
            bookmarks: bookmarks::Bookmarks::open(&db)?,
            states: states::States::open(&db)?,
            db,
            segments,
            garbage,
            remote: std::sync::OnceLock::new(),
            usage: Mutex::new(HashMap::new()),
            thumbs,
            thumb_usage: Mutex::new(HashMap::new()),
            thumb_lock: Mutex::new(()),
            failure: Mutex::new(None),
        };
        store.recount()?;
        store.recount_thumbnails()?;
        store.collect_garbage()?;
        store.ensure_reserve(0);
        Ok(store)
    }

    /// Notes `e` if it leaves the index refusing writes ([`breaks_index`]), and
    /// passes it on.
    fn note(&self, e: sled::Error) -> sled::Error {
        if breaks_index(&e) {
            let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_none() {
                tracing::error!(
                    dir = %self.dir.display(),
                    error = %e,
                    "the index stopped accepting writes (sled refuses every write after an I/O \
                     error until it is reopened); segment files are still written and are \
                     indexed again when it reopens"
                );
                *f = Some(e.to_string());
            }
        }
        e
    }

    /// Why the index refuses writes until it is reopened, once it does. Writes made
    /// through the store are watched; [`Store::probe`] also catches writes made by
    /// others (users, audit, alarms) that met the error first.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tries one tiny write (not flushed: sled checks its global error before
    /// anything else) and returns [`Store::failure`].
    pub fn probe(&self) -> Option<String> {
        let r = self
            .db
            .open_tree(META_TREE)
            .and_then(|m| m.insert("probe", &[][..]));
        if let Err(e) = r {
            self.note(e);
        }
        self.failure()
    }

    /// Flushes the index, noting an error that breaks it.
    fn flush(&self) -> anyhow::Result<()> {
        self.db
            .flush()
            .map_err(|e| self.note(e))
            .context("flushing index")?;
        Ok(())
    }

    /// Whether the index has a row for the segment file at `rel` (a path as in
    /// [`SegmentRecord::path`]). A path that is not a segment's has none.
    pub fn has_file(&self, rel: &str) -> anyhow::Result<bool> {
        let mut parts = rel.split('/');
        let (Some(camera), Some(_day), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(false);
        };
        let Some(start_ns) = parse_segment_name(name) else {
            return Ok(false);
        };
        Ok(self.segments.contains_key(key(camera, start_ns))?)
    }

    /// Puts back the index reserve ([`reserve`]) if it is missing and there is
    /// room above `floor` (what retention keeps free); a failure is logged,
    /// never fatal (it only matters at the next start).
    pub fn ensure_reserve(&self, floor: u64) {
        if let Err(e) = reserve::ensure(&self.dir, floor) {
            tracing::warn!(error = %format!("{e:#}"), "writing the index reserve");
        }
    }

    /// Free space retention should keep above `floor` so a missing index
    /// reserve can be written back ([`reserve::extra_room`]).
    pub fn reserve_room(&self, floor: u64) -> u64 {
        reserve::extra_room(&self.dir, floor)
    }

    /// The underlying database, so users, sessions and the audit log live in
    /// trees of the same file (sled allows one opener per directory).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Legal holds on footage and exports (retention keeps what they cover).
    pub fn holds(&self) -> &holds::Holds {
        &self.holds
    }

    /// Events the cameras reported (motion, tamper, ...).
    pub fn events(&self) -> &events::Events {
        &self.events
    }

    /// Operators' bookmarks on footage.
    pub fn bookmarks(&self) -> &bookmarks::Bookmarks {
        &self.bookmarks
    }

    /// When each camera went offline or stopped being recorded, and why.
    pub fn states(&self) -> &states::States {
        &self.states
    }

    /// Bytes of each camera's footage that the holds in `held` keep (a segment
    /// overlapping a hold counts whole, with its cached thumbnails, once however many
    /// holds cover it).
    pub fn held_bytes(&self, held: &holds::Held) -> anyhow::Result<HashMap<String, u64>> {
        held.ranges
            .keys()
            .map(|camera| Ok((camera.clone(), self.held_bytes_of(held, camera)?)))
            .collect()
    }

    /// [`Store::held_bytes`] of one camera.
    pub fn held_bytes_of(&self, held: &holds::Held, camera: &str) -> anyhow::Result<u64> {
        let mut seen = std::collections::HashSet::new();
        let mut bytes = 0;
        for &(s, e) in held.ranges.get(camera).map_or(&[][..], |r| r.as_slice()) {
            for rec in self.segments(camera, s, e)? {
                if seen.insert(rec.start_ns) {
                    bytes += rec.bytes + self.thumbnail_bytes_of(&rec)?;
                }
            }
        }
        Ok(bytes)
    }

    /// This index's id: random, made at first use and kept with the rows, so it goes
    /// where the footage's index goes (a restored backup keeps it). The archive tier's
    /// owner marker names it, telling two nodes given the same prefix apart.
    pub fn instance_id(&self) -> anyhow::Result<String> {
        let meta = self.db.open_tree(META_TREE)?;
        if meta.get(INSTANCE_KEY)?.is_none() {
            let mut id = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
            // Of two callers at once, the first one's id stays.
            let _ = meta.compare_and_swap(
                INSTANCE_KEY,
                None::<&[u8]>,
                Some(hex::encode(id).as_bytes()),
            )?;
            self.db.flush()?;
        }
        let v = meta
            .get(INSTANCE_KEY)?
            .context("the index has no instance id")?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// The storage directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Absolute path of a record's local file. Readers open bytes through
    /// [`Store::open_segment`] instead: the file may have moved to the archive.
    pub fn file_path(&self, rec: &SegmentRecord) -> PathBuf {
        self.dir.join(&rec.path)
    }

    fn recount(&self) -> anyhow::Result<()> {
        let mut usage: HashMap<String, Usage> = HashMap::new();
        for item in self.segments.iter() {
            let (_, v) = item?;
            let rec = decode(&v)?;
            let u = usage.entry(rec.camera.clone()).or_default();
            u.add(&rec);
        }
        *self.usage.lock().unwrap_or_else(|e| e.into_inner()) = usage;
        Ok(())
    }

    /// Commits a row durably. Call only after the file and its directory are fsynced.
    pub fn insert(&self, rec: &SegmentRecord) -> anyhow::Result<()> {
        let key = key(&rec.camera, rec.start_ns);
        let old = self
            .segments
            .insert(key, serde_json::to_vec(rec)?)
            .map_err(|e| self.note(e))
            .with_context(|| format!("indexing {}", rec.path))?;
        self.flush()?;
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let u = usage.entry(rec.camera.clone()).or_default();
        if let Some(old) = old {
            let old = decode(&old)?;
            u.sub(&old);
        }
        u.add(rec);
        Ok(())
    }

    /// Commits many rows with one flush (bulk loads, index rebuilds). Call
    /// only after every file and its directory are fsynced.
    pub fn insert_batch(&self, recs: &[SegmentRecord]) -> anyhow::Result<()> {
        // The last row for a key wins, as with repeated `insert`s.
        let rows: HashMap<Vec<u8>, &SegmentRecord> = recs
            .iter()
            .map(|r| (key(&r.camera, r.start_ns), r))
            .collect();
        let mut batch = sled::Batch::default();
        let mut replaced = Vec::new();
        for (k, rec) in &rows {
            if let Some(old) = self.segments.get(k)? {
                replaced.push(decode(&old)?);
            }
            batch.insert(k.as_slice(), serde_json::to_vec(rec)?);
        }
        self.segments
            .apply_batch(batch)
            .map_err(|e| self.note(e))
            .context("indexing a batch")?;
        self.flush()?;
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        for old in replaced {
            let u = usage.entry(old.camera.clone()).or_default();
            u.sub(&old);
        }
        for rec in rows.values() {
            let u = usage.entry(rec.camera.clone()).or_default();
            u.add(rec);
        }
        Ok(())
    }

    /// Removes a row; call after its file is deleted.
    pub fn remove(&self, camera: &str, start_ns: i64) -> anyhow::Result<Option<SegmentRecord>> {
        let Some(old) = self
            .segments
            .remove(key(camera, start_ns))
            .map_err(|e| self.note(e))?
        else {
            return Ok(None);
        };
        self.flush()?;
        let old = decode(&old)?;
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = usage.get_mut(camera) {
            u.sub(&old);
        }
        Ok(Some(old))
    }

    /// Moves a row to the delete intents in one transaction (first step of
    /// [`Store::delete_segment`]); usage stops counting it at once.
    fn remove_to_garbage(
        &self,
        camera: &str,
        start_ns: i64,
    ) -> anyhow::Result<Option<SegmentRecord>> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let k = key(camera, start_ns);
        let old = (&self.segments, &self.garbage)
            .transaction(|(s, g)| {
                let old = s.remove(k.as_slice())?;
                if let Some(v) = &old {
                    g.insert(k.as_slice(), v.clone())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(old)
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => anyhow::Error::from(self.note(e)),
                TransactionError::Abort(()) => anyhow::anyhow!("aborted"),
            })
            .with_context(|| format!("camera {camera}: recording a delete intent"))?;
        let Some(old) = old else {
            return Ok(None);
        };
        self.flush()?;
        let old = decode(&old)?;
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = usage.get_mut(camera) {
            u.sub(&old);
        }
        Ok(Some(old))
    }

    /// Drops a delete intent once the bytes are gone.
    fn drop_garbage(&self, camera: &str, start_ns: i64) -> anyhow::Result<()> {
        if self
            .garbage
            .remove(key(camera, start_ns))
            .map_err(|e| self.note(e))?
            .is_some()
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Drops every row (before a rebuild from files).
    pub fn clear(&self) -> anyhow::Result<()> {
        self.segments.clear()?;
        self.db.flush()?;
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }

    /// Segments of `camera` overlapping `[start_ns, end_ns)`, oldest first.
    pub fn segments(
        &self,
        camera: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> anyhow::Result<Vec<SegmentRecord>> {
        let mut out = Vec::new();
        // The segment that started before `start_ns` may still cover it.
        if let Some(item) = self
            .segments
            .range(key(camera, i64::MIN)..key(camera, start_ns))
            .next_back()
        {
            let rec = decode(&item?.1)?;
            if rec.end_ns > start_ns {
                out.push(rec);
            }
        }
        let range = (
            Bound::Included(key(camera, start_ns)),
            Bound::Excluded(key(camera, end_ns)),
        );
        for item in self.segments.range(range) {
            out.push(decode(&item?.1)?);
        }
        Ok(out)
    }

    /// Segments of `camera` overlapping `[start_ns, end_ns)`, oldest first, one at a
    /// time (a year of one camera's rows is too much to hold at once for a report).
    pub fn segments_iter(
        &self,
        camera: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> impl Iterator<Item = anyhow::Result<SegmentRecord>> + '_ {
        // The segment that started before `start_ns` may still cover it.
        let before = self
            .segments
            .range(key(camera, i64::MIN)..key(camera, start_ns))
            .next_back()
            .map(|item| decode(&item?.1))
            .filter(|r| r.as_ref().map_or(true, |r| r.end_ns > start_ns));
        let range = (
            Bound::Included(key(camera, start_ns)),
            Bound::Excluded(key(camera, end_ns.max(start_ns))),
        );
        before
            .into_iter()
            .chain(self.segments.range(range).map(|item| decode(&item?.1)))
    }

    /// Every segment of `camera`, oldest first.
    pub fn iter_camera(
        &self,
        camera: &str,
    ) -> impl Iterator<Item = anyhow::Result<SegmentRecord>> + '_ {
        self.segments
            .range(key(camera, i64::MIN)..=key(camera, i64::MAX))
            .map(|item| decode(&item?.1))
    }

    /// The oldest segment of `camera`.
    pub fn oldest(&self, camera: &str) -> anyhow::Result<Option<SegmentRecord>> {
        self.iter_camera(camera).next().transpose()
    }

    /// The newest segment of `camera`.
    pub fn newest(&self, camera: &str) -> anyhow::Result<Option<SegmentRecord>> {
        match self
            .segments
            .range(key(camera, i64::MIN)..=key(camera, i64::MAX))
            .next_back()
        {
            Some(item) => Ok(Some(decode(&item?.1)?)),
            None => Ok(None),
        }
    }

    /// Recorded bytes and segments of every camera with recordings.
    pub fn usage(&self) -> HashMap<String, Usage> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn decode(v: &[u8]) -> anyhow::Result<SegmentRecord> {
    serde_json::from_slice(v).context("corrupt index row (run `cleannvr check --repair`)")
}

/// Index key: camera id, a NUL (never in an id), then the start time as
/// order-preserving big-endian bytes, so a prefix scan is time-ordered.
fn key(camera: &str, start_ns: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(camera.len() + 9);
    k.extend_from_slice(camera.as_bytes());
    k.push(0);
    k.extend_from_slice(&((start_ns as u64) ^ (1 << 63)).to_be_bytes());
    k
}

/// `<camera>/<YYYY-MM-DD>/<YYYYMMDDTHHMMSS.mmmZ>.mp4` for a segment starting at `start_ns` (UTC).
pub fn segment_rel_path(camera: &str, start_ns: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(start_ns as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let name = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
    );
    format!(
        "{camera}/{}/{}.mp4",
        t.format(&day).unwrap_or_default(),
        t.format(&name).unwrap_or_default()
    )
}

/// Parses the start time back out of a segment file name (`.mp4` or `.mp4.part`).
pub fn parse_segment_name(name: &str) -> Option<i64> {
    let stem = name
        .strip_suffix(".mp4.part")
        .or_else(|| name.strip_suffix(".mp4"))?;
    let f = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
    );
    let t = time::PrimitiveDateTime::parse(stem, &f).ok()?;
    // Years the i64 clock cannot hold (before 1677, after 2262) are refused: a
    // cast would index a planted `02250131T...` file as a 1978 recording.
    i64::try_from(t.assume_utc().unix_timestamp_nanos()).ok()
}

/// Rounds down to whole milliseconds: file names carry ms, and the index
/// must be rebuildable from names alone.
pub fn truncate_to_ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000) * 1_000_000
}

/// fsyncs a directory so a created, renamed or deleted entry survives power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A finished H.264 segment's row, for unit tests (25 fps, one key frame).
#[cfg(test)]
pub(crate) fn test_record(camera: &str, start_s: i64, len_s: i64, bytes: u64) -> SegmentRecord {
    let start_ns = start_s * 1_000_000_000;
    SegmentRecord {
        camera: camera.into(),
        start_ns,
        end_ns: start_ns + len_s * 1_000_000_000,
        path: segment_rel_path(camera, start_ns),
        bytes,
        codec: "avc1.42c01e".into(),
        width: 640,
        height: 360,
        frames: 25 * len_s as u64,
        has_audio: false,
        keyframes: vec![(0, 900)],
        drift_ms: 0,
        archived: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(camera: &str, start_s: i64, len_s: i64, bytes: u64) -> SegmentRecord {
        test_record(camera, start_s, len_s, bytes)
    }

    #[test]
    fn path_round_trip() {
        let ns = 1_795_000_123_456_000_000;
        let p = segment_rel_path("gate", ns);
        assert_eq!(p, "gate/2026-11-18/20261118T110843.456Z.mp4");
        let name = p.rsplit('/').next().unwrap();
        assert_eq!(parse_segment_name(name), Some(ns));
        assert_eq!(parse_segment_name(&format!("{name}.part")), Some(ns));
        assert_eq!(parse_segment_name("../../etc/passwd"), None);
        // Found by the `text` fuzz target: year 225 wrapped round to 1978.
        assert_eq!(parse_segment_name("02250131T120000.123Z.mp4.part"), None);
        assert_eq!(parse_segment_name("99991231T235959.999Z.mp4"), None);
    }

    #[test]
    fn batch_insert_counts_usage_once_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert(&rec("a", 1000, 60, 50)).unwrap();
        let batch = [
            rec("a", 1000, 60, 100),
            rec("a", 1060, 60, 100),
            rec("a", 1060, 60, 7),
        ];
        store.insert_batch(&batch).unwrap();
        assert_eq!(
            store.usage()["a"],
            Usage {
                bytes: 107,
                segments: 2,
                archived_bytes: 0
            }
        );
        assert_eq!(store.iter_camera("a").count(), 2);
        drop(store);
        assert_eq!(
            Store::open(dir.path()).unwrap().usage()["a"],
            Usage {
                bytes: 107,
                segments: 2,
                archived_bytes: 0
            }
        );
    }

    #[test]
    fn range_queries_and_usage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..10 {
            store.insert(&rec("a", 1000 + i * 60, 60, 100)).unwrap();
        }
        store.insert(&rec("ab", 1000, 60, 7)).unwrap();
        assert_eq!(
            store.usage()["a"],
            Usage {
                bytes: 1000,
                segments: 10,
                archived_bytes: 0
            }
        );
        // A range starting inside a segment includes that segment.
        let got = store
            .segments(
                "a",
                1_000_000_000_000 + 90_000_000_000,
                1_000_000_000_000 + 200_000_000_000,
            )
            .unwrap();
        let starts: Vec<i64> = got.iter().map(|r| r.start_ns / 1_000_000_000).collect();
        assert_eq!(starts, vec![1060, 1120, 1180]);
        // Prefixes do not leak across cameras ("a" vs "ab").
        assert_eq!(store.iter_camera("a").count(), 10);
        assert_eq!(
            store.oldest("a").unwrap().unwrap().start_ns,
            1_000_000_000_000
        );
        assert_eq!(
            store.newest("a").unwrap().unwrap().start_ns,
            1_540_000_000_000
        );
        store.remove("a", 1_000_000_000_000).unwrap();
        assert_eq!(
            store.usage()["a"],
            Usage {
                bytes: 900,
                segments: 9,
                archived_bytes: 0
            }
        );
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(
            reopened.usage()["a"],
            Usage {
                bytes: 900,
                segments: 9,
                archived_bytes: 0
            }
        );
    }
}
