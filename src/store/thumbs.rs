//! The thumbnail cache: small JPEGs of a segment's key frames (the timeline's hover
//! previews), kept on disk beside the segment they show and deleted with it.
//!
//! Layout: `<camera>/<day>/<segment>.mp4.thumbs/<moof>-<width>.jpg`, one file per key
//! frame (the `moof` offset of its fragment) and width. The directory exists only while
//! the segment's local file does: [`Store::remove_local`](super::Store) (retention, a
//! released hold, deletion, the archive dropping its local copy) removes it, and a
//! thumbnail is only ever cached for a segment whose file is there, checked under the
//! same lock the delete takes, so no cache file outlives its footage.
//!
//! Files are written to a temporary name (0600, in a 0700 directory), flushed and then
//! renamed, so a crash leaves the old file, the new one, or a stray temporary that is
//! never served; a file that is not a whole JPEG (a torn write, a truncation) is treated
//! as missing and made again. The cache is never a reason to fail a request.
//!
//! Its bytes are counted per segment in the index tree `thumbnail_bytes` (not flushed
//! on their own: the next segment's commit flushes them), so retention's `retain_bytes`
//! counts them with the footage. After a crash the count may be off by the few files
//! written just before it, until the segment goes.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::Bytes;

use super::{key, SegmentRecord, Store};

/// The index tree counting each segment's cached thumbnail bytes (key: the segment's
/// index key; value: big-endian u64).
pub const TREE: &str = "thumbnail_bytes";
/// Suffix of a segment's thumbnail directory, after the segment's file name.
pub const DIR_SUFFIX: &str = ".thumbs";
/// Largest cache file read back: a thumbnail is a few KiB; anything this big is not one.
const MAX_FILE: u64 = 1 << 20;

/// The thumbnail directory of the segment whose file is `segment`.
pub fn dir_of(segment: &Path) -> PathBuf {
    let mut s = segment.as_os_str().to_owned();
    s.push(DIR_SUFFIX);
    PathBuf::from(s)
}

fn file_name(moof: u64, width: u32) -> String {
    format!("{moof}-{width}.jpg")
}

/// Whether `b` is a whole baseline JPEG: starts with SOI and a marker, ends with EOI.
/// A torn or truncated write fails this (the EOI is the last thing written).
pub fn is_whole_jpeg(b: &[u8]) -> bool {
    b.len() > 4 && b.starts_with(&[0xff, 0xd8, 0xff]) && b.ends_with(&[0xff, 0xd9])
}

impl Store {
    /// Cached thumbnail bytes of every camera with any.
    pub fn thumbnail_usage(&self) -> HashMap<String, u64> {
        self.thumb_usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Cached thumbnail bytes of `camera`.
    pub fn thumbnail_bytes(&self, camera: &str) -> u64 {
        self.thumb_usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .copied()
            .unwrap_or(0)
    }

    /// Cached thumbnail bytes of one segment.
    pub fn thumbnail_bytes_of(&self, rec: &SegmentRecord) -> anyhow::Result<u64> {
        Ok(self
            .thumbs
            .get(key(&rec.camera, rec.start_ns))?
            .map_or(0, |v| be_u64(&v)))
    }

    /// Sums the tree per camera (at open).
    pub(super) fn recount_thumbnails(&self) -> anyhow::Result<()> {
        let mut usage: HashMap<String, u64> = HashMap::new();
        for item in self.thumbs.iter() {
            let (k, v) = item?;
            let Some(camera) = k.len().checked_sub(9).map(|n| &k[..n]) else {
                continue;
            };
            *usage
                .entry(String::from_utf8_lossy(camera).into_owned())
                .or_default() += be_u64(&v);
        }
        *self.thumb_usage.lock().unwrap_or_else(|e| e.into_inner()) = usage;
        Ok(())
    }

    /// The cached thumbnail of the key frame at `moof` of `rec`, `width` wide, if one is
    /// on disk and whole. A file that is not a whole JPEG is deleted (and uncounted) so
    /// the caller makes it again; reading errors count as a miss.
    pub fn cached_thumbnail(&self, rec: &SegmentRecord, moof: u64, width: u32) -> Option<Bytes> {
        let path = dir_of(&self.file_path(rec)).join(file_name(moof, width));
        let read = || -> io::Result<Option<Vec<u8>>> {
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut b = Vec::new();
            io::Read::read_to_end(&mut io::Read::take(f, MAX_FILE), &mut b)?;
            Ok(Some(b))
        };
        match read() {
            Ok(Some(b)) if is_whole_jpeg(&b) => Some(Bytes::from(b)),
            Ok(None) => None,
            Ok(Some(b)) => {
                tracing::warn!(file = %path.display(), bytes = b.len(), "thumbnail cache file is not a whole JPEG; making it again");
                let _guard = self.thumb_lock.lock().unwrap_or_else(|e| e.into_inner());
                let _ = std::fs::remove_file(&path);
                self.recount_segment(rec);
                None
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "reading a cached thumbnail; making it again");
                None
            }
        }
    }

