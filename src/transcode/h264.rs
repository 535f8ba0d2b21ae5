//! H.265 → H.264 on demand, for browsers that cannot decode H.265.
//!
//! The assembled range ([`Plan`]) is read like a file, decoded with ffmpeg-next and
//! re-encoded with libx264 (`veryfast`, `zerolatency`: no B-frames and no lookahead, so
//! each packet comes out as its frame goes in and the first bytes leave quickly) at the
//! source's size and frame rate. Output is fragmented MP4 from our own writer, one
//! fragment per key frame (at most a second), streamed as it is produced.
//!
//! Unlike the remuxed file, the output starts exactly at the requested time (the lead-in
//! frames are decoded but not encoded), so it needs no edit list. Gaps stay gaps: the
//! frame before a gap keeps its own duration and the next fragment's decode time jumps.
//! Video only: the browsers this is for play the recording's AAC from the remuxed file.
//!
//! The libx264 set-up and its packets-to-MP4-samples step ([`H264Encoder`]) are shared with
//! the live transcode ([`super::live`]), which packs the same samples one frame per
//! fragment through the live hub instead of this module's per-GOP `Muxer`.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use futures::Stream;

use super::frames::VideoRun;
use super::Permit;
use crate::mp4::{
    self, box_at, read_fragment, read_init, Sample, TrackConfig, TrackKind, TrackRun,
};
use crate::nal::{annex_b_to_sample, avc1_codec_string, split_annex_b};
use crate::playback::{Plan, PlanFile};

const TIMESCALE: i64 = 90_000;

