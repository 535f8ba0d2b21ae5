//! One camera's ingest loop: connect with retina, forward frames, and on any
//! failure wait (capped, jittered backoff) and connect again, forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument, Span};

use super::backoff::{self, Attempt, Outcome};
use super::damage::{Damage, Verdict};
use super::open::{Failure, Item, MetadataDocument, OpenError, OpenRequest, Opener};
use super::transport::{Proto, TransportChoice};
use crate::clock::{ticks_90k_to_ns, Clock};
use crate::config::CameraConfig;
use crate::frame::{IngestEvent, VideoCodec, VideoFrame, VideoParams};
use crate::handoff::{FrameSender, TrySendError};
use crate::nal::{h265_has_irap, starts_picture};
use crate::status::{update, CameraStatus, RateMeter, StreamState, Trouble};

/// A camera that sends nothing for this long is treated as disconnected.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// With `transport = "auto"`, a session whose first video frame has not
/// arrived this long after PLAY is retried on the other transport (UDP
/// blocked by a firewall or NAT, or a camera whose interleaved TCP is broken).
const NO_MEDIA_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything one ingest task needs.
pub struct IngestTask {
    /// The camera to pull.
    pub camera: CameraConfig,
    /// Where frames go (the recorder); bounded, see `Forwarder` for what
    /// happens when it is full.
    pub tx: FrameSender,
    /// Live viewers of this camera; publishing never waits.
    pub live: Arc<crate::live::LiveStream>,
    /// This camera's live status.
    pub status: Arc<Mutex<CameraStatus>>,
    /// Opens the camera's RTSP sessions (retina; a script in tests).
    pub opener: Arc<dyn Opener>,
    /// Frame arrival times, session lengths, reconnect waits and stall timers.
    pub clock: Arc<dyn Clock>,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Where the ONVIF metadata track's documents go (the camera's event
    /// reader), for cameras whose events are read; `None` leaves the track
    /// alone. Bounded: documents the reader has no room for are dropped.
    pub metadata: Option<mpsc::Sender<Bytes>>,
}

/// Documents queued for the event reader: a few seconds of a busy analytics
/// track, at most this many times [`super::open::MAX_METADATA_DOCUMENT`].
pub const METADATA_QUEUE: usize = 16;

/// Why a session ended. The text is for the log and administrators; the
/// [`Trouble`] is what everyone else is told.
enum Ended {
    /// The camera said 401 to our credentials.
    AuthFailed(String),
    /// The camera answered, but with something retrying soon will not fix
    /// (4xx, a codec we cannot record).
    Refused(Trouble, String),
    /// The transport looks at fault: SETUP/PLAY refused it, or no media
    /// arrived over it. Plain words, for the log and the status.
    Transport(Trouble, String),
    /// Anything else: network, protocol, stall.
    Error(Trouble, String),
    /// The server ended the stream cleanly (e.g. a file that played out).
    Eof,
    /// The recorder is gone (shutdown).
    Closed,
}

impl IngestTask {
    /// Runs until shutdown, reconnecting after every failure.
    ///
    /// Everything logged for the camera is in its `camera` span, but the
    /// span is entered only where something logs (and around connecting),
    /// never around the whole task: entering it at every poll cost about 5 %
    /// of the CPU of recording one camera. The RTSP client's log lines while
    /// streaming get there through [`crate::logging::InCamera`].
    pub async fn run(self) {
        let span = tracing::info_span!("camera", id = %self.camera.id);
        self.run_inner(&span).await
    }

