//! Box writer: appends `ftyp`/`moov` (init) and `moof`/`mdat` headers to a `Vec<u8>`.
//!
//! Sizes are written as placeholders and backpatched when a box closes, so nesting reads
//! like the box tree itself and no size is ever computed by hand.

use super::{Sample, TrackConfig, TrackKind, TrackRun};

/// `sample_depends_on = 2` (does not depend on others): a key frame.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1` plus `sample_is_non_sync_sample`: an inter frame.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Unity transformation matrix used by `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn u64be(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Opens a box: writes a zero size placeholder and the fourcc; returns its start for [`end_box`].
fn start_box(out: &mut Vec<u8>, fourcc: &[u8; 4]) -> usize {
    let start = out.len();
    u32be(out, 0);
    out.extend_from_slice(fourcc);
    start
}

/// Opens a full box (version + 24-bit flags after the header).
fn start_full_box(out: &mut Vec<u8>, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = start_box(out, fourcc);
    u32be(out, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
    start
}

/// Closes a box opened at `start` by backpatching its 32-bit size.
///
/// Only `mdat` can exceed 4 GiB, and it is written separately with a largesize header,
/// so a header box this large is a bug in the caller, not a data condition.
fn end_box(out: &mut [u8], start: usize) {
    let size = u32::try_from(out.len() - start).expect("header box over 4 GiB");
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends `ftyp` + `moov` for these tracks to `out`.
///
/// The `moov` has empty sample tables and an `mvex` with one `trex` per track, marking the
/// file as fragmented: all samples live in the `moof`s that follow.
pub fn write_init(tracks: &[TrackConfig], out: &mut Vec<u8>) {
    write_init_with(tracks, &InitOptions::default(), out);
}

/// Movie timescale of `mvhd` (milliseconds); edit durations are in this unit.
pub const MOVIE_TIMESCALE: u32 = 1000;

/// One edit-list entry: the track is presented from `media_time` (in the track's
/// timescale) for `duration_ms`. Used when a file starts at a key frame before the moment
/// asked for, so players begin at that moment without re-encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Track the edit applies to.
    pub track_id: u32,
    /// First presented media time, in the track's timescale.
    pub media_time: u64,
    /// How long to present, in [`MOVIE_TIMESCALE`] units.
    pub duration_ms: u64,
}

/// Optional parts of an init written by [`write_init_with`].
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Whole-movie duration in ms, written to `mvhd`, `tkhd` and `mehd` (0 = unknown, as in
    /// a recording still being written).
    pub duration_ms: u64,
    /// At most one edit per track (`edts`/`elst`).
    pub edits: Vec<Edit>,
}

/// Like [`write_init`], with a known duration and edit lists (for assembled playback and
/// export files, whose length is known when the init is written).
pub fn write_init_with(tracks: &[TrackConfig], opts: &InitOptions, out: &mut Vec<u8>) {
    let ftyp = start_box(out, b"ftyp");
    out.extend_from_slice(b"isom");
    u32be(out, 0x200);
    for brand in [b"isom", b"iso6", b"iso2", b"avc1", b"mp41"] {
        out.extend_from_slice(brand);
    }
    end_box(out, ftyp);

    let moov = start_box(out, b"moov");
    write_mvhd(tracks, opts.duration_ms, out);
    for t in tracks {
        let edit = opts.edits.iter().find(|e| e.track_id == t.track_id);
        write_trak(t, opts.duration_ms, edit, out);
    }
    let mvex = start_box(out, b"mvex");
    if opts.duration_ms > 0 {
        let mehd = start_full_box(out, b"mehd", 1, 0);
        u64be(out, opts.duration_ms);
        end_box(out, mehd);
    }
    for t in tracks {
        let trex = start_full_box(out, b"trex", 0, 0);
        u32be(out, t.track_id);
        u32be(out, 1); // default_sample_description_index: our single stsd entry
        u32be(out, 0); // default_sample_duration: every trun carries its own
        u32be(out, 0); // default_sample_size
        u32be(out, 0); // default_sample_flags
        end_box(out, trex);
    }
    end_box(out, mvex);
    end_box(out, moov);
}

/// A 32-bit duration field; 49 days of milliseconds is far beyond any range we assemble.
fn dur32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

fn write_mvhd(tracks: &[TrackConfig], duration_ms: u64, out: &mut Vec<u8>) {
    let mvhd = start_full_box(out, b"mvhd", 0, 0);
    u32be(out, 0); // creation_time
    u32be(out, 0); // modification_time
    u32be(out, MOVIE_TIMESCALE);
    // 0 while recording: unknown up front, players sum the fragments.
    u32be(out, dur32(duration_ms));
    u32be(out, 0x0001_0000); // rate 1.0
    u16be(out, 0x0100); // volume 1.0
    out.extend_from_slice(&[0; 10]); // reserved
    for m in MATRIX {
        u32be(out, m);
    }
    out.extend_from_slice(&[0; 24]); // pre_defined
    let next = tracks.iter().map(|t| t.track_id).max().unwrap_or(0);
    u32be(out, next.saturating_add(1));
    end_box(out, mvhd);
}

fn write_trak(t: &TrackConfig, duration_ms: u64, edit: Option<&Edit>, out: &mut Vec<u8>) {
    let trak = start_box(out, b"trak");

    let tkhd = start_full_box(out, b"tkhd", 0, 3); // enabled | in_movie
    u32be(out, 0); // creation_time
    u32be(out, 0); // modification_time
    u32be(out, t.track_id);
    u32be(out, 0); // reserved
    u32be(out, dur32(duration_ms));
    out.extend_from_slice(&[0; 8]); // reserved
    u16be(out, 0); // layer
    u16be(out, 0); // alternate_group
    let (volume, width, height) = match t.kind {
        TrackKind::Video { width, height } => (0, width, height),
        TrackKind::Audio { .. } => (0x0100, 0, 0),
    };
    u16be(out, volume);
    u16be(out, 0); // reserved
    for m in MATRIX {
        u32be(out, m);
    }
    u32be(out, u32::from(width) << 16); // 16.16 fixed point
    u32be(out, u32::from(height) << 16);
    end_box(out, tkhd);

    if let Some(e) = edit {
        let edts = start_box(out, b"edts");
        // Version 1 only when a field does not fit version 0's 32 bits.
        let wide = e.duration_ms > u64::from(u32::MAX) || e.media_time > i32::MAX as u64;
        let elst = start_full_box(out, b"elst", u8::from(wide), 0);
        u32be(out, 1); // entry_count
        if wide {
            u64be(out, e.duration_ms);
            u64be(out, e.media_time.min(i64::MAX as u64));
        } else {
            u32be(out, e.duration_ms as u32);
            u32be(out, e.media_time as u32);
        }
        u16be(out, 1); // media_rate_integer: normal speed
        u16be(out, 0); // media_rate_fraction
        end_box(out, elst);
        end_box(out, edts);
    }

    let mdia = start_box(out, b"mdia");
    let mdhd = start_full_box(out, b"mdhd", 0, 0);
    u32be(out, 0); // creation_time
    u32be(out, 0); // modification_time
    u32be(out, t.timescale);
    u32be(out, 0); // duration
    u16be(out, 0x55c4); // language "und", packed 5 bits per letter
    u16be(out, 0); // pre_defined
    end_box(out, mdhd);

    let (handler, name): (&[u8; 4], &[u8]) = match t.kind {
        TrackKind::Video { .. } => (b"vide", b"cleannvr video\0"),
        TrackKind::Audio { .. } => (b"soun", b"cleannvr audio\0"),
    };
    let hdlr = start_full_box(out, b"hdlr", 0, 0);
    u32be(out, 0); // pre_defined
    out.extend_from_slice(handler);
    out.extend_from_slice(&[0; 12]); // reserved
    out.extend_from_slice(name);
    end_box(out, hdlr);

    let minf = start_box(out, b"minf");
    match t.kind {
        TrackKind::Video { .. } => {
            let vmhd = start_full_box(out, b"vmhd", 0, 1); // flags 1 is required by the spec
            out.extend_from_slice(&[0; 8]); // graphicsmode + opcolor
            end_box(out, vmhd);
        }
        TrackKind::Audio { .. } => {
            let smhd = start_full_box(out, b"smhd", 0, 0);
            out.extend_from_slice(&[0; 4]); // balance + reserved
            end_box(out, smhd);
        }
    }
    let dinf = start_box(out, b"dinf");
    let dref = start_full_box(out, b"dref", 0, 0);
    u32be(out, 1); // entry_count
    let url = start_full_box(out, b"url ", 0, 1); // media is in this same file
    end_box(out, url);
    end_box(out, dref);
    end_box(out, dinf);

    let stbl = start_box(out, b"stbl");
    let stsd = start_full_box(out, b"stsd", 0, 0);
    u32be(out, 1); // entry_count
    out.extend_from_slice(&t.sample_entry);
    end_box(out, stsd);
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let b = start_full_box(out, fourcc, 0, 0);
        u32be(out, 0); // entry_count: samples live in the fragments
        end_box(out, b);
    }
    let stsz = start_full_box(out, b"stsz", 0, 0);
    u32be(out, 0); // sample_size
    u32be(out, 0); // sample_count
    end_box(out, stsz);
    end_box(out, stbl);

    end_box(out, minf);
    end_box(out, mdia);
    end_box(out, trak);
}

