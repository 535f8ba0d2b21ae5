//! `cleannvr discover` and `cleannvr audit-cameras`: argument types and the
//! commands themselves, kept here so `cli/mod.rs` only dispatches.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::audit;
use super::auth::Credentials;
use super::client::OnvifClient;
use super::discovery::{self, ProbeMatch, Target};
use super::isolation_record::{Record, Records};
use super::resolve::{self, CameraSummary};
use crate::clock::Clock;
use crate::config::{CameraConfig, Config};

/// `cleannvr discover`.
#[derive(clap::Args, Debug)]
pub struct DiscoverArgs {
    /// Probe one device by unicast (HOST:PORT, e.g. 192.168.1.64:3702) instead of multicast.
    #[arg(long)]
    pub target: Option<String>,
    /// Send the multicast probe out of the interface with this IPv4 address.
    #[arg(long)]
    pub interface: Option<Ipv4Addr>,
    /// Seconds to wait for replies.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
    /// ONVIF username, to list each camera's profiles and stream URIs.
    #[arg(long, env = "CLEANNVR_ONVIF_USERNAME")]
    pub username: Option<String>,
    /// ONVIF password (prefer the environment variable: command lines are visible to other users).
    #[arg(long, env = "CLEANNVR_ONVIF_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Append a `[[camera]]` entry to the config file for each new camera found.
    #[arg(long)]
    pub add: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `cleannvr audit-cameras` (run by [`audit_all`], through the running server's control
/// socket or on the index, so each result is kept for the report).
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One discovered camera and what it told us.
#[derive(Debug, serde::Serialize)]
struct Found {
    #[serde(flatten)]
    probe: ProbeMatch,
    summary: Option<CameraSummary>,
    error: Option<String>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs `discover`. Exit status: 0 when cameras were found and (with
/// credentials) described, 1 when none answered, 2 when some could not be
/// described (e.g. not authorized).
pub fn discover_cmd(args: DiscoverArgs, config_path: &Path) -> anyhow::Result<ExitCode> {
    let target = match &args.target {
        Some(t) => {
            let addr: SocketAddr = t
                .to_socket_addrs()
                .with_context(|| format!("--target {t}: expected HOST:PORT"))?
                .next()
                .with_context(|| format!("--target {t}: no address"))?;
            Target::Unicast(addr)
        }
        None => Target::Multicast(args.interface),
    };
    let creds = args.username.clone().map(|username| Credentials {
        username,
        password: args.password.clone().unwrap_or_default(),
    });
    let found = runtime()?.block_on(async {
        let matches = discovery::discover(target, Duration::from_secs(args.timeout.max(1)))
            .await
            .context("sending the WS-Discovery probe")?;
        let mut found = Vec::new();
        for m in matches {
            let (summary, error) = match describe(&m, creds.clone()).await {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            found.push(Found {
                probe: m,
                summary,
                error,
            });
        }
        anyhow::Ok(found)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print_found(&found);
    }
    if args.add {
        add_to_config(&found, &args, config_path)?;
    }
    Ok(if found.is_empty() {
        eprintln!("no ONVIF cameras answered");
        ExitCode::from(1)
    } else if found.iter().any(|f| f.error.is_some()) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn describe(m: &ProbeMatch, creds: Option<Credentials>) -> anyhow::Result<CameraSummary> {
    let xaddr = m
        .xaddrs
        .iter()
        .find_map(|x| url::Url::parse(x).ok().filter(|u| u.scheme() == "http"))
        .context("no http:// device service address")?;
    let client = OnvifClient::connect_url(xaddr, creds).await?;
    Ok(resolve::describe(&client).await?)
}

fn print_found(found: &[Found]) {
    for f in found {
        let p = &f.probe;
        println!(
            "{}  ({})",
            p.name.as_deref().unwrap_or("unnamed camera"),
            p.endpoint
        );
        println!("  answered from  {}", p.from);
        for x in &p.xaddrs {
            println!("  device service {x}");
        }
        if let Some(h) = &p.hardware {
            println!("  hardware       {h}");
        }
        if let Some(l) = &p.location {
            println!("  location       {l}");
        }
        if let Some(s) = &f.summary {
            let d = &s.device;
            println!(
                "  device         {} {} (firmware {}, serial {})",
                d.manufacturer, d.model, d.firmware_version, d.serial_number
            );
            for ps in &s.profiles {
                let pr = &ps.profile;
                let res = match (pr.width, pr.height) {
                    (Some(w), Some(h)) => format!("{w}x{h}"),
                    _ => "?".into(),
                };
                let fps = pr.fps.map(|f| format!(" @{f} fps")).unwrap_or_default();
                println!(
                    "  profile {:<14} {} {res}{fps}  {}",
                    pr.token,
                    pr.encoding.as_deref().unwrap_or("?"),
                    ps.stream_uri
                        .as_deref()
                        .map(crate::config::redact_url)
                        .or(ps.error.clone())
                        .unwrap_or_default()
                );
            }
        }
        if let Some(e) = &f.error {
            println!("  ONVIF error    {e}");
        }
        println!();
    }
}

/// Appends a `[[camera]]` table per camera not already configured. The
/// password is written only when given, into a file created 0600.
fn add_to_config(found: &[Found], args: &DiscoverArgs, path: &Path) -> anyhow::Result<()> {
    let existing = if path.exists() {
        Some(Config::load(path)?)
    } else {
        None
    };
    let mut ids: Vec<String> = existing
        .iter()
        .flat_map(|c| c.cameras.iter().map(|c| c.id.clone()))
        .collect();
    let configured: Vec<(String, u16)> = existing
        .iter()
        .flat_map(|c| {
            c.cameras
                .iter()
                .filter_map(|c| c.onvif.as_ref().map(|o| (o.host.clone(), o.port)))
        })
        .collect();
    let mut text = String::new();
    for f in found {
        let Some(xaddr) = f.probe.xaddrs.iter().find_map(|x| url::Url::parse(x).ok()) else {
            continue;
        };
        let host = xaddr
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = xaddr.port_or_known_default().unwrap_or(80);
        if configured.contains(&(host.clone(), port)) {
            eprintln!("{host}:{port} is already configured; not adding it again");
            continue;
        }
        let name = f
            .probe
            .name
            .clone()
            .or_else(|| f.summary.as_ref().map(|s| s.device.model.clone()))
            .unwrap_or_else(|| host.clone());
        let id = unique_id(&slug(&name), &ids);
        ids.push(id.clone());
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut onvif = format!("host = {}, port = {port}", q(&host));
        if let Some(u) = &args.username {
            onvif.push_str(&format!(", username = {}", q(u)));
        }
        if let Some(p) = &args.password {
            onvif.push_str(&format!(", password = {}", q(p)));
        }
        // Pin the profile discover chose, so a firmware update that reorders profiles changes nothing.
        if let Some(s) = &f.summary {
            let profiles: Vec<_> = s.profiles.iter().map(|p| p.profile.clone()).collect();
            if let Ok((main, _)) = resolve::choose_profiles(&profiles, None) {
                onvif.push_str(&format!(", profile = {}", q(&main.token)));
            }
        }
        text.push_str(&format!(
            "\n# Added by `cleannvr discover --add` ({})\n[[camera]]\nid = {}\nname = {}\nonvif = {{ {onvif} }}\n",
            f.probe.endpoint,
            q(&id),
            q(&name)
        ));
        println!("added camera {id} ({host}:{port}) to {}", path.display());
    }
    if text.is_empty() {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(path)
        .with_context(|| format!("opening {} to add cameras", path.display()))?;
    file.write_all(text.as_bytes())?;
    // Prove the result still loads, so a bad entry is reported now, not at the next start.
    Config::load(path).with_context(|| format!("{} after adding cameras", path.display()))?;
    Ok(())
}

/// A camera id from a name: lower case, runs of other characters become `-`.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            s.push(c);
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_matches('-');
    let s: String = s.chars().take(56).collect();
    if s.is_empty() || s == "index" {
        "camera".into()
    } else {
        s
    }
}

/// `base`, or `base-N` with the first N not in `taken`.
pub fn unique_id(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !taken.contains(c))
        .expect("an unused suffix exists")
}

/// Runs `audit-cameras` over every camera with `onvif` settings, writing each report to
/// `out` and keeping each result (time, `by`, verdict, findings) as the camera's latest
/// audit for the Code of Practice report, as the web Isolation page does. Returns the
/// exit status: 0 every camera is shown isolated, 2 some camera has a possible route
/// out or withheld a setting (isolation not shown), 1 some camera could not be audited
/// at all. A result that cannot be kept is an error, after the reports are written.
pub async fn audit_all(
    cameras: &[CameraConfig],
    records: &Records,
    by: &str,
    clock: &dyn Clock,
    json: bool,
    out: &mut String,
) -> anyhow::Result<u8> {
    let mut failed = false;
    let mut not_isolated = false;
    let mut list = Vec::new();
    let mut kept = Vec::new();
    for cam in cameras {
        let id = &cam.id;
        let Some(result) = audit::audit_camera(cam).await else {
            if !json {
                writeln!(out, "camera {id}: no `onvif` settings; skipped\n")?;
            }
            continue;
        };
        let result = result.map_err(|e| e.to_string());
        kept.push(Record::of(
            id,
            clock.now_ns(),
            by,
            result.as_ref().map_err(Clone::clone),
        ));
        match result {
            Err(e) => {
                failed = true;
                if json {
                    list.push(serde_json::json!({ "camera": id, "error": e }));
                } else {
                    writeln!(out, "camera {id}: cannot audit: {e}\n")?;
                }
            }
            Ok(report) => {
                not_isolated |= report.has_route_out()
                    || report
                        .findings
                        .iter()
                        .any(|f| f.level == audit::Level::Unknown);
                if json {
                    list.push(serde_json::to_value(&report)?);
                } else {
                    writeln!(out, "{report}")?;
                }
            }
        }
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
    }
    for r in &kept {
        records.put(r)?;
    }
    Ok(if failed {
        1
    } else if not_isolated {
        2
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_unique_ids() {
        assert_eq!(slug("Front Gate (PTZ)"), "front-gate-ptz");
        assert_eq!(slug("???"), "camera");
        assert_eq!(slug("Index"), "camera");
        assert!(crate::config::valid_id(&slug(&"x".repeat(200))));
        let taken = vec!["rigcam".to_string(), "rigcam-2".to_string()];
        assert_eq!(unique_id("rigcam", &taken), "rigcam-3");
        assert_eq!(unique_id("other", &taken), "other");
    }
}
