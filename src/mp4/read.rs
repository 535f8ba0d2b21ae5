//! Reader for playback and export: a segment's init (with its sample entries, so a new init
//! can be written from them) and single fragments with their samples, read at byte offsets
//! the index gave.
//!
//! Unlike [`scan`](super::scan), which walks a whole file, this reads only the boxes asked
//! for, so assembling an hour from a month-long archive costs a few reads per segment. Input
//! is still treated as hostile: every length is checked against the file and a cap before
//! anything is allocated, and nothing panics.

use std::io::{Read, Seek};

use super::scan::{
    children, fourcc_str, next_child, parse_moof, parse_moov, parse_trak, read_body, read_header,
    require, BoxHeader, Bytes, Header, Trex, MAX_HEADER_BOX,
};
use super::{Sample, ScanError, ScannedTrack, TrackConfig, TrackKind};

/// One track of a segment's init, with the sample entry needed to write it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitTrack {
    /// What the scanner reports for the track.
    pub info: ScannedTrack,
    /// The complete first `stsd` entry box (`avc1`/`hvc1`/`mp4a` with its children).
    pub sample_entry: Vec<u8>,
    /// Channel count for audio tracks (informational), 0 for video.
    pub channels: u16,
}

/// The init (`ftyp` + `moov`) of a segment.
#[derive(Clone, Debug)]
pub struct SegmentInit {
    /// Bytes from the start of the file to the end of `moov`.
    pub len: u64,
    /// Tracks in file order.
    pub tracks: Vec<InitTrack>,
    trex: Vec<Trex>,
}

impl SegmentInit {
    /// The track with this id.
    pub fn track(&self, track_id: u32) -> Option<&InitTrack> {
        self.tracks.iter().find(|t| t.info.track_id == track_id)
    }

    /// The first video track.
    pub fn video(&self) -> Option<&InitTrack> {
        self.tracks.iter().find(|t| &t.info.handler == b"vide")
    }

    /// Whether `other` carries the same media: same tracks, timescales and sample entries
    /// (so the same SPS/PPS/VPS). Fragments of two such segments can share one init.
    pub fn same_media(&self, other: &SegmentInit) -> bool {
        self.tracks == other.tracks
    }

    /// Track configurations for [`write_init`](super::write_init).
    pub fn track_configs(&self) -> Vec<TrackConfig> {
        self.tracks
            .iter()
            .map(|t| TrackConfig {
                track_id: t.info.track_id,
                kind: if &t.info.handler == b"vide" {
                    TrackKind::Video {
                        width: t.info.width,
                        height: t.info.height,
                    }
                } else {
                    TrackKind::Audio {
                        sample_rate: t.info.timescale,
                        channels: t.channels,
                    }
                },
                timescale: t.info.timescale,
                sample_entry: t.sample_entry.clone(),
            })
            .collect()
    }
}

/// Reads `ftyp` + `moov` from the start of a segment of `file_len` bytes.
pub fn read_init<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<SegmentInit, ScanError> {
    let no_init = |s: String| ScanError::NoInit(s);
    let mut pos = 0;
    let mut first = true;
    loop {
        let h = match read_header(r, pos, file_len)? {
            Header::Box(h) if h.end <= file_len => h,
            Header::Box(h) => {
                return Err(no_init(format!(
                    "{} at {pos} runs past end of file",
                    fourcc_str(&h.fourcc)
                )))
            }
            Header::Incomplete => return Err(no_init(format!("no moov before byte {pos}"))),
            Header::Invalid(why) => return Err(no_init(format!("bad box at {pos}: {why}"))),
        };
        if first && &h.fourcc != b"ftyp" {
            return Err(no_init("file does not start with ftyp".into()));
        }
        first = false;
        match &h.fourcc {
            b"moov" => {
                if h.end - h.start > MAX_HEADER_BOX {
                    return Err(no_init(format!("moov at {pos} too large")));
                }
                let body = read_body(r, &h)?;
                let (infos, trex) = parse_moov(&body).map_err(|e| no_init(format!("moov: {e}")))?;
                let mut tracks = Vec::with_capacity(infos.len());
                for c in children(&body) {
                    let (f, trak) = c.map_err(|e| no_init(format!("moov: {e}")))?;
                    if &f != b"trak" {
                        continue;
                    }
                    let info = parse_trak(trak).map_err(|e| no_init(format!("trak: {e}")))?;
                    let (entry, channels) =
                        sample_entry(trak).map_err(|e| no_init(format!("stsd: {e}")))?;
                    tracks.push(InitTrack {
                        info,
                        sample_entry: entry,
                        channels,
                    });
                }
                return Ok(SegmentInit {
                    len: h.end,
                    tracks,
                    trex,
                });
            }
            b"moof" | b"mdat" => {
                return Err(no_init(format!("{} before moov", fourcc_str(&h.fourcc))))
            }
            _ => pos = h.end,
        }
    }
}

