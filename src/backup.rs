//! `cleannvr backup --out FILE` and `cleannvr restore FILE`: everything but the
//! footage (which is already files, backed up by copying them): the configuration,
//! the keys and certificates under the storage directory (audit key, export signing
//! key, TLS), and every lasting tree of the index (users, holds, audit log, segment
//! rows, clock samples). One zip, stored without compression.
//!
//! Sessions are never backed up nor restored (an older backup may hold them):
//! a restore must not bring logins back to life. A restore builds the index
//! in a temporary directory and renames it into place only once every record
//! is in, so a damaged backup leaves the storage directory as it was.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;

use crate::store::{Store, META_TREE, SCHEMA_KEY, SCHEMA_VERSION};

/// Directories under the storage directory whose files are backed up (keys and
/// certificates; never footage or exports).
const KEY_DIRS: [&str; 2] = ["keys", "tls"];
const MANIFEST: &str = "cleannvr-backup.json";
const CONFIG: &str = "config.toml";
const INDEX: &str = "index.jsonl";
const FILES: &str = "files/";
/// Index trees that only make sense while the server that wrote them runs:
/// left out of backups and skipped on restore.
const EPHEMERAL_TREES: [&str; 1] = ["sessions"];

/// What the backup says about itself.
#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    cleannvr: String,
    schema_version: u64,
    created: String,
    trees: usize,
    records: u64,
    files: Vec<String>,
}

/// One index record.
#[derive(Serialize, Deserialize)]
struct Record {
    tree: String,
    key: String,
    value: String,
}

/// Writes the backup of `store` (and `config_text`) to `out`, which must not exist.
/// Returns a one-line summary.
pub fn write(store: &Store, config_text: &str, out: &Path, now_ns: i64) -> anyhow::Result<String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    let r = write_to(store, config_text, file, now_ns);
    if r.is_err() {
        let _ = std::fs::remove_file(out);
    }
    let (trees, records, files) = r.with_context(|| format!("writing {}", out.display()))?;
    Ok(format!(
        "backup {}: configuration, {files} key/certificate files, {records} index records in \
         {trees} trees (schema version {SCHEMA_VERSION}); footage is not included",
        out.display()
    ))
}

fn write_to(
    store: &Store,
    config_text: &str,
    file: File,
    now_ns: i64,
) -> anyhow::Result<(usize, u64, usize)> {
    let mut zip = zip::ZipWriter::new(file);
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true)
        .unix_permissions(0o600);
    zip.start_file(CONFIG, opts)?;
    zip.write_all(config_text.as_bytes())?;
    let mut files = Vec::new();
    for d in KEY_DIRS {
        let dir = store.dir().join(d);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<_> = rd.flatten().filter(|e| e.path().is_file()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let rel = format!("{d}/{}", e.file_name().to_string_lossy());
            let bytes = std::fs::read(e.path())
                .with_context(|| format!("reading {}", e.path().display()))?;
            zip.start_file(format!("{FILES}{rel}"), opts)?;
            zip.write_all(&bytes)?;
            files.push(rel);
        }
    }
    zip.start_file(INDEX, opts)?;
    let db = store.db();
    let mut trees = 0;
    let mut records = 0u64;
    for name in db.tree_names() {
        if EPHEMERAL_TREES.iter().any(|t| t.as_bytes() == &*name) {
            continue;
        }
        let tree = db.open_tree(&name)?;
        trees += 1;
        for kv in tree.iter() {
            let (k, v) = kv?;
            let rec = Record {
                tree: hex::encode(&name),
                key: hex::encode(&k),
                value: hex::encode(&v),
            };
            serde_json::to_writer(&mut zip, &rec)?;
            zip.write_all(b"\n")?;
            records += 1;
        }
    }
    let manifest = Manifest {
        format: 1,
        cleannvr: env!("CARGO_PKG_VERSION").into(),
        schema_version: SCHEMA_VERSION,
        created: crate::clock::rfc3339(now_ns),
        trees,
        records,
        files: files.clone(),
    };
    zip.start_file(MANIFEST, opts)?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    zip.finish()?.sync_all()?;
    Ok((trees, records, files.len()))
}

/// Restores `backup` for the configuration at `config_path` (written from the backup
/// when it does not exist) into a storage directory with no index. cleannvr must be
/// stopped. Returns a summary.
///
/// All or nothing: the index is built in `<storage>/index.restoring` and renamed to
/// `index` last; on any error the files this restore wrote (index, keys,
/// configuration) are removed again.
pub fn restore(backup: &Path, config_path: &Path) -> anyhow::Result<String> {
    let f = File::open(backup).with_context(|| format!("opening {}", backup.display()))?;
    let mut zip = zip::ZipArchive::new(f)
        .with_context(|| format!("{} is not a cleannvr backup (zip)", backup.display()))?;
    let manifest: Manifest = {
        let mut s = String::new();
        zip.by_name(MANIFEST)
            .with_context(|| format!("{} has no {MANIFEST}", backup.display()))?
            .read_to_string(&mut s)?;
        serde_json::from_str(&s).with_context(|| format!("{MANIFEST} in {}", backup.display()))?
    };
    anyhow::ensure!(
        manifest.schema_version <= SCHEMA_VERSION,
        "{} was made by a newer cleannvr ({}, index schema version {}; this is {} with schema \
         version {SCHEMA_VERSION}): restore it with that version or newer",
        backup.display(),
        manifest.cleannvr,
        manifest.schema_version,
        env!("CARGO_PKG_VERSION")
    );
    let mut written = Written::default();
    let r = restore_from(&mut zip, &manifest, config_path, &mut written);
    if r.is_err() {
        written.undo();
    }
    r.with_context(|| format!("restoring {} (nothing was changed)", backup.display()))
}

