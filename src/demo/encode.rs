//! Renders the synthetic test pattern and encodes it once with libx264.
//!
//! Encoding happens once per process (per clip shape); the RTSP side then only
//! copies bytes, which is what keeps many simulated cameras cheap.

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use ffmpeg_next as ffmpeg;

use super::{Clip, ClipFrame, ClipOptions};
use crate::nal::split_annex_b;

/// Luma of the clock digits and of the box behind them (studio range).
const INK: u8 = 235;
const PAPER: u8 = 16;

/// Blocking: encodes a moving test pattern with a burned-in running clock
/// using ffmpeg-next + libx264.
///
/// The clock shows the frame's time within the loop as `HH:MM:SS.ff`, where
/// `ff` is the frame number within the second (timecode style), so a viewer
/// can tell exactly which clip frame is on screen. The frame count is
/// `fps * seconds` rounded up to a whole number of GOPs so key frames stay
/// evenly spaced across loop boundaries.
///
/// Call from a blocking context (`tokio::task::spawn_blocking`): a 1080p clip
/// takes a few seconds.
pub fn encode_clip(opts: &ClipOptions) -> anyhow::Result<Clip> {
    ensure!(
        opts.width >= 64
            && opts.height >= 64
            && opts.width.is_multiple_of(2)
            && opts.height.is_multiple_of(2),
        "clip size must be even and at least 64x64, got {}x{}",
        opts.width,
        opts.height
    );
    ensure!(opts.fps > 0 && opts.fps <= 120, "fps must be 1..=120");
    ensure!(opts.gop_frames > 0, "gop_frames must be positive");
    ensure!(opts.bitrate_kbps > 0, "bitrate_kbps must be positive");
    let gop = opts.gop_frames as usize;
    let wanted = (opts.fps as usize * opts.seconds.max(1) as usize).max(1);
    let total = wanted.div_ceil(gop) * gop;

    ffmpeg::init().context("initializing ffmpeg")?;
    // libx264 prints its banner and end-of-encode statistics at Info, which
    // would clutter `cleannvr demo` startup; nothing else in the process uses
    // libav logging, and a level someone set deliberately is left alone.
    if matches!(ffmpeg::log::get_level(), Ok(ffmpeg::log::Level::Info)) {
        ffmpeg::log::set_level(ffmpeg::log::Level::Warning);
    }
    let codec = ffmpeg::encoder::find_by_name("libx264")
        .context("libx264 encoder not available in this FFmpeg build")?;
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .context("creating video encoder")?;
    enc.set_width(opts.width);
    enc.set_height(opts.height);
    enc.set_format(ffmpeg::format::Pixel::YUV420P);
    enc.set_time_base((1, opts.fps as i32));
    enc.set_frame_rate(Some((opts.fps as i32, 1)));
    enc.set_bit_rate(opts.bitrate_kbps as usize * 1000);
    enc.set_max_bit_rate(opts.bitrate_kbps as usize * 1000);
    enc.set_gop(opts.gop_frames);
    enc.set_max_b_frames(0);

    let mut dict = ffmpeg::Dictionary::new();
    dict.set("preset", "ultrafast");
    dict.set("tune", "zerolatency");
    dict.set("profile", "baseline");
    // scenecut=0 + min-keyint=keyint pins IDRs to the GOP grid; the VBV keeps
    // per-frame sizes close to a real camera's CBR-ish output.
    let params = format!(
        "keyint={g}:min-keyint={g}:scenecut=0:bframes=0:open-gop=0:repeat-headers=1:\
         vbv-maxrate={b}:vbv-bufsize={b}",
        g = opts.gop_frames,
        b = opts.bitrate_kbps
    );
    dict.set("x264-params", &params);
    let mut enc = enc
        .open_as_with(codec, dict)
        .context("opening libx264 encoder")?;

    let mut painter = Painter::new(opts);
    let mut frames = Vec::with_capacity(total);
    let mut sps: Option<Bytes> = None;
    let mut pps: Option<Bytes> = None;
    let mut packet = ffmpeg::Packet::empty();
    let mut drain = |enc: &mut ffmpeg::encoder::Video,
                     frames: &mut Vec<ClipFrame>,
                     sps: &mut Option<Bytes>,
                     pps: &mut Option<Bytes>|
     -> anyhow::Result<()> {
        while enc.receive_packet(&mut packet).is_ok() {
            let data = packet.data().unwrap_or_default();
            let mut nals = Vec::new();
            for nal in split_annex_b(data) {
                match nal[0] & 0x1f {
                    7 => set_once(sps, nal, "SPS")?,
                    8 => set_once(pps, nal, "PPS")?,
                    // Only VCL NALs: x264's version SEI and any AUDs carry
                    // nothing a recorder needs.
                    1..=5 => nals.push(Bytes::copy_from_slice(nal)),
                    _ => {}
                }
            }
            if nals.is_empty() {
                bail!("encoder produced a packet without slices");
            }
            let is_key = packet.is_key() || nals.iter().any(|n| n[0] & 0x1f == 5);
            frames.push(ClipFrame { nals, is_key });
        }
        Ok(())
    };

    for i in 0..total {
        // A fresh frame each time: the encoder may keep a reference to the
        // previous buffer until it has copied it.
        let mut frame =
            ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, opts.width, opts.height);
        painter.paint(&mut frame, i);
        frame.set_pts(Some(i as i64));
        enc.send_frame(&frame).context("sending frame to encoder")?;
        drain(&mut enc, &mut frames, &mut sps, &mut pps)?;
    }
    enc.send_eof().context("flushing encoder")?;
    drain(&mut enc, &mut frames, &mut sps, &mut pps)?;

    ensure!(
        frames.len() == total,
        "encoder returned {} frames for {} inputs",
        frames.len(),
        total
    );
    ensure!(frames[0].is_key, "first encoded frame is not a key frame");
    Ok(Clip {
        width: opts.width,
        height: opts.height,
        fps: opts.fps,
        sps: sps.context("encoder produced no SPS")?,
        pps: pps.context("encoder produced no PPS")?,
        frames,
    })
}

