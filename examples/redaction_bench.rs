//! Redaction speed against the `ffmpeg` command doing the same filter in the same run:
//! a recorded segment decoded, boxes filled or blurred (or everything but a box blurred),
//! the date and time burned in, encoded with libx264 `veryfast`/`zerolatency` (2 s GOP,
//! no B-frames), audio copied.
//!
//! ```sh
//! cargo build --release --example redaction_bench
//! target/release/examples/redaction_bench SEGMENT.mp4 [ROUNDS] [fill|blur|invert ...]
//! ```
//!
//! Rounds alternate (ours, ffmpeg, ours, ffmpeg, ...) so load on a shared machine hits
//! both alike; prints wall and CPU seconds of each, the median ratios per scenario, and
//! the machine's load average before and after.

use std::path::Path;
use std::process::Command;

use cleannvr::transcode::burn::{self, Corner};
use cleannvr::transcode::convert::Options;
use cleannvr::transcode::redact::{blur_radius, Mode, RedactBox, Redaction};

#[path = "common/mod.rs"]
mod common;
use common::median;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Width, height and frames per second of the input's video.
fn probe(input: &str) -> anyhow::Result<(u32, u32, u32)> {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height,r_frame_rate", "-of", "csv=p=0", input])
        .output()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = text.trim().split(',').collect();
    anyhow::ensure!(f.len() == 3, "ffprobe said {text:?}");
    let fps = match f[2].split_once('/') {
        Some((n, d)) => (n.parse::<f64>()? / d.parse::<f64>()?).round() as u32,
        None => f[2].parse()?,
    };
    Ok((f[0].parse()?, f[1].parse()?, fps.max(1)))
}

fn bx(x: f64, y: f64, w: f64, h: f64) -> RedactBox {
    RedactBox {
        x,
        y,
        w,
        h,
        keys: vec![],
    }
}

/// The redaction of a scenario: two people blanked or blurred, or everything but one
/// region blurred. No box reaches the top-left corner, so both put the time there.
fn scenario(name: &str) -> anyhow::Result<Redaction> {
    let two = vec![bx(0.5, 0.3, 0.2, 0.45), bx(0.1, 0.5, 0.15, 0.4)];
    Ok(match name {
        "fill" => Redaction {
            mode: Mode::Fill,
            boxes: two,
            invert: false,
            mute_audio: false,
        },
        "blur" => Redaction {
            mode: Mode::Blur,
            boxes: two,
            invert: false,
            mute_audio: false,
        },
        "invert" => Redaction {
            mode: Mode::Blur,
            boxes: vec![bx(0.5, 0.3, 0.2, 0.45)],
            invert: true,
            mute_audio: false,
        },
        other => anyhow::bail!("unknown scenario {other:?} (fill, blur or invert)"),
    })
}

/// `boxblur` options blurring a `w`×`h` luma region as cleannvr does: the same radii,
/// two passes (`power` 2).
fn boxblur(w: usize, h: usize) -> String {
    format!(
        "boxblur=luma_radius={}:luma_power=2:chroma_radius={}:chroma_power=2",
        blur_radius(w, h, false),
        blur_radius(w / 2, h / 2, true)
    )
}

