//! The TOTP second factor against the real server over loopback, with every
//! code computed by an outside judge: `oathtool` (Debian's OATH toolkit),
//! not our own function. Covers enrolment, the login step (no code, wrong
//! code, right code, the same code replayed, recovery codes used once),
//! code guesses under the login rate limit, turning it off, the admin
//! enforcement of `[auth] require_totp_for_admins` and `user reset-totp`.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{cli, config, login_with, require_peer, HttpSession, Nvr};
use serde_json::{json, Value};

const ROOT_PW: &str = "root password 1";
const OP_PW: &str = "operator pass 1";

fn have_oathtool() -> bool {
    Command::new("oathtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The RFC 6238 code for `secret` (base32) at `at` seconds, by oathtool.
fn oath(secret: &str, at: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{at}"), secret])
        .output()
        .unwrap();
    assert!(out.status.success(), "oathtool: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A 6-digit code that is not `secret`'s code for any step near now.
fn wrong_code(secret: &str) -> String {
    let t = now_s();
    let near: Vec<String> = (0..5).map(|i| oath(secret, t - 60 + i * 30)).collect();
    (0..10u32)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

fn login(base: &str, name: &str, pw: &str, extra: Value) -> (u16, Value, Option<HttpSession>) {
    let mut body = json!({"username": name, "password": pw});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    login_with(base, &body)
}

/// Starts enrolment and confirms it with oathtool's current code; returns
/// the secret and the recovery codes.
fn enrol(s: &HttpSession, pw: &str) -> (String, Vec<String>) {
    let (st, e) = s.send("POST", "/api/me/totp/enrol", &json!({"password": pw}));
    assert_eq!(st, 200, "{e}");
    let secret = e["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "160-bit secret: {secret}");
    let uri = e["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/cleannvr:") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    let svg = e["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    // Not enabled until confirmed.
    assert_eq!(s.json("/api/me")["totp"]["enabled"], false);
    let (st, r) = s.send(
        "POST",
        "/api/me/totp/confirm",
        &json!({"code": wrong_code(&secret)}),
    );
    assert_eq!(
        (st, r["error"].as_str()),
        (401, Some("totp_invalid")),
        "{r}"
    );
    let (st, r) = s.send(
        "POST",
        "/api/me/totp/confirm",
        &json!({"code": oath(&secret, now_s())}),
    );
    assert_eq!(st, 200, "{r}");
    let codes: Vec<String> = r["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let me = s.json("/api/me");
    assert_eq!(me["totp"]["enabled"], true, "{me}");
    assert_eq!(me["totp"]["recovery_codes_left"], 10, "{me}");
    (secret, codes)
}

#[test]
fn totp_second_factor_end_to_end() {
    if !require_peer(have_oathtool(), "oathtool (Debian package oathtool)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let toml = format!(
        "{}\n[auth]\nrequire_totp_for_admins = true\n",
        config(dir.path(), 60, "")
    );
    std::fs::write(&cfg, toml).unwrap();
    common::add_user(&cfg, "root", "admin", ROOT_PW);
    common::add_user(&cfg, "op", "operator", OP_PW);
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let base = nvr.http.clone();

    // An admin without a second factor gets a session that can only set one up.
    let (st, r, root) = login(&base, "root", ROOT_PW, json!({}));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["totp_enrolment_required"], true, "{r}");
    let root = root.unwrap();
    let (st, body) = root.get("/api/cameras");
    assert_eq!(st, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("totp_enrolment_required"));
    assert_eq!(root.json("/api/me")["totp_enrolment_required"], true);
    // Starting enrolment needs the password again.
    let (st, _) = root.send(
        "POST",
        "/api/me/totp/enrol",
        &json!({"password": "not the password"}),
    );
    assert_eq!(st, 401);
    let (_, _, earlier) = login(&base, "root", ROOT_PW, json!({}));
    let earlier = earlier.unwrap();
    let (secret, recovery) = enrol(&root, ROOT_PW);
    // Enrolled: the same session may now do what an admin does; another
    // opened with the password alone has ended.
    assert_eq!(root.get("/api/cameras").0, 200);
    assert_eq!(
        earlier.get("/api/me").0,
        401,
        "a password-only session outlived enrolment"
    );
    assert_eq!(root.json("/api/me")["totp_enrolment_required"], false);

    // The login step.
    let (st, r, _) = login(&base, "root", ROOT_PW, json!({}));
    assert_eq!(
        (st, r["error"].as_str()),
        (401, Some("totp_required")),
        "{r}"
    );
    let (st, r, _) = login(
        &base,
        "root",
        ROOT_PW,
        json!({"totp_code": wrong_code(&secret)}),
    );
    assert_eq!(
        (st, r["error"].as_str()),
        (401, Some("totp_invalid")),
        "{r}"
    );
    // A right code with a wrong password is still a wrong password.
    let next = oath(&secret, now_s() + 30);
    let (st, r, _) = login(&base, "root", "wrong password!", json!({"totp_code": next}));
    assert_eq!(
        (st, r["error"].as_str()),
        (401, Some("unauthorized")),
        "{r}"
    );
    // The next step's code (the confirming step's is spent) logs in, once.
    let (st, r, s) = login(&base, "root", ROOT_PW, json!({"totp_code": next}));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["totp_enrolment_required"], false);
    assert_eq!(s.unwrap().get("/api/cameras").0, 200);
    let (st, r, _) = login(&base, "root", ROOT_PW, json!({"totp_code": next}));
    assert_eq!(
        (st, r["error"].as_str()),
        (401, Some("totp_invalid")),
        "replayed code: {r}"
    );
    // A recovery code works once, written any way a person might type it.
    let typed = recovery[0].to_uppercase().replace('-', " ");
    let (st, r, _) = login(&base, "root", ROOT_PW, json!({"recovery_code": typed}));
    assert_eq!(st, 200, "{r}");
    let (st, _, _) = login(
        &base,
        "root",
        ROOT_PW,
        json!({"recovery_code": recovery[0]}),
    );
    assert_eq!(st, 401, "spent recovery code");
    assert_eq!(root.json("/api/me")["totp"]["recovery_codes_left"], 9);

    // The secret never comes back, and neither it nor a recovery code is logged.
    for path in ["/api/me", "/api/users", "/api/users/root", "/api/audit"] {
        let (_, body) = root.get(path);
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains(&secret), "{path} shows the secret");
        assert!(!body.contains(&recovery[1]), "{path} shows a recovery code");
    }
    let log = nvr.log.text();
    assert!(!log.contains(&secret) && !log.contains(&recovery[1]));
    let users = root.json("/api/users");
    assert!(users.to_string().contains(r#""totp":true"#), "{users}");
    // Audited: enabling, the recovery code, the failed second factor.
    let enabled = root.audit("totp_enable");
    assert_eq!(enabled.len(), 1, "{enabled:?}");
    let used = root.audit("recovery_code_used");
    assert_eq!(used.len(), 1, "{used:?}");
    assert!(used[0]["detail"].as_str().unwrap().contains("left=9"));
    assert!(root
        .audit("login_failed")
        .iter()
        .any(|e| e["detail"] == "second factor"));

    // An operator: optional, and code guesses share the login rate limit.
    let (st, _, op) = login(&base, "op", OP_PW, json!({}));
    assert_eq!(st, 200);
    let op = op.unwrap();
    assert_eq!(op.get("/api/cameras").0, 200, "not enforced for operators");
    let (op_secret, op_recovery) = enrol(&op, OP_PW);
    let bad = wrong_code(&op_secret);
    // Wrong codes count like wrong passwords: after the free ones, a wait.
    // Keep guessing until the wait left is at least a second (on a loaded
    // machine one argon2 check can outlast the first 1 s wait), then the
    // right code, sent at once, must wait too.
    let mut limited = false;
    for i in 0..10 {
        let (st, r, _) = login(&base, "op", OP_PW, json!({"totp_code": bad}));
        if st == 401 {
            assert_eq!(r["error"], "totp_invalid", "wrong code {i}: {r}");
            continue;
        }
        assert_eq!(st, 429, "wrong code {i}: {r}");
        let wait: u64 = r["detail"]
            .as_str()
            .and_then(|d| d.split("retry in ").nth(1)?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no wait in {r}"));
        if wait >= 2 {
            limited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(limited, "wrong codes were never rate limited");
    let good = oath(&op_secret, now_s() + 30);
    let (st, r, _) = login(&base, "op", OP_PW, json!({"totp_code": good}));
    assert_eq!(st, 429, "the right code must wait like any attempt: {r}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let (st, r, _) = login(&base, "op", OP_PW, json!({"totp_code": good}));
        if st == 200 {
            break;
        }
        assert_eq!(st, 429, "{r}");
        assert!(std::time::Instant::now() < deadline, "still limited: {r}");
    }
    // Turning it off needs the password and a code.
    let (st, r) = op.send("POST", "/api/me/totp/disable", &json!({"password": OP_PW}));
    assert_eq!(
        (st, r["error"].as_str()),
        (401, Some("totp_required")),
        "{r}"
    );
    let (st, _) = op.send(
        "POST",
        "/api/me/totp/disable",
        &json!({"password": "wrong password!", "recovery_code": op_recovery[0]}),
    );
    assert_eq!(st, 401);
    let (st, r) = op.send(
        "POST",
        "/api/me/totp/disable",
        &json!({"password": OP_PW, "recovery_code": op_recovery[0]}),
    );
    assert_eq!(st, 204, "{r}");
    let (st, r, _) = login(&base, "op", OP_PW, json!({}));
    assert_eq!(st, 200, "password alone again: {r}");
    assert_eq!(root.audit("totp_disable").len(), 1);

    // `user reset-totp` (server stopped: the CLI opens the index itself).
    nvr.stop();
    let (ok, out) = cli(&cfg, &["user", "reset-totp", "root"], "");
    assert!(ok && out.contains("second factor removed"), "{out}");
    let (ok, out) = cli(&cfg, &["user", "list"], "");
    assert!(
        ok && out.contains("root\tadmin\tcameras=all\ttotp=off"),
        "{out}"
    );
    let (ok, out) = cli(&cfg, &["user", "reset-totp", "nobody"], "");
    assert!(!ok && out.contains("no such user"), "{out}");
    let nvr = Nvr::start(cfg.clone(), &["run"]);
    let base = nvr.http.clone();
    // The reset ended root's sessions; op's, from before the same restart, lives
    // on (so it is the reset, not the restart, that ended root's).
    let me = |cookie: &str| common::get(&base, "/api/me", cookie).0;
    assert_eq!(me(&op.cookie), 200, "op's session survives a restart");
    assert_eq!(
        me(&root.cookie),
        401,
        "root's session outlived the CLI reset"
    );
    let (st, r, root) = login(&base, "root", ROOT_PW, json!({}));
    assert_eq!(st, 200, "password alone after the reset: {r}");
    assert_eq!(
        r["totp_enrolment_required"], true,
        "and enrolment is due again"
    );
    let root = root.unwrap();
    let (new_secret, _) = enrol(&root, ROOT_PW);
    assert_ne!(new_secret, secret);
    let reset = root.audit("totp_reset");
    assert_eq!(reset.len(), 1, "{reset:?}");
    assert_eq!(reset[0]["actor"], "cli");
    assert_eq!(reset[0]["target"], "root");
}

/// A code for `secret` that the server has not seen, and its step: waits (at
/// most a step) until the clock has reached `used`, the last step spent, then
/// gives the next step's code (accepted for the next minute: the skew is a step).
fn fresh_code(secret: &str, used: u64) -> (String, u64) {
    while now_s() / 30 < used {
        std::thread::sleep(Duration::from_millis(250));
    }
    let step = now_s() / 30 + 1;
    (oath(secret, step * 30), step)
}

/// The secret is sealed in the index (the raw sled row does not hold it; the key
/// file beside the index is 0600), and the second factor still works after a
/// restart and after `backup`, wiping the storage directory, and `restore`.
#[test]
fn totp_secret_is_sealed_at_rest_and_survives_restart_and_restore() {
    if !require_peer(have_oathtool(), "oathtool (Debian package oathtool)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, config(dir.path(), 60, "")).unwrap();
    common::add_user(&cfg, "root", "admin", ROOT_PW);
    let data = dir.path().join("data");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let (st, r, root) = login(&nvr.http, "root", ROOT_PW, json!({}));
    assert_eq!(st, 200, "{r}");
    let (secret, _) = enrol(&root.unwrap(), ROOT_PW);
    // The step the confirming code was for, or a later one.
    let mut used = now_s() / 30;
    nvr.stop();

    let raw = {
        let store = cleannvr::store::Store::open(&data).unwrap();
        let row = store.db().open_tree("users").unwrap().get("root").unwrap();
        String::from_utf8_lossy(&row.unwrap()).into_owned()
    };
    assert!(
        raw.contains("\"totp\""),
        "no second factor in the row: {raw}"
    );
    assert!(
        !raw.contains(&secret),
        "the secret is stored in clear: {raw}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let key = data.join("keys/totp.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let log_in_with_code = |base: &str, used: &mut u64, when: &str| {
        let (code, step) = fresh_code(&secret, *used);
        let (st, r, _) = login(base, "root", ROOT_PW, json!({"totp_code": code}));
        assert_eq!(st, 200, "{when}: {r}");
        *used = step;
    };

    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    log_in_with_code(&nvr.http.clone(), &mut used, "after a restart");
    nvr.stop();

    let backup = dir.path().join("backup.zip");
    let (ok, out) = cli(&cfg, &["backup", "--out", backup.to_str().unwrap()], "");
    assert!(ok, "backup: {out}");
    std::fs::remove_dir_all(&data).unwrap();
    let (ok, out) = cli(&cfg, &["restore", backup.to_str().unwrap()], "");
    assert!(ok, "restore: {out}");
    let nvr = Nvr::start(cfg.clone(), &["run"]);
    log_in_with_code(&nvr.http.clone(), &mut used, "after backup and restore");
    // And the password alone is still not enough.
    let (st, r, _) = login(&nvr.http, "root", ROOT_PW, json!({}));
    assert_eq!(
        (st, r["error"].as_str()),
        (401, Some("totp_required")),
        "{r}"
    );
}

/// Spending a code changes the user's row (the step used), but it is not a
/// change of rights: a live view open elsewhere must keep running when the
/// same user logs in with a code on a second device. Removing the second
/// factor (an admin's `DELETE /api/users/{name}/totp`) ends the view and
/// the user's sessions; the user then logs in with the password alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_login_elsewhere_keeps_live_views_and_a_reset_ends_them() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    if !require_peer(have_oathtool(), "oathtool (Debian package oathtool)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    // One camera that never answers: the view stays open and quiet.
    let gate = "[[camera]]\nid = \"gate\"\nurl = \"rtsp://127.0.0.1:9/unreachable\"\n";
    std::fs::write(&cfg, config(dir.path(), 60, gate)).unwrap();
    common::add_user(&cfg, "root", "admin", ROOT_PW);
    common::add_user(&cfg, "op", "operator", OP_PW);
    let nvr = Nvr::start(cfg, &["run"]);
    let base = nvr.http.clone();
    let (root, op, secret) = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let root = HttpSession::login(&base, "root", ROOT_PW);
            let op = HttpSession::login(&base, "op", OP_PW);
            let (secret, _) = enrol(&op, OP_PW);
            (root, op, secret)
        })
        .await
        .unwrap()
    };
    let ws_url = format!("{}/api/cameras/gate/live", base.replacen("http", "ws", 1));
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", op.cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    // A second device logs in with the next code.
    let (st, r) = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let (st, r, _) = login(
                &base,
                "op",
                OP_PW,
                json!({"totp_code": oath(&secret, now_s() + 30)}),
            );
            (st, r)
        })
        .await
        .unwrap()
    };
    assert_eq!(st, 200, "{r}");
    // The view re-checks every 0.5 s: three seconds of silence is plenty.
    assert!(
        tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .is_err(),
        "the live view ended when the same user logged in elsewhere with a code"
    );

    let (st, r) = {
        let root = HttpSession {
            base: root.base.clone(),
            cookie: root.cookie.clone(),
            csrf: root.csrf.clone(),
        };
        tokio::task::spawn_blocking(move || root.send("DELETE", "/api/users/op/totp", &json!({})))
            .await
            .unwrap()
    };
    assert_eq!(st, 204, "{r}");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("live view still open 10 s after the reset");
    assert_eq!(closed, Some(1008));
    let op_after = tokio::task::spawn_blocking(move || op.get("/api/me").0)
        .await
        .unwrap();
    assert_eq!(op_after, 401, "the reset ends the user's sessions");
    let base2 = base.clone();
    let (st, r, _) = tokio::task::spawn_blocking(move || login(&base2, "op", OP_PW, json!({})))
        .await
        .unwrap();
    assert_eq!(st, 200, "password alone after the admin's reset: {r}");
    let reset = tokio::task::spawn_blocking(move || root.audit("totp_reset"))
        .await
        .unwrap();
    assert_eq!(reset.len(), 1, "{reset:?}");
    assert_eq!(reset[0]["actor"], "root");
    assert_eq!(reset[0]["target"], "op");
    assert_eq!(reset[0]["detail"], "was_enabled=true");
}
