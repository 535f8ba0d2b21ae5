//! Retention: deletes the oldest segments when a camera is older than
//! `retain_days`, larger than `retain_bytes`, or the volume is short of
//! `min_free_bytes`. Deletes go through the storage seam
//! ([`Store::delete_segment`]), which records each as an intent first, so a
//! crash part-way is finished exactly at the next start.
//!
//! A segment overlapping a legal hold ([`super::holds`]) is never deleted, by any
//! limit: retention skips it and takes the next unheld one. Each delete is decided
//! under the holds' gate, on the holds as they are at that moment, so a hold placed
//! while a pass runs protects from the next delete on. When only held footage
//! is left and the volume is still short, the pass says so (`held_short`) so the
//! server can raise an alarm instead. Camera events follow their footage, and
//! are kept while a hold covers them.
//!
//! `retain_event_days` (per camera, above `retain_days`): a segment past
//! `retain_days` that overlaps one of the camera's events is kept whole
//! until it is past `retain_event_days`, and so are the events. It extends
//! the age limit only: `retain_bytes` and the volume floor take such
//! segments in their turn (oldest first) like any other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::Context;
use tracing::{error, info, warn};

use super::events::CameraEvent;
use super::holds::{Gate, Held};
use super::{key, SegmentRecord, Store};
use crate::clock::{rfc3339, NS_PER_SEC};

/// Per-camera limits; zero means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Maximum age of footage in days.
    pub retain_days: u32,
    /// Maximum bytes of footage.
    pub retain_bytes: u64,
    /// Maximum age, in days, of footage overlapping a camera event (used
    /// when above `retain_days`).
    pub retain_event_days: u32,
}

impl Policy {
    /// The cutoff for footage with events, when it differs from `cutoff`
    /// (the `retain_days` one).
    fn event_cutoff(&self, now_ns: i64) -> Option<i64> {
        (self.retain_days > 0 && self.retain_event_days > self.retain_days)
            .then(|| days_before(now_ns, self.retain_event_days))
    }
}

/// `now_ns` less `days`. Saturating: a huge number of days ("keep for
/// ever") must mean a cutoff far in the past, never one wrapped into the future.
fn days_before(now_ns: i64, days: u32) -> i64 {
    now_ns.saturating_sub(i64::from(days).saturating_mul(86_400 * NS_PER_SEC))
}

/// How far before the event cutoff an event may start and still keep
/// footage: events are found by start, and one lasting longer than this
/// keeps only its last day's segments.
const LONGEST_EVENT_NS: i64 = 86_400 * NS_PER_SEC;

/// Whether segments (visited oldest first) overlap one of the camera's
/// events: one pass over the events alongside the segments.
struct EventCover<I: Iterator<Item = anyhow::Result<CameraEvent>>> {
    events: std::iter::Peekable<I>,
    /// The latest end of the events that start before the segment in hand.
    reach: i64,
}

impl<I: Iterator<Item = anyhow::Result<CameraEvent>>> EventCover<I> {
    fn covers(&mut self, start_ns: i64, end_ns: i64) -> anyhow::Result<bool> {
        while let Some(ev) = self
            .events
            .next_if(|e| e.as_ref().map_or(true, |e| e.start_ns < end_ns))
        {
            let ev = ev?;
            // An open event reaches as far as it was last seen on.
            let end = ev.end_ns.or(ev.seen_ns).unwrap_or(ev.start_ns);
            self.reach = self.reach.max(end);
        }
        // Every event taken in starts before the segment ends; one reaching
        // its start overlaps it (an instantaneous one at its start too).
        Ok(self.reach >= start_ns)
    }
}

/// The index tree remembering each configured camera's limits (key: camera id; value:
/// `retain_days`, `retain_bytes`, then `retain_event_days`, big-endian; rows
/// from before `retain_event_days` lack it).
const POLICIES_TREE: &str = "retention_policies";

/// The limits of every camera retention must look after: the configured cameras'
/// (`configured`, which are remembered in the index), and for each camera with footage
/// that is no longer configured, the limits it had when it last was. So footage of a
/// camera removed from the config is still deleted by age and size, as it would have
/// been (the volume floor covers every camera's footage regardless). Footage of a camera
/// whose limits were never remembered (removed before this version) is left to the floor.
pub fn with_removed(
    store: &Store,
    configured: &HashMap<String, Policy>,
) -> anyhow::Result<HashMap<String, Policy>> {
    let tree = store
        .db()
        .open_tree(POLICIES_TREE)
        .context("opening the retention policies")?;
    let mut changed = false;
    for (camera, p) in configured {
        let mut v = p.retain_days.to_be_bytes().to_vec();
        v.extend_from_slice(&p.retain_bytes.to_be_bytes());
        v.extend_from_slice(&p.retain_event_days.to_be_bytes());
        if tree.get(camera)?.as_deref() != Some(&v[..]) {
            tree.insert(camera.as_bytes(), v)
                .with_context(|| format!("camera {camera}: remembering its retention"))?;
            changed = true;
        }
    }
    if changed {
        store.db().flush().context("flushing retention policies")?;
    }
    let mut all = configured.clone();
    for camera in store.usage().keys() {
        if all.contains_key(camera) {
            continue;
        }
        if let Some(p) = remembered(store, camera)? {
            all.insert(camera.clone(), p);
        }
    }
    Ok(all)
}

