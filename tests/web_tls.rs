//! The real server over real TLS: `cleannvr run` as a process, a rustls
//! client that trusts only the certificate whose fingerprint the server
//! logged, the user CLI, and `audit verify` catching an edited entry.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use cleannvr::web::tls::{fingerprint, provider};
use common::{cli, wait_for, Nvr};

/// One camera that never answers: `run` without cameras would fall back
/// to the demo camera (and its generated admin), which is not under test here.
fn config(dir: &Path, tls: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{tls}\n[storage]\ndir = \"{}\"\nmin_free_bytes = 0\n\
         [[camera]]\nid = \"gate\"\nurl = \"rtsp://127.0.0.1:9/unreachable\"\n",
        dir.join("data").display()
    )
}

fn addr_of(nvr: &Nvr) -> String {
    nvr.http
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("expected https, got {}", nvr.http))
        .to_owned()
}

fn logged_fingerprint(nvr: &Nvr) -> String {
    let line = wait_for(Duration::from_secs(60), "fingerprint log line", || {
        nvr.log.find("SHA-256 fingerprint ")
    });
    line.rsplit("fingerprint ")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

struct Http {
    status: u16,
    head: String,
    body: String,
}

impl Http {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A TLS client that trusts exactly `trusted` and reports the certificate
/// the server presented.
fn client(trusted: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One HTTP/1.1 request over TLS. Returns the response and the SHA-256 of
/// the server's leaf certificate.
fn https(
    cfg: &Arc<rustls::ClientConfig>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(Http, String)> {
    let conn =
        rustls::ClientConnection::new(cfg.clone(), ServerName::try_from("127.0.0.1").unwrap())
            .map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    tls.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers may close without close_notify after `Connection: close`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let leaf = tls.conn.peer_certificates().unwrap()[0].clone();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap();
    Ok((
        Http {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        },
        fingerprint(&leaf),
    ))
}

fn pem_cert(path: &Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).unwrap()
}

#[test]
fn self_signed_tls_cli_users_login_and_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg_path, config(dir.path(), "")).unwrap();

    // An admin made with the CLI before the first start (password on stdin).
    let (ok, out) = cli(
        &cfg_path,
        &["user", "add", "chief", "--role", "admin"],
        "s3cure-passphrase\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(
        &cfg_path,
        &["user", "add", "x", "--role", "root"],
        "s3cure-passphrase\n",
    );
    assert!(!ok && out.contains("role"), "{out}");
    let (ok, out) = cli(&cfg_path, &["user", "list"], "");
    assert!(ok && out.contains("chief\tadmin"), "{out}");

    let mut nvr = Nvr::start(cfg_path.clone(), &["run"]);
    let addr = addr_of(&nvr);
    let fp = logged_fingerprint(&nvr);
    // The database admits one process: while the server runs, the CLI goes
    // through its control socket instead of opening the index.
    let (ok, out) = cli(&cfg_path, &["user", "list"], "");
    assert!(ok && out.contains("chief\tadmin"), "{out}");
    let cert = pem_cert(&dir.path().join("data/tls/cert.pem"));
    assert_eq!(
        fingerprint(&cert),
        fp,
        "logged fingerprint is the stored certificate's"
    );
    let tls = client(&cert);

    let (health, seen) = https(&tls, &addr, "GET", "/api/health", &[], None).unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(seen, fp, "the server presented the logged certificate");
    // Security headers over real TLS; no HSTS with the self-signed certificate
    // (a browser would pin a certificate it only accepted as an exception).
    let head = health.head.to_ascii_lowercase();
    for h in [
        "x-frame-options: deny",
        "cross-origin-opener-policy: same-origin",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
        "content-security-policy: default-src 'self'",
    ] {
        assert!(head.contains(h), "{h} missing: {}", health.head);
    }
    assert!(
        !head.contains("strict-transport-security"),
        "HSTS with the self-signed certificate: {}",
        health.head
    );
    // The generated certificate: ECDSA P-256 for localhost, 127.0.0.1 and ::1
    // (read by openssl, not by our code), its key readable by the owner only.
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.path().join("data/tls/cert.pem"))
        .output()
        .expect("running openssl");
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "id-ecPublicKey",
        "prime256v1",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(
            text.contains(needle),
            "{needle} not in the certificate:\n{text}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data/tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");

    // A client that does not trust this certificate fails the handshake.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let stranger = client(other.cert.der());
    assert!(https(&stranger, &addr, "GET", "/api/health", &[], None).is_err());
    // Plain HTTP on the TLS port gets no API answer.
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    // The server answers with a TLS alert and closes (a reset is as good); a
    // read that times out would mean the server hung on the garbage.
    match plain.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("plain HTTP on the TLS port: {e}"),
    }
    assert!(!String::from_utf8_lossy(&buf).contains("\"ok\""));

    // A wrong password (never logged), then the right one.
    let wrong = r#"{"username":"chief","password":"Wr0ng-Passw0rd-Marker"}"#;
    let (r, _) = https(&tls, &addr, "POST", "/api/login", &[], Some(wrong)).unwrap();
    assert_eq!(r.status, 401);
    let good = r#"{"username":"chief","password":"s3cure-passphrase"}"#;
    let (r, _) = https(&tls, &addr, "POST", "/api/login", &[], Some(good)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie_line = r
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap()
        .to_owned();
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("Secure"));
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();
    let (me, _) = https(&tls, &addr, "GET", "/api/me", &[("Cookie", &cookie)], None).unwrap();
    assert_eq!(me.json()["user"]["name"], "chief");
    let (audit, _) = https(
        &tls,
        &addr,
        "GET",
        "/api/audit",
        &[("Cookie", &cookie)],
        None,
    )
    .unwrap();
    let actions: Vec<_> = audit.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, vec!["login", "login_failed", "user_add"]);
    let (out, _) = https(
        &tls,
        &addr,
        "POST",
        "/api/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    )
    .unwrap();
    assert_eq!(out.status, 204);
    nvr.stop();
    assert!(
        !nvr.log.text().contains("Wr0ng-Passw0rd-Marker"),
        "a password reached the log"
    );
    assert!(!nvr.log.text().contains("s3cure-passphrase"));

    // Restart: same certificate, no regeneration.
    let mut nvr = Nvr::start(cfg_path.clone(), &["run"]);
    assert_eq!(logged_fingerprint(&nvr), fp);
    assert!(nvr.log.text().contains("(loaded)"));
    nvr.stop();

    // The chain verifies; then an attacker edits an entry in the database.
    let (ok, out) = cli(&cfg_path, &["audit", "verify"], "");
    assert!(ok && out.contains("intact: 4 entries"), "{out}");
    {
        let store = cleannvr::store::Store::open(&dir.path().join("data")).unwrap();
        let log = cleannvr::audit::AuditLog::open(store.db(), store.dir()).unwrap();
        let raw = String::from_utf8(log.raw(1).unwrap().unwrap()).unwrap();
        log.tamper(1, raw.replace("login_failed", "logout").as_bytes())
            .unwrap();
    }
    let (ok, out) = cli(&cfg_path, &["audit", "verify"], "");
    assert!(!ok, "{out}");
    assert!(out.contains("broken at entry 1"), "{out}");
}

