//! Playback: one fragmented MP4 for any time range of a camera, assembled from its
//! segments without re-encoding, and read back in byte ranges.
//!
//! Owns: choosing segments from the index; the key frame to start from (the index's
//! key-frame offsets, never a file scan); the edit list that makes players start at the
//! requested moment; cutting the last fragment at the requested end; and the byte layout of
//! the result, so its length, `Range` answers and `ETag` are known before a byte of media is
//! read. Never writes files, never decodes media.
//!
//! # Layout of an assembled file
//!
//! ```text
//! ftyp moov(edts/elst per track, mvex/mehd)   written here, from the first segment's init
//! moof' mdat ...                              first fragment, rewritten (see below)
//! moof* mdat moof* mdat ...                   copied from the files; moof* = sequence number
//!                                             and tfdt patched in place (same size)
//! moof' mdat                                  last fragment cut at `end`, rewritten
//! ```
//!
//! Time: the output's decode time 0 is the key frame at or before `start`. Each later
//! segment is placed at its wall-clock offset from there (never earlier than the end of the
//! previous one), so media time maps to wall time and a gap in the recording stays a gap in
//! the timeline, reported in [`Plan::gaps`], rather than being papered over. The edit list
//! starts presentation at `start`; players that ignore edit lists show the lead-in from the
//! key frame, which [`Plan::lead_in_ns`] reports.
//!
//! A change of codec parameters (a new SPS, resolution, or audio appearing) between segments
//! cannot share one init: [`plan`] refuses it with [`PlanError::ParametersChanged`], naming
//! the boundary, and [`plan_parts`] splits the range there instead (export does that).

pub mod reader;

use anyhow::Context;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::mp4::{
    self, read_fragment, read_init, Edit, Fragment, InitOptions, SegmentInit, TrackRun,
};
use crate::store::{media::Source as SegSource, SegmentRecord, Store};

pub use reader::{stream, PlanFile, PlanReader};

const NS_PER_SEC: i64 = 1_000_000_000;
/// Video timescale of every segment the recorder writes.
const VIDEO_TIMESCALE: i64 = 90_000;
/// Holes between segments shorter than this are rotations, not gaps: the next segment
/// starts a frame interval after the previous one ends. Same tolerance as the recordings API.
pub const GAP_TOLERANCE_NS: i64 = NS_PER_SEC;
/// Shortest range assembled; anything shorter cannot hold a frame.
pub const MIN_RANGE_NS: i64 = 1_000_000;

/// A time span, ns since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    /// Start, inclusive.
    pub start_ns: i64,
    /// End, exclusive.
    pub end_ns: i64,
}

/// Why a range cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No segment overlaps the range.
    #[error("nothing recorded in this range")]
    NothingRecorded,
    /// The codec parameters change inside the range; `parts` are ranges that can each be
    /// assembled on their own.
    #[error("codec parameters change at {}; request the parts separately", crate::clock::rfc3339(*at_ns))]
    ParametersChanged {
        /// Wall time of the first segment with the new parameters.
        at_ns: i64,
        /// The sub-ranges between changes, clipped to the request.
        parts: Vec<Span>,
    },
    /// Bad request (empty or reversed range).
    #[error("{0}")]
    Invalid(String),
    /// Reading the index or a segment failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// How one segment's bytes appear in the output.
#[derive(Debug)]
struct SegPlan {
    /// Where the segment's bytes are (local or archived), through the storage seam.
    source: SegSource,
    init: SegmentInit,
    /// Added to every `mfhd` sequence number from this file.
    seq_base: u32,
    /// Added to each track's `tfdt` (track timescale), by track id.
    shifts: Vec<(u32, i64)>,
    /// Decode time of the file's first video frame (90 kHz); index times count from it.
    v0: i64,
    /// Seek points (moof offsets) from the index, for finding box boundaries mid-file.
    moofs: Vec<u64>,
    /// Length of the valid part of the file.
    bytes: u64,
}

impl SegPlan {
    fn shift(&self, track_id: u32) -> i64 {
        self.shifts
            .iter()
            .find(|(t, _)| *t == track_id)
            .map_or(0, |(_, s)| *s)
    }
}

/// Where a run of output bytes comes from.
#[derive(Debug)]
enum Source {
    /// Bytes built here (the init, rewritten fragment headers).
    Mem(Bytes),
    /// `len` bytes of segment `seg` from `from`, whole boxes, with every `moof` relocated.
    Boxes { seg: usize, from: u64 },
    /// `len` bytes of sample data of segment `seg` from `from`, copied verbatim.
    Raw { seg: usize, from: u64 },
}

