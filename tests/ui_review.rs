//! Synchronised playback of four cameras in Debian's Chromium
//! (`tests/ui/review.mjs`), against `cleannvr run` recording the GStreamer
//! RTSP peer: four cameras on one shared mount (one encoder, four sessions,
//! so the peer costs little on a loaded machine) and one camera that cannot
//! be reached (for the Cameras page).
//!
//! The script checks that the live grid's "Replay" opens playback of its
//! cameras; that four tiles follow one clock within 0.5 s for 20 s; that
//! the timeline grows while recording, zooms around the pointer and scrubs
//! by drag; that a frame step moves one frame; shortcuts and marks; and that
//! no page scrolls sideways on a phone. Screenshots stay in
//! `target/tmp/ui-review-shots/` for a person to look at.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const CAMERAS: [&str; 4] = ["gate", "yard", "dock", "hall"];

#[test]
fn four_cameras_play_in_step_in_chromium() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut cams = String::new();
    for (id, name) in CAMERAS
        .iter()
        .zip(["Front gate", "Yard", "Loading dock", "Town hall"])
    {
        cams.push_str(&format!(
            "[[camera]]\nid = \"{id}\"\nname = \"{name}\"\nurl = \"{}\"\n",
            gst.url("h264aac")
        ));
    }
    cams.push_str(&format!(
        "[[camera]]\nid = \"depot\"\nname = \"Depot (offline)\"\nurl = \"rtsp://127.0.0.1:{}/none\"\n",
        free_port()
    ));
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, config(dir.path(), 3, &cams)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start(cfg, &["run"]);
    let base = nvr.http.clone();

    // The script plays from 45 s ago: wait until every camera has 55 s on disk.
    let admin = login(&base, "root", "admin pass 12345");
    let recorded = |id: &str| -> Option<i64> {
        let (status, body) = get(&base, &format!("/api/cameras/{id}/recordings"), &admin);
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        if status != 200 {
            return None;
        }
        let last = v["ranges"].as_array()?.last()?.clone();
        let t = |k: &str| {
            time::OffsetDateTime::parse(
                last[k].as_str().unwrap_or_default(),
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
            .map(|t| t.unix_timestamp())
        };
        Some(t("end")? - t("start")?)
    };
    let started = Instant::now();
    while !CAMERAS
        .iter()
        .all(|id| recorded(id).is_some_and(|s| s >= 55))
    {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "55 s recorded on every camera: {:?}\n--- cleannvr log ---\n{}",
            CAMERAS.iter().map(|id| recorded(id)).collect::<Vec<_>>(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-review-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let cfg_json = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "cameras": CAMERAS,
        "all_cameras": CAMERAS.len() + 1,
        "shots": shots,
    })
    .to_string();
    run_ui_script("review.mjs", &base, &cfg_json, &[], &nvr.log);
    drop(nvr);
    drop(gst);
}
