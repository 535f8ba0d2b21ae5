//! Archive tier: finished segments older than `[archive] after` move to an S3 bucket
//! (a Garage cluster on the LAN, or any S3-compatible store) and are read back through
//! the storage seam ([`crate::store::media`]) with ranged GETs, so playback, snapshots and
//! exports work the same whether a segment is local or archived.
//!
//! One segment moves in four steps, each safe to repeat after a crash:
//! upload (multipart above [`MULTIPART_BYTES`]) → read the object back and compare its
//! SHA-256 with the local file's → record the key and hash in the index → delete the local
//! copy. A crash before the index row says "archived" just uploads again (same key); a
//! crash after it leaves a local copy that the next pass deletes. The archive being down
//! never touches recording: the pass fails, backs off and tries again, and local retention
//! keeps unarchived footage unless the disk would otherwise fill.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::ArchiveConfig;
use crate::store::media::{RangeStream, Remote};
use crate::store::{Archived, SegmentRecord, Store};

/// Segments larger than this are uploaded in parts of this size.
pub const MULTIPART_BYTES: usize = 16 << 20;
/// Read-cache block: one ranged GET fetches this much, so the box parsers' small reads
/// (headers of a few bytes) cost one request per block, not one each.
const BLOCK: u64 = 1 << 20;
/// Read-cache size cap.
const CACHE_BYTES: usize = 64 << 20;
/// Forward readers' streamed GETs ([`Remote::stream_range`]) open at once, at most;
/// more readers read by blocks. With [`STREAM_QUEUE`] batches of [`STREAM_BATCH`] each,
/// they hold at most 32 MiB beside the cache, as the read-ahead does.
const STREAMS: usize = 16;
/// A streamed GET's bytes go to its reader in batches of about this much.
const STREAM_BATCH: usize = 256 << 10;
/// Batches a streamed GET queues ahead of its reader; then it waits (and so does the
/// connection: TCP's window is the backpressure).
const STREAM_QUEUE: usize = 8;
/// How far ahead of a reader moving forward through an object blocks are fetched: their
/// ranged GETs run while the reader is served the current block. The window starts at
/// `first` blocks and doubles with each further forward read up to `max`, so a reader
/// that keeps going (playback, an export) soon has several larger GETs in flight while
/// one that stops (a snapshot, a seek) costs little. Each read-ahead GET covers
/// 1/`spans_per_window` of the window: fewer, larger requests once a reader has shown it
/// streams (each GET is a signed round trip and a metadata lookup in the cluster).
/// `max_in_flight` read-ahead blocks over all readers, at most, bounds the memory they
/// hold beside the cache (blocks a reader waits for are always fetched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAhead {
    /// Window after the first forward read, blocks.
    pub first: u64,
    /// Widest window, blocks.
    pub max: u64,
    /// GETs per window.
    pub spans_per_window: u64,
    /// Read-ahead blocks in flight over all readers, at most.
    pub max_in_flight: usize,
}

impl Default for ReadAhead {
    /// 4 blocks growing to 32 (32 MiB) in GETs of up to 8 MiB, at most 32 MiB in flight
    /// (beside the 64 MiB cache). Larger GETs measured faster than more of them
    /// (docs/BENCHMARKS.md).
    fn default() -> ReadAhead {
        ReadAhead {
            first: 4,
            max: 32,
            spans_per_window: 4,
            max_in_flight: 32,
        }
    }
}

impl ReadAhead {
    /// The read-ahead before it grew (4 blocks, one GET each, 8 in flight): what the
    /// benchmark compares the default with.
    pub const FIXED_4: ReadAhead = ReadAhead {
        first: 4,
        max: 4,
        spans_per_window: 4,
        max_in_flight: 8,
    };
}

/// The object under a node's prefix that names the node archiving there (see
/// [`Archive::ensure_owner`]).
const OWNER_OBJECT: &str = ".owner";
/// Longest wait between failed passes.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The archive's own runtime: S3 requests run here whichever thread asks (a blocking
/// playback reader, the CLI, the archiver), and it lives as long as the process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("archive-io")
            .enable_all()
            .build()
            .expect("building the archive runtime")
    })
}

/// Runs `f` on the archive runtime and waits for it. Blocking: call from a blocking
/// thread (never from an async task).
fn block_on<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv()
        .expect("archive runtime task ended without an answer")
}

/// Parses `"2d"`, `"12h"`, `"30m"`, `"20s"` (or a bare number of seconds).
pub fn parse_after(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(mult)?))
}

/// What the archiver has done, for `/api/storage`, `/api/archive` and the log.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Status {
    /// Segments uploaded and verified since start.
    pub uploaded: u64,
    /// Bytes uploaded since start.
    pub uploaded_bytes: u64,
    /// Segments old enough to move that are still local (as of the last pass).
    pub pending: u64,
    /// Failures in a row; 0 when the last pass worked.
    pub failures: u32,
    /// The last failure, if the last pass failed (credentials removed).
    pub last_error: Option<String>,
    /// When the last pass failed, ns.
    pub last_error_ns: Option<i64>,
    /// When the last upload was verified, ns.
    pub last_upload_ns: Option<i64>,
    /// Per camera, for cameras with footage.
    pub cameras: std::collections::BTreeMap<String, CameraStatus>,
}

