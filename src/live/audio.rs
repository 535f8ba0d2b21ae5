//! The audio track of one viewer's live timeline: the camera's AAC frames laid end to end
//! on the picture's timeline, with silence where the camera sends none.
//!
//! Why silence: a browser plays a muxed MSE stream only as far as *both* tracks are
//! buffered. A camera whose audio stops (or starts late, or loses packets) would freeze
//! the picture at the last audio sample. So once audio falls more than [`STALL_SECONDS`]
//! behind the picture, silent frames keep it [`SILENCE_BEHIND_MS`] behind until the
//! camera's sound comes back (its frames for time already covered are dropped): the
//! picture hitches once, for under a second, and then never waits for sound.
//!
//! Only AAC-LC in one or two channels is served live ([`servable`]): that is what every
//! browser's MSE decodes, and what a silent frame can be written for without an encoder.

use std::sync::Arc;

use bytes::Bytes;

use crate::frame::{AudioFrame, AudioParams};
use crate::mp4::{Sample, TrackConfig, TrackKind};

/// Track id of the audio track in a live init segment (video is 1).
pub const TRACK_ID: u32 = 2;

/// How far (seconds) the sound may lag the picture before silence stands in for it. More
/// than a G.711 camera's conversion delay (about a quarter second) and the odd late
/// packet; little enough that a tile whose camera stops sending sound hardly hitches.
const STALL_SECONDS: i64 = 1;

/// While silence stands in, it trails the picture by this much (ms): the tile plays that
/// much later than it could, but sound that comes back a little late (G.711 conversion
/// delays it by a quarter second) still finds room and is heard.
const SILENCE_BEHIND_MS: i64 = 500;

/// Sound timestamped further ahead of the picture than this (seconds) is not believed
/// (a camera whose audio clock jumped): it is dropped rather than padded up to.
const MAX_AHEAD_SECONDS: i64 = 5;

/// AAC-LC samples per frame, the duration of a silent frame.
const FRAME: i64 = 1024;

/// Whether live viewers get this audio track: AAC-LC (`mp4a.40.2`) in one or two channels.
pub fn servable(p: &AudioParams) -> bool {
    p.rfc6381 == "mp4a.40.2" && (1..=2).contains(&p.channels) && p.sample_rate > 0
}

/// The audio of one viewer's timeline.
pub(crate) struct AudioTrack {
    params: Arc<AudioParams>,
    rate: i64,
    /// The timeline's start (its first key frame) in audio ticks of the camera session.
    base: i64,
    /// Where the next sample goes, audio ticks since the timeline's start.
    end: i64,
    /// End of the picture so far, audio ticks since the timeline's start.
    video_end: i64,
    /// Samples placed but not yet sent, starting at `pending_start`.
    pending: Vec<(Sample, Bytes)>,
    pending_start: i64,
    silence: Bytes,
    /// The camera's sound lagged too far: silence follows the picture until it is back.
    stalled: bool,
    /// Silent frames written so far (tests, logs).
    pub(crate) silent_frames: u64,
}

impl AudioTrack {
    /// The track of a timeline starting at the video time `video_base_pts` (90 kHz), for
    /// [`servable`] parameters.
    pub fn new(params: Arc<AudioParams>, video_base_pts: i64) -> Self {
        let rate = i64::from(params.sample_rate);
        let silence = Bytes::from(silent_frame(params.channels));
        AudioTrack {
            base: video_base_pts * rate / 90_000,
            params,
            rate,
            end: 0,
            video_end: 0,
            pending: Vec::new(),
            pending_start: 0,
            silence,
            stalled: false,
            silent_frames: 0,
        }
    }

    /// The track for the init segment.
    pub fn config(&self) -> TrackConfig {
        TrackConfig {
            track_id: TRACK_ID,
            kind: TrackKind::Audio {
                sample_rate: self.params.sample_rate,
                channels: self.params.channels,
            },
            timescale: self.params.sample_rate,
            sample_entry: self.params.sample_entry.to_vec(),
        }
    }

    /// RFC 6381 codec string of the track.
    pub fn codec(&self) -> &str {
        &self.params.rfc6381
    }

    /// Places one of the camera's frames (its `pts` on the session's video-aligned audio
    /// clock) right after the previous sample. A frame more than half a frame early
    /// overlaps what is placed already (silence stood in for it, or a repeat) and is
    /// dropped; a gap of whole frames is filled with silence; what is left (less than a
    /// frame) is absorbed, so the track stays gapless and within a frame of the camera's time.
    pub fn push(&mut self, a: &AudioFrame) {
        let dur = i64::from(a.duration.max(1));
        let own = a.pts - self.base;
        let d = own - self.end;
        if d < -dur / 2 || own - self.video_end > MAX_AHEAD_SECONDS * self.rate {
            return;
        }
        if d >= dur {
            self.fill(d / FRAME);
        }
        self.place(a.duration, a.data.clone());
        self.stalled = false;
    }

