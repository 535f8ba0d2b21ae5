//! Shared helpers for end-to-end tests: start peers and cleannvr on free
//! loopback ports, wait for readiness (never fixed sleeps), stop them.
#![allow(dead_code)]

pub mod event_camera;
pub mod garage;
pub mod ipycam;
pub mod netns;
pub mod rtp_relay;
pub mod slow_disk;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback port, free for TCP and UDP a moment ago, for a peer that binds it
/// itself.
///
/// Why not `bind(0)`: that hands out a port from the kernel's ephemeral range
/// and frees it again, and until the peer binds it, any outgoing connection
/// (a Garage node dialling another, a CLI call, an S3 client) or another
/// test's `bind(0)` may take it; the peer then fails to start. Ports here come
/// from below the ephemeral range (Linux: 32768 and up), each at most once per
/// test process, starting at a place set by the process id so that a peer left
/// over from an earlier test binary is unlikely to be in the way (and is
/// skipped by the bind check if it is).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 12_000;
    const SPAN: u32 = 20_000; // 12000..32000, below the ephemeral range
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port)).is_ok();
        if tcp && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with
/// `what` and the output of every cleannvr and GStreamer peer this test thread
/// started (so a timeout on CI explains itself).
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for_ok(timeout, what, || f().ok_or_else(String::new))
}

