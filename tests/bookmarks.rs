//! The playback timeline's server side against a real camera (GStreamer's RTSP
//! server): bookmarks (`/api/bookmarks`: add, list, search, delete own, audited,
//! scoped by camera), hover thumbnails (`/api/cameras/{id}/thumbnail`, a real
//! JPEG decoded from the recorded key frame, checked with ffprobe) and the
//! camera's offline span in `recordings` when the camera goes away and comes
//! back.

mod common;

use std::time::{Duration, Instant};

use cleannvr::clock::Clock;
use common::*;
use serde_json::{json, Value};

const OP: (&str, &str) = ("op1", "operator pass 12345");
const OP2: (&str, &str) = ("op2", "operator pass 67890");
const VIEWER: (&str, &str) = ("yardonly", "viewer pass 12345");

fn add(cfg: &std::path::Path, args: &[&str], pw: &str) {
    let mut a = vec!["user", "add"];
    a.extend_from_slice(args);
    let (ok, out) = cli(cfg, &a, &format!("{pw}\n"));
    assert!(ok, "user add: {out}");
}

/// The middle of camera `a`'s first recorded range, RFC 3339.
fn recorded_moment(admin: &HttpSession) -> String {
    let r = admin.json("/api/cameras/a/recordings");
    let range = &r["ranges"][0];
    let s = chrono_ns(range["start"].as_str().unwrap());
    let e = chrono_ns(range["end"].as_str().unwrap());
    cleannvr::clock::rfc3339((s + e) / 2)
}

fn chrono_ns(s: &str) -> i64 {
    cleannvr::clock::parse_rfc3339(s).unwrap_or_else(|| panic!("not RFC 3339: {s}"))
}

