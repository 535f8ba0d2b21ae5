//! A real slow disk (docs/RELIABILITY.md, "Slow disk"): the storage directory is a
//! FUSE filesystem (`tests/peers/slow_fs.py`) over a real directory whose writes to
//! the camera's files block while the test holds a stall, as a disk that stops
//! answering blocks its writer. The camera is GStreamer's RTSP server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::slow_disk::SlowDisk;
use common::*;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The camera's entry in `/api/cameras`, or `None` if the server does not answer
/// within 30 s (a server whose ingest waits on the disk may not answer at all).
fn status(base: &str, cookie: &str) -> Option<serde_json::Value> {
    let (code, body) = http(base, "GET", "/api/cameras", Some(cookie), None, None, &[]);
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == "cam")
        .cloned()
}

/// While the recorder is stuck in a write, ingest goes on reading the camera (its
/// frame count grows, the session stays up), the full queue is counted as dropped
/// frames instead of growing, and live view keeps flowing; once the disk answers
/// again the recorder resumes at a key frame, the index shows the gap, and every
/// file decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_costs_a_counted_gap_never_the_camera_session() {
    let dir = tempfile::tempdir().unwrap();
    // Declared first, so it is dropped (released and unmounted) after the server.
    let Some(disk) = SlowDisk::mount(&dir.path().join("backing"), &dir.path().join("data"), "cam")
    else {
        return;
    };
    let gst = GstServer::start(&[]);
    let toml = config(
        dir.path(),
        2,
        &format!(
            "[[camera]]\nid = \"cam\"\nurl = \"{}\"\n",
            gst.url("h264aac")
        ),
    );
    let (nvr, cookie) = run_with_admin(dir.path(), &toml);
    let base = nvr.http.clone();
    let t0 = now_ns();
    wait_segments(&nvr, Some(&cookie), "cam", 1);
    let before = status(&base, &cookie).expect("the camera's status");
    assert_eq!(before["dropped_frames"], 0, "{before}");

    // A live viewer, timestamping each fragment it receives.
    let fragments = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let viewer = {
        let mut req = format!("{}/api/cameras/cam/live", base.replacen("http", "ws", 1))
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let fragments = fragments.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Binary(_) = msg {
                    fragments.lock().unwrap().push(Instant::now());
                }
            }
        })
    };

    // The disk stops answering the camera's writes.
    let stall = disk.stall();
    let stall_ns = now_ns();
    let blocked = wait_for(
        Duration::from_secs(60),
        "the recorder to block on the stalled disk",
        || disk.out.find("stalled "),
    );
    eprintln!("the disk stalled: {blocked}");
    let since = Instant::now();
    // The queue fills (512 events: a few seconds of video and sound) and then
    // ingest drops instead of waiting.
    let first_drop = wait_for(
        Duration::from_secs(120),
        "ingest to count dropped frames while the disk stalls",
        || {
            let s = status(&base, &cookie)?;
            (s["dropped_frames"].as_u64()? > 0).then_some(s)
        },
    );
    // It keeps reading the camera and dropping for as long as the disk stalls.
    let later = wait_for(
        Duration::from_secs(60),
        "ingest to go on counting frames, and dropping them, while the disk stalls",
        || {
            let s = status(&base, &cookie)?;
            (s["frames"].as_u64()? >= first_drop["frames"].as_u64()? + 50
                && s["dropped_frames"].as_u64()? >= first_drop["dropped_frames"].as_u64()? + 50)
                .then_some(s)
        },
    );
    let live_during_stall = fragments
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t > since)
        .count();
    assert!(
        disk.out.find("released ").is_none(),
        "the recorder's write was still blocked: {}",
        disk.out.text()
    );
    eprintln!(
        "while the disk stalled: frames {} -> {}, dropped {} -> {}, live fragments {live_during_stall}",
        first_drop["frames"], later["frames"], first_drop["dropped_frames"], later["dropped_frames"]
    );
    for s in [&first_drop, &later] {
        assert_eq!(s["state"], "streaming", "{s}");
        assert_eq!(s["reconnects"], before["reconnects"], "{s}");
    }
    assert!(
        live_during_stall >= 10,
        "live view stopped with the disk: {live_during_stall} fragments"
    );
    assert!(
        nvr.log.count("recorder queue full") >= 1,
        "{}",
        nvr.log.text()
    );

    // The disk answers again: the recorder drains its queue, cuts the segment at the
    // gap, resumes at a key frame and goes on recording.
    drop(stall);
    let release_ns = now_ns();
    let recordings = format!(
        "/api/cameras/cam/recordings?start={}&end={}",
        cleannvr::clock::rfc3339(t0 - 10 * 1_000_000_000),
        cleannvr::clock::rfc3339(release_ns + 3_600 * 1_000_000_000)
    );
    let rec = wait_for(
        Duration::from_secs(120),
        "recording to resume 4 s past the stall",
        || {
            let (code, body) = get(&base, &recordings, &cookie);
            assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
            let rec: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let end = rec["ranges"].as_array()?.last()?["end"]
                .as_str()?
                .to_owned();
            let end = cleannvr::clock::parse_rfc3339(&end)?;
            (end >= release_ns + 4_000_000_000).then_some(rec)
        },
    );
    let after = status(&base, &cookie).expect("the camera's status");
    assert_eq!(after["state"], "streaming", "{after}");
    assert_eq!(
        after["reconnects"],
        before["reconnects"],
        "the camera session ended during the stall: {after}\n{}",
        nvr.log.text()
    );
    assert!(
        nvr.log.count("recorder caught up; resuming at key frame") >= 1,
        "{}",
        nvr.log.text()
    );
    viewer.abort();

    // The index shows the dropped stretch as one gap, between the stall and the
    // resumption.
    eprintln!("recordings: {rec}");
    let gaps: Vec<(i64, i64)> = rec["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let t = |k: &str| cleannvr::clock::parse_rfc3339(g[k].as_str().unwrap()).unwrap();
            (t("start"), t("end"))
        })
        .collect();
    assert!(
        gaps.iter()
            .any(|&(s, e)| s >= stall_ns - 2_000_000_000 && s < release_ns && e > s),
        "no gap in the index for the stall ({stall_ns}..{release_ns}): {rec}"
    );

    // Every file, before, during and after the stall, decodes from a key frame.
    let mut nvr = nvr;
    nvr.stop();
    let files = files(&dir.path().join("backing/cam"), ".mp4");
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        assert_eq!(decode_errors(f), "", "{}", f.display());
        assert!(starts_with_key_frame(f), "{}", f.display());
    }
    drop(gst);
    drop(disk);
}
