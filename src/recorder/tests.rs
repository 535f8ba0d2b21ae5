//! Segment-cutting rules, driven with synthetic frames (no decoding needed:
//! these check boundaries, durations and the index, not pixels; the
//! end-to-end tests decode real streams).

use super::*;
use crate::frame::{VideoCodec, VideoParams};
use crate::mp4;

const SEC: i64 = 90_000;
const T0: i64 = 1_800_000_000 * NS_PER_SEC;

fn params(width: u16) -> Arc<VideoParams> {
    let avcc =
        mp4::avcc_from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e, 0xd9], &[0x68, 0xce, 0x3c, 0x80]);
    Arc::new(VideoParams {
        codec: VideoCodec::H264,
        rfc6381: "avc1.42C01E".into(),
        width,
        height: 360,
        sample_entry: Bytes::from(mp4::avc1_sample_entry(width, 360, &avcc)),
    })
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    rec: Recorder,
}

fn rig(segment_seconds: u32) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let rec = Recorder::new(
        RecorderSettings {
            camera: "cam".into(),
            segment_seconds,
        },
        store.clone(),
        Default::default(),
        Arc::new(Notify::new()),
    );
    Rig {
        _dir: dir,
        store,
        rec,
    }
}

/// Feeds `secs` seconds of 25 fps video with a key frame every `gop` frames,
/// the first one received at wall time `T0`.
fn feed(rec: &mut Recorder, p: &Arc<VideoParams>, pts0: i64, frames: i64, gop: i64) {
    feed_at(rec, p, pts0, T0, frames, gop);
}

/// Like `feed`, with the first frame received at wall time `wall0`.
fn feed_at(rec: &mut Recorder, p: &Arc<VideoParams>, pts0: i64, wall0: i64, frames: i64, gop: i64) {
    for i in 0..frames {
        let pts = pts0 + i * 3600;
        rec.handle(IngestEvent::Video(VideoFrame {
            pts,
            received_ns: wall0 + (pts - pts0) * NS_PER_SEC / SEC,
            is_key: i % gop == 0,
            params: p.clone(),
            data: Bytes::from(vec![0u8; 100 + (i % 7) as usize]),
        }));
    }
}

fn rows(store: &Store) -> Vec<crate::store::SegmentRecord> {
    store.iter_camera("cam").map(|r| r.unwrap()).collect()
}

#[test]
fn segments_roll_on_key_frames_without_gaps() {
    let mut r = rig(4);
    let p = params(640);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    feed(&mut r.rec, &p, 1000, 25 * 20, 25);
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    assert!(rows.len() >= 4, "20 s at 4 s segments: {}", rows.len());
    let total: u64 = rows.iter().map(|r| r.frames).sum();
    assert_eq!(total, 500, "every frame is in exactly one segment");
    for w in rows.windows(2) {
        // Contiguous within a millisecond (file names carry ms).
        assert!((w[1].start_ns - w[0].end_ns).abs() <= 1_000_000, "{w:?}");
    }
    for row in &rows {
        assert_eq!(row.frames % 25, 0, "segments start on key frames: {row:?}");
        assert!(row.end_ns - row.start_ns <= 7 * NS_PER_SEC);
        // The file agrees with its row.
        let scanned = mp4::scan_path(&r.store.file_path(row)).unwrap();
        assert!(!scanned.is_torn());
        assert_eq!(scanned.valid_len, row.bytes);
        assert_eq!(scanned.fragments.len(), row.keyframes.len());
        assert!(scanned.fragments.iter().all(|f| f.runs[0].first_is_sync));
    }
}

