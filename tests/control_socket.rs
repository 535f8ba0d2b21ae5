//! Admin commands against a running server through the control socket: while a
//! GStreamer camera records, `user add` succeeds and the new user logs in over
//! HTTPS, `status` shows the camera streaming, `check` runs read-only, and the
//! camera's index has no gap; the audit entry names the local OS user. With the
//! server stopped the same commands open the index directly. A caller of another
//! uid is refused, by the socket's mode and by its peer credentials.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cleannvr::clock::Clock;

use cleannvr::store::{SegmentRecord, Store};
use common::*;

const FRAME_NS: i64 = 40_000_000; // 25 fps

/// The config of `common::config` with TLS on (a self-signed certificate made at start).
fn tls_config(dir: &Path, cameras: &str) -> String {
    config(dir, 2, cameras).replace("tls = false\n", "")
}

/// `cleannvr status --json`, or panics with the server's log.
fn status(nvr: &Nvr) -> serde_json::Value {
    let (ok, out) = cli(&nvr.config, &["status", "--json"], "");
    assert!(ok, "status: {out}\nserver log:\n{}", nvr.log.text());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status is not JSON ({e}): {out}"))
}

fn camera<'a>(status: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    status["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no camera {id} in {status}"))
}

/// `status` once camera `gate` streams and has `min_segments` indexed.
fn streaming(nvr: &Nvr, min_segments: u64) -> Option<serde_json::Value> {
    let s = status(nvr);
    let c = camera(&s, "gate");
    (c["state"] == "streaming" && c["segments"].as_u64()? >= min_segments).then_some(s)
}

#[test]
fn user_add_status_and_check_while_a_camera_records_without_a_gap() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cam = format!(
        "[[camera]]\nid = \"gate\"\nname = \"Main gate\"\nurl = \"{}\"\n",
        gst.url("h264aac")
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, tls_config(dir.path(), &cam)).unwrap();
    // Stopped: the CLI opens the index itself.
    add_user(&cfg, "boss", "admin", "boss password 1");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    assert!(nvr.http.starts_with("https://"), "{}", nvr.http);
    let sock = dir.path().join("data/control.sock");
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let m = std::fs::metadata(&sock).expect("control socket exists");
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }

    // Two finished segments before the command, so the index spans it.
    let s = wait_for(
        Duration::from_secs(180),
        "camera gate streaming with 2 segments",
        || streaming(&nvr, 2),
    );
    assert_eq!(s["running"], true);
    assert_eq!(camera(&s, "gate")["name"], "Main gate");
    assert!(s["disk"]["free_bytes"].as_u64().unwrap() > 0, "{s}");
    let (ok, text) = cli(&cfg, &["status"], "");
    assert!(
        ok && text.contains("camera gate (Main gate): streaming"),
        "{text}"
    );

    let (ok, out) = cli(
        &cfg,
        &["user", "add", "newbie", "--role", "viewer"],
        "newbie password 1\n",
    );
    assert!(
        ok,
        "user add while running: {out}\nserver log:\n{}",
        nvr.log.text()
    );
    assert!(out.contains("added newbie (viewer)"), "{out}");
    let t_add = cleannvr::clock::SystemClock.now_ns();
    // The new user logs in over HTTPS at once.
    let me = HttpSession::login(&nvr.http, "newbie", "newbie password 1");
    assert_eq!(me.json("/api/me")["user"]["name"], "newbie");
    // The audit entry names the local OS user who ran the command.
    let admin = HttpSession::login(&nvr.http, "boss", "boss password 1");
    let adds = admin.audit("user_add");
    let entry = adds
        .iter()
        .find(|e| e["target"] == "newbie")
        .expect("user_add audited");
    let os_user = cleannvr::control::peer::Caller::current();
    assert_eq!(entry["client"], os_user.audit_client(), "{entry}");
    assert!(os_user.audit_client().contains(&os_user.name));
    let (ok, out) = cli(&cfg, &["user", "list"], "");
    assert!(ok && out.contains("newbie\tviewer"), "{out}");
    let (ok, out) = cli(&cfg, &["audit", "verify"], "");
    assert!(ok && out.contains("audit chain intact"), "{out}");

    // check is read-only while running: the open segment is not a problem; --repair is refused.
    let (ok, out) = cli(&cfg, &["check"], "");
    assert!(
        ok && out.contains(" 0 problems"),
        "check while running: {out}"
    );
    let (ok, out) = cli(&cfg, &["check", "--repair"], "");
    assert!(!ok && out.contains("needs cleannvr stopped"), "{out}");

    // Two more segments after the command, then stop and read the index.
    let n = camera(&status(&nvr), "gate")["segments"].as_u64().unwrap();
    wait_for(Duration::from_secs(120), "two more segments", || {
        streaming(&nvr, n + 2)
    });
    nvr.stop();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let rows: Vec<SegmentRecord> = store.iter_camera("gate").map(|r| r.unwrap()).collect();
    drop(store);
    assert!(
        rows.first().unwrap().start_ns < t_add && rows.last().unwrap().end_ns > t_add,
        "the index spans the command"
    );
    for w in rows.windows(2) {
        let gap = w[1].start_ns - w[0].end_ns;
        assert!(
            gap.abs() <= FRAME_NS,
            "gap of {gap} ns between {} and {}",
            w[0].path,
            w[1].path
        );
    }

    // Stopped: the commands fall back to the index; status says it is not running.
    assert!(!sock.exists(), "the socket is removed at shutdown");
    let (ok, out) = cli(&cfg, &["user", "list"], "");
    assert!(ok && out.contains("newbie\tviewer"), "{out}");
    let (ok, out) = cli(&cfg, &["status"], "");
    assert!(!ok && out.contains("not running"), "{out}");
    let (ok, out) = cli(&cfg, &["check"], "");
    assert!(
        ok && out.contains(" 0 problems"),
        "check when stopped: {out}"
    );
}

