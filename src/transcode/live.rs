//! Live H.265 → H.264 (`/api/cameras/{id}/live?codec=h264`), for browsers that cannot
//! decode H.265.
//!
//! One [`LiveTranscoder`] per camera stream, shared by every viewer that asked for H.264:
//! the first such viewer starts it (taking a permit from the [`Limiter`]), the last one to
//! leave stops it. It runs on its own OS thread, because decoding and libx264 encoding
//! block for milliseconds per frame, and reads the camera's live broadcast like any viewer,
//! so it can never slow ingest or recording: when it falls behind it drops what it missed
//! and resumes at the newest key frame still buffered ([`Frames`]), close to live.
//!
//! Its output is published as H.264 [`VideoFrame`]s into a [`LiveStream`] of its own, so
//! each viewer gets the ordinary [`LiveViewer`] behaviour on top (init on parameter change,
//! start at a key frame, skip ahead when lagging). A resolution change restarts the
//! encoder, whose new parameters make every viewer send a new init.
//!
//! Frames that are already H.264 pass through untouched: [`H264Viewer`] never starts a
//! transcoder for an H.264 stream, and a running transcoder forwards H.264 input as is.
//!
//! Sound is never re-encoded: the camera's AAC frames are republished with their times
//! moved by the same offset as the pictures' (see [`Clock`]), so they stay in step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use anyhow::Context as _;
use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, warn};

use super::h264::H264Encoder;
use super::{counters, Limiter, Permit};
use crate::frame::{AudioFrame, AudioParams, VideoCodec, VideoFrame, VideoParams};
use crate::live::{Frames, LiveMessage, LiveStream, LiveViewer, Media, Published};

const TIMESCALE: i64 = 90_000;
/// Longest stretch between key frames in the output, so a viewer joining without asking
/// for one (or after lagging) waits at most this long.
const MAX_KEY_TICKS: i64 = 2 * TIMESCALE;
/// x264 preset: live runs for hours, so pick the cheap end that still compresses well.
const PRESET: &str = "veryfast";
/// A longer jump in source time than this is not a real gap but a new clock (camera
/// restart); it advances the output by one frame instead.
const MAX_STEP_TICKS: i64 = 10 * TIMESCALE;
/// Consecutive frames failing to transcode before the transcoder gives up (its viewers'
/// sockets then close); a few corrupt frames after packet loss only cause a resync.
const MAX_ERRORS: u32 = 50;

/// Every transcode slot is taken; the caller should retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many transcodes running; try again shortly")
    }
}

impl std::error::Error for Busy {}

/// Every transcode slot is taken: unavailable, retry in 5 s.
impl From<Busy> for crate::error::Error {
    fn from(e: Busy) -> Self {
        crate::error::Error::unavailable(e.to_string()).retry_after(5)
    }
}

/// A running live transcoder of one camera stream. Dropping the last [`Lease`] on it stops
/// the thread, which then frees its permit.
pub struct LiveTranscoder {
    /// The H.264 feed; owned by the thread, so it closes (and viewers end) when it ends.
    output: Weak<LiveStream>,
    /// Set by a joining viewer: the next frame is encoded as a key frame so it can start.
    want_key: Arc<AtomicBool>,
    /// Its latest output, for playbacks of the last moments ([`LiveTranscoders::recent`]).
    recent: Arc<Mutex<Recent>>,
    /// Dropped with the transcoder, which wakes the thread to stop even if the camera is
    /// silent.
    _stop: oneshot::Sender<()>,
}

/// One viewer's hold on a [`LiveTranscoder`]; counted in `cleannvr_live_transcode_viewers`.
pub struct Lease(Arc<LiveTranscoder>);

