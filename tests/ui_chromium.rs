//! The operator UI in a real browser: Debian's Chromium, driven by
//! playwright-core (`tests/ui/ui_test.mjs`), against `cleannvr run`
//! recording the GStreamer RTSP peer (one H.264 and one H.265 camera) and
//! one camera that cannot be reached.
//!
//! The script checks login (wrong and right password), live MSE playback
//! (buffered range, advancing `currentTime`), the H.265 message where the
//! browser cannot decode it, a viewer kept out of admin pages and APIs,
//! playback of a recorded range, an export with downloads, the admin pages
//! (audit log with the live view, users, storage), that every request
//! stays on the server's origin, and that the console has no errors.
//!
//! Needs node, /usr/bin/chromium and `npm ci --prefix tests/ui` (done by
//! `.ci/install.sh`); without them the test says so and passes, unless
//! `CLEANNVR_REQUIRE_PEERS=1`, when it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

#[test]
fn operator_ui_in_chromium() {
    if !require_browser(&ui_dir()) {
        return;
    }
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // Short segments so playback has finished segments within seconds.
    let toml = config(
        dir.path(),
        3,
        &format!(
            "[[camera]]\nid = \"gate\"\nname = \"Front gate\"\nurl = \"{}\"\n\
             [[camera]]\nid = \"yard\"\nname = \"Yard (H.265)\"\nurl = \"{}\"\n\
             [[camera]]\nid = \"depot\"\nname = \"Depot (offline)\"\nurl = \"rtsp://127.0.0.1:{}/none\"\n",
            gst.url("h264aac"),
            gst.url("h265aac"),
            free_port()
        ),
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    let users = [
        ("root", "admin", "admin pass 12345"),
        ("olivia", "operator", "operator pass 1"),
        ("victor", "viewer", "viewer pass 123"),
    ];
    for (name, role, pw) in users {
        add_user(&cfg, name, role, pw);
    }
    let nvr = Nvr::start(cfg, &["run"]);
    let base = nvr.http.clone();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    // Let the first segments close so the playback page has something.
    let admin = login(&base, "root", "admin pass 12345");
    wait_for(Duration::from_secs(120), "a recorded segment", || {
        let (status, body) = get(&base, "/api/cameras/gate/recordings", &admin);
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (status == 200 && !v["segments"].as_array()?.is_empty()).then_some(())
    });

    let cfg_json = serde_json::json!({
        "admin": [users[0].0, users[0].2],
        "operator": [users[1].0, users[1].2],
        "viewer": [users[2].0, users[2].2],
        "camera": "gate",
        "camera_name": "Front gate",
        "hevc_camera": "yard",
        // tests/peers/gst_rtsp_server.py's streams are 25 fps.
        "hevc_fps": 25,
        "offline_camera": "depot",
    })
    .to_string();
    let out = run_ui_script("ui_test.mjs", &base, &cfg_json, &[], &nvr.log);
    assert!(!out.contains("not ok"), "{out}");

    // What the browser did is in the audit trail as the server saw it.
    let (status, body) = get(&base, "/api/audit?limit=1000", &admin);
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    for needle in [
        "\"live_view\"",
        "\"playback\"",
        "\"export\"",
        "\"login_failed\"",
        "\"user_remove\"",
    ] {
        assert!(text.contains(needle), "audit lacks {needle}: {text}");
    }
    drop(nvr);
    drop(gst);
}

/// Live sound (`tests/ui/live_audio.mjs`): against the GStreamer peer's H.264+AAC,
/// H.264+PCMU (converted to AAC by cleannvr) and H.264+L16 (sound cleannvr does not
/// carry) cameras. The two with sound get a toggle, muted at first; unmuted, the
/// browser decodes their sound while the picture moves on, one tile audible at a time;
/// the third has no toggle. A fourth camera's sound stops every other 4 s
/// (`/h264aacgaps`): its picture must never stand still for long. Screenshots stay in `target/tmp/ui-live-audio/`.
#[test]
fn live_sound_toggle_in_chromium() {
    if !require_browser(&ui_dir()) {
        return;
    }
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        dir.path(),
        60,
        &format!(
            "[[camera]]\nid = \"hall\"\nname = \"Hall (AAC)\"\nurl = \"{}\"\n\
             [[camera]]\nid = \"door\"\nname = \"Door (G.711)\"\nurl = \"{}\"\n\
             [[camera]]\nid = \"lane\"\nname = \"Lane (no sound served)\"\nurl = \"{}\"\n\
             [[camera]]\nid = \"yard\"\nname = \"Yard (sound with gaps)\"\nurl = \"{}\"\n",
            gst.url("h264aac"),
            gst.url("h264pcmu"),
            gst.url("h264l16"),
            gst.url("h264aacgaps"),
        ),
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start(cfg, &["run"]);
    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-live-audio");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg_json = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "aac": "hall",
        "pcmu": "door",
        "silent": "lane",
        "gaps": "yard",
        "screens": screens,
    })
    .to_string();
    let out = run_ui_script("live_audio.mjs", &nvr.http, &cfg_json, &[], &nvr.log);
    assert!(!out.contains("not ok"), "{out}");
    println!("{out}\nscreenshots in {}", screens.display());
}