/// The first `stsd` entry of a `trak`, as a complete box, and its channel count if audio.
fn sample_entry(trak: &[u8]) -> Result<(Vec<u8>, u16), String> {
    let stbl = require(require(require(trak, b"mdia")?, b"minf")?, b"stbl")?;
    let stsd = require(stbl, b"stsd")?;
    let mut r = Bytes { b: stsd };
    r.version_flags()?;
    if r.u32()? == 0 {
        return Err("no sample entry".into());
    }
    let before = r.b;
    let (fourcc, body) = next_child(&mut r.b)?;
    let whole = &before[..before.len() - r.b.len()];
    // AudioSampleEntry: 6 reserved, data_reference_index, 8 reserved, then channelcount.
    let channels = if &fourcc == b"mp4a" && body.len() >= 18 {
        u16::from_be_bytes([body[16], body[17]])
    } else {
        0
    };
    Ok((whole.to_vec(), channels))
}

/// The samples of one track in one fragment.
#[derive(Clone, Debug)]
pub struct FragmentRun {
    /// Track the samples belong to.
    pub track_id: u32,
    /// Decode time of the first sample (track timescale).
    pub base_decode_time: u64,
    /// Where the `tfdt` value sits inside the `moof` bytes, and the `tfdt` version.
    pub tfdt_at: Option<(usize, u8)>,
    /// Absolute file offset of the first sample's data; the run's data is contiguous.
    pub data_start: u64,
    /// The samples in decode order.
    pub samples: Vec<Sample>,
}

impl FragmentRun {
    /// Sum of sample durations.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
    /// Sum of sample sizes.
    pub fn bytes(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.size)).sum()
    }
}

/// One `moof` + `mdat`, parsed.
#[derive(Clone, Debug)]
pub struct Fragment {
    /// File offset of the `moof`.
    pub offset: u64,
    /// File offset just past the `mdat`.
    pub end: u64,
    /// The whole `moof` box as read.
    pub moof: Vec<u8>,
    /// `mfhd` sequence number.
    pub sequence: u32,
    /// Where the sequence number sits inside `moof`.
    pub sequence_at: usize,
    /// Whether any `tfhd` gives an absolute base data offset, which moving the fragment to
    /// another file position would break.
    pub absolute_offsets: bool,
    /// One run per `traf`.
    pub runs: Vec<FragmentRun>,
}

impl Fragment {
    /// The run of `track_id`, if the fragment has one.
    pub fn run(&self, track_id: u32) -> Option<&FragmentRun> {
        self.runs.iter().find(|r| r.track_id == track_id)
    }

    /// Rewrites the `moof` in place for its new place in another file: sets the sequence
    /// number and adds `shift(track_id)` to each `tfdt`. Box sizes never change, so byte
    /// offsets computed from the original layout stay valid.
    pub fn relocate(&mut self, sequence: u32, shift: impl Fn(u32) -> i64) -> Result<(), String> {
        if self.absolute_offsets {
            return Err("fragment uses absolute data offsets; cannot be moved".into());
        }
        let at = self.sequence_at;
        self.moof[at..at + 4].copy_from_slice(&sequence.to_be_bytes());
        for run in &mut self.runs {
            let Some((at, version)) = run.tfdt_at else {
                return Err(format!("track {} fragment has no tfdt", run.track_id));
            };
            let t = i128::from(run.base_decode_time) + i128::from(shift(run.track_id));
            if version == 1 {
                let v = u64::try_from(t).map_err(|_| "decode time before zero".to_string())?;
                self.moof[at..at + 8].copy_from_slice(&v.to_be_bytes());
                run.base_decode_time = v;
            } else {
                let v = u32::try_from(t).map_err(|_| "decode time out of tfdt v0 range")?;
                self.moof[at..at + 4].copy_from_slice(&v.to_be_bytes());
                run.base_decode_time = u64::from(v);
            }
        }
        self.sequence = sequence;
        Ok(())
    }
}

/// The type and end offset of the complete box at `pos`, or `None` at end of file or if
/// no complete box starts there.
pub fn box_at<R: Read + Seek>(
    r: &mut R,
    pos: u64,
    file_len: u64,
) -> Result<Option<([u8; 4], u64)>, ScanError> {
    Ok(match read_header(r, pos, file_len)? {
        Header::Box(h) if h.end <= file_len => Some((h.fourcc, h.end)),
        _ => None,
    })
}

