//! A live tile in Debian's Chromium (playwright-core, `tests/ui/live_reconnect.mjs`)
//! through a camera outage and a restart of cleannvr itself, against the
//! GStreamer RTSP peer: the picture must move on after each (a camera session
//! restarts its timestamps with the same parameters, which once froze the
//! tile for as long as the previous session had run), and the tile must say
//! in plain words what is happening meanwhile. A second camera streams
//! without ever sending a key frame (the peer's `/h264nokey`): its tile must
//! say so, never "Live", and "Offline" once its session ends.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(400);

#[test]
fn live_tile_survives_camera_and_nvr_restarts() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let first = GstServer::start(&[]);
    let gst_port = first.port;
    let mut gst = Some(first);
    let dir = tempfile::tempdir().unwrap();
    let web_port = free_port();
    let toml = config(
        dir.path(),
        10,
        &format!(
            "[[camera]]\nid = \"gate\"\nname = \"Front gate\"\nurl = \"rtsp://127.0.0.1:{gst_port}/h264aac\"\n\
             [[camera]]\nid = \"yard\"\nname = \"Yard\"\nurl = \"rtsp://127.0.0.1:{gst_port}/h264nokey\"\n"
        ),
    )
    .replace("127.0.0.1:0", &format!("127.0.0.1:{web_port}"));
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let mut nvr = Some(Nvr::start(cfg.clone(), &["run"]));
    let base = nvr.as_ref().unwrap().http.clone();

    // Join the camera's session late, as an operator opening the page on a camera
    // that has been up for a while does (see the script).
    let admin = login(&base, "root", "admin pass 12345");
    wait_for(Duration::from_secs(120), "40 s of camera session", || {
        let (_, body) = get(&base, "/api/cameras", &admin);
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let cams = v["cameras"].as_array()?;
        let cam = |id: &str| cams.iter().find(|c| c["id"] == id).cloned();
        // The yard camera streams, but its peer withholds every key frame.
        let waiting = !cam("yard")?["no_key_frame_since"].is_null();
        (cam("gate")?["frames"].as_u64()? >= 40 * 25 && waiting).then_some(())
    });

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-live-reconnect");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg_json = serde_json::json!({
        "admin": ["root", "admin pass 12345"],
        "camera": "gate",
        "nokey": "yard",
        "screens": screens,
    })
    .to_string();
    let mut node = Command::new("node")
        .arg(ui.join("live_reconnect.mjs"))
        .args([&base, &cfg_json])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting node");
    let mut to_node = node.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let out = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut transcript = Vec::new();
    let deadline = std::time::Instant::now() + SCRIPT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = node.kill();
                panic!("UI script timed out:\n{}", transcript.join("\n"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        println!("{line}");
        transcript.push(line.clone());
        let Some(phase) = line.strip_prefix("PHASE ") else {
            continue;
        };
        match phase {
            "camera-down" => gst.take().unwrap().kill(),
            "camera-up" => gst = Some(GstServer::start_on(gst_port, &[])),
            "nvr-down" => nvr.take().unwrap().stop(),
            "nvr-up" => {
                let n = Nvr::start(cfg.clone(), &["run"]);
                assert_eq!(n.http, base, "restarted on the same address");
                nvr = Some(n);
            }
            other => panic!("unknown phase {other}"),
        }
        writeln!(to_node, "go").unwrap();
    }
    let status = node.wait().unwrap();
    let text = transcript.join("\n");
    let log = nvr.as_ref().map(|n| n.log.text()).unwrap_or_default();
    assert!(
        status.success() && text.contains(", 0 failed"),
        "live reconnect UI test failed:\n{text}\n--- cleannvr log ---\n{log}"
    );
    println!("screenshots in {}", screens.display());
}
