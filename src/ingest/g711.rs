//! G.711 (PCMU/PCMA) to AAC-LC, so cameras that send G.711 (many Hikvision and Dahua
//! models) record with sound that VLC, ffplay and browsers play: MP4 has no G.711 sample
//! entry they read.
//!
//! The samples are expanded here (a few shifts per sample), then encoded by ffmpeg's
//! native `aac` encoder at the camera's own rate. 8 kHz AAC-LC plays in ffplay and in
//! Chromium (MSE and progressive), so nothing is resampled. Audio only: video is never
//! re-encoded.
//!
//! Timing follows the RTP clock, never a packet count: a lost packet leaves a hole that is
//! filled with silence, so later audio keeps its place; a jump too long to fill (or one
//! back in time) re-anchors the output on the new RTP time.

use std::sync::Arc;

use anyhow::{bail, ensure};
use bytes::Bytes;

use crate::frame::{AudioFrame, AudioParams};

/// AAC-LC frame length in samples.
const AAC_FRAME: usize = crate::transcode::aac::FRAME;
/// Target bitrate: speech at 8 kHz mono; G.711 itself spends 64 kbit/s.
const BITRATE: u32 = 32_000;
/// Holes up to this many seconds are filled with silence; longer ones re-anchor.
const MAX_FILL_SECONDS: i64 = 2;

/// The G.711 companding law.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// μ-law (RTP payload type 0, `PCMU`).
    Mu,
    /// A-law (RTP payload type 8, `PCMA`).
    A,
}

impl Law {
    /// From an SDP encoding name as retina reports it (lower case).
    pub fn from_encoding(name: &str) -> Option<Law> {
        match name {
            "pcmu" => Some(Law::Mu),
            "pcma" => Some(Law::A),
            _ => None,
        }
    }

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Law::Mu => "pcmu",
            Law::A => "pcma",
        }
    }

    /// One code to a 16-bit linear sample (ITU-T G.711 expansion, as every decoder does).
    fn expand(self, code: u8) -> i16 {
        match self {
            Law::Mu => {
                let u = !code;
                let t = ((i16::from(u & 0x0f) << 3) + 0x84) << ((u >> 4) & 0x07);
                if u & 0x80 != 0 {
                    0x84 - t
                } else {
                    t - 0x84
                }
            }
            Law::A => {
                let a = code ^ 0x55;
                let seg = (a >> 4) & 0x07;
                let t = i16::from(a & 0x0f) << 4;
                let t = if seg == 0 {
                    t + 8
                } else {
                    (t + 0x108) << (seg - 1)
                };
                if a & 0x80 != 0 {
                    t
                } else {
                    -t
                }
            }
        }
    }
}

/// One camera session's converter. Owned by the ingest task; dropped with the session.
pub struct G711ToAac {
    law: Law,
    enc: crate::transcode::aac::Encoder,
    params: Arc<AudioParams>,
    /// Samples of the AAC frame being filled, as the encoder takes them.
    buf: Vec<f32>,
    /// RTP time of `buf[0]`.
    buf_pts: i64,
    /// RTP time of the next sample expected; `None` before the first packet.
    next: Option<i64>,
    max_fill: i64,
}

impl G711ToAac {
    /// A converter for `law` at `clock_rate` Hz (8000 for every camera seen; RFC 3551 fixes
    /// it) and `channels` (only mono is converted).
    pub fn new(law: Law, clock_rate: u32, channels: u16) -> anyhow::Result<G711ToAac> {
        ensure!(channels == 1, "{channels}-channel G.711 is not converted");
        let enc = crate::transcode::aac::open(clock_rate, BITRATE)?;
        let params = Arc::new(AudioParams {
            rfc6381: "mp4a.40.2".to_owned(),
            sample_rate: clock_rate,
            channels: 1,
            sample_entry: Bytes::from(crate::mp4::mp4a_sample_entry(
                clock_rate, 1, &enc.asc, BITRATE,
            )),
        });
        Ok(G711ToAac {
            law,
            enc,
            params,
            buf: Vec::with_capacity(AAC_FRAME),
            buf_pts: 0,
            next: None,
            max_fill: MAX_FILL_SECONDS * i64::from(clock_rate),
        })
    }

    /// The AAC track this converter produces (timescale = the camera's clock rate).
    pub fn params(&self) -> Arc<AudioParams> {
        self.params.clone()
    }

