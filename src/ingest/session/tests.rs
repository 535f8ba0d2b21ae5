//! The reconnect loop against scripted cameras on a simulated clock.
//!
//! These are our own fakes, for what no peer can do in a test's lifetime:
//! fail 10,000 times in a row, stream for an hour, or stay silent for
//! minutes. The fake opener stands where retina does (behind the `Opener`
//! seam) and every wait goes through a `ManualClock`, so an hour of
//! reconnects takes milliseconds and the spacing of attempts is exact. Real
//! cameras are in `tests/record_gst.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{classify, Ended, Forwarder, IngestTask};
use crate::clock::{Clock, ManualClock};
use crate::config::CameraConfig;
use crate::frame::{IngestEvent, VideoCodec, VideoParams};
use crate::ingest::backoff::{REFUSED_CAP, UNREACHABLE_CAP};
use crate::ingest::open::{
    Failure, Item, OpenError, OpenRequest, Opened, Opener, RawVideo, Session,
};
use crate::ingest::transport::Proto;
use crate::status::{CameraStatus, StatusBoard, StreamState, Trouble};

const SECRET: &str = "hunter2-not-logged";

/// What one session attempt does.
#[derive(Clone, Debug)]
enum Act {
    /// The open fails at `step` with this RTSP status (`None`: no answer,
    /// e.g. connection refused).
    Fail(&'static str, Option<u16>),
    /// The open never completes: a camera whose network drops the
    /// connection attempt, or that accepts and never answers DESCRIBE.
    Hang,
    /// The open succeeds; `frames` video frames `every` apart (key frames as
    /// `key`, taking the frame index), then the session ends as `then`.
    Stream {
        frames: u32,
        every: Duration,
        key: fn(u32) -> bool,
        then: End,
    },
}

#[derive(Clone, Copy, Debug)]
enum End {
    /// The camera closes the stream.
    Eof,
    /// The connection breaks.
    Error,
    /// The camera goes silent with the connection open.
    Silent,
}

/// One call of the opener: when (simulated monotonic time) and over what.
#[derive(Clone, Copy, Debug)]
struct Call {
    at: Duration,
    proto: Proto,
}

/// Scripted opener: `script(n, proto)` says what attempt `n` (from 0) does.
/// At attempt `stop_at` it cancels the task's shutdown token and fails (as
/// scripted, or unreachable if the script streams), so the loop records that
/// failure and then returns.
struct Scripted {
    clock: Arc<ManualClock>,
    script: Box<dyn Fn(usize, Proto) -> Act + Send + Sync>,
    calls: Mutex<Vec<Call>>,
    /// Simulated time at which each streamed session ended.
    ends: Arc<Mutex<Vec<Duration>>>,
    stop_at: usize,
    shutdown: CancellationToken,
}

impl Opener for Scripted {
    fn open(&self, req: OpenRequest) -> BoxFuture<'_, Result<Opened, OpenError>> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                at: self.clock.monotonic(),
                proto: req.proto,
            });
            calls.len() - 1
        };
        assert_eq!(req.creds.as_ref().map(|c| c.1.as_str()), Some(SECRET));
        let mut act = (self.script)(n, req.proto);
        if n >= self.stop_at {
            // The last attempt: the loop records its failure, then stops.
            self.shutdown.cancel();
            if let Act::Stream { .. } = act {
                act = Act::Fail("DESCRIBE", None);
            }
        }
        Box::pin(async move {
            match act {
                Act::Hang => futures::future::pending().await,
                Act::Fail(step, status) => Err(OpenError::Request {
                    step,
                    status,
                    error: anyhow::anyhow!("scripted failure {status:?}"),
                }),
                Act::Stream {
                    frames,
                    every,
                    key,
                    then,
                } => Ok(Opened {
                    session: Box::new(FakeSession {
                        clock: self.clock.clone(),
                        sent: 0,
                        frames,
                        every,
                        key,
                        then,
                        ends: self.ends.clone(),
                    }),
                    audio: None,
                    audio_status: None,
                    metadata: false,
                    metadata_refused: None,
                    metadata_unread: None,
                }),
            }
        })
    }
}

