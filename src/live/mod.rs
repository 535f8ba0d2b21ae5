//! Live hub: fans each camera's frames out to live viewers as fragmented
//! MP4 (an init segment, then one `moof`+`mdat` per frame for low latency).
//! A camera with AAC audio (G.711 arrives here already converted by ingest) gets a
//! second track; its frames ride in the next picture's fragment ([`audio`]).
//!
//! Owns: the per-camera broadcast and turning frames into MSE-ready bytes.
//! Must never slow ingest or recording: publishing never waits, and a viewer
//! that falls behind skips ahead to the newest key frame still buffered ([`Frames`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::frame::{AudioFrame, AudioParams, VideoFrame, VideoParams};
use crate::mp4::{self, Sample, TrackConfig, TrackKind, TrackRun};

pub mod audio;

use audio::AudioTrack;

/// Pictures a viewer may fall behind by before it lags: 10 s at 25 fps.
const VIDEO_SLACK: usize = 250;

/// Sound frames that share the buffer over the same 10 s: 48 kHz AAC is 47 a second
/// (converted G.711, 8). Counted on top so that sound never eats the pictures' slack.
const AUDIO_SLACK: usize = 470;

/// Items buffered per camera for viewers (tokio rounds it up to 1024). A value is freed
/// as soon as every viewer has read it, so only a lagging viewer keeps this many alive,
/// and never more. One further behind resynchronises at a key frame ([`Frames`]).
const CAPACITY: usize = VIDEO_SLACK + AUDIO_SLACK;

/// Timestamps going back further than this (1 s at 90 kHz) mean the camera restarted
/// its clock; less is B-frame reordering.
const REWIND_TICKS: i64 = 90_000;

/// One camera's live feed.
pub struct LiveStream {
    tx: broadcast::Sender<Published>,
    /// Parameters of the latest frame, so a request can tell the codec before any frame
    /// reaches it (e.g. to refuse an H.264 transcode when none can start).
    params: Mutex<Option<Arc<VideoParams>>>,
    /// Which camera session the frames published now belong to; see [`Self::start_session`].
    session: AtomicU64,
    /// The current session's audio, if live viewers get it ([`audio::servable`]).
    audio: Mutex<Option<Arc<AudioParams>>>,
}

/// A frame as the broadcast carries it: tagged with the camera session it came from,
/// because every session restarts the camera's timestamps, and with that session's audio
/// parameters, so a viewer starting a timeline knows whether it has a sound track.
#[derive(Clone, Debug)]
pub(crate) struct Published {
    pub(crate) session: u64,
    pub(crate) audio: Option<Arc<AudioParams>>,
    pub(crate) media: Media,
}

/// What a camera sends: pictures and, for some, sound.
#[derive(Clone, Debug)]
pub(crate) enum Media {
    Video(VideoFrame),
    /// On the session's audio clock, aligned with video (ingest's `sync`).
    Audio(AudioFrame),
}