#[test]
fn timestamp_jump_starts_new_segment_on_wall_time() {
    let mut r = rig(60);
    let p = params(640);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    // Two seconds from T0 on wall time, camera time from 0.
    feed_at(&mut r.rec, &p, 0, T0, 50, 25);
    // The camera clock jumps forward by 3 hours (NTP correction) while wall
    // time moves on normally: two more seconds from T0 + 2 s.
    feed_at(&mut r.rec, &p, 3 * 3600 * SEC, T0 + 2 * NS_PER_SEC, 50, 25);
    // Then back by an hour, one second of frames from T0 + 4 s.
    feed_at(&mut r.rec, &p, 2 * 3600 * SEC, T0 + 4 * NS_PER_SEC, 25, 25);
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    // Each segment is placed at the wall time its frames arrived, not hours
    // off, and lasts as long as its frames.
    for (row, wall_s, secs) in [(&rows[0], 0, 2), (&rows[1], 2, 2), (&rows[2], 4, 1)] {
        let want = T0 + wall_s * NS_PER_SEC;
        assert!(
            (row.start_ns - want).abs() < NS_PER_SEC / 2,
            "segment at {} s off wall time: {rows:#?}",
            (row.start_ns - want) as f64 / 1e9
        );
        let dur = row.end_ns - row.start_ns;
        assert!(
            (dur - secs * NS_PER_SEC).abs() <= NS_PER_SEC / 10,
            "segment lasts {dur} ns, not {secs} s: {rows:#?}"
        );
    }
}

#[test]
fn parameter_change_and_gap_cut_segments() {
    let mut r = rig(60);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    feed(&mut r.rec, &params(640), 0, 50, 25);
    feed(&mut r.rec, &params(1280), 50 * 3600, 50, 25);
    r.rec.handle(IngestEvent::Gap);
    feed(&mut r.rec, &params(1280), 200 * 3600, 50, 25);
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    let widths: Vec<u16> = rows.iter().map(|r| r.width).collect();
    assert_eq!(widths, vec![640, 1280, 1280]);
}

/// Same width and height, other SPS (a camera's bitrate or profile setting
/// changed): a new segment whose init carries the new parameter sets, since
/// frames coded against one SPS do not decode against another.
#[test]
fn sps_change_at_the_same_size_cuts_a_segment_with_the_new_init() {
    let mut r = rig(60);
    let main_profile = {
        let avcc = mp4::avcc_from_parameter_sets(
            &[0x67, 0x4d, 0x40, 0x1e, 0x95],
            &[0x68, 0xee, 0x3c, 0x80],
        );
        Arc::new(VideoParams {
            codec: VideoCodec::H264,
            rfc6381: "avc1.4D401E".into(),
            width: 640,
            height: 360,
            sample_entry: Bytes::from(mp4::avc1_sample_entry(640, 360, &avcc)),
        })
    };
    let baseline = params(640);
    assert_eq!(
        (baseline.width, baseline.height),
        (main_profile.width, main_profile.height)
    );
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    feed(&mut r.rec, &baseline, 0, 50, 25);
    feed(&mut r.rec, &main_profile, 50 * 3600, 50, 25);
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (row, want) in rows.iter().zip([&baseline, &main_profile]) {
        assert_eq!(row.frames, 50);
        let path = r.store.file_path(row);
        let mut f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let init = mp4::read_init(&mut f, len).unwrap();
        assert_eq!(
            init.video().unwrap().sample_entry,
            want.sample_entry.to_vec(),
            "{} carries the parameter sets its frames were coded with",
            path.display()
        );
    }
}

#[test]
fn frames_before_first_key_frame_are_skipped() {
    let mut r = rig(60);
    let p = params(640);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    // Joins 10 frames into a GOP: those frames cannot be decoded.
    for i in 0..10 {
        r.rec.handle(IngestEvent::Video(VideoFrame {
            pts: i * 3600,
            received_ns: T0,
            is_key: false,
            params: p.clone(),
            data: Bytes::from_static(&[9; 10]),
        }));
    }
    assert!(r.rec.seg.is_none());
    feed(&mut r.rec, &p, 10 * 3600, 50, 25);
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].frames, 50);
}

