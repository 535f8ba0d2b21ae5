//! Index scale: a synthetic 30-day archive in the sled index, loaded and
//! queried in-process through `Store`.

use std::path::Path;
use std::time::{Duration, Instant};

use cleannvr::store::{segment_rel_path, SegmentRecord, Store};
use rand::{Rng, SeedableRng};
use serde::Serialize;

const NS: i64 = 1_000_000_000;
/// 2026-01-01T00:00:00Z: the archive's first segment.
const EPOCH_NS: i64 = 1_767_225_600 * NS;

/// Figures for one archive size.
#[derive(Clone, Debug, Serialize)]
pub struct IndexFigures {
    /// Cameras in the archive.
    pub cameras: usize,
    /// Rows loaded.
    pub segments: u64,
    /// Bulk load rate (10 000-row batches, one flush each), rows per second.
    pub load_rows_per_sec: f64,
    /// One live insert as the recorder does it (insert + flush): p50, p99, µs.
    pub insert_us: (f64, f64),
    /// One-hour range query: p50, p99, max, µs.
    pub query_us: (f64, f64, f64),
    /// Mean rows returned per one-hour query.
    pub rows_per_query: f64,
    /// Full scan of one camera's rows filtered to one hour (an index-less lookup), median µs.
    pub scan_us: f64,
    /// On-disk size of the index directory, bytes.
    pub disk_bytes: u64,
}

fn record(camera: usize, seq: i64) -> SegmentRecord {
    // Per-camera offsets, like the recorder's staggered rollover grid.
    let start_ns = EPOCH_NS + seq * 60 * NS + (camera as i64 * 7919 % 600) * NS / 10;
    let camera = format!("cam{camera:02}");
    let frames = 1500u64;
    let bytes = 30_000_000 + (seq as u64 % 997) * 1000;
    SegmentRecord {
        path: segment_rel_path(&camera, start_ns),
        camera,
        start_ns,
        end_ns: start_ns + 60 * NS,
        bytes,
        codec: "avc1.42c028".into(),
        width: 1920,
        height: 1080,
        frames,
        has_audio: false,
        // One fragment per 2 s GOP: 30 seek points per minute.
        keyframes: (0..30u64)
            .map(|k| (k * 180_000, 800 + k * bytes / 30))
            .collect(),
        drift_ms: (seq % 40) - 20,
        archived: None,
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn du(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += du(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Builds an archive of `cameras` × `per_camera` one-minute segments under
/// `dir` and measures it.
pub fn run(
    dir: &Path,
    cameras: usize,
    per_camera: i64,
    queries: usize,
) -> anyhow::Result<IndexFigures> {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(dir)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);

    // Time order across cameras, as a live archive grows.
    let t = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for seq in 0..per_camera {
        for c in 0..cameras {
            batch.push(record(c, seq));
            if batch.len() == 10_000 {
                store.insert_batch(&batch)?;
                batch.clear();
            }
        }
    }
    store.insert_batch(&batch)?;
    let segments = cameras as u64 * per_camera as u64;
    let load_rows_per_sec = segments as f64 / t.elapsed().as_secs_f64();

    let mut q = Vec::with_capacity(queries);
    let mut rows = 0usize;
    let span_ns = per_camera * 60 * NS;
    for _ in 0..queries {
        let c = rng.gen_range(0..cameras);
        let start = EPOCH_NS + rng.gen_range(0..(span_ns - 3600 * NS).max(1));
        let cam = format!("cam{c:02}");
        let t = Instant::now();
        let got = store.segments(&cam, start, start + 3600 * NS)?;
        q.push(t.elapsed().as_secs_f64() * 1e6);
        rows += got.len();
    }
    let rows_per_query = rows as f64 / queries as f64;

    // The lookup without an index: read every row of the camera.
    let mut scans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..9 {
        let c = rng.gen_range(0..cameras);
        let start = EPOCH_NS + rng.gen_range(0..(span_ns - 3600 * NS).max(1));
        let cam = format!("cam{c:02}");
        let t = Instant::now();
        let mut n = 0;
        for r in store.iter_camera(&cam) {
            let r = r?;
            if r.end_ns > start && r.start_ns < start + 3600 * NS {
                n += 1;
            }
        }
        scans.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(n);
        if Instant::now() > deadline {
            break;
        }
    }

    // Live inserts at the head of the archive, each flushed like the recorder's.
    let mut ins = Vec::new();
    for k in 0..200 {
        let mut r = record(k % cameras, per_camera + (k / cameras) as i64);
        r.start_ns += 1; // never collide with a loaded row
        let t = Instant::now();
        store.insert(&r)?;
        ins.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(store);
    let disk_bytes = du(&dir.join("index"));

    Ok(IndexFigures {
        cameras,
        segments,
        load_rows_per_sec,
        insert_us: (pct(&mut ins, 0.5), pct(&mut ins, 0.99)),
        query_us: (pct(&mut q, 0.5), pct(&mut q, 0.99), pct(&mut q, 1.0)),
        rows_per_query,
        scan_us: pct(&mut scans, 0.5),
        disk_bytes,
    })
}
