//! `cleannvr export` and `cleannvr export verify` as an investigator runs them: the export
//! verifies, `sha256sum -c` agrees, a flipped byte makes verify fail naming the file, and
//! the export is in the audit log.

mod common;
mod media;

use std::process::Command;

use cleannvr::audit::{Action, AuditLog, Filter};
use cleannvr::store::Store;
use media::*;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn cli_export_verifies_and_a_flipped_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        segment(&store, "cam", 0.0, 3, Codec::H264, (320, 240), true);
        segment(&store, "cam", 3.0, 3, Codec::H264, (320, 240), true);
    }
    let config = dir.path().join("cleannvr.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndir = \"{}\"\n[[camera]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1/x\"\n",
            data.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("evidence");
    let cfg = config.to_str().unwrap();
    let (ok, text) = run(&[
        "--config",
        cfg,
        "export",
        "--camera",
        "cam",
        "--start",
        &rfc(0.5),
        "--end",
        &rfc(5.5),
        "--out",
        out.to_str().unwrap(),
        "--reason",
        "case 7",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("cam.mp4"), "{text}");
    let p = presented(&out.join("cam.mp4"));
    assert!((p.duration - 5.0).abs() <= 0.04, "{p:?}");

    // Our verifier and plain sha256sum both accept it.
    let (ok, text) = run(&["export", "verify", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("export intact: 1 files verified"), "{text}");
    let sums = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );

    // The manifest's hash is in the audit log, attributed to the command line.
    let manifest_sha = cleannvr::export::hash_file(&out.join("manifest.json"))
        .unwrap()
        .0;
    {
        let store = Store::open(&data).unwrap();
        let audit = AuditLog::open(store.db(), store.dir()).unwrap();
        let e = audit
            .query(
                &Filter {
                    action: Some(Action::Export),
                    ..Default::default()
                },
                10,
            )
            .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].actor.as_str(), e[0].target.as_str()), ("cli", "cam"));
        assert!(e[0].detail.contains(&manifest_sha), "{}", e[0].detail);
        assert!(e[0].detail.contains("reason=case 7"));
    }

    // Exporting into an existing directory is refused (never overwrite evidence).
    let (ok, text) = run(&[
        "--config",
        cfg,
        "export",
        "--camera",
        "cam",
        "--start",
        &rfc(0.5),
        "--end",
        &rfc(1.5),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("evidence"), "{text}");

    // One flipped bit deep in the media: verify fails and names the file.
    let file = out.join("cam.mp4");
    let mut b = std::fs::read(&file).unwrap();
    let at = b.len() * 2 / 3;
    b[at] ^= 0x40;
    std::fs::write(&file, b).unwrap();
    let (ok, text) = run(&["export", "verify", out.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(text.contains("FAILED  cam.mp4: SHA-256 mismatch"), "{text}");

    // A tampered manifest (edited time range) no longer matches the audit log's hash.
    let m = out.join("manifest.json");
    let edited = std::fs::read_to_string(&m)
        .unwrap()
        .replace(&rfc(0.5), &rfc(0.6));
    std::fs::write(&m, edited).unwrap();
    let (_, text) = run(&["export", "verify", out.to_str().unwrap()]);
    assert!(
        text.contains("SHA256SUMS: entry for manifest.json disagrees"),
        "{text}"
    );
    assert!(!text.contains(&manifest_sha), "{text}");
}