    async fn run_inner(self, span: &Span) {
        let mut history: std::collections::VecDeque<Attempt> = Default::default();
        let mut last_msg = String::new();
        let mut audio_note_logged = false;
        let mut transports = TransportChoice::new(self.camera.transport);
        // Fallbacks are logged once per direction, not on every reconnect.
        let mut fallback_logged = [false; 2];
        // ONVIF cameras: the URL is asked of the camera, and asked again after repeated failures.
        let mut source = crate::onvif::StreamSource::new(&self.camera);
        // Polled only once cancelled, not at every frame the task wakes for.
        let mut stop = super::when_woken::WhenWoken::new(self.shutdown.clone().cancelled_owned());
        loop {
            let proto = transports.next();
            update(&self.status, |s| {
                s.state = StreamState::Connecting;
                s.transport = Some(proto.as_str());
            });
            let mut first_frame = None;
            // Biased: shutdown wins over anything else that is ready.
            let ended = tokio::select! {
                biased;
                _ = &mut stop => return,
                e = self.stream_once(span, proto, &mut source, &mut first_frame, &mut audio_note_logged) => e,
            };
            // Tell the recorder to close its segment; it must see this even when the queue is busy.
            if self.tx.send(IngestEvent::SessionEnded).await.is_err() {
                return;
            }
            let streamed =
                first_frame.map_or(Duration::ZERO, |t| self.clock.monotonic().saturating_sub(t));
            let delivered = first_frame.is_some();
            if delivered {
                transports.delivered(proto);
            }
            source.session_ended(delivered);
            let ended = match ended {
                Ended::Transport(trouble, why) => match transports.transport_failed(proto) {
                    Some(other) => {
                        let i = proto as usize;
                        if !fallback_logged[i] {
                            fallback_logged[i] = true;
                            let _in_camera = span.enter();
                            warn!(
                                "{why}; switching to {} (remembered while cleannvr runs)",
                                other.label()
                            );
                        }
                        update(&self.status, |s| {
                            s.last_error = Some(why);
                            s.trouble = Some(trouble);
                        });
                        continue;
                    }
                    // Refused over both transports: the camera answered.
                    None => Ended::Refused(trouble, why),
                },
                other => {
                    if !delivered {
                        transports.other_failure(proto);
                    }
                    other
                }
            };
            let (state, outcome, trouble, msg) = match ended {
                Ended::Closed => return,
                Ended::Transport(t, m) | Ended::Refused(t, m) => {
                    (StreamState::Backoff, Outcome::Refused, t, m)
                }
                Ended::AuthFailed(m) => (
                    StreamState::AuthFailed,
                    Outcome::AuthFailed,
                    Trouble::AuthFailed,
                    m,
                ),
                Ended::Error(t, m) => (StreamState::Backoff, Outcome::Unreachable, t, m),
                Ended::Eof => (
                    StreamState::Backoff,
                    Outcome::Unreachable,
                    Trouble::StreamEnded,
                    "stream ended".to_owned(),
                ),
            };
            if history.len() == backoff::HISTORY {
                history.pop_front();
            }
            history.push_back(Attempt { streamed, outcome });
            let delay = backoff::delay(history.make_contiguous(), rand::random::<f64>());
            // An offline camera is retried every couple of seconds: log each
            // new reason once, and repeats only at debug level.
            let in_camera = span.enter();
            if msg != last_msg {
                warn!(error = %msg, retry_in_ms = delay.as_millis() as u64, "session ended");
                last_msg.clone_from(&msg);
            } else {
                tracing::debug!(error = %msg, retry_in_ms = delay.as_millis() as u64, "session ended");
            }
            drop(in_camera);
            let now = self.clock.now_ns();
            let retry_at = now.saturating_add(delay.as_nanos() as i64);
            update(&self.status, |s| {
                if delivered {
                    // Kept while the next session streams, so the status
                    // still says why recording was cut.
                    s.last_interruption = Some((now, trouble));
                }
                s.state = state;
                s.reconnects += 1;
                s.last_error = Some(msg);
                s.trouble = Some(trouble);
                s.next_attempt_ns = Some(retry_at);
            });
            tokio::select! {
                biased;
                _ = &mut stop => return,
                _ = self.clock.sleep(delay) => {}
            }
        }
    }

