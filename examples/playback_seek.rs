//! Benchmark: time to first byte of `video.mp4` for a 10-minute range at a random point of
//! a 30-day archive, against a 1-day archive (the figure must not depend on archive size)
//! and against ffmpeg doing the same job (concat demuxer, `-ss`, remux to fragmented MP4).
//!
//! ```text
//! cargo run --example playback_seek -- [--days 30] [--samples 40] [--dir /tmp/cleannvr-seek]
//! ```
//!
//! The archive is one-minute segments (640x360, 25 fps, 1 s GOP) of a real libx264 clip,
//! written with our segment writer; every index row points at one of 10 distinct files, so
//! the index has the full month while the disk holds 20 MB. Requests go through the real
//! router (session check, index lookup, plan, audit entry, first body chunk). The page
//! cache is warm: this measures our work, not the disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use futures::StreamExt;
use tower::ServiceExt;

use cleannvr::auth::Role;
use cleannvr::clock::rfc3339;
use cleannvr::demo::{encode_clip, ClipOptions};
use cleannvr::mp4::{self, Sample, TrackConfig, TrackKind, TrackRun};
use cleannvr::store::{segment_rel_path, SegmentRecord, Store};
use cleannvr::web::{self, App};

const NS: i64 = 1_000_000_000;
const MIN: i64 = 60 * NS;
/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600 * NS;
const FILES: usize = 10;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// Writes one-minute segment files of the clip; returns (relative path, record template).
fn write_files(store: &Store) -> anyhow::Result<Vec<SegmentRecord>> {
    let opts = ClipOptions {
        width: 640,
        height: 360,
        fps: 25,
        bitrate_kbps: 256,
        gop_frames: 25,
        seconds: 60,
    };
    let clip = encode_clip(&opts)?;
    let avcc = mp4::avcc_from_parameter_sets(&clip.sps, &clip.pps);
    let entry = mp4::avc1_sample_entry(640, 360, &avcc);
    let mut out = Vec::new();
    for i in 0..FILES {
        let start = T0 - (i as i64 + 1) * 86_400 * NS; // outside the indexed month
        let rel = segment_rel_path("cam", start);
        let path = store.dir().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap())?;
        let mut buf = Vec::new();
        mp4::write_init(
            &[TrackConfig {
                track_id: 1,
                kind: TrackKind::Video {
                    width: 640,
                    height: 360,
                },
                timescale: 90_000,
                sample_entry: entry.clone(),
            }],
            &mut buf,
        );
        let mut keyframes = Vec::new();
        for (g, gop) in clip.frames.chunks(25).enumerate() {
            keyframes.push((g as u64 * 90_000, buf.len() as u64));
            let data: Vec<Vec<u8>> = gop
                .iter()
                .map(|f| {
                    let mut d = Vec::new();
                    for n in &f.nals {
                        d.extend_from_slice(&(n.len() as u32).to_be_bytes());
                        d.extend_from_slice(n);
                    }
                    d
                })
                .collect();
            let samples: Vec<Sample> = gop
                .iter()
                .zip(&data)
                .map(|(f, d)| Sample {
                    duration: 3600,
                    size: d.len() as u32,
                    is_sync: f.is_key,
                    composition_offset: 0,
                })
                .collect();
            mp4::write_fragment_header(
                g as u32 + 1,
                &[TrackRun {
                    track_id: 1,
                    base_decode_time: g as u64 * 90_000,
                    samples: &samples,
                }],
                &mut buf,
            );
            for d in data {
                buf.extend_from_slice(&d);
            }
        }
        std::fs::write(&path, &buf)?;
        out.push(SegmentRecord {
            camera: "cam".into(),
            start_ns: start,
            end_ns: start + MIN,
            path: rel,
            bytes: buf.len() as u64,
            codec: "avc1.42c01e".into(),
            width: 640,
            height: 360,
            frames: clip.frames.len() as u64,
            has_audio: false,
            keyframes,
            drift_ms: 0,
            archived: None,
        });
    }
    Ok(out)
}

struct Archive {
    router: axum::Router,
    cookie: String,
    files: Vec<PathBuf>,
    minutes: i64,
}

