//! Reads an assembled [`Plan`] at any byte offset: built pieces from memory, the rest from
//! the segment files in bounded chunks, relocating each `moof` on the way. Nothing is ever
//! held in memory beyond one chunk and one `moof`.

use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use super::{Plan, Source};
use crate::mp4::read_fragment;
use crate::store::media::SegmentFile;

/// Largest chunk read at once: big enough for sequential disk reads, small enough that a
/// slow client holds little memory.
pub const CHUNK: usize = 256 * 1024;

/// The box of one segment that the last read fell in.
struct BoxCursor {
    seg: usize,
    start: u64,
    end: u64,
    /// The relocated bytes if the box is a `moof`; other boxes are copied from the file.
    moof: Option<Vec<u8>>,
    /// Whether the box's type is rewritten to `free`: boxes other than `moof`/`mdat` (an
    /// `mfra` that ffmpeg appends, say) describe their old file's offsets, so they must not
    /// be taken at their word in the middle of another file. The size stays the same.
    as_free: bool,
}

/// Random-access reader over a plan. Blocking; keeps the current file open.
pub struct PlanReader {
    plan: Arc<Plan>,
    file: Option<(usize, SegmentFile)>,
    cursor: Option<BoxCursor>,
    /// The output bytes this reader will read in order, if it said so
    /// ([`PlanReader::forward`]): each segment it opens streams its part of them.
    forward: Option<Range<u64>>,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl PlanReader {
    /// A reader positioned nowhere in particular (every read names its offset).
    pub fn new(plan: Arc<Plan>) -> PlanReader {
        PlanReader {
            plan,
            file: None,
            cursor: None,
            forward: None,
        }
    }

    /// A reader that will read output bytes `range` from start to end (an HTTP range
    /// being served, an export): an archived segment then streams the part of it this
    /// range covers in one request ([`SegmentFile::read_forward`]). Reads elsewhere
    /// still work.
    pub fn forward(plan: Arc<Plan>, range: Range<u64>) -> PlanReader {
        PlanReader {
            forward: Some(range),
            ..PlanReader::new(plan)
        }
    }

    /// The plan being read.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    fn file(&mut self, seg: usize) -> io::Result<&mut SegmentFile> {
        if self.file.as_ref().is_none_or(|(s, _)| *s != seg) {
            // The previous segment's stream (if any) ends here.
            self.file = None;
            let mut f = self.plan.segs[seg].source.open()?;
            if let Some(span) = self.forward.as_ref().and_then(|r| self.file_span(seg, r)) {
                f.read_forward(span);
            }
            self.file = Some((seg, f));
        }
        Ok(&mut self.file.as_mut().expect("just opened").1)
    }

    /// The bytes of segment `seg` that output bytes `out` are read from, from the
    /// key-frame `moof` a box walk into them starts at ([`PlanReader::locate`]).
    fn file_span(&self, seg: usize, out: &Range<u64>) -> Option<Range<u64>> {
        let plan = &self.plan;
        let first = plan
            .pieces
            .partition_point(|p| p.out_start + p.len <= out.start);
        let mut span: Option<Range<u64>> = None;
        for p in plan.pieces[first..]
            .iter()
            .take_while(|p| p.out_start < out.end)
        {
            let (from, boxes) = match p.source {
                Source::Boxes { seg: s, from } if s == seg => (from, true),
                Source::Raw { seg: s, from } if s == seg => (from, false),
                _ => continue,
            };
            let a = from + out.start.saturating_sub(p.out_start);
            let b = from + (out.end - p.out_start).min(p.len);
            let a = if boxes {
                let moofs = &plan.segs[seg].moofs;
                moofs
                    .iter()
                    .rev()
                    .copied()
                    .find(|&m| m <= a && m >= from)
                    .unwrap_or(from)
            } else {
                a
            };
            span = Some(match span {
                Some(r) => r.start.min(a)..r.end.max(b),
                None => a..b,
            });
        }
        span
    }