struct FakeSession {
    clock: Arc<ManualClock>,
    sent: u32,
    frames: u32,
    every: Duration,
    key: fn(u32) -> bool,
    then: End,
    ends: Arc<Mutex<Vec<Duration>>>,
}

impl Session for FakeSession {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Item, Failure>>> {
        Box::pin(async move {
            if self.sent == self.frames {
                self.ends.lock().unwrap().push(self.clock.monotonic());
                return match self.then {
                    End::Eof => None,
                    End::Error => Some(Err(Failure {
                        status: None,
                        error: anyhow::anyhow!("connection reset by the script"),
                    })),
                    End::Silent => futures::future::pending().await,
                };
            }
            if self.sent > 0 {
                self.clock.sleep(self.every).await;
            }
            let i = self.sent;
            self.sent += 1;
            Some(Ok(Item::Video(RawVideo {
                pts: i64::from(i) * 3000,
                random_access: (self.key)(i),
                loss: 0,
                new_params: (i == 0).then(params),
                data: vec![0, 0, 0, 1, 0x41],
            })))
        })
    }
}

fn params() -> VideoParams {
    VideoParams {
        codec: VideoCodec::H264,
        rfc6381: "avc1.640028".into(),
        width: 640,
        height: 360,
        sample_entry: bytes::Bytes::new(),
    }
}

fn every_10th(i: u32) -> bool {
    i.is_multiple_of(10)
}

/// What a run left behind.
struct Run {
    calls: Vec<Call>,
    ends: Vec<Duration>,
    status: CameraStatus,
    /// `/api/cameras`' view of the status board.
    json: serde_json::Value,
    events: Vec<IngestEvent>,
}

impl Run {
    fn gaps(&self) -> Vec<Duration> {
        self.calls.windows(2).map(|w| w[1].at - w[0].at).collect()
    }
}

/// Runs one camera's ingest loop against `script` until attempt `stop_at`.
async fn run(
    transport: &str,
    stop_at: usize,
    script: impl Fn(usize, Proto) -> Act + Send + Sync + 'static,
) -> Run {
    let camera: CameraConfig = toml::from_str(&format!(
        "id = \"cam\"\nurl = \"rtsp://127.0.0.1:1/x\"\nusername = \"admin\"\n\
         password = \"{SECRET}\"\ntransport = \"{transport}\""
    ))
    .unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000 * crate::clock::NS_PER_SEC));
    let shutdown = CancellationToken::new();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let opener = Arc::new(Scripted {
        clock: clock.clone(),
        script: Box::new(script),
        calls: Mutex::new(Vec::new()),
        ends: ends.clone(),
        stop_at,
        shutdown: shutdown.clone(),
    });
    let board = StatusBoard::default();
    // Room for every frame a script sends: a session that is ready never
    // yields (a pending read is silence to the simulated stall timer), so the
    // recorder's side only runs between sessions.
    let (tx, mut rx) = mpsc::channel(16_384);
    let drain = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    });
    IngestTask {
        camera,
        tx: crate::handoff::FrameSender::new(tx, None),
        live: Arc::new(crate::live::LiveStream::new()),
        status: board.camera("cam"),
        opener: opener.clone(),
        clock: clock.clone(),
        shutdown,
        metadata: None,
    }
    .run()
    .await;
    let events = drain.await.unwrap();
    let calls = opener.calls.lock().unwrap().clone();
    let ends = ends.lock().unwrap().clone();
    let status = board.snapshot()["cam"].clone();
    let json = serde_json::to_value(board.snapshot()).unwrap();
    Run {
        calls,
        ends,
        status,
        json,
        events,
    }
}

#[tokio::test]
async fn an_unreachable_camera_is_retried_forever_at_most_2_s_apart() {
    let r = run("tcp", 10_000, |_, _| Act::Fail("DESCRIBE", None)).await;
    assert_eq!(r.calls.len(), 10_001);
    assert_eq!(r.status.reconnects, 10_001);
    let gaps = r.gaps();
    assert!(
        gaps.iter().all(|g| *g <= UNREACHABLE_CAP),
        "{:?}",
        gaps.iter().max()
    );
    // Not a busy loop: hours of simulated time went by.
    let total = r.calls.last().unwrap().at - r.calls[0].at;
    assert!(total >= Duration::from_secs(10_000 * 3 / 2), "{total:?}");
    assert_eq!(r.status.state, StreamState::Backoff);
}

