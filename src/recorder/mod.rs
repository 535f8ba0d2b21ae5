//! Recorder: cuts one camera's frames into self-contained fragmented MP4
//! segments on disk and indexes each finished segment.
//!
//! Owns: segment boundaries (key frames, `segment_seconds`, parameter
//! changes, timestamp jumps), the write → fsync → rename → fsync dir → index
//! order, and reacting to a full disk. Never talks to cameras: it only
//! consumes `IngestEvent`s. Runs on its own OS thread per camera, so a slow
//! disk stalls only this camera's writes (ingest drops, see `ingest::session`).

mod segment;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tracing::{error, info, warn};

use crate::clock::{ticks_90k_to_ns, NS_PER_SEC};
use crate::frame::{AudioFrame, AudioParams, IngestEvent, VideoFrame};
use crate::handoff::MAX_FRAGMENT_TICKS;
use crate::mp4::Sample;
use crate::status::{update, CameraStatus, DiskTrouble};
use crate::store::Store;
use segment::OpenSegment;

/// A jump in camera time larger than this (or any step backwards) starts a
/// new segment re-anchored to the wall clock. Hikvision and Dahua cameras
/// jump by hours when their NTP client corrects the clock.
const MAX_TIMESTAMP_STEP: i64 = 10 * 90_000;

/// The longest the recorder thread naps between batches of queued events.
/// Ingest wakes it sooner for what it acts on at once (a complete fragment,
/// the end of a session or of the queue: `handoff`); the nap's end only
/// catches what no wake announced (audio, a gap). The queue
/// (`supervisor::RECORDER_QUEUE`, about 10 s of video) absorbs what arrives
/// meanwhile.
const MAX_NAP: Duration = Duration::from_secs(1);

/// Audio frames held while waiting for video to place them by (about 30 s of 8 kHz AAC,
/// 5 s at 48 kHz); past this, with no video coming, the oldest are dropped.
const MAX_PENDING_AUDIO: usize = 256;

/// After a disk error, wait this long before trying to open a new segment.
const DISK_RETRY: Duration = Duration::from_secs(5);
/// After running out of file descriptors, retry sooner: they come back as
/// soon as someone closes a socket.
const FD_RETRY: Duration = Duration::from_secs(1);

/// Frames held in memory while no segment can be opened (about 30 s of a
/// 8 Mbit/s stream). Past this the oldest GOPs are dropped.
const BACKLOG_BYTES: usize = 32 << 20;

/// Finished segments kept for a later index row at most; past this the oldest is
/// forgotten here (its file stays, and is indexed at the next start).
const MAX_UNINDEXED: usize = 4096;

/// What a recorder needs to know.
pub struct RecorderSettings {
    /// Camera id.
    pub camera: String,
    /// Target segment length.
    pub segment_seconds: u32,
}

/// Starts the recorder thread for one camera. It ends when `rx` closes,
/// after finishing the open segment.
pub fn spawn(
    settings: RecorderSettings,
    rx: mpsc::Receiver<IngestEvent>,
    store: Arc<Store>,
    status: Arc<Mutex<CameraStatus>>,
    retention: Arc<Notify>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name = format!("rec-{}", settings.camera);
    std::thread::Builder::new().name(name).spawn(move || {
        lower_thread_priority();
        let span = tracing::info_span!("camera", id = %settings.camera);
        let _enter = span.enter();
        let mut rec = Recorder::new(settings, store, status, retention);
        rec.run(rx, MAX_NAP);
    })
}

/// How long (90 kHz) after a rollover the previous segment waits for its last sound.
const MAX_AUDIO_LAG_TICKS: i64 = 90_000;

/// A segment that has rolled over, open for audio only: its last fragment (pictures
/// and sound, not yet written) and the first picture of the segment after it.
struct Closing {
    seg: Option<OpenSegment>,
    video: Vec<(Sample, Bytes)>,
    audio: Vec<(Sample, Bytes)>,
    /// 90 kHz.
    next_pts: i64,
}