impl Drop for Lease {
    fn drop(&mut self) {
        counters().live_viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lease {
    /// A viewer of the H.264 output, starting at a key frame the encoder is asked to make
    /// now. `None` if the transcoder has already stopped.
    pub fn subscribe(&self) -> Option<LiveViewer> {
        let out = self.0.output.upgrade()?;
        let v = out.subscribe();
        self.0.want_key.store(true, Ordering::Relaxed);
        Some(v)
    }

    /// Whether `self` and `other` hold the same transcoder.
    pub fn shares_with(&self, other: &Lease) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The running live transcoders, one per camera stream at most, so that all of a
/// stream's `codec=h264` viewers share one. Owned by whoever owns both the live hub and
/// the viewers (the web server); the hub itself knows nothing of transcoding.
#[derive(Default)]
pub struct LiveTranscoders {
    running: Mutex<HashMap<String, Weak<LiveTranscoder>>>,
}

impl LiveTranscoders {
    /// Joins the transcoder of `stream` (hub key `key`), starting one (with a permit from
    /// `limiter`) if none is running.
    pub fn join(&self, stream: &LiveStream, limiter: &Limiter, key: &str) -> Result<Lease, Busy> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of stopped transcoders are reused by key, so the map stays as small as
        // the set of streams ever transcoded.
        let slot = running.entry(key.to_owned()).or_default();
        let alive = slot.upgrade().filter(|t| t.output.strong_count() > 0);
        let t = match alive {
            Some(t) => t,
            None => {
                let permit = limiter.try_acquire().ok_or(Busy)?;
                let t = start(stream, permit, key).map_err(|e| {
                    warn!(camera = key, error = %e, "cannot start the live transcoder");
                    Busy
                })?;
                *slot = Arc::downgrade(&t);
                t
            }
        };
        counters().live_viewers.fetch_add(1, Ordering::Relaxed);
        Ok(Lease(t))
    }
}

impl LiveTranscoders {
    /// The H.264 pictures the running transcoder of `key` made of `start_ns..end_ns`
    /// (wall time), from the key frame at or before `start_ns`, if it still holds all of
    /// them: a playback of the last moments is then served from the live conversion
    /// rather than by starting another. `None` if no transcoder runs or it lacks them.
    pub fn recent(&self, key: &str, start_ns: i64, end_ns: i64) -> Option<Clip> {
        let t = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.get(key)?.upgrade()?
        };
        t.output.upgrade()?;
        let r = t.recent.lock().unwrap_or_else(|e| e.into_inner());
        r.clip(start_ns, end_ns)
    }
}

/// How far back a live transcoder keeps its output (wall time): the playback page asks
/// for the stretch up to the newest recording it knows of, refreshed every 5 s.
const RECENT_NS: i64 = 20_000_000_000;
/// At most this many pictures kept (20 s at 60 fps), whatever the frame rate.
const RECENT_FRAMES: usize = 1200;
/// The kept output may end this much before a playback's end and still serve it: the
/// recording's last frame and the conversion's are the same picture, whose wall times
/// differ by the camera clock's drift.
const RECENT_END_SLACK_NS: i64 = 200_000_000;

/// A live transcoder's latest output: whole GOPs of one set of parameters, oldest first.
#[derive(Default)]
pub struct Recent {
    frames: std::collections::VecDeque<VideoFrame>,
}

impl Recent {
    fn push(&mut self, f: VideoFrame) {
        let continues = self
            .frames
            .back()
            .is_some_and(|b| *b.params == *f.params && b.pts < f.pts);
        if !continues {
            // New parameters (or a new clock): a clip never spans them.
            self.frames.clear();
            if !f.is_key {
                return;
            }
        }
        let newest = f.received_ns;
        self.frames.push_back(f);
        // Drop the oldest GOP while the next one still reaches back far enough.
        while let Some(next) = self.frames.iter().skip(1).position(|x| x.is_key) {
            let next = next + 1;
            if newest - self.frames[next].received_ns >= RECENT_NS
                || self.frames.len() > RECENT_FRAMES
            {
                self.frames.drain(..next);
            } else {
                break;
            }
        }
    }

