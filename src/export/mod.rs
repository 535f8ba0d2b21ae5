//! Evidential export: a time range of one or more cameras written as MP4 files (remuxed by
//! [`playback`](crate::playback), never re-encoded) and sealed as an exhibit package:
//! `manifest.json` (what was asked for, what was found, the gaps, the SHA-256 of every
//! file, who, when, why, and what is known of the clocks), `manifest.sig` (Ed25519 by the
//! server's [`signing`] key), `signing-key.pub`, `README.txt` (how to check it) and
//! `SHA256SUMS`, which `sha256sum -c` checks without our tools.
//!
//! Owns the export directory layout and the manifest format, and verification of both.
//! Never touches the recordings (read only) and never decides who may export: callers check
//! roles and record the manifest's hash in the audit log.

pub mod cli;
pub mod derived;
pub mod disclosure;
pub mod jobs;
pub mod player;
pub mod quota;
pub mod signing;
pub mod zip;

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{local_time, rfc3339, zone_name};
use crate::playback::{self, PlanError, PlanReader, Span};
use crate::store::{sync_dir, Store};

/// Manifest format identifier; bump on incompatible changes. Version 2 packages are
/// signed; version 1 (before signing) are still verified, as unsigned.
pub const FORMAT: &str = "cleannvr-export/2";
/// The format before packages were signed.
pub const FORMAT_UNSIGNED: &str = "cleannvr-export/1";
/// Name of the manifest in an export directory.
pub const MANIFEST: &str = "manifest.json";
/// Name of the `sha256sum -c` file in an export directory.
pub const SUMS: &str = "SHA256SUMS";
/// Ed25519 signature over the exact bytes of [`MANIFEST`] (128 lowercase hex + newline).
pub const SIGNATURE: &str = "manifest.sig";
/// The signing public key (64 lowercase hex + newline).
pub const PUBLIC_KEY: &str = "signing-key.pub";
/// Plain-words instructions for whoever receives the package.
pub const README: &str = "README.txt";
pub use player::PLAYER;
/// Files of a package that the manifest cannot list (they are made from it or seal it).
/// Downloading them needs the same rights as the manifest.
pub const PACKAGE_FILES: [&str; 6] = [MANIFEST, PLAYER, SIGNATURE, PUBLIC_KEY, README, SUMS];
/// Longest range one export may cover (as for recordings queries).
pub const MAX_RANGE_NS: i64 = 31 * 86_400 * 1_000_000_000;

/// What to export.
#[derive(Clone, Debug)]
pub struct Request {
    /// Camera ids, each with its display name for the manifest.
    pub cameras: Vec<(String, String)>,
    /// Start, ns since the epoch.
    pub start_ns: i64,
    /// End, ns since the epoch.
    pub end_ns: i64,
    /// Why (free text from the requester, recorded in the manifest).
    pub reason: String,
    /// Who: a user name, or `cli`.
    pub user: String,
    /// The zone for the manifest's local times (`[server] timezone`).
    pub time_zone: jiff::tz::TimeZone,
    /// Also make an H.264 working copy of every master ([`derived`]).
    pub working_copy: bool,
    /// Export redacted copies instead of the masters ([`derived`]).
    pub redact: Option<crate::transcode::redact::Redaction>,
    /// Who receives it and why ([`disclosure`]); required from the web.
    pub disclosure: Option<disclosure::Disclosure>,
}

/// A time range as RFC 3339 strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Start.
    pub start: String,
    /// End.
    pub end: String,
}

impl From<Span> for Range {
    fn from(s: Span) -> Range {
        Range {
            start: rfc3339(s.start_ns),
            end: rfc3339(s.end_ns),
        }
    }
}

/// One exported file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name within the export directory.
    pub file: String,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Codec as indexed (RFC 6381 string).
    pub codec: String,
    /// Video width.
    pub width: u16,
    /// Video height.
    pub height: u16,
    /// Whether the file has an audio track.
    pub audio: bool,
    /// Whether that track is silence put in place of the recorded sound (a redaction's
    /// `mute_audio`): as long as the sound was, so timing is unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audio_muted: bool,
    /// Video frames in the file, counted from the written file.
    pub frames: u64,
    /// The range the file presents (its edit list).
    pub presents: Range,
    /// Wall time of the file's first frame (the key frame at or before `presents.start`).
    pub first_frame: String,
    /// Recording gaps inside `presents`'s part of the request.
    pub gaps: Vec<Range>,
    /// Source segments, relative to the storage directory.
    pub segments: Vec<String>,
    /// What the file is: [`derived::MASTER`] (the recordings' own bytes, the evidence),
    /// [`derived::WORKING_COPY`] (H.264 converted from `derived_from` with the date and
    /// time burned in, to play anywhere) or [`derived::REDACTED`] (see `redaction`).
    #[serde(default = "master_role")]
    pub role: String,
    /// For a working copy: the master it was converted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<String>,
}

fn master_role() -> String {
    derived::MASTER.into()
}