    /// Asks an ONVIF camera for its URL, then DESCRIBE, SETUP and PLAY.
    async fn open_once(
        &self,
        proto: Proto,
        source: &mut crate::onvif::StreamSource,
    ) -> Result<super::open::Opened, Ended> {
        let raw = source.url().await.map_err(|e| classify(&e, None))?;
        let (url, creds) = self
            .camera
            .stream_url_and_credentials(&raw)
            .map_err(|e| classify(&e, None))?;
        let request = OpenRequest {
            url,
            creds,
            proto,
            metadata: self.metadata.is_some(),
        };
        // Bounded: a camera behind a firewall that drops the connection
        // attempt would otherwise hold this loop for the operating system's
        // connect timeout (about two minutes) before anyone is told.
        let limit = Duration::from_secs(self.camera.connect_timeout_seconds.into());
        let opened = tokio::select! {
            biased;
            o = self.opener.open(request) => o,
            _ = self.clock.sleep(limit) => {
                return Err(Ended::Error(
                    Trouble::Unreachable,
                    format!(
                        "no answer from the camera within {} s (connect, DESCRIBE, SETUP and PLAY; \
                         connect_timeout_seconds)",
                        limit.as_secs()
                    ),
                ))
            }
        };
        opened.map_err(|e| match e {
            OpenError::NoVideo(why) => Ended::Refused(Trouble::NoMedia, why),
            OpenError::AudioOnly(why) => Ended::Refused(Trouble::AudioOnly, why),
            OpenError::Request {
                step,
                status,
                error,
            } => refused(step, proto, status, error),
        })
    }

