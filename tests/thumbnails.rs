//! Timeline thumbnails cached on disk with their segment, against a real server recording
//! the GStreamer RTSP peer: the first request decodes and writes
//! `<segment>.mp4.thumbs/<moof>-160.jpg` (private), the second is read from that file
//! (same inode and mtime, the cache counter moves, the decode counter does not), a
//! truncated or missing file is made again and never shown broken, `/api/storage` and
//! retention count its bytes, a burst of requests for one decodes it once, the browser
//! may keep it (private), and when retention deletes the segment (`retain_bytes = 1`,
//! once the admin's legal hold is released) the thumbnails go with it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cleannvr::clock::{parse_rfc3339, rfc3339};
use common::{metric, GstServer, HttpSession, Nvr};
use serde_json::json;

/// Polls `f` every 200 ms until it gives a value; after `secs` fails with `what` and the
/// server's log.
fn poll<T>(nvr: &Nvr, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; server log:\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The finished segments of `gate` the index lists: (start ns, end ns).
fn segments(who: &HttpSession) -> Vec<(i64, i64)> {
    who.json("/api/cameras/gate/recordings")["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                parse_rfc3339(s["start"].as_str().unwrap()).unwrap(),
                parse_rfc3339(s["end"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The `.jpg` files in a thumbnail directory (temporaries excluded).
fn jpgs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "jpg"));
    v.sort();
    v
}

/// Every thumbnail directory under `dir`, at any depth.
fn thumb_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.to_string_lossy().ends_with(".mp4.thumbs") {
                    out.push(p.clone());
                }
                stack.push(p);
            }
        }
    }
    out
}

fn counters(admin: &HttpSession) -> (u64, u64) {
    let (status, page) = admin.get("/metrics");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    (
        metric(&page, "cleannvr_thumbnails_made_total"),
        metric(&page, "cleannvr_thumbnails_cached_total"),
    )
}

/// The response headers of GET `path` (lower-cased names).
fn headers(admin: &HttpSession, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-D", "-", "-H"])
        .arg(format!("Cookie: {}", admin.cookie))
        .arg(format!("{}{path}", admin.base))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

/// `n` GETs of `path` at once (one curl, parallel connections); their bodies.
fn burst(admin: &HttpSession, path: &str, n: usize) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sk",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
    ])
    .arg(n.to_string())
    .arg("-H")
    .arg(format!("Cookie: {}", admin.cookie));
    for i in 0..n {
        cmd.arg("-o")
            .arg(dir.path().join(i.to_string()))
            .arg(format!("{}{path}", admin.base));
    }
    assert!(cmd.status().unwrap().success());
    (0..n)
        .map(|i| std::fs::read(dir.path().join(i.to_string())).unwrap())
        .collect()
}

fn whole_jpeg(b: &[u8]) -> bool {
    b.starts_with(&[0xff, 0xd8, 0xff]) && b.ends_with(&[0xff, 0xd9])
}