    /// Notes that the picture now reaches `video_end` (90 kHz since the timeline's start).
    /// Once the sound lags it by more than [`STALL_SECONDS`], silence brings the sound up
    /// to [`SILENCE_BEHIND_MS`] behind the picture, at every picture until sound comes back.
    pub fn picture_reaches(&mut self, video_end: u64) {
        let v = i64::try_from(video_end).unwrap_or(i64::MAX / 2) * self.rate / 90_000;
        self.video_end = self.video_end.max(v);
        if self.video_end - self.end > STALL_SECONDS * self.rate {
            self.stalled = true;
        }
        if self.stalled {
            let target = self.video_end - SILENCE_BEHIND_MS * self.rate / 1000;
            if target > self.end {
                self.fill((target - self.end) / FRAME);
            }
        }
    }

    /// Seconds of audio waiting to be sent, in audio ticks.
    pub fn pending_ticks(&self) -> i64 {
        self.end - self.pending_start
    }

    /// Ticks per second.
    pub fn rate(&self) -> i64 {
        self.rate
    }

    /// The samples waiting to be sent: decode time of the first, the samples, their data.
    pub fn take(&mut self) -> Option<(u64, Vec<Sample>, Vec<Bytes>)> {
        if self.pending.is_empty() {
            return None;
        }
        let start = self.pending_start.max(0) as u64;
        let (samples, data) = self.pending.drain(..).unzip();
        self.pending_start = self.end;
        Some((start, samples, data))
    }

    fn fill(&mut self, frames: i64) {
        for _ in 0..frames {
            self.place(FRAME as u32, self.silence.clone());
            self.silent_frames += 1;
        }
    }

    fn place(&mut self, duration: u32, data: Bytes) {
        if self.pending.is_empty() {
            self.pending_start = self.end;
        }
        self.pending.push((
            Sample {
                duration,
                size: data.len() as u32,
                is_sync: true,
                composition_offset: 0,
            },
            data,
        ));
        self.end += i64::from(duration);
    }
}

/// One AAC-LC `raw_data_block()` (ISO 14496-3 4.4.2.1) that decodes to 1024 samples of
/// silence: per channel an individual_channel_stream with no scale factor bands
/// (`max_sfb` 0), hence no spectral data, then END. Mono is one single channel element,
/// stereo one channel pair element without a common window.
pub(crate) fn silent_frame(channels: u16) -> Vec<u8> {
    let mut w = Bits::default();
    let ics = |w: &mut Bits| {
        w.put(8, 100); // global_gain: any value, no band uses it
        w.put(1, 0); // ics_reserved_bit
        w.put(2, 0); // window_sequence: ONLY_LONG_SEQUENCE
        w.put(1, 0); // window_shape
        w.put(6, 0); // max_sfb
        w.put(1, 0); // predictor_data_present
        w.put(1, 0); // pulse_data_present
        w.put(1, 0); // tns_data_present
        w.put(1, 0); // gain_control_data_present
    };
    if channels == 2 {
        w.put(3, 1); // ID_CPE
        w.put(4, 0); // element_instance_tag
        w.put(1, 0); // common_window
        ics(&mut w);
        ics(&mut w);
    } else {
        w.put(3, 0); // ID_SCE
        w.put(4, 0);
        ics(&mut w);
    }
    w.put(3, 7); // ID_END
    w.finish()
}

/// A most-significant-bit-first bit writer.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    used: u32,
}

impl Bits {
    fn put(&mut self, n: u32, v: u32) {
        for i in (0..n).rev() {
            if self.used.is_multiple_of(8) {
                self.out.push(0);
            }
            let bit = ((v >> i) & 1) as u8;
            let last = self.out.last_mut().expect("pushed above");
            *last |= bit << (7 - self.used % 8);
            self.used += 1;
        }
    }

    fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ffmpeg_next as ffmpeg;

