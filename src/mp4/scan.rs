//! Scanner: reads a segment's top-level boxes, its tracks, and every complete fragment.
//!
//! Used by recovery (`cleannvr check`) on files a crash may have torn, and on anything else
//! found in the storage directory, so it treats input as hostile: it never panics, never
//! allocates from a length field before checking it against the file length and a fixed
//! cap, and caps sample counts.
//!
//! Policy: anything *incomplete* (a header or box cut by end of file, a `moof` without its
//! whole `mdat`, a zero-filled tail) ends the valid part and is reported as a torn tail,
//! because that is what a crash leaves and truncating it is the repair. A box that is
//! complete but internally inconsistent is a [`ScanError::Malformed`]: no crash produces
//! it, and truncating there could throw away good footage, so a human should look.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::Sample;

/// Largest `moov` or `moof` read into memory: ours are a few hundred bytes plus parameter
/// sets, and a one-GOP fragment of a few thousand samples is ~50 KiB.
pub(super) const MAX_HEADER_BOX: u64 = 16 << 20;
/// Most samples accepted in one fragment (a 10-minute GOP at 1000 fps is 600 000).
pub(super) const MAX_SAMPLES: u64 = 1 << 20;
/// `sample_is_non_sync_sample` in the ISO sample flags.
pub(super) const NON_SYNC_BIT: u32 = 0x0001_0000;

/// One track found in a segment's `moov`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedTrack {
    /// Track id from `tkhd`.
    pub track_id: u32,
    /// Ticks per second, from `mdhd`.
    pub timescale: u32,
    /// Handler type from `hdlr`: `b"vide"` or `b"soun"` (others are reported as found).
    pub handler: [u8; 4],
    /// Fourcc of the first sample entry in `stsd`, e.g. `b"avc1"`, `b"hvc1"`, `b"mp4a"`.
    pub codec: [u8; 4],
    /// Coded width (from the visual sample entry, else `tkhd`); 0 for audio.
    pub width: u16,
    /// Coded height (from the visual sample entry, else `tkhd`); 0 for audio.
    pub height: u16,
}

/// The samples of one track within one fragment (one `traf`, all its `trun`s summed).
#[derive(Clone, Debug)]
pub struct ScannedRun {
    /// Track the samples belong to.
    pub track_id: u32,
    /// Decode time of the first sample (from `tfdt`, else the end of the previous run).
    pub base_decode_time: u64,
    /// Number of samples.
    pub sample_count: u32,
    /// Sum of sample durations, in the track's timescale.
    pub duration: u64,
    /// Whether the first sample is a sync sample (key frame); false for an empty run.
    pub first_is_sync: bool,
    /// Sum of sample sizes in bytes.
    pub bytes: u64,
}

/// One complete `moof` + `mdat` pair.
#[derive(Clone, Debug)]
pub struct ScannedFragment {
    /// Byte offset of the `moof`.
    pub offset: u64,
    /// Byte offset just past the `mdat`.
    pub end: u64,
    /// Sequence number from `mfhd`.
    pub sequence: u32,
    /// One entry per `traf`, in file order.
    pub runs: Vec<ScannedRun>,
}

/// What [`scan`] found in a segment.
#[derive(Clone, Debug)]
pub struct ScannedFile {
    /// Length of the init part (`ftyp` through the end of `moov`).
    pub init_len: u64,
    /// Tracks from `moov`, in file order.
    pub tracks: Vec<ScannedTrack>,
    /// Complete fragments, in file order.
    pub fragments: Vec<ScannedFragment>,
    /// Length up to the end of the last complete `moof`+`mdat` (or `init_len` if none).
    /// Complete ancillary boxes after it (`free`, `mfra`, ...) are counted as valid too.
    pub valid_len: u64,
    /// Length of the file as scanned.
    pub file_len: u64,
    /// Why scanning stopped before `file_len`, if it did (for logs); `None` if not torn.
    pub torn_reason: Option<String>,
}

impl ScannedFile {
    /// True if bytes past `valid_len` exist (torn tail): recovery truncates to `valid_len`.
    pub fn is_torn(&self) -> bool {
        self.file_len > self.valid_len
    }

    /// The first video track, if any.
    pub fn video_track(&self) -> Option<&ScannedTrack> {
        self.tracks.iter().find(|t| &t.handler == b"vide")
    }

    /// Total duration of a track's runs in its timescale (0 for an unknown track).
    pub fn track_duration(&self, track_id: u32) -> u64 {
        self.fragments
            .iter()
            .flat_map(|f| &f.runs)
            .filter(|r| r.track_id == track_id)
            .fold(0u64, |acc, r| acc.saturating_add(r.duration))
    }
}

/// Why a segment could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Missing or garbled `ftyp`/`moov`: not one of our segments.
    #[error("not a segment: {0}")]
    NoInit(String),
    /// A complete box is internally inconsistent (not something a crash leaves behind).
    #[error("malformed box at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the offending top-level box.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Scans a segment's top-level boxes.
