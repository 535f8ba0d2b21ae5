//! Exports never cost footage, on a real server over a small volume (a 120 MiB tmpfs):
//! an operator's repeated full-range exports are refused past `export_max_bytes` with
//! 507, no footage is deleted for them, an export older than `export_retain_days` is
//! deleted and audited, and retention's own deletions are audited as one summary entry
//! per camera per pass.

mod common;
mod media;

use std::time::{Duration, Instant};

use cleannvr::store::Store;
use common::{HttpSession, Nvr, SmallVolume};
use media::{rfc, segment, Codec};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

/// Polls `f` every 200 ms until it gives a value or `secs` pass.
fn poll<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            common::diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric(admin: &HttpSession, name: &str) -> u64 {
    let (status, body) = admin.get("/metrics");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

fn segments_on_disk(data: &std::path::Path, camera: &str) -> usize {
    common::files(&data.join(camera), ".mp4").len()
}

#[test]
fn exports_past_the_quota_are_refused_and_never_cost_footage() {
    let Some(vol) = SmallVolume::mount(120) else {
        return;
    };
    let data = vol.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        // About 8 MiB per 10 s of 720p: 4 segments, ~33 MiB of footage on "a" and "b".
        for cam in ["a", "b"] {
            for start in [0.0, 10.0] {
                segment(&store, cam, start, 10, Codec::H264, (1280, 720), false);
            }
        }
        // "c" keeps at most one byte: retention deletes both its segments in one pass.
        segment(&store, "c", 0.0, 2, Codec::H264, (320, 240), false);
        segment(&store, "c", 2.0, 2, Codec::H264, (320, 240), false);
    }
    // An export made 40 days ago (its job file says so): past export_retain_days.
    let old = "0123456789abcdef0123456789abcdef";
    let exports = data.join(".exports");
    std::fs::create_dir_all(exports.join(old)).unwrap();
    std::fs::write(exports.join(old).join("a.mp4"), vec![7u8; MIB as usize]).unwrap();
    let created = cleannvr::clock::rfc3339(
        cleannvr::clock::Clock::now_ns(&cleannvr::clock::SystemClock) - 40 * 86_400_000_000_000,
    );
    std::fs::write(
        exports.join(format!("{old}.json")),
        json!({"id": old, "owner": "op", "created": created, "cameras": ["a"]}).to_string(),
    )
    .unwrap();

    let footage_a = segments_on_disk(&data, "a");
    let footage_b = segments_on_disk(&data, "b");
    assert_eq!((footage_a, footage_b), (2, 2));
    let config = vol.path().join("cleannvr.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n\
             [storage]\ndir = \"{}\"\nmin_free_bytes = {}\nexport_max_bytes = {}\nexport_retain_days = 31\n\
             [[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\nenabled = false\n\
             [[camera]]\nid = \"b\"\nurl = \"rtsp://127.0.0.1:9/b\"\nenabled = false\n\
             [[camera]]\nid = \"c\"\nurl = \"rtsp://127.0.0.1:9/c\"\nenabled = false\nretain_bytes = 1\n",
            data.display(),
            30 * MIB,
            40 * MIB
        ),
    )
    .unwrap();
    common::add_user(&config, "admin", "admin", "admin password 1");
    common::add_user(&config, "op", "operator", "operator password 1");
    let nvr = Nvr::start(config, &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", "admin password 1");

    // The first retention pass runs at start: the old export goes, with an audit entry.
    let expired = poll(120, "the export_expire entry", || {
        admin.audit("export_expire").into_iter().next()
    });
    assert_eq!(expired["actor"], "retention");
    assert_eq!(expired["target"], "a");
    let detail = expired["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("export={old}")) && detail.contains("export_retain_days=31"),
        "{detail}"
    );
    assert!(!exports.join(old).exists(), "expired export still on disk");
    assert!(!exports.join(format!("{old}.json")).exists());
    // Camera c's two segments: one summary entry, not one per file.
    let deleted = poll(120, "the retention_delete entry", || {
        let e = admin.audit("retention_delete");
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["target"], "c");
    let detail = deleted[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("segments=2 ") && detail.contains("reason=retain_bytes"),
        "{detail}"
    );

    // Repeated full-range exports of camera a (~16.5 MiB each) by an operator: two fit
    // in the 40 MiB quota, the rest are refused before anything is written.
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");
    let body = json!({"cameras": ["a"], "start": rfc(0.0), "end": rfc(20.0), "reason": "incident 7", "recipient": "PC 7"});
    for n in 1..=4 {
        let (status, reply) = op.send("POST", "/api/exports", &body);
        if n <= 2 {
            assert_eq!(status, 202, "export {n}: {reply}");
            let id = reply["id"].as_str().unwrap().to_owned();
            let done: Value = poll(120, "the export", || {
                let j = op.json(&format!("/api/exports/{id}"));
                match j["status"].as_str().unwrap() {
                    "running" => None,
                    "done" => Some(j),
                    _ => panic!("export {n} failed: {j}"),
                }
            });
            assert!(done["files"][0]["bytes"].as_u64().unwrap() > 10 * MIB);
        } else {
            assert_eq!(status, 507, "export {n} past the quota: {reply}");
            assert_eq!(reply["error"], "insufficient_storage", "{reply}");
            let d = reply["detail"].as_str().unwrap();
            assert!(d.contains("export_max_bytes"), "{d}");
        }
    }
    let dirs = std::fs::read_dir(&exports)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(dirs, 2, "refused exports left nothing on disk");

    // Wait for a full retention pass after the exports: footage of a and b is all there.
    let passes = metric(&admin, "cleannvr_retention_passes_total");
    poll(120, "another retention pass", || {
        (metric(&admin, "cleannvr_retention_passes_total") > passes).then_some(())
    });
    assert_eq!(segments_on_disk(&data, "a"), footage_a);
    assert_eq!(segments_on_disk(&data, "b"), footage_b);
    let storage = admin.json("/api/storage");
    let text = storage.to_string();
    let deleted = admin.audit("retention_delete");
    assert_eq!(
        deleted.len(),
        1,
        "only camera c's deletion: {deleted:?} {text}"
    );
    drop(nvr);
}
