//! `cleannvr backup` and `restore`: backup (through a running server's control
//! socket), wipe the storage directory, restore, and the users, the audit chain (which
//! `audit verify` checks with the restored key) and the holds tree come back the same;
//! an index or a backup from a newer schema version is refused in plain words.
//! Sessions never come back, and a restore that fails half-way leaves nothing behind.

mod common;

use std::path::Path;

use cleannvr::store::{Store, META_TREE, SCHEMA_KEY, SCHEMA_VERSION};
use common::*;

fn setup(dir: &Path) -> std::path::PathBuf {
    let cam = "[[camera]]\nid = \"off\"\nurl = \"rtsp://127.0.0.1:9/x\"\nenabled = false\n";
    let cfg = dir.join("cleannvr.toml");
    std::fs::write(&cfg, config(dir, 2, cam)).unwrap();
    cfg
}

/// A tree's name and its (key, value) records.
type Tree = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// Every non-empty tree's records, for comparing two indexes.
fn dump(data: &Path) -> Vec<Tree> {
    let store = Store::open(data).unwrap();
    let db = store.db();
    let mut out = Vec::new();
    let mut names = db.tree_names();
    names.sort();
    for name in names {
        let t = db.open_tree(&name).unwrap();
        let rows: Vec<_> = t
            .iter()
            .map(|kv| kv.unwrap())
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        if !rows.is_empty() {
            out.push((name.to_vec(), rows));
        }
    }
    out
}

#[test]
fn backup_wipe_restore_gives_the_same_users_and_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    add_user(&cfg, "boss", "admin", "boss password 1");
    add_user(&cfg, "guard", "operator", "guard password 1");
    let (ok, out) = cli(&cfg, &["user", "passwd", "guard"], "guard password 2\n");
    assert!(ok, "{out}");
    let backup = dir.path().join("backup.zip");
    // Through the running server's control socket, with a session open.
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    let old_session = login(&nvr.http, "boss", "boss password 1");
    assert_eq!(get(&nvr.http, "/api/me", &old_session).0, 200);
    let (ok, out) = cli(&cfg, &["backup", "--out", backup.to_str().unwrap()], "");
    assert!(ok, "backup while running: {out}\n{}", nvr.log.text());
    let (ok, out) = cli(&cfg, &["restore", backup.to_str().unwrap()], "");
    assert!(!ok && out.contains("needs cleannvr stopped"), "{out}");
    nvr.stop();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup holds password hashes");
    }
    let (ok, users_before) = cli(&cfg, &["user", "list"], "");
    assert!(ok);
    let (ok, verify_before) = cli(&cfg, &["audit", "verify"], "");
    assert!(ok, "{verify_before}");
    let data = dir.path().join("data");
    let sessions = |t: &Tree| t.0 == b"sessions";
    let before = dump(&data);
    assert!(before.iter().any(sessions), "the login made a session row");
    let before: Vec<Tree> = before.into_iter().filter(|t| !sessions(t)).collect();
    let audit_key = std::fs::read(data.join("keys/audit.key")).unwrap();

    // Wipe everything: the storage directory and the configuration.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_file(&cfg).unwrap();
    let (ok, out) = cli(&cfg, &["restore", backup.to_str().unwrap()], "");
    assert!(ok, "restore: {out}");
    assert!(cfg.exists(), "the configuration came back: {out}");
    assert_eq!(
        std::fs::read(data.join("keys/audit.key")).unwrap(),
        audit_key
    );
    let (ok, users_after) = cli(&cfg, &["user", "list"], "");
    assert!(
        ok && users_after == users_before,
        "{users_before}\n---\n{users_after}"
    );
    let (ok, verify_after) = cli(&cfg, &["audit", "verify"], "");
    assert!(ok, "audit verify after restore: {verify_after}");
    let entries = |s: &str| s.lines().next().unwrap().to_owned();
    // The backup itself was audited after the entries it holds.
    assert!(
        entries(&verify_before).contains("intact"),
        "{verify_before}"
    );
    assert_eq!(entries(&verify_after), entries(&verify_before));
    // The checkpoint signed when the server stopped came after the backup, so the
    // restored index has every tree as backed up, without that checkpoint.
    let (checkpoints, before): (Vec<Tree>, Vec<Tree>) = before
        .into_iter()
        .partition(|(name, _)| name.as_slice() == b"audit_checkpoints");
    assert!(
        !checkpoints.is_empty(),
        "stopping the server signs a checkpoint of the audit chain"
    );
    assert_eq!(
        dump(&data),
        before,
        "every tree but sessions restored record for record"
    );
    // The restored password works: the hash came back, not just the name.
    let nvr = Nvr::start(cfg.clone(), &["run"]);
    let _ = login(&nvr.http, "guard", "guard password 2");
    // A login from before the backup is not brought back to life.
    let (status, body) = get(&nvr.http, "/api/me", &old_session);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    // Restoring over an index is refused.
    drop(nvr);
    let (ok, out) = cli(&cfg, &["restore", backup.to_str().unwrap()], "");
    assert!(!ok && out.contains("already has an index"), "{out}");
}

