//! The export signing key: an Ed25519 key made on first start, kept in
//! `<storage>/keys/export-signing.key` (or `[storage] signing_key`), mode 0600. It signs
//! every export's `manifest.json`, so a package can be checked against the server's
//! public key by anyone, offline, with our verifier or any Ed25519 tool.
//!
//! Formats shared with `player.html` and `cleannvr export verify` (keep them exact):
//! `manifest.sig` is the signature as 128 lowercase hex characters and a newline;
//! `signing-key.pub` is the 32-byte public key as 64 lowercase hex characters and a
//! newline; the fingerprint is the lowercase hex SHA-256 of the 32 public-key bytes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::keyfile::{write_private, Existing};

/// Format name in the key file.
const FORMAT: &str = "cleannvr-export-signing-key/1";

/// Where the key lives by default for a storage directory.
pub fn default_path(storage_dir: &Path) -> PathBuf {
    storage_dir.join("keys").join("export-signing.key")
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: String,
    /// The 32-byte Ed25519 secret (seed), hex.
    secret_key: String,
    /// The public key, hex (for people reading the file; checked against the secret).
    public_key: String,
}

/// The server's export signing key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    /// The file it came from.
    pub path: PathBuf,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint())
            .field("path", &self.path)
            .finish()
    }
}

impl Signer {
    /// The key `storage` names: the default one under the storage directory (its `keys/`
    /// made as needed), or the operator's `signing_key`, whose directory must already
    /// exist: a missing one is an unmounted or lost volume, and a key made in its place
    /// would silently give the server a new identity that no earlier package names.
    pub fn for_storage(storage: &crate::config::StorageConfig) -> anyhow::Result<Signer> {
        match &storage.signing_key {
            None => Self::load_or_create(&default_path(&storage.dir)),
            Some(path) => Self::load(path, false),
        }
    }

    /// Loads the key at `path`, making it first if there is no file (directory 0700, file
    /// 0600, fsynced before use so nothing is signed with a key a crash could lose).
    pub fn load_or_create(path: &Path) -> anyhow::Result<Signer> {
        Self::load(path, true)
    }

    fn load(path: &Path, make_dir: bool) -> anyhow::Result<Signer> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path, make_dir),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn parse(path: &Path, text: &str) -> anyhow::Result<Signer> {
        let f: KeyFile = serde_json::from_str(text)
            .with_context(|| format!("{}: not an export signing key file", path.display()))?;
        if f.format != FORMAT {
            bail!("{}: unknown format {:?}", path.display(), f.format);
        }
        let seed: [u8; 32] = hex::decode(&f.secret_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{}: secret_key is not 32 bytes of hex", path.display()))?;
        let key = SigningKey::from_bytes(&seed);
        if hex::encode(key.verifying_key().as_bytes()) != f.public_key {
            bail!(
                "{}: public_key does not belong to secret_key",
                path.display()
            );
        }
        Ok(Signer {
            key,
            path: path.to_owned(),
        })
    }

    fn create(path: &Path, make_dir: bool) -> anyhow::Result<Signer> {
        use rand::RngCore;
        let dir = path.parent().context("key path has no directory")?;
        if !make_dir && !dir.is_dir() {
            bail!(
                "the directory of [storage] signing_key ({}) does not exist (an unmounted \
                 volume?): no new signing key is made in place of the configured one",
                dir.display()
            );
        }
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let json = serde_json::to_vec_pretty(&KeyFile {
            format: FORMAT.into(),
            secret_key: hex::encode(seed),
            public_key: hex::encode(key.verifying_key().as_bytes()),
        })?;
        if write_private(path, &json, Existing::Keep, make_dir)? {
            Ok(Signer {
                key,
                path: path.to_owned(),
            })
        } else {
            // Another process made the key meanwhile: theirs wins.
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Self::parse(path, &text)
        }
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The contents of `signing-key.pub`: 64 lowercase hex characters and a newline.
    pub fn public_key_file(&self) -> String {
        format!("{}\n", hex::encode(self.public_key()))
    }

    /// SHA-256 of the public key, lowercase hex.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key())
    }

    /// The contents of `manifest.sig` for `msg`: 128 lowercase hex characters and a newline.
    pub fn sign_file(&self, msg: &[u8]) -> String {
        format!("{}\n", hex::encode(self.key.sign(msg).to_bytes()))
    }
}

/// The fingerprint of a public key: lowercase hex SHA-256 of its 32 bytes.
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(public_key))
}

/// A fingerprint grouped by four characters for people to read and compare aloud.
pub fn grouped(fingerprint: &str) -> String {
    fingerprint
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Normalises a fingerprint someone typed (any case, spaces or colons between groups).
pub fn normalise_fingerprint(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Parses `signing-key.pub` (64 hex characters, optional trailing newline).
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    hex::decode(text.trim_end_matches('\n'))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "not 64 hexadecimal characters (a 32-byte Ed25519 public key)".into())
}

/// Checks `manifest.sig` (as read) over `msg` under `public_key`.
pub fn verify(public_key: &[u8; 32], msg: &[u8], sig_file: &str) -> Result<(), String> {
    let key = VerifyingKey::from_bytes(public_key)
        .map_err(|_| "the public key is not a valid Ed25519 key".to_owned())?;
    let sig: [u8; 64] = hex::decode(sig_file.trim_end_matches('\n'))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("not 128 hexadecimal characters (a 64-byte Ed25519 signature)")?;
    key.verify_strict(msg, &Signature::from_bytes(&sig))
        .map_err(|_| "the signature does not match the manifest under this key".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_made_once_private_and_signs_verifiably() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = default_path(dir.path());
        let a = Signer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Signer::load_or_create(&path).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        assert!(!format!("{a:?}").contains(&hex::encode(a.key.to_bytes())));

        let sig = a.sign_file(b"manifest");
        assert_eq!(sig.len(), 129);
        assert!(sig.ends_with('\n'));
        let pubkey = parse_public_key(&a.public_key_file()).unwrap();
        assert_eq!(fingerprint(&pubkey), a.fingerprint());
        assert!(verify(&pubkey, b"manifest", &sig).is_ok());
        assert!(verify(&pubkey, b"manifesT", &sig).is_err());
        let other = Signer::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(verify(&other.public_key(), b"manifest", &sig).is_err());
        assert_eq!(
            normalise_fingerprint(&grouped(&a.fingerprint()).to_uppercase()),
            a.fingerprint()
        );
    }

    #[test]
    fn a_configured_key_on_a_missing_volume_is_refused_not_remade() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = crate::config::StorageConfig {
            dir: dir.path().join("data"),
            ..Default::default()
        };
        // The default place is made as needed.
        let made = Signer::for_storage(&storage).unwrap();
        assert_eq!(made.path, default_path(&storage.dir));
        // A configured key whose directory is gone: refused, and nothing is made.
        let volume = dir.path().join("keyvol");
        storage.signing_key = Some(volume.join("export.key"));
        let e = Signer::for_storage(&storage).unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
        assert!(!volume.exists(), "a key directory was made: {e:#}");
        // Once the volume is there, the first start makes its key, later ones read it.
        std::fs::create_dir(&volume).unwrap();
        let a = Signer::for_storage(&storage).unwrap();
        let b = Signer::for_storage(&storage).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), made.fingerprint());
    }
}