/// Reads and parses the fragment whose `moof` starts at `offset`.
///
/// Fails if there is no complete `moof` + `mdat` there, or if the `moof` describes data
/// outside its `mdat`.
pub fn read_fragment<R: Read + Seek>(
    r: &mut R,
    init: &SegmentInit,
    offset: u64,
    file_len: u64,
) -> Result<Fragment, ScanError> {
    let malformed = |reason: String| ScanError::Malformed { offset, reason };
    let moof = match read_header(r, offset, file_len)? {
        Header::Box(h) if h.end <= file_len && &h.fourcc == b"moof" => h,
        _ => return Err(malformed("no complete moof here".into())),
    };
    if moof.end - moof.start > MAX_HEADER_BOX {
        return Err(malformed("moof too large".into()));
    }
    let mdat = match read_header(r, moof.end, file_len)? {
        Header::Box(h) if h.end <= file_len && &h.fourcc == b"mdat" => h,
        _ => return Err(malformed("moof without a complete mdat".into())),
    };
    let body = read_body(r, &moof)?;
    let mut bytes = Vec::with_capacity(body.len() + moof.header_len as usize);
    // Re-create the header as read, so positions inside `bytes` match the file.
    let len = moof.end - moof.start;
    if moof.header_len == 16 {
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(b"moof");
        bytes.extend_from_slice(&len.to_be_bytes());
    } else {
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend_from_slice(b"moof");
    }
    bytes.extend_from_slice(&body);
    parse_moof_bytes(bytes, &moof, &mdat, init).map_err(malformed)
}