    /// Takes one RTP packet's G.711 payload, `pts` being its RTP time since the session
    /// start (camera clock, which is also the AAC track's timescale), and appends the AAC
    /// frames completed so far to `out`.
    ///
    /// The encoder holds one frame back (AAC's 1024-sample priming), so output lags input by
    /// up to two frames; each frame's `pts` is where its decoded sound belongs.
    pub fn push(
        &mut self,
        pts: i64,
        payload: &[u8],
        out: &mut Vec<AudioFrame>,
    ) -> anyhow::Result<()> {
        let mut payload = payload;
        match self.next {
            None => self.buf_pts = pts,
            Some(next) => {
                let hole = pts - next;
                if hole > 0 && hole <= self.max_fill {
                    // Lost packets: silence in their place keeps later audio in time.
                    for _ in 0..hole {
                        self.sample(0.0, out)?;
                    }
                } else if hole < 0 && -hole <= self.max_fill {
                    // Duplicated or overlapping: keep only what is new.
                    let skip = usize::try_from(-hole).unwrap_or(usize::MAX);
                    if skip >= payload.len() {
                        return Ok(());
                    }
                    payload = &payload[skip..];
                } else if hole != 0 {
                    // Too long to fill, or back in time (a camera clock reset): finish the
                    // frame with silence and start the next one at the new time.
                    if !self.buf.is_empty() {
                        while !self.buf.is_empty() {
                            self.sample(0.0, out)?;
                        }
                    }
                    self.buf_pts = pts;
                }
            }
        }
        for &code in payload {
            self.sample(f32::from(self.law.expand(code)) / 32768.0, out)?;
        }
        self.next = Some(self.buf_pts + self.buf.len() as i64);
        Ok(())
    }

    /// Adds one sample; encodes when the frame is full.
    fn sample(&mut self, v: f32, out: &mut Vec<AudioFrame>) -> anyhow::Result<()> {
        self.buf.push(v);
        if self.buf.len() < AAC_FRAME {
            return Ok(());
        }
        let pts = self.buf_pts;
        self.buf_pts += AAC_FRAME as i64;
        let r = self.enc.encode(&self.buf, pts, |pkt| {
            let Some(pts) = pkt.pts() else {
                bail!("AAC encoder returned a packet without a timestamp");
            };
            out.push(AudioFrame {
                pts,
                duration: u32::try_from(pkt.duration())
                    .ok()
                    .filter(|d| *d > 0)
                    .unwrap_or(AAC_FRAME as u32),
                data: Bytes::copy_from_slice(pkt.data().unwrap_or_default()),
            });
            Ok(())
        });
        self.buf.clear();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ffmpeg_next as ffmpeg;

    const PACKET: usize = 160; // 20 ms at 8 kHz, what cameras send

    /// `n` packets of a 440 Hz tone starting at RTP time `t0`, every `PACKET` samples.
    fn tone(law: Law, t0: i64, n: usize) -> Vec<(i64, Vec<u8>)> {
        // Encode by searching the expansion table: slow but obviously right for a test.
        let table: Vec<i16> = (0..=255u8).map(|c| law.expand(c)).collect();
        let code = |v: i16| {
            (0..=255u8)
                .min_by_key(|c| (i32::from(table[*c as usize]) - i32::from(v)).abs())
                .unwrap()
        };
        (0..n)
            .map(|p| {
                let start = t0 + (p * PACKET) as i64;
                let data = (0..PACKET as i64)
                    .map(|i| {
                        let t = (start + i) as f64 / 8000.0;
                        code((8000.0 * (t * 440.0 * std::f64::consts::TAU).sin()) as i16)
                    })
                    .collect();
                (start, data)
            })
            .collect()
    }

    fn run(conv: &mut G711ToAac, packets: &[(i64, Vec<u8>)]) -> Vec<AudioFrame> {
        let mut out = Vec::new();
        for (pts, data) in packets {
            conv.push(*pts, data, &mut out).unwrap();
        }
        out
    }

    /// Every frame starts where the previous one ended; returns (first pts, end).
    fn assert_contiguous(frames: &[AudioFrame]) -> (i64, i64) {
        for w in frames.windows(2) {
            assert_eq!(w[0].pts + i64::from(w[0].duration), w[1].pts, "{w:?}");
        }
        let last = frames.last().unwrap();
        (frames[0].pts, last.pts + i64::from(last.duration))
    }

    /// Our expansion must agree with ffmpeg's own `pcm_mulaw`/`pcm_alaw` decoders on every
    /// code: they are what VLC and ffplay would have played.
    #[test]
    fn expansion_matches_ffmpegs_g711_decoders() {
        crate::transcode::init().unwrap();
        for (law, id) in [
            (Law::Mu, ffmpeg::codec::Id::PCM_MULAW),
            (Law::A, ffmpeg::codec::Id::PCM_ALAW),
        ] {
            let codec = ffmpeg::decoder::find(id).unwrap();
            let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec);
            // SAFETY: plain fields of a fresh context, set before the decoder opens.
            unsafe {
                let c = ctx.as_mut_ptr();
                (*c).sample_rate = 8000;
                ffmpeg::ffi::av_channel_layout_default(&mut (*c).ch_layout, 1);
            }
            let mut dec = ctx.decoder().audio().unwrap();
            let codes: Vec<u8> = (0..=255).collect();
            dec.send_packet(&ffmpeg::Packet::copy(&codes)).unwrap();
            let mut frame = ffmpeg::frame::Audio::empty();
            dec.receive_frame(&mut frame).unwrap();
            assert_eq!(frame.samples(), 256);
            let theirs = frame.plane::<i16>(0);
            let ours: Vec<i16> = codes.iter().map(|c| law.expand(*c)).collect();
            assert_eq!(ours, theirs, "{law:?}");
        }
    }

