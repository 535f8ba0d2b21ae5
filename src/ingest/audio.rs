//! Which of a camera's audio streams is recorded, and how: AAC as the camera sends it,
//! G.711 converted to AAC ([`super::g711`]), anything else not at all. The choice is
//! reported in the status (`/api/cameras` `audio`) and logged once per camera.

use std::sync::Arc;

use bytes::Bytes;
use retina::codec::ParametersRef;
use tracing::{info, warn};

use super::audio_rtp::{AudioDepacketizer, RawAudioFrame};
use super::g711::{G711ToAac, Law};
use crate::frame::{AudioFrame, AudioParams};

/// One session's audio: chosen from the SDP before SETUP, then fed retina's audio frames.
pub struct SessionAudio {
    /// Stream index to SET UP and record; `None` records video only.
    stream: Option<usize>,
    /// G.711 streams go through this; AAC is copied.
    convert: Option<G711ToAac>,
    /// What the status says, e.g. `aac`, `pcmu → aac`, `unsupported: L16`; `None`: no audio.
    status: Option<String>,
}

impl SessionAudio {
    /// Picks the audio stream to record from a described session: AAC if offered (copied
    /// as is), else PCMU/PCMA (converted), else none.
    pub fn choose(streams: &[retina::client::Stream]) -> SessionAudio {
        let audio = || {
            streams
                .iter()
                .enumerate()
                .filter(|(_, s)| s.media() == "audio")
        };
        if let Some((i, _)) = audio().find(|(_, s)| s.encoding_name() == "mpeg4-generic") {
            return SessionAudio {
                stream: Some(i),
                convert: None,
                status: Some("aac".into()),
            };
        }
        let g711 =
            audio().find_map(|(i, s)| Law::from_encoding(s.encoding_name()).map(|l| (i, s, l)));
        if let Some((i, s, law)) = g711 {
            let channels = s.channels().map_or(1, |c| c.get());
            return match G711ToAac::new(law, s.clock_rate_hz(), channels) {
                Ok(c) => SessionAudio {
                    stream: Some(i),
                    convert: Some(c),
                    status: Some(format!("{} → aac", law.name())),
                },
                Err(e) => {
                    SessionAudio::unsupported(format!("{} ({e:#})", law.name().to_uppercase()))
                }
            };
        }
        match audio().next() {
            Some((_, s)) => SessionAudio::unsupported(s.encoding_name().to_uppercase()),
            None => SessionAudio {
                stream: None,
                convert: None,
                status: None,
            },
        }
    }

    fn unsupported(what: String) -> SessionAudio {
        SessionAudio {
            stream: None,
            convert: None,
            status: Some(format!("unsupported: {what}")),
        }
    }

    /// The stream to set up, if any audio is recorded.
    pub fn stream(&self) -> Option<usize> {
        self.stream
    }

    /// For `/api/cameras`: what becomes of the camera's audio.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The recorded track's parameters once the session plays; `None` records video only
    /// (also when retina cannot describe the camera's AAC, which is then counted as unsupported).
    pub fn params(&mut self, streams: &[retina::client::Stream]) -> Option<Arc<AudioParams>> {
        let i = self.stream?;
        if let Some(c) = &self.convert {
            return Some(c.params());
        }
        let Some(ParametersRef::Audio(a)) = streams[i].parameters() else {
            self.stream = None;
            self.status = Some("unsupported: AAC without parameters".into());
            return None;
        };
        match a.mp4_sample_entry().build() {
            Ok(entry) => Some(Arc::new(AudioParams {
                rfc6381: a.rfc6381_codec().unwrap_or("mp4a.40.2").to_owned(),
                sample_rate: a.clock_rate(),
                channels: a.channels().get(),
                sample_entry: Bytes::from(entry),
            })),
            Err(e) => {
                self.stream = None;
                self.status = Some(format!("unsupported: AAC ({e})"));
                None
            }
        }
    }

    /// How our own reassembly reads the recorded stream (see `audio_rtp`):
    /// `Ok(None)` when no audio is recorded, `Err` (why) when it cannot
    /// (AAC that retina could not describe, so not AAC-hbr), which leaves the
    /// session to retina's demuxer as before.
    pub fn raw_depacketizer(
        &self,
        streams: &[retina::client::Stream],
    ) -> Result<Option<AudioDepacketizer>, String> {
        let Some(i) = self.stream else {
            return Ok(None);
        };
        if self.convert.is_some() {
            let channels = streams[i].channels().map_or(1, |c| c.get());
            return Ok(Some(AudioDepacketizer::g711(channels)));
        }
        match streams[i].parameters() {
            Some(ParametersRef::Audio(a)) => Ok(Some(AudioDepacketizer::aac(
                a.frame_length().map_or(1024, |l| l.get()),
            ))),
            _ => Err("AAC that is not AAC-hbr (or without its config)".to_owned()),
        }
    }

    /// Turns one of retina's audio frames into recorded frames, appended to `out`;
    /// Frames of other streams are ignored. A converter that fails stops for the rest of
    /// the session (with one warning) rather than end the session: video matters more.
    /// `shift` (audio ticks) moves the frame onto video's timeline (see `sync`).
    pub fn frames(&mut self, f: &retina::codec::AudioFrame, shift: i64, out: &mut Vec<AudioFrame>) {
        if Some(f.stream_id()) != self.stream {
            return;
        }
        let pts = f.timestamp().elapsed().saturating_add(shift);
        self.record(pts, f.frame_length().get(), f.data(), out);
    }

    /// As [`Self::frames`], for a frame of our own reassembly of the recorded stream.
    pub fn raw_frames(&mut self, f: &RawAudioFrame, shift: i64, out: &mut Vec<AudioFrame>) {
        if self.stream.is_none() {
            return;
        }
        self.record(f.pts.saturating_add(shift), f.duration, &f.data, out);
    }

    fn record(&mut self, pts: i64, duration: u32, data: &[u8], out: &mut Vec<AudioFrame>) {
        let Some(c) = &mut self.convert else {
            out.push(AudioFrame {
                pts,
                duration,
                data: Bytes::copy_from_slice(data),
            });
            return;
        };
        if let Err(e) = c.push(pts, data, out) {
            crate::logging::in_polled_camera(
                || warn!(error = %format!("{e:#}"), "G.711 to AAC conversion failed; no more audio this session"),
            );
            self.stream = None;
            self.convert = None;
        }
    }
}

/// The one log line a camera gets about its audio (ingest calls it once per camera):
/// `status` as in `/api/cameras`, `recorded` whether a track is recorded.
pub fn log_choice(status: Option<&str>, recorded: bool) {
    match (status, recorded) {
        (Some(s), false) => info!(audio = %s, "audio cannot be recorded; recording video only"),
        (Some(s), true) => info!(audio = %s, "recording audio"),
        (None, _) => {}
    }
}
