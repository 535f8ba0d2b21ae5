//! `cleannvr export` and `cleannvr export verify` as an investigator runs them: the export
//! verifies, `sha256sum -c` agrees, a flipped byte makes verify fail naming the file, a
//! tampered manifest fails, and a forged one (SHA256SUMS rewritten too) is caught by
//! comparing the hash verify prints with the one in the audit log.

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
    let original = std::fs::read(&file).unwrap();
    let mut b = original.clone();
    let at = b.len() * 2 / 3;
    b[at] ^= 0x40;
    std::fs::write(&file, b).unwrap();
    let (ok, text) = run(&["export", "verify", out.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(text.contains("FAILED  cam.mp4: SHA-256 mismatch"), "{text}");
    // Put the media back: the export verifies again, so what follows tests the manifest alone.
    std::fs::write(&file, &original).unwrap();
    let (ok, text) = run(&["export", "verify", out.to_str().unwrap()]);
    assert!(ok, "{text}");

    // A tampered manifest (edited time range) fails verification on its own.
    let m = out.join("manifest.json");
    let edited = std::fs::read_to_string(&m)
        .unwrap()
        .replace(&rfc(0.5), &rfc(0.6));
    std::fs::write(&m, edited).unwrap();
    let (ok, text) = run(&["export", "verify", out.to_str().unwrap()]);
    assert!(!ok, "a tampered manifest must fail verification: {text}");
    assert!(
        text.contains("SHA256SUMS: entry for manifest.json disagrees"),
        "{text}"
    );
    assert!(!text.contains("FAILED  cam.mp4"), "{text}");

    // A careful forger also rewrites SHA256SUMS: the export is self-consistent
    // again, and only the audit log tells. The hash verify prints (what an
    // investigator compares) is not the one the audit log recorded.
    let sums = Command::new("sha256sum")
        .arg("manifest.json")
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(sums.status.success());
    let forged_line = String::from_utf8(sums.stdout).unwrap();
    let sums_path = out.join("SHA256SUMS");
    let forged: String = std::fs::read_to_string(&sums_path)
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with("manifest.json") {
                forged_line.trim_end().to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(&sums_path, forged).unwrap();
    let (_, text) = run(&["export", "verify", out.to_str().unwrap()]);
    let printed = text
        .lines()
        .find_map(|l| l.strip_prefix("manifest.json sha256 "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("verify prints the manifest hash: {text}"))
        .to_owned();
    assert_eq!(printed, forged_line.split_whitespace().next().unwrap());
    let store = Store::open(&data).unwrap();
    let recorded = AuditLog::open(store.db(), store.dir())
        .unwrap()
        .query(
            &Filter {
                action: Some(Action::Export),
                ..Default::default()
            },
            10,
        )
        .unwrap();
    assert!(recorded[0].detail.contains(&manifest_sha));
    assert!(
        !recorded[0].detail.contains(&printed),
        "the forged manifest's hash {printed} must not match the audit log: {}",
        recorded[0].detail
    );
}