/// Like [`wait_for`], for a step that fails with a message: the timeout's panic
/// also carries the last failure, so a CI log says why the step never succeeded.
pub fn wait_for_ok<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                let last = if last.is_empty() {
                    String::new()
                } else {
                    format!("\nlast failure: {}", last.trim())
                };
                panic!(
                    "timed out after {timeout:?} waiting for {what}{last}\n{}",
                    diagnostics()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Output lines of the processes a test thread started, by name (weak: the
/// registry keeps no output alive).
type Registered = Vec<(&'static str, std::sync::Weak<Mutex<Vec<String>>>)>;

thread_local! {
    /// Output of the processes this test thread started, for [`diagnostics`].
    static OUTPUTS: std::cell::RefCell<Registered> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The last 300 lines of each process this test thread started (cleannvr, the
/// GStreamer peer) whose output is still held.
pub fn diagnostics() -> String {
    OUTPUTS.with(|o| {
        let mut text = String::new();
        for (name, lines) in o.borrow().iter() {
            let Some(lines) = lines.upgrade() else {
                continue;
            };
            let lines = lines.lock().unwrap();
            let skip = lines.len().saturating_sub(300);
            text.push_str(&format!(
                "--- {name} output ({} lines, last {}) ---\n",
                lines.len(),
                lines.len() - skip
            ));
            for l in &lines[skip..] {
                text.push_str(l);
                text.push('\n');
            }
        }
        text
    })
}

/// The one skip rule for tests that need a peer, a tool or root: with `available`
/// it returns true (run the test). Without it, it panics when
/// `CLEANNVR_REQUIRE_PEERS` is exactly `1` (CI, which installs every peer and runs
/// as root: a skip there would hide a test that never ran), and otherwise prints
/// `SKIPPED: needs WHAT` and returns false so the caller returns early.
pub fn require_peer(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var("CLEANNVR_REQUIRE_PEERS").as_deref() != Ok("1"),
        "CLEANNVR_REQUIRE_PEERS=1 but this test needs {what}; run .ci/install.sh as root"
    );
    eprintln!(
        "SKIPPED: needs {what}; run .ci/install.sh (set CLEANNVR_REQUIRE_PEERS=1 to fail instead)"
    );
    false
}

/// Whether this process runs as root (tmpfs mounts, network namespaces).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Collects a child's output lines in the background.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Includes these lines, as `name`, in a timeout's [`diagnostics`].
    fn register(&self, name: &'static str) {
        OUTPUTS.with(|o| o.borrow_mut().push((name, Arc::downgrade(&self.0))));
    }

    fn follow(&self, r: impl std::io::Read + Send + 'static, echo: &'static str) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_ECHO").is_some() {
                    eprintln!("[{echo}] {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
    }
    /// Every line so far, joined.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
    /// The first line containing `needle`.
    pub fn find(&self, needle: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }
}

/// The GStreamer RTSP server (third-party peer), killed on drop.
pub struct GstServer {
    child: Child,
    pub port: u16,
    pub out: Lines,
}

impl GstServer {
    /// Starts the peer on `port` with extra args, and waits until it listens.
    /// With `port` 0 the server binds a port the kernel picks and reports it (a
    /// port found free beforehand could be taken by another test in between).
    /// A fixed `port` (a camera coming back where cleannvr expects it) that is
    /// briefly taken is retried for up to 60 s.
    pub fn start_on(port: u16, extra: &[&str]) -> GstServer {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Self::try_start(port, extra) {
                Ok(server) => return server,
                Err(log) if port != 0 && log.contains("cannot listen") => {
                    assert!(
                        Instant::now() < deadline,
                        "port {port} stayed taken for 60 s: {log}"
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(log) => panic!("gst server on port {port} exited: {log}"),
            }
        }
    }

    /// One attempt: the server, or its output if it exited before listening.
    fn try_start(port: u16, extra: &[&str]) -> Result<GstServer, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/gst_rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting /usr/bin/python3 gst_rtsp_server.py (run .ci/install.sh)");
        let out = Lines::default();
        out.follow(child.stdout.take().unwrap(), "gst");
        out.follow(child.stderr.take().unwrap(), "gst");
        out.register("GStreamer RTSP server");
        let mut server = GstServer {
            child,
            port,
            out: out.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = out.find("ready ") {
                server.port = line
                    .trim()
                    .strip_prefix("ready ")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("gst server said {line:?}"));
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                // Let the output readers catch the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return Err(format!("{status}: {}", out.text()));
            }
            assert!(
                Instant::now() < deadline,
                "the GStreamer RTSP server did not listen within 60 s: {}",
                out.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts on a free port.
    pub fn start(extra: &[&str]) -> GstServer {
        Self::start_on(0, extra)
    }

    /// `rtsp://127.0.0.1:PORT/<mount>`.
    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }

    /// Lets one key frame out on `/h264nokey` (SIGUSR1 to the peer, which
    /// prints "nokey key frame sent" when it goes).
    pub fn release_key_frame(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) };
    }

    /// Kills the server now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GstServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `cleannvr` process with a temporary config, stopped on drop.
pub struct Nvr {
    child: Option<Child>,
    pub config: PathBuf,
    pub log: Lines,
    pub http: String,
}

/// The cleannvr binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cleannvr")
}

impl Nvr {
    /// Writes `toml` to `<dir>/cleannvr.toml` and starts `cleannvr run` with it.
    pub fn run(dir: &Path, toml: &str) -> Nvr {
        let config = dir.join("cleannvr.toml");
        std::fs::write(&config, toml).unwrap();
        Self::start(config, &["run"])
    }

    /// Starts `cleannvr --config CONFIG ARGS...` and waits for its web server.
    pub fn start(config: PathBuf, args: &[&str]) -> Nvr {
        Self::start_with(config, args, |_| {})
    }

    /// As [`Nvr::start`], as user and group `id` (e.g. 65534, nobody), so a test
    /// can tell cleannvr's packets from its peers' (needs root).
    pub fn start_as(config: PathBuf, args: &[&str], id: u32) -> Nvr {
        use std::os::unix::process::CommandExt;
        Self::start_with(config, args, |c| {
            c.uid(id).gid(id);
        })
    }

    /// [`Nvr::start`], with `setup` applied to the command first (a user id,
    /// or a `pre_exec` that lowers a resource limit).
    pub fn start_with(config: PathBuf, args: &[&str], setup: impl FnOnce(&mut Command)) -> Nvr {
        let mut cmd = Command::new(bin());
        setup(&mut cmd);
        let mut child = cmd
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "info,sled=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cleannvr");
        let log = Lines::default();
        log.follow(child.stdout.take().unwrap(), "nvr");
        log.follow(child.stderr.take().unwrap(), "nvr");
        log.register("cleannvr");
        let mut nvr = Nvr {
            child: Some(child),
            config,
            log,
            http: String::new(),
        };
        nvr.http = wait_for(Duration::from_secs(60), "cleannvr to listen", || {
            if let Ok(Some(status)) = nvr.child.as_mut().unwrap().try_wait() {
                panic!("cleannvr exited {status}: {}", nvr.log.text());
            }
            let line = nvr.log.find("web server listening on ")?;
            Some(line.split("listening on ").nth(1)?.trim().to_owned())
        });
        nvr
    }

    /// The process id (to send it a signal, e.g. SIGHUP).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then waits for a clean exit (finishing the open segment).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "cleannvr exit {status}: {}",
                        self.log.text()
                    );
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "cleannvr did not stop: {}",
                    self.log.text()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL: a crash or power cut, as far as the process can tell.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Nvr {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Decodes every stream of `file` (`ffmpeg -i FILE -f null -`) and returns what
/// ffmpeg found wrong; empty means a clean decode. Stricter than `-v error`,
/// which misses damage ffmpeg repairs quietly: it reads the `verbose` log and
/// also fails on warnings (`corrupt decoded frame`, non-monotonic DTS), on
/// pictures ffmpeg patched up (`concealing N DC, N AC, N MV errors`, logged
/// at info) and on missing reference pictures. Every test that checks
/// recorded footage uses this one check.
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-nostats", "-loglevel", "level+verbose", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    let mut s = decode_problems(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        s.push_str(&format!("\nffmpeg exit {}", out.status));
    }
    s
}