#[test]
fn bookmarks_thumbnails_and_offline_spans_against_a_real_camera() {
    if !require_peer(std::path::Path::new("/usr/bin/python3").exists(), "python3") {
        return;
    }
    let mut gst = GstServer::start(&[]);
    let port = gst.port;
    let dir = tempfile::tempdir().unwrap();
    let cams = format!(
        "[[camera]]\nid = \"a\"\nurl = \"{}\"\n[[camera]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.1:9/yard\"\nenabled = false\n",
        gst.url("h264aac")
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, config(dir.path(), 2, &cams)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    add(&cfg, &[OP.0, "--role", "operator"], OP.1);
    add(&cfg, &[OP2.0, "--role", "operator"], OP2.1);
    add(
        &cfg,
        &[VIEWER.0, "--role", "viewer", "--cameras", "yard"],
        VIEWER.1,
    );
    let nvr = Nvr::start(cfg, &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");
    let op = HttpSession::login(&nvr.http, OP.0, OP.1);
    let op2 = HttpSession::login(&nvr.http, OP2.0, OP2.1);
    let viewer = HttpSession::login(&nvr.http, VIEWER.0, VIEWER.1);
    wait_segments(&nvr, Some(&admin.cookie), "a", 1);
    // The index row follows the file: wait for the recorded range too.
    let deadline = Instant::now() + Duration::from_secs(60);
    while admin.json("/api/cameras/a/recordings")["ranges"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "no range indexed: {}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = recorded_moment(&admin);

    // --- Bookmarks -------------------------------------------------------------
    let (status, b) = op.send(
        "POST",
        "/api/bookmarks",
        &json!({"camera": "a", "time": t, "name": "Van at the gate", "note": "white, no plates"}),
    );
    assert_eq!(status, 201, "{b}");
    assert_eq!(
        (b["camera"].as_str(), b["created_by"].as_str()),
        (Some("a"), Some(OP.0)),
        "{b}"
    );
    assert_eq!(chrono_ns(b["time"].as_str().unwrap()), chrono_ns(&t), "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let (status, b2) = op2.send(
        "POST",
        "/api/bookmarks",
        &json!({"camera": "a", "time": t, "name": "Cyclist"}),
    );
    assert_eq!(status, 201, "{b2}");
    // Refused: no name, the future, a camera out of scope, a viewer.
    let (status, e) = op.send(
        "POST",
        "/api/bookmarks",
        &json!({"camera": "a", "time": t, "name": " "}),
    );
    assert_eq!(status, 400, "{e}");
    let future = cleannvr::clock::rfc3339(chrono_ns(&t) + 3600 * 1_000_000_000);
    let (status, e) = op.send(
        "POST",
        "/api/bookmarks",
        &json!({"camera": "a", "time": future, "name": "x"}),
    );
    assert_eq!(status, 400, "{e}");
    let (status, e) = viewer.send(
        "POST",
        "/api/bookmarks",
        &json!({"camera": "yard", "time": t, "name": "x"}),
    );
    assert_eq!(status, 403, "a viewer cannot bookmark: {e}");
    let (status, e) = op.send(
        "POST",
        "/api/bookmarks",
        &json!({"camera": "nope", "time": t, "name": "x"}),
    );
    assert_eq!(status, 404, "{e}");

    let names = |v: &Value| -> Vec<String> {
        v["bookmarks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = admin.json("/api/bookmarks?cameras=a");
    assert_eq!(names(&listed), ["Van at the gate", "Cyclist"], "{listed}");
    assert_eq!(
        names(&op.json("/api/bookmarks?q=PLATES%20white")),
        ["Van at the gate"]
    );
    assert_eq!(
        names(&op.json("/api/bookmarks?q=lorry")),
        Vec::<String>::new()
    );
    // A viewer limited to another camera sees none of camera a's, and may not ask.
    assert_eq!(names(&viewer.json("/api/bookmarks")), Vec::<String>::new());
    assert_eq!(viewer.get("/api/bookmarks?cameras=a").0, 403);

    // Only the author (or an admin) deletes; both are audited.
    let (status, e) = op2.send("DELETE", &format!("/api/bookmarks/{id}"), &Value::Null);
    assert_eq!(status, 403, "someone else's bookmark: {e}");
    let (status, e) = viewer.send("DELETE", &format!("/api/bookmarks/{id}"), &Value::Null);
    assert_eq!(status, 403, "a viewer: {e}");
    let (status, e) = op.send("DELETE", &format!("/api/bookmarks/{id}"), &Value::Null);
    assert_eq!(status, 200, "{e}");
    let (status, _) = op.send("DELETE", &format!("/api/bookmarks/{id}"), &Value::Null);
    assert_eq!(status, 404, "deleted twice");
    let id2 = b2["id"].as_str().unwrap();
    let (status, e) = admin.send("DELETE", &format!("/api/bookmarks/{id2}"), &Value::Null);
    assert_eq!(status, 200, "an admin deletes anyone's: {e}");
    assert_eq!(
        names(&admin.json("/api/bookmarks?cameras=a")),
        Vec::<String>::new()
    );
    let added = admin.audit("bookmark_add");
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(
        added.iter().any(|e| e["actor"] == OP.0
            && e["target"] == "a"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("name=Van at the gate")),
        "{added:?}"
    );
    let deleted = admin.audit("bookmark_delete");
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(
        deleted
            .iter()
            .any(|e| e["actor"] == "root" && e["detail"].as_str().unwrap().contains("by=op2")),
        "{deleted:?}"
    );

    // --- Thumbnails ------------------------------------------------------------
    let (status, jpeg) = op.get(&format!("/api/cameras/a/thumbnail?t={t}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&jpeg));
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let file = dir.path().join("thumb.jpg");
    std::fs::write(&file, &jpeg).unwrap();
    let probe = ffprobe(&file, &["-show_streams"]);
    let s = &probe["streams"][0];
    // The peer sends 640x360: 160 wide keeps the aspect ratio.
    assert_eq!(
        (
            s["codec_name"].as_str(),
            s["width"].as_u64(),
            s["height"].as_u64()
        ),
        (Some("mjpeg"), Some(160), Some(90)),
        "{probe}"
    );
    let (status, again) = op.get(&format!("/api/cameras/a/thumbnail?t={t}"));
    assert_eq!(
        (status, again == jpeg),
        (200, true),
        "the same moment shows the same frame"
    );
    let before = cleannvr::clock::rfc3339(chrono_ns(&t) - 86_400 * 1_000_000_000);
    assert_eq!(
        op.get(&format!("/api/cameras/a/thumbnail?t={before}")).0,
        404,
        "nothing recorded then"
    );
    assert_eq!(
        viewer.get(&format!("/api/cameras/a/thumbnail?t={t}")).0,
        403,
        "camera out of scope"
    );
    let shots = admin.audit("snapshot");
    assert_eq!(
        shots.iter().filter(|e| e["actor"] == OP.0 && e["detail"].as_str().unwrap().starts_with("thumbnail")).count(),
        1,
        "one audit entry for hovering one hour of footage: {shots:?}"
    );

    // --- Offline spans -----------------------------------------------------------
    let offline = |admin: &HttpSession| -> Vec<Value> {
        admin.json("/api/cameras/a/recordings")["offline"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(
        offline(&admin).is_empty(),
        "a camera that streams has no offline span: {:?}",
        offline(&admin)
    );
    let killed = cleannvr::clock::SystemClock.now_ns();
    gst.kill();
    let deadline = Instant::now() + Duration::from_secs(150);
    let span = loop {
        if let Some(s) = offline(&admin)
            .into_iter()
            .find(|s| s["state"] == "offline")
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no offline span within 150 s of the camera stopping: {}\n{}",
            camera_status(&nvr.http, &admin.cookie, "a"),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(span["ongoing"], true, "{span}");
    assert!(!span["reason"].as_str().unwrap().is_empty(), "{span}");
    let began = chrono_ns(span["start"].as_str().unwrap());
    assert!(
        (began - killed).abs() < 30 * 1_000_000_000,
        "the span starts when the camera stopped: {span}, killed at {killed}"
    );
    // The camera comes back where it was: the span ends.
    let _gst = GstServer::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(180);
    let span = loop {
        let spans = offline(&admin);
        if let Some(s) = spans
            .iter()
            .find(|s| s["state"] == "offline" && s["ongoing"] == false)
        {
            break s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the offline span did not end within 180 s of the camera returning: {spans:?}\n{}\n{}",
            camera_status(&nvr.http, &admin.cookie, "a"),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(chrono_ns(span["end"].as_str().unwrap()) > began, "{span}");
}
