//! Minimal RTSP/1.0 server and RFC 6184 RTP packetizer for the demo camera.
//!
//! Scope is deliberately small: TCP-interleaved transport only (the server
//! listens on loopback for `cleannvr demo` and benchmarks), one video track
//! per camera, one session per connection. Every frame of the clip is
//! packetized once into wire-ready bytes shared by all cameras; a playing
//! connection copies a frame into its own buffer, patches the per-packet
//! fields (channel, sequence number, timestamp, SSRC) and does one write.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Clip;

/// Largest RTP payload we emit; keeps every packet under a 1500-byte MTU
/// even though TCP would not require it, because recorders size buffers by it.
pub const MAX_PAYLOAD: usize = 1400;

/// Cap on one request's header block; anything longer is garbage for us.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Cap on a request body (we never need one; GET_PARAMETER may carry one).
const MAX_BODY_BYTES: usize = 8 * 1024;

/// Advertised session timeout; clients send keepalives well inside it.
const SESSION_TIMEOUT_SECS: u32 = 60;

const RTP_HEADER: usize = 12;
const INTERLEAVE_PREFIX: usize = 4;
const PAYLOAD_TYPE: u8 = 96;

/// Splits one NAL unit (no start code) into RTP payloads per RFC 6184:
/// a single NAL unit packet if it fits in `max_payload`, FU-A fragments
/// otherwise. Payloads are appended to `out`.
pub fn packetize_nal(nal: &[u8], max_payload: usize, out: &mut Vec<Vec<u8>>) {
    assert!(max_payload > 2, "max_payload too small for FU-A");
    if nal.is_empty() {
        return;
    }
    if nal.len() <= max_payload {
        out.push(nal.to_vec());
        return;
    }
    let header = nal[0];
    let fu_indicator = (header & 0xe0) | 28;
    let nal_type = header & 0x1f;
    let body = &nal[1..];
    let chunk = max_payload - 2;
    let n = body.len().div_ceil(chunk);
    for (i, piece) in body.chunks(chunk).enumerate() {
        let mut fu_header = nal_type;
        if i == 0 {
            fu_header |= 0x80;
        }
        if i == n - 1 {
            fu_header |= 0x40;
        }
        let mut p = Vec::with_capacity(piece.len() + 2);
        p.push(fu_indicator);
        p.push(fu_header);
        p.extend_from_slice(piece);
        out.push(p);
    }
}

/// One access unit as it goes on the wire: interleave prefix + RTP header +
/// payload per packet, with the constant header fields (version, payload
/// type, marker, length) already filled in.
#[derive(Debug)]
pub struct WireFrame {
    /// Concatenated interleaved packets.
    pub bytes: Vec<u8>,
    /// Offset of each packet's `$` byte within `bytes`.
    pub packet_offsets: Vec<usize>,
}

/// A [`Clip`] packetized once, shared (via `Arc`) by every camera and client.
#[derive(Debug)]
pub struct PacketizedClip {
    /// Wire frames in clip order; key frames are preceded in-band by SPS and
    /// PPS packets so a decoder can join at any key frame.
    pub frames: Vec<WireFrame>,
    /// Frames per second the clip is paced at.
    pub fps: u32,
}

impl PacketizedClip {
    /// Packetizes every frame of `clip` with payloads of at most `max_payload` bytes.
    pub fn new(clip: &Clip, max_payload: usize) -> Self {
        let mut frames = Vec::with_capacity(clip.frames.len());
        let mut payloads = Vec::new();
        for f in &clip.frames {
            payloads.clear();
            if f.is_key {
                packetize_nal(&clip.sps, max_payload, &mut payloads);
                packetize_nal(&clip.pps, max_payload, &mut payloads);
            }
            for nal in &f.nals {
                packetize_nal(nal, max_payload, &mut payloads);
            }
            let total: usize = payloads
                .iter()
                .map(|p| p.len() + RTP_HEADER + INTERLEAVE_PREFIX)
                .sum();
            let mut bytes = Vec::with_capacity(total);
            let mut packet_offsets = Vec::with_capacity(payloads.len());
            for (i, p) in payloads.iter().enumerate() {
                packet_offsets.push(bytes.len());
                let len = (RTP_HEADER + p.len()) as u16;
                bytes.extend_from_slice(&[b'$', 0]);
                bytes.extend_from_slice(&len.to_be_bytes());
                let marker = if i + 1 == payloads.len() { 0x80 } else { 0 };
                bytes.push(0x80); // V=2, no padding/extension/CSRC
                bytes.push(marker | PAYLOAD_TYPE);
                bytes.extend_from_slice(&[0; 10]); // seq, timestamp, SSRC: per send
                bytes.extend_from_slice(p);
            }
            frames.push(WireFrame {
                bytes,
                packet_offsets,
            });
        }
        PacketizedClip {
            frames,
            fps: clip.fps,
        }
    }
}