/// One camera's part of [`Status`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CameraStatus {
    /// Segments old enough to move that are still only local (as of the last pass).
    pub backlog_segments: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// When this camera's last upload was verified, ns.
    pub last_upload_ns: Option<i64>,
    /// The last failure uploading this camera's footage, until a pass gets through it.
    pub last_error: Option<String>,
}

/// The bucket and prefix segments move to.
pub struct Archive {
    s3: Arc<AmazonS3>,
    prefix: String,
    /// Segments whose end is older than this move.
    pub after: Duration,
    /// Archived footage older than this many days is deleted; 0: no limit.
    pub retain_days: u32,
    /// Archived footage beyond this many bytes is deleted, oldest first; 0: no limit.
    pub retain_bytes: u64,
    max_upload_bps: u64,
    read_only: bool,
    reads: Arc<Mutex<Reads>>,
    /// Permits for streamed GETs ([`STREAMS`]).
    streams: Arc<tokio::sync::Semaphore>,
    status: Mutex<Status>,
    /// The same bucket without retries and with short timeouts: `/api/archive` asks it
    /// whether the cluster answers now.
    probe: Arc<AmazonS3>,
    /// Strings never shown in a status or log line: the keys, the endpoint's password.
    secrets: Vec<String>,
    /// This node's name (the default prefix), written into the owner marker.
    node: String,
    /// This node's index id ([`Store::instance_id`]): who this node is to the marker.
    instance: OnceLock<String>,
    /// Whether the prefix is ours, as the owner marker says.
    ownership: Mutex<Ownership>,
}

/// What the owner marker under the prefix says about this node.
#[derive(Clone, Debug, Default)]
enum Ownership {
    /// Not asked yet (or the bucket did not answer).
    #[default]
    Unknown,
    /// The marker names this node: it may upload and delete under the prefix.
    Mine,
    /// Another node's marker: this node neither uploads nor deletes there. The message.
    Taken(String),
}