///
/// A `moof` whose `mdat` is missing or short, or any box that runs past end of file, ends
/// the valid part (torn tail) rather than erroring; see the module doc for the policy.
pub fn scan<R: Read + Seek>(mut r: R) -> Result<ScannedFile, ScanError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let no_init = |s: String| ScanError::NoInit(s);

    let ftyp = match read_header(&mut r, 0, file_len)? {
        Header::Box(h) if &h.fourcc == b"ftyp" && h.end <= file_len => h,
        _ => {
            return Err(no_init(
                "file does not start with a complete ftyp box".into(),
            ))
        }
    };
    let mut pos = ftyp.end;
    let (tracks, trex) = loop {
        let h = match read_header(&mut r, pos, file_len)? {
            Header::Box(h) => h,
            Header::Incomplete => {
                return Err(no_init(format!("no moov before end of file at {pos}")))
            }
            Header::Invalid(why) => {
                return Err(no_init(format!("bad box at {pos} before moov: {why}")))
            }
        };
        if h.end > file_len {
            return Err(no_init(format!(
                "{} box at {pos} runs past end of file",
                fourcc_str(&h.fourcc)
            )));
        }
        match &h.fourcc {
            b"moov" => {
                if h.end - h.start > MAX_HEADER_BOX {
                    return Err(no_init(format!(
                        "moov at {pos} is {} bytes, too large",
                        h.end - h.start
                    )));
                }
                let body = read_body(&mut r, &h)?;
                let parsed =
                    parse_moov(&body).map_err(|e| no_init(format!("moov at {pos}: {e}")))?;
                pos = h.end;
                break parsed;
            }
            b"moof" | b"mdat" => {
                return Err(no_init(format!(
                    "{} at {pos} before moov",
                    fourcc_str(&h.fourcc)
                )))
            }
            _ => pos = h.end, // ftyp-adjacent boxes such as free or uuid
        }
    };

    let mut file = ScannedFile {
        init_len: pos,
        tracks,
        fragments: Vec::new(),
        valid_len: pos,
        file_len,
        torn_reason: None,
    };
    // Decode time at the end of each track's last run, for fragments without tfdt.
    let mut next_dts: Vec<(u32, u64)> = file.tracks.iter().map(|t| (t.track_id, 0)).collect();

    while pos < file_len {
        let h = match read_header(&mut r, pos, file_len)? {
            Header::Box(h) if h.end > file_len => {
                let why = format!(
                    "{} box at {pos} runs past end of file",
                    fourcc_str(&h.fourcc)
                );
                file.torn_reason = Some(why);
                break;
            }
            Header::Box(h) => h,
            Header::Incomplete => {
                file.torn_reason = Some(format!("incomplete box header at {pos}"));
                break;
            }
            Header::Invalid(why) => {
                file.torn_reason = Some(format!("garbage at {pos}: {why}"));
                break;
            }
        };
        let malformed = |reason: String| ScanError::Malformed {
            offset: pos,
            reason,
        };
        match &h.fourcc {
            b"moof" => {
                if h.end - h.start > MAX_HEADER_BOX {
                    return Err(malformed(format!(
                        "moof is {} bytes, too large",
                        h.end - h.start
                    )));
                }
                let mdat = match read_header(&mut r, h.end, file_len)? {
                    Header::Box(m) if m.end <= file_len => m,
                    _ => {
                        file.torn_reason = Some(format!("moof at {pos} lacks a complete mdat"));
                        break;
                    }
                };
                if &mdat.fourcc != b"mdat" {
                    let found = fourcc_str(&mdat.fourcc);
                    return Err(malformed(format!("moof followed by {found}, not mdat")));
                }
                let body = read_body(&mut r, &h)?;
                let parsed =
                    scan_moof(&body, &h, &mdat, &trex, &mut next_dts).map_err(malformed)?;
                file.fragments.push(ScannedFragment {
                    offset: pos,
                    end: mdat.end,
                    sequence: parsed.0,
                    runs: parsed.1,
                });
                pos = mdat.end;
                file.valid_len = pos;
            }
            b"mdat" => return Err(malformed("mdat without a preceding moof".into())),
            b"moov" | b"ftyp" => return Err(malformed("second init box".into())),
            _ => {
                // Complete ancillary box (free, skip, mfra, sidx, styp, ...): harmless.
                pos = h.end;
                file.valid_len = pos;
            }
        }
    }
    Ok(file)
}

/// Opens and scans the segment at `path`; every error message names the path.
pub fn scan_path(path: &Path) -> Result<ScannedFile, ScanError> {
    let name = path.display();
    let f = std::fs::File::open(path)
        .map_err(|e| ScanError::Io(std::io::Error::new(e.kind(), format!("{name}: {e}"))))?;
    // Unbuffered on purpose: the scanner seeks to every box, which would discard a
    // BufReader's buffer each time, and there are only a few reads per fragment.
    scan(f).map_err(|e| match e {
        ScanError::Io(e) => ScanError::Io(std::io::Error::new(e.kind(), format!("{name}: {e}"))),
        ScanError::NoInit(s) => ScanError::NoInit(format!("{name}: {s}")),
        ScanError::Malformed { offset, reason } => ScanError::Malformed {
            offset,
            reason: format!("{name}: {reason}"),
        },
    })
}

