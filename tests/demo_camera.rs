//! End-to-end checks of the built-in demo camera against two independent
//! RTSP clients (retina and ffprobe) plus raw-socket protocol edge cases.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cleannvr::demo::{encode_clip, serve, Clip, ClipOptions};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const FPS: u32 = 25;
const GOP: u32 = 25;

fn clip() -> Arc<Clip> {
    static CLIP: OnceLock<Arc<Clip>> = OnceLock::new();
    CLIP.get_or_init(|| {
        Arc::new(
            encode_clip(&ClipOptions {
                width: 320,
                height: 240,
                fps: FPS,
                bitrate_kbps: 300,
                gop_frames: GOP,
                seconds: 2,
            })
            .expect("encode clip"),
        )
    })
    .clone()
}

/// A running server on an ephemeral loopback port; cancelled and joined on drop
/// via [`Camera::stop`].
struct Camera {
    port: u16,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Camera {
    async fn start(cameras: usize) -> Self {
        let clip = tokio::task::spawn_blocking(clip).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, cameras, clip, shutdown.clone()));
        Camera {
            port,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns promptly after shutdown")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn retina_receives_paced_frames_with_regular_key_frames() {
    let cam = Camera::start(2).await;
    let url = url::Url::parse(&format!("rtsp://127.0.0.1:{}/cam2", cam.port)).unwrap();
    let mut session = retina::client::Session::describe(url, Default::default())
        .await
        .expect("describe");
    let stream = &session.streams()[0];
    assert_eq!(stream.media(), "video");
    assert_eq!(stream.encoding_name(), "h264");
    match stream.parameters() {
        Some(retina::codec::ParametersRef::Video(v)) => {
            assert_eq!(v.pixel_dimensions(), (320, 240))
        }
        other => panic!("no video parameters from SDP: {other:?}"),
    }
    session
        .setup(
            0,
            retina::client::SetupOptions::default()
                .transport(retina::client::Transport::Tcp(Default::default())),
        )
        .await
        .expect("setup");
    let mut demuxed = session
        .play(retina::client::PlayOptions::default())
        .await
        .expect("play")
        .demuxed()
        .expect("demuxed");

    // 60 frames spans the clip's loop point (50 frames), so it also checks
    // that timestamps keep rising across the wrap.
    let started = std::time::Instant::now();
    let mut last_ts: Option<i64> = None;
    let mut n = 0usize;
    while n < 60 {
        let item = tokio::time::timeout(Duration::from_secs(5), demuxed.next())
            .await
            .expect("frame within 5 s")
            .expect("stream ended")
            .expect("stream error");
        let retina::codec::CodecItem::VideoFrame(f) = item else {
            continue;
        };
        assert_eq!(
            f.is_random_access_point(),
            n.is_multiple_of(GOP as usize),
            "key frame flag of frame {n}"
        );
        assert_eq!(f.loss(), 0, "no RTP loss on TCP");
        let ts = f.timestamp().elapsed();
        if let Some(prev) = last_ts {
            let d = ts - prev;
            // Exactly one frame period unless the runtime skipped a tick.
            assert!(d > 0 && d % 3600 == 0, "timestamp step {d} at frame {n}");
        }
        last_ts = Some(ts);
        n += 1;
    }
    // Paced at 25 fps, not sent as fast as possible: 60 frames take ~2.4 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2000), "too fast: {took:?}");
    drop(demuxed);
    cam.stop().await;
}

#[tokio::test]
async fn ffprobe_sees_h264_of_the_right_size() {
    let cam = Camera::start(1).await;
    let url = format!("rtsp://127.0.0.1:{}/cam1", cam.port);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", "tcp", "-i", &url])
            .args([
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "json",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe finished")
    .expect("ffprobe runs (is FFmpeg installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compact: String = stdout.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains(r#""codec_name":"h264""#), "{stdout}");
    assert!(compact.contains(r#""width":320"#), "{stdout}");
    assert!(compact.contains(r#""height":240"#), "{stdout}");
    cam.stop().await;
}

/// Sends one request and reads one response header block.
async fn exchange(s: &mut TcpStream, req: &str) -> String {
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(s).await
}

async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte-at-a-time is fine for a test and never over-reads into RTP data.
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n == 1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
        if buf.first() == Some(&b'$') && buf.len() == 4 {
            // Skip an interleaved packet that raced ahead of the response.
            let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            let mut skip = vec![0; len];
            s.read_exact(&mut skip).await.unwrap();
            buf.clear();
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let body_len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map(|v| v.trim().parse::<usize>().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; body_len];
    s.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8(body).unwrap()
}

fn header<'a>(resp: &'a str, name: &str) -> &'a str {
    resp.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {resp}"))
}

#[tokio::test]
async fn protocol_edge_cases() {
    let cam = Camera::start(3).await;
    let base = format!("rtsp://127.0.0.1:{}", cam.port);
    let mut s = TcpStream::connect(("127.0.0.1", cam.port)).await.unwrap();

    let r = exchange(
        &mut s,
        &format!("OPTIONS {base}/cam1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    assert!(header(&r, "Public").contains("DESCRIBE"));

    for path in ["/cam0", "/cam4", "/cam01", "/foo", "/cam1/trackID=1"] {
        let r = exchange(
            &mut s,
            &format!("DESCRIBE {base}{path} RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("RTSP/1.0 404 "), "{path}: {r}");
        assert_eq!(header(&r, "CSeq"), "2");
    }

    let r = exchange(
        &mut s,
        &format!("DESCRIBE {base}/cam3 RTSP/1.0\r\nCSeq: 3\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    assert_eq!(header(&r, "Content-Base"), format!("{base}/cam3/"));
    for line in [
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "a=control:trackID=0",
        "a=framerate:25",
        "packetization-mode=1",
        "sprop-parameter-sets=Z",
    ] {
        assert!(r.contains(line), "SDP lacks {line}: {r}");
    }

    let r = exchange(
        &mut s,
        &format!("SETUP {base}/cam3/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 461 "), "{r}");

    let r = exchange(
        &mut s,
        &format!("PLAY {base}/cam3/ RTSP/1.0\r\nCSeq: 5\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 455 "), "PLAY before SETUP: {r}");

    let r = exchange(
        &mut s,
        &format!("SETUP {base}/cam3/trackID=0 RTSP/1.0\r\nCSeq: 6\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    assert!(header(&r, "Transport").contains("interleaved=2-3"), "{r}");
    let session = header(&r, "Session").split(';').next().unwrap().to_string();

    let r = exchange(
        &mut s,
        &format!("PLAY {base}/cam3/ RTSP/1.0\r\nCSeq: 7\r\nSession: {session}\r\nRange: npt=0.000-\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    let rtp_info = header(&r, "RTP-Info");
    assert!(
        rtp_info.starts_with(&format!("url={base}/cam3/trackID=0;seq=")),
        "{r}"
    );

    // The first interleaved packet is the key frame's SPS on channel 2, with
    // the sequence number promised in RTP-Info.
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).await.unwrap();
    assert_eq!(&hdr[..2], b"$\x02");
    let mut pkt = vec![0; u16::from_be_bytes([hdr[2], hdr[3]]) as usize];
    s.read_exact(&mut pkt).await.unwrap();
    let seq: u16 = rtp_info
        .split("seq=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), seq);
    assert_eq!(pkt[12] & 0x1f, 7);

    // Keepalive and TEARDOWN are answered while packets are flowing.
    let r = exchange(
        &mut s,
        &format!("GET_PARAMETER {base}/cam3/ RTSP/1.0\r\nCSeq: 8\r\nSession: {session}\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    assert_eq!(header(&r, "CSeq"), "8");
    let r = exchange(
        &mut s,
        &format!("TEARDOWN {base}/cam3/ RTSP/1.0\r\nCSeq: 9\r\nSession: {session}\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    assert_eq!(header(&r, "CSeq"), "9");
    // After TEARDOWN nothing more is sent: the next bytes are our response.
    let r = exchange(
        &mut s,
        &format!("OPTIONS {base}/cam3 RTSP/1.0\r\nCSeq: 10\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    let mut probe = [0u8; 1];
    let quiet = tokio::time::timeout(Duration::from_millis(200), s.read(&mut probe)).await;
    assert!(quiet.is_err(), "data after TEARDOWN");

    // Garbage gets a 400 and a closed connection; the server keeps serving.
    let mut g = TcpStream::connect(("127.0.0.1", cam.port)).await.unwrap();
    g.write_all(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), g.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(
        resp.starts_with(b"RTSP/1.0 400 "),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );

    let mut big = TcpStream::connect(("127.0.0.1", cam.port)).await.unwrap();
    let huge = format!(
        "OPTIONS {base}/cam1 RTSP/1.0\r\nX: {}\r\n",
        "a".repeat(9000)
    );
    // The server may close before reading it all; only the reply matters.
    let _ = big.write_all(huge.as_bytes()).await;
    let mut resp = Vec::new();
    // It may also reset the connection (unread bytes at close), which is fine
    // once the reply arrived; a hang is not.
    match tokio::time::timeout(Duration::from_secs(5), big.read_to_end(&mut resp)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("reading the reply to an oversized request: {e}"),
        Err(_) => panic!("no close within 5 s after an oversized request"),
    }
    assert!(
        resp.starts_with(b"RTSP/1.0 400 "),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );

    let r = exchange(&mut s, "OPTIONS * RTSP/1.0\r\nCSeq: 11\r\n\r\n").await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    drop(s);
    cam.stop().await;
}

#[tokio::test]
async fn shutdown_closes_playing_connections() {
    let cam = Camera::start(1).await;
    let base = format!("rtsp://127.0.0.1:{}", cam.port);
    let mut s = TcpStream::connect(("127.0.0.1", cam.port)).await.unwrap();
    let r = exchange(
        &mut s,
        &format!("SETUP {base}/cam1/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    )
    .await;
    let session = header(&r, "Session").split(';').next().unwrap().to_string();
    let r = exchange(
        &mut s,
        &format!("PLAY {base}/cam1/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("RTSP/1.0 200 "), "{r}");
    cam.stop().await;
    // Everything queued drains, then EOF (not a hang).
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("connection closed by shutdown")
        .expect("the queued data drains to a clean EOF, not an error");
}