    /// Caches `jpeg` as the thumbnail of the key frame at `moof` of `rec`, `width`
    /// wide. Does nothing (false) when the segment's local file is gone (deleted, or
    /// only in the archive): the cache lives and dies with the local file.
    pub fn cache_thumbnail(
        &self,
        rec: &SegmentRecord,
        moof: u64,
        width: u32,
        jpeg: &[u8],
    ) -> anyhow::Result<bool> {
        anyhow::ensure!(is_whole_jpeg(jpeg), "not a whole JPEG");
        anyhow::ensure!(
            super::media::names_own_file(rec),
            "camera {}: {} is not a file in the camera's directory; no thumbnail cached beside it",
            rec.camera,
            rec.path
        );
        let segment = self.file_path(rec);
        let dir = dir_of(&segment);
        let path = dir.join(file_name(moof, width));
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".{}.{}-{}.tmp",
            file_name(moof, width),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // The directory and the temporary are made under the lock, after the segment
        // is seen: a delete (which takes the lock after removing the segment file)
        // then finds every name it must remove already there, and never a directory
        // filling while it empties it (its rmdir would fail: not empty).
        let file = {
            let _guard = self.thumb_lock.lock().unwrap_or_else(|e| e.into_inner());
            if !segment.exists() {
                return Ok(false);
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?
        };
        // Written outside the lock: a delete meanwhile takes the temporary with the
        // directory, and the rename below then finds the segment gone.
        let written = (|| -> io::Result<()> {
            let mut f = file;
            f.write_all(jpeg)?;
            f.sync_data()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            if !segment.exists() {
                return Ok(false);
            }
            return Err(e).with_context(|| format!("writing {}", tmp.display()));
        }
        let _guard = self.thumb_lock.lock().unwrap_or_else(|e| e.into_inner());
        if !segment.exists() {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_dir(&dir);
            return Ok(false);
        }
        std::fs::rename(&tmp, &path).with_context(|| format!("placing {}", path.display()))?;
        self.recount_segment(rec);
        Ok(true)
    }

    /// Sets `rec`'s count (tree and per-camera total) to the bytes of the thumbnails in
    /// its directory now, so a count left wrong by a crash heals at the next write. Call
    /// under `thumb_lock`. A failing index write is logged: the count is a cache.
    fn recount_segment(&self, rec: &SegmentRecord) {
        self.recount_dir(&rec.camera, rec.start_ns, &dir_of(&self.file_path(rec)));
    }

    /// [`Store::recount_segment`] of the segment of `camera` starting at `start_ns`,
    /// whose thumbnails are in `dir`.
    fn recount_dir(&self, camera: &str, start_ns: i64, dir: &Path) {
        let now: u64 = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".jpg"))
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        let k = key(camera, start_ns);
        let old = match self.thumbs.insert(&k, &now.to_be_bytes()) {
            Ok(old) => old.map_or(0, |v| be_u64(&v)),
            Err(e) => {
                tracing::warn!(camera, error = %self.note(e), "counting thumbnail bytes");
                return;
            }
        };
        let mut u = self.thumb_usage.lock().unwrap_or_else(|e| e.into_inner());
        let n = u.entry(camera.to_owned()).or_default();
        *n = n.saturating_sub(old).saturating_add(now);
    }

