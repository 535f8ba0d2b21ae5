//! Burns a line of text (the frame's local date and time) into each picture with FFmpeg's
//! `drawtext` filter, white on a black band in one corner.
//!
//! The text of each frame travels as frame metadata ([`TEXT_KEY`]) that `drawtext` expands
//! (`%{metadata:...}`), so each frame carries exactly the time we computed for it in the
//! configured zone (FFmpeg's own `localtime` would use the process's zone instead), and
//! nothing is re-parsed per frame.

use anyhow::Context as _;
use ffmpeg_next as ffmpeg;

/// Frame metadata key holding the text to draw.
pub const TEXT_KEY: &str = "cleannvr.time";

/// Environment variable naming the TrueType font to draw with.
pub const FONT_ENV: &str = "CLEANNVR_FONT";

/// Fonts tried in order when [`FONT_ENV`] is unset (Debian's `fonts-dejavu-core` first).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
];

/// The font file to draw with: [`FONT_ENV`], else the first of the usual ones present.
pub fn font() -> anyhow::Result<String> {
    if let Ok(f) = std::env::var(FONT_ENV) {
        anyhow::ensure!(
            std::path::Path::new(&f).is_file(),
            "{FONT_ENV}={f}: no such font file"
        );
        return Ok(f);
    }
    FONTS
        .iter()
        .find(|f| std::path::Path::new(f).is_file())
        .map(|f| (*f).to_owned())
        .with_context(|| {
            format!(
                "no font to burn in the date and time: install fonts-dejavu-core or set \
                 {FONT_ENV} to a .ttf file"
            )
        })
}

/// A corner of the picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corner {
    /// Top left (the usual place for a CCTV time stamp).
    TopLeft,
    /// Top right.
    TopRight,
    /// Bottom left.
    BottomLeft,
    /// Bottom right.
    BottomRight,
}

impl Corner {
    /// All corners, most usual first.
    pub const ALL: [Corner; 4] = [
        Corner::TopLeft,
        Corner::TopRight,
        Corner::BottomLeft,
        Corner::BottomRight,
    ];

    /// The `drawtext` position expressions for this corner, `m` pixels in.
    fn position(self, m: u32) -> (String, String) {
        let left = format!("{m}");
        let right = format!("w-tw-{m}");
        let top = format!("{m}");
        let bottom = format!("h-th-{m}");
        match self {
            Corner::TopLeft => (left, top),
            Corner::TopRight => (right, top),
            Corner::BottomLeft => (left, bottom),
            Corner::BottomRight => (right, bottom),
        }
    }

    /// The area (fractions of the picture) the band may cover: two fifths of the width and
    /// a tenth of the height in this corner.
    pub fn area(self) -> (f64, f64, f64, f64) {
        let (w, h) = (0.4, 0.1);
        match self {
            Corner::TopLeft => (0.0, 0.0, w, h),
            Corner::TopRight => (1.0 - w, 0.0, w, h),
            Corner::BottomLeft => (0.0, 1.0 - h, w, h),
            Corner::BottomRight => (1.0 - w, 1.0 - h, w, h),
        }
    }
}

/// The `drawtext` filter's options for a picture `height` pixels high (text a 24th of the
/// height, at least 12 px) in `corner`, with `font`. Public so the benchmark can give the
/// `ffmpeg` command the same filter.
pub fn drawtext_options(font: &str, height: u32, corner: Corner, text: &str) -> String {
    let size = (height / 24).max(12);
    let border = (size / 4).max(2);
    let (x, y) = corner.position(border * 2);
    format!(
        "fontfile={font}:text={text}:fontsize={size}:fontcolor=white:box=1:boxcolor=black:\
         boxborderw={border}:x={x}:y={y}"
    )
}

/// A filter graph `buffer → drawtext → buffersink` for YUV 4:2:0 pictures of one size.
pub struct Burner {
    graph: ffmpeg::filter::Graph,
}

impl Burner {
    /// For `width`×`height` YUV 4:2:0 frames with 90 kHz timestamps.
    pub fn new(width: u32, height: u32, corner: Corner) -> anyhow::Result<Burner> {
        super::init()?;
        let font = font()?;
        let mut graph = ffmpeg::filter::Graph::new();
        let pix: ffmpeg::ffi::AVPixelFormat = ffmpeg::format::Pixel::YUV420P.into();
        let src_args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base=1/90000:pixel_aspect=1/1",
            pix as i32
        );
        let find = |name: &str| {
            ffmpeg::filter::find(name).with_context(|| format!("FFmpeg has no {name} filter"))
        };
        let mut src = graph
            .add(&find("buffer")?, "in", &src_args)
            .context("creating the filter source")?;
        // `\:` keeps the colon inside the option value.
        let opts = drawtext_options(
            &font,
            height,
            corner,
            &format!("%{{metadata\\:{TEXT_KEY}}}"),
        );
        let mut draw = graph
            .add(&find("drawtext")?, "time", &opts)
            .with_context(|| format!("creating drawtext with {opts}"))?;
        let mut sink = graph
            .add(&find("buffersink")?, "out", "")
            .context("creating the filter sink")?;
        src.link(0, &mut draw, 0);
        draw.link(0, &mut sink, 0);
        graph.validate().context("configuring the filter graph")?;
        Ok(Burner { graph })
    }

    /// Draws `text` on `frame` and returns the drawn picture.
    pub fn burn(
        &mut self,
        frame: &mut ffmpeg::frame::Video,
        text: &str,
    ) -> anyhow::Result<ffmpeg::frame::Video> {
        let mut meta = ffmpeg::Dictionary::new();
        meta.set(TEXT_KEY, text);
        frame.set_metadata(meta);
        self.graph
            .get("in")
            .context("filter source missing")?
            .source()
            .add(frame)
            .context("feeding the filter graph")?;
        let mut out = ffmpeg::frame::Video::empty();
        self.graph
            .get("out")
            .context("filter sink missing")?
            .sink()
            .frame(&mut out)
            .context("drawtext gave no frame")?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_the_text_into_the_picture() {
        if font().is_err() {
            eprintln!("SKIPPED: no font (fonts-dejavu-core)");
            return;
        }
        super::super::init().unwrap();
        let mut f = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, 320, 240);
        for i in 0..3 {
            f.data_mut(i).fill(128);
        }
        f.set_pts(Some(0));
        let mut b = Burner::new(320, 240, Corner::TopLeft).unwrap();
        let out = b.burn(&mut f.clone(), "2026-10-25 01:30:00 BST").unwrap();
        let (w, s) = (out.width() as usize, out.stride(0));
        let band: Vec<u8> = (0..20)
            .flat_map(|y| out.data(0)[y * s..y * s + w / 3].to_vec())
            .collect();
        assert!(band.iter().any(|v| *v < 40), "no black band");
        assert!(band.iter().any(|v| *v > 200), "no white text");
        let rest = &out.data(0)[200 * s..200 * s + w];
        assert!(rest.iter().all(|v| *v == 128), "drew outside the band");
    }
}