/// One camera's part of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraEntry {
    /// Camera id.
    pub camera: String,
    /// Display name at the time of export.
    pub name: String,
    /// Files, one per run of unchanged codec parameters; empty if nothing was recorded.
    pub files: Vec<FileEntry>,
    /// Recording gaps in the requested range.
    pub gaps: Vec<Range>,
    /// What the files present, in order (the requested range less the gaps, widened to
    /// whole frames).
    #[serde(default)]
    pub delivered: Vec<Range>,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// `cleannvr <version>`.
    pub server: String,
    /// Who exported: a user name, or `cli`.
    pub exported_by: String,
    /// When the export was made.
    pub exported_at: String,
    /// The requester's reason.
    pub reason: String,
    /// The range asked for.
    pub requested: Range,
    /// Per camera, in request order.
    pub cameras: Vec<CameraEntry>,
    /// The zone of `local_times`: an IANA name such as `Europe/London`.
    #[serde(default)]
    pub time_zone: String,
    /// The times above as local time in `time_zone`, with the offset and abbreviation
    /// (GMT/BST), for people to read; the UTC times above are the reference.
    #[serde(default)]
    pub local_times: LocalTimes,
    /// The server's host name.
    #[serde(default)]
    pub server_name: String,
    /// Fingerprint (SHA-256 of the public key, hex) of the key that signs this manifest.
    #[serde(default)]
    pub signing_key_fingerprint: String,
    /// How far the times can be trusted.
    #[serde(default)]
    pub time_accuracy: Option<TimeAccuracy>,
    /// The redaction applied to every file, if this is a redacted export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<derived::RedactionRecord>,
    /// To whom and on what basis the footage is disclosed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<disclosure::Disclosure>,
}

/// The time-accuracy statement of a manifest: what the times are based on, what is known
/// of the server clock's synchronisation over the range, and per camera how far its clock
/// ran from the server's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeAccuracy {
    /// What every time in the package is, in plain words.
    pub basis: String,
    /// The server clock over the requested range.
    pub server_clock: crate::timesync::ServerClock,
    /// Per camera, in request order.
    pub cameras: Vec<CameraClock>,
}

/// How far one camera's clock ran from the server's over the exported segments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraClock {
    /// Camera id.
    pub camera: String,
    /// Segments measured.
    pub segments: u64,
    /// Smallest camera-minus-server difference, ms (`None`: nothing measured).
    pub drift_ms_min: Option<i64>,
    /// Largest camera-minus-server difference, ms.
    pub drift_ms_max: Option<i64>,
    /// The same in plain words.
    pub summary: String,
}

const TIME_BASIS: &str = "Every time in this package is the server's clock: each camera \
session is anchored to the server's time when its first frame arrived and advanced by the \
camera's own frame timestamps; a jump in those timestamps re-anchors it. The camera's \
date and time setting is not used.";

fn camera_clock(camera: &str, segs: &[crate::store::SegmentRecord]) -> CameraClock {
    let drifts: Vec<i64> = segs.iter().map(|s| s.drift_ms).collect();
    let (min, max) = (drifts.iter().min().copied(), drifts.iter().max().copied());
    let summary = match (min, max) {
        (Some(a), Some(b)) => format!(
            "Over {} recorded segments the camera's clock ran between {a} ms and {b} ms from \
             the server's (camera minus server, measured at the end of each segment since the \
             start of its session).",
            drifts.len()
        ),
        _ => "Unknown: nothing was recorded in the range.".into(),
    };
    CameraClock {
        camera: camera.to_owned(),
        segments: drifts.len() as u64,
        drift_ms_min: min,
        drift_ms_max: max,
        summary,
    }
}

/// The server's host name, for the manifest (empty if it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is NUL-terminated on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A manifest's times in local time (see [`crate::clock::local_time`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTimes {
    /// When the export was made.
    pub exported_at: String,
    /// The range asked for.
    pub requested: Range,
    /// Per camera, in request order.
    pub cameras: Vec<LocalCamera>,
}

/// One camera's local times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCamera {
    /// Camera id.
    pub camera: String,
    /// Recording gaps in the requested range.
    pub gaps: Vec<Range>,
    /// Per file: the range it presents and its first frame.
    pub files: Vec<LocalFile>,
}

/// One file's local times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalFile {
    /// File name.
    pub file: String,
    /// The range the file presents.
    pub presents: Range,
    /// Wall time of the file's first frame.
    pub first_frame: String,
}

fn local_range(s: Span, tz: &jiff::tz::TimeZone) -> Range {
    Range {
        start: local_time(s.start_ns, tz),
        end: local_time(s.end_ns, tz),
    }
}

impl Manifest {
    /// Every file in the manifest.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.cameras.iter().flat_map(|c| &c.files)
    }
}

/// Bytes written so far and in total, for progress reports from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes to write (known once every range is planned).
    pub total: AtomicU64,
    /// Bytes written.
    pub done: AtomicU64,
}

/// What an export produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The manifest as written.
    pub manifest: Manifest,
    /// SHA-256 of `manifest.json` (hex): the value to record in the audit log.
    pub manifest_sha256: String,
}

/// Checks a request before any work: non-empty, ordered, bounded. Every
/// refusal is the requester's to fix ([`ErrorKind::InvalidArgument`]).
///
/// [`ErrorKind::InvalidArgument`]: crate::error::ErrorKind::InvalidArgument
pub fn validate(req: &Request) -> crate::error::Result<()> {
    check_request(req).map_err(|e| crate::error::Error::invalid_argument(format!("{e:#}")))
}

