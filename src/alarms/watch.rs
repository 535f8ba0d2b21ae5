//! Decides what is wrong now from what the server already knows (the status
//! board, retention's outcome, the audit chain) and turns changes into alarm
//! records and deliveries. [`conditions`] is a plain function so the rules
//! are tested without a server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::config::AlarmsConfig;
use super::{Key, Kind};
use crate::clock::{rfc3339, NS_PER_SEC};
use crate::config::CameraConfig;
use crate::status::{CameraStatus, StreamState};
use crate::web::App;

/// How often conditions are looked at.
const TICK: Duration = Duration::from_secs(2);
/// How often the audit chain is verified (it reads the whole log).
const AUDIT_EVERY: Duration = Duration::from_secs(3600);

/// What [`conditions`] looks at.
pub struct Inputs<'a> {
    /// Wall clock now.
    pub now_ns: i64,
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
}

fn label(c: &CameraConfig) -> String {
    if c.name.is_empty() || c.name == c.id {
        c.id.clone()
    } else {
        format!("{} ({})", c.name, c.id)
    }
}

/// Everything wrong now, with the message an operator reads. Messages name
/// the camera and never carry credentials (status errors are already free of them).
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
                let why = s
                    .last_error
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", s.state).to_lowercase());
                out.insert(
                    key(Kind::CameraOffline),
                    format!(
                        "Camera {} offline since {}: {why}",
                        label(cam),
                        rfc3339(since)
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
                        rfc3339(since)
                    ),
                );
            }
        }
        if let Some(e) = &s.recorder_error {
            out.insert(
                key(Kind::DiskWriteError),
                format!("Recording camera {} failed: {e}", label(cam)),
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
    if let Some(e) = &i.audit_broken {
        out.insert(
            (Kind::AuditChainBroken, None),
            format!("The audit log does not verify: {e}"),
        );
    }
    out
}

/// Runs until `shutdown`: looks at conditions every [`TICK`], stores raises
/// and clears, logs them and hands them to delivery.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let cfg = app.config.alarms.clone();
    let sender = super::send::Sender::start(&cfg, shutdown.clone());
    let mut audit_broken: Option<String> = None;
    let mut audit_checked: Option<Instant> = None;
    loop {
        if audit_checked.is_none_or(|t| t.elapsed() >= AUDIT_EVERY) {
            audit_checked = Some(Instant::now());
            let a = app.clone();
            match tokio::task::spawn_blocking(move || a.audit.verify()).await {
                Ok(Ok(v)) => {
                    audit_broken = v
                        .broken
                        .map(|b| format!("entry {} is broken: {}", b.seq, b.reason))
                }
                Ok(Err(e)) => audit_broken = Some(format!("cannot read it: {e:#}")),
                Err(e) => error!(error = %e, "audit verification task"),
            }
        }
        let status = app.status.snapshot();
        let cameras = app.cameras.all();
        let wrong = conditions(&Inputs {
            now_ns: app.clock.now_ns(),
            config: &cfg,
            cameras: &cameras,
            status: &status,
            held_full: app
                .counters
                .held_full
                .load(std::sync::atomic::Ordering::Relaxed),
            retention_error: app.counters.retention_error(),
            audit_broken: audit_broken.clone(),
        });
        let a = app.clone();
        let now = app.clock.now_ns();
        match tokio::task::spawn_blocking(move || a.alarms.sync(now, &wrong)).await {
            Ok(Ok(notices)) => {
                for n in notices {
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
                    sender.deliver(n);
                }
            }
            Ok(Err(e)) => error!(error = %format!("{e:#}"), "storing alarms"),
            Err(e) => error!(error = %e, "alarm task"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                last_error: Some("connection refused".into()),
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
                ..Default::default()
            },
        );
        let w = conditions(&Inputs {
            now_ns: now,
            config: &config,
            cameras: &cameras,
            status: &status,
            held_full: true,
            retention_error: None,
            audit_broken: None,
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
        let m = &w[&(Kind::CameraOffline, Some("gate".into()))];
        assert!(
            m.contains("Front gate (gate)") && m.contains("connection refused"),
            "{m}"
        );
        assert!(w.values().all(|m| !m.contains("secret")));
    }
}