#[test]
fn thumbnails_are_cached_beside_their_segment_and_deleted_with_it() {
    let gst = GstServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("cleannvr.toml");
    let cameras = format!(
        "[[camera]]\nid = \"gate\"\nurl = \"{}\"\nretain_bytes = 1\n",
        gst.url("h264aac")
    );
    std::fs::write(&cfg, common::config(tmp.path(), 2, &cameras)).unwrap();
    common::add_user(&cfg, "admin", "admin", "admin password 1");
    let nvr = Nvr::start(cfg.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", "admin password 1");
    // Everything from an hour ago on is held, so `retain_bytes = 1` keeps the footage
    // until the hold is released (a segment finished before the hold may go: unused).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let (status, made) = admin.send(
        "POST",
        "/api/holds",
        &json!({ "cameras": ["gate"], "start": rfc3339(now - 3_600_000_000_000),
                 "end": rfc3339(now + 3_600_000_000_000), "reason": "thumbnail test" }),
    );
    assert_eq!(status, 201, "{made}");
    let hold = made["id"].as_str().unwrap().to_owned();

    let segs = poll(&nvr, 150, "2 recorded segments of gate", || {
        let s = segments(&admin);
        (s.len() >= 2).then_some(s)
    });
    let (start, end) = segs[0];
    let segment = data.join(cleannvr::store::segment_rel_path("gate", start));
    assert!(segment.exists(), "{}", segment.display());
    let thumbs = PathBuf::from(format!("{}.thumbs", segment.display()));
    let t = rfc3339((start + end) / 2);
    let path = format!("/api/cameras/gate/thumbnail?t={t}");

    // A burst of requests for a thumbnail not made yet (a hover sweep, several tabs)
    // decodes it once; the others wait for that one.
    let (s1, e1) = segs[1];
    let segment1 = data.join(cleannvr::store::segment_rel_path("gate", s1));
    let path1 = format!("/api/cameras/gate/thumbnail?t={}", rfc3339((s1 + e1) / 2));
    let (made1, cached1) = counters(&admin);
    let bodies = burst(&admin, &path1, 12);
    assert!(bodies.iter().all(|b| whole_jpeg(b) && *b == bodies[0]));
    assert_eq!(
        counters(&admin),
        (made1 + 1, cached1 + 11),
        "decoded once for 12 requests at once"
    );
    let other = bodies[0].len() as u64;

    // First request: decoded, written beside the segment, private.
    let (made0, cached0) = counters(&admin);
    let (status, first) = admin.get(&path);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    assert!(whole_jpeg(&first), "not a whole JPEG");
    let files = jpgs(&thumbs);
    assert_eq!(files.len(), 1, "one cache file in {}", thumbs.display());
    let file = files[0].clone();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        first,
        "the file holds what was served"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&file), mode(&thumbs)), (0o600, 0o700), "private");
    assert_eq!(counters(&admin), (made0 + 1, cached0));
    // The browser may keep it (only for this login's user: private) as long as the
    // audit would not record a new viewing anyway; a 404 is not kept.
    let h = headers(&admin, &path);
    assert!(h.contains("cache-control: private, max-age=600\r\n"), "{h}");
    let h = headers(&admin, "/api/cameras/gate/thumbnail?t=2000-01-01T00:00:00Z");
    assert!(h.contains("cache-control: no-store\r\n"), "{h}");
    let cached0 = cached0 + 1;
    let storage = admin.json("/api/storage");
    assert_eq!(
        storage["cameras"][0]["thumbnail_bytes"].as_u64(),
        Some(other + first.len() as u64),
        "{storage}"
    );

    // Second request: read from the file, not decoded again.
    let stamp = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let before = stamp(&file);
    std::thread::sleep(Duration::from_millis(20));
    let (status, second) = admin.get(&path);
    assert_eq!((status, second == first), (200, true));
    assert_eq!(stamp(&file), before, "the cache file was not rewritten");
    assert_eq!(
        counters(&admin),
        (made0 + 1, cached0 + 1),
        "served from the cache"
    );

    // A torn file (a crash mid-write on a file system that lost the tail) is never
    // served: it is made again, whole.
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(first.len() as u64 / 2).unwrap();
    drop(f);
    let (status, third) = admin.get(&path);
    assert_eq!(status, 200);
    assert!(whole_jpeg(&third), "a truncated cache file was served");
    assert_eq!(std::fs::read(&file).unwrap(), third, "made again on disk");
    assert_eq!(counters(&admin).0, made0 + 2);
    // A missing file likewise.
    std::fs::remove_file(&file).unwrap();
    let (status, fourth) = admin.get(&path);
    assert_eq!((status, whole_jpeg(&fourth)), (200, true));
    assert!(file.exists(), "made again on disk");
    assert_eq!(counters(&admin).0, made0 + 3);
    let storage = admin.json("/api/storage");
    assert_eq!(
        storage["cameras"][0]["thumbnail_bytes"].as_u64(),
        Some(other + fourth.len() as u64),
        "counted once: {storage}"
    );

    // Released, the footage goes (retain_bytes = 1) and its thumbnails with it.
    let (status, body) = admin.send(
        "DELETE",
        &format!("/api/holds/{hold}"),
        &json!({ "reason": "test over" }),
    );
    assert_eq!(status, 200, "{body}");
    poll(&nvr, 60, "retention to delete the segments", || {
        (!segment.exists() && !segment1.exists()).then_some(())
    });
    assert!(
        !thumbs.exists(),
        "{} outlived its segment",
        thumbs.display()
    );
    // No thumbnail directory anywhere without its segment beside it.
    for d in thumb_dirs(&data) {
        let seg = PathBuf::from(d.to_string_lossy().trim_end_matches(".thumbs"));
        assert!(seg.exists(), "{} outlived its segment", d.display());
    }
    // Footage deleted since, asked for again: 404, nothing written.
    assert_eq!(admin.get(&path).0, 404);
    assert!(!thumbs.exists());
    let storage = admin.json("/api/storage");
    assert_eq!(
        storage["cameras"][0]["thumbnail_bytes"].as_u64(),
        Some(0),
        "{storage}"
    );
}