/// The limits `camera` had when it was last configured, if they were remembered.
pub fn remembered(store: &Store, camera: &str) -> anyhow::Result<Option<Policy>> {
    let tree = store.db().open_tree(POLICIES_TREE)?;
    let Some(v) = tree.get(camera)? else {
        return Ok(None);
    };
    let corrupt = || anyhow::anyhow!("camera {camera}: corrupt retention policy row");
    let (days, rest) = v.split_at_checked(4).ok_or_else(corrupt)?;
    let (bytes, event_days) = rest.split_at_checked(8).ok_or_else(corrupt)?;
    Ok(Some(Policy {
        retain_days: u32::from_be_bytes(days.try_into().map_err(|_| corrupt())?),
        retain_bytes: u64::from_be_bytes(bytes.try_into().map_err(|_| corrupt())?),
        retain_event_days: match event_days {
            [] => 0,
            d => u32::from_be_bytes(d.try_into().map_err(|_| corrupt())?),
        },
    }))
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Segments deleted.
    pub deleted: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// The volume is still under `min_free_bytes` with nothing left to delete.
    pub still_short: bool,
    /// Held segments that a limit would have deleted and retention kept.
    pub held_kept: u64,
    /// Segments past `retain_days` kept for an event (`retain_event_days`).
    pub event_kept: u64,
    /// The volume is still short and what is left includes held footage: the disk is
    /// full of footage that must not be deleted, an alarm for the operator.
    pub held_short: bool,
    /// What was deleted, per camera: one audit entry each.
    pub cameras: BTreeMap<String, Deleted>,
}

/// What one pass deleted of one camera.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Segments deleted.
    pub segments: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Start of the oldest deleted segment, ns.
    pub first_start_ns: i64,
    /// End of the newest deleted segment, ns.
    pub last_end_ns: i64,
    /// Which limits caused it: `retain_days`, `retain_bytes`, `min_free_bytes`.
    pub reasons: BTreeSet<&'static str>,
}

impl Deleted {
    /// The audit-log detail: how many segments, the time range, the bytes and why.
    pub fn audit_detail(&self) -> String {
        format!(
            "segments={} bytes={} from={} to={} reason={}",
            self.segments,
            self.bytes,
            rfc3339(self.first_start_ns),
            rfc3339(self.last_end_ns),
            self.reasons.iter().copied().collect::<Vec<_>>().join(",")
        )
    }
}

/// One retention pass. `free_bytes` reports the volume's free space (a
/// parameter so tests can simulate a full disk); `now_ns` is injectable time.
/// `min_free_bytes` is the floor for footage: the caller adds the unused export
/// quota ([`crate::export::quota::footage_floor`]) so exports never cost footage.
/// Segments overlapping `held` are kept whatever the limits say.
pub fn run_once(
    store: &Store,
    policies: &HashMap<String, Policy>,
    held: &Held,
    min_free_bytes: u64,
    now_ns: i64,
    free_bytes: impl FnMut() -> u64,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    run_into(
        store,
        policies,
        held,
        min_free_bytes,
        now_ns,
        free_bytes,
        &mut out,
    )?;
    Ok(out)
}

