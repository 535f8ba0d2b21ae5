//! Live view end to end: GStreamer camera → cleannvr → WebSocket. The
//! messages, concatenated, must form a fragmented MP4 that ffmpeg decodes.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread")]
async fn live_websocket_streams_decodable_fmp4_and_is_audited() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        dir.path(),
        60,
        &format!(
            "[[camera]]\nid = \"cam\"\nurl = \"{}\"\nsub_url = \"{}\"\n",
            gst.url("h264aac"),
            gst.url("h264pcmu")
        ),
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "alice", "viewer", "live view pass 1");
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start(cfg, &["run"]);
    let base = nvr.http.clone();
    let ws_url = format!("{}/api/cameras/cam/live", base.replacen("http", "ws", 1));

    // Without a session the upgrade is refused.
    let err = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    let cookie = login(&base, "alice", "live view pass 1");
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    let mut head = None;
    let mut mp4 = Vec::new();
    let mut fragments = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fragments < 60 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("live frames")
            .unwrap()
            .unwrap();
        match msg {
            Message::Text(t) if head.is_none() => {
                head = Some(serde_json::from_str::<serde_json::Value>(&t).unwrap())
            }
            Message::Binary(b) if head.is_some() => {
                if !mp4.is_empty() {
                    fragments += 1;
                }
                mp4.extend_from_slice(&b);
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    let head = head.unwrap();
    assert_eq!(head["type"], "init");
    assert!(
        head["codec"].as_str().unwrap().starts_with("avc1."),
        "{head}"
    );
    assert_eq!(
        (head["width"].as_u64(), head["height"].as_u64()),
        (Some(640), Some(360))
    );

    let file = dir.path().join("live.mp4");
    std::fs::write(&file, &mp4).unwrap();
    assert_eq!(decode_errors(&file), "");
    assert!(starts_with_key_frame(&file), "live starts at a key frame");
    let frames = ffprobe(
        &file,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
        ],
    );
    let n: u64 = frames["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 60, "{n} frames");

    // The sub stream is its own feed; unknown stream names are refused.
    let mut req = format!("{ws_url}?stream=sub")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut sub, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first, Message::Text(ref t) if t.contains("\"init\"")),
        "{first:?}"
    );
    let mut req = format!("{ws_url}?stream=fisheye")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");

    // The view is in the audit trail, attributed to alice. Only admins read it.
    let (status, _) = get(&base, "/api/audit", &cookie);
    assert_eq!(status, 403);
    let admin = login(&base, "root", "admin pass 12345");
    let (status, body) = get(&base, "/api/audit", &admin);
    assert_eq!(status, 200);
    let audit: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let text = audit.to_string();
    assert!(
        text.contains("live_view") && text.contains("alice") && text.contains("\"cam\""),
        "{text}"
    );
    drop(ws);
    drop(nvr);
}
