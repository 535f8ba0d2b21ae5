//! The Camera setup page (admins) in Debian's Chromium (playwright-core,
//! `tests/ui/camera_admin.mjs`) against a real RTSP peer (GStreamer's RTSP
//! server): add by URL, test before saving, edit, disable, remove; the
//! camera's password never reaches the page; "Keep footage with events"
//! (`retain_event_days`) round-trips, and what the page refuses the server
//! refuses too. Screenshots go to the target tmpdir.

mod common;

use std::path::Path;

use common::*;

#[test]
fn camera_setup_page_adds_tests_edits_and_removes() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let gst = GstServer::start(&[]);
    let url = gst.url("h264aac");
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        dir.path(),
        4,
        &format!("[[camera]]\nid = \"a\"\nurl = \"{url}\"\n"),
    );
    let (nvr, _) = run_with_admin(dir.path(), &toml);
    let secret = "UiS3cretPass";
    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-camera-admin");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "url": url.replace("rtsp://", &format!("rtsp://yard:{secret}@")),
        "secret": secret,
        "screens": screens,
    })
    .to_string();
    run_ui_script("camera_admin.mjs", &nvr.http, &cfg, &[], &nvr.log);

    // The server's own check, behind the page's: refused with the reason,
    // the file untouched; a good value written and shown.
    let (cookie, csrf) = login_csrf(&nvr.http, "root", "admin pass 12345");
    let file = dir.path().join("cleannvr.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let put = |days: u32, event_days: u32| {
        http(
            &nvr.http,
            "PUT",
            "/api/cameras/a",
            Some(&cookie),
            Some(&csrf),
            Some(&serde_json::json!({"url": url, "retain_days": days, "retain_event_days": event_days}).to_string()),
            &[],
        )
    };
    for (days, event_days, says) in [
        (30, 10, "must be more than retain_days (30)"),
        (0, 90, "retain_days is 0"),
    ] {
        let (status, body) = put(days, event_days);
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains("retain_event_days") && body.contains(says),
            "{body}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    }
    let (status, body) = put(30, 90);
    assert_eq!(status, 200, "{body}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("retain_event_days = 90"),
        "{}",
        std::fs::read_to_string(&file).unwrap()
    );
    let (_, body) = get(&nvr.http, "/api/cameras", &cookie);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let a = v["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "a")
        .unwrap();
    assert_eq!(a["config"]["retain_event_days"], 90, "{a}");
    assert!(
        !nvr.log.text().contains(secret),
        "the password reached the log"
    );
    println!("screenshots in {}", screens.display());
}