/// Per-stream RTP state for one playing client.
#[derive(Debug)]
pub struct RtpSender {
    clip: Arc<PacketizedClip>,
    channel: u8,
    ssrc: u32,
    /// Sequence number of the next packet.
    seq: u16,
    ts_base: u32,
    /// Index into the clip of the next frame; frames are never skipped
    /// because P-frames depend on their predecessor.
    next_frame: usize,
    buf: Vec<u8>,
}

impl RtpSender {
    /// Starts at clip frame 0 (a key frame) with the given RTP bases.
    pub fn new(clip: Arc<PacketizedClip>, channel: u8, ssrc: u32, seq: u16, ts_base: u32) -> Self {
        let cap = clip.frames.iter().map(|f| f.bytes.len()).max().unwrap_or(0);
        RtpSender {
            clip,
            channel,
            ssrc,
            seq,
            ts_base,
            next_frame: 0,
            buf: Vec::with_capacity(cap),
        }
    }

    /// Fills the reusable buffer with the next frame stamped for `elapsed_frames`
    /// frame periods since PLAY, and returns it for one `write_all`.
    pub fn next_frame(&mut self, elapsed_frames: u64) -> &[u8] {
        let frame = &self.clip.frames[self.next_frame];
        self.next_frame = (self.next_frame + 1) % self.clip.frames.len();
        // u64 so 90000/fps need not be an integer and long runs don't overflow
        // before the deliberate 32-bit wrap.
        let ts = self
            .ts_base
            .wrapping_add((elapsed_frames * 90_000 / u64::from(self.clip.fps)) as u32);
        self.buf.clear();
        self.buf.extend_from_slice(&frame.bytes);
        for &off in &frame.packet_offsets {
            let h = &mut self.buf[off..off + INTERLEAVE_PREFIX + RTP_HEADER];
            h[1] = self.channel;
            h[6..8].copy_from_slice(&self.seq.to_be_bytes());
            h[8..12].copy_from_slice(&ts.to_be_bytes());
            h[12..16].copy_from_slice(&self.ssrc.to_be_bytes());
            self.seq = self.seq.wrapping_add(1);
        }
        &self.buf
    }
}

/// A parsed RTSP request (headers only; any body is skipped).
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// Method token, e.g. `DESCRIBE`.
    pub method: String,
    /// Request-URI as sent.
    pub uri: String,
    /// Header (name, value) pairs in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the start of the input buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Not enough bytes yet.
    Partial,
    /// A complete request occupying `consumed` bytes (header and body).
    Request {
        /// The parsed request.
        request: Request,
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
    /// Bytes the server ignores (interleaved RTCP from the client, stray CRLF).
    Skip(usize),
}

/// Why a request could not be parsed; the connection answers 400 and closes.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Header block exceeds [`MAX_HEADER_BYTES`] or body exceeds its cap.
    #[error("request too large")]
    TooLarge,
    /// Not RTSP/1.0 syntax.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

/// Parses the next item from a connection's input buffer. Never panics on
/// arbitrary input.
pub fn parse_incoming(buf: &[u8]) -> Result<Incoming, ParseError> {
    match buf.first() {
        None => return Ok(Incoming::Partial),
        Some(b'$') => {
            if buf.len() < 4 {
                return Ok(Incoming::Partial);
            }
            let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            return Ok(if buf.len() >= len {
                Incoming::Skip(len)
            } else {
                Incoming::Partial
            });
        }
        Some(b'\r' | b'\n') => {
            let n = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            return Ok(Incoming::Skip(n));
        }
        _ => {}
    }
    let Some(head_len) = find_header_end(buf) else {
        return if buf.len() > MAX_HEADER_BYTES {
            Err(ParseError::TooLarge)
        } else {
            Ok(Incoming::Partial)
        };
    };
    if head_len > MAX_HEADER_BYTES {
        return Err(ParseError::TooLarge);
    }
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| ParseError::Malformed("header is not UTF-8"))?;
    let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ').filter(|s| !s.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed("bad request line"));
    };
    if version != "RTSP/1.0" {
        return Err(ParseError::Malformed("not RTSP/1.0"));
    }
    if !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        return Err(ParseError::Malformed("bad method"));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::Malformed("header without colon"))?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ParseError::Malformed("bad header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let request = Request {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
    };
    let body_len = match request.header("Content-Length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ParseError::Malformed("bad Content-Length"))?,
    };
    if body_len > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge);
    }
    let consumed = head_len + body_len;
    if buf.len() < consumed {
        return Ok(Incoming::Partial);
    }
    Ok(Incoming::Request { request, consumed })
}