/// [`run_once`] that leaves what it deleted in `out` even when it fails part-way, so
/// the caller can still audit every deletion.
#[allow(clippy::too_many_arguments)]
pub fn run_into(
    store: &Store,
    policies: &HashMap<String, Policy>,
    held: &Held,
    min_free_bytes: u64,
    now_ns: i64,
    mut free_bytes: impl FnMut() -> u64,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let mut watch = Watch::new(store, held, now_ns)?;
    for (camera, policy) in policies {
        // Only unheld footage counts against `retain_bytes`: held footage stays whatever
        // the limit says, and counting it would delete each new segment of a camera
        // with more held footage than its limit as soon as it is written.
        let held_bytes = {
            let gate = store.holds().gate();
            watch.refresh(&gate)?;
            store.held_bytes_of(&watch.held, camera)?
        };
        // Footage and its cached thumbnails ([`super::thumbs`]), which go with it.
        let total =
            store.usage().get(camera).map(|u| u.bytes).unwrap_or(0) + store.thumbnail_bytes(camera);
        let mut bytes = total.saturating_sub(held_bytes);
        let cutoff = days_before(now_ns, policy.retain_days);
        let event_cutoff = policy.event_cutoff(now_ns);
        let mut cover = event_cutoff.map(|c| EventCover {
            events: store
                .events()
                .iter_from(camera, c.saturating_sub(LONGEST_EVENT_NS))
                .peekable(),
            reach: i64::MIN,
        });
        let mut victims = Vec::new();
        for rec in store.iter_camera(camera) {
            let rec = rec?;
            let too_old = policy.retain_days > 0 && rec.end_ns <= cutoff;
            let too_big = policy.retain_bytes > 0 && bytes > policy.retain_bytes;
            if !too_old && !too_big {
                break;
            }
            if watch.held.covers(camera, rec.start_ns, rec.end_ns) {
                // Kept, and not counted in `bytes`.
                out.held_kept += 1;
                continue;
            }
            if let (false, Some(ec), Some(cover)) = (too_big, event_cutoff, cover.as_mut()) {
                if rec.end_ns > ec && cover.covers(rec.start_ns, rec.end_ns)? {
                    // Kept for its event, and still counted in `bytes`.
                    out.event_kept += 1;
                    continue;
                }
            }
            let freed = rec.bytes + store.thumbnail_bytes_of(&rec)?;
            bytes -= freed.min(bytes);
            let why = if too_old {
                "retain_days"
            } else {
                "retain_bytes"
            };
            victims.push((rec, why));
        }
        for (rec, why) in victims {
            delete_unless_held(store, &mut watch, &rec, out, why)?;
        }
        if policy.retain_days > 0 {
            store
                .events()
                .prune(camera, event_cutoff.unwrap_or(cutoff), held)?;
        }
    }
    // The archive tier's own limits (bytes across all cameras of this node).
    if let Some((days, max_bytes)) = store.archive_limits() {
        let cutoff = now_ns - i64::from(days) * 86_400 * NS_PER_SEC;
        let mut bytes: u64 = store.usage().values().map(|u| u.archived_bytes).sum();
        let mut archived: Vec<SegmentRecord> = Vec::new();
        for camera in store.usage().keys() {
            for rec in store.iter_camera(camera) {
                let rec = rec?;
                if rec.archived.is_some() {
                    archived.push(rec);
                }
            }
        }
        archived.sort_by_key(|r| r.start_ns);
        for rec in archived {
            let too_old = days > 0 && rec.end_ns <= cutoff;
            let too_big = max_bytes > 0 && bytes > max_bytes;
            if !too_old && !too_big {
                break;
            }
            if held.covers(&rec.camera, rec.start_ns, rec.end_ns) {
                out.held_kept += 1;
                continue;
            }
            bytes -= rec.bytes.min(bytes);
            let why = if too_old {
                "archive.retain_days"
            } else {
                "archive.retain_bytes"
            };
            delete(store, &rec, out, why)?;
        }
    }
    // Volume floor: oldest unheld footage of any camera goes first. `from` remembers,
    // per camera, where its unheld footage starts, so held segments are passed once.
    let mut free = free_bytes();
    let mut from: HashMap<String, i64> = HashMap::new();
    let mut passed_held = false;
    while free < min_free_bytes {
        let mut oldest: Option<SegmentRecord> = None;
        for camera in store.usage().keys() {
            let start = from.get(camera).copied().unwrap_or(i64::MIN);
            let found = first_unheld(store, camera, start, &watch.held, &mut passed_held)?;
            from.insert(
                camera.clone(),
                found.as_ref().map_or(i64::MAX, |r| r.start_ns),
            );
            if let Some(rec) = found {
                if oldest.as_ref().is_none_or(|o| rec.start_ns < o.start_ns) {
                    oldest = Some(rec);
                }
            }
        }
        let Some(rec) = oldest else {
            out.still_short = true;
            if passed_held {
                out.held_short = true;
                error!(
                    free,
                    min_free_bytes,
                    "volume is short of space and all footage left is under a legal hold: \
                     held footage is kept; release holds or add disk space"
                );
            } else {
                warn!(
                    free,
                    min_free_bytes, "volume is short of space and no footage is left to delete"
                );
            }
            break;
        };
        if store.archive_limits().is_some() && rec.archived.is_none() {
            error!(
                camera = %rec.camera,
                segment = %rec.path,
                free,
                min_free_bytes,
                "deleting footage that is not archived yet: the disk would otherwise fill \
                 (is the archive reachable?)"
            );
        }
        // A segment held since it was chosen stays; the next scan passes over it.
        if delete_unless_held(store, &mut watch, &rec, out, "min_free_bytes")? {
            free = free_bytes();
        }
    }
    // Events go with the footage they describe: those before a camera's
    // oldest remaining segment, once footage was deleted by size or space.
    for camera in out.cameras.keys() {
        if let Some(oldest) = store.oldest(camera)? {
            store.events().prune(camera, oldest.start_ns, held)?;
        }
    }
    if out.deleted > 0 || out.held_kept > 0 {
        info!(
            deleted = out.deleted,
            bytes = out.bytes,
            held_kept = out.held_kept,
            "retention"
        );
    }
    Ok(())
}