/// The owner marker's content: which cleannvr archives under a prefix.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// The owner's node name (its host name).
    pub node: String,
    /// The owner's index id ([`Store::instance_id`]); this is what is compared.
    pub instance: String,
    /// When it claimed the prefix (RFC 3339).
    pub since: String,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Archive")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Archive {
    /// Connects lazily (no request is made here). `node` is the default prefix.
    pub fn new(cfg: &ArchiveConfig, node: &str) -> anyhow::Result<Archive> {
        // reqwest's rustls (for an https endpoint) uses the process default provider;
        // already installed is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secret = cfg
            .secret_access_key
            .clone()
            .or_else(|| std::env::var("CLEANNVR_ARCHIVE_SECRET_ACCESS_KEY").ok())
            .context("[archive] needs secret_access_key or CLEANNVR_ARCHIVE_SECRET_ACCESS_KEY")?;
        let builder = AmazonS3Builder::new()
            .with_endpoint(cfg.url.trim_end_matches('/'))
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&secret)
            .with_virtual_hosted_style_request(false);
        // Garage on the LAN is commonly plain HTTP (set here: client options replace the
        // builder's own, so `with_allow_http` there would be lost).
        let client = |connect: u64, total: u64| {
            ClientOptions::new()
                .with_allow_http(true)
                .with_connect_timeout(Duration::from_secs(connect))
                .with_timeout(Duration::from_secs(total))
        };
        let s3 = builder
            .clone()
            // A Garage node that has just died stalls requests for up to ~15 s until its
            // peers notice; retries ride that out, the pass backs off beyond it.
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
                ..Default::default()
            })
            .with_client_options(client(5, 60))
            .build()
            .with_context(|| format!("configuring the archive at {}", redact_url(&cfg.url)))?;
        let probe = builder
            .with_retry(RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .with_client_options(client(3, 5))
            .build()
            .with_context(|| format!("configuring the archive at {}", redact_url(&cfg.url)))?;
        let mut secrets = vec![secret, cfg.access_key_id.clone()];
        if let Ok(u) = url::Url::parse(&cfg.url) {
            secrets.extend(u.password().map(str::to_owned));
        }
        secrets.retain(|s| s.len() >= 4);
        let prefix = cfg
            .prefix
            .clone()
            .unwrap_or_else(|| node.to_owned())
            .trim_matches('/')
            .to_owned();
        // An empty prefix would make every object in the bucket this node's: `check`
        // would take other nodes' footage for its own.
        anyhow::ensure!(
            !prefix.is_empty(),
            "[archive] prefix is empty: each node needs its own prefix in a shared bucket"
        );
        Ok(Archive {
            s3: Arc::new(s3),
            prefix,
            after: parse_after(&cfg.after).context("[archive] after")?,
            retain_days: cfg.retain_days,
            retain_bytes: cfg.retain_bytes,
            max_upload_bps: cfg.max_upload_bytes_per_second,
            read_only: cfg.read_only,
            reads: Arc::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(STREAMS)),
            status: Mutex::new(Status::default()),
            probe: Arc::new(probe),
            secrets,
            node: node.to_owned(),
            instance: OnceLock::new(),
            ownership: Mutex::default(),
        })
    }

    /// Says who this node is to the owner marker: `store`'s index id. Once; later calls
    /// change nothing.
    pub fn identify(&self, store: &Store) -> anyhow::Result<()> {
        if self.instance.get().is_none() {
            let _ = self.instance.set(store.instance_id()?);
        }
        Ok(())
    }

    /// Makes sure the prefix is this node's before anything is uploaded or deleted under
    /// it. Two nodes given the same prefix would otherwise overwrite each other's
    /// segments (same camera ids and times) and delete each other's footage by their own
    /// retention. At first use the node claims the prefix with an owner marker
    /// ([`OWNER_OBJECT`]: its name and index id), written only if absent and read back;
    /// a marker naming another index makes this node refuse to write or delete there,
    /// with an error logged once and kept for `/api/archive` and an alarm, until the
    /// marker is its own (checked again at every call). Blocking.
    pub fn ensure_owner(&self) -> anyhow::Result<()> {
        if matches!(*self.lock_ownership(), Ownership::Mine) {
            return Ok(());
        }
        let instance = self
            .instance
            .get()
            .context("the archive is not connected to this node's index")?
            .clone();
        let key = self.key(OWNER_OBJECT);
        let owner = match self.owner()? {
            Some(o) => o,
            None => {
                let mine = Owner {
                    node: self.node.clone(),
                    instance: instance.clone(),
                    since: crate::clock::rfc3339(crate::clock::SystemClock.now_ns()),
                };
                let (s3, k) = (self.s3.clone(), ObjPath::from(key.clone()));
                let body = Bytes::from(serde_json::to_vec_pretty(&mine)?);
                // Only if absent: of two nodes claiming at once, one wins and the other
                // reads the winner's marker back.
                match block_on(async move {
                    s3.put_opts(&k, body.into(), object_store::PutMode::Create.into())
                        .await
                }) {
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("writing the owner marker {key}"))
                    }
                }
                self.owner()?
                    .with_context(|| format!("the owner marker {key} is gone after writing it"))?
            }
        };
        let mut state = self.lock_ownership();
        if owner.instance == instance {
            if !matches!(*state, Ownership::Unknown) {
                info!(prefix = %self.prefix, "the archive prefix is this node's again");
            }
            *state = Ownership::Mine;
            return Ok(());
        }
        let msg = format!(
            "the archive prefix \"{}\" belongs to another cleannvr (node {}, index {}, since {}; \
             marker {key}); this node ({}, index {instance}) will not upload or delete there: \
             give each node its own [archive] prefix, or set read_only = true to play back the \
             other node's footage",
            self.prefix, owner.node, owner.instance, owner.since, self.node
        );
        if !matches!(*state, Ownership::Taken(_)) {
            tracing::error!("{msg}");
        }
        *state = Ownership::Taken(msg.clone());
        anyhow::bail!(msg)
    }

    /// The owner marker under the prefix, if there is one. Blocking.
    pub fn owner(&self) -> anyhow::Result<Option<Owner>> {
        let key = self.key(OWNER_OBJECT);
        let (s3, k) = (self.s3.clone(), ObjPath::from(key.clone()));
        match block_on(async move { s3.get(&k).await?.bytes().await }) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .with_context(|| format!("reading the owner marker {key}")),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading the owner marker {key}")),
        }
    }

    /// Why this node refuses to write its prefix (another node's marker is there).
    pub fn conflict(&self) -> Option<String> {
        match &*self.lock_ownership() {
            Ownership::Taken(m) => Some(m.clone()),
            _ => None,
        }
    }

    fn lock_ownership(&self) -> std::sync::MutexGuard<'_, Ownership> {
        self.ownership.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this node only reads the prefix (another node's footage).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The object key of a segment path (relative to the storage dir).
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// The segment path of an object key under our prefix.
    pub fn rel<'a>(&self, key: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(&self.prefix)?.strip_prefix('/')
        }
    }

    /// A snapshot of what the archiver has done.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `msg` without the keys or the endpoint's password: status and logs show it.
    pub fn redact(&self, msg: &str) -> String {
        let mut out = msg.to_owned();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "[redacted]");
        }
        out
    }

    /// Whether the bucket answers now: a HEAD of a key that need not exist, without
    /// retries and with a 5 s limit. `Err` carries the redacted reason. Blocking.
    pub fn probe(&self) -> Result<(), String> {
        let s3 = self.probe.clone();
        let k = ObjPath::from(format!("{}/.probe", self.prefix));
        match block_on(async move { s3.head(&k).await }) {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            // With its causes: the first line alone says only "error sending request".
            Err(e) => Err(self.redact(&format!("{:#}", anyhow::Error::new(e)))),
        }
    }

    /// Everything `/api/archive` shows: the status, per camera, and a fresh probe.
    /// Blocking (the probe is one request).
    pub fn report(&self) -> serde_json::Value {
        let probe = self.probe();
        let st = self.status();
        let time = |ns: Option<i64>| ns.map(crate::clock::rfc3339);
        let cameras: Vec<serde_json::Value> = st
            .cameras
            .iter()
            .map(|(id, c)| {
                serde_json::json!({
                    "id": id,
                    "backlog_segments": c.backlog_segments,
                    "backlog_bytes": c.backlog_bytes,
                    "last_upload": time(c.last_upload_ns),
                    "last_error": c.last_error,
                })
            })
            .collect();
        serde_json::json!({
            "prefix": self.prefix,
            "after_seconds": self.after.as_secs(),
            "read_only": self.read_only,
            "prefix_taken": self.conflict(),
            "reachable": probe.is_ok(),
            "unreachable_because": probe.err(),
            "uploaded": st.uploaded,
            "uploaded_bytes": st.uploaded_bytes,
            "backlog_segments": st.cameras.values().map(|c| c.backlog_segments).sum::<u64>(),
            "backlog_bytes": st.cameras.values().map(|c| c.backlog_bytes).sum::<u64>(),
            "last_upload": time(st.last_upload_ns),
            "failures": st.failures,
            "last_error": st.last_error,
            "last_error_at": time(st.last_error_ns),
            "cameras": cameras,
        })
    }

    fn with_status<T>(&self, f: impl FnOnce(&mut Status) -> T) -> T {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Uploads one local segment, reads it back to compare hashes, and returns what the
    /// index records. Blocking.
    pub fn upload(&self, store: &Store, rec: &SegmentRecord) -> anyhow::Result<Archived> {
        let path = store.file_path(rec);
        let data = std::fs::read(&path)
            .with_context(|| format!("camera {}: reading {}", rec.camera, path.display()))?;
        anyhow::ensure!(
            data.len() as u64 >= rec.bytes,
            "camera {}: {} is shorter than indexed",
            rec.camera,
            rec.path
        );
        let data = Bytes::from(data).slice(..rec.bytes as usize);
        let sha256 = hex::encode(Sha256::digest(&data));
        let key = self.key(&rec.path);
        let s3 = self.s3.clone();
        let (k, d) = (ObjPath::from(key.clone()), data.clone());
        block_on(async move {
            if d.len() > MULTIPART_BYTES {
                let up = s3.put_multipart(&k).await?;
                let mut w = WriteMultipart::new_with_chunk_size(up, MULTIPART_BYTES);
                w.put(d);
                w.finish().await?;
            } else {
                s3.put(&k, d.into()).await?;
            }
            Ok::<_, object_store::Error>(())
        })
        .with_context(|| format!("camera {}: uploading {}", rec.camera, rec.path))?;
        let got = self
            .object_sha256(&key)
            .with_context(|| format!("camera {}: reading back {key}", rec.camera))?;
        anyhow::ensure!(
            got == (sha256.clone(), rec.bytes),
            "camera {}: {key} read back as {} bytes with SHA-256 {}, the file has {} bytes with {}",
            rec.camera,
            got.1,
            got.0,
            rec.bytes,
            sha256
        );
        let now = crate::clock::SystemClock.now_ns();
        self.with_status(|st| {
            st.uploaded += 1;
            st.uploaded_bytes += rec.bytes;
            st.last_upload_ns = Some(now);
            let c = st.cameras.entry(rec.camera.clone()).or_default();
            c.last_upload_ns = Some(now);
            c.backlog_segments = c.backlog_segments.saturating_sub(1);
            c.backlog_bytes = c.backlog_bytes.saturating_sub(rec.bytes);
        });
        Ok(Archived { key, sha256 })
    }

    /// SHA-256 (hex) and length of an object, streamed. Blocking.
    pub fn object_sha256(&self, key: &str) -> anyhow::Result<(String, u64)> {
        let s3 = self.s3.clone();
        let k = ObjPath::from(key);
        block_on(async move {
            let mut s = s3.get(&k).await?.into_stream();
            let mut h = Sha256::new();
            let mut n = 0u64;
            while let Some(b) = s.try_next().await? {
                h.update(&b);
                n += b.len() as u64;
            }
            Ok::<_, object_store::Error>((hex::encode(h.finalize()), n))
        })
        .map_err(Into::into)
    }

    /// Every object under our prefix but the owner marker: key and size. Blocking.
    pub fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let s3 = self.s3.clone();
        let prefix = (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.clone()));
        let marker = self.key(OWNER_OBJECT);
        let mut v = block_on(async move {
            s3.list(prefix.as_ref())
                .map_ok(|m| (m.location.to_string(), m.size))
                .try_collect::<Vec<_>>()
                .await
        })
        .context("listing the archive")?;
        v.retain(|(k, _)| *k != marker);
        Ok(v)
    }

    /// Size of an object, `None` if it does not exist. Blocking.
    pub fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        let s3 = self.s3.clone();
        let k = ObjPath::from(key);
        match block_on(async move { s3.head(&k).await }) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up {key}")),
        }
    }

    /// Downloads an object to `to` (a repair of an object the index does not know);
    /// returns its SHA-256. Blocking.
    pub fn download(&self, key: &str, to: &std::path::Path) -> anyhow::Result<String> {
        let s3 = self.s3.clone();
        let k = ObjPath::from(key);
        let b = block_on(async move { s3.get(&k).await?.bytes().await })
            .with_context(|| format!("downloading {key}"))?;
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(to, &b).with_context(|| format!("writing {}", to.display()))?;
        Ok(hex::encode(Sha256::digest(&b)))
    }

    fn pace(&self, bytes: u64) {
        if self.max_upload_bps > 0 {
            std::thread::sleep(Duration::from_secs_f64(
                bytes as f64 / self.max_upload_bps as f64,
            ));
        }
    }
}

