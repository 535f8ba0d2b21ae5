//! The control-room UI in Debian's Chromium (playwright-core scripts in
//! `tests/ui`): the top menu at the window sizes control rooms use, the
//! playback timeline's offline spans, bookmarks and thumbnails. Each test
//! saves screenshots under the target's tmp dir.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn screens(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_menu_is_one_line_at_1280_and_overflows_into_more_at_1024() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cams = "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\nenabled = false\n";
    let (nvr, _) = run_with_admin(dir.path(), &config(dir.path(), 2, cams));
    let shots = screens("ui-menu");
    let cfg =
        serde_json::json!({ "admin": ["root", "admin pass 12345"], "screens": shots }).to_string();
    run_ui_script("nav.mjs", &nvr.http, &cfg, &[], &nvr.log);
    println!("screenshots in {}", shots.display());
}
