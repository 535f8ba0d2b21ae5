//! Issue 10, "survive a hostile LAN": each finding reproduced against the
//! real server over loopback and shown fixed. Idle, slow and trickling
//! connections are closed; racing logins are counted; live views and
//! running downloads end with their session; cross-origin requests are refused; overflowing times get
//! 400; files are private; and a flood from one address neither locks
//! other clients out nor stops recording.

mod common;
mod media;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// One camera that never answers (no demo camera, no generated admin).
const GATE: &str = "[[camera]]\nid = \"gate\"\nurl = \"rtsp://127.0.0.1:9/unreachable\"\n";
const PW: &str = "hostile lan pass";

fn plain_server(dir: &Path) -> Nvr {
    let cfg = dir.join("cleannvr.toml");
    std::fs::write(&cfg, config(dir, 60, GATE)).unwrap();
    add_user(&cfg, "root", "admin", PW);
    for u in ["bob", "carol", "dave"] {
        add_user(&cfg, u, "viewer", PW);
    }
    Nvr::start(cfg, &["run"])
}

fn host_of(nvr: &Nvr) -> String {
    nvr.http
        .split_once("://")
        .map(|(_, h)| h.to_owned())
        .unwrap()
}

/// Waits until the peer closes `s` (EOF or reset); returns how long it took.
fn wait_closed(mut s: TcpStream, limit: Duration, what: &str) -> Duration {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return t.elapsed(),
        }
        assert!(t.elapsed() < limit, "{what}: still open after {limit:?}");
    }
}

#[test]
fn idle_slow_and_trickling_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let nvr = plain_server(dir.path());
    let host = host_of(&nvr);
    // The server's limits are 10 s; these allow four times that.
    let limit = Duration::from_secs(40);
    let idle = {
        let host = host.clone();
        std::thread::spawn(move || {
            let s = TcpStream::connect(&host).unwrap();
            wait_closed(s, limit, "a connection that never speaks")
        })
    };
    let slowloris = {
        let host = host.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&host).unwrap();
            s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 256];
            loop {
                // One header line a second, never the blank line that ends them.
                if s.write_all(b"X-Slow: 1\r\n").is_err() {
                    return t.elapsed();
                }
                match s.read(&mut buf) {
                    Ok(0) => return t.elapsed(),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return t.elapsed(),
                }
                assert!(t.elapsed() < limit, "slowloris headers still accepted");
            }
        })
    };
    let keep_alive = {
        let host = host.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&host).unwrap();
            s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            wait_closed(s, limit, "an idle kept-alive connection")
        })
    };
    let slow_body = {
        let host = host.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&host).unwrap();
            s.write_all(
                b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 1000\r\n\r\n{\"username\":",
            )
            .unwrap();
            wait_closed(s, limit, "a body that never finishes")
        })
    };
    for (what, t) in [
        ("idle", idle),
        ("slowloris", slowloris),
        ("keep-alive", keep_alive),
        ("slow body", slow_body),
    ] {
        let took = t.join().unwrap();
        eprintln!("{what} connection closed after {took:?}");
    }
}

