//! Encoded frames gathered into the video run of the next MP4 fragment, shared by the
//! on-demand H.264 stream ([`super::h264`]) and export conversions ([`super::convert`]),
//! which write the run (and, for conversions, the audio beside it) their own way.
//!
//! A frame's duration is known only when the next one arrives, so one frame is held back.
//! A run ends before a key frame, at a recording gap, or once it spans a second.

use crate::mp4::Sample;

/// A run is cut once it spans this many 90 kHz ticks (one second).
const MAX_RUN_TICKS: i64 = 90_000;

/// The frames of the fragment being gathered.
#[derive(Default)]
pub(super) struct VideoRun {
    held: Option<(i64, bool, Vec<u8>)>,
    /// Frames gathered so far, in decode order, with their data.
    pub samples: Vec<(Sample, Vec<u8>)>,
    /// Decode time (90 kHz) of the first gathered frame.
    pub start: i64,
    /// The source's frame interval: the length given to a frame before a gap and to the
    /// last one.
    pub frame_ticks: i64,
}

impl VideoRun {
    /// An empty run for frames `frame_ticks` apart (the transcode's muxer sets it on the
    /// first frame instead).
    pub fn with_frame_ticks(frame_ticks: i64) -> VideoRun {
        VideoRun {
            frame_ticks,
            ..VideoRun::default()
        }
    }

    /// Adds a frame at `pts` (90 kHz). True when the frames gathered before it are a
    /// finished run to write now (the new frame is held for the next one).
    pub fn push(&mut self, pts: i64, key: bool, data: Vec<u8>) -> bool {
        let mut cut = false;
        if let Some((hpts, hkey, hdata)) = self.held.take() {
            let step = pts - hpts;
            // A jump of more than two frame intervals is a recording gap: the frame keeps
            // its own length and the gap stays a jump in decode time.
            let gap = step <= 0 || step > 2 * self.frame_ticks;
            let dur = if gap { self.frame_ticks } else { step };
            self.add(hpts, hkey, hdata, dur);
            cut = key || gap || self.ticks() >= MAX_RUN_TICKS;
        }
        self.held = Some((pts, key, data));
        cut
    }

    /// Gathers the held frame too, one frame interval long (the input has ended).
    pub fn release(&mut self) {
        if let Some((pts, key, data)) = self.held.take() {
            let dur = self.frame_ticks;
            self.add(pts, key, data, dur);
        }
    }

    /// Ticks the gathered frames span.
    pub fn ticks(&self) -> i64 {
        self.samples
            .iter()
            .map(|(s, _)| i64::from(s.duration))
            .sum()
    }

    fn add(&mut self, pts: i64, key: bool, data: Vec<u8>, dur: i64) {
        if self.samples.is_empty() {
            self.start = pts;
        }
        self.samples.push((
            Sample {
                duration: dur.clamp(1, i64::from(u32::MAX)) as u32,
                size: data.len() as u32,
                is_sync: key,
                composition_offset: 0,
            },
            data,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_at_key_frames_gaps_and_a_second() {
        let mut r = VideoRun::with_frame_ticks(3600);
        assert!(!r.push(0, true, vec![1]));
        assert!(!r.push(3600, false, vec![2]));
        // The next key frame ends the run of the two frames before it.
        assert!(r.push(7200, true, vec![3]));
        assert_eq!((r.start, r.samples.len(), r.ticks()), (0, 2, 7200));
        r.samples.clear();
        // A jump of ten frames: the frame before it keeps one interval and the run ends.
        assert!(r.push(7200 + 36_000, false, vec![4]));
        assert_eq!((r.start, r.ticks()), (7200, 3600));
        r.samples.clear();
        r.release();
        assert_eq!((r.start, r.ticks()), (43_200, 3600));
    }
}
