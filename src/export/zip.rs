//! `package.zip`: a finished export directory as one zip file, written as a stream (STORED
//! entries with data descriptors, never the whole package in memory or on disk), so a
//! download of gigabytes starts at once and costs a buffer.
//!
//! Entries sit in one folder, `export-<id>/`, holding exactly the package's files: what
//! `cleannvr export verify` and `sha256sum -c SHA256SUMS` check after unpacking.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use zip::write::SimpleFileOptions;

use super::{Manifest, PACKAGE_FILES};

/// The files of a package in zip order: the videos the manifest lists, then the package
/// files present in `dir` (the player is optional).
pub fn package_files(m: &Manifest, dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = m.files().map(|f| f.file.clone()).collect();
    for name in PACKAGE_FILES {
        if dir.join(name).is_file() {
            names.push(name.to_owned());
        }
    }
    names
}

/// Writes `names` from `dir` as a zip under `folder/` into `out`, which need not seek.
/// Blocking; stops at the first write error (a client that went away).
pub fn write(dir: &Path, folder: &str, names: &[String], out: impl Write) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let mut buf = vec![0u8; 256 * 1024];
    for name in names {
        let path = dir.join(name);
        let mut f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let len = f.metadata()?.len();
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            // Zip64 when the entry may not fit the 32-bit fields.
            .large_file(len >= u64::from(u32::MAX))
            .unix_permissions(0o644);
        zip.start_file(format!("{folder}/{name}"), opts)
            .with_context(|| format!("zip entry {name}"))?;
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n])?;
        }
    }
    zip.finish()?.flush()?;
    Ok(())
}

/// A [`Write`] that hands chunks to an async receiver through a bounded channel, so a
/// blocking zip writer can feed an HTTP body; a full channel blocks the writer (the
/// client sets the pace), a dropped receiver ends it with `BrokenPipe`.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    /// A writer sending to `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// Sends an error to the receiver (the body then ends abnormally, so a client cannot
    /// mistake a cut-off zip for a whole one).
    pub fn fail(self, e: &anyhow::Error) {
        let _ = self
            .tx
            .blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