#[test]
fn an_index_from_a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    add_user(&cfg, "boss", "admin", "boss password 1");
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        let meta = store.db().open_tree(META_TREE).unwrap();
        let v = meta
            .get(SCHEMA_KEY)
            .unwrap()
            .expect("a version is recorded");
        assert_eq!(v.as_ref(), SCHEMA_VERSION.to_be_bytes());
        meta.insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        store.db().flush().unwrap();
    }
    let (ok, out) = cli(&cfg, &["user", "list"], "");
    assert!(!ok && out.contains("written by a newer cleannvr"), "{out}");
    assert!(!out.contains("boss"), "{out}");
    let (ok, out) = cli(&cfg, &["run"], "");
    assert!(!ok && out.contains("written by a newer cleannvr"), "{out}");
    // An index from before versions were recorded migrates forward.
    {
        let db = sled::open(data.join("index")).unwrap();
        db.open_tree(META_TREE).unwrap().remove(SCHEMA_KEY).unwrap();
        db.flush().unwrap();
    }
    let (ok, out) = cli(&cfg, &["user", "list"], "");
    assert!(ok && out.contains("boss"), "{out}");
    let store = Store::open(&data).unwrap();
    let v = store
        .db()
        .open_tree(META_TREE)
        .unwrap()
        .get(SCHEMA_KEY)
        .unwrap();
    assert_eq!(v.unwrap().as_ref(), SCHEMA_VERSION.to_be_bytes());
}

/// `backup` with its index cut to the first half of its records (the manifest
/// still counting them all): what a copy cut short looks like past the zip's
/// own checks.
fn cut_index_in_half(backup: &Path, out: &Path) {
    use std::io::{Read, Write};
    let mut zin = zip::ZipArchive::new(std::fs::File::open(backup).unwrap()).unwrap();
    let mut zout = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zin.len() {
        let mut e = zin.by_index(i).unwrap();
        let name = e.name().unwrap().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        if name == "index.jsonl" {
            let text = String::from_utf8(bytes).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert!(lines.len() > 4, "{text}");
            bytes = lines[..lines.len() / 2]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .into_bytes();
        }
        zout.start_file(name, opts).unwrap();
        zout.write_all(&bytes).unwrap();
    }
    zout.finish().unwrap();
}

/// Every file under `dir`, relative, sorted.
fn tree_of(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = files(dir, "")
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn a_restore_that_fails_half_way_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    add_user(&cfg, "boss", "admin", "boss password 1");
    add_user(&cfg, "guard", "operator", "guard password 1");
    let backup = dir.path().join("backup.zip");
    let (ok, out) = cli(&cfg, &["backup", "--out", backup.to_str().unwrap()], "");
    assert!(ok, "backup: {out}");
    let cut = dir.path().join("cut.zip");
    cut_index_in_half(&backup, &cut);
    let data = dir.path().join("data");

    // Over an existing index: refused, the index untouched.
    let before = dump(&data);
    let files_before = tree_of(&data);
    let (ok, out) = cli(&cfg, &["restore", cut.to_str().unwrap()], "");
    assert!(!ok, "{out}");
    assert_eq!(tree_of(&data), files_before);
    assert_eq!(dump(&data), before);

    // Into an empty storage directory, without a configuration: it fails on
    // the missing records, and leaves no index, no key and no configuration.
    std::fs::remove_dir_all(&data).unwrap();
    let cfg_text = std::fs::read(&cfg).unwrap();
    std::fs::remove_file(&cfg).unwrap();
    let (ok, out) = cli(&cfg, &["restore", cut.to_str().unwrap()], "");
    assert!(!ok && out.contains("damaged"), "{out}");
    assert!(!cfg.exists(), "a configuration was left behind: {out}");
    let left: Vec<String> = if data.exists() {
        tree_of(&data)
    } else {
        Vec::new()
    };
    assert!(left.is_empty(), "a failed restore left {left:?}");
    assert!(!data.join("index").exists());
    // ...so the whole backup restores afterwards.
    std::fs::write(&cfg, &cfg_text).unwrap();
    let (ok, out) = cli(&cfg, &["restore", backup.to_str().unwrap()], "");
    assert!(ok, "restore after a failed one: {out}");
    let (ok, users) = cli(&cfg, &["user", "list"], "");
    assert!(ok && users.contains("guard"), "{users}");
}
