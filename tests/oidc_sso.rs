//! Single sign-on (`[oidc]`) against a real OpenID Provider: panva's
//! OpenID-certified `oidc-provider` from npm on loopback
//! (`tests/ui/oidc_provider.mjs`), driven by Debian's Chromium
//! (`tests/ui/oidc.mjs`): the login page's button, the provider's own login
//! page, and the way back. A person whose group maps lands with the mapped
//! role and camera scope; a tampered `state` and a person whose groups map to
//! nothing are refused in plain words with no session and no account; the
//! local admin keeps working (break-glass). Screenshots go to the target tmpdir.

mod common;

use std::path::Path;

use common::*;

const SECRET: &str = "idp-client-secret-for-tests";

#[test]
fn sign_in_through_a_real_openid_provider() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) || !OidcProvider::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The redirect URL is registered at the provider before cleannvr starts,
    // so cleannvr's port is chosen here.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/api/oidc/callback");
    let idp = OidcProvider::start("cleannvr", SECRET, &redirect);
    let toml = config(
        dir.path(),
        10,
        &format!(
            "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\n\
             [[camera]]\nid = \"b\"\nurl = \"rtsp://127.0.0.1:9/b\"\n\
             [oidc]\nissuer = \"{}\"\nclient_id = \"cleannvr\"\nclient_secret = \"{SECRET}\"\n\
             redirect_url = \"{redirect}\"\nlabel = \"Council account\"\n\
             scopes = [\"profile\", \"groups\"]\n\
             [[oidc.map]]\ngroup = \"cctv-operators\"\nrole = \"operator\"\ncameras = [\"a\"]\n\
             [[oidc.map]]\ngroup = \"it-admins\"\nrole = \"admin\"\n",
            idp.issuer
        ),
    )
    .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let cfg_path = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg_path, &toml).unwrap();
    add_user(&cfg_path, "keeper", "admin", "break glass pw 1");
    let nvr = Nvr::start(cfg_path, &["run"]);
    assert_eq!(nvr.http, base);

    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-oidc");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "screens": screens,
        "label": "Council account",
        "local": ["keeper", "break glass pw 1"],
    })
    .to_string();
    run_ui_script("oidc.mjs", &nvr.http, &cfg, &[], &nvr.log);

    let admin = HttpSession::login(&nvr.http, "keeper", "break glass pw 1");
    // alice's account follows her groups: operator over camera a only.
    let alice = admin.json("/api/users/alice");
    assert_eq!(alice["role"], "operator", "{alice}");
    assert_eq!(alice["cameras"], serde_json::json!(["a"]), "{alice}");
    // Refused people get no account.
    let (status, _) = admin.get("/api/users/mallory");
    assert_eq!(status, 404, "an unmapped person must not get an account");
    // The audit trail: alice's login via OIDC with her subject and role, and both refusals.
    let logins = admin.audit("login");
    assert!(
        logins.iter().any(|e| e["actor"] == "alice"
            && e["detail"].as_str().is_some_and(
                |d| d.contains("role=operator") && d.contains("with=oidc subject=alice")
            )),
        "{logins:?}"
    );
    let failed = admin.audit("login_failed");
    let has = |actor: &str, needle: &str| {
        failed.iter().any(|e| {
            e["actor"] == actor && e["detail"].as_str().is_some_and(|d| d.contains(needle))
        })
    };
    assert!(has("", "state does not match"), "{failed:?}");
    assert!(
        has(
            "mallory",
            "subject=mallory groups=[finance]: no group maps to a role"
        ),
        "{failed:?}"
    );
    // The client secret is never logged.
    assert!(
        !nvr.log.text().contains(SECRET),
        "the client secret was logged"
    );
    println!("screenshots in {}", screens.display());
}
