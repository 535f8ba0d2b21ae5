//! Files of an export made by conversion rather than by copying: the H.264 **working
//! copy** of a native master (`working_copy: true`), which plays anywhere, and the
//! **redacted copy** (`redact`), made from the recordings with regions obscured. Both
//! carry each frame's local date and time burned in, and both are hashed and listed in the
//! manifest beside (working copy) or instead of (redacted) the master.
//!
//! Only plans which file to make from what and hashes it as written; the conversion is
//! [`transcode::convert`](crate::transcode::convert), run on the bounded low-priority
//! [`background`](crate::transcode::background) workers so it never slows recording.
//! The recordings are only ever read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::playback::{Plan, PlanFile};
use crate::transcode::convert::{self, Converted};
use crate::transcode::redact::{Redaction, Resolved};

/// `role` of a file copied from the recordings without re-encoding.
pub const MASTER: &str = "master";
/// `role` of an H.264 conversion of a master, for playing anywhere.
pub const WORKING_COPY: &str = "working_copy";
/// `role` of a redacted H.264 conversion of the recordings.
pub const REDACTED: &str = "redacted";

/// The manifest's record of a redaction: what was asked, over which range, by whom.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedactionRecord {
    /// Boxes, mode, invert and mute, exactly as requested.
    #[serde(flatten)]
    pub spec: Redaction,
    /// The range the redacted copies cover.
    pub range: super::Range,
    /// Who asked for it.
    pub by: String,
    /// In plain words.
    pub note: String,
}

/// What `note` says of a redaction.
pub fn redaction_note(r: &Redaction) -> String {
    let how = match r.mode {
        crate::transcode::redact::Mode::Fill => "filled with solid black",
        crate::transcode::redact::Mode::Blur => "blurred",
    };
    let picture = match (r.boxes.is_empty(), r.invert) {
        (true, false) => "no part of the picture was obscured".to_owned(),
        (true, true) => format!("the whole picture was {how} in every frame"),
        (false, true) => format!(
            "everything outside the boxes was {how} in every frame (box edges widened to \
             16-pixel blocks)"
        ),
        (false, false) => {
            format!("the boxes were {how} in every frame (box edges widened to 16-pixel blocks)")
        }
    };
    let audio = if r.mute_audio {
        " The sound was muted: the audio track holds digital silence for the whole length \
         of the recorded sound, so the timing is unchanged."
    } else {
        ""
    };
    format!(
        "These files are redacted copies: {picture}, the video re-encoded as H.264 with the \
         local date and time burned in.{audio} The recordings themselves were not changed; the \
         native footage is not in this package."
    )
}

/// Where a conversion reads from.
pub enum Source {
    /// A master already written (and hashed) into the export.
    Master(PathBuf),
    /// The recordings, assembled (for redacted copies, whose export holds no master).
    Recordings(Arc<Plan>),
}

/// Converts `source` (which presents `plan`'s range) into a new file at `path`, with times
/// burned in the zone `tz` and `redact` applied; fsyncs. Returns (hex SHA-256, bytes, what
/// was written). Blocking: waits for a conversion slot.
///
/// The output may take at most [`estimate_bytes`] of `plan`, what the export reserved
/// for it under the quota: a conversion that would write more stops with an error and
/// its partial file is deleted, so an export never takes more space than it was allowed.
pub fn write_converted(
    source: Source,
    plan: &Plan,
    path: &Path,
    tz: &jiff::tz::TimeZone,
    redact: Option<Resolved>,
) -> anyhow::Result<(String, u64, Converted)> {
    let opts = convert::Options {
        first_frame_ns: plan.first_frame_ns,
        time_zone: tz.clone(),
        redact,
        edit: Some((
            plan.lead_in_ns(),
            ((plan.actual.end_ns - plan.actual.start_ns).max(0) as u64).div_ceil(1_000_000),
        )),
        preset: "veryfast",
    };
    let path = path.to_owned();
    let camera = plan.camera.clone();
    let budget = estimate_bytes(plan);
    crate::transcode::background::run("export-convert", move || {
        write_budgeted(&path, budget, |w| match source {
            Source::Master(p) => {
                let mut f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
                let len = f.metadata()?.len();
                convert::convert(&mut f, len, w, &opts)
            }
            Source::Recordings(plan) => {
                let mut f = PlanFile::forward(plan);
                let len = f.len();
                convert::convert(&mut f, len, w, &opts)
            }
        })
        .with_context(|| format!("camera {camera}: converting into {}", path.display()))
    })
}

/// Creates `path` and has `fill` write it, hashing and counting, and refusing any write
/// past `budget` bytes; fsyncs. On any error the partial file is deleted.
fn write_budgeted<T>(
    path: &Path,
    budget: u64,
    fill: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<(String, u64, T)> {
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut w = Hashing {
        f: BufWriter::with_capacity(1 << 20, out),
        h: Sha256::new(),
        n: 0,
        budget,
    };
    let r = fill(&mut w).and_then(|t| {
        w.f.flush()?;
        w.f.get_ref().sync_all()?;
        Ok(t)
    });
    match r {
        Ok(t) => Ok((hex::encode(w.h.finalize()), w.n, t)),
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

/// A writer that hashes and counts what it writes, and refuses to go past `budget`.
struct Hashing {
    f: BufWriter<File>,
    h: Sha256,
    n: u64,
    budget: u64,
}

impl Write for Hashing {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.n.saturating_add(b.len() as u64) > self.budget {
            return Err(std::io::Error::other(format!(
                "the converted file would take more than the {} bytes the export reserved \
                 for it under [storage] export_max_bytes; the partial file was deleted (export \
                 a shorter range)",
                self.budget
            )));
        }
        let n = self.f.write(b)?;
        self.h.update(&b[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.f.flush()
    }
}

/// Bytes to reserve for converting `plan` (the quota is checked before anything is
/// written, when the output's size is not known): twice the source, plus 4 MiB. H.264 at
/// libx264's default quality is usually larger than the camera's H.265, rarely twice.
pub fn estimate_bytes(plan: &Plan) -> u64 {
    plan.len.saturating_mul(2).saturating_add(4 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversion_stops_at_its_reservation_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam-working-copy.mp4");
        // Up to the budget: written, hashed and counted.
        let (sha, n, ()) = write_budgeted(&path, 10, |w| Ok(w.write_all(b"0123456789")?)).unwrap();
        assert_eq!(n, 10);
        assert_eq!(sha, hex::encode(Sha256::digest(b"0123456789")));
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
        std::fs::remove_file(&path).unwrap();
        // One byte more: the writer refuses, the error says why, the file is gone.
        let mut wrote = 0;
        let err = write_budgeted(&path, 10, |w| {
            for chunk in [&b"01234"[..], b"56789", b"X"] {
                w.write_all(chunk)?;
                wrote += chunk.len();
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(wrote, 10, "the write past the budget failed");
        assert!(
            format!("{err:#}").contains("reserved for it under [storage] export_max_bytes"),
            "{err:#}"
        );
        assert!(!path.exists(), "the partial file was left behind");
        // Any other failure deletes the partial file too.
        let err = write_budgeted(&path, 100, |w| -> anyhow::Result<()> {
            w.write_all(b"part")?;
            anyhow::bail!("decoder broke")
        })
        .unwrap_err();
        assert!(err.to_string().contains("decoder broke"));
        assert!(!path.exists());
    }
}
