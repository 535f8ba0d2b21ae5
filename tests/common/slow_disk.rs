//! A disk that stalls on demand: `tests/peers/slow_fs.py`, a FUSE passthrough
//! filesystem over a real directory, mounted where cleannvr keeps its storage.
//! Writes under one top-level directory block while the test holds the stall,
//! as a disk that stops answering blocks its writer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{require_peer, Lines};

/// The mounted filesystem; released, unmounted and stopped on drop, whatever
/// state the test left it in.
pub struct SlowDisk {
    child: Child,
    mount: PathBuf,
    flag: PathBuf,
    /// The filesystem's own report: `stalled <op> <path>`, `released ...`.
    pub out: Lines,
}

impl SlowDisk {
    /// Mounts a passthrough of `backing` on `mount` (both made if missing), whose
    /// writes under `/<stall_under>/` block while [`SlowDisk::stall`] holds. Needs
    /// root, `/dev/fuse` and Debian's python3-fusepy; otherwise the test is skipped
    /// with a message, or fails under `CLEANNVR_REQUIRE_PEERS=1`.
    pub fn mount(backing: &Path, mount: &Path, stall_under: &str) -> Option<SlowDisk> {
        let fusepy = Command::new("/usr/bin/python3")
            .args(["-c", "import fusepy"])
            .output()
            .is_ok_and(|o| o.status.success());
        let ok = super::is_root() && Path::new("/dev/fuse").exists() && fusepy;
        if !require_peer(ok, "root, /dev/fuse and python3-fusepy (a FUSE mount)") {
            return None;
        }
        std::fs::create_dir_all(backing).unwrap();
        std::fs::create_dir_all(mount).unwrap();
        let flag = backing.with_extension("stall");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/slow_fs.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(backing)
            .arg(mount)
            .arg(&flag)
            .arg(stall_under)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting /usr/bin/python3 slow_fs.py");
        let out = Lines::default();
        out.follow(child.stdout.take().unwrap(), "slowfs");
        out.follow(child.stderr.take().unwrap(), "slowfs");
        out.register("slow disk (FUSE)");
        let disk = SlowDisk {
            child,
            mount: mount.to_owned(),
            flag,
            out,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let needle = format!(" {} fuse", mount.display());
        loop {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
            if mounts.lines().any(|l| l.contains(&needle)) {
                return Some(disk);
            }
            assert!(
                Instant::now() < deadline,
                "slow_fs.py did not mount {} in 30 s: {}",
                mount.display(),
                disk.out.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// From now on, writes under the stalled directory block, until the returned
    /// guard is dropped. Keep the guard in a variable declared after the server's, so
    /// that a failing test releases the disk before it kills the server (a process
    /// killed mid-write closes its files through the stalled disk).
    pub fn stall(&self) -> Stall<'_> {
        std::fs::write(&self.flag, b"").unwrap();
        Stall(self)
    }

    fn release(&self) {
        let _ = std::fs::remove_file(&self.flag);
    }
}

/// A stall in force; dropping it lets blocked writes finish and new ones through.
pub struct Stall<'a>(&'a SlowDisk);

impl Drop for Stall<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // Release first, so nothing is left blocked on the mount; lazy, so a
        // process still holding a file cannot keep it mounted.
        self.release();
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
