//! Still images: one key frame decoded and encoded as JPEG, optionally scaled.
//!
//! Only a key frame is ever decoded (never the frames after it), so a snapshot costs one
//! frame's decode whatever GOP the camera uses: `?at=` returns the key frame at or before
//! the time asked, and says which in [`Snapshot::frame_ns`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use ffmpeg_next as ffmpeg;

use crate::mp4::{self, read_fragment, read_init, SegmentInit};
use crate::store::{check::PART_SUFFIX, media::Source, parse_segment_name, SegmentRecord, Store};

const NS_PER_SEC: i64 = 1_000_000_000;
/// Smallest and largest widths a caller may ask for.
pub const WIDTHS: std::ops::RangeInclusive<u32> = 16..=4096;

/// A key frame located in a segment file.
#[derive(Clone, Debug)]
pub struct KeyFrame {
    /// The segment's local path (finished, or still being recorded): its identity, even
    /// once the bytes have moved to the archive.
    pub path: PathBuf,
    /// Where its bytes are read from (the storage seam).
    pub source: Source,
    /// Its init.
    pub init: SegmentInit,
    /// Offset of the fragment whose first video sample is the key frame.
    pub moof: u64,
    /// Valid length of the file.
    pub file_len: u64,
    /// Wall time of the frame.
    pub frame_ns: i64,
}

/// A decoded still.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// JPEG bytes.
    pub jpeg: Bytes,
    /// Wall time of the frame shown.
    pub frame_ns: i64,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
}

/// The newest key frame of `camera`: from the segment being recorded if it has a complete
/// fragment, else from the newest indexed segment. `None` if nothing is recorded.
pub fn latest_key_frame(store: &Store, camera: &str) -> anyhow::Result<Option<KeyFrame>> {
    let indexed = match store.newest(camera)? {
        Some(rec) => match rec.keyframes.last() {
            Some(&(t, moof)) => {
                let source = store.source(&rec);
                let init = read_init(&mut source.open()?, rec.bytes)?;
                Some(KeyFrame {
                    frame_ns: rec.start_ns + ticks_ns(t),
                    path: source.local.clone(),
                    source,
                    init,
                    moof,
                    file_len: rec.bytes,
                })
            }
            None => None,
        },
        None => None,
    };
    let open = open_segment_key_frame(store.dir(), camera).unwrap_or_else(|e| {
        tracing::debug!(camera, error = %e, "no key frame in the open segment");
        None
    });
    Ok(match (open, indexed) {
        (Some(o), Some(i)) if i.frame_ns > o.frame_ns => Some(i),
        (Some(o), _) => Some(o),
        (None, i) => i,
    })
}

fn ticks_ns(t: u64) -> i64 {
    (i128::from(t) * i128::from(NS_PER_SEC) / 90_000) as i64
}

/// The last complete key-frame fragment of the newest `.part` segment of `camera` (the one
/// being recorded): its boxes are scanned, tolerating the tail being written right now.
fn open_segment_key_frame(storage: &Path, camera: &str) -> anyhow::Result<Option<KeyFrame>> {
    let cam_dir = storage.join(camera);
    let Ok(days) = std::fs::read_dir(&cam_dir) else {
        return Ok(None);
    };
    let mut days: Vec<PathBuf> = days
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    days.sort();
    // Today's directory, or yesterday's just after midnight.
    for day in days.iter().rev().take(2) {
        let mut parts: Vec<PathBuf> = std::fs::read_dir(day)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(PART_SUFFIX))
            .collect();
        parts.sort();
        let Some(part) = parts.pop() else { continue };
        let name = part
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let start_ns = parse_segment_name(name).context("bad segment name")?;
        let scanned = mp4::scan_path(&part)?;
        let video = scanned.video_track().context("no video track")?.track_id;
        let mut first = None;
        let mut last = None;
        for f in &scanned.fragments {
            for r in f.runs.iter().filter(|r| r.track_id == video) {
                let base = *first.get_or_insert(r.base_decode_time);
                if r.first_is_sync {
                    last = Some((f.offset, r.base_decode_time - base));
                }
            }
        }
        let Some((moof, t)) = last else {
            return Ok(None);
        };
        let source = Source::local_file(part.clone(), scanned.valid_len);
        let init = read_init(&mut source.open()?, scanned.valid_len)?;
        return Ok(Some(KeyFrame {
            path: part,
            source,
            init,
            moof,
            file_len: scanned.valid_len,
            frame_ns: start_ns + ticks_ns(t),
        }));
    }
    Ok(None)
}

/// The key frame at or before `at_ns`, from the index; `None` if `at_ns` is not recorded.
pub fn key_frame_at(store: &Store, camera: &str, at_ns: i64) -> anyhow::Result<Option<KeyFrame>> {
    match indexed_key_frame(store, camera, at_ns)? {
        Some((rec, t, moof)) => Ok(Some(key_frame_of(store, &rec, t, moof)?)),
        None => Ok(None),
    }
}

