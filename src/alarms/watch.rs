//! Decides what is wrong now from what the server already knows (the status
//! board, retention's outcome, the audit chain, the volume's free space, the
//! kernel's clock state) and turns changes into alarm records and deliveries.
//! [`conditions`] is a plain function so the rules are tested without a server.
//!
//! **Clock.** cleannvr stamps footage with the server's own clock (ingest
//! anchors every frame to the server's wall clock when it arrives), so the
//! server's clock is what makes the times in evidence right; a camera's own
//! clock only changes the time burned into its picture. As recording servers
//! of commercial VMSs do, the alarm is therefore about the server's time
//! source: the kernel's NTP state (`ntp_adjtime`, read only), which chrony,
//! ntpd and systemd-timesyncd all set, so it works whatever keeps the time.
//! Unsynchronised means `TIME_ERROR` or `STA_UNSYNC`; where the kernel cannot
//! be asked the state is unknown and nothing is raised.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::config::AlarmsConfig;
use super::{Key, Kind};
use crate::clock::{local_words, NS_PER_SEC};
use crate::config::CameraConfig;
use crate::status::{recorder_words, why_not_streaming, CameraStatus, StreamState};
use crate::web::App;

/// How often conditions are looked at.
const TICK: Duration = Duration::from_secs(2);
/// How often the audit chain is verified (it reads the whole log).
const AUDIT_EVERY: Duration = Duration::from_secs(3600);

/// What [`conditions`] looks at.
pub struct Inputs<'a> {
    /// Wall clock now.
    pub now_ns: i64,
    /// The server's time zone, for the times in messages.
    pub tz: &'a jiff::tz::TimeZone,
    /// Thresholds.
    pub config: &'a AlarmsConfig,
    /// The cameras as configured now.
    pub cameras: &'a [CameraConfig],
    /// Their live status.
    pub status: &'a BTreeMap<String, CameraStatus>,
    /// The last retention pass left only held footage to delete, under the floor.
    pub held_full: bool,
    /// The last retention pass's error.
    pub retention_error: Option<String>,
    /// Why the audit chain failed to verify at its last check.
    pub audit_broken: Option<String>,
    /// The storage volume is under its floor now (and since when).
    pub disk_low: Option<DiskLow>,
    /// Since when the kernel has said the clock is not synchronised (wall ns).
    pub clock_unsynced_since_ns: Option<i64>,
    /// Why the archive tier refuses to write this node's prefix (another node owns it).
    pub archive_prefix_taken: Option<String>,
}

/// The storage volume under `[storage] min_free_bytes`.
#[derive(Clone, Debug)]
pub struct DiskLow {
    /// Free bytes now.
    pub free: u64,
    /// The floor.
    pub floor: u64,
    /// Under the floor since (wall ns).
    pub since_ns: i64,
    /// Retention passes finished since it was first seen. The first may have
    /// measured the volume before it went under; two mean one that started
    /// after has finished, so retention has had its chance.
    pub passes_since: u64,
    /// The last retention pass ended short with nothing left it may delete.
    pub nothing_to_delete: bool,
}