impl Remote for Archive {
    fn limits(&self) -> (u32, u64) {
        (self.retain_days, self.retain_bytes)
    }

    fn status_json(&self) -> serde_json::Value {
        let st = self.status();
        serde_json::json!({
            "prefix": self.prefix,
            "after_seconds": self.after.as_secs(),
            "read_only": self.read_only,
            "prefix_taken": self.conflict(),
            "uploaded": st.uploaded,
            "uploaded_bytes": st.uploaded_bytes,
            "pending": st.pending,
            "failures": st.failures,
            "last_error": st.last_error,
            "ok": st.failures == 0,
        })
    }

    fn report(&self) -> serde_json::Value {
        Archive::report(self)
    }

    fn conflict(&self) -> Option<String> {
        Archive::conflict(self)
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn object_len(&self, key: &str) -> io::Result<Option<u64>> {
        self.size(key)
            .map_err(|e| io::Error::other(format!("{e:#}")))
    }

    fn list(&self) -> io::Result<Vec<(String, u64)>> {
        Archive::list(self).map_err(|e| io::Error::other(format!("{e:#}")))
    }

    fn key_for(&self, rel: &str) -> String {
        self.key(rel)
    }

    fn download(&self, key: &str, to: &std::path::Path) -> io::Result<String> {
        Archive::download(self, key, to).map_err(|e| io::Error::other(format!("{e:#}")))
    }

    fn read_range(&self, key: &str, len: u64, range: Range<u64>) -> io::Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let blocks = self.blocks(key, len, range.start / BLOCK..(range.end - 1) / BLOCK + 1);
        let base = (range.start / BLOCK) * BLOCK;
        let (from, to) = ((range.start - base) as usize, (range.end - base) as usize);
        let short = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{key}: short object at {}", range.start),
            )
        };
        let blocks = blocks?;
        if let [b] = &blocks[..] {
            return b.get(from..to).map(|_| b.slice(from..to)).ok_or_else(short);
        }
        let mut out = Vec::with_capacity(to - from);
        for b in &blocks {
            out.extend_from_slice(b);
        }
        out.get(from..to).ok_or_else(short)?;
        out.truncate(to);
        out.drain(..from);
        Ok(out.into())
    }

    fn stream_range(&self, key: &str, range: Range<u64>) -> Option<RangeStream> {
        let permit = self.streams.clone().try_acquire_owned().ok()?;
        let (tx, stream) = RangeStream::channel(STREAM_QUEUE);
        let (s3, k, name) = (self.s3.clone(), ObjPath::from(key), key.to_owned());
        let at = range.start;
        let fail = move |e: object_store::Error| {
            io::Error::other(format!("streaming {name} from {at}: {e}"))
        };
        runtime().spawn(async move {
            // Held until the GET ends or its reader goes.
            let _permit = permit;
            let opts = object_store::GetOptions {
                range: Some(object_store::GetRange::Bounded(range)),
                ..Default::default()
            };
            let body = tokio::select! {
                _ = tx.closed() => return,
                got = s3.get_opts(&k, opts) => got,
            };
            // Body errors are retried by object_store from where they stopped.
            let mut body = match body {
                Ok(b) => b.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(fail(e))).await;
                    return;
                }
            };
            let (mut batch, mut n) = (Vec::new(), 0);
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => return,
                    next = body.try_next() => next,
                };
                match next {
                    Ok(Some(b)) => {
                        n += b.len();
                        batch.push(b);
                        if n < STREAM_BATCH {
                            continue;
                        }
                    }
                    Ok(None) if batch.is_empty() => return,
                    Ok(None) => {
                        let _ = tx.send(Ok(batch)).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(fail(e))).await;
                        return;
                    }
                }
                if tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                    return;
                }
                n = 0;
            }
        });
        Some(stream)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::other(format!(
                "{key}: this node reads the archive only"
            )));
        }
        self.ensure_owner()
            .map_err(|e| io::Error::other(format!("not deleting {key}: {e:#}")))?;
        let s3 = self.s3.clone();
        let k = ObjPath::from(key);
        match block_on(async move { s3.delete(&k).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io::Error::other(format!("deleting {key}: {e}"))),
        }
    }
}

