//! Issue 11's UI items in Debian's Chromium (`tests/ui/zone.mjs`): with the server in
//! Europe/London and the browser in Asia/Tokyo, the UI proposes, reads and shows times
//! in the server's zone with its abbreviation (GMT/BST, the October hour told apart),
//! and shows the export signing key's fingerprint to an admin beside the audit log and
//! on a finished export. The fingerprint is computed here from the key file itself. The
//! footage is real MP4 written by ffmpeg (no camera is needed to export it).

mod common;
mod media;

use std::path::Path;

use cleannvr::clock::{rfc3339, NS_PER_SEC};
use cleannvr::store::Store;
use common::*;
use media::*;
use sha2::Digest as _;

#[test]
fn ui_times_are_the_servers_and_the_signing_key_is_shown() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(&dir.path().join("data")).unwrap();
        segment(&store, "a", 0.0, 4, Codec::H264, (320, 240), false);
    }
    let cams = "[[camera]]\nid = \"a\"\nname = \"Gate\"\nurl = \"rtsp://127.0.0.1:9/a\"\nenabled = false\n";
    let toml = config(dir.path(), 2, cams)
        .replace("[server]\n", "[server]\ntimezone = \"Europe/London\"\n");
    let (nvr, _cookie) = run_with_admin(dir.path(), &toml);

    // The key made on first start; its fingerprint is the SHA-256 of the public key.
    let key: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("data/keys/export-signing.key")).unwrap(),
    )
    .unwrap();
    let public = hex::decode(key["public_key"].as_str().unwrap()).unwrap();
    let fingerprint = hex::encode(sha2::Sha256::digest(&public));

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-zone");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "zone": "Europe/London",
        "camera": "a",
        // A whole second inside the footage (T0 is 2025-06-01 12:00 UTC: 13:00 BST; the
        // form shows it as such).
        "start": rfc3339(T0 + NS_PER_SEC),
        "fingerprint": fingerprint,
        "screens": screens,
    })
    .to_string();
    run_ui_script(
        "zone.mjs",
        &nvr.http,
        &cfg,
        &[("TZ", "Asia/Tokyo")],
        &nvr.log,
    );
    println!("screenshots in {}", screens.display());
}
