//! Redaction of decoded pictures: boxes (fractions of the picture, optionally moving by key
//! points with linear interpolation between them) filled with a solid colour or blurred,
//! or, inverted, everything but the boxes.
//!
//! Works on one decoded YUV 4:2:0 frame at a time and knows nothing of files, encoders or
//! exports. Box edges are widened outward to 16-pixel macroblock boundaries, so no encoded
//! block straddles a box edge and mixes what was hidden into what is shown.

use anyhow::{ensure, Context as _};
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

/// Most boxes one redaction may carry (a person drawing boxes never needs more).
pub const MAX_BOXES: usize = 64;
/// Most key points per box.
pub const MAX_KEYS: usize = 1000;
/// Box edges are widened outward to multiples of this many pixels.
const ALIGN: usize = 16;

/// How a region is obscured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Solid black.
    Fill,
    /// A heavy box blur (radius a fifth of the region's smaller side, at least 8 px).
    Blur,
}

/// What `POST /api/exports` accepts as `redact`, recorded as given in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    /// Fill or blur.
    pub mode: Mode,
    /// The boxes, in fractions 0..1 of the picture.
    pub boxes: Vec<RedactBox>,
    /// Obscure everything except the boxes.
    #[serde(default)]
    pub invert: bool,
    /// Mute the sound: the copy's audio track holds silence of the same length (no
    /// boxes are needed then).
    #[serde(default)]
    pub mute_audio: bool,
}

/// One box: where it is (fractions of the picture), and how it moves, if it does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
    /// Where the box is at given times; between two keys it moves linearly, before the
    /// first and after the last it stays. Without keys it stays at `x, y, w, h`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<Key>,
}

/// A box's position at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// RFC 3339 time.
    pub at: String,
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// A rectangle in fractions of the picture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

fn rect(what: &str, x: f64, y: f64, w: f64, h: f64) -> anyhow::Result<Rect> {
    let eps = 1e-9;
    ensure!(
        [x, y, w, h].iter().all(|v| v.is_finite())
            && x >= 0.0
            && y >= 0.0
            && w > 0.0
            && h > 0.0
            && x + w <= 1.0 + eps
            && y + h <= 1.0 + eps,
        "{what}: x, y, w, h must be fractions of the picture (0..1) with w, h > 0 and the box \
         inside the picture"
    );
    Ok(Rect { x, y, w, h })
}

/// A validated redaction with key times as nanoseconds, ready for [`Resolved::apply`].
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Fill or blur.
    pub mode: Mode,
    /// Obscure everything except the boxes.
    pub invert: bool,
    /// Replace the sound by silence.
    pub mute_audio: bool,
    /// Per box: its key points `(ns, rect)` in time order (one point if it does not move).
    tracks: Vec<Vec<(i64, Rect)>>,
}

impl Redaction {
    /// Checks the request and parses key times.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        ensure!(
            !self.boxes.is_empty() || self.mute_audio,
            "redact: at least one box is needed (or mute_audio)"
        );
        ensure!(
            self.boxes.len() <= MAX_BOXES,
            "redact: at most {MAX_BOXES} boxes"
        );
        let mut tracks = Vec::new();
        for (i, b) in self.boxes.iter().enumerate() {
            let what = format!("redact: box {}", i + 1);
            let base = rect(&what, b.x, b.y, b.w, b.h)?;
            ensure!(b.keys.len() <= MAX_KEYS, "{what}: at most {MAX_KEYS} keys");
            let mut keys = Vec::new();
            for (j, k) in b.keys.iter().enumerate() {
                let kwhat = format!("{what}, key {}", j + 1);
                let at = crate::clock::parse_rfc3339(&k.at)
                    .with_context(|| format!("{kwhat}: `at` is not an RFC 3339 time"))?;
                keys.push((at, rect(&kwhat, k.x, k.y, k.w, k.h)?));
            }
            keys.sort_by_key(|k| k.0);
            if keys.is_empty() {
                keys.push((0, base));
            }
            tracks.push(keys);
        }
        Ok(Resolved {
            mode: self.mode,
            invert: self.invert,
            mute_audio: self.mute_audio,
            tracks,
        })
    }
}

