//! The audit key: a 256-bit secret in `<storage dir>/keys/audit.key` (mode 0600, outside
//! the index database) that MACs every entry's hash, so someone who can rewrite the index
//! but cannot read this file cannot re-hash an edited chain into one that verifies.
//!
//! The file also records the first entry the key covers (`from_seq`): entries before it
//! were written before the key existed (an older cleannvr) and are checked by their hash
//! chain only. Keeping that number outside the index stops an attacker from passing keyed
//! entries off as old unkeyed ones by stripping their MACs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::keyfile::{write_private, Existing};

/// Format name in the key file.
const FORMAT: &str = "cleannvr-audit-key/1";
/// Domain separation: these MACs authenticate audit-entry hashes and nothing else.
const CONTEXT: &[u8] = b"cleannvr audit entry v1\0";

/// Where the key lives for a storage directory.
pub fn path(storage_dir: &Path) -> PathBuf {
    storage_dir.join("keys").join("audit.key")
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    from_seq: u64,
    key: String,
}

/// A loaded audit key.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
    /// The first entry this key covers.
    pub from_seq: u64,
    /// The file it came from.
    pub path: PathBuf,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Key")
            .field("from_seq", &self.from_seq)
            .field("path", &self.path)
            .finish()
    }
}

impl Key {
    /// Loads the key at `path`, `None` if there is no file.
    pub fn load(path: &Path) -> anyhow::Result<Option<Key>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let f: File = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an audit key file", path.display()))?;
        anyhow::ensure!(
            f.format == FORMAT,
            "{}: unknown format {:?}",
            path.display(),
            f.format
        );
        let bytes: [u8; 32] = hex::decode(&f.key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{}: key is not 32 bytes of hex", path.display()))?;
        Ok(Some(Key {
            bytes,
            from_seq: f.from_seq,
            path: path.to_owned(),
        }))
    }

    /// Makes a new random key covering entries from `from_seq` on and writes it to `path`
    /// (directory 0700, file 0600, fsynced before use so no entry is MACed with a key
    /// that a crash could lose).
    pub fn create(path: &Path, from_seq: u64) -> anyhow::Result<Key> {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let json = serde_json::to_vec_pretty(&File {
            format: FORMAT.into(),
            from_seq,
            key: hex::encode(bytes),
        })?;
        write_private(path, &json, Existing::Replace, true)?;
        Ok(Key {
            bytes,
            from_seq,
            path: path.to_owned(),
        })
    }

    /// The MAC (hex) of an entry's hash.
    pub fn mac(&self, entry_hash: &str) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.bytes).expect("HMAC takes any key");
        m.update(CONTEXT);
        m.update(entry_hash.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// Whether `mac` (hex) is the MAC of `entry_hash`, compared in constant time.
    pub fn check(&self, entry_hash: &str, mac: &str) -> bool {
        let Ok(tag) = hex::decode(mac) else {
            return false;
        };
        let mut m = Hmac::<Sha256>::new_from_slice(&self.bytes).expect("HMAC takes any key");
        m.update(CONTEXT);
        m.update(entry_hash.as_bytes());
        m.verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path());
        assert!(Key::load(&p).unwrap().is_none());
        let k = Key::create(&p, 7).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let l = Key::load(&p).unwrap().unwrap();
        assert_eq!(l.from_seq, 7);
        let mac = k.mac("abc");
        assert!(l.check("abc", &mac));
        assert!(!l.check("abd", &mac));
        assert!(!l.check("abc", "zz"));
        let other = Key::create(&d.path().join("other.key"), 0).unwrap();
        assert!(!other.check("abc", &mac));
        assert!(!format!("{l:?}").contains(&hex::encode(l.bytes)));
    }
}