#[test]
fn configured_certificate_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "nvr.example".into()]).unwrap();
    let cert = dir.path().join("site.crt");
    let key = dir.path().join("site.key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let toml = config(
        dir.path(),
        &format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"",
            cert.display(),
            key.display()
        ),
    );
    let mut nvr = Nvr::run(dir.path(), &toml);
    let want = fingerprint(ck.cert.der());
    assert_eq!(logged_fingerprint(&nvr), want);
    let (r, seen) = https(
        &client(ck.cert.der()),
        &addr_of(&nvr),
        "GET",
        "/api/health",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(seen, want);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "HSTS with the operator's certificate: {}",
        r.head
    );
    // No admin yet: the UI shows its first-run setup form, the log the code for it.
    let (ui, _) = https(
        &client(ck.cert.der()),
        &addr_of(&nvr),
        "GET",
        "/",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(ui.status, 200, "{} {}", ui.head, ui.body);
    assert!(ui.body.contains("id=\"setup\""));
    let line = nvr.log.find("one-time setup code").unwrap();
    assert!(
        line.contains(&format!("https://{}/", addr_of(&nvr))),
        "{line}"
    );
    assert!(
        !dir.path().join("data/tls").exists(),
        "nothing generated when files are given"
    );
    nvr.stop();
}

#[test]
fn demo_prints_an_admin_password_once_and_it_logs_in_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let args = [
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
    ];
    let nocfg = dir.path().join("none.toml");
    let mut nvr = Nvr::start(nocfg.clone(), &args);
    let addr = addr_of(&nvr);
    let line = wait_for(Duration::from_secs(60), "demo password", || {
        nvr.log.find("demo login: user admin password ")
    });
    let pw = line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(pw.len(), 20);
    let tls = client(&pem_cert(&data.join("tls/cert.pem")));
    let body = format!(r#"{{"username":"admin","password":"{pw}"}}"#);
    let (r, _) = https(&tls, &addr, "POST", "/api/login", &[], Some(&body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    nvr.stop();

    // Second start on the same data: the admin stays, no new password.
    let mut nvr = Nvr::start(nocfg, &args);
    wait_for(Duration::from_secs(60), "admin exists note", || {
        nvr.log.find("admin user already exists")
    });
    assert_eq!(nvr.log.count("demo login:"), 0);
    let addr = addr_of(&nvr);
    let (r, _) = https(&tls, &addr, "POST", "/api/login", &[], Some(&body)).unwrap();
    assert_eq!(r.status, 200, "the first password still works");
    nvr.stop();
}

/// `run` with no camera configured records the built-in demo camera (and
/// makes the demo admin, printed once); `tls = false` serves plain HTTP and
/// says so in a warning.
#[test]
fn run_without_cameras_records_the_demo_and_tls_off_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut nvr = Nvr::run(dir.path(), &common::config(dir.path(), 2, ""));
    assert!(nvr.http.starts_with("http://"), "{}", nvr.http);
    let warning = nvr
        .log
        .find("TLS is off")
        .unwrap_or_else(|| panic!("no warning for tls = false: {}", nvr.log.text()));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(nvr.log.find("no [[camera]] configured").is_some());
    let line = wait_for(Duration::from_secs(60), "demo password", || {
        nvr.log.find("demo login: user admin password ")
    });
    let pw = line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(pw.len(), 20);
    let cookie = common::login(&nvr.http, "admin", &pw);
    let (status, body) = common::get(&nvr.http, "/api/cameras", &cookie);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"demo1\""));
    let demo = dir.path().join("data/demo1");
    let seg = wait_for(Duration::from_secs(150), "a demo segment", || {
        common::files(&demo, ".mp4").pop()
    });
    nvr.stop();
    assert_eq!(common::decode_errors(&seg), "", "{}", seg.display());
}