/// A ranged GET of one block, awaited by whoever needs the block.
type Fetch = Shared<BoxFuture<'static, Result<Bytes, String>>>;

/// The read side: cached blocks, blocks being fetched, and where each object's reader
/// was, to tell a sequential reader (worth reading ahead for) from a seek.
#[derive(Default)]
struct Reads {
    cache: Cache,
    in_flight: HashMap<(String, u64), Fetch>,
    /// Read-ahead blocks among `in_flight`.
    ahead: usize,
    read_ahead: ReadAhead,
    /// Per object, the last block a read reached and how many reads in a row moved
    /// forward to get there.
    last: HashMap<String, (u64, u32)>,
}

impl Archive {
    /// Empties the read cache (benchmarks measure cold reads with it).
    pub fn clear_cache(&self) {
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).cache = Cache::default();
    }

    /// Sets how far ahead reads are fetched (benchmarks compare settings with it).
    pub fn set_read_ahead(&self, ra: ReadAhead) {
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read_ahead = ra;
    }

    /// Blocks `want` of an object, in order: from the cache, from GETs already in flight,
    /// or fetched now, all at once. A read that moves on from where the last read of the
    /// object ended also starts GETs for the blocks after it (see [`ReadAhead`]), which
    /// land in the cache.
    fn blocks(&self, key: &str, len: u64, want: Range<u64>) -> io::Result<Vec<Bytes>> {
        let count = len.div_ceil(BLOCK);
        let mut waits = Vec::new();
        {
            let mut r = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            if r.last.len() > 1024 {
                r.last.clear();
            }
            let prev = r.last.get(key).copied();
            let run = match prev {
                Some((p, run)) if want.start <= p + 1 && want.end > p + 1 => run + 1,
                _ => 0,
            };
            r.last.insert(key.to_owned(), (want.end - 1, run));
            for block in want.clone() {
                let id = (key.to_owned(), block);
                let w = match (r.cache.get(&id), r.in_flight.get(&id)) {
                    (Some(b), _) => futures::future::ready(Ok(b)).boxed().shared(),
                    (None, Some(f)) => f.clone(),
                    (None, None) => self
                        .fetch(&mut r, key, len, block..block + 1, false)
                        .remove(0),
                };
                waits.push(w);
            }
            let budget = r.read_ahead.max_in_flight.saturating_sub(r.ahead);
            let have = |b: u64| {
                let id = (key.to_owned(), b);
                r.cache.contains(&id) || r.in_flight.contains_key(&id)
            };
            let spans = ahead_spans(r.read_ahead, run, want.end, count, budget, have);
            for span in spans {
                // Their own task drives them; nobody waits for them yet.
                drop(self.fetch(&mut r, key, len, span, true));
            }
        }
        block_on(futures::future::join_all(waits))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(io::Error::other)
    }

    /// Starts one ranged GET of `blocks` of an object on the archive runtime and returns
    /// a future per block; the blocks go into the cache when they arrive, whether or not
    /// anyone waits for them. `ahead`: a read-ahead GET (counted against
    /// [`ReadAhead::max_in_flight`]).
    fn fetch(
        &self,
        r: &mut Reads,
        key: &str,
        len: u64,
        blocks: Range<u64>,
        ahead: bool,
    ) -> Vec<Fetch> {
        let start = blocks.start * BLOCK;
        let end = (blocks.end * BLOCK).min(len);
        let (s3, k, name) = (self.s3.clone(), ObjPath::from(key), key.to_owned());
        let get = async move {
            s3.get_range(&k, start..end)
                .await
                .map_err(|e| format!("reading {name} at {start}: {e}"))
        }
        .boxed()
        .shared();
        let n = (blocks.end - blocks.start) as usize;
        let mut out = Vec::with_capacity(n);
        for block in blocks.clone() {
            let off = ((block - blocks.start) * BLOCK) as usize;
            let part = if n == 1 {
                get.clone()
            } else {
                get.clone()
                    .map(move |got| {
                        let b = got?;
                        let to = (off + BLOCK as usize).min(b.len());
                        b.get(off..to)
                            .map(|_| b.slice(off..to))
                            .ok_or_else(|| format!("short read at {}", start + off as u64))
                    })
                    .boxed()
                    .shared()
            };
            r.in_flight.insert((key.to_owned(), block), part.clone());
            out.push(part);
        }
        if ahead {
            r.ahead += n;
        }
        let (reads, name) = (self.reads.clone(), key.to_owned());
        runtime().spawn(async move {
            let got = get.await;
            let mut r = reads.lock().unwrap_or_else(|e| e.into_inner());
            if ahead {
                r.ahead -= n;
            }
            for block in blocks {
                let id = (name.clone(), block);
                r.in_flight.remove(&id);
                if let Ok(b) = &got {
                    let off = ((block - (start / BLOCK)) * BLOCK) as usize;
                    let to = (off + BLOCK as usize).min(b.len());
                    if off < to {
                        r.cache.put(id, b.slice(off..to));
                    }
                }
            }
        });
        out
    }
}