impl Resolved {
    /// Where every box is at wall time `at_ns`.
    pub fn rects_at(&self, at_ns: i64) -> Vec<Rect> {
        self.tracks
            .iter()
            .map(|keys| interpolate(keys, at_ns))
            .collect()
    }

    /// Every position any box takes (for choosing where the time band goes).
    pub fn all_rects(&self) -> impl Iterator<Item = Rect> + '_ {
        self.tracks.iter().flatten().map(|k| k.1)
    }

    /// The boxes at `at_ns` in pixels of a `width`×`height` picture, `(x, y, w, h)`, widened
    /// as [`apply`](Self::apply) widens them; public so the benchmark can give the `ffmpeg`
    /// command the same regions.
    pub fn pixel_boxes(&self, at_ns: i64, width: u32, height: u32) -> Vec<[usize; 4]> {
        let (w, h) = (width as usize, height as usize);
        self.rects_at(at_ns)
            .iter()
            .map(|r| Px::of(r, w, h))
            .filter(|p| p.x1 > p.x0 && p.y1 > p.y0)
            .map(|p| [p.x0, p.y0, p.x1 - p.x0, p.y1 - p.y0])
            .collect()
    }

    /// Obscures this redaction's regions of `frame` (YUV 4:2:0, 8 bit) shown at `at_ns`.
    pub fn apply(&self, frame: &mut ffmpeg::frame::Video, at_ns: i64) -> anyhow::Result<()> {
        ensure!(
            frame.format() == ffmpeg::format::Pixel::YUV420P,
            "redaction needs YUV 4:2:0 frames, not {:?}",
            frame.format()
        );
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let boxes: Vec<Px> = self
            .rects_at(at_ns)
            .iter()
            .map(|r| Px::of(r, w, h))
            .filter(|p| p.x1 > p.x0 && p.y1 > p.y0)
            .collect();
        let whole = Px {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        };
        if !self.invert {
            for b in &boxes {
                obscure(frame, b, self.mode);
            }
        } else {
            // Keep the boxes' pixels, obscure the whole picture, put the boxes back.
            let kept: Vec<Vec<Vec<u8>>> = boxes.iter().map(|b| copy_out(frame, b)).collect();
            obscure(frame, &whole, self.mode);
            for (b, k) in boxes.iter().zip(kept) {
                copy_in(frame, b, &k);
            }
        }
        Ok(())
    }
}

/// Where a box with `keys` is at `at`. Key times come from the request (any time
/// RFC 3339 can say, 1677 to 2262): differences are taken in i128, as two such
/// times can be further apart than i64 holds.
fn interpolate(keys: &[(i64, Rect)], at: i64) -> Rect {
    let first = keys[0];
    if keys.len() == 1 || at <= first.0 {
        return first.1;
    }
    for pair in keys.windows(2) {
        let ((t0, a), (t1, b)) = (pair[0], pair[1]);
        if at <= t1 {
            let f = if t1 > t0 {
                (i128::from(at) - i128::from(t0)) as f64 / (i128::from(t1) - i128::from(t0)) as f64
            } else {
                1.0
            };
            let l = |p: f64, q: f64| p + (q - p) * f;
            return Rect {
                x: l(a.x, b.x),
                y: l(a.y, b.y),
                w: l(a.w, b.w),
                h: l(a.h, b.h),
            };
        }
    }
    keys[keys.len() - 1].1
}

/// A box in luma pixels, `[x0, x1) × [y0, y1)`, edges on even pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Px {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Px {
    /// Widened outward to [`ALIGN`] pixels and clipped to the picture (even edges, so the
    /// chroma box is exactly half).
    fn of(r: &Rect, w: usize, h: usize) -> Px {
        let down = |v: f64, n: usize| ((v * n as f64).floor().max(0.0) as usize / ALIGN) * ALIGN;
        let up = |v: f64, n: usize| {
            let p = (v * n as f64).ceil().max(0.0) as usize;
            (p.div_ceil(ALIGN) * ALIGN).min(n & !1)
        };
        Px {
            x0: down(r.x, w).min(w & !1),
            y0: down(r.y, h).min(h & !1),
            x1: up(r.x + r.w, w),
            y1: up(r.y + r.h, h),
        }
    }

    /// The same box in plane `i` (chroma planes are half size).
    fn plane(&self, i: usize) -> Px {
        if i == 0 {
            *self
        } else {
            Px {
                x0: self.x0 / 2,
                y0: self.y0 / 2,
                x1: self.x1 / 2,
                y1: self.y1 / 2,
            }
        }
    }
}

