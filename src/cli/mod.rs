//! Command line: `cleannvr run | demo | check`. Parses arguments, sets up
//! logging and hands over to the library; no NVR logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::info;

mod health;

use crate::config::{CameraConfig, Config, ServerConfig, StorageConfig, Transport};

/// cleannvr: a network video recorder that keeps your cameras and drops the vendor cloud.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "CLEANNVR_CONFIG",
        default_value = "/etc/cleannvr/cleannvr.toml"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Record the configured cameras and serve the web UI.
    Run,
    /// Zero-setup first run: start a built-in synthetic camera on loopback and record it.
    Demo {
        /// Number of synthetic cameras.
        #[arg(long, default_value_t = 1)]
        cameras: usize,
        /// Storage directory for the demo recordings (the Docker image sets `/data`).
        #[arg(long, env = "CLEANNVR_DEMO_DATA", default_value = "./demo-data")]
        data: PathBuf,
        /// Web server address (the Docker image sets `0.0.0.0:8443`).
        #[arg(long, env = "CLEANNVR_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Segment length in seconds.
        #[arg(long, default_value_t = 60)]
        segment_seconds: u32,
    },
    /// Ask the running server's `/api/health` through the configured listener: exit 0 when healthy.
    Health,
    /// Find ONVIF cameras (WS-Discovery) and list their profiles and stream URIs.
    Discover(crate::onvif::cli::DiscoverArgs),
    /// Report whether each ONVIF camera could reach the internet (gateway, DNS, NTP, protocols).
    AuditCameras(crate::onvif::cli::AuditArgs),
    /// Manage web users (through the running server, or on the index when it is stopped);
    /// passwords are read from stdin.
    User {
        /// add, list, remove or passwd.
        #[command(subcommand)]
        cmd: crate::auth::cli::UserCmd,
    },
    /// Check the audit log: `audit verify` walks its hash chain.
    Audit {
        /// verify.
        #[command(subcommand)]
        cmd: crate::auth::cli::AuditCmd,
    },
    /// Export a time range as evidence (MP4 + manifest + SHA-256s), or `export verify DIR`.
    Export(Box<crate::export::cli::ExportArgs>),
    /// Compare segment files with the index (read-only while cleannvr runs); `--repair`
    /// recovers unfinished files and rebuilds the index (needs cleannvr stopped).
    Check {
        /// Rebuild the index from the files.
        #[arg(long)]
        repair: bool,
    },
    /// Back up the configuration, keys, users, holds, audit log and index (not the footage).
    Backup {
        /// The zip to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into an empty storage directory (cleannvr stopped); writes the
    /// configuration from the backup when `--config` names no file.
    Restore {
        /// The backup zip.
        file: PathBuf,
    },
    /// The Code of Practice report of a period: camera register, retention, recording
    /// availability, access, disclosures, holds, failed logins and the audit chain.
    Report {
        /// First day (`YYYY-MM-DD`, in the server's time zone) or an RFC 3339 time.
        #[arg(long)]
        from: String,
        /// Last day, included (`YYYY-MM-DD`), or an RFC 3339 time (excluded).
        #[arg(long)]
        to: String,
        /// json, csv or html; default: from `--out`'s extension, else html.
        #[arg(long, value_enum)]
        format: Option<crate::report::render::Format>,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The running server's cameras, their states, and the disk (exit 1 when it is not running).
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point for the binary.
pub fn main() -> ExitCode {
    // Recordings, exports, keys and the index (password hashes) are for
    // this user only, whatever umask the service manager left us.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o077) };
    // Before any thread starts, so every thread sees the raised limit.
    crate::web::conn::raise_nofile_limit();
    let cli = Cli::parse();
    crate::logging::init("info,sled=warn,retina=warn");
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run => {
            let config = Config::load(&cli.config)?;
            runtime()?.block_on(serve(config, cli.config.clone()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            cameras,
            data,
            listen,
            segment_seconds,
        } => {
            runtime()?.block_on(demo(cameras, data, listen, segment_seconds))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Health => health::health_cmd(&cli.config),
        Command::Discover(args) => crate::onvif::cli::discover_cmd(args, &cli.config),
        Command::AuditCameras(args) => crate::control::client::run(
            &cli.config,
            crate::control::Request::AuditCameras { json: args.json },
        ),
        Command::User { cmd } => crate::auth::cli::user_cmd(cmd, &cli.config),
        Command::Audit { cmd } => crate::auth::cli::audit_cmd(cmd, &cli.config),
        Command::Export(args) => crate::export::cli::export_cmd(*args, &cli.config),
        Command::Check { repair } => {
            crate::control::client::run(&cli.config, crate::control::Request::Check { repair })
        }
        Command::Backup { out } => {
            let config = std::fs::read_to_string(&cli.config)
                .with_context(|| format!("reading {}", cli.config.display()))?;
            let out = std::path::absolute(&out)?;
            crate::control::client::run(
                &cli.config,
                crate::control::Request::Backup { out, config },
            )
        }
        Command::Restore { file } => {
            if let Ok(cfg) = Config::load(&cli.config) {
                anyhow::ensure!(
                    !crate::control::client::server_running(&cfg)?,
                    "restore needs cleannvr stopped, and it is running: stop it first"
                );
            }
            println!("{}", crate::backup::restore(&file, &cli.config)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            from,
            to,
            format,
            out,
        } => report_cmd(&cli.config, from, to, format, out),
        Command::Status { json } => {
            crate::control::client::run(&cli.config, crate::control::Request::Status { json })
        }
    }
}

/// `report`: made by the running server (control socket) or on the index directly.
fn report_cmd(
    config: &std::path::Path,
    from: String,
    to: String,
    format: Option<crate::report::render::Format>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use crate::report::render::Format;
    let format = format
        .or_else(|| out.as_deref().and_then(Format::of_path))
        .unwrap_or(Format::Html);
    let req = crate::control::Request::Report { from, to, format };
    let resp = crate::control::client::request(config, &req)?;
    match (&out, resp.ok && resp.error.is_none()) {
        (Some(path), true) => {
            std::fs::write(path, &resp.output)
                .with_context(|| format!("writing the report to {}", path.display()))?;
            println!("report written to {}", path.display());
        }
        _ => print!("{}", resp.output),
    }
    Ok(crate::control::client::status(&resp))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs the NVR until SIGINT or SIGTERM. With no camera configured it
/// records the built-in demo camera, so a fresh install shows something.
async fn serve(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let shutdown = install_signals();
    if config.cameras.is_empty() {
        tracing::warn!(
            "no [[camera]] configured; recording the built-in demo camera until a camera is \
             added (it is not in the config file, so the first camera change replaces it)"
        );
        return reopen_index(with_demo_cameras(config, 1, Some(path), shutdown).await);
    }
    let options = crate::nvr::Options {
        config_path: Some(path),
        reexec_on_index_failure: true,
        ..Default::default()
    };
    reopen_index(crate::nvr::run_with(config, shutdown, None, options).await)
}

/// A server that stopped because its index refuses writes starts again in
/// place (see `reopen`); any other outcome is passed on.
fn reopen_index(r: anyhow::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) => match e.downcast_ref::<crate::reopen::IndexBroken>() {
            Some(b) => Err(crate::reopen::exec(&b.0)),
            None => Err(e),
        },
        ok => ok,
    }
}

/// Registers the process's signal handlers before anything else starts, and returns
/// the token that SIGTERM and SIGINT cancel. SIGHUP's default action would end the
/// process: from here on it is handled (`nvr` applies the config file on it once the
/// cameras run; before that it does nothing).
fn install_signals() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    if let Err(e) = signal(SignalKind::hangup()) {
        tracing::warn!("cannot handle SIGHUP ({e}): it would stop the server");
    }
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    let cancel = token.clone();
    tokio::spawn(async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
        cancel.cancel();
    });
    token
}

async fn demo(
    cameras: usize,
    data: PathBuf,
    listen: String,
    segment_seconds: u32,
) -> anyhow::Result<()> {
    let config = Config {
        server: ServerConfig {
            listen,
            ..Default::default()
        },
        storage: StorageConfig {
            dir: data,
            segment_seconds,
            ..Default::default()
        },
        cameras: Vec::new(),
        auth: Default::default(),
        alarms: Default::default(),
        oidc: None,
        archive: None,
    };
    let shutdown = install_signals();
    reopen_index(with_demo_cameras(config, cameras, None, shutdown).await)
}

/// Starts `n` synthetic cameras on loopback, adds them to `config` and runs the NVR
/// (`config_path`: the file camera changes go to, if any).
async fn with_demo_cameras(
    mut config: Config,
    n: usize,
    config_path: Option<PathBuf>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&n), "--cameras must be 1..=1000");
    let opts = crate::demo::ClipOptions::demo();
    info!(
        width = opts.width,
        height = opts.height,
        fps = opts.fps,
        "encoding the demo clip"
    );
    let clip = tokio::task::spawn_blocking(move || crate::demo::encode_clip(&opts)).await??;
    let rtsp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let rtsp_addr = rtsp.local_addr()?;
    let server = tokio::spawn(crate::demo::serve(
        rtsp,
        n,
        Arc::new(clip),
        shutdown.clone(),
    ));
    info!("demo camera at rtsp://{rtsp_addr}/cam1");
    config.cameras = (1..=n)
        .map(|i| CameraConfig {
            id: format!("demo{i}"),
            name: format!("Demo camera {i}"),
            url: Some(format!("rtsp://{rtsp_addr}/cam{i}")),
            onvif: None,
            sub_url: None,
            username: None,
            password: None,
            transport: Transport::Tcp,
            connect_timeout_seconds: 10,
            retain_days: 1,
            retain_event_days: 0,
            retain_bytes: 2 << 30,
            enabled: true,
            record: true,
            purpose: None,
            location: None,
            lawful_basis: None,
            review_date: None,
        })
        .collect();
    let options = crate::nvr::Options {
        demo_admin: true,
        config_path,
        reexec_on_index_failure: true,
    };
    let r = crate::nvr::run_with(config, shutdown.clone(), None, options).await;
    shutdown.cancel();
    let _ = server.await;
    r
}