/// A video frame whose duration is not known until the next one arrives.
struct Held {
    pts: i64,
    received_ns: i64,
    is_key: bool,
    data: Bytes,
}

/// Waiting this long for a key frame (frames arriving, none decodable) is
/// logged, every time again, and shown in the status.
const NO_KEY_FRAME_WARNING_NS: i64 = 10 * 1_000_000_000;

/// Per-camera recording state.
pub struct Recorder {
    settings: RecorderSettings,
    store: Arc<Store>,
    status: Arc<Mutex<CameraStatus>>,
    retention: Arc<Notify>,
    /// Maps camera time to wall time: (wall ns, pts) of a reference frame.
    anchor: Option<(i64, i64)>,
    audio: Option<Arc<AudioParams>>,
    seg: Option<OpenSegment>,
    held: Option<Held>,
    video: Vec<(Sample, Bytes)>,
    /// Audio not yet placed: it goes to a segment once video shows which one covers its time.
    audio_pending: VecDeque<AudioFrame>,
    /// End (audio ticks) of the latest audio frame received this session.
    audio_end: i64,
    /// The segment just rolled over, kept open for sound of its last moments that has
    /// not arrived yet (see [`Recorder::roll`]).
    closing: Option<Closing>,
    audio_samples: Vec<(Sample, Bytes)>,
    last_duration: u32,
    last_start_ns: i64,
    /// Arrival (wall ns) of the first frame that found no segment open and
    /// was not a key frame: the recorder has been waiting for a key frame since.
    waiting_since: Option<i64>,
    /// When the last "no key frame" warning was logged (wall ns).
    waiting_warned: Option<i64>,
    disk_retry_at: Option<Instant>,
    /// Events that arrived while no segment could be opened, oldest first,
    /// starting at the key frame that could not be written; replayed in
    /// order once a file opens, so a failed open loses no frame.
    backlog: VecDeque<IngestEvent>,
    backlog_bytes: usize,
    /// Reused buffer for a fragment's `moof` and `mdat` header.
    buf: Vec<u8>,
    /// Finished, durable segment files whose index row could not be written, oldest
    /// first; retried before each new row. The files describe themselves, so these
    /// are also found by `check::recover_all` when the index is reopened.
    unindexed: VecDeque<crate::store::SegmentRecord>,
}

impl Recorder {
    /// A recorder with no open segment.
    pub fn new(
        settings: RecorderSettings,
        store: Arc<Store>,
        status: Arc<Mutex<CameraStatus>>,
        retention: Arc<Notify>,
    ) -> Self {
        Recorder {
            settings,
            store,
            status,
            retention,
            anchor: None,
            audio: None,
            seg: None,
            held: None,
            video: Vec::new(),
            audio_pending: VecDeque::new(),
            audio_end: i64::MIN,
            closing: None,
            audio_samples: Vec::new(),
            last_duration: 3600,
            last_start_ns: i64::MIN,
            waiting_since: None,
            waiting_warned: None,
            disk_retry_at: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            buf: Vec::new(),
            unindexed: VecDeque::new(),
        }
    }

