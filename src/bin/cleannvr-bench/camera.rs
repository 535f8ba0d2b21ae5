//! The synthetic camera in its own process, so its CPU is measured apart
//! from the recorders'. The parent talks to it over stdin/stdout:
//! it prints `READY <rtsp base>`, answers each `stats` line with one JSON
//! line, and exits when stdin closes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use anyhow::{bail, Context};
use cleannvr::demo::{self, ClipOptions, ServeOptions, ServeStats};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Counters reported by the camera process.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Sessions that received PLAY.
    pub sessions: u64,
    /// Sessions that sent their whole frame limit.
    pub finished: u64,
    /// Frames fully written to sockets.
    pub frames: u64,
    /// Largest lag of a finished session's last frame behind schedule, µs, since the last reset.
    pub late_max_us: u64,
}

impl Stats {
    /// Counter increase since `earlier`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            sessions: self.sessions - earlier.sessions,
            finished: self.finished - earlier.finished,
            frames: self.frames - earlier.frames,
            late_max_us: self.late_max_us,
        }
    }
}

/// Body of the hidden `camera` subcommand.
pub fn run(cameras: usize, profile: &str, frame_limit: Option<u64>) -> anyhow::Result<()> {
    let opts = match profile {
        "main" => ClipOptions::bench_main(),
        "sub" => ClipOptions::bench_sub(),
        other => bail!("unknown profile {other:?} (main or sub)"),
    };
    let clip = Arc::new(demo::encode_clip(&opts)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stats = Arc::new(ServeStats::default());
    let shutdown = CancellationToken::new();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let server = rt.spawn(demo::serve_with(
        listener,
        cameras,
        clip,
        shutdown.clone(),
        ServeOptions {
            frame_limit,
            stats: Some(stats.clone()),
        },
    ));
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY rtsp://{addr}")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim() == "plays" {
            let plays = stats
                .play_wall_ns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            writeln!(out, "{}", serde_json::to_string(&plays)?)?;
            out.flush()?;
        } else if line.trim() == "reset" {
            stats.late_max_us.store(0, Relaxed);
        } else if line.trim() == "stats" {
            let s = Stats {
                sessions: stats.sessions.load(Relaxed),
                finished: stats.finished.load(Relaxed),
                frames: stats.frames.load(Relaxed),
                late_max_us: stats.late_max_us.load(Relaxed),
            };
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
            out.flush()?;
        }
    }
    shutdown.cancel();
    rt.block_on(async {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    });
    rt.shutdown_background();
    Ok(())
}

/// A running camera process.
pub struct Camera {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// `rtsp://127.0.0.1:port`; streams are `<base>/camN`.
    pub base: String,
}

impl Camera {
    /// Starts `exe camera ...`, waits until it listens.
    pub fn start(
        cameras: usize,
        profile: &str,
        frame_limit: Option<u64>,
        log: &Path,
    ) -> anyhow::Result<Camera> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "camera",
            "--cameras",
            &cameras.to_string(),
            "--profile",
            profile,
        ]);
        if let Some(f) = frame_limit {
            cmd.args(["--frames", &f.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting the camera process")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(base) = line.trim().strip_prefix("READY ") else {
            bail!("camera did not start (see {})", log.display());
        };
        Ok(Camera {
            base: base.to_owned(),
            child,
            stdin,
            stdout,
        })
    }

    /// URL of stream `i` (1-based).
    pub fn url(&self, i: usize) -> String {
        format!("{}/cam{i}", self.base)
    }

    /// Process id, for CPU sampling.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wall time (ns since the epoch) of the latest PLAY of each camera number.
    pub fn plays(&mut self) -> anyhow::Result<std::collections::HashMap<usize, i64>> {
        let stdin = self.stdin.as_mut().context("camera stopped")?;
        writeln!(stdin, "plays")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        serde_json::from_str(line.trim()).with_context(|| format!("camera plays line {line:?}"))
    }

    /// Resets the lateness maximum before a run.
    pub fn reset_late(&mut self) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("camera stopped")?;
        writeln!(stdin, "reset")?;
        stdin.flush()?;
        Ok(())
    }

    /// Current counters.
    pub fn stats(&mut self) -> anyhow::Result<Stats> {
        let stdin = self.stdin.as_mut().context("camera stopped")?;
        writeln!(stdin, "stats")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        serde_json::from_str(line.trim()).with_context(|| format!("camera stats line {line:?}"))
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
