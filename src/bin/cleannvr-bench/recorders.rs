//! The recorders under test: cleannvr and the do-it-yourself peers, each
//! recording the same synthetic streams into its own directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Which recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `cleannvr run`, one process for all streams.
    Cleannvr,
    /// `ffmpeg -c copy -f segment`, one process per stream.
    Ffmpeg,
    /// `gst-launch-1.0 rtspsrc ! ... ! splitmuxsink`, one process per stream.
    Gst,
    /// `cleannvr-bench drain`: retina readers that count frames and write
    /// nothing, one process for all streams (the harness's floor).
    Null,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Cleannvr => "cleannvr",
            Kind::Ffmpeg => "ffmpeg",
            Kind::Gst => "gstreamer",
            Kind::Null => "null reader",
        })
    }
}

/// Segment length used by every recorder.
pub const SEGMENT_SECONDS: u32 = 60;

/// The exact command lines, for the report.
pub fn command_line(kind: Kind, cleannvr: &Path) -> String {
    match kind {
        Kind::Cleannvr => format!(
            "{} --config DIR/cleannvr.toml run   # [[camera]] url = \"rtsp://127.0.0.1:PORT/camI\", segment_seconds = {SEGMENT_SECONDS}, tls = false",
            cleannvr.display()
        ),
        Kind::Ffmpeg => ffmpeg_args("rtsp://127.0.0.1:PORT/camI", "DIR/camI_%05d.mp4").join(" "),
        Kind::Gst => gst_args("rtsp://127.0.0.1:PORT/camI", "DIR/camI_%05d.mp4").join(" "),
        Kind::Null => "cleannvr-bench drain --dir DIR rtsp://127.0.0.1:PORT/cam1 ...".into(),
    }
}