/// Connects to `sock` as nobody (uid 65534) and sends `user list`; what came back.
fn as_nobody(sock: &Path) -> String {
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect failed:", e.strerror); sys.exit(0)
try:
    s.sendall(b'{"cmd":"user_list"}\n')
except OSError:
    pass  # refused before reading: the answer is still there to read
print(s.makefile().readline())
"#;
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(sock)
        .output()
        .expect("running setpriv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn another_uid_is_refused_by_mode_and_by_peer_credentials() {
    if !require_peer(is_root(), "root (to connect as nobody with setpriv)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A disabled camera: nothing to ingest, only the server and its socket.
    let cam = "[[camera]]\nid = \"off\"\nurl = \"rtsp://127.0.0.1:9/x\"\nenabled = false\n";
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, config(dir.path(), 2, cam)).unwrap();
    add_user(&cfg, "boss", "admin", "boss password 1");
    let nvr = Nvr::start(cfg.clone(), &["run"]);
    let data = dir.path().join("data");
    let sock = data.join("control.sock");

    // The 0700 storage dir and the 0600 socket keep nobody out.
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [dir.path(), data.as_path()] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
    }
    let out = as_nobody(&sock);
    assert!(out.contains("connect failed: Permission denied"), "{out}");

    // Opened up by mistake: the peer-credential check still refuses.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let out = as_nobody(&sock);
    assert!(
        out.contains("refused: uid 65534"),
        "{out}\nserver log:\n{}",
        nvr.log.text()
    );
    assert!(!out.contains("boss"), "user list ran for nobody: {out}");
    // Root (this test) is served.
    let (ok, out) = cli(&cfg, &["user", "list"], "");
    assert!(ok && out.contains("boss\tadmin"), "{out}");
}

/// An export through the control socket (or the CLI with the server stopped) is
/// admitted under the same export quota as one through the web API: over the
/// quota, both are refused and nothing is written.
#[test]
fn control_socket_exports_are_held_to_the_export_quota() {
    let dir = tempfile::tempdir().unwrap();
    let cam = "[[camera]]\nid = \"off\"\nurl = \"rtsp://127.0.0.1:9/x\"\nenabled = false\n";
    let cfg = dir.path().join("cleannvr.toml");
    // Smaller than any export's fixed overhead (manifest, sums, player).
    let text = config(dir.path(), 2, cam).replace(
        "export_max_bytes = 268435456\n",
        "export_max_bytes = 4096\n",
    );
    assert!(text.contains("export_max_bytes = 4096\n"), "{text}");
    std::fs::write(&cfg, text).unwrap();
    add_user(&cfg, "boss", "admin", "boss password 1");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let (start, end) = ("2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z");

    let web = HttpSession::login(&nvr.http, "boss", "boss password 1");
    let (code, v) = web.send(
        "POST",
        "/api/exports",
        &serde_json::json!({"cameras": ["off"], "start": start, "end": end, "reason": "quota", "recipient": "PC 1"}),
    );
    assert_eq!(code, 507, "the web refuses: {v}");

    let export = |out: &Path| {
        cli(
            &cfg,
            &[
                "export",
                "--camera",
                "off",
                "--start",
                start,
                "--end",
                end,
                "--out",
                out.to_str().unwrap(),
            ],
            "",
        )
    };
    let out = dir.path().join("by-socket");
    let (ok, said) = export(&out);
    assert!(
        !ok && said.contains("export quota exceeded"),
        "{said}\nserver log:\n{}",
        nvr.log.text()
    );
    assert!(!out.exists(), "a refused export left {}", out.display());
    nvr.stop();

    // With the server stopped, the CLI opens the index itself: the same rule.
    let out = dir.path().join("offline");
    let (ok, said) = export(&out);
    assert!(!ok && said.contains("export quota exceeded"), "{said}");
    assert!(!out.exists(), "a refused export left {}", out.display());
}