/// The segment row and the index's (90 kHz time, `moof`) of the key frame at or before
/// `at_ns`, without opening the file.
fn indexed_key_frame(
    store: &Store,
    camera: &str,
    at_ns: i64,
) -> anyhow::Result<Option<(SegmentRecord, u64, u64)>> {
    let Some(rec) = store
        .segments(camera, at_ns, at_ns + 1)?
        .into_iter()
        .find(|r| r.start_ns <= at_ns && at_ns < r.end_ns)
    else {
        return Ok(None);
    };
    let rel = ((i128::from(at_ns - rec.start_ns) * 90_000) / i128::from(NS_PER_SEC)) as u64;
    let Some(&(t, moof)) = rec.keyframes.iter().rev().find(|k| k.0 <= rel) else {
        return Ok(None);
    };
    Ok(Some((rec, t, moof)))
}

/// The key frame at `t`/`moof` of `rec`, with the segment's init read.
fn key_frame_of(store: &Store, rec: &SegmentRecord, t: u64, moof: u64) -> anyhow::Result<KeyFrame> {
    let source = store.source(rec);
    let init = read_init(&mut source.open()?, rec.bytes)?;
    Ok(KeyFrame {
        frame_ns: rec.start_ns + ticks_ns(t),
        path: source.local.clone(),
        source,
        init,
        moof,
        file_len: rec.bytes,
    })
}

/// A timeline thumbnail and where it came from.
#[derive(Clone, Debug)]
pub struct Thumbnail {
    /// JPEG bytes.
    pub jpeg: Bytes,
    /// Wall time of the key frame shown.
    pub frame_ns: i64,
    /// Read from the disk cache (not decoded now).
    pub cached: bool,
}

/// The timeline thumbnail of `camera` at `at_ns`: the key frame at or before it, `width`
/// pixels wide, read from the cache beside its segment ([`crate::store::thumbs`]) or
/// decoded and cached there. `None` where nothing is recorded. The cache never fails
/// the caller: a cache file that cannot be written is logged and the picture served
/// anyway. Counts itself, and the CPU time it took, in [`super::counters`]. Blocking.
pub fn thumbnail(
    store: &Store,
    camera: &str,
    at_ns: i64,
    width: u32,
) -> anyhow::Result<Option<Thumbnail>> {
    use std::sync::atomic::Ordering::Relaxed;
    let cpu = thread_cpu_ns();
    let r = (|| {
        let Some((rec, t, moof)) = indexed_key_frame(store, camera, at_ns)? else {
            return Ok(None);
        };
        let frame_ns = rec.start_ns + ticks_ns(t);
        if let Some(jpeg) = store.cached_thumbnail(&rec, moof, width) {
            super::counters().thumbnails_cached.fetch_add(1, Relaxed);
            return Ok(Some(Thumbnail {
                jpeg,
                frame_ns,
                cached: true,
            }));
        }
        // Requests for the same key frame at once wait for one decode (and count as
        // cached); the first looks at the cache again, which one just finished may
        // have filled.
        let ((jpeg, hit), shared) = making().run((store.file_path(&rec), moof, width), || {
            if let Some(jpeg) = store.cached_thumbnail(&rec, moof, width) {
                return anyhow::Ok((jpeg, true));
            }
            let shot = decode(&key_frame_of(store, &rec, t, moof)?, Some(width))?;
            if let Err(e) = store.cache_thumbnail(&rec, moof, width, &shot.jpeg) {
                tracing::warn!(camera, segment = %rec.path, error = %format!("{e:#}"), "caching a thumbnail");
            }
            Ok((shot.jpeg, false))
        })?;
        let cached = hit || shared;
        let counter = if cached {
            &super::counters().thumbnails_cached
        } else {
            &super::counters().thumbnails_made
        };
        counter.fetch_add(1, Relaxed);
        Ok(Some(Thumbnail {
            jpeg,
            frame_ns,
            cached,
        }))
    })();
    let c = super::counters();
    let spent = thread_cpu_ns().saturating_sub(cpu);
    match &r {
        Ok(Some(t)) if t.cached => c.thumbnail_cached_cpu_ns.fetch_add(spent, Relaxed),
        _ => c.thumbnail_made_cpu_ns.fetch_add(spent, Relaxed),
    };
    r
}

/// Thumbnails being made now, by segment file, `moof` and width: the JPEG, and whether
/// it was in the cache after all.
type Making = super::flight::Flights<(std::path::PathBuf, u64, u32), (Bytes, bool)>;

fn making() -> &'static Making {
    static M: std::sync::OnceLock<Making> = std::sync::OnceLock::new();
    M.get_or_init(Making::default)
}