/// The lines of an ffmpeg log (written with `-loglevel level+...`) that say a
/// file did not decode cleanly.
pub fn decode_problems(log: &str) -> String {
    const LEVELS: [&str; 4] = ["[warning]", "[error]", "[fatal]", "[panic]"];
    const DAMAGE: [&str; 7] = [
        "concealing",
        "corrupt decoded frame",
        "onotonic", // "Non-monotonous DTS", "non monotonically increasing dts"
        "issing reference",
        "reference picture missing",
        "Could not find ref",
        "co located POCs unavailable",
    ];
    log.lines()
        .filter(|l| LEVELS.iter().chain(&DAMAGE).any(|m| l.contains(m)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// ffprobe's JSON for `args` on `file`.
pub fn ffprobe(file: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .output()
        .expect("running ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Codec names of a file's streams, e.g. `["h264", "aac"]`.
pub fn codecs(file: &Path) -> Vec<String> {
    let v = ffprobe(file, &["-show_entries", "stream=codec_name"]);
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether the first video frame of a file is a key frame, per ffprobe.
pub fn starts_with_key_frame(file: &Path) -> bool {
    let v = ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame",
        ],
    );
    v["frames"][0]["key_frame"].as_i64() == Some(1)
}

/// Times (seconds, on the file's presentation timeline) of the video frames
/// whose mean luma differs from the previous frame's by more than 40 of 255:
/// a flash or a cut. Measured by ffmpeg's `signalstats`.
pub fn luma_jumps(file: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "info", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-vf"])
        .arg("signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG")
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    // Lines come in pairs: "frame:N pts:P pts_time:T", then "...YAVG=Y".
    let (mut jumps, mut time, mut last) = (Vec::new(), None, None::<f64>);
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if let Some(t) = line.split("pts_time:").nth(1) {
            time = t
                .split_whitespace()
                .next()
                .and_then(|t| t.parse::<f64>().ok());
        } else if let Some(y) = line.split("lavfi.signalstats.YAVG=").nth(1) {
            let y: f64 = y.trim().parse().expect("YAVG");
            if let (Some(prev), Some(t)) = (last, time) {
                if (y - prev).abs() > 40.0 {
                    jumps.push(t);
                }
            }
            last = Some(y);
        }
    }
    jumps
}

/// Times (seconds, on the file's presentation timeline) at which the first
/// audio track turns from silence (below -30 dB for at least 0.3 s) to sound
/// or back, per ffmpeg's `silencedetect`; the track's own start and end,
/// where silence is cut off, are not edges.
pub fn sound_edges(file: &Path) -> Vec<f64> {
    let track = ffprobe(
        file,
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=start_time,duration",
        ],
    );
    let num = |k: &str| {
        track["streams"][0][k]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{}: audio {k} in {track}", file.display()))
    };
    let (start, end) = (num("start_time"), num("start_time") + num("duration"));
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "info", "-i"])
        .arg(file)
        .args(["-map", "0:a:0", "-af", "silencedetect=n=-30dB:d=0.3"])
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            let t = l
                .split("silence_end: ")
                .nth(1)
                .or_else(|| l.split("silence_start: ").nth(1))?;
            t.split_whitespace().next()?.parse::<f64>().ok()
        })
        .filter(|t| *t > start + 0.05 && *t < end - 0.05)
        .collect()
}

