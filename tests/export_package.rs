//! The signed exhibit package end to end, on a real server recording the GStreamer RTSP
//! peer: an operator exports, downloads `package.zip`, and outside tools judge it (`unzip`
//! unpacks it, Python's zipfile reads how it was written, `sha256sum -c` checks the
//! sums); `cleannvr export verify --key` with the fingerprint an admin reads from
//! `/api/system` passes. A flipped byte in the video, an edited manifest and a swapped key
//! each fail with a plain message naming what is wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{GstServer, HttpSession, Nvr};
use serde_json::{json, Value};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn verify(dir: &Path, key: Option<&str>) -> (bool, String) {
    let mut c = Command::new(common::bin());
    c.args(["export", "verify"]).arg(dir);
    if let Some(k) = key {
        c.args(["--key", k]);
    }
    run(c.env("RUST_LOG", "warn"))
}

fn sha256sum_c(dir: &Path) -> (bool, String) {
    run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir))
}

/// A fresh copy of the unpacked package to tamper with.
fn copy(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to.to_owned()
}

/// Rewrites SHA256SUMS to match the files as they are now (a forger's next step).
fn resum(dir: &Path) {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let out: String = sums
        .lines()
        .map(|l| {
            let name = l.split_once("  ").unwrap().1;
            let sha = cleannvr::export::hash_file(&dir.join(name)).unwrap().0;
            format!("{sha}  {name}\n")
        })
        .collect();
    std::fs::write(dir.join("SHA256SUMS"), out).unwrap();
}

/// The GStreamer peer as camera `gate`, a config recording it in 2 s segments, and an
/// admin; the peer and the directory live as long as the returned values.
fn gate_camera() -> (GstServer, tempfile::TempDir, PathBuf) {
    let gst = GstServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cleannvr.toml");
    let cameras = format!(
        "[[camera]]\nid = \"gate\"\nname = \"Gate\"\nurl = \"{}\"\n",
        gst.url("h264aac")
    );
    std::fs::write(&cfg, common::config(tmp.path(), 2, &cameras)).unwrap();
    common::add_user(&cfg, "admin", "admin", "admin password 1");
    (gst, tmp, cfg)
}

