//! The seam between the per-camera reconnect loop and the RTSP client.
//!
//! The loop ([`super::session`]) decides when to connect, how long to wait,
//! which transport to ask for and when a session has stalled; an [`Opener`]
//! only opens one session (DESCRIBE, SETUP, PLAY) and hands out its items.
//! Production uses [`super::rtsp::RetinaOpener`]; unit tests script sessions
//! that fail with 401, 461 or silence, or yield frames, and run the loop on a
//! [`crate::clock::ManualClock`], so reconnect policy is tested without
//! cameras or real time.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::transport::Proto;
use crate::frame::{AudioFrame, AudioParams, VideoParams};

/// What the loop asks for: one session to this URL over this transport.
#[derive(Clone)]
pub struct OpenRequest {
    /// The RTSP URL, without credentials.
    pub url: url::Url,
    /// Username and password, kept out of the URL (and so out of errors).
    pub creds: Option<(String, String)>,
    /// RTP transport to SET UP.
    pub proto: Proto,
    /// Whether to SET UP the ONVIF metadata track too, when the camera offers one.
    pub metadata: bool,
}

/// Hides the password, so a request can be logged.
impl std::fmt::Debug for OpenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenRequest")
            .field("url", &self.url.as_str())
            .field("user", &self.creds.as_ref().map(|(u, _)| u))
            .field("proto", &self.proto)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Opens RTSP sessions. One per camera, shared by all its reconnects.
pub trait Opener: Send + Sync + 'static {
    /// DESCRIBE, SETUP and PLAY; the session is streaming when this returns.
    fn open(&self, req: OpenRequest) -> BoxFuture<'_, Result<Opened, OpenError>>;
}

/// A playing session.
pub struct Opened {
    /// Its items, in arrival order.
    pub session: Box<dyn Session>,
    /// Parameters of the audio track that is recorded, if any.
    pub audio: Option<Arc<AudioParams>>,
    /// What becomes of the camera's audio, for the status (see `CameraStatus::audio`).
    pub audio_status: Option<String>,
    /// Whether the session carries the camera's ONVIF metadata track.
    pub metadata: bool,
    /// Why the camera's metadata track is missing although it offers one
    /// (its SETUP was refused); the session records video without it.
    pub metadata_refused: Option<String>,
    /// Why the camera's metadata track is left alone although it offers one
    /// and it was asked for (see `rtsp`); the session records video without it.
    pub metadata_unread: Option<String>,
}

/// Longest ONVIF metadata document kept. Real ones are a few kilobytes (an
/// analytics frame with dozens of objects, tens); one that grows past this
/// while being reassembled is dropped there and the rest of it skipped
/// (`metadata_rtp`), so a hostile camera cannot make the NVR hold more than
/// this per camera, however long its document.
pub const MAX_METADATA_DOCUMENT: usize = 256 * 1024;

/// One document of the ONVIF metadata track (`application/vnd.onvif.metadata`),
/// reassembled from its RTP packets (the marker bit ends a document).
#[derive(Debug)]
pub enum MetadataDocument {
    /// The XML, at most [`MAX_METADATA_DOCUMENT`] bytes.
    Xml(Bytes),
    /// A document that grew past the cap: dropped when it reached this many
    /// bytes (so at least this long), the rest of it skipped.
    TooLarge(usize),
    /// A metadata packet that could not be reassembled (lost, a document cut
    /// short, or the client's first error line). Its document is lost;
    /// video is not touched.
    Damaged(String),
}

/// Why a session could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// A step failed. `step` names it for people (`DESCRIBE`, `SETUP video`,
    /// `SETUP audio`, `PLAY`, `demux`); `status` is the RTSP status the camera
    /// answered, if it answered one.
    Request {
        /// Which request.
        step: &'static str,
        /// The camera's RTSP status code.
        status: Option<u16>,
        /// The error, for the log and the status.
        error: anyhow::Error,
    },
    /// The camera answered but offers nothing we can record; plain words.
    NoVideo(String),
    /// The camera offers sound and nothing else (no video track at all); plain words.
    AudioOnly(String),
}

/// An error that ends a playing session.
#[derive(Debug)]
pub struct Failure {
    /// The camera's RTSP status code, if the error was an answer.
    pub status: Option<u16>,
    /// What went wrong.
    pub error: anyhow::Error,
}

/// One thing a playing session delivered.
#[derive(Debug)]
pub enum Item {
    /// A complete video access unit.
    Video(RawVideo),
    /// Audio already in the recorded form (AAC), with the RTP packets lost before it.
    Audio {
        /// RTP packets lost before these frames.
        loss: u16,
        /// Recorded frames (a converted G.711 packet may yield none or several).
        frames: Vec<AudioFrame>,
    },
    /// A document of the metadata track (only when asked for).
    Metadata(MetadataDocument),
    /// Data the client could not reassemble (a malformed packet, a join in
    /// the middle of a fragmented frame). Costs frames up to the next key
    /// frame, not the session. The text is the client's first error line.
    Damaged(String),
}

/// A video frame as the client hands it over, before the loop decides whether to keep it.
#[derive(Debug)]
pub struct RawVideo {
    /// 90 kHz timestamp since the session started.
    pub pts: i64,
    /// Whether the client marked it as a random access point.
    pub random_access: bool,
    /// RTP packets lost before it.
    pub loss: u16,
    /// New codec parameters: set on the session's first frame and whenever they change.
    pub new_params: Option<VideoParams>,
    /// Length-prefixed NAL units.
    pub data: Vec<u8>,
}

/// A playing session's item stream.
pub trait Session: Send {
    /// The next item; `None` when the camera ended the stream. A pending
    /// future is a silent camera: the loop's stall timer decides when to give up.
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Item, Failure>>>;
}
