//! `cleannvr health` (the Docker HEALTHCHECK) against a real `cleannvr run`:
//! exit 0 while the server answers over its configured listener (HTTPS with
//! the generated certificate, or plain HTTP), non-zero once it is down, and
//! non-zero when something on the port presents another certificate.

mod common;

use std::path::Path;

use common::*;

fn health(config: &Path) -> (bool, String) {
    cli(config, &["health"], "")
}

/// A config on a fixed free port (health cannot learn a port 0), with the
/// server's own self-signed TLS unless `tls` says otherwise.
fn config_on(dir: &Path, port: u16, tls: &str) -> std::path::PathBuf {
    let toml = config(
        dir,
        10,
        "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\n",
    )
    .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
    .replace("tls = false\n", tls);
    let path = dir.join("cleannvr.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn health_is_zero_while_the_server_answers_and_not_after() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config_on(dir.path(), port, "");

    let (ok, out) = health(&cfg);
    assert!(!ok, "healthy before the server started: {out}");
    assert!(
        out.contains("unhealthy") && out.contains("is cleannvr running?"),
        "{out}"
    );

    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    assert!(nvr.http.starts_with("https://"), "{}", nvr.http);
    let (ok, out) = health(&cfg);
    assert!(ok, "{out}\n--- server ---\n{}", nvr.log.text());
    assert!(
        out.contains(&format!("healthy: cleannvr {}", env!("CARGO_PKG_VERSION")))
            && out.contains(&format!("https://127.0.0.1:{port}/api/health")),
        "{out}"
    );

    // Something else on that port (here: the same server, but the config
    // pins another certificate) is not our server.
    let other = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(other.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(other.path().join("key.pem"), key.serialize_pem()).unwrap();
    let pinned_elsewhere = config_on(
        other.path(),
        port,
        &format!(
            "[server.tls]\ncert = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\n",
            other.path().display()
        ),
    );
    let (ok, out) = health(&pinned_elsewhere);
    assert!(!ok, "a foreign certificate passed: {out}");
    assert!(out.contains("not the one in"), "{out}");

    nvr.stop();
    let (ok, out) = health(&cfg);
    assert!(!ok, "healthy after the server stopped: {out}");
    assert!(out.contains("unhealthy"), "{out}");
}

#[test]
fn health_over_plain_http_and_a_port_it_cannot_know() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config_on(dir.path(), port, "tls = false\n");
    let nvr = Nvr::start(cfg.clone(), &["run"]);
    let (ok, out) = health(&cfg);
    assert!(ok, "{out}\n--- server ---\n{}", nvr.log.text());
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/api/health")),
        "{out}"
    );
    drop(nvr);

    let zero = tempfile::tempdir().unwrap();
    let toml = config(zero.path(), 10, "");
    let path = zero.path().join("cleannvr.toml");
    std::fs::write(&path, toml).unwrap();
    let (ok, out) = health(&path);
    assert!(!ok && out.contains("port 0"), "{out}");
}