/// The converter pool in the browser (`tests/ui/pool.mjs`): a pool of 2 and three
/// H.265 cameras from the GStreamer peer. Two tiles play converted and the third shows
/// the busy still; a second window adds viewers, not conversions; playback of the last
/// moments of a converted camera, gone to by typing the time, is served from its live
/// conversion while the pool is full. Screenshots stay in `target/tmp/ui-pool/`.
#[test]
fn converter_pool_full_and_shared_in_chromium() {
    if !require_browser(&ui_dir()) {
        return;
    }
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = ["north", "south", "west"];
    let toml = config(
        dir.path(),
        3,
        &cams
            .iter()
            .map(|c| {
                format!(
                    "[[camera]]\nid = \"{c}\"\nurl = \"{}\"\n",
                    gst.url("h265aac")
                )
            })
            .collect::<String>(),
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start_with(cfg, &["run"], |c| {
        c.env("CLEANNVR_MAX_TRANSCODES", "2");
    });
    let admin = login(&nvr.http, "root", "admin pass 12345");
    // Stills need a recorded key frame of every camera.
    for c in cams {
        wait_segments(&nvr, Some(&admin), c, 1);
    }
    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-pool");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg_json = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "cameras": cams,
        "pool": 2,
        "screens": screens,
    })
    .to_string();
    let out = run_ui_script("pool.mjs", &nvr.http, &cfg_json, &[], &nvr.log);
    assert!(!out.contains("not ok"), "{out}");
    println!("{out}\nscreenshots in {}", screens.display());
}

/// Two-step login in the browser (`tests/ui/totp.mjs`): an admin made to
/// enrol first, the QR code decoded by `zbarimg` from a screenshot, codes
/// from `oathtool`, the login code step. Screenshots stay in
/// `target/ui-totp-shots/` for a person to look at.
#[test]
fn totp_enrolment_and_login_in_chromium() {
    if !require_browser(&ui_dir()) {
        return;
    }
    let tools = ["oathtool", "zbarimg"]
        .iter()
        .all(|t| Command::new(t).arg("--version").output().is_ok());
    if !require_peer(tools, "oathtool and zbarimg (Debian oathtool, zbar-tools)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let toml = format!(
        "{}\n[auth]\nrequire_totp_for_admins = true\n",
        config(dir.path(), 60, "")
    );
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start(cfg, &["run"]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-totp-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let cfg_json = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "shots": shots,
    })
    .to_string();
    run_ui_script("totp.mjs", &nvr.http, &cfg_json, &[], &nvr.log);
}
