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

/// A float series' value from a Prometheus text page.
fn metric_f(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {page}"))
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns.into())
        .unwrap()
        .to_string()
}

fn parse_rfc3339(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_nanosecond() as i64
}

/// An H.265 camera `id` of the GStreamer peer, recorded or not.
fn hevc_camera(gst: &GstServer, id: &str, record: bool) -> String {
    let record = if record { "" } else { "record = false\n" };
    format!(
        "[[camera]]\nid = \"{id}\"\nurl = \"{}\"\n{record}",
        gst.url("h265aac")
    )
}

/// cleannvr on `toml` in `dir` with an admin, the converter pool fixed at `pool`
/// (`None`: sized from the measured cost). Returns it, its URL and the admin's cookie.
fn start_nvr(dir: &Path, toml: String, pool: Option<&str>) -> (Nvr, String, String) {
    let cfg = dir.join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start_with(cfg, &["run"], |c| {
        match pool {
            Some(n) => c.env("CLEANNVR_MAX_TRANSCODES", n),
            None => c.env_remove("CLEANNVR_MAX_TRANSCODES"),
        };
    });
    let base = nvr.http.clone();
    let admin = login(&base, "root", "admin pass 12345");
    (nvr, base, admin)
}

/// GET with curl, keeping the response headers (lower-cased names); returns the status,
/// the headers and the body saved to `out`.
fn get_saved(
    base: &str,
    path: &str,
    cookie: &str,
    out: &Path,
) -> (u16, std::collections::HashMap<String, String>) {
    let heads = out.with_extension("headers");
    let st = std::process::Command::new("curl")
        .args(["-sk", "-o"])
        .arg(out)
        .arg("-D")
        .arg(&heads)
        .args(["-H", &format!("Cookie: {cookie}")])
        .arg(format!("{base}{path}"))
        .status()
        .unwrap();
    assert!(st.success(), "curl {path}");
    let text = std::fs::read_to_string(&heads).unwrap();
    let mut lines = text.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let h = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, h)
}

/// Playback of the last moments of an H.265 camera whose live picture is being converted
/// anyway is served from that conversion: no second converter, so it plays even with the
/// pool full, while older footage, which the live conversion never saw, is refused.
#[tokio::test(flavor = "multi_thread")]
async fn playback_near_live_shares_the_running_live_conversion() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = hevc_camera(&gst, "hevc", true);
    // One converter: the live conversion takes it.
    let (nvr, base, admin) = start_nvr(dir.path(), config(dir.path(), 4, &cams), Some("1"));
    wait_segments(&nvr, Some(&admin), "hevc", 1);
    // Footage from before the live conversion starts.
    let before_live = unix_ns();
    let url = format!(
        "{}/api/cameras/hevc/live?codec=h264",
        base.replacen("http", "ws", 1)
    );
    let mut ws = connect(&url, &admin).await.unwrap();
    receive(&mut ws, 10).await;
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let m = metrics(&base, &admin);
    assert_eq!(metric(&m, "cleannvr_transcodes_active"), 1, "{m}");
    let started = metric(&m, "cleannvr_transcodes_started_total");
    let refused = metric(&m, "cleannvr_transcodes_refused_total");

    // The last 7 s (as far as recorded): from the live conversion, whole and decodable.
    let now = unix_ns();
    let (start, end) = (now - 7_000_000_000, now);
    let file = dir.path().join("near-live.mp4");
    let (status, h) = get_saved(
        &base,
        &format!(
            "/api/cameras/hevc/video.mp4?start={}&end={}&codec=h264",
            rfc3339(start),
            rfc3339(end)
        ),
        &admin,
        &file,
    );
    let log = || nvr.log.text();
    assert_eq!(status, 200, "{h:?}\n{}", log());
    assert_eq!(h["x-transcoded"], "h264", "{h:?}");
    assert_eq!(h["x-transcode-source"], "live", "{h:?}");
    assert_eq!(decode_errors(&file), "");
    assert!(starts_with_key_frame(&file));
    let v = probe_video(&file);
    assert_eq!(v["codec_name"], "h264", "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    // It starts at the live conversion's key frame at or before the start (one at least
    // every 2 s) and presents what the headers say.
    let (rs, re) = (
        parse_rfc3339(&h["x-recording-start"]),
        parse_rfc3339(&h["x-recording-end"]),
    );
    assert!(
        rs <= start && start - rs <= 2_100_000_000,
        "starts {} ms before the start asked for",
        (start - rs) / 1_000_000
    );
    assert!(re > start && re <= end, "{h:?}");
    let frames: i64 = v["nb_read_frames"].as_str().unwrap().parse().unwrap();
    let expected = (re - rs) as f64 / 40e6;
    assert!(
        (frames as f64 - expected).abs() <= 3.0,
        "{frames} frames for {:.2} s at 25 fps",
        (re - rs) as f64 / 1e9
    );
    let m = metrics(&base, &admin);
    assert_eq!(
        metric(&m, "cleannvr_transcodes_started_total"),
        started,
        "no conversion started for it: {m}"
    );
    assert!(
        metric_f(&m, "cleannvr_transcodes_shared_total") >= 1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "cleannvr_transcodes_active"), 1, "{m}");

    // Footage from before the live conversion started needs a converter of its own: the
    // only one is busy, so it is refused with the usual 503 and Retry-After.
    let (status, h) = get_saved(
        &base,
        &format!(
            "/api/cameras/hevc/video.mp4?start={}&end={}&codec=h264",
            rfc3339(before_live - 3_000_000_000),
            rfc3339(before_live - 1_000_000_000)
        ),
        &admin,
        &dir.path().join("old.json"),
    );
    assert_eq!(status, 503, "{h:?}");
    assert_eq!(h["retry-after"], "5");
    assert_eq!(
        metric(&metrics(&base, &admin), "cleannvr_transcodes_refused_total"),
        refused + 1
    );
    drain.abort();
    drop(nvr);
}