#[derive(Debug)]
struct Piece {
    out_start: u64,
    len: u64,
    source: Source,
}

/// An assembled range: what it covers and where each output byte comes from.
#[derive(Debug)]
pub struct Plan {
    /// Camera id.
    pub camera: String,
    /// The range asked for (for this part, when split).
    pub requested: Span,
    /// The range presented: the request clipped to what was recorded.
    pub actual: Span,
    /// Wall time of the output's first frame (the key frame at or before `actual.start_ns`).
    pub first_frame_ns: i64,
    /// Recording gaps within `requested`, longer than [`GAP_TOLERANCE_NS`].
    pub gaps: Vec<Span>,
    /// Codec (RFC 6381 string or sample-entry fourcc, from the index).
    pub codec: String,
    /// Sample-entry fourcc of the video track (`avc1`, `hvc1`, ...).
    pub video_fourcc: [u8; 4],
    /// Video width.
    pub width: u16,
    /// Video height.
    pub height: u16,
    /// Whether there is an audio track.
    pub has_audio: bool,
    /// Total length in bytes.
    pub len: u64,
    /// Strong entity tag (quoted), derived from the request and the segments used.
    pub etag: String,
    /// Paths (relative to the storage dir) of the segments used.
    pub segment_paths: Vec<String>,
    segs: Vec<SegPlan>,
    pieces: Vec<Piece>,
}

impl Plan {
    /// Time from the first frame in the file to the first presented one: what a player
    /// that ignores the edit list shows before `start`.
    pub fn lead_in_ns(&self) -> i64 {
        self.actual.start_ns - self.first_frame_ns
    }

    /// The segments' sample entries and timescales (for the transcoder and snapshots).
    pub fn init(&self) -> &SegmentInit {
        &self.segs[0].init
    }
}

fn ns_to_ticks(ns: i64, timescale: i64) -> i64 {
    (i128::from(ns) * i128::from(timescale)).div_euclid(i128::from(NS_PER_SEC)) as i64
}

fn ticks_to_ns(ticks: i64, timescale: i64) -> i64 {
    (i128::from(ticks) * i128::from(NS_PER_SEC)).div_euclid(i128::from(timescale)) as i64
}

/// Assembles `[start_ns, end_ns)` of `camera` as one file; refuses a range across a change
/// of codec parameters. Blocking: reads the index and a few KiB per segment.
pub fn plan(store: &Store, camera: &str, start_ns: i64, end_ns: i64) -> Result<Plan, PlanError> {
    let mut parts = plan_parts(store, camera, start_ns, end_ns)?;
    if parts.len() > 1 {
        return Err(PlanError::ParametersChanged {
            at_ns: parts[1].actual.start_ns,
            parts: parts.iter().map(|p| p.requested).collect(),
        });
    }
    Ok(parts.remove(0))
}

/// Assembles `[start_ns, end_ns)` of `camera`, split into one file per run of segments
/// with the same codec parameters. Blocking.
pub fn plan_parts(
    store: &Store,
    camera: &str,
    start_ns: i64,
    end_ns: i64,
) -> Result<Vec<Plan>, PlanError> {
    if end_ns - start_ns < MIN_RANGE_NS {
        return Err(PlanError::Invalid(
            "end must be at least 1 ms after start".into(),
        ));
    }
    let recs: Vec<SegmentRecord> = store
        .segments(camera, start_ns, end_ns)?
        .into_iter()
        .filter(|r| r.end_ns > start_ns && r.start_ns < end_ns && r.frames > 0)
        .collect();
    if recs.is_empty() {
        return Err(PlanError::NothingRecorded);
    }
    let mut groups: Vec<Vec<(SegmentRecord, SegmentInit)>> = Vec::new();
    for rec in recs {
        let mut f = store.open_segment(&rec)?;
        let init = read_init(&mut f, rec.bytes).with_context(|| format!("reading {}", rec.path))?;
        match groups.last_mut() {
            Some(g) if g[0].1.same_media(&init) => g.push((rec, init)),
            _ => groups.push(vec![(rec, init)]),
        }
    }
    let n = groups.len();
    let bounds: Vec<i64> = groups.iter().map(|g| g[0].0.start_ns).collect();
    let mut out = Vec::with_capacity(n);
    for (i, g) in groups.into_iter().enumerate() {
        let win_start = if i == 0 { start_ns } else { bounds[i] };
        let win_end = if i + 1 < n { bounds[i + 1] } else { end_ns };
        out.push(build(store, camera, g, win_start, win_end)?);
    }
    Ok(out)
}

