//! ONVIF against ipycam, a third-party ONVIF camera simulator (PyPI).
//!
//! ipycam binds 0.0.0.0 and multicasts WS-Discovery Hello/Bye, so each test
//! creates its own network namespace holding nothing but `lo`, re-runs
//! itself inside it (`ip netns exec NS <this test binary> <test> --exact`),
//! starts ipycam there, talks to it over 127.0.0.1 only (unicast discovery,
//! never multicast), and deletes the namespace afterwards.
//!
//! Needs root, `ip`, ffmpeg and the rig's venvs (`.ci/install.sh`); without
//! them the tests say so and pass, unless `CLEANNVR_REQUIRE_PEERS=1`
//! (`common::require_peer`).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use cleannvr::onvif::{self, Credentials, OnvifClient, Target};
use common::ipycam::{ipycam_python, rig_dir, Ipycam, ONVIF_PORT};
use common::{files, netns, run_ui_script, wait_for, HttpSession, Nvr};

/// Whether the peers can run here; prints why not.
fn peers_available() -> bool {
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("root (for network namespaces)".to_owned())
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2".to_owned())
    } else if !ipycam_python().exists() {
        Some(format!("ipycam at {}", ipycam_python().display()))
    } else if Command::new("ffmpeg").arg("-version").output().is_err() {
        Some("ffmpeg".to_owned())
    } else {
        None
    };
    common::require_peer(missing.is_none(), &missing.unwrap_or_default())
}

