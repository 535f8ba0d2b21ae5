//! Cameras in the wild (issue 9): transports, loss and outages against
//! GStreamer's RTSP server. A UDP-only server must record with the default
//! `transport = "auto"`; a client joining a shared UDP stream mid-frame must
//! record; packet loss must cost frames, never the session; after an outage
//! recording must resume soon after the camera answers again.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn camera(id: &str, url: &str, extra: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n")
}

/// Finished segments of `camera`, each checked to decode cleanly.
fn decoded_segments(dir: &Path, camera: &str) -> usize {
    let segs = files(&dir.join("data").join(camera), ".mp4");
    for f in &segs {
        let errors = decode_errors(f);
        assert!(
            errors.is_empty(),
            "{} does not decode: {errors}",
            f.display()
        );
        assert!(starts_with_key_frame(f), "{}", f.display());
    }
    segs.len()
}

fn wait_segments(dir: &Path, camera: &str, n: usize) {
    let cam_dir = dir.join("data").join(camera);
    wait_for(
        Duration::from_secs(90),
        &format!("{n} segments of {camera}"),
        || (files(&cam_dir, ".mp4").len() >= n).then_some(()),
    );
}

#[test]
fn udp_only_server_is_recorded_with_the_default_transport() {
    let gst = GstServer::start(&["--udp-only"]);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), 2, &camera("cam", &gst.url("h264aac"), ""));
    let (nvr, admin) = run_with_admin(dir.path(), &toml);
    wait_segments(dir.path(), "cam", 2);
    let s = camera_status(&nvr.http, &admin, "cam");
    assert_eq!(s["transport"], "udp", "{s}");
    assert_eq!(s["state"], "streaming", "{s}");
    // The fallback is logged once, in plain words.
    assert_eq!(
        nvr.log
            .count("does not accept RTP over TCP (461 Unsupported Transport"),
        1,
        "{}",
        nvr.log.text()
    );
    assert!(decoded_segments(dir.path(), "cam") >= 2);
}
