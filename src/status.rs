//! Live per-camera status, written by ingest and the recorder, read by the
//! web API and metrics. Kept in memory only: it describes now, not history.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::Clock;

/// Connection state of one camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Not configured to connect.
    Disabled,
    /// Opening the RTSP session.
    #[default]
    Connecting,
    /// Frames are arriving.
    Streaming,
    /// Waiting before the next attempt after an error.
    Backoff,
    /// The camera rejected our credentials; retried slowly.
    AuthFailed,
}

/// Why a camera is not streaming, as an operator can act on it. Ingest sets it
/// beside the raw `last_error` (which names addresses and protocol steps and is
/// for administrators); [`Trouble::words`] is the one wording of it that the
/// live tiles, alarms (bell, API, e-mail, webhook) and the timeline all show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trouble {
    /// Nothing listens on the camera's RTSP port (the host answered with a reset).
    ConnectionRefused,
    /// No route to the camera, its name does not resolve, or it never answered.
    Unreachable,
    /// The camera refused the NVR's user name or password.
    AuthFailed,
    /// The camera does not know the stream path (RTSP 404).
    NotFound,
    /// The camera answered the request with an error (another RTSP 4xx/5xx,
    /// or it refuses RTP over both TCP and UDP).
    Refused,
    /// The camera streams nothing cleannvr can record (no H.264/H.265 video).
    NoMedia,
    /// The camera's stream has sound only, no video track.
    AudioOnly,
    /// The camera stopped sending video, or never started.
    TimedOut,
    /// An open connection broke (reset, closed mid-message).
    ConnectionLost,
    /// The camera ended the stream itself.
    StreamEnded,
    /// The camera restarted its RTP stream within the session (a new SSRC,
    /// sequence numbers going back): the session is opened again.
    StreamRestarted,
    /// The camera sent video the NVR could not read.
    Unreadable,
    /// Anything else.
    Other,
}

impl Trouble {
    /// The plain words, lower case, to follow "offline since 09:06:24 ·".
    pub fn words(self) -> &'static str {
        match self {
            Trouble::ConnectionRefused => "camera not accepting connections",
            Trouble::Unreachable => "camera not reachable on the network",
            Trouble::AuthFailed => "camera did not accept the NVR's login",
            Trouble::NotFound => "camera does not know the configured stream",
            Trouble::Refused => "camera turned the stream request down",
            Trouble::NoMedia => "camera sends no video the NVR can record",
            Trouble::AudioOnly => "camera sends sound only, no video track",
            Trouble::TimedOut => "camera stopped sending video",
            Trouble::ConnectionLost => "connection to the camera dropped",
            Trouble::StreamEnded => "camera ended the stream",
            Trouble::StreamRestarted => "camera restarted its video stream",
            Trouble::Unreadable => "camera sent video the NVR could not read",
            Trouble::Other => "could not connect to the camera",
        }
    }
}

/// Why the recorder cannot write a camera's footage, as an operator can act
/// on it. The recorder sets it beside the raw `recorder_error` (which names
/// files and is for administrators and the log); [`DiskTrouble::words`] is
/// what alarms, the timeline and non-admin views show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskTrouble {
    /// The storage volume (or the user's quota on it) is full.
    Full,
    /// The NVR may not write where its footage goes (permissions, read-only volume).
    NotAllowed,
    /// The NVR has run out of open files.
    TooManyFiles,
    /// The disk reported a hardware or file-system error.
    DiskFailing,
    /// The footage was written but the recording index refused it.
    IndexRefused,
    /// Anything else.
    Other,
}

impl DiskTrouble {
    /// The plain words, lower case, to follow "recording camera X failed:".
    pub fn words(self) -> &'static str {
        match self {
            DiskTrouble::Full => "the storage disk is full",
            DiskTrouble::NotAllowed => "the NVR is not allowed to write to its storage folder",
            DiskTrouble::TooManyFiles => "the NVR has too many files open",
            DiskTrouble::DiskFailing => "the storage disk reported an error",
            DiskTrouble::IndexRefused => "the recording index could not be updated",
            DiskTrouble::Other => "writing the recording to disk failed",
        }
    }

    /// What an error from writing footage means, from the operating
    /// system's error in its chain; [`DiskTrouble::Other`] without one.
    pub fn of(e: &anyhow::Error) -> DiskTrouble {
        e.chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .find_map(|io| {
                Some(match io.raw_os_error()? {
                    libc::ENOSPC | libc::EDQUOT => DiskTrouble::Full,
                    libc::EACCES | libc::EPERM | libc::EROFS => DiskTrouble::NotAllowed,
                    libc::EMFILE | libc::ENFILE => DiskTrouble::TooManyFiles,
                    libc::EIO | libc::EUCLEAN => DiskTrouble::DiskFailing,
                    _ => return None,
                })
            })
            .unwrap_or(DiskTrouble::Other)
    }
}