#[tokio::test]
async fn an_open_that_never_answers_is_given_up_after_the_connect_timeout() {
    let r = run("tcp", 20, |_, _| Act::Hang).await;
    assert_eq!(r.calls.len(), 21, "retried after each timeout");
    // Each attempt waits the configured 10 s (the default), then at most
    // the unreachable backoff cap, never the OS's two-minute connect timeout.
    for g in r.gaps() {
        assert!(
            g >= Duration::from_secs(10) && g <= Duration::from_secs(10) + UNREACHABLE_CAP,
            "{g:?}"
        );
    }
    assert_eq!(r.status.reconnects, 21);
    assert_eq!(r.status.trouble, Some(Trouble::Unreachable));
    let err = r.status.last_error.as_deref().unwrap();
    assert!(
        err.contains("no answer from the camera within 10 s"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refusing_camera_is_retried_forever_within_the_30_s_cap() {
    let r = run("tcp", 10_000, |_, _| Act::Fail("DESCRIBE", Some(404))).await;
    assert_eq!(r.calls.len(), 10_001);
    let gaps = r.gaps();
    assert!(
        gaps.iter().all(|g| *g <= REFUSED_CAP),
        "{:?}",
        gaps.iter().max()
    );
    // Growing to the cap, then staying there.
    assert!(gaps[1] > gaps[0] || gaps[2] > gaps[1], "{:?}", &gaps[..3]);
    assert!(
        gaps[20..].iter().all(|g| *g >= Duration::from_secs(24)),
        "{:?}",
        gaps[20..].iter().min()
    );
}

#[tokio::test]
async fn wrong_credentials_stay_slow_and_say_auth_failed() {
    let r = run("auto", 50, |_, _| Act::Fail("DESCRIBE", Some(401))).await;
    assert_eq!(r.calls.len(), 51);
    for g in r.gaps() {
        assert!(g >= Duration::from_secs(24) && g <= REFUSED_CAP, "{g:?}");
    }
    assert_eq!(r.status.state, StreamState::AuthFailed);
    let cam = &r.json["cam"];
    assert_eq!(cam["state"], "auth_failed", "{cam}");
    assert!(cam["next_attempt_ns"].as_i64().is_some(), "{cam}");
    let err = cam["last_error"].as_str().unwrap();
    assert!(err.starts_with("authentication failed: DESCRIBE"), "{err}");
    assert_eq!(cam["trouble"], "auth_failed", "{cam}");
    assert!(!cam.to_string().contains(SECRET), "{cam}");
    // 401 is not a transport problem: auto never switched to UDP.
    assert!(r.calls.iter().all(|c| c.proto == Proto::Tcp));
}

#[tokio::test]
async fn a_setup_401_is_auth_failed_too() {
    let r = run("auto", 3, |_, _| Act::Fail("SETUP video", Some(401))).await;
    assert_eq!(r.status.state, StreamState::AuthFailed);
    assert!(r.gaps().iter().all(|g| *g >= Duration::from_secs(24)));
}

/// A camera that streamed for an hour, then went away for a while.
fn hour_then_outage(n: usize, _: Proto) -> Act {
    if n == 0 {
        Act::Stream {
            frames: 3601,
            every: Duration::from_secs(1),
            key: every_10th,
            then: End::Error,
        }
    } else {
        Act::Fail("DESCRIBE", None)
    }
}

#[tokio::test]
async fn after_a_long_session_the_first_retries_are_about_a_second() {
    let r = run("tcp", 6, hour_then_outage).await;
    assert_eq!(r.ends.len(), 1);
    let ended = r.ends[0];
    assert!(ended >= Duration::from_secs(3600), "{ended:?}");
    let first = r.calls[1].at - ended;
    assert!(
        first >= Duration::from_millis(500) && first <= Duration::from_secs(1),
        "{first:?}"
    );
    // Then growing by 1.5× per failure (with jitter), but never past 2 s.
    let gaps = r.gaps();
    assert!(gaps[1] <= Duration::from_millis(1500), "{gaps:?}");
    assert!(gaps[1..].iter().all(|g| *g <= UNREACHABLE_CAP), "{gaps:?}");
    let back_within = r.calls[5].at - ended;
    assert!(back_within <= Duration::from_secs(9), "{back_within:?}");
    // The hour was recorded: every frame reached the recorder.
    let frames = r
        .events
        .iter()
        .filter(|e| matches!(e, IngestEvent::Video(_)))
        .count();
    assert_eq!(frames, 3601);
}

#[tokio::test]
async fn a_camera_that_goes_silent_is_dropped_after_10_s_and_retried_quickly() {
    let r = run("tcp", 1, |n, _| match n {
        0 => Act::Stream {
            frames: 120,
            every: Duration::from_secs(1),
            key: every_10th,
            then: End::Silent,
        },
        _ => Act::Fail("DESCRIBE", None),
    })
    .await;
    let silent_from = r.ends[0];
    let retry = r.calls[1].at - silent_from;
    // 10 s of silence ends the session; it had streamed two minutes, a long
    // session, so the retry follows the stall verdict within 0.5–1 s.
    assert!(
        retry >= Duration::from_millis(10_500) && retry <= Duration::from_secs(11),
        "{retry:?}"
    );
    assert_eq!(r.status.reconnects, 2);
}

#[tokio::test]
async fn a_stream_that_ends_cleanly_is_reconnected() {
    let r = run("tcp", 3, |_, _| Act::Stream {
        frames: 5,
        every: Duration::from_millis(40),
        key: every_10th,
        then: End::Eof,
    })
    .await;
    assert_eq!(r.calls.len(), 4);
    let started = r
        .events
        .iter()
        .filter(|e| matches!(e, IngestEvent::SessionStarted { .. }))
        .count();
    let ended = r
        .events
        .iter()
        .filter(|e| matches!(e, IngestEvent::SessionEnded))
        .count();
    // The last attempt is the harness's stop, which fails to open.
    assert_eq!((started, ended), (3, 4));
}

#[tokio::test]
async fn auto_falls_back_to_udp_on_461_at_once_and_remembers_it() {
    let r = run("auto", 2, |_, proto| match proto {
        Proto::Tcp => Act::Fail("SETUP video", Some(461)),
        Proto::Udp => Act::Stream {
            frames: 50,
            every: Duration::from_millis(100),
            key: every_10th,
            then: End::Error,
        },
    })
    .await;
    let protos: Vec<Proto> = r.calls.iter().map(|c| c.proto).collect();
    // TCP refused, UDP straight away (no backoff), and after the UDP session
    // broke, UDP again: what worked is remembered.
    assert_eq!(protos, [Proto::Tcp, Proto::Udp, Proto::Udp]);
    assert_eq!(r.calls[1].at, r.calls[0].at);
    assert_eq!(r.status.transport, Some("udp"));
    assert_eq!(r.json["cam"]["transport"], "udp");
}

#[tokio::test]
async fn auto_falls_back_when_tcp_delivers_no_video_for_5_s() {
    let r = run("auto", 1, |_, proto| match proto {
        Proto::Tcp => Act::Stream {
            frames: 0,
            every: Duration::ZERO,
            key: every_10th,
            then: End::Silent,
        },
        Proto::Udp => Act::Fail("DESCRIBE", None),
    })
    .await;
    assert_eq!(r.calls[1].proto, Proto::Udp);
    assert_eq!(r.calls[1].at - r.calls[0].at, Duration::from_secs(5));
}

#[tokio::test]
async fn forced_tcp_never_falls_back_and_backs_off_on_461() {
    let r = run("tcp", 3, |_, _| Act::Fail("SETUP video", Some(461))).await;
    assert!(r.calls.iter().all(|c| c.proto == Proto::Tcp));
    assert!(r.gaps().iter().all(|g| *g >= Duration::from_millis(500)));
    let err = r.status.last_error.unwrap();
    assert!(err.contains("461 Unsupported Transport"), "{err}");
    assert_eq!(r.status.trouble, Some(Trouble::Refused));
}

/// The operating system's words in retina's errors, as it prints them, to
/// the categories everyone but administrators is told.
#[test]
fn client_errors_map_to_plain_troubles() {
    let conn = "\n\nconn: 127.0.0.1:40000(me)->127.0.0.1:554@2026-11-30T09:06:24";
    for (text, want) in [
        (
            "DESCRIBE: Unable to connect to RTSP server: Connection refused (os error 111)",
            Trouble::ConnectionRefused,
        ),
        (
            "DESCRIBE: Unable to connect to RTSP server: No route to host (os error 113)",
            Trouble::Unreachable,
        ),
        (
            "DESCRIBE: Unable to connect to RTSP server: failed to lookup address information: Name or service not known",
            Trouble::Unreachable,
        ),
        (
            "DESCRIBE: Unable to connect to RTSP server: Connection timed out (os error 110)",
            Trouble::Unreachable,
        ),
        (
            &format!("Error reading from RTSP peer: Connection reset by peer (os error 104){conn}"),
            Trouble::ConnectionLost,
        ),
        ("Timeout", Trouble::TimedOut),
        (
            &format!(
                "{}: wrong ssrc after 12 RTP pkts + 0 RTCP pkts; expecting ssrc=...{conn}",
                match crate::ingest::damage::error_action("wrong ssrc\npkt: x") {
                    crate::ingest::damage::ErrorAction::Reconnect(why) => why,
                    other => panic!("{other:?}"),
                }
            ),
            Trouble::StreamRestarted,
        ),
        ("RTSP framing error: bad header", Trouble::Other),
    ] {
        let Ended::Error(t, msg) = classify(&anyhow::anyhow!("{text}"), None) else {
            panic!("{text}: not a network error");
        };
        assert_eq!((t, msg.as_str()), (want, text), "{text}");
    }
    let r = |status| match classify(&anyhow::anyhow!("x"), Some(status)) {
        Ended::Refused(t, _) | Ended::Error(t, _) => t,
        Ended::AuthFailed(_) => Trouble::AuthFailed,
        _ => panic!("{status}"),
    };
    assert_eq!(
        [r(401), r(404), r(403), r(503)],
        [
            Trouble::AuthFailed,
            Trouble::NotFound,
            Trouble::Refused,
            Trouble::Refused
        ]
    );
}

/// A video frame numbered `i` (its pts is `i` frames at 30 fps).
fn frame(i: i64, is_key: bool) -> IngestEvent {
    IngestEvent::Video(crate::frame::VideoFrame {
        pts: i * 3000,
        received_ns: 0,
        is_key,
        params: Arc::new(params()),
        data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x41]),
    })
}

/// What the recorder received, in order: `K4` a key frame, `d5` another, `gap`.
fn received(rx: &mut mpsc::Receiver<IngestEvent>) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|ev| match ev {
            IngestEvent::Video(f) => {
                format!("{}{}", if f.is_key { "K" } else { "d" }, f.pts / 3000)
            }
            IngestEvent::Gap => "gap".into(),
            _ => "other".into(),
        })
        .collect()
}