/// Length of the header block including the blank line, accepting bare LF
/// line endings too.
fn find_header_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HEADER_BYTES + 4);
    (0..limit).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Shared, read-only server state.
struct Server {
    cameras: usize,
    clip: Arc<Clip>,
    packets: Arc<PacketizedClip>,
    opts: ServeOptions,
}

/// Knobs for [`serve_with`]; the default is what [`serve`] does.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Send this many frames per session, then stay connected but silent
    /// (answering keepalives), so a benchmark knows exactly what was sent.
    /// `None`: loop forever.
    pub frame_limit: Option<u64>,
    /// Counters of what was sent, for benchmarks.
    pub stats: Option<Arc<ServeStats>>,
}

/// What the synthetic camera has sent, updated as frames go out.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Sessions that received PLAY.
    pub sessions: std::sync::atomic::AtomicU64,
    /// Sessions that reached their frame limit.
    pub finished: std::sync::atomic::AtomicU64,
    /// Frames fully handed to the socket, all sessions together.
    pub frames: std::sync::atomic::AtomicU64,
    /// Largest lag behind schedule of a session's last frame, µs, over the
    /// sessions that reached their frame limit (a benchmark may reset it).
    pub late_max_us: std::sync::atomic::AtomicU64,
    /// Wall time (ns since the epoch) of the latest PLAY per camera number.
    /// Frame `n` of that session is due at this time + `n` frame periods and
    /// carries RTP time `n` × 90 000 / fps after the session's first, so a
    /// client can tell how late any frame reaches it.
    pub play_wall_ns: std::sync::Mutex<std::collections::HashMap<usize, i64>>,
}

/// Serves `rtsp://<listener addr>/cam1` … `/cam{cameras}` (all the same clip,
/// each session with its own random SSRC, sequence and timestamp base) until
/// `shutdown` is cancelled, then waits for open connections to close.
///
/// Only TCP-interleaved transport is offered. One task per connection both
/// reads requests and paces the stream, so control requests (keepalives,
/// TEARDOWN) are handled during PLAY without locking the socket.
pub async fn serve(
    listener: TcpListener,
    cameras: usize,
    clip: Arc<Clip>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(listener, cameras, clip, shutdown, ServeOptions::default()).await
}

/// [`serve`] with a per-session frame limit and sent-frame counters.
pub async fn serve_with(
    listener: TcpListener,
    cameras: usize,
    clip: Arc<Clip>,
    shutdown: CancellationToken,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    anyhow::ensure!(!clip.frames.is_empty(), "clip has no frames");
    anyhow::ensure!(clip.fps > 0, "clip fps is zero");
    anyhow::ensure!(clip.frames[0].is_key, "clip must start with a key frame");
    let packets = Arc::new(PacketizedClip::new(&clip, MAX_PAYLOAD));
    let server = Arc::new(Server {
        cameras,
        clip,
        packets,
        opts,
    });
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Typically EMFILE under benchmark load; back off instead
                    // of spinning or killing the whole camera.
                    warn!("demo camera accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let server = server.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = handle_connection(stream, &server) => {
                    if let Err(e) = r {
                        debug!(%peer, "demo camera connection ended: {e:#}");
                    }
                }
            }
        });
    }
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// State of the (single) session on a connection.
struct Session {
    id: String,
    camera: usize,
    channel: u8,
    ssrc: u32,
    /// Base URL (`rtsp://host:port/camN/`) the client used.
    base: String,
}