/// What `s`'s recorder error means, in plain words (for everyone but
/// administrators, who also see the raw error).
pub fn recorder_words(s: &CameraStatus) -> &'static str {
    s.recorder_trouble.unwrap_or(DiskTrouble::Other).words()
}

/// Why `s`'s camera is not streaming, in plain words: its [`Trouble`], or
/// what it is doing when nothing has failed yet.
pub fn why_not_streaming(s: &CameraStatus) -> &'static str {
    match (s.trouble, s.state) {
        (Some(t), _) => t.words(),
        (None, StreamState::AuthFailed) => Trouble::AuthFailed.words(),
        (None, StreamState::Disabled) => "camera turned off in the configuration",
        (None, StreamState::Backoff) => "waiting to reconnect",
        (None, _) => "connecting to the camera",
    }
}

/// The plain words for a camera that streams but has sent no key frame for
/// 10 s or more: its frames cannot be decoded, so nothing is recorded (and no
/// live picture can start) until one comes. Shared by `/api/cameras`, the
/// timeline's state history and the live tile.
pub const NO_KEY_FRAME_WORDS: &str =
    "camera sends video but no key frame, so nothing is recorded until one arrives";

/// Why a streaming camera records nothing, in plain words; `None` while its
/// frames are being recorded, and while it is not streaming at all (that is
/// [`why_not_streaming`]'s to say).
pub fn why_not_recording(s: &CameraStatus) -> Option<&'static str> {
    (s.state == StreamState::Streaming && s.no_key_frame_since_ns.is_some())
        .then_some(NO_KEY_FRAME_WORDS)
}

/// Snapshot of one camera's health.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CameraStatus {
    /// Connection state.
    pub state: StreamState,
    /// RTP transport of the current (or last) session: `tcp` or `udp`.
    pub transport: Option<&'static str>,
    /// Since when (wall ns) the camera has not been streaming, across every retry in
    /// between, so the UI can say "offline since 14:02". `None` while streaming.
    pub offline_since_ns: Option<i64>,
    /// Since when (wall ns) the camera has been streaming without a break, so the
    /// Cameras page can say "online since 09:14". `None` while not streaming.
    pub streaming_since_ns: Option<i64>,
    /// When (wall ns) the newest video frame arrived; kept while offline.
    pub last_frame_ns: Option<i64>,
    /// When ingest will try again (wall ns), while waiting between attempts.
    pub next_attempt_ns: Option<i64>,
    /// RFC 6381 codec of the video stream, once known.
    pub codec: Option<String>,
    /// Width x height, once known.
    pub resolution: Option<(u16, u16)>,
    /// What becomes of the camera's audio: `aac` (recorded as sent), `pcmu → aac` /
    /// `pcma → aac` (converted), `unsupported: L16` (not recorded); `None` if it sends none.
    pub audio: Option<String>,
    /// How the camera's ONVIF events arrive, in plain words: `events by
    /// subscription`, `events by polling every 5 s`, `camera has no event
    /// service`...; `None` for a camera without `onvif`.
    pub events: Option<String>,
    /// Measured frames per second over the last few seconds.
    pub fps: f64,
    /// Measured video bitrate, bits per second.
    pub bitrate_bps: f64,
    /// Video frames received since start.
    pub frames: u64,
    /// Bytes of video received since start.
    pub bytes: u64,
    /// Sessions that ended and were retried.
    pub reconnects: u64,
    /// Most recent error, credentials never included. It names addresses and
    /// protocol steps: for administrators; everyone else reads `trouble`.
    pub last_error: Option<String>,
    /// What `last_error` means, in a category an operator can act on; set with it.
    pub trouble: Option<Trouble>,
    /// When (wall ns) and why the last session that had delivered video
    /// ended; kept after streaming resumes (unlike `trouble`), so a camera
    /// that reconnected can still say why its recording was cut.
    pub last_interruption: Option<(i64, Trouble)>,
    /// Camera clock minus wall clock at the latest frame, milliseconds.
    pub drift_ms: i64,
    /// Frames dropped because the recorder fell behind.
    pub dropped_frames: u64,
    /// RTP packets the camera sent that never arrived (sequence gaps).
    pub lost_packets: u64,
    /// Video frames discarded as damaged: lost packets or a depacketization
    /// error, up to the next key frame.
    pub damaged_frames: u64,
    /// RTP packets that could not be depacketized (malformed, or a join
    /// in the middle of a fragmented frame); each costs frames, not the session.
    pub depacketize_errors: u64,
    /// Segments the recorder finished.
    pub segments_written: u64,
    /// Last recorder (disk) error, with the file it was about: for
    /// administrators and the log; everyone else reads `recorder_trouble`.
    pub recorder_error: Option<String>,
    /// What `recorder_error` means, in plain words; set and cleared with it.
    pub recorder_trouble: Option<DiskTrouble>,
    /// Since when (wall ns) the recorder has had frames but no key frame to
    /// start a segment at, once that has lasted 10 s: nothing is being
    /// recorded. `None` otherwise.
    pub no_key_frame_since_ns: Option<i64>,
}