/// A minimal config with `[storage]` in `dir` and the given camera tables.
///
/// The export reserve is a fixed 256 MiB rather than the default tenth of the
/// volume: retention keeps the unused reserve free, so on a test machine with
/// less free disk than a tenth of its volume the default would have retention
/// delete the very footage a test is checking.
pub fn config(dir: &Path, segment_seconds: u32, cameras: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[storage]\ndir = \"{}\"\nsegment_seconds = {segment_seconds}\nmin_free_bytes = 0\nexport_max_bytes = 268435456\n{cameras}",
        dir.join("data").display()
    )
}

/// Every `.mp4` / `.part` file under `dir`, sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs `cleannvr --config CONFIG ARGS...` with `stdin`; returns success and stdout+stderr.
pub fn cli(config: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Adds a user with the CLI (cleannvr must not be running on this config).
pub fn add_user(config: &Path, name: &str, role: &str, password: &str) {
    let (ok, out) = cli(
        config,
        &["user", "add", name, "--role", role],
        &format!("{password}\n"),
    );
    assert!(ok, "user add: {out}");
}

/// Logs in with curl; returns the `Cookie` header value. (The session
/// cookie is `Secure`, so curl's cookie jar would not send it over plain
/// HTTP; tests pass it explicitly.)
pub fn login(base: &str, name: &str, password: &str) -> String {
    login_csrf(base, name, password).0
}

/// GET with a session cookie via curl; returns (status, body).
pub fn get(base: &str, path: &str, cookie: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Cookie: {cookie}"))
        .arg(format!("{base}{path}"))
        .output()
        .unwrap();
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .unwrap();
    body.truncate(nl);
    (status, body)
}

/// Starts `cleannvr run` with `toml` and an admin user; returns it with the
/// admin's session cookie (for `/api/cameras` and `/metrics`).
pub fn run_with_admin(dir: &Path, toml: &str) -> (Nvr, String) {
    let cfg = dir.join("cleannvr.toml");
    std::fs::write(&cfg, toml).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let nvr = Nvr::start(cfg, &["run"]);
    let cookie = login(&nvr.http, "root", "admin pass 12345");
    (nvr, cookie)
}

/// One camera's entry in `GET /api/cameras`.
pub fn camera_status(base: &str, cookie: &str, id: &str) -> serde_json::Value {
    let (status, body) = get(base, "/api/cameras", cookie);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no camera {id} in {v}"))
        .clone()
}

/// Polls camera `id`'s entry in `GET /api/cameras` until `done` holds for it
/// and returns that entry. After `timeout` it panics naming `what`, with the
/// last entry seen and the output of this test's processes ([`diagnostics`]).
pub fn wait_camera(
    base: &str,
    cookie: &str,
    id: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = camera_status(base, cookie, id);
        if done(&s) {
            return s;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\nlast status of {id}: {s}\n{}",
                diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to 150 s: recording starts late on a loaded 2-core machine) until
/// `n` finished segments of `camera` are on disk under the server's data
/// directory. On timeout the panic shows the camera's status (when an admin
/// cookie is given), the server's log and the peers' output, so a CI failure
/// explains itself.
pub fn wait_segments(nvr: &Nvr, admin: Option<&str>, camera: &str, n: usize) {
    let cam_dir = nvr.config.parent().unwrap().join("data").join(camera);
    let deadline = Instant::now() + Duration::from_secs(150);
    while files(&cam_dir, ".mp4").len() < n {
        if Instant::now() > deadline {
            let status = admin.map_or("(no admin session)".to_string(), |a| {
                camera_status(&nvr.http, a, camera).to_string()
            });
            panic!(
                "timed out after 150 s waiting for {n} segments of {camera} (have {})\nstatus: {status}\nlog:\n{}\n{}",
                files(&cam_dir, ".mp4").len(),
                nvr.log.text(),
                // The peers' output (GStreamer's server, …): a peer that died shows here.
                diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Server-side send queue (bytes) of the established connection from `client_port` to
/// `server_port`, from `ss`: an outside judge of whether the server is stuck writing to
/// a client that does not read. `None` when no such connection is established (not
/// yet, or no longer: the server closed it).
pub fn server_send_queue(server_port: u16, client_port: u16) -> Option<u64> {
    let out = Command::new("ss")
        .args(["-tnH", "state", "established"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Recv-Q Send-Q Local Peer
        let (local, peer) = (f.get(2)?, f.get(3)?);
        (local.ends_with(&format!(":{server_port}")) && peer.ends_with(&format!(":{client_port}")))
            .then(|| f[1].parse().ok())
            .flatten()
    })
}

/// A tmpfs of a few MiB mounted on a fresh temporary directory (a small volume, to test
/// what happens when it fills), unmounted on drop.
pub struct SmallVolume {
    dir: tempfile::TempDir,
}

impl SmallVolume {
    /// Mounts `mib` MiB. Needs root (CI runs as root); otherwise the test is skipped with
    /// a message, or fails under `CLEANNVR_REQUIRE_PEERS=1`.
    pub fn mount(mib: u64) -> Option<SmallVolume> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallVolume { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                require_peer(false, &format!("a mountable {mib} MiB tmpfs (root): {why}"));
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        // Lazy, so a server still holding a file open cannot keep the mount alive.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A logged-in session against a running server (via curl): cookie and CSRF token.
pub struct HttpSession {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `cleannvr_session=...`.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl HttpSession {
    /// Logs `name` in and fetches the CSRF token from `/api/me`.
    pub fn login(base: &str, name: &str, password: &str) -> HttpSession {
        let cookie = login(base, name, password);
        let (status, body) = get(base, "/api/me", &cookie);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let me: serde_json::Value = serde_json::from_slice(&body).unwrap();
        HttpSession {
            base: base.to_owned(),
            cookie,
            csrf: me["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// GET; (status, body).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        get(&self.base, path, &self.cookie)
    }

    /// GET that must answer 200 with JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Sends `method path` with a JSON body and the CSRF header; (status, JSON or Null).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let out = Command::new("curl")
            .args(["-sk", "-w", "\n%{http_code}", "-X", method])
            .args(["-H", &format!("Cookie: {}", self.cookie)])
            .args(["-H", &format!("x-csrf-token: {}", self.csrf)])
            .args(["-H", "content-type: application/json", "--data-binary"])
            .arg(body.to_string())
            .arg(format!("{}{path}", self.base))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        (status.trim().parse().unwrap(), json)
    }

    /// Audit entries with `action`, newest first.
    pub fn audit(&self, action: &str) -> Vec<serde_json::Value> {
        self.json(&format!("/api/audit?action={action}&limit=1000"))["entries"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// One HTTP request with curl: `method path` with optional cookie, CSRF
/// token, JSON body and extra headers. Returns (status, body).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    body: Option<&str>,
    headers: &[&str],
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-m", "30", "-w", "\n%{http_code}", "-X", method]);
    if let Some(c) = cookie {
        cmd.arg("-H").arg(format!("Cookie: {c}"));
    }
    if let Some(t) = csrf {
        cmd.arg("-H").arg(format!("X-CSRF-Token: {t}"));
    }
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("{base}{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Logs in with curl; returns the `Cookie` header value and the CSRF token.
pub fn login_csrf(base: &str, name: &str, password: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-D",
            "/dev/stderr",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(serde_json::json!({"username": name, "password": password}).to_string())
        .arg(format!("{base}/api/login"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stderr);
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no session cookie: {head}"));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        cookie.split(';').next().unwrap().to_owned(),
        body["csrf_token"].as_str().unwrap().to_owned(),
    )
}

/// `POST /api/login` with any JSON `body` (a second factor, say). Returns the
/// status, the JSON answer and, on success, a logged-in [`HttpSession`].
pub fn login_with(
    base: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value, Option<HttpSession>) {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-m",
            "30",
            "-D",
            "/dev/stderr",
            "-w",
            "\n%{http_code}",
        ])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(body.to_string())
        .arg(format!("{base}/api/login"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let status: u16 = status.trim().parse().unwrap_or(0);
    let json: serde_json::Value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
    let head = String::from_utf8_lossy(&out.stderr);
    let cookie = head.lines().find_map(|l| {
        l.strip_prefix("set-cookie: ")
            .or_else(|| l.strip_prefix("Set-Cookie: "))
    });
    let session = match (status, cookie, json["csrf_token"].as_str()) {
        (200, Some(c), Some(csrf)) => Some(HttpSession {
            base: base.to_owned(),
            cookie: c.split(';').next().unwrap().to_owned(),
            csrf: csrf.to_owned(),
        }),
        _ => None,
    };
    (status, json, session)
}

/// A series' value from a Prometheus text page (the first line named exactly `name`).
pub fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {page}"))
}

/// `/metrics` fetched with a `[server] metrics_token` bearer token (no session:
/// works when the disk is too full for a login to be recorded).
pub fn scrape(base: &str, token: &str) -> String {
    let out = Command::new("curl")
        .args(["-sfk", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{base}/metrics"))
        .output()
        .unwrap();
    assert!(out.status.success(), "GET /metrics: {}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// The one-time setup code a fresh `cleannvr run` (no admin yet) logs, as
/// `ABCD-EFGH-JKMN-PQRS`; waits for the line.
pub fn setup_code(log: &Lines) -> String {
    wait_for(Duration::from_secs(60), "the setup code in the log", || {
        let line = log.find("one-time setup code ")?;
        let code = line.split("one-time setup code ").nth(1)?.get(..19)?;
        Some(code.to_owned())
    })
}

/// Whether node, Chromium and playwright-core are here; without them the test
/// skips, unless `CLEANNVR_REQUIRE_PEERS=1`, when it fails.
pub fn require_browser(ui: &Path) -> bool {
    let missing = if Command::new("node").arg("--version").output().is_err() {
        Some("node")
    } else if !Path::new("/usr/bin/chromium").exists() {
        Some("/usr/bin/chromium")
    } else if !ui
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        Some("tests/ui/node_modules (npm ci --prefix tests/ui)")
    } else {
        None
    };
    require_peer(missing.is_none(), missing.unwrap_or_default())
}

/// A TCP relay of our own in front of an RTSP peer, which timestamps what the
/// camera sees: each connection cleannvr opens, and each `DESCRIBE` request it
/// sends (read from the client's bytes). GStreamer's server has no log of its
/// clients' timing, so the spacing of reconnect attempts is measured here.
/// Bytes pass through unchanged in both directions.
pub struct RtspRelay {
    /// Loopback port to point the camera URL at.
    pub port: u16,
    connections: Arc<Mutex<Vec<Instant>>>,
    describes: Arc<Mutex<Vec<Instant>>>,
}

impl RtspRelay {
    /// Relays every connection to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> RtspRelay {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let describes = Arc::new(Mutex::new(Vec::new()));
        let (conns, descs) = (connections.clone(), describes.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                conns.lock().unwrap().push(Instant::now());
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut s_in, mut c_out) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
                let descs = descs.clone();
                std::thread::spawn(move || {
                    let (mut from, mut to) = (client, server);
                    let mut buf = vec![0u8; 16 * 1024];
                    // A request line may straddle two reads: keep the tail, with the
                    // byte before a match (a request starts a line).
                    let mut tail = b"\n".to_vec();
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut seen = std::mem::take(&mut tail);
                        seen.extend_from_slice(&buf[..n]);
                        let hits = seen
                            .windows(11)
                            .enumerate()
                            .filter(|(i, w)| {
                                *i > 0 && *w == b"DESCRIBE rt" && seen[*i - 1] == b'\n'
                            })
                            .count();
                        for _ in 0..hits {
                            descs.lock().unwrap().push(Instant::now());
                        }
                        tail = seen[seen.len().saturating_sub(11)..].to_vec();
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        RtspRelay {
            port,
            connections,
            describes,
        }
    }

    /// When each connection was accepted, oldest first.
    pub fn connections(&self) -> Vec<Instant> {
        self.connections.lock().unwrap().clone()
    }

    /// When each `DESCRIBE` request arrived, oldest first.
    pub fn describes(&self) -> Vec<Instant> {
        self.describes.lock().unwrap().clone()
    }
}

/// An `App` for in-process router tests, over `cfg`'s storage directory (a store opened
/// there): no listener and no cameras running. The one place tests build it.
pub fn app(
    cfg: cleannvr::config::Config,
    clock: Arc<dyn cleannvr::clock::Clock>,
    status: Arc<cleannvr::status::StatusBoard>,
) -> Arc<cleannvr::web::App> {
    let store = Arc::new(cleannvr::store::Store::open(&cfg.storage.dir).unwrap());
    Arc::new(
        cleannvr::web::App::new(
            cfg,
            store,
            status,
            clock,
            Default::default(),
            Default::default(),
        )
        .unwrap(),
    )
}

/// A real SMTP server (aiosmtpd from PyPI, installed by `.ci/install.sh` in
/// `$CLEANNVR_RIG/venv-smtp`) on a free loopback port, delivering into a
/// Maildir; killed on drop. `None` when aiosmtpd is not installed.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
    pub out: Lines,
}

impl SmtpServer {
    /// The venv's python, if aiosmtpd is installed there.
    pub fn python() -> Option<PathBuf> {
        let rig = std::env::var("CLEANNVR_RIG").unwrap_or_else(|_| "/tmp/cleannvr-rig".into());
        let py = Path::new(&rig).join("venv-smtp/bin/python");
        let ok = Command::new(&py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(py)
    }

    /// Starts it, delivering into `maildir`, and waits for its greeting.
    pub fn start(python: &Path, maildir: &Path) -> SmtpServer {
        Self::start_tls(python, maildir, None)
    }

    /// As [`SmtpServer::start`], with TLS: `(mode, cert, key)` PEM files,
    /// STARTTLS required (aiosmtpd's `--tlscert`) or TLS from the first byte
    /// (SMTPS, `--smtpscert`).
    pub fn start_tls(
        python: &Path,
        maildir: &Path,
        tls: Option<(SmtpTls, &Path, &Path)>,
    ) -> SmtpServer {
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if let Some((mode, cert, key)) = tls {
            let (c, k) = match mode {
                SmtpTls::Starttls => ("--tlscert", "--tlskey"),
                SmtpTls::Implicit => ("--smtpscert", "--smtpskey"),
            };
            cmd.arg(c).arg(cert).arg(k).arg(key);
        }
        let implicit = matches!(tls, Some((SmtpTls::Implicit, ..)));
        let mut child = cmd
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting aiosmtpd");
        let out = Lines::default();
        out.follow(child.stdout.take().unwrap(), "smtp");
        out.follow(child.stderr.take().unwrap(), "smtp");
        let mut server = SmtpServer {
            child,
            port,
            maildir: maildir.to_owned(),
            out,
        };
        wait_for(Duration::from_secs(60), "aiosmtpd to greet", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("aiosmtpd exited {status}: {}", server.out.text());
            }
            use std::io::Read;
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            if implicit {
                // Its greeting comes inside TLS: listening is ready enough.
                return Some(());
            }
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            let mut b = [0u8; 3];
            s.read_exact(&mut b).ok()?;
            (&b == b"220").then_some(())
        });
        server
    }

    /// Every message delivered so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        files(&self.maildir.join("new"), "")
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}

/// How [`SmtpServer::start_tls`] speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain greeting, then STARTTLS (required before mail).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our own minimal HTTP receiver on loopback (a webhook's far end: there is no
/// standard peer for "some LAN service that takes a JSON POST"). It records
/// each request's body and answers `fail_first` requests with 503, then 200.
pub struct HookReceiver {
    pub port: u16,
    pub bodies: Arc<Mutex<Vec<String>>>,
}

impl HookReceiver {
    pub fn start(fail_first: usize) -> HookReceiver {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            let mut served = 0usize;
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(n) = s.read(&mut chunk) else {
                        break None;
                    };
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned(),
                        );
                    }
                };
                let Some(body) = body else { continue };
                served += 1;
                let status = if served <= fail_first {
                    "503 Service Unavailable"
                } else {
                    seen.lock().unwrap().push(body);
                    "200 OK"
                };
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        HookReceiver { port, bodies }
    }

    /// The bodies answered with 200, parsed as JSON.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect()
    }
}

/// How long one browser script may run; one normally takes well under a
/// minute, but CI machines are slow and shared.
pub const UI_SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the Playwright script `tests/ui/<script>` with the server's address and a
/// JSON config, printing what it says and returning it; fails the test, with
/// that output and the server's log, unless the script ends well within
/// [`UI_SCRIPT_TIMEOUT`] and reports `, 0 failed`.
pub fn run_ui_script(
    script: &str,
    http: &str,
    cfg: &str,
    env: &[(&str, &str)],
    log: &Lines,
) -> String {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut child = Command::new("node")
        .arg(ui.join(script))
        .args([http, cfg])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting node");
    // Both pipes are drained while waiting, so a long failure report cannot
    // block node before the deadline.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + UI_SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for node") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    if status.is_none() {
        text.push_str(&format!("\n(timed out after {UI_SCRIPT_TIMEOUT:?})"));
    }
    println!("{text}");
    assert!(
        status.is_some_and(|st| st.success()) && text.contains(", 0 failed"),
        "{script} failed:\n{text}\n--- cleannvr log ---\n{}",
        log.text()
    );
    text
}

/// A real OpenID Provider: panva's OpenID-certified `oidc-provider` (npm, pinned in
/// `tests/ui/package.json`) run by `tests/ui/oidc_provider.mjs` on a free loopback
/// port, issuer `http://localhost:PORT` (another site than cleannvr's
/// `127.0.0.1`, as a real provider is); killed on drop. Its accounts and their
/// groups are listed in the script.
pub struct OidcProvider {
    child: Child,
    pub issuer: String,
    pub out: Lines,
}

impl OidcProvider {
    /// Whether node and the npm package are here (else skip, or fail under
    /// `CLEANNVR_REQUIRE_PEERS=1`).
    pub fn available() -> bool {
        let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
        require_peer(
            ui.join("node_modules/oidc-provider/package.json").exists()
                && Command::new("node").arg("--version").output().is_ok(),
            "oidc-provider in tests/ui/node_modules (npm ci --prefix tests/ui)",
        )
    }

    /// Starts it with one confidential client and waits until it serves its
    /// discovery document.
    pub fn start(client_id: &str, client_secret: &str, redirect_uri: &str) -> OidcProvider {
        let port = free_port();
        let issuer = format!("http://localhost:{port}");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/oidc_provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .args([
                &port.to_string(),
                &issuer,
                client_id,
                client_secret,
                redirect_uri,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting node");
        let out = Lines::default();
        out.follow(child.stdout.take().unwrap(), "idp");
        out.follow(child.stderr.take().unwrap(), "idp");
        out.register("oidc-provider");
        let mut p = OidcProvider { child, issuer, out };
        wait_for(Duration::from_secs(60), "oidc-provider to listen", || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("oidc-provider exited {status}: {}", p.out.text());
            }
            p.out.find("oidc provider listening")
        });
        p
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first recorded range of `camera` that holds at least `min_ns`, as
/// `(start, end)` in nanoseconds; fails after three minutes with the server's log.
/// (Not just the first range: on a loaded machine the first session may drop
/// after a second and leave a short range before a gap.)
pub fn recorded_range(nvr: &Nvr, who: &HttpSession, camera: &str, min_ns: i64) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = who.json(&format!("/api/cameras/{camera}/recordings"));
        let long = r["ranges"].as_array().and_then(|a| {
            a.iter().find_map(|range| {
                let s = cleannvr::clock::parse_rfc3339(range["start"].as_str()?)?;
                let e = cleannvr::clock::parse_rfc3339(range["end"].as_str()?)?;
                (e - s >= min_ns).then_some((s, e))
            })
        });
        if let Some(range) = long {
            return range;
        }
        assert!(
            Instant::now() < deadline,
            "no range of {min_ns} ns recorded on {camera} after 180 s: {r}\nlog:\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A finished command's stdout then stderr, for failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `podman args` (the container tests: `container_image`, `deb_package`).
pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e}"))
}
