//! Live view end to end: GStreamer camera → cleannvr → WebSocket. The
//! messages, concatenated, must form a fragmented MP4 that ffmpeg decodes:
//! picture and sound (the camera's AAC as sent, its G.711 as converted to AAC).

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
    let mut clocks = Vec::new();
    // Generous: the camera session may still be starting on a loaded machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while fragments < 60 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{fragments} live fragments after 120 s\nlog:\n{}",
                    nvr.log.text()
                )
            })
            .unwrap()
            .unwrap();
        match msg {
            Message::Text(t) if head.is_none() => {
                head = Some(serde_json::from_str::<serde_json::Value>(&t).unwrap())
            }
            Message::Text(t) if head.is_some() => {
                let c = serde_json::from_str::<serde_json::Value>(&t).unwrap();
                assert_eq!(c["type"], "clock", "{c}");
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                clocks.push((
                    c["t"].as_f64().unwrap(),
                    c["wall_ms"].as_i64().unwrap(),
                    now_ms,
                ));
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
    // Each key frame came with the wall time it arrived: the first at decode time 0,
    // all of them moments before they reached us, and in step with the timeline.
    assert!(!clocks.is_empty(), "no clock message");
    assert_eq!(clocks[0].0, 0.0, "{clocks:?}");
    for (t, wall, now) in &clocks {
        assert!((0..30_000).contains(&(now - wall)), "{clocks:?}");
        let (t0, wall0, _) = clocks[0];
        let drift = (wall - wall0) as f64 - (t - t0) * 1000.0;
        assert!(drift.abs() < 5000.0, "clock off the timeline: {clocks:?}");
    }
    // Two tracks, named as MediaSource.addSourceBuffer wants them.
    let codec = head["codec"].as_str().unwrap();
    assert!(
        codec.starts_with("avc1.") && codec.ends_with(",mp4a.40.2"),
        "{head}"
    );
    assert_eq!(head["audio"], "mp4a.40.2", "{head}");
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
    assert_eq!(
        codecs(&file),
        ["h264", "aac"],
        "init + fragments: picture and sound"
    );
    let (video_s, audio_s) = (seconds(&file, "v:0"), seconds(&file, "a:0"));
    assert!(
        audio_s > 1.0 && (video_s - audio_s).abs() < 1.0,
        "sound decoded alongside the picture: video {video_s} s, audio {audio_s} s"
    );

    // The sub stream is its own feed; unknown stream names are refused.
    let mut req = format!("{ws_url}?stream=sub")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut sub, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(120), sub.next())
        .await
        .unwrap_or_else(|_| panic!("no init on the sub stream\nlog:\n{}", nvr.log.text()))
        .unwrap()
        .unwrap();
    // Its G.711 sound reaches viewers as the AAC the recorder gets.
    assert!(
        matches!(first, Message::Text(ref t) if t.contains("\"init\"") && t.contains("\"audio\":\"mp4a.40.2\"")),
        "{first:?}"
    );
    let mut sub_mp4 = Vec::new();
    let mut sub_fragments = 0;
    while sub_fragments < 75 {
        let msg = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .expect("sub stream fragments")
            .unwrap()
            .unwrap();
        if let Message::Binary(b) = msg {
            sub_fragments += usize::from(!sub_mp4.is_empty());
            sub_mp4.extend_from_slice(&b);
        }
    }
    let sub_file = dir.path().join("live-sub.mp4");
    std::fs::write(&sub_file, &sub_mp4).unwrap();
    assert_eq!(decode_errors(&sub_file), "");
    assert_eq!(codecs(&sub_file), ["h264", "aac"]);
    let (video_s, audio_s) = (seconds(&sub_file, "v:0"), seconds(&sub_file, "a:0"));
    assert!(
        audio_s > 1.0 && (video_s - audio_s).abs() < 1.0,
        "converted sound alongside the picture: video {video_s} s, audio {audio_s} s"
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

/// Seconds of one stream of `file` as decoded: the end of its last frame.
fn seconds(file: &std::path::Path, stream: &str) -> f64 {
    let v = ffprobe(
        file,
        &[
            "-select_streams",
            stream,
            "-show_entries",
            "frame=pts_time,duration_time",
        ],
    );
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let t: f64 = f["pts_time"].as_str()?.parse().ok()?;
            let d: f64 = f["duration_time"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
            Some(t + d)
        })
        .fold(0.0, f64::max)
}

/// Viewers whose connection never drains (a tablet on a bad Wi-Fi, a hung browser, a
/// hostile client) fill their socket buffers until the server's writes stall; recording
/// of the same camera must go on with no gap, since publishing to viewers never waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_that_never_read_do_not_slow_recording() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        dir.path(),
        2,
        &format!(
            "[[camera]]\nid = \"cam\"\nurl = \"{}\"\n",
            gst.url("h264frag")
        ),
    );
    let (nvr, cookie) = run_with_admin(dir.path(), &toml);
    let base = nvr.http.clone();
    let server_port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let ws_url = format!("{}/api/cameras/cam/live", base.replacen("http", "ws", 1));
    wait_for(
        Duration::from_secs(120),
        "the camera to deliver frames",
        || (camera_status(&base, &cookie, "cam")["frames"].as_u64()? > 50).then_some(()),
    );

    // Three viewers with tiny receive buffers that are never read from.
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let tcp = sock
            .connect(format!("127.0.0.1:{server_port}").parse().unwrap())
            .await
            .unwrap();
        let client_port = tcp.local_addr().unwrap().port();
        let mut req = ws_url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        let (ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        stuck.push((ws, client_port));
    }
    // The server really is stuck on them: data it could not hand over waits in its
    // send queues.
    let start = std::time::SystemTime::now();
    // (a queue of more than 64 KiB that does not move for a second).
    let queues = || -> Vec<Option<u64>> {
        stuck
            .iter()
            .map(|(_, p)| server_send_queue(server_port, *p))
            .collect()
    };
    wait_for(
        Duration::from_secs(90),
        "the server's sends to stall",
        || {
            let before = queues();
            std::thread::sleep(Duration::from_secs(1));
            (before == queues() && before.iter().all(|q| q.is_some_and(|q| q > 65536)))
                .then_some(())
        },
    );
    // Long enough for the viewers to fall further behind than the live queue holds
    // (256 frames, ~10 s at 25 fps): a publisher that waited for them would stop here.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let frames_before = camera_status(&base, &cookie, "cam")["frames"]
        .as_u64()
        .unwrap();
    // Ten more seconds with every viewer stalled.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stalled_until = std::time::SystemTime::now();
    // (The server closes a viewer whose writes stay stalled for 30 s; the window above
    // ends well before that.)
    eprintln!(
        "server send queues to the stalled viewers: {:?} bytes",
        queues()
    );
    let frames_after = camera_status(&base, &cookie, "cam")["frames"]
        .as_u64()
        .unwrap();
    // A publisher that waited for the viewers would take next to none; the peer
    // sends 250 in 10 s, fewer when a loaded machine starves it: 50 is plenty to
    // tell the two apart without asserting speed.
    assert!(
        frames_after >= frames_before + 50,
        "ingest kept taking frames while viewers stalled: {frames_before} -> {frames_after}\nlog:\n{}",
        nvr.log.text()
    );

    // The index covers the whole stall without a gap.
    let rfc3339 = |t: std::time::SystemTime| {
        cleannvr::clock::rfc3339(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64)
    };
    let (from, to) = (rfc3339(start), rfc3339(stalled_until));
    let path = format!("/api/cameras/cam/recordings?start={from}&end={to}");
    let rec = wait_for(Duration::from_secs(120), "the stall's last segment", || {
        let (code, body) = get(&base, &path, &cookie);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let last_end = v["ranges"].as_array()?.last()?["end"].as_str()?.to_owned();
        (last_end >= to).then_some(v)
    });
    let gaps = rec["gaps"].as_array().unwrap();
    assert!(
        gaps.is_empty(),
        "recording gaps while viewers stalled: {rec}"
    );
    drop(stuck);
}
