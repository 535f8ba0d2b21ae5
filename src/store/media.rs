//! The storage seam: where a segment's bytes live and how to open, read a range of,
//! measure and delete them. Every reader (playback, snapshots, export, retention,
//! `check`) goes through here, so a segment can move (to the archive tier) without any
//! reader knowing.
//!
//! Deletes are recorded as intents first (Moonfire NVR's "garbage" rows): the segment's
//! row moves to the `garbage` tree in one transaction, then the bytes go, then the
//! intent. After a crash, [`Store::collect_garbage`] finishes exactly the deletes that
//! were started, in order, and nothing else.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;

use super::{sync_dir, SegmentRecord, Store};

/// A tier that holds segment bytes away from the local disk (the S3 archive).
pub trait Remote: Send + Sync {
    /// Reads `range` of the object `key`, `len` bytes long (the range is within it).
    fn read_range(&self, key: &str, len: u64, range: Range<u64>) -> io::Result<Bytes>;
    /// Deletes the object `key`; a missing object is not an error.
    fn delete(&self, key: &str) -> io::Result<()>;
    /// Length of the object `key`, `None` if it does not exist.
    fn object_len(&self, key: &str) -> io::Result<Option<u64>>;
    /// Every object of this node: key and length.
    fn list(&self) -> io::Result<Vec<(String, u64)>>;
    /// The key a segment path (relative to the storage dir) is archived under.
    fn key_for(&self, rel: &str) -> String;
    /// Downloads the object `key` to `to`, returning its SHA-256 (hex).
    fn download(&self, key: &str, to: &std::path::Path) -> io::Result<String>;
    /// The tier's own limits: (`retain_days`, `retain_bytes`), 0 meaning none.
    fn limits(&self) -> (u32, u64);
    /// What the tier has done and whether it works, for `/api/storage`.
    fn status_json(&self) -> serde_json::Value;
    /// The admins' view for `/api/archive`: backlog and last upload and error per
    /// camera, and whether the tier answers now (asks it: blocking).
    fn report(&self) -> serde_json::Value;
    /// Why this node refuses to write the tier (another node owns its prefix), if it does.
    fn conflict(&self) -> Option<String> {
        None
    }
    /// Whether this node only reads the tier (another node's footage): deleting a row
    /// then deletes the local copy only, and the object stays for its owner.
    fn read_only(&self) -> bool {
        false
    }
}

/// Where one segment's bytes are: the local file if it is still there, else the
/// archived object. Cheap to clone; open once per reader.
#[derive(Clone)]
pub struct Source {
    /// Path relative to the storage directory (for messages).
    pub rel: String,
    /// Local file.
    pub local: PathBuf,
    /// Archived copy, if any: the tier and the object key.
    pub remote: Option<(Arc<dyn Remote>, String)>,
    /// Length of the segment's valid bytes.
    pub len: u64,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("rel", &self.rel)
            .field("archived", &self.remote.as_ref().map(|(_, k)| k))
            .finish()
    }
}

impl Source {
    /// A local file not (yet) in the index, e.g. the segment being recorded.
    pub fn local_file(local: PathBuf, len: u64) -> Source {
        Source {
            rel: local.display().to_string(),
            local,
            remote: None,
            len,
        }
    }

    /// Opens the bytes: the local file when present (it is the faster copy), else the
    /// archived object.
    pub fn open(&self) -> io::Result<SegmentFile> {
        match File::open(&self.local) {
            Ok(f) => Ok(SegmentFile {
                inner: Inner::Local(f),
                pos: 0,
                len: self.len,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.remote.is_some() => {
                let (remote, key) = self.remote.clone().expect("checked");
                Ok(SegmentFile {
                    inner: Inner::Remote { remote, key },
                    pos: 0,
                    len: self.len,
                })
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("opening {}: {e}", self.rel),
            )),
        }
    }
}

enum Inner {
    Local(File),
    Remote {
        remote: Arc<dyn Remote>,
        key: String,
    },
}

/// An open segment: positional reads (`read_exact_at`) and `Read + Seek` for the box
/// parsers. Reads past the segment's valid length are refused.
pub struct SegmentFile {
    inner: Inner,
    pos: u64,
    len: u64,
}

impl SegmentFile {
    /// Valid length of the segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the bytes come from the archive rather than the local disk.
    pub fn is_remote(&self) -> bool {
        matches!(self.inner, Inner::Remote { .. })
    }

