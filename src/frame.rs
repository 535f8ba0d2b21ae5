//! The frame model shared along the data flow: codec parameters and
//! timestamped frames as ingest emits them and the recorder, live hub and
//! transcoders consume them.
//!
//! Owns: plain data types only. Knows nothing of RTSP, disks or viewers, so
//! every stage can depend on it without depending on another stage.

use std::sync::Arc;

use bytes::Bytes;

/// Video codecs we record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

/// Everything needed to describe a video track in an MP4 init segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// Codec family.
    pub codec: VideoCodec,
    /// RFC 6381 codec string, e.g. `avc1.640028`.
    pub rfc6381: String,
    /// Display width in pixels.
    pub width: u16,
    /// Display height in pixels.
    pub height: u16,
    /// Complete `avc1`/`hvc1` sample entry box.
    pub sample_entry: Bytes,
}

/// Everything needed to describe an audio track in an MP4 init segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParams {
    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub rfc6381: String,
    /// Sample rate, also the track timescale.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Complete `mp4a` sample entry box.
    pub sample_entry: Bytes,
}

/// One encoded picture (4-byte length-prefixed NAL units, no in-band parameter sets).
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// Presentation time in 90 kHz units since the start of this RTSP session.
    pub pts: i64,
    /// Wall time the frame finished arriving, ns since the epoch.
    pub received_ns: i64,
    /// Whether a decoder can start here.
    pub is_key: bool,
    /// Parameters in effect; a different `Arc` means the camera changed them.
    pub params: Arc<VideoParams>,
    /// Frame data.
    pub data: Bytes,
}

/// One encoded audio frame (raw AAC access unit).
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// Presentation time in the audio clock rate since the start of this session.
    pub pts: i64,
    /// Duration in the audio clock rate (1024 for AAC-LC).
    pub duration: u32,
    /// Frame data.
    pub data: Bytes,
}

/// What ingest tells the recorder, in order.
#[derive(Clone, Debug)]
pub enum IngestEvent {
    /// A new RTSP session is streaming; timestamps restart.
    SessionStarted {
        /// Audio parameters when the camera sends audio we can record.
        audio: Option<Arc<AudioParams>>,
    },
    /// A video frame.
    Video(VideoFrame),
    /// An audio frame.
    Audio(AudioFrame),
    /// Frames were dropped (the recorder fell behind); the next frame sent is a key frame.
    Gap,
    /// The session ended (error or end of stream); a new `SessionStarted` may follow.
    SessionEnded,
}
