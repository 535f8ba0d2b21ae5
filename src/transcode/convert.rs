//! Converts one recorded MP4 (an export's native master, or an assembled range) to an
//! H.264 MP4 that plays anywhere, with each frame's real local date and time burned in,
//! optionally redacted: decode (ffmpeg-next) → YUV 4:2:0 → [`redact`](super::redact) →
//! [`burn`](super::burn) (`drawtext`) → libx264 → our MP4 writer.
//!
//! The output keeps the input's timeline exactly: every frame at its own time (gaps stay
//! gaps), the input's edit list, and the AAC audio copied sample for sample (or, muted,
//! replaced frame for frame by silence, so the track and its length stay).
//! So a working copy has the master's frames one for one, and each burned-in time is the
//! time that frame was recorded. Blocking and CPU-heavy: run it through
//! [`background`](super::background).

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, Context as _};
use ffmpeg_next as ffmpeg;

use super::burn::{Burner, Corner};
use super::frames::VideoRun;
use super::h264::H264Encoder;
use super::redact::Resolved;
use crate::mp4::{
    self, box_at, read_fragment, read_init, Edit, InitOptions, Sample, TrackConfig, TrackRun,
};

const TIMESCALE: i64 = 90_000;
/// The zone-aware format of the burned-in time: the abbreviation (GMT/BST) tells the two
/// 01:30s of an October night apart.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f %Z";

/// How to convert.
#[derive(Clone, Debug)]
pub struct Options {
    /// Wall time (ns since the epoch) of decode time 0 of the input's video track.
    pub first_frame_ns: i64,
    /// The zone of the burned-in time.
    pub time_zone: jiff::tz::TimeZone,
    /// What to obscure, if anything.
    pub redact: Option<Resolved>,
    /// The input's presentation window: (time from decode time 0 to the first presented
    /// frame, ns; presented duration, ms), written as the output's edit list.
    pub edit: Option<(i64, u64)>,
    /// libx264 preset.
    pub preset: &'static str,
}

/// What a conversion wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Converted {
    /// Video frames written.
    pub frames: u64,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// RFC 6381 codec of the output video (`avc1.…`).
    pub codec: String,
    /// Whether the output has the input's audio track.
    pub audio: bool,
    /// Whether that track is silence in place of the input's sound (`mute_audio`).
    pub muted: bool,
}