/// CPU time of the calling thread, ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Decodes the key frame and encodes it as JPEG, scaled to `width` (height keeps the
/// aspect ratio; both even) if given. Blocking and CPU-bound: call from a blocking task.
pub fn decode(kf: &KeyFrame, width: Option<u32>) -> anyhow::Result<Snapshot> {
    let video = kf.init.video().context("no video track")?;
    let mut f = kf
        .source
        .open()
        .with_context(|| format!("opening {}", kf.path.display()))?;
    let frag = read_fragment(&mut f, &kf.init, kf.moof, kf.file_len)?;
    let run = frag
        .run(video.info.track_id)
        .context("fragment has no video")?;
    let sample = run.samples.first().context("empty video run")?;
    if !sample.is_sync {
        bail!("fragment does not start with a key frame");
    }
    let mut data = vec![0; sample.size as usize];
    f.read_exact_at(&mut data, run.data_start)?;
    let shot = decode_key_frame(&video.sample_entry, &data, width)?;
    Ok(Snapshot {
        frame_ns: kf.frame_ns,
        ..shot
    })
}

/// Decodes one key frame (`data`: length-prefixed NAL units, as in MP4; `sample_entry`:
/// its `avc1`/`hvc1` box) and encodes it as JPEG, scaled to `width` if given. Blocking.
/// `frame_ns` of the result is 0: the caller knows when the frame was.
pub fn decode_key_frame(
    sample_entry: &[u8],
    data: &[u8],
    width: Option<u32>,
) -> anyhow::Result<Snapshot> {
    let mut dec = super::open_decoder(sample_entry, 1)?;
    let mut pkt = ffmpeg::Packet::copy(data);
    pkt.set_pts(Some(0));
    pkt.set_dts(Some(0));
    pkt.set_flags(ffmpeg::codec::packet::Flags::KEY);
    dec.send_packet(&pkt).context("decoding the key frame")?;
    dec.send_eof()?;
    let mut frame = ffmpeg::frame::Video::empty();
    dec.receive_frame(&mut frame)
        .context("the decoder returned no picture for the key frame")?;
    super::counters()
        .snapshots
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    to_jpeg(&frame, width)
}

/// Scales a decoded picture (to full-range YUV 4:2:0, as JPEG expects) and encodes it.
fn to_jpeg(frame: &ffmpeg::frame::Video, width: Option<u32>) -> anyhow::Result<Snapshot> {
    let (sw, sh) = (frame.width(), frame.height());
    let (dw, dh) = match width {
        Some(w) => {
            let w = w.min(sw.max(16)) & !1;
            let h = ((u64::from(sh) * u64::from(w) / u64::from(sw.max(1))) as u32).max(2) & !1;
            (w, h)
        }
        None => (sw & !1, sh & !1),
    };
    let mut scaler = ffmpeg::software::scaling::Context::get(
        frame.format(),
        sw,
        sh,
        ffmpeg::format::Pixel::YUV420P,
        dw,
        dh,
        ffmpeg::software::scaling::Flags::BICUBIC,
    )?;
    let src_full = frame.color_range() == ffmpeg::color::Range::JPEG;
    // SAFETY: the scaler context is valid for the lifetime of `scaler`; the coefficient
    // tables are static tables owned by libswscale.
    unsafe {
        let table = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_ITU601);
        ffmpeg::ffi::sws_setColorspaceDetails(
            scaler.as_mut_ptr(),
            table,
            i32::from(src_full),
            table,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
    let mut out = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, dw, dh);
    scaler.run(frame, &mut out)?;
    out.set_color_range(ffmpeg::color::Range::JPEG);
    out.set_pts(Some(0));

    let codec = ffmpeg::encoder::find(ffmpeg::codec::Id::MJPEG).context("no MJPEG encoder")?;
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()?;
    enc.set_width(dw);
    enc.set_height(dh);
    enc.set_format(ffmpeg::format::Pixel::YUV420P);
    enc.set_color_range(ffmpeg::color::Range::JPEG);
    enc.set_time_base((1, 25));
    // Fixed quality (q 3 of 2..31) rather than a bitrate: one image has no rate to keep.
    enc.set_flags(ffmpeg::codec::Flags::QSCALE);
    enc.set_global_quality(3 * ffmpeg::ffi::FF_QP2LAMBDA);
    let mut enc = enc.open_as(codec).context("opening the JPEG encoder")?;
    // SAFETY: `out` owns a valid AVFrame; quality is a plain int field read by the
    // encoder when QSCALE is set.
    unsafe { (*out.as_mut_ptr()).quality = 3 * ffmpeg::ffi::FF_QP2LAMBDA };
    enc.send_frame(&out)?;
    enc.send_eof()?;
    let mut pkt = ffmpeg::Packet::empty();
    enc.receive_packet(&mut pkt)
        .context("JPEG encoder returned nothing")?;
    Ok(Snapshot {
        jpeg: Bytes::copy_from_slice(pkt.data().unwrap_or_default()),
        frame_ns: 0,
        width: dw,
        height: dh,
    })
}