/// The converter pool is the CPU budget over the measured cost of one conversion: one is
/// admitted before any was measured (a core each is assumed), then as many as fit, and
/// the next is refused with 503 while the pool is full.
#[tokio::test(flavor = "multi_thread")]
async fn converter_pool_is_sized_by_the_measured_cost_of_a_conversion() {
    const CAMERAS: usize = 10;
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams: String = (0..CAMERAS)
        .map(|i| hevc_camera(&gst, &format!("c{i}"), false))
        .collect();
    let toml = config(dir.path(), 60, &cams).replacen(
        "tls = false\n",
        "tls = false\ntranscode_cpu_budget = 0.2\n",
        1,
    );
    let (nvr, base, admin) = start_nvr(dir.path(), toml, None);
    for i in 0..CAMERAS {
        wait_camera(
            &base,
            &admin,
            &format!("c{i}"),
            Duration::from_secs(120),
            "a frame",
            |s| !s["last_frame"].is_null(),
        );
    }
    let ws_url = |i: usize| {
        format!(
            "{}/api/cameras/c{i}/live?codec=h264",
            base.replacen("http", "ws", 1)
        )
    };
    let refused = |r: Result<Ws, WsError>| match r {
        Err(WsError::Http(resp)) => resp.status() == 503 && resp.headers()["retry-after"] == "5",
        _ => false,
    };
    let m = metrics(&base, &admin);
    assert_eq!(metric(&m, "cleannvr_transcode_cost_measured"), 0, "{m}");
    assert_eq!(metric_f(&m, "cleannvr_transcode_cpu_budget_cores"), 0.2);
    assert_eq!(metric(&m, "cleannvr_transcodes_limit"), 1, "{m}");

    // Before any measurement: one admitted, the next refused.
    let mut held = vec![connect(&ws_url(0), &admin).await.unwrap()];
    receive(&mut held[0], 5).await;
    assert!(
        refused(connect(&ws_url(1), &admin).await),
        "a second before measuring"
    );

    // The running conversion measures the cost; the pool is the budget over it.
    let page = wait_for(Duration::from_secs(90), "the cost to be measured", || {
        let m = metrics(&base, &admin);
        (metric(&m, "cleannvr_transcode_cost_measured") == 1).then_some(m)
    });
    let cost = metric_f(&page, "cleannvr_transcode_cost_cores");
    let limit = metric(&page, "cleannvr_transcodes_limit") as usize;
    assert!(cost > 0.0 && cost < 2.0, "{page}");
    assert_eq!(
        limit,
        ((200.0 / (cost * 1000.0).round()).floor() as usize).max(1),
        "{page}"
    );
    eprintln!("measured {cost} cores per conversion: a pool of {limit} for 0.2 cores");
    assert!(
        limit < CAMERAS,
        "this test needs a pool smaller than its {CAMERAS} cameras: {page}"
    );

    // As many as the pool holds are admitted; the next is refused while it is full.
    let mut next = 1;
    let outcome = loop {
        let r = connect(&ws_url(next), &admin).await;
        match r {
            Ok(ws) => {
                held.push(ws);
                next += 1;
                assert!(next < CAMERAS, "no refusal after {next} conversions");
            }
            other => break other,
        }
    };
    let m = metrics(&base, &admin);
    assert!(refused(outcome), "refused with 503 + Retry-After");
    let (active, now_limit) = (
        metric(&m, "cleannvr_transcodes_active") as usize,
        metric(&m, "cleannvr_transcodes_limit") as usize,
    );
    assert_eq!(active, held.len(), "{m}");
    // The pool may have been re-measured meanwhile: refused only when full, never past it.
    assert!(active >= now_limit, "refused with room left: {m}");
    assert!(
        active <= limit.max(now_limit),
        "admitted past the pool: {m}"
    );
    if limit >= 2 {
        assert!(held.len() >= 2, "the measured pool admitted more than one");
    }
    drop(held);
    drop(nvr);
}

