//! TLS for the web server: the operator's certificate files when given,
//! otherwise a self-signed certificate generated on first start and kept
//! in the data directory, so its fingerprint stays the same across restarts
//! and an operator can check it once.
//!
//! Handshakes are run (with their deadline and budget) by [`super::conn`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsSetting;

/// A loaded certificate and key, ready to serve.
pub struct Identity {
    /// The rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, as colon-separated upper-case hex
    /// (the form browsers show).
    pub fingerprint: String,
    /// Where the certificate came from.
    pub cert_path: PathBuf,
    /// Whether it was generated just now.
    pub generated: bool,
}

/// SHA-256 fingerprint of a DER certificate, `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The rustls provider: ring, chosen explicitly so the process-wide default
/// (which another crate might install) never decides our cipher suites.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the self-signed certificate lives (`tls = true`, no files given).
pub fn generated_cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("cert.pem")
}

/// Loads or creates the server identity; `None` when `tls = false`.
pub fn load(setting: &TlsSetting, data_dir: &Path) -> anyhow::Result<Option<Identity>> {
    let (cert_path, key_path, generated) = match setting {
        TlsSetting::Enabled(false) => return Ok(None),
        TlsSetting::Files { cert, key } => (cert.clone(), key.clone(), false),
        TlsSetting::Enabled(true) => {
            let dir = data_dir.join("tls");
            let cert = generated_cert_path(data_dir);
            let key = dir.join("key.pem");
            let generated = !cert.exists() || !key.exists();
            if generated {
                generate_self_signed(&dir, &cert, &key)?;
            }
            (cert, key, generated)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading TLS certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert_path.display()))?;
    let leaf = certs
        .first()
        .with_context(|| format!("no certificate in {}", cert_path.display()))?;
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading TLS key {}", key_path.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match or are unsupported")?;
    // axum serves HTTP/1.1 only (its http2 feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Identity {
        config: Arc::new(config),
        fingerprint,
        cert_path,
        generated,
    }))
}

/// Writes a new self-signed certificate for localhost and the loopback
/// addresses. The key file is created 0600 before any secret is written.
fn generate_self_signed(dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cleannvr self-signed");
    let key_pair = rcgen::KeyPair::generate()?;
    let c = params.self_signed(&key_pair)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key)
        .with_context(|| format!("creating {}", key.display()))?;
    f.write_all(key_pair.serialize_pem().as_bytes())?;
    f.sync_all()?;
    std::fs::write(cert, c.pem()).with_context(|| format!("writing {}", cert.display()))?;
    crate::store::sync_dir(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(&TlsSetting::Enabled(true), dir.path())
            .unwrap()
            .unwrap();
        assert!(a.generated);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let b = load(&TlsSetting::Enabled(true), dir.path())
            .unwrap()
            .unwrap();
        assert!(!b.generated);
        assert_eq!(a.fingerprint, b.fingerprint);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        assert!(load(&TlsSetting::Enabled(false), dir.path())
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not a pem").unwrap();
        std::fs::write(&key, "not a pem").unwrap();
        let err = load(
            &TlsSetting::Files {
                cert: cert.clone(),
                key,
            },
            dir.path(),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("c.pem"), "{err:#}");
    }
}
