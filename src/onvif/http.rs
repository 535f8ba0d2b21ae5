//! One HTTP/1.1 POST per SOAP call, over plain TCP, with a deadline and a
//! cap on the reply size.
//!
//! A fresh connection per call keeps this simple and is what cameras expect
//! from ONVIF clients; the calls are rare (start-up, re-resolve, audit).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use super::xml::MAX_DOCUMENT_BYTES;

/// Per-call deadline: connect, send, and read the whole reply.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A reply, read in full (up to [`MAX_DOCUMENT_BYTES`]).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `WWW-Authenticate` values, for the HTTP digest fallback.
    pub www_authenticate: Vec<String>,
    /// The body.
    pub body: Bytes,
}

/// Why a call got no usable reply. Messages never include credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used (not `http://host[:port]/...`).
    #[error("unsupported service address {0}")]
    BadUrl(String),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(String),
    /// No complete reply within [`CALL_TIMEOUT`].
    #[error("no reply within {} s", CALL_TIMEOUT.as_secs())]
    Timeout,
    /// The reply body is larger than we are willing to read.
    #[error("reply larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
}

/// POSTs a SOAP 1.2 body. `action` goes in the Content-Type `action`
/// parameter (SOAP 1.2) and the `SOAPAction` header (read by firmware, and by
/// ipycam, that never moved past SOAP 1.1 conventions).
pub async fn post(
    url: &url::Url,
    action: &str,
    body: String,
    authorization: Option<&str>,
) -> Result<Reply, HttpError> {
    tokio::time::timeout(CALL_TIMEOUT, post_inner(url, action, body, authorization))
        .await
        .map_err(|_| HttpError::Timeout)?
}

async fn post_inner(
    url: &url::Url,
    action: &str,
    body: String,
    authorization: Option<&str>,
) -> Result<Reply, HttpError> {
    if url.scheme() != "http" {
        // HTTPS device services exist but are rare on LAN cameras; add rustls here if needed.
        return Err(HttpError::BadUrl(redacted(url)));
    }
    let host = url
        .host_str()
        .ok_or_else(|| HttpError::BadUrl(redacted(url)))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| HttpError::Io(format!("connecting to {host}:{port}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| HttpError::Io(format!("HTTP handshake: {e}")))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or(host)),
        None => url.host_str().unwrap_or(host).to_owned(),
    };
    let mut req = hyper::Request::post(path)
        .header(hyper::header::HOST, host_header)
        .header(
            hyper::header::CONTENT_TYPE,
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
        )
        .header("SOAPAction", format!("\"{action}\""))
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .header(
            hyper::header::USER_AGENT,
            concat!("cleannvr/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(a) = authorization {
        req = req.header(hyper::header::AUTHORIZATION, a);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| HttpError::Io(format!("building request: {e}")))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| HttpError::Io(format!("HTTP: {e}")))?;
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get_all(hyper::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    // Refuse early when the camera announces a body we will not read anyway.
    let announced = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
        conn.abort();
        return Err(HttpError::TooLarge);
    }
    // `Limited` stops reading at the cap, so a camera streaming an endless
    // chunked body costs at most a megabyte.
    let body = Limited::new(resp.into_body(), MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                HttpError::TooLarge
            } else {
                HttpError::Io(format!("reading reply: {e}"))
            }
        })?
        .to_bytes();
    conn.abort();
    Ok(Reply {
        status,
        www_authenticate,
        body,
    })
}

/// A URL without userinfo, for messages.
pub fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}