/// Keeps the first parameter set and refuses a different one later, because
/// the SDP advertises a single SPS/PPS pair for the whole loop.
fn set_once(slot: &mut Option<Bytes>, nal: &[u8], what: &str) -> anyhow::Result<()> {
    match slot {
        None => *slot = Some(Bytes::copy_from_slice(nal)),
        Some(prev) if prev[..] == *nal => {}
        Some(_) => bail!("encoder changed its {what} mid-clip"),
    }
    Ok(())
}

/// Draws the test pattern. Everything per-pixel is precomputed into rows so
/// painting a frame is mostly `copy_from_slice` (our crate builds at
/// opt-level 0 in dev, and a 1080p clip is 250 frames).
struct Painter {
    width: usize,
    height: usize,
    fps: usize,
    /// Triangle-wave luma ramp, longer than a row by one period so any
    /// phase can be sliced out.
    ramp: Vec<u8>,
    /// One row each of the static chroma bars.
    u_row: Vec<u8>,
    v_row: Vec<u8>,
}

const RAMP_PERIOD: usize = 256;

impl Painter {
    fn new(opts: &ClipOptions) -> Self {
        let width = opts.width as usize;
        let ramp = (0..width + RAMP_PERIOD)
            .map(|k| {
                let t = k % RAMP_PERIOD;
                let tri = if t < 128 { t } else { 255 - t };
                (48 + tri) as u8
            })
            .collect();
        // Eight vertical colour bars in the chroma planes.
        const BARS: [(u8, u8); 8] = [
            (128, 128),
            (44, 142),
            (156, 44),
            (72, 58),
            (184, 198),
            (100, 212),
            (212, 114),
            (128, 128),
        ];
        let cw = width / 2;
        let mut u_row = Vec::with_capacity(cw);
        let mut v_row = Vec::with_capacity(cw);
        for x in 0..cw {
            let (u, v) = BARS[x * BARS.len() / cw];
            u_row.push(u);
            v_row.push(v);
        }
        Painter {
            width,
            height: opts.height as usize,
            fps: opts.fps as usize,
            ramp,
            u_row,
            v_row,
        }
    }

    fn paint(&mut self, frame: &mut ffmpeg::frame::Video, index: usize) {
        let (w, h) = (self.width, self.height);
        // Luma: diagonal ramp scrolling 4 px per frame, so every frame differs
        // and motion is obvious in a player.
        let stride = frame.stride(0);
        let y = frame.data_mut(0);
        for row in 0..h {
            let phase = (row + RAMP_PERIOD * 64 - (index * 4) % (RAMP_PERIOD * 64)) % RAMP_PERIOD;
            y[row * stride..row * stride + w].copy_from_slice(&self.ramp[phase..phase + w]);
        }
        // A bouncing bright square.
        let side = (h / 6).max(8);
        let span_x = w - side;
        let span_y = h - side;
        let bx = bounce(index * 7, span_x);
        let by = bounce(index * 5, span_y);
        for row in by..by + side {
            y[row * stride + bx..row * stride + bx + side].fill(INK);
        }
        self.paint_clock(y, stride, index);

        for (plane, src) in [(1usize, &self.u_row), (2, &self.v_row)] {
            let stride = frame.stride(plane);
            let data = frame.data_mut(plane);
            for row in 0..h / 2 {
                data[row * stride..row * stride + w / 2].copy_from_slice(src);
            }
        }
    }