/// Uncovered spans of `[start, end)` longer than [`GAP_TOLERANCE_NS`], given the segments
/// overlapping it sorted by start.
pub fn gaps(segs: &[SegmentRecord], start: i64, end: i64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut cursor = start;
    for s in segs {
        let a = s.start_ns.min(end);
        if a - cursor > GAP_TOLERANCE_NS {
            out.push(Span {
                start_ns: cursor,
                end_ns: a,
            });
        }
        cursor = cursor.max(s.end_ns);
    }
    if end - cursor > GAP_TOLERANCE_NS {
        out.push(Span {
            start_ns: cursor,
            end_ns: end,
        });
    }
    out
}

/// Which samples of a fragment to keep: a sub-range per track.
struct Keep {
    track_id: u32,
    from: usize,
    to: usize,
}

/// Writes a fragment header for the kept samples and returns it with the file ranges of
/// their data, in the order the header expects.
fn rewrite(frag: &Fragment, keep: &[Keep], seq: u32, seg: &SegPlan) -> (Vec<u8>, Vec<(u64, u64)>) {
    let mut runs = Vec::new();
    let mut data = Vec::new();
    for k in keep {
        let Some(run) = frag.run(k.track_id) else {
            continue;
        };
        if k.from >= k.to {
            continue;
        }
        let skipped = &run.samples[..k.from];
        let kept = &run.samples[k.from..k.to];
        let skip_t: u64 = skipped.iter().map(|s| u64::from(s.duration)).sum();
        let skip_b: u64 = skipped.iter().map(|s| u64::from(s.size)).sum();
        let base = (run.base_decode_time + skip_t) as i64 + seg.shift(k.track_id);
        runs.push(TrackRun {
            track_id: k.track_id,
            base_decode_time: base.max(0) as u64,
            samples: kept,
        });
        data.push((
            run.data_start + skip_b,
            kept.iter().map(|s| u64::from(s.size)).sum(),
        ));
    }
    let mut header = Vec::new();
    if !runs.is_empty() {
        mp4::write_fragment_header(seq, &runs, &mut header);
    }
    (header, data)
}

