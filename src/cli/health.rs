//! `cleannvr health`: asks the server running on this machine for
//! `GET /api/health` through its configured listener, for Docker's
//! `HEALTHCHECK`, systemd and monitoring scripts (no curl needed). Exit 0
//! with one line when it answers `ok`; 1 with the reason otherwise.
//!
//! The listener's wildcard address (`0.0.0.0`, `[::]`) is reached on
//! loopback. With TLS the server must present exactly the certificate in
//! its configured (or generated) certificate file: pinned, so a self-signed
//! certificate or one issued for the public host name both check out on
//! `127.0.0.1`, and nothing else listening on that port passes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::{Config, TlsSetting};

/// The whole check, connection to answer, must fit in this.
const DEADLINE: Duration = Duration::from_secs(10);
/// A health answer is a few dozen bytes.
const MAX_BODY: usize = 16 * 1024;

/// Runs the check and prints the verdict.
pub fn health_cmd(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let target = Target::of(&config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = target.url();
    match rt.block_on(async { tokio::time::timeout(DEADLINE, target.check()).await }) {
        Ok(Ok(body)) => {
            println!(
                "healthy: cleannvr {} at {url}, up {} s",
                body["version"].as_str().unwrap_or("?"),
                body["uptime_seconds"].as_u64().unwrap_or(0)
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => {
            println!("unhealthy: {url}: {e:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            println!(
                "unhealthy: {url}: no answer within {} s",
                DEADLINE.as_secs()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where and how to ask.
struct Target {
    addr: SocketAddr,
    /// The certificate file to pin; `None` for `tls = false`.
    cert: Option<PathBuf>,
}

impl Target {
    fn of(config: &Config) -> anyhow::Result<Target> {
        let listen = &config.server.listen;
        let mut addr = listen
            .to_socket_addrs()
            .with_context(|| format!("[server] listen = {listen:?}"))?
            .next()
            .with_context(|| format!("[server] listen = {listen:?} names no address"))?;
        if addr.port() == 0 {
            bail!("[server] listen = {listen:?} has port 0: the server's port cannot be known");
        }
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let cert = match &config.server.tls {
            TlsSetting::Enabled(false) => None,
            TlsSetting::Enabled(true) => {
                Some(crate::web::tls::generated_cert_path(&config.storage.dir))
            }
            TlsSetting::Files { cert, .. } => Some(cert.clone()),
        };
        Ok(Target { addr, cert })
    }

    fn url(&self) -> String {
        let scheme = if self.cert.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/api/health", self.addr)
    }

    /// Connects, asks, and returns the JSON if it says `ok`.
    async fn check(&self) -> anyhow::Result<serde_json::Value> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .context("connecting (is cleannvr running?)")?;
        let body = match &self.cert {
            None => get(TokioIo::new(tcp), self.addr).await?,
            Some(path) => {
                let tls = pinned_client(path)?;
                let name = ServerName::IpAddress(self.addr.ip().into());
                let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                get(TokioIo::new(stream), self.addr).await?
            }
        };
        let json: serde_json::Value =
            serde_json::from_slice(&body).context("the answer is not JSON")?;
        if json["status"] != "ok" {
            bail!("status is {}", json["status"]);
        }
        Ok(json)
    }
}

/// `GET /api/health` over an established connection; the body of a 200.
async fn get<T>(io: TokioIo<T>, addr: SocketAddr) -> anyhow::Result<Bytes>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake")?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get("/api/health")
        .header(hyper::header::HOST, addr.to_string())
        .header(
            hyper::header::USER_AGENT,
            concat!("cleannvr-health/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await.context("HTTP request")?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    conn.abort();
    if !status.is_success() {
        bail!("HTTP {status}");
    }
    Ok(body)
}

/// A TLS client that accepts exactly the leaf certificate in `path`.
fn pinned_client(path: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let leaf = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading TLS certificate {}", path.display()))?
        .next()
        .with_context(|| format!("no certificate in {}", path.display()))?
        .with_context(|| format!("parsing TLS certificate {}", path.display()))?;
    let provider = crate::web::tls::provider();
    let verifier = Pinned {
        leaf,
        path: path.to_owned(),
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Trusts one certificate, byte for byte, whatever names it carries; the
/// handshake's signature is still checked against it, so only a holder of
/// its key passes.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    path: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate is not the one in {}",
                self.path.display()
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
