//! Live view as H.264 (`/live?codec=h264`) end to end: GStreamer H.265 and H.264
//! cameras → cleannvr → WebSocket. H.265 comes out as H.264 that ffmpeg decodes, from
//! one transcoder shared by all its viewers and bounded by the transcode limit; H.264
//! passes through byte for byte. The camera's sound goes along as it is.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, cookie: &str) -> Result<Ws, WsError> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// What a viewer received: the init's JSON head, the binary init, then fragments.
struct Received {
    head: serde_json::Value,
    init: Vec<u8>,
    fragments: Vec<Vec<u8>>,
}

/// Reads until `n` fragments have arrived after the first init (a second init fails
/// the test: the stream's parameters must not change here).
async fn receive(ws: &mut Ws, n: usize) -> Received {
    let mut head = None;
    let mut init = None;
    let mut fragments = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while fragments.len() < n {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("live messages in time")
            .expect("socket open")
            .expect("no socket error");
        match msg {
            Message::Text(t) if head.is_none() => {
                head = Some(serde_json::from_str::<serde_json::Value>(&t).unwrap())
            }
            // The key frames' wall clocks (tests/live_ws.rs checks them).
            Message::Text(t) if t.contains("\"clock\"") => {}
            Message::Binary(b) if head.is_some() && init.is_none() => init = Some(b.to_vec()),
            Message::Binary(b) if init.is_some() => fragments.push(b.to_vec()),
            other => panic!("unexpected message {other:?}"),
        }
    }
    Received {
        head: head.unwrap(),
        init: init.unwrap(),
        fragments,
    }
}

/// The `mdat` payload of a one-frame `moof`+`mdat` message.
fn mdat(fragment: &[u8]) -> &[u8] {
    let moof = u32::from_be_bytes(fragment[..4].try_into().unwrap()) as usize;
    assert_eq!(&fragment[moof + 4..moof + 8], b"mdat");
    &fragment[moof + 8..]
}

/// A series' value from a Prometheus text page.
fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {page}"))
}