/// A playing stream: pacing timer plus RTP state.
struct Playing {
    interval: tokio::time::Interval,
    start: Instant,
    period: Duration,
    sender: RtpSender,
    /// Frames sent in this session.
    sent: u64,
}

async fn handle_connection(mut stream: TcpStream, server: &Server) -> anyhow::Result<()> {
    stream.set_nodelay(true).ok();
    let (mut rd, mut wr) = stream.split();
    let mut inbuf = BytesMut::with_capacity(2048);
    let mut session: Option<Session> = None;
    let mut playing: Option<Playing> = None;
    let mut out = String::new();
    loop {
        // Drain every complete request already buffered before waiting again.
        loop {
            match parse_incoming(&inbuf) {
                Ok(Incoming::Partial) => break,
                Ok(Incoming::Skip(n)) => inbuf.advance(n),
                Ok(Incoming::Request { request, consumed }) => {
                    inbuf.advance(consumed);
                    out.clear();
                    let close = respond(server, &request, &mut session, &mut playing, &mut out);
                    wr.write_all(out.as_bytes()).await?;
                    if close {
                        return Ok(());
                    }
                }
                Err(e) => {
                    debug!("demo camera: bad request: {e}");
                    wr.write_all(b"RTSP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n")
                        .await?;
                    return Ok(());
                }
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut inbuf) => {
                if r.context("reading request")? == 0 {
                    return Ok(());
                }
            }
            tick = async { playing.as_mut().expect("guarded").interval.tick().await },
                if playing.as_ref().is_some_and(|p| Some(p.sent) != server.opts.frame_limit) => {
                let p = playing.as_mut().expect("guarded");
                // Timestamps follow wall time (ticks may be skipped when we
                // fall behind) while frames stay sequential for the decoder.
                let elapsed = tick.saturating_duration_since(p.start);
                let frames = (elapsed.as_nanos() + p.period.as_nanos() / 2) / p.period.as_nanos();
                let bytes = p.sender.next_frame(frames as u64);
                wr.write_all(bytes).await.context("writing RTP")?;
                p.sent += 1;
                if let Some(stats) = &server.opts.stats {
                    use std::sync::atomic::Ordering::Relaxed;
                    stats.frames.fetch_add(1, Relaxed);
                    if Some(p.sent) == server.opts.frame_limit {
                        stats.finished.fetch_add(1, Relaxed);
                        // How far behind its schedule the last frame went
                        // out: a client that reads too slowly holds the
                        // sender back through TCP flow control.
                        let due = p.start + p.period * p.sent.saturating_sub(1) as u32;
                        let late = Instant::now().saturating_duration_since(due);
                        stats.late_max_us.fetch_max(late.as_micros() as u64, Relaxed);
                    }
                }
            }
        }
    }
}