#[test]
fn a_long_wait_for_a_key_frame_is_shown_in_the_status_and_nothing_is_written() {
    let mut r = rig(2);
    let p = params(640);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    let no_key = |r: &Rig| r.rec.status.lock().unwrap().no_key_frame_since_ns;
    // A camera joined mid-GOP with a one-minute key-frame interval: 30 s of
    // frames that cannot be decoded.
    for i in 0..750 {
        r.rec.handle(IngestEvent::Video(VideoFrame {
            pts: i * 3600,
            received_ns: T0 + i * 40_000_000,
            is_key: false,
            params: p.clone(),
            data: Bytes::from_static(&[9; 10]),
        }));
        if i == 200 {
            // 8 s in: not yet worth a warning.
            assert_eq!(no_key(&r), None);
        }
    }
    assert_eq!(no_key(&r), Some(T0));
    assert!(r.rec.seg.is_none());
    assert!(rows(&r.store).is_empty());
    // The key frame comes: recording starts there and the warning goes.
    feed_at(&mut r.rec, &p, 750 * 3600, T0 + 30 * NS_PER_SEC, 100, 25);
    assert_eq!(no_key(&r), None);
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    assert_eq!(rows.iter().map(|r| r.frames).sum::<u64>(), 100, "{rows:?}");
    assert!(rows[0].start_ns >= T0 + 30 * NS_PER_SEC, "{rows:?}");
}

thread_local! {
    /// This thread's captured log, while `capture_log` runs on it.
    static CAPTURE: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Writes into this thread's `CAPTURE`, or nowhere.
struct ThreadLog;

impl std::io::Write for ThreadLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(v) = c.borrow_mut().as_mut() {
                v.extend_from_slice(b);
            }
        });
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `f` logs through `tracing` on this thread. A scoped subscriber
/// (`with_default`) raced with other test threads that hit the same callsite
/// first with none, and then captured nothing (2 of 4 parallel runs): one
/// global subscriber, installed once and never dropped, takes every thread's
/// events and keeps only those of a thread that is capturing.
fn capture_log(f: impl FnOnce()) -> String {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadLog)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the unit tests");
    });
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    f();
    let text = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    String::from_utf8(text).unwrap()
}

/// `n` non-key frames at 25 fps from `pts0`, received from `wall0` on.
fn no_key_frames(r: &mut Rig, p: &Arc<VideoParams>, pts0: i64, wall0: i64, n: i64) {
    for i in 0..n {
        r.rec.handle(IngestEvent::Video(VideoFrame {
            pts: pts0 + i * 3600,
            received_ns: wall0 + i * 40_000_000,
            is_key: false,
            params: p.clone(),
            data: Bytes::from_static(&[9; 10]),
        }));
    }
}

#[test]
fn the_no_key_frame_warning_repeats_every_10_s_of_waiting() {
    let text = capture_log(|| {
        let mut r = rig(2);
        let p = params(640);
        r.rec.handle(IngestEvent::SessionStarted { audio: None });
        // 45 s of frames without a key frame: warned at 10, 20, 30 and 40 s.
        no_key_frames(&mut r, &p, 0, T0, 45 * 25);
        // A key frame ends the wait; a gap starts a new one, counted afresh.
        feed_at(&mut r.rec, &p, 45 * SEC, T0 + 45 * NS_PER_SEC, 25, 25);
        r.rec.handle(IngestEvent::Gap);
        no_key_frames(&mut r, &p, 46 * SEC, T0 + 46 * NS_PER_SEC, 15 * 25);
        r.rec.handle(IngestEvent::SessionEnded);
    });
    let waits: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("no key frame for 10 s"))
        .collect();
    let said: Vec<&str> = waits
        .iter()
        .map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("waited_s="))
                .unwrap_or_else(|| panic!("{l}"))
        })
        .collect();
    assert_eq!(
        said,
        [
            "waited_s=10",
            "waited_s=20",
            "waited_s=30",
            "waited_s=40",
            "waited_s=10"
        ],
        "{text}"
    );
}

#[test]
fn long_gop_is_flushed_every_second() {
    let mut r = rig(60);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    feed(&mut r.rec, &params(640), 0, 250, 250);
    r.rec.handle(IngestEvent::SessionEnded);
    let row = &rows(&r.store)[0];
    let scanned = mp4::scan_path(&r.store.file_path(row)).unwrap();
    assert!(scanned.fragments.len() >= 9, "{}", scanned.fragments.len());
    assert_eq!(row.keyframes.len(), 1);
}