/// Shared table of camera statuses keyed by camera id.
#[derive(Debug, Default)]
pub struct StatusBoard {
    cameras: Mutex<BTreeMap<String, Arc<Mutex<CameraStatus>>>>,
}

impl StatusBoard {
    /// The status cell of `camera`, created on first use.
    pub fn camera(&self, camera: &str) -> Arc<Mutex<CameraStatus>> {
        let mut map = self.cameras.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(camera.to_owned()).or_default().clone()
    }

    /// Forgets `camera` (it was removed from the configuration).
    pub fn remove(&self, camera: &str) {
        let mut map = self.cameras.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(camera);
    }

    /// A copy of every camera's status.
    pub fn snapshot(&self) -> BTreeMap<String, CameraStatus> {
        let map = self.cameras.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                )
            })
            .collect()
    }
}

/// Applies `f` to a status cell, ignoring lock poisoning (status is advisory).
/// Entering and leaving `Streaming` are stamped here, so no writer can forget to.
pub fn update(cell: &Mutex<CameraStatus>, f: impl FnOnce(&mut CameraStatus)) {
    let mut s = cell.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut s);
    if s.state == StreamState::Streaming {
        s.offline_since_ns = None;
        if s.streaming_since_ns.is_none() {
            s.streaming_since_ns = Some(crate::clock::SystemClock.now_ns());
        }
    } else {
        s.streaming_since_ns = None;
        if s.offline_since_ns.is_none() {
            s.offline_since_ns = Some(crate::clock::SystemClock.now_ns());
        }
    }
    if s.state != StreamState::Backoff && s.state != StreamState::AuthFailed {
        s.next_attempt_ns = None;
    }
}

/// Sliding-window rate meter for fps and bitrate.
#[derive(Debug, Default)]
pub struct RateMeter {
    window_start_ns: Option<i64>,
    frames: u64,
    bytes: u64,
}

impl RateMeter {
    /// Counts a frame; every ~2 s returns `(fps, bits per second)`.
    pub fn add(&mut self, now_ns: i64, bytes: usize) -> Option<(f64, f64)> {
        let start = *self.window_start_ns.get_or_insert(now_ns);
        self.frames += 1;
        self.bytes += bytes as u64;
        let span = now_ns - start;
        if span < 2_000_000_000 {
            return None;
        }
        let secs = span as f64 / 1e9;
        let out = (self.frames as f64 / secs, self.bytes as f64 * 8.0 / secs);
        *self = RateMeter {
            window_start_ns: Some(now_ns),
            ..Default::default()
        };
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter_reports_after_window() {
        let mut m = RateMeter::default();
        let mut out = None;
        for i in 0..=50 {
            out = m.add(i * 40_000_000, 1000).or(out);
        }
        let (fps, bps) = out.expect("a 2 s window has passed");
        assert!((fps - 25.5).abs() < 1.0, "{fps}");
        assert!((bps - 204_000.0).abs() < 10_000.0, "{bps}");
    }

    #[test]
    fn disk_trouble_reads_the_os_error_in_the_chain() {
        let io = |code| {
            anyhow::Error::new(std::io::Error::from_raw_os_error(code))
                .context("writing /data/cam/2026/x.mp4")
        };
        assert_eq!(DiskTrouble::of(&io(libc::ENOSPC)), DiskTrouble::Full);
        assert_eq!(DiskTrouble::of(&io(libc::EACCES)), DiskTrouble::NotAllowed);
        assert_eq!(DiskTrouble::of(&io(libc::EROFS)), DiskTrouble::NotAllowed);
        assert_eq!(
            DiskTrouble::of(&io(libc::EMFILE)),
            DiskTrouble::TooManyFiles
        );
        assert_eq!(DiskTrouble::of(&io(libc::EIO)), DiskTrouble::DiskFailing);
        assert_eq!(DiskTrouble::of(&io(libc::ENOTDIR)), DiskTrouble::Other);
        assert_eq!(
            DiskTrouble::of(&anyhow::anyhow!("no io error")),
            DiskTrouble::Other
        );
        // Plain words: no path, no error code.
        for t in [
            DiskTrouble::Full,
            DiskTrouble::Other,
            DiskTrouble::IndexRefused,
        ] {
            assert!(!t.words().contains('/'), "{t:?}");
        }
    }

    #[test]
    fn board_shares_cells() {
        let b = StatusBoard::default();
        update(&b.camera("a"), |s| s.frames = 3);
        assert_eq!(b.snapshot()["a"].frames, 3);
    }
}
