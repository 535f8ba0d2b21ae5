//! Private network namespaces for tests whose peers must not touch the
//! host's network (ipycam multicasts WS-Discovery) or whose traffic the test
//! watches (no egress). A test re-runs itself inside a fresh namespace.

use std::process::{Command, Stdio};

/// A private network namespace with only `lo` up; deleted on drop, after
/// killing whatever is still running inside it (only our own processes can be).
pub struct Netns(pub String);

impl Netns {
    /// A fresh namespace named after `tag` and this process.
    pub fn new(tag: &str) -> Netns {
        let name = format!("cnvr-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

/// Runs `ip ARGS`, panicking with the arguments if it fails.
pub fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("running ip");
    assert!(st.success(), "ip {args:?}");
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The environment variable that tells a re-run test it is inside.
const IN_NS: &str = "CLEANNVR_TEST_NETNS";

/// Runs `test` (the caller, by name) again inside a fresh namespace and
/// asserts it passed there. Returns true when the caller is already inside
/// and should do the work. The caller checks its peers first.
pub fn inside_namespace(test: &str) -> bool {
    if std::env::var_os(IN_NS).is_some() {
        return true;
    }
    let ns = Netns::new(&test.replace('_', "").chars().take(8).collect::<String>());
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NS, &ns.0)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(ns);
    // Shown with --nocapture, or when the assertions below fail.
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "{test} inside the namespace failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "{test} did not run inside the namespace:\n{text}"
    );
    false
}
