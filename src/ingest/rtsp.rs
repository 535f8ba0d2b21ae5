//! The production [`Opener`]: RTSP sessions with `retina`, turned into the
//! seam's items (video with its parameters, audio already in AAC, damage).

use anyhow::{anyhow, bail};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use retina::client::{self, Demuxed, PacketItem, PlayOptions, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParameters};

use super::audio::SessionAudio;
use super::audio_rtp::AudioDepacketizer;
use super::damage::{error_action, ErrorAction};
use super::h264_rtp::H264Depacketizer;
use super::h265_rtp::{self, H265Depacketizer};
use super::metadata_rtp::MetadataReassembler;
use super::nal_rtp::AccessUnit;
use super::open::{
    Failure, Item, MetadataDocument, OpenError, OpenRequest, Opened, Opener, RawVideo, Session,
};
use super::sync::AvSync;
use super::transport::Proto;
use crate::frame::{VideoCodec, VideoParams};

/// Opens sessions with retina.
#[derive(Debug, Default)]
pub struct RetinaOpener;

impl Opener for RetinaOpener {
    fn open(&self, req: OpenRequest) -> BoxFuture<'_, Result<Opened, OpenError>> {
        Box::pin(open(req))
    }
}

fn failed(step: &'static str, e: retina::Error) -> OpenError {
    OpenError::Request {
        step,
        status: e.status_code(),
        error: anyhow::Error::new(e),
    }
}

async fn open(req: OpenRequest) -> Result<Opened, OpenError> {
    let creds = req
        .creds
        .map(|(username, password)| client::Credentials { username, password });
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("cleannvr/{}", env!("CARGO_PKG_VERSION")));
    let mut session = client::Session::describe(req.url, options)
        .await
        .map_err(|e| failed("DESCRIBE", e))?;
    let streams = session.streams();
    let Some(video_i) = streams
        .iter()
        .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"))
    else {
        let found: Vec<String> = streams
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        if !streams.is_empty() && streams.iter().all(|s| s.media() == "audio") {
            return Err(OpenError::AudioOnly(format!(
                "the camera sends only audio ({}), no video track: cleannvr records video \
                 (H.264 or H.265) with its sound; turn the camera's video stream on, or \
                 check the stream path",
                found.join(", ")
            )));
        }
        return Err(OpenError::NoVideo(format!(
            "the camera sends no H.264 or H.265 video, which is all cleannvr records \
             (it offers {}); set the camera's encoder to H.264 or H.265",
            found.join(", ")
        )));
    };
    let mut audio = SessionAudio::choose(streams);
    // Only the uncompressed form: gzip and EXI metadata are rare and would
    // need an inflater bounded like the XML reader.
    let mut metadata_i = streams
        .iter()
        .position(|s| s.media() == "application" && s.encoding_name() == "vnd.onvif.metadata")
        .filter(|_| req.metadata);
    // H.264 or H.265 with G.711 or AAC-hbr sound or none, and the metadata
    // track if any (nearly all cameras, and all of the benchmarks'): our own
    // reassembly of all of them, at a fraction of retina's cost for video
    // (see `nal_rtp`, `audio_rtp`) and with a size cap on metadata documents
    // that retina's lacks (see `metadata_rtp`). H.265 with decoding order
    // numbers (rare), or AAC in another mode, is retina's.
    let raw_audio = audio.raw_depacketizer(streams);
    let raw_video = match streams[video_i].encoding_name() {
        "h264" => true,
        _ => !has_don(session.sdp()),
    };
    let raw = raw_video && raw_audio.is_ok();
    // Anything else is retina's to demultiplex, and retina would reassemble
    // the metadata track too, without a cap: the track is left alone there
    // (the camera's events still come from its ONVIF event service).
    let metadata_unread = (!raw && metadata_i.take().is_some()).then(|| {
        let why = match &raw_audio {
            Err(why) => format!("with sound in a form we do not reassemble ({why})"),
            Ok(_) => "with H.265 decoding order numbers".to_owned(),
        };
        format!(
            "{why}, the track would be reassembled by the RTSP client without a size \
             limit, so it is left alone"
        )
    });
    let transport = match req.proto {
        Proto::Tcp => client::Transport::Tcp(Default::default()),
        Proto::Udp => client::Transport::Udp(Default::default()),
    };
    let setup = || {
        SetupOptions::default()
            .transport(transport.clone())
            .frame_format(FrameFormat::MP4)
    };
    session
        .setup(video_i, setup())
        .await
        .map_err(|e| failed("SETUP video", e))?;
    if let Some(i) = audio.stream() {
        session
            .setup(i, setup())
            .await
            .map_err(|e| failed("SETUP audio", e))?;
    }
    // Events are extra: a camera that announces a metadata track but
    // refuses to stream it still records video (and its events still come
    // from its ONVIF event service). A connection the refusal broke fails at
    // PLAY, in that step's words.
    let mut metadata_refused = None;
    if let Some(i) = metadata_i {
        if let Err(e) = session.setup(i, setup()).await {
            let text = e.to_string();
            metadata_refused = Some(text.lines().next().unwrap_or_default().to_owned());
            metadata_i = None;
        }
    }
    let play = PlayOptions::default().initial_timestamp(client::InitialTimestampPolicy::Permissive);
    let playing = session.play(play).await.map_err(|e| failed("PLAY", e))?;
    if raw {
        let stream = &playing.streams()[video_i];
        let depacketizer = if stream.encoding_name() == "h264" {
            let avcc = match stream.parameters() {
                Some(ParametersRef::Video(v)) => Some(v.extra_data()),
                _ => None,
            };
            RawDepacketizer::H264(H264Depacketizer::new(avcc))
        } else {
            RawDepacketizer::H265(H265Depacketizer::new(stream.parameters()))
        };
        let metadata = metadata_i.map(|i| RawMetadata {
            stream: i,
            ctx: stream_ctx_text(&playing.streams()[i]),
            reassembler: MetadataReassembler::default(),
        });
        let audio_params = audio.params(playing.streams());
        let audio_status = audio.status().map(str::to_owned);
        let raw_audio = match (audio.stream(), raw_audio, &audio_params) {
            (Some(i), Ok(Some(depacketizer)), Some(_)) => Some(RawAudio {
                stream: i,
                ctx: stream_ctx_text(&playing.streams()[i]),
                depacketizer,
                audio,
                sync: AvSync::default(),
                warned: false,
            }),
            _ => None,
        };
        return Ok(Opened {
            audio: audio_params,
            audio_status,
            metadata: metadata.is_some(),
            metadata_refused,
            metadata_unread: None,
            session: Box::new(RawSession {
                playing,
                video_i,
                depacketizer,
                audio: raw_audio,
                metadata,
                sent: None,
                params_due: true,
            }),
        });
    }
    let playing = playing.demuxed().map_err(|e| failed("demux", e))?;
    let audio_params = audio.params(playing.streams());
    Ok(Opened {
        audio: audio_params,
        audio_status: audio.status().map(str::to_owned),
        metadata: false,
        metadata_refused,
        metadata_unread,
        session: Box::new(RetinaSession {
            playing,
            video_i,
            audio,
            params_sent: false,
            sync: AvSync::default(),
        }),
    })
}