fn check_request(req: &Request) -> anyhow::Result<()> {
    ensure!(!req.cameras.is_empty(), "no cameras to export");
    ensure!(req.end_ns > req.start_ns, "end must be after start");
    ensure!(
        req.end_ns - req.start_ns <= MAX_RANGE_NS,
        "range longer than 31 days"
    );
    ensure!(!req.reason.trim().is_empty(), "a reason is required");
    ensure!(req.reason.len() <= 2000, "reason longer than 2000 bytes");
    let mut ids: Vec<&str> = req.cameras.iter().map(|c| c.0.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ensure!(ids.len() == req.cameras.len(), "camera listed twice");
    if let Some(r) = &req.redact {
        r.resolve()?;
    }
    if let Some(d) = &req.disclosure {
        let today = jiff::Timestamp::now()
            .to_zoned(req.time_zone.clone())
            .date();
        d.validate(today)?;
    }
    Ok(())
}

/// An export planned but not yet written: every camera's remux plans and gaps, and the
/// exact bytes its video files will take (for the quota check before anything is written).
pub struct Planned {
    cameras: Vec<PlannedCamera>,
    server_clock: crate::timesync::ServerClock,
    /// Bytes of the video files to be copied.
    pub bytes: u64,
    /// Bytes reserved for converted files (an estimate: see [`derived::estimate_bytes`]).
    pub converted_bytes: u64,
    /// Source segments and gaps the manifest will list.
    manifest_entries: u64,
}

impl Planned {
    /// Bytes to reserve under the export quota beyond the fixed
    /// [`quota::OVERHEAD_BYTES`]: the videos, and the manifest entries that grow
    /// `manifest.json` and `player.html` with the length of the range.
    pub fn need_bytes(&self) -> u64 {
        self.bytes
            .saturating_add(self.converted_bytes)
            .saturating_add(
                self.manifest_entries
                    .saturating_mul(quota::BYTES_PER_MANIFEST_ENTRY),
            )
    }
}

struct PlannedCamera {
    id: String,
    name: String,
    plans: Vec<playback::Plan>,
    gaps: Vec<Span>,
    clock: CameraClock,
}

/// Plans every camera of `req` (reads the index only). Blocking.
pub fn plan(store: &Store, req: &Request) -> anyhow::Result<Planned> {
    validate(req)?;
    let mut cameras = Vec::new();
    let mut bytes = 0;
    let mut converted_bytes = 0;
    let mut manifest_entries = 0;
    for (id, name) in &req.cameras {
        let plans = match playback::plan_parts(store, id, req.start_ns, req.end_ns) {
            Ok(p) => p,
            Err(PlanError::NothingRecorded) => Vec::new(),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("camera {id}"))),
        };
        let segs = store.segments(id, req.start_ns, req.end_ns)?;
        let gaps = playback::gaps(&segs, req.start_ns, req.end_ns);
        if req.redact.is_none() {
            bytes += plans.iter().map(|p| p.len).sum::<u64>();
        }
        if req.redact.is_some() || req.working_copy {
            converted_bytes += plans.iter().map(derived::estimate_bytes).sum::<u64>();
        }
        manifest_entries += (segs.len() + gaps.len()) as u64;
        cameras.push(PlannedCamera {
            id: id.clone(),
            name: name.clone(),
            plans,
            gaps,
            clock: camera_clock(id, &segs),
        });
    }
    let samples = crate::timesync::Log::open(store.db())?.around(req.start_ns, req.end_ns)?;
    let server_clock = crate::timesync::server_clock(&samples, req.start_ns, req.end_ns);
    Ok(Planned {
        cameras,
        server_clock,
        bytes,
        converted_bytes,
        manifest_entries,
    })
}