#[test]
fn stagger_spreads_rollover_phase() {
    let a = rig(60);
    let mut b = rig(60);
    b.rec.settings.camera = "other".into();
    let ra = a.rec.roll_at(T0);
    let rb = b.rec.roll_at(T0);
    assert_ne!(ra, rb);
    for r in [ra, rb] {
        assert!(r - T0 >= 30 * NS_PER_SEC && r - T0 <= 90 * NS_PER_SEC);
    }
}

/// 8 kHz AAC, as the G.711 converter makes it.
fn aac_8k() -> Arc<AudioParams> {
    Arc::new(AudioParams {
        rfc6381: "mp4a.40.2".into(),
        sample_rate: 8000,
        channels: 1,
        sample_entry: Bytes::from(mp4::mp4a_sample_entry(8000, 1, &[0x15, 0x88], 32_000)),
    })
}

/// `secs` of 25 fps video (a key frame every second) and 1024-sample audio frames at
/// 8 kHz, in arrival order: each audio frame arrives `audio_delay` (90 kHz, negative:
/// early) after the video of its time. Audio frames numbered in `lost` never arrive.
fn feed_av(rec: &mut Recorder, secs: i64, audio_delay: i64, lost: &[i64]) {
    let p = params(640);
    let mut events: Vec<(i64, IngestEvent)> = (0..secs * 25)
        .map(|i| {
            let pts = i * 3600;
            let f = VideoFrame {
                pts,
                received_ns: T0 + pts * NS_PER_SEC / SEC,
                is_key: i % 25 == 0,
                params: p.clone(),
                data: Bytes::from_static(&[0; 100]),
            };
            (pts, IngestEvent::Video(f))
        })
        .collect();
    for k in (0..(secs * 8000 + 1023) / 1024).filter(|k| !lost.contains(k)) {
        let a = AudioFrame {
            pts: k * 1024,
            duration: 1024,
            data: Bytes::from_static(&[1; 20]),
        };
        events.push((k * 1024 * SEC / 8000 + audio_delay, IngestEvent::Audio(a)));
    }
    events.sort_by_key(|(t, _)| *t); // stable: video first on ties
    for (_, ev) in events {
        rec.handle(ev);
    }
}

/// Per segment: (video duration in 8 kHz units, audio runs as (base, duration)).
fn audio_runs(r: &Rig) -> Vec<(i64, Vec<(i64, i64)>)> {
    rows(&r.store)
        .iter()
        .map(|row| {
            let f = mp4::scan_path(&r.store.file_path(row)).unwrap();
            let runs = f
                .fragments
                .iter()
                .flat_map(|fr| &fr.runs)
                .filter(|run| run.track_id == 2)
                .map(|run| (run.base_decode_time as i64, run.duration as i64))
                .collect();
            ((row.end_ns - row.start_ns) * 8000 / NS_PER_SEC, runs)
        })
        .collect()
}

#[test]
fn audio_is_placed_by_its_time_not_by_arrival() {
    for delay in [-SEC * 3 / 10, SEC / 4] {
        let mut r = rig(2);
        r.rec.handle(IngestEvent::SessionStarted {
            audio: Some(aac_8k()),
        });
        feed_av(&mut r.rec, 9, delay, &[]);
        r.rec.handle(IngestEvent::SessionEnded);
        let segs = audio_runs(&r);
        assert!(segs.len() >= 3, "{segs:?}");
        for (video, runs) in &segs {
            // The first sound is the first frame at or after the segment's first picture
            // (frames are 1024 samples; a second is 8000).
            let (first, _) = runs[0];
            assert!((0..1024).contains(&first), "delay {delay}: {runs:?}");
            for w in runs.windows(2) {
                assert_eq!(
                    w[0].0 + w[0].1,
                    w[1].0,
                    "delay {delay}: contiguous {runs:?}"
                );
            }
            // At most the frame that straddles the last picture's end runs past it.
            let (last, d) = *runs.last().unwrap();
            let end = last + d;
            assert!(
                end < video + 1024,
                "delay {delay}: audio past the video: {runs:?}"
            );
        }
        // Early or late (a rolled-over segment waits for its last sound), each
        // segment's sound goes on where the previous one's stopped: nothing lost or
        // doubled at the rollovers.
        for w in segs.windows(2) {
            let ((video, runs), (_, next)) = (&w[0], &w[1]);
            let (last, d) = *runs.last().unwrap();
            assert_eq!(
                last + d - video,
                next[0].0,
                "delay {delay}: sound lost or doubled at a rollover: {segs:?}"
            );
        }
    }
}