#[test]
fn package_zip_round_trip_verifies_and_each_tampering_fails_plainly() {
    let have_unzip = Command::new("unzip").arg("-v").output().is_ok();
    if !common::require_peer(have_unzip, "unzip (Debian package unzip)") {
        return;
    }
    let (_gst, tmp, cfg) = gate_camera();
    common::add_user(&cfg, "op", "operator", "operator password 1");
    common::add_user(&cfg, "viewer", "viewer", "viewer password 1");
    let nvr = Nvr::start(cfg, &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", "admin password 1");
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");

    // The admin reads the key's fingerprint from the server (also in its log); others cannot.
    let system = admin.json("/api/system");
    let fp = system["signing_key"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fp.len(), 64, "{system}");
    assert!(nvr.log.find(&fp).is_some(), "fingerprint logged at start");
    assert_eq!(op.get("/api/system").0, 403);
    let key_file = tmp.path().join("data/keys/export-signing.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Record at least 4 s of the peer.
    let start = common::recorded_range(&nvr, &op, "gate", 4_000_000_000).0;
    let end = start + 4_000_000_000;
    let rfc = cleannvr::clock::rfc3339;
    let (status, created) = op.send(
        "POST",
        "/api/exports",
        &json!({ "cameras": ["gate"], "start": rfc(start), "end": rfc(end), "reason": "incident 12: gate", "recipient": "PC 1234 Smith, Kent Police" }),
    );
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let job: Value = loop {
        let j = op.json(&format!("/api/exports/{id}"));
        match j["status"].as_str().unwrap() {
            "done" => break j,
            "running" => {}
            other => panic!("export {other}: {j}"),
        }
        assert!(
            Instant::now() < deadline,
            "export did not finish in 120 s: {j}\nlog:\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job["package_url"], format!("/api/exports/{id}/package.zip"));

    // A viewer may not take the package.
    let viewer = HttpSession::login(&nvr.http, "viewer", "viewer password 1");
    assert_eq!(
        viewer.get(&format!("/api/exports/{id}/package.zip")).0,
        404,
        "not the viewer's export"
    );

    // Download the package with curl into a file.
    let zip = tmp.path().join("package.zip");
    let (ok, text) = run(Command::new("curl")
        .args(["-sk", "--fail", "-D", "-", "-o"])
        .arg(&zip)
        .args(["-H", &format!("Cookie: {}", op.cookie)])
        .arg(format!("{}/api/exports/{id}/package.zip", nvr.http)));
    assert!(ok, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/zip"),
        "{text}"
    );
    // A HEAD request (a link checker, a download manager probing) is not a download.
    let (ok, text) = run(Command::new("curl")
        .args(["-sk", "--fail", "-I"])
        .args(["-H", &format!("Cookie: {}", op.cookie)])
        .arg(format!("{}/api/exports/{id}/package.zip", nvr.http)));
    assert!(ok, "{text}");
    let downloads = admin.json("/api/audit?action=export_download&limit=10");
    let audited = downloads["entries"].as_array().unwrap();
    let zips = audited
        .iter()
        .filter(|e| e["detail"].as_str().unwrap().contains("file=package.zip"))
        .count();
    assert_eq!(zips, 1, "one GET, one HEAD: {downloads}");
    let e = audited
        .iter()
        .find(|e| e["detail"].as_str().unwrap().contains("file=package.zip"))
        .unwrap_or_else(|| panic!("package download not audited: {downloads}"));
    assert_eq!(
        (e["actor"].as_str(), e["target"].as_str()),
        (Some("op"), Some("gate"))
    );

    // Python's zipfile, an outside reader: every entry STORED and written as a stream
    // (data descriptor flag), in one folder.
    let (ok, text) = run(Command::new("python3").args([
        "-c",
        "import sys, zipfile\n\
         z = zipfile.ZipFile(sys.argv[1])\n\
         assert z.testzip() is None\n\
         for i in z.infolist():\n    print(i.filename, i.compress_type, i.flag_bits & 8)\n",
        zip.to_str().unwrap(),
    ]));
    assert!(ok, "{text}");
    let folder = format!("export-{id}");
    for line in text.lines() {
        assert!(line.starts_with(&format!("{folder}/")), "{text}");
        assert!(line.ends_with(" 0 8"), "STORED and streamed: {line}");
    }

    // Unpack with unzip and judge with sha256sum and our verifier.
    let unpacked = tmp.path().join("unpacked");
    let (ok, text) = run(Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&unpacked));
    assert!(ok, "{text}");
    let pkg = unpacked.join(&folder);
    let mut names: Vec<String> = std::fs::read_dir(&pkg)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.txt",
            "SHA256SUMS",
            "gate.mp4",
            "manifest.json",
            "manifest.sig",
            "player.html",
            "signing-key.pub"
        ]
    );
    let (ok, text) = sha256sum_c(&pkg);
    assert!(ok, "{text}");
    let (ok, text) = verify(&pkg, Some(&fp));
    assert!(ok, "{text}");
    assert!(text.contains("OK      signature:"), "{text}");
    assert!(
        text.contains("OK      key: the signing key is the one you named"),
        "{text}"
    );
    assert!(
        text.contains("export intact: 1 files verified, signed by the key you named"),
        "{text}"
    );
    let readme = std::fs::read_to_string(pkg.join("README.txt")).unwrap();
    assert!(
        readme.contains(&fp) && readme.contains("sha256sum -c SHA256SUMS"),
        "{readme}"
    );

    // The manifest: who, why, what, and the time-accuracy statement.
    let m: Value =
        serde_json::from_slice(&std::fs::read(pkg.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format"], "cleannvr-export/2");
    assert_eq!(m["exported_by"], "op");
    assert_eq!(m["reason"], "incident 12: gate");
    assert_eq!(m["signing_key_fingerprint"], fp.as_str());
    assert!(!m["server_name"].as_str().unwrap().is_empty());
    assert_eq!(
        m["cameras"][0]["delivered"].as_array().unwrap().len(),
        1,
        "{m}"
    );
    let ta = &m["time_accuracy"];
    // The server ran throughout, so its clock state is known; it says what the kernel says.
    let synced = system["clock"]["ntp_synchronised"].as_bool().unwrap();
    let want = if synced {
        "synchronised"
    } else {
        "not synchronised"
    };
    assert_eq!(ta["server_clock"]["state"], want, "{ta}");
    let cam = &ta["cameras"][0];
    assert_eq!(cam["camera"], "gate");
    assert!(cam["segments"].as_u64().unwrap() >= 1, "{ta}");
    assert!(
        cam["drift_ms_min"].is_i64() && cam["drift_ms_max"].is_i64(),
        "{ta}"
    );

    // 1. A flipped byte in the video.
    let t = copy(&pkg, &tmp.path().join("flipped"));
    let video = t.join("gate.mp4");
    let mut b = std::fs::read(&video).unwrap();
    let at = b.len() * 2 / 3;
    b[at] ^= 0x20;
    std::fs::write(&video, b).unwrap();
    let (ok, text) = verify(&t, Some(&fp));
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAILED  gate.mp4: SHA-256 mismatch"),
        "{text}"
    );
    assert!(text.contains("export NOT intact"), "{text}");
    assert!(!sha256sum_c(&t).0);

    // 2. An edited manifest, with SHA256SUMS redone so sha256sum is satisfied.
    let t = copy(&pkg, &tmp.path().join("edited"));
    let mpath = t.join("manifest.json");
    let edited = std::fs::read_to_string(&mpath)
        .unwrap()
        .replace("incident 12: gate", "incident 13: gate");
    std::fs::write(&mpath, edited).unwrap();
    resum(&t);
    assert!(sha256sum_c(&t).0);
    let (ok, text) = verify(&t, Some(&fp));
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAILED  manifest.sig: signature INVALID"),
        "{text}"
    );

    // 3. A swapped key: the forger re-signs with their own key (naming it in the manifest
    // too), so the package is self-consistent; only the fingerprint from the server tells.
    let t = copy(&pkg, &tmp.path().join("swapped"));
    let forger =
        cleannvr::export::signing::Signer::load_or_create(&tmp.path().join("forger.key")).unwrap();
    let mpath = t.join("manifest.json");
    let forged = std::fs::read_to_string(&mpath)
        .unwrap()
        .replace(&fp, &forger.fingerprint());
    std::fs::write(&mpath, &forged).unwrap();
    std::fs::write(t.join("manifest.sig"), forger.sign_file(forged.as_bytes())).unwrap();
    std::fs::write(t.join("signing-key.pub"), forger.public_key_file()).unwrap();
    resum(&t);
    assert!(sha256sum_c(&t).0);
    let (ok, text) = verify(&t, Some(&fp));
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAILED  signing-key.pub: NOT the key you named"),
        "{text}"
    );
    // Without --key the verifier passes but says the signer is unproven.
    let (ok, text) = verify(&t, None);
    assert!(ok, "{text}");
    assert!(
        text.contains("NOTE    the signature was checked against the key inside the package"),
        "{text}"
    );
    // A swapped key file alone (manifest untouched) fails even without --key.
    let t = copy(&pkg, &tmp.path().join("swapped-key-only"));
    std::fs::write(t.join("signing-key.pub"), forger.public_key_file()).unwrap();
    resum(&t);
    let (ok, text) = verify(&t, None);
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAILED  manifest.sig: signature INVALID"),
        "{text}"
    );
    // An added file is named.
    let t = copy(&pkg, &tmp.path().join("added"));
    std::fs::write(t.join("notes.txt"), "hello").unwrap();
    let (ok, text) = verify(&t, Some(&fp));
    assert!(
        !ok && text.contains("FAILED  notes.txt: not part of this export"),
        "{text}"
    );
}