/// The read-ahead GETs (block ranges) to start for a reader whose read ended before block
/// `from` after `run` forward reads in a row, in an object of `count` blocks: the
/// missing blocks of the window after `from`, in GETs of a whole span each (or up to
/// the object's end), until `budget` blocks are asked for. A window that slid by one
/// block waits until a whole span fits rather than sending a GET for one block. `have`:
/// whether a block is cached or being fetched.
fn ahead_spans(
    ra: ReadAhead,
    run: u32,
    from: u64,
    count: u64,
    budget: usize,
    have: impl Fn(u64) -> bool,
) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    if run == 0 {
        return out;
    }
    let window = (ra.first << (run - 1).min(8)).min(ra.max);
    let span = (window / ra.spans_per_window.max(1)).max(1);
    let end = (from + window).min(count);
    let (mut block, mut asked) = (from, 0usize);
    while block < end && asked < budget {
        if have(block) {
            block += 1;
            continue;
        }
        let limit = (block + span).min(count);
        if limit > end && limit < count {
            break;
        }
        let mut to = block + 1;
        while to < limit && !have(to) {
            to += 1;
        }
        out.push(block..to);
        asked += (to - block) as usize;
        block = to;
    }
    out
}

/// Least-recently-inserted block cache with a byte cap.
#[derive(Default)]
struct Cache {
    blocks: HashMap<(String, u64), Bytes>,
    order: VecDeque<(String, u64)>,
    bytes: usize,
}

