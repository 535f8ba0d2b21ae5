//! Export manifests carry local time beside UTC (`[server] timezone`): across the end of
//! British Summer Time the two 01:30s of 26 October 2025 are told apart by their offset
//! and abbreviation (BST, then GMT).

mod common;
mod media;

use cleannvr::clock::parse_rfc3339;
use cleannvr::export::Manifest;
use cleannvr::store::Store;
use media::*;

/// Seconds after `T0` of an RFC 3339 time.
fn secs(t: &str) -> f64 {
    (parse_rfc3339(t).unwrap() - T0) as f64 / 1e9
}

#[test]
fn manifest_local_times_tell_the_two_october_01_30s_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        // 01:30 BST and, an hour later, 01:30 GMT.
        segment(
            &store,
            "cam",
            secs("2025-10-26T00:30:00Z"),
            2,
            Codec::H264,
            (320, 240),
            false,
        );
        segment(
            &store,
            "cam",
            secs("2025-10-26T01:30:00Z"),
            2,
            Codec::H264,
            (320, 240),
            false,
        );
    }
    let config = dir.path().join("cleannvr.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ntimezone = \"Europe/London\"\n[storage]\ndir = \"{}\"\n\
             [[camera]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1/x\"\n",
            data.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("evidence");
    let (ok, text) = common::cli(
        &config,
        &[
            "export",
            "--camera",
            "cam",
            "--start",
            "2025-10-26T00:30:00Z",
            "--end",
            "2025-10-26T01:30:02Z",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{text}");
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m.time_zone, "Europe/London");
    let l = &m.local_times;
    assert_eq!(l.requested.start, "2025-10-26T01:30:00.000+01:00 BST");
    assert_eq!(l.requested.end, "2025-10-26T01:30:02.000+00:00 GMT");
    // UTC stays the reference beside it.
    assert_eq!(m.requested.start, "2025-10-26T00:30:00.000Z");
    let cam = &l.cameras[0];
    assert_eq!(cam.camera, "cam");
    assert_eq!(cam.gaps.len(), 1, "{cam:?}");
    assert_eq!(cam.gaps[0].start, "2025-10-26T01:30:02.000+01:00 BST");
    assert_eq!(cam.gaps[0].end, "2025-10-26T01:30:00.000+00:00 GMT");
    assert_eq!(
        cam.files[0].presents.start,
        "2025-10-26T01:30:00.000+01:00 BST"
    );
    assert_eq!(
        cam.files[0].presents.end,
        "2025-10-26T01:30:02.000+00:00 GMT"
    );
    assert!(
        l.exported_at.ends_with(" GMT") || l.exported_at.ends_with(" BST"),
        "{}",
        l.exported_at
    );
    // The export still verifies (the local times are inside the hashed manifest).
    let (ok, text) = common::cli(&config, &["export", "verify", out.to_str().unwrap()], "");
    assert!(ok, "{text}");
}
