//! Hostile or broken conditions: a camera answering with malformed SDP, and
//! a disk that fills up mid-recording. Each must give a clear log line,
//! never a crash, and never damage what was already recorded.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A fake camera that accepts RTSP and answers DESCRIBE with garbage SDP.
fn malformed_sdp_camera() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let describes = Arc::new(AtomicUsize::new(0));
    let count = describes.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push(line);
                    }
                    let cseq = head
                        .iter()
                        .find_map(|l| l.strip_prefix("CSeq: "))
                        .unwrap_or("1\r\n")
                        .trim()
                        .to_owned();
                    let body = "v=0\r\nthis is not SDP\r\nm=video banana RTP/AVP 96\r\na=rtpmap:96 H264/notanumber\r\n\x00\x01";
                    if head[0].starts_with("DESCRIBE") {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    let resp = format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://127.0.0.1:{port}/x/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, describes)
}

#[test]
fn malformed_sdp_is_reported_and_retried_with_backoff() {
    let (port, describes) = malformed_sdp_camera();
    let dir = tempfile::tempdir().unwrap();
    let cams = format!("[[camera]]\nid = \"junk\"\nurl = \"rtsp://127.0.0.1:{port}/x\"\n");
    let mut nvr = Nvr::run(dir.path(), &config(dir.path(), 2, &cams));
    let t0 = Instant::now();
    wait_for(Duration::from_secs(20), "three DESCRIBE attempts", || {
        (describes.load(Ordering::SeqCst) >= 3).then_some(())
    });
    // Backoff 1 s then 2 s (±20 %): three attempts take at least ~2.4 s.
    assert!(
        t0.elapsed() >= Duration::from_millis(2300),
        "retried too fast: {:?}",
        t0.elapsed()
    );
    let line = nvr.log.find("session ended").unwrap();
    assert!(
        line.contains("junk") && line.contains("DESCRIBE"),
        "clear error naming camera and step: {line}"
    );
    nvr.stop();
    assert!(files(dir.path(), ".mp4").is_empty());
}

/// Mounts a small tmpfs for the duration of a test (needs root, as CI has).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_frees_space_by_retention_and_keeps_recording() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_fs) = Tmpfs::mount(&data, "4m") else {
        // Mounting needs root; CI runs as root, so there this test always runs.
        assert_ne!(unsafe { libc::geteuid() }, 0, "root but mount failed");
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    };
    let gst = GstServer::start(&[]);
    let cams: String = (1..=3)
        .map(|i| {
            format!(
                "[[camera]]\nid = \"c{i}\"\nurl = \"{}\"\n",
                gst.url("h264aac")
            )
        })
        .collect();
    // min_free_bytes is set low so the disk really fills before retention steps in.
    let toml =
        config(dir.path(), 2, &cams).replace("min_free_bytes = 0", "min_free_bytes = 1000000");
    let mut nvr = Nvr::run(dir.path(), &toml);
    let err = wait_for(Duration::from_secs(90), "the disk to fill", || {
        nvr.log.find("No space left on device")
    });
    assert!(err.contains("recording error"), "{err}");
    // Recording resumes: segments are written after the error.
    let errors_at = nvr.log.count("segment path=");
    wait_for(Duration::from_secs(60), "recording to resume", || {
        (nvr.log.count("segment path=") >= errors_at + 3).then_some(())
    });
    nvr.stop();
    assert!(
        nvr.log.count("retention") > 0,
        "retention freed space: {}",
        nvr.log.text()
    );
    let mp4s = files(&data, ".mp4");
    assert!(!mp4s.is_empty());
    for f in &mp4s {
        assert_eq!(decode_errors(f), "", "{} must stay playable", f.display());
    }
    let (ok, out) = cli(&nvr.config, &["check"], "");
    assert!(ok, "check: {out}");
}
