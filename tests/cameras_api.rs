//! Cameras changed while the server runs (API and config file) against a real
//! RTSP peer (GStreamer's RTSP server): camera A records throughout, and every
//! change to other cameras must leave A's recording untouched: A is never
//! restarted (one "camera configured" line) and its index has no gap.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Appears only in camera B's URL and C's password: must never reach the API or the log.
const SECRET: &str = "Sup3rS3cretPw";

fn recordings(s: &HttpSession, cam: &str, from: i64, to: i64) -> Value {
    let t = cleannvr::clock::rfc3339;
    s.json(&format!(
        "/api/cameras/{cam}/recordings?start={}&end={}",
        t(from),
        t(to)
    ))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn cameras(s: &HttpSession) -> Vec<Value> {
    s.json("/api/cameras")["cameras"]
        .as_array()
        .unwrap()
        .clone()
}

fn wait_camera(nvr: &Nvr, s: &HttpSession, what: &str, f: impl Fn(&[Value]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let cams = cameras(s);
        if f(&cams) {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\ncameras: {cams:?}\nlog:\n{}",
                nvr.log.text()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_files(nvr: &Nvr, s: &HttpSession, cam: &str, n: usize) {
    let dir = nvr.config.parent().unwrap().join("data").join(cam);
    wait_camera(nvr, s, &format!("{n} segments of {cam}"), |_| {
        files(&dir, ".mp4").len() >= n
    });
}

const HEAD: &str = "# Site: keep this comment\n";

#[test]
fn cameras_change_live_without_a_gap_in_other_cameras() {
    if !require_peer(
        Path::new("/usr/bin/python3").exists(),
        "GStreamer's RTSP server",
    ) {
        return;
    }
    // A has a server of its own: clients joining or leaving a shared GStreamer
    // mount disturb the others' timestamps, which is not what is tested here.
    let gst_a = GstServer::start(&[]);
    let a_url = gst_a.url("h264aac");
    let gst = GstServer::start(&[]);
    let url = gst.url("h264aac");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let toml = format!(
        "{HEAD}{}",
        config(
            dir.path(),
            2,
            &format!("\n# Camera A: the one that must not notice\n[[camera]]\nid = \"a\"\nurl = \"{a_url}\" # main gate\n")
        )
    );
    std::fs::write(&cfg, &toml).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    add_user(&cfg, "vera", "viewer", "viewer pass 12345");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");
    let viewer = HttpSession::login(&nvr.http, "vera", "viewer pass 12345");
    wait_files(&nvr, &admin, "a", 2);
    let t0 = now_ns();

    // Viewers may not change or test cameras.
    let b_url = url.replace("rtsp://", &format!("rtsp://bob:{SECRET}@"));
    let b = json!({"id": "b", "name": "B", "url": b_url});
    for (m, p) in [
        ("POST", "/api/cameras"),
        ("PUT", "/api/cameras/a"),
        ("DELETE", "/api/cameras/a"),
        ("POST", "/api/cameras/test"),
    ] {
        assert_eq!(viewer.send(m, p, &b).0, 403, "{m} {p} as a viewer");
    }

    // Test before save: codec, size and a snapshot; or the reason, in words.
    let (code, t) = admin.send("POST", "/api/cameras/test", &json!({"url": b_url}));
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["ok"], true, "{t}");
    assert!(t["codec"].as_str().unwrap().starts_with("avc1."), "{t}");
    assert_eq!(
        (t["width"].as_u64(), t["height"].as_u64()),
        (Some(640), Some(360)),
        "{t}"
    );
    assert!(t["snapshot"]
        .as_str()
        .unwrap()
        .starts_with("data:image/jpeg;base64,/9j/"));
    let dead = format!("rtsp://127.0.0.1:{}/nothing", free_port());
    let (code, t) = admin.send("POST", "/api/cameras/test", &json!({"url": dead}));
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["ok"], false, "{t}");
    assert!(t["reason"].as_str().unwrap().contains("could not"), "{t}");
    let (code, t) = admin.send(
        "POST",
        "/api/cameras/test",
        &json!({"url": gst.url("nosuch")}),
    );
    assert_eq!((code, &t["ok"]), (200, &json!(false)), "{t}");
    assert!(t["reason"].as_str().unwrap().contains("404"), "{t}");

    // Add B through the API: 201, recording, and its password nowhere in the answer.
    let (code, v) = admin.send("POST", "/api/cameras", &b);
    assert_eq!(code, 201, "{v}");
    assert!(!v.to_string().contains(SECRET), "{v}");
    assert_eq!(v["camera"]["url"], url.as_str(), "{v}");
    assert_eq!(v["camera"]["url_has_credentials"], true, "{v}");
    assert_eq!(admin.send("POST", "/api/cameras", &b).0, 409);
    let (code, v) = admin.send(
        "POST",
        "/api/cameras",
        &json!({"id": "c", "url": "http://x/"}),
    );
    assert_eq!(code, 400, "{v}");
    wait_files(&nvr, &admin, "b", 1);

    // Edit B, sending its URL back as shown: the stored credentials stay.
    let (code, v) = admin.send(
        "PUT",
        "/api/cameras/b",
        &json!({"name": "B two", "url": url, "retain_days": 3}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["camera"]["name"], "B two", "{v}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains(&b_url) && text.contains("name = \"B two\""),
        "{text}"
    );
    wait_camera(&nvr, &admin, "B renamed", |c| {
        c.iter().any(|c| c["id"] == "b" && c["name"] == "B two")
    });

    // Remove B: gone from the API, its footage still on disk.
    let (code, v) = admin.send("DELETE", "/api/cameras/b", &json!({}));
    assert_eq!(code, 204, "{v}");
    assert!(cameras(&admin).iter().all(|c| c["id"] != "b"));
    assert!(!files(&dir.path().join("data/b"), ".mp4").is_empty());
    assert_eq!(admin.send("DELETE", "/api/cameras/b", &json!({})).0, 404);
    // B's footage stays reachable by admins until retention deletes it (by the limits B
    // had: `src/store/retention.rs::a_removed_camera_keeps_the_limits_it_had`): listed in
    // storage, its recordings and video served; other users get 404 as for any unknown id.
    // Polled: the segment B was writing when it was removed is indexed as it stops.
    let segs = wait_for(
        Duration::from_secs(120),
        "removed camera b's recordings",
        || {
            let segs = recordings(&admin, "b", t0 - 3_600_000_000_000, now_ns())["segments"]
                .as_array()
                .unwrap()
                .clone();
            (!segs.is_empty()).then_some(segs)
        },
    );
    let (code, video) = admin.get(&format!(
        "/api/cameras/b/video.mp4?start={}&end={}",
        segs[0]["start"].as_str().unwrap(),
        segs[0]["end"].as_str().unwrap()
    ));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&video));
    assert_eq!(&video[4..8], b"ftyp");
    let storage = admin.json("/api/storage");
    assert!(
        storage["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "b" && c["removed"] == true && c["segments"].as_u64() > Some(0)),
        "{storage}"
    );
    assert_eq!(viewer.get("/api/cameras/b/recordings").0, 404);
    assert!(viewer.json("/api/storage")["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["id"] != "b"));

    // An operator edits the file: SIGHUP adds C at once...
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n# Camera C, by hand\n[[camera]]\nid = \"c\"\nurl = \"{url}\"\npassword = \"{SECRET}\"\n"
    ));
    std::fs::write(&cfg, &text).unwrap();
    unsafe { libc::kill(nvr.pid() as i32, libc::SIGHUP) };
    wait_camera(&nvr, &admin, "camera c from the file", |c| {
        c.iter().any(|c| c["id"] == "c")
    });
    // ...and a later edit is noticed without a signal.
    std::fs::write(
        &cfg,
        text.replace("id = \"c\"\n", "id = \"c\"\nname = \"Cee\"\n"),
    )
    .unwrap();
    wait_camera(&nvr, &admin, "camera c renamed in the file", |c| {
        c.iter().any(|c| c["id"] == "c" && c["name"] == "Cee")
    });
    wait_files(&nvr, &admin, "c", 1);

    // Comments and layout survive the API's writes; the file stays private.
    let text = std::fs::read_to_string(&cfg).unwrap();
    for kept in [
        HEAD,
        "# Camera A: the one that must not notice\n[[camera]]\nid = \"a\"\n",
        "\" # main gate\n",
        "# Camera C, by hand\n",
    ] {
        assert!(text.contains(kept), "lost {kept:?}:\n{text}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Every change audited, with a diff but no secret. A change from the file is
    // audited just after it is applied, so the last one may still be on its way.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (audit, summary) = loop {
        let audit = admin.audit("camera_change");
        let summary: Vec<(String, String)> = audit
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_owned(),
                    e["target"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let count = |want: (&str, &str)| {
            summary
                .iter()
                .filter(|(a, t)| (a.as_str(), t.as_str()) == want)
                .count()
        };
        if (count(("root", "b")) >= 3 && count(("config-file", "c")) >= 2)
            || std::time::Instant::now() > deadline
        {
            break (audit, summary);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for want in [("root", "b"), ("config-file", "c")] {
        assert!(
            summary
                .iter()
                .filter(|(a, t)| (a.as_str(), t.as_str()) == want)
                .count()
                >= if want.0 == "root" { 3 } else { 2 },
            "{want:?} in {summary:?}; log:\n{}",
            nvr.log.text()
        );
    }
    let audit_text = serde_json::to_string(&audit).unwrap();
    assert!(!audit_text.contains(SECRET), "{audit_text}");
    assert!(
        audit_text.contains("B two"),
        "the diff names the change: {audit_text}"
    );
    assert!(audit_text.contains("password_set"), "{audit_text}");
    let all = cameras(&admin);
    assert!(!serde_json::to_string(&all).unwrap().contains(SECRET));
    assert!(all
        .iter()
        .any(|c| c["id"] == "c" && c["config"]["password_set"] == true));

    // A recorded through it all: never restarted, and no gap in its index.
    // Whole milliseconds, as the API answers.
    let t1 = now_ns() / 1_000_000 * 1_000_000;
    let rec = {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let v = recordings(&admin, "a", t0, t1);
            let end = v["ranges"]
                .as_array()
                .and_then(|r| r.last())
                .and_then(|r| r["end"].as_str())
                .and_then(cleannvr::clock::parse_rfc3339);
            if end.is_some_and(|e| e >= t1) {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "A's recording did not reach the end of the changes: {v}\nlog:\n{}",
                nvr.log.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert!(
        rec["gaps"].as_array().unwrap().is_empty(),
        "gap in A: {rec}"
    );
    let segs = rec["segments"].as_array().unwrap();
    for w in segs.windows(2) {
        let end = cleannvr::clock::parse_rfc3339(w[0]["end"].as_str().unwrap()).unwrap();
        let start = cleannvr::clock::parse_rfc3339(w[1]["start"].as_str().unwrap()).unwrap();
        assert!(
            (start - end).abs() < 200_000_000,
            "A's segments are not back to back: {} .. {}",
            w[0],
            w[1]
        );
    }
    let log = nvr.log.text();
    let starts = log
        .lines()
        .filter(|l| l.contains("camera configured") && l.contains("camera=a "))
        .count();
    assert_eq!(starts, 1, "camera A was restarted:\n{log}");
    assert!(!log.contains(SECRET), "a secret in the log:\n{log}");
    nvr.stop();
    let log = nvr.log.text();
    assert!(!log.contains(SECRET), "a secret in the log:\n{log}");
}

/// A listener that answers every RTSP request with a Basic-auth challenge and
/// keeps what it was sent, as a hostile host would to harvest a camera's
/// password. Our own fake: no peer's job is to capture credentials.
struct CredentialTrap {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl CredentialTrap {
    fn start() -> CredentialTrap {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let all = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let all = all.clone();
                std::thread::spawn(move || {
                    let mut out = conn.try_clone().unwrap();
                    let mut reader = BufReader::new(conn);
                    let mut cseq = String::from("1");
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        all.lock().unwrap().push_str(&line);
                        if let Some(v) = line.strip_prefix("CSeq:") {
                            cseq = v.trim().to_owned();
                        }
                        if line == "\r\n" {
                            let reply = format!(
                                "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n\
                                 WWW-Authenticate: Basic realm=\"cam\"\r\n\r\n"
                            );
                            if out.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                        line.clear();
                    }
                });
            }
        });
        CredentialTrap { port, seen }
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/s", self.port)
    }

    fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }
}

/// An admin session (or a request forged through it) that moves a camera to
/// another host without sending its password again gets 400: the stored
/// password is never sent to a host it was not saved for.
#[test]
fn a_stored_camera_password_is_not_sent_to_a_new_host() {
    use base64::Engine as _;
    const PW: &str = "St0redCamPw";
    let b64 = |user: &str, pw: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let home = format!("rtsp://127.0.0.1:{}/s", free_port());
    std::fs::write(
        &cfg,
        config(
            dir.path(),
            2,
            &format!(
                "[[camera]]\nid = \"gate\"\nurl = \"{home}\"\nusername = \"admin\"\npassword = \"{PW}\"\n"
            ),
        ),
    )
    .unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "root", "admin pass 12345");
    let trap = CredentialTrap::start();
    let moved = json!({"url": trap.url(), "username": "admin"});

    // Saved or only tested: refused, and the file keeps the old address.
    let (code, v) = admin.send("PUT", "/api/cameras/gate", &moved);
    assert_eq!(code, 400, "{v}");
    assert!(
        v.to_string().contains("enter its password again"),
        "the answer says why: {v}"
    );
    let mut test = moved.clone();
    test["id"] = json!("gate");
    let (code, v) = admin.send("POST", "/api/cameras/test", &test);
    assert_eq!(code, 400, "{v}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains(&home) && !text.contains(&trap.url()),
        "{text}"
    );

    // The trap does harvest a password it is given (so its silence above means
    // something): the connection test with the password sent again.
    test["password"] = json!("typed-again");
    let (code, v) = admin.send("POST", "/api/cameras/test", &test);
    assert_eq!((code, &v["ok"]), (200, &json!(false)), "{v}");
    let seen = wait_for(
        Duration::from_secs(60),
        "the trap to see credentials",
        || {
            let t = trap.text();
            t.contains(&b64("admin", "typed-again")).then_some(t)
        },
    );
    assert!(
        !seen.contains(&b64("admin", PW)) && !seen.contains(PW),
        "the stored password reached the new host:\n{seen}"
    );
    // The camera never moved there either.
    std::thread::sleep(Duration::from_secs(2));
    let seen = trap.text();
    assert!(
        !seen.contains(&b64("admin", PW)) && !seen.contains(PW),
        "the stored password reached the new host:\n{seen}"
    );
    nvr.stop();
}

/// Whether process `pid` has a handler for SIGHUP (`SigCgt` in /proc).
fn catches_sighup(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (libc::SIGHUP - 1)) != 0)
}

/// A SIGHUP while the server is still starting (here held at opening its index,
/// whose sled `conf` is a FIFO nobody writes) is handled, not the end of the process:
/// the handler is the first thing `run` installs.
#[test]
fn a_sighup_during_startup_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let cam = "[[camera]]\nid = \"off\"\nurl = \"rtsp://127.0.0.1:9/x\"\nenabled = false\n";
    std::fs::write(&cfg, config(dir.path(), 2, cam)).unwrap();
    let index = dir.path().join("data/index");
    std::fs::create_dir_all(&index).unwrap();
    let fifo = std::ffi::CString::new(index.join("conf").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let log = dir.path().join("stderr.log");
    /// Killed however the test ends: blocked on the FIFO, it would never exit.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reaped(
        std::process::Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        Duration::from_secs(120),
        "cleannvr to handle SIGHUP while it opens its index",
        || {
            if let Some(st) = child.0.try_wait().unwrap() {
                panic!("cleannvr ended ({st}) while starting:\n{}", said());
            }
            catches_sighup(pid).then_some(())
        },
    );
    for _ in 0..3 {
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let ended = child.0.try_wait().unwrap();
    drop(child);
    assert!(
        ended.is_none(),
        "SIGHUP ended cleannvr ({ended:?}):\n{}",
        said()
    );
    assert!(
        !said().contains("web server listening"),
        "the server was meant to be still starting:\n{}",
        said()
    );
}