/// A top-level box header; `end` may lie past end of file (the caller decides).
pub(super) struct BoxHeader {
    pub(super) fourcc: [u8; 4],
    pub(super) start: u64,
    pub(super) header_len: u64,
    pub(super) end: u64,
}

pub(super) enum Header {
    Box(BoxHeader),
    /// Fewer header bytes than needed before end of file.
    Incomplete,
    /// Bytes that cannot be a box header (e.g. a zero-filled tail after a crash).
    Invalid(String),
}

pub(super) fn fourcc_str(f: &[u8; 4]) -> String {
    f.iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

pub(super) fn read_header<R: Read + Seek>(
    r: &mut R,
    pos: u64,
    file_len: u64,
) -> std::io::Result<Header> {
    let avail = file_len.saturating_sub(pos);
    if avail < 8 {
        return Ok(Header::Incomplete);
    }
    let mut b = [0u8; 16];
    r.seek(SeekFrom::Start(pos))?;
    r.read_exact(&mut b[..8])?;
    let size32 = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let fourcc = [b[4], b[5], b[6], b[7]];
    // Every fourcc we (or ffmpeg) write is printable ASCII; zeros or noise are not a box.
    if !fourcc.iter().all(|c| (0x20..0x7f).contains(c)) {
        return Ok(Header::Invalid(format!(
            "non-printable box type {fourcc:02x?}"
        )));
    }
    let (header_len, size) = match size32 {
        0 => (8, avail), // box extends to end of file
        1 => {
            if avail < 16 {
                return Ok(Header::Incomplete);
            }
            r.read_exact(&mut b[8..16])?;
            let large = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
            (16, large)
        }
        s => (8, u64::from(s)),
    };
    if size < header_len {
        return Ok(Header::Invalid(format!(
            "box size {size} smaller than its header"
        )));
    }
    Ok(Header::Box(BoxHeader {
        fourcc,
        start: pos,
        header_len,
        end: pos.saturating_add(size),
    }))
}

/// Reads a box's body; the caller has checked its length against the file and a cap.
pub(super) fn read_body<R: Read + Seek>(r: &mut R, h: &BoxHeader) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from(h.end - h.start - h.header_len)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "box too large"))?;
    let mut body = vec![0u8; len];
    r.seek(SeekFrom::Start(h.start + h.header_len))?;
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Bounds-checked big-endian reader over a byte slice; every read fails softly.
pub(super) struct Bytes<'a> {
    pub(super) b: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() < n {
            return Err(format!("needed {n} bytes, {} left", self.b.len()));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }
    pub(super) fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    pub(super) fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(super) fn u64(&mut self) -> Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    /// A field that is there only if `present` (a flag bit).
    pub(super) fn opt_u32(&mut self, present: bool) -> Result<Option<u32>, String> {
        present.then(|| self.u32()).transpose()
    }
    /// Version and 24-bit flags of a full box.
    pub(super) fn version_flags(&mut self) -> Result<(u8, u32), String> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
}

/// Iterates the child boxes of an in-memory box body; a child running past its parent is an error.
pub(super) fn children(body: &[u8]) -> impl Iterator<Item = Result<([u8; 4], &[u8]), String>> {
    let mut rest = body;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || rest.is_empty() {
            return None;
        }
        let item = next_child(&mut rest);
        failed = item.is_err();
        Some(item)
    })
}

pub(super) fn next_child<'a>(rest: &mut &'a [u8]) -> Result<([u8; 4], &'a [u8]), String> {
    let mut b = Bytes { b: rest };
    let size32 = b.u32()?;
    let t = b.take(4)?;
    let fourcc = [t[0], t[1], t[2], t[3]];
    let (header_len, size) = match size32 {
        0 => (8u64, rest.len() as u64),
        1 => (16, b.u64()?),
        s => (8, u64::from(s)),
    };
    if size < header_len || size > rest.len() as u64 {
        return Err(format!(
            "child {} has size {size}, parent has {} bytes left",
            fourcc_str(&fourcc),
            rest.len()
        ));
    }
    // Both fit in usize: size <= rest.len().
    let child = &rest[header_len as usize..size as usize];
    *rest = &rest[size as usize..];
    Ok((fourcc, child))
}

/// First child with this fourcc, if any.
pub(super) fn find<'a>(body: &'a [u8], want: &[u8; 4]) -> Result<Option<&'a [u8]>, String> {
    for c in children(body) {
        let (fourcc, child) = c?;
        if &fourcc == want {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

pub(super) fn require<'a>(body: &'a [u8], want: &[u8; 4]) -> Result<&'a [u8], String> {
    find(body, want)?.ok_or_else(|| format!("missing {}", fourcc_str(want)))
}

/// Per-track defaults from `trex`, used when `tfhd`/`trun` omit a field.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Trex {
    pub(super) track_id: u32,
    pub(super) duration: u32,
    pub(super) size: u32,
    pub(super) flags: u32,
}

