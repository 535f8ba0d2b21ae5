//! Layout tests on synthetic segments (fake sample bytes, real boxes): which fragments are
//! used, their times and sequence numbers, the cut, and that every byte range reads the same
//! as the whole. Decoding with ffmpeg is tested end to end in `tests/playback_*.rs`.

use std::io::Cursor;
use std::sync::Arc;

use super::*;
use crate::mp4::{avc1_sample_entry, avcc_from_parameter_sets, Sample, TrackConfig, TrackKind};
use crate::store::segment_rel_path;

const T0: i64 = 1_700_000_000 * NS_PER_SEC;
const FRAME: u32 = 3600; // 25 fps

fn entry(width: u16) -> Vec<u8> {
    let avcc = avcc_from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce]);
    avc1_sample_entry(width, 48, &avcc)
}

/// Writes a segment of `gops` one-second GOPs (25 frames, one fragment each) starting
/// `start_s` seconds after T0; sample bytes encode (segment, frame) so tests can tell them
/// apart. Audio (8 kHz, 1024-sample frames) is added if `audio`.
fn segment(store: &Store, start_s: f64, gops: u64, width: u16, audio: bool) -> SegmentRecord {
    let start_ns = T0 + (start_s * 1e9) as i64;
    let rel = segment_rel_path("cam", start_ns);
    let path = store.dir().join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut tracks = vec![TrackConfig {
        track_id: 1,
        kind: TrackKind::Video { width, height: 48 },
        timescale: 90_000,
        sample_entry: entry(width),
    }];
    if audio {
        let mut e = vec![0, 0, 0, 36];
        e.extend_from_slice(b"mp4a");
        e.extend_from_slice(&[0; 28]);
        tracks.push(TrackConfig {
            track_id: 2,
            kind: TrackKind::Audio {
                sample_rate: 8000,
                channels: 1,
            },
            timescale: 8000,
            sample_entry: e,
        });
    }
    let mut out = Vec::new();
    mp4::write_init(&tracks, &mut out);
    let mut keyframes = Vec::new();
    let mut adts = 0u64;
    for g in 0..gops {
        keyframes.push((g * 90_000, out.len() as u64));
        let v: Vec<Sample> = (0..25)
            .map(|i| Sample {
                duration: FRAME,
                size: 100 + i,
                is_sync: i == 0,
                composition_offset: 0,
            })
            .collect();
        // Audio of this GOP, starting 10 ms before the key frame (as cameras deliver it):
        // the first fragment's first audio frame is short, so later ones start at -80.
        let a: Vec<Sample> = (0..8)
            .map(|i| Sample {
                duration: if g == 0 && i == 0 { 920 } else { 1000 },
                size: 7,
                is_sync: true,
                composition_offset: 0,
            })
            .collect();
        let mut runs = vec![TrackRun {
            track_id: 1,
            base_decode_time: g * 90_000,
            samples: &v,
        }];
        let a_base = adts;
        if audio {
            runs.push(TrackRun {
                track_id: 2,
                base_decode_time: a_base,
                samples: &a,
            });
        }
        mp4::write_fragment_header(g as u32 + 1, &runs, &mut out);
        for (i, s) in v.iter().enumerate() {
            out.extend(std::iter::repeat_n(
                (g * 25 + i as u64) as u8,
                s.size as usize,
            ));
        }
        if audio {
            out.extend(std::iter::repeat_n(0xaa, 56));
            adts = a_base + a.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        }
    }
    std::fs::write(&path, &out).unwrap();
    let rec = SegmentRecord {
        camera: "cam".into(),
        start_ns,
        end_ns: start_ns + gops as i64 * NS_PER_SEC,
        path: rel,
        bytes: out.len() as u64,
        codec: "avc1.42c01e".into(),
        width,
        height: 48,
        frames: gops * 25,
        has_audio: audio,
        keyframes,
        drift_ms: 0,
        archived: None,
    };
    store.insert(&rec).unwrap();
    rec
}

fn s(sec: f64) -> i64 {
    T0 + (sec * 1e9) as i64
}

fn whole(plan: &Arc<Plan>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = PlanReader::new(plan.clone()).write_all(&mut out).unwrap();
    assert_eq!(n, plan.len);
    out
}