    fn clip(&self, start_ns: i64, end_ns: i64) -> Option<Clip> {
        let first = self
            .frames
            .iter()
            .rposition(|f| f.is_key && f.received_ns <= start_ns)?;
        if self.frames.back()?.received_ns + RECENT_END_SLACK_NS < end_ns {
            return None;
        }
        let frames: Vec<VideoFrame> = self
            .frames
            .iter()
            .skip(first)
            .take_while(|f| f.received_ns < end_ns)
            .cloned()
            .collect();
        (!frames.is_empty()).then_some(Clip { frames })
    }
}

/// Pictures out of a live transcoder, from a key frame on, one set of parameters.
pub struct Clip {
    frames: Vec<VideoFrame>,
}

impl Clip {
    /// Wall time of the first picture (a key frame).
    pub fn start_ns(&self) -> i64 {
        self.frames[0].received_ns
    }

    /// Wall time at which the last picture stops showing.
    pub fn end_ns(&self) -> i64 {
        let last = self.frames.last().expect("a clip is never empty");
        last.received_ns + self.last_ticks() * 1_000_000_000 / TIMESCALE
    }

    /// The last picture lasts as long as the one before it (a lone picture: 1/25 s).
    fn last_ticks(&self) -> i64 {
        match self.frames.as_slice() {
            [.., a, b] => (b.pts - a.pts).clamp(1, TIMESCALE),
            _ => TIMESCALE / 25,
        }
    }

    /// The clip as a fragmented MP4 (init, then a fragment per GOP), starting at 0.
    pub fn mp4(&self) -> Vec<Bytes> {
        let first = &self.frames[0];
        let mut init = Vec::new();
        crate::mp4::write_init_with(
            &[crate::live::video_track(&first.params)],
            &crate::mp4::InitOptions {
                duration_ms: ((self.end_ns() - self.start_ns()).max(0) as u64).div_ceil(1_000_000),
                edits: Vec::new(),
            },
            &mut init,
        );
        let mut out = vec![Bytes::from(init)];
        let mut mux = super::h264::Muxer::with_frame_ticks(self.last_ticks());
        for f in &self.frames {
            out.extend(mux.push(f.pts - first.pts, f.is_key, f.data.to_vec()));
        }
        out.extend(mux.finish());
        out
    }
}

fn start(
    stream: &LiveStream,
    permit: Permit,
    camera: &str,
) -> std::io::Result<Arc<LiveTranscoder>> {
    // Subscribe before the thread exists so no frame published meanwhile is missed.
    let frames = stream.frames();
    let output = Arc::new(LiveStream::new());
    let want_key = Arc::new(AtomicBool::new(false));
    let recent = Arc::new(Mutex::new(Recent::default()));
    let (stop_tx, stop_rx) = oneshot::channel();
    let t = Arc::new(LiveTranscoder {
        output: Arc::downgrade(&output),
        want_key: want_key.clone(),
        recent: recent.clone(),
        _stop: stop_tx,
    });
    let camera = camera.to_owned();
    std::thread::Builder::new()
        .name(format!("{}live", super::meter::THREAD_PREFIX))
        .spawn(move || {
            // Ends after `run`, which drops the decoder and encoder (and their threads).
            let _conversion = super::meter::Conversion::start();
            let mut p = Pipeline::new(output, want_key);
            p.recent = Some(recent);
            run(frames, stop_rx, p, permit, camera)
        })?;
    Ok(t)
}

/// The thread: raw frames in, H.264 frames out, until stopped or the feed ends.
fn run(
    mut frames: Frames,
    mut stop: oneshot::Receiver<()>,
    mut p: Pipeline,
    permit: Permit,
    camera: String,
) {
    let _permit = permit;
    counters().live_active.fetch_add(1, Ordering::Relaxed);
    debug!(camera, "live transcoder started");
    let mut errors = 0;
    loop {
        // tokio's channels need no runtime; this thread just parks until either fires.
        let got = futures::executor::block_on(async {
            tokio::select! {
                biased;
                _ = &mut stop => None,
                r = frames.recv() => Some(r),
            }
        });
        match got {
            None | Some(Err(broadcast::error::RecvError::Closed)) => break,
            Some(Err(broadcast::error::RecvError::Lagged(n))) => p.lagged(n),
            Some(Ok(Published {
                session,
                audio,
                media,
            })) => match media {
                Media::Audio(a) => {
                    p.follow(session, audio);
                    p.audio(&a);
                }
                Media::Video(v) => {
                    p.follow(session, audio);
                    match p.push(&v) {
                        Ok(()) => errors = 0,
                        Err(e) => {
                            errors += 1;
                            warn!(camera, error = %format!("{e:#}"), "live transcode: resynchronising");
                            p.resync();
                            if errors >= MAX_ERRORS {
                                warn!(camera, "live transcode keeps failing; stopping it");
                                break;
                            }
                        }
                    }
                }
            },
        }
    }
    counters().live_active.fetch_sub(1, Ordering::Relaxed);
    debug!(camera, skipped = p.skipped, "live transcoder stopped");
}

/// Decoder + encoder of one transcoder, fed one source frame at a time.
struct Pipeline {
    output: Arc<LiveStream>,
    want_key: Arc<AtomicBool>,
    dec: Option<(Arc<VideoParams>, ffmpeg::decoder::Video)>,
    enc: Option<(H264Encoder, Arc<VideoParams>)>,
    /// Dropping frames until the next key frame (after lagging or an error).
    waiting: bool,
    clock: Clock,
    keys: KeyPacer,
    skipped: u64,
    /// The camera session whose frames come in now; a new one starts a new output session.
    source_session: Option<u64>,
    /// The latest picture passed through as it was (H.264), so sound passes as is too.
    passthrough: bool,
    /// Where converted pictures are also kept for a while (a running transcoder's).
    recent: Option<Arc<Mutex<Recent>>>,
}

impl Pipeline {
    fn new(output: Arc<LiveStream>, want_key: Arc<AtomicBool>) -> Self {
        Pipeline {
            output,
            want_key,
            dec: None,
            enc: None,
            waiting: true,
            clock: Clock::default(),
            keys: KeyPacer::default(),
            skipped: 0,
            source_session: None,
            passthrough: false,
            recent: None,
        }
    }