/// Converts the fragmented MP4 `input` (`len` bytes) into `out`. Blocking.
pub fn convert<R: Read + Seek>(
    input: &mut R,
    len: u64,
    out: &mut dyn Write,
    opts: &Options,
) -> anyhow::Result<Converted> {
    super::init()?;
    let init = read_init(input, len).context("reading the input's init")?;
    let video = init.video().context("no video track")?.clone();
    let vts = i64::from(video.info.timescale.max(1));
    let audio = init
        .tracks
        .iter()
        .find(|t| &t.info.handler == b"soun")
        .cloned();
    let mut audio_cfg = audio.as_ref().and_then(|a| {
        init.track_configs()
            .into_iter()
            .find(|c| c.track_id == a.info.track_id)
            .map(|mut c| {
                c.track_id = 2;
                c
            })
    });
    // Muted: the same track, frame for frame in the same places, but every frame silence
    // (and its own sample entry), so the copy says the sound was taken out, not lost.
    let mute = opts.redact.as_ref().is_some_and(|r| r.mute_audio);
    let silence = match audio_cfg.as_mut().filter(|_| mute) {
        Some(cfg) => {
            let rate = match cfg.kind {
                mp4::TrackKind::Audio { sample_rate, .. } if sample_rate > 0 => sample_rate,
                _ => cfg.timescale,
            };
            let s = super::aac::silent_track(rate)
                .with_context(|| format!("making a silent {rate} Hz audio track"))?;
            cfg.kind = mp4::TrackKind::Audio {
                sample_rate: rate,
                channels: 1,
            };
            cfg.sample_entry = s.sample_entry.clone();
            Some(s.frame)
        }
        None => None,
    };
    let corner = match &opts.redact {
        Some(r) => band_corner(r),
        None => Corner::TopLeft,
    };
    let mut c = Converter {
        dec: super::open_decoder(&video.sample_entry, 2)?,
        scaler: None,
        burner: None,
        enc: None,
        mux: Mux {
            audio_ts: audio.as_ref().map_or(1, |a| i64::from(a.info.timescale)),
            audio_cfg,
            ..Mux::default()
        },
        opts,
        corner,
        frame_ticks: 3600,
        frames: 0,
        out,
    };
    let mut first = true;
    let mut pos = init.len;
    while pos < len {
        match box_at(input, pos, len)? {
            Some((fourcc, end)) if &fourcc != b"moof" => {
                pos = end;
                continue;
            }
            Some(_) => {}
            None => bail!("no complete box at byte {pos} of the input"),
        }
        let frag = read_fragment(input, &init, pos, len)?;
        pos = frag.end;
        if let Some(a) = &audio {
            if let Some(run) = frag.run(a.info.track_id) {
                let mut dts = run.base_decode_time as i64;
                let mut at = run.data_start;
                for s in &run.samples {
                    let (sample, data) = match &silence {
                        Some(f) => (
                            Sample {
                                size: f.len() as u32,
                                ..*s
                            },
                            f.clone(),
                        ),
                        None => (*s, read_at(input, at, s.size)?),
                    };
                    at += u64::from(s.size);
                    c.mux.audio.push_back((dts, sample, data));
                    dts += i64::from(s.duration);
                }
            }
        }
        let Some(run) = frag.run(video.info.track_id) else {
            continue;
        };
        let mut dts = run.base_decode_time as i64;
        let mut at = run.data_start;
        for s in &run.samples {
            if first {
                // The source's frame interval sets the encoder's frame rate.
                c.frame_ticks = (i64::from(s.duration.max(1)) * TIMESCALE / vts).max(1);
                first = false;
            }
            let data = read_at(input, at, s.size)?;
            at += u64::from(s.size);
            let mut pkt = ffmpeg::Packet::copy(&data);
            pkt.set_dts(Some(dts * TIMESCALE / vts));
            pkt.set_pts(Some(
                (dts + i64::from(s.composition_offset)) * TIMESCALE / vts,
            ));
            pkt.set_duration(i64::from(s.duration) * TIMESCALE / vts);
            if s.is_sync {
                pkt.set_flags(ffmpeg::codec::packet::Flags::KEY);
            }
            dts += i64::from(s.duration);
            c.dec.send_packet(&pkt).context("decoding")?;
            c.drain_decoder()?;
        }
    }
    c.dec.send_eof()?;
    c.drain_decoder()?;
    if let Some(e) = &mut c.enc {
        e.send_eof()?;
    }
    c.drain_encoder()?;
    let has_audio = c.mux.audio_cfg.is_some();
    let tail = std::mem::take(&mut c.mux).finish();
    c.out.write_all(&tail)?;
    let enc = c.enc.as_ref().context("the input has no decodable frame")?;
    let (width, height) = enc.size();
    Ok(Converted {
        frames: c.frames,
        width,
        height,
        codec: enc.rfc6381().to_owned(),
        audio: has_audio,
        muted: has_audio && silence.is_some(),
    })
}

fn read_at<R: Read + Seek>(r: &mut R, at: u64, size: u32) -> anyhow::Result<Vec<u8>> {
    let mut data = vec![0; size as usize];
    r.seek(SeekFrom::Start(at))?;
    r.read_exact(&mut data)
        .with_context(|| format!("reading {size} bytes at {at}"))?;
    Ok(data)
}

/// The corner whose band overlaps the boxes least (ties: the usual top left), so the time
/// stays outside what the boxes show or hide.
fn band_corner(r: &Resolved) -> Corner {
    let overlap = |c: Corner| -> f64 {
        let (cx, cy, cw, ch) = c.area();
        r.all_rects()
            .map(|b| {
                let w = (cx + cw).min(b.x + b.w) - cx.max(b.x);
                let h = (cy + ch).min(b.y + b.h) - cy.max(b.y);
                w.max(0.0) * h.max(0.0)
            })
            .sum()
    };
    Corner::ALL
        .into_iter()
        .min_by(|a, b| overlap(*a).total_cmp(&overlap(*b)))
        .unwrap_or(Corner::TopLeft)
}

struct Converter<'a> {
    dec: ffmpeg::decoder::Video,
    scaler: Option<ffmpeg::software::scaling::Context>,
    burner: Option<Burner>,
    enc: Option<H264Encoder>,
    mux: Mux,
    opts: &'a Options,
    corner: Corner,
    frame_ticks: i64,
    frames: u64,
    out: &'a mut dyn Write,
}

