//! The storage seam: where a segment's bytes live and how to open, read a range of,
//! measure and delete them. Every reader (playback, snapshots, export, retention,
//! `check`) goes through here, so a segment can move (to the archive tier) without any
//! reader knowing.
//!
//! Deletes are recorded as intents first (Moonfire NVR's "garbage" rows): the segment's
//! row moves to the `garbage` tree in one transaction, then the bytes go, then the
//! intent. After a crash, [`Store::collect_garbage`] finishes exactly the deletes that
//! were started, in order, and nothing else.

use std::collections::VecDeque;
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
    /// Starts one request for `range` of the object `key` (within it), for a reader that
    /// will read the range from start to end ([`SegmentFile::read_forward`]); its bytes
    /// arrive in order. `None` if the tier declines (too many streams open): the reader
    /// then reads by [`Remote::read_range`].
    fn stream_range(&self, _key: &str, _range: Range<u64>) -> Option<RangeStream> {
        None
    }
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

/// The bytes of one object range arriving in order from one request
/// ([`Remote::stream_range`]): the tier's task sends them in batches, the reader takes them
/// blocking. Dropping it ends the request.
pub struct RangeStream {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<Bytes>>>,
}

impl RangeStream {
    /// A stream and the sender its producer fills; `batches` bounds what is queued.
    pub fn channel(
        batches: usize,
    ) -> (
        tokio::sync::mpsc::Sender<io::Result<Vec<Bytes>>>,
        RangeStream,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(batches);
        (tx, RangeStream { rx })
    }

    /// The next batch, waiting for it; `None` at the end. Blocking: never call from an
    /// async task.
    fn next(&mut self) -> Option<io::Result<Vec<Bytes>>> {
        self.rx.blocking_recv()
    }
}

/// Bytes a forward reader may read again behind its last read (a box header read once
/// to find the box and again as part of it).
const LOOK_BEHIND: u64 = 64 << 10;
/// A forward read this far past what the stream has delivered starts a new request at
/// the read rather than reading through the gap.
const SKIP_MAX: u64 = 1 << 20;

/// A forward reader's one request: bytes `[held, next)` are kept, the rest of
/// `[next, end)` is still to arrive.
struct Forward {
    stream: RangeStream,
    chunks: VecDeque<Bytes>,
    held: u64,
    next: u64,
    end: u64,
}

/// What a forward stream made of a read.
enum Streamed {
    Served,
    /// Outside the streamed range (a seek back or past its end): read by blocks.
    Outside,
    /// Too far ahead of the stream: worth a new request from there.
    Jump,
}

impl Forward {
    fn new(stream: RangeStream, range: Range<u64>) -> Forward {
        Forward {
            stream,
            chunks: VecDeque::new(),
            held: range.start,
            next: range.start,
            end: range.end,
        }
    }

