//! `cleannvr backup --out FILE` and `cleannvr restore FILE`: everything but the
//! footage (which is already files, backed up by copying them): the configuration,
//! the keys and certificates under the storage directory (audit key, export signing
//! key, TLS), and every tree of the index (users, sessions, holds, audit log, segment
//! rows, clock samples). One zip, stored without compression.

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
    let mut notes = Vec::new();
    if !config_path.exists() {
        let mut text = String::new();
        zip.by_name(CONFIG)?.read_to_string(&mut text)?;
        write_private(config_path, text.as_bytes())?;
        notes.push(format!(
            "configuration written to {}",
            config_path.display()
        ));
    } else {
        notes.push(format!(
            "kept the existing configuration {} (the backup's copy is {CONFIG} in the zip)",
            config_path.display()
        ));
    }
    let cfg = crate::config::Config::load(config_path)?;
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
    // Keys first: the audit log must open with its own key, not a new one.
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
        write_private(&target, &bytes)?;
    }
    let store = Store::open(dir)?;
    let mut records = 0u64;
    {
        let entry = zip.by_name(INDEX)?;
        for line in BufReader::new(entry).lines() {
            let line = line?;
            let rec: Record = serde_json::from_str(&line).context("index record")?;
            let tree = store.db().open_tree(hex::decode(&rec.tree)?)?;
            tree.insert(hex::decode(&rec.key)?, hex::decode(&rec.value)?)?;
            records += 1;
        }
    }
    anyhow::ensure!(
        records == manifest.records,
        "the backup lists {} index records but holds {records}: it is damaged",
        manifest.records
    );
    // What was restored carries the backup's schema version: migrate it on reopen.
    {
        let meta = store.db().open_tree(META_TREE)?;
        if meta.get(SCHEMA_KEY)?.is_none() {
            meta.insert(SCHEMA_KEY, &0u64.to_be_bytes())?;
        }
    }
    store.db().flush()?;
    // Every tree handle must be gone too, or sled keeps the directory locked.
    drop(store);
    Store::open(dir)?;
    notes.push(format!(
        "{records} index records and {} key/certificate files restored into {} from a backup \
         made {} by cleannvr {}",
        manifest.files.len(),
        dir.display(),
        manifest.created,
        manifest.cleannvr
    ));
    Ok(notes.join("\n"))
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