fn archive(
    dir: &Path,
    days: i64,
    files: &[SegmentRecord],
    store: Store,
) -> anyhow::Result<Archive> {
    let minutes = days * 1440;
    let t = Instant::now();
    for m in 0..minutes {
        let mut rec = files[m as usize % FILES].clone();
        rec.start_ns = T0 + m * MIN;
        rec.end_ns = rec.start_ns + MIN;
        store.insert(&rec)?;
    }
    eprintln!(
        "indexed {minutes} segments in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\n\
         [[camera]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1/x\"\n",
        dir.display()
    );
    let cfg = cleannvr::config::Config::from_toml(&toml, Path::new("b.toml"), |_| None)?;
    let store = Arc::new(store);
    let app = Arc::new(App::new(
        cfg,
        store.clone(),
        Default::default(),
        Arc::new(cleannvr::clock::SystemClock),
        Default::default(),
        Default::default(),
    )?);
    app.users
        .add("bench", Role::Viewer, None, "bench password 1", 0)?;
    let router = web::router(app);
    let paths = files.iter().map(|r| store.file_path(r)).collect();
    Ok(Archive {
        router,
        cookie: String::new(),
        files: paths,
        minutes,
    })
}

async fn login(a: &mut Archive) -> anyhow::Result<()> {
    let req = Request::post("/api/login")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"username":"bench","password":"bench password 1"}"#,
        ))?;
    let resp = a.router.clone().oneshot(req).await?;
    let set = resp.headers()["set-cookie"].to_str()?.to_owned();
    a.cookie = set.split(';').next().unwrap_or_default().to_owned();
    Ok(())
}

/// Seconds to the first body byte of a random 10-minute range, `n` times (sorted).
async fn ours(a: &Archive, n: usize, seed: &mut u64) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let start = T0 + (rand(seed) % ((a.minutes - 10) * 60_000) as u64) as i64 * 1_000_000;
        let uri = format!(
            "/api/cameras/cam/video.mp4?start={}&end={}",
            rfc3339(start),
            rfc3339(start + 10 * MIN)
        );
        let t = Instant::now();
        let req = Request::get(&uri)
            .header("cookie", &a.cookie)
            .body(Body::empty())?;
        let resp = a.router.clone().oneshot(req).await?;
        anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
        let mut body = resp.into_body().into_data_stream();
        let first: Bytes = body.next().await.transpose()?.unwrap_or_default();
        out.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(!first.is_empty());
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// ffmpeg remuxing the same kind of range from the segment files (concat list of the 11
/// files a 10-minute range touches, `-ss` to the offset): seconds to its first byte.
fn ffmpeg_peer(a: &Archive, dir: &Path, n: usize, seed: &mut u64) -> anyhow::Result<Vec<f64>> {
    let list = dir.join("concat.txt");
    let mut out = Vec::new();
    for _ in 0..n {
        let first = rand(seed) as usize % FILES;
        let mut text = String::new();
        for i in 0..11 {
            text.push_str(&format!(
                "file '{}'\n",
                a.files[(first + i) % FILES].display()
            ));
        }
        std::fs::write(&list, text)?;
        let offset = (rand(seed) % 60_000) as f64 / 1000.0;
        let t = Instant::now();
        let mut child = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-ss",
                &format!("{offset:.3}"),
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
            ])
            .arg(&list)
            .args([
                "-t",
                "600",
                "-c",
                "copy",
                "-movflags",
                "frag_keyframe+empty_moov",
                "-f",
                "mp4",
                "pipe:1",
            ])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut b = [0u8; 1];
        use std::io::Read;
        child.stdout.as_mut().unwrap().read_exact(&mut b)?;
        out.push(t.elapsed().as_secs_f64());
        let _ = child.kill();
        let _ = child.wait();
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

fn rand(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize] * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let days: i64 = arg("--days", "30").parse()?;
    let n: usize = arg("--samples", "40").parse()?;
    let root = PathBuf::from(arg("--dir", "/tmp/cleannvr-seek"));
    let _ = std::fs::remove_dir_all(&root);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rows = Vec::new();
    for d in [1, days] {
        let dir = root.join(format!("{d}d"));
        let store = Store::open(&dir)?;
        let files = write_files(&store)?;
        let mut a = archive(&dir, d, &files, store)?;
        login(&mut a).await?;
        ours(&a, 3, &mut seed).await?; // warm up: page cache, lazy statics
        let v = ours(&a, n, &mut seed).await?;
        let p = ffmpeg_peer(&a, &dir, n.min(20), &mut seed)?;
        rows.push((d, v, p));
    }
    println!("| archive | segments | cleannvr TTFB p50 / p95 / max (ms) | ffmpeg TTFB p50 (ms) | ratio p50 |");
    println!("|---|---|---|---|---|");
    for (d, v, p) in &rows {
        println!(
            "| {d} days | {} | {:.1} / {:.1} / {:.1} | {:.1} | {:.3} |",
            d * 1440,
            pct(v, 0.5),
            pct(v, 0.95),
            pct(v, 1.0),
            pct(p, 0.5),
            pct(v, 0.5) / pct(p, 0.5)
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