    /// Reads up to `max` bytes at output offset `pos`; fewer at a piece boundary, none at
    /// the end.
    pub fn read_at(&mut self, pos: u64, max: usize) -> io::Result<Bytes> {
        let plan = self.plan.clone();
        if pos >= plan.len || max == 0 {
            return Ok(Bytes::new());
        }
        let i = plan.pieces.partition_point(|p| p.out_start + p.len <= pos);
        let piece = &plan.pieces[i];
        let within = pos - piece.out_start;
        let n = (piece.len - within).min(max as u64);
        match &piece.source {
            Source::Mem(b) => Ok(b.slice(within as usize..(within + n) as usize)),
            Source::Raw { seg, from } => {
                let mut buf = vec![0; n as usize];
                self.file(*seg)?.read_exact_at(&mut buf, from + within)?;
                Ok(buf.into())
            }
            Source::Boxes { seg, from } => {
                self.read_boxes(*seg, *from, from + piece.len, from + within, n as usize)
            }
        }
    }

    /// Reads file bytes `[fp, fp + max)` (within a run of whole boxes `[from, to)`), with
    /// `moof`s relocated.
    fn read_boxes(
        &mut self,
        seg: usize,
        from: u64,
        to: u64,
        fp: u64,
        max: usize,
    ) -> io::Result<Bytes> {
        let covered = self
            .cursor
            .as_ref()
            .is_some_and(|c| c.seg == seg && c.start <= fp && fp < c.end);
        if !covered {
            self.locate(seg, from, fp)?;
        }
        let c = self.cursor.as_ref().expect("located");
        let end = c.end.min(to).min(fp + max as u64);
        match &c.moof {
            Some(m) => Ok(Bytes::copy_from_slice(
                &m[(fp - c.start) as usize..(end - c.start) as usize],
            )),
            None => {
                let (start, as_free) = (c.start, c.as_free);
                let mut buf = vec![0; (end - fp) as usize];
                self.file(seg)?.read_exact_at(&mut buf, fp)?;
                if as_free {
                    // Overwrite whatever part of bytes 4..8 (the type) this read covers.
                    for (i, b) in b"free".iter().enumerate() {
                        let at = start + 4 + i as u64;
                        if (fp..end).contains(&at) {
                            buf[(at - fp) as usize] = *b;
                        }
                    }
                }
                Ok(buf.into())
            }
        }
    }

    /// Finds the box of segment `seg` containing file offset `fp`, walking box headers from
    /// the nearest known boundary: the end of the previous box when reading on, else the
    /// closest key-frame `moof` from the index (so at most a GOP's boxes are walked).
    fn locate(&mut self, seg: usize, from: u64, fp: u64) -> io::Result<()> {
        let plan = self.plan.clone();
        let sp = &plan.segs[seg];
        let mut b = match &self.cursor {
            Some(c) if c.seg == seg && c.end <= fp && c.end >= from => c.end,
            _ => sp
                .moofs
                .iter()
                .rev()
                .copied()
                .find(|&m| m <= fp && m >= from)
                .unwrap_or(from),
        };
        let file = self.file(seg)?;
        let (fourcc, end) = loop {
            let (fourcc, len) = box_header(file, b, sp.bytes)?;
            if b + len > fp {
                break (fourcc, b + len);
            }
            b += len;
        };
        let moof = if &fourcc == b"moof" {
            let mut frag = read_fragment(file, &sp.init, b, sp.bytes)
                .map_err(|e| bad(format!("{}: {e}", sp.source.rel)))?;
            let seq = sp.seq_base.saturating_add(frag.sequence);
            frag.relocate(seq, |t| sp.shift(t))
                .map_err(|e| bad(format!("{} at {b}: {e}", sp.source.rel)))?;
            Some(frag.moof)
        } else {
            None
        };
        self.cursor = Some(BoxCursor {
            seg,
            start: b,
            end,
            as_free: moof.is_none() && &fourcc != b"mdat",
            moof,
        });
        Ok(())
    }

