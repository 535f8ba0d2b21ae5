//! Ingest: pulls each camera's RTSP stream with `retina` and turns it into
//! codec parameters and timestamped frames for the recorder.
//!
//! Owns: the RTSP session and reconnect policy, and turning camera audio into AAC
//! (G.711 is converted here, in memory); it reports into the
//! `status` board and emits the `frame` model.
//! Never touches the disk; it only hands frames on through a bounded channel.

pub mod audio;
pub mod audio_rtp;
pub mod backoff;
pub mod damage;
pub mod g711;
pub mod h264_rtp;
pub mod h265_rtp;
pub mod metadata_rtp;
pub mod nal_rtp;
pub mod open;
pub mod paced;
pub mod rtsp;
pub mod session;
pub mod sync;
pub mod transport;
pub mod when_woken;