/// What a restore has written so far, to be removed if it fails.
#[derive(Default)]
struct Written {
    files: Vec<PathBuf>,
    staging: Option<PathBuf>,
    /// The storage directory, when this restore created it.
    dir: Option<PathBuf>,
}

impl Written {
    fn undo(&self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        if let Some(d) = &self.staging {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(d) = &self.dir {
            // Only if empty: footage may have been copied in meanwhile.
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn restore_from(
    zip: &mut zip::ZipArchive<File>,
    manifest: &Manifest,
    config_path: &Path,
    written: &mut Written,
) -> anyhow::Result<String> {
    let mut notes = Vec::new();
    let new_config = if config_path.exists() {
        notes.push(format!(
            "kept the existing configuration {} (the backup's copy is {CONFIG} in the zip)",
            config_path.display()
        ));
        None
    } else {
        let mut text = String::new();
        zip.by_name(CONFIG)?.read_to_string(&mut text)?;
        notes.push(format!(
            "configuration written to {}",
            config_path.display()
        ));
        Some(text)
    };
    let cfg = match &new_config {
        None => crate::config::Config::load(config_path)?,
        Some(text) => {
            crate::config::Config::from_toml(text, config_path, |k| std::env::var(k).ok())?
        }
    };
    let dir = &cfg.storage.dir;
    let index = dir.join("index");
    if index.exists() {
        bail!(
            "{} already has an index; restore needs an empty storage directory (move {} \
             away first; footage files may stay)",
            dir.display(),
            index.display()
        );
    }
    // Every key file read and checked before anything is written.
    let mut keys = Vec::new();
    for rel in &manifest.files {
        let target = safe_join(dir, rel)?;
        let mut bytes = Vec::new();
        zip.by_name(&format!("{FILES}{rel}"))?
            .read_to_end(&mut bytes)?;
        if let Ok(existing) = std::fs::read(&target) {
            anyhow::ensure!(
                existing == bytes,
                "{} exists and differs from the backup's copy; move it away first",
                target.display()
            );
            continue;
        }
        keys.push((target, bytes));
    }
    let staging = dir.join("index.restoring");
    if !dir.exists() {
        written.dir = Some(dir.clone());
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    // Left over by a restore that was killed: never a live index.
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    written.staging = Some(staging.clone());
    let (records, skipped) = build_index(zip, &staging)?;
    anyhow::ensure!(
        records == manifest.records,
        "the backup lists {} index records but holds {records}: it is damaged",
        manifest.records
    );
    // Keys before the index: the audit log must open with its own key, not a new one.
    for (target, bytes) in &keys {
        write_private(target, bytes)?;
        written.files.push(target.clone());
    }
    if let Some(text) = &new_config {
        write_private(config_path, text.as_bytes())?;
        written.files.push(config_path.to_owned());
    }
    std::fs::rename(&staging, &index)
        .with_context(|| format!("renaming {} to {}", staging.display(), index.display()))?;
    written.staging = None;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    // Migrates what was restored to this version's schema.
    open_after_build(dir)?;
    notes.push(format!(
        "{} index records and {} key/certificate files restored into {} from a backup \
         made {} by cleannvr {}{}",
        records - skipped,
        manifest.files.len(),
        dir.display(),
        manifest.created,
        manifest.cleannvr,
        if skipped > 0 {
            format!(" ({skipped} session records left out: everyone logs in again)")
        } else {
            String::new()
        }
    ));
    Ok(notes.join("\n"))
}

/// Writes the backup's index records into a new sled database at `path`, leaving
/// out [`EPHEMERAL_TREES`]. Returns (records read, records left out).
fn build_index(zip: &mut zip::ZipArchive<File>, path: &Path) -> anyhow::Result<(u64, u64)> {
    let db = sled::Config::new()
        .path(path)
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(None)
        .open()
        .with_context(|| format!("creating {}", path.display()))?;
    let mut records = 0u64;
    let mut skipped = 0u64;
    let entry = zip.by_name(INDEX)?;
    for line in BufReader::new(entry).lines() {
        let line = line.with_context(|| format!("reading {INDEX}"))?;
        let rec: Record = serde_json::from_str(&line)
            .with_context(|| format!("index record {} of the backup", records + 1))?;
        records += 1;
        let name = hex::decode(&rec.tree)?;
        if EPHEMERAL_TREES.iter().any(|t| t.as_bytes() == name) {
            skipped += 1;
            continue;
        }
        db.open_tree(name)?
            .insert(hex::decode(&rec.key)?, hex::decode(&rec.value)?)?;
    }
    // What was restored carries the backup's schema version: migrated on open.
    let meta = db.open_tree(META_TREE)?;
    if meta.get(SCHEMA_KEY)?.is_none() {
        meta.insert(SCHEMA_KEY, &0u64.to_be_bytes())?;
    }
    db.flush()?;
    Ok((records, skipped))
}

/// Opens the index just built by [`build_index`]. sled's I/O threads can
/// still hold that database's file, and so its lock, for a moment after it
/// was closed (a write's last reference is dropped after the flush that
/// waited for it returns), so a lock found busy is tried again for a while
/// before it is taken for another server's.
fn open_after_build(dir: &Path) -> anyhow::Result<Store> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(dir) {
            Err(e) if crate::store::is_locked(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// `base/rel` for a `rel` of plain names only (a backup cannot write outside `base`).
fn safe_join(base: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let mut p = base.to_owned();
    for part in rel.split('/') {
        anyhow::ensure!(
            !part.is_empty() && part != "." && part != ".." && !part.contains('\\'),
            "bad file name in backup: {rel:?}"
        );
        p.push(part);
    }
    Ok(p)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