/// Conversions that end between two of the meter's samples take their threads' CPU with
/// them while their video stays counted: playbacks converted faster than real time, one
/// after another, must not make a conversion look almost free (the pool would then be the
/// budget over nearly nothing, and admit far more than the machine can run).
#[tokio::test(flavor = "multi_thread")]
async fn short_conversions_do_not_make_the_measured_cost_look_free() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = hevc_camera(&gst, "hevc", true);
    // A fixed pool, so the playbacks are admitted whatever the cost; it is still measured.
    let (nvr, base, admin) = start_nvr(dir.path(), config(dir.path(), 4, &cams), Some("4"));
    let recorded_from = unix_ns();
    wait_segments(&nvr, Some(&admin), "hevc", 3);

    // The cost as a live conversion, running in real time, measures it.
    let url = format!(
        "{}/api/cameras/hevc/live?codec=h264",
        base.replacen("http", "ws", 1)
    );
    let mut ws = connect(&url, &admin).await.unwrap();
    receive(&mut ws, 5).await;
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    let page = wait_for(Duration::from_secs(90), "the cost to be measured", || {
        let m = metrics(&base, &admin);
        (metric(&m, "cleannvr_transcode_cost_measured") == 1).then_some(m)
    });
    let live_cost = metric_f(&page, "cleannvr_transcode_cost_cores");

    // While it runs, recorded footage (older than the live conversion's) is converted for
    // playback, one after another, each done faster than real time and between samples.
    for i in 0..6 {
        let file = dir.path().join(format!("play{i}.mp4"));
        let (status, h) = get_saved(
            &base,
            &format!(
                "/api/cameras/hevc/video.mp4?start={}&end={}&codec=h264",
                rfc3339(recorded_from),
                rfc3339(recorded_from + 12_000_000_000)
            ),
            &admin,
            &file,
        );
        assert_eq!(status, 200, "{h:?}");
        assert!(!h.contains_key("x-transcode-source"), "{h:?}");
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }
    drain.abort();
    let m = metrics(&base, &admin);
    let cost = metric_f(&m, "cleannvr_transcode_cost_cores");
    eprintln!("live conversion: {live_cost} cores; after the playbacks: {cost}");
    assert!(
        cost >= live_cost / 3.0,
        "the cost fell from {live_cost} to {cost} cores per conversion: {m}"
    );
    drop(nvr);
}

/// Benchmark (not part of the suite): what one live H.265 → H.264 conversion costs on this
/// machine as the pool measures it, and the pool that gives for a budget of one core,
/// against ffmpeg converting the same camera for the same time in the same run.
/// `cargo test --test live_transcode -- --ignored --nocapture bench_`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run by hand (docs/BENCHMARKS.md)"]
async fn bench_conversion_cost_against_ffmpeg() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = hevc_camera(&gst, "hevc", false);
    let toml = config(dir.path(), 60, &cams).replacen(
        "tls = false\n",
        "tls = false\ntranscode_cpu_budget = 1.0\n",
        1,
    );
    let (nvr, base, admin) = start_nvr(dir.path(), toml, None);
    wait_camera(
        &base,
        &admin,
        "hevc",
        Duration::from_secs(120),
        "a frame",
        |s| !s["last_frame"].is_null(),
    );
    // The whole server's CPU (ingest, web, conversion) from /proc, without and with the
    // conversion: their difference checks that the pool's figure misses no thread.
    let pid = nvr.pid();
    let server_cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    };
    let idle_secs = secs / 2;
    let c0 = server_cpu();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle = (server_cpu() - c0) / idle_secs as f64;
    let url = format!(
        "{}/api/cameras/hevc/live?codec=h264",
        base.replacen("http", "ws", 1)
    );
    let c1 = server_cpu();
    let mut ws = connect(&url, &admin).await.unwrap();
    let frames = tokio::spawn(async move {
        let mut n = 0u64;
        let end = tokio::time::Instant::now() + Duration::from_secs(secs);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
            n += u64::from(matches!(m, Message::Binary(_)));
        }
        n
    });
    let frames = frames.await.unwrap();
    let busy = (server_cpu() - c1) / secs as f64;
    let m = metrics(&base, &admin);
    let cost = metric_f(&m, "cleannvr_transcode_cost_cores");
    assert_eq!(metric(&m, "cleannvr_transcode_cost_measured"), 1, "{m}");
    let pool = metric(&m, "cleannvr_transcodes_limit");

    // The peer: ffmpeg converting the same camera for as long, its CPU from getrusage.
    let usage = || {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    let before = usage();
    let st = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
        .arg(gst.url("h265aac"))
        .args([
            "-t",
            &secs.to_string(),
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-tune", "zerolatency", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(st.success());
    let ffmpeg = (usage() - before) / secs as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap();
    eprintln!(
        "BENCH conversion of /h265aac (640x360 25 fps H.265) over {secs} s: cleannvr {cost:.3} cores \
         (measured by the pool; {frames} fragments to the viewer) -> pool of {pool} for 1.0 core; \
         ffmpeg {ffmpeg:.3} cores; ratio {:.2}; whole server {idle:.3} cores without the \
         conversion, {busy:.3} with it (difference {:.3}); load {}",
        cost / ffmpeg,
        busy - idle,
        load.trim()
    );
    drop(nvr);
}