/// How retina's errors name a stream: only in their text, as
/// `"\nstream: <context>\n"`; this tells a metadata packet's errors from video's.
fn stream_ctx_text(s: &client::Stream) -> Option<String> {
    s.ctx().map(|ctx| format!("\nstream: {ctx}\n"))
}

/// The first line of a packet error of the stream `ctx` names, if `e` is one.
fn stream_error(ctx: Option<&str>, e: &retina::Error) -> Option<String> {
    let ctx = ctx?;
    let text = e.to_string();
    text.contains(ctx)
        .then(|| text.lines().next().unwrap_or_default().to_owned())
}

/// A session retina demultiplexes: AAC that is not AAC-hbr, or H.265 with decoding
/// order numbers (never with the metadata track, see `open`).
struct RetinaSession {
    playing: Demuxed,
    video_i: usize,
    audio: SessionAudio,
    params_sent: bool,
    /// Audio's offset from video, from the camera's RTCP sender reports.
    sync: AvSync,
}

/// A sender report of the video or the recorded audio stream: moves `sync`
/// (audio's offset from video) when both streams have reported.
fn sender_report(
    sync: &mut AvSync,
    streams: &[client::Stream],
    video_i: usize,
    audio_i: Option<usize>,
    pkt: &retina::rtcp::ReceivedCompoundPacket,
) {
    let Some(ts) = pkt.rtp_timestamp() else {
        return;
    };
    let Some(Ok(Some(sr))) = pkt.pkts().next().map(|p| p.as_sender_report()) else {
        return;
    };
    let (ntp, elapsed, rate) = (sr.ntp_timestamp().0, ts.elapsed(), ts.clock_rate().get());
    let Some(audio_i) = audio_i else {
        return;
    };
    let audio_rate = streams[audio_i].clock_rate_hz();
    let changed = if pkt.stream_id() == video_i {
        sync.video_report(ntp, elapsed, rate);
        sync.refresh(audio_rate)
    } else if pkt.stream_id() == audio_i {
        sync.audio_report(ntp, elapsed, rate)
    } else {
        None
    };
    if let Some(shift) = changed {
        let ms = shift * 1000 / i64::from(audio_rate.max(1));
        crate::logging::in_polled_camera(|| {
            tracing::info!(
                shift_ms = ms,
                "audio aligned to video by the camera's RTCP sender reports"
            )
        });
    }
}