    /// Fills `buf` from offset `at`.
    pub fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        if at + buf.len() as u64 > self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at {at} past the segment's end ({})",
                    buf.len(),
                    self.len
                ),
            ));
        }
        match &self.inner {
            Inner::Local(f) => f.read_exact_at(buf, at),
            Inner::Remote { remote, key } => {
                let b = remote.read_range(key, self.len, at..at + buf.len() as u64)?;
                if b.len() != buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{key}: short read at {at}"),
                    ));
                }
                buf.copy_from_slice(&b);
                Ok(())
            }
        }
    }
}

impl Read for SegmentFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SegmentFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = p.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad seek"))?;
        Ok(self.pos)
    }
}

impl Store {
    /// Where `rec`'s bytes are.
    pub fn source(&self, rec: &SegmentRecord) -> Source {
        Source {
            rel: rec.path.clone(),
            local: self.file_path(rec),
            remote: rec
                .archived
                .as_ref()
                .and_then(|a| Some((self.remote.get()?.clone(), a.key.clone()))),
            len: rec.bytes,
        }
    }

    /// The archive tier, if connected.
    pub fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.get()
    }

    /// Whether an archive tier is connected, and its limits.
    pub fn archive_limits(&self) -> Option<(u32, u64)> {
        self.remote.get().map(|r| r.limits())
    }

    /// Connects the archive tier; archived segments are read (and deleted) through it.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
        let _ = self.collect_garbage();
    }

    /// Records that `rec` is archived (uploaded and verified) as `a`. False if the row is
    /// gone (retention deleted it meanwhile).
    pub fn mark_archived(&self, rec: &SegmentRecord, a: super::Archived) -> anyhow::Result<bool> {
        let k = super::key(&rec.camera, rec.start_ns);
        let Some(cur) = self.segments.get(&k)? else {
            return Ok(false);
        };
        let mut row = super::decode(&cur)?;
        row.archived = Some(a);
        let new = serde_json::to_vec(&row)?;
        if self
            .segments
            .compare_and_swap(&k, Some(cur), Some(new))?
            .is_err()
        {
            return Ok(false);
        }
        self.flush()?;
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = usage.get_mut(&rec.camera) {
            u.archived_bytes += row.bytes;
        }
        Ok(true)
    }

    /// Deletes the local copy of an archived segment (the archive keeps it). The index
    /// row already says where the bytes are, so a crash here just leaves the copy for
    /// the next pass. True if a file was deleted.
    pub fn drop_local(&self, rec: &SegmentRecord) -> anyhow::Result<bool> {
        anyhow::ensure!(
            rec.archived.is_some() || self.current(rec)?.is_some_and(|r| r.archived.is_some()),
            "camera {}: {} is not archived; keeping the local copy",
            rec.camera,
            rec.path
        );
        self.remove_local(rec)
    }

    /// Deletes `rec`'s local file, then its cached thumbnails ([`super::thumbs`]: they
    /// never outlive the local file), and makes that durable; the day directory goes
    /// with its last segment. True if there was a file.
    fn remove_local(&self, rec: &SegmentRecord) -> anyhow::Result<bool> {
        let path = self.file_path(rec);
        let existed = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("camera {}: deleting {}", rec.camera, path.display()))
            }
        };
        // Also when the file was already gone: a delete cut short after it.
        self.remove_thumbnails(rec)?;
        if !existed {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent).with_context(|| format!("syncing {}", parent.display()))?;
            // Failure just means the directory is not empty.
            let _ = std::fs::remove_dir(parent);
        }
        Ok(true)
    }

    /// Whether `rec`'s bytes are only in the archive (archived, local copy gone).
    pub fn archive_only(&self, rec: &SegmentRecord) -> bool {
        rec.archived.is_some() && !self.file_path(rec).exists()
    }

    /// The row of `rec` as the index has it now.
    pub fn current(&self, rec: &SegmentRecord) -> anyhow::Result<Option<SegmentRecord>> {
        match self.segments.get(super::key(&rec.camera, rec.start_ns))? {
            Some(v) => Ok(Some(super::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Opens `rec`'s bytes for reading.
    pub fn open_segment(&self, rec: &SegmentRecord) -> anyhow::Result<SegmentFile> {
        self.source(rec)
            .open()
            .with_context(|| format!("camera {}: segment {}", rec.camera, rec.path))
    }

    /// Length of the local copy of `rec`, `None` if there is none.
    pub fn local_len(&self, rec: &SegmentRecord) -> std::io::Result<Option<u64>> {
        match std::fs::metadata(self.file_path(rec)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a segment: records the intent (its row moves to `garbage`), deletes the
    /// bytes, then drops the intent. Returns the row, if there was one.
    pub fn delete_segment(&self, rec: &SegmentRecord) -> anyhow::Result<Option<SegmentRecord>> {
        let Some(old) = self.remove_to_garbage(&rec.camera, rec.start_ns)? else {
            return Ok(None);
        };
        self.finish_delete(&old)?;
        Ok(Some(old))
    }

    /// Finishes every delete a crash (or an archive that did not answer) interrupted,
    /// oldest intent first. Returns how many. Runs at start and before every retention
    /// pass.
    pub fn collect_garbage(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for item in self.garbage.iter() {
            let (_, v) = item?;
            let rec = super::decode(&v)?;
            // One that cannot finish now (the archive is down) stays for the next try.
            match self.finish_delete(&rec) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "delete intent left for later"),
            }
        }
        if n > 0 {
            tracing::info!(
                segments = n,
                "finished deletes left by a restart or an unreachable archive"
            );
        }
        Ok(n)
    }

    /// Deletes the bytes of a row that is already in `garbage` (the archived object, unless
    /// this node only reads the archive, and the local file), then the intent.
    fn finish_delete(&self, rec: &SegmentRecord) -> anyhow::Result<()> {
        // Rows name files inside the camera's own directory; a row from a
        // crafted backup must not delete anything else.
        let inside = std::path::Path::new(&rec.path)
            .strip_prefix(&rec.camera)
            .is_ok_and(|rest| {
                rest.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            });
        if !inside {
            tracing::error!(camera = %rec.camera, path = %rec.path, "refusing to delete a file outside the camera's directory; dropping the row only");
            return self.drop_garbage(&rec.camera, rec.start_ns);
        }
        if let Some(a) = &rec.archived {
            match self.remote.get() {
                Some(r) if r.read_only() => {}
                Some(r) => r
                    .delete(&a.key)
                    .with_context(|| format!("camera {}: deleting {}", rec.camera, a.key))?,
                // Collected again at the next start, once the archive is configured.
                None => anyhow::bail!(
                    "camera {}: {} is archived but no [archive] is configured",
                    rec.camera,
                    a.key
                ),
            }
        }
        self.remove_local(rec)?;
        self.drop_garbage(&rec.camera, rec.start_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::segment_rel_path;

    fn rec(start_s: i64) -> SegmentRecord {
        let start_ns = start_s * 1_000_000_000;
        SegmentRecord {
            camera: "gate".into(),
            start_ns,
            end_ns: start_ns + 60_000_000_000,
            path: segment_rel_path("gate", start_ns),
            bytes: 10,
            codec: "avc1.42c01e".into(),
            width: 640,
            height: 360,
            frames: 1,
            has_audio: false,
            keyframes: vec![(0, 0)],
            drift_ms: 0,
            archived: None,
        }
    }

    fn put(store: &Store, r: &SegmentRecord) {
        let p = store.file_path(r);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"0123456789").unwrap();
        store.insert(r).unwrap();
    }

    #[test]
    fn reads_ranges_and_refuses_reads_past_the_valid_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let r = rec(1000);
        put(&store, &r);
        let mut f = store.open_segment(&r).unwrap();
        let mut b = [0u8; 3];
        f.read_exact_at(&mut b, 7).unwrap();
        assert_eq!(&b, b"789");
        f.seek(SeekFrom::Start(8)).unwrap();
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"89");
        assert!(f.read_exact_at(&mut b, 8).is_err());
        std::fs::remove_file(store.file_path(&r)).unwrap();
        let e = store.open_segment(&r).err().unwrap();
        assert!(format!("{e:#}").contains("camera gate"), "{e:#}");
    }

    #[test]
    fn a_delete_interrupted_after_its_intent_is_finished_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (rec(1000), rec(1060));
        put(&store, &a);
        put(&store, &b);
        // Crash right after the intent was recorded: the row is gone from the index,
        // the file is still there.
        store
            .remove_to_garbage("gate", a.start_ns)
            .unwrap()
            .unwrap();
        assert!(store.file_path(&a).exists());
        assert_eq!(store.usage()["gate"].segments, 1);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(
            !store.file_path(&a).exists(),
            "the started delete is finished"
        );
        assert!(store.file_path(&b).exists(), "nothing else is deleted");
        assert_eq!(store.garbage.len(), 0);
        assert_eq!(store.collect_garbage().unwrap(), 0);
        // A whole delete leaves neither row, file nor intent.
        assert_eq!(store.delete_segment(&b).unwrap().unwrap(), b);
        assert!(!store.file_path(&b).exists());
        assert!(store.oldest("gate").unwrap().is_none());
        assert_eq!(store.garbage.len(), 0);
    }
}