/// A signing key that cannot be used (here a corrupt file, as after a botched restore)
/// costs exports, never footage: the server starts, records, says why in the log and in
/// `/api/system`, and refuses exports with a plain 503.
#[test]
fn an_unusable_signing_key_refuses_exports_and_recording_goes_on() {
    let (_gst, tmp, cfg) = gate_camera();
    let key_file = tmp.path().join("data/keys/export-signing.key");
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    std::fs::write(&key_file, b"not a key\n").unwrap();

    let nvr = Nvr::start(cfg, &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", "admin password 1");
    let line = nvr
        .log
        .find("export signing key unavailable")
        .unwrap_or_else(|| panic!("no error about the key: {}", nvr.log.text()));
    assert!(line.contains("ERROR"), "{line}");
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        b"not a key\n",
        "the key file is left for the admin"
    );
    let system = admin.json("/api/system");
    assert!(system["signing_key"]["error"].is_string(), "{system}");

    // Recording goes on: segments of the camera appear in the index.
    let (start, end) = common::recorded_range(&nvr, &admin, "gate", 2_000_000_000);
    let rfc = cleannvr::clock::rfc3339;
    let (status, body) = admin.send(
        "POST",
        "/api/exports",
        &json!({ "cameras": ["gate"], "start": rfc(start), "end": rfc(end), "reason": "incident 13", "recipient": "Insurer Ltd" }),
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("signing key"), "{body}");
}
