//! One segment file being written: `<start>.mp4.part` until it is complete
//! and fsynced, then renamed to `<start>.mp4` and indexed.

use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;

use crate::frame::{AudioParams, VideoParams};
use crate::mp4::{self, Sample, TrackConfig, TrackKind, TrackRun};
use crate::store::check::PART_SUFFIX;
use crate::store::{segment_rel_path, sync_dir, SegmentRecord};

const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;

/// An open segment file and what has been written to it.
pub(super) struct OpenSegment {
    file: File,
    rel: String,
    part: PathBuf,
    camera: String,
    start_ns: i64,
    /// Camera time of the first frame.
    pub start_pts: i64,
    /// Wall time after which the next key frame starts a new segment.
    pub roll_at_ns: i64,
    /// Video parameters of every frame in this file.
    pub params: Arc<VideoParams>,
    /// Whether the init declares an audio track.
    pub has_audio: bool,
    /// Next audio decode time (track timescale), set by the first audio frame.
    pub audio_dts: Option<u64>,
    /// Camera time and arrival time of the latest frame, for drift.
    pub last_pts: i64,
    /// See `last_pts`.
    pub last_received_ns: i64,
    video_dts: u64,
    /// Bytes known good: init plus every complete fragment.
    bytes: u64,
    sequence: u32,
    frames: u64,
    keyframes: Vec<(u64, u64)>,
}

impl OpenSegment {
    /// Creates the `.part` file and writes the init segment.
    pub fn create(
        storage: &Path,
        camera: &str,
        start_ns: i64,
        start_pts: i64,
        roll_at_ns: i64,
        params: Arc<VideoParams>,
        audio: Option<&AudioParams>,
    ) -> anyhow::Result<OpenSegment> {
        let rel = segment_rel_path(camera, start_ns);
        let path = storage.join(&rel);
        let dir = path.parent().expect("segment paths have a day directory");
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            // The new day directory must survive power loss along with its files.
            if let Some(cam_dir) = dir.parent() {
                sync_dir(cam_dir).with_context(|| format!("syncing {}", cam_dir.display()))?;
            }
        }
        let part = PathBuf::from(format!("{}{PART_SUFFIX}", path.display()));
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&part)
            .with_context(|| format!("creating {}", part.display()))?;
        let mut tracks = vec![TrackConfig {
            track_id: VIDEO_TRACK,
            kind: TrackKind::Video {
                width: params.width,
                height: params.height,
            },
            timescale: 90_000,
            sample_entry: params.sample_entry.to_vec(),
        }];
        if let Some(a) = audio {
            tracks.push(TrackConfig {
                track_id: AUDIO_TRACK,
                kind: TrackKind::Audio {
                    sample_rate: a.sample_rate,
                    channels: a.channels,
                },
                timescale: a.sample_rate,
                sample_entry: a.sample_entry.to_vec(),
            });
        }
        let mut init = Vec::new();
        mp4::write_init(&tracks, &mut init);
        if let Err(e) = file.write_all(&init) {
            let _ = std::fs::remove_file(&part);
            return Err(e).with_context(|| format!("writing {}", part.display()));
        }
        Ok(OpenSegment {
            file,
            rel,
            part,
            camera: camera.to_owned(),
            start_ns,
            start_pts,
            roll_at_ns,
            params,
            has_audio: audio.is_some(),
            audio_dts: None,
            last_pts: start_pts,
            last_received_ns: 0,
            video_dts: 0,
            bytes: init.len() as u64,
            sequence: 0,
            frames: 0,
            keyframes: Vec::new(),
        })
    }

    /// Appends one `moof`+`mdat` (the header built in `buf`, the samples
    /// written from their own buffers). On error the file is cut back to its
    /// last complete fragment so it stays playable.
    pub fn write_fragment(
        &mut self,
        video: &[(Sample, Bytes)],
        audio: &[(Sample, Bytes)],
        buf: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        let v: Vec<Sample> = video.iter().map(|(s, _)| *s).collect();
        let a: Vec<Sample> = audio.iter().map(|(s, _)| *s).collect();
        let mut runs = Vec::with_capacity(2);
        if !v.is_empty() {
            runs.push(TrackRun {
                track_id: VIDEO_TRACK,
                base_decode_time: self.video_dts,
                samples: &v,
            });
        }
        let audio_dts = self.audio_dts.unwrap_or(0);
        if !a.is_empty() && self.has_audio {
            runs.push(TrackRun {
                track_id: AUDIO_TRACK,
                base_decode_time: audio_dts,
                samples: &a,
            });
        }
        if runs.is_empty() {
            return Ok(());
        }
        buf.clear();
        self.sequence += 1;
        mp4::write_fragment_header(self.sequence, &runs, buf);
        // The samples go to the file from where they are, not through `buf`:
        // one copy of the video less (a few per cent of the recorder's CPU).
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + video.len() + audio.len());
        parts.push(buf);
        parts.extend(video.iter().map(|(_, d)| &d[..]));
        if self.has_audio {
            parts.extend(audio.iter().map(|(_, d)| &d[..]));
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if let Err(e) = write_in_pieces(&mut self.file, &parts) {
            // Best effort: a full disk usually still allows shrinking a file.
            let _ = self.file.set_len(self.bytes);
            return Err(e).with_context(|| format!("writing {}", self.part.display()));
        }
        if v.first().is_some_and(|s| s.is_sync) {
            self.keyframes.push((self.video_dts, self.bytes));
        }
        self.bytes += len as u64;
        self.video_dts += v.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        if self.has_audio && !a.is_empty() {
            self.audio_dts = Some(audio_dts + a.iter().map(|s| u64::from(s.duration)).sum::<u64>());
        }
        self.frames += v.len() as u64;
        Ok(())
    }

    /// Makes the segment durable and final: fsync file, rename, fsync dir.
    /// Returns the index row to commit, or `None` if nothing was recorded
    /// (the empty file is removed).
    pub fn finish(self, storage: &Path, drift_ms: i64) -> anyhow::Result<Option<SegmentRecord>> {
        if self.frames == 0 {
            drop(self.file);
            std::fs::remove_file(&self.part)
                .with_context(|| format!("removing empty {}", self.part.display()))?;
            return Ok(None);
        }
        self.file
            .sync_all()
            .with_context(|| format!("syncing {}", self.part.display()))?;
        let path = storage.join(&self.rel);
        std::fs::rename(&self.part, &path)
            .with_context(|| format!("renaming {}", self.part.display()))?;
        let dir = path.parent().expect("segment paths have a day directory");
        sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
        Ok(Some(SegmentRecord {
            camera: self.camera,
            start_ns: self.start_ns,
            end_ns: self.start_ns + (self.video_dts as i64) * 1_000_000_000 / 90_000,
            path: self.rel,
            bytes: self.bytes,
            codec: self.params.rfc6381.clone(),
            width: self.params.width,
            height: self.params.height,
            frames: self.frames,
            has_audio: self.has_audio,
            keyframes: self.keyframes,
            drift_ms,
            archived: None,
        }))
    }
}

