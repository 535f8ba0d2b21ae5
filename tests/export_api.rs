//! Evidential export through the API: operators export (viewers and restricted users
//! cannot), the job runs in the background with progress, the files download, the manifest
//! lists ranges, gaps, frames and hashes that verify, a flipped byte is caught naming the
//! file, and the manifest's SHA-256 is in the audit log.

mod common;
mod media;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use cleannvr::audit::Action;
use cleannvr::export;
use media::*;
use serde_json::{json, Value};

async fn start(web: &Web, sess: &Sess, body: Value) -> Resp {
    web.send(Method::POST, "/api/exports", Some(sess), &[], Some(body))
        .await
}

async fn wait_done(web: &Web, sess: &Sess, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = web.get(&format!("/api/exports/{id}"), sess, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        let j = r.json();
        match j["status"].as_str().unwrap() {
            "running" => {}
            "done" => return j,
            other => panic!("export {other}: {j}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "export did not finish in 120 s: {j}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Video packets (frames, edit list or not) ffprobe reads from a file.
fn video_packets(file: &std::path::Path) -> u64 {
    let v = common::ffprobe(
        file,
        &[
            "-count_packets",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_packets",
        ],
    );
    v["streams"][0]["nb_read_packets"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count for {}: {v}", file.display()))
}

fn body(cameras: &[&str], start: f64, end: f64) -> Value {
    json!({ "cameras": cameras, "start": rfc(start), "end": rfc(end), "reason": "incident 2025/117: gate", "recipient": "PC 1234 Smith, Kent Police" })
}

#[tokio::test]
async fn operator_exports_two_cameras_with_manifest_hashes_and_audit() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 4, Codec::H264, (320, 240), true);
    segment(web.store(), "cam", 6.0, 4, Codec::H264, (320, 240), true);
    segment(web.store(), "hevc", 0.0, 4, Codec::H265, (320, 240), false);
    segment(web.store(), "hevc", 4.0, 3, Codec::H265, (640, 480), false);
    let op = web.login("op").await;
    let r = start(&web, &op, body(&["cam", "hevc"], 1.5, 8.5)).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let done = wait_done(&web, &op, &id).await;

    let m: export::Manifest = serde_json::from_value(done["manifest"].clone()).unwrap();
    assert_eq!(m.exported_by, "op");
    assert_eq!(m.reason, "incident 2025/117: gate");
    assert_eq!(m.requested.start, rfc(1.5));
    assert_eq!(m.cameras.len(), 2);
    let cam = &m.cameras[0];
    assert_eq!((cam.camera.as_str(), cam.name.as_str()), ("cam", "Gate"));
    assert_eq!(cam.files.len(), 1);
    assert_eq!(
        cam.gaps,
        vec![export::Range {
            start: rfc(4.0),
            end: rfc(6.0)
        }]
    );
    let f = &cam.files[0];
    assert_eq!(f.file, "cam.mp4");
    assert_eq!(
        f.presents,
        export::Range {
            start: rfc(1.5),
            end: rfc(8.5)
        }
    );
    assert_eq!(f.first_frame, rfc(1.0));
    // Frames in the file: 1 s .. 4 s and 6 s .. 8.5 s (the frame at 8.48 s is the last).
    assert_eq!(f.frames, 75 + 63);
    // The H.265 camera changes resolution at 4 s: two files, split there.
    let hevc = &m.cameras[1];
    let names: Vec<&str> = hevc.files.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(names, ["hevc-part1.mp4", "hevc-part2.mp4"]);
    assert_eq!((hevc.files[0].width, hevc.files[1].width), (320, 640));
    assert_eq!(hevc.files[1].presents.start, rfc(4.0));

    // Download every file; they hash as listed and decode.
    let dl = web.dir.path().join("download");
    std::fs::create_dir(&dl).unwrap();
    for f in done["files"].as_array().unwrap() {
        let r = web.get(f["url"].as_str().unwrap(), &op, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{f}");
        let name = f["file"].as_str().unwrap();
        assert_eq!(r.header("content-length"), r.body.len().to_string());
        // Media files carry their hash; the manifest's is the job's
        // manifest_sha256 (it cannot list itself); the other package files are checked by
        // export::verify below. A media file without a hash fails here.
        let sha = match name {
            "manifest.json" => done["manifest_sha256"].as_str(),
            // The rest of the package (signature, key, README, sums) is checked by
            // export::verify below.
            n if export::PACKAGE_FILES.contains(&n) => None,
            _ => Some(
                f["sha256"]
                    .as_str()
                    .unwrap_or_else(|| panic!("the job lists {name} without its sha256: {f}")),
            ),
        };
        if let Some(sha) = sha {
            assert_eq!(export::sha256_hex(&r.body), sha, "{name}");
        }
        save(&dl, name, &r.body);
    }
    // The manifest's frame counts are what ffprobe finds in each file.
    for f in m.files() {
        let file = dl.join(&f.file);
        let p = presented(&file);
        assert!(p.frames > 0, "{}", f.file);
        assert_eq!(
            video_packets(&file),
            f.frames,
            "{}: frames per ffprobe vs manifest",
            f.file
        );
    }
    let v = export::verify(&dl, None).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.ok.len(), 3);
    assert_eq!(v.manifest_sha256, done["manifest_sha256"].as_str().unwrap());

    // The audit log holds the manifest's hash.
    let entries = web.audit(Action::Export);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor, "op");
    assert_eq!(entries[0].target, "cam,hevc");
    assert!(entries[0]
        .detail
        .contains(&format!("manifest_sha256={}", v.manifest_sha256)));

    // A flipped byte in a downloaded file fails verification naming it.
    let victim = dl.join("hevc-part2.mp4");
    let mut b = std::fs::read(&victim).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&victim, b).unwrap();
    let v = export::verify(&dl, None).unwrap();
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert!(
        v.problems[0].starts_with("hevc-part2.mp4: SHA-256 mismatch"),
        "{:?}",
        v.problems
    );
    assert_eq!(v.ok.len(), 2);
}

#[tokio::test]
async fn viewers_and_restricted_users_cannot_export_and_others_cannot_see_the_job() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 2, Codec::H264, (320, 240), false);
    segment(web.store(), "other", 0.0, 2, Codec::H264, (320, 240), false);
    let viewer = web.login("viewer").await;
    let r = start(&web, &viewer, body(&["cam"], 0.0, 1.0)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let limited = web.login("limited").await;
    let r = start(&web, &limited, body(&["other"], 0.0, 1.0)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "limited is a viewer");

    let op = web.login("op").await;
    // Missing reason, unknown camera, bad range, no CSRF token.
    let mut b = body(&["cam"], 0.0, 1.0);
    b["reason"] = json!(" ");
    assert_eq!(start(&web, &op, b).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        start(&web, &op, body(&["nope"], 0.0, 1.0)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        start(&web, &op, body(&["cam"], 1.0, 0.5)).await.status,
        StatusCode::BAD_REQUEST
    );
    let no_csrf = Sess {
        cookie: op.cookie.clone(),
        csrf: "wrong".into(),
    };
    assert_eq!(
        start(&web, &no_csrf, body(&["cam"], 0.0, 1.0)).await.status,
        StatusCode::FORBIDDEN
    );

    let r = start(&web, &op, body(&["cam"], 0.2, 1.2)).await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_done(&web, &op, &id).await;
    // Another non-admin user gets 404 for the job and its files; an admin sees it.
    let other = web.get(&format!("/api/exports/{id}"), &viewer, &[]).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let file = web
        .get(&format!("/api/exports/{id}/files/cam.mp4"), &viewer, &[])
        .await;
    assert_eq!(file.status, StatusCode::NOT_FOUND);
    let admin = web.login("admin").await;
    assert_eq!(
        web.get(&format!("/api/exports/{id}"), &admin, &[])
            .await
            .status,
        StatusCode::OK
    );
    // Only listed files are served.
    let r = web
        .get(&format!("/api/exports/{id}/files/{id}.json"), &admin, &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = web
        .get("/api/exports/0123/files/cam.mp4", &admin, &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(web.audit(Action::Export).len(), 1);
}

/// `package.zip` streams are capped per user: with two of op's held open, a third gets
/// 429 with `Retry-After` and no audit entry, an admin still gets one, and a finished
/// (or abandoned) stream frees its slot. The server-wide cap (503): the unit test
/// `web::media::tests::package_streams_are_capped_per_user_and_per_server`.
#[tokio::test]
async fn package_streams_are_capped_per_user() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 4, Codec::H264, (320, 240), false);
    let op = web.login("op").await;
    let r = start(&web, &op, body(&["cam"], 0.5, 3.5)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_done(&web, &op, &id).await;
    let url = format!("/api/exports/{id}/package.zip");

    let first = web.open(&url, &op).await;
    let second = web.open(&url, &op).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = web.get(&url, &op, &[]).await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.json()
    );
    assert_eq!(third.header("retry-after"), "5");
    assert!(
        third.json()["detail"]
            .as_str()
            .unwrap()
            .contains("2 package downloads"),
        "{}",
        third.json()
    );
    let admin = web.login("admin").await;
    let other_user = web.open(&url, &admin).await;
    assert_eq!(other_user.status(), StatusCode::OK);
    assert_eq!(
        web.audit(Action::ExportDownload).len(),
        3,
        "the refused one is not audited"
    );

    // The client leaves: its slot is free again, and the download is whole.
    drop(first);
    let again = web.get(&url, &op, &[]).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert!(again.body.starts_with(b"PK\x03\x04"), "not a zip");
    assert!(
        again.body.windows(13).any(|w| w == b"manifest.json"),
        "no manifest.json in the zip"
    );
    drop((second, other_user));
}

/// A configured `[storage] signing_key` whose directory is missing (an unmounted
/// volume) is not replaced by a new key: nothing is made there, exports get 503 saying
/// why, and everything else (here: the export status API, the camera list) works.
#[tokio::test]
async fn a_signing_key_on_a_missing_volume_refuses_exports_without_making_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("keyvol");
    let web = Web::with_storage(
        dir,
        &format!(
            "signing_key = \"{}\"\n",
            volume.join("export.key").display()
        ),
    );
    segment(web.store(), "cam", 0.0, 4, Codec::H264, (320, 240), false);
    assert!(!volume.exists(), "a directory was made for the key");
    let op = web.login("op").await;
    let r = start(&web, &op, body(&["cam"], 0.5, 3.5)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json());
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    // An operator is told plainly, without the key's path (issue 10: no paths to non-admins).
    assert!(
        detail.contains("signing key") && detail.contains("administrator"),
        "{detail}"
    );
    assert!(
        !detail.contains("keyvol"),
        "the key's path shown to an operator: {detail}"
    );
    // An admin is told why, path included.
    let admin = web.login("admin").await;
    let r = start(&web, &admin, body(&["cam"], 0.5, 3.5)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json());
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("signing key") && detail.contains("does not exist"),
        "{detail}"
    );
    assert!(
        !volume.exists(),
        "a key was made in place of the configured one"
    );
    assert!(web.store().dir().join("keys").read_dir().map_or(true, |d| d
        .filter_map(|e| e.ok())
        .all(|e| e.file_name() != "export-signing.key")));
    let cams = web.get("/api/cameras", &op, &[]).await;
    assert_eq!(cams.status, StatusCode::OK);
}

