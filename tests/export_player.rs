//! The offline player (`player.html`) of a real export, opened from `file://` in Debian's
//! Chromium with the network off (`tests/ui/player.mjs`): it plays the video, shows the
//! local time of the picture with its zone (BST here), steps frames, lists the gap, and
//! verifies the package's hashes and signature from the files the user picks; a flipped
//! byte, a swapped key and a missing file are each reported in plain words.

mod common;
mod media;

use std::path::Path;
use std::process::Command;

use cleannvr::clock::parse_rfc3339;
use cleannvr::export::{self, PLAYER};
use cleannvr::store::Store;
use media::*;

#[test]
fn player_html_plays_offline_shows_local_time_and_checks_the_package() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !common::require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        // Gate: H.264 + AAC with a 2 s gap; yard: H.265 (which Chromium cannot decode,
        // but whose file is still hashed and checked).
        // The gate's pictures carry their own frame number (`frame_code`), so the script
        // can read which instant is on screen and hold the clock to it.
        segment_of(
            &store,
            "gate",
            0.0,
            4,
            Codec::H264,
            &frame_code(0.0, 4),
            true,
        );
        segment_of(
            &store,
            "gate",
            6.0,
            4,
            Codec::H264,
            &frame_code(6.0, 4),
            true,
        );
        segment(&store, "yard", 0.0, 3, Codec::H265, (320, 240), false);
    }
    let config = dir.path().join("cleannvr.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ntimezone = \"Europe/London\"\n[storage]\ndir = \"{}\"\n\
             [[camera]]\nid = \"gate\"\nname = \"Front gate\"\nurl = \"rtsp://127.0.0.1/x\"\n\
             [[camera]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.1/y\"\n",
            data.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("evidence");
    // From 1.5 s: the file starts at the key frame at 1 s, presentation at 1.5 s.
    let (ok, text) = common::cli(
        &config,
        &[
            "export",
            "--camera",
            "gate",
            "--camera",
            "yard",
            "--start",
            &rfc(1.5),
            "--end",
            &rfc(9.5),
            "--out",
            out.to_str().unwrap(),
            "--reason",
            "incident 2025/117 </script><b>not markup</b>",
        ],
        "",
    );
    assert!(ok, "{text}");
    assert!(out.join(PLAYER).is_file(), "export wrote no {PLAYER}");
    // The player is part of the package as far as our own verifier goes.
    let v = export::verify(&out, None).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);

    // Across the end of British Summer Time: 01:30 BST and, an hour later, 01:30 GMT.
    let dst_out = dir.path().join("evidence-dst");
    {
        let store = Store::open(&data).unwrap();
        for t in ["2025-10-26T00:30:00Z", "2025-10-26T01:30:00Z"] {
            let s = (parse_rfc3339(t).unwrap() - T0) as f64 / 1e9;
            segment(&store, "gate", s, 2, Codec::H264, (320, 240), false);
        }
    }
    let (ok, text) = common::cli(
        &config,
        &[
            "export",
            "--camera",
            "gate",
            "--start",
            "2025-10-26T00:30:00Z",
            "--end",
            "2025-10-26T01:30:02Z",
            "--out",
            dst_out.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{text}");

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-player");
    let _ = std::fs::remove_dir_all(&screens);
    std::fs::create_dir_all(&screens).unwrap();
    let work = dir.path().join("copies");
    std::fs::create_dir(&work).unwrap();
    let cfg = serde_json::json!({
        "pkg": out, "dst": dst_out, "work": work, "screens": screens,
        "t0_ms": T0 / 1_000_000, "frame_ms": FRAME_NS / 1_000_000, "bar": CODE_BAR,
    })
    .to_string();
    let script = ui.join("player.mjs");
    let run = Command::new("node")
        .arg(&script)
        .arg(&cfg)
        .output()
        .expect("running node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{text}\nscreenshots in {}", screens.display());
    assert!(
        run.status.success() && text.contains(", 0 failed"),
        "player test failed:\n{text}"
    );
}