    /// Deletes `rec`'s thumbnails and their count; after its local file is deleted (so
    /// none is cached again). Returns the bytes they were counted as.
    pub(super) fn remove_thumbnails(&self, rec: &SegmentRecord) -> anyhow::Result<u64> {
        let dir = dir_of(&self.file_path(rec));
        let _guard = self.thumb_lock.lock().unwrap_or_else(|e| e.into_inner());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("camera {}: deleting {}", rec.camera, dir.display()))
            }
        }
        let old = self
            .thumbs
            .remove(key(&rec.camera, rec.start_ns))
            .map_err(|e| self.note(e))?
            .map_or(0, |v| be_u64(&v));
        if old > 0 {
            let mut u = self.thumb_usage.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = u.get_mut(&rec.camera) {
                *n = n.saturating_sub(old);
            }
        }
        Ok(old)
    }
}

/// For `cleannvr check`: every thumbnail directory whose segment file is not there
/// (`dirs`: those found under the storage directory, as paths relative to it). With
/// `repair`, deletes them and counts every segment's thumbnails afresh from the disk.
/// Returns the problems, one line each.
pub(super) fn check(store: &Store, dirs: &[String], repair: bool) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let _guard = store.thumb_lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut kept = Vec::new();
    for rel in dirs {
        let dir = store.dir().join(rel);
        let segment = rel.strip_suffix(DIR_SUFFIX).unwrap_or(rel);
        if store.dir().join(segment).exists() {
            kept.push((segment.to_owned(), dir));
            continue;
        }
        problems.push(format!(
            "{rel}: thumbnails of a segment file that is not there"
        ));
        if repair {
            std::fs::remove_dir_all(&dir).with_context(|| format!("deleting {}", dir.display()))?;
        }
    }
    if repair {
        store.thumbs.clear()?;
        store
            .thumb_usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for (segment, dir) in kept {
            let mut parts = segment.split('/');
            let (Some(camera), Some(_day), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Some(start_ns) = super::parse_segment_name(name) {
                store.recount_dir(camera, start_ns, &dir);
            }
        }
        store.flush()?;
    }
    Ok(problems)
}