/// Lays out one group of segments with identical init.
fn build(
    store: &Store,
    camera: &str,
    group: Vec<(SegmentRecord, SegmentInit)>,
    win_start: i64,
    win_end: i64,
) -> Result<Plan, PlanError> {
    let (rec0, init0) = &group[0];
    let video = init0
        .video()
        .with_context(|| format!("{}: no video track", rec0.path))?
        .info
        .clone();
    let vid = video.track_id;
    let tracks: Vec<(u32, i64)> = init0
        .tracks
        .iter()
        .map(|t| (t.info.track_id, i64::from(t.info.timescale)))
        .collect();

    // Start: the key frame at or before the start, from the index.
    let start_rel = ns_to_ticks((win_start - rec0.start_ns).max(0), VIDEO_TIMESCALE) as u64;
    let kf = *rec0
        .keyframes
        .iter()
        .rev()
        .find(|k| k.0 <= start_rel)
        .or(rec0.keyframes.first())
        .with_context(|| format!("{}: no key frames in the index", rec0.path))?;
    let first_frame_ns = rec0.start_ns + ticks_to_ns(kf.0 as i64, VIDEO_TIMESCALE);
    let actual_start = win_start.max(rec0.start_ns).max(first_frame_ns);
    let last = &group[group.len() - 1].0;
    let actual_end = win_end.min(last.end_ns);

    let mut segs = Vec::with_capacity(group.len());
    let mut seq_base = 0u32;
    let mut prev_end: i64 = 0; // output 90 kHz time where the previous segment ended
    for (i, (rec, init)) in group.iter().enumerate() {
        // Decode time of the file's first video frame: 0 in the recorder's files, but
        // files indexed by `check` may start later (ffmpeg shifts video to make room for
        // AAC priming), and the index's key-frame times count from it.
        let first_moof = if i == 0 { kf.1 } else { init.len };
        let source = store.source(rec);
        let mut f = source
            .open()
            .with_context(|| format!("camera {camera}: opening {}", rec.path))?;
        let frag = read_fragment(&mut f, init, first_moof, rec.bytes)
            .with_context(|| format!("reading {} at {first_moof}", rec.path))?;
        let v0 = frag.run(vid).map_or(0, |r| {
            r.base_decode_time as i64 - if i == 0 { kf.0 as i64 } else { 0 }
        });
        let shift90 = if i == 0 {
            -(kf.0 as i64) - v0
        } else {
            let wall = ns_to_ticks(rec.start_ns - first_frame_ns, VIDEO_TIMESCALE);
            // A rotation leaves the next segment within a millisecond of the previous end;
            // never let rounding put it earlier, which would make time run backwards.
            wall.max(prev_end) - v0
        };
        prev_end = shift90 + v0 + ns_to_ticks(rec.end_ns - rec.start_ns, VIDEO_TIMESCALE);
        let shifts = tracks
            .iter()
            .map(|&(id, ts)| {
                let s = if id == vid {
                    shift90
                } else {
                    (i128::from(shift90) * i128::from(ts)).div_euclid(90_000) as i64
                };
                (id, s)
            })
            .collect();
        segs.push(SegPlan {
            source,
            init: init.clone(),
            seq_base,
            shifts,
            v0,
            moofs: rec.keyframes.iter().map(|k| k.1).collect(),
            bytes: rec.bytes,
        });
        // Fragments hold at least one frame, so `frames + 2` bounds a file's sequence numbers
        // (the +2 covers an audio-only fragment at either end) and keeps them increasing.
        let span = u32::try_from(rec.frames + 2).unwrap_or(u32::MAX);
        seq_base = seq_base.saturating_add(span);
    }

    let mut pieces: Vec<Piece> = Vec::new();
    let mut out_len = 0u64;
    let mut push = |pieces: &mut Vec<Piece>, len: u64, source: Source| {
        if len > 0 {
            pieces.push(Piece {
                out_start: out_len,
                len,
                source,
            });
            out_len += len;
        }
    };

    // Init, with an edit list starting presentation at the requested moment.
    let lead_in90 = ns_to_ticks(actual_start - first_frame_ns, VIDEO_TIMESCALE);
    let duration_ms = ((actual_end - actual_start).max(0) as u64).div_ceil(1_000_000);
    let edits = tracks
        .iter()
        .map(|&(id, ts)| Edit {
            track_id: id,
            media_time: (i128::from(lead_in90) * i128::from(ts) / 90_000) as u64,
            duration_ms,
        })
        .collect();
    let mut init_bytes = Vec::new();
    mp4::write_init_with(
        &init0.track_configs(),
        &InitOptions { duration_ms, edits },
        &mut init_bytes,
    );
    push(
        &mut pieces,
        init_bytes.len() as u64,
        Source::Mem(init_bytes.into()),
    );

    let last_i = group.len() - 1;
    for (i, (rec, _)) in group.iter().enumerate() {
        let seg = &segs[i];
        let mut f = seg
            .source
            .open()
            .with_context(|| format!("camera {camera}: opening {}", rec.path))?;
        let mut from = if i == 0 { kf.1 } else { seg.init.len };

        // The cut at the end, if `win_end` falls inside this (last) segment.
        let mut cut: Option<Fragment> = None;
        if i == last_i && win_end < rec.end_ns {
            let end_rel = ns_to_ticks(win_end - rec.start_ns, VIDEO_TIMESCALE) as u64;
            let k = rec
                .keyframes
                .iter()
                .rev()
                .find(|k| k.0 < end_rel && k.1 >= from)
                .map_or(from, |k| k.1);
            let mut pos = k;
            while pos < rec.bytes {
                let frag = read_fragment(&mut f, &seg.init, pos, rec.bytes)
                    .with_context(|| format!("reading {} at {pos}", rec.path))?;
                let (t, d) = frag
                    .run(vid)
                    .map_or((0, 0), |r| (r.base_decode_time, r.duration()));
                if frag.run(vid).is_some() && t + d > end_rel + seg.v0 as u64 {
                    cut = Some(frag);
                    break;
                }
                pos = frag.end;
            }
        }

        // The first fragment is rewritten: audio captured just before the key frame would
        // otherwise land before time zero.
        if i == 0 {
            let frag = read_fragment(&mut f, &seg.init, kf.1, rec.bytes)
                .with_context(|| format!("reading {} at {}", rec.path, kf.1))?;
            let same = cut.as_ref().is_some_and(|c| c.offset == frag.offset);
            let frag = if same {
                cut.take().expect("checked")
            } else {
                frag
            };
            let keep = keep_for(
                &frag,
                seg,
                &tracks,
                vid,
                same.then(|| end_ticks(win_end, rec, seg)),
            );
            let (header, data) = rewrite(&frag, &keep, seg.seq_base + frag.sequence, seg);
            push(&mut pieces, header.len() as u64, Source::Mem(header.into()));
            for (at, len) in data {
                push(&mut pieces, len, Source::Raw { seg: i, from: at });
            }
            from = frag.end;
            if same {
                break;
            }
        }
        let to = cut.as_ref().map_or(rec.bytes, |c| c.offset);
        if to > from {
            push(&mut pieces, to - from, Source::Boxes { seg: i, from });
        }
        if let Some(frag) = cut {
            let keep = keep_for(&frag, seg, &tracks, vid, Some(end_ticks(win_end, rec, seg)));
            let (header, data) = rewrite(&frag, &keep, seg.seq_base + frag.sequence, seg);
            push(&mut pieces, header.len() as u64, Source::Mem(header.into()));
            for (at, len) in data {
                push(&mut pieces, len, Source::Raw { seg: i, from: at });
            }
        }
    }

    let recs: Vec<SegmentRecord> = group.iter().map(|(r, _)| r.clone()).collect();
    let gaps = gaps(&recs, win_start, win_end);
    let mut h = Sha256::new();
    h.update(format!(
        "cleannvr playback v1\0{camera}\0{win_start}\0{win_end}\0"
    ));
    for r in &recs {
        h.update(format!(
            "{}\0{}\0{}\0{}\0",
            r.path, r.bytes, r.start_ns, r.end_ns
        ));
    }
    let etag = format!("\"{}\"", hex::encode(&h.finalize()[..16]));
    Ok(Plan {
        camera: camera.to_owned(),
        requested: Span {
            start_ns: win_start,
            end_ns: win_end,
        },
        actual: Span {
            start_ns: actual_start,
            end_ns: actual_end,
        },
        first_frame_ns,
        gaps,
        codec: rec0.codec.clone(),
        video_fourcc: video.codec,
        width: video.width,
        height: video.height,
        has_audio: tracks.len() > 1,
        len: out_len,
        etag,
        segment_paths: recs.iter().map(|r| r.path.clone()).collect(),
        segs,
        pieces,
    })
}

