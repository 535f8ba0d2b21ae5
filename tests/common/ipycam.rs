//! ipycam, a third-party ONVIF camera simulator (PyPI, installed by
//! `.ci/install.sh` into the rig's venv). It binds 0.0.0.0 and multicasts
//! WS-Discovery, so run it only inside a private namespace ([`super::netns`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// The rig directory of `.ci/install.sh` (venvs of the Python peers).
pub fn rig_dir() -> PathBuf {
    std::env::var_os("CLEANNVR_RIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp/cleannvr-rig".into())
}

/// ipycam's Python.
pub fn ipycam_python() -> PathBuf {
    rig_dir().join("venv-ipycam/bin/python")
}

/// ipycam with a looping test clip, in its own process group so its ffmpeg
/// children stop with it.
pub struct Ipycam {
    child: Child,
    out: Output,
    _dir: tempfile::TempDir,
}

pub const ONVIF_PORT: u16 = 8080;

impl Ipycam {
    pub fn start(username: &str, password: &str) -> Ipycam {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        let st = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=15",
                "-t",
                "4",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(&clip)
            .status()
            .unwrap();
        assert!(st.success());
        let config = serde_json::json!({
            "name": "RigCam", "manufacturer": "RigVendor", "model": "RigModel-1",
            "local_ip": "127.0.0.1", "onvif_port": ONVIF_PORT, "rtsp_port": 8554,
            "main_width": 640, "main_height": 360, "main_fps": 15, "main_bitrate": "1M",
            "sub_width": 320, "sub_height": 180, "sub_bitrate": "300K", "hw_accel": "cpu",
            "username": username, "password": password
        });
        std::fs::write(dir.path().join("camera_config.json"), config.to_string()).unwrap();
        let mut child = Command::new(ipycam_python())
            .args([
                "-m",
                "ipycam",
                "--config",
                "camera_config.json",
                "--source",
                "clip.mp4",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("starting ipycam");
        let out = Output::default();
        follow(&out, child.stdout.take().unwrap());
        follow(&out, child.stderr.take().unwrap());
        let cam = Ipycam {
            child,
            out,
            _dir: dir,
        };
        wait_for(Duration::from_secs(60), "ipycam's ONVIF port", || {
            std::net::TcpStream::connect(("127.0.0.1", ONVIF_PORT)).ok()
        });
        cam
    }
}

/// ipycam's output, shown when a test fails.
#[derive(Clone, Default)]
pub struct Output(std::sync::Arc<std::sync::Mutex<String>>);

impl Output {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

fn follow(out: &Output, r: impl std::io::Read + Send + 'static) {
    let out = out.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(r).lines().map_while(Result::ok) {
            let mut s = out.0.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
}

impl Drop for Ipycam {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("ipycam output:\n{}", self.out.text());
        }
    }
}
