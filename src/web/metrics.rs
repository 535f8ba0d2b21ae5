//! `/metrics` in the Prometheus text format (version 0.0.4), rendered from
//! the live status board, the index and a few process-wide counters.
//! Label values are camera ids and route patterns, so series stay bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::status::StreamState;

/// Process-wide counters that nothing else keeps.
#[derive(Debug, Default)]
pub struct Counters {
    /// Segments deleted by retention.
    pub retention_deleted_segments: AtomicU64,
    /// Bytes freed by retention.
    pub retention_deleted_bytes: AtomicU64,
    /// Retention passes completed (with or without deletions).
    pub retention_passes: AtomicU64,
    /// The last retention pass left the volume short of its floor with only held
    /// footage left to delete (an alarm: release holds or add disk).
    pub held_full: std::sync::atomic::AtomicBool,
    /// The last retention pass left the volume short of its floor with nothing
    /// left it may delete (held or not).
    pub still_short: std::sync::atomic::AtomicBool,
    /// The last retention pass's error (an alarm), `None` when it succeeded.
    pub retention_error: Mutex<Option<String>>,
    /// Web connections closed unserved by the connection budget (`web::conn`).
    pub web_refused_connections: AtomicU64,
    http: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
}

impl Counters {
    /// Counts one retention pass's deletions.
    pub fn retention(&self, segments: u64, bytes: u64) {
        self.retention_deleted_segments
            .fetch_add(segments, Ordering::Relaxed);
        self.retention_deleted_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        self.retention_passes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP response. `route` must be a route pattern or a fixed
    /// word, never a raw request path (that would let clients mint series).
    pub fn http(&self, route: &str, method: &axum::http::Method, status: u16) {
        use axum::http::Method;
        let method = match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        let mut m = self.http.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((route.to_owned(), method, status)).or_default() += 1;
    }

    /// The last retention pass's error, if it failed.
    pub fn retention_error(&self) -> Option<String> {
        self.retention_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Notes the outcome of a retention pass (`None`: it succeeded).
    pub fn set_retention_error(&self, e: Option<String>) {
        *self
            .retention_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = e;
    }

    /// Requests counted for `route` with `status` (all methods); for tests.
    pub fn http_count(&self, route: &str, status: u16) -> u64 {
        let m = self.http.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((r, _, s), _)| r == route && *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Escapes a label value per the exposition format.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders everything. `recorded` is (camera, bytes, segments) from the index.
pub fn render(app: &super::App, recorded: &[(String, u64, u64)], disk_free: Option<u64>) -> String {
    let mut o = String::with_capacity(4096);
    let cams = app.status.snapshot();
    let per_cam = |o: &mut String,
                   name: &str,
                   kind: &str,
                   help: &str,
                   f: &dyn Fn(&crate::status::CameraStatus) -> f64| {
        head(o, name, kind, help);
        for (id, s) in &cams {
            let _ = writeln!(o, "{name}{{camera=\"{}\"}} {}", esc(id), f(s));
        }
    };
    per_cam(
        &mut o,
        "cleannvr_camera_frames_total",
        "counter",
        "Video frames received.",
        &|s| s.frames as f64,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_bytes_total",
        "counter",
        "Video bytes received.",
        &|s| s.bytes as f64,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_reconnects_total",
        "counter",
        "RTSP sessions that ended and were retried.",
        &|s| s.reconnects as f64,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_dropped_frames_total",
        "counter",
        "Frames dropped because the recorder fell behind.",
        &|s| s.dropped_frames as f64,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_lost_packets_total",
        "counter",
        "RTP packets that never arrived (sequence number gaps).",
        &|s| s.lost_packets as f64,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_damaged_frames_total",
        "counter",
        "Video frames discarded after packet loss or a depacketization error, up to the next key frame.",
        &|s| s.damaged_frames as f64,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_depacketize_errors_total",
        "counter",
        "RTP packets that could not be depacketized (the session goes on).",
        &|s| s.depacketize_errors as f64,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_fps",
        "gauge",
        "Measured frames per second.",
        &|s| s.fps,
    );
    per_cam(
        &mut o,
        "cleannvr_camera_bitrate_bps",
        "gauge",
        "Measured video bitrate.",
        &|s| s.bitrate_bps,
    );
    per_cam(
        &mut o,
        "cleannvr_segments_written_total",
        "counter",
        "Segments the recorder finished.",
        &|s| s.segments_written as f64,
    );
    head(
        &mut o,
        "cleannvr_camera_state",
        "gauge",
        "1 for the camera's current connection state.",
    );
    for (id, s) in &cams {
        for st in [
            StreamState::Disabled,
            StreamState::Connecting,
            StreamState::Streaming,
            StreamState::Backoff,
            StreamState::AuthFailed,
        ] {
            let name = serde_json::to_value(st)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let v = u8::from(s.state == st);
            let _ = writeln!(
                o,
                "cleannvr_camera_state{{camera=\"{}\",state=\"{name}\"}} {v}",
                esc(id)
            );
        }
    }
    head(
        &mut o,
        "cleannvr_recorded_bytes",
        "gauge",
        "Bytes of recordings in the index.",
    );
    for (id, bytes, _) in recorded {
        let _ = writeln!(
            o,
            "cleannvr_recorded_bytes{{camera=\"{}\"}} {bytes}",
            esc(id)
        );
    }
    head(
        &mut o,
        "cleannvr_recorded_segments",
        "gauge",
        "Segments in the index.",
    );
    for (id, _, n) in recorded {
        let _ = writeln!(
            o,
            "cleannvr_recorded_segments{{camera=\"{}\"}} {n}",
            esc(id)
        );
    }
    let c = &app.counters;
    head(
        &mut o,
        "cleannvr_retention_deleted_segments_total",
        "counter",
        "Segments deleted by retention.",
    );
    let _ = writeln!(
        o,
        "cleannvr_retention_deleted_segments_total {}",
        c.retention_deleted_segments.load(Ordering::Relaxed)
    );
    head(
        &mut o,
        "cleannvr_retention_deleted_bytes_total",
        "counter",
        "Bytes freed by retention.",
    );
    let _ = writeln!(
        o,
        "cleannvr_retention_deleted_bytes_total {}",
        c.retention_deleted_bytes.load(Ordering::Relaxed)
    );
    head(
        &mut o,
        "cleannvr_retention_passes_total",
        "counter",
        "Retention passes completed.",
    );
    let _ = writeln!(
        o,
        "cleannvr_retention_passes_total {}",
        c.retention_passes.load(Ordering::Relaxed)
    );
    head(
        &mut o,
        "cleannvr_storage_held_full",
        "gauge",
        "1 when the volume is short of its free-space floor and only legally held footage is left (held footage is never deleted).",
    );
    let _ = writeln!(
        o,
        "cleannvr_storage_held_full {}",
        u8::from(c.held_full.load(Ordering::Relaxed))
    );
    head(
        &mut o,
        "cleannvr_web_connections_refused_total",
        "counter",
        "Web connections closed unserved: over the per-address or total cap, or no TLS handshake slot.",
    );
    let _ = writeln!(
        o,
        "cleannvr_web_connections_refused_total {}",
        c.web_refused_connections.load(Ordering::Relaxed)
    );
    if let Some(free) = disk_free {
        head(
            &mut o,
            "cleannvr_disk_free_bytes",
            "gauge",
            "Free bytes on the storage volume.",
        );
        let _ = writeln!(o, "cleannvr_disk_free_bytes {free}");
    }
    head(
        &mut o,
        "cleannvr_http_requests_total",
        "counter",
        "HTTP responses by route pattern, method and status.",
    );
    {
        let m = c.http.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, method, status), n) in m.iter() {
            let _ = writeln!(
                o,
                "cleannvr_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                esc(route)
            );
        }
    }
    head(
        &mut o,
        "cleannvr_uptime_seconds",
        "gauge",
        "Seconds since the web server started.",
    );
    let _ = writeln!(
        o,
        "cleannvr_uptime_seconds {}",
        app.started.elapsed().as_secs()
    );
    alarms(&mut o, &app.alarms.active());
    crate::transcode::render_metrics(&mut o);
    o
}

/// The alarms up now, one series per alarm; `camera` only on camera alarms.
///
/// A cleared alarm's series goes away instead of turning 0, as Prometheus's own
/// `ALERTS` series do: a 0 for every kind and camera that could go wrong would
/// multiply series for nothing, an alert rule needs only `cleannvr_alarm_active`
/// to exist (`for:` then counts from the first scrape that saw it), and a
/// vanished series is marked stale at the next scrape, so the alert resolves.
/// `since` lets a rule or dashboard tell how long it has been up across restarts
/// of Prometheus. Labels are the kind's stable name and the configured camera id:
/// never the message, which may change and is meant for people.
fn alarms(o: &mut String, up: &[crate::alarms::Active]) {
    let label = |a: &crate::alarms::Active| match &a.camera {
        Some(c) => format!("kind=\"{}\",camera=\"{}\"", a.kind.as_str(), esc(c)),
        None => format!("kind=\"{}\"", a.kind.as_str()),
    };
    head(
        o,
        "cleannvr_alarm_active",
        "gauge",
        "1 while an alarm is up (the series is absent otherwise); the same alarms as /api/alarms.",
    );
    for a in up {
        let _ = writeln!(o, "cleannvr_alarm_active{{{}}} 1", label(a));
    }
    head(
        o,
        "cleannvr_alarm_since_seconds",
        "gauge",
        "Unix time the alarm was raised.",
    );
    for a in up {
        let _ = writeln!(
            o,
            "cleannvr_alarm_since_seconds{{{}}} {}",
            label(a),
            a.raised_ns.div_euclid(1_000_000_000)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_bounds_methods() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let c = Counters::default();
        let m = axum::http::Method::from_bytes(b"BREW").unwrap();
        c.http("/x", &m, 200);
        c.http("/x", &axum::http::Method::GET, 200);
        assert_eq!(c.http_count("/x", 200), 2);
        let keys: Vec<_> = c.http.lock().unwrap().keys().map(|k| k.1).collect();
        assert_eq!(keys, vec!["GET", "other"]);
    }

    #[test]
    fn alarms_are_one_series_each_with_the_camera_only_when_there_is_one() {
        use crate::alarms::{Active, Kind};
        let mut o = String::new();
        alarms(
            &mut o,
            &[
                Active {
                    kind: Kind::CameraOffline,
                    camera: Some("ha\"ll".into()),
                    raised_ns: 1_700_000_000_900_000_000,
                },
                Active {
                    kind: Kind::DiskLow,
                    camera: None,
                    raised_ns: 1_700_000_100_000_000_000,
                },
            ],
        );
        let series: Vec<_> = o.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                r#"cleannvr_alarm_active{kind="camera_offline",camera="ha\"ll"} 1"#,
                r#"cleannvr_alarm_active{kind="disk_low"} 1"#,
                r#"cleannvr_alarm_since_seconds{kind="camera_offline",camera="ha\"ll"} 1700000000"#,
                r#"cleannvr_alarm_since_seconds{kind="disk_low"} 1700000100"#,
            ]
        );
        let mut none = String::new();
        alarms(&mut none, &[]);
        assert!(none.lines().all(|l| l.starts_with('#')), "{none}");
    }

    /// The shipped example rules cover every kind (promtool checks their syntax
    /// where it is installed; see docs/OPERATOR.md).
    #[test]
    fn the_example_alert_rules_cover_every_kind() {
        let rules = include_str!("../../config/prometheus-alerts.yml");
        for k in crate::alarms::Kind::ALL {
            assert!(
                rules.contains(&format!("kind=\"{}\"", k.as_str())),
                "no rule for {}",
                k.as_str()
            );
        }
    }
}