/// Runs `test` again inside a fresh namespace of its own when the peers are
/// here; true when the caller is inside and should do the work.
fn inside_namespace(test: &str) -> bool {
    std::env::var_os("CLEANNVR_TEST_NETNS").is_some()
        || (peers_available() && netns::inside_namespace(test))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn discovery_target() -> SocketAddr {
    "127.0.0.1:3702".parse().unwrap()
}

/// Unicast discovery finds ipycam (bare ProbeMatch); device information,
/// profiles and stream URIs match what it serves and what an independent
/// client (onvif-zeep-async) reads; `discover --add` writes a working config.
#[test]
fn ipycam_discovery_and_media() {
    if !inside_namespace("ipycam_discovery_and_media") {
        return;
    }
    let _cam = Ipycam::start("", "");
    let rt = rt();
    let found = wait_for(Duration::from_secs(60), "a ProbeMatch", || {
        let m = rt
            .block_on(onvif::discover(
                Target::Unicast(discovery_target()),
                Duration::from_secs(1),
            ))
            .unwrap();
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name.as_deref(), Some("RigCam"));
    assert!(found[0].endpoint.starts_with("urn:uuid:"), "{found:?}");
    assert_eq!(
        found[0].xaddrs,
        vec![format!(
            "http://127.0.0.1:{ONVIF_PORT}/onvif/device_service"
        )]
    );
    assert!(found[0]
        .types
        .iter()
        .any(|t| t.ends_with("NetworkVideoTransmitter")));

    let (info, profiles, uris, snapshot) = rt.block_on(async {
        let c = OnvifClient::connect("127.0.0.1", ONVIF_PORT, None)
            .await
            .unwrap();
        let info = c.device_information().await.unwrap();
        let profiles = c.profiles().await.unwrap();
        let mut uris = Vec::new();
        for p in &profiles {
            uris.push(c.stream_uri(&p.token).await.unwrap());
        }
        let snapshot = c.snapshot_uri(&profiles[0].token).await.unwrap();
        (info, profiles, uris, snapshot)
    });
    assert_eq!(
        (info.manufacturer.as_str(), info.model.as_str()),
        ("RigVendor", "RigModel-1")
    );
    let summary: Vec<_> = profiles
        .iter()
        .zip(&uris)
        .map(|(p, u)| {
            (
                p.token.as_str(),
                p.encoding.as_deref(),
                p.width,
                p.height,
                u.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "Profile_Main",
                Some("H264"),
                Some(640),
                Some(360),
                "rtsp://127.0.0.1:8554/video_main"
            ),
            (
                "Profile_Sub",
                Some("H264"),
                Some(320),
                Some(180),
                "rtsp://127.0.0.1:8554/video_sub"
            ),
        ]
    );
    assert!(snapshot.starts_with("http://127.0.0.1:8080/"), "{snapshot}");

    // The independent client must read the same answers.
    let zeep = rig_dir().join("venv-onvif/bin/python");
    if common::require_peer(
        zeep.exists(),
        &format!("onvif-zeep-async at {}", zeep.display()),
    ) {
        let out = Command::new(&zeep)
            .args(["-c", ZEEP_CHECK, "127.0.0.1", &ONVIF_PORT.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours: Vec<String> = std::iter::once(format!(
            "device {} {} {}",
            info.manufacturer, info.model, info.serial_number
        ))
        .chain(summary.iter().map(|(t, e, w, h, u)| {
            format!(
                "profile {t} {} {} {} {u}",
                e.unwrap(),
                w.unwrap(),
                h.unwrap()
            )
        }))
        .collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), ours);
    }

    // The CLI: discover prints the same, and --add writes a config entry that loads.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cleannvr.toml");
    std::fs::write(&config, common::config(dir.path(), 2, "")).unwrap();
    let out = Command::new(common::bin())
        .args(["--config"])
        .arg(&config)
        .args(["discover", "--target", "127.0.0.1:3702", "--add"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "RigCam",
        "RigVendor RigModel-1",
        "Profile_Main",
        "rtsp://127.0.0.1:8554/video_main",
        "added camera rigcam",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    let cfg = cleannvr::config::Config::load(&config).unwrap();
    let o = cfg.cameras[0].onvif.as_ref().unwrap();
    assert_eq!(
        (o.host.as_str(), o.port, o.profile.as_deref()),
        ("127.0.0.1", ONVIF_PORT, Some("Profile_Main"))
    );
    // Adding again does not duplicate the camera.
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&config)
        .args(["discover", "--target", "127.0.0.1:3702", "--add", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json[0]["summary"]["profiles"][1]["stream_uri"],
        "rtsp://127.0.0.1:8554/video_sub"
    );
    assert_eq!(
        cleannvr::config::Config::load(&config)
            .unwrap()
            .cameras
            .len(),
        1
    );
}

/// With a username and password on the camera: a wrong password is a clear
/// "not authorized" (library, `discover` and `run`), the right one works,
/// and a camera configured only by ONVIF host and credentials is recorded.
#[test]
fn ipycam_auth_and_recording() {
    if !inside_namespace("ipycam_auth_and_recording") {
        return;
    }
    let _cam = Ipycam::start("admin", "correct horse");
    let rt = rt();
    let creds = |p: &str| {
        Some(Credentials {
            username: "admin".into(),
            password: p.into(),
        })
    };
    let err = rt
        .block_on(OnvifClient::connect(
            "127.0.0.1",
            ONVIF_PORT,
            creds("wrong"),
        ))
        .unwrap_err();
    assert!(err.is_not_authorized(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.1:8080") && msg.contains("not authorized"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong"),
        "the password must not appear: {msg}"
    );
    let err = rt
        .block_on(OnvifClient::connect("127.0.0.1", ONVIF_PORT, None))
        .unwrap_err();
    assert!(err.is_not_authorized(), "{err}");

    let resolved = rt
        .block_on(onvif::resolve(&cleannvr::config::OnvifCameraConfig {
            host: "127.0.0.1".into(),
            port: ONVIF_PORT,
            username: Some("admin".into()),
            password: Some("correct horse".into()),
            profile: None,
            events_poll_seconds: None,
        }))
        .unwrap();
    assert_eq!(resolved.main.0, "rtsp://127.0.0.1:8554/video_main");
    assert_eq!(
        resolved.sub.as_ref().unwrap().0,
        "rtsp://127.0.0.1:8554/video_sub"
    );

    // discover with the wrong password: found, but says why it cannot list streams.
    let out = Command::new(common::bin())
        .args(["discover", "--target", "127.0.0.1:3702"])
        .env("CLEANNVR_ONVIF_USERNAME", "admin")
        .env("CLEANNVR_ONVIF_PASSWORD", "wrong")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("RigCam") && stdout.contains("not authorized"),
        "{stdout}"
    );

    // The audit reads what ipycam offers; ipycam implements none of the
    // network queries, so the verdict must be "incomplete", never "isolated".
    let dir = tempfile::tempdir().unwrap();
    let camera = format!(
        "[[camera]]\nid = \"gate\"\nonvif = {{ host = \"127.0.0.1\", port = {ONVIF_PORT}, username = \"admin\" }}\n"
    );
    let config = dir.path().join("cleannvr.toml");
    std::fs::write(&config, common::config(dir.path(), 2, &camera)).unwrap();
    let t0 = wall_ns();
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&config)
        .arg("audit-cameras")
        .env("CLEANNVR_CAMERA_GATE_PASSWORD", "correct horse")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Not shown isolated: exit status 2.
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("camera gate (127.0.0.1:8080): incomplete"),
        "{stdout}"
    );
    assert!(stdout.contains("default gateway unknown"), "{stdout}");
    // The CLI's audit is kept for the Code of Practice report as the Isolation page's
    // is, run by `cli:<local user>` (the test runs as root); cleannvr is stopped here,
    // so both commands work on the index directly.
    let audited = isolation_row(&config, dir.path());
    let first = audited_ns(&audited);
    assert!(t0 - 1_000_000 <= first && first <= wall_ns(), "{audited}");

    // End to end: `run` with only host and credentials (password from the environment).
    std::env::set_var("CLEANNVR_CAMERA_GATE_PASSWORD", "correct horse");
    let mut nvr = Nvr::start(config.clone(), &["run"]);
    let data = dir.path().join("data");
    let seg = wait_for(Duration::from_secs(150), "a finished segment", || {
        files(&data, ".mp4").into_iter().find(|f| {
            std::fs::metadata(f)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false)
        })
    });
    // While it runs, the CLI audits through its control socket, and the server keeps
    // the result (the index is the server's alone now).
    let t1 = wall_ns();
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&config)
        .arg("audit-cameras")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("camera gate (127.0.0.1:8080): incomplete"),
        "{stdout}"
    );
    let row = isolation_row(&config, dir.path());
    let second = audited_ns(&row);
    assert!(
        first < second && t1 - 1_000_000 <= second && second <= wall_ns(),
        "the report shows the audit run through the socket: {row}"
    );
    nvr.stop();
    let log = nvr.log.text();
    assert!(log.contains("stream URI from ONVIF"), "{log}");
    assert!(
        !log.contains("correct horse"),
        "password in the log:\n{log}"
    );
    assert_eq!(common::codecs(&seg), vec!["h264".to_string()]);
    let v = common::ffprobe(&seg, &["-show_entries", "stream=width,height"]);
    assert_eq!(
        (
            v["streams"][0]["width"].as_i64(),
            v["streams"][0]["height"].as_i64()
        ),
        (Some(640), Some(360))
    );
    let errors = common::decode_errors(&seg);
    assert!(errors.is_empty(), "{}: {errors}", seg.display());

    // The wrong password makes `run` report an authentication failure, naming the camera.
    std::env::set_var("CLEANNVR_CAMERA_GATE_PASSWORD", "wrong");
    let mut nvr = Nvr::start(config, &["run"]);
    wait_for(
        Duration::from_secs(90),
        "the ONVIF auth failure in the log",
        || nvr.log.find("not authorized"),
    );
    nvr.stop();
    let line = nvr.log.find("not authorized").unwrap();
    assert!(
        line.contains("gate") && line.contains("127.0.0.1:8080"),
        "{line}"
    );
}

fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The Code of Practice report's isolation row of camera `gate` (`cleannvr report`, through
/// the running server or on the index), checked to be a CLI run of ipycam: not shown
/// isolated, since ipycam answers none of the network queries.
fn isolation_row(config: &std::path::Path, dir: &std::path::Path) -> serde_json::Value {
    let file = dir.join("report.json");
    let file_arg = file.to_str().unwrap();
    let (ok, out) = common::cli(
        config,
        &[
            "report",
            "--from",
            "2025-01-01",
            "--to",
            "2034-01-01",
            "--out",
            file_arg,
        ],
        "",
    );
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let row = report["isolation"][0].clone();
    assert_eq!(
        (&row["camera"], &row["by"], &row["verdict"]),
        (
            &serde_json::json!("gate"),
            &serde_json::json!("cli:root"),
            &serde_json::json!("not_shown")
        ),
        "{report}"
    );
    let findings = row["findings"].to_string();
    assert!(findings.contains("gateway"), "{findings}");
    assert!(!findings.contains("correct horse"), "no credentials");
    row
}

fn audited_ns(row: &serde_json::Value) -> i64 {
    cleannvr::clock::parse_rfc3339(row["audited"].as_str().unwrap()).unwrap()
}

/// PTZ through the API against ipycam's PTZ service (ipycam moves its
/// digital PTZ at `speed` units per second and, unlike many cameras,
/// ignores ContinuousMove's Timeout, so only our dead-man stop halts it).
#[test]
fn ipycam_ptz() {
    if !inside_namespace("ipycam_ptz") {
        return;
    }
    let _cam = Ipycam::start("admin", "correct horse");
    let dir = tempfile::tempdir().unwrap();
    let cameras = format!(
        "[[camera]]\nid = \"gate\"\nonvif = {{ host = \"127.0.0.1\", port = {ONVIF_PORT}, username = \"admin\", password = \"correct horse\" }}\n\
         [[camera]]\nid = \"plain\"\nurl = \"rtsp://127.0.0.1:9/none\"\n"
    );
    let config = dir.path().join("cleannvr.toml");
    std::fs::write(&config, common::config(dir.path(), 2, &cameras)).unwrap();
    common::add_user(&config, "root", "admin", "admin pass 12345");
    common::add_user(&config, "op", "operator", "operator pass 12345");
    common::add_user(&config, "vi", "viewer", "viewer pass 12345");
    let nvr = Nvr::start(config, &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");
    let op = HttpSession::login(&nvr.http, "op", "operator pass 12345");
    let vi = HttpSession::login(&nvr.http, "vi", "viewer pass 12345");
    let status = |s: &HttpSession| {
        let v = s.json("/api/cameras/gate/ptz/status");
        (v["pan"].as_f64().unwrap(), v["tilt"].as_f64().unwrap())
    };
    let post = |s: &HttpSession, path: &str, body: serde_json::Value| {
        s.send("POST", &format!("/api/cameras/gate/ptz/{path}"), &body)
    };
    assert_eq!(status(&op), (0.0, 0.0));

    // Rights and input: viewers may look but not steer; velocities are checked.
    assert_eq!(post(&vi, "move", serde_json::json!({"pan": 0.5})).0, 403);
    assert_eq!(status(&vi), (0.0, 0.0));
    assert_eq!(post(&op, "move", serde_json::json!({"pan": 2.0})).0, 400);
    let (code, body) = op.send(
        "POST",
        "/api/cameras/plain/ptz/move",
        &serde_json::json!({"pan": 0.5}),
    );
    assert_eq!(code, 404, "{body}");

    // Holding a direction: repeated moves, then stop; the camera stays put.
    for _ in 0..5 {
        let (code, body) = post(&op, "move", serde_json::json!({"pan": 0.5}));
        assert_eq!(code, 204, "{body}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(post(&op, "stop", serde_json::json!({})).0, 204);
    let (pan, _) = status(&op);
    assert!(pan > 0.2, "pan {pan} after 1.25 s at 0.5/s");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(status(&op).0, pan, "still moving after stop");

    // A client that vanishes mid-move: the camera stops within about a
    // second. Without the dead-man stop, tilt would climb 0.1/s for ever
    // (to the 1.0 limit after ten seconds).
    let t0 = std::time::Instant::now();
    assert_eq!(post(&op, "move", serde_json::json!({"tilt": 0.1})).0, 204);
    let mut last = status(&op).1;
    let settled = wait_for(Duration::from_secs(30), "tilt to settle", || {
        std::thread::sleep(Duration::from_millis(700));
        let now = status(&op).1;
        let settled = (now == last && now > 0.0).then_some(now);
        last = now;
        settled
    });
    eprintln!(
        "auto-stop: tilt settled at {settled:.3} after {:?}",
        t0.elapsed()
    );
    assert!(settled < 0.5, "tilt {settled}: the camera kept moving");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(&op).1, settled);

    // Presets: admins save, operators go; home and back.
    assert_eq!(
        post(&op, "presets", serde_json::json!({"name": "Gate"})).0,
        403
    );
    let (code, saved) = post(&admin, "presets", serde_json::json!({"name": "Gate"}));
    assert_eq!(code, 201, "{saved}");
    let token = saved["token"].as_str().unwrap().to_owned();
    let presets = op.json("/api/cameras/gate/ptz/presets");
    assert!(
        presets["presets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["token"] == token.as_str() && p["name"] == "Gate"),
        "{presets}"
    );
    assert_eq!(post(&op, "home", serde_json::json!({})).0, 204);
    assert_eq!(status(&op), (0.0, 0.0));
    assert_eq!(
        post(&op, &format!("presets/{token}/goto"), serde_json::json!({})).0,
        204
    );
    let (p, t) = status(&op);
    assert!(
        (p - pan).abs() < 1e-6 && (t - settled).abs() < 1e-6,
        "{p} {t}"
    );

    // One audit entry per move session, not per command.
    let entries = admin.audit("ptz");
    let sessions: Vec<&str> = entries
        .iter()
        .filter(|e| e["actor"] == "op")
        .filter_map(|e| e["detail"].as_str())
        .filter(|d| d.starts_with("moved from"))
        .collect();
    assert_eq!(sessions.len(), 2, "{entries:?}");
    assert!(
        sessions.iter().any(|d| d.ends_with("; stopped")),
        "{sessions:?}"
    );
    assert!(
        sessions.iter().any(|d| d.contains("stopped automatically")),
        "{sessions:?}"
    );
    assert!(!nvr.log.text().contains("correct horse"));

    // The same from the live view in Chromium, as the operator.
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !common::require_browser(&ui) {
        return;
    }
    let screens = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-ptz");
    std::fs::create_dir_all(&screens).unwrap();
    assert_eq!(post(&op, "home", serde_json::json!({})).0, 204);
    let cfg = serde_json::json!({
        "user": ["op", "operator pass 12345"],
        "camera": "gate",
        "screens": screens,
    });
    run_ui_script("ptz.mjs", &nvr.http, &cfg.to_string(), &[], &nvr.log);
    println!("screenshots in {}", screens.display());
}

/// "Find cameras" on the Camera setup page: the server's WS-Discovery run
/// (multicast, inside this test's private namespace only) lists ipycam,
/// not yet added; a connection test with its ONVIF credentials resolves the
/// stream (GetProfiles → GetStreamUri) and shows it; the admin adds it in
/// Chromium without touching the file, and it records while the camera
/// already there keeps recording; a second run marks it added.
#[test]
fn ipycam_found_and_added_from_the_setup_page() {
    if !inside_namespace("ipycam_found_and_added_from_the_setup_page") {
        return;
    }
    // Multicast works on this namespace's `lo` only: it reaches nothing else.
    netns::ip(&["link", "set", "lo", "multicast", "on"]);
    netns::ip(&["route", "add", "224.0.0.0/4", "dev", "lo"]);
    let _cam = Ipycam::start("admin", "correct horse");
    let dir = tempfile::tempdir().unwrap();
    // A camera already recording, from ipycam's own RTSP server but at another
    // loopback address, so it is a different device to discovery.
    let config = dir.path().join("cleannvr.toml");
    std::fs::write(
        &config,
        common::config(
            dir.path(),
            2,
            "[[camera]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.2:8554/video_sub\"\n",
        ),
    )
    .unwrap();
    common::add_user(&config, "root", "admin", "admin pass 12345");
    common::add_user(&config, "op", "operator", "operator pass 12345");
    let nvr = Nvr::start(config.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");
    let op = HttpSession::login(&nvr.http, "op", "operator pass 12345");
    common::wait_segments(&nvr, Some(&admin.cookie), "yard", 1);

    let find = |body: serde_json::Value| {
        let (code, v) = admin.send("POST", "/api/onvif/discover", &body);
        assert_eq!(code, 200, "{v}\nlog:\n{}", nvr.log.text());
        v["devices"].as_array().unwrap().clone()
    };
    assert_eq!(
        op.send("POST", "/api/onvif/discover", &serde_json::json!({}))
            .0,
        403
    );
    // ipycam may still be starting its discovery listener.
    let found = wait_for(Duration::from_secs(60), "ipycam found by multicast", || {
        Some(find(serde_json::json!({"wait": 2}))).filter(|d| !d.is_empty())
    });
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(d["name"], "RigCam", "{d}");
    assert_eq!(
        (d["host"].as_str(), d["port"].as_u64()),
        (Some("127.0.0.1"), Some(8080)),
        "{d}"
    );
    assert!(
        d["endpoint"].as_str().unwrap().starts_with("urn:uuid:"),
        "{d}"
    );
    assert_eq!(d["added"], serde_json::json!([]), "{d}");
    assert_eq!(d["suggested_id"], "rigcam", "{d}");
    // The same device by unicast (a camera on another subnet), default port.
    let one = find(serde_json::json!({"target": "127.0.0.1"}));
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["endpoint"], d["endpoint"]);
    assert!(find(serde_json::json!({"target": "127.0.0.1:9"})).is_empty());
    assert_eq!(
        admin
            .send(
                "POST",
                "/api/onvif/discover",
                &serde_json::json!({"target": "no such host.invalid"})
            )
            .0,
        400
    );

    // Test before save: the wrong password in plain words, the right one
    // resolves the stream through ONVIF and shows it.
    let onvif = |pw: &str| {
        serde_json::json!({"id": "rigcam", "name": "RigCam",
            "onvif": {"host": "127.0.0.1", "port": ONVIF_PORT, "username": "admin", "password": pw}})
    };
    let (code, t) = admin.send("POST", "/api/cameras/test", &onvif("wrong"));
    assert_eq!((code, &t["ok"]), (200, &serde_json::json!(false)), "{t}");
    assert!(
        t["reason"].as_str().unwrap().contains("not authorized"),
        "{t}"
    );
    let (code, t) = admin.send("POST", "/api/cameras/test", &onvif("correct horse"));
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["ok"], true, "{t}\nlog:\n{}", nvr.log.text());
    assert_eq!(
        (t["width"].as_u64(), t["height"].as_u64()),
        (Some(640), Some(360)),
        "{t}"
    );

    // The streams it offers, read with the credentials typed in the form:
    // the wrong password in plain words (and nowhere in the answer), the
    // right one lists every profile and proposes main and sub.
    let read = |body: serde_json::Value| {
        let (code, v) = admin.send("POST", "/api/onvif/profiles", &body);
        assert_eq!(code, 200, "{v}\nlog:\n{}", nvr.log.text());
        v
    };
    let at = |pw: Option<&str>| {
        let mut b =
            serde_json::json!({"host": "127.0.0.1", "port": ONVIF_PORT, "username": "admin"});
        if let Some(pw) = pw {
            b["password"] = pw.into();
        }
        b
    };
    assert_eq!(
        op.send("POST", "/api/onvif/profiles", &at(Some("correct horse")))
            .0,
        403
    );
    let refused = read(at(Some("pw-not-it-4411")));
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("not authorized")
            && !refused.to_string().contains("pw-not-it-4411"),
        "{refused}"
    );
    let offered = read(at(Some("correct horse")));
    assert_eq!(offered["ok"], true, "{offered}");
    let profiles = offered["profiles"].as_array().unwrap();
    let uri_of = |token: &serde_json::Value| {
        profiles.iter().find(|p| p["token"] == *token).unwrap()["stream_uri"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(profiles.len(), 2, "{offered}");
    assert_eq!(uri_of(&offered["main"]), "rtsp://127.0.0.1:8554/video_main");
    let sub_url = uri_of(&offered["sub"]);
    assert_eq!(sub_url, "rtsp://127.0.0.1:8554/video_sub");
    let main = offered["main"].as_str().unwrap().to_owned();
    // No password and no configured camera to take it from: refused.
    assert_eq!(read(at(None))["ok"], false);

    let yard_before = common::files(&dir.path().join("data/yard"), ".mp4").len();
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if common::require_browser(&ui) {
        let screens = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-camera-discovery");
        std::fs::create_dir_all(&screens).unwrap();
        let cfg = serde_json::json!({
            "admin": ["root", "admin pass 12345"],
            "user": "admin", "password": "correct horse",
            "main": main, "sub_url": sub_url,
            "screens": screens,
        });
        run_ui_script(
            "camera_discovery.mjs",
            &nvr.http,
            &cfg.to_string(),
            &[],
            &nvr.log,
        );
        println!("screenshots in {}", screens.display());
    } else {
        let mut body = onvif("correct horse");
        body["name"] = "RigCam".into();
        body["onvif"]["profile"] = main.clone().into();
        body["sub_url"] = sub_url.clone().into();
        let (code, v) = admin.send("POST", "/api/cameras", &body);
        assert_eq!(code, 201, "{v}");
    }

    // Added to the file (no edit by hand) and recording; the other camera went on.
    let cfg = cleannvr::config::Config::load(&config).unwrap();
    let added = cfg
        .cameras
        .iter()
        .find(|c| c.id == "rigcam")
        .expect("rigcam in the file");
    let o = added.onvif.as_ref().unwrap();
    assert_eq!(
        (
            o.host.as_str(),
            o.port,
            o.username.as_deref(),
            o.password.as_deref()
        ),
        (
            "127.0.0.1",
            ONVIF_PORT,
            Some("admin"),
            Some("correct horse")
        )
    );
    assert_eq!(o.profile.as_deref(), Some(main.as_str()));
    assert_eq!(added.sub_url.as_deref(), Some(sub_url.as_str()));
    // Read again for the edit form: the stored password, for its own address only.
    let mut stored = at(None);
    stored["id"] = "rigcam".into();
    assert_eq!(read(stored.clone())["ok"], true);
    stored["host"] = "127.0.0.2".into();
    assert_eq!(
        read(stored)["ok"],
        false,
        "the stored password went to another host"
    );
    common::wait_segments(&nvr, Some(&admin.cookie), "rigcam", 1);
    common::wait_segments(&nvr, Some(&admin.cookie), "yard", yard_before + 1);
    let restarts = nvr
        .log
        .text()
        .lines()
        .filter(|l| l.contains("camera configured") && l.contains("camera=yard "))
        .count();
    assert_eq!(restarts, 1, "yard was restarted:\n{}", nvr.log.text());
    let found = find(serde_json::json!({"target": "127.0.0.1"}));
    assert_eq!(
        found[0]["added"],
        serde_json::json!(["rigcam"]),
        "{found:?}"
    );
    let audit = serde_json::to_string(&admin.audit("camera_change")).unwrap();
    assert!(audit.contains("rigcam"), "{audit}");
    assert!(
        !audit.contains("correct horse"),
        "password in the audit: {audit}"
    );
    assert!(
        !nvr.log.text().contains("correct horse"),
        "password in the log"
    );
}

/// onvif-zeep-async reading device information, profiles and stream URIs.
const ZEEP_CHECK: &str = r#"
import asyncio, sys
from onvif import ONVIFCamera
async def main():
    cam = ONVIFCamera(sys.argv[1], int(sys.argv[2]), '', '')
    await cam.update_xaddrs()
    dev = await cam.create_devicemgmt_service()
    i = await dev.GetDeviceInformation()
    print('device', i.Manufacturer, i.Model, i.SerialNumber)
    media = await cam.create_media_service()
    for p in await media.GetProfiles():
        e = p.VideoEncoderConfiguration
        u = await media.GetStreamUri({'StreamSetup': {'Stream': 'RTP-Unicast', 'Transport': {'Protocol': 'RTSP'}}, 'ProfileToken': p.token})
        print('profile', p.token, e.Encoding, e.Resolution.Width, e.Resolution.Height, u.Uri)
    await cam.close()
asyncio.run(main())
"#;