    #[test]
    fn packets_in_aac_frames_out_on_the_rtp_clock() {
        let mut conv = G711ToAac::new(Law::Mu, 8000, 1).unwrap();
        let p = conv.params();
        assert_eq!(
            (p.sample_rate, p.channels, p.rfc6381.as_str()),
            (8000, 1, "mp4a.40.2")
        );
        assert_eq!(&p.sample_entry[4..8], b"mp4a");
        // 2 s from RTP time 800 (audio clocks rarely start at the video's zero).
        let frames = run(&mut conv, &tone(Law::Mu, 800, 100));
        let (first, end) = assert_contiguous(&frames);
        assert!(frames
            .iter()
            .all(|f| f.duration == 1024 && !f.data.is_empty()));
        // The first frame is the encoder's priming, placed one frame early so the real
        // sound starts at the first packet's time.
        assert_eq!(first, 800 - 1024);
        // 16000 samples in: 15 whole frames sent to the encoder, which keeps the last one
        // back (its look-ahead); the priming frame stands in for it.
        assert_eq!(frames.len(), 15 - 1);
        assert_eq!(end, 800 + 13 * 1024);
    }

    #[test]
    fn lost_packets_become_silence_and_later_audio_keeps_its_time() {
        let mut all = tone(Law::A, 0, 100);
        let mut conv = G711ToAac::new(Law::A, 8000, 1).unwrap();
        let reference = run(&mut conv, &all);
        // Lose 5 packets (100 ms) in the middle; duplicate one; nothing else changes.
        all.drain(40..45);
        all.insert(60, all[59].clone());
        let mut conv = G711ToAac::new(Law::A, 8000, 1).unwrap();
        let frames = run(&mut conv, &all);
        assert_contiguous(&frames);
        let pts = |f: &[AudioFrame]| f.iter().map(|f| f.pts).collect::<Vec<_>>();
        assert_eq!(pts(&frames), pts(&reference));
    }

    #[test]
    fn a_long_jump_re_anchors_on_the_new_rtp_time() {
        let mut packets = tone(Law::Mu, 0, 50); // 8000 samples
        packets.extend(tone(Law::Mu, 8000 + 10 * 8000, 50)); // 10 s later
        let mut conv = G711ToAac::new(Law::Mu, 8000, 1).unwrap();
        let frames = run(&mut conv, &packets);
        let jumps: Vec<(i64, i64)> = frames
            .windows(2)
            .filter(|w| w[0].pts + i64::from(w[0].duration) != w[1].pts)
            .map(|w| (w[0].pts, w[1].pts))
            .collect();
        // The frame cut short by the jump was padded to 1024 (ending at 8192), and the next
        // one starts exactly at the new RTP time.
        assert_eq!(jumps, [(8192 - 1024, 88_000)]);
        // Frames after the jump keep to the RTP clock.
        assert!(frames.iter().any(|f| f.pts == 88_000 + 1024));
    }

    #[test]
    fn stereo_is_refused() {
        assert!(G711ToAac::new(Law::Mu, 8000, 2).is_err());
    }
}
