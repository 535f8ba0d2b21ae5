//! Live latency: how late each frame reaches a live WebSocket viewer, and,
//! as the floor to compare with, a plain RTSP client reading the camera
//! directly.
//!
//! The synthetic camera sends frame `n` of a session at PLAY + `n` × 40 ms
//! and stamps it with RTP time `n` × 3600 after the session's first frame;
//! it reports each camera's PLAY wall time. A live fragment's `tfdt` is the
//! frame's time on the session's live timeline, so once the first fragment
//! a viewer gets is placed (it is the newest key frame sent before it
//! arrived: key frames are 2 s apart and latency is far below that) every
//! fragment's send time is known, and latency = arrival − send, on the same
//! clock. This includes the camera's own lateness and loopback both ways,
//! so it bounds "ingest → WebSocket written" from above; the direct RTSP
//! reader measures the part that is not cleannvr's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY_INTERVAL_NS: i64 = 2_000_000_000;

/// Latency percentiles, ms.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Frames measured.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Worst.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut v: Vec<f64>) -> Latency {
        v.sort_by(f64::total_cmp);
        let at = |p: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        Latency {
            samples: v.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Logs in and returns the `Cookie` header value.
pub async fn login(addr: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    let mut s = TcpStream::connect(addr).await?;
    let req = format!(
        "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    let cookie = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap_or("").to_owned())
        })
        .with_context(|| format!("login failed: {}", text.lines().next().unwrap_or("")))?;
    Ok(cookie)
}

/// A minimal WebSocket reader: the live socket only ever sends.
struct Ws {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Ws {
    async fn connect(addr: &str, path: &str, cookie: &str) -> anyhow::Result<Ws> {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                bail!("live socket closed during the handshake");
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            bail!("live socket refused: {}", head.lines().next().unwrap_or(""));
        }
        buf.drain(..end);
        Ok(Ws { s, buf })
    }

    /// Next message: (opcode, payload). Server frames are never masked.
    async fn next(&mut self) -> anyhow::Result<(u8, Vec<u8>)> {
        loop {
            if let Some((op, len, hdr)) = parse_header(&self.buf) {
                if self.buf.len() >= hdr + len {
                    let payload = self.buf[hdr..hdr + len].to_vec();
                    self.buf.drain(..hdr + len);
                    return Ok((op, payload));
                }
            }
            self.buf.reserve(64 * 1024);
            let n = self.s.read_buf(&mut self.buf).await?;
            if n == 0 {
                bail!("live socket closed");
            }
        }
    }
}

fn parse_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    let op = b[0] & 0x0f;
    let (len, hdr) = match b[1] & 0x7f {
        126 => (
            u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    Some((op, len, hdr))
}

/// `tfdt` base decode time of a `moof`, 90 kHz.
fn tfdt(frag: &[u8]) -> Option<u64> {
    let i = frag.windows(4).position(|w| w == b"tfdt")?;
    let version = *frag.get(i + 4)?;
    let at = i + 8;
    Some(if version == 1 {
        u64::from_be_bytes(frag.get(at..at + 8)?.try_into().ok()?)
    } else {
        u64::from(u32::from_be_bytes(frag.get(at..at + 4)?.try_into().ok()?))
    })
}

/// One viewer: latencies (ms) of fragments arriving between `from` and `until`.
async fn viewer(
    addr: String,
    camera: usize,
    cookie: String,
    play_ns: i64,
    from: Instant,
    until: Instant,
) -> anyhow::Result<Vec<f64>> {
    let mut ws = Ws::connect(&addr, &format!("/api/cameras/cam{camera}/live"), &cookie).await?;
    let mut out = Vec::new();
    let mut timeline_origin: Option<i64> = None;
    let mut expect_init = false;
    while Instant::now() < until {
        let (op, payload) = match tokio::time::timeout_at(until.into(), ws.next()).await {
            Err(_) => break,
            Ok(r) => r?,
        };
        let arrived = now_ns();
        match op {
            1 => {
                // A text message announces an init segment; the timeline restarts.
                expect_init = true;
                timeline_origin = None;
            }
            2 if expect_init => expect_init = false,
            2 => {
                let Some(dts) = tfdt(&payload) else { continue };
                let offset = dts as i64 * 1_000_000_000 / 90_000;
                // The timeline is the session's, not the viewer's: place its
                // origin from the first fragment, the newest key frame.
                let base = *timeline_origin.get_or_insert_with(|| {
                    let key_sent =
                        play_ns + (arrived - play_ns).div_euclid(KEY_INTERVAL_NS) * KEY_INTERVAL_NS;
                    key_sent - offset
                });
                let sent = base + offset;
                if Instant::now() >= from {
                    out.push((arrived - sent) as f64 / 1e6);
                }
            }
            8 => break,
            _ => {}
        }
    }
    Ok(out)
}

/// `viewers` sockets on each of cameras 1..=`cameras` of cleannvr at `addr`.
pub async fn measure_viewers(
    addr: &str,
    cookie: &str,
    plays: &HashMap<usize, i64>,
    cameras: usize,
    viewers: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<(Latency, usize)> {
    let from = Instant::now() + warmup;
    let until = from + window;
    let mut tasks = tokio::task::JoinSet::new();
    for cam in 1..=cameras {
        let play = *plays
            .get(&cam)
            .with_context(|| format!("camera {cam} never played"))?;
        for _ in 0..viewers {
            tasks.spawn(viewer(
                addr.to_owned(),
                cam,
                cookie.to_owned(),
                play,
                from,
                until,
            ));
        }
    }
    let mut all = Vec::new();
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(v) => all.extend(v),
            Err(e) => {
                eprintln!("  viewer failed: {e:#}");
                failed += 1;
            }
        }
    }
    Ok((Latency::of(all), failed))
}

/// Plain retina RTSP clients reading `urls` directly from the camera: the
/// floor that any recorder's live view sits on.
pub async fn measure_direct(
    urls: &[(usize, String)],
    plays_after: impl FnOnce() -> anyhow::Result<HashMap<usize, i64>>,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Latency> {
    use retina::client::{self, PlayOptions, SessionOptions, SetupOptions};
    use retina::codec::CodecItem;
    let mut sessions = Vec::new();
    for (cam, url) in urls {
        let mut s =
            client::Session::describe(url::Url::parse(url)?, SessionOptions::default()).await?;
        s.setup(
            0,
            SetupOptions::default().transport(client::Transport::Tcp(Default::default())),
        )
        .await?;
        let playing = s.play(PlayOptions::default()).await?.demuxed()?;
        sessions.push((*cam, playing));
    }
    // PLAY times are known once every session is playing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let plays = plays_after()?;
    let from = Instant::now() + warmup;
    let until = from + window;
    let mut tasks = tokio::task::JoinSet::new();
    for (cam, mut playing) in sessions {
        let play = *plays.get(&cam).context("direct session never played")?;
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let item = match tokio::time::timeout_at(until.into(), playing.next()).await {
                    Err(_) | Ok(None) => break,
                    Ok(Some(r)) => r?,
                };
                let arrived = now_ns();
                if let CodecItem::VideoFrame(f) = item {
                    let sent = play + f.timestamp().elapsed() * 1_000_000_000 / 90_000;
                    if Instant::now() >= from {
                        out.push((arrived - sent) as f64 / 1e6);
                    }
                }
            }
            anyhow::Ok(out)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    Ok(Latency::of(all))
}
