//! The Code of Practice report page and the camera register flags in Debian's Chromium
//! (playwright-core, `tests/ui/report.mjs`), with screenshots. The footage is real MP4
//! written by ffmpeg yesterday at noon UTC with known gaps, indexed as the recorder
//! would (no camera can record the past); the cameras themselves are disabled.

mod common;
mod media;

use std::path::Path;

use cleannvr::clock::NS_PER_SEC;
use cleannvr::store::Store;
use common::*;
use media::*;

#[test]
fn report_page_shows_the_period_and_prints_cleanly() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let noon = (now / 86_400 - 1) * 86_400 + 12 * 3600;
    let day = cleannvr::clock::rfc3339(noon * NS_PER_SEC)[..10].to_owned();
    let s = (noon * NS_PER_SEC - T0) as f64 / 1e9;
    {
        let store = Store::open(&dir.path().join("data")).unwrap();
        // 0-4 s, 4-8 s, then a 20 s outage, then 28-32 s.
        for start in [0.0, 4.0, 28.0] {
            segment(&store, "a", s + start, 4, Codec::H264, (320, 240), false);
        }
    }
    let cams = "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\nenabled = false\n\
                purpose = \"Crime prevention at the gate\"\nlocation = \"North gate\"\n\
                review_date = 2020-01-31\n\
                [[camera]]\nid = \"b\"\nurl = \"rtsp://127.0.0.1:9/b\"\nenabled = false\n";
    let toml = config(dir.path(), 2, cams).replace("[server]\n", "[server]\ntimezone = \"UTC\"\n");
    let (nvr, _cookie) = run_with_admin(dir.path(), &toml);

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-report");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "day": day,
        "screens": screens,
    })
    .to_string();
    run_ui_script("report.mjs", &nvr.http, &cfg, &[("TZ", "UTC")], &nvr.log);
    println!("screenshots in {}", screens.display());
}