fn metrics(base: &str, admin: &str) -> String {
    let (status, body) = get(base, "/metrics", admin);
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

fn probe_video(file: &Path) -> serde_json::Value {
    ffprobe(
        file,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ],
    )["streams"][0]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn h265_camera_is_transcoded_once_for_all_viewers_and_h264_passes_through() {
    // One slot, so sharing is what lets a second viewer in, and a second H.265 stream
    // is refused. The child inherits it; this file holds one test, so nothing races it.
    std::env::set_var("CLEANNVR_MAX_TRANSCODES", "1");
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        dir.path(),
        60,
        &format!(
            "[[camera]]\nid = \"hevc\"\nurl = \"{h265}\"\nsub_url = \"{h265}\"\nrecord = false\n\
             [[camera]]\nid = \"avc\"\nurl = \"{h264}\"\nrecord = false\n",
            h265 = gst.url("h265aac"),
            h264 = gst.url("h264aac"),
        ),
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "alice", "viewer", "live view pass 1");
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start(cfg, &["run"]);
    let base = nvr.http.clone();
    let ws_base = base.replacen("http", "ws", 1);
    let alice = login(&base, "alice", "live view pass 1");
    let admin = login(&base, "root", "admin pass 12345");
    let started = metric(&metrics(&base, &admin), "cleannvr_transcodes_started_total");

    // H.265 as H.264: decodable, same size, enough frames.
    let url = format!("{ws_base}/api/cameras/hevc/live?codec=h264");
    let mut a = connect(&url, &alice).await.unwrap();
    let got = receive(&mut a, 60).await;
    assert_eq!(got.head["type"], "init");
    let codec = got.head["codec"].as_str().unwrap();
    // The camera's AAC passes through the conversion untouched, on the same timeline.
    assert!(
        codec.starts_with("avc1.") && codec.ends_with(",mp4a.40.2"),
        "{}",
        got.head
    );
    assert_eq!(
        (got.head["width"].as_u64(), got.head["height"].as_u64()),
        (Some(640), Some(360))
    );
    let file = dir.path().join("live-h264.mp4");
    std::fs::write(&file, [got.init.clone(), got.fragments.concat()].concat()).unwrap();
    assert_eq!(decode_errors(&file), "");
    assert!(starts_with_key_frame(&file));
    let v = probe_video(&file);
    assert_eq!(v["codec_name"], "h264", "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    let frames: u64 = v["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames >= 50, "{frames} frames");
    assert_eq!(codecs(&file), ["h264", "aac"]);

    // A second viewer (stream= combines with codec=) joins the same transcoder: the
    // one slot suffices, and it starts promptly on a key frame made for it.
    let mut b = connect(&format!("{url}&stream=main"), &alice)
        .await
        .unwrap();
    let got_b = receive(&mut b, 5).await;
    assert!(got_b.head["codec"].as_str().unwrap().starts_with("avc1."));
    let file_b = dir.path().join("live-h264-b.mp4");
    std::fs::write(&file_b, [got_b.init, got_b.fragments.concat()].concat()).unwrap();
    assert_eq!(decode_errors(&file_b), "");
    assert!(starts_with_key_frame(&file_b));
    let m = metrics(&base, &admin);
    assert_eq!(metric(&m, "cleannvr_live_transcodes_active"), 1, "{m}");
    assert_eq!(metric(&m, "cleannvr_live_transcode_viewers"), 2, "{m}");
    assert_eq!(metric(&m, "cleannvr_transcodes_active"), 1, "{m}");
    assert_eq!(
        metric(&m, "cleannvr_transcodes_started_total"),
        started + 1,
        "{m}"
    );

    // Another H.265 stream needs its own transcoder: refused like the recorded
    // transcode, with 503 and Retry-After. (Its codec is known by now: it has been
    // ingesting since start-up.)
    let sub = format!("{ws_base}/api/cameras/hevc/live?stream=sub&codec=h264");
    match connect(&sub, &alice).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            assert_eq!(resp.headers()["retry-after"], "5");
        }
        Err(e) => panic!("expected 503, got {e}"),
        Ok(_) => panic!("a second transcoder started past the limit"),
    }
    assert!(
        metric(&metrics(&base, &admin), "cleannvr_transcodes_refused_total") >= 1,
        "counted as refused"
    );

    // The last viewer leaving stops the transcoder and frees its slot.
    drop(a);
    drop(b);
    wait_for(Duration::from_secs(60), "the transcoder to stop", || {
        let m = metrics(&base, &admin);
        (metric(&m, "cleannvr_live_transcodes_active") == 0
            && metric(&m, "cleannvr_transcodes_active") == 0
            && metric(&m, "cleannvr_live_transcode_viewers") == 0)
            .then_some(())
    });

    // H.264 with codec=h264 is the camera's own feed, untouched: same init, same frames.
    let plain_url = format!("{ws_base}/api/cameras/avc/live");
    let mut plain = connect(&plain_url, &alice).await.unwrap();
    let mut asked = connect(&format!("{plain_url}?codec=h264"), &alice)
        .await
        .unwrap();
    let (p, q) = tokio::join!(receive(&mut plain, 40), receive(&mut asked, 20));
    assert_eq!(p.head, q.head);
    assert!(p.head["codec"].as_str().unwrap().starts_with("avc1."));
    assert_eq!(p.init, q.init, "same init segment");
    let first = mdat(&q.fragments[0]);
    let at = p
        .fragments
        .iter()
        .position(|f| mdat(f) == first)
        .expect("the passthrough viewer's first frame is one the plain viewer got");
    for (i, f) in q.fragments.iter().enumerate().take(p.fragments.len() - at) {
        assert_eq!(mdat(f), mdat(&p.fragments[at + i]), "frame {i}");
    }
    let m = metrics(&base, &admin);
    assert_eq!(metric(&m, "cleannvr_live_transcodes_active"), 0, "{m}");
    assert_eq!(
        metric(&m, "cleannvr_transcodes_started_total"),
        started + 1,
        "no transcode for H.264"
    );

    // The views are audited with what was asked.
    let (_, body) = get(&base, "/api/audit?action=live_view", &admin);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("codec=h264"), "{text}");
    drop(nvr);
}
