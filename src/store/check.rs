//! Consistency between segment files and the index: crash recovery of
//! unfinished segments at start-up, and `cleannvr check [--repair]`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tracing::{info, warn};

use super::{parse_segment_name, sync_dir, SegmentRecord, Store};
use crate::config::valid_id;
use crate::mp4;

/// Suffix of a segment still being written. The recorder renames it away
/// once the file is complete and fsynced, so one left over means a crash.
pub const PART_SUFFIX: &str = ".part";

/// Builds an index row from a segment file alone (camera from its directory,
/// start from its name, everything else from its boxes).
pub fn record_from_file(storage: &Path, rel: &str) -> anyhow::Result<SegmentRecord> {
    let mut parts = rel.split('/');
    let (Some(camera), Some(_day), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("{rel}: not <camera>/<day>/<start>.mp4");
    };
    anyhow::ensure!(valid_id(camera), "{rel}: bad camera directory");
    let start_ns = parse_segment_name(name).with_context(|| format!("{rel}: bad file name"))?;
    let path = storage.join(rel);
    let scanned = mp4::scan_path(&path).with_context(|| format!("scanning {}", path.display()))?;
    let video = scanned
        .video_track()
        .with_context(|| format!("{}: no video track", path.display()))?
        .clone();
    let duration = scanned.track_duration(video.track_id);
    let mut frames = 0u64;
    let mut keyframes = Vec::new();
    let mut first_dts = None;
    for frag in &scanned.fragments {
        for run in frag.runs.iter().filter(|r| r.track_id == video.track_id) {
            frames += u64::from(run.sample_count);
            let base = *first_dts.get_or_insert(run.base_decode_time);
            if run.first_is_sync {
                keyframes.push((run.base_decode_time.saturating_sub(base), frag.offset));
            }
        }
    }
    let timescale = u64::from(video.timescale.max(1));
    // The same RFC 6381 string the recorder stored, read from the sample entry.
    let codec = std::fs::File::open(&path)
        .ok()
        .and_then(|mut f| mp4::read_init(&mut f, scanned.file_len).ok())
        .and_then(|init| {
            init.video()
                .and_then(|v| mp4::codec_string(&v.sample_entry))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&video.codec).into_owned());
    Ok(SegmentRecord {
        camera: camera.to_owned(),
        start_ns,
        end_ns: start_ns + (duration as u128 * 1_000_000_000 / timescale as u128) as i64,
        path: rel.to_owned(),
        bytes: scanned.valid_len,
        codec,
        width: video.width,
        height: video.height,
        frames,
        has_audio: scanned.tracks.iter().any(|t| &t.handler == b"soun"),
        keyframes,
        drift_ms: 0,
        archived: None,
    })
}