    /// Fills `buf` from offset `at` out of the stream, waiting for its bytes.
    fn read(&mut self, buf: &mut [u8], at: u64) -> io::Result<Streamed> {
        let want = at + buf.len() as u64;
        if at < self.held || want > self.end {
            return Ok(Streamed::Outside);
        }
        if at > self.next + SKIP_MAX {
            return Ok(Streamed::Jump);
        }
        while self.next < want {
            let batch = self.stream.next().unwrap_or_else(|| {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended at {} of {}", self.next, self.end),
                ))
            })?;
            for b in batch {
                self.next += b.len() as u64;
                self.chunks.push_back(b);
            }
        }
        // Drop what lies before the look-behind, then copy.
        let keep = at.saturating_sub(LOOK_BEHIND);
        while let Some(front) = self.chunks.front() {
            let front_end = self.held + front.len() as u64;
            if front_end > keep {
                break;
            }
            self.held = front_end;
            self.chunks.pop_front();
        }
        let mut off = self.held;
        for c in &self.chunks {
            let c_end = off + c.len() as u64;
            if c_end > at && off < want {
                let (from, to) = (at.max(off), want.min(c_end));
                buf[(from - at) as usize..(to - at) as usize]
                    .copy_from_slice(&c[(from - off) as usize..(to - off) as usize]);
            }
            if c_end >= want {
                break;
            }
            off = c_end;
        }
        Ok(Streamed::Served)
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
                forward: None,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.remote.is_some() => {
                let (remote, key) = self.remote.clone().expect("checked");
                Ok(SegmentFile {
                    inner: Inner::Remote { remote, key },
                    pos: 0,
                    len: self.len,
                    forward: None,
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
    /// An archived segment's one streamed request, for a reader that said it reads
    /// forward ([`SegmentFile::read_forward`]).
    forward: Option<Forward>,
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

    /// Says that `range` will be read from start to end (playback of a span, an
    /// export). An archived segment then streams it in one request instead of a ranged
    /// GET per block: one signed round trip and one metadata lookup in the cluster, not
    /// dozens. Reads outside what the stream holds (a seek back, a box header read
    /// again beyond [`LOOK_BEHIND`]) still go by blocks, a read far ahead starts a new
    /// stream there, and a stream that fails leaves the rest to blocks (with their
    /// retries). A local file ignores this.
    pub fn read_forward(&mut self, range: Range<u64>) {
        let range = range.start..range.end.min(self.len);
        self.forward = None;
        if range.is_empty() {
            return;
        }
        if let Inner::Remote { remote, key } = &self.inner {
            self.forward = remote
                .stream_range(key, range.clone())
                .map(|s| Forward::new(s, range));
        }
    }

    /// Fills `buf` from offset `at`.
    pub fn read_exact_at(&mut self, buf: &mut [u8], at: u64) -> io::Result<()> {
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
                if streamed(&mut self.forward, remote.as_ref(), key, buf, at) {
                    return Ok(());
                }
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

/// Serves a read of an archived segment from its forward stream if it can; true if
/// `buf` is filled. A read far ahead restarts the stream there; a failed stream is
/// dropped (blocks serve the rest).
fn streamed(
    forward: &mut Option<Forward>,
    remote: &dyn Remote,
    key: &str,
    buf: &mut [u8],
    at: u64,
) -> bool {
    // A restarted stream begins at `at`, so the second try never jumps again.
    for _ in 0..2 {
        let Some(fw) = forward else {
            return false;
        };
        match fw.read(buf, at) {
            Ok(Streamed::Served) => return true,
            Ok(Streamed::Outside) => return false,
            Ok(Streamed::Jump) => {
                let end = fw.end;
                *forward = remote
                    .stream_range(key, at..end)
                    .map(|s| Forward::new(s, at..end));
            }
            Err(e) => {
                tracing::warn!(key, at, error = %e, "streamed read failed; reading the rest by blocks");
                *forward = None;
                return false;
            }
        }
    }
    false
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

/// Whether `rec` names a file inside its camera's own directory, as every row the
/// recorder writes does; a row from a crafted backup must not make the server delete
/// or write anything else.
pub(super) fn names_own_file(rec: &SegmentRecord) -> bool {
    std::path::Path::new(&rec.path)
        .strip_prefix(&rec.camera)
        .is_ok_and(|rest| {
            rest.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
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
        if !names_own_file(rec) {
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

/// An archive tier in memory for tests: objects by key, its requests counted; its
/// streams send `batch` bytes at a time (in two pieces, as a body's frames arrive) and
/// fail at `fail_at` bytes into an object, if set.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use sha2::Digest;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[derive(Default)]
    pub(crate) struct FakeRemote {
        pub objects: Mutex<HashMap<String, Bytes>>,
        pub batch: usize,
        pub fail_at: Option<u64>,
        pub ranged: AtomicUsize,
        pub streams: Mutex<Vec<Range<u64>>>,
    }

    impl FakeRemote {
        pub fn new(batch: usize, fail_at: Option<u64>) -> Arc<FakeRemote> {
            Arc::new(FakeRemote {
                batch,
                fail_at,
                ..Default::default()
            })
        }

        /// Ranged (block) requests so far.
        pub fn ranged(&self) -> usize {
            self.ranged.load(Ordering::SeqCst)
        }

        fn object(&self, key: &str) -> io::Result<Bytes> {
            let objects = self.objects.lock().unwrap();
            objects
                .get(key)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, key.to_owned()))
        }
    }

    impl Remote for FakeRemote {
        fn read_range(&self, key: &str, _: u64, range: Range<u64>) -> io::Result<Bytes> {
            self.ranged.fetch_add(1, Ordering::SeqCst);
            Ok(self
                .object(key)?
                .slice(range.start as usize..range.end as usize))
        }
        fn stream_range(&self, key: &str, range: Range<u64>) -> Option<RangeStream> {
            self.streams.lock().unwrap().push(range.clone());
            let data = self.object(key).ok()?;
            let (tx, rx) = RangeStream::channel(2);
            let (batch, fail) = (self.batch as u64, self.fail_at);
            std::thread::spawn(move || {
                let mut at = range.start;
                while at < range.end {
                    if fail.is_some_and(|f| at >= f) {
                        let _ = tx.blocking_send(Err(io::Error::other("node gone")));
                        return;
                    }
                    let to = (at + batch).min(range.end);
                    let mid = (at + to) / 2;
                    let piece = |a: u64, b: u64| data.slice(a as usize..b as usize);
                    if tx
                        .blocking_send(Ok(vec![piece(at, mid), piece(mid, to)]))
                        .is_err()
                    {
                        return;
                    }
                    at = to;
                }
            });
            Some(rx)
        }
        fn delete(&self, key: &str) -> io::Result<()> {
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }
        fn object_len(&self, key: &str) -> io::Result<Option<u64>> {
            Ok(self.object(key).ok().map(|b| b.len() as u64))
        }
        fn list(&self) -> io::Result<Vec<(String, u64)>> {
            let objects = self.objects.lock().unwrap();
            Ok(objects
                .iter()
                .map(|(k, b)| (k.clone(), b.len() as u64))
                .collect())
        }
        fn key_for(&self, rel: &str) -> String {
            format!("node/{rel}")
        }
        fn download(&self, key: &str, to: &std::path::Path) -> io::Result<String> {
            let b = self.object(key)?;
            std::fs::write(to, &b)?;
            Ok(hex::encode(sha2::Sha256::digest(&b)))
        }
        fn limits(&self) -> (u32, u64) {
            (0, 0)
        }
        fn status_json(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
        fn report(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeRemote;
    use super::*;

    fn rec(start_s: i64) -> SegmentRecord {
        crate::store::test_record("gate", start_s, 60, 10)
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

    const KEY: &str = "node/gate/x.mp4";

    /// An archived object of `len` bytes (a pattern) in a fake tier.
    fn fake(len: usize, batch: usize, fail_at: Option<u64>) -> (Arc<FakeRemote>, Bytes) {
        let f = FakeRemote::new(batch, fail_at);
        let data: Bytes = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        f.objects.lock().unwrap().insert(KEY.into(), data.clone());
        (f, data)
    }

    fn archived(fake: &Arc<FakeRemote>, len: usize) -> SegmentFile {
        let remote: Arc<dyn Remote> = fake.clone();
        Source {
            rel: "gate/x.mp4".into(),
            local: PathBuf::from("/nonexistent/cleannvr/x.mp4"),
            remote: Some((remote, KEY.into())),
            len: len as u64,
        }
        .open()
        .unwrap()
    }

    /// Reads `[from, to)` as the playback reader does: a box header, the same bytes
    /// again as the box, then on in chunks of `chunk`.
    fn read_like_playback(f: &mut SegmentFile, from: u64, to: u64, chunk: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let n = chunk.min(to - at);
            let mut head = vec![0u8; 16.min(n) as usize];
            f.read_exact_at(&mut head, at).unwrap();
            let mut buf = vec![0u8; n as usize];
            f.read_exact_at(&mut buf, at).unwrap();
            assert_eq!(&buf[..head.len()], &head[..]);
            out.extend_from_slice(&buf);
            at += n;
        }
        out
    }

    #[test]
    // The streams asked for are a list of one range, not a range's items.
    #[allow(clippy::single_range_in_vec_init)]
    fn a_forward_reader_streams_an_archived_segment_in_one_request() {
        let (fake, data) = fake(3_000_000, 100_000, None);
        let mut f = archived(&fake, data.len());
        f.read_forward(1000..2_900_000);
        let got = read_like_playback(&mut f, 1000, 2_900_000, 65_536);
        assert_eq!(got, &data[1000..2_900_000]);
        assert_eq!(fake.ranged(), 0, "no block was fetched");
        assert_eq!(*fake.streams.lock().unwrap(), [1000..2_900_000]);
        // A seek back past what the stream keeps, and a read past its end: blocks.
        let mut b = [0u8; 10];
        f.read_exact_at(&mut b, 5).unwrap();
        assert_eq!(&b, &data[5..15]);
        f.read_exact_at(&mut b, 2_950_000).unwrap();
        assert_eq!(&b, &data[2_950_000..2_950_010]);
        assert_eq!(fake.ranged(), 2);
        // Without the hint, every read is a ranged request.
        let mut g = archived(&fake, data.len());
        g.read_exact_at(&mut b, 100).unwrap();
        assert_eq!(fake.ranged(), 3);
        assert_eq!(fake.streams.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_forward_reader_jumping_ahead_restarts_its_stream_there() {
        let (fake, data) = fake(5_000_000, 64_000, None);
        let mut f = archived(&fake, data.len());
        f.read_forward(0..5_000_000);
        assert_eq!(
            read_like_playback(&mut f, 0, 200_000, 50_000),
            &data[..200_000]
        );
        // A small gap is read through; a large one starts a new request at the read.
        assert_eq!(
            read_like_playback(&mut f, 400_000, 500_000, 50_000),
            &data[400_000..500_000]
        );
        assert_eq!(
            read_like_playback(&mut f, 4_000_000, 5_000_000, 50_000),
            &data[4_000_000..]
        );
        assert_eq!(
            *fake.streams.lock().unwrap(),
            [0..5_000_000, 4_000_000..5_000_000]
        );
        assert_eq!(fake.ranged(), 0);
    }

    #[test]
    fn a_stream_that_fails_leaves_the_rest_to_blocks_and_loses_no_byte() {
        let (fake, data) = fake(2_000_000, 100_000, Some(700_000));
        let mut f = archived(&fake, data.len());
        f.read_forward(0..2_000_000);
        let got = read_like_playback(&mut f, 0, 2_000_000, 65_536);
        assert_eq!(got, data);
        assert!(fake.ranged() > 0, "blocks served the rest");
        assert_eq!(fake.streams.lock().unwrap().len(), 1, "no second stream");
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