/// A recorder that falls behind (slow disk) never makes ingest wait: what does
/// not fit is dropped up to the next key frame that fits after a `Gap`, so the
/// recorder cuts the segment there and never writes frames it cannot decode.
#[test]
fn a_full_recorder_queue_drops_to_the_next_key_frame_after_a_gap() {
    let (tx, mut rx) = mpsc::channel(3);
    let tx = crate::handoff::FrameSender::new(tx, None);
    let mut fwd = Forwarder::new(tracing::Span::none());
    let key = |i: i64| i % 4 == 0;
    for i in 0..6 {
        assert!(fwd.send(&tx, frame(i, key(i)), key(i)));
    }
    // d3 found the queue full; K4 could not be preceded by a gap, so it went too.
    assert_eq!(received(&mut rx), ["K0", "d1", "d2"]);
    for i in 6..10 {
        assert!(fwd.send(&tx, frame(i, key(i)), key(i)));
    }
    assert_eq!(received(&mut rx), ["gap", "K8", "d9"]);
    assert_eq!(fwd.dropped, 5, "d3 K4 d5 d6 d7");

    // A gap found on the network while the queue is full is not lost: it is
    // sent before the next key frame.
    for i in 10..13 {
        assert!(fwd.send(&tx, frame(i, false), false));
    }
    assert!(fwd.gap(&tx));
    received(&mut rx);
    assert!(fwd.send(&tx, frame(13, false), false));
    assert!(fwd.send(&tx, frame(16, true), true));
    assert_eq!(received(&mut rx), ["gap", "K16"]);

    // A recorder that is gone ends the session instead of dropping forever.
    drop(rx);
    assert!(!fwd.send(&tx, frame(17, false), false));
    assert!(!fwd.gap(&tx));
}