    /// Consumes events until the channel closes, then finishes the segment.
    ///
    /// Events are taken in batches: after draining the queue the thread
    /// parks until ingest wakes it for a complete fragment or the end of a
    /// session or of the queue (`handoff::FrameSender`), or `max_nap`
    /// ([`MAX_NAP`]) has passed. It never waits on
    /// the channel itself, which would wake it at every frame (a wake-up, two
    /// context switches, costs more CPU than writing the frame; see
    /// docs/BENCHMARKS.md).
    pub fn run(&mut self, mut rx: mpsc::Receiver<IngestEvent>, max_nap: Duration) {
        use mpsc::error::TryRecvError;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(ev) => self.handle(ev),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.finish_run();
                        return;
                    }
                }
            }
            std::thread::park_timeout(max_nap);
        }
    }

    /// The input ended: one last try to write what is held, then close.
    fn finish_run(&mut self) {
        if !self.backlog.is_empty() {
            self.disk_retry_at = None;
            self.replay_backlog();
            if !self.backlog.is_empty() {
                error!(
                    events = self.backlog.len(),
                    "stopping with frames that could not be written"
                );
                self.backlog.clear();
            }
        }
        self.end_run();
        if let Some(first) = self.unindexed.front() {
            warn!(
                segments = self.unindexed.len(),
                first = %first.path,
                "stopping with segment files not yet indexed; they are indexed at the next start"
            );
        }
    }

    /// Processes one event.
    pub fn handle(&mut self, ev: IngestEvent) {
        if !self.backlog.is_empty() {
            self.hold(ev);
            if self.disk_retry_at.is_none_or(|t| Instant::now() >= t) {
                self.replay_backlog();
            }
            return;
        }
        self.dispatch(ev);
    }

    /// Keeps `ev` for later, dropping the oldest GOPs past [`BACKLOG_BYTES`].
    fn hold(&mut self, ev: IngestEvent) {
        self.backlog_bytes += event_bytes(&ev);
        self.backlog.push_back(ev);
        if self.backlog_bytes <= BACKLOG_BYTES {
            return;
        }
        let mut dropped = 0usize;
        while let Some(ev) = self.backlog.pop_front() {
            self.backlog_bytes -= event_bytes(&ev);
            dropped += 1;
            let next_is_key =
                matches!(self.backlog.front(), Some(IngestEvent::Video(f)) if f.is_key);
            if self.backlog_bytes <= BACKLOG_BYTES && next_is_key {
                break;
            }
        }
        error!(
            dropped,
            held = self.backlog.len(),
            "no segment file could be opened for a long time; dropping the oldest held frames"
        );
    }

    /// Feeds the held events through again, in order. If opening a file
    /// fails again, the rest goes back on hold behind it.
    fn replay_backlog(&mut self) {
        let events = std::mem::take(&mut self.backlog);
        self.backlog_bytes = 0;
        let n = events.len();
        let mut it = events.into_iter();
        while let Some(ev) = it.next() {
            self.dispatch(ev);
            if !self.backlog.is_empty() {
                for ev in it {
                    self.hold(ev);
                }
                return;
            }
        }
        info!(
            events = n,
            "segment file opened; wrote the frames held meanwhile"
        );
    }

    fn dispatch(&mut self, ev: IngestEvent) {
        match ev {
            IngestEvent::SessionStarted { audio } => {
                self.end_run();
                self.audio_pending.clear();
                self.audio_end = i64::MIN;
                self.audio = audio;
            }
            IngestEvent::Video(f) => self.on_video(f),
            IngestEvent::Audio(a) => self.on_audio(a),
            IngestEvent::Gap => {
                warn!("frames were dropped upstream; closing segment at the gap");
                self.end_segment();
            }
            IngestEvent::SessionEnded => self.end_run(),
        }
    }

    /// Ends the segment and forgets the time anchor: the next session's clock starts afresh.
    /// A wait for a key frame ends with its session too: an offline camera is not
    /// "streaming without a key frame", and the next session's wait counts afresh.
    fn end_run(&mut self) {
        self.end_segment();
        self.anchor = None;
        self.end_wait();
    }

    /// Forgets a wait for a key frame and takes it off the status.
    fn end_wait(&mut self) {
        self.waiting_warned = None;
        if self.waiting_since.take().is_some() {
            update(&self.status, |s| s.no_key_frame_since_ns = None);
        }
    }

    /// Finishes the held frame with the last known duration and closes the segment.
    fn end_segment(&mut self) {
        if let Some(h) = self.held.take() {
            self.push_held(h, self.last_duration);
        }
        // The sound up to the end of the last picture; anything later stays pending for
        // the segment that follows a gap, or goes with the session.
        if let Some(end) = self
            .seg
            .as_ref()
            .map(|s| s.last_pts + i64::from(self.last_duration))
        {
            self.place_audio(end);
        }
        self.close_segment();
    }

    fn wall_ns(&self, pts: i64) -> i64 {
        let (wall, pts0) = self.anchor.unwrap_or((0, pts));
        wall.saturating_add(ticks_90k_to_ns(pts.saturating_sub(pts0)))
    }

    fn on_video(&mut self, f: VideoFrame) {
        // Audio from before this picture belongs with the pictures before it, so it is
        // placed before this frame can close their segment.
        self.place_audio(f.pts);
        if self.anchor.is_none() {
            self.anchor = Some((f.received_ns, f.pts));
        }
        if let Some(h) = self.held.take() {
            let step = f.pts - h.pts;
            if step <= 0 || step > MAX_TIMESTAMP_STEP {
                warn!(
                    step_s = step as f64 / 90_000.0,
                    "camera timestamp jumped; starting a new segment on wall time"
                );
                self.push_held(h, self.last_duration);
                self.close_segment();
                self.anchor = Some((f.received_ns, f.pts));
            } else {
                self.last_duration = step as u32;
                self.push_held(h, step as u32);
            }
        }
        if let Some(seg) = &self.seg {
            if *seg.params != *f.params {
                info!(
                    from = %seg.params.rfc6381, to = %f.params.rfc6381,
                    width = f.params.width, height = f.params.height,
                    "video parameters changed; starting a new segment"
                );
                self.place_audio_begun_before(f.pts);
                self.close_segment();
            }
        }
        if self
            .closing
            .as_ref()
            .is_some_and(|c| f.pts - c.next_pts >= MAX_AUDIO_LAG_TICKS)
        {
            self.finish_closing();
        }
        if f.is_key {
            let roll = self
                .seg
                .as_ref()
                .is_some_and(|s| self.wall_ns(f.pts) >= s.roll_at_ns);
            if roll {
                self.roll(f.pts);
            } else {
                self.flush_fragment();
            }
            if self.seg.is_none() && !self.open_segment(&f) {
                // Keep the frame (and everything after it) until a file opens.
                self.hold(IngestEvent::Video(f));
                return;
            }
            self.end_wait();
        } else if self.seg.is_none() {
            // Frames that cannot be decoded without the key frame before them:
            // never written. Say so once the wait is long enough to matter.
            let now = f.received_ns;
            let since = *self.waiting_since.get_or_insert(now);
            let last = self.waiting_warned.unwrap_or(since);
            if now - last >= NO_KEY_FRAME_WARNING_NS {
                warn!(
                    waited_s = (now - since) / 1_000_000_000,
                    "no key frame for 10 s; nothing is being recorded until one arrives \
                     (check the camera's key-frame interval)"
                );
                self.waiting_warned = Some(now);
                update(&self.status, |s| s.no_key_frame_since_ns = Some(since));
            }
            return;
        } else if self.video_span() >= MAX_FRAGMENT_TICKS {
            self.flush_fragment();
        }
        self.held = Some(Held {
            pts: f.pts,
            received_ns: f.received_ns,
            is_key: f.is_key,
            data: f.data,
        });
    }

    fn on_audio(&mut self, a: AudioFrame) {
        let Some(rate) = self.audio.as_ref().map(|p| i64::from(p.sample_rate)) else {
            return;
        };
        let end = a.pts + i64::from(a.duration);
        self.audio_end = self.audio_end.max(end);
        if let Some(next) = self.closing.as_ref().map(|c| c.next_pts * rate / 90_000) {
            if a.pts < next {
                // Sound of the rolled-over segment's last moments, arriving late.
                self.with_closing(|r| r.add_audio(a, rate));
                if end >= next {
                    self.finish_closing();
                }
                return;
            }
            self.finish_closing();
        }
        if self.audio_pending.len() >= MAX_PENDING_AUDIO {
            self.audio_pending.pop_front();
        }
        self.audio_pending.push_back(a);
    }

    /// Moves pending audio that ends by `until_pts` (90 kHz) into the open segment. A frame
    /// that straddles the picture at `until_pts` waits: it goes with the segment that
    /// covers its start ([`Recorder::place_audio_begun_before`] when that one closes).
    ///
    /// Audio is placed by its timestamp, never by arrival: it arrives somewhat before or
    /// after the video of the same moment (the G.711 converter's output lags its input by
    /// one or two AAC frames), and placing it by arrival would put the sound of a
    /// segment's first moments at the end of the one before.
    fn place_audio(&mut self, until_pts: i64) {
        self.place_audio_while(until_pts, |a, until| a.pts + i64::from(a.duration) <= until);
    }

    /// Before the open segment closes at `next_pts` (90 kHz) for one that continues the
    /// timeline: pending audio that began before that picture goes with the closing
    /// segment, whose sound then runs past its last picture by less than a frame. The
    /// next segment cannot hold it (its sound cannot start before its first picture), so
    /// otherwise one frame (21 ms of AAC at 48 kHz, 128 ms of converted G.711) would be
    /// lost at every rollover.
    fn place_audio_begun_before(&mut self, next_pts: i64) {
        self.place_audio_while(next_pts, |a, until| a.pts < until);
    }

    /// Places pending audio from the front while `take(frame, pts in audio ticks)`.
    fn place_audio_while(&mut self, pts: i64, take: impl Fn(&AudioFrame, i64) -> bool) {
        let Some(rate) = self.audio.as_ref().map(|p| i64::from(p.sample_rate)) else {
            self.audio_pending.clear();
            return;
        };
        let until = pts.saturating_mul(rate) / 90_000;
        while self.audio_pending.front().is_some_and(|a| take(a, until)) {
            let a = self.audio_pending.pop_front().expect("checked above");
            self.add_audio(a, rate);
        }
    }

    /// Appends one audio frame to the open segment at its own time.
    fn add_audio(&mut self, a: AudioFrame, rate: i64) {
        let Some(seg) = &mut self.seg else { return };
        if !seg.has_audio {
            return;
        }
        // Both RTP clocks count from the same session start, so the audio offset into
        // this segment follows from the video start time.
        let at = a.pts - seg.start_pts * rate / 90_000;
        if at < 0 {
            // Sound from before this segment's first picture whose segment is closed.
            return;
        }
        let queued: i64 = self
            .audio_samples
            .iter()
            .map(|(s, _)| i64::from(s.duration))
            .sum();
        let frame = i64::from(a.duration.max(1));
        match seg.audio_dts {
            None => seg.audio_dts = Some(at as u64),
            Some(dts) => {
                let expected = dts as i64 + queued;
                if at <= expected - frame {
                    return; // already covered (a duplicate, or the camera's clock stepped back)
                }
                if at >= expected + frame {
                    // A hole (lost packets): the next fragment starts at this frame's own
                    // time, so later sound is not pulled early.
                    self.flush_fragment();
                    let Some(seg) = &mut self.seg else { return };
                    seg.audio_dts = Some(at as u64);
                }
            }
        }
        let sample = Sample {
            duration: a.duration,
            size: a.data.len() as u32,
            is_sync: true,
            composition_offset: 0,
        };
        self.audio_samples.push((sample, a.data));
    }

    fn push_held(&mut self, h: Held, duration: u32) {
        if let Some(seg) = &mut self.seg {
            seg.last_pts = h.pts;
            seg.last_received_ns = h.received_ns;
        }
        let sample = Sample {
            duration,
            size: h.data.len() as u32,
            is_sync: h.is_key,
            composition_offset: 0,
        };
        self.video.push((sample, h.data));
    }

    fn video_span(&self) -> i64 {
        self.video.iter().map(|(s, _)| i64::from(s.duration)).sum()
    }

    fn open_segment(&mut self, f: &VideoFrame) -> bool {
        if self.disk_retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let mut start_ns = crate::store::truncate_to_ms(self.wall_ns(f.pts));
        // Two segments must never share a start (the index key), even after a clock step back.
        if start_ns <= self.last_start_ns {
            start_ns = self.last_start_ns + 1_000_000;
        }
        let roll_at_ns = self.roll_at(start_ns);
        let audio = self.audio.clone();
        match OpenSegment::create(
            self.store.dir(),
            &self.settings.camera,
            start_ns,
            f.pts,
            roll_at_ns,
            f.params.clone(),
            audio.as_deref(),
        ) {
            Ok(seg) => {
                self.last_start_ns = start_ns;
                self.disk_retry_at = None;
                self.seg = Some(seg);
                true
            }
            Err(e) if out_of_descriptors(&e) => {
                error!(
                    error = %format!("{e:#}"),
                    "out of file descriptors: holding frames in memory and retrying in {} s",
                    FD_RETRY.as_secs()
                );
                update(&self.status, |s| {
                    s.recorder_error = Some(format!("{e:#}"));
                    s.recorder_trouble = Some(DiskTrouble::TooManyFiles);
                });
                self.disk_retry_at = Some(Instant::now() + FD_RETRY);
                false
            }
            Err(e) => {
                self.disk_error(&e);
                false
            }
        }
    }

    /// Rollover times sit on a per-camera grid offset by a hash of the id,
    /// so a site's cameras do not all fsync and index in the same second.
    fn roll_at(&self, start_ns: i64) -> i64 {
        let len = i64::from(self.settings.segment_seconds) * NS_PER_SEC;
        let phase = stagger(&self.settings.camera) % len;
        let mut t = phase + ((start_ns - phase).div_euclid(len) + 1) * len;
        if t - start_ns < len / 2 {
            t += len;
        }
        t
    }

    fn flush_fragment(&mut self) {
        if self.video.is_empty() && self.audio_samples.is_empty() {
            return;
        }
        let Some(seg) = &mut self.seg else {
            self.video.clear();
            self.audio_samples.clear();
            return;
        };
        let result = seg.write_fragment(&self.video, &self.audio_samples, &mut self.buf);
        self.video.clear();
        self.audio_samples.clear();
        if let Err(e) = result {
            // The segment keeps every fragment before this one; it is closed
            // now so that what was written stays indexed and playable.
            self.disk_error(&e);
            self.close_segment();
        }
    }

    /// Closes the open segment at the key frame `next_pts` that starts the next one on the
    /// same timeline. Its sound goes on to that picture and a little past it (the frame
    /// that straddles the rollover, see [`Recorder::place_audio_begun_before`]), but the
    /// camera sends that sound some tens of milliseconds after the picture (an AAC frame
    /// is coded once its samples are all in, and the G.711 converter lags by a frame or
    /// two). So unless it is already here, the segment stays open for audio only, as
    /// [`Closing`], until sound from `next_pts` on arrives or video runs
    /// [`MAX_AUDIO_LAG_TICKS`] further; otherwise a frame would be lost at every rollover.
    fn roll(&mut self, next_pts: i64) {
        self.finish_closing();
        self.place_audio_begun_before(next_pts);
        let rate = self.audio.as_ref().map(|p| i64::from(p.sample_rate));
        let waiting = rate.is_some_and(|rate| self.audio_end < next_pts * rate / 90_000)
            && self.seg.as_ref().is_some_and(|s| s.has_audio);
        if !waiting {
            self.close_segment();
            return;
        }
        self.closing = Some(Closing {
            seg: self.seg.take(),
            video: std::mem::take(&mut self.video),
            audio: std::mem::take(&mut self.audio_samples),
            next_pts,
        });
    }

    /// Runs `f` with the closing segment (and its unwritten fragment) in place of the
    /// open one.
    fn with_closing(&mut self, f: impl FnOnce(&mut Self)) {
        let Some(mut c) = self.closing.take() else {
            return;
        };
        self.swap_closing(&mut c);
        f(self);
        self.swap_closing(&mut c);
        self.closing = Some(c);
    }

    fn swap_closing(&mut self, c: &mut Closing) {
        std::mem::swap(&mut self.seg, &mut c.seg);
        std::mem::swap(&mut self.video, &mut c.video);
        std::mem::swap(&mut self.audio_samples, &mut c.audio);
    }

    /// Writes and indexes the segment kept open by [`Recorder::roll`], if any.
    fn finish_closing(&mut self) {
        self.with_closing(|r| r.close_segment());
        self.closing = None;
    }

    fn close_segment(&mut self) {
        self.finish_closing();
        self.flush_fragment();
        let Some(seg) = self.seg.take() else { return };
        let drift_ms = (self.wall_ns(seg.last_pts) - seg.last_received_ns) / 1_000_000;
        match seg.finish(self.store.dir(), drift_ms) {
            Ok(None) => {}
            Ok(Some(rec)) => self.index(rec),
            Err(e) => self.disk_error(&e),
        }
    }

    /// Commits the rows of `rec` and of any segment whose row failed before, oldest
    /// first. A row that cannot be written is kept (the file is already durable), and
    /// recording goes on: a refusing index is no reason to stop writing files, which
    /// the index is rebuilt from (`check::recover_all`) when it is reopened.
    fn index(&mut self, rec: crate::store::SegmentRecord) {
        self.unindexed.push_back(rec);
        while let Some(rec) = self.unindexed.front() {
            match self.store.insert(rec) {
                Ok(()) => {
                    info!(path = %rec.path, bytes = rec.bytes, frames = rec.frames, "segment");
                    // Written and indexed: the disk works again.
                    update(&self.status, |s| {
                        s.segments_written += 1;
                        s.recorder_error = None;
                        s.recorder_trouble = None;
                    });
                    self.unindexed.pop_front();
                }
                Err(e) => {
                    let msg = format!("indexing {}: {e:#}", rec.path);
                    error!(
                        path = %rec.path,
                        unindexed = self.unindexed.len(),
                        error = %format!("{e:#}"),
                        "segment file written but not indexed; it stays on disk and is indexed \
                         once the index accepts writes again"
                    );
                    let trouble = match DiskTrouble::of(&e) {
                        DiskTrouble::Other => DiskTrouble::IndexRefused,
                        t => t,
                    };
                    update(&self.status, |s| {
                        s.recorder_error = Some(msg);
                        s.recorder_trouble = Some(trouble);
                    });
                    // A full volume is the usual cause: let retention look.
                    self.retention.notify_one();
                    if self.unindexed.len() > MAX_UNINDEXED {
                        self.unindexed.pop_front();
                    }
                    return;
                }
            }
        }
    }

    /// A write failed: the raw error (with its file) goes to the log and the
    /// admin status, its plain-words meaning to everyone else.
    fn disk_error(&mut self, e: &anyhow::Error) {
        let msg = format!("{e:#}");
        error!(error = %msg, "recording error; freeing space and retrying in {} s", DISK_RETRY.as_secs());
        let trouble = DiskTrouble::of(e);
        update(&self.status, |s| {
            s.recorder_error = Some(msg);
            s.recorder_trouble = Some(trouble);
        });
        self.disk_retry_at = Some(Instant::now() + DISK_RETRY);
        self.retention.notify_one();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.end_segment();
    }
}

/// Lowers the calling recorder thread's scheduling priority (Linux:
/// per-thread nice 10). Recording is buffered (the queue holds about 10 s),
/// ingest is not, so when hundreds of recorder threads write at once the
/// scheduler should run the few ingest (tokio) threads first; see
/// docs/BENCHMARKS.md (at 400 streams the RTSP reads otherwise fell seconds
/// behind real time).
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on our own thread id; raising nice needs no privilege.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Bytes of frame data an event holds.
fn event_bytes(ev: &IngestEvent) -> usize {
    match ev {
        IngestEvent::Video(f) => f.data.len(),
        IngestEvent::Audio(a) => a.data.len(),
        _ => 0,
    }
}

/// Whether `e` is EMFILE or ENFILE (the process or system is out of descriptors).
fn out_of_descriptors(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| matches!(io.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
}

fn stagger(id: &str) -> i64 {
    // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    (h >> 1) as i64
}

#[cfg(test)]
mod tests;