    /// Follows the camera's sessions: each new one (a reconnect, its own sound or none)
    /// starts a new session of the output, whose viewers then start anew at a key frame.
    fn follow(&mut self, session: u64, audio: Option<Arc<AudioParams>>) {
        if self.source_session != Some(session) {
            self.source_session = Some(session);
            self.output.start_session(audio);
            self.want_key.store(true, Ordering::Relaxed);
        }
    }

    /// Republishes one of the camera's sound frames on the output's timeline: as is while
    /// pictures pass through, else moved like the pictures; dropped before any picture.
    fn audio(&mut self, a: &AudioFrame) {
        if self.passthrough {
            self.output.publish_audio(a);
            return;
        }
        let (Some(offset), Some(p)) = (self.clock.offset(), self.output.audio()) else {
            return;
        };
        let shift = offset * i64::from(p.sample_rate) / TIMESCALE;
        self.output.publish_audio(&AudioFrame {
            pts: a.pts + shift,
            ..a.clone()
        });
    }

    fn lagged(&mut self, n: u64) {
        // The frames after a gap reference ones we never saw.
        self.skipped += n;
        self.waiting = true;
    }

    fn resync(&mut self) {
        self.dec = None;
        self.waiting = true;
    }

    fn push(&mut self, f: &VideoFrame) -> anyhow::Result<()> {
        if f.params.codec == VideoCodec::H264 {
            // Nothing to do for a browser; viewers restart on the new parameters. Going
            // back to H.265 later opens fresh codecs.
            self.dec = None;
            self.enc = None;
            self.waiting = true;
            self.passthrough = true;
            self.output.publish(f);
            return Ok(());
        }
        self.passthrough = false;
        if !f.is_key && (self.waiting || self.dec.as_ref().is_none_or(|(p, _)| **p != *f.params)) {
            return Ok(());
        }
        match &mut self.dec {
            Some((p, dec)) if **p == *f.params => {
                if self.waiting {
                    // Forget references from before the gap so the key frame starts clean.
                    dec.flush();
                }
            }
            _ => {
                // Single-threaded: frame threading would hold frames back for latency.
                let dec = super::open_decoder(&f.params.sample_entry, 1)?;
                self.dec = Some((f.params.clone(), dec));
            }
        }
        self.waiting = false;
        // Out of `self` while frames flow to the encoder; an error leaves it closed, which
        // is what the resynchronisation that follows wants anyway.
        let (params, mut dec) = self.dec.take().expect("opened");
        let mut pkt = ffmpeg::Packet::copy(&f.data);
        pkt.set_pts(Some(f.pts));
        if f.is_key {
            pkt.set_flags(ffmpeg::codec::packet::Flags::KEY);
        }
        dec.send_packet(&pkt).context("decoding")?;
        let mut frame = ffmpeg::frame::Video::empty();
        while dec.receive_frame(&mut frame).is_ok() {
            let src = frame.timestamp().or(frame.pts()).unwrap_or(f.pts);
            let pts = self.clock.map(src);
            self.encode(&frame, pts, f.received_ns)?;
        }
        self.dec = Some((params, dec));
        Ok(())
    }