/// Black in limited-range YUV.
const FILL: [u8; 3] = [16, 128, 128];

fn obscure(frame: &mut ffmpeg::frame::Video, b: &Px, mode: Mode) {
    for (i, fill) in FILL.into_iter().enumerate() {
        let p = b.plane(i);
        let stride = frame.stride(i);
        let data = frame.data_mut(i);
        match mode {
            Mode::Fill => {
                for y in p.y0..p.y1 {
                    data[y * stride + p.x0..y * stride + p.x1].fill(fill);
                }
            }
            Mode::Blur => {
                let r = blur_radius(p.x1 - p.x0, p.y1 - p.y0, i > 0);
                blur(data, stride, &p, r);
            }
        }
    }
}

/// The radius of the blur of a `w`×`h` region of one plane: a fifth of its smaller side,
/// at least 8 pixels of luma (4 of chroma). Public for the benchmark's `ffmpeg` command.
pub fn blur_radius(w: usize, h: usize, chroma: bool) -> usize {
    (w.min(h) / 5).max(if chroma { 4 } else { 8 })
}

/// Box blur of radius `r` inside `p` only (reads no pixel outside it; near its edges the
/// window shrinks to what is inside), two passes, each rounded to the nearest value. A
/// pass sums each row over a sliding window, then the columns of those sums with running
/// totals, so a pixel costs the same whatever `r` (a whole picture is blurred when
/// inverted).
fn blur(data: &mut [u8], stride: usize, p: &Px, r: usize) {
    let (w, h) = (p.x1 - p.x0, p.y1 - p.y0);
    if w == 0 || h == 0 {
        return;
    }
    // How many pixels the window holds along one axis at `i` of `n`.
    let span = |i: usize, n: usize| ((i + r + 1).min(n) - i.saturating_sub(r)) as f64;
    let inv_x: Vec<f64> = (0..w).map(|x| 1.0 / span(x, w)).collect();
    // A row's window sum is at most 255 × (2r + 1); a column of them can pass 2^32 for
    // radii over about 2,000 (pictures over 10,000 pixels a side), so columns add in u64.
    let mut rows = vec![0u32; w * h];
    let mut cols = vec![0u64; w];
    for _ in 0..2 {
        for (y, out) in rows.chunks_exact_mut(w).enumerate() {
            let line = &data[(p.y0 + y) * stride + p.x0..][..w];
            let mut sum: u32 = line[..(r + 1).min(w)].iter().map(|&v| u32::from(v)).sum();
            for (x, o) in out.iter_mut().enumerate() {
                *o = sum;
                if x + r + 1 < w {
                    sum += u32::from(line[x + r + 1]);
                }
                if x >= r {
                    sum -= u32::from(line[x - r]);
                }
            }
        }
        cols.fill(0);
        for row in rows.chunks_exact(w).take(r + 1) {
            cols.iter_mut()
                .zip(row)
                .for_each(|(c, v)| *c += u64::from(*v));
        }
        for y in 0..h {
            let inv_y = 1.0 / span(y, h);
            let line = &mut data[(p.y0 + y) * stride + p.x0..][..w];
            for ((px, c), ix) in line.iter_mut().zip(&cols).zip(&inv_x) {
                // The mean rounded half up, as integers would: the products err by under
                // 1e-13 and a mean that is not a half is at least 1 / 2n (over 1e-10) from
                // one, so 1e-11 lifts exact halves that fell short and nothing else.
                *px = (*c as f64 * ix * inv_y + (0.5 + 1e-11)) as u8;
            }
            if y + r + 1 < h {
                let add = &rows[(y + r + 1) * w..][..w];
                cols.iter_mut()
                    .zip(add)
                    .for_each(|(c, v)| *c += u64::from(*v));
            }
            if y >= r {
                let sub = &rows[(y - r) * w..][..w];
                cols.iter_mut()
                    .zip(sub)
                    .for_each(|(c, v)| *c -= u64::from(*v));
            }
        }
    }
}

