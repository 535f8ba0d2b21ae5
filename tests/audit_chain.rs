//! The audit chain cannot be quietly rewritten by someone who can write the index but not
//! read `keys/audit.key`: an entry edited directly in the sled database, with the whole
//! chain re-hashed after it, fails `cleannvr audit verify` and `GET /api/audit/verify`.
//! A chain from before the key existed is migrated: its old entries keep verifying by
//! hash, new ones are keyed, and verify says so.
//!
//! The attacker works on the database with sled itself (the index's `audit` tree) and the
//! public hash rule (`Entry::compute_hash`), not through any cleannvr write path.

mod common;

use cleannvr::audit::Entry;
use common::{cli, HttpSession, Nvr};

const ADMIN_PW: &str = "admin password 1";

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("cleannvr.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\nmin_free_bytes = 0\n\
             [[camera]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1:9/a\"\nenabled = false\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    cfg
}

/// Starts the server, logs the admin in twice (two more entries), checks the API's
/// verdict, stops it.
fn some_activity(cfg: &std::path::Path) -> serde_json::Value {
    let mut nvr = Nvr::start(cfg.to_owned(), &["run"]);
    let _ = HttpSession::login(&nvr.http, "admin", ADMIN_PW);
    let admin = HttpSession::login(&nvr.http, "admin", ADMIN_PW);
    let v = admin.json("/api/audit/verify");
    nvr.stop();
    v
}

/// Opens the index's `audit` tree with sled directly (the server must be stopped).
fn audit_tree(dir: &std::path::Path) -> (sled::Db, sled::Tree) {
    let db = sled::Config::new()
        .path(dir.join("data").join("index"))
        .open()
        .unwrap();
    let tree = db.open_tree("audit").unwrap();
    (db, tree)
}

/// Applies `edit` to entry `seq` and re-hashes it and every later entry, so the hash
/// chain is consistent again; MACs are left as they are (the attacker has no key).
fn edit_and_rehash(dir: &std::path::Path, seq: u64, edit: impl Fn(&mut Entry)) {
    let (db, tree) = audit_tree(dir);
    let mut prev: Option<String> = None;
    for item in tree.range(seq.to_be_bytes()..) {
        let (k, v) = item.unwrap();
        let mut e: Entry = serde_json::from_slice(&v).unwrap();
        if let Some(p) = prev {
            e.prev = p;
        } else {
            edit(&mut e);
        }
        e.hash = e.compute_hash();
        tree.insert(k, serde_json::to_vec(&e).unwrap()).unwrap();
        prev = Some(e.hash);
    }
    db.flush().unwrap();
}

#[test]
fn an_edited_and_rehashed_entry_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    common::add_user(&cfg, "admin", "admin", ADMIN_PW);
    let v = some_activity(&cfg);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["keyed_from"], 0, "{v}");
    let (ok, out) = cli(&cfg, &["audit", "verify"], "");
    assert!(ok && out.contains("intact: 3 entries"), "{out}");
    assert!(
        out.contains("entries from 0 on carry an HMAC-SHA256"),
        "{out}"
    );

    // Entry 1 (the first login) now says someone else logged in, and everything after
    // it is re-hashed: a consistent chain by SHA-256 alone.
    edit_and_rehash(dir.path(), 1, |e| {
        assert_eq!(e.actor, "admin");
        e.actor = "somebody-else".into();
    });
    let (ok, out) = cli(&cfg, &["audit", "verify"], "");
    assert!(!ok, "{out}");
    assert!(
        out.contains("broken at entry 1") && out.contains("MAC"),
        "{out}"
    );
    // The running server says the same.
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let admin = HttpSession::login(&nvr.http, "admin", ADMIN_PW);
    let v = admin.json("/api/audit/verify");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["broken"]["seq"], 1, "{v}");
    nvr.stop();
}

#[test]
fn an_unkeyed_chain_is_migrated_and_its_old_entries_stay_protected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    common::add_user(&cfg, "admin", "admin", ADMIN_PW);
    common::add_user(&cfg, "op", "operator", "operator password 1");
    // Make it the chain an older cleannvr left: no MACs, no key file.
    {
        let (db, tree) = audit_tree(dir.path());
        for item in tree.iter() {
            let (k, v) = item.unwrap();
            let mut e: Entry = serde_json::from_slice(&v).unwrap();
            e.mac = None;
            tree.insert(k, serde_json::to_vec(&e).unwrap()).unwrap();
        }
        db.flush().unwrap();
    }
    std::fs::remove_file(dir.path().join("data/keys/audit.key")).unwrap();

    // The server keys the chain from the next entry on.
    let v = some_activity(&cfg);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["keyed_from"], 2, "{v}");
    let (ok, out) = cli(&cfg, &["audit", "verify"], "");
    assert!(ok && out.contains("intact: 4 entries"), "{out}");
    assert!(
        out.contains("entries 0 to 1 were written before the audit key existed"),
        "{out}"
    );
    // An old, unkeyed entry edited and everything re-hashed: caught at the first keyed one.
    edit_and_rehash(dir.path(), 0, |e| e.detail = "role=viewer".into());
    let (ok, out) = cli(&cfg, &["audit", "verify"], "");
    assert!(!ok, "{out}");
    assert!(
        out.contains("broken at entry 2") && out.contains("MAC"),
        "{out}"
    );
}

#[test]
fn a_lost_key_file_is_reported_and_older_keyed_entries_no_longer_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    common::add_user(&cfg, "admin", "admin", ADMIN_PW);
    let v = some_activity(&cfg);
    assert_eq!(v["ok"], true, "{v}");
    let key = dir.path().join("data/keys/audit.key");
    std::fs::remove_file(&key).unwrap();

    // The server makes a new key, says loudly that the old one is gone, and records on.
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let line = nvr
        .log
        .find("audit key file is missing but the audit log has keyed entries")
        .unwrap_or_else(|| panic!("no error about the lost key: {}", nvr.log.text()));
    assert!(line.contains("ERROR"), "{line}");
    let _ = HttpSession::login(&nvr.http, "admin", ADMIN_PW);
    nvr.stop();
    assert!(key.exists(), "a new key file was made");

    // The entries keyed by the lost key cannot vouch for themselves any more.
    let (ok, out) = cli(&cfg, &["audit", "verify"], "");
    assert!(!ok, "{out}");
    assert!(
        out.contains("broken at entry 0") && out.contains("key file was replaced"),
        "{out}"
    );
}