    async fn stream_once(
        &self,
        span: &Span,
        proto: Proto,
        source: &mut crate::onvif::StreamSource,
        first_frame: &mut Option<Duration>,
        audio_note_logged: &mut bool,
    ) -> Ended {
        // Read at once while connecting and up to the first frame; then the
        // thread may read this camera in batches ([`super::paced`]).
        let mut pacing = super::paced::session(proto);
        // Connecting is in the camera's span (the RTSP client and ONVIF log
        // there); streaming enters it only to log.
        let opened = match self.open_once(proto, source).instrument(span.clone()).await {
            Ok(o) => o,
            Err(ended) => return ended,
        };
        let mut session = opened.session;
        if !*audio_note_logged {
            let _in_camera = span.enter();
            super::audio::log_choice(opened.audio_status.as_deref(), opened.audio.is_some());
            if opened.metadata {
                info!("the stream has an ONVIF metadata track; reading its events");
            }
            if let Some(why) = &opened.metadata_unread {
                warn!(reason = %why, "the stream has an ONVIF metadata track that cleannvr does not read; recording video without it (its events come only from its ONVIF event service)");
            }
            if let Some(why) = &opened.metadata_refused {
                warn!(error = %why, "the camera offers an ONVIF metadata track but refused to set it up; recording video without it (its events come only from its ONVIF event service)");
            }
            *audio_note_logged = true;
        }
        let mut metadata_log = MetadataLog::default();
        if self
            .tx
            .send(IngestEvent::SessionStarted {
                audio: opened.audio.clone(),
            })
            .await
            .is_err()
        {
            return Ended::Closed;
        }
        // Timestamps restart with the session: live viewers start a new timeline,
        // with the session's sound when it has any.
        self.live.start_session(opened.audio);
        update(&self.status, |s| {
            s.state = StreamState::Streaming;
            s.last_error = None;
            s.trouble = None;
            s.audio = opened.audio_status;
        });

        let mut video_params: Option<Arc<VideoParams>> = None;
        let mut forward = Forwarder::new(span.clone());
        let mut meter = RateMeter::default();
        let mut anchor: Option<(i64, i64)> = None;
        let auto = self.camera.transport == crate::config::Transport::Auto;
        let mut damage = Damage::default();
        let mut errors_logged = false;
        let mut loss_logged = false;
        let mut after_error = false;
        // Stall deadlines count from the last video frame, not the last item:
        // a stream of nothing but bad packets is a stalled stream.
        let mut last_frame = self.clock.monotonic();
        // One timer for the session, not one per frame (a timer set and
        // cancelled 25 times a second showed in the N = 1 profile). It may
        // fire before the deadline, which only moves later as frames arrive;
        // then it is set again for the deadline as it stands.
        let wait_for = |first: bool| {
            if first && auto {
                NO_MEDIA_TIMEOUT
            } else {
                STALL_TIMEOUT
            }
        };
        let mut timer = self.clock.sleep_until(last_frame + wait_for(true));
        loop {
            let first = video_params.is_none();
            let wait = wait_for(first);
            // Biased: an item that is ready wins over a timer that is due, so
            // a simulated clock (whose sleeps are always due) only moves when
            // the camera is silent.
            let item = tokio::select! {
                biased;
                // retina logs from in here: its lines go to the camera's span.
                item = crate::logging::InCamera::new(span, session.next()) => Some(item),
                _ = &mut timer => None,
            };
            let deadline = last_frame + wait;
            let item = match item {
                None if self.clock.monotonic() < deadline => {
                    timer = self.clock.sleep_until(deadline);
                    continue;
                }
                None if first && auto => {
                    return Ended::Transport(
                        Trouble::TimedOut,
                        format!(
                            "no video arrived over {} within {} s of PLAY",
                            proto.label(),
                            wait.as_secs()
                        ),
                    )
                }
                None => {
                    return Ended::Error(
                        Trouble::TimedOut,
                        format!("no video for {} s", wait.as_secs()),
                    )
                }
                // retina ends the demuxed stream after a depacketizer `pull` error.
                Some(None) if after_error => return Ended::Error(
                    Trouble::Unreadable,
                    "the camera sent a frame retina could not reassemble, which ends its session"
                        .to_owned(),
                ),
                Some(None) => return Ended::Eof,
                Some(Some(Err(Failure { status, error }))) => return classify(&error, status),
                Some(Some(Ok(Item::Damaged(first_line)))) => {
                    // One bad packet (a join mid-frame, loss, a malformed NAL):
                    // drop frames up to the next key frame, keep the session.
                    after_error = true;
                    let in_camera = span.enter();
                    if !std::mem::replace(&mut errors_logged, true) {
                        warn!(error = %first_line, "damaged RTP data; dropping frames until the next key frame (logged once per session)");
                    } else {
                        tracing::debug!(error = %first_line, "damaged RTP data");
                    }
                    drop(in_camera);
                    if damage.error() && !forward.gap(&self.tx) {
                        return Ended::Closed;
                    }
                    update(&self.status, |s| s.depacketize_errors += 1);
                    continue;
                }
                Some(Some(Ok(item))) => item,
            };
            after_error = false;
            match item {
                Item::Video(f) => {
                    last_frame = self.clock.monotonic();
                    first_frame.get_or_insert(last_frame);
                    if let Some(p) = f.new_params {
                        span.in_scope(|| info!(codec = %p.rfc6381, width = p.width, height = p.height, "video parameters"));
                        update(&self.status, |s| {
                            s.codec = Some(p.rfc6381.clone());
                            s.resolution = Some((p.width, p.height));
                        });
                        video_params = Some(Arc::new(p));
                    }
                    let Some(params) = video_params.clone() else {
                        return Ended::Error(
                            Trouble::NoMedia,
                            "video stream has no parameters yet".to_owned(),
                        );
                    };
                    let now = self.clock.now_ns();
                    let pts = f.pts;
                    let (wall0, pts0) = *anchor.get_or_insert((now, pts));
                    let drift_ms = wall0
                        .saturating_add(ticks_90k_to_ns(pts.saturating_sub(pts0)))
                        .saturating_sub(now)
                        / 1_000_000;
                    let is_key = f.random_access
                        || (params.codec == VideoCodec::H265 && h265_has_irap(&f.data));
                    let loss = f.loss;
                    let whole = starts_picture(params.codec == VideoCodec::H265, &f.data);
                    if let Verdict::Drop { starts_gap } = damage.frame(loss, whole, is_key) {
                        if loss > 0 && !std::mem::replace(&mut loss_logged, true) {
                            span.in_scope(|| warn!(
                                lost_packets = loss,
                                "RTP packets lost; dropping frames until the next key frame (logged once per session)"
                            ));
                        }
                        if !whole && !std::mem::replace(&mut errors_logged, true) {
                            span.in_scope(|| warn!("a frame without its first slice (joined mid-picture, or its first packets lost); dropping frames until the next key frame (logged once per session)"));
                        }
                        if starts_gap && !forward.gap(&self.tx) {
                            return Ended::Closed;
                        }
                        update(&self.status, |s| {
                            s.lost_packets += u64::from(loss);
                            s.damaged_frames += 1;
                        });
                        continue;
                    }
                    let data = Bytes::from(f.data);
                    let len = data.len();
                    let rate = meter.add(now, len);
                    let frame = VideoFrame {
                        pts,
                        received_ns: now,
                        is_key,
                        params,
                        data,
                    };
                    pacing.frame(self.live.publish(&frame));
                    let sent = forward.send(&self.tx, IngestEvent::Video(frame), is_key);
                    update(&self.status, |s| {
                        s.frames += 1;
                        s.last_frame_ns = Some(now);
                        s.bytes += len as u64;
                        s.drift_ms = drift_ms;
                        s.dropped_frames = forward.dropped;
                        if let Some((fps, bps)) = rate {
                            s.fps = fps;
                            s.bitrate_bps = bps;
                        }
                    });
                    if !sent {
                        return Ended::Closed;
                    }
                }
                Item::Audio { loss, frames } => {
                    // Audio frames stand alone: a lost one is just missing.
                    if loss > 0 {
                        update(&self.status, |s| s.lost_packets += u64::from(loss));
                    }
                    for a in frames {
                        self.live.publish_audio(&a);
                        if !forward.send(&self.tx, IngestEvent::Audio(a), false) {
                            return Ended::Closed;
                        }
                    }
                }
                Item::Metadata(doc) => self.metadata_document(span, doc, &mut metadata_log),
                Item::Damaged(_) => unreachable!("handled above"),
            }
        }
    }
}