impl Session for RetinaSession {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Item, Failure>>> {
        Box::pin(async move {
            loop {
                let item = match self.playing.next().await? {
                    Ok(item) => item,
                    Err(e) => return Some(packet_error(e)),
                };
                match item {
                    CodecItem::VideoFrame(f) => {
                        let new_params = if f.has_new_parameters() || !self.params_sent {
                            let stream = &self.playing.streams()[self.video_i];
                            match video_params_of(stream.parameters()) {
                                Ok(p) => Some(p),
                                Err(error) => {
                                    return Some(Err(Failure {
                                        status: None,
                                        error,
                                    }))
                                }
                            }
                        } else {
                            None
                        };
                        self.params_sent = true;
                        return Some(Ok(Item::Video(RawVideo {
                            pts: f.timestamp().elapsed(),
                            random_access: f.is_random_access_point(),
                            loss: f.loss(),
                            new_params,
                            data: f.into_data(),
                        })));
                    }
                    CodecItem::AudioFrame(f) => {
                        let mut frames = Vec::new();
                        self.audio.frames(&f, self.sync.shift(), &mut frames);
                        return Some(Ok(Item::Audio {
                            loss: f.loss(),
                            frames,
                        }));
                    }
                    CodecItem::Rtcp(pkt) => sender_report(
                        &mut self.sync,
                        self.playing.streams(),
                        self.video_i,
                        self.audio.stream(),
                        &pkt,
                    ),
                    _ => {}
                }
            }
        })
    }
}

/// An error from the playing session: one bad packet is damage (frames up to
/// the next key frame), anything else ends the session.
fn packet_error(e: retina::Error) -> Result<Item, Failure> {
    let text = e.to_string();
    if let ErrorAction::Reconnect(why) = error_action(&text) {
        return Err(Failure {
            status: e.status_code(),
            error: anyhow::Error::new(e).context(why),
        });
    }
    let first_line = text.lines().next().unwrap_or_default().to_owned();
    Ok(Item::Damaged(first_line))
}

/// Whether an SDP gives H.265 decoding order numbers (`sprop-max-don-diff`
/// above 0), which our reassembly does not take (RFC 7798 4.4.2-4.4.3).
fn has_don(sdp: &[u8]) -> bool {
    const KEY: &[u8] = b"sprop-max-don-diff=";
    memchr::memmem::find_iter(sdp, KEY).any(|at| {
        let digits = sdp[at + KEY.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit());
        // Not a number at all: refuse too.
        digits.clone().next().is_none() || digits.clone().any(|&b| b != b'0')
    })
}

/// A session of H.264 or H.265 video and, if set up, G.711 or AAC-hbr sound
/// and the ONVIF metadata track: raw RTP from retina, reassembled by our
/// [`RawDepacketizer`], [`AudioDepacketizer`] and
/// [`MetadataReassembler`]. retina still validates each packet (SSRC,
/// sequence, timestamps), counts loss and sends the RTCP receiver reports.
struct RawSession {
    playing: client::Session<client::Playing>,
    video_i: usize,
    depacketizer: RawDepacketizer,
    /// The recorded sound, when set up.
    audio: Option<RawAudio>,
    /// The metadata track, when set up.
    metadata: Option<RawMetadata>,
    /// The sample entry last handed out with a frame.
    sent: Option<Bytes>,
    /// The parameter sets changed (or none were handed out yet): build them
    /// before the next frame goes out.
    params_due: bool,
}

/// The video reassembly of a [`RawSession`], by codec.
enum RawDepacketizer {
    H264(H264Depacketizer),
    H265(H265Depacketizer),
}

