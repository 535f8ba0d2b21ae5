//! The archive tier against a real 3-node Garage cluster (replication 3) on loopback,
//! recording from the GStreamer RTSP peer: segments move to the bucket and leave the
//! disk, playback of archived footage is byte-identical to what it was while local and
//! decodes, the archive going down never stops recording and uploads resume when it
//! returns, exports of archived footage verify and `check` finds the index, the disk and
//! the bucket consistent.

mod common;
mod media;

use std::path::Path;
use std::time::Duration;

use cleannvr::archive::ReadAhead;
use cleannvr::clock::rfc3339;
use cleannvr::store::{parse_segment_name, Store};
use common::garage::{self, Cluster};
use common::*;
use media::{segment, Codec};

fn video_uri(start_ns: i64, end_ns: i64) -> String {
    format!(
        "/api/cameras/cam/video.mp4?start={}&end={}",
        rfc3339(start_ns),
        rfc3339(end_ns)
    )
}

fn finished(cam_dir: &Path) -> Vec<std::path::PathBuf> {
    files(cam_dir, ".mp4")
}

/// `GET /api/archive`, checked to show no key.
fn archive_status(http: &str, cookie: &str, secrets: &[String]) -> serde_json::Value {
    let (status, body) = get(http, "/api/archive", cookie);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{text}");
    for s in secrets {
        assert!(!text.contains(s.as_str()), "a key in /api/archive: {text}");
    }
    serde_json::from_str(&text).unwrap()
}

