//! Working-copy conversion speed against the `ffmpeg` command doing the same work in the
//! same run: decode a fragmented H.265 MP4, burn in the local date and time with
//! `drawtext`, encode with libx264 `veryfast`/`zerolatency`, copy the audio.
//!
//! ```sh
//! cargo run --example working_copy_bench -- INPUT.mp4 [ROUNDS]
//! ```
//!
//! Rounds alternate (ours, ffmpeg, ours, ffmpeg, ...) so load on a shared machine hits
//! both alike; prints wall and CPU seconds of each and the median ratios.

use std::process::Command;
use std::time::Instant;

use cleannvr::transcode::burn::{self, Corner};
use cleannvr::transcode::convert::{self, Options};

fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let input = args
        .get(1)
        .expect("usage: working_copy_bench INPUT.mp4 [ROUNDS]");
    let rounds: usize = args.get(2).map_or(3, |r| r.parse().expect("ROUNDS"));
    let out_dir = tempfile::tempdir()?;
    let tz = jiff::tz::TimeZone::get("Europe/London")?;
    let height = {
        let o = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["stream=height", "-of", "csv=p=0", input])
            .output()?;
        String::from_utf8_lossy(&o.stdout).trim().parse::<u32>()?
    };
    let first_frame_ns = 1_761_355_800_000_000_000; // 2025-10-25T01:30:00Z
                                                    // The same drawtext options; ffmpeg formats the time itself (in TZ's zone, from pts).
    let text = format!(
        "%{{pts\\:localtime\\:{}\\:%Y-%m-%d %H\\\\\\:%M\\\\\\:%S %Z}}",
        first_frame_ns / 1_000_000_000
    );
    // The command line adds a level of escaping (the filter graph's) to the options'.
    let filter = format!(
        "format=yuv420p,drawtext={}",
        burn::drawtext_options(&burn::font()?, height, Corner::TopLeft, &text)
            .replace('\\', "\\\\")
    );
    let ffmpeg_args = |out: &str| -> Vec<String> {
        [
            "-y",
            "-nostdin",
            "-v",
            "error",
            "-i",
            input,
            "-vf",
            &filter,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-c:a",
            "copy",
            out,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    println!("ffmpeg {}", ffmpeg_args("OUT.mp4").join(" "));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let path = out_dir.path().join(format!("ours{round}.mp4"));
        let (t0, c0) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
        let mut f = std::fs::File::open(input)?;
        let len = f.metadata()?.len();
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let conv = convert::convert(
            &mut f,
            len,
            &mut out,
            &Options {
                first_frame_ns,
                time_zone: tz.clone(),
                redact: None,
                edit: None,
                preset: "veryfast",
            },
        )?;
        drop(out);
        let ours_r = (
            t0.elapsed().as_secs_f64(),
            cpu_seconds(libc::RUSAGE_SELF) - c0,
        );
        let path2 = out_dir.path().join(format!("ffmpeg{round}.mp4"));
        let (t0, c0) = (Instant::now(), cpu_seconds(libc::RUSAGE_CHILDREN));
        let st = Command::new("ffmpeg")
            .args(ffmpeg_args(path2.to_str().unwrap()))
            .env("TZ", "Europe/London")
            .status()?;
        anyhow::ensure!(st.success(), "ffmpeg failed");
        let theirs_r = (
            t0.elapsed().as_secs_f64(),
            cpu_seconds(libc::RUSAGE_CHILDREN) - c0,
        );
        println!(
            "round {round}: cleannvr {} frames {:.1} s wall {:.1} s CPU ({} bytes); ffmpeg {:.1} s wall {:.1} s CPU ({} bytes)",
            conv.frames,
            ours_r.0,
            ours_r.1,
            std::fs::metadata(&path)?.len(),
            theirs_r.0,
            theirs_r.1,
            std::fs::metadata(&path2)?.len()
        );
        ours.push(ours_r);
        theirs.push(theirs_r);
    }
    let wall = median(ours.iter().zip(&theirs).map(|(a, b)| a.0 / b.0).collect());
    let cpu = median(ours.iter().zip(&theirs).map(|(a, b)| a.1 / b.1).collect());
    println!("median ratio cleannvr/ffmpeg: wall {wall:.2}, CPU {cpu:.2}");
    Ok(())
}