/// (video tfdt, video samples, audio (tfdt, samples)) of one fragment.
type FragSummary = (u64, usize, Option<(u64, usize)>);

fn fragments(out: &[u8]) -> Vec<FragSummary> {
    let mut c = Cursor::new(out);
    let init = mp4::read_init(&mut c, out.len() as u64).unwrap();
    let scanned = mp4::scan(Cursor::new(out)).unwrap();
    assert!(!scanned.is_torn(), "{:?}", scanned.torn_reason);
    scanned
        .fragments
        .iter()
        .map(|f| {
            let frag = mp4::read_fragment(&mut c, &init, f.offset, out.len() as u64).unwrap();
            let v = frag.run(1).unwrap();
            let a = frag.run(2).map(|a| (a.base_decode_time, a.samples.len()));
            (v.base_decode_time, v.samples.len(), a)
        })
        .collect()
}

#[test]
fn range_inside_one_segment_starts_at_the_key_frame_and_cuts_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    segment(&store, 0.0, 10, 64, false);
    // 2.5 s .. 4.3 s: key frame at 2 s, cut inside the GOP at 4 s.
    let plan = Arc::new(plan(&store, "cam", s(2.5), s(4.3)).unwrap());
    assert_eq!(plan.first_frame_ns, s(2.0));
    assert_eq!(
        plan.actual,
        Span {
            start_ns: s(2.5),
            end_ns: s(4.3)
        }
    );
    assert_eq!(plan.lead_in_ns(), 500_000_000);
    assert!(plan.gaps.is_empty());
    let out = whole(&plan);
    let frags = fragments(&out);
    // GOPs at 2 s and 3 s whole, then the frames of the 4 s GOP starting before 4.3 s
    // (4.28 s is the last: 8 frames).
    assert_eq!(
        frags,
        vec![(0, 25, None), (90_000, 25, None), (180_000, 8, None)]
    );
    // Sample data is the original: the first byte of the first sample is frame 50.
    let mut c = Cursor::new(&out[..]);
    let init = mp4::read_init(&mut c, out.len() as u64).unwrap();
    let f = mp4::read_fragment(&mut c, &init, init.len, out.len() as u64).unwrap();
    assert_eq!(out[f.run(1).unwrap().data_start as usize], 50);
    // Edit list: presentation starts 0.5 s in and lasts 1.8 s.
    let elst = out.windows(4).position(|w| w == b"elst").unwrap();
    let media_time = u32::from_be_bytes(out[elst + 16..elst + 20].try_into().unwrap());
    let dur = u32::from_be_bytes(out[elst + 12..elst + 16].try_into().unwrap());
    assert_eq!((media_time, dur), (45_000, 1800));
}

#[test]
fn ranges_across_segments_keep_wall_time_and_report_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    segment(&store, 0.0, 4, 64, true);
    segment(&store, 4.0, 4, 64, true);
    // 5 s hole, then a third segment.
    segment(&store, 13.0, 4, 64, true);
    let plan = Arc::new(plan(&store, "cam", s(1.2), s(14.5)).unwrap());
    assert_eq!(plan.segment_paths.len(), 3);
    assert_eq!(
        plan.gaps,
        vec![Span {
            start_ns: s(8.0),
            end_ns: s(13.0)
        }]
    );
    assert!(plan.has_audio);
    let frags = fragments(&whole(&plan));
    let video: Vec<(u64, usize)> = frags.iter().map(|f| (f.0, f.1)).collect();
    // Time zero is the 1 s key frame; the third segment sits 12 s later, not papered over.
    assert_eq!(
        video,
        vec![
            (0, 25),
            (90_000, 25),
            (180_000, 25),
            (270_000, 25),
            (360_000, 25),
            (450_000, 25),
            (540_000, 25),
            (1_080_000, 25),
            (1_170_000, 13) // 14.0 .. 14.48 s
        ]
    );
    // The audio frame that began 10 ms before the key frame is dropped rather than put
    // before zero; audio follows the video's shift in its own timescale.
    let audio: Vec<(u64, usize)> = frags.iter().map(|f| f.2.unwrap()).collect();
    assert_eq!(audio[0], (1000 - 80, 7));
    assert_eq!(audio[1].0, 8000 - 80);
    assert_eq!(audio[7].0, 12 * 8000);
    // The last fragment keeps audio starting before 14.5 s: 13.92 + k*0.125 < 14.5 → 5.
    assert_eq!(audio[8], (12 * 8000 + 8000 - 80, 5));
}