impl Converter<'_> {
    fn drain_decoder(&mut self) -> anyhow::Result<()> {
        let mut frame = ffmpeg::frame::Video::empty();
        while self.dec.receive_frame(&mut frame).is_ok() {
            let pts = frame.timestamp().or(frame.pts()).unwrap_or(0);
            let mut pic = self.yuv420(&frame)?;
            let wall = self.opts.first_frame_ns
                + (i128::from(pts) * 1_000_000_000 / i128::from(TIMESCALE)) as i64;
            if let Some(r) = &self.opts.redact {
                r.apply(&mut pic, wall)?;
            }
            let text = jiff::Timestamp::from_nanosecond(i128::from(wall))
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .to_zoned(self.opts.time_zone.clone())
                .strftime(TIME_FORMAT)
                .to_string();
            pic.set_pts(Some(pts));
            if self.burner.is_none() {
                self.burner = Some(Burner::new(pic.width(), pic.height(), self.corner)?);
            }
            let burned = self.burner.as_mut().expect("made").burn(&mut pic, &text)?;
            self.encode(&burned, pts)?;
        }
        Ok(())
    }

    /// A fresh (writable, never the decoder's own) YUV 4:2:0 copy with even dimensions.
    fn yuv420(&mut self, f: &ffmpeg::frame::Video) -> anyhow::Result<ffmpeg::frame::Video> {
        let (w, h) = (f.width() & !1, f.height() & !1);
        let yuv = ffmpeg::format::Pixel::YUV420P;
        if self.scaler.is_none() {
            self.scaler = Some(ffmpeg::software::scaling::Context::get(
                f.format(),
                f.width(),
                f.height(),
                yuv,
                w,
                h,
                ffmpeg::software::scaling::Flags::BILINEAR,
            )?);
        }
        let mut out = ffmpeg::frame::Video::new(yuv, w, h);
        self.scaler
            .as_mut()
            .expect("made")
            .run(f, &mut out)
            .context("converting the picture to YUV 4:2:0")?;
        Ok(out)
    }

    fn encode(&mut self, frame: &ffmpeg::frame::Video, pts: i64) -> anyhow::Result<()> {
        if self.enc.is_none() {
            let enc = H264Encoder::open(frame, self.frame_ticks, self.opts.preset)?;
            let mut tracks = vec![enc.track()];
            tracks.extend(self.mux.audio_cfg.clone());
            let (edits, duration_ms) = match self.opts.edit {
                Some((lead_ns, duration_ms)) => (
                    tracks
                        .iter()
                        .map(|t| Edit {
                            track_id: t.track_id,
                            media_time: (i128::from(lead_ns.max(0)) * i128::from(t.timescale)
                                / 1_000_000_000) as u64,
                            duration_ms,
                        })
                        .collect(),
                    duration_ms,
                ),
                None => (Vec::new(), 0),
            };
            let mut init = Vec::new();
            mp4::write_init_with(&tracks, &InitOptions { duration_ms, edits }, &mut init);
            self.out.write_all(&init)?;
            self.mux.run.frame_ticks = self.frame_ticks;
            self.enc = Some(enc);
        }
        let e = self.enc.as_mut().expect("opened");
        anyhow::ensure!(e.fits(frame), "the picture size changed mid-file");
        e.send(frame, pts, false)?;
        self.frames += 1;
        self.drain_encoder()
    }

    fn drain_encoder(&mut self) -> anyhow::Result<()> {
        let Some(e) = &mut self.enc else {
            return Ok(());
        };
        while let Some(p) = e.receive() {
            if let Some(b) = self.mux.push(p.pts, p.is_key, p.data) {
                self.out.write_all(&b)?;
            }
        }
        Ok(())
    }
}

/// Packs encoded frames (track 1, one [`VideoRun`] a fragment) and copied audio samples
/// (track 2) into fragments, each followed by the audio up to its end.
#[derive(Default)]
struct Mux {
    run: VideoRun,
    seq: u32,
    /// Audio read but not yet written: (decode time, sample, data), in decode order.
    audio: VecDeque<(i64, Sample, Vec<u8>)>,
    audio_ts: i64,
    audio_cfg: Option<TrackConfig>,
}

