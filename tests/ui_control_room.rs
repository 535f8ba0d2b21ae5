//! The control-room UI in Debian's Chromium (playwright-core scripts in
//! `tests/ui`): the top menu at the window sizes control rooms use, and the
//! playback timeline's offline spans, hover thumbnails and bookmarks. Each
//! test saves screenshots under the target's tmp dir.

mod common;
mod media;

use std::path::{Path, PathBuf};

use cleannvr::clock::{Clock, SystemClock, NS_PER_SEC};
use cleannvr::store::states::{Change, State};
use cleannvr::store::Store;
use common::*;
use media::*;

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

/// Footage is real MP4 written by ffmpeg ten minutes ago and indexed as the recorder
/// would; the offline span is a row of the camera state history written before the
/// server starts (the live transition is `tests/bookmarks.rs`, against GStreamer).
#[test]
fn the_timeline_shows_offline_spans_thumbnails_and_bookmarks() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now_ns();
    // Whole seconds ten minutes ago, so the index's times are exact.
    let start = (now / NS_PER_SEC - 600) * NS_PER_SEC;
    let s = (start - T0) as f64 / 1e9;
    let (off_a, off_b) = (start + 60 * NS_PER_SEC, start + 180 * NS_PER_SEC);
    {
        let store = Store::open(&dir.path().join("data")).unwrap();
        segment(&store, "a", s, 6, Codec::H264, (320, 240), false);
        let st = store.states();
        let ch = |since_ns, state, reason: &str| Change {
            since_ns,
            state,
            reason: reason.into(),
        };
        st.record("a", &ch(start, State::Online, "")).unwrap();
        st.record("a", &ch(off_a, State::Offline, "connection refused"))
            .unwrap();
        st.record("a", &ch(off_b, State::Online, "")).unwrap();
    }
    let cams = "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\nenabled = false\n";
    let cfg_path = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg_path, config(dir.path(), 2, cams)).unwrap();
    add_user(&cfg_path, "root", "admin", "admin pass 12345");
    add_user(&cfg_path, "op", "operator", "operator pass 12345");
    let nvr = Nvr::start(cfg_path, &["run"]);
    let shots = screens("ui-timeline");
    let ms = |ns: i64| ns / 1_000_000;
    let cfg = serde_json::json!({
        "user": ["op", "operator pass 12345"],
        "camera": "a",
        "at": ms(start + 3 * NS_PER_SEC),
        "offline": [ms(off_a), ms(off_b)],
        "reason": "connection refused",
        "screens": shots,
    })
    .to_string();
    run_ui_script("timeline_marks.mjs", &nvr.http, &cfg, &[], &nvr.log);
    println!("screenshots in {}", shots.display());
}

/// The camera's address refuses connections, so a `camera_offline` alarm is
/// raised within seconds without a peer; two operators acknowledge it in
/// their own browsers.
#[test]
fn each_operator_acknowledges_alarms_for_themselves() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cams = "[[camera]]\nid = \"yard\"\nname = \"Yard\"\nurl = \"rtsp://127.0.0.1:9/yard\"\n\
                [alarms]\noffline_after_seconds = 2\n";
    let cfg_path = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg_path, config(dir.path(), 2, cams)).unwrap();
    add_user(&cfg_path, "root", "admin", "admin pass 12345");
    add_user(&cfg_path, "ann", "operator", "operator pass 12345");
    add_user(&cfg_path, "bob", "operator", "operator pass 12345");
    let nvr = Nvr::start(cfg_path, &["run"]);
    let op = HttpSession::login(&nvr.http, "ann", "operator pass 12345");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let message = loop {
        let all = op.json("/api/alarms");
        let found = all["alarms"].as_array().unwrap().iter().find_map(|a| {
            (a["kind"] == "camera_offline" && a["active"] == true)
                .then(|| a["message"].as_str().unwrap().to_owned())
        });
        if let Some(m) = found {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no camera_offline alarm after 120 s: {all}\nlog:\n{}",
            nvr.log.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let shots = screens("ui-alarms");
    let cfg = serde_json::json!({
        "ann": ["ann", "operator pass 12345"],
        "bob": ["bob", "operator pass 12345"],
        "message": message,
        "screens": shots,
    })
    .to_string();
    run_ui_script("alarm_acks.mjs", &nvr.http, &cfg, &[], &nvr.log);
    println!("screenshots in {}", shots.display());
}