impl Cache {
    fn get(&self, id: &(String, u64)) -> Option<Bytes> {
        self.blocks.get(id).cloned()
    }

    fn contains(&self, id: &(String, u64)) -> bool {
        self.blocks.contains_key(id)
    }

    fn put(&mut self, id: (String, u64), b: Bytes) {
        self.bytes += b.len();
        if let Some(old) = self.blocks.insert(id.clone(), b) {
            self.bytes -= old.len();
        } else {
            self.order.push_back(id);
        }
        while self.bytes > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.blocks.remove(&old) {
                self.bytes -= b.len();
            }
        }
    }
}

/// What one archive pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Segments uploaded.
    pub uploaded: u64,
    /// Local copies deleted (of segments archived now or by an interrupted pass).
    pub dropped_local: u64,
    /// Segments old enough that are still local.
    pub pending: u64,
}

/// One pass: uploads every finished segment whose end is older than `after`, oldest
/// first, and drops local copies of archived ones. `cursors` remembers, per camera, the
/// start before which everything is archived and local copies are gone, so a pass reads
/// only the rows it may act on. Blocking.
pub fn pass(
    store: &Store,
    archive: &Archive,
    now_ns: i64,
    cursors: &mut HashMap<String, i64>,
) -> anyhow::Result<Pass> {
    let mut out = Pass::default();
    if archive.read_only {
        return Ok(out);
    }
    archive.identify(store)?;
    archive.ensure_owner()?;
    let cutoff = now_ns - archive.after.as_nanos() as i64;
    let mut cameras: Vec<String> = store.usage().keys().cloned().collect();
    cameras.sort();
    // Every camera's rows first, so the backlog shown is whole even when an upload
    // fails part way.
    let mut work = Vec::new();
    let mut backlog = std::collections::BTreeMap::new();
    for camera in cameras {
        let from = cursors.get(&camera).copied().unwrap_or(i64::MIN);
        let rows: Vec<SegmentRecord> = store
            .segments(&camera, from, cutoff)?
            .into_iter()
            .filter(|r| r.end_ns <= cutoff)
            .collect();
        let waiting = rows
            .iter()
            .filter(|r| r.archived.is_none() && store.file_path(r).exists());
        let b = waiting.fold((0u64, 0u64), |(n, b), r| (n + 1, b + r.bytes));
        backlog.insert(camera.clone(), b);
        work.push((camera, from, rows));
    }
    archive.with_status(|st| {
        st.cameras.retain(|id, _| backlog.contains_key(id));
        for (id, (n, b)) in &backlog {
            let c = st.cameras.entry(id.clone()).or_default();
            c.backlog_segments = *n;
            c.backlog_bytes = *b;
        }
    });
    for (camera, from, rows) in work {
        let mut clean_to = from;
        for rec in rows {
            if rec.archived.is_none() {
                if !store.file_path(&rec).exists() {
                    // Retention deleted it meanwhile, or it was lost (`check` reports
                    // it): one missing file must not stop every later upload.
                    warn!(camera = %rec.camera, segment = %rec.path, "indexed segment has no local file; not archiving it");
                    continue;
                }
                out.pending += 1;
                let a = archive.upload(store, &rec).inspect_err(|e| {
                    let msg = archive.redact(&format!("{e:#}"));
                    archive.with_status(|st| {
                        st.cameras.entry(camera.clone()).or_default().last_error = Some(msg)
                    });
                })?;
                if !store.mark_archived(&rec, a.clone())? {
                    // Retention deleted the row while we uploaded: the object is garbage.
                    archive.delete(&a.key).ok();
                    continue;
                }
                out.uploaded += 1;
                out.pending -= 1;
                archive.pace(rec.bytes);
            }
            if store.drop_local(&rec)? {
                out.dropped_local += 1;
            }
            clean_to = rec.start_ns + 1;
        }
        archive.with_status(|st| {
            st.cameras.entry(camera.clone()).or_default().last_error = None;
        });
        if clean_to > from {
            cursors.insert(camera, clean_to);
        }
    }
    if out.uploaded > 0 || out.dropped_local > 0 {
        info!(
            uploaded = out.uploaded,
            dropped_local = out.dropped_local,
            "archive"
        );
    }
    Ok(out)
}

