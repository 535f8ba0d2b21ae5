//! Audio to video alignment from RTCP sender reports.
//!
//! retina counts each stream's time from its own start: the `rtptime` the
//! camera named in `RTP-Info` at PLAY (then audio and video agree), or, when
//! the camera omits it, the stream's first packet (then they agree only if
//! the first audio and video packets were sampled at the same moment, which
//! lost or late first packets break). A sender report pairs a stream's RTP
//! time with the sender's wall clock (NTP), the same clock for all its
//! streams, so two reports tell how far apart the two starts really were.
//! Pure arithmetic, unit-tested; `rtsp` feeds it the reports.

/// The latest sender report of one stream: NTP seconds at the stream's time 0.
#[derive(Clone, Copy, Debug)]
struct Origin(f64);

/// Below this (seconds), a measured shift is noise, not worth a correction
/// (a tenth of an AAC frame at 8 kHz is 13 ms).
const MIN_CORRECTION_S: f64 = 0.010;

/// The shift to add to audio timestamps so they count from video's start.
#[derive(Debug, Default)]
pub struct AvSync {
    video: Option<Origin>,
    audio: Option<Origin>,
    /// Currently applied shift in audio ticks.
    shift: i64,
}

/// Seconds since the NTP epoch of a 64-bit NTP timestamp (32.32 fixed point).
fn ntp_seconds(ntp: u64) -> f64 {
    (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

impl AvSync {
    /// A sender report of the video stream: `elapsed` ticks at `clock_rate`
    /// since the stream's start were sent at NTP time `ntp`.
    pub fn video_report(&mut self, ntp: u64, elapsed: i64, clock_rate: u32) {
        self.video = Some(Origin(origin(ntp, elapsed, clock_rate)));
    }

    /// A sender report of the audio stream; returns the new shift in audio
    /// ticks when it changed by more than [`MIN_CORRECTION_S`].
    pub fn audio_report(&mut self, ntp: u64, elapsed: i64, clock_rate: u32) -> Option<i64> {
        self.audio = Some(Origin(origin(ntp, elapsed, clock_rate)));
        self.update(clock_rate)
    }

    /// Recomputes the shift after a video report (audio's rate needed).
    pub fn refresh(&mut self, audio_rate: u32) -> Option<i64> {
        self.update(audio_rate)
    }

    fn update(&mut self, audio_rate: u32) -> Option<i64> {
        let (Some(v), Some(a)) = (self.video, self.audio) else {
            return None;
        };
        // Audio's time 0 came this many seconds after video's.
        let late = a.0 - v.0;
        // More than a minute apart is a camera whose NTP clock is not one
        // clock for both streams (or nonsense): trust RTP-Info instead.
        if !late.is_finite() || late.abs() > 60.0 {
            return None;
        }
        let rate = f64::from(audio_rate);
        if (late - self.shift as f64 / rate).abs() < MIN_CORRECTION_S {
            return None;
        }
        self.shift = (late * rate).round() as i64;
        Some(self.shift)
    }

    /// Audio ticks to add to an audio timestamp.
    pub fn shift(&self) -> i64 {
        self.shift
    }
}

fn origin(ntp: u64, elapsed: i64, clock_rate: u32) -> f64 {
    ntp_seconds(ntp) - elapsed as f64 / f64::from(clock_rate.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntp(secs: f64) -> u64 {
        ((secs.trunc() as u64) << 32) | ((secs.fract() * 4_294_967_296.0) as u64)
    }

    #[test]
    fn audio_that_started_late_is_moved_later() {
        let mut s = AvSync::default();
        // Video: 10 s into its stream at NTP 1000.0. Audio (48 kHz): 8.5 s
        // into its own at the same instant: its time 0 was 1.5 s after video's.
        s.video_report(ntp(1000.0), 10 * 90_000, 90_000);
        assert_eq!(
            s.audio_report(ntp(1000.0), 8 * 48_000 + 24_000, 48_000),
            Some(72_000)
        );
        assert_eq!(s.shift(), 72_000);
        // Later reports that agree change nothing.
        s.video_report(ntp(1005.0), 15 * 90_000, 90_000);
        assert_eq!(s.refresh(48_000), None);
        assert_eq!(
            s.audio_report(ntp(1004.0), 12 * 48_000 + 24_000, 48_000),
            None
        );
        // Reports a few milliseconds off (jitter in the sender) neither.
        assert_eq!(
            s.audio_report(ntp(1004.004), 12 * 48_000 + 24_000, 48_000),
            None
        );
    }

    #[test]
    fn nothing_until_both_streams_reported_and_nothing_for_nonsense() {
        let mut s = AvSync::default();
        assert_eq!(s.audio_report(ntp(1000.0), 0, 8_000), None);
        assert_eq!(s.shift(), 0);
        // Streams that started together (RTP-Info rtptime honoured): no shift.
        s.video_report(ntp(1000.0), 0, 90_000);
        assert_eq!(s.refresh(8_000), None);
        // Audio time 0 an hour after video's: not one clock; ignored.
        assert_eq!(s.audio_report(ntp(4600.0), 0, 8_000), None);
        assert_eq!(s.shift(), 0);
        // Audio that started early (negative shift).
        assert_eq!(s.audio_report(ntp(1000.0), 1_600, 8_000), Some(-1_600));
    }
}