#[test]
fn every_byte_range_reads_the_same_as_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    segment(&store, 0.0, 3, 64, true);
    segment(&store, 3.0, 3, 64, true);
    let plan = Arc::new(plan(&store, "cam", s(0.5), s(5.5)).unwrap());
    let all = whole(&plan);
    let mut state = 99u64;
    let mut reader = PlanReader::new(plan.clone());
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pos = state % plan.len;
        let max = 1 + (state >> 40) as usize % 5000;
        let got = reader.read_at(pos, max).unwrap();
        assert!(!got.is_empty());
        assert_eq!(
            &got[..],
            &all[pos as usize..pos as usize + got.len()],
            "at {pos}"
        );
    }
    // A fresh reader starting mid-file agrees too (no state from earlier reads).
    for pos in [1, plan.len / 3, plan.len / 2, plan.len - 1] {
        let got = PlanReader::new(plan.clone()).read_at(pos, 100).unwrap();
        assert_eq!(&got[..], &all[pos as usize..pos as usize + got.len()]);
    }
    // The plan is deterministic: same request, same ETag and bytes.
    let again = Arc::new(super::plan(&store, "cam", s(0.5), s(5.5)).unwrap());
    assert_eq!(again.etag, plan.etag);
    assert_eq!(whole(&again), all);
    let other = super::plan(&store, "cam", s(0.5), s(5.4)).unwrap();
    assert_ne!(other.etag, plan.etag);
}

#[test]
fn archived_segments_read_forward_stream_their_part_in_one_request_each() {
    use crate::store::media::fake::FakeRemote;
    use crate::store::media::Remote;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fake = FakeRemote::new(97, None);
    store.set_remote(fake.clone());
    let recs = [
        segment(&store, 0.0, 3, 64, true),
        segment(&store, 3.0, 3, 64, true),
    ];
    let local = Arc::new(plan(&store, "cam", s(0.5), s(5.5)).unwrap());
    let all = whole(&local);
    for r in &recs {
        let key = fake.key_for(&r.path);
        let bytes = std::fs::read(store.file_path(r)).unwrap();
        fake.objects
            .lock()
            .unwrap()
            .insert(key.clone(), bytes.into());
        let a = crate::store::Archived {
            key,
            sha256: String::new(),
        };
        assert!(store.mark_archived(r, a).unwrap());
        assert!(store.drop_local(r).unwrap());
    }
    // Planning reads headers by blocks; reading the whole plan forward then streams each
    // segment's part once and fetches no block.
    let archived = Arc::new(plan(&store, "cam", s(0.5), s(5.5)).unwrap());
    assert_eq!(archived.etag, local.etag);
    let blocks = fake.ranged();
    assert_eq!(whole(&archived), all);
    assert_eq!(fake.ranged(), blocks, "no block read");
    assert_eq!(fake.streams.lock().unwrap().len(), 2);
    // Ranges from anywhere (an HTTP range being served) read the same bytes.
    let len = archived.len;
    for (a, b) in [(len / 3, 2 * len / 3), (1, len), (len / 2, len / 2 + 1)] {
        let mut reader = PlanReader::forward(archived.clone(), a..b);
        let mut pos = a;
        while pos < b {
            let got = reader.read_at(pos, (b - pos).min(700) as usize).unwrap();
            assert!(!got.is_empty());
            assert_eq!(
                &got[..],
                &all[pos as usize..pos as usize + got.len()],
                "at {pos} of {a}..{b}"
            );
            pos += got.len() as u64;
        }
    }
    assert!(fake.streams.lock().unwrap().len() > 2);
}

