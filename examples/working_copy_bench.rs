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

use std::path::Path;
use std::process::Command;

use cleannvr::transcode::burn::{self, Corner};
use cleannvr::transcode::convert::Options;

#[path = "common/mod.rs"]
mod common;

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
        let path2 = out_dir.path().join(format!("ffmpeg{round}.mp4"));
        let opts = Options {
            first_frame_ns,
            time_zone: tz.clone(),
            redact: None,
            edit: None,
            preset: "veryfast",
        };
        let (conv, ours_r, theirs_r) = common::round(
            Path::new(input),
            &path,
            &opts,
            &ffmpeg_args(path2.to_str().unwrap()),
        )?;
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
    let wall = common::median_ratio(&ours, &theirs, 0);
    let cpu = common::median_ratio(&ours, &theirs, 1);
    println!("median ratio cleannvr/ffmpeg: wall {wall:.2}, CPU {cpu:.2}");
    Ok(())
}