/// The `-filter_complex` graph doing `r` to a `width`×`height` picture, then `drawtext`.
fn filter(r: &Redaction, width: u32, height: u32, drawtext: &str) -> anyhow::Result<String> {
    let boxes = r.resolve()?.pixel_boxes(0, width, height);
    let crop = |b: &[usize; 4]| format!("crop={}:{}:{}:{}", b[2], b[3], b[0], b[1]);
    let at = |b: &[usize; 4]| format!("overlay={}:{}", b[0], b[1]);
    let mut g = String::from("[0:v]format=yuv420p");
    match (r.mode, r.invert) {
        (Mode::Fill, false) => {
            for b in &boxes {
                g += &format!(
                    ",drawbox=x={}:y={}:w={}:h={}:color=black:t=fill",
                    b[0], b[1], b[2], b[3]
                );
            }
        }
        (Mode::Blur, false) => {
            g += &format!(",split={}[base]", boxes.len() + 1);
            for i in 0..boxes.len() {
                g += &format!("[c{i}]");
            }
            for (i, b) in boxes.iter().enumerate() {
                g += &format!(";[c{i}]{},{}[b{i}]", crop(b), boxblur(b[2], b[3]));
            }
            let mut last = "base".to_owned();
            for (i, b) in boxes.iter().enumerate() {
                g += &format!(";[{last}][b{i}]{}[o{i}]", at(b));
                last = format!("o{i}");
            }
            g += &format!(";[{last}]null");
        }
        (Mode::Blur, true) => {
            g += &format!(",split={}[base]", boxes.len() + 1);
            for i in 0..boxes.len() {
                g += &format!("[k{i}]");
            }
            g += &format!(";[base]{}[o]", boxblur(width as usize, height as usize));
            for (i, b) in boxes.iter().enumerate() {
                g += &format!(";[k{i}]{}[c{i}]", crop(b));
            }
            let mut last = "o".to_owned();
            for (i, b) in boxes.iter().enumerate() {
                g += &format!(";[{last}][c{i}]{}[o{i}]", at(b));
                last = format!("o{i}");
            }
            g += &format!(";[{last}]null");
        }
        (Mode::Fill, true) => anyhow::bail!("inverted fill is not a scenario here"),
    }
    g += &format!(",drawtext={drawtext}[v]");
    Ok(g)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let input = args
        .get(1)
        .expect("usage: redaction_bench SEGMENT.mp4 [ROUNDS] [fill|blur|invert ...]");
    let rounds: usize = args.get(2).map_or(3, |r| r.parse().expect("ROUNDS"));
    let names: Vec<String> = if args.len() > 3 {
        args[3..].to_vec()
    } else {
        ["fill", "blur", "invert"].map(str::to_owned).to_vec()
    };
    let out_dir = tempfile::tempdir()?;
    let tz = jiff::tz::TimeZone::get("Europe/London")?;
    let (width, height, fps) = probe(input)?;
    println!(
        "input {input}: {width}x{height} {fps} fps; load average {}",
        loadavg()
    );
    let first_frame_ns = 1_761_355_800_000_000_000; // 2025-10-25T01:30:00Z
    let text = format!(
        "%{{pts\\:localtime\\:{}\\:%Y-%m-%d %H\\\\\\:%M\\\\\\:%S %Z}}",
        first_frame_ns / 1_000_000_000
    );
    // The command line adds a level of escaping (the filter graph's) to the options'.
    let drawtext = burn::drawtext_options(&burn::font()?, height, Corner::TopLeft, &text)
        .replace('\\', "\\\\");
    let mut summary = Vec::new();
    for name in &names {
        let redaction = scenario(name)?;
        let graph = filter(&redaction, width, height, &drawtext)?;
        let gop = (2 * fps).to_string();
        let ffmpeg_args = |out: &str| -> Vec<String> {
            [
                "-y",
                "-nostdin",
                "-v",
                "error",
                "-i",
                input,
                "-filter_complex",
                &graph,
                "-map",
                "[v]",
                "-map",
                "0:a?",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
                "-g",
                &gop,
                "-bf",
                "0",
                "-c:a",
                "copy",
                out,
            ]
            .map(str::to_owned)
            .to_vec()
        };
        println!("\n{name}: {}", serde_json::to_string(&redaction)?);
        println!(
            "ffmpeg {}",
            ffmpeg_args("OUT.mp4")
                .iter()
                .map(|a| if a.contains([' ', '[', ';', '%', '\\']) {
                    format!("'{a}'")
                } else {
                    a.clone()
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
        let resolved = redaction.resolve()?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let path = out_dir.path().join(format!("ours-{name}{round}.mp4"));
            let path2 = out_dir.path().join(format!("ffmpeg-{name}{round}.mp4"));
            let opts = Options {
                first_frame_ns,
                time_zone: tz.clone(),
                redact: Some(resolved.clone()),
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
                "{name} round {round}: cleannvr {} frames {:.1} s wall {:.1} s CPU ({} bytes); \
                 ffmpeg {:.1} s wall {:.1} s CPU ({} bytes); load {}",
                conv.frames,
                ours_r.0,
                ours_r.1,
                std::fs::metadata(&path)?.len(),
                theirs_r.0,
                theirs_r.1,
                std::fs::metadata(&path2)?.len(),
                loadavg()
            );
            std::fs::remove_file(&path)?;
            std::fs::remove_file(&path2)?;
            ours.push(ours_r);
            theirs.push(theirs_r);
        }
        let wall = common::median_ratio(&ours, &theirs, 0);
        let cpu = common::median_ratio(&ours, &theirs, 1);
        let m = |v: &[(f64, f64)], i: usize| median(v.iter().map(|x| [x.0, x.1][i]).collect());
        summary.push(format!(
            "| {name} | {:.1} / {:.1} | {:.1} / {:.1} | **{wall:.2}** | {cpu:.2} |",
            m(&ours, 0),
            m(&theirs, 0),
            m(&ours, 1),
            m(&theirs, 1)
        ));
    }
    println!("\nload average at the end {}", loadavg());
    println!("| scenario | wall s, cleannvr / ffmpeg (median) | CPU s, cleannvr / ffmpeg (median) | wall ratio (median) | CPU ratio (median) |");
    println!("|---|---|---|---|---|");
    for s in summary {
        println!("{s}");
    }
    Ok(())
}