/// Writes a planned export into `dir` (an empty directory; see
/// [`jobs::write_recorded`], the one caller, which creates it and records the export).
/// Blocking.
///
/// Files are written and fsynced before the manifest, and the manifest before `SHA256SUMS`,
/// so a crash leaves no manifest promising files that are not complete.
fn write(
    planned: Planned,
    req: &Request,
    dir: &Path,
    now_ns: i64,
    progress: &Progress,
    signer: &signing::Signer,
) -> anyhow::Result<Outcome> {
    progress.total.fetch_add(planned.bytes, Ordering::Relaxed);

    let tz = &req.time_zone;
    let mut sums = String::new();
    let mut cameras = Vec::new();
    let mut local_cameras = Vec::new();
    let mut clocks = Vec::new();
    for PlannedCamera {
        id,
        name,
        plans,
        gaps,
        clock,
    } in planned.cameras
    {
        clocks.push(clock);
        let n = plans.len();
        let mut files = Vec::new();
        let mut local_files = Vec::new();
        for (i, plan) in plans.into_iter().enumerate() {
            let stem = if n == 1 {
                id.clone()
            } else {
                format!("{id}-part{}", i + 1)
            };
            let plan = Arc::new(plan);
            let entry = |file: String, sha256: String, bytes: u64, role: &str| FileEntry {
                file,
                sha256,
                bytes,
                codec: plan.codec.clone(),
                width: plan.width,
                height: plan.height,
                audio: plan.has_audio,
                audio_muted: false,
                frames: 0,
                presents: plan.actual.into(),
                first_frame: rfc3339(plan.first_frame_ns),
                gaps: plan.gaps.iter().map(|g| (*g).into()).collect(),
                segments: plan.segment_paths.clone(),
                role: role.into(),
                derived_from: None,
            };
            let mut master = None;
            if req.redact.is_none() {
                let file = format!("{stem}.mp4");
                let path = dir.join(&file);
                let (sha256, bytes) = write_hashed(&plan, &path, progress)?;
                let frames = count_frames(&path, &file)?;
                master = Some(path);
                files.push(FileEntry {
                    frames,
                    ..entry(file, sha256, bytes, derived::MASTER)
                });
            }
            if req.redact.is_some() || req.working_copy {
                let (file, role, source) = match master {
                    Some(p) => (
                        format!("{stem}-working-copy.mp4"),
                        derived::WORKING_COPY,
                        derived::Source::Master(p),
                    ),
                    None => (
                        format!("{stem}-redacted.mp4"),
                        derived::REDACTED,
                        derived::Source::Recordings(plan.clone()),
                    ),
                };
                let redact = req.redact.as_ref().map(|r| r.resolve()).transpose()?;
                let (sha256, bytes, conv) =
                    derived::write_converted(source, &plan, &dir.join(&file), tz, redact)?;
                let from = files.last().filter(|_| role == derived::WORKING_COPY);
                let derived_from = from.map(|f| f.file.clone());
                files.push(FileEntry {
                    codec: conv.codec,
                    width: conv.width,
                    height: conv.height,
                    audio: conv.audio,
                    audio_muted: conv.muted,
                    frames: conv.frames,
                    derived_from,
                    ..entry(file, sha256, bytes, role)
                });
            }
            for f in files.iter().skip(local_files.len()) {
                sums.push_str(&format!("{}  {}\n", f.sha256, f.file));
                local_files.push(LocalFile {
                    file: f.file.clone(),
                    presents: local_range(plan.actual, tz),
                    first_frame: local_time(plan.first_frame_ns, tz),
                });
            }
        }
        local_cameras.push(LocalCamera {
            camera: id.clone(),
            gaps: gaps.iter().map(|g| local_range(*g, tz)).collect(),
            files: local_files,
        });
        cameras.push(CameraEntry {
            camera: id,
            name,
            delivered: files
                .iter()
                .filter(|f| f.derived_from.is_none())
                .map(|f| f.presents.clone())
                .collect(),
            files,
            gaps: gaps.into_iter().map(Range::from).collect(),
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        server: format!("cleannvr {}", env!("CARGO_PKG_VERSION")),
        exported_by: req.user.clone(),
        exported_at: rfc3339(now_ns),
        reason: req.reason.clone(),
        requested: Span {
            start_ns: req.start_ns,
            end_ns: req.end_ns,
        }
        .into(),
        cameras,
        time_zone: zone_name(tz),
        local_times: LocalTimes {
            exported_at: local_time(now_ns, tz),
            requested: local_range(
                Span {
                    start_ns: req.start_ns,
                    end_ns: req.end_ns,
                },
                tz,
            ),
            cameras: local_cameras,
        },
        server_name: host_name(),
        signing_key_fingerprint: signer.fingerprint(),
        time_accuracy: Some(TimeAccuracy {
            basis: TIME_BASIS.into(),
            server_clock: planned.server_clock,
            cameras: clocks,
        }),
        redaction: req.redact.as_ref().map(|r| derived::RedactionRecord {
            spec: r.clone(),
            range: Span {
                start_ns: req.start_ns,
                end_ns: req.end_ns,
            }
            .into(),
            by: req.user.clone(),
            note: derived::redaction_note(r),
        }),
        disclosure: req.disclosure.clone(),
    };
    let mut json = serde_json::to_vec_pretty(&manifest)?;
    json.push(b'\n');
    let manifest_sha256 = sha256_hex(&json);

    // Sealing the package, in this order: the media files are on disk (above); then
    // 1. manifest.json, listing every media file's hash;
    write_synced(&dir.join(MANIFEST), &json)?;
    sums.push_str(&format!("{manifest_sha256}  {MANIFEST}\n"));
    // 2. player.html, the offline player, made from the manifest's exact bytes (so the
    //    manifest cannot list it; SHA256SUMS does);
    player::write_player(dir, &json)?;
    let (player_sha256, _) = hash_file(&dir.join(PLAYER))
        .with_context(|| format!("hashing {}", dir.join(PLAYER).display()))?;
    sums.push_str(&format!("{player_sha256}  {PLAYER}\n"));
    // 3. manifest.sig, the Ed25519 signature over those exact bytes;
    // 4. signing-key.pub, the key to check it with;
    // 5. README.txt, how to check all this;
    let readme = readme(&manifest, signer);
    for (name, bytes) in [
        (SIGNATURE, signer.sign_file(&json).into_bytes()),
        (PUBLIC_KEY, signer.public_key_file().into_bytes()),
        (README, readme.into_bytes()),
    ] {
        write_synced(&dir.join(name), &bytes)?;
        sums.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
    }
    // 6. SHA256SUMS last, over every file but itself.
    write_synced(&dir.join(SUMS), sums.as_bytes())?;
    sync_dir(dir)?;
    Ok(Outcome {
        manifest,
        manifest_sha256,
    })
}

/// `README.txt`: what the package is and how to check it, in plain words.
fn readme(m: &Manifest, signer: &signing::Signer) -> String {
    let fp = signer.fingerprint();
    format!(
        "EVIDENCE EXPORT FROM {server} ({host})

Cameras:   {cameras}
Requested: {start} to {end}
Exported:  {at} by {by}
Reason:    {reason}

WHAT IS HERE
  *.mp4            the footage, copied from the recordings without re-encoding
                   (manifest.json: role \"master\"); this is the evidence
  *-working-copy.mp4  if present: H.264 copies of those files that play on
                   any computer, with the date and time burned into the
                   picture (role \"working_copy\")
  *-redacted.mp4   if present: redacted copies, re-encoded as H.264 with the
                   date and time burned in; what was obscured is under
                   \"redaction\" in manifest.json (role \"redacted\")
  manifest.json    what was asked for, what was found, the gaps, the SHA-256 of
                   every video, who exported it, when and why, and what is known
                   about the accuracy of the clocks
  manifest.sig     the server's Ed25519 signature over manifest.json
  signing-key.pub  the server's public key (hex)
  SHA256SUMS       the SHA-256 of every other file here
  player.html      an offline player (if present): plays the videos with the
                   local date and time and checks the hashes and the signature

HOW TO CHECK IT
1. Check no file changed, with any computer's standard tools:
       sha256sum -c SHA256SUMS
   Every line must say OK.
2. Check the signature and everything the manifest lists, with cleannvr:
       cleannvr export verify THIS_DIRECTORY --key {fp}
   It must end with \"export intact\".
3. Compare the key's fingerprint with the one the server's administrator sees
   (it is also in the server's log at every start). This package was signed by
   the key with SHA-256 fingerprint
       {grouped}
   A signature only proves who made the package if that fingerprint is the
   server's, learnt from the server, not from this package.
4. Or open player.html in a web browser (no network needed) and choose this
   folder when it asks: it shows each check's result.

The signature covers manifest.json, which lists the SHA-256 of every video, so
changing any video or the manifest breaks it. SHA256SUMS and this file are not
signed; they are checked against the manifest by step 2.
",
        server = m.server,
        host = if m.server_name.is_empty() {
            "-"
        } else {
            &m.server_name
        },
        cameras = m
            .cameras
            .iter()
            .map(|c| c.camera.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        start = m.local_times.requested.start,
        end = m.local_times.requested.end,
        at = m.local_times.exported_at,
        by = m.exported_by,
        reason = m
            .reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>(),
        grouped = signing::grouped(&fp),
    )
}

/// Video frames in a written file, counted from its fragments.
fn count_frames(path: &Path, file: &str) -> anyhow::Result<u64> {
    let scanned = crate::mp4::scan_path(path)?;
    ensure!(
        !scanned.is_torn(),
        "{file}: written file does not scan cleanly"
    );
    let video = scanned.video_track().context("no video track")?.track_id;
    Ok(scanned
        .fragments
        .iter()
        .flat_map(|f| &f.runs)
        .filter(|r| r.track_id == video)
        .map(|r| u64::from(r.sample_count))
        .sum())
}

/// Writes a plan to `path` while hashing it; fsyncs. Returns (hex SHA-256, bytes).
fn write_hashed(
    plan: &Arc<playback::Plan>,
    path: &Path,
    progress: &Progress,
) -> anyhow::Result<(String, u64)> {
    struct Hashing<'a> {
        f: std::io::BufWriter<File>,
        h: Sha256,
        progress: &'a Progress,
    }
    impl Write for Hashing<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.f.write(b)?;
            self.h.update(&b[..n]);
            self.progress.done.fetch_add(n as u64, Ordering::Relaxed);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.f.flush()
        }
    }
    let f = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut w = Hashing {
        f: std::io::BufWriter::with_capacity(1 << 20, f),
        h: Sha256::new(),
        progress,
    };
    let n = PlanReader::new(plan.clone())
        .write_all(&mut w)
        .with_context(|| format!("writing {}", path.display()))?;
    w.flush()?;
    let f = w.f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok((hex::encode(w.h.finalize()), n))
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// SHA-256 of `b`, lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// SHA-256 (hex) and length of a file, read in chunks.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verification {
    /// SHA-256 of `manifest.json` as found (compare with the audit log's export entry).
    pub manifest_sha256: String,
    /// The manifest, if it parsed.
    pub manifest: Option<Manifest>,
    /// Files the manifest lists whose hash and size match.
    pub ok: Vec<String>,
    /// What was checked and passed, in plain words.
    pub passed: Vec<String>,
    /// Things a reader should know that are not failures (e.g. no `--key` given).
    pub notes: Vec<String>,
    /// Problems, each naming the file concerned. Empty means the export is intact.
    pub problems: Vec<String>,
    /// Fingerprint of the key whose valid signature the manifest carries.
    pub signed_by: Option<String>,
}

/// Checks an export directory: the manifest's signature (against the package's key, and
/// against `expected_key`, a fingerprint, when given), every file the manifest lists
/// (SHA-256 and size), every line of `SHA256SUMS` (re-hashing the files the manifest
/// cannot list), and completeness (nothing missing, nothing added). Reads only.
pub fn verify(dir: &Path, expected_key: Option<&str>) -> anyhow::Result<Verification> {
    let mpath = dir.join(MANIFEST);
    let json = std::fs::read(&mpath).with_context(|| format!("reading {}", mpath.display()))?;
    let manifest_sha256 = sha256_hex(&json);
    let mut v = Verification {
        manifest_sha256,
        manifest: None,
        ok: Vec::new(),
        passed: Vec::new(),
        notes: Vec::new(),
        problems: Vec::new(),
        signed_by: None,
    };
    let manifest: Manifest = match serde_json::from_slice(&json) {
        Ok(m) => m,
        Err(e) => {
            v.problems
                .push(format!("{MANIFEST}: not a valid manifest: {e}"));
            return Ok(v);
        }
    };
    let signed = manifest.format == FORMAT;
    if !signed && manifest.format != FORMAT_UNSIGNED {
        v.problems
            .push(format!("{MANIFEST}: unknown format {:?}", manifest.format));
    }
    if signed {
        check_signature(dir, &json, &manifest, expected_key, &mut v);
    } else if expected_key.is_some() {
        v.problems.push(format!(
            "{MANIFEST}: this export was made before exports were signed ({FORMAT_UNSIGNED}), so \
             it cannot show it was made with key {}",
            expected_key.unwrap_or_default()
        ));
    } else {
        v.notes.push(format!(
            "this export was made before exports were signed ({FORMAT_UNSIGNED}): only its hashes \
             were checked"
        ));
    }

    for f in manifest.files() {
        let Some(path) = safe_join(dir, &f.file) else {
            v.problems.push(format!(
                "{MANIFEST}: file name {:?} leaves the directory",
                f.file
            ));
            continue;
        };
        match hash_file(&path) {
            Err(e) => v.problems.push(format!("{}: missing or unreadable: {e}", f.file)),
            Ok((sha, n)) if sha != f.sha256 || n != f.bytes => v.problems.push(format!(
                "{}: SHA-256 mismatch (manifest {} / {} bytes, file {sha} / {n} bytes): modified or corrupt",
                f.file, f.sha256, f.bytes
            )),
            Ok(_) => v.ok.push(f.file.clone()),
        }
    }
    if !v.ok.is_empty() && v.ok.len() == manifest.files().count() {
        v.passed.push(format!(
            "videos: all {} files the manifest lists are present and match its SHA-256 and size",
            v.ok.len()
        ));
    }

    let before = v.problems.len();
    let mut summed: Vec<String> = Vec::new();
    let sums_read = match std::fs::read_to_string(dir.join(SUMS)) {
        Err(e) => {
            v.problems
                .push(format!("{SUMS}: missing or unreadable: {e}"));
            false
        }
        Ok(sums) => {
            for line in sums.lines() {
                let Some((sha, name)) = line.split_once("  ") else {
                    v.problems.push(format!("{SUMS}: bad line {line:?}"));
                    continue;
                };
                summed.push(name.to_owned());
                let listed = manifest.files().find(|f| f.file == name);
                let want = if name == MANIFEST {
                    Some(v.manifest_sha256.clone())
                } else if let Some(f) = listed {
                    // Hashed above; the manifest's value is what the file must have.
                    Some(f.sha256.clone())
                } else if PACKAGE_FILES.contains(&name) && name != SUMS {
                    match safe_join(dir, name).map(|p| hash_file(&p)) {
                        Some(Ok((h, _))) => Some(h),
                        _ => {
                            v.problems
                                .push(format!("{name}: listed in {SUMS} but missing"));
                            continue;
                        }
                    }
                } else {
                    v.problems.push(format!(
                        "{SUMS}: lists {name:?}, which is not part of this export"
                    ));
                    continue;
                };
                if want.as_deref() != Some(sha) {
                    let what = if listed.is_some() || name == MANIFEST {
                        "disagrees with the manifest"
                    } else {
                        "does not match the file: modified or corrupt"
                    };
                    v.problems.push(format!("{SUMS}: entry for {name} {what}"));
                }
            }
            true
        }
    };

    // Completeness: every file here belongs to the export and is in SHA256SUMS.
    let listed: Vec<&str> = manifest.files().map(|f| f.file.as_str()).collect();
    let mut present = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        present.push(name.clone());
        if !PACKAGE_FILES.contains(&name.as_str()) && !listed.contains(&name.as_str()) {
            v.problems
                .push(format!("{name}: not part of this export (added later?)"));
        } else if sums_read && name != SUMS && !summed.contains(&name) {
            v.problems.push(format!("{name}: not listed in {SUMS}"));
        }
    }
    if signed {
        for name in [SIGNATURE, PUBLIC_KEY, README, SUMS] {
            if !present.iter().any(|p| p == name) && !v.problems.iter().any(|p| p.starts_with(name))
            {
                v.problems.push(format!("{name}: missing"));
            }
        }
    }
    if v.problems.len() == before {
        v.passed.push(format!(
            "{SUMS}: every other file is listed and matches, nothing is missing and nothing was added"
        ));
    }
    v.manifest = Some(manifest);
    Ok(v)
}

/// Checks `manifest.sig` over the manifest bytes under `signing-key.pub`, that the
/// manifest names that key, and that it is the key the caller expects.
fn check_signature(
    dir: &Path,
    json: &[u8],
    manifest: &Manifest,
    expected_key: Option<&str>,
    v: &mut Verification,
) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    let key = match read(PUBLIC_KEY) {
        Err(e) => {
            return v
                .problems
                .push(format!("{PUBLIC_KEY}: missing or unreadable: {e}"))
        }
        Ok(t) => match signing::parse_public_key(&t) {
            Ok(k) => k,
            Err(e) => return v.problems.push(format!("{PUBLIC_KEY}: {e}")),
        },
    };
    let fp = signing::fingerprint(&key);
    let sig = match read(SIGNATURE) {
        Err(e) => {
            return v
                .problems
                .push(format!("{SIGNATURE}: missing or unreadable: {e}"))
        }
        Ok(t) => t,
    };
    match signing::verify(&key, json, &sig) {
        Err(e) => {
            return v.problems.push(format!(
                "{SIGNATURE}: signature INVALID: {e} ({MANIFEST} was changed after signing, or \
                 the signature or key was replaced)"
            ))
        }
        Ok(()) => v.passed.push(format!(
            "signature: {MANIFEST} is exactly what was signed by the key in {PUBLIC_KEY} \
             (fingerprint {fp})"
        )),
    }
    if manifest.signing_key_fingerprint != fp {
        v.problems.push(format!(
            "{PUBLIC_KEY}: the manifest says it was signed by key {} but the package carries key {fp}",
            manifest.signing_key_fingerprint
        ));
    }
    match expected_key.map(signing::normalise_fingerprint) {
        Some(want) if want == fp => v.passed.push(format!(
            "key: the signing key is the one you named with --key ({})",
            signing::grouped(&fp)
        )),
        Some(want) => v.problems.push(format!(
            "{PUBLIC_KEY}: NOT the key you named: the package was signed by key {fp}, you \
             expected {want}"
        )),
        None => v.notes.push(format!(
            "the signature was checked against the key inside the package; to know who signed \
             it, compare its fingerprint {} with the server's (or pass --key FINGERPRINT)",
            signing::grouped(&fp)
        )),
    }
    v.signed_by = Some(fp);
}

/// Whether a caller may download file `name` of an export with manifest `m`, decided from
/// the caller's rights *now* (a user demoted or limited since the export was made loses
/// access): only roles that may export, a video file only if the caller may see its
/// camera, and the manifest and `SHA256SUMS` (which describe every camera) only if the
/// caller may see all of them. `Ok` carries the camera ids the file shows, for the audit.
pub fn download_scope(
    m: &Manifest,
    name: &str,
    may_export: bool,
    may_see: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    if !may_export {
        return Err("only operators and admins may download exports".into());
    }
    let cameras: Vec<String> = if PACKAGE_FILES.contains(&name) {
        m.cameras.iter().map(|c| c.camera.clone()).collect()
    } else {
        m.cameras
            .iter()
            .filter(|c| c.files.iter().any(|f| f.file == name))
            .map(|c| c.camera.clone())
            .collect()
    };
    match cameras.iter().find(|c| !may_see(c)) {
        Some(c) => Err(format!("not allowed to see camera {c}")),
        None => Ok(cameras),
    }
}

/// `dir/name` if `name` is a plain file name (a hostile manifest must not make us read
/// elsewhere).
fn safe_join(dir: &Path, name: &str) -> Option<PathBuf> {
    let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    ok.then(|| dir.join(name))
}

/// The audit-log detail of an export: where it went, the range, the manifest's SHA-256
/// (so a copy can be checked against the log) and the reason, with control characters
/// masked so a reason cannot forge log lines.
pub fn audit_detail(req: &Request, outcome: &Outcome, location: &str) -> String {
    let reason: String = req
        .reason
        .chars()
        .take(500)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let kind = match (&req.redact, req.working_copy) {
        (Some(r), _) => format!(
            " redacted={} boxes={} invert={} mute_audio={}",
            if r.mode == crate::transcode::redact::Mode::Fill {
                "fill"
            } else {
                "blur"
            },
            r.boxes.len(),
            r.invert,
            r.mute_audio
        ),
        (None, true) => " working_copy=true".into(),
        (None, false) => String::new(),
    };
    // Free text last, control characters defused (they could forge log lines).
    let clean = |s: &str| -> String {
        s.chars()
            .take(300)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let to = match &req.disclosure {
        Some(d) => format!(
            " recipient={:?} reference={:?} legal_basis={:?}",
            clean(&d.recipient),
            clean(&d.reference),
            clean(&d.legal_basis)
        ),
        None => String::new(),
    };
    format!(
        "export={location} start={} end={} files={}{kind} manifest_sha256={}{to} reason={reason}",
        rfc3339(req.start_ns),
        rfc3339(req.end_ns),
        outcome.manifest.files().count(),
        outcome.manifest_sha256,
    )
}

/// A new export id: 16 random bytes as hex (unguessable, so ids can appear in URLs).
pub fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Whether `id` looks like one of ours (before it is used in a path).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Where exports live: a hidden directory in the storage dir, skipped by `check` (which
/// only looks at camera-id directories) and outside any camera's retention.
pub fn exports_dir(storage: &Path) -> PathBuf {
    storage.join(".exports")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_checked() {
        let id = new_id();
        assert!(valid_id(&id), "{id}");
        assert!(!valid_id("../../etc"));
        assert!(!valid_id(&id.to_uppercase()));
        let d = Path::new("/x");
        assert!(safe_join(d, "a.mp4").is_some());
        for bad in ["", "..", "../a.mp4", "a/b", "/etc/passwd"] {
            assert!(safe_join(d, bad).is_none(), "{bad}");
        }
    }

    fn file_entry(f: &str) -> FileEntry {
        FileEntry {
            file: f.into(),
            sha256: String::new(),
            bytes: 0,
            codec: String::new(),
            width: 0,
            height: 0,
            audio: false,
            audio_muted: false,
            frames: 0,
            presents: Range {
                start: String::new(),
                end: String::new(),
            },
            first_frame: String::new(),
            gaps: vec![],
            segments: vec![],
            role: derived::MASTER.into(),
            derived_from: None,
        }
    }

    fn camera_entry(id: &str) -> CameraEntry {
        CameraEntry {
            camera: id.into(),
            name: id.into(),
            files: vec![file_entry(&format!("{id}.mp4"))],
            gaps: vec![],
            delivered: vec![],
        }
    }

    fn manifest(cameras: Vec<CameraEntry>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            server: String::new(),
            exported_by: "op".into(),
            exported_at: String::new(),
            reason: String::new(),
            requested: Range {
                start: String::new(),
                end: String::new(),
            },
            cameras,
            time_zone: String::new(),
            local_times: LocalTimes::default(),
            server_name: String::new(),
            signing_key_fingerprint: String::new(),
            time_accuracy: None,
            redaction: None,
            disclosure: None,
        }
    }

    /// The quota reserves room for the package's own files by the number of manifest
    /// entries; a month of one-minute segments from a camera with a long id must fit.
    #[test]
    fn the_reservation_covers_a_long_exports_manifest_and_player() {
        let id = "c".repeat(64);
        let mut cam = camera_entry(&id);
        let entries = 31 * 24 * 60;
        cam.files[0].segments = (0..entries)
            .map(|i| format!("{id}/2026-10-{:02}/20261025T0{:05}.123Z.mp4", i % 31 + 1, i))
            .collect();
        let json = serde_json::to_vec_pretty(&manifest(vec![cam])).unwrap();
        let package = json.len() + player::render(&json).len();
        let allowance =
            quota::OVERHEAD_BYTES / 2 + entries as u64 * quota::BYTES_PER_MANIFEST_ENTRY;
        assert!(
            (package as u64) < allowance,
            "manifest and player take {package} bytes, the reservation allows {allowance}"
        );
    }

    #[test]
    fn downloads_follow_current_rights() {
        let m = manifest(vec![camera_entry("a"), camera_entry("b")]);
        let all = |_: &str| true;
        let only_a = |c: &str| c == "a";
        assert_eq!(download_scope(&m, "a.mp4", true, all), Ok(vec!["a".into()]));
        assert_eq!(
            download_scope(&m, "a.mp4", true, only_a),
            Ok(vec!["a".into()])
        );
        assert!(download_scope(&m, "b.mp4", true, only_a)
            .unwrap_err()
            .contains("camera b"));
        assert!(download_scope(&m, MANIFEST, true, only_a).is_err());
        assert_eq!(download_scope(&m, SUMS, true, all).unwrap().len(), 2);
        assert!(download_scope(&m, SIGNATURE, true, only_a).is_err());
        assert!(download_scope(&m, "a.mp4", false, all)
            .unwrap_err()
            .contains("operators"));
    }

    #[test]
    fn requests_are_validated() {
        let ok = Request {
            cameras: vec![("a".into(), "A".into())],
            start_ns: 0,
            end_ns: 1_000_000_000,
            reason: "incident 42".into(),
            user: "op".into(),
            time_zone: jiff::tz::TimeZone::UTC,
            working_copy: false,
            redact: None,
            disclosure: None,
        };
        assert!(validate(&ok).is_ok());
        let mut r = ok.clone();
        r.reason = "  ".into();
        assert!(validate(&r).is_err());
        let mut r = ok.clone();
        r.end_ns = 0;
        assert!(validate(&r).is_err());
        let mut r = ok.clone();
        r.cameras.push(("a".into(), "A".into()));
        assert!(validate(&r).is_err());
        let mut r = ok;
        r.end_ns = MAX_RANGE_NS + 1;
        assert!(validate(&r).is_err());
    }
}
