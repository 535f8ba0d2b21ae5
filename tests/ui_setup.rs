//! First-run setup in Debian's Chromium (playwright-core, `tests/ui/setup.mjs`):
//! `cleannvr run` on a fresh data directory logs a setup code; the browser
//! shows the setup form, and the code with a new name and password lands
//! logged in as the first admin. Screenshots go to the target tmpdir.

mod common;

use std::path::Path;

use common::*;

#[test]
fn first_admin_through_the_setup_page() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !require_browser(&ui) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        dir.path(),
        10,
        "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:9/a\"\n",
    );
    let nvr = Nvr::run(dir.path(), &toml);
    let code = setup_code(&nvr.log);
    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-setup");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "code": code,
        "admin": ["chief", "first admin pass 1"],
        "screens": screens,
    })
    .to_string();
    run_ui_script("setup.mjs", &nvr.http, &cfg, &[], &nvr.log);
    // The browser made the admin: it can log in over the API too.
    let s = HttpSession::login(&nvr.http, "chief", "first admin pass 1");
    assert_eq!(s.json("/api/me")["user"]["role"], "admin");
    println!("screenshots in {}", screens.display());
}