    fn encode(
        &mut self,
        frame: &ffmpeg::frame::Video,
        pts: i64,
        received_ns: i64,
    ) -> anyhow::Result<()> {
        if self.enc.as_ref().is_some_and(|(e, _)| !e.fits(frame)) {
            // New resolution: finish the old encoder; the new one's parameters make
            // every viewer start a new init at its first (key) frame.
            if let Some((mut e, params)) = self.enc.take() {
                e.send_eof()?;
                self.drain(&mut e, &params, received_ns);
            }
        }
        if self.enc.is_none() {
            let e = H264Encoder::open(frame, self.clock.interval, PRESET)?;
            let (width, height) = e.size();
            let params = Arc::new(VideoParams {
                codec: VideoCodec::H264,
                rfc6381: e.rfc6381().to_owned(),
                width,
                height,
                sample_entry: Bytes::copy_from_slice(e.sample_entry()),
            });
            self.keys = KeyPacer::default();
            self.enc = Some((e, params));
        }
        let force = self
            .keys
            .force(pts, self.want_key.swap(false, Ordering::Relaxed));
        let (mut e, params) = self.enc.take().expect("opened");
        let sent = e.send(frame, pts, force);
        super::meter::converted(self.clock.interval);
        self.drain(&mut e, &params, received_ns);
        self.enc = Some((e, params));
        sent
    }

    fn drain(&mut self, e: &mut H264Encoder, params: &Arc<VideoParams>, received_ns: i64) {
        while let Some(p) = e.receive() {
            if p.is_key {
                self.keys.keyed(p.pts);
            }
            let f = VideoFrame {
                pts: p.pts,
                // zerolatency: one frame in, one out, so this is the frame just sent.
                received_ns,
                is_key: p.is_key,
                params: params.clone(),
                data: Bytes::from(p.data),
            };
            self.output.publish(&f);
            if let Some(r) = &self.recent {
                r.lock().unwrap_or_else(|e| e.into_inner()).push(f);
            }
        }
    }
}

/// Maps source times to the encoder's, which must rise strictly: a camera restart can send
/// time backwards or far ahead, and a lag skips frames.
#[derive(Debug)]
struct Clock {
    last_src: Option<i64>,
    last_out: i64,
    /// Recent frame interval (90 kHz): the step when the source's makes no sense, and
    /// the frame rate a new encoder is told.
    interval: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            last_src: None,
            last_out: 0,
            interval: TIMESCALE / 25,
        }
    }
}

impl Clock {
    /// Output time minus source time at the latest picture (90 kHz), once there is one.
    fn offset(&self) -> Option<i64> {
        self.last_src.map(|s| self.last_out - s)
    }

    fn map(&mut self, src: i64) -> i64 {
        let Some(last) = self.last_src.replace(src) else {
            return self.last_out;
        };
        let step = src - last;
        let step = if step <= 0 || step > MAX_STEP_TICKS {
            self.interval
        } else {
            // Only plausible frame intervals (up to 1 s) set the rate; a longer step is a
            // gap, kept so the output's timeline matches the camera's.
            if step <= TIMESCALE {
                self.interval = step;
            }
            step
        };
        self.last_out += step;
        self.last_out
    }
}

