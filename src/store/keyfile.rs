//! Secret key files in the storage directory (the audit key, the export signing key):
//! written whole or not at all, private, and on disk before anything uses them.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Context;

/// What to do when `path` already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Keep it (another process made the key first: theirs wins).
    Keep,
    /// Replace it.
    Replace,
}

/// Writes `contents` to `path`: the directory is made 0700 if missing (only when
/// `make_dir`), the bytes go to a `.tmp` sibling made 0600 and fsynced, which is then
/// linked (`Keep`) or renamed (`Replace`) into place and the directory fsynced. A crash
/// leaves the old file or the new one, never a torn key. Returns `false` when `Keep`
/// found a file already there (nothing written).
pub fn write_private(
    path: &Path,
    contents: &[u8],
    existing: Existing,
    make_dir: bool,
) -> anyhow::Result<bool> {
    let dir = path.parent().context("key path has no directory")?;
    if make_dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    let placed = match existing {
        Existing::Replace => std::fs::rename(&tmp, path).map(|()| true),
        // A hard link fails if the file appeared meanwhile, where a rename would
        // silently replace it.
        Existing::Keep => match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        },
    };
    let _ = std::fs::remove_file(&tmp);
    let placed = placed.with_context(|| format!("writing {}", path.display()))?;
    if placed {
        super::sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_atomic_and_keep_or_replace() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("keys").join("k.key");
        assert!(write_private(&p, b"one", Existing::Keep, true).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        assert!(!write_private(&p, b"two", Existing::Keep, true).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert!(write_private(&p, b"three", Existing::Replace, true).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        let missing = d.path().join("absent").join("k.key");
        assert!(write_private(&missing, b"x", Existing::Keep, false).is_err());
        assert!(!missing.parent().unwrap().exists());
    }
}