    fn paint_clock(&self, y: &mut [u8], stride: usize, index: usize) {
        let secs = index / self.fps;
        let ff = index % self.fps;
        let text = format!(
            "{:02}:{:02}:{:02}.{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            ff
        );
        // Digit cell sized from the picture height, but never wider than the
        // picture allows for 11 characters.
        let digit_h = (self.height / 8).min(self.width * 2 / (11 * 2 + 4)).max(10);
        let digit_w = digit_h / 2;
        let t = (digit_h / 8).max(2);
        let gap = t;
        let narrow = t * 2;
        let text_w: usize = text
            .chars()
            .map(|c| if c.is_ascii_digit() { digit_w } else { narrow } + gap)
            .sum();
        let margin = t * 2;
        let box_w = (text_w + 2 * margin).min(self.width);
        let box_h = (digit_h + 2 * margin).min(self.height);
        let (x0, y0) = (0usize, self.height - box_h);
        for row in y0..y0 + box_h {
            y[row * stride + x0..row * stride + x0 + box_w].fill(PAPER);
        }
        let mut x = x0 + margin;
        let top = y0 + margin;
        let mut rect = |x: usize, ry: usize, rw: usize, rh: usize| {
            for row in ry..(ry + rh).min(self.height) {
                let end = (x + rw).min(self.width);
                if x < end {
                    y[row * stride + x..row * stride + end].fill(INK);
                }
            }
        };
        for c in text.chars() {
            match c {
                '0'..='9' => {
                    let segs = SEGMENTS[(c as u8 - b'0') as usize];
                    let half = digit_h / 2;
                    let (w, h) = (digit_w, digit_h);
                    // a..g in the usual 7-segment order.
                    let geo = [
                        (x, top, w, t),                       // a: top
                        (x + w - t, top, t, half),            // b: top right
                        (x + w - t, top + half, t, h - half), // c: bottom right
                        (x, top + h - t, w, t),               // d: bottom
                        (x, top + half, t, h - half),         // e: bottom left
                        (x, top, t, half),                    // f: top left
                        (x, top + half - t / 2, w, t),        // g: middle
                    ];
                    for (bit, &(rx, ry, rw, rh)) in geo.iter().enumerate() {
                        if segs & (1 << bit) != 0 {
                            rect(rx, ry, rw, rh);
                        }
                    }
                    x += digit_w + gap;
                }
                ':' => {
                    rect(x + t / 2, top + digit_h / 4, t, t);
                    rect(x + t / 2, top + digit_h * 3 / 4 - t, t, t);
                    x += narrow + gap;
                }
                _ => {
                    rect(x + t / 2, top + digit_h - t, t, t);
                    x += narrow + gap;
                }
            }
        }
    }
}

/// Segment masks for 0-9, bit 0 = a … bit 6 = g.
const SEGMENTS: [u8; 10] = [
    0b011_1111, 0b000_0110, 0b101_1011, 0b100_1111, 0b110_0110, 0b110_1101, 0b111_1101, 0b000_0111,
    0b111_1111, 0b110_1111,
];

/// Position moving back and forth over `0..=span`.
fn bounce(pos: usize, span: usize) -> usize {
    if span == 0 {
        return 0;
    }
    let p = pos % (2 * span);
    if p <= span {
        p
    } else {
        2 * span - p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_stays_in_range() {
        for i in 0..1000 {
            assert!(bounce(i, 17) <= 17);
        }
        assert_eq!(bounce(18, 17), 16);
    }

    #[test]
    fn encodes_small_clip_with_regular_key_frames() {
        let opts = ClipOptions {
            width: 160,
            height: 96,
            fps: 10,
            bitrate_kbps: 200,
            gop_frames: 10,
            seconds: 2,
        };
        let clip = encode_clip(&opts).unwrap();
        assert_eq!(clip.frames.len(), 20);
        assert_eq!(clip.sps[0] & 0x1f, 7);
        assert_eq!(clip.pps[0] & 0x1f, 8);
        for (i, f) in clip.frames.iter().enumerate() {
            assert_eq!(f.is_key, i % 10 == 0, "frame {i}");
            assert!(f.nals.iter().all(|n| (1..=5).contains(&(n[0] & 0x1f))));
        }
    }
}