fn copy_out(frame: &ffmpeg::frame::Video, b: &Px) -> Vec<Vec<u8>> {
    (0..3)
        .map(|i| {
            let p = b.plane(i);
            let stride = frame.stride(i);
            let data = frame.data(i);
            (p.y0..p.y1)
                .flat_map(|y| data[y * stride + p.x0..y * stride + p.x1].iter().copied())
                .collect()
        })
        .collect()
}

fn copy_in(frame: &mut ffmpeg::frame::Video, b: &Px, kept: &[Vec<u8>]) {
    for (i, k) in kept.iter().enumerate() {
        let p = b.plane(i);
        let stride = frame.stride(i);
        let data = frame.data_mut(i);
        let w = p.x1 - p.x0;
        for (row, y) in (p.y0..p.y1).enumerate() {
            data[y * stride + p.x0..y * stride + p.x1].copy_from_slice(&k[row * w..row * w + w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32) -> ffmpeg::frame::Video {
        crate::transcode::init().unwrap();
        let mut f = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, w, h);
        for i in 0..3 {
            let stride = f.stride(i);
            let data = f.data_mut(i);
            for (n, b) in data.iter_mut().enumerate() {
                // A pattern: no two neighbours alike.
                *b = ((n % stride) * 7 + (n / stride) * 13) as u8 | 0x20;
            }
        }
        f
    }

    fn at(f: &ffmpeg::frame::Video, x: usize, y: usize) -> u8 {
        f.data(0)[y * f.stride(0) + x]
    }

    fn redaction(mode: Mode, invert: bool) -> Resolved {
        Redaction {
            mode,
            boxes: vec![RedactBox {
                x: 0.25,
                y: 0.25,
                w: 0.5,
                h: 0.5,
                keys: vec![],
            }],
            invert,
            mute_audio: false,
        }
        .resolve()
        .unwrap()
    }

    #[test]
    fn fill_blanks_the_box_and_nothing_else() {
        let orig = frame(128, 96);
        let mut f = orig.clone();
        redaction(Mode::Fill, false).apply(&mut f, 0).unwrap();
        assert_eq!(at(&f, 64, 48), 16);
        assert_eq!(at(&f, 32, 24), 16, "corner of the (aligned) box");
        assert_eq!(at(&f, 5, 5), at(&orig, 5, 5));
        assert_eq!(at(&f, 120, 90), at(&orig, 120, 90));
        assert_eq!(f.data(1)[24 * f.stride(1) + 32], 128);
    }

    #[test]
    fn invert_keeps_only_the_box_and_blur_changes_it() {
        let orig = frame(128, 96);
        let mut f = orig.clone();
        redaction(Mode::Fill, true).apply(&mut f, 0).unwrap();
        assert_eq!(at(&f, 5, 5), 16);
        assert_eq!(at(&f, 64, 48), at(&orig, 64, 48));
        let mut f = orig.clone();
        redaction(Mode::Blur, false).apply(&mut f, 0).unwrap();
        let changed = (32..96)
            .filter(|x| at(&f, *x, 48) != at(&orig, *x, 48))
            .count();
        assert!(changed > 50, "blur changed only {changed} of 64 pixels");
        assert_eq!(at(&f, 5, 5), at(&orig, 5, 5));
    }

    /// The sliding-window blur gives, pass after pass, each pixel's mean over its window
    /// clipped to the region (rounded half up), as a plain sum over the window does, and
    /// leaves everything outside the region alone.
    #[test]
    fn blur_is_the_mean_over_the_clipped_window() {
        let (stride, w, h) = (50, 37, 23);
        let data: Vec<u8> = (0..stride * 30).map(|n| (n * 7919 % 251) as u8).collect();
        let p = Px {
            x0: 5,
            y0: 3,
            x1: 5 + w,
            y1: 3 + h,
        };
        for r in [1, 4, 8, 30] {
            let mut want = data.clone();
            for _ in 0..2 {
                let src = want.clone();
                for y in 0..h {
                    for x in 0..w {
                        let (ya, yb) = (y.saturating_sub(r), (y + r + 1).min(h));
                        let (xa, xb) = (x.saturating_sub(r), (x + r + 1).min(w));
                        let s: u64 = (ya..yb)
                            .flat_map(|v| (xa..xb).map(move |u| (v, u)))
                            .map(|(v, u)| u64::from(src[(p.y0 + v) * stride + p.x0 + u]))
                            .sum();
                        let n = ((yb - ya) * (xb - xa)) as u64;
                        want[(p.y0 + y) * stride + p.x0 + x] = ((2 * s + n) / (2 * n)) as u8;
                    }
                }
            }
            let mut got = data.clone();
            blur(&mut got, stride, &p, r);
            assert_eq!(got, want, "radius {r}");
        }
    }

    /// One 0.1 × 0.1 box at the top, at `x` at each key's time (RFC 3339).
    fn moving(keys: &[(&str, f64)]) -> Resolved {
        Redaction {
            mode: Mode::Fill,
            boxes: vec![RedactBox {
                x: 0.0,
                y: 0.0,
                w: 0.1,
                h: 0.1,
                keys: keys
                    .iter()
                    .map(|&(at, x)| Key {
                        at: at.into(),
                        x,
                        y: 0.0,
                        w: 0.1,
                        h: 0.1,
                    })
                    .collect(),
            }],
            invert: false,
            mute_audio: false,
        }
        .resolve()
        .unwrap()
    }

    #[test]
    fn keys_move_the_box_linearly_and_bad_boxes_are_refused() {
        // Keys out of order are sorted.
        let r = moving(&[("2026-01-01T00:00:10Z", 0.8), ("2026-01-01T00:00:00Z", 0.0)]);
        let t0 = crate::clock::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let x = |dt_s: i64| r.rects_at(t0 + dt_s * 1_000_000_000)[0].x;
        assert_eq!(x(-5), 0.0);
        assert!((x(5) - 0.4).abs() < 1e-9, "{}", x(5));
        assert_eq!(x(20), 0.8);

        let bad = |x: f64, w: f64| Redaction {
            mode: Mode::Blur,
            boxes: vec![RedactBox {
                x,
                y: 0.0,
                w,
                h: 0.5,
                keys: vec![],
            }],
            invert: false,
            mute_audio: false,
        };
        assert!(bad(0.5, 0.5).resolve().is_ok());
        assert!(bad(0.6, 0.5).resolve().is_err());
        assert!(bad(0.0, 0.0).resolve().is_err());
        assert!(bad(f64::NAN, 0.1).resolve().is_err());
        let mut none = bad(0.0, 0.1);
        none.boxes.clear();
        assert!(none.resolve().is_err());
        // Muting alone needs no box.
        none.mute_audio = true;
        assert!(none.resolve().unwrap().rects_at(0).is_empty());
    }

    /// Keys at the ends of what RFC 3339 times parse to, and frames at the ends of
    /// i64: no overflow, and the box still moves linearly between them.
    #[test]
    fn extreme_key_times_do_not_overflow() {
        let r = moving(&[("1677-09-22T00:00:00Z", 0.0), ("2262-04-11T00:00:00Z", 0.8)]);
        let t0 = crate::clock::parse_rfc3339("1677-09-22T00:00:00Z").unwrap();
        let t1 = crate::clock::parse_rfc3339("2262-04-11T00:00:00Z").unwrap();
        assert!(t0 < -9_200_000_000_000_000_000 && t1 > 9_200_000_000_000_000_000);
        let x = |at: i64| r.rects_at(at)[0].x;
        assert_eq!(x(i64::MIN), 0.0);
        assert_eq!(x(i64::MAX), 0.8);
        let mid = x(t0 / 2 + t1 / 2);
        assert!((mid - 0.4).abs() < 1e-6, "{mid}");
        assert!((0.0..=0.8).contains(&x(0)), "{}", x(0));
        let rect = |x: f64| Rect {
            x,
            y: 0.0,
            w: 0.1,
            h: 0.1,
        };
        let keys = [(i64::MIN, rect(0.0)), (i64::MAX, rect(0.5))];
        assert!((interpolate(&keys, 0).x - 0.25).abs() < 1e-6);
        assert_eq!(interpolate(&keys, i64::MAX).x, 0.5);
    }
}