/// Runs archive passes until `shutdown`: every few seconds while it works, backing off
/// (doubling up to a minute) while the archive is unreachable. Recording never waits on
/// this.
pub async fn run(
    store: Arc<Store>,
    archive: Arc<Archive>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let poll = (archive.after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut backoff = Duration::from_secs(1);
    let mut cursors = HashMap::new();
    loop {
        let (s, a) = (store.clone(), archive.clone());
        let mut c = std::mem::take(&mut cursors);
        let r = tokio::task::spawn_blocking(move || {
            let r = pass(&s, &a, crate::clock::SystemClock.now_ns(), &mut c);
            (r, c)
        })
        .await;
        let wait = match r {
            Ok((Ok(p), c)) => {
                cursors = c;
                archive.with_status(|st| {
                    st.pending = p.pending;
                    st.failures = 0;
                    st.last_error = None;
                });
                backoff = Duration::from_secs(1);
                poll
            }
            Ok((Err(e), c)) => {
                cursors = c;
                let msg = archive.redact(&format!("{e:#}"));
                warn!(error = %msg, retry_in = ?backoff, "archive pass failed; recording continues, will retry");
                archive.with_status(|st| {
                    st.failures += 1;
                    st.last_error = Some(msg);
                    st.last_error_ns = Some(crate::clock::SystemClock.now_ns());
                });
                let w = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                w
            }
            Err(e) => {
                warn!(error = %e, "archive task");
                backoff
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Connects the configured archive to `store` (reads of archived segments go through it)
/// and returns it; `None` without `[archive]`. Blocking.
pub fn connect(store: &Store, cfg: &crate::config::Config) -> anyhow::Result<Option<Arc<Archive>>> {
    let Some(a) = &cfg.archive else {
        return Ok(None);
    };
    let archive = Arc::new(Archive::new(a, &node_name())?);
    archive.identify(store)?;
    store.set_remote(archive.clone());
    Ok(Some(archive))
}

/// `url` without a user name or password in it.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "the configured url".into(),
    }
}

/// This machine's host name: the default key prefix, so nodes sharing a bucket never
/// share keys.
fn node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let n = buf.iter().position(|b| *b == 0).unwrap_or(0);
    match std::str::from_utf8(&buf[..n]) {
        Ok(s) if ok && !s.is_empty() => s.to_owned(),
        _ => "cleannvr".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_parses_units() {
        assert_eq!(parse_after("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_after("20s"), Some(Duration::from_secs(20)));
        assert_eq!(parse_after("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_after("3h"), Some(Duration::from_secs(10_800)));
        assert_eq!(parse_after("2w"), None);
        assert_eq!(parse_after("d"), None);
    }

    #[test]
    // One-span answers are written `[a..b]`: a list of one range, not a range's items.
    #[allow(clippy::single_range_in_vec_init)]
    fn read_ahead_grows_in_whole_spans_within_its_budget() {
        let ra = ReadAhead::default();
        let none = |_: u64| false;
        // A first read (or a seek) fetches nothing ahead.
        assert!(ahead_spans(ra, 0, 1, 100, 16, none).is_empty());
        // Then 4 blocks, one GET each; 8 in GETs of 2; 16 in GETs of 4; 32 in GETs of 8.
        assert_eq!(
            ahead_spans(ra, 1, 1, 100, 32, none),
            [1..2, 2..3, 3..4, 4..5]
        );
        assert_eq!(
            ahead_spans(ra, 2, 2, 100, 32, none),
            [2..4, 4..6, 6..8, 8..10]
        );
        assert_eq!(
            ahead_spans(ra, 3, 3, 100, 32, none),
            [3..7, 7..11, 11..15, 15..19]
        );
        assert_eq!(
            ahead_spans(ra, 9, 4, 100, 32, none),
            [4..12, 12..20, 20..28, 28..36]
        );
        // Blocks cached or in flight are skipped; a window that slid by one block
        // waits for a whole span.
        let have = |b: u64| (5..21).contains(&b);
        assert!(ahead_spans(ra, 3, 5, 100, 32, have).is_empty());
        assert!(ahead_spans(ra, 3, 8, 100, 32, have).is_empty());
        assert_eq!(ahead_spans(ra, 3, 9, 100, 32, have), [21..25]);
        let have = |b: u64| (5..21).contains(&b) || b == 23;
        assert_eq!(ahead_spans(ra, 3, 12, 100, 32, have), [21..23, 24..28]);
        // The object's tail is fetched even when shorter than a span.
        assert_eq!(ahead_spans(ra, 3, 20, 22, 32, none), [20..22]);
        // The budget (read-ahead already in flight over all readers) stops it.
        assert!(ahead_spans(ra, 3, 3, 100, 0, none).is_empty());
        assert_eq!(ahead_spans(ra, 3, 3, 100, 5, none), [3..7, 7..11]);
        // The read-ahead it replaced: 4 blocks, one GET each, growing never.
        assert_eq!(
            ahead_spans(ReadAhead::FIXED_4, 9, 10, 100, 8, none),
            [10..11, 11..12, 12..13, 13..14]
        );
    }

    #[test]
    fn cache_keeps_under_its_cap() {
        let mut c = Cache::default();
        for i in 0..100u64 {
            c.put(("k".into(), i), Bytes::from(vec![0u8; 1 << 20]));
        }
        assert!(c.bytes <= CACHE_BYTES);
        assert!(c.get(&("k".into(), 99)).is_some());
        assert!(c.get(&("k".into(), 0)).is_none());
    }
}
