//! Days with footage: `GET /api/cameras/{id}/days` names the days (in the server's
//! time zone) each camera has footage on, and the playback page's calendar marks
//! them, in Debian's Chromium (playwright-core, `tests/ui/days.mjs`). The footage is
//! real MP4 written by ffmpeg at noon UTC three and forty days ago (no camera can
//! record the past), indexed as the recorder would.

mod common;
mod media;

use std::path::Path;

use cleannvr::clock::NS_PER_SEC;
use cleannvr::store::Store;
use common::*;
use media::*;

/// `YYYY-MM-DD` of `days` days before today (UTC), and the seconds after `T0` of its noon.
fn day_noon(days: i64) -> (String, f64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let noon = (now / 86_400 - days) * 86_400 + 12 * 3600;
    let date = cleannvr::clock::rfc3339(noon * NS_PER_SEC)[..10].to_owned();
    (date, (noon * NS_PER_SEC - T0) as f64 / 1e9)
}

#[test]
fn playback_calendar_marks_the_days_with_footage() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (d3, s3) = day_noon(3);
    let (d5, s5) = day_noon(5);
    let (d40, s40) = day_noon(40);
    {
        let store = Store::open(&dir.path().join("data")).unwrap();
        segment(&store, "a", s3, 2, Codec::H264, (320, 240), false);
        segment(&store, "a", s40, 2, Codec::H264, (320, 240), false);
        segment(&store, "b", s5, 2, Codec::H264, (320, 240), false);
    }
    let cams = "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\nenabled = false\n\
                [[camera]]\nid = \"b\"\nurl = \"rtsp://127.0.0.1:9/b\"\nenabled = false\n";
    let toml = config(dir.path(), 2, cams).replace("[server]\n", "[server]\ntimezone = \"UTC\"\n");
    let (nvr, cookie) = run_with_admin(dir.path(), &toml);

    let (status, body) = get(&nvr.http, "/api/cameras/a/days", &cookie);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["time_zone"], "UTC", "{v}");
    assert_eq!(v["days"], serde_json::json!([d40, d3]), "{v}");

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-days");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "marked": [d3, d40],
        "other": d5,
        "screens": screens,
    })
    .to_string();
    // The browser in the server's zone, so the calendar's days are the API's days.
    run_ui_script("days.mjs", &nvr.http, &cfg, &[("TZ", "UTC")], &nvr.log);
    println!("screenshots in {}", screens.display());
}
