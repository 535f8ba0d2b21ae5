//! TOTP secrets sealed at rest: AES-256-GCM under a key in
//! `<storage dir>/keys/totp.key` (mode 0600, outside the index database), so a copy
//! of the index alone (a stolen `index/` directory, a careless copy of `db`) gives
//! nobody's second factor away. Backups carry `keys/` with the index, so a restored
//! server opens the secrets it had.
//!
//! A sealed secret is `sealed1:` and the hex of a fresh 96-bit nonce followed by the
//! ciphertext and tag. The user's name and the field are authenticated with it, so a
//! sealed value copied onto another user's row does not open.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::store::keyfile::{write_private, Existing};

/// Format name in the key file.
const FORMAT: &str = "cleannvr-totp-key/1";
/// What starts a sealed value (base32 secrets never contain `:` or lower case).
const PREFIX: &str = "sealed1:";
/// Domain separation: this key seals TOTP secrets and nothing else.
const CONTEXT: &[u8] = b"cleannvr totp secret v1\0";
const NONCE_LEN: usize = 12;

/// Where the key lives for a storage directory.
pub fn path(storage_dir: &Path) -> PathBuf {
    storage_dir.join("keys").join("totp.key")
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    key: String,
}

/// The key that seals TOTP secrets.
#[derive(Clone)]
pub struct SealKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// A new random key held in memory only (tests, tools without a storage dir).
    pub fn random() -> SealKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SealKey { bytes }
    }

    /// The key of `storage_dir`, made (0600, fsynced) on first use.
    pub fn for_dir(storage_dir: &Path) -> anyhow::Result<SealKey> {
        let p = path(storage_dir);
        if let Some(k) = Self::load(&p)? {
            return Ok(k);
        }
        let k = Self::random();
        let json = serde_json::to_vec_pretty(&File {
            format: FORMAT.into(),
            key: hex::encode(k.bytes),
        })?;
        // Keep: if another process made one meanwhile, theirs is the key.
        if write_private(&p, &json, Existing::Keep, true)? {
            return Ok(k);
        }
        Self::load(&p)?.with_context(|| format!("{} vanished after it was made", p.display()))
    }

    fn load(p: &Path) -> anyhow::Result<Option<SealKey>> {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        let f: File = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a TOTP key file", p.display()))?;
        anyhow::ensure!(
            f.format == FORMAT,
            "{}: unknown format {:?}",
            p.display(),
            f.format
        );
        let bytes: [u8; 32] = hex::decode(&f.key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{}: key is not 32 bytes of hex", p.display()))?;
        Ok(Some(SealKey { bytes }))
    }

    fn aad(user: &str, field: &str) -> Vec<u8> {
        [CONTEXT, user.as_bytes(), b"\0", field.as_bytes()].concat()
    }

    /// `secret` sealed for `user`'s `field`.
    pub fn seal(&self, user: &str, field: &str, secret: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = Aes256Gcm::new(&self.bytes.into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: &Self::aad(user, field),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing the TOTP secret of {user}"))?;
        Ok(format!("{PREFIX}{}{}", hex::encode(nonce), hex::encode(ct)))
    }

    /// The secret in `sealed` (see [`SealKey::seal`]).
    pub fn open(&self, user: &str, field: &str, sealed: &str) -> anyhow::Result<String> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .with_context(|| format!("the stored TOTP secret of {user} is not sealed"))?;
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let plain = Aes256Gcm::new(&self.bytes.into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &Self::aad(user, field),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the TOTP key (keys/totp.key) does not open the stored secret of {user}: \
                     was the key replaced? `cleannvr user reset-totp {user}` lets them enrol \
                     again"
                )
            })?;
        String::from_utf8(plain).context("sealed TOTP secret is not text")
    }
}

/// Whether `s` is a sealed value (not a base32 secret from before sealing).
pub fn is_sealed(s: &str) -> bool {
    s.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seals_opens_and_binds_the_user() {
        let d = tempfile::tempdir().unwrap();
        let k = SealKey::for_dir(d.path()).unwrap();
        let mode = std::fs::metadata(path(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let s = k.seal("alice", "totp", "JBSWY3DPEHPK3PXP").unwrap();
        assert!(is_sealed(&s) && !s.contains("JBSWY3DPEHPK3PXP"), "{s}");
        assert_ne!(s, k.seal("alice", "totp", "JBSWY3DPEHPK3PXP").unwrap());
        // The same key comes back from the file.
        let again = SealKey::for_dir(d.path()).unwrap();
        assert_eq!(again.open("alice", "totp", &s).unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(k.open("bob", "totp", &s).is_err(), "moved to another user");
        assert!(
            k.open("alice", "pending", &s).is_err(),
            "moved to another field"
        );
        assert!(SealKey::random().open("alice", "totp", &s).is_err());
        assert!(k.open("alice", "totp", "JBSWY3DPEHPK3PXP").is_err());
    }

    /// An index from before sealing (schema version 1) with a secret stored open:
    /// opening it seals the secret under a key made for it, and the second factor
    /// still takes the authenticator's codes.
    #[test]
    fn open_secrets_of_an_older_index_are_sealed_on_open() {
        use crate::auth::totp::{code_at, Accepted, Factor};
        use crate::auth::{Role, Users};
        use crate::store::{Store, META_TREE, SCHEMA_KEY, SCHEMA_VERSION};
        let d = tempfile::tempdir().unwrap();
        let secret = crate::auth::totp::new_secret();
        let t0 = 1_800_000_000u64;
        {
            let store = Store::open(d.path()).unwrap();
            let users = Users::for_store(&store).unwrap();
            users
                .add("alice", Role::Admin, None, "password1", 0)
                .unwrap();
            // The row as cleannvr wrote it before sealing: the base32 secret in clear.
            let tree = store.db().open_tree("users").unwrap();
            let mut row: serde_json::Value =
                serde_json::from_slice(&tree.get("alice").unwrap().unwrap()).unwrap();
            row["totp"] = serde_json::json!({
                "secret": secret, "enabled_ns": 0, "last_step": 0, "recovery": [],
            });
            tree.insert("alice", serde_json::to_vec(&row).unwrap())
                .unwrap();
            let meta = store.db().open_tree(META_TREE).unwrap();
            meta.insert(SCHEMA_KEY, &1u64.to_be_bytes()).unwrap();
            store.db().flush().unwrap();
        }
        std::fs::remove_file(path(d.path())).unwrap();
        let store = Store::open(d.path()).unwrap();
        let raw = store.db().open_tree("users").unwrap().get("alice");
        let raw = String::from_utf8(raw.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            !raw.contains(&secret),
            "still open after the migration: {raw}"
        );
        assert!(raw.contains(PREFIX), "{raw}");
        assert!(path(d.path()).exists(), "no key was made");
        let v = store.db().open_tree(META_TREE).unwrap().get(SCHEMA_KEY);
        assert_eq!(v.unwrap().unwrap().as_ref(), SCHEMA_VERSION.to_be_bytes());
        let users = Users::for_store(&store).unwrap();
        assert_eq!(
            users.get("alice").unwrap().unwrap().totp.unwrap().secret,
            secret
        );
        let code = Factor::Code(code_at(&secret, t0));
        let now = i64::try_from(t0).unwrap() * crate::clock::NS_PER_SEC;
        assert_eq!(
            users.use_factor("alice", &code, now).unwrap(),
            Some(Accepted::Code)
        );
    }
}