/// Decides when to force a key frame: when a viewer joins, and whenever the encoder has
/// gone [`MAX_KEY_TICKS`] without one (its own GOP is in frames, and the frame rate is
/// only an estimate).
#[derive(Debug, Default)]
struct KeyPacer {
    last_key: Option<i64>,
}

impl KeyPacer {
    fn force(&mut self, pts: i64, asked: bool) -> bool {
        asked || self.last_key.is_none_or(|k| pts - k >= MAX_KEY_TICKS)
    }

    fn keyed(&mut self, pts: i64) {
        self.last_key = Some(pts);
    }
}

/// A live viewer that asked for H.264: the camera's own feed while it is H.264, the shared
/// transcoder's once it is H.265.
pub struct H264Viewer {
    mode: Mode,
    stream: Arc<LiveStream>,
    transcoders: Arc<LiveTranscoders>,
    limiter: Limiter,
    camera: String,
}

enum Mode {
    Direct(LiveViewer),
    /// The lease keeps the shared transcoder running while this viewer watches.
    Transcoded {
        viewer: LiveViewer,
        _lease: Lease,
    },
}

impl H264Viewer {
    /// Joins `stream`. If it is known to be H.265 the transcoder is joined (or started) now,
    /// so a full limiter is refused before the WebSocket opens; otherwise that happens when
    /// the first H.265 init shows up.
    pub fn new(
        stream: Arc<LiveStream>,
        transcoders: Arc<LiveTranscoders>,
        limiter: Limiter,
        camera: &str,
    ) -> Result<Self, Busy> {
        let mode = match stream.params() {
            Some(p) if p.codec == VideoCodec::H265 => {
                transcoded(&stream, &transcoders, &limiter, camera)?
            }
            _ => Mode::Direct(stream.subscribe()),
        };
        Ok(H264Viewer {
            mode,
            stream,
            transcoders,
            limiter,
            camera: camera.to_owned(),
        })
    }

    /// Whether this viewer is watching a transcoder (rather than the camera's own H.264).
    pub fn transcoding(&self) -> bool {
        matches!(self.mode, Mode::Transcoded { .. })
    }

    /// The next message; `Ok(None)` when the feed is gone, `Err(Busy)` when the camera
    /// turned out to be H.265 and no transcode slot is free.
    pub async fn next(&mut self) -> Result<Option<LiveMessage>, Busy> {
        loop {
            match &mut self.mode {
                Mode::Direct(v) => match v.next().await {
                    Some(LiveMessage::Init { codec, .. }) if !is_avc(&codec) => {
                        self.mode = transcoded(
                            &self.stream,
                            &self.transcoders,
                            &self.limiter,
                            &self.camera,
                        )?;
                    }
                    m => return Ok(m),
                },
                Mode::Transcoded { viewer, .. } => return Ok(viewer.next().await),
            }
        }
    }

    /// Frames skipped because this viewer lagged.
    pub fn skipped(&self) -> u64 {
        match &self.mode {
            Mode::Direct(v) | Mode::Transcoded { viewer: v, .. } => v.skipped(),
        }
    }
}

fn transcoded(
    stream: &LiveStream,
    transcoders: &LiveTranscoders,
    limiter: &Limiter,
    camera: &str,
) -> Result<Mode, Busy> {
    let lease = transcoders.join(stream, limiter, camera)?;
    // A transcoder that stopped between join and here leaves a closed feed: the viewer
    // ends, as it would had the transcoder failed a moment later.
    let viewer = lease
        .subscribe()
        .unwrap_or_else(|| LiveStream::new().subscribe());
    Ok(Mode::Transcoded {
        viewer,
        _lease: lease,
    })
}

fn is_avc(codec: &str) -> bool {
    codec.starts_with("avc1.") || codec.starts_with("avc3.")
}