/// Which metadata warnings a session has given (each once per session).
#[derive(Default)]
struct MetadataLog {
    too_large: bool,
    full: bool,
    damaged: bool,
}

impl IngestTask {
    /// Hands a metadata document to the event reader, never waiting: a
    /// document over the cap or without room in the queue is dropped.
    fn metadata_document(&self, span: &Span, doc: MetadataDocument, log: &mut MetadataLog) {
        let Some(tx) = &self.metadata else { return };
        // Entered for what is logged only, like the rest of the streaming loop.
        let in_camera = || span.enter();
        match doc {
            MetadataDocument::TooLarge(len) => {
                let _in_camera = in_camera();
                if !std::mem::replace(&mut log.too_large, true) {
                    warn!(
                        bytes = len,
                        limit = super::open::MAX_METADATA_DOCUMENT,
                        "dropped an ONVIF metadata document over the size limit as it arrived; the rest of it is skipped, its events are not recorded, video is not affected (logged once per session)"
                    );
                } else {
                    tracing::debug!(
                        bytes = len,
                        "dropped an ONVIF metadata document over the size limit"
                    );
                }
            }
            MetadataDocument::Damaged(why) => {
                let _in_camera = in_camera();
                if !std::mem::replace(&mut log.damaged, true) {
                    warn!(error = %why, "dropped a damaged ONVIF metadata packet and its document; video is not affected (logged once per session)");
                } else {
                    tracing::debug!(error = %why, "dropped a damaged ONVIF metadata packet");
                }
            }
            MetadataDocument::Xml(xml) => {
                if tx.try_send(xml).is_err() && !std::mem::replace(&mut log.full, true) {
                    let _in_camera = in_camera();
                    warn!("the event reader is behind; dropping ONVIF metadata documents (logged once per session)");
                }
            }
        }
    }
}

/// Hands events to the recorder without ever waiting on it.
///
/// Backpressure decision: a recorder that falls behind (slow disk) must not
/// stall the RTSP read, or the camera drops the session. So when the queue is
/// full we drop frames, then resume at the next key frame after a `Gap`
/// marker, so the recorder cuts the segment there instead of writing
/// undecodable frames.
struct Forwarder {
    dropping: bool,
    dropped: u64,
    /// The camera's, for the two warnings.
    span: Span,
}

impl Forwarder {
    fn new(span: Span) -> Self {
        Forwarder {
            dropping: false,
            dropped: 0,
            span,
        }
    }