    /// Writes the whole plan to `w`; returns the bytes written. Reads forward: archived
    /// segments stream.
    pub fn write_all(&mut self, w: &mut impl Write) -> io::Result<u64> {
        if self.forward.is_none() {
            self.forward = Some(0..self.plan.len);
        }
        let mut pos = 0;
        loop {
            let chunk = self.read_at(pos, CHUNK)?;
            if chunk.is_empty() {
                return Ok(pos);
            }
            w.write_all(&chunk)?;
            pos += chunk.len() as u64;
        }
    }
}

/// Reads the fourcc and total length of the box at `pos` (within a file of `len` bytes).
fn box_header(f: &mut SegmentFile, pos: u64, len: u64) -> io::Result<([u8; 4], u64)> {
    let avail = len.saturating_sub(pos);
    if avail < 8 {
        return Err(bad(format!("box header past end of segment at {pos}")));
    }
    let mut h = [0u8; 16];
    let n = avail.min(16) as usize;
    f.read_exact_at(&mut h[..n], pos)?;
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let fourcc = [h[4], h[5], h[6], h[7]];
    let (hl, total) = match size {
        0 => (8, avail),
        1 if n == 16 => (
            16,
            u64::from_be_bytes(h[8..16].try_into().expect("8 bytes")),
        ),
        1 => return Err(bad(format!("truncated largesize at {pos}"))),
        s => (8, u64::from(s)),
    };
    if total < hl || total > avail {
        return Err(bad(format!("bad box size {total} at {pos}")));
    }
    Ok((fourcc, total))
}

/// Streams bytes `[start, end)` of `plan`, one chunk at a time on the blocking pool, so a
/// slow client holds neither a thread nor more than a chunk of memory.
pub fn stream(
    plan: Arc<Plan>,
    start: u64,
    end: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let end = end.min(plan.len);
    let reader = PlanReader::forward(plan, start..end);
    futures::stream::try_unfold((reader, start), move |(mut reader, pos)| async move {
        if pos >= end {
            return Ok(None);
        }
        let max = (end - pos).min(CHUNK as u64) as usize;
        let (reader, chunk) = tokio::task::spawn_blocking(move || {
            let c = reader.read_at(pos, max);
            (reader, c)
        })
        .await
        .map_err(io::Error::other)?;
        let chunk = chunk?;
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "assembled file shorter than planned",
            ));
        }
        let next = pos + chunk.len() as u64;
        Ok(Some((chunk, (reader, next))))
    })
}

/// An assembled plan as a `Read + Seek` file, so the box reader (and a decoder fed from
/// it) can walk the output exactly as a player would.
pub struct PlanFile {
    reader: PlanReader,
    pos: u64,
}

impl PlanFile {
    /// Positioned at the start.
    pub fn new(plan: Arc<Plan>) -> PlanFile {
        PlanFile {
            reader: PlanReader::new(plan),
            pos: 0,
        }
    }

    /// Positioned at the start, for a reader that goes through the whole plan (a
    /// transcode): archived segments stream ([`PlanReader::forward`]).
    pub fn forward(plan: Arc<Plan>) -> PlanFile {
        let len = plan.len;
        PlanFile {
            reader: PlanReader::forward(plan, 0..len),
            pos: 0,
        }
    }

    /// The plan's length.
    pub fn len(&self) -> u64 {
        self.reader.plan.len
    }

    /// Whether the plan is empty (it never is: there is always an init).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl io::Read for PlanFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.reader.read_at(self.pos, buf.len().min(CHUNK))?;
        buf[..chunk.len()].copy_from_slice(&chunk);
        self.pos += chunk.len() as u64;
        Ok(chunk.len())
    }
}

impl io::Seek for PlanFile {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let len = self.len() as i128;
        let p = match to {
            io::SeekFrom::Start(p) => i128::from(p),
            io::SeekFrom::End(d) => len + i128::from(d),
            io::SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
        };
        self.pos = u64::try_from(p)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}