/// Streams the H.264 version of `plan`. The work runs on its own thread (a transcode is
/// long and CPU-bound; the blocking pool is for short jobs), holding `permit` until it ends.
/// A slow client blocks the thread on a small channel, which is the backpressure; a client
/// that goes away closes the channel and stops the transcode.
pub fn stream(plan: Arc<Plan>, permit: Permit) -> impl Stream<Item = io::Result<Bytes>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    let spawned = std::thread::Builder::new()
        .name(format!("{}play", super::meter::THREAD_PREFIX))
        .spawn({
            let tx = tx.clone();
            move || {
                let _permit = permit;
                // Ends after the decoder and encoder (and their threads) are gone.
                let _conversion = super::meter::Conversion::start();
                let mut sink = |b: Bytes| tx.blocking_send(Ok(b)).is_ok();
                if let Err(e) = transcode(&plan, &mut sink) {
                    if !tx.is_closed() {
                        tracing::warn!(camera = %plan.camera, error = %format!("{e:#}"), "transcode failed");
                        let _ = tx.blocking_send(Err(io::Error::other(format!("{e:#}"))));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        let _ = tx.try_send(Err(e));
    }
    drop(tx);
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Transcodes `plan` to fragmented MP4 H.264, handing each piece (init, then one fragment
/// at a time) to `sink`; stops early, without error, when `sink` returns false. Blocking.
pub fn transcode(plan: &Arc<Plan>, sink: &mut dyn FnMut(Bytes) -> bool) -> anyhow::Result<()> {
    super::init()?;
    let mut file = PlanFile::forward(plan.clone());
    let len = file.len();
    let init = read_init(&mut file, len)?;
    let video = init.video().context("no video track")?.clone();
    let ts = i64::from(video.info.timescale);
    let lead = (i128::from(plan.lead_in_ns()) * i128::from(ts) / 1_000_000_000) as i64;
    let mut t = Transcoder {
        dec: super::open_decoder(&video.sample_entry, 2)?,
        enc: None,
        mux: Muxer::default(),
        lead,
        frame_ticks: 3600,
        duration_ms: ((plan.actual.end_ns - plan.actual.start_ns).max(0) as u64)
            .div_ceil(1_000_000),
        sink,
        stopped: false,
    };
    let mut first = true;
    let mut pos = init.len;
    while pos < len && !t.stopped {
        // Skip anything between fragments (`free` boxes standing in for ancillary ones).
        match box_at(&mut file, pos, len)? {
            Some((fourcc, end)) if &fourcc != b"moof" => {
                pos = end;
                continue;
            }
            Some(_) => {}
            None => anyhow::bail!("no complete box at byte {pos} of the assembled file"),
        }
        let frag = read_fragment(&mut file, &init, pos, len)?;
        pos = frag.end;
        let Some(run) = frag.run(video.info.track_id) else {
            continue;
        };
        let mut dts = run.base_decode_time as i64;
        let mut at = run.data_start;
        for s in &run.samples {
            if first {
                // The source's frame interval sets the encoder's frame rate.
                t.frame_ticks = i64::from(s.duration.max(1));
                first = false;
            }
            let mut data = vec![0; s.size as usize];
            file.seek(SeekFrom::Start(at))?;
            file.read_exact(&mut data)?;
            at += u64::from(s.size);
            let mut pkt = ffmpeg::Packet::copy(&data);
            pkt.set_dts(Some(dts));
            pkt.set_pts(Some(dts + i64::from(s.composition_offset)));
            pkt.set_duration(i64::from(s.duration));
            if s.is_sync {
                pkt.set_flags(ffmpeg::codec::packet::Flags::KEY);
            }
            dts += i64::from(s.duration);
            t.dec.send_packet(&pkt).context("decoding")?;
            t.drain_decoder()?;
            if t.stopped {
                break;
            }
        }
    }
    if !t.stopped {
        t.dec.send_eof()?;
        t.drain_decoder()?;
        if let Some(e) = &mut t.enc {
            e.send_eof()?;
        }
        t.drain_encoder()?;
        t.finish();
    }
    Ok(())
}

struct Transcoder<'a> {
    dec: ffmpeg::decoder::Video,
    enc: Option<H264Encoder>,
    mux: Muxer,
    /// Decode-time ticks before the requested start (decoded, not shown).
    lead: i64,
    frame_ticks: i64,
    duration_ms: u64,
    sink: &'a mut dyn FnMut(Bytes) -> bool,
    stopped: bool,
}

impl Transcoder<'_> {
    fn drain_decoder(&mut self) -> anyhow::Result<()> {
        let mut frame = ffmpeg::frame::Video::empty();
        while self.dec.receive_frame(&mut frame).is_ok() {
            let pts = frame.timestamp().or(frame.pts()).unwrap_or(0);
            // The frame showing at the start is kept and starts the output at 0.
            if pts + self.frame_ticks <= self.lead {
                continue;
            }
            self.encode(&frame, (pts - self.lead).max(0))?;
            if self.stopped {
                return Ok(());
            }
        }
        Ok(())
    }

    fn encode(&mut self, frame: &ffmpeg::frame::Video, pts: i64) -> anyhow::Result<()> {
        if self.enc.is_none() {
            let enc = H264Encoder::open(frame, self.frame_ticks, "veryfast")?;
            let mut init = Vec::new();
            mp4::write_init_with(
                &[enc.track()],
                &mp4::InitOptions {
                    duration_ms: self.duration_ms,
                    edits: Vec::new(),
                },
                &mut init,
            );
            self.emit(Bytes::from(init));
            self.mux.run.frame_ticks = self.frame_ticks;
            self.enc = Some(enc);
        }
        let e = self.enc.as_mut().expect("opened");
        // The encoder places key frames on its own GOP, not where the source had them.
        e.send(frame, pts, false)?;
        super::meter::converted(self.frame_ticks);
        self.drain_encoder()
    }

    fn drain_encoder(&mut self) -> anyhow::Result<()> {
        let Some(e) = &mut self.enc else {
            return Ok(());
        };
        while let Some(p) = e.receive() {
            if let Some(b) = self.mux.push(p.pts, p.is_key, p.data) {
                if !(self.sink)(b) {
                    self.stopped = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn emit(&mut self, b: Bytes) {
        if !self.stopped && !(self.sink)(b) {
            self.stopped = true;
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.mux.finish() {
            self.emit(b);
        }
    }
}

/// Packs encoded frames into fragments of one [`VideoRun`] each.
#[derive(Default)]
pub(super) struct Muxer {
    run: VideoRun,
    seq: u32,
}

impl Muxer {
    /// A muxer whose last frame lasts `frame_ticks` (90 kHz) unless told otherwise.
    pub(super) fn with_frame_ticks(frame_ticks: i64) -> Muxer {
        Muxer {
            run: VideoRun::with_frame_ticks(frame_ticks),
            seq: 0,
        }
    }

    /// Adds a frame; returns a finished fragment if this frame starts a new one.
    pub(super) fn push(&mut self, pts: i64, key: bool, data: Vec<u8>) -> Option<Bytes> {
        if self.run.push(pts, key, data) {
            self.flush()
        } else {
            None
        }
    }

    fn flush(&mut self) -> Option<Bytes> {
        if self.run.samples.is_empty() {
            return None;
        }
        self.seq += 1;
        let samples: Vec<Sample> = self.run.samples.iter().map(|(s, _)| *s).collect();
        let mut buf = Vec::new();
        mp4::write_fragment_header(
            self.seq,
            &[TrackRun {
                track_id: 1,
                base_decode_time: self.run.start.max(0) as u64,
                samples: &samples,
            }],
            &mut buf,
        );
        for (_, d) in self.run.samples.drain(..) {
            buf.extend_from_slice(&d);
        }
        Some(Bytes::from(buf))
    }

    pub(super) fn finish(&mut self) -> Option<Bytes> {
        self.run.release();
        self.flush()
    }
}

/// One frame out of [`H264Encoder`]: an MP4 sample (length-prefixed NAL units).
#[derive(Debug)]
pub struct EncodedFrame {
    /// Presentation (= decode: there are no B-frames) time, in the 90 kHz input clock.
    pub pts: i64,
    /// An IDR frame: a decoder can start here.
    pub is_key: bool,
    /// Sample data, parameter sets excluded (they are in the sample entry).
    pub data: Vec<u8>,
}

/// libx264 set up for browsers, shared by the recorded-range transcode above and the live
/// one ([`super::live`]): `zerolatency` (no B-frames, no lookahead, so each packet leaves
/// as its frame goes in), a key frame at least every 2 s, the source's size (rounded down
/// to even), 90 kHz time base, and parameter sets out of band in an `avc1` sample entry.
pub struct H264Encoder {
    enc: ffmpeg::encoder::Video,
    scaler: Option<ffmpeg::software::scaling::Context>,
    /// What the input frames look like; another shape needs another encoder.
    src: (ffmpeg::format::Pixel, u32, u32),
    width: u32,
    height: u32,
    sample_entry: Vec<u8>,
    rfc6381: String,
}

impl H264Encoder {
    /// Opens an encoder for frames shaped like `frame`, arriving about every `frame_ticks`
    /// (90 kHz), with an x264 `preset` (`ultrafast`..`veryfast` suit real time).
    pub fn open(
        frame: &ffmpeg::frame::Video,
        frame_ticks: i64,
        preset: &str,
    ) -> anyhow::Result<H264Encoder> {
        super::init()?;
        let frame_ticks = frame_ticks.clamp(1, TIMESCALE);
        let codec = ffmpeg::encoder::find_by_name("libx264").context("libx264 not available")?;
        // 4:2:0 needs even dimensions; dropping the odd line is invisible.
        let (w, h) = (frame.width() & !1, frame.height() & !1);
        anyhow::ensure!(
            w >= 2 && h >= 2 && w <= u32::from(u16::MAX) && h <= u32::from(u16::MAX),
            "cannot encode a {}x{} picture",
            frame.width(),
            frame.height()
        );
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(ffmpeg::format::Pixel::YUV420P);
        enc.set_time_base((1, TIMESCALE as i32));
        let fps = ffmpeg::Rational::new(TIMESCALE as i32, frame_ticks as i32);
        enc.set_frame_rate(Some(fps));
        let gop = (2 * TIMESCALE / frame_ticks).clamp(1, 600) as u32;
        enc.set_gop(gop);
        enc.set_max_b_frames(0);
        // Parameter sets go in the sample entry (avcC), not in every key frame.
        enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("preset", preset);
        opts.set("tune", "zerolatency");
        let enc = enc.open_as_with(codec, opts).context("opening libx264")?;
        // SAFETY: the opened encoder owns a valid context; extradata/extradata_size are
        // set by libx264 when GLOBAL_HEADER is requested and live as long as the encoder.
        let extradata = unsafe {
            let c = enc.as_ptr();
            if (*c).extradata.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts((*c).extradata, (*c).extradata_size as usize).to_vec()
            }
        };
        let nals = split_annex_b(&extradata);
        let sps = nals
            .iter()
            .find(|n| n[0] & 0x1f == 7)
            .context("libx264 gave no SPS")?;
        let pps = nals
            .iter()
            .find(|n| n[0] & 0x1f == 8)
            .context("libx264 gave no PPS")?;
        let sample_entry =
            mp4::avc1_sample_entry(w as u16, h as u16, &mp4::avcc_from_parameter_sets(sps, pps));
        let scaler = if frame.format() != ffmpeg::format::Pixel::YUV420P
            || (w, h) != (frame.width(), frame.height())
        {
            Some(ffmpeg::software::scaling::Context::get(
                frame.format(),
                frame.width(),
                frame.height(),
                ffmpeg::format::Pixel::YUV420P,
                w,
                h,
                ffmpeg::software::scaling::Flags::BILINEAR,
            )?)
        } else {
            None
        };
        Ok(H264Encoder {
            enc,
            scaler,
            src: (frame.format(), frame.width(), frame.height()),
            width: w,
            height: h,
            sample_entry,
            rfc6381: avc1_codec_string(sps),
        })
    }

    /// Whether `frame` has the shape this encoder was opened for.
    pub fn fits(&self, frame: &ffmpeg::frame::Video) -> bool {
        self.src == (frame.format(), frame.width(), frame.height())
    }

    /// Output picture size.
    pub fn size(&self) -> (u16, u16) {
        (self.width as u16, self.height as u16)
    }

    /// The `avc1` sample entry (with `avcC`) describing the output.
    pub fn sample_entry(&self) -> &[u8] {
        &self.sample_entry
    }

    /// RFC 6381 codec string of the output, e.g. `avc1.64001E`.
    pub fn rfc6381(&self) -> &str {
        &self.rfc6381
    }

    /// Track 1 of an init segment holding the output.
    pub fn track(&self) -> TrackConfig {
        TrackConfig {
            track_id: 1,
            kind: TrackKind::Video {
                width: self.width as u16,
                height: self.height as u16,
            },
            timescale: TIMESCALE as u32,
            sample_entry: self.sample_entry.clone(),
        }
    }

    /// Encodes `frame` at `pts` (90 kHz, strictly increasing); `force_key` asks for an IDR
    /// here, otherwise the encoder places key frames on its own GOP.
    pub fn send(
        &mut self,
        frame: &ffmpeg::frame::Video,
        pts: i64,
        force_key: bool,
    ) -> anyhow::Result<()> {
        let mut input = match &mut self.scaler {
            Some(s) => {
                let mut out = ffmpeg::frame::Video::new(
                    ffmpeg::format::Pixel::YUV420P,
                    self.width,
                    self.height,
                );
                s.run(frame, &mut out)?;
                out
            }
            None => frame.clone(),
        };
        input.set_pts(Some(pts));
        // A decoded frame carries the source's picture type, which libx264 would obey.
        input.set_kind(if force_key {
            ffmpeg::picture::Type::I
        } else {
            ffmpeg::picture::Type::None
        });
        self.enc.send_frame(&input).context("encoding")
    }

    /// No more frames: what [`receive`](Self::receive) returns next is the tail.
    pub fn send_eof(&mut self) -> anyhow::Result<()> {
        self.enc.send_eof().context("flushing the encoder")
    }

    /// The next encoded frame, if one is ready.
    pub fn receive(&mut self) -> Option<EncodedFrame> {
        let mut pkt = ffmpeg::Packet::empty();
        self.enc.receive_packet(&mut pkt).ok()?;
        Some(EncodedFrame {
            pts: pkt.pts().unwrap_or(0),
            is_key: pkt.is_key(),
            data: annex_b_to_sample(pkt.data().unwrap_or_default()),
        })
    }
}