/// tfhd flag: data offsets are relative to the start of the enclosing `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x001;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;

/// Appends a `moof` followed by the `mdat` header for `runs`.
///
/// The `moof` holds an `mfhd` with `sequence` and one `traf` per run (`tfhd` with
/// default-base-is-moof, `tfdt` version 1, `trun` with data offset and per-sample
/// duration/size/flags, plus composition offsets only if any is non-zero). The `mdat`
/// header is 8 bytes, or 16 (largesize) if the payload does not fit a 32-bit size.
///
/// The caller then writes the sample data: all samples of `runs[0]` in order, then
/// `runs[1]`, and so on; the data offsets assume exactly that layout.
///
/// # Panics
///
/// If a run's data would start more than 2 GiB after the `moof` (the `trun` data offset is a
/// signed 32-bit field). Fragments are one GOP, so this is a caller bug.
pub fn write_fragment_header(sequence: u32, runs: &[TrackRun<'_>], out: &mut Vec<u8>) {
    let moof = start_box(out, b"moof");
    let mfhd = start_full_box(out, b"mfhd", 0, 0);
    u32be(out, sequence);
    end_box(out, mfhd);

    // Positions of each trun's data_offset field, patched once the moof size is known.
    let mut offset_fields = Vec::with_capacity(runs.len());
    for run in runs {
        let traf = start_box(out, b"traf");
        let tfhd = start_full_box(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        u32be(out, run.track_id);
        end_box(out, tfhd);
        let tfdt = start_full_box(out, b"tfdt", 1, 0);
        u64be(out, run.base_decode_time);
        end_box(out, tfdt);
        offset_fields.push(write_trun(run.samples, out));
        end_box(out, traf);
    }
    end_box(out, moof);

    let payload: u64 = runs
        .iter()
        .flat_map(|r| r.samples)
        .map(|s| u64::from(s.size))
        .sum();
    let mdat_header_len: u64 = if payload + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let moof_len = (out.len() - moof) as u64;
    let mut data_offset = moof_len + mdat_header_len;
    for (run, field) in runs.iter().zip(offset_fields) {
        let v = i32::try_from(data_offset).expect("trun data offset over 2 GiB");
        out[field..field + 4].copy_from_slice(&v.to_be_bytes());
        data_offset += run.samples.iter().map(|s| u64::from(s.size)).sum::<u64>();
    }

    if mdat_header_len == 16 {
        u32be(out, 1); // size 1: the real size follows as a 64-bit largesize
        out.extend_from_slice(b"mdat");
        u64be(out, payload + 16);
    } else {
        u32be(out, (payload + 8) as u32);
        out.extend_from_slice(b"mdat");
    }
}

/// Writes one `trun` and returns the position of its (placeholder) data offset field.
fn write_trun(samples: &[Sample], out: &mut Vec<u8>) -> usize {
    let any_cto = samples.iter().any(|s| s.composition_offset != 0);
    let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS;
    if any_cto {
        flags |= TRUN_CTO;
    }
    // Version 1 makes composition offsets signed; only needed when one is negative.
    let version = u8::from(samples.iter().any(|s| s.composition_offset < 0));
    let trun = start_full_box(out, b"trun", version, flags);
    // A fragment is one GOP; more than 4 billion samples cannot come from a real camera.
    u32be(
        out,
        u32::try_from(samples.len()).expect("sample count over u32"),
    );
    let field = out.len();
    u32be(out, 0); // data_offset placeholder
    for s in samples {
        u32be(out, s.duration);
        u32be(out, s.size);
        u32be(
            out,
            if s.is_sync {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            },
        );
        if any_cto {
            out.extend_from_slice(&s.composition_offset.to_be_bytes());
        }
    }
    end_box(out, trun);
    field
}

/// Builds an `AVCDecoderConfigurationRecord` (the body of `avcC`) from one SPS and one PPS
/// (NAL units without start codes or length prefixes).
///
/// Uses 4-byte NAL length prefixes. The optional High-profile extension (chroma format,
/// bit depths) is omitted: decoders take those from the SPS itself, and writing it would
/// mean parsing the SPS's Exp-Golomb fields here.
pub fn avcc_from_parameter_sets(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let byte = |i: usize| sps.get(i).copied().unwrap_or(0);
    let mut out = Vec::with_capacity(11 + sps.len() + pps.len());
    out.push(1); // configurationVersion
    out.push(byte(1)); // AVCProfileIndication
    out.push(byte(2)); // profile_compatibility
    out.push(byte(3)); // AVCLevelIndication
    out.push(0xfc | 3); // reserved bits + lengthSizeMinusOne = 3
    out.push(0xe0 | 1); // reserved bits + numOfSequenceParameterSets = 1
    u16be(&mut out, u16::try_from(sps.len()).expect("SPS over 64 KiB"));
    out.extend_from_slice(sps);
    out.push(1); // numOfPictureParameterSets
    u16be(&mut out, u16::try_from(pps.len()).expect("PPS over 64 KiB"));
    out.extend_from_slice(pps);
    out
}

/// Builds a complete `avc1` sample entry box (with an `avcC` child holding `avcc`) for `stsd`.
pub fn avc1_sample_entry(width: u16, height: u16, avcc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(86 + 8 + avcc.len());
    let avc1 = start_box(&mut out, b"avc1");
    out.extend_from_slice(&[0; 6]); // reserved
    u16be(&mut out, 1); // data_reference_index: the dref "url " entry
    out.extend_from_slice(&[0; 16]); // pre_defined + reserved
    u16be(&mut out, width);
    u16be(&mut out, height);
    u32be(&mut out, 0x0048_0000); // horizresolution 72 dpi
    u32be(&mut out, 0x0048_0000); // vertresolution 72 dpi
    u32be(&mut out, 0); // reserved
    u16be(&mut out, 1); // frame_count
    out.extend_from_slice(&[0; 32]); // compressorname (empty Pascal string)
    u16be(&mut out, 0x0018); // depth: colour, no alpha
    u16be(&mut out, 0xffff); // pre_defined = -1
    let avcc_box = start_box(&mut out, b"avcC");
    out.extend_from_slice(avcc);
    end_box(&mut out, avcc_box);
    end_box(&mut out, avc1);
    out
}

/// Builds a complete `mp4a` sample entry box for `stsd`: an AudioSampleEntry (ISO 14496-12
/// 12.2.3) holding an `esds` (ISO 14496-14) whose decoder-specific info is `asc`, the AAC
/// AudioSpecificConfig (ISO 14496-3 1.6.2.1). `avg_bitrate` is informational (0 = unknown).
///
/// Retina builds this box for AAC cameras; this is for AAC we encode ourselves (G.711
/// converted at ingest), so both kinds of recording carry the same layout.
pub fn mp4a_sample_entry(sample_rate: u32, channels: u16, asc: &[u8], avg_bitrate: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(36 + 12 + 40 + asc.len());
    let mp4a = start_box(&mut out, b"mp4a");
    out.extend_from_slice(&[0; 6]); // reserved
    u16be(&mut out, 1); // data_reference_index: the dref "url " entry
    out.extend_from_slice(&[0; 8]); // reserved (version, revision, vendor)
    u16be(&mut out, channels);
    u16be(&mut out, 16); // samplesize
    u32be(&mut out, 0); // pre_defined + reserved
                        // samplerate is 16.16 fixed point; rates past 65535 Hz do not fit and are written as 0.
    u32be(
        &mut out,
        if sample_rate <= 0xffff {
            sample_rate << 16
        } else {
            0
        },
    );
    let esds = start_full_box(&mut out, b"esds", 0, 0);
    let mut dsi = vec![0x05]; // DecoderSpecificInfo
    descriptor_len(&mut dsi, asc.len());
    dsi.extend_from_slice(asc);
    let mut dcd = vec![0x04]; // DecoderConfigDescriptor
    descriptor_len(&mut dcd, 13 + dsi.len());
    dcd.push(0x40); // objectTypeIndication: ISO 14496-3 audio
    dcd.push((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    dcd.extend_from_slice(&[0; 3]); // bufferSizeDB: unknown
    dcd.extend_from_slice(&avg_bitrate.to_be_bytes()); // maxBitrate
    dcd.extend_from_slice(&avg_bitrate.to_be_bytes()); // avgBitrate
    dcd.extend_from_slice(&dsi);
    let sl = [0x06, 1, 0x02]; // SLConfigDescriptor, predefined = 2 (MP4 file)
    out.push(0x03); // ES_Descriptor
    descriptor_len(&mut out, 3 + dcd.len() + sl.len());
    u16be(&mut out, 0); // ES_ID
    out.push(0); // no stream dependence, URL or OCR stream
    out.extend_from_slice(&dcd);
    out.extend_from_slice(&sl);
    end_box(&mut out, esds);
    end_box(&mut out, mp4a);
    out
}

/// Appends an MPEG-4 descriptor length (ISO 14496-1 8.3.3): 7 bits per byte, high bit set
/// on all but the last. One byte covers everything an AAC config needs.
fn descriptor_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("descriptor over 4 GiB");
    assert!(
        len < 1 << 28,
        "descriptor length {len} does not fit in 4 bytes"
    );
    let mut started = false;
    for shift in [21, 14, 7] {
        let part = ((len >> shift) & 0x7f) as u8;
        if part != 0 || started {
            out.push(part | 0x80);
            started = true;
        }
    }
    out.push((len & 0x7f) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Boxes whose body is only child boxes (plus a fixed prefix for `stsd`/`dref`).
    fn child_offset(fourcc: &[u8]) -> Option<usize> {
        match fourcc {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"dinf" | b"stbl" | b"mvex" | b"moof"
            | b"traf" => Some(0),
            b"stsd" | b"dref" => Some(8), // version/flags + entry_count
            _ => None,
        }
    }

    /// Walks boxes in `b`, asserting each child exactly fills its parent; returns the
    /// paths of all boxes found, e.g. "moov/trak/mdia/mdhd".
    fn walk(b: &[u8], prefix: &str, out: &mut Vec<String>) {
        let mut pos = 0;
        while pos < b.len() {
            assert!(
                b.len() - pos >= 8,
                "{prefix}: trailing {} bytes",
                b.len() - pos
            );
            let size = be32(b, pos) as usize;
            assert!(
                size >= 8 && pos + size <= b.len(),
                "{prefix}: bad size {size} at {pos}"
            );
            let fourcc = &b[pos + 4..pos + 8];
            let path = format!("{prefix}{}", std::str::from_utf8(fourcc).unwrap());
            out.push(path.clone());
            if let Some(skip) = child_offset(fourcc) {
                walk(&b[pos + 8 + skip..pos + size], &format!("{path}/"), out);
            }
            pos += size;
        }
    }

    fn video(track_id: u32) -> TrackConfig {
        let avcc = avcc_from_parameter_sets(&[0x67, 0x64, 0x00, 0x1f, 0xac], &[0x68, 0xee]);
        TrackConfig {
            track_id,
            kind: TrackKind::Video {
                width: 1920,
                height: 1080,
            },
            timescale: 90_000,
            sample_entry: avc1_sample_entry(1920, 1080, &avcc),
        }
    }

    fn audio(track_id: u32) -> TrackConfig {
        // Not a real mp4a entry: the writer copies it verbatim, which is what is tested.
        let mut e = vec![0, 0, 0, 12];
        e.extend_from_slice(b"mp4a");
        e.extend_from_slice(&[0; 4]);
        TrackConfig {
            track_id,
            kind: TrackKind::Audio {
                sample_rate: 8000,
                channels: 1,
            },
            timescale: 8000,
            sample_entry: e,
        }
    }

    #[test]
    fn init_boxes_nest_and_fill_their_parents() {
        let mut out = Vec::new();
        write_init(&[video(1), audio(2)], &mut out);
        let mut paths = Vec::new();
        walk(&out, "", &mut paths);
        let trak: Vec<&str> = [
            "tkhd",
            "mdia",
            "mdia/mdhd",
            "mdia/hdlr",
            "mdia/minf",
            "mdia/minf/?mhd",
            "mdia/minf/dinf",
            "mdia/minf/dinf/dref",
            "mdia/minf/dinf/dref/url ",
            "mdia/minf/stbl",
            "mdia/minf/stbl/stsd",
            "mdia/minf/stbl/stsd/????",
            "mdia/minf/stbl/stts",
            "mdia/minf/stbl/stsc",
            "mdia/minf/stbl/stco",
            "mdia/minf/stbl/stsz",
        ]
        .to_vec();
        let mut want = vec!["ftyp".to_string(), "moov".into(), "moov/mvhd".into()];
        for (hd, entry) in [("vmhd", "avc1"), ("smhd", "mp4a")] {
            want.push("moov/trak".into());
            for p in &trak {
                want.push(format!(
                    "moov/trak/{}",
                    p.replace("?mhd", hd).replace("????", entry)
                ));
            }
        }
        want.extend([
            "moov/mvex".into(),
            "moov/mvex/trex".into(),
            "moov/mvex/trex".into(),
        ]);
        assert_eq!(paths, want);

        assert_eq!(be32(&out, 0), 36, "ftyp: header + major + minor + 5 brands");
        assert_eq!(&out[8..16], b"isom\0\0\x02\0");
        assert_eq!(&out[16..36], b"isomiso6iso2avc1mp41");
        // mvhd is 108 bytes; next_track_ID is its last field.
        let mvhd = 36 + 8;
        assert_eq!(&out[mvhd + 4..mvhd + 8], b"mvhd");
        assert_eq!(be32(&out, mvhd), 108);
        assert_eq!(be32(&out, mvhd + 20), 1000, "movie timescale");
        assert_eq!(be32(&out, mvhd + 104), 3, "next_track_ID");
        // First tkhd: flags 3, width/height in 16.16 at its end.
        let tkhd = mvhd + 108 + 8;
        assert_eq!(&out[tkhd + 4..tkhd + 8], b"tkhd");
        assert_eq!(be32(&out, tkhd), 92);
        assert_eq!(be32(&out, tkhd + 8), 3);
        assert_eq!(be32(&out, tkhd + 84), 1920 << 16);
        assert_eq!(be32(&out, tkhd + 88), 1080 << 16);
    }

    #[test]
    fn avc1_entry_layout() {
        let avcc = avcc_from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e, 0x11], &[0x68, 0x22]);
        assert_eq!(
            avcc,
            [
                1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1e, 0x11, 1, 0, 2, 0x68,
                0x22
            ]
        );
        let e = avc1_sample_entry(320, 240, &avcc);
        assert_eq!(e.len(), 86 + 8 + avcc.len());
        assert_eq!(be32(&e, 0) as usize, e.len());
        assert_eq!(&e[4..8], b"avc1");
        assert_eq!(
            &e[32..36],
            &[0x01, 0x40, 0x00, 0xf0],
            "width 320, height 240"
        );
        assert_eq!(&e[90..94], b"avcC");
        assert_eq!(&e[94..], &avcc[..]);
    }

    #[test]
    fn mp4a_entry_layout() {
        // AAC-LC, 8 kHz, mono: object type 2, frequency index 11, channel configuration 1.
        let asc = [0x15, 0x88];
        let e = mp4a_sample_entry(8000, 1, &asc, 32_000);
        assert_eq!(be32(&e, 0) as usize, e.len());
        assert_eq!(&e[4..8], b"mp4a");
        assert_eq!(&e[24..26], &[0, 1], "channelcount");
        assert_eq!(&e[26..28], &[0, 16], "samplesize");
        assert_eq!(be32(&e, 32), 8000 << 16, "samplerate 16.16");
        assert_eq!(&e[40..44], b"esds");
        assert_eq!(be32(&e, 36) as usize, e.len() - 36, "esds fills the rest");
        let esds = &e[48..];
        assert_eq!(
            esds,
            [
                0x03, 25, 0, 0, 0, // ES_Descriptor
                0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0x7d, 0, 0, 0, 0x7d, 0, // DecoderConfig
                0x05, 2, 0x15, 0x88, // DecoderSpecificInfo
                0x06, 1, 2, // SLConfig
            ]
        );
        let mut long = Vec::new();
        descriptor_len(&mut long, 200);
        assert_eq!(long, [0x81, 0x48]);
    }

    fn s(duration: u32, size: u32, is_sync: bool, cto: i32) -> Sample {
        Sample {
            duration,
            size,
            is_sync,
            composition_offset: cto,
        }
    }

    #[test]
    fn fragment_data_offsets_point_at_each_runs_data() {
        let v = [s(3000, 100, true, 0), s(3000, 50, false, 0)];
        let a = [
            s(1024, 7, true, 0),
            s(1024, 9, true, 0),
            s(1024, 11, true, 0),
        ];
        let runs = [
            TrackRun {
                track_id: 1,
                base_decode_time: 9000,
                samples: &v,
            },
            TrackRun {
                track_id: 2,
                base_decode_time: 2048,
                samples: &a,
            },
        ];
        let mut out = vec![0xaa; 5]; // offsets must be relative to the moof, not the buffer
        write_fragment_header(7, &runs, &mut out);
        let moof = 5;
        let moof_len = be32(&out, moof) as usize;
        assert_eq!(&out[moof + 4..moof + 8], b"moof");
        let mut paths = Vec::new();
        walk(&out[moof..moof + moof_len], "", &mut paths);
        let traf = [
            "moof/traf",
            "moof/traf/tfhd",
            "moof/traf/tfdt",
            "moof/traf/trun",
        ];
        let mut want = vec!["moof", "moof/mfhd"];
        want.extend(traf);
        want.extend(traf);
        assert_eq!(paths, want);

        // mdat header right after the moof, 8 bytes, payload = all sample sizes.
        let mdat = moof + moof_len;
        assert_eq!(out.len(), mdat + 8);
        assert_eq!(be32(&out, mdat), 8 + 150 + 27);
        assert_eq!(&out[mdat + 4..mdat + 8], b"mdat");

        assert_eq!(be32(&out, moof + 20), 7, "mfhd sequence");
        // traf 1 at moof+24: tfhd (16) then tfdt (20) then trun.
        let traf1 = moof + 24;
        assert_eq!(
            be32(&out, traf1 + 16),
            0x02_0000,
            "tfhd default-base-is-moof"
        );
        assert_eq!(be32(&out, traf1 + 20), 1, "track id");
        assert_eq!(&out[traf1 + 28..traf1 + 32], b"tfdt");
        assert_eq!(out[traf1 + 32], 1, "tfdt version 1");
        assert_eq!(
            u64::from_be_bytes(out[traf1 + 36..traf1 + 44].try_into().unwrap()),
            9000
        );
        let trun1 = traf1 + 44;
        assert_eq!(&out[trun1 + 4..trun1 + 8], b"trun");
        assert_eq!(
            be32(&out, trun1 + 8),
            0x701,
            "no composition offsets when all are zero"
        );
        assert_eq!(be32(&out, trun1 + 12), 2);
        assert_eq!(be32(&out, trun1 + 16) as usize, moof_len + 8);
        assert_eq!(
            [
                be32(&out, trun1 + 20),
                be32(&out, trun1 + 24),
                be32(&out, trun1 + 28)
            ],
            [3000, 100, SYNC_SAMPLE_FLAGS]
        );
        assert_eq!(be32(&out, trun1 + 40), NON_SYNC_SAMPLE_FLAGS);
        let traf2 = traf1 + be32(&out, traf1) as usize;
        let trun2 = traf2 + 44;
        assert_eq!(be32(&out, traf2 + 20), 2, "track id");
        assert_eq!(
            be32(&out, trun2 + 16) as usize,
            moof_len + 8 + 150,
            "after run 0's data"
        );
    }

    #[test]
    fn composition_offsets_only_when_present_and_signed_uses_v1() {
        let mut out = Vec::new();
        let v = [s(3000, 10, true, 3000), s(3000, 10, false, 0)];
        write_fragment_header(
            1,
            &[TrackRun {
                track_id: 1,
                base_decode_time: 0,
                samples: &v,
            }],
            &mut out,
        );
        let trun = 24 + 44;
        assert_eq!(&out[trun + 4..trun + 8], b"trun");
        assert_eq!(be32(&out, trun + 8), 0xf01, "version 0, cto flag");
        assert_eq!(be32(&out, trun) as usize, 20 + 2 * 16);
        assert_eq!(be32(&out, trun + 32), 3000);

        let mut out = Vec::new();
        let v = [s(3000, 10, true, -3000)];
        write_fragment_header(
            1,
            &[TrackRun {
                track_id: 1,
                base_decode_time: 0,
                samples: &v,
            }],
            &mut out,
        );
        assert_eq!(
            be32(&out, trun + 8),
            0x0100_0f01,
            "version 1 for negative offsets"
        );
        assert_eq!(be32(&out, trun + 32) as i32, -3000);
    }

    #[test]
    fn mdat_uses_largesize_past_4_gib() {
        // Just under the limit: 8-byte header.
        let fit = [s(1, u32::MAX - 8, true, 0)];
        let mut out = Vec::new();
        write_fragment_header(
            1,
            &[TrackRun {
                track_id: 1,
                base_decode_time: 0,
                samples: &fit,
            }],
            &mut out,
        );
        let mdat = be32(&out, 0) as usize;
        assert_eq!(out.len(), mdat + 8);
        assert_eq!(be32(&out, mdat), u32::MAX);

        // One byte more: 16-byte header with size 1 and a 64-bit size.
        let big = [s(1, u32::MAX - 7, true, 0)];
        let mut out = Vec::new();
        write_fragment_header(
            1,
            &[TrackRun {
                track_id: 1,
                base_decode_time: 0,
                samples: &big,
            }],
            &mut out,
        );
        let moof_len = be32(&out, 0) as usize;
        assert_eq!(out.len(), moof_len + 16);
        assert_eq!(be32(&out, moof_len), 1);
        assert_eq!(&out[moof_len + 4..moof_len + 8], b"mdat");
        let large = u64::from_be_bytes(out[moof_len + 8..].try_into().unwrap());
        assert_eq!(large, u64::from(u32::MAX) - 7 + 16);
        let trun = 24 + 44;
        assert_eq!(
            be32(&out, trun + 16) as usize,
            moof_len + 16,
            "data offset skips largesize"
        );
    }
}
