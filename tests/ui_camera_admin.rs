//! The Camera setup page (admins) in Debian's Chromium (playwright-core,
//! `tests/ui/camera_admin.mjs`) against a real RTSP peer (GStreamer's RTSP
//! server): add by URL, test before saving, edit, disable, remove; the
//! camera's password never reaches the page. Screenshots go to the target tmpdir.

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
    assert!(
        !nvr.log.text().contains(secret),
        "the password reached the log"
    );
    println!("screenshots in {}", screens.display());
}