/// Live transcoders running now (also `cleannvr_live_transcodes_active`).
pub fn running() -> u64 {
    counters().live_active.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn clock_rises_strictly_and_keeps_real_gaps() {
        let mut c = Clock::default();
        assert_eq!(c.map(1_000_000), 0);
        assert_eq!(c.map(1_003_000), 3000);
        assert_eq!(c.interval, 3000, "learns the frame interval");
        // A lag's gap of 4 s is kept; time going backwards (camera restart) or leaping
        // a day ahead advances by one frame instead.
        assert_eq!(c.map(1_003_000 + 4 * TIMESCALE), 3000 + 4 * TIMESCALE);
        assert_eq!(c.interval, 3000, "a gap is not a frame interval");
        assert_eq!(c.map(5), 6000 + 4 * TIMESCALE);
        assert_eq!(c.map(5), 9000 + 4 * TIMESCALE);
        assert_eq!(c.map(86_400 * TIMESCALE), 12_000 + 4 * TIMESCALE);
    }

    #[test]
    fn key_frames_when_asked_and_at_least_every_two_seconds() {
        let mut k = KeyPacer::default();
        assert!(k.force(0, false), "an encoder starts with one");
        k.keyed(0);
        assert!(!k.force(3600, false));
        assert!(k.force(3600, true), "a joining viewer gets one now");
        k.keyed(3600);
        assert!(!k.force(3600 + MAX_KEY_TICKS - 1, false));
        assert!(k.force(3600 + MAX_KEY_TICKS, false));
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn viewers_share_one_transcoder_which_stops_with_the_last() {
        let limiter = Limiter::new(1);
        let stream = LiveStream::new();
        let reg = LiveTranscoders::default();
        let a = reg.join(&stream, &limiter, "cam").unwrap();
        let b = reg.join(&stream, &limiter, "cam").unwrap();
        assert!(a.shares_with(&b), "one transcoder for both viewers");
        assert_eq!(stream.viewers(), 1, "it reads the feed once");
        // The only permit is taken: another camera's transcoder is refused.
        let other = LiveStream::new();
        assert_eq!(reg.join(&other, &limiter, "other").err(), Some(Busy));
        drop(a);
        assert!(limiter.try_acquire().is_none(), "still running for b");
        drop(b);
        // The thread wakes on the stop signal although no frame arrives, and frees
        // the permit and the feed.
        wait_until("the permit", || limiter.try_acquire().is_some());
        wait_until("the feed to be released", || stream.viewers() == 0);
        let c = reg.join(&stream, &limiter, "cam").unwrap();
        assert!(
            c.subscribe().is_some(),
            "a new transcoder starts afterwards"
        );
    }

    #[tokio::test]
    async fn h264_input_passes_through_without_a_transcoder() {
        let limiter = Limiter::new(1);
        let stream = Arc::new(LiveStream::new());
        let mut v =
            H264Viewer::new(stream.clone(), Default::default(), limiter.clone(), "cam").unwrap();
        let avcc = crate::mp4::avcc_from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce]);
        let params = Arc::new(VideoParams {
            codec: VideoCodec::H264,
            rfc6381: "avc1.42C01E".into(),
            width: 640,
            height: 360,
            sample_entry: Bytes::from(crate::mp4::avc1_sample_entry(640, 360, &avcc)),
        });
        stream.publish(&VideoFrame {
            pts: 0,
            received_ns: 0,
            is_key: true,
            params,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
        });
        let Ok(Some(LiveMessage::Init { codec, .. })) = v.next().await else {
            panic!("no init")
        };
        assert_eq!(codec, "avc1.42C01E");
        assert!(!v.transcoding());
        assert!(limiter.try_acquire().is_some(), "no permit taken");
    }

    /// Source frames of a small H.264 clip, labelled H.265 so the pipeline transcodes them
    /// (it picks the decoder from the sample entry): what matters here is the pipeline's
    /// handling of sizes and key frames, not the source codec, and libx264 is at hand.
    fn source(width: u32, height: u32, pts0: i64) -> Vec<VideoFrame> {
        let clip = crate::demo::encode::encode_clip(&crate::demo::ClipOptions {
            width,
            height,
            fps: 10,
            bitrate_kbps: 200,
            gop_frames: 10,
            seconds: 1,
        })
        .unwrap();
        let avcc = crate::mp4::avcc_from_parameter_sets(&clip.sps, &clip.pps);
        let params = Arc::new(VideoParams {
            codec: VideoCodec::H265,
            rfc6381: "hvc1.1.6.L93.B0".into(),
            width: width as u16,
            height: height as u16,
            sample_entry: Bytes::from(crate::mp4::avc1_sample_entry(
                width as u16,
                height as u16,
                &avcc,
            )),
        });
        clip.frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut data = Vec::new();
                for n in &f.nals {
                    data.extend_from_slice(&(n.len() as u32).to_be_bytes());
                    data.extend_from_slice(n);
                }
                VideoFrame {
                    pts: pts0 + i as i64 * 9000,
                    received_ns: 0,
                    is_key: f.is_key,
                    params: params.clone(),
                    data: Bytes::from(data),
                }
            })
            .collect()
    }

    #[test]
    fn recent_output_serves_clips_from_a_key_frame_and_keeps_about_twenty_seconds() {
        let p = |w| {
            Arc::new(VideoParams {
                codec: VideoCodec::H264,
                rfc6381: "avc1.42C01E".into(),
                width: w,
                height: 360,
                sample_entry: Bytes::new(),
            })
        };
        let (small, large) = (p(640), p(320));
        // 25 fps, a key frame every 2 s, wall time = 1000 s + pts.
        let frame = |i: i64, params: &Arc<VideoParams>| VideoFrame {
            pts: i * 3600,
            received_ns: 1_000_000_000_000 + i * 40_000_000,
            is_key: i % 50 == 0,
            params: params.clone(),
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        };
        let at = |s: f64| 1_000_000_000_000 + (s * 1e9) as i64;
        let mut r = Recent::default();
        for i in 0..1000 {
            r.push(frame(i, &small));
        }
        // 40 s published: kept from the key frame at 18 s (the newest is at 39.96 s).
        assert_eq!(r.frames.front().unwrap().pts, 450 * 3600);
        assert!(r.clip(at(17.9), at(30.0)).is_none(), "before what is kept");
        let c = r.clip(at(31.0), at(35.0)).unwrap();
        assert_eq!(
            c.start_ns(),
            at(30.0),
            "from the key frame before the start"
        );
        assert_eq!(c.frames.len(), 125);
        assert_eq!(c.end_ns(), at(35.0));
        assert!(
            r.clip(at(38.0), at(40.3)).is_none(),
            "beyond the newest frame"
        );
        assert!(r.clip(at(38.0), at(40.1)).is_some(), "within the slack");
        // New parameters: the old pictures go, and nothing is kept before a key frame.
        r.push(frame(1001, &large));
        assert!(r.frames.is_empty());
        r.push(frame(1050, &large));
        assert_eq!(r.frames.len(), 1);
        let mp4 = r.clip(at(42.0), at(42.01)).unwrap().mp4();
        assert_eq!(&mp4[0][4..8], b"ftyp");
        assert_eq!(mp4.len(), 2, "init and one fragment");
    }

    #[tokio::test]
    async fn transcodes_and_a_new_size_restarts_the_encoder_with_a_new_init() {
        let out = Arc::new(LiveStream::new());
        let mut viewer = out.subscribe();
        let mut p = Pipeline::new(out.clone(), Arc::new(AtomicBool::new(false)));
        let small = source(160, 96, 0);
        let large = source(192, 112, 10 * 9000);
        // Joining mid-GOP: dropped until the key frame.
        for f in small[3..].iter().chain(&small).chain(&large) {
            p.push(f).unwrap();
        }
        let mut inits = Vec::new();
        let mut fragments = 0;
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), viewer.next()).await
        {
            match m {
                LiveMessage::Init {
                    codec,
                    width,
                    height,
                    ..
                } => {
                    assert!(codec.starts_with("avc1."), "{codec}");
                    inits.push((width, height));
                }
                LiveMessage::Fragment(_) => fragments += 1,
                LiveMessage::Clock { .. } => {}
            }
        }
        assert_eq!(inits, vec![(160, 96), (192, 112)]);
        assert_eq!(fragments, 20, "every frame from the first key frame on");
    }
}