impl RawDepacketizer {
    fn push(&mut self, ts: i64, mark: bool, loss: u16, payload: &[u8]) -> Result<(), String> {
        match self {
            Self::H264(d) => d.push(ts, mark, loss, payload),
            Self::H265(d) => d.push(ts, mark, loss, payload),
        }
    }

    fn pull(&mut self) -> Option<AccessUnit> {
        match self {
            Self::H264(d) => d.pull(),
            Self::H265(d) => d.pull(),
        }
    }

    /// retina's parameters for the latest parameter sets, as its demuxer
    /// would give them: `Ok(None)` while one is missing, `Err` if they do
    /// not parse.
    fn parameters(&self) -> Result<Option<VideoParameters>, String> {
        match self {
            Self::H264(d) => {
                let (sps, pps) = d.parameter_sets();
                if sps.is_empty() || pps.is_empty() {
                    return Ok(None);
                }
                retina::codec::h264::parameters_from_sps_and_pps(
                    sps,
                    pps,
                    retina::codec::h26x::Framing::FourByteLength,
                )
                .map(Some)
                .map_err(|e| format!("bad H.264 parameter sets: {e}"))
            }
            Self::H265(d) => {
                let (vps, sps, pps) = d.parameter_sets();
                if vps.is_empty() || sps.is_empty() || pps.is_empty() {
                    return Ok(None);
                }
                h265_rtp::parameters(vps, sps, pps)
                    .map(Some)
                    .map_err(|e| format!("bad H.265 parameter sets: {e}"))
            }
        }
    }
}

/// The recorded sound of a [`RawSession`].
struct RawAudio {
    stream: usize,
    /// Its packet errors' context (see [`stream_ctx_text`]).
    ctx: Option<String>,
    depacketizer: AudioDepacketizer,
    /// What becomes of the frames (G.711 converted, AAC copied).
    audio: SessionAudio,
    /// Audio's offset from video, from the camera's RTCP sender reports.
    sync: AvSync,
    /// A damaged audio packet was logged this session (once is enough).
    warned: bool,
}

impl RawAudio {
    /// An audio packet or frame that could not be read: costs the frames
    /// it touches, never video; logged once per session.
    fn damaged(&mut self, why: &str) -> Item {
        crate::logging::in_polled_camera(|| {
            if !std::mem::replace(&mut self.warned, true) {
                tracing::warn!(error = %why, "damaged audio RTP data; those audio frames are dropped (logged once per session)");
            } else {
                tracing::debug!(error = %why, "damaged audio RTP data");
            }
        });
        Item::Audio {
            loss: 0,
            frames: Vec::new(),
        }
    }

    /// The next complete frames as recorded ones, if any.
    fn pull(&mut self) -> Option<Item> {
        let f = self.depacketizer.pull()?;
        let mut frames = Vec::new();
        self.audio.raw_frames(&f, self.sync.shift(), &mut frames);
        Some(Item::Audio {
            loss: f.loss,
            frames,
        })
    }
}

/// The metadata track of a [`RawSession`].
struct RawMetadata {
    stream: usize,
    /// Its packet errors' context (see [`stream_ctx_text`]).
    ctx: Option<String>,
    reassembler: MetadataReassembler,
}

impl RawSession {
    /// Parameters for the next frame: `Ok(None)` if they are as last sent.
    fn params(&mut self) -> Result<Option<VideoParams>, Result<Item, Failure>> {
        let v = match self.depacketizer.parameters() {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Err(Err(Failure {
                    status: None,
                    error: anyhow!("video stream has no parameters yet"),
                }))
            }
            // The frame is lost, the session is not; the next key frame tries again.
            Err(e) => return Err(Ok(Item::Damaged(e))),
        };
        let p = video_params_of(Some(ParametersRef::Video(&v))).map_err(|error| {
            Err(Failure {
                status: None,
                error,
            })
        })?;
        self.params_due = false;
        if self.sent.as_ref() == Some(&p.sample_entry) {
            return Ok(None);
        }
        self.sent = Some(p.sample_entry.clone());
        Ok(Some(p))
    }
}

