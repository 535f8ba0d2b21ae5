//! The Docker image as an operator runs it, in podman. The image is built
//! from the repository's own Dockerfile with `--build-arg BINARY=prebuilt`:
//! its runtime stage as shipped (Debian's FFmpeg libraries, the unprivileged
//! user, `/data`, the baked-in config, the `HEALTHCHECK`) around the binary
//! this test run built, so CI needs no release build inside the image
//! (`tests/container.sh` is that slow variant). The base image is the rig's
//! local `debian:bookworm-slim` (`../shared/rig/container-bases.sh`, run by
//! `.ci/install.sh`); building installs the runtime libraries from the
//! machine's Debian mirror, as any `podman build` of the Dockerfile does.
//! The container runs the image's default command, `run`, with a mounted
//! config that names no camera, so it records the built-in demo camera; it
//! uses the host's network and listens on loopback only.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `podman args`, panicking with its output unless it succeeds.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the test's container and image, whatever happened.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "2", &self.container]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

fn base_image_present() -> bool {
    Command::new("podman")
        .args(["image", "exists", "docker.io/library/debian:bookworm-slim"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The build context: the Dockerfile, the config it bakes in, and the binary.
fn context(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir(dir.join("config")).unwrap();
    std::fs::copy(repo.join("Dockerfile"), dir.join("Dockerfile")).unwrap();
    std::fs::copy(
        repo.join("config/docker.toml"),
        dir.join("config/docker.toml"),
    )
    .unwrap();
    std::fs::copy(bin(), dir.join("cleannvr")).unwrap();
}

#[test]
fn the_docker_image_records_unprivileged_reads_secret_files_and_its_health_check_tells_a_hung_server(
) {
    if !require_peer(
        base_image_present(),
        "podman with the local debian:bookworm-slim image (../shared/rig/container-bases.sh)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    context(&ctx);
    let id = std::process::id();
    let cleanup = Cleanup {
        container: format!("cleannvr-image-test-{id}"),
        image: format!("localhost/cleannvr-image-test:{id}"),
    };
    let (name, image) = (cleanup.container.as_str(), cleanup.image.as_str());
    // Docker format: the OCI format drops HEALTHCHECK.
    podman_ok(&[
        "build",
        "--format",
        "docker",
        "--build-arg",
        "BINARY=prebuilt",
        "-t",
        image,
        ctx.to_str().unwrap(),
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&podman_ok(&["image", "inspect", image])).unwrap();
    let inspect = &inspect[0];
    assert_eq!(
        inspect["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/cleannvr", "health"]),
        "the image's HEALTHCHECK: {}",
        inspect["Healthcheck"]
    );
    assert_eq!(
        inspect["Config"]["User"], "cleannvr",
        "{}",
        inspect["Config"]
    );

    // Only the port (a free one on loopback) and the segment length move;
    // the recordings' place is the image's own default, /data.
    let port = free_port();
    let conf = dir.path().join("cleannvr.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [storage]\ndir = \"/data\"\nsegment_seconds = 4\n"
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        // The container's user must read the mounted config.
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A secret as compose.yaml passes one: a file under /run/secrets, named
    // by a `_FILE` variable, readable by the container's user only.
    let token = format!("metrics-{id}-{port}");
    let secret = dir.path().join("metrics_token");
    std::fs::write(&secret, format!("{token}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::chown(&secret, Some(10001), None).unwrap();
    }
    let mount = format!("{}:/config/cleannvr.toml:ro", conf.display());
    let secret_mount = format!("{}:/run/secrets/metrics_token:ro", secret.display());
    podman_ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        name,
        "--network",
        "host",
        "-e",
        "CLEANNVR_METRICS_TOKEN_FILE=/run/secrets/metrics_token",
        "-v",
        &mount,
        "-v",
        &secret_mount,
        image,
    ]);
    let logs = || output_text(&podman(&["logs", name]));
    let healthy = || podman(&["healthcheck", "run", name]).status.success();

    wait_for(
        Duration::from_secs(120),
        "the image's health check to pass",
        || healthy().then_some(()),
    );
    // The secret file set the metrics token (and nothing shows it).
    let base = format!("https://127.0.0.1:{port}");
    let page = scrape(&base, &token);
    assert!(page.contains("cleannvr_"), "{page}");
    assert!(!logs().contains(&token), "the token is in the log");
    let env = podman_ok(&["inspect", "--format", "{{json .Config.Env}}", name]);
    assert!(
        !env.contains(&token),
        "the token is in the container's config: {env}"
    );

    // The demo camera is recorded into the /data volume, and a finished
    // segment decodes.
    let segment = wait_for(
        Duration::from_secs(120),
        "a finished segment in /data",
        || {
            let out = podman(&[
                "exec",
                name,
                "sh",
                "-c",
                "ls /data/demo1/*/*.mp4 2>/dev/null | head -1",
            ]);
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!path.is_empty()).then_some(path)
        },
    );
    let modes = podman_ok(&["exec", name, "stat", "-c", "%a %u", "/data", &segment]);
    let modes: Vec<&str> = modes.lines().collect();
    assert_eq!(modes.len(), 2, "{modes:?}");
    assert!(
        modes[0].starts_with("700 "),
        "/data must be private: {modes:?}"
    );
    assert!(
        modes[1].starts_with("600 "),
        "{segment} must be private: {modes:?}"
    );
    // The server process (PID 1 is --init's) is not root.
    let uid = podman_ok(&[
        "exec",
        name,
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = cleannvr ] && stat -c '%u %n' $p; done",
    ]);
    let (uid, proc_dir) = uid
        .lines()
        .next()
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("no cleannvr process in the container: {}", logs()));
    assert_ne!(uid, "0", "cleannvr runs as root in the container");
    let copied = dir.path().join("segment.mp4");
    podman_ok(&["cp", &format!("{name}:{segment}"), copied.to_str().unwrap()]);
    assert!(codecs(&copied).iter().any(|c| c == "h264"), "{segment}");
    let errors = decode_errors(&copied);
    assert!(errors.is_empty(), "{segment} does not decode: {errors}");

    // A hung server (stopped, its socket still open) must fail the check.
    let pid = proc_dir.trim_start_matches("/proc/");
    podman_ok(&["exec", name, "sh", "-c", &format!("kill -STOP {pid}")]);
    let hung = podman(&["healthcheck", "run", name]);
    podman_ok(&["exec", name, "sh", "-c", &format!("kill -CONT {pid}")]);
    assert!(
        !hung.status.success(),
        "the health check passed while the server was stopped: {}",
        output_text(&hung)
    );
    wait_for(
        Duration::from_secs(60),
        "healthy again after SIGCONT",
        || healthy().then_some(()),
    );
    let log = logs();
    assert!(
        !log.contains("panicked"),
        "the server panicked in the container:\n{log}"
    );
    drop(cleanup);
}
