//! The user CLI as an operator runs it (`user add`, `passwd`, `remove`, `list`,
//! passwords on stdin), the password length bounds at their edges, and the
//! stored hash's argon2id parameters as written in the PHC string any argon2
//! library reads.

mod common;

use std::path::{Path, PathBuf};

use cleannvr::auth::Users;
use cleannvr::store::Store;
use common::cli;

fn setup(dir: &Path) -> PathBuf {
    let config = dir.join("cleannvr.toml");
    std::fs::write(&config, common::config(dir, 2, "")).unwrap();
    config
}

/// Opens the users tree (cleannvr is not running: the database admits one process).
fn users(dir: &Path, f: impl FnOnce(&Users)) {
    let store = Store::open(&dir.join("data")).unwrap();
    f(&Users::for_store(&store).unwrap());
}

#[test]
fn password_length_bounds_at_the_edges_and_argon2id_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let add = |name: &str, pw: &str| {
        cli(
            &config,
            &["user", "add", name, "--role", "viewer"],
            &format!("{pw}\n"),
        )
    };
    let (ok, out) = add("seven", "1234567");
    assert!(!ok && out.contains("at least 8"), "7 characters: {out}");
    let (ok, out) = add("eight", "12345678");
    assert!(ok, "8 characters: {out}");
    // Eight characters of two bytes each: the lower bound counts characters.
    let (ok, out) = add("eightwide", &"é".repeat(8));
    assert!(ok, "8 two-byte characters: {out}");
    let (ok, out) = add("long", &"p".repeat(1024));
    assert!(ok, "1024 bytes: {out}");
    let (ok, out) = add("toolong", &"p".repeat(1025));
    assert!(!ok && out.contains("at most 1024"), "1025 bytes: {out}");
    // The upper bound counts bytes: 513 two-byte characters are 1026 bytes.
    let (ok, out) = add("widelong", &"é".repeat(513));
    assert!(!ok && out.contains("at most 1024"), "1026 bytes: {out}");

    users(dir.path(), |u| {
        for name in ["seven", "toolong", "widelong"] {
            assert!(u.get(name).unwrap().is_none(), "{name} was stored");
        }
        let eight = u.get("eight").unwrap().unwrap();
        // argon2id, version 0x13, 19 MiB, t=2, p=1, as SECURITY.md says.
        assert!(
            eight
                .password_hash
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            eight.password_hash
        );
        // A random salt: the same password never hashes the same twice.
        let other = cleannvr::auth::hash_password("12345678").unwrap();
        assert_ne!(other, eight.password_hash);
        assert!(u.verify("eight", "12345678").unwrap().is_some());
        assert!(u.verify("long", &"p".repeat(1024)).unwrap().is_some());
        assert!(u.verify("long", &"p".repeat(1023)).unwrap().is_none());
    });
}

#[test]
fn user_passwd_and_remove_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    common::add_user(&config, "boss", "admin", "boss password 1");
    common::add_user(&config, "guard", "operator", "old guard password");

    // passwd: the new password works, the old one no longer does; the policy applies.
    let (ok, out) = cli(&config, &["user", "passwd", "guard"], "short\n");
    assert!(!ok && out.contains("at least 8"), "{out}");
    let (ok, out) = cli(
        &config,
        &["user", "passwd", "guard"],
        "new guard password\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(&config, &["user", "passwd", "nobody"], "whatever123\n");
    assert!(!ok && out.contains("no such user nobody"), "{out}");
    users(dir.path(), |u| {
        assert!(u.verify("guard", "old guard password").unwrap().is_none());
        assert!(u.verify("guard", "new guard password").unwrap().is_some());
    });

    // remove: the user is gone from the list; the last admin cannot be removed.
    let (ok, out) = cli(&config, &["user", "remove", "guard"], "");
    assert!(ok, "{out}");
    let (ok, out) = cli(&config, &["user", "list"], "");
    assert!(
        ok && out.contains("boss\tadmin") && !out.contains("guard"),
        "{out}"
    );
    let (ok, out) = cli(&config, &["user", "remove", "boss"], "");
    assert!(!ok && out.contains("last admin"), "{out}");
    users(dir.path(), |u| {
        assert!(u.get("guard").unwrap().is_none());
        assert!(u.get("boss").unwrap().is_some());
    });

    // Each change is in the audit log, attributed to the command line.
    let (ok, out) = cli(&config, &["audit", "verify"], "");
    assert!(ok, "{out}");
    let store = Store::open(&dir.path().join("data")).unwrap();
    let log = cleannvr::audit::AuditLog::open(store.db(), store.dir()).unwrap();
    let all = log.query(&cleannvr::audit::Filter::default(), 100).unwrap();
    let seen: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str(), e.detail.as_str()))
        .collect();
    assert!(
        seen.contains(&("user_update", "guard", "password=changed")),
        "passwd not audited: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(a, t, _)| (*a, *t) == ("user_remove", "guard")),
        "remove not audited: {seen:?}"
    );
    assert!(all.iter().all(|e| e.actor == "cli"));
}
