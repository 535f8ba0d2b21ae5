//! "Test before save": connects to a camera as ingest would (ONVIF lookup,
//! DESCRIBE, SETUP, PLAY), waits for the first key frame and reports the
//! codec, the resolution and a snapshot, or why it failed in plain words.
//! Nothing is recorded and nothing is kept.

use std::time::Duration;

use serde::Serialize;

use crate::config::{CameraConfig, Transport};
use crate::ingest::open::{Item, OpenError, OpenRequest, Opener};
use crate::ingest::transport::Proto;

/// How long a test may take in all: a camera that has not sent a key frame by
/// then will not record well either (key frames at least every 10 s).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// What a successful test found.
#[derive(Debug, Serialize)]
pub struct Found {
    /// RFC 6381 codec, e.g. `avc1.42c01e`.
    pub codec: String,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// What becomes of the camera's audio (as in the camera status), if it sends any.
    pub audio: Option<String>,
    /// Transport used: `tcp` or `udp`.
    pub transport: &'static str,
    /// The first key frame as JPEG, 640 pixels wide at most.
    #[serde(skip)]
    pub jpeg: Option<bytes::Bytes>,
    /// Why there is no snapshot (the decoder failed), if there is none.
    pub snapshot_error: Option<String>,
}

/// Connects to `camera` and waits for its first key frame, at most [`TIMEOUT`].
/// The error is a sentence for the person typing the URL; it never holds a password.
pub async fn probe(camera: &CameraConfig, opener: &dyn Opener) -> Result<Found, String> {
    match tokio::time::timeout(TIMEOUT, probe_inner(camera, opener)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the camera sent no key frame within {} s",
            TIMEOUT.as_secs()
        )),
    }
}

async fn probe_inner(camera: &CameraConfig, opener: &dyn Opener) -> Result<Found, String> {
    let mut source = crate::onvif::StreamSource::new(camera);
    let raw = source
        .url()
        .await
        .map_err(|e| format!("could not get the stream address over ONVIF: {e:#}"))?;
    let (url, creds) = camera
        .stream_url_and_credentials(&raw)
        .map_err(|e| format!("{e:#}"))?;
    let proto = match camera.transport {
        Transport::Udp => Proto::Udp,
        Transport::Auto | Transport::Tcp => Proto::Tcp,
    };
    let opened = opener
        .open(OpenRequest {
            url,
            creds,
            proto,
            metadata: false,
        })
        .await
        .map_err(plain)?;
    let mut session = opened.session;
    let mut params = None;
    loop {
        let item = match session.next().await {
            None => return Err("the camera ended the stream before sending a key frame".into()),
            Some(Err(f)) => return Err(format!("the stream failed: {:#}", f.error)),
            Some(Ok(item)) => item,
        };
        let Item::Video(v) = item else { continue };
        if let Some(p) = v.new_params {
            params = Some(p);
        }
        let (Some(p), true) = (&params, v.random_access) else {
            continue;
        };
        let (entry, data) = (p.sample_entry.clone(), v.data);
        let shot = tokio::task::spawn_blocking(move || {
            crate::transcode::snapshot::decode_key_frame(&entry, &data, Some(640))
        })
        .await
        .map_err(|e| e.to_string())?;
        let (jpeg, snapshot_error) = match shot {
            Ok(s) => (Some(s.jpeg), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        return Ok(Found {
            codec: p.rfc6381.clone(),
            width: p.width,
            height: p.height,
            audio: opened.audio_status,
            transport: proto.as_str(),
            jpeg,
            snapshot_error,
        });
    }
}

/// An open failure in words: what the camera said, and what to check.
fn plain(e: OpenError) -> String {
    match e {
        OpenError::NoVideo(why) | OpenError::AudioOnly(why) => why,
        OpenError::Request {
            status: Some(401), ..
        } => "the camera refused the username or password (401 Unauthorized)".into(),
        OpenError::Request {
            status: Some(404), ..
        } => "the camera has no stream at that address (404 Not Found): check the path".into(),
        OpenError::Request {
            step,
            status: Some(s),
            error,
        } => format!("the camera answered {s} to {step}: {error:#}"),
        OpenError::Request { step, error, .. } => {
            format!("could not {step} the stream (is the address and port right, and the camera on?): {error:#}")
        }
    }
}
