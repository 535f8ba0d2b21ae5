//! Signed checkpoints of the audit chain: every [`EVERY`] entries and every minute the
//! server signs the chain head (sequence number and hash) with its Ed25519 export
//! signing key ([`crate::export::signing`]) and logs the checkpoint, so a syslog
//! collector holds a copy off the box. Anyone with the public key (its fingerprint is in
//! `/api/system` and every exhibit package) can check a checkpoint. A chain edited and
//! re-hashed (even with the audit HMAC key) no longer matches the checkpoints signed
//! before the edit, unless the editor also holds the signing key.

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::export::signing::{self, Signer};

/// A checkpoint is signed after every this many entries (and once a minute when the
/// chain has grown since the last one).
pub const EVERY: u64 = 100;

/// One signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number of the newest entry covered.
    pub seq: u64,
    /// That entry's hash (which chains back to every earlier entry).
    pub hash: String,
    /// When it was signed, ns since the epoch.
    pub time_ns: i64,
    /// Ed25519 signature (hex) of [`Checkpoint::message`] under the signing key.
    pub sig: String,
    /// Fingerprint of the key that signed it.
    pub key: String,
}

impl Checkpoint {
    /// Signs the head `(seq, hash)` at `time_ns`.
    pub fn sign(signer: &Signer, seq: u64, hash: &str, time_ns: i64) -> Checkpoint {
        let msg = message(seq, hash, time_ns);
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            time_ns,
            sig: signer.sign_file(&msg).trim_end().to_owned(),
            key: signer.fingerprint(),
        }
    }

    /// Whether the signature is good under `public_key`.
    pub fn check(&self, public_key: &[u8; 32]) -> Result<(), String> {
        signing::verify(
            public_key,
            &message(self.seq, &self.hash, self.time_ns),
            &self.sig,
        )
        .map_err(|_| "its signature does not verify under the server's signing key".into())
    }

    /// The one-line form written to the log (for syslog to anchor).
    pub fn log_line(&self) -> String {
        format!(
            "seq={} hash={} time={} key={} sig={}",
            self.seq,
            self.hash,
            rfc3339(self.time_ns),
            self.key,
            self.sig
        )
    }
}

/// The signed bytes: a fixed text naming what is signed, so a signature cannot be
/// mistaken for one over an export manifest.
pub fn message(seq: u64, hash: &str, time_ns: i64) -> Vec<u8> {
    format!(
        "cleannvr audit checkpoint v1\nseq={seq}\nhash={hash}\ntime={}\n",
        rfc3339(time_ns)
    )
    .into_bytes()
}