/// The cut time as a decode time in the segment's file (90 kHz).
fn end_ticks(win_end: i64, rec: &SegmentRecord, seg: &SegPlan) -> i64 {
    ns_to_ticks(win_end - rec.start_ns, VIDEO_TIMESCALE) + seg.v0
}

/// Which samples of `frag` to keep: none that would land before output time zero, and, with
/// `end90`, none starting at or after the cut (the video frame spanning it is kept).
fn keep_for(
    frag: &Fragment,
    seg: &SegPlan,
    tracks: &[(u32, i64)],
    vid: u32,
    end90: Option<i64>,
) -> Vec<Keep> {
    let mut keep = Vec::new();
    for &(id, ts) in tracks {
        let Some(run) = frag.run(id) else { continue };
        let shift = seg.shift(id);
        let end = end90.map(|e| {
            if id == vid {
                e
            } else {
                (i128::from(e) * i128::from(ts)).div_euclid(90_000) as i64
            }
        });
        let mut t = run.base_decode_time as i64;
        let (mut from, mut to) = (0, 0);
        for (n, s) in run.samples.iter().enumerate() {
            if t + shift < 0 {
                from = n + 1;
            }
            if end.is_none_or(|e| t < e) {
                to = n + 1;
            }
            t += i64::from(s.duration);
        }
        keep.push(Keep {
            track_id: id,
            from,
            to,
        });
    }
    keep
}

/// A range that cannot be played or exported as asked. A change of codec
/// parameters names the boundary and lists the parts that can be requested
/// separately.
impl From<PlanError> for crate::error::Error {
    fn from(e: PlanError) -> Self {
        use crate::clock::rfc3339;
        use crate::error::Error;
        match e {
            PlanError::NothingRecorded => Error::not_found(e.to_string()),
            PlanError::Invalid(d) => Error::invalid_argument(d),
            PlanError::ParametersChanged { at_ns, ref parts } => {
                let parts: Vec<serde_json::Value> = parts
                    .iter()
                    .map(|p| {
                        serde_json::json!({ "start": rfc3339(p.start_ns), "end": rfc3339(p.end_ns) })
                    })
                    .collect();
                Error::conflict(e.to_string())
                    .with("boundary", rfc3339(at_ns))
                    .with("parts", parts)
            }
            PlanError::Other(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests;
