//! Our own small ISO-BMFF (fragmented MP4) box writer and scanner.
//!
//! Owns the on-disk segment format: `ftyp` + `moov` (empty sample tables, `mvex`/`trex`)
//! followed by `moof` + `mdat` pairs, one per fragment. Every segment must play on its own
//! in ffplay/VLC, so footage never depends on our index to be readable.
//!
//! `write` only appends bytes to a `Vec<u8>`; `scan` and `read` only read through the
//! `Read + Seek` handed to them (plus `scan_path`, which opens one file). This module never does any other
//! I/O, never touches the index, and never decodes media.

pub mod codec;
pub mod read;
pub mod scan;
pub mod write;

#[cfg(test)]
mod mutation_tests;

pub use codec::{codec_string, decoder_config};
pub use read::*;
pub use scan::*;
pub use write::*;

/// What kind of media a track carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackKind {
    /// Video with display dimensions in pixels (written to `tkhd`).
    Video {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// Audio; the sample entry itself carries the details, these are informational.
    Audio {
        /// Samples per second.
        sample_rate: u32,
        /// Number of channels.
        channels: u16,
    },
}

/// One track in a segment's init (`moov`).
#[derive(Clone, Debug)]
pub struct TrackConfig {
    /// 1-based track id, unique within the segment.
    pub track_id: u32,
    /// Video or audio, with the dimensions/rate for the headers.
    pub kind: TrackKind,
    /// Ticks per second: 90000 for video, the sample rate for audio.
    pub timescale: u32,
    /// Complete sample entry box for `stsd` (e.g. `avc1` with `avcC`, `hvc1` with `hvcC`,
    /// `mp4a` with `esds`), as produced by retina's `mp4_sample_entry().build()`.
    pub sample_entry: Vec<u8>,
}

/// One sample (frame) in a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Size in bytes of the sample data in `mdat`.
    pub size: u32,
    /// Key frame (decodable on its own). Audio samples are always sync.
    pub is_sync: bool,
    /// Composition time minus decode time, in the track's timescale.
    pub composition_offset: i32,
}

/// The samples of one track within one fragment.
#[derive(Clone, Copy, Debug)]
pub struct TrackRun<'a> {
    /// Track these samples belong to.
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale, since the segment start.
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: &'a [Sample],
}