fn ffmpeg_args(url: &str, out: &str) -> Vec<String> {
    let seg = SEGMENT_SECONDS.to_string();
    [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        // Give up on a silent camera after 5 s (a supervised DIY recorder
        // needs this anyway). ffmpeg acts on SIGINT only between packets,
        // and a second SIGINT skips the trailer (an MP4 without `moov`); the
        // zero-loss runs end with silent streams.
        "-timeout",
        "5000000",
        "-i",
        url,
        "-c",
        "copy",
        "-map",
        "0",
        "-f",
        "segment",
        "-segment_time",
        &seg,
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn gst_args(url: &str, out: &str) -> Vec<String> {
    let max = (u64::from(SEGMENT_SECONDS) * 1_000_000_000).to_string();
    vec![
        "gst-launch-1.0".into(),
        "-e".into(),
        "-q".into(),
        "rtspsrc".into(),
        format!("location={url}"),
        "protocols=tcp".into(),
        "!".into(),
        "rtph264depay".into(),
        "!".into(),
        "h264parse".into(),
        "!".into(),
        "splitmuxsink".into(),
        format!("location={out}"),
        format!("max-size-time={max}"),
    ]
}

/// Whether a peer's program is installed.
pub fn available(kind: Kind) -> bool {
    let prog = match kind {
        Kind::Cleannvr | Kind::Null => return true,
        Kind::Ffmpeg => "ffmpeg",
        Kind::Gst => "gst-launch-1.0",
    };
    Command::new(prog)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A recorder recording `n` streams.
pub struct Running {
    /// Which recorder.
    pub kind: Kind,
    children: Vec<Child>,
    /// Where it records.
    pub dir: PathBuf,
    /// Stream count.
    pub n: usize,
}

impl Running {
    /// Starts `kind` on `urls`, recording into a fresh `dir`.
    pub fn start(
        kind: Kind,
        cleannvr: &Path,
        urls: &[String],
        dir: &Path,
    ) -> anyhow::Result<Running> {
        Self::start_inner(kind, cleannvr, urls, dir, None)
    }

    /// Starts cleannvr on `urls` with an admin web user `name`/`password`
    /// created first (`cleannvr user add`).
    pub fn start_with_user(
        cleannvr: &Path,
        urls: &[String],
        dir: &Path,
        name: &str,
        password: &str,
    ) -> anyhow::Result<Running> {
        Self::start_inner(Kind::Cleannvr, cleannvr, urls, dir, Some((name, password)))
    }

    fn start_inner(
        kind: Kind,
        cleannvr: &Path,
        urls: &[String],
        dir: &Path,
        user: Option<(&str, &str)>,
    ) -> anyhow::Result<Running> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut children = Vec::new();
        match kind {
            Kind::Cleannvr => {
                let data = dir.join("data");
                let mut toml = format!(
                    "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n\n[storage]\ndir = {:?}\nsegment_seconds = {SEGMENT_SECONDS}\nmin_free_bytes = 0\nexport_max_bytes = 0\n",
                    data.display().to_string()
                );
                for (i, url) in urls.iter().enumerate() {
                    toml.push_str(&format!(
                        "\n[[camera]]\nid = \"cam{}\"\nurl = \"{url}\"\n",
                        i + 1
                    ));
                }
                let cfg = dir.join("cleannvr.toml");
                std::fs::write(&cfg, toml)?;
                if let Some((name, password)) = user {
                    let mut add = Command::new(cleannvr)
                        .arg("--config")
                        .arg(&cfg)
                        .args(["user", "add", name, "--role", "admin"])
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .stderr(std::fs::File::create(logs.join("user-add.err"))?)
                        .spawn()
                        .context("cleannvr user add")?;
                    {
                        use std::io::Write as _;
                        let mut stdin = add.stdin.take().expect("piped");
                        writeln!(stdin, "{password}")?;
                    }
                    anyhow::ensure!(
                        add.wait()?.success(),
                        "cleannvr user add failed; see {}",
                        logs.join("user-add.err").display()
                    );
                }
                let child = Command::new(cleannvr)
                    .arg("--config")
                    .arg(&cfg)
                    .arg("run")
                    .stdin(Stdio::null())
                    .stdout(std::fs::File::create(logs.join("cleannvr.out"))?)
                    .stderr(std::fs::File::create(logs.join("cleannvr.err"))?)
                    .spawn()
                    .with_context(|| format!("starting {}", cleannvr.display()))?;
                children.push(child);
            }
            Kind::Null => {
                let child = Command::new(std::env::current_exe()?)
                    .arg("drain")
                    .arg("--dir")
                    .arg(dir)
                    .args(urls)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(logs.join("drain.err"))?)
                    .spawn()
                    .context("starting the null reader")?;
                children.push(child);
            }
            Kind::Ffmpeg | Kind::Gst => {
                for (i, url) in urls.iter().enumerate() {
                    let out = dir.join(format!("cam{}_%05d.mp4", i + 1));
                    let out = out.to_str().context("non-UTF-8 bench dir")?;
                    let args = if kind == Kind::Ffmpeg {
                        ffmpeg_args(url, out)
                    } else {
                        gst_args(url, out)
                    };
                    let log = std::fs::File::create(logs.join(format!("cam{}.log", i + 1)))?;
                    let child = Command::new(&args[0])
                        .args(&args[1..])
                        .stdin(Stdio::null())
                        .stdout(log.try_clone()?)
                        .stderr(log)
                        .spawn()
                        .with_context(|| format!("starting {}", args[0]))?;
                    children.push(child);
                }
            }
        }
        Ok(Running {
            kind,
            children,
            dir: dir.to_owned(),
            n: urls.len(),
        })
    }

    /// cleannvr's web server address, once its log says it listens.
    pub fn web_addr(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.dir.join("logs/cleannvr.err")).ok()?;
        let at = log.find("listening on http://")? + "listening on http://".len();
        let addr: String = log[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        Some(addr)
    }

    /// Process ids to sample.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }

    /// Processes that have already exited (a failed start or a crash).
    pub fn exited(&mut self) -> usize {
        self.children
            .iter_mut()
            .filter_map(|c| c.try_wait().ok())
            .filter(Option::is_some)
            .count()
    }

    /// Streams that have started writing a file.
    pub fn streams_writing(&self) -> usize {
        match self.kind {
            Kind::Cleannvr => (1..=self.n)
                .filter(|i| {
                    std::fs::read_dir(self.dir.join("data").join(format!("cam{i}")))
                        .map(|mut d| d.next().is_some())
                        .unwrap_or(false)
                })
                .count(),
            Kind::Ffmpeg | Kind::Gst => (1..=self.n)
                .filter(|i| self.dir.join(format!("cam{i}_00000.mp4")).exists())
                .count(),
            Kind::Null => (1..=self.n)
                .filter(|i| self.dir.join(format!("cam{i}.started")).exists())
                .count(),
        }
    }

    /// Stops gracefully (SIGTERM for cleannvr, SIGINT for the peers so ffmpeg
    /// writes its trailer and `gst-launch -e` sends EOS), so every recorder
    /// finishes its last file; kills what is still running after `grace`.
    pub fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        let sig = if self.kind == Kind::Cleannvr {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        for c in &self.children {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
        let deadline = Instant::now() + grace;
        let mut killed = 0;
        for c in &mut self.children {
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    killed += 1;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if killed > 0 {
            eprintln!(
                "  warning: {killed} {} process(es) killed after {grace:?}",
                self.kind
            );
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.children {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Video frames recorded under `dir` by `kind` (after it stopped), per stream.
pub fn count_frames(kind: Kind, dir: &Path, n: usize) -> anyhow::Result<Vec<u64>> {
    match kind {
        Kind::Cleannvr => {
            let store = cleannvr::store::Store::open(&dir.join("data"))?;
            (1..=n)
                .map(|i| {
                    store
                        .iter_camera(&format!("cam{i}"))
                        .map(|r| r.map(|r| r.frames))
                        .sum::<anyhow::Result<u64>>()
                })
                .collect()
        }
        Kind::Null => {
            let text =
                std::fs::read(dir.join("frames.json")).context("null reader wrote no counts")?;
            Ok(serde_json::from_slice(&text)?)
        }
        Kind::Ffmpeg | Kind::Gst => {
            let mut out = vec![0u64; n];
            for e in std::fs::read_dir(dir)? {
                let p = e?.path();
                let name = p.file_name().and_then(|s| s.to_str()).unwrap_or("");
                let Some(i) = name
                    .strip_prefix("cam")
                    .and_then(|s| s.split('_').next())
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    continue;
                };
                if !(1..=n).contains(&i) || !name.ends_with(".mp4") {
                    continue;
                }
                out[i - 1] += ffprobe_frames(&p)?;
            }
            Ok(out)
        }
    }
}

/// Video packets in a file, as ffprobe demuxes them (0 for an unreadable file).
fn ffprobe_frames(path: &Path) -> anyhow::Result<u64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}