/// Makes an unfinished `.part` segment whole: cuts the torn tail after the
/// last complete fragment, fsyncs, renames it to `.mp4`, fsyncs the directory
/// and indexes it. Files with no complete fragment are deleted. Returns the
/// row, if one was made.
pub fn recover_part(store: &Store, part: &Path) -> anyhow::Result<Option<SegmentRecord>> {
    let scanned = match mp4::scan_path(part) {
        Ok(s) => s,
        Err(e) => {
            warn!(path = %part.display(), error = %e, "unfinished segment has no readable header; deleting");
            std::fs::remove_file(part).with_context(|| format!("deleting {}", part.display()))?;
            return Ok(None);
        }
    };
    if scanned.fragments.is_empty() {
        info!(path = %part.display(), "unfinished segment has no complete fragment; deleting");
        std::fs::remove_file(part).with_context(|| format!("deleting {}", part.display()))?;
        return Ok(None);
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(part)
        .with_context(|| format!("opening {}", part.display()))?;
    if scanned.is_torn() {
        warn!(path = %part.display(), valid = scanned.valid_len, len = scanned.file_len, "truncating torn tail");
        f.set_len(scanned.valid_len)
            .with_context(|| format!("truncating {}", part.display()))?;
    }
    f.sync_all()
        .with_context(|| format!("syncing {}", part.display()))?;
    let done = part.with_extension(""); // strips ".part"
    std::fs::rename(part, &done).with_context(|| format!("renaming {}", part.display()))?;
    if let Some(dir) = done.parent() {
        sync_dir(dir)?;
    }
    let rel = relative(store.dir(), &done)?;
    let rec = record_from_file(store.dir(), &rel)?;
    store.insert(&rec)?;
    info!(path = %rel, "recovered unfinished segment");
    Ok(Some(rec))
}

/// Start-up: recovers every `.part` file under the storage directory (a crash),
/// and indexes every finished segment file the index lacks. Those are segments
/// finished while the index refused writes (see the [`super`] docs: sled after an
/// I/O error, such as a full volume), or in the instant between a segment's
/// rename and its row at a crash. The file alone says everything a row holds
/// ([`record_from_file`]), so no footage stays unfindable, and retention, which
/// deletes by the index, sees it again. A file that cannot be read is left alone
/// and reported (`cleannvr check` names it too).
pub fn recover_all(store: &Store) -> anyhow::Result<Vec<SegmentRecord>> {
    let mut out = Vec::new();
    let mut unindexed = Vec::new();
    for file in segment_files(store.dir())?.0 {
        if file.to_string_lossy().ends_with(PART_SUFFIX) {
            if let Some(rec) = recover_part(store, &file)? {
                out.push(rec);
            }
            continue;
        }
        let rel = relative(store.dir(), &file)?;
        if store.has_file(&rel)? {
            continue;
        }
        match record_from_file(store.dir(), &rel) {
            Ok(rec) => unindexed.push(rec),
            Err(e) => {
                warn!(path = %rel, error = %format!("{e:#}"), "segment file is not in the index and cannot be read; left alone")
            }
        }
    }
    if !unindexed.is_empty() {
        store
            .insert_batch(&unindexed)
            .context("indexing segment files missing from the index")?;
        info!(
            segments = unindexed.len(),
            first = %unindexed[0].path,
            "indexed segment files that were missing from the index (written while it could not be)"
        );
        out.extend(unindexed);
    }
    Ok(out)
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Segment files seen.
    pub files: usize,
    /// Index rows seen.
    pub rows: usize,
    /// Human-readable problems; empty means consistent.
    pub problems: Vec<String>,
    /// Unfinished segments that a running server is still writing (only
    /// [`check_running`] counts them here instead of as problems).
    pub recording: usize,
}

/// Compares files with the index. With `repair`, recovers unfinished
/// segments and rebuilds the index from the files alone.
pub fn check(store: &Store, repair: bool) -> anyhow::Result<Report> {
    compare(store, repair, false)
}

/// [`check`] read-only while the server records: the open segments' `.part` files
/// are being written, not left by a crash, and a segment finished while the files
/// were being read is looked up in the index again before it counts as missing.
pub fn check_running(store: &Store) -> anyhow::Result<Report> {
    compare(store, false, true)
}

fn compare(store: &Store, repair: bool, running: bool) -> anyhow::Result<Report> {
    let mut report = Report::default();
    if repair {
        recover_all(store)?;
    }
    let mut from_files = Vec::new();
    let (files, thumb_dirs) = segment_files(store.dir())?;
    // Thumbnails whose segment file is gone (deleted by hand, or a row dropped for a
    // missing file). A running server deletes them right after their segment: only
    // looked at when it is stopped.
    if !running {
        report
            .problems
            .extend(super::thumbs::check(store, &thumb_dirs, repair)?);
    }
    for file in files {
        let rel = relative(store.dir(), &file)?;
        report.files += 1;
        if rel.ends_with(PART_SUFFIX) {
            if running {
                report.recording += 1;
                continue;
            }
            report
                .problems
                .push(format!("{rel}: unfinished segment (crash?)"));
            continue;
        }
        if running && !file.exists() {
            // Deleted by retention since the files were listed.
            report.files -= 1;
            continue;
        }
        match record_from_file(store.dir(), &rel) {
            Ok(rec) => {
                let len = std::fs::metadata(&file)?.len();
                if len != rec.bytes {
                    report.problems.push(format!(
                        "{rel}: torn tail ({} bytes past the last complete fragment)",
                        len - rec.bytes.min(len)
                    ));
                    if repair {
                        let f = std::fs::OpenOptions::new().write(true).open(&file)?;
                        f.set_len(rec.bytes)?;
                        f.sync_all()?;
                    }
                }
                from_files.push(rec);
            }
            Err(e) => report.problems.push(format!("{rel}: unreadable: {e:#}")),
        }
    }
    let mut indexed = Vec::new();
    for camera in store.usage().keys() {
        for rec in store.iter_camera(camera) {
            indexed.push(rec?);
        }
    }
    report.rows = indexed.len();
    // The archive tier: objects of this node, by key.
    let objects: Option<std::collections::HashMap<String, u64>> = match store.remote() {
        Some(r) => Some(
            r.list()
                .context("listing the archive (is it reachable?)")?
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    let mut keep_archived = Vec::new();
    for rec in &indexed {
        match from_files.iter().find(|f| f.path == rec.path) {
            // Finished since the files were listed (it was a `.part` then).
            None if running && store.file_path(rec).exists() => {}
            None if rec.archived.is_some() => {
                let a = rec.archived.as_ref().expect("checked");
                match objects.as_ref().map(|o| o.get(&a.key)) {
                    None => report.problems.push(format!(
                        "{}: archived as {} but no [archive] is configured to check it",
                        rec.path, a.key
                    )),
                    Some(None) => report.problems.push(format!(
                        "{}: archived but the object {} is missing",
                        rec.path, a.key
                    )),
                    Some(Some(&len)) if len != rec.bytes => report.problems.push(format!(
                        "{}: index says {} bytes, the object {} has {len}",
                        rec.path, rec.bytes, a.key
                    )),
                    Some(Some(_)) => keep_archived.push(rec.clone()),
                }
            }
            None => report
                .problems
                .push(format!("{}: indexed but the file is missing", rec.path)),
            Some(f) => {
                if f.bytes != rec.bytes
                    || f.frames != rec.frames
                    || f.codec != rec.codec
                    || (f.end_ns - rec.end_ns).abs() > 2_000_000
                {
                    report.problems.push(format!(
                        "{}: index says {} bytes/{} frames/{}, file has {}/{}/{}",
                        rec.path, rec.bytes, rec.frames, rec.codec, f.bytes, f.frames, f.codec
                    ));
                }
            }
        }
    }
    // Rows committed since the index was read (the recorder renames a
    // segment just before indexing it, so a file may be seen first).
    let rows_now = || -> anyhow::Result<Vec<SegmentRecord>> {
        let mut v = Vec::new();
        for camera in store.usage().keys() {
            for rec in store.iter_camera(camera) {
                v.push(rec?);
            }
        }
        Ok(v)
    };
    let mut late: Vec<SegmentRecord> = if running { rows_now()? } else { Vec::new() };
    let unindexed = |late: &[SegmentRecord]| {
        from_files
            .iter()
            .any(|f| !indexed.iter().chain(late).any(|r| r.path == f.path))
    };
    if running && unindexed(&late) {
        std::thread::sleep(std::time::Duration::from_secs(2));
        late = rows_now()?;
    }
    for f in &from_files {
        if !indexed.iter().chain(&late).any(|r| r.path == f.path) {
            report
                .problems
                .push(format!("{}: file is not in the index", f.path));
        }
    }
    // Objects no row knows: a crash between an upload and its index row, or footage
    // whose rows were lost. Repair downloads and indexes them as archived.
    let mut orphans = Vec::new();
    if let (Some(objects), Some(remote)) = (&objects, store.remote()) {
        for key in objects.keys() {
            if indexed_rel(store, remote.as_ref(), key).is_none() {
                // Not laid out as this node's segments (`camera/day/file`): another
                // node's, under a prefix nested in ours. Never ours to adopt.
                continue;
            }
            let known = indexed.iter().any(|r| {
                r.archived.as_ref().is_some_and(|a| &a.key == key)
                    || remote.key_for(&r.path) == *key
            }) || from_files.iter().any(|f| remote.key_for(&f.path) == *key);
            if !known {
                report
                    .problems
                    .push(format!("{key}: archived object is not in the index"));
                orphans.push(key.clone());
            }
        }
    }
    if repair {
        store.clear()?;
        for rec in &from_files {
            // A local copy of an archived segment stays archived.
            let mut rec = rec.clone();
            rec.archived = indexed
                .iter()
                .find(|r| r.path == rec.path)
                .and_then(|r| r.archived.clone());
            store.insert(&rec)?;
        }
        for rec in &keep_archived {
            store.insert(rec)?;
        }
        if let Some(remote) = store.remote() {
            for key in &orphans {
                let Some(rel) = indexed_rel(store, remote.as_ref(), key) else {
                    continue;
                };
                let to = store.dir().join(&rel);
                let sha256 = remote
                    .download(key, &to)
                    .with_context(|| format!("downloading {key}"))?;
                let mut rec = record_from_file(store.dir(), &rel)?;
                rec.archived = Some(super::Archived {
                    key: key.clone(),
                    sha256,
                });
                store.insert(&rec)?;
            }
        }
        info!(
            segments = from_files.len() + keep_archived.len() + orphans.len(),
            "index rebuilt from files and the archive"
        );
    }
    Ok(report)
}

/// All `*.mp4` and `*.mp4.part` files at `<dir>/<camera>/<day>/`, and the thumbnail
/// directories there (relative to `dir`).
fn segment_files(dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
    let mut out = Vec::new();
    let mut thumbs = Vec::new();
    for cam in read_dir_sorted(dir)? {
        let Some(name) = cam.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !valid_id(name) || !cam.is_dir() || name == "index" {
            continue;
        }
        for day in read_dir_sorted(&cam)? {
            if !day.is_dir() {
                continue;
            }
            for file in read_dir_sorted(&day)? {
                let n = file.to_string_lossy();
                if n.ends_with(".mp4") || n.ends_with(".mp4.part") {
                    out.push(file);
                } else if n.ends_with(super::thumbs::DIR_SUFFIX) && file.is_dir() {
                    thumbs.push(relative(dir, &file)?);
                }
            }
        }
    }
    Ok((out, thumbs))
}

fn read_dir_sorted(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn relative(base: &Path, p: &Path) -> anyhow::Result<String> {
    let rel = p
        .strip_prefix(base)
        .with_context(|| format!("{} is outside {}", p.display(), base.display()))?;
    Ok(rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/"))
}

/// The segment path an object key of this node stands for (its key minus the prefix),
/// if it is laid out as one: `camera/day/file`, exactly three parts.
fn indexed_rel(_store: &Store, remote: &dyn super::media::Remote, key: &str) -> Option<String> {
    let probe = remote.key_for("");
    let rel = key.strip_prefix(&probe)?;
    let parts: Vec<&str> = rel.split('/').collect();
    let [camera, _day, name] = parts[..] else {
        return None;
    };
    (valid_id(camera) && name.ends_with(".mp4")).then_some(())?;
    parse_segment_name(name)?;
    Some(rel.to_owned())
}