/// Builds the [`Fragment`] of a `moof` box held in `bytes` (header included).
fn parse_moof_bytes(
    bytes: Vec<u8>,
    moof: &BoxHeader,
    mdat: &BoxHeader,
    init: &SegmentInit,
) -> Result<Fragment, String> {
    let hl = moof.header_len as usize;
    let parsed = parse_moof(&bytes[hl..], moof.start, &init.trex)?;
    let payload_start = mdat.start + mdat.header_len;
    let mut runs = Vec::with_capacity(parsed.trafs.len());
    let mut absolute_offsets = false;
    let mut prev_data_end = moof.start;
    for t in parsed.trafs {
        let track_id = t.track_id;
        if init.track(track_id).is_none() {
            return Err(format!("traf for unknown track {track_id}"));
        }
        absolute_offsets |= t.explicit_base;
        // ISO 14496-12 8.8.7: without a base of its own, a traf's data follows the
        // previous traf's.
        let base = t.data_base.unwrap_or(prev_data_end);
        let mut samples = Vec::new();
        let mut data_start = None;
        let mut cursor = base;
        for trun in t.truns {
            let start = match trun.data_offset {
                Some(off) => base
                    .checked_add_signed(i64::from(off))
                    .ok_or_else(|| "data offset before file start".to_string())?,
                None => cursor,
            };
            if data_start.is_some() && start != cursor {
                return Err("runs of one track are not contiguous".into());
            }
            data_start.get_or_insert(start);
            if trun.cto_overflow {
                return Err("composition offset too large".into());
            }
            cursor = start.saturating_add(trun.bytes());
            samples.extend(trun.samples);
        }
        let data_start = data_start.unwrap_or(cursor);
        if !samples.is_empty() && (data_start < payload_start || cursor > mdat.end) {
            return Err(format!(
                "track {track_id} sample data lies outside the mdat"
            ));
        }
        prev_data_end = cursor;
        runs.push(FragmentRun {
            track_id,
            base_decode_time: t.decode_time.unwrap_or(0),
            tfdt_at: t.tfdt_at.map(|(at, version)| (at + hl, version)),
            data_start,
            samples,
        });
    }
    Ok(Fragment {
        offset: moof.start,
        end: mdat.end,
        moof: bytes,
        sequence: parsed.sequence,
        sequence_at: parsed.sequence_at + hl,
        absolute_offsets,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::{
        avc1_sample_entry, avcc_from_parameter_sets, write_fragment_header, write_init, TrackRun,
    };
    use std::io::Cursor;

    fn s(duration: u32, size: u32, is_sync: bool) -> Sample {
        Sample {
            duration,
            size,
            is_sync,
            composition_offset: 0,
        }
    }

    fn file() -> (Vec<u8>, Vec<u64>) {
        let avcc = avcc_from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce]);
        let tracks = [
            TrackConfig {
                track_id: 1,
                kind: TrackKind::Video {
                    width: 64,
                    height: 48,
                },
                timescale: 90_000,
                sample_entry: avc1_sample_entry(64, 48, &avcc),
            },
            TrackConfig {
                track_id: 2,
                kind: TrackKind::Audio {
                    sample_rate: 8000,
                    channels: 1,
                },
                timescale: 8000,
                sample_entry: {
                    let mut e = vec![0, 0, 0, 36];
                    e.extend_from_slice(b"mp4a");
                    e.extend_from_slice(&[0; 16]);
                    e.extend_from_slice(&[0, 2, 0, 16]); // 2 channels, 16 bits
                    e.extend_from_slice(&[0; 8]);
                    e
                },
            },
        ];
        let mut out = Vec::new();
        write_init(&tracks, &mut out);
        let mut offsets = Vec::new();
        for i in 0..3u64 {
            offsets.push(out.len() as u64);
            let v = [s(3000, 10, true), s(3000, 5, false)];
            let a = [s(1024, 3, true)];
            write_fragment_header(
                i as u32 + 1,
                &[
                    TrackRun {
                        track_id: 1,
                        base_decode_time: i * 6000,
                        samples: &v,
                    },
                    TrackRun {
                        track_id: 2,
                        base_decode_time: i * 1024,
                        samples: &a,
                    },
                ],
                &mut out,
            );
            out.extend(std::iter::repeat_n(i as u8 + 1, 15));
            out.extend(std::iter::repeat_n(0xa0 + i as u8, 3));
        }
        (out, offsets)
    }

    #[test]
    fn reads_init_and_fragments_at_offsets() {
        let (f, offsets) = file();
        let len = f.len() as u64;
        let mut c = Cursor::new(&f);
        let init = read_init(&mut c, len).unwrap();
        assert_eq!(init.len, offsets[0]);
        assert_eq!(init.tracks.len(), 2);
        assert_eq!(init.video().unwrap().info.width, 64);
        assert_eq!(&init.tracks[0].sample_entry[4..8], b"avc1");
        assert_eq!(init.tracks[1].channels, 2);
        assert!(init.same_media(&init.clone()));
        // The configs write the same init back.
        let mut again = Vec::new();
        write_init(&init.track_configs(), &mut again);
        assert_eq!(again, f[..offsets[0] as usize]);

        let frag = read_fragment(&mut c, &init, offsets[1], len).unwrap();
        assert_eq!(frag.sequence, 2);
        assert_eq!(frag.end, offsets[2]);
        let v = frag.run(1).unwrap();
        assert_eq!(v.base_decode_time, 6000);
        assert_eq!(v.samples, vec![s(3000, 10, true), s(3000, 5, false)]);
        assert_eq!(
            &f[v.data_start as usize..v.data_start as usize + 15],
            &[2; 15]
        );
        let a = frag.run(2).unwrap();
        assert_eq!(
            &f[a.data_start as usize..a.data_start as usize + 3],
            &[0xa1; 3]
        );
        assert!(read_fragment(&mut c, &init, offsets[1] + 1, len).is_err());
        assert!(read_fragment(&mut c, &init, offsets[2], len - 1).is_err());
    }

    #[test]
    fn relocate_patches_sequence_and_decode_times_only() {
        let (f, offsets) = file();
        let len = f.len() as u64;
        let mut c = Cursor::new(&f);
        let init = read_init(&mut c, len).unwrap();
        let mut frag = read_fragment(&mut c, &init, offsets[2], len).unwrap();
        let before = frag.moof.len();
        frag.relocate(77, |t| if t == 1 { 90_000 } else { -1024 })
            .unwrap();
        assert_eq!(frag.moof.len(), before);
        // Re-parse the patched bytes as if they were a file.
        let mut patched = f.clone();
        patched[offsets[2] as usize..offsets[2] as usize + before].copy_from_slice(&frag.moof);
        let again = read_fragment(&mut Cursor::new(&patched), &init, offsets[2], len).unwrap();
        assert_eq!(again.sequence, 77);
        assert_eq!(again.run(1).unwrap().base_decode_time, 12_000 + 90_000);
        assert_eq!(again.run(2).unwrap().base_decode_time, 1024);
        assert!(
            frag.relocate(1, |_| -1_000_000).is_err(),
            "negative time refused"
        );
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let (f, offsets) = file();
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..300 {
            let mut g = f.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % g.len();
                g[at] = (state >> 32) as u8;
            }
            let len = g.len() as u64;
            let mut c = Cursor::new(&g);
            if let Ok(init) = read_init(&mut c, len) {
                for o in &offsets {
                    let _ = read_fragment(&mut c, &init, *o, len);
                }
            }
        }
    }
}