#[test]
fn lost_audio_leaves_a_hole_and_later_audio_keeps_its_time() {
    let mut r = rig(60);
    r.rec.handle(IngestEvent::SessionStarted {
        audio: Some(aac_8k()),
    });
    feed_av(&mut r.rec, 4, 0, &[10, 11, 12]);
    r.rec.handle(IngestEvent::SessionEnded);
    let segs = audio_runs(&r);
    let runs = &segs[0].1;
    let holes: Vec<(i64, i64)> = runs
        .windows(2)
        .filter(|w| w[0].0 + w[0].1 != w[1].0)
        .map(|w| (w[0].0 + w[0].1, w[1].0))
        .collect();
    assert_eq!(holes, [(10 * 1024, 13 * 1024)], "{runs:?}");
}

#[test]
fn frames_are_held_while_no_file_can_be_opened() {
    let mut r = rig(60);
    let p = params(640);
    // A file where the camera's directory should be: every open fails.
    let blocker = r.store.dir().join("cam");
    std::fs::write(&blocker, b"in the way").unwrap();
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    feed(&mut r.rec, &p, 0, 100, 25);
    assert!(r.rec.seg.is_none() && rows(&r.store).is_empty());
    assert_eq!(r.rec.backlog.len(), 100, "every frame is held");
    assert!(r.rec.status.lock().unwrap().recorder_error.is_some());
    // The cause goes away; the next event after the retry time writes it all.
    std::fs::remove_file(&blocker).unwrap();
    r.rec.disk_retry_at = Some(Instant::now());
    feed(&mut r.rec, &p, 100 * 3600, 50, 25);
    assert!(r.rec.backlog.is_empty());
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    let total: u64 = rows.iter().map(|r| r.frames).sum();
    assert_eq!(total, 150, "no frame lost: {rows:#?}");
    assert_eq!(
        r.rec.status.lock().unwrap().recorder_error,
        None,
        "cleared once a segment is indexed"
    );
    assert!(
        (rows[0].start_ns - T0).abs() < NS_PER_SEC,
        "placed at its own time"
    );
}

#[test]
fn held_frames_are_bounded_by_dropping_whole_gops() {
    let mut r = rig(60);
    let p = params(640);
    std::fs::write(r.store.dir().join("cam"), b"in the way").unwrap();
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    let big = Bytes::from(vec![0u8; 1 << 20]);
    for i in 0..100 {
        r.rec.handle(IngestEvent::Video(VideoFrame {
            pts: i * 3600,
            received_ns: T0,
            is_key: i % 10 == 0,
            params: p.clone(),
            data: big.clone(),
        }));
    }
    assert!(r.rec.backlog_bytes <= BACKLOG_BYTES);
    assert!(matches!(r.rec.backlog.front(), Some(IngestEvent::Video(f)) if f.is_key));
}

/// Camera time past 28.5 hours of one session (9.2e9 ticks, whose product with
/// 10^9 leaves i64) still maps to the right wall time, so segments keep their
/// names and keep rolling. An RTSP session that runs for days gets there.
#[test]
fn a_session_longer_than_a_day_keeps_its_wall_time() {
    let mut r = rig(4);
    let p = params(640);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    // The anchor a first frame at camera time 0 set 30 hours ago (compressed:
    // feeding 30 hours of frames would write hundreds of segments).
    r.rec.anchor = Some((T0, 0));
    let pts0 = 30 * 3600 * SEC;
    feed_at(
        &mut r.rec,
        &p,
        pts0,
        T0 + 30 * 3600 * NS_PER_SEC,
        25 * 10,
        25,
    );
    r.rec.handle(IngestEvent::SessionEnded);
    let rows = rows(&r.store);
    assert!(rows.len() >= 2, "{rows:?}");
    let want = T0 + 30 * 3600 * NS_PER_SEC;
    assert!((rows[0].start_ns - want).abs() < NS_PER_SEC, "{rows:?}");
    assert!(rows
        .windows(2)
        .all(|w| w[0].end_ns <= w[1].start_ns + NS_PER_SEC));
}

