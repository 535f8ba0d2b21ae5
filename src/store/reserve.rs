//! A reserve file beside the index, so a server stopped on a full volume
//! always starts again.
//!
//! Recorders write until the volume is full and retention frees space after
//! the fact. If the server stops (crash, power cut, upgrade) at that moment,
//! opening the index needs a little space that is no longer there, and a
//! server that cannot open its index records nothing at all. The reserve is
//! real, allocated bytes that [`release`] gives back just before the index is
//! opened on a full volume; [`ensure`] puts it back once retention has made
//! room again.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The file's name: a dotfile, which no camera id can be.
const NAME: &str = ".index-reserve";
const MIB: u64 = 1 << 20;

fn path(dir: &Path) -> PathBuf {
    dir.join(NAME)
}

/// How much to keep for a volume of `total` bytes: 1/64 of it, at least 1 MiB
/// (enough for the index to open and write its first pages) and at most
/// 64 MiB.
pub fn size_for(total: u64) -> u64 {
    (total / 64).clamp(MIB, 64 * MIB)
}

/// Whether the reserve is there (to be given back when the index opens).
pub fn present(dir: &Path) -> bool {
    path(dir).exists()
}

/// Deletes the reserve when the volume has less than a reserve's worth free.
/// Returns whether it did.
pub fn release_if_short(dir: &Path) -> anyhow::Result<bool> {
    let (free, total) = match (
        super::retention::volume_free_bytes(dir),
        super::retention::volume_total_bytes(dir),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        // Not knowing, keep it: the caller still retries after ENOSPC.
        _ => return Ok(false),
    };
    if free >= size_for(total) {
        return Ok(false);
    }
    release(dir)
}

/// Deletes the reserve. Returns whether there was one.
pub fn release(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::remove_file(path(dir)) {
        Ok(()) => {
            tracing::warn!(
                dir = %dir.display(),
                "the volume is full: released the index reserve so the index can open"
            );
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path(dir).display())),
    }
}

/// The free space the reserve needs before [`ensure`] writes it back: its own
/// size plus a margin of `floor` (what retention keeps free for recorders),
/// and at least its size again, so writing it never takes the last space.
fn room_needed(size: u64, floor: u64) -> u64 {
    size.saturating_add(floor.max(size))
}

/// How much free space retention should keep above the usual `floor` so that
/// a missing reserve can be written back: none while the reserve is there.
/// Without this, a volume whose floor is under the room the reserve needs
/// (small disks) would never get its reserve back after one full-disk event,
/// and the next start on a full disk could not open the index.
pub fn extra_room(dir: &Path, floor: u64) -> u64 {
    if present(dir) {
        return 0;
    }
    match super::retention::volume_total_bytes(dir) {
        Ok(total) => room_needed(size_for(total), floor).saturating_sub(floor),
        Err(_) => 0,
    }
}

/// Writes the reserve if it is missing and the volume has room for it with a
/// margin (see [`room_needed`]; `floor` is what retention keeps free), so it
/// never takes the last space from a recorder. Returns whether it wrote one.
pub fn ensure(dir: &Path, floor: u64) -> anyhow::Result<bool> {
    let file = path(dir);
    if file.exists() {
        return Ok(false);
    }
    let total = super::retention::volume_total_bytes(dir)
        .with_context(|| format!("measuring the volume of {}", dir.display()))?;
    let size = size_for(total);
    let free = super::retention::volume_free_bytes(dir)
        .with_context(|| format!("measuring the volume of {}", dir.display()))?;
    if free < room_needed(size, floor) {
        return Ok(false);
    }
    // Written through a temporary name so a reserve cut short by a crash is
    // never taken for a whole one. Zeros are written, not a sparse length:
    // the blocks must really be allocated to be worth anything when freed.
    let tmp = dir.join(format!("{NAME}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        let chunk = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &file)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", file.display()));
    }
    Ok(true)
}

/// Whether `e` says the volume is full.
pub fn is_full(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.raw_os_error() == Some(libc::ENOSPC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_is_a_fraction_of_the_volume_within_bounds() {
        assert_eq!(size_for(0), MIB);
        assert_eq!(size_for(4 * MIB), MIB);
        assert_eq!(size_for(640 * MIB), 10 * MIB);
        assert_eq!(size_for(4 << 40), 64 * MIB);
    }

    /// After a full-disk event used the reserve up, retention keeps enough
    /// free for it and its margin above the usual floor, so `ensure` can write
    /// it back; before, a floor under twice the reserve (small volumes) meant
    /// it never came back and the next start on a full disk failed.
    #[test]
    fn a_missing_reserve_asks_retention_for_the_room_ensure_needs() {
        let dir = tempfile::tempdir().unwrap();
        let total = super::super::retention::volume_total_bytes(dir.path()).unwrap();
        let size = size_for(total);
        for floor in [0, MIB / 2, 1_000_000, 3 * MIB] {
            let extra = extra_room(dir.path(), floor);
            // The free space retention keeps is exactly what `ensure` needs.
            assert_eq!(floor + extra, room_needed(size, floor), "floor {floor}");
            // Writing the reserve from there leaves at least the floor free.
            assert!(floor + extra - size >= floor, "floor {floor}");
        }
        assert!(ensure(dir.path(), 1_000_000).unwrap());
        assert_eq!(extra_room(dir.path(), 1_000_000), 0, "the reserve is there");
    }

    #[test]
    fn ensure_writes_real_bytes_once_and_release_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure(dir.path(), 0).unwrap());
        let meta = std::fs::metadata(path(dir.path())).unwrap();
        let total = super::super::retention::volume_total_bytes(dir.path()).unwrap();
        assert_eq!(meta.len(), size_for(total));
        // Allocated, not sparse.
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 >= meta.len(), "{meta:?}");
        assert!(
            !ensure(dir.path(), 0).unwrap(),
            "a second reserve was written"
        );
        assert!(release(dir.path()).unwrap());
        assert!(!path(dir.path()).exists());
        assert!(!release(dir.path()).unwrap());
    }

    #[test]
    fn a_second_opener_is_told_the_dir_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = super::super::Store::open(dir.path()).unwrap();
        let err = super::super::Store::open(dir.path()).err().unwrap();
        assert!(
            format!("{err:#}").contains("another cleannvr is using this storage dir"),
            "{err:#}"
        );
        assert!(super::super::is_locked(&err), "{err:#}");
    }
}