impl Default for LiveStream {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveStream {
    /// A feed with no frames and no viewers. The hub makes one per camera stream; the
    /// live transcoder makes its own for its output.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            params: Mutex::new(None),
            session: AtomicU64::new(0),
            audio: Mutex::new(None),
        }
    }

    /// Marks the start of a new camera session (a reconnect): its timestamps start
    /// afresh, so every viewer starts a new timeline (a new init) at its first key frame
    /// instead of waiting for the new timestamps to pass the old ones. `audio` is the
    /// session's sound (AAC as sent or converted from G.711); viewers get it as a second
    /// track when it is [`audio::servable`], else video only.
    pub fn start_session(&self, audio: Option<Arc<AudioParams>>) {
        *self.audio.lock().unwrap_or_else(|e| e.into_inner()) =
            audio.filter(|a| audio::servable(a));
        self.session.fetch_add(1, Ordering::Relaxed);
    }

    /// The current session's audio as live viewers get it, if any.
    pub fn audio(&self) -> Option<Arc<AudioParams>> {
        self.audio.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Hands an audio frame of the current session to every current viewer. Never blocks;
    /// dropped when there is no viewer or the session's audio is not served live.
    pub fn publish_audio(&self, frame: &AudioFrame) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let Some(audio) = self.audio() else { return };
        let _ = self.tx.send(Published {
            session: self.session.load(Ordering::Relaxed),
            audio: Some(audio),
            media: Media::Audio(frame.clone()),
        });
    }

    /// Hands a frame to every current viewer. Never blocks; with no viewer it only
    /// notes the frame's parameters. Returns whether it had viewers.
    pub fn publish(&self, frame: &VideoFrame) -> bool {
        {
            // Uncontended but for the odd request reading it: cheap next to a frame.
            let mut p = self.params.lock().unwrap_or_else(|e| e.into_inner());
            if !p.as_ref().is_some_and(|p| Arc::ptr_eq(p, &frame.params)) {
                *p = Some(frame.params.clone());
            }
        }
        let watched = self.tx.receiver_count() > 0;
        if watched {
            let _ = self.tx.send(Published {
                session: self.session.load(Ordering::Relaxed),
                audio: self.audio(),
                media: Media::Video(frame.clone()),
            });
        }
        watched
    }

    /// Parameters of the latest frame published, if any.
    pub fn params(&self) -> Option<Arc<VideoParams>> {
        self.params
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The raw frames from now on, for a consumer that is not a viewer (the live
    /// transcoder). Like a viewer, it must keep up or see `Lagged`.
    pub(crate) fn frames(&self) -> Frames {
        Frames::new(self.tx.subscribe())
    }

    /// A new viewer; it starts at the next key frame.
    pub fn subscribe(&self) -> LiveViewer {
        LiveViewer {
            rx: Frames::new(self.tx.subscribe()),
            params: None,
            session: None,
            base_pts: 0,
            last_pts: None,
            sequence: 0,
            skipped: 0,
            waiting: true,
            pending: VecDeque::new(),
            audio: None,
        }
    }

    /// Number of connected viewers.
    pub fn viewers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Hub key of a camera's low-resolution sub stream. `@` never occurs in a
/// camera id, so the key cannot collide with a main stream.
pub fn sub_stream_key(camera: &str) -> String {
    format!("{camera}@sub")
}

/// Live feeds of all cameras.
#[derive(Default)]
pub struct LiveHub {
    streams: Mutex<HashMap<String, Arc<LiveStream>>>,
}

impl LiveHub {
    /// The feed of `camera`, created on first use.
    pub fn stream(&self, camera: &str) -> Arc<LiveStream> {
        let mut map = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(camera.to_owned())
            .or_insert_with(|| Arc::new(LiveStream::new()))
            .clone()
    }

    /// Forgets the feed of `camera` (removed from the configuration). Viewers
    /// still holding it see it end once its last publisher is gone.
    pub fn remove(&self, camera: &str) {
        let mut map = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(camera);
    }
}

/// A message for a live viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveMessage {
    /// `ftyp`+`moov`; sent first and again whenever the camera changes parameters.
    /// `codec` is the RFC 6381 string for `MediaSource.addSourceBuffer`.
    Init {
        /// RFC 6381 codec string of every track, comma-separated (`avc1.640028,mp4a.40.2`).
        codec: String,
        /// The audio track's codec string when the init has one (track 2).
        audio: Option<String>,
        /// Picture width.
        width: u16,
        /// Picture height.
        height: u16,
        /// The init segment.
        data: Bytes,
    },
    /// One `moof`+`mdat` holding one picture and the sound that came with it (or, after
    /// half a second of sound without a picture, sound alone).
    Fragment(Bytes),
    /// Sent before each key frame's fragment: the wall time it arrived at, so a viewer
    /// can show the real date and time of the picture (not its own clock's).
    Clock {
        /// The key frame's decode time on the current timeline, 90 kHz.
        dts: u64,
        /// When the frame finished arriving, ms since the epoch.
        wall_ms: i64,
    },
}

/// A camera's broadcast as one consumer reads it. When the consumer falls behind, it
/// resumes at the newest key frame still buffered, not where tokio leaves a lagging
/// receiver: at the oldest item, a whole buffer behind live, where the next key frame is
/// still that far behind and the next hiccup overruns it again. Resuming near live gives a
/// slow consumer (the live transcoder under load) its full slack back after every lag, and
/// its viewers a picture at most a key frame interval old.
pub(crate) struct Frames {
    rx: broadcast::Receiver<Published>,
    /// Read ahead while catching up: the newest key frame and what followed it.
    backlog: VecDeque<Published>,
}

impl Frames {
    fn new(rx: broadcast::Receiver<Published>) -> Self {
        Frames {
            rx,
            backlog: VecDeque::new(),
        }
    }

    /// The next item. After falling behind: `Lagged` with everything dropped (what was
    /// overwritten and what preceded the newest buffered key frame), then that key frame
    /// and what followed it; with no key frame buffered, the live items from now on.
    pub(crate) async fn recv(&mut self) -> Result<Published, broadcast::error::RecvError> {
        if let Some(p) = self.backlog.pop_front() {
            return Ok(p);
        }
        match self.rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => {
                Err(broadcast::error::RecvError::Lagged(n + self.catch_up()))
            }
            r => r,
        }
    }

    /// Reads what is buffered without waiting, keeping the items from the newest key
    /// frame on; returns how many it dropped. At most a buffer's worth is read (the rest
    /// stays queued behind the backlog), so the backlog is bounded like the broadcast.
    fn catch_up(&mut self) -> u64 {
        let mut dropped = 0;
        for _ in 0..2 * CAPACITY {
            match self.rx.try_recv() {
                Ok(p) => {
                    let key = matches!(&p.media, Media::Video(f) if f.is_key);
                    if key {
                        dropped += self.backlog.len() as u64;
                        self.backlog.clear();
                    }
                    if key || !self.backlog.is_empty() {
                        self.backlog.push_back(p);
                    } else {
                        dropped += 1;
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    // Overrun while reading ahead: what follows the backlog is gone.
                    dropped += n + self.backlog.len() as u64;
                    self.backlog.clear();
                }
                // Closed shows on the next `recv`, once the backlog is out.
                Err(_) => break,
            }
        }
        dropped
    }
}

/// One viewer's position in a camera's feed.
pub struct LiveViewer {
    rx: Frames,
    params: Option<Arc<VideoParams>>,
    /// The camera session this viewer's current timeline belongs to.
    session: Option<u64>,
    base_pts: i64,
    last_pts: Option<i64>,
    sequence: u32,
    skipped: u64,
    /// Dropping frames until the next key frame (at start and after lagging).
    waiting: bool,
    /// Messages to send before reading the next frame (a clock and a fragment after an init).
    pending: VecDeque<LiveMessage>,
    /// The current timeline's sound track, if it has one.
    audio: Option<AudioTrack>,
}

impl LiveViewer {
    /// The next message, or `None` when the camera's feed is gone.
    pub async fn next(&mut self) -> Option<LiveMessage> {
        if let Some(m) = self.pending.pop_front() {
            return Some(m);
        }
        loop {
            let published = match self.rx.recv().await {
                Ok(p) => p,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Too slow: what was missed is dropped and the next frame is the
                    // newest key frame buffered (or, failing one, the next to come);
                    // the frames after a gap cannot be decoded.
                    self.skipped += n;
                    self.waiting = true;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let Some(m) = self.accept(published) {
                return Some(m);
            }
        }
    }

    /// Items (pictures and sound) skipped because this viewer lagged.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn accept(&mut self, published: Published) -> Option<LiveMessage> {
        let Published {
            session,
            audio,
            media,
        } = published;
        let frame = match media {
            Media::Video(f) => f,
            Media::Audio(a) => return self.accept_audio(session, &a),
        };
        let params_changed = self.params.as_ref().is_none_or(|p| **p != *frame.params);
        // A new camera session restarts its clock; so may a camera that resets its
        // timestamps mid-session. Either way the old timeline cannot continue: a
        // decode time clamped to the old base would freeze the picture until the new
        // timestamps caught up with the old ones (hours, for a camera up for days).
        let new_timeline = params_changed
            || self.session != Some(session)
            || self.last_pts.is_some_and(|p| frame.pts + REWIND_TICKS < p);
        if new_timeline && !frame.is_key {
            self.waiting = true;
        }
        if self.waiting && !frame.is_key {
            return None;
        }
        let mut init = None;
        if new_timeline {
            self.audio = audio.map(|a| AudioTrack::new(a, frame.pts));
            let mut tracks = vec![video_track(&frame.params)];
            let mut codec = frame.params.rfc6381.clone();
            if let Some(a) = &self.audio {
                tracks.push(a.config());
                codec = format!("{codec},{}", a.codec());
            }
            let mut data = Vec::new();
            mp4::write_init(&tracks, &mut data);
            init = Some(LiveMessage::Init {
                codec,
                audio: self.audio.as_ref().map(|a| a.codec().to_owned()),
                width: frame.params.width,
                height: frame.params.height,
                data: Bytes::from(data),
            });
            self.params = Some(frame.params.clone());
            self.session = Some(session);
            self.base_pts = frame.pts;
            self.sequence = 0;
            self.last_pts = None;
        }
        // After a lag the decode timeline simply continues at the key
        // frame's own time; the skipped span shows as a jump, not a stall.
        self.waiting = false;
        // A frame's duration is not known until the next one arrives; for
        // latency, use the previous interval rather than holding a frame back.
        let duration = self
            .last_pts
            .map(|p| (frame.pts - p).clamp(1, 90_000) as u32)
            .unwrap_or(3600);
        self.last_pts = Some(frame.pts);
        let dts = (frame.pts - self.base_pts).max(0) as u64;
        let sound = self.audio.as_mut().and_then(|a| {
            a.picture_reaches(dts + u64::from(duration));
            a.take()
        });
        let picture = Picture {
            dts,
            duration,
            is_key: frame.is_key,
            data: &frame.data,
        };
        let frag = fragment(&mut self.sequence, Some(picture), sound);
        // In order: the init, the key frame's clock, the fragment.
        self.pending.extend(init);
        if frame.is_key {
            self.pending.push_back(LiveMessage::Clock {
                dts,
                wall_ms: frame.received_ns.div_euclid(1_000_000),
            });
        }
        self.pending.push_back(LiveMessage::Fragment(frag));
        self.pending.pop_front()
    }

    /// Sound goes on the current timeline and out with the next picture, so each message
    /// stays one fragment; half a second of it without a picture goes out alone.
    fn accept_audio(&mut self, session: u64, a: &AudioFrame) -> Option<LiveMessage> {
        if self.waiting || self.session != Some(session) {
            return None;
        }
        let track = self.audio.as_mut()?;
        track.push(a);
        if track.pending_ticks() < track.rate() / 2 {
            return None;
        }
        let sound = track.take();
        Some(LiveMessage::Fragment(fragment(
            &mut self.sequence,
            None,
            sound,
        )))
    }
}

/// One picture for a fragment: its decode time and duration (90 kHz), key or not, data.
struct Picture<'a> {
    dts: u64,
    duration: u32,
    is_key: bool,
    data: &'a [u8],
}