/// Appends the response for `req` to `out`; returns true if the connection
/// should close after it is written.
fn respond(
    server: &Server,
    req: &Request,
    session: &mut Option<Session>,
    playing: &mut Option<Playing>,
    out: &mut String,
) -> bool {
    let Some(cseq) = req.header("CSeq").filter(|c| c.parse::<u32>().is_ok()) else {
        out.push_str("RTSP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n");
        return true;
    };
    let status = |out: &mut String, code: u16, reason: &str| {
        let _ = write!(
            out,
            "RTSP/1.0 {code} {reason}\r\nCSeq: {cseq}\r\nServer: cleannvr-demo\r\n"
        );
    };
    let target = parse_target(&req.uri);
    match req.method.as_str() {
        "OPTIONS" => {
            status(out, 200, "OK");
            out.push_str("Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n");
        }
        "DESCRIBE" => match target.and_then(|t| server.camera(&t)) {
            None => status(out, 404, "Not Found"),
            Some((camera, base)) => {
                let sdp = server.sdp(camera);
                status(out, 200, "OK");
                let _ = write!(
                    out,
                    "Content-Base: {base}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                );
                return false;
            }
        },
        "SETUP" => match target.and_then(|t| server.camera(&t)) {
            None => status(out, 404, "Not Found"),
            Some(_) if playing.is_some() => status(out, 455, "Method Not Valid in This State"),
            Some((camera, base)) => match req.header("Transport").and_then(tcp_channel) {
                None => {
                    status(out, 461, "Unsupported Transport");
                }
                Some(channel) => {
                    if let Some(want) = req.header("Session") {
                        if session
                            .as_ref()
                            .is_none_or(|s| !session_matches(want, &s.id))
                        {
                            status(out, 454, "Session Not Found");
                            out.push_str("\r\n");
                            return false;
                        }
                    }
                    let id = match session.take() {
                        Some(s) => s.id,
                        None => format!("{:016X}", rand::random::<u64>()),
                    };
                    let ssrc = rand::random::<u32>();
                    status(out, 200, "OK");
                    let _ = write!(
                        out,
                        "Transport: RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={ssrc:08X}\r\n\
                         Session: {id};timeout={SESSION_TIMEOUT_SECS}\r\n",
                        channel,
                        channel.wrapping_add(1),
                    );
                    *session = Some(Session {
                        id,
                        camera,
                        channel,
                        ssrc,
                        base,
                    });
                }
            },
        },
        "PLAY" => match (session.as_ref(), req.header("Session")) {
            (None, _) => status(out, 455, "Method Not Valid in This State"),
            (Some(s), Some(want)) if !session_matches(want, &s.id) => {
                status(out, 454, "Session Not Found")
            }
            (Some(s), _) => {
                status(out, 200, "OK");
                let _ = write!(
                    out,
                    "Session: {};timeout={SESSION_TIMEOUT_SECS}\r\nRange: npt=0.000-\r\n",
                    s.id
                );
                if playing.is_none() {
                    let seq = rand::random::<u16>();
                    let ts = rand::random::<u32>();
                    let period = Duration::from_nanos(1_000_000_000 / u64::from(server.clip.fps));
                    let start = Instant::now();
                    let mut interval = tokio::time::interval_at(start, period);
                    // Skip, not Burst: a live camera never sends a backlog.
                    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    *playing = Some(Playing {
                        interval,
                        start,
                        period,
                        sender: RtpSender::new(server.packets.clone(), s.channel, s.ssrc, seq, ts),
                        sent: 0,
                    });
                    if let Some(stats) = &server.opts.stats {
                        stats
                            .sessions
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let wall = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as i64);
                        stats
                            .play_wall_ns
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(s.camera, wall);
                    }
                    let _ = write!(
                        out,
                        "RTP-Info: url={}trackID=0;seq={seq};rtptime={ts}\r\n",
                        s.base
                    );
                }
                debug!(camera = s.camera, "demo camera: PLAY");
            }
        },
        "GET_PARAMETER" | "SET_PARAMETER" => {
            status(out, 200, "OK");
            if let Some(s) = session.as_ref() {
                let _ = write!(out, "Session: {}\r\n", s.id);
            }
        }
        "TEARDOWN" => {
            status(out, 200, "OK");
            *playing = None;
            *session = None;
        }
        "PAUSE" | "ANNOUNCE" | "RECORD" | "REDIRECT" => status(out, 405, "Method Not Allowed"),
        _ => status(out, 501, "Not Implemented"),
    }
    out.push_str("\r\n");
    false
}

/// Session header values may carry `;timeout=`; compare the id only.
fn session_matches(header: &str, id: &str) -> bool {
    header.split(';').next().map(str::trim) == Some(id)
}

/// Picks the interleaved channel from a SETUP `Transport` header, or `None`
/// if the client offers no TCP transport we can serve.
fn tcp_channel(transport: &str) -> Option<u8> {
    transport.split(',').find_map(|spec| {
        let mut parts = spec.split(';').map(str::trim);
        let proto = parts.next()?;
        if !proto.eq_ignore_ascii_case("RTP/AVP/TCP") {
            return None;
        }
        let mut channel = 0u8;
        for p in parts {
            if let Some(v) = p.strip_prefix("interleaved=") {
                let first = v.split('-').next()?;
                channel = first.trim().parse().ok()?;
                // RTCP goes on channel+1, which must fit in the byte.
                if channel == u8::MAX {
                    return None;
                }
            }
        }
        Some(channel)
    })
}

/// The parts of a request URI we route on.
struct Target {
    /// `scheme://host[:port]` exactly as the client wrote it.
    origin: String,
    /// Path segments.
    segments: Vec<String>,
}

fn parse_target(uri: &str) -> Option<Target> {
    let url = url::Url::parse(uri).ok()?;
    if url.scheme() != "rtsp" {
        return None;
    }
    let host = url.host_str()?;
    let origin = match url.port() {
        Some(p) => format!("rtsp://{host}:{p}"),
        None => format!("rtsp://{host}"),
    };
    let segments = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Some(Target { origin, segments })
}

