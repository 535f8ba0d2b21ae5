//! Playback, H.264-on-demand and snapshots of footage the recorder really wrote from a
//! third-party RTSP server (gst-rtsp-server): H.264 + AAC and H.265 + AAC, two-second
//! segments, so every range crosses segment boundaries made by real rotations.

mod common;
mod media;

use std::time::Duration;

use axum::http::StatusCode;
use cleannvr::clock::rfc3339;
use cleannvr::store::{SegmentRecord, Store};
use common::*;
use media::*;

fn uri(cam: &str, start_ns: i64, end_ns: i64) -> String {
    format!(
        "/api/cameras/{cam}/video.mp4?start={}&end={}",
        rfc3339(start_ns),
        rfc3339(end_ns)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_h264_and_h265_play_across_segments() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = format!(
        "[[camera]]\nid = \"cam\"\nurl = \"{}\"\n[[camera]]\nid = \"hevc\"\nurl = \"{}\"\n",
        gst.url("h264aac"),
        gst.url("h265aac")
    );
    let mut nvr = Nvr::run(dir.path(), &config(dir.path(), 2, &cams));
    for cam in ["cam", "hevc"] {
        let cam_dir = dir.path().join("data").join(cam);
        wait_for(
            Duration::from_secs(150),
            &format!("4 segments of {cam}"),
            || (files(&cam_dir, ".mp4").len() >= 4).then_some(()),
        );
    }
    nvr.stop();
    drop(gst);
    let rows: Vec<Vec<SegmentRecord>> = {
        let store = Store::open(&dir.path().join("data")).unwrap();
        ["cam", "hevc"]
            .iter()
            .map(|c| store.iter_camera(c).map(|r| r.unwrap()).collect())
            .collect()
    };

    let web = Web::at(dir);
    let s = web.login("viewer").await;
    for (cam, recs, codec) in [("cam", &rows[0], "h264"), ("hevc", &rows[1], "hevc")] {
        assert!(recs.len() >= 4, "{cam}: {recs:#?}");
        // From 1.3 s into the first segment to 0.7 s before the end of the last: every
        // boundary crossed, starting mid-GOP.
        let (start, end) = (
            recs[0].start_ns + 1_300_000_000,
            recs.last().unwrap().end_ns - 700_000_000,
        );
        let r = web.get(&uri(cam, start, end), &s, &[]).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{cam}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let gaps: usize = r.header("x-recording-gap-count").parse().unwrap();
        assert_eq!(gaps, 0, "{cam}: {}", r.header("x-recording-gaps"));
        let file = save(web.dir.path(), &format!("{cam}.mp4"), &r.body);
        assert_eq!(codecs(&file), [codec, "aac"], "{cam}");
        let p = presented(&file);
        let want = (end - start) as f64 / 1e9;
        assert!(
            (p.duration - want).abs() <= 0.04 + 1e-6,
            "{cam}: {p:?}, wanted {want}"
        );
        assert!(
            p.frames.abs_diff((want * 25.0).round() as u64) <= 1,
            "{cam}: {p:?}"
        );

        // A middle range request is the same bytes as in the whole.
        let mid = r.body.len() / 2;
        let part = web
            .get(
                &uri(cam, start, end),
                &s,
                &[("range", &format!("bytes={mid}-{}", mid + 99_999))],
            )
            .await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.body, r.body[mid..mid + 100_000]);

        // Snapshot of the latest key frame, at the recorded size.
        let r = web
            .get(&format!("/api/cameras/{cam}/snapshot.jpg"), &s, &[])
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let jpg = save(web.dir.path(), &format!("{cam}.jpg"), &r.body);
        let v = ffprobe(&jpg, &["-show_entries", "stream=codec_name,width,height"]);
        assert_eq!(v["streams"][0]["codec_name"], "mjpeg");
        assert_eq!(
            (
                v["streams"][0]["width"].as_u64(),
                v["streams"][0]["height"].as_u64()
            ),
            (Some(640), Some(360))
        );
    }

    // The H.265 camera as H.264 for browsers.
    let recs = &rows[1];
    let (start, end) = (recs[1].start_ns + 300_000_000, recs[2].end_ns - 100_000_000);
    let r = web
        .get(&(uri("hevc", start, end) + "&codec=h264"), &s, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let file = save(web.dir.path(), "hevc-as-h264.mp4", &r.body);
    assert_eq!(codecs(&file), ["h264"]);
    let p = presented(&file);
    let want = (end - start) as f64 / 1e9;
    assert!(
        (p.duration - want).abs() <= 0.04 + 1e-6,
        "{p:?}, wanted {want}"
    );
}