/// A camera whose key frame never comes for a minute and a half (joined after
/// its only IDR, or a key-frame interval of minutes), then sends one: on the
/// simulated clock, ingest's frames go through a real recorder. The session
/// is never dropped as stalled or damaged, nothing is written while no frame
/// can be decoded, the status says so from 10 s on, and recording starts at
/// the key frame. (End to end against GStreamer, with real time for the 10 s:
/// `tests/bad_input.rs::video_without_a_key_frame_is_reported_then_recorded_from_the_first_one`.)
#[tokio::test]
async fn a_camera_without_a_key_frame_for_minutes_keeps_its_session_and_records_from_the_key_frame()
{
    // 30 fps, as the fake session's timestamps (3000 ticks a frame) say.
    const KEY_AT: u32 = 90 * 30;
    let r = run("auto", 1, |n, _| match n {
        0 => Act::Stream {
            frames: KEY_AT + 5 * 30,
            every: Duration::from_nanos(33_333_333),
            key: |i| i >= KEY_AT && (i - KEY_AT).is_multiple_of(30),
            then: End::Eof,
        },
        _ => Act::Fail("DESCRIBE", None),
    })
    .await;
    // One session, over TCP, ended by the camera (not by a stall, damage or a
    // transport fallback), and every frame handed on.
    assert_eq!(r.calls.len(), 2);
    assert_eq!(r.calls[0].proto, Proto::Tcp);
    assert_eq!(r.ends.len(), 1);
    assert!(r.ends[0] >= Duration::from_secs(94), "{:?}", r.ends);
    assert_eq!((r.status.damaged_frames, r.status.dropped_frames), (0, 0));
    assert_eq!(r.status.frames, u64::from(KEY_AT + 150));

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(crate::store::Store::open(dir.path()).unwrap());
    let status = Arc::new(Mutex::new(CameraStatus {
        state: StreamState::Streaming,
        ..Default::default()
    }));
    let mut rec = crate::recorder::Recorder::new(
        crate::recorder::RecorderSettings {
            camera: "cam".into(),
            segment_seconds: 60,
        },
        store.clone(),
        status.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let mut first_ns = None;
    let mut key_ns = None;
    for ev in r.events {
        let IngestEvent::Video(f) = &ev else {
            rec.handle(ev);
            continue;
        };
        let (received, is_key) = (f.received_ns, f.is_key);
        let first = *first_ns.get_or_insert(received);
        let waited = received - first;
        if is_key && key_ns.is_none() {
            key_ns = Some(received);
            // A minute and a half of frames, none of them written, and said so.
            assert!(waited > 89 * crate::clock::NS_PER_SEC, "{waited}");
            let s = status.lock().unwrap().clone();
            assert_eq!(s.no_key_frame_since_ns, Some(first));
            assert_eq!(
                crate::status::why_not_recording(&s),
                Some(crate::status::NO_KEY_FRAME_WORDS)
            );
            assert_eq!(store.iter_camera("cam").count(), 0);
        }
        rec.handle(ev);
        if key_ns.is_none() {
            // Shown from 10 s of waiting on, not before.
            let since = status.lock().unwrap().no_key_frame_since_ns;
            let due = waited >= 10 * crate::clock::NS_PER_SEC;
            assert_eq!(since.is_some(), due, "after {waited} ns");
        }
    }
    let key_ns = key_ns.expect("the key frame reached the recorder");
    assert_eq!(status.lock().unwrap().no_key_frame_since_ns, None);
    assert_eq!(
        crate::status::why_not_recording(&status.lock().unwrap()),
        None
    );
    let rows: Vec<_> = store.iter_camera("cam").map(|r| r.unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r.frames).sum::<u64>(), 150, "{rows:?}");
    assert!(rows[0].start_ns >= key_ns, "{rows:?}");
}