/// The oldest segment of `camera` starting at or after `from_ns` that no hold covers;
/// sets `passed_held` if it stepped over a held one.
fn first_unheld(
    store: &Store,
    camera: &str,
    from_ns: i64,
    held: &Held,
    passed_held: &mut bool,
) -> anyhow::Result<Option<SegmentRecord>> {
    for item in store
        .segments
        .range(key(camera, from_ns)..=key(camera, i64::MAX))
    {
        let rec = super::decode(&item?.1)?;
        if rec.archived.is_some() && store.archive_limits().is_some() {
            // Its local copy is gone (or about to be): deleting it frees no disk.
            continue;
        }
        if !held.covers(camera, rec.start_ns, rec.end_ns) {
            return Ok(Some(rec));
        }
        *passed_held = true;
    }
    Ok(None)
}

/// The holds a pass decides by: the caller's snapshot and, read again whenever a hold
/// was placed or released since, the holds in the index.
struct Watch<'a> {
    base: &'a Held,
    now_ns: i64,
    /// [`Gate::changes`] when `held` was read.
    changes: u64,
    held: Held,
}

impl<'a> Watch<'a> {
    fn new(store: &Store, base: &'a Held, now_ns: i64) -> anyhow::Result<Watch<'a>> {
        let gate = store.holds().gate();
        let mut held = base.clone();
        held.merge(&gate.active(now_ns)?);
        Ok(Watch {
            base,
            now_ns,
            changes: gate.changes(),
            held,
        })
    }

    fn refresh(&mut self, gate: &Gate) -> anyhow::Result<()> {
        if gate.changes() != self.changes {
            let mut held = self.base.clone();
            held.merge(&gate.active(self.now_ns).context("reading legal holds")?);
            self.held = held;
            self.changes = gate.changes();
        }
        Ok(())
    }
}

/// Deletes `rec` unless a hold covers it now: the holds are checked, and the segment
/// deleted, under the gate that placing a hold takes. Returns whether it was deleted.
fn delete_unless_held(
    store: &Store,
    watch: &mut Watch,
    rec: &SegmentRecord,
    out: &mut Outcome,
    why: &'static str,
) -> anyhow::Result<bool> {
    let gate = store.holds().gate();
    watch.refresh(&gate)?;
    if watch.held.covers(&rec.camera, rec.start_ns, rec.end_ns) {
        info!(camera = %rec.camera, segment = %rec.path, "held while retention ran: kept");
        out.held_kept += 1;
        return Ok(false);
    }
    delete(store, rec, out, why)?;
    drop(gate);
    Ok(true)
}

fn delete(
    store: &Store,
    rec: &SegmentRecord,
    out: &mut Outcome,
    why: &'static str,
) -> anyhow::Result<()> {
    let thumbs = store.thumbnail_bytes_of(rec)?;
    store.delete_segment(rec)?;
    out.deleted += 1;
    out.bytes += rec.bytes + thumbs;
    let d = out.cameras.entry(rec.camera.clone()).or_insert(Deleted {
        first_start_ns: rec.start_ns,
        last_end_ns: rec.end_ns,
        ..Default::default()
    });
    d.segments += 1;
    d.bytes += rec.bytes + thumbs;
    d.first_start_ns = d.first_start_ns.min(rec.start_ns);
    d.last_end_ns = d.last_end_ns.max(rec.end_ns);
    d.reasons.insert(why);
    Ok(())
}

/// Free bytes available to us on the volume holding `path`.
pub fn volume_free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = statvfs(path)?;
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Size of the volume holding `path`.
pub fn volume_total_bytes(path: &Path) -> std::io::Result<u64> {
    let st = statvfs(path)?;
    Ok(st.f_blocks as u64 * st.f_frsize as u64)
}

fn statvfs(path: &Path) -> std::io::Result<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::store::segment_rel_path;

    const DAY: i64 = 86_400 * NS_PER_SEC;
    const HOUR: i64 = 3600 * NS_PER_SEC;

    fn none() -> Held {
        Held::default()
    }