impl Server {
    /// Resolves `/camN` or `/camN/trackID=0` to the camera number and its base URL.
    fn camera(&self, t: &Target) -> Option<(usize, String)> {
        let name = t.segments.first()?;
        match t.segments.get(1..)? {
            [] => {}
            [track] if track == "trackID=0" => {}
            _ => return None,
        }
        let n: usize = name.strip_prefix("cam")?.parse().ok()?;
        if n == 0 || n > self.cameras || name != &format!("cam{n}") {
            return None;
        }
        Some((n, format!("{}/{name}/", t.origin)))
    }

    fn sdp(&self, camera: usize) -> String {
        let clip = &self.clip;
        let profile = clip.sps.get(1..4).unwrap_or(&[0x42, 0xc0, 0x1e]);
        format!(
            "v=0\r\n\
             o=- {sess} 1 IN IP4 127.0.0.1\r\n\
             s=cleannvr demo camera {camera}\r\n\
             c=IN IP4 0.0.0.0\r\n\
             t=0 0\r\n\
             a=control:*\r\n\
             m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\n\
             a=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n\
             a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={:02X}{:02X}{:02X};sprop-parameter-sets={},{}\r\n\
             a=framerate:{}\r\n\
             a=control:trackID=0\r\n",
            profile[0],
            profile[1],
            profile[2],
            B64.encode(&clip.sps),
            B64.encode(&clip.pps),
            clip.fps,
            sess = 1000 + camera,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::ClipFrame;
    use bytes::Bytes;

    #[test]
    fn small_nal_is_single_packet() {
        let mut out = Vec::new();
        packetize_nal(&[0x65, 1, 2, 3], 1400, &mut out);
        assert_eq!(out, vec![vec![0x65, 1, 2, 3]]);
        out.clear();
        let exact = vec![0x41; 1400];
        packetize_nal(&exact, 1400, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn large_nal_is_fu_a_and_reassembles() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..5000u32).map(|i| i as u8))
            .collect();
        let mut out = Vec::new();
        packetize_nal(&nal, 1400, &mut out);
        assert_eq!(out.len(), 5000usize.div_ceil(1398));
        let mut rebuilt = vec![(out[0][0] & 0xe0) | (out[0][1] & 0x1f)];
        for (i, p) in out.iter().enumerate() {
            assert!(p.len() <= 1400);
            assert_eq!(p[0], 0x60 | 28, "FU indicator keeps NRI, type 28");
            assert_eq!(p[1] & 0x1f, 5);
            assert_eq!(p[1] & 0x80 != 0, i == 0, "start bit");
            assert_eq!(p[1] & 0x40 != 0, i == out.len() - 1, "end bit");
            assert_eq!(p[1] & 0x20, 0, "reserved bit");
            rebuilt.extend_from_slice(&p[2..]);
        }
        assert_eq!(rebuilt, nal);
    }

    fn test_clip() -> Clip {
        Clip {
            width: 64,
            height: 64,
            fps: 25,
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e]),
            pps: Bytes::from_static(&[0x68, 0xce]),
            frames: vec![
                ClipFrame {
                    nals: vec![Bytes::from(vec![0x65; 3000]), Bytes::from(vec![0x65; 10])],
                    is_key: true,
                },
                ClipFrame {
                    nals: vec![Bytes::from(vec![0x41; 100])],
                    is_key: false,
                },
            ],
        }
    }

    /// Splits interleaved wire bytes into (channel, rtp packet) pairs.
    fn deinterleave(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        while !b.is_empty() {
            assert_eq!(b[0], b'$');
            let len = u16::from_be_bytes([b[2], b[3]]) as usize;
            v.push((b[1], b[4..4 + len].to_vec()));
            b = &b[4 + len..];
        }
        v
    }

    #[test]
    fn sender_stamps_headers_and_marks_last_packet() {
        let clip = test_clip();
        let pc = Arc::new(PacketizedClip::new(&clip, 1400));
        let mut s = RtpSender::new(pc, 2, 0xdeadbeef, 65534, u32::MAX - 3599);
        let key = deinterleave(s.next_frame(0));
        // SPS, PPS, 3 FU-A fragments, 1 small slice.
        assert_eq!(key.len(), 6);
        assert_eq!(key[0].1[12], 0x67);
        assert_eq!(key[1].1[12], 0x68);
        for (i, (ch, p)) in key.iter().enumerate() {
            assert_eq!(*ch, 2);
            assert!(p.len() <= 1400 + 12);
            assert_eq!(p[0], 0x80);
            assert_eq!(p[1] & 0x7f, 96);
            assert_eq!(p[1] & 0x80 != 0, i == key.len() - 1, "marker on packet {i}");
            assert_eq!(
                u16::from_be_bytes([p[2], p[3]]),
                65534u16.wrapping_add(i as u16)
            );
            assert_eq!(
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                u32::MAX - 3599
            );
            assert_eq!(u32::from_be_bytes([p[8], p[9], p[10], p[11]]), 0xdeadbeef);
        }
        let p = deinterleave(s.next_frame(1));
        assert_eq!(p.len(), 1);
        assert_eq!(u16::from_be_bytes([p[0].1[2], p[0].1[3]]), 4, "seq wraps");
        assert_eq!(
            u32::from_be_bytes([p[0].1[4], p[0].1[5], p[0].1[6], p[0].1[7]]),
            0,
            "ts wraps"
        );
        // Looping back to the key frame keeps the timestamp moving forward.
        let again = deinterleave(s.next_frame(5));
        assert_eq!(again[0].1[12], 0x67);
        assert_eq!(
            u32::from_be_bytes([again[0].1[4], again[0].1[5], again[0].1[6], again[0].1[7]]),
            (u32::MAX - 3599).wrapping_add(5 * 3600)
        );
    }

    #[test]
    fn parser_accepts_requests_and_skips_interleaved() {
        let req = b"OPTIONS rtsp://h/cam1 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: x\r\n\r\nrest";
        match parse_incoming(req).unwrap() {
            Incoming::Request { request, consumed } => {
                assert_eq!(request.method, "OPTIONS");
                assert_eq!(request.header("cseq"), Some("1"));
                assert_eq!(consumed, req.len() - 4);
            }
            other => panic!("{other:?}"),
        }
        let body =
            b"GET_PARAMETER rtsp://h/cam1 RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(parse_incoming(body).unwrap(), Incoming::Partial);
        assert_eq!(
            parse_incoming(b"$\x01\x00\x02ab").unwrap(),
            Incoming::Skip(6)
        );
        assert_eq!(
            parse_incoming(b"$\x01\x00\x09ab").unwrap(),
            Incoming::Partial
        );
        assert_eq!(parse_incoming(b"\r\n").unwrap(), Incoming::Skip(2));
        assert_eq!(
            parse_incoming(b"OPTIONS rtsp://h/ RTSP/1.0\r\n").unwrap(),
            Incoming::Partial
        );
    }

    #[test]
    fn parser_rejects_garbage_without_panicking() {
        let bad: &[&[u8]] = &[
            b"\xff\xfe\r\n\r\n",
            b"HELLO\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS rtsp://h/ RTSP/1.0\r\nno colon here\r\n\r\n",
            b"OPTIONS rtsp://h/ RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
            b"OPTIONS rtsp://h/ RTSP/1.0\r\nContent-Length: 99999999\r\n\r\n",
            b"options rtsp://h/ RTSP/1.0\r\n\r\n",
        ];
        for b in bad {
            assert!(
                parse_incoming(b).is_err(),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let huge = vec![b'A'; MAX_HEADER_BYTES + 10];
        assert_eq!(parse_incoming(&huge), Err(ParseError::TooLarge));
        // Pseudo-random garbage of every length: only must not panic.
        let mut x = 0x1234_5678u32;
        let mut junk = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk.push(if x.is_multiple_of(7) {
                b'\n'
            } else {
                (x >> 8) as u8
            });
            let _ = parse_incoming(&junk);
        }
    }

    #[test]
    fn transport_selection() {
        assert_eq!(tcp_channel("RTP/AVP/TCP;unicast;interleaved=0-1"), Some(0));
        assert_eq!(tcp_channel("RTP/AVP;unicast;client_port=5000-5001"), None);
        assert_eq!(
            tcp_channel(
                "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=4-5"
            ),
            Some(4)
        );
        assert_eq!(tcp_channel("RTP/AVP/TCP;interleaved=x"), None);
    }
}