/// Largest `write` of a fragment. ext4 (Linux 6.x) sizes page-cache folios by
/// the length of a buffered write, so one 1 MB write asks for 1 MB of
/// contiguous memory, and on a server whose memory is fragmented (the page cache
/// full of video) every such allocation first runs direct compaction in the
/// writing thread: a fifth of the recorder's CPU in a profile at one 4 Mbit/s
/// stream. Pieces of 32 KiB (order 3, what the kernel treats as cheap) are
/// what ffmpeg's 32 KiB I/O buffer writes. A crash between pieces leaves a torn
/// last fragment, which recovery truncates like any torn tail.
const WRITE_PIECE: usize = 32 << 10;

/// Appends `parts`, one after the other, to `file` in `writev`s of at most
/// [`WRITE_PIECE`] bytes each (the kernel sizes folios by a write's total length).
fn write_in_pieces(file: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut pieces = Pieces::new(parts);
    let mut batch = Vec::new();
    while pieces.next_into(&mut batch) {
        let mut slices = &mut batch[..];
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Cuts a sequence of byte slices into consecutive pieces of at most
/// [`WRITE_PIECE`] bytes, each a list of sub-slices for one `writev`.
struct Pieces<'a> {
    parts: &'a [&'a [u8]],
    /// Next part, and the offset in it.
    at: (usize, usize),
}

impl<'a> Pieces<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Self {
        Pieces { parts, at: (0, 0) }
    }

    /// Fills `out` with the next piece; false when everything was handed out.
    fn next_into(&mut self, out: &mut Vec<IoSlice<'a>>) -> bool {
        out.clear();
        let mut room = WRITE_PIECE;
        while room > 0 {
            let Some(part) = self.parts.get(self.at.0) else {
                break;
            };
            let rest = &part[self.at.1..];
            let n = rest.len().min(room);
            if n > 0 {
                out.push(IoSlice::new(&rest[..n]));
                room -= n;
            }
            if n == rest.len() {
                self.at = (self.at.0 + 1, 0);
            } else {
                self.at.1 += n;
            }
        }
        !out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces keep every byte in order and are never over [`WRITE_PIECE`];
    /// all but the last are full, as the single-buffer writes were.
    #[test]
    fn pieces_cover_the_parts_in_order_and_stay_under_the_limit() {
        let big: Vec<u8> = (0..3 * WRITE_PIECE + 17).map(|i| (i % 251) as u8).collect();
        let small: Vec<u8> = (0..100u8).collect();
        let parts: Vec<&[u8]> = vec![&small[..10], &[], &big, &small, &big[..WRITE_PIECE], &[7]];
        let mut pieces = Pieces::new(&parts);
        let mut batch = Vec::new();
        let (mut joined, mut sizes) = (Vec::new(), Vec::new());
        while pieces.next_into(&mut batch) {
            let size: usize = batch.iter().map(|s| s.len()).sum();
            sizes.push(size);
            batch.iter().for_each(|s| joined.extend_from_slice(s));
        }
        assert_eq!(joined, parts.concat());
        let (last, full) = sizes.split_last().unwrap();
        assert!(full.iter().all(|&s| s == WRITE_PIECE), "{sizes:?}");
        assert!(*last > 0 && *last <= WRITE_PIECE, "{sizes:?}");
        assert!(!Pieces::new(&[&[][..]]).next_into(&mut batch));
    }

    /// What lands in the file is the parts, concatenated.
    #[test]
    fn write_in_pieces_appends_the_parts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        let big: Vec<u8> = (0..WRITE_PIECE * 2 + 5).map(|i| (i % 13) as u8).collect();
        let parts: Vec<&[u8]> = vec![b"head", &big, b"tail"];
        write_in_pieces(&mut file, &parts).unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), parts.concat());
    }
}