impl Session for RawSession {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Item, Failure>>> {
        Box::pin(async move {
            loop {
                if let Some(doc) = self.metadata.as_mut().and_then(|m| m.reassembler.pull()) {
                    return Some(Ok(Item::Metadata(doc)));
                }
                if let Some(item) = self.audio.as_mut().and_then(RawAudio::pull) {
                    return Some(Ok(item));
                }
                if let Some(au) = self.depacketizer.pull() {
                    self.params_due |= au.new_parameters;
                    let new_params = if self.params_due {
                        match self.params() {
                            Ok(p) => p,
                            Err(item) => return Some(item),
                        }
                    } else {
                        None
                    };
                    return Some(Ok(Item::Video(RawVideo {
                        pts: au.timestamp,
                        random_access: au.random_access,
                        loss: au.loss,
                        new_params,
                        data: au.data,
                    })));
                }
                let pkt = match self.playing.next().await? {
                    Ok(PacketItem::Rtp(pkt)) if pkt.stream_id() == self.video_i => pkt,
                    Ok(PacketItem::Rtp(pkt)) => {
                        if let Some(a) = self.audio.as_mut().filter(|a| a.stream == pkt.stream_id())
                        {
                            let (ts, mark, loss) =
                                (pkt.timestamp().elapsed(), pkt.mark(), pkt.loss());
                            if let Err(why) = a.depacketizer.push(ts, mark, loss, pkt.payload()) {
                                return Some(Ok(a.damaged(&why)));
                            }
                            continue;
                        }
                        if let Some(m) = self
                            .metadata
                            .as_mut()
                            .filter(|m| m.stream == pkt.stream_id())
                        {
                            let (ts, mark) = (pkt.timestamp().elapsed(), pkt.mark());
                            m.reassembler.push(ts, mark, pkt.loss(), pkt.payload());
                        }
                        continue;
                    }
                    Ok(PacketItem::Rtcp(pkt)) => {
                        if let Some(a) = &mut self.audio {
                            let streams = self.playing.streams();
                            sender_report(&mut a.sync, streams, self.video_i, Some(a.stream), &pkt);
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        // A bad metadata packet costs its document, never video.
                        let ctx = self.metadata.as_ref().and_then(|m| m.ctx.as_deref());
                        if let Some(why) = stream_error(ctx, &e) {
                            return Some(Ok(Item::Metadata(MetadataDocument::Damaged(why))));
                        }
                        // Nor a bad audio packet.
                        if let Some(a) = &mut self.audio {
                            if let Some(why) = stream_error(a.ctx.as_deref(), &e) {
                                return Some(Ok(a.damaged(&why)));
                            }
                        }
                        return Some(packet_error(e));
                    }
                };
                let (ts, mark, loss) = (pkt.timestamp().elapsed(), pkt.mark(), pkt.loss());
                if let Err(why) = self.depacketizer.push(ts, mark, loss, pkt.payload()) {
                    return Some(Ok(Item::Damaged(why)));
                }
            }
        })
    }
}

fn video_params_of(p: Option<ParametersRef<'_>>) -> anyhow::Result<VideoParams> {
    let Some(ParametersRef::Video(v)) = p else {
        bail!("video stream has no parameters yet");
    };
    let rfc6381 = v.rfc6381_codec().to_owned();
    let codec = if rfc6381.starts_with("avc1") {
        VideoCodec::H264
    } else if rfc6381.starts_with("hvc1") || rfc6381.starts_with("hev1") {
        VideoCodec::H265
    } else {
        bail!("unsupported video codec {rfc6381}");
    };
    let (w, h) = v.pixel_dimensions();
    let sample_entry = v
        .mp4_sample_entry()
        .build()
        .map_err(|e| anyhow!("building sample entry for {rfc6381}: {e}"))?;
    Ok(VideoParams {
        codec,
        rfc6381,
        width: u16::try_from(w).unwrap_or(u16::MAX),
        height: u16::try_from(h).unwrap_or(u16::MAX),
        sample_entry: Bytes::from(sample_entry),
    })
}

#[cfg(test)]
mod tests {
    use super::has_don;

    #[test]
    fn decoding_order_numbers_in_the_sdp_keep_h265_on_retina() {
        let sdp = |fmtp: &str| format!("m=video 0 RTP/AVP 96\r\na=fmtp:96 {fmtp}\r\n");
        assert!(!has_don(sdp("profile-id=1;sprop-vps=QAE=").as_bytes()));
        assert!(!has_don(
            sdp("sprop-max-don-diff=0;profile-id=1").as_bytes()
        ));
        assert!(has_don(sdp("profile-id=1;sprop-max-don-diff=2").as_bytes()));
        assert!(has_don(sdp("sprop-max-don-diff=10;x=1").as_bytes()));
        assert!(has_don(sdp("sprop-max-don-diff=x").as_bytes()));
    }
}
