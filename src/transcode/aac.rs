//! AAC-LC from ffmpeg's native encoder, mono: the encoder setup shared by G.711
//! conversion at ingest ([`crate::ingest::g711`]) and the silent audio track of a muted
//! export ([`silent_track`]). Owns no files and no timing: callers place the frames.

use anyhow::{bail, ensure, Context as _};
use ffmpeg_next as ffmpeg;

/// AAC-LC frame length in samples.
pub const FRAME: usize = 1024;
/// Bit rate of a silent track: the encoder spends next to nothing on silence anyway.
const SILENT_BITRATE: u32 = 16_000;

/// An opened mono AAC-LC encoder (planar f32 in) and the AudioSpecificConfig it wrote,
/// which belongs in the track's sample entry ([`crate::mp4::mp4a_sample_entry`]).
pub struct Encoder {
    /// The encoder; its time base is one sample.
    pub enc: ffmpeg::encoder::Audio,
    /// AudioSpecificConfig (ISO 14496-3 1.6.2.1).
    pub asc: Vec<u8>,
}

/// Opens a mono AAC-LC encoder at `rate` Hz and `bitrate` bit/s.
pub fn open(rate: u32, bitrate: u32) -> anyhow::Result<Encoder> {
    super::init()?;
    let codec =
        ffmpeg::encoder::find(ffmpeg::codec::Id::AAC).context("no AAC encoder in this FFmpeg")?;
    let r = i32::try_from(rate).context("sample rate")?;
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .context("creating AAC encoder")?;
    ctx.set_rate(r);
    ctx.set_channel_layout(ffmpeg::ChannelLayout::MONO);
    ctx.set_format(ffmpeg::format::Sample::F32(
        ffmpeg::format::sample::Type::Planar,
    ));
    ctx.set_bit_rate(bitrate as usize);
    ctx.set_time_base((1, r));
    // The AudioSpecificConfig goes into the sample entry, never in-band.
    ctx.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    let enc = ctx
        .open_as(codec)
        .with_context(|| format!("opening the AAC encoder at {rate} Hz"))?;
    ensure!(
        enc.frame_size() as usize == FRAME,
        "AAC encoder frame size {} (expected {FRAME})",
        enc.frame_size()
    );
    // SAFETY: the opened encoder owns its extradata (the AudioSpecificConfig it wrote on
    // open) for as long as `enc` lives; it is copied out before `enc` moves.
    let asc = unsafe {
        let c = enc.as_ptr();
        let n = usize::try_from((*c).extradata_size).unwrap_or(0);
        if (*c).extradata.is_null() || n == 0 {
            bail!("AAC encoder wrote no AudioSpecificConfig");
        }
        std::slice::from_raw_parts((*c).extradata, n).to_vec()
    };
    Ok(Encoder { enc, asc })
}

impl Encoder {
    /// Encodes one frame of [`FRAME`] samples at `pts`; calls `out(packet)` for every
    /// packet the encoder returns (it holds one frame back: AAC's priming).
    pub fn encode(
        &mut self,
        samples: &[f32],
        pts: i64,
        mut out: impl FnMut(&ffmpeg::Packet) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        ensure!(samples.len() == FRAME, "an AAC frame is {FRAME} samples");
        let mut frame = ffmpeg::frame::Audio::new(
            ffmpeg::format::Sample::F32(ffmpeg::format::sample::Type::Planar),
            FRAME,
            ffmpeg::ChannelLayout::MONO,
        );
        frame.set_rate(self.enc.rate());
        frame.plane_mut::<f32>(0).copy_from_slice(samples);
        frame.set_pts(Some(pts));
        self.enc.send_frame(&frame).context("encoding AAC")?;
        let mut pkt = ffmpeg::Packet::empty();
        while self.enc.receive_packet(&mut pkt).is_ok() {
            out(&pkt)?;
        }
        Ok(())
    }
}

/// What a muted export's audio track is made of: one AAC-LC frame of digital silence
/// (every decoded sample 0), repeated in place of each of the source's frames, and the
/// `mp4a` sample entry to go with it.
#[derive(Clone, Debug)]
pub struct Silence {
    /// One encoded frame of [`FRAME`] silent samples.
    pub frame: Vec<u8>,
    /// The track's `mp4a` sample entry (mono AAC-LC at the source's rate).
    pub sample_entry: Vec<u8>,
}

/// A silent frame and sample entry at `rate` Hz (the source track's rate, so its
/// timescale and every frame's duration and place stay as they were).
pub fn silent_track(rate: u32) -> anyhow::Result<Silence> {
    let mut e = open(rate, SILENT_BITRATE)?;
    let zeros = vec![0.0f32; FRAME];
    let mut packets: Vec<Vec<u8>> = Vec::new();
    // A few frames in: past the priming frame, the encoder is in its steady state.
    for i in 0..4 {
        e.encode(&zeros, i * FRAME as i64, |p| {
            packets.push(p.data().unwrap_or_default().to_vec());
            Ok(())
        })?;
    }
    let frame = packets
        .into_iter()
        .nth(1)
        .context("the AAC encoder returned too few frames of silence")?;
    Ok(Silence {
        frame,
        sample_entry: crate::mp4::mp4a_sample_entry(rate, 1, &e.asc, SILENT_BITRATE),
    })
}

#[cfg(test)]
/// An AAC decoder for an AudioSpecificConfig, for tests that decode what we
/// write (our own silent frames, converted sound).
pub(crate) fn decoder_for(asc: &[u8]) -> ffmpeg::decoder::Audio {
    let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::AAC).unwrap();
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec);
    // SAFETY: a fresh context's extradata, set before the decoder opens; ffmpeg
    // frees it with the context (allocated with its own allocator, padded).
    unsafe {
        let c = ctx.as_mut_ptr();
        let buf = ffmpeg::ffi::av_mallocz(asc.len() + 64) as *mut u8;
        std::ptr::copy_nonoverlapping(asc.as_ptr(), buf, asc.len());
        (*c).extradata = buf;
        (*c).extradata_size = asc.len() as i32;
    }
    ctx.decoder().audio().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten copies of the silent frame, decoded by ffmpeg's AAC decoder under the track's
    /// AudioSpecificConfig, are 10 × 1024 samples that are all exactly zero.
    #[test]
    fn the_silent_frame_decodes_to_zeros() {
        for rate in [8000, 16_000, 44_100, 48_000] {
            let s = silent_track(rate).unwrap();
            assert_eq!(&s.sample_entry[4..8], b"mp4a");
            let asc = open(rate, SILENT_BITRATE).unwrap().asc;
            let mut dec = decoder_for(&asc);
            let mut n = 0;
            let mut frame = ffmpeg::frame::Audio::empty();
            for _ in 0..10 {
                dec.send_packet(&ffmpeg::Packet::copy(&s.frame)).unwrap();
                while dec.receive_frame(&mut frame).is_ok() {
                    assert_eq!(frame.rate(), rate);
                    let pcm = frame.plane::<f32>(0);
                    assert!(
                        pcm.iter().all(|v| *v == 0.0),
                        "{rate} Hz: a sample is not 0"
                    );
                    n += pcm.len();
                }
            }
            assert!(n >= 9 * FRAME, "{rate} Hz: {n} samples decoded");
        }
    }
}