#[test]
fn segment_files_missing_from_the_index_are_indexed_at_start() {
    let mut r = rig(4);
    let p = params(640);
    r.rec.handle(IngestEvent::SessionStarted { audio: None });
    feed(&mut r.rec, &p, 1000, 25 * 12, 25);
    r.rec.handle(IngestEvent::SessionEnded);
    let before = rows(&r.store);
    assert!(before.len() >= 2, "{before:?}");
    // Rows lost while the files stayed (the index refused writes).
    r.store.clear().unwrap();
    assert!(rows(&r.store).is_empty());
    let found = crate::store::check::recover_all(&r.store).unwrap();
    assert_eq!(found.len(), before.len());
    let after = rows(&r.store);
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            (&a.path, a.start_ns, a.bytes, a.frames, &a.codec),
            (&b.path, b.start_ns, b.bytes, b.frames, &b.codec)
        );
        assert!((a.end_ns - b.end_ns).abs() <= 2_000_000, "{a:?} {b:?}");
    }
    assert_eq!(r.store.usage()["cam"].segments, before.len() as u64);
    // A second start finds nothing more to do.
    assert!(crate::store::check::recover_all(&r.store)
        .unwrap()
        .is_empty());
}

/// Bytes in the camera's unfinished segment files (`.part`) under `dir`.
fn part_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            total += part_bytes(&path);
        } else if path.extension().is_some_and(|x| x == "part") {
            total += e.metadata().unwrap().len();
        }
    }
    total
}

/// Woken by ingest (`handoff::FrameSender`), the recorder thread writes a
/// long GOP's fragment once a second of video is queued, and finishes and
/// indexes its segment as soon as the queue ends, without waiting out its
/// nap (30 s here, so a lost wake-up fails the test).
#[test]
fn a_woken_recorder_writes_each_second_and_finishes_at_the_queue_end() {
    let Rig {
        _dir: dir,
        store,
        mut rec,
    } = rig(60);
    let (tx, rx) = mpsc::channel(1024);
    let h = std::thread::spawn(move || rec.run(rx, Duration::from_secs(30)));
    let tx = crate::handoff::FrameSender::new(tx, Some(h.thread().clone()));
    let p = params(640);
    // A 4 s GOP: only the first frame is a key frame here.
    let frame = |i: i64| {
        IngestEvent::Video(VideoFrame {
            pts: i * 3600,
            received_ns: T0 + i * 40_000_000,
            is_key: i % 100 == 0,
            params: p.clone(),
            data: Bytes::from(vec![0x41; 1000]),
        })
    };
    let within = |what: &str, done: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !done() {
            assert!(t.elapsed() < Duration::from_secs(5), "{what}: not woken");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    tx.try_send(IngestEvent::SessionStarted { audio: None })
        .unwrap();
    for i in 0..25 {
        tx.try_send(frame(i)).unwrap();
    }
    // The key frame woke it: the segment is open, its first second not yet written.
    within("the segment's opening", &|| part_bytes(dir.path()) > 0);
    std::thread::sleep(Duration::from_millis(200));
    let opened = part_bytes(dir.path());
    assert!(
        opened < 25_000,
        "{opened} bytes before a second of video was queued"
    );
    // Frame 25 completes a second of video.
    tx.try_send(frame(25)).unwrap();
    within("a second of video", &|| {
        part_bytes(dir.path()) >= opened + 25_000
    });
    for i in 26..40 {
        tx.try_send(frame(i)).unwrap();
    }
    let t = Instant::now();
    drop(tx);
    h.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the queue's end did not wake it"
    );
    let segs = rows(&store);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].frames, 40);
}