#[test]
fn range_in_a_gap_starts_at_the_next_recording_and_nothing_recorded_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    segment(&store, 0.0, 2, 64, false);
    segment(&store, 10.0, 2, 64, false);
    let plan = plan(&store, "cam", s(5.0), s(11.0)).unwrap();
    assert_eq!(
        plan.actual,
        Span {
            start_ns: s(10.0),
            end_ns: s(11.0)
        }
    );
    assert_eq!(plan.first_frame_ns, s(10.0));
    assert_eq!(
        plan.gaps,
        vec![Span {
            start_ns: s(5.0),
            end_ns: s(10.0)
        }]
    );
    assert!(matches!(
        super::plan(&store, "cam", s(3.0), s(9.0)),
        Err(PlanError::NothingRecorded)
    ));
    assert!(matches!(
        super::plan(&store, "cam", s(30.0), s(40.0)),
        Err(PlanError::NothingRecorded)
    ));
    assert!(matches!(
        super::plan(&store, "cam", s(1.0), s(1.0)),
        Err(PlanError::Invalid(_))
    ));
    // Beyond the recording: clipped to what exists.
    let plan = super::plan(&store, "cam", s(11.5), s(100.0)).unwrap();
    assert_eq!(
        plan.actual,
        Span {
            start_ns: s(11.5),
            end_ns: s(12.0)
        }
    );
}

#[test]
fn parameter_change_is_refused_with_the_boundary_or_split() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    segment(&store, 0.0, 2, 64, false);
    segment(&store, 2.0, 2, 96, false);
    match plan(&store, "cam", s(0.0), s(4.0)) {
        Err(PlanError::ParametersChanged { at_ns, parts }) => {
            assert_eq!(at_ns, s(2.0));
            assert_eq!(
                parts,
                vec![
                    Span {
                        start_ns: s(0.0),
                        end_ns: s(2.0)
                    },
                    Span {
                        start_ns: s(2.0),
                        end_ns: s(4.0)
                    }
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    let parts = plan_parts(&store, "cam", s(1.0), s(3.0)).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].width, 64);
    assert_eq!(parts[1].width, 96);
    assert_eq!(
        parts[1].actual,
        Span {
            start_ns: s(2.0),
            end_ns: s(3.0)
        }
    );
    // Each part on its own side of the change is fine.
    assert!(plan(&store, "cam", s(2.5), s(3.5)).is_ok());
}

#[test]
fn gaps_use_the_tolerance() {
    let rec = |a: f64, b: f64| SegmentRecord {
        camera: "cam".into(),
        start_ns: s(a),
        end_ns: s(b),
        path: String::new(),
        bytes: 0,
        codec: String::new(),
        width: 0,
        height: 0,
        frames: 1,
        has_audio: false,
        keyframes: vec![],
        drift_ms: 0,
        archived: None,
    };
    let g = gaps(
        &[rec(0.0, 60.0), rec(60.04, 120.0), rec(125.0, 130.0)],
        s(-10.0),
        s(200.0),
    );
    assert_eq!(
        g,
        vec![
            Span {
                start_ns: s(-10.0),
                end_ns: s(0.0)
            },
            Span {
                start_ns: s(120.0),
                end_ns: s(125.0)
            },
            Span {
                start_ns: s(130.0),
                end_ns: s(200.0)
            }
        ]
    );
}

#[test]
fn ancillary_boxes_between_fragments_become_free() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // ffmpeg ends fragmented files with an `mfra` whose offsets point into that file.
    let mut rec = segment(&store, 0.0, 2, 64, false);
    let path = store.file_path(&rec);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 16]);
    bytes.extend_from_slice(b"mfra");
    bytes.extend_from_slice(&[7; 8]);
    std::fs::write(&path, &bytes).unwrap();
    rec.bytes = bytes.len() as u64;
    store.insert(&rec).unwrap();
    segment(&store, 2.0, 2, 64, false);
    let plan = Arc::new(plan(&store, "cam", s(0.0), s(3.5)).unwrap());
    let all = whole(&plan);
    assert!(!all.windows(4).any(|w| w == b"mfra"));
    let at = all.windows(4).position(|w| w == b"free").unwrap();
    assert_eq!(&all[at + 4..at + 12], &[7; 8]);
    assert_eq!(fragments(&all).len(), 4);
    // Reads that split the box header still see `free`.
    for start in at - 6..at + 4 {
        let got = PlanReader::new(plan.clone())
            .read_at(start as u64, 3)
            .unwrap();
        assert_eq!(&got[..], &all[start..start + got.len()], "at {start}");
    }
}
