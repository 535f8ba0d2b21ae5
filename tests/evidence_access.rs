//! Who looked at footage is on record, and rights are checked when footage leaves:
//! snapshots (latest and historical, bursts de-duplicated) and export downloads are
//! audited, and a user demoted to viewer, or limited to one camera, after an export was
//! made cannot download the other camera's file of that export.

mod common;
mod media;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use cleannvr::audit::Action;
use media::*;
use serde_json::json;

async fn export_done(web: &Web, sess: &Sess, cameras: &[&str]) -> String {
    let body = json!({ "cameras": cameras, "start": rfc(0.0), "end": rfc(2.0), "reason": "incident 9", "recipient": "PC 1 Test" });
    let r = web
        .send(Method::POST, "/api/exports", Some(sess), &[], Some(body))
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let j = web
            .get(&format!("/api/exports/{id}"), sess, &[])
            .await
            .json();
        match j["status"].as_str().unwrap() {
            "done" => return id,
            "running" => {}
            other => panic!("export {other}: {j}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "export did not finish in 120 s: {j}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_user(web: &Web, admin: &Sess, name: &str, body: serde_json::Value) {
    let r = web
        .send(
            Method::PUT,
            &format!("/api/users/{name}"),
            Some(admin),
            &[],
            Some(body),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test]
async fn downloads_recheck_current_rights_and_are_audited() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 2, Codec::H264, (320, 240), false);
    segment(web.store(), "other", 0.0, 2, Codec::H264, (320, 240), false);
    let admin = web.login("admin").await;
    let op = web.login("op").await;
    let id = export_done(&web, &op, &["cam", "other"]).await;
    let file = |name: &str| format!("/api/exports/{id}/files/{name}");

    // While an operator of every camera: every file downloads, each download audited.
    for name in ["cam.mp4", "other.mp4", "manifest.json"] {
        assert_eq!(
            web.get(&file(name), &op, &[]).await.status,
            StatusCode::OK,
            "{name}"
        );
    }
    let d = web.audit(Action::ExportDownload);
    assert_eq!(d.len(), 3, "{d:?}");
    let cam = d
        .iter()
        .find(|e| e.detail.contains("file=cam.mp4"))
        .unwrap();
    assert_eq!((cam.actor.as_str(), cam.target.as_str()), ("op", "cam"));
    assert!(
        cam.detail.contains(&format!("export={id}")),
        "{}",
        cam.detail
    );
    assert!(cam.detail.contains("sha256="), "{}", cam.detail);
    let manifest = d
        .iter()
        .find(|e| e.detail.contains("file=manifest.json"))
        .unwrap();
    assert_eq!(manifest.target, "cam,other");

    // Demoted to viewer: no file of the earlier export any more.
    set_user(&web, &admin, "op", json!({ "role": "viewer" })).await;
    for name in [
        "cam.mp4",
        "other.mp4",
        "manifest.json",
        "SHA256SUMS",
        "player.html",
    ] {
        let r = web.get(&file(name), &op, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name} as a viewer");
        assert_eq!(r.json()["error"], "forbidden");
    }
    let status = web
        .get(&format!("/api/exports/{id}"), &op, &[])
        .await
        .json();
    assert!(status["manifest"].is_null(), "{status}");
    assert_eq!(status["files"].as_array().unwrap().len(), 0, "{status}");
    // Operator again, but only of camera "other": that camera's file only.
    set_user(
        &web,
        &admin,
        "op",
        json!({ "role": "operator", "cameras": ["other"] }),
    )
    .await;
    assert_eq!(
        web.get(&file("other.mp4"), &op, &[]).await.status,
        StatusCode::OK
    );
    for name in ["cam.mp4", "manifest.json", "SHA256SUMS", "player.html"] {
        let r = web.get(&file(name), &op, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name} limited to other");
    }
    let status = web
        .get(&format!("/api/exports/{id}"), &op, &[])
        .await
        .json();
    assert!(status["manifest"].is_null(), "{status}");
    let files: Vec<&str> = status["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["other.mp4"], "{status}");
    // Refused downloads are not recorded as downloads.
    assert_eq!(web.audit(Action::ExportDownload).len(), 4);
}

#[tokio::test]
async fn snapshots_are_audited_once_per_burst() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 4, Codec::H264, (320, 240), false);
    segment(web.store(), "cam", 120.0, 4, Codec::H264, (320, 240), false);
    let viewer = web.login("viewer").await;
    let shot = |q: String| {
        let web = &web;
        let viewer = &viewer;
        async move {
            let r = web
                .get(&format!("/api/cameras/cam/snapshot.jpg{q}"), viewer, &[])
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{q}: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert_eq!(r.header("content-type"), "image/jpeg");
        }
    };
    // A burst over the same minute of footage (a timeline scrub): one entry.
    for s in [0.5, 1.5, 2.5, 3.5] {
        shot(format!("?at={}&width=4096", rfc(s))).await;
    }
    let e = web.audit(Action::Snapshot);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].actor.as_str(), e[0].target.as_str()),
        ("viewer", "cam")
    );
    assert!(
        e[0].detail.contains(&format!("at={}", rfc(0.5))),
        "{}",
        e[0].detail
    );
    assert!(e[0].detail.contains("width=4096"), "{}", e[0].detail);
    // Another minute of footage is another entry; the latest picture is one more,
    // however often a page refreshes it.
    shot(format!("?at={}", rfc(121.0))).await;
    for _ in 0..3 {
        shot(String::new()).await;
    }
    let e = web.audit(Action::Snapshot);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].detail.starts_with("at=latest"), "{}", e[0].detail);
    assert!(
        e[1].detail.contains(&format!("at={}", rfc(121.0))),
        "{}",
        e[1].detail
    );
    // Another user's views are their own entries.
    let admin = web.login("admin").await;
    let r = web.get("/api/cameras/cam/snapshot.jpg", &admin, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(web.audit(Action::Snapshot).len(), 4);
}