#[test]
fn racing_logins_are_limited_and_cross_origin_and_overflow_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nvr = plain_server(dir.path());
    let base = nvr.http.clone();
    let host = host_of(&nvr);

    // 40 wrong passwords for one user at once: 3 are checked, the rest 429.
    let raced = Instant::now();
    let racers: Vec<_> = (0..40)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let body =
                    serde_json::json!({"username": "carol", "password": format!("guess {i}")});
                http(
                    &base,
                    "POST",
                    "/api/login",
                    None,
                    None,
                    Some(&body.to_string()),
                    &[],
                )
                .0
            })
        })
        .collect();
    let codes: Vec<u16> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = codes.iter().filter(|c| **c == 401).count();
    assert!(codes.iter().all(|c| matches!(c, 401 | 429)), "{codes:?}");
    // 3 free failures, then 1 s, 2 s, 4 s ... apart: if starting the 40
    // requests took a while, the delays that passed meanwhile let a few more
    // through. Before issue 10 39 of 40 were checked.
    let secs = raced.elapsed().as_secs_f64();
    let allowed = 3 + (secs + 1.0).log2().floor() as usize;
    assert!(
        (1..=allowed).contains(&checked),
        "{checked} checked in {secs:.1} s (allowed {allowed}): {codes:?}"
    );

    // Origin: a page elsewhere cannot change state, even with the token.
    let (cookie, csrf) = login_csrf(&base, "bob", PW);
    let evil = "Origin: http://evil.example";
    let (code, _) = http(
        &base,
        "POST",
        "/api/logout",
        Some(&cookie),
        Some(&csrf),
        None,
        &[evil],
    );
    assert_eq!(code, 403);
    let (code, _) = http(&base, "GET", "/api/me", Some(&cookie), None, None, &[]);
    assert_eq!(code, 200, "the refused logout changed nothing");
    let body = serde_json::json!({"username": "bob", "password": PW}).to_string();
    let (code, _) = http(
        &base,
        "POST",
        "/api/login",
        None,
        None,
        Some(&body),
        &[evil],
    );
    assert_eq!(code, 403, "no login CSRF either");

    // Times whose difference overflows i64 ns (1700 to 2260) are a 400,
    // not a wrapped range that passes the 31-day cap.
    for path in [
        "/api/cameras/gate/recordings?start=1700-01-01T00:00:00Z&end=2260-01-01T00:00:00Z",
        "/api/cameras/gate/video.mp4?start=1700-01-01T00:00:00Z&end=2260-01-01T00:00:00Z",
        "/api/cameras/gate/snapshot.jpg?at=2262-04-11T23:47:16.854775807Z",
    ] {
        let (code, text) = http(&base, "GET", path, Some(&cookie), None, None, &[]);
        assert_eq!(code, 400, "{path}: {text}");
    }

    // Same origin is fine.
    let ours = format!("Origin: http://{host}");
    let (code, _) = http(
        &base,
        "POST",
        "/api/logout",
        Some(&cookie),
        Some(&csrf),
        None,
        &[&ours],
    );
    assert_eq!(code, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_views_end_with_their_session() {
    let dir = tempfile::tempdir().unwrap();
    let nvr = plain_server(dir.path());
    let base = nvr.http.clone();
    let ws_url = format!("{}/api/cameras/gate/live", base.replacen("http", "ws", 1));
    let (root, root_csrf) = {
        let b = base.clone();
        tokio::task::spawn_blocking(move || login_csrf(&b, "root", PW))
            .await
            .unwrap()
    };

    let open = |cookie: String, origin: Option<String>| {
        let mut req = ws_url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };

    // A cross-site page cannot open a live view with the user's cookie.
    let (bob, _) = login_csrf(&base, "bob", PW);
    let err = open(bob, Some("https://evil.example".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");

    // Each way a session ends closes the open view within a second or so.
    type End = Box<dyn Fn(&str, &str) -> (u16, String) + Send + Sync>;
    let cases: Vec<(&str, &str, End)> = vec![
        ("logout", "bob", {
            let base = base.clone();
            Box::new(move |c: &str, t: &str| {
                http(&base, "POST", "/api/logout", Some(c), Some(t), None, &[])
            })
        }),
        ("camera scope change", "dave", {
            let (base, root, rc) = (base.clone(), root.clone(), root_csrf.clone());
            Box::new(move |_: &str, _: &str| {
                http(
                    &base,
                    "PUT",
                    "/api/users/dave",
                    Some(&root),
                    Some(&rc),
                    Some(r#"{"cameras": []}"#),
                    &[],
                )
            })
        }),
        ("user removal", "carol", {
            let (base, root, rc) = (base.clone(), root.clone(), root_csrf.clone());
            Box::new(move |_: &str, _: &str| {
                http(
                    &base,
                    "DELETE",
                    "/api/users/carol",
                    Some(&root),
                    Some(&rc),
                    None,
                    &[],
                )
            })
        }),
    ];
    for (what, user, end) in cases {
        let (cookie, csrf) = {
            let b = base.clone();
            let u = user.to_owned();
            tokio::task::spawn_blocking(move || login_csrf(&b, &u, PW))
                .await
                .unwrap()
        };
        let (mut ws, _) = open(cookie.clone(), None).await.unwrap();
        // Open and quiet (the camera never answers).
        assert!(tokio::time::timeout(Duration::from_millis(700), ws.next())
            .await
            .is_err());
        let end = std::sync::Arc::new(end);
        let (code, text) = {
            let end = end.clone();
            tokio::task::spawn_blocking(move || end(&cookie, &csrf))
                .await
                .unwrap()
        };
        assert!(matches!(code, 200 | 204), "{what}: {code} {text}");
        let t = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: live view still open after 60 s\n{}", diagnostics()));
        eprintln!(
            "{what}: live view closed after {:?} ({closed:?})",
            t.elapsed()
        );
        assert_eq!(closed, Some(1008), "{what}");
    }
}

/// A download over TLS that has sent its head and part of its body: the stream,
/// the body's length and how much of the body has arrived.
struct Download {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    len: usize,
    got: usize,
}

impl Download {
    /// Asks `server` for `path` with `cookie` on a connection with a small receive
    /// buffer (so what the kernel holds for the client stays small next to the
    /// body), and reads the head (200 with a length).
    fn start(server: std::net::SocketAddr, data: &Path, cookie: &str, path: &str) -> Download {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(64 << 10).unwrap();
        let tcp = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(sock.connect(server))
            .unwrap()
            .into_std()
            .unwrap();
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(tls_client(data), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        write!(
            tls,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n"
        )
        .unwrap();
        tls.flush().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 16 << 10];
        let end = loop {
            let n = tls.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "closed before the head: {}",
                String::from_utf8_lossy(&head)
            );
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_lowercase();
        assert!(text.starts_with("http/1.1 200"), "{text}");
        let len = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no length: {text}"));
        Download {
            tls,
            len,
            got: head.len() - end,
        }
    }

    /// Reads like a player on a slow link (about 640 kB/s) for `time`.
    fn read_slowly(&mut self, time: Duration) {
        let t = Instant::now();
        let mut buf = vec![0u8; 32 << 10];
        while t.elapsed() < time {
            match self.tls.read(&mut buf) {
                Ok(n) if n > 0 => self.got += n,
                r => panic!("the download ended early after {} bytes: {r:?}", self.got),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads as fast as it can until the server ends the download (a clean end or
    /// a cut); how long that took. Panics if it is still going after `limit`.
    fn read_to_end(&mut self, limit: Duration, what: &str) -> Duration {
        let t = Instant::now();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match self.tls.read(&mut buf) {
                Ok(0) => return t.elapsed(),
                Ok(n) => self.got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return t.elapsed(),
            }
            assert!(
                t.elapsed() < limit,
                "{what}: download still going after {limit:?} ({} of {} bytes)\n{}",
                self.got,
                self.len,
                diagnostics()
            );
        }
    }
}

/// Over TLS: a running download stops when its session ends (issue 10), by
/// logout (a long export file), by a change of the user's cameras and by removal
/// of the user (a long `video.mp4`; transcodes and `package.zip` go through the
/// same `web::revocation::while_valid`). The client reads at a player's pace, the
/// session ends, and the download is cut within a few of its chunks, far short
/// of its length; without the cut the rest of the body arrives (the session is
/// checked when the download starts). Meanwhile, on the same server: a
/// connection that finishes its TLS handshake and then says nothing is closed
/// (finding 1), and the export's files are private (finding 8).
#[test]
fn over_tls_downloads_end_with_their_session_and_idle_connections_close() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Footage that compresses badly (noise), so six seconds are a body of tens
    // of MB, much more than the sockets buffer. Written and indexed as
    // `cleannvr check --repair` would, before the server starts: a camera
    // would take minutes to record as much.
    {
        let store = cleannvr::store::Store::open(&data).unwrap();
        media::segment_of(
            &store,
            "gate",
            0.0,
            6,
            media::Codec::H264,
            "color=c=gray:s=640x360:r=25:d=6,noise=alls=100:allf=t",
            false,
        );
    }
    let cfg = dir.path().join("cleannvr.toml");
    // TLS on (the default), unlike `plain_server`.
    let text = config(dir.path(), 60, GATE).replace("tls = false\n", "");
    assert!(!text.contains("tls"), "{text}");
    std::fs::write(&cfg, text).unwrap();
    add_user(&cfg, "root", "admin", PW);
    add_user(&cfg, "olive", "operator", PW);
    for u in ["carol", "dave"] {
        add_user(&cfg, u, "viewer", PW);
    }
    let nvr = Nvr::start(cfg, &["run"]);
    assert!(nvr.http.starts_with("https://"), "{}", nvr.http);
    let base = nvr.http.clone();
    let server: std::net::SocketAddr = host_of(&nvr).parse().unwrap();

    // Finding 1: after the handshake, silence is not a way to hold a slot.
    let idle = {
        let tls = tls_client(&data);
        std::thread::spawn(move || {
            let mut tcp = TcpStream::connect(server).unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut conn = rustls::ClientConnection::new(tls, name).unwrap();
            while conn.is_handshaking() || conn.wants_write() {
                conn.complete_io(&mut tcp).unwrap();
            }
            // The server's header timeout is 10 s; this allows four times that.
            wait_closed(tcp, Duration::from_secs(40), "an idle TLS connection")
        })
    };

    // An export of the six seconds, by an operator.
    let olive = HttpSession::login(&base, "olive", PW);
    let (code, job) = olive.send(
        "POST",
        "/api/exports",
        &serde_json::json!({"cameras": ["gate"], "start": media::rfc(0.0), "end": media::rfc(6.0),
            "reason": "issue 10", "recipient": "PC 1"}),
    );
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = wait_for(Duration::from_secs(120), "the export to finish", || {
        let j = olive.json(&format!("/api/exports/{id}"));
        assert_ne!(j["status"], "failed", "{j}");
        (j["status"] == "done").then_some(j)
    });
    let export_file = done["files"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|f| f["url"].as_str().filter(|u| u.ends_with(".mp4")))
        .unwrap_or_else(|| panic!("no video in {done}"))
        .to_owned();
    // Finding 8: what the server writes is for its own user only.
    assert_private(&data.join(".exports"));

    let video = format!(
        "/api/cameras/gate/video.mp4?start={}&end={}",
        media::rfc(0.0),
        media::rfc(6.0)
    );
    let (root, root_csrf) = login_csrf(&base, "root", PW);
    type End<'a> = Box<dyn Fn(&str, &str) -> (u16, String) + 'a>;
    let cases: Vec<(&str, &str, &str, End)> = vec![
        (
            "logout",
            "olive",
            export_file.as_str(),
            Box::new(|c: &str, t: &str| {
                http(&base, "POST", "/api/logout", Some(c), Some(t), None, &[])
            }),
        ),
        (
            "camera scope change",
            "dave",
            video.as_str(),
            Box::new(|_: &str, _: &str| {
                let body = Some(r#"{"cameras": []}"#);
                http(
                    &base,
                    "PUT",
                    "/api/users/dave",
                    Some(&root),
                    Some(&root_csrf),
                    body,
                    &[],
                )
            }),
        ),
        (
            "user removal",
            "carol",
            video.as_str(),
            Box::new(|_: &str, _: &str| {
                http(
                    &base,
                    "DELETE",
                    "/api/users/carol",
                    Some(&root),
                    Some(&root_csrf),
                    None,
                    &[],
                )
            }),
        ),
    ];
    for (what, user, path, end) in cases {
        let (cookie, csrf) = login_csrf(&base, user, PW);
        let mut dl = Download::start(server, &data, &cookie, path);
        assert!(dl.len > 8 << 20, "{what}: a body of only {} bytes", dl.len);
        dl.read_slowly(Duration::from_millis(1500));
        let before = dl.got;
        let (code, text) = end(&cookie, &csrf);
        assert!(matches!(code, 200 | 204), "{what}: {code} {text}");
        // The player goes on at its pace past the server's next check
        // (`CHECK_EVERY`, 0.5 s), then reads all it can.
        dl.read_slowly(Duration::from_millis(1500));
        let took = dl.read_to_end(Duration::from_secs(60), what);
        eprintln!(
            "{what}: {before} bytes before, {} of {} in all; ended {took:?} into the drain",
            dl.got, dl.len
        );
        assert!(
            dl.got < dl.len,
            "{what}: the whole download ({} bytes) arrived after the session ended",
            dl.len
        );
    }
    let took = idle.join().unwrap();
    eprintln!("an idle TLS connection was closed after {took:?}");
}

#[test]
fn data_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // An older install left the directory open to everyone.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut nvr = plain_server(dir.path());
    let base = nvr.http.clone();
    let (c, t) = login_csrf(&base, "root", PW);
    // Something written while running: an audit entry, a session.
    let (code, _) = http(&base, "POST", "/api/logout", Some(&c), Some(&t), None, &[]);
    assert_eq!(code, 204);
    nvr.stop();
    assert_private(&data);
}

/// Every directory under `root` is 0700 and every file 0600 (or stricter).
fn assert_private(root: &Path) {
    let mut stack = vec![root.to_owned()];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
        seen += 1;
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen > 3, "checked {seen} paths");
}

/// How long the flood lasts: longer than every server timeout, so held
/// connections are closed and reopened at least once.
const FLOOD: Duration = Duration::from_secs(30);
/// The attacker's address (all of 127/8 is loopback).
const ATTACKER: &str = "127.0.0.2";

/// Connects from [`ATTACKER`], or `None` if refused or slow.
async fn attacker_connect(server: std::net::SocketAddr) -> Option<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind(format!("{ATTACKER}:0").parse().unwrap()).ok()?;
    tokio::time::timeout(Duration::from_secs(5), sock.connect(server))
        .await
        .ok()?
        .ok()
}

/// Holds connections open until `stop`, reopening each one the server
/// closes after a pause. With `tls`, each connection finishes its TLS
/// handshake and then says nothing; without, it never starts one.
/// Returns how many connections were opened.
async fn hold(
    server: std::net::SocketAddr,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    stop: tokio::time::Instant,
) -> u32 {
    use tokio::io::AsyncReadExt;
    let mut opened = 0;
    while tokio::time::Instant::now() < stop {
        if let Some(sock) = attacker_connect(server).await {
            opened += 1;
            let wait_eof = async {
                let mut buf = [0u8; 512];
                match &tls {
                    None => {
                        let mut s = sock;
                        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                    }
                    Some(cfg) => {
                        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                        let c = tokio_rustls::TlsConnector::from(cfg.clone());
                        if let Ok(mut s) = c.connect(name, sock).await {
                            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                        }
                    }
                }
            };
            tokio::select! {
                _ = wait_eof => {}
                _ = tokio::time::sleep_until(stop) => break,
            }
        }
        // Reopen after a pause, jittered so the flood does not beat in step.
        let pause = 1000 + rand::random::<u64>() % 1000;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    opened
}

/// A TLS client that trusts the server's self-signed certificate in `<data>/tls/`.
fn tls_client(data: &Path) -> std::sync::Arc<rustls::ClientConfig> {
    let cert = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(data.join("tls/cert.pem")).unwrap()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(cleannvr::web::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let ns = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    cleannvr::clock::rfc3339(ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_locks_nobody_out_and_recording_continues() {
    // The test itself holds 3,000 sockets.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\nsegment_seconds = 2\nmin_free_bytes = 0\n\
         export_max_bytes = 0\n\
         [[camera]]\nid = \"cam\"\nurl = \"{}\"\n",
        dir.path().join("data").display(),
        gst.url("h264aac")
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", PW);
    // A typical service limit: 1,024 descriptors, soft and hard.
    let nvr = Nvr::start_with(cfg, &["run"], |cmd| {
        use std::os::unix::process::CommandExt;
        unsafe {
            cmd.pre_exec(|| {
                let r = libc::rlimit {
                    rlim_cur: 1024,
                    rlim_max: 1024,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert!(nvr.http.starts_with("https://"), "{}", nvr.http);
    let server: std::net::SocketAddr = host_of(&nvr).parse().unwrap();
    let base = nvr.http.clone();
    let data = dir.path().join("data");
    wait_for(Duration::from_secs(150), "a first recorded segment", || {
        (!files(&data, ".mp4").is_empty()).then_some(())
    });

    // A connection that never starts its handshake is closed on its own.
    let took = tokio::task::spawn_blocking(move || {
        wait_closed(
            TcpStream::connect(server).unwrap(),
            Duration::from_secs(30),
            "a silent TLS connection",
        )
    })
    .await
    .unwrap();
    eprintln!("silent connection to the TLS port closed after {took:?}");

    let tls = tls_client(&data);

    let flood_start = std::time::SystemTime::now();
    let stop = tokio::time::Instant::now() + FLOOD;
    let mut attackers = tokio::task::JoinSet::new();
    // 3,000 in all, far beyond the 1,024 descriptors; 800 of them finish TLS
    // handshakes (each reopen costs both sides a handshake: 2,000 saturated
    // both cores of a loaded CI machine, so the camera's own peer starved and
    // the test measured the machine rather than cleannvr).
    for i in 0..3000 {
        let tls = (i < 800).then(|| tls.clone());
        attackers.spawn(hold(server, tls, stop));
    }
    // Give the flood a few seconds to fill every slot it can.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Meanwhile a fresh client (another address: 127.0.0.1) gets in.
    let probe = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let (cookie, _) = login_csrf(&base, "root", PW);
            let login = t.elapsed();
            let (code, _) = http(&base, "GET", "/api/me", Some(&cookie), None, None, &[]);
            assert_eq!(code, 200);
            let mut health = Vec::new();
            while health.len() < 15 {
                let t = Instant::now();
                let (code, body) = http(&base, "GET", "/api/health", None, None, None, &[]);
                assert_eq!(code, 200, "health during the flood: {body}");
                health.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(500));
            }
            (login, health, cookie)
        })
    };
    let (login, mut health, cookie) = probe.await.unwrap();
    let mut opened = 0;
    while let Some(n) = attackers.join_next().await {
        opened += n.unwrap();
    }
    let flood_end = std::time::SystemTime::now();
    health.sort();
    eprintln!(
        "flood: {opened} attacker connections opened in {FLOOD:?}; fresh client login {login:?}, \
         /api/health median {:?}, max {:?} (over {} requests)",
        health[health.len() / 2],
        health.last().unwrap(),
        health.len()
    );

    // No gap in the recording across the flood: wait until the segment
    // holding the flood's end is indexed, then ask for gaps.
    let (from, to) = (
        rfc3339(flood_start - Duration::from_secs(1)),
        rfc3339(flood_end),
    );
    let path = format!("/api/cameras/cam/recordings?start={from}&end={to}");
    let rec = wait_for(Duration::from_secs(120), "the flood's last segment", || {
        let (code, body) = http(&base, "GET", &path, Some(&cookie), None, None, &[]);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let last_end = v["ranges"].as_array()?.last()?["end"].as_str()?.to_owned();
        (last_end >= to).then_some(v)
    });
    let (_, metrics) = http(&base, "GET", "/metrics", Some(&cookie), None, None, &[]);
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cleannvr_web_connections_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refused counter in {metrics}"));
    eprintln!("connections refused by the budget: {refused}");
    assert!(refused > 0, "the flood was shed and counted");
    let gaps = rec["gaps"].as_array().unwrap();
    eprintln!(
        "recording across the flood: ranges {} gaps {gaps:?}",
        rec["ranges"]
    );
    assert!(gaps.is_empty(), "recording gaps during the flood: {gaps:?}");
    assert_eq!(
        nvr.log.count("out of file descriptors"),
        0,
        "{}",
        nvr.log.text()
    );
    assert_eq!(
        nvr.log.count("Too many open files"),
        0,
        "{}",
        nvr.log.text()
    );
    assert_private(&data);
}

/// The end of the camera's latest recorded range (ns; 0 if none).
fn last_recorded_end(who: &HttpSession) -> i64 {
    let r = who.json("/api/cameras/cam/recordings");
    r["ranges"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|r| cleannvr::clock::parse_rfc3339(r["end"].as_str()?))
        .unwrap_or(0)
}

/// A client that asks for more video than the socket buffers hold and then stops
/// reading (a hung player, or an attacker pinning a connection and an open file) is
/// cut once its writes have made no progress for `write_stall_seconds` (3 s here; 30 s
/// by default), over real TCP and TLS; meanwhile other clients are served and
/// recording goes on. `ss` is the outside judge of the server's side of the socket.
#[test]
fn a_client_that_stops_reading_is_cut_after_the_stall_time() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nwrite_stall_seconds = 3\n[storage]\ndir = \"{}\"\n\
         segment_seconds = 2\nmin_free_bytes = 0\nexport_max_bytes = 0\n\
         [[camera]]\nid = \"cam\"\nurl = \"{}\"\n",
        data.display(),
        gst.url("h264aac")
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", PW);
    let nvr = Nvr::start(cfg, &["run"]);
    assert!(nvr.http.starts_with("https://"), "{}", nvr.http);
    assert!(
        nvr.log.count("write_stall_s=3") == 1,
        "the configured stall time is not in force: {}",
        nvr.log.text()
    );
    let base = nvr.http.clone();
    let admin = HttpSession::login(&base, "root", PW);
    let (start, end) = recorded_range(&nvr, &admin, "cam", 4_000_000_000);
    let path = format!(
        "/api/cameras/cam/video.mp4?start={}&end={}",
        cleannvr::clock::rfc3339(start),
        cleannvr::clock::rfc3339(end)
    );
    let (code, whole) = admin.get(&path);
    assert_eq!(code, 200);
    // Enough copies of it, asked for at once on one connection (HTTP/1.1 pipelining),
    // to overfill both sides' socket buffers (a few MiB on loopback).
    let copies = (16 << 20) / whole.len() + 1;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {}\r\n\r\n",
        admin.cookie
    );

    let server: std::net::SocketAddr = host_of(&nvr).parse().unwrap();
    let tcp = TcpStream::connect(server).unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls_client(&data), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.repeat(copies).as_bytes()).unwrap();
    tls.flush().unwrap();
    let asked = Instant::now();
    let recorded_then = last_recorded_end(&admin);

    // The server's side fills up and stays stuck ...
    let queued = wait_for(
        Duration::from_secs(60),
        "the server's send queue to the client that stopped reading to fill",
        || server_send_queue(server.port(), client_port).filter(|q| *q > 0),
    );
    eprintln!(
        "stuck with {queued} bytes queued after {:?}",
        asked.elapsed()
    );
    // ... meanwhile another client is served in full ...
    let (code, again) = admin.get(&path);
    assert_eq!(code, 200);
    assert_eq!(again.len(), whole.len());
    // ... until the server closes its side: the socket leaves ESTABLISHED.
    let cut = wait_for(
        Duration::from_secs(25),
        "the server to cut the client that stopped reading (3 s stall)",
        || {
            server_send_queue(server.port(), client_port)
                .is_none()
                .then(|| asked.elapsed())
        },
    );
    eprintln!("cut after {cut:?}");
    assert!(
        cut >= Duration::from_secs(3),
        "cut before the stall time: {cut:?}"
    );

    // The client, reading now, gets what was already on its way and then the end,
    // far short of what it asked for.
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match tls.read(&mut buf) {
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => got += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the cut connection is still open after {got} bytes")
            }
            Err(e) => break e.to_string(),
        }
    };
    eprintln!(
        "the stalled client read {got} of {} bytes, then: {ended}",
        copies * whole.len()
    );
    assert!(
        got < copies * whole.len(),
        "{got} bytes: the whole answer arrived"
    );

    // Recording went on throughout.
    let recorded_now = wait_for(
        Duration::from_secs(120),
        "recording to go on past the stalled client",
        || {
            let end = last_recorded_end(&admin);
            (end > recorded_then).then_some(end)
        },
    );
    assert!(recorded_now > recorded_then);
    let (code, _) = http(&base, "GET", "/api/health", None, None, None, &[]);
    assert_eq!(code, 200);
}