fn json(http: &str, path: &str, cookie: &str) -> serde_json::Value {
    let (status, body) = get(http, path, cookie);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn segments_move_to_garage_and_play_back_export_and_check_from_there() {
    let Some(bin) = garage::binary() else {
        require_peer(false, "garage (cargo install garage --locked)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&bin, dir.path(), "nvr-archive");
    let gst = GstServer::start(&[]);
    let archive = format!(
        "[archive]\nurl = \"{}\"\nbucket = \"{}\"\nregion = \"garage\"\nprefix = \"node-a\"\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nafter = \"10s\"\n",
        cluster.url(0),
        cluster.bucket,
        cluster.key_id,
        cluster.secret
    );
    let cams = format!(
        "[[camera]]\nid = \"cam\"\nurl = \"{}\"\n{archive}",
        gst.url("h264aac")
    );
    let toml = config(dir.path(), 2, &cams);
    let (mut nvr, cookie) = run_with_admin(dir.path(), &toml);
    let cam_dir = dir.path().join("data").join("cam");

    // The first finished segment, played back while it is still local.
    let seg = wait_for(Duration::from_secs(180), "a finished segment", || {
        finished(&cam_dir).into_iter().next()
    });
    let name = seg.file_name().unwrap().to_str().unwrap().to_owned();
    let start_ns = parse_segment_name(&name).unwrap();
    let uri = video_uri(start_ns + 200_000_000, start_ns + 1_500_000_000);
    // The recorder renames a segment just before indexing it: wait for the row.
    let before = wait_for(Duration::from_secs(60), "the local segment to play", || {
        let (status, body) = get(&nvr.http, &uri, &cookie);
        (status == 200).then_some(body)
    });

    // It moves: the local file goes once the copy in Garage is verified.
    wait_for(
        Duration::from_secs(240),
        "the segment to be archived",
        || {
            if nvr.log.count("archive pass failed") > 20 {
                panic!("archive keeps failing: {}", nvr.log.text());
            }
            (!seg.exists()).then_some(())
        },
    );
    let (status, after) = get(&nvr.http, &uri, &cookie);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&after));
    assert!(
        before == after,
        "playback of archived footage differs from the local playback ({} vs {} bytes)",
        after.len(),
        before.len()
    );
    let played = dir.path().join("archived.mp4");
    std::fs::write(&played, &after).unwrap();
    assert_eq!(decode_errors(&played), "", "archived playback decodes");
    // One node of the three down: playback of the archived range (a forward reader: one
    // streamed GET, blocks if the stream fails) still gives the same bytes; reads need
    // two of the three copies.
    cluster.kill_node(2);
    let (status, one_down) = get(&nvr.http, &uri, &cookie);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&one_down));
    assert!(
        one_down == before,
        "playback with a Garage node down differs ({} vs {} bytes)",
        one_down.len(),
        before.len()
    );
    cluster.restart_node(2);

    // Admins see it moved: the cluster answers, a verified upload, and the timeline's
    // recordings mark the range as archive-only.
    let secrets = [cluster.secret.clone(), cluster.key_id.clone()];
    let st = archive_status(&nvr.http, &cookie, &secrets);
    assert_eq!(st["reachable"], true, "{st}");
    let cam = st["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cam");
    assert!(
        cam.is_some_and(|c| c["last_upload"].is_string()) && st["last_upload"].is_string(),
        "{st}"
    );
    let recordings = || {
        json(
            &nvr.http,
            &format!(
                "/api/cameras/cam/recordings?start={}",
                rfc3339(start_ns - 60_000_000_000)
            ),
            &cookie,
        )
    };
    let inside = |s: &serde_json::Value, t: i64| {
        let p = |k: &str| cleannvr::clock::parse_rfc3339(s[k].as_str().unwrap()).unwrap();
        p("start") <= t && t < p("end")
    };
    let archived_at = start_ns + 500_000_000;
    let rec = recordings();
    assert!(
        rec["archive_only_ranges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| inside(s, archived_at)),
        "the archived segment's range is archive-only: {rec}"
    );
    // The newest segments are still local: those that ended less than `after` ago.
    // Waited for, not assumed at this instant: on a loaded machine the camera's session
    // or the recorder can pause for longer than `after`, and then every finished segment
    // has moved until the next one is finished.
    wait_for(
        Duration::from_secs(120),
        "a segment still local beside the archived ones",
        || {
            let rec = recordings();
            let segs = rec["segments"].as_array().unwrap();
            segs.iter()
                .any(|s| s["archive_only"] == false)
                .then_some(())
        },
    );

    // The archive goes down: recording carries on, uploads wait.
    for i in 0..3 {
        cluster.kill_node(i);
    }
    let n0 = finished(&cam_dir).len();
    let stuck = wait_for(
        Duration::from_secs(240),
        "recording to continue with the archive down",
        || {
            let now = finished(&cam_dir);
            (now.len() >= n0 + 3 && nvr.log.count("archive pass failed") > 0)
                .then(|| now[0].clone())
        },
    );
    // Admins see why: the cluster does not answer, the backlog, the error (no keys).
    let st = wait_for(
        Duration::from_secs(120),
        "the archive status to show the outage",
        || {
            let st = archive_status(&nvr.http, &cookie, &secrets);
            (st["reachable"] == false
                && st["backlog_segments"].as_u64() >= Some(1)
                && st["last_error"].is_string())
            .then_some(st)
        },
    );
    let cam = st["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cam")
        .unwrap();
    assert!(
        cam["backlog_segments"].as_u64() >= Some(1) && cam["backlog_bytes"].as_u64() > Some(0),
        "{st}"
    );
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if require_browser(&ui) {
        let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-archive");
        std::fs::create_dir_all(&screens).unwrap();
        let cfg = serde_json::json!({
            "admin": ["root", "admin pass 12345"],
            "camera": "cam",
            "archived_at": rfc3339(archived_at),
            "reachable": false,
            "secrets": secrets,
            "screens": screens,
            "name": "down",
        });
        run_ui_script("archive.mjs", &nvr.http, &cfg.to_string(), &[], &nvr.log);
        println!("screenshots in {}", screens.display());
    }
    // It comes back: the backlog moves.
    for i in 0..3 {
        cluster.restart_node(i);
    }
    wait_for(
        Duration::from_secs(300),
        "uploads to resume after the archive returned",
        || (!stuck.exists()).then_some(()),
    );
    wait_for(
        Duration::from_secs(120),
        "the archive status to clear",
        || {
            let st = archive_status(&nvr.http, &cookie, &secrets);
            (st["reachable"] == true && st["last_error"].is_null()).then_some(())
        },
    );
    nvr.stop();

    // An export of the archived range verifies.
    let out = dir.path().join("evidence");
    let (ok, text) = cli(
        &nvr.config,
        &[
            "export",
            "--camera",
            "cam",
            "--start",
            &rfc3339(start_ns + 200_000_000),
            "--end",
            &rfc3339(start_ns + 1_500_000_000),
            "--out",
            out.to_str().unwrap(),
            "--reason",
            "archive test",
        ],
        "",
    );
    assert!(ok, "{text}");
    let (ok, text) = cli(
        &nvr.config,
        &["export", "verify", out.to_str().unwrap()],
        "",
    );
    assert!(ok && text.contains("export intact"), "{text}");

    // Index, disk and bucket agree.
    let (ok, text) = cli(&nvr.config, &["check"], "");
    assert!(ok && text.contains(" 0 problems"), "{text}");
}