pub(super) fn parse_moov(body: &[u8]) -> Result<(Vec<ScannedTrack>, Vec<Trex>), String> {
    let mut tracks = Vec::new();
    let mut trex = Vec::new();
    for c in children(body) {
        match c? {
            (f, b) if &f == b"trak" => tracks.push(parse_trak(b)?),
            (f, b) if &f == b"mvex" => {
                for c in children(b) {
                    let (f, b) = c?;
                    if &f == b"trex" {
                        let mut r = Bytes { b };
                        r.version_flags()?;
                        let track_id = r.u32()?;
                        r.u32()?; // default_sample_description_index
                        trex.push(Trex {
                            track_id,
                            duration: r.u32()?,
                            size: r.u32()?,
                            flags: r.u32()?,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if tracks.is_empty() {
        return Err("no tracks".into());
    }
    Ok((tracks, trex))
}

pub(super) fn parse_trak(body: &[u8]) -> Result<ScannedTrack, String> {
    let tkhd = require(body, b"tkhd")?;
    let mut r = Bytes { b: tkhd };
    let (version, _) = r.version_flags()?;
    r.take(if version == 1 { 16 } else { 8 })?; // creation + modification time
    let track_id = r.u32()?;
    // tkhd ends with width and height in 16.16 fixed point.
    let (mut width, mut height) = match tkhd.len().checked_sub(8) {
        Some(at) if at >= 4 => {
            let mut r = Bytes { b: &tkhd[at..] };
            ((r.u32()? >> 16) as u16, (r.u32()? >> 16) as u16)
        }
        _ => (0, 0),
    };

    let mdia = require(body, b"mdia")?;
    let mut r = Bytes {
        b: require(mdia, b"mdhd")?,
    };
    let (version, _) = r.version_flags()?;
    r.take(if version == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err(format!("track {track_id} has timescale 0"));
    }
    let mut r = Bytes {
        b: require(mdia, b"hdlr")?,
    };
    r.version_flags()?;
    r.u32()?; // pre_defined
    let t = r.take(4)?;
    let handler = [t[0], t[1], t[2], t[3]];

    let stbl = require(require(mdia, b"minf")?, b"stbl")?;
    let mut r = Bytes {
        b: require(stbl, b"stsd")?,
    };
    r.version_flags()?;
    if r.u32()? == 0 {
        return Err(format!("track {track_id} has no sample entry"));
    }
    let (codec, entry) = next_child(&mut r.b)?;
    if &handler == b"vide" {
        // VisualSampleEntry: 6 reserved, data_reference_index, 16 bytes pre_defined/reserved,
        // then the coded width and height.
        let mut r = Bytes { b: entry };
        if r.take(24).is_ok() {
            if let (Ok(w), Ok(h)) = (r.u16(), r.u16()) {
                if w != 0 && h != 0 {
                    (width, height) = (w, h);
                }
            }
        }
    } else {
        (width, height) = (0, 0);
    }
    Ok(ScannedTrack {
        track_id,
        timescale,
        handler,
        codec,
        width,
        height,
    })
}

/// A `moof` body as [`parse_moof`] found it; nothing is checked against the `mdat` yet.
pub(super) struct Moof {
    /// `mfhd` sequence number, and where it sits in the body (for patching).
    pub(super) sequence: u32,
    pub(super) sequence_at: usize,
    /// One entry per `traf`, in file order.
    pub(super) trafs: Vec<Traf>,
}

/// One `traf`: its `tfhd`, `tfdt` and `trun`s with every default applied.
pub(super) struct Traf {
    pub(super) track_id: u32,
    /// From the first `tfdt`, with where its value sits in the body and its version.
    pub(super) decode_time: Option<u64>,
    pub(super) tfdt_at: Option<(usize, u8)>,
    /// Where `trun` data offsets count from (ISO 14496-12 8.8.7): the explicit base, or the
    /// moof (default-base-is-moof, or the first traf); `None` means "where the previous
    /// traf's data ended", which only a caller that tracks it can resolve.
    pub(super) data_base: Option<u64>,
    /// Whether `data_base` is an absolute base-data-offset from `tfhd`.
    pub(super) explicit_base: bool,
    pub(super) truns: Vec<Trun>,
}

/// One `trun`: its data offset, if any, and its samples (sync from the sample flags).
pub(super) struct Trun {
    pub(super) data_offset: Option<i32>,
    pub(super) samples: Vec<Sample>,
    /// A version-0 (unsigned) composition offset does not fit `i32`; scan ignores it.
    pub(super) cto_overflow: bool,
}

impl Trun {
    pub(super) fn bytes(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.size)).sum()
    }
}

/// Parses a `moof` body (the bytes after its header) of the `moof` at file offset
/// `moof_start`, taking defaults from `trex` and `tfhd`; positions are within `body`.
/// Caps the fragment's samples at [`MAX_SAMPLES`] before allocating for them.
pub(super) fn parse_moof(body: &[u8], moof_start: u64, trex: &[Trex]) -> Result<Moof, String> {
    let pos_of = |s: &[u8]| s.as_ptr() as usize - body.as_ptr() as usize;
    let mut r = Bytes {
        b: require(body, b"mfhd")?,
    };
    r.version_flags()?;
    let sequence_at = pos_of(r.b);
    let sequence = r.u32()?;
    let mut trafs: Vec<Traf> = Vec::new();
    let mut total_samples = 0u64;
    for c in children(body) {
        let (f, traf) = c?;
        if &f != b"traf" {
            continue;
        }
        let mut r = Bytes {
            b: require(traf, b"tfhd")?,
        };
        let (_, tf_flags) = r.version_flags()?;
        let has = |bit: u32| tf_flags & bit != 0;
        let track_id = r.u32()?;
        let mut d = trex
            .iter()
            .find(|t| t.track_id == track_id)
            .copied()
            .unwrap_or_default();
        let explicit_base = has(0x01);
        let data_base = if explicit_base {
            Some(r.u64()?)
        } else if trafs.is_empty() || has(0x02_0000) {
            Some(moof_start)
        } else {
            None
        };
        r.opt_u32(has(0x02))?; // sample_description_index
        d.duration = r.opt_u32(has(0x08))?.unwrap_or(d.duration);
        d.size = r.opt_u32(has(0x10))?.unwrap_or(d.size);
        d.flags = r.opt_u32(has(0x20))?.unwrap_or(d.flags);
        let mut t = Traf {
            track_id,
            decode_time: None,
            tfdt_at: None,
            data_base,
            explicit_base,
            truns: Vec::new(),
        };
        for c in children(traf) {
            let (f, b) = c?;
            let mut r = Bytes { b };
            match &f {
                b"tfdt" if t.tfdt_at.is_none() => {
                    let (version, _) = r.version_flags()?;
                    t.tfdt_at = Some((pos_of(r.b), version));
                    t.decode_time = Some(if version == 1 {
                        r.u64()?
                    } else {
                        u64::from(r.u32()?)
                    });
                }
                b"trun" => t.truns.push(parse_trun(r, &d, &mut total_samples)?),
                _ => {}
            }
        }
        trafs.push(t);
    }
    Ok(Moof {
        sequence,
        sequence_at,
        trafs,
    })
}

/// Parses a `trun` body with defaults `d`, adding its samples to `total_samples`.
fn parse_trun(mut r: Bytes, d: &Trex, total_samples: &mut u64) -> Result<Trun, String> {
    let len = r.b.len();
    let (version, flags) = r.version_flags()?;
    let has = |bit: u32| flags & bit != 0;
    let count = r.u32()?;
    *total_samples += u64::from(count);
    if *total_samples > MAX_SAMPLES {
        return Err(format!("more than {MAX_SAMPLES} samples"));
    }
    let data_offset = r.opt_u32(has(0x001))?.map(|v| v as i32);
    let first_flags = r.opt_u32(has(0x004))?;
    let per_sample = 4 * (flags & 0xf00).count_ones() as usize;
    if (count as usize).saturating_mul(per_sample) > r.b.len() {
        return Err(format!("trun claims {count} samples but is {len} bytes"));
    }
    let mut trun = Trun {
        data_offset,
        samples: Vec::with_capacity(count as usize), // capped above
        cto_overflow: false,
    };
    for i in 0..count {
        let duration = r.opt_u32(has(0x100))?.unwrap_or(d.duration);
        let size = r.opt_u32(has(0x200))?.unwrap_or(d.size);
        let sflags = r.opt_u32(has(0x400))?.unwrap_or(d.flags);
        let sflags = first_flags.filter(|_| i == 0).unwrap_or(sflags);
        let cto = r.opt_u32(has(0x800))?.unwrap_or(0);
        trun.cto_overflow |= version == 0 && i32::try_from(cto).is_err();
        trun.samples.push(Sample {
            duration,
            size,
            is_sync: sflags & NON_SYNC_BIT == 0,
            composition_offset: cto as i32,
        });
    }
    Ok(trun)
}

/// Parses a `moof` body into its sequence number and one run per `traf`, checking the
/// sample data it describes lies inside the following `mdat`. A traf without tfdt
/// continues its track's decode time from `next_dts`, which is updated.
fn scan_moof(
    body: &[u8],
    moof: &BoxHeader,
    mdat: &BoxHeader,
    trex: &[Trex],
    next_dts: &mut [(u32, u64)],
) -> Result<(u32, Vec<ScannedRun>), String> {
    let parsed = parse_moof(body, moof.start, trex)?;
    let payload_start = mdat.start + mdat.header_len;
    let mdat_payload = mdat.end - payload_start;
    let mut runs = Vec::with_capacity(parsed.trafs.len());
    let mut total_bytes = 0u64;
    for t in &parsed.trafs {
        let track_id = t.track_id;
        let Some(dts) = next_dts.iter_mut().find(|(id, _)| *id == track_id) else {
            return Err(format!("traf for unknown track {track_id}"));
        };
        let samples = || t.truns.iter().flat_map(|r| &r.samples);
        let mut run = ScannedRun {
            track_id,
            base_decode_time: t.decode_time.unwrap_or(dts.1),
            sample_count: samples().count() as u32, // at most MAX_SAMPLES
            duration: samples().map(|s| u64::from(s.duration)).sum(),
            first_is_sync: samples().next().is_some_and(|s| s.is_sync),
            bytes: 0,
        };
        // With no data offset, a trun's data follows the previous trun's (or starts at the
        // base for the first one). Without a known base it is left unchecked.
        let mut cursor = t.data_base;
        for trun in &t.truns {
            let trun_bytes = trun.bytes();
            let start = match (t.data_base, trun.data_offset) {
                (Some(b), Some(off)) => Some(
                    b.checked_add_signed(i64::from(off))
                        .ok_or_else(|| format!("track {track_id} data offset before file start"))?,
                ),
                (_, None) => cursor,
                (None, Some(_)) => None,
            };
            if let Some(s) = start {
                if s < payload_start || s.saturating_add(trun_bytes) > mdat.end {
                    return Err(format!(
                        "track {track_id} sample data lies outside the mdat"
                    ));
                }
            }
            cursor = start.map(|s| s.saturating_add(trun_bytes));
            run.bytes += trun_bytes;
        }
        total_bytes += run.bytes;
        if total_bytes > mdat_payload {
            return Err(format!(
                "samples total {total_bytes} bytes, mdat holds {mdat_payload}"
            ));
        }
        dts.1 = run.base_decode_time.saturating_add(run.duration);
        runs.push(run);
    }
    Ok((parsed.sequence, runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::{
        avc1_sample_entry, avcc_from_parameter_sets, write_fragment_header, write_init, Sample,
        TrackConfig, TrackKind, TrackRun,
    };
    use std::io::Cursor;

    fn tracks() -> Vec<TrackConfig> {
        let avcc = avcc_from_parameter_sets(&[0x67, 0x64, 0x00, 0x1f, 0xac], &[0x68, 0xee]);
        let mut mp4a = vec![0, 0, 0, 12];
        mp4a.extend_from_slice(b"mp4a\0\0\0\0");
        vec![
            TrackConfig {
                track_id: 1,
                kind: TrackKind::Video {
                    width: 640,
                    height: 480,
                },
                timescale: 90_000,
                sample_entry: avc1_sample_entry(640, 480, &avcc),
            },
            TrackConfig {
                track_id: 2,
                kind: TrackKind::Audio {
                    sample_rate: 8000,
                    channels: 1,
                },
                timescale: 8000,
                sample_entry: mp4a,
            },
        ]
    }

    /// Init + 3 fragments (video GOP of 3 + 2 audio samples each). Returns the file, the
    /// init length and each fragment's end.
    fn three_fragments() -> (Vec<u8>, u64, Vec<u64>) {
        let mut f = Vec::new();
        write_init(&tracks(), &mut f);
        let init_len = f.len() as u64;
        let mut ends = Vec::new();
        for seq in 1..=3u32 {
            let v: Vec<Sample> = (0..3)
                .map(|i| Sample {
                    duration: 3600,
                    size: 40 + i + seq,
                    is_sync: i == 0,
                    composition_offset: 0,
                })
                .collect();
            let a = [Sample {
                duration: 160,
                size: 20,
                is_sync: true,
                composition_offset: 0,
            }; 2];
            let runs = [
                TrackRun {
                    track_id: 1,
                    base_decode_time: u64::from(seq - 1) * 10_800,
                    samples: &v,
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: u64::from(seq - 1) * 320,
                    samples: &a,
                },
            ];
            write_fragment_header(seq, &runs, &mut f);
            for s in v.iter().chain(&a) {
                f.extend(std::iter::repeat_n(seq as u8, s.size as usize));
            }
            ends.push(f.len() as u64);
        }
        (f, init_len, ends)
    }

    #[test]
    fn scans_what_the_writer_writes() {
        let (f, init_len, ends) = three_fragments();
        let s = scan(Cursor::new(&f)).unwrap();
        assert_eq!(s.init_len, init_len);
        assert_eq!(s.valid_len, f.len() as u64);
        assert!(!s.is_torn());
        assert_eq!(s.tracks.len(), 2);
        let v = s.video_track().unwrap();
        assert_eq!(
            (v.track_id, v.timescale, &v.handler, &v.codec),
            (1, 90_000, b"vide", b"avc1")
        );
        assert_eq!((v.width, v.height), (640, 480));
        let a = &s.tracks[1];
        assert_eq!(
            (a.track_id, a.timescale, &a.handler, &a.codec),
            (2, 8000, b"soun", b"mp4a")
        );
        assert_eq!(s.fragments.len(), 3);
        for (i, fr) in s.fragments.iter().enumerate() {
            assert_eq!(fr.sequence, i as u32 + 1);
            assert_eq!(fr.end, ends[i]);
            assert_eq!(fr.offset, if i == 0 { init_len } else { ends[i - 1] });
            let [v, a] = &fr.runs[..] else {
                panic!("{:?}", fr.runs)
            };
            assert_eq!(v.track_id, 1);
            assert_eq!(v.base_decode_time, i as u64 * 10_800);
            assert_eq!(
                (v.sample_count, v.duration, v.first_is_sync),
                (3, 10_800, true)
            );
            assert_eq!(v.bytes, 3 * 41 + 3 * (i as u64 + 1));
            assert_eq!(
                (a.track_id, a.sample_count, a.duration, a.bytes),
                (2, 2, 320, 40)
            );
        }
        assert_eq!(s.track_duration(1), 32_400);
        assert_eq!(s.track_duration(2), 960);
        assert_eq!(s.track_duration(9), 0);
    }

    #[test]
    fn every_truncation_ends_at_the_last_whole_fragment() {
        let (f, init_len, ends) = three_fragments();
        for cut in 0..=f.len() {
            let res = scan(Cursor::new(&f[..cut]));
            if (cut as u64) < init_len {
                assert!(
                    matches!(res, Err(ScanError::NoInit(_))),
                    "cut {cut}: {res:?}"
                );
                continue;
            }
            let s = res.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let whole = ends.iter().filter(|&&e| e <= cut as u64).count();
            let want = if whole == 0 {
                init_len
            } else {
                ends[whole - 1]
            };
            assert_eq!(s.valid_len, want, "cut {cut}");
            assert_eq!(s.fragments.len(), whole, "cut {cut}");
            assert_eq!(s.file_len, cut as u64);
            assert_eq!(s.is_torn(), want != cut as u64, "cut {cut}");
            assert_eq!(s.torn_reason.is_some(), s.is_torn(), "cut {cut}");
        }
    }

    #[test]
    fn zero_filled_tail_is_torn_not_an_error() {
        // What a crash can leave on ext4: the size grew but the data never landed.
        let (mut f, _, ends) = three_fragments();
        f.extend_from_slice(&[0; 4096]);
        let s = scan(Cursor::new(&f)).unwrap();
        assert_eq!(s.valid_len, ends[2]);
        assert!(s.is_torn());
        assert!(s.torn_reason.unwrap().contains("garbage"));
    }

    #[test]
    fn ancillary_boxes_after_fragments_are_valid() {
        let (mut f, _, _) = three_fragments();
        f.extend_from_slice(b"\0\0\0\x10free12345678");
        let s = scan(Cursor::new(&f)).unwrap();
        assert!(!s.is_torn());
        assert_eq!(s.fragments.len(), 3);
    }

    fn put32(f: &mut [u8], at: usize, v: u32) {
        f[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn hostile_top_level_sizes() {
        let (f, init_len, ends) = three_fragments();
        let at = ends[0] as usize; // second moof
        for (size, large) in [
            (0xffff_ffff, None),
            (1, Some(u64::MAX)),
            (1, Some(4)),
            (4, None),
            (0, None),
        ] {
            let mut g = f.clone();
            put32(&mut g, at, size);
            if let Some(l) = large {
                g[at + 8..at + 16].copy_from_slice(&l.to_be_bytes());
            }
            let s = scan(Cursor::new(&g)).unwrap();
            // size 0 = "to end of file": the moof swallows the rest and has no mdat.
            assert_eq!(s.valid_len, ends[0], "size {size} large {large:?}");
            assert!(s.is_torn());
        }
        // Same on the ftyp and the moov: not a segment.
        for (pos, size) in [(0, 0xffff_ffffu32), (0, 3), (36, 0xffff_ffff), (36, 7)] {
            let mut g = f.clone();
            put32(&mut g, pos, size);
            assert!(
                matches!(scan(Cursor::new(&g)), Err(ScanError::NoInit(_))),
                "{pos} {size}"
            );
        }
        assert!(matches!(
            scan(Cursor::new(&f[..init_len as usize - 1])),
            Err(ScanError::NoInit(_))
        ));
        assert!(matches!(scan(Cursor::new(b"")), Err(ScanError::NoInit(_))));
    }

    #[test]
    fn hostile_moof_contents_are_malformed() {
        let (f, init_len, _) = three_fragments();
        let moof = init_len as usize;
        let traf = moof + 24;
        let trun = traf + 44;
        let cases: [(&str, usize, u32); 5] = [
            ("child past parent", traf, 0x00ff_ffff),
            ("child smaller than header", traf, 3),
            ("huge sample count", trun + 12, 0xffff_ffff),
            ("data offset past mdat", trun + 16, 0x7fff_0000),
            ("sample bigger than mdat", trun + 24, 0x1000_0000),
        ];
        for (what, at, v) in cases {
            let mut g = f.clone();
            put32(&mut g, at, v);
            match scan(Cursor::new(&g)) {
                Err(ScanError::Malformed { offset, .. }) => assert_eq!(offset, init_len, "{what}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        // A moof followed by something other than mdat.
        let mut g = f.clone();
        let mdat = moof + u32::from_be_bytes(f[moof..moof + 4].try_into().unwrap()) as usize;
        g[mdat + 4..mdat + 8].copy_from_slice(b"junk");
        assert!(matches!(
            scan(Cursor::new(&g)),
            Err(ScanError::Malformed { .. })
        ));
    }

    #[test]
    fn nested_junk_in_moov_is_no_init() {
        let (f, _, _) = three_fragments();
        // First trak's first child (tkhd) claims more than its parent holds.
        let trak = 36 + 8 + 108;
        assert_eq!(&f[trak + 4..trak + 8], b"trak");
        let mut g = f.clone();
        put32(&mut g, trak + 8, 0x7fff_ffff);
        assert!(matches!(scan(Cursor::new(&g)), Err(ScanError::NoInit(_))));
        // Renamed tkhd: the track is missing its header.
        let mut g = f.clone();
        g[trak + 12..trak + 16].copy_from_slice(b"xxxx");
        assert!(matches!(scan(Cursor::new(&g)), Err(ScanError::NoInit(_))));
    }

    /// Small deterministic PRNG so the fuzz cases are reproducible without a dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_corruption_never_panics() {
        let (f, _, _) = three_fragments();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut g = f.clone();
            for _ in 0..1 + xorshift(&mut rng) % 4 {
                let at = (xorshift(&mut rng) % g.len() as u64) as usize;
                // Favour values that hit edge cases in size fields.
                g[at] = match xorshift(&mut rng) % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => 1,
                    _ => xorshift(&mut rng) as u8,
                };
            }
            let cut = g.len() - (xorshift(&mut rng) % 64) as usize;
            if let Ok(s) = scan(Cursor::new(&g[..cut])) {
                assert!(s.valid_len <= s.file_len && s.init_len <= s.valid_len);
            }
        }
        for len in [0, 7, 8, 15, 16, 100, 5000] {
            let junk: Vec<u8> = (0..len).map(|_| xorshift(&mut rng) as u8).collect();
            assert!(scan(Cursor::new(&junk)).is_err());
        }
    }

    #[test]
    fn defaults_from_tfhd_and_trex_and_explicit_base() {
        // ffmpeg style: constant durations in tfhd, no per-sample durations, an absolute
        // base_data_offset, and no tfdt (decode time continues from the previous run).
        let mut f = Vec::new();
        write_init(&tracks()[..1], &mut f);
        let moof_at = f.len();
        let mut traf = Vec::new();
        // tfhd: base-data-offset | default-duration | default-flags
        traf.extend_from_slice(&[0, 0, 0, 32]);
        traf.extend_from_slice(b"tfhd\0\0\0\x29\0\0\0\x01");
        let base_field = moof_at + 8 + 16 + 8 + 16;
        traf.extend_from_slice(&[0; 8]); // base, patched below
        traf.extend_from_slice(&3600u32.to_be_bytes());
        traf.extend_from_slice(&NON_SYNC_BIT.to_be_bytes());
        // trun: data-offset | first-sample-flags | sample-size
        traf.extend_from_slice(&[0, 0, 0, 36]);
        traf.extend_from_slice(b"trun\0\0\x02\x05\0\0\0\x03\0\0\0\0\x02\0\0\0");
        for size in [10u32, 20, 30] {
            traf.extend_from_slice(&size.to_be_bytes());
        }
        let moof_len = 8 + 16 + 8 + traf.len();
        f.extend_from_slice(&(moof_len as u32).to_be_bytes());
        f.extend_from_slice(b"moof\0\0\0\x10mfhd\0\0\0\0\0\0\0\x05");
        f.extend_from_slice(&(8 + traf.len() as u32).to_be_bytes());
        f.extend_from_slice(b"traf");
        f.extend_from_slice(&traf);
        let payload = (f.len() + 8) as u64;
        f[base_field..base_field + 8].copy_from_slice(&payload.to_be_bytes());
        f.extend_from_slice(&(8u32 + 60).to_be_bytes());
        f.extend_from_slice(b"mdat");
        f.extend_from_slice(&[0; 60]);
        let s = scan(Cursor::new(&f)).unwrap();
        assert!(!s.is_torn());
        let r = &s.fragments[0].runs[0];
        assert_eq!(s.fragments[0].sequence, 5);
        assert_eq!(
            (r.sample_count, r.duration, r.bytes, r.first_is_sync),
            (3, 10_800, 60, true)
        );
        assert_eq!(r.base_decode_time, 0);
    }

    #[test]
    fn scan_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("not-a-segment.mp4");
        std::fs::write(&p, b"hello world, not an mp4").unwrap();
        let e = scan_path(&p).unwrap_err().to_string();
        assert!(e.contains("not-a-segment.mp4"), "{e}");
        let e = scan_path(&dir.path().join("missing.mp4"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.mp4"), "{e}");
        let (f, _, _) = three_fragments();
        std::fs::write(&p, &f).unwrap();
        assert_eq!(scan_path(&p).unwrap().fragments.len(), 3);
    }
}