    fn params(rate: u32, channels: u16) -> Arc<AudioParams> {
        // AudioSpecificConfig: AAC-LC (2), sampling frequency index, channel configuration.
        let index = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
        ]
        .iter()
        .position(|r| *r == rate)
        .unwrap() as u16;
        let asc = ((2u16 << 11) | (index << 7) | (channels << 3)).to_be_bytes();
        Arc::new(AudioParams {
            rfc6381: "mp4a.40.2".into(),
            sample_rate: rate,
            channels,
            sample_entry: Bytes::from(crate::mp4::mp4a_sample_entry(rate, channels, &asc, 0)),
        })
    }

    fn frame(pts: i64) -> AudioFrame {
        AudioFrame {
            pts,
            duration: 1024,
            data: Bytes::from_static(b"real"),
        }
    }

    /// Samples taken: (is silence, decode time).
    fn laid_out(t: &mut AudioTrack) -> Vec<(bool, u64)> {
        let Some((mut at, samples, data)) = t.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (s, d) in samples.iter().zip(data) {
            out.push((d != Bytes::from_static(b"real"), at));
            at += u64::from(s.duration);
        }
        out
    }

    #[test]
    fn the_silent_frames_decode_to_1024_zeros_per_channel() {
        crate::transcode::init().unwrap();
        for channels in [1u16, 2] {
            let asc = {
                let index = 3u16; // 48 kHz
                ((2u16 << 11) | (index << 7) | (channels << 3)).to_be_bytes()
            };
            let mut dec = crate::transcode::aac::decoder_for(&asc);
            let data = silent_frame(channels);
            let mut n = 0;
            let mut frame = ffmpeg::frame::Audio::empty();
            for _ in 0..4 {
                dec.send_packet(&ffmpeg::Packet::copy(&data)).unwrap();
                while dec.receive_frame(&mut frame).is_ok() {
                    assert_eq!(frame.channels(), channels);
                    for plane in 0..frame.planes() {
                        let pcm = frame.plane::<f32>(plane);
                        assert!(pcm.iter().all(|v| *v == 0.0), "{channels} ch: not silent");
                    }
                    n += frame.samples();
                }
            }
            assert_eq!(n, 4 * 1024, "{channels} channel(s)");
        }
    }

    #[test]
    fn frames_are_laid_end_to_end_from_the_timeline_start() {
        // Timeline starts at video pts 90 000 (1 s): audio tick 8000 at 8 kHz.
        let mut t = AudioTrack::new(params(8000, 1), 90_000);
        t.push(&frame(7000)); // before the timeline: dropped
        t.push(&frame(8000 + 30)); // jitter under half a frame: placed at 0
        t.push(&frame(8000 + 1024 - 20));
        assert_eq!(laid_out(&mut t), [(false, 0), (false, 1024)]);
        // A lost frame: one silent frame keeps the track gapless.
        t.push(&frame(8000 + 3 * 1024));
        assert_eq!(laid_out(&mut t), [(true, 2048), (false, 3072)]);
        // A repeat (or a frame silence already covered) is dropped.
        t.push(&frame(8000 + 3 * 1024));
        assert_eq!(laid_out(&mut t), []);
    }

    #[test]
    fn silence_stands_in_once_the_sound_lags_the_picture_by_a_second() {
        let mut t = AudioTrack::new(params(8000, 1), 0);
        t.push(&frame(0));
        t.take();
        // Half a second of picture without sound: waiting for it is fine.
        t.picture_reaches(45_000);
        assert_eq!(t.take(), None);
        // Two seconds: silence up to half a second behind the picture (whole frames).
        t.picture_reaches(180_000);
        let filled = laid_out(&mut t);
        assert!(!filled.is_empty() && filled.iter().all(|(silent, _)| *silent));
        assert_eq!(
            t.end,
            1024 + 10 * 1024,
            "12 000 ticks: 2 s of picture less 0.5 s"
        );
        // And it keeps following the picture while the camera is quiet.
        t.picture_reaches(270_000);
        assert_eq!(
            t.end,
            1024 + 18 * 1024,
            "24 000 ticks less 0.5 s, whole frames"
        );
        t.take();
        // The camera's late frames for that time are dropped; a new one goes on.
        t.push(&frame(5 * 1024));
        assert_eq!(laid_out(&mut t), []);
        t.push(&frame(19 * 1024));
        assert_eq!(laid_out(&mut t), [(false, 19 * 1024)]);
        // Sound is back: the picture may run ahead of it again without silence.
        t.picture_reaches(290_000);
        assert_eq!(t.take(), None);
        // Sound claiming to be far ahead of the picture is not padded up to.
        t.push(&frame(20 * 1024 + 10 * 8000));
        assert_eq!(laid_out(&mut t), []);
    }

    #[test]
    fn only_aac_lc_mono_or_stereo_is_served() {
        assert!(servable(&params(48_000, 1)));
        assert!(servable(&params(16_000, 2)));
        let mut he = (*params(48_000, 1)).clone();
        he.rfc6381 = "mp4a.40.5".into();
        assert!(!servable(&he));
        let mut six = (*params(48_000, 2)).clone();
        six.channels = 6;
        assert!(!servable(&six));
    }
}
