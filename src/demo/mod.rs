//! The built-in synthetic camera: a loopback-only RTSP server that loops a
//! pre-encoded H.264 clip with a burned-in clock.
//!
//! It exists for `cleannvr demo` (a zero-setup first run) and as cheap load for
//! the benchmarks. It is never used for, and never talks to, real cameras; it
//! only speaks the subset of RTSP/RTP that our own ingest, retina and ffmpeg
//! need (TCP-interleaved transport only).
//!
//! * [`encode`] renders and encodes the clip once with ffmpeg-next + libx264.
//! * [`rtsp`] packetizes that clip once (RFC 6184) and serves it to any number
//!   of clients, each paced by its own timer.

pub mod encode;
pub mod rtsp;

pub use encode::encode_clip;
pub use rtsp::{serve, serve_with, ServeOptions, ServeStats};

use bytes::Bytes;

/// Parameters for [`encode_clip`].
#[derive(Clone, Debug)]
pub struct ClipOptions {
    /// Picture width in pixels (must be even).
    pub width: u32,
    /// Picture height in pixels (must be even).
    pub height: u32,
    /// Frames per second; also the RTP pacing rate.
    pub fps: u32,
    /// Target average bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Distance between IDR frames, in frames.
    pub gop_frames: u32,
    /// Clip length before it loops (rounded up to whole GOPs).
    pub seconds: u32,
}

impl ClipOptions {
    /// The `cleannvr demo` stream: 640x360, 25 fps, 1000 kbit/s, 1 s GOP, 10 s loop.
    pub fn demo() -> Self {
        ClipOptions {
            width: 640,
            height: 360,
            fps: 25,
            bitrate_kbps: 1000,
            gop_frames: 25,
            seconds: 10,
        }
    }

    /// Benchmark main stream: 1920x1080, 25 fps, 4000 kbit/s, 2 s GOP, 10 s loop.
    pub fn bench_main() -> Self {
        ClipOptions {
            width: 1920,
            height: 1080,
            fps: 25,
            bitrate_kbps: 4000,
            gop_frames: 50,
            seconds: 10,
        }
    }

    /// Benchmark sub stream: 640x360, 25 fps, 512 kbit/s, 2 s GOP, 10 s loop.
    pub fn bench_sub() -> Self {
        ClipOptions {
            width: 640,
            height: 360,
            fps: 25,
            bitrate_kbps: 512,
            gop_frames: 50,
            seconds: 10,
        }
    }
}

/// A pre-encoded looping H.264 clip (Constrained Baseline, no B-frames, closed
/// GOPs), so decode order equals presentation order and any key frame is a
/// valid place to start or loop.
#[derive(Clone, Debug)]
pub struct Clip {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frames per second the clip was encoded for.
    pub fps: u32,
    /// Sequence parameter set NAL (no start code).
    pub sps: Bytes,
    /// Picture parameter set NAL (no start code).
    pub pps: Bytes,
    /// Access units in decode order; the first is always a key frame.
    pub frames: Vec<ClipFrame>,
}

/// One access unit of a [`Clip`].
#[derive(Clone, Debug)]
pub struct ClipFrame {
    /// VCL NAL units without start codes. SPS/PPS are kept out of here (they
    /// live in [`Clip::sps`]/[`Clip::pps`]) so the sender decides when to
    /// repeat them.
    pub nals: Vec<Bytes>,
    /// True for IDR access units.
    pub is_key: bool,
}
