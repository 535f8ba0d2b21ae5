//! The UI and the offline player in Firefox, not only Chromium: Debian's
//! `firefox-esr` driven by puppeteer-core over WebDriver BiDi
//! (`tests/ui/firefox.mjs`), against `cleannvr run` recording the GStreamer RTSP
//! peer. Log in, the live tile plays through MSE, playback plays and seeks,
//! and the `player.html` of a real `package.zip` (downloaded and unpacked with
//! `unzip`) plays from `file://` and verifies every hash and the signature.
//! Screenshots stay in `target/tmp/ui-firefox/` for a person to look at.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const FIREFOX: &str = "/usr/bin/firefox-esr";

#[test]
fn ui_live_playback_and_offline_player_in_firefox() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let missing = if Command::new("node").arg("--version").output().is_err() {
        Some("node")
    } else if !Path::new(FIREFOX).exists() {
        Some("/usr/bin/firefox-esr (Debian firefox-esr)")
    } else if !ui.join("node_modules/puppeteer-core/package.json").exists() {
        Some("tests/ui/node_modules (npm ci --prefix tests/ui)")
    } else if Command::new("unzip").arg("-v").output().is_err() {
        Some("unzip (Debian unzip)")
    } else {
        None
    };
    if !require_peer(missing.is_none(), missing.unwrap_or_default()) {
        return;
    }
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let cameras = format!(
        "[[camera]]\nid = \"gate\"\nname = \"Front gate\"\nurl = \"{}\"\n",
        gst.url("h264aac")
    );
    std::fs::write(&cfg, config(dir.path(), 2, &cameras)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start(cfg, &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");

    // 12 s recorded in one stretch: playback starts near its beginning and seeks
    // later into it; the export takes 4 s of it.
    let (start, _end) = recorded_range(&nvr, &admin, "gate", 12_000_000_000);
    let rfc = cleannvr::clock::rfc3339;
    let (status, created) = admin.send(
        "POST",
        "/api/exports",
        &json!({ "cameras": ["gate"], "start": rfc(start + 1_000_000_000),
                 "end": rfc(start + 5_000_000_000), "reason": "Firefox test",
                 "recipient": "PC 1234 Smith, Kent Police" }),
    );
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = admin.json(&format!("/api/exports/{id}"));
        match j["status"].as_str().unwrap() {
            "done" => break,
            "running" => {}
            other => panic!("export {other}: {j}"),
        }
        assert!(
            Instant::now() < deadline,
            "export did not finish in 120 s: {j}\nlog:\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let zip = dir.path().join("package.zip");
    let out = Command::new("curl")
        .args(["-sk", "--fail", "-o"])
        .arg(&zip)
        .args(["-H", &format!("Cookie: {}", admin.cookie)])
        .arg(format!("{}/api/exports/{id}/package.zip", nvr.http))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pkg = dir.path().join("package");
    let out = Command::new("unzip")
        .args(["-q", "-d"])
        .arg(&pkg)
        .arg(&zip)
        .output()
        .unwrap();
    assert!(out.status.success(), "unzip: {out:?}");
    // The zip holds one folder, `export-<id>/`, as a USB stick copy would.
    let pkg = pkg.join(format!("export-{id}"));
    assert!(
        pkg.join("player.html").is_file(),
        "no player.html in the zip"
    );

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-firefox");
    let _ = std::fs::remove_dir_all(&screens);
    std::fs::create_dir_all(&screens).unwrap();
    let cfg_json = json!({
        "admin": ["root", "admin pass 12345"],
        "camera": "gate",
        "pkg": pkg,
        "screens": screens,
    })
    .to_string();
    run_ui_script("firefox.mjs", &nvr.http, &cfg_json, &[], &nvr.log);
    println!("screenshots in {}", screens.display());
    drop(nvr);
    drop(gst);
}