/// Two nodes archive into one bucket under prefixes one of which nests in the other
/// (`depot` and `depot/annex`), with the same camera id and the same segment times, so
/// their keys differ only by prefix. Retention on `depot` deletes its own oldest
/// archived footage and never the annex's; each node's `check` finds the bucket
/// consistent with its own index and takes none of the other's objects for its own.
/// A third node given the annex's own prefix finds the annex's owner marker and refuses
/// to archive (error in `/api/archive`, an alarm), leaving the annex's objects alone.
#[test]
fn nodes_sharing_a_bucket_keep_to_their_own_prefixes() {
    let Some(bin) = garage::binary() else {
        require_peer(false, "garage (cargo install garage --locked)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, &dir.path().join("garage"), "nvr-shared");
    let archive = |prefix: &str, retain_bytes: u64| {
        format!(
            "[archive]\nurl = \"{}\"\nbucket = \"{}\"\nregion = \"garage\"\nprefix = \"{prefix}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nafter = \"1s\"\n\
             retain_bytes = {retain_bytes}\n",
            cluster.url(0),
            cluster.bucket,
            cluster.key_id,
            cluster.secret
        )
    };
    // Footage from 2025 (no camera records the past): four segments on the depot node,
    // three at the same times and of another picture size on the annex node.
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a_recs, b_recs) = {
        let a = Store::open(&a_dir.join("data")).unwrap();
        let b = Store::open(&b_dir.join("data")).unwrap();
        let a_recs: Vec<_> = (0..4)
            .map(|i| segment(&a, "cam", 2.0 * i as f64, 2, Codec::H264, (320, 240), false))
            .collect();
        let b_recs: Vec<_> = (0..3)
            .map(|i| segment(&b, "cam", 2.0 * i as f64, 2, Codec::H264, (352, 288), false))
            .collect();
        (a_recs, b_recs)
    };
    let cam = "[[camera]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1:9/cam\"\nenabled = false\n";
    // The depot keeps the newest two of its segments in the archive.
    let keep: u64 = a_recs[2..].iter().map(|r| r.bytes).sum();
    let (mut a, a_cookie) = run_with_admin(
        &a_dir,
        &config(&a_dir, 2, &format!("{cam}{}", archive("depot", keep))),
    );
    let (mut b, b_cookie) = run_with_admin(
        &b_dir,
        &config(&b_dir, 2, &format!("{cam}{}", archive("depot/annex", 0))),
    );
    let uploaded = |nvr: &Nvr, cookie: &str, n: u64| {
        wait_for(Duration::from_secs(120), "uploads", || {
            let st = json(&nvr.http, "/api/storage", cookie);
            (st["archive"]["uploaded"].as_u64() >= Some(n)).then_some(())
        })
    };
    uploaded(&b, &b_cookie, 3);
    uploaded(&a, &a_cookie, 4);
    // A third node given the annex's prefix by mistake, with footage at the same times
    // (so the same keys) of another picture size: it finds the annex's owner marker and
    // refuses to archive, loudly, instead of overwriting the annex's objects and later
    // deleting them by its own retention.
    let c_dir = dir.path().join("c");
    let c_recs: Vec<_> = {
        let c = Store::open(&c_dir.join("data")).unwrap();
        (0..2)
            .map(|i| segment(&c, "cam", 2.0 * i as f64, 2, Codec::H264, (176, 144), false))
            .collect()
    };
    let (mut c, c_cookie) = run_with_admin(
        &c_dir,
        &config(&c_dir, 2, &format!("{cam}{}", archive("depot/annex", 0))),
    );
    let secrets = [cluster.secret.clone(), cluster.key_id.clone()];
    let st = wait_for(Duration::from_secs(120), "the prefix to be refused", || {
        let st = archive_status(&c.http, &c_cookie, &secrets);
        st["prefix_taken"].is_string().then_some(st)
    });
    let why = st["prefix_taken"].as_str().unwrap();
    assert!(
        why.contains("depot/annex") && why.contains("another cleannvr"),
        "{st}"
    );
    assert!(
        st["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("another cleannvr")),
        "{st}"
    );
    wait_for(Duration::from_secs(120), "the prefix alarm", || {
        let alarms = json(&c.http, "/api/alarms", &c_cookie);
        alarms["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "archive_prefix_taken" && a["active"] == true)
            .then_some(())
    });
    assert!(c.log.count("belongs to another cleannvr") > 0, "logged");
    let st = json(&c.http, "/api/storage", &c_cookie);
    assert_eq!(
        st["archive"]["uploaded"], 0,
        "the refused node uploads nothing: {st}"
    );
    c.stop();
    for r in &c_recs {
        assert!(
            c_dir.join("data").join(&r.path).exists(),
            "{} stays local",
            r.path
        );
    }
    // Retention runs when the server starts: the depot deletes its two oldest.
    a.stop();
    let mut a = Nvr::start(a.config.clone(), &["run"]);
    let a_cookie = login(&a.http, "root", "admin pass 12345");
    wait_for(Duration::from_secs(120), "depot retention", || {
        let st = json(&a.http, "/api/storage", &a_cookie);
        (st["cameras"][0]["segments"] == 2).then_some(())
    });
    a.stop();
    b.stop();

    // The annex's objects are all there, with the annex's bytes.
    let bucket = |prefix: &str| {
        let cfg: cleannvr::config::ArchiveConfig =
            toml::from_str(&archive(prefix, 0).replace("[archive]\n", "")).unwrap();
        cleannvr::archive::Archive::new(&cfg, "test").unwrap()
    };
    let lister = |prefix: &str| {
        let mut v = bucket(prefix).list().unwrap();
        v.sort();
        v
    };
    // The annex's marker names the annex's index.
    let owner = bucket("depot/annex")
        .owner()
        .unwrap()
        .expect("an owner marker");
    let b_id = Store::open(&b_dir.join("data"))
        .unwrap()
        .instance_id()
        .unwrap();
    assert_eq!(owner.instance, b_id, "{owner:?}");
    let annex = lister("depot/annex");
    let want: Vec<(String, u64)> = b_recs
        .iter()
        .map(|r| (format!("depot/annex/{}", r.path), r.bytes))
        .collect();
    assert_eq!(
        annex, want,
        "the annex's objects after the depot's retention"
    );
    let depot: Vec<_> = lister("depot")
        .into_iter()
        .filter(|(k, _)| !k.starts_with("depot/annex/"))
        .collect();
    let want: Vec<(String, u64)> = a_recs[2..]
        .iter()
        .map(|r| (format!("depot/{}", r.path), r.bytes))
        .collect();
    assert_eq!(depot, want, "the depot keeps its newest two");
    for nvr in [&a, &b] {
        let (ok, text) = cli(&nvr.config, &["check"], "");
        assert!(ok && text.contains(" 0 problems"), "{text}");
    }

    // A read-only node pointed at the annex's prefix (docs/OPERATOR.md, `read_only`):
    // `check --repair` indexes the annex's footage from the bucket and an export of it
    // verifies; its own retention (archive retain_bytes = 1) then drops its copies and
    // rows only, and the annex's objects and marker stay.
    let d_dir = dir.path().join("d");
    std::fs::create_dir_all(&d_dir).unwrap();
    let d_cfg = d_dir.join("cleannvr.toml");
    let ro = archive("depot/annex", 1).replace("[archive]\n", "[archive]\nread_only = true\n");
    std::fs::write(&d_cfg, config(&d_dir, 2, &format!("{cam}{ro}"))).unwrap();
    let (_, text) = cli(&d_cfg, &["check", "--repair"], "");
    assert!(
        text.contains("archived object is not in the index"),
        "{text}"
    );
    let (ok, text) = cli(&d_cfg, &["check"], "");
    assert!(ok && text.contains(" 0 problems"), "{text}");
    let d_data = d_dir.join("data");
    for r in &b_recs {
        assert!(d_data.join(&r.path).exists(), "{} downloaded", r.path);
    }
    let out = d_dir.join("evidence");
    let (ok, text) = cli(
        &d_cfg,
        &[
            "export",
            "--camera",
            "cam",
            "--start",
            &rfc3339(b_recs[0].start_ns),
            "--end",
            &rfc3339(b_recs[1].end_ns),
            "--out",
            out.to_str().unwrap(),
            "--reason",
            "read-only node",
        ],
        "",
    );
    assert!(ok, "{text}");
    let (ok, text) = cli(&d_cfg, &["export", "verify", out.to_str().unwrap()], "");
    assert!(ok && text.contains("export intact"), "{text}");
    let mut d = Nvr::start(d_cfg.clone(), &["run"]);
    let t = std::time::Instant::now();
    while b_recs.iter().any(|r| d_data.join(&r.path).exists()) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the read-only node's retention kept its copies:\n{}",
            d.log.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    d.stop();
    assert_eq!(
        lister("depot/annex"),
        annex,
        "the read-only node deleted none of the annex's objects"
    );
    let owner_now = bucket("depot/annex").owner().unwrap().unwrap();
    assert_eq!(
        owner_now.instance, b_id,
        "the read-only node wrote no marker"
    );
}

/// Benchmark, not a check (`--ignored`; figures in docs/BENCHMARKS.md): N segments of
/// noisy 720p (incompressible, each with its own noise seed so Garage cannot
/// deduplicate them) moved by cleannvr's archiver (`archive::pass`: upload, SHA-256
/// read-back, index, local delete) and read back through the storage seam as playback
/// reads, against curl (`--aws-sigv4`) putting and getting the same files on the same
/// cluster in the same run; and the time to the first and last byte of `video.mp4` over
/// each segment through the router, local and then archived. Reading back compares
/// ways of reading (ranged block GETs with the read-ahead settings of [`ReadAhead`], the
/// default and the fixed 4 blocks it replaced; and a forward reader's one streamed GET
/// per object, as playback and exports read), each against curl's GETs right after it,
/// in rounds.
/// `CLEANNVR_BENCH_SEGMENTS` sets N (default 12), `CLEANNVR_BENCH_ROUNDS` the rounds
/// (default 3), `CLEANNVR_BENCH_READ_AHEAD` other settings to compare
/// (`first,max,spans_per_window,max_in_flight;...`).
#[test]
#[ignore]
fn bench_archive_against_curl() {
    use std::process::Command;
    use std::time::Instant;
    let bin = garage::binary().expect("garage");
    let n: usize = std::env::var("CLEANNVR_BENCH_SEGMENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, &dir.path().join("garage"), "nvr-bench");
    let store = std::sync::Arc::new(Store::open(&dir.path().join("data")).unwrap());
    let recs: Vec<_> = (0..n)
        .map(|i| {
            let pic = format!(
                "testsrc2=size=1280x720:rate=25:duration=6,noise=alls=12:allf=t:all_seed={}",
                i + 1
            );
            media::segment_of(&store, "cam", 6.0 * i as f64, 6, Codec::H264, &pic, false)
        })
        .collect();
    let bytes: u64 = recs.iter().map(|r| r.bytes).sum();
    let mib = bytes as f64 / (1 << 20) as f64;
    // Playback through the real router (session, index, plan, audit, body), in process.
    let player = Player::new(&store);
    let local = player.times(&recs);
    // curl's copies first (the same files, before the archiver deletes them).
    let url = cluster.url(0);
    let user = format!("{}:{}", cluster.key_id, cluster.secret);
    // Garage wants the payload's hash declared; curl signs it as unsigned.
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sSf", "--aws-sigv4", "aws:amz:garage:s3", "--user", &user])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let object =
        |r: &cleannvr::store::SegmentRecord| format!("{url}/{}/peer/{}", cluster.bucket, r.path);
    let get = |r| curl(&["-o", "/dev/null", &object(r)]);
    // CPU: curl's from the children reaped (Garage's nodes are never reaped
    // while the bench runs), the archiver's from this process (it runs here).
    let cpu_s = |who| {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    let t = Instant::now();
    let cpu0 = cpu_s(libc::RUSAGE_CHILDREN);
    for r in &recs {
        let f = store.file_path(r);
        curl(&["-T", f.to_str().unwrap(), &object(r)]);
        get(r);
    }
    let curl_move = t.elapsed().as_secs_f64();
    let curl_cpu = cpu_s(libc::RUSAGE_CHILDREN) - cpu0;

    let cfg: cleannvr::config::ArchiveConfig = toml::from_str(&format!(
        "url = \"{url}\"\nbucket = \"{}\"\nregion = \"garage\"\nprefix = \"nvr\"\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nafter = \"1s\"\n",
        cluster.bucket, cluster.key_id, cluster.secret
    ))
    .unwrap();
    let archive = std::sync::Arc::new(cleannvr::archive::Archive::new(&cfg, "bench").unwrap());
    store.set_remote(archive.clone());
    let t = Instant::now();
    let cpu0 = cpu_s(libc::RUSAGE_SELF);
    let pass = cleannvr::archive::pass(
        &store,
        &archive,
        cleannvr::clock::Clock::now_ns(&cleannvr::clock::SystemClock),
        &mut Default::default(),
    )
    .unwrap();
    let nvr_move = t.elapsed().as_secs_f64();
    let nvr_cpu = cpu_s(libc::RUSAGE_SELF) - cpu0;
    assert_eq!(pass.uploaded as usize, n, "{pass:?}");
    // The same requests once the segments are only in the archive (nothing of them
    // cached: the upload's read-back does not go through the cache).
    let archived = player.times(&recs);
    // Read back: rounds in which each read-ahead setting reads every segment start to
    // end through the seam from a cold cache, each followed by curl's GETs of the same
    // objects, so every ratio compares passes seconds apart; medians over the rounds.
    // (name, read-ahead for block reads, whether the reader says it reads forward and so
    // streams each object in one GET)
    let settings: Vec<(String, ReadAhead, bool)> = match std::env::var("CLEANNVR_BENCH_READ_AHEAD")
    {
        Ok(s) => s
            .split(';')
            .map(|c| {
                let v: Vec<u64> = c.split(',').map(|x| x.trim().parse().unwrap()).collect();
                let ra = ReadAhead {
                    first: v[0],
                    max: v[1],
                    spans_per_window: v[2],
                    max_in_flight: v[3] as usize,
                };
                (format!("{ra:?}"), ra, false)
            })
            .collect(),
        Err(_) => vec![
            (
                "blocks, fixed 4 x 1 MiB read-ahead".into(),
                ReadAhead::FIXED_4,
                false,
            ),
            (
                "blocks, adaptive read-ahead (seeks)".into(),
                ReadAhead::default(),
                false,
            ),
            (
                "streamed, one GET (forward readers)".into(),
                ReadAhead::default(),
                true,
            ),
        ],
    };
    let rounds = std::env::var("CLEANNVR_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut buf = vec![0u8; 1 << 20];
    let mut times = vec![Vec::new(); settings.len()];
    for _ in 0..rounds {
        for (i, (_, ra, forward)) in settings.iter().enumerate() {
            archive.set_read_ahead(*ra);
            // Read-ahead of the playback above may still be landing.
            std::thread::sleep(Duration::from_secs(1));
            archive.clear_cache();
            let t = Instant::now();
            for r in &recs {
                let row = store.current(r).unwrap().unwrap();
                let mut f = store.open_segment(&row).unwrap();
                assert!(f.is_remote());
                if *forward {
                    f.read_forward(0..f.len());
                }
                let mut at = 0;
                while at < f.len() {
                    let k = (f.len() - at).min(buf.len() as u64) as usize;
                    f.read_exact_at(&mut buf[..k], at).unwrap();
                    at += k as u64;
                }
            }
            let seam = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for r in &recs {
                get(r);
            }
            times[i].push((seam, t.elapsed().as_secs_f64()));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{n} segments, {mib:.1} MiB\n\
         upload + read back: cleannvr archiver {:.1} MiB/s, curl {:.1} MiB/s, ratio {:.2}\n\
         CPU-s per GiB uploaded and read back: cleannvr archiver {:.2}, curl {:.2}, ratio {:.2}\n\
         read back, median of {rounds} rounds (storage seam, then curl GETs, per round):",
        mib / nvr_move,
        mib / curl_move,
        curl_move / nvr_move,
        nvr_cpu / (mib / 1024.0),
        curl_cpu / (mib / 1024.0),
        nvr_cpu / curl_cpu,
    );
    for ((name, _, _), t) in settings.iter().zip(&times) {
        println!(
            "  {name}: cleannvr {:.1} MiB/s, curl {:.1} MiB/s, ratio {:.2}",
            median(t.iter().map(|t| mib / t.0).collect()),
            median(t.iter().map(|t| mib / t.1).collect()),
            median(t.iter().map(|t| t.1 / t.0).collect()),
        );
    }
    let ms = |v: &[f64], p: f64| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize] * 1000.0
    };
    let first = |v: &[(f64, f64)]| v.iter().map(|t| t.0).collect::<Vec<_>>();
    let whole = |v: &[(f64, f64)]| v.iter().map(|t| t.1).collect::<Vec<_>>();
    println!(
        "playback of one whole segment (video.mp4, {n} requests), ms p50 / max:\n\
         first byte: local {:.1} / {:.1}, archived {:.1} / {:.1}, ratio p50 {:.1}\n\
         last byte:  local {:.1} / {:.1}, archived {:.1} / {:.1}, ratio p50 {:.1}",
        ms(&first(&local), 0.5),
        ms(&first(&local), 1.0),
        ms(&first(&archived), 0.5),
        ms(&first(&archived), 1.0),
        ms(&first(&archived), 0.5) / ms(&first(&local), 0.5),
        ms(&whole(&local), 0.5),
        ms(&whole(&local), 1.0),
        ms(&whole(&archived), 0.5),
        ms(&whole(&archived), 1.0),
        ms(&whole(&archived), 0.5) / ms(&whole(&local), 0.5),
    );
}

/// Benchmark, not a check (`--ignored`; figures in docs/BENCHMARKS.md): the recorder's
/// zero-loss figure while uploads run, against the same streams recorded without
/// `[archive]` in the same run (first, on the same idle cluster), so the report shows
/// what archiving costs recording. N streams of cleannvr-bench's camera (its own
/// process: 1080p25 at 4 Mbit/s, a fixed number of frames per session, counting every
/// frame it writes to a socket) recorded by `cleannvr run` in 2 s segments; with the
/// archive, every segment older than 4 s moves to the 3-node Garage cluster, so uploads
/// (each with its SHA-256 read-back) run the whole time. Frames lost = frames sent −
/// frames in the index rows (archived or local) once the server has stopped; the
/// server's CPU time from /proc; upload throughput = bytes uploaded and verified ÷ the
/// recording time. `CLEANNVR_BENCH_STREAMS` (default 8), `CLEANNVR_BENCH_SECONDS`
/// (default 60); `CLEANNVR_BENCH_BASELINE=0` skips the run without the archive.
#[test]
#[ignore]
fn bench_recording_while_archiving() {
    let bin = garage::binary().expect("garage");
    let var = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (n, secs) = (
        var("CLEANNVR_BENCH_STREAMS", 8),
        var("CLEANNVR_BENCH_SECONDS", 60),
    );
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, &dir.path().join("garage"), "nvr-loss");
    let mut runs = Vec::new();
    if var("CLEANNVR_BENCH_BASELINE", 1) != 0 {
        runs.push(("without [archive]", record_streams(n, secs, None)));
    }
    runs.push(("with [archive]", record_streams(n, secs, Some(&cluster))));
    println!(
        "{n} streams x {secs} s (1080p25, 4 Mbit/s), 2 s segments, archive after 4 s, \
         one run each, in this order:"
    );
    for (name, r) in &runs {
        println!("  {name}: {r}");
    }
    if let [(_, base), (_, arch)] = &runs[..] {
        println!(
            "  archiving costs recording: frames lost {} vs {}, camera lag max {:.2} vs {:.2} s, \
             server CPU {:.1} vs {:.1} s ({:.2}x)",
            arch.lost(),
            base.lost(),
            arch.lag_s,
            base.lag_s,
            arch.cpu_s,
            base.cpu_s,
            arch.cpu_s / base.cpu_s
        );
    }
}

/// What one recording run of [`bench_recording_while_archiving`] measured.
struct Recorded {
    sent: u64,
    recorded: u64,
    short: u64,
    sessions: serde_json::Value,
    lag_s: f64,
    /// The server's user + system CPU time over the whole run (start to stop), s.
    cpu_s: f64,
    wall: f64,
    /// Uploaded and verified while the camera sent: segments, bytes.
    uploaded: (u64, u64),
    archived_rows: u64,
    load: String,
}

impl Recorded {
    fn lost(&self) -> i64 {
        self.sent as i64 - self.recorded as i64
    }
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = self.uploaded.1 as f64 / (1 << 20) as f64;
        write!(
            f,
            "frames sent {}, recorded {}, lost {}, streams short {}, sessions {} \
             (camera lag at most {:.2} s); server CPU {:.1} s in {:.0} s ({:.0} % of a core); \
             uploaded and verified while recording: {} segments, {mib:.1} MiB = {:.1} MiB/s; \
             archived at the end: {} rows; load average at the end: {}",
            self.sent,
            self.recorded,
            self.lost(),
            self.short,
            self.sessions,
            self.lag_s,
            self.cpu_s,
            self.wall,
            100.0 * self.cpu_s / self.wall,
            self.uploaded.0,
            mib / self.wall,
            self.archived_rows,
            self.load
        )
    }
}

/// A process's user + system CPU time so far, s (from /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and
    // 15th of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf only reads a constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick
}

/// Records `n` streams of a fresh cleannvr-bench camera for `secs` seconds into a fresh
/// store, archiving to `cluster` if given; see [`bench_recording_while_archiving`].
fn record_streams(n: u64, secs: u64, cluster: Option<&Cluster>) -> Recorded {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    use std::time::Instant;
    let frames = secs * 25;
    let dir = tempfile::tempdir().unwrap();
    let mut cam = Command::new(env!("CARGO_BIN_EXE_cleannvr-bench"))
        .args(["camera", "--cameras", &n.to_string(), "--profile", "main"])
        .args(["--frames", &frames.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting cleannvr-bench camera");
    let mut cam_in = cam.stdin.take().unwrap();
    let mut cam_out = std::io::BufReader::new(cam.stdout.take().unwrap());
    let mut line = String::new();
    cam_out.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("camera: {line:?}"))
        .to_owned();
    let mut stats = || -> serde_json::Value {
        writeln!(cam_in, "stats").unwrap();
        cam_in.flush().unwrap();
        let mut line = String::new();
        cam_out.read_line(&mut line).unwrap();
        serde_json::from_str(line.trim()).unwrap()
    };
    let mut cams: String = (1..=n)
        .map(|i| format!("[[camera]]\nid = \"cam{i}\"\nurl = \"{base}/cam{i}\"\n"))
        .collect();
    if let Some(cluster) = cluster {
        cams.push_str(&format!(
            "[archive]\nurl = \"{}\"\nbucket = \"{}\"\nregion = \"garage\"\nprefix = \"nvr\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nafter = \"4s\"\n",
            cluster.url(0),
            cluster.bucket,
            cluster.key_id,
            cluster.secret
        ));
    }
    let (mut nvr, cookie) = run_with_admin(dir.path(), &config(dir.path(), 2, &cams));
    let t0 = Instant::now();
    let uploaded = |nvr: &Nvr| {
        let st = json(&nvr.http, "/api/storage", &cookie);
        (
            st["archive"]["uploaded"].as_u64().unwrap_or(0),
            st["archive"]["uploaded_bytes"].as_u64().unwrap_or(0),
        )
    };
    let deadline = Duration::from_secs(secs + 120);
    let mut last = serde_json::Value::Null;
    while last["finished"].as_u64() < Some(n) {
        assert!(
            t0.elapsed() < deadline,
            "the camera's sessions did not finish: {last}\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(500));
        last = stats();
    }
    let wall = t0.elapsed().as_secs_f64();
    let uploaded = uploaded(&nvr);
    let cpu_s = cpu_seconds(nvr.pid());
    // The last frames drain out of the sockets; a graceful stop indexes the open segments.
    std::thread::sleep(Duration::from_secs(2));
    let sent = stats();
    nvr.stop();
    drop(cam_in);
    let _ = cam.wait();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let (mut recorded, mut short, mut archived_rows) = (0u64, 0u64, 0u64);
    for i in 1..=n {
        let rows: Vec<_> = store
            .iter_camera(&format!("cam{i}"))
            .map(|r| r.unwrap())
            .collect();
        let f: u64 = rows.iter().map(|r| r.frames).sum();
        archived_rows += rows.iter().filter(|r| r.archived.is_some()).count() as u64;
        recorded += f;
        short += u64::from(f < frames);
    }
    Recorded {
        sent: sent["frames"].as_u64().unwrap(),
        recorded,
        short,
        sessions: sent["sessions"].clone(),
        lag_s: sent["late_max_us"].as_u64().unwrap_or(0) as f64 / 1e6,
        cpu_s,
        wall,
        uploaded,
        archived_rows,
        load: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// The benchmark's player: the real router over the bench's store, in this process.
struct Player {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    cookie: String,
}

impl Player {
    fn new(store: &std::sync::Arc<Store>) -> Player {
        use tower::ServiceExt;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\n\
             [[camera]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1:9/x\"\nenabled = false\n",
            store.dir().display()
        );
        let cfg =
            cleannvr::config::Config::from_toml(&toml, Path::new("b.toml"), |_| None).unwrap();
        let _in = rt.enter();
        let app = std::sync::Arc::new(
            cleannvr::web::App::new(
                cfg,
                store.clone(),
                Default::default(),
                std::sync::Arc::new(cleannvr::clock::SystemClock),
                Default::default(),
                Default::default(),
            )
            .unwrap(),
        );
        app.users
            .add(
                "bench",
                cleannvr::auth::Role::Viewer,
                None,
                "bench password 1",
                0,
            )
            .unwrap();
        let router = cleannvr::web::router(app);
        let req = axum::http::Request::post("/api/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                r#"{"username":"bench","password":"bench password 1"}"#,
            ))
            .unwrap();
        let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        Player { rt, router, cookie }
    }

    /// Seconds to the first and to the last body byte of `video.mp4` over each segment.
    fn times(&self, recs: &[cleannvr::store::SegmentRecord]) -> Vec<(f64, f64)> {
        use futures::StreamExt;
        use tower::ServiceExt;
        recs.iter()
            .map(|r| {
                let req = axum::http::Request::get(video_uri(r.start_ns, r.end_ns))
                    .header("cookie", &self.cookie)
                    .body(axum::body::Body::empty())
                    .unwrap();
                self.rt.block_on(async {
                    let t = std::time::Instant::now();
                    let resp = self.router.clone().oneshot(req).await.unwrap();
                    assert_eq!(resp.status(), 200, "{}", r.path);
                    let mut body = resp.into_body().into_data_stream();
                    let first = body.next().await.unwrap().unwrap();
                    let ttfb = t.elapsed().as_secs_f64();
                    let mut n = first.len();
                    while let Some(b) = body.next().await {
                        n += b.unwrap().len();
                    }
                    assert!(n as u64 > r.bytes / 2, "{}: {n} bytes played", r.path);
                    (ttfb, t.elapsed().as_secs_f64())
                })
            })
            .collect()
    }
}
