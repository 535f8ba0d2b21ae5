//! Helpers shared by the playback and export tests: segments written by ffmpeg at exact
//! wall times (so ranges, gaps and parameter changes are deterministic), and measurements
//! of what a file really contains (decoded frames and presented duration).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cleannvr::store::{check, segment_rel_path, SegmentRecord, Store};

/// 2025-06-01T12:00:00Z, the wall time synthetic recordings start from.
pub const T0: i64 = 1_748_779_200_000_000_000;
/// Frame interval of the synthetic segments (25 fps).
pub const FRAME_NS: i64 = 40_000_000;

/// `T0 + sec` in ns.
pub fn at(sec: f64) -> i64 {
    T0 + (sec * 1e9).round() as i64
}

/// RFC 3339 for `T0 + sec`.
pub fn rfc(sec: f64) -> String {
    cleannvr::clock::rfc3339(at(sec))
}

/// Video codec of a synthetic segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// libx264, baseline-ish, no B-frames.
    H264,
    /// libx265, no B-frames, `hvc1` sample entry.
    H265,
}

/// Writes a `seconds`-long segment of `camera` starting at `T0 + start_s`, shaped like the
/// recorder's (25 fps, one-second GOPs, one fragment per GOP, 90 kHz video, optional AAC),
/// and indexes it the way `cleannvr check --repair` would.
pub fn segment(
    store: &Store,
    camera: &str,
    start_s: f64,
    seconds: u32,
    codec: Codec,
    size: (u32, u32),
    audio: bool,
) -> SegmentRecord {
    let picture = format!(
        "testsrc2=size={}x{}:rate=25:duration={seconds}",
        size.0, size.1
    );
    segment_of(store, camera, start_s, seconds, codec, &picture, audio)
}

/// Width in pixels of one bar of [`frame_code`].
pub const CODE_BAR: u32 = 32;

/// A lavfi source (320x240, 25 fps) whose every frame shows its wall-clock frame number
/// since `T0` as 10 vertical bars, least significant bit on the left, white for 1: a
/// player's picture can be read back to the instant it shows (frame `n` is `T0 + n * 40 ms`).
pub fn frame_code(start_s: f64, seconds: u32) -> String {
    let first = (start_s * 25.0).round() as i64;
    format!(
        "nullsrc=size=320x240:rate=25:duration={seconds},\
         geq=lum='255*mod(floor((N+{first})/pow(2,floor(X/{CODE_BAR}))),2)':cb=128:cr=128"
    )
}

/// [`segment`] with the picture from lavfi source `picture` (which must be `seconds` long
/// at 25 fps).
pub fn segment_of(
    store: &Store,
    camera: &str,
    start_s: f64,
    seconds: u32,
    codec: Codec,
    picture: &str,
    audio: bool,
) -> SegmentRecord {
    let start_ns = at(start_s);
    let rel = segment_rel_path(camera, start_ns);
    let path = store.dir().join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(picture);
    if audio {
        // Encoded to ADTS first and copied in: muxing straight from the AAC encoder makes
        // ffmpeg shift video by the encoder's priming and stretch the first frame, which
        // the recorder never does.
        let adts = path.with_extension("aac");
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=440:sample_rate=48000:duration={seconds}"
            ))
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "adts"])
            .arg(&adts)
            .output()
            .expect("running ffmpeg");
        assert!(
            out.status.success(),
            "ffmpeg: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cmd.arg("-i")
            .arg(&adts)
            .args(["-c:a", "copy", "-bsf:a", "aac_adtstoasc"]);
    }
    match codec {
        Codec::H264 => cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ]),
        Codec::H265 => cmd.args([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error",
            "-tag:v",
            "hvc1",
        ]),
    };
    let out = cmd
        .args(["-pix_fmt", "yuv420p", "-video_track_timescale", "90000"])
        .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
        .args(["-f", "mp4"])
        .arg(&path)
        .output()
        .expect("running ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(path.with_extension("aac"));
    let rec = check::record_from_file(store.dir(), &rel).unwrap();
    store.insert(&rec).unwrap();
    rec
}

/// Writes `bytes` to a file in `dir` and returns its path (ffmpeg wants files to seek in).
pub fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// What ffmpeg presents from a file: frames decoded and shown, and the presented span
/// (first shown frame's time to the last one's end), as the `-f null` muxer sees them.
#[derive(Debug)]
pub struct Presented {
    /// Video frames output.
    pub frames: u64,
    /// Seconds from the first to the end of the last output video frame.
    pub duration: f64,
}

/// Decodes `file` with `ffmpeg -v error -i FILE -f null -`, asserting no errors, and
/// reports what it presented (using `-show_entries` of the decoded frames via ffprobe for
/// the times, which honour the edit list the same way).
pub fn presented(file: &Path) -> Presented {
    let errors = super::common::decode_errors(file);
    assert!(
        errors.is_empty(),
        "{} does not decode cleanly: {errors}",
        file.display()
    );
    let v = super::common::ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time,duration_time,pkt_duration_time",
        ],
    );
    let frames = v["frames"].as_array().unwrap();
    let t = |f: &serde_json::Value, k: &str| -> Option<f64> { f[k].as_str()?.parse().ok() };
    let times: Vec<(f64, f64)> = frames
        .iter()
        .filter_map(|f| {
            let pts = t(f, "pts_time")?;
            let d = t(f, "duration_time")
                .or_else(|| t(f, "pkt_duration_time"))
                .unwrap_or(0.04);
            Some((pts, d))
        })
        .filter(|(pts, _)| *pts >= -1e-6)
        .collect();
    let first = times.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
    let last = times
        .iter()
        .map(|x| x.0 + x.1)
        .fold(f64::NEG_INFINITY, f64::max);
    Presented {
        frames: times.len() as u64,
        duration: if times.is_empty() { 0.0 } else { last - first },
    }
}

