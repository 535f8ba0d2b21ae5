//! A real 3-node Garage cluster on loopback (replication 3, consistent mode), the S3
//! peer of the archive tier. `garage` comes from `cargo install garage --locked`
//! (`.ci/install.sh`); tests skip without it unless `CLEANNVR_REQUIRE_PEERS=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for, wait_for_ok, Lines};

/// The `garage` binary: `CLEANNVR_GARAGE`, else the first `garage` on `PATH`, else
/// cargo's bin directory.
pub fn binary() -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("garage"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::env::var("CLEANNVR_GARAGE")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain(on_path)
        .chain([PathBuf::from(format!("{home}/.cargo/bin/garage"))])
        .find(|p| p.is_file())
}

/// Node names in a timeout's diagnostics.
const GARAGE_NAMES: [&str; 3] = ["garage node 0", "garage node 1", "garage node 2"];

/// One node: its config and process.
pub struct Node {
    pub config: PathBuf,
    pub s3_port: u16,
    rpc: String,
    child: Option<Child>,
    pub log: Lines,
}

/// A running cluster with one bucket and one key.
pub struct Cluster {
    bin: PathBuf,
    pub nodes: Vec<Node>,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

impl Cluster {
    /// Starts three nodes under `dir`, joins them, applies a layout and makes `bucket`
    /// with a read/write key.
    pub fn start(bin: &Path, dir: &Path, bucket: &str) -> Cluster {
        // Each cluster its own RPC secret: two clusters of parallel tests can then
        // never take each other's nodes for their own.
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let d = dir.join(format!("garage{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let (rpc, s3, admin) = (free_port(), free_port(), free_port());
            let config = d.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{m}\"\ndata_dir = \"{da}\"\ndb_engine = \"lmdb\"\n\
                     replication_factor = 3\nconsistency_mode = \"consistent\"\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_secret = \"{secret}\"\n\
                     [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                     root_domain = \".s3.garage.localhost\"\n\
                     [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                    m = d.join("meta").display(),
                    da = d.join("data").display(),
                ),
            )
            .unwrap();
            nodes.push(Node {
                config,
                s3_port: s3,
                rpc: format!("127.0.0.1:{rpc}"),
                child: None,
                log: Lines::default(),
            });
        }
        let mut c = Cluster {
            bin: bin.to_owned(),
            nodes,
            bucket: bucket.into(),
            key_id: String::new(),
            secret: String::new(),
        };
        for i in 0..3 {
            c.start_node(i);
        }
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let out = c.cli(i, &["node", "id", "-q"]);
                out.trim().to_owned()
            })
            .collect();
        for id in &ids[1..] {
            wait_for_ok(Duration::from_secs(60), "garage node connect", || {
                c.try_cli(0, &["node", "connect", id])
            });
        }
        for id in &ids {
            let short = id.split('@').next().unwrap();
            c.cli(0, &["layout", "assign", "-z", "dc1", "-c", "1G", short]);
        }
        c.cli(0, &["layout", "apply", "--version", "1"]);
        let key = c.cli(0, &["key", "create", "cleannvr-test"]);
        c.key_id = field(&key, "Key ID");
        c.secret = field(&key, "Secret key");
        wait_for_ok(Duration::from_secs(60), "garage bucket create", || {
            c.try_cli(0, &["bucket", "create", bucket])
        });
        c.cli(
            0,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                bucket,
                "--key",
                "cleannvr-test",
            ],
        );
        c
    }

    /// S3 endpoint of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// Starts (or restarts) node `i` and waits for its S3 port.
    pub fn start_node(&mut self, i: usize) {
        let mut cmd = Command::new(&self.bin);
        clear_env(&mut cmd);
        let mut child = cmd
            .arg("-c")
            .arg(&self.nodes[i].config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting garage");
        let log = Lines::default();
        log.register(GARAGE_NAMES[i]);
        log.follow(child.stdout.take().unwrap(), "garage");
        log.follow(child.stderr.take().unwrap(), "garage");
        self.nodes[i].child = Some(child);
        self.nodes[i].log = log;
        let port = self.nodes[i].s3_port;
        wait_for(Duration::from_secs(60), "garage S3 port", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts node `i` and reconnects it to node 0 (a restarted node may otherwise
    /// stay apart for a while).
    pub fn restart_node(&mut self, i: usize) {
        self.start_node(i);
        if i != 0 {
            let rpc = self.nodes[i].rpc.clone();
            let id = self.cli(i, &["node", "id", "-q"]);
            let id = id.trim().split('@').next().unwrap().to_owned();
            wait_for_ok(Duration::from_secs(60), "garage node reconnect", || {
                self.try_cli(0, &["node", "connect", &format!("{id}@{rpc}")])
            });
        }
    }

    /// Runs the `garage` CLI against node `i`; panics on failure.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        self.try_cli(i, args)
            .unwrap_or_else(|e| panic!("garage {args:?}: {e}"))
    }

    /// Runs the `garage` CLI against node `i`.
    pub fn try_cli(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(&self.bin);
        clear_env(&mut cmd);
        let out = cmd
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}

/// `GARAGE_*` variables override the config file; the CLI must see only ours.
fn clear_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("GARAGE_") {
            cmd.env_remove(k);
        }
    }
}

/// The value after `NAME:` in `garage key create` output.
fn field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.trim().strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} in: {text}"))
}
