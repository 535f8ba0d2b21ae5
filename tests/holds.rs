//! Legal holds on a real server recording the GStreamer RTSP peer: an operator holds one
//! recorded segment's time; with the camera's `retain_bytes` cut to 1 byte, retention
//! deletes the unheld footage of the same camera and keeps the held segment (file and
//! index); `/api/storage` shows its bytes as held. Viewers and other cameras are refused,
//! only admins release (with a reason, audited), and after the release retention deletes
//! it too. Operators cannot hold footage not yet recorded; admins can.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cleannvr::clock::{parse_rfc3339, rfc3339};
use common::{GstServer, HttpSession, Nvr};
use serde_json::{json, Value};

/// Polls `f` every 500 ms until it gives a value; after `secs` fails with `what` and the
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
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn config(dir: &std::path::Path, gst: &GstServer, retain_bytes: u64) -> String {
    let cameras = format!(
        "[[camera]]\nid = \"gate\"\nurl = \"{}\"\nretain_bytes = {retain_bytes}\n\
         [[camera]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.1:9/none\"\nenabled = false\n",
        gst.url("h264aac")
    );
    common::config(dir, 2, &cameras)
}

/// The segments of `gate` the index lists now: (start ns, end ns, bytes).
fn segments(who: &HttpSession) -> Vec<(i64, i64, u64)> {
    let r = who.json("/api/cameras/gate/recordings");
    r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                parse_rfc3339(s["start"].as_str().unwrap()).unwrap(),
                parse_rfc3339(s["end"].as_str().unwrap()).unwrap(),
                s["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn file_of(data: &std::path::Path, start_ns: i64) -> PathBuf {
    data.join(cleannvr::store::segment_rel_path("gate", start_ns))
}

#[test]
fn held_footage_survives_retention_until_an_admin_releases_it() {
    let gst = GstServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("cleannvr.toml");
    std::fs::write(&cfg, config(tmp.path(), &gst, 0)).unwrap();
    common::add_user(&cfg, "admin", "admin", "admin password 1");
    common::add_user(&cfg, "op", "operator", "operator password 1");
    common::add_user(&cfg, "viewer", "viewer", "viewer password 1");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", "admin password 1");
    let (status, body) = admin.send("PUT", "/api/users/op", &json!({ "cameras": ["gate"] }));
    assert_eq!(status, 200, "{body}");

    // Four finished 2 s segments; the second is the one held (by its middle millisecond,
    // so only the overlap rule keeps it whole).
    let segs = poll(&nvr, 180, "4 recorded segments of gate", || {
        let s = segments(&admin);
        (s.len() >= 4).then_some(s)
    });
    let held = segs[1];
    let mid = (held.0 + held.1) / 2;
    let hold = |who: &HttpSession, cameras: Value| {
        who.send(
            "POST",
            "/api/holds",
            &json!({ "cameras": cameras, "start": rfc3339(mid), "end": rfc3339(mid + 1_000_000),
                     "reason": "incident 7: gate" }),
        )
    };
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");
    let viewer = HttpSession::login(&nvr.http, "viewer", "viewer password 1");
    assert_eq!(hold(&viewer, json!(["gate"])).0, 403, "viewers cannot hold");
    assert_eq!(
        hold(&op, json!(["gate", "yard"])).0,
        403,
        "not a camera op may see"
    );
    let (status, made) = hold(&op, json!(["gate"]));
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    // An admin's hold on the other camera is not shown to op.
    let (status, other) = hold(&admin, json!(["yard"]));
    assert_eq!(status, 201, "{other}");
    let listed = op.json("/api/holds");
    let ids: Vec<&str> = listed["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()], "{listed}");
    assert_eq!(listed["holds"][0]["reason"], "incident 7: gate");
    assert_eq!(listed["holds"][0]["active"], true);
    let created = admin.audit("hold_create");
    assert!(
        created.iter().any(|e| e["actor"] == "op"
            && e["target"] == "gate"
            && e["detail"].as_str().unwrap().contains(&id)),
        "{created:?}"
    );
    assert_eq!(
        op.json("/api/storage")["cameras"][0]["held_bytes"]
            .as_u64()
            .unwrap(),
        held.2
    );

    // Restarted with gate limited to 1 byte: retention deletes all of gate's finished
    // footage except the held segment.
    nvr.stop();
    std::fs::write(&cfg, config(tmp.path(), &gst, 1)).unwrap();
    let nvr = Nvr::start(cfg, &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", "admin password 1");
    poll(
        &nvr,
        180,
        "retention to delete gate's unheld footage",
        || {
            let gone = [segs[0], segs[2], segs[3]]
                .iter()
                .all(|s| !file_of(&data, s.0).exists());
            (gone && !admin.audit("retention_delete").is_empty()).then_some(())
        },
    );
    assert!(
        file_of(&data, held.0).exists(),
        "held segment deleted; log:\n{}",
        nvr.log.text()
    );
    assert!(segments(&admin).iter().any(|s| s.0 == held.0));
    let storage = admin.json("/api/storage");
    let gate = &storage["cameras"][0];
    assert_eq!(gate["held_bytes"].as_u64().unwrap(), held.2, "{storage}");
    assert!(gate["bytes"].as_u64().unwrap() >= held.2, "{storage}");
    assert_eq!(storage["held_full"], false);

    // Only admins release, and only with a reason; then retention deletes it.
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");
    let release = format!("/api/holds/{id}");
    assert_eq!(
        op.send("DELETE", &release, &json!({ "reason": "case closed" }))
            .0,
        403
    );
    assert_eq!(
        admin.send("DELETE", &release, &json!({ "reason": " " })).0,
        400
    );
    assert!(file_of(&data, held.0).exists());
    let (status, body) = admin.send("DELETE", &release, &json!({ "reason": "case closed" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        admin
            .send("DELETE", &release, &json!({ "reason": "again" }))
            .0,
        404
    );
    let released = admin.audit("hold_release");
    assert!(
        released.iter().any(|e| e["actor"] == "admin"
            && e["detail"].as_str().unwrap().contains("reason=case closed")
            && e["detail"].as_str().unwrap().contains(&id)),
        "{released:?}"
    );
    poll(
        &nvr,
        180,
        "retention to delete the released segment",
        || (!file_of(&data, held.0).exists()).then_some(()),
    );
}

/// An operator's hold ends now at the latest (footage not yet recorded cannot be held,
/// and a hold reaching years ahead would switch retention off); an admin may hold ahead.
/// No camera needs to record: the rule is on the range.
#[test]
fn only_admins_hold_footage_not_yet_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cleannvr.toml");
    let cameras = "[[camera]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.1:9/none\"\nenabled = false\n";
    std::fs::write(&cfg, common::config(tmp.path(), 2, cameras)).unwrap();
    common::add_user(&cfg, "admin", "admin", "admin password 1");
    common::add_user(&cfg, "op", "operator", "operator password 1");
    let nvr = Nvr::start(cfg, &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", "admin password 1");
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    };
    const HOUR: i64 = 3_600_000_000_000;
    const YEARS: i64 = 10 * 365 * 24 * HOUR;
    let hold = |who: &HttpSession, start: i64, end: i64| {
        who.send(
            "POST",
            "/api/holds",
            &json!({ "cameras": ["yard"], "start": rfc3339(start), "end": rfc3339(end),
                     "reason": "incident 9" }),
        )
    };
    let listed_end = |id: &str| {
        let all = admin.json("/api/holds");
        let h = all["holds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == id)
            .unwrap_or_else(|| panic!("hold {id} not listed: {all}"))
            .clone();
        parse_rfc3339(h["end"].as_str().unwrap()).unwrap()
    };

    // An operator's hold over the last hour and ten years ahead is cut to now.
    // Whole milliseconds, as the API writes times.
    let start = (now() - HOUR) / 1_000_000 * 1_000_000;
    let (status, made) = hold(&op, start, start + YEARS);
    let after = now();
    assert_eq!(status, 201, "{made}");
    let end = parse_rfc3339(made["end"].as_str().unwrap()).unwrap();
    assert!(
        end > start && end <= after,
        "end {} not cut to the present: {made}",
        rfc3339(end)
    );
    assert_eq!(listed_end(made["id"].as_str().unwrap()), end);
    let created = admin.audit("hold_create");
    assert!(
        created.iter().any(|e| e["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("to={}", rfc3339(end)))),
        "the audit entry records the range as stored: {created:?}"
    );
    // Entirely in the future: nothing recorded to hold.
    let (status, body) = hold(&op, now() + HOUR, now() + 2 * HOUR);
    assert_eq!(status, 400, "{body}");

    // An admin may hold ahead.
    let (status, made) = hold(&admin, start, start + YEARS);
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        parse_rfc3339(made["end"].as_str().unwrap()).unwrap(),
        start + YEARS,
        "{made}"
    );
    assert_eq!(listed_end(made["id"].as_str().unwrap()), start + YEARS);
}