fn be_u64(v: &[u8]) -> u64 {
    v.try_into().map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(start_s: i64) -> SegmentRecord {
        crate::store::test_record("gate", start_s, 60, 10)
    }

    const JPEG: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9];

    fn put(store: &Store, r: &SegmentRecord) {
        let p = store.file_path(r);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"0123456789").unwrap();
        store.insert(r).unwrap();
    }

    #[test]
    fn cached_counted_private_and_deleted_with_the_segment() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (rec(1000), rec(1060));
        put(&store, &a);
        put(&store, &b);
        assert!(store.cached_thumbnail(&a, 900, 160).is_none());
        assert!(store.cache_thumbnail(&a, 900, 160, JPEG).unwrap());
        assert!(store.cache_thumbnail(&b, 900, 160, JPEG).unwrap());
        assert_eq!(store.cached_thumbnail(&a, 900, 160).as_deref(), Some(JPEG));
        let file = dir_of(&store.file_path(&a)).join("900-160.jpg");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(store.thumbnail_bytes("gate"), 2 * JPEG.len() as u64);
        // The count survives a reopen.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.thumbnail_bytes("gate"), 2 * JPEG.len() as u64);
        // A truncated file is a miss, deleted and uncounted.
        std::fs::write(&file, &JPEG[..5]).unwrap();
        assert!(store.cached_thumbnail(&a, 900, 160).is_none());
        assert!(!file.exists());
        assert_eq!(store.thumbnail_bytes("gate"), JPEG.len() as u64);
        assert!(store.cache_thumbnail(&a, 900, 160, JPEG).unwrap());
        // Deleting the segment deletes its thumbnails and their count; the other's stay.
        store.delete_segment(&a).unwrap().unwrap();
        assert!(!file.parent().unwrap().exists());
        assert_eq!(store.thumbnail_bytes("gate"), JPEG.len() as u64);
        assert_eq!(store.thumbnail_bytes_of(&a).unwrap(), 0);
        // A segment whose file is gone gets no cache.
        assert!(!store.cache_thumbnail(&a, 900, 160, JPEG).unwrap());
        assert!(!file.parent().unwrap().exists());
        assert!(store.cache_thumbnail(&a, 900, 160, b"not a jpeg").is_err());
    }

    #[test]
    fn deleting_a_segment_while_its_thumbnails_are_written_neither_fails_nor_leaves_any() {
        // Writers make thumbnails as fast as they can while the segment is deleted: the
        // delete must not meet a directory filling while it empties it (rmdir: not
        // empty), and nothing may be left or counted after. (Timing: it failed in 6 of 6
        // runs, within 13 to 120 segments, while the temporary was made outside the lock.)
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..300 {
            let r = rec(1000 + i * 60);
            put(&store, &r);
            std::thread::scope(|s| {
                let writers: Vec<_> = (0..4u64)
                    .map(|w| {
                        let (store, r) = (&store, &r);
                        s.spawn(move || {
                            let mut moof = w << 32;
                            while store.cache_thumbnail(r, moof, 160, JPEG)? {
                                moof += 1;
                            }
                            anyhow::Ok(moof)
                        })
                    })
                    .collect();
                std::thread::sleep(std::time::Duration::from_micros(
                    100 + (i as u64 * 37) % 900,
                ));
                if let Err(e) = store.delete_segment(&r) {
                    panic!("iteration {i}: {e:#}");
                }
                for w in writers {
                    w.join().unwrap().unwrap();
                }
            });
            assert!(!dir_of(&store.file_path(&r)).exists(), "iteration {i}");
        }
        assert_eq!(store.thumbnail_bytes("gate"), 0);
    }

    #[test]
    fn a_row_naming_a_file_outside_its_camera_directory_gets_no_cache_beside_it() {
        // A row from a crafted backup names some other MP4 on the machine.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let outside = dir.path().join("elsewhere.mp4");
        std::fs::write(&outside, b"0123456789").unwrap();
        let mut r = rec(1000);
        r.path = "gate/../../elsewhere.mp4".into();
        store.insert(&r).unwrap();
        let e = store.cache_thumbnail(&r, 900, 160, JPEG).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a file in the camera's directory"),
            "{e:#}"
        );
        assert!(
            !dir_of(&outside).exists(),
            "wrote beside a file outside storage"
        );
        assert_eq!(store.thumbnail_bytes("gate"), 0);
    }

    #[test]
    fn the_archive_dropping_the_local_copy_drops_its_thumbnails_and_caches_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut a = rec(1000);
        a.archived = Some(crate::store::Archived {
            key: "k".into(),
            sha256: "0".repeat(64),
        });
        put(&store, &a);
        assert!(store.cache_thumbnail(&a, 900, 160, JPEG).unwrap());
        assert!(store.drop_local(&a).unwrap());
        assert!(!dir_of(&store.file_path(&a)).exists());
        assert_eq!(store.thumbnail_bytes("gate"), 0);
        // Archive-only footage is decoded from the archive when asked, not cached here.
        assert!(!store.cache_thumbnail(&a, 900, 160, JPEG).unwrap());
        assert!(!dir_of(&store.file_path(&a)).exists());
    }

    #[test]
    fn check_finds_thumbnails_without_their_segment_and_repair_deletes_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (rec(1000), rec(1060));
        put(&store, &a);
        put(&store, &b);
        assert!(store.cache_thumbnail(&a, 900, 160, JPEG).unwrap());
        assert!(store.cache_thumbnail(&b, 900, 160, JPEG).unwrap());
        // Someone deletes a segment file by hand.
        std::fs::remove_file(store.file_path(&a)).unwrap();
        let report = crate::store::check::check(&store, false).unwrap();
        let orphan = format!(
            "{}.thumbs: thumbnails of a segment file that is not there",
            a.path
        );
        assert!(report.problems.contains(&orphan), "{:?}", report.problems);
        assert!(
            dir_of(&store.file_path(&a)).exists(),
            "check alone changes nothing"
        );
        let report = crate::store::check::check(&store, true).unwrap();
        assert!(report.problems.contains(&orphan));
        assert!(!dir_of(&store.file_path(&a)).exists());
        assert!(dir_of(&store.file_path(&b)).exists());
        assert_eq!(
            store.thumbnail_bytes("gate"),
            JPEG.len() as u64,
            "counted afresh"
        );
        // (The fake segment files are no MP4s: check names them, not their thumbnails.)
        let report = crate::store::check::check(&store, false).unwrap();
        assert!(
            !report.problems.iter().any(|p| p.contains(DIR_SUFFIX)),
            "{:?}",
            report.problems
        );
    }
}