/// Track 1 of an init segment holding `p`'s pictures (90 kHz).
pub(crate) fn video_track(p: &VideoParams) -> TrackConfig {
    TrackConfig {
        track_id: 1,
        kind: TrackKind::Video {
            width: p.width,
            height: p.height,
        },
        timescale: 90_000,
        sample_entry: p.sample_entry.to_vec(),
    }
}

/// One `moof`+`mdat`: the picture (track 1) then the sound (track 2, decode time of its
/// first sample, samples, their data), either of which may be absent.
fn fragment(
    sequence: &mut u32,
    picture: Option<Picture<'_>>,
    sound: Option<(u64, Vec<Sample>, Vec<Bytes>)>,
) -> Bytes {
    *sequence += 1;
    let video_sample = picture.as_ref().map(|p| {
        [Sample {
            duration: p.duration,
            size: p.data.len() as u32,
            is_sync: p.is_key,
            composition_offset: 0,
        }]
    });
    let mut runs = Vec::with_capacity(2);
    if let (Some(p), Some(s)) = (&picture, &video_sample) {
        runs.push(TrackRun {
            track_id: 1,
            base_decode_time: p.dts,
            samples: s,
        });
    }
    if let Some((dts, samples, _)) = &sound {
        runs.push(TrackRun {
            track_id: audio::TRACK_ID,
            base_decode_time: *dts,
            samples,
        });
    }
    let size = picture.as_ref().map_or(0, |p| p.data.len())
        + sound
            .as_ref()
            .map_or(0, |(_, _, d)| d.iter().map(Bytes::len).sum());
    let mut out = Vec::with_capacity(size + 200);
    mp4::write_fragment_header(*sequence, &runs, &mut out);
    if let Some(p) = &picture {
        out.extend_from_slice(p.data);
    }
    for d in sound.iter().flat_map(|(_, _, d)| d) {
        out.extend_from_slice(d);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(width: u16) -> Arc<VideoParams> {
        let avcc = mp4::avcc_from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce]);
        Arc::new(VideoParams {
            codec: crate::frame::VideoCodec::H264,
            rfc6381: "avc1.42C01E".into(),
            width,
            height: 360,
            sample_entry: Bytes::from(mp4::avc1_sample_entry(width, 360, &avcc)),
        })
    }

    fn frame(i: i64, gop: i64, p: &Arc<VideoParams>) -> VideoFrame {
        VideoFrame {
            pts: 1000 + i * 3600,
            received_ns: 0,
            is_key: i % gop == 0,
            params: p.clone(),
            data: Bytes::from(vec![i as u8; 50]),
        }
    }

    /// The next init or fragment, skipping clock messages (tested on their own).
    async fn media(v: &mut LiveViewer) -> Option<LiveMessage> {
        loop {
            match v.next().await {
                Some(LiveMessage::Clock { .. }) => continue,
                m => return m,
            }
        }
    }

    #[tokio::test]
    async fn each_key_frame_is_preceded_by_its_wall_clock() {
        let stream = LiveStream::new();
        let p = params(640);
        let mut v = stream.subscribe();
        for i in 0..6 {
            let mut f = frame(i, 3, &p);
            f.received_ns = 1_700_000_000_000_000_000 + i * 40_000_000 + 123_456;
            stream.publish(&f);
        }
        let mut got = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), v.next()).await
        {
            got.push(match m {
                LiveMessage::Init { .. } => "init".to_owned(),
                LiveMessage::Fragment(_) => "frag".to_owned(),
                LiveMessage::Clock { dts, wall_ms } => format!("clock {dts} {wall_ms}"),
            });
        }
        assert_eq!(
            got,
            [
                "init",
                "clock 0 1700000000000",
                "frag",
                "frag",
                "frag",
                // Frame 3: three frames (10 800 ticks, 120 ms) after the first.
                "clock 10800 1700000000120",
                "frag",
                "frag",
                "frag",
            ]
        );
    }

    /// Parses a single-fragment message back with our scanner.
    fn decode_time(init: &Bytes, frag: &Bytes) -> (u64, bool) {
        let mut file = init.to_vec();
        file.extend_from_slice(frag);
        let s = mp4::scan(std::io::Cursor::new(file)).unwrap();
        let run = &s.fragments[0].runs[0];
        (run.base_decode_time, run.first_is_sync)
    }

    #[tokio::test]
    async fn viewer_starts_at_key_frame_with_init_then_fragments() {
        let hub = LiveHub::default();
        let stream = hub.stream("a");
        let p = params(640);
        stream.publish(&frame(0, 10, &p)); // nobody listening: dropped
        let mut v = stream.subscribe();
        for i in 3..25 {
            stream.publish(&frame(i, 10, &p));
        }
        let Some(LiveMessage::Init {
            codec,
            width,
            data: init,
            ..
        }) = media(&mut v).await
        else {
            panic!()
        };
        assert_eq!(codec, "avc1.42C01E");
        assert_eq!(width, 640);
        let Some(LiveMessage::Fragment(f)) = media(&mut v).await else {
            panic!()
        };
        assert_eq!(
            decode_time(&init, &f),
            (0, true),
            "starts at frame 10, a key frame"
        );
        let Some(LiveMessage::Fragment(f)) = media(&mut v).await else {
            panic!()
        };
        assert_eq!(decode_time(&init, &f), (3600, false));
    }

    #[tokio::test]
    async fn lagging_viewer_skips_to_the_newest_key_frame_and_never_blocks_publisher() {
        let hub = LiveHub::default();
        let stream = hub.stream("a");
        let p = params(640);
        let mut v = stream.subscribe();
        // Far more than CAPACITY frames while the viewer reads nothing: publish must not block.
        let n = CAPACITY as i64 * 3;
        for i in 0..n {
            stream.publish(&frame(i, 25, &p));
        }
        let mut msgs = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), media(&mut v)).await
        {
            msgs.push(m);
        }
        let LiveMessage::Init { data: init, .. } = &msgs[0] else {
            panic!()
        };
        let LiveMessage::Fragment(first) = &msgs[1] else {
            panic!()
        };
        assert!(decode_time(init, first).1, "resumes on a key frame");
        // The newest one buffered, not the first after the oldest frame kept: the viewer
        // is a key frame interval behind live, not a whole buffer.
        let newest_key = (n - 1) / 25 * 25;
        assert_eq!(msgs.len() - 1, (n - newest_key) as usize, "fragments");
        assert_eq!(mdat_byte(first), newest_key as u8);
        assert_eq!(v.skipped(), newest_key as u64);
    }

    /// The first byte of a single-fragment message's `mdat` (test frames repeat one byte).
    fn mdat_byte(frag: &Bytes) -> u8 {
        let moof = u32::from_be_bytes(frag[..4].try_into().unwrap()) as usize;
        assert_eq!(&frag[moof + 4..moof + 8], b"mdat");
        frag[moof + 8]
    }

    /// `seconds` of a 25 fps camera (a key frame a second) with 48 kHz AAC, published in
    /// the order a camera sends them; returns how many items that is.
    fn publish_with_sound(stream: &LiveStream, seconds: i64) -> usize {
        let p = params(640);
        let mut items = 0;
        let mut next_audio = 0i64;
        for i in 0..seconds * 25 {
            let f = frame(i, 25, &p);
            stream.publish(&f);
            items += 1;
            while (next_audio + 1024) * 90_000 / 48_000 <= f.pts - 1000 + 3600 {
                stream.publish_audio(&AudioFrame {
                    pts: 1000 * 48_000 / 90_000 + next_audio,
                    duration: 1024,
                    data: Bytes::from_static(&[0x21, 0x10, 0x04]),
                });
                next_audio += 1024;
                items += 1;
            }
        }
        items
    }

    /// Each item `frames` has until it goes quiet; `None` marks a lag.
    async fn read_all(frames: &mut Frames) -> Vec<Option<Published>> {
        let mut got = Vec::new();
        while let Ok(r) =
            tokio::time::timeout(std::time::Duration::from_millis(50), frames.recv()).await
        {
            match r {
                Ok(p) => got.push(Some(p)),
                Err(broadcast::error::RecvError::Lagged(_)) => got.push(None),
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        got
    }

    /// Sound (47 items a second) must not shorten how far behind the pictures a consumer
    /// may fall: 10 s of pictures with their sound stay buffered for it.
    #[tokio::test]
    async fn sound_does_not_eat_the_pictures_slack() {
        let stream = LiveStream::new();
        stream.start_session(Some(aac(48_000)));
        let mut frames = stream.frames();
        let items = publish_with_sound(&stream, 10);
        let got = read_all(&mut frames).await;
        assert!(got.iter().all(Option::is_some), "no lag in 10 s");
        assert_eq!(got.len(), items);
    }

    /// The live transcoder under load: slower than real time, it falls a buffer behind
    /// and lags. It must resume at the newest key frame buffered, with its sound, so it
    /// has the whole buffer as slack again; tokio alone leaves it at the oldest item, where
    /// (skipping to the next key frame) it stays seconds behind live and lags again soon.
    #[tokio::test]
    async fn a_lagging_consumer_resumes_at_the_newest_key_frame_with_its_sound() {
        let stream = LiveStream::new();
        stream.start_session(Some(aac(48_000)));
        let mut frames = stream.frames();
        // 30 s unread: three buffers' worth.
        let items = publish_with_sound(&stream, 30);
        let got = read_all(&mut frames).await;
        assert!(got[0].is_none(), "lagged first");
        assert!(got[1..].iter().all(Option::is_some), "then no more lag");
        let Some(Published {
            media: Media::Video(first),
            ..
        }) = &got[1]
        else {
            panic!("resumes on a picture")
        };
        // The last second began at frame 725, the newest key frame.
        assert!(first.is_key);
        assert_eq!(first.pts, frame(725, 25, &params(640)).pts);
        let videos = got[1..]
            .iter()
            .filter(|p| matches!(p.as_ref().unwrap().media, Media::Video(_)))
            .count();
        assert_eq!(videos, 25, "the last second's pictures");
        let sounds = got.len() - 1 - videos;
        assert!(sounds >= 46, "and its sound: {sounds} frames");
        assert!(got.len() < items);
    }

    #[tokio::test]
    async fn parameter_change_sends_new_init() {
        let hub = LiveHub::default();
        let stream = hub.stream("a");
        let mut v = stream.subscribe();
        stream.publish(&frame(0, 5, &params(640)));
        stream.publish(&frame(1, 5, &params(640)));
        stream.publish(&frame(5, 5, &params(1280)));
        let kinds: Vec<bool> = [
            media(&mut v).await.unwrap(),
            media(&mut v).await.unwrap(),
            media(&mut v).await.unwrap(),
            media(&mut v).await.unwrap(),
            media(&mut v).await.unwrap(),
        ]
        .iter()
        .map(|m| matches!(m, LiveMessage::Init { .. }))
        .collect();
        assert_eq!(kinds, vec![true, false, false, true, false]);
    }

    /// Same size, other SPS: viewers still get a new init, or their decoder
    /// would apply the old parameter sets to the new frames.
    #[tokio::test]
    async fn sps_change_at_the_same_size_sends_new_init() {
        let hub = LiveHub::default();
        let stream = hub.stream("a");
        let mut v = stream.subscribe();
        let a = params(640);
        let mut b = (*a).clone();
        b.rfc6381 = "avc1.4D401E".into();
        let mut entry = b.sample_entry.to_vec();
        *entry.last_mut().unwrap() ^= 0xff;
        b.sample_entry = entry.into();
        let b = std::sync::Arc::new(b);
        stream.publish(&frame(0, 5, &a));
        stream.publish(&frame(5, 5, &b));
        let mut inits = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), media(&mut v)).await
        {
            if let LiveMessage::Init { codec, data, .. } = m {
                inits.push((codec, data));
            }
        }
        assert_eq!(inits.len(), 2, "one init per parameter set");
        for ((codec, data), p) in inits.iter().zip([&a, &b]) {
            assert_eq!(codec, &p.rfc6381);
            let carries = data
                .windows(p.sample_entry.len())
                .any(|w| w == &p.sample_entry[..]);
            assert!(carries, "the init for {codec} carries its own sample entry");
        }
    }

    #[tokio::test]
    async fn new_camera_session_starts_a_new_timeline() {
        let hub = LiveHub::default();
        let stream = hub.stream("a");
        let p = params(640);
        let mut v = stream.subscribe();
        for i in 0..12 {
            stream.publish(&frame(i, 5, &p));
        }
        // The camera reconnects with the same parameters and a clock of its own: here
        // ahead of the old one, so only the session mark (not a rewind) can tell.
        stream.start_session(None);
        for i in 2001..2012 {
            stream.publish(&frame(i, 5, &p));
        }
        let mut msgs = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), media(&mut v)).await
        {
            msgs.push(m);
        }
        let inits: Vec<usize> = msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m, LiveMessage::Init { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(inits.len(), 2, "one init per session: {inits:?}");
        let (LiveMessage::Init { data: init, .. }, LiveMessage::Fragment(first)) =
            (&msgs[inits[1]], &msgs[inits[1] + 1])
        else {
            panic!("init then fragment")
        };
        // The new session's first key frame (i = 2005) starts the new timeline at 0.
        assert_eq!(decode_time(init, first), (0, true));
        let LiveMessage::Fragment(second) = &msgs[inits[1] + 2] else {
            panic!()
        };
        assert_eq!(decode_time(init, second), (3600, false));
    }

    fn aac(rate: u32) -> Arc<AudioParams> {
        // AudioSpecificConfig: AAC-LC, 8 kHz (index 11), mono.
        let asc = ((2u16 << 11) | (11 << 7) | (1 << 3)).to_be_bytes();
        Arc::new(AudioParams {
            rfc6381: "mp4a.40.2".into(),
            sample_rate: rate,
            channels: 1,
            sample_entry: Bytes::from(mp4::mp4a_sample_entry(rate, 1, &asc, 0)),
        })
    }

    /// Every init and fragment until the feed goes quiet, as one file.
    async fn drain(v: &mut LiveViewer) -> (Vec<LiveMessage>, Vec<u8>) {
        let mut msgs = Vec::new();
        let mut file = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), media(v)).await
        {
            match &m {
                LiveMessage::Init { data, .. } | LiveMessage::Fragment(data) => {
                    file.extend_from_slice(data)
                }
                LiveMessage::Clock { .. } => {}
            }
            msgs.push(m);
        }
        (msgs, file)
    }

    #[tokio::test]
    async fn a_camera_with_sound_gets_a_second_track_interleaved_with_the_pictures() {
        let stream = LiveStream::new();
        stream.start_session(Some(aac(8000)));
        let p = params(640);
        let mut v = stream.subscribe();
        // 2 s at 25 fps; 8 kHz sound in 1024-sample frames, published as it would arrive.
        let mut next_audio = 0i64;
        for i in 0..50 {
            let f = frame(i, 25, &p);
            stream.publish(&f);
            while (next_audio + 1024) * 90_000 / 8000 <= f.pts - 1000 + 3600 {
                stream.publish_audio(&AudioFrame {
                    pts: 1000 * 8000 / 90_000 + next_audio,
                    duration: 1024,
                    data: Bytes::from_static(&[0x21, 0x10, 0x04]),
                });
                next_audio += 1024;
            }
        }
        let (msgs, file) = drain(&mut v).await;
        let LiveMessage::Init { codec, audio, .. } = &msgs[0] else {
            panic!("init first")
        };
        assert_eq!(codec, "avc1.42C01E,mp4a.40.2");
        assert_eq!(audio.as_deref(), Some("mp4a.40.2"));
        let s = mp4::scan(std::io::Cursor::new(file)).unwrap();
        let tracks: Vec<_> = s.tracks.iter().map(|t| (t.track_id, &t.handler)).collect();
        assert_eq!(tracks, [(1, b"vide"), (2, b"soun")]);
        assert_eq!(s.fragments.len(), 50, "one fragment per picture");
        let audio_end = s
            .fragments
            .iter()
            .flat_map(|f| &f.runs)
            .filter(|r| r.track_id == 2)
            .map(|r| r.base_decode_time + r.duration)
            .max()
            .unwrap();
        let mut at = 0;
        for r in s
            .fragments
            .iter()
            .flat_map(|f| &f.runs)
            .filter(|r| r.track_id == 2)
        {
            assert_eq!(r.base_decode_time, at, "gapless sound");
            at += r.duration;
        }
        // The sound reaches as far as the pictures do, within a frame.
        assert!((audio_end as i64 - 2 * 8000).abs() <= 1024, "{audio_end}");
    }

    #[tokio::test]
    async fn a_camera_that_stops_sending_sound_never_holds_the_picture() {
        let stream = LiveStream::new();
        stream.start_session(Some(aac(8000)));
        let p = params(640);
        let mut v = stream.subscribe();
        stream.publish(&frame(0, 25, &p));
        stream.publish_audio(&AudioFrame {
            pts: 1000 * 8000 / 90_000,
            duration: 1024,
            data: Bytes::from_static(&[1]),
        });
        // Then 4 s of pictures and not a sound.
        for i in 1..100 {
            stream.publish(&frame(i, 25, &p));
        }
        let (_, file) = drain(&mut v).await;
        let s = mp4::scan(std::io::Cursor::new(file)).unwrap();
        let end = |track| {
            s.fragments
                .iter()
                .flat_map(|f| &f.runs)
                .filter(|r| r.track_id == track)
                .map(|r| r.base_decode_time + r.duration)
                .max()
                .unwrap()
        };
        let (video_s, audio_s) = (end(1) as f64 / 90_000.0, end(2) as f64 / 8000.0);
        assert!(
            video_s - audio_s < 1.2,
            "silence keeps the sound within a second of the picture: video {video_s} s, audio {audio_s} s"
        );
    }

    #[tokio::test]
    async fn sound_that_live_viewers_cannot_get_leaves_a_video_only_init() {
        let stream = LiveStream::new();
        let mut he = (*aac(8000)).clone();
        he.rfc6381 = "mp4a.40.5".into();
        stream.start_session(Some(Arc::new(he)));
        assert!(stream.audio().is_none());
        let mut v = stream.subscribe();
        stream.publish(&frame(0, 25, &params(640)));
        let Some(LiveMessage::Init { codec, audio, .. }) = media(&mut v).await else {
            panic!()
        };
        assert_eq!((codec.as_str(), audio), ("avc1.42C01E", None));
    }

    #[tokio::test]
    async fn timestamps_jumping_back_start_a_new_timeline_but_reordering_does_not() {
        let stream = LiveStream::new();
        let p = params(640);
        let mut v = stream.subscribe();
        let at = |pts: i64, key: bool| VideoFrame {
            pts,
            received_ns: 0,
            is_key: key,
            params: p.clone(),
            data: Bytes::from_static(&[0; 8]),
        };
        stream.publish(&at(900_000, true));
        stream.publish(&at(903_600, false));
        // B-frame style reordering: a little back, same timeline.
        stream.publish(&at(900_100, false));
        // A camera clock reset mid-session: far back, new init at the next key frame.
        stream.publish(&at(100, false));
        stream.publish(&at(3_700, true));
        let mut kinds = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), media(&mut v)).await
        {
            kinds.push(matches!(m, LiveMessage::Init { .. }));
        }
        assert_eq!(kinds, vec![true, false, false, false, true, false]);
    }
}