    /// Tells the recorder that frames are missing from here (damage on the
    /// network): it closes the segment, and the next video frame sent is a
    /// key frame. Returns false when the receiver is gone.
    fn gap(&mut self, tx: &FrameSender) -> bool {
        if self.dropping {
            // A `Gap` is already due before the next key frame.
            return true;
        }
        match tx.try_send(IngestEvent::Gap) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                // Let the full-queue path send it before the next key frame.
                self.dropping = true;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Returns false when the receiver is gone.
    fn send(&mut self, tx: &FrameSender, ev: IngestEvent, is_key: bool) -> bool {
        if self.dropping {
            if !is_key || tx.try_send(IngestEvent::Gap).is_err() {
                self.dropped += 1;
                return !tx.is_closed();
            }
            self.span.in_scope(|| {
                warn!(
                    dropped = self.dropped,
                    "recorder caught up; resuming at key frame"
                )
            });
            self.dropping = false;
        }
        match tx.try_send(ev) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.span.in_scope(|| {
                    warn!("recorder queue full; dropping frames until the next key frame")
                });
                self.dropping = true;
                self.dropped += 1;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// Sorts an error by what retrying soon can do about it; `status` is the
/// camera's RTSP answer, if the error was one.
fn classify(e: &anyhow::Error, status: Option<u16>) -> Ended {
    let auth = status == Some(401)
        || e.chain()
            .filter_map(|c| c.downcast_ref::<crate::onvif::OnvifError>())
            .any(|o| o.is_not_authorized());
    // `{:#}` prints the context chain on one line; URLs in retina errors carry no credentials
    // because we pass them separately.
    let msg = format!("{e:#}");
    let client_error = status.is_some_and(|c| (400..500).contains(&c));
    if auth {
        Ended::AuthFailed(format!("authentication failed: {msg}"))
    } else if status == Some(404) {
        Ended::Refused(Trouble::NotFound, msg)
    } else if client_error {
        Ended::Refused(Trouble::Refused, msg)
    } else if status.is_some() {
        Ended::Error(Trouble::Refused, msg)
    } else {
        Ended::Error(network_trouble(&msg), msg)
    }
}

/// What a client error's text says happened to the connection. retina keeps
/// its I/O errors to itself (its `Error` has no `source`), so the operating
/// system's own words in the message are all there is to go by.
fn network_trouble(msg: &str) -> Trouble {
    let has = |needles: &[&str]| needles.iter().any(|n| msg.contains(n));
    let connecting = msg.contains("Unable to connect");
    // The reasons `damage::error_action` gives for a restarted RTP stream.
    if has(&["SSRC changed", "sequence numbers went backwards"]) {
        Trouble::StreamRestarted
    } else if has(&["Connection refused"]) {
        Trouble::ConnectionRefused
    } else if has(&[
        "No route to host",
        "Network is unreachable",
        "Host is unreachable",
        "failed to lookup address",
        "Name or service not known",
        "Temporary failure in name resolution",
    ]) || (connecting && has(&["timed out"]))
    {
        Trouble::Unreachable
    } else if has(&[
        "Connection reset",
        "Broken pipe",
        "Error reading from RTSP peer",
        "Error writing to RTSP peer",
        "unexpected end of file",
    ]) {
        Trouble::ConnectionLost
    } else if has(&["Timeout", "timed out"]) {
        Trouble::TimedOut
    } else {
        Trouble::Other
    }
}

/// A request the camera failed. At SETUP or PLAY, an error status other than
/// 401 (credentials) and 404 (wrong path) is taken to point at the
/// transport: cameras answer 461 Unsupported Transport by the book, and 400,
/// 406 or 500 when they are less careful.
fn refused(step: &str, proto: Proto, status: Option<u16>, e: anyhow::Error) -> Ended {
    let transport_step = step.starts_with("SETUP") || step == "PLAY";
    match status {
        Some(461) if transport_step => Ended::Transport(
            Trouble::Refused,
            format!(
                "the camera does not accept RTP over {} (461 Unsupported Transport to {step})",
                proto.label()
            ),
        ),
        Some(code) if transport_step && code != 401 && code != 404 => Ended::Transport(
            Trouble::Refused,
            format!(
                "the camera answered {code} to {step} over {}",
                proto.label()
            ),
        ),
        _ => classify(&e.context(step.to_owned()), status),
    }
}

#[cfg(test)]
mod tests;