    /// Holds hours `[from, to)` (of day 10) of `camera`, by the half hour inside them so
    /// the overlap rule is what keeps the edges.
    fn held(camera: &str, from: i64, to: i64) -> Held {
        let mut h = Held::default();
        h.ranges.insert(
            camera.into(),
            vec![(
                10 * DAY + from * HOUR + HOUR / 2,
                10 * DAY + to * HOUR - HOUR / 2,
            )],
        );
        h
    }

    fn starts(store: &Store, camera: &str) -> Vec<i64> {
        store
            .iter_camera(camera)
            .map(|r| (r.unwrap().start_ns - 10 * DAY) / HOUR)
            .collect()
    }

    /// Makes a store with `n` one-hour segments per camera starting at day 0, with real files.
    fn archive(cameras: &[&str], n: i64, bytes: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for cam in cameras {
            for i in 0..n {
                let start_ns = 10 * DAY + i * 3600 * NS_PER_SEC;
                let rec = SegmentRecord {
                    camera: cam.to_string(),
                    start_ns,
                    end_ns: start_ns + 3600 * NS_PER_SEC,
                    path: segment_rel_path(cam, start_ns),
                    bytes,
                    codec: "avc1".into(),
                    width: 1,
                    height: 1,
                    frames: 1,
                    has_audio: false,
                    keyframes: vec![],
                    drift_ms: 0,
                    archived: None,
                };
                let p = store.file_path(&rec);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, vec![0u8; bytes as usize]).unwrap();
                store.insert(&rec).unwrap();
            }
        }
        (dir, store)
    }

    fn event(camera: &str, start_ns: i64, end_ns: Option<i64>) -> CameraEvent {
        CameraEvent {
            camera: camera.into(),
            start_ns,
            end_ns,
            stateful: true,
            kind: crate::store::events::Kind::Motion,
            topic: "t".into(),
            source: vec![],
            data: vec![],
            seen_ns: None,
            end_reason: None,
        }
    }

    #[test]
    fn footage_with_events_is_kept_for_retain_event_days() {
        // Three days of hourly segments (day 10 hour 0 to day 12 hour 23).
        let (_d, store) = archive(&["a", "b"], 72, 10);
        let policy = |event_days| Policy {
            retain_days: 1,
            retain_bytes: 0,
            retain_event_days: event_days,
        };
        let policies = HashMap::from([("a".to_string(), policy(3)), ("b".to_string(), policy(0))]);
        // Hour 2 (an instant at its start), hours 5-6 (an event across the
        // boundary), the last seconds of hour 9 (ending exactly as hour 10
        // starts), and on day 11 hour 30 one still open, last seen in hour 31.
        let h = |n: i64| 10 * DAY + n * HOUR;
        for (cam, ev) in [
            ("a", event("a", h(2), Some(h(2)))),
            ("a", event("a", h(5) + HOUR / 2, Some(h(6) + HOUR / 2))),
            ("a", event("a", h(10) - 5 * NS_PER_SEC, Some(h(10)))),
            ("a", {
                let mut open = event("a", h(30) + 1, None);
                open.seen_ns = Some(h(31) + 1);
                open
            }),
            ("b", event("b", h(5), Some(h(6)))),
        ] {
            assert_eq!(cam, ev.camera);
            store.events().insert(&ev).unwrap();
        }
        // Now: day 12 hour 12. Past retain_days (1): everything ending by
        // day 11 hour 12 (hour 36); past 3 days: nothing yet.
        let now = h(60);
        let o = run_once(&store, &policies, &none(), 0, now, || u64::MAX).unwrap();
        assert_eq!(
            starts(&store, "a")
                .into_iter()
                .take_while(|&x| x < 36)
                .collect::<Vec<_>>(),
            vec![2, 5, 6, 9, 10, 30, 31],
            "segments overlapping an event are kept whole, the rest go"
        );
        assert_eq!(
            starts(&store, "b")[0],
            36,
            "without retain_event_days: retain_days"
        );
        assert_eq!(o.event_kept, 7);
        assert!(store
            .file_path(&store.oldest("a").unwrap().unwrap())
            .exists());
        assert_eq!(
            store
                .events()
                .range("a", 0, i64::MAX, &[], 10)
                .unwrap()
                .len(),
            4
        );
        assert!(store
            .events()
            .range("b", 0, i64::MAX, &[], 10)
            .unwrap()
            .is_empty());

        // A day later, what ends by day 10 hour 12 is past retain_event_days:
        // those go, and their events.
        let now = h(84);
        run_once(&store, &policies, &none(), 0, now, || u64::MAX).unwrap();
        assert_eq!(
            starts(&store, "a")
                .into_iter()
                .take_while(|&x| x < 48)
                .collect::<Vec<_>>(),
            vec![30, 31],
        );
        let left = store.events().range("a", 0, i64::MAX, &[], 10).unwrap();
        assert_eq!(left.len(), 1, "{left:?}");

        // retain_bytes still takes them, oldest first.
        let tight = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_bytes: 10 * 10,
                ..policy(3)
            },
        )]);
        run_once(&store, &tight, &none(), 0, now, || u64::MAX).unwrap();
        assert_eq!(starts(&store, "a").len(), 10);
        assert!(!starts(&store, "a").contains(&30));
    }

    #[test]
    fn retain_bytes_counts_cached_thumbnails_and_deletes_them_with_their_segment() {
        // Four segments of 100 bytes: 400 fit a 450-byte limit, until their thumbnails
        // (60 bytes each on the two oldest) are counted too.
        let (_d, store) = archive(&["a"], 4, 100);
        let jpeg = |n: usize| {
            let mut b = vec![0xff, 0xd8, 0xff];
            b.resize(n - 2, 0);
            b.extend_from_slice(&[0xff, 0xd9]);
            b
        };
        let recs: Vec<SegmentRecord> = store.iter_camera("a").map(|r| r.unwrap()).collect();
        for r in &recs[..2] {
            assert!(store.cache_thumbnail(r, 0, 160, &jpeg(60)).unwrap());
        }
        assert_eq!(store.thumbnail_bytes("a"), 120);
        let policies = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_bytes: 450,
                ..Default::default()
            },
        )]);
        let o = run_once(&store, &policies, &none(), 0, 20 * DAY, || u64::MAX).unwrap();
        assert_eq!(
            starts(&store, "a"),
            vec![1, 2, 3],
            "520 > 450: the oldest goes"
        );
        assert_eq!(o.bytes, 160, "its footage and its thumbnail");
        let thumbs = super::super::thumbs::dir_of(&store.file_path(&recs[0]));
        assert!(!thumbs.exists(), "its thumbnails went with it");
        assert!(super::super::thumbs::dir_of(&store.file_path(&recs[1])).exists());
        assert_eq!(store.thumbnail_bytes("a"), 60);
        // 360 left: within the limit.
        let o = run_once(&store, &policies, &none(), 0, 20 * DAY, || u64::MAX).unwrap();
        assert_eq!(o.deleted, 0);
    }

    #[test]
    fn policies_remembered_before_retain_event_days_still_read() {
        let (_d, store) = archive(&["a"], 1, 1);
        let tree = store.db().open_tree(POLICIES_TREE).unwrap();
        let mut v = 7u32.to_be_bytes().to_vec();
        v.extend_from_slice(&100u64.to_be_bytes());
        tree.insert("a", v).unwrap();
        let p = remembered(&store, "a").unwrap().unwrap();
        assert_eq!(
            (p.retain_days, p.retain_bytes, p.retain_event_days),
            (7, 100, 0)
        );
        let configured = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_days: 7,
                retain_bytes: 100,
                retain_event_days: 30,
            },
        )]);
        with_removed(&store, &configured).unwrap();
        assert_eq!(
            remembered(&store, "a").unwrap(),
            configured.get("a").copied()
        );
    }

    #[test]
    fn by_days_with_injected_clock() {
        let (_d, store) = archive(&["a"], 72, 10); // three days of hourly segments
        let clock = ManualClock::new(10 * DAY);
        let policies = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_days: 2,
                retain_bytes: 0,
                retain_event_days: 0,
            },
        )]);
        use crate::store::events::{CameraEvent, Kind};
        for t in [10 * DAY + 5, 12 * DAY] {
            let ev = CameraEvent {
                camera: "a".into(),
                start_ns: t,
                end_ns: Some(t + 1),
                stateful: true,
                kind: Kind::Motion,
                topic: "t".into(),
                source: vec![],
                data: vec![],
                seen_ns: None,
                end_reason: None,
            };
            store.events().insert(&ev).unwrap();
        }
        // Nothing is older than 2 days yet.
        let o = run_once(&store, &policies, &none(), 0, clock.now_ns(), || u64::MAX).unwrap();
        assert_eq!(o.deleted, 0);
        clock.advance(3 * DAY);
        let o = run_once(&store, &policies, &none(), 0, clock.now_ns(), || u64::MAX).unwrap();
        assert_eq!(o.deleted, 24, "the first day ends 2 days before now");
        let events = store.events().range("a", 0, i64::MAX, &[], 10).unwrap();
        assert_eq!(
            events.iter().map(|e| e.start_ns).collect::<Vec<_>>(),
            vec![12 * DAY],
            "events go with their footage"
        );
        let oldest = store.oldest("a").unwrap().unwrap();
        assert_eq!(oldest.start_ns, 11 * DAY);
        // The survivors' files are still on disk.
        assert!(store
            .file_path(&store.iter_camera("a").next().unwrap().unwrap())
            .exists());
        // The deleted files are gone from disk too.
        let gone = segment_rel_path("a", 10 * DAY);
        assert!(!store.dir().join(gone).exists());
    }

    #[test]
    fn by_bytes_keeps_newest() {
        let (_d, store) = archive(&["a", "b"], 10, 100);
        let policies = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_days: 0,
                retain_bytes: 350,
                retain_event_days: 0,
            },
        )]);
        let o = run_once(&store, &policies, &none(), 0, 0, || u64::MAX).unwrap();
        assert_eq!(o.deleted, 7);
        let d = &o.cameras["a"];
        assert_eq!((d.segments, d.bytes), (7, 700));
        assert_eq!(d.first_start_ns, 10 * DAY);
        assert_eq!(d.last_end_ns, 10 * DAY + 7 * 3600 * NS_PER_SEC);
        assert_eq!(
            d.audit_detail(),
            "segments=7 bytes=700 from=1970-01-11T00:00:00.000Z to=1970-01-11T07:00:00.000Z reason=retain_bytes"
        );
        assert!(!o.cameras.contains_key("b"));
        assert_eq!(store.usage()["a"].bytes, 300);
        assert_eq!(store.usage()["b"].bytes, 1000, "other cameras untouched");
        assert_eq!(
            store.oldest("a").unwrap().unwrap().start_ns,
            10 * DAY + 7 * 3600 * NS_PER_SEC
        );
    }

    #[test]
    fn volume_floor_deletes_oldest_across_cameras() {
        let (_d, store) = archive(&["a", "b"], 3, 100);
        // Pretend the disk frees exactly what we delete, starting 250 bytes short.
        let mut free = 0u64;
        let o = run_once(&store, &HashMap::new(), &none(), 250, 0, || {
            let f = free;
            free += 100;
            f
        })
        .unwrap();
        assert_eq!(o.deleted, 3);
        // Oldest first: both cameras' hour 0, then one hour 1.
        assert_eq!(store.usage()["a"].segments + store.usage()["b"].segments, 3);
        assert!(!o.still_short);
        let o = run_once(&store, &HashMap::new(), &none(), u64::MAX, 0, || 0).unwrap();
        assert!(o.still_short);
        assert_eq!(o.deleted, 3);
    }

    #[test]
    fn held_segments_survive_days_bytes_and_floor() {
        // By days: hours 2..4 are held; everything else older than the cutoff goes.
        let (_d, store) = archive(&["a", "b"], 10, 100);
        let days = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_days: 1,
                retain_bytes: 0,
                retain_event_days: 0,
            },
        )]);
        let o = run_once(&store, &days, &held("a", 2, 4), 0, 12 * DAY, || u64::MAX).unwrap();
        assert_eq!(starts(&store, "a"), vec![2, 3]);
        assert_eq!((o.deleted, o.held_kept), (8, 2));
        assert!(!held("a", 2, 4).covers("b", 0, i64::MAX));

        // By bytes: held old footage stays and is not counted; the oldest unheld goes
        // until the unheld footage fits.
        let (_d, store) = archive(&["a"], 10, 100);
        let bytes = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_days: 0,
                retain_bytes: 500,
                retain_event_days: 0,
            },
        )]);
        let o = run_once(&store, &bytes, &held("a", 0, 2), 0, 0, || u64::MAX).unwrap();
        assert_eq!(starts(&store, "a"), vec![0, 1, 5, 6, 7, 8, 9]);
        assert_eq!(o.held_kept, 2);
        assert_eq!(store.usage()["a"].bytes, 700);

        // Floor: the oldest unheld footage of any camera goes; held footage of "a" stays.
        let (_d, store) = archive(&["a", "b"], 4, 100);
        let mut free = 0u64;
        let o = run_once(&store, &HashMap::new(), &held("a", 0, 2), 350, 0, || {
            let f = free;
            free += 100;
            f
        })
        .unwrap();
        assert_eq!(o.deleted, 4);
        assert_eq!(starts(&store, "a"), vec![0, 1, 3]);
        assert_eq!(starts(&store, "b"), vec![3]);
        assert!(!o.still_short && !o.held_short);

        // A disk full of held footage: everything unheld goes, held footage stays, alarm.
        let o = run_once(&store, &HashMap::new(), &held("a", 0, 2), u64::MAX, 0, || 0).unwrap();
        assert_eq!(starts(&store, "a"), vec![0, 1]);
        assert!(starts(&store, "b").is_empty());
        assert!(o.still_short && o.held_short);
        // Released (no holds): the floor takes them too.
        let o = run_once(&store, &HashMap::new(), &none(), u64::MAX, 0, || 0).unwrap();
        assert_eq!(o.deleted, 2);
        assert!(o.still_short && !o.held_short);
    }

    #[test]
    fn a_hold_placed_while_a_pass_runs_keeps_what_it_covers() {
        let (_d, store) = archive(&["a"], 4, 100);
        let hour = |h: i64| 10 * DAY + h * HOUR;
        // The volume frees what is deleted, starting 250 bytes short; `free_bytes` is read
        // between deletes, which is where an operator's hold lands.
        let (mut free, mut reads) = (0u64, 0);
        let o = run_once(&store, &HashMap::new(), &none(), 250, 0, || {
            reads += 1;
            if reads == 2 {
                // Hour 0 is gone; hour 1 is the next oldest: hold it now.
                store
                    .holds()
                    .insert(&crate::store::holds::Hold {
                        id: "late".into(),
                        cameras: vec!["a".into()],
                        start_ns: hour(1) + HOUR / 2,
                        end_ns: hour(1) + HOUR / 2 + 1,
                        reason: "incident placed mid-pass".into(),
                        created_by: "op".into(),
                        created_ns: 0,
                        until_ns: None,
                        export: None,
                    })
                    .unwrap();
            }
            let f = free;
            free += 100;
            f
        })
        .unwrap();
        assert_eq!(starts(&store, "a"), vec![1], "the held hour survives");
        assert_eq!((o.deleted, o.held_kept), (3, 1));
        assert!(store
            .file_path(&store.oldest("a").unwrap().unwrap())
            .exists());
    }

    #[test]
    fn held_footage_over_retain_bytes_does_not_cost_new_footage() {
        // Six held hours (600 bytes) against a 500-byte limit, four unheld after them.
        let (_d, store) = archive(&["a"], 10, 100);
        let policy = HashMap::from([(
            "a".to_string(),
            Policy {
                retain_days: 0,
                retain_bytes: 500,
                retain_event_days: 0,
            },
        )]);
        let o = run_once(&store, &policy, &held("a", 0, 6), 0, 0, || u64::MAX).unwrap();
        assert_eq!(o.deleted, 0, "400 unheld bytes fit in 500");
        assert_eq!(starts(&store, "a"), (0..10).collect::<Vec<_>>());
        // Two more unheld hours: only the oldest unheld one goes.
        for i in 10..12 {
            let start_ns = 10 * DAY + i * HOUR;
            let rec = SegmentRecord {
                start_ns,
                end_ns: start_ns + HOUR,
                path: segment_rel_path("a", start_ns),
                ..store.oldest("a").unwrap().unwrap()
            };
            store.insert(&rec).unwrap();
        }
        let o = run_once(&store, &policy, &held("a", 0, 6), 0, 0, || u64::MAX).unwrap();
        assert_eq!(o.deleted, 1);
        assert_eq!(starts(&store, "a"), vec![0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn a_removed_camera_keeps_the_limits_it_had() {
        let (_d, store) = archive(&["a", "b", "old"], 10, 100);
        let limit = |bytes| Policy {
            retain_days: 0,
            retain_bytes: bytes,
            retain_event_days: 0,
        };
        let configured =
            HashMap::from([("a".to_string(), limit(500)), ("b".to_string(), limit(300))]);
        let all = with_removed(&store, &configured).unwrap();
        assert_eq!(
            all, configured,
            "\"old\" was never configured here: floor only"
        );
        run_once(&store, &all, &none(), 0, 0, || u64::MAX).unwrap();
        assert_eq!(store.usage()["b"].bytes, 300);
        // b is removed from the config and keeps recording nothing; its limit is
        // lowered before that: the limit it had last is the one that stays.
        let configured =
            HashMap::from([("a".to_string(), limit(500)), ("b".to_string(), limit(200))]);
        with_removed(&store, &configured).unwrap();
        let configured = HashMap::from([("a".to_string(), limit(500))]);
        let all = with_removed(&store, &configured).unwrap();
        assert_eq!(all.get("b"), Some(&limit(200)));
        assert!(!all.contains_key("old"));
        let o = run_once(&store, &all, &none(), 0, 0, || u64::MAX).unwrap();
        assert_eq!(o.cameras["b"].segments, 1);
        assert_eq!(store.usage()["b"].bytes, 200);
        assert_eq!(store.usage()["old"].bytes, 1000);
        // Remembered across a restart.
        drop(store);
        let store = Store::open(_d.path()).unwrap();
        assert_eq!(remembered(&store, "b").unwrap(), Some(limit(200)));
    }

    #[test]
    fn statvfs_reports_something() {
        assert!(volume_free_bytes(Path::new("/")).unwrap() > 0);
        assert!(
            volume_total_bytes(Path::new("/")).unwrap()
                >= volume_free_bytes(Path::new("/")).unwrap()
        );
    }
}