/// Every export enters the disclosure register with its recipient, reference, legal
/// basis and, for a subject-access request, the due date; admins list it (JSON and
/// CSV, with formulas defused); operators cannot; an export without a recipient, or
/// with a request received in the future, is refused and registers nothing.
#[tokio::test]
async fn exports_are_registered_as_disclosures_for_admins() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 4, Codec::H264, (320, 240), false);
    let op = web.login("op").await;

    let mut b = body(&["cam"], 0.5, 2.5);
    b["recipient"] = json!("Ann Other (data subject)");
    b["reference"] = json!("SAR 2026/3");
    b["legal_basis"] = json!("UK GDPR Art. 15 (subject access)");
    b["request_received"] = json!("2026-01-31");
    let r = start(&web, &op, b).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let sar = r.json()["id"].as_str().unwrap().to_owned();
    let done = wait_done(&web, &op, &sar).await;
    assert_eq!(
        done["manifest"]["disclosure"]["recipient"],
        "Ann Other (data subject)"
    );
    assert_eq!(
        done["manifest"]["disclosure"]["request_received"],
        "2026-01-31"
    );

    // Refused: no recipient, a blank one, a request received tomorrow.
    let mut no_recipient = body(&["cam"], 0.5, 2.5);
    no_recipient.as_object_mut().unwrap().remove("recipient");
    let r = start(&web, &op, no_recipient).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let mut blank = body(&["cam"], 0.5, 2.5);
    blank["recipient"] = json!("  ");
    let r = start(&web, &op, blank).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&r.body).contains("recipient"));
    let mut future = body(&["cam"], 0.5, 2.5);
    // Two days ahead in UTC is in the future in every time zone.
    let utc_today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let ahead = utc_today.tomorrow().unwrap().tomorrow().unwrap();
    future["request_received"] = json!(ahead.to_string());
    assert_eq!(
        start(&web, &op, future).await.status,
        StatusCode::BAD_REQUEST
    );

    // A recipient a spreadsheet would run as a formula.
    let mut formula = body(&["cam"], 0.5, 2.5);
    formula["recipient"] = json!("=HYPERLINK(\"http://x\",\"y\")");
    let r = start(&web, &op, formula).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let second = r.json()["id"].as_str().unwrap().to_owned();
    wait_done(&web, &op, &second).await;

    assert_eq!(
        web.get("/api/disclosures", &op, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let admin = web.login("admin").await;
    let r = web.get("/api/disclosures", &admin, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let rows = r.json()["disclosures"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["export"], sar.as_str());
    assert_eq!(row["exported_by"], "op");
    assert_eq!(row["cameras"], json!(["cam"]));
    assert_eq!(row["kind"], "master");
    assert_eq!(row["disclosure"]["reference"], "SAR 2026/3");
    assert_eq!(
        row["disclosure"]["legal_basis"],
        "UK GDPR Art. 15 (subject access)"
    );
    assert_eq!(row["response_due"], "2026-02-28");
    assert_eq!(row["manifest_sha256"], done["manifest_sha256"]);
    assert_eq!(rows[1]["export"], second.as_str());
    // The audit entry names the recipient too.
    let audited = web.audit(Action::Export);
    assert!(
        audited
            .iter()
            .any(|e| e.detail.contains("recipient=\"Ann Other (data subject)\"")),
        "{audited:?}"
    );
    // A range before the exports lists nothing.
    let r = web
        .get(
            "/api/disclosures?start=2000-01-01T00:00:00Z&end=2000-01-02T00:00:00Z",
            &admin,
            &[],
        )
        .await;
    assert_eq!(r.json()["disclosures"], json!([]));

    let r = web.get("/api/disclosures.csv", &admin, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("text/csv"));
    let csv = String::from_utf8(r.body.clone()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("exported_at,exported_by,cameras"));
    assert!(
        lines[1].contains("Ann Other (data subject),SAR 2026/3"),
        "{csv}"
    );
    assert!(lines[1].contains(",2026-01-31,2026-02-28,"), "{csv}");
    assert!(
        lines[2].contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""),
        "a formula must be defused: {csv}"
    );
}