/// Keeps `since` at the first time `wrong` was seen true in a row, `None` once false.
fn track(since: &mut Option<i64>, wrong: bool, now_ns: i64) -> Option<i64> {
    *since = if wrong {
        Some(since.unwrap_or(now_ns))
    } else {
        None
    };
    *since
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn label(c: &CameraConfig) -> String {
    if c.name.is_empty() || c.name == c.id {
        c.id.clone()
    } else {
        format!("{} ({})", c.name, c.id)
    }
}

/// Everything wrong now, with the message an operator reads. Messages name
/// the camera in plain words: a camera's own error text (addresses, protocol
/// steps) stays with administrators in its status; alarms say what it means
/// in the words the live tile uses ([`why_not_streaming`]).
pub fn conditions(i: &Inputs) -> BTreeMap<Key, String> {
    let mut out = BTreeMap::new();
    let older = |since: i64, secs: u32| i.now_ns - since >= i64::from(secs) * NS_PER_SEC;
    for cam in i.cameras.iter().filter(|c| c.enabled) {
        let Some(s) = i.status.get(&cam.id) else {
            continue;
        };
        let key = |k| (k, Some(cam.id.clone()));
        if let Some(since) = s.offline_since_ns {
            if s.state != StreamState::Streaming
                && s.state != StreamState::Disabled
                && older(since, i.config.offline_after_seconds)
            {
                out.insert(
                    key(Kind::CameraOffline),
                    format!(
                        "Camera {} offline since {} · {} · retrying",
                        label(cam),
                        local_words(since, i.tz),
                        why_not_streaming(s)
                    ),
                );
            }
        }
        if !cam.record {
            continue;
        }
        if let Some(since) = s.no_key_frame_since_ns {
            if older(since, i.config.recording_after_seconds) {
                out.insert(
                    key(Kind::RecordingStopped),
                    format!(
                        "Camera {} is streaming but nothing is recorded since {} (no key frame to start a segment at)",
                        label(cam),
                        local_words(since, i.tz)
                    ),
                );
            }
        }
        // Plain words: the raw error names files; it stays in the log and
        // the administrators' camera status.
        if s.recorder_error.is_some() {
            out.insert(
                key(Kind::DiskWriteError),
                format!(
                    "Recording camera {} failed: {} · retrying",
                    label(cam),
                    recorder_words(s)
                ),
            );
        }
    }
    if i.held_full {
        out.insert(
            (Kind::HeldFull, None),
            "The disk is below its free-space floor and only footage under legal hold is left \
             to delete: release holds or add disk"
                .into(),
        );
    }
    if let Some(e) = &i.retention_error {
        out.insert(
            (Kind::RetentionError, None),
            format!("Retention failed: {e}"),
        );
    }
    // Held footage filling the disk is its own alarm (held_full), with its own remedy.
    if let Some(d) = i.disk_low.as_ref().filter(|_| !i.held_full) {
        if d.passes_since >= 2 && older(d.since_ns, i.config.disk_low_after_seconds) {
            let why = if d.nothing_to_delete {
                "retention has no footage left to delete: something else is filling the \
                 volume, or the floor is too large for it"
            } else {
                "retention is not keeping up with recording"
            };
            out.insert(
                (Kind::DiskLow, None),
                format!(
                    "The storage volume has {} free, under its floor of {} ([storage] \
                     min_free_bytes), since {}: {why}",
                    mib(d.free),
                    mib(d.floor),
                    local_words(d.since_ns, i.tz)
                ),
            );
        }
    }
    if let Some(since) = i.clock_unsynced_since_ns {
        if older(since, i.config.clock_unsynced_after_seconds) {
            out.insert(
                (Kind::ClockUnsynced, None),
                format!(
                    "The server clock is not synchronised by NTP since {}: recording times \
                     may drift and exports say so; check the time service (chrony, \
                     systemd-timesyncd) and its reach to the council's time server",
                    local_words(since, i.tz)
                ),
            );
        }
    }
    if let Some(e) = &i.archive_prefix_taken {
        out.insert(
            (Kind::ArchivePrefixTaken, None),
            format!("Nothing is archived: {e}"),
        );
    }
    if let Some(e) = &i.audit_broken {
        out.insert(
            (Kind::AuditChainBroken, None),
            format!("The audit log does not verify: {e}"),
        );
    }
    out
}

/// Runs until `shutdown`: looks at conditions every [`TICK`], stores raises
/// and clears, logs them and hands them to delivery. `retention` is woken when
/// the volume drops under its floor, so the pass that may fix it runs at once.
///
/// Each look is one blocking call (volume, kernel clock, conditions, the
/// alarm store), not one per step: every hand-over to the blocking pool and
/// back wakes two threads, and an idle server's wake-ups are a visible part
/// of what recording one camera costs (docs/BENCHMARKS.md).
pub async fn run(app: Arc<App>, retention: Arc<Notify>, shutdown: CancellationToken) {
    let sender = super::send::Sender::start(&app.config.alarms, shutdown.clone());
    let mut watcher = Watcher::new(&app, retention.clone());
    loop {
        let a = app.clone();
        let looked = tokio::task::spawn_blocking(move || {
            // A panicking look is logged and the watcher kept: its state (since
            // when the disk is low, the hourly audit check) must survive it.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| watcher.look(&a)));
            (watcher, r)
        });
        watcher = match looked.await {
            Ok((w, r)) => {
                match r {
                    Ok(Ok(notices)) => notices.into_iter().for_each(|n| sender.deliver(n)),
                    Ok(Err(e)) => error!(error = %format!("{e:#}"), "storing alarms"),
                    Err(_) => error!("the alarm watcher's look panicked"),
                }
                w
            }
            // Only the blocking pool failing loses the watcher's state.
            Err(e) => {
                error!(error = %e, "alarm task");
                Watcher::new(&app, retention.clone())
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = crate::clock::tick(TICK) => {}
        }
    }
}

/// What the alarm watcher remembers between looks.
struct Watcher {
    retention: Arc<Notify>,
    audit_broken: Option<String>,
    audit_checked: Option<Instant>,
    disk_since: Option<i64>,
    /// Retention passes finished when the volume went under its floor.
    passes_at: u64,
    clock_since: Option<i64>,
    tz: jiff::tz::TimeZone,
}

impl Watcher {
    fn new(app: &App, retention: Arc<Notify>) -> Self {
        Watcher {
            retention,
            audit_broken: None,
            audit_checked: None,
            disk_since: None,
            passes_at: 0,
            clock_since: None,
            tz: app.config.server.time_zone(),
        }
    }

    /// One look (blocking: it reads the volume, the kernel's clock state and
    /// the alarm store): stores and logs what was raised or cleared.
    fn look(&mut self, app: &App) -> anyhow::Result<Vec<super::Notice>> {
        if self
            .audit_checked
            .is_none_or(|t| t.elapsed() >= AUDIT_EVERY)
        {
            self.audit_checked = Some(Instant::now());
            self.audit_broken = match app.audit.verify() {
                Ok(v) => v
                    .broken
                    .map(|b| format!("entry {} is broken: {}", b.seq, b.reason)),
                Err(e) => Some(format!("cannot read it: {e:#}")),
            };
        }
        let storage = &app.config.storage;
        let free = crate::store::retention::volume_free_bytes(&storage.dir).ok();
        let clock = crate::timesync::read_kernel(0);
        let now = app.clock.now_ns();
        let under = free.filter(|f| *f < storage.min_free_bytes);
        let passes = app.counters.retention_passes.load(Relaxed);
        if under.is_some() && self.disk_since.is_none() {
            self.passes_at = passes;
            self.retention.notify_one();
        }
        let disk_low = track(&mut self.disk_since, under.is_some(), now).map(|since_ns| DiskLow {
            free: under.unwrap_or(0),
            floor: storage.min_free_bytes,
            since_ns,
            passes_since: passes - self.passes_at,
            nothing_to_delete: app.counters.still_short.load(Relaxed),
        });
        let unsynced = clock.is_some_and(|s| !s.synced);
        let clock_unsynced_since_ns = track(&mut self.clock_since, unsynced, now);
        let status = app.status.snapshot();
        let cameras = app.cameras.all();
        let wrong = conditions(&Inputs {
            now_ns: now,
            tz: &self.tz,
            config: &app.config.alarms,
            cameras: &cameras,
            status: &status,
            held_full: app.counters.held_full.load(Relaxed),
            retention_error: app.counters.retention_error(),
            audit_broken: self.audit_broken.clone(),
            disk_low,
            clock_unsynced_since_ns,
            archive_prefix_taken: app.store.remote().and_then(|r| r.conflict()),
        });
        let notices = app.alarms.sync(now, &wrong)?;
        for n in &notices {
            let a = &n.alarm;
            let camera = a.camera.as_deref().unwrap_or("");
            if n.event == "raised" {
                warn!(
                    alarm = a.id,
                    kind = a.kind.as_str(),
                    camera,
                    "alarm raised: {}",
                    a.message
                );
            } else {
                info!(
                    alarm = a.id,
                    kind = a.kind.as_str(),
                    camera,
                    "alarm cleared: {}",
                    a.message
                );
            }
        }
        Ok(notices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Trouble;

    fn cam(id: &str, name: &str) -> CameraConfig {
        toml::from_str(&format!(
            "id = \"{id}\"\nname = \"{name}\"\nurl = \"rtsp://u:secret@10.0.0.1/s\""
        ))
        .unwrap()
    }

    #[test]
    fn thresholds_and_messages() {
        let config = AlarmsConfig::default(); // 60 s offline, 60 s recording
        let now = 1_000 * NS_PER_SEC;
        let cameras = vec![cam("gate", "Front gate"), cam("yard", ""), cam("hall", "")];
        let mut status = BTreeMap::new();
        status.insert(
            "gate".into(),
            CameraStatus {
                state: StreamState::Backoff,
                offline_since_ns: Some(now - 61 * NS_PER_SEC),
                last_error: Some(
                    "DESCRIBE: Unable to connect to RTSP server: Connection refused (os error 111)\n\nconn: 10.0.0.1:554"
                        .into(),
                ),
                trouble: Some(Trouble::ConnectionRefused),
                ..Default::default()
            },
        );
        // Offline for less than the threshold: not yet.
        status.insert(
            "yard".into(),
            CameraStatus {
                state: StreamState::Connecting,
                offline_since_ns: Some(now - 59 * NS_PER_SEC),
                ..Default::default()
            },
        );
        status.insert(
            "hall".into(),
            CameraStatus {
                state: StreamState::Streaming,
                no_key_frame_since_ns: Some(now - 70 * NS_PER_SEC),
                recorder_error: Some("writing /data/hall/x.mp4: No space left on device".into()),
                recorder_trouble: Some(crate::status::DiskTrouble::Full),
                ..Default::default()
            },
        );
        let w = conditions(&Inputs {
            now_ns: now,
            tz: &jiff::tz::TimeZone::UTC,
            config: &config,
            cameras: &cameras,
            status: &status,
            held_full: true,
            retention_error: None,
            audit_broken: None,
            disk_low: None,
            clock_unsynced_since_ns: None,
            archive_prefix_taken: None,
        });
        let keys: Vec<_> = w.keys().map(|(k, c)| (k.as_str(), c.as_deref())).collect();
        assert_eq!(
            keys,
            vec![
                ("camera_offline", Some("gate")),
                ("recording_stopped", Some("hall")),
                ("disk_write_error", Some("hall")),
                ("held_full", None),
            ]
        );
        // Plain words, as the tile says them; never the camera's own error text.
        let m = &w[&(Kind::CameraOffline, Some("gate".into()))];
        assert_eq!(
            m,
            "Camera Front gate (gate) offline since 1970-01-01 00:15:39 UTC · \
             camera not accepting connections · retrying"
        );
        assert!(w.values().all(|m| !m.contains("secret")));
        // The disk error in plain words; its file stays with administrators.
        let m = &w[&(Kind::DiskWriteError, Some("hall".into()))];
        assert_eq!(
            m,
            "Recording camera hall failed: the storage disk is full · retrying"
        );
    }

    #[test]
    fn disk_and_clock_wait_their_grace_and_held_full_takes_precedence() {
        let config = AlarmsConfig::default(); // disk 120 s, clock 900 s
        let now = 10_000 * NS_PER_SEC;
        let inputs = |disk_for: i64, clock_for: i64, held_full: bool, nothing: bool| {
            let status = BTreeMap::new();
            let disk = (disk_for >= 0).then(|| DiskLow {
                free: 3 << 20,
                floor: 8 << 20,
                since_ns: now - disk_for * NS_PER_SEC,
                passes_since: if disk_for == 777 { 1 } else { 2 },
                nothing_to_delete: nothing,
            });
            conditions(&Inputs {
                now_ns: now,
                tz: &jiff::tz::TimeZone::UTC,
                config: &config,
                cameras: &[],
                status: &status,
                held_full,
                retention_error: None,
                audit_broken: None,
                disk_low: disk,
                clock_unsynced_since_ns: (clock_for >= 0).then(|| now - clock_for * NS_PER_SEC),
                archive_prefix_taken: None,
            })
        };
        let kinds = |w: &BTreeMap<Key, String>| w.keys().map(|k| k.0.as_str()).collect::<Vec<_>>();
        assert!(inputs(119, 899, false, false).is_empty());
        let w = inputs(120, 900, false, false);
        assert_eq!(kinds(&w), vec!["disk_low", "clock_unsynced"]);
        let m = &w[&(Kind::DiskLow, None)];
        assert!(
            m.contains("3.0 MiB free")
                && m.contains("floor of 8.0 MiB")
                && m.contains("not keeping up"),
            "{m}"
        );
        let m = &inputs(500, -1, false, true)[&(Kind::DiskLow, None)];
        assert!(m.contains("no footage left to delete"), "{m}");
        // Only held footage is left: held_full says so, disk_low would repeat it.
        assert_eq!(kinds(&inputs(500, -1, true, true)), vec!["held_full"]);
        assert!(inputs(-1, -1, false, false).is_empty());
        // Long enough, but no retention pass that started since has finished: not yet.
        assert!(inputs(777, -1, false, false).is_empty());
    }

    #[test]
    fn track_keeps_the_first_time_in_a_row() {
        let mut since = None;
        assert_eq!(track(&mut since, true, 5), Some(5));
        assert_eq!(track(&mut since, true, 9), Some(5));
        assert_eq!(track(&mut since, false, 10), None);
        assert_eq!(track(&mut since, true, 11), Some(11));
    }
}