/// ffprobe's format duration of `file`, seconds.
pub fn format_duration(file: &Path) -> f64 {
    let v = super::common::ffprobe(file, &["-show_entries", "format=duration"]);
    v["format"]["duration"].as_str().unwrap().parse().unwrap()
}

/// The web app in process (router driven with `oneshot`), with users of every role and a
/// storage dir to fill with [`segment`].
pub struct Web {
    /// Keeps the storage directory alive.
    pub dir: tempfile::TempDir,
    /// The app state.
    pub app: std::sync::Arc<cleannvr::web::App>,
    /// The router under test.
    pub router: axum::Router,
}

/// Password of every test user.
pub const PW: &str = "correct horse battery";

/// A response, collected.
pub struct Resp {
    /// Status.
    pub status: axum::http::StatusCode,
    /// Headers.
    pub headers: axum::http::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// A header as text ("" if absent).
    pub fn header(&self, k: &str) -> String {
        self.headers
            .get(k)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// A logged-in user's cookie and CSRF token.
pub struct Sess {
    /// `cleannvr_session=...`.
    pub cookie: String,
    /// CSRF token.
    pub csrf: String,
}

impl Web {
    /// Cameras `cam`, `hevc` and `other`; users `admin`, `op` (operator), `viewer`, and
    /// `limited` (viewer of `other` only).
    pub fn new() -> Web {
        Web::at(tempfile::tempdir().unwrap())
    }

    /// Like [`Web::new`], over `dir/data` (which may already hold recordings).
    pub fn at(dir: tempfile::TempDir) -> Web {
        Web::with_storage(dir, "")
    }

    /// Like [`Web::at`], with `storage` (TOML lines) added to `[storage]`.
    pub fn with_storage(dir: tempfile::TempDir, storage: &str) -> Web {
        use cleannvr::auth::Role;
        let data = dir.path().join("data");
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\n{storage}\
             [[camera]]\nid = \"cam\"\nname = \"Gate\"\nurl = \"rtsp://127.0.0.1/a\"\n\
             [[camera]]\nid = \"hevc\"\nurl = \"rtsp://127.0.0.1/b\"\n\
             [[camera]]\nid = \"other\"\nurl = \"rtsp://127.0.0.1/c\"\n",
            data.display()
        );
        let cfg =
            cleannvr::config::Config::from_toml(&toml, Path::new("t.toml"), |_| None).unwrap();
        let app = crate::common::app(
            cfg,
            std::sync::Arc::new(cleannvr::clock::SystemClock),
            Default::default(),
        );
        for (name, role, cams) in [
            ("admin", Role::Admin, None),
            ("op", Role::Operator, None),
            ("viewer", Role::Viewer, None),
            ("limited", Role::Viewer, Some(vec!["other".to_string()])),
        ] {
            app.users.add(name, role, cams, PW, 0).unwrap();
        }
        let router = cleannvr::web::router(app.clone());
        Web { dir, app, router }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.app.store
    }

    /// Sends a request; `headers` are extra headers.
    pub async fn send(
        &self,
        method: axum::http::Method,
        uri: &str,
        sess: Option<&Sess>,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Resp {
        use tower::ServiceExt;
        let mut b = axum::http::Request::builder().method(method).uri(uri);
        if let Some(s) = sess {
            b = b
                .header("cookie", &s.cookie)
                .header(cleannvr::web::CSRF_HEADER, &s.csrf);
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = body
            .map(|v| serde_json::to_vec(&v).unwrap())
            .unwrap_or_default();
        let resp = self
            .router
            .clone()
            .oneshot(b.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// `GET uri` as `sess`, the response's body not read (a download held open).
    pub async fn open(&self, uri: &str, sess: &Sess) -> axum::response::Response {
        use tower::ServiceExt;
        let req = axum::http::Request::get(uri)
            .header("cookie", &sess.cookie)
            .body(axum::body::Body::empty())
            .unwrap();
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// `GET uri` as `sess` with extra headers.
    pub async fn get(&self, uri: &str, sess: &Sess, headers: &[(&str, &str)]) -> Resp {
        self.send(axum::http::Method::GET, uri, Some(sess), headers, None)
            .await
    }

    /// Logs `user` in.
    pub async fn login(&self, user: &str) -> Sess {
        let r = self
            .send(
                axum::http::Method::POST,
                "/api/login",
                None,
                &[],
                Some(serde_json::json!({ "username": user, "password": PW })),
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "login {user}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let cookie = r.header("set-cookie").split(';').next().unwrap().to_owned();
        Sess {
            cookie,
            csrf: r.json()["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Audit entries with this action, newest first.
    pub fn audit(&self, action: cleannvr::audit::Action) -> Vec<cleannvr::audit::Entry> {
        let f = cleannvr::audit::Filter {
            action: Some(action),
            ..Default::default()
        };
        self.app.audit.query(&f, 1000).unwrap()
    }
}

/// `/api/cameras/{cam}/video.mp4?start=..&end=..` for `T0`-relative seconds.
pub fn video_uri(cam: &str, start: f64, end: f64) -> String {
    format!(
        "/api/cameras/{cam}/video.mp4?start={}&end={}",
        rfc(start),
        rfc(end)
    )
}