impl Mux {
    /// Adds a frame; returns a finished fragment if this frame starts a new one.
    fn push(&mut self, pts: i64, key: bool, data: Vec<u8>) -> Option<Vec<u8>> {
        if self.run.push(pts, key, data) {
            self.flush(false)
        } else {
            None
        }
    }

    /// Writes the held-up video as a fragment with the audio up to its end (all of it
    /// when `all`); `None` if there is nothing to write.
    fn flush(&mut self, all: bool) -> Option<Vec<u8>> {
        let video_end = self.run.start + self.run.ticks();
        // Contiguous audio before the video's end (a discontinuity waits for the next one).
        let mut audio: Vec<(Sample, Vec<u8>)> = Vec::new();
        let mut audio_start = 0;
        if self.audio_cfg.is_some() {
            while let Some((dts, s, _)) = self.audio.front() {
                let at90 = dts * TIMESCALE / self.audio_ts;
                let next = audio_start
                    + audio
                        .iter()
                        .map(|(s, _)| i64::from(s.duration))
                        .sum::<i64>();
                if (!all && at90 >= video_end) || (!audio.is_empty() && *dts != next) {
                    break;
                }
                if audio.is_empty() {
                    audio_start = *dts;
                }
                let s = *s;
                let (_, _, d) = self.audio.pop_front().expect("front");
                audio.push((s, d));
            }
        }
        if self.run.samples.is_empty() && audio.is_empty() {
            return None;
        }
        self.seq += 1;
        let vs: Vec<Sample> = self.run.samples.iter().map(|(s, _)| *s).collect();
        let aus: Vec<Sample> = audio.iter().map(|(s, _)| *s).collect();
        let mut runs = Vec::new();
        if !vs.is_empty() {
            runs.push(TrackRun {
                track_id: 1,
                base_decode_time: self.run.start.max(0) as u64,
                samples: &vs,
            });
        }
        if !aus.is_empty() {
            runs.push(TrackRun {
                track_id: 2,
                base_decode_time: audio_start.max(0) as u64,
                samples: &aus,
            });
        }
        let mut buf = Vec::new();
        mp4::write_fragment_header(self.seq, &runs, &mut buf);
        for (_, d) in self.run.samples.drain(..).chain(audio) {
            buf.extend_from_slice(&d);
        }
        Some(buf)
    }

    /// The last frame and all remaining audio.
    fn finish(mut self) -> Vec<u8> {
        self.run.release();
        let mut out = Vec::new();
        while let Some(b) = self.flush(true) {
            out.extend_from_slice(&b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::redact::{Mode, RedactBox, Redaction};

    #[test]
    fn the_band_avoids_the_boxes() {
        let r = |x: f64, y: f64| {
            Redaction {
                mode: Mode::Fill,
                boxes: vec![RedactBox {
                    x,
                    y,
                    w: 0.5,
                    h: 0.5,
                    keys: vec![],
                }],
                invert: false,
                mute_audio: false,
            }
            .resolve()
            .unwrap()
        };
        assert_eq!(band_corner(&r(0.5, 0.5)), Corner::TopLeft);
        assert_eq!(band_corner(&r(0.0, 0.0)), Corner::TopRight);
    }

    #[test]
    fn audio_follows_its_video_and_breaks_at_discontinuities() {
        let mut m = Mux {
            run: VideoRun::with_frame_ticks(3000),
            audio_ts: 90_000,
            audio_cfg: Some(TrackConfig {
                track_id: 2,
                kind: mp4::TrackKind::Audio {
                    sample_rate: 90_000,
                    channels: 1,
                },
                timescale: 90_000,
                sample_entry: vec![],
            }),
            ..Mux::default()
        };
        let s = |d: u32| Sample {
            duration: d,
            size: 1,
            is_sync: true,
            composition_offset: 0,
        };
        for t in [0, 1000, 2000, 9000] {
            m.audio.push_back((t, s(1000), vec![0]));
        }
        assert!(m.push(0, true, vec![1]).is_none());
        // The next key frame closes the first fragment: video [0, 3000) and the audio
        // before 3000 (not the sample at 9000).
        let frag = m.push(3000, true, vec![1]).unwrap();
        assert!(!frag.is_empty());
        assert_eq!(m.audio.len(), 1);
        let rest = m.finish();
        assert!(!rest.is_empty());
    }
}
